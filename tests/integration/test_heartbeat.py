"""Heartbeats and connection health: heartbeat frames at the configured interval, WebSocket
pings answered by live clients, dead clients (TCP open, never answering) dropped after
idle_timeout, client-level ping/pong. Real Mosquitto and telebridge (harness.py)."""
import socket
import threading
import time

import harness

CONFIG = """\
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-hb-@UID@", reconnect_min: 200ms, reconnect_max: 1s}
server:
  listen: "@LISTEN@"
endpoints:
  /ws/alerts/{user}: {rooms: [alerts]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}"]
heartbeat: {interval: @INTERVAL@, ws_ping: @PING@, idle_timeout: @IDLE@}
"""


def config(interval="1s", ping="0", idle="0"):
    return CONFIG.replace("@INTERVAL@", interval).replace("@PING@", ping).replace("@IDLE@", idle)


def heartbeats(ws, duration):
    out = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        try:
            m = ws.recv(max(0.01, deadline - time.monotonic()), heartbeats=True)
        except TimeoutError:
            break
        if m["type"] == "heartbeat":
            out.append((time.monotonic(), m))
    return out


def test_heartbeats_arrive_at_the_configured_interval(broker, bridges, clients):
    br = bridges(broker.port, config=config(interval="1s"))
    ws = clients(br.url("/ws/alerts/ops"))
    assert ws.welcome["data"]["heartbeat_interval_ms"] == 1000
    got = heartbeats(ws, 3.6)
    assert 3 <= len(got) <= 4, [m for _, m in got]
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(0.7 <= g <= 1.4 for g in gaps), gaps
    d = got[-1][1]["data"]
    assert d["server_status"] == "ok" and d["broker"] == "connected"
    assert isinstance(d["timestamp"], (int, float)) and d["connections"] >= 1


def test_heartbeat_reports_broker_down(broker, bridges, clients):
    br = bridges(broker.port, config=config(interval="1s"))
    ws = clients(br.url("/ws/alerts/ops"))
    broker.stop()
    try:
        harness.wait_for(lambda: any(m["data"]["broker"] == "disconnected" for _, m in heartbeats(ws, 1.2)),
                         timeout=6, interval=0, what="a heartbeat saying the broker is down")
    finally:
        broker._start()
    harness.wait_for(lambda: any(m["data"]["broker"] == "connected" for _, m in heartbeats(ws, 1.2)),
                     timeout=10, interval=0, what="a heartbeat saying the broker is back")


def test_client_ping_gets_pong(broker, bridges, clients):
    br = bridges(broker.port, config=config(interval="0"))
    ws = clients(br.url("/ws/alerts/ops"))
    ws.send_json({"type": "ping", "id": "p1"})
    m = ws.recv_type("pong")
    assert m["id"] == "p1"


def test_dead_client_is_dropped_after_idle_timeout(broker, bridges, clients):
    br = bridges(broker.port, config=config(interval="0", ping="1s", idle="3s"))
    live = clients(br.url("/ws/alerts/live"))
    # websocket-client answers a ping while it reads: keep the live client reading
    stop = threading.Event()

    def read_live():
        while not stop.is_set():
            try:
                live.recv(0.2)
            except TimeoutError:
                pass

    reader = threading.Thread(target=read_live, daemon=True)
    reader.start()
    dead = harness.RawStuckClient(br.port, "/ws/alerts/dead", rcvbuf=65536)  # never reads, never pongs
    try:
        assert harness.wait_for(lambda: br.health()["connections"]["total"] == 2, timeout=3, what="2 connections")
        t0 = time.monotonic()
        harness.wait_for(lambda: br.health()["connections"]["total"] == 1, timeout=10,
                         what="the dead client dropped")
        waited = time.monotonic() - t0
        assert 1.5 <= waited <= 6, f"dropped after {waited:.1f}s (idle_timeout 3s)"
        # what the dead client was sent: a ping, then the connection went away
        ops = [op for op, _ in dead.read_frames(timeout=2)]
        assert 9 in ops, f"no ping was sent to the dead client: {ops}"
        # the live client kept answering pings and is still there, still served
        time.sleep(3)
        assert br.health()["connections"]["total"] == 1
    finally:
        stop.set()
        reader.join()
        dead.close()
    live.send_json({"type": "ping", "id": 1})
    assert live.recv_type("pong")["id"] == 1


def test_silent_tcp_without_handshake_is_closed(broker, bridges):
    """A socket that connects and sends nothing never becomes a WebSocket; lws's
    handshake timeout closes it."""
    br = bridges(broker.port, config=config(interval="0", ping="1s", idle="3s"))
    s = socket.create_connection(("127.0.0.1", br.port))
    s.settimeout(20)
    try:
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - t0 < 19
    finally:
        s.close()
