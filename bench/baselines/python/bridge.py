"""Baseline MQTT -> WebSocket bridge in the style of the systems Telebridge replaces.

FastAPI + uvicorn + paho-mqtt (Debian's python3 packages), written the way a typical user
writes it: a ConnectionManager holding the sockets of each room, paho's network thread
handing every message to the asyncio loop with run_coroutine_threadsafe, and a broadcast
that awaits send_text for each socket.  It is a yardstick for the Telebridge benchmarks,
not slowed on purpose: same endpoints, routes and envelope as bench/telebridge-bench.yaml.

    /ws/telemetry/{vehicle_id} -> room "vehicle:<id>"     /ws/fleet -> room "fleet"
    vehicle/{id}/telemetry     -> rooms "vehicle:<id>", "fleet" as
    {"type":"telemetry_update","room","topic","seq","ts","data"} (seq per room)

Environment: TB_MQTT_HOST (127.0.0.1), TB_MQTT_PORT (1883), TB_LISTEN (127.0.0.1:8080).
Run: /usr/bin/python3 bridge.py
"""
import asyncio
import itertools
import json
import os
import time
from collections import defaultdict

import paho.mqtt.client as mqtt
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

MQTT_HOST = os.environ.get("TB_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("TB_MQTT_PORT", "1883"))
LISTEN_HOST, LISTEN_PORT = os.environ.get("TB_LISTEN", "127.0.0.1:8080").rsplit(":", 1)

app = FastAPI()


class ConnectionManager:
    def __init__(self):
        self.rooms = defaultdict(set)
        self.seq = defaultdict(int)
        self.ids = itertools.count(1)
        self.messages_in = 0

    async def connect(self, websocket: WebSocket, rooms):
        await websocket.accept()
        for room in rooms:
            self.rooms[room].add(websocket)
        await websocket.send_text(json.dumps({
            "type": "welcome", "connection_id": next(self.ids), "rooms": rooms,
            "heartbeat_interval": 10, "ts": int(time.time() * 1000)}))

    def disconnect(self, websocket: WebSocket, rooms):
        for room in rooms:
            self.rooms[room].discard(websocket)

    async def broadcast(self, room, message):
        for ws in list(self.rooms.get(room, ())):
            try:
                await ws.send_text(message)
            except Exception:
                self.rooms[room].discard(ws)

    async def route(self, topic, payload):
        self.messages_in += 1
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "vehicle" or parts[2] != "telemetry":
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        for room in (f"vehicle:{parts[1]}", "fleet"):
            self.seq[room] += 1
            if not self.rooms.get(room):
                continue
            message = json.dumps({"type": "telemetry_update", "room": room, "topic": topic,
                                  "seq": self.seq[room], "ts": int(time.time() * 1000),
                                  "data": data})
            await self.broadcast(room, message)


manager = ConnectionManager()
loop = None
mqtt_client = mqtt.Client(client_id=f"python-baseline-{os.getpid()}")


def on_connect(client, userdata, flags, rc):
    client.subscribe("vehicle/+/telemetry", qos=0)
    print(f"mqtt connected to {MQTT_HOST}:{MQTT_PORT}", flush=True)


def on_message(client, userdata, msg):
    asyncio.run_coroutine_threadsafe(manager.route(msg.topic, msg.payload), loop)


async def handle(websocket: WebSocket, rooms):
    await manager.connect(websocket, rooms)
    try:
        while True:
            text = await websocket.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                await websocket.send_text(json.dumps({"type": "error", "code": "bad_json"}))
                continue
            if msg.get("type") == "ping":
                await websocket.send_text(json.dumps({"type": "pong",
                                                      "ts": int(time.time() * 1000)}))
    except WebSocketDisconnect:
        pass
    finally:
        manager.disconnect(websocket, rooms)


@app.websocket("/ws/telemetry/{vehicle_id}")
async def ws_telemetry(websocket: WebSocket, vehicle_id: str):
    await handle(websocket, [f"vehicle:{vehicle_id}"])


@app.websocket("/ws/fleet")
async def ws_fleet(websocket: WebSocket):
    await handle(websocket, ["fleet"])


@app.get("/health")
async def health():
    return {"status": "ok", "clients": sum(len(s) for s in manager.rooms.values()),
            "messages_in": manager.messages_in}


async def heartbeat():
    while True:
        await asyncio.sleep(10)
        message = json.dumps({"type": "heartbeat", "timestamp": int(time.time() * 1000),
                              "server_status": "ok",
                              "mqtt_connected": mqtt_client.is_connected()})
        sockets = set().union(*manager.rooms.values()) if manager.rooms else set()
        for ws in list(sockets):
            try:
                await ws.send_text(message)
            except Exception:
                pass


@app.on_event("startup")
async def startup():
    global loop
    loop = asyncio.get_running_loop()
    mqtt_client.on_connect = on_connect
    mqtt_client.on_message = on_message
    mqtt_client.connect(MQTT_HOST, MQTT_PORT)
    mqtt_client.loop_start()
    asyncio.create_task(heartbeat())


@app.on_event("shutdown")
async def shutdown():
    mqtt_client.loop_stop()


if __name__ == "__main__":
    uvicorn.run(app, host=LISTEN_HOST, port=int(LISTEN_PORT), log_level="warning",
                backlog=4096)
