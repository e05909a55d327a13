//! rustc as a [`Family`]: the key (`mod.rs`), an entry's inputs and path bindings checked
//! for a hit (spec D2, X2), its outputs delivered into the out-dir (rebased for another
//! target dir or checkout), and after a miss the outputs, inputs and bindings recorded.

use crate::os::OsStrExt;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, trace};

use super::bindings::{self, Rebase};
use super::{IdentityCache, KeyInputs, RustcJob};
use crate::compiler::family::{
    Compile, Done, Family, Fit, Invocation, KeyContext, MissPlan, Serve, ToStore, absent_holds,
    program_name,
};
use crate::compiler::{KeyError, Language, Uncacheable};
use crate::deliver::Delivery;
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::hash::Digest;
use crate::proto::OnWriteError;
use crate::store::manifest::Inputs;
use crate::store::pack::{self, Pack, Written};

/// The rustc family; it keeps the toolchains it has identified.
pub struct RustcFamily {
    identities: IdentityCache,
}

impl RustcFamily {
    /// Keeps identities in `identity_file` across daemon runs.
    pub fn new(identity_file: PathBuf) -> RustcFamily {
        let identities = IdentityCache::new();
        identities.keep_in(identity_file);
        RustcFamily { identities }
    }
}

impl Family for RustcFamily {
    fn language_of(&self, program: &Path) -> Option<Language> {
        (program_name(program) == "rustc").then_some(Language::RUST)
    }

    fn prepare(
        &self,
        caller: &Invocation<'_>,
        ctx: &KeyContext<'_>,
    ) -> Result<Box<dyn Compile>, KeyError> {
        // Argfiles are read before the target dir (and so any alias into a mount) is known.
        let parsed = super::parse_invocation(
            caller.argv,
            caller.cwd,
            caller.env,
            &*ctx.views.view(Vec::new()),
        )?;
        // A target dir that is a symlink into a mount is read through the mount's core.
        let out_dir = resolve(caller.cwd, &parsed.out_dir);
        let aliases: Vec<(PathBuf, PathBuf)> = super::target_root(&parsed, caller.cwd)
            .and_then(|root| ctx.views.alias(&root))
            .or_else(|| ctx.views.alias(&out_dir))
            .into_iter()
            .collect();
        let fs = ctx.views.view(aliases.clone());
        let job = super::prepare_parsed(
            &KeyInputs {
                argv: caller.argv,
                cwd: caller.cwd,
                env: caller.env,
                hashes: ctx.hashes,
                fs: &*fs,
                identities: &self.identities,
                sloppiness: ctx.sloppiness,
            },
            parsed,
        )?;
        Ok(Box::new(RustcCompile {
            job,
            aliases,
            cargo_home: bindings::cargo_home(caller.env),
        }))
    }
}

/// A keyed rustc compile.
struct RustcCompile {
    job: RustcJob,
    aliases: Vec<(PathBuf, PathBuf)>,
    cargo_home: Option<PathBuf>,
}

impl Compile for RustcCompile {
    fn key(&self) -> Digest {
        self.job.key
    }

    fn language(&self) -> Language {
        Language::RUST
    }

    fn describe(&self) -> String {
        super::describe(&self.job)
    }

    fn aliases(&self) -> &[(PathBuf, PathBuf)] {
        &self.aliases
    }

    fn check_dirs(&self, fs: &dyn FsView) -> Result<(), Uncacheable> {
        // rustc fails when its out-dir is missing.
        if fs.is_dir(&self.job.out_dir) {
            return Ok(());
        }
        Err(Uncacheable::new(
            "out-dir missing",
            format!("out-dir {} does not exist", self.job.out_dir.display()),
        ))
    }

    fn stamp_dirs(&self) -> Vec<PathBuf> {
        vec![self.job.cwd.clone(), self.job.out_dir.clone()]
    }

    fn fit<'a>(
        &'a self,
        caller: &Invocation<'_>,
        fs: &dyn FsView,
        inputs: &Inputs,
    ) -> Option<Box<dyn Fit + 'a>> {
        let rebase = self.matches(caller, fs, inputs)?;
        Some(Box::new(RustcFit {
            job: &self.job,
            rebase,
        }))
    }

    fn scratch_suffix(&self) -> Option<&'static str> {
        self.job.args.runs_linker().then_some("link.d")
    }

    fn start_miss(&mut self, scratch: Option<&Path>) -> MissPlan {
        match scratch {
            // The linker's dependency file; a linker that refuses the option is run again
            // without it.
            Some(p) => MissPlan {
                extra_args: super::link_depfile_args(p),
                buffer_stderr: true,
                rerun_if_failed_with: Some(b"dependency-file".to_vec()),
                ..MissPlan::default()
            },
            None => MissPlan::default(),
        }
    }

    fn collect(&self, done: &Done<'_>) -> Result<ToStore, Uncacheable> {
        let job = &self.job;
        let names = super::output_names(job, done.fs, done.stderr, done.start)?;
        let inputs = super::collect_inputs(job, done.fs, done.start, done.scratch)?;
        let meta = serde_json::json!({
            "compiler": "rustc",
            "crate": job.args.crate_name,
            "cwd": job.cwd,
            "out_dir": job.out_dir,
            "key": job.key.to_hex(),
        });
        Ok(ToStore {
            outputs: names
                .into_iter()
                .map(|n| {
                    let path = job.out_dir.join(&n);
                    (n, path)
                })
                .collect(),
            inputs,
            meta: match meta {
                serde_json::Value::Object(m) => m,
                _ => Default::default(),
            },
            stderr: None,
        })
    }

    /// Which of the paths the compile ran under bind the entry (X2, docs/sharing.md):
    /// those its outputs or messages contain, all of them if an output hides bytes from
    /// the search (compressed sections), and those that reached it as values.
    fn bind(
        &self,
        file: &File,
        written: &Written,
        inputs: &mut Inputs,
        sloppiness: crate::config::Sloppiness,
    ) -> std::io::Result<()> {
        let job = &self.job;
        let what = || super::describe(job);
        let place = job.place();
        let cargo_home = self.cargo_home.as_deref();
        let needles = bindings::needles(&place, cargo_home);
        let messages = bindings::without_artifact_lines(&written.header.stderr);
        let search = pack::find_in_payloads(
            file,
            &written.header,
            |name| !name.ends_with(".d"),
            &[&messages, &written.header.stdout],
            &needles
                .iter()
                .map(|(_, b)| b.as_slice())
                .collect::<Vec<_>>(),
        )?;
        let searched: Vec<&str> = needles.iter().map(|(n, _)| *n).collect();
        let mut bound: Vec<&str> = needles
            .iter()
            .zip(&search.found)
            .filter(|(_, f)| **f)
            .map(|((n, _), _)| *n)
            .collect();
        if let Some(why) = &search.hidden {
            debug!("{}: bound everywhere: {why}", what());
            bound = searched.clone();
        }
        trace!(
            "{}: found in the outputs: {bound:?}; reached as values: {:?}",
            what(),
            job.paths_in_values
        );
        if !sloppiness.path_values {
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
        inputs.bindings = bindings::bindings(&place, cargo_home, &searched, &bound);
        debug!(
            "{}: bound to {:?}",
            what(),
            inputs
                .bindings
                .iter()
                .filter(|b| b.strict)
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
        );
        Ok(())
    }
}

impl RustcCompile {
    /// Whether a manifest entry's recorded inputs hold now (spec D2), and how its recorded
    /// paths map to the current ones (X2). Files are read through the daemon's view, so
    /// inputs inside a mount (generated sources, linked rlibs) are seen as the mount shows
    /// them.
    fn matches(&self, caller: &Invocation<'_>, fs: &dyn FsView, inputs: &Inputs) -> Option<Rebase> {
        let job = &self.job;
        let what = || super::describe(job);
        if !inputs.checks.is_empty() {
            return None; // a C entry's conditions: never one of rustc's
        }
        let Some(rebase) =
            bindings::rebase(&job.place(), self.cargo_home.as_deref(), &inputs.bindings)
        else {
            trace!("{}: an entry is bound to other paths", what());
            return None;
        };
        for (name, value) in &inputs.env {
            let now = caller.env.get(OsStr::new(name)).map(|v| v.as_bytes());
            let recorded = value.as_ref().map(|v| rebase.text(v.as_bytes()));
            if now != recorded.as_deref() {
                trace!("{}: an entry read {name} with another value", what());
                return None;
            }
        }
        let here = |p: &[u8]| resolve(&job.cwd, Path::new(&crate::os::os_str(&rebase.path(p))));
        if !absent_holds(fs, &here, inputs, None) {
            trace!("{}: a path an entry needs absent exists", what());
            return None;
        }
        for f in &inputs.files {
            match fs.digest(&here(&f.path)) {
                Ok((d, stat)) if d == f.digest && stat.size == f.size => {}
                _ => {
                    trace!(
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

/// An entry that holds, with how its paths map to this compile's.
struct RustcFit<'a> {
    job: &'a RustcJob,
    rebase: Rebase,
}

impl Fit for RustcFit<'_> {
    fn serve(&self, pack: &Arc<Pack>, _fs: &dyn FsView) -> Option<Serve> {
        let job = self.job;
        // The pack must hold every file the compile would produce (a sanity check: the key
        // covers everything that determines the names).
        let expected = job.args.expected_outputs();
        if !expected
            .iter()
            .all(|n| pack.header.entries.iter().any(|e| &e.name == n))
        {
            return None;
        }
        // Served under another target dir or checkout: the dep-info text and the
        // `artifact` lines name the current paths (spec X2).
        let mut replaced = Vec::new();
        let mut stderr = pack.header.stderr.clone();
        let rebased = !self.rebase.is_empty();
        if rebased {
            for (i, e) in pack.header.entries.iter().enumerate() {
                if e.name.ends_with(".d") {
                    replaced.push((i, self.rebase.dep_info(pack.payload(i))));
                }
            }
            stderr = self.rebase.messages(&stderr);
        }
        let delivery = Delivery::in_dir(pack, &job.out_dir, job.inputs_mtime_floor, &replaced);
        Some(Serve {
            outputs: delivery.outputs,
            mtime_floor: job.inputs_mtime_floor,
            stdout: pack.header.stdout.clone(),
            stderr,
            on_write_error: OnWriteError::Exit(1),
            rebased,
        })
    }
}
