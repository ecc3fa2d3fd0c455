#!/bin/sh
# Copies the dashboard screenshots of the last e2e run (ctest -R dashboard_e2e) into
# docs/screenshots/, and the fleet view with an active alert to docs/dashboard.png (README).
#   scripts/update-screenshots.sh [build-dir]     default: build-asan, then build
set -eu
cd "$(dirname "$0")/.."
for d in ${1:-build-asan build}; do
    [ -d "$d/artifacts/dashboard" ] && src="$d/artifacts/dashboard" && break
done
[ -n "${src:-}" ] || { echo "no artifacts/dashboard in ${1:-build-asan or build}: run the e2e test first" >&2; exit 1; }
mkdir -p docs/screenshots
n=0
for f in "$src"/*.png; do
    case "$(basename "$f")" in failure-*) continue ;; esac
    cp "$f" docs/screenshots/ && n=$((n + 1))
done
cp "$src/alerts.png" docs/dashboard.png
echo "copied $n screenshots from $src"
