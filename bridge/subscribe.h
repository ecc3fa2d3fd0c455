/* subscribe: rooms chosen by the client - subscribe / unsubscribe, room patterns,
 * resume after reconnect, and per-subscription shaping at delivery time.
 *
 * Why a connection is in a room is kept per subscription: the endpoint joined it
 * (sub->auto_joined), the client asked for it (SUB_BY_CLIENT), or one of the
 * client's patterns matches it (SUB_BY_PATTERN). Unsubscribing removes one reason;
 * the room is left when no reason remains.
 *
 * Patterns: a room name with '*' (any run of characters) is a pattern. Subscribing
 * to it joins every existing matching room at once and every matching room created
 * later (bridge_join / bridge_deliver call subscribe_on_room_created). The endpoint's
 * allow_subscribe globs decide what may be subscribed: a pattern is allowed when an
 * allow glob matches the pattern text itself, which implies it covers every room the
 * pattern can match. Each joined room also passes bridge_authorize_join.
 *
 * Resume: a subscription with since {room: seq} and the welcome frame's epoch replays
 * the room's history after seq when it holds every message since then (and they fit
 * in the send queue); otherwise the client gets {"type":"resync"} and the room's
 * current state. Replays are queued before any live message of the room can be,
 * because everything runs on the service thread: no gap, no duplicate.
 *
 * Shaping: fields (projection, shared per shape key through shape_cache) and max_rate
 * (the first message goes out at once, later ones wait for the next slot; a newer
 * message replaces the waiting one, so what is sent is always the newest; a
 * per-connection lws timer sends the waiting message when its slot comes).
 *
 * Service thread only. Per-connection state lives in conn->ext (struct proto_conn). */
#ifndef TB_SUBSCRIBE_H
#define TB_SUBSCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "shape.h"

struct bridge;
struct conn;
struct room;
struct sub;

#define SUB_ROOM_NAME_MAX 200       /* bytes of a room name or pattern in a request */
#define SUB_MAX_ROOMS_PER_REQUEST 256

struct sub_pattern {
    char *glob;
    struct sub_shape *shape;        /* owned reference, or NULL */
    struct sub_pattern *next;
};

/* Per-connection state (conn->ext). */
struct proto_conn {
    struct conn *c;
    struct sub_pattern *patterns;
    size_t n_patterns;
    struct proto_conn *pat_prev, *pat_next;  /* the bridge's connections with patterns */
    bool in_pat_list;
    lws_sorted_usec_list_t sul;              /* max_rate timer */
    uint64_t timer_due_ms;                   /* 0 = not armed */
};

/* Options shared by subscribe and join_session. */
struct sub_opts {
    struct sub_shape *shape;        /* owned; NULL = unshaped */
    const cJSON *since;             /* {"room": seq} (borrowed from the request) or NULL */
    bool epoch_ok;                  /* the request's epoch is this bridge's */
};

/* '*' matches any run of characters (also none); everything else matches itself. */
bool subscribe_glob_match(const char *glob, const char *s);
/* 1..SUB_ROOM_NAME_MAX bytes, no control characters. */
bool subscribe_room_name_valid(const char *room);

int subscribe_conn_open(struct bridge *br, struct conn *c);
void subscribe_conn_close(struct bridge *br, struct conn *c);

/* Reads max_rate, fields, since and epoch of a request into o. On a bad field sends a
 * bad_field error and returns -1. subscribe_opts_free releases o. */
int subscribe_parse_opts(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id,
                         struct sub_opts *o);
void subscribe_opts_free(struct sub_opts *o);

/* Request handlers (protocol.c's table). */
void subscribe_handle_subscribe(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id);
void subscribe_handle_unsubscribe(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id);

/* Joins one room for the client (join_session). Answers with 'reply_type' and the
 * members of 'top' (consumed) plus "room", then the room's state (or resume). On a
 * refusal sends an error with the refusal code instead and returns -1. */
int subscribe_join_one(struct bridge *br, struct conn *c, const cJSON *id, const char *room,
                       struct sub_opts *o, const char *reply_type, cJSON *top);
/* Drops the client's own subscription of 'room'; false when it had none. */
bool subscribe_leave_one(struct bridge *br, struct conn *c, const char *room);

/* A room was just created: connections whose patterns match it join it. */
void subscribe_on_room_created(struct bridge *br, struct room *room);
/* Does any connection hold a pattern (so new rooms may have members)? */
bool subscribe_have_patterns(struct bridge *br);

/* Delivery of routed message m to a shaped subscription (projection + max_rate). */
void subscribe_deliver(struct bridge *br, struct sub *s, struct tb_msg *m, bool conflate,
                       struct shape_cache *sc, uint64_t now_ms);
/* Queues the room's keep_last values (one per message type, oldest first), shaped. */
void subscribe_send_last_values(struct bridge *br, struct conn *c, struct sub *s);

#endif
