#!/usr/bin/env bash
# Runs every test: installs the build dependency and the test peers (Python `mcp`, the
# TypeScript SDK and server-everything), then the whole cargo test suite, which drives the
# real `sluice` binary against real MCP SDK clients and servers on 127.0.0.1. Ends with one
# summary line, "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh
scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --lib --bins --tests: every unit and integration test (the crates have no doc tests).
cargo test --workspace --locked --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
passed=$(awk '/^test result:/{for(i=1;i<=NF;i++) if($(i)~/^passed;?$/) s+=$(i-1)} END{print s+0}' "$log")
failed=$(awk '/^test result:/{for(i=1;i<=NF;i++) if($(i)~/^failed;?$/) s+=$(i-1)} END{print s+0}' "$log")
echo
echo "$passed passed, $failed failed"
exit "$status"
