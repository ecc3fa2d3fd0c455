/* msg: refcounted, pre-framed WebSocket text frames. Service thread only. */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    if (m && --m->refs == 0)
        free(m);
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

struct tb_msg *msg_retime(struct tb_msg *m, const char *field, int iso)
{
    const char *p = (const char *)msg_payload(m);
    const char *at = strstr(p, ",\"ts\":");
    if (!at)
        return msg_ref(m);
    const char *num = at + 6, *end = num;
    while (*end >= '0' && *end <= '9')
        end++;
    char value[40];
    unsigned long long ms = strtoull(num, NULL, 10);
    if (iso) {
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char day[24];
        if (!gmtime_r(&secs, &tm) || !strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm))
            return msg_ref(m);
        snprintf(value, sizeof value, "\"%s.%03lluZ\"", day, ms % 1000);
    } else {
        snprintf(value, sizeof value, "%llu", ms);
    }
    size_t head = (size_t)(at - p), tail = m->len - (size_t)(end - p);
    size_t flen = strlen(field), vlen = strlen(value);
    char *text = malloc(head + flen + vlen + tail + 8);
    if (!text)
        return NULL;
    size_t n = 0;
    memcpy(text, p, head);
    n = head;
    n += (size_t)sprintf(text + n, ",\"%s\":%s", field, value);
    memcpy(text + n, end, tail);
    n += tail;
    struct tb_msg *out = msg_new(text, n);
    free(text);
    if (out)
        out->key = m->key;
    return out;
}
