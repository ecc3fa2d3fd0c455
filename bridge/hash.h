/* hash: the one string hash of the daemon (64-bit FNV-1a).
 *
 * Rooms, conflation keys, alert keys, log rate limits and config versions all hash short
 * strings; one function serves them all, so a change of hash is made once. (The copies
 * it replaced used a mistyped offset basis, one digit short; the values are only ever
 * compared within one process.) Pure; any thread. */
#ifndef TB_HASH_H
#define TB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TB_HASH_SEED 0xcbf29ce484222325ull   /* FNV-1a 64-bit offset basis */
#define TB_HASH_PRIME 0x100000001b3ull

/* Continues hash h over n bytes (start with TB_HASH_SEED). */
static inline uint64_t tb_hash_more(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * TB_HASH_PRIME;
    return h;
}

static inline uint64_t tb_hash_bytes(const void *p, size_t n)
{
    return tb_hash_more(TB_HASH_SEED, p, n);
}

static inline uint64_t tb_hash_str(const char *s)
{
    uint64_t h = TB_HASH_SEED;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * TB_HASH_PRIME;
    return h;
}

#endif
