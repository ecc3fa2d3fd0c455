/* bridge: the service layer - connection life cycle, the MQTT drain, the tick and the
 * config swap (see bridge.h). Service thread only. */
#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "access.h"
#include "alert_runtime.h"
#include "pmd.h"
#include "fanout.h"
#include "gate.h"
#include "log.h"
#include "membership.h"
#include "mqtt_client.h"
#include "reply.h"
#include "room.h"
#include "session.h"
#include "subscribe.h"
#include "uplink_runtime.h"
#include "writer.h"

#define HISTORY_SWEEP_MS 5000
#define AUTH_CHECK_MS 1000      /* auth deadlines are due at most this late */

/* At most this many MQTT events per wake-up: between batches the loop writes to the
 * sockets, so a burst larger than a send queue reaches clients that keep up instead of
 * being conflated for them. */
#define MQTT_BATCH 256

/* ---- life cycle ------------------------------------------------------------------------ */

/* The room and byte bounds and the delivery mode of a config (at start and on every reload). */
static void apply_limits(struct bridge *br, const struct tb_config *cfg)
{
    fanout_set_max_rooms(br->fan, cfg->server.max_rooms);
    fanout_set_max_client_rooms(br->fan, cfg->server.max_client_rooms);
    fanout_set_delivery_once(br->fan, cfg->server.delivery == CFG_DELIVERY_ONCE);
    room_registry_set_byte_limits(br->rooms, cfg->server.max_room_bytes, cfg->server.max_stored_bytes);
    if (pmd_configure(br->pmd, cfg->server.deflate.min_bytes, cfg->server.deflate.level))
        LOG_WARN("bridge", "permessage-deflate: cannot set up zlib; frames go uncompressed");
}

/* Per-route delivery counters for cfg's routes, zeroed (routes are positions in the
 * file: a reload starts them again). Out of memory: none are counted. */
static void reset_route_counters(struct bridge *br, const struct tb_config *cfg)
{
    free(br->route_deliveries);
    br->route_deliveries = cfg->n_routes ? calloc(cfg->n_routes, sizeof *br->route_deliveries) : NULL;
    br->n_route_deliveries = br->route_deliveries ? cfg->n_routes : 0;
}

const double tb_latency_bounds_s[TB_LATENCY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                         0.5, 1, 2.5, 10};

/* A payload with a numeric "ts_ms" (publisher's wall clock): how long it took to get here.
 * Clocks of other machines may be off: future or day-old stamps are only counted. */
static void observe_latency(struct tb_latency *l, const cJSON *json)
{
    const cJSON *ts = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "ts_ms") : NULL;
    if (!cJSON_IsNumber(ts))
        return;
    double now_ms = (double)tb_wall_ms(), lat_s = (now_ms - ts->valuedouble) / 1000.0;
    if (!(lat_s >= 0 && lat_s < 86400)) {
        l->skipped++;
        return;
    }
    l->count++;
    l->sum_s += lat_s;
    for (size_t i = 0; i < TB_LATENCY_BUCKETS; i++)
        if (lat_s <= tb_latency_bounds_s[i]) {
            l->bucket[i]++;
            return;
        }
    l->over++;
}

/* fanout's authorizer: the room rules of the running config for the connection's identity
 * (every path that joins a room asks it: endpoint rooms, subscribe, patterns, sessions). */
static bool may_join(void *ud, const struct conn *c, const char *room)
{
    const struct bridge *br = ud;
    return access_may_room(br->cfg->auth, c->identity, room);
}

struct bridge *bridge_new(struct tb_config *cfg, uint64_t epoch)
{
    struct bridge *br = calloc(1, sizeof *br);
    if (!br) {
        config_unref(cfg);
        return NULL;
    }
    br->cfg = cfg;
    br->epoch = epoch;
    br->started_ms = tb_now_ms();
    notify_init(&br->notify);
    br->started_wall_ms = tb_wall_ms();
    if (!(br->rooms = room_registry_new()) || !(br->fan = fanout_new(br->rooms, &br->st)) ||
        !(br->writer = writer_new()) || !(br->pmd = pmd_new()) || !(br->subs = subscriptions_new(br->fan, cfg, epoch)) ||
        !(br->sessions = session_registry_new()) || !(br->uplink = uplink_runtime_new(br->fan, NULL))) {
        bridge_free(br);
        return NULL;
    }
    apply_limits(br, cfg);
    reset_route_counters(br, cfg);
    fanout_set_authorizer(br->fan, may_join, br);
    br->env = (struct conn_env){&br->st, br->rooms, writer_want, br->writer, &br->conn_log, br->pmd};
    br->proto = (struct protocol){cfg, br->fan, br->subs, br->sessions, NULL, br->uplink};
    return br;
}

void bridge_start_alerts(struct bridge *br, struct mqtt_client *mqtt)
{
    br->mqtt = mqtt;
    uplink_runtime_set_mqtt(br->uplink, mqtt);
    br->alerts = alert_runtime_new(br->cfg, br->fan, mqtt);
    br->proto.alerts = br->alerts;
    br->members = membership_new(br->cfg, mqtt, br->alerts, br->sessions);
}

static void free_backlog(struct bridge *br)
{
    while (br->backlog) {
        struct mqtt_event *ev = br->backlog;
        br->backlog = ev->next;
        mqtt_event_free(ev);
    }
}

void bridge_free(struct bridge *br)
{
    if (!br)
        return;
    while (br->conns.head)
        bridge_close(br, lws_container_of(br->conns.head, struct conn, in_bridge));
    free_backlog(br);
    membership_free(br->members);
    alert_runtime_free(br->alerts);
    uplink_runtime_free(br->uplink);
    session_registry_free(br->sessions);
    subscriptions_free(br->subs);
    writer_free(br->writer);
    pmd_free(br->pmd);
    fanout_free(br->fan);
    room_registry_free(br->rooms);
    router_out_free(&br->routed);
    free(br->route_deliveries);
    config_unref(br->cfg);
    free(br);
}

/* ---- connections ----------------------------------------------------------------------- */

static void send_welcome(struct bridge *br, struct conn *c, const struct cfg_endpoint *ep)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "connection_id", (double)c->id);
    cJSON_AddStringToObject(d, "endpoint", ep->path);
    cJSON_AddStringToObject(d, "path", c->path);
    cJSON *rooms = cJSON_AddArrayToObject(d, "rooms");
    for (struct sub *s = c->subs; s; s = s->conn_next)
        cJSON_AddItemToArray(rooms, cJSON_CreateString(s->room->name));
    cJSON_AddStringToObject(d, "server", "telebridge");
    cJSON_AddStringToObject(d, "version", TB_VERSION);
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%016llx", (unsigned long long)br->epoch);
    cJSON_AddStringToObject(d, "epoch", epoch);
    char ver[24];
    snprintf(ver, sizeof ver, "%016llx", (unsigned long long)br->cfg->version);
    cJSON_AddStringToObject(d, "config_version", ver);
    cJSON_AddNumberToObject(d, "heartbeat_interval_ms", (double)br->cfg->heartbeat.interval_ms);
    cJSON_AddBoolToObject(d, "client_subscriptions", ep->client_subscriptions);
    cJSON_AddBoolToObject(d, "broker_connected", br->broker_connected);
    if (c->identity) {   /* who the connection is, and until when (gate.c refreshes) */
        cJSON_AddStringToObject(d, "identity", c->identity->subject);
        if (c->identity->exp_s)
            cJSON_AddNumberToObject(d, "expires_at", (double)c->identity->exp_s * 1000.0);
    }
    fanout_send_control(br->fan, c, "welcome", d);
    cJSON_Delete(d);
}

/* An endpoint room that could not be created for this connection (max_client_rooms or
 * max_rooms): the client is told after the welcome frame and stays connected; the room
 * is joined on the next connection once it exists (routed data creates it). */
static void send_room_refused(struct bridge *br, struct conn *c, const char *room)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "code", TB_ERR_ROOM_LIMIT);
    cJSON_AddStringToObject(top, "message", "room limit reached: this room cannot be created for a client now");
    cJSON_AddStringToObject(top, "room", room);
    fanout_send_frame(br->fan, c, "error", top, NULL);
    cJSON_Delete(top);
}

/* The endpoint's rooms for this connection, rendered and authorized; returns the count. */
static size_t endpoint_rooms(struct bridge *br, const struct conn *c, const struct cfg_endpoint *ep,
                             const struct topic_match *m, char names[][256])
{
    size_t n = 0;
    struct tmpl_ctx ctx = {c->path, m, NULL};
    for (size_t i = 0; i < ep->n_rooms && n < CFG_MAX_ROOMS; i++)
        if (tmpl_render(ep->rooms[i], &ctx, names[n], 256) > 0 &&
            fanout_may_join(br->fan, c, names[n]))
            n++;
    return n;
}

/* The endpoint's envelope profile, copied into the connection (conn_enqueue applies it);
 * none (NULL) when the endpoint keeps the standard envelope, or out of memory. */
static void set_envelope(struct conn *c, const struct cfg_endpoint *ep)
{
    const struct cfg_envelope *v = &ep->envelope;
    free(c->profile);
    c->profile = NULL;
    if (!v->set || (strcmp(v->ts_field, "ts") == 0 && v->timestamp == CFG_TS_MS && !v->alert_time_field &&
                    !v->status_ok))
        return;
    struct conn_profile *p = calloc(1, sizeof *p);
    if (!p)
        return;
    snprintf(p->ts_field, sizeof p->ts_field, "%s", v->ts_field);
    p->ts_iso = v->timestamp == CFG_TS_ISO8601;
    snprintf(p->alert_time_field, sizeof p->alert_time_field, "%s", v->alert_time_field ? v->alert_time_field : "");
    snprintf(p->status_ok, sizeof p->status_ok, "%s", v->status_ok ? v->status_ok : "");
    c->profile = p;
}

/* The endpoint rooms' catch-up after welcome: their state, or the resume the URL asks for. */
static void endpoint_catch_up(struct bridge *br, struct conn *c, struct sub *const *subs, size_t n,
                              const char *query)
{
    char *scratch, err[200];
    const char *epoch;
    cJSON *since = subscribe_url_since(query, subs, n, &scratch, &epoch, err, sizeof err);
    if (err[0]) {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "code", TB_ERR_BAD_FIELD);
        cJSON_AddStringToObject(top, "message", err);
        fanout_send_frame(br->fan, c, "error", top, NULL);
        cJSON_Delete(top);
    }
    subscribe_catch_up(br->subs, c, subs, n, since, epoch);
    cJSON_Delete(since);
    free(scratch);
}

/* Joins the endpoint's rooms and queues the welcome frame and the rooms' state (or the
 * resume 'query' asks for; NULL = none): the connection is admitted (gate.c). m's
 * captures point into c->path. */
static void admit(struct bridge *br, struct conn *c, const struct cfg_endpoint *ep, const struct topic_match *m,
                  const char *query)
{
    char names[CFG_MAX_ROOMS][256];
    size_t n = endpoint_rooms(br, c, ep, m, names);
    bool refused[CFG_MAX_ROOMS] = {false};
    for (size_t i = 0; i < n; i++) {
        struct sub *s = fanout_join(br->fan, c, names[i]);
        if (s)
            s->auto_joined = true;
        else
            refused[i] = true;
    }
    send_welcome(br, c, ep);
    for (size_t i = 0; i < n; i++)
        if (refused[i])
            send_room_refused(br, c, names[i]);
    /* Room state (or resume) after the welcome frame, in the order of the endpoint's rooms. */
    struct sub *order[CFG_MAX_ROOMS];
    n = 0;
    for (struct sub *s = c->subs; s && n < CFG_MAX_ROOMS; s = s->conn_next)
        order[n++] = s;
    for (size_t i = 0; i < n / 2; i++) {
        struct sub *t = order[i];
        order[i] = order[n - 1 - i];
        order[n - 1 - i] = t;
    }
    if (query && *query) {
        endpoint_catch_up(br, c, order, n, query);
    } else {
        for (size_t i = 0; i < n; i++)
            fanout_send_room_state(br->fan, c, order[i]);
    }
    protocol_on_open(&br->proto, c);
}

struct conn *bridge_open(struct bridge *br, struct lws *wsi, const char *path)
{
    return bridge_open_with(br, wsi, path, NULL);
}

struct conn *bridge_open_with(struct bridge *br, struct lws *wsi, const char *path, const struct bridge_open_args *a)
{
    static const struct gate_cred none = {NULL, 0, false};
    struct topic_match m;
    const struct cfg_endpoint *ep = config_find_endpoint(br->cfg, path, &m);
    if (!ep)
        return NULL; /* the config changed between upgrade and now */
    const struct cfg_server *sv = &br->cfg->server;
    struct conn *c = conn_new(&br->env, wsi, ++br->next_conn_id, sv->send_queue_frames, sv->send_queue_bytes);
    if (!c || !(c->path = strdup(path))) {
        conn_free(c);
        return NULL;
    }
    if (a && a->remote && *a->remote)
        snprintf(c->remote, sizeof c->remote, "%s", a->remote);
    /* Captures point into 'path': re-match against the connection's own copy. */
    config_find_endpoint(br->cfg, c->path, &m);
    c->endpoint = (int)(ep - br->cfg->endpoints);
    set_envelope(c, ep);
    lws_dll2_add_head(&c->in_bridge, &br->conns);
    if (conn_log_allowed(c))
        LOG_INFO("ws", "connection %llu opened: endpoint=%s path=%s remote=%s", (unsigned long long)c->id,
                 ep->path, c->path, c->remote);
    /* Nothing is joined or sent before the gate admits the connection. A connection that
     * waits for its 'auth' frame is admitted without the URL's resume (it may send a
     * subscribe with since once admitted). */
    if (gate_open(br->cfg, br->fan, c, ep, &m, a && a->cred ? a->cred : &none, tb_now_ms()) == GATE_ADMIT)
        admit(br, c, ep, &m, a ? a->query : NULL);
    return c;
}

void bridge_close(struct bridge *br, struct conn *c)
{
    protocol_on_close(&br->proto, c);
    gate_conn_close(c);
    fanout_conn_close(br->fan, c);
    writer_forget(br->writer, c);
    lws_dll2_remove(&c->in_bridge);
    if (conn_log_allowed(c))
        LOG_INFO("ws", "connection %llu closed: path=%s remote=%s close_code=%d duration_s=%.1f sent=%llu conflated=%llu",
                 (unsigned long long)c->id, c->path ? c->path : "-", c->remote, c->close_code,
                 (double)(tb_now_ms() - c->connected_ms) / 1000.0, (unsigned long long)c->sent,
                 (unsigned long long)c->conflated);
    conn_free(c);
}

/* limits.client_rate: false when the frame is over the connection's rate and must not be
 * processed. The client is told (rate_limited) at most once a second; one that goes on is
 * closed with 1008. Every frame counts, pings included. */
static bool client_rate_ok(struct bridge *br, struct conn *c, uint64_t now)
{
    const struct cfg_limits *l = &br->cfg->limits;
    struct throttle_msg_rate r = {(double)l->client_rate, (double)l->client_burst, (unsigned)l->close_after};
    if (c->endpoint >= 0 && (size_t)c->endpoint < br->cfg->n_endpoints) {
        const struct cfg_endpoint *ep = &br->cfg->endpoints[c->endpoint];
        if (ep->client_rate >= 0)
            r.per_second = ep->client_rate;
        if (ep->client_burst >= 0)
            r.burst = ep->client_burst;
    }
    if (!c->rx_limit && !(c->rx_limit = calloc(1, sizeof *c->rx_limit)))
        return false;   /* out of memory: not processed rather than unlimited */
    enum throttle_verdict v = throttle_msg_check(c->rx_limit, &r, now);
    if (v == THROTTLE_PASS)
        return true;
    br->st.refused[TB_REFUSED_RATE]++;
    if (v == THROTTLE_REFUSE_TELL) {
        char msg[128];
        snprintf(msg, sizeof msg, "more than %.0f messages per second (burst %.0f): message not processed",
                 r.per_second, r.burst);
        reply_refusal(br->fan, c, NULL, TB_ERR_RATE_LIMITED, msg);
    } else if (v == THROTTLE_CLOSE && !c->closing) {
        br->st.refused[TB_REFUSED_RATE_CLOSED]++;
        if (log_ratelimit_allow_capped("rate-close", "rate-close", 10000, 20))
            LOG_INFO("ws", "connection %llu on %s closed (1008): %llu messages over limits.client_rate",
                     (unsigned long long)c->id, c->path, (unsigned long long)c->rx_limit->refused);
        conn_close(c, TB_CLOSE_POLICY, "message rate limit exceeded");
    }
    return false;
}

void bridge_queue_depth(const struct bridge *br, struct bridge_queues *out)
{
    *out = (struct bridge_queues){0};
    for (const struct lws_dll2 *d = br->conns.head; d; d = d->next) {
        const struct conn *c = lws_container_of(d, struct conn, in_bridge);
        out->frames += c->q_len;
        out->bytes += c->q_bytes;
        if (c->q_len > out->max_frames)
            out->max_frames = c->q_len;
    }
}

void bridge_on_client_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary)
{
    c->last_rx_ms = tb_now_ms();
    if (c->auth_deadline_ms) {  /* waiting for its 'auth' frame: nothing else is read */
        if (c->closing)
            return;
        struct topic_match m;
        const struct cfg_endpoint *ep = config_find_endpoint(br->cfg, c->path, &m);
        if (gate_auth_frame(br->cfg, br->fan, c, binary ? "" : data, binary ? 0 : len, c->last_rx_ms) == GATE_ADMIT && ep)
            admit(br, c, ep, &m, NULL);
        return;
    }
    if (c->closing && c->flush_before_close)
        return;  /* refused by the gate: its requests are not served while it closes */
    if (!client_rate_ok(br, c, c->last_rx_ms))
        return;
    protocol_handle_frame(&br->proto, c, data, len, binary);
}

void bridge_endpoint_counts(const struct bridge *br, size_t *counts)
{
    memset(counts, 0, br->cfg->n_endpoints * sizeof *counts);
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head((struct lws_dll2_owner *)&br->conns)) {
        const struct conn *c = lws_container_of(d, struct conn, in_bridge);
        if (c->endpoint >= 0 && (size_t)c->endpoint < br->cfg->n_endpoints)
            counts[c->endpoint]++;
    } lws_end_foreach_dll(d);
}

void bridge_begin_shutdown(struct bridge *br)
{
    br->stopping = true;
    notify_stopping(&br->notify);
    LOG_INFO("main", "shutting down: closing %zu connections", bridge_conn_count(br));
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&br->conns)) {
        conn_close(lws_container_of(d, struct conn, in_bridge), TB_CLOSE_GOING_AWAY, "server shutting down");
    } lws_end_foreach_dll(d);
}

/* ---- MQTT ------------------------------------------------------------------------------ */

/* sessions.validate: a session room gets routed data only for an id this bridge issued
 * (session_issued); other deliveries are counted and logged, rate-limited per topic. */
static bool session_room_ok(struct bridge *br, const char *room, const char *topic)
{
    const struct cfg_sessions *cs = &br->cfg->sessions;
    if (!cs->enabled || !cs->validate)
        return true;
    const char *sid = session_of_room(cs, room);
    if (!sid || session_issued(br->sessions, sid))
        return true;
    br->st.sessions_unknown++;
    if (log_ratelimit_allow_capped("session-unknown", topic, 60000, 20))
        LOG_WARN("session", "%s: session '%.64s' was not issued by this bridge; not routed "
                 "(sessions.validate)", topic, sid);
    return false;
}

/* Hands one message's deliveries to fanout, one route at a time (a route's deliveries are
 * adjacent): its keep_last key is made once, and its rooms are named together. */
static void deliver_routed(struct bridge *br, struct inbound *in)
{
    const struct router_out *out = &br->routed;
    const char *rooms[CFG_MAX_ROOMS];
    char keybuf[512];
    fanout_message_begin(br->fan, out->n);
    for (size_t i = 0; i < out->n;) {
        const struct cfg_route *route = out->v[i].route;
        size_t n = 0;
        for (; i < out->n && out->v[i].route == route && n < CFG_MAX_ROOMS; i++)
            if (session_room_ok(br, out->v[i].room, in->topic)) {
                rooms[n++] = out->v[i].room;
                if (out->v[i].route_index < br->n_route_deliveries)
                    br->route_deliveries[out->v[i].route_index]++;   /* /metrics, per route */
            }
        if (!n)
            continue;
        const char *key = router_keep_key(route, in, keybuf, sizeof keybuf);
        fanout_deliver_rooms(br->fan, route, key, rooms, n, in->topic, in->data, in->data_len);
    }
}

static void on_broker_state(struct bridge *br, bool up, int rc)
{
    if (br->broker_connected == up)
        return;
    br->broker_connected = up;
    br->broker_changed_wall_ms = tb_wall_ms();
    if (up) {
        LOG_INFO("mqtt", "broker connected");
    } else {
        br->broker_disconnects++;
        LOG_WARN("mqtt", "broker connection lost (rc %d); reconnecting with backoff", rc);
    }
}

static void handle_event(struct bridge *br, struct mqtt_event *ev)
{
    if (ev->kind != MQTT_EV_MESSAGE) {
        on_broker_state(br, ev->kind == MQTT_EV_CONNECTED, ev->rc);
        if (ev->kind == MQTT_EV_CONNECTED)
            membership_on_connected(br->members, tb_now_ms());
        return;
    }
    if (membership_on_event(br->members, br->cfg, ev))
        return;    /* the bridge's own topics: not telemetry */
    br->st.received++;
    if (ev->payload_len > br->cfg->server.max_payload_bytes) {
        /* not routed, not stored, not evaluated: one payload must not take the memory */
        br->st.payloads_refused++;
        if (log_ratelimit_allow_capped("max-payload", ev->topic, 60000, 20))
            LOG_WARN("bridge", "%s: payload of %zu bytes refused (server.max_payload_bytes = %zu)",
                     ev->topic, (size_t)ev->payload_len, br->cfg->server.max_payload_bytes);
        return;
    }
    if (session_on_mqtt(br->sessions, &br->cfg->sessions, br->mqtt, ev) ||
        uplink_runtime_on_mqtt(br->uplink, br->cfg, ev))
        return;
    struct inbound in;
    inbound_init(&in, ev->topic, ev->payload, ev->payload_len);
    observe_latency(&br->latency, in.json);
    /* Alert state (our own retained publishes coming back) is routed only when a route
     * asks for it, and is never counted as unrouted or non-JSON telemetry. */
    if (!alert_runtime_owns_topic(br->alerts, ev->topic) || router_matches(br->cfg, ev->topic)) {
        router_route(br->cfg, &in, &br->routed, &br->st);
        deliver_routed(br, &in);
    }
    alert_runtime_on_message(br->alerts, &in, ev->retain);
    inbound_free(&in);
}

bool bridge_process_mqtt(struct bridge *br)
{
    if (!br->mqtt)
        return false;
    if (!br->backlog)
        br->backlog = mqtt_client_drain(br->mqtt);
    for (int n = 0; br->backlog && n < MQTT_BATCH; n++) {
        struct mqtt_event *ev = br->backlog;
        br->backlog = ev->next;
        handle_event(br, ev);
        mqtt_event_free(ev);
    }
    if (!br->backlog) /* events that arrived meanwhile: the MQTT thread wakes us only once */
        br->backlog = mqtt_client_drain(br->mqtt);
    return br->backlog != NULL;
}

/* ---- tick ------------------------------------------------------------------------------ */

static void send_heartbeats(struct bridge *br)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "timestamp", (double)tb_wall_ms());
    cJSON_AddStringToObject(d, "server_status", br->broker_connected ? "ok" : "degraded");
    cJSON_AddStringToObject(d, "broker", br->broker_connected ? "connected" : "disconnected");
    cJSON_AddNumberToObject(d, "connections", (double)bridge_conn_count(br));
    cJSON_AddNumberToObject(d, "uptime_s", (double)(tb_now_ms() - br->started_ms) / 1000.0);
    struct tb_msg *m = fanout_build_control(br->fan, "heartbeat", NULL, d); /* built once, shared */
    if (m) {
        lws_start_foreach_dll(struct lws_dll2 *, it, lws_dll2_get_head(&br->conns)) {
            conn_enqueue(lws_container_of(it, struct conn, in_bridge), m, NULL, false);
        } lws_end_foreach_dll(it);
    }
    msg_unref(m);
    cJSON_Delete(d);
}

struct sweep_ctx {
    uint64_t now_ms;
    struct room *idle[64];       /* rooms left with nothing: freed after the walk */
    size_t n_idle;
};

static void sweep_room(struct room *room, void *ud)
{
    struct sweep_ctx *x = ud;
    size_t dropped = room_history_expire(room, x->now_ms) + room_keyed_expire(room, x->now_ms);
    if (dropped && !room_has_members(room) && !room_has_state(room) &&
        x->n_idle < sizeof x->idle / sizeof x->idle[0])
        x->idle[x->n_idle++] = room;
}

/* history_ttl frees memory too, not only resume decisions: every few seconds expired
 * history entries are dropped, and rooms left with nothing are freed. */
static void sweep_history(struct bridge *br, uint64_t now_ms)
{
    if (now_ms < br->next_sweep_ms)
        return;
    br->next_sweep_ms = now_ms + HISTORY_SWEEP_MS;
    struct sweep_ctx x = {.now_ms = now_ms};
    room_foreach(br->rooms, sweep_room, &x);
    for (size_t i = 0; i < x.n_idle; i++)
        room_release_if_idle(br->rooms, x.idle[i]);
}

/* Authentication deadlines (gate.c), once a second, only with an auth section. */
static void check_auth(struct bridge *br, uint64_t now_ms)
{
    if (!br->cfg->auth || now_ms < br->next_auth_check_ms)
        return;
    br->next_auth_check_ms = now_ms + AUTH_CHECK_MS;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&br->conns)) {
        gate_check(br->cfg, br->fan, lws_container_of(d, struct conn, in_bridge), now_ms);
    } lws_end_foreach_dll(d);
}

void bridge_tick(struct bridge *br, uint64_t now_ms)
{
    log_budget_flush(&br->conn_log, now_ms, CONN_LOG_WINDOW_MS, "ws", "connection events");
    sweep_history(br, now_ms);
    check_auth(br, now_ms);
    membership_tick(br->members, now_ms);
    if (br->cfg->sessions.enabled)
        session_tick(br->sessions, &br->cfg->sessions, br->mqtt, tb_wall_ms());
    alert_runtime_tick(br->alerts, now_ms);
    uplink_runtime_tick(br->uplink, now_ms);
    uint64_t every = br->cfg->heartbeat.interval_ms;
    if (every && !br->stopping) {
        if (!br->next_heartbeat_ms)
            br->next_heartbeat_ms = now_ms + every;
        if (now_ms >= br->next_heartbeat_ms) {
            br->next_heartbeat_ms = now_ms + every;
            send_heartbeats(br);
        }
    }
}

/* ---- config swap ----------------------------------------------------------------------- */

/* The reloaded room rules (auth.rooms) apply to the rooms a connection already holds: it
 * leaves those its identity may no longer see and is told (error "forbidden" with the room). */
static void leave_forbidden_rooms(struct bridge *br, struct conn *c)
{
    if (!br->cfg->auth)
        return;
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->conn_next;
        if (fanout_may_join(br->fan, c, s->room->name))
            continue;
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "code", TB_ERR_FORBIDDEN);
        cJSON_AddStringToObject(top, "message", "no longer permitted after a configuration reload; left");
        cJSON_AddStringToObject(top, "room", s->room->name);
        fanout_send_frame(br->fan, c, "error", top, NULL);
        cJSON_Delete(top);
        s->auto_joined = false;
        s->how = 0;
        conn_unsubscribe(c, s);
    }
}

/* Recomputes the endpoint rooms of one connection under the new config. */
static void rejoin(struct bridge *br, struct conn *c, const struct tb_config *old)
{
    const char *ep_path = c->endpoint >= 0 ? old->endpoints[c->endpoint].path : NULL;
    const struct cfg_endpoint *ep = ep_path ? config_endpoint_by_path(br->cfg, ep_path) : NULL;
    struct topic_match m;
    if (c->closing || c->auth_deadline_ms)
        return;  /* refused, or not admitted yet: it holds no rooms and gets none */
    if (!ep || !topic_pattern_match(ep->pattern, c->path, &m)) {
        c->endpoint = -1;
        conn_close(c, TB_CLOSE_ENDPOINT_REMOVED, "endpoint removed by configuration reload");
        return;
    }
    c->endpoint = (int)(ep - br->cfg->endpoints);
    set_envelope(c, ep);
    char names[CFG_MAX_ROOMS][256];
    size_t n = endpoint_rooms(br, c, ep, &m, names);
    /* Leave endpoint rooms that are no longer listed (client subscriptions stay). */
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->conn_next;
        if (!s->auto_joined)
            continue;
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++)
            keep = strcmp(names[i], s->room->name) == 0;
        if (keep)
            continue;
        s->auto_joined = false;
        if (!s->how) /* no client subscription or pattern holds it either */
            conn_unsubscribe(c, s);
    }
    for (size_t i = 0; i < n; i++) {
        if (conn_find_sub(c, names[i]))
            continue;
        struct sub *s = fanout_join(br->fan, c, names[i]);
        if (s) {
            s->auto_joined = true;
            fanout_send_room_state(br->fan, c, s);
        }
    }
    leave_forbidden_rooms(br, c);
}

static void notify_clients(struct bridge *br)
{
    cJSON *d = cJSON_CreateObject();
    char ver[24];
    snprintf(ver, sizeof ver, "%016llx", (unsigned long long)br->cfg->version);
    cJSON_AddStringToObject(d, "config_version", ver);
    lws_start_foreach_dll(struct lws_dll2 *, it, lws_dll2_get_head(&br->conns)) {
        struct conn *c = lws_container_of(it, struct conn, in_bridge);
        if (!c->closing)
            fanout_send_control(br->fan, c, "config_reloaded", d);
    } lws_end_foreach_dll(it);
    cJSON_Delete(d);
}

void bridge_apply_config(struct bridge *br, struct tb_config *next)
{
    struct tb_config *old = br->cfg;
    br->cfg = next;
    br->proto.cfg = next;
    reset_route_counters(br, next);
    subscriptions_set_config(br->subs, next);
    apply_limits(br, next);
    if (br->mqtt)
        mqtt_client_set_filters(br->mqtt, next->filters, next->n_filters);
    lws_start_foreach_dll(struct lws_dll2 *, it, lws_dll2_get_head(&br->conns)) {
        rejoin(br, lws_container_of(it, struct conn, in_bridge), old);
    } lws_end_foreach_dll(it);
    alert_runtime_apply_config(br->alerts, next);
    notify_clients(br);
    config_unref(old);
}
