/* alert_runtime: the alert engine inside the bridge (see alert_runtime.h for what and why).
 *
 * Thread: service thread only. The engine is pure; this file does the I/O around it:
 * it feeds the engine from the MQTT drain, the tick and client acks, and turns every
 * event the engine appends to 'ev' into WebSocket frames and MQTT publishes
 * (flush_events). Nothing here blocks: publishing hands the message to libmosquitto,
 * which queues QoS 1 messages while the broker is away and sends them on reconnect
 * before resubscribing, so a clear made during an outage still reaches the broker
 * before its stale retained alert could be read back.
 *
 * Restoring after a restart: the broker sends the retained alerts when the runtime's
 * extra filters are subscribed (they go before the route filters, so restores normally
 * precede telemetry). Only messages with the retain flag restore: our own publishes come
 * back to us live (retain flag clear) and are ignored. A restored alert is not announced
 * again as a raise (nothing is published); clients already in its rooms (they joined
 * before the broker sent it back) get it as an "alert" frame, like joiners do. Only states
 * this bridge published restore (issue 14.10): "origin" must be alert_state.origin, "sig"
 * must check with alert_state.hmac_key when one is set, and at most max_restored restore;
 * refusals are counted (restore_refused) and logged, rate-limited.
 *
 * Acks (issue 14.5): rights come from the endpoint ('ack', 'identity'); acknowledged_by is
 * the endpoint's identity capture, never the client's free text. With an auth section
 * (issue 13) the token's subject is the identity and auth.ack_roles says who may ack.
 * Delivery per vehicle (auth.alerts_claim): an alert goes only to the members of its
 * rooms whose identity permits its key (access_may_see_key), also in the join state. */
#include "alert_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "alert.h"
#include "cluster.h"
#include "fanout.h"
#include "hmac.h"
#include "log.h"
#include "mqtt_client.h"
#include "reply.h"
#include "router.h"

#define FILTER_MAX 512
#define BY_MAX 128
#define DEFER_MAX 100000     /* telemetry held back until the retained state is read */

/* A message that arrived before the retained alert state was read (alert_runtime_set_ready). */
struct deferred {
    char *topic, *payload;
    size_t len;
    uint64_t at;
};

struct alert_runtime {
    struct fanout *f;
    struct mqtt_client *mqtt;           /* NULL: nothing is published */
    struct alert_engine *engine;
    struct tb_config *cfg;              /* snapshot whose rules the engine borrows (own ref) */
    char **filters;                     /* extra MQTT filters: alert topics, then status */
    size_t n_filters, n_alert_filters;
    struct topic_pattern **alert_pats;  /* the alert-topic filters, compiled for matching */
    struct topic_pattern *status_pat;   /* ALERT_STATUS_PATTERN */
    struct alert_events ev;
    uint64_t raised, cleared, acknowledged, restored, restore_refused;
    struct alert_rule_count *per_rule;  /* by (rule name, severity), for /metrics */
    size_t n_per_rule;
    /* Start-up: no rule is evaluated before the retained alert state has been read. */
    bool ready;
    struct deferred *deferred;
    size_t n_deferred, cap_deferred;
    uint64_t deferred_dropped;
    /* Cluster (NULL: this bridge owns every key): only the owner of an alert's key
     * announces and publishes it; 'shown' holds what was published, by us or a peer:
     * id -> {"topic": publish topic, "state": the alert as clients see it}. */
    const struct cluster *cl;
    cJSON *shown;
    uint64_t peer_applied, acks_forwarded, taken_over;
};

static bool is_alert_topic(const struct alert_runtime *rt, const char *topic);
static bool flush_cluster_event(struct alert_runtime *rt, const struct alert_event *e, cJSON *data);
static void add_instance(const struct alert_runtime *rt, cJSON *data);

bool alert_runtime_owns_topic(const struct alert_runtime *rt, const char *topic)
{
    return rt && is_alert_topic(rt, topic);
}

/* ---- subscription filters ---------------------------------------------------------- */

int alert_runtime_filter_for(const char *src, char *out, size_t outlen)
{
    struct sbuf b;
    sbuf_init(&b);
    bool prefix = src[0] != '{';
    for (const char *lvl = src; lvl;) {
        const char *slash = strchr(lvl, '/');
        size_t len = slash ? (size_t)(slash - lvl) : strlen(lvl);
        bool placeholder = memchr(lvl, '{', len) != NULL;
        if (lvl != src)
            sbuf_puts(&b, "/");
        if (placeholder && prefix) {
            sbuf_puts(&b, "#");
            break;
        }
        if (placeholder)
            sbuf_puts(&b, "+");
        else
            sbuf_append(&b, lvl, len);
        lvl = slash ? slash + 1 : NULL;
    }
    int rc = !sbuf_failed(&b) && b.len < outlen ? 0 : -1;
    if (rc == 0) {
        memcpy(out, b.data ? b.data : "", b.len);
        out[b.len] = '\0';
    }
    sbuf_free(&b);
    return rc;
}

static bool has_filter(char *const *set, size_t n, const char *f)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], f) == 0)
            return true;
    return false;
}

static void free_filters(struct alert_runtime *rt)
{
    for (size_t i = 0; i < rt->n_filters; i++)
        free(rt->filters[i]);
    free(rt->filters);
    for (size_t i = 0; i < rt->n_alert_filters; i++)
        topic_pattern_free(rt->alert_pats[i]);
    free(rt->alert_pats);
    rt->filters = NULL;
    rt->alert_pats = NULL;
    rt->n_filters = rt->n_alert_filters = 0;
}

static int add_filter(struct alert_runtime *rt, const char *f)
{
    if (has_filter(rt->filters, rt->n_filters, f))
        return 0;
    char **v = realloc(rt->filters, (rt->n_filters + 1) * sizeof *v);
    if (!v)
        return -1;
    rt->filters = v;
    if (!(rt->filters[rt->n_filters] = strdup(f)))
        return -1;
    rt->n_filters++;
    return 0;
}

/* Recomputes the extra filters for the current rules and hands them to mqtt_client. */
static int update_filters(struct alert_runtime *rt)
{
    free_filters(rt);
    const struct tb_config *cfg = rt->cfg;
    bool inactivity = false;
    for (size_t i = 0; i < cfg->n_alerts; i++) {
        const struct cfg_alert *a = &cfg->alerts[i];
        char f[FILTER_MAX];
        const char *src = a->publish_topic ? tmpl_source(a->publish_topic) : "alerts/{key}/{name}";
        if (alert_runtime_filter_for(src, f, sizeof f) < 0 || add_filter(rt, f) < 0)
            return -1;
        inactivity |= a->inactive_for_ms > 0;
    }
    rt->n_alert_filters = rt->n_filters;
    rt->alert_pats = calloc(rt->n_alert_filters ? rt->n_alert_filters : 1, sizeof *rt->alert_pats);
    if (!rt->alert_pats)
        return -1;
    for (size_t i = 0; i < rt->n_alert_filters; i++) {
        char err[128];
        int col;
        if (!(rt->alert_pats[i] = topic_pattern_compile(rt->filters[i], err, sizeof err, &col))) {
            LOG_ERROR("alert", "alert topic filter %s: %s", rt->filters[i], err);
            return -1;
        }
    }
    if (inactivity && add_filter(rt, topic_pattern_filter(rt->status_pat)) < 0)
        return -1;
    for (size_t i = 0; i < rt->n_filters; i++)
        LOG_DEBUG("alert", "extra subscription %s", rt->filters[i]);
    return rt->mqtt ? mqtt_client_set_extra_filters(rt->mqtt, rt->filters, rt->n_filters) : 0;
}

static bool is_alert_topic(const struct alert_runtime *rt, const char *topic)
{
    for (size_t i = 0; i < rt->n_alert_filters; i++)
        if (topic_pattern_match(rt->alert_pats[i], topic, NULL))
            return true;
    return false;
}

/* ---- fan-out ----------------------------------------------------------------------- */

/* True when c is a member of one of the alert's rooms before index i: c then gets the
 * alert through that room, and only once. */
static bool has_earlier_room(struct conn *c, char *const *rooms, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (conn_find_sub(c, rooms[j]))
            return true;
    return false;
}

/* Alerts are never dropped silently: a connection whose queue is full is closed and
 * must resync (it gets the active alerts again when it rejoins). */
static void send_alert_frame(struct conn *c, struct tb_msg *m)
{
    if (conn_enqueue(c, m, NULL, false) == CONN_DROPPED && !c->closing)
        conn_close(c, TB_CLOSE_SLOW_CONSUMER, "slow consumer: alert not delivered, resync");
}

/* auth.alerts_claim: an alert reaches only the members whose identity permits its key
 * (the vehicle), so a shared alerts room carries each user only their vehicles. 'key'
 * NULL: a state without one (a peer's) reaches only members with no claim check. */
static bool may_see(const struct alert_runtime *rt, const struct conn *c, const char *key)
{
    return access_may_see_key(rt->cfg->auth, c->identity, key ? key : "");
}

static void fan_out_rooms(struct alert_runtime *rt, const char *type, char *const *rooms,
                          size_t n_rooms, const char *key, const cJSON *data)
{
    struct tb_msg *m = NULL;
    for (size_t i = 0; i < n_rooms; i++) {
        struct room *room = room_find(fanout_rooms(rt->f), rooms[i]);
        if (!room || !room_has_members(room))
            continue;
        if (!m && !(m = fanout_build_control(rt->f, type, NULL, data))) {
            LOG_ERROR("alert", "out of memory: %s not sent", type);
            return;
        }
        for (struct sub *s = room_first_member(room); s; s = room_next_member(s))
            if (!has_earlier_room(s->conn, rooms, i) && may_see(rt, s->conn, key))
                send_alert_frame(s->conn, m);
    }
    msg_unref(m);
}

static void fan_out(struct alert_runtime *rt, const char *type, const struct alert *a,
                    const cJSON *data)
{
    fan_out_rooms(rt, type, a->rooms, a->n_rooms, a->key, data);
}

/* The retained state carries "origin" (alert_state.origin) and, with alert_state.hmac_key,
 * "sig": HMAC-SHA256 of the state printed without "sig" (verified by state_refusal). */
static char *print_state(const struct alert_runtime *rt, cJSON *data)
{
    const struct cfg_alert_state *as = &rt->cfg->alert_state;
    if (as->origin)
        cJSON_AddStringToObject(data, "origin", as->origin);
    add_instance(rt, data);
    char *text = cJSON_PrintUnformatted(data);
    char sig[HMAC_HEX_LEN + 1];
    if (!text || !as->hmac_key)
        return text;
    int rc = hmac_sha256_hex(as->hmac_key, text, strlen(text), sig);
    free(text);
    return rc == 0 && cJSON_AddStringToObject(data, "sig", sig) ? cJSON_PrintUnformatted(data) : NULL;
}

static void publish_state(struct alert_runtime *rt, const struct alert *a, cJSON *data, bool active)
{
    if (!rt->mqtt || !a->publish_topic)
        return;
    if (!active) {
        mqtt_client_publish(rt->mqtt, a->publish_topic, NULL, 0, 1, true);
        return;
    }
    char *text = print_state(rt, data);
    if (!text) {
        LOG_ERROR("alert", "out of memory: %s not published", a->id);
        return;
    }
    mqtt_client_publish(rt->mqtt, a->publish_topic, text, strlen(text), 1, true);
    free(text);
}

/* The (rule, severity) counters of an event; kept across reloads (keyed by name), a
 * new pair appended. Out of memory: not counted. */
static void count_per_rule(struct alert_runtime *rt, const struct alert *a, enum alert_event_kind kind)
{
    struct alert_rule_count *c = NULL;
    for (size_t i = 0; i < rt->n_per_rule && !c; i++)
        if ((int)a->severity == rt->per_rule[i].severity && strcmp(rt->per_rule[i].rule, a->rule) == 0)
            c = &rt->per_rule[i];
    if (!c) {
        struct alert_rule_count *v = realloc(rt->per_rule, (rt->n_per_rule + 1) * sizeof *v);
        char *name = strdup(a->rule ? a->rule : "");
        if (!v || !name) {
            free(name);
            if (v)
                rt->per_rule = v;
            return;
        }
        rt->per_rule = v;
        c = &v[rt->n_per_rule++];
        *c = (struct alert_rule_count){.rule = name, .severity = (int)a->severity};
    }
    if (kind == ALERT_EV_RAISED)
        c->raised++;
    else if (kind == ALERT_EV_CLEARED)
        c->cleared++;
}

size_t alert_runtime_rule_counts(const struct alert_runtime *rt, const struct alert_rule_count **out)
{
    *out = rt ? rt->per_rule : NULL;
    return rt ? rt->n_per_rule : 0;
}

/* Announces and publishes every queued event, then empties the list. */
static void flush_events(struct alert_runtime *rt)
{
    for (size_t i = 0; i < rt->ev.n; i++) {
        const struct alert_event *e = &rt->ev.v[i];
        cJSON *data = alert_to_json(&e->alert);
        if (!data) {
            LOG_ERROR("alert", "out of memory: event of %s lost", e->alert.id);
            continue;
        }
        if (rt->cl && !flush_cluster_event(rt, e, data)) {
            cJSON_Delete(data);
            continue;
        }
        fan_out(rt, alert_event_kind_name(e->kind), &e->alert, data);
        publish_state(rt, &e->alert, data, e->kind != ALERT_EV_CLEARED);
        count_per_rule(rt, &e->alert, e->kind);
        switch (e->kind) {
        case ALERT_EV_RAISED: rt->raised++; break;
        case ALERT_EV_CLEARED: rt->cleared++; break;
        case ALERT_EV_ACKED: rt->acknowledged++; break;
        }
        cJSON_Delete(data);
    }
    alert_events_reset(&rt->ev);
}

/* ---- life cycle -------------------------------------------------------------------- */

static void send_room_state(void *ud, struct conn *c, struct sub *s);

void alert_runtime_free(struct alert_runtime *rt)
{
    if (!rt)
        return;
    if (rt->f)
        fanout_on_join_state(rt->f, NULL, NULL);
    alert_engine_free(rt->engine);
    alert_events_free(&rt->ev);
    for (size_t i = 0; i < rt->n_deferred; i++) {
        free(rt->deferred[i].topic);
        free(rt->deferred[i].payload);
    }
    free(rt->deferred);
    cJSON_Delete(rt->shown);
    free_filters(rt);
    topic_pattern_free(rt->status_pat);
    config_unref(rt->cfg);
    for (size_t i = 0; i < rt->n_per_rule; i++)
        free(rt->per_rule[i].rule);
    free(rt->per_rule);
    free(rt);
}

struct alert_runtime *alert_runtime_new(const struct tb_config *cfg, struct fanout *f,
                                        struct mqtt_client *mqtt)
{
    struct alert_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        goto fail;
    rt->mqtt = mqtt;
    rt->ready = !mqtt;    /* without a broker there is no retained state to wait for */
    char err[128];
    int col;
    rt->status_pat = topic_pattern_compile(ALERT_STATUS_PATTERN, err, sizeof err, &col);
    rt->engine = alert_engine_new();
    if (!rt->status_pat || !rt->engine)
        goto fail;
    rt->cfg = config_ref((struct tb_config *)cfg);
    if (alert_engine_set_rules(rt->engine, rt->cfg->alerts, rt->cfg->n_alerts, &rt->ev) < 0 ||
        update_filters(rt) < 0)
        goto fail;
    alert_events_reset(&rt->ev);    /* a fresh engine has nothing to clear */
    rt->f = f;
    fanout_on_join_state(f, send_room_state, rt);
    LOG_INFO("alert", "%zu alert rules; restoring active alerts from %zu retained topic filter(s)",
             rt->cfg->n_alerts, rt->n_alert_filters);
    return rt;
fail:
    LOG_ERROR("alert", "cannot start the alert runtime (out of memory?): running without alerts");
    alert_runtime_free(rt);
    return NULL;
}

int alert_runtime_apply_config(struct alert_runtime *rt, const struct tb_config *new_cfg)
{
    if (!rt)
        return -1;
    struct tb_config *cfg = config_ref((struct tb_config *)new_cfg);
    if (alert_engine_set_rules(rt->engine, cfg->alerts, cfg->n_alerts, &rt->ev) < 0) {
        config_unref(cfg);
        LOG_ERROR("alert", "out of memory: alert rules not reloaded (the old ones stay)");
        return -1;
    }
    config_unref(rt->cfg);    /* the engine no longer points into it */
    rt->cfg = cfg;
    flush_events(rt);
    if (update_filters(rt) < 0)
        LOG_ERROR("alert", "out of memory: alert topic subscriptions not updated");
    LOG_INFO("alert", "alert rules reloaded: %zu rules, %zu active alerts", cfg->n_alerts,
             alert_engine_count_active(rt->engine));
    return 0;
}

/* ---- inputs ------------------------------------------------------------------------ */

/* The id an alert's retained JSON stands for ("<rule>:<key>"), or "" when it has none. */
static void restored_id(const cJSON *j, char *out, size_t outlen)
{
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(j, "rule");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
    out[0] = '\0';
    if (cJSON_IsString(rule) && cJSON_IsString(key))
        snprintf(out, outlen, "%s:%s", rule->valuestring, key->valuestring);
}

/* True when the state's "sig" is the HMAC of the state printed without it. */
static bool signature_ok(const char *key, const cJSON *j)
{
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(j, "sig");
    if (!cJSON_IsString(sig))
        return false;
    cJSON *copy = cJSON_Duplicate(j, true);
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "sig");
    char *text = copy ? cJSON_PrintUnformatted(copy) : NULL;
    bool ok = text && hmac_sha256_check(key, text, strlen(text), sig->valuestring);
    free(text);
    cJSON_Delete(copy);
    return ok;
}

/* Why a retained state may not be restored (issue 14.10: anyone with broker write access
 * could plant them), or NULL: it must carry this bridge's origin, a valid signature when
 * alert_state.hmac_key is set, and fit under alert_state.max_restored when it is new. */
static const char *state_refusal(const struct alert_runtime *rt, const cJSON *j, bool known)
{
    const struct cfg_alert_state *as = &rt->cfg->alert_state;
    const cJSON *origin = cJSON_GetObjectItemCaseSensitive(j, "origin");
    if (!cJSON_IsString(origin) || !as->origin || strcmp(origin->valuestring, as->origin) != 0)
        return "not published by this bridge (origin differs from alert_state.origin)";
    if (as->hmac_key && !signature_ok(as->hmac_key, j))
        return "its signature does not match alert_state.hmac_key";
    if (!known && rt->restored >= as->max_restored)
        return "alert_state.max_restored reached";
    return NULL;
}

/* A retained alert read back from the broker. Newly restored alerts are not announced as
 * raises (nothing is published), but clients that joined their rooms before the broker
 * sent them back (just after a start) get them now, as a joiner would. */
static void restore(struct alert_runtime *rt, const struct inbound *in)
{
    if (!in->raw_len)
        return;    /* an empty retained message: no alert there */
    char id[1024] = "";
    if (in->json)
        restored_id(in->json, id, sizeof id);
    bool known = id[0] && alert_engine_find(rt->engine, id);
    const char *refused = cJSON_IsObject(in->json) ? state_refusal(rt, in->json, known) : NULL;
    if (refused) {
        rt->restore_refused++;
        if (log_ratelimit_allow_capped("alert-restore-refused", in->topic, 60000, 5))
            LOG_WARN("alert", "retained alert state on %s not restored: %s (%llu refused so far)",
                     in->topic, refused, (unsigned long long)rt->restore_refused);
        return;
    }
    if (!in->json || alert_engine_restore(rt->engine, in->json) < 0) {
        if (log_ratelimit_allow_capped("alert-restore", in->topic, 60000, 20))
            LOG_WARN("alert", "retained message on %s is not an active alert of a current rule; ignored",
                     in->topic);
        return;
    }
    const struct alert *a = known ? NULL : alert_engine_find(rt->engine, id);
    if (!a)
        return;
    rt->restored++;
    cJSON *data = alert_to_json(a);
    if (data)
        fan_out(rt, alert_event_kind_name(ALERT_EV_RAISED), a, data);
    cJSON_Delete(data);
}

static bool payload_is_offline(const struct inbound *in)
{
    static const char word[] = "offline";
    if (in->raw_len == sizeof word - 1 && memcmp(in->raw, word, sizeof word - 1) == 0)
        return true;
    return cJSON_IsString(in->json) && strcmp(in->json->valuestring, word) == 0;  /* "\"offline\"" */
}

static void peer_state(struct alert_runtime *rt, const struct inbound *in, bool retained);
static void defer(struct alert_runtime *rt, const struct inbound *in);
static void evaluate(struct alert_runtime *rt, const struct inbound *in, uint64_t now);

void alert_runtime_on_message(struct alert_runtime *rt, const struct inbound *in, bool retained)
{
    if (!rt)
        return;
    if (is_alert_topic(rt, in->topic)) {
        if (rt->cl)
            peer_state(rt, in, retained);
        else if (retained)
            restore(rt, in);
        return;    /* live without a cluster: our own publish coming back */
    }
    if (!rt->ready)
        defer(rt, in);
    else
        evaluate(rt, in, tb_now_ms());
}

static void evaluate(struct alert_runtime *rt, const struct inbound *in, uint64_t now)
{
    struct topic_match m;
    if (payload_is_offline(in) && topic_pattern_match(rt->status_pat, in->topic, &m) && m.n == 1) {
        char key[256];
        if (m.cap[0].len < sizeof key) {
            memcpy(key, m.cap[0].ptr, m.cap[0].len);
            key[m.cap[0].len] = '\0';
            alert_engine_force_inactive(rt->engine, key, now, &rt->ev);
        }
    } else {
        alert_engine_on_message(rt->engine, in->topic, in->json, now, &rt->ev);
    }
    flush_events(rt);
}

void alert_runtime_tick(struct alert_runtime *rt, uint64_t now_ms)
{
    if (!rt || !rt->ready)
        return;
    alert_engine_tick(rt->engine, now_ms, &rt->ev);
    flush_events(rt);
}

struct join_ctx {
    const struct alert_runtime *rt;
    struct fanout *f;
    struct conn *c;
    const char *room;
};

static int send_if_first_room(const struct alert *a, void *ud)
{
    struct join_ctx *j = ud;
    if (!may_see(j->rt, j->c, a->key))
        return 0;
    for (size_t i = 0; i < a->n_rooms; i++) {
        if (strcmp(a->rooms[i], j->room) == 0)
            break;
        if (conn_find_sub(j->c, a->rooms[i]))
            return 0;    /* had (or will have) it through an earlier room */
    }
    cJSON *data = alert_to_json(a);
    if (data)
        fanout_send_control(j->f, j->c, alert_event_kind_name(ALERT_EV_RAISED), data);
    cJSON_Delete(data);
    return 0;
}

static void send_shown_state(struct alert_runtime *rt, struct conn *c, const char *room);

/* fanout's join state: the active alerts of the joined room, except those c has had
 * through one of the alert's earlier rooms it is also a member of. */
static void send_room_state(void *ud, struct conn *c, struct sub *s)
{
    struct alert_runtime *rt = ud;
    if (rt->cl) {
        send_shown_state(rt, c, s->room->name);
        return;
    }
    if (!alert_engine_count_active(rt->engine))
        return;
    const char *room = s->room->name;
    struct join_ctx j = {rt, rt->f, c, room};
    alert_engine_foreach_active(rt->engine, room, send_if_first_room, &j);
}

static bool member_of_any(struct conn *c, const struct alert *a)
{
    for (size_t i = 0; i < a->n_rooms; i++)
        if (conn_find_sub(c, a->rooms[i]))
            return true;
    return false;
}

/* With an auth section, acks need an identity allowed by auth.ack_roles, and
 * acknowledged_by is its subject: never the client's text (issue 13). */
static const char *token_ack_identity(const struct alert_runtime *rt, const struct conn *c,
                                      const cJSON *by, char *who, size_t wholen)
{
    who[0] = '\0';
    if (!access_may_ack(rt->cfg->auth, c->identity))
        return c->identity ? "your identity may not acknowledge alerts (auth.ack_roles)"
                           : "acknowledging alerts needs a token or an API key";
    if (strlen(c->identity->subject) >= wholen)
        return "the identity is too long";
    snprintf(who, wholen, "%s", c->identity->subject);
    if (by && strcmp(by->valuestring, who) != 0)
        return "\"by\" must be your own identity (the token's subject), or absent";
    return NULL;
}

/* Ack rights come from configuration until tokens exist (issue 14.5): the endpoint's
 * 'ack' says whether its clients may acknowledge, its 'identity' capture names them, and
 * "by" is accepted only when it equals that name. Fills who ("" = anonymous); returns
 * NULL or the refusal's message. */
static const char *ack_identity(const struct alert_runtime *rt, const struct conn *c,
                                const cJSON *by, char *who, size_t wholen)
{
    struct topic_match m;
    const struct cfg_endpoint *ep = rt && c->path ? config_find_endpoint(rt->cfg, c->path, &m) : NULL;
    who[0] = '\0';
    if (!ep || ep->ack == CFG_ACK_NONE)
        return "this endpoint may not acknowledge alerts (endpoint 'ack: none')";
    if (rt->cfg->auth)
        return token_ack_identity(rt, c, by, who, wholen);
    if (ep->identity_capture >= 0 && (size_t)ep->identity_capture < m.n) {
        const struct topic_slice *cap = &m.cap[ep->identity_capture];
        if (cap->len >= wholen)
            return "the endpoint's identity is too long";
        memcpy(who, cap->ptr, cap->len);
        who[cap->len] = '\0';
    }
    if (by && strcmp(by->valuestring, who) != 0)
        return who[0] ? "\"by\" must be your own identity (the endpoint's capture), or absent"
                      : "this endpoint has no identity: send ack_alert without \"by\"";
    return NULL;
}

static void send_acked(struct fanout *f, struct conn *c, const char *alert_id, bool already,
                       const cJSON *id)
{
    cJSON *top = cJSON_CreateObject();
    if (!top)
        return;
    cJSON_AddStringToObject(top, "alert_id", alert_id);
    cJSON_AddBoolToObject(top, "already_acknowledged", already);
    if (id)
        cJSON_AddItemToObject(top, "id", cJSON_Duplicate(id, true));
    fanout_send_frame(f, c, "acked", top, NULL);
    cJSON_Delete(top);
}

static void cluster_ack(struct alert_runtime *rt, struct fanout *f, struct conn *c,
                        const char *aid, const cJSON *by, const cJSON *id);

void alert_runtime_handle_ack(struct alert_runtime *rt, struct fanout *f, struct conn *c,
                              const cJSON *req, const cJSON *id)
{
    const cJSON *aid = cJSON_GetObjectItemCaseSensitive(req, "alert_id");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(req, "by");
    if (!cJSON_IsString(aid) || !aid->valuestring[0]) {
        reply_error(f, c, id, TB_ERR_BAD_FIELD, "\"alert_id\" must be a non-empty string");
        return;
    }
    if (by && (!cJSON_IsString(by) || strlen(by->valuestring) > BY_MAX)) {
        reply_error(f, c, id, TB_ERR_BAD_FIELD, "\"by\" must be a string of at most 128 bytes");
        return;
    }
    if (rt && rt->cl) {
        cluster_ack(rt, f, c, aid->valuestring, by, id);
        return;
    }
    const struct alert *a = rt ? alert_engine_find(rt->engine, aid->valuestring) : NULL;
    if (!a) {
        reply_error(f, c, id, TB_ERR_UNKNOWN_ALERT, "no active alert has that id");
        return;
    }
    /* Only a client that can see the alert may acknowledge it for everyone. */
    if (!member_of_any(c, a) || !may_see(rt, c, a->key)) {
        reply_error(f, c, id, TB_ERR_NOT_ALLOWED, "not a member of any room of that alert");
        return;
    }
    char who[BY_MAX + 1];
    const char *refused = ack_identity(rt, c, by, who, sizeof who);
    if (refused) {
        reply_error(f, c, id, rt->cfg->auth ? TB_ERR_FORBIDDEN : TB_ERR_NOT_ALLOWED, refused);
        return;
    }
    int rc = alert_engine_ack(rt->engine, aid->valuestring, who[0] ? who : NULL, tb_now_ms(), &rt->ev);
    send_acked(f, c, aid->valuestring, rc == 1, id);
    flush_events(rt);
}

void alert_runtime_stats(const struct alert_runtime *rt, struct alert_runtime_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!rt)
        return;
    out->active = alert_engine_count_active(rt->engine);
    out->raised = rt->raised;
    out->cleared = rt->cleared;
    out->acknowledged = rt->acknowledged;
    out->restored = rt->restored;
    out->restore_refused = rt->restore_refused;
    out->ready = rt->ready;
    out->peer_applied = rt->peer_applied;
    out->acks_forwarded = rt->acks_forwarded;
    out->taken_over = rt->taken_over;
}

/* ---- start-up: no rule fires before the retained state is read --------------------- */

static void defer(struct alert_runtime *rt, const struct inbound *in)
{
    if (rt->n_deferred == DEFER_MAX) {
        if (rt->deferred_dropped++ == 0)
            LOG_WARN("alert", "more than %d messages before the retained alert state was read: "
                     "later ones are not evaluated by the alert rules", DEFER_MAX);
        return;
    }
    if (rt->n_deferred == rt->cap_deferred) {
        size_t cap = rt->cap_deferred ? rt->cap_deferred * 2 : 64;
        struct deferred *v = realloc(rt->deferred, cap * sizeof *v);
        if (!v)
            return;
        rt->deferred = v;
        rt->cap_deferred = cap;
    }
    struct deferred *d = &rt->deferred[rt->n_deferred];
    d->topic = strdup(in->topic);
    d->payload = malloc(in->raw_len + 1);
    if (!d->topic || !d->payload) {
        free(d->topic);
        free(d->payload);
        return;
    }
    memcpy(d->payload, in->raw, in->raw_len);
    d->payload[in->raw_len] = '\0';
    d->len = in->raw_len;
    d->at = tb_now_ms();
    rt->n_deferred++;
}

static void takeover(struct alert_runtime *rt);

void alert_runtime_set_ready(struct alert_runtime *rt)
{
    if (!rt || rt->ready)
        return;
    rt->ready = true;
    LOG_INFO("alert", "retained alert state read (%zu active); evaluating the rules (%zu messages held back)",
             alert_engine_count_active(rt->engine), rt->n_deferred);
    for (size_t i = 0; i < rt->n_deferred; i++) {
        struct deferred *d = &rt->deferred[i];
        struct inbound in;
        inbound_init(&in, d->topic, d->payload, d->len);
        evaluate(rt, &in, d->at);
        inbound_free(&in);
        free(d->topic);
        free(d->payload);
    }
    free(rt->deferred);
    rt->deferred = NULL;
    rt->n_deferred = rt->cap_deferred = 0;
    if (rt->cl)
        takeover(rt);
}

bool alert_runtime_ready(const struct alert_runtime *rt)
{
    return rt && rt->ready;
}

/* ---- cluster: only the owner announces; everyone shows what was published ------------ */

void alert_runtime_set_cluster(struct alert_runtime *rt, const struct cluster *cl)
{
    if (!rt)
        return;
    rt->cl = cl;
    if (cl && !rt->shown)
        rt->shown = cJSON_CreateObject();
}

static void add_instance(const struct alert_runtime *rt, cJSON *data)
{
    if (rt->cl)
        cJSON_AddStringToObject(data, "instance", cluster_self(rt->cl));
}

static const cJSON *shown_entry(const struct alert_runtime *rt, const char *id)
{
    return id[0] && rt->shown ? cJSON_GetObjectItemCaseSensitive(rt->shown, id) : NULL;
}

static const cJSON *shown_state(const struct alert_runtime *rt, const char *id)
{
    return cJSON_GetObjectItemCaseSensitive(shown_entry(rt, id), "state");
}

/* Takes 'state' (an alert as clients see it). */
static void shown_set(struct alert_runtime *rt, const char *id, const char *topic, cJSON *state)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !state || !cJSON_AddStringToObject(e, "topic", topic)) {
        cJSON_Delete(e);
        cJSON_Delete(state);
        return;
    }
    cJSON_AddItemToObject(e, "state", state);
    if (cJSON_GetObjectItemCaseSensitive(rt->shown, id))
        cJSON_ReplaceItemInObjectCaseSensitive(rt->shown, id, e);
    else
        cJSON_AddItemToObject(rt->shown, id, e);
}

/* What clients see of a published state: without the broker-side fields. */
static cJSON *client_view(const cJSON *j)
{
    cJSON *v = cJSON_Duplicate(j, true);
    cJSON_DeleteItemFromObjectCaseSensitive(v, "origin");
    cJSON_DeleteItemFromObjectCaseSensitive(v, "sig");
    cJSON_DeleteItemFromObjectCaseSensitive(v, "instance");
    return v;
}

static const char *json_string(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define ROOMS_MAX 64

/* The room names of a shown state; returns how many (at most ROOMS_MAX). */
static size_t json_rooms(const cJSON *state, char **out)
{
    size_t n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(state, "rooms"))
        if (cJSON_IsString(r) && n < ROOMS_MAX)
            out[n++] = r->valuestring;
    return n;
}

static void fan_out_json(struct alert_runtime *rt, const char *type, const cJSON *state)
{
    char *rooms[ROOMS_MAX];
    size_t n = json_rooms(state, rooms);
    fan_out_rooms(rt, type, rooms, n, json_string(state, "key"), state);
}

/* A cleared alert's state, without a retain flag, published on its topic before the
 * empty retained message that removes it: peers announce the clear with its real
 * cleared_at and reason (an empty message carries neither). */
static void publish_cleared_notice(struct alert_runtime *rt, const char *topic, const cJSON *data)
{
    cJSON *copy = cJSON_Duplicate(data, true);
    char *text = copy ? print_state(rt, copy) : NULL;
    if (text && rt->mqtt)
        mqtt_client_publish(rt->mqtt, topic, text, strlen(text), 1, false);
    free(text);
    cJSON_Delete(copy);
}

/* flush_events in a cluster: false when the event is not announced (the key belongs to
 * another member, or a raise of an alert already published by a previous owner). */
static bool flush_cluster_event(struct alert_runtime *rt, const struct alert_event *e, cJSON *data)
{
    const struct alert *a = &e->alert;
    if (!cluster_owns(rt->cl, a->key))
        return false;
    if (e->kind == ALERT_EV_RAISED && shown_entry(rt, a->id)) {
        /* published before (by a previous owner): no re-raise; continue its state */
        alert_engine_adopt(rt->engine, shown_state(rt, a->id));
        return false;
    }
    const char *topic = a->publish_topic ? a->publish_topic : "";
    if (e->kind == ALERT_EV_CLEARED) {
        publish_cleared_notice(rt, topic, data);
        cJSON_DeleteItemFromObjectCaseSensitive(rt->shown, a->id);
    } else {
        shown_set(rt, a->id, topic, cJSON_Duplicate(data, true));
    }
    return true;
}

static const char *shown_id_by_topic(const struct alert_runtime *rt, const char *topic)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, rt->shown) {
        const char *t = json_string(e, "topic");
        if (t && strcmp(t, topic) == 0)
            return e->string;
    }
    return NULL;
}

/* A peer cleared an alert: 'notice' is its cleared state, or NULL for the empty retained
 * message alone (then the clear is announced from the last state we showed). */
static void peer_cleared(struct alert_runtime *rt, const char *topic, const cJSON *notice)
{
    char id[1024] = "";
    if (notice)
        restored_id(notice, id, sizeof id);
    else if (shown_id_by_topic(rt, topic))
        snprintf(id, sizeof id, "%s", shown_id_by_topic(rt, topic));
    const cJSON *state = shown_state(rt, id);
    if (!state)
        return;    /* not shown here (or the notice came first and this is its empty message) */
    cJSON *data = notice ? client_view(notice) : cJSON_Duplicate(state, true);
    if (!data)
        return;
    if (!notice) {
        cJSON_ReplaceItemInObjectCaseSensitive(data, "state", cJSON_CreateString("cleared"));
        cJSON_ReplaceItemInObjectCaseSensitive(data, "cleared_at", cJSON_CreateNumber((double)tb_wall_ms()));
        cJSON_ReplaceItemInObjectCaseSensitive(data, "reason", cJSON_CreateString("condition cleared"));
    }
    alert_engine_forget(rt->engine, id);
    fan_out_json(rt, alert_event_kind_name(ALERT_EV_CLEARED), data);
    cJSON_DeleteItemFromObjectCaseSensitive(rt->shown, id);
    rt->peer_applied++;
    cJSON_Delete(data);
}

static void refuse_state(struct alert_runtime *rt, const char *topic, const char *why)
{
    rt->restore_refused++;
    if (log_ratelimit_allow_capped("alert-restore-refused", topic, 60000, 5))
        LOG_WARN("alert", "alert state on %s not applied: %s (%llu refused so far)", topic, why,
                 (unsigned long long)rt->restore_refused);
}

/* An alert state on the broker, in a cluster: retained (read at start) or live (a peer's
 * publish, or our own coming back, which is ignored). Every member shows what the owner
 * published: new -> "alert", newly acknowledged -> "alert_acknowledged", cleared ->
 * "alert_cleared"; the engine adopts the published state so a takeover continues it. */
static void peer_state(struct alert_runtime *rt, const struct inbound *in, bool retained)
{
    if (!in->raw_len) {
        peer_cleared(rt, in->topic, NULL);
        return;
    }
    if (!cJSON_IsObject(in->json)) {
        refuse_state(rt, in->topic, "not a JSON object");
        return;
    }
    const char *inst = json_string(in->json, "instance");
    if (!retained && inst && strcmp(inst, cluster_self(rt->cl)) == 0)
        return;    /* our own publish coming back */
    char id[1024];
    restored_id(in->json, id, sizeof id);
    const cJSON *prev = shown_state(rt, id);
    const char *refused = state_refusal(rt, in->json, prev != NULL);
    if (refused) {
        refuse_state(rt, in->topic, refused);
        return;
    }
    const char *st = json_string(in->json, "state");
    if (st && strcmp(st, "cleared") == 0) {
        if (!retained)
            peer_cleared(rt, in->topic, in->json);
        return;
    }
    if (alert_engine_adopt(rt->engine, in->json) < 0) {
        if (log_ratelimit_allow_capped("alert-restore", in->topic, 60000, 20))
            LOG_WARN("alert", "alert state on %s is not an active alert of a current rule; ignored", in->topic);
        return;
    }
    bool had = prev != NULL;
    bool was_acked = had && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(prev, "acknowledged"));
    shown_set(rt, id, in->topic, client_view(in->json));
    const cJSON *now = shown_state(rt, id);
    if (!now)
        return;
    if (retained)
        rt->restored++;
    else
        rt->peer_applied++;
    if (!had)
        fan_out_json(rt, alert_event_kind_name(ALERT_EV_RAISED), now);
    else if (!was_acked && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(now, "acknowledged")))
        fan_out_json(rt, alert_event_kind_name(ALERT_EV_ACKED), now);
}

/* Joining a room in a cluster: the published alerts of that room (our engine may hold
 * alerts of keys it does not own that nobody announced). */
static void send_shown_state(struct alert_runtime *rt, struct conn *c, const char *room)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, rt->shown) {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(e, "state");
        char *rooms[ROOMS_MAX];
        size_t n = json_rooms(state, rooms), i = 0;
        while (i < n && strcmp(rooms[i], room) != 0)
            i++;
        if (i < n && !has_earlier_room(c, rooms, i) && may_see(rt, c, json_string(state, "key")))
            fanout_send_control(rt->f, c, alert_event_kind_name(ALERT_EV_RAISED), state);
    }
}

/* Asks the owner to acknowledge: {"alert_id","by","origin","instance"[,"sig"]} on
 * telebridge/ack/<alert id> (QoS 1, not retained), signed like the states. */
static void forward_ack(struct alert_runtime *rt, const char *aid, const char *who)
{
    cJSON *req = cJSON_CreateObject();
    if (!req || !rt->mqtt) {
        cJSON_Delete(req);
        return;
    }
    cJSON_AddStringToObject(req, "alert_id", aid);
    cJSON_AddItemToObject(req, "by", who[0] ? cJSON_CreateString(who) : cJSON_CreateNull());
    char *text = print_state(rt, req);
    char topic[1200];
    snprintf(topic, sizeof topic, "telebridge/ack/%s", strpbrk(aid, "+#") ? "-" : aid);
    if (text && mqtt_client_publish(rt->mqtt, topic, text, strlen(text), 1, false) == 0)
        rt->acks_forwarded++;
    else
        LOG_WARN("alert", "could not forward the acknowledgement of %s to its owner", aid);
    free(text);
    cJSON_Delete(req);
}

/* The owner acknowledges in its engine (which republishes); if the engine lacks the
 * alert (published by a previous owner, not adopted yet), it adopts the shown state. */
static int owner_ack(struct alert_runtime *rt, const char *aid, const char *who)
{
    int rc = alert_engine_ack(rt->engine, aid, who && who[0] ? who : NULL, tb_now_ms(), &rt->ev);
    if (rc < 0 && shown_state(rt, aid) && alert_engine_adopt(rt->engine, shown_state(rt, aid)) == 0)
        rc = alert_engine_ack(rt->engine, aid, who && who[0] ? who : NULL, tb_now_ms(), &rt->ev);
    flush_events(rt);
    return rc;
}

static void cluster_ack(struct alert_runtime *rt, struct fanout *f, struct conn *c,
                        const char *aid, const cJSON *by, const cJSON *id)
{
    const cJSON *state = shown_state(rt, aid);
    if (!state) {
        reply_error(f, c, id, TB_ERR_UNKNOWN_ALERT, "no active alert has that id");
        return;
    }
    char *rooms[ROOMS_MAX];
    size_t n = json_rooms(state, rooms), i = 0;
    while (i < n && !conn_find_sub(c, rooms[i]))
        i++;
    if (i == n) {
        reply_error(f, c, id, TB_ERR_NOT_ALLOWED, "not a member of any room of that alert");
        return;
    }
    char who[BY_MAX + 1];
    const char *refused = ack_identity(rt, c, by, who, sizeof who);
    if (refused) {
        reply_error(f, c, id, TB_ERR_NOT_ALLOWED, refused);
        return;
    }
    const char *key = json_string(state, "key");
    bool already = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "acknowledged"));
    if (key && cluster_owns(rt->cl, key)) {
        int rc = owner_ack(rt, aid, who);
        send_acked(f, c, aid, rc == 1, id);
        return;
    }
    if (!already)
        forward_ack(rt, aid, who);
    send_acked(f, c, aid, already, id);
}

void alert_runtime_on_forwarded_ack(struct alert_runtime *rt, const char *payload, size_t len)
{
    if (!rt || !rt->cl)
        return;
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const char *aid = json_string(j, "alert_id");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(j, "by");
    const char *refused = !cJSON_IsObject(j) || !aid ? "not {\"alert_id\":..}"
                          : by && !cJSON_IsNull(by) && (!cJSON_IsString(by) || strlen(by->valuestring) > BY_MAX)
                              ? "\"by\" is not a string of at most 128 bytes"
                              : state_refusal(rt, j, true);
    if (refused) {
        if (log_ratelimit_allow("alert-ack-refused", 60000))
            LOG_WARN("alert", "forwarded acknowledgement refused: %s", refused);
        cJSON_Delete(j);
        return;
    }
    const struct alert *a = alert_engine_find(rt->engine, aid);
    const char *key = a ? a->key : json_string(shown_state(rt, aid), "key");
    if (key && cluster_owns(rt->cl, key))
        owner_ack(rt, aid, cJSON_IsString(by) ? by->valuestring : NULL);
    else
        LOG_DEBUG("alert", "forwarded acknowledgement of %s: not ours (or unknown); ignored", aid);
    cJSON_Delete(j);
}

struct id_list {
    char **v;
    size_t n, cap;
};

static int collect_id(const struct alert *a, void *ud)
{
    struct id_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return 1;
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(a->id)))
        l->n++;
    return 0;
}

/* Alerts our engine holds for keys we now own that nobody published (their owner died
 * before it could): published and announced now, as raises. */
static void take_over_raises(struct alert_runtime *rt)
{
    struct id_list l = {0};
    alert_engine_foreach_active(rt->engine, NULL, collect_id, &l);
    for (size_t i = 0; i < l.n; i++) {
        const struct alert *a = alert_engine_find(rt->engine, l.v[i]);
        if (a && !shown_entry(rt, a->id) && cluster_owns(rt->cl, a->key)) {
            cJSON *data = alert_to_json(a);
            if (data) {
                LOG_INFO("alert", "took over %s (raised here, never published by its owner)", a->id);
                shown_set(rt, a->id, a->publish_topic ? a->publish_topic : "", cJSON_Duplicate(data, true));
                fan_out(rt, alert_event_kind_name(ALERT_EV_RAISED), a, data);
                publish_state(rt, a, data, true);
                rt->raised++;
                rt->taken_over++;
            }
            cJSON_Delete(data);
        }
        free(l.v[i]);
    }
    free(l.v);
}

/* Published alerts of keys we now own that our engine has cleared meanwhile (their old
 * owner died before publishing the clear): cleared on the broker and announced now. */
static void take_over_clears(struct alert_runtime *rt)
{
    cJSON *e = rt->shown ? rt->shown->child : NULL;
    while (e) {
        cJSON *next = e->next;
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(e, "state");
        const char *key = json_string(state, "key"), *topic = json_string(e, "topic");
        if (key && topic && cluster_owns(rt->cl, key) && !alert_engine_find(rt->engine, e->string)) {
            cJSON *data = cJSON_Duplicate(state, true);
            if (data) {
                LOG_INFO("alert", "took over %s: cleared here, its clear never published", e->string);
                cJSON_ReplaceItemInObjectCaseSensitive(data, "state", cJSON_CreateString("cleared"));
                cJSON_ReplaceItemInObjectCaseSensitive(data, "cleared_at", cJSON_CreateNumber((double)tb_wall_ms()));
                cJSON_ReplaceItemInObjectCaseSensitive(data, "reason", cJSON_CreateString("condition cleared"));
                publish_cleared_notice(rt, topic, data);
                if (rt->mqtt)
                    mqtt_client_publish(rt->mqtt, topic, NULL, 0, 1, true);
                fan_out_json(rt, alert_event_kind_name(ALERT_EV_CLEARED), data);
                rt->cleared++;
                rt->taken_over++;
                cJSON_Delete(data);
            }
            cJSON_Delete(cJSON_DetachItemViaPointer(rt->shown, e));
        }
        e = next;
    }
}

static void takeover(struct alert_runtime *rt)
{
    take_over_raises(rt);
    take_over_clears(rt);
}

void alert_runtime_on_membership(struct alert_runtime *rt)
{
    if (rt && rt->cl && rt->ready)
        takeover(rt);
}
