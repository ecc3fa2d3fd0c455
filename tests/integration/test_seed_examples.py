"""config/examples/ (issue 15, point 7): each seed system's config, unchanged, run by the
real bridge and spoken to in that seed's message shapes: 000 personal/fleet pools routed
on simulation_mode or mode, 001 race sessions by issued id, 002 per-vehicle telemetry and
alerts, 003 subscription types and the specialized endpoints. (Seed field names such as
"timestamp" in the envelope are not configurable yet: docs/configuration.md.)
Real Mosquitto, real telebridge, real clients."""
import json
import os
import re

import pytest

from harness import SOURCE_DIR, Bridge, wait_for
from test_session import Monitor

EXAMPLES = os.path.join(SOURCE_DIR, "config", "examples")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def seed(broker, bridges):
    def start(name):
        from harness import free_port
        port = free_port()
        return bridges(broker.port, config_path=os.path.join(EXAMPLES, name), port=port,
                       env={"TB_MQTT_PORT": str(broker.port), "TB_LISTEN": f"127.0.0.1:{port}"})
    return start


def routed(ws, timeout=10.0):
    while True:
        m = ws.recv(timeout)
        assert m["type"] != "error", m
        if "seq" in m:
            return m


def test_seed000_pools(seed, clients, publisher):
    br = seed("seed000-pools.yaml")
    publisher.publish_many([(f"vehicle/v{i}/telemetry", {"vehicle_id": f"v{i}", "mode": "fleet"}) for i in range(20)]
                           + [("vehicle/p1/telemetry", {"vehicle_id": "p1", "simulation_mode": "personal"}),
                              ("vehicle/p2/telemetry", {"vehicle_id": "p2"})])
    wait_for(lambda: br.counter("received") >= 22, 10, what="22 reports")
    fleet = clients(br.url("/ws/fleet"))
    got = {routed(fleet)["data"]["vehicle_id"] for _ in range(20)}
    assert got == {f"v{i}" for i in range(20)}
    legacy = clients(br.url("/ws"))
    assert {routed(legacy)["data"]["vehicle_id"] for _ in range(2)} == {"p1", "p2"}
    fleet.expect_silence(0.2)


def test_seed001_sessions(seed, broker, clients, publisher):
    br = seed("seed001-sessions.yaml")
    mon = Monitor(broker.port, v5=True)
    try:
        sid = json.loads(mon.request("monitor/reply", "c1").payload)["session_id"]
        mon.publish(f"session/{sid}/setup", {"session_id": sid, "setup": {"track": "monza"}}, retain=True)
        mon.publish(f"session/{sid}/telemetry", {"session_id": sid, "telemetry": {"lap": 1}})
        wait_for(lambda: br.counter("received") >= 2, 10, what="setup and telemetry")
        dash = clients(br.url("/ws/connect"))
        dash.send_json({"type": "join_session", "session_id": sid, "id": "j"})
        assert dash.recv_type("session_joined")["session_id"] == sid
        assert routed(dash)["type"] == "setup_data"
        assert routed(dash)["data"]["telemetry"]["lap"] == 1
        publisher.publish("session/bogus/telemetry", {"session_id": "bogus"}, wait=True)
        dash.send_json({"type": "join_session", "session_id": "bogus"})
        assert dash.recv_type("error")["code"] == "unknown_session"
    finally:
        mon.close()


def test_seed002_vehicles_and_alerts(seed, clients, publisher):
    br = seed("seed002-vehicles.yaml")
    car = clients(br.url("/ws/telemetry/test-vehicle-123"))
    alerts = clients(br.url("/ws/alerts/user-1"))
    publisher.publish("vehicle/test-vehicle-123/telemetry",
                      {"vehicle_id": "test-vehicle-123", "speed": 65.5, "battery_metrics": {"level": 9}}, wait=True)
    m = routed(car)
    assert m["type"] == "telemetry_update" and m["data"]["speed"] == 65.5
    a = alerts.recv_type("alert")
    assert a["data"]["rule"] == "low_battery" and a["data"]["severity"] == "warning"
    # seed 002's shapes: alert time as "timestamp" (ISO 8601), heartbeat status "healthy"
    assert "raised_at" not in a["data"] and ISO.fullmatch(a["data"]["timestamp"])
    beat = car.recv(10, heartbeats=True)
    while beat["type"] != "heartbeat":
        beat = car.recv(10, heartbeats=True)
    assert beat["data"]["server_status"] == "healthy" and ISO.fullmatch(beat["data"]["timestamp"])


def test_seed003_subscriptions_and_endpoints(seed, clients, publisher):
    br = seed("seed003-logistics.yaml")
    publisher.publish("logistics/dashboard/metrics", {"total_packages": 1247, "in_transit": 892}, wait=True)
    wait_for(lambda: br.counter("received") >= 1, 10, what="metrics")
    dash = clients(br.url("/ws/dashboard"))
    assert routed(dash)["data"]["total_packages"] == 1247      # newest metrics on connect
    ws = clients(br.url("/ws/connect"))
    types = ["package_updates", "anomalies", "dashboard_metrics", "notifications",
             "map_updates", "agent_activity", "system_health"]
    ws.send_json({"type": "subscribe", "rooms": types})
    rep = ws.recv_type("subscribed")
    assert rep["rooms"] == types and rep["rejected"] == []
    routed(ws)                                                  # the metrics' state
    mapper = clients(br.url("/ws/map"))
    publisher.publish("logistics/packages/p1",
                      {"package_id": "p1", "tracking_number": "PKG123456789", "status": "in_transit"}, wait=True)
    m = routed(mapper)
    assert m["type"] == "package_update" and m["rooms"] == ["package_updates", "map_updates"]
    # the envelope as seed 003's clients read it: "timestamp", ISO 8601, no "ts"
    assert "ts" not in m and ISO.fullmatch(m["timestamp"])
    assert "ts" not in mapper.welcome and "timestamp" in mapper.welcome
    mapper.expect_silence(0.3)                                  # once, though in both rooms
    assert routed(ws)["data"]["tracking_number"] == "PKG123456789"
    ws.expect_silence(0.2)
    # seed 003's own request shape (request_alias), and hostile variants of it
    alias = clients(br.url("/ws/connect"))
    alias.send_json({"type": "subscribe", "data": {"subscription_type": "package_updates"}, "id": 1})
    rep = alias.recv_type("subscribed")
    assert rep["id"] == 1 and rep["rooms"] == ["package_updates"]
    routed(alias)                                                # p1's newest, kept by package_id
    alias.send_json({"type": "subscribe", "data": {"subscription_types": ["anomalies", "secrets"]}})
    rep = alias.recv_type("subscribed")
    assert rep["rooms"] == ["anomalies"] and rep["rejected"] == [{"room": "secrets", "code": "not_allowed"}]
    for bad in ({"subscription_type": 5}, {"subscription_types": "x"}, {"subscription_types": [1]}, "x"):
        alias.send_json({"type": "subscribe", "data": bad})
        assert alias.recv_type("error")["code"] == "bad_field"
    alias.send_json({"type": "unsubscribe", "data": {"subscription_type": "anomalies"}})
    assert alias.recv_type("unsubscribed")["rooms"] == ["anomalies"]
    for path in ("/ws/packages", "/ws/agents"):
        assert clients(br.url(path)).welcome["type"] == "welcome"
