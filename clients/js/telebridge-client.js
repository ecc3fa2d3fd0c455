// telebridge-client.js — a small WebSocket client for Telebridge (ES module, no dependencies).
//
// Why it exists: every dashboard needs the same plumbing around a Telebridge WebSocket —
// reconnect with backoff, resume after a reconnect without gaps, noticing a dead link,
// matching replies to requests. The built-in dashboard uses it, and so can any other page
// or Node script (docs/client.md).
//
// How it works: one TelebridgeClient owns at most one WebSocket at a time. Frames are JSON
// objects dispatched by their "type" to handlers registered with on(type, fn). The client
// remembers the newest seq it saw per room and the bridge's epoch; after a reconnect it
// re-sends its subscriptions with {since, epoch} so the bridge replays what was missed, and
// it reports a "resync" when that is impossible (the bridge says so, or its epoch changed).
// A watchdog armed from the welcome's heartbeat_interval_ms declares the link dead when
// nothing arrives for several intervals, closes it and reconnects.
//
// Runs in browsers (global WebSocket) and in Node >= 20 (pass {WebSocket} from the `ws`
// package, or rely on a global WebSocket in Node >= 22). Single-threaded like all JS.
//
// This file is the source of the npm package in clients/js/ (package "telebridge-client"):
// telebridge-client.cjs is generated from it (npm run build), and dashboard/ serves a copy.

export const STATES = Object.freeze(['idle', 'connecting', 'open', 'reconnecting', 'closed']);

const ROUTED = new Set(['telemetry_update', 'setup_update', 'status_update', 'fleet_update']);

const DEFAULTS = {
  reconnect: true,
  initialDelay: 500,      // ms before the first reconnect attempt
  maxDelay: 15000,        // cap of the exponential backoff
  factor: 2,
  jitter: 0.5,            // each delay is reduced by up to this fraction at random
  stableAfter: 10000,     // ms a connection must stay open before the backoff resets
  requestTimeout: 5000,   // ms before request() rejects with code "timeout"
  commandTimeout: 10000,  // ms before command() gives up; longer than the example rule's
                          // reply.timeout (5s), so the bridge's own "timeout" arrives first
  heartbeatMisses: 2.5,   // link is dead after this many heartbeat intervals of silence
  heartbeatTimeout: null, // ms; overrides the value derived from the welcome; 0 disables
  heartbeatMinTimeout: 1000, // floor of the derived value
  connectTimeout: 10000,  // ms for the WebSocket handshake + welcome
  resume: true,           // resubscribe with since/epoch after a reconnect
  dedupe: true,           // drop routed frames whose seq was already seen (same epoch)
  subscribeRooms: [],     // rooms to subscribe to on every (re)connect
  token: null,            // access token (string), sent as chosen by tokenIn; null = none
  tokenIn: 'subprotocol', // 'subprotocol': Sec-WebSocket-Protocol ["bearer", token]; 'query': ?token=
  random: Math.random,
  now: () => Date.now(),
};

export class TelebridgeError extends Error {
  constructor(code, message, frame) {
    super(message || code);
    this.name = 'TelebridgeError';
    this.code = code;
    this.frame = frame;
  }
}

export class TelebridgeClient {
  /**
   * @param {string} url  ws:// or wss:// URL of a Telebridge endpoint (or a path such as
   *                      "/ws/fleet", resolved against the page's location in a browser).
   * @param {object} [options]  see DEFAULTS above and docs/client.md
   */
  constructor(url, options = {}) {
    this.url = resolveUrl(url);
    this.opts = { ...DEFAULTS, ...options };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new Error('no WebSocket: pass {WebSocket} (e.g. from the "ws" package)');
    this.state = 'idle';
    this.ws = null;
    this.welcome = null;        // data of the latest welcome frame
    this.epoch = null;
    this.seqs = new Map();      // room -> newest seq seen
    this.subscriptions = new Map(); // room -> options ({max_rate, fields}) asked by us
    this.sessions = new Map();  // session id -> {options, room} joined with joinSession()
    this.attempt = 0;           // failed attempts since the last stable connection
    this.handlers = new Map();
    this.pending = new Map();   // request id -> {resolve, reject, timer}
    this.nextId = 1;
    this.timers = { reconnect: null, stable: null, watchdog: null, connect: null };
    this.stats = { messages: 0, bytes: 0, reconnects: 0, lastMessageAt: 0, lagMs: null, rttMs: null };
    this.lastHeartbeat = null;
    this.refusal = null;        // {code, reason, message} once the bridge refused our token
    this.replaying = new Map(); // room -> replayed frames still to come (not counted in lagMs)
    this.lagSeen = new Set();   // "room\ntype" seen on this socket: the first is join state
    if (!['subprotocol', 'query'].includes(this.opts.tokenIn)) throw new TypeError(`tokenIn must be 'subprotocol' or 'query', not ${this.opts.tokenIn}`);
    if (this.opts.token != null && typeof this.opts.token !== 'string') throw new TypeError('token must be a string');
    for (const room of this.opts.subscribeRooms) this.subscriptions.set(room, {});
  }

  // ---- events ---------------------------------------------------------------------------

  /** Registers fn for a frame type ("alert", "telemetry_update", ...) or a client event
   *  ("state", "open", "close", "reconnect", "resync", "gap", "dead", "message", "frame_error").
   *  Returns a function that unregisters it. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this.handlers.get(type)?.delete(fn);
  }

  /** Resolves with the next event of this type (optionally one that satisfies pred). */
  once(type, pred = () => true, timeout = 0) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const off = this.on(type, (ev) => {
        if (!pred(ev)) return;
        off();
        clearTimeout(timer);
        resolve(ev);
      });
      if (timeout > 0) timer = setTimeout(() => { off(); reject(new TelebridgeError('timeout', `no ${type} within ${timeout} ms`)); }, timeout);
    });
  }

  emit(type, ev) {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(ev, this); } catch (e) { console.error(`telebridge-client: ${type} handler threw`, e); }
    }
  }

  setState(state, extra = {}) {
    if (state === this.state) return;
    const prev = this.state;
    this.state = state;
    this.emit('state', { state, prev, attempt: this.attempt, ...extra });
  }

  // ---- connection lifecycle -------------------------------------------------------------

  /** Opens the connection (and keeps it open until close()). Returns this. */
  connect() {
    if (this.state === 'open' || this.state === 'connecting') return this;
    this.clearTimer('reconnect');
    this.closedByUser = false;
    this.setState(this.stats.reconnects || this.attempt ? 'reconnecting' : 'connecting');
    this.refusal = null;
    this.replaying.clear();
    this.lagSeen.clear();
    let ws;
    try {
      const { url, protocols } = this.handshake();
      ws = protocols ? new this.WebSocket(url, protocols) : new this.WebSocket(url);
    } catch (e) {
      this.onSocketGone(null, 1006, String(e && e.message || e));
      return this;
    }
    this.ws = ws;
    this.gotWelcome = false;
    this.armTimer('connect', this.opts.connectTimeout, () => {
      if (this.ws === ws) this.drop(ws, 'connect_timeout');
    });
    ws.onopen = () => { if (this.ws === ws) this.armWatchdog(); };
    ws.onmessage = (ev) => { if (this.ws === ws) this.onData(ev.data); };
    ws.onerror = () => {};   // onclose follows and carries the code
    ws.onclose = (ev) => this.onSocketGone(ws, ev.code, ev.reason);
    return this;
  }

  /** URL and subprotocols of the next handshake, with the token where tokenIn says. */
  handshake() {
    const t = this.opts.token;
    const url = this.resumeUrl();
    if (!t) return { url, protocols: null };
    if (this.opts.tokenIn === 'query') {
      const u = new URL(url);
      u.searchParams.set('token', t);
      return { url: u.toString(), protocols: null };
    }
    return { url, protocols: ['bearer', t] };
  }

  /** The URL, plus since/epoch for the rooms the endpoint itself joined (its welcome
   *  "rooms") that we have seqs of: fixed endpoints resume on the URL (docs/protocol.md). */
  resumeUrl() {
    const own = (this.welcome && this.welcome.rooms) || [];
    if (!this.opts.resume || this.epoch == null) return this.url;
    const args = own.filter((r) => this.seqs.has(r) && !this.subscriptions.has(r))
      .map((r) => `since=${encodeURIComponent(r)}:${this.seqs.get(r)}`);
    if (!args.length) return this.url;
    args.push(`epoch=${encodeURIComponent(this.epoch)}`);
    return this.url + (this.url.includes('?') ? '&' : '?') + args.join('&');
  }

  /** Uses this token from the next (re)connect on. The open connection keeps its identity. */
  setToken(token) {
    if (token != null && typeof token !== 'string') throw new TypeError('token must be a string');
    this.opts.token = token || null;
  }

  /** For endpoints that announce auth_expiring: sends {"type":"refresh","token"} on the open
   *  connection (the bridge answers "refreshed", or an error and close 4401) and uses the
   *  token for reconnects. Returns false when not connected. Only for bridges with access
   *  control: others answer unknown_type, which counts toward their abuse limit. */
  refreshToken(token) {
    this.setToken(token);
    return this.send({ type: 'refresh', token });
  }

  /** Closes for good: no reconnect. Pending requests reject with code "closed". */
  close(code = 1000, reason = 'client closing') {
    this.closedByUser = true;
    this.clearAllTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
    this.failPending('closed', 'client closed');
    this.setState('closed');
    this.emit('close', { code, reason, willReconnect: false });
  }

  /** Drops the current socket as if the network failed (used for a dead link). */
  drop(ws, why) {
    detach(ws);
    try { ws.close(4000, why); } catch { /* ignore */ }
    this.onSocketGone(ws, 4000, why);
  }

  onSocketGone(ws, code, reason) {
    if (ws && ws !== this.ws) return;
    detach(ws);
    this.ws = null;
    this.clearTimer('stable');
    this.clearTimer('watchdog');
    this.clearTimer('connect');
    this.failPending('disconnected', `connection lost (${code}${reason ? ' ' + reason : ''})`);
    if (this.closedByUser) return;
    // 4401/4403: the bridge refused the token (or its absence). Retrying with the same
    // token cannot help: stop and say so; connect() again after setToken().
    if (code === 4401 || code === 4403) {
      const r = this.refusal || {};
      this.refusal = { close: code, code: r.code || (code === 4401 ? 'unauthorized' : 'forbidden'), message: r.message || reason || '' };
      this.emit('close', { code, reason, willReconnect: false });
      this.setState('closed', { code, reason });
      this.emit('refused', { ...this.refusal });
      return;
    }
    const willReconnect = !!this.opts.reconnect;
    this.emit('close', { code, reason, willReconnect });
    if (!willReconnect) { this.setState('closed'); return; }
    const delay = this.backoffDelay(this.attempt);
    this.attempt++;
    this.setState('reconnecting', { delay, code, reason });
    this.emit('reconnect', { attempt: this.attempt, delay, code, reason });
    this.armTimer('reconnect', delay, () => { this.stats.reconnects++; this.connect(); });
  }

  /** Delay before reconnect attempt n (0-based): exponential, capped, with jitter. */
  backoffDelay(n) {
    const { initialDelay, maxDelay, factor, jitter } = this.opts;
    const base = Math.min(maxDelay, initialDelay * Math.pow(factor, n));
    return Math.round(base * (1 - jitter * this.opts.random()));
  }

  // ---- incoming frames ------------------------------------------------------------------

  onData(data) {
    if (typeof data !== 'string') data = String(data);
    this.stats.messages++;
    this.stats.bytes += data.length;
    const now = this.opts.now();
    this.stats.lastMessageAt = now;
    this.armWatchdog();
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      this.emit('frame_error', { data, error: 'not JSON' });
      return;
    }
    if (!f || typeof f !== 'object' || typeof f.type !== 'string') {
      this.emit('frame_error', { data, error: 'no type' });
      return;
    }
    if (typeof f.ts === 'number' && this.isLive(f)) {
      const lag = Math.max(0, now - f.ts);
      this.stats.lagMs = this.stats.lagMs == null ? lag : this.stats.lagMs * 0.9 + lag * 0.1;
    }
    if (f.type === 'error' && !this.gotWelcome && (f.code === 'unauthorized' || f.code === 'forbidden'))
      this.refusal = { code: f.code, message: f.message || '' };
    if (f.type === 'welcome') return this.onWelcome(f);
    if (f.type === 'heartbeat') this.lastHeartbeat = f.data || {};
    if (f.type === 'resync') this.onResync(f);
    else if (typeof f.seq === 'number' && typeof f.room === 'string' && !this.trackSeq(f)) return;
    if (f.id != null && this.pending.has(String(f.id))) this.settle(f);
    this.emit('message', f);
    this.emit(f.type, f);
  }

  /** True when f is sent as it happens: not a replay from history, not the state a room
   *  hands over on join (the first frame of each type of a room on this socket), not a
   *  control frame that echoes an old time. Only these count in stats.lagMs. */
  isLive(f) {
    if ((f.type === 'subscribed' || f.type === 'session_joined') && f.resumed && typeof f.resumed === 'object') {
      for (const [room, n] of Object.entries(f.resumed)) if (Number.isInteger(n) && n > 0) this.replaying.set(room, n);
      return false;
    }
    if (f.type === 'resync' && typeof f.room === 'string') {
      for (const k of [...this.lagSeen]) if (k.startsWith(f.room + '\n')) this.lagSeen.delete(k);
      return false;
    }
    if (typeof f.room !== 'string' || typeof f.seq !== 'number') return f.type === 'heartbeat' || f.type === 'pong';
    const left = this.replaying.get(f.room);
    if (left) {
      if (left <= 1) this.replaying.delete(f.room); else this.replaying.set(f.room, left - 1);
      return false;
    }
    const k = f.room + '\n' + f.type;
    if (!this.lagSeen.has(k)) { this.lagSeen.add(k); return false; }
    return true;
  }

  /** Records f.seq for its room; false when the frame is a duplicate to drop. */
  trackSeq(f) {
    const last = this.seqs.get(f.room);
    if (last != null && f.seq <= last && this.opts.dedupe && f.type !== 'resync') return false;
    if (last != null && f.seq > last + 1 && ROUTED.has(f.type))
      this.emit('gap', { room: f.room, from: last, to: f.seq, missed: f.seq - last - 1 });
    this.seqs.set(f.room, f.seq);
    return true;
  }

  onResync(f) {
    // Resume was impossible for this room (f.reason); the room's current state follows,
    // with seqs up to f.seq: forget ours so that state is accepted, not dropped.
    if (typeof f.room === 'string') this.seqs.delete(f.room);
  }

  onWelcome(f) {
    const w = f.data || {};
    const reconnected = this.welcome != null;
    const prevEpoch = this.epoch;
    this.welcome = w;
    this.gotWelcome = true;
    this.clearTimer('connect');
    if (w.epoch != null) this.epoch = w.epoch;
    if (reconnected && prevEpoch != null && w.epoch != null && w.epoch !== prevEpoch && this.seqs.size) {
      const rooms = [...this.seqs.keys()];
      this.seqs.clear();
      this.emit('resync', { reason: 'epoch', rooms, prevEpoch, epoch: w.epoch, local: true });
    }
    this.setState('open');
    this.armTimer('stable', this.opts.stableAfter, () => { this.attempt = 0; });
    this.armWatchdog();
    this.emit('welcome', f);
    this.emit('open', { welcome: w, reconnected });
    this.resubscribe(w);
  }

  /** After (re)connecting: subscribe again to our rooms, asking for what we missed. */
  resubscribe(w) {
    for (const [sid, s] of this.sessions) {
      this.request(this.withSince({ type: 'join_session', session_id: sid, ...s.options }, s.room ? [s.room] : []))
        .catch((e) => this.emit('frame_error', { error: e.message, code: e.code }));
    }
    const rooms = [...this.subscriptions.keys()];
    if (!rooms.length || !w.client_subscriptions) return;
    // Rooms with the same options go in one request.
    const groups = new Map();
    for (const room of rooms) {
      const o = this.subscriptions.get(room) || {};
      const key = JSON.stringify(o);
      if (!groups.has(key)) groups.set(key, { o, rooms: [] });
      groups.get(key).rooms.push(room);
    }
    for (const { o, rooms: rs } of groups.values()) {
      this.request(this.subscribeFrame(rs, o)).catch((e) => this.emit('frame_error', { error: e.message, code: e.code }));
    }
  }

  subscribeFrame(rooms, o = {}) {
    return this.withSince({ type: 'subscribe', rooms, ...o }, rooms);
  }

  /** Adds since/epoch for the rooms we have seqs of (resume, docs/protocol.md). */
  withSince(req, rooms) {
    if (this.opts.resume) {
      const since = {};
      for (const r of rooms) if (this.seqs.has(r)) since[r] = this.seqs.get(r);
      if (Object.keys(since).length && this.epoch != null) {
        req.since = since;
        req.epoch = this.epoch;
      }
    }
    return req;
  }

  // ---- heartbeat watchdog ---------------------------------------------------------------

  heartbeatTimeout() {
    if (this.opts.heartbeatTimeout != null) return this.opts.heartbeatTimeout;
    const iv = this.welcome && this.welcome.heartbeat_interval_ms;
    if (!iv) return 0;
    return Math.max(this.opts.heartbeatMinTimeout, iv * this.opts.heartbeatMisses);
  }

  armWatchdog() {
    const ms = this.gotWelcome ? this.heartbeatTimeout() : 0;
    if (!ms) return;
    const ws = this.ws;
    // Re-arming on every frame would cost a timer per message; stamp and check instead.
    this.watchdogDeadline = this.opts.now() + ms;
    if (this.timers.watchdog) return;
    const check = () => {
      this.timers.watchdog = null;
      if (this.ws !== ws) return;
      const left = this.watchdogDeadline - this.opts.now();
      if (left > 0) { this.timers.watchdog = setTimeout(check, left); return; }
      this.emit('dead', { silentMs: ms, lastMessageAt: this.stats.lastMessageAt });
      this.drop(ws, 'heartbeat timeout');
    };
    this.timers.watchdog = setTimeout(check, ms);
  }

  // ---- outgoing -------------------------------------------------------------------------

  /** Sends one frame (object → JSON). Returns false when not connected. */
  send(obj) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    return true;
  }

  /** Sends a frame with an id and resolves with the reply carrying the same id; rejects with
   *  a TelebridgeError whose code is the bridge's error code, "timeout", "disconnected",
   *  "not_connected" or "closed". */
  request(obj, { timeout = this.opts.requestTimeout } = {}) {
    const id = obj.id != null ? String(obj.id) : `c${this.nextId++}`;
    const frame = { ...obj, id };
    return new Promise((resolve, reject) => {
      if (!this.send(frame)) {
        reject(new TelebridgeError('not_connected', 'not connected'));
        return;
      }
      const timer = timeout > 0 ? setTimeout(() => {
        this.pending.delete(id);
        reject(new TelebridgeError('timeout', `no reply to ${obj.type} within ${timeout} ms`));
      }, timeout) : null;
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  settle(f) {
    const p = this.pending.get(String(f.id));
    this.pending.delete(String(f.id));
    clearTimeout(p.timer);
    if (f.type === 'error') p.reject(new TelebridgeError(f.code || 'error', f.message, f));
    else p.resolve(f);
  }

  failPending(code, msg) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new TelebridgeError(code, msg));
      this.pending.delete(id);
    }
  }

  /** Round trip to the bridge in ms (also kept in stats.rttMs). */
  async ping(opts) {
    const t0 = this.opts.now();
    await this.request({ type: 'ping' }, opts);
    const rtt = this.opts.now() - t0;
    this.stats.rttMs = rtt;
    return rtt;
  }

  /** Subscribes to rooms (endpoints with client_subscriptions). options: {max_rate, fields}.
   *  Remembered: sent again, with since/epoch, after every reconnect. */
  subscribe(rooms, options = {}) {
    rooms = [].concat(rooms);
    for (const r of rooms) this.subscriptions.set(r, options);
    if (this.state !== 'open') return Promise.resolve(null); // sent on connect
    return this.request(this.subscribeFrame(rooms, options));
  }

  unsubscribe(rooms) {
    rooms = [].concat(rooms);
    for (const r of rooms) { this.subscriptions.delete(r); this.seqs.delete(r); }
    if (this.state !== 'open') return Promise.resolve(null);
    return this.request({ type: 'unsubscribe', rooms });
  }

  /** Joins a race session (any endpoint): resolves with session_joined; the session's setup
   *  and latest telemetry follow. Remembered and re-joined (with since) after reconnects. */
  async joinSession(sessionId, options = {}, opts) {
    const s = { options, room: this.sessions.get(sessionId)?.room };
    this.sessions.set(sessionId, s);
    if (this.state !== 'open') return null;
    try {
      const r = await this.request(this.withSince({ type: 'join_session', session_id: sessionId, ...options }, s.room ? [s.room] : []), opts);
      if (r.room) s.room = r.room;
      return r;
    } catch (e) {
      if (e.code !== 'timeout' && e.code !== 'disconnected') this.sessions.delete(sessionId);
      throw e;
    }
  }

  leaveSession(sessionId, opts) {
    const s = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    if (s && s.room) this.seqs.delete(s.room);
    if (this.state !== 'open') return Promise.resolve(null);
    return this.request({ type: 'leave_session', session_id: sessionId }, opts);
  }

  /** Acknowledges an alert. by: optional user name; the bridge accepts it only when it equals
   *  the connection's identity (with a token, leave it out: the token's subject is used). */
  ackAlert(alertId, { by, ...opts } = {}) {
    const req = { type: 'ack_alert', alert_id: String(alertId) };
    if (by != null) req.by = String(by);
    return this.request(req, opts);
  }

  /** Publishes to MQTT through one of the endpoint's `publish` rules (docs/uplink.md):
   *  sends {"type": type, "id", "data", "retain"?} and resolves with the bridge's
   *  `published` frame ({topic, id}); rejects with a TelebridgeError carrying the bridge's
   *  code (not_allowed, bad_field, too_large, rate_limited, broker_unavailable, ...),
   *  "timeout" when no answer came within opts.timeout, or "disconnected" / "not_connected".
   *  For a rule with `reply` use command() instead: its answer is a `reply`, not `published`. */
  publish(type, data = {}, { retain, ...opts } = {}) {
    if (typeof type !== 'string' || !type) return Promise.reject(new TypeError('publish: type must be a non-empty string'));
    if (!isPlainObject(data)) return Promise.reject(new TypeError('publish: data must be an object'));
    const frame = { type, data };
    if (retain != null) frame.retain = !!retain;
    return this.request(frame, opts);
  }

  /** Sends a command to a vehicle and resolves with its answer's `data` (the `reply` frame's
   *  payload, an object or a string). Rejects with a TelebridgeError: the bridge's code
   *  ("timeout" when the vehicle did not answer within the rule's reply.timeout,
   *  "not_allowed", "bad_field", "rate_limited", "too_many_pending", ...), "timeout" when
   *  nothing came within opts.timeout (default: commandTimeout), "disconnected" when the
   *  connection is lost first (the command may still have reached the vehicle), or
   *  "wrong_vehicle" (nothing sent) when the endpoint's path names another vehicle.
   *  vehicle: on an endpoint whose path captures {vehicle_id} (the example's
   *  /ws/control/{vehicle_id}/{user_id}) it must be that vehicle (or null) and is not sent;
   *  elsewhere a non-null vehicle is sent as data.vehicle_id, for rules whose topic uses it.
   *  opts.type: the publish type (default "command"). */
  async command(vehicle, command, args, { type = 'command', timeout = this.opts.commandTimeout } = {}) {
    if (typeof command !== 'string' || !command) throw new TypeError('command: command must be a non-empty string');
    const data = { command };
    if (args !== undefined) data.args = args;
    if (vehicle != null) {
      const onPath = this.pathCaptures().vehicle_id;
      if (onPath == null) data.vehicle_id = String(vehicle);
      else if (onPath !== String(vehicle) && this.pathCaptures(true).vehicle_id !== String(vehicle))
        throw new TelebridgeError('wrong_vehicle', `this connection commands ${onPath}, not ${vehicle}`);
    }
    const f = await this.request({ type, data }, { timeout });
    if (f.type !== 'reply') throw new TelebridgeError('no_reply', `${type} answered with ${f.type}, not reply (the rule has no reply)`, f);
    return f.data;
  }

  /** The path captures of the open connection ({vehicle_id: "v1", ...}), read from the
   *  welcome's endpoint template and path (URL-decoded unless raw); {} before a welcome. */
  pathCaptures(raw = false) {
    const w = this.welcome || {};
    if (typeof w.endpoint !== 'string' || typeof w.path !== 'string') return {};
    const names = w.endpoint.split('/'), parts = w.path.split('/'), out = {};
    if (names.length !== parts.length) return {};
    names.forEach((n, i) => {
      const m = /^\{(\w+)\}$/.exec(n);
      if (!m) return;
      try { out[m[1]] = raw ? parts[i] : decodeURIComponent(parts[i]); } catch { out[m[1]] = parts[i]; }
    });
    return out;
  }

  /** Fetches a room's history (endpoints with client_subscriptions): subscribes with
   *  since = 0 so the bridge replays what it keeps (routes with `history: N`), and resolves
   *  with those frames, oldest first, once the last has arrived. When the history does not
   *  reach back that far the bridge answers with a resync carrying the room's seq, then the
   *  room's state; the request is repeated (after an unsubscribe) from a later seq: first
   *  just past the newest state frame older than the room's seq (a message of a route
   *  without history, such as a setup, breaks every replay that spans it), at most `max`
   *  back, then halving the distance, up to `tries` attempts in all. What cannot be replayed
   *  is not invented: the result may be short or empty. The subscription stays open for live
   *  frames; unsubscribe() when done. Frames arrive through on() as usual, too. */
  async history(room, { max = 200, timeout = this.opts.requestTimeout, tries = 5 } = {}) {
    if (this.state !== 'open' || this.epoch == null) throw new TelebridgeError('not_connected', 'not connected');
    const seqs = [];
    const off = this.on('message', (f) => { if (f.room === room && typeof f.seq === 'number' && f.type !== 'resync') seqs.push(f.seq); });
    try {
      let from = 0;
      for (let n = 1; ; n++) {
        const mark = seqs.length;
        const got = await this.replayFrom(room, from, timeout);
        if (got.frames) return got.frames;
        const top = got.resyncSeq;
        if (top == null || n >= tries) return [];
        await this.unsubscribe(room);   // its reply follows the room's state on the wire
        const older = seqs.slice(mark).filter((q) => q < top);
        const floor = Math.max(0, top - max);
        from = n === 1 && older.length ? Math.max(floor, ...older) : Math.max(floor, top - Math.floor((top - from) / 2));
        if (from >= top) return [];
      }
    } finally {
      off();
    }
  }

  /** One subscribe with since {room: from}: {frames} of the replay, or {resyncSeq}. The
   *  reply precedes the replay on the wire; both are read in one handler, synchronously,
   *  because several frames can be dispatched before a promise callback runs. */
  replayFrom(room, from, timeout) {
    return new Promise((resolve, reject) => {
      const id = `h${this.nextId++}`;
      const frames = [];
      let want = null, timer = null;
      const done = (v, err) => { off(); clearTimeout(timer); if (err) reject(err); else resolve(v); };
      const off = this.on('message', (f) => {
        if (f.id != null && String(f.id) === id) {
          if (f.type === 'error') return done(null, new TelebridgeError(f.code || 'error', f.message, f));
          const no = Array.isArray(f.rejected) && f.rejected.find((r) => r && r.room === room);
          if (no) { this.subscriptions.delete(room); return done(null, new TelebridgeError(no.code || 'rejected', `subscribe to ${room} rejected: ${no.code}`, f)); }
          const n = f.resumed && f.resumed[room];
          if (n === 0) return done({ frames: [] });
          if (Number.isInteger(n) && n > 0) want = n;
          return;
        }
        if (f.room !== room) return;
        if (f.type === 'resync') return done({ resyncSeq: typeof f.seq === 'number' ? f.seq : null });
        if (want != null && typeof f.seq === 'number') { frames.push(f); if (frames.length >= want) done({ frames }); }
      });
      timer = setTimeout(() => done(null, new TelebridgeError('timeout', `history of ${room} not complete within ${timeout} ms`)), timeout);
      this.subscriptions.set(room, {});
      // Frames of an earlier subscription (the state after a resync) may have set the room's
      // seq beyond what the replay starts with: forget it, or the replay would be dropped
      // as duplicates. Everything of that subscription arrived before its unsubscribe reply.
      this.seqs.delete(room);
      if (!this.send({ type: 'subscribe', id, rooms: [room], since: { [room]: from }, epoch: this.epoch }))
        done(null, new TelebridgeError('not_connected', 'not connected'));
    });
  }

  // ---- timers ---------------------------------------------------------------------------

  armTimer(name, ms, fn) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => { this.timers[name] = null; fn(); }, ms);
  }

  clearTimer(name) {
    if (this.timers[name]) clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }

  clearAllTimers() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
  }
}

function detach(ws) {
  if (!ws) return;
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

function isPlainObject(v) {
  return v != null && typeof v === 'object' && !Array.isArray(v);
}

function resolveUrl(url) {
  if (/^wss?:\/\//.test(url)) return url;
  const loc = globalThis.location;
  if (!loc) throw new Error(`relative URL ${url} needs a page location; pass ws://host:port${url}`);
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${url.startsWith('/') ? '' : '/'}${url}`;
}
