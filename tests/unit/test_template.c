/* Unit tests for template: captures, payload fields, defaults, escapes, errors with columns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "template.h"

static struct topic_pattern *pat;
static cJSON *payload;

static int setup(void **state)
{
    pat = topic_pattern_compile("vehicle/{id}/{kind}", NULL, 0, NULL);
    payload = cJSON_Parse("{\"simulation_mode\":\"fleet\",\"speed\":88.5,\"count\":3,"
                          "\"ok\":true,\"nothing\":null,\"engine_metrics\":{\"temperature\":112},"
                          "\"arr\":[1]}");
    return pat && payload ? 0 : -1;
}

static int teardown(void **state)
{
    topic_pattern_free(pat);
    cJSON_Delete(payload);
    return 0;
}

static struct tmpl *compile_ok(const char *src, unsigned flags)
{
    char err[160] = "";
    int col = 0;
    struct tmpl *t = tmpl_compile(src, pat, flags, err, sizeof(err), &col);
    if (!t)
        fail_msg("compile '%s': %d: %s", src, col, err);
    return t;
}

/* Renders against topic "vehicle/V7/telemetry" and the test payload. */
static void expect_render(const char *src, unsigned flags, const char *want)
{
    struct topic_match m;
    const char *topic = "vehicle/V7/telemetry";
    assert_true(topic_pattern_match(pat, topic, &m));
    struct tmpl_ctx ctx = { .topic = topic, .match = &m, .payload = payload };
    struct tmpl *t = compile_ok(src, flags);
    char out[128];
    int n = tmpl_render(t, &ctx, out, sizeof(out));
    if (!want) {
        assert_int_equal(n, -1);
    } else {
        assert_string_equal(out, want);
        assert_int_equal(n, (int)strlen(want));
    }
    tmpl_free(t);
}

static void expect_error(const char *src, unsigned flags, int want_col, const char *want_substr)
{
    char err[160] = "";
    int col = 0;
    struct tmpl *t = tmpl_compile(src, pat, flags, err, sizeof(err), &col);
    if (t)
        fail_msg("'%s' compiled but should not", src);
    assert_int_equal(col, want_col);
    if (!strstr(err, want_substr))
        fail_msg("'%s': error '%s' lacks '%s'", src, err, want_substr);
}

static void test_captures(void **state)
{
    expect_render("vehicle:{id}", 0, "vehicle:V7");
    expect_render("{kind}/{id}", 0, "telemetry/V7");
    expect_render("{topic}", 0, "vehicle/V7/telemetry");
}

static void test_fields(void **state)
{
    expect_render("{payload.simulation_mode|personal}", 0, "fleet");
    expect_render("{payload.missing|personal}", 0, "personal");
    expect_render("{payload.missing|}", 0, "");
    expect_render("{payload.missing}", 0, NULL);
    expect_render("{payload.nothing|n}", 0, "n");
    expect_render("{payload.engine_metrics|obj}", 0, "obj");
    expect_render("{payload.arr|arr}", 0, "arr");
    expect_render("v={payload.speed} n={payload.count} ok={payload.ok}", 0, "v=88.5 n=3 ok=true");
    expect_render("Engine {engine_metrics.temperature} C", TMPL_BARE_FIELDS, "Engine 112 C");
    expect_render("{speed}", TMPL_BARE_FIELDS, "88.5");
}

static void test_escapes_and_constant(void **state)
{
    expect_render("{{literal}} {id}", 0, "{literal} V7");
    struct tmpl *t = compile_ok("alerts", 0);
    assert_true(tmpl_is_constant(t));
    assert_false(tmpl_uses_payload(t));
    char out[16];
    assert_int_equal(tmpl_render(t, NULL, out, sizeof(out)), 6);
    assert_string_equal(out, "alerts");
    assert_string_equal(tmpl_source(t), "alerts");
    tmpl_free(t);
    t = compile_ok("{{x}}", 0);
    assert_true(tmpl_is_constant(t));
    tmpl_free(t);
    t = compile_ok("{payload.a|b}", 0);
    assert_false(tmpl_is_constant(t));
    assert_true(tmpl_uses_payload(t));
    tmpl_free(t);
    tmpl_free(NULL);
}

static void test_missing_context(void **state)
{
    struct tmpl *t = compile_ok("{id}", 0);
    char out[16];
    struct tmpl_ctx ctx = { 0 };
    assert_int_equal(tmpl_render(t, &ctx, out, sizeof(out)), -1);
    tmpl_free(t);
    t = compile_ok("{topic|none}", 0);
    assert_int_equal(tmpl_render(t, &ctx, out, sizeof(out)), 4);
    assert_string_equal(out, "none");
    tmpl_free(t);
}

static void test_overflow(void **state)
{
    struct tmpl *t = compile_ok("0123456789", 0);
    char out[5];
    assert_int_equal(tmpl_render(t, NULL, out, sizeof(out)), -2);
    assert_string_equal(out, "0123");
    tmpl_free(t);
    /* a cut never splits a UTF-8 sequence: "\xc3\xa9" is one character */
    t = compile_ok("\xc3\xa9\xc3\xa9\xc3\xa9", 0);
    char out2[6];
    assert_int_equal(tmpl_render(t, NULL, out2, sizeof(out2)), -2);
    assert_string_equal(out2, "\xc3\xa9\xc3\xa9");
    tmpl_free(t);
}

static void test_plain_fields(void **state)
{
    (void)state;
    struct topic_match m;
    const char *topic = "vehicle/V7/telemetry";
    assert_true(topic_pattern_match(pat, topic, &m));
    struct tmpl *t = compile_ok("{payload.mode|personal}", TMPL_PLAIN_FIELDS);
    static const struct { const char *payload, *want; } cases[] = {
        {"{\"mode\":\"fleet\"}", "fleet"},
        {"{\"mode\":\"fleet-2.b_c\"}", "fleet-2.b_c"},
        {"{\"mode\":7}", "7"},
        {"{\"mode\":\"vehicle:42\"}", "personal"},   /* would name another room */
        {"{\"mode\":\"alerts x\"}", "personal"},
        {"{\"mode\":\"\"}", "personal"},
        {"{\"mode\":true}", "personal"},
        {"{\"mode\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "personal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *p = cJSON_Parse(cases[i].payload);
        struct tmpl_ctx ctx = { .topic = topic, .match = &m, .payload = p };
        char out[128];
        assert_true(tmpl_render(t, &ctx, out, sizeof out) > 0);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("payload %s: got '%s', want '%s'", cases[i].payload, out, cases[i].want);
        cJSON_Delete(p);
    }
    tmpl_free(t);
    /* without a default, a value that is not plain makes the render fail */
    t = compile_ok("{payload.mode}", TMPL_PLAIN_FIELDS);
    cJSON *p = cJSON_Parse("{\"mode\":\"a/b\"}");
    struct tmpl_ctx ctx = { .topic = topic, .match = &m, .payload = p };
    char out[64];
    assert_int_equal(tmpl_render(t, &ctx, out, sizeof out), -1);
    cJSON_Delete(p);
    tmpl_free(t);
}

/* Fallback chains (issue 15, point 4): seed 000 routes on "mode" in its code and
 * "simulation_mode" in its text; {payload.simulation_mode|payload.mode|personal} takes both. */
static void test_fallback_chain(void **state)
{
    (void)state;
    struct topic_match m;
    const char *topic = "vehicle/V7/telemetry";
    assert_true(topic_pattern_match(pat, topic, &m));
    struct tmpl *t = compile_ok("pool:{payload.simulation_mode|payload.mode|personal}", TMPL_PLAIN_FIELDS);
    assert_true(tmpl_uses_payload(t));
    static const struct { const char *payload, *want; } cases[] = {
        {"{\"simulation_mode\":\"fleet\",\"mode\":\"x\"}", "pool:fleet"},   /* the first wins */
        {"{\"mode\":\"fleet\"}", "pool:fleet"},
        {"{\"simulation_mode\":null,\"mode\":\"fleet\"}", "pool:fleet"},
        {"{\"simulation_mode\":\"a/b\",\"mode\":\"fleet\"}", "pool:fleet"}, /* not plain: next */
        {"{\"simulation_mode\":{},\"mode\":[1]}", "pool:personal"},
        {"{}", "pool:personal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *p = cJSON_Parse(cases[i].payload);
        struct tmpl_ctx ctx = { .topic = topic, .match = &m, .payload = p };
        char out[128];
        assert_int_equal(tmpl_render(t, &ctx, out, sizeof out), (int)strlen(cases[i].want));
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("payload %s: got '%s', want '%s'", cases[i].payload, out, cases[i].want);
        cJSON_Delete(p);
    }
    tmpl_free(t);
    /* captures and topic in a chain; a chain ending in a field has no default */
    expect_render("{payload.missing|id}", 0, "id");          /* last and not payload.: a literal */
    expect_render("{payload.missing|id|x}", 0, "V7");
    expect_render("{payload.missing|payload.count}", 0, "3");
    expect_render("{payload.missing|payload.none}", 0, NULL);
    expect_render("{payload.missing|kind|payload.speed|d}:{id}", 0, "telemetry:V7");
    expect_render("{payload.missing|payload.nothing|}", 0, "");
    expect_render("{payload.arr|topic|x}", 0, "vehicle/V7/telemetry");
    /* errors: a middle part must be a name */
    expect_error("{payload.a|fleet|personal}", 0, 12, "template names {fleet} but the pattern has no capture fleet");
    expect_error("{payload.a||personal}", 0, 12, "empty");
    expect_error("{payload.a|b c|d}", TMPL_BARE_FIELDS, 13, "bad character");
}

static void test_errors(void **state)
{
    expect_error("room:{id", 0, 6, "unclosed");
    expect_error("room:{}", 0, 7, "empty");
    expect_error("room:{|x}", 0, 7, "empty");
    expect_error("x:{vehicle_id}", 0, 4, "template names {vehicle_id} but the pattern has no capture vehicle_id");
    expect_error("a}b", 0, 2, "unmatched");
    expect_error("{a b}", TMPL_BARE_FIELDS, 3, "bad character");
    expect_error("{a.}", TMPL_BARE_FIELDS, 3, "bad character");
    char err[64];
    int col = 0;
    assert_null(tmpl_compile("{id}", NULL, 0, err, sizeof(err), &col));
    assert_int_equal(col, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_escapes_and_constant),
        cmocka_unit_test(test_missing_context),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_plain_fields),
        cmocka_unit_test(test_fallback_chain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
