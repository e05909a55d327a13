//! The hit path: find a manifest entry whose recorded inputs hold now (spec D2, X2), and
//! deliver its outputs: projected into the mount when the out-dir is in one of the daemon's
//! mounts, restored as real files elsewhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::Engine;
use crate::compiler::{Compile, Invocation, Language};

use crate::deliver::project::Project;
use crate::deliver::{Deliver, Delivery, Placed, Report};
use crate::fsutil::NanoTime;
use crate::fsview::mounted::MountedFs;
use crate::mount::LiveMount;
use crate::proto::{OnWriteError, Reply};
use crate::stats::HitPhases;
use crate::store::OpenError;
use crate::store::manifest::Entry;
use crate::store::pack::Pack;

/// A compile's lookup.
struct Lookup<'a> {
    job: &'a dyn Compile,
    caller: &'a Invocation<'a>,
    fs: &'a MountedFs<'a>,
    key_time: Duration,
    t_lookup: Instant,
}

/// Why a pack cannot serve a hit.
pub(super) enum Stop {
    /// Try the next manifest entry.
    Next,
    /// Give up the lookup: run the compiler.
    Miss,
}

/// A hit whose outputs were just delivered (or failed to be).
pub(super) struct Served<'a> {
    /// The compile, for the log.
    pub what: &'a str,
    pub lang: Language,
    /// The pack served.
    pub pack: &'a crate::hash::Digest,
    /// The key and lookup times, and when delivery started.
    pub phases: (Duration, Duration, Instant),
    /// Served under other paths than it was stored with.
    pub rebased: bool,
    /// Served from an entry or a pack the remote supplied.
    pub remote: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// What the compiler does when writing its diagnostics fails.
    pub on_write_error: OnWriteError,
}

impl Engine {
    /// Looks for an entry of the compile's key whose inputs hold for this caller, locally
    /// and then in the remote tier, and delivers its outputs: the reply, or `None` (a miss).
    pub(super) fn try_hit(
        &self,
        job: &dyn Compile,
        caller: &Invocation<'_>,
        fs: &MountedFs<'_>,
        key_time: Duration,
    ) -> Option<Reply> {
        let t_lookup = Instant::now();
        let key = job.key();
        let lookup = Lookup {
            job,
            caller,
            fs,
            key_time,
            t_lookup,
        };
        let local = self.store.manifest(&key);
        if let Some(m) = &local
            && let Some(r) = self.try_entries(&lookup, &m.entries, false)
        {
            return Some(r);
        }
        let learnt = self.remote_entries(&key, local.as_deref(), job.language());
        if learnt.is_empty() {
            return None;
        }
        self.try_entries(&lookup, &learnt, true)
    }

    /// Tries manifest entries in order; `learnt`: they came from the remote just now.
    fn try_entries(&self, q: &Lookup<'_>, entries: &[Entry], learnt: bool) -> Option<Reply> {
        let job = q.job;
        let lang = job.language();
        let key = job.key();
        for entry in entries {
            let Some(fit) = job.fit(q.caller, q.fs, &entry.inputs) else {
                continue;
            };
            let (pack, fetched) = match self.open_for_hit(&key, &entry.pack, lang, &job.describe())
            {
                Ok(p) => p,
                Err(Stop::Next) => continue,
                Err(Stop::Miss) => return None,
            };
            let Some(serve) = fit.serve(&pack, q.fs) else {
                warn!(
                    "pack {} does not hold the outputs {} expects; ignoring it",
                    entry.pack.short(),
                    job.describe()
                );
                self.stats.error(lang, "pack mismatch");
                continue;
            };
            if !serve.rebased && super::under_cargo(q.caller) {
                self.note_produced(entry.pack, &entry.inputs, q.caller.cwd);
            }
            let lookup = q.t_lookup.elapsed();
            let t_deliver = Instant::now();
            let result = self.deliver_placed(q.fs, &pack, serve.outputs, serve.mtime_floor);
            return self.finish_hit(
                Served {
                    what: &job.describe(),
                    lang,
                    pack: &entry.pack,
                    phases: (q.key_time, lookup, t_deliver),
                    rebased: serve.rebased,
                    remote: learnt || fetched,
                    stdout: serve.stdout,
                    stderr: serve.stderr,
                    on_write_error: serve.on_write_error,
                },
                result,
            );
        }
        None
    }

    /// Books a hit's delivery: on success the delivered files' digests, the pack's LRU
    /// time, the stats and the reply; on failure an error, and `None` (the compiler runs).
    pub(super) fn finish_hit(
        &self,
        s: Served<'_>,
        result: std::io::Result<Report>,
    ) -> Option<Reply> {
        match result {
            Ok(report) => {
                for f in &report.files {
                    self.hashes.record_trusted(&f.path, f.stat, f.digest);
                }
                self.store.touch(s.pack);
                let (key, lookup, t_deliver) = s.phases;
                let phases = HitPhases {
                    key,
                    lookup,
                    deliver: t_deliver.elapsed(),
                };
                self.stats.hit(s.lang, phases, &report, s.rebased);
                if s.remote {
                    self.stats.update(|d| d.remote.hits += 1);
                }
                debug!(
                    "hit {} {phases:?}{}{}{}",
                    s.what,
                    if report.projected { " projected" } else { "" },
                    if s.rebased { " rebased" } else { "" },
                    if s.remote { " remote" } else { "" }
                );
                Some(Reply::Hit {
                    stdout: s.stdout,
                    stderr: s.stderr,
                    on_write_error: s.on_write_error,
                })
            }
            Err(e) => {
                warn!(
                    "{}: cannot deliver outputs ({e}); running the compiler",
                    s.what
                );
                self.stats.error(s.lang, "deliver failed");
                None
            }
        }
    }

    /// Opens the pack of a manifest entry for a hit, fetching it from the remote if it is
    /// not here (`true`: fetched). A pack missing everywhere or corrupt drops the entries
    /// that name it (try the next entry); an unreadable one ends the lookup.
    pub(super) fn open_for_hit(
        &self,
        key: &crate::hash::Digest,
        id: &crate::hash::Digest,
        lang: Language,
        what: &str,
    ) -> Result<(Arc<Pack>, bool), Stop> {
        let mut fetched = false;
        loop {
            match self.store.open_pack(id) {
                Ok(p) => return Ok((p, fetched)),
                Err(OpenError::Missing) if !fetched => match self.fetch_pack(id) {
                    super::remote::Fetch::Fetched => fetched = true,
                    super::remote::Fetch::Absent => {
                        self.store.drop_entries_for_pack(key, id);
                        return Err(Stop::Next);
                    }
                    // Keep the entry: the remote may have it later.
                    super::remote::Fetch::Failed => return Err(Stop::Next),
                },
                Err(OpenError::Missing) => {
                    self.store.drop_entries_for_pack(key, id);
                    return Err(Stop::Next);
                }
                Err(OpenError::Corrupt(msg)) => {
                    warn!("{what}: corrupt pack {}: {msg}", id.short());
                    self.stats.error(lang, "corrupt pack");
                    self.stats.update(|d| d.corrupt_packs += 1);
                    self.store.drop_entries_for_pack(key, id);
                    return Err(Stop::Next);
                }
                Err(OpenError::Io(e)) => {
                    warn!("cannot open pack {}: {e}", id.short());
                    self.stats.error(lang, "pack unreadable");
                    return Err(Stop::Miss);
                }
            }
        }
    }

    /// Delivers pack entries to their (absolute) paths: those in one of the daemon's
    /// mounts as projections, the others as real files.
    pub(super) fn deliver_placed(
        &self,
        fs: &MountedFs<'_>,
        pack: &Arc<Pack>,
        outputs: Vec<Placed>,
        mtime_floor: NanoTime,
    ) -> std::io::Result<Report> {
        let mut groups: Vec<(Arc<LiveMount>, Vec<Placed>)> = Vec::new();
        let mut real = Vec::new();
        for o in outputs {
            let located = o
                .path
                .parent()
                .and_then(|dir| fs.locate(dir))
                .zip(o.path.file_name().map(|n| n.to_os_string()));
            match located {
                Some(((mount, rel_dir), name)) => {
                    let placed = Placed {
                        path: rel_dir.join(name),
                        ..o
                    };
                    match groups.iter_mut().find(|(m, _)| Arc::ptr_eq(m, &mount)) {
                        Some((_, v)) => v.push(placed),
                        None => groups.push((mount, vec![placed])),
                    }
                }
                None => real.push(o),
            }
        }
        let mut report = Report::default();
        let mut add = |r: Report| {
            report.files.extend(r.files);
            report.bytes += r.bytes;
            report.reflinked_bytes += r.reflinked_bytes;
            report.projected |= r.projected;
            report.written_bytes += r.written_bytes;
        };
        for (mount, outputs) in groups {
            add(Project { mount }.deliver(&Delivery {
                pack,
                outputs,
                mtime_floor,
            })?);
        }
        if !real.is_empty() {
            add(self.deliver.deliver(&Delivery {
                pack,
                outputs: real,
                mtime_floor,
            })?);
        }
        Ok(report)
    }
}
