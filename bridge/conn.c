/* conn: per-connection send queue, conflation and coalesced writes. Service thread only. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"
#include "shape.h"

#define WRITE_BATCH_BYTES (64 * 1024)
/* Writes per writable event before yielding to other connections. */
#define WRITES_PER_EVENT 4

/* Connections that got frames during the current MQTT batch (conn_batch_begin/end),
 * in the order they got them. */
static bool batching;
static struct conn *flush_head, *flush_tail;

struct conn *conn_new(struct bridge *br, struct lws *wsi, uint64_t id, size_t max_frames,
                      size_t max_bytes)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->br = br;
    c->wsi = wsi;
    c->id = id;
    c->endpoint = -1;
    c->max_frames = max_frames ? (max_frames > UINT32_MAX ? UINT32_MAX : (uint32_t)max_frames) : 1;
    c->max_bytes = max_bytes;
    c->connected_ms = c->last_rx_ms = tb_now_ms();
    return c;
}

/* Conflated messages a connection may hold, per frame of its queue bound: beyond this
 * many distinct topics waiting, the client is closed (4008) rather than grow memory. */
#define PENDING_PER_QUEUE_FRAME 16

/* A conflated message waiting for queue space: the newest of its (sub, topic). */
struct pending {
    struct sub *sub;
    uint64_t key;
    struct tb_msg *msg;
    struct pending *next, *prev; /* FIFO, in order of the last update (= room seq order) */
    struct pending *hnext;    /* index chain */
};

static size_t pending_slot(const struct conn *c, const struct sub *s, uint64_t key)
{
    uint64_t h = key ^ ((uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull);
    return (size_t)(h ^ (h >> 29)) & (c->pending_buckets - 1);
}

static struct pending *pending_find(const struct conn *c, const struct sub *s, uint64_t key)
{
    if (!s->n_pending || !c->pending_buckets)
        return NULL;
    struct pending *p = c->pending_index[pending_slot(c, s, key)];
    while (p && !(p->sub == s && p->key == key))
        p = p->hnext;
    return p;
}

static void pending_index_remove(struct conn *c, struct pending *p)
{
    struct pending **pp = &c->pending_index[pending_slot(c, p->sub, p->key)];
    while (*pp && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = p->hnext;
}

static bool pending_index_grow(struct conn *c)
{
    uint32_t n = c->pending_buckets ? c->pending_buckets * 2 : 16;
    struct pending **idx = calloc(n, sizeof *idx);
    if (!idx)
        return false;
    free(c->pending_index);
    c->pending_index = idx;
    c->pending_buckets = n;
    for (struct pending *p = c->pending_head; p; p = p->next) {
        size_t k = pending_slot(c, p->sub, p->key);
        p->hnext = idx[k];
        idx[k] = p;
    }
    return true;
}

static void fifo_append(struct conn *c, struct pending *p)
{
    p->next = NULL;
    p->prev = c->pending_tail;
    if (c->pending_tail)
        c->pending_tail->next = p;
    else
        c->pending_head = p;
    c->pending_tail = p;
}

static void fifo_unlink(struct conn *c, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->pending_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        c->pending_tail = p->prev;
    p->next = p->prev = NULL;
}

static bool pending_add(struct conn *c, struct sub *s, struct tb_msg *m)
{
    if (c->pending_count >= c->pending_buckets && !pending_index_grow(c))
        return false;
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return false;
    p->sub = s;
    p->key = m->key;
    p->msg = msg_ref(m);
    size_t k = pending_slot(c, s, p->key);
    p->hnext = c->pending_index[k];
    c->pending_index[k] = p;
    fifo_append(c, p);
    c->pending_count++;
    s->n_pending++;
    return true;
}

/* Unlinks the FIFO head (the caller owns its message reference afterwards). */
static struct tb_msg *pending_pop(struct conn *c)
{
    struct pending *p = c->pending_head;
    struct tb_msg *m = p->msg;
    pending_index_remove(c, p);
    fifo_unlink(c, p);
    c->pending_count--;
    p->sub->n_pending--;
    free(p);
    return m;
}

/* Drops every pending message of one subscription (it is going away). */
static void pending_drop_sub(struct conn *c, struct sub *s)
{
    for (struct pending *p = c->pending_head, *next; p && s->n_pending; p = next) {
        next = p->next;
        if (p->sub != s)
            continue;
        pending_index_remove(c, p);
        fifo_unlink(c, p);
        c->pending_count--;
        s->n_pending--;
        msg_unref(p->msg);
        free(p);
    }
}

void conn_unsubscribe(struct conn *c, struct sub *s)
{
    if (s->n_pending)
        pending_drop_sub(c, s);
    struct sub **pp = &c->subs;
    while (*pp && *pp != s)
        pp = &(*pp)->conn_next;
    if (*pp)
        *pp = s->conn_next;
    struct room *room = s->room;
    room_leave(s);
    msg_unref(s->held);
    shape_unref(s->shape);
    free(s);
    bridge_room_maybe_release(c->br, room);
}

struct sub *conn_subscribe(struct conn *c, struct room *room)
{
    struct sub *s = room_join(room, c);
    if (!s)
        return NULL;
    s->conn_next = c->subs;
    c->subs = s;
    return s;
}

struct sub *conn_find_sub(struct conn *c, const char *room)
{
    for (struct sub *s = c->subs; s; s = s->conn_next)
        if (strcmp(s->room->name, room) == 0)
            return s;
    return NULL;
}

static void flush_list_remove(struct conn *c)
{
    struct conn *prev = NULL;
    for (struct conn *it = flush_head; it; prev = it, it = it->flush_next) {
        if (it != c)
            continue;
        if (prev)
            prev->flush_next = c->flush_next;
        else
            flush_head = c->flush_next;
        if (flush_tail == c)
            flush_tail = prev;
        break;
    }
    c->flush_next = NULL;
    c->flush_queued = false;
}

void conn_free(struct conn *c)
{
    if (!c)
        return;
    if (c->flush_queued)
        flush_list_remove(c);
    while (c->subs)
        conn_unsubscribe(c, c->subs);
    for (uint32_t i = 0; i < c->q_len; i++)
        msg_unref(c->q[(c->q_head + i) % c->q_cap]);
    free(c->q);
    free(c->pending_index);
    free(c->close_reason);
    free(c->path);
    free(c);
}

static bool queue_full(const struct conn *c, size_t len)
{
    return c->q_len >= c->max_frames || (c->q_len && c->q_bytes + len > c->max_bytes);
}

/* Grows the ring (doubling, up to max_frames); false when out of memory. */
static bool queue_grow(struct conn *c)
{
    uint32_t cap = c->q_cap ? (c->q_cap > UINT32_MAX / 2 ? UINT32_MAX : c->q_cap * 2) : 4;
    if (cap > c->max_frames)
        cap = c->max_frames;
    struct tb_msg **q = malloc(cap * sizeof *q);
    if (!q)
        return false;
    for (uint32_t i = 0; i < c->q_len; i++)
        q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_cap = cap;
    c->q_head = 0;
    return true;
}

/* The queue became non-empty: write at the end of the batch, or at the next writable
 * event outside a batch. */
static void want_write(struct conn *c)
{
    if (!c->wsi)
        return;
    if (!batching) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (c->flush_queued)
        return;
    c->flush_queued = true;
    c->flush_next = NULL;
    if (flush_tail)
        flush_tail->flush_next = c;
    else
        flush_head = c;
    flush_tail = c;
}

static bool queue_push(struct conn *c, struct tb_msg *m)
{
    if (c->q_len == c->q_cap && !queue_grow(c))
        return false;
    c->q[(c->q_head + c->q_len) % c->q_cap] = msg_ref(m);
    c->q_len++;
    c->q_bytes += m->len;
    if (c->q_len == 1)
        want_write(c);
    return true;
}

enum conn_enqueue_result conn_enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate)
{
    if (c->closing)
        return CONN_DROPPED;
    struct pending *p = s && m->key ? pending_find(c, s, m->key) : NULL;
    if (p && !conflate) {
        /* A message of a 'disconnect' route behind a conflated value of the same topic:
         * it can neither take the pending slot (the next conflated value would silently
         * replace it) nor jump ahead of it (order). The client must resync. */
        c->dropped++;
        bridge_count_dropped(c->br, 1);
        conn_close(c, TB_CLOSE_SLOW_CONSUMER, "slow consumer: send queue full, resync");
        return CONN_DROPPED;
    }
    if (p) {
        /* The older waiting value of this topic is superseded; the entry moves to the end
         * of the line, so waiting messages stay in room seq order. */
        msg_unref(p->msg);
        p->msg = msg_ref(m);
        fifo_unlink(c, p);
        fifo_append(c, p);
        c->conflated++;
        bridge_count_conflated(c->br, 1);
        return CONN_CONFLATED;
    }
    /* While a room has messages waiting, its newer messages wait behind them (per-room
     * order), even when a smaller one would fit in the queue. */
    bool behind = s && s->n_pending;
    if (!behind && !queue_full(c, m->len) && queue_push(c, m))
        return CONN_QUEUED;
    if (s && conflate && m->key && c->pending_count < c->max_frames * PENDING_PER_QUEUE_FRAME &&
        pending_add(c, s, m)) {
        c->conflated++;
        bridge_count_conflated(c->br, 1);
        return CONN_CONFLATED;
    }
    c->dropped++;
    bridge_count_dropped(c->br, 1);
    if (s)
        conn_close(c, TB_CLOSE_SLOW_CONSUMER, "slow consumer: send queue full, resync");
    return CONN_DROPPED;
}

enum conn_enqueue_result conn_send_text(struct conn *c, const char *text, size_t len)
{
    struct tb_msg *m = msg_new(text, len);
    if (!m)
        return CONN_DROPPED;
    enum conn_enqueue_result r = conn_enqueue(c, m, NULL, false);
    msg_unref(m);
    return r;
}

void conn_close(struct conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = strdup(reason ? reason : "");
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* Moves pending (conflated) messages into the ring while there is room. */
static void admit_pending(struct conn *c)
{
    while (c->pending_head && !queue_full(c, c->pending_head->msg->len)) {
        if (c->q_len == c->q_cap && !queue_grow(c))
            return;
        struct tb_msg *m = pending_pop(c);
        queue_push(c, m);
        msg_unref(m);
    }
}

static struct tb_msg *queue_pop(struct conn *c)
{
    struct tb_msg *m = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    c->q_bytes -= m->len;
    return m;
}

/* Writes one frame as it is (already framed in its headroom): no copy. */
static int write_single(struct conn *c)
{
    struct tb_msg *m = queue_pop(c);
    /* LWS_WRITE_HTTP sends the bytes unchanged: the frame carries its own header. */
    int n = lws_write(c->wsi, msg_frame(m), msg_frame_len(m), LWS_WRITE_HTTP);
    msg_unref(m);
    if (n < 0)
        return -1;
    c->sent++;
    bridge_count_delivered(c->br, 1);
    return 0;
}

/* Coalesces queued frames (already framed in their headroom) into one raw write. The copy
 * (~0.1 us per 400-byte frame) is cheap next to the send() it saves. */
static int write_batch(struct conn *c)
{
    static unsigned char scratch[WRITE_BATCH_BYTES];
    size_t used = 0, frames = 0;
    while (c->q_len) {
        struct tb_msg *m = c->q[c->q_head];
        size_t fl = msg_frame_len(m);
        if (used + fl > WRITE_BATCH_BYTES)
            break;
        memcpy(scratch + used, msg_frame(m), fl);
        used += fl;
        frames++;
        msg_unref(queue_pop(c));
    }
    if (lws_write(c->wsi, scratch, used, LWS_WRITE_HTTP) < 0)
        return -1;
    c->sent += frames;
    bridge_count_delivered(c->br, frames);
    return 0;
}

/* One write: the head frame alone when it is the only one or large, else a batch. */
static int write_some(struct conn *c)
{
    struct tb_msg *head = c->q[c->q_head];
    return (c->q_len == 1 || msg_frame_len(head) > WRITE_BATCH_BYTES / 2) ? write_single(c)
                                                                           : write_batch(c);
}

/* Writes while there is something queued and the socket is writable. The check
 * (lws_send_pipe_choked: lws holds no unsent remainder and poll() says POLLOUT, i.e. at
 * least a third of the socket's send buffer is free) costs a poll() of one descriptor,
 * but it keeps a stalled client's socket from filling up completely, so a close frame
 * (4008) still fits when its queue overflows. */
static int write_queued(struct conn *c, int max_writes)
{
    admit_pending(c);
    for (int i = 0; i < max_writes && c->q_len && !lws_send_pipe_choked(c->wsi); i++) {
        if (write_some(c) < 0)
            return -1;
        admit_pending(c);
    }
    if (c->q_len || c->pending_head)
        lws_callback_on_writable(c->wsi);
    return 0;
}

int conn_on_writable(struct conn *c)
{
    if (c->closing) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)(c->close_reason ? c->close_reason : ""),
                         c->close_reason ? strlen(c->close_reason) : 0);
        return -1;
    }
    if (c->peer_closed)
        return 0;
    return write_queued(c, WRITES_PER_EVENT);
}

void conn_batch_begin(void)
{
    batching = true;
}

void conn_batch_end(void)
{
    batching = false;
    while (flush_head) {
        struct conn *c = flush_head;
        flush_head = c->flush_next;
        if (!flush_head)
            flush_tail = NULL;
        c->flush_next = NULL;
        c->flush_queued = false;
        if (!c->wsi || c->peer_closed)
            continue;
        if (c->closing) {
            lws_callback_on_writable(c->wsi);
            continue;
        }
        if (write_queued(c, 1) < 0) {
            /* The socket is unusable: lws closes the connection from the writable event. */
            conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
        }
    }
}
