/* access: who a credential is, and what that identity may do.
 *
 * A credential is a JWT (verified by token.c against the 'auth.issuers' keys; the token's
 * unverified 'iss' only chooses which issuer's keys to try) or a static API key (its
 * SHA-256 compared with 'auth.api_keys'). Either becomes an identity: a subject and the
 * claims. Permissions are decided from the claims by the configured rules:
 *   - an endpoint's 'require: {capture: claim}': the path capture must be permitted by
 *     the claim ('roles' too: one of them needed);
 *   - room rules ('auth.rooms'): the first rule whose pattern matches the room decides;
 *     its {capture} must be permitted by its claim and/or the identity must hold one of
 *     its roles; no rule matches -> 'rooms_default';
 *   - the admin role (auth.admin_role) passes every check.
 * "Permitted by a claim": the subject claim must equal the value; any other claim (a
 * string or a list of strings) must hold an entry equal to it or a glob ('*' = any run
 * of characters) matching it. Without an identity (anonymous) only public rooms and
 * rooms no rule matches (with rooms_default: allow) pass.
 *
 * Pure: no I/O, no logging (a credential never reaches a log). Any thread. */
#ifndef TB_ACCESS_H
#define TB_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "topic.h"

struct tb_identity {
    char *subject;              /* the subject claim; "" when the token has none */
    void *claims;               /* cJSON object, owned */
    int64_t exp_s;              /* 'exp' (seconds), 0 = does not expire (API keys) */
    bool admin;                 /* holds auth.admin_role */
    bool api_key;               /* authenticated by an API key, not a token */
};

enum access_result { ACCESS_OK, ACCESS_UNAUTHORIZED, ACCESS_FORBIDDEN };

/* Verifies a JWT; NULL with *why set (a fixed, token-free text) when refused. */
struct tb_identity *access_from_token(const struct cfg_auth *a, const char *tok, size_t len, int64_t now_s,
                                      const char **why);
/* Looks an API key up by its SHA-256; NULL with *why set when unknown. */
struct tb_identity *access_from_api_key(const struct cfg_auth *a, const char *key, size_t len, const char **why);
void access_identity_free(struct tb_identity *id);   /* NULL is harmless */

/* May 'id' (NULL = anonymous) use endpoint ep, whose path captures are m? ACCESS_OK, or
 * UNAUTHORIZED (auth: required and no identity) / FORBIDDEN with *why set. */
enum access_result access_endpoint(const struct cfg_auth *a, const struct cfg_endpoint *ep,
                                   const struct topic_match *m, const struct tb_identity *id, const char **why);
/* May 'id' (NULL = anonymous) join 'room'? Always true without an auth section. */
bool access_may_room(const struct cfg_auth *a, const struct tb_identity *id, const char *room);
/* May 'id' see an alert whose key is 'key' (auth.alerts_claim)? True when not configured. */
bool access_may_see_key(const struct cfg_auth *a, const struct tb_identity *id, const char *key);
/* May 'id' acknowledge alerts (auth.ack_roles)? An identity is needed with an auth section. */
bool access_may_ack(const struct cfg_auth *a, const struct tb_identity *id);
/* Holds the admin role (HTTP admin paths). */
bool access_is_admin(const struct tb_identity *id);
/* Is 'value' (vlen bytes) permitted by 'claim' of id? (see the rule above) */
bool access_claim_permits(const struct cfg_auth *a, const struct tb_identity *id, const char *claim,
                          const char *value, size_t vlen);
/* '*' glob over a counted string; linear in practice (one backtrack point), no recursion. */
bool access_glob(const char *glob, const char *s, size_t len);

#endif
