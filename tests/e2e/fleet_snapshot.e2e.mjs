// Issue 15, "a newly opened fleet dashboard shows one vehicle": the dashboard's fleet page,
// opened in headless Chromium AFTER every simulated vehicle has reported exactly once, lists
// all of them (both pools) from the rooms' per-vehicle snapshots alone: nothing is published
// while the page is open (tests/integration/test_dashboard_fleet.py checks the bridge's
// received counter before and after).
//
// Prints how long the page took to show all vehicles (from the start of navigation). The
// figure is printed, not asserted (no timed assertions in this project); it goes into
// docs/benchmarks.md. The wait itself has a generous timeout.
//
// Environment: TB_HTTP (http://127.0.0.1:port of the bridge), TB_ARTIFACTS (screenshot
// directory), TB_FLEET_IDS and TB_PERSONAL_IDS (comma-separated vehicle ids that reported in
// each pool), TB_CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const HTTP = process.env.TB_HTTP;
const ART = process.env.TB_ARTIFACTS || '/tmp/tb-e2e-artifacts';
const ids = (v) => (v || '').split(',').filter(Boolean).sort();
const want = { fleet: ids(process.env.TB_FLEET_IDS), personal: ids(process.env.TB_PERSONAL_IDS) };
const total = want.fleet.length + want.personal.length;
if (!HTTP || !total) { console.error('TB_HTTP, TB_FLEET_IDS and TB_PERSONAL_IDS are required (run via tests/integration/test_dashboard_fleet.py)'); process.exit(2); }
fs.mkdirSync(ART, { recursive: true });
const step = (msg) => console.log(`e2e-fleet: ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.TB_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
let failed = null;
const errors = [];
let page = null;
try {
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(`${HTTP}/#/fleet`);
  const count = () => page.evaluate(() => {
    const p = window.telebridge?.pools;
    return p ? p.personal.vehicles.size + p.fleet.vehicles.size : 0;
  });
  // Generous: on a loaded shared machine Chromium alone can take seconds to start painting.
  await page.waitForFunction((n) => {
    const p = window.telebridge?.pools;
    return p && p.personal.vehicles.size + p.fleet.vehicles.size >= n;
  }, total, { timeout: 30000 }).catch(async () => { throw new Error(`page lists ${await count()} of ${total} vehicles after 30 s`); });
  const wallMs = Date.now() - t0;
  const navMs = await page.evaluate(() => performance.now());
  step(`all ${total} vehicles listed ${wallMs} ms after navigation started (page clock ${navMs.toFixed(0)} ms), no publish in between`);

  // Each pool lists exactly its own vehicles: none missing, none from the other pool.
  const got = await page.evaluate(() => Object.fromEntries(['fleet', 'personal'].map((n) =>
    [n, [...window.telebridge.pools[n].vehicles.keys()].sort()])));
  assert.deepEqual(got.fleet, want.fleet, 'fleet pool lists exactly the fleet vehicles');
  assert.deepEqual(got.personal, want.personal, 'personal pool lists exactly the personal vehicles');
  // What the user sees: the count labels and rendered rows agree with the pools.
  await page.waitForFunction((w) => ['fleet', 'personal'].every((n) =>
    document.querySelector(`#pool-${n} [data-count]`)?.dataset.count === String(w[n].length) &&
    document.querySelectorAll(`#table-${n} tbody tr`).length === w[n].length), want, { timeout: 10000 })
    .catch(async () => { throw new Error(`rendered: ${await page.evaluate(() => ['fleet', 'personal'].map((n) => `${n} ${document.querySelector(`#pool-${n} [data-count]`)?.dataset.count} / ${document.querySelectorAll(`#table-${n} tbody tr`).length} rows`).join(', '))}`); });
  const row = await page.$$eval(`#table-fleet tr[data-vehicle="${want.fleet[0]}"] td`, (tds) => Object.fromEntries(tds.map((td) => [td.dataset.col, td.textContent.trim()])));
  assert.equal(parseFloat(row.speed), 42, `values of ${want.fleet[0]} shown: ${JSON.stringify(row)}`);
  step(`fleet ${got.fleet.length} + personal ${got.personal.length} rows rendered, values shown`);
  await page.screenshot({ path: path.join(ART, 'fleet-snapshot.png') });
  assert.deepEqual(errors, [], 'no JavaScript errors');
  step('passed');
} catch (e) {
  failed = e;
  console.log(`e2e-fleet: FAILED: ${e.stack || e}`);
  if (page) await page.screenshot({ path: path.join(ART, 'failure-fleet-snapshot.png') }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
