//! The hit path: find a manifest entry whose recorded inputs hold now (spec D2, X2), and
//! deliver its outputs: projected into the mount when the out-dir is in one of the daemon's
//! mounts, restored as real files elsewhere.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::Engine;
use crate::compiler::Language;
use crate::compiler::rustc::bindings::{self, Rebase};
use crate::compiler::rustc::{self, RustcJob};
use crate::deliver::project::Project;
use crate::deliver::{Deliver, Delivery};
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::proto::Reply;
use crate::stats::HitPhases;
use crate::store::OpenError;
use crate::store::manifest::Inputs;
use crate::store::pack::Pack;

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

impl Engine {
    pub(super) fn try_hit(&self, q: &HitQuery<'_>) -> Option<Reply> {
        let job = q.job;
        let t_lookup = Instant::now();
        let manifest = self.store.manifest(&job.key)?;
        for entry in &manifest.entries {
            let Some(rebase) = self.matches(q, &entry.inputs) else {
                continue;
            };
            let pack = match self.store.open_pack(&entry.pack) {
                Ok(p) => p,
                Err(OpenError::Missing) => {
                    self.store.drop_entries_for_pack(&job.key, &entry.pack);
                    continue;
                }
                Err(OpenError::Corrupt(msg)) => {
                    warn!(
                        "{}: corrupt pack {}: {msg}",
                        rustc::describe(job),
                        entry.pack.short()
                    );
                    self.stats.error(q.lang, "corrupt pack");
                    self.stats.update(|d| d.corrupt_packs += 1);
                    self.store.drop_entries_for_pack(&job.key, &entry.pack);
                    continue;
                }
                Err(OpenError::Io(e)) => {
                    warn!("cannot open pack {}: {e}", entry.pack.short());
                    self.stats.error(q.lang, "pack unreadable");
                    return None;
                }
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
            let delivery = Delivery {
                pack: &pack,
                out_dir: &job.out_dir,
                mtime_floor: job.inputs_mtime_floor,
                replaced: &replaced,
            };
            let result = match q.fs.locate(&job.out_dir) {
                Some((mount, rel_out_dir)) => Project { mount, rel_out_dir }.deliver(&delivery),
                None => self.deliver.deliver(&delivery),
            };
            return match result {
                Ok(report) => {
                    for f in &report.files {
                        self.hashes.record_trusted(&f.path, f.stat, f.digest);
                    }
                    self.store.touch(&entry.pack);
                    let phases = HitPhases {
                        key: q.key_time,
                        lookup,
                        deliver: t_deliver.elapsed(),
                    };
                    self.stats.hit(q.lang, phases, &report, !rebase.is_empty());
                    debug!(
                        "hit {} {phases:?}{}{}",
                        rustc::describe(job),
                        if report.projected { " projected" } else { "" },
                        if rebase.is_empty() { "" } else { " rebased" }
                    );
                    Some(Reply::Hit {
                        stdout: pack.header.stdout.clone(),
                        stderr,
                    })
                }
                Err(e) => {
                    warn!(
                        "{}: cannot deliver outputs ({e}); running the compiler",
                        rustc::describe(job)
                    );
                    self.stats.error(q.lang, "deliver failed");
                    None
                }
            };
        }
        None
    }

    /// Whether a manifest entry's recorded inputs hold now (spec D2), and how its recorded
    /// paths map to the current ones (X2). Files are read through the daemon's view, so
    /// inputs inside a mount (generated sources, linked rlibs) are seen as the mount shows
    /// them.
    fn matches(&self, q: &HitQuery<'_>, inputs: &Inputs) -> Option<Rebase> {
        let job = q.job;
        let rebase = bindings::rebase(&job.place(), q.cargo_home, &inputs.bindings)?;
        for (name, value) in &inputs.env {
            let now = q.env.get(OsStr::new(name)).map(|v| v.as_bytes());
            let recorded = value.as_ref().map(|v| rebase.text(v.as_bytes()));
            if now != recorded.as_deref() {
                return None;
            }
        }
        let here = |p: &[u8]| resolve(&job.cwd, Path::new(OsStr::from_bytes(&rebase.path(p))));
        let fs = q.fs;
        for p in &inputs.absent {
            if fs.exists(&here(p)) {
                return None;
            }
        }
        for f in &inputs.files {
            match fs.digest(&here(&f.path)) {
                Ok((d, stat)) if d == f.digest && stat.size == f.size => {}
                _ => return None,
            }
        }
        Some(rebase)
    }
}

/// Whether a pack holds exactly the files a compile would produce (a sanity check: the key
/// covers everything that determines the names).
fn same_outputs(job: &RustcJob, pack: &Pack) -> bool {
    let expected = job.args.expected_outputs();
    expected
        .iter()
        .all(|n| pack.header.entries.iter().any(|e| &e.name == n))
}
