//! Directory change notifications (inotify on Linux; elsewhere none: the caller checks
//! files as before) and the two facts a watcher needs beside them: whether the mount table
//! changed, and whether a filesystem's changes all pass through this kernel.

/// What the kernel reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyEvent<'a> {
    /// Something happened to the entry `name` of watched directory `wd` (created, deleted,
    /// renamed from or to, written, attributes changed).
    Child { wd: i32, name: &'a [u8] },
    /// The watched directory itself changed (attributes), went away, or its filesystem was
    /// unmounted. `gone`: the watch no longer exists.
    Dir { wd: i32, gone: bool },
    /// Events were lost.
    Overflow,
}

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use super::NotifyEvent;
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use std::fs::File;
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::Path;

    /// What a watch reports: every change to an entry's name or content, and to the
    /// directory itself. Only a directory, never through a symlink.
    fn watch_flags() -> WatchFlags {
        WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::MODIFY
            | WatchFlags::ATTRIB
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW
    }

    /// An inotify instance (non-blocking) and the mount table's change signal.
    pub struct Notifier {
        fd: OwnedFd,
        /// `/proc/self/mountinfo`: polls with `POLLPRI` when a mount is added or removed.
        mounts: File,
        buf: Vec<MaybeUninit<u8>>,
    }

    impl Notifier {
        pub fn new() -> io::Result<Notifier> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
            let mounts = File::open("/proc/self/mountinfo")?;
            let mut n = Notifier {
                fd,
                mounts,
                buf: vec![MaybeUninit::uninit(); 64 << 10],
            };
            // The first poll reports a change: take it now.
            n.mounts_changed();
            Ok(n)
        }

        /// Watches the directory at `path` (not through a symlink at its last component).
        pub fn watch_dir(&self, path: &Path) -> io::Result<i32> {
            Ok(inotify::add_watch(&self.fd, path, watch_flags())?)
        }

        /// Watches the file `file` is open on (by its inode: what is written through any
        /// of its names, and a new name or attribute, is reported).
        pub fn watch_file(&self, file: &File) -> io::Result<i32> {
            let at = format!("/proc/self/fd/{}", file.as_raw_fd());
            let flags = WatchFlags::MODIFY
                | WatchFlags::ATTRIB
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF;
            Ok(inotify::add_watch(&self.fd, at.as_str(), flags)?)
        }

        pub fn unwatch(&self, wd: i32) {
            let _ = inotify::remove_watch(&self.fd, wd);
        }

        /// Whether the mount table changed since the last call.
        pub fn mounts_changed(&mut self) -> bool {
            let mut p = libc::pollfd {
                fd: self.mounts.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no timeout.
            let n = unsafe { libc::poll(&mut p, 1, 0) };
            n != 0 && (p.revents & (libc::POLLPRI | libc::POLLERR)) != 0
        }

        /// Hands every queued event to `f`; returns when none is left. An error of the
        /// read itself is reported as lost events.
        pub fn drain(&mut self, mut f: impl FnMut(NotifyEvent<'_>)) {
            let mut reader = inotify::Reader::new(&self.fd, &mut self.buf);
            loop {
                let e = match reader.next() {
                    Ok(e) => e,
                    Err(e) if e == rustix::io::Errno::AGAIN => return,
                    Err(e) if e == rustix::io::Errno::INTR => continue,
                    Err(_) => {
                        f(NotifyEvent::Overflow);
                        return;
                    }
                };
                let flags = e.events();
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    f(NotifyEvent::Overflow);
                    continue;
                }
                let gone = flags.contains(ReadFlags::IGNORED);
                match e.file_name() {
                    Some(name) if !gone && !name.to_bytes().is_empty() => f(NotifyEvent::Child {
                        wd: e.wd(),
                        name: name.to_bytes(),
                    }),
                    _ => f(NotifyEvent::Dir { wd: e.wd(), gone }),
                }
            }
        }
    }

    /// Opens what is at `path` itself (a symlink is not followed) without reading it: its
    /// metadata, and [`Notifier::watch_file`].
    pub fn open_entry(path: &Path) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    /// Filesystems whose every change is made through this kernel's VFS, so a watch sees
    /// it, and whose names match exactly unless a directory's flags say otherwise: local
    /// disk filesystems, tmpfs and overlayfs (whose lower layers must not change under it).
    /// Network, FUSE, case-insensitive and other filesystems are not. Not xfs either: one
    /// made with `-n version=ci` matches names without regard to case, and no flag of a
    /// directory tells.
    const LOCAL_TYPES: &[i64] = &[
        0xEF53,      // ext2/3/4
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58f6, // ramfs
        0x794c_7630, // overlayfs
        0xF2F5_2010, // f2fs
        0xca45_1a4e, // bcachefs
    ];

    /// `FS_CASEFOLD_FL`: names in the directory match without regard to case, so an event
    /// may name an entry otherwise than it was asked for. `FS_ENCRYPT_FL`: names in the
    /// directory resolve otherwise once its key is added, without an event.
    const CASEFOLD: u32 = 0x4000_0000;
    const ENCRYPT: u32 = 0x0000_0800;

    /// Whether changes in the directory at `path` can all be watched: every change to its
    /// filesystem passes through this kernel, and its names always match exactly (not a
    /// case-folding or an encrypted directory).
    pub fn watchable_dir(path: &Path) -> bool {
        let local = rustix::fs::statfs(path)
            .map(|s| LOCAL_TYPES.contains(&crate::os::fs_type(&s)))
            .unwrap_or(false);
        local
            && match File::open(path) {
                // Filesystems without the flags ioctl have neither.
                Ok(f) => rustix::fs::ioctl_getflags(&f)
                    .map_or(true, |fl| fl.bits() & (CASEFOLD | ENCRYPT) == 0),
                Err(_) => false,
            }
    }
}

#[cfg(not(target_os = "linux"))]
pub use other::*;

#[cfg(not(target_os = "linux"))]
mod other {
    use super::NotifyEvent;
    use std::io;
    use std::path::Path;

    /// No notifications on this OS: [`Notifier::new`] fails and files are checked as before.
    pub struct Notifier(());

    impl Notifier {
        pub fn new() -> io::Result<Notifier> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no directory watcher on this OS",
            ))
        }
        pub fn watch_dir(&self, _path: &Path) -> io::Result<i32> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn watch_file(&self, _file: &std::fs::File) -> io::Result<i32> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn unwatch(&self, _wd: i32) {}
        pub fn mounts_changed(&mut self) -> bool {
            true
        }
        pub fn drain(&mut self, mut f: impl FnMut(NotifyEvent<'_>)) {
            f(NotifyEvent::Overflow)
        }
    }

    pub fn watchable_dir(_path: &Path) -> bool {
        false
    }

    pub fn open_entry(_path: &Path) -> io::Result<std::fs::File> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
