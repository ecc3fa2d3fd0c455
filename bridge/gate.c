/* gate: authentication of a connection from its upgrade to its close (see gate.h).
 * Service thread only. */
#include "gate.h"

#include <string.h>
#include <time.h>

#include "access.h"
#include "fanout.h"
#include "log.h"
#include "reply.h"

#define TOKEN_FIELD_MAX TOKEN_MAX_LEN

static int64_t wall_s(void) { return (int64_t)time(NULL); }

/* The refusal a client sees: one error frame, then the close. Nothing else follows. */
static void refuse(struct fanout *f, struct conn *c, enum access_result r, const char *why, const cJSON *id)
{
    bool forbidden = r == ACCESS_FORBIDDEN;
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "code", forbidden ? TB_ERR_FORBIDDEN : TB_ERR_UNAUTHORIZED);
    cJSON_AddStringToObject(top, "message", why);
    if (id)
        cJSON_AddItemToObject(top, "id", cJSON_Duplicate(id, true));
    fanout_send_frame(f, c, "error", top, NULL);
    cJSON_Delete(top);
    c->flush_before_close = true;
    if (forbidden)
        fanout_stats(f)->auth_forbidden++;
    else
        fanout_stats(f)->auth_unauthorized++;
    conn_close(c, forbidden ? TB_CLOSE_FORBIDDEN : TB_CLOSE_UNAUTHORIZED, why);
    LOG_INFO("auth", "connection %llu on %s refused: %s", (unsigned long long)c->id, c->path, why);
}

static struct tb_identity *authenticate(const struct cfg_auth *a, const struct gate_cred *cred, const char **why)
{
    if (cred->api_key)
        return access_from_api_key(a, cred->text, cred->len, why);
    return access_from_token(a, cred->text, cred->len, wall_s(), why);
}

/* Admitted with identity id (may be NULL on auth: optional / none): the endpoint decides. */
static enum gate_verdict decide(const struct tb_config *cfg, struct fanout *f, struct conn *c,
                                const struct cfg_endpoint *ep, const struct topic_match *m,
                                struct tb_identity *id)
{
    const char *why = "";
    enum access_result r = access_endpoint(cfg->auth, ep, m, id, &why);
    if (r != ACCESS_OK) {
        access_identity_free(id);
        refuse(f, c, r, why, NULL);
        return GATE_REFUSED;
    }
    access_identity_free(c->identity);
    c->identity = id;
    c->expiry_warned = false;
    return GATE_ADMIT;
}

enum gate_verdict gate_open(const struct tb_config *cfg, struct fanout *f, struct conn *c,
                            const struct cfg_endpoint *ep, const struct topic_match *m,
                            const struct gate_cred *cred, uint64_t now_ms)
{
    const struct cfg_auth *a = cfg->auth;
    if (!a || (ep->auth == CFG_AUTH_NONE && !cred->len))
        return GATE_ADMIT;
    if (!cred->len) {
        if (ep->auth_message) {
            c->auth_deadline_ms = now_ms + a->auth_timeout_ms;
            return GATE_WAIT_AUTH;
        }
        return decide(cfg, f, c, ep, m, NULL);
    }
    const char *why = "";
    struct tb_identity *id = authenticate(a, cred, &why);
    if (!id) {
        /* A bad credential is refused even where none is needed: the client meant one. */
        refuse(f, c, ACCESS_UNAUTHORIZED, why, NULL);
        return GATE_REFUSED;
    }
    return decide(cfg, f, c, ep, m, id);
}

const char *gate_token_of(const cJSON *req)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "token");
    return cJSON_IsString(t) && t->valuestring[0] && strlen(t->valuestring) <= TOKEN_FIELD_MAX
               ? t->valuestring : NULL;
}

enum gate_verdict gate_auth_frame(const struct tb_config *cfg, struct fanout *f, struct conn *c,
                                  const char *data, size_t len, uint64_t now_ms)
{
    (void)now_ms;
    cJSON *req = cJSON_ParseWithLength(data, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(req, "type");
    const char *tok = gate_token_of(req);
    enum gate_verdict v = GATE_REFUSED;
    struct topic_match m;
    const struct cfg_endpoint *ep = config_find_endpoint(cfg, c->path, &m);
    c->auth_deadline_ms = 0;
    if (!ep || !cfg->auth) {
        refuse(f, c, ACCESS_UNAUTHORIZED, "the endpoint changed while authenticating", NULL);
    } else if (!cJSON_IsString(type) || strcmp(type->valuestring, "auth") != 0 || !tok) {
        refuse(f, c, ACCESS_UNAUTHORIZED, "the first frame must be {\"type\":\"auth\",\"token\":...}", NULL);
    } else {
        struct gate_cred cred = {tok, strlen(tok), false};
        v = gate_open(cfg, f, c, ep, &m, &cred, now_ms);
        if (v == GATE_WAIT_AUTH) /* cannot happen with a credential; never leave it waiting */
            v = GATE_ADMIT;
    }
    cJSON_Delete(req);
    return v;
}

void gate_handle_refresh(const struct tb_config *cfg, struct fanout *f, struct conn *c, const cJSON *req,
                         const cJSON *id)
{
    const char *tok = gate_token_of(req);
    const char *why = "";
    if (!cfg->auth || !c->identity || c->identity->api_key) {
        reply_refusal(f, c, id, TB_ERR_NOT_ALLOWED, "this connection has no token to refresh");
        return;
    }
    if (!tok) {
        reply_error(f, c, id, TB_ERR_BAD_FIELD, "\"token\" must be a non-empty string");
        return;
    }
    struct tb_identity *next = access_from_token(cfg->auth, tok, strlen(tok), wall_s(), &why);
    if (next && strcmp(next->subject, c->identity->subject) != 0) {
        why = "a refreshed token must have the same subject";
        access_identity_free(next);
        next = NULL;
    }
    if (!next) {
        refuse(f, c, ACCESS_UNAUTHORIZED, why, id);
        return;
    }
    access_identity_free(c->identity);
    c->identity = next;
    c->expiry_warned = false;
    cJSON *data = cJSON_CreateObject();
    if (next->exp_s)
        cJSON_AddNumberToObject(data, "expires_at", (double)next->exp_s * 1000.0);
    cJSON *top = cJSON_CreateObject();
    cJSON_AddItemToObject(top, "data", data);
    reply_send(f, c, "refreshed", top, id);
}

void gate_check(const struct tb_config *cfg, struct fanout *f, struct conn *c, uint64_t now_ms)
{
    if (c->closing)
        return;
    if (c->auth_deadline_ms) {
        if (now_ms >= c->auth_deadline_ms) {
            c->auth_deadline_ms = 0;
            refuse(f, c, ACCESS_UNAUTHORIZED, "no auth frame within auth_timeout", NULL);
        }
        return;
    }
    const struct tb_identity *id = c->identity;
    if (!id || !id->exp_s)
        return;
    int64_t now = wall_s();
    int64_t skew = cfg->auth ? (int64_t)(cfg->auth->clock_skew_ms / 1000) : 0;
    int64_t warn = cfg->auth ? (int64_t)(cfg->auth->expiry_warning_ms / 1000) : 0;
    if (now >= id->exp_s + skew) {
        refuse(f, c, ACCESS_UNAUTHORIZED, "token expired", NULL);
    } else if (!c->expiry_warned && now >= id->exp_s - warn) {
        c->expiry_warned = true;
        cJSON *data = cJSON_CreateObject();
        cJSON_AddNumberToObject(data, "expires_at", (double)id->exp_s * 1000.0);
        fanout_send_control(f, c, "auth_expiring", data);
        cJSON_Delete(data);
    }
}

void gate_conn_close(struct conn *c)
{
    access_identity_free(c->identity);
    c->identity = NULL;
}
