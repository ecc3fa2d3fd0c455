/* http_api: /health, /ws/status, /ws/connections and /metrics bodies. Service thread. */
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
#include "reload.h"
#include "room.h"
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
    double up = (double)(tb_now_ms() - br->started_ms) / 1000.0;
    cJSON_AddNumberToObject(m, "received_per_s_avg", up > 0 ? (double)br->st.received / up : 0);
    cJSON_AddNumberToObject(h, "rooms", (double)room_registry_count(br->rooms));
    cJSON_AddNumberToObject(h, "rooms_refused", (double)br->st.rooms_refused);
    cJSON_AddNumberToObject(h, "client_rooms", (double)room_registry_client_count(br->rooms));
    cJSON_AddNumberToObject(h, "client_rooms_refused", (double)br->st.client_rooms_refused);
    cJSON_AddNumberToObject(h, "stored_bytes", (double)room_registry_stored_bytes(br->rooms));
    cJSON_AddNumberToObject(h, "history_trimmed", (double)room_registry_trimmed(br->rooms));
    cJSON_AddNumberToObject(m, "payloads_refused", (double)br->st.payloads_refused);
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

static void metric(struct sbuf *out, const char *name, const char *help, const char *type, double v)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void render_metrics(const struct bridge *br, struct sbuf *out)
{
    metric(out, "telebridge_mqtt_received_total", "MQTT messages received", "counter", (double)br->st.received);
    metric(out, "telebridge_routed_total", "Room deliveries serialized", "counter", (double)br->st.routed);
    metric(out, "telebridge_delivered_total", "Frames written to WebSocket clients", "counter", (double)br->st.delivered);
    metric(out, "telebridge_dropped_total", "Frames or messages dropped", "counter",
           (double)(br->st.dropped + mqtt_client_dropped(br->mqtt)));
    metric(out, "telebridge_conflated_total", "Frames superseded for slow clients", "counter", (double)br->st.conflated);
    metric(out, "telebridge_non_json_total", "Payloads that were not JSON", "counter", (double)br->st.non_json);
    metric(out, "telebridge_connections", "Open WebSocket connections", "gauge", (double)bridge_conn_count(br));
    metric(out, "telebridge_rooms", "Rooms in memory", "gauge", (double)room_registry_count(br->rooms));
    struct alert_runtime_stats as;
    alert_runtime_stats(br->alerts, &as);
    metric(out, "telebridge_alerts_active", "Active alerts", "gauge", (double)as.active);
    metric(out, "telebridge_alerts_raised_total", "Alerts raised", "counter", (double)as.raised);
    metric(out, "telebridge_broker_connected", "1 when connected to the broker", "gauge", br->broker_connected);
}

int http_api_render(const struct http_api_src *src, const char *path, struct sbuf *out,
                    const char **content_type)
{
    cJSON *body = NULL;
    if (strcmp(path, "/health") == 0 || strcmp(path, "/ws/status") == 0) {
        body = health_json(src);
    } else if (strcmp(path, "/ws/connections") == 0) {
        body = connections_json(src->br);
    } else if (strcmp(path, "/metrics") == 0) {
        render_metrics(src->br, out);
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
    return 200;
}
