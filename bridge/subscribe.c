/* subscribe: client subscriptions, patterns, resume and shaped delivery (see
 * subscribe.h). Service thread only.
 *
 * A subscribe request is handled in two steps so the reply comes first: plan()
 * validates and joins every room, deciding for each newly joined room whether it gets
 * its state, a replay of history or a resync; the "subscribed" reply goes out; then
 * execute() queues those frames. Nothing else runs in between, so the plan still
 * holds when it is executed. */
#include "subscribe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"
#include "protocol.h"

/* ---- pure helpers -------------------------------------------------------------------- */

bool subscribe_glob_match(const char *g, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*g == '*') {
            star = g++;
            resume = s;
        } else if (*g == *s) {
            g++;
            s++;
        } else if (star) {
            g = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*g == '*')
        g++;
    return !*g;
}

bool subscribe_room_name_valid(const char *room)
{
    size_t n = strlen(room);
    if (n == 0 || n > SUB_ROOM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)room[i] < 0x20 || room[i] == 0x7f)
            return false;
    return true;
}

static struct proto_conn *pconn(struct conn *c) { return c->ext; }

/* The connection's protocol state, allocated where it is first written (a pattern
 * subscription or a rate-limited delivery): most connections never need one, and idle
 * connections are what limits one process. NULL when out of memory. */
static struct proto_conn *pconn_get(struct conn *c)
{
    if (!c->ext) {
        struct proto_conn *pc = calloc(1, sizeof *pc);
        if (!pc)
            return NULL;
        pc->c = c;
        c->ext = pc;
    }
    return c->ext;
}

static const struct cfg_endpoint *endpoint_of(struct bridge *br, const struct conn *c)
{
    if (c->endpoint < 0 || (size_t)c->endpoint >= br->cfg->n_endpoints)
        return NULL;
    return &br->cfg->endpoints[c->endpoint];
}

static bool allowed(const struct cfg_endpoint *ep, const char *room)
{
    if (!ep->n_allow_subscribe)
        return true;
    for (size_t i = 0; i < ep->n_allow_subscribe; i++)
        if (subscribe_glob_match(ep->allow_subscribe[i], room))
            return true;
    return false;
}

/* Client subscriptions counted against max_rooms_per_connection. */
static size_t client_count(struct conn *c)
{
    size_t n = pconn(c) ? pconn(c)->n_patterns : 0;
    for (struct sub *s = c->subs; s; s = s->conn_next)
        n += (s->how & SUB_BY_CLIENT) != 0;
    return n;
}

static void set_shape(struct sub *s, struct sub_shape *sh)
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

/* ---- connection life cycle ----------------------------------------------------------- */

static void pattern_free(struct sub_pattern *p)
{
    free(p->glob);
    shape_unref(p->shape);
    free(p);
}

int subscribe_conn_open(struct bridge *br, struct conn *c)
{
    (void)br;
    c->ext = NULL; /* allocated on first use (pconn_get) */
    return 0;
}

static void pat_list_unlink(struct bridge *br, struct proto_conn *pc)
{
    struct protocol_state *ps = br->protocol;
    if (!pc->in_pat_list || !ps)
        return;
    if (pc->pat_prev)
        pc->pat_prev->pat_next = pc->pat_next;
    else
        ps->pattern_conns = pc->pat_next;
    if (pc->pat_next)
        pc->pat_next->pat_prev = pc->pat_prev;
    pc->pat_prev = pc->pat_next = NULL;
    pc->in_pat_list = false;
}

static void pat_list_link(struct bridge *br, struct proto_conn *pc)
{
    struct protocol_state *ps = protocol_state(br);
    if (pc->in_pat_list || !ps)
        return;
    pc->pat_next = ps->pattern_conns;
    if (pc->pat_next)
        pc->pat_next->pat_prev = pc;
    ps->pattern_conns = pc;
    pc->in_pat_list = true;
}

void subscribe_conn_close(struct bridge *br, struct conn *c)
{
    struct proto_conn *pc = pconn(c);
    if (!pc)
        return;
    if (pc->timer_due_ms)
        lws_sul_cancel(&pc->sul);
    pat_list_unlink(br, pc);
    while (pc->patterns) {
        struct sub_pattern *p = pc->patterns;
        pc->patterns = p->next;
        pattern_free(p);
    }
    free(pc);
    c->ext = NULL;
}

bool subscribe_have_patterns(struct bridge *br)
{
    struct protocol_state *ps = br->protocol;
    return ps && ps->pattern_conns;
}

/* ---- request options ----------------------------------------------------------------- */

static int bad(struct bridge *br, struct conn *c, const cJSON *id, const char *msg)
{
    protocol_send_error(br, c, id, TB_ERR_BAD_FIELD, msg);
    return -1;
}

static int parse_since(struct bridge *br, struct conn *c, const cJSON *id, const cJSON *since)
{
    if (!cJSON_IsObject(since))
        return bad(br, c, id, "\"since\" must be an object of room: seq");
    int n = 0;
    for (const cJSON *it = since->child; it; it = it->next, n++) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v > 9007199254740991.0 || v != floor(v))
            return bad(br, c, id, "\"since\" values must be non-negative integers (seq)");
        if (n >= SUB_MAX_ROOMS_PER_REQUEST)
            return bad(br, c, id, "\"since\" has too many rooms");
    }
    return 0;
}

int subscribe_parse_opts(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id,
                         struct sub_opts *o)
{
    memset(o, 0, sizeof *o);
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(req, "max_rate");
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(req, "fields");
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(req, "since");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(req, "epoch");
    double max_rate = 0;
    if (rate && !cJSON_IsNull(rate)) {
        if (!cJSON_IsNumber(rate) || !(rate->valuedouble >= 0) || rate->valuedouble > SHAPE_MAX_RATE)
            return bad(br, c, id, "\"max_rate\" must be a number from 0 (unlimited) to 1000");
        max_rate = rate->valuedouble;
    }
    const char *names[SHAPE_MAX_FIELDS];
    size_t n = 0;
    if (fields && !cJSON_IsNull(fields)) {
        if (!cJSON_IsArray(fields) || cJSON_GetArraySize(fields) > SHAPE_MAX_FIELDS)
            return bad(br, c, id, "\"fields\" must be an array of at most 32 field paths");
        for (const cJSON *f = fields->child; f; f = f->next) {
            if (!cJSON_IsString(f) || !shape_field_valid(f->valuestring))
                return bad(br, c, id, "\"fields\" items must be dotted field paths like \"engine_metrics.rpm\"");
            names[n++] = f->valuestring;
        }
    }
    if (epoch && !cJSON_IsNull(epoch) && !cJSON_IsString(epoch))
        return bad(br, c, id, "\"epoch\" must be the string from the welcome frame");
    if (since && !cJSON_IsNull(since)) {
        if (parse_since(br, c, id, since))
            return -1;
        o->since = since;
    }
    if (cJSON_IsString(epoch)) {
        char mine[24];
        snprintf(mine, sizeof mine, "%016llx", (unsigned long long)br->epoch);
        o->epoch_ok = strcmp(mine, epoch->valuestring) == 0;
    }
    if ((max_rate > 0 || n) && !(o->shape = shape_new(max_rate, names, n))) {
        protocol_send_error(br, c, id, TB_ERR_INTERNAL, "out of memory");
        return -1;
    }
    return 0;
}

void subscribe_opts_free(struct sub_opts *o)
{
    shape_unref(o->shape);
    o->shape = NULL;
}

/* ---- plan: join rooms, decide state / replay / resync -------------------------------- */

enum action { ACT_STATE, ACT_REPLAY, ACT_RESYNC, ACT_NOTHING };

struct step {
    struct sub *s;
    enum action act;
    size_t first, count;            /* ACT_REPLAY: history ring offsets */
    const char *reason;             /* ACT_RESYNC */
};

struct plan {
    struct step *steps;
    size_t n, cap;
    size_t reserve_frames, reserve_bytes;   /* queue space the plan will use */
    bool oom;
};

static void plan_add(struct plan *p, struct step st)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct step *grown = realloc(p->steps, cap * sizeof *grown);
        if (!grown) {
            p->oom = true;
            return;
        }
        p->steps = grown;
        p->cap = cap;
    }
    p->steps[p->n++] = st;
}

static const cJSON *since_of(const struct sub_opts *o, const char *room)
{
    return o->since ? cJSON_GetObjectItemCaseSensitive(o->since, room) : NULL;
}

/* Decides how a newly joined subscription catches up. */
static struct step decide(struct conn *c, struct sub *s, const struct sub_opts *o, struct plan *p)
{
    struct step st = {s, ACT_STATE, 0, 0, NULL};
    struct room *r = s->room;
    const cJSON *since = since_of(o, r->name);
    if (!since) {
        p->reserve_frames += r->n_lasts;
        return st;
    }
    uint64_t from = (uint64_t)since->valuedouble;
    st.act = ACT_RESYNC;
    if (!o->epoch_ok) {
        st.reason = "epoch_changed";
    } else if (from > r->seq) {
        st.reason = "seq_ahead";
    } else if (from == r->seq) {
        st.act = ACT_NOTHING;
    } else {
        uint64_t missed = r->seq - from;
        if (missed > r->hist_len) {
            st.reason = "history_gap";
            goto out;
        }
        size_t first = r->hist_len - (size_t)missed;
        size_t k0 = (r->hist_head + first) % r->hist_cap;
        size_t kl = (r->hist_head + r->hist_len - 1) % r->hist_cap;
        /* seqs only grow: first == from+1 and last == seq means nothing is missing */
        if (r->hist_seq[k0] != from + 1 || r->hist_seq[kl] != r->seq) {
            st.reason = "history_gap";
            goto out;
        }
        uint64_t now = tb_now_ms();
        if (r->hist_ttl_ms && r->hist_at[k0] + r->hist_ttl_ms < now) {
            st.reason = "history_expired";
            goto out;
        }
        size_t bytes = 0;
        for (size_t i = 0; i < missed; i++)
            bytes += r->hist[(r->hist_head + first + i) % r->hist_cap]->len;
        if (c->q_len + p->reserve_frames + missed > c->max_frames ||
            c->q_bytes + p->reserve_bytes + bytes > c->max_bytes) {
            st.reason = "backlog_too_large";
            goto out;
        }
        p->reserve_frames += missed;
        p->reserve_bytes += bytes;
        st.act = ACT_REPLAY;
        st.first = first;
        st.count = (size_t)missed;
        return st;
    }
out:
    if (st.act == ACT_RESYNC)
        p->reserve_frames += 1 + r->n_lasts;
    return st;
}

/* Joins 'room' (already authorized) for a reason; records what it needs when new. */
static struct sub *join_for(struct bridge *br, struct conn *c, struct room *existing, const char *name,
                            unsigned how, struct sub_shape *sh, const struct sub_opts *o,
                            struct plan *p)
{
    struct sub *s = existing ? room_sub_of(existing, c, c->subs) : conn_find_sub(c, name);
    bool fresh = !s;
    if (fresh) {
        if (!(s = bridge_join(br, c, name)))
            return NULL;
        /* bridge_join may have joined through one of our patterns already (a new room) */
        fresh = !s->how && !s->auto_joined;
    }
    if (how == SUB_BY_CLIENT || !(s->how & SUB_BY_CLIENT) || !s->shape)
        set_shape(s, sh);
    s->how |= how;
    if (fresh)
        plan_add(p, decide(c, s, o, p));
    return s;
}

struct pattern_join_ctx {
    struct bridge *br;
    struct conn *c;
    struct sub_pattern *pat;
    const struct sub_opts *o;
    struct plan *p;
};

static void pattern_join_one(struct room *room, void *ud)
{
    struct pattern_join_ctx *x = ud;
    if (!subscribe_glob_match(x->pat->glob, room->name) ||
        !bridge_authorize_join(x->br, x->c, room->name))
        return;
    join_for(x->br, x->c, room, room->name, SUB_BY_PATTERN, x->pat->shape, x->o, x->p);
}

static struct sub_pattern *find_pattern(struct proto_conn *pc, const char *glob)
{
    for (struct sub_pattern *p = pc->patterns; p; p = p->next)
        if (strcmp(p->glob, glob) == 0)
            return p;
    return NULL;
}

static const char *subscribe_pattern(struct bridge *br, struct conn *c, const char *glob,
                                     const struct sub_opts *o, struct plan *p, size_t cap)
{
    struct proto_conn *pc = pconn_get(c); /* patterns live there */
    if (!pc)
        return TB_ERR_INTERNAL;
    struct sub_pattern *pat = find_pattern(pc, glob);
    if (!pat) {
        if (client_count(c) >= cap)
            return TB_ERR_TOO_MANY_ROOMS;
        if (!(pat = calloc(1, sizeof *pat)) || !(pat->glob = strdup(glob))) {
            free(pat);
            return TB_ERR_INTERNAL;
        }
        pat->next = pc->patterns;
        pc->patterns = pat;
        pc->n_patterns++;
        pat_list_link(br, pc);
    }
    shape_unref(pat->shape);
    pat->shape = shape_ref(o->shape);
    struct pattern_join_ctx x = {br, c, pat, o, p};
    room_foreach(br->rooms, pattern_join_one, &x);
    return NULL;
}

/* One requested name; returns NULL when it took effect, else the refusal code. */
static const char *plan_one(struct bridge *br, struct conn *c, const char *name,
                            const struct sub_opts *o, struct plan *p)
{
    const struct cfg_endpoint *ep = endpoint_of(br, c);
    size_t cap = br->cfg->server.max_rooms_per_connection;
    if (!subscribe_room_name_valid(name))
        return TB_ERR_BAD_ROOM;
    if (!ep || !allowed(ep, name))
        return TB_ERR_ROOM_NOT_ALLOWED;
    if (strchr(name, '*'))
        return subscribe_pattern(br, c, name, o, p, cap);
    if (!bridge_authorize_join(br, c, name))
        return TB_ERR_ROOM_NOT_ALLOWED;
    struct sub *s = conn_find_sub(c, name);
    if (!(s && (s->how & SUB_BY_CLIENT)) && client_count(c) >= cap)
        return TB_ERR_TOO_MANY_ROOMS;
    return join_for(br, c, NULL, name, SUB_BY_CLIENT, o->shape, o, p) ? NULL : TB_ERR_INTERNAL;
}

/* ---- execute ------------------------------------------------------------------------- */

static void send_resync(struct bridge *br, struct conn *c, struct sub *s, const char *reason)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "room", s->room->name);
    cJSON_AddStringToObject(top, "reason", reason);
    cJSON_AddNumberToObject(top, "seq", (double)s->room->seq);
    bridge_send_frame(br, c, "resync", top, NULL);
    cJSON_Delete(top);
}

static void execute(struct bridge *br, struct conn *c, struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct step *st = &p->steps[i];
        struct sub *s = st->s;
        struct room *r = s->room;
        switch (st->act) {
        case ACT_STATE:
            bridge_send_room_state(br, c, s);
            break;
        case ACT_RESYNC:
            send_resync(br, c, s, st->reason);
            bridge_send_room_state(br, c, s);
            break;
        case ACT_REPLAY:
            for (size_t k = 0; k < st->count; k++) {
                struct tb_msg *m = r->hist[(r->hist_head + st->first + k) % r->hist_cap];
                struct tb_msg *out = shape_project(s->shape, m);
                if (out) {
                    /* fits: reserved in decide(); never conflated, a gap would be silent */
                    conn_enqueue(c, out, s, false);
                    msg_unref(out);
                }
            }
            if (s->shape && s->shape->interval_ms)
                s->next_ms = tb_now_ms() + s->shape->interval_ms;
            break;
        case ACT_NOTHING:
            break;
        }
    }
}

/* ---- request handlers ---------------------------------------------------------------- */

static const cJSON *rooms_field(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(req, "rooms");
    if (!cJSON_IsArray(rooms) || cJSON_GetArraySize(rooms) > SUB_MAX_ROOMS_PER_REQUEST) {
        bad(br, c, id, "\"rooms\" must be an array of at most 256 room names");
        return NULL;
    }
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (!cJSON_IsString(r)) {
            bad(br, c, id, "\"rooms\" items must be strings");
            return NULL;
        }
    }
    return rooms;
}

static bool subscriptions_enabled(struct bridge *br, struct conn *c, const cJSON *id)
{
    const struct cfg_endpoint *ep = endpoint_of(br, c);
    if (ep && ep->client_subscriptions)
        return true;
    protocol_send_refusal(br, c, id, TB_ERR_SUBSCRIPTIONS_DISABLED,
                          "this endpoint does not take subscriptions; use one with client_subscriptions");
    return false;
}

static void add_rejected(cJSON *rejected, const char *room, const char *code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "room", room);
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddItemToArray(rejected, o);
}

static bool seen_before(const cJSON *rooms, const cJSON *item)
{
    for (const cJSON *r = rooms->child; r && r != item; r = r->next)
        if (strcmp(r->valuestring, item->valuestring) == 0)
            return true;
    return false;
}

static void resume_report(cJSON *top, const struct plan *p, const struct sub_opts *o)
{
    if (!o->since)
        return;
    cJSON *resumed = cJSON_AddObjectToObject(top, "resumed");
    for (size_t i = 0; i < p->n; i++) {
        const struct step *st = &p->steps[i];
        if (st->act == ACT_REPLAY || st->act == ACT_NOTHING)
            cJSON_AddNumberToObject(resumed, st->s->room->name, (double)st->count);
    }
}

/* Queue bytes set aside for the reply that precedes a replay. */
#define REPLY_RESERVE_BYTES 1024

void subscribe_handle_subscribe(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = rooms_field(br, c, req, id);
    struct sub_opts o;
    if (!rooms || subscribe_parse_opts(br, c, req, id, &o))
        return;
    if (!subscriptions_enabled(br, c, id)) {
        subscribe_opts_free(&o);
        return;
    }
    /* The reply is queued before any replay: keep a slot (and room for its text) for it. */
    struct plan p = {.reserve_frames = 1, .reserve_bytes = REPLY_RESERVE_BYTES};
    cJSON *top = cJSON_CreateObject();
    cJSON *took = cJSON_AddArrayToObject(top, "rooms");
    cJSON *rejected = cJSON_AddArrayToObject(top, "rejected");
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (seen_before(rooms, r))
            continue;
        const char *code = plan_one(br, c, r->valuestring, &o, &p);
        if (code)
            add_rejected(rejected, r->valuestring, code);
        else
            cJSON_AddItemToArray(took, cJSON_CreateString(r->valuestring));
    }
    resume_report(top, &p, &o);
    protocol_reply(br, c, "subscribed", top, id);
    execute(br, c, &p);
    if (p.oom)
        LOG_WARN("protocol", "connection %llu: out of memory planning a subscription",
                 (unsigned long long)c->id);
    free(p.steps);
    subscribe_opts_free(&o);
}

/* Leaves rooms that only pattern 'gone' (now removed) kept this connection in. */
static void drop_pattern_rooms(struct bridge *br, struct conn *c, const char *gone)
{
    struct proto_conn *pc = pconn(c);
    if (!pc)
        return;
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->conn_next;
        if (!(s->how & SUB_BY_PATTERN) || !subscribe_glob_match(gone, s->room->name))
            continue;
        bool still = false;
        for (struct sub_pattern *p = pc->patterns; p && !still; p = p->next)
            still = subscribe_glob_match(p->glob, s->room->name);
        if (still)
            continue;
        s->how &= ~(unsigned)SUB_BY_PATTERN;
        if (!s->how && !s->auto_joined)
            conn_unsubscribe(c, s);
    }
    if (!pc->patterns)
        pat_list_unlink(br, pc);
}

static bool unsubscribe_pattern(struct bridge *br, struct conn *c, const char *glob)
{
    struct proto_conn *pc = pconn(c);
    for (struct sub_pattern **pp = &pc->patterns; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->glob, glob) != 0)
            continue;
        struct sub_pattern *p = *pp;
        *pp = p->next;
        pc->n_patterns--;
        pattern_free(p);
        drop_pattern_rooms(br, c, glob);
        return true;
    }
    return false;
}

bool subscribe_leave_one(struct bridge *br, struct conn *c, const char *room)
{
    if (strchr(room, '*') && pconn(c))
        return unsubscribe_pattern(br, c, room);
    struct sub *s = conn_find_sub(c, room);
    if (!s || !(s->how & SUB_BY_CLIENT))
        return false;
    s->how &= ~(unsigned)SUB_BY_CLIENT;
    if (!s->how && !s->auto_joined)
        conn_unsubscribe(c, s);
    return true;
}

void subscribe_handle_unsubscribe(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = rooms_field(br, c, req, id);
    if (!rooms || !subscriptions_enabled(br, c, id))
        return;
    cJSON *top = cJSON_CreateObject();
    cJSON *took = cJSON_AddArrayToObject(top, "rooms");
    cJSON *rejected = cJSON_AddArrayToObject(top, "rejected");
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (seen_before(rooms, r))
            continue;
        if (subscribe_leave_one(br, c, r->valuestring))
            cJSON_AddItemToArray(took, cJSON_CreateString(r->valuestring));
        else
            add_rejected(rejected, r->valuestring, TB_ERR_NOT_SUBSCRIBED);
    }
    protocol_reply(br, c, "unsubscribed", top, id);
}

int subscribe_join_one(struct bridge *br, struct conn *c, const cJSON *id, const char *room,
                       struct sub_opts *o, const char *reply_type, cJSON *top)
{
    const char *code = NULL;
    struct plan p = {.reserve_frames = 1, .reserve_bytes = REPLY_RESERVE_BYTES};
    size_t cap = br->cfg->server.max_rooms_per_connection;
    struct sub *s = conn_find_sub(c, room);
    if (!bridge_authorize_join(br, c, room))
        code = TB_ERR_ROOM_NOT_ALLOWED;
    else if (!(s && (s->how & SUB_BY_CLIENT)) && client_count(c) >= cap)
        code = TB_ERR_TOO_MANY_ROOMS;
    else if (!join_for(br, c, NULL, room, SUB_BY_CLIENT, o->shape, o, &p))
        code = TB_ERR_INTERNAL;
    if (code) {
        cJSON_Delete(top);
        protocol_send_refusal(br, c, id, code, strcmp(code, TB_ERR_TOO_MANY_ROOMS) == 0
                              ? "max_rooms_per_connection reached" : "cannot join this room");
        return -1;
    }
    cJSON_AddStringToObject(top, "room", room);
    resume_report(top, &p, o);
    protocol_reply(br, c, reply_type, top, id);
    execute(br, c, &p);
    free(p.steps);
    return 0;
}

/* ---- rooms created later ------------------------------------------------------------- */

void subscribe_on_room_created(struct bridge *br, struct room *room)
{
    struct protocol_state *ps = br->protocol;
    if (!ps)
        return;
    for (struct proto_conn *pc = ps->pattern_conns; pc; pc = pc->pat_next) {
        struct conn *c = pc->c;
        for (struct sub_pattern *pat = pc->patterns; pat; pat = pat->next) {
            if (c->closing || !subscribe_glob_match(pat->glob, room->name) ||
                !bridge_authorize_join(br, c, room->name))
                continue;
            struct sub *s = room_sub_of(room, c, c->subs);
            if (!s && !(s = conn_subscribe(c, room)))
                break;
            if (!s->shape)
                set_shape(s, pat->shape);
            s->how |= SUB_BY_PATTERN;
            break; /* one subscription per room, whichever pattern matched first */
        }
    }
}

/* ---- shaped delivery ----------------------------------------------------------------- */

static void on_rate_timer(lws_sorted_usec_list_t *sul);

static void arm_timer(struct proto_conn *pc, uint64_t due, uint64_t now)
{
    struct lws_context *ctx = pc->c->br->ctx;
    if (!ctx || (pc->timer_due_ms && pc->timer_due_ms <= due))
        return;
    pc->timer_due_ms = due;
    lws_sul_schedule(ctx, 0, &pc->sul, on_rate_timer, (lws_usec_t)(due > now ? due - now : 0) * LWS_US_PER_MS);
}

/* Sends every waiting message whose slot has come; re-arms for the next one. */
static void flush_due(struct proto_conn *pc, uint64_t now)
{
    uint64_t next = 0;
    for (struct sub *s = pc->c->subs; s; s = s->conn_next) {
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
        arm_timer(pc, next, now);
}

static void on_rate_timer(lws_sorted_usec_list_t *sul)
{
    struct proto_conn *pc = lws_container_of(sul, struct proto_conn, sul);
    pc->timer_due_ms = 0;
    flush_due(pc, tb_now_ms());
}

void subscribe_deliver(struct bridge *br, struct sub *s, struct tb_msg *m, bool conflate,
                       struct shape_cache *sc, uint64_t now_ms)
{
    (void)br;
    struct tb_msg *out = shape_cache_get(sc, s->shape);
    if (!out)
        return;
    uint64_t iv = s->shape->interval_ms;
    struct proto_conn *pc = iv ? pconn_get(s->conn) : NULL;
    if (!iv || !pc) {
        conn_enqueue(s->conn, out, s, conflate);
    } else if (!s->held && now_ms >= s->next_ms) {
        conn_enqueue(s->conn, out, s, true);
        s->next_ms = now_ms + iv;
    } else {
        msg_unref(s->held);   /* superseded: only the newest waits */
        s->held = msg_ref(out);
        arm_timer(pc, s->next_ms, now_ms);
    }
    msg_unref(out);
}

void subscribe_send_last_values(struct bridge *br, struct conn *c, struct sub *s)
{
    (void)br;
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
}
