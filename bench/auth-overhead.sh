#!/usr/bin/env bash
# What gateway authentication costs a warm tools/call, in one run, interleaved:
#   open  - a gateway without [gateways.auth]
#   token - the same upstream behind a static bearer token
#   jwt   - behind an RS256 JWT from a real IdP (tests/peers/node/idp.mjs, oauth2-mock-server),
#           validated once and then served from the token cache
# For each: req/s and p50/p99 from wrk, and the gateway's CPU time per request (utime+stime
# of the sluice process from /proc, divided by requests). Cold signature checks per second
# come from `cargo bench -p sluice-auth` (auth/benches/verify.rs).
#
# usage: bench/auth-overhead.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
. bench/lib.sh
bench_require
[ -d tests/peers/node/node_modules ] || { echo "run scripts/setup.sh first (the IdP peer)" >&2; exit 1; }

UP=127.0.0.1:18181; GW=127.0.0.1:18180; ADMIN=127.0.0.1:18190
TOKEN=bench-static-token-0123456789abcdef
work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" example-server --listen "$UP" --threads 1 >/dev/null 2>&1 &
bench_peer idp node tests/peers/node/idp.mjs
ISSUER=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$work/idp.out" | head -1)
[ -n "$ISSUER" ] || { echo "the IdP did not start" >&2; exit 1; }
echo '{"op":"token","claims":{"sub":"bench","aud":"sluice","groups":["eng"]},"expires_in":3600}' >&3
for _ in $(seq 100); do [ "$(wc -l < "$work/idp.out")" -ge 2 ] && break; sleep 0.1; done
JWT=$(sed -n '2s/.*"token":"\([^"]*\)".*/\1/p' "$work/idp.out")
[ -n "$JWT" ] || { echo "the IdP minted no token" >&2; exit 1; }

cat > "$work/sluice.toml" <<TOML
[proxy]
listen = "$GW"
admin_listen = "$ADMIN"
threads = 1
[sessions]
secret = "bench-secret-bench-secret-bench-secret-00"
[[auth.tokens]]
name = "bench"
token = "$TOKEN"
[[auth.providers]]
name = "corp"
issuer = "$ISSUER"
audiences = ["sluice"]
[[servers]]
name = "example"
url = "http://$UP/mcp"
[[gateways]]
name = "open"
servers = ["example"]
[[gateways]]
name = "token"
servers = ["example"]
[gateways.auth]
tokens = true
[[gateways]]
name = "jwt"
servers = ["example"]
[gateways.auth]
providers = ["corp"]
[[gateways.auth.rules]]
tools = ["example__*"]
require = { groups = "eng" }
TOML
SLUICE_LOG=warn "$BIN" proxy --config "$work/sluice.toml" >/dev/null 2>"$work/sluice.log" &
SLUICE_PID=$!
bench_wait_ready "$ADMIN" 1

declare -A bearer=([open]="" [token]="$TOKEN" [jwt]="$JWT")
for g in open token jwt; do
  s=$(bench_session "http://$GW/mcp/$g" "${bearer[$g]}")
  [ -n "$s" ] || { echo "no session on gateway $g" >&2; cat "$work/sluice.log" >&2; exit 1; }
  bench_lua example__echo "$s" "${bearer[$g]}" > "$work/$g.lua"
  bench_check "gateway $g" "http://$GW/mcp/$g" "$work/$g.lua" "$s" "${bearer[$g]}"
done

for r in $(seq "$ROUNDS"); do
  for g in $(bench_order "$r" open token jwt); do
    bench_run "$r" "$g" "http://$GW/mcp/$g" "$work/$g.lua" "$SLUICE_PID"
  done
done
bench_summary open open token jwt
