/* protocol: frames sent by WebSocket clients, dispatched by their "type".
 *
 * Every request is a JSON object with a "type" and an optional "id" that the reply
 * echoes. Handlers live in a table (type -> function); anything that is not a JSON
 * object with a known type gets an "error" frame (reply.h), and a connection that keeps
 * sending invalid frames is closed with TB_CLOSE_POLICY. Nothing a client sends reaches
 * other clients except through a handler. A type that is not the bridge's own goes to the
 * endpoint's publish rules (uplink_runtime.h). Race session requests (join_session,
 * leave_session) are handled here on top of subscribe and session.
 * Service thread only. */
#ifndef TB_PROTOCOL_H
#define TB_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

struct alert_runtime;
struct conn;
struct fanout;
struct session_registry;
struct subscriptions;
struct tb_config;
struct uplink_runtime;

/* What the request handlers work with; the bridge owns it and keeps cfg current. */
struct protocol {
    const struct tb_config *cfg;
    struct fanout *f;
    struct subscriptions *subs;
    struct session_registry *sessions;
    struct alert_runtime *alerts;       /* NULL without the alert runtime */
    struct uplink_runtime *uplink;      /* client publishes (endpoint 'publish' rules) */
};

/* After the welcome frame: tells a dashboard on a session endpoint whose session nobody
 * issued yet (it stays in the room). */
void protocol_on_open(const struct protocol *p, struct conn *c);
/* Frees the connection's request state (before the connection is freed). */
void protocol_on_close(const struct protocol *p, struct conn *c);
void protocol_handle_frame(const struct protocol *p, struct conn *c, const char *data, size_t len,
                           bool binary);

#endif
