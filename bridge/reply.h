/* reply: how the bridge answers a client request: replies, errors and refusals, and the
 * error codes they carry (docs/protocol.md).
 *
 * Every request handler (subscribe, session, alert acks, the dispatcher itself) answers
 * through these, so a reply always has the same shape: {"type":T,"ts":..,<fields>,
 * "id":<the request's id>}. An error for an invalid frame also counts against the
 * connection's abuse budget: a client that keeps sending invalid frames is closed with
 * TB_CLOSE_POLICY. Service thread only. */
#ifndef TB_REPLY_H
#define TB_REPLY_H

#include <cjson/cJSON.h>

struct conn;
struct fanout;

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
#define TB_ERR_UNKNOWN_ALERT "unknown_alert"
#define TB_ERR_NOT_ALLOWED "not_allowed"
/* Per-room codes in the "rejected" list of subscribed / unsubscribed. */
#define TB_ERR_BAD_ROOM "bad_room"
#define TB_ERR_ROOM_NOT_ALLOWED "not_allowed"
#define TB_ERR_NOT_SUBSCRIBED "not_subscribed"
#define TB_ERR_ROOM_LIMIT "room_limit"   /* server.max_client_rooms: no new room for clients */
#define TB_ERR_UNAUTHORIZED "unauthorized"   /* no, invalid or expired credential */
#define TB_ERR_FORBIDDEN "forbidden"         /* the identity is not permitted this */
#define TB_ERR_BUSY "busy"               /* the request's pattern work budget is spent; retry */
#define TB_ERR_RATE_LIMITED "rate_limited" /* limits.client_rate: the message was not processed */

/* Invalid frames tolerated per connection before it is closed. */
#define TB_MAX_BAD_FRAMES 20

/* Sends {"type":type,"ts":..,<members of top>,"id":id}; consumes 'top' (may be NULL). */
void reply_send(struct fanout *f, struct conn *c, const char *type, cJSON *top, const cJSON *id);
/* Sends {"type":"error","code":code,"message":msg[,"id":id]} for a valid request the
 * bridge will not carry out (not counted as a bad frame). */
void reply_refusal(struct fanout *f, struct conn *c, const cJSON *id, const char *code, const char *msg);
/* The same frame for an invalid request, counted as a bad frame. */
void reply_error(struct fanout *f, struct conn *c, const cJSON *id, const char *code, const char *msg);

#endif
