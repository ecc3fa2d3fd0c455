/* fanout: envelopes, room delivery, shaped delivery, control frames and join state
 * (see fanout.h). Service thread only. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "hash.h"
#include "log.h"
#include "sbuf.h"
#include "shape.h"

struct fanout {
    struct room_registry *rooms;
    struct tb_stats *st;
    struct sbuf scratch;            /* envelope and control frame building */
    struct sbuf rooms_json;         /* the current route's rooms, a JSON array (or empty) */
    struct room *msg_rooms[CFG_MAX_ROOMS];  /* the current route's rooms that exist */
    size_t n_msg_rooms;
    bool once;                      /* server.delivery: once */
    bool dedup;                     /* the current message may reach a connection twice */
    uint64_t msg_id;                /* the current MQTT message */
    uint64_t type_hash;             /* the current route's type */
    size_t max_rooms;
    size_t max_client_rooms;
    struct lws_context *ctx;        /* max_rate timers */
    bool (*watching)(void *ud);
    void *watching_ud;
    void (*join_state)(void *ud, struct conn *c, struct sub *s);
    void *join_state_ud;
    bool (*may_join)(void *ud, const struct conn *c, const char *room);
    void *may_join_ud;
};

/* A connection's max_rate timer: sends messages that waited for their slot. */
struct conn_rate {
    struct conn *c;
    struct fanout *f;
    lws_sorted_usec_list_t sul;
    uint64_t due_ms;                /* 0 = not armed */
};

struct fanout *fanout_new(struct room_registry *rooms, struct tb_stats *st)
{
    struct fanout *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rooms = rooms;
    f->st = st;
    f->max_rooms = SIZE_MAX;
    f->max_client_rooms = SIZE_MAX;
    sbuf_init(&f->scratch);
    sbuf_init(&f->rooms_json);
    f->once = true;
    return f;
}

void fanout_free(struct fanout *f)
{
    if (!f)
        return;
    sbuf_free(&f->scratch);
    sbuf_free(&f->rooms_json);
    free(f);
}

void fanout_set_max_rooms(struct fanout *f, size_t max_rooms) { f->max_rooms = max_rooms; }
void fanout_set_max_client_rooms(struct fanout *f, size_t n) { f->max_client_rooms = n; }
void fanout_set_delivery_once(struct fanout *f, bool once) { f->once = once; }
struct tb_stats *fanout_stats(const struct fanout *f) { return f->st; }
void fanout_set_timer_context(struct fanout *f, struct lws_context *ctx) { f->ctx = ctx; }
struct room_registry *fanout_rooms(const struct fanout *f) { return f->rooms; }

void fanout_watch_new_rooms(struct fanout *f, bool (*watching)(void *ud), void *ud)
{
    f->watching = watching;
    f->watching_ud = ud;
}

void fanout_on_join_state(struct fanout *f, void (*fn)(void *ud, struct conn *c, struct sub *s), void *ud)
{
    f->join_state = fn;
    f->join_state_ud = ud;
}

void fanout_set_authorizer(struct fanout *f,
                          bool (*may_join)(void *ud, const struct conn *c, const char *room), void *ud)
{
    f->may_join = may_join;
    f->may_join_ud = ud;
}

bool fanout_may_join(const struct fanout *f, const struct conn *c, const char *room)
{
    return !f->may_join || f->may_join(f->may_join_ud, c, room);
}

/* ---- rooms ------------------------------------------------------------------------- */

/* Rooms clients may create: max_client_rooms, and never more than half of max_rooms,
 * so the other half stays for routed rooms whatever the two keys say. */
static size_t client_room_cap(const struct fanout *f)
{
    size_t half = f->max_rooms == SIZE_MAX ? SIZE_MAX : f->max_rooms / 2;
    return f->max_client_rooms < half ? f->max_client_rooms : half;
}

static struct room *room_for(struct fanout *f, const char *name, bool by_client)
{
    struct room *room = room_find(f->rooms, name);
    if (room)
        return room;
    if (room_registry_count(f->rooms) >= f->max_rooms) {
        /* A publisher inventing topics must not grow memory without bound. */
        f->st->rooms_refused++;
        if (log_ratelimit_allow("max-rooms", 60000))
            LOG_WARN("bridge", "room limit reached (server.max_rooms = %zu): room '%s' not created",
                     f->max_rooms, name);
        return NULL;
    }
    if (by_client && room_registry_client_count(f->rooms) >= client_room_cap(f)) {
        /* Clients inventing names must not take the rooms routed telemetry needs. */
        f->st->client_rooms_refused++;
        if (log_ratelimit_allow("max-client-rooms", 60000))
            LOG_WARN("bridge", "client room limit reached (%zu: server.max_client_rooms, at most half "
                     "of server.max_rooms): room '%s' not created for a client", client_room_cap(f), name);
        return NULL;
    }
    return room_get_for(f->rooms, name, by_client);   /* the registry tells its listener (patterns) */
}

struct room *fanout_room(struct fanout *f, const char *name)
{
    return room_for(f, name, false);
}

struct sub *fanout_join(struct fanout *f, struct conn *c, const char *name)
{
    struct room *room = room_for(f, name, true);
    if (!room)
        return NULL;
    /* already in (also when a new room matched one of c's patterns just now) */
    struct sub *s = room_sub_of(room, c, c->subs);
    return s ? s : conn_subscribe(c, room);
}

/* ---- routed messages ---------------------------------------------------------------- */

/* {"type":T,"room":R[,"rooms":[..]],"topic":P,"seq":N,"ts":MS,"data":D}; "rooms" (the
 * route's rooms, delivery: once) only when with_rooms. */
static struct tb_msg *build_envelope(struct fanout *f, const char *type, const char *room,
                                     const char *topic, uint64_t seq, uint64_t ts, const char *data,
                                     size_t data_len, bool with_rooms)
{
    struct sbuf *b = &f->scratch;
    sbuf_reset(b);
    sbuf_puts(b, "{\"type\":");
    sbuf_json_string(b, type, strlen(type));
    sbuf_puts(b, ",\"room\":");
    sbuf_json_string(b, room, strlen(room));
    if (with_rooms && f->rooms_json.len) {
        sbuf_puts(b, ",\"rooms\":");
        sbuf_append(b, f->rooms_json.data, f->rooms_json.len);
    }
    sbuf_puts(b, ",\"topic\":");
    sbuf_json_string(b, topic, strlen(topic));
    sbuf_puts(b, ",\"seq\":");
    sbuf_u64(b, seq);
    sbuf_puts(b, ",\"ts\":");
    sbuf_u64(b, ts);
    sbuf_puts(b, ",\"data\":");
    sbuf_append(b, data, data_len);
    sbuf_puts(b, "}");
    if (sbuf_failed(b))
        return NULL;
    struct tb_msg *m = msg_new(b->data, b->len);
    if (m)
        m->key = msg_topic_key(topic);
    return m;
}

static void on_rate_timer(lws_sorted_usec_list_t *sul);
static void deliver_one(struct fanout *f, const char *room_name, const struct cfg_route *route,
                        const char *key, const char *topic, const char *data, size_t data_len);

static struct conn_rate *rate_of(struct fanout *f, struct conn *c)
{
    if (!c->rate && (c->rate = calloc(1, sizeof *c->rate))) {
        c->rate->c = c;
        c->rate->f = f;
    }
    return c->rate;
}

static void arm_timer(struct conn_rate *r, uint64_t due, uint64_t now)
{
    if (!r->f->ctx || (r->due_ms && r->due_ms <= due))
        return;
    r->due_ms = due;
    lws_sul_schedule(r->f->ctx, 0, &r->sul, on_rate_timer,
                     (lws_usec_t)(due > now ? due - now : 0) * LWS_US_PER_MS);
}

/* Sends every waiting message whose slot has come; re-arms for the next one. */
static void flush_due(struct conn_rate *r, uint64_t now)
{
    uint64_t next = 0;
    for (struct sub *s = r->c->subs; s; s = s->conn_next) {
        if (!s->held)
            continue;
        if (s->next_ms <= now) {
            conn_enqueue(s->conn, s->held, s, true);
            msg_unref(s->held);
            s->held = NULL;
            uint64_t iv = s->shape ? s->shape->interval_ms : 0;
            /* keep the cadence (a late timer does not stretch it) without bursting */
            s->next_ms = s->next_ms + iv > now ? s->next_ms + iv : now + iv;
        } else if (!next || s->next_ms < next) {
            next = s->next_ms;
        }
    }
    if (next)
        arm_timer(r, next, now);
}

static void on_rate_timer(lws_sorted_usec_list_t *sul)
{
    struct conn_rate *r = lws_container_of(sul, struct conn_rate, sul);
    r->due_ms = 0;
    flush_due(r, tb_now_ms());
}

/* A shaped subscription: its projection (shared per field list) and its rate slot. The
 * first message goes out at once, later ones wait for the next slot; a newer message
 * replaces the waiting one, so what is sent is always the newest. */
static void deliver_shaped(struct fanout *f, struct sub *s, struct tb_msg *m, bool conflate,
                           struct shape_cache *sc, uint64_t now_ms)
{
    (void)m;
    struct tb_msg *out = shape_cache_get(sc, s->shape);
    if (!out)
        return;
    uint64_t iv = s->shape->interval_ms;
    struct conn_rate *r = iv ? rate_of(f, s->conn) : NULL;
    if (!iv || !r) {
        conn_enqueue(s->conn, out, s, conflate);
    } else if (!s->held && now_ms >= s->next_ms) {
        conn_enqueue(s->conn, out, s, true);
        s->next_ms = now_ms + iv;
    } else {
        msg_unref(s->held);   /* superseded: only the newest waits */
        s->held = msg_ref(out);
        arm_timer(r, s->next_ms, now_ms);
    }
    msg_unref(out);
}

void fanout_deliver(struct fanout *f, const char *room_name, const struct cfg_route *route,
                    const char *topic, const char *data, size_t data_len)
{
    fanout_deliver_keyed(f, room_name, route, NULL, topic, data, data_len);
}

void fanout_deliver_keyed(struct fanout *f, const char *room_name, const struct cfg_route *route,
                          const char *key, const char *topic, const char *data, size_t data_len)
{
    fanout_message_begin(f, 1);
    fanout_deliver_rooms(f, route, key, &room_name, 1, topic, data, data_len);
}

void fanout_message_begin(struct fanout *f, size_t n_deliveries)
{
    f->msg_id++;
    f->dedup = f->once && n_deliveries > 1;
}

/* delivery: once. Has c had the current message under the current type? Marks it as
 * had: O(1), a stamp on the connection, no per-delivery allocation or lookup. */
static bool had_already(const struct fanout *f, struct conn *c)
{
    if (c->got_msg != f->msg_id) {
        c->got_msg = f->msg_id;
        c->n_got_types = 0;
    }
    for (uint32_t i = 0; i < c->n_got_types; i++)
        if (c->got_types[i] == f->type_hash)
            return true;
    if (c->n_got_types < sizeof c->got_types / sizeof c->got_types[0])
        c->got_types[c->n_got_types++] = f->type_hash;
    return false;
}

void fanout_deliver_rooms(struct fanout *f, const struct cfg_route *route, const char *key,
                          const char *const *rooms, size_t n, const char *topic,
                          const char *data, size_t data_len)
{
    sbuf_reset(&f->rooms_json);
    if (f->dedup) {
        f->type_hash = tb_hash_str(route->type);
        if (n > 1) {
            sbuf_puts(&f->rooms_json, "[");
            for (size_t i = 0; i < n; i++) {
                sbuf_puts(&f->rooms_json, i ? "," : "");
                sbuf_json_string(&f->rooms_json, rooms[i], strlen(rooms[i]));
            }
            sbuf_puts(&f->rooms_json, "]");
            if (sbuf_failed(&f->rooms_json))
                sbuf_reset(&f->rooms_json);
        }
    }
    f->n_msg_rooms = 0;
    for (size_t i = 0; f->rooms_json.len && i < n && i < CFG_MAX_ROOMS; i++) {
        struct room *r = room_find(f->rooms, rooms[i]);
        if (r)
            f->msg_rooms[f->n_msg_rooms++] = r;
    }
    for (size_t i = 0; i < n; i++)
        deliver_one(f, rooms[i], route, key, topic, data, data_len);
}

/* delivery: once. Is c, which gets the current message through 'room', also a member of
 * another of its rooms (then its one frame must name them all)? A connection with a single
 * subscription, the common case, costs one pointer test. */
static bool in_another_room(const struct fanout *f, const struct conn *c, const struct room *room)
{
    if (!f->n_msg_rooms || !c->subs || !c->subs->conn_next)
        return false;
    for (const struct sub *x = c->subs; x; x = x->conn_next)
        for (size_t i = 0; i < f->n_msg_rooms; i++)
            if (x->room == f->msg_rooms[i] && x->room != room)
                return true;
    return false;
}

static void deliver_one(struct fanout *f, const char *room_name, const struct cfg_route *route,
                        const char *key, const char *topic, const char *data, size_t data_len)
{
    bool keyed = route->keep_last && route->keep_by != CFG_KEEP_TYPE;
    struct room_keep keep = {.last = route->keep_last && !keyed, .keyed = keyed,
                             .keyed_max = route->keep_last_max, .keyed_ttl_ms = route->keep_last_ttl_ms,
                             .history = route->history, .history_ttl_ms = route->history_ttl_ms};
    bool remember = keep.last || keep.history || (keyed && key);
    struct room *room = room_find(f->rooms, room_name);
    if (!room) {
        if (!remember && !(f->watching && f->watching(f->watching_ud)))
            return; /* nobody listens and nothing to remember: no work at all */
        if (!(room = fanout_room(f, room_name)))
            return;
        if (!room_has_members(room) && !remember) {
            room_release_if_idle(f->rooms, room);
            return;
        }
    } else if (!room_has_members(room) && !remember) {
        return;
    }
    room_mark_routed(room);   /* routed data makes a client-created room a routed one */
    uint64_t seq = ++room->seq, ts = tb_wall_ms();
    /* The frame names its room only; a member also in another of the message's rooms gets
     * it once, as 'multi' (built when first needed), which lists them all. */
    struct tb_msg *m = build_envelope(f, route->type, room_name, topic, seq, ts, data, data_len, false);
    struct tb_msg *multi = NULL;
    if (!m) {
        LOG_ERROR("bridge", "out of memory building a message for room %s", room_name);
        return;
    }
    uint64_t now = tb_now_ms();
    bool in_store = room_remember(room, &keep, route->type, key, m, seq, now);
    f->st->routed++;
    bool conflate = route->slow_client == CFG_SLOW_CONFLATE;
    /* Shaped subscriptions share one projection per field list (shape_cache). */
    struct shape_cache sc;
    shape_cache_init(&sc, m);
    for (struct sub *s = room_first_member(room), *next; s; s = next) {
        next = room_next_member(s); /* a disconnect policy may not unlink, but stay safe */
        if (f->dedup && had_already(f, s->conn))
            continue;   /* delivery: once; the frame it got names this room too */
        if (in_store && room_snapshot_active(s))
            continue;   /* its snapshot cursor sends it, in seq order */
        if (in_store && conflate && !s->shape && conn_would_wait(s->conn, s, m->len) &&
            room_snapshot_resume(s)) {
            /* A member that is behind: the store already keeps every key's newest value,
             * so it is sent from there as the client reads (not held per key for it). */
            s->conn->n_snapping++;
            continue;
        }
        if (s->shape) {
            deliver_shaped(f, s, m, conflate, &sc, now);
        } else if (f->dedup && in_another_room(f, s->conn, room) &&
                   (multi || (multi = build_envelope(f, route->type, room_name, topic, seq, ts, data,
                                                     data_len, true)))) {
            conn_enqueue(s->conn, multi, s, conflate);
        } else {
            conn_enqueue(s->conn, m, s, conflate);
        }
    }
    shape_cache_clear(&sc);
    msg_unref(multi);
    msg_unref(m);
}

void fanout_send_room_state(struct fanout *f, struct conn *c, struct sub *s)
{
    struct room *r = s->room;
    for (size_t i = 0; i < r->n_lasts; i++) {
        struct tb_msg *out = shape_project(s->shape, r->lasts[i].msg);
        if (!out)
            continue;
        conn_enqueue(c, out, s, true);
        msg_unref(out);
    }
    if (!r->n_lasts && r->last)
        conn_enqueue(c, r->last, s, true);
    if (r->n_lasts && s->shape && s->shape->interval_ms)
        s->next_ms = tb_now_ms() + s->shape->interval_ms;
    if (room_snapshot_start(s)) {
        c->n_snapping++;
        conn_pump_snapshots(c);
    }
    if (f->join_state)
        f->join_state(f->join_state_ud, c, s);
}

void fanout_replay(struct fanout *f, struct sub *s, const struct room_span *span)
{
    (void)f;
    for (size_t k = 0; k < span->count; k++) {
        struct tb_msg *out = shape_project(s->shape, room_span_msg(s->room, span, k));
        if (out) {
            conn_enqueue(s->conn, out, s, false);
            msg_unref(out);
        }
    }
    if (s->shape && s->shape->interval_ms)
        s->next_ms = tb_now_ms() + s->shape->interval_ms;
}

void fanout_set_shape(struct sub *s, struct sub_shape *sh)
{
    if (s->shape == sh)
        return;
    shape_unref(s->shape);
    s->shape = shape_ref(sh);
    if (!sh || !sh->interval_ms) {
        /* No rate limit any more: a waiting message goes out now. */
        if (s->held) {
            conn_enqueue(s->conn, s->held, s, true);
            msg_unref(s->held);
            s->held = NULL;
        }
        s->next_ms = 0;
    }
}

/* ---- control frames ----------------------------------------------------------------- */

/* {"type":T,"ts":MS[,<fields of top>][,"data":D]} */
struct tb_msg *fanout_build_control(struct fanout *f, const char *type, const cJSON *top,
                                    const cJSON *data)
{
    struct sbuf *b = &f->scratch;
    sbuf_reset(b);
    sbuf_puts(b, "{\"type\":");
    sbuf_json_string(b, type, strlen(type));
    sbuf_puts(b, ",\"ts\":");
    sbuf_u64(b, tb_wall_ms());
    for (const cJSON *it = top ? top->child : NULL; it; it = it->next) {
        char *text = cJSON_PrintUnformatted(it);
        if (!text)
            return NULL;
        sbuf_puts(b, ",");
        sbuf_json_string(b, it->string, strlen(it->string));
        sbuf_puts(b, ":");
        sbuf_puts(b, text);
        free(text);
    }
    if (data) {
        char *text = cJSON_PrintUnformatted(data);
        if (!text)
            return NULL;
        sbuf_puts(b, ",\"data\":");
        sbuf_puts(b, text);
        free(text);
    }
    sbuf_puts(b, "}");
    return sbuf_failed(b) ? NULL : msg_new(b->data, b->len);
}

void fanout_send_frame(struct fanout *f, struct conn *c, const char *type, const cJSON *top,
                       const cJSON *data)
{
    struct tb_msg *m = fanout_build_control(f, type, top, data);
    if (!m)
        return;
    conn_enqueue(c, m, NULL, false);
    msg_unref(m);
}

void fanout_conn_close(struct fanout *f, struct conn *c)
{
    (void)f;
    if (!c->rate)
        return;
    if (c->rate->due_ms)
        lws_sul_cancel(&c->rate->sul);
    free(c->rate);
    c->rate = NULL;
}
