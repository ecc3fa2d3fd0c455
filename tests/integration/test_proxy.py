"""Telebridge behind Debian's nginx with the shipped docker/nginx.conf (issue 19): the
dashboard, /health/ready, WebSocket delivery, resume after a reconnect, the client
address from X-Forwarded-For (the proxy is a trusted proxy) and /metrics kept internal.

nginx runs from the test with its own prefix and a copy of docker/nginx.conf whose
upstream and port point at this test's bridge. Skipped only when nginx is not installed
(scripts/install-deps.sh installs nginx-light)."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from harness import PROTO_CONFIG, SOURCE_DIR, WS, Proc, free_port, wait_for, wait_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt-get install nginx-light)")


def nginx_config(upstream_port, listen_port, prefix):
    with open(os.path.join(SOURCE_DIR, "docker", "nginx.conf")) as f:
        text = f.read()
    assert "server telebridge:8080;" in text and "listen 80;" in text
    text = text.replace("server telebridge:8080;", f"server 127.0.0.1:{upstream_port};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    # this test's own files, not the system's
    text = text.replace("http {", "http {\n    access_log off;\n" + "".join(
        f"    {d}_temp_path {prefix}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")), 1)
    return text


class Nginx(Proc):
    def __init__(self, upstream_port):
        self.prefix = tempfile.mkdtemp(prefix="tb-nginx-")
        self.port = free_port()
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_config(upstream_port, self.port, self.prefix))
        argv = [NGINX, "-p", self.prefix, "-c", conf, "-e", "stderr",
                "-g", f"daemon off; master_process on; pid {self.prefix}/nginx.pid; error_log stderr notice;"]
        if os.getuid() == 0:
            argv[-1] += " user root;"   # workers read this test's temp paths
        super().__init__("nginx", argv)
        wait_port(self.port)

    def url(self, path, scheme="ws"):
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def get(self, path):
        import urllib.request
        import urllib.error
        try:
            with urllib.request.urlopen(self.url(path, "http"), timeout=5) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, "", e.read().decode(errors="replace")

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def test_nginx_config_is_valid():
    d = tempfile.mkdtemp(prefix="tb-nginx-t-")
    try:
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_config(8080, free_port(), d))
        r = subprocess.run([NGINX, "-t", "-p", d, "-c", conf, "-e", "stderr", "-g", f"pid {d}/nginx.pid;"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def proxied(broker, bridges):
    static = os.path.abspath(os.path.join(SOURCE_DIR, "dashboard"))
    cfg = PROTO_CONFIG.replace('listen: "@LISTEN@"', f'listen: "@LISTEN@"\n  static_dir: {static}\n'
                               '  trusted_proxies: [127.0.0.1]')
    assert cfg != PROTO_CONFIG, "PROTO_CONFIG changed: update test_proxy.py"
    br = bridges(broker.port, config=cfg)
    ngx = Nginx(br.port)
    try:
        yield br, ngx
    finally:
        ngx.cleanup()


def test_dashboard_health_and_metrics_through_the_proxy(proxied):
    br, ngx = proxied
    st, ctype, body = ngx.get("/")
    assert st == 200 and ctype.startswith("text/html") and "<html" in body.lower()
    assert ngx.get("/health/ready")[:1] == (200,)
    st, _, body = ngx.get("/metrics")   # from 127.0.0.1: allowed by the recipe
    assert st == 200 and "telebridge_build_info" in body
    assert ngx.get("/no-such-file")[0] == 404


def routed(ws, count):
    out = []
    while len(out) < count:
        m = ws.recv()
        assert m["type"] != "error", m
        if "seq" in m:
            out.append(m)
    return out


def test_websocket_and_resume_through_the_proxy(proxied, publisher):
    br, ngx = proxied
    ws = WS(ngx.url("/ws/connect"), header=["X-Forwarded-For: 203.0.113.5"])
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:p"]})
    ws.recv_type("subscribed")
    publisher.publish_many([("vehicle/p/telemetry", {"vehicle_id": "p", "n": i}) for i in range(3)])
    got = routed(ws, 3)
    epoch, last = ws.welcome["data"]["epoch"], got[-1]["seq"]
    ws.close()
    # nginx appended the client (127.0.0.1, a trusted proxy too): the bridge logs the
    # address before it, as forwarded
    wait_for(lambda: re.search(r"connection \d+ opened: endpoint=/ws/connect .*remote=203\.0\.113\.5", br.log()),
             what="the forwarded client address in the log")
    publisher.publish_many([("vehicle/p/telemetry", {"vehicle_id": "p", "n": 10 + i}) for i in range(5)])
    wait_for(lambda: br.counter("received") >= 8, what="the missed messages routed")
    ws = WS(ngx.url("/ws/connect"))
    ws.send_json({"type": "subscribe", "rooms": ["vehicle:p"], "since": {"vehicle:p": last}, "epoch": epoch,
                  "id": "r"})
    rep = ws.recv_type("subscribed")
    assert rep["resumed"] == {"vehicle:p": 5}
    assert [m["data"]["n"] for m in routed(ws, 5)] == list(range(10, 15))
    ws.close()
