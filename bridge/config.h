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
#include "token.h"

/* Room templates per endpoint, route or alert rule. */
#define CFG_MAX_ROOMS 32
#define CFG_MAX_WRITER_THREADS 16   /* server.writer_threads */
#define CFG_WRITER_THREADS_AUTO (-1) /* writer_threads: auto */

enum cfg_slow_policy { CFG_SLOW_CONFLATE, CFG_SLOW_DISCONNECT };
/* A route's non-JSON payloads: delivered as a JSON string with a (rate-limited) warning,
 * dropped, or delivered as a string silently because plain text is the topic's format
 * ("online" / "offline" status topics). All three are counted as non_json. */
enum cfg_nonjson_policy { CFG_NONJSON_STRING, CFG_NONJSON_DROP, CFG_NONJSON_TEXT };
enum cfg_severity { CFG_SEV_INFO, CFG_SEV_WARNING, CFG_SEV_CRITICAL };
enum cfg_ack { CFG_ACK_MEMBERS, CFG_ACK_NONE };   /* endpoint 'ack' */
enum cfg_auth_mode { CFG_AUTH_NONE, CFG_AUTH_OPTIONAL, CFG_AUTH_REQUIRED };   /* endpoint 'auth' */

/* An endpoint 'require' entry: the path capture must be permitted by the claim (the
 * subject claim: equal; any other claim: one of its values, globs allowed). */
struct cfg_require {
    int capture;                     /* index in the endpoint's pattern */
    char *claim;
};

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

/* server.deflate: permessage-deflate for the frames the bridge sends (pmd.h). */
struct cfg_deflate {
    bool enabled;               /* offered to clients that ask (new connections), default true */
    size_t min_bytes;           /* smaller frames go uncompressed, default 256 */
    int level;                  /* zlib level 1-9, default 1 */
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
    int delivery;                    /* enum cfg_delivery, default CFG_DELIVERY_ONCE */
    size_t max_payload_bytes;        /* larger MQTT payloads are refused, default 4 MiB */
    size_t max_room_bytes;           /* payload bytes one room stores (history + last values), default 16 MiB */
    size_t max_stored_bytes;         /* the same across all rooms, default 256 MiB */
    char **trusted_proxies;          /* addresses / CIDRs whose X-Forwarded-For is believed */
    size_t n_trusted_proxies;
    char *admin_host;                /* server.admin_listen "host:port"; NULL = none */
    int admin_port;                  /* 0 = no admin listener */
    int writer_threads;              /* threads sharing the end-of-batch send()s, or
                                      * CFG_WRITER_THREADS_AUTO (default: CPUs - 1) */
    /* wss://: certificate chain and key (PEM, both or neither; checked at load), and the
     * CA whose client certificates are required (NULL = none asked for). A reload loads a
     * new certificate for new connections; turning TLS on or off, and the client CA, need
     * a restart. */
    char *tls_cert, *tls_key, *tls_client_ca;
    struct cfg_deflate deflate;
};

/* One publish rule of an endpoint (docs/uplink.md): a client frame {"type":type,"data":{..}}
 * is published to the rendered 'topic' when every check passes. */
struct cfg_publish {
    char *type;                      /* the client message type it accepts */
    struct tmpl *topic;              /* MQTT topic; captures of the endpoint path and {data.x}
                                        fields of the client's message (plain values only) */
    int qos;                         /* 0 or 1, default 1 */
    bool retain;                     /* the client may ask "retain": true; default false */
    size_t max_bytes;                /* the client's "data" as JSON text, default 4096 */
    char **fields;                   /* allowed keys of "data"; empty = any */
    size_t n_fields;
    char **required;                 /* keys "data" must have */
    size_t n_required;
    char **allow_topics;             /* globs ('*' = any run) the topic must match; empty = any */
    size_t n_allow_topics;
    size_t rate_per_second;          /* per connection and rule; 0 = unlimited */
    size_t rate_burst;               /* default: rate_per_second */
    uint64_t reply_timeout_ms;       /* > 0: a command that waits for a reply ('reply: {timeout}') */
    int line, col;
};

/* server.delivery: a message routed to several rooms of one connection reaches it once
 * (naming the rooms) or once per room (the behaviour before issue 15). */
enum cfg_delivery { CFG_DELIVERY_ONCE, CFG_DELIVERY_PER_ROOM };

/* request_alias: other request shapes an endpoint reads as its own. */
enum cfg_request_alias {
    CFG_ALIAS_NONE,
    CFG_ALIAS_SUBSCRIPTION_TYPE,     /* subscribe / unsubscribe with data.subscription_type(s) */
};

/* envelope: how an endpoint's frames name and write their time field (seed clients). */
enum cfg_ts_format { CFG_TS_MS, CFG_TS_ISO8601 };
#define CFG_TS_FIELD_MAX 23
struct cfg_envelope {
    bool set;                        /* the endpoint has an 'envelope' mapping */
    char *ts_field;                  /* name of the time field, default "ts" */
    int timestamp;                   /* enum cfg_ts_format, default ms */
    char *alert_time_field;          /* alerts' raised_at renamed (seed 002: timestamp), or NULL */
    char *status_ok;                 /* heartbeat server_status instead of "ok", or NULL */
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
    int request_alias;               /* enum cfg_request_alias, default none */
    struct cfg_envelope envelope;    /* time field of its frames (default: "ts", ms) */
    int identity_capture;            /* 'identity': index of the path capture naming the
                                        client (acknowledged_by), -1 = anonymous; default:
                                        the path's capture when it has exactly one */
    int client_rate, client_burst;   /* limits.client_rate / client_burst for this endpoint;
                                        -1 (absent) = the limits: values */
    enum cfg_auth_mode auth;         /* 'auth': none (default), optional, required */
    bool auth_message;               /* a first {"type":"auth"} frame may carry the token */
    struct cfg_require *require;     /* 'require: {capture: claim}' (config_auth.c) */
    size_t n_require;
    char **roles;                    /* 'roles': one of them needed (empty = none needed) */
    size_t n_roles;
    struct cfg_publish *publish;     /* what its clients may publish to MQTT (not inherited
                                        by same_as aliases) */
    size_t n_publish;
    int line, col;
};

/* keep_last: true keeps one value per message type; per_topic and {by: payload.x} keep
 * one per key (topic, or payload field value) in the room's keyed store (room.h). */
enum cfg_keep_by { CFG_KEEP_TYPE, CFG_KEEP_TOPIC, CFG_KEEP_FIELD };

struct cfg_route {
    char *match_src;
    struct topic_pattern *match;
    struct tmpl **rooms;             /* compiled against 'match' */
    size_t n_rooms;
    struct expr *when;               /* NULL = always */
    char *type;                      /* outgoing message type, default "message" */
    bool keep_last;                  /* keep the newest message: per type, or per keep_by */
    enum cfg_keep_by keep_by;        /* what a kept value is the newest of (default type) */
    char *keep_by_field;             /* CFG_KEEP_FIELD: payload path, e.g. "vehicle_id" */
    size_t keep_last_max;            /* keyed values kept per room, oldest out, default 10000 */
    uint64_t keep_last_ttl_ms;       /* keyed values not updated for this long go; 0 = never */
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

/* Abuse limits (limits.c; docs/configuration.md "limits"). 0 turns a limit off. */
struct cfg_limits {
    size_t client_rate;              /* client messages per second per connection, default 100 */
    size_t client_burst;             /* bucket size, default 200 */
    size_t close_after;              /* refusals within 10 s before close 1008, default 100 */
    size_t max_per_address;          /* open WebSocket connections per address, default 256 */
    size_t handshake_rate;           /* upgrades per second per address, default 20 */
    size_t handshake_burst;          /* default 100 */
    int ipv6_prefix;                 /* IPv6 addresses are grouped by this prefix, default 64 */
    size_t max_addresses;            /* entries of the address table, default 100000 (restart) */
    bool exempt_loopback;            /* no per-address limits for 127/8 and ::1, default true */
};

/* log: the daemon's log lines (log.h); the command line's --log-level / --log-format win. */
struct cfg_log {
    int level;                       /* enum tb_log_level, default info */
    int format;                      /* enum tb_log_format, default text */
};

/* Race sessions (session.c): ids handed out over MQTT request/response. */
struct cfg_sessions {
    bool enabled;                    /* true when the 'sessions' section is present */
    char *request_topic;             /* default "session/request" */
    char *room_prefix;               /* room of session <sid> is <room_prefix><sid>, default "session:" */
    size_t max_sessions;             /* ids remembered, oldest forgotten first, default 10000 */
    bool validate;                   /* route session traffic only for issued ids, default false */
    uint64_t ttl_ms;                 /* an issued id is forgotten this long after issue
                                        (and its retained registry entry cleared); default
                                        24 h, 0 = kept until max_sessions pushes it out */
};

/* Retained alert states (alert_runtime.c): what the bridge stamps on the states it
 * publishes and which retained states it restores after a restart. */
struct cfg_alert_state {
    char *origin;                    /* stamped as "origin"; default "telebridge" */
    char *hmac_key;                  /* NULL = no "sig"; else HMAC-SHA256 over the state */
    size_t max_restored;             /* retained states restored at most, default 10000 */
};

/* auth (config_auth.c; docs/security.md). Absent section: tb_config.auth is NULL. */
struct cfg_issuer {
    char *issuer;                    /* the token's 'iss' must equal it; NULL = any (one issuer) */
    char *audience;                  /* the token's 'aud' must hold it; NULL = not checked */
    struct token_keyset keys;        /* hs256_secret(_file), public_key_file, jwks_file */
};
struct cfg_api_key {
    char sha256[TOKEN_SHA256_HEX_LEN + 1];   /* hex of the key's SHA-256 */
    char *identity;                  /* the subject of its connections */
    void *claims;                    /* cJSON object: the key's claims ('sub' = identity) */
};
/* A room rule: rooms matching 'room' (literal text around at most one {capture}) need the
 * capture permitted by 'claim' and/or one of 'roles'. First matching rule decides. */
struct cfg_room_rule {
    char *room;
    char *claim;                     /* NULL = no claim check */
    char **roles;
    size_t n_roles;
    bool public_room;                /* 'public: true': anyone, also anonymous */
};
struct cfg_auth {
    struct cfg_issuer *issuers;
    size_t n_issuers;
    struct cfg_api_key *api_keys;
    size_t n_api_keys;
    uint64_t clock_skew_ms;          /* default 30 s */
    bool require_exp;                /* default true */
    char *claim_subject;             /* default "sub" */
    char *claim_roles;               /* default "roles" */
    char *admin_role;                /* default "admin"; NULL-able ("" = no admin role) */
    char **ack_roles;                /* roles that may ack_alert; empty = any identity */
    size_t n_ack_roles;
    char *alerts_claim;              /* claim that must permit an alert's key to see it; NULL = off */
    uint64_t expiry_warning_ms;      /* auth_expiring this long before exp, default 60 s */
    uint64_t auth_timeout_ms;        /* deadline of the first 'auth' frame, default 5 s */
    struct cfg_room_rule *rules;
    size_t n_rules;
    bool rooms_default_allow;        /* rooms no rule matches: allow (default) or deny */
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
    struct cfg_limits limits;
    struct cfg_log log;
    struct cfg_sessions sessions;
    struct cfg_alert_state alert_state;
    struct cfg_auth *auth;           /* NULL without an 'auth' section */
    bool replies;                    /* some publish rule waits for replies: the bridge
                                        subscribes telebridge/<client_id>/reply/# */
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
