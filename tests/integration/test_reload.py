"""Live reload (issue 5): the running bridge follows edits of its YAML file.

Real Mosquitto, real telebridge, real WebSocket clients. The config is a small one written
per test; edits replace the file the way operators and editors do (in place, or a temp
file renamed over it) or signal SIGHUP."""
import json
import os
import signal
import threading
import time

import pytest

from harness import Bridge, Mosquitto, Publisher, WS, WSClosed, sanitizer_report, wait_for

BASE = """\
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-reload-@UID@", qos: 1, reconnect_min: 200ms, reconnect_max: 1s}
server: {listen: "@LISTEN@", send_queue_frames: 4096, send_queue_bytes: 8MiB}
endpoints:
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/fleet: {rooms: [fleet]}
%(extra_endpoints)s
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}"]
    type: telemetry_update
    keep_last: true
    history: 50
%(extra_routes)s
heartbeat: {interval: 10s, ws_ping: 0, idle_timeout: 0}
"""

NEW_ROUTE = """\
  - match: fleet/{group}
    rooms: [fleet]
    type: fleet_update
"""


def render(bridge_like, extra_routes="", extra_endpoints="", broker_port=None, listen=None):
    text = BASE % {"extra_routes": extra_routes, "extra_endpoints": extra_endpoints}
    return (text.replace("@MQTT_PORT@", str(broker_port)).replace("@LISTEN@", listen)
            .replace("@UID@", f"{os.getpid()}-{bridge_like}"))


@pytest.fixture
def env():
    broker = Mosquitto()
    made = []

    def start(**kw):
        b = Bridge(broker.port, config=render("x", **kw, broker_port="@MQTT_PORT@", listen="@LISTEN@"))
        made.append(b)
        return b

    yield broker, start
    for b in made:
        if b.alive():
            b.dump()
        b.cleanup()
    broker.stop()


def write_config(bridge, broker, rename=True, **kw):
    text = render(f"{id(bridge)}", broker_port=broker.port, listen=f"127.0.0.1:{bridge.port}", **kw)
    # keep the same client id as at start so nothing "needs restart"
    with open(bridge.config_path) as f:
        for line in f:
            if "client_id" in line:
                cid = line.split('client_id: "')[1].split('"')[0]
                text = text.replace(text.split('client_id: "')[1].split('"')[0], cid, 1)
                break
    write_raw(bridge, text, rename)


def write_raw(bridge, text, rename=True):
    if rename:  # editor style: write a temp file, rename it over the original
        tmp = bridge.config_path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, bridge.config_path)
    else:
        with open(bridge.config_path, "w") as f:
            f.write(text)


def reload_count(bridge):
    r = bridge.health()["config"]["reload"]
    return r.get("count", 0), r


def test_new_route_applies_without_loss_on_unchanged_routes(env):
    broker, start = env
    b = start()
    clients = [WS(b.url(f"/ws/telemetry/{i % 4}")) for i in range(20)]
    fleet = WS(b.url("/ws/fleet"))
    pub = Publisher(broker.port)
    stop = threading.Event()
    sent = {i: 0 for i in range(4)}

    def publish_loop():  # 200 msg/s over four vehicles
        n = 0
        while not stop.is_set():
            v = n % 4
            sent[v] += 1
            pub.publish(f"vehicle/{v}/telemetry", {"n": sent[v]}, qos=1)
            n += 1
            time.sleep(0.005)

    t = threading.Thread(target=publish_loop)
    t.start()
    try:
        time.sleep(0.5)
        write_config(b, broker, extra_routes=NEW_ROUTE)
        t0 = time.monotonic()
        wait_for(lambda: reload_count(b)[0] >= 1, timeout=5, what="reload")
        # the new route delivers within a second of the reload
        deadline = time.monotonic() + 1.0
        got = None
        while got is None and time.monotonic() < deadline + 1.0:
            pub.publish("fleet/north", {"online": 3}, qos=1, wait=True)
            try:
                m = fleet.recv(timeout=0.2)
                if m["type"] == "config_reloaded":
                    m = fleet.recv(timeout=0.5)
                got = m
            except TimeoutError:
                pass
        assert got and got["type"] == "fleet_update" and got["data"] == {"online": 3}
        assert time.monotonic() - t0 < 3.0
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    pub.close()
    total = dict(sent)
    for i, c in enumerate(clients):
        v = i % 4
        seqs, ns = [], []
        while len(ns) < total[v]:
            m = c.recv(timeout=10)
            if m["type"] == "config_reloaded":
                continue
            assert m["type"] == "telemetry_update", m
            seqs.append(m["seq"])
            ns.append(m["data"]["n"])
        assert ns == list(range(1, total[v] + 1)), f"client {i}: lost or duplicated messages"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"client {i}: seq gap"
    for c in clients + [fleet]:
        c.close()
    b.stop_clean()


def test_broken_file_changes_nothing_then_fix_applies(env):
    broker, start = env
    b = start()
    c = WS(b.url("/ws/telemetry/1"))
    good_version = b.health()["config"]["version"]
    # 1. YAML syntax error
    write_raw(b, "mqtt: {host: [unclosed\nroutes: -\n")
    wait_for(lambda: reload_count(b)[0] >= 1, timeout=5, what="reload attempt")
    _, r = reload_count(b)
    assert r["ok"] is False and r["errors"], r
    assert ":1:" in r["errors"][0] or ":2:" in r["errors"][0], r["errors"]
    assert b.health()["config"]["version"] == good_version
    # traffic still flows under the old rules
    Publisher(broker.port).publish("vehicle/1/telemetry", {"v": 1}, wait=True)
    assert c.recv_type("telemetry_update")["data"] == {"v": 1}
    # 2. valid YAML with an unknown key: reported with line and column and a hint
    text = render("y", broker_port=broker.port, listen=f"127.0.0.1:{b.port}")
    write_raw(b, text.replace("routes:\n  - match:", "routes:\n  - mach: x\n    match:"))
    wait_for(lambda: reload_count(b)[0] >= 2, timeout=5, what="second reload attempt")
    _, r = reload_count(b)
    assert r["ok"] is False
    # line 8 is the "- mach: x" line the edit inserted, column 5 its key
    assert any("mach" in e and "telebridge.yaml:8:5:" in e and "did you mean 'match'" in e
               for e in r["errors"]), r["errors"]
    assert any("mach" in line and "reload" in line for line in b.log().splitlines())
    assert b.health()["config"]["version"] == good_version
    # 3. fixed: applies
    write_config(b, broker, extra_routes=NEW_ROUTE)
    wait_for(lambda: reload_count(b)[1]["ok"] is True, timeout=5, what="successful reload")
    assert b.health()["config"]["version"] != good_version
    assert c.recv_type("config_reloaded")["data"]["config_version"] == b.health()["config"]["version"]
    c.close()
    b.stop_clean()


def test_removed_endpoint_closes_its_clients_only(env):
    broker, start = env
    b = start(extra_endpoints="  /ws/extra: {rooms: [extra]}")
    doomed = WS(b.url("/ws/extra"))
    kept = WS(b.url("/ws/telemetry/5"))
    write_config(b, broker)  # without /ws/extra
    code = doomed.wait_close(timeout=5)
    assert code == 4001
    assert kept.recv_type("config_reloaded")
    Publisher(broker.port).publish("vehicle/5/telemetry", {"ok": True}, wait=True)
    assert kept.recv_type("telemetry_update")["data"] == {"ok": True}
    assert b.health()["connections"]["total"] == 1
    kept.close()
    b.stop_clean()


def test_sighup_and_in_place_write_trigger_reload(env):
    broker, start = env
    b = start()
    # in-place write (no rename) is seen by inotify as well
    write_config(b, broker, rename=False, extra_routes=NEW_ROUTE)
    wait_for(lambda: reload_count(b)[0] >= 1 and reload_count(b)[1]["ok"], timeout=5, what="reload")
    n = reload_count(b)[0]
    b.send_signal(signal.SIGHUP)
    wait_for(lambda: reload_count(b)[0] > n, timeout=5, what="SIGHUP reload")
    assert reload_count(b)[1]["trigger"] == "SIGHUP"


def test_restart_only_settings_are_reported_not_applied(env):
    broker, start = env
    b = start()
    text = render("z", broker_port=broker.port + 1, listen=f"127.0.0.1:{b.port}")
    text = text.replace("server: {", "server: {writer_threads: 3, ", 1)
    assert "writer_threads: 3" in text
    write_raw(b, text)
    wait_for(lambda: reload_count(b)[0] >= 1, timeout=5, what="reload")
    _, r = reload_count(b)
    assert r["ok"] is True
    assert "mqtt.port" in r["needs_restart"] and "mqtt.client_id" in r["needs_restart"]
    assert "server.writer_threads" in r["needs_restart"]
    h = b.health()
    assert h["broker"]["port"] == broker.port and h["broker"]["connected"]


def test_many_reloads_under_traffic(env):
    broker, start = env
    b = start()
    c = WS(b.url("/ws/telemetry/9"))
    pub = Publisher(broker.port)
    stop = threading.Event()

    def traffic():
        n = 0
        while not stop.is_set():
            n += 1
            pub.publish("vehicle/9/telemetry", {"n": n}, qos=0)
            time.sleep(0.002)

    t = threading.Thread(target=traffic)
    t.start()
    variants = [render("a", broker_port=broker.port, listen=f"127.0.0.1:{b.port}"),
                render("a", broker_port=broker.port, listen=f"127.0.0.1:{b.port}",
                       extra_routes=NEW_ROUTE, extra_endpoints="  /ws/more: {rooms: [more]}")]
    cid = open(b.config_path).read().split('client_id: "')[1].split('"')[0]
    variants = [v.replace(v.split('client_id: "')[1].split('"')[0], cid, 1) for v in variants]
    rounds = int(os.environ.get("TB_RELOAD_ROUNDS", "1000"))
    try:
        last = reload_count(b)[0]
        for i in range(rounds):
            with open(b.config_path, "w") as f:
                f.write(variants[i % 2])
            b.send_signal(signal.SIGHUP)
            wait_for(lambda: reload_count(b)[0] > last, timeout=5, what=f"reload {i}")
            last = reload_count(b)[0]
    finally:
        stop.set()
        t.join()
        pub.close()
    assert b.alive()
    # the client survived every reload and still receives
    Publisher(broker.port).publish("vehicle/9/telemetry", {"final": True}, wait=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = c.recv(timeout=10)
        if m["type"] == "telemetry_update" and m["data"] == {"final": True}:
            break
    else:
        pytest.fail("no delivery after the reload loop")
    c.close()
    b.stop_clean()  # exit 0, no sanitizer (leak) report
