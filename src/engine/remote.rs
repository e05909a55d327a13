//! The engine's side of the remote tier: on a local miss, learn the key's entries from the
//! remote and fetch the pack of the one that matches (verified before it enters the local
//! store; the hit is then an ordinary local hit); after a result is stored locally, upload
//! it in the background. See docs/remote.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tracing::{debug, info, warn};

use super::Engine;
use crate::compiler::Language;
use crate::hash::Digest;
use crate::remote::uploads::{Queue, Upload};
use crate::remote::{Failure, Put, Remote};
use crate::store::OpenError;
use crate::store::manifest::{Entry, Manifest};

/// Upload workers (uploads are network-bound; two keep a link busy without competing with
/// compiles for the CPU).
const UPLOAD_WORKERS: usize = 2;
/// Bytes waiting for upload at most.
const UPLOAD_QUEUE_BYTES: u64 = 1 << 30;
/// Attempts of one upload call (writes only: a read is never retried).
const UPLOAD_ATTEMPTS: u32 = 3;
/// How long the daemon waits for uploads when it stops.
const DRAIN_ON_EXIT: Duration = Duration::from_secs(30);

/// The remote as the engine holds it.
pub struct RemoteTier {
    pub remote: Arc<Remote>,
    pub queue: Arc<Queue>,
    /// Downloads in flight, by pack id: a second compile wanting the same pack waits for
    /// the first download instead of starting its own.
    fetching: Mutex<std::collections::HashSet<Digest>>,
    fetched: Condvar,
    /// Failures and drops since the last `zcfs remote flush`.
    since_flush: Mutex<(u64, u64)>,
    /// Packs whose remote copy failed verification: an upload of them overwrites it.
    damaged: Mutex<std::collections::HashSet<Digest>>,
    /// Packs remote manifests name but the remote lacks: their entries are dropped from
    /// the remote manifest at the next upload of the key.
    dangling: Mutex<std::collections::HashSet<Digest>>,
}

/// How a pack fetch ended.
pub(super) enum Fetch {
    /// Now in the local store.
    Fetched,
    /// The remote does not have it (a dangling entry).
    Absent,
    /// Not available now (an error, the breaker, mode).
    Failed,
}

impl RemoteTier {
    pub fn new(remote: Remote, upload_queue: usize) -> RemoteTier {
        RemoteTier {
            remote: Arc::new(remote),
            queue: Arc::new(Queue::new(upload_queue, UPLOAD_QUEUE_BYTES)),
            fetching: Mutex::new(Default::default()),
            fetched: Condvar::new(),
            since_flush: Mutex::new((0, 0)),
            damaged: Mutex::new(Default::default()),
            dangling: Mutex::new(Default::default()),
        }
    }
}

/// Builds the remote tier of a configuration; a URL that does not parse turns it off with
/// a logged reason (returned for `zcfs remote status`), the local cache unaffected.
pub(super) fn open(config: &crate::config::Config) -> (Option<RemoteTier>, Option<String>) {
    let env = |k: &str| std::env::var(k).ok();
    match Remote::open(&config.remote, &env) {
        Ok(Some(r)) => {
            info!("remote {} ({}, {})", r.location, r.scheme, r.mode().name());
            (Some(RemoteTier::new(r, config.remote.upload_queue)), None)
        }
        Ok(None) => (None, None),
        Err(e) => {
            warn!("remote disabled: {e}");
            (None, Some(e))
        }
    }
}

impl Engine {
    /// Starts the upload workers (if the remote may be written).
    pub(super) fn start_uploaders(self: &Arc<Self>) -> std::io::Result<()> {
        let Some(tier) = &self.remote else {
            return Ok(());
        };
        if !tier.remote.can_write() {
            return Ok(());
        }
        for i in 0..UPLOAD_WORKERS {
            let e = self.clone();
            std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || e.upload_worker())?;
        }
        Ok(())
    }

    fn upload_worker(&self) {
        let Some(tier) = &self.remote else { return };
        while let Some(u) = tier.queue.pop() {
            self.upload(tier, &u);
            tier.queue.done();
        }
    }

    /// Sends one stored result: the pack (unless the remote has it), then the entry.
    fn upload(&self, tier: &RemoteTier, u: &Upload) {
        let t = Instant::now();
        let fail = |f: &Failure| {
            debug!("upload of {} failed: {f}", u.entry.pack.short());
            tier.since_flush.lock().0 += 1;
            self.stats.update(|d| {
                d.remote.uploads_failed += 1;
                if let Some(r) = f.reason() {
                    d.remote.error(r);
                }
            });
        };
        let pack = match self.store.open_pack(&u.entry.pack) {
            Ok(p) => p,
            Err(e) => {
                // Evicted or damaged meanwhile: nothing to send.
                debug!("not uploading {}: {e:?}", u.entry.pack.short());
                return;
            }
        };
        // Every failed attempt is counted by its kind; the upload once, as failed.
        let retried = |e: &crate::remote::RemoteError| {
            self.stats.update(|d| d.remote.error(e.kind.name()));
        };
        let replace = tier.damaged.lock().contains(&u.entry.pack);
        let sent = match with_retries(
            || tier.remote.put_pack(&u.entry.pack, pack.bytes(), replace),
            &retried,
        ) {
            Ok(p) => p,
            Err(f) => return fail(&f),
        };
        if replace {
            info!(
                "replaced the damaged remote copy of pack {}",
                u.entry.pack.short()
            );
            tier.damaged.lock().remove(&u.entry.pack);
        }
        let unusable =
            |id: &Digest| tier.damaged.lock().contains(id) || tier.dangling.lock().contains(id);
        let entry = match with_retries(
            || tier.remote.put_entry(&u.key, &u.entry, &unusable),
            &retried,
        ) {
            Ok(p) => p,
            Err(f) => return fail(&f),
        };
        self.stats.update(|d| {
            if sent == Put::Stored {
                d.remote.bytes_up += pack.size();
            }
            if sent == Put::Existed && entry == Put::Existed {
                d.remote.uploads_existing += 1;
            } else {
                d.remote.uploads += 1;
            }
            d.remote.upload_time.record(t.elapsed());
        });
    }

    /// Queues a stored result for upload (never waits).
    pub(super) fn queue_upload(&self, key: Digest, entry: &Entry, size: u64) {
        let Some(tier) = &self.remote else { return };
        if !tier.remote.can_write() {
            return;
        }
        let queued = tier.queue.push(Upload {
            key,
            entry: entry.clone(),
            size,
        });
        if !queued {
            tier.since_flush.lock().1 += 1;
            self.stats.update(|d| d.remote.uploads_dropped += 1);
        }
    }

    /// On a local miss: the remote's entries for a key that the local manifest lacks,
    /// merged into it. Empty when there is no remote, it has none, or it failed (counted).
    pub(super) fn remote_entries(
        &self,
        key: &Digest,
        local: Option<&Manifest>,
        lang: Language,
    ) -> Vec<Entry> {
        let Some(tier) = &self.remote else {
            return Vec::new();
        };
        if !tier.remote.can_read() || self.config.recache {
            return Vec::new();
        }
        let t = Instant::now();
        let got = tier.remote.get_manifest(key);
        let waited = t.elapsed();
        let m = match got {
            Ok(m) => m,
            Err(f) => {
                debug!("remote manifest {}: {f}", key.short());
                if let Some(r) = f.reason() {
                    self.stats.update(|d| {
                        d.remote.lookups += 1;
                        d.remote.error(r);
                        d.remote.wait_manifest.record(waited);
                    });
                }
                return Vec::new();
            }
        };
        let entries: Vec<Entry> = m
            .map(|m| m.entries)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| local.is_none_or(|l| !l.entries.iter().any(|x| x.inputs == e.inputs)))
            .collect();
        let found = !entries.is_empty();
        let learnt = match self.store.merge_entries(key, entries.clone()) {
            Ok(new) => new.len(),
            Err(e) => {
                // Still usable for this lookup.
                warn!("cannot record remote entries of {}: {e}", key.short());
                self.stats.error(lang, super::store_error_kind(&e));
                entries.len()
            }
        };
        self.stats.update(|d| {
            d.remote.lookups += 1;
            d.remote.manifest_found += found as u64;
            d.remote.entries_learnt += learnt as u64;
            d.remote.wait_manifest.record(waited);
        });
        entries
    }

    /// Fetches a pack from the remote into the local store, verified. One download per
    /// pack at a time.
    pub(super) fn fetch_pack(&self, id: &Digest) -> Fetch {
        let Some(tier) = &self.remote else {
            return Fetch::Failed;
        };
        if !tier.remote.can_read() {
            return Fetch::Failed;
        }
        {
            let mut f = tier.fetching.lock();
            if f.contains(id) {
                tier.fetched
                    .wait_while_for(&mut f, |f| f.contains(id), Duration::from_secs(60));
                drop(f);
                return if self.store.has_pack(id) {
                    Fetch::Fetched
                } else {
                    Fetch::Failed
                };
            }
            f.insert(*id);
        }
        let r = self.download(tier, id);
        tier.fetching.lock().remove(id);
        tier.fetched.notify_all();
        r
    }

    fn download(&self, tier: &RemoteTier, id: &Digest) -> Fetch {
        let t = Instant::now();
        let mut temp = match self.store.pack_temp() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot download pack {}: {e}", id.short());
                self.stats.update(|d| d.remote.error("io"));
                return Fetch::Failed;
            }
        };
        // Checked as it arrives: a wrong object is refused after its header, and no byte
        // is read a second time.
        let (got, refused) = {
            let w = std::io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
            let mut check = crate::store::pack::StreamCheck::new(w, *id);
            let got = tier.remote.get_pack(id, &mut check);
            let refused = check.refused().map(str::to_string);
            let got = match (got, refused.is_some()) {
                (Ok(Some(n)), false) => match check.finish() {
                    Ok(_) => Ok(Some(n)),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return self.corrupt_download(tier, id, &e.to_string(), t);
                    }
                    Err(e) => Err(Failure::Error(crate::remote::RemoteError::new(
                        crate::remote::ErrorKind::Io,
                        e.to_string(),
                    ))),
                },
                (got, _) => got,
            };
            (got, refused)
        };
        if let Some(why) = refused {
            return self.corrupt_download(tier, id, &why, t);
        }
        let waited = t.elapsed();
        let fetch = match got {
            Ok(None) => {
                debug!("pack {} is not on the remote", id.short());
                self.stats.update(|d| d.remote.error("dangling"));
                tier.dangling.lock().insert(*id);
                Fetch::Absent
            }
            Ok(Some(n)) => match self.store.adopt(temp, id, true) {
                Ok(_) => {
                    self.stats.update(|d| {
                        d.remote.packs_downloaded += 1;
                        d.remote.bytes_down += n;
                    });
                    Fetch::Fetched
                }
                Err(OpenError::Corrupt(msg)) => {
                    return self.corrupt_download(tier, id, &msg, t);
                }
                Err(OpenError::Missing) | Err(OpenError::Io(_)) => {
                    self.stats.update(|d| d.remote.error("io"));
                    Fetch::Failed
                }
            },
            Err(f) => {
                debug!("pack {}: {f}", id.short());
                if let Some(r) = f.reason() {
                    self.stats.update(|d| d.remote.error(r));
                }
                Fetch::Failed
            }
        };
        self.stats.update(|d| d.remote.wait_pack.record(waited));
        fetch
    }

    /// A downloaded pack that is not what it claims: discarded (the temp file goes with the
    /// caller's), counted, and its remote copy marked for replacement.
    fn corrupt_download(&self, tier: &RemoteTier, id: &Digest, why: &str, t: Instant) -> Fetch {
        warn!(
            "pack {} from the remote is corrupt ({why}); discarded",
            id.short()
        );
        tier.damaged.lock().insert(*id);
        self.stats.update(|d| {
            d.remote.error("corrupt");
            d.remote.wait_pack.record(t.elapsed());
        });
        Fetch::Failed
    }

    /// `zcfs remote flush`: waits for the results stored so far to be uploaded.
    pub(super) fn remote_flush(&self, max: Duration) -> serde_json::Value {
        let t = Instant::now();
        self.wait_published(max);
        let Some(tier) = &self.remote else {
            return serde_json::json!({ "configured": false });
        };
        let idle = tier.queue.wait_idle(max.saturating_sub(t.elapsed()));
        let (queued, bytes, in_flight) = tier.queue.pending();
        let (failed, dropped) = std::mem::take(&mut *tier.since_flush.lock());
        serde_json::json!({
            "configured": true,
            "done": idle,
            "queued": queued,
            "queued_bytes": bytes,
            "in_flight": in_flight,
            "failed": failed,
            "dropped": dropped,
            "mode": tier.remote.mode().name(),
        })
    }

    /// `zcfs remote push`: queues every local entry whose pack is here (waiting for room,
    /// never dropping). The caller flushes.
    pub(super) fn remote_push(&self) -> serde_json::Value {
        let Some(tier) = &self.remote else {
            return serde_json::json!({ "configured": false });
        };
        if !tier.remote.can_write() {
            return serde_json::json!({ "configured": true, "queued": 0, "mode": tier.remote.mode().name() });
        }
        let mut queued = 0u64;
        for key in self.store.manifest_keys() {
            let Some(m) = self.store.manifest(&key) else {
                continue;
            };
            // Oldest first, so that the remote's manifest ends newest first.
            for e in m.entries.iter().rev() {
                if !self.store.has_pack(&e.pack) {
                    continue;
                }
                let size = std::fs::metadata(self.store.pack_path(&e.pack))
                    .map(|m| m.len())
                    .unwrap_or(0);
                if tier.queue.push_waiting(Upload {
                    key,
                    entry: e.clone(),
                    size,
                }) {
                    queued += 1;
                }
            }
        }
        serde_json::json!({ "configured": true, "queued": queued, "mode": tier.remote.mode().name() })
    }

    /// `zcfs remote status`: the remote's settings and state, and one probe.
    pub(super) fn remote_status(&self) -> serde_json::Value {
        let Some(tier) = &self.remote else {
            return serde_json::json!({
                "configured": false,
                "error": self.remote_error,
            });
        };
        let r = &tier.remote;
        let probe = r.probe();
        if probe.is_ok() {
            // It answers: reads need not wait for the breaker's next probe.
            r.read.success();
        }
        let (queued, bytes, in_flight) = tier.queue.pending();
        serde_json::json!({
            "configured": true,
            "location": r.location,
            "backend": r.scheme,
            "mode": r.mode().name(),
            "configured_mode": r.configured.name(),
            "reachable": probe.is_ok(),
            "probe_ms": probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            "probe_error": probe.err().map(|e| e.to_string()),
            "read_breaker": r.read.state(),
            "write_breaker": r.write.state(),
            "breaker_trips": r.read.trips() + r.write.trips(),
            "uploads_queued": queued,
            "uploads_queued_bytes": bytes,
            "uploads_in_flight": in_flight,
        })
    }

    /// The remote's state for `zcfs stats`.
    pub(super) fn remote_summary(&self) -> Option<(String, &'static str, String)> {
        let tier = self.remote.as_ref()?;
        let r = &tier.remote;
        let breaker = match (r.read.state(), r.write.state()) {
            (
                crate::remote::breaker::BreakerState::Closed,
                crate::remote::breaker::BreakerState::Closed,
            ) => "closed".to_string(),
            (rd, wr) => format!("reads {}, writes {}", rd.name(), wr.name()),
        };
        Some((r.location.clone(), r.mode().name(), breaker))
    }

    /// Stops the upload workers after the queue drains (bounded).
    pub(super) fn drain_uploads(&self) {
        if let Some(tier) = &self.remote {
            if !tier.queue.wait_idle(DRAIN_ON_EXIT) {
                let (n, _, _) = tier.queue.pending();
                warn!("stopping with {n} uploads not done");
            }
            tier.queue.close();
        }
    }
}

/// Runs an upload call again after a failure that says the store is unwell (timeout,
/// connection, 5xx, 429), up to [`UPLOAD_ATTEMPTS`] times, 200 ms then 800 ms apart (plus up
/// to 100 ms of jitter, so that workers do not retry in step). The breaker sees every
/// attempt; once it opens, the call is skipped.
fn with_retries<T>(
    mut f: impl FnMut() -> Result<T, Failure>,
    retried: &dyn Fn(&crate::remote::RemoteError),
) -> Result<T, Failure> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match f() {
            Err(Failure::Error(e)) if attempt < UPLOAD_ATTEMPTS && e.kind.trips_breaker() => {
                retried(&e);
                let jitter = Duration::from_millis(crate::util::random_u64() % 100);
                std::thread::sleep(delay + jitter);
                delay *= 4;
                attempt += 1;
            }
            r => return r,
        }
    }
}
