"""Bridge core, slow consumers (issue 2): a client that never reads does not delay a fast
client in the same room, and the bridge's memory stays bounded (conflate policy); on a
'slow_client: disconnect' route the stuck client is closed with 4008 instead.

Real Mosquitto, the real telebridge, real WebSocket clients; the stuck client is a raw
socket with a tiny receive buffer that completes the handshake and then never reads.
"""
import time

import harness
from harness import RawStuckClient, wait_for


def json_frames(frames):
    import json
    return [json.loads(p.decode("utf-8")) for op, p in frames if op == 1]


def test_stuck_client_does_not_slow_others_and_memory_stays_bounded(broker, bridges, clients, publisher):
    # A small ASan quarantine, so freed frames are not counted as growth (no effect
    # without the sanitizer build).
    br = bridges(broker.port, asan_options="quarantine_size_mb=4:detect_leaks=1")
    fast = clients(br.url("/ws/telemetry/1"))
    stuck = RawStuckClient(br.port, "/ws/telemetry/1")
    try:
        wait_for(lambda: br.endpoint_counts()["/ws/telemetry/{vehicle_id}"] == 2, what="2 connections")
        pad = "z" * 16000
        # 12800 messages of ~16 kB = ~205 MB offered to each client, in batches that fit the
        # per-connection send_queue_bytes (1 MiB): the fast client reads each batch before
        # the next is published.
        batch, batches = 50, 256
        n = 0
        rss_base = None
        worst = 0.0
        for b in range(batches):
            t0 = time.monotonic()
            publisher.publish_many([("vehicle/1/telemetry", '{"n":%d,"pad":"%s"}' % (n + i, pad))
                                    for i in range(batch)])
            for i in range(batch):
                m = fast.recv_type("telemetry_update", 10)
                assert m["data"]["n"] == n + i and m["seq"] == n + i + 1, \
                    f"fast client got n={m['data']['n']} seq={m['seq']}, expected n={n + i}"
            n += batch
            worst = max(worst, time.monotonic() - t0)
            if b == 10:
                rss_base = br.rss_kb()  # after warm-up: the stuck client's buffers are full
        rss_end = br.rss_kb()
        h = br.health()["messages"]
        print(f"rss base {rss_base} kB, end {rss_end} kB, worst batch {worst:.2f}s, {h}")
        assert worst < 8, f"a batch of {batch} took {worst:.2f}s to reach the fast client"
        assert rss_end - rss_base < 50 * 1024, f"RSS grew from {rss_base} kB to {rss_end} kB"
        assert h["conflated"] > 0, h
        assert br.endpoint_counts()["/ws/telemetry/{vehicle_id}"] == 2  # conflate never disconnects

        # Once it reads again, the stuck client catches up: frames in order, ending with the
        # newest message (conflation keeps the newest value per room).
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (seen and seen[-1].get("seq") == n):
            seen += [m for m in json_frames(stuck.read_frames(timeout=1, until_close=False))
                     if m["type"] == "telemetry_update"]
        seqs = [m["seq"] for m in seen]
        assert seqs and seqs[-1] == n, f"stuck client never got the newest message (last {seqs[-3:]})"
        assert seqs == sorted(set(seqs)), "stuck client got frames out of order or twice"
        assert len(seqs) < n, "nothing was conflated for the stuck client"
    finally:
        stuck.close()


STRICT_CONFIG = harness.CORE_CONFIG.replace("send_queue_frames: 256", "send_queue_frames: 16") \
    .replace("send_queue_bytes: 1MiB", "send_queue_bytes: 64k")


def test_slow_client_on_disconnect_route_closed_with_4008(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=STRICT_CONFIG)
    fast = clients(br.url("/ws/strict/a"))
    stuck = clients(br.url("/ws/strict/a"), rcvbuf=4096)  # never reads until the end
    # Batches that fit the send queue (16 frames, 64 kB): the fast client reads each one
    # before the next is published, the stuck one's kernel buffers fill up, then its queue.
    pad, batch = "q" * 7000, 8
    n = 0
    while br.counter("dropped") == 0:
        assert n < 5000, "the stuck client never overflowed its send queue"
        publisher.publish_many([("strict/a", '{"n":%d,"pad":"%s"}' % (n + i, pad)) for i in range(batch)])
        for i in range(batch):
            m = fast.recv_type("strict_update", 10)
            assert m["data"]["n"] == n + i, "fast client missed a message"
        n += batch
    wait_for(lambda: br.endpoint_counts()["/ws/strict/{x}"] == 1, timeout=15, what="stuck client closed")
    assert stuck.wait_close(15) == 4008
    # The fast client is still served and was never disconnected.
    publisher.publish("strict/a", {"n": n}, wait=True)
    assert fast.recv_type("strict_update")["data"] == {"n": n}
    assert br.alive()


def test_burst_across_vehicles_reaches_a_reading_fleet_client(broker, bridges, clients, publisher):
    """1000 vehicles publish at once to the fleet room. A client that reads promptly is not
    a slow client: it must see every vehicle's update (conflation, if it ever applies, may
    only replace an older value of the same vehicle/topic, never another vehicle's)."""
    br = bridges(broker.port)
    fleet = clients(br.url("/ws/fleet"))
    n = 1000
    publisher.publish_many([(f"vehicle/{i}/telemetry", {"simulation_mode": "fleet", "v": i}) for i in range(n)])
    wait_for(lambda: br.counter("received") >= n, what=f"{n} messages received")
    seen = set()
    try:
        while len(seen) < n:
            seen.add(fleet.recv_type("telemetry_update", 3)["data"]["v"])
    except TimeoutError:
        pass
    missing = sorted(set(range(n)) - seen)
    assert not missing, (f"a reading /ws/fleet client never got the update of {len(missing)} of {n} "
                         f"vehicles (e.g. {missing[:5]}); {br.health()['messages']}")
