//! Fuzz target: `flowgate::fuzzing::checkpoint_frame` (see its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate::fuzzing::checkpoint_frame(data) {
        panic!("invariant broken: {e}");
    }
});
