"""Race sessions end to end: a monitor obtains a session id from the bridge over MQTT
(MQTT 5 response topic + correlation data, and MQTT 3.1.1 JSON reply_to/correlation),
publishes its setup once and telemetry; dashboards that join at different times (by
join_session or on /ws/session/{sid}) each get the setup and the latest telemetry first,
then live updates. Unknown ids get an error; the real simulator (telesim --session) takes
its id from the bridge."""
import json
import os
import re
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import BUILD_DIR, PROTO_CONFIG, Proc, wait_for

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TELESIM = os.path.join(BUILD_DIR, "simulator", "telesim")


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=PROTO_CONFIG)


class Monitor:
    """A paho client standing in for an in-vehicle monitor."""

    def __init__(self, port, v5):
        self.v5 = v5
        self.c = mqtt.Client(client_id=f"mon-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.replies = []
        self.ready = threading.Event()
        self.c.on_message = lambda c, u, m: self.replies.append(m)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def request(self, reply_to, correlation):
        before = len(self.replies)
        self.ready.clear()
        self.c.subscribe(reply_to, 1)
        assert self.ready.wait(5)
        if self.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = reply_to
            props.CorrelationData = correlation.encode()
            self.c.publish("session/request", json.dumps({"vehicle_id": "car-1"}), 1, properties=props)
        else:
            self.c.publish("session/request", json.dumps(
                {"vehicle_id": "car-1", "reply_to": reply_to, "correlation": correlation}), 1)
        wait_for(lambda: len(self.replies) > before, 5, what="a session reply")
        return self.replies[-1]

    def publish(self, topic, obj, retain=False):
        self.c.publish(topic, json.dumps(obj), 1, retain=retain).wait_for_publish()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_session_id_request(broker, bridge, v5):
    mon = Monitor(broker.port, v5)
    try:
        msg = mon.request("mon/replies/1", "corr-123")
        body = json.loads(msg.payload)
        assert UUID4.match(body["session_id"]), body
        assert body["correlation"] == "corr-123"
        assert body["room"] == f"session:{body['session_id']}"
        if v5:
            assert msg.properties.CorrelationData == b"corr-123"
        second = json.loads(mon.request("mon/replies/1", "corr-456").payload)
        assert second["session_id"] != body["session_id"] and second["correlation"] == "corr-456"
    finally:
        mon.close()


def test_request_without_reply_topic_is_ignored(broker, bridge, publisher):
    publisher.publish("session/request", {"vehicle_id": "x"}, wait=True)
    publisher.publish("session/request", "not json", wait=True)
    wait_for(lambda: "without a usable reply topic" in bridge.log(), 5, what="a log line")
    assert bridge.alive()


def test_three_dashboards_join_at_different_times(broker, bridge, clients):
    mon = Monitor(broker.port, True)
    try:
        sid = json.loads(mon.request("mon/r", "c1").payload)["session_id"]
        room = f"session:{sid}"
        mon.publish(f"session/{sid}/setup", {"session_id": sid, "track": "Monza"}, retain=True)
        dashboards = []
        for k in range(3):
            for i in range(5):
                mon.publish(f"session/{sid}/telemetry", {"k": k, "i": i, "speed": 100 + 10 * k + i})
            time.sleep(0.2)
            if k == 2:   # the third one uses the session endpoint instead of join_session
                ws = clients(bridge.url(f"/ws/session/{sid}"))
                assert ws.welcome["data"]["rooms"] == [room]
            else:
                ws = clients(bridge.url("/ws/connect"))
                ws.send_json({"type": "join_session", "session_id": sid, "id": k})
                rep = ws.recv_type("session_joined")
                assert rep["id"] == k and rep["session_id"] == sid and rep["room"] == room
            setup = ws.recv_type("setup_update")
            tele = ws.recv_type("telemetry_update")
            assert setup["room"] == room and setup["data"]["track"] == "Monza"
            assert tele["data"] == {"k": k, "i": 4, "speed": 100 + 10 * k + 4}, tele
            dashboards.append(ws)
        mon.publish(f"session/{sid}/telemetry", {"k": 9, "i": 0, "speed": 1})
        for ws in dashboards:   # the earlier ones saw the later telemetry live, in order
            seqs = []
            while True:
                live = ws.recv_type("telemetry_update")
                seqs.append(live["seq"])
                if live["data"]["k"] == 9:
                    break
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # leave_session stops the updates
        dashboards[0].send_json({"type": "leave_session", "session_id": sid, "id": "bye"})
        left = dashboards[0].recv_type("session_left")
        assert left["id"] == "bye" and left["room"] == room
        mon.publish(f"session/{sid}/telemetry", {"k": 10, "i": 0, "speed": 1})
        assert dashboards[1].recv_type("telemetry_update")["data"]["k"] == 10
        dashboards[0].expect_silence(0.5)
    finally:
        mon.close()


def test_unknown_session(bridge, clients):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "join_session", "session_id": "no-such-session", "id": 5})
    err = ws.recv_type("error")
    assert err["code"] == "unknown_session" and err["id"] == 5
    ws.send_json({"type": "leave_session", "session_id": "no-such-session"})
    assert ws.recv_type("error")["code"] == "not_subscribed"
    # the session endpoint tells, and keeps waiting in the room
    ep = clients(bridge.url("/ws/session/later-1"))
    err = ep.recv_type("error")
    assert err["code"] == "unknown_session" and err["room"] == "session:later-1"


def test_session_known_from_its_data(broker, bridge, clients, publisher):
    """A session whose id the bridge did not issue (made up by a monitor, or issued
    before a bridge restart) is joinable once its setup or telemetry is seen."""
    publisher.publish("session/own-id/setup", {"track": "Spa"}, wait=True)
    time.sleep(0.3)
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "join_session", "session_id": "own-id"})
    ws.recv_type("session_joined")
    assert ws.recv_type("setup_update")["data"] == {"track": "Spa"}


def test_sessions_disabled(broker, bridges, clients):
    cfg = PROTO_CONFIG.replace("sessions: {request_topic: session/request}\n", "")
    b = bridges(broker.port, config=cfg)
    ws = clients(b.url("/ws/connect"))
    ws.send_json({"type": "join_session", "session_id": "abc"})
    assert ws.recv_type("error")["code"] == "sessions_disabled"


@pytest.mark.parametrize("protocol", ["311", "5"])
def test_simulator_takes_its_id_from_the_bridge(broker, bridge, clients, protocol):
    p = Proc("telesim", [TELESIM, "--port", str(broker.port), "--session", "--duration", "3",
                         "--protocol", protocol])
    try:
        wait_for(lambda: "session id:" in p.log(), 10, what="telesim's session id")
        m = re.search(r"session id: (\S+) \((.*)\)", p.log())
        assert m and UUID4.match(m[1]) and m[2] == "from the bridge", p.log()
        sid = m[1]
        wait_for(lambda: "telemetry_update" in json.dumps(_joined(bridge, clients, sid)), 5,
                 what="session data")
    finally:
        p.stop()


def _joined(bridge, clients, sid):
    ws = clients(bridge.url("/ws/connect"))
    ws.send_json({"type": "join_session", "session_id": sid})
    frames = [ws.recv(5)]
    if frames[0]["type"] == "session_joined":
        frames.append(ws.recv(5))
        frames.append(ws.recv(5))
    return frames
