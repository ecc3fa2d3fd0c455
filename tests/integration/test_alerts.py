"""Alerts end to end: real Mosquitto, the real telebridge, real WebSocket clients.

Each test writes a config with short durations (for: 1s, inactive_for: 1s) so the whole
file runs in well under a minute. The alert rules' state machine itself is covered by
tests/unit/test_alert.c; these tests check the wiring: rooms, joins, acks, MQTT retained
state, last wills, restarts.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import harness

CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-alrt-@UID@"
  protocol: 5
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
endpoints:
  /ws/alerts/{user}:          {rooms: [alerts]}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/both/{vehicle_id}:      {rooms: [alerts, "vehicle:{vehicle_id}"]}
  /ws/none:                   {rooms: [elsewhere]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}"]
    type: telemetry_update
alerts:
  - name: engine_overheat
    match: vehicle/{id}/telemetry
    when: engine_metrics.temperature > 110
    for: 1s
    clear_when: engine_metrics.temperature < 100
    severity: critical
    message: "Engine temperature {engine_metrics.temperature} C on vehicle {id}"
    rooms: [alerts, "vehicle:{id}"]
  - name: vehicle_offline
    match: vehicle/{id}/telemetry
    inactive_for: @INACTIVE@
    severity: warning
    message: "Vehicle {id} went quiet"
    rooms: [alerts, "vehicle:{id}"]
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


def config(inactive="1h"):
    return CONFIG.replace("@INACTIVE@", inactive)


def telemetry(temp):
    return json.dumps({"vehicle_id": "v1", "speed": 50.0, "engine_metrics": {"temperature": temp}})


def frames(ws, duration, types=None):
    """Every non-heartbeat frame (of the given types) received within 'duration' seconds."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            m = ws.recv(left)
        except TimeoutError:
            return out
        if types is None or m.get("type") in types:
            out.append(m)


def next_of(ws, type_, timeout=10.0):
    """The next frame of 'type_', skipping others (telemetry)."""
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == type_:
            return m


def retained(port, topic, timeout=2.0):
    """The retained payload on 'topic' (bytes), or None when nothing is retained."""
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                        "--retained-only", "-C", "1", "-W", str(int(max(1, timeout)))],
                       capture_output=True, timeout=timeout + 5)
    return r.stdout.rstrip(b"\n") if r.stdout else None


def hold_overheat(publisher, seconds, vid="v1", temp=120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish(f"vehicle/{vid}/telemetry", telemetry(temp), wait=True)
        time.sleep(0.2)


def raise_overheat(publisher, ws):
    """Holds 120 C until the alert frame arrives on ws; returns it."""
    for _ in range(30):
        publisher.publish("vehicle/v1/telemetry", telemetry(120), wait=True)
        try:
            return next_of(ws, "alert", timeout=0.25)
        except TimeoutError:
            pass
    raise AssertionError("overheat alert never raised")


def test_overheat_held_raises_exactly_one_alert_and_clears_below_threshold(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config())
    room_alerts = clients(br.url("/ws/alerts/ops"))
    room_vehicle = clients(br.url("/ws/telemetry/v1"))
    both = clients(br.url("/ws/both/v1"))

    hold_overheat(publisher, 0.5)
    assert frames(room_alerts, 0.1, {"alert"}) == [], "raised before 'for' elapsed"
    hold_overheat(publisher, 2.0)   # well past for: 1s; still above 110

    got = frames(room_alerts, 0.5, {"alert"})
    assert len(got) == 1, got
    a = got[0]["data"]
    assert a["id"] == "engine_overheat:v1"
    assert a["rule"] == a["type"] == "engine_overheat"
    assert a["severity"] == "critical" and a["state"] == "active"
    assert a["key"] == "v1" and a["value"] == 120
    assert a["message"] == "Engine temperature 120 C on vehicle v1"
    assert a["acknowledged"] is False and isinstance(a["raised_at"], (int, float))
    assert a["rooms"] == ["alerts", "vehicle:v1"]
    assert isinstance(got[0]["ts"], (int, float))
    # every room of the alert is told, a member of both rooms only once
    assert [m["data"]["id"] for m in frames(room_vehicle, 0.3, {"alert"})] == ["engine_overheat:v1"]
    assert [m["data"]["id"] for m in frames(both, 0.3, {"alert"})] == ["engine_overheat:v1"]

    h = br.health()["alerts"]
    assert h["active"] == 1 and h["raised"] == 1, h

    # published retained for other systems
    ret = json.loads(retained(broker.port, "alerts/v1/engine_overheat"))
    assert ret["id"] == "engine_overheat:v1" and ret["state"] == "active"

    # hysteresis: 105 C is below 'when' but not below clear_when
    publisher.publish("vehicle/v1/telemetry", telemetry(105), wait=True)
    assert frames(room_alerts, 0.5, {"alert", "alert_cleared"}) == []
    publisher.publish("vehicle/v1/telemetry", telemetry(95), wait=True)
    for ws in (room_alerts, room_vehicle, both):
        c = next_of(ws, "alert_cleared")["data"]
        assert c["id"] == "engine_overheat:v1" and c["state"] == "cleared"
        assert c["reason"] == "condition cleared" and c["cleared_at"]
        assert frames(ws, 0.2, {"alert_cleared"}) == []
    assert harness.wait_for(lambda: retained(broker.port, "alerts/v1/engine_overheat", 1) is None,
                            timeout=5, what="retained alert cleared")
    h = br.health()["alerts"]
    assert h["active"] == 0 and h["cleared"] == 1, h
    # the alert state coming back from the broker is not counted as stray telemetry
    m = br.health()["messages"]
    assert m["unrouted"] == 0 and m["non_json"] == 0, m


def test_late_joiner_gets_the_active_alert(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config())
    first = clients(br.url("/ws/alerts/ops"))
    raised = raise_overheat(publisher, first)["data"]

    late = clients(br.url("/ws/alerts/late"))
    a = next_of(late, "alert", timeout=3)["data"]
    assert a["id"] == raised["id"] and a["raised_at"] == raised["raised_at"]
    late_both = clients(br.url("/ws/both/v1"))
    assert [m["data"]["id"] for m in frames(late_both, 0.5, {"alert"})] == [raised["id"]]
    outsider = clients(br.url("/ws/none"))
    assert frames(outsider, 0.5, {"alert"}) == []


def test_ack_reaches_every_client_in_the_rooms(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config())
    a1 = clients(br.url("/ws/alerts/alice"))
    a2 = clients(br.url("/ws/alerts/bob"))
    veh = clients(br.url("/ws/telemetry/v1"))
    outsider = clients(br.url("/ws/none"))
    alert_id = raise_overheat(publisher, a1)["data"]["id"]
    for ws in (a2, veh):
        assert next_of(ws, "alert")["data"]["id"] == alert_id

    a1.send_json({"type": "ack_alert", "alert_id": alert_id, "by": "alice", "id": 7})
    reply = next_of(a1, "acked")
    assert reply["id"] == 7 and reply["alert_id"] == alert_id and reply["already_acknowledged"] is False
    for ws in (a1, a2, veh):
        m = next_of(ws, "alert_acknowledged")["data"]
        assert m["id"] == alert_id and m["acknowledged"] is True
        assert m["acknowledged_by"] == "alice" and m["acknowledged_at"] and m["state"] == "active"
    assert frames(outsider, 0.3, {"alert_acknowledged"}) == []
    ret = json.loads(retained(broker.port, "alerts/v1/engine_overheat"))
    assert ret["acknowledged"] is True and ret["acknowledged_by"] == "alice"

    # acknowledging again is harmless and announces nothing
    a2.send_json({"type": "ack_alert", "alert_id": alert_id, "id": "again"})
    assert next_of(a2, "acked")["already_acknowledged"] is True
    assert frames(a1, 0.3, {"alert_acknowledged"}) == []

    # a joiner sees the acknowledged state
    late = clients(br.url("/ws/alerts/carol"))
    assert next_of(late, "alert")["data"]["acknowledged"] is True

    # errors: unknown id, bad field, not a member of the alert's rooms
    a1.send_json({"type": "ack_alert", "alert_id": "engine_overheat:nope", "id": 8})
    e = next_of(a1, "error")
    assert e["code"] == "unknown_alert" and e["id"] == 8
    a1.send_json({"type": "ack_alert", "id": 9})
    e = next_of(a1, "error")
    assert e["code"] == "bad_field" and e["id"] == 9
    a1.send_json({"type": "ack_alert", "alert_id": 42})
    assert next_of(a1, "error")["code"] == "bad_field"
    outsider.send_json({"type": "ack_alert", "alert_id": alert_id})
    assert next_of(outsider, "error")["code"] == "not_allowed"


WILL_CLIENT = textwrap.dedent("""\
    import json, sys, time
    import paho.mqtt.client as mqtt
    port, vid = int(sys.argv[1]), sys.argv[2]
    c = mqtt.Client(client_id="dev-" + vid)
    c.will_set(f"vehicle/{vid}/status", "offline", qos=1, retain=True)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    c.publish(f"vehicle/{vid}/status", "online", qos=1, retain=True).wait_for_publish()
    c.publish(f"vehicle/{vid}/telemetry", json.dumps({"engine_metrics": {"temperature": 90}}),
              qos=1).wait_for_publish()
    print("ready", flush=True)
    time.sleep(600)
""")


def test_killed_publisher_last_will_raises_vehicle_offline(broker, bridges, clients, tmp_path):
    br = bridges(broker.port, config=config(inactive="1h"))
    ws = clients(br.url("/ws/alerts/ops"))
    script = tmp_path / "device.py"
    script.write_text(WILL_CLIENT)
    dev = harness.Proc("device", [sys.executable, str(script), str(broker.port), "d7"])
    try:
        harness.wait_for(lambda: "ready" in dev.log(), timeout=10, what="device connected")
        assert frames(ws, 0.5, {"alert"}) == []
        dev.kill()   # SIGKILL: no DISCONNECT, the broker publishes the will
        a = next_of(ws, "alert", timeout=5)["data"]
        assert a["id"] == "vehicle_offline:d7" and a["severity"] == "warning"
        assert a["rooms"] == ["alerts", "vehicle:d7"]
    finally:
        dev.stop()
    # the device comes back: its telemetry clears the alert
    harness.mqtt_pub(broker.port, "vehicle/d7/telemetry", json.dumps({"speed": 1}))
    c = next_of(ws, "alert_cleared", timeout=5)["data"]
    assert c["id"] == "vehicle_offline:d7" and c["reason"] == "telemetry resumed"


def test_inactivity_raises_and_new_telemetry_clears(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config(inactive="1s"))
    ws = clients(br.url("/ws/alerts/ops"))
    t0 = time.monotonic()
    publisher.publish("vehicle/v5/telemetry", telemetry(80), wait=True)
    a = next_of(ws, "alert", timeout=5)["data"]
    waited = time.monotonic() - t0
    assert a["id"] == "vehicle_offline:v5"
    assert 0.9 <= waited <= 3.0, waited
    assert frames(ws, 1.5, {"alert"}) == [], "raised twice"
    publisher.publish("vehicle/v5/telemetry", telemetry(80), wait=True)
    c = next_of(ws, "alert_cleared", timeout=5)["data"]
    assert c["id"] == "vehicle_offline:v5" and c["reason"] == "telemetry resumed"


def test_alerts_survive_a_bridge_restart_through_retained_messages(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config())
    ws = clients(br.url("/ws/alerts/ops"))
    raised = raise_overheat(publisher, ws)["data"]
    ws.send_json({"type": "ack_alert", "alert_id": raised["id"], "by": "ops"})
    next_of(ws, "alert_acknowledged")
    ws.close()
    br.stop_clean()

    watch = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "alerts/#",
                              "-v", "-R"], stdout=subprocess.PIPE)   # -R: live messages only
    try:
        time.sleep(0.3)
        br2 = bridges(broker.port, config=config())
        ws2 = clients(br2.url("/ws/alerts/ops"))
        a = next_of(ws2, "alert", timeout=5)["data"]
        assert a["id"] == raised["id"] and a["raised_at"] == raised["raised_at"]
        assert a["acknowledged"] is True and a["acknowledged_by"] == "ops"
        assert frames(ws2, 0.5, {"alert"}) == []
        assert "raised engine_overheat:v1" not in br2.log()
        assert "restored engine_overheat:v1" in br2.log()
        # the restored alert is live: going below the threshold clears it
        publisher.publish("vehicle/v1/telemetry", telemetry(95), wait=True)
        c = next_of(ws2, "alert_cleared", timeout=5)["data"]
        assert c["id"] == raised["id"]
        time.sleep(0.5)
    finally:
        watch.send_signal(signal.SIGTERM)
        out = watch.communicate(timeout=5)[0].decode()
    # the restarted bridge did not re-publish the alert as a new raise, only the clear
    assert out.strip() == "alerts/v1/engine_overheat (null)" or out.strip() == "alerts/v1/engine_overheat", out


def test_bridge_status_online_retained_and_offline_on_shutdown(broker, bridges):
    br = bridges(broker.port, config=config())
    topic = f"telebridge/tb-alrt-{os.getpid()}-{harness.Bridge._uid}/status"
    assert harness.wait_for(lambda: retained(broker.port, topic, 1) == b"online", timeout=5, what="online")
    br.stop_clean()
    assert retained(broker.port, topic) == b"offline"


def test_bridge_killed_leaves_offline_by_last_will(broker, bridges):
    br = bridges(broker.port, config=config())
    topic = f"telebridge/tb-alrt-{os.getpid()}-{harness.Bridge._uid}/status"
    assert harness.wait_for(lambda: retained(broker.port, topic, 1) == b"online", timeout=5, what="online")
    br.kill()
    assert harness.wait_for(lambda: retained(broker.port, topic, 1) == b"offline", timeout=5,
                            what="will published")


def test_reload_removing_a_rule_clears_its_alerts(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config())
    ws = clients(br.url("/ws/alerts/ops"))
    alert_id = raise_overheat(publisher, ws)["data"]["id"]
    text = open(br.config_path).read()
    start = text.index("  - name: engine_overheat")
    end = text.index("  - name: vehicle_offline")
    tmp = br.config_path + ".new"
    with open(tmp, "w") as f:
        f.write(text[:start] + text[end:])
    os.rename(tmp, br.config_path)   # an atomic replace, as editors do
    c = next_of(ws, "alert_cleared", timeout=10)["data"]
    assert c["id"] == alert_id and c["reason"] == "rule removed"
    assert harness.wait_for(lambda: retained(broker.port, "alerts/v1/engine_overheat", 1) is None,
                            timeout=5, what="retained alert cleared")
    # the rule is gone: more heat raises nothing
    hold_overheat(publisher, 1.5)
    assert frames(ws, 0.5, {"alert"}) == []
