#!/usr/bin/env bash
# tools/call throughput through Sluice vs. straight to the same upstream, in one run.
#
# Upstream: the bundled example server (`sluice example-server`, stateless JSON, 1 thread).
# Gateway: `sluice proxy` (1 worker thread) in front of it. Baseline proxies, no MCP
# awareness, 1 worker each: a bare pingora proxy (`cargo build --release --example
# plain_pingora -p sluice-proxy`, when built) and nginx with keep-alive upstreams (when installed). Load: wrk
# (Debian package, installed here if missing), one thread, C connections, D seconds per round,
# rounds interleaved direct/sluice/nginx so machine noise hits all alike. Loopback only.
#
# usage: bench/tools-call-rps.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
. bench/lib.sh
bench_require

UP=127.0.0.1:18081; GW=127.0.0.1:18080; ADMIN=127.0.0.1:18090; NGX=127.0.0.1:18082; PLAIN=127.0.0.1:18083
work=$(mktemp -d)
# SIGINT: pingora's fast shutdown (SIGTERM would wait out a grace period).
trap 'kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" example-server --listen "$UP" --threads 1 >/dev/null 2>&1 &
cat > "$work/sluice.toml" <<TOML
[proxy]
listen = "$GW"
admin_listen = "$ADMIN"
threads = 1
[sessions]
secret = "bench-secret-bench-secret-bench-secret-00"
[[servers]]
name = "example"
url = "http://$UP/mcp"
[[gateways]]
name = "bench"
servers = ["example"]
TOML
SLUICE_LOG=warn "$BIN" proxy --config "$work/sluice.toml" >/dev/null 2>"$work/sluice.log" &
bench_wait_ready "$ADMIN" 1
session=$(bench_session "http://$GW/mcp/bench")
[ -n "$session" ] || { echo "no session from the gateway" >&2; cat "$work/sluice.log" >&2; exit 1; }

targets="direct gateway"
plain_bin="$(dirname "$BIN")/examples/plain_pingora"
if [ -x "$plain_bin" ]; then
  "$plain_bin" "$PLAIN" "$UP" >/dev/null 2>&1 &
  for _ in $(seq 50); do curl -s "http://$PLAIN/" >/dev/null 2>&1 && break; sleep 0.1; done
  targets="$targets pingora"
fi
if command -v nginx >/dev/null; then
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work;
  proxy_temp_path $work;
  upstream up { server $UP; keepalive 64; }
  server {
    listen $NGX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
  nginx -c "$work/nginx.conf" >/dev/null 2>&1 &
  for _ in $(seq 50); do curl -s "http://$NGX/" >/dev/null 2>&1 && break; sleep 0.1; done
  targets="$targets nginx"
fi

bench_lua echo > "$work/direct.lua"
cp "$work/direct.lua" "$work/nginx.lua"
cp "$work/direct.lua" "$work/pingora.lua"
bench_lua example__echo "$session" > "$work/gateway.lua"

# Sanity: both paths answer the call.
bench_check "the direct path" "http://$UP/mcp" "$work/direct.lua" "$session"
bench_check "the gateway path" "http://$GW/mcp/bench" "$work/gateway.lua" "$session"

declare -A url=([direct]="http://$UP/mcp" [gateway]="http://$GW/mcp/bench" [nginx]="http://$NGX/mcp" [pingora]="http://$PLAIN/mcp")
for r in $(seq "$ROUNDS"); do
  for target in $targets; do
    bench_run "$r" "$target" "${url[$target]}" "$work/$target.lua"
  done
done
bench_summary direct $targets
