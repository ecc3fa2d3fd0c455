/* subscribe: rooms chosen by the client - subscribe / unsubscribe, room patterns and
 * resume after reconnect.
 *
 * Why a connection is in a room is kept per subscription: the endpoint joined it
 * (sub->auto_joined), the client asked for it (SUB_BY_CLIENT), or one of the
 * client's patterns matches it (SUB_BY_PATTERN). Unsubscribing removes one reason;
 * the room is left when no reason remains.
 *
 * Patterns: a room name with '*' (any run of characters) is a pattern. Subscribing
 * to it joins every existing matching room at once and every matching room created
 * later (the room registry's create hook, registered here). The endpoint's
 * allow_subscribe globs decide what may be subscribed: a pattern is allowed when an
 * allow glob matches the pattern text itself, which implies it covers every room the
 * pattern can match. Each joined room also passes fanout_may_join.
 *
 * Resume: a subscription with since {room: seq} and the welcome frame's epoch replays
 * the room's history after seq when it holds every message since then (and they fit
 * in the send queue); otherwise the client gets {"type":"resync"} and the room's
 * current state. Replays are queued before any live message of the room can be,
 * because everything runs on the service thread: no gap, no duplicate.
 *
 * Shaping options (fields, max_rate) are parsed here and applied by fanout.
 *
 * Service thread only. Per-connection state: conn->patterns (struct conn_patterns). */
#ifndef TB_SUBSCRIBE_H
#define TB_SUBSCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "shape.h"

struct conn;
struct fanout;
struct room;
struct sub;
struct subscriptions;
struct tb_config;

#define SUB_ROOM_NAME_MAX 200       /* bytes of a room name or pattern in a request */
#define SUB_MAX_ROOMS_PER_REQUEST 256
#define SUB_PATTERN_MAX_STARS 8     /* '*' in one pattern; more is refused as bad_room */
/* Rooms one subscribe request may match against new patterns; the first new pattern of
 * a request always walks every room, later ones past this get "busy" (retry later). A
 * pattern already held is not walked again. */
#define SUB_WALK_BUDGET 100000

/* Options shared by subscribe and join_session. */
struct sub_opts {
    struct sub_shape *shape;        /* owned; NULL = unshaped */
    const cJSON *since;             /* {"room": seq} (borrowed from the request) or NULL */
    bool epoch_ok;                  /* the request's epoch is this bridge's */
};

/* '*' matches any run of characters (also none); everything else matches itself. */
bool subscribe_glob_match(const char *glob, const char *s);
/* At most SUB_PATTERN_MAX_STARS stars (the length is bounded by SUB_ROOM_NAME_MAX). */
bool subscribe_pattern_valid(const char *glob);
/* 1..SUB_ROOM_NAME_MAX bytes, no control characters. */
bool subscribe_room_name_valid(const char *room);

/* The feature's state: watches room creation for patterns (registers the fanout and
 * registry hooks). 'cfg' is borrowed; subscriptions_set_config follows every swap. */
struct subscriptions *subscriptions_new(struct fanout *f, const struct tb_config *cfg, uint64_t epoch);
void subscriptions_free(struct subscriptions *ss);      /* NULL is harmless */
void subscriptions_set_config(struct subscriptions *ss, const struct tb_config *cfg);

/* Frees the connection's patterns (before it is freed). */
void subscribe_conn_close(struct subscriptions *ss, struct conn *c);

/* Reads max_rate, fields, since and epoch of a request into o. On a bad field sends a
 * bad_field error and returns -1. subscribe_opts_free releases o. */
int subscribe_parse_opts(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id,
                         struct sub_opts *o);
void subscribe_opts_free(struct sub_opts *o);

/* Request handlers (protocol.c's table). */
void subscribe_handle_subscribe(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id);
void subscribe_handle_unsubscribe(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id);

/* Joins one room for the client (join_session). Answers with 'reply_type' and the
 * members of 'top' (consumed) plus "room", then the room's state (or resume). On a
 * refusal sends an error with the refusal code instead and returns -1. */
int subscribe_join_one(struct subscriptions *ss, struct conn *c, const cJSON *id, const char *room,
                       struct sub_opts *o, const char *reply_type, cJSON *top);
/* Resume on the upgrade URL (issue 15, point 3): reads 'query' (the URL's arguments,
 * "a=b&c=d", already URL-decoded) for epoch=<e> and since=<seq> (an endpoint of one room)
 * or since=<room>:<seq> (repeatable; the seq follows the last ':'). Other arguments are
 * ignored. Returns {room: seq} for the connection's endpoint rooms (subs[0..n)), or NULL
 * when the URL asks for no resume; *epoch gets the epoch (borrowed from 'scratch', a copy
 * of query the caller frees) or NULL. A malformed or foreign since is left out and
 * described in err (empty when all was well). */
cJSON *subscribe_url_since(const char *query, struct sub *const *subs, size_t n, char **scratch,
                           const char **epoch, char *err, size_t errlen);
/* The catch-up of rooms the connection is in already (a new connection's endpoint rooms,
 * in this order): for each, the resume 'since' asks for (replay or resync), else its state. */
void subscribe_catch_up(struct subscriptions *ss, struct conn *c, struct sub *const *subs, size_t n,
                        const cJSON *since, const char *epoch);

/* Drops the client's own subscription of 'room'; false when it had none. */
bool subscribe_leave_one(struct conn *c, const char *room);

#endif
