/* bridge: delivery into rooms, connection life cycle, client frames and the MQTT
 * drain. Service thread only (see bridge.h). */
#include "bridge.h"

#include <stdlib.h>
#include <string.h>

#include "alert_runtime.h"
#include "log.h"
#include "mqtt_client.h"
#include "protocol.h"
#include "reload.h"
#include "router.h"
#include "ws_server.h"
#include "session.h"
#include "shape.h"
#include "subscribe.h"

void bridge_room_maybe_release(struct bridge *br, struct room *room)
{
    room_release_if_idle(br->rooms, room);
}

/* {"type":T,"room":R,"topic":P,"seq":N,"ts":MS,"data":D} */
static struct tb_msg *build_envelope(struct bridge *br, const char *type, const char *room,
                                     const char *topic, uint64_t seq, const char *data, size_t data_len)
{
    struct sbuf *b = &br->scratch;
    sbuf_reset(b);
    sbuf_puts(b, "{\"type\":");
    sbuf_json_string(b, type, strlen(type));
    sbuf_puts(b, ",\"room\":");
    sbuf_json_string(b, room, strlen(room));
    sbuf_puts(b, ",\"topic\":");
    sbuf_json_string(b, topic, strlen(topic));
    sbuf_puts(b, ",\"seq\":");
    sbuf_u64(b, seq);
    sbuf_puts(b, ",\"ts\":");
    sbuf_u64(b, tb_wall_ms());
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

/* Finds or creates a room; a new room is offered to the clients' patterns. */
static struct room *get_room(struct bridge *br, const char *name)
{
    struct room *room = room_find(br->rooms, name);
    if (room)
        return room;
    if (room_registry_count(br->rooms) >= br->cfg->server.max_rooms) {
        /* A publisher inventing topics must not grow memory without bound. */
        br->st.rooms_refused++;
        if (log_ratelimit_allow("max-rooms", 60000))
            LOG_WARN("bridge", "room limit reached (server.max_rooms = %zu): room '%s' not created",
                     br->cfg->server.max_rooms, name);
        return NULL;
    }
    if ((room = room_get(br->rooms, name)))
        subscribe_on_room_created(br, room);
    return room;
}

void bridge_deliver(struct bridge *br, const char *room_name, const char *type, const char *topic,
                    const char *data, size_t data_len, const struct cfg_route *route)
{
    bool keep = route->keep_last || route->history;
    struct room *room = room_find(br->rooms, room_name);
    if (!room) {
        if (!keep && !subscribe_have_patterns(br))
            return; /* nobody listens and nothing to remember: no work at all */
        if (!(room = get_room(br, room_name)))
            return;
        if (!room->members && !keep) {
            bridge_room_maybe_release(br, room);
            return;
        }
    } else if (!room->members && !keep) {
        return;
    }
    uint64_t seq = ++room->seq;
    struct tb_msg *m = build_envelope(br, type, room_name, topic, seq, data, data_len);
    if (!m) {
        LOG_ERROR("bridge", "out of memory building a message for room %s", room_name);
        return;
    }
    uint64_t now = tb_now_ms();
    if (route->keep_last)
        room_set_last_typed(room, type, m, seq, now);
    if (route->history) {
        if (room->hist_cap < route->history)
            room_set_history_cap(room, route->history);
        room->hist_ttl_ms = route->history_ttl_ms;
        room_history_push(room, m, seq, now);
    }
    br->st.routed++;
    bool conflate = route->slow_client == CFG_SLOW_CONFLATE;
    /* Shaped subscriptions share one projection per field list (shape_cache). */
    struct shape_cache sc;
    shape_cache_init(&sc, m);
    for (struct sub *s = room->members, *next; s; s = next) {
        next = s->room_next; /* a disconnect policy may not unlink, but stay safe */
        if (s->shape)
            subscribe_deliver(br, s, m, conflate, &sc, now);
        else
            conn_enqueue(s->conn, m, s, conflate);
    }
    shape_cache_clear(&sc);
    msg_unref(m);
}

/* {"type":T,"ts":MS[,<fields of top>][,"data":D]} */
struct tb_msg *bridge_build_control(struct bridge *br, const char *type, const cJSON *top,
                                    const cJSON *data)
{
    struct sbuf *b = &br->scratch;
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

void bridge_send_frame(struct bridge *br, struct conn *c, const char *type, const cJSON *top,
                       const cJSON *data)
{
    struct tb_msg *m = bridge_build_control(br, type, top, data);
    if (!m)
        return;
    conn_enqueue(c, m, NULL, false);
    msg_unref(m);
}

void bridge_send_control(struct bridge *br, struct conn *c, const char *type, const cJSON *data)
{
    bridge_send_frame(br, c, type, NULL, data);
}

void bridge_broadcast_room(struct bridge *br, const char *room_name, const char *type, const cJSON *data)
{
    struct room *room = room_find(br->rooms, room_name);
    if (!room || !room->members)
        return;
    struct tb_msg *m = bridge_build_control(br, type, NULL, data);
    if (!m)
        return;
    for (struct sub *s = room->members; s; s = s->room_next)
        conn_enqueue(s->conn, m, NULL, false);
    msg_unref(m);
}

bool bridge_authorize_join(struct bridge *br, const struct conn *c, const char *room)
{
    (void)br; (void)c; (void)room;
    return true;
}

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
    bridge_send_control(br, c, "welcome", d);
    cJSON_Delete(d);
}

/* Joins a room and queues its last value (the late joiner gets it at once). */
struct sub *bridge_join(struct bridge *br, struct conn *c, const char *name)
{
    struct room *room = get_room(br, name);
    if (!room)
        return NULL;
    /* already in (also when a new room matched one of c's patterns just now) */
    struct sub *s = room_sub_of(room, c, c->subs);
    return s ? s : conn_subscribe(c, room);
}

void bridge_send_room_state(struct bridge *br, struct conn *c, struct sub *s)
{
    subscribe_send_last_values(br, c, s);
    alert_runtime_send_room_state(br, c, s->room->name);
}

void bridge_on_open(struct bridge *br, struct conn *c, const struct cfg_endpoint *ep,
                    const struct topic_match *m)
{
    c->endpoint = (int)(ep - br->cfg->endpoints);
    c->next = br->conns;
    if (br->conns)
        br->conns->prev = c;
    br->conns = c;
    br->n_conns++;
    struct tmpl_ctx ctx = {c->path, m, NULL};
    char name[256];
    for (size_t i = 0; i < ep->n_rooms; i++) {
        if (tmpl_render(ep->rooms[i], &ctx, name, sizeof name) <= 0)
            continue;
        if (!bridge_authorize_join(br, c, name))
            continue;
        struct sub *s = bridge_join(br, c, name);
        if (s)
            s->auto_joined = true;
    }
    send_welcome(br, c, ep);
    /* Room state after the welcome frame, in the order of the endpoint's rooms. */
    struct sub *order[CFG_MAX_ROOMS];
    size_t n = 0;
    for (struct sub *s = c->subs; s && n < CFG_MAX_ROOMS; s = s->conn_next)
        order[n++] = s;
    while (n--)
        bridge_send_room_state(br, c, order[n]);
    protocol_on_open(br, c);
    LOG_DEBUG("ws", "connection %llu opened on %s (%s)", (unsigned long long)c->id, c->path, ep->path);
}

void bridge_on_close(struct bridge *br, struct conn *c)
{
    protocol_on_close(br, c);
    if (c->prev)
        c->prev->next = c->next;
    else if (br->conns == c)
        br->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    br->n_conns--;
    LOG_DEBUG("ws", "connection %llu closed (sent %llu, conflated %llu)", (unsigned long long)c->id,
              (unsigned long long)c->sent, (unsigned long long)c->conflated);
}

void bridge_on_client_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary)
{
    c->last_rx_ms = tb_now_ms();
    protocol_handle_frame(br, c, data, len, binary);
}

void bridge_endpoint_counts(const struct bridge *br, size_t *counts)
{
    memset(counts, 0, br->cfg->n_endpoints * sizeof *counts);
    for (const struct conn *c = br->conns; c; c = c->next)
        if (c->endpoint >= 0 && (size_t)c->endpoint < br->cfg->n_endpoints)
            counts[c->endpoint]++;
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
        return;
    }
    br->st.received++;
    if (session_on_mqtt(br, ev))
        return;
    struct inbound in;
    inbound_init(&in, ev->topic, ev->payload, ev->payload_len);
    /* Alert state (our own retained publishes coming back) is routed only when a route
     * asks for it, and is never counted as unrouted or non-JSON telemetry. */
    if (!alert_runtime_owns_topic(br, ev->topic) || router_matches(br->cfg, ev->topic))
        router_route(br, br->cfg, &in);
    alert_runtime_on_message(br, &in, ev->retain);
    inbound_free(&in);
}

#define HISTORY_SWEEP_MS 5000

/* At most this many MQTT events per wake-up: between batches the loop writes to the
 * sockets, so a burst larger than a send queue reaches clients that keep up instead of
 * being conflated for them. */
#define MQTT_BATCH 256

void bridge_process_mqtt(struct bridge *br)
{
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
    if (br->backlog)
        ws_server_continue_soon(br); /* come back after this round of writes */
}

void bridge_free_backlog(struct bridge *br)
{
    while (br->backlog) {
        struct mqtt_event *ev = br->backlog;
        br->backlog = ev->next;
        mqtt_event_free(ev);
    }
}

static void send_heartbeats(struct bridge *br)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "timestamp", (double)tb_wall_ms());
    cJSON_AddStringToObject(d, "server_status", br->broker_connected ? "ok" : "degraded");
    cJSON_AddStringToObject(d, "broker", br->broker_connected ? "connected" : "disconnected");
    cJSON_AddNumberToObject(d, "connections", (double)br->n_conns);
    cJSON_AddNumberToObject(d, "uptime_s", (double)(tb_now_ms() - br->started_ms) / 1000.0);
    struct tb_msg *m = bridge_build_control(br, "heartbeat", NULL, d); /* built once, shared */
    for (struct conn *c = br->conns; m && c; c = c->next)
        conn_enqueue(c, m, NULL, false);
    msg_unref(m);
    cJSON_Delete(d);
}

void bridge_on_config_changed(struct bridge *br, const struct tb_config *old)
{
    (void)old;
    alert_runtime_apply_config(br, br->cfg);
}

struct sweep_ctx {
    struct bridge *br;
    uint64_t now_ms;
    struct room *idle[64];       /* rooms left with nothing: freed after the walk */
    size_t n_idle;
};

static void sweep_room(struct room *room, void *ud)
{
    struct sweep_ctx *x = ud;
    if (room_history_expire(room, x->now_ms) && !room->members && !room->last && !room->n_lasts &&
        !room->hist_len && x->n_idle < sizeof x->idle / sizeof x->idle[0])
        x->idle[x->n_idle++] = room;
}

/* history_ttl frees memory too, not only resume decisions: every few seconds expired
 * history entries are dropped, and rooms left with nothing are freed. */
static void sweep_history(struct bridge *br, uint64_t now_ms)
{
    if (now_ms < br->next_sweep_ms)
        return;
    br->next_sweep_ms = now_ms + HISTORY_SWEEP_MS;
    struct sweep_ctx x = {.br = br, .now_ms = now_ms};
    room_foreach(br->rooms, sweep_room, &x);
    for (size_t i = 0; i < x.n_idle; i++)
        bridge_room_maybe_release(br, x.idle[i]);
}

void bridge_tick(struct bridge *br, uint64_t now_ms)
{
    reload_poll(br, now_ms);
    sweep_history(br, now_ms);
    alert_runtime_tick(br, now_ms);
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
