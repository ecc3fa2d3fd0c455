/* protocol: frames sent by WebSocket clients, dispatched by their "type".
 *
 * Every request is a JSON object with a "type" and an optional "id" that the reply
 * echoes. Handlers live in a table (type -> function); anything that is not a JSON
 * object with a known type gets an "error" frame, and a connection that keeps sending
 * invalid frames is closed with TB_CLOSE_POLICY. Nothing a client sends reaches other
 * clients except through a handler. Service thread only. */
#ifndef TB_PROTOCOL_H
#define TB_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct bridge;
struct conn;

/* Error codes carried in {"type":"error","code":...} (docs/protocol.md). */
#define TB_ERR_BAD_JSON "bad_json"
#define TB_ERR_NOT_OBJECT "not_object"
#define TB_ERR_UNKNOWN_TYPE "unknown_type"
#define TB_ERR_BAD_FIELD "bad_field"
#define TB_ERR_TOO_LARGE "too_large"
#define TB_ERR_BINARY "binary_not_supported"
#define TB_ERR_BAD_UTF8 "bad_utf8"
#define TB_ERR_INTERNAL "internal"                 /* out of memory; try again */
/* Refusals: a well-formed request the bridge will not carry out (not counted as abuse). */
#define TB_ERR_SUBSCRIPTIONS_DISABLED "subscriptions_disabled"
#define TB_ERR_SESSIONS_DISABLED "sessions_disabled"
#define TB_ERR_UNKNOWN_SESSION "unknown_session"
#define TB_ERR_TOO_MANY_ROOMS "too_many_rooms"     /* also a per-room code in "rejected" */
/* Per-room codes in the "rejected" list of subscribed / unsubscribed. */
#define TB_ERR_BAD_ROOM "bad_room"
#define TB_ERR_ROOM_NOT_ALLOWED "not_allowed"
#define TB_ERR_NOT_SUBSCRIBED "not_subscribed"

/* Invalid frames tolerated per connection before it is closed. */
#define TB_MAX_BAD_FRAMES 20

/* Bridge-wide state of the protocol modules (bridge->protocol). */
struct proto_conn;
struct session_registry;
struct protocol_state {
    struct proto_conn *pattern_conns;   /* subscribe.c: connections holding patterns */
    struct session_registry *sessions;  /* session.c: issued session ids */
};
/* Created on first use; NULL when out of memory. */
struct protocol_state *protocol_state(struct bridge *br);
/* Frees it (at shutdown, after every connection is closed). */
void protocol_shutdown(struct bridge *br);

void protocol_on_open(struct bridge *br, struct conn *c);
void protocol_on_close(struct bridge *br, struct conn *c);
void protocol_handle_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary);

/* Sends {"type":"error","code":code,"message":msg[,"id":id]} and counts the bad frame. */
void protocol_send_error(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                         const char *msg);
/* Same frame for a refusal of a valid request: not counted as a bad frame. */
void protocol_send_refusal(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                           const char *msg);
/* Sends {"type":type,"ts":..,<members of top>,"id":id}; consumes 'top' (may be NULL). */
void protocol_reply(struct bridge *br, struct conn *c, const char *type, cJSON *top, const cJSON *id);

#endif
