// Types of telebridge-client (hand-written; the source is plain JavaScript). Checked by
// `npm run typecheck` (tsc --strict on example/example.ts).

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
export declare const STATES: readonly ClientState[];

/** A frame from the bridge (docs/protocol.md). Routed frames carry room, seq, topic, data. */
export interface Frame {
  type: string;
  ts?: number;
  id?: string | number;
  room?: string;
  seq?: number;
  topic?: string;
  data?: any;
  code?: string;
  message?: string;
  resumed?: Record<string, number>;
  [key: string]: unknown;
}

export interface WelcomeData {
  epoch?: string;
  heartbeat_interval_ms?: number;
  client_subscriptions?: boolean;
  broker_connected?: boolean;
  /** The endpoint's path template, e.g. "/ws/control/{vehicle_id}/{user_id}". */
  endpoint?: string;
  /** The path this connection opened, e.g. "/ws/control/v1/alice". */
  path?: string;
  [key: string]: unknown;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientOptions {
  /** WebSocket implementation (Node: the `ws` package); default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor | (new (url: string, protocols?: string | string[]) => any);
  reconnect?: boolean;
  initialDelay?: number;
  maxDelay?: number;
  factor?: number;
  jitter?: number;
  stableAfter?: number;
  requestTimeout?: number;
  /** ms before command() rejects with "timeout" (default 10000). */
  commandTimeout?: number;
  heartbeatMisses?: number;
  heartbeatTimeout?: number | null;
  heartbeatMinTimeout?: number;
  connectTimeout?: number;
  resume?: boolean;
  dedupe?: boolean;
  subscribeRooms?: string[];
  /** Access token; sent as chosen by tokenIn. */
  token?: string | null;
  /** 'subprotocol' (default): Sec-WebSocket-Protocol ["bearer", token]; 'query': ?token=. */
  tokenIn?: 'subprotocol' | 'query';
  random?: () => number;
  now?: () => number;
}

export interface SubscribeOptions {
  max_rate?: number;
  fields?: string[];
}

export interface RequestOptions {
  timeout?: number;
}

export interface PublishOptions extends RequestOptions {
  /** Ask for a retained MQTT message; refused (not_allowed) unless the rule allows it. */
  retain?: boolean;
}

export interface CommandOptions {
  /** ms to wait for the reply (default: the client's commandTimeout). */
  timeout?: number;
  /** The publish type of the endpoint's command rule (default "command"). */
  type?: string;
}

/** The `published` frame that answers a publish with an id. */
export interface PublishedFrame extends Frame {
  type: 'published';
  topic: string;
}

export interface ClientStats {
  messages: number;
  bytes: number;
  reconnects: number;
  lastMessageAt: number;
  /** Smoothed bridge-to-client delay of live frames (replays and join state excluded), ms. */
  lagMs: number | null;
  rttMs: number | null;
}

export interface Refusal {
  /** WebSocket close code: 4401 (no/invalid/expired token) or 4403 (not permitted). */
  close: number;
  code: 'unauthorized' | 'forbidden' | string;
  message: string;
}

export interface ClientEvents {
  state: { state: ClientState; prev: ClientState; attempt: number; delay?: number; code?: number; reason?: string };
  open: { welcome: WelcomeData; reconnected: boolean };
  close: { code: number; reason: string; willReconnect: boolean };
  reconnect: { attempt: number; delay: number; code: number; reason: string };
  resync: Frame | { reason: 'epoch'; rooms: string[]; prevEpoch: string; epoch: string; local: true };
  gap: { room: string; from: number; to: number; missed: number };
  dead: { silentMs: number; lastMessageAt: number };
  refused: Refusal;
  message: Frame;
  frame_error: { data?: string; error: string; code?: string };
}

export declare class TelebridgeError extends Error {
  constructor(code: string, message?: string, frame?: Frame);
  /** The bridge's error code, or timeout | disconnected | not_connected | closed (and, from
   *  command(), wrong_vehicle | no_reply). */
  code: string;
  frame?: Frame;
}

export declare class TelebridgeClient {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  state: ClientState;
  welcome: WelcomeData | null;
  epoch: string | null;
  stats: ClientStats;
  /** Set when the bridge refused the token (close 4401/4403); the client stops reconnecting. */
  refusal: Refusal | null;
  lastHeartbeat: Record<string, unknown> | null;

  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K], client: TelebridgeClient) => void): () => void;
  on(type: string, fn: (frame: Frame, client: TelebridgeClient) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
  once<K extends keyof ClientEvents>(type: K, pred?: (ev: ClientEvents[K]) => boolean, timeout?: number): Promise<ClientEvents[K]>;
  once(type: string, pred?: (frame: Frame) => boolean, timeout?: number): Promise<Frame>;

  connect(): this;
  close(code?: number, reason?: string): void;
  /** Token for the next (re)connect. */
  setToken(token: string | null): void;
  /** The endpoint URL plus since/epoch for its own rooms (resume on reconnect). */
  resumeUrl(): string;
  /** Sends {"type":"refresh","token"} on the open connection (endpoints that announce auth_expiring). */
  refreshToken(token: string): boolean;
  send(frame: object | string): boolean;
  request(frame: { type: string; id?: string | number; [key: string]: unknown }, opts?: RequestOptions): Promise<Frame>;
  ping(opts?: RequestOptions): Promise<number>;
  subscribe(rooms: string | string[], options?: SubscribeOptions): Promise<Frame | null>;
  unsubscribe(rooms: string | string[]): Promise<Frame | null>;
  joinSession(sessionId: string, options?: SubscribeOptions, opts?: RequestOptions): Promise<Frame | null>;
  leaveSession(sessionId: string, opts?: RequestOptions): Promise<Frame | null>;
  ackAlert(alertId: string, opts?: RequestOptions & { by?: string }): Promise<Frame>;
  /** Publishes through one of the endpoint's `publish` rules; resolves with `published`,
   *  rejects with a TelebridgeError (not_allowed, bad_field, too_large, rate_limited, ...). */
  publish(type: string, data?: Record<string, unknown>, opts?: PublishOptions): Promise<PublishedFrame>;
  /** Sends a command and resolves with the vehicle's answer (the `reply` frame's data).
   *  Rejects with a TelebridgeError: the bridge's code (timeout, not_allowed, rate_limited,
   *  too_many_pending, ...), timeout, disconnected, closed, not_connected, wrong_vehicle
   *  (the endpoint's path names another vehicle; nothing sent) or no_reply. */
  command(vehicle: string | null, command: string, args?: unknown, opts?: CommandOptions): Promise<unknown>;
  /** Path captures of the open connection from its welcome, e.g. {vehicle_id: "v1"}. */
  pathCaptures(raw?: boolean): Record<string, string>;
  /** The room's kept history (routes with `history: N`), oldest first; subscribes to the room. */
  history(room: string, opts?: { max?: number; timeout?: number }): Promise<Frame[]>;
  backoffDelay(attempt: number): number;
}
