"""Bridge core, slow consumers (issue 2): a client that never reads does not delay a fast
client in the same room, and the bridge's memory stays bounded (conflate policy); on a
'slow_client: disconnect' route the stuck client is closed with 4008 instead.

Real Mosquitto, the real telebridge, real WebSocket clients; the stuck client is a raw
socket with a tiny receive buffer that completes the handshake and then never reads.
"""
import time

import harness
from harness import RawStuckClient, WSClosed, wait_for


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


MIXED_CONFIG = STRICT_CONFIG.replace("  /ws/strict/{x}:", "  /ws/mix/{x}:                {rooms: [\"mix:{x}\"]}\n  /ws/strict/{x}:") \
    .replace("routes:\n", "routes:\n  - match: mixc/{x}\n    rooms: [\"mix:{x}\"]\n    type: conflatable\n"
             "    slow_client: conflate\n  - match: mixd/{x}\n    rooms: [\"mix:{x}\"]\n    type: must_deliver\n"
             "    slow_client: disconnect\n", 1)


def test_disconnect_route_message_never_silently_conflated(broker, bridges, clients, publisher):
    """A room fed by a conflate route (telemetry) and a disconnect route (e.g. alerts): when
    a slow client already has a conflated value pending, a message of the disconnect route
    must not take its place (a later telemetry value would then silently replace it). It is
    delivered, or the client is closed with 4008 to resync."""
    br = bridges(broker.port, config=MIXED_CONFIG)
    fast = clients(br.url("/ws/mix/a"))
    stuck = clients(br.url("/ws/mix/a"), rcvbuf=4096)
    pad, batch, n = "c" * 7000, 8, 0
    while br.counter("conflated") == 0:
        assert n < 5000, "the stuck client never overflowed its send queue"
        publisher.publish_many([("mixc/a", '{"n":%d,"pad":"%s"}' % (n + i, pad)) for i in range(batch)])
        for i in range(batch):
            assert fast.recv_type("conflatable", 10)["data"]["n"] == n + i
        n += batch
    publisher.publish("mixd/a", {"alert": "overheat"}, wait=True)
    publisher.publish("mixc/a", {"n": n, "pad": pad}, wait=True)
    assert fast.recv_type("must_deliver")["data"] == {"alert": "overheat"}
    assert fast.recv_type("conflatable")["data"]["n"] == n
    # Drain the stuck client: it must see the alert or a 4008 close.
    types = []
    try:
        while True:
            types.append(stuck.recv(2)["type"])
    except WSClosed as e:
        assert e.code == 4008, e
        return
    except TimeoutError:
        pass
    assert "must_deliver" in types, "the disconnect-route message was silently conflated away"

