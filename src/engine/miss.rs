//! The miss path after rustc succeeded: store its outputs as a pack, decide the entry's path
//! bindings (spec X2), publish it in the background, and turn the outputs in a mount into
//! projections of the stored pack (issue 4: target/ holds no second copy).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Engine, Job, Pending};
use crate::compiler::Language;
use crate::compiler::rustc::{self, bindings};
use crate::fsview::FsView;
use crate::mount::LiveMount;
use crate::mount::fs::MountedFs;
use crate::projection::KeptReal;
use crate::store::manifest::Entry;
use crate::store::pack::{self, WriteError};
use crate::util::unix_now;

/// A stored result on its way to the store.
pub(super) struct PublishJob {
    pub temp: tempfile::NamedTempFile,
    pub written: pack::Written,
    pub key: crate::hash::Digest,
    pub entry: Entry,
    pub convert: Vec<Convert>,
    pub lang: Language,
}

/// An output in a mount to turn into a projection once its pack is published.
pub(super) struct Convert {
    pub mount: Arc<LiveMount>,
    /// Relative to the mount's root.
    pub rel: PathBuf,
    /// As it lies in the mount (not through a symlink to it).
    pub path: PathBuf,
    /// Its pack entry.
    pub index: usize,
}

/// A conversion that found its file open, to be tried again.
pub(super) struct Deferred {
    convert: Arc<Convert>,
    pack: Arc<pack::Pack>,
    index: usize,
    until: Instant,
}

/// How long conversions of files that stay open are retried.
const DEFER_FOR: Duration = Duration::from_secs(20);

impl Engine {
    pub(super) fn store_result(&self, p: &Pending, stdout: Vec<u8>, stderr: Vec<u8>) -> bool {
        let Job::Rustc(job) = &p.job else {
            return false;
        };
        let not_stored = |reason: &str, detail: String| {
            info!("{}: not stored: {reason}: {detail}", rustc::describe(job));
            self.stats.not_stored(reason);
            false
        };
        let fs = self.fs_with(p.aliases.clone());
        let names = match rustc::output_names(job, &fs, &stderr, &p.start) {
            Ok(n) => n,
            Err(u) => return not_stored(u.reason, u.detail),
        };
        let mut inputs = match rustc::collect_inputs(job, &fs, &p.start, p.scratch.as_deref()) {
            Ok(i) => i,
            Err(u) => return not_stored(u.reason, u.detail),
        };
        let mut files: Vec<File> = Vec::with_capacity(names.len());
        for n in &names {
            match fs.open(&job.out_dir.join(n)) {
                Ok(f) => files.push(f),
                Err(e) => return not_stored("missing output", format!("{n}: {e}")),
            }
        }
        let temp = match self.store.pack_temp() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot store {}: {e}", rustc::describe(job));
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };
        let sources: Vec<pack::Source<'_>> = names
            .iter()
            .zip(&files)
            .map(|(n, f)| pack::Source {
                name: n.clone(),
                file: f,
            })
            .collect();
        let meta = serde_json::json!({
            "compiler": "rustc",
            "crate": job.args.crate_name,
            "cwd": job.cwd,
            "out_dir": job.out_dir,
            "key": job.key.to_hex(),
            "created": unix_now(),
        })
        .to_string()
        .into_bytes();
        let messages = bindings::without_artifact_lines(&stderr);
        let written = match pack::write(temp.as_file(), &sources, stdout, stderr, meta) {
            Ok(w) => w,
            Err(WriteError::SourceChanged(n)) => {
                return not_stored("output modified during store", n);
            }
            Err(WriteError::Io(e)) => {
                warn!("cannot store {}: {e}", rustc::describe(job));
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };

        // Which of the paths the compile ran under bind the entry (X2, docs/sharing.md):
        // those its outputs or messages contain, all of them if an output hides bytes from
        // the search (compressed sections), and those that reached it as values.
        let place = job.place();
        let needles = bindings::needles(&place, p.cargo_home.as_deref());
        let search = match pack::find_in_payloads(
            temp.as_file(),
            &written.header,
            |name| !name.ends_with(".d"),
            &[&messages, &written.header.stdout],
            &needles
                .iter()
                .map(|(_, b)| b.as_slice())
                .collect::<Vec<_>>(),
        ) {
            Ok(f) => f,
            Err(e) => {
                warn!("cannot scan {}: {e}", rustc::describe(job));
                self.stats.error(p.lang, "store write failed");
                return false;
            }
        };
        let searched: Vec<&str> = needles.iter().map(|(n, _)| *n).collect();
        let mut bound: Vec<&str> = needles
            .iter()
            .zip(&search.found)
            .filter(|(_, f)| **f)
            .map(|((n, _), _)| *n)
            .collect();
        if let Some(why) = &search.hidden {
            debug!("{}: bound everywhere: {why}", rustc::describe(job));
            bound = searched.clone();
        }
        tracing::trace!(
            "{}: found in the outputs: {bound:?}; reached as values: {:?}",
            rustc::describe(job),
            job.paths_in_values
        );
        if !self.config.sloppiness.path_values {
            let mut values = job.paths_in_values;
            for (name, needle) in &needles {
                let in_env_dep = inputs.env.iter().any(|(_, v)| {
                    v.as_ref()
                        .is_some_and(|v| bindings::contains_path(v.as_bytes(), needle))
                });
                match *name {
                    "target" => values.target |= in_env_dep,
                    "cwd" => values.cwd |= in_env_dep,
                    "cargo-home" => values.cargo_home |= in_env_dep,
                    _ => {}
                }
            }
            for (name, on) in [
                ("target", values.target),
                ("cwd", values.cwd),
                ("cargo-home", values.cargo_home),
            ] {
                if on && !bound.contains(&name) {
                    bound.push(name);
                }
            }
        }
        inputs.bindings = bindings::bindings(&place, p.cargo_home.as_deref(), &searched, &bound);
        debug!(
            "{}: bound to {:?}",
            rustc::describe(job),
            inputs
                .bindings
                .iter()
                .filter(|b| b.strict)
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
        );

        // The outputs' bytes are known now: later keys that use them as externs need not
        // read them again.
        for (i, name) in names.iter().enumerate() {
            self.hashes.record_trusted(
                &job.out_dir.join(name),
                written.source_stats[i],
                written.header.entries[i].digest,
            );
        }
        let outputs: Vec<PathBuf> = names.iter().map(|n| job.out_dir.join(n)).collect();
        let convert = self.conversions(&fs, &outputs);
        let entry = Entry {
            inputs,
            pack: written.id,
            created: unix_now(),
        };
        self.send_to_publisher(job.key, p.lang, temp, written, entry, convert)
    }

    /// The outputs (pack order) that lie in a mount and become projections once stored.
    pub(super) fn conversions(&self, fs: &MountedFs<'_>, outputs: &[PathBuf]) -> Vec<Convert> {
        if !self.config.project_misses {
            return Vec::new();
        }
        outputs
            .iter()
            .enumerate()
            .filter_map(|(index, p)| {
                let name = p.file_name()?;
                let (mount, rel_dir) = fs.locate(p.parent()?)?;
                let rel = rel_dir.join(name);
                Some(Convert {
                    path: mount.dir.join(&rel),
                    mount,
                    rel,
                    index,
                })
            })
            .collect()
    }

    /// Hands a written pack to the publisher thread.
    pub(super) fn send_to_publisher(
        &self,
        key: crate::hash::Digest,
        lang: Language,
        temp: tempfile::NamedTempFile,
        written: pack::Written,
        entry: Entry,
        convert: Vec<Convert>,
    ) -> bool {
        self.publishing.0.lock().insert(key);
        let sent = self
            .publish_tx
            .lock()
            .as_ref()
            .map(|tx| {
                tx.send(PublishJob {
                    temp,
                    written,
                    key,
                    entry,
                    convert,
                    lang,
                })
                .is_ok()
            })
            .unwrap_or(false);
        if !sent {
            self.publishing.0.lock().remove(&key);
            self.publishing.1.notify_all();
        }
        sent
    }

    /// Runs on the publisher thread.
    pub(super) fn publish(&self, job: PublishJob, deferred: &mut Vec<Deferred>) {
        let size = job.written.size;
        let id = job.written.id;
        let entry = job.entry.clone();
        let r = self
            .store
            .publish(job.temp, &job.written)
            .and_then(|()| self.store.add_entry(&job.key, job.entry));
        match r {
            Ok(()) => {
                self.queue_upload(job.key, &entry, size);
                self.stats.update(|d| {
                    d.stored += 1;
                    d.bytes_stored += size;
                });
                debug!("stored pack {} ({size} bytes)", id.short());
                if !job.convert.is_empty() {
                    self.convert_outputs(job.convert, &job.written, deferred);
                }
                self.evict();
            }
            Err(e) => {
                warn!("cannot publish pack {}: {e}", id.short());
                self.stats.error(job.lang, super::store_error_kind(&e));
            }
        }
        let (set, cv) = &self.publishing;
        set.lock().remove(&job.key);
        cv.notify_all();
    }

    fn convert_outputs(
        &self,
        items: Vec<Convert>,
        w: &pack::Written,
        deferred: &mut Vec<Deferred>,
    ) {
        let pack = match self.store.open_pack(&w.id) {
            Ok(p) => p,
            Err(e) => {
                warn!("reopening pack {}: {e:?}", w.id.short());
                return;
            }
        };
        for c in items {
            if c.index >= w.header.entries.len() {
                continue;
            }
            let d = Deferred {
                index: c.index,
                convert: Arc::new(c),
                pack: pack.clone(),
                until: Instant::now() + DEFER_FOR,
            };
            if let Some(d) = self.convert_one(d) {
                deferred.push(d);
            }
        }
    }

    /// Tries the conversions that found their file open.
    pub(super) fn retry_deferred(&self, deferred: &mut Vec<Deferred>) {
        let now = Instant::now();
        let mut still = Vec::new();
        for d in deferred.drain(..) {
            if now >= d.until {
                self.kept_real(KeptReal::Open);
                continue;
            }
            if let Some(d) = self.convert_one(d) {
                still.push(d);
            }
        }
        *deferred = still;
    }

    /// Converts one output; gives it back if it is open.
    fn convert_one(&self, d: Deferred) -> Option<Deferred> {
        let entry = &d.pack.header.entries[d.index];
        let c = &d.convert;
        if !c.mount.is_live() {
            return None;
        }
        // The file must still hold the stored bytes: its stat is unchanged since it was
        // stored (the hash cache knows its digest), or its bytes are read again.
        let path = c.path.clone();
        let stat = match self.fs().digest(&path) {
            Ok((digest, stat)) if digest == entry.digest => stat,
            Ok(_) => {
                self.kept_real(KeptReal::Changed);
                return None;
            }
            Err(e) => {
                debug!("not converting {}: {e}", path.display());
                self.kept_real(KeptReal::NotRealFile);
                return None;
            }
        };
        let rel = c.rel.clone();
        match c
            .mount
            .core
            .convert_to_projection(&rel, d.pack.clone(), d.index, &stat)
        {
            Ok(Ok(_)) => {
                self.stats.update(|s| {
                    s.miss_outputs_projected += 1;
                    s.miss_bytes_projected += entry.size;
                });
                None
            }
            Ok(Err(KeptReal::Open)) => Some(d),
            Ok(Err(why)) => {
                self.kept_real(why);
                None
            }
            Err(e) => {
                warn!("converting {}: {e}", path.display());
                self.kept_real(KeptReal::NotRealFile);
                None
            }
        }
    }

    fn kept_real(&self, why: KeptReal) {
        let reason = why.reason();
        self.stats
            .update(|s| *s.miss_outputs_kept_real.entry(reason.into()).or_default() += 1);
    }
}
