"""Integration test harness: real processes on free loopback ports.

Every test starts its own Mosquitto on a free 127.0.0.1 port, and (where needed) the real
telebridge binary from the build tree with a config written for the test. Processes are
ended by PID at teardown; their logs are printed when a test fails (pytest shows captured
output of failing tests), so a failure explains itself.

Environment (set by ctest): TB_BUILD_DIR, TB_SOURCE_DIR, TB_SANITIZE.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILD_DIR = os.environ.get("TB_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE_DIR = os.environ.get("TB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZE = os.environ.get("TB_SANITIZE", "0") in ("1", "ON", "on", "true")


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


# Every Proc ever started, so conftest.py can attach the logs of a failing test's
# processes to its report.
STARTED = []


class Proc:
    """A child process whose stdout+stderr go to a log file we can print."""

    def __init__(self, name, argv, env=None, cwd=None, preexec_fn=None):
        self.name = name
        self.argv = argv
        self.logf = tempfile.NamedTemporaryFile(prefix=f"tb-{name}-", suffix=".log", delete=False)
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=e, cwd=cwd,
                                  stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
        STARTED.append(self)

    @property
    def pid(self):
        return self.p.pid

    def log(self):
        self.logf.flush()
        with open(self.logf.name, "r", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Ends the process by PID; returns its exit code."""
        if self.alive():
            os.kill(self.p.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()
        return self.p.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def dump(self):
        print(f"===== log of {self.name} (pid {self.p.pid}, rc {self.p.poll()}) =====")
        print(self.log())


class Mosquitto(Proc):
    """A private Mosquitto broker on a free loopback port (restartable on the same port)."""

    def __init__(self, port=None, extra_conf=""):
        # A port free a moment ago may be taken (by another test's outgoing connection)
        # before mosquitto binds it: with a port of our choosing, try a few.
        for attempt in range(5):
            self.port = port or free_port()
            self.conf = tempfile.NamedTemporaryFile("w", prefix="tb-mosq-", suffix=".conf", delete=False)
            self.conf.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n"
                            "log_type notice\nlog_type information\nmax_inflight_messages 1000\n"
                            "max_queued_messages 100000\n" + extra_conf)
            self.conf.flush()
            try:
                self._start()
                return
            except TimeoutError:
                if port or attempt == 4 or "Address already in use" not in self.log():
                    raise

    def _start(self):
        super().__init__("mosquitto", ["mosquitto", "-c", self.conf.name])
        try:
            wait_port(self.port, timeout=5 if self.alive() else 0.5)
        except TimeoutError:
            self.stop()
            raise

    def restart(self):
        self.stop()
        self._start()


def mqtt_pub(port, topic, payload, retain=False, qos=0):
    """Publishes with the real mosquitto_pub client."""
    argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos)]
    if retain:
        argv.append("-r")
    if payload is None:
        argv.append("-n")
    elif isinstance(payload, bytes):
        argv += ["-s"]
        subprocess.run(argv, input=payload, check=True, timeout=10)
        return
    else:
        argv += ["-m", payload]
    subprocess.run(argv, check=True, timeout=10)


# ---------------------------------------------------------------------------------------
# Bridge-side helpers (telebridge process, HTTP API, WebSocket clients, bulk publishing).
# ---------------------------------------------------------------------------------------
# TB_TELEBRIDGE: another binary under test (tests/package runs the installed /usr/bin/telebridge).
TELEBRIDGE = os.environ.get("TB_TELEBRIDGE") or os.path.join(BUILD_DIR, "bridge", "telebridge")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "LeakSanitizer",
                     "runtime error:", "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first sanitizer complaint in a log, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line
    return None


# A config close to config/telebridge.yaml (same endpoints and routes), without alert rules
# so nothing but routed traffic reaches the rooms, plus a few rooms the tests need:
#   nokeep/{x}  -> room nk:{x}    (no keep_last)
#   raw/{x}     -> room raw:{x}   (non_json: drop)
#   strict/{x}  -> room strict:{x} (slow_client: disconnect)
# @MQTT_PORT@ and @LISTEN@ are filled in by Bridge.
CORE_CONFIG = """\
mqtt:
  host: 127.0.0.1
  port: @MQTT_PORT@
  client_id: "tb-it-@UID@"
  protocol: 5
  qos: 1
  keepalive: 10
  reconnect_min: 200ms
  reconnect_max: 1s
server:
  listen: "@LISTEN@"
  max_connections: 1000
  max_message_bytes: 64k
  send_queue_frames: 256
  send_queue_bytes: 1MiB
endpoints:
  /ws/personal:               {rooms: [personal]}
  /ws/fleet:                  {rooms: [fleet]}
  /ws:                        {same_as: /ws/personal}
  /ws/telemetry/{vehicle_id}: {rooms: ["vehicle:{vehicle_id}"]}
  /ws/session/{sid}:          {rooms: ["session:{sid}"]}
  /ws/nk/{x}:                 {rooms: ["nk:{x}"]}
  /ws/raw/{x}:                {rooms: ["raw:{x}"]}
  /ws/strict/{x}:             {rooms: ["strict:{x}"]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{id}", "{payload.simulation_mode|personal}"]
    rooms_allowed: [personal, fleet]
    type: telemetry_update
    keep_last: true
    history: 200
    slow_client: conflate
  - match: vehicle/{id}/setup
    rooms: ["vehicle:{id}"]
    type: setup_update
    keep_last: true
  - match: fleet/{group}
    rooms: [fleet]
    type: fleet_update
    keep_last: true
  - match: session/{sid}/setup
    rooms: ["session:{sid}"]
    type: setup_update
    keep_last: true
  - match: session/{sid}/telemetry
    rooms: ["session:{sid}"]
    type: telemetry_update
    keep_last: true
  - match: nokeep/{x}
    rooms: ["nk:{x}"]
    type: plain_update
  - match: raw/{x}
    rooms: ["raw:{x}"]
    type: raw_update
    non_json: drop
  - match: strict/{x}
    rooms: ["strict:{x}"]
    type: strict_update
    slow_client: disconnect
heartbeat: {interval: 1s, ws_ping: 0, idle_timeout: 0}
"""


class Bridge(Proc):
    """The real telebridge on a free loopback port, with a config written into a temp dir.

    config: YAML text with @MQTT_PORT@ / @LISTEN@ / @UID@ placeholders (default CORE_CONFIG),
    or config_path: an existing file (then pass TB_MQTT_PORT / TB_LISTEN style env yourself
    and port=). The constructor waits until the WebSocket/HTTP port accepts connections and
    (with wait_broker) until /health says the broker is connected."""

    _uid = 0

    def __init__(self, broker_port, config=None, config_path=None, env=None, port=None,
                 wait_broker=True, args=(), asan_options=None, preexec_fn=None, ssl_context=None):
        Bridge._uid += 1
        self.ssl_context = ssl_context  # wss:// bridges: url() and http_get() use TLS with it
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tb-bridge-")
        if config_path is None:
            text = (config or CORE_CONFIG).replace("@MQTT_PORT@", str(broker_port)) \
                .replace("@LISTEN@", f"127.0.0.1:{self.port}") \
                .replace("@UID@", f"{os.getpid()}-{Bridge._uid}")
            config_path = os.path.join(self.dir, "telebridge.yaml")
            with open(config_path, "w") as f:
                f.write(text)
        self.config_path = config_path
        e = dict(env or {})
        if asan_options:
            e["ASAN_OPTIONS"] = asan_options
        super().__init__("telebridge", [TELEBRIDGE, "-c", config_path, *args], env=e,
                         preexec_fn=preexec_fn)
        try:
            self._wait_started(wait_broker)
        except BaseException:
            # The caller never gets this object to stop: do not leave the process behind.
            self.kill()
            raise

    def _wait_started(self, wait_broker):
        deadline = time.monotonic() + 15
        while True:
            if not self.alive():
                raise RuntimeError(f"telebridge exited with {self.p.returncode} at start-up:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"telebridge not listening on {self.port}:\n{self.log()}")
                time.sleep(0.02)
        if wait_broker:
            wait_for(lambda: self.health()["broker"]["connected"], timeout=15,
                     what="bridge connected to the broker")

    def url(self, path):
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}{path}"

    def http_get(self, path, timeout=5.0):
        """(status, content-type, body text) of a plain HTTP GET."""
        try:
            scheme = "https" if self.ssl_context else "http"
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{self.port}{path}", timeout=timeout,
                                        context=self.ssl_context) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode(errors="replace")

    def health(self):
        st, ctype, body = self.http_get("/health")
        assert st == 200, f"/health answered {st}: {body}"
        return json.loads(body)

    def counter(self, name):
        return self.health()["messages"][name]

    def endpoint_counts(self):
        return self.health()["connections"]["endpoints"]

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop_clean(self, timeout=10.0):
        """SIGTERM, waits, and asserts exit 0 and a log without sanitizer reports."""
        rc = self.stop(signal.SIGTERM, timeout)
        log = self.log()
        assert rc == 0, f"telebridge exited with {rc}:\n{log}"
        bad = sanitizer_report(log)
        assert bad is None, f"sanitizer report in the telebridge log: {bad}\n{log}"
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _ws_module():
    import websocket  # python3-websocket (websocket-client)
    return websocket


class WSClosed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed by server: {code} {reason!r}")
        self.code = code
        self.reason = reason


class WS:
    """A blocking WebSocket client (websocket-client) that understands the bridge's frames.

    Connecting reads the welcome frame (self.welcome). recv() returns the next JSON frame,
    skipping heartbeats unless asked; every text frame is decoded as strict UTF-8, so a
    frame that is not valid UTF-8 fails the test. A close frame raises WSClosed."""

    def __init__(self, url, timeout=10.0, welcome=True, rcvbuf=None, header=None):
        websocket = _ws_module()
        sockopt = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        if rcvbuf:
            sockopt.append((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf))
        self.url = url
        self.ws = websocket.create_connection(url, timeout=timeout, sockopt=sockopt,
                                              skip_utf8_validation=True, header=header or [])
        self.heartbeats = 0
        self.welcome = self.recv(timeout) if welcome else None
        if welcome:
            assert self.welcome["type"] == "welcome", f"first frame is not welcome: {self.welcome}"

    def recv_raw(self, timeout=10.0):
        """(opcode, bytes) of the next data message (fragments joined); raises WSClosed on
        the server's close frame (whose echo may fail harmlessly if the server is gone)."""
        websocket = _ws_module()
        ABNF = websocket.ABNF
        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv_frame()
            op = frame.opcode
            if op == ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                try:
                    self.ws.send_close()
                except Exception:
                    pass
                raise WSClosed(code, data[2:].decode(errors="replace"))
            if op == ABNF.OPCODE_PING:
                try:
                    self.ws.pong(frame.data)
                except Exception:
                    pass
                continue
            if op == ABNF.OPCODE_PONG:
                continue
            if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                self._frag_op, self._frag = op, [frame.data]
            elif op == ABNF.OPCODE_CONT and getattr(self, "_frag", None) is not None:
                self._frag.append(frame.data)
            else:
                raise AssertionError(f"unexpected frame opcode {op} on {self.url}")
            if frame.fin:
                data, self._frag = b"".join(self._frag), None
                return self._frag_op, data

    def recv(self, timeout=10.0, heartbeats=False):
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                op, data = self.recv_raw(left)
            except _ws_module().WebSocketTimeoutException:
                raise TimeoutError(f"no frame on {self.url} within {timeout}s") from None
            text = data.decode("utf-8")  # strict: the bridge must send valid UTF-8
            msg = json.loads(text)
            if msg.get("type") == "heartbeat" and not heartbeats:
                self.heartbeats += 1
                continue
            return msg

    def recv_type(self, type_, timeout=10.0):
        """The next frame of a type, failing on any other non-heartbeat frame."""
        msg = self.recv(timeout)
        assert msg.get("type") == type_, f"expected a {type_} frame, got {msg}"
        return msg

    def expect_silence(self, duration):
        """Asserts that nothing but heartbeats arrives for 'duration' seconds."""
        try:
            msg = self.recv(duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame on {self.url}: {msg}")

    def send_json(self, obj):
        self.ws.send(json.dumps(obj))

    def send_text(self, text):
        self.ws.send(text)

    def send_binary(self, data):
        self.ws.send_binary(data)

    def wait_close(self, timeout=10.0):
        """Reads (and discards) frames until the server's close frame; returns its code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv_raw(max(0.01, deadline - time.monotonic()))
            except WSClosed as e:
                return e.code
            except _ws_module().WebSocketTimeoutException:
                break
        raise TimeoutError(f"no close frame on {self.url} within {timeout}s")

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def ws_handshake_status(url, timeout=5.0):
    """HTTP status of a WebSocket upgrade request (101 when accepted)."""
    websocket = _ws_module()
    try:
        ws = websocket.create_connection(url, timeout=timeout)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


class RawStuckClient:
    """A client that performs the WebSocket handshake on a raw socket with a tiny receive
    buffer and then never reads again (a stalled browser tab). read_frames() may drain it
    later to see what the server queued, close frame included."""

    def __init__(self, port, path, rcvbuf=4096):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.sock.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(1)  # byte by byte: leave the frames in the kernel
            if not chunk:
                raise ConnectionError("server closed during the handshake")
            buf += chunk
        status = buf.split(b"\r\n", 1)[0]
        assert b" 101 " in status, f"handshake refused: {status!r}"
        self.buf = b""

    def read_frames(self, timeout=10.0, until_close=True):
        """Drains the socket; returns a list of (opcode, payload bytes), stopping after a
        close frame (or at timeout / EOF)."""
        self.sock.settimeout(0.5)
        frames = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while True:
                f = self._parse_one()
                if f is None:
                    break
                frames.append(f)
                if f[0] == 8 and until_close:
                    return frames
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                if not until_close:
                    return frames
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            self.buf += chunk
        return frames

    def _parse_one(self):
        b = self.buf
        if len(b) < 2:
            return None
        op = b[0] & 0x0F
        n = b[1] & 0x7F
        off = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = int.from_bytes(b[2:4], "big")
            off = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = int.from_bytes(b[2:10], "big")
            off = 10
        if len(b) < off + n:
            return None
        self.buf = b[off + n:]
        return op, b[off:off + n]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Publisher:
    """An in-process paho MQTT publisher for bulk traffic (QoS 0 or 1), much faster than
    spawning mosquitto_pub per message."""

    def __init__(self, port, client_id=None):
        import paho.mqtt.client as mqtt
        self.c = mqtt.Client(client_id=client_id or f"tb-it-pub-{os.getpid()}-{time.monotonic_ns()}",
                             clean_session=True, protocol=mqtt.MQTTv311)
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        self.connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc: self.connected.set() if rc == 0 else None
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("publisher could not connect")

    def publish(self, topic, payload, qos=1, wait=False):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.c.publish(topic, payload, qos=qos)
        if wait:
            info.wait_for_publish()
        return info

    def publish_many(self, items, qos=1):
        """Publishes (topic, payload) pairs and waits until all are acknowledged (QoS 1)
        or written (QoS 0)."""
        infos = [self.publish(t, p, qos) for t, p in items]
        for i in infos:
            i.wait_for_publish()

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# Protocol tests (test_protocol*, test_session*, test_resume*): CORE_CONFIG plus a
# subscription endpoint with an allow list, a second one that takes any room, race
# sessions, and history on the session telemetry.
PROTO_CONFIG = CORE_CONFIG.replace(
    "  /ws/strict/{x}:             {rooms: [\"strict:{x}\"]}\n",
    "  /ws/strict/{x}:             {rooms: [\"strict:{x}\"]}\n"
    "  /ws/connect:\n"
    "    rooms: []\n"
    "    client_subscriptions: true\n"
    "    allow_subscribe: [\"vehicle:*\", personal, fleet, \"session:*\", \"nk:*\"]\n"
    "  /ws/any:                    {rooms: [], client_subscriptions: true}\n"
).replace(
    "  - match: session/{sid}/telemetry\n    rooms: [\"session:{sid}\"]\n"
    "    type: telemetry_update\n    keep_last: true\n",
    "  - match: session/{sid}/telemetry\n    rooms: [\"session:{sid}\"]\n"
    "    type: telemetry_update\n    keep_last: true\n    history: 200\n"
).replace(
    "heartbeat: {interval: 1s, ws_ping: 0, idle_timeout: 0}\n",
    "sessions: {request_topic: session/request}\n"
    "heartbeat: {interval: 1s, ws_ping: 0, idle_timeout: 0}\n"
).replace("  max_message_bytes: 64k\n", "  max_message_bytes: 64k\n  max_rooms_per_connection: 8\n")
