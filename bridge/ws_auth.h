/* ws_auth: where a request's credential is read from (libwebsockets headers and query).
 *
 * In this order (the first one present wins, docs/protocol.md):
 *   1. Sec-WebSocket-Protocol offering "bearer" and then the token (browsers cannot set
 *      other headers on a WebSocket); the server answers with the subprotocol "bearer"
 *      (short tokens only, see WS_AUTH_MAX_PROTOCOL_HEADER);
 *   2. ?token=<jwt>;
 *   3. Authorization: Bearer <jwt>;
 *   4. an API key in X-Api-Key or ?api_key=.
 * The credential is copied into the caller's buffer and never logged. Service thread,
 * during the upgrade (LWS_CALLBACK_ESTABLISHED) or an HTTP request, while lws still has
 * the headers. */
#ifndef TB_WS_AUTH_H
#define TB_WS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

#include "gate.h"

#define WS_AUTH_BUF (TOKEN_MAX_LEN + 64)
/* libwebsockets 4.1 drops an upgrade whose Sec-WebSocket-Protocol header is longer than
 * this (a fixed buffer in lws_process_ws_upgrade): such an upgrade is refused with a 400
 * that says so, before lws sees it. Most JWTs are longer: the subprotocol carries short
 * tokens only; browsers use ?token= or the auth message for the others. */
#define WS_AUTH_MAX_PROTOCOL_HEADER 127

/* The request's credential in buf (WS_AUTH_BUF bytes); len 0 when there is none. A value
 * too long to hold is reported as a credential that fails verification, not as none. */
struct gate_cred ws_auth_credential(struct lws *wsi, char *buf, size_t cap, bool websocket);

#endif
