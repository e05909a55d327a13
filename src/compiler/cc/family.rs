//! C, C++ and Emscripten compiles as a [`Family`]: the key (`mod.rs`), an entry's inputs,
//! absent paths and same-file classes checked for a hit, each output delivered where this
//! command line puts it with the mode the compiler would give it, the diagnostics replayed
//! with or without colours; after a miss, the outputs and inputs collected (`collect.rs`).

use crate::os::OsStrExt;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::collect::{self, ScanCache};
use super::identity::{CcFacts, Driver};
use super::{CcJob, KeyInputs};
use crate::compiler::family::{
    AbsentMemo, Compile, Done, Family, Fit, Invocation, KeyContext, MissPlan, Serve, ToStore,
    absent_holds, program_name,
};
use crate::compiler::{KeyError, Language, Uncacheable, is_c_driver_name, is_emcc_name};
use crate::deliver::Placed;
use crate::fsutil::{NanoTime, resolve};
use crate::fsview::FsView;
use crate::hash::Digest;
use crate::proto::OnWriteError;
use crate::store::manifest::{Check, Inputs};
use crate::store::pack::Pack;

/// The C family (gcc, clang and their C++ drivers, emcc); it keeps what it learned of each
/// compiler and the scans of the files compiles read.
#[derive(Default)]
pub struct CcFamily {
    facts: Arc<CcFacts>,
    scans: Arc<ScanCache>,
    absent: Arc<AbsentMemo>,
}

impl Family for CcFamily {
    fn language_of(&self, program: &Path) -> Option<Language> {
        let name = program_name(program);
        if is_c_driver_name(name) {
            Some(Language::C)
        } else if is_emcc_name(name) {
            Some(Language::EMCC)
        } else {
            None
        }
    }

    fn prepare(
        &self,
        caller: &Invocation<'_>,
        ctx: &KeyContext<'_>,
    ) -> Result<Box<dyn Compile>, KeyError> {
        let fs = ctx.views.view(Vec::new());
        let job = super::prepare(&KeyInputs {
            argv: caller.argv,
            cwd: caller.cwd,
            env: caller.env,
            stderr_is_tty: caller.stderr_tty,
            hashes: ctx.hashes,
            fs: &*fs,
            facts: &self.facts,
            sloppiness: ctx.sloppiness,
        })?;
        // An output dir reached through a symlink into a mount is delivered into the mount.
        let mut aliases: Vec<(PathBuf, PathBuf)> = Vec::new();
        for d in job.output_dirs() {
            if let Some(a) = ctx.views.alias(&d)
                && !aliases.contains(&a)
            {
                aliases.push(a);
            }
        }
        Ok(Box::new(CcCompile {
            job,
            aliases,
            facts: self.facts.clone(),
            scans: self.scans.clone(),
            absent: self.absent.clone(),
        }))
    }
}

/// A keyed C compile.
struct CcCompile {
    job: CcJob,
    aliases: Vec<(PathBuf, PathBuf)>,
    facts: Arc<CcFacts>,
    scans: Arc<ScanCache>,
    absent: Arc<AbsentMemo>,
}

impl Compile for CcCompile {
    fn key(&self) -> Digest {
        self.job.key
    }

    fn language(&self) -> Language {
        self.job.language()
    }

    fn describe(&self) -> String {
        self.job.describe()
    }

    fn aliases(&self) -> &[(PathBuf, PathBuf)] {
        &self.aliases
    }

    fn check_dirs(&self, fs: &dyn FsView) -> Result<(), Uncacheable> {
        for d in self.job.output_dirs() {
            if !fs.is_dir(&d) {
                return Err(Uncacheable::new(
                    "output dir missing",
                    format!("{} does not exist", d.display()),
                ));
            }
        }
        Ok(())
    }

    fn stamp_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.job.cwd.clone()];
        dirs.extend(self.job.output_dirs());
        dirs
    }

    fn fit<'a>(
        &'a self,
        caller: &Invocation<'_>,
        fs: &dyn FsView,
        inputs: &Inputs,
    ) -> Option<Box<dyn Fit + 'a>> {
        let floor = inputs_hold(&self.job, fs, inputs, (&self.absent, caller.arrived))?;
        Some(Box::new(CcFit {
            job: &self.job,
            floor,
            umask: caller.umask,
        }))
    }

    fn scratch_suffix(&self) -> Option<&'static str> {
        Some("cc.d")
    }

    fn start_miss(&mut self, scratch: Option<&Path>) -> MissPlan {
        let job = &mut self.job;
        let extra_args = job.miss_args(scratch.unwrap_or(Path::new("")));
        // emcc's message for a failed compile shows clang's command line, with what zcfs
        // added: such a compile is run again as it was given (any failure: the empty
        // marker is in every stderr).
        let emcc = job.language() == Language::EMCC;
        job.date_at_start = Some(super::date_value());
        MissPlan {
            extra_args,
            insert_at: job.insert_at,
            buffer_stderr: emcc,
            rerun_if_failed_with: emcc.then(Vec::new),
            strip_colour: job.strip_colour(),
        }
    }

    fn collect(&self, done: &Done<'_>) -> Result<ToStore, Uncacheable> {
        let job = &self.job;
        let collected = super::collect(
            job,
            done.fs,
            done.start,
            done.scratch.unwrap_or(Path::new("")),
            &self.facts,
            &self.scans,
        )?;
        let meta = serde_json::json!({
            "compiler": job.compiler,
            "input": job.args.input,
            "cwd": job.cwd,
            "key": job.key.to_hex(),
        });
        Ok(ToStore {
            outputs: collected
                .outputs
                .iter()
                .map(|(role, p)| (role.to_string(), resolve(&job.cwd, p)))
                .collect(),
            inputs: collected.inputs,
            meta: match meta {
                serde_json::Value::Object(m) => m,
                _ => Default::default(),
            },
            stderr: (job.language() == Language::EMCC)
                .then(|| super::emcc::replayable_stderr(done.stderr)),
        })
    }
}

/// Whether an entry's inputs hold now: the recorded variables, the paths that must stay
/// absent, every file's content, the same-file classes. Returns the newest input's mtime
/// (the outputs' floor: make compares them).
fn inputs_hold(
    job: &CcJob,
    fs: &dyn FsView,
    inputs: &Inputs,
    memo: (&AbsentMemo, NanoTime),
) -> Option<NanoTime> {
    for (name, value) in &inputs.env {
        match super::pseudo_env_holds(name, value.as_deref()) {
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
    if !absent_holds(fs, &here, inputs, Some(memo)) {
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

/// An entry that holds for a caller with this umask.
struct CcFit<'a> {
    job: &'a CcJob,
    floor: NanoTime,
    umask: u32,
}

impl Fit for CcFit<'_> {
    fn serve(&self, pack: &Arc<Pack>, fs: &dyn FsView) -> Option<Serve> {
        let job = self.job;
        let outputs = job.outputs();
        // Each stored role goes where this command line puts it; the required ones must all
        // be there (the key covers the flags that decide them).
        let mut placed = Vec::with_capacity(pack.header.entries.len());
        for (index, e) in pack.header.entries.iter().enumerate() {
            let o = outputs.iter().find(|o| o.role == e.name)?;
            let path = resolve(&job.cwd, &o.path);
            placed.push(Placed {
                index,
                mode: Some(output_mode(job, fs, o.role, &path, self.umask)),
                path,
                bytes: None,
            });
        }
        if !outputs
            .iter()
            .filter(|o| o.required)
            .all(|o| pack.header.entries.iter().any(|e| e.name == o.role))
        {
            return None;
        }
        let stderr = if job.strip_colour() {
            super::strip_colours(&pack.header.stderr)
        } else {
            pack.header.stderr.clone()
        };
        Some(Serve {
            outputs: placed,
            mtime_floor: self.floor,
            stdout: pack.header.stdout.clone(),
            stderr,
            on_write_error: match (job.language(), job.identity.family) {
                (Language::EMCC, _) => OnWriteError::Exit(1),
                (_, Driver::Gcc) => OnWriteError::Exit(0),
                (_, Driver::Clang) => OnWriteError::Abort,
            },
            rebased: false,
        })
    }
}

/// The mode the compiler would give an output: the object (and gcc's `.dwo`, written by
/// its assembler) is a new file, `0666` less the caller's umask; the others (dependency
/// file, notes, stack usage) are opened for writing, so a file already there keeps its
/// mode (checked with gcc 12 and clang 14).
/// (In a mount, where the daemon must not ask its own filesystem, a new file's mode.)
fn output_mode(job: &CcJob, fs: &dyn FsView, role: &str, path: &Path, umask: u32) -> u32 {
    let fresh = 0o666 & !umask;
    let new_file = role == "o" || (role == "dwo" && job.identity.family == Driver::Gcc);
    if new_file || fs.in_mount(path) {
        return fresh;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => crate::os::file_mode(&m) & 0o7777,
        _ => fresh,
    }
}
