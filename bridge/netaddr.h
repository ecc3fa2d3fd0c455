/* netaddr: IP addresses and CIDR ranges as text, and the client address behind trusted
 * reverse proxies (X-Forwarded-For). Pure functions; any thread.
 *
 * IPv4-mapped IPv6 addresses (::ffff:10.1.2.3, what a dual-stack listener reports for an
 * IPv4 peer) are treated as the IPv4 address. */
#ifndef TB_NETADDR_H
#define TB_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

struct netaddr_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;                 /* bits; 32 / 128 for a single address */
};

/* "10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8". Returns 0, or -1 when not an address,
 * a prefix out of range or trailing text. */
int netaddr_parse_cidr(const char *text, struct netaddr_cidr *out);

/* True when the address 'addr' (text) lies in one of the n ranges (text, as configured;
 * unparsable entries never match). */
bool netaddr_in_list(const char *addr, char *const *ranges, size_t n);

/* The client's address: 'peer' (the TCP peer), or, when the peer is a trusted proxy, the
 * X-Forwarded-For entries read from the right, each believed only while the hop that
 * reported it is trusted (so a client cannot name itself by sending the header). An entry
 * that is not an address ends the walk. Writes into out and returns it. */
const char *netaddr_client(const char *peer, const char *xff, char *const *trusted, size_t n_trusted,
                           char *out, size_t len);

#endif
