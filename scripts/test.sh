#!/usr/bin/env bash
# Runs every test: installs the test peers (Python `mcp`, the TypeScript SDK and
# server-everything) and build dependencies, then the whole cargo test suite, which drives
# the real `sluice` binary against real MCP SDK clients and servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh
scripts/setup.sh
cargo test --workspace --locked "$@"
