"""A TLS broker that comes up after the bridge (issue 19): the failed attempts are logged,
the bridge does not spin while the broker is down, and it connects within the backoff
(reconnect_max), not after the ~30 s keepalive timer that used to notice a refused TLS
connect. Real Mosquitto with a TLS listener; the certificates are made by the openssl CLI."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import Bridge, Proc, free_port, wait_for, wait_port

CONFIG = """\
mqtt: {host: 127.0.0.1, port: @MQTT_PORT@, client_id: "tb-tls-@UID@", tls_ca: "@CA@", reconnect_min: 200ms, reconnect_max: 1s}
server: {listen: "@LISTEN@"}
endpoints:
  /ws/fleet: {rooms: [fleet]}
routes:
  - {match: "fleet/{g}", rooms: [fleet], type: f}
heartbeat: {interval: 10s, ws_ping: 0, idle_timeout: 0}
"""


def make_certs(d):
    def run(*argv):
        subprocess.run(argv, cwd=d, check=True, capture_output=True, timeout=60)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=tb-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    os.chmod(d, 0o755)                              # mosquitto may run as its own user
    os.chmod(os.path.join(d, "srv.key"), 0o644)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed (scripts/install-deps.sh)")
def test_tls_broker_that_starts_late(bridges):
    d = tempfile.mkdtemp(prefix="tb-tls-")
    mq = None
    try:
        make_certs(d)
        port = free_port()
        br = bridges(port, config=CONFIG.replace("@CA@", os.path.join(d, "ca.pem")), wait_broker=False)
        wait_for(lambda: "connecting to 127.0.0.1:%d failed" % port in br.log(), what="a failed attempt logged")
        # while the broker is away the network thread waits (it used to spin on POLLERR)
        cpu0, t0 = cpu_seconds(br.pid), time.monotonic()
        time.sleep(1.0)
        assert cpu_seconds(br.pid) - cpu0 < 0.5 * (time.monotonic() - t0), "the bridge spins without a broker"
        conf = os.path.join(d, "mq.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"cafile {d}/ca.pem\ncertfile {d}/srv.pem\nkeyfile {d}/srv.key\n")
        mq = Proc("mosquitto-tls", ["mosquitto", "-c", conf])
        wait_port(port)
        # reconnect_max is 1 s: well before the old ~30 s keepalive path
        wait_for(lambda: br.health()["broker"]["connected"], timeout=10, what="connected over TLS")
        assert "after" in br.log() and "failed attempt(s)" in br.log()
    finally:
        if mq:
            mq.stop()
        shutil.rmtree(d, ignore_errors=True)
