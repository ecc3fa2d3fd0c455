/* stats: the delivery counters, one plain struct passed down to the modules that count.
 *
 * The service layer owns it; router, conn, writer and fanout get a pointer and add to
 * it, so no lower module calls up to count. Service thread only: writer threads never
 * touch it (the service thread counts what they sent after they are done). */
#ifndef TB_STATS_H
#define TB_STATS_H

#include <stdint.h>

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
    uint64_t sessions_unknown;     /* session-room deliveries refused by sessions.validate */
};

#endif
