//! Small filesystem helpers: the kernel's file clock, reflink-or-copy, atomic publication.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::os::FileAt;

/// A file timestamp in nanoseconds since the epoch, as the kernel records it.
pub use crate::os::NanoTime;

pub fn mtime_ns(meta: &fs::Metadata) -> NanoTime {
    crate::os::file_stat(meta).mtime
}

pub fn ctime_ns(meta: &fs::Metadata) -> NanoTime {
    crate::os::file_stat(meta).ctime
}

/// A nanosecond time as a `SystemTime` (times before the epoch included).
pub fn system_time(t: NanoTime) -> std::time::SystemTime {
    let epoch = std::time::UNIX_EPOCH;
    let d = std::time::Duration::new(
        t.unsigned_abs().div_euclid(1_000_000_000) as u64,
        t.unsigned_abs().rem_euclid(1_000_000_000) as u32,
    );
    if t >= 0 { epoch + d } else { epoch - d }
}

/// A file whose mtime is stamped by the kernel on demand: the one clock that cargo compares
/// (spec M4). `SystemTime::now()` runs ahead of the kernel's coarse file clock by up to a
/// tick, so it must never be used for timestamps that cargo will compare.
pub struct KernelClock {
    file: File,
}

impl KernelClock {
    /// Opens (creating) the stamp file at `path`.
    pub fn open(path: &Path) -> io::Result<KernelClock> {
        Ok(KernelClock {
            file: open_private(path)?,
        })
    }

    /// The kernel's file clock, now.
    pub fn now(&self) -> io::Result<NanoTime> {
        stamp_now(&self.file)
    }
}

/// Opens (creating, keeping its bytes) a file of zcfs's own, readable and writable by this
/// user only.
pub fn open_private(path: &Path) -> io::Result<File> {
    crate::os::private_file(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(path)
}

/// Sets a file's atime and mtime to the kernel's "now" and returns that mtime.
pub fn stamp_now(file: &File) -> io::Result<NanoTime> {
    crate::os::stamp_now(file)
}

/// Sets atime and mtime of an open file.
pub fn set_times(file: &File, mtime: NanoTime) -> io::Result<()> {
    let t = system_time(mtime);
    file.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
}

pub use crate::os::CopyMethod;

/// Copies `len` bytes at `src_off` of `src` into the start of the empty file `dst`.
///
/// Tries a reflink first (FICLONERANGE). Reflinks need block-aligned ranges, so the caller
/// passes `padded_len`: the length rounded up to the source's alignment, whose tail is known
/// to be padding; the clone covers the padded range and `dst` is then cut to `len`. Falls
/// back to `copy_file_range`, then to plain reads and writes.
pub fn clone_or_copy(
    src: &File,
    src_off: u64,
    len: u64,
    padded_len: u64,
    dst: &File,
) -> io::Result<CopyMethod> {
    if len == 0 {
        return Ok(CopyMethod::ReadWrite);
    }
    let clone_len =
        (src_off.is_multiple_of(4096) && padded_len.is_multiple_of(4096) && padded_len >= len)
            .then_some(padded_len);
    if let Some(m) = crate::os::kernel_copy(src, src_off, len, clone_len, dst)? {
        return Ok(m);
    }
    let mut copied = 0u64;
    while copied < len {
        let mut buf = vec![0u8; (len - copied).min(1 << 20) as usize];
        src.read_exact_at(&mut buf, src_off + copied)?;
        dst.write_all_at(&buf, copied)?;
        copied += buf.len() as u64;
    }
    Ok(CopyMethod::ReadWrite)
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replacing(path, bytes, true)
}

/// [`write_atomic`], with the fsync only if `durable` (a file whose loss in a crash costs
/// nothing but a refetch: readers see the old or the new content, or, after a crash, a
/// file they must be able to reject).
pub fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// fsyncs a directory, so that a rename into it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Joins a possibly relative path onto `base`; absolute paths stay as they are.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Checks that `path` (absolute) is a regular file that any process resolves alike, before
/// the daemon reads it on a caller's behalf. A caller's `/dev/stdin`, `/proc/self/fd/N` or
/// a link to them would name the *daemon's* descriptors, and a FIFO, socket or device would
/// be consumed or block: those are refused (the compiler then reads them itself). Symlinks
/// are followed one by one so that none leads through `/proc` unseen.
pub fn check_shared_file(path: &Path) -> Result<(), String> {
    use crate::os::{is_process_relative, on_procfs};
    let err = |p: &Path, what: &str| format!("{}: {what}", p.display());
    if !is_process_relative(path)
        && let Ok(m) = fs::symlink_metadata(path)
        && m.is_file()
        && !on_procfs(&m)
    {
        return Ok(());
    }
    // The slow path: resolve each component, refusing any step into the process's names.
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = path
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match std::path::Path::new(&c).components().next() {
            Some(std::path::Component::CurDir) => continue,
            Some(std::path::Component::ParentDir) => {
                at.pop();
                continue;
            }
            _ => at.push(&c),
        }
        if is_process_relative(&at) {
            return Err(err(path, "names the reading process's own files"));
        }
        let m = fs::symlink_metadata(&at).map_err(|e| err(path, &e.to_string()))?;
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(err(path, "too many levels of symbolic links"));
            }
            let target = fs::read_link(&at).map_err(|e| err(path, &e.to_string()))?;
            at.pop();
            if target.is_absolute() {
                at = PathBuf::new();
            }
            for (i, t) in target.components().enumerate() {
                todo.insert(i, t.as_os_str().to_os_string());
            }
            continue;
        }
        if on_procfs(&m) {
            return Err(err(path, "names the reading process's own files"));
        }
        if todo.is_empty() && !m.is_file() {
            return Err(err(path, "not a regular file"));
        }
    }
    Ok(())
}

/// Removes a file, ignoring "not found".
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn kernel_clock_is_monotonic_and_matches_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let clock = KernelClock::open(&dir.path().join("clock")).unwrap();
        let a = clock.now().unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        let created = mtime_ns(&f.metadata().unwrap());
        let b = clock.now().unwrap();
        assert!(a <= created, "a file made after a stamp is not older");
        assert!(created <= b, "a stamp taken after a file is not older");
    }

    #[test]
    fn copy_range_with_padding() {
        let mut src = tempfile::tempfile().unwrap();
        let mut data = vec![0u8; 8192];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i % 13) as u8;
        }
        src.write_all(&data).unwrap();
        let dst = tempfile::tempfile().unwrap();
        let m = clone_or_copy(&src, 4096, 1000, 4096, &dst).unwrap();
        let mut out = vec![0u8; 1000];
        dst.read_exact_at(&mut out, 0).unwrap();
        assert_eq!(out, &data[4096..5096]);
        assert_eq!(dst.metadata().unwrap().len(), 1000, "via {m:?}");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn shared_files_are_regular_and_not_the_readers_own() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        fs::write(d.join("a.rsp"), "-c").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("../a.rsp", d.join("sub/l.rsp")).unwrap();
        assert_eq!(check_shared_file(&d.join("a.rsp")), Ok(()));
        assert_eq!(check_shared_file(&d.join("sub/l.rsp")), Ok(()));
        assert_eq!(check_shared_file(&d.join("sub/../a.rsp")), Ok(()));
        // The reader's own descriptors, directly or through links.
        for p in [
            "/dev/stdin",
            "/proc/self/fd/0",
            "/dev/fd/0",
            "/proc/self/status",
        ] {
            assert!(check_shared_file(Path::new(p)).is_err(), "{p}");
        }
        std::os::unix::fs::symlink("/dev/stdin", d.join("in.rsp")).unwrap();
        std::os::unix::fs::symlink("/proc/self", d.join("me")).unwrap();
        assert!(check_shared_file(&d.join("in.rsp")).is_err());
        assert!(check_shared_file(&d.join("me/status")).is_err());
        // Not regular: a FIFO (reading it would block or consume it), a directory, nothing.
        let fifo = d.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(check_shared_file(&fifo).is_err());
        assert!(check_shared_file(&d.join("sub")).is_err());
        assert!(check_shared_file(&d.join("missing")).is_err());
        std::os::unix::fs::symlink("nowhere", d.join("dangling")).unwrap();
        assert!(check_shared_file(&d.join("dangling")).is_err());
    }
}
