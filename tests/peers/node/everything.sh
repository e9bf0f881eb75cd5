#!/usr/bin/env bash
# Starts @modelcontextprotocol/server-everything in Streamable HTTP mode on PORT (endpoint /mcp).
set -euo pipefail
cd "$(dirname "$0")"
export PORT="${1:?usage: everything.sh PORT}"
exec node node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp
