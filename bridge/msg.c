/* msg: refcounted, pre-framed WebSocket text frames. Service thread only. */
#include "msg.h"

#include <stdbool.h>
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

/* The value of a time field, ms or an ISO 8601 UTC string; false when it cannot be had. */
static bool time_text(unsigned long long ms, int iso, char *out, size_t len)
{
    if (!iso)
        return snprintf(out, len, "%llu", ms) > 0;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char day[24];
    if (!gmtime_r(&secs, &tm) || !strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm))
        return false;
    return snprintf(out, len, "\"%s.%03lluZ\"", day, ms % 1000) > 0;
}

/* The first (or last) "key": of the payload that follows '{' or ',' (a member name, not
 * text inside a string, where the quote would be escaped). */
static const char *find_key(const char *p, const char *key, bool last)
{
    char pat[40];
    if (snprintf(pat, sizeof pat, "\"%s\":", key) >= (int)sizeof pat)
        return NULL;
    const char *found = NULL;
    for (const char *at = strstr(p + 1, pat); at; at = strstr(at + 1, pat)) {
        if (at[-1] != ',' && at[-1] != '{')
            continue;
        found = at;
        if (!last)
            break;
    }
    return found;
}

/* A copy of m with payload bytes [from, to) replaced by 'with' (same key). */
static struct tb_msg *splice(struct tb_msg *m, size_t from, size_t to, const char *with)
{
    const char *p = (const char *)msg_payload(m);
    size_t wlen = strlen(with), tail = m->len - to;
    char *text = malloc(from + wlen + tail + 1);
    if (!text)
        return NULL;
    memcpy(text, p, from);
    memcpy(text + from, with, wlen);
    memcpy(text + from + wlen, p + to, tail);
    struct tb_msg *out = msg_new(text, from + wlen + tail);
    free(text);
    if (out)
        out->key = m->key;
    return out;
}

struct tb_msg *msg_rewrite_time(struct tb_msg *m, const char *key, bool last, const char *new_key, int iso)
{
    const char *p = (const char *)msg_payload(m);
    const char *at = find_key(p, key, last);
    if (!at)
        return msg_ref(m);
    const char *num = at + strlen(key) + 3, *end = num;
    while (*end >= '0' && *end <= '9')
        end++;
    char with[96], value[48];
    if (end == num || !time_text(strtoull(num, NULL, 10), iso, value, sizeof value) ||
        snprintf(with, sizeof with, "\"%s\":%s", new_key, value) >= (int)sizeof with)
        return msg_ref(m);
    return splice(m, (size_t)(at - p), (size_t)(end - p), with);
}

struct tb_msg *msg_retime(struct tb_msg *m, const char *field, int iso)
{
    return msg_rewrite_time(m, "ts", false, field, iso);
}

struct tb_msg *msg_replace_first(struct tb_msg *m, const char *from, const char *to)
{
    const char *p = (const char *)msg_payload(m);
    const char *at = strstr(p, from);
    if (!at)
        return msg_ref(m);
    return splice(m, (size_t)(at - p), (size_t)(at - p) + strlen(from), to);
}
