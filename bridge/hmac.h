/* hmac: HMAC-SHA256 as lowercase hex, through OpenSSL (no hand-written crypto).
 *
 * Why: the bridge signs the alert states it publishes retained (alert_state.hmac_key) and
 * restores after a restart only states whose signature checks, so a client with broker
 * write access cannot plant alerts (issue 14.10). Pure; any thread. */
#ifndef TB_HMAC_H
#define TB_HMAC_H

#include <stdbool.h>
#include <stddef.h>

#define HMAC_HEX_LEN 64   /* SHA-256: 32 bytes, 64 hex digits */

/* Writes HMAC-SHA256(key, data) as HMAC_HEX_LEN hex digits and a NUL into hex
 * (HMAC_HEX_LEN + 1 bytes). Returns 0, or -1 when OpenSSL fails. */
int hmac_sha256_hex(const char *key, const char *data, size_t len, char *hex);

/* True when 'hex' is the HMAC of data under key; compares in constant time. */
bool hmac_sha256_check(const char *key, const char *data, size_t len, const char *hex);

#endif
