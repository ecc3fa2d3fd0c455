#!/usr/bin/env bash
# The Debian package, installed for real: builds the .deb (build-pkg/, prefix /usr, cpack),
# installs it with dpkg -i, checks what dpkg put where, runs the installed binary's --check
# on the installed config, reinstalls over an edited config (kept: conffile), then runs
# tests/package/test_installed.py against /usr/bin/telebridge (a real broker, the service
# user, the installed config and dashboard, WebSocket delivery, sd_notify).
#
# Needs root (dpkg). It changes the machine: CI runs it on a throw-away machine
# (TB_PACKAGE_TEST=1 from .ci/run). Run by hand, it purges the package again at the end
# unless it was installed before (and removes the telebridge user if it created it).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD

if [ "$(id -u)" -ne 0 ]; then
    echo "package test: SKIPPED (needs root for dpkg -i)"
    exit 0
fi

was_installed=0
dpkg-query -W -f='${Status}' telebridge 2>/dev/null | grep -q "install ok installed" && was_installed=1
had_user=0
getent passwd telebridge >/dev/null && had_user=1
cleanup() {
    if [ "$was_installed" = 0 ]; then
        dpkg --purge telebridge >/dev/null 2>&1 || true
        [ "$had_user" = 0 ] && { userdel telebridge 2>/dev/null || true; groupdel telebridge 2>/dev/null || true; }
    fi
    return 0
}
trap cleanup EXIT

echo "== package: build the .deb"
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DTB_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build-pkg -j"$(nproc 2>/dev/null || echo 2)" --target telebridge telesim
rm -f build-pkg/telebridge_*.deb
(cd build-pkg && cpack -G DEB >/dev/null)
deb=$(ls build-pkg/telebridge_*.deb)
dpkg-deb -I "$deb"

echo "== package: dpkg -i $deb"
dpkg -i "$deb"
fail() { echo "package test FAILED: $*" >&2; exit 1; }
dpkg-query -W -f='${Status}' telebridge | grep -q "install ok installed" || fail "not installed"
for f in /usr/bin/telebridge /usr/bin/telesim /etc/telebridge/telebridge.yaml \
         /usr/share/telebridge/dashboard/index.html /usr/lib/systemd/system/telebridge.service \
         /usr/share/man/man1/telebridge.1 /usr/share/man/man1/telesim.1 \
         /usr/share/man/man5/telebridge.yaml.5 /usr/share/doc/telebridge/copyright; do
    [ -e "$f" ] || fail "$f missing"
done
getent passwd telebridge >/dev/null || fail "no telebridge user"
grep -qx "/etc/telebridge/telebridge.yaml" /var/lib/dpkg/info/telebridge.conffiles || fail "config is not a conffile"
/usr/bin/telebridge --version | grep -q "^telebridge " || fail "telebridge --version"
/usr/bin/telesim --version | grep -q "^telesim " || fail "telesim --version"
/usr/bin/telebridge --check -c /etc/telebridge/telebridge.yaml || fail "--check of the installed config"
if command -v systemd-analyze >/dev/null && [ -d /run/systemd/system ]; then
    systemd-analyze verify /usr/lib/systemd/system/telebridge.service || fail "systemd-analyze verify"
fi
if command -v groff >/dev/null; then
    for m in /usr/share/man/man1/telebridge.1 /usr/share/man/man1/telesim.1 /usr/share/man/man5/telebridge.yaml.5; do
        out=$(groff -man -Tutf8 -ww -z "$m" 2>&1) || fail "groff $m"
        [ -z "$out" ] || fail "groff warnings in $m: $out"
    done
fi

echo "== package: reinstall keeps an edited config"
echo "# edited by the package test" >> /etc/telebridge/telebridge.yaml
dpkg -i --force-confold "$deb" >/dev/null
tail -1 /etc/telebridge/telebridge.yaml | grep -q "edited by the package test" || fail "edited config overwritten"
sed -i '/# edited by the package test/d' /etc/telebridge/telebridge.yaml

echo "== package: end-to-end with the installed binary"
TB_TELEBRIDGE=/usr/bin/telebridge TB_SOURCE_DIR="$src" TB_BUILD_DIR="$src/build-pkg" \
    /usr/bin/python3 -m pytest -q -x -p no:cacheprovider tests/package/test_installed.py
echo "== package: OK"
