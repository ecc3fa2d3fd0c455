/* Unit tests for json_util: strict JSON recognition, path lookup, number formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json_util.h"

static bool strict(const char *s) { return json_strict_valid(s, strlen(s)); }

static void test_strict_accepts_standard_json(void **state)
{
    (void)state;
    const char *ok[] = {
        "{}", "[]", " {\"a\" : [1, -2.5e+3, 0, 0.25, true, false, null, \"x\\n\\u00e9\"]} ",
        "\"just a string\"", "42", "-0", "{\"nested\":{\"a\":{\"b\":[[],{}]}}}",
        "{\"utf8\":\"\xc3\xa9\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strict(ok[i]))
            fail_msg("rejected valid JSON: %s", ok[i]);
}

static void test_strict_rejects_what_cjson_lets_through(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"speed\":007}", "{\"odo\":1.}", "{\"a\":\"tab\there\"}", "{\"a\":.5}", "{\"a\":1e}",
        "{\"a\":+1}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":1,}", "[1 2]", "{\"a\" 1}",
        "{'a':1}", "{\"a\":tru}", "", "   ", "{} {}", "{\"a\":1", "[", "\"unterminated",
        "{\"a\":NaN}", "{a:1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strict(bad[i]))
            fail_msg("accepted invalid JSON: %s", bad[i]);
    /* a NUL inside a string is a control byte too */
    assert_false(json_strict_valid("{\"a\":\"x\0y\"}", 11));
}

static void test_strict_depth_limit(void **state)
{
    (void)state;
    char deep[2 * 600 + 1];
    for (int i = 0; i < 600; i++) {
        deep[i] = '[';
        deep[600 + i] = ']';
    }
    deep[1200] = '\0';
    assert_false(strict(deep));
    assert_true(json_strict_valid(deep + 100, 1000)); /* 500 levels */
}

static void test_path_and_numbers(void **state)
{
    (void)state;
    cJSON *root = cJSON_Parse("{\"engine\":{\"temp\":101.5},\"id\":\"7\"}");
    const cJSON *v = json_path_get(root, "payload.engine.temp", strlen("payload.engine.temp"));
    assert_non_null(v);
    assert_true(v->valuedouble == 101.5);
    assert_null(json_path_get(root, "engine.rpm", strlen("engine.rpm")));
    assert_null(json_path_get(root, "id.x", 4));
    cJSON_Delete(root);
    char buf[32];
    json_format_number(42.0, buf, sizeof buf);
    assert_string_equal(buf, "42");
    json_format_number(0.1, buf, sizeof buf);
    assert_string_equal(buf, "0.1");
}

/* issue 14.11: a \u0000 escape is found; an escaped backslash before "u0000" is not one */
static void test_nul_escape(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool nul;
    } cases[] = {
        { "{\"a\":\"x\\u0000y\"}", true },
        { "[\"\\u0000\"]", true },
        { "{\"\\u0000\":1}", true },
        { "{\"a\":\"x\\\\u0000\"}", false },       /* \\ then u0000: text */
        { "{\"a\":\"x\\\\\\u0000\"}", true },     /* \\ then \u0000 */
        { "{\"a\":\"\\u00001\"}", true },
        { "{\"a\":\"\\u0001\"}", false },
        { "{\"a\":\"\\u000\"}", false },
        { "\"\\", false },
        { "", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (json_has_nul_escape(cases[i].text, strlen(cases[i].text)) != cases[i].nul)
            fail_msg("case %zu: %s", i, cases[i].text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_accepts_standard_json),
        cmocka_unit_test(test_strict_rejects_what_cjson_lets_through),
        cmocka_unit_test(test_strict_depth_limit),
        cmocka_unit_test(test_path_and_numbers),
        cmocka_unit_test(test_nul_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
