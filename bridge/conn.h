/* conn: one WebSocket connection's state, its bounded send queue and conflation.
 *
 * Outgoing frames are references to shared messages (msg.h) in a ring that grows on
 * demand up to the configured frame and byte bounds, so an idle connection holds
 * almost nothing. When the ring is full, the route's policy decides:
 *   conflate   - only the newest message per (room, topic) is kept waiting ('pending');
 *                pending messages enter the ring, in arrival order, as space frees up, so
 *                a slow client ends with the newest value of every vehicle in a shared
 *                room, and memory stays bounded (one pointer per topic of its rooms);
 *   disconnect - the connection is closed with TB_CLOSE_SLOW_CONSUMER (resync needed).
 *
 * This module only queues. Writing is writer.c's: when a queue becomes non-empty, or a
 * close is asked for, conn calls the 'want_write' hook of its conn_env, and the writer
 * takes frames from the queue with conn_queue_* when the socket can take them. Nothing
 * here touches a socket, so the queue logic is tested without one.
 *
 * Threads: the service thread owns every field. During an end-of-batch write, writer
 * threads read the queued frames of the connections handed to them (conn_queue_frame,
 * q_len) while the service thread waits for them; nothing else runs then. */
#ifndef TB_CONN_H
#define TB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "throttle.h"
#include "msg.h"
#include "pmd.h"
#include "room.h"
#include "stats.h"

/* Close codes (documented in docs/protocol.md). */
enum {
    TB_CLOSE_GOING_AWAY = 1001,       /* bridge shutting down */
    TB_CLOSE_POLICY = 1008,           /* repeated invalid frames */
    TB_CLOSE_TOO_BIG = 1009,          /* frame larger than max_message_bytes */
    TB_CLOSE_ENDPOINT_REMOVED = 4001, /* config reload removed this endpoint */
    TB_CLOSE_SLOW_CONSUMER = 4008,    /* send queue overflow on a 'disconnect' route */
    TB_CLOSE_IDLE = 4009,             /* silent past idle_timeout */
    TB_CLOSE_UNAUTHORIZED = 4401,     /* no, invalid or expired token */
    TB_CLOSE_FORBIDDEN = 4403,        /* a valid identity, not permitted this endpoint */
};

enum conn_enqueue_result { CONN_QUEUED, CONN_CONFLATED, CONN_DROPPED };

/* What every connection shares: the counters, the room registry (a room a connection
 * leaves is freed when nothing keeps it) and the hook that gets the queue written. */
struct conn_env {
    struct tb_stats *st;
    struct room_registry *rooms;
    void (*want_write)(void *ud, struct conn *c);   /* queue non-empty, or close asked */
    void *ud;
    struct log_budget *log_budget;  /* connection events at info (conn_log_allowed); may be NULL */
    struct pmd *pmd;    /* compresses frames for permessage-deflate connections; NULL = none */
};

/* Connection events (open, close, subscribe) are logged at info, at most CONN_LOG_BURST
 * per CONN_LOG_WINDOW_MS; the rest are counted and summarized in one line. */
#define CONN_LOG_BURST 100
#define CONN_LOG_WINDOW_MS 60000
bool conn_log_allowed(const struct conn *c);

struct conn_waiting;
struct log_budget;      /* log.h */
struct conn_patterns;   /* subscribe.c: the client's room patterns */
struct conn_rate;       /* fanout.c: the max_rate timer */
struct tb_identity;     /* access.h: who the connection authenticated as */
struct conn_uplink;     /* uplink_runtime.c: publish rate buckets and pending requests */

struct conn {
    struct lws *wsi;              /* NULL in unit tests */
    const struct conn_env *env;
    uint64_t id;
    char *path;                   /* request path */
    char remote[48];              /* client address (INET6_ADDRSTRLEN fits) (behind trusted proxies: the forwarded one), "-" unknown */
    int endpoint;                 /* index in the current config's endpoints */
    unsigned bad_frames;
    struct sub *subs;             /* this connection's subscriptions */
    struct tb_msg **q;            /* ring of queued frames */
    uint32_t q_cap, q_head, q_len;
    uint32_t max_frames;
    size_t q_bytes, max_bytes;
    struct conn_waiting *waiting; /* conflated messages waiting for queue space (conn.c) */
    bool closing;
    bool peer_closed;             /* the client sent a close frame: write nothing more */
    bool deflate;                 /* negotiated permessage-deflate: data frames go compressed (pmd.h) */
    bool flush_queued;            /* on the writer's end-of-batch list */
    bool expiry_warned;           /* auth_expiring sent for the current token */
    bool flush_before_close;      /* the queue (an auth refusal's error frame) is written
                                     before the close frame (writer.c) */
    int close_code;
    char *close_reason;           /* allocated by conn_close */
    struct conn *flush_next;      /* the writer's end-of-batch list */
    struct lws_dll2 in_bridge;    /* the bridge's list of connections */
    uint64_t connected_ms, last_rx_ms;
    uint64_t sent, conflated, dropped;
    struct throttle_msg_guard *rx_limit; /* limits.client_rate; allocated on the first client frame */
    struct conn_patterns *patterns;   /* allocated on a first pattern subscription */
    struct conn_rate *rate;           /* allocated on a first rate-limited delivery */
    struct tb_identity *identity;     /* NULL = anonymous; gate.c owns and frees it */
    uint64_t auth_deadline_ms;        /* waiting for an 'auth' frame until then; 0 = not */
    struct conn_uplink *uplink;       /* allocated on a first publish */
    uint32_t n_snapping;              /* subscriptions with a keyed snapshot under way (at most) */
    uint32_t n_got_types;             /* entries of got_types in use */
    uint64_t got_msg;                 /* fanout: the MQTT message last delivered (delivery: once) */
    uint64_t got_types[2];            /* fanout: hashes of its types delivered so far (more
                                         types of one message than this: not deduplicated) */
    struct conn_profile *profile;     /* its endpoint's envelope profile; NULL = none (most) */
};

/* An endpoint's envelope profile, copied for each connection of that endpoint (a reload
 * may free the endpoint); allocated only where there is one, so that an idle connection
 * stays small. conn_free frees it. */
struct conn_profile {
    char ts_field[24];                /* envelope: the time field's name ("ts") */
    bool ts_iso;                      /* ... times written as ISO 8601 */
    char alert_time_field[24];        /* alerts' raised_at renamed, "" = as built */
    char status_ok[16];               /* heartbeat server_status instead of "ok", "" = as built */
};

struct conn *conn_new(const struct conn_env *env, struct lws *wsi, uint64_t id, size_t max_frames,
                      size_t max_bytes);
/* Unsubscribes everything and frees the queue and the struct; NULL is harmless. The
 * owners of 'patterns' and 'rate' free those first. */
void conn_free(struct conn *c);

/* Queues a reference to m. 's' is the subscription it is for (NULL for control frames
 * such as welcome, pong, errors and heartbeats: those are dropped when the queue is full).
 * A connection with an envelope profile (ts_field set) queues its own copy of m with the
 * time field renamed / reformatted (msg_retime): one allocation per frame, for those
 * connections only. */
enum conn_enqueue_result conn_enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate);
/* Queues a copy of a control frame built from text. */
enum conn_enqueue_result conn_send_text(struct conn *c, const char *text, size_t len);

/* The connection negotiated permessage-deflate: from now on its data frames are queued
 * compressed (pmd_frame), and so are those already queued or waiting (the welcome and
 * room state bridge_open queued before the caller could say so). */
void conn_set_deflate(struct conn *c);

/* Asks for a close frame with 'code' and 'reason' (the writer sends it). */
void conn_close(struct conn *c, int code, const char *reason);

/* ---- the writer's side of the queue ---- */
/* Frame i (0 = oldest) of the queue; i < q_len. Read-only: any thread (see above). */
static inline struct tb_msg *conn_queue_frame(const struct conn *c, uint32_t i)
{
    return c->q[(c->q_head + i) % c->q_cap];
}
/* The oldest frame; q_len > 0. */
static inline struct tb_msg *conn_queue_head(const struct conn *c) { return c->q[c->q_head]; }
/* Takes the oldest frame off the queue; the caller owns the reference. Service thread. */
static inline struct tb_msg *conn_queue_pop(struct conn *c)
{
    struct tb_msg *m = c->q[c->q_head];
    c->q_head = c->q_head + 1 == c->q_cap ? 0 : c->q_head + 1;
    c->q_len--;
    c->q_bytes -= m->len;
    return m;
}
/* Moves waiting (conflated) messages into the queue while there is room. */
void conn_admit_pending(struct conn *c);
/* Moves the next entries of keyed snapshots (room_snapshot_start; the caller counts the
 * subscription in n_snapping) into the queue while it is less than half full, in frames
 * and bytes: a snapshot of any size enters step by step as the client reads, never trips
 * the slow-client policy, and leaves half the queue to live frames. conn_admit_pending
 * calls it. */
void conn_pump_snapshots(struct conn *c);
/* Conflated messages waiting for queue space. */
uint32_t conn_pending_count(const struct conn *c);
/* Would a message of 'len' bytes for subscription s wait instead of entering the queue
 * (queue full, or s has conflated messages waiting ahead of it)? */
bool conn_would_wait(const struct conn *c, const struct sub *s, size_t len);
/* Anything left to write (queued, waiting or snapshot)? */
static inline bool conn_has_backlog(const struct conn *c)
{
    return c->q_len || conn_pending_count(c) || c->n_snapping;
}
/* Counts frames written (the connection's and the shared counters). */
void conn_count_sent(struct conn *c, uint64_t frames);

/* Subscription management (membership + the connection's own list). */
struct sub *conn_subscribe(struct conn *c, struct room *room);
void conn_unsubscribe(struct conn *c, struct sub *s);
struct sub *conn_find_sub(struct conn *c, const char *room);

#endif
