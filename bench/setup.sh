#!/usr/bin/env bash
# Prepares a machine for the benchmarks: nginx (the plain-proxy baseline of `sluice-bench
# compare`) and wrk (the older bench/*.sh scripts) from Debian's packages, then release builds
# of `sluice` and `sluice-bench`. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  (as_root service nginx stop || as_root pkill -x nginx) >/dev/null 2>&1 || true
fi
scripts/install-build-deps.sh
cargo build --release --locked -p sluice -p sluice-bench
echo "bench: ready; run ${CARGO_TARGET_DIR:-target}/release/sluice-bench compare bench/scenarios/echo.toml" >&2
