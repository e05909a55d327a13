//! The output inspection that decides path bindings (ar archives, ELF section tables) on
//! any bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zcfs::binfmt::hidden_content(data);
});
