"""Transport: wss:// (server.tls_cert / tls_key / tls_client_ca, TLS 1.2+, certificate reload)
and permessage-deflate (server.deflate), with real clients: Python `websockets` (TLS and
deflate), websocket-client (no extension), and a raw socket client that checks the frame
bits itself and sends hostile compressed frames. Certificates are made here with the
openssl command line."""
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import zlib

import pytest
import websockets

import harness
from harness import wait_for

# ---- certificates ---------------------------------------------------------------------------


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
            cwd=d)


def make_cert(d, name, ca, san="IP:127.0.0.1"):
    """A key and a certificate for 'name' signed by CA 'ca' (files in d)."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    make_ca(d, "ca")
    make_cert(d, "server", "ca")
    make_cert(d, "server2", "ca")
    make_ca(d, "clientca")
    make_cert(d, "client", "clientca", san="DNS:client")
    make_ca(d, "rogueca")
    make_cert(d, "rogue", "rogueca", san="DNS:rogue")
    return d


def client_ctx(pki, cert=None, **versions):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.path.join(pki, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, f"{cert}.crt"), os.path.join(pki, f"{cert}.key"))
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


def tls_config(pki, extra=""):
    return harness.CORE_CONFIG.replace("  max_connections: 1000\n", f"""  max_connections: 1000
  tls_cert: {pki}/server.crt
  tls_key: {pki}/server.key
{extra}""")


# ---- a websockets (asyncio) client ---------------------------------------------------------


def ws_session(url, steps, ctx=None, compression="deflate"):
    """Connects with `websockets`, runs steps(ws) (a coroutine function), returns its result
    and the negotiated extension header."""
    async def run():
        async with websockets.connect(url, ssl=ctx, compression=compression, open_timeout=10,
                                      max_size=None) as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            return await steps(ws), ext
    return asyncio.run(run())


async def recv_json(ws, type_=None, timeout=10):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg.get("type") == "heartbeat":
            continue
        if type_ is None or msg.get("type") == type_:
            return msg


def peer_cert_der(port, pki):
    ctx = client_ctx(pki)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def file_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---- a raw client: frame bits, compressed frames of its own ---------------------------------


class RawClient:
    """WebSocket over a plain socket: offers 'extensions' in the handshake, returns frames as
    (first byte, payload) and sends any frame (masked) it is given."""

    def __init__(self, port, path, extensions=None, ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ctx:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{ext}"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert " 101 " in lines[0], lines[0]
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                               .encode()).digest()).decode()
        assert self.headers["sec-websocket-accept"] == accept

    def frame(self, timeout=10):
        """(first byte, payload) of the next frame; None at EOF."""
        self.sock.settimeout(timeout)
        while True:
            b = self.buf
            if len(b) >= 2:
                n, off = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, off = int.from_bytes(b[2:4], "big"), 4
                elif n == 127 and len(b) >= 10:
                    n, off = int.from_bytes(b[2:10], "big"), 10
                if n < 126 or off > 2:
                    if len(b) >= off + n:
                        self.buf = b[off + n:]
                        return b[0], b[off:off + n]
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def data_frames(self, count, timeout=10):
        """The next 'count' data frames (heartbeats included), as (rsv1, JSON)."""
        out = []
        while len(out) < count:
            f = self.frame(timeout)
            assert f is not None, "connection closed"
            first, payload = f
            if first & 0x0F == 0x8:
                raise AssertionError(f"closed: {payload!r}")
            if first & 0x0F in (0x9, 0xA):
                continue
            rsv1 = bool(first & 0x40)
            if rsv1:  # RFC 7692: append the removed sync tail, raw DEFLATE, fresh context
                payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            msg = json.loads(payload.decode("utf-8"))
            if msg.get("type") != "heartbeat":
                out.append((rsv1, msg))
        return out

    def send(self, first, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([first]) + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + n.to_bytes(2, "big"))
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def close(self):
        self.sock.close()


def compress(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


BIG = {"speed": 123.4, "rpm": 9000, "notes": "x" * 600, "tires": [{"t": 90 + i} for i in range(20)]}


# ---- permessage-deflate ---------------------------------------------------------------------


def test_deflate_negotiated_once_compressed_and_shared(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    raw = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate; client_max_window_bits")
    ext = raw.headers.get("sec-websocket-extensions", "")
    assert ext.startswith("permessage-deflate") and "server_no_context_takeover" in ext, ext
    raw2 = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate; client_no_context_takeover")
    ext2 = raw2.headers.get("sec-websocket-extensions", "")
    assert "client_no_context_takeover" in ext2 and "server_no_context_takeover" in ext2, ext2
    plain = clients(br.url("/ws/telemetry/7"))  # websocket-client: offers no extension
    for r in (raw, raw2):
        r.data_frames(1)  # welcome (each compressed on its own: one per connection)
    before = br.health()["transport"]["deflate"]["messages"]
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    publisher.publish("vehicle/7/telemetry", {"a": 1}, wait=True)  # below min_bytes (256)
    big_plain = plain.recv_type("telemetry_update")
    small_plain = plain.recv_type("telemetry_update")
    for r in (raw, raw2):
        (z1, big), (z2, small) = r.data_frames(2)
        assert z1 and big == big_plain and big["data"] == BIG
        assert not z2 and small == small_plain
    t = br.health()["transport"]
    z = t["deflate"]
    # one compression of the room message for its two deflate members
    assert not t["tls"] and z["connections"] == 2 and z["messages"] == before + 1, t
    assert z["bytes_out"] < z["bytes_in"], t
    raw.close()
    raw2.close()


def test_deflate_disabled_or_window_limited_offers_get_plain_frames(broker, bridges, publisher):
    off = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                      "  max_connections: 1000\n  deflate: {enabled: false}\n")
    br = bridges(broker.port, config=off)
    raw = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    assert "sec-websocket-extensions" not in raw.headers
    raw.data_frames(1)
    br2 = bridges(broker.port)
    limited = RawClient(br2.port, "/ws/telemetry/7", "permessage-deflate; server_max_window_bits=10")
    assert "sec-websocket-extensions" not in limited.headers
    limited.data_frames(1)
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    for r in (raw, limited):
        (z, msg), = r.data_frames(1)
        assert not z and msg["data"] == BIG
        r.close()


def test_deflate_threshold_and_level_from_config(broker, bridges, publisher):
    conf = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                       "  max_connections: 1000\n  deflate: {min_bytes: 0, level: 9}\n")
    br = bridges(broker.port, config=conf)
    raw = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    (z, welcome), = raw.data_frames(1)
    assert z and welcome["type"] == "welcome"  # min_bytes 0: even the welcome frame
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    (z, msg), = raw.data_frames(1)
    assert z and msg["data"] == BIG
    raw.close()


def test_websockets_client_compressed_both_ways(broker, bridges, publisher):
    """`websockets` compresses what it sends: the bridge inflates it (lws' extension)."""
    br = bridges(broker.port)

    async def steps(ws):
        await recv_json(ws, "welcome")
        await ws.send(json.dumps({"type": "ping", "id": "p" * 300}))
        pong = await recv_json(ws, "pong")
        publisher.publish("vehicle/7/telemetry", BIG, wait=True)
        return pong, await recv_json(ws, "telemetry_update")

    (pong, upd), ext = ws_session(br.url("/ws/telemetry/7"), steps)
    assert "permessage-deflate" in ext and pong["id"] == "p" * 300 and upd["data"] == BIG


def test_corrupt_compressed_frame_closes_only_that_client(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    other = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    plain = clients(br.url("/ws/telemetry/7"))
    other.data_frames(1)
    bad = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    bad.data_frames(1)
    bad.send(0xC1, b"\xff\xfe\xfd garbage that is not DEFLATE" * 4)  # FIN + RSV1 + text
    f = bad.frame()
    assert f is not None and f[0] & 0x0F == 0x8, f
    assert int.from_bytes(f[1][:2], "big") == 1007, f
    assert bad.frame() is None  # then the connection is dropped
    bad.close()
    # a valid compressed frame still works on another connection
    other.send(0xC1, compress(json.dumps({"type": "ping", "id": 5}).encode()))
    (z, pong), = other.data_frames(1)
    assert pong["type"] == "pong" and pong["id"] == 5
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    assert other.data_frames(1)[0][1]["data"] == BIG
    assert plain.recv_type("telemetry_update")["data"] == BIG
    other.close()


def test_rsv1_without_negotiation_is_a_protocol_error(broker, bridges):
    br = bridges(broker.port)
    raw = RawClient(br.port, "/ws/telemetry/7")  # no extension offered
    raw.data_frames(1)
    raw.send(0xC1, compress(b'{"type":"ping"}'))
    f = raw.frame()
    assert f is not None and f[0] & 0x0F == 0x8 and int.from_bytes(f[1][:2], "big") == 1002, f
    raw.close()


# ---- wss:// ---------------------------------------------------------------------------------


def test_wss_connect_receive_and_plain_refused(broker, bridges, publisher, pki):
    ctx = client_ctx(pki)
    br = bridges(broker.port, config=tls_config(pki), ssl_context=ctx)
    assert br.health()["transport"]["tls"]  # HTTPS too

    def steps_for(v):
        async def steps(ws):
            await recv_json(ws, "welcome")
            publisher.publish_many([(f"vehicle/{v}/telemetry", dict(BIG, i=i)) for i in range(300)])
            got = [await recv_json(ws, "telemetry_update") for _ in range(300)]
            return [m["data"]["i"] for m in got]
        return steps

    # many frames: the TLS connections are written through lws, partial writes included
    seq, ext = ws_session(br.url("/ws/telemetry/7"), steps_for(7), ctx=ctx)
    assert seq == list(range(300)) and "permessage-deflate" in ext
    seq, ext = ws_session(br.url("/ws/telemetry/8"), steps_for(8), ctx=ctx, compression=None)
    assert seq == list(range(300)) and ext is None
    steps = steps_for(9)
    # a plain ws:// client on the TLS port gets no WebSocket
    with pytest.raises(Exception):
        ws_session(f"ws://127.0.0.1:{br.port}/ws/telemetry/7", steps)


def test_tls_below_1_2_refused(broker, bridges, pki):
    ctx = client_ctx(pki)
    br = bridges(broker.port, config=tls_config(pki), ssl_context=ctx)
    old = client_ctx(pki, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with socket.create_connection(("127.0.0.1", br.port), timeout=5) as s:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(s, server_hostname="127.0.0.1")
    tls12 = client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", br.port), timeout=5) as s:
        with tls12.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() == "TLSv1.2"


def test_client_certificate_required(broker, bridges, publisher, pki):
    conf = tls_config(pki, f"  tls_client_ca: {pki}/clientca.crt\n")
    good = client_ctx(pki, cert="client")
    br = bridges(broker.port, config=conf, ssl_context=good)

    async def steps(ws):
        return await recv_json(ws, "welcome")

    assert ws_session(br.url("/ws/telemetry/7"), steps, ctx=good)[0]["type"] == "welcome"
    for ctx in (client_ctx(pki), client_ctx(pki, cert="rogue")):  # none, or the wrong CA
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, websockets.exceptions.WebSocketException)):
            ws_session(br.url("/ws/telemetry/7"), steps, ctx=ctx)
    assert ws_session(br.url("/ws/telemetry/7"), steps, ctx=good)[0]["type"] == "welcome"


def test_reload_uses_new_certificate_for_new_connections(broker, bridges, publisher, pki):
    ctx = client_ctx(pki)
    br = bridges(broker.port, config=tls_config(pki), ssl_context=ctx)
    assert peer_cert_der(br.port, pki) == file_der(f"{pki}/server.crt")
    old = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate", ctx=ctx)
    old.data_frames(1)
    # the same paths get the second pair (a rotation), then SIGHUP
    for ext in ("crt", "key"):
        os.replace(f"{pki}/server2.{ext}", f"{pki}/server.{ext}")
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: br.health()["config"]["reload"].get("count", 0) >= 1, what="reload")
    assert br.health()["config"]["reload"]["ok"], br.health()["config"]["reload"]
    assert peer_cert_der(br.port, pki) == file_der(f"{pki}/server.crt")
    assert old.sock.getpeercert(binary_form=True) != file_der(f"{pki}/server.crt")
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    (z, msg), = old.data_frames(1)  # the open connection keeps its session and works on
    assert z and msg["data"] == BIG
    old.close()
    # a broken pair is refused as a whole: the running certificate stays
    with open(f"{pki}/server.key", "w") as f:
        f.write("not a key\n")
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: br.health()["config"]["reload"]["failures"] >= 1, what="reload refused")
    assert "tls_key" in " ".join(br.health()["config"]["reload"]["errors"])
    assert peer_cert_der(br.port, pki) == file_der(f"{pki}/server.crt")


def test_compressed_frame_inflating_past_max_message_bytes_is_refused(broker, bridges, publisher):
    br = bridges(broker.port)  # max_message_bytes: 64k
    raw = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    raw.data_frames(1)
    bomb = compress(b'{"type":"ping","pad":"' + b"0" * (2 << 20) + b'"}')  # 2 MiB -> a few KiB
    assert len(bomb) < 65536
    raw.send(0xC1, bomb)
    while True:
        f = raw.frame()
        assert f is not None, "dropped without a close frame"
        if f[0] & 0x0F == 0x8:
            break
    assert int.from_bytes(f[1][:2], "big") == 1009, f
    raw.close()
    # the bridge goes on serving others
    other = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate")
    other.data_frames(1)
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    assert other.data_frames(1)[0][1]["data"] == BIG
    other.close()


def test_reload_to_other_files_and_tls_off_needs_restart(broker, bridges, pki):
    ctx = client_ctx(pki)
    br = bridges(broker.port, config=tls_config(pki), ssl_context=ctx)
    with open(br.config_path) as f:
        text = f.read()
    # other paths: applied by the reload (the file watcher sees the change)
    with open(br.config_path, "w") as f:
        f.write(text.replace(f"{pki}/server.crt", f"{pki}/server2.crt")
                .replace(f"{pki}/server.key", f"{pki}/server2.key"))
    wait_for(lambda: peer_cert_der(br.port, pki) == file_der(f"{pki}/server2.crt"),
             what="the new certificate served")
    h = br.health()["config"]["reload"]
    assert h["ok"] and "server.tls_cert" not in h["needs_restart"], h
    # TLS off: needs a restart; the listener stays TLS with the running pair
    n = h["count"]
    plain = "".join(l for l in text.splitlines(True) if "tls_" not in l)
    with open(br.config_path, "w") as f:
        f.write(plain)
    wait_for(lambda: br.health()["config"]["reload"]["count"] > n, what="reload")
    h = br.health()["config"]["reload"]
    assert h["ok"] and "server.tls_cert" in h["needs_restart"], h
    assert peer_cert_der(br.port, pki) == file_der(f"{pki}/server2.crt")


def test_corrupt_compressed_frame_over_tls_gets_1007(broker, bridges, publisher, pki):
    ctx = client_ctx(pki)
    br = bridges(broker.port, config=tls_config(pki), ssl_context=ctx)
    good = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate", ctx=ctx)
    good.data_frames(1)
    bad = RawClient(br.port, "/ws/telemetry/7", "permessage-deflate", ctx=ctx)
    bad.data_frames(1)
    bad.send(0xC1, b"\xff\xfe\xfd not DEFLATE at all" * 4)
    f = bad.frame()
    assert f is not None and f[0] & 0x0F == 0x8 and int.from_bytes(f[1][:2], "big") == 1007, f
    bad.close()
    publisher.publish("vehicle/7/telemetry", BIG, wait=True)
    (z, msg), = good.data_frames(1)
    assert z and msg["data"] == BIG
    good.close()
