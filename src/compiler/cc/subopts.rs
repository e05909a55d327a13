//! Options whose meaning is in their value: `-f<name>=` (files whose content counts, files
//! zcfs does not key), and what the driver hands to other programs unseen (`-Wa,` and
//! `-Xassembler` for the assembler, `-Wp,` for the preprocessor, `-Xclang` for cc1).

use crate::compiler::Uncacheable;

pub(super) fn unsupported(what: impl Into<String>) -> Uncacheable {
    Uncacheable::new("unsupported option", what)
}

/// `-f<name>=<file>` options whose file's content the output depends on (CK13).
pub(super) const NAMED_FILE_OPTIONS: &[&str] = &[
    "sanitize-ignorelist",
    "sanitize-blacklist",
    "sanitize-system-ignorelist",
    "sanitize-coverage-allowlist",
    "sanitize-coverage-ignorelist",
    "sanitize-coverage-whitelist",
    "sanitize-coverage-blacklist",
    "sanitize-coverage-blocklist",
    "profile-use",
    "profile-list",
    "xray-always-instrument",
    "xray-never-instrument",
    "xray-attr-list",
];

/// `-f<name>=<value>` options whose name says the value is a path zcfs does not model:
/// refused unless listed above or below.
pub(super) const PATH_LIKE_NAME_PARTS: &[&str] =
    &["list", "file", "path", "dir", "instrument", "report"];

/// `-f<name>=` options with a path-like name whose value is not a file (or is handled).
pub(super) const NOT_A_FILE: &[&str] = &[
    "instrument-functions-exclude-file-list",
    "instrument-functions-exclude-function-list",
    "debug-compilation-dir",
    "file-compilation-dir",
    "debug-prefix-map",
    "file-prefix-map",
    "macro-prefix-map",
];

/// `-Wp,...` reaches the preprocessor unseen by the driver: only macro definitions are
/// understood (CU2).
pub(super) fn check_wp(sub: &str) -> Result<(), Uncacheable> {
    for s in sub.split(',') {
        if !(s.starts_with("-D") || s.starts_with("-U")) {
            return Err(unsupported(format!("-Wp,{sub}")));
        }
    }
    Ok(())
}

/// An assembler option (`-Wa,X`, `-Xassembler X`): listings, dependency files and response
/// files are not modelled. Returns whether it asks for debug information (which records
/// the working directory).
pub(super) fn check_assembler_option(s: &str) -> Result<bool, Uncacheable> {
    if s.starts_with('@')
        || s.starts_with("-a")
        || s.starts_with("--MD")
        || s.starts_with("-MD")
        || s.contains('=')
    {
        return Err(unsupported(format!("assembler option {s}")));
    }
    Ok(s.starts_with("-g") || s.starts_with("--g") || s == "--debug-prefix-map")
}

/// `-Xclang` values cc1 reads unseen by the driver: warnings and codegen flags that name no
/// file; not plugins, PCH, modules, profiles or anything that writes a file. Returns cc1's
/// colour choice when the value is one.
pub(super) fn check_xclang(v: &str) -> Result<Option<bool>, Uncacheable> {
    match v {
        "-fcolor-diagnostics" => return Ok(Some(true)),
        "-fno-color-diagnostics" => return Ok(Some(false)),
        "-disable-O0-optnone" | "-disable-llvm-passes" | "-disable-llvm-optzns" => {
            return Ok(None);
        }
        _ => {}
    }
    const REFUSED: &[&str] = &[
        "module",
        "plugin",
        "pch",
        "profile",
        "time-trace",
        "list",
        "file",
        "path",
        "dir",
        "dump",
        "crash",
        "record",
        "save",
        "use",
        "load",
        "embed",
        "report",
        "coverage",
        "xray",
        "diagnostics-log",
        "stats",
    ];
    let name = v.split_once('=').map_or(v, |(n, _)| n);
    let ok = (v.starts_with("-W") && !v.starts_with("-Wl,") && !v.starts_with("-Wa,"))
        || v.starts_with("-O")
        || (v.starts_with("-f") && !REFUSED.iter().any(|r| name.contains(r)) && !v.contains('/'));
    if ok {
        Ok(None)
    } else {
        Err(unsupported(format!("-Xclang {v}")))
    }
}
