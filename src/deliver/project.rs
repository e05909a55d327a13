//! Delivery as projections: the outputs appear in a zcfs mount as slices of their pack, and
//! no artifact byte is written (issue 4). The call returns once every process can see them.

use std::io;
use std::sync::Arc;

use super::{Deliver, Delivery, Report};
use crate::mount::LiveMount;
use crate::projection::ProjectItem;

pub struct Project {
    pub mount: Arc<LiveMount>,
}

impl Deliver for Project {
    fn name(&self) -> &'static str {
        "project"
    }

    /// `d.outputs` paths are relative to the mount's root.
    fn deliver(&self, d: &Delivery<'_>) -> io::Result<Report> {
        // One mtime for the whole entry: the kernel's file clock now, raised to the newest
        // input (spec M4, M5).
        let mtime = self.mount.core.now()?.max(d.mtime_floor);
        let pack = d.pack.clone();
        let mut report = Report::default();
        let entry = |i: usize| {
            pack.header
                .entries
                .get(i)
                .ok_or_else(|| io::Error::other("delivered entry out of range"))
        };
        // Rewritten files first: they are real files, written before any projection so
        // that the entry is complete when the last projection appears.
        for o in &d.outputs {
            let Some(bytes) = &o.bytes else { continue };
            let e = entry(o.index)?;
            self.mount
                .core
                .put_real(
                    &o.path,
                    bytes,
                    (o.mode.unwrap_or(e.mode) & 0o7777) as u16,
                    mtime,
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
            report.written_bytes += bytes.len() as u64;
        }
        let mut items = Vec::new();
        for o in d.outputs.iter().filter(|o| o.bytes.is_none()) {
            let e = entry(o.index)?;
            items.push(ProjectItem {
                path: o.path.clone(),
                pack: pack.clone(),
                index: o.index,
                perm: (o.mode.unwrap_or(e.mode) & 0o7777) as u16,
                mtime,
            });
            report.bytes += e.size;
        }
        self.mount
            .core
            .project(&items)
            .map_err(|e| io::Error::other(e.to_string()))?;
        report.projected = true;
        Ok(report)
    }
}
