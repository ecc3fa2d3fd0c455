"""Resume on every endpoint (issue 15, point 3): a client reconnecting to a fixed endpoint
(/ws/telemetry/{id}) with ?since=<seq>&epoch=<e> (or since=<room>:<seq>) gets exactly what
it missed instead of the room's state; a subscribe with since for the endpoint's own room
works there too. A bad since gets an error frame and the state; a foreign epoch a resync.
Real Mosquitto, real telebridge, real WebSocket clients."""
import time

import pytest

from harness import PROTO_CONFIG, wait_for


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=PROTO_CONFIG)


def tele(n):
    return {"vehicle_id": "r", "n": n}


def routed(ws, count, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        m = ws.recv(max(0.05, deadline - time.monotonic()))
        assert m["type"] != "error", m
        if "seq" in m:
            out.append(m)
    return out


def first_visit(bridge, clients, publisher, n=5):
    ws = clients(bridge.url("/ws/telemetry/r"))
    publisher.publish_many([("vehicle/r/telemetry", tele(i)) for i in range(n)])
    got = routed(ws, n)
    ws.close()
    return ws.welcome["data"]["epoch"], got[-1]["seq"]


def miss(bridge, publisher, first, count):
    before = bridge.counter("received")
    publisher.publish_many([("vehicle/r/telemetry", tele(first + i)) for i in range(count)])
    wait_for(lambda: bridge.counter("received") >= before + count, 10, what=f"{count} routed")


@pytest.mark.parametrize("form", ["seq", "room", "encoded"])
def test_url_resume_on_fixed_endpoint(bridge, clients, publisher, form):
    epoch, last = first_visit(bridge, clients, publisher)
    miss(bridge, publisher, 100, 10)
    since = {"seq": str(last), "room": f"vehicle:r:{last}", "encoded": f"vehicle%3Ar%3A{last}"}[form]
    ws = clients(bridge.url(f"/ws/telemetry/r?since={since}&epoch={epoch}"))
    got = routed(ws, 10)
    assert [m["seq"] for m in got] == list(range(last + 1, last + 11))
    assert [m["data"]["n"] for m in got] == list(range(100, 110))
    ws.expect_silence(0.3)       # no state frame, no duplicate
    publisher.publish("vehicle/r/telemetry", tele(999), wait=True)
    assert routed(ws, 1)[0]["seq"] == last + 11


def test_url_resume_with_foreign_epoch_gets_resync_then_state(bridge, clients, publisher):
    _, last = first_visit(bridge, clients, publisher)
    ws = clients(bridge.url(f"/ws/telemetry/r?since={last}&epoch=0000000000000bad"))
    rs = ws.recv_type("resync")
    assert rs["room"] == "vehicle:r" and rs["reason"] == "epoch_changed"
    state = routed(ws, 1)[0]
    assert state["seq"] == last and state["data"]["n"] == 4


@pytest.mark.parametrize("since,why", [
    ("abc", "expected <seq>"),
    ("fleet:3", "not a room of this endpoint"),
    ("vehicle:r:-1", "expected <seq>"),
    ("12345678901234567890", "expected <seq>"),
    ("", "expected <seq>"),
])
def test_bad_url_since_gets_error_then_state(bridge, clients, publisher, since, why):
    epoch, last = first_visit(bridge, clients, publisher)
    ws = clients(bridge.url(f"/ws/telemetry/r?since={since}&epoch={epoch}"))
    err = ws.recv_type("error")
    assert err["code"] == "bad_field" and why in err["message"], err
    state = routed(ws, 1)[0]
    assert state["seq"] == last
    ws.expect_silence(0.2)


def test_many_url_args_and_unknown_ones_are_harmless(bridge, clients, publisher):
    epoch, last = first_visit(bridge, clients, publisher)
    args = "&".join([f"x{i}=y" for i in range(10)] + [f"since={last}"] * 8 + [f"epoch={epoch}"])
    ws = clients(bridge.url(f"/ws/telemetry/r?{args}"))
    ws.expect_silence(0.3)       # nothing missed: nothing sent
    # more arguments than libwebsockets takes: that handshake fails, nothing else does
    with pytest.raises(Exception):
        clients(bridge.url("/ws/telemetry/r?" + "&".join(f"since={last}" for _ in range(300))))
    again = clients(bridge.url("/ws/telemetry/r"))
    assert routed(again, 1)[0]["seq"] == last


def test_subscribe_with_since_on_fixed_endpoint(bridge, clients, publisher):
    epoch, last = first_visit(bridge, clients, publisher)
    miss(bridge, publisher, 200, 3)
    ws = clients(bridge.url("/ws/telemetry/r"))
    state = routed(ws, 1)[0]
    assert state["data"]["n"] == 202
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": last},
                  "epoch": epoch, "id": 1})
    rep = ws.recv_type("subscribed")
    assert rep["id"] == 1 and rep["resumed"] == {"vehicle:r": 3}
    got = routed(ws, 3)
    assert [m["seq"] for m in got] == list(range(last + 1, last + 4))
    # still no subscriptions to other rooms here, with or without since
    ws.send_json({"type": "subscribe", "rooms": ["fleet"], "since": {"fleet": 1}, "epoch": epoch})
    assert ws.recv_type("error")["code"] == "subscriptions_disabled"
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:r"]})
    assert ws.recv_type("error")["code"] == "subscriptions_disabled"
