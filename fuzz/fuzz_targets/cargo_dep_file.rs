//! cargo's binary `dep-` file parser (`snapshot::dep_file`) on any bytes: never panics, and
//! what it parses encodes back to exactly the bytes it came from (cargo's format has one
//! spelling per record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::snapshot::dep_file;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = dep_file::parse(data) {
        assert_eq!(dep_file::encode(&d), data);
    }
});
