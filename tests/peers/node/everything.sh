#!/usr/bin/env bash
# Starts @modelcontextprotocol/server-everything (pinned in package.json) in Streamable HTTP
# mode on 127.0.0.1:PORT. Endpoint: http://127.0.0.1:PORT/mcp (POST/GET/DELETE, sessions,
# SSE responses). The package picks the transport from its first argument and the port from
# $PORT; loopback.mjs pins the bind address to 127.0.0.1 (the package binds all interfaces).
# The port is bound only after the app is set up, so polling it is a sound readiness check.
# The server logs each request to stdout and its start-up line to stderr. exec: signals
# reach node directly (it handles SIGINT; SIGTERM ends it at once).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PORT="${1:?usage: everything.sh PORT}"
main="$here/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
[ -f "$main" ] || { echo "everything.sh: $main is missing: run scripts/setup.sh" >&2; exit 1; }
exec node --import "$here/loopback.mjs" "$main" streamableHttp
