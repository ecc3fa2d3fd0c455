"""Issue 17: WebSocket clients publish to MQTT through their endpoint's publish rules, and
commands wait for the vehicle's reply. Real Mosquitto, real telebridge, real telesim
(harness.py); MQTT observers and responders are paho clients in this process.

Refused publishes (wrong type, wrong vehicle, too large, too fast, retain not allowed,
topic injection with '/', '+', '#', forged sender) get an error frame and reach no MQTT
subscriber; accepted ones carry the sender the bridge sets. Request/response runs against
telesim over MQTT 5 and 3.1.1, and a command nobody answers times out."""
import json
import os
import queue
import subprocess
import threading
import time

import pytest

import harness
from harness import TELEBRIDGE

TELESIM = os.path.join(os.path.dirname(TELEBRIDGE), "..", "simulator", "telesim")

UPLINK_CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-uplink-@UID@"
  protocol: @PROTO@
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
endpoints:
  /ws/control/{vehicle_id}/{user_id}:
    rooms: ["vehicle:{vehicle_id}"]
    identity: user_id
    publish:
      - type: command
        topic: "vehicle/{vehicle_id}/cmd/{data.command}"
        max_bytes: 512
        fields: [command, args]
        required: [command]
        rate: {per_second: 1, burst: 8}
        reply: {timeout: 3s}
  /ws/fleet/{user_id}:
    rooms: [fleet]
    publish:
      - type: command
        topic: "vehicle/{data.vehicle_id}/cmd/{data.command}"
        allow_topics: ["vehicle/v1/*", "vehicle/v2/*"]
        fields: [vehicle_id, command, args]
      - type: note
        topic: "notes/{user_id}"
        qos: 0
      - type: pin
        topic: "pins/{user_id}"
        retain: true
      - type: ask
        topic: "ask/{user_id}"
        reply: {timeout: 10s}
  /ws/device/{vehicle_id}:
    rooms: []
    publish:
      - type: telemetry
        topic: "vehicle/{vehicle_id}/telemetry"
        qos: 0
        max_bytes: 8k
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/watch:                  {rooms: [fleet]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}"]
    type: telemetry_update
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


def uplink_config(proto=5):
    return UPLINK_CONFIG.replace("@PROTO@", str(proto))


class Sniffer:
    """A paho MQTT 5 client that records every message on 'filters' (topic, payload,
    user properties); optionally answers commands like a vehicle would."""

    def __init__(self, port, filters=("#",), answer=False):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        self._props = lambda: Properties(PacketTypes.PUBLISH)
        self.got = queue.Queue()
        self.answer = answer
        self.c = mqtt.Client(client_id=f"tb-sniff-{os.getpid()}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        ready = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, qos=1) for t in filters]
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if not ready.wait(10):
            raise TimeoutError("sniffer could not subscribe")

    def _on_message(self, c, u, msg):
        p = msg.properties
        user = dict(getattr(p, "UserProperty", []) or [])
        rt = getattr(p, "ResponseTopic", None)
        cd = getattr(p, "CorrelationData", None)
        if msg.topic.startswith("telebridge/"):
            return
        self.got.put((msg.topic, msg.payload, user, msg.retain, rt, cd))
        if self.answer and rt:
            props = self._props()
            props.CorrelationData = cd
            c.publish(rt, json.dumps({"ok": True, "echo": json.loads(msg.payload)}), qos=1,
                      properties=props)

    def next(self, timeout=10.0):
        return self.got.get(timeout=timeout)

    def expect_nothing(self, duration=0.5):
        try:
            m = self.got.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected MQTT message {m}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def sniffer(broker):
    s = []

    def make(*filters, answer=False):
        x = Sniffer(broker.port, filters or ("#",), answer=answer)
        s.append(x)
        return x

    yield make
    for x in s:
        x.close()


def frame(ws, type_, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == type_:
            return m


def error_of(ws, req):
    ws.send_json(req)
    m = frame(ws, "error")
    assert m.get("id") == req.get("id"), m
    return m


# ---- accepted publishes carry the bridge's sender ------------------------------------------

def test_command_reaches_mqtt_with_the_sender_from_the_path(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("vehicle/+/cmd/#", answer=True)
    ws = clients(br.url("/ws/control/v1/alice"))
    ws.send_json({"type": "command", "id": 1, "data": {"command": "ping", "args": {"n": 1}}})
    topic, payload, user, retain, rt, cd = mq.next()
    assert topic == "vehicle/v1/cmd/ping" and not retain
    body = json.loads(payload)
    assert rt.startswith("telebridge/tb-uplink-") and "/reply/" in rt
    # the payload carries the reply topic too, for vehicles on MQTT 3.1.1
    assert body == {"command": "ping", "args": {"n": 1}, "sender": "alice",
                    "reply_to": rt, "correlation": cd.decode()}
    assert user == {"sender": "alice"}
    reply = frame(ws, "reply")
    assert reply["id"] == 1 and reply["data"]["ok"] is True
    assert reply["data"]["echo"]["sender"] == "alice"
    h = br.health()["uplink"]
    assert h["published"] == 1 and h["replies"] == 1 and h["pending"] == 0


def test_fire_and_forget_answers_published_with_the_topic(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("notes/#")
    ws = clients(br.url("/ws/fleet/bob"))
    ws.send_json({"type": "note", "id": "n1", "data": {"text": "hello"}})
    p = frame(ws, "published")
    assert p["id"] == "n1" and p["topic"] == "notes/bob"
    topic, payload, user, _, _, _ = mq.next()
    assert topic == "notes/bob" and json.loads(payload) == {"text": "hello", "sender": "bob"}


# ---- refusals: nothing reaches MQTT --------------------------------------------------------

def test_refused_publishes_get_an_error_and_reach_no_subscriber(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("#")
    fleet = clients(br.url("/ws/fleet/mallory"))
    watch = clients(br.url("/ws/watch"))
    ctl = clients(br.url("/ws/control/v1/alice"))

    # wrong type: a type no endpoint publishes, and a type this endpoint may not send
    assert error_of(watch, {"type": "publish", "id": 1, "data": {}})["code"] == "unknown_type"
    assert error_of(watch, {"type": "command", "id": 2, "data": {"command": "horn"}})["code"] == "not_allowed"
    # wrong vehicle: outside allow_topics
    e = error_of(fleet, {"type": "command", "id": 3, "data": {"vehicle_id": "v3", "command": "horn"}})
    assert e["code"] == "not_allowed" and "allow_topics" in e["message"]
    # topic injection through a payload value
    for bad in ["v1/cmd/horn", "+", "#", "v1\u0000x", "", "v1/#", " v1", "x" * 65]:
        e = error_of(fleet, {"type": "command", "id": 4, "data": {"vehicle_id": bad, "command": "horn"}})
        assert e["code"] == "bad_field", (bad, e)
    e = error_of(ctl, {"type": "command", "id": 5, "data": {"command": "a/b"}})
    assert e["code"] == "bad_field"
    # too large (max_bytes 512)
    e = error_of(ctl, {"type": "command", "id": 6, "data": {"command": "ping", "args": {"x": "y" * 600}}})
    assert e["code"] == "too_large"
    # a field the rule does not list, a missing required field, data not an object
    assert error_of(ctl, {"type": "command", "id": 7, "data": {"command": "ping", "extra": 1}})["code"] == "bad_field"
    assert error_of(ctl, {"type": "command", "id": 8, "data": {"args": {}}})["code"] == "bad_field"
    assert error_of(ctl, {"type": "command", "id": 9, "data": "ping"})["code"] == "bad_field"
    # the sender is the bridge's, never the client's
    e = error_of(fleet, {"type": "note", "id": 10, "data": {"text": "x", "sender": "alice"}})
    assert e["code"] == "bad_field" and "set by the bridge" in e["message"]
    # retain only where the rule allows it
    e = error_of(fleet, {"type": "note", "id": 11, "data": {"text": "x"}, "retain": True})
    assert e["code"] == "not_allowed" and "retain" in e["message"]
    # a request waiting for a reply needs an id
    ctl.send_json({"type": "command", "data": {"command": "ping"}})
    assert frame(ctl, "error")["code"] == "bad_field"
    mq.expect_nothing(0.5)
    assert br.health()["uplink"]["published"] == 0

    # the retaining rule does retain, and the same client still publishes what is allowed
    fleet.send_json({"type": "pin", "id": 12, "data": {"at": 1}, "retain": True})
    assert frame(fleet, "published")["topic"] == "pins/mallory"
    assert mq.next()[0] == "pins/mallory"
    late = sniffer("pins/#")                 # a retained message reaches a later subscriber
    topic, payload, _, retain, _, _ = late.next()
    assert topic == "pins/mallory" and retain and json.loads(payload)["sender"] == "mallory"


def test_a_path_capture_cannot_carry_a_wildcard(broker, bridges, clients, sniffer):
    """The path is URL-decoded: %2B is '+', %23 is '#', a '+' is a space."""
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("#")
    for path in ["/ws/control/v%2B/alice", "/ws/control/v%23/alice", "/ws/control/v+/alice",
                 "/ws/control/v%09/alice"]:
        ws = clients(br.url(path))
        e = error_of(ws, {"type": "command", "id": 1, "data": {"command": "ping"}})
        assert e["code"] == "bad_field", (path, e)
    mq.expect_nothing(0.3)


def test_too_fast_is_rate_limited_per_connection(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("vehicle/+/cmd/#", answer=True)
    ws = clients(br.url("/ws/control/v2/alice"))
    other = clients(br.url("/ws/control/v2/bob"))
    for i in range(12):
        ws.send_json({"type": "command", "id": i, "data": {"command": "ping"}})
    answers = [frame_any(ws, ("reply", "error")) for _ in range(12)]
    limited = [a for a in answers if a["type"] == "error"]
    assert limited and all(a["code"] == "rate_limited" for a in limited)
    assert len([a for a in answers if a["type"] == "reply"]) <= 9
    # another connection has its own bucket
    other.send_json({"type": "command", "id": "o", "data": {"command": "ping"}})
    assert frame(other, "reply")["id"] == "o"
    assert br.health()["uplink"]["rate_limited"] == len(limited)


def frame_any(ws, types, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") in types:
            return m


# ---- request / response ------------------------------------------------------------------

def test_timeout_and_a_closed_connection_frees_its_pending_requests(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("vehicle/+/cmd/#")          # hears, never answers
    ws = clients(br.url("/ws/control/v9/alice"))
    ws.send_json({"type": "command", "id": "t", "data": {"command": "ping"}})
    mq.next()
    e = frame(ws, "error")
    assert e["code"] == "timeout" and e["id"] == "t"
    gone = clients(br.url("/ws/control/v9/bob"))
    gone.send_json({"type": "command", "id": 1, "data": {"command": "ping"}})
    mq.next()
    assert br.health()["uplink"]["pending"] == 1
    gone.close()
    harness.wait_for(lambda: br.health()["uplink"]["pending"] == 0, timeout=5, what="pending freed")
    assert br.health()["uplink"]["timeouts"] == 1


def test_a_reply_goes_to_the_requesting_connection_only(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    sniffer("vehicle/+/cmd/#", answer=True)
    a = clients(br.url("/ws/control/v1/alice"))
    b = clients(br.url("/ws/control/v1/bob"))
    a.send_json({"type": "command", "id": 7, "data": {"command": "horn"}})
    assert frame(a, "reply")["data"]["echo"]["sender"] == "alice"
    b.send_json({"type": "ping", "id": "p"})
    assert frame_any(b, ("pong", "reply"))["type"] == "pong"


def telesim(port, proto, prefix):
    return harness.Proc("telesim", [TELESIM, "--port", str(port), "--vehicles", "2", "--rate", "5",
                                    "--protocol", str(proto), "--id-prefix", prefix, "--commands"])


@pytest.mark.parametrize("proto", [5, 311])
def test_commands_answered_by_telesim(broker, bridges, clients, proto):
    br = bridges(broker.port, config=uplink_config(proto))
    sim = telesim(broker.port, proto, f"p{proto}-")
    try:
        ws = clients(br.url(f"/ws/control/p{proto}-00001/alice"))
        harness.wait_for(lambda: "answering commands" in sim.log(), timeout=10, what="telesim subscribed")
        ws.send_json({"type": "command", "id": 1, "data": {"command": "ping"}})
        r = frame(ws, "reply")
        assert r["id"] == 1 and r["data"]["ok"] is True and r["data"]["command"] == "ping"
        assert r["data"]["vehicle_id"] == f"p{proto}-00001" and r["data"]["sender"] == "alice"
        ws.send_json({"type": "command", "id": 2, "data": {"command": "request_diagnostics"}})
        d = frame(ws, "reply")["data"]
        assert d["ok"] is True and "diagnostics" in d and "speed" in d["diagnostics"]
        ws.send_json({"type": "command", "id": 3, "data": {"command": "set_rate", "args": {"rate": 2.5}}})
        assert frame(ws, "reply")["data"]["ok"] is True
        ws.send_json({"type": "command", "id": 4, "data": {"command": "set_rate", "args": {"rate": -1}}})
        r = frame(ws, "reply")["data"]
        assert r["ok"] is False and r["error"]
        ws.send_json({"type": "command", "id": 5, "data": {"command": "horn"}})
        assert frame(ws, "reply")["data"]["ok"] is True
        ws.send_json({"type": "command", "id": 6, "data": {"command": "selfdestruct"}})
        r = frame(ws, "reply")["data"]
        assert r["ok"] is False and "unknown command" in r["error"]
    finally:
        sim.stop()


# ---- device clients: telemetry over WebSocket, routed through the broker ----------------------

def test_device_telemetry_reaches_a_dashboard_on_another_bridge(broker, bridges, clients):
    dev_bridge = bridges(broker.port, config=uplink_config())
    dash_bridge = bridges(broker.port, config=uplink_config())
    dash = clients(dash_bridge.url("/ws/telemetry/car7"))
    dev = clients(dev_bridge.url("/ws/device/car7"))
    dev.send_json({"type": "telemetry", "data": {"speed": 42.5, "vehicle_id": "car7"}})
    m = frame(dash, "telemetry_update")
    assert m["data"]["speed"] == 42.5 and m["data"]["sender"] == "car7"
    assert m["topic"] == "vehicle/car7/telemetry"
    # a device cannot publish another vehicle's telemetry: the topic is its own path's
    other = clients(dash_bridge.url("/ws/telemetry/car8"))
    dev.send_json({"type": "telemetry", "data": {"speed": 1, "vehicle_id": "car8"}})
    assert frame(dash, "telemetry_update")["data"]["speed"] == 1
    other.expect_silence(0.3)


# ---- --check ---------------------------------------------------------------------------------

def test_check_reports_bad_publish_rules(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        "endpoints:\n"
        "  /ws/c/{vehicle_id}:\n"
        "    rooms: []\n"
        "    publish:\n"
        "      - type: command\n"
        "        topic: \"vehicle/{vehicle}/cmd/{data.command}\"\n"
        "      - type: x\n"
        "        topic: \"vehicle/+/cmd\"\n"
        "      - type: ping\n"
        "        topic: a/b\n"
        "      - type: y\n"
        "        topic: telebridge/x/reply/1\n"
        "      - {type: y, topic: a, rate: {burst: 3}, qos: 2}\n")
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    out = r.stderr + r.stdout
    assert r.returncode != 0
    assert f"{cfg}:6:25: publish topic names {{vehicle}}: not a capture of the endpoint path" in out
    assert "must not contain the MQTT wildcard '+'" in out
    assert "publish type 'ping' is a request the bridge handles itself" in out
    assert "is reserved (telebridge/" in out
    assert "duplicate publish type 'y'" in out
    assert "rate needs 'per_second'" in out
    assert "qos must be between 0 and 1" in out


def test_uplink_frames_match_the_json_schema(broker, bridges, clients, sniffer):
    """Publishes, replies, and their refusals validate against docs/protocol.schema.json."""
    jsonschema = pytest.importorskip("jsonschema")
    from harness import SOURCE_DIR
    with open(os.path.join(SOURCE_DIR, "docs", "protocol.schema.json")) as f:
        schema = json.load(f)
    client_v = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/client_message"})
    server_v = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/server_message"})
    br = bridges(broker.port, config=uplink_config())
    sniffer("vehicle/+/cmd/#", answer=True)
    ctl = clients(br.url("/ws/control/v1/alice"))
    fleet = clients(br.url("/ws/fleet/bob"))
    requests = [(ctl, {"type": "command", "id": 1, "data": {"command": "ping"}}),
                (fleet, {"type": "note", "id": "n", "data": {"text": "hi"}}),
                (fleet, {"type": "note", "id": "r", "data": {"text": "hi"}, "retain": True})]
    for ws, r in requests:
        client_v.validate(r)
        ws.send_json(r)
    assert not client_v.is_valid({"type": "note", "data": {"sender": "x"}})
    got = [frame(ctl, "reply"), frame(fleet, "published"), frame(fleet, "error")]
    for f in got:
        server_v.validate(f)


# ---- chat in the example config ------------------------------------------------------------

def example_bridge(bridges, broker):
    from harness import SOURCE_DIR, free_port
    port = free_port()
    return bridges(broker.port, port=port, config_path=os.path.join(SOURCE_DIR, "config", "telebridge.yaml"),
                   env={"TB_MQTT_PORT": str(broker.port), "TB_LISTEN": f"127.0.0.1:{port}",
                        "TB_MQTT_CLIENT_ID": f"tb-example-{port}"})   # two of them on one broker


def test_chat_between_users_on_two_bridges(broker, bridges, clients):
    a_br, b_br = example_bridge(bridges, broker), example_bridge(bridges, broker)
    alice = clients(a_br.url("/ws/chat/alice"))
    bob = clients(b_br.url("/ws/chat/bob"))
    assert bob.welcome["data"]["rooms"] == ["chat:bob"]
    alice.send_json({"type": "chat", "id": 1, "data": {"to": "bob", "text": "hi bob"}})
    assert frame(alice, "published")["topic"] == "chat/user/bob"
    m = frame(bob, "chat_message")
    assert m["room"] == "chat:bob" and m["data"] == {"to": "bob", "text": "hi bob", "sender": "alice"}
    # groups: joined by subscription, only chatgroup:* rooms
    bob.send_json({"type": "subscribe", "rooms": ["chatgroup:ops"], "id": "s"})
    assert frame(bob, "subscribed")["rooms"] == ["chatgroup:ops"]
    bob.send_json({"type": "subscribe", "rooms": ["chat:alice"], "id": "t"})
    assert frame(bob, "subscribed")["rejected"][0]["code"] == "not_allowed"
    alice.send_json({"type": "chat_group", "data": {"group": "ops", "text": "standup"}})
    m = frame(bob, "chat_message")
    assert m["room"] == "chatgroup:ops" and m["data"]["sender"] == "alice"
    # no impersonation, no injection into another user's topic level
    assert error_of(alice, {"type": "chat", "id": 2, "data": {"to": "bob", "text": "x", "sender": "carol"}})["code"] == "bad_field"
    assert error_of(alice, {"type": "chat", "id": 3, "data": {"to": "bob/#", "text": "x"}})["code"] == "bad_field"
    assert error_of(alice, {"type": "chat", "id": 4, "data": {"to": "bob"}})["code"] == "bad_field"


def test_a_binary_reply_arrives_as_a_string_and_a_second_one_is_stray(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("vehicle/+/cmd/#")
    ws = clients(br.url("/ws/control/v1/alice"))
    ws.send_json({"type": "command", "id": "b", "data": {"command": "ping"}})
    rt = mq.next()[4]
    mq.c.publish(rt, b"\xff\xfeok", qos=1).wait_for_publish()
    r = frame(ws, "reply")
    assert r["id"] == "b" and isinstance(r["data"], str) and r["data"].endswith("ok")
    mq.c.publish(rt, b"{\"again\":1}", qos=1).wait_for_publish()
    mq.c.publish(rt.rsplit("/", 1)[0] + "/zz", b"{}", qos=1).wait_for_publish()
    harness.wait_for(lambda: br.health()["uplink"]["stray_replies"] == 2, timeout=5, what="stray replies")
    ws.expect_silence(0.3)


def test_a_311_vehicle_answers_a_bridge_on_mqtt5(broker, bridges, clients):
    """Mixed versions: the bridge speaks MQTT 5, the vehicle 3.1.1 (it sees no properties)."""
    br = bridges(broker.port, config=uplink_config(5))
    sim = telesim(broker.port, 311, "mix-")
    try:
        ws = clients(br.url("/ws/control/mix-00002/alice"))
        harness.wait_for(lambda: "answering commands" in sim.log(), timeout=10, what="telesim subscribed")
        ws.send_json({"type": "command", "id": "m", "data": {"command": "horn"}})
        r = frame(ws, "reply")
        assert r["id"] == "m" and r["data"]["honked"] is True and r["data"]["vehicle_id"] == "mix-00002"
    finally:
        sim.stop()


def test_reload_changes_the_rules_and_keeps_pending_commands(broker, bridges, clients, sniffer):
    import signal
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("vehicle/+/cmd/#")              # hears, never answers
    ctl = clients(br.url("/ws/control/v1/alice"))
    fleet = clients(br.url("/ws/fleet/bob"))
    ctl.send_json({"type": "command", "id": "before", "data": {"command": "ping"}})
    mq.next()
    text = open(br.config_path).read()
    text = text.replace("      - type: note\n        topic: \"notes/{user_id}\"\n        qos: 0\n", "")
    text = text.replace("max_bytes: 512", "max_bytes: 100")
    with open(br.config_path, "w") as f:
        f.write(text)
    br.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: br.health()["config"]["reload"].get("count", 0) >= 1, timeout=10, what="reload")
    assert error_of(fleet, {"type": "note", "id": 1, "data": {"text": "x"}})["code"] == "unknown_type"
    e = error_of(ctl, {"type": "command", "id": 2, "data": {"command": "ping", "args": {"x": "y" * 200}}})
    assert e["code"] == "too_large"
    # the command sent before the reload still times out (on the timeout it was sent with)
    e = frame(ctl, "error")
    assert e["id"] == "before" and e["code"] == "timeout" and "3000 ms" in e["message"]


def test_pending_commands_are_bounded_per_connection(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=uplink_config())
    mq = sniffer("ask/#")                        # hears, never answers
    ws = clients(br.url("/ws/fleet/bob"))
    for i in range(16):
        ws.send_json({"type": "ask", "id": i, "data": {}})
    for _ in range(16):
        mq.next()
    e = error_of(ws, {"type": "ask", "id": 16, "data": {}})
    assert e["code"] == "too_many_pending"
    mq.expect_nothing(0.3)
    other = clients(br.url("/ws/fleet/carol"))     # the bound is per connection
    other.send_json({"type": "ask", "id": "c", "data": {}})
    assert mq.next()[0] == "ask/carol"
    assert br.health()["uplink"]["pending"] == 17
    ws.close()
    harness.wait_for(lambda: br.health()["uplink"]["pending"] == 1, timeout=5, what="pending freed")


# ---- with access control (issue 13): the sender is the token's subject ----------------------

AUTH_SECRET = "uplink-test-secret-0123456789abcdef0123"

AUTH_UPLINK_CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-uplink-auth-@UID@"
  protocol: 5
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
auth:
  issuers:
    - {issuer: test-hs, audience: telebridge, hs256_secret: "${TB_TEST_UPLINK_SECRET}"}
  rooms:
    - {room: "vehicle:{id}", claim: vehicles}
endpoints:
  /ws/control/{vehicle_id}/{user_id}:
    rooms: ["vehicle:{vehicle_id}"]
    identity: user_id
    auth: required
    require: {vehicle_id: vehicles, user_id: sub}
    publish:
      - {type: command, topic: "vehicle/{vehicle_id}/cmd/{data.command}", fields: [command, args]}
  /ws/cmd/{vehicle_id}:
    rooms: ["vehicle:{vehicle_id}"]
    auth: required
    require: {vehicle_id: vehicles}
    publish:
      - {type: command, topic: "vehicle/{vehicle_id}/cmd/{data.command}", fields: [command, args]}
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


def hs_token(sub, vehicles):
    jwt = pytest.importorskip("jwt")
    body = {"sub": sub, "vehicles": vehicles, "iss": "test-hs", "aud": "telebridge",
            "exp": int(time.time()) + 600}
    return jwt.encode(body, AUTH_SECRET, algorithm="HS256")


def refused_close(url):
    """The first frame and the close code of a connection the bridge refuses; it tries to
    publish a command first (which must not reach MQTT). recv_frame: no automatic close
    reply (the bridge may have dropped the socket already)."""
    raw = harness._ws_module().create_connection(url, timeout=10)
    try:
        try:
            raw.send(json.dumps({"type": "command", "id": 9, "data": {"command": "unlock"}}))
        except OSError:
            pass    # already closed by the bridge
        first = json.loads(raw.recv_frame().data)
        while True:
            f = raw.recv_frame()
            if f.opcode == 0x8:
                return first, int.from_bytes(f.data[:2], "big") if len(f.data) >= 2 else None
    finally:
        raw.shutdown()


def test_with_access_control_the_sender_is_the_token_subject(broker, bridges, clients, sniffer):
    br = bridges(broker.port, config=AUTH_UPLINK_CONFIG, env={"TB_TEST_UPLINK_SECRET": AUTH_SECRET},
                 wait_broker=False)
    # with an auth section, anonymous /health is the status only
    harness.wait_for(lambda: br.health().get("status") == "ok", timeout=15, what="broker")
    mq = sniffer("vehicle/+/cmd/#")
    carol = hs_token("carol", ["v1"])
    ws = clients(br.url("/ws/cmd/v1") + "?token=" + carol)
    ws.send_json({"type": "command", "id": 1, "data": {"command": "horn"}})
    topic, payload, user, retain, rt, cd = mq.next()
    assert topic == "vehicle/v1/cmd/horn"
    assert json.loads(payload)["sender"] == "carol" and user == {"sender": "carol"}
    # the path capture cannot name someone else: require binds it to the token's subject
    first, code = refused_close(br.url("/ws/control/v1/mallory") + "?token=" + carol)
    assert first["type"] == "error" and first["code"] == "forbidden" and code == 4403
    # nor a vehicle the token does not hold
    first, code = refused_close(br.url("/ws/cmd/v2") + "?token=" + carol)
    assert first["code"] == "forbidden" and code == 4403
    # no token: unauthorized, and nothing reached MQTT from any of them
    first, code = refused_close(br.url("/ws/cmd/v1"))
    assert first["code"] == "unauthorized" and code == 4401
    ok = clients(br.url("/ws/control/v1/carol") + "?token=" + carol)
    ok.send_json({"type": "command", "id": 2, "data": {"command": "ping"}})
    topic, payload, *_ = mq.next()
    # the next message on MQTT is this one: none of the refused connections published
    assert topic == "vehicle/v1/cmd/ping" and json.loads(payload)["sender"] == "carol"
