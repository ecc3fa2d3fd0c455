#!/usr/bin/env bash
# Uplink benchmark (issue 17): how many client publishes one bridge takes per second and
# what each costs in bridge CPU. See docs/benchmarks.md ("Uplink").
#
# Scenario "fire": N WebSocket clients (tb-wsload) each send a fire-and-forget publish
# ({"type":"note","data":{..}}, rule without reply) R times a second, for each R in RATES.
# Scenario "commands": N clients each send a command with an id ({"type":"command",..})
# R times a second to one of N telesim --commands vehicles, which answer; replies and
# timeouts are counted.
# Measured per step: messages the bridge published (/health uplink.published), the
# bridge's CPU (utime+stime from /proc/PID/stat) over the step, and the messages an MQTT
# subscriber received (fire) or the replies the clients got (commands).
#
# Every process is started here and ended by its PID. Loopback only.
#   bench/uplink.sh [--clients N] [--rates 1,5,10,20] [--command-rate R] [--duration S]
#                   [--load-threads T] [--build DIR] [--out FILE]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build
CLIENTS=1000
RATES=1,5,10,20
CMD_RATE=1
THREADS=1
DURATION=10
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --command-rate) CMD_RATE=$2; shift 2 ;;
    --load-threads) THREADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
TELEBRIDGE=$BUILD/bridge/telebridge
TELESIM=$BUILD/simulator/telesim
WSLOAD=$BUILD/bench/tb-wsload
for b in "$TELEBRIDGE" "$TELESIM" "$WSLOAD"; do
  [ -x "$b" ] || { echo "missing $b (cmake --build $BUILD)" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/tb-uplink-bench.XXXXXX)
OUT=${OUT:-$TMP/results.jsonl}
CLK_TCK=$(getconf CLK_TCK)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
health() { curl -s "http://127.0.0.1:$WEB/health"; }
published() { health | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["uplink"]["published"])'; }

MQTT=$(free_port)
WEB=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n' "$MQTT" > "$TMP/mosquitto.conf"
mosquitto -c "$TMP/mosquitto.conf" > "$TMP/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_port "$MQTT"
cat > "$TMP/telebridge.yaml" <<EOF
mqtt: {host: 127.0.0.1, port: $MQTT, client_id: tb-uplink-bench, qos: 0}
server: {listen: "127.0.0.1:$WEB", max_connections: 20000}
endpoints:
  /ws/uplink/{user_id}:
    rooms: []
    publish:
      - {type: note, topic: "uplink/{user_id}", qos: 0, max_bytes: 1k}
  /ws/control/{vehicle_id}/{user_id}:
    rooms: []
    identity: user_id
    publish:
      - type: command
        topic: "vehicle/{vehicle_id}/cmd/{data.command}"
        qos: 1
        fields: [command, args]
        reply: {timeout: 5s}
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
EOF
"$TELEBRIDGE" -c "$TMP/telebridge.yaml" > "$TMP/telebridge.log" 2>&1 &
BR=$!
PIDS+=($BR)
wait_port "$WEB"
sleep 0.5

step() {   # scenario rate path-format ids payload
  local scen=$1 rate=$2 fmt=$3 ids=$4 json=$5
  local p0 c0 p1 c1 sub=0 subpid=""
  if [ "$scen" = fire ]; then
    mosquitto_sub -p "$MQTT" -h 127.0.0.1 -t 'uplink/#' > "$TMP/sub.out" 2>/dev/null &
    subpid=$!
    PIDS+=($subpid)
    sleep 0.3
  fi
  "$WSLOAD" --port "$WEB" --paths "$fmt" --ids "$ids" --duration "$DURATION" \
      --send-rate "$rate" --send-json "$json" --threads "$THREADS" --label "$scen-$rate" \
      > "$TMP/wsload.out" 2> "$TMP/wsload.err" &
  local wl=$!
  PIDS+=($wl)
  until grep -q READY "$TMP/wsload.err" 2>/dev/null; do sleep 0.05; done
  p0=$(published); c0=$(cpu_ticks "$BR")
  wait "$wl" || true
  p1=$(published); c1=$(cpu_ticks "$BR")
  if [ -n "$subpid" ]; then
    sleep 0.5
    kill "$subpid"; wait "$subpid" 2>/dev/null || true
    sub=$(wc -l < "$TMP/sub.out")
  fi
  /usr/bin/python3 - "$scen" "$rate" "$p0" "$p1" "$c0" "$c1" "$CLK_TCK" "$DURATION" "$CLIENTS" "$sub" \
      "$TMP/wsload.out" <<'PY' | tee -a "$OUT"
import json, sys
scen, rate, p0, p1, c0, c1, tck, dur, clients, sub, wl = sys.argv[1:]
w = json.loads(open(wl).read().strip().splitlines()[-1])
pub = int(p1) - int(p0)
cpu_s = (int(c1) - int(c0)) / int(tck)
up = w.get("uplink", {})
print(json.dumps({
    "scenario": scen, "clients": int(clients), "rate_per_client": float(rate),
    "offered_per_s": int(clients) * float(rate), "conns_open": w["conns_open_at_end"],
    "sent": up.get("sent"), "published": pub, "published_per_s": round(pub / w["run_s"], 1),
    "bridge_cpu_s": round(cpu_s, 2), "bridge_cpu_pct": round(100 * cpu_s / w["run_s"], 1),
    "cpu_us_per_msg": round(1e6 * cpu_s / pub, 1) if pub else None,
    "mqtt_received": int(sub) if scen == "fire" else None,
    "replies": up.get("replies"), "errors": up.get("errors")}))
PY
}

for r in ${RATES//,/ }; do
  step fire "$r" "/ws/uplink/u%d" "1-$CLIENTS" '{"type":"note","data":{"speed":42.5,"note":"uplink bench"}}'
done

"$TELESIM" --port "$MQTT" --vehicles "$CLIENTS" --rate 0.2 --commands --quiet --id-prefix b-1 \
    > "$TMP/telesim.log" 2>&1 &
PIDS+=($!)
sleep 3
# telesim names its vehicles b-1 + 00001.. = b-100001..: the control paths use the same names
step commands "$CMD_RATE" "/ws/control/b-%d/op" "100001-$((100000 + CLIENTS))" '{"type":"command","id":1,"data":{"command":"ping"}}'
echo "results: $OUT" >&2
