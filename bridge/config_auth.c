/* config_auth: the 'auth' section (issuers and their keys, API keys, claim names, room
 * rules) and the endpoints' auth keys (auth, auth_message, require, roles); declared in
 * config_schema.h, documented in docs/configuration.md and docs/security.md. Key files are
 * read at load, so --check reports a bad key, and a reload builds new key sets
 * (connections keep the identity they were admitted with). Runs on the thread that
 * loads the config; no global state. */
#include "config.h"
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define KEY_FILE_MAX (1024 * 1024)

/* ---- small helpers ------------------------------------------------------------------ */

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static const yaml_node_t *seq_item(struct loader *l, const yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(&l->doc, n->data.sequence.items.start[i]);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Reads a whole (small) file; NULL with an error recorded at n. */
static char *read_file(struct loader *l, const yaml_node_t *n, const char *what, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfg_error(l, n, 0, "%s '%s': cannot open: %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KEY_FILE_MAX + 1);
    size_t got = buf ? fread(buf, 1, KEY_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || got > KEY_FILE_MAX || got == 0) {
        free(buf);
        cfg_error(l, n, 0, "%s '%s': empty, unreadable or larger than 1 MiB", what, path);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* ---- issuers ------------------------------------------------------------------------- */

struct issuer_in {
    struct cfg_issuer is;
    char *kid, *hs256_secret, *hs256_secret_file, *public_key_file, *jwks_file;
};

#define I(f) offsetof(struct issuer_in, f)
static const struct cfg_field issuer_fields[] = {
    { .name = "issuer", .type = CT_OPTSTR, .off = I(is.issuer) },
    { .name = "audience", .type = CT_OPTSTR, .off = I(is.audience) },
    { .name = "kid", .type = CT_OPTSTR, .off = I(kid) },
    { .name = "hs256_secret", .type = CT_OPTSTR, .off = I(hs256_secret) },
    { .name = "hs256_secret_file", .type = CT_PATH, .off = I(hs256_secret_file) },
    { .name = "public_key_file", .type = CT_PATH, .off = I(public_key_file) },
    { .name = "jwks_file", .type = CT_PATH, .off = I(jwks_file) },
};
#undef I
static const struct cfg_schema issuer_schema = { "issuer", issuer_fields, COUNT(issuer_fields) };

/* Trailing newlines of a secret file are not part of the secret. */
static size_t trim_newlines(const char *s, size_t len)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return len;
}

static int issuer_keys(struct loader *l, const yaml_node_t *n, struct issuer_in *in)
{
    char err[200] = "";
    int sources = !!in->hs256_secret + !!in->hs256_secret_file + !!in->public_key_file + !!in->jwks_file;
    if (sources != 1)
        return cfg_error(l, n, 0, "issuer: give exactly one of hs256_secret, hs256_secret_file, "
                         "public_key_file, jwks_file (got %d)", sources);
    if (in->hs256_secret) {
        if (strlen(in->hs256_secret) < 32)
            return cfg_error(l, n, 0, "issuer: hs256_secret must be at least 32 bytes (use ${ENV} "
                             "to keep it out of the file)");
        return token_keyset_add_secret(&in->is.keys, in->kid, in->hs256_secret, strlen(in->hs256_secret),
                                       err, sizeof err) ? cfg_error(l, n, 0, "issuer: %s", err) : 0;
    }
    const char *path = in->hs256_secret_file ? in->hs256_secret_file
                     : in->public_key_file ? in->public_key_file : in->jwks_file;
    size_t len = 0;
    char *text = read_file(l, n, "issuer key file", path, &len);
    if (!text)
        return -1;
    int rc;
    if (in->hs256_secret_file) {
        len = trim_newlines(text, len);
        rc = len < 32 ? (snprintf(err, sizeof err, "the secret must be at least 32 bytes"), -1)
                      : token_keyset_add_secret(&in->is.keys, in->kid, text, len, err, sizeof err);
    } else if (in->public_key_file) {
        rc = token_keyset_add_pem(&in->is.keys, in->kid, text, len, err, sizeof err);
    } else {
        rc = token_keyset_add_jwks(&in->is.keys, text, len, err, sizeof err);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return rc ? cfg_error(l, n, 0, "issuer key file '%s': %s", path, err) : 0;
}

static void issuer_in_free(struct issuer_in *in)
{
    if (in->hs256_secret)
        OPENSSL_cleanse(in->hs256_secret, strlen(in->hs256_secret));
    free(in->kid), free(in->hs256_secret), free(in->hs256_secret_file);
    free(in->public_key_file), free(in->jwks_file);
}

static int section_issuers(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_auth *a = base;
    if (!n)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "auth.issuers: expected a sequence of issuers");
    size_t cnt = seq_len(n);
    if (!(a->issuers = calloc(cnt + 1, sizeof *a->issuers)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *item = seq_item(l, n, i);
        struct issuer_in in = { 0 };
        if (cfg_apply(l, item, &issuer_schema, &in) || issuer_keys(l, item, &in))
            rc = -1;
        issuer_in_free(&in);
        a->issuers[a->n_issuers++] = in.is;
    }
    if (cnt > 1)
        for (size_t i = 0; i < a->n_issuers; i++)
            if (!a->issuers[i].issuer)
                rc = cfg_error(l, n, 0, "auth.issuers: with several issuers each needs 'issuer' "
                               "(the token's iss chooses the keys)");
    return rc;
}

/* ---- API keys ------------------------------------------------------------------------ */

struct api_key_in {
    char *sha256, *identity;
    const yaml_node_t *claims;
};

#define K(f) offsetof(struct api_key_in, f)
static const struct cfg_field api_key_fields[] = {
    { .name = "sha256", .type = CT_STR, .off = K(sha256), .required = true },
    { .name = "identity", .type = CT_STR, .off = K(identity), .required = true },
    { .name = "claims", .type = CT_NODE, .off = K(claims) },
};
#undef K
static const struct cfg_schema api_key_schema = { "api key", api_key_fields, COUNT(api_key_fields) };

/* claims: {name: string | [strings]} into a cJSON object. */
static cJSON *claims_json(struct loader *l, const yaml_node_t *n)
{
    cJSON *o = cJSON_CreateObject();
    if (!n || !o)
        return o;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(l, n, 0, "api key claims: expected a mapping of claim name to string or list");
        cJSON_Delete(o);
        return NULL;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
        const char *name = cfg_text(l, k);
        cJSON *val = NULL;
        if (v->type == YAML_SCALAR_NODE && cfg_text(l, v)) {
            val = cJSON_CreateString(cfg_text(l, v));
        } else if (v->type == YAML_SEQUENCE_NODE) {
            val = cJSON_CreateArray();
            for (size_t i = 0; i < seq_len(v); i++) {
                const char *t = cfg_text(l, seq_item(l, v, i));
                if (t)
                    cJSON_AddItemToArray(val, cJSON_CreateString(t));
                else
                    cfg_error(l, seq_item(l, v, i), 0, "api key claims: expected strings");
            }
        }
        if (!name || !val) {
            cfg_error(l, v, 0, "api key claims: expected a string or a list of strings");
            cJSON_Delete(val);
            continue;
        }
        cJSON_AddItemToObject(o, name, val);
    }
    return o;
}

static bool is_sha256_hex(const char *s)
{
    if (strlen(s) != TOKEN_SHA256_HEX_LEN)
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return false;
    return true;
}

static int api_key_one(struct loader *l, const yaml_node_t *item, struct cfg_api_key *k)
{
    struct api_key_in in = { 0 };
    int rc = cfg_apply(l, item, &api_key_schema, &in);
    if (!rc && !is_sha256_hex(in.sha256))
        rc = cfg_error(l, item, 0, "api key: sha256 must be 64 lowercase hex digits (printf %%s KEY | "
                       "sha256sum); the key itself never goes into the file");
    cJSON *claims = rc ? NULL : claims_json(l, in.claims);
    if (claims) {
        snprintf(k->sha256, sizeof k->sha256, "%s", in.sha256);
        k->identity = in.identity;
        in.identity = NULL;
        k->claims = claims;
    } else {
        rc = -1;
    }
    free(in.sha256), free(in.identity);
    return rc;
}

static int section_api_keys(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_auth *a = base;
    if (!n)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "auth.api_keys: expected a sequence of {sha256, identity, claims}");
    size_t cnt = seq_len(n);
    if (!(a->api_keys = calloc(cnt + 1, sizeof *a->api_keys)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        struct cfg_api_key *k = &a->api_keys[a->n_api_keys];
        if (api_key_one(l, seq_item(l, n, i), k))
            rc = -1;
        else
            a->n_api_keys++;
    }
    for (size_t i = 0; i < a->n_api_keys; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->api_keys[i].sha256, a->api_keys[j].sha256))
                rc = cfg_error(l, n, 0, "auth.api_keys: the same key hash appears twice (%s, %s)",
                               a->api_keys[j].identity, a->api_keys[i].identity);
    return rc;
}

/* ---- room rules -------------------------------------------------------------------------- */

#define RR(f) offsetof(struct cfg_room_rule, f)
static const struct cfg_field rule_fields[] = {
    { .name = "room", .type = CT_STR, .off = RR(room), .required = true },
    { .name = "claim", .type = CT_OPTSTR, .off = RR(claim) },
    { .name = "roles", .type = CT_STRLIST, .off = RR(roles), .off_n = RR(n_roles) },
    { .name = "public", .type = CT_BOOL, .off = RR(public_room), .def = "false" },
};
#undef RR
static const struct cfg_schema rule_schema = { "room rule", rule_fields, COUNT(rule_fields) };

/* "vehicle:{id}": literal text around at most one {capture}; no '*'. */
static int rule_check(struct loader *l, const yaml_node_t *n, const struct cfg_room_rule *r)
{
    const char *open = strchr(r->room, '{'), *close = strchr(r->room, '}');
    if (strchr(r->room, '*'))
        return cfg_error(l, n, 0, "room rule '%s': write the variable part as {name}, not '*'", r->room);
    if ((open && (!close || close < open + 2 || strchr(close + 1, '{') || strchr(close + 1, '}'))) ||
        (!open && close))
        return cfg_error(l, n, 0, "room rule '%s': at most one {capture}, e.g. \"vehicle:{vehicle_id}\"", r->room);
    if (r->claim && !open)
        return cfg_error(l, n, 0, "room rule '%s': 'claim' checks the room's {capture}; the room has none", r->room);
    if (r->public_room && (r->claim || r->n_roles))
        return cfg_error(l, n, 0, "room rule '%s': a public room takes no claim or roles", r->room);
    if (!r->public_room && !r->claim && !r->n_roles)
        return cfg_error(l, n, 0, "room rule '%s': give a claim, roles, or public: true", r->room);
    return 0;
}

static int section_rules(struct loader *l, const yaml_node_t *n, void *base)
{
    struct cfg_auth *a = base;
    if (!n)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "auth.rooms: expected a sequence of {room, claim, roles}");
    size_t cnt = seq_len(n);
    if (!(a->rules = calloc(cnt + 1, sizeof *a->rules)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *item = seq_item(l, n, i);
        struct cfg_room_rule *r = &a->rules[a->n_rules++];
        if (cfg_apply(l, item, &rule_schema, r) || rule_check(l, item, r))
            rc = -1;
    }
    return rc;
}

/* ---- the section ---------------------------------------------------------------------- */

static const char *const default_modes[] = { "allow", "deny", NULL };

struct auth_in {
    struct cfg_auth a;
    int rooms_default;
};

#define A(f) offsetof(struct auth_in, f)
static const struct cfg_field auth_fields[] = {
    { .name = "claims_subject", .type = CT_STR, .off = A(a.claim_subject), .def = "sub" },
    { .name = "claims_roles", .type = CT_STR, .off = A(a.claim_roles), .def = "roles" },
    { .name = "issuers", .type = CT_SECTION, .section = section_issuers, .off = A(a) },
    { .name = "api_keys", .type = CT_SECTION, .section = section_api_keys, .off = A(a) },
    { .name = "clock_skew", .type = CT_DUR, .off = A(a.clock_skew_ms), .min = 0, .max = 3600000, .def = "30s" },
    { .name = "require_exp", .type = CT_BOOL, .off = A(a.require_exp), .def = "true" },
    { .name = "admin_role", .type = CT_OPTSTR, .off = A(a.admin_role), .def = "admin" },
    { .name = "ack_roles", .type = CT_STRLIST, .off = A(a.ack_roles), .off_n = A(a.n_ack_roles) },
    { .name = "alerts_claim", .type = CT_OPTSTR, .off = A(a.alerts_claim) },
    { .name = "expiry_warning", .type = CT_DUR, .off = A(a.expiry_warning_ms), .min = 0, .max = 86400000, .def = "60s" },
    { .name = "auth_timeout", .type = CT_DUR, .off = A(a.auth_timeout_ms), .min = 100, .max = 600000, .def = "5s" },
    { .name = "rooms", .type = CT_SECTION, .section = section_rules, .off = A(a) },
    { .name = "rooms_default", .type = CT_ENUM, .off = A(rooms_default), .def = "allow", .choices = default_modes },
};
#undef A
static const struct cfg_schema auth_schema = { "auth", auth_fields, COUNT(auth_fields) };

int cfg_section_auth(struct loader *l, const yaml_node_t *n, void *base)
{
    struct tb_config *c = base;
    if (!n)
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return cfg_error(l, n, 0, "auth: expected a mapping (issuers, api_keys, rooms, ...)");
    struct auth_in *in = calloc(1, sizeof *in);
    if (!in)
        return -1;
    int rc = cfg_apply(l, n, &auth_schema, in);
    in->a.rooms_default_allow = in->rooms_default == 0;
    for (size_t i = 0; i < in->a.n_api_keys && in->a.claim_subject; i++) {
        /* the key's identity is its subject claim, whatever the claims say */
        cJSON *claims = in->a.api_keys[i].claims;
        cJSON_DeleteItemFromObjectCaseSensitive(claims, in->a.claim_subject);
        cJSON_AddStringToObject(claims, in->a.claim_subject, in->a.api_keys[i].identity);
    }
    if (!rc && !in->a.n_issuers && !in->a.n_api_keys)
        rc = cfg_error(l, n, 0, "auth: give at least one of issuers or api_keys");
    c->auth = malloc(sizeof *c->auth);
    if (c->auth)
        *c->auth = in->a;
    else
        cfg_auth_free(&in->a), rc = -1;
    free(in);
    return rc;
}

void cfg_auth_free(struct cfg_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_issuers; i++) {
        free(a->issuers[i].issuer), free(a->issuers[i].audience);
        token_keyset_free(&a->issuers[i].keys);
    }
    free(a->issuers);
    for (size_t i = 0; i < a->n_api_keys; i++) {
        free(a->api_keys[i].identity);
        cJSON_Delete(a->api_keys[i].claims);
    }
    free(a->api_keys);
    for (size_t i = 0; i < a->n_rules; i++) {
        free(a->rules[i].room), free(a->rules[i].claim);
        free_strs(a->rules[i].roles, a->rules[i].n_roles);
    }
    free(a->rules);
    free(a->claim_subject), free(a->claim_roles), free(a->admin_role), free(a->alerts_claim);
    free_strs(a->ack_roles, a->n_ack_roles);
}

/* ---- endpoints ------------------------------------------------------------------------- */

int cfg_auth_endpoint_require(struct loader *l, const yaml_node_t *n, struct cfg_endpoint *e)
{
    if (!n || !e->pattern)
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return cfg_error(l, n, 0, "require: expected a mapping of path capture to claim "
                         "(e.g. {user_id: sub, vehicle_id: vehicles})");
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (!(e->require = calloc(cnt + 1, sizeof *e->require)))
        return -1;
    int rc = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
        const char *cap = cfg_text(l, k), *claim = cfg_text(l, v);
        int idx = cap ? topic_pattern_capture_index(e->pattern, cap, strlen(cap)) : -1;
        if (idx < 0) {
            rc = cfg_error(l, k, 0, "require: '%s' is not a capture of the path '%s'", cap ? cap : "?", e->path);
            continue;
        }
        if (!claim || !*claim) {
            rc = cfg_error(l, v, 0, "require: expected a claim name for '%s'", cap);
            continue;
        }
        struct cfg_require *r = &e->require[e->n_require++];
        r->capture = idx;
        if (!(r->claim = strdup(claim)))
            rc = -1;
    }
    return rc;
}

void cfg_auth_endpoint_free(struct cfg_endpoint *e)
{
    for (size_t i = 0; i < e->n_require; i++)
        free(e->require[i].claim);
    free(e->require);
    free_strs(e->roles, e->n_roles);
}

static char **dup_strs(char *const *v, size_t n)
{
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            free_strs(out, i);
            return NULL;
        }
    return out;
}

/* An alias (same_as) without auth keys of its own takes its target's, so a legacy path
 * such as /ws never opens what /ws/personal protects. 'require' is mapped by capture name. */
static int inherit_alias_auth(struct loader *l, struct cfg_endpoint *e, const struct cfg_endpoint *t)
{
    if (e->auth != CFG_AUTH_NONE || t->auth == CFG_AUTH_NONE)
        return 0;
    e->auth = t->auth;
    e->auth_message = t->auth_message;
    if (t->n_roles && !e->n_roles) {
        if (!(e->roles = dup_strs(t->roles, t->n_roles)))
            return -1;
        e->n_roles = t->n_roles;
    }
    if (!t->n_require || e->n_require)
        return 0;
    if (!(e->require = calloc(t->n_require, sizeof *e->require)))
        return -1;
    for (size_t i = 0; i < t->n_require; i++) {
        const char *name = topic_pattern_capture_name(t->pattern, (size_t)t->require[i].capture);
        int idx = topic_pattern_capture_index(e->pattern, name, strlen(name));
        if (idx < 0)
            return cfg_error_at(l, e->line, e->col, "'%s' (same_as '%s') lacks the capture {%s} that the "
                                "target's 'require' checks", e->path, t->path, name);
        e->require[e->n_require].capture = idx;
        if (!(e->require[e->n_require++].claim = strdup(t->require[i].claim)))
            return -1;
    }
    return 0;
}

int cfg_auth_check(struct loader *l, struct tb_config *c)
{
    int rc = 0;
    for (size_t i = 0; i < c->n_endpoints; i++) {
        struct cfg_endpoint *e = &c->endpoints[i];
        const struct cfg_endpoint *t = e->same_as ? config_endpoint_by_path(c, e->same_as) : NULL;
        if (t && t != e && e->pattern && t->pattern && inherit_alias_auth(l, e, t))
            rc = -1;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        const struct cfg_endpoint *e = &c->endpoints[i];
        bool wants = e->auth != CFG_AUTH_NONE || e->n_require || e->n_roles || e->auth_message;
        if (wants && !c->auth)
            rc = cfg_error_at(l, e->line, e->col, "endpoint '%s' uses auth, require, roles or auth_message "
                              "but there is no 'auth' section", e->path);
        else if (e->auth == CFG_AUTH_NONE && (e->n_require || e->n_roles || e->auth_message))
            rc = cfg_error_at(l, e->line, e->col, "endpoint '%s': require, roles and auth_message need "
                              "'auth: required' or 'auth: optional'", e->path);
    }
    return rc;
}
