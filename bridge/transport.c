/* transport: wss:// and permessage-deflate for the listener (see transport.h). Service
 * thread (lws callbacks). */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "log.h"

struct transport {
    SSL_CTX *ssl_ctx;   /* the listener's, lws' own; NULL = plain ws:// */
};

struct transport *transport_new(void)
{
    return calloc(1, sizeof(struct transport));
}

void transport_free(struct transport *t)
{
    free(t);
}

/* ---- permessage-deflate ---------------------------------------------------------------- */

/* RFC 6455 7.4.1: 1007, the data of a message was not consistent with its type. */
static void send_close_invalid(struct lws *wsi)
{
    static const char why[] = "invalid compressed data";
    unsigned char buf[LWS_PRE + 4 + sizeof why], *f = buf + LWS_PRE;
    f[0] = 0x88;                            /* FIN + close */
    f[1] = (unsigned char)(2 + sizeof why - 1);
    f[2] = 1007 >> 8;
    f[3] = 1007 & 0xff;
    memcpy(f + 4, why, sizeof why - 1);
    /* Raw bytes, like every frame the bridge writes (LWS_WRITE_HTTP: through TLS when
     * there is TLS, behind anything lws still holds for this socket). */
    lws_write(wsi, f, 4 + sizeof why - 1, LWS_WRITE_HTTP);
}

/* lws' permessage-deflate, plus a close frame when a client's compressed data does not
 * inflate: lws then drops the socket at once without one (the client would only see the
 * connection cut). Other connections are not affected: each has its own inflater. */
static int pmd_callback(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in, size_t len)
{
    int n = lws_extension_callback_pm_deflate(ctx, ext, wsi, reason, user, in, len);
    if (reason == LWS_EXT_CB_PAYLOAD_RX && n < 0) {
        if (log_ratelimit_allow("ws.inflate", 10000))
            LOG_INFO("ws", "a client sent compressed data that does not inflate: closed (1007)");
        send_close_invalid(wsi);
    }
    return n;
}

static const struct lws_extension extensions[] = {
    {"permessage-deflate", pmd_callback, "permessage-deflate; client_no_context_takeover"},
    {NULL, NULL, NULL}
};

/* An offer's server_max_window_bits below 15 would forbid the window the shared frames
 * are compressed with: such offers are declined (the client gets plain frames). */
static bool offer_limits_window(const char *offer)
{
    static const char key[] = "server_max_window_bits";
    for (const char *p = strstr(offer, key); p; p = strstr(p + 1, key)) {
        const char *v = p + sizeof key - 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ' || *v == '\t' || *v == '"')
            v++;
        if (atoi(v) != 15)
            return true;
    }
    return false;
}

int transport_confirm_extension(const struct cfg_server *s, struct lws *wsi, const char *name)
{
    if (!s->deflate.enabled || !name || strcmp(name, "permessage-deflate") != 0)
        return 1;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS);
    if (len <= 0 || len > 4096)
        return 1;
    char *offer = malloc((size_t)len + 1);
    bool ok = offer && lws_hdr_copy(wsi, offer, len + 1, WSI_TOKEN_EXTENSIONS) == len &&
              !offer_limits_window(offer);
    free(offer);
    return ok ? 0 : 1;
}

void transport_add_headers(struct lws_process_html_args *a)
{
    static const char line[] = "Sec-WebSocket-Extensions: permessage-deflate";
    static const char param[] = "server_no_context_takeover";
    static const char add[] = "; server_no_context_takeover\r\n";
    /* lws 4.1 ends its extension line with CRLF just before calling ADD_HEADERS; only
     * that exact line is extended, anything else is left alone. */
    char *end = a->p - 2;
    if (memcmp(end, "\r\n", 2) != 0 || a->max_len < (int)sizeof add)
        return;
    char *start = end;
    for (int i = 0; i < 512 && start[-1] != '\n'; i++)
        start--;
    if (start[-1] != '\n' || strncmp(start, line, sizeof line - 1) != 0 ||
        memmem(start, (size_t)(end - start), param, sizeof param - 1))
        return;
    memcpy(end, add, sizeof add - 1);
    a->p = end + sizeof add - 1;
    a->max_len -= (int)(sizeof add - 1 - 2);
}

/* ---- TLS ------------------------------------------------------------------------------ */

void transport_context_info(const struct cfg_server *s, struct lws_context_creation_info *info)
{
    info->extensions = extensions;
    if (!s->tls_cert)
        return;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = s->tls_cert;
    info->ssl_private_key_filepath = s->tls_key;
    info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
    if (s->tls_client_ca) {
        info->ssl_ca_filepath = s->tls_client_ca;
        info->options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
    }
}

int transport_tls_setup(struct transport *t, void *ssl_ctx)
{
    t->ssl_ctx = ssl_ctx;
    /* OpenSSL keeps a read and a write buffer (about 17 KB each) per connection for its
     * life; most of the bridge's connections are idle between frames, so the buffers go
     * back while nothing is pending (docs/benchmarks.md: RSS with TLS). */
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
        LOG_ERROR("ws", "TLS: cannot require TLS 1.2 or newer");
        return -1;
    }
    return 0;
}

int transport_client_cert_verdict(size_t preverify_ok)
{
    /* lws would accept any certificate when this callback returns 0 unconditionally. */
    return preverify_ok ? 0 : 1;
}

/* The leaf certificate, the rest of the chain and the key, from PEM files. */
struct pair {
    X509 *leaf;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
};

static void pair_free(struct pair *p)
{
    X509_free(p->leaf);
    sk_X509_pop_free(p->chain, X509_free);
    EVP_PKEY_free(p->key);
}

static int pair_load(struct pair *p, const char *cert, const char *key)
{
    BIO *b = BIO_new_file(cert, "r");
    p->leaf = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    p->chain = sk_X509_new_null();
    for (X509 *x; p->leaf && p->chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL));)
        if (!sk_X509_push(p->chain, x))
            X509_free(x);
    BIO_free(b);
    ERR_clear_error(); /* the end of the chain reads as an error */
    b = BIO_new_file(key, "r");
    p->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return p->leaf && p->chain && p->key ? 0 : -1;
}

int transport_tls_reload(struct transport *t, const struct cfg_server *s)
{
    if (!t->ssl_ctx || !s->tls_cert || !s->tls_key)
        return 1;
    struct pair p = {0};
    /* SSL_CTX_use_cert_and_key checks that the key belongs to the certificate before it
     * replaces anything, so a bad pair leaves the running one in place. */
    int rc = pair_load(&p, s->tls_cert, s->tls_key) == 0 &&
             SSL_CTX_use_cert_and_key(t->ssl_ctx, p.leaf, p.key, p.chain, 1) == 1 ? 0 : -1;
    pair_free(&p);
    const char *why = ERR_reason_error_string(ERR_peek_last_error());
    if (rc)
        LOG_ERROR("ws", "TLS: cannot use %s / %s (%s); new connections keep the previous "
                        "certificate", s->tls_cert, s->tls_key, why ? why : "unreadable");
    else
        LOG_INFO("ws", "TLS: certificate %s loaded for new connections", s->tls_cert);
    ERR_clear_error();
    return rc;
}
