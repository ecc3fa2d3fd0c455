#!/bin/sh
# The package's CI check (ctest js.client_package): install the locked devDependencies
# (TypeScript) when missing, then the package tests, none of them skipped.
set -eu
cd "$(dirname "$0")"
if [ ! -x node_modules/typescript/bin/tsc ]; then
    npm ci --no-audit --no-fund
fi
out=$(node --test --test-reporter=tap test/*.test.mjs) || { echo "$out"; exit 1; }
echo "$out" | tail -9
echo "$out" | grep -q '^# skipped 0$' || { echo "ci-test: a package test was skipped"; exit 1; }
