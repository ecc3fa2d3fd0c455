/* writer: coalesced writes on writable events and the end-of-batch sendmsg() path with
 * its thread pool (see writer.h for which thread runs what). */
#include "writer.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <libwebsockets.h>

#include "config.h"
#include "conn.h"

#define WRITE_BATCH_BYTES (64 * 1024)
/* Writes per writable event before yielding to other connections. */
#define WRITES_PER_EVENT 4

/* Each thread gets at least this many connections: waking a writer costs more than a few
 * send()s. */
#define PARALLEL_MIN_CONNS 16
#define FAST_IOV_MAX 64

struct flush_item {
    struct conn *c;
    int fd;
    ssize_t sent; /* bytes the socket took; -1: the socket failed */
};

struct writer_thread {
    struct writer *w;
    pthread_t tid;
    sem_t go;
    struct flush_item *from, *to;
};

struct writer {
    bool batching;
    struct conn *flush_head, *flush_tail;   /* connections that got frames this batch, in order */
    struct flush_item *items;               /* the end-of-batch write list */
    size_t n_items, cap_items;
    struct writer_thread threads[CFG_MAX_WRITER_THREADS];
    unsigned n_threads;
    bool quit;
    sem_t done;
    unsigned char scratch[WRITE_BATCH_BYTES];   /* write_batch's coalescing buffer */
};

/* Writes one frame as it is (already framed in its headroom): no copy. */
static int write_single(struct conn *c)
{
    struct tb_msg *m = conn_queue_pop(c);
    /* LWS_WRITE_HTTP sends the bytes unchanged: the frame carries its own header. */
    int n = lws_write(c->wsi, msg_frame(m), msg_frame_len(m), LWS_WRITE_HTTP);
    msg_unref(m);
    if (n < 0)
        return -1;
    conn_count_sent(c, 1);
    return 0;
}

/* Coalesces queued frames (already framed in their headroom) into one raw write. The copy
 * (~0.1 us per 400-byte frame) is cheap next to the send() it saves. */
static int write_batch(struct writer *w, struct conn *c)
{
    unsigned char *scratch = w->scratch;
    size_t used = 0, frames = 0;
    while (c->q_len) {
        struct tb_msg *m = conn_queue_head(c);
        size_t fl = msg_frame_len(m);
        if (used + fl > WRITE_BATCH_BYTES)
            break;
        memcpy(scratch + used, msg_frame(m), fl);
        used += fl;
        frames++;
        msg_unref(conn_queue_pop(c));
    }
    if (lws_write(c->wsi, scratch, used, LWS_WRITE_HTTP) < 0)
        return -1;
    conn_count_sent(c, frames);
    return 0;
}

/* One write: the head frame alone when it is the only one or large, else a batch. */
static int write_some(struct writer *w, struct conn *c)
{
    struct tb_msg *head = conn_queue_head(c);
    return (c->q_len == 1 || msg_frame_len(head) > WRITE_BATCH_BYTES / 2) ? write_single(c)
                                                                           : write_batch(w, c);
}

/* Writes while there is something queued and the socket is writable. The check
 * (lws_send_pipe_choked: lws holds no unsent remainder and poll() says POLLOUT, i.e. at
 * least a third of the socket's send buffer is free) costs a poll() of one descriptor,
 * but it keeps a stalled client's socket from filling up completely, so a close frame
 * (4008) still fits when its queue overflows. */
static int write_queued(struct writer *w, struct conn *c, int max_writes)
{
    conn_admit_pending(c);
    for (int i = 0; i < max_writes && c->q_len && !lws_send_pipe_choked(c->wsi); i++) {
        if (write_some(w, c) < 0)
            return -1;
        conn_admit_pending(c);
    }
    if (conn_has_backlog(c))
        lws_callback_on_writable(c->wsi);
    return 0;
}

int writer_on_writable(struct writer *w, struct conn *c)
{
    if (c->closing && c->flush_before_close && c->q_len && !c->peer_closed) {
        /* an auth refusal: its error frame goes out before the close frame */
        if (write_queued(w, c, WRITES_PER_EVENT) < 0)
            return -1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->closing) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)(c->close_reason ? c->close_reason : ""),
                         c->close_reason ? strlen(c->close_reason) : 0);
        return -1;
    }
    if (c->peer_closed)
        return 0;
    return write_queued(w, c, WRITES_PER_EVENT);
}

void writer_batch_begin(struct writer *w)
{
    w->batching = true;
}

void writer_want(void *ud, struct conn *c)
{
    struct writer *w = ud;
    if (!c->wsi)
        return;
    if (!w->batching || c->closing) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (c->flush_queued)
        return;
    c->flush_queued = true;
    c->flush_next = NULL;
    if (w->flush_tail)
        w->flush_tail->flush_next = c;
    else
        w->flush_head = c;
    w->flush_tail = c;
}

void writer_forget(struct writer *w, struct conn *c)
{
    if (!c->flush_queued)
        return;
    struct conn *prev = NULL;
    for (struct conn *it = w->flush_head; it; prev = it, it = it->flush_next) {
        if (it != c)
            continue;
        if (prev)
            prev->flush_next = c->flush_next;
        else
            w->flush_head = c->flush_next;
        if (w->flush_tail == c)
            w->flush_tail = prev;
        break;
    }
    c->flush_next = NULL;
    c->flush_queued = false;
}

/* ---- end-of-batch writes ---------------------------------------------------------------
 * At the end of an MQTT batch every connection that got frames is written once. Almost
 * all of that time is the kernel's send() (on loopback it also runs the receiver's TCP
 * input and wake-up), so the writes are split between the service thread and a writer
 * thread: both only call sendmsg() on the sockets of their share of a list built
 * beforehand, and everything else (queues, counters, lws) is done by the service thread
 * afterwards. Connections where lws holds an unsent remainder take the writable path. */

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
        struct tb_msg *m = conn_queue_frame(c, i);
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
    struct writer_thread *t = arg;
    for (;;) {
        while (sem_wait(&t->go) != 0)
            ;
        if (t->w->quit)
            return NULL;
        send_range(t->from, t->to);
        sem_post(&t->w->done);
    }
}

static void stop_threads(struct writer *w)
{
    if (!w->n_threads)
        return;
    w->quit = true;
    for (unsigned i = 0; i < w->n_threads; i++)
        sem_post(&w->threads[i].go);
    for (unsigned i = 0; i < w->n_threads; i++) {
        pthread_join(w->threads[i].tid, NULL);
        sem_destroy(&w->threads[i].go);
    }
    sem_destroy(&w->done);
    w->n_threads = 0;
}

int writer_start_threads(struct writer *w, unsigned n)
{
    if (w->n_threads || !n)
        return 0;
    if (n > CFG_MAX_WRITER_THREADS)
        n = CFG_MAX_WRITER_THREADS;
    if (sem_init(&w->done, 0, 0))
        return -1;
    w->quit = false;
    /* Writers inherit a mask that blocks every signal: SIGTERM and SIGHUP go elsewhere. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < n; i++) {
        struct writer_thread *t = &w->threads[i];
        t->w = w;
        if (sem_init(&t->go, 0, 0))
            break;
        if (pthread_create(&t->tid, NULL, writer_main, t) != 0) {
            sem_destroy(&t->go);
            break;
        }
        pthread_setname_np(t->tid, "tb-writer");
        w->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (w->n_threads < n) {
        if (!w->n_threads)
            sem_destroy(&w->done);
        stop_threads(w);
        return -1;
    }
    return 0;
}

unsigned writer_thread_count(const struct writer *w)
{
    return w->n_threads;
}

struct writer *writer_new(void)
{
    return calloc(1, sizeof(struct writer));
}

void writer_free(struct writer *w)
{
    if (!w)
        return;
    stop_threads(w);
    free(w->items);
    free(w);
}

/* Splits the list between the writers and the service thread, which takes the last part
 * and then waits for the others. */
static void send_all(struct writer *w)
{
    size_t helpers = w->n_items / PARALLEL_MIN_CONNS;
    if (helpers > w->n_threads)
        helpers = w->n_threads;
    size_t per = w->n_items / (helpers + 1);
    for (size_t i = 0; i < helpers; i++) {
        w->threads[i].from = w->items + i * per;
        w->threads[i].to = w->items + (i + 1) * per;
        sem_post(&w->threads[i].go);
    }
    send_range(w->items + helpers * per, w->items + w->n_items);
    for (size_t i = 0; i < helpers; i++)
        while (sem_wait(&w->done) != 0)
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
        struct tb_msg *m = conn_queue_head(c);
        size_t fl = msg_frame_len(m);
        if (left < fl && lws_write(c->wsi, msg_frame(m) + left, fl - left, LWS_WRITE_HTTP) < 0) {
            conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
            break;
        }
        left = left < fl ? 0 : left - fl;
        msg_unref(conn_queue_pop(c));
        frames++;
    }
    conn_count_sent(c, frames);
    if (c->closing)
        return;
    conn_admit_pending(c);
    if (conn_has_backlog(c))
        lws_callback_on_writable(c->wsi);
}

static bool items_reserve(struct writer *w, size_t n)
{
    if (n <= w->cap_items)
        return true;
    size_t cap = w->cap_items ? w->cap_items : 256;
    while (cap < n)
        cap *= 2;
    struct flush_item *p = realloc(w->items, cap * sizeof *p);
    if (!p)
        return false;
    w->items = p;
    w->cap_items = cap;
    return true;
}

void writer_batch_end(struct writer *w)
{
    w->batching = false;
    w->n_items = 0;
    while (w->flush_head) {
        struct conn *c = w->flush_head;
        w->flush_head = c->flush_next;
        if (!w->flush_head)
            w->flush_tail = NULL;
        c->flush_next = NULL;
        c->flush_queued = false;
        if (!c->wsi || c->peer_closed)
            continue;
        if (c->closing) {
            lws_callback_on_writable(c->wsi);
            continue;
        }
        conn_admit_pending(c);
        int fd = lws_get_socket_fd(c->wsi);
        /* Raw sendmsg() needs what lws would write itself: no TLS (the frames are
         * complete WebSocket frames, written as LWS_WRITE_HTTP elsewhere) and nothing of
         * lws' own still waiting to go out on this socket. */
        if (c->q_len && fd >= 0 && !lws_is_ssl(c->wsi) && !lws_partial_buffered(c->wsi) &&
            items_reserve(w, w->n_items + 1)) {
            w->items[w->n_items++] = (struct flush_item){.c = c, .fd = fd};
        } else if (write_queued(w, c, 1) < 0) {
            /* The socket is unusable: lws closes the connection from the writable event. */
            conn_close(c, TB_CLOSE_GOING_AWAY, "write failed");
        }
    }
    if (!w->n_items)
        return;
    send_all(w);
    for (size_t i = 0; i < w->n_items; i++)
        fast_commit(&w->items[i]);
    w->n_items = 0;
}
