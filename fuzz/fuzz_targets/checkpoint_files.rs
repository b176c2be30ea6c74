//! Fuzz target: `flowgate::fuzzing::checkpoint_files` (see its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate::fuzzing::checkpoint_files(data) {
        panic!("invariant broken: {e}");
    }
});
