/*
 * tb-wsload: WebSocket load client for the Telebridge benchmarks.
 *
 * Why: measuring a bridge that fans out 100,000+ frames/s to thousands of sockets needs a
 * client that is cheaper than the bridge, so this is a minimal RFC 6455 client on raw
 * non-blocking sockets and epoll, not a library.  It opens many connections, and for every
 * routed frame carrying the publisher's "bench_seq"/"bench_ts_us" it records end-to-end
 * latency (CLOCK_REALTIME now - bench_ts_us, same machine) in a log-linear histogram and
 * counts lost / duplicated / reordered messages per (connection, vehicle) stream.
 *
 * How: each worker thread owns a share of the connections and its own epoll set, read
 * buffer, histogram and room table (nothing shared, merged at the end).  Connects are
 * non-blocking with bounded concurrency and retries; each connection optionally bind()s to
 * one of several 127.0.0.x source addresses (IP_BIND_ADDRESS_NO_PORT) to get past the
 * ~28k ephemeral ports of one source address.  One recv() fills a large per-thread buffer
 * and every complete frame in it is parsed; a partial tail is kept per connection.  Fields
 * are found with memmem, not a JSON parser.  Ping is answered with a masked pong, close
 * with a close; fragmented messages are reassembled.  "Slow" connections stop reading
 * after the handshake, with a small SO_RCVBUF (--slow-rcvbuf) so that the kernel buffers
 * fill within seconds and the bridge's own queue policy has to act.
 *
 * --tls: wss:// (OpenSSL, no certificate verification: the bench's own self-signed pair on
 * loopback); the TLS handshake runs non-blocking before the upgrade request.  --deflate:
 * offers permessage-deflate and inflates compressed frames (a fresh raw inflater per
 * message: the bridge never uses context takeover); "bytes" stays the WebSocket bytes
 * received (compressed), "inflated_bytes" what they inflated to.
 * Uplink (--send-rate R --send-json TEXT): every open connection also sends TEXT as a masked
 * text frame R times a second (first send at a random offset within the first period, so
 * the connections do not send in lockstep); replies ("type":"reply"), "published" frames
 * and errors are counted.  For the uplink benchmark (bench/uplink.sh).
 *
 * Output: a READY line on stderr once every connection is open or has failed, then (after
 * --duration seconds or SIGINT/SIGTERM) one JSON summary line on stdout.
 *
 * Threads: main thread parses options, waits and reports; worker threads do all I/O.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "sha1.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define WL_MAX_GROUPS 16
#define WL_MAX_SRC 64
#define WL_READ_BUF (1u << 20)
#define WL_HS_MAX 8192
#define WL_MAX_ATTEMPTS 3
#define WL_MAX_VID 1000000

/* ---- latency histogram: exact below 64 us, then 64 linear sub-buckets per power of two
 * (<1.6 % error), up to 2^42 us. ---- */
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_SUB * 38)

static int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    int idx = HIST_SUB * (shift + 1) + (int)((v >> shift) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Highest value that falls in bucket idx (reported percentiles are conservative). */
static uint64_t hist_upper(int idx)
{
    if (idx < HIST_SUB)
        return (uint64_t)idx;
    int shift = idx / HIST_SUB - 1;
    uint64_t sub = (uint64_t)(HIST_SUB + idx % HIST_SUB);
    return ((sub + 1) << shift) - 1;
}

/* ---- options ---- */
struct group {
    const char *fmt; /* path, may contain one %d */
    int id_lo, id_hi;
    int per_path;
};

struct opts {
    const char *host;
    int port;
    struct group groups[WL_MAX_GROUPS];
    int ngroups;
    double duration;
    struct in_addr src[WL_MAX_SRC];
    int nsrc;
    double slow_fraction;
    int slow_rcvbuf;
    int idle;
    uint32_t expect_seq;
    int vehicles, vehicle_base;
    double expect_rate;
    int threads;
    int concurrency;
    double connect_timeout;
    const char *label;
    int read_interval_us;
    int tls, deflate;
    double send_rate;
    const char *send_json;
    int latency_after_ready;
};

static struct opts g_opt;
static SSL_CTX *g_ssl_ctx; /* --tls */
static volatile sig_atomic_t g_stop;
static atomic_int g_threads_ready;
/* --latency-after-ready: CLOCK_REALTIME us of READY; messages published earlier (a room's
 * kept values sent on join) are counted as frames but kept out of the latency histogram. */
static _Atomic uint64_t g_latency_from_us; /* UINT64_MAX until READY with the option */

/* ---- per-connection state (owned by one worker thread) ---- */
enum conn_state { CS_IDLE, CS_CONNECTING, CS_TLS, CS_HANDSHAKE, CS_OPEN, CS_FAILED, CS_CLOSED };

struct stream {
    uint32_t last;   /* highest seq seen */
    uint64_t window; /* bit i set: seq (last - i) seen */
};

struct conn {
    int fd;
    SSL *ssl;      /* --tls */
    uint8_t state;
    uint8_t slow;
    uint8_t frag_op;
    uint8_t frag_z; /* the fragmented message is compressed (RSV1 on its first frame) */
    uint8_t attempts;
    int group;
    int id; /* vehicle id from the path, -1 when the path has no %d */
    int room; /* index in the thread's room table, -1 until the first data frame */
    char key[25];
    char *pend; /* handshake bytes, or the partial frame left from the last read */
    uint32_t pend_len, pend_cap;
    char *frag; /* reassembly of a fragmented message */
    uint32_t frag_len, frag_cap;
    struct stream *streams; /* indexed by vehicle id */
    uint32_t nstreams;
    uint64_t frames, data_frames;
    uint64_t deadline_us; /* connect/handshake timeout, or retry time */
    uint64_t next_send_us; /* --send-rate: when this connection sends next (0 = not yet set) */
};

struct room_stat {
    char name[64];
    uint64_t received, lost, dup, reordered, tail_lost;
};

struct worker {
    pthread_t thread;
    int index;
    int ep;
    struct conn *conns;
    int nconns;
    int next_connect, inflight;
    int *retry; /* indices waiting for a retry */
    int nretry;
    char *buf;
    size_t buf_cap;
    uint64_t hist[HIST_BUCKETS];
    uint64_t lat_sum_us, lat_count;
    struct room_stat *rooms;
    int nrooms, rooms_cap;
    uint64_t frames, data_frames, other_frames, bytes, pings, pongs_failed;
    uint64_t connect_ok, connect_fail, connect_retries, closed_by_server, read_errors;
    uint64_t protocol_errors;
    uint64_t compressed_frames, inflated_bytes;
    z_stream zs;    /* --deflate */
    char *zbuf;     /* inflated message */
    size_t zcap;
    uint64_t sent, send_failed, replies, published, errors, rate_limited;
    uint64_t first_data_us, last_data_us;
    int ready;
    int unmask_warned;
};

static uint64_t now_us_clock(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mono_us(void)
{
    return now_us_clock(CLOCK_MONOTONIC);
}

/* ---- small helpers ---- */
static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

static int buf_append(char **p, uint32_t *len, uint32_t *cap, const char *data, size_t n)
{
    if ((size_t)*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < (size_t)*len + n)
            nc *= 2;
        char *np = realloc(*p, nc);
        if (!np)
            return -1;
        *p = np;
        *cap = (uint32_t)nc;
    }
    memcpy(*p + *len, data, n);
    *len += (uint32_t)n;
    return 0;
}

/* Pointer just past `"key"` + optional spaces + ':' + optional spaces, or NULL. */
static const char *find_key(const char *s, size_t n, const char *key, size_t klen)
{
    const char *p = memmem(s, n, key, klen);
    if (!p)
        return NULL;
    const char *end = s + n;
    p += klen;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    return p < end ? p : NULL;
}

static uint64_t parse_u64(const char *p, const char *end, int *ok)
{
    uint64_t v = 0;
    const char *start = p;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    *ok = p > start;
    return v;
}

/* ---- room table ---- */
static int room_lookup(struct worker *w, const char *name, size_t n)
{
    if (n >= sizeof w->rooms[0].name)
        n = sizeof w->rooms[0].name - 1;
    for (int i = 0; i < w->nrooms; i++)
        if (strlen(w->rooms[i].name) == n && memcmp(w->rooms[i].name, name, n) == 0)
            return i;
    if (w->nrooms == w->rooms_cap) {
        int nc = w->rooms_cap ? w->rooms_cap * 2 : 64;
        struct room_stat *nr = realloc(w->rooms, (size_t)nc * sizeof *nr);
        if (!nr)
            return 0;
        w->rooms = nr;
        w->rooms_cap = nc;
    }
    struct room_stat *r = &w->rooms[w->nrooms];
    memset(r, 0, sizeof *r);
    memcpy(r->name, name, n);
    r->name[n] = '\0';
    return w->nrooms++;
}

/* ---- connection lifecycle ---- */
static void conn_release(struct worker *w, struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->pend);
    c->pend = NULL;
    c->pend_len = c->pend_cap = 0;
    free(c->frag);
    c->frag = NULL;
    c->frag_len = c->frag_cap = 0;
}

/* Connect-phase failure: retry a few times, then count it. */
static void conn_fail(struct worker *w, struct conn *c, const char *why)
{
    int was_connecting = c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE;
    conn_release(w, c);
    if (!was_connecting) {
        c->state = CS_CLOSED;
        w->read_errors++;
        return;
    }
    w->inflight--;
    if (c->attempts < WL_MAX_ATTEMPTS) {
        c->state = CS_IDLE;
        c->deadline_us = mono_us() + 200000u * c->attempts;
        w->retry[w->nretry++] = (int)(c - w->conns);
        w->connect_retries++;
        return;
    }
    c->state = CS_FAILED;
    w->connect_fail++;
    if (w->connect_fail <= 3)
        fprintf(stderr, "tb-wsload: connection failed: %s\n", why);
}

static int conn_start(struct worker *w, struct conn *c, int global_index)
{
    c->attempts++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = CS_CONNECTING;
        w->inflight++;
        conn_fail(w, c, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->slow && g_opt.slow_rcvbuf > 0) /* a stalled reader on a thin link: small window */
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &g_opt.slow_rcvbuf, sizeof g_opt.slow_rcvbuf);
    if (g_opt.nsrc > 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_addr = g_opt.src[global_index % g_opt.nsrc]};
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            c->state = CS_CONNECTING;
            w->inflight++;
            conn_fail(w, c, "bind source address");
            return -1;
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_opt.port)};
    inet_pton(AF_INET, g_opt.host, &dst.sin_addr);
    c->state = CS_CONNECTING;
    w->inflight++;
    c->deadline_us = mono_us() + (uint64_t)(g_opt.connect_timeout * 1e6);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        conn_fail(w, c, strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)(c - w->conns)};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_fail(w, c, strerror(errno));
        return -1;
    }
    return 0;
}

/* send() or SSL_write(); best effort for the small writes of this client. */
static ssize_t conn_write(struct conn *c, const void *p, size_t n)
{
    if (c->ssl) {
        int r = SSL_write(c->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    return send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void conn_send_upgrade(struct worker *w, struct conn *c);

/* Drives the non-blocking TLS handshake; the upgrade request follows it. */
static void conn_tls_step(struct worker *w, struct conn *c)
{
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        conn_send_upgrade(w, c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        char why[160];
        snprintf(why, sizeof why, "TLS handshake: %s", ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        conn_fail(w, c, why);
        return;
    }
    struct epoll_event ev = {.events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT,
                             .data.u32 = (uint32_t)(c - w->conns)};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The TCP connection is up: TLS first (--tls), or the upgrade request right away. */
static void conn_connected(struct worker *w, struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        conn_fail(w, c, strerror(err));
        return;
    }
    if (!g_ssl_ctx) {
        conn_send_upgrade(w, c);
        return;
    }
    if (!(c->ssl = SSL_new(g_ssl_ctx)) || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(w, c, "SSL_new");
        return;
    }
    c->state = CS_TLS;
    conn_tls_step(w, c);
}

static void conn_send_upgrade(struct worker *w, struct conn *c)
{
    uint8_t nonce[16];
    for (int i = 0; i < 16; i++)
        nonce[i] = (uint8_t)(rand() & 0xff);
    base64(nonce, 16, c->key);
    char path[256], req[768];
    const struct group *g = &g_opt.groups[c->group];
    if (c->id >= 0)
        snprintf(path, sizeof path, g->fmt, c->id);
    else
        snprintf(path, sizeof path, "%s", g->fmt);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n%s"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, g_opt.host, g_opt.port, c->key,
                     g_opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    if (conn_write(c, req, (size_t)n) != n) {
        conn_fail(w, c, "short write of the upgrade request");
        return;
    }
    c->state = CS_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - w->conns)};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends a small masked control frame; best effort (control frames are tiny). */
static void send_control(struct conn *c, uint8_t opcode, const char *payload, size_t n)
{
    uint8_t f[2 + 4 + 125];
    if (n > 125)
        n = 125;
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | n);
    uint8_t mask[4] = {(uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand()};
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = (uint8_t)payload[i] ^ mask[i & 3];
    ssize_t r = conn_write(c, f, 6 + n);
    (void)r;
}

/* Sends one masked text frame (uplink load). Returns 0 when the kernel took all of it. */
static int send_text(struct conn *c, const char *payload, size_t n)
{
    uint8_t f[14 + 4096];
    size_t h = 2;
    if (n > 4096)
        return -1;
    f[0] = 0x81;
    if (n < 126) {
        f[1] = (uint8_t)(0x80 | n);
    } else {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(n >> 8);
        f[3] = (uint8_t)n;
        h = 4;
    }
    uint8_t mask[4] = {(uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand()};
    memcpy(f + h, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[h + 4 + i] = (uint8_t)payload[i] ^ mask[i & 3];
    ssize_t r = send(c->fd, f, h + 4 + n, MSG_NOSIGNAL | MSG_DONTWAIT);
    return r == (ssize_t)(h + 4 + n) ? 0 : -1;
}

/* Every open connection whose time has come sends --send-json once. */
static void pump_sends(struct worker *w)
{
    uint64_t now = mono_us(), period = (uint64_t)(1e6 / g_opt.send_rate);
    size_t n = strlen(g_opt.send_json);
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state != CS_OPEN)
            continue;
        if (!c->next_send_us)
            c->next_send_us = now + (uint64_t)rand() % (period ? period : 1);
        if (now < c->next_send_us)
            continue;
        if (send_text(c, g_opt.send_json, n) == 0)
            w->sent++;
        else
            w->send_failed++;
        c->next_send_us += period;
        if (c->next_send_us < now)      /* fell behind: do not burst to catch up */
            c->next_send_us = now + period;
    }
}

/* ---- message accounting ---- */
static struct stream *conn_stream(struct conn *c, uint32_t vid)
{
    if (vid >= WL_MAX_VID)
        return NULL;
    if (vid >= c->nstreams) {
        uint32_t nn = c->nstreams ? c->nstreams : 4;
        while (nn <= vid)
            nn *= 2;
        struct stream *ns = realloc(c->streams, nn * sizeof *ns);
        if (!ns)
            return NULL;
        memset(ns + c->nstreams, 0, (nn - c->nstreams) * sizeof *ns);
        c->streams = ns;
        c->nstreams = nn;
    }
    return &c->streams[vid];
}

static void account_seq(struct worker *w, struct conn *c, struct room_stat *r, uint32_t vid,
                        uint32_t seq)
{
    struct stream *s = conn_stream(c, vid);
    if (!s || seq == 0)
        return;
    if (seq > s->last) {
        uint32_t gap = seq - s->last - 1;
        r->lost += gap;
        uint32_t shift = seq - s->last;
        s->window = shift >= 64 ? 0 : s->window << shift;
        s->window |= 1;
        s->last = seq;
        return;
    }
    uint32_t back = s->last - seq;
    if (back < 64) {
        if (s->window & (1ull << back)) {
            r->dup++;
        } else {
            s->window |= 1ull << back;
            r->reordered++;
            if (r->lost)
                r->lost--; /* it was counted lost when the gap opened */
        }
    } else {
        r->reordered++;
    }
    (void)w;
}

static void on_text(struct worker *w, struct conn *c, const char *p, size_t n, uint64_t now_rt)
{
    w->frames++;
    c->frames++;
    if (g_opt.send_rate > 0) {
        if (memmem(p, n, "\"type\":\"reply\"", 14))
            w->replies++;
        else if (memmem(p, n, "\"type\":\"published\"", 18))
            w->published++;
        else if (memmem(p, n, "\"type\":\"error\"", 14))
            w->errors++, w->rate_limited += memmem(p, n, "rate_limited", 12) != NULL;
        else
            w->other_frames++;
        return;
    }
    if (g_opt.idle) {
        if (memmem(p, n, "\"bench_seq\"", 11)) {
            c->data_frames++;
            w->data_frames++;
            if (!w->first_data_us)
                w->first_data_us = now_rt;
            w->last_data_us = now_rt;
        } else {
            w->other_frames++;
        }
        return;
    }
    const char *vp = find_key(p, n, "\"bench_vid\"", 11);
    const char *sp = vp ? find_key(vp, (size_t)(p + n - vp), "\"bench_seq\"", 11) : NULL;
    if (!sp) {
        w->other_frames++;
        return;
    }
    const char *end = p + n;
    int ok1, ok2, ok3;
    uint64_t vid = parse_u64(vp, end, &ok1);
    uint64_t seq = parse_u64(sp, end, &ok2);
    const char *tp = find_key(sp, (size_t)(end - sp), "\"bench_ts_us\"", 13);
    uint64_t ts = tp ? parse_u64(tp, end, &ok3) : (ok3 = 0);
    if (!ok1 || !ok2) {
        w->protocol_errors++;
        return;
    }
    c->data_frames++;
    w->data_frames++;
    if (!w->first_data_us)
        w->first_data_us = now_rt;
    w->last_data_us = now_rt;
    if (ok3 && ts >= atomic_load_explicit(&g_latency_from_us, memory_order_relaxed)) {
        uint64_t lat = now_rt > ts ? now_rt - ts : 0;
        w->hist[hist_index(lat)]++;
        w->lat_sum_us += lat;
        w->lat_count++;
    }
    /* Room: cached per connection; only compared, not looked up, on the hot path. */
    const char *rp = find_key(p, (size_t)(vp - p), "\"room\"", 6);
    if (rp && *rp == '"') {
        rp++;
        const char *re = memchr(rp, '"', (size_t)(end - rp));
        size_t rl = re ? (size_t)(re - rp) : 0;
        if (c->room < 0 || strlen(w->rooms[c->room].name) != rl ||
            memcmp(w->rooms[c->room].name, rp, rl) != 0)
            c->room = room_lookup(w, rp, rl);
    } else if (c->room < 0) {
        c->room = room_lookup(w, "?", 1);
    }
    struct room_stat *r = &w->rooms[c->room];
    r->received++;
    account_seq(w, c, r, (uint32_t)vid, (uint32_t)seq);
}

/* RFC 7692: the message's DEFLATE data plus the 00 00 ff ff its sender removed, inflated
 * with a fresh window (the bridge uses no context takeover). NULL on bad data. */
static const char *inflate_msg(struct worker *w, const char *p, size_t n, size_t *out_n)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    if (inflateReset(&w->zs) != Z_OK)
        return NULL;
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
        w->zs.next_in = (unsigned char *)(pass ? (const char *)tail : p);
        w->zs.avail_in = (uInt)(pass ? sizeof tail : n);
        while (w->zs.avail_in) {
            if (w->zcap - used < 4096) {
                size_t nc = w->zcap ? w->zcap * 2 : 65536;
                char *nb = realloc(w->zbuf, nc);
                if (!nb)
                    return NULL;
                w->zbuf = nb;
                w->zcap = nc;
            }
            w->zs.next_out = (unsigned char *)w->zbuf + used;
            w->zs.avail_out = (uInt)(w->zcap - used);
            int rc = inflate(&w->zs, Z_SYNC_FLUSH);
            used = w->zcap - w->zs.avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return NULL;
            if (rc == Z_BUF_ERROR && w->zs.avail_out)
                break;
        }
    }
    *out_n = used;
    return w->zbuf;
}

static void on_message(struct worker *w, struct conn *c, uint8_t op, const char *p, size_t n,
                       int compressed, uint64_t now_rt)
{
    if (op != 1 && op != 2)
        return;
    if (compressed) {
        w->compressed_frames++;
        if (!(p = inflate_msg(w, p, n, &n))) {
            w->protocol_errors++;
            return;
        }
        w->inflated_bytes += n;
    }
    on_text(w, c, p, n, now_rt);
}

/* Parses every complete frame in [p, p+n); returns bytes consumed, or -1 on close/error.
 * *need is set to the total size of an incomplete trailing frame when known. */
static ssize_t parse_frames(struct worker *w, struct conn *c, char *p, size_t n, uint64_t now_rt,
                            size_t *need)
{
    size_t off = 0;
    *need = 0;
    while (n - off >= 2) {
        uint8_t b0 = (uint8_t)p[off], b1 = (uint8_t)p[off + 1];
        int fin = b0 & 0x80, op = b0 & 0x0f, masked = b1 & 0x80, rsv1 = b0 & 0x40;
        uint64_t len = b1 & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = ((uint64_t)(uint8_t)p[off + 2] << 8) | (uint8_t)p[off + 3];
            hdr = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | (uint8_t)p[off + 2 + i];
            hdr = 10;
        }
        if (masked)
            hdr += 4;
        if (len > (64u << 20)) {
            w->protocol_errors++;
            return -1;
        }
        if (n - off < hdr + len) {
            *need = hdr + (size_t)len;
            break;
        }
        char *pl = p + off + hdr;
        if (masked) {
            const uint8_t *mk = (const uint8_t *)p + off + hdr - 4;
            for (uint64_t i = 0; i < len; i++)
                pl[i] ^= (char)mk[i & 3];
        }
        w->bytes += hdr + len;
        off += hdr + (size_t)len;
        if (op >= 8) { /* control frames may interleave with fragments */
            if (op == 8) {
                send_control(c, 8, pl, len >= 2 ? 2 : 0);
                w->closed_by_server++;
                return -1;
            }
            if (op == 9) {
                w->pings++;
                send_control(c, 10, pl, (size_t)len);
            }
            continue;
        }
        if (op == 0 || !fin) { /* fragmented message */
            if (op != 0) {
                c->frag_op = (uint8_t)op;
                c->frag_z = rsv1 != 0;
                c->frag_len = 0;
            }
            if (buf_append(&c->frag, &c->frag_len, &c->frag_cap, pl, (size_t)len) != 0)
                return -1;
            if (fin) {
                on_message(w, c, c->frag_op, c->frag, c->frag_len, c->frag_z, now_rt);
                c->frag_len = 0;
            }
            continue;
        }
        on_message(w, c, (uint8_t)op, pl, (size_t)len, rsv1 != 0, now_rt);
    }
    return (ssize_t)off;
}

static int check_accept(const struct conn *c, const char *hdrs)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char in[64], want[32];
    uint8_t dig[20];
    snprintf(in, sizeof in, "%s%s", c->key, guid);
    sha1((const uint8_t *)in, strlen(in), dig);
    base64(dig, 20, want);
    const char *h = strcasestr(hdrs, "\r\nSec-WebSocket-Accept:");
    if (!h)
        return -1;
    h += 23;
    while (*h == ' ')
        h++;
    return strncmp(h, want, strlen(want)) == 0 ? 0 : -1;
}

/* Handles the bytes of the HTTP 101 response (and any frames right behind it). */
static void on_handshake_data(struct worker *w, struct conn *c, const char *data, size_t n,
                              uint64_t now_rt)
{
    if (buf_append(&c->pend, &c->pend_len, &c->pend_cap, data, n) != 0) {
        conn_fail(w, c, "out of memory");
        return;
    }
    /* Only the headers are bounded: a room's kept values may follow in the same read. */
    char *eoh = memmem(c->pend, c->pend_len, "\r\n\r\n", 4);
    if ((eoh ? (size_t)(eoh - c->pend) : c->pend_len) > WL_HS_MAX) {
        conn_fail(w, c, "oversized handshake response");
        return;
    }
    if (!eoh)
        return;
    *eoh = '\0';
    if (strncmp(c->pend, "HTTP/1.1 101", 12) != 0 || check_accept(c, c->pend) != 0) {
        char line[96];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(c->pend, "\r\n"), c->pend);
        conn_fail(w, c, line);
        return;
    }
    c->state = CS_OPEN;
    w->inflight--;
    w->connect_ok++;
    size_t rest = c->pend_len - (size_t)(eoh + 4 - c->pend);
    memmove(c->pend, eoh + 4, rest);
    c->pend_len = (uint32_t)rest;
    if (rest) {
        size_t need;
        ssize_t used = parse_frames(w, c, c->pend, rest, now_rt, &need);
        if (used < 0) {
            conn_release(w, c);
            c->state = CS_CLOSED;
            return;
        }
        memmove(c->pend, c->pend + used, rest - (size_t)used);
        c->pend_len = (uint32_t)(rest - (size_t)used);
    }
    if (c->slow)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL); /* never read again */
}

static void on_readable(struct worker *w, struct conn *c)
{
    size_t keep = c->state == CS_OPEN ? c->pend_len : 0;
    if (keep && keep + 65536 > w->buf_cap) {
        size_t nc = w->buf_cap * 2;
        while (nc < keep + 65536)
            nc *= 2;
        char *nb = realloc(w->buf, nc);
        if (!nb)
            return;
        w->buf = nb;
        w->buf_cap = nc;
    }
    if (keep)
        memcpy(w->buf, c->pend, keep);
    ssize_t r;
    if (c->ssl) {
        int n = SSL_read(c->ssl, w->buf + keep, (int)(w->buf_cap - keep));
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
        r = n > 0 ? n : (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? -1 : e == SSL_ERROR_ZERO_RETURN ? 0 : -2;
        if (r == -1)
            errno = EAGAIN;
        ERR_clear_error();
    } else {
        r = recv(c->fd, w->buf + keep, w->buf_cap - keep, 0);
    }
    if (r <= 0) {
        if (r == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        if (c->state == CS_OPEN) {
            w->closed_by_server++;
            conn_release(w, c);
            c->state = CS_CLOSED;
        } else {
            conn_fail(w, c, r == 0 ? "closed during handshake" : strerror(errno));
        }
        return;
    }
    uint64_t now_rt = now_us_clock(CLOCK_REALTIME);
    if (c->state == CS_HANDSHAKE) {
        on_handshake_data(w, c, w->buf, (size_t)r, now_rt);
        return;
    }
    size_t total = keep + (size_t)r, need;
    ssize_t used = parse_frames(w, c, w->buf, total, now_rt, &need);
    if (used < 0) {
        conn_release(w, c);
        c->state = CS_CLOSED;
        return;
    }
    c->pend_len = 0;
    if ((size_t)used < total &&
        buf_append(&c->pend, &c->pend_len, &c->pend_cap, w->buf + used, total - (size_t)used) != 0)
        w->protocol_errors++;
    if (c->pend_len == 0 && c->pend_cap > 4096) { /* don't keep big buffers per connection */
        free(c->pend);
        c->pend = NULL;
        c->pend_cap = 0;
    }
}

/* Starts connects while below the concurrency limit; handles timeouts and retries. */
static void pump_connects(struct worker *w)
{
    int limit = g_opt.concurrency / g_opt.threads;
    if (limit < 1)
        limit = 1;
    uint64_t now = mono_us();
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if ((c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE) &&
            now > c->deadline_us)
            conn_fail(w, c, "connect/handshake timeout");
    }
    for (int i = 0; i < w->nretry && w->inflight < limit;) {
        struct conn *c = &w->conns[w->retry[i]];
        if (now < c->deadline_us) {
            i++;
            continue;
        }
        int idx = w->retry[i];
        w->retry[i] = w->retry[--w->nretry];
        conn_start(w, c, idx * g_opt.threads + w->index);
    }
    while (w->next_connect < w->nconns && w->inflight < limit) {
        int i = w->next_connect++;
        conn_start(w, &w->conns[i], i * g_opt.threads + w->index);
    }
    if (!w->ready && w->next_connect == w->nconns && w->inflight == 0 && w->nretry == 0) {
        w->ready = 1;
        atomic_fetch_add(&g_threads_ready, 1);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[512];
    uint64_t last_pump = 0;
    pump_connects(w);
    while (!g_stop) {
        if (w->ready && g_opt.read_interval_us > 0) {
            /* Let data accumulate: fewer wake-ups of this thread (a wake-up is charged to
             * the sender on loopback) at the price of up to read_interval_us of latency,
             * which is measured like any other (the receive time is taken after recv). */
            struct timespec ts = {0, (long)g_opt.read_interval_us * 1000};
            nanosleep(&ts, NULL);
        }
        int n = epoll_wait(w->ep, evs, 512, w->ready ? (g_opt.send_rate > 0 ? 2 : 50) : 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = &w->conns[evs[i].data.u32];
            if (c->fd < 0)
                continue;
            if (c->state == CS_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    conn_connected(w, c);
                continue;
            }
            if (c->state == CS_TLS) {
                conn_tls_step(w, c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(w, c);
                /* TLS may hold decrypted bytes that epoll cannot see */
                while (c->ssl && c->state == CS_OPEN && !c->slow && SSL_pending(c->ssl) > 0)
                    on_readable(w, c);
            }
        }
        if (g_opt.send_rate > 0 && g_opt.send_json)
            pump_sends(w);
        if (!w->ready) {
            uint64_t now = mono_us();
            if (n > 0 || now - last_pump > 20000) {
                pump_connects(w);
                last_pump = now;
            }
        }
    }
    return NULL;
}

/* ---- option parsing ---- */
static int parse_range(const char *s, int *lo, int *hi)
{
    char *e;
    *lo = (int)strtol(s, &e, 10);
    if (e == s)
        return -1;
    *hi = *lo;
    if (*e == '-')
        *hi = (int)strtol(e + 1, &e, 10);
    return (*e == '\0' && *hi >= *lo) ? 0 : -1;
}

static int parse_srcs(const char *s)
{
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (g_opt.nsrc == WL_MAX_SRC || inet_pton(AF_INET, t, &g_opt.src[g_opt.nsrc]) != 1)
            return -1;
        g_opt.nsrc++;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tb-wsload [--host H] [--port P]\n"
            "         --paths FMT [--ids LO-HI] [--clients-per-path N]   (repeatable group)\n"
            "         [--duration S] [--source-addrs A,B,...] [--slow-fraction F] [--slow-rcvbuf B]\n"
            "         [--idle]\n"
            "         [--expect-seq N] [--vehicles V] [--vehicle-base B] [--expect-rate R]\n"
            "         [--threads T] [--concurrency C] [--connect-timeout S] [--label L]\n"
            "         [--tls] [--deflate]\n"
            "Each --paths starts a group; --ids/--clients-per-path apply to the last group.\n"
            "A path with %%d is opened once per id in the range; a path without it once.\n"
            "--expect-seq N: every vehicle publishes seq 1..N; missing tail counts as lost.\n"
            "--vehicles V: vehicles expected on paths without %%d (e.g. /ws/fleet).\n"
            "--send-rate R --send-json TEXT: every connection sends TEXT R times a second.\n"
            "--latency-after-ready: only messages published after READY enter the latency\n"
            "  histogram (a room's kept values, sent on join, are counted but not timed).\n");
}

static int parse_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"paths", required_argument, NULL, 'P'},
        {"ids", required_argument, NULL, 'I'},
        {"clients-per-path", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"source-addrs", required_argument, NULL, 'S'},
        {"slow-fraction", required_argument, NULL, 'f'},
        {"slow-rcvbuf", required_argument, NULL, 'R'},
        {"idle", no_argument, NULL, 'i'},
        {"expect-seq", required_argument, NULL, 'e'},
        {"vehicles", required_argument, NULL, 'v'},
        {"vehicle-base", required_argument, NULL, 'b'},
        {"expect-rate", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"concurrency", required_argument, NULL, 'C'},
        {"connect-timeout", required_argument, NULL, 'T'},
        {"label", required_argument, NULL, 'L'},
        {"read-interval-us", required_argument, NULL, 'W'},
        {"tls", no_argument, NULL, 'X'},
        {"deflate", no_argument, NULL, 'Z'},
        {"send-rate", required_argument, NULL, 'G'},
        {"send-json", required_argument, NULL, 'J'},
        {"latency-after-ready", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0}};
    int ch;
    struct group *g = NULL;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': g_opt.host = optarg; break;
        case 'p': g_opt.port = atoi(optarg); break;
        case 'P':
            if (g_opt.ngroups == WL_MAX_GROUPS)
                return -1;
            g = &g_opt.groups[g_opt.ngroups++];
            *g = (struct group){.fmt = optarg, .id_lo = 0, .id_hi = 0, .per_path = 1};
            break;
        case 'I':
            if (!g || parse_range(optarg, &g->id_lo, &g->id_hi) != 0)
                return -1;
            break;
        case 'c':
            if (!g || (g->per_path = atoi(optarg)) < 1)
                return -1;
            break;
        case 'd': g_opt.duration = atof(optarg); break;
        case 'S':
            if (parse_srcs(optarg) != 0)
                return -1;
            break;
        case 'f': g_opt.slow_fraction = atof(optarg); break;
        case 'R': g_opt.slow_rcvbuf = atoi(optarg); break;
        case 'i': g_opt.idle = 1; break;
        case 'e': g_opt.expect_seq = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'v': g_opt.vehicles = atoi(optarg); break;
        case 'b': g_opt.vehicle_base = atoi(optarg); break;
        case 'r': g_opt.expect_rate = atof(optarg); break;
        case 't': g_opt.threads = atoi(optarg); break;
        case 'C': g_opt.concurrency = atoi(optarg); break;
        case 'T': g_opt.connect_timeout = atof(optarg); break;
        case 'L': g_opt.label = optarg; break;
        case 'W': g_opt.read_interval_us = atoi(optarg); break;
        case 'X': g_opt.tls = 1; break;
        case 'Z': g_opt.deflate = 1; break;
        case 'G': g_opt.send_rate = atof(optarg); break;
        case 'J': g_opt.send_json = optarg; break;
        case 'A': g_opt.latency_after_ready = 1; break;
        default: return -1;
        }
    }
    if (g_opt.ngroups == 0 || g_opt.threads < 1 || g_opt.threads > 64 || g_opt.port <= 0 ||
        g_opt.slow_fraction < 0 || g_opt.slow_fraction > 1 || g_opt.concurrency < 1)
        return -1;
    return 0;
}

/* ---- set-up, merge, report ---- */
static int count_conns(void)
{
    int n = 0;
    for (int i = 0; i < g_opt.ngroups; i++) {
        const struct group *g = &g_opt.groups[i];
        int ids = strstr(g->fmt, "%d") ? g->id_hi - g->id_lo + 1 : 1;
        n += ids * g->per_path;
    }
    return n;
}

/* Distributes connections round-robin over workers; marks every k-th one slow. */
static int setup_workers(struct worker *ws, int total)
{
    int nt = g_opt.threads;
    for (int t = 0; t < nt; t++) {
        struct worker *w = &ws[t];
        w->index = t;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->conns = calloc((size_t)(total / nt + 1), sizeof *w->conns);
        w->retry = calloc((size_t)(total / nt + 1), sizeof *w->retry);
        w->buf_cap = WL_READ_BUF;
        w->buf = malloc(w->buf_cap);
        if (w->ep < 0 || !w->conns || !w->retry || !w->buf)
            return -1;
        if (g_opt.deflate && inflateInit2(&w->zs, -15) != Z_OK)
            return -1;
    }
    int k = 0;
    for (int gi = 0; gi < g_opt.ngroups; gi++) {
        const struct group *g = &g_opt.groups[gi];
        int has_id = strstr(g->fmt, "%d") != NULL;
        for (int rep = 0; rep < g->per_path; rep++) {
            for (int id = g->id_lo; id <= (has_id ? g->id_hi : g->id_lo); id++, k++) {
                struct worker *w = &ws[k % nt];
                struct conn *c = &w->conns[w->nconns++];
                c->fd = -1;
                c->group = gi;
                c->id = has_id ? id : -1;
                c->room = -1;
                double f = g_opt.slow_fraction;
                c->slow = (int)((k + 1) * f) > (int)(k * f);
            }
        }
    }
    return 0;
}

/* Adds the missing tail of every expected stream of every fast open connection. */
static void count_tail_loss(struct worker *w)
{
    if (!g_opt.expect_seq || g_opt.idle)
        return;
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->slow || c->state == CS_FAILED)
            continue;
        int lo = c->id, hi = c->id;
        if (c->id < 0) {
            lo = g_opt.vehicle_base;
            hi = g_opt.vehicle_base + (g_opt.vehicles > 0 ? g_opt.vehicles : 1) - 1;
        }
        int ri = c->room >= 0 ? c->room : room_lookup(w, "(never received)", 16);
        for (int v = lo; v <= hi; v++) {
            struct stream *s = (uint32_t)v < c->nstreams ? &c->streams[v] : NULL;
            uint32_t last = s ? s->last : 0;
            if (last < g_opt.expect_seq) {
                w->rooms[ri].tail_lost += g_opt.expect_seq - last;
                w->rooms[ri].lost += g_opt.expect_seq - last;
            }
        }
    }
}

static uint64_t pct(const uint64_t *h, uint64_t count, double q)
{
    if (!count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)count);
    if (rank >= count)
        rank = count - 1;
    uint64_t acc = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        acc += h[i];
        if (acc > rank)
            return hist_upper(i);
    }
    return hist_upper(HIST_BUCKETS - 1);
}

static void report(struct worker *ws, int total, double run_s)
{
    struct worker sum = {0};
    struct room_stat *rooms = NULL;
    int nrooms = 0;
    int open_conns = 0, slow_conns = 0, receiving = 0, fast_open = 0;
    for (int t = 0; t < g_opt.threads; t++) {
        struct worker *w = &ws[t];
        count_tail_loss(w);
        for (int i = 0; i < HIST_BUCKETS; i++)
            sum.hist[i] += w->hist[i];
#define ADD(f) sum.f += w->f
        ADD(lat_sum_us); ADD(lat_count); ADD(frames); ADD(data_frames); ADD(other_frames);
        ADD(bytes); ADD(pings); ADD(connect_ok); ADD(connect_fail); ADD(connect_retries);
        ADD(closed_by_server); ADD(read_errors); ADD(protocol_errors);
        ADD(compressed_frames); ADD(inflated_bytes);
        ADD(sent); ADD(send_failed); ADD(replies); ADD(published); ADD(errors); ADD(rate_limited);
#undef ADD
        if (w->first_data_us && (!sum.first_data_us || w->first_data_us < sum.first_data_us))
            sum.first_data_us = w->first_data_us;
        if (w->last_data_us > sum.last_data_us)
            sum.last_data_us = w->last_data_us;
        for (int i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            slow_conns += c->slow;
            open_conns += c->state == CS_OPEN;
            fast_open += c->state == CS_OPEN && !c->slow;
            receiving += !c->slow && c->data_frames > 0;
        }
        for (int i = 0; i < w->nrooms; i++) {
            int j;
            for (j = 0; j < nrooms; j++)
                if (strcmp(rooms[j].name, w->rooms[i].name) == 0)
                    break;
            if (j == nrooms) {
                rooms = realloc(rooms, (size_t)(nrooms + 1) * sizeof *rooms);
                memset(&rooms[nrooms], 0, sizeof *rooms);
                strcpy(rooms[nrooms].name, w->rooms[i].name);
                nrooms++;
            }
            rooms[j].received += w->rooms[i].received;
            rooms[j].lost += w->rooms[i].lost;
            rooms[j].dup += w->rooms[i].dup;
            rooms[j].reordered += w->rooms[i].reordered;
            rooms[j].tail_lost += w->rooms[i].tail_lost;
        }
    }
    uint64_t lost = 0, dup = 0, reord = 0, tail = 0;
    for (int j = 0; j < nrooms; j++) {
        lost += rooms[j].lost;
        dup += rooms[j].dup;
        reord += rooms[j].reordered;
        tail += rooms[j].tail_lost;
    }
    double span = sum.last_data_us > sum.first_data_us
                      ? (double)(sum.last_data_us - sum.first_data_us) / 1e6
                      : 0.0;
    printf("{\"tool\":\"tb-wsload\",\"label\":\"%s\",\"conns_target\":%d,\"conns_ok\":%" PRIu64
           ",\"connect_failures\":%" PRIu64 ",\"connect_retries\":%" PRIu64
           ",\"conns_open_at_end\":%d,\"slow_conns\":%d,\"fast_open_at_end\":%d,"
           "\"conns_receiving\":%d,\"closed_by_server\":%" PRIu64 ",\"read_errors\":%" PRIu64
           ",\"protocol_errors\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"data_frames\":%" PRIu64
           ",\"other_frames\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"pings\":%" PRIu64
           ",\"run_s\":%.3f,\"data_span_s\":%.3f,\"recv_fps\":%.1f,",
           g_opt.label ? g_opt.label : "", total, sum.connect_ok, sum.connect_fail,
           sum.connect_retries, open_conns, slow_conns, fast_open, receiving,
           sum.closed_by_server, sum.read_errors, sum.protocol_errors, sum.frames,
           sum.data_frames, sum.other_frames, sum.bytes, sum.pings, run_s, span,
           span > 0 ? (double)sum.data_frames / span : 0.0);
    printf("\"lost\":%" PRIu64 ",\"tail_lost\":%" PRIu64 ",\"dup\":%" PRIu64
           ",\"reordered\":%" PRIu64 ",",
           lost, tail, dup, reord);
    if (g_opt.expect_rate > 0)
        printf("\"expect_rate\":%.1f,", g_opt.expect_rate);
    printf("\"tls\":%d,\"deflate\":%d,\"compressed_frames\":%" PRIu64 ",\"inflated_bytes\":%" PRIu64 ",",
           g_opt.tls, g_opt.deflate, sum.compressed_frames, sum.inflated_bytes);
    if (g_opt.send_rate > 0)
        printf("\"uplink\":{\"sent\":%" PRIu64 ",\"send_failed\":%" PRIu64 ",\"replies\":%" PRIu64
               ",\"published\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"rate_limited\":%" PRIu64 "},",
               sum.sent, sum.send_failed, sum.replies, sum.published, sum.errors, sum.rate_limited);
    uint64_t n = sum.lat_count;
    printf("\"lat_us\":{\"count\":%" PRIu64 ",\"mean\":%.1f,\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
           ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},",
           n, n ? (double)sum.lat_sum_us / (double)n : 0.0, pct(sum.hist, n, 0.50),
           pct(sum.hist, n, 0.90), pct(sum.hist, n, 0.99), pct(sum.hist, n, 0.999),
           pct(sum.hist, n, 1.0));
    /* Rooms: all of them when few; otherwise only the ones with anomalies. */
    printf("\"room_count\":%d,\"rooms\":{", nrooms);
    int shown = 0;
    for (int j = 0; j < nrooms && shown < 40; j++) {
        struct room_stat *r = &rooms[j];
        if (nrooms > 40 && !r->lost && !r->dup && !r->reordered)
            continue;
        printf("%s\"%s\":{\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"tail_lost\":%" PRIu64
               ",\"dup\":%" PRIu64 ",\"reordered\":%" PRIu64 "}",
               shown++ ? "," : "", r->name, r->received, r->lost, r->tail_lost, r->dup,
               r->reordered);
    }
    printf("},\"hist\":[");
    int first = 1;
    for (int i = 0; i < HIST_BUCKETS; i++)
        if (sum.hist[i]) {
            printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_upper(i), sum.hist[i]);
            first = 0;
        }
    printf("]}\n");
    fflush(stdout);
    free(rooms);
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    g_opt = (struct opts){.host = "127.0.0.1", .port = 8080, .duration = 10.0, .threads = 1,
                          .concurrency = 256, .connect_timeout = 15.0, .vehicles = 0,
                          .slow_rcvbuf = 4096};
    if (parse_opts(argc, argv) != 0) {
        usage();
        return 2;
    }
    srand((unsigned)(getpid() ^ (unsigned)time(NULL)));
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (g_opt.tls) {
        g_ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!g_ssl_ctx) {
            fprintf(stderr, "tb-wsload: cannot set up TLS\n");
            return 1;
        }
        SSL_CTX_set_verify(g_ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(g_ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    int total = count_conns();
    struct worker *ws = calloc((size_t)g_opt.threads, sizeof *ws);
    if (!ws || setup_workers(ws, total) != 0) {
        fprintf(stderr, "tb-wsload: out of memory\n");
        return 1;
    }
    uint64_t t0 = mono_us();
    if (g_opt.latency_after_ready)
        atomic_store(&g_latency_from_us, UINT64_MAX);
    for (int t = 0; t < g_opt.threads; t++)
        pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]);
    while (!g_stop && atomic_load(&g_threads_ready) < g_opt.threads)
        usleep(10000);
    uint64_t t_ready = mono_us();
    if (g_opt.latency_after_ready)
        atomic_store(&g_latency_from_us, now_us_clock(CLOCK_REALTIME));
    uint64_t ok = 0, fail = 0;
    for (int t = 0; t < g_opt.threads; t++) {
        ok += ws[t].connect_ok;
        fail += ws[t].connect_fail;
    }
    fprintf(stderr, "READY conns_ok=%" PRIu64 " failures=%" PRIu64 " connect_s=%.2f\n", ok, fail,
            (double)(t_ready - t0) / 1e6);
    while (!g_stop && (g_opt.duration <= 0 || (double)(mono_us() - t_ready) / 1e6 < g_opt.duration))
        usleep(20000);
    g_stop = 1;
    for (int t = 0; t < g_opt.threads; t++)
        pthread_join(ws[t].thread, NULL);
    report(ws, total, (double)(mono_us() - t_ready) / 1e6);
    int rc = 0;
    for (int t = 0; t < g_opt.threads; t++) {
        for (int i = 0; i < ws[t].nconns; i++) {
            conn_release(&ws[t], &ws[t].conns[i]);
            free(ws[t].conns[i].streams);
        }
        free(ws[t].conns);
        free(ws[t].retry);
        free(ws[t].buf);
        free(ws[t].rooms);
        free(ws[t].zbuf);
        if (g_opt.deflate)
            inflateEnd(&ws[t].zs);
        close(ws[t].ep);
    }
    free(ws);
    SSL_CTX_free(g_ssl_ctx);
    return rc;
}
