/* throttle: token buckets and the per-address table (see throttle.h). Pure; the table is
 * used by one thread (the service thread). */
#include "throttle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "hash.h"

/* ---- token bucket -------------------------------------------------------------------- */

static void refill(struct tb_bucket *b, double rate, double burst, uint64_t now)
{
    if (!b->primed) {
        b->tokens = burst;
        b->at_ms = now;
        b->primed = true;
        return;
    }
    if (now > b->at_ms) {
        b->tokens += (double)(now - b->at_ms) * rate / 1000.0;
        if (b->tokens > burst)
            b->tokens = burst;
        b->at_ms = now;
    }
}

bool throttle_bucket_take(struct tb_bucket *b, double rate, double burst, uint64_t now_ms)
{
    if (rate <= 0)
        return true;
    if (burst < 1)
        burst = 1;
    refill(b, rate, burst, now_ms);
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

uint64_t throttle_bucket_wait_ms(const struct tb_bucket *b, double rate, double burst, uint64_t now_ms)
{
    if (rate <= 0 || !b->primed)
        return 0;
    struct tb_bucket c = *b;
    refill(&c, rate, burst < 1 ? 1 : burst, now_ms);
    if (c.tokens >= 1.0)
        return 0;
    return (uint64_t)((1.0 - c.tokens) * 1000.0 / rate) + 1;
}

/* ms until the bucket is full again (then it carries no information). */
static uint64_t full_in_ms(const struct tb_bucket *b, double rate, double burst)
{
    if (rate <= 0 || b->tokens >= burst)
        return 0;
    return (uint64_t)((burst - b->tokens) * 1000.0 / rate) + 1;
}

/* ---- inbound messages of one connection ---------------------------------------------- */

enum throttle_verdict throttle_msg_check(struct throttle_msg_guard *g, const struct throttle_msg_rate *r,
                                     uint64_t now_ms)
{
    if (throttle_bucket_take(&g->bucket, r->per_second, r->burst, now_ms))
        return THROTTLE_PASS;
    g->refused++;
    if (now_ms - g->window_start_ms >= THROTTLE_WINDOW_MS || !g->refused_in_window) {
        g->window_start_ms = now_ms;
        g->refused_in_window = 0;
    }
    g->refused_in_window++;
    if (r->close_after && g->refused_in_window >= r->close_after)
        return THROTTLE_CLOSE;
    if (g->told_ms && now_ms - g->told_ms < THROTTLE_TELL_MS)
        return THROTTLE_REFUSE;
    g->told_ms = now_ms ? now_ms : 1;
    return THROTTLE_REFUSE_TELL;
}

/* ---- addresses ------------------------------------------------------------------------ */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int throttle_addr_key(const struct sockaddr *sa, unsigned v6_prefix, struct addr_key *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(out->b, v4_mapped, sizeof v4_mapped);
        memcpy(out->b + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(out->b, &in6->sin6_addr, 16);
    if (memcmp(out->b, v4_mapped, sizeof v4_mapped) == 0)
        return 0; /* an IPv4 client on a dual-stack socket: its own /32 */
    if (v6_prefix < 1 || v6_prefix > 128)
        v6_prefix = 128;
    for (unsigned bit = v6_prefix; bit < 128; bit++)
        out->b[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
    return 0;
}

bool throttle_sockaddr_is_loopback(const struct sockaddr *sa)
{
    static const uint8_t v6_loop[16] = {[15] = 1};
    struct addr_key k;
    if (throttle_addr_key(sa, 128, &k))
        return false;
    if (memcmp(k.b, v4_mapped, sizeof v4_mapped) == 0)
        return k.b[12] == 127;
    return memcmp(k.b, v6_loop, 16) == 0;
}

void throttle_addr_format(const struct addr_key *k, unsigned v6_prefix, char *buf, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    if (memcmp(k->b, v4_mapped, sizeof v4_mapped) == 0) {
        inet_ntop(AF_INET, k->b + 12, text, sizeof text);
        snprintf(buf, len, "%s", text);
        return;
    }
    inet_ntop(AF_INET6, k->b, text, sizeof text);
    if (v6_prefix >= 1 && v6_prefix < 128)
        snprintf(buf, len, "%s/%u", text, v6_prefix);
    else
        snprintf(buf, len, "%s", text);
}

/* ---- the address table ---------------------------------------------------------------- */

#define NIL UINT32_MAX
#define GROW_MIN 64

struct addr_entry {
    struct addr_key key;
    uint32_t chain;              /* next entry of the hash chain */
    uint32_t prev, next;         /* idle list (conns == 0), or free list (next only) */
    uint32_t conns;
    bool used;
    struct tb_bucket hs;         /* handshakes */
    uint64_t expires_ms;         /* idle entry: reusable from then on */
};

struct addr_table {
    struct addr_entry *e;
    size_t n_alloc, max;
    uint32_t *heads;
    size_t mask;
    uint32_t free_head;
    uint32_t idle_head, idle_tail;
    size_t used;
    uint64_t evicted;
};

struct addr_table *addr_table_new(size_t max_entries)
{
    if (max_entries < 1 || max_entries >= NIL)
        return NULL;
    struct addr_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t nb = 16;
    while (nb < max_entries)
        nb <<= 1;
    t->heads = malloc(nb * sizeof *t->heads);
    if (!t->heads) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < nb; i++)
        t->heads[i] = NIL;
    t->mask = nb - 1;
    t->max = max_entries;
    t->free_head = t->idle_head = t->idle_tail = NIL;
    return t;
}

void addr_table_free(struct addr_table *t)
{
    if (!t)
        return;
    free(t->e);
    free(t->heads);
    free(t);
}

static size_t slot(const struct addr_table *t, const struct addr_key *k)
{
    return (size_t)tb_hash_bytes(k->b, sizeof k->b) & t->mask;
}

static uint32_t find(const struct addr_table *t, const struct addr_key *k)
{
    for (uint32_t i = t->heads[slot(t, k)]; i != NIL; i = t->e[i].chain)
        if (memcmp(t->e[i].key.b, k->b, sizeof k->b) == 0)
            return i;
    return NIL;
}

static void idle_unlink(struct addr_table *t, uint32_t i)
{
    struct addr_entry *e = &t->e[i];
    if (e->prev != NIL)
        t->e[e->prev].next = e->next;
    else
        t->idle_head = e->next;
    if (e->next != NIL)
        t->e[e->next].prev = e->prev;
    else
        t->idle_tail = e->prev;
    e->prev = e->next = NIL;
}

static void idle_append(struct addr_table *t, uint32_t i)
{
    struct addr_entry *e = &t->e[i];
    e->next = NIL;
    e->prev = t->idle_tail;
    if (t->idle_tail != NIL)
        t->e[t->idle_tail].next = i;
    else
        t->idle_head = i;
    t->idle_tail = i;
}

/* Takes entry i (idle) out of its chain and the idle list, onto the free list. */
static void release(struct addr_table *t, uint32_t i)
{
    struct addr_entry *e = &t->e[i];
    idle_unlink(t, i);
    uint32_t *p = &t->heads[slot(t, &e->key)];
    while (*p != i)
        p = &t->e[*p].chain;
    *p = e->chain;
    e->used = false;
    e->next = t->free_head;
    t->free_head = i;
    t->used--;
}

/* Frees idle entries that have expired (a few per call: the work stays bounded). */
static void expire(struct addr_table *t, uint64_t now)
{
    for (int n = 0; n < 8 && t->idle_head != NIL && t->e[t->idle_head].expires_ms <= now; n++)
        release(t, t->idle_head);
}

static bool grow(struct addr_table *t)
{
    if (t->n_alloc >= t->max)
        return false;
    size_t n = t->n_alloc ? t->n_alloc * 2 : GROW_MIN;
    if (n > t->max)
        n = t->max;
    struct addr_entry *e = realloc(t->e, n * sizeof *e);
    if (!e)
        return false;
    t->e = e;
    for (size_t i = n; i-- > t->n_alloc;) {
        e[i].used = false;
        e[i].next = t->free_head;
        t->free_head = (uint32_t)i;
    }
    t->n_alloc = n;
    return true;
}

/* A new idle entry for k: a free one, a new one, or the oldest idle one. NIL when every
 * entry holds live connections. */
static uint32_t insert(struct addr_table *t, const struct addr_key *k, uint64_t now)
{
    if (t->free_head == NIL && !grow(t) && t->idle_head != NIL) {
        if (t->e[t->idle_head].expires_ms > now)
            t->evicted++;
        release(t, t->idle_head);
    }
    if (t->free_head == NIL)
        return NIL;
    uint32_t i = t->free_head;
    struct addr_entry *e = &t->e[i];
    t->free_head = e->next;
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->used = true;
    e->expires_ms = now;
    size_t s = slot(t, k);
    e->chain = t->heads[s];
    t->heads[s] = i;
    t->used++;
    idle_append(t, i);
    return i;
}

static uint32_t find_or_insert(struct addr_table *t, const struct addr_key *k, uint64_t now)
{
    expire(t, now);
    uint32_t i = find(t, k);
    return i != NIL ? i : insert(t, k, now);
}

enum addr_verdict addr_table_admit(struct addr_table *t, const struct addr_key *k,
                                   const struct addr_limits *lim, uint64_t now_ms, uint64_t *retry_ms)
{
    uint32_t i = find_or_insert(t, k, now_ms);
    if (i == NIL)
        return ADDR_TABLE_FULL;
    struct addr_entry *e = &t->e[i];
    bool ok = throttle_bucket_take(&e->hs, lim->handshake_rate, lim->handshake_burst, now_ms);
    e->expires_ms = now_ms + full_in_ms(&e->hs, lim->handshake_rate, lim->handshake_burst);
    if (!e->conns) { /* keep the idle list in order of expiry */
        idle_unlink(t, i);
        idle_append(t, i);
    }
    if (!ok) {
        if (retry_ms)
            *retry_ms = throttle_bucket_wait_ms(&e->hs, lim->handshake_rate, lim->handshake_burst, now_ms);
        return ADDR_RATE;
    }
    if (lim->max_conns && e->conns >= lim->max_conns)
        return ADDR_TOO_MANY;
    return ADDR_OK;
}

bool addr_table_opened(struct addr_table *t, const struct addr_key *k, uint64_t now_ms)
{
    uint32_t i = find_or_insert(t, k, now_ms);
    if (i == NIL)
        return false;
    if (!t->e[i].conns)
        idle_unlink(t, i);
    t->e[i].conns++;
    return true;
}

void addr_table_closed(struct addr_table *t, const struct addr_key *k, uint64_t now_ms)
{
    uint32_t i = find(t, k);
    if (i == NIL || !t->e[i].conns)
        return;
    struct addr_entry *e = &t->e[i];
    if (--e->conns)
        return;
    if (e->expires_ms < now_ms)
        e->expires_ms = now_ms;
    idle_append(t, i);
}

unsigned addr_table_conns(const struct addr_table *t, const struct addr_key *k)
{
    uint32_t i = find(t, k);
    return i == NIL ? 0 : t->e[i].conns;
}

size_t addr_table_size(const struct addr_table *t)
{
    return t->used;
}

uint64_t addr_table_evicted(const struct addr_table *t)
{
    return t->evicted;
}
