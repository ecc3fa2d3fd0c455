/* gate: a connection's authentication over its life (docs/security.md, docs/protocol.md).
 *
 *   open     the credential found at the upgrade (ws_server: subprotocol "bearer, <token>",
 *            ?token=, Authorization: Bearer, X-Api-Key, ?api_key=) becomes the connection's
 *            identity, and the endpoint's 'auth' / 'require' / 'roles' decide: admitted,
 *            waiting for a first {"type":"auth"} frame (endpoints with auth_message), or
 *            refused: one {"type":"error","code":"unauthorized"|"forbidden"} frame and a
 *            close 4401 / 4403, before any welcome or data frame;
 *   auth     the first frame of a waiting connection, within auth.auth_timeout;
 *   refresh  {"type":"refresh","token":...}: a new token of the same subject replaces the
 *            identity ("refreshed"); anything else: error and close 4401;
 *   expiry   "auth_expiring" auth.expiry_warning before 'exp'; at 'exp' (+ clock_skew)
 *            error "unauthorized" and close 4401.
 * Identities are kept across config reloads: a connection keeps what it was admitted
 * with until it refreshes, expires or closes. Credentials are never logged.
 * Service thread only. */
#ifndef TB_GATE_H
#define TB_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "conn.h"
#include "topic.h"

struct fanout;

/* A credential found at the upgrade (borrowed; len 0 = none). */
struct gate_cred {
    const char *text;
    size_t len;
    bool api_key;
};

enum gate_verdict { GATE_ADMIT, GATE_WAIT_AUTH, GATE_REFUSED };

/* Decides a new connection on endpoint ep (captures m). GATE_REFUSED: the error frame and
 * the close are queued; GATE_WAIT_AUTH: c->auth_deadline_ms is set, nothing is sent. */
enum gate_verdict gate_open(const struct tb_config *cfg, struct fanout *f, struct conn *c,
                            const struct cfg_endpoint *ep, const struct topic_match *m,
                            const struct gate_cred *cred, uint64_t now_ms);
/* A frame of a connection still waiting for its 'auth' frame: GATE_ADMIT when it carried
 * an accepted token (the caller then joins the rooms), else GATE_REFUSED (frame + close). */
enum gate_verdict gate_auth_frame(const struct tb_config *cfg, struct fanout *f, struct conn *c,
                                  const char *data, size_t len, uint64_t now_ms);
/* {"type":"refresh"} (and "auth" on an admitted connection). */
void gate_handle_refresh(const struct tb_config *cfg, struct fanout *f, struct conn *c, const cJSON *req,
                         const cJSON *id);
/* Deadlines: auth frame overdue, token expiring or expired. About once a second. */
void gate_check(const struct tb_config *cfg, struct fanout *f, struct conn *c, uint64_t now_ms);
/* Frees the identity (before the connection is freed). */
void gate_conn_close(struct conn *c);
/* Extracts a token from an {"type":"auth"|"refresh","token":...} object; NULL when absent. */
const char *gate_token_of(const cJSON *req);

#endif
