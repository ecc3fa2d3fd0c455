"""Protocol conformance from a client's view (docs/protocol.md): every request type, every
error code, replies echoing ids, subscriptions with patterns / allow lists / the room cap,
unsubscribe, projection (fields) and max_rate, abuse closed with 1008.

Each test starts a private Mosquitto and the real telebridge (harness.PROTO_CONFIG) and
talks to it with real WebSocket clients; logs are printed on failure (conftest.py)."""
import json
import threading
import time

import pytest

from harness import PROTO_CONFIG, WSClosed

TELEMETRY = {"vehicle_id": "v1", "speed": 50.5, "simulation_mode": "personal",
             "engine_metrics": {"temperature": 90, "rpm": 2000, "oil_pressure": 3.1},
             "battery_metrics": {"voltage": 12.6, "level": 80}}


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=PROTO_CONFIG)


def routed(ws, room, timeout=5.0):
    """The next routed frame of 'room' (skips control frames other than errors)."""
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.05, deadline - time.monotonic()))
        assert m["type"] != "error", m
        if m.get("room") == room and "seq" in m:
            return m


def test_welcome_fields(bridge, clients):
    ws = clients(bridge.url("/ws/connect"))
    d = ws.welcome["data"]
    assert d["client_subscriptions"] is True and d["rooms"] == []
    assert isinstance(d["epoch"], str) and len(d["epoch"]) == 16
    assert d["endpoint"] == "/ws/connect" and isinstance(d["connection_id"], int)
    assert isinstance(ws.welcome["ts"], int)


@pytest.mark.parametrize("rid", [7, "abc", 1.5])
def test_ping_echoes_id(bridge, clients, rid):
    ws = clients(bridge.url("/ws/personal"))
    ws.send_json({"type": "ping", "id": rid})
    pong = ws.recv_type("pong")
    assert pong["id"] == rid and isinstance(pong["ts"], int)
    ws.send_json({"type": "ping"})
    assert "id" not in ws.recv_type("pong")


@pytest.mark.parametrize("frame,code,echo", [
    ("not json", "bad_json", None),
    ('{"type":"ping"} trailing', "bad_json", None),
    ("[1,2]", "not_object", None),
    ('"str"', "not_object", None),
    ('{"type":"nope","id":3}', "unknown_type", 3),
    ('{"id":4}', "bad_field", 4),
    ('{"type":5}', "bad_field", None),
    ('{"type":"ping","id":{"x":1}}', "bad_field", None),
    ('{"type":"subscribe","id":"s","rooms":"vehicle:1"}', "bad_field", "s"),
    ('{"type":"subscribe","rooms":[1]}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"max_rate":-1}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"max_rate":"fast"}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"fields":"speed"}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"fields":["a..b"]}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"since":{"a":-1}}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"since":[1]}', "bad_field", None),
    ('{"type":"subscribe","rooms":["a"],"epoch":5}', "bad_field", None),
    ('{"type":"unsubscribe"}', "bad_field", None),
    ('{"type":"join_session","session_id":"bad id!"}', "bad_field", None),
    ('{"type":"join_session"}', "bad_field", None),
])
def test_error_codes(bridge, clients, frame, code, echo):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_text(frame)
    err = ws.recv_type("error")
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert err.get("id") == echo
    ws.send_json({"type": "ping", "id": 1})   # the connection still works
    assert ws.recv_type("pong")["id"] == 1


def test_binary_and_too_large(bridge, clients):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_binary(b"\x00\x01")
    assert ws.recv_type("error")["code"] == "binary_not_supported"
    ws.send_text(json.dumps({"type": "ping", "pad": "x" * 70000}))
    assert ws.wait_close() == 1009


def test_repeated_abuse_closes_1008(bridge, clients):
    ws = clients(bridge.url("/ws/connect"))
    codes = []
    with pytest.raises(WSClosed) as e:
        for _ in range(100):
            ws.send_text("{")
            codes.append(ws.recv(5)["code"])
    assert e.value.code == 1008
    assert len(codes) >= 10 and set(codes) == {"bad_json"}


def test_subscribe_on_endpoint_without_subscriptions(bridge, clients):
    ws = clients(bridge.url("/ws/personal"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:1"], "id": 9})
    err = ws.recv_type("error")
    assert err["code"] == "subscriptions_disabled" and err["id"] == 9
    ws.send_json({"type": "unsubscribe", "rooms": ["personal"]})
    assert ws.recv_type("error")["code"] == "subscriptions_disabled"


def test_subscribe_gets_state_then_live(bridge, clients, publisher):
    publisher.publish("vehicle/v1/setup", {"model": "kart"}, wait=True)
    publisher.publish("vehicle/v1/telemetry", dict(TELEMETRY, speed=1), wait=True)
    time.sleep(0.3)
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:v1"], "id": "a"})
    rep = ws.recv_type("subscribed")
    assert rep["id"] == "a" and rep["rooms"] == ["vehicle:v1"] and rep["rejected"] == []
    # keep_last per message type: setup and the latest telemetry, oldest first
    s = routed(ws, "vehicle:v1")
    t = routed(ws, "vehicle:v1")
    assert (s["type"], t["type"]) == ("setup_update", "telemetry_update")
    assert s["seq"] < t["seq"] and t["data"]["speed"] == 1
    for k in ("type", "room", "topic", "seq", "ts", "data"):
        assert k in t
    publisher.publish("vehicle/v1/telemetry", dict(TELEMETRY, speed=2), wait=True)
    live = routed(ws, "vehicle:v1")
    assert live["data"]["speed"] == 2 and live["seq"] == t["seq"] + 1


def test_rejections_and_cap(bridge, clients):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "id": 1,
                  "rooms": ["vehicle:a", "alerts", "", "x" * 300, "vehicle:a", "*"]})
    rep = ws.recv_type("subscribed")
    assert rep["rooms"] == ["vehicle:a"]
    codes = {r["room"]: r["code"] for r in rep["rejected"]}
    assert codes == {"alerts": "not_allowed", "": "bad_room", "x" * 300: "bad_room", "*": "not_allowed"}
    # max_rooms_per_connection is 8 in PROTO_CONFIG; vehicle:a already counts
    ws.send_json({"type": "subscribe", "rooms": [f"vehicle:{i}" for i in range(10)]})
    rep = ws.recv_type("subscribed")
    assert rep["rooms"] == [f"vehicle:{i}" for i in range(7)]
    assert [r["code"] for r in rep["rejected"]] == ["too_many_rooms"] * 3
    # re-subscribing to a room already held does not count twice
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:a"]})
    assert ws.recv_type("subscribed")["rooms"] == ["vehicle:a"]


def test_unsubscribe(bridge, clients, publisher):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["nk:1", "nk:2"]})
    ws.recv_type("subscribed")
    ws.send_json({"type": "unsubscribe", "rooms": ["nk:1", "nk:9"], "id": "u"})
    rep = ws.recv_type("unsubscribed")
    assert rep["id"] == "u" and rep["rooms"] == ["nk:1"]
    assert rep["rejected"] == [{"room": "nk:9", "code": "not_subscribed"}]
    publisher.publish("nokeep/1", {"n": 1}, wait=True)
    publisher.publish("nokeep/2", {"n": 2}, wait=True)
    m = routed(ws, "nk:2")
    assert m["data"] == {"n": 2}
    ws.expect_silence(0.5)


def test_endpoint_rooms_cannot_be_unsubscribed_but_extra_ones_can(bridge, clients):
    ws = clients(bridge.url("/ws/any"))
    ws.send_json({"type": "unsubscribe", "rooms": ["personal"]})
    assert ws.recv_type("unsubscribed")["rejected"][0]["code"] == "not_subscribed"


def test_pattern_joins_existing_and_later_rooms(bridge, clients, publisher):
    publisher.publish("vehicle/old/telemetry", dict(TELEMETRY, vehicle_id="old"), wait=True)
    time.sleep(0.3)
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:*"], "id": 1})
    assert ws.recv_type("subscribed")["rooms"] == ["vehicle:*"]
    assert routed(ws, "vehicle:old")["data"]["vehicle_id"] == "old"   # existing room's state
    publisher.publish("vehicle/new/telemetry", dict(TELEMETRY, vehicle_id="new"), wait=True)
    assert routed(ws, "vehicle:new")["data"]["vehicle_id"] == "new"   # room created later
    publisher.publish("nokeep/x", {"n": 1}, wait=True)                 # not matched
    ws.send_json({"type": "unsubscribe", "rooms": ["vehicle:*"]})
    assert ws.recv_type("unsubscribed")["rooms"] == ["vehicle:*"]
    publisher.publish("vehicle/new/telemetry", dict(TELEMETRY, vehicle_id="new"), wait=True)
    ws.expect_silence(0.5)


def test_pattern_on_room_created_by_another_client(bridge, clients, publisher):
    """A room first created by someone else's subscription is joined by the pattern too."""
    watcher = clients(bridge.url("/ws/connect"))
    watcher.send_json({"type": "subscribe", "rooms": ["nk:*"]})
    watcher.recv_type("subscribed")
    other = clients(bridge.url("/ws/connect"))
    other.send_json({"type": "subscribe", "rooms": ["nk:7"]})
    other.recv_type("subscribed")
    publisher.publish("nokeep/7", {"n": 7}, wait=True)
    assert routed(watcher, "nk:7")["data"] == {"n": 7}
    assert routed(other, "nk:7")["data"] == {"n": 7}


def test_fields_projection(bridge, clients, publisher):
    ws = clients(bridge.url("/ws/connect"))
    full = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:p"],
                  "fields": ["speed", "engine_metrics.temperature", "missing.field"]})
    ws.recv_type("subscribed")
    full.send_json({"type": "subscribe", "rooms": ["vehicle:p"]})
    full.recv_type("subscribed")
    publisher.publish("vehicle/p/telemetry", TELEMETRY, wait=True)
    m = routed(ws, "vehicle:p")
    assert m["data"] == {"speed": 50.5, "engine_metrics": {"temperature": 90}}
    assert m["type"] == "telemetry_update" and m["topic"] == "vehicle/p/telemetry"
    f = routed(full, "vehicle:p")
    assert f["data"] == TELEMETRY and f["seq"] == m["seq"]


def test_max_rate_sends_newest(bridge, clients, publisher):
    """A 50 Hz room with max_rate 2: about 2 frames per second, each the newest value."""
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:fast"], "max_rate": 2})
    ws.recv_type("subscribed")
    sent_at = {}
    done = threading.Event()

    def pump():   # 50 Hz on an absolute schedule, 4 s
        t0 = time.monotonic()
        for n in range(200):
            delay = t0 + n * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent_at[n] = time.monotonic()
            publisher.publish("vehicle/fast/telemetry", dict(TELEMETRY, speed=n), qos=0)
        done.set()

    th = threading.Thread(target=pump)
    th.start()
    got = []
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        try:
            m = ws.recv(0.1)
        except TimeoutError:
            continue
        if m.get("room") == "vehicle:fast":
            got.append((time.monotonic(), m))
    th.join()
    assert done.is_set()
    speeds = [m["data"]["speed"] for _, m in got]
    assert 7 <= len(got) <= 10, speeds          # 4 s at 2/s (+ the first at once, + the tail)
    assert speeds == sorted(speeds)
    assert speeds[-1] == 199                     # the final value is never lost
    for t, m in got[:-1]:
        # the newest at send time: published at most ~2 periods (+ delivery) earlier
        assert t - sent_at[m["data"]["speed"]] < 0.15, (m["data"]["speed"], speeds)
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert min(gaps) > 0.4, gaps                 # never faster than max_rate


def test_resubscribe_changes_shape(bridge, clients, publisher):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:s"], "fields": ["speed"]})
    ws.recv_type("subscribed")
    publisher.publish("vehicle/s/telemetry", TELEMETRY, wait=True)
    assert routed(ws, "vehicle:s")["data"] == {"speed": 50.5}
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:s"]})
    ws.recv_type("subscribed")
    publisher.publish("vehicle/s/telemetry", TELEMETRY, wait=True)
    assert routed(ws, "vehicle:s")["data"] == TELEMETRY


def test_nothing_reaches_other_clients(bridge, clients):
    bystander = clients(bridge.url("/ws/connect"))
    bad = clients(bridge.url("/ws/connect"))
    for frame in ["{", "[]", '{"type":"x"}', '{"type":"subscribe","rooms":["*"]}']:
        bad.send_text(frame)
    bystander.expect_silence(0.5)


def test_frames_match_the_json_schema(bridge, clients, publisher):
    """Every request sent and every frame received here validates against
    docs/protocol.schema.json (skipped when python3-jsonschema is not installed)."""
    jsonschema = pytest.importorskip("jsonschema")
    import os
    from harness import SOURCE_DIR
    with open(os.path.join(SOURCE_DIR, "docs", "protocol.schema.json")) as f:
        schema = json.load(f)
    client_v = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/client_message"})
    server_v = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/server_message"})
    publisher.publish("vehicle/j/telemetry", TELEMETRY, wait=True)
    ws = clients(bridge.url("/ws/connect"))
    frames = [ws.welcome]
    epoch = ws.welcome["data"]["epoch"]
    requests = [
        {"type": "ping", "id": 1},
        {"type": "subscribe", "rooms": ["vehicle:j", "vehicle:*", "alerts"], "fields": ["speed"], "id": "s"},
        {"type": "subscribe", "rooms": ["vehicle:j"], "since": {"vehicle:j": 0}, "epoch": epoch},
        {"type": "unsubscribe", "rooms": ["vehicle:*", "nope"]},
        {"type": "join_session", "session_id": "nope"},
        {"type": "leave_session", "session_id": "nope"},
        {"type": "bogus"},
    ]
    for r in requests:
        if r["type"] != "bogus":
            client_v.validate(r)
        ws.send_json(r)
    try:
        while True:
            frames.append(ws.recv(0.5, heartbeats=True))
    except TimeoutError:
        pass
    assert {f["type"] for f in frames} >= {"welcome", "pong", "subscribed", "unsubscribed",
                                           "error", "telemetry_update"}
    for f in frames:
        server_v.validate(f)
