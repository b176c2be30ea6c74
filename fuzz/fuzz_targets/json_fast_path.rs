//! Fuzz target: `flowgate::fuzzing::json_fast_path` (see its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate::fuzzing::json_fast_path(data) {
        panic!("invariant broken: {e}");
    }
});
