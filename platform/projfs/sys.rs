//! The binding of the provider to the real ProjFS (`projectedfslib.dll`, through
//! `windows-sys`): [`start`] marks the root, registers the callbacks and returns the
//! [`ProjFs`] the provider calls. The callbacks are trampolines into the `cb_*` methods of
//! [`Provider`]: they convert wide strings, GUIDs and FILETIMEs, map [`Status`] to HRESULTs,
//! and never unwind into ProjFS.
//!
//! Type-checked and linted for Windows here (`scripts/check-windows.sh`); it has not run on
//! Windows (docs/windows.md lists what must be verified there).

use std::cmp::Ordering;
use std::ffi::{OsStr, OsString, c_void};
use std::io;
use std::os::windows::ffi::OsStrExt as _;
use std::os::windows::fs::OpenOptionsExt as _;
use std::os::windows::io::AsRawHandle as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_FILE_SYSTEM_VIRTUALIZATION_INVALID_OPERATION,
    ERROR_INSUFFICIENT_BUFFER, ERROR_INTERNAL_ERROR, ERROR_INVALID_PARAMETER, ERROR_IO_DEVICE,
    ERROR_PATH_NOT_FOUND, ERROR_SHARING_VIOLATION, S_OK,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_READONLY, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT,
};
use windows_sys::Win32::Storage::ProjectedFileSystem as prj;
use windows_sys::Win32::System::IO::DeviceIoControl;
use windows_sys::Win32::System::Ioctl::FSCTL_DELETE_REPARSE_POINT;
use windows_sys::core::{GUID, HRESULT, PCWSTR};

use super::convert::{self, code, hresult_from_win32, win32_of};
use crate::mount::projfs::ProviderSlot;
use crate::mount::projfs::api::{
    DataSink, DeleteError, DirSink, FileInfo, Guid, OnDisk, ProjFs, Status, UpdateFlags,
};
use crate::mount::projfs::provider::Provider;
use crate::projection::relpath::RelPath;

/// The reparse tag of ProjFS placeholders (`IO_REPARSE_TAG_PROJFS`).
const IO_REPARSE_TAG_PROJFS: u32 = 0x9000_001C;
/// Names placeholders as zcfs's in `PRJ_PLACEHOLDER_VERSION_INFO.ProviderID`.
const PROVIDER_ID: &[u8] = b"zcfs";

/// The notifications the provider's bookkeeping needs (docs/windows.md).
const NOTIFY_MASK: prj::PRJ_NOTIFY_TYPES = prj::PRJ_NOTIFY_FILE_PRE_CONVERT_TO_FULL
    | prj::PRJ_NOTIFY_FILE_OVERWRITTEN
    | prj::PRJ_NOTIFY_FILE_HANDLE_CLOSED_FILE_MODIFIED
    | prj::PRJ_NOTIFY_FILE_HANDLE_CLOSED_FILE_DELETED
    | prj::PRJ_NOTIFY_FILE_RENAMED
    | prj::PRJ_NOTIFY_NEW_FILE_CREATED
    | prj::PRJ_NOTIFY_HARDLINK_CREATED;

// The notification codes `convert` names are the SDK's.
const _: () = {
    assert!(code::NEW_FILE_CREATED == prj::PRJ_NOTIFICATION_NEW_FILE_CREATED);
    assert!(code::FILE_OVERWRITTEN == prj::PRJ_NOTIFICATION_FILE_OVERWRITTEN);
    assert!(code::FILE_RENAMED == prj::PRJ_NOTIFICATION_FILE_RENAMED);
    assert!(code::HARDLINK_CREATED == prj::PRJ_NOTIFICATION_HARDLINK_CREATED);
    assert!(
        code::FILE_HANDLE_CLOSED_FILE_MODIFIED
            == prj::PRJ_NOTIFICATION_FILE_HANDLE_CLOSED_FILE_MODIFIED
    );
    assert!(
        code::FILE_HANDLE_CLOSED_FILE_DELETED
            == prj::PRJ_NOTIFICATION_FILE_HANDLE_CLOSED_FILE_DELETED
    );
    assert!(code::FILE_PRE_CONVERT_TO_FULL == prj::PRJ_NOTIFICATION_FILE_PRE_CONVERT_TO_FULL);
};

fn check(hr: HRESULT, what: &str) -> io::Result<()> {
    if hr >= 0 {
        return Ok(());
    }
    let e = match win32_of(hr) {
        Some(code) => io::Error::from_raw_os_error(code as i32),
        None => io::Error::other(format!("HRESULT {:#010x}", hr as u32)),
    };
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn status_hr(s: Status) -> HRESULT {
    hresult_from_win32(match s {
        Status::NotFound => ERROR_FILE_NOT_FOUND,
        Status::Invalid => ERROR_INVALID_PARAMETER,
        Status::BufferTooSmall => ERROR_INSUFFICIENT_BUFFER,
        Status::Io => ERROR_IO_DEVICE,
    })
}

/// A NUL-terminated UTF-16 copy.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// The text of a NUL-terminated UTF-16 string ProjFS handed us (`None` for a null pointer).
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string valid for the call.
unsafe fn read_wide(p: PCWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut n = 0usize;
    // SAFETY: the caller promises a terminated string.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` units were just read.
    let units = unsafe { std::slice::from_raw_parts(p, n) };
    Some(String::from_utf16_lossy(units))
}

fn guid_of(g: &Guid) -> GUID {
    let (data1, data2, data3, data4) = convert::guid_fields(g);
    GUID {
        data1,
        data2,
        data3,
        data4,
    }
}

fn guid_bytes(g: &GUID) -> Guid {
    convert::guid_from_fields(g.data1, g.data2, g.data3, g.data4)
}

fn basic_info(info: &FileInfo) -> prj::PRJ_FILE_BASIC_INFO {
    let t = crate::os::ns_to_filetime(info.mtime) as i64;
    prj::PRJ_FILE_BASIC_INFO {
        IsDirectory: false,
        FileSize: info.size.min(i64::MAX as u64) as i64,
        CreationTime: t,
        LastAccessTime: t,
        LastWriteTime: t,
        ChangeTime: t,
        FileAttributes: if info.read_only {
            FILE_ATTRIBUTE_READONLY
        } else {
            FILE_ATTRIBUTE_ARCHIVE
        },
    }
}

/// What the callbacks find through `InstanceContext`: the slot the provider goes into.
struct Instance {
    slot: Arc<dyn ProviderSlot>,
}

/// The provider of a callback, if it exists yet.
///
/// # Safety
/// `cb` is the callback data ProjFS passed, whose `InstanceContext` is the `Instance` that
/// [`start`] registered (leaked: never freed once ProjFS started).
unsafe fn provider_of(cb: *const prj::PRJ_CALLBACK_DATA) -> Option<Arc<Provider>> {
    // SAFETY: as the caller promises.
    let inst = unsafe { &*((*cb).InstanceContext as *const Instance) };
    inst.slot.get()
}

/// Runs a callback body, turning a panic into `ERROR_INTERNAL_ERROR`.
fn guarded(f: impl FnOnce() -> HRESULT) -> HRESULT {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(hresult_from_win32(ERROR_INTERNAL_ERROR))
}

unsafe extern "system" fn cb_start_enum(
    cb: *const prj::PRJ_CALLBACK_DATA,
    id: *const GUID,
) -> HRESULT {
    guarded(|| {
        // SAFETY: ProjFS passes valid callback data and enumeration id.
        let (p, dir, pid, id) = unsafe {
            (
                provider_of(cb),
                read_wide((*cb).FilePathName).unwrap_or_default(),
                (*cb).TriggeringProcessId,
                guid_bytes(&*id),
            )
        };
        let Some(p) = p else { return S_OK };
        match p.cb_start_enum(id, &dir, pid) {
            Ok(()) => S_OK,
            Err(s) => status_hr(s),
        }
    })
}

unsafe extern "system" fn cb_end_enum(
    cb: *const prj::PRJ_CALLBACK_DATA,
    id: *const GUID,
) -> HRESULT {
    guarded(|| {
        // SAFETY: as above.
        let (p, id) = unsafe { (provider_of(cb), guid_bytes(&*id)) };
        if let Some(p) = p {
            p.cb_end_enum(id);
        }
        S_OK
    })
}

/// `PrjFillDirEntryBuffer` as a [`DirSink`].
struct DirBuffer(prj::PRJ_DIR_ENTRY_BUFFER_HANDLE);

impl DirSink for DirBuffer {
    fn add(&mut self, name: &str, info: &FileInfo) -> bool {
        let w = wide(OsStr::new(name));
        let basic = basic_info(info);
        // SAFETY: a terminated name and a basic info that live for the call; the handle is
        // the one ProjFS passed to this callback.
        let hr = unsafe { prj::PrjFillDirEntryBuffer(w.as_ptr(), &basic, self.0) };
        hr >= 0
    }
}

unsafe extern "system" fn cb_get_enum(
    cb: *const prj::PRJ_CALLBACK_DATA,
    id: *const GUID,
    pattern: PCWSTR,
    buffer: prj::PRJ_DIR_ENTRY_BUFFER_HANDLE,
) -> HRESULT {
    guarded(|| {
        // SAFETY: as above; the search expression is null or terminated.
        let (p, id, pattern, restart, pid) = unsafe {
            (
                provider_of(cb),
                guid_bytes(&*id),
                read_wide(pattern),
                (*cb).Flags & prj::PRJ_CB_DATA_FLAG_ENUM_RESTART_SCAN != 0,
                (*cb).TriggeringProcessId,
            )
        };
        let Some(p) = p else { return S_OK };
        let mut sink = DirBuffer(buffer);
        match p.cb_get_enum(id, pattern.as_deref(), restart, pid, &mut sink) {
            Ok(()) => S_OK,
            Err(s) => status_hr(s),
        }
    })
}

unsafe extern "system" fn cb_placeholder_info(cb: *const prj::PRJ_CALLBACK_DATA) -> HRESULT {
    guarded(|| {
        // SAFETY: as above.
        let (p, name_ptr, ctx, pid) = unsafe {
            (
                provider_of(cb),
                (*cb).FilePathName,
                (*cb).NamespaceVirtualizationContext,
                (*cb).TriggeringProcessId,
            )
        };
        let Some(p) = p else {
            return hresult_from_win32(ERROR_FILE_NOT_FOUND);
        };
        // SAFETY: ProjFS's path is terminated.
        let path = unsafe { read_wide(name_ptr) }.unwrap_or_default();
        let ph = match p.cb_placeholder_info(&path, pid) {
            Ok(ph) => ph,
            Err(s) => return status_hr(s),
        };
        if ph.content_id.len() > 128 {
            return hresult_from_win32(ERROR_INTERNAL_ERROR);
        }
        let mut info = prj::PRJ_PLACEHOLDER_INFO {
            FileBasicInfo: basic_info(&ph.info),
            ..Default::default()
        };
        info.VersionInfo.ProviderID[..PROVIDER_ID.len()].copy_from_slice(PROVIDER_ID);
        info.VersionInfo.ContentID[..ph.content_id.len()].copy_from_slice(&ph.content_id);
        // The directories above exist on disk in their case; the name takes the
        // projection's own.
        let name = wide(OsStr::new(&convert::placeholder_name(&path, &ph.name)));
        // SAFETY: a terminated name and an info that live for the call; the size is the
        // struct's.
        unsafe {
            prj::PrjWritePlaceholderInfo(
                ctx,
                name.as_ptr(),
                &info,
                std::mem::size_of::<prj::PRJ_PLACEHOLDER_INFO>() as u32,
            )
        }
    })
}

/// `PrjAllocateAlignedBuffer` + `PrjWriteFileData` as a [`DataSink`].
struct DataStream {
    ctx: prj::PRJ_NAMESPACE_VIRTUALIZATION_CONTEXT,
    stream: GUID,
    alignment: usize,
}

impl DataSink for DataStream {
    fn alignment(&self) -> usize {
        self.alignment
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("chunk too large"))?;
        // SAFETY: the context is the live instance's; the buffer is freed below.
        let buf = unsafe { prj::PrjAllocateAlignedBuffer(self.ctx, bytes.len().max(1)) };
        if buf.is_null() {
            return Err(io::Error::other("PrjAllocateAlignedBuffer failed"));
        }
        // SAFETY: `buf` holds at least `bytes.len()` bytes; ProjFS copies it during the call.
        let hr = unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, bytes.len());
            let hr = prj::PrjWriteFileData(self.ctx, &self.stream, buf, offset, len);
            prj::PrjFreeAlignedBuffer(buf);
            hr
        };
        check(hr, "PrjWriteFileData")
    }
}

unsafe extern "system" fn cb_file_data(
    cb: *const prj::PRJ_CALLBACK_DATA,
    offset: u64,
    len: u32,
) -> HRESULT {
    guarded(|| {
        // SAFETY: as above; `VersionInfo` is set for data requests.
        let (p, ctx, stream, pid, cid) = unsafe {
            let v = (*cb).VersionInfo;
            let cid = if v.is_null() {
                Vec::new()
            } else {
                (*v).ContentID.to_vec()
            };
            (
                provider_of(cb),
                (*cb).NamespaceVirtualizationContext,
                (*cb).DataStreamId,
                (*cb).TriggeringProcessId,
                cid,
            )
        };
        let Some(p) = p else {
            return hresult_from_win32(ERROR_FILE_NOT_FOUND);
        };
        let mut sink = DataStream {
            ctx,
            stream,
            alignment: write_alignment(ctx),
        };
        match p.cb_file_data(&cid, offset, len as u64, pid, &mut sink) {
            Ok(()) => S_OK,
            Err(s) => status_hr(s),
        }
    })
}

/// The alignment `PrjWriteFileData` needs (the volume's sector size).
fn write_alignment(ctx: prj::PRJ_NAMESPACE_VIRTUALIZATION_CONTEXT) -> usize {
    let mut info = prj::PRJ_VIRTUALIZATION_INSTANCE_INFO::default();
    // SAFETY: a live context and an out struct of the right type.
    let hr = unsafe { prj::PrjGetVirtualizationInstanceInfo(ctx, &mut info) };
    if hr >= 0 && info.WriteAlignment > 0 {
        info.WriteAlignment as usize
    } else {
        4096
    }
}

unsafe extern "system" fn cb_notify(
    cb: *const prj::PRJ_CALLBACK_DATA,
    is_dir: bool,
    n: prj::PRJ_NOTIFICATION,
    dest: PCWSTR,
    _params: *mut prj::PRJ_NOTIFICATION_PARAMETERS,
) -> HRESULT {
    guarded(|| {
        // SAFETY: as above; the destination is null or terminated.
        let (p, path, dest, pid) = unsafe {
            (
                provider_of(cb),
                read_wide((*cb).FilePathName),
                read_wide(dest),
                (*cb).TriggeringProcessId,
            )
        };
        let Some(p) = p else { return S_OK };
        if let Some((path, n)) = convert::notification(n, path.as_deref(), dest.as_deref()) {
            p.cb_notify(&path, n, is_dir, pid);
        }
        S_OK
    })
}

/// `PrjGetOnDiskFileState` of a full path (`None`: nothing there, or not answered).
fn on_disk_state(full: &Path) -> Option<prj::PRJ_FILE_STATE> {
    let w = wide(full.as_os_str());
    let mut st: prj::PRJ_FILE_STATE = 0;
    // SAFETY: a terminated path and an out value.
    let hr = unsafe { prj::PrjGetOnDiskFileState(w.as_ptr(), &mut st) };
    (hr >= 0).then_some(st)
}

/// A running virtualization instance: the [`ProjFs`] the provider calls.
pub struct RealProjFs {
    root: PathBuf,
    ctx: prj::PRJ_NAMESPACE_VIRTUALIZATION_CONTEXT,
    guid: GUID,
    /// Whether `PrjStopVirtualizing` ran: calls that use `ctx` hold this shared, `stop`
    /// holds it exclusively, so none uses a stopped instance's context.
    stopped: parking_lot::RwLock<bool>,
}

// SAFETY: the context is a handle ProjFS lets any thread use, and no call uses it after
// `stop` (the `stopped` lock).
unsafe impl Send for RealProjFs {}
// SAFETY: as above.
unsafe impl Sync for RealProjFs {}

/// Starts virtualizing `root` with instance id `guid`; callbacks reach the provider through
/// `slot` once it is there.
pub fn start(root: &Path, guid: Guid, slot: Arc<dyn ProviderSlot>) -> io::Result<Arc<dyn ProjFs>> {
    let root_w = wide(root.as_os_str());
    let g = guid_of(&guid);
    // The root must be a placeholder of this instance id before virtualizing. Marking a
    // root marked before (by us, with the same id) fails harmlessly: the start decides.
    // SAFETY: terminated strings and a GUID that live for the call.
    let marked = unsafe {
        prj::PrjMarkDirectoryAsPlaceholder(root_w.as_ptr(), std::ptr::null(), std::ptr::null(), &g)
    };
    let callbacks = prj::PRJ_CALLBACKS {
        StartDirectoryEnumerationCallback: Some(cb_start_enum),
        EndDirectoryEnumerationCallback: Some(cb_end_enum),
        GetDirectoryEnumerationCallback: Some(cb_get_enum),
        GetPlaceholderInfoCallback: Some(cb_placeholder_info),
        GetFileDataCallback: Some(cb_file_data),
        QueryFileNameCallback: None,
        NotificationCallback: Some(cb_notify),
        CancelCommandCallback: None,
    };
    let empty: [u16; 1] = [0];
    let mut mapping = prj::PRJ_NOTIFICATION_MAPPING {
        NotificationBitMask: NOTIFY_MASK,
        NotificationRoot: empty.as_ptr(),
    };
    let options = prj::PRJ_STARTVIRTUALIZING_OPTIONS {
        Flags: prj::PRJ_FLAG_USE_NEGATIVE_PATH_CACHE,
        PoolThreadCount: 0,
        ConcurrentThreadCount: 0,
        NotificationMappings: &mut mapping,
        NotificationMappingsCount: 1,
    };
    // Never freed: whether `PrjStopVirtualizing` waits for callbacks still running is not
    // documented, and a callback must not find its context gone (a few bytes per mount).
    let instance: *mut Instance = Box::leak(Box::new(Instance { slot }));
    let mut ctx: prj::PRJ_NAMESPACE_VIRTUALIZATION_CONTEXT = std::ptr::null_mut();
    // SAFETY: every pointer lives for the call; `instance` for ever.
    let hr = unsafe {
        prj::PrjStartVirtualizing(
            root_w.as_ptr(),
            &callbacks,
            instance as *const c_void,
            &options,
            &mut ctx,
        )
    };
    if let Err(e) = check(hr, "PrjStartVirtualizing") {
        // ProjFS did not start: no callback can hold the instance.
        // SAFETY: leaked above, never shared.
        drop(unsafe { Box::from_raw(instance) });
        let mark = check(marked, "PrjMarkDirectoryAsPlaceholder").err();
        return Err(match mark {
            Some(m) => io::Error::new(e.kind(), format!("{e} (after {m})")),
            None => e,
        });
    }
    Ok(Arc::new(RealProjFs {
        root: root.to_path_buf(),
        ctx,
        guid: g,
        stopped: parking_lot::RwLock::new(false),
    }))
}

impl RealProjFs {
    /// Holds the instance running for a call that uses its context.
    fn live(&self) -> io::Result<parking_lot::RwLockReadGuard<'_, bool>> {
        let g = self.stopped.read();
        if *g {
            return Err(io::Error::other("ProjFS was stopped for this directory"));
        }
        Ok(g)
    }

    fn full(&self, p: &RelPath) -> PathBuf {
        self.root.join(p.to_path())
    }

    fn rel_wide(p: &RelPath) -> Vec<u16> {
        let s: String = p.as_str().replace('/', "\\");
        wide(OsStr::new(&s))
    }

    fn state(&self, p: &RelPath) -> Option<prj::PRJ_FILE_STATE> {
        on_disk_state(&self.full(p))
    }
}

impl ProjFs for RealProjFs {
    fn mark_dir(&self, dir: &RelPath) -> io::Result<()> {
        if dir.is_root() {
            return Ok(());
        }
        let root = wide(self.root.as_os_str());
        let target = wide(self.full(dir).as_os_str());
        // SAFETY: terminated paths and a GUID that live for the call.
        let hr = unsafe {
            prj::PrjMarkDirectoryAsPlaceholder(
                root.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                &self.guid,
            )
        };
        match check(hr, "PrjMarkDirectoryAsPlaceholder") {
            Ok(()) => Ok(()),
            // Already a placeholder (marked before, or made by ProjFS).
            Err(_) if matches!(self.on_disk(dir), Ok(OnDisk::Dir { placeholder: true })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the ProjFS reparse point of a directory (`FSCTL_DELETE_REPARSE_POINT`).
    fn unmark_dir(&self, dir: &RelPath) -> io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
            .open(self.full(dir))?;
        // REPARSE_DATA_BUFFER's header: tag, data length 0, reserved.
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&IO_REPARSE_TAG_PROJFS.to_le_bytes());
        let mut returned = 0u32;
        // SAFETY: a handle we own, an input buffer that lives for the call, no output.
        let ok = unsafe {
            DeviceIoControl(
                f.as_raw_handle() as _,
                FSCTL_DELETE_REPARSE_POINT,
                header.as_ptr() as *const c_void,
                header.len() as u32,
                std::ptr::null_mut(),
                0,
                &mut returned,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn delete_file(&self, path: &RelPath, flags: UpdateFlags) -> Result<(), DeleteError> {
        let w = Self::rel_wide(path);
        let mut f: prj::PRJ_UPDATE_TYPES = 0;
        if flags.allow_dirty_metadata {
            f |= prj::PRJ_UPDATE_ALLOW_DIRTY_METADATA;
        }
        if flags.allow_dirty_data {
            f |= prj::PRJ_UPDATE_ALLOW_DIRTY_DATA;
        }
        if flags.allow_tombstone {
            f |= prj::PRJ_UPDATE_ALLOW_TOMBSTONE;
        }
        if flags.allow_read_only {
            f |= prj::PRJ_UPDATE_ALLOW_READ_ONLY;
        }
        let mut cause: prj::PRJ_UPDATE_FAILURE_CAUSES = 0;
        let live = self.live()?;
        // SAFETY: a live context (held by `live`), a terminated relative path, an out value.
        let hr = unsafe { prj::PrjDeleteFile(self.ctx, w.as_ptr(), f, &mut cause) };
        drop(live);
        if hr >= 0 {
            return Ok(());
        }
        match win32_of(hr) {
            Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => Ok(()),
            Some(ERROR_SHARING_VIOLATION) => Err(DeleteError::InUse),
            Some(ERROR_FILE_SYSTEM_VIRTUALIZATION_INVALID_OPERATION) => {
                Err(DeleteError::Refused(match cause {
                    prj::PRJ_UPDATE_FAILURE_CAUSE_DIRTY_DATA => "modified",
                    prj::PRJ_UPDATE_FAILURE_CAUSE_DIRTY_METADATA => "changed in its metadata",
                    prj::PRJ_UPDATE_FAILURE_CAUSE_TOMBSTONE => "a tombstone",
                    prj::PRJ_UPDATE_FAILURE_CAUSE_READ_ONLY => "read-only",
                    _ => "not a placeholder",
                }))
            }
            _ => Err(DeleteError::Io(
                check(hr, "PrjDeleteFile").expect_err("a failed HRESULT"),
            )),
        }
    }

    fn clear_negative_path_cache(&self) -> io::Result<()> {
        let mut n = 0u32;
        let _live = self.live()?;
        // SAFETY: a live context (held by `_live`) and an out value.
        check(
            unsafe { prj::PrjClearNegativePathCache(self.ctx, &mut n) },
            "PrjClearNegativePathCache",
        )
    }

    fn on_disk(&self, path: &RelPath) -> io::Result<OnDisk> {
        let Some(st) = self.state(path) else {
            return Ok(OnDisk::Missing);
        };
        if st & prj::PRJ_FILE_STATE_TOMBSTONE != 0 {
            return Ok(OnDisk::Tombstone);
        }
        let placeholder = st
            & (prj::PRJ_FILE_STATE_PLACEHOLDER
                | prj::PRJ_FILE_STATE_HYDRATED_PLACEHOLDER
                | prj::PRJ_FILE_STATE_DIRTY_PLACEHOLDER)
            != 0;
        match std::fs::symlink_metadata(self.full(path)) {
            Ok(m) if m.is_dir() => return Ok(OnDisk::Dir { placeholder }),
            Ok(_) => {}
            Err(e) if crate::os::is_not_found(&e) => return Ok(OnDisk::Missing),
            Err(e) => return Err(e),
        }
        // Windows has no call that reads a placeholder's content id back: an empty one never
        // matches a journal's, so a start removes placeholders it cannot vouch for and
        // ProjFS asks again on the next access (docs/windows.md).
        Ok(if st & prj::PRJ_FILE_STATE_FULL != 0 {
            OnDisk::Full
        } else if st & prj::PRJ_FILE_STATE_HYDRATED_PLACEHOLDER != 0 {
            OnDisk::Hydrated {
                content_id: Vec::new(),
            }
        } else {
            OnDisk::Placeholder {
                content_id: Vec::new(),
            }
        })
    }

    fn list_on_disk(&self, dir: &RelPath) -> io::Result<Vec<String>> {
        // Our own enumeration: the provider answers it with nothing, so this is the disk.
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.full(dir))? {
            let name: OsString = e?.file_name();
            out.push(name.to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn stat_on_disk(&self, path: &RelPath) -> io::Result<Option<FileInfo>> {
        match std::fs::symlink_metadata(self.full(path)) {
            Ok(m) if m.is_file() => Ok(Some(FileInfo {
                size: m.len(),
                mtime: crate::fsutil::mtime_ns(&m),
                read_only: m.permissions().readonly(),
            })),
            Ok(_) => Ok(None),
            Err(e) if crate::os::is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_full(&self, path: &RelPath, bytes: &[u8], info: &FileInfo) -> io::Result<()> {
        use std::io::Write as _;
        let dest = self.full(path);
        let dir = dest.parent().unwrap_or(&self.root);
        let mut tmp = tempfile::Builder::new().prefix(".zcfs-").tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        crate::fsutil::set_times(tmp.as_file(), info.mtime)?;
        if info.read_only {
            crate::os::set_file_mode(tmp.as_file(), 0o444)?;
        }
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok(())
    }

    fn real_bytes(&self) -> u64 {
        fn walk(dir: &Path, total: &mut u64) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                let p = e.path();
                if m.is_dir() {
                    walk(&p, total);
                    continue;
                }
                let real = prj::PRJ_FILE_STATE_FULL | prj::PRJ_FILE_STATE_HYDRATED_PLACEHOLDER;
                if on_disk_state(&p).is_some_and(|st| st & real != 0) {
                    *total += m.len();
                }
            }
        }
        let mut total = 0;
        walk(&self.root, &mut total);
        total
    }

    fn compare_names(&self, a: &str, b: &str) -> Ordering {
        let (a, b) = (wide(OsStr::new(a)), wide(OsStr::new(b)));
        // SAFETY: terminated strings.
        unsafe { prj::PrjFileNameCompare(a.as_ptr(), b.as_ptr()) }.cmp(&0)
    }

    fn name_matches(&self, name: &str, pattern: &str) -> bool {
        let (n, p) = (wide(OsStr::new(name)), wide(OsStr::new(pattern)));
        // SAFETY: terminated strings.
        unsafe { prj::PrjFileNameMatch(n.as_ptr(), p.as_ptr()) }
    }

    fn stop(&self) {
        let mut stopped = self.stopped.write();
        if *stopped {
            return;
        }
        *stopped = true;
        // SAFETY: the live context, used by no other call from now on.
        unsafe { prj::PrjStopVirtualizing(self.ctx) };
    }
}

impl Drop for RealProjFs {
    fn drop(&mut self) {
        self.stop();
    }
}
