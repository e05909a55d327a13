//! Path bindings of cache entries (spec X2, X3).
//!
//! The key of a compile does not contain the target dir or the cwd: both are replaced by
//! placeholders (see `normalize` in the parent module). Whether an entry's *outputs* depend
//! on those paths is decided when it is stored: every output except the dep-info file, and
//! the messages except `artifact` lines, are searched for the bytes of the cwd, the target
//! dir and `CARGO_HOME`. A path that is found makes the entry *strict* for it: a hit needs
//! the same path. A path that is not found is recorded anyway, so that an entry served under
//! another one gets its dep-info text, its `artifact` lines and its recorded input paths
//! rewritten ([`Rebase`]).

use crate::os::OsStrExt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::store::manifest::Binding;

/// Where a compile happens.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub cwd: &'a Path,
    pub out_dir: &'a Path,
    /// The target dir the out-dir lies in, if known.
    pub target_root: Option<&'a Path>,
}

/// Paths shorter than this are not searched for (they would be found everywhere); their
/// bindings are strict.
const MIN_NEEDLE: usize = 3;

/// Replaces every occurrence of `from` by `to`.
pub fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    replace_each(hay, &[(from.to_vec(), to.to_vec())], false).into_owned()
}

/// Bytes that end a path where paths are embedded in text: whitespace (dep-info rules,
/// lists), quotes (JSON), `=` and `:` (assignments, `PATH`-like lists), `;` and `,`.
fn delimits_path(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'=' | b':' | b';' | b','
    )
}

/// Whether a path is spelled the Windows way: a drive (`C:\`, `C:/`) or a UNC or verbatim
/// prefix (`\\`). Such a path is also continued by `\`, and appears in other spellings.
fn windows_style(path: &[u8]) -> bool {
    let drive = path.len() >= 3
        && path[0].is_ascii_alphabetic()
        && path[1] == b':'
        && matches!(path[2], b'\\' | b'/');
    drive || path.starts_with(b"\\\\")
}

/// Whether an occurrence of the path `needle` at `hay[at..]` is the whole path or a prefix
/// of it at a component boundary (`/a/ws` in `/a/ws/x`, not in `/a/ws2/x` or `/b/a/ws`;
/// for a Windows path, `\` is a boundary too).
fn is_path_at(hay: &[u8], at: usize, needle: &[u8]) -> bool {
    let win = windows_style(needle);
    let before = at == 0 || delimits_path(hay[at - 1]);
    let after = hay
        .get(at + needle.len())
        .is_none_or(|b| *b == b'/' || (win && *b == b'\\') || delimits_path(*b));
    before && after
}

/// Whether `path` occurs in `hay` as a path (see [`is_path_at`]).
pub fn contains_path(hay: &[u8], path: &[u8]) -> bool {
    !path.is_empty() && memchr::memmem::find_iter(hay, path).any(|at| is_path_at(hay, at, path))
}

/// The spellings under which a path can appear in a compile's outputs, arguments and
/// messages: itself, and for a Windows path also its canonical form (`winpath`), with the
/// drive letter in the other case, verbatim (`\\?\C:\x`), with `/` for `\`, and
/// JSON-escaped (`\\` for `\`, as in rustc's messages). Longest first.
pub fn spellings(path: &[u8]) -> Vec<Vec<u8>> {
    let mut v = vec![path.to_vec()];
    let Some(text) = std::str::from_utf8(path)
        .ok()
        .filter(|_| windows_style(path))
    else {
        return v;
    };
    let parsed = crate::winpath::WinPath::parse(text);
    let canonical = parsed.to_canonical();
    let mut plain = vec![canonical.clone()];
    match &parsed.prefix {
        crate::winpath::Prefix::Disk(d) => {
            plain.push(format!("{}{}", d.to_ascii_lowercase(), &canonical[1..]));
            v.push(format!(r"\\?\{canonical}").into_bytes());
        }
        crate::winpath::Prefix::Unc { .. } => {
            v.push(format!(r"\\?\UNC\{}", &canonical[2..]).into_bytes());
        }
        _ => {}
    }
    for p in plain {
        v.push(p.replace('\\', "/").into_bytes());
        v.push(p.into_bytes());
    }
    for p in v.clone() {
        v.push(replace_all(&p, b"\\", b"\\\\"));
    }
    v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    v.dedup();
    v
}

/// Replaces, in one left-to-right pass, each occurrence of any `from` by its `to`; where
/// several match at one position, the longest wins. Replaced text is not searched again.
/// `paths`: only occurrences that are paths (component boundaries, see [`is_path_at`]).
pub fn replace_each<'a>(hay: &'a [u8], pairs: &[(Vec<u8>, Vec<u8>)], paths: bool) -> Cow<'a, [u8]> {
    let pairs: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().filter(|(f, _)| !f.is_empty()).collect();
    let find = |from: usize, i: usize| -> Option<usize> {
        let f = &pairs[i].0;
        memchr::memmem::find_iter(&hay[from..], f)
            .map(|x| x + from)
            .find(|at| !paths || is_path_at(hay, *at, f))
    };
    let mut next: Vec<Option<usize>> = (0..pairs.len()).map(|i| find(0, i)).collect();
    if next.iter().all(Option::is_none) {
        return Cow::Borrowed(hay);
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut pos = 0;
    loop {
        // The earliest match, the longest among those at the same position.
        let best = next
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|at| (at, std::cmp::Reverse(pairs[i].0.len()), i)))
            .min();
        let Some((at, _, i)) = best else { break };
        out.extend_from_slice(&hay[pos..at]);
        out.extend_from_slice(&pairs[i].1);
        pos = at + pairs[i].0.len();
        for (j, n) in next.iter_mut().enumerate() {
            if n.is_some_and(|x| x < pos) {
                *n = find(pos, j);
            }
        }
    }
    out.extend_from_slice(&hay[pos..]);
    Cow::Owned(out)
}

/// `CARGO_HOME` as cargo resolves it.
pub fn cargo_home(env: &HashMap<OsString, OsString>) -> Option<PathBuf> {
    let get = |k: &str| env.get(OsStr::new(k)).filter(|v| !v.is_empty());
    if let Some(h) = get("CARGO_HOME") {
        return Some(PathBuf::from(h));
    }
    // Windows has no HOME; cargo takes the user's profile directory there.
    get("HOME")
        .or_else(|| cfg!(windows).then(|| get("USERPROFILE")).flatten())
        .map(|h| Path::new(h).join(".cargo"))
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// The paths to search the outputs for, as (binding name, bytes). Paths too short to
/// search are left out (and so bind strictly).
/// A path has several needles where it can be spelled several ways ([`spellings`]).
pub fn needles(job: &Place<'_>, cargo_home: Option<&Path>) -> Vec<(&'static str, Vec<u8>)> {
    let mut paths = vec![("cwd", bytes(job.cwd))];
    if let Some(r) = job.target_root {
        paths.push(("target", bytes(r)));
    }
    if let Some(h) = cargo_home {
        paths.push(("cargo-home", bytes(h)));
    }
    paths
        .into_iter()
        .filter(|(_, b)| b.len() >= MIN_NEEDLE)
        .flat_map(|(name, b)| spellings(b).into_iter().map(move |s| (name, s)))
        .collect()
}

/// The bindings of a new entry. `searched`: the needles that were searched for; `bound`:
/// those that bind it (found in its outputs or messages, or known to reach the compile
/// in a way a search cannot follow).
pub fn bindings(
    job: &Place<'_>,
    cargo_home: Option<&Path>,
    searched: &[&str],
    bound: &[&str],
) -> Vec<Binding> {
    let found = bound;
    let strict = |name: &str| found.contains(&name) || !searched.contains(&name);
    let mut v = vec![Binding::new("cwd", bytes(job.cwd), strict("cwd"))];
    match job.target_root {
        Some(root) if job.out_dir.starts_with(root) => {
            v.push(Binding::new("target", bytes(root), strict("target")));
            let rel = job.out_dir.strip_prefix(root).unwrap_or(job.out_dir);
            v.push(Binding::new("out-dir-rel", bytes(rel), true));
        }
        _ => v.push(Binding::new("out-dir", bytes(job.out_dir), true)),
    }
    // Recorded even when not found, so that an entry served under another home gets
    // the paths below it (its dep-info, its inputs) rewritten.
    if let Some(h) = cargo_home {
        v.push(Binding::new("cargo-home", bytes(h), strict("cargo-home")));
    }
    v
}

/// How an entry recorded under other paths is served here: (recorded, current) pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebase {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Whether an entry with `bindings` may be served to `job`, and how. `None`: it may not.
pub fn rebase(job: &Place<'_>, cargo_home: Option<&Path>, bindings: &[Binding]) -> Option<Rebase> {
    let mut r = Rebase::default();
    for b in bindings {
        let current: Cow<'_, [u8]> = match b.name.as_str() {
            "cwd" => Cow::Borrowed(bytes(job.cwd)),
            "target" => Cow::Borrowed(bytes(job.target_root?)),
            "out-dir" => Cow::Borrowed(bytes(job.out_dir)),
            "out-dir-rel" => {
                let root = job.target_root?;
                Cow::Borrowed(bytes(job.out_dir.strip_prefix(root).ok()?))
            }
            "cargo-home" => Cow::Borrowed(bytes(cargo_home?)),
            // A binding this version does not know: never guess.
            _ => return None,
        };
        if *current == *b.value {
            continue;
        }
        if b.strict {
            return None;
        }
        r.pairs.push((b.value.clone(), current.into_owned()));
    }
    Some(r)
}

impl Rebase {
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A recorded path as it is here: a recorded prefix is replaced by the current one.
    pub fn path<'a>(&self, p: &'a [u8]) -> Cow<'a, [u8]> {
        let best = self
            .pairs
            .iter()
            .filter(|(from, _)| {
                p.starts_with(from)
                    && (p.len() == from.len()
                        || p[from.len()] == b'/'
                        || (p[from.len()] == b'\\' && windows_style(from)))
            })
            .max_by_key(|(from, _)| from.len());
        match best {
            Some((from, to)) => {
                let mut v = to.clone();
                v.extend_from_slice(&p[from.len()..]);
                Cow::Owned(v)
            }
            None => Cow::Borrowed(p),
        }
    }

    /// A recorded value (an env-dep value) as it is here.
    pub fn text<'a>(&self, v: &'a [u8]) -> Cow<'a, [u8]> {
        replace_each(v, &self.pairs, true)
    }

    /// A dep-info file as it is here. Make-style dep-info escapes spaces in paths.
    pub fn dep_info(&self, bytes: &[u8]) -> Vec<u8> {
        let esc = |p: &[u8]| replace_all(p, b" ", b"\\ ");
        let mut pairs = self.pairs.clone();
        for (from, to) in &self.pairs {
            if from.contains(&b' ') || to.contains(&b' ') {
                pairs.push((esc(from), esc(to)));
            }
        }
        replace_each(bytes, &pairs, true).into_owned()
    }

    /// rustc's messages as they are here: paths in `artifact` lines are rewritten (they are
    /// JSON strings); other lines never contain the paths (else the entry is strict).
    pub fn messages(&self, stderr: &[u8]) -> Vec<u8> {
        let json = |p: &[u8]| {
            let q = serde_json::to_string(&String::from_utf8_lossy(p)).unwrap_or_default();
            q.as_bytes()[1..q.len() - 1].to_vec()
        };
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            self.pairs.iter().map(|(f, t)| (json(f), json(t))).collect();
        let mut out = Vec::with_capacity(stderr.len());
        for line in stderr.split_inclusive(|b| *b == b'\n') {
            if is_artifact_line(line) {
                out.extend_from_slice(&replace_each(line, &pairs, true));
            } else {
                out.extend_from_slice(line);
            }
        }
        out
    }
}

pub fn is_artifact_line(line: &[u8]) -> bool {
    line.starts_with(b"{\"$message_type\":\"artifact\"")
}

/// rustc's messages without `artifact` lines (the part searched for needles).
pub fn without_artifact_lines(stderr: &[u8]) -> Vec<u8> {
    stderr
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !is_artifact_line(l))
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        v.iter()
            .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn replace_each_is_one_pass_and_prefers_the_longest() {
        let p = pairs(&[("/a/ws", "/a/ws2"), ("/a/ws/target", "/b/t")]);
        assert_eq!(
            &*replace_each(b"x /a/ws/target/d /a/ws/src y", &p, false),
            b"x /b/t/d /a/ws2/src y"
        );
        // Replaced text is not searched again: /a/ws2 contains /a/ws.
        assert_eq!(&*replace_each(b"/a/ws/a/ws", &p, false), b"/a/ws2/a/ws2");
        assert!(matches!(
            replace_each(b"nothing", &p, false),
            Cow::Borrowed(_)
        ));
        assert_eq!(replace_all(b"aaa", b"aa", b"b"), b"ba");
    }

    #[test]
    fn path_replacement_respects_component_boundaries() {
        let p = pairs(&[("/src/ws", "/new")]);
        let r =
            |s: &str| String::from_utf8(replace_each(s.as_bytes(), &p, true).into_owned()).unwrap();
        assert_eq!(
            r("/src/ws/a /src/ws2/b /x/src/ws/c /src/ws"),
            "/new/a /src/ws2/b /x/src/ws/c /new"
        );
        assert_eq!(
            r("A=/src/ws:/src/ws/bin:/src/wsx"),
            "A=/new:/new/bin:/src/wsx"
        );
        assert_eq!(r("\"/src/ws/x\""), "\"/new/x\"");
        // An escaped space continues the path: not a boundary.
        assert_eq!(r("/src/ws\\ 2/x"), "/src/ws\\ 2/x");
        assert!(contains_path(b"OUT=/src/ws/t", b"/src/ws"));
        assert!(!contains_path(b"OUT=/src/ws2/t", b"/src/ws"));
        assert!(!contains_path(b"", b""));
    }

    #[test]
    fn windows_paths_are_found_in_every_spelling_and_rebased_at_backslashes() {
        // A Unix path has one spelling.
        assert_eq!(spellings(b"/src/ws"), vec![b"/src/ws".to_vec()]);
        let ws = br"C:\src\ws";
        let forms = spellings(ws);
        for f in [
            &br"C:\src\ws"[..],
            br"c:\src\ws",
            b"C:/src/ws",
            b"c:/src/ws",
            br"C:\\src\\ws",
            br"c:\\src\\ws",
        ] {
            assert!(
                forms.iter().any(|x| x == f),
                "{}",
                String::from_utf8_lossy(f)
            );
        }
        assert!(forms.iter().any(|x| x == br"\\?\C:\src\ws"));
        // Any spelling of the path has them all (and itself).
        for other in [&br"\\?\c:\src\ws"[..], b"c:/src/./ws/"] {
            let o = spellings(other);
            assert!(forms.iter().all(|f| o.contains(f)));
            assert!(o.iter().any(|x| x == other));
        }
        // `\` is a component boundary after a Windows path, not after a Unix one.
        assert!(contains_path(br"DEP=C:\src\ws\lib.rs", ws));
        assert!(!contains_path(br"DEP=C:\src\ws2\lib.rs", ws));
        assert!(!contains_path(br"/src/ws\x", b"/src/ws"));
        // As rustc's JSON messages spell it.
        let json = br#"{"file_name":"c:\\src\\ws\\src\\lib.rs"}"#;
        assert!(forms.iter().any(|f| contains_path(json, f)));
        // Every spelling of the checkout is a needle of the compile.
        let j = job(
            r"C:\src\ws",
            r"C:\src\ws\target\debug\deps",
            Some(r"C:\src\ws\target"),
        );
        let n = needles(&j, None);
        assert!(n.iter().any(|(k, v)| *k == "cwd" && v == br"C:\\src\\ws"));
        assert!(
            n.iter()
                .any(|(k, v)| *k == "target" && v == b"c:/src/ws/target")
        );
        // A recorded path below a moved checkout is rebased at `\`.
        let r = Rebase {
            pairs: vec![(ws.to_vec(), br"D:\w".to_vec())],
        };
        assert_eq!(&*r.path(br"C:\src\ws\src\lib.rs"), br"D:\w\src\lib.rs");
        assert_eq!(&*r.path(br"C:\src\ws2\lib.rs"), br"C:\src\ws2\lib.rs");
        assert_eq!(
            r.dep_info(b"C:\\src\\ws\\t\\x.d: C:\\src\\ws\\src\\lib.rs\n"),
            b"D:\\w\\t\\x.d: D:\\w\\src\\lib.rs\n"
        );
    }

    fn job<'a>(cwd: &'a str, out: &'a str, root: Option<&'a str>) -> Place<'a> {
        Place {
            cwd: Path::new(cwd),
            out_dir: Path::new(out),
            target_root: root.map(Path::new),
        }
    }

    fn env(home: &str) -> Option<PathBuf> {
        let e: HashMap<OsString, OsString> = [("HOME".into(), home.into())].into_iter().collect();
        cargo_home(&e)
    }

    #[test]
    fn strictness_follows_what_was_found() {
        let j = job("/w", "/w/target/debug/deps", Some("/w/target"));
        let e = env("/home/u");
        let n = needles(&j, e.as_deref());
        assert_eq!(
            n.iter().map(|x| x.0).collect::<Vec<_>>(),
            ["target", "cargo-home"]
        );
        let searched: Vec<&str> = n.iter().map(|x| x.0).collect();
        let b = bindings(&j, e.as_deref(), &searched, &["target"]);
        let get = |name: &str| b.iter().find(|x| x.name == name).cloned();
        // "/w" is too short to search: strict.
        assert!(get("cwd").unwrap().strict);
        assert!(get("target").unwrap().strict);
        assert_eq!(get("out-dir-rel").unwrap().value, b"debug/deps");
        // Searched and not found: recorded, to rewrite paths under another home.
        assert!(!get("cargo-home").unwrap().strict);
        let other_home = rebase(&j, Some(Path::new("/home/v/.cargo")), &b).unwrap();
        assert_eq!(
            &*other_home.path(b"/home/u/.cargo/registry/src/x/lib.rs"),
            b"/home/v/.cargo/registry/src/x/lib.rs"
        );
        let b = bindings(&j, e.as_deref(), &searched, &["target", "cargo-home"]);
        assert!(b.iter().any(|x| x.name == "cargo-home" && x.strict));
        assert_eq!(rebase(&j, Some(Path::new("/home/v/.cargo")), &b), None);
    }

    #[test]
    fn rebase_serves_unbound_entries_under_another_target() {
        let e = env("/home/u");
        let a = job(
            "/src/ws",
            "/src/ws/target/debug/deps",
            Some("/src/ws/target"),
        );
        let b = bindings(&a, e.as_deref(), &["cwd", "target", "cargo-home"], &["cwd"]);
        // Same place: nothing to rewrite.
        assert_eq!(rebase(&a, e.as_deref(), &b), Some(Rebase::default()));
        // Another target dir of the same checkout.
        let t2 = job("/src/ws", "/src/ws/t2/debug/deps", Some("/src/ws/t2"));
        let r = rebase(&t2, e.as_deref(), &b).unwrap();
        assert_eq!(
            &*r.path(b"/src/ws/target/debug/build/x/out/gen.rs"),
            b"/src/ws/t2/debug/build/x/out/gen.rs"
        );
        assert_eq!(&*r.path(b"/src/ws/targetx/a"), b"/src/ws/targetx/a");
        assert_eq!(&*r.path(b"src/lib.rs"), b"src/lib.rs");
        // Another profile dir: out-dir-rel differs.
        let rel = job(
            "/src/ws",
            "/src/ws/target/release/deps",
            Some("/src/ws/target"),
        );
        assert_eq!(rebase(&rel, e.as_deref(), &b), None);
        // Another checkout: the cwd was found in the outputs.
        let c2 = job(
            "/src/ws2",
            "/src/ws2/target/debug/deps",
            Some("/src/ws2/target"),
        );
        assert_eq!(rebase(&c2, e.as_deref(), &b), None);
        // Unknown binding names never match.
        let mut odd = b.clone();
        odd.push(Binding::new("future", b"x", false));
        assert_eq!(rebase(&a, e.as_deref(), &odd), None);
    }

    #[test]
    fn rewrites_dep_info_and_artifact_lines() {
        let r = Rebase {
            pairs: pairs(&[("/a b/target", "/c/t")]),
        };
        let d = b"/a\\ b/target/debug/deps/x.d: src/lib.rs /a\\ b/target/o/g.rs\n\n# env-dep:OUT_DIR=/a b/target/o\n";
        assert_eq!(
            r.dep_info(d),
            b"/c/t/debug/deps/x.d: src/lib.rs /c/t/o/g.rs\n\n# env-dep:OUT_DIR=/c/t/o\n".to_vec()
        );
        let msgs = b"{\"$message_type\":\"artifact\",\"artifact\":\"/a b/target/d/libx.rmeta\",\"emit\":\"metadata\"}\n{\"$message_type\":\"diagnostic\",\"rendered\":\"/a b/target\"}\n";
        let out = r.messages(msgs);
        assert!(
            out.starts_with(b"{\"$message_type\":\"artifact\",\"artifact\":\"/c/t/d/libx.rmeta\"")
        );
        assert!(out.ends_with(b"\"rendered\":\"/a b/target\"}\n"));
        assert_eq!(
            without_artifact_lines(msgs),
            b"{\"$message_type\":\"diagnostic\",\"rendered\":\"/a b/target\"}\n".to_vec()
        );
    }
}
