/* pmd: compresses a message once for every permessage-deflate member (see pmd.h).
 * Service thread only. */
#include "pmd.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* RFC 7692 7.2.1: a message is compressed to DEFLATE blocks ending in an empty
 * non-final block (a sync flush: 00 00 ff ff), and those last four bytes are removed. */
static const unsigned char SYNC_TAIL[4] = {0x00, 0x00, 0xff, 0xff};

struct pmd {
    z_stream zs;
    bool ready;              /* zs initialized */
    int level;
    size_t min_bytes;
    unsigned char *out;      /* compression buffer, grown to the largest message */
    size_t out_cap;
    struct pmd_stats st;
};

struct pmd *pmd_new(void)
{
    return calloc(1, sizeof(struct pmd));
}

void pmd_free(struct pmd *z)
{
    if (!z)
        return;
    if (z->ready)
        deflateEnd(&z->zs);
    free(z->out);
    free(z);
}

int pmd_configure(struct pmd *z, size_t min_bytes, int level)
{
    z->min_bytes = min_bytes;
    if (z->ready && z->level == level)
        return 0;
    if (z->ready)
        deflateEnd(&z->zs);
    memset(&z->zs, 0, sizeof z->zs);
    /* Raw DEFLATE (negative window bits), the largest window: a client may not limit it
     * (offers with server_max_window_bits are declined in ws_server.c). */
    z->ready = deflateInit2(&z->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    z->level = level;
    return z->ready ? 0 : -1;
}

static bool out_reserve(struct pmd *z, size_t n)
{
    if (n <= z->out_cap)
        return true;
    unsigned char *p = realloc(z->out, n);
    if (!p)
        return false;
    z->out = p;
    z->out_cap = n;
    return true;
}

/* Compresses len bytes into z->out; the compressed length without the sync tail, or 0
 * when it failed or would not be smaller. */
static size_t compress_one(struct pmd *z, const unsigned char *in, size_t len)
{
    /* deflateBound is for a finished stream; a sync flush adds at most a few bytes. */
    size_t cap = deflateBound(&z->zs, (uLong)len) + 16;
    if (len > UINT32_MAX || !out_reserve(z, cap) || deflateReset(&z->zs) != Z_OK)
        return 0;
    z->zs.next_in = (unsigned char *)in;
    z->zs.avail_in = (uInt)len;
    z->zs.next_out = z->out;
    z->zs.avail_out = (uInt)cap;
    int rc = deflate(&z->zs, Z_SYNC_FLUSH);
    size_t n = cap - z->zs.avail_out;
    if (rc != Z_OK || z->zs.avail_in || n < sizeof SYNC_TAIL ||
        memcmp(z->out + n - sizeof SYNC_TAIL, SYNC_TAIL, sizeof SYNC_TAIL) != 0)
        return 0;
    n -= sizeof SYNC_TAIL;
    return n < len ? n : 0;
}

static struct tb_msg *build_twin(struct pmd *z, struct tb_msg *m)
{
    size_t n = compress_one(z, msg_payload(m), m->len);
    if (!n)
        return NULL;
    struct tb_msg *t = msg_new(z->out, n);
    if (!t)
        return NULL;
    msg_frame(t)[0] |= 0x40; /* RSV1: this message is compressed */
    t->key = m->key;
    t->twin_done = true;     /* never compressed again */
    z->st.frames++;
    z->st.bytes_in += m->len;
    z->st.bytes_out += n;
    return t;
}

struct tb_msg *pmd_frame(struct pmd *z, struct tb_msg *m)
{
    if (!m->twin_done) {
        /* Text frames only (FIN + opcode 1); control frames are never compressed. */
        bool worth = z->ready && msg_frame(m)[0] == 0x81 && m->len >= z->min_bytes && m->len > 0;
        m->twin = worth ? build_twin(z, m) : NULL;
        /* A message too small now stays uncompressed: it is not looked at again. */
        m->twin_done = true;
    }
    return m->twin ? m->twin : m;
}

struct pmd_stats pmd_stats(const struct pmd *z)
{
    return z->st;
}
