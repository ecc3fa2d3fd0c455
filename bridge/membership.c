/* membership: sync marker and cluster topics (see membership.h). Service thread only. */
#include "membership.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_runtime.h"
#include "cluster.h"
#include "config.h"
#include "log.h"
#include "mqtt_client.h"
#include "session.h"

#define LIST_MAX 1024

struct membership {
    struct cluster *cl;
    struct mqtt_client *mqtt;
    struct alert_runtime *alerts;
    struct session_registry *sessions;
    char *sync_topic;
    char token[40];              /* this run's marker payload */
    bool waiting;                /* a marker is on its way */
    uint64_t sent_at;
};

static int set_filters(struct membership *m, const struct tb_config *cfg)
{
    char *f[5];
    size_t n = 0;
    f[n++] = m->sync_topic;
    if (m->cl) {
        f[n++] = "telebridge/+/status";
        f[n++] = "telebridge/+/cluster";
        f[n++] = "telebridge/ack/#";
        if (cfg->sessions.enabled)
            f[n++] = "telebridge/sessions/+";
    }
    return m->mqtt ? mqtt_client_set_fixed_filters(m->mqtt, f, n) : 0;
}

struct membership *membership_new(const struct tb_config *cfg, struct mqtt_client *mqtt,
                                  struct alert_runtime *alerts, struct session_registry *sessions)
{
    struct membership *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mqtt = mqtt;
    m->alerts = alerts;
    m->sessions = sessions;
    const char *iid = cfg->cluster.instance_id ? cfg->cluster.instance_id : "telebridge";
    session_uuid4(m->token);
    if (!(m->sync_topic = mqtt_client_own_topic(iid, "sync")))
        goto fail;
    if (cfg->cluster.name && !(m->cl = cluster_new(iid, cfg->cluster.name)))
        goto fail;
    if (set_filters(m, cfg) < 0)
        goto fail;
    alert_runtime_set_cluster(alerts, m->cl);
    session_registry_set_cluster(sessions, m->cl);
    if (m->cl)
        LOG_INFO("cluster", "instance %s of cluster %s: alerts and session requests are shared by "
                 "rendezvous hashing over the live members", iid, cfg->cluster.name);
    return m;
fail:
    LOG_ERROR("cluster", "out of memory");
    membership_free(m);
    return NULL;
}

void membership_free(struct membership *m)
{
    if (!m)
        return;
    alert_runtime_set_cluster(m->alerts, NULL);
    session_registry_set_cluster(m->sessions, NULL);
    cluster_free(m->cl);
    free(m->sync_topic);
    free(m);
}

const struct cluster *membership_cluster(const struct membership *m)
{
    return m ? m->cl : NULL;
}

void membership_on_connected(struct membership *m, uint64_t now_ms)
{
    if (!m || !m->mqtt || alert_runtime_ready(m->alerts))
        return;
    if (mqtt_client_publish(m->mqtt, m->sync_topic, m->token, strlen(m->token), 1, false) == 0) {
        m->waiting = true;
        m->sent_at = now_ms;
    }
}

void membership_tick(struct membership *m, uint64_t now_ms)
{
    if (!m || !m->waiting || now_ms - m->sent_at < MEMBERSHIP_SYNC_WAIT_MS)
        return;
    m->waiting = false;
    if (!alert_runtime_ready(m->alerts)) {
        LOG_WARN("alert", "the sync marker on %s did not come back within %d ms: evaluating the "
                 "rules without knowing that the retained alert state is complete",
                 m->sync_topic, MEMBERSHIP_SYNC_WAIT_MS);
        alert_runtime_set_ready(m->alerts);
    }
}

static void on_member(struct membership *m, const char *id, enum cluster_topic kind,
                      const struct mqtt_event *ev)
{
    int rc;
    if (kind == CLUSTER_TOPIC_STATUS)
        rc = cluster_on_status(m->cl, id, ev->payload_len == 6 && memcmp(ev->payload, "online", 6) == 0);
    else
        rc = cluster_on_name(m->cl, id, ev->payload);
    if (rc < 0 && log_ratelimit_allow("cluster-too-many", 60000))
        LOG_WARN("cluster", "%s: more than %d bridge ids on the broker; not tracked", ev->topic,
                 CLUSTER_MAX_TRACKED);
    if (rc != 1)
        return;
    char list[LIST_MAX];
    cluster_live_list(m->cl, list, sizeof list);
    LOG_INFO("cluster", "live set changed (%s %s): %zu member(s): %s", id,
             cluster_is_live(m->cl, id) ? "joined" : "left", cluster_live_count(m->cl), list);
    alert_runtime_on_membership(m->alerts);
}

bool membership_on_event(struct membership *m, const struct tb_config *cfg, const struct mqtt_event *ev)
{
    if (!m)
        return false;
    if (strcmp(ev->topic, m->sync_topic) == 0) {
        if (ev->payload_len == strlen(m->token) && memcmp(ev->payload, m->token, ev->payload_len) == 0) {
            m->waiting = false;
            alert_runtime_set_ready(m->alerts);
        }
        return true;
    }
    if (!m->cl)
        return false;
    char id[CLUSTER_ID_MAX + 1];
    enum cluster_topic kind = cluster_parse_topic(ev->topic, id, sizeof id);
    if (kind != CLUSTER_TOPIC_NONE) {
        on_member(m, id, kind, ev);
        return true;
    }
    if (strncmp(ev->topic, "telebridge/ack/", 15) == 0) {
        alert_runtime_on_forwarded_ack(m->alerts, ev->payload, ev->payload_len);
        return true;
    }
    return cfg->sessions.enabled && session_on_issued(m->sessions, &cfg->sessions, m->mqtt, ev->topic, ev->payload, ev->payload_len);
}
