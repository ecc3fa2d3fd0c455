/* bridge: the service layer. It owns the running daemon's state and does four things:
 * open and close connections, drain the MQTT hand-off queue, run the periodic tick, and
 * swap in a new configuration. Everything else is a feature below it (protocol,
 * subscribe, session, alert_runtime) or delivery (fanout, conn, writer).
 *
 * One MQTT message: bridge_process_mqtt takes it from the queue, asks session whether it
 * is a session request, asks router for its (route, room) deliveries and hands each to
 * fanout, then gives it to the alert runtime. Nothing below calls back up here.
 *
 * Threads: the service thread (the libwebsockets loop) owns all of it. The MQTT thread
 * talks to it only through mqtt_client's hand-off queue, signal handlers only set
 * 'stop_requested' / 'reload_requested' and wake the loop, and writer threads only
 * touch what writer.h says. */
#ifndef TB_BRIDGE_H
#define TB_BRIDGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "notify.h"
#include "protocol.h"
#include "router.h"
#include "stats.h"

struct alert_runtime;
struct gate_cred;
struct fanout;
struct mqtt_client;
struct mqtt_event;
struct room_registry;
struct session_registry;
struct subscriptions;
struct uplink_runtime;
struct writer;

/* Ingest latency: the payload's ts_ms (publisher's clock, ms since the epoch) to the
 * moment the bridge routes the message; a histogram with cumulative buckets. */
#define TB_LATENCY_BUCKETS 12
extern const double tb_latency_bounds_s[TB_LATENCY_BUCKETS];
struct tb_latency {
    uint64_t bucket[TB_LATENCY_BUCKETS];   /* observations <= bound (not cumulative here) */
    uint64_t count, over;                  /* all; above the last bound */
    double sum_s;
    uint64_t skipped;                      /* ts_ms in the future or older than a day */
};

struct bridge {
    struct tb_config *cfg;          /* the running snapshot (own reference) */
    struct room_registry *rooms;
    struct fanout *fan;
    struct writer *writer;
    struct pmd *pmd;                /* permessage-deflate: frames compressed once (pmd.h) */
    struct conn_env env;            /* shared by every connection: counters, rooms, writer */
    struct subscriptions *subs;
    struct session_registry *sessions;
    struct alert_runtime *alerts;   /* NULL until bridge_start_alerts (or out of memory) */
    struct uplink_runtime *uplink;  /* client publishes and their replies */
    struct membership *members;     /* sync marker, cluster; NULL until bridge_start_alerts */
    struct protocol proto;          /* the request handlers' view of the above */
    struct mqtt_client *mqtt;       /* NULL until bridge_start_alerts; not owned */
    struct lws_dll2_owner conns;    /* struct conn, linked by in_bridge */
    uint64_t next_conn_id;
    uint64_t epoch;                 /* changes on every start: clients detect restarts */
    uint64_t started_ms, started_wall_ms;
    struct tb_stats st;
    bool broker_connected;
    uint64_t broker_changed_wall_ms;
    unsigned broker_disconnects;
    volatile sig_atomic_t stop_requested;
    volatile sig_atomic_t reload_requested;
    bool stopping;
    uint64_t next_heartbeat_ms;
    uint64_t next_sweep_ms;         /* history_ttl sweep */
    uint64_t next_auth_check_ms;    /* token expiry and auth frame deadlines (gate.c) */
    struct mqtt_event *backlog;     /* drained MQTT events not processed yet (batches) */
    struct router_out routed;       /* the current message's deliveries (reused) */
    struct notify notify;           /* systemd readiness / watchdog (no-op outside systemd) */
    struct log_budget conn_log;     /* connect / disconnect / subscribe lines at info, bounded */
    uint64_t *route_deliveries;     /* per route of cfg ((message, room) deliveries); reset by a reload */
    size_t n_route_deliveries;
    struct tb_latency latency;      /* publish (payload ts_ms) to processing, for /metrics */
};

/* A bridge for 'cfg' (takes over the caller's reference, also on failure) with every
 * module but the MQTT client and the alert runtime; nothing is listening yet. NULL when
 * out of memory. */
struct bridge *bridge_new(struct tb_config *cfg, uint64_t epoch);
/* Closes what is left (connections, features) and frees everything; NULL is harmless.
 * mqtt is not freed (its owner stops it first: it wakes the service loop). */
void bridge_free(struct bridge *br);
/* Gives the bridge its broker connection (may be NULL: nothing is published) and starts
 * the alert runtime, which subscribes its topics through it. */
void bridge_start_alerts(struct bridge *br, struct mqtt_client *mqtt);

/* A WebSocket connection on 'path' was accepted: joins its endpoint's rooms and queues
 * the welcome frame and the rooms' state. NULL when the path matches no endpoint any
 * more (reloaded meanwhile) or when out of memory: the caller closes the socket. */
struct conn *bridge_open(struct bridge *br, struct lws *wsi, const char *path);
/* bridge_open with what the upgrade carried; any field may be NULL. */
struct bridge_open_args {
    const struct gate_cred *cred;   /* the credential (gate.h): a refused connection gets one
                                       error frame and a close, and joins nothing; one waiting
                                       for its 'auth' frame joins its rooms when it is accepted */
    const char *remote;             /* the client's address, for the log */
    const char *query;              /* the URL's arguments ("a=b&c=d", decoded): epoch=<e> with
                                       since=<seq> or since=<room>:<seq> resumes the endpoint's
                                       rooms instead of sending their state (docs/protocol.md,
                                       "Resume after reconnect"); a malformed since gets an
                                       error frame (bad_field) after welcome, its room its state */
};
struct conn *bridge_open_with(struct bridge *br, struct lws *wsi, const char *path, const struct bridge_open_args *a);
/* The connection is gone: frees it and everything it held. */
void bridge_close(struct bridge *br, struct conn *c);
/* Frames and bytes waiting in all connections' send queues, and the longest queue. */
struct bridge_queues {
    uint64_t frames, bytes;
    uint32_t max_frames;
};
void bridge_queue_depth(const struct bridge *br, struct bridge_queues *out);
void bridge_on_client_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary);

/* Drains up to one batch of MQTT events; true when more are waiting (the caller comes
 * back after the socket writes of this batch). */
bool bridge_process_mqtt(struct bridge *br);
/* Periodic work (heartbeats, alert timers, history expiry), about every 250 ms. */
void bridge_tick(struct bridge *br, uint64_t now_ms);

/* Swaps in a validated snapshot (takes over the reference): MQTT subscriptions follow,
 * every connection's endpoint rooms are recomputed (a connection whose endpoint is gone
 * is closed with TB_CLOSE_ENDPOINT_REMOVED), the features follow, and clients get a
 * "config_reloaded" frame. Rooms are not tied to the config: they keep their state. */
void bridge_apply_config(struct bridge *br, struct tb_config *next);

/* Close frames (1001) to every connection; no new ones are accepted. */
void bridge_begin_shutdown(struct bridge *br);

static inline size_t bridge_conn_count(const struct bridge *br) { return (size_t)br->conns.count; }
/* Counts of connections per endpoint index (array of cfg->n_endpoints). */
void bridge_endpoint_counts(const struct bridge *br, size_t *counts);

#endif
