"""Dashboard and JavaScript client tests, driven from pytest so ctest runs them.

Starts a real Mosquitto, the real bridge (with a config written here: short alert duration,
1 s heartbeats, static_dir = the source tree's dashboard/), telesim in mixed mode and a
telesim race-session monitor, then runs
  - the JS client unit tests: `node --test tests/js/` (with TB_BRIDGE_WS set, so the
    real-bridge cases run too), and
  - the browser end-to-end script tests/e2e/dashboard.e2e.mjs in Debian's headless Chromium.
The e2e script asks for process actions (stop/start the bridge, start a 1,000-vehicle load)
by printing "@@control <cmd>" lines; this file performs them and answers on its stdin, so
every process stays owned (and ended by PID) here. Screenshots go to
$TB_BUILD_DIR/artifacts/dashboard/.

Needs: node >= 20, npm, /usr/bin/chromium (apt-get install chromium), mosquitto. The npm
packages (tests/package.json: playwright-core, ws) are installed with `npm ci` in tests/
when missing.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import harness
from harness import Bridge, Mosquitto, Proc, wait_for

TESTS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SOURCE_DIR = os.path.abspath(harness.SOURCE_DIR)
BUILD_DIR = os.path.abspath(harness.BUILD_DIR)
TELESIM = os.path.join(BUILD_DIR, "simulator", "telesim")
CHROMIUM = os.environ.get("TB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(BUILD_DIR, "artifacts", "dashboard")
VEHICLES = 6
ALERT_FOR_MS = 1000
LOAD_VEHICLES = int(os.environ.get("TB_E2E_LOAD", "1000"))
# Every view the e2e script photographs (scripts/update-screenshots.sh copies them to docs/).
SCREENSHOTS = ("fleet", "alerts", "vehicle-alert", "alerts-acknowledged", "vehicle", "vehicle-none",
               "vehicle-unknown", "sessions", "session", "session-unknown", "reconnecting", "reconnected",
               "fleet-phone", "login")

CONFIG = """
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-e2e-@UID@", protocol: 5, qos: 1}
server:
  listen: "@LISTEN@"
  static_dir: "@STATIC@"
endpoints:
  /ws/personal:               {rooms: [personal]}
  /ws/fleet:                  {rooms: [fleet]}
  /ws:                        {same_as: /ws/personal}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/alerts/{user_id}:       {rooms: [alerts]}
  /ws/connect:                {rooms: [], client_subscriptions: true}
  /ws/session/{sid}:          {rooms: ["session:{sid}"]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", "{payload.simulation_mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
    keep_last: true
    history: 200
    slow_client: conflate
  - match: vehicle/{id}/setup
    rooms: ["vehicle:{id}"]
    type: setup_update
    keep_last: true
  - match: vehicle/{id}/status
    rooms: ["vehicle:{id}"]
    type: status_update
    keep_last: true
  - match: session/{sid}/setup
    rooms: ["session:{sid}"]
    type: setup_update
    keep_last: true
  - match: session/{sid}/telemetry
    rooms: ["session:{sid}"]
    type: telemetry_update
    keep_last: true
    history: 200
alerts:
  - name: engine_overheat
    match: vehicle/{id}/telemetry
    when: engine_metrics.temperature > 110
    for: @ALERT_FOR@ms
    clear_when: engine_metrics.temperature < 100
    severity: critical
    message: "Engine temperature {engine_metrics.temperature} C on vehicle {id}"
    rooms: [alerts, "vehicle:{id}"]
heartbeat: {interval: 1s, ws_ping: 10s, idle_timeout: 60s}
"""


def require_tools():
    missing = [t for t in ("node", "npm", "mosquitto", "mosquitto_pub") if not shutil.which(t)]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if missing:
        pytest.fail("dashboard tests need: " + ", ".join(missing))
    major = int(subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True,
                               text=True, check=True).stdout.strip())
    if major < 20:
        pytest.fail(f"node >= 20 needed, found {major}")
    mods = os.path.join(TESTS_DIR, "node_modules")
    if not all(os.path.isdir(os.path.join(mods, m)) for m in ("playwright-core", "ws")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TESTS_DIR, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"`npm ci` in {TESTS_DIR} failed (the npm registry must be reachable):\n"
                        f"{r.stdout}\n{r.stderr}")


class Stack:
    """Broker + bridge + simulators for one test; the bridge can be stopped and restarted on
    the same port."""

    def __init__(self):
        self.broker = Mosquitto()
        self.procs = []
        self.config = CONFIG.replace("@STATIC@", os.path.join(SOURCE_DIR, "dashboard")) \
            .replace("@ALERT_FOR@", str(ALERT_FOR_MS))
        self.bridge = Bridge(self.broker.port, config=self.config)
        self.port = self.bridge.port
        self.sim = self.telesim("sim", "--vehicles", str(VEHICLES), "--rate", "2", "--mode", "mixed")
        self.session = None

    def telesim(self, name, *args):
        p = Proc(name, [TELESIM, "--port", str(self.broker.port), "--seed", "7", *args])
        self.procs.append(p)
        return p

    def start_session(self):
        mon = self.telesim("session", "--session", "--rate", "2")
        m = wait_for(lambda: re.search(r"session id: ([0-9a-f-]{36})", mon.log()), timeout=15,
                     what="telesim --session to print its session id")
        self.session = m.group(1)
        return self.session

    def stop_bridge(self):
        rc = self.bridge.stop()
        assert rc == 0, f"telebridge exited with {rc}:\n{self.bridge.log()}"

    def start_bridge(self):
        old = self.bridge
        self.bridge = Bridge(self.broker.port, config=self.config, port=self.port)
        self.procs.append(old)

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        if self.bridge.alive():
            self.bridge.stop()
        self.broker.stop()

    def dump(self):
        for p in [self.broker, self.bridge, *self.procs]:
            p.dump()


@pytest.fixture
def stack():
    require_tools()
    s = Stack()
    try:
        yield s
    finally:
        s.close()


def test_js_client_unit(stack):
    """node --test tests/js/ (scripted ws server cases + real-bridge cases)."""
    wait_for(lambda: stack.bridge.counter("routed") > 0, timeout=10, what="simulator traffic")
    env = dict(os.environ, TB_BRIDGE_WS=f"ws://127.0.0.1:{stack.port}")
    r = subprocess.run(["node", "--test", "--test-reporter=spec", "js/"], cwd=TESTS_DIR, env=env,
                       capture_output=True, text=True, timeout=300)
    print(r.stdout, r.stderr)
    if r.returncode != 0:
        stack.dump()
    assert r.returncode == 0, "JS client unit tests failed (output above)"
    assert re.search(r"skipped 0\b", r.stdout), "real-bridge cases must run, not be skipped"


def test_dashboard_e2e(stack):
    """tests/e2e/dashboard.e2e.mjs in headless Chromium, with process control over stdio."""
    sid = stack.start_session()
    os.makedirs(ARTIFACTS, exist_ok=True)
    env = dict(os.environ, TB_HTTP=f"http://127.0.0.1:{stack.port}", TB_MQTT_PORT=str(stack.broker.port),
               TB_ARTIFACTS=ARTIFACTS, TB_VEHICLES=str(VEHICLES), TB_SESSION=sid,
               TB_ALERT_FOR_MS=str(ALERT_FOR_MS), TB_CHROMIUM=CHROMIUM,
               TB_LOAD_VEHICLES=str(LOAD_VEHICLES))
    node = subprocess.Popen(["node", os.path.join(TESTS_DIR, "e2e", "dashboard.e2e.mjs")], cwd=TESTS_DIR,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    out = []
    deadline = time.monotonic() + 420
    try:
        for line in node.stdout:
            out.append(line)
            sys.stdout.write(line)
            if time.monotonic() > deadline:
                raise TimeoutError("e2e script took longer than 420 s")
            if not line.startswith("@@control "):
                continue
            cmd = line.split(None, 1)[1].strip()
            try:
                if cmd == "stop-bridge":
                    stack.stop_bridge()
                elif cmd == "start-bridge":
                    stack.start_bridge()
                elif cmd == "start-load":
                    stack.telesim("load", "--vehicles", str(LOAD_VEHICLES), "--rate", "2", "--mode", "mixed",
                                  "--id-prefix", "load-", "--quiet")
                else:
                    raise ValueError(f"unknown control command {cmd!r}")
                node.stdin.write("ok\n")
            except Exception as e:  # reported to the script, which fails with it
                node.stdin.write(f"error {e}\n")
            node.stdin.flush()
        rc = node.wait(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    if rc != 0:
        stack.dump()
    assert rc == 0, f"dashboard e2e failed (screenshots in {ARTIFACTS}):\n" + "".join(out[-30:])
    for name in SCREENSHOTS:
        assert os.path.exists(os.path.join(ARTIFACTS, f"{name}.png")), f"missing screenshot {name}.png"
