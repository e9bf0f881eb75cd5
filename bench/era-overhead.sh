#!/usr/bin/env bash
# What a warm tools/call costs in each protocol era (issue 9, MCP 2026-07-28), in one run,
# interleaved:
#   handshake  - a 2025-11-25 client in a gateway session (Mcp-Session-Id) calls hs__echo; the
#                gateway forwards it in the upstream session its session token carries
#   modern     - a 2026-07-28 client, no session: MCP-Protocol-Version, Mcp-Method and Mcp-Name
#                headers and the params._meta envelope; it calls era__echo, whose upstream
#                speaks the revision, so the call is forwarded as it is, with no upstream session
#   bridged    - the same modern client calls hs__echo on the handshake-only upstream: the
#                gateway strips the envelope, calls in an upstream session it holds for the
#                caller, and adds "resultType" to the answer
#   direct-hs  - the handshake call straight to the handshake-only upstream (its own session)
#   direct-mod - the modern call straight to the 2026-07-28 upstream
# The two upstreams are `sluice-bench mock-upstream` (JSON answers, sessions, 1 thread, 3
# tools), the same but for --modern, which also answers server/discover and stateless calls
# of the revision. For each target: req/s and p50/p99 from wrk, and for the gateway paths the
# gateway's CPU time per request. Every answer is checked for a JSON-RPC result (a wrk response
# hook, which costs wrk a little on every target alike); any non-2xx, socket or JSON-RPC error
# fails the run.
#
# usage: bench/era-overhead.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
MOCK="${SLUICE_BENCH_BIN:-$(dirname "$BIN")/sluice-bench}"
. bench/lib.sh
bench_require
[ -x "$MOCK" ] || { echo "build first: cargo build --release -p sluice-bench (or set SLUICE_BENCH_BIN)" >&2; exit 1; }

HS=127.0.0.1:18481; ERA=127.0.0.1:18482; GW=127.0.0.1:18480; ADMIN=127.0.0.1:18490
MODERN=2026-07-28
work=$(mktemp -d)
# SIGINT for Sluice (pingora's fast shutdown); the mocks do not handle it, and a background job
# of a script ignores it, so they get SIGTERM.
MOCK_PIDS=()
trap 'kill -TERM "${MOCK_PIDS[@]}" 2>/dev/null; kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# mock NAME ADDR [FLAG...]: starts a mock upstream and waits (bounded) for its ready line.
mock() {
  local name=$1 addr=$2; shift 2
  "$MOCK" mock-upstream --listen "$addr" --threads 1 --tools 3 --sessions "$@" > "$work/$name.out" 2>&1 &
  MOCK_PIDS+=($!)
  for _ in $(seq 100); do grep -q '^listening on' "$work/$name.out" && return 0; sleep 0.1; done
  echo "mock $name did not start:" >&2; cat "$work/$name.out" >&2; return 1
}
mock hs "$HS"
mock era "$ERA" --modern

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
name = "hs"
url = "http://$HS/mcp"
[[servers]]
name = "era"
url = "http://$ERA/mcp"
[[gateways]]
name = "bench"
servers = ["hs", "era"]
TOML
SLUICE_LOG=warn "$BIN" proxy --config "$work/sluice.toml" >/dev/null 2>"$work/sluice.log" &
SLUICE_PID=$!
bench_wait_ready "$ADMIN" 2
# The catalog must have told the eras apart: era speaks 2026-07-28, hs does not, both keep
# sessions.
ready=$(curl -sf "http://$ADMIN/readyz")
for want in '"hs":{[^}]*"modern":false' '"era":{[^}]*"modern":true' '"hs":{[^}]*"stateful":true' '"era":{[^}]*"stateful":true'; do
  echo "$ready" | grep -q "$want" || { echo "unexpected catalog ($want): $ready" >&2; exit 1; }
done

# modern_lua TOOL: a wrk script calling TOOL as a 2026-07-28 client (no session).
modern_lua() {
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"$1","arguments":{"text":"hello from the benchmark"},"_meta":{"io.modelcontextprotocol/protocolVersion":"$MODERN","io.modelcontextprotocol/clientCapabilities":{}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "$MODERN"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "$1"
LUA
}

# era_check NAME URL LUA [WANT]: sends the script's request once, with its headers, and fails
# unless the answer is a 200 with a JSON-RPC result (containing WANT when given).
era_check() {
  local name=$1 url=$2 lua=$3 want=${4:-} args=() out
  while IFS= read -r h; do args+=(-H "$h"); done \
    < <(sed -n 's/^wrk.headers\["\(.*\)"\] = "\(.*\)"$/\1: \2/p' "$lua")
  out=$(curl -s -w '\n%{http_code}' "$url" "${args[@]}" --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$lua")")
  if [ "$(echo "$out" | tail -1)" != 200 ] || ! echo "$out" | grep -q '"result":{' \
    || { [ -n "$want" ] && ! echo "$out" | grep -qF "$want"; }; then
    echo "$name does not answer tools/call with a result: $out" >&2; cat "$work/sluice.log" >&2; return 1
  fi
}

gw_session=$(bench_session "http://$GW/mcp/bench")
hs_session=$(bench_session "http://$HS/mcp")
[ -n "$gw_session" ] && [ -n "$hs_session" ] || { echo "no session" >&2; cat "$work/sluice.log" >&2; exit 1; }
{ bench_lua hs__echo "$gw_session"; bench_lua_count_errors; } > "$work/handshake.lua"
{ modern_lua era__echo; bench_lua_count_errors; } > "$work/modern.lua"
{ modern_lua hs__echo; bench_lua_count_errors; } > "$work/bridged.lua"
{ bench_lua echo "$hs_session"; bench_lua_count_errors; } > "$work/direct-hs.lua"
{ modern_lua echo; bench_lua_count_errors; } > "$work/direct-mod.lua"

declare -A url=([handshake]="http://$GW/mcp/bench" [modern]="http://$GW/mcp/bench"
  [bridged]="http://$GW/mcp/bench" [direct-hs]="http://$HS/mcp" [direct-mod]="http://$ERA/mcp")
complete='"resultType":"complete"'
era_check handshake "${url[handshake]}" "$work/handshake.lua"
era_check modern "${url[modern]}" "$work/modern.lua" "$complete"
era_check bridged "${url[bridged]}" "$work/bridged.lua" "$complete"
era_check direct-hs "${url[direct-hs]}" "$work/direct-hs.lua"
era_check direct-mod "${url[direct-mod]}" "$work/direct-mod.lua" "$complete"

for r in $(seq "$ROUNDS"); do
  for t in $(bench_order "$r" handshake modern bridged direct-hs direct-mod); do
    case $t in
      direct-*) bench_run "$r" "$t" "${url[$t]}" "$work/$t.lua" ;;
      *) bench_run "$r" "$t" "${url[$t]}" "$work/$t.lua" "$SLUICE_PID" ;;
    esac
  done
done
bench_summary handshake handshake modern bridged direct-hs direct-mod
ratio() { echo "scale=3; ${TOTAL[$1]} / ${TOTAL[$2]}" | bc; }
echo "through the gateway vs straight to the upstream: handshake $(ratio handshake direct-hs)," \
  "modern $(ratio modern direct-mod), bridged $(ratio bridged direct-hs)"
if [ "$CLOSED" -ne 0 ]; then
  echo "note: the server closed $CLOSED connections after an answer (\"closed by server\" above):" \
    "each costs the client a new connection, and that cost is in the figures"
fi
if [ "$FAILED" -ne 0 ]; then
  echo "INVALID RUN: $FAILED failed answers (non-2xx, socket or JSON-RPC errors) above" >&2
  exit 1
fi
