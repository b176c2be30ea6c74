//! Compile-fail tests: every compile-time rule has a case under `tests/ui/<rule>/` with the
//! `.stderr` a user sees (regenerate with `TRYBUILD=overwrite cargo test -p flowgate-codegen-tests --test ui`
//! and review the diff).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
