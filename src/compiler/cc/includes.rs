//! What a C compile's result depends on besides the files it read: the paths where a header
//! would have been found *first* had it existed (spec CK7). A header created earlier on the
//! search path than the one that was used changes the result, and no dependency file lists
//! it; ccache misses this case, zcfs records those paths as "must stay absent".
//!
//! The inputs: the dependency list (as the compiler spelled it, the source first), the
//! include search list the compiler reported (`-E -v`), and what each file asks for, read
//! from its `#include` lines ([`scan`]). A header `P` found as `D/R` (for a search directory
//! `D`) could have come from, before `D`: the includer's directory (for `#include "R"`), the
//! quote directories (`-iquote`), and the search directories before `D`. Names asked for but
//! found nowhere (a conditional include not taken, `__has_include`) must stay absent in every
//! directory. When a file computes an include name (`#include MACRO`), every includer
//! directory counts for every header.

use std::collections::{BTreeSet, HashMap, HashSet};

/// What a file's text asks of the preprocessor and what makes its result time-dependent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// `#include "x"`, `#include_next "x"`, `#import "x"`, `__has_include("x")`.
    pub quote: Vec<String>,
    /// The same with `<x>`.
    pub bracket: Vec<String>,
    /// An include whose name is computed by macros.
    pub computed: bool,
    pub time: bool,
    pub date: bool,
    pub timestamp: bool,
    /// `.incbin`, `.include` (assembler) or `#embed`: reads a file no dependency file lists.
    pub reads_files: bool,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &[u8], word: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&text[from..], word) {
        let at = from + i;
        let end = at + word.len();
        let before_ok = at == 0 || !is_ident(text[at - 1]);
        let after_ok = end >= text.len() || !is_ident(text[end]);
        if before_ok && after_ok {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Reads the include directives and time-dependent constructs of a source or header.
pub fn scan(text: &[u8]) -> Scan {
    let mut s = Scan {
        time: has_word(text, b"__TIME__"),
        date: has_word(text, b"__DATE__"),
        timestamp: has_word(text, b"__TIMESTAMP__"),
        reads_files: memchr::memmem::find(text, b".incbin").is_some()
            || memchr::memmem::find(text, b".include").is_some(),
        ..Scan::default()
    };
    for line in text.split(|&b| b == b'\n') {
        let t = trim_start(line);
        if let Some(rest) = t.strip_prefix(b"#") {
            let rest = trim_start(rest);
            let directive = ["include_next", "include", "import", "embed"]
                .into_iter()
                .find(|d| {
                    rest.starts_with(d.as_bytes())
                        && rest.get(d.len()).is_none_or(|&b| !is_ident(b))
                });
            if let Some(d) = directive {
                if d == "embed" {
                    s.reads_files = true;
                    continue;
                }
                take_name(trim_start(&rest[d.len()..]), &mut s);
            }
        }
        // `__has_include(...)` anywhere on a line (usually in `#if`).
        let mut from = 0;
        while let Some(i) = memchr::memmem::find(&line[from..], b"__has_include") {
            let mut rest = &line[from + i + b"__has_include".len()..];
            if let Some(r) = rest.strip_prefix(b"_next") {
                rest = r;
            }
            let rest = trim_start(rest);
            // Not followed by `(`: `defined(__has_include)` and the like.
            if let Some(r) = rest.strip_prefix(b"(") {
                take_name(trim_start(r), &mut s);
            }
            from += i + 1;
        }
    }
    s
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

fn take_name(rest: &[u8], s: &mut Scan) {
    let (close, quote) = match rest.first() {
        Some(b'"') => (b'"', true),
        Some(b'<') => (b'>', false),
        _ => {
            s.computed = true;
            return;
        }
    };
    let Some(end) = rest[1..].iter().position(|&b| b == close) else {
        s.computed = true;
        return;
    };
    let Ok(name) = std::str::from_utf8(&rest[1..1 + end]) else {
        s.computed = true;
        return;
    };
    if quote {
        s.quote.push(name.to_string());
    } else {
        s.bracket.push(name.to_string());
    }
}

/// The include search list as the compiler reported it (`cc -E -v`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchList {
    /// `#include "..."` directories (`-iquote`), searched after the includer's directory.
    pub quote: Vec<String>,
    /// `#include <...>` directories, in order (also searched for quote includes).
    pub bracket: Vec<String>,
    /// Directories the compiler skipped because they did not exist.
    pub missing: Vec<String>,
}

/// Parses the search list from the stderr of `cc -E -v`; `None` if it is not there.
pub fn parse_search_list(stderr: &str) -> Option<SearchList> {
    let mut list = SearchList::default();
    let mut section = 0; // 1: quote, 2: bracket
    let mut complete = false;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("ignoring nonexistent directory \"") {
            if let Some(d) = rest.strip_suffix('"') {
                list.missing.push(d.to_string());
            }
            continue;
        }
        if line.starts_with("#include \"...\" search starts here") {
            section = 1;
            continue;
        }
        if line.starts_with("#include <...> search starts here") {
            section = 2;
            continue;
        }
        if line.starts_with("End of search list") {
            complete = true;
            break;
        }
        if section > 0
            && let Some(d) = line.strip_prefix(' ')
        {
            // Apple's clang marks framework dirs; nothing else follows a dir.
            let d = d.strip_suffix(" (framework directory)").unwrap_or(d);
            if section == 1 {
                list.quote.push(d.to_string());
            } else {
                list.bracket.push(d.to_string());
            }
        }
    }
    complete.then_some(list)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// `R` if `path` is `dir/R`.
fn under<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir.is_empty() {
        return (!path.starts_with('/')).then_some(path);
    }
    let rest = path.strip_prefix(dir)?;
    if dir.ends_with('/') {
        return (!rest.is_empty()).then_some(rest);
    }
    let rest = rest.strip_prefix('/')?;
    let rest = rest.trim_start_matches('/');
    (!rest.is_empty()).then_some(rest)
}

/// The paths that must stay absent for the result to hold (candidates only; the caller
/// keeps those that do not exist). `deps[0]` is the source; `scans[i]` belongs to
/// `deps[i]`.
pub fn candidates(deps: &[String], scans: &[Scan], search: &SearchList) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let computed = scans.iter().any(|s| s.computed);
    // Who asks for which name with quotes; who asks at all.
    let mut quote_askers: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut bracket_names: HashSet<&str> = HashSet::new();
    for (dep, s) in deps.iter().zip(scans) {
        for q in &s.quote {
            quote_askers.entry(q).or_default().push(dir_of(dep));
        }
        for b in &s.bracket {
            bracket_names.insert(b);
        }
    }
    let includer_dirs: BTreeSet<&str> = deps.iter().map(|d| dir_of(d)).collect();
    let all_quote_dirs = || {
        includer_dirs
            .iter()
            .copied()
            .chain(search.quote.iter().map(String::as_str))
    };
    let mut resolved: HashSet<&str> = HashSet::new();

    for p in deps.iter().skip(1) {
        let mut interpreted = false;
        for (k, d) in search.bracket.iter().enumerate() {
            let Some(r) = under(p, d) else { continue };
            interpreted = true;
            resolved.insert(r);
            let before = &search.bracket[..k];
            let quoted = quote_askers.get(r);
            if quoted.is_some() || computed || !bracket_names.contains(r) {
                let askers: Vec<&str> = match quoted {
                    Some(a) if !computed => a.clone(),
                    _ => includer_dirs.iter().copied().collect(),
                };
                for dir in askers
                    .iter()
                    .copied()
                    .chain(search.quote.iter().map(String::as_str))
                {
                    out.insert(join(dir, r));
                }
            }
            for dir in before {
                out.insert(join(dir, r));
            }
        }
        for (k, d) in search.quote.iter().enumerate() {
            let Some(r) = under(p, d) else { continue };
            interpreted = true;
            resolved.insert(r);
            let askers: Vec<&str> = match quote_askers.get(r) {
                Some(a) if !computed => a.clone(),
                _ => includer_dirs.iter().copied().collect(),
            };
            for dir in askers
                .iter()
                .copied()
                .chain(search.quote[..k].iter().map(String::as_str))
            {
                out.insert(join(dir, r));
            }
        }
        // Found in an includer's own directory: nothing is searched before it, but the
        // name is resolved.
        for dir in &includer_dirs {
            if let Some(r) = under(p, dir)
                && quote_askers.contains_key(r)
            {
                interpreted = true;
                resolved.insert(r);
            }
        }
        if !interpreted && !p.starts_with('/') && computed {
            // Only reachable by a computed name relative to some includer: be safe.
            for dir in all_quote_dirs() {
                out.insert(join(dir, p));
            }
        }
    }

    // Names asked for and found nowhere: absent everywhere they were looked for.
    for (r, askers) in &quote_askers {
        if resolved.contains(r) || r.starts_with('/') {
            continue;
        }
        for dir in askers
            .iter()
            .copied()
            .chain(search.quote.iter().map(String::as_str))
            .chain(search.bracket.iter().map(String::as_str))
        {
            out.insert(join(dir, r));
        }
    }
    for r in &bracket_names {
        if resolved.contains(r) || r.starts_with('/') {
            continue;
        }
        for dir in &search.bracket {
            out.insert(join(dir, r));
        }
    }
    // The files themselves are never candidates.
    for d in deps {
        out.remove(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_directives_and_macros() {
        let s = scan(
            b"#include \"a.h\"\n  #  include <b/c.h>\n#include_next <d.h>\n#include CONF\n\
              #if __has_include(\"opt.h\")\nconst char *t = __TIME__;\nint __DATE__x;\n",
        );
        assert_eq!(s.quote, vec!["a.h", "opt.h"]);
        assert_eq!(s.bracket, vec!["b/c.h", "d.h"]);
        assert!(s.computed);
        assert!(s.time);
        assert!(!s.date, "__DATE__x is another identifier");
        assert!(scan(b"asm(\".incbin \\\"x\\\"\");").reads_files);
        assert!(scan(b"#embed \"x.bin\"").reads_files);
    }

    #[test]
    fn search_list_from_verbose_output() {
        let err = "ignoring nonexistent directory \"missing\"\n\
                   #include \"...\" search starts here:\n q\n\
                   #include <...> search starts here:\n inc\n /usr/include\n\
                   End of search list.\n";
        let l = parse_search_list(err).unwrap();
        assert_eq!(l.quote, vec!["q"]);
        assert_eq!(l.bracket, vec!["inc", "/usr/include"]);
        assert_eq!(l.missing, vec!["missing"]);
        assert!(parse_search_list("no list").is_none());
    }

    fn list(bracket: &[&str]) -> SearchList {
        SearchList {
            bracket: bracket.iter().map(|s| s.to_string()).collect(),
            ..SearchList::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_header_earlier_on_the_path_and_beside_the_includer() {
        // src/a.c: #include "x.h" (found in old/), #include <y.h> (in /usr/include).
        let deps = strings(&["src/a.c", "old/x.h", "/usr/include/y.h"]);
        let scans = vec![
            Scan {
                quote: strings(&["x.h"]),
                bracket: strings(&["y.h"]),
                ..Scan::default()
            },
            Scan::default(),
            Scan::default(),
        ];
        let c = candidates(&deps, &scans, &list(&["new", "old", "/usr/include"]));
        // C5: new/x.h; C6: src/x.h (beside the includer); y.h in every dir before.
        for p in ["new/x.h", "src/x.h", "new/y.h", "old/y.h"] {
            assert!(c.contains(p), "{p} missing from {c:?}");
        }
        // Bracket includes do not search the includer's directory.
        assert!(!c.contains("src/y.h"));
        assert!(!c.contains("old/x.h"));
    }

    #[test]
    fn names_found_nowhere_stay_absent_everywhere() {
        let deps = strings(&["a.c"]);
        let scans = vec![Scan {
            quote: strings(&["cfg.h"]),
            ..Scan::default()
        }];
        let c = candidates(&deps, &scans, &list(&["inc"]));
        assert!(c.contains("cfg.h") && c.contains("inc/cfg.h"), "{c:?}");
    }

    #[test]
    fn relative_includes_through_the_includer() {
        let deps = strings(&["src/a.c", "src/../inc/u.h"]);
        let scans = vec![
            Scan {
                quote: strings(&["../inc/u.h"]),
                ..Scan::default()
            },
            Scan::default(),
        ];
        let c = candidates(&deps, &scans, &list(&["inc"]));
        assert!(c.is_empty(), "{c:?}");
    }
}
