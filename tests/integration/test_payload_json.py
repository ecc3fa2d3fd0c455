"""Every routed frame is standard JSON, even when the publisher's payload is JSON only by
cJSON's lenient reading ("007", "1.", raw control bytes inside strings): such payloads are
printed again; standard payloads are embedded byte for byte."""
import json

from harness import mqtt_pub


def strict_loads(text):
    # Python's json module is strict about leading zeros, "1." and control characters.
    return json.loads(text)


def test_lenient_payloads_become_standard_json(broker, bridges, clients):
    br = bridges(broker.port)
    c = clients(br.url("/ws/telemetry/5"))
    mqtt_pub(broker.port, "vehicle/5/telemetry", '{"speed":007,"odo":1.,"note":"a\tb"}')
    op, raw = c.recv_raw()
    frame = strict_loads(raw.decode("utf-8"))
    assert frame["type"] == "telemetry_update"
    assert frame["data"] == {"speed": 7, "odo": 1, "note": "a\tb"}


def test_standard_payload_is_embedded_verbatim(broker, bridges, clients):
    br = bridges(broker.port)
    c = clients(br.url("/ws/telemetry/6"))
    payload = '{"speed": 88.5,  "nested": {"list": [1, 2, 3]}, "s": "\\u00e9"}'
    mqtt_pub(broker.port, "vehicle/6/telemetry", payload)
    op, raw = c.recv_raw()
    text = raw.decode("utf-8")
    assert text.endswith('"data":' + payload + "}"), text
    assert strict_loads(text)["data"]["nested"]["list"] == [1, 2, 3]
