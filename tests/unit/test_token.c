/* Unit tests for token (JWT verification) and access (claims -> permissions), issue 13.
 *
 * Tokens are signed here with OpenSSL (keys generated per run): HS256, RS256 and ES256
 * verify; every refusal has its own case: bad signature, "alg": "none", an HS256 token
 * whose secret is the RSA public key (HS/RS confusion), expired, not yet valid, iat in
 * the future, wrong audience and issuer, an unknown kid, malformed input. JWKS keys are
 * built from their members. access: endpoint captures against sub / list / glob claims,
 * room rules, the admin role, alert keys, ack roles, API keys by their SHA-256. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "access.h"
#include "config.h"
#include "token.h"

#define NOW 1700000000
#define SECRET "0123456789abcdef0123456789abcdef-test"

static EVP_PKEY *rsa_key, *ec_key;

/* ---- signing helpers (test side only) ---- */

static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = tbl[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
}

/* "b64(header).b64(payload)" into out; returns its length. */
static size_t signing_input(const char *header, const char *payload, char *out)
{
    b64url((const unsigned char *)header, strlen(header), out);
    size_t n = strlen(out);
    out[n++] = '.';
    b64url((const unsigned char *)payload, strlen(payload), out + n);
    return strlen(out);
}

static void append_sig(char *tok, const unsigned char *sig, size_t len)
{
    size_t n = strlen(tok);
    tok[n++] = '.';
    b64url(sig, len, tok + n);
}

static char *hs256(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *tok = calloc(1, 8192);
    size_t n = signing_input(header, payload, tok);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)tok, n, mac, &ml);
    append_sig(tok, mac, ml);
    return tok;
}

static char *pk_sign(const char *header, const char *payload, EVP_PKEY *pk, bool ecdsa_raw)
{
    char *tok = calloc(1, 8192);
    size_t n = signing_input(header, payload, tok);
    unsigned char sig[1024];
    size_t sl = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (unsigned char *)tok, n), 1);
    EVP_MD_CTX_free(md);
    if (ecdsa_raw) { /* DER -> r || s */
        const unsigned char *p = sig;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sl);
        unsigned char raw[64];
        BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
        ECDSA_SIG_free(s);
        append_sig(tok, raw, 64);
    } else {
        append_sig(tok, sig, sl);
    }
    return tok;
}

static char *pem_of(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pk);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static enum token_result verify(const struct token_keyset *ks, const char *tok, const char *iss, const char *aud)
{
    struct token_checks chk = {iss, aud, NOW, 30, true};
    cJSON *claims = NULL;
    enum token_result r = token_verify(ks, tok, strlen(tok), &chk, &claims);
    assert_true((r == TOKEN_OK) == (claims != NULL));
    cJSON_Delete(claims);
    return r;
}

static const char *const GOOD = "{\"sub\":\"alice\",\"iss\":\"idp\",\"aud\":[\"x\",\"telebridge\"],"
                                "\"exp\":1700000600,\"iat\":1699999990,\"nbf\":1699999990}";

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return rsa_key && ec_key ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

/* ---- token ---- */

static void test_hs256(void **state)
{
    (void)state;
    struct token_keyset ks = {0};
    char err[200];
    assert_int_equal(token_keyset_add_secret(&ks, NULL, SECRET, strlen(SECRET), err, sizeof err), 0);
    char *tok = hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD, SECRET, strlen(SECRET));
    assert_int_equal(verify(&ks, tok, "idp", "telebridge"), TOKEN_OK);
    assert_int_equal(verify(&ks, tok, "other", "telebridge"), TOKEN_BAD_ISS);
    assert_int_equal(verify(&ks, tok, "idp", "nope"), TOKEN_BAD_AUD);
    tok[strlen(tok) - 2] ^= 1; /* flip a signature bit */
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_BAD_SIGNATURE);
    free(tok);
    tok = hs256("{\"alg\":\"HS256\"}", GOOD, "another secret 0123456789abcdef!!", 33);
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_BAD_SIGNATURE);
    free(tok);
    token_keyset_free(&ks);
}

static void test_time_claims(void **state)
{
    (void)state;
    struct token_keyset ks = {0};
    token_keyset_add_secret(&ks, NULL, SECRET, strlen(SECRET), NULL, 0);
    static const struct { const char *payload; enum token_result want; } cases[] = {
        {"{\"exp\":1699999969}", TOKEN_EXPIRED},          /* past the 30 s skew */
        {"{\"exp\":1699999990}", TOKEN_OK},               /* within the skew */
        {"{\"exp\":1700000600,\"nbf\":1700000031}", TOKEN_NOT_YET_VALID},
        {"{\"exp\":1700000600,\"nbf\":1700000020}", TOKEN_OK},
        {"{\"exp\":1700000600,\"iat\":1700000100}", TOKEN_NOT_YET_VALID},
        {"{\"sub\":\"x\"}", TOKEN_NO_EXP},
        {"{\"exp\":\"soon\"}", TOKEN_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = hs256("{\"alg\":\"HS256\"}", cases[i].payload, SECRET, strlen(SECRET));
        if (verify(&ks, tok, NULL, NULL) != cases[i].want)
            fail_msg("case %zu (%s): got %s", i, cases[i].payload,
                     token_result_message(verify(&ks, tok, NULL, NULL)));
        free(tok);
    }
    token_keyset_free(&ks);
}

static void test_rs256_es256_and_confusion(void **state)
{
    (void)state;
    struct token_keyset ks = {0};
    char err[200] = "";
    char *rpem = pem_of(rsa_key), *epem = pem_of(ec_key);
    assert_int_equal(token_keyset_add_pem(&ks, "r1", rpem, strlen(rpem), err, sizeof err), 0);
    assert_int_equal(token_keyset_add_pem(&ks, "e1", epem, strlen(epem), err, sizeof err), 0);
    char *tok = pk_sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}", GOOD, rsa_key, false);
    assert_int_equal(verify(&ks, tok, "idp", "telebridge"), TOKEN_OK);
    free(tok);
    tok = pk_sign("{\"alg\":\"ES256\"}", GOOD, ec_key, true);
    assert_int_equal(verify(&ks, tok, "idp", "telebridge"), TOKEN_OK);
    free(tok);
    tok = pk_sign("{\"alg\":\"RS256\",\"kid\":\"nope\"}", GOOD, rsa_key, false);
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_NO_KEY);
    free(tok);
    /* the classic confusion: an HS256 token keyed with the RSA public key's PEM */
    tok = hs256("{\"alg\":\"HS256\"}", GOOD, rpem, strlen(rpem));
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_BAD_ALG);
    free(tok);
    /* alg none, with and without a signature part */
    char none[2048];
    signing_input("{\"alg\":\"none\"}", GOOD, none);
    strcat(none, ".");
    assert_int_equal(verify(&ks, none, NULL, NULL), TOKEN_MALFORMED);
    strcat(none, "AAAA");
    assert_int_equal(verify(&ks, none, NULL, NULL), TOKEN_BAD_ALG);
    free(rpem);
    free(epem);
    token_keyset_free(&ks);
}

static void test_malformed(void **state)
{
    (void)state;
    struct token_keyset ks = {0};
    token_keyset_add_secret(&ks, NULL, SECRET, strlen(SECRET), NULL, 0);
    static const char *const bad[] = {"", "abc", "a.b", "a.b.c.d", "....", "e30.e30.", "!!.e30.AAAA",
                                      "W10.e30.AAAA" /* header is an array */, "e30.e30.AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum token_result r = verify(&ks, bad[i], NULL, NULL);
        assert_true(r == TOKEN_MALFORMED || r == TOKEN_BAD_ALG);
    }
    char err[200];
    assert_int_not_equal(token_keyset_add_pem(&ks, NULL, "junk", 4, err, sizeof err), 0);
    assert_int_not_equal(token_keyset_add_secret(&ks, NULL, "", 0, err, sizeof err), 0);
    assert_int_not_equal(token_keyset_add_jwks(&ks, "{\"keys\":[]}", 11, err, sizeof err), 0);
    assert_int_not_equal(token_keyset_add_jwks(&ks, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", 35, err, sizeof err), 0);
    token_keyset_free(&ks);
}

static char *bn_b64(const BIGNUM *bn, int pad)
{
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    char *out = malloc(900);
    b64url(buf, (size_t)n, out);
    return out;
}

static void test_jwks(void **state)
{
    (void)state;
    BIGNUM *n = NULL, *e = NULL, *x = NULL, *y = NULL;
    EVP_PKEY_get_bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_E, &e);
    EVP_PKEY_get_bn_param(ec_key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(ec_key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    char *sn = bn_b64(n, 0), *se = bn_b64(e, 0), *sx = bn_b64(x, 32), *sy = bn_b64(y, 32);
    char jwks[4096];
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k-rsa\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"k-ec\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
             "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
             sn, se, sx, sy);
    struct token_keyset ks = {0};
    char err[200] = "";
    if (token_keyset_add_jwks(&ks, jwks, strlen(jwks), err, sizeof err))
        fail_msg("jwks: %s", err);
    assert_int_equal(ks.n, 2); /* the encryption key is skipped */
    char *tok = pk_sign("{\"alg\":\"RS256\",\"kid\":\"k-rsa\"}", GOOD, rsa_key, false);
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_OK);
    free(tok);
    tok = pk_sign("{\"alg\":\"ES256\",\"kid\":\"k-ec\"}", GOOD, ec_key, true);
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_OK);
    free(tok);
    tok = pk_sign("{\"alg\":\"ES256\",\"kid\":\"k-rsa\"}", GOOD, ec_key, true);
    assert_int_equal(verify(&ks, tok, NULL, NULL), TOKEN_NO_KEY);
    free(tok);
    free(sn), free(se), free(sx), free(sy);
    BN_free(n), BN_free(e), BN_free(x), BN_free(y);
    token_keyset_free(&ks);
}

static void test_b64_and_sha(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(token_b64url_decode("aGk", 3, out, sizeof out), 2);
    assert_memory_equal(out, "hi", 2);
    assert_int_equal(token_b64url_decode("aGk=", 4, out, sizeof out), 2);
    assert_int_equal(token_b64url_decode("a", 1, out, sizeof out), -1);
    assert_int_equal(token_b64url_decode("a+b/", 4, out, sizeof out), -1); /* not base64url */
    char hex[65];
    assert_int_equal(token_sha256_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* ---- access ---- */

static const char AUTH_YAML[] =
    "auth:\n"
    "  issuers: [{hs256_secret: \"" SECRET "\"}]\n"
    "  admin_role: admin\n"
    "  ack_roles: [operator]\n"
    "  alerts_claim: vehicles\n"
    "  api_keys:\n"
    "    - {sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad, identity: gw-1,\n"
    "       claims: {vehicles: [\"V1\"], roles: device}}\n"
    "  rooms:\n"
    "    - {room: \"vehicle:{id}\", claim: vehicles}\n"
    "    - {room: \"fleet:{f}\", claim: fleets}\n"
    "    - {room: \"ops\", roles: [operator]}\n"
    "    - {room: \"news\", public: true}\n"
    "  rooms_default: deny\n"
    "endpoints:\n"
    "  /ws/alerts/{user_id}: {rooms: [alerts], auth: required, require: {user_id: sub}}\n"
    "  /ws/telemetry/{vehicle_id}: {rooms: [\"vehicle:{vehicle_id}\"], auth: required,\n"
    "                              require: {vehicle_id: vehicles}}\n"
    "  /ws/ops: {rooms: [ops], auth: optional, roles: [operator]}\n"
    "  /ws/t/{vehicle_id}: {same_as: \"/ws/telemetry/{vehicle_id}\"}\n";

static struct tb_identity *ident(const struct cfg_auth *a, const char *claims)
{
    char *tok = hs256("{\"alg\":\"HS256\"}", claims, SECRET, strlen(SECRET));
    const char *why = NULL;
    struct tb_identity *id = access_from_token(a, tok, strlen(tok), NOW, &why);
    if (!id)
        fail_msg("token refused: %s", why);
    free(tok);
    return id;
}

static enum access_result ep_check(const struct tb_config *c, const char *path, const struct tb_identity *id)
{
    struct topic_match m;
    const struct cfg_endpoint *ep = config_find_endpoint(c, path, &m);
    assert_non_null(ep);
    const char *why = "";
    return access_endpoint(c->auth, ep, &m, id, &why);
}

static void test_access(void **state)
{
    (void)state;
    struct config_diag diag = {0};
    struct tb_config *c = config_load_string("t.yaml", AUTH_YAML, sizeof AUTH_YAML - 1, &diag);
    for (size_t i = 0; i < diag.n; i++)
        print_error("%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    assert_non_null(c);
    const struct cfg_auth *a = c->auth;
    struct tb_identity *alice = ident(a, "{\"sub\":\"alice\",\"exp\":1700000600,\"vehicles\":[\"V1\",\"F2-*\"],"
                                         "\"fleets\":\"north\",\"roles\":[\"operator\"]}");
    struct tb_identity *bob = ident(a, "{\"sub\":\"bob\",\"exp\":1700000600,\"vehicles\":\"V9\"}");
    struct tb_identity *root = ident(a, "{\"sub\":\"root\",\"exp\":1700000600,\"roles\":\"admin\"}");
    assert_int_equal(alice->exp_s, 1700000600);

    assert_int_equal(ep_check(c, "/ws/alerts/alice", alice), ACCESS_OK);
    assert_int_equal(ep_check(c, "/ws/alerts/bob", alice), ACCESS_FORBIDDEN);
    assert_int_equal(ep_check(c, "/ws/alerts/alice", NULL), ACCESS_UNAUTHORIZED);
    assert_int_equal(ep_check(c, "/ws/alerts/bob", root), ACCESS_OK);
    assert_int_equal(ep_check(c, "/ws/telemetry/V1", alice), ACCESS_OK);
    assert_int_equal(ep_check(c, "/ws/telemetry/F2-17", alice), ACCESS_OK);   /* glob */
    assert_int_equal(ep_check(c, "/ws/telemetry/V10", alice), ACCESS_FORBIDDEN);
    assert_int_equal(ep_check(c, "/ws/telemetry/V1", bob), ACCESS_FORBIDDEN);
    assert_int_equal(ep_check(c, "/ws/ops", NULL), ACCESS_OK);                /* optional */
    assert_int_equal(ep_check(c, "/ws/ops", bob), ACCESS_FORBIDDEN);          /* no role */
    assert_int_equal(ep_check(c, "/ws/ops", alice), ACCESS_OK);
    /* an alias takes its target's auth: the legacy path opens nothing more */
    assert_int_equal(ep_check(c, "/ws/t/V1", NULL), ACCESS_UNAUTHORIZED);
    assert_int_equal(ep_check(c, "/ws/t/V1", bob), ACCESS_FORBIDDEN);
    assert_int_equal(ep_check(c, "/ws/t/V1", alice), ACCESS_OK);

    assert_true(access_may_room(a, alice, "vehicle:V1"));
    assert_false(access_may_room(a, alice, "vehicle:V2"));
    assert_false(access_may_room(a, alice, "vehicle:"));
    assert_true(access_may_room(a, alice, "fleet:north"));
    assert_false(access_may_room(a, bob, "fleet:north"));
    assert_true(access_may_room(a, alice, "ops"));
    assert_false(access_may_room(a, bob, "ops"));
    assert_true(access_may_room(a, NULL, "news"));
    assert_false(access_may_room(a, NULL, "vehicle:V1"));
    assert_false(access_may_room(a, alice, "elsewhere"));   /* rooms_default: deny */
    assert_true(access_may_room(a, root, "elsewhere"));
    assert_true(access_may_room(NULL, NULL, "anything"));   /* no auth section */

    assert_true(access_may_see_key(a, alice, "V1"));
    assert_false(access_may_see_key(a, bob, "V1"));
    assert_false(access_may_see_key(a, NULL, "V1"));
    assert_true(access_may_ack(a, alice));
    assert_false(access_may_ack(a, bob));
    assert_true(access_may_ack(a, root));

    const char *why = NULL;
    struct tb_identity *gw = access_from_api_key(a, "abc", 3, &why);
    assert_non_null(gw);
    assert_string_equal(gw->subject, "gw-1");
    assert_true(gw->api_key && gw->exp_s == 0);
    assert_true(access_may_room(a, gw, "vehicle:V1"));
    assert_false(access_may_room(a, gw, "vehicle:V2"));
    assert_null(access_from_api_key(a, "abd", 3, &why));
    assert_null(access_from_token(a, "x.y.z", 5, NOW, &why));

    access_identity_free(alice);
    access_identity_free(bob);
    access_identity_free(root);
    access_identity_free(gw);
    config_unref(c);
}

static void test_glob(void **state)
{
    (void)state;
    assert_true(access_glob("*", "", 0));
    assert_true(access_glob("V*", "V17", 3));
    assert_true(access_glob("*-*-x", "a-b-c-x", 7));
    assert_false(access_glob("V*", "W1", 2));
    assert_false(access_glob("V1", "V10", 3));
    char s[4096];
    memset(s, 'a', sizeof s);
    assert_false(access_glob("*a*a*a*a*a*a*a*b", s, sizeof s)); /* no blow-up */
}

static void load_fails(const char *yaml, const char *needle)
{
    struct config_diag diag = {0};
    struct tb_config *c = config_load_string("t.yaml", yaml, strlen(yaml), &diag);
    assert_null(c);
    bool found = false;
    for (size_t i = 0; i < diag.n; i++)
        found |= strstr(diag.msgs[i], needle) != NULL;
    if (!found)
        fail_msg("no error containing '%s' (%zu errors, first: %s)", needle, diag.n, diag.n ? diag.msgs[0] : "-");
    config_diag_free(&diag);
}

static void test_config_errors(void **state)
{
    (void)state;
    load_fails("endpoints:\n  /ws/a: {rooms: [a], auth: required}\n", "there is no 'auth' section");
    load_fails("server: {admin_listen: nope}\n", "admin_listen: expected host:port");
    load_fails("auth: {issuers: [{hs256_secret: short}]}\n", "at least 32 bytes");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\", jwks_file: /x}]}\n", "exactly one of");
    load_fails("auth: {issuers: [{public_key_file: /nonexistent.pem}]}\n", "cannot open");
    load_fails("auth: {}\n", "at least one of issuers or api_keys");
    load_fails("auth: {api_keys: [{sha256: ABC, identity: x}]}\n", "64 lowercase hex");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}], rooms: [{room: \"v:*\", claim: v}]}\n",
               "not '*'");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}], rooms: [{room: \"v\", claim: v}]}\n",
               "has none");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}]}\n"
               "endpoints:\n  /ws/a/{id}: {rooms: [a], auth: required, require: {user: sub}}\n",
               "is not a capture");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}]}\n"
               "endpoints:\n  /ws/a: {rooms: [a], auth: maybe}\n", "auth");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}]}\n"
               "endpoints:\n  /ws/a: {rooms: [a], roles: [x]}\n", "need 'auth: required'");
    load_fails("auth: {issuers: [{hs256_secret: \"" SECRET "\"}]}\n"
               "endpoints:\n  /ws/a/{id}: {rooms: [a], auth: required, require: {id: vehicles}}\n"
               "  /ws/b: {same_as: \"/ws/a/{id}\"}\n", "lacks the capture {id}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_rs256_es256_and_confusion),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_b64_and_sha),
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
