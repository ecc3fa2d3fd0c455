// An in-process stand-in for a WebSocket and the bridge behind it, for tests that need
// exact control of what arrives when (no sockets, no timing). The test plays the bridge:
// FakeWS.last.receive(frame) delivers a frame, .serverClose(code, reason) ends it.
export class FakeWS {
  static all = [];
  static get last() { return FakeWS.all[FakeWS.all.length - 1]; }
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWS.all.push(this);
  }
  open() { this.readyState = 1; this.onopen && this.onopen({}); }
  receive(frame) { this.onmessage && this.onmessage({ data: JSON.stringify({ ts: Date.now(), ...frame }) }); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = '') { if (this.readyState === 3) return; this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
  serverClose(code, reason = '') { this.close(code, reason); }
}

export function welcome(ws, data = {}) {
  ws.open();
  ws.receive({ type: 'welcome', data: { epoch: 'e1', heartbeat_interval_ms: 0, client_subscriptions: true, ...data } });
}
