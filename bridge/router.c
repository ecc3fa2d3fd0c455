/* router: route matching, 'when' filters and room rendering (see router.h). */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "expr.h"
#include "json_util.h"
#include "log.h"
#include "template.h"
#include "topic.h"

#define ROOM_NAME_MAX ROUTER_ROOM_MAX
#define MAX_ROOMS_PER_ROUTE CFG_MAX_ROOMS

static bool only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

void inbound_init(struct inbound *in, const char *topic, const char *payload, size_t len)
{
    memset(in, 0, sizeof *in);
    in->topic = topic;
    in->raw = payload;
    in->raw_len = len;
    sbuf_init(&in->text);
    if (utf8_valid(payload, len)) {
        const char *end = NULL;
        in->json = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
        if (in->json && !only_space(end, payload + len)) {
            cJSON_Delete(in->json);
            in->json = NULL;
        }
        in->has_nul = in->json && json_has_nul_escape(payload, len);
    }
    if (in->json && json_strict_valid(payload, len)) {
        in->data = payload; /* embedded as is: no re-printing on the hot path */
        in->data_len = len;
    } else if (in->json) {
        /* cJSON is lenient ("007", "1.", raw control bytes in strings): what it read is
         * printed again as standard JSON, so every frame parses in a browser. */
        char *text = cJSON_PrintUnformatted(in->json);
        if (text)
            sbuf_puts(&in->text, text);
        free(text);
        in->data = in->text.data ? in->text.data : "null";
        in->data_len = in->text.data ? in->text.len : 4;
    } else {
        sbuf_json_string(&in->text, payload, len);
        in->data = in->text.data ? in->text.data : "\"\"";
        in->data_len = in->text.data ? in->text.len : 2;
    }
}

void inbound_free(struct inbound *in)
{
    cJSON_Delete(in->json);
    sbuf_free(&in->text);
    in->json = NULL;
}

/* '*' matches any run of characters; the rest is literal. Iterative, backtracking only to
 * the last '*': O(len(glob) * len(s)) at worst, never exponential. */
static bool glob_match(const char *g, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*g == '*') {
            star = g++;
            resume = s;
        } else if (*g == *s) {
            g++, s++;
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

bool router_room_allowed(const struct cfg_route *r, const char *room)
{
    for (size_t i = 0; i < r->n_rooms_allowed; i++)
        if (glob_match(r->rooms_allowed[i], room))
            return true;
    return false;
}

/* A room chosen by the payload must be one the route lists in rooms_allowed (issue 14:
 * "simulation_mode": "alerts" must not write into the alerts room). */
static bool payload_room_ok(const struct cfg_route *r, const struct tmpl *t, const char *room,
                            const struct tmpl_ctx *ctx, struct tb_stats *st)
{
    if (!tmpl_uses_payload(t) || router_room_allowed(r, room))
        return true;
    if (st)
        st->rooms_not_allowed++;
    if (log_ratelimit_allow_capped("room-not-allowed", ctx->topic, 60000, 20))
        LOG_WARN("router", "%s: the payload selects room '%s', which is not in the route's "
                 "rooms_allowed; not delivered there", ctx->topic, room);
    return false;
}

/* Renders a route's rooms into 'names', skipping duplicates; returns the count. A payload
 * holding U+0000 selects no room: its strings would be cut at the NUL. */
static size_t render_rooms(const struct cfg_route *r, const struct tmpl_ctx *ctx, bool has_nul,
                           char names[][ROOM_NAME_MAX], struct tb_stats *st)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_rooms && n < MAX_ROOMS_PER_ROUTE; i++) {
        bool nul = has_nul && tmpl_uses_payload(r->rooms[i]);
        int len = nul ? -3 : tmpl_render(r->rooms[i], ctx, names[n], ROOM_NAME_MAX);
        if (len <= 0) {
            if (st)
                st->room_errors++;
            if (log_ratelimit_allow_capped("room-render", ctx->topic, 60000, 20))
                LOG_WARN("router", "%s: room '%s' cannot be rendered (%s)", ctx->topic,
                         tmpl_source(r->rooms[i]), len == -2 ? "too long"
                         : len == -3 ? "the payload holds U+0000" : "field missing");
            continue;
        }
        if (!payload_room_ok(r, r->rooms[i], names[n], ctx, st))
            continue;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(names[k], names[n]) == 0;
        if (!dup)
            n++;
    }
    return n;
}

static void walk(const struct tb_config *cfg, struct inbound *in, struct tb_stats *st,
                 void (*fn)(size_t, const struct cfg_route *, const char *, void *), void *ud,
                 size_t *matched)
{
    char names[MAX_ROOMS_PER_ROUTE][ROOM_NAME_MAX];
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct cfg_route *r = &cfg->routes[i];
        struct topic_match m;
        if (!topic_pattern_match(r->match, in->topic, &m))
            continue;
        (*matched)++;
        if (!in->json && r->non_json == CFG_NONJSON_DROP)
            continue;
        if (r->when && !expr_eval(r->when, in->json))
            continue;
        struct tmpl_ctx ctx = {in->topic, &m, in->json};
        size_t n = render_rooms(r, &ctx, in->has_nul, names, st);
        for (size_t k = 0; k < n; k++)
            fn(i, r, names[k], ud);
    }
}

void router_out_free(struct router_out *out)
{
    free(out->v);
    out->v = NULL;
    out->n = out->cap = 0;
}

static void add_delivery(size_t idx, const struct cfg_route *r, const char *room, void *ud)
{
    struct router_out *out = ud;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        struct route_delivery *v = realloc(out->v, cap * sizeof *v);
        if (!v) {
            LOG_ERROR("router", "out of memory: delivery to room %s dropped", room);
            return;
        }
        out->v = v;
        out->cap = cap;
    }
    struct route_delivery *d = &out->v[out->n++];
    d->route = r;
    d->route_index = idx;
    snprintf(d->room, sizeof d->room, "%s", room);
}

/* True when a route matching the topic does not declare plain text its format
 * (non_json: text): then a non-JSON payload deserves a warning. */
static bool non_json_unexpected(const struct tb_config *cfg, const char *topic)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].non_json != CFG_NONJSON_TEXT && topic_pattern_match(cfg->routes[i].match, topic, NULL))
            return true;
    return false;
}

size_t router_route(const struct tb_config *cfg, struct inbound *in, struct router_out *out,
                    struct tb_stats *st)
{
    out->n = 0;
    if (!in->json) {
        st->non_json++;
        if (non_json_unexpected(cfg, in->topic) && log_ratelimit_allow_capped("non-json", in->topic, 60000, 20))
            LOG_WARN("router", "%s: payload is not JSON (%zu bytes); delivered as a string "
                     "unless the route drops it", in->topic, in->raw_len);
    }
    size_t matched = 0;
    walk(cfg, in, st, add_delivery, out, &matched);
    if (!matched)
        st->unrouted++;
    return out->n;
}

const char *router_keep_key(const struct cfg_route *r, const struct inbound *in, char *out,
                            size_t outlen)
{
    if (!r->keep_last || r->keep_by == CFG_KEEP_TYPE)
        return NULL;
    const char *v = in->topic;
    char num[64];
    if (r->keep_by == CFG_KEEP_FIELD) {
        const cJSON *f = in->json ? json_path_get(in->json, r->keep_by_field, strlen(r->keep_by_field)) : NULL;
        if (cJSON_IsString(f))
            v = f->valuestring;
        else if (cJSON_IsNumber(f) && json_format_number(f->valuedouble, num, sizeof num) > 0)
            v = num;
        else
            return NULL;
    }
    int n = snprintf(out, outlen, "%s\x1f%s", r->type, v);
    return n > 0 && (size_t)n < outlen ? out : NULL;
}

bool router_matches(const struct tb_config *cfg, const char *topic)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (topic_pattern_match(cfg->routes[i].match, topic, NULL))
            return true;
    return false;
}

struct explain_ctx {
    void (*fn)(size_t, const char *, void *);
    void *ud;
};

static void explain_one(size_t idx, const struct cfg_route *r, const char *room, void *ud)
{
    (void)r;
    struct explain_ctx *e = ud;
    e->fn(idx, room, e->ud);
}

void router_explain(const struct tb_config *cfg, struct inbound *in,
                    void (*fn)(size_t route, const char *room, void *ud), void *ud)
{
    struct explain_ctx e = {fn, ud};
    size_t matched = 0;
    walk(cfg, in, NULL, explain_one, &e, &matched);
}
