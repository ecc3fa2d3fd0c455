/* uplink: what a WebSocket client may publish to MQTT, checked against its endpoint's
 * publish rules (config 'publish', docs/uplink.md). Pure; any thread.
 *
 * A client frame {"type":T,"id":..,"data":{..},"retain":false} is published only when a
 * rule of its endpoint has type T and every check passes, in this order: "data" is an
 * object without the keys the bridge sets (sender, reply_to, correlation); its keys are
 * among 'fields' (when listed) and include 'required'; its JSON text is at most
 * 'max_bytes'; "retain": true only where the rule allows it; the topic template renders
 * (captures of the path, {data.x} values that are numbers or 1-64 of [A-Za-z0-9_.-], so a
 * value cannot add a level or a wildcard: '/', '+', '#', NUL and "" are refused); the
 * rendered topic holds no wildcard, space, control character or empty level and is outside
 * telebridge/ (path captures are URL-decoded: "%2B" is a "+"). The published payload is
 * "data" plus "sender" (the identity the caller passes, never the client's text) and, for
 * a command that waits for a reply, "reply_to" and "correlation".
 *
 * The per-connection publish rate is a token bucket (uplink_bucket_take). Who the sender
 * is and which topics it may use is decided above (uplink_runtime.h). */
#ifndef TB_UPLINK_H
#define TB_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "topic.h"

#define UPLINK_TOPIC_MAX 512
#define UPLINK_SENDER_MAX 128

/* Why a request was not published: the error code and a message for the client. */
struct uplink_refusal {
    const char *code;       /* TB error code text: bad_field, too_large, not_allowed, ... */
    char msg[320];
};

/* What to publish; payload is malloc'd (uplink_out_free). */
struct uplink_out {
    char topic[UPLINK_TOPIC_MAX];
    char *payload;
    size_t len;
    bool retain;
};

/* Set by the bridge, never by the client. */
struct uplink_stamp {
    const char *sender;          /* NULL = anonymous ("sender": null) */
    const char *reply_to;        /* a command: put in the payload with correlation; else NULL */
    const char *correlation;
};

/* The rule of 'ep' for client message type 'type', or NULL. */
const struct cfg_publish *uplink_rule(const struct cfg_endpoint *ep, const char *type);
/* True when any endpoint of cfg has a rule for 'type' (a refusal then says not_allowed
 * rather than unknown_type). */
bool uplink_type_known(const struct tb_config *cfg, const char *type);

/* Checks request 'req' (the whole client object) against rule r with the endpoint path's
 * captures 'path' and fills 'out'. Returns 0, or -1 with 'why' filled (nothing to free). */
int uplink_build(const struct cfg_publish *r, const struct topic_match *path, const cJSON *req,
                 const struct uplink_stamp *stamp, struct uplink_out *out, struct uplink_refusal *why);
void uplink_out_free(struct uplink_out *out);

/* A token bucket: 'per_second' tokens a second up to 'burst'. Starts full. */
struct uplink_bucket {
    double tokens;
    uint64_t last_ms;
    bool started;
};
/* Takes one token at now_ms; false when none is left (the request is refused). */
bool uplink_bucket_take(struct uplink_bucket *b, size_t per_second, size_t burst, uint64_t now_ms);

#endif
