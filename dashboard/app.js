// app.js — the Telebridge built-in dashboard.
//
// Why: operators need to see what the bridge carries without writing a page of their own,
// and it doubles as the reference user of telebridge-client.js.
//
// How it works: each view talks to the bridge through its own endpoint, exactly as the
// replaced systems did — /ws/personal and /ws/fleet feed two independent tables (no
// crosstalk: each table only shows what its endpoint sends), /ws/alerts/<user> feeds the
// alerts panel, /ws/telemetry/<id> the vehicle view (opened only while it is shown) and
// /ws/session/<sid> the race-session view. Message handlers only update plain JS state and
// mark it dirty; one requestAnimationFrame callback per frame writes the DOM (only changed
// cells), and a 1 s tick re-sorts, re-filters and refreshes ages. That keeps the page
// responsive with 1,000 vehicles at 2 Hz. Views are chosen by the URL hash:
// #/fleet, #/vehicle/<id>, #/session/<sid>.

import { TelebridgeClient } from './telebridge-client.js';
import { LineChart, Track } from './charts.js';

const OFFLINE_AFTER_MS = 10000;   // no telemetry for this long: shown offline
const MAX_ROWS = 500;             // rows rendered per pool; the filter narrows the rest
const SEVERITIES = ['critical', 'warning', 'info'];

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'scope') e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...kids);
  return e;
};
const num = (v, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '–');
const get = (o, path) => path.split('.').reduce((a, k) => (a == null ? undefined : a[k]), o);

function ageText(ms) {
  if (ms == null) return '–';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h`;
}

const userId = (() => {
  try {
    let u = localStorage.getItem('tb-user');
    if (!u) { u = 'dash-' + Math.random().toString(36).slice(2, 8); localStorage.setItem('tb-user', u); }
    return u;
  } catch { return 'dash-' + Math.random().toString(36).slice(2, 8); }
})();

// ---- access token (endpoints with `auth`) --------------------------------------------------
//
// Without a token the page connects as before. When the bridge refuses a connection (close
// 4401: no or bad token; 4403: valid but not permitted) the client stops retrying and the
// login box says why; a token entered there is kept in sessionStorage (this tab only, gone
// when it closes) and every connection reconnects with it.

const auth = {
  token: (() => { try { return sessionStorage.getItem('tb-token') || null; } catch { return null; } })(),
  refusals: new Map(),   // label -> {close, code, message}
};

function newClient(path) { return new TelebridgeClient(path, { token: auth.token }); }

// The name the page uses in per-user paths (/ws/alerts/<user>, /ws/control/<vehicle>/<user>):
// with a token, its subject (endpoints with `require: {user_id: sub}` admit only that); else
// the page's own random id. Read from the token's payload for the path only: the bridge
// verifies the token, the page trusts nothing in it.
function pageUser() {
  const parts = (auth.token || '').split('.');
  if (parts.length === 3) {
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const sub = JSON.parse(atob(b64 + '='.repeat((4 - b64.length % 4) % 4))).sub;
      if (typeof sub === 'string' && sub) return sub;
    } catch { /* not a JWT we can read (an API key): the page id */ }
  }
  return userId;
}

function renderLogin() {
  const box = $('login');
  const refused = [...auth.refusals.entries()];
  box.hidden = refused.length === 0 && !box.dataset.open;
  if (!refused.length) { $('login-msg').textContent = auth.token ? 'A token is set for this tab.' : 'No token set.'; return; }
  const [label, r] = refused[0];
  const what = r.close === 4403
    ? `The bridge accepted the token but does not permit it here (${label}: 4403 ${r.code}).`
    : auth.token ? `The bridge refused the token (${label}: 4401 ${r.code}): it is invalid or expired.`
      : `This bridge requires an access token (${label}: 4401 ${r.code}).`;
  $('login-msg').textContent = `${what}${r.message ? ' Bridge says: ' + r.message : ''} ${refused.length > 1 ? `(${refused.length} connections refused)` : ''}`.trim();
  box.dataset.refused = String(r.close);
}

function useToken(token) {
  auth.token = token || null;
  try { if (auth.token) sessionStorage.setItem('tb-token', auth.token); else sessionStorage.removeItem('tb-token'); } catch { /* private mode */ }
  auth.refusals.clear();
  delete $('login').dataset.open;
  delete $('login').dataset.refused;
  for (const c of clients.values()) { c.setToken(auth.token); c.close(); c.connect(); }   // a fresh handshake with the new token
  renderLogin();
}

// ---- render scheduling ------------------------------------------------------------------

const renderTasks = new Set();
let rafPending = false;
function schedule(task) {
  renderTasks.add(task);
  if (!rafPending) {
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      const tasks = [...renderTasks];
      renderTasks.clear();
      for (const t of tasks) t();
    });
  }
}

// ---- connections + status bar -----------------------------------------------------------

const clients = new Map();   // label -> TelebridgeClient
const broker = { state: 'unknown' };

function track(label, client) {
  clients.set(label, client);
  client.on('state', () => schedule(renderStatus));
  client.on('refused', (r) => { auth.refusals.set(label, r); renderLogin(); });
  client.on('open', () => { if (auth.refusals.delete(label)) renderLogin(); });
  client.on('auth_expiring', (f) => {
    // The token runs out soon: ask for a new one (entering it reconnects with it).
    const at = f.data && typeof f.data.expires_at === 'number' ? new Date(f.data.expires_at).toLocaleTimeString() : 'soon';
    $('login').dataset.open = '1';
    renderLogin();
    if (!auth.refusals.size) $('login-msg').textContent = `The access token expires at ${at}: enter a new one to stay connected.`;
  });
  client.on('welcome', (f) => { broker.state = f.data.broker_connected === false ? 'disconnected' : 'connected'; schedule(renderStatus); });
  client.on('heartbeat', (f) => { if (f.data && f.data.broker) broker.state = f.data.broker; broker.hbAt = Date.now(); schedule(renderStatus); });
  return client;
}

function untrack(label) {
  const c = clients.get(label);
  if (c) c.close();
  clients.delete(label);
  if (auth.refusals.delete(label)) renderLogin();
  schedule(renderStatus);
}

let lastCount = 0, rate = 0;
let alertsLinkShown = null;
function renderStatus() {
  // The alerts panel's empty text depends on the alerts connection: redraw it on a change.
  if (alertsClient && alertsClient.state !== alertsLinkShown) { alertsLinkShown = alertsClient.state; schedule(renderAlerts); }
  const box = $('st-conns');
  box.textContent = '';
  for (const [label, c] of clients) {
    box.append(el('span', { class: 'conn' }, `${label} `,
      el('b', { class: `pill ${c.state}`, id: `st-conn-${label}`, 'data-state': c.state, text: c.state })));
  }
  const anyOpen = [...clients.values()].some((c) => c.state === 'open');
  const b = anyOpen ? broker.state : 'unknown';
  const bEl = $('st-broker');
  bEl.textContent = b;
  bEl.className = `pill ${b}`;
  bEl.dataset.state = b;
  $('st-rate').textContent = rate.toFixed(0);
  const lags = [...clients.values()].map((c) => c.stats.lagMs).filter((x) => x != null);
  const rtts = [...clients.values()].map((c) => c.stats.rttMs).filter((x) => x != null);
  const lag = lags.length ? Math.min(...lags) : null;
  $('st-lat').textContent = lag == null ? '–' : `${lag.toFixed(0)} ms` + (rtts.length ? ` (rtt ${Math.min(...rtts).toFixed(0)} ms)` : '');
  $('st-hb').textContent = broker.hbAt ? `heartbeat ${ageText(Date.now() - broker.hbAt)} ago` : '';
}

// ---- fleet view ---------------------------------------------------------------------------

const COLUMNS = [
  { key: 'id', label: 'Vehicle', sort: (r) => r.id },
  { key: 'online', label: 'State', sort: (r) => (isOnline(r) ? 1 : 0) },
  { key: 'speed', label: 'Speed', title: 'speed, km/h', sort: (r) => r.speed ?? -1 },
  { key: 'temp', label: 'Temp', title: 'engine temperature, °C', sort: (r) => r.temp ?? -1 },
  { key: 'battery', label: 'Batt', title: 'battery level, %', sort: (r) => r.battery ?? -1 },
  { key: 'fuel', label: 'Fuel', title: 'fuel level, %', sort: (r) => r.fuel ?? -1, opt: true },
  { key: 'seen', label: 'Seen', title: 'time since the last telemetry', sort: (r) => -(r.seenAt || 0), opt: true },
  { key: 'alerts', label: 'Alerts', title: 'active alerts', sort: (r) => alertCount(r.id) },
];

const OPTIONAL = new Set(COLUMNS.filter((c) => c.opt).map((c) => c.key));
const filter = { text: '', show: 'all' };

function isOnline(r) {
  if (r.status === 'offline') return false;
  if (activeAlertOf(r.id, 'vehicle_offline')) return false;
  return r.seenAt && Date.now() - r.seenAt < OFFLINE_AFTER_MS;
}

class Pool {
  constructor(name, root) {
    this.name = name;
    this.vehicles = new Map();
    this.dirty = new Set();
    this.sortKey = 'id';
    this.sortDir = 1;
    this.order = [];
    this.rows = new Map();  // id -> {tr, cells}
    const head = el('div', { class: 'pool-head' },
      el('h3', { text: name === 'personal' ? 'Personal mode' : 'Fleet mode' }),
      el('span', { class: 'muted small' }, `/ws/${name} · `, this.countEl = el('span', { text: '0 vehicles', 'data-count': '0' })));
    this.countEl.id = `count-${name}`;
    const thead = el('tr');
    this.ths = COLUMNS.map((c) => {
      const btn = el('button', { type: 'button', text: c.label, title: `Sort by ${c.title || c.label}` });
      btn.addEventListener('click', () => this.sortBy(c.key));
      const th = el('th', { scope: 'col', class: c.opt ? 'opt' : '' }, btn);
      thead.append(th);
      return th;
    });
    this.tbody = el('tbody');
    this.table = el('table', { class: 'vehicles', id: `table-${name}`, 'aria-label': `${name} vehicles` }, el('thead', {}, thead), this.tbody);
    this.more = el('p', { class: 'more muted small' });
    this.empty = el('p', { class: 'more muted', text: `waiting for ${name}-mode telemetry…` });
    this.body = el('div', { class: 'pool-body' }, this.table, this.empty, this.more);
    root.append(head, this.body);
    // Only rows on screen are written to; the others are marked stale and filled when they
    // scroll into view. With 1,000 vehicles that is a few dozen rows per frame, not 1,000.
    this.visible = new Set();
    this.stale = new Set();
    this.io = typeof IntersectionObserver === 'function' ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        const id = e.target.dataset.vehicle;
        if (e.isIntersecting) { this.visible.add(id); if (this.stale.has(id)) { this.stale.delete(id); this.dirty.add(id); schedule(this.renderDirty); } }
        else this.visible.delete(id);
      }
    }, { root: this.body, rootMargin: '200px 0px' }) : null;
    this.updateSortHeaders();
    this.client = track(name, newClient(`/ws/${name}`));
    this.client.on('telemetry_update', (f) => this.onTelemetry(f));
    this.client.connect();
  }

  onTelemetry(f) {
    const d = f.data;
    if (!d || typeof d !== 'object') return;
    const id = d.vehicle_id || (f.topic || '').split('/')[1];
    if (!id) return;
    let r = this.vehicles.get(id);
    if (!r) {
      r = { id };
      this.vehicles.set(id, r);
      knownVehicles.add(id);
      this.needsOrder = true;
    }
    r.mode = d.simulation_mode;
    r.speed = d.speed;
    r.temp = get(d, 'engine_metrics.temperature');
    r.battery = get(d, 'battery_metrics.level');
    r.fuel = get(d, 'fuel_metrics.level');
    r.seenAt = Date.now();
    r.ts = d.ts_ms;
    this.dirty.add(id);
    schedule(this.renderDirty);
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else { this.sortKey = key; this.sortDir = 1; }
    this.updateSortHeaders();
    this.reorder();
  }

  updateSortHeaders() {
    COLUMNS.forEach((c, i) => {
      if (c.key === this.sortKey) this.ths[i].setAttribute('aria-sort', this.sortDir > 0 ? 'ascending' : 'descending');
      else this.ths[i].removeAttribute('aria-sort');
    });
  }

  matches(r) {
    if (filter.text && !r.id.toLowerCase().includes(filter.text)) return false;
    switch (filter.show) {
      case 'online': return isOnline(r);
      case 'offline': return !isOnline(r);
      case 'alerts': return alertCount(r.id) > 0;
      default: return true;
    }
  }

  /** Filter + sort + (re)build the row order; called on the 1 s tick and on user input. */
  reorder() {
    const col = COLUMNS.find((c) => c.key === this.sortKey);
    const list = [...this.vehicles.values()].filter((r) => this.matches(r));
    list.sort((a, b) => {
      const x = col.sort(a), y = col.sort(b);
      const c = x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      return c * this.sortDir;
    });
    const shown = list.slice(0, MAX_ROWS);
    const ids = shown.map((r) => r.id);
    const same = ids.length === this.order.length && ids.every((id, i) => id === this.order[i]);
    if (!same) {
      const frag = document.createDocumentFragment();
      for (const r of shown) frag.append(this.row(r).tr);
      this.tbody.textContent = '';
      this.tbody.append(frag);
      this.order = ids;
    }
    for (const r of shown) this.fillIfVisible(r.id);
    this.dirty.clear();
    this.needsOrder = false;
    this.countEl.textContent = `${this.vehicles.size} vehicle${this.vehicles.size === 1 ? '' : 's'}`;
    this.countEl.dataset.count = String(this.vehicles.size);
    this.empty.hidden = this.vehicles.size > 0;
    const st = this.client ? this.client.state : 'connecting';
    this.empty.textContent = st === 'open' ? `waiting for ${this.name}-mode telemetry…` : `not connected to /ws/${this.name} (${st}): vehicles unknown`;
    this.empty.dataset.state = st === 'open' ? 'waiting' : 'unknown';
    this.more.textContent = list.length > MAX_ROWS ? `showing ${MAX_ROWS} of ${list.length}; use the filter to narrow` :
      (list.length < this.vehicles.size ? `${this.vehicles.size - list.length} hidden by the filter` : '');
  }

  renderDirty = () => {
    if (this.needsOrder) { this.reorder(); return; }
    for (const id of this.dirty) this.fillIfVisible(id);
    this.dirty.clear();
  };

  fillIfVisible(id) {
    const row = this.rows.get(id);
    if (!row || !row.tr.isConnected) return;
    if (this.io && !this.visible.has(id) && row.filled) { this.stale.add(id); return; }
    row.filled = true;
    this.fill(this.vehicles.get(id));
  }

  row(r) {
    let row = this.rows.get(r.id);
    if (row) return row;
    const tr = el('tr', { 'data-vehicle': r.id });
    const cells = {};
    for (const c of COLUMNS) {
      const td = el('td', { 'data-col': c.key, class: c.opt ? 'opt' : '' });
      if (c.key === 'id') {
        td.append(el('a', { href: `#/vehicle/${encodeURIComponent(r.id)}`, text: r.id }));
      }
      cells[c.key] = td;
      tr.append(td);
    }
    row = { tr, cells, last: {}, filled: false };
    this.rows.set(r.id, row);
    if (this.io) this.io.observe(tr);
    return row;
  }

  fill(r) {
    const row = this.row(r);
    const online = isOnline(r);
    const n = alertCount(r.id);
    const set = (key, text, cls) => {
      if (row.last[key] === text && row.last[key + '.c'] === cls) return;
      row.last[key] = text;
      row.last[key + '.c'] = cls;
      const td = row.cells[key];
      if (key === 'online') {
        td.textContent = '';
        td.append(el('span', { class: `dot ${online ? 'on' : ''}`, 'aria-hidden': 'true' }), text);
      } else if (key === 'alerts') {
        td.textContent = '';
        td.append(el('span', { class: `badge ${n ? '' : 'zero'}`, text }));
      } else td.textContent = text;
      td.className = (cls || '') + (OPTIONAL.has(key) ? ' opt' : '');
    };
    set('online', online ? 'online' : 'offline');
    set('speed', num(r.speed));
    set('temp', num(r.temp), r.temp > 110 ? 'hot' : '');
    set('battery', num(r.battery), r.battery < 15 ? 'low' : '');
    set('fuel', num(r.fuel), r.fuel < 10 ? 'low' : '');
    set('seen', r.seenAt ? ageText(Date.now() - r.seenAt) : '–');
    set('alerts', String(n));
    row.tr.classList.toggle('offline', !online);
  }
}

const knownVehicles = new Set();
const pools = {};

function renderFleetSummary() {
  let total = 0, online = 0;
  for (const p of Object.values(pools)) {
    for (const r of p.vehicles.values()) { total++; if (isOnline(r)) online++; }
  }
  $('fleet-summary').textContent = `${online} of ${total} online`;
  const dl = $('vehicle-ids');
  if (dl.childElementCount !== knownVehicles.size && knownVehicles.size <= 2000) {
    dl.textContent = '';
    for (const id of [...knownVehicles].sort()) dl.append(el('option', { value: id }));
  }
}

// ---- alerts -------------------------------------------------------------------------------
//
// One store, keyed by alert id. The same alert reaches the page through several rooms (the
// alerts room and the vehicle's room both carry it), in any order and more than once; every
// frame is merged into the store entry, so applying a frame twice changes nothing. Counts,
// the banner and the per-vehicle numbers are computed from the store. Cards are DOM only:
// kept in their own map, built once per alert id and updated in place.

const alerts = new Map();   // id -> {data, fading}
const cards = new Map();    // id -> {el, msg, who, when, btn, ackedLabel}
const alertHistory = new Map(); // `${id}/${event}` -> {at, event, data}: bridge times, once each
let alertsClient = null;

function alertKey(a) { return a.key ?? a.vehicle_id ?? a.vehicle ?? ''; }
function activeAlerts() { return [...alerts.values()].filter((a) => !a.fading); }
function alertCount(vehicleId) {
  let n = 0;
  for (const a of alerts.values()) if (!a.fading && alertKey(a.data) === vehicleId) n++;
  return n;
}
function activeAlertOf(vehicleId, rule) {
  for (const a of alerts.values()) if (!a.fading && alertKey(a.data) === vehicleId && (a.data.rule || a.data.type) === rule) return true;
  return false;
}
/** What the panel shows, derived from the store only. */
function alertCounts() {
  let active = 0, critOpen = 0;
  for (const a of alerts.values()) {
    if (a.fading) continue;
    active++;
    if (a.data.severity === 'critical' && !a.data.acknowledged) critOpen++;
  }
  return { active, critOpen };
}

function alertIdOf(f) {
  const id = (f.data && (f.data.id ?? f.data.alert_id)) ?? f.alert_id ?? f.id;
  return id == null ? null : String(id);
}

/** Records one event of an alert in the history, at the time the bridge says it happened. */
function noteHistory(id, event, data, at) {
  const k = `${id}/${event}/${data.raised_at ?? ''}`;
  if (alertHistory.has(k)) return;
  alertHistory.set(k, { at: typeof at === 'number' ? at : null, event, data });
}

/** Merges a frame into the store entry of its alert; returns the entry. An acknowledgement
 *  is never undone by an older copy of the alert that still says acknowledged: false. */
function mergeAlert(id, d, extra = {}) {
  const prev = alerts.get(id);
  const data = { ...(prev && prev.data), ...d, ...extra, id };
  if (prev && prev.data.acknowledged && prev.data.raised_at === data.raised_at) {
    data.acknowledged = true;
    data.acknowledged_by = data.acknowledged_by ?? prev.data.acknowledged_by;
    data.acknowledged_at = data.acknowledged_at ?? prev.data.acknowledged_at;
  }
  const entry = { data, fading: false };
  alerts.set(id, entry);
  return { entry, prev };
}

function onAlert(f) {
  const d = f.data;
  if (!d || typeof d !== 'object' || d.id == null) return;
  if (d.state === 'cleared') { onAlertCleared(f); return; }
  const id = String(d.id);
  const { entry, prev } = mergeAlert(id, d);
  const isNew = !prev || prev.fading;
  noteHistory(id, 'raised', entry.data, entry.data.raised_at);
  if (entry.data.acknowledged) noteHistory(id, 'acknowledged', entry.data, entry.data.acknowledged_at);
  if (isNew && entry.data.severity === 'critical' && !entry.data.acknowledged) cue();
  alertsChanged();
}

function onAlertCleared(f) {
  const id = alertIdOf(f);
  if (id == null) return;
  const a = alerts.get(id);
  const data = { ...(a && a.data), ...((f.data && typeof f.data === 'object') ? f.data : {}), state: 'cleared' };
  noteHistory(id, 'cleared', data, data.cleared_at ?? f.ts);
  if (!a || a.fading) return;
  a.fading = true;
  a.data = data;
  alertsChanged();
  // Let the CSS transition run, then drop it.
  setTimeout(() => { if (alerts.get(id) === a && a.fading) { alerts.delete(id); alertsChanged(); } }, 1600);
}

function onAlertAcknowledged(f) {
  const id = alertIdOf(f);
  if (id == null) return;
  const a = alerts.get(id);
  const d = (f.data && typeof f.data === 'object') ? f.data : {};
  const data = { ...(a && a.data), ...d, acknowledged: true };
  noteHistory(id, 'acknowledged', data, d.acknowledged_at ?? f.ts);
  if (!a) return;
  a.data = data;
  alertsChanged();
}

function alertsChanged() {
  schedule(renderAlerts);
  for (const p of Object.values(pools)) { for (const r of p.vehicles.values()) p.dirty.add(r.id); schedule(p.renderDirty); }
  if (vehicleView) schedule(vehicleView.renderAlerts);
}

const groups = {};
function renderAlerts() {
  const list = $('alert-list');
  if (!groups.critical) {
    for (const s of SEVERITIES) {
      groups[s] = { box: el('section', { class: `sev-group ${s}`, 'aria-label': `${s} alerts` }, el('h3', { text: s })), items: null };
      groups[s].items = el('div');
      groups[s].box.append(groups[s].items);
      list.append(groups[s].box);
    }
  }
  const bySev = { critical: [], warning: [], info: [] };
  for (const [id, a] of alerts) (bySev[a.data.severity] || bySev.info).push([id, a]);
  for (const s of SEVERITIES) {
    const items = bySev[s].sort(([xi, x], [yi, y]) => (y.data.raised_at ?? 0) - (x.data.raised_at ?? 0) || xi.localeCompare(yi));
    for (const [id, a] of items) groups[s].items.append(alertCard(id, a));
    groups[s].box.hidden = items.length === 0;
  }
  // Drop cards whose alert left the store.
  for (const [id, c] of cards) if (!alerts.has(id)) { c.el.remove(); cards.delete(id); }
  const { active, critOpen } = alertCounts();
  $('alert-count').textContent = String(active);
  $('alert-count').dataset.count = String(active);
  $('alert-empty').hidden = alerts.size > 0;
  const ast = alertsClient ? alertsClient.state : 'connecting';
  $('alert-empty').textContent = ast === 'open' ? 'No active alerts.' : `Alerts unknown: not connected (${ast}).`;
  $('alert-empty').dataset.state = ast === 'open' ? 'none' : 'unknown';
  const banner = $('critical-banner');
  banner.hidden = critOpen === 0;
  banner.dataset.count = String(critOpen);
  banner.textContent = critOpen ? `${critOpen} critical alert${critOpen > 1 ? 's' : ''} unacknowledged` : '';
}

function alertCard(id, a) {
  const d = a.data;
  let c = cards.get(id);
  if (!c) {
    c = { el: el('article', { class: 'alert', 'data-alert-id': id }) };
    c.msg = el('div', { class: 'msg' });
    c.who = el('a');
    c.when = el('time');
    c.btn = el('button', { type: 'button', class: 'ack', text: 'Acknowledge' });
    c.btn.addEventListener('click', () => acknowledge(id, c));
    c.ackedLabel = el('span', { class: 'acked-label' });
    c.el.append(c.msg, el('div', { class: 'meta' }, c.who, c.when, c.btn, c.ackedLabel));
    cards.set(id, c);
  }
  const key = alertKey(d);
  c.el.className = `alert ${d.severity || 'info'}${d.acknowledged ? ' acked' : ''}${a.fading ? ' cleared' : ''}`;
  c.el.dataset.severity = d.severity || 'info';
  c.el.dataset.acknowledged = d.acknowledged ? 'true' : 'false';
  c.el.dataset.state = a.fading ? 'cleared' : (d.state || 'active');
  c.msg.textContent = d.message || d.rule || d.type || 'alert';
  c.who.textContent = key;
  c.who.href = `#/vehicle/${encodeURIComponent(key)}`;
  const t = typeof d.raised_at === 'number' ? new Date(d.raised_at) : null;
  c.when.textContent = t ? `raised ${t.toLocaleTimeString()}` : '';
  if (t) c.when.dateTime = t.toISOString();
  // An acknowledged (or cleared) alert has no button at all, not a hidden one.
  if (d.acknowledged || a.fading) c.btn.remove();
  else if (!c.btn.isConnected) c.ackedLabel.before(c.btn);
  c.btn.setAttribute('aria-label', `Acknowledge: ${c.msg.textContent}`);
  c.ackedLabel.hidden = !d.acknowledged;
  c.ackedLabel.textContent = d.acknowledged ? `✓ acknowledged${d.acknowledged_by ? ' by ' + d.acknowledged_by : ''}` : '';
  return c.el;
}

async function acknowledge(id, c) {
  c.btn.disabled = true;
  try {
    // With a token the bridge records the token's subject; without one, `by` names this
    // page's user, which the alerts endpoint checks against its {user_id} identity.
    await alertsClient.ackAlert(id, auth.token ? {} : { by: userId });
  } catch (e) {
    if (e.code !== 'timeout') {   // replies are optional; the broadcast is what counts
      c.btn.title = `could not acknowledge: ${e.message}`;
      c.btn.disabled = false;
    }
  }
}

let audio = null;
function cue() {
  // Visual cue is the banner + glowing card; sound only when the user opted in.
  if (!$('alert-sound').checked) return;
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.08;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.25);
  } catch { /* no audio */ }
}

function startAlerts() {
  alertsClient = track('alerts', newClient(`/ws/alerts/${encodeURIComponent(pageUser())}`));
  alertsClient.on('welcome', () => {
    // The bridge sends the room's active alerts on join: start from that set.
    for (const [id, a] of alerts) if (!a.fading) alerts.delete(id);
    alertsChanged();
  });
  alertsClient.on('alert', onAlert);
  alertsClient.on('alert_cleared', onAlertCleared);
  alertsClient.on('alert_acknowledged', onAlertAcknowledged);
  alertsClient.connect();
  setInterval(() => { if (alertsClient.state === 'open') alertsClient.ping().catch(() => {}); }, 5000);
}

// ---- vehicle and session views -------------------------------------------------------------

function kvFill(dl, obj, prefix = '') {
  dl.textContent = '';
  const walk = (o, p) => {
    for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, `${p}${k}.`);
      else dl.append(el('dt', { text: p + k }), el('dd', { text: typeof v === 'number' ? String(v) : String(v ?? '') }));
    }
  };
  walk(obj, prefix);
}

const LIVE_FIELDS = [
  ['speed', 'speed', 'km/h'], ['engine_metrics.rpm', 'rpm', ''], ['engine_metrics.temperature', 'engine temp', '°C'],
  ['engine_metrics.oil_pressure', 'oil pressure', 'bar'], ['battery_metrics.level', 'battery', '%'],
  ['battery_metrics.voltage', 'voltage', 'V'], ['fuel_metrics.level', 'fuel', '%'], ['gear', 'gear', ''],
  ['acceleration', 'acceleration', 'm/s²'], ['odometer', 'odometer', 'km'], ['timestamp', 'timestamp', ''],
];

function liveFill(dl, d) {
  dl.textContent = '';
  for (const [path, label, unit] of LIVE_FIELDS) {
    const v = get(d, path);
    if (v === undefined) continue;
    dl.append(el('dt', { text: label }), el('dd', { 'data-field': path, text: typeof v === 'number' ? `${v} ${unit}` : String(v) }));
  }
}

function makeCharts(box) {
  box.textContent = '';
  box.dataset.history = 'loading';
  return {
    speed: new LineChart(box, { label: 'Speed', unit: 'km/h', color: '#5cb8ff', min: 0 }),
    rpm: new LineChart(box, { label: 'RPM', unit: 'rpm', color: '#b48cff', min: 0, digits: 0 }),
    temp: new LineChart(box, { label: 'Engine temperature', unit: '°C', color: '#ff8a5c' }),
    battery: new LineChart(box, { label: 'Battery level', unit: '%', color: '#3fd07a', min: 0, max: 100 }),
  };
}

/** t: the frame's ts (when the bridge routed it), so history and live share one time axis. */
function pushCharts(charts, d, t) {
  charts.speed.push(t, d.speed);
  charts.rpm.push(t, get(d, 'engine_metrics.rpm'));
  charts.temp.push(t, get(d, 'engine_metrics.temperature'));
  charts.battery.push(t, get(d, 'battery_metrics.level'));
}

function destroyCharts(charts) { for (const c of Object.values(charts)) c.destroy(); }

/** Backfills charts from a room's kept history: a short-lived connection to /ws/connect
 *  (client_subscriptions) asks for the room's history (client.history: since=0, then
 *  later seqs when the bridge says the history does not reach back) and pushes its
 *  telemetry into the charts at the bridge's times; live frames are already arriving on the
 *  view's own connection, and the charts merge both in time order. What happened is shown
 *  under the charts: "n points of history", "no history kept", or why it is unavailable. */
async function backfill(room, charts, box, isCurrent) {
  const note = (state, text) => { box.dataset.history = state; box.dataset.historyNote = text; const n = box.querySelector('.history-note') || box.appendChild(el('p', { class: 'history-note muted small' })); n.textContent = text; };
  const h = new TelebridgeClient('/ws/connect', { token: auth.token, reconnect: false, connectTimeout: 10000 });
  try {
    const opened = new Promise((resolve, reject) => {
      h.on('open', resolve);
      h.on('close', (e) => reject(new Error(h.refusal ? `refused (${h.refusal.close})` : `closed (${e.code})`)));
    });
    h.connect();
    const { welcome } = await opened;
    if (!welcome.client_subscriptions) throw new Error('the bridge has no /ws/connect endpoint with client_subscriptions');
    const frames = await h.history(room, { max: 600, timeout: 10000 });
    if (!isCurrent()) return;
    let n = 0;
    for (const f of frames) if (f.type === 'telemetry_update' && f.data && typeof f.data === 'object') { pushCharts(charts, f.data, f.ts); n++; }
    note(n ? 'loaded' : 'empty', n ? `history: ${n} points from the bridge` : 'history: none kept for this room (routes with history: N keep some)');
  } catch (e) {
    if (isCurrent()) note('unavailable', `history unavailable: ${e.message}`);
  } finally {
    h.close();
  }
}

// ---- command panel (vehicle view) ------------------------------------------------------------
//
// Commands go over their own connection to /ws/control/<vehicle>/<user> (an endpoint with a
// `command` publish rule and `reply`, docs/uplink.md), opened on the first command and
// closed with the view. Each command is one line of the log, whose data-state says what is
// known, never more: sending (no answer yet), answered (the vehicle said ok), error (the
// vehicle answered, but not ok), timeout (no answer in time: it may or may not have acted),
// refused (the bridge refused it; nothing reached the vehicle) or failed (the connection was
// lost or could not be opened; the command may have reached the vehicle).

const COMMANDS = { ping: 'Ping', horn: 'Horn', request_diagnostics: 'Request diagnostics' };
const CMD_LOG_MAX = 8;
const controlPath = (id) => `/ws/control/${encodeURIComponent(id)}/${encodeURIComponent(pageUser())}`;

class CommandPanel {
  constructor(vehicleId) {
    this.id = vehicleId;
    this.client = null;
    this.opening = null;
    this.entries = [];
    this.closed = false;
    this.render();
  }

  /** The open control connection; opened now when there is none (or the last one is gone). */
  open() {
    if (this.client && this.client.state === 'open') return Promise.resolve(this.client);
    if (this.opening) return this.opening;
    if (this.client) this.client.close();
    const path = controlPath(this.id);
    const c = this.client = new TelebridgeClient(path, { token: auth.token, reconnect: false, connectTimeout: 10000 });
    this.opening = new Promise((resolve, reject) => {
      c.on('open', () => resolve(c));
      c.on('close', (e) => reject(c.refusal
        ? Object.assign(new Error(`the bridge refused ${path} (${c.refusal.close} ${c.refusal.code})`), { code: 'refused' })
        : Object.assign(new Error(`could not open ${path} (close ${e.code}${e.reason ? ' ' + e.reason : ''}): does the bridge have a /ws/control/{vehicle_id}/{user_id} endpoint?`), { code: 'failed' })));
    }).finally(() => { this.opening = null; });
    c.connect();
    return this.opening;
  }

  async send(command) {
    const e = { command, at: Date.now(), state: 'sending', text: 'sending…', detail: null };
    this.entries.unshift(e);
    this.entries.length = Math.min(this.entries.length, CMD_LOG_MAX);
    this.render();
    try {
      const c = await this.open();
      if (this.closed) return;
      e.text = 'sent, waiting for the vehicle\u2019s answer…';
      this.render();
      const data = await c.command(this.id, command);
      Object.assign(e, describeAnswer(data));
    } catch (err) {
      Object.assign(e, describeFailure(err));
    }
    if (!this.closed) this.render();
  }

  render() {
    if (this.closed) return;   // only the shown view's panel is open
    const ol = $('vehicle-cmd-log');
    ol.textContent = '';
    if (!this.entries.length) ol.append(el('li', { class: 'muted', text: `no commands sent; they go to ${controlPath(this.id)}` }));
    for (const e of this.entries) {
      const li = el('li', { class: `cmd ${e.state}`, 'data-state': e.state, 'data-command': e.command },
        el('span', { class: 'muted', text: `${new Date(e.at).toLocaleTimeString()} ` }), el('b', { text: COMMANDS[e.command] || e.command }),
        ` \u2014 `, el('span', { class: 'cmd-text', text: e.text }));
      if (e.detail) li.append(el('pre', { class: 'cmd-detail', text: e.detail }));
      ol.append(li);
    }
  }

  close() {
    this.closed = true;
    if (this.client) this.client.close();
  }
}

/** The vehicle's reply, as a log entry: ok unless it says ok: false. */
function describeAnswer(data) {
  const detail = typeof data === 'string' ? data : JSON.stringify(data, null, 1);
  if (data && typeof data === 'object' && data.ok === false)
    return { state: 'error', text: `the vehicle answered with an error: ${data.error || 'no reason given'}`, detail };
  return { state: 'answered', text: 'answered', detail };
}

/** A rejected command, as a log entry (codes: docs/protocol.md, clients/js/README.md). */
function describeFailure(err) {
  const code = err && err.code;
  const msg = (err && err.message) || String(err);
  if (code === 'timeout') return { state: 'timeout', text: `timed out: no answer from the vehicle (${msg}); it may or may not have acted` };
  if (code === 'disconnected' || code === 'closed' || code === 'not_connected' || code === 'failed')
    return { state: 'failed', text: `no answer: ${msg}; the command may have reached the vehicle` };
  return { state: 'refused', text: `refused by the bridge: ${code || 'error'}${msg && msg !== code ? ' \u2014 ' + msg : ''}; nothing was sent to the vehicle` };
}

let vehicleView = null;
const STALE_AFTER_MS = 10000;   // a view whose data is older than this says so
const UNKNOWN_AFTER_MS = 8000;  // an open connection with nothing at all for this long

/** A state pill: text for people, data-state (one word) for styles and tests. */
function setPill(p, state, text) {
  p.textContent = text;
  p.className = `pill ${state}`;
  p.dataset.state = state;
}

/** Empties the vehicle view: nothing of a previous vehicle may stay on screen. */
function resetVehicleDom(id) {
  $('vehicle-title').textContent = id || '';
  $('vehicle-id').value = id || '';
  $('vehicle-setup').textContent = '';
  $('vehicle-setup').append(el('dd', { class: 'muted', text: id ? 'waiting for setup…' : '–' }));
  $('vehicle-now').textContent = '';
  $('vehicle-pos').textContent = '';
  const cv = $('vehicle-track');
  cv.getContext('2d')?.clearRect(0, 0, cv.width, cv.height);
  $('vehicle-charts').textContent = '';
  $('vehicle-alerts').textContent = '';
  $('vehicle-cmd-log').textContent = '';
  if (!id) setPill($('vehicle-state'), 'none', 'no vehicle chosen');
  $('vehicle-view-body').hidden = !id;
  $('vehicle-empty').hidden = !!id;
}

class VehicleView {
  constructor(id) {
    this.id = id;
    this.opened = Date.now();
    resetVehicleDom(id);
    this.charts = makeCharts($('vehicle-charts'));
    this.track = new Track($('vehicle-track'));
    this.client = track('vehicle', newClient(`/ws/telemetry/${encodeURIComponent(id)}`));
    this.client.on('state', () => this.setState());
    this.client.on('setup_update', (f) => { this.gotAny = true; if (f.data && typeof f.data === 'object') kvFill($('vehicle-setup'), f.data); this.setState(); });
    this.client.on('status_update', (f) => { this.gotAny = true; this.status = typeof f.data === 'string' ? f.data : f.data && f.data.status; this.setState(); });
    this.client.on('telemetry_update', (f) => this.onTelemetry(f));
    this.client.on('alert', onAlert);
    this.client.on('alert_cleared', onAlertCleared);
    this.client.on('alert_acknowledged', onAlertAcknowledged);
    this.client.connect();
    backfill(`vehicle:${id}`, this.charts, $('vehicle-charts'), () => vehicleView === this);
    this.commands = new CommandPanel(id);
    schedule(this.renderAlerts);   // runs once this view is the current one
    this.timer = setInterval(() => { schedule(this.draw); this.setState(); }, 1000);
  }

  /** One honest word for the view: the link's state unless it is open; then live, stale,
   *  waiting (nothing yet) or unknown (nothing for a while: no such vehicle, or silent). */
  setState() {
    const s = this.client.state, now = Date.now();
    const said = this.status ? ` · vehicle reported ${this.status}` : '';
    if (s !== 'open') return setPill($('vehicle-state'), s, `${s}${this.lastAt ? ` · data from ${ageText(now - this.lastAt)} ago` : ''}`);
    if (this.lastAt && now - this.lastAt < STALE_AFTER_MS) return setPill($('vehicle-state'), 'live', `live${said}`);
    if (this.lastAt) return setPill($('vehicle-state'), 'stale', `stale: last telemetry ${ageText(now - this.lastAt)} ago${said}`);
    if (!this.gotAny && now - this.opened > UNKNOWN_AFTER_MS)
      return setPill($('vehicle-state'), 'unknown', `unknown: nothing from the bridge for ${this.id}${knownVehicles.has(this.id) ? '' : ' (not in the fleet lists)'}`);
    return setPill($('vehicle-state'), 'waiting', `waiting for telemetry${said}`);
  }

  onTelemetry(f) {
    const d = f.data;
    if (!d || typeof d !== 'object') return;
    this.last = d;
    this.lastAt = Date.now();
    this.gotAny = true;
    pushCharts(this.charts, d, typeof f.ts === 'number' ? f.ts : Date.now());
    if (!this.wasLive) { this.wasLive = true; this.setState(); }
    const loc = d.location || {};
    this.track.push(loc.latitude, loc.longitude, loc.heading);
    schedule(this.draw);
  }

  draw = () => {
    if (vehicleView !== this) return;
    const now = Date.now();
    for (const c of Object.values(this.charts)) c.draw(now);
    this.track.draw();
    if (this.last) {
      liveFill($('vehicle-now'), this.last);
      const l = this.last.location || {};
      $('vehicle-pos').textContent = l.latitude != null ? `${num(l.latitude, 5)}, ${num(l.longitude, 5)} heading ${num(l.heading, 0)}°` : '';
    }
  };

  renderAlerts = () => {
    if (vehicleView !== this) return;
    const ol = $('vehicle-alerts');
    ol.textContent = '';
    const mine = [...alertHistory.values()].filter((h) => alertKey(h.data) === this.id)
      .sort((a, b) => (b.at ?? 0) - (a.at ?? 0)).slice(0, 50);
    if (!mine.length) ol.append(el('li', { class: 'muted', text: 'no alerts seen for this vehicle' }));
    for (const h of mine) {
      const when = h.at != null ? new Date(h.at).toLocaleTimeString() : 'time unknown';
      ol.append(el('li', { 'data-event': h.event, text: `${when} ${h.event}: ${h.data.severity || ''} ${h.data.message || h.data.rule || ''}` }));
    }
  };

  close() {
    clearInterval(this.timer);
    destroyCharts(this.charts);
    this.commands.close();
    untrack('vehicle');
  }
}

let sessionView = null;

/** Empties the session view (see resetVehicleDom). */
function resetSessionDom(sid) {
  $('session-id').value = sid || '';
  $('session-setup').textContent = '';
  $('session-setup').append(el('dd', { class: 'muted', text: sid ? 'waiting for the session setup…' : 'join a session to see its setup' }));
  $('session-now').textContent = '';
  $('session-rate').textContent = '';
  $('session-charts').textContent = '';
  $('session-body').hidden = !sid;
  if (!sid) setPill($('session-state'), 'none', 'no session chosen');
}

/** Session state from what this page has seen (the bridge keeps no session status):
 *  unknown (the bridge says so, or nothing at all arrives), waiting (joined, no setup or no
 *  telemetry yet), live (telemetry within STALE_AFTER_MS), ended (telemetry stopped). */
function sessionState(x, now) {
  if (x.unknownSession) return ['unknown', 'unknown session: the bridge has no such session'];
  if (x.lastAt && now - x.lastAt < STALE_AFTER_MS) return ['live', 'live'];
  if (x.lastAt) return ['ended', `ended: no telemetry since ${new Date(x.lastAt).toLocaleTimeString()}`];
  if (x.gotSetup) return ['waiting', 'setup received, waiting for telemetry'];
  if (now - x.started > UNKNOWN_AFTER_MS) return ['unknown', 'unknown: no setup or telemetry for this id (wrong id, or monitor idle)'];
  return ['waiting', 'joined, waiting for the setup'];
}

class SessionView {
  constructor(sid) {
    this.sid = sid;
    this.started = Date.now();
    resetSessionDom(sid);
    this.charts = makeCharts($('session-charts'));
    this.times = [];
    this.client = track('session', newClient(`/ws/session/${encodeURIComponent(sid)}`));
    this.client.on('state', () => this.setState());
    this.client.on('error', (f) => { if (f.code === 'unknown_session') this.unknownSession = true; this.setState(); });
    this.client.on('setup_update', (f) => {
      this.gotSetup = true;
      if (f.data && typeof f.data === 'object') kvFill($('session-setup'), f.data);
      this.setState();
    });
    this.client.on('telemetry_update', (f) => {
      if (!f.data || typeof f.data !== 'object') return;
      this.last = f.data;
      this.lastAt = Date.now();
      this.times.push(Date.now());
      pushCharts(this.charts, f.data, typeof f.ts === 'number' ? f.ts : Date.now());
      schedule(this.draw);
      if (!this.wasLive) { this.wasLive = true; this.setState(); }
    });
    this.client.connect();
    backfill(`session:${sid}`, this.charts, $('session-charts'), () => sessionView === this);
    this.timer = setInterval(() => { schedule(this.draw); this.setState(); }, 1000);
  }

  setState() {
    const s = this.client.state;
    if (s !== 'open') return setPill($('session-state'), s, s);
    const [state, text] = sessionState(this, Date.now());
    setPill($('session-state'), state, text);
  }

  draw = () => {
    if (sessionView !== this) return;
    const now = Date.now();
    this.times = this.times.filter((t) => now - t < 5000);
    $('session-rate').textContent = this.times.length ? `(${(this.times.length / 5).toFixed(1)} Hz)` : '';
    for (const c of Object.values(this.charts)) c.draw(now);
    if (this.last) liveFill($('session-now'), this.last);
  };

  close() {
    clearInterval(this.timer);
    destroyCharts(this.charts);
    untrack('session');
  }
}

/** The list of race sessions: the bridge has no session listing, so the list is what the
 *  rooms say. A /ws/connect connection subscribes to the pattern "session:*" (max_rate
 *  0.5/s per room): each session room hands over its setup (track, vehicle, start time)
 *  and latest telemetry on join, and every session room created later joins too. Open
 *  only while the session view is shown. */
class SessionList {
  constructor() {
    this.rows = new Map();   // sid -> {sid, setup, lastAt, gotSetup, started, tr}
    this.started = Date.now();
    $('session-list-body').textContent = '';
    this.client = track('sessions', newClient('/ws/connect'));
    this.client.on('open', ({ welcome }) => {
      if (!welcome.client_subscriptions) return this.note('unavailable', 'Session list unavailable: this bridge has no endpoint /ws/connect with client subscriptions.');
      this.client.subscribe(['session:*'], { max_rate: 0.5 })
        .then((r) => { const no = r && Array.isArray(r.rejected) && r.rejected[0]; this.note(no ? 'unavailable' : 'ok', no ? `Session list unavailable: the bridge does not allow subscribing to session:* (${no.code}).` : ''); })
        .catch((e) => this.note('unavailable', `Session list unavailable: ${e.code}: ${e.message}`));
    });
    this.client.on('refused', (r) => this.note('unavailable', `Session list unavailable: refused (${r.close}).`));
    this.client.on('setup_update', (f) => this.onFrame(f, true));
    this.client.on('telemetry_update', (f) => this.onFrame(f, false));
    this.client.connect();
    this.note('waiting', 'Looking for sessions…');
    this.timer = setInterval(() => this.render(), 1000);
  }

  note(state, text) {
    const n = $('session-list-note');
    n.dataset.state = state;
    n.textContent = text;
    this.noteState = state;
    this.render();
  }

  onFrame(f, isSetup) {
    const room = typeof f.room === 'string' ? f.room : '';
    if (!room.startsWith('session:') || !f.data || typeof f.data !== 'object') return;
    const sid = room.slice('session:'.length);
    let r = this.rows.get(sid);
    if (!r) { r = { sid, started: Date.now() }; this.rows.set(sid, r); }
    if (isSetup) { r.setup = f.data; r.gotSetup = true; } else r.lastAt = Date.now();
    schedule(() => this.render());
  }

  render() {
    const tbody = $('session-list-body');
    const now = Date.now();
    const list = [...this.rows.values()].sort((a, b) => String(b.setup?.started_at ?? '').localeCompare(String(a.setup?.started_at ?? '')) || a.sid.localeCompare(b.sid));
    tbody.textContent = '';
    for (const r of list) {
      const [state, text] = sessionState(r, now);
      const v = r.setup?.vehicle;
      const started = r.setup?.started_at ? new Date(r.setup.started_at) : null;
      tbody.append(el('tr', { 'data-session': r.sid, 'data-state': state },
        el('td', { class: 'sid' }, el('a', { href: `#/session/${encodeURIComponent(r.sid)}`, text: r.sid })),
        el('td', { text: r.setup?.track ?? '–' }),
        el('td', { text: v ? [v.make, v.model].filter(Boolean).join(' ') || v.vehicle_id || '–' : '–' }),
        el('td', { text: started && !isNaN(started) ? started.toLocaleString() : '–' }),
        el('td', {}, el('span', { class: `pill ${state}`, title: text, text: state }))));
    }
    const empty = $('session-list-empty');
    empty.hidden = list.length > 0 || this.noteState === 'unavailable';
    empty.textContent = now - this.started > UNKNOWN_AFTER_MS ? 'No sessions: no session room has any data on this bridge.' : 'Looking for sessions…';
  }

  close() {
    clearInterval(this.timer);
    untrack('sessions');
  }
}
let sessionList = null;

// ---- routing between views ---------------------------------------------------------------

function route() {
  const [, view = 'fleet', arg = ''] = location.hash.split('/');
  const id = decodeURIComponent(arg);
  for (const v of ['fleet', 'vehicle', 'session']) {
    $(`view-${v}`).hidden = v !== view;
    document.querySelector(`nav a[data-view="${v}"]`).toggleAttribute('aria-current', v === view);
    if (v === view) document.querySelector(`nav a[data-view="${v}"]`).setAttribute('aria-current', 'page');
  }
  if (view !== 'vehicle' || (vehicleView && vehicleView.id !== id)) { vehicleView && vehicleView.close(); vehicleView = null; }
  if (view !== 'session' || (sessionView && sessionView.sid !== id)) { sessionView && sessionView.close(); sessionView = null; }
  if (view === 'vehicle' && id && !vehicleView) vehicleView = new VehicleView(id);
  if (view === 'session' && id && !sessionView) sessionView = new SessionView(id);
  if (view === 'vehicle' && !id) resetVehicleDom('');
  if (view === 'session' && !id) resetSessionDom('');
  if (view === 'session' && !sessionList) sessionList = new SessionList();
  if (view !== 'session' && sessionList) { sessionList.close(); sessionList = null; }
}

function init() {
  pools.personal = new Pool('personal', $('pool-personal'));
  pools.fleet = new Pool('fleet', $('pool-fleet'));
  startAlerts();
  $('fleet-filter').addEventListener('input', (e) => { filter.text = e.target.value.trim().toLowerCase(); for (const p of Object.values(pools)) p.reorder(); });
  $('fleet-show').addEventListener('change', (e) => { filter.show = e.target.value; for (const p of Object.values(pools)) p.reorder(); });
  $('login-form').addEventListener('submit', (e) => { e.preventDefault(); useToken($('login-token').value.trim()); $('login-token').value = ''; });
  $('login-clear').addEventListener('click', () => useToken(null));
  $('login-open').addEventListener('click', () => { $('login').dataset.open = '1'; renderLogin(); $('login-token').focus(); });
  $('vehicle-commands').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-command]');
    if (b && vehicleView) vehicleView.commands.send(b.dataset.command);
  });
  $('vehicle-form').addEventListener('submit', (e) => { e.preventDefault(); location.hash = `#/vehicle/${encodeURIComponent($('vehicle-id').value.trim())}`; });
  $('session-form').addEventListener('submit', (e) => { e.preventDefault(); location.hash = `#/session/${encodeURIComponent($('session-id').value.trim())}`; });
  window.addEventListener('hashchange', route);
  route();
  setInterval(() => {
    let total = 0;
    for (const c of clients.values()) total += c.stats.messages;
    rate = rate * 0.5 + Math.max(0, total - lastCount) * 0.5;
    lastCount = total;
    for (const p of Object.values(pools)) p.reorder();
    renderFleetSummary();
    renderStatus();
  }, 1000);
  // For tests and the curious: the live state, read-only by convention.
  window.telebridge = { clients, pools, alerts, broker };
}

init();
