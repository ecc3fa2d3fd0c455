/* bridge: the service layer - connection life cycle, the MQTT drain, the tick and the
 * config swap (see bridge.h). Service thread only. */
#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alert_runtime.h"
#include "fanout.h"
#include "log.h"
#include "membership.h"
#include "mqtt_client.h"
#include "reply.h"
#include "room.h"
#include "session.h"
#include "subscribe.h"
#include "writer.h"

#define HISTORY_SWEEP_MS 5000

/* At most this many MQTT events per wake-up: between batches the loop writes to the
 * sockets, so a burst larger than a send queue reaches clients that keep up instead of
 * being conflated for them. */
#define MQTT_BATCH 256

/* ---- life cycle ------------------------------------------------------------------------ */

/* The room and byte bounds of a config (at start and on every reload). */
static void apply_limits(struct bridge *br, const struct tb_config *cfg)
{
    fanout_set_max_rooms(br->fan, cfg->server.max_rooms);
    fanout_set_max_client_rooms(br->fan, cfg->server.max_client_rooms);
    room_registry_set_byte_limits(br->rooms, cfg->server.max_room_bytes, cfg->server.max_stored_bytes);
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
    br->started_wall_ms = tb_wall_ms();
    if (!(br->rooms = room_registry_new()) || !(br->fan = fanout_new(br->rooms, &br->st)) ||
        !(br->writer = writer_new()) || !(br->subs = subscriptions_new(br->fan, cfg, epoch)) ||
        !(br->sessions = session_registry_new())) {
        bridge_free(br);
        return NULL;
    }
    apply_limits(br, cfg);
    br->env = (struct conn_env){&br->st, br->rooms, writer_want, br->writer};
    br->proto = (struct protocol){cfg, br->fan, br->subs, br->sessions, NULL};
    return br;
}

void bridge_start_alerts(struct bridge *br, struct mqtt_client *mqtt)
{
    br->mqtt = mqtt;
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
    session_registry_free(br->sessions);
    subscriptions_free(br->subs);
    writer_free(br->writer);
    fanout_free(br->fan);
    room_registry_free(br->rooms);
    router_out_free(&br->routed);
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

struct conn *bridge_open(struct bridge *br, struct lws *wsi, const char *path)
{
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
    /* Captures point into 'path': re-match against the connection's own copy. */
    config_find_endpoint(br->cfg, c->path, &m);
    c->endpoint = (int)(ep - br->cfg->endpoints);
    lws_dll2_add_head(&c->in_bridge, &br->conns);
    char names[CFG_MAX_ROOMS][256];
    size_t n = endpoint_rooms(br, c, ep, &m, names);
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
    /* Room state after the welcome frame, in the order of the endpoint's rooms. */
    struct sub *order[CFG_MAX_ROOMS];
    n = 0;
    for (struct sub *s = c->subs; s && n < CFG_MAX_ROOMS; s = s->conn_next)
        order[n++] = s;
    while (n--)
        fanout_send_room_state(br->fan, c, order[n]);
    protocol_on_open(&br->proto, c);
    LOG_DEBUG("ws", "connection %llu opened on %s (%s)", (unsigned long long)c->id, c->path, ep->path);
    return c;
}

void bridge_close(struct bridge *br, struct conn *c)
{
    protocol_on_close(&br->proto, c);
    fanout_conn_close(br->fan, c);
    writer_forget(br->writer, c);
    lws_dll2_remove(&c->in_bridge);
    LOG_DEBUG("ws", "connection %llu closed (sent %llu, conflated %llu)", (unsigned long long)c->id,
              (unsigned long long)c->sent, (unsigned long long)c->conflated);
    conn_free(c);
}

void bridge_on_client_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary)
{
    c->last_rx_ms = tb_now_ms();
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
    LOG_INFO("main", "shutting down: closing %zu connections", bridge_conn_count(br));
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&br->conns)) {
        conn_close(lws_container_of(d, struct conn, in_bridge), TB_CLOSE_GOING_AWAY, "server shutting down");
    } lws_end_foreach_dll(d);
}

/* ---- MQTT ------------------------------------------------------------------------------ */

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
    if (session_on_mqtt(br->sessions, &br->cfg->sessions, br->mqtt, ev))
        return;
    struct inbound in;
    inbound_init(&in, ev->topic, ev->payload, ev->payload_len);
    /* Alert state (our own retained publishes coming back) is routed only when a route
     * asks for it, and is never counted as unrouted or non-JSON telemetry. */
    if (!alert_runtime_owns_topic(br->alerts, ev->topic) || router_matches(br->cfg, ev->topic)) {
        router_route(br->cfg, &in, &br->routed, &br->st);
        for (size_t i = 0; i < br->routed.n; i++) {
            const struct route_delivery *d = &br->routed.v[i];
            fanout_deliver(br->fan, d->room, d->route, in.topic, in.data, in.data_len);
        }
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
    if (room_history_expire(room, x->now_ms) && !room_has_members(room) && !room_has_state(room) &&
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

void bridge_tick(struct bridge *br, uint64_t now_ms)
{
    sweep_history(br, now_ms);
    membership_tick(br->members, now_ms);
    alert_runtime_tick(br->alerts, now_ms);
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

/* Recomputes the endpoint rooms of one connection under the new config. */
static void rejoin(struct bridge *br, struct conn *c, const struct tb_config *old)
{
    const char *ep_path = c->endpoint >= 0 ? old->endpoints[c->endpoint].path : NULL;
    const struct cfg_endpoint *ep = ep_path ? config_endpoint_by_path(br->cfg, ep_path) : NULL;
    struct topic_match m;
    if (!ep || !topic_pattern_match(ep->pattern, c->path, &m)) {
        c->endpoint = -1;
        conn_close(c, TB_CLOSE_ENDPOINT_REMOVED, "endpoint removed by configuration reload");
        return;
    }
    c->endpoint = (int)(ep - br->cfg->endpoints);
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
