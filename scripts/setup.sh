#!/usr/bin/env bash
# Installs the real MCP peers the tests run against: the official Python SDK (`mcp` from
# PyPI) in .venv, and the official TypeScript SDK plus server-everything from npm in
# tests/peers/node. Pinned versions; idempotent; fast when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_PY_VERSION="2.3.0"

say() { printf 'setup: %s\n' "$*" >&2; }

command -v python3 >/dev/null || { say "python3 is required"; exit 1; }
command -v node >/dev/null || { say "node is required"; exit 1; }
command -v npm >/dev/null || { say "npm is required"; exit 1; }

stamp=".venv/.sluice-mcp-$MCP_PY_VERSION"
if [ ! -f "$stamp" ]; then
  say "creating .venv with mcp==$MCP_PY_VERSION"
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "mcp==$MCP_PY_VERSION"
  touch "$stamp"
fi

node_dir="tests/peers/node"
lock_sum=$(sha256sum "$node_dir/package-lock.json" | cut -c1-16)
node_stamp="$node_dir/node_modules/.sluice-$lock_sum"
if [ ! -f "$node_stamp" ]; then
  say "installing npm packages in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$node_stamp"
fi
say "peers ready"
