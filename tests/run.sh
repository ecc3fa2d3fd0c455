#!/usr/bin/env bash
# The test command: installs missing dependencies, builds a release tree (build/) and an
# AddressSanitizer + UndefinedBehaviorSanitizer tree (build-asan/), runs the unit tests in
# both and the whole suite (unit + integration + end-to-end) in the sanitizer tree.
#   tests/run.sh              everything
#   tests/run.sh -R PATTERN   only tests matching PATTERN (passed to ctest)
# With TB_PACKAGE_TEST=1 (set by .ci/run on its throw-away machine) it then builds the .deb,
# installs it with dpkg -i and tests the installed binary (tests/package/test_deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTB_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests, release build"
(cd build && ctest -L unit --output-on-failure "$@")
echo "== all tests, sanitizer build"
(cd build-asan && ctest --output-on-failure -j2 "$@")
if [ "${TB_PACKAGE_TEST:-0}" = 1 ]; then
    echo "== Debian package, installed (tests/package/test_deb.sh)"
    tests/package/test_deb.sh
fi
