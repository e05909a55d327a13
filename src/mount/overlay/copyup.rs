//! Copy-up: a projected file becomes a real file, for all its names (docs/mount.md,
//! "Copy-up"). The bytes are copied without the table lock, into an unnamed file in the
//! directory of the first name; under the lock the node is checked to be still the same
//! projection, the file is linked in under every name, and the node becomes real with the
//! same inode number. A node that changed meanwhile (copied up by another request, removed)
//! makes the copy be thrown away.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, Mode, Timestamps};
use tracing::{debug, warn};

use super::journal::Record;
use super::table::{Content, NodeKind};
use super::*;
use crate::os::timespec;

impl Vfs {
    /// Turns the projected file `ino` into a real file (a no-op if it is real already).
    /// `truncate`: the caller truncates it anyway, so no byte is copied.
    pub(super) fn copy_up(&self, ino: Ino, truncate: bool) -> VResult<()> {
        // A concurrent change can make a copy useless; a few tries, then give up.
        for _ in 0..8 {
            let (proj, dir) = {
                let t = self.table.lock();
                let f = t.get(ino)?.file()?;
                let Some(p) = f.projection() else {
                    return Ok(());
                };
                let (p0, _) = f.names.first().ok_or(Errno::STALE)?;
                (p.clone(), t.dir_fd(*p0)?)
            };
            let tmp = TempFile::create(dir, "copyup", &self.next_fh)?;
            if !truncate {
                proj.pack
                    .copy_entry_to(proj.index, &tmp.file)
                    .map_err(to_errno)?;
            }
            #[cfg(test)]
            if let Some(hook) = self.copy_hook.lock().as_ref() {
                hook();
            }
            if self.install_copy(ino, &proj, &tmp, truncate)? {
                return Ok(());
            }
        }
        Err(Errno::BUSY)
    }

    /// Under the lock: links the copy in place of projection `proj` of `ino`. `Ok(false)`:
    /// the node changed while the bytes were copied; try again.
    fn install_copy(
        &self,
        ino: Ino,
        proj: &Projection,
        tmp: &TempFile,
        truncate: bool,
    ) -> VResult<bool> {
        let mut t = self.table.lock();
        let f = t.get(ino)?.file()?;
        let now = match f.projection() {
            None => return Ok(true),
            Some(p) if p.id != proj.id => return Ok(false),
            Some(p) => p.clone(),
        };
        let names = f.names.clone();
        let (p0, n0) = names.first().cloned().ok_or(Errno::STALE)?;
        // Metadata as it is now (a chmod or utimens may have come in meanwhile).
        let m = now.meta;
        rustix::fs::fchmod(&tmp.file, Mode::from_raw_mode(m.perm as u32))?;
        if m.uid != self.uid || m.gid != self.gid {
            let _ = rustix::fs::fchown(
                &tmp.file,
                Some(rustix::process::Uid::from_raw(m.uid)),
                Some(rustix::process::Gid::from_raw(m.gid)),
            );
        }
        if !truncate {
            rustix::fs::futimens(
                &tmp.file,
                &Timestamps {
                    last_access: timespec(m.atime),
                    last_modification: timespec(m.mtime),
                },
            )?;
        }
        let d0 = t.dir_fd(p0)?;
        tmp.link_at(&d0, &n0, false)?;
        for (pi, ni) in &names[1..] {
            let linked = t
                .dir_fd(*pi)
                .and_then(|di| rustix::fs::linkat(&*d0, &n0, &*di, ni, AtFlags::empty()));
            if let Err(e) = linked {
                warn!("copy-up of {ino}: cannot link {ni:?}: {e}");
            }
        }
        let st = rustix::fs::fstat(&tmp.file)?;
        for (pi, ni) in &names {
            if let Ok(d) = t.get_mut(*pi).and_then(|n| n.dir_mut()) {
                d.projected.remove(ni);
            }
        }
        t.by_lower.insert(lower_id(&st), ino);
        let node = t.get_mut(ino)?.file_mut()?;
        node.content = Content::Real;
        node.lower = Some(lower_id(&st));
        self.journal_after(&t, Record::Drop { id: now.id });
        // Handles opened while projected now read the real file.
        let reader = Arc::new(tmp.file.try_clone().map_err(to_errno)?);
        for h in self.handles.lock().values() {
            if h.ino == ino {
                let mut s = h.state.lock();
                if matches!(&*s, HandleState::Projected(..)) {
                    *s = HandleState::Real(reader.clone());
                }
            }
        }
        drop(t);
        self.counters.copy_ups.fetch_add(1, Ordering::Relaxed);
        debug!("copied up inode {ino} ({n0:?})");
        self.notifier().inval_inode_later(ino);
        Ok(true)
    }

    /// Projected files with names, matching `which` (inode numbers, under the lock).
    fn projected_inos(&self, which: impl Fn(&Projection) -> bool) -> Vec<Ino> {
        let t = self.table.lock();
        t.nodes
            .iter()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::File(f) if !f.names.is_empty() => {
                    f.projection().filter(|p| which(p)).map(|_| *i)
                }
                _ => None,
            })
            .collect()
    }

    /// Every projection turned into a real file with its mtime (for `unmount --materialize`).
    pub fn materialize_all(&self) -> VResult<u64> {
        let inos = self.projected_inos(|_| true);
        for ino in &inos {
            self.copy_up(*ino, false)?;
        }
        self.compact_journal();
        Ok(inos.len() as u64)
    }

    /// Copies up every projection of one pack (the store must let it go). Returns how
    /// many were copied up.
    pub fn materialize_pack(&self, id: &Digest) -> VResult<u64> {
        let inos = self.projected_inos(|p| p.pack.id == *id);
        for ino in &inos {
            self.copy_up(*ino, false)?;
        }
        Ok(inos.len() as u64)
    }
}
