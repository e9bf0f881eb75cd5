#!/usr/bin/env bash
# What `sluice bridge` costs (issue 11): warm tools/call per second to the same MCP server over
# its own Streamable HTTP transport and over stdio behind the bridge, interleaved in one run.
#   everything-http    @modelcontextprotocol/server-everything, `streamableHttp` mode
#   everything-bridge  the same package in `stdio` mode behind `sluice bridge`
#   python-http        tests/peers/python/server.py (official Python SDK, sessions)
#   python-bridge      tests/peers/python/stdio_server.py (same SDK, stdio) behind the bridge
# Load: `sluice-bench load` (sessions, closed loop), tool `echo` with a 64-byte argument.
#
# usage: bench/bridge-overhead.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=8]
# needs: release builds of sluice and sluice-bench ($SLUICE_BIN, $BENCH_BIN or
# $CARGO_TARGET_DIR/release), scripts/setup.sh (the Python and Node peers).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"; SECS="${2:-10}"; CONNS="${3:-8}"
REL="${CARGO_TARGET_DIR:-target}/release"
BIN="${SLUICE_BIN:-$REL/sluice}"
BENCH="${BENCH_BIN:-$REL/sluice-bench}"
PY=.venv/bin/python
NODE_DIR=tests/peers/node
EVERYTHING="$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
for f in "$BIN" "$BENCH" "$PY" "$EVERYTHING"; do
  [ -e "$f" ] || { echo "missing $f (build with cargo build --release; run scripts/setup.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; return 1
}

P_EH=18591; P_EB=18592; P_PH=18593; P_PB=18594
PORT=$P_EH node --import "$PWD/$NODE_DIR/loopback.mjs" "$EVERYTHING" streamableHttp >/dev/null 2>&1 &
"$BIN" bridge --listen "127.0.0.1:$P_EB" --name everything -- node "$EVERYTHING" stdio >/dev/null 2>&1 &
"$PY" tests/peers/python/server.py --port "$P_PH" --name py --mode stateful >/dev/null 2>&1 &
"$BIN" bridge --listen "127.0.0.1:$P_PB" --name py -- "$PY" tests/peers/python/stdio_server.py --name py >/dev/null 2>&1 &
for p in $P_EH $P_EB $P_PH $P_PB; do wait_port "$p"; done

declare -A URL=(
  [everything-http]="http://127.0.0.1:$P_EH/mcp"
  [everything-bridge]="http://127.0.0.1:$P_EB/mcp"
  [python-http]="http://127.0.0.1:$P_PH/mcp"
  [python-bridge]="http://127.0.0.1:$P_PB/mcp"
)
TARGETS=(everything-http everything-bridge python-http python-bridge)
declare -A SUM
for t in "${TARGETS[@]}"; do SUM[$t]=0; done

for r in $(seq "$ROUNDS"); do
  k=$(( (r - 1) % ${#TARGETS[@]} ))
  order=("${TARGETS[@]:$k}" "${TARGETS[@]:0:$k}")
  for t in "${order[@]}"; do
    "$BENCH" load "${URL[$t]}" -c "$CONNS" -d "${SECS}s" --warmup 1s --tool echo \
      --json "$work/$t-$r.json" >"$work/$t-$r.txt" 2>&1 || { cat "$work/$t-$r.txt" >&2; exit 1; }
    rps=$("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["rps"], 1))' "$work/$t-$r.json")
    errs=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(d.get("errors", {}).values()))' "$work/$t-$r.json")
    p50=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["latency_us"]["p50"])' "$work/$t-$r.json")
    [ "$errs" = 0 ] || { echo "round $r $t: $errs errors" >&2; cat "$work/$t-$r.txt" >&2; exit 1; }
    SUM[$t]=$(echo "${SUM[$t]} + $rps" | bc)
    printf 'round %d  %-18s %9s calls/s  p50 %6s us  errors %s\n' "$r" "$t" "$rps" "$p50" "$errs"
  done
done

mean() { echo "scale=1; ${SUM[$1]} / $ROUNDS" | bc; }
for pair in everything python; do
  h=$(mean "$pair-http"); b=$(mean "$pair-bridge")
  echo "mean over $ROUNDS rounds: $pair over its own HTTP $h calls/s, over stdio behind sluice bridge $b calls/s, ratio bridge/http $(echo "scale=3; $b / $h" | bc)"
done
