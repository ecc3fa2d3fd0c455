/* msg: refcounted, pre-framed WebSocket text frames. Service thread only. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

_Static_assert(LWS_PRE >= 10, "headroom must fit the largest WebSocket frame header");

struct tb_msg *msg_new(const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    struct tb_msg *m = malloc(sizeof *m + LWS_PRE + len + 1);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->key = 0;
    m->twin = NULL;
    m->twin_done = false;
    memcpy(m->buf + LWS_PRE, data, len);
    m->buf[LWS_PRE + len] = '\0';
    /* RFC 6455 header, FIN + text opcode, server frames are not masked. */
    unsigned char *p = m->buf + LWS_PRE;
    if (len < 126) {
        m->hdr_len = 2;
        p[-1] = (unsigned char)len;
    } else if (len <= 0xFFFF) {
        m->hdr_len = 4;
        p[-3] = 126;
        p[-2] = (unsigned char)(len >> 8);
        p[-1] = (unsigned char)len;
    } else {
        m->hdr_len = 10;
        p[-9] = 127;
        for (int i = 0; i < 8; i++)
            p[-1 - i] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    p[-(int)m->hdr_len] = 0x81;
    return m;
}

void msg_unref(struct tb_msg *m)
{
    if (m && --m->refs == 0) {
        msg_unref(m->twin);
        free(m);
    }
}

uint64_t msg_topic_key(const char *topic)
{
    uint64_t h = tb_hash_str(topic);
    return h ? h : 1;
}

struct tb_msg *msg_new_control(unsigned opcode, const void *data, size_t len)
{
    if (len > 125 || opcode < 0x8 || opcode > 0xA)
        return NULL;
    struct tb_msg *m = msg_new(data, len);
    if (m)
        msg_frame(m)[0] = (unsigned char)(0x80 | opcode);
    return m;
}
