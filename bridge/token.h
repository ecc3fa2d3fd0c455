/* token: verification of JSON Web Tokens (JWS compact form) and SHA-256 hex digests.
 *
 * A key set holds the keys of one issuer: HS256 secrets, RS256 / ES256 public keys from
 * PEM files or JWKS documents. Every key carries the one algorithm it verifies, so a
 * token whose header names another algorithm is refused before any signature check:
 * "alg": "none" never verifies, and an RSA public key is never used as an HMAC secret
 * (the HS/RS confusion). Signatures are checked with OpenSSL's EVP (no crypto here, only
 * base64url and JSON); then exp, nbf, iat, iss and aud, with a clock skew.
 *
 * Nothing here logs: a token must never reach a log. Pure, any thread. */
#ifndef TB_TOKEN_H
#define TB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define TOKEN_MAX_LEN 8192      /* longer tokens are refused unparsed */
#define TOKEN_SHA256_HEX_LEN 64

enum token_alg { TOKEN_HS256, TOKEN_RS256, TOKEN_ES256 };

struct token_key;

/* The keys of one issuer. Built at config load, immutable afterwards. */
struct token_keyset {
    struct token_key *keys;
    size_t n;
};

/* Adds an HS256 secret (copied). Returns 0, or -1 (message in err) when empty or out of memory. */
int token_keyset_add_secret(struct token_keyset *ks, const char *kid, const void *secret, size_t len,
                            char *err, size_t errlen);
/* Adds a PEM public key: RSA (RS256) or EC P-256 (ES256). */
int token_keyset_add_pem(struct token_keyset *ks, const char *kid, const char *pem, size_t len,
                         char *err, size_t errlen);
/* Adds every usable key of a JWKS document ({"keys":[{kty,kid,...}]}: RSA n/e, EC P-256
 * x/y, oct k). A key with "use" other than "sig" or an "alg" we do not verify is an error. */
int token_keyset_add_jwks(struct token_keyset *ks, const char *json, size_t len, char *err, size_t errlen);
void token_keyset_free(struct token_keyset *ks);   /* frees the keys, not ks */

/* What a valid token must also satisfy. NULL iss / aud: not checked. */
struct token_checks {
    const char *iss;
    const char *aud;
    int64_t now_s;
    int64_t skew_s;
    bool require_exp;
};

enum token_result {
    TOKEN_OK,
    TOKEN_MALFORMED,        /* not three base64url parts of JSON objects */
    TOKEN_BAD_ALG,          /* alg missing, "none", unknown, or not this issuer's key type */
    TOKEN_NO_KEY,           /* no key of that kid / algorithm */
    TOKEN_BAD_SIGNATURE,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID,    /* nbf in the future, or iat in the future */
    TOKEN_NO_EXP,
    TOKEN_BAD_AUD,
    TOKEN_BAD_ISS,
};

/* Verifies 'tok' (len bytes, not necessarily NUL-terminated). On TOKEN_OK *claims gets the
 * payload object (the caller deletes it); otherwise *claims is NULL. */
enum token_result token_verify(const struct token_keyset *ks, const char *tok, size_t len,
                               const struct token_checks *chk, cJSON **claims);
/* The unverified "iss" of a token, to choose among issuers; false when it has none. */
bool token_peek_issuer(const char *tok, size_t len, char *iss, size_t isslen);
/* A short, token-free explanation of a result, for error frames and logs. */
const char *token_result_message(enum token_result r);

/* Decodes base64url (no padding; padding tolerated) into out (cap bytes); returns the
 * decoded length or -1. */
long token_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);
/* SHA-256 of data as 64 lowercase hex digits and a NUL. Returns 0 or -1. */
int token_sha256_hex(const void *data, size_t len, char out[TOKEN_SHA256_HEX_LEN + 1]);

#endif
