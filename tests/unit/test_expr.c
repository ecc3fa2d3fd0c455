/* Unit tests for expr: grammar, precedence, value types, run-time safety (missing fields,
 * type mismatches never fail) and compile errors with their exact 1-based columns.
 * Single-threaded cmocka executable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expr.h"

static const char *payload_src =
    "{\"engine_metrics\":{\"temperature\":115.5,\"rpm\":3000,\"ok\":true},"
    "\"speed\":0,\"neg\":-3,\"name\":\"car-7\",\"empty\":\"\",\"mode\":\"fleet\","
    "\"parked\":false,\"nothing\":null,\"list\":[1,2],\"obj\":{},\"big\":1e300}";

static cJSON *payload;

static int setup(void **state)
{
    (void)state;
    payload = cJSON_Parse(payload_src);
    return payload ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(payload);
    return 0;
}

/* Compiles 'src' (must succeed) and evaluates it against the shared payload. */
static bool eval_src(const char *src)
{
    char err[256];
    int col = -1;
    struct expr *e = expr_compile(src, err, sizeof(err), &col);
    if (!e)
        fail_msg("'%s' did not compile: col %d: %s", src, col, err);
    assert_string_equal(expr_source(e), src);
    bool r = expr_eval(e, payload);
    expr_free(e);
    return r;
}

#define TRUE_(s) do { if (!eval_src(s)) fail_msg("expected true: %s", s); } while (0)
#define FALSE_(s) do { if (eval_src(s)) fail_msg("expected false: %s", s); } while (0)

/* Compiles 'src', expecting failure at column 'col' with 'needle' in the message. */
static void expect_error(const char *src, int col, const char *needle)
{
    char err[256] = "unchanged";
    int got = -1;
    struct expr *e = expr_compile(src, err, sizeof(err), &got);
    if (e) {
        expr_free(e);
        fail_msg("'%s' compiled but should not", src);
    }
    if (got != col)
        fail_msg("'%s': error at column %d, expected %d (%s)", src, got, col, err);
    if (needle && !strstr(err, needle))
        fail_msg("'%s': message '%s' lacks '%s'", src, err, needle);
}

static void test_numbers(void **state)
{
    (void)state;
    TRUE_("engine_metrics.temperature > 110");
    FALSE_("engine_metrics.temperature > 115.5");
    TRUE_("engine_metrics.temperature >= 115.5");
    TRUE_("engine_metrics.temperature <= 115.5");
    FALSE_("engine_metrics.temperature < 115.5");
    TRUE_("engine_metrics.temperature == 115.5");
    TRUE_("engine_metrics.temperature != 115");
    TRUE_("engine_metrics.rpm == 3e3");
    TRUE_("engine_metrics.rpm == 3E+3");
    TRUE_("engine_metrics.rpm == 30000e-1");
    TRUE_("neg == -3");
    TRUE_("neg < -2.5");
    TRUE_("neg > -3.5e0");
    TRUE_("speed == 0");
    TRUE_("speed == 0.0");
    TRUE_("speed < .5");
    TRUE_("neg < -.5");
    TRUE_("big > 1e299");
    TRUE_("1 < 2");
    TRUE_("-1 < 0");
    TRUE_("3 == 3.0");
}

static void test_strings(void **state)
{
    (void)state;
    TRUE_("name == 'car-7'");
    TRUE_("name == \"car-7\"");
    FALSE_("name == 'car-8'");
    TRUE_("name != 'car-8'");
    FALSE_("name != 'car-7'");
    TRUE_("name < 'car-8'");
    TRUE_("name > 'car-'");
    TRUE_("name >= 'car-7'");
    TRUE_("mode == 'fleet'");
    TRUE_("'a' < 'b'");
    TRUE_("'say \\'hi\\'' == \"say 'hi'\"");
    TRUE_("\"a\\\"b\" == 'a\"b'");
    TRUE_("empty == ''");
    TRUE_("'ab' > 'a'");
    TRUE_("'a b' == 'a b'");
}

static void test_bools_and_null(void **state)
{
    (void)state;
    TRUE_("engine_metrics.ok == true");
    TRUE_("engine_metrics.ok != false");
    TRUE_("parked == false");
    FALSE_("parked == true");
    FALSE_("parked < true");            /* bools only support == and != */
    TRUE_("nothing == null");
    FALSE_("nothing != null");
    FALSE_("speed == null");            /* number vs null: mismatch */
    TRUE_("true");
    FALSE_("false");
    FALSE_("null");
    TRUE_("true == true");
    TRUE_("(1 < 2) == true");
    TRUE_("(1 > 2) != true");
}

static void test_truthiness(void **state)
{
    (void)state;
    TRUE_("engine_metrics.ok");
    FALSE_("parked");
    TRUE_("engine_metrics.rpm");
    FALSE_("speed");
    TRUE_("name");
    FALSE_("empty");
    FALSE_("nothing");
    FALSE_("obj");
    FALSE_("list");
    FALSE_("missing");
    TRUE_("not missing");
    TRUE_("1");
    FALSE_("0");
    TRUE_("'x'");
    FALSE_("''");
}

static void test_precedence(void **state)
{
    (void)state;
    /* not > and > or */
    TRUE_("true or false and false");           /* true or (false and false) */
    FALSE_("(true or false) and false");
    TRUE_("not false and true");                /* (not false) and true */
    FALSE_("not (false or true)");
    TRUE_("not false or false");
    FALSE_("not true and true");
    TRUE_("false and false or true");
    TRUE_("!parked && engine_metrics.ok");
    TRUE_("parked || speed == 0");
    TRUE_("not not true");
    FALSE_("! ! ! true");
    TRUE_("not speed > 5");                     /* not binds the comparison */
    TRUE_("((((speed == 0))))");
    TRUE_("(speed == 0 and (name == 'car-7' or false)) and not (neg > 0)");
    TRUE_("payload.engine_metrics.temperature > 110 and engine_metrics.temperature > 110");
    TRUE_("speed==0&&neg<0||false");
    TRUE_("a or b or c or d or speed == 0");
    FALSE_("speed == 0 and neg < 0 and parked");
}

static void test_missing_and_mismatch(void **state)
{
    (void)state;
    FALSE_("missing > 1");
    FALSE_("missing < 1");
    FALSE_("missing == 1");
    FALSE_("missing != 1");                     /* "!=" is false too on a missing field */
    FALSE_("missing == null");
    FALSE_("engine_metrics.missing > 0");
    FALSE_("engine_metrics.temperature.deeper > 0");
    FALSE_("name > 5");                         /* string vs number */
    FALSE_("name != 5");
    FALSE_("speed == '0'");
    FALSE_("engine_metrics.ok == 1");
    FALSE_("obj == obj");
    FALSE_("list == list");
    FALSE_("engine_metrics > 1");
    TRUE_("missing > 1 or speed == 0");

    /* a NULL payload (non-JSON message) is simply "every field missing" */
    struct expr *e = expr_compile("missing != 1", NULL, 0, NULL);
    assert_non_null(e);
    assert_false(expr_eval(e, NULL));
    expr_free(e);
    e = expr_compile("not missing", NULL, 0, NULL);
    assert_true(expr_eval(e, NULL));
    expr_free(e);
    assert_false(expr_eval(NULL, payload));

    /* a payload that is not an object */
    cJSON *arr = cJSON_Parse("[1,2,3]");
    e = expr_compile("x > 0", NULL, 0, NULL);
    assert_false(expr_eval(e, arr));
    expr_free(e);
    cJSON_Delete(arr);
}

static void test_first_field(void **state)
{
    (void)state;
    struct expr *e = expr_compile("1 < 2 and (payload.a.b > 3 or c)", NULL, 0, NULL);
    assert_non_null(e);
    assert_string_equal(expr_first_field(e), "payload.a.b");
    expr_free(e);
    e = expr_compile("true", NULL, 0, NULL);
    assert_null(expr_first_field(e));
    expr_free(e);
    assert_null(expr_first_field(NULL));
    expr_free(NULL);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("", 1, "empty expression");
    expect_error("   ", 4, "empty expression");
    expect_error("a >", 4, "unexpected end");
    expect_error("a > > 1", 5, "unexpected '>'");
    expect_error("and", 1, "unexpected 'and'");
    expect_error("a and", 6, "unexpected end");
    expect_error("name == 'abc", 9, "unterminated string");
    expect_error("name == \"abc'", 9, "unterminated string");
    expect_error("(a > 1", 7, "missing ')'");
    expect_error("(a > 1", 7, "column 1");
    expect_error("((a > 1) or b", 14, "missing ')'");
    expect_error("(a > 1 b", 8, "missing ')'");
    expect_error("a > 1)", 6, "unexpected ')'");
    expect_error("a > 1 b", 7, "unexpected 'b'");
    expect_error("a b", 3, "unexpected 'b'");
    expect_error("1 < a < 3", 7, "chained");
    expect_error("a == b != c", 8, "chained");
    expect_error("a = 1", 3, "'=='");
    expect_error("a > 1 & b", 7, "'&&'");
    expect_error("a > 1 | b", 7, "'||'");
    expect_error("a > 1 # c", 7, "unexpected character '#'");
    expect_error("a. > 1", 3, "field name expected");
    expect_error("a > 1.2.3", 5, "malformed number");
    expect_error("a > 12abc", 5, "malformed number");
    expect_error("a > 1e", 5, "exponent");
    expect_error("a > -", 5, "unexpected character '-'");
    expect_error("()", 2, "unexpected ')'");
    expect_error("not", 4, "unexpected end");
    expect_error("a > 1e999", 5, "out of range");

    /* NULL err / err_col are allowed */
    assert_null(expr_compile("(", NULL, 0, NULL));
}

static void test_depth_limit(void **state)
{
    (void)state;
    char src[512];
    /* 64 levels are fine ... */
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        src[n++] = '(';
    src[n++] = '1';
    for (int i = 0; i < 64; i++)
        src[n++] = ')';
    src[n] = '\0';
    TRUE_(src);
    /* ... the 65th is reported where it opens */
    n = 0;
    for (int i = 0; i < 65; i++)
        src[n++] = '(';
    src[n++] = '1';
    for (int i = 0; i < 65; i++)
        src[n++] = ')';
    src[n] = '\0';
    expect_error(src, 65, "nested too deeply");
    n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(src + n, sizeof(src) - n, "not ");
    snprintf(src + n, sizeof(src) - n, "true");
    expect_error(src, 65 * 4 - 3, "nested too deeply");

    /* a long flat chain is not nesting */
    size_t cap = 200000;
    char *big = malloc(cap);
    assert_non_null(big);
    n = 0;
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(big + n, cap - n, "x%d or ", i);
    snprintf(big + n, cap - n, "speed == 0");
    struct expr *e = expr_compile(big, NULL, 0, NULL);
    assert_non_null(e);
    assert_true(expr_eval(e, payload));
    expr_free(e);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_bools_and_null),
        cmocka_unit_test(test_truthiness),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_missing_and_mismatch),
        cmocka_unit_test(test_first_field),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
