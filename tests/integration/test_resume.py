"""Resume after reconnect: a client that comes back with since {room: seq} and the same
epoch gets exactly the messages it missed, in order, then live ones (no gap, no
duplicate); when history does not reach back, or the epoch differs, it gets a resync
frame and then the room's current value."""
import time

import pytest

from harness import PROTO_CONFIG, wait_for


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=PROTO_CONFIG)


def tele(n):
    return {"vehicle_id": "r", "n": n, "speed": n}


def routed_frames(ws, count, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        m = ws.recv(max(0.05, deadline - time.monotonic()))
        assert m["type"] != "error", m
        if "seq" in m:
            out.append(m)
    return out


def first_session(bridge, clients, publisher, n=5):
    """Subscribes, sees n live messages; returns (epoch, last seq seen)."""
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"]})
    ws.recv_type("subscribed")
    publisher.publish_many([("vehicle/r/telemetry", tele(i)) for i in range(n)])
    got = routed_frames(ws, n)
    assert [m["data"]["n"] for m in got] == list(range(n))
    ws.close()
    return ws.welcome["data"]["epoch"], got[-1]["seq"]


def test_resume_gets_exactly_the_missed_messages(bridge, clients, publisher):
    epoch, last = first_session(bridge, clients, publisher)
    publisher.publish_many([("vehicle/r/telemetry", tele(100 + i)) for i in range(100)])
    wait_for(lambda: bridge.counter("received") >= 105, 10, what="100 messages routed")
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last},
                  "epoch": epoch, "id": "resume"})
    rep = ws.recv_type("subscribed")
    assert rep["id"] == "resume" and rep["resumed"] == {"vehicle:r": 100}
    got = routed_frames(ws, 100)
    assert [m["seq"] for m in got] == list(range(last + 1, last + 101))
    assert [m["data"]["n"] for m in got] == list(range(100, 200))
    ws.expect_silence(0.3)   # nothing more: no duplicate, no extra state frame
    publisher.publish("vehicle/r/telemetry", tele(999), wait=True)
    live = routed_frames(ws, 1)[0]
    assert live["seq"] == last + 101 and live["data"]["n"] == 999


def test_resume_with_nothing_missed(bridge, clients, publisher):
    epoch, last = first_session(bridge, clients, publisher)
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last},
                  "epoch": epoch})
    assert ws.recv_type("subscribed")["resumed"] == {"vehicle:r": 0}
    ws.expect_silence(0.3)
    publisher.publish("vehicle/r/telemetry", tele(7), wait=True)
    assert routed_frames(ws, 1)[0]["seq"] == last + 1


def test_too_old_seq_gets_resync_then_current_value(bridge, clients, publisher):
    epoch, last = first_session(bridge, clients, publisher)
    publisher.publish_many([("vehicle/r/telemetry", tele(1000 + i)) for i in range(250)])
    wait_for(lambda: bridge.counter("received") >= 255, 10, what="250 messages routed")
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last},
                  "epoch": epoch})
    assert ws.recv_type("subscribed")["resumed"] == {}
    rs = ws.recv_type("resync")
    assert rs["room"] == "vehicle:r" and rs["reason"] == "history_gap" and rs["seq"] == last + 250
    cur = ws.recv_type("telemetry_update")
    assert cur["data"]["n"] == 1249 and cur["seq"] == last + 250


@pytest.mark.parametrize("epoch", ["0000000000000000", None])
def test_other_epoch_gets_resync(bridge, clients, publisher, epoch):
    _, last = first_session(bridge, clients, publisher)
    ws = clients(bridge.url("/ws/connect"))
    req = {"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last}}
    if epoch:
        req["epoch"] = epoch
    ws.send_json(req)
    ws.recv_type("subscribed")
    rs = ws.recv_type("resync")
    assert rs["reason"] == "epoch_changed"
    assert ws.recv_type("telemetry_update")["seq"] == last


def test_seq_ahead_gets_resync(bridge, clients, publisher):
    epoch, last = first_session(bridge, clients, publisher)
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last + 50},
                  "epoch": epoch})
    ws.recv_type("subscribed")
    assert ws.recv_type("resync")["reason"] == "seq_ahead"


def test_restart_changes_epoch(broker, bridges, clients):
    b1 = bridges(broker.port, config=PROTO_CONFIG)
    e1 = clients(b1.url("/ws/connect")).welcome["data"]["epoch"]
    b1.stop_clean()
    b2 = bridges(broker.port, config=PROTO_CONFIG, port=b1.port)
    e2 = clients(b2.url("/ws/connect")).welcome["data"]["epoch"]
    assert e1 != e2
