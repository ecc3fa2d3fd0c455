#!/usr/bin/env bash
# Installs the Debian packages Telebridge needs to build, test and run the demo.
# Safe to run again: it only installs what is missing. Needs root (or sudo).
#   scripts/install-deps.sh            build + run + test dependencies
#   scripts/install-deps.sh --runtime  only what the demo needs to build and run
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libmosquitto-dev libwebsockets-dev libwebsockets-evlib-ev libev-dev libcjson-dev
            libyaml-dev libssl-dev libsystemd-dev zlib1g-dev openssl mosquitto mosquitto-clients curl)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-websocket python3-websockets python3-paho-mqtt python3-jsonschema python3-jwt python3-cryptography
           chromium nodejs npm clang nats-server
           prometheus nginx-light dpkg-dev openssl docker-compose)
# prometheus: for promtool (check metrics); nginx-light: the reverse-proxy test; dpkg-dev:
# dpkg-shlibdeps for the .deb (cpack); openssl: certificates for the TLS broker test;
# docker-compose: validates docker/docker-compose.yml (lint.compose; no daemon needed).
# nats-server: tests/integration/test_cluster_nats.py.
# Services are not started by the tests.

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" != "--runtime" ]; then
    pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    if [ "$p" = nodejs ] || [ "$p" = npm ]; then
        command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
