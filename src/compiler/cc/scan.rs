//! What a source's or header's text asks of the preprocessor, read without running it:
//! the names its `#include`, `#include_next`, `#import` and `__has_include` look up (also
//! through macros that wrap `__has_include`), whether a name is computed, the time macros
//! (also the pieces one could be pasted from), `#pragma once`, `#pragma GCC dependency`,
//! and the directives that make the assembler read a file. Scans are kept by content.

use std::collections::HashSet;

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

/// A token of C or C++ text that the scans look at: an identifier (start, length), or a
/// string literal (its opening and closing quote).
enum Token {
    Ident(usize, usize),
    Str(usize, usize),
}

/// Walks a text's identifiers and string literals, outside comments; character literals
/// are skipped, and a literal ends on its line (a `'` after a digit separates digits).
fn tokens(text: &[u8], mut f: impl FnMut(Token)) {
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
                let sep = b == b'\'' && i > 0 && text[i - 1].is_ascii_alphanumeric();
                let end = line_end(i);
                let mut j = i + 1;
                while j < end && text[j] != b {
                    j += if text[j] == b'\\' { 2 } else { 1 };
                }
                if b == b'"' && j < end {
                    f(Token::Str(i, j));
                }
                i = if sep || j >= end { i + 1 } else { j + 1 };
            }
            _ if is_ident(b) && !b.is_ascii_digit() => {
                let n = text[i..].iter().take_while(|&&c| is_ident(c)).count();
                if i == 0 || !is_ident(text[i - 1]) {
                    f(Token::Ident(i, n));
                }
                i += n;
            }
            _ => i += 1,
        }
    }
}

/// The identifiers of a text that are pieces of time macros, outside comments and
/// string and character literals (where they are no tokens).
fn date_pieces(text: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    tokens(text, |t| {
        if let Token::Ident(i, n) = t {
            let id = &text[i..i + n];
            if n < 13 && is_date_piece(id) {
                let id = String::from_utf8_lossy(id).into_owned();
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    });
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
/// quoted name follows (as `.include "f"`, or `.incbin \"f\"` in a C string), and where
/// that quote is.
fn directive_at(text: &[u8], at: usize) -> Option<(bool, usize)> {
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
    Some((rest.get(j) == Some(&b'"'), at + j))
}

/// The string literals of a C or C++ text outside comments: (opening quote, closing quote).
fn string_literals(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    tokens(text, |t| {
        if let Token::Str(open, close) = t {
            out.push((open, close));
        }
    });
    out
}

/// Whether the quote at `quote`, after a directive at `at`, closes an ordinary C string
/// literal that holds the directive, and what follows it on that line ends the string
/// (`)`, `,`, `;`, an operator): then no name follows the directive, as in
/// `strcmp(p, ".include")`. Anything that could go on with the string is a read: another
/// literal, a macro, a stringified argument (`".incbin " #f`), a later line (a `#define`'s
/// value is continued where it is used), and raw literals (`R"(...)"`) are not judged.
fn literal_ends_bare(text: &[u8], at: usize, quote: usize, literals: &[(usize, usize)]) -> bool {
    let Some(&(open, _)) = literals
        .iter()
        .find(|&&(open, close)| open < at && close == quote)
    else {
        return false;
    };
    if open > 0 && text[open - 1] == b'R' {
        return false;
    }
    let mut k = quote + 1;
    loop {
        match text.get(k) {
            Some(b' ' | b'\t') => k += 1,
            Some(b'/') if text.get(k + 1) == Some(&b'*') => {
                let Some(n) = memchr::memmem::find(&text[k + 2..], b"*/") else {
                    return false;
                };
                if text[k..k + n + 2].contains(&b'\n') {
                    return false;
                }
                k += n + 4;
            }
            Some(b) => {
                return matches!(
                    b,
                    b')' | b','
                        | b';'
                        | b']'
                        | b'}'
                        | b'='
                        | b'!'
                        | b'&'
                        | b'|'
                        | b'<'
                        | b'>'
                        | b'?'
                        | b':'
                );
            }
            None => return false,
        }
    }
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
    let mut literals = None;
    for i in memchr::memchr_iter(b'.', text) {
        if let Some((quoted, quote)) = directive_at(text, i) {
            s.asm_reads = true;
            if quoted && !s.c_reads {
                let escaped = quote > 0 && text[quote - 1] == b'\\';
                let literals = literals.get_or_insert_with(|| string_literals(text));
                s.c_reads = escaped || !literal_ends_bare(text, i, quote, literals);
            }
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
    fn a_directive_that_ends_a_c_string_names_no_file() {
        // A string that is only the directive's name (OpenSSL's configuration parser).
        for t in [
            &b"} else if (CHECK_AND_SKIP_PREFIX(pname, \".include\")\n  && (p != pname))"[..],
            b"if (strcmp(p, \".incbin\") == 0) return 1;",
            b"f(\".include\" /* the directive */ , 1);",
            b"const char *d = \".include\";",
            b"asm(\".incbin\" : : );",
        ] {
            let s = scan(t);
            assert!(s.asm_reads && !s.c_reads, "{}", String::from_utf8_lossy(t));
        }
        // What could go on with the string, raw literals, names outside a literal: read.
        for t in [
            &b"asm(\".incbin\" \"\\\"x\\\"\");"[..],
            b"asm(\".incbin \" FILE);",
            b"asm(\".incbin\"\n    \" \\\"x\\\"\");",
            b"asm(R\"(.incbin \")\" \"x\\\"\");",
            b"asm(S(.include \"x.s\"));",
            b"asm(\".include \\\"a.s\\\"\"); f(\".include\");",
            // A macro's value is continued where it is used; a stringified argument, a
            // literal on the next line or after a comment that ends the line continue it.
            b"#define D \".incbin\"\n#define E(f) asm(D \" \\\"\" f \"\\\"\")\n",
            b"#define INCBIN(f) __asm__(\".incbin \" #f)\n",
            b"#define INCBIN(f) __asm__(\".incbin \" %:f)\n",
            b"asm(\".incbin\" // the file:\n \"\\\"x\\\"\");",
            b"asm(\".incbin\" /* the\nfile */ \"\\\"x\\\"\");",
            b"asm(\".incbin\"",
        ] {
            let s = scan(t);
            assert!(s.c_reads, "{}", String::from_utf8_lossy(t));
        }
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
}
