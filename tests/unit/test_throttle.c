/* Unit tests for throttle (issue 13, limits): the token bucket, the inbound message guard
 * (refuse, tell once per second, close after a run of refusals), address keys (IPv4,
 * IPv4-mapped, IPv6 /64 grouping, loopback) and the address table (connection counts,
 * handshake rate, expiry, the bound under a flood of distinct addresses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "throttle.h"

static void test_bucket_burst_then_rate(void **state)
{
    (void)state;
    struct tb_bucket b = {0};
    for (int i = 0; i < 5; i++)
        assert_true(throttle_bucket_take(&b, 10, 5, 1000));
    assert_false(throttle_bucket_take(&b, 10, 5, 1000));
    assert_true(throttle_bucket_wait_ms(&b, 10, 5, 1000) >= 100);
    assert_false(throttle_bucket_take(&b, 10, 5, 1050));   /* half a token */
    assert_true(throttle_bucket_take(&b, 10, 5, 1100));
    /* refills to the burst, never beyond */
    for (int i = 0; i < 5; i++)
        assert_true(throttle_bucket_take(&b, 10, 5, 100000));
    assert_false(throttle_bucket_take(&b, 10, 5, 100000));
    /* rate 0 = unlimited */
    struct tb_bucket u = {0};
    for (int i = 0; i < 1000; i++)
        assert_true(throttle_bucket_take(&u, 0, 0, 5));
    assert_int_equal(throttle_bucket_wait_ms(&u, 0, 0, 5), 0);
}

static void test_bucket_clock_going_back(void **state)
{
    (void)state;
    struct tb_bucket b = {0};
    assert_true(throttle_bucket_take(&b, 1, 1, 5000));
    assert_false(throttle_bucket_take(&b, 1, 1, 4000));   /* no refill from a time before */
    assert_true(throttle_bucket_take(&b, 1, 1, 6000));
}

static void test_msg_guard_tells_once_then_closes(void **state)
{
    (void)state;
    struct throttle_msg_rate r = {.per_second = 10, .burst = 3, .close_after = 5};
    struct throttle_msg_guard g = {0};
    uint64_t t = 50000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_PASS);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE_TELL);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE);     /* not one error per message */
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_CLOSE);      /* the 5th refusal */
    assert_int_equal(g.refused, 5);
}

static void test_msg_guard_window_forgives(void **state)
{
    (void)state;
    struct throttle_msg_rate r = {.per_second = 1, .burst = 1, .close_after = 3};
    struct throttle_msg_guard g = {0};
    uint64_t t = 1000;
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_PASS);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE_TELL);
    assert_int_equal(throttle_msg_check(&g, &r, t + 10), THROTTLE_REFUSE);
    /* a new window: the count starts again, and the client is told again */
    t += THROTTLE_WINDOW_MS + 10;
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_PASS);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE_TELL);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_REFUSE);
    assert_int_equal(throttle_msg_check(&g, &r, t), THROTTLE_CLOSE);
    /* close_after 0: never closes */
    struct throttle_msg_rate never = {.per_second = 1, .burst = 1, .close_after = 0};
    struct throttle_msg_guard h = {0};
    throttle_msg_check(&h, &never, 1);
    for (int i = 0; i < 1000; i++)
        assert_int_not_equal(throttle_msg_check(&h, &never, 1), THROTTLE_CLOSE);
}

static struct addr_key v4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, text, &sa.sin_addr), 1);
    struct addr_key k;
    assert_int_equal(throttle_addr_key((struct sockaddr *)&sa, 64, &k), 0);
    return k;
}

static struct addr_key v6(const char *text, unsigned prefix)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
    struct addr_key k;
    assert_int_equal(throttle_addr_key((struct sockaddr *)&sa, prefix, &k), 0);
    return k;
}

static void test_addr_keys(void **state)
{
    (void)state;
    struct addr_key a = v4("192.0.2.1"), b = v4("192.0.2.2");
    assert_memory_not_equal(a.b, b.b, 16);
    /* an IPv4 client on a dual-stack socket is the same address, never grouped */
    struct addr_key m = v6("::ffff:192.0.2.1", 64);
    assert_memory_equal(a.b, m.b, 16);
    /* IPv6: one /64 is one address by default */
    struct addr_key x = v6("2001:db8:1:2::1", 64), y = v6("2001:db8:1:2:ffff:ee:dd:cc", 64);
    struct addr_key z = v6("2001:db8:1:3::1", 64);
    assert_memory_equal(x.b, y.b, 16);
    assert_memory_not_equal(x.b, z.b, 16);
    /* 128: every address its own */
    struct addr_key x1 = v6("2001:db8:1:2::1", 128), y1 = v6("2001:db8:1:2::2", 128);
    assert_memory_not_equal(x1.b, y1.b, 16);
    /* 48 groups the /64s of a /48 */
    struct addr_key p = v6("2001:db8:1:2::1", 48), q = v6("2001:db8:1:ffff::1", 48);
    assert_memory_equal(p.b, q.b, 16);
    /* loopback, judged on the full address: ::1 groups to ::/64, and is still loopback */
    struct sockaddr_in lo4 = {.sin_family = AF_INET}, ext4 = {.sin_family = AF_INET};
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6}, m6 = {.sin6_family = AF_INET6},
                        ext6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "127.3.2.1", &lo4.sin_addr);
    inet_pton(AF_INET, "192.0.2.1", &ext4.sin_addr);
    inet_pton(AF_INET6, "::1", &lo6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m6.sin6_addr);
    inet_pton(AF_INET6, "::2", &ext6.sin6_addr);      /* same /64 as ::1, not loopback */
    assert_true(throttle_sockaddr_is_loopback((struct sockaddr *)&lo4));
    assert_true(throttle_sockaddr_is_loopback((struct sockaddr *)&lo6));
    assert_true(throttle_sockaddr_is_loopback((struct sockaddr *)&m6));
    assert_false(throttle_sockaddr_is_loopback((struct sockaddr *)&ext4));
    assert_false(throttle_sockaddr_is_loopback((struct sockaddr *)&ext6));
    char buf[64];
    throttle_addr_format(&x, 64, buf, sizeof buf);
    assert_string_equal(buf, "2001:db8:1:2::/64");
    throttle_addr_format(&a, 64, buf, sizeof buf);
    assert_string_equal(buf, "192.0.2.1");
    /* other families are refused */
    struct sockaddr un = {.sa_family = AF_UNIX};
    struct addr_key k;
    assert_int_equal(throttle_addr_key(&un, 64, &k), -1);
}

static void test_table_counts_connections(void **state)
{
    (void)state;
    struct addr_table *t = addr_table_new(100);
    struct addr_limits lim = {.max_conns = 2};
    struct addr_key a = v4("198.51.100.7"), b = v4("198.51.100.8");
    uint64_t now = 1000;
    assert_int_equal(addr_table_admit(t, &a, &lim, now, NULL), ADDR_OK);
    assert_true(addr_table_opened(t, &a, now));
    assert_int_equal(addr_table_admit(t, &a, &lim, now, NULL), ADDR_OK);
    assert_true(addr_table_opened(t, &a, now));
    assert_int_equal(addr_table_admit(t, &a, &lim, now, NULL), ADDR_TOO_MANY);
    assert_int_equal(addr_table_admit(t, &b, &lim, now, NULL), ADDR_OK);   /* another address */
    addr_table_closed(t, &a, now);
    assert_int_equal(addr_table_conns(t, &a), 1);
    assert_int_equal(addr_table_admit(t, &a, &lim, now, NULL), ADDR_OK);
    addr_table_closed(t, &a, now);
    addr_table_closed(t, &a, now);
    addr_table_closed(t, &a, now);   /* one too many: harmless */
    assert_int_equal(addr_table_conns(t, &a), 0);
    addr_table_free(t);
}

static void test_table_handshake_rate_and_expiry(void **state)
{
    (void)state;
    struct addr_table *t = addr_table_new(100);
    struct addr_limits lim = {.handshake_rate = 2, .handshake_burst = 3};
    struct addr_key a = v4("203.0.113.9");
    uint64_t now = 10000, retry = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(addr_table_admit(t, &a, &lim, now, &retry), ADDR_OK);
    assert_int_equal(addr_table_admit(t, &a, &lim, now, &retry), ADDR_RATE);
    assert_true(retry > 0 && retry <= 501);
    assert_int_equal(addr_table_admit(t, &a, &lim, now + 500, NULL), ADDR_OK);
    assert_int_equal(addr_table_size(t), 1);
    /* once its bucket would be full again, an idle address is forgotten */
    struct addr_key other = v4("203.0.113.10");
    addr_table_admit(t, &other, &lim, now + 60000, NULL);
    assert_int_equal(addr_table_size(t), 1);
    assert_int_equal(addr_table_evicted(t), 0);
    addr_table_free(t);
}

static void test_table_bounded_under_flood(void **state)
{
    (void)state;
    enum { MAX = 50 };
    struct addr_table *t = addr_table_new(MAX);
    struct addr_limits lim = {.max_conns = 1, .handshake_rate = 1, .handshake_burst = 5};
    /* 10 addresses hold a connection */
    struct addr_key live[10];
    for (int i = 0; i < 10; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i)};
        throttle_addr_key((struct sockaddr *)&sa, 64, &live[i]);
        assert_int_equal(addr_table_admit(t, &live[i], &lim, 1000, NULL), ADDR_OK);
        assert_true(addr_table_opened(t, &live[i], 1000));
    }
    /* 100,000 distinct IPv6 /64s, one handshake each, all at once: the table stays bounded,
     * the live entries are kept, and every newcomer still gets its first handshake */
    for (uint32_t i = 0; i < 100000; i++) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
        sa.sin6_addr.s6_addr[0] = 0x20;
        memcpy(&sa.sin6_addr.s6_addr[4], &i, 4);
        struct addr_key k;
        throttle_addr_key((struct sockaddr *)&sa, 64, &k);
        assert_int_equal(addr_table_admit(t, &k, &lim, 1000, NULL), ADDR_OK);
        assert_true(addr_table_size(t) <= MAX);
    }
    assert_true(addr_table_evicted(t) > 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(addr_table_conns(t, &live[i]), 1);
        assert_int_equal(addr_table_admit(t, &live[i], &lim, 1000, NULL), ADDR_TOO_MANY);
    }
    addr_table_free(t);
}

static void test_table_full_of_live_entries(void **state)
{
    (void)state;
    struct addr_table *t = addr_table_new(2);
    struct addr_limits lim = {.max_conns = 5};
    struct addr_key a = v4("192.0.2.1"), b = v4("192.0.2.2"), c = v4("192.0.2.3");
    assert_true(addr_table_opened(t, &a, 1));
    assert_true(addr_table_opened(t, &b, 1));
    assert_int_equal(addr_table_admit(t, &c, &lim, 1, NULL), ADDR_TABLE_FULL);
    assert_false(addr_table_opened(t, &c, 1));
    addr_table_closed(t, &c, 1);       /* never counted: nothing happens */
    addr_table_closed(t, &a, 1);       /* a's entry becomes reusable */
    assert_int_equal(addr_table_admit(t, &c, &lim, 1, NULL), ADDR_OK);
    assert_int_equal(addr_table_conns(t, &b), 1);
    assert_int_equal(addr_table_size(t), 2);
    assert_null(addr_table_new(0));
    addr_table_free(NULL);
    addr_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_burst_then_rate),
        cmocka_unit_test(test_bucket_clock_going_back),
        cmocka_unit_test(test_msg_guard_tells_once_then_closes),
        cmocka_unit_test(test_msg_guard_window_forgives),
        cmocka_unit_test(test_addr_keys),
        cmocka_unit_test(test_table_counts_connections),
        cmocka_unit_test(test_table_handshake_rate_and_expiry),
        cmocka_unit_test(test_table_bounded_under_flood),
        cmocka_unit_test(test_table_full_of_live_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
