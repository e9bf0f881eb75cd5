# Shared pieces of the bench scripts (sourced, not run): prerequisites, one measured wrk run
# per target and round, the rotated round order, and the summary with ratios to a baseline.
# Figures accumulate in the global arrays TOTAL (req/s) and CPU (gateway µs per request);
# failed requests (non-2xx; connect, write and timeout errors; JSON-RPC errors when the wrk
# script counts them, see bench_lua_count_errors) in FAILED, and connections the server closed
# after an answer (wrk's read errors) in CLOSED.

declare -gA TOTAL CPU
declare -g FAILED=0 CLOSED=0

# bench_require: the release binary in $BIN and wrk (installed from Debian if missing).
bench_require() {
  [ -x "$BIN" ] || { echo "build first: cargo build --release (or set SLUICE_BIN)" >&2; exit 1; }
  if ! command -v wrk >/dev/null; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
  fi
}

# bench_order ROUND TARGET...: the targets rotated by ROUND-1, so drift in machine load does
# not favour whichever target runs first.
bench_order() {
  local r=$1; shift
  local list=("$@") n=$#
  local k=$(( (r - 1) % n ))
  echo "${list[@]:$k}" "${list[@]:0:$k}"
}

# bench_run ROUND NAME URL LUA [PID]: one wrk run of $SECS s with $CONNS connections; prints
# req/s, p50/p99, non-2xx and, given the gateway's PID, its CPU time per request; socket
# errors when there are any, and JSON-RPC errors when the script counts them.
bench_run() {
  local r=$1 name=$2 url=$3 lua=$4 pid=${5:-}
  local before after out rps reqs p50 p99 non2xx sock closed rpc extra="" us=""
  [ -n "$pid" ] && before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$lua" "$url")
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}'); p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}'); non2xx=${non2xx:-0}
  # "Socket errors: connect A, read B, write C, timeout D"; a read error is the server closing
  # the connection (wrk counts the answer before it, and reconnects).
  sock=$(echo "$out" | awk -F'[^0-9]+' '/Socket errors/{print $2 + $4 + $5}'); sock=${sock:-0}
  closed=$(echo "$out" | awk -F'[^0-9]+' '/Socket errors/{print $3}'); closed=${closed:-0}
  rpc=$(echo "$out" | awk '/^jsonrpc errors:/{print $3}')
  [ "$sock" -gt 0 ] && extra="  socket errors $sock"
  [ "$closed" -gt 0 ] && extra="$extra  closed by server $closed"
  [ -n "$rpc" ] && extra="$extra  jsonrpc errors $rpc"
  FAILED=$(( FAILED + non2xx + sock + ${rpc:-0} ))
  CLOSED=$(( CLOSED + closed ))
  TOTAL[$name]=$(echo "${TOTAL[$name]:-0} + $rps" | bc)
  if [ -n "$pid" ]; then
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    us=$(echo "scale=2; ($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc)
    CPU[$name]=$(echo "${CPU[$name]:-0} + $us" | bc)
    us="  cpu $us us/req"
  fi
  printf 'round %d  %-10s %10s req/s  p50 %8s  p99 %8s%s  non-2xx %s%s\n' "$r" "$name" "$rps" "$p50" "$p99" "$us" "$non2xx" "$extra"
}

# bench_summary BASE TARGET...: mean req/s of each target over $ROUNDS, its ratio to BASE,
# and (when measured) its CPU per request against BASE's.
bench_summary() {
  local base=$1; shift
  local b m c line bc_
  b=$(echo "scale=1; ${TOTAL[$base]} / $ROUNDS" | bc)
  for t in "$@"; do
    m=$(echo "scale=1; ${TOTAL[$t]} / $ROUNDS" | bc)
    line="mean over $ROUNDS rounds: $t $m req/s, ratio to $base $(echo "scale=3; $m / $b" | bc)"
    if [ -n "${CPU[$t]:-}" ]; then
      c=$(echo "scale=2; ${CPU[$t]} / $ROUNDS" | bc)
      bc_=$(echo "scale=2; ${CPU[$base]} / $ROUNDS" | bc)
      line="$line, cpu $c us/req ($(echo "scale=2; $c - $bc_" | bc) us vs $base)"
    fi
    echo "$line"
  done
}

# bench_wait_ready ADMIN_ADDR N: waits (bounded, 10 s) until /readyz reports N gateways or
# servers with their 3 tools each (the example server's).
bench_wait_ready() {
  for _ in $(seq 100); do
    [ "$(curl -sf "http://$1/readyz" | grep -o '"tools":3' | wc -l)" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "the gateway at $1 did not become ready" >&2; return 1
}

# bench_session URL [BEARER]: initializes an MCP session at URL and prints its id.
bench_session() {
  curl -si "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' ${2:+-H "authorization: Bearer $2"} \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}

# bench_lua TOOL [SESSION] [BEARER]: a wrk script calling TOOL with a fixed text.
bench_lua() {
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"$1","arguments":{"text":"hello from the benchmark"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
$( [ -n "${2:-}" ] && echo "wrk.headers[\"Mcp-Session-Id\"] = \"$2\"" )
$( [ -n "${3:-}" ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $3\"" )
LUA
}

# bench_lua_count_errors: wrk script lines (appended to a bench_lua-style script) that count
# answers without a JSON-RPC result and print `jsonrpc errors: N` at the end, which bench_run
# reads. wrk hands every body to Lua for this, which costs the load generator a little.
bench_lua_count_errors() {
  cat <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
errors = 0
function response(status, headers, body)
  if not string.find(body, '"result":{', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("errors") end
  io.write(string.format("jsonrpc errors: %d\n", n))
end
LUA
}

# bench_check NAME URL LUA [SESSION] [BEARER]: sends the script's call once and fails unless
# the answer carries the echoed text.
bench_check() {
  curl -sf "$2" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    ${4:+-H "mcp-session-id: $4"} ${5:+-H "authorization: Bearer $5"} \
    --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$3")" | grep -q 'hello from the benchmark' \
    || { echo "$1 does not answer tools/call" >&2; return 1; }
}

# bench_peer NAME COMMAND...: starts a line-protocol test peer (tests/peers) with its stdin
# on fd 3 and its stdout in $work/NAME.out, and waits (bounded) for its ready line.
bench_peer() {
  local name=$1; shift
  mkfifo "$work/$name.in"
  "$@" < "$work/$name.in" > "$work/$name.out" 2>/dev/null &
  exec 3>"$work/$name.in"
  for _ in $(seq 100); do [ -s "$work/$name.out" ] && return 0; sleep 0.1; done
  echo "$name did not start" >&2; return 1
}
