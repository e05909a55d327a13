//! The miss path after the compiler succeeded: store its outputs as a pack with the entry
//! its family collected (for rustc with the path bindings, spec X2), publish it in the
//! background, and turn the outputs in a mount into projections of the stored pack (issue 4:
//! target/ holds no second copy).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Engine, Pending};
use crate::compiler::Language;
use crate::compiler::family::{Done, ToStore};
use crate::fsview::FsView;
use crate::fsview::mounted::MountedFs;
use crate::mount::LiveMount;
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
    /// After a successful miss: the outputs stored as a pack, the entry (the inputs the
    /// compile's family collected) published with it, and the outputs in a mount turned
    /// into projections of the pack.
    pub(super) fn store_result(&self, p: &Pending, stdout: Vec<u8>, stderr: Vec<u8>) -> bool {
        let job = &*p.job;
        let what = job.describe();
        let not_stored = |reason: &str, detail: String| {
            info!("{what}: not stored: {reason}: {detail}");
            self.stats.not_stored(reason);
            false
        };
        let fs = self.fs_with(job.aliases().to_vec());
        let t_collect = Instant::now();
        let collected = match job.collect(&Done {
            fs: &fs,
            start: &p.start,
            scratch: p.scratch.as_deref(),
            stderr: &stderr,
        }) {
            Ok(c) => c,
            Err(u) => return not_stored(u.reason, u.detail),
        };
        let collect_time = t_collect.elapsed();
        let ToStore {
            outputs,
            mut inputs,
            mut meta,
            stderr: stored_stderr,
        } = collected;
        let mut files: Vec<File> = Vec::with_capacity(outputs.len());
        for (_, path) in &outputs {
            match fs.open(path) {
                Ok(f) => files.push(f),
                Err(e) => return not_stored("missing output", format!("{}: {e}", path.display())),
            }
        }
        let temp = match self.store.pack_temp() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot store {what}: {e}");
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };
        let sources: Vec<pack::Source<'_>> = outputs
            .iter()
            .zip(&files)
            .map(|((name, _), f)| pack::Source {
                name: name.clone(),
                file: f,
            })
            .collect();
        meta.insert("created".into(), unix_now().into());
        let meta = serde_json::Value::Object(meta).to_string().into_bytes();
        let stderr = stored_stderr.unwrap_or(stderr);
        let written = match pack::write(temp.as_file(), &sources, stdout, stderr, meta) {
            Ok(w) => w,
            Err(WriteError::SourceChanged(n)) => {
                return not_stored("output modified during store", n);
            }
            Err(WriteError::Io(e)) => {
                warn!("cannot store {what}: {e}");
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };
        if let Err(e) = job.bind(
            temp.as_file(),
            &written,
            &mut inputs,
            self.config.sloppiness,
        ) {
            warn!("cannot scan {what}: {e}");
            self.stats.error(p.lang, "store write failed");
            return false;
        }
        // The outputs' bytes are known now: later keys that use them as inputs need not
        // read them again.
        for (i, (_, path)) in outputs.iter().enumerate() {
            self.hashes.record_trusted(
                path,
                written.source_stats[i],
                written.header.entries[i].digest,
            );
        }
        debug!(
            "{what}: {} inputs, {} paths that must stay absent (collected in {collect_time:?}, \
             stored in {:?})",
            inputs.files.len(),
            inputs.absent.len()
                + inputs
                    .absent_under
                    .iter()
                    .map(|g| g.names.len())
                    .sum::<usize>(),
            t_collect.elapsed() - collect_time
        );
        tracing::trace!("{what}: inputs {inputs:?}");
        let paths: Vec<PathBuf> = outputs.into_iter().map(|(_, p)| p).collect();
        let convert = self.conversions(&fs, &paths);
        let entry = Entry {
            inputs,
            pack: written.id,
            created: unix_now(),
        };
        if let Some(cwd) = &p.cargo_cwd {
            self.note_produced(written.id, &entry.inputs, cwd);
        }
        self.send_to_publisher(job.key(), p.lang, temp, written, entry, convert)
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
