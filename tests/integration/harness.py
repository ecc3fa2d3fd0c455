"""Integration test harness: real processes on free loopback ports.

Every test starts its own Mosquitto on a free 127.0.0.1 port, and (where needed) the real
telebridge binary from the build tree with a config written for the test. Processes are
ended by PID at teardown; their logs are printed when a test fails (pytest shows captured
output of failing tests), so a failure explains itself.

Environment (set by ctest): TB_BUILD_DIR, TB_SOURCE_DIR, TB_SANITIZE.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time

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


class Proc:
    """A child process whose stdout+stderr go to a log file we can print."""

    def __init__(self, name, argv, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.logf = tempfile.NamedTemporaryFile(prefix=f"tb-{name}-", suffix=".log", delete=False)
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=e, cwd=cwd,
                                  stdin=subprocess.DEVNULL)

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
        self.port = port or free_port()
        self.conf = tempfile.NamedTemporaryFile("w", prefix="tb-mosq-", suffix=".conf", delete=False)
        self.conf.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n"
                        "log_type notice\nlog_type information\nmax_inflight_messages 1000\n"
                        "max_queued_messages 100000\n" + extra_conf)
        self.conf.flush()
        self._start()

    def _start(self):
        super().__init__("mosquitto", ["mosquitto", "-c", self.conf.name])
        wait_port(self.port)

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
