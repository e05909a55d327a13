//! The daemon's snapshot index (`snapshot::index`) read from any bytes: never panics, and
//! what it reads encodes to bytes that read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::snapshot::index::Index;

fuzz_target!(|data: &[u8]| {
    if let Some(i) = Index::decode(data) {
        assert_eq!(Index::decode(&i.encode()), Some(i));
    }
});
