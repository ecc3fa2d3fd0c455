// Tests of the client's token handling, refusal, lag statistics and history() with an
// in-process fake WebSocket (test/fake-ws.mjs): every frame is delivered by the test, so
// nothing depends on timing. The socket-level behaviour (reconnect, resume, watchdog) is
// tested against real servers and the real bridge in tests/js/ of the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TelebridgeClient, TelebridgeError } from 'telebridge-client';
import { FakeWS, welcome } from './fake-ws.mjs';

const mk = (url, opts = {}) => new TelebridgeClient(url, { WebSocket: FakeWS, initialDelay: 5, jitter: 0, ...opts });

test('no token: no subprotocols, URL unchanged', () => {
  const c = mk('ws://h:1/ws/fleet').connect();
  assert.equal(FakeWS.last.url, 'ws://h:1/ws/fleet');
  assert.equal(FakeWS.last.protocols, undefined);
  c.close();
});

test('token goes in subprotocols ["bearer", token] by default, or ?token= on request', () => {
  const a = mk('ws://h:1/ws/fleet', { token: 't.o.k' }).connect();
  assert.deepEqual(FakeWS.last.protocols, ['bearer', 't.o.k']);
  assert.equal(FakeWS.last.url, 'ws://h:1/ws/fleet');
  a.close();
  const b = mk('ws://h:1/ws/fleet?x=1', { token: 'a b&c', tokenIn: 'query' }).connect();
  assert.equal(FakeWS.last.protocols, undefined);
  assert.equal(new URL(FakeWS.last.url).searchParams.get('token'), 'a b&c');
  assert.equal(new URL(FakeWS.last.url).searchParams.get('x'), '1');
  b.close();
});

test('bad token options are refused at construction', () => {
  assert.throws(() => mk('ws://h:1/', { tokenIn: 'header' }), TypeError);
  assert.throws(() => mk('ws://h:1/', { token: 42 }), TypeError);
  const c = mk('ws://h:1/');
  assert.throws(() => c.setToken({}), TypeError);
});

for (const [close, code] of [[4401, 'unauthorized'], [4403, 'forbidden']]) {
  test(`close ${close} after an error frame: refused, no reconnect, the bridge's message kept`, async () => {
    const c = mk('ws://h:1/ws/fleet', { token: 'bad' });
    const refused = [];
    c.on('refused', (r) => refused.push(r));
    const nBefore = FakeWS.all.length;
    c.connect();
    FakeWS.last.open();
    FakeWS.last.receive({ type: 'error', code, message: 'token expired' });
    FakeWS.last.serverClose(close, '');
    assert.equal(c.state, 'closed');
    assert.deepEqual(refused, [{ close, code, message: 'token expired' }]);
    assert.deepEqual(c.refusal, refused[0]);
    await new Promise((r) => setTimeout(r, 30));   // a reconnect would have been due after 5 ms
    assert.equal(FakeWS.all.length, nBefore + 1, 'no new socket');
    // A new token and connect() try again.
    c.setToken('good');
    c.connect();
    assert.deepEqual(FakeWS.last.protocols, ['bearer', 'good']);
    welcome(FakeWS.last);
    assert.equal(c.state, 'open');
    assert.equal(c.refusal, null);
    c.close();
  });
}

test('an error frame that is not a refusal does not stop reconnects', async () => {
  const c = mk('ws://h:1/ws/fleet');
  c.connect();
  welcome(FakeWS.last);
  FakeWS.last.receive({ type: 'error', code: 'bad_json', message: 'x' });
  FakeWS.last.serverClose(1006, '');
  assert.equal(c.state, 'reconnecting');
  assert.equal(c.refusal, null);
  c.close();
});

test('stats.lagMs counts live frames only: not join state, not replayed history', () => {
  let now = 1_000_000;
  const c = mk('ws://h:1/ws/connect', { now: () => now });
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  const old = now - 60_000;   // frames from a minute ago
  // join state: the room's keep_last telemetry, old
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 5, ts: old, data: {} });
  assert.equal(c.stats.lagMs, null, 'join state not counted');
  // a resumed subscribe: reply says 3 replayed frames, which carry their old ts
  ws.receive({ type: 'subscribed', id: 'x', rooms: ['vehicle:b'], resumed: { 'vehicle:b': 3 }, ts: now });
  for (let s = 1; s <= 3; s++) ws.receive({ type: 'telemetry_update', room: 'vehicle:b', seq: s, ts: old + s });
  assert.equal(c.stats.lagMs, null, 'replay not counted');
  // live frames: 20 ms behind
  ws.receive({ type: 'telemetry_update', room: 'vehicle:b', seq: 4, ts: now - 20 });
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 6, ts: now - 20 });
  assert.equal(c.stats.lagMs, 20);
  // a resync: the state after it is not live either
  ws.receive({ type: 'resync', room: 'vehicle:a', reason: 'history_gap', seq: 90 });
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 90, ts: old });
  assert.equal(c.stats.lagMs, 20);
  c.close();
});

test('history(): since 0 replayed in full', async () => {
  const c = mk('ws://h:1/ws/connect');
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  const p = c.history('vehicle:a');
  const req = ws.sent.at(-1);
  assert.deepEqual({ ...req, id: undefined }, { type: 'subscribe', id: undefined, rooms: ['vehicle:a'], since: { 'vehicle:a': 0 }, epoch: 'e1' });
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['vehicle:a'], resumed: { 'vehicle:a': 2 } });
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 1, data: { speed: 1 } });
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 2, data: { speed: 2 } });
  const got = await p;
  assert.deepEqual(got.map((f) => f.data.speed), [1, 2]);
  c.close();
});

test('history(): a resync makes one second try from seq - max', async () => {
  const c = mk('ws://h:1/ws/connect');
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  const p = c.history('session:s', { max: 50 });
  let req = ws.sent.at(-1);
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['session:s'] });
  ws.receive({ type: 'resync', room: 'session:s', reason: 'history_gap', seq: 120 });
  ws.receive({ type: 'setup_update', room: 'session:s', seq: 1 });
  await new Promise((r) => setImmediate(r));
  req = ws.sent.at(-1);
  assert.equal(req.type, 'unsubscribe');
  ws.receive({ type: 'unsubscribed', id: req.id, rooms: ['session:s'] });
  await new Promise((r) => setImmediate(r));
  req = ws.sent.at(-1);
  assert.deepEqual(req.since, { 'session:s': 70 });
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['session:s'], resumed: { 'session:s': 1 } });
  ws.receive({ type: 'telemetry_update', room: 'session:s', seq: 71, data: { speed: 9 } });
  assert.deepEqual((await p).map((f) => f.seq), [71]);
  c.close();
});

test('history(): refused subscribe rejects with the bridge code; not connected rejects', async () => {
  const c = mk('ws://h:1/ws/connect');
  await assert.rejects(c.history('x'), (e) => e instanceof TelebridgeError && e.code === 'not_connected');
  c.connect();
  welcome(FakeWS.last);
  const p = c.history('secret');
  FakeWS.last.receive({ type: 'error', id: FakeWS.last.sent.at(-1).id, code: 'not_allowed', message: 'no' });
  await assert.rejects(p, (e) => e.code === 'not_allowed');
  c.close();
});

test('ackAlert sends by only when given', () => {
  const c = mk('ws://h:1/ws/alerts/u');
  c.connect();
  welcome(FakeWS.last);
  c.ackAlert('r:1').catch(() => {});
  c.ackAlert('r:2', { by: 'u' }).catch(() => {});
  const [a, b] = FakeWS.last.sent.slice(-2);
  assert.equal(a.by, undefined);
  assert.equal(a.alert_id, 'r:1');
  assert.equal(b.by, 'u');
  c.close();
});

test('history(): skips past the newest state frame of a route without history, then halves', async () => {
  const c = mk('ws://h:1/ws/connect');
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  const p = c.history('vehicle:a', { max: 200, tries: 3 });
  const tick = () => new Promise((r) => setImmediate(r));
  const answerResync = async (seq, state) => {
    const req = ws.sent.at(-1);
    ws.receive({ type: 'subscribed', id: req.id, rooms: ['vehicle:a'] });
    ws.receive({ type: 'resync', room: 'vehicle:a', reason: 'history_gap', seq });
    for (const [type, q] of state) ws.receive({ type, room: 'vehicle:a', seq: q });
    await tick();
    const un = ws.sent.at(-1);
    assert.equal(un.type, 'unsubscribe');
    ws.receive({ type: 'unsubscribed', id: un.id, rooms: ['vehicle:a'] });
    await tick();
  };
  await answerResync(120, [['setup_update', 110], ['telemetry_update', 120]]);
  assert.deepEqual(ws.sent.at(-1).since, { 'vehicle:a': 110 }, 'just past the setup');
  await answerResync(121, [['setup_update', 110], ['telemetry_update', 121]]);
  assert.deepEqual(ws.sent.at(-1).since, { 'vehicle:a': 116 }, 'then half the distance');
  const req = ws.sent.at(-1);
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['vehicle:a'], resumed: { 'vehicle:a': 0 } });
  assert.deepEqual(await p, []);
  c.close();
});

test('history(): state frames that arrive after the unsubscribe was sent do not swallow the replay', async () => {
  const c = mk('ws://h:1/ws/connect');
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  const p = c.history('vehicle:a');
  let req = ws.sent.at(-1);
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['vehicle:a'], resumed: {} });
  ws.receive({ type: 'resync', room: 'vehicle:a', reason: 'history_gap', seq: 60 });
  await new Promise((r) => setImmediate(r));
  const un = ws.sent.at(-1);
  assert.equal(un.type, 'unsubscribe');
  // the browser delivered the state only now, after the unsubscribe went out
  ws.receive({ type: 'setup_update', room: 'vehicle:a', seq: 1 });
  ws.receive({ type: 'status_update', room: 'vehicle:a', seq: 2 });
  ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: 60 });
  ws.receive({ type: 'unsubscribed', id: un.id, rooms: ['vehicle:a'] });
  await new Promise((r) => setImmediate(r));
  req = ws.sent.at(-1);
  assert.deepEqual(req.since, { 'vehicle:a': 2 });
  ws.receive({ type: 'subscribed', id: req.id, rooms: ['vehicle:a'], resumed: { 'vehicle:a': 58 } });
  for (let q = 3; q <= 60; q++) ws.receive({ type: 'telemetry_update', room: 'vehicle:a', seq: q });
  assert.equal((await p).length, 58);
  c.close();
});

test('setToken only changes the next handshake; refreshToken sends the refresh frame', () => {
  const c = mk('ws://h:1/ws/fleet', { token: 'a' });
  c.connect();
  const ws = FakeWS.last;
  welcome(ws);
  c.setToken('b');
  assert.equal(ws.sent.length, 0, 'nothing sent on the open connection');
  assert.equal(c.refreshToken('c'), true);
  assert.deepEqual(ws.sent.at(-1), { type: 'refresh', token: 'c' });
  c.close();
  c.connect();
  assert.deepEqual(FakeWS.last.protocols, ['bearer', 'c']);
  c.close();
});

test('history(): a room the endpoint does not allow rejects at once with its code', async () => {
  const c = mk('ws://h:1/ws/connect');
  c.connect();
  welcome(FakeWS.last);
  const p = c.history('secret:1');
  const req = FakeWS.last.sent.at(-1);
  FakeWS.last.receive({ type: 'subscribed', id: req.id, rooms: [], rejected: [{ room: 'secret:1', code: 'not_allowed' }] });
  await assert.rejects(p, (e) => e instanceof TelebridgeError && e.code === 'not_allowed');
  c.close();
});
