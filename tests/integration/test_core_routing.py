"""Bridge core, routing and endpoints (issue 2): personal / fleet dashboards without
crosstalk, the legacy /ws alias, per-endpoint connection counts, keep_last for late
joiners, unknown paths refused with 404, /health, and ${VAR:-default} in the config.

Real Mosquitto on a free loopback port, the real telebridge from the build tree, real
WebSocket clients (websocket-client); see harness.py and conftest.py.
"""
import json
import os

from harness import SOURCE_DIR, free_port, mqtt_pub, ws_handshake_status, wait_for


def collect(ws, n, timeout=10.0):
    return [ws.recv(timeout) for _ in range(n)]


def assert_seq_contiguous(msgs, room):
    seqs = [m["seq"] for m in msgs]
    assert all(m["room"] == room for m in msgs), [m["room"] for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seq not contiguous in {room}: {seqs}"


def test_personal_and_fleet_without_crosstalk(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    p1 = clients(br.url("/ws/personal"))
    p2 = clients(br.url("/ws/personal"))
    f1 = clients(br.url("/ws/fleet"))
    legacy = clients(br.url("/ws"))
    assert p1.welcome["data"]["rooms"] == ["personal"]
    assert f1.welcome["data"]["rooms"] == ["fleet"]
    assert legacy.welcome["data"]["rooms"] == ["personal"], legacy.welcome
    assert legacy.welcome["data"]["endpoint"] == "/ws"

    # Per-endpoint pools, over /health and /ws/connections.
    counts = br.endpoint_counts()
    assert (counts["/ws/personal"], counts["/ws/fleet"], counts["/ws"]) == (2, 1, 1), counts
    assert br.health()["connections"]["total"] == 4
    st, ctype, body = br.http_get("/ws/connections")
    assert st == 200 and "json" in ctype
    conns = json.loads(body)
    assert conns["total"] == 4
    assert (conns["endpoints"]["/ws/personal"], conns["endpoints"]["/ws/fleet"],
            conns["endpoints"]["/ws"]) == (2, 1, 1), conns

    n = 25
    items = []
    for i in range(n):
        items.append(("vehicle/1/telemetry", {"vehicle_id": "1", "simulation_mode": "personal", "i": i}))
        items.append(("vehicle/2/telemetry", {"vehicle_id": "2", "simulation_mode": "fleet", "i": i}))
        items.append(("vehicle/3/telemetry", {"vehicle_id": "3", "i": i}))  # no mode: personal
        items.append(("fleet/north", {"group": "north", "i": i}))
    publisher.publish_many(items)

    personal = collect(p1, 2 * n)
    for ws in (p2, legacy):
        got = collect(ws, 2 * n)
        assert [(m["seq"], m["data"]) for m in got] == [(m["seq"], m["data"]) for m in personal], \
            f"{ws.url} saw something else than /ws/personal"
    fleet = collect(f1, 2 * n)
    for ws in (p1, p2, legacy, f1):
        ws.expect_silence(0.3)

    assert_seq_contiguous(personal, "personal")
    assert_seq_contiguous(fleet, "fleet")
    assert {m["topic"] for m in personal} == {"vehicle/1/telemetry", "vehicle/3/telemetry"}
    assert all(m["type"] == "telemetry_update" for m in personal)
    assert all(m["data"].get("simulation_mode", "personal") == "personal" for m in personal)
    assert {m["topic"] for m in fleet} == {"vehicle/2/telemetry", "fleet/north"}
    assert all(m["data"].get("simulation_mode", "fleet") == "fleet" for m in fleet)
    assert {m["type"] for m in fleet} == {"telemetry_update", "fleet_update"}
    # Publication order is kept per topic within a room.
    for topic in ("vehicle/1/telemetry", "vehicle/3/telemetry"):
        assert [m["data"]["i"] for m in personal if m["topic"] == topic] == list(range(n))
    for topic in ("vehicle/2/telemetry", "fleet/north"):
        assert [m["data"]["i"] for m in fleet if m["topic"] == topic] == list(range(n))

    # A closed connection leaves its pool.
    p2.close()
    wait_for(lambda: br.endpoint_counts()["/ws/personal"] == 1, timeout=5, what="personal count 1")
    assert br.health()["connections"]["total"] == 3


def test_late_joiner_gets_last_value_after_welcome(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    publisher.publish_many([("vehicle/9/telemetry", {"n": i}) for i in range(3)])
    wait_for(lambda: br.counter("received") >= 3, what="3 messages received")

    late = clients(br.url("/ws/telemetry/9"))  # welcome already checked to be first
    last = late.recv_type("telemetry_update", 5)
    assert last["data"] == {"n": 2} and last["seq"] == 3 and last["room"] == "vehicle:9"
    late.expect_silence(0.3)
    publisher.publish("vehicle/9/telemetry", {"n": 3}, wait=True)
    nxt = late.recv_type("telemetry_update", 5)
    assert nxt["data"] == {"n": 3} and nxt["seq"] == 4

    # The same on a payload-chosen room: /ws/personal gets the newest personal message.
    pers = clients(br.url("/ws/personal"))
    got = pers.recv_type("telemetry_update", 5)
    assert got["room"] == "personal" and got["data"] == {"n": 3}


def test_room_without_keep_last_gives_nothing_on_join(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    publisher.publish("nokeep/a", {"n": 1}, wait=True)
    wait_for(lambda: br.counter("received") >= 1, what="message received")
    c = clients(br.url("/ws/nk/a"))
    c.expect_silence(0.7)
    publisher.publish("nokeep/a", {"n": 2}, wait=True)
    got = c.recv_type("plain_update", 5)
    assert got["data"] == {"n": 2} and got["room"] == "nk:a"


def test_unknown_paths_refused_with_404(broker, bridges):
    br = bridges(broker.port)
    for path in ("/ws/nope", "/ws/telemetry", "/ws/telemetry/7/extra", "/wsx", "/", "/health"):
        assert ws_handshake_status(br.url(path)) == 404, path
    assert ws_handshake_status(br.url("/ws/telemetry/7")) == 101
    assert br.health()["connections"]["total"] == 0
    assert br.http_get("/no/such/page")[0] == 404
    assert "refused: 404" in br.log()


def test_health_reports_broker_connections_and_counters(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    st, ctype, body = br.http_get("/health")
    assert st == 200 and ctype.startswith("application/json"), (st, ctype)
    h = json.loads(body)
    assert h["status"] == "ok"
    assert h["broker"]["connected"] is True and h["broker"]["state"] == "connected"
    assert h["broker"]["port"] == broker.port
    assert h["connections"]["total"] == 0
    assert h["uptime_s"] >= 0
    for k in ("received", "delivered", "dropped"):
        assert h["messages"][k] == 0, h["messages"]

    c = clients(br.url("/ws/telemetry/4"))
    # The bridge subscribes only to what its routes need: "nobody/listens" never arrives.
    publisher.publish_many([("nobody/listens", "{}")] + [("vehicle/4/telemetry", {"n": i}) for i in range(5)])
    for i in range(5):
        assert c.recv_type("telemetry_update")["data"] == {"n": i}
    h = br.health()
    assert h["messages"]["received"] == 5, h["messages"]
    assert h["messages"]["delivered"] >= 5, h["messages"]  # plus welcome / heartbeats
    assert h["connections"]["total"] == 1
    assert h["connections"]["endpoints"]["/ws/telemetry/{vehicle_id}"] == 1
    # /ws/status is the same document.
    st, _, body = br.http_get("/ws/status")
    assert st == 200 and json.loads(body)["connections"]["total"] == 1


def test_example_config_with_env_defaults_end_to_end(broker, bridges, clients, publisher):
    """config/telebridge.yaml takes its broker port and listen address from
    ${TB_MQTT_PORT:-1883} / ${TB_LISTEN:-127.0.0.1:8080}."""
    port = free_port()
    br = bridges(broker.port, port=port,
                 config_path=os.path.join(SOURCE_DIR, "config", "telebridge.yaml"),
                 env={"TB_MQTT_PORT": str(broker.port), "TB_LISTEN": f"127.0.0.1:{port}"})
    assert br.health()["broker"]["port"] == broker.port
    veh = clients(br.url("/ws/telemetry/7"))
    fleet = clients(br.url("/ws/fleet"))
    mqtt_pub(broker.port, "vehicle/7/telemetry", '{"simulation_mode":"fleet","speed":42}', qos=1)
    for ws, room in ((veh, "vehicle:7"), (fleet, "fleet")):
        m = ws.recv_type("telemetry_update")
        assert m["room"] == room and m["data"]["speed"] == 42


ENV_CONFIG = """\
mqtt:
  port: "${TB_IT_BROKER_PORT}"
  host: "${TB_IT_UNSET_HOST_VAR:-127.0.0.1}"
server:
  listen: "@LISTEN@"
endpoints:
  /ws/env: {rooms: ["${TB_IT_ROOM_VAR:-dflt}"]}
routes:
  - match: "${TB_IT_TOPIC_VAR:-envtest}/{x}"
    rooms: ["${TB_IT_ROOM_VAR:-dflt}"]
    type: env_update
heartbeat: {interval: 0}
"""


def test_env_substitution_with_defaults(broker, bridges, clients):
    for env, room, topic in (({}, "dflt", "envtest/1"),
                             ({"TB_IT_ROOM_VAR": "custom", "TB_IT_TOPIC_VAR": "other"}, "custom", "other/1")):
        assert "TB_IT_ROOM_VAR" not in os.environ and "TB_IT_UNSET_HOST_VAR" not in os.environ
        br = bridges(broker.port, config=ENV_CONFIG, env={"TB_IT_BROKER_PORT": str(broker.port), **env})
        c = clients(br.url("/ws/env"))
        assert c.welcome["data"]["rooms"] == [room]
        mqtt_pub(broker.port, topic, '{"ok":1}', qos=1)
        m = c.recv_type("env_update")
        assert m["room"] == room and m["topic"] == topic and m["data"] == {"ok": 1}
        c.close()
        br.stop_clean()


def test_session_late_joiner_gets_setup_and_latest_telemetry(broker, bridges, clients, publisher):
    """DESIGN.md system 2 and config/telebridge.yaml: a dashboard joining a session room
    immediately receives the current setup AND the latest telemetry, both routed to
    session:<sid> with keep_last."""
    br = bridges(broker.port)
    publisher.publish("session/abc/setup", {"car": "GT3"}, wait=True)
    publisher.publish_many([("session/abc/telemetry", {"lap": i}) for i in range(3)])
    wait_for(lambda: br.counter("received") >= 4, what="4 messages received")
    late = clients(br.url("/ws/session/abc"))
    got = [late.recv(3), late.recv(3)]
    types = sorted(m["type"] for m in got)
    assert types == ["setup_update", "telemetry_update"], got
    assert next(m for m in got if m["type"] == "setup_update")["data"] == {"car": "GT3"}
    assert next(m for m in got if m["type"] == "telemetry_update")["data"] == {"lap": 2}

