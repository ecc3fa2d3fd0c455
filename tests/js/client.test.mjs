// Unit tests of clients/js/telebridge-client.js (the dashboard serves a copy) with Node's test runner.
//
// Each test starts a small real WebSocket server (the `ws` package) on a free loopback port
// that plays the bridge's side of the protocol as scripted by the test, and drives a real
// TelebridgeClient against it: reconnect with capped exponential backoff and jitter, backoff
// reset after a stable period, resubscribe + resume with since/epoch, resync surfaced, dead
// link detected from missing heartbeats, request/response by id with errors and timeouts.
// When TB_BRIDGE_WS is set (ws://host:port of a running telebridge), the last tests also
// run against the real bridge. Run: cd tests && npm ci && node --test js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer, WebSocket } from 'ws';
import { TelebridgeClient, TelebridgeError } from '../../clients/js/telebridge-client.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A scripted fake bridge. onConnection(sock, n, url) is called for every connection. */
async function fakeBridge(onConnection) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const srv = { wss, n: 0, frames: [], sockets: [], url: `ws://127.0.0.1:${wss.address().port}` };
  wss.on('connection', (sock, req) => {
    const n = srv.n++;
    srv.sockets.push(sock);
    sock.on('message', (m) => {
      const f = JSON.parse(m.toString());
      srv.frames.push({ n, f });
      sock.emit('frame', f);
    });
    onConnection(sock, n, req.url);
  });
  srv.close = () => new Promise((r) => { for (const s of wss.clients) s.terminate(); wss.close(r); });
  return srv;
}

function welcome(sock, data = {}) {
  sock.send(JSON.stringify({
    type: 'welcome', ts: Date.now(),
    data: { connection_id: 1, endpoint: '/ws/connect', rooms: [], epoch: 'e1', heartbeat_interval_ms: 10000,
      client_subscriptions: true, broker_connected: true, ...data },
  }));
}

function client(url, opts = {}) {
  return new TelebridgeClient(url, { WebSocket, initialDelay: 20, maxDelay: 200, jitter: 0, ...opts });
}

async function waitFor(pred, timeout = 3000, what = 'condition') {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test('connects, reports states, dispatches typed handlers', async () => {
  const srv = await fakeBridge((sock) => {
    welcome(sock);
    sock.send(JSON.stringify({ type: 'telemetry_update', room: 'r', topic: 'vehicle/a/telemetry', seq: 1, ts: Date.now(), data: { speed: 3 } }));
  });
  const c = client(srv.url + '/ws/connect');
  const states = [];
  c.on('state', (e) => states.push(e.state));
  const got = c.once('telemetry_update', () => true, 2000);
  c.connect();
  const f = await got;
  assert.equal(f.data.speed, 3);
  assert.equal(c.state, 'open');
  assert.equal(c.welcome.epoch, 'e1');
  assert.deepEqual(states, ['connecting', 'open']);
  assert.equal(c.seqs.get('r'), 1);
  c.close();
  assert.equal(c.state, 'closed');
  await srv.close();
});

test('request/response: reply by id, error frame rejects with its code, timeout, disconnect', async () => {
  const srv = await fakeBridge((sock) => {
    welcome(sock);
    sock.on('frame', (f) => {
      if (f.type === 'ping') sock.send(JSON.stringify({ type: 'pong', ts: Date.now(), id: f.id }));
      if (f.type === 'ack_alert') sock.send(JSON.stringify({ type: 'error', ts: Date.now(), code: 'unknown_alert', message: 'no such alert', id: f.id }));
      if (f.type === 'drop_me') sock.terminate();
      // 'subscribe' is never answered: the request times out
    });
  });
  const c = client(srv.url, { requestTimeout: 150, reconnect: false });
  c.connect();
  await c.once('open', () => true, 2000);
  const rtt = await c.ping();
  assert.ok(rtt >= 0 && c.stats.rttMs === rtt);
  const pong = await c.request({ type: 'ping', id: 'my-id' });
  assert.equal(pong.type, 'pong');
  assert.equal(pong.id, 'my-id');
  await assert.rejects(c.ackAlert('nope'), (e) => e instanceof TelebridgeError && e.code === 'unknown_alert' && /no such alert/.test(e.message));
  const t0 = Date.now();
  await assert.rejects(c.request({ type: 'subscribe', rooms: ['x'] }), (e) => e.code === 'timeout');
  assert.ok(Date.now() - t0 >= 140, 'timeout honoured');
  await assert.rejects(c.request({ type: 'drop_me' }, { timeout: 5000 }), (e) => e.code === 'disconnected');
  assert.equal(c.pending.size, 0);
  await assert.rejects(c.ping(), (e) => e.code === 'not_connected');
  c.close();
  await srv.close();
});

test('backoff: exponential, capped, jittered within bounds', () => {
  const c = new TelebridgeClient('ws://x', { WebSocket, initialDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5, random: () => 0 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 10].map((n) => c.backoffDelay(n)), [100, 200, 400, 800, 1000, 1000, 1000]);
  c.opts.random = () => 0.999999;
  assert.deepEqual([0, 1, 4].map((n) => c.backoffDelay(n)), [50, 100, 500]);
  let seed = 1;
  c.opts.random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let n = 0; n < 50; n++) {
    const d = c.backoffDelay(n), base = Math.min(1000, 100 * 2 ** n);
    assert.ok(d <= base && d >= base * 0.5, `attempt ${n}: ${d} within [${base / 2}, ${base}]`);
  }
});

test('reconnect: delays grow to the cap while the server keeps refusing, then reset after a stable period', async () => {
  let refuse = 5;
  const srv = await fakeBridge((sock) => {
    if (refuse > 0) { refuse--; sock.close(1011, 'go away'); return; }
    welcome(sock);
  });
  const c = client(srv.url, { initialDelay: 20, maxDelay: 100, stableAfter: 150 });
  const delays = [];
  c.on('reconnect', (e) => delays.push(e.delay));
  c.connect();
  await c.once('open', () => true, 5000);
  assert.deepEqual(delays, [20, 40, 80, 100, 100]);
  assert.equal(c.attempt, 5, 'attempts counted until the connection is stable');
  await sleep(250);
  assert.equal(c.attempt, 0, 'reset after stableAfter');
  srv.sockets.at(-1).close(1011, 'restart');
  await c.once('reconnect', () => true, 2000);
  assert.equal(delays.at(-1), 20, 'first delay again after a stable period');
  await c.once('open', () => true, 2000);
  // A connection that drops before stableAfter does not reset the backoff.
  srv.sockets.at(-1).close(1011, 'flap');
  await c.once('open', () => true, 2000);
  srv.sockets.at(-1).close(1011, 'flap');
  await c.once('reconnect', () => true, 2000);
  assert.equal(delays.at(-1), 80, 'unstable connections keep backing off');
  c.close();
  await srv.close();
});

test('resume: resubscribes with since/epoch after a reconnect; duplicates dropped; gaps and resync surfaced', async () => {
  const srv = await fakeBridge((sock, n) => {
    welcome(sock, { epoch: n < 2 ? 'E1' : 'E2' });
    sock.on('frame', (f) => {
      if (f.type !== 'subscribe') return;
      sock.send(JSON.stringify({ type: 'subscribed', ts: Date.now(), id: f.id, rooms: f.rooms }));
      const send = (seq) => sock.send(JSON.stringify({ type: 'telemetry_update', room: 'vehicle:a', topic: 'vehicle/a/telemetry', seq, ts: Date.now(), data: { seq } }));
      if (n === 0) for (let s = 1; s <= 5; s++) send(s);
      if (n === 1) {
        send(5);           // a duplicate (e.g. keep_last) is dropped
        send(6); send(9);  // 7 and 8 missing: a gap
        // history no longer reaches back: resync, then the room's current state (seq 20)
        sock.send(JSON.stringify({ type: 'resync', ts: Date.now(), room: 'vehicle:a', reason: 'history_gap', seq: 20 }));
        send(20);
      }
    });
  });
  const c = client(srv.url);
  const seen = [], gaps = [], resyncs = [];
  c.on('telemetry_update', (f) => seen.push(f.seq));
  c.on('gap', (g) => gaps.push(g));
  c.on('resync', (r) => resyncs.push(r));
  c.connect();
  const sub = await c.subscribe(['vehicle:a'], { max_rate: 2 });
  assert.equal(sub, null, 'subscribe before open is deferred to the connect');
  await waitFor(() => seen.length === 5, 2000, '5 messages');
  assert.equal(c.seqs.get('vehicle:a'), 5);
  const first = srv.frames.find((x) => x.n === 0).f;
  assert.deepEqual({ ...first, id: undefined }, { type: 'subscribe', rooms: ['vehicle:a'], max_rate: 2, id: undefined });

  srv.sockets[0].terminate();
  await waitFor(() => resyncs.length === 1, 3000, 'server resync');
  const again = srv.frames.find((x) => x.n === 1).f;
  assert.equal(again.type, 'subscribe');
  assert.deepEqual(again.since, { 'vehicle:a': 5 });
  assert.equal(again.epoch, 'E1');
  assert.equal(again.max_rate, 2, 'options kept');
  await waitFor(() => seen.length === 8, 2000, 'state after resync');
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 9, 20], 'duplicate seq 5 dropped; state after the resync kept');
  assert.deepEqual(gaps, [{ room: 'vehicle:a', from: 6, to: 9, missed: 2 }]);
  assert.equal(resyncs[0].type, 'resync');
  assert.equal(resyncs[0].reason, 'history_gap');
  assert.equal(c.seqs.get('vehicle:a'), 20, 'resync restarts the room at its seq');

  // The bridge restarted (new epoch): the client reports a resync itself.
  srv.sockets[1].terminate();
  await waitFor(() => resyncs.length === 2, 3000, 'epoch resync');
  assert.deepEqual({ reason: resyncs[1].reason, rooms: resyncs[1].rooms, epoch: resyncs[1].epoch }, { reason: 'epoch', rooms: ['vehicle:a'], epoch: 'E2' });
  await waitFor(() => srv.frames.some((x) => x.n === 2), 2000, 'third subscribe');
  const third = srv.frames.find((x) => x.n === 2).f;
  assert.equal(third.since, undefined, 'no since across epochs');
  c.close();
  await srv.close();
});

test('resume on a fixed endpoint: the reconnect URL carries since/epoch for the endpoint\'s own rooms', async () => {
  const urls = [];
  const srv = await fakeBridge((sock, n, url) => {
    urls.push(url);
    welcome(sock, { endpoint: '/ws/telemetry/{id}', rooms: ['vehicle:7'], client_subscriptions: false, epoch: 'E1' });
    if (n === 0) for (let seq = 1; seq <= 3; seq++)
      sock.send(JSON.stringify({ type: 'telemetry_update', room: 'vehicle:7', topic: 'vehicle/7/telemetry', seq, ts: Date.now(), data: {} }));
  });
  const c = client(srv.url + '/ws/telemetry/7');
  c.connect();
  await waitFor(() => c.seqs.get('vehicle:7') === 3, 2000, '3 messages');
  srv.sockets[0].terminate();
  await waitFor(() => urls.length === 2, 3000, 'reconnect');
  assert.equal(urls[0], '/ws/telemetry/7');
  assert.equal(urls[1], '/ws/telemetry/7?since=vehicle%3A7:3&epoch=E1');
  assert.equal(srv.frames.length, 0, 'no subscribe request on a fixed endpoint');
  c.close();
  await srv.close();
});

test('join_session: reply, then re-joined with since after a reconnect; unknown session rejects', async () => {
  const srv = await fakeBridge((sock, n) => {
    welcome(sock, { client_subscriptions: false, rooms: ['personal'] });
    sock.on('frame', (f) => {
      if (f.type !== 'join_session') return;
      if (f.session_id === 'nope') { sock.send(JSON.stringify({ type: 'error', ts: Date.now(), code: 'unknown_session', message: 'no such session', id: f.id })); return; }
      const room = `session:${f.session_id}`;
      sock.send(JSON.stringify({ type: 'session_joined', ts: Date.now(), id: f.id, session_id: f.session_id, room }));
      const from = f.since ? f.since[room] + 1 : 1;
      for (let seq = from; seq < from + 3; seq++) sock.send(JSON.stringify({ type: seq === 1 ? 'setup_update' : 'telemetry_update', room, topic: 't', seq, ts: Date.now(), data: {} }));
    });
  });
  const c = client(srv.url);
  const seqs = [];
  c.on('message', (f) => { if (f.room === 'session:s1' && f.seq != null) seqs.push(f.seq); });
  c.connect();
  await c.once('open', () => true, 2000);
  const r = await c.joinSession('s1');
  assert.equal(r.type, 'session_joined');
  await assert.rejects(c.joinSession('nope'), (e) => e.code === 'unknown_session');
  assert.deepEqual([...c.sessions.keys()], ['s1']);
  await waitFor(() => seqs.length === 3, 2000, 'session frames');
  srv.sockets[0].terminate();
  await waitFor(() => seqs.length === 6, 3000, 'resumed session frames');
  const rejoin = srv.frames.filter((x) => x.n === 1).map((x) => x.f);
  assert.deepEqual(rejoin.map((f) => [f.type, f.session_id, f.since, f.epoch]), [['join_session', 's1', { 'session:s1': 3 }, 'e1']]);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6]);
  c.close();
  await srv.close();
});

test('heartbeat loss: the link is declared dead and the client reconnects', async () => {
  const srv = await fakeBridge((sock, n) => {
    welcome(sock, { heartbeat_interval_ms: 100 });
    if (n === 0) {
      // two heartbeats, then silence with the TCP connection still open
      setTimeout(() => sock.send(JSON.stringify({ type: 'heartbeat', ts: Date.now(), data: { timestamp: Date.now(), server_status: 'ok', broker: 'connected' } })), 80);
      setTimeout(() => sock.send(JSON.stringify({ type: 'heartbeat', ts: Date.now(), data: { timestamp: Date.now(), server_status: 'ok', broker: 'disconnected' } })), 160);
    }
  });
  const c = client(srv.url, { heartbeatMinTimeout: 0 });
  const dead = c.once('dead', () => true, 3000);
  const t0 = Date.now();
  c.connect();
  const d = await dead;
  const after = Date.now() - t0;
  assert.equal(d.silentMs, 250);
  assert.ok(after >= 160 + 240 && after < 1500, `declared dead after ${after} ms`);
  assert.equal(c.lastHeartbeat.broker, 'disconnected');
  await waitFor(() => srv.n === 2 && c.state === 'open', 2000, 'reconnect after dead link');
  c.close();
  await srv.close();
});

test('a heartbeatTimeout of 0 disables the watchdog; connect timeout without welcome', async () => {
  const srv = await fakeBridge((sock, n) => { if (n > 0) welcome(sock, { heartbeat_interval_ms: 50 }); });
  const c = client(srv.url, { connectTimeout: 150, heartbeatTimeout: 0 });
  let deadCount = 0;
  c.on('dead', () => deadCount++);
  c.connect();
  await c.once('open', () => true, 3000);
  assert.equal(srv.n, 2, 'first connection (no welcome) timed out and was retried');
  await sleep(300);
  assert.equal(deadCount, 0);
  assert.equal(c.state, 'open');
  c.close();
  await srv.close();
});

test('bad frames are reported, not thrown', async () => {
  const srv = await fakeBridge((sock) => { welcome(sock); sock.send('not json'); sock.send('[1,2]'); sock.send(JSON.stringify({ type: 'pong', ts: 1 })); });
  const c = client(srv.url);
  const errs = [];
  c.on('frame_error', (e) => errs.push(e.error));
  c.connect();
  await c.once('pong', () => true, 2000);
  assert.deepEqual(errs, ['not JSON', 'no type']);
  c.close();
  await srv.close();
});

// ---- against the real bridge (TB_BRIDGE_WS=ws://127.0.0.1:port) -------------------------

const BRIDGE = process.env.TB_BRIDGE_WS;

test('real bridge: welcome, ping/pong with id, error for an unknown type', { skip: !BRIDGE && 'TB_BRIDGE_WS not set' }, async () => {
  const c = client(BRIDGE + '/ws/connect');
  c.connect();
  const { welcome: w } = await c.once('open', () => true, 5000);
  assert.equal(w.endpoint, '/ws/connect');
  assert.ok(w.epoch);
  assert.ok(w.heartbeat_interval_ms > 0);
  const rtt = await c.ping();
  assert.ok(rtt < 1000);
  await assert.rejects(c.request({ type: 'no_such_request' }), (e) => e.code === 'unknown_type');
  c.close();
});

test('real bridge: routed frames carry room and seq; fleet endpoint gets fleet data only', { skip: !BRIDGE && 'TB_BRIDGE_WS not set' }, async () => {
  const c = client(BRIDGE + '/ws/fleet');
  const modes = new Set();
  c.on('telemetry_update', (f) => { assert.equal(f.room, 'fleet'); assert.equal(typeof f.seq, 'number'); modes.add(f.data.simulation_mode); });
  c.connect();
  await c.once('telemetry_update', () => true, 10000);
  await sleep(1500);
  assert.deepEqual([...modes], ['fleet']);
  assert.ok(c.seqs.get('fleet') > 0);
  c.close();
});

test('real bridge: history() replays a vehicle room past its keep_last setup/status, in order', { skip: !BRIDGE && 'TB_BRIDGE_WS not set' }, async () => {
  // The vehicle rooms get setup and status (routes without history) first, then telemetry
  // (history: 200): since=0 cannot be replayed, so the client retries just past the status.
  const c = client(BRIDGE + '/ws/connect');
  c.connect();
  await c.once('open', () => true, 5000);
  let frames = [];
  for (let i = 0; i < 40 && frames.length < 4; i++) {   // the simulator may have just started
    frames = await c.history('vehicle:veh-00001', { timeout: 10000 });
    if (frames.length < 4) { await c.unsubscribe('vehicle:veh-00001'); await sleep(250); }
  }
  assert.ok(frames.length >= 4, `history frames: ${frames.length}`);
  assert.ok(frames.every((f) => f.type === 'telemetry_update' && f.room === 'vehicle:veh-00001'));
  for (let i = 1; i < frames.length; i++) {
    assert.equal(frames[i].seq, frames[i - 1].seq + 1, 'consecutive seqs, no gap, no duplicate');
    assert.ok(frames[i].ts >= frames[i - 1].ts, 'in routing order');
  }
  // A room the endpoint cannot have: rejected with the bridge's code, not a timeout.
  await assert.rejects(c.history(''), (e) => e instanceof TelebridgeError);
  c.close();
});
