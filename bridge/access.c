/* access: credentials to identities, identities to permissions (see access.h). Pure. */
#include "access.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "token.h"

#define ISS_MAX 512
#define EXP_NEVER 900000000000.0   /* seconds; later exp values are clamped to it */

bool access_glob(const char *glob, const char *s, size_t len)
{
    size_t g = 0, i = 0, star = (size_t)-1, mark = 0;
    size_t glen = strlen(glob);
    while (i < len) {
        if (g < glen && glob[g] == '*') {
            star = g++;
            mark = i;
        } else if (g < glen && glob[g] == s[i]) {
            g++, i++;
        } else if (star != (size_t)-1) {
            g = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (g < glen && glob[g] == '*')
        g++;
    return g == glen;
}

static bool has_role(const struct cfg_auth *a, const struct tb_identity *id, const char *role)
{
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(id->claims, a->claim_roles);
    if (cJSON_IsString(roles))
        return strcmp(roles->valuestring, role) == 0;
    const cJSON *r, *list = cJSON_IsArray(roles) ? roles : NULL;
    cJSON_ArrayForEach(r, list) {
        if (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0)
            return true;
    }
    return false;
}

static bool has_any_role(const struct cfg_auth *a, const struct tb_identity *id, char *const *roles, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (has_role(a, id, roles[i]))
            return true;
    return false;
}

static struct tb_identity *identity_new(const struct cfg_auth *a, cJSON *claims)
{
    struct tb_identity *id = calloc(1, sizeof *id);
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, a->claim_subject);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    if (!id || !(id->subject = strdup(cJSON_IsString(sub) ? sub->valuestring : ""))) {
        free(id);
        cJSON_Delete(claims);
        return NULL;
    }
    id->claims = claims;
    /* a far-future exp (any double) must not overflow the cast: beyond year 30000 is never */
    id->exp_s = !cJSON_IsNumber(exp) ? 0 : exp->valuedouble > EXP_NEVER ? (int64_t)EXP_NEVER
                                         : exp->valuedouble < 1 ? 1 : (int64_t)exp->valuedouble;
    id->admin = a->admin_role && has_role(a, id, a->admin_role);
    return id;
}

/* The issuer whose keys verify this token: the one named by its (unverified) iss, or the
 * only one. */
static const struct cfg_issuer *pick_issuer(const struct cfg_auth *a, const char *tok, size_t len)
{
    char iss[ISS_MAX];
    bool has_iss = token_peek_issuer(tok, len, iss, sizeof iss);
    for (size_t i = 0; i < a->n_issuers; i++)
        if (a->issuers[i].issuer && has_iss && strcmp(a->issuers[i].issuer, iss) == 0)
            return &a->issuers[i];
    return a->n_issuers == 1 && !a->issuers[0].issuer ? &a->issuers[0] : NULL;
}

struct tb_identity *access_from_token(const struct cfg_auth *a, const char *tok, size_t len, int64_t now_s,
                                      const char **why)
{
    const struct cfg_issuer *is = a && a->n_issuers ? pick_issuer(a, tok, len) : NULL;
    if (!is) {
        *why = a && a->n_issuers ? "token issuer not accepted" : "tokens are not accepted here (no issuers)";
        return NULL;
    }
    struct token_checks chk = {is->issuer, is->audience, now_s, (int64_t)(a->clock_skew_ms / 1000), a->require_exp};
    cJSON *claims = NULL;
    enum token_result r = token_verify(&is->keys, tok, len, &chk, &claims);
    if (r != TOKEN_OK) {
        *why = token_result_message(r);
        return NULL;
    }
    struct tb_identity *id = identity_new(a, claims);
    if (!id)
        *why = "out of memory";
    return id;
}

struct tb_identity *access_from_api_key(const struct cfg_auth *a, const char *key, size_t len, const char **why)
{
    char hex[TOKEN_SHA256_HEX_LEN + 1];
    *why = "unknown API key";
    if (!a || !len || token_sha256_hex(key, len, hex))
        return NULL;
    for (size_t i = 0; i < a->n_api_keys; i++) {
        if (CRYPTO_memcmp(a->api_keys[i].sha256, hex, TOKEN_SHA256_HEX_LEN) != 0)
            continue;
        cJSON *claims = cJSON_Duplicate(a->api_keys[i].claims, true);
        struct tb_identity *id = claims ? identity_new(a, claims) : NULL;
        if (id) {
            id->api_key = true;
            id->exp_s = 0;
        } else {
            *why = "out of memory";
        }
        return id;
    }
    return NULL;
}

void access_identity_free(struct tb_identity *id)
{
    if (!id)
        return;
    free(id->subject);
    cJSON_Delete(id->claims);
    free(id);
}

bool access_claim_permits(const struct cfg_auth *a, const struct tb_identity *id, const char *claim,
                          const char *value, size_t vlen)
{
    if (!id)
        return false;
    if (id->admin)
        return true;
    if (strcmp(claim, a->claim_subject) == 0)
        return strlen(id->subject) == vlen && vlen && memcmp(id->subject, value, vlen) == 0;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(id->claims, claim);
    if (cJSON_IsString(c))
        return access_glob(c->valuestring, value, vlen);
    const cJSON *e, *list = cJSON_IsArray(c) ? c : NULL;
    cJSON_ArrayForEach(e, list) {
        if (cJSON_IsString(e) && access_glob(e->valuestring, value, vlen))
            return true;
    }
    return false;
}

enum access_result access_endpoint(const struct cfg_auth *a, const struct cfg_endpoint *ep,
                                   const struct topic_match *m, const struct tb_identity *id, const char **why)
{
    if (!a || ep->auth == CFG_AUTH_NONE)
        return ACCESS_OK;
    if (!id) {
        *why = "this endpoint needs a token or an API key";
        return ep->auth == CFG_AUTH_REQUIRED ? ACCESS_UNAUTHORIZED : ACCESS_OK;
    }
    if (id->admin)
        return ACCESS_OK;
    if (ep->n_roles && !has_any_role(a, id, ep->roles, ep->n_roles)) {
        *why = "your identity lacks the role this endpoint needs";
        return ACCESS_FORBIDDEN;
    }
    for (size_t i = 0; i < ep->n_require; i++) {
        const struct cfg_require *r = &ep->require[i];
        if ((size_t)r->capture >= m->n ||
            !access_claim_permits(a, id, r->claim, m->cap[r->capture].ptr, m->cap[r->capture].len)) {
            *why = "your identity is not permitted this path";
            return ACCESS_FORBIDDEN;
        }
    }
    return ACCESS_OK;
}

/* Matches 'room' against a rule's "prefix{capture}suffix"; fills the capture span. */
static bool rule_match(const char *pat, const char *room, const char **cap, size_t *caplen)
{
    const char *open = strchr(pat, '{');
    if (!open) {
        *cap = NULL;
        *caplen = 0;
        return strcmp(pat, room) == 0;
    }
    const char *suffix = strchr(open, '}') + 1;
    size_t pre = (size_t)(open - pat), suf = strlen(suffix), rl = strlen(room);
    if (rl < pre + suf + 1 || strncmp(room, pat, pre) != 0 || strcmp(room + rl - suf, suffix) != 0)
        return false;
    *cap = room + pre;
    *caplen = rl - pre - suf;
    return true;
}

bool access_may_room(const struct cfg_auth *a, const struct tb_identity *id, const char *room)
{
    if (!a || (id && id->admin))
        return true;
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct cfg_room_rule *r = &a->rules[i];
        const char *cap;
        size_t caplen;
        if (!rule_match(r->room, room, &cap, &caplen))
            continue;
        if (r->public_room)
            return true;
        if (!id)
            return false;
        if (r->n_roles && !has_any_role(a, id, r->roles, r->n_roles))
            return false;
        return !r->claim || access_claim_permits(a, id, r->claim, cap, caplen);
    }
    return a->rooms_default_allow;
}

bool access_may_see_key(const struct cfg_auth *a, const struct tb_identity *id, const char *key)
{
    if (!a || !a->alerts_claim)
        return true;
    return id && key && access_claim_permits(a, id, a->alerts_claim, key, strlen(key));
}

bool access_may_ack(const struct cfg_auth *a, const struct tb_identity *id)
{
    if (!a)
        return true;
    if (!id)
        return false;
    return id->admin || !a->n_ack_roles || has_any_role(a, id, a->ack_roles, a->n_ack_roles);
}

bool access_is_admin(const struct tb_identity *id)
{
    return id && id->admin;
}
