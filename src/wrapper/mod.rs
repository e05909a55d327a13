//! The wrapper: `zcfs <compiler> <args...>`, as `RUSTC_WRAPPER` or in front of a C compiler.
//!
//! - hit: the daemon has put the outputs in place; replay stdout/stderr, exit 0 (spec W9);
//! - miss: run the compiler as our own child (jobserver fds and stdin inherited, W6),
//!   stream its stderr line by line while keeping a copy (W8), report the outcome;
//! - anything else (pass-through, daemon unreachable, internal error): `exec` the compiler
//!   unchanged, so the build behaves exactly as without zcfs.

pub mod client;

use crate::os::{OsStrExt, OsStringExt};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::config::Config;
use crate::masquerade;
use crate::paths::Paths;
use crate::proto::{Bytes, CompileOutcome, CompileRequest, OnWriteError, Reply, Request};

/// Entry point; `args` is `[compiler, args...]`. Never returns.
pub fn main(mut args: Vec<OsString>) -> ! {
    let t0 = Instant::now();
    strip_self(&mut args);
    // C and C++ drivers: find the real compiler (never zcfs itself, never one a zcfs above
    // us already runs), and let a compile started from inside a compile pass straight
    // through (a compiler that is a script calling `gcc` again, spec CW1).
    let c_driver = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(crate::compiler::is_masquerade_name);
    if c_driver {
        match masquerade::real_compiler(&args[0]) {
            Ok(p) => args[0] = p.into_os_string(),
            Err(msg) => {
                eprintln!("zcfs: {msg}");
                std::process::exit(127);
            }
        }
        if masquerade::nested() {
            exec(&args);
        }
    }
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            if let Ok(c) = Config::load_from(&|k: &str| {
                (k != "ZCFS_CONFIG")
                    .then(|| std::env::var(k).ok())
                    .flatten()
            }) {
                client::log(
                    &Paths::new(&c),
                    &format!("bad configuration, caching off: {e:#}"),
                );
            }
            exec(&args);
        }
    };
    if config.disable {
        exec(&args);
    }
    let paths = Paths::new(&config);
    let Ok(cwd) = std::env::current_dir() else {
        exec(&args);
    };
    // A closed stdout or stderr: whatever the compiler does then, it does it itself.
    if !crate::os::std_streams_open() {
        exec(&args);
    }
    let req = Request::Compile(CompileRequest {
        argv: args.iter().map(|a| Bytes(a.as_bytes().to_vec())).collect(),
        cwd: cwd.as_os_str().as_bytes().to_vec(),
        cwd_id: crate::os::cwd_identity(),
        env: std::env::vars_os()
            .map(|(k, v)| (Bytes(k.into_vec()), Bytes(v.into_vec())))
            .collect(),
        stderr_tty: crate::os::stderr_is_tty(),
        umask: crate::os::umask(),
    });
    match client::call(&config, &paths, &req) {
        Ok((
            Reply::Hit {
                stdout,
                stderr,
                on_write_error,
            },
            mut stream,
        )) => {
            let out_ok = io::stdout().lock().write_all(&stdout).is_ok();
            let err_ok = io::stderr().lock().write_all(&stderr).is_ok();
            let micros = t0.elapsed().as_micros() as u64;
            let _ = client::send_only(&mut stream, &Request::HitLatency { micros });
            match (out_ok && err_ok, on_write_error) {
                (true, _) => std::process::exit(0),
                (false, OnWriteError::Exit(code)) => std::process::exit(code),
                // As the compiler would: it cannot say why either.
                (false, OnWriteError::Abort) => std::process::abort(),
            }
        }
        Ok((
            Reply::Miss {
                token,
                extra_args,
                insert_at,
                buffer_stderr,
                rerun_if_failed_with,
                strip_colour,
            },
            stream,
        )) => {
            drop(stream);
            let how = RunHow {
                buffer_stderr,
                rerun_if_failed_with: rerun_if_failed_with.map(|b| b.0),
                strip_colour,
            };
            let extra = Extra {
                args: extra_args,
                at: insert_at.map(|i| i as usize),
            };
            miss(&config, &paths, &args, token, extra, how)
        }
        Ok((Reply::PassThrough { .. }, _)) => exec(&args),
        Ok((other, _)) => {
            client::log(
                &paths,
                &format!("unexpected reply {other:?}; running the compiler"),
            );
            exec(&args)
        }
        Err(e) => {
            client::log(&paths, &format!("{e}; running the compiler uncached"));
            exec(&args)
        }
    }
}

/// `zcfs zcfs rustc ...` (a wrapper configured twice) is `zcfs rustc ...`.
fn strip_self(args: &mut Vec<OsString>) {
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let mut me_canonical = None;
    while args.len() > 1 {
        let first = Path::new(&args[0]);
        // Cheap test first: only a program with our own file name can be us.
        if first.file_name() != me.file_name() {
            return;
        }
        let me_c = me_canonical.get_or_insert_with(|| me.canonicalize().ok());
        let resolved = crate::masquerade::which(
            first,
            &std::env::vars_os().collect(),
            &std::env::current_dir().unwrap_or_else(|_| "/".into()),
            false,
        )
        .and_then(|p| p.canonicalize().ok());
        if resolved.is_some() && resolved == *me_c {
            args.remove(0);
        } else {
            return;
        }
    }
}

/// Replaces this process with the compiler.
fn exec(args: &[OsString]) -> ! {
    let Some(program) = args.first() else {
        eprintln!("zcfs: no compiler given (usage: zcfs <compiler> [args...], or zcfs --help)");
        std::process::exit(2);
    };
    let err = crate::os::exec(masquerade::guard(
        Command::new(program).args(&args[1..]),
        program,
    ));
    eprintln!("zcfs: cannot run {}: {err}", program.to_string_lossy());
    std::process::exit(127);
}

/// How a miss runs the compiler.
struct RunHow {
    /// Hold stderr until the end (the compile may be re-run).
    buffer_stderr: bool,
    /// Run a failed compile again unchanged when its stderr holds this.
    rerun_if_failed_with: Option<Vec<u8>>,
    /// Show stderr without colour sequences (they are kept for the store).
    strip_colour: bool,
}

/// Arguments a miss adds, and where (among the arguments after the compiler).
struct Extra {
    args: Vec<Bytes>,
    at: Option<usize>,
}

fn miss(
    config: &Config,
    paths: &Paths,
    args: &[OsString],
    token: u64,
    extra: Extra,
    how: RunHow,
) -> ! {
    let buffer_stderr = how.buffer_stderr;
    let added = extra.args.into_iter().map(|a| OsString::from_vec(a.0));
    let mut full: Vec<OsString> = args[1..].to_vec();
    let at = extra.at.unwrap_or(full.len()).min(full.len());
    full.splice(at..at, added);
    let report = |outcome: CompileOutcome| {
        let req = Request::CompileDone { token, outcome };
        if let Err(e) = client::request_once(paths, &req, config.client_timeout) {
            client::log(paths, &format!("could not report a compile result: {e}"));
        }
    };
    let run = match run_child(&args[0], &full, &how) {
        Ok(r) => r,
        Err(e) => {
            report(CompileOutcome::Error {
                message: format!("cannot run {}: {e}", args[0].to_string_lossy()),
            });
            exec(args);
        }
    };
    if let Some(marker) = &how.rerun_if_failed_with
        && buffer_stderr
        && !run.status.success()
        && contains(&run.stderr, marker)
    {
        // An argument zcfs added shows in the failure (the linker refused it, or the
        // compiler's message quotes it): run the compile again, unchanged, as if zcfs
        // were not there.
        report(if marker == b"dependency-file" {
            CompileOutcome::Error {
                message: "the linker does not support --dependency-file".into(),
            }
        } else {
            CompileOutcome::Failed {
                code: exit_code(run.status),
            }
        });
        exec(args);
    }
    if buffer_stderr {
        let _ = io::stderr().lock().write_all(&shown(&run.stderr, &how));
    }
    let outcome = if run.status.success() {
        CompileOutcome::Success {
            stdout: run.stdout,
            stderr: run.stderr,
        }
    } else {
        CompileOutcome::Failed {
            code: exit_code(run.status),
        }
    };
    report(outcome);
    exit_like(run.status)
}

struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Diagnostics as the caller sees them.
fn shown<'a>(text: &'a [u8], how: &RunHow) -> std::borrow::Cow<'a, [u8]> {
    if how.strip_colour {
        std::borrow::Cow::Owned(crate::compiler::cc::strip_colours(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn run_child(program: &OsString, args: &[OsString], how: &RunHow) -> io::Result<Run> {
    let mut child = masquerade::guard(&mut Command::new(program), program)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let stdout_thread = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match out_pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = io::stdout().lock().write_all(&buf[..n]);
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
        all
    });
    let mut stderr = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                if !how.buffer_stderr {
                    let mut e = io::stderr().lock();
                    let _ = e.write_all(&shown(&line, how));
                    let _ = e.flush();
                }
                stderr.extend_from_slice(&line);
            }
            Err(_) => break,
        }
    }
    let status = child.wait()?;
    let stdout = stdout_thread.join().unwrap_or_default();
    Ok(Run {
        status,
        stdout,
        stderr,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

use crate::os::{exit_code, exit_like};
