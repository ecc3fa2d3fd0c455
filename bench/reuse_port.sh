#!/usr/bin/env bash
# N bridge processes sharing one port (server.reuse_port) in one cluster, CONNS idle
# WebSocket connections spread over them by the kernel, then 1 Hz telemetry on every
# vehicle for DUR seconds: prints how many connections each process got, its RSS per
# connection, and the delivery figures of the load clients (docs/scaling.md).
#   N=5 CONNS=20000 LOADERS=2 DUR=10 bench/reuse_port.sh      (release tree in build/)
# The issue's figure is CONNS=95000 with LOADERS=5 (a process holds at most ~20,000
# descriptors here); every process here is ended by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5} CONNS=${CONNS:-20000} LOADERS=${LOADERS:-2} DUR=${DUR:-10} BUILD=${BUILD:-build}
TB=$BUILD/bridge/telebridge PUB=$BUILD/bench/tb-pub WSLOAD=$BUILD/bench/tb-wsload
DIR=$(mktemp -d /tmp/tb-reuseport-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

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
declare -A RSS0
for p in "${BR[@]}"; do RSS0[$p]=$(rss_kb "$p"); done

per=$((CONNS / LOADERS / 10))
src="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"
WL=()
for j in $(seq 1 "$LOADERS"); do
  "$WSLOAD" --port "$WS_PORT" --paths "/ws/telemetry/%d" --ids 0-9 --clients-per-path "$per" --idle \
    --source-addrs "$src" --concurrency 200 --connect-timeout 120 --duration 900 --label "rp$j" \
    > "$DIR/ws$j.json" 2> "$DIR/ws$j.err" & PIDS+=($!); WL+=($!)
done
for j in $(seq 1 "$LOADERS"); do
  until grep -q '^READY' "$DIR/ws$j.err" 2>/dev/null; do
    kill -0 "${WL[$((j - 1))]}" 2>/dev/null || { echo "tb-wsload $j exited: $(tail -2 "$DIR/ws$j.err")"; exit 1; }
    sleep 0.2
  done
done
echo "process  connections  RSS MB  bytes/conn"
total_conn=0 total_rss=0
for p in "${BR[@]}"; do
  n=$(ls -l "/proc/$p/fd" 2>/dev/null | grep -c socket || true)
  r=$(rss_kb "$p"); d=$(( (r - ${RSS0[$p]}) * 1024 ))
  c=$(ss -tnH state established "( sport = :$WS_PORT )" -p 2>/dev/null | grep -c "pid=$p," || true)
  printf '%7s  %11s  %6s  %10s\n' "$p" "$c" "$((r / 1024))" "$([ "$c" -gt 0 ] && echo $((d / c)) || echo -)"
  total_conn=$((total_conn + c)); total_rss=$((total_rss + r - ${RSS0[$p]}))
done
echo "all: $total_conn connections, $((total_rss * 1024 / (total_conn > 0 ? total_conn : 1))) bytes of RSS per connection"
"$PUB" --port "$MQTT_PORT" --vehicles 10 --rate 1 --duration "$DUR" > "$DIR/pub.json" 2> "$DIR/pub.err"
sleep 3
for w in "${WL[@]}"; do kill -INT "$w"; done
for w in "${WL[@]}"; do wait "$w" || true; done
python3 - "$DIR" "$LOADERS" <<'EOF'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
rs = [json.loads(open(f"{d}/ws{j}.json").read().strip().splitlines()[-1]) for j in range(1, n + 1)]
s = lambda k: sum(r.get(k, 0) for r in rs)
print(f"clients: {s('conns_ok')}/{s('conns_target')} connected, {s('conns_receiving')} received traffic, "
      f"{s('data_frames')} data frames, lost {s('lost')}, dup {s('dup')}, closed by server {s('closed_by_server')}")
EOF
echo "logs: $DIR"
