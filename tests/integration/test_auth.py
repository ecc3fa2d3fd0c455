"""Issue 13, access control: authentication and authorization with real clients against a
real Mosquitto and telebridge (harness.py). Tokens are minted here with PyJWT and
cryptography (Debian python3-jwt, python3-cryptography); the hostile ones by hand.

Every refusal is seen as a client sees it: the upgrade succeeds, then exactly one
{"type":"error","code":"unauthorized"|"forbidden"} frame and a close 4401 / 4403, and no
welcome or data frame before. Authorization is checked on every path that can carry room
data: endpoint rooms, subscribe, pattern subscribe, join_session, resume (since) and the
last values on join; alerts per vehicle; acks recorded under the token's subject; the
admin HTTP paths."""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import base64

import pytest

import harness
from harness import TELEBRIDGE

jwt = pytest.importorskip("jwt")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

SECRET = "integration-test-secret-0123456789abcdef"
DEVICE_KEY = "device-key-0001"
ADMIN_KEY = "admin-key-0001"

CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-auth-@UID@"
  protocol: 5
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
  admin_listen: "127.0.0.1:@ADMIN_PORT@"
  max_rooms_per_connection: 20
auth:
  issuers:
    - {issuer: test-hs, audience: telebridge, hs256_secret: "${TB_TEST_JWT_SECRET}"}
    - {issuer: test-rs, audience: telebridge, public_key_file: rsa.pem}
    - {issuer: test-es, audience: telebridge, jwks_file: jwks.json}
  api_keys:
    - {sha256: @DEVICE_SHA@, identity: gw-1, claims: {vehicles: [V1]}}
    - {sha256: @ADMIN_SHA@, identity: ops-admin, claims: {roles: [admin]}}
  clock_skew: 1s
  expiry_warning: 30s
  auth_timeout: 1s
  alerts_claim: vehicles
  ack_roles: [operator]
  rooms:
    - {room: "vehicle:{id}", claim: vehicles}
    - {room: "session:{sid}", claim: sessions}
endpoints:
  /ws/alerts/{user_id}:       {rooms: [alerts], auth: required, require: {user_id: sub}}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"], auth: required,
                               require: {vehicle_id: vehicles}}
  /ws/connect:                {rooms: [], client_subscriptions: true, auth: required}
  /ws/late:                   {rooms: ["vehicle:V1"], auth: required, auth_message: true}
  /ws/open:                   {rooms: [news, "vehicle:V1"]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}"]
    type: telemetry_update
    keep_last: true
    history: 50
  - match: session/{sid}/telemetry
    rooms: ["session:{sid}"]
    type: telemetry_update
    keep_last: true
    history: 50
  - match: news
    rooms: [news]
    type: news
sessions: {request_topic: session/request}
alerts:
  - name: engine_overheat
    match: vehicle/{id}/telemetry
    when: engine_metrics.temperature > 110
    clear_when: engine_metrics.temperature < 100
    severity: critical
    rooms: [alerts]
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


# ---- keys and tokens -----------------------------------------------------------------------

class Keys:
    def __init__(self, d):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(os.path.join(d, "rsa.pem"), "wb") as f:
            f.write(self.rsa_pem)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        jwk.update(kid="es-1", use="sig")
        with open(os.path.join(d, "jwks.json"), "w") as f:
            json.dump({"keys": [jwk]}, f)

    def token(self, sub="alice", issuer="test-hs", ttl=600, **claims):
        now = int(time.time())
        body = {"sub": sub, "iss": issuer, "aud": "telebridge", "iat": now, "exp": now + ttl}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        if issuer == "test-rs":
            return jwt.encode(body, self.rsa, algorithm="RS256")
        if issuer == "test-es":
            return jwt.encode(body, self.ec, algorithm="ES256", headers={"kid": "es-1"})
        return jwt.encode(body, SECRET, algorithm="HS256")


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(header, body, key):
    signing = f"{b64(header)}.{b64(body)}"
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(sig)}"


@pytest.fixture
def setup(broker, bridges, tmp_path):
    keys = Keys(tmp_path)
    cfg = CONFIG.replace("@DEVICE_SHA@", hashlib.sha256(DEVICE_KEY.encode()).hexdigest()) \
                .replace("@ADMIN_SHA@", hashlib.sha256(ADMIN_KEY.encode()).hexdigest())
    path = tmp_path / "telebridge.yaml"
    port, admin_port = harness.free_port(), harness.free_port()
    path.write_text(cfg.replace("@MQTT_PORT@", str(broker.port)).replace("@ADMIN_PORT@", str(admin_port))
                       .replace("@LISTEN@", f"127.0.0.1:{port}").replace("@UID@", str(os.getpid())))
    br = bridges(broker.port, config_path=str(path), port=port, wait_broker=False,
                 env={"TB_TEST_JWT_SECRET": SECRET})
    br.admin_port = admin_port
    harness.wait_for(lambda: admin_health(br)["broker"]["connected"], timeout=15, what="broker")
    return br, keys


# ---- clients -------------------------------------------------------------------------------

class Client(harness.WS):
    """harness.WS with a subprotocol list and extra headers; no welcome read unless asked."""

    def __init__(self, url, subprotocols=None, header=None, welcome=True, timeout=10.0):
        websocket = harness._ws_module()
        self.url = url
        self.ws = websocket.create_connection(url, timeout=timeout, subprotocols=subprotocols,
                                              header=header or [], skip_utf8_validation=True)
        self.heartbeats = 0
        self.welcome = self.recv(timeout) if welcome else None
        if welcome:
            assert self.welcome["type"] == "welcome", f"first frame is not welcome: {self.welcome}"


def connect(br, path, token=None, how="query", welcome=True, **kw):
    url = br.url(path)
    if token and how == "query":
        url += ("&" if "?" in url else "?") + "token=" + token
    elif token and how == "subprotocol":
        kw["subprotocols"] = ["bearer", token]
    elif token and how == "header":
        kw["header"] = [f"Authorization: Bearer {token}"]
    elif token and how == "api_key":
        kw["header"] = [f"X-Api-Key: {token}"]
    return Client(url, welcome=welcome, **kw)


def refused(br, path, token=None, how="query", code="unauthorized", close=4401):
    """Connects and asserts the refusal: one error frame (the very first frame), then the close."""
    c = connect(br, path, token, how, welcome=False)
    try:
        first = c.recv(5)
        assert first["type"] == "error" and first["code"] == code, first
        assert c.wait_close(5) == close
    finally:
        c.close()
    return first["message"]


def admin_health(br, key=ADMIN_KEY):
    req = urllib.request.Request(f"http://127.0.0.1:{br.port}/health", headers={"X-Api-Key": key})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def http_status(br, path, headers=None, port=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port or br.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def telemetry(vid, temp=80.0, speed=50.0):
    return json.dumps({"vehicle_id": vid, "speed": speed, "engine_metrics": {"temperature": temp}})


def next_of(ws, type_, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == type_:
            return m


# ---- authentication ------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["query", "header"])
def test_each_token_source_admits(setup, publisher, how):
    br, keys = setup
    c = connect(br, "/ws/telemetry/V1", keys.token(vehicles=["V1"]), how)
    assert c.welcome["data"]["identity"] == "alice" and c.welcome["data"]["expires_at"] > time.time() * 1000
    publisher.publish("vehicle/V1/telemetry", telemetry("V1"), wait=True)
    assert next_of(c, "telemetry_update")["room"] == "vehicle:V1"
    c.close()


def test_subprotocol_token_too_long_for_lws_is_refused_clearly(setup):
    """libwebsockets 4.1 drops upgrades whose Sec-WebSocket-Protocol exceeds 127 bytes; the
    bridge answers 400 with the reason instead (short tokens are read from it, ws_auth.c)."""
    br, keys = setup
    websocket = harness._ws_module()
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        connect(br, "/ws/telemetry/V1", keys.token(vehicles=["V1"]), "subprotocol")
    assert e.value.status_code == 400
    # a short offer still reaches the gate: "bearer, garbage" is refused as a bad token
    refused(br, "/ws/telemetry/V1", "garbage", "subprotocol")


SHORT_CONFIG = """\
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-auth-short-@UID@"}
server: {listen: "@LISTEN@"}
auth:
  issuers: [{hs256_secret: "${TB_TEST_JWT_SECRET}"}]
endpoints:
  /ws/v: {rooms: [v], auth: required}
heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}
"""


def test_short_token_in_the_bearer_subprotocol(broker, bridges):
    """A token short enough for lws 4.1's 127-byte Sec-WebSocket-Protocol (one issuer without
    iss/aud checks, minimal claims) is read from it, and the server answers "bearer"."""
    br = bridges(broker.port, config=SHORT_CONFIG, wait_broker=False, env={"TB_TEST_JWT_SECRET": SECRET})
    tok = jwt.encode({"sub": "a", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    assert len("bearer, " + tok) <= 127
    c = connect(br, "/ws/v", tok, "subprotocol")
    assert c.ws.subprotocol == "bearer" and c.welcome["data"]["identity"] == "a"
    c.close()
    refused(br, "/ws/v", tok[:-3] + "AAA", "subprotocol")


def test_rs256_es256_and_api_key_admit(setup):
    br, keys = setup
    for tok in (keys.token(issuer="test-rs", vehicles=["V1"]), keys.token(issuer="test-es", vehicles=["V1"])):
        connect(br, "/ws/telemetry/V1", tok).close()
    connect(br, "/ws/telemetry/V1", DEVICE_KEY, how="api_key").close()
    connect(br, "/ws/telemetry/V1?api_key=" + DEVICE_KEY).close()


def test_refusals_of_bad_tokens(setup):
    br, keys = setup
    now = int(time.time())
    good = keys.token(vehicles=["V1"])
    head, body, sig = good.split(".")
    cases = {
        "no token": None,
        "garbage": "garbage",
        "bad signature": f"{head}.{body}.{sig[:-4]}AAAA",
        "alg none": f"{b64({'alg': 'none'})}.{body}.",
        "alg none signed": f"{b64({'alg': 'none'})}.{body}.AAAA",
        "hs/rs confusion": forged({"alg": "HS256"}, {"sub": "alice", "iss": "test-rs", "aud": "telebridge",
                                                     "exp": now + 600, "vehicles": ["V1"]}, keys.rsa_pem),
        "expired": keys.token(ttl=-60, vehicles=["V1"]),
        "not yet valid": keys.token(nbf=now + 300, vehicles=["V1"]),
        "issued in the future": keys.token(iat=now + 300, vehicles=["V1"]),
        "wrong audience": keys.token(aud="someone-else", vehicles=["V1"]),
        "wrong issuer": keys.token(iss="evil", vehicles=["V1"]),
        "other secret": jwt.encode({"sub": "a", "iss": "test-hs", "aud": "telebridge", "exp": now + 60},
                                   "x" * 40, algorithm="HS256"),
        "unknown api key": "nope",
    }
    for name, tok in cases.items():
        how = "api_key" if name == "unknown api key" else "query"
        msg = refused(br, "/ws/telemetry/V1", tok, how)
        assert tok is None or tok not in msg, name
    log = br.log()
    for tok in cases.values():
        if tok and len(tok) > 8:
            assert tok not in log, "a token reached the log"
    assert "token expired" in log and "token algorithm not accepted" in log
    assert admin_health(br)["auth"]["unauthorized"] == len(cases)


def test_a_bad_token_is_refused_even_on_an_open_endpoint(setup):
    br, keys = setup
    refused(br, "/ws/open", "garbage")
    connect(br, "/ws/open").close()   # no token: auth none admits anonymously


# ---- authorization: endpoints -----------------------------------------------------------------

def test_wrong_vehicle_and_other_users_alerts_are_forbidden(setup, publisher):
    br, keys = setup
    publisher.publish("vehicle/V2/telemetry", telemetry("V2"), wait=True)
    refused(br, "/ws/telemetry/V2", keys.token(vehicles=["V1"]), code="forbidden", close=4403)
    refused(br, "/ws/alerts/bob", keys.token(sub="alice"), code="forbidden", close=4403)
    refused(br, "/ws/telemetry/V1", DEVICE_KEY.replace("1", "2"), how="api_key")
    connect(br, "/ws/telemetry/V7", keys.token(vehicles=["V*"])).close()   # glob claim
    h = admin_health(br)["auth"]
    assert h["forbidden"] == 2 and h["unauthorized"] == 1
    assert "telebridge_auth_forbidden_total 2" in http_status(br, "/metrics", port=br.admin_port)[1]
    connect(br, "/ws/alerts/bob", keys.token(sub="root", roles=["admin"])).close()


def test_anonymous_endpoint_rooms_are_filtered(setup, publisher):
    br, keys = setup
    publisher.publish("vehicle/V1/telemetry", telemetry("V1"), wait=True)
    anon = connect(br, "/ws/open")
    assert "vehicle:V1" not in anon.welcome["data"]["rooms"]
    publisher.publish("news", json.dumps({"headline": "hi"}), wait=True)
    publisher.publish("vehicle/V1/telemetry", telemetry("V1"), wait=True)
    assert next_of(anon, "news")["room"] == "news"
    anon.expect_silence(0.5)


# ---- authorization: subscribe, patterns, sessions, resume, last values ---------------------------

def test_subscribe_pattern_and_resume_do_not_leak(setup, publisher):
    br, keys = setup
    for v in ("V1", "V2", "V3"):
        for i in range(3):
            publisher.publish(f"vehicle/{v}/telemetry", telemetry(v, speed=i), wait=True)
    c = connect(br, "/ws/connect", keys.token(vehicles=["V1"]))
    c.send_json({"type": "subscribe", "rooms": ["vehicle:V2"], "id": 1})
    rep = next_of(c, "subscribed")
    assert rep["rejected"][0]["code"] == "forbidden" and rep["rooms"] == []
    c.send_json({"type": "subscribe", "rooms": ["vehicle:*"], "id": 2})
    next_of(c, "subscribed")
    c.send_json({"type": "subscribe", "rooms": ["vehicle:V3"], "since": {"vehicle:V3": 0},
                 "epoch": c.welcome["data"]["epoch"], "id": 3})
    assert next_of(c, "subscribed")["rejected"][0]["code"] == "forbidden"
    publisher.publish("vehicle/V2/telemetry", telemetry("V2"), wait=True)
    publisher.publish("vehicle/V9/telemetry", telemetry("V9"), wait=True)   # a new room: pattern
    publisher.publish("vehicle/V1/telemetry", telemetry("V1", speed=99), wait=True)
    seen = []
    while True:
        m = c.recv(5)
        if m.get("room"):
            seen.append(m["room"])
        if m.get("type") == "telemetry_update" and m["data"]["speed"] == 99:
            break
    assert set(seen) == {"vehicle:V1"}, seen   # last value of V1 only, never V2/V3/V9


def test_join_session_is_authorized(setup, publisher):
    br, keys = setup
    c = connect(br, "/ws/connect", keys.token(sessions=["s2"]))
    c.send_json({"type": "join_session", "session_id": "s1", "id": 1})
    err = next_of(c, "error")   # refused before the existence check: it learns nothing
    assert err["code"] == "forbidden" and err["id"] == 1
    publisher.publish("session/s1/telemetry", telemetry("car"), wait=True)
    ok = connect(br, "/ws/connect", keys.token(sub="bob", sessions=["s*"]))
    for attempt in range(50):   # the session is known once its first message was routed
        ok.send_json({"type": "join_session", "session_id": "s1", "id": attempt})
        rep = ok.recv(5)
        if rep["type"] == "session_joined":
            break
        assert rep["code"] == "unknown_session"
        time.sleep(0.05)
    assert next_of(ok, "telemetry_update")["room"] == "session:s1"
    c.send_json({"type": "join_session", "session_id": "s1", "id": 2})
    assert next_of(c, "error")["code"] == "forbidden"
    c.expect_silence(0.3)


def test_reload_applies_room_rules_to_held_rooms(setup, publisher):
    br, keys = setup
    c = connect(br, "/ws/connect", keys.token(vehicles=["V1"]))
    c.send_json({"type": "subscribe", "rooms": ["vehicle:V1"], "id": 1})
    assert next_of(c, "subscribed")["rooms"] == ["vehicle:V1"]
    text = open(br.config_path).read().replace('{room: "vehicle:{id}", claim: vehicles}',
                                               '{room: "vehicle:{id}", roles: [fleet_admin]}')
    tmp = br.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, br.config_path)
    err = next_of(c, "error", timeout=15)
    assert err["code"] == "forbidden" and err["room"] == "vehicle:V1"
    next_of(c, "config_reloaded")
    publisher.publish("vehicle/V1/telemetry", telemetry("V1"), wait=True)
    c.expect_silence(0.5)


# ---- the auth message, refresh and expiry ----------------------------------------------------------

def test_auth_message(setup, publisher):
    br, keys = setup
    publisher.publish("vehicle/V1/telemetry", telemetry("V1"), wait=True)
    c = connect(br, "/ws/late", welcome=False)
    c.expect_silence(0.3)   # nothing before the auth frame
    c.send_json({"type": "auth", "token": keys.token(vehicles=["V1"])})
    assert c.recv(5)["type"] == "welcome"
    assert next_of(c, "telemetry_update")["room"] == "vehicle:V1"
    c.close()
    bad = connect(br, "/ws/late", welcome=False)
    bad.send_json({"type": "subscribe", "rooms": ["vehicle:V1"]})
    first = bad.recv(5)
    assert first["code"] == "unauthorized" and bad.wait_close(5) == 4401
    slow = connect(br, "/ws/late", welcome=False)
    first = slow.recv(5)   # auth_timeout: 1s
    assert first["code"] == "unauthorized" and slow.wait_close(5) == 4401


def test_expiry_warning_refresh_and_close(setup):
    br, keys = setup
    c = connect(br, "/ws/alerts/alice", keys.token(ttl=20))
    warn = next_of(c, "auth_expiring")
    assert warn["data"]["expires_at"] > time.time() * 1000
    c.send_json({"type": "refresh", "token": keys.token(sub="mallory", ttl=600), "id": 1})
    err = c.recv(5)
    assert err["type"] == "error" and err["code"] == "unauthorized" and err["id"] == 1
    assert c.wait_close(5) == 4401

    c = connect(br, "/ws/alerts/alice", keys.token(ttl=20))
    next_of(c, "auth_expiring")
    c.send_json({"type": "refresh", "token": keys.token(ttl=600), "id": 2})
    rep = next_of(c, "refreshed")
    assert rep["id"] == 2 and rep["data"]["expires_at"] > (time.time() + 500) * 1000

    short = connect(br, "/ws/alerts/alice", keys.token(ttl=1))
    next_of(short, "auth_expiring")
    err = next_of(short, "error", timeout=15)
    assert err["code"] == "unauthorized" and short.wait_close(5) == 4401


# ---- alerts per vehicle and acks ---------------------------------------------------------------------

def test_alerts_reach_only_permitted_users_and_acks_record_the_subject(setup, publisher):
    br, keys = setup
    alice = connect(br, "/ws/alerts/alice", keys.token(sub="alice", vehicles=["V1"], roles=["operator"]))
    bob = connect(br, "/ws/alerts/bob", keys.token(sub="bob", vehicles=["V2"]))
    for _ in range(30):
        publisher.publish("vehicle/V1/telemetry", telemetry("V1", 120), wait=True)
        try:
            alert = next_of(alice, "alert", timeout=0.3)["data"]
            break
        except TimeoutError:
            pass
    else:
        raise AssertionError("no alert")
    bob.expect_silence(0.5)
    late = connect(br, "/ws/alerts/bob", keys.token(sub="bob", vehicles=["V2"], roles=["operator"]))
    late.expect_silence(0.3)   # the active alert of V1 is not in bob's join state either
    late.send_json({"type": "ack_alert", "alert_id": alert["id"], "id": 1})
    assert next_of(late, "error")["code"] == "not_allowed"
    bob.send_json({"type": "ack_alert", "alert_id": alert["id"], "id": 2})
    assert next_of(bob, "error")["code"] == "not_allowed"
    alice.send_json({"type": "ack_alert", "alert_id": alert["id"], "by": "bob", "id": 3})
    assert next_of(alice, "error")["code"] == "forbidden"
    alice.send_json({"type": "ack_alert", "alert_id": alert["id"], "id": 4})
    assert next_of(alice, "acked")["id"] == 4
    assert next_of(alice, "alert_acknowledged")["data"]["acknowledged_by"] == "alice"
    viewer = connect(br, "/ws/alerts/carol", keys.token(sub="carol", vehicles=["V1"]))
    next_of(viewer, "alert")
    viewer.send_json({"type": "ack_alert", "alert_id": alert["id"], "id": 5})
    assert next_of(viewer, "error")["code"] == "forbidden"   # no operator role


# ---- admin HTTP paths ---------------------------------------------------------------------------------

def test_admin_paths(setup):
    br, keys = setup
    st, body = http_status(br, "/health")
    assert st == 200 and set(json.loads(body)) == {"status"}
    for path in ("/metrics", "/ws/connections"):
        assert http_status(br, path)[0] == 403
        assert http_status(br, path, {"Authorization": "Bearer " + keys.token()})[0] == 403
        assert http_status(br, path, {"X-Api-Key": DEVICE_KEY})[0] == 403
        assert http_status(br, path, {"X-Api-Key": ADMIN_KEY})[0] == 200
        assert http_status(br, path + "?token=" + keys.token(roles=["admin"]))[0] == 200
    assert "broker" in admin_health(br)


def test_admin_listener_is_anonymous_and_serves_no_websocket(setup):
    br, keys = setup
    for path in ("/metrics", "/ws/connections"):
        assert http_status(br, path, port=br.admin_port)[0] == 200
    st, body = http_status(br, "/health", port=br.admin_port)
    assert st == 200 and json.loads(body)["broker"]["connected"]
    url = f"ws://127.0.0.1:{br.admin_port}/ws/telemetry/V1?token=" + keys.token(vehicles=["V1"])
    assert harness.ws_handshake_status(url) == 404


# ---- config ---------------------------------------------------------------------------------------------

def test_check_reports_auth_errors(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("auth:\n  issuers:\n    - {jwks_file: missing.json}\n"
                   "endpoints:\n  /ws/a/{id}: {rooms: [a], auth: required, require: {user: sub}}\n")
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "missing.json': cannot open" in out and "'user' is not a capture" in out
