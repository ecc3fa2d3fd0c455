/* throttle: token buckets and the per-address table behind the abuse limits (issue 13).
 *
 * Two pieces, both pure (the caller passes the time; no sockets, no config):
 *
 *   - A token bucket (throttle_bucket_take) and, on top of it, the inbound message guard of
 *     one connection (throttle_msg_check): messages within the rate pass; the ones over it
 *     are refused, the client is told at most once per THROTTLE_TELL_MS, and a client that
 *     keeps going (close_after refusals within THROTTLE_WINDOW_MS) is to be closed.
 *
 *   - The address table: per source address (IPv4 /32, IPv6 grouped by a prefix, /64 by
 *     default) the open WebSocket connections and a handshake bucket. Its memory is
 *     bounded: at most 'max' entries, grown on demand. An address with no open connection
 *     keeps its entry only while its handshake bucket is not full again (then it would
 *     carry no information: expiry); when the table is full, such an idle entry is reused,
 *     oldest first, so a flood of distinct addresses cannot grow memory, and only entries
 *     with live connections (at most one per connection) are never reused.
 *
 * Chained hashing over an array of entries linked by index; the idle entries (no open
 * connection) are also on a list in the order they became idle, for expiry and reuse.
 * One thread (the service thread) uses a table. */
#ifndef TB_THROTTLE_H
#define TB_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* ---- token bucket -------------------------------------------------------------------- */

struct tb_bucket {
    double tokens;
    uint64_t at_ms;        /* time of the last refill */
    bool primed;           /* false: not used yet, full */
};

/* Takes one token; false when none is left. rate <= 0: unlimited (always true). */
bool throttle_bucket_take(struct tb_bucket *b, double rate, double burst, uint64_t now_ms);
/* Milliseconds until one token is available (0 = now), at least 1 when not now. */
uint64_t throttle_bucket_wait_ms(const struct tb_bucket *b, double rate, double burst, uint64_t now_ms);

/* ---- inbound messages of one connection ---------------------------------------------- */

#define THROTTLE_TELL_MS 1000      /* at most one rate_limited error frame per second */
#define THROTTLE_WINDOW_MS 10000   /* close_after counts the refusals of this window */

struct throttle_msg_rate {
    double per_second;           /* 0 = unlimited */
    double burst;
    unsigned close_after;        /* refusals within THROTTLE_WINDOW_MS before closing; 0 = never */
};

enum throttle_verdict {
    THROTTLE_PASS,                 /* process the message */
    THROTTLE_REFUSE,               /* drop it silently (the client was told recently) */
    THROTTLE_REFUSE_TELL,          /* drop it and send the rate_limited error */
    THROTTLE_CLOSE,                /* drop it and close the connection (1008) */
};

struct throttle_msg_guard {
    struct tb_bucket bucket;
    uint64_t window_start_ms;
    unsigned refused_in_window;
    uint64_t told_ms;            /* last error frame; 0 = never */
    uint64_t refused;            /* messages refused over the connection's life */
};

enum throttle_verdict throttle_msg_check(struct throttle_msg_guard *g, const struct throttle_msg_rate *r,
                                     uint64_t now_ms);

/* ---- source addresses ----------------------------------------------------------------- */

/* An address as 16 bytes: IPv4 (and IPv4-mapped IPv6) as ::ffff:a.b.c.d, IPv6 with the
 * bits beyond the grouping prefix cleared. */
struct addr_key {
    uint8_t b[16];
};

/* The key of a socket address (AF_INET / AF_INET6); v6_prefix 1..128. -1: other family. */
int throttle_addr_key(const struct sockaddr *sa, unsigned v6_prefix, struct addr_key *out);
/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104, judged on the full address (a grouped key
 * of ::1 is ::/64, which is not loopback). */
bool throttle_sockaddr_is_loopback(const struct sockaddr *sa);
/* "192.0.2.1" or "2001:db8::/64" style text for logs; buf of at least 64 bytes. */
void throttle_addr_format(const struct addr_key *k, unsigned v6_prefix, char *buf, size_t len);

struct addr_limits {
    unsigned max_conns;          /* open WebSocket connections per address; 0 = unlimited */
    double handshake_rate;       /* upgrades per second per address; 0 = unlimited */
    double handshake_burst;
};

enum addr_verdict {
    ADDR_OK,
    ADDR_RATE,                   /* handshake rate exceeded: 429 */
    ADDR_TOO_MANY,               /* max_conns open from this address: 503 */
    ADDR_TABLE_FULL,             /* every entry holds live connections: 503 */
};

struct addr_table;

/* A table of at most max_entries addresses (>= 1); NULL when out of memory. */
struct addr_table *addr_table_new(size_t max_entries);
void addr_table_free(struct addr_table *t);

/* A handshake from k: takes a handshake token and checks the open connections. On
 * ADDR_RATE *retry_ms is when to try again (seconds are what Retry-After says). */
enum addr_verdict addr_table_admit(struct addr_table *t, const struct addr_key *k,
                                   const struct addr_limits *lim, uint64_t now_ms, uint64_t *retry_ms);
/* A connection from k is open (after admit): counted until addr_table_closed. False when
 * the table is full of live entries (the connection is then not counted). */
bool addr_table_opened(struct addr_table *t, const struct addr_key *k, uint64_t now_ms);
/* The connection counted by addr_table_opened has closed. */
void addr_table_closed(struct addr_table *t, const struct addr_key *k, uint64_t now_ms);

/* Open connections counted for k (0 when unknown). */
unsigned addr_table_conns(const struct addr_table *t, const struct addr_key *k);
/* Entries in use, and entries reused before they had expired (the table was full). */
size_t addr_table_size(const struct addr_table *t);
uint64_t addr_table_evicted(const struct addr_table *t);

#endif
