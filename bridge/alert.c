/* alert: raises, clears and acknowledges alerts from the telemetry the bridge sees.
 *
 * Thread: single-threaded; the libwebsockets service thread owns the engine. No I/O,
 * no clock reads except the (replaceable) wall clock for timestamps, so the whole state
 * machine runs under a fake clock in tests.
 *
 * How it works: every rule has a hash table of key states, keyed by the rendered alert
 * key (e.g. the vehicle id). A key state exists only while it carries something:
 *   - condition rules ('when'): while the condition is pending (true, waiting out 'for')
 *     or while an alert is active; a message that makes the condition true creates it,
 *     the clear (or the condition turning false while pending) removes it again, so
 *     normal telemetry costs one render of the key and one evaluation, no allocation;
 *   - inactivity rules ('inactive_for'): for every key seen, holding its last-seen time
 *     (bounded by ALERT_MAX_KEYS_PER_RULE).
 * A pending condition is assumed to keep holding until a message says otherwise, so a
 * tick can raise it; the payload of the latest true message is kept for rendering.
 *
 * Every state change appends a deep copy of the alert to the caller's event list, so
 * the engine can free cleared alerts at once and the caller never holds pointers into
 * the engine. */
#include "alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "json_util.h"
#include "log.h"

#define KEY_MAX 512
#define MESSAGE_MAX 2048
#define ROOM_MAX 512
#define TOPIC_MAX 1024

struct key_state {
    struct key_state *next;    /* hash chain */
    uint64_t hash;
    char *key;
    char *topic;               /* last topic seen for this key: captures for tick raises */
    bool pending;
    uint64_t pending_since;
    cJSON *pending_payload;    /* latest payload that made the condition true */
    bool seen;                 /* inactivity rules: last_seen is valid */
    uint64_t last_seen;
    struct alert *active;
};

struct rule_state {
    const struct cfg_alert *cfg;    /* borrowed from the caller's config snapshot */
    char *name;                     /* own copies: compared after the old config is gone */
    char *match_src;
    bool same_match_as_prev;        /* same pattern as the rule before: reuse its match */
    bool same_key_as_prev;          /* ... and the same key template: reuse its key too */
    struct key_state **buckets;
    size_t nbuckets, n;
};

struct alert_engine {
    struct rule_state *rules;
    size_t n_rules;
    size_t n_active;
    uint64_t (*wall_ms)(void *ud);
    void *wall_ud;
};

static const char *const severity_names[] = {"info", "warning", "critical"};

static uint64_t default_wall(void *ud)
{
    (void)ud;
    return tb_wall_ms();
}

/* Rate-limits a recurring warning per (kind, rule): a bad publisher must not flood the log. */
static bool warn_allowed(const char *kind, const struct rule_state *r)
{
    char key[256];
    snprintf(key, sizeof(key), "alert:%s:%s", kind, r->name);
    return log_ratelimit_allow(key, 60000);
}

static bool is_inactivity(const struct rule_state *r) { return r->cfg->inactive_for_ms > 0; }

/* ---- alerts and events ------------------------------------------------------------- */

static void alert_clear_fields(struct alert *a)
{
    free(a->id);
    free(a->rule);
    free(a->message);
    free(a->key);
    cJSON_Delete(a->value);
    free(a->acknowledged_by);
    free(a->reason);
    for (size_t i = 0; i < a->n_rooms; i++)
        free(a->rooms[i]);
    free(a->rooms);
    free(a->publish_topic);
    memset(a, 0, sizeof(*a));
}

static void alert_destroy(struct alert *a)
{
    if (!a)
        return;
    alert_clear_fields(a);
    free(a);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int alert_copy(struct alert *dst, const struct alert *src)
{
    *dst = *src;
    dst->id = dup_or_null(src->id);
    dst->rule = dup_or_null(src->rule);
    dst->message = dup_or_null(src->message);
    dst->key = dup_or_null(src->key);
    dst->value = src->value ? cJSON_Duplicate(src->value, true) : NULL;
    dst->acknowledged_by = dup_or_null(src->acknowledged_by);
    dst->reason = dup_or_null(src->reason);
    dst->publish_topic = dup_or_null(src->publish_topic);
    dst->rooms = src->n_rooms ? calloc(src->n_rooms, sizeof(char *)) : NULL;
    bool ok = dst->id && dst->rule && dst->message && dst->key && dst->publish_topic &&
              (!src->value || dst->value) && (!src->acknowledged_by || dst->acknowledged_by) &&
              (!src->reason || dst->reason) && (!src->n_rooms || dst->rooms);
    for (size_t i = 0; dst->rooms && i < src->n_rooms; i++)
        ok = (dst->rooms[i] = strdup(src->rooms[i])) != NULL && ok;
    if (!dst->rooms)
        dst->n_rooms = 0;
    if (!ok) {
        alert_clear_fields(dst);
        return -1;
    }
    return 0;
}

static void emit(struct alert_events *out, enum alert_event_kind kind, const struct alert *a)
{
    if (!out)
        return;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        struct alert_event *v = realloc(out->v, cap * sizeof(*v));
        if (!v) {
            LOG_ERROR("alert", "out of memory: %s event for %s lost", alert_event_kind_name(kind), a->id);
            return;
        }
        out->v = v;
        out->cap = cap;
    }
    struct alert_event *ev = &out->v[out->n];
    ev->kind = kind;
    if (alert_copy(&ev->alert, a) < 0) {
        LOG_ERROR("alert", "out of memory: %s event for %s lost", alert_event_kind_name(kind), a->id);
        return;
    }
    out->n++;
}

void alert_events_reset(struct alert_events *ev)
{
    if (!ev)
        return;
    for (size_t i = 0; i < ev->n; i++)
        alert_clear_fields(&ev->v[i].alert);
    ev->n = 0;
}

void alert_events_free(struct alert_events *ev)
{
    if (!ev)
        return;
    alert_events_reset(ev);
    free(ev->v);
    ev->v = NULL;
    ev->cap = 0;
}

const char *alert_event_kind_name(enum alert_event_kind k)
{
    switch (k) {
    case ALERT_EV_RAISED: return "alert";
    case ALERT_EV_CLEARED: return "alert_cleared";
    case ALERT_EV_ACKED: return "alert_acknowledged";
    }
    return "alert";
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }
static cJSON *ms_or_null(uint64_t ms) { return ms ? cJSON_CreateNumber((double)ms) : cJSON_CreateNull(); }

cJSON *alert_to_json(const struct alert *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *rooms = cJSON_CreateArray();
    if (!o || !rooms)
        goto fail;
    unsigned sev = a->severity < 3 ? (unsigned)a->severity : 1;
    cJSON_AddItemToObject(o, "id", str_or_null(a->id));
    cJSON_AddItemToObject(o, "rule", str_or_null(a->rule));
    cJSON_AddItemToObject(o, "type", str_or_null(a->rule));
    cJSON_AddStringToObject(o, "severity", severity_names[sev]);
    cJSON_AddItemToObject(o, "message", str_or_null(a->message));
    cJSON_AddItemToObject(o, "key", str_or_null(a->key));
    cJSON_AddItemToObject(o, "value", a->value ? cJSON_Duplicate(a->value, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "raised_at", ms_or_null(a->raised_at));
    cJSON_AddItemToObject(o, "cleared_at", ms_or_null(a->cleared_at));
    cJSON_AddBoolToObject(o, "acknowledged", a->acknowledged);
    cJSON_AddItemToObject(o, "acknowledged_by", str_or_null(a->acknowledged_by));
    cJSON_AddItemToObject(o, "acknowledged_at", ms_or_null(a->acknowledged_at));
    cJSON_AddStringToObject(o, "state", a->state == ALERT_ACTIVE ? "active" : "cleared");
    cJSON_AddItemToObject(o, "reason", str_or_null(a->reason));
    for (size_t i = 0; i < a->n_rooms; i++)
        cJSON_AddItemToArray(rooms, cJSON_CreateString(a->rooms[i]));
    cJSON_AddItemToObject(o, "rooms", rooms);
    return o;
fail:
    cJSON_Delete(o);
    cJSON_Delete(rooms);
    return NULL;
}

/* ---- key tables -------------------------------------------------------------------- */

static struct key_state *table_find(const struct rule_state *r, const char *key)
{
    if (!r->n)
        return NULL;    /* the common case for condition rules: skip hashing the key */
    uint64_t h = tb_hash_str(key);
    for (struct key_state *k = r->buckets[h % r->nbuckets]; k; k = k->next)
        if (k->hash == h && strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

static int table_grow(struct rule_state *r)
{
    size_t nb = r->nbuckets ? r->nbuckets * 2 : 16;
    struct key_state **b = calloc(nb, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct key_state *k = r->buckets[i];
        while (k) {
            struct key_state *next = k->next;
            k->next = b[k->hash % nb];
            b[k->hash % nb] = k;
            k = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
    return 0;
}

static void key_state_free(struct key_state *k)
{
    if (!k)
        return;
    free(k->key);
    free(k->topic);
    cJSON_Delete(k->pending_payload);
    alert_destroy(k->active);
    free(k);
}

/* Returns the state of 'key', creating it; NULL when the rule is full or out of memory. */
static struct key_state *table_get(struct rule_state *r, const char *key)
{
    struct key_state *k = table_find(r, key);
    if (k)
        return k;
    if (r->n >= ALERT_MAX_KEYS_PER_RULE) {
        if (warn_allowed("cap", r))
            LOG_WARN("alert", "rule %s tracks %d keys already; ignoring key '%s' (and others)",
                     r->name, ALERT_MAX_KEYS_PER_RULE, key);
        return NULL;
    }
    if (r->n >= r->nbuckets * 3 / 4 && table_grow(r) < 0)
        return NULL;
    k = calloc(1, sizeof(*k));
    if (!k || !(k->key = strdup(key))) {
        free(k);
        return NULL;
    }
    k->hash = tb_hash_str(key);
    k->next = r->buckets[k->hash % r->nbuckets];
    r->buckets[k->hash % r->nbuckets] = k;
    r->n++;
    return k;
}

static void table_remove(struct rule_state *r, struct key_state *k)
{
    struct key_state **pp = &r->buckets[k->hash % r->nbuckets];
    while (*pp != k)
        pp = &(*pp)->next;
    *pp = k->next;
    r->n--;
    key_state_free(k);
}

/* A condition rule's state that carries nothing any more. */
static bool key_state_idle(const struct rule_state *r, const struct key_state *k)
{
    return !k->active && !k->pending && !is_inactivity(r);
}

static void rule_state_clear(struct rule_state *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct key_state *k = r->buckets[i];
        while (k) {
            struct key_state *next = k->next;
            key_state_free(k);
            k = next;
        }
    }
    free(r->buckets);
    free(r->name);
    free(r->match_src);
    memset(r, 0, sizeof(*r));
}

/* ---- rendering --------------------------------------------------------------------- */

/* The captures to render rooms with: those of the key's last topic, or, for a key
 * never seen (forced offline, restored), every capture reading as the key itself. */
static const char *captures_for(const struct rule_state *r, const struct key_state *k,
                                struct topic_match *m)
{
    if (k->topic && topic_pattern_match(r->cfg->match, k->topic, m))
        return k->topic;
    memset(m, 0, sizeof(*m));
    m->n = topic_pattern_ncaptures(r->cfg->match);
    if (m->n > TOPIC_MAX_CAPTURES)
        m->n = TOPIC_MAX_CAPTURES;
    for (size_t i = 0; i < m->n; i++)
        m->cap[i] = (struct topic_slice){k->key, strlen(k->key)};
    return NULL;
}

static int render_key(const struct rule_state *r, const struct tmpl_ctx *ctx, char *out, size_t outlen)
{
    if (r->cfg->key)
        return tmpl_render(r->cfg->key, ctx, out, outlen);
    const struct topic_slice *s = ctx->match->n ? &ctx->match->cap[0] : NULL;
    int n = s ? snprintf(out, outlen, "%.*s", (int)s->len, s->ptr) : snprintf(out, outlen, "%s", ctx->topic);
    return n < 0 ? -1 : (size_t)n >= outlen ? -2 : n;
}

static cJSON *value_of(const struct cfg_alert *cfg, const cJSON *payload)
{
    const char *field = cfg->value_field ? cfg->value_field : expr_first_field(cfg->when);
    const cJSON *v = field && payload ? json_path_get(payload, field, strlen(field)) : NULL;
    if (cJSON_IsNumber(v))
        return cJSON_CreateNumber(v->valuedouble);
    if (cJSON_IsString(v))
        return cJSON_CreateString(v->valuestring);
    if (cJSON_IsBool(v))
        return cJSON_CreateBool(cJSON_IsTrue(v));
    return NULL;
}

static char *render_publish_topic(const struct rule_state *r, const char *key)
{
    char buf[TOPIC_MAX];
    if (!r->cfg->publish_topic) {
        snprintf(buf, sizeof(buf), "alerts/%s/%s", key, r->name);
        return strdup(buf);
    }
    struct topic_match m = {.n = 2};
    m.cap[0] = (struct topic_slice){key, strlen(key)};
    m.cap[1] = (struct topic_slice){r->name, strlen(r->name)};
    struct tmpl_ctx ctx = {.match = &m};
    if (tmpl_render(r->cfg->publish_topic, &ctx, buf, sizeof(buf)) < 0) {
        LOG_WARN("alert", "rule %s: publish_topic did not render for key '%s'; using the default",
                 r->name, key);
        snprintf(buf, sizeof(buf), "alerts/%s/%s", key, r->name);
    }
    return strdup(buf);
}

static int render_rooms(const struct rule_state *r, const struct tmpl_ctx *ctx, struct alert *a)
{
    const struct cfg_alert *cfg = r->cfg;
    size_t n = cfg->n_rooms ? cfg->n_rooms : 1;
    a->rooms = calloc(n, sizeof(char *));
    if (!a->rooms)
        return -1;
    if (!cfg->n_rooms) {
        a->rooms[0] = strdup("alerts");
        a->n_rooms = a->rooms[0] ? 1 : 0;
        return a->n_rooms ? 0 : -1;
    }
    for (size_t i = 0; i < cfg->n_rooms; i++) {
        char buf[ROOM_MAX];
        if (tmpl_render(cfg->rooms[i], ctx, buf, sizeof(buf)) < 0) {
            if (warn_allowed("room", r))
                LOG_WARN("alert", "rule %s: room '%s' did not render for key %s; skipped",
                         r->name, tmpl_source(cfg->rooms[i]), a->key);
            continue;
        }
        if (!(a->rooms[a->n_rooms] = strdup(buf)))
            return -1;
        a->n_rooms++;
    }
    return 0;
}

/* Builds the alert of (rule, key) from the message that raises it ('ctx' payload may be
 * NULL: tick, forced offline). Returns NULL when out of memory. */
static struct alert *alert_build(struct alert_engine *e, const struct rule_state *r,
                                 const struct key_state *k, const struct tmpl_ctx *ctx)
{
    struct alert *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    char msg[MESSAGE_MAX];
    if (!r->cfg->message || tmpl_render(r->cfg->message, ctx, msg, sizeof(msg)) == -1)
        snprintf(msg, sizeof(msg), "%s", r->name);    /* -2 (too long) keeps the truncation */
    size_t idlen = strlen(r->name) + 1 + strlen(k->key) + 1;
    a->id = malloc(idlen);
    if (a->id)
        snprintf(a->id, idlen, "%s:%s", r->name, k->key);
    a->rule = strdup(r->name);
    a->severity = r->cfg->severity;
    a->message = strdup(msg);
    a->key = strdup(k->key);
    a->value = value_of(r->cfg, ctx->payload);
    a->raised_at = e->wall_ms(e->wall_ud);
    a->state = ALERT_ACTIVE;
    a->publish_topic = render_publish_topic(r, k->key);
    if (!a->id || !a->rule || !a->message || !a->key || !a->publish_topic ||
        render_rooms(r, ctx, a) < 0) {
        alert_destroy(a);
        return NULL;
    }
    return a;
}

/* ---- transitions ------------------------------------------------------------------- */

static void raise_alert(struct alert_engine *e, struct rule_state *r, struct key_state *k,
                        const struct tmpl_ctx *ctx, struct alert_events *out)
{
    if (k->active)
        return;
    struct tmpl_ctx tick_ctx;
    struct topic_match m;
    if (!ctx) {
        tick_ctx.topic = captures_for(r, k, &m);
        tick_ctx.match = &m;
        tick_ctx.payload = k->pending_payload;
        ctx = &tick_ctx;
    }
    struct alert *a = alert_build(e, r, k, ctx);
    k->pending = false;
    cJSON_Delete(k->pending_payload);
    k->pending_payload = NULL;
    if (!a) {
        LOG_ERROR("alert", "out of memory: alert %s:%s not raised", r->name, k->key);
        return;
    }
    k->active = a;
    e->n_active++;
    LOG_INFO("alert", "raised %s (%s): %s", a->id, severity_names[a->severity < 3 ? a->severity : 1],
             a->message);
    emit(out, ALERT_EV_RAISED, a);
}

static void clear_alert(struct alert_engine *e, struct key_state *k, const char *reason,
                        struct alert_events *out)
{
    struct alert *a = k->active;
    if (!a)
        return;
    a->state = ALERT_CLEARED;
    a->cleared_at = e->wall_ms(e->wall_ud);
    a->reason = strdup(reason);
    LOG_INFO("alert", "cleared %s: %s", a->id, reason);
    emit(out, ALERT_EV_CLEARED, a);
    alert_destroy(a);
    k->active = NULL;
    e->n_active--;
}

static void remember_topic(struct key_state *k, const char *topic)
{
    if (k->topic && strcmp(k->topic, topic) == 0)
        return;
    char *t = strdup(topic);
    if (t) {
        free(k->topic);
        k->topic = t;
    }
}

static void on_activity(struct alert_engine *e, struct rule_state *r, const char *key,
                        const struct tmpl_ctx *ctx, uint64_t now_ms, struct alert_events *out)
{
    struct key_state *k = table_get(r, key);
    if (!k)
        return;
    k->seen = true;
    k->last_seen = now_ms;
    remember_topic(k, ctx->topic);
    clear_alert(e, k, "telemetry resumed", out);
}

static void on_condition(struct alert_engine *e, struct rule_state *r, const char *key,
                         const struct tmpl_ctx *ctx, uint64_t now_ms, struct alert_events *out)
{
    const struct cfg_alert *cfg = r->cfg;
    struct key_state *k = table_find(r, key);
    if (k && k->active) {
        bool clear = cfg->clear_when ? expr_eval(cfg->clear_when, ctx->payload)
                                     : !expr_eval(cfg->when, ctx->payload);
        if (clear) {
            clear_alert(e, k, "condition cleared", out);
            table_remove(r, k);
        }
        return;
    }
    if (!expr_eval(cfg->when, ctx->payload)) {
        if (k)
            table_remove(r, k);    /* a dip resets the 'for' timer */
        return;
    }
    if (!k && !(k = table_get(r, key)))
        return;
    remember_topic(k, ctx->topic);
    if (!k->pending) {
        k->pending = true;
        k->pending_since = now_ms;
    }
    if (now_ms - k->pending_since >= cfg->for_ms && now_ms >= k->pending_since) {
        raise_alert(e, r, k, ctx, out);
        return;
    }
    cJSON *copy = ctx->payload ? cJSON_Duplicate(ctx->payload, true) : NULL;
    cJSON_Delete(k->pending_payload);
    k->pending_payload = copy;
}

/* ---- engine ------------------------------------------------------------------------ */

struct alert_engine *alert_engine_new(void)
{
    struct alert_engine *e = calloc(1, sizeof(*e));
    if (e)
        e->wall_ms = default_wall;
    return e;
}

void alert_engine_free(struct alert_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_rules; i++)
        rule_state_clear(&e->rules[i]);
    free(e->rules);
    free(e);
}

void alert_engine_set_wall_clock(struct alert_engine *e, uint64_t (*wall_ms)(void *ud), void *ud)
{
    e->wall_ms = wall_ms ? wall_ms : default_wall;
    e->wall_ud = wall_ms ? ud : NULL;
}

static void clear_rule_alerts(struct alert_engine *e, struct rule_state *r, const char *reason,
                              struct alert_events *out)
{
    for (size_t i = 0; i < r->nbuckets; i++)
        for (struct key_state *k = r->buckets[i]; k; k = k->next)
            clear_alert(e, k, reason, out);
}

/* Drops the states a changed rule no longer needs (e.g. last-seen times of a rule that
 * is not an inactivity rule any more). */
static void prune_idle(struct rule_state *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct key_state *k = r->buckets[i];
        while (k) {
            struct key_state *next = k->next;
            if (key_state_idle(r, k))
                table_remove(r, k);
            k = next;
        }
    }
}

int alert_engine_set_rules(struct alert_engine *e, const struct cfg_alert *rules, size_t n,
                           struct alert_events *out)
{
    struct rule_state *nr = n ? calloc(n, sizeof(*nr)) : NULL;
    if (n && !nr)
        return -1;
    for (size_t i = 0; i < n; i++) {
        nr[i].cfg = &rules[i];
        nr[i].name = strdup(rules[i].name);
        nr[i].match_src = strdup(rules[i].match_src ? rules[i].match_src : "");
        if (!nr[i].name || !nr[i].match_src) {
            for (size_t j = 0; j <= i; j++)
                rule_state_clear(&nr[j]);
            free(nr);
            return -1;
        }
    }
    /* Consecutive rules on the same pattern (the usual layout: many rules on
     * vehicle/{id}/telemetry) share one match per message, and with the same key template
     * one key render (same template, same message: same key). */
    for (size_t i = 1; i < n; i++) {
        const struct tmpl *k0 = rules[i - 1].key, *k1 = rules[i].key;
        nr[i].same_match_as_prev = rules[i].match && strcmp(nr[i].match_src, nr[i - 1].match_src) == 0;
        nr[i].same_key_as_prev = nr[i].same_match_as_prev &&
                                 (k0 && k1 ? strcmp(tmpl_source(k0), tmpl_source(k1)) == 0 : k0 == k1);
    }
    /* Move the tables of surviving rules over, then clear what is left. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < e->n_rules; j++) {
            struct rule_state *old = &e->rules[j];
            if (!old->name || strcmp(old->name, nr[i].name) != 0 ||
                strcmp(old->match_src, nr[i].match_src) != 0)
                continue;
            nr[i].buckets = old->buckets;
            nr[i].nbuckets = old->nbuckets;
            nr[i].n = old->n;
            old->buckets = NULL;
            old->nbuckets = old->n = 0;
            prune_idle(&nr[i]);
            break;
        }
    }
    for (size_t j = 0; j < e->n_rules; j++) {
        clear_rule_alerts(e, &e->rules[j], "rule removed", out);
        rule_state_clear(&e->rules[j]);
    }
    free(e->rules);
    e->rules = nr;
    e->n_rules = n;
    return 0;
}

void alert_engine_on_message(struct alert_engine *e, const char *topic, const cJSON *payload,
                             uint64_t now_ms, struct alert_events *out)
{
    struct topic_match m;
    char key[KEY_MAX];
    bool matched = false, have_key = false;
    for (size_t i = 0; i < e->n_rules; i++) {
        struct rule_state *r = &e->rules[i];
        if (!r->same_match_as_prev)
            matched = r->cfg->match && topic_pattern_match(r->cfg->match, topic, &m);
        if (!r->same_key_as_prev)
            have_key = false;
        if (!matched)
            continue;
        /* A condition rule learns nothing from a message that is not JSON: it neither
         * resets a 'for' timer nor clears an alert. It still counts as activity. */
        if (!is_inactivity(r) && (!r->cfg->when || !payload))
            continue;
        struct tmpl_ctx ctx = {.topic = topic, .match = &m, .payload = payload};
        if (!have_key) {
            if (render_key(r, &ctx, key, sizeof(key)) < 0) {
                if (warn_allowed("key", r))
                    LOG_WARN("alert", "rule %s: no key for a message on %s (missing field or too long)",
                             r->name, topic);
                continue;
            }
            have_key = true;
        }
        if (is_inactivity(r))
            on_activity(e, r, key, &ctx, now_ms, out);
        else
            on_condition(e, r, key, &ctx, now_ms, out);
    }
}

void alert_engine_tick(struct alert_engine *e, uint64_t now_ms, struct alert_events *out)
{
    for (size_t i = 0; i < e->n_rules; i++) {
        struct rule_state *r = &e->rules[i];
        const struct cfg_alert *cfg = r->cfg;
        for (size_t b = 0; b < r->nbuckets; b++) {
            for (struct key_state *k = r->buckets[b]; k; k = k->next) {
                if (k->active)
                    continue;
                if (is_inactivity(r)) {
                    if (k->seen && now_ms >= k->last_seen && now_ms - k->last_seen >= cfg->inactive_for_ms)
                        raise_alert(e, r, k, NULL, out);
                } else if (k->pending && now_ms >= k->pending_since &&
                           now_ms - k->pending_since >= cfg->for_ms) {
                    raise_alert(e, r, k, NULL, out);
                }
            }
        }
    }
}

int alert_engine_force_inactive(struct alert_engine *e, const char *key, uint64_t now_ms,
                                struct alert_events *out)
{
    int raised = 0;
    for (size_t i = 0; i < e->n_rules; i++) {
        struct rule_state *r = &e->rules[i];
        if (!is_inactivity(r))
            continue;
        struct key_state *k = table_get(r, key);
        if (!k || k->active)
            continue;
        raise_alert(e, r, k, NULL, out);
        raised += k->active != NULL;
    }
    return raised;
}

/* Splits "<rule>:<key>" (rule names never contain ':') and finds its state. */
static struct key_state *find_by_id(const struct alert_engine *e, const char *id,
                                    struct rule_state **rule)
{
    const char *colon = id ? strchr(id, ':') : NULL;
    if (!colon)
        return NULL;
    size_t len = (size_t)(colon - id);
    for (size_t i = 0; i < e->n_rules; i++) {
        struct rule_state *r = &e->rules[i];
        if (strlen(r->name) == len && memcmp(r->name, id, len) == 0) {
            if (rule)
                *rule = r;
            return table_find(r, colon + 1);
        }
    }
    return NULL;
}

const struct alert *alert_engine_find(const struct alert_engine *e, const char *alert_id)
{
    struct key_state *k = find_by_id(e, alert_id, NULL);
    return k ? k->active : NULL;
}

int alert_engine_ack(struct alert_engine *e, const char *alert_id, const char *by,
                     uint64_t now_ms, struct alert_events *out)
{
    struct key_state *k = find_by_id(e, alert_id, NULL);
    struct alert *a = k ? k->active : NULL;
    if (!a)
        return -1;
    if (a->acknowledged)
        return 1;
    a->acknowledged = true;
    a->acknowledged_at = e->wall_ms(e->wall_ud);
    free(a->acknowledged_by);
    a->acknowledged_by = dup_or_null(by);
    LOG_INFO("alert", "acknowledged %s by %s", a->id, by ? by : "(anonymous)");
    emit(out, ALERT_EV_ACKED, a);
    return 0;
}

static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint64_t json_ms(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

/* Fills the restored alert's fields that the retained JSON carries. */
static int restore_fields(struct alert *a, const cJSON *j, const char *fallback_message)
{
    const char *sev = json_str(j, "severity");
    for (unsigned i = 0; sev && i < 3; i++)
        if (strcmp(sev, severity_names[i]) == 0)
            a->severity = (enum cfg_severity)i;
    const char *msg = json_str(j, "message");
    free(a->message);
    if (!(a->message = strdup(msg ? msg : fallback_message)))
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "value");
    cJSON_Delete(a->value);
    a->value = cJSON_IsNumber(v) || cJSON_IsString(v) || cJSON_IsBool(v) ? cJSON_Duplicate(v, true) : NULL;
    if (json_ms(j, "raised_at"))
        a->raised_at = json_ms(j, "raised_at");
    a->acknowledged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "acknowledged"));
    a->acknowledged_at = a->acknowledged ? json_ms(j, "acknowledged_at") : 0;
    free(a->acknowledged_by);
    a->acknowledged_by = a->acknowledged ? dup_or_null(json_str(j, "acknowledged_by")) : NULL;
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    if (!cJSON_IsArray(rooms))
        return 0;               /* keep the rooms rendered from the rule */
    for (size_t i = 0; i < a->n_rooms; i++)
        free(a->rooms[i]);
    a->n_rooms = 0;
    char **nr = realloc(a->rooms, ((size_t)cJSON_GetArraySize(rooms) + 1) * sizeof(char *));
    if (!nr)
        return -1;
    a->rooms = nr;
    const cJSON *room;
    cJSON_ArrayForEach(room, rooms) {
        if (cJSON_IsString(room) && (a->rooms[a->n_rooms] = strdup(room->valuestring)))
            a->n_rooms++;
    }
    return 0;
}

static int restore_or_adopt(struct alert_engine *e, const cJSON *j, bool adopt);

int alert_engine_restore(struct alert_engine *e, const cJSON *j)
{
    return restore_or_adopt(e, j, false);
}

int alert_engine_adopt(struct alert_engine *e, const cJSON *j)
{
    return restore_or_adopt(e, j, true);
}

int alert_engine_forget(struct alert_engine *e, const char *alert_id)
{
    struct rule_state *r = NULL;
    struct key_state *k = find_by_id(e, alert_id, &r);
    if (!k || !k->active)
        return -1;
    alert_destroy(k->active);
    k->active = NULL;
    e->n_active--;
    if (!is_inactivity(r))
        table_remove(r, k);    /* as a clear does: a condition starts over */
    return 0;
}

static int restore_or_adopt(struct alert_engine *e, const cJSON *j, bool adopt)
{
    const char *rule = json_str(j, "rule");
    const char *key = json_str(j, "key");
    const char *state = json_str(j, "state");
    if (!rule || !key || !*key || !state || strcmp(state, "active") != 0)
        return -1;
    struct rule_state *r = NULL;
    for (size_t i = 0; i < e->n_rules && !r; i++)
        if (strcmp(e->rules[i].name, rule) == 0)
            r = &e->rules[i];
    if (!r)
        return -1;
    struct key_state *k = table_get(r, key);
    if (!k)
        return -1;
    if (k->active)
        return adopt ? restore_fields(k->active, j, r->name) : 0;
    struct topic_match m;
    struct tmpl_ctx ctx = {.match = &m};
    ctx.topic = captures_for(r, k, &m);
    struct alert *a = alert_build(e, r, k, &ctx);
    if (!a || restore_fields(a, j, r->name) < 0) {
        alert_destroy(a);
        if (key_state_idle(r, k))
            table_remove(r, k);
        return -1;
    }
    k->active = a;
    k->pending = false;
    e->n_active++;
    LOG_INFO("alert", "restored %s from the broker", a->id);
    return 0;
}

static bool alert_in_room(const struct alert *a, const char *room)
{
    if (!room)
        return true;
    for (size_t i = 0; i < a->n_rooms; i++)
        if (strcmp(a->rooms[i], room) == 0)
            return true;
    return false;
}

size_t alert_engine_foreach_active(const struct alert_engine *e, const char *room,
                                   int (*fn)(const struct alert *a, void *ud), void *ud)
{
    size_t calls = 0;
    for (size_t i = 0; i < e->n_rules; i++) {
        const struct rule_state *r = &e->rules[i];
        for (size_t b = 0; b < r->nbuckets; b++) {
            for (const struct key_state *k = r->buckets[b]; k; k = k->next) {
                if (!k->active || !alert_in_room(k->active, room))
                    continue;
                calls++;
                if (fn(k->active, ud))
                    return calls;
            }
        }
    }
    return calls;
}

size_t alert_engine_count_active(const struct alert_engine *e)
{
    return e ? e->n_active : 0;
}
