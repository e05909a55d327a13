//! C and C++ compiles in the engine: the key (compiler/cc), the hit (verify an entry's
//! inputs and absent paths, deliver each output where this command line puts it, replay
//! the diagnostics with or without colours) and, after a miss, storing the outputs.

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::hit::Stop;
use super::{Engine, Job, Pending};
use crate::compiler::cc::identity::Family;
use crate::compiler::cc::{self, CcJob, collect};
use crate::deliver::Placed;
use crate::fsutil::{NanoTime, resolve};
use crate::fsview::FsView;
use crate::mount::fs::MountedFs;
use crate::proto::{Bytes, OnWriteError, Reply};
use crate::store::manifest::{Check, Entry, Inputs};
use crate::store::pack::{self, WriteError};
use crate::util::unix_now;

/// Who asks for a C compile, as the compiler would see it.
pub(super) struct Caller<'a> {
    pub cwd: &'a Path,
    pub env: &'a HashMap<OsString, OsString>,
    pub stderr_tty: bool,
    pub umask: u32,
}

impl Engine {
    pub(super) fn compile_cc(
        &self,
        argv: &[OsString],
        caller: &Caller<'_>,
        family: crate::compiler::Language,
        t0: Instant,
    ) -> Reply {
        let (cwd, env) = (caller.cwd, caller.env);
        let fs = self.fs();
        let job = match cc::prepare(&cc::KeyInputs {
            argv,
            cwd,
            env,
            stderr_is_tty: caller.stderr_tty,
            hashes: &self.hashes,
            fs: &fs,
            facts: &self.cc_facts,
            sloppiness: self.config.sloppiness,
        }) {
            Ok(j) => j,
            Err(e) => return self.not_cached(family, e),
        };
        let lang = job.language();
        // An output dir reached through a symlink into a mount is delivered into the mount.
        let mut aliases: Vec<(PathBuf, PathBuf)> = Vec::new();
        for d in job.output_dirs() {
            if let Some(a) = self.mounts.alias(&d)
                && !aliases.contains(&a)
            {
                aliases.push(a);
            }
        }
        let fs = self.fs_with(aliases.clone());
        // The compiler fails when an output's directory is missing; a hit must not hide it.
        for d in job.output_dirs() {
            if !fs.is_dir(&d) {
                self.stats.uncacheable(lang, "output dir missing");
                return Reply::PassThrough {
                    reason: format!("{} does not exist", d.display()),
                };
            }
        }
        if !self.config.recache {
            self.wait_not_publishing(&job.key, Duration::from_secs(5));
            if let Some(reply) = self.try_hit_cc(&job, &fs, caller.umask, t0.elapsed()) {
                return reply;
            }
        }
        let dirs = job.output_dirs();
        let mut stamp_dirs: Vec<&Path> = vec![cwd];
        stamp_dirs.extend(dirs.iter().map(PathBuf::as_path));
        let start = match self.compile_start(&fs, &stamp_dirs, lang) {
            Ok(s) => s,
            Err(reply) => return *reply,
        };
        let token = self.new_token();
        let private_dep = match self.scratch_file(token, "cc.d", lang) {
            Ok(p) => p,
            Err(reply) => return *reply,
        };
        let extra_args: Vec<Bytes> = job.miss_args(&private_dep).into_iter().map(Bytes).collect();
        // emcc's message for a failed compile shows clang's command line, with what zcfs
        // added: such a compile is run again as it was given (any failure: the empty
        // marker is in every stderr).
        let emcc = job.language() == crate::compiler::Language::Emcc;
        let rerun_if_failed_with = emcc.then(|| Bytes(Vec::new()));
        let mut job = job;
        job.date_at_start = Some(cc::date_value());
        let insert_at = job.insert_at.map(|i| i as u32);
        let strip_colour = job.strip_colour();
        debug!("miss {} key {}", job.describe(), job.key.short());
        self.pending.lock().insert(
            token,
            Pending {
                job: Job::Cc(Box::new(job)),
                lang,
                start,
                created: Instant::now(),
                scratch: Some(private_dep),
                cargo_home: None,
                aliases,
            },
        );
        self.stats.miss(lang);
        Reply::Miss {
            token,
            extra_args,
            insert_at,
            buffer_stderr: emcc,
            rerun_if_failed_with,
            strip_colour,
        }
    }

    fn try_hit_cc(
        &self,
        job: &CcJob,
        fs: &MountedFs<'_>,
        umask: u32,
        key_time: Duration,
    ) -> Option<Reply> {
        let t_lookup = Instant::now();
        let local = self.store.manifest(&job.key);
        let at = |entries: &[Entry], learnt| {
            let q = CcQuery {
                job,
                fs,
                umask,
                key_time,
                t_lookup,
            };
            self.try_entries_cc(&q, entries, learnt)
        };
        if let Some(m) = &local
            && let Some(r) = at(&m.entries, false)
        {
            return Some(r);
        }
        let learnt = self.remote_entries(&job.key, local.as_deref(), job.language());
        if learnt.is_empty() {
            return None;
        }
        at(&learnt, true)
    }

    /// Tries manifest entries in order; `learnt`: they came from the remote just now.
    fn try_entries_cc(&self, q: &CcQuery<'_>, entries: &[Entry], learnt: bool) -> Option<Reply> {
        let CcQuery {
            job,
            fs,
            umask,
            key_time,
            t_lookup,
        } = *q;
        let lang = job.language();
        let outputs = job.outputs();
        for entry in entries {
            let Some(floor) = self.cc_inputs_hold(job, fs, &entry.inputs) else {
                continue;
            };
            let (pack, fetched) =
                match self.open_for_hit(&job.key, &entry.pack, lang, &job.describe()) {
                    Ok(p) => p,
                    Err(Stop::Next) => continue,
                    Err(Stop::Miss) => return None,
                };
            // Each stored role goes where this command line puts it; the required ones
            // must all be there (the key covers the flags that decide them).
            let mut placed = Vec::with_capacity(pack.header.entries.len());
            let mut ok = true;
            for (index, e) in pack.header.entries.iter().enumerate() {
                match outputs.iter().find(|o| o.role == e.name) {
                    Some(o) => {
                        let path = resolve(&job.cwd, &o.path);
                        placed.push(Placed {
                            index,
                            mode: Some(output_mode(job, fs, o.role, &path, umask)),
                            path,
                            bytes: None,
                        })
                    }
                    None => ok = false,
                }
            }
            ok &= outputs
                .iter()
                .filter(|o| o.required)
                .all(|o| pack.header.entries.iter().any(|e| e.name == o.role));
            if !ok {
                warn!(
                    "pack {} does not hold the outputs {} expects; ignoring it",
                    entry.pack.short(),
                    job.describe()
                );
                self.stats.error(lang, "pack mismatch");
                continue;
            }
            let lookup = t_lookup.elapsed();
            let t_deliver = Instant::now();
            let result = self.deliver_placed(fs, &pack, placed, floor);
            let stderr = if job.strip_colour() {
                cc::strip_colours(&pack.header.stderr)
            } else {
                pack.header.stderr.clone()
            };
            return self.finish_hit(
                super::hit::Served {
                    what: &job.describe(),
                    lang,
                    pack: &entry.pack,
                    phases: (key_time, lookup, t_deliver),
                    rebased: false,
                    remote: learnt || fetched,
                    stdout: pack.header.stdout.clone(),
                    stderr,
                    on_write_error: match (job.language(), job.identity.family) {
                        (crate::compiler::Language::Emcc, _) => OnWriteError::Exit(1),
                        (_, Family::Gcc) => OnWriteError::Exit(0),
                        (_, Family::Clang) => OnWriteError::Abort,
                    },
                },
                result,
            );
        }
        None
    }

    /// Whether an entry's inputs hold now: the recorded variables, the paths that must stay
    /// absent, every file's content. Returns the newest input's mtime (the outputs' floor:
    /// make compares them).
    fn cc_inputs_hold(&self, job: &CcJob, fs: &MountedFs<'_>, inputs: &Inputs) -> Option<NanoTime> {
        for (name, value) in &inputs.env {
            match cc::pseudo_env_holds(name, value.as_deref()) {
                Some(true) => {}
                Some(false) => return None,
                None => {
                    let now = job.env.get(OsStr::new(name)).map(|v| v.as_bytes());
                    if now != value.as_ref().map(|v| v.as_bytes()) {
                        return None;
                    }
                }
            }
        }
        let here = |p: &[u8]| resolve(&job.cwd, Path::new(&crate::os::os_str(p)));
        if !super::hit::absent_holds(fs, &here, inputs) {
            return None;
        }
        let mut floor = 0;
        let mut stats = Vec::with_capacity(inputs.files.len());
        for f in &inputs.files {
            match fs.digest(&here(&f.path)) {
                Ok((d, stat)) if d == f.digest && stat.size == f.size => {
                    floor = floor.max(stat.mtime);
                    stats.push(stat);
                }
                _ => return None,
            }
        }
        let holds = |c: &Check| match c {
            Check::NoFile(p) => match fs.meta(&here(p)) {
                Ok(None) => true,
                Ok(Some(m)) => m.is_dir,
                Err(_) => false,
            },
            Check::SameFiles {
                by_inode,
                files,
                classes,
            } => {
                let keys: Option<Vec<_>> = files
                    .iter()
                    .map(|&i| {
                        let i = i as usize;
                        Some(collect::identity_key(
                            *by_inode,
                            stats.get(i)?,
                            &inputs.files.get(i)?.digest,
                        ))
                    })
                    .collect();
                keys.is_some_and(|k| collect::classes(&k) == *classes)
            }
        };
        inputs.checks.iter().all(holds).then_some(floor)
    }

    /// After a successful miss: store the outputs and the entry.
    pub(super) fn store_cc(
        &self,
        p: &Pending,
        job: &CcJob,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> bool {
        let not_stored = |reason: &str, detail: String| {
            info!("{}: not stored: {reason}: {detail}", job.describe());
            self.stats.not_stored(reason);
            false
        };
        let fs = self.fs_with(p.aliases.clone());
        let private_dep = p.scratch.clone().unwrap_or_default();
        let t_collect = Instant::now();
        let collected = match cc::collect(
            job,
            &fs,
            &p.start,
            &private_dep,
            &self.cc_facts,
            &self.cc_scans,
        ) {
            Ok(c) => c,
            Err(u) => return not_stored(u.reason, u.detail),
        };
        let collect_time = t_collect.elapsed();
        let paths: Vec<PathBuf> = collected
            .outputs
            .iter()
            .map(|(_, p)| resolve(&job.cwd, p))
            .collect();
        let mut files: Vec<File> = Vec::with_capacity(paths.len());
        for path in &paths {
            match fs.open(path) {
                Ok(f) => files.push(f),
                Err(e) => return not_stored("missing output", format!("{}: {e}", path.display())),
            }
        }
        let temp = match self.store.pack_temp() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot store {}: {e}", job.describe());
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };
        let sources: Vec<pack::Source<'_>> = collected
            .outputs
            .iter()
            .zip(&files)
            .map(|((role, _), f)| pack::Source {
                name: role.to_string(),
                file: f,
            })
            .collect();
        let meta = serde_json::json!({
            "compiler": job.compiler,
            "input": job.args.input,
            "cwd": job.cwd,
            "key": job.key.to_hex(),
            "created": unix_now(),
        })
        .to_string()
        .into_bytes();
        let stderr = if job.language() == crate::compiler::Language::Emcc {
            crate::compiler::cc::emcc::replayable_stderr(&stderr)
        } else {
            stderr
        };
        let written = match pack::write(temp.as_file(), &sources, stdout, stderr, meta) {
            Ok(w) => w,
            Err(WriteError::SourceChanged(n)) => {
                return not_stored("output modified during store", n);
            }
            Err(WriteError::Io(e)) => {
                warn!("cannot store {}: {e}", job.describe());
                self.stats.error(p.lang, super::store_error_kind(&e));
                return false;
            }
        };
        for (i, path) in paths.iter().enumerate() {
            self.hashes.record_trusted(
                path,
                written.source_stats[i],
                written.header.entries[i].digest,
            );
        }
        debug!(
            "{}: {} inputs, {} paths that must stay absent (collected in {collect_time:?}, \
             stored in {:?})",
            job.describe(),
            collected.inputs.files.len(),
            collected.inputs.absent.len()
                + collected
                    .inputs
                    .absent_under
                    .iter()
                    .map(|g| g.names.len())
                    .sum::<usize>(),
            t_collect.elapsed() - collect_time
        );
        tracing::trace!("{}: inputs {:?}", job.describe(), collected.inputs);
        let convert = self.conversions(&fs, &paths);
        let entry = Entry {
            inputs: collected.inputs,
            pack: written.id,
            created: unix_now(),
        };
        self.send_to_publisher(job.key, p.lang, temp, written, entry, convert)
    }
}

/// A C hit's lookup.
#[derive(Clone, Copy)]
struct CcQuery<'a> {
    job: &'a CcJob,
    fs: &'a MountedFs<'a>,
    umask: u32,
    key_time: Duration,
    t_lookup: Instant,
}

/// The mode the compiler would give an output: the object (and gcc's `.dwo`, written by
/// its assembler) is a new file, `0666` less the caller's umask; the others (dependency
/// file, notes, stack usage) are opened for writing, so a file already there keeps its
/// mode (checked with gcc 12 and clang 14).
/// (In a mount, where the daemon must not ask its own filesystem, a new file's mode.)
fn output_mode(job: &CcJob, fs: &dyn FsView, role: &str, path: &Path, umask: u32) -> u32 {
    let fresh = 0o666 & !umask;
    let new_file = role == "o" || (role == "dwo" && job.identity.family == Family::Gcc);
    if new_file || fs.in_mount(path) {
        return fresh;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => crate::os::file_mode(&m) & 0o7777,
        _ => fresh,
    }
}
