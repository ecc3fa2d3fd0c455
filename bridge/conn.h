/* conn: one WebSocket connection's state and its bounded send queue.
 *
 * Outgoing frames are references to shared messages (msg.h) in a ring that grows on
 * demand up to the configured frame and byte bounds, so an idle connection holds
 * almost nothing. When the ring is full, the route's policy decides:
 *   conflate   - only the newest message per (room, topic) is kept waiting ('pending');
 *                pending messages enter the ring, in arrival order, as space frees up, so
 *                a slow client ends with the newest value of every vehicle in a shared
 *                room, and memory stays bounded (one pointer per topic of its rooms);
 *   disconnect - the connection is closed with TB_CLOSE_SLOW_CONSUMER (resync needed).
 * Queued frames are written coalesced (up to 64 KiB per write). Frames queued while an
 * MQTT batch is processed (conn_batch_begin/end) are written directly at the end of the
 * batch, without waiting for a writable event; anything that does not fit goes out on
 * writable events. Service thread only. */
#ifndef TB_CONN_H
#define TB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "msg.h"
#include "room.h"

/* Close codes (documented in docs/protocol.md). */
enum {
    TB_CLOSE_GOING_AWAY = 1001,       /* bridge shutting down */
    TB_CLOSE_POLICY = 1008,           /* repeated invalid frames */
    TB_CLOSE_TOO_BIG = 1009,          /* frame larger than max_message_bytes */
    TB_CLOSE_ENDPOINT_REMOVED = 4001, /* config reload removed this endpoint */
    TB_CLOSE_SLOW_CONSUMER = 4008,    /* send queue overflow on a 'disconnect' route */
    TB_CLOSE_IDLE = 4009,             /* silent past idle_timeout */
};

enum conn_enqueue_result { CONN_QUEUED, CONN_CONFLATED, CONN_DROPPED };

struct bridge;
struct pending;

struct conn {
    struct lws *wsi;
    struct bridge *br;
    uint64_t id;
    char *path;                   /* request path */
    int endpoint;                 /* index in the current config's endpoints */
    struct sub *subs;             /* this connection's subscriptions */
    struct tb_msg **q;            /* ring of queued frames */
    uint32_t q_cap, q_head, q_len;
    uint32_t max_frames;
    size_t q_bytes, max_bytes;
    struct pending *pending_head, *pending_tail;   /* FIFO of conflated messages */
    struct pending **pending_index;               /* hash of (sub, topic key) -> entry */
    uint32_t pending_buckets, pending_count;
    bool closing;
    bool peer_closed;             /* the client sent a close frame: write nothing more */
    bool flush_queued;            /* on the end-of-batch write list */
    int close_code;
    char *close_reason;           /* allocated by conn_close */
    struct conn *flush_next;      /* end-of-batch write list */
    struct conn *prev, *next;     /* the bridge's list of connections */
    uint64_t connected_ms, last_rx_ms;
    uint64_t sent, conflated, dropped;
    unsigned bad_frames;
    void *ext;                    /* per-connection state of later modules (protocol) */
};

struct conn *conn_new(struct bridge *br, struct lws *wsi, uint64_t id, size_t max_frames,
                      size_t max_bytes);
/* Unsubscribes everything and frees the queue and the struct; NULL is harmless. */
void conn_free(struct conn *c);

/* Queues a reference to m. 's' is the subscription it is for (NULL for control frames
 * such as welcome, pong, errors and heartbeats: those are dropped when the queue is full). */
enum conn_enqueue_result conn_enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate);
/* Queues a copy of a control frame built from text. */
enum conn_enqueue_result conn_send_text(struct conn *c, const char *text, size_t len);

/* Asks for a close frame with 'code' and 'reason' at the next writable event. */
void conn_close(struct conn *c, int code, const char *reason);

/* LWS_CALLBACK_SERVER_WRITEABLE; returns -1 when lws should close the connection. */
int conn_on_writable(struct conn *c);

/* Between these two, a connection whose queue becomes non-empty is put on a list instead
 * of asking lws for a writable event; conn_batch_end writes to every listed connection
 * directly (one coalesced write each), so one MQTT batch costs one send() per connection
 * and no poll() round. Service thread only; not nested. */
void conn_batch_begin(void);
void conn_batch_end(void);
/* Writer threads that share the end-of-batch writes with the service thread (conn.c);
 * with none, the service thread writes alone. Stop also frees the write list. */
int conn_writer_start(unsigned n);
unsigned conn_writer_count(void);
void conn_writer_stop(void);

/* Subscription management (membership + the connection's own list). */
struct sub *conn_subscribe(struct conn *c, struct room *room);
void conn_unsubscribe(struct conn *c, struct sub *s);
struct sub *conn_find_sub(struct conn *c, const char *room);

#endif
