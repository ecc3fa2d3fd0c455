/* subscribe: client subscriptions, patterns and resume planning (see
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

#include "fanout.h"
#include "log.h"
#include "reply.h"

/* A client's room pattern ("vehicle:*") and the shape its rooms get. */
struct sub_pattern {
    char *glob;
    struct sub_shape *shape;        /* owned reference, or NULL */
    struct sub_pattern *next;
};

/* A connection's patterns (conn->patterns), allocated on its first pattern. */
struct conn_patterns {
    struct conn *c;
    struct sub_pattern *list;
    size_t n;
    struct lws_dll2 in_watch;       /* subscriptions.watchers while n > 0 */
};

struct subscriptions {
    struct fanout *f;
    const struct tb_config *cfg;    /* borrowed; the bridge sets it on every swap */
    uint64_t epoch;
    struct lws_dll2_owner watchers; /* struct conn_patterns of connections with patterns */
};

/* ---- pure helpers -------------------------------------------------------------------- */

/* Linear in both inputs (issue 14, point 6): only '*' is special, so the text before
 * the first star must be a prefix, the text after the last star a suffix, and every
 * segment between stars is found leftmost after the previous one (the leftmost match
 * never loses a solution). memmem is the two-way search: O(n + m), no backtracking. */
bool subscribe_glob_match(const char *g, const char *s)
{
    size_t gl = strlen(g), sl = strlen(s);
    const char *first = memchr(g, '*', gl);
    if (!first)
        return gl == sl && memcmp(g, s, gl) == 0;
    const char *last = strrchr(g, '*');
    size_t pre = (size_t)(first - g), suf = (size_t)(g + gl - last - 1);
    if (sl < pre + suf || memcmp(g, s, pre) != 0 || memcmp(last + 1, s + sl - suf, suf) != 0)
        return false;
    const char *at = s + pre, *end = s + sl - suf;
    for (const char *seg = first + 1; seg < last;) {
        const char *star = memchr(seg, '*', (size_t)(last - seg) + 1);
        size_t n = (size_t)(star - seg);
        if (n) {
            const char *hit = memmem(at, (size_t)(end - at), seg, n);
            if (!hit)
                return false;
            at = hit + n;
        }
        seg = star + 1;
    }
    return true;
}

bool subscribe_pattern_valid(const char *glob)
{
    size_t stars = 0;
    for (const char *p = glob; *p; p++)
        stars += *p == '*';
    return stars <= SUB_PATTERN_MAX_STARS;
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

/* The connection's patterns, allocated where they are first written (a pattern
 * subscription): most connections never need them, and idle connections are what limits
 * one process. NULL when out of memory. */
static struct conn_patterns *patterns_get(struct conn *c)
{
    if (!c->patterns && (c->patterns = calloc(1, sizeof *c->patterns)))
        c->patterns->c = c;
    return c->patterns;
}

static const struct cfg_endpoint *endpoint_of(const struct subscriptions *ss, const struct conn *c)
{
    if (c->endpoint < 0 || (size_t)c->endpoint >= ss->cfg->n_endpoints)
        return NULL;
    return &ss->cfg->endpoints[c->endpoint];
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
    size_t n = c->patterns ? c->patterns->n : 0;
    for (struct sub *s = c->subs; s; s = s->conn_next)
        n += (s->how & SUB_BY_CLIENT) != 0;
    return n;
}

/* ---- connection life cycle ----------------------------------------------------------- */

static void pattern_free(struct sub_pattern *p)
{
    free(p->glob);
    shape_unref(p->shape);
    free(p);
}

static void watch_unlink(struct conn_patterns *cp)
{
    if (!lws_dll2_is_detached(&cp->in_watch))
        lws_dll2_remove(&cp->in_watch);
}

static void watch_link(struct subscriptions *ss, struct conn_patterns *cp)
{
    if (lws_dll2_is_detached(&cp->in_watch))
        lws_dll2_add_head(&cp->in_watch, &ss->watchers);
}

void subscribe_conn_close(struct subscriptions *ss, struct conn *c)
{
    (void)ss;
    struct conn_patterns *cp = c->patterns;
    if (!cp)
        return;
    watch_unlink(cp);
    while (cp->list) {
        struct sub_pattern *p = cp->list;
        cp->list = p->next;
        pattern_free(p);
    }
    free(cp);
    c->patterns = NULL;
}

static void on_room_created(void *ud, struct room *room);

static bool watching(void *ud)
{
    struct subscriptions *ss = ud;
    return ss->watchers.count != 0;
}

struct subscriptions *subscriptions_new(struct fanout *f, const struct tb_config *cfg, uint64_t epoch)
{
    struct subscriptions *ss = calloc(1, sizeof *ss);
    if (!ss)
        return NULL;
    ss->f = f;
    ss->cfg = cfg;
    ss->epoch = epoch;
    room_registry_on_create(fanout_rooms(f), on_room_created, ss);
    fanout_watch_new_rooms(f, watching, ss);
    return ss;
}

void subscriptions_free(struct subscriptions *ss)
{
    if (!ss)
        return;
    room_registry_on_create(fanout_rooms(ss->f), NULL, NULL);
    fanout_watch_new_rooms(ss->f, NULL, NULL);
    free(ss);
}

void subscriptions_set_config(struct subscriptions *ss, const struct tb_config *cfg)
{
    ss->cfg = cfg;
}

/* ---- request options ----------------------------------------------------------------- */

static int bad(struct subscriptions *ss, struct conn *c, const cJSON *id, const char *msg)
{
    reply_error(ss->f, c, id, TB_ERR_BAD_FIELD, msg);
    return -1;
}

static int parse_since(struct subscriptions *ss, struct conn *c, const cJSON *id, const cJSON *since)
{
    if (!cJSON_IsObject(since))
        return bad(ss, c, id, "\"since\" must be an object of room: seq");
    int n = 0;
    for (const cJSON *it = since->child; it; it = it->next, n++) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v > 9007199254740991.0 || v != floor(v))
            return bad(ss, c, id, "\"since\" values must be non-negative integers (seq)");
        if (n >= SUB_MAX_ROOMS_PER_REQUEST)
            return bad(ss, c, id, "\"since\" has too many rooms");
    }
    return 0;
}

int subscribe_parse_opts(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id,
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
            return bad(ss, c, id, "\"max_rate\" must be a number from 0 (unlimited) to 1000");
        max_rate = rate->valuedouble;
    }
    const char *names[SHAPE_MAX_FIELDS];
    size_t n = 0;
    if (fields && !cJSON_IsNull(fields)) {
        if (!cJSON_IsArray(fields) || cJSON_GetArraySize(fields) > SHAPE_MAX_FIELDS)
            return bad(ss, c, id, "\"fields\" must be an array of at most 32 field paths");
        for (const cJSON *f = fields->child; f; f = f->next) {
            if (!cJSON_IsString(f) || !shape_field_valid(f->valuestring))
                return bad(ss, c, id, "\"fields\" items must be dotted field paths like \"engine_metrics.rpm\"");
            names[n++] = f->valuestring;
        }
    }
    if (epoch && !cJSON_IsNull(epoch) && !cJSON_IsString(epoch))
        return bad(ss, c, id, "\"epoch\" must be the string from the welcome frame");
    if (since && !cJSON_IsNull(since)) {
        if (parse_since(ss, c, id, since))
            return -1;
        o->since = since;
    }
    if (cJSON_IsString(epoch)) {
        char mine[24];
        snprintf(mine, sizeof mine, "%016llx", (unsigned long long)ss->epoch);
        o->epoch_ok = strcmp(mine, epoch->valuestring) == 0;
    }
    if ((max_rate > 0 || n) && !(o->shape = shape_new(max_rate, names, n))) {
        reply_error(ss->f, c, id, TB_ERR_INTERNAL, "out of memory");
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
    struct room_span span;          /* ACT_REPLAY: the history entries */
    const char *reason;             /* ACT_RESYNC */
};

struct plan {
    struct step *steps;
    size_t n, cap;
    size_t walked;                  /* rooms matched against new patterns (SUB_WALK_BUDGET) */
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
    struct step st = {s, ACT_STATE, {0, 0, 0}, NULL};
    struct room *r = s->room;
    const cJSON *since = since_of(o, r->name);
    if (!since) {
        p->reserve_frames += r->n_lasts;
        return st;
    }
    st.act = ACT_RESYNC;
    if (!o->epoch_ok) {
        st.reason = "epoch_changed";
    } else {
        switch (room_history_since(r, (uint64_t)since->valuedouble, tb_now_ms(), &st.span)) {
        case ROOM_SINCE_AHEAD: st.reason = "seq_ahead"; break;
        case ROOM_SINCE_GAP: st.reason = "history_gap"; break;
        case ROOM_SINCE_EXPIRED: st.reason = "history_expired"; break;
        case ROOM_SINCE_OK:
            if (!st.span.count) {
                st.act = ACT_NOTHING;
            } else if (c->q_len + p->reserve_frames + st.span.count > c->max_frames ||
                       c->q_bytes + p->reserve_bytes + st.span.bytes > c->max_bytes) {
                st.reason = "backlog_too_large";
            } else {
                p->reserve_frames += st.span.count;
                p->reserve_bytes += st.span.bytes;
                st.act = ACT_REPLAY;
            }
            break;
        }
    }
    if (st.act == ACT_RESYNC)
        p->reserve_frames += 1 + r->n_lasts;
    return st;
}

/* Joins 'room' (already authorized) for a reason; records what it needs when new. */
static struct sub *join_for(struct subscriptions *ss, struct conn *c, struct room *existing, const char *name,
                            unsigned how, struct sub_shape *sh, const struct sub_opts *o,
                            struct plan *p)
{
    struct sub *s = existing ? room_sub_of(existing, c, c->subs) : conn_find_sub(c, name);
    bool fresh = !s;
    if (fresh) {
        if (!(s = fanout_join(ss->f, c, name)))
            return NULL;
        /* fanout_join may have joined through one of our patterns already (a new room) */
        fresh = !s->how && !s->auto_joined;
    }
    if (how == SUB_BY_CLIENT || !(s->how & SUB_BY_CLIENT) || !s->shape)
        fanout_set_shape(s, sh);
    s->how |= how;
    if (fresh)
        plan_add(p, decide(c, s, o, p));
    return s;
}

struct pattern_join_ctx {
    struct subscriptions *ss;
    struct conn *c;
    struct sub_pattern *pat;
    const struct sub_opts *o;
    struct plan *p;
};

static void pattern_join_one(struct room *room, void *ud)
{
    struct pattern_join_ctx *x = ud;
    if (!subscribe_glob_match(x->pat->glob, room->name) ||
        !fanout_may_join(x->ss->f, x->c, room->name))
        return;
    join_for(x->ss, x->c, room, room->name, SUB_BY_PATTERN, x->pat->shape, x->o, x->p);
}

static struct sub_pattern *find_pattern(struct conn_patterns *cp, const char *glob)
{
    for (struct sub_pattern *p = cp->list; p; p = p->next)
        if (strcmp(p->glob, glob) == 0)
            return p;
    return NULL;
}

/* A pattern the connection already holds: no walk over the rooms (new rooms join it
 * as they are created); only a changed shape is applied to the rooms it holds. */
static void reshape_pattern(struct conn *c, struct sub_pattern *pat, const struct sub_opts *o)
{
    if (pat->shape == o->shape)
        return;
    shape_unref(pat->shape);
    pat->shape = shape_ref(o->shape);
    for (struct sub *s = c->subs; s; s = s->conn_next)
        if ((s->how & SUB_BY_PATTERN) && !(s->how & SUB_BY_CLIENT) &&
            subscribe_glob_match(pat->glob, s->room->name))
            fanout_set_shape(s, pat->shape);
}

/* max_rooms_per_connection reached: counted as a refusal (/metrics reason "subscriptions"). */
static const char *too_many(struct subscriptions *ss)
{
    fanout_stats(ss->f)->refused[TB_REFUSED_SUBSCRIPTIONS]++;
    return TB_ERR_TOO_MANY_ROOMS;
}

static const char *subscribe_pattern(struct subscriptions *ss, struct conn *c, const char *glob,
                                     const struct sub_opts *o, struct plan *p, size_t cap)
{
    struct conn_patterns *cp = patterns_get(c);
    if (!cp)
        return TB_ERR_INTERNAL;
    struct sub_pattern *pat = find_pattern(cp, glob);
    if (pat) {
        reshape_pattern(c, pat, o);
        return NULL;
    }
    if (client_count(c) >= cap)
        return too_many(ss);
    /* The work of one request is bounded: a new pattern is matched against every room,
     * so past the budget (the first new pattern always goes) the client is told to retry. */
    size_t rooms = room_registry_count(fanout_rooms(ss->f));
    if (p->walked && p->walked + rooms > SUB_WALK_BUDGET) {
        fanout_stats(ss->f)->patterns_busy++;
        return TB_ERR_BUSY;
    }
    if (!(pat = calloc(1, sizeof *pat)) || !(pat->glob = strdup(glob))) {
        free(pat);
        return TB_ERR_INTERNAL;
    }
    pat->next = cp->list;
    cp->list = pat;
    cp->n++;
    watch_link(ss, cp);
    pat->shape = shape_ref(o->shape);
    p->walked += rooms;
    fanout_stats(ss->f)->pattern_rooms_walked += rooms;
    struct pattern_join_ctx x = {ss, c, pat, o, p};
    room_foreach(fanout_rooms(ss->f), pattern_join_one, &x);
    return NULL;
}

/* One requested name; returns NULL when it took effect, else the refusal code. */
static const char *plan_one(struct subscriptions *ss, struct conn *c, const char *name,
                            const struct sub_opts *o, struct plan *p)
{
    const struct cfg_endpoint *ep = endpoint_of(ss, c);
    size_t cap = ss->cfg->server.max_rooms_per_connection;
    if (!subscribe_room_name_valid(name))
        return TB_ERR_BAD_ROOM;
    if (!ep || !allowed(ep, name))
        return TB_ERR_ROOM_NOT_ALLOWED;
    if (strchr(name, '*'))
        return subscribe_pattern_valid(name) ? subscribe_pattern(ss, c, name, o, p, cap) : TB_ERR_BAD_ROOM;
    if (!fanout_may_join(ss->f, c, name))
        return TB_ERR_FORBIDDEN;
    struct sub *s = conn_find_sub(c, name);
    if (!(s && (s->how & SUB_BY_CLIENT)) && client_count(c) >= cap)
        return too_many(ss);
    if (join_for(ss, c, NULL, name, SUB_BY_CLIENT, o->shape, o, p))
        return NULL;
    /* the room did not exist and could not be created: the client-room budget is spent */
    return room_find(fanout_rooms(ss->f), name) ? TB_ERR_INTERNAL : TB_ERR_ROOM_LIMIT;
}

/* ---- execute ------------------------------------------------------------------------- */

static void send_resync(struct subscriptions *ss, struct conn *c, struct sub *s, const char *reason)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "room", s->room->name);
    cJSON_AddStringToObject(top, "reason", reason);
    cJSON_AddNumberToObject(top, "seq", (double)s->room->seq);
    fanout_send_frame(ss->f, c, "resync", top, NULL);
    cJSON_Delete(top);
}

static void execute(struct subscriptions *ss, struct conn *c, struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct step *st = &p->steps[i];
        switch (st->act) {
        case ACT_STATE:
            fanout_send_room_state(ss->f, c, st->s);
            break;
        case ACT_RESYNC:
            send_resync(ss, c, st->s, st->reason);
            fanout_send_room_state(ss->f, c, st->s);
            break;
        case ACT_REPLAY:
            /* fits: reserved in decide() */
            fanout_replay(ss->f, st->s, &st->span);
            break;
        case ACT_NOTHING:
            break;
        }
    }
}

static bool epoch_is_mine(const struct subscriptions *ss, const char *epoch)
{
    char mine[24];
    snprintf(mine, sizeof mine, "%016llx", (unsigned long long)ss->epoch);
    return epoch && strcmp(mine, epoch) == 0;
}

void subscribe_catch_up(struct subscriptions *ss, struct conn *c, struct sub *const *subs, size_t n,
                        const cJSON *since, const char *epoch)
{
    struct sub_opts o = {.since = since, .epoch_ok = epoch_is_mine(ss, epoch)};
    struct plan p = {0};
    for (size_t i = 0; i < n; i++)
        plan_add(&p, decide(c, subs[i], &o, &p));
    execute(ss, c, &p);
    free(p.steps);
}

/* A seq as a URL writes it: 1 to 15 digits, nothing else. */
static bool url_seq(const char *s, double *out)
{
    size_t n = strspn(s, "0123456789");
    if (!n || n > 15 || s[n])
        return false;
    *out = strtod(s, NULL);
    return true;
}

static struct sub *endpoint_sub(struct sub *const *subs, size_t n, const char *room)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i]->room->name, room) == 0)
            return subs[i];
    return NULL;
}

/* One since=... value into 'since'; false (and err) when it is malformed or foreign. */
static bool url_since_one(char *v, struct sub *const *subs, size_t n, cJSON *since, char *err, size_t errlen)
{
    double seq;
    char *colon = strrchr(v, ':');
    const char *room = NULL;
    if (!colon && n == 1 && url_seq(v, &seq)) {
        room = subs[0]->room->name;
    } else if (colon && url_seq(colon + 1, &seq)) {
        *colon = '\0';
        room = endpoint_sub(subs, n, v) ? v : NULL;
        if (!room) {
            snprintf(err, errlen, "since: '%.100s' is not a room of this endpoint", v);
            return false;
        }
    } else {
        snprintf(err, errlen, "since: expected <seq> (an endpoint of one room) or <room>:<seq>");
        return false;
    }
    if (!cJSON_GetObjectItemCaseSensitive(since, room))
        cJSON_AddNumberToObject(since, room, seq);
    return true;
}

cJSON *subscribe_url_since(const char *query, struct sub *const *subs, size_t n, char **scratch,
                           const char **epoch, char *err, size_t errlen)
{
    *epoch = NULL;
    *scratch = NULL;
    err[0] = '\0';
    if (!query || !*query || !(*scratch = strdup(query)))
        return NULL;
    cJSON *since = cJSON_CreateObject();
    size_t taken = 0;
    char *save = NULL;
    for (char *arg = strtok_r(*scratch, "&", &save); arg && since; arg = strtok_r(NULL, "&", &save)) {
        if (!strncmp(arg, "epoch=", 6))
            *epoch = arg + 6;
        else if (!strncmp(arg, "since=", 6) && taken++ < CFG_MAX_ROOMS)
            url_since_one(arg + 6, subs, n, since, err, errlen);
    }
    if (since && !since->child) {
        cJSON_Delete(since);
        since = NULL;
    }
    return since;
}

/* ---- request handlers ---------------------------------------------------------------- */

static const cJSON *rooms_field(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(req, "rooms");
    if (!cJSON_IsArray(rooms) || cJSON_GetArraySize(rooms) > SUB_MAX_ROOMS_PER_REQUEST) {
        bad(ss, c, id, "\"rooms\" must be an array of at most 256 room names");
        return NULL;
    }
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (!cJSON_IsString(r)) {
            bad(ss, c, id, "\"rooms\" items must be strings");
            return NULL;
        }
    }
    return rooms;
}

static bool subscriptions_enabled(struct subscriptions *ss, struct conn *c, const cJSON *id)
{
    const struct cfg_endpoint *ep = endpoint_of(ss, c);
    if (ep && ep->client_subscriptions)
        return true;
    reply_refusal(ss->f, c, id, TB_ERR_SUBSCRIPTIONS_DISABLED,
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
            cJSON_AddNumberToObject(resumed, st->s->room->name, (double)st->span.count);
    }
}

/* Queue bytes set aside for the reply that precedes a replay. */
#define REPLY_RESERVE_BYTES 1024

/* "connection 7 subscribe: rooms=["a","b"] rejected=[...]" at info (bounded, conn_log_allowed).
 * Room names are client text: printed JSON-escaped (no raw control characters reach the
 * log) and cut at 200 bytes. */
static void log_request(struct conn *c, const char *what, const cJSON *took, const cJSON *rejected)
{
    if (!conn_log_allowed(c))
        return;
    char *names = cJSON_PrintUnformatted(took), *refused = cJSON_PrintUnformatted(rejected);
    LOG_INFO("ws", "connection %llu %s: rooms=%.200s%s rejected=%.200s%s remote=%s", (unsigned long long)c->id,
             what, names ? names : "[]", names && strlen(names) > 200 ? "..." : "",
             refused ? refused : "[]", refused && strlen(refused) > 200 ? "..." : "", c->remote);
    free(names);
    free(refused);
}

/* On an endpoint without client_subscriptions, a subscribe is taken only as a resume of
 * the endpoint's own rooms (since given, every room one the endpoint joined): nothing is
 * joined, each room replays from history or gets a resync, as on /ws/connect. */
static bool resume_own_rooms(struct subscriptions *ss, struct conn *c, const cJSON *rooms,
                             const struct sub_opts *o, const cJSON *id)
{
    if (!o->since || !rooms->child)
        return false;
    for (const cJSON *r = rooms->child; r; r = r->next) {
        struct sub *s = conn_find_sub(c, r->valuestring);
        if (!s || !s->auto_joined)
            return false;
    }
    struct plan p = {.reserve_frames = 1, .reserve_bytes = REPLY_RESERVE_BYTES};
    cJSON *top = cJSON_CreateObject();
    cJSON *took = cJSON_AddArrayToObject(top, "rooms");
    cJSON_AddArrayToObject(top, "rejected");
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (seen_before(rooms, r))
            continue;
        struct sub *s = conn_find_sub(c, r->valuestring);
        if (since_of(o, s->room->name))
            plan_add(&p, decide(c, s, o, &p));
        cJSON_AddItemToArray(took, cJSON_CreateString(r->valuestring));
    }
    resume_report(top, &p, o);
    reply_send(ss->f, c, "subscribed", top, id);
    execute(ss, c, &p);
    free(p.steps);
    return true;
}

void subscribe_handle_subscribe(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = rooms_field(ss, c, req, id);
    struct sub_opts o;
    if (!rooms || subscribe_parse_opts(ss, c, req, id, &o))
        return;
    const struct cfg_endpoint *ep = endpoint_of(ss, c);
    if (!(ep && ep->client_subscriptions) && resume_own_rooms(ss, c, rooms, &o, id)) {
        subscribe_opts_free(&o);
        return;
    }
    if (!subscriptions_enabled(ss, c, id)) {
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
        const char *code = plan_one(ss, c, r->valuestring, &o, &p);
        if (code)
            add_rejected(rejected, r->valuestring, code);
        else
            cJSON_AddItemToArray(took, cJSON_CreateString(r->valuestring));
    }
    resume_report(top, &p, &o);
    log_request(c, "subscribe", took, rejected);
    reply_send(ss->f, c, "subscribed", top, id);
    execute(ss, c, &p);
    if (p.oom)
        LOG_WARN("protocol", "connection %llu: out of memory planning a subscription",
                 (unsigned long long)c->id);
    free(p.steps);
    subscribe_opts_free(&o);
}

/* Leaves rooms that only pattern 'gone' (now removed) kept this connection in. */
static void drop_pattern_rooms(struct conn *c, const char *gone)
{
    struct conn_patterns *cp = c->patterns;
    if (!cp)
        return;
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->conn_next;
        if (!(s->how & SUB_BY_PATTERN) || !subscribe_glob_match(gone, s->room->name))
            continue;
        bool still = false;
        for (struct sub_pattern *p = cp->list; p && !still; p = p->next)
            still = subscribe_glob_match(p->glob, s->room->name);
        if (still)
            continue;
        s->how &= ~(unsigned)SUB_BY_PATTERN;
        if (!s->how && !s->auto_joined)
            conn_unsubscribe(c, s);
    }
    if (!cp->list)
        watch_unlink(cp);
}

static bool unsubscribe_pattern(struct conn *c, const char *glob)
{
    struct conn_patterns *cp = c->patterns;
    for (struct sub_pattern **pp = &cp->list; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->glob, glob) != 0)
            continue;
        struct sub_pattern *p = *pp;
        *pp = p->next;
        cp->n--;
        pattern_free(p);
        drop_pattern_rooms(c, glob);
        return true;
    }
    return false;
}

bool subscribe_leave_one(struct conn *c, const char *room)
{
    if (strchr(room, '*') && c->patterns)
        return unsubscribe_pattern(c, room);
    struct sub *s = conn_find_sub(c, room);
    if (!s || !(s->how & SUB_BY_CLIENT))
        return false;
    s->how &= ~(unsigned)SUB_BY_CLIENT;
    if (!s->how && !s->auto_joined)
        conn_unsubscribe(c, s);
    return true;
}

void subscribe_handle_unsubscribe(struct subscriptions *ss, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *rooms = rooms_field(ss, c, req, id);
    if (!rooms || !subscriptions_enabled(ss, c, id))
        return;
    cJSON *top = cJSON_CreateObject();
    cJSON *took = cJSON_AddArrayToObject(top, "rooms");
    cJSON *rejected = cJSON_AddArrayToObject(top, "rejected");
    for (const cJSON *r = rooms->child; r; r = r->next) {
        if (seen_before(rooms, r))
            continue;
        if (subscribe_leave_one(c, r->valuestring))
            cJSON_AddItemToArray(took, cJSON_CreateString(r->valuestring));
        else
            add_rejected(rejected, r->valuestring, TB_ERR_NOT_SUBSCRIBED);
    }
    log_request(c, "unsubscribe", took, rejected);
    reply_send(ss->f, c, "unsubscribed", top, id);
}

int subscribe_join_one(struct subscriptions *ss, struct conn *c, const cJSON *id, const char *room,
                       struct sub_opts *o, const char *reply_type, cJSON *top)
{
    const char *code = NULL;
    struct plan p = {.reserve_frames = 1, .reserve_bytes = REPLY_RESERVE_BYTES};
    size_t cap = ss->cfg->server.max_rooms_per_connection;
    struct sub *s = conn_find_sub(c, room);
    if (!fanout_may_join(ss->f, c, room))
        code = TB_ERR_FORBIDDEN;
    else if (!(s && (s->how & SUB_BY_CLIENT)) && client_count(c) >= cap)
        code = too_many(ss);
    else if (!join_for(ss, c, NULL, room, SUB_BY_CLIENT, o->shape, o, &p))
        code = room_find(fanout_rooms(ss->f), room) ? TB_ERR_INTERNAL : TB_ERR_ROOM_LIMIT;
    if (code) {
        cJSON_Delete(top);
        reply_refusal(ss->f, c, id, code, strcmp(code, TB_ERR_TOO_MANY_ROOMS) == 0
                              ? "max_rooms_per_connection reached"
                              : strcmp(code, TB_ERR_ROOM_LIMIT) == 0
                              ? "server.max_client_rooms reached: no new room for clients now"
                              : "cannot join this room");
        return -1;
    }
    cJSON_AddStringToObject(top, "room", room);
    resume_report(top, &p, o);
    reply_send(ss->f, c, reply_type, top, id);
    execute(ss, c, &p);
    free(p.steps);
    return 0;
}

/* ---- rooms created later ------------------------------------------------------------- */

/* A room was just created: connections whose patterns match it join it. */
static void on_room_created(void *ud, struct room *room)
{
    struct subscriptions *ss = ud;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&ss->watchers)) {
        struct conn_patterns *cp = lws_container_of(d, struct conn_patterns, in_watch);
        struct conn *c = cp->c;
        for (struct sub_pattern *pat = cp->list; pat; pat = pat->next) {
            if (c->closing || !subscribe_glob_match(pat->glob, room->name) ||
                !fanout_may_join(ss->f, c, room->name))
                continue;
            struct sub *s = room_sub_of(room, c, c->subs);
            if (!s && !(s = conn_subscribe(c, room)))
                break;
            if (!s->shape)
                fanout_set_shape(s, pat->shape);
            s->how |= SUB_BY_PATTERN;
            break; /* one subscription per room, whichever pattern matched first */
        }
    } lws_end_foreach_dll(d);
}
