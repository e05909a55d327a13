//! Response files (`@file` arguments), expanded as each driver expands them: gcc and
//! clang by their own splitting rules (emcc's are in `compiler/emcc.rs`), read only as a
//! regular file that the caller and the daemon see alike.

use std::path::Path;

use crate::compiler::Uncacheable;
use crate::fsview::FsView;

/// How a driver splits a response file into arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RspSyntax {
    /// gcc (libiberty's `buildargv`): the C locale's spaces (space, `\t`, `\n`, `\v`,
    /// `\f`, `\r`) separate, quotes group, a backslash escapes the next character also
    /// inside quotes, `''` is an empty argument, a file of only spaces has none.
    Gcc,
    /// clang (LLVM's `TokenizeGNUCommandLine`): only space, `\t`, `\r` and `\n` separate
    /// (`\v` and `\f` are ordinary), an empty token is dropped (`''` is nothing), a
    /// backslash at the very end stays.
    Clang,
}

/// Expands `@file` arguments as the driver does (`syntax`), nested ones too, each file
/// named relative to the cwd. A file zcfs cannot read as a regular file the caller and the
/// daemon see alike makes the compile uncacheable (the compiler then reads it, CU7).
pub fn expand_response_files(
    args: &[String],
    cwd: &Path,
    syntax: RspSyntax,
    fs: &dyn FsView,
) -> Result<Vec<String>, Uncacheable> {
    let mut out = Vec::with_capacity(args.len());
    expand_into(args, cwd, syntax, fs, &mut out, 0)?;
    Ok(out)
}

fn expand_into(
    args: &[String],
    cwd: &Path,
    syntax: RspSyntax,
    fs: &dyn FsView,
    out: &mut Vec<String>,
    depth: usize,
) -> Result<(), Uncacheable> {
    for a in args {
        let Some(file) = a.strip_prefix('@') else {
            out.push(a.clone());
            continue;
        };
        if depth > 16 {
            return Err(Uncacheable::new("bad arguments", "@file nested too deeply"));
        }
        let text = read_response_file(cwd, file, fs)?;
        let words = match syntax {
            RspSyntax::Gcc => split_gcc(&text),
            RspSyntax::Clang => split_clang(&text),
        };
        expand_into(&words, cwd, syntax, fs, out, depth + 1)?;
    }
    Ok(())
}

/// The text of a response file named by an `@file` argument (relative to the cwd), read
/// through `fs` (in a mount: through its core, never through the mount itself).
pub fn read_response_file(cwd: &Path, file: &str, fs: &dyn FsView) -> Result<String, Uncacheable> {
    let path = crate::fsutil::resolve(cwd, Path::new(file));
    fs.check_shared(&path)
        .map_err(|e| Uncacheable::new("bad arguments", format!("@{file}: {e}")))?;
    let bytes = fs
        .read(&path)
        .map_err(|e| Uncacheable::new("bad arguments", format!("cannot read @{file}: {e}")))?;
    if bytes.contains(&0) {
        // gcc stops reading at a NUL, clang does not.
        return Err(Uncacheable::new(
            "bad arguments",
            format!("@{file} holds a NUL byte"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| Uncacheable::new("bad arguments", format!("@{file} is not UTF-8")))
}

fn split_gcc(text: &str) -> Vec<String> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    if text.chars().all(is_space) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_arg = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if is_space(c) => {
                if in_arg {
                    out.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        out.push(cur);
    }
    out
}

fn split_clang(text: &str) -> Vec<String> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut out = Vec::new();
    let mut token = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some() {
            token.push(chars.next().unwrap_or_default());
            continue;
        }
        if c == '\'' || c == '"' {
            while let Some(q) = chars.next() {
                if q == c {
                    break;
                }
                if q == '\\' && chars.peek().is_some() {
                    token.push(chars.next().unwrap_or_default());
                } else {
                    token.push(q);
                }
            }
            continue;
        }
        if is_space(c) {
            if !token.is_empty() {
                out.push(std::mem::take(&mut token));
            }
            continue;
        }
        token.push(c);
    }
    if !token.is_empty() {
        out.push(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_files_expand_recursively() {
        let hashes = crate::fsview::hashcache::HashCache::new();
        let fs = crate::fsview::HostFs { hashes: &hashes };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rsp"), "-DX=\"a b\" 'c d' @b.rsp\n").unwrap();
        std::fs::write(dir.path().join("b.rsp"), "-c\tx\\ y.c").unwrap();
        for syntax in [RspSyntax::Gcc, RspSyntax::Clang] {
            let out =
                expand_response_files(&["@a.rsp".to_string()], dir.path(), syntax, &fs).unwrap();
            assert_eq!(out, vec!["-DX=a b", "c d", "-c", "x y.c"]);
            let missing = expand_response_files(&["@missing".to_string()], dir.path(), syntax, &fs);
            assert!(missing.is_err());
        }
        // Nested files are named relative to the cwd, not to the file that names them.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/o.rsp"), "@b.rsp").unwrap();
        let out =
            expand_response_files(&["@sub/o.rsp".to_string()], dir.path(), RspSyntax::Gcc, &fs)
                .unwrap();
        assert_eq!(out, vec!["-c", "x y.c"]);
        // The daemon's own descriptors and FIFOs are never read.
        for bad in ["@/dev/stdin", "@/proc/self/fd/0"] {
            let r = expand_response_files(&[bad.to_string()], dir.path(), RspSyntax::Gcc, &fs);
            assert_eq!(r.unwrap_err().reason, "bad arguments", "{bad}");
        }
    }

    #[test]
    fn response_files_split_as_each_driver_splits_them() {
        // Checked against gcc 12 and clang 14 (`-E @file` of `int v = V;`).
        let g = |t: &str| split_gcc(t);
        let c = |t: &str| split_clang(t);
        assert_eq!(g("-DV=1\x0b-DX"), vec!["-DV=1", "-DX"]);
        assert_eq!(c("-DV=1\x0b-DX"), vec!["-DV=1\x0b-DX"]);
        assert_eq!(g("-DV=1\x0c-DY"), vec!["-DV=1", "-DY"]);
        assert_eq!(c("-DV=1\x0c-DY"), vec!["-DV=1\x0c-DY"]);
        assert_eq!(g("-DV=1\r-DY"), vec!["-DV=1", "-DY"]);
        assert_eq!(c("-DV=1\r-DY"), vec!["-DV=1", "-DY"]);
        // A no-break space separates nothing.
        assert_eq!(g("-DV=1\u{a0}+2"), vec!["-DV=1\u{a0}+2"]);
        assert_eq!(c("-DV=1\u{a0}+2"), vec!["-DV=1\u{a0}+2"]);
        assert_eq!(g("-DV=1 '' "), vec!["-DV=1", ""]);
        assert_eq!(c("-DV=1 '' "), vec!["-DV=1"]);
        assert_eq!(g("-DV=\"1 2\"\\"), vec!["-DV=1 2"]);
        assert_eq!(c("-DV=\"1 2\"\\"), vec!["-DV=1 2\\"]);
        assert_eq!(g("-DV='a\\b'"), vec!["-DV=ab"]);
        assert_eq!(c("-DV='a\\b'"), vec!["-DV=ab"]);
        assert!(g(" \n\t").is_empty() && c(" \n\t").is_empty());
    }
}
