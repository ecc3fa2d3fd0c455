"""Issue 15, done-means: the dashboard's fleet page, opened in headless Chromium after 200
simulated vehicles have each reported once, lists all 200 (100 per pool) with no further
publish. The pool routes keep every vehicle's newest value (keep_last: per_topic, as in
config/telebridge.example.yaml), so the page is complete from the join snapshots alone.

Real Mosquitto, real bridge (static_dir = the source tree's dashboard/), a real paho
publisher that sends each vehicle's telemetry once, then tests/e2e/fleet_snapshot.e2e.mjs in
Debian's Chromium. The bridge's `received` counter is read before the page opens and after
it has listed every vehicle: equal, so nothing was published meanwhile. How long the page
took is printed by the script and kept in $TB_BUILD_DIR/artifacts/dashboard-fleet/
fleet-snapshot.log (not asserted; docs/benchmarks.md has the figure).

A hostile neighbour is part of the setup: one report with "simulation_mode": "alerts"
(outside rooms_allowed) and one non-JSON report; neither may show up in either pool.

Needs what test_dashboard_e2e.py needs: node >= 20, /usr/bin/chromium, tests/node_modules.
"""
import os
import subprocess
import time

import pytest

import harness
from harness import Bridge, Mosquitto, Publisher, wait_for
from test_dashboard_e2e import require_tools   # node, npm ci, chromium: the same needs

TESTS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SOURCE_DIR = os.path.abspath(harness.SOURCE_DIR)
CHROMIUM = os.environ.get("TB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.abspath(harness.BUILD_DIR), "artifacts", "dashboard-fleet")
VEHICLES = 200

CONFIG = """
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-e2e-fleet-@UID@", protocol: 5, qos: 1}
server:
  listen: "@LISTEN@"
  static_dir: "@STATIC@"
endpoints:
  /ws/personal:               {rooms: [personal]}
  /ws/fleet:                  {rooms: [fleet]}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/alerts/{user_id}:       {rooms: [alerts]}
  /ws/connect:                {rooms: [], client_subscriptions: true}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", "{payload.simulation_mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
    keep_last: per_topic
    keep_last_max: 20000
    non_json: drop
heartbeat: {interval: 1s, ws_ping: 10s, idle_timeout: 60s}
"""


def telemetry(vid, mode):
    return {"vehicle_id": vid, "simulation_mode": mode, "timestamp": "2026-11-26T12:00:00Z",
            "ts_ms": int(time.time() * 1000), "speed": 42, "acceleration": 0,
            "engine_metrics": {"temperature": 80, "rpm": 3100, "oil_pressure": 3.1},
            "battery_metrics": {"voltage": 13.9, "level": 77}, "fuel_metrics": {"level": 55, "consumption": 7},
            "location": {"latitude": 52.52, "longitude": 13.40, "heading": 90}, "odometer": 1000, "gear": 4}


@pytest.fixture
def stack():
    require_tools()
    broker = Mosquitto()
    bridge = pub = None
    try:
        bridge = Bridge(broker.port, config=CONFIG.replace("@STATIC@", os.path.join(SOURCE_DIR, "dashboard")))
        pub = Publisher(broker.port)
        yield broker, bridge, pub
    finally:
        if pub:
            pub.close()
        if bridge and bridge.alive():
            bridge.stop()
        broker.stop()


def test_fleet_page_opens_complete(stack):
    broker, bridge, pub = stack
    ids = {"fleet": [f"fv-{i:03d}" for i in range(0, VEHICLES, 2)],
           "personal": [f"pv-{i:03d}" for i in range(1, VEHICLES, 2)]}
    reports = [(f"vehicle/{v}/telemetry", telemetry(v, mode)) for mode in ids for v in ids[mode]]
    reports.append(("vehicle/intruder/telemetry", telemetry("intruder", "alerts")))
    reports.append(("vehicle/garbage/telemetry", "not json {"))
    pub.publish_many(reports)
    wait_for(lambda: bridge.counter("received") >= len(reports), timeout=20, what="every report received")
    before = bridge.counter("received")

    os.makedirs(ARTIFACTS, exist_ok=True)
    env = dict(os.environ, TB_HTTP=f"http://127.0.0.1:{bridge.port}", TB_ARTIFACTS=ARTIFACTS,
               TB_FLEET_IDS=",".join(ids["fleet"]), TB_PERSONAL_IDS=",".join(ids["personal"]),
               TB_CHROMIUM=CHROMIUM)
    r = subprocess.run(["node", os.path.join(TESTS_DIR, "e2e", "fleet_snapshot.e2e.mjs")], cwd=TESTS_DIR,
                       env=env, capture_output=True, text=True, timeout=180)
    print(r.stdout, r.stderr)
    with open(os.path.join(ARTIFACTS, "fleet-snapshot.log"), "w") as f:   # the time, when pytest hides stdout
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        broker.dump()
        bridge.dump()
    assert r.returncode == 0, f"fleet snapshot e2e failed (screenshots in {ARTIFACTS}):\n{r.stdout}\n{r.stderr}"
    assert bridge.counter("received") == before, "something was published while the page was open"
    health = bridge.health()["messages"]
    assert health.get("rooms_not_allowed", 0) >= 1, health
