/* stats: the delivery counters, one plain struct passed down to the modules that count.
 *
 * The service layer owns it; router, conn, writer and fanout get a pointer and add to
 * it, so no lower module calls up to count. Service thread only: writer threads never
 * touch it (the service thread counts what they sent after they are done). */
#ifndef TB_STATS_H
#define TB_STATS_H

#include <stdint.h>

/* Refusals of clients, by reason: /metrics telebridge_refused_total{reason=...} and /health
 * "refused" (docs/configuration.md, "limits"). */
enum tb_refusal {
    TB_REFUSED_RATE,              /* client messages over limits.client_rate (not processed) */
    TB_REFUSED_RATE_CLOSED,       /* connections closed 1008 for going on (limits.close_after) */
    TB_REFUSED_HANDSHAKE_RATE,    /* upgrades over limits.handshake_rate: 429 */
    TB_REFUSED_PER_ADDRESS,       /* upgrades over limits.max_per_address: 503 */
    TB_REFUSED_ADDRESS_TABLE,     /* upgrades while limits.max_addresses are all live: 503 */
    TB_REFUSED_CAPACITY,          /* server / endpoint max_connections, descriptors: 503 */
    TB_REFUSED_ORIGIN,            /* allowed_origins: 403 */
    TB_REFUSED_NOT_FOUND,         /* upgrade to no endpoint: 404 */
    TB_REFUSED_SHUTDOWN,          /* upgrade while shutting down: 503 */
    TB_REFUSED_SUBSCRIPTIONS,     /* subscribe past max_rooms_per_connection: too_many_rooms */
    TB_REFUSED_BAD_REQUEST,       /* an upgrade lws cannot take (Sec-WebSocket-Protocol too long): 400 */
    TB_REFUSED_COUNT
};

/* The label value of each reason, in enum order. */
static inline const char *tb_refusal_name(enum tb_refusal r)
{
    static const char *const names[TB_REFUSED_COUNT] = {
        "rate", "rate_closed", "handshake_rate", "per_address", "address_table",
        "capacity", "origin", "not_found", "shutting_down", "subscriptions", "bad_request",
    };
    return (unsigned)r < TB_REFUSED_COUNT ? names[r] : "other";
}

struct tb_stats {
    uint64_t received;     /* MQTT messages taken from the queue */
    uint64_t routed;       /* (message, room) deliveries serialized */
    uint64_t delivered;    /* frames written to WebSocket clients */
    uint64_t dropped;      /* frames not delivered (queue full on disconnect routes, drop policy) */
    uint64_t conflated;    /* frames superseded by a newer one for a slow client */
    uint64_t non_json;     /* payloads that were not JSON */
    uint64_t unrouted;     /* messages no route matched */
    uint64_t room_errors;  /* room templates that could not be rendered */
    uint64_t rooms_not_allowed; /* payload-chosen rooms outside the route's rooms_allowed */
    uint64_t rooms_refused; /* rooms not created because server.max_rooms was reached */
    uint64_t client_rooms_refused; /* client-created rooms refused (server.max_client_rooms) */
    uint64_t payloads_refused;     /* MQTT payloads over server.max_payload_bytes */
    uint64_t pattern_rooms_walked; /* rooms matched against newly subscribed patterns */
    uint64_t patterns_busy;        /* patterns refused "busy" (SUB_WALK_BUDGET) */
    uint64_t refused[TB_REFUSED_COUNT]; /* client refusals by reason */
    uint64_t auth_unauthorized;    /* connections refused or closed 4401 (gate.c) */
    uint64_t auth_forbidden;       /* connections refused 4403 (gate.c) */
    uint64_t sessions_unknown;     /* session-room deliveries refused by sessions.validate */
};

#endif
