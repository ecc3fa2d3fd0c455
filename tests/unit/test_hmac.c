/* Unit tests for hmac (issue 14.10: signed alert states): RFC 4231 test vectors through
 * OpenSSL, the constant-time check, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hmac.h"

static void test_rfc4231_case2(void **state)
{
    (void)state;
    static const char data[] = "what do ya want for nothing?";
    static const char want[] = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    char hex[HMAC_HEX_LEN + 1];
    assert_int_equal(hmac_sha256_hex("Jefe", data, strlen(data), hex), 0);
    assert_string_equal(hex, want);
    assert_true(hmac_sha256_check("Jefe", data, strlen(data), want));
}

static void test_check_refuses(void **state)
{
    (void)state;
    static const char data[] = "{\"rule\":\"r\",\"key\":\"k\"}";
    char hex[HMAC_HEX_LEN + 1];
    assert_int_equal(hmac_sha256_hex("0123456789abcdef", data, strlen(data), hex), 0);
    assert_true(hmac_sha256_check("0123456789abcdef", data, strlen(data), hex));
    assert_false(hmac_sha256_check("0123456789abcdeg", data, strlen(data), hex));   /* other key */
    assert_false(hmac_sha256_check("0123456789abcdef", data, strlen(data) - 1, hex)); /* other data */
    hex[10] = hex[10] == '0' ? '1' : '0';
    assert_false(hmac_sha256_check("0123456789abcdef", data, strlen(data), hex));
    assert_false(hmac_sha256_check("0123456789abcdef", data, strlen(data), "abc"));
    assert_false(hmac_sha256_check("0123456789abcdef", data, strlen(data), NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4231_case2),
        cmocka_unit_test(test_check_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
