#!/usr/bin/env bash
# Installs what building Sluice needs beyond the Rust toolchain: cmake (pingora's zlib-ng
# build runs it). Idempotent and quick when already done.
set -euo pipefail

if command -v cmake >/dev/null 2>&1; then
  exit 0
fi
echo "sluice: installing cmake (needed by pingora's zlib build)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "sluice: cmake is missing and this user cannot install packages; install cmake and retry" >&2
    exit 1
  fi
fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  $SUDO dnf install -y cmake
elif command -v brew >/dev/null 2>&1; then
  brew install cmake
else
  echo "sluice: no supported package manager found; install cmake and retry" >&2
  exit 1
fi
command -v cmake >/dev/null 2>&1 || { echo "sluice: cmake installation failed" >&2; exit 1; }
