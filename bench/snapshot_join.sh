#!/usr/bin/env bash
# Snapshot-join benchmark (issue 15): what clients joining a 10,000-vehicle snapshot room
# cost the clients already connected. See docs/benchmarks.md ("Snapshot joins").
#
# The room: route vehicle/{id}/telemetry -> rooms vehicle:{id} and fleet, keep_last:
# per_topic (as the example config's pools). Seeded with one report from each of
# SEED vehicles (100000..), so with the live vehicles the fleet snapshot is
# SEED + LIVE vehicles (9,000 + 1,000 = 10,000 by default).
# Observers (tb-wsload --latency-after-ready): one client per live vehicle on
# /ws/telemetry/{id} and FLEET_OBS clients on /ws/fleet (they got the snapshot before the
# measurement; only messages published after READY are timed).
# Live load: tb-pub, LIVE vehicles at RATE Hz for DURATION s.
# Phases, each on a fresh broker + bridge, run in this order: base (no joins), joins
# (JOINS clients/s open /ws/fleet, in batches of 10 every 1/(JOINS/10) s, each reads what it
# gets for HOLD s and closes; with --stalled they never read after the handshake, 4 KiB
# SO_RCVBUF: the bridge-side cost of a join without the readers' CPU; --joiner-nice N runs
# the joiners at nice +N relative to the rest, to see how much is CPU taken by the load
# client on a small machine; --joiner-idle runs them under SCHED_IDLE instead: they get only
# CPU time nobody else wants, as if they were on another host, so what remains is the
# bridge's own cost of the joins), base again (how much the two bases differ = the noise).
# Printed per phase (one JSON line, and a table at the end): observers' latency p50/p99/
# p999/max, frames, lost; the bridge's CPU over the live load; for joins, joins/s achieved,
# snapshot frames per joiner (median; published before the joiner's READY, so about: a
# full snapshot is SEED + LIVE) and all frames the joiners got per second.
#
# Every process is started here and ended by its PID. Loopback only.
#   bench/snapshot_join.sh [--seed N] [--live N] [--rate HZ] [--fleet-obs N] [--joins N]
#                          [--hold S] [--stalled] [--joiner-nice N] [--joiner-idle]
#                          [--duration S]
#                          [--build DIR] [--out FILE]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build
SEED=9000
LIVE=1000
RATE=2
FLEET_OBS=5
JOINS=100
HOLD=1
DURATION=20
JOIN_FLAGS=""
JOIN_NICE=0
JOIN_SCHED=()
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED=$2; shift 2 ;;
    --live) LIVE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --fleet-obs) FLEET_OBS=$2; shift 2 ;;
    --joins) JOINS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --stalled) JOIN_FLAGS="--slow-fraction 1"; shift ;;
    --joiner-nice) JOIN_NICE=$2; shift 2 ;;
    --joiner-idle) JOIN_SCHED=(chrt --idle 0); shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$JOINS" -ge 10 ] || { echo "--joins must be at least 10 (batches of 10)" >&2; exit 2; }
TELEBRIDGE=$BUILD/bridge/telebridge
WSLOAD=$BUILD/bench/tb-wsload
PUB=$BUILD/bench/tb-pub
for b in "$TELEBRIDGE" "$WSLOAD" "$PUB"; do
  [ -x "$b" ] || { echo "missing $b (cmake --build $BUILD)" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/tb-snapjoin-bench.XXXXXX)
OUT=${OUT:-$TMP/results.jsonl}
CLK_TCK=$(getconf CLK_TCK)
PY=/usr/bin/python3

PIDS=()
stop_pid() {   # TERM, then KILL after 5 s; only PIDs started here
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -"${2:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[snapjoin %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
received() { curl -s "http://127.0.0.1:$WEB/health" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["messages"]["received"])'; }

start_stack() {   # fresh mosquitto + telebridge; sets MQTT WEB BR
  MQTT=$(free_port)
  WEB=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nset_tcp_nodelay true\n' \
      "$MQTT" > "$TMP/mosquitto.conf"
  mosquitto -c "$TMP/mosquitto.conf" > "$TMP/mosquitto-$1.log" 2>&1 &
  MOSQ=$!
  PIDS+=("$MOSQ")
  wait_port "$MQTT"
  cat > "$TMP/telebridge.yaml" <<EOF
mqtt: {host: 127.0.0.1, port: $MQTT, client_id: tb-snapjoin-bench, qos: 0}
server: {listen: "127.0.0.1:$WEB", max_connections: 20000}
endpoints:
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/fleet:                  {rooms: [fleet]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", fleet]
    type: telemetry_update
    keep_last: per_topic
    keep_last_max: 20000
    slow_client: conflate
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
limits: {max_per_address: 0, handshake_rate: 0}
EOF
  "$TELEBRIDGE" -c "$TMP/telebridge.yaml" > "$TMP/telebridge-$1.log" 2>&1 &
  BR=$!
  PIDS+=("$BR")
  wait_port "$WEB"
  sleep 0.5
}

stop_stack() { stop_pid "$BR"; stop_pid "$MOSQ"; }

join_loop() {   # batches of 10 joiners on /ws/fleet until killed; outputs in $1/
  local dir=$1 i=0 gap pids=()
  gap=$("$PY" -c "print(10 / $JOINS)")
  trap 'for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait; exit 0' TERM
  while :; do
    nice -n "$JOIN_NICE" ${JOIN_SCHED[@]+"${JOIN_SCHED[@]}"} "$WSLOAD" --port "$WEB" --paths /ws/fleet --clients-per-path 10 --duration "$HOLD" \
        --latency-after-ready $JOIN_FLAGS --label "join-$i" > "$dir/join-$i.json" 2> "$dir/join-$i.err" &
    pids+=($!)
    i=$((i + 1))
    sleep "$gap"
  done
}

phase() {   # name joins(0/1)
  local name=$1 joins=$2 c0 c1 jl=""
  local jdir="$TMP/joins-$name"
  log "phase $name: seeding $SEED vehicles"
  start_stack "$name"
  "$PUB" --port "$MQTT" --vehicles "$SEED" --vehicle-base 100000 --rate 1 --duration 1 > /dev/null 2>&1
  for _ in $(seq 200); do [ "$(received)" -ge "$SEED" ] && break; sleep 0.1; done
  "$WSLOAD" --port "$WEB" --paths "/ws/telemetry/%d" --ids "0-$((LIVE - 1))" \
      --paths /ws/fleet --clients-per-path "$FLEET_OBS" --latency-after-ready --duration 0 \
      --label "observers-$name" > "$TMP/obs-$name.json" 2> "$TMP/obs-$name.err" &
  local obs=$!
  PIDS+=("$obs")
  until grep -q READY "$TMP/obs-$name.err" 2>/dev/null; do sleep 0.05; done
  sleep 3   # the fleet observers' own snapshots drain (not timed: published before READY)
  mkdir -p "$jdir"
  if [ "$joins" = 1 ]; then
    join_loop "$jdir" &
    jl=$!
    PIDS+=("$jl")
    sleep 1
  fi
  log "phase $name: $LIVE vehicles at $RATE Hz for $DURATION s$( [ "$joins" = 1 ] && echo ", $JOINS joins/s")"
  c0=$(cpu_ticks "$BR")
  "$PUB" --port "$MQTT" --vehicles "$LIVE" --rate "$RATE" --duration "$DURATION" > "$TMP/pub-$name.json" 2>/dev/null
  c1=$(cpu_ticks "$BR")
  [ -n "$jl" ] && stop_pid "$jl"
  sleep 2
  stop_pid "$obs" INT
  stop_stack
  "$PY" - "$name" "$TMP/obs-$name.json" "$jdir" "$c0" "$c1" "$CLK_TCK" "$DURATION" "$SEED" "$LIVE" \
      "$RATE" "$FLEET_OBS" <<'PY' | tee -a "$OUT"
import glob, json, sys
name, obs, jdir, c0, c1, tck, dur, seed, live, rate, fobs = sys.argv[1:]
o = json.loads(open(obs).read().strip().splitlines()[-1])
joins, tool_errors = [], 0
for f in glob.glob(jdir + "/join-*.json"):
    try:
        joins.append(json.loads(open(f).read().strip().splitlines()[-1]))
    except (ValueError, IndexError):   # a joiner that failed: its .err file says why
        tool_errors += 1
dur = float(dur)
cpu = (int(c1) - int(c0)) / int(tck)
# Snapshot frames: published before the joiner's READY (not timed); the rest are live.
jf = sorted((j["data_frames"] - j["lat_us"]["count"]) / max(1, j["conns_ok"]) for j in joins)
lat = o["lat_us"]
print(json.dumps({
    "phase": name, "snapshot_vehicles": int(seed) + int(live), "live_vehicles": int(live),
    "rate_hz": float(rate), "observers": o["conns_ok"], "fleet_observers": int(fobs),
    "observer_frames_timed": lat["count"], "lost": o["lost"], "dup": o["dup"],
    "lat_ms": {k: round(lat[k] / 1000, 2) for k in ("p50", "p99", "p999", "max")},
    "bridge_cpu_pct": round(100 * cpu / dur, 1),
    "joins": sum(j["conns_ok"] for j in joins), "joiner_tool_errors": tool_errors, "join_failures": sum(j["connect_failures"] for j in joins),
    "joins_per_s": round(sum(j["conns_ok"] for j in joins) / (dur + 1), 1) if joins else 0,
    "snapshot_frames_per_joiner_median": round(jf[len(jf) // 2]) if jf else None,
    "joiner_frames_per_s": round(sum(j["data_frames"] for j in joins) / (dur + 1)) if joins else 0}))
PY
}

: > "$OUT"
phase base 0
phase joins 1
phase base2 0
"$PY" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'phase':7} {'p50 ms':>7} {'p99 ms':>7} {'p999 ms':>8} {'max ms':>7} {'timed':>7} {'lost':>5} {'cpu %':>6} {'joins/s':>8} {'snap/joiner':>11} {'joiner fr/s':>11}")
for r in rows:
    l = r["lat_ms"]
    print(f"{r['phase']:7} {l['p50']:7} {l['p99']:7} {l['p999']:8} {l['max']:7} {r['observer_frames_timed']:7} {r['lost']:5} "
          f"{r['bridge_cpu_pct']:6} {r['joins_per_s']:8} {str(r['snapshot_frames_per_joiner_median']):>11} {r['joiner_frames_per_s']:11}")
PY
echo "results: $OUT (logs in $TMP)" >&2
