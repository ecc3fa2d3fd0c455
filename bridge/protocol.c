/* protocol: client request dispatch. Service thread only.
 *
 * The handler table is the one place a new request type is added. A handler gets the
 * parsed object and the request id (or NULL) and answers through bridge_send_control. */
#include "protocol.h"

#include <string.h>

#include "alert_runtime.h"
#include "bridge.h"
#include "log.h"

typedef void (*handler_fn)(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id);

/* Replies carry the request's "id" at the top level: {"type":"pong","ts":..,"id":..}. */
static void send_reply(struct bridge *br, struct conn *c, const char *type, cJSON *top,
                       const cJSON *data, const cJSON *id)
{
    if (!top)
        top = cJSON_CreateObject();
    if (id)
        cJSON_AddItemToObject(top, "id", cJSON_Duplicate(id, true));
    bridge_send_frame(br, c, type, top, data);
    cJSON_Delete(top);
}

void protocol_send_error(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                         const char *msg)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "code", code);
    cJSON_AddStringToObject(top, "message", msg);
    send_reply(br, c, "error", top, NULL, id);
    if (++c->bad_frames >= TB_MAX_BAD_FRAMES)
        conn_close(c, TB_CLOSE_POLICY, "too many invalid frames");
}

static void handle_ping(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    (void)req;
    send_reply(br, c, "pong", NULL, NULL, id);
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"ping", handle_ping},
    {"ack_alert", alert_runtime_handle_ack},
};

void protocol_on_open(struct bridge *br, struct conn *c) { (void)br; (void)c; }
void protocol_on_close(struct bridge *br, struct conn *c) { (void)br; (void)c; }

void protocol_handle_frame(struct bridge *br, struct conn *c, const char *data, size_t len, bool binary)
{
    if (binary) {
        protocol_send_error(br, c, NULL, TB_ERR_BINARY, "binary frames are not supported; send JSON text");
        return;
    }
    if (len > br->cfg->server.max_message_bytes) {
        protocol_send_error(br, c, NULL, TB_ERR_TOO_LARGE, "frame larger than max_message_bytes");
        return;
    }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!req) {
        protocol_send_error(br, c, NULL, TB_ERR_BAD_JSON, "frame is not valid JSON");
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (!cJSON_IsObject(req)) {
        protocol_send_error(br, c, NULL, TB_ERR_NOT_OBJECT, "a request must be a JSON object");
        goto done;
    }
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id)) {
        protocol_send_error(br, c, NULL, TB_ERR_BAD_FIELD, "\"id\" must be a string or a number");
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(req, "type");
    if (!cJSON_IsString(type)) {
        protocol_send_error(br, c, id, TB_ERR_BAD_FIELD, "\"type\" must be a string");
        goto done;
    }
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (strcmp(handlers[i].type, type->valuestring) == 0) {
            handlers[i].fn(br, c, req, id);
            goto done;
        }
    }
    protocol_send_error(br, c, id, TB_ERR_UNKNOWN_TYPE, "unknown request type");
done:
    cJSON_Delete(req);
}
