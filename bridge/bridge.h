/* bridge: the running daemon's state, owned by the service thread.
 *
 * One struct ties the current config snapshot, the room registry, the list of
 * WebSocket connections, the MQTT client and the counters together. Everything in it
 * is touched by the service thread (the libwebsockets event loop) only; the MQTT
 * thread talks to it solely through mqtt_client's hand-off queue, and signal handlers
 * only set 'stop_requested' / 'reload_requested' and wake the loop.
 *
 * Later modules (alerts, protocol extensions, reload) hang their state off this
 * struct and are called from the hooks below. */
#ifndef TB_BRIDGE_H
#define TB_BRIDGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "conn.h"
#include "room.h"
#include "sbuf.h"

struct mqtt_client;
struct mqtt_event;
struct lws_context;

struct bridge_stats {
    uint64_t received;     /* MQTT messages taken from the queue */
    uint64_t routed;       /* (message, room) deliveries serialized */
    uint64_t delivered;    /* frames written to WebSocket clients */
    uint64_t dropped;      /* frames not delivered (queue full on disconnect routes, drop policy) */
    uint64_t conflated;    /* frames superseded by a newer one for a slow client */
    uint64_t non_json;     /* payloads that were not JSON */
    uint64_t unrouted;     /* messages no route matched */
    uint64_t room_errors;  /* room templates that could not be rendered */
    uint64_t rooms_refused; /* rooms not created because server.max_rooms was reached */
};

struct bridge {
    struct tb_config *cfg;
    struct lws_context *ctx;
    struct mqtt_client *mqtt;
    struct room_registry *rooms;
    struct conn *conns;
    size_t n_conns;
    uint64_t next_conn_id;
    uint64_t epoch;                 /* changes on every start: clients detect restarts */
    uint64_t started_ms, started_wall_ms;
    struct bridge_stats st;
    bool broker_connected;
    uint64_t broker_changed_wall_ms;
    unsigned broker_disconnects;
    volatile sig_atomic_t stop_requested;
    volatile sig_atomic_t reload_requested;
    bool stopping;
    struct sbuf scratch;            /* envelope building */
    uint64_t next_heartbeat_ms;
    uint64_t next_sweep_ms;         /* history_ttl sweep */
    struct mqtt_event *backlog;     /* drained MQTT events not processed yet (batches) */
    void *alerts;                   /* alert runtime, when configured */
    void *protocol;                 /* struct protocol_state (protocol.h): patterns, sessions */
    void *reload;                   /* reload watcher and last result (reload.c) */
};

static inline void bridge_count_delivered(struct bridge *br, uint64_t n) { br->st.delivered += n; }
static inline void bridge_count_dropped(struct bridge *br, uint64_t n) { br->st.dropped += n; }
static inline void bridge_count_conflated(struct bridge *br, uint64_t n) { br->st.conflated += n; }

/* Frees a room that no longer has members or state. */
void bridge_room_maybe_release(struct bridge *br, struct room *room);

/* Delivers one message to a room (serializes once; keep_last/history/fan-out).
 * 'data' is JSON text (the payload, or a string literal for non-JSON payloads). */
void bridge_deliver(struct bridge *br, const char *room_name, const char *type, const char *topic,
                    const char *data, size_t data_len, const struct cfg_route *route);

/* Sends a server frame {"type":T,"ts":..,"data":<data>} to one connection or to every
 * member of a room. 'data' is a cJSON object (not consumed) or NULL. */
void bridge_send_control(struct bridge *br, struct conn *c, const char *type, const cJSON *data);
/* Builds {"type":T,"ts":..,<members of top>,"data":D} once, for sending to many
 * connections; NULL when out of memory. The caller drops its reference. */
struct tb_msg *bridge_build_control(struct bridge *br, const char *type, const cJSON *top,
                                    const cJSON *data);
/* Same, with the members of 'top' (may be NULL) as extra top-level fields (id, code, ...). */
void bridge_send_frame(struct bridge *br, struct conn *c, const char *type, const cJSON *top,
                       const cJSON *data);
void bridge_broadcast_room(struct bridge *br, const char *room, const char *type, const cJSON *data);

/* Joins a room (idempotent); NULL when out of memory. */
struct sub *bridge_join(struct bridge *br, struct conn *c, const char *room);

/* Sends what a connection gets on joining a room: its last value (keep_last) and its
 * active alerts. Used on connect and by client subscriptions. */
void bridge_send_room_state(struct bridge *br, struct conn *c, struct sub *s);

/* Called by ws_server for connection life cycle and client frames. */
void bridge_on_open(struct bridge *br, struct conn *c, const struct cfg_endpoint *ep,
                    const struct topic_match *m);
void bridge_on_close(struct bridge *br, struct conn *c);
void bridge_on_client_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary);

/* Authorization hook: may connection c (on endpoint ep) join 'room'? Today every
 * configured room is allowed; token / per-user rules plug in here. */
bool bridge_authorize_join(struct bridge *br, const struct conn *c, const char *room);

/* After a reload swapped br->cfg ('old' is still valid during the call): lets the
 * modules with config-derived state (alerts) follow. */
void bridge_on_config_changed(struct bridge *br, const struct tb_config *old);

/* Periodic work (heartbeats, timers), about every 250 ms. */
void bridge_tick(struct bridge *br, uint64_t now_ms);

/* Drains the MQTT queue; called on every wake-up of the service loop. */
void bridge_process_mqtt(struct bridge *br);

void bridge_free_backlog(struct bridge *br);

/* Counts of connections per endpoint index (array of cfg->n_endpoints). */
void bridge_endpoint_counts(const struct bridge *br, size_t *counts);

#endif
