// charts.js — tiny canvas time-series chart and position track for the dashboard.
//
// Why: the dashboard must work offline and stay small, and four line charts plus a track do
// not need a library. How: a Series keeps (t, v) points in a ring limited by a time window;
// draw() repaints the whole canvas (cheap at these sizes) and is called from the page's
// requestAnimationFrame batch, never per message. Canvas pixels follow devicePixelRatio.

export class Series {
  constructor(windowMs = 5 * 60 * 1000, max = 4000) {
    this.windowMs = windowMs;
    this.max = max;
    this.t = [];
    this.v = [];
  }

  push(t, v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return;
    this.t.push(t);
    this.v.push(v);
    const cut = t - this.windowMs;
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

/** A labelled line chart: <figure><figcaption>label value</figcaption><canvas></figure>. */
export class LineChart {
  constructor(parent, { label, unit = '', color = '#5cb8ff', windowMs, min, max, digits = 1 }) {
    this.series = new Series(windowMs);
    this.unit = unit;
    this.color = color;
    this.min = min;
    this.max = max;
    this.digits = digits;
    this.el = document.createElement('figure');
    this.el.className = 'chart';
    const cap = document.createElement('figcaption');
    const name = document.createElement('span');
    name.textContent = label;
    this.valueEl = document.createElement('b');
    this.valueEl.textContent = '–';
    cap.append(name, this.valueEl);
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', `${label} over the last minutes`);
    this.el.append(cap, this.canvas);
    parent.append(this.el);
    this.dirty = true;
  }

  push(t, v) { this.series.push(t, v); this.dirty = true; }
  clear() { this.series.clear(); this.dirty = true; }

  draw(now = Date.now()) {
    if (!this.dirty && !this.series.t.length) return;
    this.dirty = false;
    const s = this.series;
    const last = s.last;
    this.valueEl.textContent = last == null ? '–' : `${last.toFixed(this.digits)} ${this.unit}`;
    const { w, h, dpr } = fitCanvas(this.canvas);
    const ctx = this.canvas.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    const pad = 4 * dpr, left = 34 * dpr;
    let lo = this.min, hi = this.max;
    if (lo == null || hi == null) {
      let a = Infinity, b = -Infinity;
      for (const v of s.v) { if (v < a) a = v; if (v > b) b = v; }
      if (!Number.isFinite(a)) { a = 0; b = 1; }
      if (a === b) { a -= 1; b += 1; }
      const m = (b - a) * 0.1;
      if (lo == null) lo = a - m;
      if (hi == null) hi = b + m;
    }
    const t1 = now, t0 = now - s.windowMs;
    const x = (t) => left + (w - left - pad) * (t - t0) / (t1 - t0);
    const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
    // grid + labels
    ctx.strokeStyle = '#2a3744';
    ctx.fillStyle = '#a3b1bf';
    ctx.lineWidth = 1;
    ctx.font = `${10 * dpr}px sans-serif`;
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 3; i++) {
      const v = lo + (hi - lo) * i / 3;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(w - pad, yy); ctx.stroke();
      ctx.fillText(Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(v === 0 ? 0 : 1), 2 * dpr, yy);
    }
    if (!s.t.length) return;
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    for (let i = 0; i < s.t.length; i++) {
      const xx = x(s.t[i]), yy = y(Math.min(hi, Math.max(lo, s.v[i])));
      if (i === 0) ctx.moveTo(xx, yy); else ctx.lineTo(xx, yy);
    }
    ctx.stroke();
  }
}

/** Position track: lat/lon points drawn with an equirectangular projection fitted to the
 *  canvas; the newest point is a dot with a heading tick. No map tiles. */
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
