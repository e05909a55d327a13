use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::FileStat;

/// A handle of a directory, used for `*at` calls and to learn its filesystem.
pub type DirHandle = std::os::fd::OwnedFd;

/// Opens a directory as a handle (`O_PATH`: no read permission needed).
pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
    Ok(rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// Opens a file for reading without following a symlink at its last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The identity, size and times of a file, from its metadata.
pub fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        mtime: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
    }
}

/// The device a directory handle is on.
pub fn dir_device(dir: &DirHandle) -> Option<u64> {
    dir_identity(dir).map(|(dev, _)| dev)
}

/// A directory's (device, inode).
pub fn dir_identity(dir: &DirHandle) -> Option<(u64, u64)> {
    rustix::fs::fstat(dir).ok().map(|s| (s.st_dev, s.st_ino))
}

/// The (device, inode) of the process's working directory: the directory it is in, which
/// may be one that a later mount hides (its path then names the mount instead).
pub fn cwd_identity() -> Option<(u64, u64)> {
    rustix::fs::stat(".").ok().map(|s| (s.st_dev, s.st_ino))
}

/// Whether an error means that the path (or a parent of it) does not exist.
pub fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Bytes of an `OsStr` and back: on Unix a path is bytes.
pub use std::os::unix::ffi::{OsStrExt, OsStringExt};
/// Positioned reads and writes.
pub use std::os::unix::fs::FileExt as FileAt;

/// The `OsStr` spelled by `bytes` (on Unix, any bytes).
pub fn os_str(bytes: &[u8]) -> std::borrow::Cow<'_, std::ffi::OsStr> {
    std::borrow::Cow::Borrowed(std::ffi::OsStr::from_bytes(bytes))
}

/// Makes `opts` create files readable and writable by their owner only.
pub fn private_file(opts: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    opts.mode(0o600)
}

/// The permission bits of a file (`0o7777`).
pub fn file_mode(meta: &std::fs::Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// Sets the permission bits of an open file.
pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Whether a file may be run: a regular file with an execute bit.
pub fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.mode() & 0o111 != 0
}

/// Sets a file's atime and mtime to the kernel's "now" (`UTIME_NOW`: the clock the
/// filesystem itself stamps files with) and returns that mtime.
pub fn stamp_now(file: &File) -> io::Result<i128> {
    use rustix::fs::{Timespec, Timestamps, UTIME_NOW};
    use std::os::fd::AsFd;
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    rustix::fs::futimens(
        file.as_fd(),
        &Timestamps {
            last_access: now,
            last_modification: now,
        },
    )?;
    Ok(file_stat(&file.metadata()?).mtime)
}

/// Why no unnamed file could be made in a directory.
pub enum NoUnnamed {
    /// Not allowed in this directory (another one on the filesystem may do).
    Denied,
    /// The filesystem cannot have one (or is read-only).
    Unsupported,
}

/// An unnamed temporary file in directory `dir` (`O_TMPFILE`: never visible, gone on close).
pub fn unnamed_file_in(dir: &DirHandle) -> Result<File, NoUnnamed> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::openat(
        dir,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => Err(NoUnnamed::Denied),
        Err(_) => Err(NoUnnamed::Unsupported),
    }
}

/// `statfs` magic numbers of filesystems whose times come from a server's clock.
const REMOTE_TYPES: &[i64] = &[
    0x6969,                // NFS
    0x517b,                // SMB
    0xff53_4d42u32 as i64, // CIFS
    0xfe53_4d42u32 as i64, // SMB2
    0x0102_1997,           // 9P
    0x00c3_6400,           // Ceph
    0x5346_414f,           // AFS
    0x6b41_4653,           // kAFS
    0x6573_5546,           // FUSE (sshfs, GlusterFS, ...)
    0x0bd0_0bd0,           // Lustre
    0x4750_4653,           // GPFS
    0x7366_7364,           // DFS?
];

/// Whether the filesystem of `dir` takes its times from another machine (or cannot be told).
pub fn is_remote_fs(dir: &DirHandle) -> bool {
    rustix::fs::fstatfs(dir)
        .map(|s| REMOTE_TYPES.contains(&fs_type(&s)))
        .unwrap_or(true)
}

/// A filesystem's type (`statfs`'s magic number).
pub fn fs_type(s: &rustix::fs::StatFs) -> i64 {
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let t = s.f_type as i64;
    t
}

/// Copies `len` bytes at `src_off` of `src` into `dst` at 0 by the kernel's fastest means:
/// a reflink (`FICLONERANGE`, over `len` rounded as the caller allows) or `copy_file_range`.
/// `Ok(None)`: neither applies here, copy by reading and writing.
pub fn kernel_copy(
    src: &File,
    src_off: u64,
    len: u64,
    clone_len: Option<u64>,
    dst: &File,
) -> io::Result<Option<super::CopyMethod>> {
    use super::CopyMethod;
    use std::os::fd::AsFd;
    if let Some(padded) = clone_len
        && ficlonerange(src, src_off, padded, dst).is_ok()
    {
        dst.set_len(len)?;
        return Ok(Some(CopyMethod::Reflink));
    }
    let mut copied = 0u64;
    while copied < len {
        let mut off_in = src_off + copied;
        let mut off_out = copied;
        match rustix::fs::copy_file_range(
            src.as_fd(),
            Some(&mut off_in),
            dst.as_fd(),
            Some(&mut off_out),
            (len - copied).min(1 << 30) as usize,
        ) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source shorter than expected",
                ));
            }
            Ok(n) => copied += n as u64,
            // EXDEV, ENOSYS, EINVAL, EOPNOTSUPP...: fall back to plain I/O.
            Err(_) if copied == 0 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(CopyMethod::CopyFileRange))
}

fn ficlonerange(src: &File, src_off: u64, len: u64, dst: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct FileCloneRange {
        src_fd: i64,
        src_offset: u64,
        src_length: u64,
        dest_offset: u64,
    }
    // _IOW(0x94, 13, struct file_clone_range)
    const FICLONERANGE: libc::c_ulong = 0x4020_940d;
    let arg = FileCloneRange {
        src_fd: src.as_raw_fd() as i64,
        src_offset: src_off,
        src_length: len,
        dest_offset: 0,
    };
    // SAFETY: FICLONERANGE reads a file_clone_range struct that lives for the call.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONERANGE, &arg) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A nanosecond time as a `timespec`.
pub fn timespec(t: i128) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: t.div_euclid(1_000_000_000) as i64,
        tv_nsec: t.rem_euclid(1_000_000_000) as _,
    }
}

/// Fills `buf` from the kernel's random source; `false` if it could not.
pub fn random_bytes(buf: &mut [u8]) -> bool {
    let want = buf.len();
    rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty()).is_ok_and(|n| n == want)
}

/// Makes `at` run `exe` (a masquerade link): a symlink.
pub fn link_program(exe: &Path, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(exe, at)
}

/// Whether an error is a dead mount's (its daemon gone: `ENOTCONN`).
pub fn is_disconnected(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTCONN)
}

/// Replaces this process with `cmd`; returns only the error of a failed start.
pub fn exec(cmd: &mut std::process::Command) -> io::Error {
    std::os::unix::process::CommandExt::exec(cmd)
}

/// The exit code a shell would show for `status` (128 + signal for a killed child).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Exits with the child's status; a child killed by a signal kills us with the same signal.
pub fn exit_like(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        // SAFETY: restoring the default action and raising a signal at ourselves.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::process::exit(status.code().unwrap_or(1));
}

/// Starts `cmd` in a session of its own: a Ctrl-C of the build does not reach it.
pub fn spawn_detached(cmd: &mut std::process::Command) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    cmd.spawn()
}

/// A directory a long-lived process can sit in without holding a build's directory busy.
pub fn neutral_dir() -> &'static Path {
    Path::new("/")
}

/// The signals that stop the daemon: SIGTERM and SIGINT.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn new() -> io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for one; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit and returns the limit
/// now in force. The common soft limit of 1,024 is far below what a daemon serving
/// mounts of large workspaces may need; the hard limit is the administrator's word.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    // "Unlimited" is not accepted for open files: the kernel's ceiling is nr_open.
    let max = cur.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    let soft = cur.current.unwrap_or(max);
    if soft >= max {
        return soft;
    }
    let new = Rlimit {
        current: Some(max),
        maximum: cur.maximum,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => max,
        Err(_) => soft,
    }
}

/// [`file_stat`] of an open file whose metadata the caller has (`meta`): on Unix the
/// metadata says everything.
pub fn handle_stat(_file: &File, meta: &std::fs::Metadata) -> io::Result<FileStat> {
    Ok(file_stat(meta))
}

/// [`file_stat`] of the file at `path` (following symlinks), whose metadata the caller may
/// have already.
pub fn path_stat(path: &Path, meta: Option<&std::fs::Metadata>) -> io::Result<FileStat> {
    match meta {
        Some(m) => Ok(file_stat(m)),
        None => Ok(file_stat(&std::fs::metadata(path)?)),
    }
}

/// [`file_stat`] of the entry at `path` itself (a symlink is not followed), whose
/// `symlink_metadata` the caller has.
pub fn link_stat(_path: &Path, meta: &std::fs::Metadata) -> io::Result<FileStat> {
    Ok(file_stat(meta))
}

/// Whether `at` is a masquerade link to `exe` already (see [`link_program`]).
pub fn runs_program(at: &Path, exe: &Path) -> bool {
    std::fs::read_link(at).is_ok_and(|t| t == exe)
}

/// Whether a path, as this process resolves it, names something of the *reading process*
/// rather than a file every process sees alike: `/proc` (`/proc/self/fd/0`, whatever a
/// link into it says) and the descriptor aliases `/dev/fd/N`, `/dev/stdin`...
pub fn is_process_relative(path: &Path) -> bool {
    path.starts_with("/proc")
        || path.starts_with("/dev/fd")
        || ["/dev/stdin", "/dev/stdout", "/dev/stderr"]
            .iter()
            .any(|p| path == Path::new(p))
}

/// Whether metadata (of an entry itself, not followed) is of a file on procfs.
pub fn on_procfs(meta: &std::fs::Metadata) -> bool {
    static PROC_DEV: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let dev = *PROC_DEV.get_or_init(|| {
        std::fs::symlink_metadata("/proc/self")
            .ok()
            .map(|m| m.dev())
    });
    dev == Some(meta.dev())
}

/// Whether stderr is a terminal (the compilers' colour choice depends on it).
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// This process's file-creation mask.
pub fn umask() -> u32 {
    // SAFETY: umask cannot fail; the mask is put back at once (the wrapper has no other
    // thread yet that could create a file in between).
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

/// Whether stdout and stderr are open descriptors.
pub fn std_streams_open() -> bool {
    // SAFETY: F_GETFD only asks about the descriptor.
    unsafe { libc::fcntl(1, libc::F_GETFD) != -1 && libc::fcntl(2, libc::F_GETFD) != -1 }
}
