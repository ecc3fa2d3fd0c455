#!/usr/bin/env bash
# demo.sh: one command from a fresh Debian machine to a running Telebridge demo.
#
# Installs the Debian packages that are missing (apt-get, as root or through sudo), builds
# into build/, starts a private Mosquitto on a free loopback port, the bridge with
# config/telebridge.yaml, and the simulator: a small mixed personal/fleet fleet with random
# anomalies, one vehicle that overheats at once (so an alert shows up quickly), and one
# race-session monitor. Prints the URLs to open. Ctrl-C (or --duration S) stops exactly the
# processes it started, by PID, and nothing is left running.
#
# usage: scripts/demo.sh [--duration S] [--web-port P] [--vehicles N] [--no-install]
#                        [--build-dir DIR] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build"
DURATION=0
WEB_PORT=""
VEHICLES=6
INSTALL=1
PACKAGES=(build-essential cmake pkg-config libmosquitto-dev libwebsockets-dev libwebsockets-evlib-ev
          libev-dev libcjson-dev libyaml-dev libssl-dev libsystemd-dev zlib1g-dev libcmocka-dev mosquitto mosquitto-clients)

BUILD_STEP=1
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "demo: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --web-port) WEB_PORT=${2:?--web-port needs a port}; shift 2 ;;
    --vehicles) VEHICLES=${2:?--vehicles needs a number}; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --build-dir) BUILD=${2:?--build-dir needs a directory}; shift 2 ;;
    --no-build) BUILD_STEP=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] || { echo "demo: --duration must be whole seconds" >&2; exit 2; }
[[ "$VEHICLES" =~ ^[0-9]+$ && "$VEHICLES" -ge 1 ]] || { echo "demo: bad --vehicles" >&2; exit 2; }

# ---- 1. packages ---------------------------------------------------------------------------
install_missing() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (run without --no-install)"
    echo "demo: installing ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: apt-get install ${missing[*]}"
        sudo=sudo
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}
if command -v dpkg-query >/dev/null; then
    install_missing
else
    echo "demo: not a Debian system; make sure these are installed: ${PACKAGES[*]}" >&2
fi

# ---- 2. build ------------------------------------------------------------------------------
if [ "$BUILD_STEP" = 1 ]; then
    echo "demo: building into $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target telebridge telesim >/dev/null ||
        die "build failed (run: cmake --build $BUILD)"
fi
TELEBRIDGE="$BUILD/bridge/telebridge"
TELESIM="$BUILD/simulator/telesim"
[ -x "$TELEBRIDGE" ] && [ -x "$TELESIM" ] || die "no binaries in $BUILD (build first)"

# ---- helpers: ports, processes -------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p i
    for i in $(seq 1 200); do
        # below the kernel's ephemeral range (32768+), where outgoing connections take ports
        p=$(( 20000 + RANDOM % 12000 ))
        port_busy "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}
wait_port() { # port seconds name
    local i
    for i in $(seq 1 $(( $2 * 20 ))); do
        port_busy "$1" && return 0
        sleep 0.05
    done
    return 1
}

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/telebridge-demo.XXXXXX")
PIDS=()
NAMES=()
# Each child runs in its own session (setsid), so a Ctrl-C in the terminal reaches only
# this script, which then stops the children in order: simulators first (they publish
# "offline" while the broker is still up), the broker last.
start() { # name command... ; output goes to $LOGDIR/name.log
    local name=$1; shift
    setsid "$@" >"$LOGDIR/$name.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
    echo "demo: started $name (pid $!)"
}

# A child that exited stays a zombie until reaped, so kill -0 alone would call it alive.
alive() { [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

STOPPING=0
cleanup() {
    [ "$STOPPING" = 1 ] && return
    STOPPING=1
    trap '' INT TERM
    local i n
    # reverse start order, one at a time: simulators (they publish "offline" while the
    # broker is still up), then the bridge, the broker last; KILL after 5 s
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || continue
        for n in $(seq 1 50); do
            alive "${PIDS[$i]}" || break
            sleep 0.1
        done
        alive "${PIDS[$i]}" && kill -KILL "${PIDS[$i]}" 2>/dev/null
    done
    wait 2>/dev/null || true
    echo "demo: stopped everything it started; logs in $LOGDIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# ---- 3. broker, bridge, simulators ---------------------------------------------------------
# A port free a moment ago can be taken before mosquitto binds it: try a few.
for attempt in 1 2 3 4 5; do
    MQTT_PORT=$(free_port)
    cat >"$LOGDIR/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stdout
max_queued_messages 100000
EOF
    start mosquitto mosquitto -c "$LOGDIR/mosquitto.conf"
    wait_port "$MQTT_PORT" 10 && alive "${PIDS[-1]}" && break
    if [ "$attempt" -eq 5 ] || ! grep -q "Address already in use" "$LOGDIR/mosquitto.log"; then
        die "mosquitto did not start: $(cat "$LOGDIR/mosquitto.log")"
    fi
    echo "demo: port $MQTT_PORT was taken, trying another"
done

if [ -z "$WEB_PORT" ]; then
    WEB_PORT=8080
    port_busy 8080 && WEB_PORT=$(free_port)
fi
start telebridge env TB_MQTT_PORT="$MQTT_PORT" TB_LISTEN="127.0.0.1:$WEB_PORT" \
    "$TELEBRIDGE" -c "$ROOT/config/telebridge.yaml"
wait_port "$WEB_PORT" 15 || die "telebridge did not start: $(tail -20 "$LOGDIR/telebridge.log")"

start telesim-fleet "$TELESIM" --port "$MQTT_PORT" --vehicles "$VEHICLES" --mode mixed \
    --fleet-groups 2 --rate 1 --anomaly-rate 0.003 --id-prefix demo- --commands
start telesim-overheat "$TELESIM" --port "$MQTT_PORT" --vehicles 1 --rate 1 \
    --anomaly overheat --anomaly-rate 0.01 --id-prefix hot-
start telesim-session "$TELESIM" --port "$MQTT_PORT" --session --protocol 5 --id-prefix race-

SID=""
for _ in $(seq 1 100); do
    SID=$(sed -n 's/^session id: \([^ ]*\).*/\1/p' "$LOGDIR/telesim-session.log" | head -1)
    [ -n "$SID" ] && break
    sleep 0.05
done

WEB="127.0.0.1:$WEB_PORT"
cat <<EOF

Telebridge demo is running (broker 127.0.0.1:$MQTT_PORT, logs in $LOGDIR)

  dashboard        http://$WEB/
  health           http://$WEB/health
  personal pool    ws://$WEB/ws/personal       (legacy: ws://$WEB/ws)
  fleet pool       ws://$WEB/ws/fleet
  one vehicle      ws://$WEB/ws/telemetry/demo-00001
  alerts           ws://$WEB/ws/alerts/demo-user   (hot-00001 overheats within ~30 s)
  race session     ws://$WEB/ws/session/${SID:-<see telesim-session.log>}
  general          ws://$WEB/ws/connect
  command a car    ws://$WEB/ws/control/demo-00001/operator
                   send {"type":"command","id":1,"data":{"command":"request_diagnostics"}}
  chat             ws://$WEB/ws/chat/<user>   send {"type":"chat","data":{"to":"<user>","text":"hi"}}
  status           http://$WEB/ws/status  http://$WEB/ws/connections

  watch MQTT:      mosquitto_sub -p $MQTT_PORT -t '#' -v

EOF
if [ "$DURATION" -gt 0 ]; then
    echo "demo: stopping after $DURATION s"
else
    echo "demo: Ctrl-C stops everything"
fi

# ---- 4. wait -------------------------------------------------------------------------------
SECONDS=0
while [ "$DURATION" -eq 0 ] || [ "$SECONDS" -lt "$DURATION" ]; do
    for i in "${!PIDS[@]}"; do
        if ! alive "${PIDS[$i]}"; then
            echo "demo: ${NAMES[$i]} exited unexpectedly; last lines of its log:" >&2
            tail -20 "$LOGDIR/${NAMES[$i]}.log" >&2
            exit 1
        fi
    done
    sleep 1
done
exit 0
