// The JS client's command() and publish() against the real bridge and a real telesim
// --commands vehicle (issue 17). Not a *.test.mjs file: `node --test js/` (run by
// test_dashboard_e2e.py against a bridge without publish rules) does not pick it up;
// tests/integration/test_dashboard_command.py runs it with the environment below, and
// without it every test fails instead of being skipped.
//
// Environment: TB_CONTROL_WS (ws://127.0.0.1:port of the bridge), TB_VEHICLE (answers
// commands), TB_SILENT_VEHICLE (permitted, nobody answers), TB_REFUSED_VEHICLE (outside the
// command rule's allow_topics). The endpoint is /ws/control/{vehicle_id}/{user_id} with a
// `command` rule (reply timeout 1 s) and a `note` rule (no reply, retain not allowed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { TelebridgeClient, TelebridgeError } from '../../clients/js/telebridge-client.js';

const { TB_CONTROL_WS: WS, TB_VEHICLE: VEHICLE, TB_SILENT_VEHICLE: SILENT, TB_REFUSED_VEHICLE: REFUSED } = process.env;

async function control(vehicle, user = 'alice', opts = {}) {
  assert.ok(WS && VEHICLE && SILENT && REFUSED, 'TB_CONTROL_WS, TB_VEHICLE, TB_SILENT_VEHICLE, TB_REFUSED_VEHICLE must be set');
  const c = new TelebridgeClient(`${WS}/ws/control/${vehicle}/${user}`, { WebSocket, reconnect: false, ...opts });
  const open = c.once('open', () => true, 10000);
  c.connect();
  await open;
  return c;
}

const codeOf = (code) => (e) => e instanceof TelebridgeError && e.code === code;

test('command(): telesim answers ping, horn and request_diagnostics; the sender is the path identity', async () => {
  const c = await control(VEHICLE);
  try {
    const pong = await c.command(VEHICLE, 'ping');
    assert.equal(pong.ok, true);
    assert.equal(pong.vehicle_id, VEHICLE);
    assert.equal(pong.sender, 'alice');
    assert.equal((await c.command(VEHICLE, 'horn')).ok, true);
    const d = await c.command(null, 'request_diagnostics');
    assert.equal(d.ok, true);
    assert.equal(typeof d.diagnostics, 'object');
    const bad = await c.command(VEHICLE, 'set_rate', { rate: -1 });
    assert.equal(bad.ok, false, 'the vehicle refusing is an answer, not a rejection');
    // several at once: each resolves with its own answer
    const [a, b] = await Promise.all([c.command(VEHICLE, 'ping'), c.command(VEHICLE, 'horn')]);
    assert.equal(a.command, 'ping');
    assert.equal(b.command, 'horn');
  } finally {
    c.close();
  }
});

test('command(): refusals reject with the bridge code; nothing waits on them', async () => {
  const r = await control(REFUSED);
  try {
    await assert.rejects(r.command(REFUSED, 'ping'), codeOf('not_allowed'));
  } finally {
    r.close();
  }
  const c = await control(VEHICLE);
  try {
    await assert.rejects(c.command(VEHICLE, 'ping', undefined, { type: 'launch' }), codeOf('unknown_type'));
    await assert.rejects(c.command(VEHICLE, 'no/such'), codeOf('bad_field'));
    await assert.rejects(c.command(VEHICLE, 'ping', 'x'.repeat(2000)), codeOf('too_large'));
    await assert.rejects(c.command(SILENT, 'ping'), codeOf('wrong_vehicle'));
    assert.equal(c.pending.size, 0);
    assert.equal((await c.command(VEHICLE, 'ping')).ok, true, 'the connection still works');
  } finally {
    c.close();
  }
});

test('command(): no answer -> the bridge\'s timeout; a shorter client timeout rejects first', async () => {
  const c = await control(SILENT);
  try {
    await assert.rejects(c.command(SILENT, 'ping'), (e) => codeOf('timeout')(e) && e.frame?.type === 'error');
    await assert.rejects(c.command(SILENT, 'ping', undefined, { timeout: 50 }), (e) => codeOf('timeout')(e) && e.frame === undefined);
  } finally {
    c.close();
  }
});

test('command(): a pending command rejects with closed when the client closes', async () => {
  const c = await control(SILENT);
  const p = c.command(SILENT, 'ping');
  c.close();
  await assert.rejects(p, codeOf('closed'));
});

test('publish(): resolves with published and its topic; retain not allowed and unknown fields are refused', async () => {
  const c = await control(VEHICLE, 'bob');
  try {
    const f = await c.publish('note', { text: 'hello' });
    assert.equal(f.type, 'published');
    assert.equal(f.topic, 'notes/bob');
    await assert.rejects(c.publish('note', { text: 'x' }, { retain: true }), codeOf('not_allowed'));
    await assert.rejects(c.publish('note', { text: 'x', sender: 'mallory' }), codeOf('bad_field'));
    await assert.rejects(c.publish('chat', { to: 'x', text: 'y' }), codeOf('unknown_type'));
  } finally {
    c.close();
  }
});
