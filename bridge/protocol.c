/* protocol: client request dispatch. Service thread only.
 *
 * The handler table is the one place a new request type is added. A handler gets the
 * parsed object and the request id (or NULL) and answers through protocol_reply.
 * Subscriptions live in subscribe.c, race sessions in session.c; docs/protocol.md
 * describes every message, and docs/protocol.schema.json validates them. */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

#include "alert_runtime.h"
#include "bridge.h"
#include "log.h"
#include "session.h"
#include "subscribe.h"

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

void protocol_reply(struct bridge *br, struct conn *c, const char *type, cJSON *top, const cJSON *id)
{
    send_reply(br, c, type, top, NULL, id);
}

void protocol_send_refusal(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                           const char *msg)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "code", code);
    cJSON_AddStringToObject(top, "message", msg);
    send_reply(br, c, "error", top, NULL, id);
}

void protocol_send_error(struct bridge *br, struct conn *c, const cJSON *id, const char *code,
                         const char *msg)
{
    protocol_send_refusal(br, c, id, code, msg);
    if (++c->bad_frames >= TB_MAX_BAD_FRAMES)
        conn_close(c, TB_CLOSE_POLICY, "too many invalid frames");
}

struct protocol_state *protocol_state(struct bridge *br)
{
    if (!br->protocol)
        br->protocol = calloc(1, sizeof(struct protocol_state));
    return br->protocol;
}

void protocol_shutdown(struct bridge *br)
{
    if (!br->protocol)
        return;
    session_registry_free(br);
    free(br->protocol);
    br->protocol = NULL;
}

static void handle_ping(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    (void)req;
    send_reply(br, c, "pong", NULL, NULL, id);
}

/* The session id of a join_session / leave_session request, or NULL (error sent). */
static const char *session_field(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(req, "session_id");
    if (!cJSON_IsString(sid) || !session_id_valid(sid->valuestring)) {
        protocol_send_error(br, c, id, TB_ERR_BAD_FIELD,
                            "\"session_id\" must be a string of 1-64 letters, digits, '-', '_' or '.'");
        return NULL;
    }
    if (!br->cfg->sessions.enabled) {
        protocol_send_refusal(br, c, id, TB_ERR_SESSIONS_DISABLED, "race sessions are not configured");
        return NULL;
    }
    return sid->valuestring;
}

static void handle_join_session(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const char *sid = session_field(br, c, req, id);
    struct sub_opts o;
    if (!sid || subscribe_parse_opts(br, c, req, id, &o))
        return;
    char room[SESSION_ID_MAX + 128];
    if (!session_known(br, sid) || !session_room(br, sid, room, sizeof room)) {
        protocol_send_refusal(br, c, id, TB_ERR_UNKNOWN_SESSION,
                              "no such session (request an id on the session request topic first)");
    } else {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "session_id", sid);
        subscribe_join_one(br, c, id, room, &o, "session_joined", top);
    }
    subscribe_opts_free(&o);
}

static void handle_leave_session(struct bridge *br, struct conn *c, const cJSON *req, const cJSON *id)
{
    const char *sid = session_field(br, c, req, id);
    char room[SESSION_ID_MAX + 128];
    if (!sid || !session_room(br, sid, room, sizeof room))
        return;
    if (!subscribe_leave_one(br, c, room)) {
        protocol_send_refusal(br, c, id, TB_ERR_NOT_SUBSCRIBED, "this connection has not joined that session");
        return;
    }
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "session_id", sid);
    cJSON_AddStringToObject(top, "room", room);
    protocol_reply(br, c, "session_left", top, id);
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"ping", handle_ping},
    {"subscribe", subscribe_handle_subscribe},
    {"unsubscribe", subscribe_handle_unsubscribe},
    {"join_session", handle_join_session},
    {"leave_session", handle_leave_session},
    {"ack_alert", alert_runtime_handle_ack},
};

/* A dashboard on a session endpoint (/ws/session/{sid}) for an id nobody issued is
 * told so, and stays in the room in case the session starts later. */
static void check_session_rooms(struct bridge *br, struct conn *c)
{
    for (struct sub *s = c->subs; s; s = s->conn_next) {
        const char *sid = s->auto_joined ? session_of_room(br, s->room->name) : NULL;
        if (sid && !session_known(br, sid)) {
            cJSON *top = cJSON_CreateObject();
            cJSON_AddStringToObject(top, "code", TB_ERR_UNKNOWN_SESSION);
            cJSON_AddStringToObject(top, "message", "no such session yet; staying in its room");
            cJSON_AddStringToObject(top, "room", s->room->name);
            send_reply(br, c, "error", top, NULL, NULL);
        }
    }
}

void protocol_on_open(struct bridge *br, struct conn *c)
{
    if (subscribe_conn_open(br, c))
        LOG_WARN("protocol", "connection %llu: out of memory; subscriptions unavailable",
                 (unsigned long long)c->id);
    if (br->cfg->sessions.enabled)
        check_session_rooms(br, c);
}

void protocol_on_close(struct bridge *br, struct conn *c)
{
    subscribe_conn_close(br, c);
}

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
    if (!utf8_valid(data, len)) {
        protocol_send_error(br, c, NULL, TB_ERR_BAD_UTF8, "frame is not valid UTF-8");
        return;
    }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    while (req && end < data + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!req || end != data + len) {
        cJSON_Delete(req);
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
