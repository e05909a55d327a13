//! `Manifest::decode` on any bytes: never panics; what it decodes encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::store::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Some(m) = Manifest::decode(data) {
        let again = Manifest::decode(&m.encode()).expect("re-encoded manifest decodes");
        assert_eq!(m, again);
    }
});
