//! Mount-table helpers: finding zcfs mounts, cleaning stale ones, unmounting, and naming the
//! processes that keep a mount busy.

use std::io;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// A FUSE mount's owner (`user_id=` in its options).
    pub user_id: Option<u32>,
}

/// The source (`fsname`) zcfs gives its mounts: `zcfs@<socket of the serving daemon>`, so
/// that any zcfs command can find who serves a mount (another cache dir's daemon too).
pub fn source_for(socket: &Path) -> String {
    let s = socket.to_string_lossy();
    // The fsname is a mount option: a comma or a space would not survive.
    if s.contains([',', ' ', '\\']) {
        "zcfs".to_string()
    } else {
        format!("zcfs@{s}")
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 5 || fields.len() < sep + 3 {
            continue;
        }
        let user_id = fields
            .get(sep + 3)
            .and_then(|opts| opts.split(',').find_map(|o| o.strip_prefix("user_id=")))
            .and_then(|v| v.parse().ok());
        out.push(MountEntry {
            mount_point: PathBuf::from(unescape(fields[4])),
            fstype: fields[sep + 1].to_string(),
            source: unescape(fields[sep + 2]),
            user_id,
        });
    }
    out
}

pub fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

impl MountEntry {
    /// A zcfs FUSE mount. The kernel reports fstype `fuse.zcfs` when the subtype is set,
    /// and plain `fuse` for a direct mount(2) without it; the source is always `zcfs`.
    pub fn is_zcfs(&self) -> bool {
        self.fstype == "fuse.zcfs"
            || (self.fstype == "fuse"
                && (self.source == "zcfs" || self.source.starts_with("zcfs@")))
    }

    /// The socket of the daemon that serves this mount, if its source names it.
    pub fn socket(&self) -> Option<PathBuf> {
        self.source
            .strip_prefix("zcfs@")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// Whether this process's user owns the mount.
    pub fn is_mine(&self) -> bool {
        self.user_id
            .is_none_or(|u| u == rustix::process::getuid().as_raw())
    }
}

/// Every zcfs mount of this user, in mount order.
pub fn my_zcfs_mounts() -> Vec<MountEntry> {
    mounts()
        .into_iter()
        .filter(|m| m.is_zcfs() && m.is_mine())
        .collect()
}

/// zcfs mounts at exactly `dir`, innermost last.
pub fn zcfs_mounts_at(dir: &Path) -> Vec<MountEntry> {
    mounts()
        .into_iter()
        .filter(|m| m.mount_point == dir && m.is_zcfs())
        .collect()
}

/// Whether a FUSE mount at `dir` is dead (its server is gone: ENOTCONN). Probes with
/// `statfs`, which FUSE never answers from the kernel's caches (a `stat` may be).
pub fn is_stale(dir: &Path) -> bool {
    matches!(rustix::fs::statfs(dir), Err(rustix::io::Errno::NOTCONN))
}

/// Unmounts, with MNT_DETACH if `lazy`. Falls back to `fusermount3 -u` when not permitted.
pub fn unmount(dir: &Path, lazy: bool) -> io::Result<()> {
    let flags = if lazy {
        rustix::mount::UnmountFlags::DETACH
    } else {
        rustix::mount::UnmountFlags::empty()
    };
    match rustix::mount::unmount(dir, flags) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::PERM) => {
            let mut cmd = std::process::Command::new("fusermount3");
            cmd.arg("-u").arg("-q");
            if lazy {
                cmd.arg("-z");
            }
            let st = cmd.arg(dir).status()?;
            if st.success() {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes every dead zcfs mount stacked at `dir`. Returns how many were removed.
pub fn clean_stale(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    while is_stale(dir) && !zcfs_mounts_at(dir).is_empty() && n < 16 {
        unmount(dir, true)?;
        n += 1;
    }
    Ok(n)
}

/// A process holding something under a mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    /// What it holds: cwd, root, exe, an open file, a mapping.
    pub what: String,
}

/// Processes (other than us) with their cwd, root, executable, an open file or a mapping
/// under `dir`.
pub fn holders(dir: &Path) -> Vec<Holder> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let under = |p: &Path| p.starts_with(dir);
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = e.path();
        let command = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut what = None;
        for link in ["cwd", "root", "exe"] {
            if let Ok(t) = std::fs::read_link(base.join(link))
                && under(&t)
            {
                what = Some(format!("{link} {}", t.display()));
                break;
            }
        }
        if what.is_none()
            && let Ok(fds) = std::fs::read_dir(base.join("fd"))
        {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path())
                    && under(&t)
                {
                    what = Some(format!("open file {}", t.display()));
                    break;
                }
            }
        }
        if what.is_none()
            && let Ok(maps) = std::fs::read_to_string(base.join("maps"))
            && let Some(p) = maps
                .lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .map(Path::new)
                .find(|p| under(p))
        {
            what = Some(format!("mapping {}", p.display()));
        }
        if let Some(what) = what {
            out.push(Holder { pid, command, what });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_escapes_and_optional_fields() {
        let text = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - fuse.zcfs zcfs-abc rw,user_id=0\n\
                    37 35 98:1 / /tmp rw shared:2 - tmpfs tmpfs rw\n\
                    bad line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].fstype, "fuse.zcfs");
        assert_eq!(m[0].source, "zcfs-abc");
        assert_eq!(m[0].user_id, Some(0));
        assert_eq!(m[1].fstype, "tmpfs");
        assert_eq!(m[1].user_id, None);
        let z = parse_mountinfo(
            "40 35 0:50 / /w/target rw - fuse.zcfs zcfs@/run/zcfs/zcfs-1.sock rw,user_id=1000,group_id=1000\n",
        );
        assert!(z[0].is_zcfs());
        assert_eq!(z[0].socket(), Some(PathBuf::from("/run/zcfs/zcfs-1.sock")));
        assert_eq!(z[0].user_id, Some(1000));
        assert_eq!(source_for(Path::new("/a,b/s")), "zcfs");
    }

    #[test]
    fn our_own_mounts_are_readable() {
        assert!(!mounts().is_empty());
        assert!(!is_stale(Path::new("/")));
        assert!(holders(Path::new("/nonexistent-zcfs-dir")).is_empty());
    }
}
