/* router: from an MQTT message to (room, type) deliveries, driven by the config's routes.
 *
 * The payload is examined once per message: UTF-8 checked, parsed as JSON (for 'when'
 * filters, payload templates and alerts), and its outgoing JSON text chosen (the raw
 * payload when it is a complete JSON document, else a JSON string of it). Then every
 * route whose pattern matches and whose 'when' holds renders its room templates and
 * delivers once per distinct room. Service thread. */
#ifndef TB_ROUTER_H
#define TB_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "sbuf.h"

struct bridge;
struct tb_config;

struct inbound {
    const char *topic;
    const char *raw;        /* payload bytes as received */
    size_t raw_len;
    cJSON *json;            /* parsed payload, or NULL when not JSON */
    const char *data;       /* JSON text to embed as "data" */
    size_t data_len;
    struct sbuf text;       /* storage for 'data' when the payload is not JSON */
};

/* Fills 'in' from a payload; inbound_free releases it. */
void inbound_init(struct inbound *in, const char *topic, const char *payload, size_t len);
void inbound_free(struct inbound *in);

/* Routes one message under the current config; returns the number of deliveries. */
size_t router_route(struct bridge *br, const struct tb_config *cfg, struct inbound *in);

/* True when some route's pattern matches 'topic'. */
bool router_matches(const struct tb_config *cfg, const char *topic);

/* Where would this message go? Calls fn for each (route index, room) without delivering. */
void router_explain(const struct tb_config *cfg, struct inbound *in,
                    void (*fn)(size_t route, const char *room, void *ud), void *ud);

#endif
