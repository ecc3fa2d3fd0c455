// Tests of publish() and command() (issue 17, docs/uplink.md) with the in-process fake
// WebSocket: the test plays the bridge, so every answer, refusal and disconnect is exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TelebridgeClient, TelebridgeError } from 'telebridge-client';
import { FakeWS, welcome } from './fake-ws.mjs';

const mk = (url, opts = {}) => new TelebridgeClient(url, { WebSocket: FakeWS, initialDelay: 5, jitter: 0, ...opts });

/** An open client on /ws/control/v1/alice (endpoint /ws/control/{vehicle_id}/{user_id}). */
function control(opts) {
  const c = mk('ws://h:1/ws/control/v1/alice', opts).connect();
  welcome(FakeWS.last, { endpoint: '/ws/control/{vehicle_id}/{user_id}', path: '/ws/control/v1/alice', client_subscriptions: false });
  return { c, ws: FakeWS.last };
}

const codeOf = (code) => (e) => e instanceof TelebridgeError && e.code === code;

test('publish(): sends type, id and data; resolves with the published frame', async () => {
  const { c, ws } = control();
  const p = c.publish('chat', { to: 'bob', text: 'hi' });
  const sent = ws.sent.at(-1);
  assert.deepEqual({ ...sent, id: undefined }, { type: 'chat', data: { to: 'bob', text: 'hi' }, id: undefined });
  assert.equal('retain' in sent, false, 'retain only when asked');
  ws.receive({ type: 'published', topic: 'chat/user/bob', id: sent.id });
  const f = await p;
  assert.equal(f.type, 'published');
  assert.equal(f.topic, 'chat/user/bob');
  c.close();
});

test('publish(): retain is sent as a boolean; a refusal rejects with the bridge code', async () => {
  const { c, ws } = control();
  const p = c.publish('status', { on: 1 }, { retain: true });
  const sent = ws.sent.at(-1);
  assert.equal(sent.retain, true);
  ws.receive({ type: 'error', code: 'not_allowed', message: 'retain is not allowed here', id: sent.id });
  await assert.rejects(p, (e) => codeOf('not_allowed')(e) && /retain/.test(e.message) && e.frame.id === sent.id);
  c.close();
});

test('publish(): bad arguments reject without sending; not connected rejects', async () => {
  const { c, ws } = control();
  const n = ws.sent.length;
  await assert.rejects(c.publish('', {}), TypeError);
  await assert.rejects(c.publish('chat', [1, 2]), TypeError);
  await assert.rejects(c.publish('chat', 'text'), TypeError);
  assert.equal(ws.sent.length, n, 'nothing sent');
  c.close();
  await assert.rejects(c.publish('chat', { to: 'bob' }), codeOf('not_connected'));
});

test('command(): on a per-vehicle endpoint the vehicle is not sent; resolves with the reply data', async () => {
  const { c, ws } = control();
  const p = c.command('v1', 'set_rate', { rate: 2 });
  const sent = ws.sent.at(-1);
  assert.equal(sent.type, 'command');
  assert.deepEqual(sent.data, { command: 'set_rate', args: { rate: 2 } });
  assert.equal(typeof sent.id, 'string');
  ws.receive({ type: 'reply', id: sent.id, data: { ok: true, rate: 2, vehicle_id: 'v1', sender: 'alice' } });
  assert.deepEqual(await p, { ok: true, rate: 2, vehicle_id: 'v1', sender: 'alice' });
  // null means "the one the path names"; no args means no args field
  const q = c.command(null, 'ping');
  assert.deepEqual(ws.sent.at(-1).data, { command: 'ping' });
  ws.receive({ type: 'reply', id: ws.sent.at(-1).id, data: 'pong' });
  assert.equal(await q, 'pong');
  c.close();
});

test('command(): another vehicle than the path names is refused locally, nothing sent', async () => {
  const { c, ws } = control();
  const n = ws.sent.length;
  await assert.rejects(c.command('v2', 'horn'), codeOf('wrong_vehicle'));
  await assert.rejects(c.command('v1', ''), TypeError);
  assert.equal(ws.sent.length, n);
  c.close();
});

test('command(): on an endpoint without a vehicle capture the vehicle goes in data.vehicle_id', async () => {
  const c = mk('ws://h:1/ws/cmd').connect();
  welcome(FakeWS.last, { endpoint: '/ws/cmd', path: '/ws/cmd' });
  const ws = FakeWS.last;
  const p = c.command('v7', 'horn', undefined, { type: 'vehicle_command' });
  const sent = ws.sent.at(-1);
  assert.equal(sent.type, 'vehicle_command');
  assert.deepEqual(sent.data, { command: 'horn', vehicle_id: 'v7' });
  ws.receive({ type: 'reply', id: sent.id, data: { ok: true } });
  assert.deepEqual(await p, { ok: true });
  c.close();
});

for (const code of ['timeout', 'not_allowed', 'rate_limited', 'too_many_pending', 'bad_field']) {
  test(`command(): the bridge's ${code} rejects with that code`, async () => {
    const { c, ws } = control();
    const p = c.command('v1', 'horn');
    ws.receive({ type: 'error', code, message: `m ${code}`, id: ws.sent.at(-1).id });
    await assert.rejects(p, codeOf(code));
    assert.equal(c.pending.size, 0);
    c.close();
  });
}

test('command(): a published answer (rule without reply) rejects with no_reply', async () => {
  const { c, ws } = control();
  const p = c.command('v1', 'horn');
  ws.receive({ type: 'published', topic: 'vehicle/v1/cmd/horn', id: ws.sent.at(-1).id });
  await assert.rejects(p, codeOf('no_reply'));
  c.close();
});

test('command(): no answer within opts.timeout rejects with timeout; a late reply is only an event', async () => {
  const { c, ws } = control();
  const p = c.command('v1', 'horn', undefined, { timeout: 20 });
  const id = ws.sent.at(-1).id;
  await assert.rejects(p, codeOf('timeout'));
  const late = [];
  c.on('reply', (f) => late.push(f.id));
  ws.receive({ type: 'reply', id, data: { ok: true } });
  assert.deepEqual(late, [id]);
  c.close();
});

test('command(): pending commands reject with disconnected when the connection drops, closed on close()', async () => {
  const { c, ws } = control();
  const a = c.command('v1', 'ping');
  const b = c.command('v1', 'request_diagnostics');
  ws.serverClose(1006, '');
  await assert.rejects(a, codeOf('disconnected'));
  await assert.rejects(b, codeOf('disconnected'));
  assert.equal(c.pending.size, 0);
  // after the reconnect, one pending command and then close()
  await new Promise((r) => setTimeout(r, 20));
  welcome(FakeWS.last, { endpoint: '/ws/control/{vehicle_id}/{user_id}', path: '/ws/control/v1/alice' });
  const d = c.command('v1', 'ping');
  c.close();
  await assert.rejects(d, codeOf('closed'));
});

test('command(): replies are matched by id, in any order, each settling only its own command', async () => {
  const { c, ws } = control();
  const a = c.command('v1', 'ping');
  const idA = ws.sent.at(-1).id;
  const b = c.command('v1', 'horn');
  const idB = ws.sent.at(-1).id;
  assert.notEqual(idA, idB);
  ws.receive({ type: 'reply', id: 'nobody', data: { x: 1 } });   // stray: ignored
  ws.receive({ type: 'reply', id: idB, data: { ok: true, command: 'horn' } });
  ws.receive({ type: 'error', code: 'timeout', id: idA });
  assert.deepEqual(await b, { ok: true, command: 'horn' });
  await assert.rejects(a, codeOf('timeout'));
  c.close();
});

test('pathCaptures(): decoded captures from the welcome; {} when it does not fit', () => {
  const c = mk('ws://h:1/ws/control/v%2Dx/al%20ice').connect();
  assert.deepEqual(c.pathCaptures(), {});
  welcome(FakeWS.last, { endpoint: '/ws/control/{vehicle_id}/{user_id}', path: '/ws/control/v%2Dx/al%20ice' });
  assert.deepEqual(c.pathCaptures(), { vehicle_id: 'v-x', user_id: 'al ice' });
  assert.deepEqual(c.pathCaptures(true), { vehicle_id: 'v%2Dx', user_id: 'al%20ice' });
  c.welcome = { endpoint: '/ws/a/{x}', path: '/ws/a/b/c' };
  assert.deepEqual(c.pathCaptures(), {});
  c.close();
});
