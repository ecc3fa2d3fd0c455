"""A burst of new vehicles into a per_topic room does not close a client that reads slowly
(issue 15: "must not trip the slow-client limit"). Found by test_fleet_snapshot's
no-gap-while-joining test, which was closed with 4008 now and then under ASan: once a
joiner's snapshot was done, each further update of another vehicle waited as a conflated
message of its own, and more than 16 x send_queue_frames of them closed the client.
A per_topic room already keeps every vehicle's newest value, so the fix sends those from
the room (the snapshot cursor resumes) instead of holding one per vehicle for the client.

Here: a client that joined, then stopped reading (tiny receive buffer), and 6,000 vehicles
with 2 KB reports (12 MB, beyond the kernel's socket buffers) on a route with
slow_client: conflate and a 32-frame queue. It must still be open, then read every
vehicle's newest value once, seqs growing. Real Mosquitto, bridge and clients."""
import json
import time

import pytest

import harness
from harness import RawStuckClient, wait_for

VEHICLES = 6000
CONFIG = harness.CORE_CONFIG.split("endpoints:")[0].replace("send_queue_frames: 256", "send_queue_frames: 32") \
    + """\
endpoints:
  /ws/fleet: {rooms: [fleet]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: [fleet]
    type: telemetry_update
    keep_last: per_topic
    keep_last_max: 20000
    slow_client: conflate
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=CONFIG)


def test_burst_of_new_vehicles_does_not_close_a_slow_reader(bridge, publisher):
    stuck = RawStuckClient(bridge.port, "/ws/fleet", rcvbuf=4096)
    try:
        wait_for(lambda: bridge.endpoint_counts()["/ws/fleet"] == 1, what="client connected")
        pad = "x" * 2000
        for rnd in (0, 1):   # every vehicle twice: the client must end with round 1 of each
            publisher.publish_many([(f"vehicle/v{v}/telemetry", {"v": v, "round": rnd, "pad": pad})
                                    for v in range(VEHICLES)])
        wait_for(lambda: bridge.counter("received") >= 2 * VEHICLES, 30, what="every report received")
        assert bridge.endpoint_counts()["/ws/fleet"] == 1, "the slow reader was closed"
        newest, last = {}, 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (len(newest) == VEHICLES and set(newest.values()) == {1}):
            for op, payload in stuck.read_frames(timeout=1, until_close=False):
                assert op == 1, (op, payload[:80])   # a close frame here is the bug
                m = json.loads(payload.decode("utf-8"))
                if m["type"] != "telemetry_update":
                    continue
                assert m["seq"] > last, f"seq {m['seq']} after {last}"
                last = m["seq"]
                assert newest.get(m["data"]["v"], -1) <= m["data"]["round"]
                newest[m["data"]["v"]] = m["data"]["round"]
        assert len(newest) == VEHICLES and set(newest.values()) == {1}, \
            f"{len(newest)} vehicles, rounds {set(newest.values())}"
    finally:
        stuck.close()
