/* room: named fan-out groups that own their sequence numbers, last values and history.
 *
 * A room exists while it has members or state worth keeping (a last value or history);
 * a room with neither is freed, and delivering to a room that does not exist costs
 * nothing (no serialization). A subscription (struct sub) links one connection to one
 * room and sits on two lists: the room's members and the connection's subscriptions.
 *
 * The room owns its data: room_remember() stores a routed message (keep_last per type,
 * keep_last per key in the keyed store, history ring), room_history_since() plans a
 * resume against the ring, room_snapshot_*() walk the keyed store for a joiner,
 * room_has_state() says whether anything is kept. No other module does arithmetic on
 * the ring or the store.
 *
 * The registry tells one listener when a room is created (room_registry_on_create), so
 * client patterns can join new rooms without the registry knowing about patterns.
 * Service thread only. */
#ifndef TB_ROOM_H
#define TB_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

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
    struct lws_dll2 in_room;             /* the room's members */
    struct sub *conn_next;               /* the connection's subscriptions */
    unsigned n_pending;                  /* conflated messages waiting for queue space (conn.c) */
    bool auto_joined;                    /* joined because of the endpoint (recomputed on reload) */
    unsigned how;                        /* SUB_BY_* bits (subscribe.c) */
    struct sub_shape *shape;             /* per-client shaping (max_rate, fields), or NULL */
    struct sub_snap *snap;               /* keyed snapshot under way, NULL = live (room.c) */
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

/* One key's newest message in a room's keyed store (keep_last: per_topic / by field). */
struct room_entry {
    char *key;
    struct tb_msg *msg;
    uint64_t seq, at_ms;
    struct lws_dll2 in_order;    /* room_keyed.order: oldest seq first */
    struct room_entry *hnext;    /* index chain */
};

/* The keyed last values of a room: a hash index by key and a list in seq order (an
 * updated key moves to the end), so the oldest entry is the first to go when the bound
 * or the TTL strikes, and a joiner's snapshot is a cursor walking that list. Subscriptions
 * with a cursor sit on 'snaps', so an entry that moves or goes can move their cursors. */
struct room_keyed {
    struct room_entry **index;
    size_t buckets;
    struct lws_dll2_owner order;
    struct lws_dll2_owner snaps; /* struct sub_snap (room.c), linked by in_snaps */
    size_t max;                  /* entries kept, oldest out beyond it */
    uint64_t ttl_ms;             /* entries not updated for this long go; 0 = no limit */
};

struct room {
    char *name;
    struct room_registry *reg;   /* for the registry-wide byte and client-room counts */
    bool by_client;              /* created for a client (subscribe, endpoint path), not yet routed to */
    size_t bytes;                /* payload bytes stored: history entries + last values per type */
    uint64_t seq;                /* of the last message routed here */
    struct tb_msg *last;         /* keep_last value, or NULL */
    uint64_t last_at_ms;
    struct room_last *lasts;     /* keep_last value per message type, oldest seq first */
    size_t n_lasts;
    struct room_keyed *keyed;    /* keep_last per key, allocated on first use, or NULL */
    uint64_t hist_ttl_ms;        /* history entries older than this do not count; 0 = no limit */
    struct tb_msg **hist;        /* ring of the newest hist_cap messages */
    uint64_t *hist_seq;
    uint64_t *hist_at;
    size_t hist_cap, hist_head, hist_len;
    struct lws_dll2_owner members;   /* struct sub, linked by in_room */
    struct room *hash_next;
};

/* Iterating a room's members: for (s = room_first_member(r); s; s = room_next_member(s)).
 * The next member is read before the body runs only if the caller saves it. */
static inline struct sub *room_first_member(struct room *r)
{
    struct lws_dll2 *d = lws_dll2_get_head(&r->members);
    return d ? lws_container_of(d, struct sub, in_room) : NULL;
}
static inline struct sub *room_next_member(struct sub *s)
{
    return s->in_room.next ? lws_container_of(s->in_room.next, struct sub, in_room) : NULL;
}
static inline bool room_has_members(const struct room *r) { return r->members.count != 0; }
static inline size_t room_member_count(const struct room *r) { return (size_t)r->members.count; }

/* Does the room keep anything (a last value or history)? */
static inline size_t room_keyed_count(const struct room *r) { return r->keyed ? r->keyed->order.count : 0; }
static inline bool room_has_state(const struct room *r)
{
    return r->last || r->n_lasts || r->hist_len || room_keyed_count(r);
}

struct room_registry;

struct room_registry *room_registry_new(void);
void room_registry_free(struct room_registry *r);   /* rooms must have no members */
size_t room_registry_count(const struct room_registry *r);
/* 'fn' is told of every room room_get creates (one listener; NULL removes it). */
void room_registry_on_create(struct room_registry *r, void (*fn)(void *ud, struct room *room), void *ud);

struct room *room_find(struct room_registry *r, const char *name);
/* Finds or creates; NULL when out of memory. */
struct room *room_get(struct room_registry *r, const char *name);
/* Same, marking a room it creates as client-created (counted in room_registry_client_count
 * until room_mark_routed). */
struct room *room_get_for(struct room_registry *r, const char *name, bool by_client);
/* Routed data reached a client-created room: from now on it is a routed room. */
void room_mark_routed(struct room *room);
/* Rooms created for clients and not routed to since (issue 14, point 2). */
size_t room_registry_client_count(const struct room_registry *r);

/* Byte bounds on what rooms store (history + last values): per room and in total across
 * rooms (0 = no bound). When a room stores a message beyond either bound, its own oldest
 * history entries are dropped first (the newest included, if need be); last values are
 * always kept. A resuming client then gets a resync ("history_gap"). */
void room_registry_set_byte_limits(struct room_registry *r, size_t per_room, size_t total);
size_t room_registry_stored_bytes(const struct room_registry *r);
/* History entries dropped by the byte bounds since start. */
uint64_t room_registry_trimmed(const struct room_registry *r);
/* Frees the room if it has no members and no state (room_has_state). */
void room_release_if_idle(struct room_registry *r, struct room *room);

/* What a route asks a room to keep of the messages it delivers there. */
struct room_keep {
    bool last;                   /* keep_last: the newest message per type */
    size_t history;              /* entries of history (the ring grows to the largest asked) */
    uint64_t history_ttl_ms;     /* 0 = entries never expire */
    bool keyed;                  /* keep_last per key instead: the key is room_remember's */
    size_t keyed_max;            /* keep_last_max (0 = no bound) */
    uint64_t keyed_ttl_ms;       /* keep_last_ttl (0 = no limit) */
};
/* Stores m (seq, at now_ms) as the room's last value of 'type' (keep->last), or of 'key'
 * in the keyed store (keep->keyed; 'key' NULL = not kept there), and/or in its history,
 * as 'keep' says; nothing when it asks for none. Returns true when m went into the keyed
 * store (a member still receiving its snapshot gets it from there, not directly). */
bool room_remember(struct room *room, const struct room_keep *keep, const char *type,
                   const char *key, struct tb_msg *m, uint64_t seq, uint64_t now_ms);

/* ---- keyed last values ---- */
/* Stores m as the newest of 'key' (moves the key to the end of the order); drops the
 * oldest entries beyond 'max' (0 = no bound). -1 when out of memory (nothing changed). */
int room_keyed_set(struct room *room, const char *key, struct tb_msg *m, uint64_t seq,
                   uint64_t now_ms, size_t max, uint64_t ttl_ms);
/* The newest message of 'key', or NULL; borrowed. */
struct tb_msg *room_keyed_get(const struct room *room, const char *key);
/* Drops entries not updated within the store's TTL; returns how many. */
size_t room_keyed_expire(struct room *room, uint64_t now_ms);
/* Entries dropped by keep_last_max or keep_last_ttl since start. */
uint64_t room_registry_keyed_dropped(const struct room_registry *r);

/* A joiner's snapshot of the keyed store: a cursor that walks it oldest seq first. An
 * entry updated before the cursor reaches it moves to the end and is sent once, with its
 * newest value; one updated after it was sent is sent again (it is a new message); an
 * entry dropped is skipped. So the member sees every key once and seqs only growing, and
 * when the cursor reaches the end it is live. Returns false when there is nothing to send. */
bool room_snapshot_start(struct sub *s);
/* Points a live member's cursor at the store's newest entry (it was just updated), so that
 * entry and every one updated after it are sent from the store as the client reads: what a
 * slow member would otherwise hold as one conflated message per key. True when the cursor
 * is active (already was, or now); false when the store is empty or absent. */
bool room_snapshot_resume(struct sub *s);
/* The next message of the snapshot (borrowed), advancing the cursor; NULL when done. */
struct tb_msg *room_snapshot_take(struct sub *s);
static inline bool room_snapshot_active(const struct sub *s) { return s->snap != NULL; }
/* Abandons the cursor (the member leaves); harmless without one. */
void room_snapshot_stop(struct sub *s);

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

/* Can a client that has seen the room up to seq 'from' catch up from history? */
enum room_since {
    ROOM_SINCE_OK,           /* span holds every message after 'from' (count may be 0) */
    ROOM_SINCE_AHEAD,        /* 'from' is beyond the room's seq (another epoch?) */
    ROOM_SINCE_GAP,          /* history no longer holds all of them */
    ROOM_SINCE_EXPIRED,      /* it does, but the oldest needed is past history_ttl */
};
struct room_span {
    size_t first, count;     /* entries of the history ring, oldest first */
    size_t bytes;            /* their payload bytes */
};
enum room_since room_history_since(const struct room *room, uint64_t from, uint64_t now_ms,
                                   struct room_span *span);
/* Entry k (0 = oldest) of a span; borrowed. */
struct tb_msg *room_span_msg(const struct room *room, const struct room_span *span, size_t k);

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
