//! File timestamps as each filesystem keeps them.
//!
//! Two decisions compare a file's mtime or ctime with a moment: a compile's result is not
//! stored if an input is "too new" (modified at or after the compile started: the stored
//! digest might not be what the compiler read, spec D3), and a hash-cache record is
//! trusted only if it was taken after the file's last possible change within the same
//! timestamp (docs/rustc.md). Both assumed nanosecond timestamps on the local kernel clock.
//! Filesystems differ: ext4 with 128-byte inodes keeps seconds, FAT two seconds, network
//! filesystems take times from the server's clock.
//!
//! So each filesystem (by `st_dev`) is measured once, from a directory on it: an unnamed
//! temporary file (`O_TMPFILE`, never visible, nothing to clean up) is given a time with
//! every digit set and read back, which shows the granularity the filesystem keeps. The file
//! stays open: stamping it with "now" gives the current time *as that filesystem records
//! it*, truncated the same way its files' times are (git's rule for racy index entries:
//! compare against a stamp on the same filesystem). Where no temporary file can be made
//! (a directory zcfs may not write, a filesystem without `O_TMPFILE`), a granularity of two
//! seconds is assumed; network filesystems (by `statfs` type) get a further margin for
//! clock skew.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::fsutil::{NanoTime, mtime_ns};
use crate::os::{DirHandle, NoUnnamed};

/// `st_dev` reported for projected files (they have no lower inode): zcfs's own,
/// immutable, their times set by the daemon from the kernel clock.
pub const PROJECTED_DEV: u64 = u64::MAX;

/// Assumed when a filesystem cannot be measured: FAT's two seconds, the coarsest common one.
pub const UNMEASURED_GRANULARITY: NanoTime = 2_000_000_000;
/// Added for filesystems whose times come from another machine's clock.
pub const REMOTE_SKEW: NanoTime = 10_000_000_000;

/// What zcfs knows about one filesystem's timestamps.
#[derive(Debug)]
pub struct DevClock {
    /// The granularity of its timestamps, in ns.
    pub granularity: NanoTime,
    /// Its times come from another machine (NFS, SMB, 9p, FUSE, ...).
    pub remote: bool,
    /// An unnamed file on it, for stamps.
    stamp: Option<File>,
}

impl DevClock {
    /// How far from a moment a timestamp on this filesystem can be and still be the same
    /// moment: its granularity, and for a remote filesystem a margin for clock skew.
    pub fn slack(&self) -> NanoTime {
        self.granularity + if self.remote { REMOTE_SKEW } else { 0 }
    }

    /// "Now" as this filesystem records it, if it can be stamped.
    pub fn stamp(&self) -> Option<NanoTime> {
        crate::fsutil::stamp_now(self.stamp.as_ref()?).ok()
    }

    fn unmeasured(remote: bool) -> DevClock {
        DevClock {
            granularity: UNMEASURED_GRANULARITY,
            remote,
            stamp: None,
        }
    }
}

/// Per-device timestamp facts, learned once per device.
#[derive(Default)]
pub struct FsClocks {
    devs: Mutex<HashMap<u64, Arc<DevClock>>>,
    /// Devices not measured yet because their directories seen so far were not writable.
    tries: Mutex<HashMap<u64, u32>>,
}

/// Unwritable directories tried on a device before it is taken as unmeasurable.
const MAX_TRIES: u32 = 16;

impl FsClocks {
    pub fn new() -> FsClocks {
        FsClocks::default()
    }

    /// What is known of device `dev`, if it was measured already.
    pub fn known(&self, dev: u64) -> Option<Arc<DevClock>> {
        self.devs.lock().get(&dev).cloned()
    }

    /// The slack of device `dev`: measured, or the unmeasured default. Projected files
    /// (zcfs's own, immutable, times set by the daemon from the kernel clock) have none.
    pub fn slack(&self, dev: u64) -> NanoTime {
        if dev == PROJECTED_DEV {
            return 1;
        }
        self.known(dev)
            .map(|c| c.slack())
            .unwrap_or(UNMEASURED_GRANULARITY)
    }

    /// Measures device `dev` from the directory `dir` (any fd of a directory on it, `O_PATH`
    /// is fine) unless it is known. `dir` is only called when needed.
    pub fn learn(&self, dev: u64, dir: impl FnOnce() -> Option<DirHandle>) -> Arc<DevClock> {
        if let Some(c) = self.known(dev) {
            return c;
        }
        let clock = match dir() {
            Some(fd) if fd_dev(&fd) == Some(dev) => match measure(&fd) {
                Ok(c) => Arc::new(c),
                // A directory zcfs may not write (a system dir): another one on the same
                // filesystem may do, up to a few tries before it is taken as unmeasurable.
                Err(c) => {
                    let tried = {
                        let mut tries = self.tries.lock();
                        let n = tries.entry(dev).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let c = Arc::new(c);
                    if tried < MAX_TRIES {
                        // Not remembered: the next directory may do.
                        return c;
                    }
                    c
                }
            },
            // No directory on that device at hand: not remembered, try again next time.
            _ => return Arc::new(DevClock::unmeasured(false)),
        };
        self.devs.lock().entry(dev).or_insert(clock).clone()
    }

    /// Stamps on the given devices (those that can be stamped), for a compile's start.
    pub fn stamps(&self, devs: &[u64]) -> Vec<(u64, NanoTime)> {
        let mut out = Vec::new();
        for d in devs {
            if out.iter().any(|(x, _)| x == d) {
                continue;
            }
            if let Some(t) = self.known(*d).and_then(|c| c.stamp()) {
                out.push((*d, t));
            }
        }
        out
    }
}

fn fd_dev(fd: &DirHandle) -> Option<u64> {
    crate::os::dir_device(fd)
}

/// When a compile started: the kernel clock, and stamps on the filesystems its inputs are
/// expected on (the checkout's, the target dir's).
#[derive(Debug, Clone, Default)]
pub struct CompileStart {
    pub time: NanoTime,
    pub stamps: Vec<(u64, NanoTime)>,
}

impl CompileStart {
    /// See [`too_new`].
    pub fn too_new(&self, time: NanoTime, dev: u64, clocks: &FsClocks) -> bool {
        too_new(time, dev, self.time, &self.stamps, clocks)
    }
}

/// Whether a timestamp is too new for a compile that started at `start` (kernel clock) with
/// `stamps` taken on some devices at that moment: on a stamped device, not older than the
/// stamp (the same filesystem's "now", truncated as its files' times are); elsewhere, within
/// the device's slack of the start.
pub fn too_new(
    time: NanoTime,
    dev: u64,
    start: NanoTime,
    stamps: &[(u64, NanoTime)],
    clocks: &FsClocks,
) -> bool {
    match stamps.iter().find(|(d, _)| *d == dev) {
        Some((_, stamp)) => time >= *stamp,
        None => time.saturating_add(clocks.slack(dev)) > start,
    }
}

/// Measures the filesystem of directory `dir`. `Err`: not from this directory (it may not
/// be written); the filesystem itself may still be measurable from another one.
fn measure(dir: &DirHandle) -> Result<DevClock, DevClock> {
    let remote = crate::os::is_remote_fs(dir);
    let file = match crate::os::unnamed_file_in(dir) {
        Ok(f) => f,
        Err(NoUnnamed::Denied) => return Err(DevClock::unmeasured(remote)),
        // No unnamed files on this filesystem, or read-only (nothing on it changes).
        Err(NoUnnamed::Unsupported) => return Ok(DevClock::unmeasured(remote)),
    };
    Ok(match granularity(&file) {
        Some(g) => DevClock {
            granularity: g,
            remote,
            stamp: Some(file),
        },
        None => DevClock::unmeasured(remote),
    })
}

/// The timestamp granularity of a file's filesystem: an odd second with every nanosecond
/// digit set is written and read back.
fn granularity(file: &File) -> Option<NanoTime> {
    const SEC: i64 = 1_700_000_001;
    const NSEC: i64 = 987_654_321;
    let wrote = SEC as NanoTime * 1_000_000_000 + NSEC as NanoTime;
    crate::fsutil::set_times(file, wrote).ok()?;
    let back = mtime_ns(&file.metadata().ok()?);
    let mut g: NanoTime = 1;
    while g <= 2_000_000_000 {
        if wrote - wrote.rem_euclid(g) == back {
            return Some(g);
        }
        g = if g == 1_000_000_000 {
            2_000_000_000
        } else {
            g * 10
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(p: &std::path::Path) -> DirHandle {
        crate::os::open_dir(p).unwrap()
    }

    #[test]
    fn a_local_filesystem_is_measured_and_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = FsClocks::new();
        let dev = rustix::fs::stat(dir.path()).unwrap().st_dev;
        assert_eq!(clocks.slack(dev), UNMEASURED_GRANULARITY);
        let c = clocks.learn(dev, || Some(dir_fd(dir.path())));
        // The test dir is on a filesystem with fine timestamps (ext4, tmpfs, ...).
        assert!(c.granularity <= 1_000, "{c:?}");
        assert!(clocks.known(dev).is_some());
        let stamps = clocks.stamps(&[dev, dev]);
        assert_eq!(stamps.len(), 1);
        let f = dir.path().join("x");
        std::fs::write(&f, b"x").unwrap();
        let m = mtime_ns(&std::fs::metadata(&f).unwrap());
        assert!(
            m >= stamps[0].1,
            "a file written after the stamp is not older"
        );
        assert!(too_new(m, dev, 0, &stamps, &clocks));
        assert!(!too_new(stamps[0].1 - 1, dev, 0, &stamps, &clocks));
        // An unstamped, unmeasured device: two seconds of slack.
        assert!(too_new(10_000_000_000, 12345, 11_000_000_000, &[], &clocks));
        assert!(!too_new(8_000_000_000, 12345, 11_000_000_000, &[], &clocks));
    }

    #[test]
    fn a_directory_on_another_device_teaches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = FsClocks::new();
        let c = clocks.learn(u64::MAX - 7, || Some(dir_fd(dir.path())));
        assert_eq!(c.granularity, UNMEASURED_GRANULARITY);
        assert!(clocks.known(u64::MAX - 7).is_none());
    }

    #[test]
    fn coarse_filesystems_are_measured_coarse() {
        // ext4 with 128-byte inodes keeps whole seconds. Mounting needs root: CI runs the
        // tests as root, so there this test runs; elsewhere it says it was skipped.
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to mount a filesystem with coarse timestamps");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("coarse.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let mkfs = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&img)
            .output()
            .expect("mkfs.ext4 (e2fsprogs, installed by scripts/install-deps.sh)");
        assert!(
            mkfs.status.success(),
            "{}",
            String::from_utf8_lossy(&mkfs.stderr)
        );
        let mounted = std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount -o loop as root");
        let clocks = FsClocks::new();
        let dev = rustix::fs::stat(&mnt).unwrap().st_dev;
        let c = clocks.learn(dev, || Some(dir_fd(&mnt)));
        let stamp = c.stamp();
        let _ = std::process::Command::new("umount").arg(&mnt).status();
        assert_eq!(c.granularity, 1_000_000_000, "{c:?}");
        assert_eq!(
            stamp.unwrap() % 1_000_000_000,
            0,
            "stamps are truncated like file times"
        );
    }
}
