#!/usr/bin/env bash
# What observability costs a warm tools/call, in one run, interleaved (order rotated per
# round). Four gateway processes in front of the same example server, 1 worker thread each:
#   off        - telemetry.metrics = false, no tracing, access_log = "off"
#   metrics    - metrics on
#   trace-0.01 - metrics on, OTLP tracing at sampling_ratio 0.01
#   trace-1    - metrics on, OTLP tracing at sampling_ratio 1.0
#   +log       - metrics on, JSON access log to a file
# Spans go to tests/peers/python/otlp_receiver.py (a real OTLP/HTTP protobuf receiver).
# Reports req/s, p50/p99 (wrk) and each gateway's CPU time per request (/proc utime+stime).
#
# usage: [TARGETS="off trace-0.01"] bench/telemetry-overhead.sh [ROUNDS=3] [SECONDS=8] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-8}"; CONNS="${3:-32}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}"
. bench/lib.sh
bench_require
[ -x .venv/bin/python ] || { echo "run scripts/setup.sh first (the OTLP receiver)" >&2; exit 1; }

UP=127.0.0.1:18381
work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; kill -INT $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" example-server --listen "$UP" --threads 1 >/dev/null 2>&1 &
bench_peer otlp .venv/bin/python tests/peers/python/otlp_receiver.py
OTLP=$(sed -n 's/.*"port": \([0-9]*\).*/\1/p' "$work/otlp.out" | head -1)
[ -n "$OTLP" ] || { echo "the OTLP receiver did not start" >&2; exit 1; }

# TARGETS="off trace-0.01" measures a subset (off is always the baseline).
read -r -a targets <<< "${TARGETS:-off metrics trace-0.01 trace-1 +log}"
declare -A port telemetry pid
port=([off]=18380 [metrics]=18382 [trace-0.01]=18384 [trace-1]=18386 [+log]=18388)
telemetry=(
  [off]='metrics = false
access_log = "off"'
  [metrics]='access_log = "off"'
  [trace-0.01]="access_log = \"off\"
otlp_endpoint = \"http://127.0.0.1:$OTLP\"
sampling_ratio = 0.01"
  [trace-1]="access_log = \"off\"
otlp_endpoint = \"http://127.0.0.1:$OTLP\"
sampling_ratio = 1.0"
  [+log]="access_log = \"$work/access.log\""
)
for t in "${targets[@]}"; do
  p=${port[$t]}
  cat > "$work/$t.toml" <<TOML
[proxy]
listen = "127.0.0.1:$p"
admin_listen = "127.0.0.1:$((p + 1000))"
threads = 1
[sessions]
secret = "bench-secret-bench-secret-bench-secret-00"
[telemetry]
${telemetry[$t]}
[[servers]]
name = "example"
url = "http://$UP/mcp"
[[gateways]]
name = "bench"
servers = ["example"]
TOML
  SLUICE_LOG=warn "$BIN" proxy --config "$work/$t.toml" >/dev/null 2>"$work/$t.log" &
  pid[$t]=$!
done
for t in "${targets[@]}"; do
  bench_wait_ready "127.0.0.1:$((port[$t] + 1000))" 1
  s=$(bench_session "http://127.0.0.1:${port[$t]}/mcp/bench")
  [ -n "$s" ] || { echo "no session from $t" >&2; cat "$work/$t.log" >&2; exit 1; }
  bench_lua example__echo "$s" > "$work/$t.lua"
done

for r in $(seq "$ROUNDS"); do
  for t in $(bench_order "$r" "${targets[@]}"); do
    bench_run "$r" "$t" "http://127.0.0.1:${port[$t]}/mcp/bench" "$work/$t.lua" "${pid[$t]}"
  done
done
bench_summary off "${targets[@]}"
echo "spans received: $(grep -c trace_id "$work/otlp.out" || true)"
