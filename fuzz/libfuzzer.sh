#!/usr/bin/env bash
# Runs the libFuzzer wrappers (fuzz_targets/) on a stable toolchain, without cargo-fuzz: builds
# the fuzz/cargo-fuzz package with the coverage instrumentation cargo-fuzz would ask for (the
# sanitizer-coverage pass is stable; only -Zsanitizer needs nightly, and no sanitizer is used),
# then fuzzes each target over a scratch copy of its corpus.
#
#   fuzz/libfuzzer.sh [SECONDS] [TARGET...]      # default: 60 seconds, every target
#
# Needs a C++ compiler (libfuzzer-sys builds libFuzzer) and crates.io for libfuzzer-sys. Builds
# into its own target directory, since the instrumented build differs from the workspace's.
# Findings go to fuzz/artifacts/TARGET/; new inputs stay in the scratch copy (minimise with
# -merge=1 before adding any to fuzz/corpus/).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(jsonrpc_envelope session_token relayed_id event_cursor sse jwt config header_values)
fi
declare -A max_len=([jsonrpc_envelope]=4096 [session_token]=6000 [relayed_id]=3000
    [event_cursor]=5000 [sse]=4096 [jwt]=4096 [config]=8192 [header_values]=1024)

manifest=fuzz/cargo-fuzz/Cargo.toml
# The package has its own lock file; start it from the workspace's so the versions match.
[ -f fuzz/cargo-fuzz/Cargo.lock ] || cp Cargo.lock fuzz/cargo-fuzz/Cargo.lock
export CARGO_TARGET_DIR="${SLUICE_LIBFUZZER_TARGET_DIR:-$HOME/.cache/sluice-target-libfuzzer}"
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --manifest-path "$manifest" --target "$host"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    cp "fuzz/corpus/$t/"* "$scratch/$t/"
    "$CARGO_TARGET_DIR/$host/release/$t" "$scratch/$t" -max_total_time="$seconds" \
        -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" > "$scratch/$t.log" 2>&1 || status=1
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$t.log" | tail -1 || true)
    first=$(grep -E '^#[0-9]+[[:space:]]+INITED' "$scratch/$t.log" | head -1 | grep -oE 'cov: [0-9]+' || true)
    echo "$t: ${done_line:-no DONE line (a crash? see below)} (start $first)"
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$scratch/$t.log" || true
done
exit "$status"
