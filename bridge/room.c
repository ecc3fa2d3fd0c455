/* room: registry (chained hash table), membership lists, last value and history ring.
 * Service thread only. */
#include "room.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct room_registry {
    struct room **buckets;
    size_t nbuckets, count;
    void (*on_create)(void *ud, struct room *room);
    void *on_create_ud;
    size_t n_client;                /* rooms with by_client set */
    size_t stored;                  /* sum of room->bytes */
    size_t max_room_bytes, max_total_bytes;   /* 0 = no bound */
    uint64_t trimmed;
    uint64_t keyed_dropped;         /* keep_last_max / keep_last_ttl evictions */
};

/* Every change of what a room stores goes through here: the room's and the registry's
 * byte counts stay equal to the sum of the stored payloads. */
static void stored_add(struct room *room, size_t n)
{
    room->bytes += n;
    if (room->reg)
        room->reg->stored += n;
}

static void stored_sub(struct room *room, size_t n)
{
    room->bytes -= n;
    if (room->reg)
        room->reg->stored -= n;
}

static uint64_t hash_name(const char *s) { return tb_hash_str(s); }

struct room_registry *room_registry_new(void)
{
    struct room_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nbuckets = 256;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    return r;
}

static void keyed_free(struct room *room);

static void room_free(struct room *room)
{
    if (room->reg) {
        room->reg->stored -= room->bytes;
        room->reg->n_client -= room->by_client;
    }
    msg_unref(room->last);
    for (size_t i = 0; i < room->n_lasts; i++) {
        free(room->lasts[i].type);
        msg_unref(room->lasts[i].msg);
    }
    free(room->lasts);
    keyed_free(room);
    for (size_t i = 0; i < room->hist_len; i++)
        msg_unref(room->hist[(room->hist_head + i) % room->hist_cap]);
    free(room->hist);
    free(room->hist_seq);
    free(room->hist_at);
    free(room->name);
    free(room);
}

void room_registry_free(struct room_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct room *room = r->buckets[i];
        while (room) {
            struct room *next = room->hash_next;
            room_free(room);
            room = next;
        }
    }
    free(r->buckets);
    free(r);
}

size_t room_registry_count(const struct room_registry *r) { return r->count; }
size_t room_registry_client_count(const struct room_registry *r) { return r->n_client; }
size_t room_registry_stored_bytes(const struct room_registry *r) { return r->stored; }
uint64_t room_registry_trimmed(const struct room_registry *r) { return r->trimmed; }
uint64_t room_registry_keyed_dropped(const struct room_registry *r) { return r->keyed_dropped; }

void room_registry_set_byte_limits(struct room_registry *r, size_t per_room, size_t total)
{
    r->max_room_bytes = per_room;
    r->max_total_bytes = total;
}

void room_mark_routed(struct room *room)
{
    if (!room->by_client)
        return;
    room->by_client = false;
    if (room->reg)
        room->reg->n_client--;
}

void room_registry_on_create(struct room_registry *r, void (*fn)(void *ud, struct room *room), void *ud)
{
    r->on_create = fn;
    r->on_create_ud = ud;
}

struct room *room_find(struct room_registry *r, const char *name)
{
    struct room *room = r->buckets[hash_name(name) & (r->nbuckets - 1)];
    while (room && strcmp(room->name, name) != 0)
        room = room->hash_next;
    return room;
}

static void grow(struct room_registry *r)
{
    size_t n = r->nbuckets * 2;
    struct room **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the old table: slower, still correct */
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct room *room = r->buckets[i];
        while (room) {
            struct room *next = room->hash_next;
            size_t k = hash_name(room->name) & (n - 1);
            room->hash_next = b[k];
            b[k] = room;
            room = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

struct room *room_get(struct room_registry *r, const char *name)
{
    return room_get_for(r, name, false);
}

struct room *room_get_for(struct room_registry *r, const char *name, bool by_client)
{
    struct room *room = room_find(r, name);
    if (room)
        return room;
    room = calloc(1, sizeof *room);
    if (!room || !(room->name = strdup(name))) {
        free(room);
        return NULL;
    }
    room->reg = r;
    room->by_client = by_client;
    r->n_client += by_client;
    if (r->count >= r->nbuckets)
        grow(r);
    size_t k = hash_name(name) & (r->nbuckets - 1);
    room->hash_next = r->buckets[k];
    r->buckets[k] = room;
    r->count++;
    if (r->on_create)
        r->on_create(r->on_create_ud, room);
    return room;
}

void room_release_if_idle(struct room_registry *r, struct room *room)
{
    if (room_has_members(room) || room_has_state(room))
        return;
    struct room **pp = &r->buckets[hash_name(room->name) & (r->nbuckets - 1)];
    while (*pp && *pp != room)
        pp = &(*pp)->hash_next;
    if (*pp) {
        *pp = room->hash_next;
        r->count--;
        room_free(room);
    }
}

void room_set_last(struct room *room, struct tb_msg *m, uint64_t now_ms)
{
    msg_ref(m);
    msg_unref(room->last);
    room->last = m;
    room->last_at_ms = now_ms;
}

int room_set_last_typed(struct room *room, const char *type, struct tb_msg *m, uint64_t seq,
                        uint64_t now_ms)
{
    room_set_last(room, m, now_ms);
    size_t i = 0;
    while (i < room->n_lasts && strcmp(room->lasts[i].type, type) != 0)
        i++;
    struct room_last cur;
    if (i < room->n_lasts) {
        cur = room->lasts[i];
        stored_sub(room, cur.msg->len);
        msg_unref(cur.msg);
        memmove(&room->lasts[i], &room->lasts[i + 1], (room->n_lasts - i - 1) * sizeof cur);
        room->n_lasts--;
    } else {
        struct room_last *grown = realloc(room->lasts, (room->n_lasts + 1) * sizeof *grown);
        if (!grown)
            return -1;
        room->lasts = grown;
        if (!(cur.type = strdup(type)))
            return -1;
    }
    /* The newest goes to the end, so the array stays ordered by seq. */
    cur.msg = msg_ref(m);
    stored_add(room, m->len);
    cur.seq = seq;
    room->lasts[room->n_lasts++] = cur;
    return 0;
}

int room_set_history_cap(struct room *room, size_t cap)
{
    if (cap == room->hist_cap)
        return 0;
    struct tb_msg **h = NULL;
    uint64_t *hs = NULL, *ha = NULL;
    if (cap) {
        h = calloc(cap, sizeof *h);
        hs = calloc(cap, sizeof *hs);
        ha = calloc(cap, sizeof *ha);
        if (!h || !hs || !ha) {
            free(h);
            free(hs);
            free(ha);
            return -1;
        }
    }
    size_t keep = room->hist_len < cap ? room->hist_len : cap;
    size_t drop = room->hist_len - keep;
    for (size_t i = 0; i < room->hist_len; i++) {
        size_t k = (room->hist_head + i) % room->hist_cap;
        if (i < drop) {
            stored_sub(room, room->hist[k]->len);
            msg_unref(room->hist[k]);
        } else {
            h[i - drop] = room->hist[k];
            hs[i - drop] = room->hist_seq[k];
            ha[i - drop] = room->hist_at[k];
        }
    }
    free(room->hist);
    free(room->hist_seq);
    free(room->hist_at);
    room->hist = h;
    room->hist_seq = hs;
    room->hist_at = ha;
    room->hist_cap = cap;
    room->hist_head = 0;
    room->hist_len = keep;
    return 0;
}

static void history_drop_oldest(struct room *room)
{
    stored_sub(room, room->hist[room->hist_head]->len);
    msg_unref(room->hist[room->hist_head]);
    room->hist[room->hist_head] = NULL;
    room->hist_head = (room->hist_head + 1) % room->hist_cap;
    room->hist_len--;
}

size_t room_history_expire(struct room *room, uint64_t now_ms)
{
    size_t n = 0;
    while (room->hist_ttl_ms && room->hist_len &&
           room->hist_at[room->hist_head] + room->hist_ttl_ms < now_ms) {
        history_drop_oldest(room);
        n++;
    }
    return n;
}

void room_history_push(struct room *room, struct tb_msg *m, uint64_t seq, uint64_t now_ms)
{
    if (!room->hist_cap)
        return;
    size_t k;
    if (room->hist_len == room->hist_cap) {
        k = room->hist_head;
        stored_sub(room, room->hist[k]->len);
        msg_unref(room->hist[k]);
        room->hist_head = (room->hist_head + 1) % room->hist_cap;
    } else {
        k = (room->hist_head + room->hist_len) % room->hist_cap;
        room->hist_len++;
    }
    room->hist[k] = msg_ref(m);
    stored_add(room, m->len);
    room->hist_seq[k] = seq;
    room->hist_at[k] = now_ms;
}

static bool over_limits(const struct room *room)
{
    const struct room_registry *r = room->reg;
    return r && ((r->max_room_bytes && room->bytes > r->max_room_bytes) ||
                 (r->max_total_bytes && r->stored > r->max_total_bytes));
}

/* The byte bounds: the room's oldest history goes first (see room.h). */
static void trim_to_limits(struct room *room)
{
    while (room->hist_len && over_limits(room)) {
        history_drop_oldest(room);
        room->reg->trimmed++;
    }
}

bool room_remember(struct room *room, const struct room_keep *keep, const char *type,
                   const char *key, struct tb_msg *m, uint64_t seq, uint64_t now_ms)
{
    bool keyed = false;
    if (keep->keyed && key)
        keyed = room_keyed_set(room, key, m, seq, now_ms, keep->keyed_max, keep->keyed_ttl_ms) == 0;
    else if (keep->last)
        room_set_last_typed(room, type, m, seq, now_ms);
    if (keep->history) {
        if (room->hist_cap < keep->history)
            room_set_history_cap(room, keep->history);
        room->hist_ttl_ms = keep->history_ttl_ms;
        room_history_push(room, m, seq, now_ms);
    }
    trim_to_limits(room);
    return keyed;
}

/* ---- keyed last values ---------------------------------------------------------------- */

static struct room_entry *entry_of(struct lws_dll2 *d)
{
    return d ? lws_container_of(d, struct room_entry, in_order) : NULL;
}

static struct room_entry **keyed_slot(const struct room_keyed *k, const char *key)
{
    return &k->index[tb_hash_str(key) & (k->buckets - 1)];
}

static struct room_entry *keyed_find(const struct room_keyed *k, const char *key)
{
    if (!k->buckets)
        return NULL;
    struct room_entry *e = *keyed_slot(k, key);
    while (e && strcmp(e->key, key) != 0)
        e = e->hnext;
    return e;
}

static bool keyed_grow(struct room_keyed *k)
{
    size_t n = k->buckets ? k->buckets * 2 : 16;
    struct room_entry **idx = calloc(n, sizeof *idx);
    if (!idx)
        return false;
    free(k->index);
    k->index = idx;
    k->buckets = n;
    for (struct room_entry *e = entry_of(k->order.head); e; e = entry_of(e->in_order.next)) {
        struct room_entry **slot = keyed_slot(k, e->key);
        e->hnext = *slot;
        *slot = e;
    }
    return true;
}

/* A subscription's snapshot cursor, allocated while a snapshot is under way (most
 * subscriptions never have one: they stay small). It sits on room_keyed.snaps. */
struct sub_snap {
    struct sub *sub;
    struct room_entry *next;             /* the next entry to send, never NULL */
    struct lws_dll2 in_snaps;
};

static void snap_end(struct sub *s)
{
    lws_dll2_remove(&s->snap->in_snaps);
    free(s->snap);
    s->snap = NULL;
}

/* Cursors standing on e move past it (e is about to move or go). A cursor that falls off
 * the end is at 'then' (e itself when it moves to the end, NULL when it goes). */
static void cursors_skip(struct room_keyed *k, struct room_entry *e, struct room_entry *then)
{
    struct lws_dll2 *d, *next;
    for (d = k->snaps.head; d; d = next) {
        next = d->next;
        struct sub_snap *sn = lws_container_of(d, struct sub_snap, in_snaps);
        if (sn->next != e)
            continue;
        sn->next = entry_of(e->in_order.next);
        if (!sn->next)
            sn->next = then;
        if (!sn->next)
            snap_end(sn->sub);
    }
}

/* Starts s's cursor at e (not NULL); false when out of memory. */
static bool snap_begin(struct room_keyed *k, struct sub *s, struct room_entry *e)
{
    struct sub_snap *sn = calloc(1, sizeof *sn);
    if (!sn)
        return false;
    sn->sub = s;
    sn->next = e;
    s->snap = sn;
    lws_dll2_add_tail(&sn->in_snaps, &k->snaps);
    return true;
}

static void entry_drop(struct room *room, struct room_entry *e)
{
    struct room_keyed *k = room->keyed;
    cursors_skip(k, e, NULL);
    struct room_entry **pp = keyed_slot(k, e->key);
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lws_dll2_remove(&e->in_order);
    stored_sub(room, e->msg->len);
    msg_unref(e->msg);
    free(e->key);
    free(e);
}

static void keyed_free(struct room *room)
{
    struct room_keyed *k = room->keyed;
    if (!k)
        return;
    while (k->order.head)
        entry_drop(room, entry_of(k->order.head));
    free(k->index);
    free(k);
    room->keyed = NULL;
}

static struct room_entry *entry_new(struct room_keyed *k, const char *key)
{
    if (k->order.count >= k->buckets && !keyed_grow(k))
        return NULL;
    struct room_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return NULL;
    }
    struct room_entry **slot = keyed_slot(k, key);
    e->hnext = *slot;
    *slot = e;
    return e;
}

int room_keyed_set(struct room *room, const char *key, struct tb_msg *m, uint64_t seq,
                   uint64_t now_ms, size_t max, uint64_t ttl_ms)
{
    if (!room->keyed && !(room->keyed = calloc(1, sizeof *room->keyed)))
        return -1;
    struct room_keyed *k = room->keyed;
    k->max = max;
    k->ttl_ms = ttl_ms;
    struct room_entry *e = keyed_find(k, key);
    if (e) {
        cursors_skip(k, e, e);
        lws_dll2_remove(&e->in_order);
        stored_sub(room, e->msg->len);
        msg_unref(e->msg);
    } else if (!(e = entry_new(k, key))) {
        return -1;
    }
    e->msg = msg_ref(m);
    e->seq = seq;
    e->at_ms = now_ms;
    stored_add(room, m->len);
    lws_dll2_add_tail(&e->in_order, &k->order);
    while (max && k->order.count > max) {
        entry_drop(room, entry_of(k->order.head));
        if (room->reg)
            room->reg->keyed_dropped++;
    }
    return 0;
}

struct tb_msg *room_keyed_get(const struct room *room, const char *key)
{
    struct room_entry *e = room->keyed ? keyed_find(room->keyed, key) : NULL;
    return e ? e->msg : NULL;
}

size_t room_keyed_expire(struct room *room, uint64_t now_ms)
{
    struct room_keyed *k = room->keyed;
    size_t n = 0;
    if (!k || !k->ttl_ms)
        return 0;
    /* The order is by seq, and seqs are given in time order: the oldest entry is first. */
    for (struct room_entry *e; (e = entry_of(k->order.head)) && e->at_ms + k->ttl_ms < now_ms; n++)
        entry_drop(room, e);
    if (room->reg)
        room->reg->keyed_dropped += n;
    return n;
}

bool room_snapshot_start(struct sub *s)
{
    struct room_keyed *k = s->room->keyed;
    room_snapshot_stop(s);
    if (!k || !k->order.head)
        return false;
    return snap_begin(k, s, entry_of(k->order.head));
}

bool room_snapshot_resume(struct sub *s)
{
    struct room_keyed *k = s->room->keyed;
    if (s->snap)
        return true;
    if (!k || !k->order.tail)
        return false;
    return snap_begin(k, s, entry_of(k->order.tail));
}

struct tb_msg *room_snapshot_take(struct sub *s)
{
    if (!s->snap)
        return NULL;
    struct room_entry *e = s->snap->next;
    s->snap->next = entry_of(e->in_order.next);
    if (!s->snap->next)
        snap_end(s);
    return e->msg;
}

void room_snapshot_stop(struct sub *s)
{
    if (s->snap)
        snap_end(s);
}

static size_t ring_index(const struct room *room, size_t k)
{
    return (room->hist_head + k) % room->hist_cap;
}

enum room_since room_history_since(const struct room *room, uint64_t from, uint64_t now_ms,
                                   struct room_span *span)
{
    memset(span, 0, sizeof *span);
    if (from > room->seq)
        return ROOM_SINCE_AHEAD;
    if (from == room->seq)
        return ROOM_SINCE_OK;
    uint64_t missed = room->seq - from;
    if (missed > room->hist_len)
        return ROOM_SINCE_GAP;
    size_t first = room->hist_len - (size_t)missed;
    size_t k0 = ring_index(room, first), kl = ring_index(room, room->hist_len - 1);
    /* seqs only grow: first == from+1 and last == seq means nothing is missing */
    if (room->hist_seq[k0] != from + 1 || room->hist_seq[kl] != room->seq)
        return ROOM_SINCE_GAP;
    if (room->hist_ttl_ms && room->hist_at[k0] + room->hist_ttl_ms < now_ms)
        return ROOM_SINCE_EXPIRED;
    span->first = first;
    span->count = (size_t)missed;
    for (size_t i = 0; i < span->count; i++)
        span->bytes += room->hist[ring_index(room, first + i)]->len;
    return ROOM_SINCE_OK;
}

struct tb_msg *room_span_msg(const struct room *room, const struct room_span *span, size_t k)
{
    return room->hist[ring_index(room, span->first + k)];
}

struct sub *room_join(struct room *room, struct conn *c)
{
    struct sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->room = room;
    lws_dll2_add_head(&s->in_room, &room->members);
    return s;
}

void room_leave(struct sub *s)
{
    room_snapshot_stop(s);
    lws_dll2_remove(&s->in_room);
}

struct sub *room_sub_of(struct room *room, const struct conn *c, struct sub *conn_subs)
{
    struct sub *a = conn_subs, *b = room_first_member(room);
    /* The sub, when it exists, is on both lists: the first list to end proves absence. */
    while (a && b) {
        if (a->room == room)
            return a;
        if (b->conn == c)
            return b;
        a = a->conn_next;
        b = room_next_member(b);
    }
    return NULL;
}

void room_foreach(struct room_registry *r, void (*fn)(struct room *, void *), void *ud)
{
    for (size_t i = 0; i < r->nbuckets; i++)
        for (struct room *room = r->buckets[i]; room; room = room->hash_next)
            fn(room, ud);
}
