//! `StreamCheck` (packs checked as they are downloaded) on any bytes, fed in chunks of any
//! size: never panics, and accepts exactly what the checks of a pack on disk accept (header
//! digest = the id asked for, every payload's digest, the canonical layout).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use zcfs::hash::Digest;
use zcfs::store::pack::{PackHeader, StreamCheck};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size; the id asked for is the header's own (else
    // every stream stops at the header).
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let want = PackHeader::decode(bytes, u64::MAX)
        .map(|(_, id)| id)
        .unwrap_or(Digest([0; 32]));
    let mut check = StreamCheck::new(Vec::new(), want);
    let mut ok = true;
    for chunk in bytes.chunks(step as usize + 1) {
        if check.write_all(chunk).is_err() {
            ok = false;
            break;
        }
    }
    let streamed = ok && check.finish().is_ok();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    std::fs::write(&path, bytes).unwrap();
    let on_disk = zcfs::store::pack::Pack::open(&path).is_ok_and(|p| {
        p.id == want && p.verify().is_ok() && p.check_layout().is_ok()
    });
    assert_eq!(streamed, on_disk);
});
