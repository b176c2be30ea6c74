//! Fuzz target: `flowgate::fuzzing::file_decoders` (see its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate::fuzzing::file_decoders(data) {
        panic!("invariant broken: {e}");
    }
});
