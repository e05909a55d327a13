//! `PackHeader::decode` on any bytes: refuses or decodes, never panics; what it decodes
//! encodes back to the same header and lies inside the file length it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcfs::store::pack::{ALIGN, PackHeader};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the file length the header is checked against.
    let (len, bytes) = match data.split_first_chunk::<8>() {
        Some((l, rest)) => (u64::from_le_bytes(*l), rest),
        None => (0, data),
    };
    if let Ok((header, id)) = PackHeader::decode(bytes, len) {
        let (again, id2) = header.encode();
        assert_eq!(id, id2);
        assert_eq!(&again[..], &bytes[..again.len()]);
        for e in &header.entries {
            assert!(e.offset % ALIGN == 0);
            assert!(e.offset.checked_add(e.padded_size()).is_some_and(|end| end <= len));
        }
    }
});
