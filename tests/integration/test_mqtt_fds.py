"""MQTT connection above FD_SETSIZE: the broker restarts while 1,100 WebSocket clients are
connected, so the bridge's new broker socket gets a descriptor number of 1024 or more.

libmosquitto's own network thread (mosquitto_loop_start) uses select(), which cannot take
such a descriptor (the fortified libc aborts the process on FD_SET, or the loop gives up);
the bridge's own MQTT thread uses poll(). The bridge must stay up, reconnect, and deliver.

Real Mosquitto (stopped and started again on the same port), the real telebridge, plain
sockets doing the WebSocket handshake as idle clients, one real WebSocket client, and
mosquitto_pub.
"""
import base64
import os
import resource
import socket

import pytest

from harness import CORE_CONFIG, mqtt_pub, wait_for

N_IDLE = 1100
CONFIG = CORE_CONFIG.replace("max_connections: 1000", "max_connections: 5000") \
    .replace("heartbeat: {interval: 1s, ws_ping: 0, idle_timeout: 0}",
             "heartbeat: {interval: 30s, ws_ping: 0, idle_timeout: 0}")


@pytest.fixture
def many_fds():
    """Raises this process's soft RLIMIT_NOFILE (the bridge inherits it, and raises its own
    soft limit to the hard one anyway)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * N_IDLE + 400
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port, n, path="/ws/personal", batch=100):
    """n WebSocket connections that only do the handshake (and then never read)."""
    socks = []
    while len(socks) < n:
        group = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            group.append(s)
        for s in group:
            resp = b""
            while b"\r\n\r\n" not in resp:
                chunk = s.recv(4096)
                assert chunk, "connection closed during the WebSocket handshake"
                resp += chunk
            assert resp.startswith(b"HTTP/1.1 101"), resp[:200]
        socks.extend(group)
    return socks


def broker_socket_fds(pid, broker_port):
    """The bridge's descriptors that are TCP connections to the broker's port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    rport = int(fields[2].rsplit(":", 1)[1], 16)
                    if rport == broker_port and fields[3] == "01":  # ESTABLISHED
                        inodes.add(fields[9])
        except FileNotFoundError:
            pass
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            fds.append(int(fd))
    return fds


def test_broker_reconnect_with_socket_above_fd_setsize(many_fds, broker, bridges, clients):
    br = bridges(broker.port, config=CONFIG)
    idle = []
    try:
        # First, while this process's descriptors are low: the WebSocket client library
        # may select() (paho's loop does, hence mosquitto_pub below).
        veh = clients(br.url("/ws/telemetry/7"))
        idle = open_idle(br.port, N_IDLE)
        wait_for(lambda: br.health()["connections"]["total"] >= N_IDLE + 1, timeout=30,
                 what="all WebSocket clients counted")
        before = br.health()["broker"]["disconnects"]

        broker.stop()
        wait_for(lambda: not br.health()["broker"]["connected"], timeout=15,
                 what="broker disconnected in /health")
        # The old broker socket's low descriptor is free now: a few more clients take it
        # (and any other low one), so the reconnect gets a number above 1023.
        idle += open_idle(br.port, 50)
        broker._start()  # a new mosquitto on the same port

        def reconnected():
            assert br.alive(), f"telebridge died (rc {br.p.poll()}):\n{br.log()[-3000:]}"
            return br.health()["broker"]["connected"]
        wait_for(reconnected, timeout=30, what="bridge reconnected to the restarted broker")
        h = br.health()
        assert h["broker"]["disconnects"] > before, h["broker"]
        fds = wait_for(lambda: broker_socket_fds(br.pid, broker.port), timeout=5,
                       what="the bridge's broker socket")
        assert max(fds) >= 1024, f"broker socket descriptors {fds}: the test did not reach FD_SETSIZE"

        def delivered():
            mqtt_pub(broker.port, "vehicle/7/telemetry", '{"n": 1}', qos=1)
            try:
                return veh.recv_type("telemetry_update", 0.5)
            except TimeoutError:
                return None
        got = wait_for(delivered, timeout=15, interval=0, what="delivery after the reconnect")
        assert got["data"] == {"n": 1}
        assert br.alive(), br.log()
    finally:
        for s in idle:
            s.close()
