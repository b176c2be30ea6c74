//! Fuzz target: `flowgate::fuzzing::state_codec` (see its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate::fuzzing::state_codec(data) {
        panic!("invariant broken: {e}");
    }
});
