"""Bounds a publisher cannot push past: the number of rooms in memory (server.max_rooms),
and room names taken from payload values (a value that is not a plain name cannot steer a
message into another room)."""
import json

import harness
from harness import wait_for

LIMITED = harness.CORE_CONFIG.replace("  max_connections: 1000\n",
                                      "  max_connections: 1000\n  max_rooms: 4\n")


def test_room_limit_bounds_rooms_and_keeps_existing_ones_working(broker, bridges, clients, publisher):
    br = bridges(broker.port, config=LIMITED)
    c = clients(br.url("/ws/telemetry/0"))            # room vehicle:0 exists (1)
    publisher.publish_many([(f"vehicle/{i}/telemetry", {"i": i}) for i in range(10)])
    wait_for(lambda: br.counter("received") >= 10, what="all received")
    h = br.health()
    assert h["rooms"] <= 4, h["rooms"]
    assert h["rooms_refused"] > 0
    assert c.recv_type("telemetry_update")["data"] == {"i": 0}
    publisher.publish("vehicle/0/telemetry", {"again": True}, wait=True)
    assert c.recv_type("telemetry_update")["data"] == {"again": True}


def test_payload_value_cannot_name_another_room(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    victim = clients(br.url("/ws/telemetry/42"))
    personal = clients(br.url("/ws/personal"))
    # simulation_mode picks the pool room; "vehicle:42" is not a plain name -> personal
    publisher.publish("vehicle/7/telemetry", {"simulation_mode": "vehicle:42", "x": 1}, wait=True)
    m = personal.recv_type("telemetry_update")
    assert m["room"] == "personal" and m["data"]["x"] == 1
    victim.expect_silence(0.5)


TTL = harness.CORE_CONFIG.replace("""  - match: nokeep/{x}
    rooms: ["nk:{x}"]
    type: plain_update
""", """  - match: nokeep/{x}
    rooms: ["nk:{x}"]
    type: plain_update
    history: 10
    history_ttl: 1s
""")


def test_history_ttl_frees_memory(broker, bridges, clients, publisher):
    assert TTL != harness.CORE_CONFIG
    br = bridges(broker.port, config=TTL)
    before = br.health()["rooms"]
    publisher.publish_many([(f"nokeep/t{i}", {"i": i}) for i in range(20)])
    wait_for(lambda: br.health()["rooms"] >= before + 20, what="20 rooms holding history")
    # entries older than 1 s are swept (every 5 s), and the emptied rooms are freed
    wait_for(lambda: br.health()["rooms"] == before, timeout=15, what="expired rooms freed")
