//! Fuzz target: `flowgate_macros_core::fuzzing::dsl_compiler` — the `stream_query!` compiler
//! on token streams (a query from the grammar, valid or with one mistake, or a token soup; see
//! its documentation for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = flowgate_macros_core::fuzzing::dsl_compiler(data) {
        panic!("invariant broken: {e}");
    }
});
