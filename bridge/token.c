/* token: JWT verification with OpenSSL EVP (see token.h). Pure, any thread. */
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

struct token_key {
    char *kid;                  /* NULL = matches a token without kid, or any kid */
    enum token_alg alg;
    EVP_PKEY *pkey;             /* RS256 / ES256 */
    unsigned char *secret;      /* HS256 */
    size_t secret_len;
};

#define ES256_SIG_LEN 64

/* ---- base64url, SHA-256 ------------------------------------------------------------ */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

long token_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    while (len && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    size_t n = 0;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)n;
}

int token_sha256_hex(const void *data, size_t len, char out[TOKEN_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n * 2 != TOKEN_SHA256_HEX_LEN)
        return -1;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- key sets ------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static struct token_key *add_key(struct token_keyset *ks, const char *kid, enum token_alg alg)
{
    struct token_key *k = realloc(ks->keys, (ks->n + 1) * sizeof *k);
    if (!k)
        return NULL;
    ks->keys = k;
    k = &ks->keys[ks->n];
    memset(k, 0, sizeof *k);
    k->alg = alg;
    if (kid && !(k->kid = strdup(kid)))
        return NULL;
    ks->n++;
    return k;
}

int token_keyset_add_secret(struct token_keyset *ks, const char *kid, const void *secret, size_t len,
                            char *err, size_t errlen)
{
    if (!len) {
        set_err(err, errlen, "the HS256 secret is empty");
        return -1;
    }
    struct token_key *k = add_key(ks, kid, TOKEN_HS256);
    if (!k || !(k->secret = malloc(len))) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return 0;
}

/* The algorithm a public key verifies: RSA (>= 2048 bits) -> RS256, EC P-256 -> ES256. */
static int pkey_alg(EVP_PKEY *pk, enum token_alg *alg, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) < 2048) {
            set_err(err, errlen, "RSA keys shorter than 2048 bits are refused");
            return -1;
        }
        *alg = TOKEN_RS256;
        return 0;
    }
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_is_a(pk, "EC") &&
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) &&
        (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
        *alg = TOKEN_ES256;
        return 0;
    }
    set_err(err, errlen, "only RSA (RS256) and EC P-256 (ES256) public keys are supported");
    return -1;
}

static int add_pkey(struct token_keyset *ks, const char *kid, EVP_PKEY *pk, char *err, size_t errlen)
{
    enum token_alg alg;
    if (pkey_alg(pk, &alg, err, errlen)) {
        EVP_PKEY_free(pk);
        return -1;
    }
    struct token_key *k = add_key(ks, kid, alg);
    if (!k) {
        EVP_PKEY_free(pk);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    k->pkey = pk;
    return 0;
}

int token_keyset_add_pem(struct token_keyset *ks, const char *kid, const char *pem, size_t len,
                         char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk) {
        set_err(err, errlen, "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
        return -1;
    }
    return add_pkey(ks, kid, pk, err, errlen);
}

/* A base64url member of a JWK decoded into out; -1 when absent or bad. */
static long jwk_bytes(const cJSON *jwk, const char *name, unsigned char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(jwk, name);
    if (!cJSON_IsString(v))
        return -1;
    return token_b64url_decode(v->valuestring, strlen(v->valuestring), out, cap);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *jwk_rsa(const cJSON *jwk)
{
    unsigned char n[1024], e[16];
    long nl = jwk_bytes(jwk, "n", n, sizeof n), el = jwk_bytes(jwk, "e", e, sizeof e);
    if (nl <= 0 || el <= 0)
        return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pk = pkey_fromdata("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pk;
}

/* A P-256 coordinate: RFC 7518 says 32 bytes; some encoders drop leading zeros, so a
 * shorter one is left-padded. */
static bool jwk_coord(const cJSON *jwk, const char *name, unsigned char out[32])
{
    unsigned char tmp[32];
    long n = jwk_bytes(jwk, name, tmp, sizeof tmp);
    if (n <= 0)
        return false;
    memset(out, 0, 32);
    memcpy(out + 32 - n, tmp, (size_t)n);
    return true;
}

static EVP_PKEY *jwk_ec(const cJSON *jwk)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");
    unsigned char pt[65];
    if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256") != 0 ||
        !jwk_coord(jwk, "x", pt + 1) || !jwk_coord(jwk, "y", pt + 33))
        return NULL;
    pt[0] = 0x04; /* uncompressed point */
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt))
        pk = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

static int jwk_add(struct token_keyset *ks, const cJSON *jwk, char *err, size_t errlen)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
    const char *id = cJSON_IsString(kid) ? kid->valuestring : NULL;
    if (use && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0))
        return 0; /* an encryption key: not ours to use, skipped */
    if (!cJSON_IsString(kty)) {
        set_err(err, errlen, "a JWKS key has no \"kty\"");
        return -1;
    }
    if (strcmp(kty->valuestring, "oct") == 0) {
        unsigned char k[512];
        long kl = jwk_bytes(jwk, "k", k, sizeof k);
        int rc = kl > 0 ? token_keyset_add_secret(ks, id, k, (size_t)kl, err, errlen) : -1;
        if (kl <= 0)
            set_err(err, errlen, "a JWKS \"oct\" key has no valid \"k\"");
        OPENSSL_cleanse(k, sizeof k);
        return rc;
    }
    EVP_PKEY *pk = strcmp(kty->valuestring, "RSA") == 0 ? jwk_rsa(jwk)
                 : strcmp(kty->valuestring, "EC") == 0 ? jwk_ec(jwk) : NULL;
    if (!pk) {
        set_err(err, errlen, "a JWKS key is not a valid RSA (n, e) or EC P-256 (x, y) public key");
        return -1;
    }
    return add_pkey(ks, id, pk, err, errlen);
}

int token_keyset_add_jwks(struct token_keyset *ks, const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    int rc = 0;
    if (!cJSON_IsArray(keys) || !cJSON_GetArraySize(keys)) {
        set_err(err, errlen, "not a JWKS document (expected {\"keys\": [...]} with at least one key)");
        rc = -1;
    }
    const cJSON *jwk;
    cJSON_ArrayForEach(jwk, keys) {
        if (rc == 0 && (!cJSON_IsObject(jwk) || jwk_add(ks, jwk, err, errlen)))
            rc = -1;
    }
    cJSON_Delete(doc);
    return rc;
}

void token_keyset_free(struct token_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->keys[i].kid);
        EVP_PKEY_free(ks->keys[i].pkey);
        if (ks->keys[i].secret)
            OPENSSL_cleanse(ks->keys[i].secret, ks->keys[i].secret_len);
        free(ks->keys[i].secret);
    }
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

/* ---- verification -------------------------------------------------------------------- */

struct jws {
    const char *signed_part;    /* header.payload */
    size_t signed_len;
    cJSON *header, *payload;
    unsigned char sig[1024];
    long sig_len;
};

static cJSON *b64_json(const char *in, size_t len)
{
    unsigned char *buf = malloc(len + 1);
    long n = buf ? token_b64url_decode(in, len, buf, len) : -1;
    cJSON *j = n > 0 ? cJSON_ParseWithLength((const char *)buf, (size_t)n) : NULL;
    free(buf);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

static int jws_parse(const char *tok, size_t len, struct jws *j)
{
    memset(j, 0, sizeof *j);
    if (!len || len > TOKEN_MAX_LEN)
        return -1;
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return -1;
    j->signed_part = tok;
    j->signed_len = (size_t)(d2 - tok);
    j->header = b64_json(tok, (size_t)(d1 - tok));
    j->payload = b64_json(d1 + 1, (size_t)(d2 - d1 - 1));
    j->sig_len = token_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), j->sig, sizeof j->sig);
    return j->header && j->payload && j->sig_len > 0 ? 0 : -1;
}

static void jws_free(struct jws *j)
{
    cJSON_Delete(j->header);
    cJSON_Delete(j->payload);
}

static int alg_of(const char *name, enum token_alg *alg)
{
    static const struct { const char *name; enum token_alg alg; } algs[] = {
        {"HS256", TOKEN_HS256}, {"RS256", TOKEN_RS256}, {"ES256", TOKEN_ES256},
    };
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(name, algs[i].name) == 0) {
            *alg = algs[i].alg;
            return 0;
        }
    return -1;
}

static bool hs256_ok(const struct token_key *k, const struct jws *j)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)j->signed_part,
              j->signed_len, mac, &n))
        return false;
    return (long)n == j->sig_len && CRYPTO_memcmp(mac, j->sig, n) == 0;
}

/* JWS ES256 signatures are r || s (32 bytes each); EVP wants DER. */
static int es256_der(const struct jws *j, unsigned char **der)
{
    if (j->sig_len != ES256_SIG_LEN)
        return -1;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(j->sig, 32, NULL), *ss = BN_bin2bn(j->sig + 32, 32, NULL);
    if (!s || !r || !ss || !ECDSA_SIG_set0(s, r, ss)) {
        ECDSA_SIG_free(s);
        BN_free(r);
        BN_free(ss);
        return -1;
    }
    int n = i2d_ECDSA_SIG(s, der);
    ECDSA_SIG_free(s);
    return n;
}

static bool pkey_ok(const struct token_key *k, const struct jws *j)
{
    unsigned char *der = NULL;
    const unsigned char *sig = j->sig;
    size_t sig_len = (size_t)j->sig_len;
    if (k->alg == TOKEN_ES256) {
        int n = es256_der(j, &der);
        if (n <= 0)
            return false;
        sig = der;
        sig_len = (size_t)n;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)j->signed_part, j->signed_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

/* Tries the keys of the token's algorithm (and kid, when it names one). */
static enum token_result check_signature(const struct token_keyset *ks, const struct jws *j)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(j->header, "alg");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(j->header, "kid");
    enum token_alg a;
    if (!cJSON_IsString(alg) || alg_of(alg->valuestring, &a))
        return TOKEN_BAD_ALG;
    if (kid && !cJSON_IsString(kid))
        return TOKEN_MALFORMED;
    bool any_alg = false, tried = false;
    for (size_t i = 0; i < ks->n; i++) {
        const struct token_key *k = &ks->keys[i];
        if (k->alg != a)
            continue;
        any_alg = true;
        if (kid && k->kid && strcmp(k->kid, kid->valuestring) != 0)
            continue;
        tried = true;
        if (a == TOKEN_HS256 ? hs256_ok(k, j) : pkey_ok(k, j))
            return TOKEN_OK;
    }
    return !any_alg ? TOKEN_BAD_ALG : !tried ? TOKEN_NO_KEY : TOKEN_BAD_SIGNATURE;
}

static bool aud_ok(const cJSON *aud, const char *want)
{
    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    const cJSON *a, *list = cJSON_IsArray(aud) ? aud : NULL;
    cJSON_ArrayForEach(a, list) {
        if (cJSON_IsString(a) && strcmp(a->valuestring, want) == 0)
            return true;
    }
    return false;
}

/* A NumericDate claim: absent (false, *v untouched) or a number (true); else -1. */
static int numeric_date(const cJSON *claims, const char *name, double *v)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (!n)
        return 0;
    if (!cJSON_IsNumber(n))
        return -1;
    *v = n->valuedouble;
    return 1;
}

static enum token_result check_claims(const cJSON *cl, const struct token_checks *chk)
{
    double exp = 0, nbf = 0, iat = 0;
    int he = numeric_date(cl, "exp", &exp), hn = numeric_date(cl, "nbf", &nbf), hi = numeric_date(cl, "iat", &iat);
    double now = (double)chk->now_s, skew = (double)chk->skew_s;
    if (he < 0 || hn < 0 || hi < 0)
        return TOKEN_MALFORMED;
    if (!he && chk->require_exp)
        return TOKEN_NO_EXP;
    if (he && now >= exp + skew)
        return TOKEN_EXPIRED;
    if ((hn && now + skew < nbf) || (hi && now + skew < iat))
        return TOKEN_NOT_YET_VALID;
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(cl, "iss");
    if (chk->iss && (!cJSON_IsString(iss) || strcmp(iss->valuestring, chk->iss) != 0))
        return TOKEN_BAD_ISS;
    if (chk->aud && !aud_ok(cJSON_GetObjectItemCaseSensitive(cl, "aud"), chk->aud))
        return TOKEN_BAD_AUD;
    return TOKEN_OK;
}

enum token_result token_verify(const struct token_keyset *ks, const char *tok, size_t len,
                               const struct token_checks *chk, cJSON **claims)
{
    struct jws j;
    *claims = NULL;
    enum token_result r = jws_parse(tok, len, &j) ? TOKEN_MALFORMED : check_signature(ks, &j);
    if (r == TOKEN_OK)
        r = check_claims(j.payload, chk);
    if (r == TOKEN_OK) {
        *claims = j.payload;
        j.payload = NULL;
    }
    jws_free(&j);
    return r;
}

bool token_peek_issuer(const char *tok, size_t len, char *iss, size_t isslen)
{
    struct jws j;
    bool ok = false;
    if (jws_parse(tok, len, &j) == 0) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j.payload, "iss");
        ok = cJSON_IsString(v) && strlen(v->valuestring) < isslen;
        if (ok)
            snprintf(iss, isslen, "%s", v->valuestring);
    }
    jws_free(&j);
    return ok;
}

const char *token_result_message(enum token_result r)
{
    static const char *const msgs[] = {
        [TOKEN_OK] = "ok",
        [TOKEN_MALFORMED] = "malformed token",
        [TOKEN_BAD_ALG] = "token algorithm not accepted",
        [TOKEN_NO_KEY] = "no key for this token (kid)",
        [TOKEN_BAD_SIGNATURE] = "bad token signature",
        [TOKEN_EXPIRED] = "token expired",
        [TOKEN_NOT_YET_VALID] = "token not yet valid",
        [TOKEN_NO_EXP] = "token has no expiry (exp)",
        [TOKEN_BAD_AUD] = "token audience not accepted",
        [TOKEN_BAD_ISS] = "token issuer not accepted",
    };
    return (unsigned)r < sizeof msgs / sizeof msgs[0] ? msgs[r] : "invalid token";
}
