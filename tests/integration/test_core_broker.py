"""Bridge core, broker loss (issue 2): the broker is killed and restarted on the same port
while WebSocket clients stay connected; /health and heartbeats show the broker state
going to disconnected and back, the bridge resubscribes, and delivery resumes.

Real Mosquitto (killed with SIGKILL), the real telebridge, real WebSocket clients.
"""
import time

from harness import wait_for


def broker_state(br):
    b = br.health()["broker"]
    return b["connected"], b["state"]


def test_broker_killed_and_restarted_clients_stay_connected(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    veh = clients(br.url("/ws/telemetry/1"))
    pers = clients(br.url("/ws/personal"))
    publisher.publish("vehicle/1/telemetry", {"n": 0}, wait=True)
    assert veh.recv_type("telemetry_update")["seq"] == 1
    assert pers.recv_type("telemetry_update")["data"] == {"n": 0}
    publisher.close()

    broker.kill()
    wait_for(lambda: broker_state(br) == (False, "disconnected"), timeout=10, what="broker disconnected in /health")
    h = br.health()
    assert h["status"] == "degraded" and h["broker"]["disconnects"] == 1, h
    # Clients stay connected and are told through the heartbeat.
    hb = veh.recv(5, heartbeats=True)
    while hb["type"] != "heartbeat" or hb["data"]["broker"] != "disconnected":
        hb = veh.recv(5, heartbeats=True)
    assert hb["data"]["server_status"] == "degraded"
    assert h["connections"]["total"] == 2

    broker._start()  # same port
    wait_for(lambda: broker_state(br) == (True, "connected"), timeout=15, what="broker reconnected in /health")
    assert br.health()["status"] == "ok"
    assert "broker connection lost" in br.log()

    from harness import Publisher
    pub2 = Publisher(broker.port)
    try:
        # Retry the first message until it arrives: the resubscription may still be in flight.
        def delivered():
            pub2.publish("vehicle/1/telemetry", {"n": 1}, wait=True)
            try:
                return veh.recv_type("telemetry_update", 0.5)
            except TimeoutError:
                return None
        first = wait_for(delivered, timeout=10, interval=0, what="delivery after the broker restart")
        assert first["data"] == {"n": 1} and first["seq"] >= 2
        pub2.publish_many([("vehicle/1/telemetry", {"n": i}) for i in range(2, 50)])
        got = []
        while not got or got[-1]["data"]["n"] != 49:
            got.append(veh.recv_type("telemetry_update", 10))
        ns = [m["data"]["n"] for m in got]
        assert ns[-48:] == list(range(2, 50)), ns
        seqs = [first["seq"]] + [m["seq"] for m in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        # The other client, same connection as before the restart, gets the traffic too.
        assert pers.recv_type("telemetry_update", 10)["data"]["n"] in (1, 2)
        assert br.health()["connections"]["total"] == 2
    finally:
        pub2.close()


def test_bridge_started_before_the_broker_connects_when_it_comes(broker, bridges, clients, publisher):
    """No broker when the bridge starts: it serves clients and /health ("disconnected"),
    retries with backoff, and routes as soon as the broker is up on that port.
    (libmosquitto's network thread alone never retries a first connection that was
    refused; the bridge does.)"""
    publisher.close()
    broker.kill()
    br = bridges(broker.port, wait_broker=False)
    veh = clients(br.url("/ws/telemetry/3"))
    assert broker_state(br) == (False, "disconnected")
    assert br.health()["status"] == "degraded"
    time.sleep(1.5)  # several refused attempts
    broker._start()  # same port
    wait_for(lambda: broker_state(br) == (True, "connected"), timeout=15, what="broker connected in /health")
    from harness import Publisher
    pub2 = Publisher(broker.port)
    try:
        pub2.publish("vehicle/3/telemetry", {"n": 1}, wait=True)
        assert veh.recv_type("telemetry_update", 10)["data"] == {"n": 1}
    finally:
        pub2.close()
