/* uplink_runtime: client publishes to MQTT and the replies to them (docs/uplink.md).
 *
 * protocol.c hands over every request whose type is not one of the bridge's own. When the
 * connection's endpoint has a publish rule for that type the request is checked
 * (uplink.h: shape, size, retain, topic values; here: who the sender is, whether it may
 * use that topic, the per-rule rate) and published; otherwise the client gets
 * not_allowed (another endpoint has such a rule) or the caller answers unknown_type.
 *
 * Request/response: a rule with 'reply' publishes with a response topic
 * telebridge/<client_id>/reply/<token>: "reply_to" + "correlation" (= token) in the payload,
 * and with MQTT 5 also as Response Topic + Correlation Data (a responder on 3.1.1 sees no
 * properties, so the payload always carries them). The config subscribes
 * telebridge/<client_id>/reply/#; a message there is matched by the token in its last
 * topic level and delivered as {"type":"reply","id":<request id>,"data":..} to the
 * requesting connection only. No reply within the rule's timeout:
 * {"type":"error","code":"timeout","id":..}. Pending requests are bounded per connection
 * and overall, and freed when their connection closes.
 *
 * THE IDENTITY SEAM (issue 13): who the sender is and what it may publish come from one
 * policy (struct uplink_policy). The default, uplink_policy_from_config, takes the sender
 * from the connection's authenticated identity (a token's subject or an API key's identity,
 * access.h) and, on a connection without one, from the endpoint's 'identity' path capture;
 * the permission comes from the rule's allow_topics globs, and with access control from the
 * endpoint's 'require' (its path captures bound to the token's claims before the connection
 * is admitted). Another policy can be registered with uplink_runtime_set_policy.
 *
 * Service thread only. */
#ifndef TB_UPLINK_RUNTIME_H
#define TB_UPLINK_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "topic.h"
#include "uplink.h"

struct conn;
struct fanout;
struct mqtt_client;
struct mqtt_event;

#define UPLINK_MAX_PENDING_PER_CONN 16    /* requests one connection may have waiting */
#define UPLINK_MAX_PENDING 10000          /* the same for the whole bridge */

/* Who sent a request, as the policy sees it. */
struct uplink_who {
    const struct cfg_endpoint *ep;     /* the connection's endpoint in the current config */
    struct topic_match path;           /* its path captures (slices of the connection's path) */
    char sender[UPLINK_SENDER_MAX + 1];/* "" = anonymous ("sender": null) */
};

struct uplink_policy {
    /* Fills 'who' for connection c; false when the connection may not publish at all
     * (its endpoint is gone). */
    bool (*identity)(void *ud, const struct tb_config *cfg, const struct conn *c, struct uplink_who *who);
    /* May 'who' publish rule r's message to 'topic'? NULL = yes, else the refusal message. */
    const char *(*permit)(void *ud, const struct uplink_who *who, const struct cfg_publish *r,
                          const char *topic);
    void *ud;
};

/* The default policy: the authenticated identity or the 'identity' capture; allow_topics. */
extern const struct uplink_policy uplink_policy_from_config;

struct uplink_stats {
    uint64_t published;     /* client messages published to MQTT */
    uint64_t refused;       /* client messages refused (any reason) */
    uint64_t rate_limited;  /* of those, over the rule's rate */
    uint64_t replies;       /* replies delivered */
    uint64_t timeouts;      /* requests that got no reply in time */
    uint64_t stray_replies; /* messages on the reply topic matching no pending request */
    size_t pending;         /* requests waiting for a reply now */
};

struct uplink_runtime;

/* 'mqtt' may be NULL (then every publish is refused with broker_unavailable). */
struct uplink_runtime *uplink_runtime_new(struct fanout *f, struct mqtt_client *mqtt);
void uplink_runtime_free(struct uplink_runtime *u);   /* NULL is harmless */
void uplink_runtime_set_mqtt(struct uplink_runtime *u, struct mqtt_client *mqtt);
void uplink_runtime_set_policy(struct uplink_runtime *u, const struct uplink_policy *p);

/* A request of type 'type' from c. False when no endpoint has a rule for that type (the
 * caller answers unknown_type); true when it was handled (published or refused). */
bool uplink_runtime_handle(struct uplink_runtime *u, const struct tb_config *cfg, struct conn *c,
                           const char *type, const cJSON *req, const cJSON *id);
/* An MQTT message: true when it was on this bridge's reply topic (consumed). */
bool uplink_runtime_on_mqtt(struct uplink_runtime *u, const struct tb_config *cfg,
                            const struct mqtt_event *ev);
/* Times out pending requests. */
void uplink_runtime_tick(struct uplink_runtime *u, uint64_t now_ms);
/* Frees the connection's uplink state and its pending requests (before conn_free). */
void uplink_runtime_conn_close(struct uplink_runtime *u, struct conn *c);
void uplink_runtime_stats(const struct uplink_runtime *u, struct uplink_stats *out);

#endif
