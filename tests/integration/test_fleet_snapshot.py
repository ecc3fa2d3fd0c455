"""Fleet views that open complete (issue 15, point 1): a pool room with keep_last: per_topic
(or {by: payload.vehicle_id}) keeps the newest message of every vehicle, and a client that
joins gets all of them right after welcome, seqs only growing, then live frames with no gap
and no duplicate. The snapshot is paced into the joiner's queue: a joiner with a small
queue and slow_client: disconnect is not closed, and a joiner that does not read does not
hold back the others.

Real Mosquitto, real telebridge, real WebSocket clients."""
import json
import time

import pytest

import harness
from harness import RawStuckClient, wait_for

CONFIG = harness.CORE_CONFIG.split("endpoints:")[0].replace("send_queue_frames: 256", "send_queue_frames: 32") \
    + """\
endpoints:
  /ws/fleet:        {rooms: [fleet]}
  /ws/personal:     {rooms: [personal]}
  /ws/byid:         {rooms: [byid]}
  /ws/small:        {rooms: [small]}
  /ws/strict:       {rooms: [strict]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["{payload.simulation_mode|payload.mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
    keep_last: per_topic
    keep_last_max: 20000
  - match: strict/{id}
    rooms: [strict]
    type: strict_update
    keep_last: per_topic
    slow_client: disconnect
  - match: byid/{anything}
    rooms: [byid]
    type: position
    keep_last: {by: payload.vehicle_id}
  - match: small/{id}
    rooms: [small]
    type: small_update
    keep_last: per_topic
    keep_last_max: 50
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=CONFIG)


def report(publisher, vehicles, mode="fleet", rnd=0):
    publisher.publish_many([(f"vehicle/{v}/telemetry",
                             {"simulation_mode": mode, "v": v, "round": rnd}) for v in range(vehicles)])


def routed(ws, count, timeout=20.0):
    """The next 'count' routed frames; seqs must only grow."""
    out, last = [], 0
    deadline = time.monotonic() + timeout
    while len(out) < count:
        m = ws.recv(max(0.05, deadline - time.monotonic()))
        assert m["type"] != "error", m
        if "seq" in m:
            assert m["seq"] > last, f"seq {m['seq']} after {last}"
            last = m["seq"]
            out.append(m)
    return out


def test_joiner_sees_every_vehicle_at_once(bridge, clients, publisher):
    report(publisher, 200)
    report(publisher, 30, mode="personal")
    wait_for(lambda: bridge.counter("received") >= 230, 10, what="230 reports routed")
    ws = clients(bridge.url("/ws/fleet"))
    got = routed(ws, 200)
    assert sorted(m["data"]["v"] for m in got) == list(range(200))
    assert all(m["room"] == "fleet" and m["type"] == "telemetry_update" for m in got)
    ws.expect_silence(0.3)      # once each: no duplicate, no personal vehicle
    publisher.publish("vehicle/7/telemetry", {"simulation_mode": "fleet", "v": 7, "round": 1}, wait=True)
    live = routed(ws, 1)[0]
    assert live["seq"] == max(m["seq"] for m in got) + 1 and live["data"]["round"] == 1
    personal = clients(bridge.url("/ws/personal"))
    assert sorted(m["data"]["v"] for m in routed(personal, 30)) == list(range(30))


def test_newest_value_per_vehicle_and_no_gap_while_joining(bridge, clients, publisher):
    report(publisher, 3000)
    wait_for(lambda: bridge.counter("received") >= 3000, 20, what="3000 reports routed")
    ws = clients(bridge.url("/ws/fleet"))
    # updates while the snapshot is on its way: each vehicle ends at its newest round
    report(publisher, 3000, rnd=1)
    newest = {}
    last = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (len(newest) == 3000 and all(r == 1 for r in newest.values())):
        m = ws.recv(10)
        assert m["seq"] > last
        last = m["seq"]
        assert newest.get(m["data"]["v"], -1) <= m["data"]["round"]
        newest[m["data"]["v"]] = m["data"]["round"]
    assert len(newest) == 3000 and set(newest.values()) == {1}


def test_small_queue_joiner_with_disconnect_policy_is_not_closed(bridge, clients, publisher):
    # 5000 vehicles into a queue of 32 frames on a slow_client: disconnect route
    publisher.publish_many([(f"strict/{v}", {"v": v}) for v in range(5000)])
    wait_for(lambda: bridge.counter("received") >= 5000, 20, what="5000 reports routed")
    ws = clients(bridge.url("/ws/strict"))
    got = routed(ws, 5000, timeout=30)
    assert len({m["data"]["v"] for m in got}) == 5000
    ws.expect_silence(0.3)
    assert bridge.counter("dropped") == 0


def test_stuck_joiner_does_not_hold_back_others(bridge, clients, publisher):
    report(publisher, 5000)
    wait_for(lambda: bridge.counter("received") >= 5000, 20, what="5000 reports routed")
    stuck = RawStuckClient(bridge.port, "/ws/fleet", rcvbuf=4096)
    try:
        wait_for(lambda: bridge.endpoint_counts()["/ws/fleet"] == 1, what="stuck client connected")
        other = clients(bridge.url("/ws/fleet"))
        assert len(routed(other, 5000, timeout=30)) == 5000
        publisher.publish("vehicle/1/telemetry", {"simulation_mode": "fleet", "v": 1, "round": 9}, wait=True)
        assert routed(other, 1)[0]["data"]["round"] == 9
        # the stuck joiner is still connected, and reads all of it once it drains
        assert bridge.endpoint_counts()["/ws/fleet"] == 2
        seen = set()
        deadline = time.monotonic() + 30
        while len(seen) < 5000 and time.monotonic() < deadline:
            for op, payload in stuck.read_frames(timeout=1, until_close=False):
                m = json.loads(payload.decode("utf-8"))
                if m["type"] == "telemetry_update":
                    seen.add(m["data"]["v"])
        assert len(seen) == 5000
    finally:
        stuck.close()


def test_fallback_chain_routes_on_mode_too(bridge, clients, publisher):
    # seed 000 sends "mode" where its text says "simulation_mode" (issue 15, point 4)
    fleet = clients(bridge.url("/ws/fleet"))
    publisher.publish_many([("vehicle/1/telemetry", {"mode": "fleet", "v": 1, "round": 0}),
                            ("vehicle/2/telemetry", {"simulation_mode": "fleet", "mode": "personal", "v": 2, "round": 0}),
                            ("vehicle/3/telemetry", {"mode": "alerts", "v": 3, "round": 0})])
    assert sorted(m["data"]["v"] for m in routed(fleet, 2)) == [1, 2]
    fleet.expect_silence(0.3)
    assert bridge.counter("rooms_not_allowed") == 1   # "alerts" is no pool


def test_keep_last_by_payload_field(bridge, clients, publisher):
    publisher.publish_many([
        ("byid/gps", {"vehicle_id": "a", "n": 1}),
        ("byid/can", {"vehicle_id": "a", "n": 2}),      # same vehicle, other topic: replaces
        ("byid/gps", {"vehicle_id": 42, "n": 3}),       # numbers are keys too
        ("byid/gps", {"vehicle_id": {"x": 1}, "n": 4}),  # hostile: an object is no key
        ("byid/gps", {"n": 5}),                          # missing: delivered, not kept
        ("byid/gps", "not json"),
    ])
    wait_for(lambda: bridge.counter("received") >= 6, 10, what="6 messages routed")
    ws = clients(bridge.url("/ws/byid"))
    got = routed(ws, 2)
    assert [m["data"]["n"] for m in got] == [2, 3]
    ws.expect_silence(0.3)


def test_keep_last_max_keeps_the_newest(bridge, clients, publisher):
    publisher.publish_many([(f"small/{i}", {"i": i}) for i in range(60)])
    wait_for(lambda: bridge.counter("received") >= 60, 10, what="60 messages routed")
    ws = clients(bridge.url("/ws/small"))
    got = routed(ws, 50)
    assert [m["data"]["i"] for m in got] == list(range(10, 60))
    ws.expect_silence(0.3)
