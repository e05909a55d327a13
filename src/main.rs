//! `zcfs`: one binary for the wrapper (`zcfs <compiler> args...`) and the command line.

use std::ffi::OsString;
use zcfs::os::OsStrExt;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Masquerade: run as `gcc`, `cc`, `clang++`, `emcc`... through a link to zcfs (spec CW1).
    let invoked = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| zcfs::os::program_name(n).to_str())
        .unwrap_or_default();
    if zcfs::compiler::is_masquerade_name(invoked) {
        zcfs::wrapper::main(args);
    }
    if is_wrapper_invocation(&args) {
        zcfs::wrapper::main(args[1..].to_vec());
    }
    zcfs::cli::main();
}

/// `zcfs /path/to/rustc ...` or `zcfs cc ...` is the wrapper; `zcfs stats` is the CLI.
fn is_wrapper_invocation(args: &[OsString]) -> bool {
    let Some(first) = args.get(1) else {
        return false;
    };
    let b = first.as_bytes();
    if b.is_empty() || b.starts_with(b"-") {
        return false;
    }
    if zcfs::os::names_a_path(b) {
        return true;
    }
    !zcfs::cli::SUBCOMMANDS.iter().any(|s| s.as_bytes() == b)
}
