//! Persistence of projections: journal records appended as the table changes, the journal
//! compacted from the table (the one source of truth), replay at mount.
//!
//! An append that fails (a full disk) is cut back off the file, so the journal never holds
//! a torn record; the journal is then compacted from the table at once, and if that fails
//! too, emptied (which needs no space). Until a compaction succeeds the journal lags
//! ("broken"): appends stop, the housekeeping tick retries the compaction, and a daemon that
//! dies meanwhile comes back with fewer projections (cargo rebuilds those units), never
//! with one that was removed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::journal::{self, Record};
use super::table::{Node, Table};
use super::*;

/// Journals this big after their last compaction are compacted.
const COMPACT_AFTER: u64 = 100_000;
/// A lagging journal is compacted again at most this often.
const HEAL_EVERY: Duration = Duration::from_secs(1);

/// The records that rebuild the table's projections from nothing.
fn snapshot(t: &Table) -> Vec<Record> {
    let mut out = Vec::new();
    for (_, p, names) in t.projections() {
        let mut names = names.iter();
        let Some(first) = names.next() else { continue };
        out.push(Record::Put {
            id: p.id,
            path: journal::path_bytes(first),
            pack: p.pack.id,
            index: p.index as u32,
            size: p.size,
            meta: p.meta,
        });
        for n in names {
            out.push(Record::AddName {
                id: p.id,
                path: journal::path_bytes(n),
            });
        }
    }
    out
}

impl Vfs {
    /// Journals a change that the table `t` already shows.
    pub(super) fn journal_after(&self, t: &Table, r: Record) {
        let mut js = self.journal.lock();
        if js.journal.is_none() {
            return;
        }
        if js.broken {
            drop(js);
            self.heal_locked(t, false);
            return;
        }
        let Some(j) = js.journal.as_mut() else {
            return;
        };
        if let Err(e) = j.append(&r) {
            warn!("journal append failed ({e}); rewriting it from the table");
            js.broken = true;
            drop(js);
            self.heal_locked(t, true);
        }
    }

    /// Journals a change before it is made to the table (the caller makes it only if this
    /// succeeds). Refused while the journal lags.
    pub(super) fn journal_before(&self, r: &Record) -> std::io::Result<()> {
        let mut js = self.journal.lock();
        if js.broken {
            return Err(std::io::Error::other("the journal lags behind the table"));
        }
        match js.journal.as_mut() {
            Some(j) => j.append(r),
            None => Ok(()),
        }
    }

    /// Compacts a lagging journal from the table (throttled unless `now`); empties it if
    /// even that fails.
    fn heal_locked(&self, t: &Table, now: bool) {
        let mut js = self.journal.lock();
        if !js.broken {
            return;
        }
        if !now && js.last_heal.is_some_and(|at| at.elapsed() < HEAL_EVERY) {
            return;
        }
        js.last_heal = Some(Instant::now());
        let Some(j) = js.journal.as_mut() else {
            return;
        };
        match j.compact(snapshot(t)) {
            Ok(()) => {
                js.broken = false;
                tracing::info!("journal rewritten from the table");
            }
            Err(e) => {
                if let Err(e2) = j.clear() {
                    warn!("journal compaction failed ({e}) and it cannot be emptied ({e2})");
                } else {
                    warn!("journal compaction failed ({e}); emptied until it can be rewritten");
                }
            }
        }
    }

    /// Rewrites the journal as a snapshot of the table.
    pub fn compact_journal(&self) {
        let t = self.table.lock();
        let mut js = self.journal.lock();
        let broken = js.broken;
        let Some(j) = js.journal.as_mut() else {
            return;
        };
        match j.compact(snapshot(&t)) {
            Ok(()) => js.broken = false,
            Err(e) => {
                warn!("journal compaction failed: {e}");
                // A lagging journal must not keep an outdated state; a complete one may
                // keep being appended to.
                if broken {
                    let _ = j.clear();
                }
            }
        }
    }

    /// Housekeeping: compacts a lagging or long journal.
    pub fn tend_journal(&self) {
        let (broken, long) = {
            let js = self.journal.lock();
            (
                js.broken,
                js.journal
                    .as_ref()
                    .is_some_and(|j| j.appended() > COMPACT_AFTER),
            )
        };
        if broken || long {
            self.compact_journal();
        }
    }

    /// Whether the journal lags behind the table (for tests and status).
    pub fn journal_lags(&self) -> bool {
        self.journal.lock().broken
    }

    pub(super) fn maybe_compact(&self) {
        let long = self
            .journal
            .lock()
            .journal
            .as_ref()
            .is_some_and(|j| j.appended() > COMPACT_AFTER);
        if long {
            self.compact_journal();
        }
    }

    /// Flushes the journal to disk (for unmount).
    pub fn sync_journal(&self) {
        if let Some(j) = self.journal.lock().journal.as_ref() {
            let _ = j.sync();
        }
    }

    /// Restores the projections a journal describes: each whose pack is still there and
    /// whose names are free, at those names.
    pub(super) fn replay(&self, state: &journal::State, packs: &dyn PackSource) -> LoadReport {
        let mut report = LoadReport::default();
        let mut t = self.table.lock();
        let mut max_id = 0;
        for (id, proj) in &state.projections {
            max_id = max_id.max(*id);
            let Some(pack) = packs.open(&proj.pack) else {
                report.dropped_pack_gone += 1;
                continue;
            };
            let index = proj.index as usize;
            if pack
                .header
                .entries
                .get(index)
                .is_none_or(|e| e.size != proj.size)
            {
                report.dropped_pack_gone += 1;
                continue;
            }
            let ino = t.alloc();
            let p = Projection {
                id: *id,
                pack,
                index,
                size: proj.size,
                meta: proj.meta,
            };
            let mut names = Vec::new();
            for name in &proj.names {
                let path = PathBuf::from(OsStr::from_bytes(name));
                let Ok((parts, base)) = Self::split(&path) else {
                    report.dropped_names += 1;
                    continue;
                };
                let Ok(parent) = self.walk_dirs(&mut t, &parts, &path) else {
                    report.dropped_names += 1;
                    continue;
                };
                let taken = !matches!(Self::resolve(&t, parent, &base), Ok(Target::Missing));
                if taken {
                    report.dropped_names += 1;
                    continue;
                }
                if let Ok(d) = t.get_mut(parent).and_then(|n| n.dir_mut()) {
                    d.projected.insert(base.clone(), ino);
                    names.push((parent, base));
                }
            }
            if names.is_empty() {
                report.dropped_no_name += 1;
                continue;
            }
            report.restored += 1;
            t.nodes.insert(ino, Node::projected(names, p));
        }
        self.next_proj.store(max_id + 1, Ordering::Relaxed);
        report
    }
}
