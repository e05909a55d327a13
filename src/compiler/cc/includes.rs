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
use std::path::{Path, PathBuf};

/// What a file's text asks of the preprocessor and what makes its result time-dependent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// `#include "x"`, `#include_next "x"`, `#import "x"`, `__has_include("x")`.
    pub quote: Vec<String>,
    /// The same with `<x>`.
    pub bracket: Vec<String>,
    /// `__has_include("x")` in a macro definition: looked up where the macro is used, from
    /// the directory of whichever file that is.
    pub quote_anywhere: Vec<String>,
    /// Names `__has_include` (or a wrapper) asks about: a file found there is not read, but
    /// its existence decides the result.
    pub has_include_names: Vec<String>,
    /// Names of `#include_next` and `__has_include_next` (either form): looked up in the
    /// search directories after the one the asking file was found in, whatever other file
    /// of that name the compile read.
    pub next: Vec<String>,
    /// An include whose name is computed by macros.
    pub computed: bool,
    /// A `__has_include` whose name is computed by macros (not a parameter of a macro that
    /// wraps it): the lookup cannot be known.
    pub computed_has_include: bool,
    /// Macros defined as a `__has_include` of one of their parameters (`#define
    /// HAS(x) __has_include(x)`): their uses are lookups too.
    pub has_include_wrappers: Vec<String>,
    pub time: bool,
    pub date: bool,
    pub timestamp: bool,
    /// `##` (or `%:%:`): tokens are pasted, so a time macro may be formed from pieces.
    pub pastes: bool,
    /// Identifiers that are pieces of `__DATE__`, `__TIME__` or `__TIMESTAMP__` (proper
    /// substrings of one): see [`pasteable`].
    pub date_pieces: Vec<String>,
    /// `.incbin`/`.include` (any case) where an assembler reading this file as assembly
    /// would see a directive, or `#embed`: reads a file no dependency file lists.
    pub asm_reads: bool,
    /// The same as it could reach the assembler from C: followed by a quoted name (an
    /// `asm("...")` string, a stringified macro argument), or `#embed`.
    pub c_reads: bool,
    /// `#pragma once` (or `_Pragma("once")`): the compilers skip a second inclusion of the
    /// *same file*, judged by identity, not by name or content.
    pub once: bool,
    /// `#import`: once-only inclusion for every file it names.
    pub imports: bool,
    /// `#pragma GCC dependency`: a warning that depends on two files' mtimes.
    pub pragma_dependency: bool,
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

/// The text with backslash-newlines removed (the preprocessor's first step: a directive or
/// an identifier may be split over lines).
fn splice(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memmem::find(text, b"\\\n").is_none()
        && memchr::memmem::find(text, b"\\\r\n").is_none()
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            if text.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

const TIME_MACROS: [&[u8]; 3] = [b"__DATE__", b"__TIME__", b"__TIMESTAMP__"];

/// Whether an identifier is a piece a time macro could be pasted from: a proper substring
/// of one, two characters at least (single letters are everywhere: macro parameters,
/// template parameters), or `_` (which can only begin or end one).
fn is_date_piece(id: &[u8]) -> bool {
    (id.len() >= 2 || id == b"_")
        && TIME_MACROS
            .iter()
            .any(|m| id.len() < m.len() && memchr::memmem::find(m, id).is_some())
}

/// The identifiers of a text that are pieces of time macros, outside comments and
/// string and character literals (where they are no tokens).
fn date_pieces(text: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let line_end =
        |from: usize| memchr::memchr(b'\n', &text[from..]).map_or(text.len(), |n| from + n);
    while i < text.len() {
        let b = text[i];
        match b {
            b'/' if text.get(i + 1) == Some(&b'/') => i = line_end(i),
            b'/' if text.get(i + 1) == Some(&b'*') => {
                i = memchr::memmem::find(&text[i + 2..], b"*/").map_or(text.len(), |n| i + n + 4)
            }
            b'"' | b'\'' => {
                // A literal ends on its line; a `'` after a digit separates digits.
                let sep = b == b'\'' && i > 0 && text[i - 1].is_ascii_alphanumeric();
                let end = line_end(i);
                let mut j = i + 1;
                while j < end && text[j] != b {
                    j += if text[j] == b'\\' { 2 } else { 1 };
                }
                i = if sep || j >= end { i + 1 } else { j + 1 };
            }
            _ if is_ident(b) && !b.is_ascii_digit() => {
                let n = text[i..].iter().take_while(|&&c| is_ident(c)).count();
                let id = &text[i..i + n];
                if (i == 0 || !is_ident(text[i - 1])) && n < 13 && is_date_piece(id) {
                    let id = String::from_utf8_lossy(id).into_owned();
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether `name` can be pasted together from identifiers in `pieces` (every operand of
/// `##` is a token of some file, or itself pasted from such tokens; a one-character piece
/// only at either end).
pub fn pasteable(name: &str, pieces: &HashSet<&str>) -> bool {
    let n = name.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for i in 0..n {
        if !reach[i] {
            continue;
        }
        for p in pieces {
            let ok_len = p.len() >= 2 || i == 0 || i + p.len() == n;
            if ok_len && p.len() < n && name[i..].starts_with(p) {
                reach[i + p.len()] = true;
            }
        }
    }
    reach[n]
}

/// The time macros' names.
pub const TIME_MACRO_NAMES: [&str; 3] = ["__DATE__", "__TIME__", "__TIMESTAMP__"];

/// `.incbin`/`.include` in any case at `at`, not part of a longer name. Returns whether a
/// quoted name follows (as `.include "f"`, or `.incbin \"f\"` in a C string).
fn directive_at(text: &[u8], at: usize) -> Option<bool> {
    let rest = &text[at..];
    let len = [&b".incbin"[..], b".include"]
        .iter()
        .find(|d| rest.len() >= d.len() && rest[..d.len()].eq_ignore_ascii_case(d))?
        .len();
    // Not a member name (`cfg.include`); an escape in a C string (`"nop\n\t.incbin"`) is
    // no identifier.
    if at > 0 && is_ident(text[at - 1]) && !(at > 1 && text[at - 2] == b'\\') {
        return None;
    }
    if rest.get(len).is_some_and(|&b| is_ident(b)) {
        return None;
    }
    let mut j = len;
    while rest.get(j).is_some_and(|&b| b == b' ' || b == b'\t') {
        j += 1;
    }
    while rest.get(j) == Some(&b'\\') {
        j += 1;
    }
    Some(rest.get(j) == Some(&b'"'))
}

/// Whether a line is a `#define`.
fn is_define(line: &[u8]) -> bool {
    trim_start(line)
        .strip_prefix(b"#")
        .is_some_and(|t| trim_start(t).starts_with(b"define"))
}

/// A `#define NAME(params...)` line: its name and parameters.
fn define_params(line: &[u8]) -> Option<(String, Vec<String>)> {
    let t = trim_start(line).strip_prefix(b"#")?;
    let t = trim_start(t).strip_prefix(b"define")?;
    if !t.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    let t = trim_start(t);
    let n = t.iter().take_while(|&&b| is_ident(b)).count();
    let name = std::str::from_utf8(&t[..n]).ok()?.to_string();
    let t = t[n..].strip_prefix(b"(")?;
    let close = t.iter().position(|&b| b == b')')?;
    let params = std::str::from_utf8(&t[..close])
        .ok()?
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    Some((name, params))
}

/// The argument of a call at `rest` (after the `(`): a literal name, or an identifier.
enum CallArg<'a> {
    Name(&'a [u8]),
    Ident(&'a [u8]),
    Other,
}

fn call_arg(rest: &[u8]) -> CallArg<'_> {
    let r = trim_start(rest);
    match r.first() {
        Some(b'"') | Some(b'<') => CallArg::Name(r),
        Some(&b) if is_ident(b) && !b.is_ascii_digit() => {
            let n = r.iter().take_while(|&&b| is_ident(b)).count();
            if trim_start(&r[n..]).first() == Some(&b')') {
                CallArg::Ident(&r[..n])
            } else {
                CallArg::Other
            }
        }
        _ => CallArg::Other,
    }
}

/// Reads the include directives and time-dependent constructs of a source or header.
pub fn scan(text: &[u8]) -> Scan {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let text = splice(text);
    let text = &text[..];
    let mut s = Scan {
        time: has_word(text, b"__TIME__"),
        date: has_word(text, b"__DATE__"),
        timestamp: has_word(text, b"__TIMESTAMP__"),
        pastes: memchr::memmem::find(text, b"##").is_some()
            || memchr::memmem::find(text, b"%:%:").is_some(),
        ..Scan::default()
    };
    // Assembler directives: anywhere, strings included (`asm("...")`).
    for i in memchr::memchr_iter(b'.', text) {
        if let Some(quoted) = directive_at(text, i) {
            s.asm_reads = true;
            s.c_reads |= quoted;
        }
    }
    s.date_pieces = date_pieces(text);
    for line in text.split(|&b| b == b'\n') {
        let t = trim_start(line);
        if let Some(rest) = t.strip_prefix(b"#") {
            let rest = trim_start(rest);
            let directive = ["include_next", "include", "import", "embed", "pragma"]
                .into_iter()
                .find(|d| {
                    rest.starts_with(d.as_bytes())
                        && rest.get(d.len()).is_none_or(|&b| !is_ident(b))
                });
            match directive {
                Some("embed") => {
                    s.asm_reads = true;
                    s.c_reads = true;
                }
                Some("pragma") => pragma(trim_start(&rest[6..]), &mut s),
                Some(d) => {
                    s.imports |= d == "import";
                    let mut n = Scan::default();
                    take_name(trim_start(&rest[d.len()..]), &mut n);
                    if d == "include_next" {
                        s.next.extend(n.quote.iter().chain(&n.bracket).cloned());
                    }
                    s.computed |= n.computed;
                    s.quote.extend(n.quote);
                    s.bracket.extend(n.bracket);
                }
                None => {}
            }
        }
        // `_Pragma("...")` anywhere.
        let mut from = 0;
        while let Some(i) = memchr::memmem::find(&line[from..], b"_Pragma") {
            let r = trim_start(&line[from + i + 7..]);
            if let Some(r) = r.strip_prefix(b"(") {
                let r = trim_start(r);
                if let Some(r) = r.strip_prefix(b"\"") {
                    let end = r.iter().position(|&b| b == b'"').unwrap_or(r.len());
                    pragma(trim_start(&r[..end]), &mut s);
                }
            }
            from += i + 1;
        }
        // `__has_include(...)` anywhere on a line (usually in `#if`), but where a fallback
        // for compilers without it defines it (`#define __has_include(...) 0`).
        let defines_it = define_params(line).is_some_and(|(n, _)| n.starts_with("__has_include"));
        let mut from = if defines_it { line.len() } else { 0 };
        while let Some(i) = memchr::memmem::find(&line[from..], b"__has_include") {
            let at = from + i;
            from = at + 1;
            if at > 0 && is_ident(line[at - 1]) {
                continue;
            }
            let mut rest = &line[at + b"__has_include".len()..];
            let next = rest.starts_with(b"_next");
            if next {
                rest = &rest[5..];
            }
            if rest.first().is_some_and(|&b| is_ident(b)) {
                continue;
            }
            let rest = trim_start(rest);
            // Not followed by `(`: `defined(__has_include)` and the like.
            let Some(r) = rest.strip_prefix(b"(") else {
                continue;
            };
            match call_arg(r) {
                CallArg::Name(r) => {
                    let mut d = Scan::default();
                    take_name(r, &mut d);
                    if next {
                        s.next.extend(d.quote.iter().chain(&d.bracket).cloned());
                    }
                    s.has_include_names
                        .extend(d.quote.iter().chain(&d.bracket).cloned());
                    if is_define(line) {
                        s.quote_anywhere.extend(d.quote);
                    } else {
                        s.quote.extend(d.quote);
                    }
                    s.bracket.extend(d.bracket);
                }
                CallArg::Ident(id) => match define_params(line) {
                    Some((name, params)) if params.iter().any(|p| p.as_bytes() == id) => {
                        if !s.has_include_wrappers.contains(&name) {
                            s.has_include_wrappers.push(name);
                        }
                    }
                    _ => s.computed_has_include = true,
                },
                CallArg::Other => s.computed_has_include = true,
            }
        }
    }
    s
}

/// The text of a `#pragma` (or `_Pragma`) after the word.
fn pragma(text: &[u8], s: &mut Scan) {
    let word =
        |t: &[u8], w: &[u8]| t.starts_with(w) && t.get(w.len()).is_none_or(|&b| !is_ident(b));
    if word(text, b"once") {
        s.once = true;
    } else if word(text, b"GCC") && word(trim_start(&text[3..]), b"dependency") {
        s.pragma_dependency = true;
    }
}

/// Lookups through `__has_include` wrappers (see [`Scan::has_include_wrappers`]) in one
/// file: the names they ask for, and the macros that wrap a wrapper in turn.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WrapperUses {
    pub quote: Vec<String>,
    /// Uses inside macro definitions: looked up from wherever those are used.
    pub quote_anywhere: Vec<String>,
    /// Every name asked about.
    pub names: Vec<String>,
    pub bracket: Vec<String>,
    pub new_wrappers: Vec<String>,
    /// A use whose name is computed.
    pub computed: bool,
}

pub fn wrapper_uses(text: &[u8], wrappers: &[String]) -> WrapperUses {
    let text = splice(text);
    let mut out = WrapperUses::default();
    let mut s = Scan::default();
    for line in text.split(|&b| b == b'\n') {
        let def = define_params(line);
        for w in wrappers {
            let mut from = 0;
            while let Some(i) = memchr::memmem::find(&line[from..], w.as_bytes()) {
                let at = from + i;
                from = at + 1;
                let end = at + w.len();
                if (at > 0 && is_ident(line[at - 1])) || line.get(end).is_some_and(|&b| is_ident(b))
                {
                    continue;
                }
                if def.as_ref().is_some_and(|(n, _)| n == w) {
                    continue; // its own definition
                }
                let Some(r) = trim_start(&line[end..]).strip_prefix(b"(") else {
                    continue; // `defined(W)`, `#ifdef W`
                };
                match call_arg(r) {
                    CallArg::Name(r) if is_define(line) => {
                        let mut d = Scan::default();
                        take_name(r, &mut d);
                        out.quote_anywhere.extend(d.quote);
                        s.bracket.extend(d.bracket);
                    }
                    CallArg::Name(r) => take_name(r, &mut s),
                    CallArg::Ident(id) => match &def {
                        Some((name, params)) if params.iter().any(|p| p.as_bytes() == id) => {
                            if !out.new_wrappers.contains(name) && !wrappers.contains(name) {
                                out.new_wrappers.push(name.clone());
                            }
                        }
                        _ => out.computed = true,
                    },
                    CallArg::Other => out.computed = true,
                }
            }
        }
    }
    out.computed |= s.computed;
    out.names = s
        .quote
        .iter()
        .chain(&s.bracket)
        .chain(&out.quote_anywhere)
        .cloned()
        .collect();
    out.quote = s.quote;
    out.bracket = s.bracket;
    out
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
    fn scans_directives_and_macros() {
        let s = scan(
            b"#include \"a.h\"\n  #  include <b/c.h>\n#include_next <d.h>\n#include CONF\n\
              #if __has_include(\"opt.h\")\nconst char *t = __TIME__;\nint __DATE__x;\n",
        );
        assert_eq!(s.quote, vec!["a.h", "opt.h"]);
        assert_eq!(s.bracket, vec!["b/c.h", "d.h"]);
        assert_eq!(s.next, vec!["d.h"]);
        assert!(s.computed);
        assert!(s.time);
        assert!(!s.date, "__DATE__x is another identifier");
        assert!(scan(b"asm(\".incbin \\\"x\\\"\");").c_reads);
        assert!(scan(b"#embed \"x.bin\"").c_reads);
    }

    #[test]
    fn assembler_directives_where_the_assembler_sees_them() {
        // Any case, in C strings, stringified, in assembly.
        for t in [
            &b"asm(\".INCBIN \\\"x\\\"\");"[..],
            b"__asm__(\"nop\\n\\t.incbin \\\"x\\\"\");",
            b"asm(S(.include \"x.s\"));",
        ] {
            let s = scan(t);
            assert!(s.c_reads && s.asm_reads, "{}", String::from_utf8_lossy(t));
        }
        let s = scan(b"  .InClUdE \"macros.s\"\n");
        assert!(s.asm_reads && s.c_reads);
        // A directive whose file comes from a macro argument: only assembly sees it.
        let s = scan(b".macro inc f\n.incbin \\f\n.endm\n");
        assert!(s.asm_reads && !s.c_reads);
        // Member names, designated initializers, longer words: not directives.
        for t in [
            &b"if (cfg->file.includes) x = data.include_untracked;"[..],
            b"struct o opts = { .include = 1, .incbin_size = 2 };",
            b"const char *s = \"see file.include\";",
        ] {
            let s = scan(t);
            assert!(!s.c_reads, "{}", String::from_utf8_lossy(t));
        }
        assert!(!scan(b"x.include(\"y\")").asm_reads);
    }

    #[test]
    fn pragmas_and_pasted_time_macros() {
        assert!(scan(b"#pragma once\n").once);
        assert!(scan(b"  #  pragma   once // guard\n").once);
        assert!(scan(b"_Pragma(\"once\")\n").once);
        assert!(!scan(b"#pragma onceler\n").once);
        assert!(scan(b"#import \"a.h\"\n").imports);
        assert!(scan(b"#pragma GCC dependency \"parse.y\"\n").pragma_dependency);
        assert!(scan(b"_Pragma(\"GCC dependency \\\"x\\\"\")").pragma_dependency);
        let s = scan(b"#define CAT(a, b) a##b\nconst char *d = CAT(__DA, TE__);\n");
        assert!(s.pastes && !s.date);
        assert_eq!(s.date_pieces, vec!["__DA", "TE__"]);
        let s = scan(b"#define CAT(a, b) a ## b\nint CAT(x, y);\n");
        assert!(s.pastes && s.date_pieces.is_empty());
        assert_eq!(
            scan(b"__DATE__ __TIME__ _DATEX DATE TIME T").date_pieces,
            vec!["DATE", "TIME"]
        );
        // Not in comments or literals; digit separators are no literals.
        assert_eq!(
            scan(b"/* __TIME */ // __\nx = \"__T\" + '_' + 1'000'0; TIME\n").date_pieces,
            vec!["TIME"]
        );
        let set = |v: &[&'static str]| v.iter().copied().collect::<HashSet<&str>>();
        assert!(pasteable("__DATE__", &set(&["__DA", "TE__"])));
        assert!(pasteable("__DATE__", &set(&["__", "DATE"])));
        assert!(pasteable("__DATE__", &set(&["_", "_DATE__"])));
        assert!(!pasteable("__DATE__", &set(&["__", "DAT"])));
        assert!(!pasteable("__TIME__", &set(&["__DA", "TE__", "__"])));
        // glibc's own pieces form nothing.
        assert!(
            !TIME_MACRO_NAMES
                .iter()
                .any(|n| pasteable(n, &set(&["__", "__D", "__T"])))
        );
        // A time macro or a directive split over lines.
        assert!(scan(b"const char *t = __TI\\\nME__;\n").time);
        let s = scan(b"#inc\\\nlude \"split.h\"\n");
        assert_eq!(s.quote, vec!["split.h"]);
    }

    #[test]
    fn has_include_of_computed_names_and_through_wrappers() {
        assert!(scan(b"#define H \"x.h\"\n#if __has_include(H)\n#endif\n").computed_has_include);
        assert!(scan(b"#if __has_include_next(H)\n#endif\n").computed_has_include);
        assert!(!scan(b"#if defined(__has_include)\n#endif\n").computed_has_include);
        assert!(
            !scan(b"#ifndef __has_include\n#define __has_include(...) 0\n#endif\n")
                .computed_has_include
        );
        let s = scan(b"#define HAS(x) __has_include(x)\n");
        assert!(!s.computed_has_include);
        assert_eq!(s.has_include_wrappers, vec!["HAS"]);
        let w = vec!["HAS".to_string()];
        let u = wrapper_uses(
            b"#define HAS(x) __has_include(x)\n#if HAS(<sv>) && HAS(\"cfg.h\")\n#endif\n\
              #define HAS2(y) HAS(y)\n#ifdef HAS\n#endif\n",
            &w,
        );
        assert_eq!(u.bracket, vec!["sv"]);
        assert_eq!(u.quote, vec!["cfg.h"]);
        assert_eq!(u.new_wrappers, vec!["HAS2"]);
        assert!(!u.computed);
        let s = scan(b"\xef\xbb\xbf#pragma once\n#define HAVE_CFG __has_include(\"cfg.h\")\n");
        assert!(s.once);
        assert_eq!(s.quote_anywhere, vec!["cfg.h"]);
        assert!(s.quote.is_empty());
        assert!(wrapper_uses(b"#if HAS(NAME)\n#endif\n", &w).computed);
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
