/* ws_server: libwebsockets glue (see ws_server.h). Service thread, except
 * ws_server_wake (any thread, async-signal-safe: lws_cancel_service only writes to the
 * event pipe). */
#include "ws_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ev.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>

#include "access.h"
#include "bridge.h"
#include "fanout.h"
#include "http_api.h"
#include "log.h"
#include "mqtt_client.h"
#include "netaddr.h"
#include "notify.h"
#include "reload.h"
#include "throttle.h"
#include "transport.h"
#include "ws_auth.h"
#include "writer.h"

#define PATH_MAX_LEN 1024
#define SHUTDOWN_GRACE_MS 3000

/* Per-connection user data lws allocates for us (HTTP and WebSocket). */
struct pss {
    struct conn *conn;      /* WebSocket connections */
    struct sbuf rx;         /* reassembly of fragmented client frames */
    bool rx_binary, rx_overflow;
    bool deflate;           /* the handshake accepted permessage-deflate */
    uint64_t last_ping_ms;  /* our last ping (idle_check) */
    uint64_t idle_cut_ms;   /* the idle close frame is out: cut at this time (0 = not) */
    char *body;             /* HTTP response body being sent */
    size_t body_len;
    struct addr_key addr;   /* counted in the address table (addr_counted) */
    bool addr_counted;
};

#define TICK_US (250 * LWS_US_PER_MS)
#define FD_MAX_LISTEN 2 /* IPv4 and IPv6 */

struct ws_server {
    struct lws_context *ctx;
    /* The event loop lws runs on when its libev plugin is available (epoll: the cost of
     * a wake-up does not grow with the number of connections); NULL when lws runs its own
     * poll() loop. Ours, so the service loop can check the shutdown state between events. */
    struct ev_loop *loop;
    struct bridge *br;
    struct reload *rl;
    struct mqtt_client *mqtt;
    lws_sorted_usec_list_t tick_sul;
    struct lws_vhost *admin_vh; /* server.admin_listen: HTTP admin paths, anonymous; NULL = none */
    uint64_t next_idle_sweep_ms;
    lws_sorted_usec_list_t backlog_sul;
    size_t conn_cap;        /* WebSocket connections the descriptors allow (set_conn_cap) */
    int listen_fd[FD_MAX_LISTEN], n_listen;
    int spare_fd;           /* freed to accept-and-close the backlog (shed_backlog) */
    uint64_t shed;          /* connections refused that way */
    struct addr_table *addrs; /* limits per source address (limits.max_addresses) */
    struct transport *tr;   /* wss:// and permessage-deflate */
    unsigned reloads_seen;  /* reload_successes when the TLS pair was last loaded */
};

static void on_backlog(lws_sorted_usec_list_t *sul);
static void idle_sweep(struct ws_server *ws, uint64_t now);

/* A reload (SIGHUP or a changed file) may name a new certificate, or the same files with
 * new contents: after each one the pair is loaded again for new connections. */
static void poll_reload(struct ws_server *ws, uint64_t now)
{
    reload_poll(ws->rl, ws->br, now);
    unsigned n = reload_successes(ws->rl);
    if (n == ws->reloads_seen)
        return;
    ws->reloads_seen = n;
    transport_tls_reload(ws->tr, &ws->br->cfg->server);
}

/* One MQTT batch; the frames it queues are written directly at its end (writer.h). A
 * larger backlog continues right after this round of socket events. */
static void process_mqtt(struct ws_server *ws)
{
    writer_batch_begin(ws->br->writer);
    bool more = bridge_process_mqtt(ws->br);
    writer_batch_end(ws->br->writer);
    if (more)
        lws_sul_schedule(ws->ctx, 0, &ws->backlog_sul, on_backlog, 1);
}

static void on_backlog(lws_sorted_usec_list_t *sul)
{
    process_mqtt(lws_container_of(sul, struct ws_server, backlog_sul));
}

/* Periodic work on the service thread: timers of the bridge and the shutdown deadline. */
static void on_tick(lws_sorted_usec_list_t *sul)
{
    struct ws_server *ws = lws_container_of(sul, struct ws_server, tick_sul);
    struct bridge *br = ws->br;
    /* Frames the tick queues (heartbeats to every connection, alerts, rate-limited
     * values) are written like an MQTT batch: directly, shared with the writer threads,
     * instead of one writable event per connection. */
    uint64_t now = tb_now_ms();
    mqtt_client_tick(ws->mqtt, now); /* first connection still to make? */
    writer_batch_begin(br->writer);
    poll_reload(ws, now);
    bridge_tick(br, now);
    idle_sweep(ws, now);
    notify_watchdog(&br->notify, now);
    writer_batch_end(br->writer);
    lws_sul_schedule(ws->ctx, 0, &ws->tick_sul, on_tick, TICK_US);
}

void ws_server_wake(void *ud)
{
    struct ws_server *ws = ud;
    if (ws && ws->ctx)
        lws_cancel_service(ws->ctx);
}

static int uri_path(struct lws *wsi, char *buf, size_t len)
{
    int n = lws_hdr_copy(wsi, buf, (int)len, WSI_TOKEN_GET_URI);
    if (n <= 0)
        buf[0] = '\0';
    return n;
}

/* allowed_origins: a browser's Origin must match an entry exactly, at its full length (a
 * long domain is still compared, never waved through). No Origin header: a non-browser
 * client, allowed. An Origin that cannot be read is refused. Returns NULL (allowed) or
 * why not, for the log (the header itself is not logged: it is the client's text). */
static const char *origin_refusal(const struct cfg_server *s, struct lws *wsi)
{
    if (!s->n_allowed_origins)
        return NULL;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0)
        return NULL; /* non-browser clients send no Origin */
    char *origin = malloc((size_t)len + 1);
    const char *why = "Origin header unreadable";
    if (origin && lws_hdr_copy(wsi, origin, len + 1, WSI_TOKEN_ORIGIN) == len) {
        why = "Origin not in allowed_origins";
        for (size_t i = 0; i < s->n_allowed_origins && why; i++)
            if (strcmp(s->allowed_origins[i], origin) == 0 || strcmp(s->allowed_origins[i], "*") == 0)
                why = NULL;
    }
    free(origin);
    return why;
}

/* The client's address as a key of the address table (IPv6 grouped by ipv6_prefix), and
 * whether it is a loopback address. */
static bool peer_key(const struct cfg_limits *l, struct lws *wsi, struct addr_key *k, bool *loopback)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
        throttle_addr_key((struct sockaddr *)&sa, (unsigned)l->ipv6_prefix, k) != 0)
        return false;
    *loopback = throttle_sockaddr_is_loopback((struct sockaddr *)&sa);
    return true;
}

/* Does the per-address part of limits apply to this client? */
static bool addr_limited(const struct ws_server *ws, const struct cfg_limits *l, bool loopback)
{
    return ws->addrs && (l->max_per_address || l->handshake_rate) && !(l->exempt_loopback && loopback);
}

static const char *status_text(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    default: return "Service Unavailable";
    }
}

/* A refused upgrade: counted by reason, logged (at most one line per reason per 10 s),
 * answered with a complete HTTP/1.1 response. lws_return_http_status would answer
 * HTTP/1.0 here (the request's version is not parsed yet when the upgrade is confirmed)
 * and cannot add Retry-After. Returns nonzero: lws closes the connection. */
static int refuse(struct ws_server *ws, struct lws *wsi, enum tb_refusal reason, unsigned status,
                  const char *why, unsigned retry_s, const char *path, const char *who)
{
    ws->br->st.refused[reason]++;
    if (log_ratelimit_allow_capped("ws-refused", tb_refusal_name(reason), 10000, 20))
        LOG_INFO("ws", "upgrade of %s from %s refused: %u %s (%llu refused so far for %s)", path, who,
                 status, why, (unsigned long long)ws->br->st.refused[reason], tb_refusal_name(reason));
    char body[160], retry[40] = "";
    int blen = snprintf(body, sizeof body, "%u %s: %s\n", status, status_text(status), why);
    if (retry_s)
        snprintf(retry, sizeof retry, "Retry-After: %u\r\n", retry_s);
    unsigned char buf[LWS_PRE + 512];
    int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\n%sCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     status, status_text(status), blen, retry, body);
    if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
        lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return -1;
}

#define RETRY_CAPACITY_S 5

/* limits.handshake_rate and max_per_address for the client's address; 0 = admitted. */
static int admit_address(struct ws_server *ws, struct lws *wsi, const char *path)
{
    const struct cfg_limits *l = &ws->br->cfg->limits;
    struct addr_key k;
    bool loopback;
    if (!peer_key(l, wsi, &k, &loopback) || !addr_limited(ws, l, loopback))
        return 0;
    struct addr_limits lim = {(unsigned)l->max_per_address, (double)l->handshake_rate, (double)l->handshake_burst};
    uint64_t retry_ms = 0;
    enum addr_verdict v = addr_table_admit(ws->addrs, &k, &lim, tb_now_ms(), &retry_ms);
    if (v == ADDR_OK)
        return 0;
    char who[64];
    throttle_addr_format(&k, (unsigned)l->ipv6_prefix, who, sizeof who);
    if (v == ADDR_RATE)
        return refuse(ws, wsi, TB_REFUSED_HANDSHAKE_RATE, 429, "too many handshakes from this address",
                      (unsigned)((retry_ms + 999) / 1000), path, who);
    if (v == ADDR_TOO_MANY)
        return refuse(ws, wsi, TB_REFUSED_PER_ADDRESS, 503, "too many connections from this address",
                      RETRY_CAPACITY_S, path, who);
    return refuse(ws, wsi, TB_REFUSED_ADDRESS_TABLE, 503, "too many client addresses", RETRY_CAPACITY_S,
                  path, who);
}

/* The client's address (its group, for IPv6) for the log of a refusal. */
static void peer_text(struct ws_server *ws, struct lws *wsi, char *buf, size_t len)
{
    struct addr_key k;
    bool loopback;
    const struct cfg_limits *l = &ws->br->cfg->limits;
    if (peer_key(l, wsi, &k, &loopback))
        throttle_addr_format(&k, (unsigned)l->ipv6_prefix, buf, len);
    else
        snprintf(buf, len, "?");
}

/* The admin listener serves the HTTP admin paths to anyone who can reach it (bind it to
 * a loopback or management address) and no WebSocket endpoints. */
static bool on_admin_listener(const struct ws_server *ws, struct lws *wsi)
{
    return ws->admin_vh && lws_get_vhost(wsi) == ws->admin_vh;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: decide before accepting. */
static int confirm_upgrade(struct ws_server *ws, struct lws *wsi)
{
    struct bridge *br = ws->br;
    char path[PATH_MAX_LEN], who[64];
    uri_path(wsi, path, sizeof path);
    peer_text(ws, wsi, who, sizeof who);
    struct topic_match m;
    const struct cfg_endpoint *ep = config_find_endpoint(br->cfg, path, &m);
    if (br->stopping)
        return refuse(ws, wsi, TB_REFUSED_SHUTDOWN, 503, "shutting down", RETRY_CAPACITY_S, path, who);
    int rc = admit_address(ws, wsi, path);
    if (rc)
        return rc;
    if (!ep || on_admin_listener(ws, wsi))
        return refuse(ws, wsi, TB_REFUSED_NOT_FOUND, 404, "no such WebSocket endpoint", 0, path, who);
    const char *why = origin_refusal(&br->cfg->server, wsi);
    if (why)
        return refuse(ws, wsi, TB_REFUSED_ORIGIN, 403, why, 0, path, who);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > WS_AUTH_MAX_PROTOCOL_HEADER)
        return refuse(ws, wsi, TB_REFUSED_BAD_REQUEST, 400, "Sec-WebSocket-Protocol longer than libwebsockets 4.1 "
                      "accepts (127 bytes): send the token as ?token= or in the auth message", 0, path, who);
    if (bridge_conn_count(br) >= (size_t)br->cfg->server.max_connections ||
        bridge_conn_count(br) >= ws->conn_cap)
        return refuse(ws, wsi, TB_REFUSED_CAPACITY, 503, "connection limit reached", RETRY_CAPACITY_S, path, who);
    if (ep->max_connections) {
        size_t *counts = calloc(br->cfg->n_endpoints, sizeof *counts);
        if (!counts)
            return -1;
        bridge_endpoint_counts(br, counts);
        size_t used = counts[ep - br->cfg->endpoints];
        free(counts);
        if (used >= (size_t)ep->max_connections)
            return refuse(ws, wsi, TB_REFUSED_CAPACITY, 503, "endpoint connection limit reached",
                          RETRY_CAPACITY_S, path, who);
    }
    return 0;
}

/* heartbeat.ws_ping and idle_timeout: lws' own retry_and_idle_policy hangs up silently
 * and its empty pings come back as empty pongs, which lws 4.1 never reports
 * (LWS_CALLBACK_RECEIVE_PONG needs a payload). So the bridge queues its own pings with a
 * payload and, when nothing (frame or pong) came in for idle_timeout, sends the
 * documented close frame (4009); a connection still open IDLE_CLOSE_GRACE_MS after that
 * close frame is cut. The checks run as one sweep over the connections every
 * IDLE_SWEEP_MS from the tick, not from a timer per connection: lws keeps its timers in
 * one sorted list, so 20,000 per-connection timers made every re-arm walk that list (it
 * took 90 % of the bridge's CPU with 19,000 idle connections). Pings and closes are due
 * at most IDLE_SWEEP_MS late. */
#define IDLE_CLOSE_GRACE_MS 3000
#define IDLE_SWEEP_MS 1000

static void send_ping(struct conn *c)
{
    static const char payload[] = "tb";
    struct tb_msg *m = msg_new_control(0x9, payload, sizeof payload - 1);
    if (m)
        conn_enqueue(c, m, NULL, false);
    msg_unref(m);
}

static void idle_check(const struct cfg_heartbeat *hb, struct conn *c, uint64_t now)
{
    struct pss *pss = c->wsi ? lws_wsi_user(c->wsi) : NULL;
    if (!pss || c->peer_closed)
        return;
    if (pss->idle_cut_ms) {
        if (now >= pss->idle_cut_ms) /* the idle close frame had its grace */
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return;
    }
    if (c->closing)
        return;
    uint64_t quiet = now - c->last_rx_ms;
    if (hb->idle_timeout_ms && quiet >= hb->idle_timeout_ms) {
        conn_close(c, TB_CLOSE_IDLE, "idle timeout: no pong, no frame");
        pss->idle_cut_ms = now + IDLE_CLOSE_GRACE_MS;
        return;
    }
    if (hb->ws_ping_ms && quiet >= hb->ws_ping_ms && now - pss->last_ping_ms >= hb->ws_ping_ms) {
        send_ping(c);
        pss->last_ping_ms = now;
    }
}

static void idle_sweep(struct ws_server *ws, uint64_t now)
{
    const struct cfg_heartbeat *hb = &ws->br->cfg->heartbeat;
    if ((!hb->ws_ping_ms && !hb->idle_timeout_ms) || now < ws->next_idle_sweep_ms)
        return;
    ws->next_idle_sweep_ms = now + IDLE_SWEEP_MS;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&ws->br->conns)) {
        idle_check(hb, lws_container_of(d, struct conn, in_bridge), now);
    } lws_end_foreach_dll(d);
}

/* RFC 6455 5.5.1 / 7.4: a close frame's payload is empty or a code of 2 bytes (plus a
 * reason); the codes a peer may send are 1000-1003, 1007-1014 and 3000-4999. */
static bool close_payload_valid(const unsigned char *p, size_t len)
{
    if (len == 0)
        return true;
    if (len < 2)
        return false;
    unsigned code = (unsigned)p[0] << 8 | p[1];
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The client's close frame: lws echoes a valid one; an invalid one fails the connection
 * with 1002 (protocol error), as RFC 6455 asks. Nothing of ours may follow either. */
static int on_peer_close(struct lws *wsi, struct pss *pss, const unsigned char *in, size_t len)
{
    if (pss->conn)
        pss->conn->peer_closed = true;
    if (close_payload_valid(in, len))
        return 0;
    static const char why[] = "invalid close frame";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)why, sizeof why - 1);
    return -1;
}

/* The URL's arguments (lws keeps them decoded, one fragment each) joined with '&' for
 * the resume (since/epoch); arguments that do not fit whole are left out. */
static void url_args(struct lws *wsi, char *buf, size_t len)
{
    size_t used = 0;
    char frag[256];
    buf[0] = '\0';
    for (int i = 0; i < 128; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (used + (size_t)n + 2 > len)
            continue;
        if (used)
            buf[used++] = '&';
        memcpy(buf + used, frag, (size_t)n);
        used += (size_t)n;
        buf[used] = '\0';
    }
}

/* The connection counts against its address (max_per_address) until it closes. */
static void count_address(struct ws_server *ws, struct lws *wsi, struct pss *pss)
{
    const struct cfg_limits *l = &ws->br->cfg->limits;
    bool loopback;
    pss->addr_counted = peer_key(l, wsi, &pss->addr, &loopback) && addr_limited(ws, l, loopback) &&
                        addr_table_opened(ws->addrs, &pss->addr, tb_now_ms());
}

static void uncount_address(struct ws_server *ws, struct pss *pss)
{
    if (pss->addr_counted && ws->addrs)
        addr_table_closed(ws->addrs, &pss->addr, tb_now_ms());
    pss->addr_counted = false;
}

/* The client's address for the log: the TCP peer, or behind server.trusted_proxies the
 * address they forwarded (X-Forwarded-For, netaddr_client). A header too long to copy is
 * ignored (the peer is used). */
static void client_address(const struct cfg_server *sv, struct lws *wsi, char *out, size_t len)
{
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    char xff[1024];
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS) || defined(LWS_HTTP_HEADERS_ALL)
    /* lws parses X-Forwarded-For itself when built with its uncommon headers (Debian's is) */
    bool have = sv->n_trusted_proxies &&
                lws_hdr_copy(wsi, xff, (int)sizeof xff, WSI_TOKEN_X_FORWARDED_FOR) > 0;
#else
    bool have = sv->n_trusted_proxies &&
                lws_hdr_custom_copy(wsi, xff, (int)sizeof xff, "x-forwarded-for:", 16) > 0;
#endif
    netaddr_client(peer[0] ? peer : "-", have ? xff : NULL, sv->trusted_proxies, sv->n_trusted_proxies, out, len);
}

static int on_established(struct ws_server *ws, struct lws *wsi, struct pss *pss)
{
    struct bridge *br = ws->br;
    char path[PATH_MAX_LEN], remote[64];
    uri_path(wsi, path, sizeof path);
    client_address(&br->cfg->server, wsi, remote, sizeof remote);
    char *credbuf = malloc(WS_AUTH_BUF);
    if (!credbuf)
        return -1;
    struct gate_cred cred = ws_auth_credential(wsi, credbuf, WS_AUTH_BUF, true);
    char args[1024];    /* may hold ?token=: wiped below like the credential */
    url_args(wsi, args, sizeof args);
    struct bridge_open_args oa = {&cred, remote, args};
    struct conn *c = bridge_open_with(br, wsi, path, &oa);
    OPENSSL_cleanse(args, sizeof args);
    OPENSSL_cleanse(credbuf, WS_AUTH_BUF);
    free(credbuf);
    if (!c)
        return -1;
    count_address(ws, wsi, pss);
    pss->conn = c;
    if (pss->deflate)
        conn_set_deflate(c);
    sbuf_init(&pss->rx);
    pss->last_ping_ms = 0;
    pss->idle_cut_ms = 0;
    return 0;
}

static int on_receive(struct bridge *br, struct lws *wsi, struct pss *pss, const char *in, size_t len)
{
    struct conn *c = pss->conn;
    if (!c)
        return -1;
    if (lws_is_first_fragment(wsi)) {
        sbuf_reset(&pss->rx);
        pss->rx_binary = lws_frame_is_binary(wsi);
        pss->rx_overflow = false;
    }
    if (!pss->rx_overflow) {
        if (pss->rx.len + len > br->cfg->server.max_message_bytes)
            pss->rx_overflow = true;
        else
            sbuf_append(&pss->rx, in, len);
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    if (pss->rx_overflow) {
        /* Told, then closed: a client that sends oversized frames is misbehaving. */
        conn_close(c, TB_CLOSE_TOO_BIG, "frame larger than max_message_bytes");
        return 0;
    }
    bridge_on_client_frame(br, c, pss->rx.data ? pss->rx.data : "", pss->rx.len, pss->rx_binary);
    if (pss->rx.cap > 4096)
        sbuf_free(&pss->rx); /* do not keep a large buffer for an idle connection */
    return 0;
}

static const char *mime_for(const char *path)
{
    static const struct { const char *ext, *mime; } types[] = {
        {".html", "text/html"}, {".js", "text/javascript"}, {".mjs", "text/javascript"},
        {".css", "text/css"}, {".json", "application/json"}, {".svg", "image/svg+xml"},
        {".png", "image/png"}, {".ico", "image/x-icon"}, {".wav", "audio/wav"},
        {".map", "application/json"}, {".txt", "text/plain"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].mime;
    return "application/octet-stream";
}

static int http_not_found(struct lws *wsi)
{
    if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
        return -1;
    return lws_http_transaction_completed(wsi);
}

/* The file a static path names, or false: only a regular file whose real path (symlinks
 * resolved) lies under the real path of static_dir, so no link leads out of it. */
static bool static_file(const char *dir, const char *path, char *out)
{
    char full[PATH_MAX_LEN * 2], root[PATH_MAX];
    size_t plen = strlen(path);
    snprintf(full, sizeof full, "%s%s%s", dir, path, plen && path[plen - 1] == '/' ? "index.html" : "");
    if (!realpath(dir, root) || !realpath(full, out))
        return false;
    size_t n = strlen(root);
    if (strncmp(out, root, n) != 0 || (out[n] != '/' && !(n == 1 && root[0] == '/')))
        return false;
    struct stat st;
    return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

static int serve_static(struct bridge *br, struct lws *wsi, const char *path)
{
    const char *dir = br->cfg->server.static_dir;
    char file[PATH_MAX];
    if (!dir || strstr(path, "..") || strchr(path, '\\') || !static_file(dir, path, file))
        return http_not_found(wsi);
    int n = lws_serve_http_file(wsi, file, mime_for(file), NULL, 0);
    if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
        return -1;
    return 0;
}

/* The admin paths' details need an identity with auth.admin_role (no auth section: open). */
static bool http_admin(struct bridge *br, struct lws *wsi)
{
    if (!br->cfg->auth)
        return true;
    char *buf = malloc(WS_AUTH_BUF);
    if (!buf)
        return false;
    struct gate_cred cred = ws_auth_credential(wsi, buf, WS_AUTH_BUF, false);
    const char *why = "";
    struct tb_identity *id = !cred.len ? NULL
                           : cred.api_key ? access_from_api_key(br->cfg->auth, cred.text, cred.len, &why)
                           : access_from_token(br->cfg->auth, cred.text, cred.len, (int64_t)time(NULL), &why);
    bool admin = access_is_admin(id);
    access_identity_free(id);
    OPENSSL_cleanse(buf, WS_AUTH_BUF);
    free(buf);
    return admin;
}

static int on_http(struct ws_server *ws, struct lws *wsi, struct pss *pss, const char *uri)
{
    struct bridge *br = ws->br;
    struct sbuf body;
    sbuf_init(&body);
    const char *ctype = NULL;
    struct http_api_src src = {br, ws->rl, ws_server_event_loop(ws), ws->addrs,
                                 !on_admin_listener(ws, wsi) && !http_admin(br, wsi)};
    int status = http_api_render(&src, uri, &body, &ctype);
    if (!status) {
        sbuf_free(&body);
        return serve_static(br, wsi, uri);
    }
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, body.len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        sbuf_free(&body);
        return 1;
    }
    free(pss->body);
    pss->body = malloc(LWS_PRE + body.len + 1);
    if (!pss->body) {
        sbuf_free(&body);
        return 1;
    }
    memcpy(pss->body + LWS_PRE, body.data ? body.data : "", body.len);
    pss->body_len = body.len;
    sbuf_free(&body);
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_http_writable(struct lws *wsi, struct pss *pss)
{
    if (!pss->body)
        return 0;
    int n = lws_write(wsi, (unsigned char *)pss->body + LWS_PRE, pss->body_len, LWS_WRITE_HTTP_FINAL);
    free(pss->body);
    pss->body = NULL;
    if (n < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct ws_server *ws = ctx ? lws_context_user(ctx) : NULL;
    struct bridge *br = ws ? ws->br : NULL;
    struct pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (!br)
            return 0;
        process_mqtt(ws);
        poll_reload(ws, tb_now_ms());
        if (br->stop_requested && !br->stopping)
            bridge_begin_shutdown(br);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(ws, wsi);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        if (!br || !pss || transport_confirm_extension(&br->cfg->server, wsi, in))
            return 1;
        pss->deflate = true;
        return 0;
    case LWS_CALLBACK_ADD_HEADERS:
        if (pss && pss->deflate)
            transport_add_headers(in);
        return 0;
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        return ws ? transport_tls_setup(ws->tr, user) : -1;
    case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
        return transport_client_cert_verdict(len);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(ws, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(br, wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->conn ? writer_on_writable(br->writer, pss->conn) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return on_peer_close(wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->conn)
            pss->conn->last_rx_ms = tb_now_ms();
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss->conn) {
            bridge_close(br, pss->conn);
            pss->conn = NULL;
        }
        uncount_address(ws, pss);
        sbuf_free(&pss->rx);
        return 0;
    case LWS_CALLBACK_HTTP:
        return on_http(ws, wsi, pss, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_http_writable(wsi, pss);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss) {
            free(pss->body);
            pss->body = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

/* rx_buffer_size: lws allocates it (+LWS_PRE) for every connection, and client frames
 * are reassembled by on_receive anyway, so it is small: 128 bytes still hold any control
 * frame (<= 125). tx_packet_size: the most lws hands to one send() (it would otherwise
 * be rx_buffer_size), so a 64 KiB coalesced batch goes out in one system call. */
#define WS_RX_BUFFER 128
#define WS_TX_PACKET (64 * 1024)

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len);

static struct lws_protocols protocols[] = {
    {"telebridge", callback, sizeof(struct pss), WS_RX_BUFFER, 0, NULL, WS_TX_PACKET},
    /* chosen when a browser offers "bearer, <token>" (ws_auth.c); the same service */
    {"bearer", callback, sizeof(struct pss), WS_RX_BUFFER, 0, NULL, WS_TX_PACKET},
    {"tb-shared-listen", listen_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}
};

/* Descriptors. At start the soft RLIMIT_NOFILE is raised to the hard limit, and WebSocket
 * upgrades are refused (503) FD_RESERVE + FD_HTTP_RESERVE descriptors below it: the
 * reserve is for the broker, the reload watcher, event descriptors and the files the
 * bridge opens, the HTTP part for /health, the dashboard and the refusals themselves.
 * Should accept() still fail with EMFILE / ENFILE (half-open HTTP connections, say), lws
 * logs it and returns with the connection still pending, so the listen socket stays
 * readable and the loop would spin on it: then the bridge frees its spare descriptor and
 * accepts and closes every pending connection (shed_backlog; the refused clients see the
 * connection closed), so the next wake-up is the next new client, not the same one. */
#define FD_RESERVE 64
#define FD_HTTP_RESERVE 32

/* The lws log callback has no user pointer: the server whose backlog to shed. Service
 * thread only (lws logs accept() failures there). */
static struct ws_server *g_shed_ws;

static void shed_backlog(struct ws_server *ws, int err)
{
    if (ws->spare_fd >= 0)
        close(ws->spare_fd);
    ws->spare_fd = -1;
    unsigned long n = 0;
    for (int i = 0; i < ws->n_listen; i++)
        for (int fd; (fd = accept4(ws->listen_fd[i], NULL, NULL, SOCK_CLOEXEC)) >= 0; n++)
            close(fd);
    ws->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ws->shed += n;
    ws->br->st.refused[TB_REFUSED_CAPACITY] += n;
    if (log_ratelimit_allow("ws.shed", 10000))
        LOG_WARN("ws", "out of descriptors (%s): refused %lu pending connection%s, %llu in all",
                 strerror(err), n, n == 1 ? "" : "s", (unsigned long long)ws->shed);
}

/* True for lws' "accept: errno 24" (EMFILE) and 23 (ENFILE); sets *err. */
static bool accept_out_of_fds(const char *line, int *err)
{
    static const char prefix[] = "accept: errno ";
    const char *p = strstr(line, prefix);
    if (!p)
        return false;
    *err = atoi(p + sizeof prefix - 1);
    return *err == EMFILE || *err == ENFILE;
}

/* lws' error lines, rate-limited: a condition that repeats on every event gives one line
 * per kind every 10 s, at most 20 lines per 10 s in all, and the next line that gets
 * through says how many were suppressed. */
static void lws_log_bridge(int level, const char *line)
{
    static _Atomic unsigned long suppressed;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (!(level & LLL_ERR)) {
        LOG_DEBUG("lws", "%.*s", (int)n, line);
        return;
    }
    int err;
    if (g_shed_ws && accept_out_of_fds(line, &err)) {
        shed_backlog(g_shed_ws, err);
        return;
    }
    if (!log_ratelimit_allow_capped("lws", line, 10000, 20)) {
        suppressed++;
        return;
    }
    unsigned long before = atomic_exchange(&suppressed, 0);
    if (before)
        LOG_WARN("lws", "%.*s (%lu similar lines suppressed)", (int)n, line, before);
    else
        LOG_WARN("lws", "%.*s", (int)n, line);
}

/* Raises the soft descriptor limit to the hard one; returns the limit (0 = unknown). */
static rlim_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    return rl.rlim_cur == RLIM_INFINITY ? 0 : rl.rlim_cur;
}

static void set_conn_cap(struct ws_server *ws, rlim_t limit)
{
    size_t cfg_max = (size_t)ws->br->cfg->server.max_connections;
    ws->conn_cap = SIZE_MAX;
    if (!limit)
        return;
    ws->conn_cap = limit > 2 * (FD_RESERVE + FD_HTTP_RESERVE) ? (size_t)(limit - FD_RESERVE - FD_HTTP_RESERVE)
                                                               : (size_t)limit / 2;
    if (cfg_max > ws->conn_cap)
        LOG_WARN("ws", "server.max_connections %zu is more than the descriptor limit allows "
                       "(RLIMIT_NOFILE %llu): at most %zu WebSocket connections (raise the hard "
                       "limit: ulimit -n, LimitNOFILE=)", cfg_max, (unsigned long long)limit, ws->conn_cap);
}

/* ---- server.reuse_port -------------------------------------------------------------
 * lws 4.1 sets no SO_REUSEPORT on its listen socket (LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE
 * only lets vhosts of one process share a port), and the option must be set before
 * bind(). So with reuse_port the vhost listens nowhere (CONTEXT_PORT_NO_LISTEN_SERVER):
 * the bridge opens the listen socket itself, with SO_REUSEPORT, hands it to lws as a raw
 * descriptor to watch, and adopts every connection it accepts (lws_adopt_socket_vhost:
 * from there on the usual HTTP / WebSocket path). The kernel spreads new connections
 * over the processes listening on the port. */
#define ACCEPT_BATCH 64

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    (void)user; (void)in; (void)len;
    /* lws picks a WebSocket's protocol by the subprotocol the client offers: a client naming
     * this one must not get a connection the bridge never sees (no limits, no gate). */
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION || reason == LWS_CALLBACK_ESTABLISHED)
        return -1;
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    struct lws_context *ctx = lws_get_context(wsi);
    struct ws_server *ws = lws_context_user(ctx);
    int lfd = lws_get_socket_fd(wsi);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                shed_backlog(ws, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNABORTED && log_ratelimit_allow("ws.accept", 10000))
                LOG_WARN("ws", "accept: %s", strerror(errno));
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!lws_adopt_socket_vhost(lws_get_vhost(wsi), fd))   /* closes fd on failure */
            LOG_WARN("ws", "could not adopt an accepted connection");
    }
    return 0;
}

/* A listen socket with SO_REUSEPORT on host (NULL: every address, IPv6 dual stack when
 * available) and port; -1 with a log line when it cannot be opened. */
static int shared_listen_socket(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    char serv[16];
    snprintf(serv, sizeof serv, "%d", port);
    if (!host)
        hints.ai_family = AF_INET6;
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0 && !host) {
        hints.ai_family = AF_INET;
        rc = getaddrinfo(host, serv, &hints, &res);
    }
    if (rc != 0) {
        LOG_ERROR("ws", "reuse_port: %s:%d: %s", host ? host : "*", port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, zero = 0;
    if (fd >= 0 && res->ai_family == AF_INET6 && !host)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        LOG_ERROR("ws", "reuse_port: cannot listen on %s:%d: %s (is a process without "
                  "reuse_port on it?)", host ? host : "*", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int start_shared_listener(struct ws_server *ws, const struct cfg_server *s)
{
    int fd = shared_listen_socket(s->listen_host && strcmp(s->listen_host, "0.0.0.0") != 0 ? s->listen_host : NULL,
                                  s->port);
    if (fd < 0)
        return -1;
    lws_sock_file_fd_type u = {.filefd = fd};
    struct lws_vhost *vh = lws_get_vhost_by_name(ws->ctx, "default");
    if (!vh || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, "tb-shared-listen", NULL)) {
        LOG_ERROR("ws", "reuse_port: lws did not take the listen socket");
        return -1;    /* lws closed fd */
    }
    LOG_INFO("ws", "reuse_port: listen socket shared with other processes (SO_REUSEPORT)");
    return 0;
}

/* The listen sockets lws opened on our port (for shed_backlog). */
static void find_listen_fds(struct ws_server *ws, int port)
{
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && ws->n_listen < FD_MAX_LISTEN && (e = readdir(d));) {
        int fd = atoi(e->d_name), on = 0;
        socklen_t olen = sizeof on;
        struct sockaddr_storage sa;
        socklen_t slen = sizeof sa;
        if (e->d_name[0] == '.' || fd == dirfd(d) ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) != 0 || !on ||
            getsockname(fd, (struct sockaddr *)&sa, &slen) != 0)
            continue;
        int p = sa.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&sa)->sin_port)
              : sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port) : -1;
        if (p != port)
            continue;
        /* lws' listen sockets are non-blocking; make sure, shed_backlog must never block */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
            ws->listen_fd[ws->n_listen++] = fd;
    }
    if (d)
        closedir(d);
    if (!ws->n_listen)
        LOG_WARN("ws", "listen socket not found: accept() failures cannot shed the backlog");
}

/* Creates the context on a libev (epoll) loop; without the plugin (package
 * libwebsockets-evlib-ev), or with TB_EVENT_LOOP=poll, on lws' own poll() loop. */
static struct lws_context *create_context(struct ws_server *ws, struct lws_context_creation_info *info)
{
    const char *want = getenv("TB_EVENT_LOOP");
    if (!want || strcmp(want, "poll") != 0) {
        ws->loop = ev_loop_new(EVBACKEND_EPOLL);
        if (!ws->loop)
            ws->loop = ev_loop_new(EVFLAG_AUTO);
    }
    if (ws->loop) {
        void *loops[1] = {ws->loop};
        struct lws_context_creation_info ev_info = *info;
        ev_info.options |= LWS_SERVER_OPTION_LIBEV;
        ev_info.foreign_loops = loops;
        struct lws_context *ctx = lws_create_context(&ev_info);
        if (ctx) {
            LOG_DEBUG("ws", "event loop: libev (backend %u)", ev_backend(ws->loop));
            return ctx;
        }
        ev_loop_destroy(ws->loop);
        ws->loop = NULL;
        /* A busy port fails either way; the poll() context tells which it was. */
        ctx = lws_create_context(info);
        if (ctx)
            LOG_WARN("ws", "libev event loop unavailable (is libwebsockets-evlib-ev "
                           "installed?); using poll()");
        return ctx;
    }
    return lws_create_context(info);
}

/* server.admin_listen: a second vhost on the same context and loop (restart needed). */
static int start_admin_listener(struct ws_server *ws, const struct lws_context_creation_info *main_info,
                                const struct cfg_server *s)
{
    struct lws_context_creation_info ai = *main_info;
    ai.port = s->admin_port;
    ai.iface = strcmp(s->admin_host, "0.0.0.0") != 0 ? s->admin_host : NULL;
    ai.vhost_name = "admin";
    ws->admin_vh = lws_create_vhost(ws->ctx, &ai);
    if (!ws->admin_vh) {
        LOG_ERROR("ws", "cannot listen on admin_listen %s:%d", s->admin_host, s->admin_port);
        return -1;
    }
    LOG_INFO("ws", "admin listener on %s:%d (HTTP admin paths, no credential needed)", s->admin_host,
             s->admin_port);
    return 0;
}

/* writer_threads: auto = one less than the CPUs this process may run on (at most the
 * maximum): on one CPU the service thread writes alone. */
static int auto_writer_threads(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    n -= 1;
    return n < 0 ? 0 : n > CFG_MAX_WRITER_THREADS ? CFG_MAX_WRITER_THREADS : n;
}

struct ws_server *ws_server_start(struct bridge *br, struct reload *rl)
{
    struct ws_server *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->br = br;
    ws->rl = rl;
    ws->reloads_seen = reload_successes(rl);
    if (!(ws->tr = transport_new())) {
        free(ws);
        return NULL;
    }
    const struct cfg_server *s = &br->cfg->server;
    lws_set_log_level(LLL_ERR | (log_get_level() == TB_LOG_DEBUG ? LLL_WARN | LLL_NOTICE : 0), lws_log_bridge);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = s->port;
    info.iface = (s->listen_host && strcmp(s->listen_host, "0.0.0.0") != 0) ? s->listen_host : NULL;
    info.protocols = protocols;
    info.user = ws;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (info.iface && strchr(info.iface, ':'))
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    if (!info.iface)
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    if (s->reuse_port)
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;    /* start_shared_listener listens */
    info.timeout_secs = 10;
    /* lws' own validity timer (by default a ping after 300 s of silence) is re-armed on
     * every frame and pong a client sends, by insertion into one sorted list: a walk over
     * every connection's timer each time. At ~16,000 connections per process that walk
     * took the whole service thread. The bridge pings and closes quiet clients itself
     * (heartbeat.ws_ping, idle_timeout: idle_sweep), so lws' timer is switched off. */
    static const lws_retry_bo_t no_validity_timer = {.secs_since_valid_ping = 0,
                                                     .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity_timer;
    transport_context_info(s, &info);
    set_conn_cap(ws, raise_fd_limit());
    ws->addrs = addr_table_new(br->cfg->limits.max_addresses);
    if (!ws->addrs) {
        free(ws);
        return NULL;
    }
    ws->spare_fd = -1;
    ws->ctx = create_context(ws, &info);
    if (ws->ctx && s->reuse_port && start_shared_listener(ws, s) < 0) {
        lws_context_destroy(ws->ctx);
        ws->ctx = NULL;
        if (ws->loop)
            ev_loop_destroy(ws->loop);
        ws->loop = NULL;
    }
    if (!ws->ctx) {
        LOG_ERROR("ws", "cannot listen on %s:%d (address in use or not available?%s)",
                  s->listen_host ? s->listen_host : "*", s->port,
                  s->tls_cert ? " or the TLS setup failed" : "");
        addr_table_free(ws->addrs);
        transport_free(ws->tr);
        free(ws);
        return NULL;
    }
    if (s->admin_port && start_admin_listener(ws, &info, s) != 0) {
        lws_context_destroy(ws->ctx);
        if (ws->loop)
            ev_loop_destroy(ws->loop);
        free(ws);
        return NULL;
    }
    find_listen_fds(ws, s->port);
    ws->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g_shed_ws = ws;
    fanout_set_timer_context(br->fan, ws->ctx);
    int writers = s->writer_threads == CFG_WRITER_THREADS_AUTO ? auto_writer_threads()
                                                               : s->writer_threads;
    if (writer_start_threads(br->writer, (unsigned)writers) != 0)
        LOG_WARN("ws", "cannot start %d writer threads; the service thread writes alone", writers);
    else
        LOG_INFO("ws", "%d writer thread%s", writers, writers == 1 ? "" : "s");
    lws_sul_schedule(ws->ctx, 0, &ws->tick_sul, on_tick, TICK_US);
    LOG_INFO("ws", "listening on %s:%d (%s)", s->listen_host ? s->listen_host : "*", s->port,
             s->tls_cert ? s->tls_client_ca ? "wss://, client certificates required" : "wss://" : "ws://");
    return ws;
}

void ws_server_set_mqtt(struct ws_server *ws, struct mqtt_client *mqtt)
{
    ws->mqtt = mqtt;
}

void ws_server_set_reload(struct ws_server *ws, struct reload *rl)
{
    ws->rl = rl;
    ws->reloads_seen = reload_successes(rl);
}

const char *ws_server_event_loop(const struct ws_server *ws)
{
    return ws->loop ? "libev" : "poll";
}

int ws_server_run(struct ws_server *ws)
{
    struct bridge *br = ws->br;
    uint64_t deadline = 0;
    /* With libev, one loop iteration handles every ready descriptor, lws' timers and the
     * wake-ups of lws_cancel_service (ws_server_wake); then the shutdown state is checked
     * as after lws_service. */
    while (ws->loop ? (ev_run(ws->loop, EVRUN_ONCE), true) : lws_service(ws->ctx, 0) >= 0) {
        if (br->stop_requested && !br->stopping)
            bridge_begin_shutdown(br);
        if (!br->stopping)
            continue;
        if (!deadline)
            deadline = tb_now_ms() + SHUTDOWN_GRACE_MS;
        if (bridge_conn_count(br) == 0 || tb_now_ms() >= deadline)
            break;
    }
    return 0;
}

void ws_server_destroy(struct ws_server *ws)
{
    if (!ws)
        return;
    g_shed_ws = NULL;
    if (ws->spare_fd >= 0)
        close(ws->spare_fd);
    lws_sul_cancel(&ws->tick_sul);
    lws_sul_cancel(&ws->backlog_sul);
    struct lws_context *ctx = ws->ctx;
    lws_context_destroy(ctx);   /* closes the remaining connections (bridge_close) */
    ws->ctx = NULL;
    fanout_set_timer_context(ws->br->fan, NULL);
    if (ws->loop)
        ev_loop_destroy(ws->loop);
    addr_table_free(ws->addrs);
    transport_free(ws->tr);
    free(ws);
}
