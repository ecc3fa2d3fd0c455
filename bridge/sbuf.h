/* sbuf: a growable byte buffer for building JSON text. Any thread (no shared state).
 * An allocation failure is sticky: sbuf_failed() tells, and the content is then unusable. */
#ifndef TB_SBUF_H
#define TB_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
    char *data;
    size_t len, cap;
    bool failed;
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b);          /* len = 0, keeps the allocation */
bool sbuf_reserve(struct sbuf *b, size_t extra);
void sbuf_append(struct sbuf *b, const void *p, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_u64(struct sbuf *b, uint64_t v);
/* Appends s as a JSON string literal, quotes included. Invalid UTF-8 becomes U+FFFD. */
void sbuf_json_string(struct sbuf *b, const char *s, size_t n);
static inline bool sbuf_failed(const struct sbuf *b) { return b->failed; }

/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const char *s, size_t n);
/* Length of the valid sequence starting at s (1..4), or 0 if invalid. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif
