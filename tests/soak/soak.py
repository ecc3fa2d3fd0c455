#!/usr/bin/python3
"""Soak test (issue 14, "Done means"): the real bridge under mixed traffic for N minutes.

Why: single-purpose integration tests prove one behaviour each; this proves they hold
together over time: no sanitizer report, bounded memory, no lost or reordered message for
a well-behaved client, and no unthrottled log repeat while the broker dies, the config is
reloaded every few seconds and abusive clients do their worst.

What runs (all on 127.0.0.1, every process started here and ended by its PID):
  * a private Mosquitto (harness.Mosquitto), killed with SIGKILL and restarted on the same
    port every --broker-every seconds;
  * the real telebridge (sanitizer build by default, --build for another build dir);
  * a fleet: --vehicles vehicles publishing telemetry at --rate Hz each (paho, QoS 1), every
    payload numbered per vehicle ("n");
  * well-behaved clients on /ws/connect subscribing to vehicle rooms, patterns, `fields`
    and `max_rate`, reading everything, and now and then leaving and coming back with
    `since` + `epoch` (resume) or leaving for good and being replaced;
  * stalled clients (handshake, then never read), replaced regularly;
  * abusive clients: garbage bytes, frames over max_message_bytes, ping floods,
    invalid JSON, subscribe storms of new names and patterns;
  * a config reload every --reload-every seconds (the file rewritten, alternating
    harmless values).

What is asserted at the end:
  * the bridge exits 0 on SIGTERM and its log has no sanitizer report;
  * RSS at the end is within --rss-bound-mb of RSS after the warm-up (10 % of the run);
  * every well-behaved client got, per room, seqs in order without a gap (a `resync`
    frame restarts the count at its seq; `max_rate` clients may skip, never go back),
    and per vehicle the payload numbers "n" in order, with gaps only for publishes
    made while the bridge was not subscribed (broker outages, measured);
  * every well-behaved client received something and its pings took under --max-rtt s;
  * no log line (digits masked) appears more than --max-repeat times in any minute.
With --fd-limit N the bridge's descriptor limit is lowered to N and an abuser floods it
with idle connections (issue 14 point 1; off by default while main fails it).

Run: /usr/bin/python3 tests/soak/soak.py --minutes 30 --build build-rel
(ctest runs `soak.short`, a 1-minute version; docs/soak.md has the figures.)
"""
import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: {mqtt_port}
  client_id: "tb-soak-{pid}"
  protocol: 5
  qos: 1
  keepalive: 5
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "127.0.0.1:{port}"
  max_connections: 2000
  max_message_bytes: 64k
  max_rooms_per_connection: 64
  send_queue_frames: {queue_frames}
  send_queue_bytes: 4MiB
endpoints:
  /ws/telemetry/{{vehicle_id}}: {{rooms: ["vehicle:{{vehicle_id}}"]}}
  /ws/fleet: {{rooms: [fleet]}}
  /ws/connect:
    rooms: []
    client_subscriptions: true
    allow_subscribe: ["vehicle:*", fleet]
  /ws/any: {{rooms: [], client_subscriptions: true}}
routes:
  - match: vehicle/{{id}}/telemetry
    rooms: ["vehicle:{{id}}"]
    type: telemetry_update
    keep_last: true
    history: 500
    slow_client: conflate
  - match: fleet/{{group}}
    rooms: [fleet]
    type: fleet_update
    keep_last: true
    history: 100
heartbeat: {{interval: {hb}, ws_ping: 0, idle_timeout: 0}}
"""


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Soak:
    def __init__(self, args):
        self.a = args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.stats = collections.Counter()
        # outage windows [start, end) in monotonic time: bridge maybe not subscribed
        self.outages = []
        self.outage_open = None
        # per vehicle: list of (n, monotonic publish time)
        self.pub_times = collections.defaultdict(dict)
        self.rtts = []          # ping -> pong round trips of well-behaved clients (s)
        self.got = collections.Counter()  # well-behaved client index -> messages

    def fail(self, msg):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(msg)
            self.stats["failures"] += 1

    # -- processes -----------------------------------------------------------------------
    def write_config(self, i):
        text = CONFIG.format(mqtt_port=self.broker.port, pid=os.getpid(), port=self.port,
                             queue_frames=2048 + (i % 2) * 256, hb="1s" if i % 2 == 0 else "2s")
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    def start(self):
        import harness
        self.h = harness
        self.broker = harness.Mosquitto()
        self.port = harness.free_port()
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="tb-soak-")
        self.config_path = os.path.join(self.dir, "telebridge.yaml")
        self.write_config(0)
        asan = "detect_leaks=1:abort_on_error=1:quarantine_size_mb=16"
        self.bridge = harness.Bridge(self.broker.port, config_path=self.config_path, port=self.port,
                                     asan_options=asan)
        if self.a.fd_limit:
            import resource
            resource.prlimit(self.bridge.pid, resource.RLIMIT_NOFILE, (self.a.fd_limit, self.a.fd_limit))
        log(f"bridge pid {self.bridge.pid} on {self.port}, broker pid {self.broker.pid} on "
            f"{self.broker.port}, binary {harness.TELEBRIDGE}")

    # -- fleet ---------------------------------------------------------------------------
    def fleet(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(client_id=f"tb-soak-fleet-{os.getpid()}", clean_session=True,
                        protocol=mqtt.MQTTv311)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.1, 0.5)
        c.connect_async("127.0.0.1", self.broker.port, keepalive=5)
        c.loop_start()
        n = collections.Counter()
        period = 1.0 / self.a.rate
        nxt = time.monotonic()
        try:
            while not self.stop.is_set():
                nxt += period
                for v in range(self.a.vehicles):
                    if not c.is_connected():
                        continue  # not published: not expected (n does not advance)
                    n[v] += 1
                    payload = {"n": n[v], "vehicle": v, "speed": random.uniform(0, 200),
                               "engine_metrics": {"temperature": random.uniform(60, 110),
                                                  "rpm": random.randint(800, 7000)},
                               "pad": "x" * random.randint(0, 512)}
                    self.pub_times[v][n[v]] = time.monotonic()
                    c.publish(f"vehicle/{v}/telemetry", json.dumps(payload), qos=1)
                    self.stats["published"] += 1
                if random.random() < 0.05 and c.is_connected():
                    c.publish("fleet/all", json.dumps({"vehicles": self.a.vehicles}), qos=1)
                time.sleep(max(0.0, nxt - time.monotonic()))
                if nxt < time.monotonic() - 1:
                    nxt = time.monotonic()
        finally:
            c.disconnect()
            c.loop_stop()

    # -- well-behaved clients ------------------------------------------------------------
    def good_client(self, idx):
        """A dashboard: subscribes, reads everything, checks order, reconnects and resumes."""
        rnd = random.Random(idx)
        kind = ["plain", "pattern", "fields", "rate"][idx % 4]
        v = idx % self.a.vehicles
        if kind == "pattern":
            rooms = [f"vehicle:{v}*"]  # vehicle:1, vehicle:10.. match
        else:
            rooms = [f"vehicle:{v}", f"vehicle:{(v + 1) % self.a.vehicles}"]
        last = {}       # room -> last seq
        last_n = {}     # room -> last payload n
        epoch = None
        while not self.stop.is_set():
            try:
                ws = self.h.WS(self.bridge.url("/ws/connect"), timeout=10)
            except Exception as e:
                self.stats["good_connect_errors"] += 1
                time.sleep(0.5)
                continue
            self.stats["good_connects"] += 1
            new_epoch = ws.welcome["data"]["epoch"]
            req = {"type": "subscribe", "id": 1, "rooms": rooms}
            if kind == "fields":
                req["fields"] = ["n", "speed"]
            if kind == "rate":
                req["max_rate"] = 2
            if last and epoch == new_epoch:
                req["since"] = dict(last)
                req["epoch"] = epoch
                self.stats["resume_requests"] += 1
            epoch = new_epoch
            resuming = set(req.get("since", {}))
            joined_fresh = set()  # rooms joined without since: first frame is state
            ws.send_json(req)
            stay = rnd.uniform(5, 40) * self.a.churn
            until = time.monotonic() + stay
            next_ping, ping_sent, ping_id = time.monotonic() + 1, None, 0
            try:
                while not self.stop.is_set() and time.monotonic() < until:
                    if ping_sent is None and time.monotonic() >= next_ping:
                        ping_id += 1
                        ping_sent = time.monotonic()
                        ws.send_json({"type": "ping", "id": ping_id})
                    try:
                        msg = ws.recv(timeout=1)
                    except TimeoutError:
                        continue
                    t = msg.get("type")
                    if t == "pong" and msg.get("id") == ping_id and ping_sent is not None:
                        with self.lock:
                            self.rtts.append(time.monotonic() - ping_sent)
                        ping_sent, next_ping = None, time.monotonic() + 5
                        continue
                    if t == "subscribed":
                        for r in msg.get("rooms", []):
                            if r not in resuming:
                                joined_fresh.add(r)
                        for r, cnt in (msg.get("resumed") or {}).items():
                            self.stats["resumed_msgs"] += cnt
                        continue
                    if t == "resync":
                        self.stats["resyncs"] += 1
                        self.stats["resync_" + str(msg.get("reason"))] += 1
                        last.pop(msg["room"], None)
                        last_n.pop(msg["room"], None)
                        continue
                    if t != "telemetry_update":
                        continue
                    room, seq = msg["room"], msg["seq"]
                    n = msg["data"].get("n")
                    self.stats["received"] += 1
                    self.got[idx] += 1
                    prev = last.get(room)
                    if prev is not None:
                        if seq <= prev:
                            self.fail(f"client {idx} ({kind}) room {room}: seq {seq} after {prev}")
                        elif seq != prev + 1 and kind != "rate":
                            self.fail(f"client {idx} ({kind}) room {room}: gap seq {prev} -> {seq}")
                    last[room] = seq
                    pn = last_n.get(room)
                    if pn is not None and n is not None:
                        if n <= pn:
                            self.fail(f"client {idx} room {room}: payload n {n} after {pn}")
                        elif n != pn + 1 and kind != "rate":
                            self.check_gap(idx, room, pn, n)
                    if n is not None:
                        last_n[room] = n
            except self.h.WSClosed as e:
                self.stats[f"good_closed_{e.code}"] += 1
            except Exception as e:
                self.stats["good_errors"] += 1
            finally:
                ws.close()
            self.stats["good_leaves"] += 1
            if rnd.random() < 0.2:
                last.clear()        # leaves for good; a new one comes
                last_n.clear()
                epoch = None
            time.sleep(rnd.uniform(0.1, 2.0))

    def check_gap(self, idx, room, pn, n):
        """Missing payload numbers pn+1..n-1 must all have been published during an outage
        (the bridge was not subscribed: the broker had no one to deliver them to)."""
        v = int(room.split(":")[1])
        times = self.pub_times[v]
        with self.lock:
            windows = list(self.outages) + ([(self.outage_open, time.monotonic())]
                                            if self.outage_open else [])
        for m in range(pn + 1, n):
            t = times.get(m)
            if t is None or not any(s - 1.0 <= t <= e + 1.0 for s, e in windows):
                self.fail(f"client {idx} room {room}: payload n {m} lost ({pn} -> {n}), "
                          f"published outside a broker outage")
                return
        self.stats["gaps_in_outage"] += 1

    # -- stalled and abusive clients -----------------------------------------------------
    def stalled(self):
        held = []
        while not self.stop.is_set():
            try:
                held.append(self.h.RawStuckClient(self.port, f"/ws/telemetry/{random.randrange(self.a.vehicles)}"))
                self.stats["stalled"] += 1
            except Exception:
                self.stats["stalled_errors"] += 1
            if len(held) > 8:
                held.pop(0).close()
            self.stop.wait(3)
        for s in held:
            s.close()

    def raw_handshake(self, path="/ws/any"):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        return s

    def abuser(self, seed):
        rnd = random.Random(seed)
        while not self.stop.is_set():
            kinds = ["garbage", "huge", "pings", "badjson", "storm", "halfopen"]
            what = rnd.choice(kinds + (["fdflood"] if self.a.fd_limit else []))
            self.stats["abuse_" + what] += 1
            try:
                getattr(self, "abuse_" + what)(rnd)
            except Exception:
                self.stats["abuse_errors"] += 1
            self.stop.wait(rnd.uniform(0.2, 1.5))

    def abuse_garbage(self, rnd):
        s = self.raw_handshake()
        time.sleep(0.05)
        s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4096))))
        time.sleep(0.2)
        s.close()

    def abuse_halfopen(self, rnd):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /ws/any HTTP/1.1\r\nHost: x\r\n")  # never finishes the request
        time.sleep(rnd.uniform(0.5, 3))
        s.close()

    def abuse_fdflood(self, rnd):
        """Opens more idle connections than the bridge has descriptors (with --fd-limit),
        holds them a few seconds: accept() fails with EMFILE meanwhile."""
        held = []
        try:
            for _ in range(self.a.fd_limit + 50):
                held.append(socket.create_connection(("127.0.0.1", self.port), timeout=2))
        except OSError:
            pass
        self.stop.wait(rnd.uniform(2, 5))
        for s in held:
            s.close()

    def abuse_huge(self, rnd):
        ws = self.h.WS(self.bridge.url("/ws/any"), timeout=5)
        try:
            ws.send_text("x" * rnd.choice([70000, 300000, 2000000]))
            self.stats[f"abuse_close_{ws.wait_close(5)}"] += 1
        finally:
            ws.close()

    def abuse_pings(self, rnd):
        ws = self.h.WS(self.bridge.url("/ws/any"), timeout=5)
        try:
            for i in range(2000):
                ws.send_json({"type": "ping", "id": i})
            time.sleep(0.5)
        finally:
            ws.close()

    def abuse_badjson(self, rnd):
        ws = self.h.WS(self.bridge.url("/ws/any"), timeout=5)
        try:
            for i in range(25):
                ws.send_text(rnd.choice(["{", "[]", '{"type":1}', '{"type":"nope"}', "\"x\"",
                                         '{"type":"subscribe","rooms":7}']))
            self.stats[f"abuse_close_{ws.wait_close(5)}"] += 1
        finally:
            ws.close()

    def abuse_storm(self, rnd):
        ws = self.h.WS(self.bridge.url("/ws/any"), timeout=5)
        try:
            for i in range(50):
                names = [f"storm{rnd.getrandbits(32):x}" for _ in range(30)]
                if i % 5 == 0:
                    names.append("*a*a*a*a*a*a*b")
                ws.send_json({"type": "subscribe", "id": i, "rooms": names})
                ws.send_json({"type": "unsubscribe", "id": 1000 + i, "rooms": names})
            time.sleep(0.5)
        finally:
            ws.close()

    # -- chaos ---------------------------------------------------------------------------
    def broker_chaos(self):
        while not self.stop.wait(self.a.broker_every):
            with self.lock:
                self.outage_open = time.monotonic()
            self.broker.kill()
            self.stats["broker_kills"] += 1
            log("broker killed")
            self.stop.wait(2)
            self.broker._start()
            try:
                self.h.wait_for(lambda: self.bridge.health()["broker"]["connected"], timeout=30,
                                what="bridge reconnected")
            except Exception as e:
                self.fail(f"bridge did not reconnect to the broker: {e}")
            with self.lock:
                # the bridge re-subscribes right after connecting; allow a second for it
                self.outages.append((self.outage_open, time.monotonic() + 1.0))
                self.outage_open = None
            log("broker back")

    def reloader(self):
        i = 0
        while not self.stop.wait(self.a.reload_every):
            i += 1
            self.write_config(i)
            self.stats["reloads"] += 1

    # -- measurements --------------------------------------------------------------------
    def monitor(self, t_end):
        self.rss = []
        warm = time.monotonic() + max(5.0, 0.1 * self.a.minutes * 60)
        self.rss_start = None
        self.log_pos = 0
        self.repeats_max = (0, "")
        while not self.stop.is_set():
            self.stop.wait(min(5.0, max(0.1, t_end - time.monotonic())))
            try:
                r = self.bridge.rss_kb()
            except Exception:
                break
            self.rss.append(r)
            if self.rss_start is None and time.monotonic() >= warm:
                self.rss_start = r
            if time.monotonic() >= t_end:
                break
            if len(self.rss) % 12 == 0:
                self.scan_log()
                log(f"rss {r // 1024} MB, published {self.stats['published']}, received "
                    f"{self.stats['received']}, failures {self.stats['failures']}")

    def scan_log(self):
        """Counts identical lines (digits masked) in the log written since the last scan
        (about a minute)."""
        with open(self.bridge.logf.name, "rb") as f:
            f.seek(self.log_pos)
            chunk = f.read()
            self.log_pos += len(chunk)
        counts = collections.Counter(re.sub(rb"\d+", b"#", line)
                                     for line in chunk.splitlines())
        self.stats["log_lines"] += sum(counts.values())
        if counts:
            line, cnt = counts.most_common(1)[0]
            if cnt > self.repeats_max[0]:
                self.repeats_max = (cnt, line.decode(errors="replace"))

    def cpu_s(self):
        with open(f"/proc/{self.bridge.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- run -----------------------------------------------------------------------------
    def run(self):
        self.start()
        t0 = time.monotonic()
        t_end = t0 + self.a.minutes * 60
        threads = [threading.Thread(target=self.fleet, daemon=True)]
        threads += [threading.Thread(target=self.good_client, args=(i,), daemon=True)
                    for i in range(self.a.clients)]
        threads += [threading.Thread(target=self.stalled, daemon=True)]
        threads += [threading.Thread(target=self.abuser, args=(i,), daemon=True)
                    for i in range(self.a.abusers)]
        threads += [threading.Thread(target=self.broker_chaos, daemon=True),
                    threading.Thread(target=self.reloader, daemon=True)]
        for t in threads:
            t.start()
        try:
            self.monitor(t_end)
        finally:
            self.stop.set()
            for t in threads:
                t.join(15)
        return self.finish(time.monotonic() - t0)

    def finish(self, elapsed):
        ok = True
        cpu = None
        rss_end = None
        try:
            rss_end = self.bridge.rss_kb()
            cpu = self.cpu_s()
            health = self.bridge.health()
        except Exception as e:
            self.fail(f"bridge not answering at the end: {e}")
            health = {}
        self.scan_log()
        rc = self.bridge.stop(signal.SIGTERM, 30)
        text = self.bridge.log()
        bad = self.h.sanitizer_report(text)
        self.broker.stop()
        if rc != 0:
            self.fail(f"bridge exited with {rc}")
        if bad:
            self.fail(f"sanitizer report: {bad}")
        rss_start = self.rss_start or (self.rss[0] if self.rss else 0)
        rss_max = max(self.rss) if self.rss else 0
        if rss_end is not None and rss_end - rss_start > self.a.rss_bound_mb * 1024:
            self.fail(f"RSS grew {(rss_end - rss_start) // 1024} MB (bound {self.a.rss_bound_mb} MB)")
        if self.repeats_max[0] > self.a.max_repeat:
            self.fail(f"log line repeated {self.repeats_max[0]} times in a minute: {self.repeats_max[1]}")
        for i in range(self.a.clients):
            if self.got[i] == 0:
                self.fail(f"well-behaved client {i} received nothing")
        rtts = sorted(self.rtts)
        rtt = {"n": len(rtts)}
        if rtts:
            rtt.update(p50_ms=round(rtts[len(rtts) // 2] * 1000, 1),
                       p99_ms=round(rtts[int(len(rtts) * 0.99)] * 1000, 1),
                       max_ms=round(rtts[-1] * 1000, 1))
            if rtts[-1] > self.a.max_rtt:
                self.fail(f"a ping took {rtts[-1]:.2f} s (bound {self.a.max_rtt} s)")
        s = self.stats
        fig = collections.OrderedDict([
            ("minutes", round(elapsed / 60, 2)), ("binary", self.h.TELEBRIDGE),
            ("published", s["published"]), ("received_by_checked_clients", s["received"]),
            ("bridge_counters", health.get("messages")),
            ("good_clients", self.a.clients), ("good_connects", s["good_connects"]),
            ("resume_requests", s["resume_requests"]), ("resumed_msgs", s["resumed_msgs"]),
            ("resyncs", {k[7:]: v for k, v in s.items() if k.startswith("resync_")}),
            ("gaps_in_outage", s["gaps_in_outage"]),
            ("stalled_clients", s["stalled"]),
            ("abusive", {k[6:]: v for k, v in s.items() if k.startswith("abuse_")}),
            ("broker_kills", s["broker_kills"]), ("reloads", s["reloads"]),
            ("rss_mb", {"warm": round(rss_start / 1024, 1), "end": round((rss_end or 0) / 1024, 1),
                        "max": round(rss_max / 1024, 1), "first": round((self.rss[0] if self.rss else 0) / 1024, 1)}),
            ("ping_rtt", rtt), ("bridge_cpu_s", cpu), ("log_lines", s["log_lines"]),
            ("max_identical_lines_per_minute", self.repeats_max[0]),
            ("exit_code", rc), ("failures", s["failures"]),
        ])
        print(json.dumps(fig, indent=1, default=str), flush=True)
        if self.failures:
            print("FAILURES:", *self.failures[:50], sep="\n  ", flush=True)
            print("----- last 60 log lines -----\n" + "\n".join(text.splitlines()[-60:]))
            ok = False
        else:
            print("SOAK PASSED", flush=True)
            # logs of a passed run are not needed (they may be large); a restarted broker
            # is listed once per start, with its newest log
            for name in {pr.logf.name for pr in self.h.STARTED if not pr.alive()}:
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass
        return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--build", help="build dir (default: $TB_BUILD_DIR or build-asan)")
    p.add_argument("--vehicles", type=int, default=20)
    p.add_argument("--rate", type=float, default=5, help="Hz per vehicle")
    p.add_argument("--clients", type=int, default=12, help="well-behaved clients")
    p.add_argument("--abusers", type=int, default=2)
    p.add_argument("--churn", type=float, default=1.0, help="scale of client stay times")
    p.add_argument("--broker-every", type=float, default=180, help="seconds between broker kills")
    p.add_argument("--reload-every", type=float, default=5)
    p.add_argument("--rss-bound-mb", type=float, default=64)
    p.add_argument("--fd-limit", type=int, default=0,
                   help="lower the bridge's descriptor limit to this and add connection floods")
    p.add_argument("--max-rtt", type=float, default=2.0, help="seconds, ping of a good client")
    p.add_argument("--max-repeat", type=int, default=600, help="identical log lines per minute")
    a = p.parse_args()
    src = os.path.join(HERE, "..", "..")
    if a.build:
        os.environ["TB_BUILD_DIR"] = os.path.abspath(a.build)
    os.environ.setdefault("TB_BUILD_DIR", os.path.join(src, "build-asan"))
    os.environ.setdefault("TB_SOURCE_DIR", src)
    s = Soak(a)
    # Ctrl-C / SIGTERM end the run early but still check and print the figures.
    signal.signal(signal.SIGINT, lambda *_: s.stop.set())
    signal.signal(signal.SIGTERM, lambda *_: s.stop.set())
    try:
        ok = s.run()
    finally:
        for pr in getattr(s.h, "STARTED", []) if hasattr(s, "h") else []:
            if pr.alive():
                pr.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
