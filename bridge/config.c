/* config: loads the YAML configuration into an immutable, refcounted snapshot.
 * Runs on whichever thread loads or reloads; the snapshot is then read-only and
 * shared by all threads (config_ref / config_unref use atomics).
 *
 * How: libyaml's document API (yaml_parser_load) gives a node tree where every node
 * has a start mark, so every error can say file:line:column. ${VAR} substitution runs
 * over every scalar first (config_schema.c); then each section is a table of cfg_field
 * rows applied by cfg_apply(). Patterns, templates and expressions are stored as nodes
 * by the tables and compiled here, once their mapping is complete, because a template
 * can only be checked against the captures of its own 'match' pattern.
 *
 * Nothing stops at the first error: every problem is collected, sorted by position and
 * returned, and the half-built snapshot is freed. Relative static_dir and tls_* paths
 * are resolved against the config file's directory at load time.
 *
 * YAML keys follow the struct fields, minus the unit suffix: a field "x_ms" is written
 * "x: 500ms" (durations), e.g. mqtt.reconnect_min / reconnect_max, routes' history_ttl. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config_schema.h"
#include "hash.h"
#include "netaddr.h"
#include "suggest.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define DAY_MS 86400000LL

/* ---- scalar setters with their own syntax ------------------------------------------ */

static int set_listen(struct loader *l, const yaml_node_t *n, const char *s, void *base)
{
    struct cfg_server *srv = base;
    const char *colon = strrchr(s, ':');
    const char *host = s, *port = colon ? colon + 1 : s;
    size_t hlen = colon ? (size_t)(colon - s) : 0;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    long long p;
    bool bad_host = colon && memchr(host, ':', hlen) && s[0] != '[';
    if (cfg_parse_int(port, &p) || p < 1 || p > 65535 || bad_host) {
        if (n)
            cfg_error(l, n, 0, "listen: expected host:port (e.g. 0.0.0.0:8080, [::1]:8080, :8080)");
        return -1;
    }
    free(srv->listen_host);
    srv->listen_host = hlen ? strndup(host, hlen) : strdup("0.0.0.0");
    srv->port = (int)p;
    return srv->listen_host ? 0 : -1;
}

/* "auto" (CFG_WRITER_THREADS_AUTO: one less than the CPUs the bridge may run on) or 0..16. */
static int set_writer_threads(struct loader *l, const yaml_node_t *n, const char *s, void *base)
{
    struct cfg_server *srv = base;
    long long v;
    if (strcmp(s, "auto") == 0) {
        srv->writer_threads = CFG_WRITER_THREADS_AUTO;
        return 0;
    }
    if (cfg_parse_int(s, &v) || v < 0 || v > CFG_MAX_WRITER_THREADS) {
        if (n)
            cfg_error(l, n, 0, "writer_threads must be 'auto' or between 0 and %d (got %s)",
                      CFG_MAX_WRITER_THREADS, s);
        return -1;
    }
    srv->writer_threads = (int)v;
    return 0;
}

/* server.admin_listen: the same syntax as listen, into admin_host / admin_port. */
static int set_admin_listen(struct loader *l, const yaml_node_t *n, const char *s, void *base)
{
    struct cfg_server *srv = base, tmp = {0};
    if (set_listen(l, NULL, s, &tmp)) {
        free(tmp.listen_host);
        if (n)
            cfg_error(l, n, 0, "admin_listen: expected host:port (e.g. 127.0.0.1:9090)");
        return -1;
    }
    free(srv->admin_host);
    srv->admin_host = tmp.listen_host;
    srv->admin_port = tmp.port;
    return 0;
}

static bool keep_admin_listen(void *next, const void *cur)
{
    struct cfg_server *n = next;
    const struct cfg_server *c = cur;
    bool host = cfg_keep_str(&n->admin_host, c->admin_host), port = n->admin_port != c->admin_port;
    n->admin_port = c->admin_port;
    return host || port;
}

/* 'listen' sets two fields; a reload that changes either keeps both (one "server.listen"). */
static bool keep_listen(void *next, const void *cur)
{
    struct cfg_server *n = next;
    const struct cfg_server *c = cur;
    bool host = cfg_keep_str(&n->listen_host, c->listen_host), port = n->port != c->port;
    n->port = c->port;
    return host || port;
}

static bool keep_writer_threads(void *next, const void *cur)
{
    struct cfg_server *n = next;
    const struct cfg_server *c = cur;
    if (n->writer_threads == c->writer_threads)
        return false;
    n->writer_threads = c->writer_threads;
    return true;
}

/* ---- mqtt, server, heartbeat: plain tables ----------------------------------------- */

static const char *const protocols[] = { "5", "5.0", "311", "3.1.1", NULL };
static const int protocol_values[] = { 5, 5, 311, 311 };

/* Rows written with MR / SR / HR need a restart to take effect: a reload keeps the running
 * value and reports the dotted key (config_keep_restart_settings). */
#define M(f) offsetof(struct cfg_mqtt, f)
#define MR(k) .name = k, .restart = "mqtt." k
static const struct cfg_field mqtt_fields[] = {
    { MR("host"), .type = CT_STR, .off = M(host), .def = "127.0.0.1" },
    { MR("port"), .type = CT_INT, .off = M(port), .min = 1, .max = 65535 },
    { MR("client_id"), .type = CT_OPTSTR, .off = M(client_id) },   /* "" = the default */
    { MR("username"), .type = CT_OPTSTR, .off = M(username) },
    { MR("password"), .type = CT_OPTSTR, .off = M(password) },
    { MR("keepalive"), .type = CT_INT, .off = M(keepalive), .min = 5, .max = 65535, .def = "30" },
    { MR("protocol"), .type = CT_ENUM, .off = M(protocol), .def = "5", .choices = protocols, .enum_values = protocol_values },
    { MR("qos"), .type = CT_INT, .off = M(qos), .min = 0, .max = 1, .def = "1" },
    { MR("clean_session"), .type = CT_BOOL, .off = M(clean_session), .def = "true" },
    { MR("tls_ca"), .type = CT_PATH, .off = M(tls_ca) },
    { MR("tls_cert"), .type = CT_PATH, .off = M(tls_cert) },
    { MR("tls_key"), .type = CT_PATH, .off = M(tls_key) },
    { MR("tls_insecure"), .type = CT_BOOL, .off = M(tls_insecure), .def = "false" },
    { MR("reconnect_min"), .type = CT_DUR_INT, .off = M(reconnect_min_ms), .min = 10, .max = 3600000, .def = "500ms" },
    { MR("reconnect_max"), .type = CT_DUR_INT, .off = M(reconnect_max_ms), .min = 10, .max = 3600000, .def = "10s" },
};
#undef M
#undef MR
static const struct cfg_schema mqtt_schema = { "mqtt", mqtt_fields, COUNT(mqtt_fields) };

/* server.trusted_proxies items: an IPv4/IPv6 address or CIDR (netaddr.h). */
static int check_trusted_proxy(struct loader *l, const yaml_node_t *n, const char *text, void *base)
{
    (void)base;
    struct netaddr_cidr c;
    if (netaddr_parse_cidr(text, &c) != 0)
        return cfg_error(l, n, 0, "trusted_proxies: '%s' is not an IP address or CIDR (10.0.0.0/8, ::1)", text);
    return 0;
}

#define D(f) offsetof(struct cfg_deflate, f)
static const struct cfg_field deflate_fields[] = {
    { .name = "enabled", .type = CT_BOOL, .off = D(enabled), .def = "true" },
    { .name = "min_bytes", .type = CT_SIZE, .off = D(min_bytes), .min = 0, .max = 64LL << 20, .def = "256" },
    { .name = "level", .type = CT_INT, .off = D(level), .min = 1, .max = 9, .def = "1" },
};
#undef D
static const struct cfg_schema deflate_schema = { "server.deflate", deflate_fields, COUNT(deflate_fields) };

static int section_deflate(struct loader *l, const yaml_node_t *n, void *base)
{
    return cfg_apply(l, n, &deflate_schema, &((struct cfg_server *)base)->deflate);
}

static const char *const deliveries[] = { "once", "per_room", NULL };

#define S(f) offsetof(struct cfg_server, f)
#define SR(k) .name = k, .restart = "server." k
static const struct cfg_field server_fields[] = {
    { SR("listen"), .type = CT_CUSTOM, .off = 0, .def = "0.0.0.0:8080", .scalar = set_listen, .keep = keep_listen },
    { .name = "allowed_origins", .type = CT_STRLIST, .off = S(allowed_origins), .off_n = S(n_allowed_origins) },
    { .name = "max_connections", .type = CT_INT, .off = S(max_connections), .min = 1, .max = 10000000, .def = "20000" },
    { .name = "max_message_bytes", .type = CT_SIZE, .off = S(max_message_bytes), .min = 64, .max = 64LL << 20, .def = "65536" },
    { .name = "static_dir", .type = CT_PATH, .off = S(static_dir) },
    { SR("reuse_port"), .type = CT_BOOL, .off = S(reuse_port), .def = "false" },
    { .name = "send_queue_frames", .type = CT_COUNT, .off = S(send_queue_frames), .min = 1, .max = 1000000, .def = "256" },
    { .name = "send_queue_bytes", .type = CT_SIZE, .off = S(send_queue_bytes), .min = 1024, .max = 1LL << 30, .def = "1MiB" },
    { .name = "max_rooms_per_connection", .type = CT_COUNT, .off = S(max_rooms_per_connection), .min = 1, .max = 100000, .def = "100" },
    { .name = "max_rooms", .type = CT_COUNT, .off = S(max_rooms), .min = 1, .max = 100000000, .def = "200000" },
    { .name = "max_client_rooms", .type = CT_COUNT, .off = S(max_client_rooms), .min = 0, .max = 100000000, .def = "20000" },
    { .name = "max_payload_bytes", .type = CT_SIZE, .off = S(max_payload_bytes), .min = 64, .max = 256LL << 20, .def = "4MiB" },
    { .name = "max_room_bytes", .type = CT_SIZE, .off = S(max_room_bytes), .min = 1024, .max = 1LL << 40, .def = "16MiB" },
    { .name = "max_stored_bytes", .type = CT_SIZE, .off = S(max_stored_bytes), .min = 1024, .max = 1LL << 40, .def = "256MiB" },
    { .name = "trusted_proxies", .type = CT_STRLIST, .off = S(trusted_proxies), .off_n = S(n_trusted_proxies),
      .scalar = check_trusted_proxy },
    { SR("admin_listen"), .type = CT_CUSTOM, .off = 0, .scalar = set_admin_listen, .keep = keep_admin_listen },
    { .name = "delivery", .type = CT_ENUM, .off = S(delivery), .def = "once", .choices = deliveries },
    { SR("writer_threads"), .type = CT_CUSTOM, .off = 0, .def = "auto", .scalar = set_writer_threads, .keep = keep_writer_threads },
    { .name = "tls_cert", .type = CT_PATH, .off = S(tls_cert) },
    { .name = "tls_key", .type = CT_PATH, .off = S(tls_key) },
    { SR("tls_client_ca"), .type = CT_PATH, .off = S(tls_client_ca) },
    { .name = "deflate", .type = CT_SECTION, .off = S(deflate), .section = section_deflate, .sub = &deflate_schema },
};
#undef S
#undef SR
static const struct cfg_schema server_schema = { "server", server_fields, COUNT(server_fields) };

#define H(f) offsetof(struct cfg_heartbeat, f)
#define HR(k) .name = k, .restart = "heartbeat." k
static const struct cfg_field heartbeat_fields[] = {
    { .name = "interval", .type = CT_DUR, .off = H(interval_ms), .min_on = 100, .max = DAY_MS, .def = "10s" },
    { HR("ws_ping"), .type = CT_DUR, .off = H(ws_ping_ms), .min_on = 1000, .max = DAY_MS, .def = "20s" },
    { HR("idle_timeout"), .type = CT_DUR, .off = H(idle_timeout_ms), .min_on = 1000, .max = DAY_MS, .def = "60s" },
};
#undef H
#undef HR
static const struct cfg_schema heartbeat_schema = { "heartbeat", heartbeat_fields, COUNT(heartbeat_fields) };

/* Choices in the order of enum tb_log_level / tb_log_format (log.h). */
static const char *const log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const log_formats[] = { "text", "json", "logfmt", NULL };
#define LG(f) offsetof(struct cfg_log, f)
static const struct cfg_field log_fields[] = {
    { .name = "level", .type = CT_ENUM, .off = LG(level), .def = "info", .choices = log_levels },
    { .name = "format", .type = CT_ENUM, .off = LG(format), .def = "text", .choices = log_formats },
};
#undef LG
static const struct cfg_schema log_schema = { "log", log_fields, COUNT(log_fields) };

static int section_mqtt(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_mqtt *m = &((struct tb_config *)base)->mqtt;
    int rc = cfg_apply(l, n, &mqtt_schema, m);
    if (!m->port)
        m->port = m->tls_ca ? 8883 : 1883;
    if (!m->client_id) {
        char host[64] = "localhost", id[128];
        gethostname(host, sizeof(host) - 1);
        /* stable across restarts (issue 16): a pid-based id left its status topic behind
         * at every restart; two bridges on one host need distinct ids (refused otherwise) */
        snprintf(id, sizeof(id), "telebridge-%s", host);
        m->client_id = strdup(id);
    }
    if (!rc && m->reconnect_min_ms > m->reconnect_max_ms)
        rc = cfg_error(l, n, 0, "mqtt: reconnect_min is larger than reconnect_max");
    if ((m->tls_cert != NULL) != (m->tls_key != NULL) && n)
        rc = cfg_error(l, n, 0, "mqtt: tls_cert and tls_key go together");
    return rc;
}

/* OpenSSL's reason for the last failure (and clears its error queue). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unreadable";
}

/* wss://: the certificate chain and key must load and belong together, and the client CA
 * must load, so a reload with a broken pair is refused as a whole (nothing changes). */
static int check_tls(struct loader *l, const yaml_node_t *n, const struct cfg_server *s)
{
    if (!s->tls_cert != !s->tls_key)
        return cfg_error(l, n, 0, "server: tls_cert and tls_key go together (wss:// needs both)");
    if (s->tls_client_ca && !s->tls_cert)
        return cfg_error(l, n, 0, "server: tls_client_ca needs tls_cert and tls_key");
    if (!s->tls_cert)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc = 0;
    if (!ctx)
        rc = cfg_error(l, n, 0, "server: cannot set up TLS (%s)", ssl_reason());
    else if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert) != 1)
        rc = cfg_error(l, n, 0, "server: tls_cert %s: %s", s->tls_cert, ssl_reason());
    else if (SSL_CTX_use_PrivateKey_file(ctx, s->tls_key, SSL_FILETYPE_PEM) != 1)
        rc = cfg_error(l, n, 0, "server: tls_key %s: %s", s->tls_key, ssl_reason());
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = cfg_error(l, n, 0, "server: tls_key %s does not belong to tls_cert %s", s->tls_key, s->tls_cert);
    else if (s->tls_client_ca && SSL_CTX_load_verify_locations(ctx, s->tls_client_ca, NULL) != 1)
        rc = cfg_error(l, n, 0, "server: tls_client_ca %s: %s", s->tls_client_ca, ssl_reason());
    SSL_CTX_free(ctx);
    return rc;
}

static int section_server(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_server *s = &((struct tb_config *)base)->server;
    int rc = cfg_apply(l, n, &server_schema, s);
    if (!rc && n)
        rc = check_tls(l, n, s);
    return rc;
}

static int section_log(struct loader *l, const yaml_node_t *n, void *base)
{
    return cfg_apply(l, n, &log_schema, &((struct tb_config *)base)->log);
}

static int section_heartbeat(struct loader *l, const yaml_node_t *n, void *base)
{
    return cfg_apply(l, n, &heartbeat_schema, &((struct tb_config *)base)->heartbeat);
}

/* ---- compiling patterns, templates, expressions ------------------------------------ */

static const char *scalar_or_error(struct loader *l, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        cfg_error(l, n, 0, "%s: expected a string", what);
        return NULL;
    }
    return cfg_text(l, n);
}

/* Column offset (from the node's mark) of the 1-based column 'col' within its text. */
static int text_offset(const yaml_node_t *n, int col)
{
    return cfg_text_col(n) - (int)n->start_mark.column - 1 + (col > 0 ? col - 1 : 0);
}

static struct topic_pattern *compile_pattern(struct loader *l, const yaml_node_t *n, const char *what)
{
    const char *s = scalar_or_error(l, n, what);
    if (!s)
        return NULL;
    /* A shared subscription hands each message to one subscriber: the clients of every
     * other bridge would miss it (issue 16: such routes passed --check and routed nothing). */
    if (strncmp(s, "$share/", 7) == 0) {
        cfg_error(l, n, text_offset(n, 1), "bad %s '%s': $share/<group>/ shared subscriptions are not "
                  "supported: each message would reach one bridge only and the clients of the others "
                  "would miss it; several bridges share alerts and sessions with cluster.name "
                  "(docs/scaling.md)", what, s);
        return NULL;
    }
    char err[160];
    int col = 1;
    struct topic_pattern *p = topic_pattern_compile(s, err, sizeof(err), &col);
    if (!p)
        cfg_error(l, n, text_offset(n, col), "bad %s '%s': %s", what, s, err);
    return p;
}

/* Compiles text 'src' found in node n (NULL src = n's own text). */
static struct tmpl *compile_tmpl(struct loader *l, const yaml_node_t *n, const char *src,
                                 const struct topic_pattern *pat, unsigned flags, const char *what)
{
    bool own_text = !src;
    if (own_text && !(src = scalar_or_error(l, n, what)))
        return NULL;
    char err[200];
    int col = 1;
    struct tmpl *t = tmpl_compile(src, pat, flags, err, sizeof(err), &col);
    if (!t)
        cfg_error(l, n, own_text ? text_offset(n, col) : 0, "bad %s '%s': %s", what, src, err);
    return t;
}

static struct expr *compile_expr(struct loader *l, const yaml_node_t *n, const char *what)
{
    const char *s = scalar_or_error(l, n, what);
    if (!s)
        return NULL;
    char err[160];
    int col = 1;
    struct expr *e = expr_compile(s, err, sizeof(err), &col);
    if (!e)
        cfg_error(l, n, text_offset(n, col), "bad %s expression: %s", what, err);
    return e;
}

/* Compiles a sequence of room templates (a single string is a one-room list). */
static int compile_rooms(struct loader *l, const yaml_node_t *n, const struct topic_pattern *pat,
                         struct tmpl ***out, size_t *nout)
{
    if (n->type == YAML_MAPPING_NODE)
        return cfg_error(l, n, 0, "rooms: expected a sequence of strings");
    bool seq = n->type == YAML_SEQUENCE_NODE;
    size_t cnt = seq ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 1;
    if (cnt > CFG_MAX_ROOMS)
        return cfg_error(l, n, 0, "rooms: at most %d rooms (got %zu)", CFG_MAX_ROOMS, cnt);
    if (!(*out = calloc(cnt + 1, sizeof(**out))))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *item = seq ? yaml_document_get_node(&l->doc, n->data.sequence.items.start[i]) : n;
        if (item->type != YAML_SCALAR_NODE) {
            rc = cfg_error(l, item, 0, "rooms: expected a sequence of strings");
            continue;
        }
        struct tmpl *t = compile_tmpl(l, item, NULL, pat, TMPL_PLAIN_FIELDS, "room");
        if (!t)
            rc = -1;
        else
            (*out)[(*nout)++] = t;
    }
    return rc;
}

static void free_rooms(struct tmpl **rooms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tmpl_free(rooms[i]);
    free(rooms);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static const yaml_node_t *seq_item(struct loader *l, const yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(&l->doc, n->data.sequence.items.start[i]);
}

/* ---- publish rules (uplink) ------------------------------------------------------------ */

/* Request types the bridge handles itself (protocol.c, and issue 13's auth frames): a
 * publish rule cannot take them over. */
static const char *const reserved_types[] = {
    "ping", "subscribe", "unsubscribe", "join_session", "leave_session", "ack_alert",
    "auth", "refresh", "reply", "error", NULL,
};

struct publish_in {
    struct cfg_publish p;
    const yaml_node_t *topic, *rate, *reply;
};

#define P(f) offsetof(struct publish_in, f)
static const struct cfg_field publish_fields[] = {
    { .name = "type", .type = CT_STR, .off = P(p.type), .required = true },
    { .name = "topic", .type = CT_NODE, .off = P(topic), .required = true },
    { .name = "qos", .type = CT_INT, .off = P(p.qos), .min = 0, .max = 1, .def = "1" },
    { .name = "retain", .type = CT_BOOL, .off = P(p.retain), .def = "false" },
    { .name = "max_bytes", .type = CT_SIZE, .off = P(p.max_bytes), .min = 2, .max = 1048576, .def = "4096" },
    { .name = "fields", .type = CT_STRLIST, .off = P(p.fields), .off_n = P(p.n_fields) },
    { .name = "required", .type = CT_STRLIST, .off = P(p.required), .off_n = P(p.n_required) },
    { .name = "allow_topics", .type = CT_STRLIST, .off = P(p.allow_topics), .off_n = P(p.n_allow_topics) },
    { .name = "rate", .type = CT_NODE, .off = P(rate) },
    { .name = "reply", .type = CT_NODE, .off = P(reply) },
};
#undef P
static const struct cfg_schema publish_schema = { "publish rule", publish_fields, COUNT(publish_fields) };

#define PR(f) offsetof(struct cfg_publish, f)
static const struct cfg_field rate_fields[] = {
    { .name = "per_second", .type = CT_COUNT, .off = PR(rate_per_second), .min = 1, .max = 100000, .required = true },
    { .name = "burst", .type = CT_COUNT, .off = PR(rate_burst), .min = 0, .max = 100000, .def = "0" },
};
static const struct cfg_schema rate_schema = { "rate", rate_fields, COUNT(rate_fields) };
static const struct cfg_field reply_fields[] = {
    { .name = "timeout", .type = CT_DUR, .off = PR(reply_timeout_ms), .min = 100, .max = 600000, .def = "5s" },
};
static const struct cfg_schema reply_schema = { "reply", reply_fields, COUNT(reply_fields) };
#undef PR

/* Every {name} of a publish topic is a capture of the endpoint path or a field of the
 * client's "data" ({data.command}); the literal text has no MQTT wildcard and the topic is
 * not in the bridge's own telebridge/ namespace (replies could be forged there). */
static int check_publish_topic(struct loader *l, const yaml_node_t *n, const char *src,
                               const struct topic_pattern *pat)
{
    if (!src[0])
        return cfg_error(l, n, 0, "publish topic must not be empty");
    if (!strncmp(src, "telebridge/", 11) || src[0] == '$')
        return cfg_error(l, n, 0, "publish topic '%s' is reserved (telebridge/ and $ topics belong to "
                         "the bridge and the broker)", src);
    for (const char *p = src; *p; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            p++;
            continue;
        }
        if (*p == '+' || *p == '#')
            return cfg_error(l, n, text_offset(n, (int)(p - src) + 1),
                             "publish topic '%s' must not contain the MQTT wildcard '%c'", src, *p);
        if (*p != '{')
            continue;
        const char *end = strpbrk(p + 1, "|}");
        if (!end)
            return -1;   /* tmpl_compile reports it */
        size_t len = (size_t)(end - p - 1);
        bool field = len > 5 && !strncmp(p + 1, "data.", 5);
        if (!field && topic_pattern_capture_index(pat, p + 1, len) < 0)
            return cfg_error(l, n, text_offset(n, (int)(p - src) + 1),
                             "publish topic names {%.*s}: not a capture of the endpoint path '%s' "
                             "and not a field of the message (write {data.%.*s})",
                             (int)len, p + 1, topic_pattern_source(pat), (int)len, p + 1);
        p = strchr(end, '}');
        if (!p)
            return -1;
    }
    return 0;
}

static int publish_one(struct loader *l, const yaml_node_t *item, const struct topic_pattern *pat,
                       struct publish_in *in)
{
    struct cfg_publish *r = &in->p;
    r->line = cfg_line(item);
    r->col = (int)item->start_mark.column + 1;
    int rc = cfg_apply(l, item, &publish_schema, in);
    if (in->topic) {
        const char *src = scalar_or_error(l, in->topic, "publish topic");
        if (!src || check_publish_topic(l, in->topic, src, pat))
            rc = -1;
        else if (!(r->topic = compile_tmpl(l, in->topic, NULL, pat, TMPL_BARE_FIELDS | TMPL_PLAIN_FIELDS,
                                           "publish topic")))
            rc = -1;
    }
    if (in->rate && cfg_apply(l, in->rate, &rate_schema, r))
        rc = -1;
    if (!r->rate_burst)
        r->rate_burst = r->rate_per_second;
    if (in->reply && cfg_apply(l, in->reply, &reply_schema, r))
        rc = -1;
    for (size_t i = 0; r->type && reserved_types[i]; i++) {
        if (!strcmp(r->type, reserved_types[i]))
            rc = cfg_error(l, item, 0, "publish type '%s' is a request the bridge handles itself", r->type);
    }
    return rc;
}

static void free_publish(struct cfg_publish *r)
{
    free(r->type);
    tmpl_free(r->topic);
    char **lists[] = { r->fields, r->required, r->allow_topics };
    size_t counts[] = { r->n_fields, r->n_required, r->n_allow_topics };
    for (size_t k = 0; k < COUNT(lists); k++) {
        for (size_t i = 0; i < counts[k]; i++)
            free(lists[k][i]);
        free(lists[k]);
    }
}

/* 'publish: [...]' of one endpoint. */
static int endpoint_publish(struct loader *l, const yaml_node_t *n, struct cfg_endpoint *e)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "publish: expected a sequence of rules ({type, topic, ...})");
    if (!(e->publish = calloc(seq_len(n) + 1, sizeof(*e->publish))))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < seq_len(n); i++) {
        const yaml_node_t *item = seq_item(l, n, i);
        struct publish_in in = { 0 };
        if (item->type != YAML_MAPPING_NODE) {
            rc = cfg_error(l, item, 0, "publish rule: expected a mapping");
            continue;
        }
        if (publish_one(l, item, e->pattern, &in))
            rc = -1;
        for (size_t j = 0; in.p.type && j < e->n_publish; j++) {
            if (!strcmp(e->publish[j].type, in.p.type))
                rc = cfg_error(l, item, 0, "duplicate publish type '%s' (already at line %d)",
                               in.p.type, e->publish[j].line);
        }
        e->publish[e->n_publish++] = in.p;
        if (in.p.reply_timeout_ms)
            l->cfg->replies = true;
    }
    return rc;
}

/* ---- endpoints ---------------------------------------------------------------------- */

static const char *const ack_modes[] = { "members", "none", NULL };
static const char *const auth_modes[] = { "none", "optional", "required", NULL };

static const char *const request_aliases[] = { "none", "data.subscription_type", NULL };

struct endpoint_in {
    struct cfg_endpoint e;
    const yaml_node_t *rooms, *same_as, *identity, *require, *publish, *envelope;
};

static const char *const ts_formats[] = { "ms", "iso8601", NULL };
#define V(f) offsetof(struct cfg_envelope, f)
static const struct cfg_field envelope_fields[] = {
    { .name = "ts_field", .type = CT_STR, .off = V(ts_field), .def = "ts" },
    { .name = "timestamp", .type = CT_ENUM, .off = V(timestamp), .def = "ms", .choices = ts_formats },
    { .name = "alert_time_field", .type = CT_OPTSTR, .off = V(alert_time_field) },
    { .name = "status_ok", .type = CT_OPTSTR, .off = V(status_ok) },
};
#undef V
static const struct cfg_schema envelope_schema = { "envelope", envelope_fields, COUNT(envelope_fields) };

/* envelope: {ts_field: timestamp, timestamp: iso8601}: the name must be a plain key that
 * no other envelope field uses. */
static int endpoint_envelope(struct loader *l, const yaml_node_t *n, struct cfg_envelope *v)
{
    static const char *const taken[] = { "type", "room", "rooms", "topic", "seq", "data", "id" };
    if (cfg_apply(l, n, &envelope_schema, v))
        return -1;
    v->set = true;
    const char *f = v->ts_field;
    if (!f || strlen(f) > CFG_TS_FIELD_MAX || strspn(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(f))
        return cfg_error(l, n, 0, "envelope.ts_field: expected 1 to %d of [A-Za-z0-9_]", CFG_TS_FIELD_MAX);
    for (size_t i = 0; i < COUNT(taken); i++)
        if (!strcmp(f, taken[i]))
            return cfg_error(l, n, 0, "envelope.ts_field '%s' would replace the envelope's own '%s'", f, f);
    const char *a = v->alert_time_field, *ok = v->status_ok;
    if (a && (strlen(a) > CFG_TS_FIELD_MAX || strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(a)))
        return cfg_error(l, n, 0, "envelope.alert_time_field: expected 1 to %d of [A-Za-z0-9_]", CFG_TS_FIELD_MAX);
    if (ok && (strlen(ok) > 15 || strspn(ok, "abcdefghijklmnopqrstuvwxyz_") != strlen(ok)))
        return cfg_error(l, n, 0, "envelope.status_ok: expected 1 to 15 of [a-z_]");
    return 0;
}

#define E(f) offsetof(struct endpoint_in, f)
static const struct cfg_field endpoint_fields[] = {
    { .name = "rooms", .type = CT_NODE, .off = E(rooms) },
    { .name = "same_as", .type = CT_NODE, .off = E(same_as) },
    { .name = "client_subscriptions", .type = CT_BOOL, .off = E(e.client_subscriptions), .def = "false" },
    { .name = "max_connections", .type = CT_INT, .off = E(e.max_connections), .min = 0, .max = 10000000, .def = "0" },
    { .name = "allow_subscribe", .type = CT_STRLIST, .off = E(e.allow_subscribe), .off_n = E(e.n_allow_subscribe) },
    { .name = "ack", .type = CT_ENUM, .off = E(e.ack), .def = "members", .choices = ack_modes },
    { .name = "identity", .type = CT_NODE, .off = E(identity) },
    { .name = "client_rate", .type = CT_INT, .off = E(e.client_rate), .min = -1, .max = 1000000, .def = "-1" },
    { .name = "client_burst", .type = CT_INT, .off = E(e.client_burst), .min = -1, .max = 1000000, .def = "-1" },
    { .name = "auth", .type = CT_ENUM, .off = E(e.auth), .def = "none", .choices = auth_modes },
    { .name = "auth_message", .type = CT_BOOL, .off = E(e.auth_message), .def = "false" },
    { .name = "require", .type = CT_NODE, .off = E(require) },
    { .name = "roles", .type = CT_STRLIST, .off = E(e.roles), .off_n = E(e.n_roles) },
    { .name = "publish", .type = CT_NODE, .off = E(publish) },
    { .name = "envelope", .type = CT_NODE, .off = E(envelope) },
    { .name = "request_alias", .type = CT_ENUM, .off = E(e.request_alias), .def = "none", .choices = request_aliases },
};
#undef E
static const struct cfg_schema endpoint_schema = { "endpoint", endpoint_fields, COUNT(endpoint_fields) };

/* 'identity: user_id' names the path capture that identifies the client (ack_alert). */
static int endpoint_identity(struct loader *l, const yaml_node_t *n, struct cfg_endpoint *e)
{
    const char *name = scalar_or_error(l, n, "identity");
    if (!name)
        return -1;
    if (!strcmp(name, "none"))
        return 0;    /* anonymous: acknowledged_by stays empty */
    e->identity_capture = topic_pattern_capture_index(e->pattern, name, strlen(name));
    if (e->identity_capture < 0)
        return cfg_error(l, n, 0, "identity '%s' is not a capture of the path '%s' (write e.g. "
                         "/ws/alerts/{user_id} with identity: user_id)", name, e->path);
    return 0;
}

static int endpoint_one(struct loader *l, const yaml_node_t *k, const yaml_node_t *v,
                        struct endpoint_in *in)
{
    struct cfg_endpoint *e = &in->e;
    const char *path = scalar_or_error(l, k, "endpoint path");
    e->line = cfg_line(k);
    e->col = (int)k->start_mark.column + 1;
    if (!path || !(e->path = strdup(path)))
        return -1;
    if (path[0] != '/')
        return cfg_error(l, k, 0, "endpoint path '%s' must start with '/'", path);
    e->identity_capture = -1;
    int rc = cfg_apply(l, v, &endpoint_schema, in);
    if (!(e->pattern = compile_pattern(l, k, "endpoint path")))
        return -1;
    if (in->envelope && endpoint_envelope(l, in->envelope, &e->envelope))
        rc = -1;
    if (in->identity && endpoint_identity(l, in->identity, e))
        rc = -1;
    else if (!in->identity && topic_pattern_ncaptures(e->pattern) == 1)
        e->identity_capture = 0;   /* /ws/alerts/{user_id}: the client is user_id */
    if (e->client_burst == 0)
        rc = cfg_error(l, k, 0, "endpoint '%s': client_burst must be at least 1", path);
    if (in->require && cfg_auth_endpoint_require(l, in->require, e))
        rc = -1;
    if (in->publish && !cfg_is_null(l, in->publish) && endpoint_publish(l, in->publish, e))
        rc = -1;
    struct tb_config *c = l->cfg;
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (c->endpoints[i].pattern &&
            !strcmp(topic_pattern_filter(c->endpoints[i].pattern), topic_pattern_filter(e->pattern)))
            return cfg_error(l, k, 0, "duplicate endpoint '%s' (already defined at line %d)",
                             path, c->endpoints[i].line);
    }
    if (in->rooms && in->same_as)
        return cfg_error(l, in->rooms, 0, "an endpoint with same_as takes its rooms from the target; remove 'rooms'");
    if (in->same_as) {
        const char *t = scalar_or_error(l, in->same_as, "same_as");
        return t && (e->same_as = strdup(t)) ? rc : -1;
    }
    if (!in->rooms)
        return rc;
    if (compile_rooms(l, in->rooms, e->pattern, &e->rooms, &e->n_rooms))
        return -1;
    for (size_t i = 0; i < e->n_rooms; i++) {
        if (tmpl_uses_payload(e->rooms[i]))
            rc = cfg_error(l, in->rooms, 0, "endpoint room '%s' cannot use payload fields",
                           tmpl_source(e->rooms[i]));
    }
    return rc;
}

const struct cfg_endpoint *config_endpoint_by_path(const struct tb_config *c, const char *path)
{
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (c->endpoints[i].path && !strcmp(c->endpoints[i].path, path))
            return &c->endpoints[i];
    }
    return NULL;
}

static int unknown_target(struct loader *l, const yaml_node_t *n, const char *target)
{
    const char *names[256];
    size_t cnt = 0;
    for (size_t i = 0; i < l->cfg->n_endpoints && cnt < COUNT(names); i++) {
        if (l->cfg->endpoints[i].path)
            names[cnt++] = l->cfg->endpoints[i].path;
    }
    const char *hint = suggest_closest(target, names, cnt);
    return cfg_error(l, n, 0, "same_as names unknown endpoint '%s'%s%s%s", target,
                     hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
}

/* An alias gets its own copy of the target's rooms, compiled against its own path. */
static int resolve_alias(struct loader *l, struct cfg_endpoint *e, const yaml_node_t *n)
{
    const struct cfg_endpoint *t = config_endpoint_by_path(l->cfg, e->same_as);
    if (!t)
        return unknown_target(l, n, e->same_as);
    if (t->same_as)
        return cfg_error(l, n, 0, "same_as target '%s' is itself an alias (of '%s')", t->path, t->same_as);
    if (!(e->rooms = calloc(t->n_rooms + 1, sizeof(*e->rooms))))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < t->n_rooms; i++) {
        char err[200];
        int col;
        struct tmpl *r = tmpl_compile(tmpl_source(t->rooms[i]), e->pattern, 0, err, sizeof(err), &col);
        if (!r)
            rc = cfg_error(l, n, 0, "'%s' cannot alias '%s': its room '%s' needs captures that '%s' lacks (%s)",
                           e->path, t->path, tmpl_source(t->rooms[i]), e->path, err);
        else
            e->rooms[e->n_rooms++] = r;
    }
    e->client_subscriptions |= t->client_subscriptions;
    e->ack = t->ack;
    if (e->client_rate < 0)
        e->client_rate = t->client_rate;
    if (e->client_burst < 0)
        e->client_burst = t->client_burst;
    e->request_alias = t->request_alias;
    if (t->envelope.set && !e->envelope.set) {
        e->envelope = t->envelope;
        e->envelope.alert_time_field = t->envelope.alert_time_field ? strdup(t->envelope.alert_time_field) : NULL;
        e->envelope.status_ok = t->envelope.status_ok ? strdup(t->envelope.status_ok) : NULL;
        if (!(e->envelope.ts_field = strdup(t->envelope.ts_field)) ||
            (t->envelope.alert_time_field && !e->envelope.alert_time_field) ||
            (t->envelope.status_ok && !e->envelope.status_ok))
            return -1;
    }
    if (t->identity_capture >= 0) {
        const char *who = topic_pattern_capture_name(t->pattern, (size_t)t->identity_capture);
        e->identity_capture = topic_pattern_capture_index(e->pattern, who, strlen(who));
    }   /* an alias without that capture is anonymous (-1): it cannot send "by" */
    if (!e->n_allow_subscribe && t->n_allow_subscribe) {
        if (!(e->allow_subscribe = calloc(t->n_allow_subscribe + 1, sizeof(*e->allow_subscribe))))
            return -1;
        for (size_t i = 0; i < t->n_allow_subscribe; i++) {
            if (!(e->allow_subscribe[i] = strdup(t->allow_subscribe[i])))
                return -1;
            e->n_allow_subscribe++;
        }
    }
    return rc;
}

static int section_endpoints(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    if (!n)
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return cfg_error(l, n, 0, "endpoints: expected a mapping of path to endpoint");
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    const yaml_node_t **alias_nodes = calloc(cnt + 1, sizeof(*alias_nodes));
    if (!alias_nodes || !(c->endpoints = calloc(cnt + 1, sizeof(*c->endpoints)))) {
        free(alias_nodes);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        struct endpoint_in in = { 0 };
        if (endpoint_one(l, yaml_document_get_node(&l->doc, p->key),
                         yaml_document_get_node(&l->doc, p->value), &in))
            rc = -1;
        alias_nodes[i] = in.same_as;
        c->endpoints[c->n_endpoints++] = in.e;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (c->endpoints[i].same_as && resolve_alias(l, &c->endpoints[i], alias_nodes[i]))
            rc = -1;
    }
    free(alias_nodes);
    return rc;
}

/* ---- routes ------------------------------------------------------------------------- */

static const char *const slow_policies[] = { "conflate", "disconnect", NULL };
static const char *const nonjson_policies[] = { "string", "drop", "text", NULL };

struct route_in {
    struct cfg_route r;
    const yaml_node_t *match, *rooms, *when, *keep_last;
};

#define R(f) offsetof(struct route_in, f)
static const struct cfg_field route_fields[] = {
    { .name = "match", .type = CT_NODE, .off = R(match), .required = true },
    { .name = "rooms", .type = CT_NODE, .off = R(rooms), .required = true },
    { .name = "when", .type = CT_NODE, .off = R(when) },
    { .name = "type", .type = CT_STR, .off = R(r.type), .def = "message" },
    { .name = "keep_last", .type = CT_NODE, .off = R(keep_last) },
    { .name = "keep_last_max", .type = CT_COUNT, .off = R(r.keep_last_max), .min = 1, .max = 10000000, .def = "10000" },
    { .name = "keep_last_ttl", .type = CT_DUR, .off = R(r.keep_last_ttl_ms), .min_on = 1000, .max = 365 * DAY_MS, .def = "0" },
    { .name = "history", .type = CT_COUNT, .off = R(r.history), .min = 0, .max = 1000000, .def = "0" },
    { .name = "history_ttl", .type = CT_DUR, .off = R(r.history_ttl_ms), .min_on = 10, .max = 365 * DAY_MS, .def = "0" },
    { .name = "slow_client", .type = CT_ENUM, .off = R(r.slow_client), .def = "conflate", .choices = slow_policies },
    { .name = "non_json", .type = CT_ENUM, .off = R(r.non_json), .def = "string", .choices = nonjson_policies },
    { .name = "rooms_allowed", .type = CT_STRLIST, .off = R(r.rooms_allowed), .off_n = R(r.n_rooms_allowed) },
};
#undef R
static const struct cfg_schema route_schema = { "route", route_fields, COUNT(route_fields) };

static bool route_reads_payload(const struct cfg_route *r)
{
    for (size_t i = 0; i < r->n_rooms; i++)
        if (tmpl_uses_payload(r->rooms[i]))
            return true;
    return false;
}

/* keep_last: true | false | per_topic | {by: payload.<field>} */
static int keep_last_parse(struct loader *l, const yaml_node_t *n, struct cfg_route *r)
{
    static const char usage[] = "keep_last: expected true, false, per_topic or {by: payload.<field>}";
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = cfg_text(l, n);
        if (!s)
            return -1;
        if (!strcmp(s, "per_topic")) {
            r->keep_last = true;
            r->keep_by = CFG_KEEP_TOPIC;
            return 0;
        }
        return cfg_parse_bool(s, &r->keep_last) ? cfg_error(l, n, 0, "%s, not '%s'", usage, s) : 0;
    }
    if (n->type != YAML_MAPPING_NODE || n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1)
        return cfg_error(l, n, 0, "%s", usage);
    yaml_node_pair_t *p = n->data.mapping.pairs.start;
    const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
    const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
    const char *ks = k && k->type == YAML_SCALAR_NODE ? cfg_text(l, k) : NULL;
    const char *vs = v && v->type == YAML_SCALAR_NODE ? cfg_text(l, v) : NULL;
    if (!ks || strcmp(ks, "by") != 0)
        return cfg_error(l, k ? k : n, 0, "%s", usage);
    if (!vs || strncmp(vs, "payload.", 8) != 0 || !vs[8] || vs[8] == '.' || strstr(vs, "..") ||
        vs[strlen(vs) - 1] == '.' ||
        strspn(vs + 8, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != strlen(vs + 8))
        return cfg_error(l, v ? v : n, 0, "keep_last.by: expected a payload field such as "
                         "payload.vehicle_id, not '%s'", vs ? vs : "");
    if (!(r->keep_by_field = strdup(vs + 8)))
        return -1;
    r->keep_last = true;
    r->keep_by = CFG_KEEP_FIELD;
    return 0;
}

static int route_one(struct loader *l, const yaml_node_t *n, struct route_in *in)
{
    struct cfg_route *r = &in->r;
    r->line = cfg_line(n);
    r->col = (int)n->start_mark.column + 1;
    int rc = cfg_apply(l, n, &route_schema, in);
    if (in->match) {
        const char *src = cfg_text(l, in->match);
        if (src && !(r->match_src = strdup(src)))
            return -1;
        r->match = compile_pattern(l, in->match, "topic pattern");
    }
    if (!r->match)
        return -1;
    if (in->rooms && compile_rooms(l, in->rooms, r->match, &r->rooms, &r->n_rooms))
        rc = -1;
    if (in->when && !(r->when = compile_expr(l, in->when, "when")))
        rc = -1;
    if (in->keep_last && keep_last_parse(l, in->keep_last, r))
        rc = -1;
    if (!r->n_rooms_allowed && route_reads_payload(r))
        rc = cfg_error(l, in->rooms, 0, "a room of this route is chosen by the payload: list the "
                       "rooms it may select in 'rooms_allowed' (e.g. rooms_allowed: [personal, fleet])");
    return rc;
}

static int section_routes(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    if (!n)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "routes: expected a sequence of routes");
    if (!(c->routes = calloc(seq_len(n) + 1, sizeof(*c->routes))))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < seq_len(n); i++) {
        struct route_in in = { 0 };
        const yaml_node_t *item = seq_item(l, n, i);
        if (item->type != YAML_MAPPING_NODE) {
            rc = cfg_error(l, item, 0, "route: expected a mapping");
            continue;
        }
        if (route_one(l, item, &in))
            rc = -1;
        c->routes[c->n_routes++] = in.r;
    }
    return rc;
}

/* ---- alerts ------------------------------------------------------------------------- */

static const char *const severities[] = { "info", "warning", "critical", NULL };

struct alert_in {
    struct cfg_alert a;
    const yaml_node_t *match, *when, *clear_when, *message, *key, *rooms, *publish_topic;
    const yaml_node_t *node;
};

#define A(f) offsetof(struct alert_in, f)
static const struct cfg_field alert_fields[] = {
    { .name = "name", .type = CT_STR, .off = A(a.name), .required = true },
    { .name = "match", .type = CT_NODE, .off = A(match), .required = true },
    { .name = "when", .type = CT_NODE, .off = A(when) },
    { .name = "for", .type = CT_DUR, .off = A(a.for_ms), .min_on = 10, .max = 365 * DAY_MS, .def = "0" },
    { .name = "clear_when", .type = CT_NODE, .off = A(clear_when) },
    { .name = "inactive_for", .type = CT_DUR, .off = A(a.inactive_for_ms), .min_on = 100, .max = 365 * DAY_MS, .def = "0" },
    { .name = "severity", .type = CT_ENUM, .off = A(a.severity), .def = "warning", .choices = severities },
    { .name = "message", .type = CT_NODE, .off = A(message) },
    { .name = "key", .type = CT_NODE, .off = A(key) },
    { .name = "value_field", .type = CT_OPTSTR, .off = A(a.value_field) },
    { .name = "rooms", .type = CT_NODE, .off = A(rooms) },
    { .name = "publish_topic", .type = CT_NODE, .off = A(publish_topic) },
};
#undef A
static const struct cfg_schema alert_schema = { "alert", alert_fields, COUNT(alert_fields) };

/* The first payload field an expression reads, skipping strings, numbers and keywords:
 * what the alert reports as its 'value' when value_field is not given. */
static char *first_field(const char *s)
{
    static const char *const words[] = { "and", "or", "not", "true", "false", "null" };
    for (size_t i = 0; s[i];) {
        if (s[i] == '\'' || s[i] == '"') {
            const char *end = strchr(s + i + 1, s[i]);
            i = end ? (size_t)(end - s) + 1 : strlen(s);
            continue;
        }
        size_t j = i;
        while (s[j] && (isalnum((unsigned char)s[j]) || s[j] == '_' || s[j] == '.'))
            j++;
        if (j == i) {
            i++;
            continue;
        }
        bool word = isalpha((unsigned char)s[i]) || s[i] == '_';
        for (size_t w = 0; word && w < COUNT(words); w++)
            word = !(strlen(words[w]) == j - i && !strncmp(words[w], s + i, j - i));
        if (word)
            return strndup(s + i, j - i);
        i = j;
    }
    return NULL;
}

static int alert_name_ok(struct loader *l, const yaml_node_t *n, const struct alert_in *in)
{
    const char *name = in->a.name;
    if (!name)
        return -1;
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(name))
        return cfg_error(l, n, 0, "alert name '%s' may use only letters, digits, '_' and '-'", name);
    for (size_t i = 0; i < l->cfg->n_alerts; i++) {
        if (l->cfg->alerts[i].name && !strcmp(l->cfg->alerts[i].name, name))
            return cfg_error(l, n, 0, "duplicate alert name '%s' (already defined at line %d)",
                             name, l->cfg->alerts[i].line);
    }
    return 0;
}

/* Templates with defaults that depend on the name and the match pattern. */
static int alert_templates(struct loader *l, struct alert_in *in)
{
    struct cfg_alert *a = &in->a;
    const yaml_node_t *n = in->node;
    char key_def[80] = "{topic}";
    if (topic_pattern_ncaptures(a->match))
        snprintf(key_def, sizeof(key_def), "{%s}", topic_pattern_capture_name(a->match, 0));
    int rc = 0;
    a->message = in->message ? compile_tmpl(l, in->message, NULL, a->match, TMPL_BARE_FIELDS, "message")
                             : compile_tmpl(l, n, a->name, a->match, TMPL_BARE_FIELDS, "message");
    a->key = in->key ? compile_tmpl(l, in->key, NULL, a->match, 0, "key")
                     : compile_tmpl(l, n, key_def, a->match, 0, "key");
    a->publish_topic = in->publish_topic
        ? compile_tmpl(l, in->publish_topic, NULL, l->pub_pattern, 0, "publish_topic")
        : compile_tmpl(l, n, "alerts/{key}/{name}", l->pub_pattern, 0, "publish_topic");
    if (!a->message || !a->key || !a->publish_topic)
        rc = -1;
    if (in->rooms) {
        if (compile_rooms(l, in->rooms, a->match, &a->rooms, &a->n_rooms))
            rc = -1;
    } else if (!(a->rooms = calloc(2, sizeof(*a->rooms))) ||
               !(a->rooms[a->n_rooms++] = compile_tmpl(l, n, "alerts", NULL, 0, "room"))) {
        rc = -1;
    }
    return rc;
}

static int alert_one(struct loader *l, const yaml_node_t *n, struct alert_in *in)
{
    struct cfg_alert *a = &in->a;
    a->line = cfg_line(n);
    a->col = (int)n->start_mark.column + 1;
    in->node = n;
    int rc = cfg_apply(l, n, &alert_schema, in);
    if (alert_name_ok(l, n, in))
        rc = -1;
    if (in->match) {
        const char *src = cfg_text(l, in->match);
        if (src && !(a->match_src = strdup(src)))
            return -1;
        a->match = compile_pattern(l, in->match, "topic pattern");
    }
    if (in->when && !(a->when = compile_expr(l, in->when, "when")))
        rc = -1;
    if (in->clear_when && !(a->clear_when = compile_expr(l, in->clear_when, "clear_when")))
        rc = -1;
    if (!in->when && !a->inactive_for_ms && a->name)
        rc = cfg_error(l, n, 0, "alert '%s' needs 'when' or 'inactive_for'", a->name);
    if (in->clear_when && !in->when)
        rc = cfg_error(l, in->clear_when, 0, "clear_when needs a 'when' condition");
    if (!a->value_field && a->when)
        a->value_field = first_field(expr_source(a->when));
    if (!a->match || !a->name)
        return -1;
    return alert_templates(l, in) || rc ? -1 : 0;
}

static int section_alerts(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    if (!n)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "alerts: expected a sequence of alerts");
    if (!(c->alerts = calloc(seq_len(n) + 1, sizeof(*c->alerts))))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < seq_len(n); i++) {
        struct alert_in in = { 0 };
        const yaml_node_t *item = seq_item(l, n, i);
        if (item->type != YAML_MAPPING_NODE) {
            rc = cfg_error(l, item, 0, "alert: expected a mapping");
            continue;
        }
        if (alert_one(l, item, &in))
            rc = -1;
        c->alerts[c->n_alerts++] = in.a;
    }
    return rc;
}

/* ---- sessions ----------------------------------------------------------------------- */

#define SS(f) offsetof(struct cfg_sessions, f)
static const struct cfg_field sessions_fields[] = {
    { .name = "enabled", .type = CT_BOOL, .off = SS(enabled), .def = "true" },
    { .name = "request_topic", .type = CT_STR, .off = SS(request_topic), .def = "session/request" },
    { .name = "room_prefix", .type = CT_STR, .off = SS(room_prefix), .def = "session:" },
    { .name = "max_sessions", .type = CT_COUNT, .off = SS(max_sessions), .min = 1, .max = 10000000, .def = "10000" },
    { .name = "validate", .type = CT_BOOL, .off = SS(validate), .def = "false" },
    { .name = "ttl", .type = CT_DUR, .off = SS(ttl_ms), .min_on = 1000, .max = 365 * DAY_MS, .def = "24h" },
};
#undef SS
static const struct cfg_schema sessions_schema = { "sessions", sessions_fields, COUNT(sessions_fields) };

/* Absent section: sessions are off (no request topic is subscribed). */
static int section_sessions(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_sessions *s = &((struct tb_config *)base)->sessions;
    int rc = cfg_apply(l, n, &sessions_schema, s);
    if (!n)
        s->enabled = false;
    if (n && s->request_topic && strpbrk(s->request_topic, "+#"))
        rc = cfg_error(l, n, 0, "sessions: request_topic '%s' must be a topic name, not a filter",
                       s->request_topic);
    return rc;
}

/* ---- limits ------------------------------------------------------------------------- */

#define LI(f) offsetof(struct cfg_limits, f)
#define LIR(k) .name = k, .restart = "limits." k
static const struct cfg_field limits_fields[] = {
    { .name = "client_rate", .type = CT_COUNT, .off = LI(client_rate), .min = 0, .max = 1000000, .def = "100" },
    { .name = "client_burst", .type = CT_COUNT, .off = LI(client_burst), .min = 1, .max = 1000000, .def = "200" },
    { .name = "close_after", .type = CT_COUNT, .off = LI(close_after), .min = 0, .max = 1000000, .def = "100" },
    { .name = "max_per_address", .type = CT_COUNT, .off = LI(max_per_address), .min = 0, .max = 10000000, .def = "256" },
    { .name = "handshake_rate", .type = CT_COUNT, .off = LI(handshake_rate), .min = 0, .max = 1000000, .def = "20" },
    { .name = "handshake_burst", .type = CT_COUNT, .off = LI(handshake_burst), .min = 1, .max = 1000000, .def = "100" },
    { .name = "ipv6_prefix", .type = CT_INT, .off = LI(ipv6_prefix), .min = 16, .max = 128, .def = "64" },
    { LIR("max_addresses"), .type = CT_COUNT, .off = LI(max_addresses), .min = 16, .max = 10000000, .def = "100000" },
    { .name = "exempt_loopback", .type = CT_BOOL, .off = LI(exempt_loopback), .def = "true" },
};
#undef LI
#undef LIR
static const struct cfg_schema limits_schema = { "limits", limits_fields, COUNT(limits_fields) };

static int section_limits(struct loader *l, const yaml_node_t *n, void *base)
{
    return cfg_apply(l, n, &limits_schema, &((struct tb_config *)base)->limits);
}

/* ---- alert_state ---------------------------------------------------------------------- */

#define AS(f) offsetof(struct cfg_alert_state, f)
static const struct cfg_field alert_state_fields[] = {
    { .name = "origin", .type = CT_STR, .off = AS(origin), .def = "telebridge" },
    { .name = "hmac_key", .type = CT_OPTSTR, .off = AS(hmac_key) },
    { .name = "max_restored", .type = CT_COUNT, .off = AS(max_restored), .min = 0, .max = 10000000, .def = "10000" },
};
#undef AS
static const struct cfg_schema alert_state_schema = { "alert_state", alert_state_fields, COUNT(alert_state_fields) };

/* origin is a fixed name, not the client_id: several processes with their own client_ids
 * (a cluster, or one host running N of them) publish and restore one alert state. */
static int section_alert_state(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    int rc = cfg_apply(l, n, &alert_state_schema, &c->alert_state);
    if (n && c->alert_state.hmac_key && strlen(c->alert_state.hmac_key) < 16)
        rc = cfg_error(l, n, 0, "alert_state: hmac_key must be at least 16 bytes (use ${ENV} to keep it out of the file)");
    return rc;
}

/* ---- cluster ------------------------------------------------------------------------- */

#define CL(f) offsetof(struct cfg_cluster, f)
#define CLR(k) .name = k, .restart = "cluster." k
static const struct cfg_field cluster_fields[] = {
    { CLR("name"), .type = CT_OPTSTR, .off = CL(name) },
    { CLR("instance_id"), .type = CT_OPTSTR, .off = CL(instance_id) },
};
#undef CL
#undef CLR
static const struct cfg_schema cluster_schema = { "cluster", cluster_fields, COUNT(cluster_fields) };

static bool id_chars_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* instance_id defaults to mqtt.client_id (the mqtt section is loaded first); it names the
 * status topic telebridge/<id>/status, so it must be one topic level. */
static int section_cluster(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    struct cfg_cluster *cl = &c->cluster;
    int rc = cfg_apply(l, n, &cluster_schema, cl);
    if (!cl->instance_id && c->mqtt.client_id && !(cl->instance_id = strdup(c->mqtt.client_id)))
        return -1;
    int line = n ? cfg_line(n) : 1, col = n ? (int)n->start_mark.column + 1 : 1;
    if (!rc && cl->instance_id && !id_chars_ok(cl->instance_id))
        rc = cfg_error_at(l, line, col, "cluster.instance_id '%s' (default: mqtt.client_id) must be 1..64 of "
                       "[A-Za-z0-9_.-]: set cluster.instance_id", cl->instance_id);
    if (!rc && cl->instance_id && (!strcmp(cl->instance_id, "ack") || !strcmp(cl->instance_id, "sessions")))
        rc = cfg_error_at(l, line, col, "cluster.instance_id '%s' is reserved (telebridge/%s/ carries "
                          "cluster messages): choose another", cl->instance_id, cl->instance_id);
    if (!rc && cl->name && !id_chars_ok(cl->name))
        rc = cfg_error_at(l, line, col, "cluster.name '%s' must be 1..64 of [A-Za-z0-9_.-]", cl->name);
    return rc;
}

/* ---- top level ---------------------------------------------------------------------- */

/* .off / .sub: sections embedded in struct tb_config, walked by cfg_keep_restart(). */
#define TOP(f) offsetof(struct tb_config, f)
static const struct cfg_field top_fields[] = {
    { .name = "mqtt", .type = CT_SECTION, .section = section_mqtt, .off = TOP(mqtt), .sub = &mqtt_schema },
    { .name = "server", .type = CT_SECTION, .section = section_server, .off = TOP(server), .sub = &server_schema },
    { .name = "endpoints", .type = CT_SECTION, .section = section_endpoints },
    { .name = "routes", .type = CT_SECTION, .section = section_routes },
    { .name = "alerts", .type = CT_SECTION, .section = section_alerts },
    { .name = "heartbeat", .type = CT_SECTION, .section = section_heartbeat, .off = TOP(heartbeat), .sub = &heartbeat_schema },
    { .name = "sessions", .type = CT_SECTION, .section = section_sessions, .off = TOP(sessions), .sub = &sessions_schema },
    { .name = "alert_state", .type = CT_SECTION, .section = section_alert_state },
    { .name = "limits", .type = CT_SECTION, .section = section_limits, .off = TOP(limits), .sub = &limits_schema },
    { .name = "log", .type = CT_SECTION, .section = section_log, .off = TOP(log), .sub = &log_schema },
    { .name = "auth", .type = CT_SECTION, .section = cfg_section_auth },
    { .name = "cluster", .type = CT_SECTION, .section = section_cluster, .off = TOP(cluster), .sub = &cluster_schema },
};
#undef TOP
static const struct cfg_schema top_schema = { "the configuration", top_fields, COUNT(top_fields) };

size_t config_keep_restart_settings(struct tb_config *next, const struct tb_config *cur,
                                    const char **names, size_t max_names)
{
    size_t n = cfg_keep_restart(&top_schema, next, cur, names, 0, max_names);
    /* A new certificate is loaded on reload, but the listener is TLS or not from the
     * start: turning it on or off keeps the running pair (one "server.tls_cert"). */
    struct cfg_server *ns = &next->server;
    const struct cfg_server *cs = &cur->server;
    if (!ns->tls_cert != !cs->tls_cert) {
        cfg_keep_str(&ns->tls_cert, cs->tls_cert);
        cfg_keep_str(&ns->tls_key, cs->tls_key);
        if (n < max_names)
            names[n++] = "server.tls_cert";
    }
    return n;
}

static int add_filter_str(struct tb_config *c, const char *f)
{
    for (size_t i = 0; i < c->n_filters; i++) {
        if (!strcmp(c->filters[i], f))
            return 0;
    }
    char **grown = realloc(c->filters, (c->n_filters + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    c->filters = grown;
    return (c->filters[c->n_filters] = strdup(f)) ? (int)(++c->n_filters, 0) : -1;
}

static int add_filter(struct tb_config *c, const struct topic_pattern *p)
{
    return add_filter_str(c, topic_pattern_filter(p));
}

static int collect_filters(struct tb_config *c)
{
    for (size_t i = 0; i < c->n_routes; i++) {
        if (c->routes[i].match && add_filter(c, c->routes[i].match))
            return -1;
    }
    for (size_t i = 0; i < c->n_alerts; i++) {
        if (c->alerts[i].match && add_filter(c, c->alerts[i].match))
            return -1;
    }
    if (c->sessions.enabled && add_filter_str(c, c->sessions.request_topic))
        return -1;
    if (c->replies) {
        char f[512];
        snprintf(f, sizeof f, "telebridge/%s/reply/#", c->mqtt.client_id);
        if (add_filter_str(c, f))
            return -1;
    }
    return 0;
}

/* The directory of 'name', absolute; the working directory when it has none. */
static char *config_dir(const char *name)
{
    char *copy = strdup(name);
    char *dir = copy ? realpath(dirname(copy), NULL) : NULL;
    free(copy);
    return dir ? dir : getcwd(NULL, 0);
}

static void free_endpoint(struct cfg_endpoint *e)
{
    free(e->path);
    topic_pattern_free(e->pattern);
    free_rooms(e->rooms, e->n_rooms);
    free(e->same_as);
    free(e->envelope.ts_field);
    free(e->envelope.alert_time_field);
    free(e->envelope.status_ok);
    for (size_t i = 0; i < e->n_allow_subscribe; i++)
        free(e->allow_subscribe[i]);
    free(e->allow_subscribe);
    cfg_auth_endpoint_free(e);
    for (size_t i = 0; i < e->n_publish; i++)
        free_publish(&e->publish[i]);
    free(e->publish);
}

static void free_route(struct cfg_route *r)
{
    free(r->match_src);
    topic_pattern_free(r->match);
    free_rooms(r->rooms, r->n_rooms);
    expr_free(r->when);
    free(r->type);
    free(r->keep_by_field);
    for (size_t i = 0; i < r->n_rooms_allowed; i++)
        free(r->rooms_allowed[i]);
    free(r->rooms_allowed);
}

void cfg_alert_free(struct cfg_alert *a)
{
    free(a->name);
    free(a->match_src);
    topic_pattern_free(a->match);
    expr_free(a->when);
    expr_free(a->clear_when);
    tmpl_free(a->message);
    tmpl_free(a->key);
    free(a->value_field);
    free_rooms(a->rooms, a->n_rooms);
    tmpl_free(a->publish_topic);
}

static void free_config(struct tb_config *c)
{
    struct cfg_mqtt *m = &c->mqtt;
    free(m->host), free(m->client_id), free(m->username), free(m->password);
    free(m->tls_ca), free(m->tls_cert), free(m->tls_key);
    for (size_t i = 0; i < c->server.n_allowed_origins; i++)
        free(c->server.allowed_origins[i]);
    free(c->server.allowed_origins);
    for (size_t i = 0; i < c->server.n_trusted_proxies; i++)
        free(c->server.trusted_proxies[i]);
    free(c->server.trusted_proxies);
    free(c->server.listen_host);
    free(c->server.admin_host);
    free(c->server.static_dir);
    free(c->server.tls_cert), free(c->server.tls_key), free(c->server.tls_client_ca);
    free(c->sessions.request_topic), free(c->sessions.room_prefix);
    free(c->alert_state.origin), free(c->alert_state.hmac_key);
    cfg_auth_free(c->auth);
    free(c->auth);
    free(c->cluster.name), free(c->cluster.instance_id);
    for (size_t i = 0; i < c->n_endpoints; i++)
        free_endpoint(&c->endpoints[i]);
    for (size_t i = 0; i < c->n_routes; i++)
        free_route(&c->routes[i]);
    for (size_t i = 0; i < c->n_alerts; i++)
        cfg_alert_free(&c->alerts[i]);
    for (size_t i = 0; i < c->n_filters; i++)
        free(c->filters[i]);
    free(c->endpoints), free(c->routes), free(c->alerts), free(c->filters);
    free(c->path), free(c->dir);
    free(c);
}

static int diag_push(struct config_diag *d, const char *msg)
{
    char **grown = realloc(d->msgs, (d->n + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    d->msgs = grown;
    return (d->msgs[d->n] = strdup(msg)) ? (int)(++d->n, 0) : -1;
}

static int by_position(const void *a, const void *b)
{
    const struct cfg_msg *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Moves the collected messages, in file order, into diag; frees the loader. */
static void loader_finish(struct loader *l, struct config_diag *diag)
{
    if (l->nmsgs)
        qsort(l->msgs, l->nmsgs, sizeof(*l->msgs), by_position);
    for (size_t i = 0; i < l->nmsgs; i++) {
        if (diag)
            diag_push(diag, l->msgs[i].text);
        free(l->msgs[i].text);
    }
    free(l->msgs);
    if (l->val) {
        for (size_t i = 0; i < (size_t)(l->doc.nodes.top - l->doc.nodes.start); i++)
            free(l->val[i]);
    }
    free(l->val);
    free(l->bad);
    if (l->have_doc)
        yaml_document_delete(&l->doc);
    topic_pattern_free(l->pub_pattern);
}

/* One file, one document: a second one ("---" then more) would be silently ignored. */
static int refuse_second_document(struct loader *l, yaml_parser_t *parser)
{
    yaml_document_t next;
    if (!yaml_parser_load(parser, &next))
        return cfg_error_at(l, (int)parser->problem_mark.line + 1, (int)parser->problem_mark.column + 1,
                            "YAML syntax error after the first document: %s",
                            parser->problem ? parser->problem : "unknown");
    bool more = yaml_document_get_root_node(&next) != NULL;
    int line = (int)next.start_mark.line + 1, col = (int)next.start_mark.column + 1;
    yaml_document_delete(&next);
    if (more)
        return cfg_error_at(l, line, col, "a second YAML document starts here; the configuration "
                            "is one document (remove this '---' and what follows, or merge it)");
    return 0;
}

static int parse_yaml(struct loader *l, const char *text, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return cfg_error_at(l, 1, 1, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, &l->doc)) {
        rc = cfg_error_at(l, (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                          "YAML syntax error: %s%s%s", parser.problem ? parser.problem : "unknown",
                          parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        l->have_doc = true;
        rc = refuse_second_document(l, &parser);
    }
    yaml_parser_delete(&parser);
    return rc;
}

struct tb_config *config_load_string(const char *name, const char *text, size_t len,
                                     struct config_diag *diag)
{
    struct loader l = { .name = name };
    struct tb_config *c = l.cfg = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(name)) || !(c->dir = config_dir(name)))
        goto fail;
    l.dir = c->dir;
    c->refcount = 1;
    c->version = tb_hash_bytes(text, len);
    if (parse_yaml(&l, text, len))
        goto fail;
    const yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (!root || (root->type == YAML_SCALAR_NODE && cfg_is_null(&l, root))) {
        cfg_error_at(&l, 1, 1, "empty configuration");
        goto fail;
    }
    if (root->type != YAML_MAPPING_NODE) {
        cfg_error(&l, root, 0, "expected a mapping of sections (mqtt, server, endpoints, ...)");
        goto fail;
    }
    if (!(l.pub_pattern = topic_pattern_compile("{key}/{name}", NULL, 0, NULL)) ||
        cfg_substitute_all(&l) || cfg_apply(&l, root, &top_schema, c) || collect_filters(c) ||
        cfg_auth_check(&l, c) ||
        l.nmsgs)
        goto fail;
    loader_finish(&l, diag);
    return c;
fail:
    if (!l.nmsgs)
        cfg_error_at(&l, 1, 1, "out of memory or invalid configuration");
    loader_finish(&l, diag);
    if (c)
        free_config(c);
    return NULL;
}

struct tb_config *config_load(const char *path, struct config_diag *diag)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    if (f) {
        FILE *out = open_memstream(&buf, &len);
        char chunk[8192];
        size_t n;
        while (out && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, n, out);
        if (out)
            fclose(out);
        fclose(f);
    }
    if (!f || !buf) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s: cannot open: %s", path, strerror(f ? ENOMEM : errno));
        if (diag)
            diag_push(diag, msg);
        free(buf);
        return NULL;
    }
    struct tb_config *c = config_load_string(path, buf, len, diag);
    free(buf);
    return c;
}

struct tb_config *config_ref(struct tb_config *c)
{
    if (c)
        __atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(struct tb_config *c)
{
    if (c && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        free_config(c);
}

void config_diag_free(struct config_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = 0;
}

const char *cfg_severity_name(enum cfg_severity s)
{
    static const char *const names[] = { "info", "warning", "critical" };
    return (unsigned)s < COUNT(names) ? names[s] : "unknown";
}

const struct cfg_endpoint *config_find_endpoint(const struct tb_config *c, const char *path,
                                                struct topic_match *m)
{
    /* Literal endpoints win, so "/ws/telemetry/all" can sit next to "/ws/telemetry/{id}". */
    for (int literal = 1; literal >= 0; literal--) {
        for (size_t i = 0; i < c->n_endpoints; i++) {
            const struct cfg_endpoint *e = &c->endpoints[i];
            if (topic_pattern_is_literal(e->pattern) == (bool)literal &&
                topic_pattern_match(e->pattern, path, m))
                return e;
        }
    }
    return NULL;
}
