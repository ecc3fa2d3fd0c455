"""sessions.validate (issue 15, point 5): session traffic is routed only for ids the bridge
issued. A publish to session/bogus/... reaches nobody, is counted (sessions_unknown) and
logged, and join_session bogus stays unknown; an issued session works as before.
Real Mosquitto, real telebridge, real clients."""
import json

import pytest

from harness import PROTO_CONFIG, wait_for
from test_session import Monitor

CONFIG = PROTO_CONFIG.replace("sessions: {request_topic: session/request}\n",
                              "sessions: {request_topic: session/request, validate: true}\n")


@pytest.fixture
def bridge(broker, bridges):
    return bridges(broker.port, config=CONFIG)


def test_bogus_session_is_not_routed(bridge, clients, publisher):
    ws = clients(bridge.url("/ws/session/bogus"))
    assert ws.recv_type("error")["code"] == "unknown_session"   # on connect, as before
    publisher.publish("session/bogus/telemetry", {"lap": 1}, wait=True)
    publisher.publish("session/bogus/setup", {"track": "x"}, wait=True)
    wait_for(lambda: bridge.health()["messages"]["sessions_unknown"] == 2, 10,
             what="2 refused deliveries counted")
    ws.expect_silence(0.3)
    any_ws = clients(bridge.url("/ws/any"))
    any_ws.send_json({"type": "join_session", "session_id": "bogus", "id": 1})
    err = any_ws.recv_type("error")
    assert err["code"] == "unknown_session"
    assert "not issued by this bridge" in bridge.log()


def test_issued_session_is_routed(bridge, broker, clients):
    mon = Monitor(broker.port, v5=True)
    try:
        reply = json.loads(mon.request("mon/reply", "c1").payload)
        sid = reply["session_id"]
        ws = clients(bridge.url(f"/ws/session/{sid}"))
        mon.publish(f"session/{sid}/telemetry", {"lap": 7})
        m = ws.recv_type("telemetry_update")
        assert m["room"] == f"session:{sid}" and m["data"]["lap"] == 7
        assert bridge.health()["messages"]["sessions_unknown"] == 0
    finally:
        mon.close()
