//! Compiler front ends: one module per compiler family, each turning an invocation into a
//! cache key and, after a miss, into the recorded inputs of a direct-mode manifest entry,
//! all behind one interface ([`family`]) that the engine's pipeline drives.

pub mod cc;
pub mod depinfo;
pub mod family;
pub mod rustc;

pub use family::{Compile, Family, Invocation, KeyContext, Views};

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

/// Why a key could not be computed: the invocation is not cacheable (the compiler runs,
/// the reason is counted), or zcfs failed (the compiler runs, the error is logged).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Uncacheable(Uncacheable),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl From<Uncacheable> for KeyError {
    fn from(u: Uncacheable) -> Self {
        KeyError::Uncacheable(u)
    }
}

/// The language of an invocation, for per-language stats (`zcfs stats` counts by its
/// name). A new family defines its own in its folder (`Language::new("nvcc")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language(&'static str);

impl Language {
    pub const RUST: Language = Language("rust");
    pub const C: Language = Language("c");
    pub const CXX: Language = Language("cxx");
    pub const EMCC: Language = Language("emcc");
    /// A program no family claims.
    pub const OTHER: Language = Language("other");

    pub const fn new(name: &'static str) -> Language {
        Language(name)
    }

    pub fn name(self) -> &'static str {
        self.0
    }
}

/// Every compiler family zcfs caches, in the order they are asked whether a program is
/// theirs. A new family is one folder under `compiler/` and one line here
/// (docs/architecture.md).
pub fn families(paths: &crate::paths::Paths) -> Vec<Box<dyn Family>> {
    vec![
        Box::new(rustc::RustcFamily::new(paths.identity_cache_file())),
        Box::new(cc::CcFamily::default()),
    ]
}

/// A name zcfs answers to in place of a compiler (a masquerade link, `zcfs <name> ...`).
pub fn is_masquerade_name(name: &str) -> bool {
    is_c_driver_name(name) || is_emcc_name(name)
}

/// `emcc`, `em++` and their Python entry points (an Emscripten compile: a dialect of
/// clang's, `compiler/cc/emcc.rs`).
pub fn is_emcc_name(name: &str) -> bool {
    matches!(name, "emcc" | "em++" | "emcc.py" | "em++.py")
}

/// `gcc`, `g++`, `cc`, `c++`, `clang`, `clang++`, with an optional `<triple>-` prefix and
/// `-<version>` suffix.
pub fn is_c_driver_name(name: &str) -> bool {
    let base = match name.rfind('-') {
        Some(i)
            if name[i + 1..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                && !name[i + 1..].is_empty() =>
        {
            &name[..i]
        }
        _ => name,
    };
    let driver = base.rsplit('-').next().unwrap_or(base);
    matches!(driver, "gcc" | "g++" | "cc" | "c++" | "clang" | "clang++")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_driver_names() {
        for n in [
            "gcc",
            "g++",
            "cc",
            "c++",
            "clang",
            "clang++",
            "gcc-12",
            "clang++-14",
            "x86_64-linux-gnu-gcc-12",
            "aarch64-linux-gnu-g++",
        ] {
            assert!(is_c_driver_name(n), "{n}");
        }
        for n in ["rustc", "emcc", "mycc", "gcc-ar", "clang-tidy", "cc1"] {
            assert!(!is_c_driver_name(n), "{n}");
        }
    }
}
