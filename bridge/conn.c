/* conn: per-connection send queue and conflation (see conn.h). Service thread only;
 * writer threads only read queued frames through conn_queue_frame (conn.h). */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shape.h"

struct conn *conn_new(const struct conn_env *env, struct lws *wsi, uint64_t id, size_t max_frames,
                      size_t max_bytes)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->env = env;
    c->wsi = wsi;
    c->id = id;
    c->endpoint = -1;
    strcpy(c->remote, "-");
    c->max_frames = max_frames ? (max_frames > UINT32_MAX ? UINT32_MAX : (uint32_t)max_frames) : 1;
    c->max_bytes = max_bytes;
    c->connected_ms = c->last_rx_ms = tb_now_ms();
    return c;
}

bool conn_log_allowed(const struct conn *c)
{
    struct log_budget *b = c->env ? c->env->log_budget : NULL;
    return !b || log_budget_take(b, tb_now_ms(), CONN_LOG_BURST, CONN_LOG_WINDOW_MS, "ws", "connection events");
}

/* Conflated messages a connection may hold, per frame of its queue bound: beyond this
 * many distinct topics waiting, the client is closed (4008) rather than grow memory. */
#define PENDING_PER_QUEUE_FRAME 16

/* A conflated message waiting for queue space: the newest of its (sub, topic). */
struct pending {
    struct sub *sub;
    uint64_t key;
    struct tb_msg *msg;
    struct lws_dll2 in_fifo;  /* conn_waiting.fifo, in order of the last update (= room seq order) */
    struct pending *hnext;    /* index chain */
};

/* A connection's conflated messages: allocated when the first one waits, so a connection
 * that keeps up (almost all) pays one pointer for it. */
struct conn_waiting {
    struct lws_dll2_owner fifo;       /* struct pending */
    struct pending **index;           /* hash of (sub, topic key) -> entry */
    uint32_t buckets;
};

uint32_t conn_pending_count(const struct conn *c)
{
    return c->waiting ? c->waiting->fifo.count : 0;
}

static struct pending *pending_of(struct lws_dll2 *d)
{
    return d ? lws_container_of(d, struct pending, in_fifo) : NULL;
}
static struct pending *pending_first(const struct conn *c)
{
    return c->waiting ? pending_of(c->waiting->fifo.head) : NULL;
}
static struct pending *pending_next(const struct pending *p) { return pending_of(p->in_fifo.next); }

static size_t pending_slot(const struct conn *c, const struct sub *s, uint64_t key)
{
    uint64_t h = key ^ ((uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull);
    return (size_t)(h ^ (h >> 29)) & (c->waiting->buckets - 1);
}

static struct pending *pending_find(const struct conn *c, const struct sub *s, uint64_t key)
{
    if (!s->n_pending || !c->waiting || !c->waiting->buckets)
        return NULL;
    struct pending *p = c->waiting->index[pending_slot(c, s, key)];
    while (p && !(p->sub == s && p->key == key))
        p = p->hnext;
    return p;
}

static void pending_index_remove(struct conn *c, struct pending *p)
{
    struct pending **pp = &c->waiting->index[pending_slot(c, p->sub, p->key)];
    while (*pp && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = p->hnext;
}

static bool pending_index_grow(struct conn *c)
{
    struct conn_waiting *w = c->waiting;
    uint32_t n = w->buckets ? w->buckets * 2 : 16;
    struct pending **idx = calloc(n, sizeof *idx);
    if (!idx)
        return false;
    free(w->index);
    w->index = idx;
    w->buckets = n;
    for (struct pending *p = pending_first(c); p; p = pending_next(p)) {
        size_t k = pending_slot(c, p->sub, p->key);
        p->hnext = idx[k];
        idx[k] = p;
    }
    return true;
}

static void fifo_append(struct conn *c, struct pending *p)
{
    lws_dll2_add_tail(&p->in_fifo, &c->waiting->fifo);
}

static void fifo_unlink(struct pending *p)
{
    lws_dll2_remove(&p->in_fifo);
}

static bool pending_add(struct conn *c, struct sub *s, struct tb_msg *m)
{
    if (!c->waiting && !(c->waiting = calloc(1, sizeof *c->waiting)))
        return false;
    if (c->waiting->fifo.count >= c->waiting->buckets && !pending_index_grow(c))
        return false;
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return false;
    p->sub = s;
    p->key = m->key;
    p->msg = msg_ref(m);
    size_t k = pending_slot(c, s, p->key);
    p->hnext = c->waiting->index[k];
    c->waiting->index[k] = p;
    fifo_append(c, p);
    s->n_pending++;
    return true;
}

/* Unlinks the FIFO head (the caller owns its message reference afterwards). */
static struct tb_msg *pending_pop(struct conn *c)
{
    struct pending *p = pending_first(c);
    struct tb_msg *m = p->msg;
    pending_index_remove(c, p);
    fifo_unlink(p);
    p->sub->n_pending--;
    free(p);
    return m;
}

/* Drops every pending message of one subscription (it is going away). */
static void pending_drop_sub(struct conn *c, struct sub *s)
{
    for (struct pending *p = pending_first(c), *next; p && s->n_pending; p = next) {
        next = pending_next(p);
        if (p->sub != s)
            continue;
        pending_index_remove(c, p);
        fifo_unlink(p);
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
    room_release_if_idle(c->env->rooms, room);
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

void conn_free(struct conn *c)
{
    if (!c)
        return;
    while (c->subs)
        conn_unsubscribe(c, c->subs);
    for (uint32_t i = 0; i < c->q_len; i++)
        msg_unref(c->q[(c->q_head + i) % c->q_cap]);
    free(c->q);
    if (c->waiting)
        free(c->waiting->index);
    free(c->waiting);
    free(c->close_reason);
    free(c->path);
    free(c->profile);
    free(c->rx_limit);
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

/* The queue became non-empty (or a close was asked for): the writer takes it from here. */
static void want_write(struct conn *c)
{
    if (c->env->want_write)
        c->env->want_write(c->env->ud, c);
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

static enum conn_enqueue_result enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate);

/* One step of a profile: 'next' replaces *cur (NULL: out of memory, all is dropped). */
static bool step(struct tb_msg **cur, struct tb_msg *next)
{
    msg_unref(*cur);
    *cur = next;
    return next != NULL;
}

static bool frame_type_is(struct tb_msg *m, const char *type)
{
    const char *p = (const char *)msg_payload(m);
    size_t n = strlen(type);
    return !strncmp(p, "{\"type\":\"", 9) && !strncmp(p + 9, type, n) && p[9 + n] == '"';
}

/* The connection's own copy of m under its endpoint's envelope profile: the time field
 * renamed / reformatted; in alert frames raised_at (the alert's own: the last one, after
 * any payload value) renamed; in heartbeats the ok status and the timestamp. */
static struct tb_msg *profiled(const struct conn *c, struct tb_msg *m)
{
    const struct conn_profile *pr = c->profile;
    struct tb_msg *cur = msg_retime(m, pr->ts_field, pr->ts_iso);
    bool alert = frame_type_is(m, "alert") || frame_type_is(m, "alert_cleared") ||
                 frame_type_is(m, "alert_acknowledged");
    if (cur && alert && pr->alert_time_field[0] &&
        !step(&cur, msg_rewrite_time(cur, "raised_at", true, pr->alert_time_field, pr->ts_iso)))
        return NULL;
    if (cur && frame_type_is(m, "heartbeat")) {
        char ok[48];
        snprintf(ok, sizeof ok, "\"server_status\":\"%s\"", pr->status_ok);
        if (pr->ts_iso && !step(&cur, msg_rewrite_time(cur, "timestamp", true, "timestamp", 1)))
            return NULL;
        if (pr->status_ok[0] && !step(&cur, msg_replace_first(cur, "\"server_status\":\"ok\"", ok)))
            return NULL;
    }
    return cur;
}

enum conn_enqueue_result conn_enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate)
{
    if (!c->profile)
        return enqueue(c, m, s, conflate);
    struct tb_msg *own = profiled(c, m);
    if (!own)
        return enqueue(c, m, s, conflate);   /* out of memory: as built rather than lost */
    enum conn_enqueue_result r = enqueue(c, own, s, conflate);
    msg_unref(own);
    return r;
}

static enum conn_enqueue_result enqueue(struct conn *c, struct tb_msg *m, struct sub *s, bool conflate)
{
    if (c->closing)
        return CONN_DROPPED;
    if (c->deflate && c->env->pmd)
        m = pmd_frame(c->env->pmd, m); /* compressed once per message, shared */
    struct pending *p = s && m->key ? pending_find(c, s, m->key) : NULL;
    if (p && !conflate) {
        /* A message of a 'disconnect' route behind a conflated value of the same topic:
         * it can neither take the pending slot (the next conflated value would silently
         * replace it) nor jump ahead of it (order). The client must resync. */
        c->dropped++;
        c->env->st->dropped++;
        conn_close(c, TB_CLOSE_SLOW_CONSUMER, "slow consumer: send queue full, resync");
        return CONN_DROPPED;
    }
    if (p) {
        /* The older waiting value of this topic is superseded; the entry moves to the end
         * of the line, so waiting messages stay in room seq order. */
        msg_unref(p->msg);
        p->msg = msg_ref(m);
        fifo_unlink(p);
        fifo_append(c, p);
        c->conflated++;
        c->env->st->conflated++;
        return CONN_CONFLATED;
    }
    /* While a room has messages waiting, its newer messages wait behind them (per-room
     * order), even when a smaller one would fit in the queue. */
    bool behind = s && s->n_pending;
    if (!behind && !queue_full(c, m->len) && queue_push(c, m))
        return CONN_QUEUED;
    if (s && conflate && m->key && conn_pending_count(c) < c->max_frames * PENDING_PER_QUEUE_FRAME &&
        pending_add(c, s, m)) {
        c->conflated++;
        c->env->st->conflated++;
        return CONN_CONFLATED;
    }
    c->dropped++;
    c->env->st->dropped++;
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

/* Replaces *slot (one reference) by its compressed twin, if it gets one. */
static void swap_for_twin(struct conn *c, struct tb_msg **slot)
{
    struct tb_msg *t = pmd_frame(c->env->pmd, *slot);
    if (t == *slot)
        return;
    c->q_bytes = c->q_bytes - (*slot)->len + t->len;
    msg_ref(t); /* before the original goes: it may hold the twin's last reference */
    msg_unref(*slot);
    *slot = t;
}

void conn_set_deflate(struct conn *c)
{
    if (c->deflate || !c->env->pmd)
        return;
    c->deflate = true;
    for (uint32_t i = 0; i < c->q_len; i++)
        swap_for_twin(c, &c->q[(c->q_head + i) % c->q_cap]);
    for (struct pending *p = pending_first(c); p; p = pending_next(p)) {
        struct tb_msg *t = msg_ref(pmd_frame(c->env->pmd, p->msg));
        msg_unref(p->msg);
        p->msg = t;
    }
}

void conn_close(struct conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = strdup(reason ? reason : "");
    want_write(c);
}

void conn_admit_pending(struct conn *c)
{
    for (struct pending *p; (p = pending_first(c)) && !queue_full(c, p->msg->len);) {
        if (c->q_len == c->q_cap && !queue_grow(c))
            return;
        struct tb_msg *m = pending_pop(c);
        queue_push(c, m);
        msg_unref(m);
    }
    conn_pump_snapshots(c);
}

bool conn_would_wait(const struct conn *c, const struct sub *s, size_t len)
{
    return (s && s->n_pending) || queue_full(c, len);
}

/* How far a snapshot runs ahead of the socket: two of the writer's coalesced writes. The
 * rest follows as the client reads (conn_admit_pending after each write): a joiner holds
 * at most this much of its snapshot queued (not half its queue), and a join is ~300
 * frames of work at a time for the service thread. (Observers' latency under 100 joins/s
 * did not measurably change with it: docs/benchmarks.md, "Joins again".) */
#define SNAPSHOT_AHEAD_BYTES (128u * 1024)

static bool snapshot_may_queue(const struct conn *c)
{
    return c->q_len == 0 || (c->q_len < c->max_frames / 2 && c->q_bytes < c->max_bytes / 2 &&
                             c->q_bytes < SNAPSHOT_AHEAD_BYTES);
}

void conn_pump_snapshots(struct conn *c)
{
    if (!c->n_snapping || c->closing)
        return;
    uint32_t active = 0;
    for (struct sub *s = c->subs; s; s = s->conn_next) {
        while (room_snapshot_active(s) && snapshot_may_queue(c)) {
            struct tb_msg *out = shape_project(s->shape, room_snapshot_take(s));
            if (out) {
                conn_enqueue(c, out, s, true);
                msg_unref(out);
            }
        }
        active += room_snapshot_active(s);
    }
    c->n_snapping = active;
}


void conn_count_sent(struct conn *c, uint64_t frames)
{
    c->sent += frames;
    c->env->st->delivered += frames;
}
