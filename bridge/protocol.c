/* protocol: client request dispatch. Service thread only.
 *
 * The handler table is the one place a new request type is added. A handler gets the
 * parsed object and the request id (or NULL) and answers through reply.h.
 * Subscriptions live in subscribe.c, race sessions in session.c, alert acks in
 * alert_runtime.c; client publishes (any other type an endpoint's publish rules name) in
 * uplink_runtime.c; docs/protocol.md describes every message, and
 * docs/protocol.schema.json validates them. */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alert_runtime.h"
#include "config.h"
#include "conn.h"
#include "fanout.h"
#include "gate.h"
#include "json_util.h"
#include "log.h"
#include "reply.h"
#include "sbuf.h"
#include "session.h"
#include "subscribe.h"
#include "uplink_runtime.h"

typedef void (*handler_fn)(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id);

static void handle_ping(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    (void)req;
    reply_send(p->f, c, "pong", NULL, id);
}

/* The session id of a join_session / leave_session request, or NULL (error sent). */
static const char *session_field(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(req, "session_id");
    if (!cJSON_IsString(sid) || !session_id_valid(sid->valuestring)) {
        reply_error(p->f, c, id, TB_ERR_BAD_FIELD,
                            "\"session_id\" must be a string of 1-64 letters, digits, '-', '_' or '.'");
        return NULL;
    }
    if (!p->cfg->sessions.enabled) {
        reply_refusal(p->f, c, id, TB_ERR_SESSIONS_DISABLED, "race sessions are not configured");
        return NULL;
    }
    return sid->valuestring;
}

static void handle_join_session(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    const char *sid = session_field(p, c, req, id);
    struct sub_opts o;
    if (!sid || subscribe_parse_opts(p->subs, c, req, id, &o))
        return;
    char room[SESSION_ID_MAX + 128];
    const struct cfg_sessions *cs = &p->cfg->sessions;
    bool named = session_room(cs, sid, room, sizeof room);
    if (named && !fanout_may_join(p->f, c, room)) {
        /* before the existence check: who may not join learns nothing about the session */
        reply_refusal(p->f, c, id, TB_ERR_FORBIDDEN, "cannot join this room");
    } else if (!named || !session_known(p->sessions, cs, fanout_rooms(p->f), sid)) {
        reply_refusal(p->f, c, id, TB_ERR_UNKNOWN_SESSION,
                              "no such session (request an id on the session request topic first)");
    } else {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "session_id", sid);
        subscribe_join_one(p->subs, c, id, room, &o, "session_joined", top);
    }
    subscribe_opts_free(&o);
}

static void handle_leave_session(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    const char *sid = session_field(p, c, req, id);
    char room[SESSION_ID_MAX + 128];
    if (!sid || !session_room(&p->cfg->sessions, sid, room, sizeof room))
        return;
    if (!subscribe_leave_one(c, room)) {
        reply_refusal(p->f, c, id, TB_ERR_NOT_SUBSCRIBED, "this connection has not joined that session");
        return;
    }
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "session_id", sid);
    cJSON_AddStringToObject(top, "room", room);
    reply_send(p->f, c, "session_left", top, id);
}

static void handle_subscribe(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    subscribe_handle_subscribe(p->subs, c, req, id);
}

static void handle_unsubscribe(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    subscribe_handle_unsubscribe(p->subs, c, req, id);
}

static void handle_ack_alert(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    alert_runtime_handle_ack(p->alerts, p->f, c, req, id);
}

/* A new token for an authenticated connection ("auth" after admission means the same). */
static void handle_refresh(const struct protocol *p, struct conn *c, const cJSON *req, const cJSON *id)
{
    gate_handle_refresh(p->cfg, p->f, c, req, id);
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"ping", handle_ping},
    {"subscribe", handle_subscribe},
    {"unsubscribe", handle_unsubscribe},
    {"join_session", handle_join_session},
    {"leave_session", handle_leave_session},
    {"ack_alert", handle_ack_alert},
    {"refresh", handle_refresh},
    {"auth", handle_refresh},
};

/* A dashboard on a session endpoint (/ws/session/{sid}) for an id nobody issued is
 * told so, and stays in the room in case the session starts later. */
static void check_session_rooms(const struct protocol *p, struct conn *c)
{
    const struct cfg_sessions *cs = &p->cfg->sessions;
    for (struct sub *s = c->subs; s; s = s->conn_next) {
        const char *sid = s->auto_joined ? session_of_room(cs, s->room->name) : NULL;
        if (sid && !session_known(p->sessions, cs, fanout_rooms(p->f), sid)) {
            cJSON *top = cJSON_CreateObject();
            cJSON_AddStringToObject(top, "code", TB_ERR_UNKNOWN_SESSION);
            cJSON_AddStringToObject(top, "message", "no such session yet; staying in its room");
            cJSON_AddStringToObject(top, "room", s->room->name);
            reply_send(p->f, c, "error", top, NULL);
        }
    }
}

void protocol_on_open(const struct protocol *p, struct conn *c)
{
    if (p->cfg->sessions.enabled)
        check_session_rooms(p, c);
}

void protocol_on_close(const struct protocol *p, struct conn *c)
{
    uplink_runtime_conn_close(p->uplink, c);
    subscribe_conn_close(p->subs, c);
}

/* request_alias: data.subscription_type (seed 003's clients): a subscribe or unsubscribe
 * without "rooms" takes them from data.subscription_type (a string) or
 * data.subscription_types (an array). Returns a copy of req with "rooms" (the caller
 * frees it), or NULL when the request is taken as it is (the handler judges it). */
static cJSON *aliased_request(const struct protocol *p, const struct conn *c, const cJSON *req, const char *type)
{
    if (c->endpoint < 0 || (size_t)c->endpoint >= p->cfg->n_endpoints ||
        p->cfg->endpoints[c->endpoint].request_alias != CFG_ALIAS_SUBSCRIPTION_TYPE ||
        (strcmp(type, "subscribe") != 0 && strcmp(type, "unsubscribe") != 0) ||
        cJSON_GetObjectItemCaseSensitive(req, "rooms"))
        return NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(req, "data");
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(data, "subscription_type");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(data, "subscription_types");
    if (!cJSON_IsString(one) && !cJSON_IsArray(many))
        return NULL;
    cJSON *copy = cJSON_Duplicate(req, true);
    cJSON *rooms = cJSON_IsString(one) ? cJSON_CreateArray() : cJSON_Duplicate(many, true);
    if (rooms && cJSON_IsString(one) && !cJSON_AddItemToArray(rooms, cJSON_CreateString(one->valuestring))) {
        cJSON_Delete(rooms);
        rooms = NULL;
    }
    if (!copy || !rooms || !cJSON_AddItemToObject(copy, "rooms", rooms)) {
        cJSON_Delete(rooms);
        cJSON_Delete(copy);
        return NULL;
    }
    return copy;
}

void protocol_handle_frame(const struct protocol *p, struct conn *c, const char *data, size_t len, bool binary)
{
    if (binary) {
        reply_error(p->f, c, NULL, TB_ERR_BINARY, "binary frames are not supported; send JSON text");
        return;
    }
    if (len > p->cfg->server.max_message_bytes) {
        reply_error(p->f, c, NULL, TB_ERR_TOO_LARGE, "frame larger than max_message_bytes");
        return;
    }
    if (!utf8_valid(data, len)) {
        reply_error(p->f, c, NULL, TB_ERR_BAD_UTF8, "frame is not valid UTF-8");
        return;
    }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    while (req && end < data + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!req || end != data + len) {
        cJSON_Delete(req);
        reply_error(p->f, c, NULL, TB_ERR_BAD_JSON, "frame is not valid JSON");
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (!cJSON_IsObject(req)) {
        reply_error(p->f, c, NULL, TB_ERR_NOT_OBJECT, "a request must be a JSON object");
        goto done;
    }
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id)) {
        reply_error(p->f, c, NULL, TB_ERR_BAD_FIELD, "\"id\" must be a string or a number");
        goto done;
    }
    if (json_has_nul_escape(data, len)) {     /* a name would be cut at the NUL: refuse */
        reply_error(p->f, c, id, TB_ERR_BAD_FIELD, "strings must not contain U+0000 (\\u0000)");
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(req, "type");
    if (!cJSON_IsString(type)) {
        reply_error(p->f, c, id, TB_ERR_BAD_FIELD, "\"type\" must be a string");
        goto done;
    }
    cJSON *aliased = aliased_request(p, c, req, type->valuestring);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (strcmp(handlers[i].type, type->valuestring) == 0) {
            handlers[i].fn(p, c, aliased ? aliased : req, id);
            cJSON_Delete(aliased);
            goto done;
        }
    }
    if (!uplink_runtime_handle(p->uplink, p->cfg, c, type->valuestring, req, id))
        reply_error(p->f, c, id, TB_ERR_UNKNOWN_TYPE, "unknown request type");
done:
    cJSON_Delete(req);
}
