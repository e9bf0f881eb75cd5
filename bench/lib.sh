# Shared pieces of the bench scripts (sourced, not run): prerequisites, one measured wrk run
# per target and round, the rotated round order, and the summary with ratios to a baseline.
# Figures accumulate in the global arrays TOTAL (req/s) and CPU (gateway µs per request).

declare -gA TOTAL CPU

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
# req/s, p50/p99, non-2xx and, given the gateway's PID, its CPU time per request.
bench_run() {
  local r=$1 name=$2 url=$3 lua=$4 pid=${5:-}
  local before after out rps reqs p50 p99 non2xx us=""
  [ -n "$pid" ] && before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$lua" "$url")
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}'); p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}'); non2xx=${non2xx:-0}
  TOTAL[$name]=$(echo "${TOTAL[$name]:-0} + $rps" | bc)
  if [ -n "$pid" ]; then
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    us=$(echo "scale=2; ($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc)
    CPU[$name]=$(echo "${CPU[$name]:-0} + $us" | bc)
    us="  cpu $us us/req"
  fi
  printf 'round %d  %-10s %10s req/s  p50 %8s  p99 %8s%s  non-2xx %s\n' "$r" "$name" "$rps" "$p50" "$p99" "$us" "$non2xx"
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
