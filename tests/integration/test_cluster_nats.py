"""Several bridges as one on a 3-node NATS cluster with MQTT (issue 16): one bridge per
node. NATS speaks MQTT 3.1.1 only (session replies use the JSON reply_to), needs JetStream
and a server_name per node, has no $share, and its retained messages come from a
replicated stream. The same checks as test_cluster.py on Mosquitto: each alert raised,
acknowledged and cleared once on MQTT and once per client, a kill -9 of an owner taken
over without re-raise or lost clear, one session answer joinable on every bridge, a
duplicate instance id refused. Skipped when Debian's nats-server is not installed."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import harness
from harness import wait_for
from test_cluster import VEHICLES, Watcher, config_for, count, drain, hold

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None,
                                reason="nats-server not installed (scripts/install-deps.sh)")


class NatsCluster:
    """Three nats-server processes in one cluster, each with JetStream and MQTT."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tb-nats-")
        ports = [harness.free_port() for _ in range(9)]
        self.client, self.route, self.mqtt = ports[0:3], ports[3:6], ports[6:9]
        self.nodes = []
        for i in range(3):
            d = os.path.join(self.dir, f"n{i}")
            os.makedirs(d)
            routes = ", ".join(f"nats-route://127.0.0.1:{self.route[j]}" for j in range(3) if j != i)
            conf = os.path.join(d, "nats.conf")
            with open(conf, "w") as f:
                f.write(f"server_name: n{i}\nlisten: 127.0.0.1:{self.client[i]}\n"
                        f"jetstream {{ store_dir: \"{d}/js\", max_memory_store: 64MB, max_file_store: 256MB }}\n"
                        f"mqtt {{ listen: 127.0.0.1:{self.mqtt[i]} }}\n"
                        f"cluster {{ name: tb, listen: 127.0.0.1:{self.route[i]}, routes: [{routes}] }}\n")
            self.nodes.append(harness.Proc(f"nats-n{i}", ["nats-server", "-c", conf]))
        for p in self.mqtt:
            harness.wait_port(p, timeout=20)
        # JetStream elects its meta leader, then MQTT can store retained messages
        wait_for(self._retained_works, 30, interval=0.5, what="NATS MQTT retained messages")

    def _retained_works(self):
        topic = f"tb-probe/{time.monotonic_ns()}"
        try:
            harness.mqtt_pub(self.mqtt[0], topic, "x", retain=True, qos=1)
            r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.mqtt[2]), "-V", "mqttv311",
                                "-t", topic, "-C", "1", "-W", "2", "--retained-only"],
                               capture_output=True, timeout=10)
            return r.stdout.strip() == b"x"
        except Exception:
            return False

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nats():
    c = NatsCluster()
    yield c
    c.stop()


def nats_config(name):
    return config_for(name).replace("protocol: 5", "protocol: 311")


def connected(br):
    """NATS creates a JetStream consumer per QoS 1 subscription: on a loaded machine the
    SUBACKs take seconds, more than the harness's 15 s start-up wait allows."""
    wait_for(lambda: br.health()["broker"]["connected"], 90, interval=0.2,
             what="bridge connected to NATS")
    return br


def start_on_nats(nats, bridges, names):
    brs = [connected(bridges(nats.mqtt[i % 3], config=nats_config(n), wait_broker=False))
           for i, n in enumerate(names)]
    for br in brs:
        wait_for(lambda: len(br.health()["cluster"]["live"]) == len(brs), 60, interval=0.2,
                 what="every member live")
    return brs


def test_nats_alerts_once_ack_and_clear(nats, bridges, clients):
    tag = f"n{time.monotonic_ns() % 100000}"
    brs = start_on_nats(nats, bridges, [f"{tag}a", f"{tag}b", f"{tag}c"])
    watcher = Watcher(nats.mqtt[1])
    pub = harness.Publisher(nats.mqtt[2])
    try:
        ws = [clients(br.url(f"/ws/alerts/{u}")) for br, u in zip(brs, ("alice", "bob", "carol"))]
        vids = [f"{tag}{v}" for v in VEHICLES]
        ids = [f"engine_overheat:{v}" for v in vids]
        hold(pub, vids, 120, 2.5)
        got = [drain(w, 2.0) for w in ws]
        for frames in got:
            for aid in ids:
                assert count(frames, "alert", aid) == 1, (aid, frames)
        wait_for(lambda: all(watcher.active_states(a) for a in ids), 5, what="states on the broker")
        for aid in ids:
            assert len(watcher.active_states(aid, acked=False)) == 1, aid
        ws[0].send_json({"type": "ack_alert", "alert_id": ids[0], "id": 1})
        for w in ws:
            frames = drain(w, 1.5)
            assert count(frames, "alert_acknowledged", ids[0]) == 1, frames
        ws[2].send_json({"type": "ack_alert", "alert_id": ids[0], "id": 2})
        assert [f for f in drain(ws[2], 1.0) if f["type"] == "acked"][0]["already_acknowledged"] is True
        hold(pub, vids, 90, 0.6)
        for w in ws:
            frames = drain(w, 2.0)
            for aid in ids:
                assert count(frames, "alert_cleared", aid) == 1, (aid, frames)
        for v in vids:
            wait_for(lambda: len(watcher.empties(f"alerts/{v}/engine_overheat")) == 1, 5, what="clear")
    finally:
        pub.close()
        watcher.close()


def test_nats_kill9_takeover_and_restart(nats, bridges, clients):
    tag = f"k{time.monotonic_ns() % 100000}"
    names = [f"{tag}a", f"{tag}b", f"{tag}c"]
    brs = start_on_nats(nats, bridges, names)
    watcher = Watcher(nats.mqtt[0])
    pub = harness.Publisher(nats.mqtt[1])
    try:
        ws = [clients(br.url("/ws/alerts/u")) for br in brs]
        vids = [f"{tag}{v}" for v in VEHICLES]
        ids = [f"engine_overheat:{v}" for v in vids]
        hold(pub, vids, 120, 2.5)
        for w in ws:
            frames = drain(w, 2.0)
            assert all(count(frames, "alert", a) == 1 for a in ids), frames
        wait_for(lambda: all(watcher.active_states(a) for a in ids), 5, what="states on the broker")
        owner = watcher.active_states(ids[0])[0]["instance"]
        victim = next(i for i, n in enumerate(names) if owner.endswith("-" + n))
        brs[victim].kill()
        survivors = [i for i in range(3) if i != victim]
        for i in survivors:
            wait_for(lambda: len(brs[i].health()["cluster"]["live"]) == 2, 60, what="the will")
        hold(pub, vids, 120, 1.5)
        for i in survivors:
            assert count(drain(ws[i], 0.5), "alert") == 0
        back = connected(harness.Bridge(nats.mqtt[victim], config=nats_config(names[victim]),
                                        wait_broker=False))
        try:
            for br in [brs[i] for i in survivors] + [back]:
                wait_for(lambda: len(br.health()["cluster"]["live"]) == 3, 60, what="the rejoin")
            hold(pub, vids, 90, 0.6)
            for i in survivors:
                frames = drain(ws[i], 2.0)
                for a in ids:
                    assert count(frames, "alert_cleared", a) == 1, (a, frames)
                    assert count(frames, "alert", a) == 0
            for a in ids:
                assert len(watcher.active_states(a, acked=False)) == 1, a
        finally:
            back.stop_clean()
            back.cleanup()
    finally:
        pub.close()
        watcher.close()


def test_nats_one_session_answer_and_duplicate_refused(nats, bridges, clients):
    from test_session import Monitor
    tag = f"s{time.monotonic_ns() % 100000}"
    brs = start_on_nats(nats, bridges, [f"{tag}a", f"{tag}b", f"{tag}c"])
    mon = Monitor(nats.mqtt[0], False)
    try:
        for k in range(4):
            msg = mon.request(f"mon/{tag}/{k}", f"corr-{k}")
            sid = json.loads(msg.payload)["session_id"]
            time.sleep(0.5)
            assert len([m for m in mon.replies if m.topic == f"mon/{tag}/{k}"]) == 1
            for br in brs:
                w = clients(br.url("/ws/connect"))
                w.send_json({"type": "join_session", "session_id": sid})
                assert w.recv_type("session_joined")["session_id"] == sid
                w.close()
    finally:
        mon.close()
    try:   # refused before it listens: the harness sees it exit at start-up
        dup = bridges(nats.mqtt[1], config=nats_config(f"{tag}a"), wait_broker=False)
        wait_for(lambda: not dup.alive(), 30, what="the duplicate to give up")
        log = dup.log()
    except RuntimeError as e:
        log = str(e)
    assert "is online elsewhere" in log
