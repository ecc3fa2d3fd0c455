"""Issue 14, the edge: what a hostile or unlucky client does to the listener and how the
bridge holds. Descriptor exhaustion (no spinning accept loop, no log flood, recovery), long
Origin headers, symlinks out of static_dir, the idle close frame, and RFC 6455 framing
errors (unmasked client frames, bad close frames) failing the connection with 1002."""
import os
import resource
import socket
import struct
import tempfile
import time

import pytest

import harness
from harness import wait_for

# ---- raw WebSocket client -------------------------------------------------------------


def raw_handshake(port, path, origin=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra = f"Origin: {origin}\r\n" if origin else ""
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head.split(b"\r\n", 1)[0], rest


def frame(opcode, payload=b"", masked=True, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def read_until_close(sock, pending=b"", timeout=5.0):
    """Frames (opcode, payload) the server sends until its close frame or EOF; the last
    element is None when the socket ended without a close frame."""
    sock.settimeout(0.5)
    buf, frames = pending, []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = struct.unpack(">Q", buf[2:10])[0], 10
            if len(buf) < off + n:
                break
            frames.append((buf[0] & 0x0F, buf[off:off + n]))
            buf = buf[off + n:]
            if frames[-1][0] == 8:
                return frames
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            frames.append(None)
            return frames
        buf += chunk
    raise TimeoutError(f"no close frame within {timeout}s; got {frames}")


def close_code(frames):
    last = frames[-1]
    assert last is not None, f"connection ended without a close frame: {frames}"
    assert last[0] == 8 and len(last[1]) >= 2, f"not a close frame with a code: {last}"
    return struct.unpack(">H", last[1][:2])[0]


# ---- 11 (framing): RFC 6455 protocol errors fail the connection with 1002 ---------------


# libwebsockets 4.1 accepts unmasked client frames (its parser records the mask bit and
# never checks it on a server) and no callback or option exposes the bit, so the bridge
# cannot enforce RFC 6455 5.1 here without replacing lws' reads. Strict: an lws that fails
# the connection makes this pass, and the marker must go.
@pytest.mark.xfail(strict=True, reason="lws 4.1 accepts unmasked client frames; no hook to refuse them")
def test_unmasked_client_frame_fails_with_1002(broker, bridges):
    br = bridges(broker.port)
    s, status, rest = raw_handshake(br.port, "/ws/fleet")
    assert b" 101 " in status
    s.sendall(frame(1, b'{"type":"ping"}', masked=False))
    assert close_code(read_until_close(s, rest)) == 1002
    s.close()
    assert br.health()["connections"]["total"] == 0 or wait_for(
        lambda: br.health()["connections"]["total"] == 0, what="connection gone")


def test_close_frame_with_bad_code_fails_with_1002(broker, bridges):
    br = bridges(broker.port)
    for code in (999, 1004, 1005, 1006, 1015, 1100, 2999, 5000):
        s, status, rest = raw_handshake(br.port, "/ws/fleet")
        s.sendall(frame(8, struct.pack(">H", code) + b"bye"))
        assert close_code(read_until_close(s, rest)) == 1002, code
        s.close()


def test_close_frame_with_one_byte_payload_fails_with_1002(broker, bridges):
    br = bridges(broker.port)
    s, status, rest = raw_handshake(br.port, "/ws/fleet")
    s.sendall(frame(8, b"\x03"))
    assert close_code(read_until_close(s, rest)) == 1002
    s.close()


def test_valid_close_frames_are_echoed(broker, bridges):
    br = bridges(broker.port)
    for payload in (b"", struct.pack(">H", 1000), struct.pack(">H", 1001) + b"away",
                    struct.pack(">H", 3000), struct.pack(">H", 4999)):
        s, status, rest = raw_handshake(br.port, "/ws/fleet")
        s.sendall(frame(8, payload))
        frames = read_until_close(s, rest)
        assert frames[-1] is not None and frames[-1][0] == 8, frames
        if payload:
            assert close_code(frames) == struct.unpack(">H", payload[:2])[0]
        s.close()
    # the bridge is still fine
    assert harness.ws_handshake_status(br.url("/ws/fleet")) == 101


# ---- 9: an idle client gets the 4009 close frame ----------------------------------------

IDLE = harness.CORE_CONFIG.replace("heartbeat: {interval: 1s, ws_ping: 0, idle_timeout: 0}",
                                   "heartbeat: {interval: 1s, ws_ping: 1s, idle_timeout: 3s}")


def test_idle_client_gets_close_4009(broker, bridges, clients):
    assert IDLE != harness.CORE_CONFIG
    br = bridges(broker.port, config=IDLE)
    t0 = time.monotonic()
    s, status, rest = raw_handshake(br.port, "/ws/fleet")   # never answers a ping
    frames = read_until_close(s, rest, timeout=10)
    took = time.monotonic() - t0
    assert any(f and f[0] == 9 for f in frames), f"no ping before the close: {frames}"
    assert close_code(frames) == 4009
    assert 2.5 <= took <= 8.0, took
    s.close()
    # a client that answers pings (the harness client does, while it reads) stays
    # connected well past the idle timeout
    live = clients(br.url("/ws/fleet"))
    end = time.monotonic() + 6
    while time.monotonic() < end:
        assert live.recv(heartbeats=True)["type"] == "heartbeat"


# ---- 3: allowed_origins with long Origin headers ----------------------------------------

LONG_OK = "https://" + "a" * 280 + ".example.com"
LONG_BAD = "https://" + "a" * 280 + ".evil.example"
ORIGINS = harness.CORE_CONFIG.replace(
    "  max_connections: 1000\n",
    f"  max_connections: 1000\n  allowed_origins: [\"{LONG_OK}\", \"https://short.example\"]\n")


def origin_status(br, origin):
    s, status, _ = raw_handshake(br.port, "/ws/fleet", origin=origin)
    s.close()
    return int(status.split()[1])


def test_long_origin_is_compared_in_full(broker, bridges):
    assert len(LONG_OK) > 255 and len(LONG_BAD) > 255
    br = bridges(broker.port, config=ORIGINS)
    assert origin_status(br, LONG_OK) == 101
    assert origin_status(br, LONG_BAD) == 403
    assert origin_status(br, LONG_OK + "x") == 403
    assert origin_status(br, LONG_OK[:-1]) == 403
    assert origin_status(br, "https://" + "b" * 3000) == 403
    assert origin_status(br, "https://short.example") == 101
    assert origin_status(br, "https://other.example") == 403
    assert origin_status(br, None) == 101     # non-browser clients send no Origin


# ---- 8: symlinks in static_dir -----------------------------------------------------------


def test_static_dir_does_not_follow_symlinks_out(broker, bridges, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>hi</h1>")
    (static / "sub").mkdir()
    (static / "sub" / "a.txt").write_text("inside")
    os.symlink(outside / "secret.txt", static / "leak.txt")
    os.symlink(outside, static / "leakdir")
    os.symlink(static / "sub" / "a.txt", static / "alias.txt")     # stays inside: fine
    cfg = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                      f"  max_connections: 1000\n  static_dir: \"{static}\"\n")
    br = bridges(broker.port, config=cfg)
    assert br.http_get("/index.html")[0] == 200
    assert br.http_get("/sub/a.txt")[2] == "inside"
    assert br.http_get("/alias.txt")[2] == "inside"
    for path in ("/leak.txt", "/leakdir/secret.txt", "/leakdir/", "/sub/../leak.txt"):
        st, _, body = br.http_get(path)
        assert st == 404 and "SECRET" not in body, (path, st, body)


# ---- 1: out of descriptors -----------------------------------------------------------------

FD_LIMIT = 160


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_neither_spins_nor_floods(broker, bridges, clients, publisher):
    br = bridges(broker.port, preexec_fn=low_nofile)
    c = clients(br.url("/ws/telemetry/1"))
    log_before = br.log().count("\n")
    socks = []
    for _ in range(FD_LIMIT + 40):                 # more than fit: half-open HTTP connections
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", br.port))
        socks.append(s)
    cpu0 = cpu_seconds(br.pid)
    time.sleep(3)
    cpu = cpu_seconds(br.pid) - cpu0
    lines = br.log().count("\n") - log_before
    assert cpu < 1.0, f"{cpu:.2f} s of CPU in 3 s with the descriptors exhausted"
    assert lines < 40, f"{lines} log lines in 3 s:\n{br.log()[-3000:]}"
    assert "out of descriptors" in br.log()      # the backlog was shed, once
    # a WebSocket upgrade now is refused (503) or waits; it is never served half-way
    publisher.publish("vehicle/1/telemetry", {"still": True}, wait=True)
    assert c.recv_type("telemetry_update")["data"] == {"still": True}
    for s in socks:
        s.close()
    # descriptors free again: new clients get in
    def reconnects():
        try:
            return harness.ws_handshake_status(br.url("/ws/fleet"), timeout=2) == 101
        except Exception:
            return False
    wait_for(reconnects, timeout=15, interval=0.3, what="a new client accepted")
    assert br.health()["broker"]["connected"]
    assert "max_connections" in br.log()          # capped to what the descriptors allow


def test_internal_protocol_names_are_not_a_way_in(broker, bridges, clients, publisher):
    """lws picks a connection's protocol by the subprotocol the client offers: offering the
    bridge's internal listen protocol must not give a connection outside the bridge (no gate,
    no limits); the bridge refuses it and serves everyone else."""
    br = bridges(broker.port)
    websocket = harness._ws_module()
    for offer in (["tb-shared-listen"], ["tb-shared-listen", "telebridge"]):
        try:
            ws = websocket.create_connection(br.url("/ws/fleet"), timeout=5, subprotocols=offer)
        except Exception:
            continue            # refused at the handshake
        try:
            # accepted only as a bridge connection: its first frame is the welcome
            assert ws.subprotocol != "tb-shared-listen"
            assert '"welcome"' in ws.recv()
        finally:
            ws.close()
    ok = clients(br.url("/ws/fleet"))
    publisher.publish("fleet/g1", {"n": 1}, wait=True)
    assert ok.recv()["type"] == "fleet_update"
    wait_for(lambda: br.health()["connections"]["total"] == 1, what="only the good client left")
