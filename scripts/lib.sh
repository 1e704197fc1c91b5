#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Shared by scripts/run, scripts/test and scripts/bench: package installation
# (idempotent, quiet) and builds (ccache, incremental).
set -euo pipefail

BACKBONE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/backbone-ccache}"

# Packages needed to build and run the broker and its modules.
BUILD_PACKAGES=(g++ cmake ninja-build ccache pkg-config libboost-dev libboost-system-dev
  libboost-filesystem-dev libpoco-dev libcpp-jwt-dev nlohmann-json3-dev libspdlog-dev
  libcli11-dev libvalijson-dev rapidjson-dev libssl-dev openssl libyaml-dev libhiredis-dev
  mosquitto-clients)
# Packages the tests need on top: GoogleTest, real MQTT clients and broker,
# clang for the fuzzer, python3-cryptography for the stand-in OpenID provider
# and Kubernetes API server, the official Kubernetes client and YAML for the
# Kubernetes tests, a Redis server and Redis Sentinel for the cluster tests.
TEST_PACKAGES=(libgtest-dev libgmock-dev mosquitto python3 python3-paho-mqtt clang
  libclang-rt-14-dev python3-cryptography python3-kubernetes python3-yaml redis-server
  redis-sentinel)

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# npm packages of the end-to-end tests (tests/integration/oidc-npm: the
# oidc-provider package, a real OpenID Connect provider; mqttjs-npm: MQTT.js,
# a WebSocket MQTT client). `npm ci` runs in each when
# node_modules is missing or was installed from another package-lock.json
# (a copy of the lock it installed is kept as the stamp). The machine image
# ships Node.js 20 with npm (nodejs from NodeSource); Debian's nodejs and npm
# are installed only where there is no npm at all, since Debian's npm package
# conflicts with NodeSource's nodejs.
install_npm_test_deps() {
  local name dir stamp
  if ! command -v npm >/dev/null 2>&1; then
    install_packages nodejs npm
  fi
  for name in oidc-npm mqttjs-npm; do
    dir="$BACKBONE_ROOT/tests/integration/$name"
    stamp="$dir/node_modules/.backbone-lock-stamp"
    if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
      continue
    fi
    echo "==> npm ci (tests/integration/$name)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
    cp "$dir/package-lock.json" "$stamp"
  done
}

# kubectl for the Kubernetes tests: Debian's kubernetes-client, unless a
# kubectl is already installed (e.g. from another vendor's package).
install_kubectl() {
  command -v kubectl >/dev/null 2>&1 && return 0
  install_packages kubernetes-client
}

# build DIR BUILD_TYPE [cmake args...] -- [targets...]
cmake_build() {
  local dir="$1" type="$2"
  shift 2
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targets=("$@")
  cmake -S "$BACKBONE_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$(nproc)" ${targets[@]+--target "${targets[@]}"}
}
