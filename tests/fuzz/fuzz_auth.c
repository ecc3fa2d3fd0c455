/* fuzz_auth: token parsing and the auth message (issue 13).
 *
 * Why: a token is the first thing an anonymous client controls, and it is parsed
 * (base64url, JSON, key selection, signature and claim checks) before anything is
 * proved. The input is used three ways: as a token verified against HS256 / RS256 /
 * ES256 key sets (token_verify, access_from_token), as a JWKS document
 * (token_keyset_add_jwks), and as the first frame of a connection waiting for its
 * {"type":"auth"} message on a bridge with an auth section (bridge_on_client_frame ->
 * gate_auth_frame), then as a "refresh" request. Nothing may crash or leak; nothing
 * verifies against the public keys (the fuzzer cannot sign), and a waiting connection
 * never holds a room without an identity. (The corpus holds HS256 tokens signed with the
 * target's secret, so the admitted path is exercised too.)
 *
 * Built like the other targets (tests/fuzz/CMakeLists.txt). Single thread. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "access.h"
#include "bridge.h"
#include "config.h"
#include "log.h"
#include "token.h"

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1'}\n"
    "auth:\n"
    "  issuers: [{hs256_secret: \"fuzz-secret-0123456789abcdef0123456789\", audience: tb}]\n"
    "  auth_timeout: 1s\n"
    "  rooms: [{room: \"vehicle:{id}\", claim: vehicles}]\n"
    "endpoints:\n"
    "  /ws/late: {rooms: [\"vehicle:V1\"], auth: required, auth_message: true}\n"
    "  /ws/any: {rooms: [], client_subscriptions: true, auth: optional}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static struct bridge *br;
static struct token_keyset pk_keys;

static void add_generated(const char *type, const void *arg)
{
    EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                           : EVP_PKEY_Q_keygen(NULL, NULL, "EC", (const char *)arg);
    BIO *b = BIO_new(BIO_s_mem());
    if (!k || !b || !PEM_write_bio_PUBKEY(b, k))
        abort();
    char *pem;
    long n = BIO_get_mem_data(b, &pem);
    if (token_keyset_add_pem(&pk_keys, NULL, pem, (size_t)n, NULL, 0))
        abort();
    BIO_free(b);
    EVP_PKEY_free(k);
}

static void setup_once(void)
{
    if (br)
        return;
    log_set_level(TB_LOG_ERROR);
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load_string("fuzz.yaml", CONFIG, sizeof CONFIG - 1, &diag);
    if (!cfg)
        abort();
    config_diag_free(&diag);
    if (!(br = bridge_new(cfg, 0x1234)))
        abort();
    add_generated("RSA", NULL);
    add_generated("EC", "P-256");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    const char *text = (const char *)data;
    struct token_checks chk = {NULL, NULL, 1700000000, 30, false};
    cJSON *claims = NULL;
    if (token_verify(&pk_keys, text, size, &chk, &claims) == TOKEN_OK)
        abort();   /* nothing unsigned verifies */
    cJSON_Delete(claims);
    const char *why = NULL;
    access_identity_free(access_from_token(br->cfg->auth, text, size, 1700000000, &why));
    char iss[64];
    token_peek_issuer(text, size, iss, sizeof iss);
    struct token_keyset ks = {0};
    token_keyset_add_jwks(&ks, text, size, NULL, 0);
    token_keyset_free(&ks);

    /* the first frame of a connection waiting for its auth message, then a refresh */
    struct conn *c = bridge_open(br, NULL, "/ws/late");
    if (!c || !c->auth_deadline_ms)
        abort();
    bridge_on_client_frame(br, c, text, size, false);
    if (c->subs && !c->identity)
        abort();
    bridge_close(br, c);
    c = bridge_open(br, NULL, "/ws/any");
    if (!c)
        abort();
    bridge_on_client_frame(br, c, text, size, false);
    bridge_close(br, c);
    return 0;
}
