//! What a build-script run's recorded stdout (`build/<package>-<hash>/output`) tells cargo
//! about the run's own freshness: the `rerun-if-changed` paths and `rerun-if-env-changed`
//! variables it printed (cargo 1.95 `custom_build.rs`, `BuildOutput::parse`;
//! snapshot-projection.md §5). A run that printed neither is "old style": cargo then hashes
//! the newest mtime of the package's files, which no projection can make hold in a fresh
//! checkout.
//!
//! Lines are read as cargo reads them: each line trimmed, `cargo::KEY=VALUE` (new syntax)
//! or `cargo:KEY=VALUE`, lines that are not UTF-8 or carry no such prefix skipped. A path
//! that starts with the OUT_DIR recorded in `root-output` is rewritten to the current one,
//! as cargo does when the build dir moved.

use std::path::PathBuf;

/// The inputs a build-script run declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// As printed (after the OUT_DIR rewrite); relative paths are relative to the package
    /// root.
    pub rerun_if_changed: Vec<PathBuf>,
    pub rerun_if_env_changed: Vec<String>,
}

impl Declared {
    /// Whether cargo tracks the run by what it declared (otherwise by the package's newest
    /// file mtime, which is hashed).
    pub fn new_style(&self) -> bool {
        !self.rerun_if_changed.is_empty() || !self.rerun_if_env_changed.is_empty()
    }
}

/// The largest recorded output read (cargo keeps all of a script's stdout).
pub const MAX_SIZE: u64 = 64 << 20;

/// Parses a run's recorded stdout. `out_dirs`: (the OUT_DIR in its `root-output`, the
/// OUT_DIR now), when they differ. `None` for an output cargo would have refused (a
/// `cargo:` or `cargo::` line without `=`): not a record of a finished run.
pub fn parse(output: &[u8], out_dirs: Option<(&str, &str)>) -> Option<Declared> {
    let mut d = Declared::default();
    for line in output.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.trim();
        let Some(data) = line
            .strip_prefix("cargo::")
            .or_else(|| line.strip_prefix("cargo:"))
        else {
            continue;
        };
        // cargo refuses a directive, and old-style metadata, without `=`.
        let (key, value) = data.split_once('=')?;
        let value = match out_dirs {
            Some((old, new)) if !old.is_empty() => value.replace(old, new),
            _ => value.to_string(),
        };
        match key {
            "rerun-if-changed" => d.rerun_if_changed.push(PathBuf::from(value)),
            "rerun-if-env-changed" => d.rerun_if_env_changed.push(value),
            _ => {}
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_inputs_in_both_syntaxes() {
        let out = b"cargo::rerun-if-changed=data.txt\n  cargo:rerun-if-env-changed=UTIL_GREETING  \ncargo:rustc-cfg=x\nnot cargo\ncargo::warning=a=b\ncargo:rerun-if-changed=/old/out/gen.h\n\xff\xfe\n";
        let d = parse(out, Some(("/old/out", "/new/out"))).unwrap();
        assert_eq!(
            d.rerun_if_changed,
            vec![PathBuf::from("data.txt"), PathBuf::from("/new/out/gen.h")]
        );
        assert_eq!(d.rerun_if_env_changed, vec!["UTIL_GREETING".to_string()]);
        assert!(d.new_style());
    }

    #[test]
    fn a_run_that_declares_nothing_is_old_style() {
        let d = parse(
            b"cargo:rustc-env=GIT_HASH=abc\ncargo:rustc-link-lib=z\n",
            None,
        )
        .unwrap();
        assert_eq!(d, Declared::default());
        assert!(!d.new_style());
        assert!(!parse(b"", None).unwrap().new_style());
        // A key with a space is no rerun directive (cargo refuses it as an unknown key).
        assert!(
            !parse(b"cargo:: rerun-if-changed=x\n", None)
                .unwrap()
                .new_style()
        );
    }

    #[test]
    fn an_output_cargo_would_refuse_is_no_record() {
        assert_eq!(parse(b"cargo::rerun-if-changed\n", None), None);
        assert_eq!(parse(b"cargo:somekey\n", None), None);
        assert!(parse(b"cargo:somekey=1\n", None).is_some());
    }
}
