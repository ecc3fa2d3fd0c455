"""Issue 13, limits that hold under abuse: hostile clients against the `limits:` section.

- a ping flood gets rate_limited (not one error per message) and then close 1008, and
  what it sent over the rate is not processed, while a well-behaved client on the same
  bridge keeps receiving everything;
- connections per source address (503) and the handshake rate per address (429 with
  Retry-After);
- every refused upgrade (403/404/429/503) answers a complete HTTP/1.1 response, checked
  on a raw socket and with the Python `websockets` client (which calls an HTTP/1.0 answer
  "did not receive a valid HTTP response");
- refusals counted by reason in /metrics and /health; origin refusals logged with the
  reason, not the header, and rate-limited."""
import asyncio
import base64
import json
import os
import socket
import subprocess
import threading

import pytest

import harness
from harness import WSClosed, wait_for


def config(limits, server_extra=""):
    text = harness.PROTO_CONFIG + "limits: {" + limits + "}\n"
    if server_extra:
        text = text.replace("  max_message_bytes: 64k\n", "  max_message_bytes: 64k\n" + server_extra)
    return text


def raw_upgrade(port, path, origin=None, keep=False, host="127.0.0.1"):
    """(status line, headers, body, socket or None) of one upgrade request on a raw socket."""
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Origin: {origin}\r\n" if origin else ""
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    return read_response(s, keep)


def read_response(s, keep=False):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"connection closed before a complete response head: {buf!r}"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    if lines[0].startswith("HTTP/1.1 101 "):
        if keep:
            return lines[0], headers, body, s
        s.close()
        return lines[0], headers, body, None
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    s.close()
    return lines[0], headers, body, None


def assert_refusal(resp, status):
    line, headers, body, _ = resp
    assert line.startswith(f"HTTP/1.1 {status} "), line
    assert int(headers["content-length"]) == len(body) and body.strip(), (headers, body)
    if status in (429, 503):
        assert int(headers["retry-after"]) >= 1, headers


def refused(br):
    return br.health()["refused"]


def metric_refused(br, reason):
    status, _, text = br.http_get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(f'telebridge_refused_total{{reason="{reason}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"no refused_total for {reason} in:\n{text}")


def websockets_status(url):
    """What the Python `websockets` client makes of an upgrade: the HTTP status it read, or
    the text of the error when it could not read one."""
    import websockets

    async def go():
        try:
            async with websockets.connect(url, open_timeout=10):
                return 101
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
        except websockets.exceptions.InvalidHandshake as e:
            return f"{type(e).__name__}: {e}"
    return asyncio.run(go())


# ---- inbound message rate --------------------------------------------------------------


def test_ping_flood_is_rate_limited_then_closed_while_a_neighbour_gets_everything(
        broker, bridges, clients, publisher):
    br = bridges(broker.port, config=config("client_rate: 20, client_burst: 40, close_after: 50"))
    good = clients(br.url("/ws/telemetry/7"))
    hostile = clients(br.url("/ws/any"))
    frames = []

    def flood():          # 5,000 pings as fast as the socket takes them, read afterwards
        try:
            for i in range(5000):
                hostile.send_json({"type": "ping", "id": i})
        except Exception:
            pass          # the bridge closed the connection under us: expected

    th = threading.Thread(target=flood)
    th.start()
    publisher.publish_many([("vehicle/7/telemetry", {"n": n}) for n in range(200)])
    th.join()
    with pytest.raises(WSClosed) as closed:
        while True:
            frames.append(hostile.recv(10))
    assert closed.value.code == 1008, closed.value
    pongs = [f for f in frames if f["type"] == "pong"]
    errors = [f for f in frames if f["type"] == "error"]
    # what went over the rate was not processed: far fewer pongs than pings
    assert 40 <= len(pongs) < 1000, len(pongs)
    assert errors and {e["code"] for e in errors} == {"rate_limited"}, errors
    assert len(errors) < 10, f"{len(errors)} error frames: the errors are rate-limited too"
    # the well-behaved client on the same bridge got every message, in order
    got = [good.recv_type("telemetry_update")["data"]["n"] for _ in range(200)]
    assert got == list(range(200))
    good.send_json({"type": "ping", "id": "still"})
    assert good.recv_type("pong")["id"] == "still"
    r = refused(br)
    assert r["rate"] >= 50 and r["rate_closed"] == 1, r
    assert metric_refused(br, "rate_closed") == 1
    assert metric_refused(br, "rate") >= r["rate"]


def test_message_over_the_rate_is_not_processed(broker, bridges, clients):
    """close_after 0: refused but never closed. A subscribe over the rate does not join."""
    br = bridges(broker.port, config=config("client_rate: 1, client_burst: 2, close_after: 0"))
    ws = clients(br.url("/ws/connect"))
    ws.send_json({"type": "ping", "id": 1})
    ws.send_json({"type": "ping", "id": 2})
    for i in range(3, 30):
        ws.send_json({"type": "subscribe", "rooms": [f"vehicle:{i}"], "id": i})
    frames = [ws.recv(10) for _ in range(3)]
    assert [f["type"] for f in frames] == ["pong", "pong", "error"], frames
    err = frames[2]
    assert err["code"] == "rate_limited" and "message" in err, err
    wait_for(lambda: refused(br)["rate"] >= 27, what="27 refusals counted")
    ws.expect_silence(0.3)        # no error per refused message, no subscribed
    assert br.health()["client_rooms"] == 0      # no subscribe was carried out
    wait_for(lambda: _pong(ws, "later"), timeout=10, interval=0.6, what="a ping answered after the refill")
    jsonschema = pytest.importorskip("jsonschema")
    with open(os.path.join(harness.SOURCE_DIR, "docs", "protocol.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/server_message"}).validate(err)


def test_endpoint_overrides_the_rate(broker, bridges, clients):
    text = config("close_after: 0").replace(
        "  /ws/any:                    {rooms: [], client_subscriptions: true}\n",
        "  /ws/any:                    {rooms: [], client_subscriptions: true}\n"
        "  /ws/device:                 {rooms: [], client_rate: 1, client_burst: 2}\n")
    br = bridges(broker.port, config=text)
    device, dashboard = clients(br.url("/ws/device")), clients(br.url("/ws/any"))
    for i in range(10):
        device.send_json({"type": "ping", "id": i})
        dashboard.send_json({"type": "ping", "id": i})
    assert [dashboard.recv_type("pong")["id"] for _ in range(10)] == list(range(10))
    got = [device.recv(10) for _ in range(3)]
    assert [f["type"] for f in got] == ["pong", "pong", "error"] and got[2]["code"] == "rate_limited"
    assert "more than 1 messages per second (burst 2)" in got[2]["message"]


def _pong(ws, ident):
    ws.send_json({"type": "ping", "id": ident})
    try:
        f = ws.recv(0.5)
    except TimeoutError:
        return False
    return f["type"] == "pong" and f["id"] == ident


def ws_frame(opcode, payload=b""):
    """One masked client frame (payload < 126 bytes)."""
    key = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + \
        bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def test_websocket_control_pings_are_answered_by_lws_not_counted(broker, bridges, clients):
    """Control-frame pings never reach the bridge: libwebsockets answers them (one pong
    pending at a time). They are not in the message bucket, and a flood of them neither
    closes the connection nor starves a neighbour."""
    br = bridges(broker.port, config=config("client_rate: 5, client_burst: 5, close_after: 5"))
    neighbour = clients(br.url("/ws/fleet"))
    line, _, rest, s = raw_upgrade(br.port, "/ws/personal", keep=True)
    assert line.startswith("HTTP/1.1 101 ")
    s.sendall(b"".join(ws_frame(0x9, b"p%d" % i) for i in range(5000)))
    s.sendall(ws_frame(0x1, json.dumps({"type": "ping", "id": "after"}).encode()))
    buf, seen = rest, b""
    s.settimeout(10)
    while b'"after"' not in seen:            # the JSON ping after the flood is answered
        chunk = s.recv(65536)
        assert chunk, "closed"
        buf += chunk
        seen += chunk
    s.close()
    assert refused(br)["rate"] == 0 and refused(br)["rate_closed"] == 0
    neighbour.send_json({"type": "ping", "id": 1})
    assert neighbour.recv_type("pong")["id"] == 1


def test_too_many_rooms_is_counted_as_subscriptions(broker, bridges, clients):
    """max_rooms_per_connection (8 in PROTO_CONFIG) is the per-connection subscription cap."""
    br = bridges(broker.port, config=config(""))
    ws = clients(br.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": [f"vehicle:{i}" for i in range(11)], "id": "s"})
    rep = ws.recv_type("subscribed")
    assert len(rep["rooms"]) == 8
    assert [r["code"] for r in rep["rejected"]] == ["too_many_rooms"] * 3
    assert refused(br)["subscriptions"] == 3
    assert metric_refused(br, "subscriptions") == 3


# ---- per address -------------------------------------------------------------------------


def test_connections_per_address_are_capped(broker, bridges, clients):
    br = bridges(broker.port, config=config("exempt_loopback: false, max_per_address: 3, handshake_rate: 0"))
    held = [clients(br.url("/ws/fleet")) for _ in range(3)]
    resp = raw_upgrade(br.port, "/ws/fleet")
    assert_refusal(resp, 503)
    assert b"too many connections from this address" in resp[2]
    assert harness.ws_handshake_status(br.url("/ws/personal")) == 503   # per address, any endpoint
    assert websockets_status(br.url("/ws/fleet")) == 503
    assert br.http_get("/health")[0] == 200      # plain HTTP is not counted
    assert refused(br)["per_address"] == 3
    assert br.health()["limits"] == {"addresses": 1, "addresses_reused": 0}
    held.pop().close()
    wait_for(lambda: harness.ws_handshake_status(br.url("/ws/fleet")) == 101, interval=0.1,
             what="a slot freed by a close")
    for c in held:                                # the others were never disturbed
        c.send_json({"type": "ping", "id": 1})
        assert c.recv_type("pong")["id"] == 1


def test_loopback_is_exempt_by_default(broker, bridges, clients):
    """The bench and a local reverse proxy connect from 127.0.0.1: not limited per address
    unless exempt_loopback is false (the per-connection message rate still applies)."""
    br = bridges(broker.port, config=config("max_per_address: 2, handshake_rate: 1, handshake_burst: 1"))
    conns = [clients(br.url("/ws/fleet")) for _ in range(6)]
    assert len(conns) == 6
    assert refused(br)["per_address"] == 0 and refused(br)["handshake_rate"] == 0
    assert br.health()["limits"]["addresses"] == 0       # loopback is not even tracked


def test_handshake_flood_gets_429_over_http11(broker, bridges):
    br = bridges(broker.port, config=config("exempt_loopback: false, max_per_address: 0, "
                                            "handshake_rate: 1, handshake_burst: 5"))
    results = [raw_upgrade(br.port, "/ws/fleet") for _ in range(30)]
    ok = [r for r in results if r[0].startswith("HTTP/1.1 101 ")]
    limited = [r for r in results if not r[0].startswith("HTTP/1.1 101 ")]
    assert 5 <= len(ok) < 25, [r[0] for r in results]      # the burst, plus what refilled
    for r in limited:
        assert_refusal(r, 429)
        assert b"too many handshakes" in r[2]
    n429 = len(limited)

    def drained():        # upgrades until one is refused: the bucket is empty right now
        nonlocal n429
        for _ in range(50):
            if raw_upgrade(br.port, "/ws/fleet")[0].startswith("HTTP/1.1 429 "):
                n429 += 1
                return
        raise AssertionError("never refused")

    drained()
    assert harness.ws_handshake_status(br.url("/ws/fleet")) == 429     # websocket-client
    drained()
    assert websockets_status(br.url("/ws/fleet")) == 429               # websockets
    drained()
    # a 404 path costs a handshake too: a flood cannot probe paths past the limit
    assert_refusal(raw_upgrade(br.port, "/ws/nowhere"), 429)
    n429 += 3
    assert refused(br)["handshake_rate"] == n429
    assert metric_refused(br, "handshake_rate") == n429
    assert "too many handshakes from this address" in br.log()


# ---- status lines of every refusal --------------------------------------------------------


def test_every_refusal_is_http11(broker, bridges, clients):
    br = bridges(broker.port, config=config(
        "", "  allowed_origins: [\"https://ok.example\"]\n").replace(
        "  max_connections: 1000\n", "  max_connections: 1\n"))
    assert_refusal(raw_upgrade(br.port, "/ws/nowhere"), 404)
    assert_refusal(raw_upgrade(br.port, "/ws/fleet", origin="https://evil.example"), 403)
    held = raw_upgrade(br.port, "/ws/fleet", origin="https://ok.example", keep=True)
    assert held[0].startswith("HTTP/1.1 101 ")
    assert_refusal(raw_upgrade(br.port, "/ws/fleet"), 503)          # max_connections
    # plain HTTP 404 (no static_dir): lws' own answer, HTTP/1.1 as well
    s = socket.create_connection(("127.0.0.1", br.port), timeout=10)
    s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    line, _, _, _ = read_response(s)
    assert line.startswith("HTTP/1.1 404 "), line
    # the websockets client reads each status instead of "did not receive a valid HTTP response"
    assert websockets_status(br.url("/ws/fleet")) == 503
    held[3].close()
    wait_for(lambda: br.health()["connections"]["total"] == 0, what="slot free")
    assert websockets_status(br.url("/ws/nowhere")) == 404
    r = refused(br)
    assert r["not_found"] == 2 and r["origin"] == 1 and r["capacity"] == 2, r


def test_origin_refusals_are_logged_with_the_reason_rate_limited(broker, bridges):
    br = bridges(broker.port, config=config("", "  allowed_origins: [\"https://ok.example\"]\n"))
    secret = "https://attacker.example/" + "s3cr3t" * 10
    for _ in range(50):
        assert_refusal(raw_upgrade(br.port, "/ws/fleet", origin=secret), 403)
    log = br.log()
    lines = [ln for ln in log.splitlines() if "Origin not in allowed_origins" in ln]
    assert 1 <= len(lines) <= 3, lines            # one line per reason per 10 s
    assert "s3cr3t" not in log                    # the header's text is not logged
    assert "127.0.0.1" in lines[0]
    assert refused(br)["origin"] == 50


def test_limits_config_is_validated():
    bad = harness.CORE_CONFIG + "limits: {ipv6_prefix: 8, client_burst: 0, handshake_rat: 3}\n"
    path = os.path.join(harness.tempfile.mkdtemp(prefix="tb-limits-"), "bad.yaml")
    with open(path, "w") as f:
        f.write(bad.replace("@MQTT_PORT@", "1883").replace("@LISTEN@", "127.0.0.1:1")
                .replace("@UID@", "x"))
    p = subprocess.run([harness.TELEBRIDGE, "--check", "-c", path], capture_output=True, text=True)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "ipv6_prefix" in out and "client_burst" in out and "handshake_rate" in out, out


# ---- IPv6 ----------------------------------------------------------------------------------


@pytest.fixture
def bridge_v6(broker):
    """Starts bridges listening on [::1] only (harness.Bridge waits on 127.0.0.1)."""
    started = []

    def make(limits):
        port = harness.free_port()
        d = harness.tempfile.mkdtemp(prefix="tb-bridge6-")
        path = os.path.join(d, "telebridge.yaml")
        with open(path, "w") as f:
            f.write(config(limits).replace("@MQTT_PORT@", str(broker.port))
                    .replace("@LISTEN@", f"[::1]:{port}").replace("@UID@", f"v6-{os.getpid()}-{len(started)}"))
        p = harness.Proc("telebridge", [harness.TELEBRIDGE, "-c", path])
        started.append(p)
        harness.wait_port(port, host="::1")
        return p, port

    yield make
    for p in started:
        rc = p.stop()
        assert rc == 0 and not harness.sanitizer_report(p.log()), p.log()[-3000:]


def health_v6(port):
    s = socket.create_connection(("::1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    line, headers, body, _ = read_response(s)
    assert line.startswith("HTTP/1.1 200 "), line
    return json.loads(body)


def test_ipv6_loopback_is_exempt_by_default(bridge_v6):
    """::1 is loopback even though its /64 group (::/64) is not."""
    _, port = bridge_v6("max_per_address: 1")
    held = [raw_upgrade(port, "/ws/fleet", keep=True, host="::1") for _ in range(3)]
    assert all(r[0].startswith("HTTP/1.1 101 ") for r in held), [r[0] for r in held]
    for r in held:
        r[3].close()
    assert health_v6(port)["refused"]["per_address"] == 0


def test_ipv6_clients_are_limited_per_prefix(bridge_v6):
    p, port = bridge_v6("exempt_loopback: false, max_per_address: 2, handshake_rate: 0")
    held = [raw_upgrade(port, "/ws/fleet", keep=True, host="::1") for _ in range(2)]
    assert all(r[0].startswith("HTTP/1.1 101 ") for r in held)
    assert_refusal(raw_upgrade(port, "/ws/fleet", host="::1"), 503)
    h = health_v6(port)
    assert h["refused"]["per_address"] == 1 and h["limits"]["addresses"] == 1, h
    assert "from ::/64 refused" in p.log()          # logged as its /64 group
    for r in held:
        r[3].close()
