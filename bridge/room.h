/* room: named fan-out groups with per-room sequence numbers, last value and history.
 *
 * A room exists while it has members or state worth keeping (a last value or history);
 * a room with neither is freed, and delivering to a room that does not exist costs
 * nothing (no serialization). A subscription (struct sub) links one connection to one
 * room and sits on two lists: the room's members and the connection's subscriptions.
 * Service thread only. */
#ifndef TB_ROOM_H
#define TB_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct conn;
struct room;
struct sub_shape;

/* Client-made reasons a connection is in a room (struct sub 'how'), besides the
 * endpoint's own rooms ('auto_joined'); the room is left when none is left. */
enum {
    SUB_BY_CLIENT = 1,     /* an explicit subscribe or join_session */
    SUB_BY_PATTERN = 2,    /* a subscribed pattern such as "vehicle:*" matches the room */
};

struct sub {
    struct conn *conn;
    struct room *room;
    struct sub *room_prev, *room_next;   /* the room's members */
    struct sub *conn_next;               /* the connection's subscriptions */
    unsigned n_pending;                  /* conflated messages waiting for queue space (conn.c) */
    bool auto_joined;                    /* joined because of the endpoint (recomputed on reload) */
    unsigned how;                        /* SUB_BY_* bits (subscribe.c) */
    struct sub_shape *shape;             /* per-client shaping (max_rate, fields), or NULL */
    struct tb_msg *held;                 /* max_rate: newest message waiting for its slot */
    uint64_t next_ms;                    /* max_rate: earliest time of the next send */
};

/* The newest keep_last message of one message type in a room: a session room keeps
 * its setup and its latest telemetry side by side. */
struct room_last {
    char *type;
    struct tb_msg *msg;
    uint64_t seq;
};

struct room {
    char *name;
    uint64_t seq;                /* of the last message routed here */
    struct tb_msg *last;         /* keep_last value, or NULL */
    uint64_t last_at_ms;
    struct room_last *lasts;     /* keep_last value per message type, oldest seq first */
    size_t n_lasts;
    uint64_t hist_ttl_ms;        /* history entries older than this do not count; 0 = no limit */
    struct tb_msg **hist;        /* ring of the newest hist_cap messages */
    uint64_t *hist_seq;
    uint64_t *hist_at;
    size_t hist_cap, hist_head, hist_len;
    struct sub *members;
    size_t n_members;
    struct room *hash_next;
};

struct room_registry;

struct room_registry *room_registry_new(void);
void room_registry_free(struct room_registry *r);   /* rooms must have no members */
size_t room_registry_count(const struct room_registry *r);

struct room *room_find(struct room_registry *r, const char *name);
/* Finds or creates; NULL when out of memory. */
struct room *room_get(struct room_registry *r, const char *name);
/* Frees the room if it has no members, no last value and no history. */
void room_release_if_idle(struct room_registry *r, struct room *room);

/* Sets the last value (takes a new reference; drops the old one). */
void room_set_last(struct room *room, struct tb_msg *m, uint64_t now_ms);
/* Sets the last value of message type 'type' (and 'last'); -1 when out of memory. */
int room_set_last_typed(struct room *room, const char *type, struct tb_msg *m, uint64_t seq,
                        uint64_t now_ms);
/* Grows or shrinks the history ring to 'cap' entries (keeps the newest). */
int room_set_history_cap(struct room *room, size_t cap);
/* Drops history entries older than the room's hist_ttl_ms (none when 0); returns how
 * many were dropped. Entries are in time order, so this stops at the first young one. */
size_t room_history_expire(struct room *room, uint64_t now_ms);
void room_history_push(struct room *room, struct tb_msg *m, uint64_t seq, uint64_t now_ms);

/* Links a new subscription of 'c' to 'room'; NULL when out of memory. The caller
 * links it into the connection's list. */
struct sub *room_join(struct room *room, struct conn *c);
/* Unlinks from the room; the caller frees the sub. */
void room_leave(struct sub *s);

/* The subscription linking connection c to 'room', or NULL. Walks the room's members
 * and the connection's subscriptions ('conn_subs') in lockstep, so it costs the shorter
 * of the two lists: a client holding 50,000 rooms joins one more in O(members). */
struct sub *room_sub_of(struct room *room, const struct conn *c, struct sub *conn_subs);

void room_foreach(struct room_registry *r, void (*fn)(struct room *, void *), void *ud);

#endif
