// End-to-end test of the dashboard's command panel (issue 17) in a real headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core), against a real Mosquitto, bridge
// and telesim --commands started by tests/integration/test_dashboard_command.py.
//
// It opens the vehicle view of a telesim vehicle, clicks Ping, Horn and Request diagnostics
// and waits for each answer in the panel's log; then a vehicle the endpoint may not command
// (outside the rule's allow_topics: the bridge refuses, nothing is published) and a vehicle
// nobody simulates (the bridge's reply timeout). Each step prints one line; the first
// failure throws (exit 1) after a screenshot. No step asserts how long anything took.
//
// Environment: TB_HTTP (http://127.0.0.1:port of the bridge), TB_VEHICLE (answers commands),
// TB_REFUSED_VEHICLE, TB_SILENT_VEHICLE, TB_ARTIFACTS (screenshots), TB_CHROMIUM.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const HTTP = process.env.TB_HTTP;
const VEHICLE = process.env.TB_VEHICLE;
const REFUSED = process.env.TB_REFUSED_VEHICLE;
const SILENT = process.env.TB_SILENT_VEHICLE;
const ART = process.env.TB_ARTIFACTS || '/tmp/tb-e2e-artifacts';
if (!HTTP || !VEHICLE || !REFUSED || !SILENT) {
  console.error('TB_HTTP, TB_VEHICLE, TB_REFUSED_VEHICLE and TB_SILENT_VEHICLE are required (run via tests/integration/test_dashboard_command.py)');
  process.exit(2);
}
fs.mkdirSync(ART, { recursive: true });
const step = (msg) => console.log(`e2e: ${msg}`);
const WAIT = { timeout: 20000 };   // generous bounds for a loaded machine, not measurements

const browser = await chromium.launch({
  executablePath: process.env.TB_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await ctx.newPage();
const pageErrors = [];
page.on('pageerror', (e) => { console.log(`e2e: page error: ${e.message}`); pageErrors.push(e.message); });

/** The newest log entry of a command, once it left the "sending" state: {state, text, detail}. */
async function answerOf(command) {
  const sel = `#vehicle-cmd-log li[data-command="${command}"]`;
  await page.waitForFunction((sel) => { const li = document.querySelector(sel); return li && li.dataset.state !== 'sending'; }, sel, WAIT);
  return page.evaluate((sel) => {
    const li = document.querySelector(sel);
    return { state: li.dataset.state, text: li.querySelector('.cmd-text').textContent, detail: li.querySelector('.cmd-detail')?.textContent ?? null };
  }, sel);
}

async function openVehicle(id) {
  await page.goto(`${HTTP}/#/vehicle/${encodeURIComponent(id)}`);
  await page.waitForFunction((id) => document.querySelector('#vehicle-title').textContent === id, id, WAIT);
  assert.equal(await page.locator('#vehicle-cmd-log li[data-command]').count(), 0, 'a new view starts with an empty command log');
}

let failed = null;
try {
  // 1. A telesim vehicle answers each command; the answer is shown with the sender.
  await openVehicle(VEHICLE);
  const user = await page.evaluate(() => localStorage.getItem('tb-user'));
  await page.click('#vehicle-commands button[data-command="ping"]');
  const ping = await answerOf('ping');
  step(`ping: ${ping.state} (${ping.text})`);
  assert.equal(ping.state, 'answered', ping.text);
  const pong = JSON.parse(ping.detail);
  assert.equal(pong.ok, true);
  assert.equal(pong.command, 'ping');
  assert.equal(pong.vehicle_id, VEHICLE, 'answered by the vehicle of the view');
  assert.equal(pong.sender, user, 'the bridge names the dashboard user as sender');

  await page.click('#vehicle-commands button[data-command="horn"]');
  const horn = await answerOf('horn');
  step(`horn: ${horn.state}`);
  assert.equal(horn.state, 'answered', horn.text);

  await page.click('#vehicle-commands button[data-command="request_diagnostics"]');
  const diag = await answerOf('request_diagnostics');
  step(`request_diagnostics: ${diag.state}`);
  assert.equal(diag.state, 'answered', diag.text);
  const d = JSON.parse(diag.detail);
  assert.ok(d.diagnostics && typeof d.diagnostics === 'object', 'a diagnostic snapshot is shown');
  assert.equal(await page.locator('#vehicle-cmd-log li[data-command]').count(), 3, 'one log line per command');
  await page.locator('#vehicle-commands').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(ART, 'vehicle-command.png') });

  // 2. A vehicle this endpoint may not command: refused by the bridge, the code shown.
  await openVehicle(REFUSED);
  await page.click('#vehicle-commands button[data-command="horn"]');
  const no = await answerOf('horn');
  step(`horn to ${REFUSED}: ${no.state} (${no.text})`);
  assert.equal(no.state, 'refused');
  assert.match(no.text, /not_allowed/);
  assert.equal(no.detail, null);
  await page.locator('#vehicle-commands').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(ART, 'vehicle-command-refused.png') });

  // 2b. A hostile vehicle id: "x+1" in the URL would put an MQTT wildcard into the topic.
  await openVehicle('x+1');
  await page.click('#vehicle-commands button[data-command="ping"]');
  const wild = await answerOf('ping');
  step(`ping to x+1: ${wild.state} (${wild.text})`);
  assert.equal(wild.state, 'refused');
  assert.match(wild.text, /bad_field|not_allowed/);

  // 3. A vehicle nobody simulates: the bridge's reply timeout, shown as timed out.
  await openVehicle(SILENT);
  await page.click('#vehicle-commands button[data-command="ping"]');
  const late = await answerOf('ping');
  step(`ping to ${SILENT}: ${late.state} (${late.text})`);
  assert.equal(late.state, 'timeout');
  assert.match(late.text, /timed out/);

  // 4. Back to the live vehicle: a new connection, answered again (the old view's is closed).
  await openVehicle(VEHICLE);
  await page.click('#vehicle-commands button[data-command="ping"]');
  assert.equal((await answerOf('ping')).state, 'answered');
  step('a reopened view commands again');
  assert.deepEqual(pageErrors, [], 'no page errors');
} catch (e) {
  failed = e;
  console.log(`e2e: FAILED: ${e.stack || e}`);
  await page.screenshot({ path: path.join(ART, 'failure-command.png') }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
