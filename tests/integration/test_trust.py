"""Issue 14, points 4, 5, 10 and the loader half of 11: what the bridge trusts from a payload,
a client and the broker, with hostile publishers and clients. Real Mosquitto and telebridge
(harness.py).

 4  a payload value selects only among the route's rooms_allowed ("simulation_mode":
    "alerts" must not reach /ws/alerts/<user>); refused ones are counted.
 5  ack rights come from the endpoint ('ack', 'identity'); "by" is never free text.
 10 retained alert states are restored only when this bridge published them ("origin",
    "sig" with alert_state.hmac_key), and at most alert_state.max_restored of them.
 11 a second YAML document and absurd durations fail --check; a room name holding U+0000
    is refused, not cut at the NUL."""
import json
import os
import subprocess
import time

import harness
from harness import PROTO_CONFIG, TELEBRIDGE

ALERT_CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-trust-@UID@"
  protocol: 5
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
endpoints:
  /ws/alerts/{user_id}:       {rooms: [alerts], ack: members, identity: user_id}
  /ws/wall:                   {rooms: [alerts], ack: none}
  /ws/anon:                   {rooms: [alerts]}
  /ws/personal:               {rooms: [personal]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", "{payload.simulation_mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
alerts:
  - name: engine_overheat
    match: vehicle/{id}/telemetry
    when: engine_metrics.temperature > 110
    clear_when: engine_metrics.temperature < 100
    severity: critical
    rooms: [alerts]
@ALERT_STATE@
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


def alert_config(state=""):
    return ALERT_CONFIG.replace("@ALERT_STATE@", state)


def next_of(ws, type_, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == type_:
            return m


def telemetry(vid="v1", temp=80.0, mode=None):
    p = {"vehicle_id": vid, "speed": 50.0, "engine_metrics": {"temperature": temp}}
    if mode is not None:
        p["simulation_mode"] = mode
    return json.dumps(p)


def raise_overheat(publisher, ws, vid="v1"):
    for _ in range(30):
        publisher.publish(f"vehicle/{vid}/telemetry", telemetry(vid, 120), wait=True)
        try:
            return next_of(ws, "alert", timeout=0.25)["data"]
        except TimeoutError:
            pass
    raise AssertionError("overheat alert never raised")


# ---- 4: the payload selects only among rooms_allowed ------------------------------------

def test_payload_cannot_steer_telemetry_into_the_alerts_room(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=alert_config())
    victim = clients(br.url("/ws/alerts/alice"))
    pool = clients(br.url("/ws/personal"))
    publisher.publish("vehicle/v9/telemetry", telemetry("v9", mode="alerts"), wait=True)
    publisher.publish("vehicle/v9/telemetry", telemetry("v9", mode="personal"), wait=True)
    assert next_of(pool, "telemetry_update")["data"]["simulation_mode"] == "personal"
    victim.expect_silence(0.5)
    assert harness.wait_for(lambda: br.counter("rooms_not_allowed") == 1, timeout=5,
                            what="refused room counted")
    assert "not in the route's rooms_allowed" in br.log()


def test_check_refuses_a_payload_room_without_rooms_allowed(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("routes:\n  - match: \"v/{id}\"\n    rooms: [\"{payload.mode|personal}\"]\n")
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{cfg}:3:12: a room of this route is chosen by the payload" in r.stderr + r.stdout


# ---- 5: ack rights from configuration -----------------------------------------------------

def test_ack_by_is_the_endpoint_identity_not_free_text(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=alert_config())
    mallory = clients(br.url("/ws/alerts/mallory"))
    alert_id = raise_overheat(publisher, mallory)["id"]

    mallory.send_json({"type": "ack_alert", "alert_id": alert_id, "by": "alice", "id": 1})
    err = next_of(mallory, "error")
    assert err["code"] == "not_allowed" and err["id"] == 1
    assert br.health()["alerts"]["acknowledged"] == 0

    mallory.send_json({"type": "ack_alert", "alert_id": alert_id, "id": 2})
    assert next_of(mallory, "acked")["id"] == 2
    assert next_of(mallory, "alert_acknowledged")["data"]["acknowledged_by"] == "mallory"


def test_ack_refused_on_an_endpoint_with_ack_none_and_anonymous_by(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=alert_config())
    wall = clients(br.url("/ws/wall"))
    anon = clients(br.url("/ws/anon"))
    alert_id = raise_overheat(publisher, wall)["id"]
    next_of(anon, "alert")

    wall.send_json({"type": "ack_alert", "alert_id": alert_id, "id": "w"})
    err = next_of(wall, "error")
    assert err["code"] == "not_allowed" and "ack: none" in err["message"]

    anon.send_json({"type": "ack_alert", "alert_id": alert_id, "by": "anyone", "id": "a"})
    assert next_of(anon, "error")["code"] == "not_allowed"
    assert br.health()["alerts"]["acknowledged"] == 0
    anon.send_json({"type": "ack_alert", "alert_id": alert_id, "id": "b"})
    assert next_of(anon, "alert_acknowledged")["data"]["acknowledged_by"] is None


# ---- 10: forged retained alert states -------------------------------------------------------

def forged_state(key, **extra):
    s = {"id": f"engine_overheat:{key}", "rule": "engine_overheat", "key": key, "state": "active",
         "severity": "critical", "message": "forged", "rooms": ["alerts"], "raised_at": 1,
         "acknowledged": False}
    s.update(extra)
    return json.dumps(s)


def publish_retained(publisher, items):
    infos = [publisher.c.publish(t, p, qos=1, retain=True) for t, p in items]
    for i in infos:
        i.wait_for_publish()


def clear_retained(publisher, topics):
    publish_retained(publisher, [(t, b"") for t in topics])


def test_forged_retained_alerts_are_not_restored(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=alert_config())
    ws = clients(br.url("/ws/alerts/ops"))
    genuine = raise_overheat(publisher, ws, "real")
    ws.close()
    br.stop_clean()

    n = 5000
    topics = [f"alerts/fk{i}/engine_overheat" for i in range(n)]
    # no origin, a foreign origin, and a copy of a genuine state's shape
    items = [(t, forged_state(f"fk{i}", **({"origin": "evil"} if i % 2 else {})))
             for i, t in enumerate(topics)]
    publish_retained(publisher, items)
    try:
        br2 = bridges(broker.port, config=alert_config())
        assert harness.wait_for(lambda: br2.health()["alerts"]["restore_refused"] == n, timeout=60,
                                what="forged states refused")
        h = br2.health()["alerts"]
        assert h["active"] == 1 and h["restored"] == 1, h
        ws2 = clients(br2.url("/ws/alerts/ops"))
        a = next_of(ws2, "alert")["data"]
        assert a["id"] == genuine["id"] and a["raised_at"] == genuine["raised_at"]
        # the log says so, rate-limited (not one line per forged state)
        assert br2.log().count("not restored: not published by this bridge") <= 10
    finally:
        clear_retained(publisher, topics)


def test_signed_states_restore_and_forged_signatures_do_not(broker, bridges, clients, publisher):
    state = "alert_state: {origin: bridge-a, hmac_key: \"${TB_TEST_HMAC}\", max_restored: 100}"
    env = {"TB_TEST_HMAC": "0123456789abcdef-test-key"}
    br = bridges(broker.port, config=alert_config(state), env=env)
    ws = clients(br.url("/ws/alerts/ops"))
    genuine = raise_overheat(publisher, ws, "signed")
    ws.close()
    br.stop_clean()
    published = json.loads(subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "alerts/signed/engine_overheat",
         "--retained-only", "-C", "1", "-W", "3"], capture_output=True, timeout=10).stdout)
    assert published["origin"] == "bridge-a" and len(published["sig"]) == 64

    # the right origin with a made-up or copied signature
    forged = [("alerts/fs1/engine_overheat", forged_state("fs1", origin="bridge-a", sig="0" * 64)),
              ("alerts/fs2/engine_overheat", forged_state("fs2", origin="bridge-a", sig=published["sig"])),
              ("alerts/fs3/engine_overheat", forged_state("fs3", origin="bridge-a"))]
    publish_retained(publisher, forged)
    try:
        br2 = bridges(broker.port, config=alert_config(state), env=env)
        assert harness.wait_for(lambda: br2.health()["alerts"]["restore_refused"] == 3, timeout=20,
                                what="forged signatures refused")
        h = br2.health()["alerts"]
        assert h["active"] == 1 and h["restored"] == 1, h
        ws2 = clients(br2.url("/ws/alerts/ops"))
        assert next_of(ws2, "alert")["data"]["id"] == genuine["id"]
    finally:
        clear_retained(publisher, [t for t, _ in forged])


def test_restored_states_are_bounded_by_max_restored(broker, bridges, clients, publisher):
    state = "alert_state: {max_restored: 2}"
    br = bridges(broker.port, config=alert_config(state))
    ws = clients(br.url("/ws/alerts/ops"))
    for vid in ("b1", "b2", "b3"):
        raise_overheat(publisher, ws, vid)
    ws.close()
    br.stop_clean()
    br2 = bridges(broker.port, config=alert_config(state))
    assert harness.wait_for(lambda: br2.health()["alerts"]["restore_refused"] == 1, timeout=20,
                            what="third state refused")
    h = br2.health()["alerts"]
    assert h["active"] == 2 and h["restored"] == 2, h
    assert "alert_state.max_restored reached" in br2.log()


# ---- 11 (loader and names) ---------------------------------------------------------------------

def check(tmp_path, text):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(text)
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stderr + r.stdout, str(cfg)


def test_check_refuses_a_second_yaml_document(tmp_path):
    rc, out, path = check(tmp_path, "heartbeat: {interval: 10s}\n---\nheartbeat: {interval: 1s}\n")
    assert rc != 0 and f"{path}:2:1: a second YAML document starts here" in out, out


def test_check_refuses_absurd_durations(tmp_path):
    rc, out, path = check(tmp_path, "heartbeat: {interval: 0.0000001ms}\n")
    assert rc != 0 and f"{path}:1:23: interval must be 0 (off) or between 100 and" in out, out
    rc, out, path = check(tmp_path, "mqtt: {reconnect_min: 1ms}\n")
    assert rc != 0 and "reconnect_min must be between 10 and" in out, out
    rc, out, path = check(tmp_path, "heartbeat: {interval: 0}\n")
    assert rc == 0, out


def test_room_name_with_nul_is_refused_not_cut(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=PROTO_CONFIG)
    ws = clients(br.url("/ws/any"))
    ws.send_text('{"type":"subscribe","rooms":["personal\\u0000junk"],"id":5}')
    err = ws.recv_type("error")
    assert err["code"] == "bad_field" and err["id"] == 5 and "U+0000" in err["message"]
    # not subscribed to "personal" (the name cut at the NUL)
    publisher.publish("vehicle/v1/telemetry", telemetry("v1"), wait=True)
    ws.expect_silence(0.5)
    # an escaped backslash followed by "u0000" is an ordinary name
    ws.send_text('{"type":"subscribe","rooms":["a\\\\u0000"],"id":6}')
    assert ws.recv_type("subscribed")["id"] == 6


def test_payload_with_nul_selects_no_room(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    pool = clients(br.url("/ws/fleet"))
    publisher.publish("vehicle/v1/telemetry",
                      '{"vehicle_id":"v1","simulation_mode":"fleet\\u0000x"}', wait=True)
    pool.expect_silence(0.5)
    assert harness.wait_for(lambda: br.counter("room_errors") == 1, timeout=5, what="counted")
