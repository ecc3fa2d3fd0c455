// charts.js — time-series charts (uPlot, vendored in vendor/uplot/) and the position track.
//
// Why: charts need a time axis, readable ticks and values on hover; uPlot does that in a
// small, fast, maintained package (vendor/uplot/README.md), so the dashboard keeps working
// offline without a build step. How: a Series keeps (t, v) points in time order within a
// window; points can arrive out of order (history backfilled after live frames) and are
// inserted in place, duplicates (same t) replaced. draw() hands the arrays to uPlot at most
// once per second per chart, from the page's requestAnimationFrame batch, never per message.
// The track stays a plain canvas.
import uPlot from './vendor/uplot/uPlot.esm.js';

export class Series {
  constructor(windowMs = 5 * 60 * 1000, max = 4000) {
    this.windowMs = windowMs;
    this.max = max;
    this.t = [];
    this.v = [];
  }

  /** Adds a point at time t (ms); returns false when v is not a finite number. */
  push(t, v) {
    if (typeof v !== 'number' || !Number.isFinite(v) || typeof t !== 'number') return false;
    let i = this.t.length;
    while (i > 0 && this.t[i - 1] > t) i--;
    if (i > 0 && this.t[i - 1] === t) this.v[i - 1] = v;
    else { this.t.splice(i, 0, t); this.v.splice(i, 0, v); }
    this.trim(this.t[this.t.length - 1]);
    return true;
  }

  trim(now) {
    const cut = now - this.windowMs;
    let drop = 0;
    while (drop < this.t.length && this.t[drop] < cut) drop++;
    if (this.t.length - drop > this.max) drop = this.t.length - this.max;
    if (drop) { this.t.splice(0, drop); this.v.splice(0, drop); }
  }

  clear() { this.t.length = 0; this.v.length = 0; }
  get last() { return this.v.length ? this.v[this.v.length - 1] : null; }
}

function fitCanvas(canvas) {
  const dpr = globalThis.devicePixelRatio || 1;
  const w = Math.max(50, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(40, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return { w, h, dpr };
}

/** A labelled line chart: <figure><figcaption>label value</figcaption>uPlot | empty note</figure>.
 *  The x axis spans from the oldest point kept to now (at most the window), so a chart
 *  that has a minute of data shows that minute across its width. */
export class LineChart {
  constructor(parent, { label, unit = '', color = '#5cb8ff', windowMs, min, max, digits = 1 }) {
    this.series = new Series(windowMs);
    this.label = label;
    this.unit = unit;
    this.color = color;
    this.min = min;
    this.max = max;
    this.digits = digits;
    this.el = document.createElement('figure');
    this.el.className = 'chart';
    this.el.dataset.points = '0';
    const cap = document.createElement('figcaption');
    const name = document.createElement('span');
    name.textContent = label;
    this.valueEl = document.createElement('b');
    this.valueEl.textContent = '–';
    cap.append(name, this.valueEl);
    this.plotBox = document.createElement('div');
    this.plotBox.className = 'plot';
    this.plotBox.setAttribute('role', 'img');
    this.plotBox.setAttribute('aria-label', `${label} over the last minutes`);
    this.emptyEl = document.createElement('p');
    this.emptyEl.className = 'chart-empty muted small';
    this.emptyEl.textContent = 'no data yet';
    this.el.append(cap, this.plotBox, this.emptyEl);
    parent.append(this.el);
    this.plot = null;
  }

  push(t, v) { if (this.series.push(t, v)) this.dirty = true; }

  /** Shown instead of the plot while there are no points (e.g. "history unavailable"). */
  setEmptyText(text) { this.emptyEl.textContent = text; }

  clear() { this.series.clear(); this.dirty = true; }

  makePlot() {
    const fmt = (v) => (v == null ? '–' : `${v.toFixed(this.digits)} ${this.unit}`.trim());
    const fixedRange = (u, lo, hi) => {
      // Flat or single-valued data: open a band around it instead of zero-height ticks.
      if (lo === hi) { const pad = Math.max(1, Math.abs(lo) * 0.05); lo -= pad; hi += pad; }
      const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
      return [this.min != null ? Math.max(this.min, a) : a, this.max != null ? Math.min(this.max, b) : b];
    };
    const w = Math.max(120, this.plotBox.clientWidth || 300);
    this.plot = new uPlot({
      width: w, height: 140,
      tzDate: (ts) => new Date(ts * 1000),
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: fixedRange } },
      axes: [
        { stroke: '#a3b1bf', grid: { stroke: '#24303c' }, ticks: { stroke: '#2f3d4b' } },
        // uPlot's own tick labels: their precision follows the tick step, so no label repeats.
        { stroke: '#a3b1bf', grid: { stroke: '#24303c' }, ticks: { stroke: '#2f3d4b' }, size: 52 },
      ],
      series: [
        { label: 'time', value: (u, ts) => (ts == null ? '–' : new Date(ts * 1000).toLocaleTimeString()) },
        { label: this.label, stroke: this.color, width: 1.5, value: (u, v) => fmt(v), points: { show: false } },
      ],
    }, [[], []], this.plotBox);
    if (typeof ResizeObserver === 'function') {
      this.ro = new ResizeObserver(() => { const cw = this.plotBox.clientWidth; if (cw && this.plot && cw !== this.plot.width) this.plot.setSize({ width: cw, height: 140 }); });
      this.ro.observe(this.plotBox);
    }
  }

  draw(now) {
    const s = this.series;
    s.trim(now);
    const n = s.t.length;
    this.el.dataset.points = String(n);
    this.el.dataset.oldest = n ? String(s.t[0]) : '';
    this.valueEl.textContent = n ? `${s.last.toFixed(this.digits)} ${this.unit}`.trim() : '–';
    this.emptyEl.hidden = n > 0;
    this.plotBox.hidden = n === 0;
    if (!n) return;
    if (!this.plot) this.makePlot();
    if (this.dirty || now - (this.drawnAt || 0) >= 1000) {
      this.dirty = false;
      this.drawnAt = now;
      this.plot.setData([s.t.map((t) => t / 1000), s.v.slice()]);
      this.plot.setScale('x', { min: s.t[0] / 1000, max: Math.max(now, s.t[n - 1]) / 1000 });
    }
  }

  destroy() { if (this.ro) this.ro.disconnect(); if (this.plot) this.plot.destroy(); this.el.remove(); }
}

export class Track {
  constructor(canvas, max = 2000) {
    this.canvas = canvas;
    this.max = max;
    this.pts = [];
    this.heading = null;
    this.dirty = true;
  }

  push(lat, lon, heading) {
    if (!Number.isFinite(lat) || !Number.isFinite(lon)) return;
    this.pts.push([lat, lon]);
    if (this.pts.length > this.max) this.pts.splice(0, this.pts.length - this.max);
    this.heading = heading;
    this.dirty = true;
  }

  clear() { this.pts.length = 0; this.dirty = true; }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const { w, h, dpr } = fitCanvas(this.canvas);
    const ctx = this.canvas.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = '#a3b1bf';
    ctx.font = `${11 * dpr}px sans-serif`;
    if (!this.pts.length) { ctx.fillText('no position yet', 10 * dpr, 20 * dpr); return; }
    let la0 = Infinity, la1 = -Infinity, lo0 = Infinity, lo1 = -Infinity;
    for (const [la, lo] of this.pts) {
      if (la < la0) la0 = la; if (la > la1) la1 = la;
      if (lo < lo0) lo0 = lo; if (lo > lo1) lo1 = lo;
    }
    const k = Math.cos((la0 + la1) / 2 * Math.PI / 180);
    const spanX = Math.max((lo1 - lo0) * k, 1e-4), spanY = Math.max(la1 - la0, 1e-4);
    const pad = 16 * dpr;
    const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
    const cx = (lo0 + lo1) / 2, cy = (la0 + la1) / 2;
    const px = (lo) => w / 2 + (lo - cx) * k * scale;
    const py = (la) => h / 2 - (la - cy) * scale;
    ctx.strokeStyle = '#5cb8ff';
    ctx.lineWidth = 2 * dpr;
    ctx.beginPath();
    this.pts.forEach(([la, lo], i) => (i ? ctx.lineTo(px(lo), py(la)) : ctx.moveTo(px(lo), py(la))));
    ctx.stroke();
    const [la, lo] = this.pts[this.pts.length - 1];
    const X = px(lo), Y = py(la);
    ctx.fillStyle = '#ffd24a';
    ctx.beginPath(); ctx.arc(X, Y, 5 * dpr, 0, 2 * Math.PI); ctx.fill();
    if (Number.isFinite(this.heading)) {
      const a = this.heading * Math.PI / 180;
      ctx.strokeStyle = '#ffd24a';
      ctx.beginPath(); ctx.moveTo(X, Y); ctx.lineTo(X + Math.sin(a) * 14 * dpr, Y - Math.cos(a) * 14 * dpr); ctx.stroke();
    }
    const m = spanY * 111320;
    ctx.fillStyle = '#a3b1bf';
    ctx.fillText(`${this.pts.length} points · ${m >= 1000 ? (m / 1000).toFixed(1) + ' km' : m.toFixed(0) + ' m'} N–S`, 8 * dpr, h - 8 * dpr);
  }
}
