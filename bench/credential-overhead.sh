#!/usr/bin/env bash
# What upstream credentials cost a warm tools/call, in one run, interleaved:
#   none   - a server without [servers.credential]
#   static - the same upstream with a static header
#   cc     - with oauth_client_credentials from a real token endpoint (tests/peers/node/authz.mjs,
#            oidc-provider), fetched once and then served from the token cache
# For each: req/s and p50/p99 from wrk, and the gateway's CPU time per request (utime+stime
# of the sluice process from /proc, divided by requests). The cold path (one token-endpoint
# round trip, paid by the first call only) is timed with curl against the same endpoint.
#
# usage: bench/credential-overhead.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
. bench/lib.sh
bench_require
[ -d tests/peers/node/node_modules ] || { echo "run scripts/setup.sh first (the token endpoint peer)" >&2; exit 1; }

UP=127.0.0.1:18281; GW=127.0.0.1:18280; ADMIN=127.0.0.1:18290
CLIENT_SECRET=bench-client-secret-0123456789
work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" example-server --listen "$UP" --threads 1 >/dev/null 2>&1 &
bench_peer authz node tests/peers/node/authz.mjs
TOKEN_URL=$(sed -n 's/.*"token_endpoint":"\([^"]*\)".*/\1/p' "$work/authz.out" | head -1)
[ -n "$TOKEN_URL" ] || { echo "the token endpoint did not start" >&2; exit 1; }
echo "{\"op\":\"client\",\"client_id\":\"sluice\",\"client_secret\":\"$CLIENT_SECRET\"}" >&3
for _ in $(seq 100); do [ "$(wc -l < "$work/authz.out")" -ge 2 ] && break; sleep 0.1; done

cat > "$work/sluice.toml" <<TOML
[proxy]
listen = "$GW"
admin_listen = "$ADMIN"
threads = 1
[sessions]
secret = "bench-secret-bench-secret-bench-secret-00"
[telemetry]
access_log = "off"
[[servers]]
name = "none"
url = "http://$UP/mcp"
[[servers]]
name = "static"
url = "http://$UP/mcp"
[servers.credential]
type = "static"
value = "Bearer bench-static-upstream-token-0123456789"
[[servers]]
name = "cc"
url = "http://$UP/mcp"
[servers.credential]
type = "oauth_client_credentials"
token_url = "$TOKEN_URL"
client_id = "sluice"
client_secret = "$CLIENT_SECRET"
scopes = ["tools"]
[[gateways]]
name = "none"
servers = ["none"]
[[gateways]]
name = "static"
servers = ["static"]
[[gateways]]
name = "cc"
servers = ["cc"]
TOML
SLUICE_LOG=warn "$BIN" proxy --config "$work/sluice.toml" >/dev/null 2>"$work/sluice.log" &
SLUICE_PID=$!
bench_wait_ready "$ADMIN" 3

for g in none static cc; do
  s=$(bench_session "http://$GW/mcp/$g")
  [ -n "$s" ] || { echo "no session on gateway $g" >&2; cat "$work/sluice.log" >&2; exit 1; }
  bench_lua "${g}__echo" "$s" > "$work/$g.lua"
  bench_check "gateway $g" "http://$GW/mcp/$g" "$work/$g.lua" "$s"
done

for r in $(seq "$ROUNDS"); do
  for g in $(bench_order "$r" none static cc); do
    bench_run "$r" "$g" "http://$GW/mcp/$g" "$work/$g.lua" "$SLUICE_PID"
  done
done
bench_summary none none static cc

echo
echo "token requests during the run (1 = the catalog fetch's, every call after it a cache hit):"
curl -sf "http://$ADMIN/metrics" | grep -E '^sluice_(token_endpoint|credential_cache)_requests_total\{.*server="cc"' || true
echo
echo "cold path: one client-credentials round trip to the token endpoint (curl, 10 tries):"
for _ in $(seq 10); do
  curl -s -o /dev/null -w '%{time_total}\n' -u "sluice:$CLIENT_SECRET" \
    -d grant_type=client_credentials -d scope=tools "$TOKEN_URL"
done | sort -n | awk '{t[NR]=$1} END {printf "  min %.1f ms, median %.1f ms, max %.1f ms\n", t[1]*1000, t[int((NR+1)/2)]*1000, t[NR]*1000}'
