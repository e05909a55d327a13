//! The engine: answers protocol requests. It owns the store, the hash and identity caches,
//! the stats and the misses in flight. It knows nothing of sockets (see `daemon`), so it can
//! be tested directly.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::compiler::rustc::{self, KeyError, KeyInputs, RustcJob};
use crate::compiler::{Language, classify};
use crate::config::Config;
use crate::deliver::{Deliver, Delivery};
use crate::fsutil::{KernelClock, NanoTime, resolve};
use crate::hashcache::HashCache;
use crate::mount::Mounts;
use crate::paths::Paths;
use crate::proto::{CompileOutcome, CompileRequest, Reply, Request};
use crate::stats::{self, HitPhases, Stats};
use crate::store::manifest::{Entry, Inputs};
use crate::store::pack::{self, WriteError};
use crate::store::{OpenError, Store, open_sources, unix_now};

/// Misses older than this are forgotten (their wrapper died).
const PENDING_TTL: Duration = Duration::from_secs(6 * 3600);

struct Pending {
    job: RustcJob,
    lang: Language,
    start: NanoTime,
    created: Instant,
    link_depfile: Option<PathBuf>,
}

struct PublishJob {
    temp: tempfile::NamedTempFile,
    written: pack::Written,
    key: crate::hash::Digest,
    entry: Entry,
}

pub struct Engine {
    pub config: Config,
    pub paths: Paths,
    pub store: Store,
    pub mounts: Mounts,
    pub hashes: HashCache,
    pub identities: rustc::IdentityCache,
    pub stats: Stats,
    clock: KernelClock,
    deliver: Box<dyn Deliver>,
    pending: Mutex<HashMap<u64, Pending>>,
    publish_tx: Mutex<Option<mpsc::Sender<PublishJob>>>,
    /// Keys whose result is being published, and the condition signalled when one is done.
    publishing: (Mutex<HashSet<crate::hash::Digest>>, Condvar),
}

impl Engine {
    /// Creates the engine and starts its publisher thread.
    pub fn start(config: Config, deliver: Box<dyn Deliver>) -> anyhow::Result<Arc<Engine>> {
        let paths = Paths::new(&config);
        let store = Store::open(&paths, config.max_size);
        // The clock file lives in the runtime dir: it must work with a read-only cache dir.
        paths.ensure_runtime_dir()?;
        let clock = KernelClock::open(&paths.runtime_dir.join(format!("zcfs-{}.clock", paths.id)))?;
        let stats = Stats::load(&paths.stats_file());
        let mounts = Mounts::new(&paths);
        let engine = Arc::new(Engine {
            config,
            paths,
            store,
            mounts,
            hashes: HashCache::new(),
            identities: rustc::IdentityCache::new(),
            stats,
            clock,
            deliver,
            pending: Mutex::new(HashMap::new()),
            publish_tx: Mutex::new(None),
            publishing: (Mutex::new(HashSet::new()), Condvar::new()),
        });
        let (tx, rx) = mpsc::channel::<PublishJob>();
        *engine.publish_tx.lock() = Some(tx);
        let e = engine.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                for job in rx {
                    e.publish(job);
                }
            })?;
        let e = engine.clone();
        std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || e.store.scan())?;
        Ok(engine)
    }

    pub fn handle(&self, req: Request) -> Reply {
        match req {
            Request::Compile(c) => self.compile(c),
            Request::CompileDone { token, outcome } => self.compile_done(token, outcome),
            Request::HitLatency { micros } => {
                self.stats
                    .update(|d| d.hit_latency.record(Duration::from_micros(micros)));
                Reply::Ok
            }
            Request::Stats { zero } => {
                self.wait_published(Duration::from_secs(10));
                let (size, packs) = self.store.usage();
                let json =
                    stats::to_json(&self.stats.snapshot(), size, packs, self.store.max_size());
                if zero {
                    self.stats.zero();
                }
                Reply::Json(json.to_string())
            }
            Request::Gc => {
                self.wait_published(Duration::from_secs(30));
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
            // Status and Shutdown are answered by the daemon, which knows its process.
            Request::Status | Request::Shutdown => Reply::Error("not handled by the engine".into()),
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
        m.vfs
            .project(&[crate::vfs::ProjectItem {
                path: inner.join(rel),
                pack,
                index: 0,
                perm,
                mtime,
            }])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn compile(&self, req: CompileRequest) -> Reply {
        let t0 = Instant::now();
        let argv: Vec<OsString> = req
            .argv
            .into_iter()
            .map(|a| OsString::from_vec(a.0))
            .collect();
        let Some(program) = argv.first() else {
            return Reply::Error("empty command line".into());
        };
        let lang = classify(Path::new(program));
        if lang != Language::Rust {
            self.stats.uncacheable(lang, "unsupported compiler");
            return Reply::PassThrough {
                reason: format!(
                    "{} is not a compiler zcfs caches yet",
                    program.to_string_lossy()
                ),
            };
        }
        let cwd = PathBuf::from(OsString::from_vec(req.cwd));
        if !cwd.is_absolute() {
            return Reply::Error("cwd is not absolute".into());
        }
        let env: HashMap<OsString, OsString> = req
            .env
            .into_iter()
            .map(|(k, v)| (OsString::from_vec(k.0), OsString::from_vec(v.0)))
            .collect();

        let job = match rustc::prepare(&KeyInputs {
            argv: &argv,
            cwd: &cwd,
            env: &env,
            hashes: &self.hashes,
            identities: &self.identities,
        }) {
            Ok(job) => job,
            Err(KeyError::Uncacheable(u)) => {
                debug!("uncacheable: {u}");
                self.stats.uncacheable(lang, u.reason);
                return Reply::PassThrough {
                    reason: u.to_string(),
                };
            }
            Err(KeyError::Internal(e)) => {
                warn!("cannot compute a key, running the compiler: {e:#}");
                self.stats.error(lang, "key computation");
                return Reply::PassThrough {
                    reason: format!("internal error: {e:#}"),
                };
            }
        };

        // rustc fails when its out-dir is missing; a hit must not hide that.
        if !job.out_dir.is_dir() {
            self.stats.uncacheable(lang, "out-dir missing");
            return Reply::PassThrough {
                reason: format!("out-dir {} does not exist", job.out_dir.display()),
            };
        }

        if !self.config.recache {
            self.wait_not_publishing(&job.key, Duration::from_secs(5));
            if let Some(reply) = self.try_hit(&job, &env, lang, t0.elapsed()) {
                return reply;
            }
        }

        let start = match self.clock.now() {
            Ok(t) => t,
            Err(e) => {
                warn!("kernel clock unavailable: {e}");
                self.stats.error(lang, "clock");
                return Reply::PassThrough {
                    reason: format!("internal error: {e}"),
                };
            }
        };
        let token: u64 = loop {
            let t = random_u64();
            if t != 0 && !self.pending.lock().contains_key(&t) {
                break t;
            }
        };
        let mut extra_args = Vec::new();
        let link_depfile = if job.args.runs_linker() {
            let dir = self.paths.scratch_dir();
            if let Err(e) = crate::paths::ensure_private_dir(&dir) {
                warn!("scratch dir: {e:#}");
                self.stats.error(lang, "scratch dir");
                return Reply::PassThrough {
                    reason: format!("internal error: {e:#}"),
                };
            }
            let p = dir.join(format!("{token:016x}.link.d"));
            extra_args = rustc::link_depfile_args(&p)
                .into_iter()
                .map(crate::proto::Bytes)
                .collect();
            Some(p)
        } else {
            None
        };
        debug!("miss {} key {}", rustc::describe(&job), job.key.short());
        let buffer_stderr = link_depfile.is_some();
        self.pending.lock().insert(
            token,
            Pending {
                job,
                lang,
                start,
                created: Instant::now(),
                link_depfile,
            },
        );
        self.stats.miss(lang);
        Reply::Miss {
            token,
            extra_args,
            buffer_stderr,
        }
    }

    fn try_hit(
        &self,
        job: &RustcJob,
        env: &HashMap<OsString, OsString>,
        lang: Language,
        key_time: Duration,
    ) -> Option<Reply> {
        let t_lookup = Instant::now();
        let manifest = self.store.manifest(&job.key)?;
        for entry in &manifest.entries {
            if !self.matches(job, env, &entry.inputs) {
                continue;
            }
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
                    self.stats.error(lang, "corrupt pack");
                    self.stats.update(|d| d.corrupt_packs += 1);
                    self.store.drop_entries_for_pack(&job.key, &entry.pack);
                    continue;
                }
                Err(OpenError::Io(e)) => {
                    warn!("cannot open pack {}: {e}", entry.pack.short());
                    self.stats.error(lang, "pack unreadable");
                    return None;
                }
            };
            if !same_outputs(job, &pack) {
                warn!(
                    "pack {} does not hold the outputs {} expects; ignoring it",
                    entry.pack.short(),
                    rustc::describe(job)
                );
                self.stats.error(lang, "pack mismatch");
                continue;
            }
            let lookup = t_lookup.elapsed();
            let t_deliver = Instant::now();
            return match self.deliver.deliver(&Delivery {
                pack: &pack,
                out_dir: &job.out_dir,
                mtime_floor: job.inputs_mtime_floor,
            }) {
                Ok(report) => {
                    for f in report.files {
                        self.hashes.record_trusted(&f.path, f.stat, f.digest);
                    }
                    self.store.touch(&entry.pack);
                    let phases = HitPhases {
                        key: key_time,
                        lookup,
                        deliver: t_deliver.elapsed(),
                    };
                    self.stats
                        .hit(lang, phases, report.bytes, report.reflinked_bytes);
                    debug!("hit {} {phases:?}", rustc::describe(job));
                    Some(Reply::Hit {
                        stdout: pack.header.stdout.clone(),
                        stderr: pack.header.stderr.clone(),
                    })
                }
                Err(e) => {
                    warn!(
                        "{}: cannot deliver outputs ({e}); running the compiler",
                        rustc::describe(job)
                    );
                    self.stats.error(lang, "deliver failed");
                    None
                }
            };
        }
        None
    }

    /// Whether a manifest entry's recorded inputs hold now (spec D2).
    fn matches(&self, job: &RustcJob, env: &HashMap<OsString, OsString>, inputs: &Inputs) -> bool {
        for b in &inputs.bindings {
            let current = match b.name.as_str() {
                "cwd" => job.cwd.as_os_str().as_bytes(),
                "out-dir" => job.out_dir.as_os_str().as_bytes(),
                _ => return false,
            };
            if current != b.value.as_slice() {
                return false;
            }
        }
        for (name, value) in &inputs.env {
            let now = env.get(std::ffi::OsStr::new(name)).map(|v| v.as_bytes());
            if now != value.as_ref().map(|v| v.as_bytes()) {
                return false;
            }
        }
        for p in &inputs.absent {
            let p = resolve(&job.cwd, Path::new(std::ffi::OsStr::from_bytes(p)));
            if std::fs::symlink_metadata(&p).is_ok() {
                return false;
            }
        }
        for f in &inputs.files {
            let p = resolve(&job.cwd, Path::new(std::ffi::OsStr::from_bytes(&f.path)));
            match self.hashes.digest(&p) {
                Ok((d, stat)) if d == f.digest && stat.size == f.size => {}
                _ => return false,
            }
        }
        true
    }

    fn compile_done(&self, token: u64, outcome: CompileOutcome) -> Reply {
        let Some(p) = self.pending.lock().remove(&token) else {
            debug!("result for unknown token {token:x} (daemon restarted?)");
            return Reply::Done { stored: false };
        };
        let stored = match outcome {
            CompileOutcome::Success { stdout, stderr } => self.store_result(&p, stdout, stderr),
            CompileOutcome::Failed { code } => {
                debug!("{} failed with {code}; not stored", rustc::describe(&p.job));
                self.stats.update(|d| d.failed_compiles += 1);
                false
            }
            CompileOutcome::Error { message } => {
                warn!("{}: wrapper error: {message}", rustc::describe(&p.job));
                self.stats.error(p.lang, "wrapper");
                false
            }
        };
        if let Some(d) = &p.link_depfile {
            let _ = std::fs::remove_file(d);
        }
        Reply::Done { stored }
    }

    fn store_result(&self, p: &Pending, stdout: Vec<u8>, stderr: Vec<u8>) -> bool {
        let job = &p.job;
        let not_stored = |reason: &str, detail: String| {
            info!("{}: not stored: {reason}: {detail}", rustc::describe(job));
            self.stats.not_stored(reason);
            false
        };
        let names = match rustc::output_names(job, &stderr) {
            Ok(n) => n,
            Err(u) => return not_stored(u.reason, u.detail),
        };
        let inputs =
            match rustc::collect_inputs(job, &self.hashes, p.start, p.link_depfile.as_deref()) {
                Ok(i) => i,
                Err(u) => return not_stored(u.reason, u.detail),
            };
        let files = match open_sources(&job.out_dir, &names) {
            Ok(f) => f,
            Err(e) => return not_stored("missing output", e.to_string()),
        };
        let temp = match self.store.pack_temp() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot store {}: {e}", rustc::describe(job));
                self.stats.error(p.lang, store_error_kind(&e));
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
        let written = match pack::write(temp.as_file(), &sources, stdout, stderr, meta) {
            Ok(w) => w,
            Err(WriteError::SourceChanged(n)) => {
                return not_stored("output modified during store", n);
            }
            Err(WriteError::Io(e)) => {
                warn!("cannot store {}: {e}", rustc::describe(job));
                self.stats.error(p.lang, store_error_kind(&e));
                return false;
            }
        };
        // The outputs' bytes are known now: later keys that use them as externs need not
        // read them again.
        for (i, name) in names.iter().enumerate() {
            self.hashes.record_trusted(
                &job.out_dir.join(name),
                written.source_stats[i],
                written.header.entries[i].digest,
            );
        }
        let entry = Entry {
            inputs,
            pack: written.id,
            created: unix_now(),
        };
        let key = job.key;
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

    fn publish(&self, job: PublishJob) {
        let size = job.written.size;
        let id = job.written.id;
        let r = self
            .store
            .publish(job.temp, &job.written)
            .and_then(|()| self.store.add_entry(&job.key, job.entry));
        match r {
            Ok(()) => {
                self.stats.update(|d| {
                    d.stored += 1;
                    d.bytes_stored += size;
                });
                debug!("stored pack {} ({size} bytes)", id.short());
                let ev = self.store.evict_if_needed();
                if ev.evicted_packs > 0 {
                    self.stats.update(|d| {
                        d.evicted_packs += ev.evicted_packs;
                        d.evicted_bytes += ev.evicted_bytes;
                    });
                }
            }
            Err(e) => {
                warn!("cannot publish pack {}: {e}", id.short());
                self.stats.error(Language::Rust, store_error_kind(&e));
            }
        }
        let (set, cv) = &self.publishing;
        set.lock().remove(&job.key);
        cv.notify_all();
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
        let mut pending = self.pending.lock();
        pending.retain(|_, p| {
            let keep = p.created.elapsed() < PENDING_TTL;
            if !keep && let Some(d) = &p.link_depfile {
                let _ = std::fs::remove_file(d);
            }
            keep
        });
    }

    /// Finishes pending publications and flushes state; the engine serves nothing after.
    pub fn shutdown(&self) {
        self.publish_tx.lock().take();
        self.wait_published(Duration::from_secs(30));
        self.housekeeping();
    }

    pub fn pending_misses(&self) -> usize {
        self.pending.lock().len()
    }
}

/// Whether a pack holds exactly the files a compile would produce (a sanity check: the key
/// covers everything that determines the names).
fn same_outputs(job: &RustcJob, pack: &pack::Pack) -> bool {
    let expected = job.args.expected_outputs();
    expected
        .iter()
        .all(|n| pack.header.entries.iter().any(|e| &e.name == n))
}

fn store_error_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => "store full",
        ReadOnlyFilesystem | PermissionDenied => "store read-only",
        _ => "store write failed",
    }
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        let t = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
        return t.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    u64::from_le_bytes(b)
}
