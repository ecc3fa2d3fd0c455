/* config: the YAML configuration, loaded into an immutable, refcounted snapshot.
 *
 * config_load() parses the file with libyaml, substitutes ${VAR} / ${VAR:-default}
 * in scalars, validates everything (unknown keys with "did you mean", types, ranges,
 * topic patterns, templates against the captures of their pattern, expressions,
 * duplicate endpoints) and either returns a complete snapshot or NULL with every
 * error collected as "file:line:column: message". A snapshot is never modified after
 * load; a reload builds a new one and swaps the pointer, old readers keep theirs
 * until they drop their reference (config_ref / config_unref are thread-safe).
 *
 * Ownership: the snapshot owns every string, pattern, template and expression in it. */
#ifndef TB_CONFIG_H
#define TB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expr.h"
#include "template.h"
#include "topic.h"

/* Room templates per endpoint, route or alert rule. */
#define CFG_MAX_ROOMS 32
#define CFG_MAX_WRITER_THREADS 16   /* server.writer_threads */
#define CFG_WRITER_THREADS_AUTO (-1) /* writer_threads: auto */

enum cfg_slow_policy { CFG_SLOW_CONFLATE, CFG_SLOW_DISCONNECT };
enum cfg_nonjson_policy { CFG_NONJSON_STRING, CFG_NONJSON_DROP };
enum cfg_severity { CFG_SEV_INFO, CFG_SEV_WARNING, CFG_SEV_CRITICAL };
enum cfg_ack { CFG_ACK_MEMBERS, CFG_ACK_NONE };   /* endpoint 'ack' */

struct cfg_mqtt {
    char *host;                 /* default "127.0.0.1" */
    int port;                   /* default 1883 (8883 when tls_ca is set) */
    char *client_id;            /* default "telebridge-<hostname>" (stable across restarts) */
    char *username, *password;  /* NULL when unset or empty */
    int keepalive;              /* seconds, default 30 */
    int protocol;               /* 311 or 5, default 5 (YAML accepts 3.1.1, 311, 5) */
    int qos;                    /* 0 or 1, default 1 */
    bool clean_session;         /* default true */
    char *tls_ca, *tls_cert, *tls_key;  /* NULL = no TLS; paths relative to the config file */
    bool tls_insecure;          /* skip hostname verification, default false */
    int reconnect_min_ms;       /* default 500 */
    int reconnect_max_ms;       /* default 10000 */
};

struct cfg_server {
    char *listen_host;          /* from "listen: host:port", default "0.0.0.0" */
    int port;                   /* default 8080 */
    char **allowed_origins;     /* empty = any origin */
    size_t n_allowed_origins;
    int max_connections;        /* default 20000 */
    size_t max_message_bytes;   /* largest client frame accepted, default 65536 */
    char *static_dir;           /* absolute or relative to the config file; NULL = none */
    bool reuse_port;            /* SO_REUSEPORT: N processes share the port (default false) */
    size_t send_queue_frames;   /* per-connection bound, default 256 */
    size_t send_queue_bytes;    /* per-connection bound, default 1 MiB */
    size_t max_rooms_per_connection; /* client subscriptions (rooms + patterns), default 100 */
    size_t max_rooms;                /* rooms in memory; beyond it no new room is created, default 200000 */
    size_t max_client_rooms;         /* of those, created for clients and not routed to, default 20000 */
    size_t max_payload_bytes;        /* larger MQTT payloads are refused, default 4 MiB */
    size_t max_room_bytes;           /* payload bytes one room stores (history + last values), default 16 MiB */
    size_t max_stored_bytes;         /* the same across all rooms, default 256 MiB */
    int writer_threads;              /* threads sharing the end-of-batch send()s, or
                                      * CFG_WRITER_THREADS_AUTO (default: CPUs - 1) */
};

struct cfg_endpoint {
    char *path;                      /* as written, e.g. "/ws/telemetry/{vehicle_id}" */
    struct topic_pattern *pattern;   /* compiled path pattern */
    struct tmpl **rooms;             /* compiled against 'pattern' */
    size_t n_rooms;
    char *same_as;                   /* alias target as written, or NULL; rooms are resolved */
    bool client_subscriptions;       /* may send subscribe / unsubscribe */
    char **allow_subscribe;          /* room globs ('*' = any run of characters) a client may
                                        subscribe to; empty = any room */
    size_t n_allow_subscribe;
    int max_connections;             /* 0 = only the server-wide limit */
    enum cfg_ack ack;                /* who may send ack_alert: members (default) or none */
    int identity_capture;            /* 'identity': index of the path capture naming the
                                        client (acknowledged_by), -1 = anonymous; default:
                                        the path's capture when it has exactly one */
    int line, col;
};

struct cfg_route {
    char *match_src;
    struct topic_pattern *match;
    struct tmpl **rooms;             /* compiled against 'match' */
    size_t n_rooms;
    struct expr *when;               /* NULL = always */
    char *type;                      /* outgoing message type, default "message" */
    bool keep_last;
    size_t history;                  /* messages kept per room for resume, 0 = none */
    uint64_t history_ttl_ms;         /* 0 = no age limit */
    enum cfg_slow_policy slow_client;     /* default conflate */
    enum cfg_nonjson_policy non_json;     /* default string */
    char **rooms_allowed;            /* globs ('*' = any run): the rooms a payload-reading room
                                        template may render to; required with such a template */
    size_t n_rooms_allowed;
    int line, col;
};

struct cfg_alert {
    char *name;                      /* unique, [A-Za-z0-9_-]+ */
    char *match_src;
    struct topic_pattern *match;
    struct expr *when;               /* NULL for a pure inactivity rule */
    struct expr *clear_when;         /* NULL = "when no longer holds" */
    uint64_t for_ms;                 /* condition must hold this long, 0 = at once */
    uint64_t inactive_for_ms;        /* 0 = not an inactivity rule */
    enum cfg_severity severity;      /* default warning */
    struct tmpl *message;            /* TMPL_BARE_FIELDS; default "<name>" */
    struct tmpl *key;                /* alert key, default: first capture, else topic */
    char *value_field;               /* field reported as 'value', default: first field of 'when' */
    struct tmpl **rooms;             /* default ["alerts"] */
    size_t n_rooms;
    struct tmpl *publish_topic;      /* default "alerts/{key}/{name}" (captures: key, name) */
    int line, col;
};

struct cfg_heartbeat {
    uint64_t interval_ms;            /* default 10 s; 0 = off */
    uint64_t ws_ping_ms;             /* default 20 s; 0 = off */
    uint64_t idle_timeout_ms;        /* default 60 s; 0 = off */
};

/* Race sessions (session.c): ids handed out over MQTT request/response. */
struct cfg_sessions {
    bool enabled;                    /* true when the 'sessions' section is present */
    char *request_topic;             /* default "session/request" */
    char *room_prefix;               /* room of session <sid> is <room_prefix><sid>, default "session:" */
    size_t max_sessions;             /* ids remembered, oldest forgotten first, default 10000 */
};

/* Retained alert states (alert_runtime.c): what the bridge stamps on the states it
 * publishes and which retained states it restores after a restart. */
struct cfg_alert_state {
    char *origin;                    /* stamped as "origin"; default "telebridge" */
    char *hmac_key;                  /* NULL = no "sig"; else HMAC-SHA256 over the state */
    size_t max_restored;             /* retained states restored at most, default 10000 */
};

/* Several bridges as one (cluster.c, docs/scaling.md). 'name' NULL = clustering off:
 * the bridge owns every alert key and session request itself. */
struct cfg_cluster {
    char *name;                      /* peers share it; NULL = off */
    char *instance_id;               /* default mqtt.client_id; names telebridge/<id>/status */
};

struct tb_config {
    char *path;                      /* file it was loaded from */
    char *dir;                       /* directory of 'path', for relative paths */
    uint64_t version;                /* hash of the file's bytes, shown to clients */
    struct cfg_mqtt mqtt;
    struct cfg_server server;
    struct cfg_endpoint *endpoints;
    size_t n_endpoints;
    struct cfg_route *routes;
    size_t n_routes;
    struct cfg_alert *alerts;
    size_t n_alerts;
    struct cfg_heartbeat heartbeat;
    struct cfg_sessions sessions;
    struct cfg_alert_state alert_state;
    struct cfg_cluster cluster;
    char **filters;                  /* distinct MQTT subscription filters the routes and alerts need */
    size_t n_filters;
    int refcount;                    /* atomic; use config_ref / config_unref */
};

/* Collected diagnostics, "file:line:column: message" each. */
struct config_diag {
    char **msgs;
    size_t n;
};

/* Loads and validates 'path'. Returns a snapshot with refcount 1, or NULL with the
 * errors appended to 'diag' (which the caller frees with config_diag_free). */
struct tb_config *config_load(const char *path, struct config_diag *diag);
/* Same, from a string; 'name' is used in messages. */
struct tb_config *config_load_string(const char *name, const char *text, size_t len,
                                     struct config_diag *diag);

struct tb_config *config_ref(struct tb_config *c);
void config_unref(struct tb_config *c);   /* frees at zero; NULL is harmless */

void config_diag_free(struct config_diag *d);

/* Settings that take effect only at start-up (marked in config.c's key tables): the MQTT
 * connection (mqtt.*), server.listen, server.writer_threads, heartbeat.ws_ping and
 * heartbeat.idle_timeout. Upper bound on how many there are, for sizing 'names'. */
#define CFG_MAX_RESTART_SETTINGS 32

/* For a reload from 'cur' (running) to 'next' (not yet shared): every restart setting
 * whose value differs gets cur's value back in next (strings duplicated, next's freed) and
 * its dotted key ("mqtt.host", "server.listen", ...; static strings) is stored in names[],
 * in key-table order, at most max_names of them. Returns how many names were stored.
 * server.listen covers listen_host and port and is reported once. No other side effects;
 * any thread. */
size_t config_keep_restart_settings(struct tb_config *next, const struct tb_config *cur,
                                    const char **names, size_t max_names);

const char *cfg_severity_name(enum cfg_severity s);

/* The endpoint written exactly as 'path' (the pattern text, not a request path), or NULL. */
const struct cfg_endpoint *config_endpoint_by_path(const struct tb_config *c, const char *path);

/* Frees what one alert rule owns (not the struct itself); for rules built by hand (tests). */
void cfg_alert_free(struct cfg_alert *a);

/* Finds the endpoint whose pattern matches 'path'; fills m with its captures. */
const struct cfg_endpoint *config_find_endpoint(const struct tb_config *c, const char *path,
                                                struct topic_match *m);

#endif
