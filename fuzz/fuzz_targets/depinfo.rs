//! The dep-info parsers (rustc's dialect, make's, linker dependency files) on any text:
//! never panic, and every path they return is non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::compiler::depinfo::{self, Dialect};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Rustc, Dialect::Make] {
        let d = depinfo::parse(text, dialect);
        assert!(d.deps.iter().all(|p| !p.is_empty()));
        assert!(d.targets.iter().all(|p| !p.is_empty()));
    }
    for dep in depinfo::linker_deps(text) {
        assert!(dep.unescaped.as_deref() != Some(dep.raw.as_str()));
    }
});
