"""Several bridges as one (issue 16): three bridges with one cluster name on one Mosquitto.

Every bridge evaluates the alert rules; only the owner of an alert's key (rendezvous
hashing over the live set) announces and publishes it, and the others show what it
published. Checked with real processes and clients on every bridge: each alert is raised,
acknowledged and cleared exactly once on MQTT and once per client; an ack on any bridge
reaches every client and cannot be overwritten; a session request gets one answer and the
id is joinable everywhere; a bridge killed with SIGKILL mid-stream has its alerts taken
over (not raised again, and their clear not lost), and comes back under the same id; a
second process with an instance id that is online is refused at start; a resume with
another bridge's epoch gets resync.
"""
import json
import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest

import harness
from harness import PROTO_CONFIG, wait_for

ALERTS = """\
alerts:
  - name: engine_overheat
    match: vehicle/{id}/telemetry
    when: engine_metrics.temperature > 110
    for: 1s
    clear_when: engine_metrics.temperature < 100
    severity: critical
    message: "Engine temperature {engine_metrics.temperature} C on vehicle {id}"
    rooms: [alerts]
cluster: {name: "it-cluster"}
"""

CONFIG = PROTO_CONFIG.replace("endpoints:\n", "endpoints:\n  /ws/alerts/{user}:          {rooms: [alerts]}\n") + ALERTS
VEHICLES = [f"c{i}" for i in range(8)]


def config_for(name):
    """A config whose client_id (and so instance id) is fixed: restartable under that id."""
    return CONFIG.replace("tb-it-@UID@", f"tb-cl-{os.getpid()}-{name}")


def telemetry(vid, temp):
    return json.dumps({"vehicle_id": vid, "speed": 50.0, "engine_metrics": {"temperature": temp}})


def live_members(br, n):
    """Waits until the bridge's /health shows n live members (itself included)."""
    wait_for(lambda: len(br.health()["cluster"]["live"]) == n, 15,
             what=f"{n} live members on the bridge {br.pid}")


def start_cluster(broker, bridges, names=("a", "b", "c")):
    brs = [bridges(broker.port, config=config_for(n)) for n in names]
    for br in brs:
        live_members(br, len(brs))
    return brs


class Watcher:
    """Every message on alerts/# (or 'topic'; retained or live), as (topic, retain,
    payload dict or None)."""

    def __init__(self, port, topic="alerts/#"):
        self.msgs = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(client_id=f"watch-{time.monotonic_ns()}", protocol=mqtt.MQTTv311)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(topic, 1)
        assert self.ready.wait(5)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.retain, json.loads(m.payload) if m.payload else None))

    def active_states(self, aid, acked=None):
        with self.lock:
            return [p for _, r, p in self.msgs if p and p.get("id") == aid and p["state"] == "active"
                    and (acked is None or p["acknowledged"] == acked)]

    def empties(self, topic):
        with self.lock:
            return [1 for t, _, p in self.msgs if t == topic and p is None]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def drain(ws, seconds):
    """Every alert-ish frame a client gets within 'seconds'."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = ws.recv(max(0.05, end - time.monotonic()))
        except TimeoutError:
            break
        if m["type"].startswith("alert") or m["type"] in ("acked", "error"):
            out.append(m)
    return out


def count(frames, type_, aid=None):
    return sum(1 for f in frames if f["type"] == type_ and (aid is None or f["data"]["id"] == aid))


def hold(publisher, vids, temp, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish_many([(f"vehicle/{v}/telemetry", telemetry(v, temp)) for v in vids])
        time.sleep(0.2)


def owner_of(broker_port, vid):
    st = Watcher(broker_port)
    try:
        wait_for(lambda: st.active_states(f"engine_overheat:{vid}"), 5, what="retained state")
        return st.active_states(f"engine_overheat:{vid}")[-1]["instance"]
    finally:
        st.close()


@pytest.fixture
def watcher(broker):
    w = Watcher(broker.port)
    yield w
    w.close()


def test_alerts_raised_acked_cleared_once_across_three_bridges(broker, bridges, clients, publisher, watcher):
    brs = start_cluster(broker, bridges)
    users = ["alice", "bob", "carol"]
    ws = [clients(br.url(f"/ws/alerts/{u}")) for br, u in zip(brs, users)]
    hold(publisher, VEHICLES, 120, 2.5)
    got = [drain(w, 1.5) for w in ws]
    ids = [f"engine_overheat:{v}" for v in VEHICLES]
    for frames in got:
        for aid in ids:
            assert count(frames, "alert", aid) == 1, (aid, frames)
    # one raise per alert on the broker, with one raised_at everywhere
    for aid in ids:
        states = watcher.active_states(aid, acked=False)
        assert len(states) == 1, (aid, states)
        assert {f["data"]["raised_at"] for frames in got for f in frames if f["data"]["id"] == aid} \
            == {states[0]["raised_at"]}
    owners = {watcher.active_states(aid)[0]["instance"] for aid in ids}
    assert len(owners) >= 2, f"8 keys all owned by {owners}: ownership is not shared"
    h = brs[0].health()
    assert h["alerts"]["ready"] and h["cluster"]["name"] == "it-cluster"
    assert sorted(h["cluster"]["live"]) == sorted(b.health()["cluster"]["instance_id"] for b in brs)

    # an ack on bridge 0 reaches every client once and is recorded once
    aid = ids[0]
    ws[0].send_json({"type": "ack_alert", "alert_id": aid, "id": 1})
    acks = [drain(w, 1.0) for w in ws]
    assert [f for f in acks[0] if f["type"] == "acked"][0]["already_acknowledged"] is False
    for frames in acks:
        assert count(frames, "alert_acknowledged", aid) == 1, frames
        assert [f for f in frames if f["type"] == "alert_acknowledged"][0]["data"]["acknowledged_by"] == "alice"
    # bob, on another bridge, cannot overwrite it
    ws[1].send_json({"type": "ack_alert", "alert_id": aid, "id": 2})
    again = drain(ws[1], 0.8)
    assert [f for f in again if f["type"] == "acked"][0]["already_acknowledged"] is True
    assert count(again, "alert_acknowledged") == 0
    acked = watcher.active_states(aid, acked=True)
    assert len(acked) == 1 and acked[0]["acknowledged_by"] == "alice"
    # a client joining any bridge later sees the acknowledged state
    late = clients(brs[2].url("/ws/alerts/dave"))
    first = [f for f in drain(late, 0.8) if f["type"] == "alert" and f["data"]["id"] == aid]
    assert len(first) == 1 and first[0]["data"]["acknowledged"] is True

    # clears: once per client, and the retained states are gone
    hold(publisher, VEHICLES, 90, 0.6)
    cleared = [drain(w, 1.5) for w in ws]
    for frames in cleared:
        for a in ids:
            assert count(frames, "alert_cleared", a) == 1, (a, frames)
            assert count(frames, "alert", a) == 0
    for v in VEHICLES:
        assert len(watcher.empties(f"alerts/{v}/engine_overheat")) == 1


def test_hostile_ack_forward_and_state_from_a_stranger_are_refused(broker, bridges, clients, publisher, watcher):
    brs = start_cluster(broker, bridges, names=("a", "b"))
    ws = [clients(br.url("/ws/alerts/u")) for br in brs]
    hold(publisher, ["h1"], 120, 2.0)
    for w in ws:
        assert count(drain(w, 1.0), "alert", "engine_overheat:h1") == 1
    # a forged forwarded ack without the cluster's origin, and a planted active state
    harness.mqtt_pub(broker.port, "telebridge/ack/engine_overheat:h1",
                     json.dumps({"alert_id": "engine_overheat:h1", "by": "mallory"}), qos=1)
    harness.mqtt_pub(broker.port, "alerts/h9/engine_overheat", json.dumps(
        {"id": "engine_overheat:h9", "rule": "engine_overheat", "key": "h9", "state": "active",
         "rooms": ["alerts"]}), qos=1)
    for w in ws:
        assert drain(w, 1.0) == []
    for br in brs:
        wait_for(lambda: "refused" in br.log() or "not applied" in br.log(), 5, what="refusal logged")
    assert watcher.active_states("engine_overheat:h1", acked=True) == []
    # client-side refusals on a member that may not own the alert: same as on one bridge
    outsider = clients(brs[1].url("/ws/connect"))
    outsider.send_json({"type": "ack_alert", "alert_id": "engine_overheat:h1", "id": 1})
    assert outsider.recv_type("error")["code"] == "not_allowed"
    ws[1].send_json({"type": "ack_alert", "alert_id": "engine_overheat:h9", "id": 2})
    assert [f for f in drain(ws[1], 0.8) if f["type"] == "error"][0]["code"] == "unknown_alert"
    ws[1].send_json({"type": "ack_alert", "alert_id": "engine_overheat:h1", "by": "mallory", "id": 3})
    assert [f for f in drain(ws[1], 0.8) if f["type"] == "error"][0]["code"] == "not_allowed"
    assert watcher.active_states("engine_overheat:h1", acked=True) == []


def test_fan_out_every_client_on_every_bridge_gets_every_message_once(broker, bridges, clients, publisher):
    brs = start_cluster(broker, bridges)
    ws = [clients(br.url("/ws/telemetry/f1")) for br in brs for _ in range(3)]
    publisher.publish_many([("vehicle/f1/telemetry", {"n": i}) for i in range(200)])
    for w in ws:
        got = []
        while len(got) < 200:
            m = w.recv(10)
            if m["type"] == "telemetry_update":
                got.append(m["data"]["n"])
        assert got == list(range(200))
        w.expect_silence(0.2)


def test_kill9_of_a_bridge_mid_stream_takes_over_without_reraise_or_lost_clear(broker, bridges, clients, publisher, watcher):
    names = ("a", "b", "c")
    brs = start_cluster(broker, bridges, names)
    ws = [clients(br.url("/ws/alerts/u")) for br in brs]
    hold(publisher, VEHICLES, 120, 2.5)
    ids = [f"engine_overheat:{v}" for v in VEHICLES]
    for w in ws:
        frames = drain(w, 1.0)
        assert all(count(frames, "alert", a) == 1 for a in ids), frames
    owners = {a: watcher.active_states(a)[0]["instance"] for a in ids}
    victim_id = owners[ids[0]]
    victim = next(i for i, n in enumerate(names) if victim_id.endswith("-" + n))
    brs[victim].kill()
    survivors = [i for i in range(3) if i != victim]
    for i in survivors:
        live_members(brs[i], 2)
    # still hot: nobody raises again
    hold(publisher, VEHICLES, 120, 1.5)
    for i in survivors:
        assert count(drain(ws[i], 0.5), "alert") == 0
    for a in ids:
        assert len(watcher.active_states(a, acked=False)) == 1, a
    # the killed bridge comes back under its id and rejoins
    back = bridges(broker.port, config=config_for(names[victim]))
    for br in [brs[i] for i in survivors] + [back]:
        live_members(br, 3)
    wb = clients(back.url("/ws/alerts/u"))
    assert sorted(f["data"]["id"] for f in drain(wb, 1.0) if f["type"] == "alert") == sorted(ids)
    # cool down: every alert cleared exactly once, for every client, on the broker too
    hold(publisher, VEHICLES, 90, 0.6)
    for w in [ws[i] for i in survivors] + [wb]:
        frames = drain(w, 1.5)
        for a in ids:
            assert count(frames, "alert_cleared", a) == 1, (a, frames)
            assert count(frames, "alert", a) == 0
    for v in VEHICLES:
        assert len(watcher.empties(f"alerts/{v}/engine_overheat")) == 1


def test_alert_raised_while_its_owner_is_dead_is_published_by_the_new_owner(broker, bridges, clients, publisher, watcher):
    """The owner dies before its alert fires: the next owner raises it (once)."""
    names = ("a", "b")
    brs = start_cluster(broker, bridges, names)
    ws = [clients(br.url("/ws/alerts/u")) for br in brs]
    # find a vehicle owned by b, then kill b while its condition is pending
    hold(publisher, VEHICLES, 120, 2.5)
    ids = {v: watcher.active_states(f"engine_overheat:{v}")[0]["instance"] for v in VEHICLES}
    hold(publisher, VEHICLES, 90, 0.6)
    drain(ws[0], 1.0)
    vid = next(v for v, inst in ids.items() if inst.endswith("-b"))
    publisher.publish(f"vehicle/{vid}/telemetry", telemetry(vid, 120), wait=True)
    brs[1].kill()
    live_members(brs[0], 1)
    hold(publisher, [vid], 120, 1.5)
    frames = drain(ws[0], 1.0)
    assert count(frames, "alert", f"engine_overheat:{vid}") == 1, frames
    assert len(watcher.active_states(f"engine_overheat:{vid}", acked=False)) == 2   # the first raise, and this one


def test_one_session_answer_and_the_id_is_joinable_on_every_bridge(broker, bridges, clients):
    from test_session import Monitor
    brs = start_cluster(broker, bridges)
    mon = Monitor(broker.port, True)
    try:
        for k in range(6):
            msg = mon.request(f"mon/replies/{k}", f"corr-{k}")
            sid = json.loads(msg.payload)["session_id"]
            time.sleep(0.3)
            assert len([m for m in mon.replies if m.topic == f"mon/replies/{k}"]) == 1
            for br in brs:
                w = clients(br.url("/ws/connect"))
                w.send_json({"type": "join_session", "session_id": sid})
                assert w.recv_type("session_joined")["session_id"] == sid
                w.close()
    finally:
        mon.close()


class RegistryWatcher(Watcher):
    """Every message on telebridge/sessions/# (the cluster's retained registry of ids)."""

    def __init__(self, port):
        super().__init__(port, "telebridge/sessions/#")

    def entries(self, sid):
        with self.lock:
            return [p for t, _, p in self.msgs if t == f"telebridge/sessions/{sid}"]


def test_session_ids_expire_from_every_member_and_the_retained_registry(broker, bridges, clients):
    """sessions.ttl: an id is forgotten on every member after its TTL, and exactly one
    member (its owner) clears the retained entry, so the broker does not keep every id ever
    issued; a bridge started later neither learns an expired id nor re-announces it."""
    from test_session import Monitor
    ttl_cfg = lambda n: config_for(n).replace("sessions: {request_topic: session/request}",
                                              "sessions: {request_topic: session/request, validate: true, ttl: 3s}")
    brs = [bridges(broker.port, config=ttl_cfg(n)) for n in ("ta", "tb", "tc")]
    for br in brs:
        live_members(br, 3)
    reg = RegistryWatcher(broker.port)
    mon = Monitor(broker.port, True)
    try:
        sid = json.loads(mon.request("mon/ttl/1", "corr-ttl").payload)["session_id"]
        wait_for(lambda: reg.entries(sid), 5, what="the retained registry entry")
        entry = reg.entries(sid)[0]
        assert entry["session_id"] == sid and entry["issued_at"] > 0
        for br in brs:
            wait_for(lambda: br.health()["sessions"] == 1, 5, what="the id known on every member")
        # every member forgets it after the TTL; one empty retained publish clears the entry
        for br in brs:
            wait_for(lambda: br.health()["sessions"] == 0, 10, what="the id forgotten after 3 s")
        wait_for(lambda: None in reg.entries(sid), 5, what="the retained entry cleared")
        time.sleep(1.5)
        assert reg.entries(sid).count(None) == 1, reg.entries(sid)
        w = clients(brs[1].url("/ws/connect"))
        w.send_json({"type": "join_session", "session_id": sid})
        assert w.recv_type("error")["code"] == "unknown_session"
        # nothing retained is left for a bridge that starts now
        late = RegistryWatcher(broker.port)
        time.sleep(1.0)
        assert late.entries(sid) == []
        late.close()
        # a fresh id is still issued, announced and joinable
        sid2 = json.loads(mon.request("mon/ttl/2", "corr-ttl-2").payload)["session_id"]
        w.send_json({"type": "join_session", "session_id": sid2})
        assert w.recv_type("session_joined")["session_id"] == sid2
    finally:
        mon.close()
        reg.close()


def test_duplicate_instance_id_is_refused_at_start(broker, bridges):
    a = bridges(broker.port, config=config_for("dup"))
    with pytest.raises(RuntimeError) as e:
        bridges(broker.port, config=config_for("dup"))
    assert "refusing to start: instance" in str(e.value) and "is online elsewhere" in str(e.value)
    assert a.health()["broker"]["connected"]
    assert "session taken over" not in a.log()


def test_resume_with_another_bridges_epoch_gets_resync(broker, bridges, clients, publisher):
    a, b = start_cluster(broker, bridges, names=("a", "b"))
    wa = clients(a.url("/ws/connect"))
    wa.send_json({"type": "subscribe", "rooms": ["vehicle:r"]})
    wa.recv_type("subscribed")
    publisher.publish("vehicle/r/telemetry", {"n": 1}, wait=True)
    seq = wa.recv_type("telemetry_update")["seq"]
    assert wa.welcome["data"]["epoch"] != clients(b.url("/ws/connect")).welcome["data"]["epoch"]
    wb = clients(b.url("/ws/connect"))
    wb.send_json({"type": "subscribe", "rooms": ["vehicle:r"], "since": {"vehicle:r": seq},
                  "epoch": wa.welcome["data"]["epoch"]})
    wb.recv_type("subscribed")
    assert wb.recv_type("resync")["reason"] == "epoch_changed"
    assert wb.recv_type("telemetry_update")["data"] == {"n": 1}



def test_reuse_port_lets_processes_share_one_port(broker, bridges, clients):
    port = harness.free_port()
    cfg = config_for("rp1").replace('server:\n', 'server:\n  reuse_port: true\n', 1)
    first = bridges(broker.port, config=cfg, port=port)
    second = bridges(broker.port, config=config_for("rp2").replace('server:\n', 'server:\n  reuse_port: true\n', 1),
                     port=port)
    assert first.alive() and second.alive()
    seen = set()
    for _ in range(40):   # the kernel spreads connections over both listeners
        w = clients(f"ws://127.0.0.1:{port}/ws/connect")
        seen.add(w.welcome["data"]["epoch"])
        w.close()
        if len(seen) == 2:
            break
    assert len(seen) == 2, "every connection went to one process"
    first.stop_clean()
    w = clients(f"ws://127.0.0.1:{port}/ws/connect")   # the other one still serves the port
    assert w.welcome["type"] == "welcome"
    # a process without reuse_port cannot bind the port (the harness's start-up check may
    # be answered by the process that serves it, so wait for this one to exit)
    try:
        third = bridges(broker.port, config=config_for("rp3"), port=port, wait_broker=False)
        wait_for(lambda: not third.alive(), 10, what="the third process to give up")
        log = third.log()
    except RuntimeError as e:
        log = str(e)
    assert "cannot listen" in log
