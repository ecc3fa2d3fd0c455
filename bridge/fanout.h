/* fanout: delivery of messages to rooms and of frames to connections.
 *
 * Everything that puts a frame into a connection's queue goes through here:
 *   - routed messages: the envelope {"type","room"[,"rooms"],"topic","seq","ts","data"}
 *     is serialized once per room, remembered by the room (keep_last per type or per key,
 *     history) and queued by reference for every member; shaped members (fields,
 *     max_rate) get one projection per distinct field list (shape_cache) and their rate
 *     slots; with delivery: once a member already served this message and type through
 *     another room is skipped (a stamp on the connection), and a member still walking the
 *     room's keyed snapshot gets a kept message from its cursor;
 *   - control frames {"type","ts",...,"data"} built once, for one connection or many;
 *   - what a connection gets on joining a room: its last values (shaped), then what the
 *     features registered with fanout_on_join_state add (the active alerts);
 *   - history replays planned by the caller (room_history_since).
 * Rooms are created here (fanout_room), within server.max_rooms.
 *
 * Upward, fanout knows nothing: features register hooks (who watches new rooms, what a
 * joiner gets besides last values, who may join a room). Service thread only; the
 * max_rate timers are lws timers on the service loop. */
#ifndef TB_FANOUT_H
#define TB_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "conn.h"
#include "room.h"
#include "stats.h"

struct fanout;
struct lws_context;
struct sub_shape;

struct fanout *fanout_new(struct room_registry *rooms, struct tb_stats *st);
/* Frees the fanout (not the registry); every connection must be closed. NULL is harmless. */
void fanout_free(struct fanout *f);

/* server.max_rooms of the running config (start and every reload). */
void fanout_set_max_rooms(struct fanout *f, size_t max_rooms);
/* server.max_client_rooms: rooms created for clients (fanout_join) and not routed to
 * since; they cannot starve routed rooms (issue 14, point 2). */
void fanout_set_max_client_rooms(struct fanout *f, size_t max_client_rooms);
/* The counters fanout adds to (for the features above it that count through it). */
struct tb_stats *fanout_stats(const struct fanout *f);
/* The service loop's context, for max_rate timers (NULL: rate-limited messages wait
 * for the next delivery instead). */
void fanout_set_timer_context(struct fanout *f, struct lws_context *ctx);

/* ---- hooks the feature layer registers (one each; NULL removes) ---- */
/* Might a room created now get members at once (client patterns)? When not, delivering
 * to a room that does not exist and keeps nothing costs nothing. */
void fanout_watch_new_rooms(struct fanout *f, bool (*watching)(void *ud), void *ud);
/* Sent to a connection after a room's last values when it joins the room. */
void fanout_on_join_state(struct fanout *f, void (*fn)(void *ud, struct conn *c, struct sub *s), void *ud);
/* May connection c join 'room'? Without a hook every room may be joined. */
void fanout_set_authorizer(struct fanout *f,
                          bool (*may_join)(void *ud, const struct conn *c, const char *room), void *ud);
bool fanout_may_join(const struct fanout *f, const struct conn *c, const char *room);

/* ---- rooms ---- */
struct room_registry *fanout_rooms(const struct fanout *f);
/* Finds or creates a room; NULL when out of memory or when max_rooms is reached
 * (counted in rooms_refused). */
struct room *fanout_room(struct fanout *f, const char *name);
/* Joins a room (idempotent); NULL when the room cannot be had. A room it creates is a
 * client room, within max_client_rooms (refusals counted in client_rooms_refused). */
struct sub *fanout_join(struct fanout *f, struct conn *c, const char *room);

/* ---- routed messages ---- */
/* Delivers one message to a room under a route's type and policies. 'data' is JSON text
 * (the payload, or a JSON string for non-JSON payloads). */
void fanout_deliver(struct fanout *f, const char *room, const struct cfg_route *route,
                    const char *topic, const char *data, size_t data_len);
/* The same for a keep_last per_topic / {by: ...} route: 'key' (router_keep_key) names the
 * value the room keeps; NULL keeps none. Members still receiving the room's snapshot get
 * a kept message from the snapshot cursor, not directly (no duplicate, seqs in order). */
void fanout_deliver_keyed(struct fanout *f, const char *room, const struct cfg_route *route,
                          const char *key, const char *topic, const char *data, size_t data_len);
/* server.delivery: with 'once' (the default) a connection gets one frame per MQTT message
 * and type however many of its rooms the message reaches; the frame names the route's
 * rooms ("rooms"). Without, one frame per room (as before issue 15). */
void fanout_set_delivery_once(struct fanout *f, bool once);
/* A new MQTT message, to be delivered to 'n_deliveries' (route, room) pairs: from here
 * on until the next call, a connection gets it once per type (fanout_set_delivery_once).
 * fanout_deliver and fanout_deliver_keyed call it themselves. */
void fanout_message_begin(struct fanout *f, size_t n_deliveries);
/* One route's deliveries of the current message: rooms[0..n) (n >= 1). With 'once' and
 * n > 1 every room's envelope names them all in "rooms". */
void fanout_deliver_rooms(struct fanout *f, const struct cfg_route *route, const char *key,
                          const char *const *rooms, size_t n, const char *topic,
                          const char *data, size_t data_len);
/* What a joiner gets: the room's keep_last values (one per type, oldest first, shaped),
 * its keyed values (a snapshot the queue takes in paced steps, conn_pump_snapshots; the
 * join state may come before its end), then the registered join state. */
void fanout_send_room_state(struct fanout *f, struct conn *c, struct sub *s);
/* Queues the history entries of 'span' (room_history_since) to s, shaped; the caller made
 * sure they fit (they are never conflated: a gap would be silent). */
void fanout_replay(struct fanout *f, struct sub *s, const struct room_span *span);
/* Changes a subscription's shape; a message waiting for a rate slot goes out when the
 * new shape has no rate limit. Takes its own reference on sh. */
void fanout_set_shape(struct sub *s, struct sub_shape *sh);

/* ---- control frames ---- */
/* {"type":T,"ts":..,<members of top>,"data":D} built once for many connections; NULL
 * when out of memory. 'top' and 'data' (cJSON, not consumed) may be NULL. */
struct tb_msg *fanout_build_control(struct fanout *f, const char *type, const cJSON *top,
                                    const cJSON *data);
void fanout_send_frame(struct fanout *f, struct conn *c, const char *type, const cJSON *top,
                       const cJSON *data);
static inline void fanout_send_control(struct fanout *f, struct conn *c, const char *type,
                                       const cJSON *data)
{
    fanout_send_frame(f, c, type, NULL, data);
}

/* The connection is closing: its rate timer is cancelled and freed. */
void fanout_conn_close(struct fanout *f, struct conn *c);

#endif
