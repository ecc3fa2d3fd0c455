/* ws_server: the libwebsockets context, the HTTP/WebSocket callback and the service loop.
 *
 * One protocol handles both plain HTTP (/health, /ws/status, /ws/connections, /metrics,
 * static dashboard files) and WebSocket connections. An upgrade request is checked
 * before it is accepted: unknown paths get HTTP 404, disallowed origins 403, and a full
 * server or endpoint 503, so nothing is accepted and then left silent. Client frames
 * are reassembled up to max_message_bytes. The service loop also drains the MQTT
 * hand-off queue whenever the MQTT thread wakes it, and runs the tick (bridge timers,
 * reload debounce, the first broker connection) every 250 ms. Its state is struct
 * ws_server (the lws context's user data). Service thread only (the main thread after
 * start-up), except ws_server_wake. */
#ifndef TB_WS_SERVER_H
#define TB_WS_SERVER_H

struct bridge;
struct mqtt_client;
struct reload;
struct ws_server;

/* Creates the context, starts the writer threads and listens; NULL (logged) on failure.
 * 'rl' (may be NULL) is polled on wake-ups and ticks and reported by /health. */
struct ws_server *ws_server_start(struct bridge *br, struct reload *rl);
/* The broker connection, once it exists: its first-connect retries run from the tick. */
void ws_server_set_mqtt(struct ws_server *ws, struct mqtt_client *mqtt);
/* The reload watcher, once it exists (it wakes this loop, so it comes after). */
void ws_server_set_reload(struct ws_server *ws, struct reload *rl);
/* Runs until a stop is requested and connections are closed (or 3 s have passed). */
int ws_server_run(struct ws_server *ws);
/* Closes what is left (lws calls back for every connection) and frees; NULL is harmless. */
void ws_server_destroy(struct ws_server *ws);
/* "libev" or "poll": the event loop lws runs on (for /health). */
const char *ws_server_event_loop(const struct ws_server *ws);
/* Async-signal-safe wake-up of the service loop from any thread (lws_cancel_service
 * only writes to the event pipe); ud is the struct ws_server. NULL is harmless. */
void ws_server_wake(void *ud);

#endif
