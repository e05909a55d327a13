//! FUSE as a mount backend: the POSIX overlay ([`Vfs`]) over a directory, served by a FUSE
//! session, and the kernel's mount table for stale and foreign mounts (`mountinfo.rs`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::mountinfo;
use crate::fsutil::KernelClock;
use crate::mount::contract::{AttachSpec, Attached, Channel, ForeignMount, ReleaseError, Session};
use crate::mount::overlay::Vfs;
use crate::store::pack::PackSource;

pub struct FuseChannel;

impl Session for super::FuseSession {
    fn running(&self) -> bool {
        super::FuseSession::running(self)
    }

    fn join(self: Box<Self>, max: Duration) -> bool {
        // The session thread ends when the kernel closes the connection.
        let (tx, rx) = std::sync::mpsc::channel();
        let bg = self.bg;
        std::thread::spawn(move || {
            let _ = bg.join();
            let _ = tx.send(());
        });
        rx.recv_timeout(max).is_ok()
    }
}

impl Channel for FuseChannel {
    fn name(&self) -> &'static str {
        "FUSE"
    }

    fn clean_stale(&self, dir: &Path) -> std::io::Result<usize> {
        mountinfo::clean_stale(dir)
    }

    fn is_stale(&self, dir: &Path) -> bool {
        mountinfo::is_stale(dir)
    }

    fn zcfs_mounts_at(&self, dir: &Path) -> Vec<ForeignMount> {
        mountinfo::zcfs_mounts_at(dir)
            .iter()
            .map(|m| ForeignMount {
                socket: m.socket(),
                mine: m.is_mine(),
            })
            .collect()
    }

    fn my_mounts(&self) -> Vec<(PathBuf, ForeignMount)> {
        mountinfo::my_zcfs_mounts()
            .into_iter()
            .map(|m| {
                let f = ForeignMount {
                    socket: m.socket(),
                    mine: true,
                };
                (m.mount_point, f)
            })
            .collect()
    }

    fn attach(&self, spec: &AttachSpec<'_>, packs: &dyn PackSource) -> anyhow::Result<Attached> {
        let dir = spec.dir;
        // The lower directory is opened before mounting: all real I/O goes through this fd.
        let lower: OwnedFd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("opening {}", dir.display()))?;
        let clock = KernelClock::open(&spec.state.join("clock"))?;
        let (vfs, report) = Vfs::new(lower, Some(&spec.state.join("journal")), clock, packs)
            .context("loading the projection journal")?;
        let vfs = Arc::new(vfs);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .clamp(4, 16);
        let session = super::mount(
            vfs.clone(),
            dir,
            &super::MountSpec {
                source: spec.source.clone(),
                allow_other: spec.allow_other,
                threads,
                passthrough: true,
            },
        )?;
        Ok(Attached {
            core: vfs,
            session: Box::new(session),
            report,
        })
    }

    fn release(&self, dir: &Path, lazy: bool) -> Result<(), ReleaseError> {
        match mountinfo::unmount(dir, lazy) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(ReleaseError::Busy),
            Err(e) => Err(ReleaseError::Io(e)),
        }
    }

    fn holders(&self, dir: &Path) -> Vec<String> {
        mountinfo::holders(dir)
            .iter()
            .map(|h| format!("{} ({}): {}", h.pid, h.command, h.what))
            .collect()
    }

    fn source_for(&self, socket: &Path) -> String {
        mountinfo::source_for(socket)
    }
}
