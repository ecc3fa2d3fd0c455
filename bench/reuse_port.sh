#!/usr/bin/env bash
# N bridge processes sharing one port (server.reuse_port) in one cluster, CONNS WebSocket
# connections spread over them by the kernel, then RATE Hz telemetry on each of 10
# vehicles for DUR seconds. Prints how long connecting took, how many connections each
# process got, its RSS per connection, its CPU during the traffic, and the load clients'
# delivery figures: frames received against frames expected, lost, duplicated, and the
# publish -> receive latency (docs/scaling.md).
#   N=5 CONNS=20000 LOADERS=2 DUR=10 bench/reuse_port.sh      (release tree in build/)
# The issue's figure is CONNS=95000 with LOADERS=5 (a process holds at most ~20,000
# descriptors here); every process here is ended by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5} CONNS=${CONNS:-20000} LOADERS=${LOADERS:-2} DUR=${DUR:-10} RATE=${RATE:-1} BUILD=${BUILD:-build}
TB=$BUILD/bridge/telebridge PUB=$BUILD/bench/tb-pub WSLOAD=$BUILD/bench/tb-wsload
for b in "$TB" "$PUB" "$WSLOAD"; do
  [ -x "$b" ] || { echo "missing $b (cmake --build $BUILD --target telebridge tb-pub tb-wsload)" >&2; exit 2; }
done
DIR=$(mktemp -d /tmp/tb-reuseport-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sockets() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }   # fast, unlike ss -p
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

MQTT_PORT=$(free_port) WS_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' \
  "$MQTT_PORT" > "$DIR/mosquitto.conf"
mosquitto -c "$DIR/mosquitto.conf" > "$DIR/mosquitto.log" 2>&1 & PIDS+=($!)
wait_port "$MQTT_PORT"

BR=()
for i in $(seq 1 "$N"); do
  sed -e "s/client_id: telebridge-bench/client_id: telebridge-bench-$i/" \
      -e "s/^server:/server:\n  reuse_port: true/" bench/telebridge-bench.yaml > "$DIR/b$i.yaml"
  printf 'cluster: {name: bench}\n' >> "$DIR/b$i.yaml"
  TB_MQTT_PORT=$MQTT_PORT TB_LISTEN=127.0.0.1:$WS_PORT TB_BENCH_WRITER_THREADS=0 \
    "$TB" -c "$DIR/b$i.yaml" > "$DIR/b$i.log" 2>&1 & PIDS+=($!); BR+=($!)
  sleep 0.3
done
wait_port "$WS_PORT"
sleep 1
declare -A RSS0 SOCK0 CPU0
for p in "${BR[@]}"; do RSS0[$p]=$(rss_kb "$p"); SOCK0[$p]=$(sockets "$p"); done

per=$((CONNS / LOADERS / 10))
src="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"
WL=()
for j in $(seq 1 "$LOADERS"); do
  "$WSLOAD" --port "$WS_PORT" --paths "/ws/telemetry/%d" --ids 0-9 --clients-per-path "$per" \
    --latency-after-ready --source-addrs "$src" --concurrency 200 --connect-timeout 120 \
    --duration 900 --label "rp$j" > "$DIR/ws$j.json" 2> "$DIR/ws$j.err" & PIDS+=($!); WL+=($!)
done
for j in $(seq 1 "$LOADERS"); do
  until grep -q '^READY' "$DIR/ws$j.err" 2>/dev/null; do
    kill -0 "${WL[$((j - 1))]}" 2>/dev/null || { echo "tb-wsload $j exited: $(tail -2 "$DIR/ws$j.err")"; exit 1; }
    sleep 0.2
  done
done
echo "connected: $(grep -ho 'connect_s=[0-9.]*' "$DIR"/ws*.err | sort -t= -k2 -n | tail -1 | cut -d= -f2) s for the slowest load client"
sleep 2
for p in "${BR[@]}"; do CPU0[$p]=$(cpu_ticks "$p"); done
t0=$(date +%s.%N)
"$PUB" --port "$MQTT_PORT" --vehicles 10 --rate "$RATE" --duration "$DUR" > "$DIR/pub.json" 2> "$DIR/pub.err"
sleep 3
t1=$(date +%s.%N)
echo "process  connections  RSS MB  bytes/conn  CPU % (traffic)"
total_conn=0 total_rss=0
hz=$(getconf CLK_TCK)
for p in "${BR[@]}"; do
  c=$(( $(sockets "$p") - ${SOCK0[$p]} ))
  r=$(rss_kb "$p"); d=$(( (r - ${RSS0[$p]}) * 1024 ))
  cpu=$(python3 -c "print(round(100 * ($(cpu_ticks "$p") - ${CPU0[$p]}) / $hz / ($t1 - $t0), 1))")
  printf '%7s  %11s  %6s  %10s  %s\n' "$p" "$c" "$((r / 1024))" "$([ "$c" -gt 0 ] && echo $((d / c)) || echo -)" "$cpu"
  total_conn=$((total_conn + c)); total_rss=$((total_rss + r - ${RSS0[$p]}))
done
echo "all: $total_conn connections, $((total_rss * 1024 / (total_conn > 0 ? total_conn : 1))) bytes of RSS per connection"
for w in "${WL[@]}"; do kill -INT "$w"; done
for w in "${WL[@]}"; do wait "$w" || true; done
python3 - "$DIR" "$LOADERS" "$DIR/pub.json" <<'EOF'
import json, sys
d, n, pubf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rs = [json.loads(open(f"{d}/ws{j}.json").read().strip().splitlines()[-1]) for j in range(1, n + 1)]
s = lambda k: sum(r.get(k, 0) for r in rs)
pub = json.loads(open(pubf).read().strip().splitlines()[-1])
published = pub.get("published", pub.get("sent", 0))
# each connection is in one vehicle's room: it should get every message of that vehicle
expected = s("conns_ok") * published // 10
lat = [r["lat_us"] for r in rs if r["lat_us"]["count"]]
worst = lambda k: max((l[k] for l in lat), default=0)
print(f"clients: {s('conns_ok')}/{s('conns_target')} connected, {s('conns_receiving')} received traffic, "
      f"closed by server {s('closed_by_server')}")
print(f"frames: {s('data_frames')} received of {expected} expected ({published} published), "
      f"lost {s('lost')}, dup {s('dup')}, reordered {s('reordered')}")
print(f"latency publish -> receive (worst load client): p50 {worst('p50') / 1000:.2f} ms, "
      f"p99 {worst('p99') / 1000:.2f} ms, p999 {worst('p999') / 1000:.2f} ms, max {worst('max') / 1000:.2f} ms")
EOF
echo "logs: $DIR"
