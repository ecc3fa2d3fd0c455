"""Operations (issue 19): /health/live, /health/ready, the Prometheus /metrics format and
labels, and the systemd notifications (READY, RELOADING, STOPPING, WATCHDOG) the daemon
sends to NOTIFY_SOCKET.

Real Mosquitto, real telebridge; the service manager is a Unix datagram socket the test
binds, as systemd does for Type=notify units."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import Bridge, Mosquitto, WS, wait_for

CONFIG = """\
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-ops-@UID@", qos: 1, reconnect_min: 200ms, reconnect_max: 1s}
server: {listen: "@LISTEN@"}
endpoints:
  /ws/fleet: {rooms: [fleet]}
  "/ws/q/{x}": {rooms: ["q:{x}"]}
routes:
  - match: fleet/{group}
    rooms: [fleet]
    type: fleet_update
heartbeat: {interval: 10s, ws_ping: 0, idle_timeout: 0}
"""


def get_json(bridge, path):
    st, ctype, body = bridge.http_get(path)
    assert ctype.startswith("application/json"), (path, ctype)
    return st, json.loads(body)


def test_live_and_ready_follow_the_broker(bridges):
    mq = Mosquitto()
    try:
        br = bridges(mq.port, config=CONFIG)
        assert get_json(br, "/health/live") == (200, {"status": "alive"})
        assert get_json(br, "/health/ready") == (200, {"status": "ready"})
        mq.stop()
        wait_for(lambda: br.http_get("/health/ready")[0] == 503, what="ready turns 503 without the broker")
        st, body = get_json(br, "/health/ready")
        assert body == {"status": "not_ready", "reasons": ["broker_disconnected"]}
        # live stays 200 (a restart would not bring the broker back); /health stays 200 too
        # (it is a status document, and says "degraded")
        assert get_json(br, "/health/live")[0] == 200
        st, h = get_json(br, "/health")
        assert st == 200 and h["status"] == "degraded"
        mq._start()
        wait_for(lambda: br.http_get("/health/ready")[0] == 200, timeout=15, what="ready again")
    finally:
        mq.stop()


def test_ready_is_503_after_a_failed_reload_and_recovers(broker, bridges):
    br = bridges(broker.port, config=CONFIG)
    good = open(br.config_path).read()
    with open(br.config_path, "w") as f:
        f.write(good + "bogus_key: 1\n")
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: br.http_get("/health/ready")[0] == 503, what="ready 503 after a failed reload")
    assert get_json(br, "/health/ready")[1]["reasons"] == ["config_reload_failed"]
    # the running configuration still serves clients
    ws = WS(br.url("/ws/fleet"))
    ws.close()
    with open(br.config_path, "w") as f:
        f.write(good)
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: br.http_get("/health/ready")[0] == 200, what="ready after the file is fixed")


def test_probe_endpoints_reveal_nothing_and_refuse_near_misses(broker, bridges):
    """Anonymous probes: status only. Near-miss paths are not the probes (404 from the
    static handler), and a query string does not change the answer."""
    br = bridges(broker.port, config=CONFIG)
    for path in ("/health/ready", "/health/live"):
        st, ctype, body = br.http_get(path)
        assert "127.0.0.1" not in body and str(broker.port) not in body and "version" not in body
    assert br.http_get("/health/ready?verbose=1")[0] == 200
    for path in ("/health/readyx", "/health/ready/", "/health/live/../../etc/passwd", "/health/%00"):
        assert br.http_get(path)[0] == 404, path


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


def parse_metrics(text):
    """{family: {"type":..., "samples":[(labels text, value)]}}, asserting the text format:
    every sample follows its family's HELP and TYPE, no family appears twice."""
    fams, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in fams, f"family {name} twice"
            fams[name] = {"type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert name == current and typ in ("counter", "gauge", "histogram", "summary", "untyped")
            fams[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            if fams[current]["type"] == "histogram":
                assert name in (current + "_bucket", current + "_sum", current + "_count"), name
            else:
                assert name == current, f"{name} outside its family"
            if name == current or name.endswith("_bucket"):
                fams[current]["samples"].append((m.group(2) or "", float(m.group(4))))
    return fams


def test_metrics_format_labels_and_promtool(broker, bridges):
    br = bridges(broker.port, config=CONFIG)
    ws = WS(br.url("/ws/fleet"))
    st, ctype, text = br.http_get("/metrics")
    assert st == 200 and ctype.startswith("text/plain")
    fams = parse_metrics(text)
    eps = dict(fams["telebridge_endpoint_connections"]["samples"])
    assert eps['{endpoint="/ws/fleet"}'] == 1 and eps['{endpoint="/ws/q/{x}"}'] == 0
    build = fams["telebridge_build_info"]["samples"]
    assert len(build) == 1 and build[0][0].startswith('{version="') and build[0][1] == 1
    assert fams["process_cpu_seconds_total"]["samples"][0][1] >= 0     # 0 for a very young process
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        assert fams[name]["samples"][0][1] > 0, name
    start = fams["process_start_time_seconds"]["samples"][0][1]
    assert abs(start - time.time()) < 3600, start   # a Unix time, not seconds since boot
    assert fams["process_open_fds"]["samples"][0][1] < fams["process_max_fds"]["samples"][0][1]
    assert fams["telebridge_broker_connects_total"]["samples"][0][1] >= 1
    for name in ("telebridge_send_queue_frames", "telebridge_send_queue_bytes", "telebridge_send_queue_max_frames"):
        assert fams[name]["type"] == "gauge" and fams[name]["samples"][0][1] >= 0, name
    reasons = [lbl for lbl, _ in fams["telebridge_discarded_total"]["samples"]]
    assert '{reason="mqtt_queue_full"}' in reasons and '{reason="send_queue_full"}' in reasons
    reloads = dict(fams["telebridge_config_reloads_total"]["samples"])
    assert reloads == {'{result="success"}': 0, '{result="failure"}': 0}
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: dict(parse_metrics(br.http_get("/metrics")[2])["telebridge_config_reloads_total"]["samples"])
             ['{result="success"}'] == 1, what="a reload counted")
    ws.close()
    promtool = shutil.which("promtool")
    if promtool:   # Debian's prometheus package; tests/run.sh installs it
        r = subprocess.run([promtool, "check", "metrics"], input=br.http_get("/metrics")[2],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"promtool check metrics:\n{r.stdout}{r.stderr}"
    else:
        print("promtool not installed: format checked by this test's own parser only")


def test_metrics_routes_alert_rules_and_latency(broker, bridges):
    """Per-route deliveries, alerts per rule and severity, and the ingest latency histogram
    (payload ts_ms to routing); hostile stamps (future, string, huge) are not observed."""
    from harness import mqtt_pub
    cfg = CONFIG.replace("heartbeat:", "alerts:\n"
                         "  - {name: hot, match: \"fleet/{g}\", when: t > 100, clear_when: t < 90, severity: critical,\n"
                         "     message: hot, rooms: [fleet]}\nheartbeat:")
    br = bridges(broker.port, config=cfg)
    now_ms = int(time.time() * 1000)
    mqtt_pub(broker.port, "fleet/a", json.dumps({"t": 120, "ts_ms": now_ms}))
    for bad in (now_ms + 3600_000, "12", 1e300, -5):
        mqtt_pub(broker.port, "fleet/a", json.dumps({"t": 50, "ts_ms": bad}))
    def routes():
        return dict(parse_metrics(br.http_get("/metrics")[2])["telebridge_route_deliveries_total"]["samples"])
    # (the bridge also receives its own alert state: "received" is not the fleet count)
    wait_for(lambda: routes() == {'{route="1",match="fleet/{group}"}': 5}, what="5 fleet messages routed")
    fams = parse_metrics(br.http_get("/metrics")[2])
    raised = dict(fams["telebridge_alert_rule_raised_total"]["samples"])
    cleared = dict(fams["telebridge_alert_rule_cleared_total"]["samples"])
    assert raised == {'{rule="hot",severity="critical"}': 1} and cleared == {'{rule="hot",severity="critical"}': 1}
    assert fams["telebridge_ingest_latency_seconds"]["type"] == "histogram"
    count = [v for k, v in fams["telebridge_ingest_latency_seconds"]["samples"] if k == '{le="+Inf"}']
    assert count == [1]
    assert fams["telebridge_ingest_latency_skipped_total"]["samples"][0][1] == 3   # future, 1e300, -5


def test_systemd_notifications(broker, bridges):
    """READY=1 once listening, WATCHDOG=1 while the loop runs, RELOADING=1 then READY=1
    around a SIGHUP reload, STOPPING=1 at SIGTERM."""
    d = tempfile.mkdtemp(prefix="tb-notify-")
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    got = []

    def until(prefix):
        while True:
            msg = sock.recv(4096).decode()
            got.append(msg)
            if msg.startswith(prefix):
                return msg
    try:
        br = bridges(broker.port, config=CONFIG,
                     env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        assert "STATUS=running" in until("READY=1")
        until("WATCHDOG=1")
        until("WATCHDOG=1")
        br.send_signal(signal.SIGHUP)
        assert "MONOTONIC_USEC=" in until("RELOADING=1")
        until("READY=1")
        br.stop_clean()
        until("STOPPING=1")
    finally:
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


def test_garbage_notify_socket_is_harmless(broker, bridges):
    """A NOTIFY_SOCKET nobody listens on, or a nonsense watchdog value, does not stop the
    bridge (it logs and goes on)."""
    br = bridges(broker.port, config=CONFIG,
                 env={"NOTIFY_SOCKET": "/nonexistent/dir/sock", "WATCHDOG_USEC": "not-a-number"})
    assert get_json(br, "/health/ready")[0] == 200
    br.send_signal(signal.SIGHUP)
    wait_for(lambda: br.health()["config"]["reload"].get("count") == 1, what="the reload ran")
    assert br.alive() and get_json(br, "/health/ready")[0] == 200


# ---- logs ----------------------------------------------------------------------------------

LOG_CONFIG = CONFIG.replace('  "/ws/q/{x}": {rooms: ["q:{x}"]}',
                            '  "/ws/q/{x}": {rooms: ["q:{x}"]}\n'
                            '  /ws/connect: {rooms: [], client_subscriptions: true}')


def log_lines(br):
    return [line for line in br.log().splitlines() if line.strip()]


def test_json_log_lines_with_connection_events(broker, bridges):
    """log.format json: every line is one JSON object; connect, subscribe and disconnect
    are logged at info with the connection id, endpoint and remote address. Room names a
    client sends reach the log escaped."""
    br = bridges(broker.port, config=LOG_CONFIG + "log: {format: json}\n")
    ws = WS(br.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["fleet", "evil\nERROR forged"]})
    ws.recv_type("subscribed")
    ws.close()
    wait_for(lambda: "closed:" in br.log(), what="the disconnect logged")
    lines = [json.loads(line) for line in log_lines(br)]   # every line is JSON
    assert all(set(e) == {"ts", "level", "module", "msg"} for e in lines)
    msgs = [e["msg"] for e in lines if e["module"] == "ws"]
    opened = [m for m in msgs if "opened:" in m]
    assert opened and "endpoint=/ws/connect" in opened[0] and "remote=127.0.0.1" in opened[0]
    sub = [m for m in msgs if " subscribe:" in m]
    assert sub and '"fleet"' in sub[0] and "remote=127.0.0.1" in sub[0]
    assert "evil\\nERROR forged" in sub[0] and "evil\nERROR" not in sub[0]
    assert any("closed:" in m and "remote=127.0.0.1" in m for m in msgs)
    # a reload subscribes a new filter: logged without a "No error" tail
    text = open(br.config_path).read().replace("routes:\n", "routes:\n  - {match: \"extra/{x}\", rooms: [fleet], type: extra}\n")
    with open(br.config_path, "w") as f:
        f.write(text)
    br.send_signal(signal.SIGHUP)

    def mqtt_msgs():
        return [json.loads(x)["msg"] for x in log_lines(br) if json.loads(x)["module"] == "mqtt"]
    wait_for(lambda: "subscribe extra/+" in mqtt_msgs(), what="the new filter subscribed and logged")


def test_command_line_log_format_wins(broker, bridges):
    br = bridges(broker.port, config=LOG_CONFIG + "log: {format: json}\n", args=("--log-format", "logfmt"))
    lines = log_lines(br)
    assert lines and all(re.match(r'^ts=\S+ level=(debug|info|warn|error) module=\S+ msg=".*"$', x) for x in lines), lines


def test_bad_log_settings_are_refused(broker, tmp_path):
    from harness import TELEBRIDGE
    r = subprocess.run([TELEBRIDGE, "--log-format", "xml", "-c", "/nonexistent"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown log format 'xml'" in r.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(CONFIG.replace("@MQTT_PORT@", "1883").replace("@LISTEN@", "127.0.0.1:1").replace("@UID@", "x")
                   + "log: {format: xml}\n")
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "bad.yaml:11:" in r.stderr and "format" in r.stderr, r.stderr
    cfg.write_text(CONFIG.replace("@MQTT_PORT@", "1883").replace("@LISTEN@", "127.0.0.1:1").replace("@UID@", "x")
                   .replace('server: {listen: "127.0.0.1:1"}',
                            'server: {listen: "127.0.0.1:1", trusted_proxies: [127.0.0.1, "10.0.0.0/33"]}'))
    r = subprocess.run([TELEBRIDGE, "--check", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "bad.yaml:2:" in r.stderr and "10.0.0.0/33" in r.stderr, r.stderr


def opened_remote(br, conn_id):
    for line in br.log().splitlines():
        m = re.search(r"connection (\d+) opened: .* remote=(\S+)", line)
        if m and int(m.group(1)) == conn_id:
            return m.group(2)
    return None


def test_forwarded_for_only_from_trusted_proxies(broker, bridges):
    """X-Forwarded-For is believed only from server.trusted_proxies: a direct client
    cannot pick the address the log shows, and a garbage header is ignored."""
    plain = bridges(broker.port, config=CONFIG)
    WS(plain.url("/ws/fleet"), header=["X-Forwarded-For: 203.0.113.9"]).close()
    wait_for(lambda: opened_remote(plain, 1) is not None, what="connect logged")
    assert opened_remote(plain, 1) == "127.0.0.1"

    trusting = bridges(broker.port, config=CONFIG.replace('server: {listen: "@LISTEN@"}',
                                                         'server: {listen: "@LISTEN@", trusted_proxies: [127.0.0.1]}'))
    cases = [("203.0.113.9", "203.0.113.9"),
             ("10.9.9.9, 198.51.100.4", "198.51.100.4"),
             ("not-an-address", "127.0.0.1"),
             ("1.2.3.4\r\nX-Evil: 1", None)]   # header injection: the client library may refuse it
    n = 0
    for header, want in cases:
        try:
            WS(trusting.url("/ws/fleet"), header=[f"X-Forwarded-For: {header}"]).close()
        except Exception:
            continue
        n += 1
        wait_for(lambda: opened_remote(trusting, n) is not None, what="connect logged")
        if want:
            assert opened_remote(trusting, n) == want, (header, opened_remote(trusting, n))
        else:
            assert opened_remote(trusting, n) in ("127.0.0.1", "1.2.3.4")


def test_plain_text_route_is_not_a_warning(broker, bridges):
    """non_json: text (status topics with "online" / "offline"): delivered as a string and
    counted, without the "payload is not JSON" warning the demo used to print per vehicle;
    a default route still warns."""
    from harness import mqtt_pub
    cfg = CONFIG.replace("routes:\n", "routes:\n"
                         "  - {match: \"vehicle/{id}/status\", rooms: [fleet], type: status_update, non_json: text}\n"
                         "  - {match: \"vehicle/{id}/raw\", rooms: [fleet], type: raw}\n")
    br = bridges(broker.port, config=cfg)
    ws = WS(br.url("/ws/fleet"))
    mqtt_pub(broker.port, "vehicle/v1/status", "online")
    msg = ws.recv_type("status_update")
    assert msg["data"] == "online"
    mqtt_pub(broker.port, "vehicle/v1/raw", "not json")
    assert ws.recv_type("raw")["data"] == "not json"
    wait_for(lambda: br.counter("non_json") == 2, what="both counted")
    wait_for(lambda: "vehicle/v1/raw: payload is not JSON" in br.log(), what="the default route's warning")
    assert "vehicle/v1/status: payload is not JSON" not in br.log()
    ws.close()


def test_room_classes_are_bounded_against_invented_names(broker, bridges):
    """Rooms per class (name up to ':'): a client inventing 40 classes, one with a quote and
    a backslash, gets at most 16 label values plus "other", all escaped for Prometheus."""
    br = bridges(broker.port, config=LOG_CONFIG)
    ws = WS(br.url("/ws/connect"))
    names = [f"c{i}:x" for i in range(40)] + ['q"\\\\z:1']
    ws.send_json({"type": "subscribe", "rooms": names})
    rep = ws.recv_type("subscribed")
    assert len(rep["rooms"]) == len(names), rep
    text = br.http_get("/metrics")[2]
    fams = parse_metrics(text)
    classes = dict(fams["telebridge_room_class_rooms"]["samples"])
    assert len(classes) <= 17 and classes['{class="other"}'] >= 1, classes
    assert sum(classes.values()) == fams["telebridge_rooms"]["samples"][0][1]
    subs = dict(fams["telebridge_room_class_subscriptions"]["samples"])
    assert sum(subs.values()) == 41 and set(subs) == set(classes)
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    ws.close()
