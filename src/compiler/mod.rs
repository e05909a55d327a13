//! Compiler front ends: one module per compiler family, each turning an invocation into a
//! cache key and, after a miss, into the recorded inputs of a direct-mode manifest entry.

pub mod depinfo;
pub mod rustc;

use std::fmt;

/// Why an invocation is not cached. `reason` is a short, stable category (a stats key);
/// `detail` says what exactly was seen, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncacheable {
    pub reason: &'static str,
    pub detail: String,
}

impl Uncacheable {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Uncacheable {
        Uncacheable {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Uncacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The language of an invocation, for per-language stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    C,
    Emcc,
    Other,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Emcc => "emcc",
            Language::Other => "other",
        }
    }
}

/// Which compiler family a program name belongs to.
pub fn classify(program: &std::path::Path) -> Language {
    let name = program
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = name.strip_suffix(".exe").unwrap_or(name);
    if name == "rustc" {
        Language::Rust
    } else {
        Language::Other
    }
}
