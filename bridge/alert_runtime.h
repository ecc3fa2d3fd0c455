/* alert_runtime: wires the pure alert engine (alert.h) into the running bridge.
 *
 * Thread: service thread only (the libwebsockets loop). Its state is struct
 * alert_runtime, owned by the bridge; it delivers through fanout and publishes through
 * mqtt_client, both handed to it at creation.
 *
 * What it does:
 *   - start: builds the engine from the config's alert rules and asks mqtt_client for
 *     extra subscriptions (mqtt_client_set_extra_filters, kept apart from the route
 *     filters so a reload of the routes cannot drop them): the retained alert topics
 *     (a filter derived from each rule's publish_topic, "alerts/#" by default) and,
 *     when an inactivity rule exists, "vehicle/+/status";
 *   - every MQTT message: a retained message on an alert topic restores that alert
 *     (alert_engine_restore: no new raise is announced); "offline" on vehicle/<id>/status
 *     forces the inactivity rules of <id>; anything else is evaluated by the rules;
 *   - every event is fanned out to the alert's rooms ("alert", "alert_cleared",
 *     "alert_acknowledged"; a connection in several of an alert's rooms gets it once)
 *     and published to its MQTT topic: retained JSON while active (again on ack),
 *     an empty retained message when cleared;
 *   - joins: a connection joining a room gets that room's active alerts (a join-state
 *     hook registered with fanout);
 *   - client requests {"type":"ack_alert","alert_id":..}: "acked" reply to the sender,
 *     "alert_acknowledged" to the rooms; refused with not_allowed unless the endpoint has
 *     ack: members and the client is in one of the alert's rooms; acknowledged_by is the
 *     endpoint's identity capture ("by" must equal it);
 *   - published states carry "origin" (and "sig", HMAC-SHA256, with alert_state.hmac_key);
 *     retained states without them are not restored (restore_refused).
 *
 * Config snapshots: the engine borrows the cfg_alert array of the snapshot it was last
 * given. The runtime holds its own reference (config_ref) on that snapshot and drops it
 * only after alert_engine_set_rules has switched to the next one, so a reload may
 * release its own reference to the old snapshot whenever it likes. */
#ifndef TB_ALERT_RUNTIME_H
#define TB_ALERT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct alert_runtime;
struct conn;
struct fanout;
struct inbound;
struct mqtt_client;
struct tb_config;

/* The topic whose "offline" payload raises the inactivity rules of {id} at once. */
#define ALERT_STATUS_PATTERN "vehicle/{id}/status"

/* Creates the runtime for cfg's alert rules (mqtt may be NULL: nothing is published)
 * and registers its join state with f. NULL when out of memory (the bridge then runs
 * without alerts; logged). */
struct alert_runtime *alert_runtime_new(const struct tb_config *cfg, struct fanout *f,
                                        struct mqtt_client *mqtt);
void alert_runtime_free(struct alert_runtime *rt);     /* NULL is harmless */

/* One MQTT message (after routing). 'retained' is the message's retain flag. */
void alert_runtime_on_message(struct alert_runtime *rt, const struct inbound *in, bool retained);

/* True when 'topic' is one of the runtime's retained alert-state topics (alerts/# by
 * default): the bridge's own publishes come back there and are not telemetry. */
bool alert_runtime_owns_topic(const struct alert_runtime *rt, const char *topic);

/* Duration and inactivity timers; call about once a second or more often. */
void alert_runtime_tick(struct alert_runtime *rt, uint64_t now_ms);

/* protocol handler for {"type":"ack_alert","alert_id":"<id>"[,"by":"<who>"][,"id":..]};
 * rt may be NULL (no alert is known). */
void alert_runtime_handle_ack(struct alert_runtime *rt, struct fanout *f, struct conn *c,
                              const cJSON *req, const cJSON *id);

/* Switches to the alert rules of new_cfg (config reload): rules that keep their name
 * and match keep their alerts; alerts of removed rules are cleared ("rule removed"),
 * announced and cleared on the broker; the extra subscriptions follow the new
 * publish topics. Takes its own reference on new_cfg. Returns 0 or -1 (old rules stay). */
int alert_runtime_apply_config(struct alert_runtime *rt, const struct tb_config *new_cfg);

/* Start-up: until this is called, telemetry is held back (not evaluated, ticks do
 * nothing), so no rule fires before the retained alert state has been read back; the
 * bridge calls it when its sync marker returns after the retained backlog. A runtime
 * without an MQTT client is ready at once. Replays what was held back. */
void alert_runtime_set_ready(struct alert_runtime *rt);
bool alert_runtime_ready(const struct alert_runtime *rt);

/* Several bridges as one (issue 16, docs/scaling.md). With a cluster (borrowed; NULL =
 * off) only the owner of an alert's key announces and publishes it (every member still
 * evaluates the rules, so a takeover continues the timers); published states carry
 * "instance"; peers' states are applied and shown to this bridge's clients; an ack on a
 * non-owner is forwarded to the owner on telebridge/ack/<alert id>. */
struct cluster;
void alert_runtime_set_cluster(struct alert_runtime *rt, const struct cluster *cl);
/* The live set changed: publish what the old owners left unpublished for keys we own now. */
void alert_runtime_on_membership(struct alert_runtime *rt);
/* A forwarded ack (payload of telebridge/ack/<alert id>); applied when we own the alert. */
void alert_runtime_on_forwarded_ack(struct alert_runtime *rt, const char *payload, size_t len);

/* Counters for /health or /metrics. */
struct alert_runtime_stats {
    size_t active;
    uint64_t raised, cleared, acknowledged, restored;
    uint64_t restore_refused;   /* retained states not restored (origin, sig, max_restored) */
    bool ready;                 /* the retained state has been read: rules are evaluated */
    uint64_t peer_applied;      /* cluster: states published by other members, applied */
    uint64_t acks_forwarded;    /* cluster: acks sent to the owner of the alert */
    uint64_t taken_over;        /* cluster: raises / clears published for a departed owner */
};
void alert_runtime_stats(const struct alert_runtime *rt, struct alert_runtime_stats *out);

/* Alerts raised and cleared per (rule, severity) since start, across reloads. */
struct alert_rule_count {
    char *rule;
    int severity;               /* enum cfg_severity */
    uint64_t raised, cleared;
};
/* The counters (valid until the next event); returns how many. rt may be NULL. */
size_t alert_runtime_rule_counts(const struct alert_runtime *rt, const struct alert_rule_count **out);

/* The subscription filter that covers every topic a publish_topic template source can
 * render to (exposed for tests): the literal levels before the first placeholder
 * followed by "#" ("alerts/{key}/{name}" -> "alerts/#"), or, when the template starts
 * with a placeholder, one "+" per level ("{key}/alerts/{name}" -> "+/alerts/+").
 * Writes into out; returns 0, or -1 when it does not fit. */
int alert_runtime_filter_for(const char *publish_topic_src, char *out, size_t outlen);

#endif
