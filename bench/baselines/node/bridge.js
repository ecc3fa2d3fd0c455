// Baseline MQTT -> WebSocket bridge, written the way a typical Node user would write it
// (ws + mqtt from npm, one process, JSON.parse / JSON.stringify once per routed message).
// It is a yardstick for the Telebridge benchmarks, not slowed on purpose: same endpoints,
// same routes and the same envelope as bench/telebridge-bench.yaml.
//
//   /ws/telemetry/{vehicle_id} -> room "vehicle:<id>"     /ws/fleet -> room "fleet"
//   vehicle/{id}/telemetry     -> rooms "vehicle:<id>", "fleet" as
//   {"type":"telemetry_update","room","topic","seq","ts","data"} (seq per room)
//
// Environment: TB_MQTT_HOST (127.0.0.1), TB_MQTT_PORT (1883), TB_LISTEN (127.0.0.1:8080).
'use strict';

const http = require('http');
const mqtt = require('mqtt');
const { WebSocketServer, WebSocket } = require('ws');

const MQTT_HOST = process.env.TB_MQTT_HOST || '127.0.0.1';
const MQTT_PORT = parseInt(process.env.TB_MQTT_PORT || '1883', 10);
const [LISTEN_HOST, LISTEN_PORT] = (process.env.TB_LISTEN || '127.0.0.1:8080').split(':');

const rooms = new Map(); // room name -> Set of sockets
const roomSeq = new Map(); // room name -> last seq
let nextClientId = 1;
let messagesIn = 0;

function join(room, ws) {
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(ws);
}

function leave(ws) {
  for (const room of ws.rooms) {
    const set = rooms.get(room);
    if (set) {
      set.delete(ws);
      if (set.size === 0) rooms.delete(room);
    }
  }
}

function broadcast(room, type, topic, data) {
  const seq = (roomSeq.get(room) || 0) + 1;
  roomSeq.set(room, seq);
  const clients = rooms.get(room);
  if (!clients || clients.size === 0) return;
  const msg = JSON.stringify({ type, room, topic, seq, ts: Date.now(), data });
  for (const ws of clients) {
    if (ws.readyState === WebSocket.OPEN) ws.send(msg);
  }
}

// Endpoint routing: path -> rooms
function roomsForPath(path) {
  let m = path.match(/^\/ws\/telemetry\/([^/]+)$/);
  if (m) return [`vehicle:${decodeURIComponent(m[1])}`];
  if (path === '/ws/fleet') return ['fleet'];
  return null;
}

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', clients: wss.clients.size, messages_in: messagesIn }));
    return;
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0];
  const joinRooms = roomsForPath(path);
  if (!joinRooms) {
    socket.write('HTTP/1.1 404 Not Found\r\n\r\n');
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.id = nextClientId++;
    ws.rooms = joinRooms;
    for (const r of joinRooms) join(r, ws);
    ws.send(JSON.stringify({ type: 'welcome', connection_id: ws.id, rooms: joinRooms,
                             heartbeat_interval: 10, ts: Date.now() }));
    ws.on('message', (raw) => {
      let msg;
      try { msg = JSON.parse(raw); } catch (e) {
        ws.send(JSON.stringify({ type: 'error', code: 'bad_json', message: 'invalid JSON' }));
        return;
      }
      if (msg.type === 'ping') ws.send(JSON.stringify({ type: 'pong', ts: Date.now() }));
    });
    ws.on('close', () => leave(ws));
    ws.on('error', () => leave(ws));
  });
});

// Routes: vehicle/{id}/telemetry -> vehicle:{id}, fleet
const client = mqtt.connect({ host: MQTT_HOST, port: MQTT_PORT,
                              clientId: `node-baseline-${process.pid}` });
client.on('connect', () => {
  client.subscribe('vehicle/+/telemetry', { qos: 0 });
  console.log(`mqtt connected to ${MQTT_HOST}:${MQTT_PORT}`);
});
client.on('error', (err) => console.error('mqtt error:', err.message));
client.on('message', (topic, payload) => {
  messagesIn++;
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'vehicle' || parts[2] !== 'telemetry') return;
  let data;
  try { data = JSON.parse(payload.toString()); } catch (e) { return; }
  broadcast(`vehicle:${parts[1]}`, 'telemetry_update', topic, data);
  broadcast('fleet', 'telemetry_update', topic, data);
});

// Heartbeat every 10 s to everyone.
setInterval(() => {
  const hb = JSON.stringify({ type: 'heartbeat', timestamp: Date.now(),
                              server_status: 'ok', mqtt_connected: client.connected });
  for (const ws of wss.clients) if (ws.readyState === WebSocket.OPEN) ws.send(hb);
}, 10000);

server.listen(parseInt(LISTEN_PORT, 10), LISTEN_HOST, () => {
  console.log(`listening on ${LISTEN_HOST}:${LISTEN_PORT}`);
});

function shutdown() {
  client.end(true);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
