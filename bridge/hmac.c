/* hmac: HMAC-SHA256 hex through OpenSSL's one-shot HMAC() (see hmac.h). Any thread. */
#include "hmac.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int hmac_sha256_hex(const char *key, const char *data, size_t len, char *hex)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, len, mac, &n) ||
        n * 2 != HMAC_HEX_LEN)
        return -1;
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

bool hmac_sha256_check(const char *key, const char *data, size_t len, const char *hex)
{
    char want[HMAC_HEX_LEN + 1];
    if (!hex || strlen(hex) != HMAC_HEX_LEN || hmac_sha256_hex(key, data, len, want))
        return false;
    return CRYPTO_memcmp(want, hex, HMAC_HEX_LEN) == 0;
}
