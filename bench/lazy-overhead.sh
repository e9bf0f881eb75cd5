#!/usr/bin/env bash
# What lazy mode and policies cost a warm tools/call, in one run, interleaved:
#   direct   - tools/call example__echo on a gateway without controls
#   run_tool - the same call as run_tool {name, arguments} on a lazy gateway
#   policies - the direct call on a gateway with 100 policies that all test the arguments
#              (none matches, so every one is evaluated and the arguments are parsed)
# For each: req/s and p50/p99 from wrk, and the gateway's CPU time per request.
#
# usage: bench/lazy-overhead.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
. bench/lib.sh
bench_require

UP=127.0.0.1:18381; GW=127.0.0.1:18380; ADMIN=127.0.0.1:18390
work=$(mktemp -d)
trap 'kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" example-server --listen "$UP" --threads 1 >/dev/null 2>&1 &
{
  cat <<TOML
[proxy]
listen = "$GW"
admin_listen = "$ADMIN"
threads = 1
[sessions]
secret = "bench-secret-bench-secret-bench-secret-00"
[telemetry]
access_log = "off"
[[servers]]
name = "example"
url = "http://$UP/mcp"
[[gateways]]
name = "direct"
servers = ["example"]
[[gateways]]
name = "lazy"
servers = ["example"]
tools_mode = "lazy"
[[gateways]]
name = "policies"
servers = ["example"]
TOML
  for i in $(seq 100); do
    printf '[[gateways.policies]]\nname = "p%d"\ntools = ["*"]\narguments = [{ pointer = "/text", prefix = "forbidden-%d" }]\neffect = "deny"\n' "$i" "$i"
  done
} > "$work/sluice.toml"
SLUICE_LOG=warn "$BIN" proxy --config "$work/sluice.toml" >/dev/null 2>"$work/sluice.log" &
SLUICE_PID=$!
bench_wait_ready "$ADMIN" 1

for g in direct lazy policies; do
  s=$(bench_session "http://$GW/mcp/$g")
  [ -n "$s" ] || { echo "no session on gateway $g" >&2; cat "$work/sluice.log" >&2; exit 1; }
  if [ "$g" = lazy ]; then
    bench_lua run_tool "$s" \
      | sed 's/"arguments":{"text":"hello from the benchmark"}/"arguments":{"name":"example__echo","arguments":{"text":"hello from the benchmark"}}/' \
      > "$work/run_tool.lua"
    bench_check "gateway lazy" "http://$GW/mcp/lazy" "$work/run_tool.lua" "$s"
  else
    bench_lua example__echo "$s" > "$work/$g.lua"
    bench_check "gateway $g" "http://$GW/mcp/$g" "$work/$g.lua" "$s"
  fi
done

for r in $(seq "$ROUNDS"); do
  for t in $(bench_order "$r" direct run_tool policies); do
    case $t in
      direct) bench_run "$r" direct "http://$GW/mcp/direct" "$work/direct.lua" "$SLUICE_PID" ;;
      run_tool) bench_run "$r" run_tool "http://$GW/mcp/lazy" "$work/run_tool.lua" "$SLUICE_PID" ;;
      policies) bench_run "$r" policies "http://$GW/mcp/policies" "$work/policies.lua" "$SLUICE_PID" ;;
    esac
  done
done
bench_summary direct run_tool policies
