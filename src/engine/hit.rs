//! The hit path: find a manifest entry whose recorded inputs hold now (spec D2, X2), and
//! deliver its outputs: projected into the mount when the out-dir is in one of the daemon's
//! mounts, restored as real files elsewhere.

use crate::os::OsStrExt;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::Engine;
use crate::compiler::Language;
use crate::compiler::rustc::bindings::{self, Rebase};
use crate::compiler::rustc::{self, RustcJob};
use std::sync::Arc;

use crate::deliver::project::Project;
use crate::deliver::{Deliver, Delivery, Placed, Report};
use crate::fsutil::NanoTime;
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::mount::LiveMount;
use crate::mount::fs::MountedFs;
use crate::proto::{OnWriteError, Reply};
use crate::stats::HitPhases;
use crate::store::OpenError;
use crate::store::manifest::Inputs;
use crate::store::pack::Pack;

/// Why a pack cannot serve a hit.
pub(super) enum Stop {
    /// Try the next manifest entry.
    Next,
    /// Give up the lookup: run the compiler.
    Miss,
}

/// What a compile looks like to the hit path.
pub(super) struct HitQuery<'a> {
    pub job: &'a RustcJob,
    pub env: &'a std::collections::HashMap<std::ffi::OsString, std::ffi::OsString>,
    pub cargo_home: Option<&'a Path>,
    pub lang: Language,
    pub key_time: Duration,
    /// The files as the engine sees them for this compile.
    pub fs: &'a crate::mount::fs::MountedFs<'a>,
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
    pub(super) fn try_hit(&self, q: &HitQuery<'_>) -> Option<Reply> {
        let t_lookup = Instant::now();
        let local = self.store.manifest(&q.job.key);
        if let Some(m) = &local
            && let Some(r) = self.try_entries(q, &m.entries, t_lookup, false)
        {
            return Some(r);
        }
        let learnt = self.remote_entries(&q.job.key, local.as_deref(), q.lang);
        if learnt.is_empty() {
            return None;
        }
        self.try_entries(q, &learnt, t_lookup, true)
    }

    /// Tries manifest entries in order; `learnt`: they came from the remote just now.
    fn try_entries(
        &self,
        q: &HitQuery<'_>,
        entries: &[crate::store::manifest::Entry],
        t_lookup: Instant,
        learnt: bool,
    ) -> Option<Reply> {
        let job = q.job;
        for entry in entries {
            let Some(rebase) = self.matches(q, &entry.inputs) else {
                continue;
            };
            let (pack, fetched) =
                match self.open_for_hit(&job.key, &entry.pack, q.lang, &rustc::describe(job)) {
                    Ok(p) => p,
                    Err(Stop::Next) => continue,
                    Err(Stop::Miss) => return None,
                };
            if !same_outputs(job, &pack) {
                warn!(
                    "pack {} does not hold the outputs {} expects; ignoring it",
                    entry.pack.short(),
                    rustc::describe(job)
                );
                self.stats.error(q.lang, "pack mismatch");
                continue;
            }
            let lookup = t_lookup.elapsed();
            let t_deliver = Instant::now();

            // Served under another target dir or checkout: the dep-info text and the
            // `artifact` lines name the current paths (spec X2).
            let mut replaced = Vec::new();
            let mut stderr = pack.header.stderr.clone();
            if !rebase.is_empty() {
                for (i, e) in pack.header.entries.iter().enumerate() {
                    if e.name.ends_with(".d") {
                        replaced.push((i, rebase.dep_info(pack.payload(i))));
                    }
                }
                stderr = rebase.messages(&stderr);
            }
            let delivery = Delivery::in_dir(&pack, &job.out_dir, job.inputs_mtime_floor, &replaced);
            let result = self.deliver_placed(q.fs, &pack, delivery.outputs, job.inputs_mtime_floor);
            return self.finish_hit(
                Served {
                    what: &rustc::describe(job),
                    lang: q.lang,
                    pack: &entry.pack,
                    phases: (q.key_time, lookup, t_deliver),
                    rebased: !rebase.is_empty(),
                    remote: learnt || fetched,
                    stdout: pack.header.stdout.clone(),
                    stderr,
                    on_write_error: OnWriteError::Exit(1),
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

    /// Whether a manifest entry's recorded inputs hold now (spec D2), and how its recorded
    /// paths map to the current ones (X2). Files are read through the daemon's view, so
    /// inputs inside a mount (generated sources, linked rlibs) are seen as the mount shows
    /// them.
    fn matches(&self, q: &HitQuery<'_>, inputs: &Inputs) -> Option<Rebase> {
        let job = q.job;
        let what = || rustc::describe(job);
        if !inputs.checks.is_empty() {
            return None; // a C entry's conditions: never one of rustc's
        }
        let Some(rebase) = bindings::rebase(&job.place(), q.cargo_home, &inputs.bindings) else {
            tracing::trace!("{}: an entry is bound to other paths", what());
            return None;
        };
        for (name, value) in &inputs.env {
            let now = q.env.get(OsStr::new(name)).map(|v| v.as_bytes());
            let recorded = value.as_ref().map(|v| rebase.text(v.as_bytes()));
            if now != recorded.as_deref() {
                tracing::trace!("{}: an entry read {name} with another value", what());
                return None;
            }
        }
        let here = |p: &[u8]| resolve(&job.cwd, Path::new(&crate::os::os_str(&rebase.path(p))));
        let fs = q.fs;
        if !absent_holds(fs, &here, inputs) {
            tracing::trace!("{}: a path an entry needs absent exists", what());
            return None;
        }
        for f in &inputs.files {
            match fs.digest(&here(&f.path)) {
                Ok((d, stat)) if d == f.digest && stat.size == f.size => {}
                _ => {
                    tracing::trace!(
                        "{}: an entry's input {} differs",
                        what(),
                        here(&f.path).display()
                    );
                    return None;
                }
            }
        }
        Some(rebase)
    }
}

/// Whether the paths an entry needs absent are still absent. `here` maps a recorded path
/// to the current one.
pub(super) fn absent_holds(
    fs: &dyn FsView,
    here: &dyn Fn(&[u8]) -> PathBuf,
    inputs: &Inputs,
) -> bool {
    if inputs.absent.iter().any(|p| fs.exists(&here(p))) {
        return false;
    }
    for group in &inputs.absent_under {
        let dir = here(&group.dir);
        if let Some(stamp) = group.stamp
            && let Ok(Some(m)) = fs.meta(&dir)
            && m.is_dir
            && (m.stat.ino, m.stat.mtime, m.stat.ctime) == stamp
        {
            continue;
        }
        if !names_absent(fs, &dir, &group.names) {
            return false;
        }
    }
    true
}

/// Whether none of `names` (relative paths) exists under `dir`. Many names are checked
/// against one listing of `dir` (the directory a compile writes its object into changes on
/// every compile, so its stamp rarely holds): only names whose first component is listed
/// need a lookup of their own.
fn names_absent(fs: &dyn FsView, dir: &Path, names: &[Vec<u8>]) -> bool {
    const LIST_ABOVE: usize = 8;
    let exists = |n: &[u8]| fs.exists(&dir.join(crate::os::os_str(n)));
    if names.len() <= LIST_ABOVE {
        return !names.iter().any(|n| exists(n));
    }
    let listed: std::collections::HashSet<std::ffi::OsString> = match fs.list_dir(dir) {
        Ok(v) => v.into_iter().collect(),
        // Gone or unreadable: nothing can exist below it that a lookup would find.
        Err(_) => return !names.iter().any(|n| exists(n)),
    };
    !names.iter().any(|n| {
        let first = n
            .split(|&b| b == b'/')
            .find(|c| !c.is_empty() && *c != b".");
        first.is_some_and(|f| listed.contains(&*crate::os::os_str(f))) && exists(n)
    })
}

/// Whether a pack holds exactly the files a compile would produce (a sanity check: the key
/// covers everything that determines the names).
fn same_outputs(job: &RustcJob, pack: &Pack) -> bool {
    let expected = job.args.expected_outputs();
    expected
        .iter()
        .all(|n| pack.header.entries.iter().any(|e| &e.name == n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsview::HostFs;
    use crate::hashcache::HashCache;

    #[test]
    fn absent_names_checked_by_listing_and_by_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = HashCache::new();
        let fs = HostFs { hashes: &hashes };
        let many: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("sub{i}/h{i}.h").into_bytes())
            .chain([b"./top.h".to_vec(), b"a.h.gch".to_vec()])
            .collect();
        for names in [&many[..], &many[18..]] {
            assert!(names_absent(&fs, dir.path(), names));
        }
        // A file appears under a listed first component, and at the top.
        std::fs::create_dir(dir.path().join("sub19")).unwrap();
        assert!(
            names_absent(&fs, dir.path(), &many),
            "the dir alone is not the name"
        );
        std::fs::write(dir.path().join("sub19/h19.h"), "").unwrap();
        assert!(!names_absent(&fs, dir.path(), &many));
        assert!(!names_absent(&fs, dir.path(), &many[18..]));
        std::fs::remove_file(dir.path().join("sub19/h19.h")).unwrap();
        std::fs::write(dir.path().join("top.h"), "").unwrap();
        assert!(!names_absent(&fs, dir.path(), &many));
        // A directory that is gone holds nothing.
        assert!(names_absent(&fs, &dir.path().join("gone"), &many));
    }
}
