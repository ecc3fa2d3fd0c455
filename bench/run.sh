#!/usr/bin/env bash
# Telebridge benchmarks: one command that measures Telebridge next to the baseline bridges
# (bench/baselines/node, bench/baselines/python) in the same run.  See docs/benchmarks.md.
#
# For every (repeat, scenario, bridge): a private mosquitto on a free 127.0.0.1 port, the
# bridge under test, tb-wsload (load client) and tb-pub (paced publisher).  While the load
# runs, the bridge's CPU (utime+stime, /proc/PID/stat) and memory (VmRSS/VmHWM,
# /proc/PID/status) are sampled.  bench/report.py turns the outputs into one JSON record
# per measurement (results/<date>/raw.jsonl), then a table, one JSON line per (scenario,
# bridge) and the Telebridge/baseline ratios (results/<date>/summary.txt).
#
# --baseline-telebridge OLD adds a bridge `telebridge-base`: the binary OLD with the same
# config (bench/telebridge-bench.yaml) and environment, run right next to `telebridge` in
# every repeat and scenario (the two swap order on even repeats), so a build can be compared
# with its starting point: ratios telebridge/telebridge-base in summary.txt.
# TB_BENCH_BASE_CONFIG=PATH gives the old binary its own copy of the config, for an OLD
# that does not know keys the current file has (same endpoints and routes, please).
#
# Transport variants of the same binary and config (add them to --bridges):
#   telebridge-tls          wss://: a self-signed pair made with openssl in the results dir,
#                           clients speak TLS (tb-wsload --tls)
#   telebridge-deflate      the clients offer permessage-deflate (tb-wsload --deflate)
#   telebridge-tls-deflate  both
# Their rows have "bytes_per_frame" (WebSocket bytes received per frame, TLS records not
# counted) next to CPU per frame; summary.txt has the ratios telebridge/<variant>.
# TB_BENCH_DEFLATE_LEVEL (1-9, default 1) sets server.deflate.level.
#
# Every process is started by this script and ended by its PID.  Only loopback addresses.
#
#   bench/run.sh [--scenarios fleet-2hz,fanout,saturate,idle,slow]
#                [--bridges telebridge,node,python,telebridge-tls,telebridge-deflate,telebridge-tls-deflate]
#                [--quick] [--repeat N] [--telebridge PATH] [--baseline-telebridge PATH]
#                [--out DIR] [--no-build]
#   bench/run.sh --bridges telebridge --baseline-telebridge OLD --telebridge NEW   # two builds
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
BUILD=${TB_BENCH_BUILD:-$BENCH/.build}
PY=/usr/bin/python3
SCENARIOS=fleet-2hz,fanout,saturate,idle,slow
BRIDGES=telebridge,node,python
QUICK=0
REPEAT=1
BUILD_IT=1
TELEBRIDGE=""
BASE_TELEBRIDGE=""
OUT=""

usage() { sed -n '2,${/^#/!q;s/^# \{0,1\}//p;}' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --bridges) BRIDGES=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --telebridge) TELEBRIDGE=$2; shift 2 ;;
    --baseline-telebridge) BASE_TELEBRIDGE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
# telebridge-base runs right after telebridge (last when telebridge is not in the list)
if [ -n "$BASE_TELEBRIDGE" ]; then
  [ -x "$BASE_TELEBRIDGE" ] || { echo "--baseline-telebridge: $BASE_TELEBRIDGE is not an executable" >&2; exit 2; }
  case ",$BRIDGES," in
    *,telebridge-base,*) ;;
    *,telebridge,*) BRIDGES=$(echo ",$BRIDGES," | sed 's/,telebridge,/,telebridge,telebridge-base,/; s/^,//; s/,$//') ;;
    *) BRIDGES=$BRIDGES,telebridge-base ;;
  esac
else
  case ",$BRIDGES," in
    *,telebridge-base,*) echo "bridge telebridge-base needs --baseline-telebridge PATH" >&2; exit 2 ;;
  esac
fi
OUT=${OUT:-$BENCH/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: > "$RAW"
CLK_TCK=$(getconf CLK_TCK)
TOOL_ERRORS=0

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

# ---- process bookkeeping: everything we start is ended by PID ----
PIDS=()
track() { PIDS+=("$1"); }
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  local port=$1 pid=$2 t=${3:-20}
  for _ in $(seq $((t * 20))); do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- build ----
build() {
  [ "$BUILD_IT" = 1 ] || return 0
  log "building tools (Release) in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTB_TESTS=OFF > "$OUT/cmake.log" 2>&1
  cmake --build "$BUILD" -j2 --target tb-pub tb-wsload send-floor >> "$OUT/cmake.log" 2>&1 ||
    { cat "$OUT/cmake.log" >&2; exit 1; }
  if has "$BRIDGES" telebridge && [ "$TELEBRIDGE" = "$BUILD/bridge/telebridge" ]; then
    cmake --build "$BUILD" -j2 --target telebridge >> "$OUT/cmake.log" 2>&1 ||
      { tail -30 "$OUT/cmake.log" >&2; log "telebridge does not build"; exit 1; }
  fi
  if has "$BRIDGES" node && [ ! -d "$BENCH/baselines/node/node_modules" ]; then
    log "installing the Node baseline's packages (npm ci)"
    (cd "$BENCH/baselines/node" && npm ci --no-audit --no-fund > "$OUT/npm.log" 2>&1) ||
      { cat "$OUT/npm.log" >&2; exit 1; }
  fi
  if has "$BRIDGES" python; then
    "$PY" -c 'import fastapi, uvicorn, paho.mqtt' 2>/dev/null || {
      log "python baseline needs: apt-get install -y python3-fastapi python3-uvicorn python3-paho-mqtt python3-websockets"
      exit 1; }
  fi
}
PUB=$BUILD/bench/tb-pub
WSLOAD=$BUILD/bench/tb-wsload
FLOOR=$BUILD/bench/send-floor
TELEBRIDGE=${TELEBRIDGE:-$BUILD/bridge/telebridge}
# With --no-build nothing is built: say what is missing instead of failing every probe.
check_binaries() {
  local f missing=0
  for f in "$PUB" "$WSLOAD"; do
    [ -x "$f" ] || { log "no $f (build the tools: drop --no-build, or point TB_BENCH_BUILD at a build tree)"; missing=1; }
  done
  if has "$BRIDGES" telebridge && [ ! -x "$TELEBRIDGE" ]; then
    log "no telebridge binary $TELEBRIDGE"; missing=1
  fi
  [ "$missing" = 0 ] || exit 1
}

# ---- broker + bridge lifecycle ----
MOSQ_PID="" BRIDGE_PID="" MQTT_PORT="" WS_PORT="" RUN_DIR=""
WS_FLAGS=""  # tb-wsload flags of the bridge under test (--tls, --deflate)

# A self-signed pair for the telebridge-tls* bridges, made once per run.
tls_pair() {
  local d=$OUT/tls
  [ -f "$d/cert.pem" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/key.pem" \
    -out "$d/cert.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    > "$d/openssl.log" 2>&1 || { log "openssl could not make a certificate"; cat "$d/openssl.log" >&2; return 1; }
}
start_stack() {  # $1 = bridge, $2 = run dir
  local bridge=$1
  RUN_DIR=$2
  mkdir -p "$RUN_DIR"
  MQTT_PORT=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nset_tcp_nodelay true\n' \
    "$MQTT_PORT" > "$RUN_DIR/mosquitto.conf"
  mosquitto -c "$RUN_DIR/mosquitto.conf" > "$RUN_DIR/mosquitto.log" 2>&1 &
  MOSQ_PID=$!; track "$MOSQ_PID"
  wait_port "$MQTT_PORT" "$MOSQ_PID" || { log "mosquitto did not start"; return 1; }
  WS_PORT=$(free_port)
  local env=(TB_MQTT_HOST=127.0.0.1 TB_MQTT_PORT="$MQTT_PORT" TB_LISTEN="127.0.0.1:$WS_PORT")
  WS_FLAGS=""
  case "$bridge" in
    telebridge-tls*)
      tls_pair || return 1
      env+=(TB_BENCH_TLS_CERT="$OUT/tls/cert.pem" TB_BENCH_TLS_KEY="$OUT/tls/key.pem")
      WS_FLAGS="--tls" ;;
  esac
  case "$bridge" in *-deflate) WS_FLAGS="$WS_FLAGS --deflate" ;; esac
  case "$bridge" in
    telebridge|telebridge-tls|telebridge-deflate|telebridge-tls-deflate)
      env "${env[@]}" "$TELEBRIDGE" -c "$BENCH/telebridge-bench.yaml" > "$RUN_DIR/bridge.log" 2>&1 & ;;
    telebridge-base) env "${env[@]}" "$BASE_TELEBRIDGE" -c "${TB_BENCH_BASE_CONFIG:-$BENCH/telebridge-bench.yaml}" > "$RUN_DIR/bridge.log" 2>&1 & ;;
    node) env "${env[@]}" node "$BENCH/baselines/node/bridge.js" > "$RUN_DIR/bridge.log" 2>&1 & ;;
    python) env "${env[@]}" "$PY" "$BENCH/baselines/python/bridge.py" > "$RUN_DIR/bridge.log" 2>&1 & ;;
    *) log "unknown bridge $bridge"; return 1 ;;
  esac
  BRIDGE_PID=$!; track "$BRIDGE_PID"
  wait_port "$WS_PORT" "$BRIDGE_PID" 30 || { log "$bridge did not listen"; tail -20 "$RUN_DIR/bridge.log" >&2; return 1; }
  probe || { log "$bridge delivers nothing (probe)"; tail -20 "$RUN_DIR/bridge.log" >&2; return 1; }
}
stop_stack() {
  stop_pid "$BRIDGE_PID"; stop_pid "$MOSQ_PID"
  BRIDGE_PID="" MOSQ_PID=""
}

# The pipeline works end to end (bridge subscribed) before anything is measured.
# Vehicle 900000 keeps the probe out of the measured rooms.
probe() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    # shellcheck disable=SC2086
    "$WSLOAD" --port "$WS_PORT" $WS_FLAGS --paths "/ws/telemetry/%d" --ids 900000-900000 --duration 1.5 \
      > "$RUN_DIR/probe.json" 2> "$RUN_DIR/probe.err" &
    local wpid=$!; track "$wpid"
    sleep 0.3
    "$PUB" --port "$MQTT_PORT" --vehicles 1 --vehicle-base 900000 --rate 20 --duration 0.5 > /dev/null 2>&1 || true
    wait "$wpid" || true
    grep -q '"data_frames":[1-9]' "$RUN_DIR/probe.json" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

# ---- one measurement ----
# measure NAME STEP EXPECTED DRAIN "WSLOAD ARGS|WSLOAD ARGS..." PUB ARGS...
# Starts the wsload processes, waits until all are READY, samples, publishes, drains,
# stops the clients with SIGINT and appends a record to raw.jsonl.
measure() {
  local scen=$1 step=$2 expected=$3 drain=$4 wspecs=$5; shift 5
  local tag="$scen-$BRIDGE-r$REP-s$step" dir=$RUN_DIR
  local wpids=() wouts=() i=0 err=""
  IFS='|' read -r -a specs <<< "$wspecs"
  local rss_before; rss_before=$(status_kb "$BRIDGE_PID" VmRSS)
  for spec in "${specs[@]}"; do
    # shellcheck disable=SC2086
    "$WSLOAD" --port "$WS_PORT" $WS_FLAGS --duration 900 --label "$tag-$i" $spec > "$dir/$tag-ws$i.json" 2> "$dir/$tag-ws$i.err" &
    wpids+=($!); track $!; wouts+=("$dir/$tag-ws$i.json"); i=$((i + 1))
  done
  local t=0 ready
  while :; do
    ready=0
    for j in "${!wpids[@]}"; do
      grep -q '^READY' "$dir/$tag-ws$j.err" 2>/dev/null && ready=$((ready + 1))
      kill -0 "${wpids[$j]}" 2>/dev/null || grep -q '^READY' "$dir/$tag-ws$j.err" || err="tb-wsload exited early"
    done
    [ -n "$err" ] || [ "$ready" = "${#wpids[@]}" ] && break
    t=$((t + 1)); [ $t -lt 3000 ] || { err="tb-wsload not ready after 300 s"; break; }
    sleep 0.1
  done
  local rss_conn cpu0 ccpu0=0 cpu1 ccpu1=0 rss_max=0 series=""
  rss_conn=$(status_kb "$BRIDGE_PID" VmRSS)
  cpu0=$(cpu_ticks "$BRIDGE_PID")
  for p in "${wpids[@]}"; do ccpu0=$((ccpu0 + $(cpu_ticks "$p"))); done
  if [ -z "$err" ]; then
    "$PUB" --port "$MQTT_PORT" "$@" > "$dir/$tag-pub.json" 2> "$dir/$tag-pub.err" &
    local ppid=$!; track "$ppid"
    while kill -0 "$ppid" 2>/dev/null; do     # sample RSS about once a second
      local r; r=$(status_kb "$BRIDGE_PID" VmRSS); series="$series${series:+,}$r"
      [ "${r:-0}" -gt "$rss_max" ] && rss_max=$r
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$ppid" 2>/dev/null && sleep 0.1; done
    done
    wait "$ppid" || err="tb-pub failed: $(tail -1 "$dir/$tag-pub.err")"
    sleep "$drain"
  fi
  cpu1=$(cpu_ticks "$BRIDGE_PID")
  local rss_end hwm; rss_end=$(status_kb "$BRIDGE_PID" VmRSS); hwm=$(status_kb "$BRIDGE_PID" VmHWM)
  for p in "${wpids[@]}"; do ccpu1=$((ccpu1 + $(cpu_ticks "$p"))); done
  kill -0 "$BRIDGE_PID" 2>/dev/null || err="${err:+$err; }bridge died (see $dir/bridge.log)"
  for p in "${wpids[@]}"; do
    kill -INT "$p" 2>/dev/null || true
    wait "$p" || err="${err:+$err; }tb-wsload failed"
  done
  [ -z "$err" ] || { TOOL_ERRORS=$((TOOL_ERRORS + 1)); log "ERROR $tag: $err"; }
  "$PY" "$BENCH/report.py" record scenario="$scen" bridge="$BRIDGE" repeat="$REP" step="$step" \
    expected_frames="$expected" cpu_ticks=$((cpu1 - cpu0)) client_cpu_ticks=$((ccpu1 - ccpu0)) \
    clk_tck="$CLK_TCK" rss_before_kb="${rss_before:-0}" rss_conn_kb="${rss_conn:-0}" \
    rss_end_kb="${rss_end:-0}" rss_max_kb="$rss_max" hwm_kb="${hwm:-0}" rss_series="$series" \
    error="$err" --pub "$dir/$tag-pub.json" --ws "${wouts[@]}" | tee -a "$RAW" |
    "$PY" -c 'import json,sys; r=json.loads(sys.stdin.read()); l=r["lat_us"]; print("  %-10s %-22s step %-6s %9.0f frames/s  lost %d  p50 %.2f ms  p99 %.2f ms  cpu %s us/frame  %s B/frame  rss %d MB%s" % (r["scenario"], r["bridge"], r["step"], r["recv_fps"], r["lost"], l["p50"]/1e3, l["p99"]/1e3, "%.2f" % r["cpu_us_per_frame"] if r["cpu_us_per_frame"] else "-", "%.0f" % r["bytes_per_frame"] if r.get("bytes_per_frame") else "-", r["hwm_kb"]//1024, ("  ERROR " + r["error"]) if r.get("error") else ""))' >&2
  LAST_REC=$(tail -1 "$RAW")
}

# ---- scenarios (sizes: full / --quick) ----
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }

scenario_fleet_2hz() {
  local veh dur cl; veh=$(q 1000 50); dur=$(q 15 3); cl=$(q 199 9)
  local n=$((2 * dur))
  local expected=$(( (cl + 1) * n + 5 * veh * n ))
  measure fleet-2hz 0 "$expected" 2 \
    "--paths /ws/telemetry/%d --ids 0-$cl --paths /ws/fleet --clients-per-path 5 --expect-seq $n --vehicles $veh --threads 2" \
    --vehicles "$veh" --rate 2 --duration "$dur"
}

scenario_fanout() {
  local rate dur per; rate=$(q 50 10); dur=$(q 10 3); per=$(q 200 10)
  local n=$((rate * dur))
  measure fanout 0 $((10 * per * n)) 3 \
    "--paths /ws/telemetry/%d --ids 0-9 --clients-per-path $per --expect-seq $n --threads 2" \
    --vehicles 10 --rate "$rate" --duration "$dur"
}

# Steps the rate of one vehicle seen by 200 clients until loss > 0 or p99 > 50 ms, then
# tries the geometric middle between the last passing and the first failing step.
scenario_saturate() {
  local per dur rates; per=$(q 200 5); dur=$(q 5 2)
  rates=$(q "25 50 100 200 400 800 1600 3200 6400 12800" "50 100")
  local pass=0 fail=0 rate
  for rate in $rates; do
    saturate_step "$rate" "$per" "$dur" && pass=$rate || { fail=$rate; break; }
  done
  if [ "$QUICK" = 0 ] && [ "$pass" -gt 0 ] && [ "$fail" -gt 0 ]; then
    # a fresh bridge: the failed step may have left seconds of backlog behind
    stop_stack
    start_stack "$BRIDGE" "$OUT/$REP-saturate-$BRIDGE-b" || { stack_failed saturate; return; }
    saturate_step $(( (pass * 141) / 100 )) "$per" "$dur" || true
  fi
}
saturate_step() {
  local rate=$1 per=$2 dur=$3 n=$(($1 * $3))
  measure saturate "$rate" $((per * n)) 2 \
    "--paths /ws/telemetry/%d --ids 0-0 --clients-per-path $per --expect-seq $n --threads 2" \
    --vehicles 1 --rate "$rate" --duration "$dur"
  "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if not r.get("error") and r["lost"]==0 and r["data_frames"] and r["lat_us"]["p99"]<=50000 else 1)' "$LAST_REC"
}

# 19,000 idle connections (two client processes, eight source addresses), then a 1 Hz
# trickle on every vehicle to check that all of them still receive traffic.
scenario_idle() {
  local total dur; total=$(q 19000 200); dur=$(q 10 2)
  local per=$((total / 20))  # per path, per client process (2 processes x 10 ids)
  local src="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"
  local spec="--paths /ws/telemetry/%d --ids 0-9 --clients-per-path $per --idle --source-addrs $src --concurrency 200 --connect-timeout 60"
  measure idle 0 $((total * dur)) 3 "$spec|$spec" --vehicles 10 --rate 1 --duration "$dur"
}

# The same fleet load with and without 10% clients that stop reading, each on a fresh
# bridge: the fast clients' latency and the bridge's RSS should not move.  The fleet room
# carries 500 messages/s of 1,500 bytes (750 KB/s per client), so a stalled connection
# overflows the kernel's socket buffers (tcp_wmem max 4 MB) within seconds and the
# bridge's own queueing policy has to act.
scenario_slow() {
  local dur per; dur=$(q 15 3); per=$(q 30 10)
  local n=$((50 * dur)) f
  for f in 0 0.1; do
    local name=slow; [ "$f" = 0 ] && name=slow-base
    if [ "$f" != 0 ]; then stop_stack; start_stack "$BRIDGE" "$OUT/$REP-slow-$BRIDGE-b" || { stack_failed slow; return; }; fi
    local fast=$(( per - per / 10 )); [ "$f" = 0 ] && fast=$per
    measure "$name" 0 $((fast * 10 * n)) 3 \
      "--paths /ws/fleet --clients-per-path $per --slow-fraction $f --expect-seq $n --vehicles 10 --threads 2" \
      --vehicles 10 --rate 50 --duration "$dur" --payload-bytes 1500
  done
}

stack_failed() {
  TOOL_ERRORS=$((TOOL_ERRORS + 1))
  "$PY" "$BENCH/report.py" record scenario="$1" bridge="$BRIDGE" repeat="$REP" step=0 \
    error="$BRIDGE failed to start (see $RUN_DIR)" >> "$RAW"
}

# The floor under CPU per frame when every frame is its own send(): a bare send() loop in
# the fan-out pattern (bursts of 200 sends to 2,000 loopback connections every 2 ms), with
# and without the poll(POLLOUT) check Telebridge makes before each write.
send_floor() {
  [ -x "$FLOOR" ] || { log "no $FLOOR: skipping the send() floor"; return 0; }
  local args; args=$(q "--conns 2000 --burst 200 --gap-us 2000 --sends 1000000" \
                       "--conns 20 --burst 10 --gap-us 1000 --sends 5000")
  log "send() floor: send-floor $args [--poll]"
  # shellcheck disable=SC2086
  { "$FLOOR" $args && "$FLOOR" $args --poll; } > "$OUT/floor.jsonl" || { log "ERROR send-floor failed"; return 1; }
  { echo "send() floor (bench/send_floor.c, same machine):"; cat "$OUT/floor.jsonl"; } | tee -a "$OUT/summary.txt"
}

# The bridges of one repeat; on even repeats telebridge-base goes before telebridge, so
# neither of the two always runs first (warm caches, a neighbour's load coming or going).
bridge_order() {
  local order=",$BRIDGES,"
  if [ $(($1 % 2)) = 0 ] && has "$BRIDGES" telebridge && has "$BRIDGES" telebridge-base; then
    order=${order/,telebridge,/,@,}
    order=${order/,telebridge-base,/,telebridge,}
    order=${order/,@,/,telebridge-base,}
  fi
  order=${order#,}; echo "${order%,}"
}

main() {
  build
  check_binaries
  log "results in $OUT"
  [ -z "$BASE_TELEBRIDGE" ] || log "telebridge: $TELEBRIDGE; telebridge-base: $BASE_TELEBRIDGE"
  for REP in $(seq 1 "$REPEAT"); do
    for scen in ${SCENARIOS//,/ }; do
      for BRIDGE in $(bridge_order "$REP" | tr , ' '); do
        log "repeat $REP: $scen on $BRIDGE"
        if ! start_stack "$BRIDGE" "$OUT/$REP-$scen-$BRIDGE"; then
          stack_failed "$scen"; stop_stack; continue
        fi
        case "$scen" in
          fleet-2hz) scenario_fleet_2hz ;;
          fanout) scenario_fanout ;;
          saturate) scenario_saturate ;;
          idle) scenario_idle ;;
          slow) scenario_slow ;;
          *) log "unknown scenario $scen"; exit 2 ;;
        esac
        stop_stack
      done
    done
  done
  local quick_flag=""; [ "$QUICK" = 1 ] && quick_flag=--quick
  local rc=0
  "$PY" "$BENCH/report.py" summarize "$RAW" $quick_flag | tee "$OUT/summary.txt" || rc=1
  send_floor || rc=1
  [ "$TOOL_ERRORS" = 0 ] || rc=1
  log "raw records: $RAW; summary: $OUT/summary.txt"
  exit $rc
}
main
