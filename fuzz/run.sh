#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000) with cargo-fuzz (libFuzzer),
# growing the committed corpora in fuzz/corpus/<target>/, and appends each target's figures to
# fuzz/RESULTS.md.
#
#   cargo install cargo-fuzz        # once (crates.io)
#   fuzz/run.sh [RUNS] [TARGET...]
#   FUZZ_FORK=2 fuzz/run.sh ...     # libFuzzer's -fork=2: two worker processes
#   FUZZ_SANITIZER=none fuzz/run.sh 1000 file_decoders   # a runtime target without ASan
#                                   # (its own target dir, target-none-rt/)
#   FUZZ_NICE=5 fuzz/run.sh ...     # the fuzzing's nice level (default 19)
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer=address, coverage instrumentation);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP=1, which is what this script sets.
# The runtime's targets run under AddressSanitizer (the runtime and its Arrow dependencies have
# `unsafe` code, the memory-mapped snapshot reader among it). `dsl_compiler` runs without a
# sanitizer (`-s none`): the compiler is safe Rust, so ASan would only slow it down (see
# RESULTS.md); it builds into its own target directory, `target-none/`, so that the two
# instrumentations do not rebuild each other's dependencies.
# The fuzzing itself runs under `nice -n 19` (it only takes CPU nobody else wants; `FUZZ_NICE=0`
# gives it a fair share on a busy machine); builds
# keep the caller's priority.
# A crash leaves its input in fuzz/artifacts/<target>/ and stops the script: fix the bug,
# add the input to the corpus (it is then replayed by `cargo test` in
# runtime/src/fuzzing.rs or macros-core/tests/fuzz.rs) and a unit test beside the code.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(json_fast_path file_decoders checkpoint_frame checkpoint_files state_codec dsl_compiler)
fi
fork="${FUZZ_FORK:-1}"
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    log="$(mktemp)"
    # The compiler's target needs no runtime (a much shorter build) and no sanitizer.
    build=(-O)
    [ "$t" = dsl_compiler ] && build=(-O -s none --no-default-features --target-dir target-none)
    # FUZZ_SANITIZER=none: a runtime target without AddressSanitizer, in its own target dir.
    [ "$t" != dsl_compiler ] && [ "${FUZZ_SANITIZER:-address}" = none ] && build=(-O -s none --target-dir target-none-rt)
    cargo fuzz build "${build[@]}" "$t"
    # -max_len: inputs up to 4 KiB (lines, small files, checkpoint entries);
    # -rss_limit_mb: the sanitizer's default 2 GiB is more than this machine should give.
    flags=(-runs="$runs" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1)
    [ "$fork" -gt 1 ] && flags+=(-fork="$fork")
    start=$(date +%s)
    # (PIPESTATUS read right after the pipeline: an `|| true` would reset it and hide a crash.)
    set +e
    nice -n "${FUZZ_NICE:-19}" cargo fuzz run "${build[@]}" "$t" "corpus/$t" -- "${flags[@]}" 2>&1 | tee "$log" \
        | grep --line-buffered -E "^#[0-9]+.*(DONE|pulse)|^#[0-9]+: cov|ERROR|panicked|invariant"
    status=${PIPESTATUS[0]}
    set -e
    secs=$(( $(date +%s) - start ))
    if [ "$fork" -gt 1 ]; then
        # Fork mode: the parent's job lines (`#N: cov: C ft: F corp: K ...`), N the executions
        # of all workers so far.
        last=$(grep -E "^#[0-9]+: cov" "$log" | tail -1 || true)
        execs=$(echo "$last" | grep -oE "^#[0-9]+" | tr -d '#' || true)
        cov=$(echo "$last" | grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" || true)
        [ -n "$cov" ] && cov="$cov (fork=$fork)"
    else
        execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || true)
        cov=$(grep -oE "DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+" "$log" | tail -1 || true)
        cov="${cov#*DONE }"
    fi
    files=$(ls "corpus/$t" | wc -l)
    echo "| $t | ${execs:-?} | ${secs} s | ${cov} | $files | $( [ "$status" = 0 ] && echo "no crash" || echo "CRASH: see artifacts/$t" ) |" \
        | tee -a RESULTS.md
    rm -f "$log"
    [ "$status" = 0 ] || exit "$status"
done
