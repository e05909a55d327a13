//! Delivery as projections: the outputs appear in a zcfs mount as slices of their pack, and
//! no artifact byte is written (issue 4). The call returns once every process can see them.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Deliver, Delivery, Report};
use crate::mount::LiveMount;
use crate::vfs::ProjectItem;

pub struct Project {
    pub mount: Arc<LiveMount>,
    /// The out-dir relative to the mount's root.
    pub rel_out_dir: PathBuf,
}

impl Deliver for Project {
    fn name(&self) -> &'static str {
        "project"
    }

    fn deliver(&self, d: &Delivery<'_>) -> io::Result<Report> {
        // One mtime for the whole entry: the kernel's file clock now, raised to the newest
        // input (spec M4, M5).
        let mtime = self.mount.vfs.try_now()?.max(d.mtime_floor);
        let pack = d.pack.clone();
        let mut report = Report::default();
        // Rewritten files first: they are real files, written before any projection so
        // that the entry is complete when the last projection appears.
        for (i, bytes) in d.replaced {
            let e = pack
                .header
                .entries
                .get(*i)
                .ok_or_else(|| io::Error::other("replaced entry out of range"))?;
            self.mount
                .vfs
                .put_real(
                    &self.rel_out_dir.join(&e.name),
                    bytes,
                    (e.mode & 0o7777) as u16,
                    mtime,
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
            report.written_bytes += bytes.len() as u64;
        }
        let items: Vec<ProjectItem> = pack
            .header
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| d.replacement(*i).is_none())
            .map(|(i, e)| ProjectItem {
                path: self.rel_out_dir.join(&e.name),
                pack: pack.clone(),
                index: i,
                perm: (e.mode & 0o7777) as u16,
                mtime,
            })
            .collect();
        self.mount
            .vfs
            .project(&items)
            .map_err(|e| io::Error::other(e.to_string()))?;
        for (i, e) in pack.header.entries.iter().enumerate() {
            if d.replacement(i).is_none() {
                report.bytes += e.size;
            }
        }
        report.projected = true;
        Ok(report)
    }
}
