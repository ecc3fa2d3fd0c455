/* membership: the bridge's own MQTT topics at start-up and in a cluster (issue 16).
 *
 * Thread: service thread; owned by the bridge. It subscribes (mqtt_client's fixed set):
 *   - telebridge/<instance_id>/sync: after every connect it publishes a marker there; the
 *     broker sends the retained messages of a subscription right after its SUBACK, so
 *     when the marker comes back the retained alert state (and cluster statuses) have
 *     been read: the alert runtime may start evaluating (alert_runtime_set_ready). If
 *     the marker does not come back within MEMBERSHIP_SYNC_WAIT_MS, the rules start
 *     anyway (logged);
 *   - with cluster.name: telebridge/+/status and telebridge/+/cluster (the live set,
 *     cluster.h), telebridge/ack/# (acks forwarded to the owner of an alert) and, with
 *     sessions, telebridge/sessions/+ (ids issued by members).
 * A change of the live set is logged and handed to the alert runtime (takeover). */
#ifndef TB_MEMBERSHIP_H
#define TB_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

struct alert_runtime;
struct cluster;
struct mqtt_client;
struct mqtt_event;
struct session_registry;
struct tb_config;

#define MEMBERSHIP_SYNC_WAIT_MS 10000

struct membership;

/* mqtt, alerts and sessions are borrowed (any may be NULL). NULL when out of memory. */
struct membership *membership_new(const struct tb_config *cfg, struct mqtt_client *mqtt,
                                  struct alert_runtime *alerts, struct session_registry *sessions);
void membership_free(struct membership *m);   /* NULL is harmless */

/* The broker connection is up (subscriptions acknowledged): publishes the sync marker. */
void membership_on_connected(struct membership *m, uint64_t now_ms);
/* True when the event was one of the bridge's own topics (consumed: not telemetry). */
bool membership_on_event(struct membership *m, const struct tb_config *cfg, const struct mqtt_event *ev);
void membership_tick(struct membership *m, uint64_t now_ms);

/* NULL when clustering is off. */
const struct cluster *membership_cluster(const struct membership *m);

#endif
