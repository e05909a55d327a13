//! The engine: answers protocol requests. It owns the store, the hash and identity caches,
//! the stats and the misses in flight. It knows nothing of sockets (see `daemon`), so it can
//! be tested directly.

use crate::os::OsStringExt;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::compiler::{Compile, Family, Invocation, KeyContext, KeyError, Language, Views};
use crate::config::Config;
use crate::deliver::Deliver;
use crate::fsutil::KernelClock;
use crate::fsview::FsView;
use crate::fsview::fsclock::CompileStart;
use crate::fsview::hashcache::HashCache;
use crate::fsview::mounted::MountedFs;
use crate::mount::Mounts;
use crate::paths::Paths;
use crate::proto::{CompileOutcome, CompileRequest, Reply, Request};
use crate::stats::{self, Stats};
use crate::store::Store;
use crate::store::pack::{self};

/// Misses older than this are forgotten (their wrapper died).
const PENDING_TTL: Duration = Duration::from_secs(6 * 3600);

mod hit;
mod miss;
mod remote;
mod snapshot;

/// A miss in flight: the compiler runs, its wrapper reports back with the token.
struct Pending {
    job: Box<dyn Compile>,
    lang: Language,
    start: CompileStart,
    created: Instant,
    /// A file zcfs asked the compiler to write (rustc's linker dependency file, a C
    /// compile's dependency file); removed when the compile is done.
    scratch: Option<PathBuf>,
    /// The compile's working directory (its entry's relative paths are relative to it),
    /// when cargo runs it (see `Engine::note_produced`).
    cargo_cwd: Option<PathBuf>,
}

pub struct Engine {
    pub config: Config,
    pub paths: Paths,
    pub store: Store,
    pub mounts: Mounts,
    pub hashes: HashCache,
    /// The compiler families (`compiler::families`), asked in order.
    families: Vec<Box<dyn Family>>,
    pub stats: Stats,
    clock: KernelClock,
    deliver: Box<dyn Deliver>,
    pending: Mutex<HashMap<u64, Pending>>,
    publish_tx: Mutex<Option<mpsc::Sender<miss::PublishJob>>>,
    /// Keys whose result is being published, and the condition signalled when one is done.
    publishing: (Mutex<HashSet<crate::hash::Digest>>, Condvar),
    /// The remote tier, if configured.
    remote: Option<remote::RemoteTier>,
    /// Why the configured remote is off (a URL that does not parse).
    remote_error: Option<String>,
    /// What each pack served or stored in this daemon's life was checked against, for the
    /// snapshot records of the units it belongs to (`snapshot::Produced`).
    produced: Mutex<HashMap<crate::hash::Digest, Arc<snapshot::Produced>>>,
    /// Per (snapshot index, unit): the stats digest the client last sent and the unit's
    /// own identity computed from its files then.
    snapshot_stats: Mutex<snapshot::StatsCache>,
    /// Hits and misses served (a snapshot's record is skipped when none came).
    compiles: std::sync::atomic::AtomicU64,
    /// Per snapshot index: the compile count when its build dir was last recorded in full.
    snapshot_recorded_at: Mutex<HashMap<PathBuf, u64>>,
}

impl Engine {
    /// Creates the engine and starts its publisher thread.
    pub fn start(
        config: Config,
        deliver: Box<dyn Deliver>,
        channel: Arc<dyn crate::mount::Channel>,
    ) -> anyhow::Result<Arc<Engine>> {
        let paths = Paths::new(&config);
        let store = Store::open(&paths, config.max_size);
        // The clock file lives in the runtime dir: it must work with a read-only cache dir.
        paths.ensure_runtime_dir()?;
        let clock = KernelClock::open(&paths.runtime_dir.join(format!("zcfs-{}.clock", paths.id)))?;
        let stats = Stats::load(&paths.stats_file());
        let mounts = Mounts::new(&paths, channel);
        let (remote, remote_error) = remote::open(&config);
        let families = crate::compiler::families(&paths);
        let watch = config.watch;
        let engine = Arc::new(Engine {
            remote,
            remote_error,
            config,
            store,
            mounts,
            hashes: HashCache::watching(watch),
            families,
            paths,
            stats,
            clock,
            deliver,
            pending: Mutex::new(HashMap::new()),
            publish_tx: Mutex::new(None),
            publishing: (Mutex::new(HashSet::new()), Condvar::new()),
            produced: Mutex::new(HashMap::new()),
            snapshot_stats: Mutex::new(HashMap::new()),
            compiles: std::sync::atomic::AtomicU64::new(0),
            snapshot_recorded_at: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::channel::<miss::PublishJob>();
        *engine.publish_tx.lock() = Some(tx);
        let e = engine.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let mut deferred = Vec::new();
                loop {
                    let wait = if deferred.is_empty() {
                        Duration::from_secs(3600)
                    } else {
                        Duration::from_millis(50)
                    };
                    match rx.recv_timeout(wait) {
                        Ok(job) => e.publish(job, &mut deferred),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    e.retry_deferred(&mut deferred);
                }
            })?;
        let e = engine.clone();
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || e.store.scan())?;
        engine.start_uploaders()?;
        Ok(engine)
    }

    pub fn handle(&self, req: Request) -> Reply {
        let arrived = crate::util::realtime_ns();
        if !matches!(req, Request::HitLatency { .. } | Request::Stats { .. }) {
            // Every change made before this request was sent is seen from here on.
            self.hashes.watch.sync();
        }
        match req {
            Request::Compile(c) => {
                let r = self.compile(c, arrived);
                // Hits and misses build units; what passes through (rustc's probes, compiles
                // zcfs does not cache) builds nothing a snapshot records.
                if matches!(r, Reply::Hit { .. } | Reply::Miss { .. }) {
                    self.compiles
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                r
            }
            Request::CompileDone { token, outcome } => self.compile_done(token, outcome),
            Request::HitLatency { micros } => {
                self.stats
                    .update(|d| d.hit_latency.record(Duration::from_micros(micros)));
                Reply::Ok
            }
            Request::Stats { zero } => {
                self.wait_published(Duration::from_secs(10));
                let (size, packs) = self.store.usage();
                let mut json =
                    stats::to_json(&self.stats.snapshot(), size, packs, self.store.max_size());
                json["mounts"] = serde_json::to_value(self.mounts.list()).unwrap_or_default();
                json["watch"] =
                    serde_json::to_value(self.hashes.watch.report()).unwrap_or_default();
                if let Some((location, mode, breaker)) = self.remote_summary() {
                    json["remote"]["location"] = location.into();
                    json["remote"]["mode"] = mode.into();
                    json["remote"]["breaker"] = breaker.into();
                }
                if zero {
                    self.stats.zero();
                }
                Reply::Json(json.to_string())
            }
            Request::Gc => {
                self.wait_published(Duration::from_secs(30));
                self.evict();
                let r = self.store.gc();
                self.stats.update(|d| {
                    d.evicted_packs += r.evicted_packs;
                    d.evicted_bytes += r.evicted_bytes;
                    d.corrupt_packs += r.corrupt_packs;
                });
                Reply::Json(serde_json::to_string(&r).unwrap_or_default())
            }
            Request::Clear => {
                self.wait_published(Duration::from_secs(30));
                let r = self.store.clear();
                // Snapshot records name the packs just removed.
                let _ = std::fs::remove_dir_all(self.paths.cache_dir.join("snapshots"));
                Reply::Json(serde_json::to_string(&r).unwrap_or_default())
            }
            Request::Mount { dir, opts } => {
                let dir = PathBuf::from(OsString::from_vec(dir.0));
                match self.mounts.mount(&dir, opts, &self.store) {
                    Ok(m) => Reply::Mounted(m),
                    Err(e) => {
                        warn!("mount {}: {e:#}", dir.display());
                        Reply::Error(format!("{e:#}"))
                    }
                }
            }
            Request::Unmount {
                dir,
                force,
                materialize,
            } => {
                let dir = PathBuf::from(OsString::from_vec(dir.0));
                match self.mounts.unmount(&dir, force, materialize) {
                    Ok(u) => Reply::Unmounted(u),
                    Err(e) => Reply::Error(format!("{e:#}")),
                }
            }
            Request::ProjectFile {
                dir,
                rel,
                src,
                perm,
                mtime,
            } => {
                let os = |b: crate::proto::Bytes| PathBuf::from(OsString::from_vec(b.0));
                match self.project_file(&os(dir), &os(rel), &os(src), perm, mtime) {
                    Ok(()) => Reply::Ok,
                    Err(e) => Reply::Error(format!("{e:#}")),
                }
            }
            Request::SnapshotRecord {
                at,
                units,
                refused,
                since,
            } => {
                if since.is_some() {
                    // Only the question; the client surveys and asks again if it must.
                    let unchanged = self.snapshot_unchanged(&at, since);
                    return Reply::Json(serde_json::json!({ "unchanged": unchanged }).to_string());
                }
                match self.snapshot_record(at, units, refused) {
                    Ok(v) => Reply::Json(v.to_string()),
                    Err(e) => {
                        warn!("snapshot record: {e:#}");
                        self.stats.update(|d| d.snapshot.errors += 1);
                        Reply::Error(format!("{e:#}"))
                    }
                }
            }
            Request::SnapshotProject { at, env } => match self.snapshot_project(at, env) {
                Ok(mut v) => {
                    v["compiles"] = self
                        .compiles
                        .load(std::sync::atomic::Ordering::SeqCst)
                        .into();
                    Reply::Json(v.to_string())
                }
                Err(e) => {
                    warn!("snapshot projection: {e:#}");
                    self.stats.update(|d| d.snapshot.errors += 1);
                    Reply::Error(format!("{e:#}"))
                }
            },
            Request::RemoteStatus => Reply::Json(self.remote_status().to_string()),
            Request::RemotePush => Reply::Json(self.remote_push().to_string()),
            Request::RemoteFlush { timeout_secs } => Reply::Json(
                self.remote_flush(Duration::from_secs(timeout_secs))
                    .to_string(),
            ),
            // Status and Shutdown are answered by the daemon, which knows its process.
            Request::Status | Request::Shutdown => Reply::Error("not handled by the engine".into()),
        }
    }

    /// The engine's view of files: through the mount's core under its own mounts.
    pub fn fs(&self) -> MountedFs<'_> {
        self.fs_with(Vec::new())
    }

    /// [`Engine::fs`], with paths that reach a mount through a symlink (see
    /// [`Mounts::alias`]).
    pub fn fs_with(&self, aliases: Vec<(PathBuf, PathBuf)>) -> MountedFs<'_> {
        MountedFs {
            mounts: &self.mounts,
            hashes: &self.hashes,
            aliases,
        }
    }

    /// Stores a file as a pack and projects it into a mount (`zcfs project`).
    fn project_file(
        &self,
        dir: &Path,
        rel: &Path,
        src: &Path,
        perm: Option<u32>,
        mtime: Option<i128>,
    ) -> anyhow::Result<()> {
        use anyhow::Context;
        let (m, inner) = self
            .mounts
            .find(dir)
            .with_context(|| format!("{} is not under a zcfs mount", dir.display()))?;
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .context("the projected path needs a UTF-8 file name")?
            .to_string();
        let file =
            std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let temp = self.store.pack_temp()?;
        let w = pack::write(
            temp.as_file(),
            &[pack::Source { name, file: &file }],
            vec![],
            vec![],
            b"{\"compiler\":\"zcfs project\"}".to_vec(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.store.publish(temp, &w)?;
        let pack = self
            .store
            .open_pack(&w.id)
            .map_err(|e| anyhow::anyhow!("reopening the pack: {e:?}"))?;
        let perm = perm.unwrap_or(w.header.entries[0].mode) as u16;
        let mtime = match mtime {
            Some(t) => t,
            None => self.clock.now()?,
        };
        m.core
            .project(&[crate::projection::ProjectItem {
                path: inner.join(rel),
                pack,
                index: 0,
                perm,
                mtime,
            }])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Whether the caller's working directory is the directory that a mount hides, not the
    /// mount: a process that entered it before it was mounted (a shell, `make` started
    /// there). Its compiler would write below the mount, out of the mount's sight, and a
    /// hit would project where that process cannot see.
    fn cwd_below_mount(&self, cwd: &Path, id: (u64, u64)) -> bool {
        let fs = self.fs_with(Vec::new());
        let Some((m, rel)) = fs.locate(cwd) else {
            return false;
        };
        m.core
            .dir_handle(&rel)
            .ok()
            .and_then(|h| crate::os::dir_identity(&h))
            == Some(id)
    }

    fn compile(&self, req: CompileRequest, arrived: crate::fsutil::NanoTime) -> Reply {
        let t0 = Instant::now();
        let argv: Vec<OsString> = req
            .argv
            .into_iter()
            .map(|a| OsString::from_vec(a.0))
            .collect();
        let Some(program) = argv.first() else {
            return Reply::Error("empty command line".into());
        };
        let Some((family, lang)) = self
            .families
            .iter()
            .find_map(|f| Some((f, f.language_of(Path::new(program))?)))
        else {
            self.stats
                .uncacheable(Language::OTHER, "unsupported compiler");
            return Reply::PassThrough {
                reason: format!(
                    "{} is not a compiler zcfs caches yet",
                    program.to_string_lossy()
                ),
            };
        };
        let cwd = PathBuf::from(OsString::from_vec(req.cwd));
        if !cwd.is_absolute() {
            return Reply::Error("cwd is not absolute".into());
        }
        if let Some(id) = req.cwd_id
            && self.cwd_below_mount(&cwd, id)
        {
            self.stats.uncacheable(lang, "cwd below a mount");
            return Reply::PassThrough {
                reason: format!(
                    "the working directory is the directory below the zcfs mount at {}, \
                     not the mount (it was entered before the mount was made; `cd {0}` \
                     enters the mount)",
                    cwd.display()
                ),
            };
        }
        let env: HashMap<OsString, OsString> = req
            .env
            .into_iter()
            .map(|(k, v)| (OsString::from_vec(k.0), OsString::from_vec(v.0)))
            .collect();
        let caller = Invocation {
            argv: &argv,
            cwd: &cwd,
            env: &env,
            stderr_tty: req.stderr_tty,
            umask: req.umask,
            arrived,
        };
        let ctx = KeyContext {
            hashes: &self.hashes,
            sloppiness: self.config.sloppiness,
            views: self,
        };
        let mut job = match family.prepare(&caller, &ctx) {
            Ok(job) => job,
            Err(e) => return self.not_cached(lang, e),
        };
        let lang = job.language();
        let fs = self.fs_with(job.aliases().to_vec());
        // The compiler fails when a directory it writes into is missing; a hit must not
        // hide that.
        if let Err(u) = job.check_dirs(&fs) {
            self.stats.uncacheable(lang, u.reason);
            return Reply::PassThrough { reason: u.detail };
        }
        let key = job.key();
        if !self.config.recache {
            self.wait_not_publishing(&key, Duration::from_secs(5));
            if let Some(reply) = self.try_hit(&*job, &caller, &fs, t0.elapsed()) {
                return reply;
            }
        }

        // The start, on the kernel clock and as the filesystems of the checkout and the
        // outputs record time (crate::fsview::fsclock).
        let stamp_dirs = job.stamp_dirs();
        let dirs: Vec<&Path> = stamp_dirs.iter().map(PathBuf::as_path).collect();
        let start = match self.compile_start(&fs, &dirs, lang) {
            Ok(s) => s,
            Err(reply) => return *reply,
        };
        let token = self.new_token();
        let scratch = match job.scratch_suffix() {
            Some(suffix) => match self.scratch_file(token, suffix, lang) {
                Ok(p) => Some(p),
                Err(reply) => return *reply,
            },
            None => None,
        };
        let plan = job.start_miss(scratch.as_deref());
        debug!("miss {} key {}", job.describe(), key.short());
        self.pending.lock().insert(
            token,
            Pending {
                job,
                lang,
                start,
                created: Instant::now(),
                scratch,
                cargo_cwd: under_cargo(&caller).then(|| caller.cwd.to_path_buf()),
            },
        );
        self.stats.miss(lang);
        Reply::Miss {
            token,
            extra_args: plan
                .extra_args
                .into_iter()
                .map(crate::proto::Bytes)
                .collect(),
            insert_at: plan.insert_at.map(|i| i as u32),
            buffer_stderr: plan.buffer_stderr,
            rerun_if_failed_with: plan.rerun_if_failed_with.map(crate::proto::Bytes),
            strip_colour: plan.strip_colour,
        }
    }

    /// When a miss starts: the kernel clock, and stamps on the filesystems of `dirs` (the
    /// checkout's, the outputs').
    fn compile_start(
        &self,
        fs: &MountedFs<'_>,
        dirs: &[&Path],
        lang: Language,
    ) -> Result<CompileStart, Box<Reply>> {
        let devs: Vec<u64> = dirs.iter().filter_map(|d| fs.dir_device(d)).collect();
        let stamps = fs.clocks().stamps(&devs);
        match self.clock.now() {
            Ok(time) => Ok(CompileStart { time, stamps }),
            Err(e) => {
                warn!("kernel clock unavailable: {e}");
                self.stats.error(lang, "clock");
                Err(Box::new(Reply::PassThrough {
                    reason: format!("internal error: {e}"),
                }))
            }
        }
    }

    /// A private file for a compile in flight (in the scratch dir).
    fn scratch_file(
        &self,
        token: u64,
        suffix: &str,
        lang: Language,
    ) -> Result<PathBuf, Box<Reply>> {
        let dir = self.paths.scratch_dir();
        if let Err(e) = crate::paths::ensure_private_dir(&dir) {
            warn!("scratch dir: {e:#}");
            self.stats.error(lang, "scratch dir");
            return Err(Box::new(Reply::PassThrough {
                reason: format!("internal error: {e:#}"),
            }));
        }
        Ok(dir.join(format!("{token:016x}.{suffix}")))
    }

    /// A token for a miss, unique among the misses in flight.
    fn new_token(&self) -> u64 {
        loop {
            let t = crate::util::random_u64();
            if t != 0 && !self.pending.lock().contains_key(&t) {
                break t;
            }
        }
    }

    /// The reply to a compile that is not cached: run the compiler (reason counted).
    fn not_cached(&self, lang: Language, e: KeyError) -> Reply {
        match e {
            KeyError::Uncacheable(u) => {
                debug!("uncacheable: {u}");
                self.stats.uncacheable(lang, u.reason);
                Reply::PassThrough {
                    reason: u.to_string(),
                }
            }
            KeyError::Internal(e) => {
                warn!("cannot compute a key, running the compiler: {e:#}");
                self.stats.error(lang, "key computation");
                Reply::PassThrough {
                    reason: format!("internal error: {e:#}"),
                }
            }
        }
    }

    fn compile_done(&self, token: u64, outcome: CompileOutcome) -> Reply {
        let Some(p) = self.pending.lock().remove(&token) else {
            debug!("result for unknown token {token:x} (daemon restarted?)");
            return Reply::Done { stored: false };
        };
        let stored = match outcome {
            CompileOutcome::Success { stdout, stderr } => self.store_result(&p, stdout, stderr),
            CompileOutcome::Failed { code } => {
                debug!("{} failed with {code}; not stored", p.job.describe());
                self.stats.update(|d| d.failed_compiles += 1);
                false
            }
            CompileOutcome::Error { message } => {
                warn!("{}: wrapper error: {message}", p.job.describe());
                self.stats.error(p.lang, "wrapper");
                false
            }
        };
        if let Some(d) = &p.scratch {
            let _ = std::fs::remove_file(d);
        }
        Reply::Done { stored }
    }

    /// Evicts packs beyond the size cap. Packs that live projections use are kept; when
    /// only those are left above the cap, the projections of the least recently used ones
    /// are copied up first (spec M8).
    fn evict(&self) {
        let mut ev = self.store.evict_if_needed();
        if self.store.usage().0 > self.store.max_size() && ev.skipped_in_use > 0 {
            let freed = self.release_pinned_packs();
            if freed > 0 {
                let more = self.store.evict_if_needed();
                ev.evicted_packs += more.evicted_packs;
                ev.evicted_bytes += more.evicted_bytes;
            }
        }
        if ev.evicted_packs > 0 {
            self.stats.update(|d| {
                d.evicted_packs += ev.evicted_packs;
                d.evicted_bytes += ev.evicted_bytes;
            });
        }
    }

    /// Copies up the projections of the least recently used packs that mounts use, until
    /// the store would fit its cap without them. Returns the bytes of packs released.
    fn release_pinned_packs(&self) -> u64 {
        let (size, _) = self.store.usage();
        let target = self.store.evict_target();
        if size <= target {
            return 0;
        }
        let mut need = size - target;
        let mounts = self.mounts.all();
        let in_use: HashSet<crate::hash::Digest> =
            mounts.iter().flat_map(|m| m.core.packs_in_use()).collect();
        let mut freed = 0;
        for (id, pack_size) in self.store.lru_order() {
            if need == 0 {
                break;
            }
            if !in_use.contains(&id) {
                continue;
            }
            for m in &mounts {
                match m.core.materialize_pack(&id) {
                    Ok(n) if n > 0 => info!(
                        "store over its cap: copied up {n} projections of pack {} in {}",
                        id.short(),
                        m.dir.display()
                    ),
                    Ok(_) => {}
                    Err(e) => warn!("copying up projections of {}: {e}", id.short()),
                }
            }
            self.stats.update(|d| d.packs_released += 1);
            freed += pack_size;
            need = need.saturating_sub(pack_size);
        }
        freed
    }

    fn wait_not_publishing(&self, key: &crate::hash::Digest, max: Duration) {
        let (set, cv) = &self.publishing;
        let mut guard = set.lock();
        let _ = cv.wait_while_for(&mut guard, |s| s.contains(key), max);
    }

    /// Waits until every result handed to the publisher is published.
    pub fn wait_published(&self, max: Duration) {
        let (set, cv) = &self.publishing;
        let mut guard = set.lock();
        let _ = cv.wait_while_for(&mut guard, |s| !s.is_empty(), max);
    }

    /// Periodic housekeeping: flush stats and LRU times, forget abandoned misses.
    pub fn housekeeping(&self) {
        self.stats.flush(&self.paths.stats_file());
        self.store.flush();
        for m in self.mounts.all() {
            m.core.tend();
        }
        let mut pending = self.pending.lock();
        pending.retain(|_, p| {
            let keep = p.created.elapsed() < PENDING_TTL;
            if !keep && let Some(d) = &p.scratch {
                let _ = std::fs::remove_file(d);
            }
            keep
        });
    }

    /// Finishes pending publications and flushes state; the engine serves nothing after.
    pub fn shutdown(&self) {
        self.publish_tx.lock().take();
        self.wait_published(Duration::from_secs(30));
        self.drain_uploads();
        self.housekeeping();
    }

    pub fn pending_misses(&self) -> usize {
        self.pending.lock().len()
    }

    /// Uploads queued or in flight.
    pub fn uploads_pending(&self) -> usize {
        self.remote.as_ref().map_or(0, |t| {
            let (queued, _, in_flight) = t.queue.pending();
            queued + in_flight
        })
    }
}

/// Whether cargo runs the compile (it sets `CARGO` for rustc and for build scripts).
pub(super) fn under_cargo(caller: &crate::compiler::Invocation<'_>) -> bool {
    caller.env.contains_key(std::ffi::OsStr::new("CARGO"))
}

pub(super) fn store_error_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => "store full",
        ReadOnlyFilesystem | PermissionDenied => "store read-only",
        _ => "store write failed",
    }
}

impl Views for Engine {
    fn alias(&self, path: &Path) -> Option<(PathBuf, PathBuf)> {
        self.mounts.alias(path)
    }

    fn view(&self, aliases: Vec<(PathBuf, PathBuf)>) -> Box<dyn FsView + '_> {
        Box::new(self.fs_with(aliases))
    }
}
