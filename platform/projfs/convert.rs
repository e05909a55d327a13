//! The pure conversions of the ProjFS binding (`sys.rs`), kept free of Windows types so
//! that they are tested on any host: HRESULTs, GUIDs, the spelling a placeholder is written
//! under, and how a ProjFS notification becomes one of the provider's.

use crate::mount::projfs::api::{Guid, Notification};
use crate::projection::relpath::RelPath;

/// `PRJ_NOTIFICATION` values (projectedfslib.h) the provider registers for.
pub mod code {
    pub const NEW_FILE_CREATED: i32 = 0x4;
    pub const FILE_OVERWRITTEN: i32 = 0x8;
    pub const FILE_RENAMED: i32 = 0x80;
    pub const HARDLINK_CREATED: i32 = 0x100;
    pub const FILE_HANDLE_CLOSED_FILE_MODIFIED: i32 = 0x400;
    pub const FILE_HANDLE_CLOSED_FILE_DELETED: i32 = 0x800;
    pub const FILE_PRE_CONVERT_TO_FULL: i32 = 0x1000;
}

/// `HRESULT_FROM_WIN32`.
pub fn hresult_from_win32(e: u32) -> i32 {
    if e == 0 {
        0
    } else {
        ((e & 0xffff) | 0x8007_0000) as i32
    }
}

/// The Win32 error inside an HRESULT of the `FACILITY_WIN32` kind.
pub fn win32_of(hr: i32) -> Option<u32> {
    let u = hr as u32;
    (u & 0xffff_0000 == 0x8007_0000).then_some(u & 0xffff)
}

/// A GUID's fields (`Data1`..`Data4`) from the 16 bytes zcfs keeps, and back: big-endian
/// fields, so that the bytes read as the GUID's text form.
pub fn guid_fields(g: &Guid) -> (u32, u16, u16, [u8; 8]) {
    let v = u128::from_be_bytes(*g);
    (
        (v >> 96) as u32,
        (v >> 80) as u16,
        (v >> 64) as u16,
        (v as u64).to_be_bytes(),
    )
}

/// See [`guid_fields`].
pub fn guid_from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&d1.to_be_bytes());
    b[4..6].copy_from_slice(&d2.to_be_bytes());
    b[6..8].copy_from_slice(&d3.to_be_bytes());
    b[8..].copy_from_slice(&d4);
    b
}

/// The name a placeholder is written under: the directories of the requested path (they
/// exist on disk, in their own case) and the projection's own spelling of the last name.
pub fn placeholder_name(requested: &str, own_name: &str) -> String {
    match requested.rfind(['\\', '/']) {
        Some(i) => format!("{}\\{own_name}", &requested[..i]),
        None => own_name.to_string(),
    }
}

/// What a ProjFS notification means to the provider: the path it is about and what
/// happened, or `None` for nothing to do. `path` is the callback's `FilePathName`, `dest`
/// its destination name; an empty or absent name lies outside the virtualization root (a
/// file renamed out of it has no destination, one renamed into it no source).
pub fn notification(
    code: i32,
    path: Option<&str>,
    dest: Option<&str>,
) -> Option<(String, Notification)> {
    let inside = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    let (path, dest) = (inside(path), inside(dest));
    let to = |d: Option<String>| d.and_then(|d| RelPath::parse(&d).ok());
    let Some(path) = path else {
        // Moved in from outside: a new file at the destination.
        return (code == code::FILE_RENAMED)
            .then_some(dest)
            .flatten()
            .map(|d| (d, Notification::Created));
    };
    let n = match code {
        code::FILE_PRE_CONVERT_TO_FULL => Notification::PreConvertToFull,
        code::FILE_OVERWRITTEN => Notification::Overwritten,
        code::FILE_HANDLE_CLOSED_FILE_MODIFIED => Notification::ClosedModified,
        code::FILE_HANDLE_CLOSED_FILE_DELETED => Notification::Deleted,
        code::NEW_FILE_CREATED => Notification::Created,
        // Renamed out of the root: gone from it.
        code::FILE_RENAMED => to(dest).map_or(Notification::Deleted, Notification::Renamed),
        code::HARDLINK_CREATED => Notification::Linked(to(dest)?),
        _ => return None,
    };
    Some((path, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hresults_round_trip_win32_errors() {
        assert_eq!(hresult_from_win32(0), 0);
        // ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER as the SDK spells them.
        assert_eq!(hresult_from_win32(2) as u32, 0x8007_0002);
        assert_eq!(hresult_from_win32(122) as u32, 0x8007_007a);
        assert_eq!(win32_of(hresult_from_win32(32)), Some(32));
        // E_FAIL is not a Win32 error.
        assert_eq!(win32_of(0x8000_4005_u32 as i32), None);
        assert_eq!(win32_of(0), None);
    }

    #[test]
    fn guids_keep_their_text_order() {
        // 01234567-89ab-cdef-0123-456789abcdef
        let g: Guid = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        let (d1, d2, d3, d4) = guid_fields(&g);
        assert_eq!((d1, d2, d3), (0x0123_4567, 0x89ab, 0xcdef));
        assert_eq!(d4, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(guid_from_fields(d1, d2, d3, d4), g);
    }

    #[test]
    fn placeholders_take_the_projections_case() {
        assert_eq!(
            placeholder_name(r"DEBUG\deps\LIBX.RLIB", "libx.rlib"),
            r"DEBUG\deps\libx.rlib"
        );
        assert_eq!(placeholder_name("LIBX.RLIB", "libx.rlib"), "libx.rlib");
    }

    #[test]
    fn notifications_across_the_roots_edge() {
        use code::*;
        let rel = |s: &str| RelPath::parse(s).unwrap();
        assert_eq!(
            notification(FILE_PRE_CONVERT_TO_FULL, Some(r"d\x"), None),
            Some((r"d\x".into(), Notification::PreConvertToFull))
        );
        assert_eq!(
            notification(FILE_RENAMED, Some(r"d\x"), Some(r"d\y")),
            Some((r"d\x".into(), Notification::Renamed(rel("d/y"))))
        );
        // Out of the root: ProjFS gives an empty destination; the file is gone.
        for dest in [Some(""), None] {
            assert_eq!(
                notification(FILE_RENAMED, Some(r"d\x"), dest),
                Some((r"d\x".into(), Notification::Deleted))
            );
        }
        // Into the root: an empty source; a new file at the destination.
        assert_eq!(
            notification(FILE_RENAMED, Some(""), Some(r"d\y")),
            Some((r"d\y".into(), Notification::Created))
        );
        // Never the root itself, whatever else an empty name comes with.
        assert_eq!(
            notification(FILE_HANDLE_CLOSED_FILE_DELETED, Some(""), None),
            None
        );
        assert_eq!(notification(HARDLINK_CREATED, Some("x"), Some("")), None);
        assert_eq!(notification(0x2, Some("x"), None), None);
    }
}
