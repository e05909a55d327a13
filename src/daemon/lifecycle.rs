//! Daemon lifecycle helpers: the single-instance lock, log files, the lifecycle log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::paths::Paths;

/// Log files of former daemons kept in `logs/`.
const KEEP_LOGS: usize = 10;

/// Raises this process's limit of open files as far as allowed; returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    crate::os::raise_open_file_limit()
}

/// Opens (creating) a lock file.
pub fn open_lock(path: &Path) -> io::Result<File> {
    crate::fsutil::open_private(path)
}

/// Takes an exclusive flock, waiting up to `max`.
pub fn lock_within(file: &File, max: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + max;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Whether some process holds the lock at `path` (a live daemon).
pub fn is_locked(path: &Path) -> bool {
    let Ok(f) = open_lock(path) else { return false };
    f.try_lock_shared().is_err()
}

/// Opens this daemon's log file: `logs/daemon-<unix>-<pid>.log` under the cache dir, or in
/// the runtime dir if the cache dir is not writable. Removes all but the newest logs.
pub fn open_log(paths: &Paths) -> (File, PathBuf) {
    let name = format!(
        "daemon-{:012}-{}.log",
        crate::util::unix_now(),
        std::process::id()
    );
    let dir = paths.logs_dir();
    let primary = fs::create_dir_all(&dir).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&name))
    });
    match primary {
        Ok(f) => {
            prune_logs(&dir);
            (f, dir.join(name))
        }
        Err(_) => {
            let p = paths.runtime_dir.join(format!("zcfs-{}.{name}", paths.id));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .or_else(|_| {
                    let null = if cfg!(windows) { "NUL" } else { "/dev/null" };
                    OpenOptions::new().write(true).open(null)
                })
                .expect("the null device opens");
            (f, p)
        }
    }
}

fn prune_logs(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut logs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("daemon-") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(KEEP_LOGS);
    for p in &logs[..excess] {
        let _ = fs::remove_file(p);
    }
}

/// Appends a line to the lifecycle log (why each daemon started, was replaced, exited).
/// Falls back to the runtime dir's client log if the cache dir is read-only.
pub fn lifecycle(paths: &Paths, event: &str) {
    let line = format!(
        "{} pid={} version={} {event}\n",
        crate::util::fmt_utc(crate::util::unix_now()),
        std::process::id(),
        crate::version::current()
    );
    let write = |p: &Path| -> io::Result<()> {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?
            .write_all(line.as_bytes())
    };
    if write(&paths.lifecycle_log()).is_err() {
        let _ = write(&paths.client_log());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let a = open_lock(&p).unwrap();
        assert!(lock_within(&a, Duration::ZERO).unwrap());
        assert!(is_locked(&p));
        let b = open_lock(&p).unwrap();
        assert!(!lock_within(&b, Duration::from_millis(20)).unwrap());
        drop(a);
        assert!(!is_locked(&p));
        assert!(lock_within(&b, Duration::ZERO).unwrap());
    }
}
