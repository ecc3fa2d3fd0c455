"""Integration tests of the vehicle simulator (telesim) against a real Mosquitto.

Each test starts its own broker on a free loopback port, runs the real telesim binary from
the build tree, and watches the broker with a paho subscriber: messages per vehicle, the
telemetry schema, the achieved rate, retained setup/status, the last will on SIGKILL,
exit codes, broker-down retries, and the race-session id exchange (with and without a
responder standing in for the bridge). Logs of every process are printed on failure.
"""
import json
import os
import re
import signal
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from harness import BUILD_DIR, Mosquitto, Proc, free_port, wait_for

TELESIM = os.path.join(BUILD_DIR, "simulator", "telesim")

SCHEMA = {
    "vehicle_id": str, "timestamp": str, "ts_ms": int, "simulation_mode": str,
    "speed": (int, float), "acceleration": (int, float),
    "engine_metrics": {"temperature": (int, float), "rpm": int, "oil_pressure": (int, float)},
    "battery_metrics": {"voltage": (int, float), "level": (int, float)},
    "fuel_metrics": {"level": (int, float), "consumption": (int, float)},
    "location": {"latitude": (int, float), "longitude": (int, float), "heading": (int, float)},
    "odometer": (int, float), "gear": int,
}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SUMMARY = re.compile(r"sent (\d+) telemetry messages from (\d+) vehicles? in ([\d.]+) s: "
                     r"([\d.]+) msg/s \(target ([\d.]+), ([-+][\d.]+)%\), errors (\d+)")


def check_schema(obj, schema, path=""):
    assert set(obj) >= set(schema), f"missing fields at {path or 'top'}: {set(schema) - set(obj)}"
    for key, kind in schema.items():
        if isinstance(kind, dict):
            assert isinstance(obj[key], dict), f"{path}{key} is not an object"
            check_schema(obj[key], kind, f"{path}{key}.")
        else:
            assert isinstance(obj[key], kind) and not isinstance(obj[key], bool), \
                f"{path}{key} = {obj[key]!r} is not {kind}"


class Sub:
    """A paho subscriber recording (topic, payload, retain, arrival time)."""

    def __init__(self, port, topics, protocol=mqtt.MQTTv311, parse=True):
        self.msgs = []
        self.lock = threading.Lock()
        self.count = 0
        self.subscribed = threading.Event()
        self.keep = parse
        self.c = mqtt.Client(client_id=f"test-sub-{uuid.uuid4().hex[:8]}", protocol=protocol)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(t, 0) for t in topics])
        self.c.loop_start()
        assert self.subscribed.wait(5), "no SUBACK"

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.count += 1
            if self.keep:
                self.msgs.append((msg.topic, msg.payload, msg.retain, time.monotonic()))

    def on(self, prefix_re):
        r = re.compile(prefix_re)
        with self.lock:
            return [m for m in self.msgs if r.fullmatch(m[0])]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def retained(port, topic_filter, expect, timeout=5.0):
    """Retained messages on topic_filter, read by a fresh subscriber: {topic: payload}.
    Returns once 'expect' topics arrived, or whatever arrived after timeout seconds."""
    s = Sub(port, [topic_filter])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with s.lock:
                if len({m[0] for m in s.msgs if m[2]}) >= expect:
                    break
            time.sleep(0.02)
        with s.lock:
            return {m[0]: m[1].decode() for m in s.msgs if m[2]}
    finally:
        s.close()


@pytest.fixture
def procs():
    """Processes a test started. Their logs are printed at teardown; pytest shows that
    output only when the test failed."""
    started = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL, timeout=5)
        p.dump()


@pytest.fixture
def broker(procs):
    b = Mosquitto()
    procs.append(b)
    return b


def telesim(procs, port, *args, name="telesim"):
    p = Proc(name, [TELESIM, "--port", str(port), *map(str, args)])
    procs.append(p)
    return p


def finish(p, timeout=30):
    p.p.wait(timeout)
    return p.p.returncode


def summary(p):
    m = SUMMARY.search(p.log())
    assert m, "no summary line"
    return {"sent": int(m[1]), "vehicles": int(m[2]), "seconds": float(m[3]), "rate": float(m[4]),
            "target": float(m[5]), "deviation_pct": float(m[6]), "errors": int(m[7])}


def test_telemetry_schema_counts_setup_status_fleet(broker, procs):
    sub = Sub(broker.port, ["vehicle/#", "fleet/#"])
    p = telesim(procs, broker.port, "--vehicles", 20, "--rate", 5, "--duration", 4,
                "--mode", "mixed", "--fleet-groups", 2, "--seed", 1, "--qos", 1)
    assert finish(p) == 0
    time.sleep(0.3)
    tele = sub.on(r"vehicle/[^/]+/telemetry")
    per_vehicle = {}
    modes = set()
    for topic, payload, _, _ in tele:
        d = json.loads(payload)
        check_schema(d, SCHEMA)
        vid = topic.split("/")[1]
        assert d["vehicle_id"] == vid
        assert ISO_MS.match(d["timestamp"]), d["timestamp"]
        assert abs(d["ts_ms"] - time.time() * 1000) < 60000
        assert 0 <= d["speed"] <= 130 and 0 <= d["gear"] <= 6
        modes.add(d["simulation_mode"])
        per_vehicle[vid] = per_vehicle.get(vid, 0) + 1
    assert modes == {"personal", "fleet"}
    assert len(per_vehicle) == 20
    assert set(per_vehicle.values()) == {20}, per_vehicle  # 5 Hz x 4 s, exactly
    s = summary(p)
    assert s["sent"] == 400 and s["errors"] == 0

    groups = {t for t, *_ in sub.on(r"fleet/.+")}
    assert groups == {"fleet/group-1", "fleet/group-2"}
    f = json.loads(sub.on(r"fleet/group-1")[-1][1])
    assert f["vehicles_total"] == 5 and 0 <= f["average_speed"] <= 130
    sub.close()

    setups = retained(broker.port, "vehicle/+/setup", 20)
    assert len(setups) == 20
    one = json.loads(setups["vehicle/veh-00001/setup"])
    for key in ("make", "model", "driver", "tyres", "vin", "mqtt_client_id"):
        assert key in one
    statuses = retained(broker.port, "vehicle/+/status", 20)
    assert set(statuses.values()) == {"offline"}  # clean exit publishes offline


def test_rate_accuracy_1000_vehicles_10hz(broker, procs):
    """1000 vehicles x 10 Hz: achieved rate within 1 %, seen by the publisher and the broker."""
    sub = Sub(broker.port, ["vehicle/+/telemetry"], parse=True)
    p = telesim(procs, broker.port, "--vehicles", 1000, "--rate", 10, "--duration", 5, "--quiet")
    assert finish(p) == 0
    s = summary(p)
    print("telesim summary:", s)
    assert s["sent"] == 50000 and s["errors"] == 0
    assert abs(s["rate"] - 10000) / 10000 < 0.01
    wait_for(lambda: sub.count >= 50000, 10, what="all 50000 messages at the subscriber")
    # the publisher's own timestamps: messages stamped within a 3 s window in mid-run
    ts = sorted(int(re.search(rb'"ts_ms":(\d+)', m[1])[1]) for m in sub.msgs)
    t0 = ts[0] + 1000
    window = sum(1 for t in ts if t0 <= t < t0 + 3000)
    print(f"subscriber saw {sub.count} messages; {window} stamped in a 3 s window "
          f"({window / 3:.1f} msg/s)")
    assert abs(window / 3 - 10000) / 10000 < 0.02
    sub.close()


def test_last_will_marks_vehicles_offline_on_sigkill(broker, procs):
    # one connection per vehicle: the will is each vehicle's own status topic
    a = telesim(procs, broker.port, "--vehicles", 3, "--connections", 3, "--rate", 2,
                "--id-prefix", "a-", name="telesim-a")
    # many vehicles on one connection: the will is the connection's status topic
    b = telesim(procs, broker.port, "--vehicles", 4, "--rate", 2, "--id-prefix", "b-",
                name="telesim-b")
    st = wait_for(lambda: (lambda r: r if list(r.values()).count("online") == 8 else None)(
        retained(broker.port, "+/+/status", 8, timeout=1)), 10, what="8 online statuses")
    assert st["telesim/b-conn-1/status"] == "online"
    assert st["vehicle/a-00001/status"] == "online"
    a.kill()
    b.kill()
    st = wait_for(lambda: (lambda r: r if r.get("vehicle/a-00003/status") == "offline" and
                           r.get("telesim/b-conn-1/status") == "offline" else None)(
        retained(broker.port, "+/+/status", 8, timeout=1)), 10, what="wills")
    assert all(st[f"vehicle/a-0000{i}/status"] == "offline" for i in (1, 2, 3))
    assert st["telesim/b-conn-1/status"] == "offline"
    # vehicles of a killed multi-vehicle connection keep their last status: documented
    setup = json.loads(retained(broker.port, "vehicle/b-00002/setup", 1)["vehicle/b-00002/setup"])
    assert setup["mqtt_client_id"] == "b-conn-1"


def test_sigint_and_sigterm_exit_cleanly(broker, procs):
    for n, sig in enumerate((signal.SIGINT, signal.SIGTERM), 1):
        p = telesim(procs, broker.port, "--vehicles", 5, "--rate", 20, "--id-prefix", f"s{sig}-")
        wait_for(lambda: "vehicles (personal)" in p.log(), 10, what="start")
        time.sleep(1.0)
        os.kill(p.pid, sig)
        assert finish(p, 10) == 0
        s = summary(p)
        assert s["sent"] >= 50 and s["errors"] == 0
        st = {k: v for k, v in retained(broker.port, "vehicle/+/status", 5 * n).items()
              if k.startswith(f"vehicle/s{sig}-")}
        assert len(st) == 5 and set(st.values()) == {"offline"}


@pytest.mark.parametrize("args", [
    ["--vehicles", "0"], ["--vehicles", "100001"], ["--rate", "fast"], ["--mode", "race"],
    ["--qos", "3"], ["--protocol", "4"], ["--anomaly", "flat_tyre"], ["--no-such-option"],
    ["--connections", "5", "--vehicles", "2"], ["--port"],
])
def test_bad_arguments_exit_2(args):
    import subprocess
    r = subprocess.run([TELESIM, *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert r.stderr.startswith("telesim: ") and len(r.stderr.strip()) > 15, r.stderr


def test_help_exits_0():
    import subprocess
    r = subprocess.run([TELESIM, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--vehicles" in r.stdout and "--session" in r.stdout


def test_broker_down_retries_then_connects(procs):
    port = free_port()
    p = telesim(procs, port, "--vehicles", 2, "--rate", 5, "--duration", 1)
    wait_for(lambda: "cannot connect to broker" in p.log(), 10, what="a retry message")
    time.sleep(1.2)
    assert p.alive()
    assert "retry 2" in p.log()  # backing off, not crashing
    b = Mosquitto(port=port)
    procs.append(b)
    assert finish(p, 20) == 0
    assert summary(p)["sent"] == 10


def test_session_mode_generates_uuid_without_bridge(broker, procs):
    sub = Sub(broker.port, ["session/#"])
    p = telesim(procs, broker.port, "--session", "--duration", 3)
    assert finish(p, 20) == 0
    m = re.search(r"session id: (\S+)", p.log())
    assert m and UUID4.match(m[1]), p.log()
    sid = m[1]
    tele = sub.on(rf"session/{sid}/telemetry")
    assert len(tele) == 6  # 2 Hz x 3 s
    d = json.loads(tele[0][1])
    check_schema(d, SCHEMA)
    assert d["session_id"] == sid
    assert len(sub.on(r"session/request")) == 1
    sub.close()
    setup = json.loads(retained(broker.port, f"session/{sid}/setup", 1)[f"session/{sid}/setup"])
    assert setup["session_id"] == sid and setup["vehicle"]["make"]


@pytest.mark.parametrize("protocol", ["311", "5"])
def test_session_mode_takes_id_from_a_responder(broker, procs, protocol):
    """A stand-in for the bridge answers session/request; telesim must use its id."""
    v5 = protocol == "5"
    responder = mqtt.Client(client_id="fake-bridge", protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    seen = []

    def on_message(client, userdata, msg):
        req = json.loads(msg.payload)
        seen.append((req, getattr(msg, "properties", None)))
        if v5:
            props = msg.properties
            reply = Properties(PacketTypes.PUBLISH)
            reply.CorrelationData = props.CorrelationData
            client.publish(props.ResponseTopic, json.dumps({"session_id": "race-42"}), 1,
                           properties=reply)
        else:
            client.publish(req["reply_to"], json.dumps(
                {"session_id": "race-42", "correlation": req["correlation"]}), 1)

    subscribed = threading.Event()
    responder.on_message = on_message
    responder.on_subscribe = lambda *a: subscribed.set()
    responder.connect("127.0.0.1", broker.port)
    responder.subscribe("session/request", 1)
    responder.loop_start()
    try:
        assert subscribed.wait(5)
        p = telesim(procs, broker.port, "--session", "--duration", 1, "--protocol", protocol)
        assert finish(p, 20) == 0
        assert "session id: race-42 (from the bridge)" in p.log()
        req, props = seen[0]
        assert req["reply_to"].startswith("session/response/") and req["correlation"]
        if v5:
            assert props.ResponseTopic == req["reply_to"]
            assert props.CorrelationData == req["correlation"].encode()
        assert "session/race-42/setup" in retained(broker.port, "session/race-42/setup", 1)
    finally:
        responder.loop_stop()
        responder.disconnect()


def test_same_seed_same_values(broker, procs):
    runs = []
    for i in range(2):
        sub = Sub(broker.port, [f"vehicle/r{i}-00002/telemetry"])
        p = telesim(procs, broker.port, "--vehicles", 3, "--rate", 10, "--duration", 1,
                    "--seed", 99, "--id-prefix", f"r{i}-", "--anomaly-rate", "0.1")
        assert finish(p) == 0
        time.sleep(0.2)
        vals = []
        for _, payload, _, _ in sub.msgs:
            d = json.loads(payload)
            for k in ("timestamp", "ts_ms", "vehicle_id"):
                d.pop(k)
            vals.append(d)
        runs.append(vals)
        sub.close()
    assert len(runs[0]) == 10 and runs[0] == runs[1]


def test_demo_starts_serves_and_stops_cleanly(procs):
    """scripts/demo.sh with the binaries of this build: /health answers, a WebSocket client
    gets telemetry, and after --duration nothing it started is left running."""
    import subprocess
    import urllib.request
    import websocket

    bridge = os.path.join(BUILD_DIR, "bridge", "telebridge")
    if not os.access(bridge, os.X_OK):
        pytest.skip("telebridge is not built in this tree")
    from harness import SOURCE_DIR
    web = free_port()
    demo = Proc("demo", ["bash", os.path.join(SOURCE_DIR, "scripts", "demo.sh"), "--duration", "12",
                         "--no-install", "--no-build", "--build-dir", BUILD_DIR,
                         "--web-port", str(web), "--vehicles", "4"])
    procs.append(demo)
    wait_for(lambda: "Telebridge demo is running" in demo.log() or not demo.alive(), 30,
             what="the demo to start")
    assert demo.alive(), "demo exited early"
    logdir = re.search(r"logs in (\S+)\)", demo.log())[1]
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{web}/health", timeout=5).read())
    assert health["status"] == "ok"
    ws = websocket.create_connection(f"ws://127.0.0.1:{web}/ws/personal", timeout=10)
    try:
        seen = set()
        deadline = time.monotonic() + 10
        while "telemetry_update" not in seen and time.monotonic() < deadline:
            seen.add(json.loads(ws.recv()).get("type"))
        assert "telemetry_update" in seen
    finally:
        ws.close()
    assert demo.p.wait(30) == 0
    assert "stopped everything it started" in demo.log()
    pids = [int(x) for x in re.findall(r"started \S+ \(pid (\d+)\)", demo.log())]
    assert len(pids) == 5  # mosquitto, telebridge, three telesims
    left = [p for p in pids if os.path.exists(f"/proc/{p}")]
    left += subprocess.run(["pgrep", "-f", logdir], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left running: {left}"


def test_version_and_bad_options():
    """telesim --version prints the version (issue 19: it was an unknown option); an unknown
    option or a --version with a value is still refused with exit 2."""
    import subprocess
    r = subprocess.run([TELESIM, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.fullmatch(r"telesim \d+\.\d+\.\d+\n", r.stdout), (r.returncode, r.stdout)
    r = subprocess.run([TELESIM, "--version=1"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r.stdout
    r = subprocess.run([TELESIM, "--no-such-option"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unknown option" in r.stderr
