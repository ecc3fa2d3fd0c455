"""The dashboard's command panel and the JS client's command()/publish() against the real
stack (issue 17): a real Mosquitto, the real bridge (config written here, static_dir = the
source tree's dashboard/) and telesim --commands answering for one vehicle.

- test_js_client_uplink: tests/js/uplink.bridge.mjs (node --test) with TB_CONTROL_WS set:
  command() resolves with telesim's answer, the bridge's refusals and timeout reject with
  their codes, publish() resolves with `published`.
- test_dashboard_command: tests/e2e/command.e2e.mjs in headless Chromium: the vehicle view
  sends ping / horn / request_diagnostics and shows the answers; a vehicle outside the
  rule's allow_topics is refused; a vehicle nobody simulates times out.

Needs what test_dashboard_e2e.py needs (node >= 20, npm, /usr/bin/chromium, mosquitto);
its require_tools() installs tests/package.json's npm packages when missing.
"""
import os
import subprocess

import pytest

import harness
from harness import Bridge, Mosquitto, Proc, wait_for
from test_dashboard_e2e import ARTIFACTS, CHROMIUM, SOURCE_DIR, TELESIM, TESTS_DIR, require_tools

VEHICLE = "cmd-00001"       # telesim --id-prefix cmd- --vehicles 1
SILENT = "cmd-00009"        # permitted, but nobody answers: the rule's reply timeout
REFUSED = "other-1"         # outside allow_topics: refused, nothing published

CONFIG = """
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-cmd-@UID@", protocol: 5, qos: 1}
server:
  listen: "@LISTEN@"
  static_dir: "@STATIC@"
endpoints:
  /ws/personal:               {rooms: [personal]}
  /ws/fleet:                  {rooms: [fleet]}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/alerts/{user_id}:       {rooms: [alerts]}
  /ws/connect:                {rooms: [], client_subscriptions: true}
  /ws/control/{vehicle_id}/{user_id}:
    rooms: ["vehicle:{vehicle_id}"]
    identity: user_id
    publish:
      - type: command
        topic: "vehicle/{vehicle_id}/cmd/{data.command}"
        allow_topics: ["vehicle/cmd-*"]
        max_bytes: 1k
        fields: [command, args]
        required: [command]
        rate: {per_second: 5, burst: 20}
        reply: {timeout: 1s}
      - type: note
        topic: "notes/{user_id}"
        qos: 0
        fields: [text]
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", "{payload.simulation_mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
    keep_last: true
    history: 50
heartbeat: {interval: 1s, ws_ping: 10s, idle_timeout: 60s}
"""


@pytest.fixture
def stack():
    require_tools()
    broker = Mosquitto()
    procs = []
    try:
        bridge = Bridge(broker.port, config=CONFIG.replace("@STATIC@", os.path.join(SOURCE_DIR, "dashboard")))
        procs.append(bridge)
        sim = Proc("telesim", [TELESIM, "--port", str(broker.port), "--seed", "7", "--vehicles", "1", "--rate", "2",
                               "--id-prefix", "cmd-", "--commands"])
        procs.append(sim)
        wait_for(lambda: "answering commands" in sim.log(), timeout=15, what="telesim subscribed to its commands")
        wait_for(lambda: bridge.counter("routed") > 0, timeout=15, what="telesim telemetry through the bridge")
        yield bridge
    finally:
        for p in reversed(procs):
            p.stop()
        broker.stop()


def run_node(args, env, what):
    r = subprocess.run(["node", *args], cwd=TESTS_DIR, env=dict(os.environ, **env), capture_output=True,
                       text=True, timeout=300)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, f"{what} failed (output above)"
    return r.stdout


def test_js_client_uplink(stack):
    out = run_node(["--test", "--test-reporter=spec", "js/uplink.bridge.mjs"],
                   {"TB_CONTROL_WS": f"ws://127.0.0.1:{stack.port}", "TB_VEHICLE": VEHICLE,
                    "TB_SILENT_VEHICLE": SILENT, "TB_REFUSED_VEHICLE": REFUSED},
                   "tests/js/uplink.bridge.mjs")
    assert "skipped 0" in out and "fail 0" in out


def test_dashboard_command(stack):
    os.makedirs(ARTIFACTS, exist_ok=True)
    run_node([os.path.join(TESTS_DIR, "e2e", "command.e2e.mjs")],
             {"TB_HTTP": f"http://127.0.0.1:{stack.port}", "TB_VEHICLE": VEHICLE, "TB_SILENT_VEHICLE": SILENT,
              "TB_REFUSED_VEHICLE": REFUSED, "TB_ARTIFACTS": ARTIFACTS, "TB_CHROMIUM": CHROMIUM},
             "tests/e2e/command.e2e.mjs")
    for name in ("vehicle-command", "vehicle-command-refused"):
        assert os.path.exists(os.path.join(ARTIFACTS, f"{name}.png")), f"missing screenshot {name}.png"
