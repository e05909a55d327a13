//! Parser for Makefile-style dependency files: rustc's `.d` (spec R5), the linker's
//! `--dependency-file`, and gcc/clang `-MD` output.
//!
//! Handles `\`-newline continuations, `\ ` (escaped space), `$$`, and rustc's
//! `# env-dep:NAME[=VALUE]` comments, whose values escape `\n`, `\r` and `\\`.

use std::collections::BTreeSet;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepInfo {
    /// Targets of all rules, in order of first appearance.
    pub targets: Vec<String>,
    /// Prerequisites of all rules, in order of first appearance, without duplicates.
    pub deps: Vec<String>,
    /// `# env-dep:` entries: name and value (`None`: unset; `Some("")`: set but empty).
    pub env: Vec<(String, Option<String>)>,
}

pub fn parse(text: &str) -> DepInfo {
    let mut out = DepInfo::default();
    let mut seen_deps = BTreeSet::new();
    let mut seen_targets = BTreeSet::new();

    // Join continuation lines first (a backslash right before the newline).
    let mut logical: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
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

    for line in logical {
        if let Some(rest) = line.strip_prefix("# env-dep:") {
            let (name, value) = match rest.find('=') {
                Some(i) => (&rest[..i], Some(unescape_env(&rest[i + 1..]))),
                None => (rest, None),
            };
            out.env.push((name.to_string(), value));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let tokens = tokenize(&line);
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

#[derive(Debug)]
struct Token {
    text: String,
    /// The token was terminated by the rule separator `:`.
    ends_rule: bool,
}

fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut seen_sep = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() && (chars[i + 1] == ' ' || chars[i + 1] == '#') => {
                cur.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '$' if i + 1 < chars.len() && chars[i + 1] == '$' => {
                cur.push('$');
                i += 2;
                continue;
            }
            ' ' | '\t' => {
                if !cur.is_empty() {
                    tokens.push(Token {
                        text: std::mem::take(&mut cur),
                        ends_rule: false,
                    });
                }
            }
            ':' if !seen_sep
                && (i + 1 == chars.len() || chars[i + 1] == ' ' || chars[i + 1] == '\t') =>
            {
                seen_sep = true;
                tokens.push(Token {
                    text: std::mem::take(&mut cur),
                    ends_rule: true,
                });
            }
            _ => cur.push(c),
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
        let d = parse(text);
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
    fn linker_dep_file_with_continuations() {
        let text = "/o/app: \\\n /usr/lib/crt1.o \\\n /o/deps/libx.rlib\n\n/usr/lib/crt1.o:\n";
        let d = parse(text);
        assert_eq!(d.targets, vec!["/o/app", "/usr/lib/crt1.o"]);
        assert_eq!(d.deps, vec!["/usr/lib/crt1.o", "/o/deps/libx.rlib"]);
    }

    #[test]
    fn gcc_style_escapes() {
        let d = parse("x.o: a$$b.h c\\#d.h C:dir/e.h\n");
        assert_eq!(d.deps, vec!["a$b.h", "c#d.h", "C:dir/e.h"]);
    }

    #[test]
    fn empty_and_garbage() {
        assert_eq!(parse(""), DepInfo::default());
        assert_eq!(parse("no rule here\n").deps, Vec::<String>::new());
    }
}
