#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000) with cargo-fuzz (libFuzzer,
# AddressSanitizer), growing the committed corpora in fuzz/corpus/<target>/, and appends each
# target's figures to fuzz/RESULTS.md.
#
#   cargo install cargo-fuzz        # once (crates.io)
#   fuzz/run.sh [RUNS] [TARGET...]
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer=address, coverage instrumentation);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP=1, which is what this script sets.
# A crash leaves its input in fuzz/artifacts/<target>/ and stops the script: fix the bug,
# add the input to the corpus (it is then replayed by `cargo test` in
# runtime/src/fuzzing.rs) and a unit test beside the code.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(json_fast_path file_decoders checkpoint_frame checkpoint_files state_codec dsl_compiler)
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    log="$(mktemp)"
    start=$(date +%s)
    # -max_len: inputs up to 4 KiB (lines, small files, checkpoint entries);
    # -rss_limit_mb: the sanitizer's default 2 GiB is more than this machine should give.
    features=()
    # The compiler's target needs no runtime (a much shorter build).
    [ "$t" = dsl_compiler ] && features=(--no-default-features)
    # (PIPESTATUS read right after the pipeline: an `|| true` would reset it and hide a crash.)
    set +e
    cargo fuzz run -O "${features[@]}" "$t" "corpus/$t" -- -runs="$runs" -max_len=4096 -rss_limit_mb=1024 \
        -print_final_stats=1 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|panicked|invariant"
    status=${PIPESTATUS[0]}
    set -e
    secs=$(( $(date +%s) - start ))
    execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || true)
    cov=$(grep -oE "DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+" "$log" | tail -1 || true)
    files=$(ls "corpus/$t" | wc -l)
    echo "| $t | ${execs:-?} | ${secs} s | ${cov#*DONE } | $files | $( [ "$status" = 0 ] && echo "no crash" || echo "CRASH: see artifacts/$t" ) |" \
        | tee -a RESULTS.md
    rm -f "$log"
    [ "$status" = 0 ] || exit "$status"
done
