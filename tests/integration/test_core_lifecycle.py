"""Bridge core, life cycle and bad input (issue 2): SIGTERM / SIGINT close every client
with 1001 and exit 0 without sanitizer reports; --check and start-up refuse invalid
configs with file:line:column; bad client frames get error frames (or a close code) and
never affect other clients; ping gets pong with the request id.

Real Mosquitto, the real telebridge (sanitizer build under ctest), real WebSocket clients.
"""
import os
import signal
import subprocess
import tempfile
import time

import pytest

from harness import (SOURCE_DIR, TELEBRIDGE, Proc, RawStuckClient, WSClosed, free_port,
                     sanitizer_report, wait_for)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_clients_with_1001_and_exits_0(broker, bridges, clients, publisher, sig):
    br = bridges(broker.port)
    conns = [clients(br.url(p)) for p in ("/ws/telemetry/1", "/ws/personal", "/ws/fleet", "/ws")]
    publisher.publish("vehicle/1/telemetry", {"n": 1}, wait=True)
    conns[0].recv_type("telemetry_update")
    t0 = time.monotonic()
    br.send_signal(sig)
    for c in conns:
        assert c.wait_close(5) == 1001, c.url
    rc = br.p.wait(5)
    elapsed = time.monotonic() - t0
    log = br.log()
    assert rc == 0, log
    assert elapsed < 4, f"exit took {elapsed:.1f}s"
    assert sanitizer_report(log) is None, log
    assert "stopped" in log


def test_sigterm_with_a_stuck_client_still_exits_cleanly(broker, bridges, clients, publisher):
    br = bridges(broker.port, asan_options="quarantine_size_mb=4:detect_leaks=1")
    fast = clients(br.url("/ws/telemetry/1"))
    stuck = RawStuckClient(br.port, "/ws/telemetry/1")
    try:
        wait_for(lambda: br.health()["connections"]["total"] == 2, what="2 connections")
        pad = "s" * 16000
        for b in range(8):  # ~6 MB: the stuck client's socket and send queue fill up
            publisher.publish_many([("vehicle/1/telemetry", '{"n":%d,"pad":"%s"}' % (b * 50 + i, pad))
                                    for i in range(50)])
            for i in range(50):
                assert fast.recv_type("telemetry_update", 10)["data"]["n"] == b * 50 + i
        wait_for(lambda: br.counter("conflated") > 0, what="stuck client conflated")
        t0 = time.monotonic()
        br.send_signal(signal.SIGTERM)
        assert fast.wait_close(5) == 1001
        rc = br.p.wait(8)
        log = br.log()
        assert rc == 0, log
        assert time.monotonic() - t0 < 6, "shutdown waited too long for the stuck client"
        assert sanitizer_report(log) is None, log
    finally:
        stuck.close()


def run_telebridge(*args, timeout=20):
    return subprocess.run([TELEBRIDGE, *args], capture_output=True, text=True, timeout=timeout)


def test_check_accepts_the_example_config():
    r = run_telebridge("--check", "-c", os.path.join(SOURCE_DIR, "config", "telebridge.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout
    assert sanitizer_report(r.stdout + r.stderr) is None


BROKEN = """\
mqtt:
  host: 127.0.0.1
  prot: 1883
server:
  listen: 127.0.0.1:8080
endpoints:
  /ws/a: {rooms: [a]}
routes:
  - match: vehicle/{id}/telemetry
    rooms: ["vehicle:{vid}"]
"""


def write_tmp(text, suffix=".yaml"):
    f = tempfile.NamedTemporaryFile("w", prefix="tb-it-cfg-", suffix=suffix, delete=False)
    f.write(text)
    f.close()
    return f.name


def test_check_reports_every_error_with_file_line_column():
    path = write_tmp(BROKEN)
    try:
        r = run_telebridge("--check", "-c", path)
        assert r.returncode == 1, r.stdout + r.stderr
        lines = [line for line in r.stderr.splitlines() if line.startswith(path + ":")]
        assert any(line.startswith(f"{path}:3:3:") and "prot" in line and "port" in line for line in lines), \
            r.stderr  # unknown key, with a "did you mean" hint
        assert any(line.startswith(f"{path}:10:") and "vid" in line for line in lines), r.stderr
        assert len(lines) >= 2
        assert sanitizer_report(r.stdout + r.stderr) is None
        # A YAML syntax error is located too.
        bad = write_tmp("mqtt:\n  host: [unclosed\nserver: {}\n")
        try:
            r = run_telebridge("--check", "-c", bad)
            assert r.returncode == 1
            assert any(line.startswith(bad + ":") and line.split(":")[1].isdigit()
                       and line.split(":")[2].isdigit() for line in r.stderr.splitlines()), r.stderr
        finally:
            os.unlink(bad)
    finally:
        os.unlink(path)


def test_daemon_refuses_to_start_on_an_invalid_config(broker):
    port = free_port()
    path = write_tmp(BROKEN.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    p = Proc("telebridge", [TELEBRIDGE, "-c", path])
    try:
        rc = p.p.wait(10)
        assert rc == 1, p.log()
        assert f"{path}:3:3:" in p.log()
        assert sanitizer_report(p.log()) is None, p.log()
        # It never listened.
        import socket
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    finally:
        p.stop()
        os.unlink(path)
    # A missing file is refused the same way.
    r = run_telebridge("-c", path)
    assert r.returncode == 1 and path in (r.stdout + r.stderr)


def test_bad_client_frames_get_errors_and_do_not_affect_others(broker, bridges, clients, publisher):
    br = bridges(broker.port)
    good = clients(br.url("/ws/telemetry/3"))
    bad = clients(br.url("/ws/telemetry/3"))

    def expect_error(code, id_=None):
        m = bad.recv_type("error", 5)
        assert m["code"] == code, m
        assert m.get("id") == id_, m
        assert m.get("message"), m

    bad.send_text("{")
    expect_error("bad_json")
    bad.send_text("[1, 2]")
    expect_error("not_object")
    bad.send_text('"just a string"')
    expect_error("not_object")
    bad.send_json({"type": "no_such_request", "id": "x1"})
    expect_error("unknown_type", "x1")
    bad.send_json({"id": 7})
    expect_error("bad_field", 7)
    bad.send_json({"type": 5})
    expect_error("bad_field")
    bad.send_binary(b"\x00\x01\x02")
    expect_error("binary_not_supported")

    bad.send_json({"type": "ping", "id": 1})
    pong = bad.recv_type("pong")
    assert pong["id"] == 1
    bad.send_json({"type": "ping", "id": "abc"})
    assert bad.recv_type("pong")["id"] == "abc"
    bad.send_json({"type": "ping"})
    assert "id" not in bad.recv_type("pong")

    # Meanwhile the good client got nothing but its traffic.
    publisher.publish("vehicle/3/telemetry", {"n": 1}, wait=True)
    assert good.recv_type("telemetry_update")["data"] == {"n": 1}
    assert bad.recv_type("telemetry_update")["data"] == {"n": 1}

    # A frame larger than max_message_bytes (64k) closes the sender with 1009.
    bad.send_text('{"type":"ping","pad":"' + "p" * 70000 + '"}')
    assert bad.wait_close(5) == 1009
    wait_for(lambda: br.health()["connections"]["total"] == 1, what="oversized sender gone")
    publisher.publish("vehicle/3/telemetry", {"n": 2}, wait=True)
    assert good.recv_type("telemetry_update")["data"] == {"n": 2}
    good.send_json({"type": "ping", "id": 2})
    assert good.recv_type("pong")["id"] == 2
    assert br.alive()


def test_repeated_invalid_frames_close_with_1008(broker, bridges, clients):
    br = bridges(broker.port)
    other = clients(br.url("/ws/personal"))
    spam = clients(br.url("/ws/personal"))
    for _ in range(30):
        try:
            spam.send_text("not json")
        except Exception:
            break
    assert spam.wait_close(5) == 1008
    other.send_json({"type": "ping", "id": "still-here"})
    assert other.recv_type("pong")["id"] == "still-here"


def test_invalid_utf8_text_frame_from_client(broker, bridges, clients):
    import websocket
    br = bridges(broker.port)
    other = clients(br.url("/ws/personal"))
    c = clients(br.url("/ws/personal"))
    c.ws.send(b'{"type":"ping","x":"\xff"}', opcode=websocket.ABNF.OPCODE_TEXT)
    try:
        m = c.recv(5)
        assert m["type"] == "error" and m["code"] == "bad_utf8", m
    except WSClosed as e:
        assert e.code == 1007, e
    other.send_json({"type": "ping", "id": 3})
    assert other.recv_type("pong")["id"] == 3
    assert br.alive()
