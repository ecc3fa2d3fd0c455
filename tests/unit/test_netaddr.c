/* netaddr: addresses and CIDRs, and the client address behind trusted proxies with
 * hostile X-Forwarded-For headers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "netaddr.h"

static void parses_addresses_and_ranges(void **state)
{
    (void)state;
    struct netaddr_cidr c;
    assert_int_equal(netaddr_parse_cidr("10.0.0.0/8", &c), 0);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(netaddr_parse_cidr("192.168.1.7", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(netaddr_parse_cidr("::1", &c), 0);
    assert_int_equal(c.prefix, 128);
    assert_int_equal(netaddr_parse_cidr("fd00::/8", &c), 0);
    assert_int_equal(netaddr_parse_cidr("::ffff:10.1.2.3", &c), 0);
    assert_int_equal(c.prefix, 32);     /* v4-mapped is IPv4 */
    const char *bad[] = {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "::/129", "localhost",
                         "10.0.0", "1.2.3.4 ", "1.2.3.4/8/8", "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(netaddr_parse_cidr(bad[i], &c), -1);
}

static void matches_lists(void **state)
{
    (void)state;
    char *list[] = {"10.0.0.0/8", "::1", "junk", "192.168.1.0/25"};
    assert_true(netaddr_in_list("10.200.3.4", list, 4));
    assert_true(netaddr_in_list("::ffff:10.1.1.1", list, 4));
    assert_true(netaddr_in_list("::1", list, 4));
    assert_true(netaddr_in_list("192.168.1.127", list, 4));
    assert_false(netaddr_in_list("192.168.1.128", list, 4));
    assert_false(netaddr_in_list("11.0.0.1", list, 4));
    assert_false(netaddr_in_list("junk", list, 4));
    assert_false(netaddr_in_list(NULL, list, 4));
}

static void client_behind_proxies(void **state)
{
    (void)state;
    char *trusted[] = {"127.0.0.1", "10.0.0.0/8"};
    char out[64];
    /* untrusted peer: its header is ignored */
    assert_string_equal(netaddr_client("198.51.100.7", "203.0.113.9", trusted, 2, out, sizeof out), "198.51.100.7");
    /* trusted peer: the rightmost untrusted hop */
    assert_string_equal(netaddr_client("127.0.0.1", "203.0.113.9", trusted, 2, out, sizeof out), "203.0.113.9");
    assert_string_equal(netaddr_client("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.5", trusted, 2, out, sizeof out),
                        "203.0.113.9");
    /* a client that names itself "10.0.0.1" before an untrusted hop gains nothing */
    assert_string_equal(netaddr_client("127.0.0.1", "10.0.0.1, 203.0.113.9", trusted, 2, out, sizeof out),
                        "203.0.113.9");
    /* everything trusted: the leftmost */
    assert_string_equal(netaddr_client("127.0.0.1", "10.0.0.9,10.0.0.5", trusted, 2, out, sizeof out), "10.0.0.9");
    /* garbage ends the walk at the last trusted hop: never logged */
    assert_string_equal(netaddr_client("127.0.0.1", "evil\nINFO fake", trusted, 2, out, sizeof out), "127.0.0.1");
    assert_string_equal(netaddr_client("127.0.0.1", "203.0.113.9, ", trusted, 2, out, sizeof out), "127.0.0.1");
    assert_string_equal(netaddr_client("127.0.0.1", "", trusted, 2, out, sizeof out), "127.0.0.1");
    assert_string_equal(netaddr_client("127.0.0.1", ",,,", trusted, 2, out, sizeof out), "127.0.0.1");
    /* no trusted proxies configured */
    assert_string_equal(netaddr_client("127.0.0.1", "203.0.113.9", NULL, 0, out, sizeof out), "127.0.0.1");
    assert_string_equal(netaddr_client(NULL, NULL, NULL, 0, out, sizeof out), "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_addresses_and_ranges),
        cmocka_unit_test(matches_lists),
        cmocka_unit_test(client_behind_proxies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
