/* http_api: /health, /health/live, /health/ready, /ws/status, /ws/connections and /metrics
 * bodies. Service thread. */
#include "http_api.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alert_runtime.h"
#include "bridge.h"
#include "cluster.h"
#include "log.h"
#include "membership.h"
#include "mqtt_client.h"
#include "process_stats.h"
#include "pmd.h"
#include "reload.h"
#include "room.h"
#include "session.h"
#include "throttle.h"
#include "uplink_runtime.h"
#include "writer.h"

static cJSON *connections_json(const struct bridge *br)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "total", (double)bridge_conn_count(br));
    cJSON_AddNumberToObject(c, "max", br->cfg->server.max_connections);
    cJSON *per = cJSON_AddObjectToObject(c, "endpoints");
    size_t *counts = calloc(br->cfg->n_endpoints + 1, sizeof *counts);
    if (counts) {
        bridge_endpoint_counts(br, counts);
        for (size_t i = 0; i < br->cfg->n_endpoints; i++)
            cJSON_AddNumberToObject(per, br->cfg->endpoints[i].path, (double)counts[i]);
        free(counts);
    }
    return c;
}

/* wss:// or not, and what permessage-deflate saved (messages compressed once each). */
static cJSON *transport_json(const struct bridge *br)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddBoolToObject(t, "tls", br->cfg->server.tls_cert != NULL);
    size_t n = 0;
    for (const struct lws_dll2 *d = br->conns.head; d; d = d->next)
        n += lws_container_of(d, const struct conn, in_bridge)->deflate;
    struct pmd_stats zs = pmd_stats(br->pmd);
    cJSON *z = cJSON_AddObjectToObject(t, "deflate");
    cJSON_AddNumberToObject(z, "connections", (double)n);
    cJSON_AddNumberToObject(z, "messages", (double)zs.frames);
    cJSON_AddNumberToObject(z, "bytes_in", (double)zs.bytes_in);
    cJSON_AddNumberToObject(z, "bytes_out", (double)zs.bytes_out);
    return t;
}

static void cluster_json(cJSON *h, const struct bridge *br, const struct alert_runtime_stats *as);

static cJSON *health_json(const struct http_api_src *src)
{
    const struct bridge *br = src->br;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "status", br->broker_connected ? "ok" : "degraded");
    cJSON_AddStringToObject(h, "version", TB_VERSION);
    cJSON_AddNumberToObject(h, "uptime_s", (double)(tb_now_ms() - br->started_ms) / 1000.0);
    cJSON_AddStringToObject(h, "event_loop", src->event_loop);
    cJSON_AddNumberToObject(h, "writer_threads", writer_thread_count(br->writer));
    cJSON_AddItemToObject(h, "transport", transport_json(br));
    cJSON *b = cJSON_AddObjectToObject(h, "broker");
    cJSON_AddStringToObject(b, "state", br->broker_connected ? "connected" : "disconnected");
    cJSON_AddBoolToObject(b, "connected", br->broker_connected);
    cJSON_AddStringToObject(b, "host", br->cfg->mqtt.host);
    cJSON_AddNumberToObject(b, "port", br->cfg->mqtt.port);
    cJSON_AddNumberToObject(b, "since_ms", (double)br->broker_changed_wall_ms);
    cJSON_AddNumberToObject(b, "disconnects", br->broker_disconnects);
    cJSON_AddItemToObject(h, "connections", connections_json(br));
    cJSON *m = cJSON_AddObjectToObject(h, "messages");
    cJSON_AddNumberToObject(m, "received", (double)br->st.received);
    cJSON_AddNumberToObject(m, "routed", (double)br->st.routed);
    cJSON_AddNumberToObject(m, "delivered", (double)br->st.delivered);
    cJSON_AddNumberToObject(m, "dropped", (double)(br->st.dropped + mqtt_client_dropped(br->mqtt)));
    cJSON_AddNumberToObject(m, "conflated", (double)br->st.conflated);
    cJSON_AddNumberToObject(m, "non_json", (double)br->st.non_json);
    cJSON_AddNumberToObject(m, "unrouted", (double)br->st.unrouted);
    cJSON_AddNumberToObject(m, "room_errors", (double)br->st.room_errors);
    cJSON_AddNumberToObject(m, "rooms_not_allowed", (double)br->st.rooms_not_allowed);
    cJSON_AddNumberToObject(m, "sessions_unknown", (double)br->st.sessions_unknown);
    double up = (double)(tb_now_ms() - br->started_ms) / 1000.0;
    cJSON_AddNumberToObject(m, "received_per_s_avg", up > 0 ? (double)br->st.received / up : 0);
    cJSON_AddNumberToObject(h, "sessions", (double)session_count(br->sessions));
    cJSON_AddNumberToObject(h, "rooms", (double)room_registry_count(br->rooms));
    cJSON_AddNumberToObject(h, "rooms_refused", (double)br->st.rooms_refused);
    cJSON_AddNumberToObject(h, "client_rooms", (double)room_registry_client_count(br->rooms));
    cJSON_AddNumberToObject(h, "client_rooms_refused", (double)br->st.client_rooms_refused);
    cJSON_AddNumberToObject(h, "stored_bytes", (double)room_registry_stored_bytes(br->rooms));
    cJSON_AddNumberToObject(h, "history_trimmed", (double)room_registry_trimmed(br->rooms));
    cJSON_AddNumberToObject(h, "keep_last_dropped", (double)room_registry_keyed_dropped(br->rooms));
    cJSON_AddNumberToObject(m, "payloads_refused", (double)br->st.payloads_refused);
    cJSON *au = cJSON_AddObjectToObject(h, "auth");
    cJSON_AddNumberToObject(au, "unauthorized", (double)br->st.auth_unauthorized);
    cJSON_AddNumberToObject(au, "forbidden", (double)br->st.auth_forbidden);
    cJSON *pw = cJSON_AddObjectToObject(h, "patterns");
    cJSON_AddNumberToObject(pw, "rooms_walked", (double)br->st.pattern_rooms_walked);
    cJSON_AddNumberToObject(pw, "busy", (double)br->st.patterns_busy);
    struct alert_runtime_stats as;
    alert_runtime_stats(br->alerts, &as);
    cJSON *a = cJSON_AddObjectToObject(h, "alerts");
    cJSON_AddNumberToObject(a, "active", (double)as.active);
    cJSON_AddNumberToObject(a, "raised", (double)as.raised);
    cJSON_AddNumberToObject(a, "cleared", (double)as.cleared);
    cJSON_AddNumberToObject(a, "acknowledged", (double)as.acknowledged);
    cJSON_AddNumberToObject(a, "restored", (double)as.restored);
    cJSON_AddNumberToObject(a, "restore_refused", (double)as.restore_refused);
    cJSON_AddBoolToObject(a, "ready", as.ready);
    cJSON *rf = cJSON_AddObjectToObject(h, "refused");   /* limits: refusals by reason */
    for (int r = 0; r < TB_REFUSED_COUNT; r++)
        cJSON_AddNumberToObject(rf, tb_refusal_name((enum tb_refusal)r), (double)br->st.refused[r]);
    cJSON_AddNumberToObject(rf, "client_rooms", (double)br->st.client_rooms_refused);
    if (src->addrs) { /* the bounded address table: its size, and entries reused early */
        cJSON *lt = cJSON_AddObjectToObject(h, "limits");
        cJSON_AddNumberToObject(lt, "addresses", (double)addr_table_size(src->addrs));
        cJSON_AddNumberToObject(lt, "addresses_reused", (double)addr_table_evicted(src->addrs));
    }
    struct uplink_stats us;
    uplink_runtime_stats(br->uplink, &us);
    cJSON *ul = cJSON_AddObjectToObject(h, "uplink");
    cJSON_AddNumberToObject(ul, "published", (double)us.published);
    cJSON_AddNumberToObject(ul, "refused", (double)us.refused);
    cJSON_AddNumberToObject(ul, "rate_limited", (double)us.rate_limited);
    cJSON_AddNumberToObject(ul, "replies", (double)us.replies);
    cJSON_AddNumberToObject(ul, "timeouts", (double)us.timeouts);
    cJSON_AddNumberToObject(ul, "stray_replies", (double)us.stray_replies);
    cJSON_AddNumberToObject(ul, "pending", (double)us.pending);
    cluster_json(h, br, &as);
    cJSON *cfg = cJSON_AddObjectToObject(h, "config");
    cJSON_AddStringToObject(cfg, "path", br->cfg->path);
    char ver[24];
    snprintf(ver, sizeof ver, "%016llx", (unsigned long long)br->cfg->version);
    cJSON_AddStringToObject(cfg, "version", ver);
    cJSON_AddItemToObject(cfg, "reload", reload_status_json(src->rl));
    return h;
}

/* "cluster": this bridge's view of the live set (issue 16); null without cluster.name. */
static void cluster_json(cJSON *h, const struct bridge *br, const struct alert_runtime_stats *as)
{
    const struct cluster *cl = membership_cluster(br->members);
    if (!cl) {
        cJSON_AddNullToObject(h, "cluster");
        return;
    }
    cJSON *c = cJSON_AddObjectToObject(h, "cluster");
    cJSON_AddStringToObject(c, "name", cluster_name(cl));
    cJSON_AddStringToObject(c, "instance_id", cluster_self(cl));
    char list[2048];
    cluster_live_list(cl, list, sizeof list);
    cJSON *live = cJSON_AddArrayToObject(c, "live");
    for (char *save = NULL, *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save))
        cJSON_AddItemToArray(live, cJSON_CreateString(id));
    cJSON_AddNumberToObject(c, "peer_states_applied", (double)as->peer_applied);
    cJSON_AddNumberToObject(c, "acks_forwarded", (double)as->acks_forwarded);
    cJSON_AddNumberToObject(c, "taken_over", (double)as->taken_over);
}

/* ---- /metrics: a small Prometheus text-format writer -------------------------------------
 * family() writes a metric's HELP and TYPE once, sample() / sample1() its samples (none or
 * one label), metric() both for an unlabeled one. To add a counter, add a line to the
 * render_* function it belongs to (or a new render_* called from render_metrics). */

static void family(struct sbuf *out, const char *name, const char *type, const char *help)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Client refusals by reason (the limits of docs/configuration.md, allowed_origins, 404s,
 * capacity); client_rooms is server.max_client_rooms (also in /health). */
static void render_refused(const struct bridge *br, struct sbuf *out)
{
    sbuf_puts(out, "# HELP telebridge_refused_total Client connections and messages refused, by reason\n"
                   "# TYPE telebridge_refused_total counter\n");
    for (int r = 0; r < TB_REFUSED_COUNT; r++)
        sbuf_printf(out, "telebridge_refused_total{reason=\"%s\"} %llu\n", tb_refusal_name((enum tb_refusal)r),
                    (unsigned long long)br->st.refused[r]);
    sbuf_printf(out, "telebridge_refused_total{reason=\"client_rooms\"} %llu\n",
                (unsigned long long)br->st.client_rooms_refused);
}

static void sample(struct sbuf *out, const char *name, double v)
{
    sbuf_printf(out, "%s %.17g\n", name, v);
}

/* A label value escaped as the text format wants: backslash, double quote, newline. */
static void label_value(struct sbuf *out, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            sbuf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            sbuf_puts(out, "\\n");
        else
            sbuf_printf(out, "%c", *p);
    }
}

static void sample1(struct sbuf *out, const char *name, const char *label, const char *value, double v)
{
    sbuf_printf(out, "%s{%s=\"", name, label);
    label_value(out, value);
    sbuf_printf(out, "\"} %.17g\n", v);
}

static void metric(struct sbuf *out, const char *name, const char *type, const char *help, double v)
{
    family(out, name, type, help);
    sample(out, name, v);
}

/* The series kept from before labels existed (their names are in dashboards already). */
static void render_core(const struct bridge *br, struct sbuf *out)
{
    metric(out, "telebridge_mqtt_received_total", "counter", "MQTT messages received", (double)br->st.received);
    metric(out, "telebridge_routed_total", "counter", "Room deliveries serialized", (double)br->st.routed);
    metric(out, "telebridge_delivered_total", "counter", "Frames written to WebSocket clients", (double)br->st.delivered);
    metric(out, "telebridge_dropped_total", "counter", "Frames or messages dropped (all reasons of telebridge_discarded_total that lose data)",
           (double)(br->st.dropped + mqtt_client_dropped(br->mqtt)));
    metric(out, "telebridge_conflated_total", "counter", "Frames superseded by a newer one for slow clients", (double)br->st.conflated);
    metric(out, "telebridge_non_json_total", "counter", "Payloads that were not JSON", (double)br->st.non_json);
    metric(out, "telebridge_connections", "gauge", "Open WebSocket connections", (double)bridge_conn_count(br));
    metric(out, "telebridge_rooms", "gauge", "Rooms in memory", (double)room_registry_count(br->rooms));
    metric(out, "telebridge_broker_connected", "gauge", "1 when connected to the broker", br->broker_connected);
}

static void render_endpoints(const struct bridge *br, struct sbuf *out)
{
    size_t *counts = calloc(br->cfg->n_endpoints + 1, sizeof *counts);
    if (!counts)
        return;
    bridge_endpoint_counts(br, counts);
    family(out, "telebridge_endpoint_connections", "gauge", "Open WebSocket connections per endpoint (configured path)");
    for (size_t i = 0; i < br->cfg->n_endpoints; i++)
        sample1(out, "telebridge_endpoint_connections", "endpoint", br->cfg->endpoints[i].path, (double)counts[i]);
    free(counts);
    metric(out, "telebridge_connections_max", "gauge", "server.max_connections in effect", br->cfg->server.max_connections);
    struct bridge_queues q;
    bridge_queue_depth(br, &q);
    metric(out, "telebridge_send_queue_frames", "gauge", "Frames waiting in all connections' send queues", (double)q.frames);
    metric(out, "telebridge_send_queue_bytes", "gauge", "Bytes waiting in all connections' send queues", (double)q.bytes);
    metric(out, "telebridge_send_queue_max_frames", "gauge", "Frames waiting in the longest send queue (the slowest client)",
           (double)q.max_frames);
}

/* Messages and frames that went nowhere, by reason. */
static void render_discarded(const struct bridge *br, struct sbuf *out)
{
    static const char *const name = "telebridge_discarded_total";
    family(out, name, "counter", "Messages, frames or rooms not delivered or not created, by reason");
    sample1(out, name, "reason", "send_queue_full", (double)br->st.dropped);
    sample1(out, name, "reason", "mqtt_queue_full", (double)mqtt_client_dropped(br->mqtt));
    sample1(out, name, "reason", "payload_too_large", (double)br->st.payloads_refused);
    sample1(out, name, "reason", "unrouted", (double)br->st.unrouted);
    sample1(out, name, "reason", "room_template_error", (double)br->st.room_errors);
    sample1(out, name, "reason", "room_not_allowed", (double)br->st.rooms_not_allowed);
    sample1(out, name, "reason", "max_rooms", (double)br->st.rooms_refused);
    sample1(out, name, "reason", "max_client_rooms", (double)br->st.client_rooms_refused);
    metric(out, "telebridge_stored_bytes", "gauge", "Bytes of history and last values held by rooms",
           (double)room_registry_stored_bytes(br->rooms));
    metric(out, "telebridge_history_trimmed_total", "counter", "History entries trimmed by the room byte limits",
           (double)room_registry_trimmed(br->rooms));
    metric(out, "telebridge_client_rooms", "gauge", "Rooms created by client subscriptions",
           (double)room_registry_client_count(br->rooms));
}

static void render_broker(const struct bridge *br, struct sbuf *out)
{
    metric(out, "telebridge_broker_connects_total", "counter", "Successful broker connections (CONNACK)",
           (double)mqtt_client_connects(br->mqtt));
    metric(out, "telebridge_broker_disconnects_total", "counter", "Broker connections lost", br->broker_disconnects);
    metric(out, "telebridge_mqtt_queue_bytes", "gauge", "Bytes in the MQTT hand-off queue, not yet processed",
           (double)mqtt_client_queued_bytes(br->mqtt));
}

static void render_alerts(const struct bridge *br, struct sbuf *out)
{
    struct alert_runtime_stats as;
    alert_runtime_stats(br->alerts, &as);
    metric(out, "telebridge_alerts_active", "gauge", "Active alerts", (double)as.active);
    metric(out, "telebridge_alerts_raised_total", "counter", "Alerts raised", (double)as.raised);
    metric(out, "telebridge_alerts_cleared_total", "counter", "Alerts cleared", (double)as.cleared);
    metric(out, "telebridge_alerts_acknowledged_total", "counter", "Alerts acknowledged by clients", (double)as.acknowledged);
}

/* Several bridges as one (cluster.name set): the live set and what crossed between members. */
static void render_cluster(const struct bridge *br, struct sbuf *out)
{
    const struct cluster *cl = membership_cluster(br->members);
    if (!cl)
        return;
    struct alert_runtime_stats as;
    alert_runtime_stats(br->alerts, &as);
    metric(out, "telebridge_cluster_live_members", "gauge", "Bridges of this cluster online, this one included",
           (double)cluster_live_count(cl));
    metric(out, "telebridge_cluster_peer_states_applied_total", "counter", "Alert states of other members applied",
           (double)as.peer_applied);
    metric(out, "telebridge_cluster_acks_forwarded_total", "counter", "Acknowledgements forwarded to an alert's owner",
           (double)as.acks_forwarded);
    metric(out, "telebridge_cluster_taken_over_total", "counter", "Alerts this bridge took over from a member that left",
           (double)as.taken_over);
}

/* Client publishes to MQTT (endpoint 'publish' rules, uplink_runtime.c). */
static void render_uplink(const struct bridge *br, struct sbuf *out)
{
    struct uplink_stats us;
    uplink_runtime_stats(br->uplink, &us);
    metric(out, "telebridge_uplink_published_total", "counter", "Client messages published to MQTT", (double)us.published);
    metric(out, "telebridge_uplink_refused_total", "counter", "Client messages refused", (double)us.refused);
}

/* Two labels; values escaped. */
static void sample2(struct sbuf *out, const char *name, const char *l1, const char *v1, const char *l2,
                    const char *v2, double v)
{
    sbuf_printf(out, "%s{%s=\"", name, l1);
    label_value(out, v1);
    sbuf_printf(out, "\",%s=\"", l2);
    label_value(out, v2);
    sbuf_printf(out, "\"} %.17g\n", v);
}

/* (message, room) deliveries per route: route = its position in the file (1-based, as
 * --explain prints it), match = its pattern. Counted from the last (re)load. */
static void render_routes(const struct bridge *br, struct sbuf *out)
{
    static const char *const name = "telebridge_route_deliveries_total";
    family(out, name, "counter", "Room deliveries per route since the configuration was (re)loaded");
    for (size_t i = 0; i < br->n_route_deliveries && i < br->cfg->n_routes; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i + 1);
        sample2(out, name, "route", idx, "match", br->cfg->routes[i].match_src, (double)br->route_deliveries[i]);
    }
}

static void render_alert_rules(const struct bridge *br, struct sbuf *out)
{
    const struct alert_rule_count *rc;
    size_t n = alert_runtime_rule_counts(br->alerts, &rc);
    family(out, "telebridge_alert_rule_raised_total", "counter", "Alerts raised per rule and severity");
    for (size_t i = 0; i < n; i++)
        sample2(out, "telebridge_alert_rule_raised_total", "rule", rc[i].rule, "severity",
                cfg_severity_name((enum cfg_severity)rc[i].severity), (double)rc[i].raised);
    family(out, "telebridge_alert_rule_cleared_total", "counter", "Alerts cleared per rule and severity");
    for (size_t i = 0; i < n; i++)
        sample2(out, "telebridge_alert_rule_cleared_total", "rule", rc[i].rule, "severity",
                cfg_severity_name((enum cfg_severity)rc[i].severity), (double)rc[i].cleared);
}

/* Rooms and their subscriptions per class: the room name up to its first ':' ("vehicle",
 * "session", "fleet"). Room names can come from clients, so at most ROOM_CLASSES distinct
 * classes are reported and the rest are summed as "other" (bounded label values). */
#define ROOM_CLASSES 16
struct room_classes {
    struct { char name[48]; double rooms, members; } c[ROOM_CLASSES + 1];
    size_t n;
};

static void count_room_class(struct room *room, void *ud)
{
    struct room_classes *rc = ud;
    const char *colon = strchr(room->name, ':');
    size_t len = colon ? (size_t)(colon - room->name) : strlen(room->name);
    size_t i = 0;
    while (i < rc->n && !(strlen(rc->c[i].name) == len && memcmp(rc->c[i].name, room->name, len) == 0))
        i++;
    if (i == rc->n) {
        if (rc->n == ROOM_CLASSES || len >= sizeof rc->c[0].name) {
            i = ROOM_CLASSES;           /* "other" */
        } else {
            memcpy(rc->c[i].name, room->name, len);
            rc->c[i].name[len] = '\0';
            rc->n++;
        }
    }
    rc->c[i].rooms++;
    rc->c[i].members += (double)room->members.count;
}

static void render_room_classes(const struct bridge *br, struct sbuf *out)
{
    struct room_classes *rc = calloc(1, sizeof *rc);
    if (!rc)
        return;
    strcpy(rc->c[ROOM_CLASSES].name, "other");
    room_foreach(br->rooms, count_room_class, rc);
    family(out, "telebridge_room_class_rooms", "gauge", "Rooms per class (the name up to its first ':')");
    for (size_t i = 0; i <= ROOM_CLASSES; i++)
        if (i < rc->n || (i == ROOM_CLASSES && rc->c[i].rooms))
            sample1(out, "telebridge_room_class_rooms", "class", rc->c[i].name, rc->c[i].rooms);
    family(out, "telebridge_room_class_subscriptions", "gauge", "Connections' memberships in the rooms of a class");
    for (size_t i = 0; i <= ROOM_CLASSES; i++)
        if (i < rc->n || (i == ROOM_CLASSES && rc->c[i].rooms))
            sample1(out, "telebridge_room_class_subscriptions", "class", rc->c[i].name, rc->c[i].members);
    free(rc);
}

/* Publisher's ts_ms (in the payload) to the bridge routing the message. */
static void render_latency(const struct bridge *br, struct sbuf *out)
{
    static const char *const name = "telebridge_ingest_latency_seconds";
    const struct tb_latency *l = &br->latency;
    family(out, name, "histogram",
           "From the payload's ts_ms (publisher clock) to the bridge routing the message; payloads with ts_ms only");
    uint64_t cum = 0;
    for (size_t i = 0; i < TB_LATENCY_BUCKETS; i++) {
        cum += l->bucket[i];
        sbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, tb_latency_bounds_s[i], (unsigned long long)cum);
    }
    sbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name,
                (unsigned long long)l->count, name, l->sum_s, name, (unsigned long long)l->count);
    metric(out, "telebridge_ingest_latency_skipped_total", "counter",
           "Payload timestamps in the future or older than a day (clock skew), not observed", (double)l->skipped);
}

static void render_reload(const struct http_api_src *src, struct sbuf *out)
{
    struct reload_stats rs;
    reload_get_stats(src->rl, &rs);
    family(out, "telebridge_config_reloads_total", "counter", "Configuration reloads, by result");
    sample1(out, "telebridge_config_reloads_total", "result", "success", rs.count - rs.failures);
    sample1(out, "telebridge_config_reloads_total", "result", "failure", rs.failures);
    metric(out, "telebridge_config_last_reload_successful", "gauge",
           "0 when the last reload failed (the file on disk is invalid; the running configuration stays)", rs.last_ok);
    metric(out, "telebridge_config_last_reload_timestamp_seconds", "gauge", "Unix time of the last reload (0 = none yet)",
           (double)rs.at_wall_ms / 1000.0);
}

static void render_build(const struct http_api_src *src, struct sbuf *out)
{
    family(out, "telebridge_build_info", "gauge", "Always 1; the labels carry the version and event loop");
    sbuf_printf(out, "telebridge_build_info{version=\"");
    label_value(out, TB_VERSION);
    sbuf_printf(out, "\",event_loop=\"");
    label_value(out, src->event_loop);
    sbuf_puts(out, "\"} 1\n");
    metric(out, "telebridge_start_time_seconds", "gauge", "Unix time the bridge started",
           (double)src->br->started_wall_ms / 1000.0);
}

/* process_* as other Prometheus exporters name them, from /proc/self. */
static void render_process(struct sbuf *out)
{
    struct process_stats ps;
    if (process_stats_read(&ps) != 0)
        return;
    metric(out, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds", ps.cpu_seconds);
    metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes", ps.rss_bytes);
    metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes", ps.vsize_bytes);
    metric(out, "process_open_fds", "gauge", "Open file descriptors", ps.open_fds);
    metric(out, "process_max_fds", "gauge", "File descriptor limit (soft)", ps.max_fds);
    metric(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds",
           ps.start_time_seconds);
}

/* Access control (gate.c): connections refused or closed for their credential. */
static void render_auth(const struct bridge *br, struct sbuf *out)
{
    metric(out, "telebridge_auth_unauthorized_total", "counter",
           "Connections refused or closed 4401 (no, invalid, expired token)", (double)br->st.auth_unauthorized);
    metric(out, "telebridge_auth_forbidden_total", "counter", "Connections refused 4403 (identity not permitted)",
           (double)br->st.auth_forbidden);
}

static void render_metrics(const struct http_api_src *src, struct sbuf *out)
{
    render_core(src->br, out);
    render_endpoints(src->br, out);
    render_discarded(src->br, out);
    render_broker(src->br, out);
    render_alerts(src->br, out);
    render_alert_rules(src->br, out);
    render_cluster(src->br, out);
    render_routes(src->br, out);
    render_room_classes(src->br, out);
    render_latency(src->br, out);
    render_refused(src->br, out);
    render_auth(src->br, out);
    render_uplink(src->br, out);
    render_reload(src, out);
    render_build(src, out);
    render_process(out);
}

/* ---- /health/live and /health/ready ------------------------------------------------------
 * Anonymous, status only (no names, hosts or counters): what a load balancer, an
 * orchestrator's probe or the Docker HEALTHCHECK needs. */

static int render_ready(const struct http_api_src *src, cJSON *body)
{
    const struct bridge *br = src->br;
    struct reload_stats rs;
    reload_get_stats(src->rl, &rs);
    cJSON *why = cJSON_CreateArray();
    if (br->stopping)
        cJSON_AddItemToArray(why, cJSON_CreateString("stopping"));
    if (!br->broker_connected)
        cJSON_AddItemToArray(why, cJSON_CreateString("broker_disconnected"));
    if (!rs.last_ok)
        cJSON_AddItemToArray(why, cJSON_CreateString("config_reload_failed"));
    bool ready = cJSON_GetArraySize(why) == 0;
    cJSON_AddStringToObject(body, "status", ready ? "ready" : "not_ready");
    if (ready)
        cJSON_Delete(why);
    else
        cJSON_AddItemToObject(body, "reasons", why);
    return ready ? 200 : 503;
}

int http_api_render(const struct http_api_src *src, const char *path, struct sbuf *out,
                    const char **content_type)
{
    cJSON *body = NULL;
    int status = 200;
    bool health = strcmp(path, "/health") == 0 || strcmp(path, "/ws/status") == 0;
    if (strcmp(path, "/health/live") == 0) {
        body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "status", "alive");
    } else if (strcmp(path, "/health/ready") == 0) {
        body = cJSON_CreateObject();
        status = render_ready(src, body);
    } else if (src->restricted && health) {
        body = cJSON_CreateObject();    /* anonymous: the status, no details */
        cJSON_AddStringToObject(body, "status", src->br->broker_connected ? "ok" : "degraded");
    } else if (src->restricted && (!strcmp(path, "/ws/connections") || !strcmp(path, "/metrics"))) {
        sbuf_puts(out, "{\"error\":\"forbidden\",\"message\":\"an admin token (auth.admin_role) is needed\"}\n");
        *content_type = "application/json";
        return 403;
    } else if (health) {
        body = health_json(src);
    } else if (strcmp(path, "/ws/connections") == 0) {
        body = connections_json(src->br);
    } else if (strcmp(path, "/metrics") == 0) {
        render_metrics(src, out);
        *content_type = "text/plain; version=0.0.4";
        return 200;
    } else {
        return 0;
    }
    char *text = cJSON_Print(body);
    cJSON_Delete(body);
    if (text) {
        sbuf_puts(out, text);
        sbuf_puts(out, "\n");
        free(text);
    }
    *content_type = "application/json";
    return status;
}
