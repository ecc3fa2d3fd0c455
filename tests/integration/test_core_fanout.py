"""Bridge core, fan-out and payloads (issue 2): 50 clients in one room each get every
message exactly once and in order; non-JSON payloads become JSON strings (or are dropped
per route), invalid UTF-8 is replaced with U+FFFD so every frame is valid UTF-8; a 1 MB
payload does not disturb other traffic.

Real Mosquitto, the real telebridge, real WebSocket clients (harness.py, conftest.py).
Every text frame a harness.WS receives is decoded as strict UTF-8.
"""
import json
import os
import re
import socket
import struct
import threading

import pytest

import harness
from harness import mqtt_pub, wait_for


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


# The bridge runs lws on a libev (epoll) loop; TB_EVENT_LOOP=poll selects lws' own poll()
# loop, the fallback when the libev plugin is missing. The end-of-batch writes of 50
# clients are shared by up to 'writer_threads' threads (none: the service thread alone;
# auto: one less than the CPUs).
# Every combination must deliver the same.
@pytest.mark.parametrize("event_loop,writer_threads",
                         [("libev", 1), ("poll", 1), ("libev", 0), ("libev", 4), ("libev", "auto")])
def test_fifty_clients_one_room_every_message_once_in_order(broker, bridges, publisher, event_loop,
                                                           writer_threads):
    config = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                         f"  max_connections: 1000\n  writer_threads: {writer_threads}\n", 1)
    assert f"writer_threads: {writer_threads}" in config
    br = bridges(broker.port, config=config, env={"TB_EVENT_LOOP": event_loop})
    assert br.health()["event_loop"] == event_loop
    want = min(max(len(os.sched_getaffinity(0)) - 1, 0), 16) if writer_threads == "auto" else writer_threads
    assert thread_names(br.pid).count("tb-writer") == want
    assert br.health()["writer_threads"] == want
    n_clients, n_msgs = 50, 200
    conns = []
    try:
        for _ in range(n_clients):
            conns.append(harness.WS(br.url("/ws/telemetry/7")))
        assert br.endpoint_counts()["/ws/telemetry/{vehicle_id}"] == n_clients
        results = [None] * n_clients
        errors = []

        def reader(k):
            try:
                results[k] = [conns[k].recv(30) for _ in range(n_msgs)]
            except Exception as e:  # reported below
                errors.append(f"client {k}: {e!r}")

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(n_clients)]
        for t in threads:
            t.start()
        publisher.publish_many([("vehicle/7/telemetry", {"n": i, "pad": "x" * 100}) for i in range(n_msgs)])
        for t in threads:
            t.join(60)
        assert not errors, errors[:5]
        for k, msgs in enumerate(results):
            assert [m["data"]["n"] for m in msgs] == list(range(n_msgs)), f"client {k}: data out of order"
            assert [m["seq"] for m in msgs] == list(range(1, n_msgs + 1)), f"client {k}: seq gaps"
            assert all(m["type"] == "telemetry_update" and m["room"] == "vehicle:7"
                       and m["topic"] == "vehicle/7/telemetry" for m in msgs)
        for c in conns[:5]:
            c.expect_silence(0.2)  # nothing delivered twice
        h = br.health()["messages"]
        assert h["conflated"] == 0 and h["dropped"] == 0, h
        assert h["received"] == n_msgs
    finally:
        for c in conns:
            c.close()


def test_clients_reset_mid_fanout_do_not_disturb_the_others(broker, bridges, publisher):
    """Half of a room's clients reset their connections (RST, no close frame) between
    bursts that the end-of-batch writes (shared with the writer threads) send to all of
    them: the other half get every message once and in order, the reset connections are
    cleaned up, and the bridge keeps running (the fixture checks its exit and its
    sanitizer log)."""
    config = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                         "  max_connections: 1000\n  writer_threads: 2\n", 1)
    br = bridges(broker.port, config=config)
    n_clients, bursts, per_burst = 40, 3, 100
    conns = [harness.WS(br.url("/ws/telemetry/9")) for _ in range(n_clients)]
    survivors, victims = conns[: n_clients // 2], conns[n_clients // 2:]
    results = [None] * len(survivors)
    errors = []

    def reader(k):
        try:
            results[k] = [survivors[k].recv(30)["data"]["n"] for _ in range(bursts * per_burst)]
        except Exception as e:  # reported below
            errors.append(f"survivor {k}: {e!r}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(len(survivors))]
    try:
        for t in threads:
            t.start()
        for b in range(bursts):
            publisher.publish_many([("vehicle/9/telemetry", {"n": b * per_burst + i, "pad": "r" * 300})
                                    for i in range(per_burst)])
            if b == 0:
                for v in victims:
                    v.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    v.ws.sock.close()
        for t in threads:
            t.join(60)
        assert not errors, errors[:5]
        for k, got in enumerate(results):
            assert got == list(range(bursts * per_burst)), f"survivor {k}: lost or reordered"
        wait_for(lambda: br.endpoint_counts()["/ws/telemetry/{vehicle_id}"] == len(survivors),
                 timeout=15, what="reset connections cleaned up")
        assert br.alive()
    finally:
        for c in survivors:
            c.close()


def test_non_json_payload_delivered_as_json_string(broker, bridges, clients):
    br = bridges(broker.port)
    c = clients(br.url("/ws/telemetry/5"))
    payloads = ["hello world", '{"truncated":', 'say "hi"\\ \n\ttab', "NaN"]
    for p in payloads:
        mqtt_pub(broker.port, "vehicle/5/telemetry", p, qos=1)
    for _ in range(5):  # the same topic again: logged once per minute at most
        mqtt_pub(broker.port, "vehicle/5/telemetry", "again", qos=1)
    mqtt_pub(broker.port, "vehicle/5/telemetry", '{"json": true}', qos=1)
    got = [c.recv_type("telemetry_update") for _ in range(len(payloads) + 6)]
    assert [m["data"] for m in got] == payloads + ["again"] * 5 + [{"json": True}]
    assert [m["seq"] for m in got] == list(range(1, len(got) + 1))
    assert br.counter("non_json") == len(payloads) + 5
    warnings = [line for line in br.log().splitlines() if "not JSON" in line and "vehicle/5/telemetry" in line]
    assert len(warnings) == 1, warnings
    assert br.alive()


def test_non_json_dropped_on_drop_route(broker, bridges, clients):
    br = bridges(broker.port)
    c = clients(br.url("/ws/raw/a"))
    mqtt_pub(broker.port, "raw/a", "not json at all", qos=1)
    mqtt_pub(broker.port, "raw/a", b"\xff\xfe binary", qos=1)
    mqtt_pub(broker.port, "raw/a", '{"kept": 1}', qos=1)
    m = c.recv_type("raw_update")
    assert m["data"] == {"kept": 1}
    c.expect_silence(0.3)
    assert br.counter("non_json") == 2


def test_invalid_utf8_replaced_and_frames_stay_valid(broker, bridges, clients):
    br = bridges(broker.port)
    c = clients(br.url("/ws/telemetry/6"))
    cases = [
        (b"abc\xff\xfedef", r"abc\ufffd+def"),
        (b"x\xed\xa0\x80y", r"x\ufffd+y"),             # UTF-16 surrogate encoded as UTF-8
        (b"\xc0\xafslash", r"\ufffd+slash"),             # overlong '/'
        (b"\xf4\x90\x80\x80big", r"\ufffd+big"),        # above U+10FFFF
        (b"tail\xe2\x82", r"tail\ufffd+"),               # truncated sequence at the end
        (b'{"k":"\xc3"}', r'\{"k":"\ufffd+"\}'),         # JSON-looking, but not UTF-8
        ("ok \u00e9\u20ac\U0001F697".encode(), "ok \u00e9\u20ac\U0001F697"),  # valid: untouched
    ]
    for raw, _ in cases:
        mqtt_pub(broker.port, "vehicle/6/telemetry", raw, qos=1)
    for raw, pattern in cases:
        m = c.recv_type("telemetry_update")  # recv() decodes the frame as strict UTF-8
        assert isinstance(m["data"], str), m
        assert re.fullmatch(pattern, m["data"]), (raw, m["data"])
    # The same bytes to a room that a second client shares: both still fine.
    c2 = clients(br.url("/ws/telemetry/6"))
    assert re.fullmatch(cases[-1][1], c2.recv_type("telemetry_update")["data"])  # keep_last
    assert br.alive()


def test_one_megabyte_payload_does_not_disturb_other_traffic(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    small = clients(br.url("/ws/telemetry/1"))
    big = clients(br.url("/ws/telemetry/2"))
    blob = "y" * (1 << 20)
    items = []
    for i in range(300):
        items.append(("vehicle/1/telemetry", {"n": i}))
        if i in (50, 150):
            items.append(("vehicle/2/telemetry", json.dumps({"blob": blob, "i": i})))
        if i == 250:
            items.append(("vehicle/2/telemetry", blob))  # 1 MB, not JSON
    publisher.publish_many(items)
    got = [small.recv_type("telemetry_update", 20) for _ in range(300)]
    assert [m["data"]["n"] for m in got] == list(range(300))
    assert [m["seq"] for m in got] == list(range(1, 301))
    b1, b2, b3 = (big.recv_type("telemetry_update", 20) for _ in range(3))
    assert b1["data"] == {"blob": blob, "i": 50} and b2["data"] == {"blob": blob, "i": 150}
    assert b3["data"] == blob
    assert [b1["seq"], b2["seq"], b3["seq"]] == [1, 2, 3]
    # A client joining now gets the 1 MB last value, and the bridge still serves.
    late = clients(br.url("/ws/telemetry/2"))
    assert late.recv_type("telemetry_update", 20)["data"] == blob
    publisher.publish("vehicle/1/telemetry", {"n": 300}, wait=True)
    assert small.recv_type("telemetry_update")["data"] == {"n": 300}
    assert br.health()["status"] == "ok"


def test_empty_payload_delivered_as_empty_string(broker, bridges, clients):
    """An empty MQTT payload (mosquitto_pub -n, common for clearing state) is not JSON:
    it is delivered as "" and the bridge keeps running."""
    br = bridges(broker.port)
    c = clients(br.url("/ws/telemetry/8"))
    mqtt_pub(broker.port, "vehicle/8/telemetry", None, qos=1)
    mqtt_pub(broker.port, "vehicle/8/telemetry", '{"after": 1}', qos=1)
    assert c.recv_type("telemetry_update")["data"] == ""
    assert c.recv_type("telemetry_update")["data"] == {"after": 1}
    assert br.alive()
