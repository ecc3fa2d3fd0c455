"""The installed package end to end (run by tests/package/test_deb.sh after dpkg -i).

/usr/bin/telebridge (TB_TELEBRIDGE) with the installed /etc/telebridge/telebridge.yaml,
run as the package's telebridge user the way the systemd unit runs it (Type=notify: the
test binds the notification socket), against a real Mosquitto: readiness, the installed
dashboard, a message from MQTT to a WebSocket client, SIGHUP reload, clean stop."""
import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import TELEBRIDGE, WS, Bridge, Mosquitto, free_port, mqtt_pub, wait_for  # noqa: E402

CONFIG = "/etc/telebridge/telebridge.yaml"


def as_service_user():
    pw = pwd.getpwnam("telebridge")

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return pw.pw_uid, drop


def test_installed_binary_as_the_service_user():
    assert TELEBRIDGE == "/usr/bin/telebridge", "run through tests/package/test_deb.sh"
    uid, drop = as_service_user()
    d = tempfile.mkdtemp(prefix="tb-pkg-")
    os.chmod(d, 0o755)
    sock_path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chmod(sock_path, 0o666)
    sock.settimeout(15)
    mq = Mosquitto()
    br = None
    try:
        port = free_port()
        br = Bridge(mq.port, config_path=CONFIG, port=port, preexec_fn=drop,
                    env={"TB_MQTT_PORT": str(mq.port), "TB_MQTT_HOST": "127.0.0.1",
                         "TB_LISTEN": f"127.0.0.1:{port}", "NOTIFY_SOCKET": sock_path})
        assert sock.recv(4096).decode().startswith("READY=1")
        with open(f"/proc/{br.pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert all(int(u) == uid for u in uids), f"not running as telebridge: {uids}"
        assert br.http_get("/health/ready")[0] == 200
        st, ctype, body = br.http_get("/")
        assert st == 200 and ctype.startswith("text/html") and "<html" in body.lower(), (st, ctype)
        assert br.http_get("/telebridge-client.js")[0] == 200
        ws = WS(br.url("/ws/fleet"))
        mqtt_pub(mq.port, "vehicle/pkg-1/telemetry", '{"simulation_mode":"fleet","speed":42}')
        msg = ws.recv_type("telemetry_update")
        assert msg["data"]["speed"] == 42
        ws.close()
        br.send_signal(signal.SIGHUP)
        while not sock.recv(4096).decode().startswith("RELOADING=1"):
            pass
        wait_for(lambda: br.health()["config"]["reload"].get("count") == 1, what="the reload ran")
        br.stop_clean()
    finally:
        if br:
            br.cleanup()
        mq.stop()
        sock.close()
        shutil.rmtree(d, ignore_errors=True)
