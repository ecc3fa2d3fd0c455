/* Unit tests for topic: pattern compile errors with columns, matching, captures, filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

static struct topic_pattern *compile_ok(const char *src)
{
    char err[128] = "";
    int col = 0;
    struct topic_pattern *p = topic_pattern_compile(src, err, sizeof(err), &col);
    if (!p)
        fail_msg("compile '%s': %d: %s", src, col, err);
    return p;
}

static void expect_error(const char *src, int want_col, const char *want_substr)
{
    char err[128] = "";
    int col = 0;
    struct topic_pattern *p = topic_pattern_compile(src, err, sizeof(err), &col);
    if (p)
        fail_msg("'%s' compiled but should not", src);
    assert_int_equal(col, want_col);
    if (!strstr(err, want_substr))
        fail_msg("'%s': error '%s' lacks '%s'", src, err, want_substr);
}

static void assert_slice(struct topic_slice s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_literal(void **state)
{
    struct topic_pattern *p = compile_ok("fleet/alpha");
    assert_true(topic_pattern_is_literal(p));
    assert_true(topic_pattern_match(p, "fleet/alpha", NULL));
    assert_false(topic_pattern_match(p, "fleet/alph", NULL));
    assert_false(topic_pattern_match(p, "fleet/alpha/x", NULL));
    assert_false(topic_pattern_match(p, "fleet", NULL));
    assert_string_equal(topic_pattern_filter(p), "fleet/alpha");
    assert_string_equal(topic_pattern_source(p), "fleet/alpha");
    topic_pattern_free(p);
}

static void test_capture(void **state)
{
    struct topic_pattern *p = compile_ok("vehicle/{id}/telemetry");
    struct topic_match m;
    assert_false(topic_pattern_is_literal(p));
    assert_int_equal(topic_pattern_ncaptures(p), 1);
    assert_string_equal(topic_pattern_capture_name(p, 0), "id");
    assert_null(topic_pattern_capture_name(p, 1));
    assert_int_equal(topic_pattern_capture_index(p, "id", 2), 0);
    assert_int_equal(topic_pattern_capture_index(p, "idx", 3), -1);
    assert_true(topic_pattern_match(p, "vehicle/V-17/telemetry", &m));
    assert_int_equal(m.n, 1);
    assert_slice(m.cap[0], "V-17");
    assert_true(topic_pattern_match(p, "vehicle//telemetry", &m));
    assert_slice(m.cap[0], "");
    assert_false(topic_pattern_match(p, "vehicle/1/setup", &m));
    assert_false(topic_pattern_match(p, "vehicle/1/2/telemetry", &m));
    assert_string_equal(topic_pattern_filter(p), "vehicle/+/telemetry");
    topic_pattern_free(p);
}

static void test_two_captures_and_plus(void **state)
{
    struct topic_pattern *p = compile_ok("{site}/+/{dev}");
    struct topic_match m;
    assert_true(topic_pattern_match(p, "s1/x/d9", &m));
    assert_int_equal(m.n, 2);
    assert_slice(m.cap[0], "s1");
    assert_slice(m.cap[1], "d9");
    assert_false(topic_pattern_match(p, "s1/x", &m));
    assert_false(topic_pattern_match(p, "$SYS/x/y", &m));
    assert_string_equal(topic_pattern_filter(p), "+/+/+");
    topic_pattern_free(p);
}

static void test_tail(void **state)
{
    struct topic_pattern *p = compile_ok("a/{x}/#");
    struct topic_match m;
    assert_true(topic_pattern_match(p, "a/1/b/c", &m));
    assert_slice(m.cap[0], "1");
    assert_slice(m.tail, "b/c");
    assert_true(topic_pattern_match(p, "a/1", &m));
    assert_int_equal(m.tail.len, 0);
    assert_false(topic_pattern_match(p, "a", &m));
    assert_string_equal(topic_pattern_filter(p), "a/+/#");
    topic_pattern_free(p);

    p = compile_ok("a/#");
    assert_true(topic_pattern_match(p, "a", NULL));
    assert_true(topic_pattern_match(p, "a/b", NULL));
    assert_false(topic_pattern_match(p, "b/a", NULL));
    topic_pattern_free(p);

    p = compile_ok("#");
    assert_true(topic_pattern_match(p, "anything/at/all", NULL));
    assert_false(topic_pattern_match(p, "$SYS/broker", NULL));
    topic_pattern_free(p);
}

static void test_path_patterns(void **state)
{
    struct topic_pattern *p = compile_ok("/ws/telemetry/{vehicle_id}");
    struct topic_match m;
    assert_true(topic_pattern_match(p, "/ws/telemetry/7", &m));
    assert_slice(m.cap[0], "7");
    assert_false(topic_pattern_match(p, "/ws/telemetry/7/x", &m));
    assert_false(topic_pattern_match(p, "/ws/telemetry", &m));
    assert_false(topic_pattern_match(p, "ws/telemetry/7", &m));
    topic_pattern_free(p);

    p = compile_ok("/ws");
    assert_true(topic_pattern_is_literal(p));
    assert_true(topic_pattern_match(p, "/ws", NULL));
    assert_false(topic_pattern_match(p, "/ws/", NULL));
    topic_pattern_free(p);
}

static void test_errors(void **state)
{
    expect_error("", 1, "empty");
    expect_error("a/{1d}", 4, "capture name");
    expect_error("a/{i-d}", 5, "capture name");
    expect_error("a/#/b", 3, "'#'");
    expect_error("a/v{id}", 4, "whole level");
    expect_error("a/{id}x", 3, "whole level");
    expect_error("a/{id", 3, "whole level");
    expect_error("a/{}", 3, "whole level");
    expect_error("{id}/{id}", 7, "duplicate");
    expect_error("a+/b", 2, "whole level");
    expect_error("a/b#", 4, "whole level");
    expect_error("{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", 33, "too many");
}

static void test_max_captures_ok(void **state)
{
    struct topic_pattern *p = compile_ok("{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}");
    struct topic_match m;
    assert_true(topic_pattern_match(p, "1/2/3/4/5/6/7/8", &m));
    assert_int_equal(m.n, 8);
    assert_slice(m.cap[7], "8");
    topic_pattern_free(p);
    topic_pattern_free(NULL);
}

static void test_name_valid(void **state)
{
    assert_true(topic_name_valid("vehicle/1/telemetry"));
    assert_true(topic_name_valid("/"));
    assert_false(topic_name_valid(""));
    assert_false(topic_name_valid(NULL));
    assert_false(topic_name_valid("vehicle/+/x"));
    assert_false(topic_name_valid("vehicle/#"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_two_captures_and_plus),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_path_patterns),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_max_captures_ok),
        cmocka_unit_test(test_name_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
