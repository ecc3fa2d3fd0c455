/* ws_server: the libwebsockets context, the HTTP/WebSocket callback and the service loop.
 *
 * One protocol handles both plain HTTP (/health, /ws/status, /ws/connections, /metrics,
 * static dashboard files) and WebSocket connections. An upgrade request is checked
 * before it is accepted: unknown paths get HTTP 404, disallowed origins 403, and a full
 * server or endpoint 503, so nothing is accepted and then left silent. Client frames
 * are reassembled up to max_message_bytes. The service loop also drains the MQTT
 * hand-off queue whenever the MQTT thread wakes it. Service thread only (the main
 * thread after start-up). */
#ifndef TB_WS_SERVER_H
#define TB_WS_SERVER_H

struct bridge;

/* Creates the context and starts listening; 0 or -1 (logged). */
int ws_server_start(struct bridge *br);
/* Runs until a stop is requested and connections are closed (or 3 s have passed). */
int ws_server_run(struct bridge *br);
void ws_server_destroy(struct bridge *br);
/* "libev" or "poll": the event loop lws runs on (for /health). */
const char *ws_server_event_loop(void);
/* Service thread: runs bridge_process_mqtt again right after this round of socket
 * events (used to continue a large MQTT backlog between writes). */
void ws_server_continue_soon(struct bridge *br);
/* Async-signal-safe wake-up of the service loop (also used by the MQTT thread). */
void ws_server_wake(void *br);

#endif
