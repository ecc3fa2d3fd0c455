/*
 * Minimal SHA-1, only for checking Sec-WebSocket-Accept in the benchmark load client
 * (RFC 6455 section 4.2.2).  Not for anything security-related.  Any thread.
 */
#ifndef TB_BENCH_SHA1_H
#define TB_BENCH_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 20-byte digest of data[0..n) into out. */
void sha1(const uint8_t *data, size_t n, uint8_t out[20]);

#endif
