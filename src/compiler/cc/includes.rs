//! What a C compile's result depends on besides the files it read: the paths where a header
//! would have been found *first* had it existed (spec CK7). A header created earlier on the
//! search path than the one that was used changes the result, and no dependency file lists
//! it; ccache misses this case, zcfs records those paths as "must stay absent".
//!
//! The inputs: the dependency list (as the compiler spelled it, the source first), the
//! include search list the compiler reported (`-E -v`), and what each file asks for, read
//! from its `#include` lines ([`super::scan`]). A header `P` found as `D/R` (for a search directory
//! `D`) could have come from, before `D`: the includer's directory (for `#include "R"`), the
//! quote directories (`-iquote`), and the search directories before `D`. Names asked for but
//! found nowhere (a conditional include not taken, `__has_include`) must stay absent in every
//! directory. When a file computes an include name (`#include MACRO`), every includer
//! directory counts for every header.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use super::scan::Scan;

/// The include search list as the compiler reported it (`cc -E -v`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchList {
    /// `#include "..."` directories (`-iquote`), searched after the includer's directory.
    pub quote: Vec<String>,
    /// `#include <...>` directories, in order (also searched for quote includes).
    pub bracket: Vec<String>,
    /// Directories the compiler skipped because they did not exist.
    pub missing: Vec<String>,
    /// Search paths that are files, which gcc skips with a warning ("not a directory").
    pub not_dirs: Vec<String>,
    /// A clang header map (`-I x.hmap`): lookups zcfs does not model.
    pub header_map: bool,
    /// clang: the GCC installation it selected (`Selected GCC installation`, multilib), and
    /// where it found the candidates.
    pub gcc_installation: String,
    pub gcc_candidates: Vec<String>,
    /// clang's own directory (`InstalledDir`): its prefix is searched for GCC installations.
    pub installed_dir: Option<String>,
}

impl SearchList {
    /// What the list was learned from: each directory in it (still a directory, the same
    /// one), each skipped one (still absent), each file (still not a directory), and for
    /// clang the directories whose listings decide the GCC installation. `args`: the
    /// preprocessor arguments (`--sysroot`, `--gcc-toolchain` move the installation).
    pub fn probes(&self, cwd: &Path, args: &[String]) -> super::probes::Probes {
        let mut p = super::probes::Probes::new();
        let at = |d: &str| crate::fsutil::resolve(cwd, Path::new(d));
        for d in self.quote.iter().chain(&self.bracket) {
            p.entry(&at(d));
        }
        for d in self.missing.iter().chain(&self.not_dirs) {
            p.entry(&at(d));
        }
        if self.installed_dir.is_some() || !self.gcc_candidates.is_empty() {
            for c in &self.gcc_candidates {
                let c = Path::new(c);
                for up in c.ancestors().skip(1).take(3) {
                    p.listing(up);
                }
            }
            let mut prefixes: Vec<PathBuf> = Vec::new();
            if let Some(d) = &self.installed_dir
                && let Some(parent) = Path::new(d).parent()
            {
                prefixes.push(parent.to_path_buf());
            }
            let mut i = 0;
            while i < args.len() {
                let a = &args[i];
                let value = |opt: &str| -> Option<String> {
                    if a == opt {
                        args.get(i + 1).cloned()
                    } else {
                        a.strip_prefix(opt)?.strip_prefix('=').map(str::to_string)
                    }
                };
                if let Some(v) = value("--sysroot").or_else(|| value("--gcc-toolchain")) {
                    prefixes.push(at(&v));
                    prefixes.push(at(&v).join("usr"));
                }
                i += 1;
            }
            prefixes.push(PathBuf::from("/usr"));
            for pre in prefixes {
                for sub in [
                    "lib/gcc",
                    "lib64/gcc",
                    "lib/gcc-cross",
                    "lib",
                    "lib64",
                    "lib32",
                ] {
                    p.listing(&pre.join(sub));
                }
            }
        }
        p
    }
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
        // gcc: `cc1: warning: inc.h: not a directory`.
        if let Some(rest) = line.strip_suffix(": not a directory")
            && let Some((_, d)) = rest.split_once(": warning: ")
        {
            list.not_dirs.push(d.to_string());
            continue;
        }
        if let Some(c) = line.strip_prefix("Found candidate GCC installation: ") {
            list.gcc_candidates.push(c.to_string());
            continue;
        }
        if line.starts_with("Selected GCC installation: ")
            || line.starts_with("Selected multilib: ")
        {
            list.gcc_installation.push_str(line);
            list.gcc_installation.push('\n');
            continue;
        }
        if let Some(d) = line.strip_prefix("InstalledDir: ") {
            list.installed_dir = Some(d.to_string());
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
            if d.ends_with(" (headermap)") {
                list.header_map = true;
                continue;
            }
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

/// Where lookups could have found a file other than the one the compile read.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Every such path (the caller keeps those that do not exist as "must stay absent").
    pub all: BTreeSet<String>,
    /// Those that come before a file the compile read in one lookup's order: a file there
    /// now was not there when the lookup passed it (or the lookup was not made), so its
    /// content must be recorded and it must not be newer than the compile.
    pub preceding: HashSet<String>,
}

/// The paths that must stay absent for the result to hold (candidates only; the caller
/// keeps those that do not exist). `deps[0]` is the source; `scans[i]` belongs to
/// `deps[i]`. `forced`: the `-include`/`-imacros` files, looked up from the working
/// directory first, then along the quote chain.
pub fn candidates(
    deps: &[String],
    scans: &[Scan],
    search: &SearchList,
    forced: &[String],
) -> Candidates {
    let mut out = BTreeSet::new();
    let computed = scans.iter().any(|s| s.computed);
    // Who asks for which name with quotes; who asks at all.
    let mut quote_askers: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut bracket_names: HashSet<&str> = HashSet::new();
    for f in forced {
        quote_askers.entry(f).or_default().push("");
    }
    let all_dirs: Vec<&str> = deps.iter().map(|d| dir_of(d)).collect();
    for s in scans {
        for q in &s.quote_anywhere {
            quote_askers.entry(q).or_default().extend(&all_dirs);
        }
    }
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

    for p in deps.iter().skip(1) {
        let mut interpreted = false;
        for (k, d) in search.bracket.iter().enumerate() {
            let Some(r) = under(p, d) else { continue };
            interpreted = true;
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
        // Found in an includer's own directory: nothing is searched before it (the
        // lookups below record what other askers of the name passed).
        for dir in &includer_dirs {
            if let Some(r) = under(p, dir)
                && quote_askers.contains_key(r)
            {
                interpreted = true;
            }
        }
        if !interpreted && !p.starts_with('/') && computed {
            // Only reachable by a computed name relative to some includer: be safe.
            for dir in all_quote_dirs() {
                out.insert(join(dir, p));
            }
        }
    }

    // `#include_next` names: looked up after the asking file's directory, which any
    // directory may be (the files the compile read are removed below).
    for (dep, s) in deps.iter().zip(scans) {
        for n in &s.next {
            if n.starts_with('/') {
                continue;
            }
            for dir in std::iter::once(dir_of(dep))
                .chain(search.quote.iter().map(String::as_str))
                .chain(search.bracket.iter().map(String::as_str))
            {
                out.insert(join(dir, n));
            }
        }
    }
    // Each lookup a file asks for, in the compiler's order: every place before the first
    // file the compile read (all of them when it read none of them: found nowhere, or
    // found and not read by a `__has_include` or a `#pragma once` skip).
    let read: HashSet<&str> = deps.iter().map(String::as_str).collect();
    let mut preceding = HashSet::new();
    let mut lookup = |order: Vec<String>| match order.iter().position(|c| read.contains(c.as_str()))
    {
        Some(i) => {
            for c in &order[..i] {
                preceding.insert(c.clone());
                out.insert(c.clone());
            }
        }
        None => out.extend(order),
    };
    let quote_dirs = || search.quote.iter().map(String::as_str);
    let bracket_dirs = || search.bracket.iter().map(String::as_str);
    for (r, askers) in &quote_askers {
        if r.starts_with('/') {
            lookup(vec![r.to_string()]);
            continue;
        }
        let mut askers = askers.clone();
        askers.sort_unstable();
        askers.dedup();
        for asker in askers {
            lookup(
                std::iter::once(asker)
                    .chain(quote_dirs())
                    .chain(bracket_dirs())
                    .map(|d| join(d, r))
                    .collect(),
            );
        }
    }
    for r in &bracket_names {
        if r.starts_with('/') {
            lookup(vec![r.to_string()]);
            continue;
        }
        lookup(bracket_dirs().map(|d| join(d, r)).collect());
    }
    // The files themselves are never candidates.
    for d in deps {
        out.remove(d);
        preceding.remove(d);
    }
    Candidates {
        all: out,
        preceding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let clang = "Found candidate GCC installation: /usr/lib/gcc/x86_64-linux-gnu/12\n\
                     Selected GCC installation: /usr/lib/gcc/x86_64-linux-gnu/12\n\
                     cc1: warning: f.h: not a directory\n\
                     #include <...> search starts here:\n x.hmap (headermap)\n inc\n\
                     End of search list.\n";
        let l = parse_search_list(clang).unwrap();
        assert_eq!(l.bracket, vec!["inc"]);
        assert!(l.header_map);
        assert_eq!(l.not_dirs, vec!["f.h"]);
        assert_eq!(l.gcc_candidates, vec!["/usr/lib/gcc/x86_64-linux-gnu/12"]);
        assert!(l.gcc_installation.contains("x86_64-linux-gnu/12"));
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
        let c = candidates(&deps, &scans, &list(&["new", "old", "/usr/include"]), &[]).all;
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
        let c = candidates(&deps, &scans, &list(&["inc"]), &[]).all;
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
        let c = candidates(&deps, &scans, &list(&["inc"]), &[]).all;
        assert!(c.is_empty(), "{c:?}");
    }
}
