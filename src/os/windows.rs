use std::fs::File;
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::FileStat;

/// A handle of a directory (opened with `FILE_FLAG_BACKUP_SEMANTICS`).
pub type DirHandle = File;

const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
/// 100 ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const EPOCH_DIFF_100NS: i128 = 116_444_736_000_000_000;

pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// Opens a file for reading without following a symlink or junction at its last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// A FILETIME (100 ns since 1601) as Unix ns.
pub fn filetime_to_ns(ft: u64) -> i128 {
    (ft as i128 - EPOCH_DIFF_100NS) * 100
}

/// Unix ns as a FILETIME.
pub fn ns_to_filetime(ns: i128) -> u64 {
    (ns / 100 + EPOCH_DIFF_100NS).max(0) as u64
}

/// The size and times of a file from `std`'s metadata, which on Windows has no volume, file
/// index or change time: `dev` and `ino` are 0 and the creation time stands in for the
/// change time. Enough for messages and for files zcfs wrote itself; checks of files
/// others may change use [`path_stat`] or [`handle_stat`].
pub fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        dev: 0,
        ino: 0,
        size: meta.file_size(),
        mtime: filetime_to_ns(meta.last_write_time()),
        ctime: filetime_to_ns(meta.creation_time()),
    }
}

/// The volume serial number of a directory's volume.
pub fn dir_device(dir: &DirHandle) -> Option<u64> {
    let meta = dir.metadata().ok()?;
    handle_stat(dir, &meta).ok().map(|s| s.dev)
}

/// A directory's (device, inode): not needed on Windows, where a projection root is not
/// mounted over a directory.
pub fn dir_identity(_dir: &DirHandle) -> Option<(u64, u64)> {
    None
}

/// See the Unix version: always `None` here.
pub fn cwd_identity() -> Option<(u64, u64)> {
    None
}

/// Whether an error means that the path (or a parent of it) does not exist.
pub fn is_not_found(e: &io::Error) -> bool {
    // ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(2) | Some(3))
}

/// Bytes of an `OsStr` (its WTF-8 encoding: UTF-8 for every well-formed name).
pub trait OsStrExt {
    fn as_bytes(&self) -> &[u8];
}

impl OsStrExt for std::ffi::OsStr {
    fn as_bytes(&self) -> &[u8] {
        self.as_encoded_bytes()
    }
}

/// An `OsString` from bytes and back. Bytes that are not UTF-8 (only a name with an unpaired
/// surrogate encodes so) are read lossily: such a name is not found, never mistaken.
pub trait OsStringExt {
    fn from_vec(v: Vec<u8>) -> Self;
    fn into_vec(self) -> Vec<u8>;
}

impl OsStringExt for std::ffi::OsString {
    fn from_vec(v: Vec<u8>) -> Self {
        match String::from_utf8(v) {
            Ok(s) => s.into(),
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned().into(),
        }
    }

    fn into_vec(self) -> Vec<u8> {
        self.into_encoded_bytes()
    }
}

/// The `OsStr` spelled by `bytes` (read as [`OsStringExt::from_vec`] does).
pub fn os_str(bytes: &[u8]) -> std::borrow::Cow<'_, std::ffi::OsStr> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(std::ffi::OsStr::new(s)),
        Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(bytes).into_owned().into()),
    }
}

/// Positioned reads and writes. Windows moves the file's cursor with them: zcfs never mixes
/// them with cursor-relative I/O on one handle.
pub trait FileAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl FileAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_write(self, buf, offset)
    }
}

/// Files are private by their directory's ACL on Windows (the user's profile): no mode.
pub fn private_file(opts: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    opts
}

/// Windows has no permission bits: a read-only file is `0o444`, others `0o644`.
pub fn file_mode(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Only the write bits mean something on Windows (the read-only attribute).
pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    let mut p = file.metadata()?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    file.set_permissions(p)
}

/// Whether a file may be run: Windows decides by its extension (`PATHEXT`).
pub fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.is_file()
}

/// Sets a file's mtime to "now" and returns it as the filesystem recorded it. NTFS stamps
/// files from the system time, the clock `SystemTime::now()` reads.
pub fn stamp_now(file: &File) -> io::Result<i128> {
    let now = std::time::SystemTime::now();
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(now)
            .set_modified(now),
    )?;
    Ok(file_stat(&file.metadata()?).mtime)
}

/// Why no unnamed file could be made in a directory.
pub enum NoUnnamed {
    Denied,
    Unsupported,
}

/// Windows has no unnamed files made from a directory handle: timestamps there are not
/// measured, and the coarse default applies (docs/windows.md).
pub fn unnamed_file_in(_dir: &DirHandle) -> Result<File, NoUnnamed> {
    Err(NoUnnamed::Unsupported)
}

/// Not told on Windows: taken as local.
pub fn is_remote_fs(_dir: &DirHandle) -> bool {
    false
}

/// Block cloning (`FSCTL_DUPLICATE_EXTENTS_TO_FILE`: ReFS, Dev Drives) of the padded range
/// when the caller allows it; `Ok(None)` where the volume cannot (NTFS): the caller copies
/// by reading and writing.
pub fn kernel_copy(
    src: &File,
    src_off: u64,
    len: u64,
    clone_len: Option<u64>,
    dst: &File,
) -> io::Result<Option<super::CopyMethod>> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::IO::DeviceIoControl;
    use windows_sys::Win32::System::Ioctl::{
        DUPLICATE_EXTENTS_DATA, FSCTL_DUPLICATE_EXTENTS_TO_FILE,
    };
    let Some(padded) = clone_len else {
        return Ok(None);
    };
    let (Ok(off), Ok(count)) = (i64::try_from(src_off), i64::try_from(padded)) else {
        return Ok(None);
    };
    // The target must already be as long as the cloned range.
    dst.set_len(padded)?;
    let arg = DUPLICATE_EXTENTS_DATA {
        FileHandle: src.as_raw_handle() as _,
        SourceFileOffset: off,
        TargetFileOffset: 0,
        ByteCount: count,
    };
    let mut returned = 0u32;
    // SAFETY: handles we own and an input struct that lives for the call.
    let ok = unsafe {
        DeviceIoControl(
            dst.as_raw_handle() as _,
            FSCTL_DUPLICATE_EXTENTS_TO_FILE,
            &arg as *const DUPLICATE_EXTENTS_DATA as *const std::ffi::c_void,
            std::mem::size_of::<DUPLICATE_EXTENTS_DATA>() as u32,
            std::ptr::null_mut(),
            0,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        // Not a volume that clones (or unaligned): back to empty, and copy.
        dst.set_len(0)?;
        return Ok(None);
    }
    dst.set_len(len)?;
    Ok(Some(super::CopyMethod::Reflink))
}

/// Fills `buf` with unpredictable bytes from std's randomly keyed hasher (seeded from the
/// system's random source once per process), mixed with time and a counter.
pub fn random_bytes(buf: &mut [u8]) -> bool {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    true
}

/// Makes `at` run `exe` (a masquerade program): Windows finds programs by name and
/// extension, so `at` is a hard link to zcfs's executable, or a copy on another volume.
pub fn link_program(exe: &Path, at: &Path) -> io::Result<()> {
    std::fs::hard_link(exe, at).or_else(|_| std::fs::copy(exe, at).map(|_| ()))
}

/// A ProjFS root whose provider is gone stays usable: no error means "dead mount".
pub fn is_disconnected(_e: &io::Error) -> bool {
    false
}

/// Windows cannot replace a process: `cmd` runs as a child with our standard handles, and
/// this process exits with its code. Returns only the error of a failed start.
pub fn exec(cmd: &mut std::process::Command) -> io::Error {
    match cmd.status() {
        Ok(status) => exit_like(status),
        Err(e) => e,
    }
}

/// The exit code of `status` (a Windows process always has one).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or(1)
}

/// Exits with the child's code.
pub fn exit_like(status: std::process::ExitStatus) -> ! {
    std::process::exit(exit_code(status));
}

/// Starts `cmd` detached from our console and process group (a Ctrl-C of the build does
/// not reach it), inheriting none of our standard handles: `CreateProcess` passes every
/// inheritable handle on, and a daemon holding the pipes cargo reads our output from would
/// keep cargo waiting for their end until the daemon exits. The flags are restored after
/// the spawn (a compiler we run later inherits them as it should).
pub fn spawn_detached(cmd: &mut std::process::Command) -> io::Result<std::process::Child> {
    use std::os::windows::io::AsRawHandle;
    use std::os::windows::process::CommandExt;
    use windows_sys::Win32::Foundation::{
        GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation,
    };
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    let handles: [HANDLE; 3] = [
        std::io::stdin().as_raw_handle() as HANDLE,
        std::io::stdout().as_raw_handle() as HANDLE,
        std::io::stderr().as_raw_handle() as HANDLE,
    ];
    let mut restore = Vec::new();
    for h in handles {
        let mut flags = 0u32;
        // SAFETY: our own standard handles (possibly null: the calls then fail harmlessly).
        if unsafe { GetHandleInformation(h, &mut flags) } != 0 && flags & HANDLE_FLAG_INHERIT != 0 {
            // SAFETY: as above.
            if unsafe { SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0) } != 0 {
                restore.push(h);
            }
        }
    }
    let child = cmd.spawn();
    for h in restore {
        // SAFETY: as above.
        unsafe { SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) };
    }
    child
}

/// A directory a long-lived process can sit in without holding a build's directory busy:
/// the root of the system drive.
pub fn neutral_dir() -> &'static Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let mut root = std::env::var_os("SystemDrive").unwrap_or_else(|| "C:".into());
        root.push("\\");
        std::path::PathBuf::from(root)
    })
}

/// The console events that stop the daemon: Ctrl-C, Ctrl-Break, close, shutdown.
pub struct StopSignals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

impl StopSignals {
    pub fn new() -> io::Result<StopSignals> {
        use tokio::signal::windows;
        Ok(StopSignals {
            c: windows::ctrl_c()?,
            brk: windows::ctrl_break()?,
            close: windows::ctrl_close()?,
            shutdown: windows::ctrl_shutdown()?,
        })
    }

    /// Waits for one; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.c.recv() => "CTRL_C",
            _ = self.brk.recv() => "CTRL_BREAK",
            _ = self.close.recv() => "CTRL_CLOSE",
            _ = self.shutdown.recv() => "CTRL_SHUTDOWN",
        }
    }
}

/// Windows has no per-process limit of open handles to raise (about 16 million).
pub fn raise_open_file_limit() -> u64 {
    1 << 24
}

/// The identity, size and times of an open file, from the handle: volume serial and file
/// index (the inode's counterpart) and NTFS's change time, which `std`'s stable metadata
/// lacks. What the hash cache and identity checks compare.
pub fn handle_stat(file: &File, _meta: &std::fs::Metadata) -> io::Result<FileStat> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        BY_HANDLE_FILE_INFORMATION, FILE_BASIC_INFO, FileBasicInfo, GetFileInformationByHandle,
        GetFileInformationByHandleEx,
    };
    let h = file.as_raw_handle() as windows_sys::Win32::Foundation::HANDLE;
    let mut by = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: a handle we own and an out struct of the right type.
    if unsafe { GetFileInformationByHandle(h, &mut by) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut basic = FILE_BASIC_INFO::default();
    // SAFETY: as above, with the struct's size.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            h,
            FileBasicInfo,
            &mut basic as *mut FILE_BASIC_INFO as *mut std::ffi::c_void,
            std::mem::size_of::<FILE_BASIC_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // ReFS ids are 128 bits (the 64-bit index need not be unique there): the full id,
    // folded, where the volume gives it.
    let mut id = windows_sys::Win32::Storage::FileSystem::FILE_ID_INFO::default();
    // SAFETY: as above, with the struct's size.
    let has_id = unsafe {
        GetFileInformationByHandleEx(
            h,
            windows_sys::Win32::Storage::FileSystem::FileIdInfo,
            &mut id as *mut _ as *mut std::ffi::c_void,
            std::mem::size_of::<windows_sys::Win32::Storage::FileSystem::FILE_ID_INFO>() as u32,
        )
    } != 0;
    let ino = if has_id {
        let b = id.FileId.Identifier;
        let lo = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
        lo ^ hi.rotate_left(32)
    } else {
        ((by.nFileIndexHigh as u64) << 32) | by.nFileIndexLow as u64
    };
    Ok(FileStat {
        dev: by.dwVolumeSerialNumber as u64,
        ino,
        size: ((by.nFileSizeHigh as u64) << 32) | by.nFileSizeLow as u64,
        mtime: filetime_to_ns(basic.LastWriteTime as u64),
        ctime: filetime_to_ns(basic.ChangeTime as u64),
    })
}

/// [`handle_stat`] of the file at `path` (following links), opened to read attributes only.
pub fn path_stat(path: &Path, _meta: Option<&std::fs::Metadata>) -> io::Result<FileStat> {
    // FILE_READ_ATTRIBUTES: enough for both queries, and granted where reading is not.
    let f = std::fs::OpenOptions::new()
        .access_mode(0x80)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    let meta = f.metadata()?;
    handle_stat(&f, &meta)
}

/// [`handle_stat`] of the entry at `path` itself (a link or reparse point is not
/// followed).
pub fn link_stat(path: &Path, _meta: &std::fs::Metadata) -> io::Result<FileStat> {
    let f = std::fs::OpenOptions::new()
        .access_mode(0x80)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    let meta = f.metadata()?;
    handle_stat(&f, &meta)
}

/// Whether `at` is a hard link to `exe` already (see [`link_program`]): the same file. A
/// copy is replaced (it may be of an older zcfs).
pub fn runs_program(at: &Path, exe: &Path) -> bool {
    match (path_stat(at, None), path_stat(exe, None)) {
        (Ok(a), Ok(b)) => a.dev == b.dev && a.ino == b.ino,
        _ => false,
    }
}

/// Whether a path names something of the reading process rather than a shared file
/// (Unix's `/proc` and `/dev/fd`); Windows has no such names.
pub fn is_process_relative(_path: &Path) -> bool {
    false
}

/// Whether metadata is of a file on procfs (none on Windows).
pub fn on_procfs(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Whether stderr is a console.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// No file-creation mask on Windows: files get the directory's ACL.
pub fn umask() -> u32 {
    0
}

/// Whether stdout and stderr are open (Windows gives a process valid handles or none
/// that fail a write alike).
pub fn std_streams_open() -> bool {
    true
}
