/* router: from an MQTT message to (route, room) deliveries, driven by the config's routes.
 *
 * The payload is examined once per message: UTF-8 checked, parsed as JSON (for 'when'
 * filters, payload templates and alerts), and its outgoing JSON text chosen (the raw
 * payload when it is a complete JSON document, else a JSON string of it). Then every
 * route whose pattern matches and whose 'when' holds renders its room templates, once
 * per distinct room. The router delivers nothing: it returns the deliveries, and the
 * caller hands them to fanout. Pure apart from rate-limited log lines; any one thread
 * per router_out. */
#ifndef TB_ROUTER_H
#define TB_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "sbuf.h"
#include "stats.h"

#define ROUTER_ROOM_MAX 256

struct inbound {
    const char *topic;
    const char *raw;        /* payload bytes as received */
    size_t raw_len;
    cJSON *json;            /* parsed payload, or NULL when not JSON */
    const char *data;       /* JSON text to embed as "data" */
    size_t data_len;
    struct sbuf text;       /* storage for 'data' when the payload is not JSON */
    bool has_nul;           /* JSON with a \u0000 escape: selects no room (cut strings) */
};

/* True when a payload-reading room template of route r may render to 'room'
 * (route.rooms_allowed, '*' globs). */
bool router_room_allowed(const struct cfg_route *r, const char *room);

/* Fills 'in' from a payload; inbound_free releases it. */
void inbound_init(struct inbound *in, const char *topic, const char *payload, size_t len);
void inbound_free(struct inbound *in);

/* One (route, room) pair a message goes to. */
struct route_delivery {
    const struct cfg_route *route;
    size_t route_index;
    char room[ROUTER_ROOM_MAX];
};

/* The deliveries of one message; reused from message to message (no allocation once it
 * has grown), freed with router_out_free. */
struct router_out {
    struct route_delivery *v;
    size_t n, cap;
};
void router_out_free(struct router_out *out);

/* Routes one message under 'cfg': fills 'out' (emptied first) with its deliveries in
 * route order and returns their number. Counts non_json, unrouted and room_errors in st.
 * Deliveries that do not fit in memory are dropped and logged. */
size_t router_route(const struct tb_config *cfg, struct inbound *in, struct router_out *out,
                    struct tb_stats *st);

/* The key a keep_last per_topic / {by: payload.x} route keeps this message under in a
 * room's keyed store: "<type>\x1f<topic or field value>" in out. NULL when the route keeps
 * no keyed value, the field is missing or neither a string nor a number, or the key does
 * not fit (the message is then delivered but not kept). */
const char *router_keep_key(const struct cfg_route *r, const struct inbound *in, char *out,
                            size_t outlen);

/* True when some route's pattern matches 'topic'. */
bool router_matches(const struct tb_config *cfg, const char *topic);

/* Where would this message go? Calls fn for each (route index, room) without delivering. */
void router_explain(const struct tb_config *cfg, struct inbound *in,
                    void (*fn)(size_t route, const char *room, void *ud), void *ud);

#endif
