/* netaddr: see netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Parses one address (no prefix); v4-mapped IPv6 becomes IPv4. */
static int parse_addr(const char *text, struct netaddr_cidr *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->addr) != 1)
        return -1;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out->addr, mapped, sizeof mapped) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix = 32;
        return 0;
    }
    out->family = AF_INET6;
    out->prefix = 128;
    return 0;
}

int netaddr_parse_cidr(const char *text, struct netaddr_cidr *out)
{
    char buf[64];
    if (!text || strlen(text) >= sizeof buf)
        return -1;
    strcpy(buf, text);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (parse_addr(buf, out) != 0)
        return -1;
    if (!slash)
        return 0;
    int max = out->family == AF_INET ? 32 : 128;
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (slash[1] < '0' || slash[1] > '9' || *end || bits < 0 || bits > max)
        return -1;
    out->prefix = (int)bits;
    return 0;
}

static bool in_range(const struct netaddr_cidr *range, const struct netaddr_cidr *a)
{
    if (range->family != a->family)
        return false;
    int full = range->prefix / 8, rest = range->prefix % 8;
    if (memcmp(range->addr, a->addr, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (range->addr[full] & mask) == (a->addr[full] & mask);
}

bool netaddr_in_list(const char *addr, char *const *ranges, size_t n)
{
    struct netaddr_cidr a, r;
    if (!addr || parse_addr(addr, &a) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (netaddr_parse_cidr(ranges[i], &r) == 0 && in_range(&r, &a))
            return true;
    return false;
}

/* Copies s[0..len) without surrounding blanks into out (NUL-terminated); -1 if too long. */
static int trimmed(const char *s, size_t len, char *out, size_t outlen)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= outlen)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

const char *netaddr_client(const char *peer, const char *xff, char *const *trusted, size_t n_trusted,
                           char *out, size_t len)
{
    snprintf(out, len, "%s", peer ? peer : "-");
    if (!xff || !n_trusted)
        return out;
    size_t end = strlen(xff);
    while (netaddr_in_list(out, trusted, n_trusted)) {
        if (!end)
            break;
        size_t start = end;
        while (start && xff[start - 1] != ',')
            start--;
        char hop[64];
        struct netaddr_cidr a;
        if (trimmed(xff + start, end - start, hop, sizeof hop) || parse_addr(hop, &a) != 0)
            break;
        snprintf(out, len, "%s", hop);
        end = start ? start - 1 : 0;
    }
    return out;
}
