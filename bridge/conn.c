/* conn: per-connection send queue, conflation and coalesced writes. Service thread only. */
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

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

/* ---- end-of-batch writes ---------------------------------------------------------------
 * At the end of an MQTT batch every connection that got frames is written once. Almost
 * all of that time is the kernel's send() (on loopback it also runs the receiver's TCP
 * input and wake-up), so the writes are split between the service thread and a writer
 * thread: both only call sendmsg() on the sockets of their share of a list built
 * beforehand, and everything else (queues, counters, lws) is done by the service thread
 * afterwards. Connections where lws holds an unsent remainder take the writable path. */

/* Each thread gets at least this many connections: waking a writer costs more than a few
 * send()s. */
#define PARALLEL_MIN_CONNS 16
#define FAST_IOV_MAX 64

struct flush_item {
    struct conn *c;
    int fd;
    ssize_t sent; /* bytes the socket took; -1: the socket failed */
};

static struct flush_item *items;
static size_t n_items, cap_items;

struct writer {
    pthread_t tid;
    sem_t go;
    struct flush_item *from, *to;
};
static struct writer writers[CFG_MAX_WRITER_THREADS];
static unsigned n_writers;
static bool writers_quit;
static sem_t writers_done;

/* Sends the queued frames of it->c (up to WRITE_BATCH_BYTES, from their headroom, no
 * copy) with one sendmsg(), if poll() says POLLOUT (as lws_send_pipe_choked: at least a
 * third of the socket's send buffer free, so a stalled client's socket never fills up
 * completely and its close frame, 4008, still goes out at once). Reads the connection's
 * queue, changes nothing: any thread. */
static void fast_send(struct flush_item *it)
{
    const struct conn *c = it->c;
    struct pollfd pfd = {.fd = it->fd, .events = POLLOUT};
    if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT)) {
        it->sent = (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) ? -1 : 0;
        return;
    }
    struct iovec iov[FAST_IOV_MAX];
    size_t n = 0, bytes = 0;
    for (uint32_t i = 0; i < c->q_len && n < FAST_IOV_MAX; i++) {
        struct tb_msg *m = c->q[(c->q_head + i) % c->q_cap];
        size_t fl = msg_frame_len(m);
        if (n && bytes + fl > WRITE_BATCH_BYTES)
            break;
        iov[n].iov_base = msg_frame(m);
        iov[n].iov_len = fl;
        n++;
        bytes += fl;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
    ssize_t r;
    do
        r = sendmsg(it->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        r = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    it->sent = r;
}

static void send_range(struct flush_item *from, struct flush_item *to)
{
    for (struct flush_item *it = from; it < to; it++)
        fast_send(it);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (;;) {
        while (sem_wait(&w->go) != 0)
            ;
        if (writers_quit)
            return NULL;
        send_range(w->from, w->to);
        sem_post(&writers_done);
    }
}

int conn_writer_start(unsigned n)
{
    if (n_writers || !n)
        return 0;
    if (n > CFG_MAX_WRITER_THREADS)
        n = CFG_MAX_WRITER_THREADS;
    if (sem_init(&writers_done, 0, 0))
        return -1;
    writers_quit = false;
    /* Writers inherit a mask that blocks every signal: SIGTERM and SIGHUP go elsewhere. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < n; i++) {
        struct writer *w = &writers[i];
        if (sem_init(&w->go, 0, 0))
            break;
        if (pthread_create(&w->tid, NULL, writer_main, w) != 0) {
            sem_destroy(&w->go);
            break;
        }
        pthread_setname_np(w->tid, "tb-writer");
        n_writers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (n_writers < n) {
        if (!n_writers)
            sem_destroy(&writers_done);
        conn_writer_stop();
        return -1;
    }
    return 0;
}

unsigned conn_writer_count(void)
{
    return n_writers;
}

void conn_writer_stop(void)
{
    if (n_writers) {
        writers_quit = true;
        for (unsigned i = 0; i < n_writers; i++)
            sem_post(&writers[i].go);
        for (unsigned i = 0; i < n_writers; i++) {
            pthread_join(writers[i].tid, NULL);
            sem_destroy(&writers[i].go);
        }
        sem_destroy(&writers_done);
        n_writers = 0;
    }
    free(items);
    items = NULL;
    n_items = cap_items = 0;
}

/* Splits the list between the writers and the service thread, which takes the last part
 * and then waits for the others. */
static void send_all(void)
{
    size_t helpers = n_items / PARALLEL_MIN_CONNS;
    if (helpers > n_writers)
        helpers = n_writers;
    size_t per = n_items / (helpers + 1);
    for (size_t i = 0; i < helpers; i++) {
        writers[i].from = items + i * per;
        writers[i].to = items + (i + 1) * per;
        sem_post(&writers[i].go);
    }
    send_range(items + helpers * per, items + n_items);
    for (size_t i = 0; i < helpers; i++)
        while (sem_wait(&writers_done) != 0)
            ;
}

/* Applies what the socket took: sent frames leave the queue; the rest of a frame the
 * socket took only in part goes to lws (LWS_WRITE_HTTP: written or buffered before
 * anything else on this connection), so the stream stays whole. */
static void fast_commit(const struct flush_item *it)
{
    struct conn *c = it->c;
    if (it->sent < 0) {
        /* The socket is unusable: lws closes the connection from the writable event. */
        conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
        return;
    }
    size_t left = (size_t)it->sent;
    uint64_t frames = 0;
    while (left && c->q_len) {
        struct tb_msg *m = c->q[c->q_head];
        size_t fl = msg_frame_len(m);
        if (left < fl && lws_write(c->wsi, msg_frame(m) + left, fl - left, LWS_WRITE_HTTP) < 0) {
            conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
            break;
        }
        left = left < fl ? 0 : left - fl;
        msg_unref(queue_pop(c));
        frames++;
    }
    c->sent += frames;
    bridge_count_delivered(c->br, frames);
    if (c->closing)
        return;
    admit_pending(c);
    if (c->q_len || c->pending_head)
        lws_callback_on_writable(c->wsi);
}

static bool items_reserve(size_t n)
{
    if (n <= cap_items)
        return true;
    size_t cap = cap_items ? cap_items : 256;
    while (cap < n)
        cap *= 2;
    struct flush_item *p = realloc(items, cap * sizeof *p);
    if (!p)
        return false;
    items = p;
    cap_items = cap;
    return true;
}

void conn_batch_end(void)
{
    batching = false;
    n_items = 0;
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
        admit_pending(c);
        int fd = lws_get_socket_fd(c->wsi);
        /* Raw sendmsg() needs what lws would write itself: no TLS (the frames are
         * complete WebSocket frames, written as LWS_WRITE_HTTP elsewhere) and nothing of
         * lws' own still waiting to go out on this socket. */
        if (c->q_len && fd >= 0 && !lws_is_ssl(c->wsi) && !lws_partial_buffered(c->wsi) &&
            items_reserve(n_items + 1)) {
            items[n_items++] = (struct flush_item){.c = c, .fd = fd};
        } else if (write_queued(c, 1) < 0) {
            /* The socket is unusable: lws closes the connection from the writable event. */
            conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
        }
    }
    if (!n_items)
        return;
    send_all();
    for (size_t i = 0; i < n_items; i++)
        fast_commit(&items[i]);
    n_items = 0;
}
