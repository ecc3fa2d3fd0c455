/* transport: what the listener negotiates under the bridge's protocol: wss:// (TLS) and
 * permessage-deflate. ws_server calls it from its lws callback; it owns no connection.
 *
 * TLS: lws creates the listener's SSL_CTX from server.tls_cert / tls_key (and requires
 * client certificates signed by server.tls_client_ca when set); transport_tls_setup then
 * limits it to TLS 1.2 and newer and remembers it, so a reload can put a new certificate
 * and key into it (transport_tls_reload): connections accepted after that get the new
 * pair, open ones keep theirs.
 *
 * permessage-deflate (RFC 7692): lws' own extension negotiates it and inflates what
 * clients send compressed (transport_extensions); the frames the bridge sends are
 * compressed by pmd.c, once per message for every member, which is only valid because
 * the bridge never uses context takeover. lws 4.1 echoes only the parameters a client
 * offered, so transport_add_headers adds server_no_context_takeover to its response
 * line. A corrupt compressed frame from a client gets close code 1007 before lws drops
 * the connection (transport_pmd_callback).
 *
 * Threads: service thread (lws callbacks). */
#ifndef TB_TRANSPORT_H
#define TB_TRANSPORT_H

#include <stdbool.h>

#include <libwebsockets.h>

#include "config.h"

struct transport;

struct transport *transport_new(void);
void transport_free(struct transport *t);   /* NULL is harmless */

/* Fills the TLS and extension settings of the context the server creates for 's'. */
void transport_context_info(const struct cfg_server *s, struct lws_context_creation_info *info);

/* LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: the listener's SSL_CTX (user);
 * 0, or -1 when it cannot be limited to TLS 1.2+ (then the server must not start). */
int transport_tls_setup(struct transport *t, void *ssl_ctx);
/* LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION: lws passes OpenSSL's verdict
 * (preverify_ok) as 'len' and accepts the certificate when the callback returns 0. */
int transport_client_cert_verdict(size_t preverify_ok);
/* Loads s->tls_cert / tls_key into the listener for the connections accepted from now
 * on. 0; 1 when there is no TLS listener; -1 when the pair cannot be used (logged; the
 * running pair stays). */
int transport_tls_reload(struct transport *t, const struct cfg_server *s);

/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 to accept extension 'name' for this handshake
 * (permessage-deflate when enabled and the offer does not limit the bridge's window). */
int transport_confirm_extension(const struct cfg_server *s, struct lws *wsi, const char *name);
/* LWS_CALLBACK_ADD_HEADERS of a handshake that accepted permessage-deflate: adds
 * server_no_context_takeover to lws' Sec-WebSocket-Extensions line. */
void transport_add_headers(struct lws_process_html_args *args);

#endif
