//! Parsers for Makefile-style dependency files. Each writer escapes differently, so each
//! has its own dialect, and a parser applies exactly the escapes its writer produces:
//!
//! - [`Dialect::Rustc`]: rustc's `.d` (spec R5). A space in a path is written `\ `; nothing
//!   else is escaped (`$`, `#` and backslashes appear as they are: checked with rustc 1.95,
//!   a file `x y#z$$w/m.rs` is listed as `x\ y#z$$w/m.rs`); one rule per line, no
//!   continuation lines; `# env-dep:NAME[=VALUE]` comments whose values escape `\n`, `\r`
//!   and `\\`.
//! - [`Dialect::Make`]: GNU make's rules, as gcc and clang write with `-MD` and lld with
//!   `--dependency-file`: `\ ` (space), `\#`, `$$`, and backslash-newline continuations.
//! - [`linker_deps`]: a linker's `--dependency-file`. lld escapes like make; GNU ld 2.40
//!   escapes nothing (`a b#c$d/m.o` is written as it is). Both put one path per line, so
//!   each line gives its raw text and its make-unescaped text, and the caller picks the
//!   one that exists.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Rustc,
    Make,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepInfo {
    /// Targets of all rules, in order of first appearance.
    pub targets: Vec<String>,
    /// Prerequisites of all rules, in order of first appearance, without duplicates.
    pub deps: Vec<String>,
    /// `# env-dep:` entries: name and value (`None`: unset; `Some("")`: set but empty).
    pub env: Vec<(String, Option<String>)>,
}

pub fn parse(text: &str, dialect: Dialect) -> DepInfo {
    let mut out = DepInfo::default();
    let mut seen_deps = BTreeSet::new();
    let mut seen_targets = BTreeSet::new();

    for line in logical_lines(text, dialect) {
        if let Some(rest) = line.strip_prefix("# env-dep:") {
            if dialect == Dialect::Rustc {
                let (name, value) = match rest.find('=') {
                    Some(i) => (&rest[..i], Some(unescape_env(&rest[i + 1..]))),
                    None => (rest, None),
                };
                out.env.push((name.to_string(), value));
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let tokens = tokenize(&line, dialect);
        // The rule separator is a token that ends with an unescaped ':' (tokenize marks it).
        let Some(sep) = tokens.iter().position(|t| t.ends_rule) else {
            continue;
        };
        for t in &tokens[..=sep] {
            if !t.text.is_empty() && seen_targets.insert(t.text.clone()) {
                out.targets.push(t.text.clone());
            }
        }
        for t in &tokens[sep + 1..] {
            if !t.text.is_empty() && seen_deps.insert(t.text.clone()) {
                out.deps.push(t.text.clone());
            }
        }
    }
    out
}

/// The lines of a file, with make's backslash-newline continuations joined (make dialect).
fn logical_lines(text: &str, dialect: Dialect) -> Vec<String> {
    let mut logical: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if dialect == Dialect::Rustc {
            logical.push(line.to_string());
            continue;
        }
        if line.starts_with('#') && cur.is_empty() {
            logical.push(line.to_string());
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\')
            && !stripped.ends_with('\\')
        {
            cur.push_str(stripped);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        logical.push(std::mem::take(&mut cur));
    }
    if !cur.is_empty() {
        logical.push(cur);
    }
    logical
}

#[derive(Debug)]
struct Token {
    text: String,
    /// The token was terminated by the rule separator `:`.
    ends_rule: bool,
}

fn is_separator(c: char, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Rustc => c == ' ',
        Dialect::Make => c == ' ' || c == '\t',
    }
}

fn tokenize(line: &str, dialect: Dialect) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut seen_sep = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let escaped = match (dialect, c, next) {
            (_, '\\', Some(' ')) => Some(' '),
            (Dialect::Make, '\\', Some('#')) => Some('#'),
            (Dialect::Make, '$', Some('$')) => Some('$'),
            _ => None,
        };
        if let Some(e) = escaped {
            cur.push(e);
            i += 2;
            continue;
        }
        if is_separator(c, dialect) {
            if !cur.is_empty() {
                tokens.push(Token {
                    text: std::mem::take(&mut cur),
                    ends_rule: false,
                });
            }
        } else if c == ':' && !seen_sep && next.is_none_or(|n| is_separator(n, dialect)) {
            seen_sep = true;
            tokens.push(Token {
                text: std::mem::take(&mut cur),
                ends_rule: true,
            });
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        tokens.push(Token {
            text: cur,
            ends_rule: false,
        });
    }
    tokens
}

/// Undoes make's escapes in one path (`\ `, `\#`, `$$`).
pub fn unescape_make(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match (c, it.peek()) {
            ('\\', Some(' ' | '#')) | ('$', Some('$')) => out.push(it.next().unwrap_or(c)),
            _ => out.push(c),
        }
    }
    out
}

/// One prerequisite of a linker's dependency file: its text as written, and that text with
/// make's escapes undone if that differs (lld escapes, GNU ld does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerDep {
    pub raw: String,
    pub unescaped: Option<String>,
}

/// The prerequisites of the first rule of a linker's dependency file, one per line as both
/// GNU ld and lld write them (`target: \`, then `  path \` lines, the last without the
/// backslash). A file of another shape is read with make's rules.
pub fn linker_deps(text: &str) -> Vec<LinkerDep> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let one_per_line = first.ends_with(": \\") || (first.ends_with(':') && !first.is_empty());
    if !one_per_line {
        return parse(text, Dialect::Make)
            .deps
            .into_iter()
            .map(|raw| LinkerDep {
                raw,
                unescaped: None,
            })
            .collect();
    }
    let mut out: Vec<LinkerDep> = Vec::new();
    if first.ends_with(':') {
        return out;
    }
    for line in lines {
        if line.is_empty() {
            break;
        }
        let body = line.strip_prefix("  ").unwrap_or(line.trim_start());
        let (body, more) = match body.strip_suffix(" \\") {
            Some(b) => (b, true),
            None => (body, false),
        };
        let unescaped = unescape_make(body);
        let dep = LinkerDep {
            raw: body.to_string(),
            unescaped: (unescaped != body).then_some(unescaped),
        };
        if !out.contains(&dep) {
            out.push(dep);
        }
        if !more {
            break;
        }
    }
    out
}

fn unescape_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustc_dep_info() {
        let text = "/t/deps/util-1.d: src/lib.rs src/a\\ b.rs /o/gen.rs\n\n\
                    /t/deps/libutil-1.rmeta: src/lib.rs src/a\\ b.rs /o/gen.rs\n\n\
                    src/lib.rs:\nsrc/a\\ b.rs:\n/o/gen.rs:\n\n\
                    # env-dep:ZT=1\n# env-dep:ZT_OPT\n# env-dep:EMPTY=\n# env-dep:ML=a\\nb\\\\c\n\
                    # checksum:blake3=00 file_len:3 src/lib.rs\n";
        let d = parse(text, Dialect::Rustc);
        assert_eq!(d.deps, vec!["src/lib.rs", "src/a b.rs", "/o/gen.rs"]);
        assert_eq!(d.targets[0], "/t/deps/util-1.d");
        assert_eq!(
            d.env,
            vec![
                ("ZT".to_string(), Some("1".to_string())),
                ("ZT_OPT".to_string(), None),
                ("EMPTY".to_string(), Some(String::new())),
                ("ML".to_string(), Some("a\nb\\c".to_string())),
            ]
        );
    }

    #[test]
    fn rustc_writes_dollars_hashes_and_tabs_as_they_are() {
        // What rustc 1.95 writes for `include!("x y#z$$w/m.rs")` and a file with a tab.
        let d = parse(
            "l.d: l.rs x\\ y#z$$w/m.rs t\tab.rs dir\\\n\nl.rs:\n",
            Dialect::Rustc,
        );
        assert_eq!(d.deps, vec!["l.rs", "x y#z$$w/m.rs", "t\tab.rs", "dir\\"]);
        // The same text read as make would read it names other files.
        let m = parse("l.d: l.rs x\\ y#z$$w/m.rs\n", Dialect::Make);
        assert_eq!(m.deps, vec!["l.rs", "x y#z$w/m.rs"]);
    }

    #[test]
    fn make_style_escapes_and_continuations() {
        let d = parse(
            "x.o: a$$b.h c\\#d.h C:dir/e.h \\\n f\\ g.h\n",
            Dialect::Make,
        );
        assert_eq!(d.deps, vec!["a$b.h", "c#d.h", "C:dir/e.h", "f g.h"]);
        let text = "/o/app: \\\n /usr/lib/crt1.o \\\n /o/deps/libx.rlib\n\n/usr/lib/crt1.o:\n";
        let d = parse(text, Dialect::Make);
        assert_eq!(d.targets, vec!["/o/app", "/usr/lib/crt1.o"]);
        assert_eq!(d.deps, vec!["/usr/lib/crt1.o", "/o/deps/libx.rlib"]);
    }

    #[test]
    fn linker_dep_files_of_gnu_ld_and_lld() {
        // GNU ld 2.40 (nothing escaped) and lld (make escapes), one path per line.
        let ld = "m: \\\n  /usr/lib/crt1.o \\\n  a b#c$d/m.o \\\n  /o/x.rlib\n\n/usr/lib/crt1.o:\n";
        let deps = linker_deps(ld);
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[1].raw, "a b#c$d/m.o");
        assert_eq!(deps[1].unescaped, None);
        let lld = "m: \\\n  a\\ b\\#c$$d/m.o \\\n  /o/x.rlib\n\na\\ b\\#c$$d/m.o:\n";
        let deps = linker_deps(lld);
        assert_eq!(deps[0].raw, "a\\ b\\#c$$d/m.o");
        assert_eq!(deps[0].unescaped.as_deref(), Some("a b#c$d/m.o"));
        assert_eq!(deps[1].unescaped, None);
        assert!(linker_deps("m:\n").is_empty());
        // Another shape: read as make.
        let other = linker_deps("m: a\\ b.o c.o\n");
        assert_eq!(other[0].raw, "a b.o");
    }

    #[test]
    fn empty_and_garbage() {
        for dialect in [Dialect::Rustc, Dialect::Make] {
            assert_eq!(parse("", dialect), DepInfo::default());
            assert_eq!(parse("no rule here\n", dialect).deps, Vec::<String>::new());
            assert_eq!(parse("\\", dialect).deps, Vec::<String>::new());
        }
        assert!(linker_deps("").is_empty());
    }
}
