"""One delivery per connection per MQTT message (issue 15, point 2): a message a route sends
to several rooms of one connection arrives once, naming the rooms; server.delivery:
per_room restores one frame per room. Real Mosquitto, real telebridge, real clients."""
import pytest

from harness import PROTO_CONFIG


def subscribe(ws, rooms):
    ws.send_json({"type": "subscribe", "rooms": rooms})
    assert ws.recv_type("subscribed")["rooms"] == rooms


def routed(ws, timeout=10.0):
    while True:
        m = ws.recv(timeout)
        if "seq" in m:
            return m


@pytest.mark.parametrize("delivery", ["once", "per_room"])
def test_message_in_two_rooms_of_one_client(broker, bridges, clients, publisher, delivery):
    config = PROTO_CONFIG.replace("  max_message_bytes: 64k\n",
                                  f"  max_message_bytes: 64k\n  delivery: {delivery}\n")
    br = bridges(broker.port, config=config)
    both = clients(br.url("/ws/connect"))
    subscribe(both, ["vehicle:1", "personal"])
    one = clients(br.url("/ws/connect"))
    subscribe(one, ["personal"])
    publisher.publish("vehicle/1/telemetry", {"vehicle_id": "1", "n": 1}, wait=True)
    first = routed(both)
    assert first["data"]["n"] == 1
    if delivery == "once":
        assert first["room"] == "vehicle:1" and first["rooms"] == ["vehicle:1", "personal"]
        both.expect_silence(0.3)
    else:
        assert "rooms" not in first
        second = routed(both)
        assert {first["room"], second["room"]} == {"vehicle:1", "personal"}
    m = routed(one)
    assert m["room"] == "personal" and m["seq"] == 1
    one.expect_silence(0.2)
    # the next message is a new delivery
    publisher.publish("vehicle/1/telemetry", {"vehicle_id": "1", "n": 2}, wait=True)
    assert routed(both)["data"]["n"] == 2


def test_single_room_routes_name_no_rooms(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=PROTO_CONFIG)
    ws = clients(br.url("/ws/session/s1"))
    publisher.publish("session/s1/telemetry", {"lap": 1}, wait=True)
    m = routed(ws)
    assert m["room"] == "session:s1" and "rooms" not in m
