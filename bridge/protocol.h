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

/* Invalid frames tolerated per connection before it is closed. */
#define TB_MAX_BAD_FRAMES 20

void protocol_on_open(struct bridge *br, struct conn *c);
void protocol_on_close(struct bridge *br, struct conn *c);
void protocol_handle_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary);

/* Sends {"type":"error","code":code,"message":msg[,"id":id]} and counts the bad frame. */
void protocol_send_error(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                         const char *msg);

#endif
