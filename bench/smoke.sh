#!/usr/bin/env bash
# CI smoke of the benchmarks (ctest: bench.smoke, LABELS bench): bench/run.sh --quick against
# a build tree's telebridge and tools, no build, no network.  Baselines take part only when
# their dependencies are already installed (Node: bench/baselines/node/node_modules from
# `npm ci`; Python: fastapi, uvicorn, paho-mqtt); otherwise they are skipped, and said so.
# Never asserts timings: fails only if a tool errors or a bridge delivers no frames.
#
#   bench/smoke.sh BUILD_DIR [OUT_DIR]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:?usage: smoke.sh BUILD_DIR [OUT_DIR]}" && pwd)
OUT=${2:-$BUILD/bench-smoke}
bridges=telebridge
if command -v node > /dev/null && [ -d "$REPO/bench/baselines/node/node_modules" ]; then
  bridges=$bridges,node
else
  echo "bench smoke: skipping the Node baseline (run 'npm ci' in bench/baselines/node)" >&2
fi
if /usr/bin/python3 -c 'import fastapi, uvicorn, paho.mqtt' 2> /dev/null; then
  bridges=$bridges,python
else
  echo "bench smoke: skipping the Python baseline (python3-fastapi python3-uvicorn python3-paho-mqtt missing)" >&2
fi
rm -rf "$OUT"
TB_BENCH_BUILD=$BUILD exec "$REPO/bench/run.sh" --quick --no-build --bridges "$bridges" \
  --telebridge "$BUILD/bridge/telebridge" --out "$OUT"
