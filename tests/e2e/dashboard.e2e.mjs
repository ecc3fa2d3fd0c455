// End-to-end test of the built-in dashboard in a real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), against a real Mosquitto, bridge and
// simulator started by tests/integration/test_dashboard_e2e.py.
//
// How it works: the Python test owns every process; this script drives the browser and asks
// the Python side for process actions over stdio — it prints "@@control <command>" and waits
// for a line "ok ..." (or "error ...") on stdin. Commands: stop-bridge, start-bridge,
// start-load. MQTT messages are published with the real mosquitto_pub. Each step prints
// one line; the first failure throws (exit code 1) after saving a screenshot of every page.
//
// Environment: TB_HTTP (http://127.0.0.1:port of the bridge), TB_MQTT_PORT, TB_ARTIFACTS
// (directory for screenshots), TB_VEHICLES (simulated vehicles, mode mixed),
// TB_SESSION (session id of a running telesim --session, optional), TB_ALERT_FOR_MS (the
// overheat rule's 'for'), TB_CHROMIUM (default /usr/bin/chromium), TB_LOAD_VEHICLES
// (vehicles the load step adds; 0 = skip it).
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const HTTP = process.env.TB_HTTP;
const MQTT_PORT = process.env.TB_MQTT_PORT;
const ART = process.env.TB_ARTIFACTS || '/tmp/tb-e2e-artifacts';
const N = Number(process.env.TB_VEHICLES || 6);
const SESSION = process.env.TB_SESSION || '';
const ALERT_FOR_MS = Number(process.env.TB_ALERT_FOR_MS || 1000);
const LOAD = Number(process.env.TB_LOAD_VEHICLES || 0);
if (!HTTP || !MQTT_PORT) { console.error('TB_HTTP and TB_MQTT_PORT are required (run via tests/integration/test_dashboard_e2e.py)'); process.exit(2); }
fs.mkdirSync(ART, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const step = (msg) => console.log(`e2e: ${msg}`);

// ---- control channel to the Python side ----------------------------------------------------
const stdinLines = createInterface({ input: process.stdin });
const replies = [];
let waiting = null;
stdinLines.on('line', (l) => { if (waiting) { const w = waiting; waiting = null; w(l); } else replies.push(l); });
async function control(cmd) {
  console.log(`@@control ${cmd}`);
  const line = replies.length ? replies.shift() : await new Promise((r) => { waiting = r; });
  if (!line.startsWith('ok')) throw new Error(`control ${cmd} failed: ${line}`);
  return line.slice(2).trim();
}

function mqttPub(topic, obj) {
  const r = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', MQTT_PORT, '-t', topic, '-q', '1', '-m', JSON.stringify(obj)]);
  if (r.status !== 0) throw new Error(`mosquitto_pub failed: ${r.stderr}`);
}

function hotTelemetry(id, temp) {
  return { vehicle_id: id, simulation_mode: 'fleet', timestamp: new Date().toISOString(), ts_ms: Date.now(), speed: 42,
    acceleration: 0, engine_metrics: { temperature: temp, rpm: 3100, oil_pressure: 3.1 },
    battery_metrics: { voltage: 13.9, level: 77 }, fuel_metrics: { level: 55, consumption: 7 },
    location: { latitude: 52.52, longitude: 13.40, heading: 90 }, odometer: 1000, gear: 4 };
}

/** Publishes telemetry with this temperature every 200 ms for ms milliseconds. */
async function publishFor(id, temp, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) { mqttPub(`vehicle/${id}/telemetry`, hotTelemetry(id, temp)); await sleep(200); }
}

// ---- browser -------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: process.env.TB_CHROMIUM || '/usr/bin/chromium',
  headless: true,   // playwright passes --headless and a fresh temporary --user-data-dir
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const pages = [];
async function newPage(name, viewport = { width: 1280, height: 720 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => { console.log(`e2e: [${name}] page error: ${e.message}`); pageErrors.push(`${name}: ${e.message}`); });
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text())) console.log(`e2e: [${name}] console error: ${m.text()}`); });
  page.on('requestfailed', (r) => { if (!r.url().startsWith('ws')) console.log(`e2e: [${name}] request failed: ${r.url()}`); });
  pages.push({ name, page });
  return page;
}
const pageErrors = [];
const shot = (page, name) => page.screenshot({ path: path.join(ART, `${name}.png`) });

/** {id: {speed, temp, ...}} of the rows of one pool table. */
const readTable = (page, pool) => page.evaluate((pool) => {
  const out = {};
  for (const tr of document.querySelectorAll(`#table-${pool} tbody tr`)) {
    const o = {};
    for (const td of tr.querySelectorAll('td')) o[td.dataset.col] = td.textContent.trim();
    out[tr.dataset.vehicle] = o;
  }
  return out;
}, pool);

/** What the alerts panel shows, and what it should show judging by its own cards. */
const panelState = (page) => page.evaluate(() => {
  const cards = [...document.querySelectorAll('#alert-list article.alert')].filter((c) => c.dataset.state !== 'cleared');
  const banner = document.querySelector('#critical-banner');
  return {
    count: Number(document.querySelector('#alert-count').textContent),
    cards: cards.length,
    ids: new Set(cards.map((c) => c.dataset.alertId)).size,
    banner: banner.hidden ? 0 : Number(banner.dataset.count),
    criticalOpen: cards.filter((c) => c.dataset.severity === 'critical' && c.dataset.acknowledged !== 'true').length,
    ackedWithButton: cards.filter((c) => c.dataset.acknowledged === 'true' && c.querySelector('button.ack')).length,
  };
});
const poolModes = (page, pool) => page.evaluate((pool) => [...window.telebridge.pools[pool].vehicles.values()].map((r) => r.mode), pool);
const connState = (page, label) => page.locator(`#st-conn-${label}`).getAttribute('data-state');

let failed = null;
try {
  // 1. Fleet view: every simulated vehicle, in the right pool, values changing.
  const A = await newPage('A');
  await A.goto(`${HTTP}/`);
  await A.waitForFunction((n) => document.querySelectorAll('table.vehicles tbody tr').length >= n, N, { timeout: 15000 });
  const personal = await readTable(A, 'personal'), fleet = await readTable(A, 'fleet');
  step(`fleet view lists ${Object.keys(personal).length} personal + ${Object.keys(fleet).length} fleet vehicles`);
  assert.equal(Object.keys(personal).length + Object.keys(fleet).length, N, 'every simulated vehicle listed once');
  assert.ok(Object.keys(personal).length > 0 && Object.keys(fleet).length > 0, 'mixed mode fills both pools');
  assert.ok((await poolModes(A, 'personal')).every((m) => m === 'personal'), 'no fleet vehicle in the personal pool');
  assert.ok((await poolModes(A, 'fleet')).every((m) => m === 'fleet'), 'no personal vehicle in the fleet pool');
  for (const id of Object.keys(personal)) assert.ok(!(id in fleet), `${id} in both pools`);
  for (const r of Object.values({ ...personal, ...fleet })) {
    assert.equal(r.online, 'online');
    assert.match(r.speed, /^\d+\.\d$/);
    assert.match(r.temp, /^-?\d+\.\d$/);
    assert.match(r.battery, /^\d+\.\d$/);
  }
  await sleep(2500);
  const later = { ...(await readTable(A, 'personal')), ...(await readTable(A, 'fleet')) };
  const before = { ...personal, ...fleet };
  const changed = Object.keys(before).filter((id) => later[id] && (later[id].speed !== before[id].speed || later[id].temp !== before[id].temp || later[id].battery !== before[id].battery || later[id].fuel !== before[id].fuel));
  step(`${changed.length} of ${N} vehicles changed values within 2.5 s`);
  assert.ok(changed.length >= Math.ceil(N / 2), 'values change live');
  assert.equal(await connState(A, 'personal'), 'open');
  assert.equal(await connState(A, 'fleet'), 'open');
  assert.equal(await A.locator('#st-broker').getAttribute('data-state'), 'connected');
  assert.ok(Number(await A.locator('#st-rate').textContent()) > 0, 'message rate shown');
  assert.match(await A.locator('#st-lat').textContent(), /\d+ ms/);

  // Sorting and filtering.
  await A.locator('#table-fleet th button', { hasText: 'Speed' }).click();
  await A.locator('#table-fleet th button', { hasText: 'Speed' }).click();
  assert.equal(await A.locator('#table-fleet th[aria-sort]').getAttribute('aria-sort'), 'descending');
  const speeds = await A.$$eval('#table-fleet tbody td[data-col="speed"]', (tds) => tds.map((t) => parseFloat(t.textContent)));
  assert.deepEqual(speeds, [...speeds].sort((a, b) => b - a), `sorted by speed descending: ${speeds}`);
  const one = Object.keys(fleet)[0];
  await A.fill('#fleet-filter', one);
  await A.waitForFunction((id) => [...document.querySelectorAll('#table-fleet tbody tr')].map((t) => t.dataset.vehicle).join() === id, one, { timeout: 5000 });
  assert.equal(await A.locator('#table-personal tbody tr').count(), 0);
  await A.fill('#fleet-filter', '');
  await A.waitForFunction((n) => document.querySelectorAll('table.vehicles tbody tr').length >= n, N);
  step('sorting by speed and filtering by id work');
  // Keyboard: the controls are reachable with Tab.
  await A.focus('a.skip');
  const tabbed = new Set();
  for (let i = 0; i < 12; i++) { await A.keyboard.press('Tab'); tabbed.add(await A.evaluate(() => document.activeElement.tagName + (document.activeElement.id ? '#' + document.activeElement.id : ''))); }
  assert.ok(tabbed.has('INPUT#fleet-filter') && [...tabbed].some((t) => t.startsWith('BUTTON')) && tabbed.has('A'), `keyboard reaches filter, links and sort buttons: ${[...tabbed]}`);
  await A.evaluate(() => document.activeElement.blur());
  await shot(A, 'fleet');

  // 2. Alerts: an injected overheat raises a critical alert on two open pages; an ack on one
  //    page shows on the other; cooling down clears it and it fades out.
  const B = await newPage('B');
  await B.goto(`${HTTP}/#/fleet`);
  await B.waitForFunction(() => document.querySelector('#st-conn-alerts')?.dataset.state === 'open', null, { timeout: 10000 });
  const hot = 'e2e-hot-1';
  step(`publishing engine temperature 120 for ${hot} during ${ALERT_FOR_MS + 1500} ms`);
  await publishFor(hot, 120, ALERT_FOR_MS + 1500);
  const card = (p) => p.locator(`article.alert[data-alert-id*="${hot}"]`);
  for (const p of [A, B]) await card(p).first().waitFor({ timeout: 10000 });
  assert.equal(await card(A).first().getAttribute('data-severity'), 'critical');
  assert.match(await card(A).first().locator('.msg').textContent(), /120/);
  assert.ok(await A.locator('#critical-banner').isVisible(), 'critical banner shown');
  assert.equal(await A.locator(`#table-fleet tr[data-vehicle="${hot}"] td[data-col="alerts"]`).textContent(), '1');
  step('overheat alert shown on both pages with the critical cue');
  // Filter by alerts, and sort by the Alerts column: the hot vehicle alone / first.
  await A.selectOption('#fleet-show', 'alerts');
  await A.waitForFunction((id) => [...document.querySelectorAll('table.vehicles tbody tr')].map((t) => t.dataset.vehicle).join() === id, hot, { timeout: 10000 });
  await A.selectOption('#fleet-show', 'all');
  await A.locator('#table-fleet th button', { hasText: 'Alerts' }).click();
  await A.locator('#table-fleet th button', { hasText: 'Alerts' }).click();
  await A.waitForFunction((id) => document.querySelector('#table-fleet tbody tr')?.dataset.vehicle === id, hot, { timeout: 10000 });
  assert.equal(await A.locator('#table-fleet th[aria-sort]').getAttribute('aria-sort'), 'descending');
  step('filter "with active alerts" shows only the hot vehicle; sorting by Alerts puts it first');
  await shot(A, 'alerts');
  // The vehicle page of a vehicle with an active alert: the alert reaches that page through
  // the alerts room and the vehicle room (issue 18: this threw in alertCard and the counts
  // went wrong). One card, counts from the store, no page error.
  const V = await newPage('V');
  await V.goto(`${HTTP}/#/vehicle/${hot}`);
  await V.waitForFunction(() => document.querySelector('#st-conn-vehicle')?.dataset.state === 'open' && document.querySelector('#st-conn-alerts')?.dataset.state === 'open', null, { timeout: 15000 });
  await card(V).first().waitFor({ timeout: 10000 });
  await V.waitForFunction(() => document.querySelector('#vehicle-alerts li[data-event="raised"]'), null, { timeout: 10000 });
  // More copies of the same alert through both rooms: nothing may change.
  await publishFor(hot, 121, 600);
  for (const p of [A, B, V]) {
    const c = await panelState(p);
    assert.deepEqual(c, { count: 1, cards: 1, ids: 1, banner: 1, criticalOpen: 1, ackedWithButton: 0 }, `panel before ack: ${JSON.stringify(c)}`);
  }
  step('vehicle page with an active alert: one card, counts 1, banner 1, no error');
  await shot(V, 'vehicle-alert');
  await card(A).first().locator('button.ack').click();
  for (const p of [B, V, A]) await p.waitForFunction((id) => document.querySelector(`article.alert[data-alert-id*="${id}"]`)?.dataset.acknowledged === 'true', hot, { timeout: 10000 });
  for (const p of [A, B, V]) {
    const c = await panelState(p);
    assert.deepEqual(c, { count: 1, cards: 1, ids: 1, banner: 0, criticalOpen: 0, ackedWithButton: 0 }, `panel after ack: ${JSON.stringify(c)}`);
    assert.equal(await card(p).first().locator('button.ack').count(), 0, 'an acknowledged alert has no button');
  }
  assert.ok(await B.locator('#critical-banner').isHidden(), 'banner gone once acknowledged');
  // Another copy of the alert (the vehicle room's) after the ack must not bring the button back.
  await publishFor(hot, 122, 600);
  assert.equal((await panelState(V)).ackedWithButton, 0);
  const acker = await A.evaluate(() => window.telebridge.alerts.values().next().value?.data.acknowledged_by);
  assert.ok(acker, `acknowledged_by recorded (${acker})`);
  step(`acknowledge on page A appeared on pages B and V (by ${acker}); counts stayed right`);
  await V.close();
  pages.splice(pages.findIndex((x) => x.page === V), 1);
  await shot(B, 'alerts-acknowledged');
  await publishFor(hot, 85, 800);
  for (const p of [A, B]) await p.waitForFunction((id) => !document.querySelector(`article.alert[data-alert-id*="${id}"]`), hot, { timeout: 10000 });
  step('cooling down cleared the alert; it faded out on both pages');

  // 3. Vehicle view: setup, charts, track, alert history.
  const vid = Object.keys(personal)[0];
  const openedAt = await A.evaluate(() => Date.now());
  await A.goto(`${HTTP}/#/vehicle/${vid}`);
  // History backfill: the charts hold points the bridge routed before the page was opened
  // (frame ts older than opening), without waiting for live data to accumulate.
  await A.waitForFunction((t0) => {
    const f = document.querySelector('#vehicle-charts figure');
    return f && Number(f.dataset.points) >= 5 && Number(f.dataset.oldest) < t0 - 2000;
  }, openedAt, { timeout: 15000 }).catch(async () => {
    throw new Error(`no history in the charts: ${await A.evaluate(() => JSON.stringify({ ...document.querySelector('#vehicle-charts').dataset, points: document.querySelector('#vehicle-charts figure')?.dataset.points }))}`);
  });
  assert.equal(await A.locator('#vehicle-charts').getAttribute('data-history'), 'loaded');
  assert.ok(await A.locator('#vehicle-charts figure .u-axis').count() >= 2, 'charts have axes (time and value)');
  // Hover shows the value under the cursor in the legend.
  const plot = A.locator('#vehicle-charts figure .u-over').first();
  await plot.hover({ position: { x: 100, y: 40 } });
  await A.waitForFunction(() => /km\/h/.test(document.querySelector('#vehicle-charts figure .u-legend .u-series:nth-child(2) .u-value')?.textContent || ''), null, { timeout: 5000 });
  step(`vehicle view: charts backfilled from history (${await A.locator('#vehicle-charts figure').first().getAttribute('data-points')} points), hover value shown`);
  await A.waitForFunction(() => document.querySelectorAll('#vehicle-now dd').length > 3, null, { timeout: 10000 });
  await A.waitForFunction(() => [...document.querySelectorAll('#vehicle-setup dt')].some((d) => d.textContent === 'make'), null, { timeout: 10000 })
    .catch(() => { throw new Error('vehicle view: no setup_update received for the vehicle (keep_last of vehicle/<id>/setup)'); });
  await sleep(2500);
  assert.match(await A.locator('#vehicle-charts figure').first().locator('b').textContent(), /km\/h/);
  assert.match(await A.locator('#vehicle-pos').textContent(), /heading/);
  step(`vehicle view of ${vid}: setup, live values, charts, track`);
  await shot(A, 'vehicle');
  await A.goto(`${HTTP}/#/vehicle/${hot}`);
  await A.waitForFunction(() => /raised/.test(document.querySelector('#vehicle-alerts').textContent), null, { timeout: 5000 }).catch(() => {});
  const hist = await A.locator('#vehicle-alerts').textContent();
  assert.match(hist, /raised/, `alert history of ${hot}: ${hist}`);

  // Stale and unknown states: #/vehicle without an id keeps nothing of the previous vehicle;
  // an id the bridge has nothing for says "unknown", with empty charts and no position.
  await A.goto(`${HTTP}/#/vehicle/${vid}`);
  await A.waitForFunction(() => document.querySelector('#vehicle-state')?.dataset.state === 'live', null, { timeout: 15000 });
  await A.goto(`${HTTP}/#/vehicle`);
  await A.waitForFunction(() => document.querySelector('#vehicle-state')?.dataset.state === 'none', null, { timeout: 5000 });
  assert.ok(await A.locator('#vehicle-empty').isVisible(), 'empty-state text shown');
  assert.ok(await A.locator('#vehicle-view-body').isHidden(), 'no charts, setup or values of the previous vehicle');
  assert.equal(await A.locator('#vehicle-charts figure').count(), 0);
  assert.equal(await A.locator('#vehicle-pos').textContent(), '');
  assert.equal(await A.locator('#vehicle-title').textContent(), '');
  await shot(A, 'vehicle-none');
  await A.goto(`${HTTP}/#/vehicle/no-such-vehicle`);
  await A.waitForFunction(() => document.querySelector('#vehicle-state')?.dataset.state === 'unknown', null, { timeout: 30000 })
    .catch(async () => { throw new Error(`unknown vehicle state: ${await A.locator('#vehicle-state').textContent()}`); });
  assert.equal(await A.locator('#vehicle-pos').textContent(), '', 'no position of a previous vehicle');
  assert.deepEqual(await A.$$eval('#vehicle-charts figure', (fs) => fs.map((f) => f.dataset.points)), ['0', '0', '0', '0']);
  assert.ok(await A.locator('#vehicle-charts figure .chart-empty').first().isVisible(), 'charts show their empty state');
  assert.match(await A.locator('#vehicle-state').textContent(), /unknown.*no-such-vehicle/);
  step('vehicle view: no id shows an empty view; an unknown id says unknown with empty charts');
  await shot(A, 'vehicle-unknown');

  // 4. Race session: setup first, then live telemetry at 2 Hz.
  if (SESSION) {
    const S = await newPage('S');
    const order = [];
    await S.exposeFunction('tbOrder', (t) => order.push(t));
    await S.addInitScript(() => {
      const W = window.WebSocket;
      window.WebSocket = class extends W {
        constructor(...a) {
          super(...a);
          if (String(a[0]).includes('/ws/session/')) this.addEventListener('message', (e) => { try { const f = JSON.parse(e.data); if (f.type !== 'heartbeat') window.tbOrder(f.type); } catch {} });
        }
      };
    });
    // The session list shows the simulator's session (track, vehicle, start, live); the
    // operator opens it from there instead of pasting a UUID.
    await S.goto(`${HTTP}/#/session`);
    await S.waitForFunction((sid) => document.querySelector(`#session-list-body tr[data-session="${sid}"]`)?.dataset.state === 'live', SESSION, { timeout: 20000 })
      .catch(async () => { throw new Error(`session list: ${await S.locator('#session-list').textContent()}`); });
    const row = await S.$eval(`#session-list-body tr[data-session="${SESSION}"]`, (tr) => [...tr.cells].map((c) => c.textContent));
    assert.equal(row[0], SESSION);
    assert.ok(row[1] !== '–' && row[2] !== '–' && row[3] !== '–', `track, vehicle and start time listed: ${row}`);
    assert.equal(await S.locator('#session-state').getAttribute('data-state'), 'none');
    step(`session list: ${row.join(' | ')}`);
    await shot(S, 'sessions');
    await S.locator(`#session-list-body tr[data-session="${SESSION}"] a`).click();
    await S.waitForFunction(() => document.querySelector('#session-state')?.dataset.state === 'live', null, { timeout: 15000 })
      .catch(async () => { throw new Error(`session view never live: state "${await S.locator('#session-state').textContent()}", frames ${order}`); });
    // The rate is measured over the last 5 s: wait until the view has seen 5 s of it.
    await S.waitForFunction(() => { const r = parseFloat(document.querySelector('#session-rate').textContent.replace(/[()Hz ]/g, '')); return r >= 1.8 && r <= 2.6; }, null, { timeout: 20000 }).catch(() => {});
    const rate = parseFloat((await S.locator('#session-rate').textContent()).replace(/[()Hz ]/g, ''));
    const firstData = order.filter((t) => t !== 'welcome');
    step(`session view: frames ${firstData.slice(0, 4).join(',')}…, ${rate} Hz`);
    assert.equal(firstData[0], 'setup_update', 'setup first');
    assert.ok(rate >= 1.4 && rate <= 2.6, `about 2 Hz (${rate})`);
    await shot(S, 'session');
    // An unknown session id: not live, not the live badge; says unknown.
    await S.goto(`${HTTP}/#/session/00000000-0000-4000-8000-000000000000`);
    await S.waitForFunction(() => document.querySelector('#session-state')?.dataset.state === 'unknown', null, { timeout: 30000 })
      .catch(async () => { throw new Error(`unknown session state: ${await S.locator('#session-state').textContent()}`); });
    assert.ok(!(await S.locator('#session-state').getAttribute('class')).includes('live'), 'unknown is not shown like live');
    assert.equal(await S.locator('#session-now dd').count(), 0, 'no values of the previous session');
    step(`unknown session: "${await S.locator('#session-state').textContent()}"`);
    await shot(S, 'session-unknown');
  } else step('session view: skipped (no TB_SESSION)');

  // 5. Stopping the bridge shows reconnecting; restarting shows live data again.
  await A.goto(`${HTTP}/#/fleet`);
  await A.waitForFunction(() => document.querySelector('#st-conn-fleet')?.dataset.state === 'open', null, { timeout: 10000 });
  await control('stop-bridge');
  await A.waitForFunction(() => ['personal', 'fleet', 'alerts'].every((l) => document.querySelector(`#st-conn-${l}`)?.dataset.state === 'reconnecting'), null, { timeout: 10000 });
  await A.waitForFunction(() => document.querySelector('#alert-empty')?.dataset.state === 'unknown', null, { timeout: 10000 });
  step('bridge stopped: page shows reconnecting; the alerts panel says alerts are unknown, not "none"');
  await shot(A, 'reconnecting');
  await sleep(1500);
  await control('start-bridge');
  await A.waitForFunction(() => ['personal', 'fleet', 'alerts'].every((l) => document.querySelector(`#st-conn-${l}`)?.dataset.state === 'open'), null, { timeout: 30000 });
  const t0 = await readTable(A, 'fleet');
  await sleep(2000);
  const t1 = await readTable(A, 'fleet');
  const moving = Object.keys(t0).filter((id) => t1[id] && (t1[id].speed !== t0[id].speed || t1[id].temp !== t0[id].temp));
  assert.ok(moving.length > 0, 'live data again after the restart');
  assert.ok(Object.values(t1).some((r) => /^[0-2]s$/.test(r.seen)), 'fresh last-seen ages');
  step('bridge restarted: page reconnected and shows live data');
  await shot(A, 'reconnected');

  // 6. Phone width.
  const P = await newPage('phone', { width: 390, height: 844 });
  const longId = 'demo-truck-0042-berlin-spandau';   // the "demo-…" cut
  mqttPub(`vehicle/${longId}/telemetry`, hotTelemetry(longId, 80));
  await P.goto(`${HTTP}/`);
  await P.waitForFunction(() => document.querySelectorAll('table.vehicles tbody tr').length > 0, null, { timeout: 10000 });
  mqttPub(`vehicle/${longId}/telemetry`, hotTelemetry(longId, 80));
  await P.waitForFunction((id) => document.querySelector(`tr[data-vehicle="${id}"]`), longId, { timeout: 10000 });
  const overflow = await P.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 2, `no horizontal page scroll at phone width (overflow ${overflow}px)`);
  // Ids readable: every id cell shows its whole id (it wraps, it is not cut).
  const cut = await P.$$eval('table.vehicles td[data-col="id"]', (tds) => tds.filter((td) => td.scrollWidth > td.clientWidth + 1 || td.querySelector('a').getBoundingClientRect().right > td.getBoundingClientRect().right + 1).map((td) => td.textContent));
  assert.deepEqual(cut, [], `ids cut at phone width: ${cut}`);
  await P.screenshot({ path: path.join(ART, 'fleet-phone.png'), fullPage: true });
  step('phone width renders without horizontal scrolling');

  // 6b. Login. The bridge under test has no access control yet, so /ws/fleet is played by a
  //     stand-in (playwright's routeWebSocket) that follows the agreed contract: no token ->
  //     error unauthorized + close 4401; token "wrong" -> forbidden + 4403; "good" -> welcome.
  const L = await newPage('login');
  const offered = [];
  await L.routeWebSocket(/\/ws\/fleet$/, (ws) => {
    const prot = ws.protocols();
    offered.push(prot.join(','));
    const refuse = (code, close, message) => { ws.send(JSON.stringify({ type: 'error', ts: Date.now(), code, message })); ws.close({ code: close, reason: code }); };
    if (prot[0] !== 'bearer' || !prot[1]) refuse('unauthorized', 4401, 'a token is required');
    else if (prot[1] !== 'good') refuse('forbidden', 4403, 'fleet needs role dispatcher');
    else ws.send(JSON.stringify({ type: 'welcome', ts: Date.now(), data: { epoch: 'x', heartbeat_interval_ms: 0, broker_connected: true } }));
  });
  await L.goto(`${HTTP}/#/fleet`);
  await L.locator('#login').waitFor({ timeout: 15000 });
  await L.waitForFunction(() => /requires an access token.*4401.*a token is required/.test(document.querySelector('#login-msg').textContent), null, { timeout: 10000 });
  assert.equal(await connState(L, 'fleet'), 'closed', 'a refused connection stops retrying');
  await shot(L, 'login');
  await L.fill('#login-token', 'wrong');
  await L.locator('#login-form button[type=submit]').click();
  await L.waitForFunction(() => /not permit.*4403.*dispatcher/.test(document.querySelector('#login-msg').textContent), null, { timeout: 10000 });
  assert.equal(await L.evaluate(() => sessionStorage.getItem('tb-token')), 'wrong');
  await L.fill('#login-token', 'good');
  await L.locator('#login-form button[type=submit]').click();
  await L.waitForFunction(() => document.querySelector('#st-conn-fleet')?.dataset.state === 'open', null, { timeout: 10000 });
  await L.waitForFunction(() => document.querySelector('#login').hidden, null, { timeout: 10000 });
  assert.deepEqual(offered.slice(0, 3), ['', 'bearer,wrong', 'bearer,good'], `subprotocols offered: ${offered}`);
  step('login: 4401 asks for a token, 4403 says not permitted, a good token connects; kept in sessionStorage');
  await L.close();
  pages.splice(pages.findIndex((x) => x.page === L), 1);

  // 7. Load: 1,000 more vehicles at 2 Hz; the page stays responsive (figures printed).
  if (LOAD) {
    for (const p of pages.filter((x) => x.page !== A)) await p.page.close();   // one page measured, not four sharing the CPU
    await control('start-load');
    await A.waitForFunction((n) => window.telebridge.pools.personal.vehicles.size + window.telebridge.pools.fleet.vehicles.size >= n, N + LOAD, { timeout: 30000 });
    const stats = await A.evaluate(() => new Promise((resolve) => {
      const gaps = []; let last = performance.now(); const end = last + 5000;
      const tick = (t) => { gaps.push(t - last); last = t; if (t < end) requestAnimationFrame(tick); else resolve(gaps); };
      requestAnimationFrame(tick);
    }));
    stats.sort((a, b) => a - b);
    const p50 = stats[Math.floor(stats.length / 2)], p95 = stats[Math.floor(stats.length * 0.95)], max = stats.at(-1);
    const t = Date.now();
    await A.fill('#fleet-filter', 'load-0001');
    await A.waitForFunction(() => document.querySelectorAll('#table-personal tbody tr, #table-fleet tbody tr').length <= 20, null, { timeout: 30000 });
    const filterMs = Date.now() - t;
    step(`load ${LOAD} vehicles at 2 Hz: ${stats.length} frames in 5 s, frame interval p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${max.toFixed(1)} ms; filter applied in ${filterMs} ms; rate ${await A.locator('#st-rate').textContent()} msg/s`);
    // The figures above are printed, not asserted: on a shared 2-core machine they follow the
    // neighbours' load (p50 17 ms alone, 150-250 ms at load average 12-15, the same for the
    // dashboard before issue 18). Asserted: the page is not frozen and the filter applies.
    assert.ok(stats.length >= 5, `page keeps painting under load (${stats.length} frames in 5 s)`);
    await A.fill('#fleet-filter', '');
    await shot(A, 'fleet-load');
  }
  assert.deepEqual(pageErrors, [], 'no JavaScript errors on any page');
  step('all steps passed');
} catch (e) {
  failed = e;
  console.log(`e2e: FAILED: ${e.stack || e}`);
  for (const { name, page } of pages) await page.screenshot({ path: path.join(ART, `failure-${name}.png`) }).catch(() => {});
} finally {
  await browser.close();
  stdinLines.close();
}
process.exit(failed ? 1 : 0);
