/* Unit tests of the pure parts of the client protocol: room globs (subscribe.c), room
 * name and field path validation, shape keys and projection (shape.c), session ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"
#include "shape.h"
#include "subscribe.h"

static void test_glob(void **state)
{
    (void)state;
    assert_true(subscribe_glob_match("vehicle:*", "vehicle:42"));
    assert_true(subscribe_glob_match("vehicle:*", "vehicle:"));
    assert_false(subscribe_glob_match("vehicle:*", "vehicles:1"));
    assert_true(subscribe_glob_match("*", ""));
    assert_true(subscribe_glob_match("a*b*c", "axxbyyc"));
    assert_false(subscribe_glob_match("a*b*c", "axxbyy"));
    assert_true(subscribe_glob_match("fleet", "fleet"));
    assert_false(subscribe_glob_match("fleet", "fleet2"));
    /* an allow glob matching a pattern's text covers the pattern */
    assert_true(subscribe_glob_match("vehicle:*", "vehicle:1*"));
    assert_false(subscribe_glob_match("vehicle:*", "*"));
}

/* The reference: the definition of '*' (any run, also none), tried exhaustively. */
static bool glob_ref(const char *g, const char *s)
{
    if (!*g)
        return !*s;
    if (*g == '*')
        return glob_ref(g + 1, s) || (*s && glob_ref(g, s + 1));
    return *s == *g && glob_ref(g + 1, s + 1);
}

/* Issue 14, point 6: the matcher agrees with the definition on every small pattern and
 * name over {a, b, *} (the overlapping cases greedy matchers get wrong), and the
 * adversarial worst cases finish at once (linear, no backtracking). */
static void test_glob_exhaustive_and_worst_case(void **state)
{
    (void)state;
    const char alpha[] = "ab*";
    char g[8], s[8];
    for (unsigned gi = 0; gi < 3 * 3 * 3 * 3 * 3 * 3; gi++) {
        for (unsigned glen = 0; glen <= 6; glen++) {
            unsigned v = gi;
            for (unsigned k = 0; k < glen; k++, v /= 3)
                g[k] = alpha[v % 3];
            g[glen] = '\0';
            for (unsigned si = 0; si < 64; si++) {
                for (unsigned slen = 0; slen <= 6; slen++) {
                    for (unsigned k = 0; k < slen; k++)
                        s[k] = (si >> k) & 1 ? 'b' : 'a';
                    s[slen] = '\0';
                    if (subscribe_glob_match(g, s) != glob_ref(g, s))
                        fail_msg("glob '%s' on '%s': %d", g, s, subscribe_glob_match(g, s));
                }
            }
        }
    }
    assert_true(subscribe_glob_match("a*aab", "aaab"));
    assert_true(subscribe_glob_match("*ab*ab", "abab"));
    assert_false(subscribe_glob_match("ab*ba", "aba"));
    /* backtracking bait: 8 stars and a tail that never matches, on a 200-byte name */
    char name[SUB_ROOM_NAME_MAX + 1];
    memset(name, 'a', SUB_ROOM_NAME_MAX);
    name[SUB_ROOM_NAME_MAX] = '\0';
    const char *bait = "*a*a*a*a*a*a*a*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
    for (int i = 0; i < 200000; i++)   /* ~ms when linear; minutes if it backtracked */
        assert_false(subscribe_glob_match(bait, name));
    assert_true(subscribe_pattern_valid("*a*a*a*a*a*a*a*"));
    assert_false(subscribe_pattern_valid("*a*a*a*a*a*a*a*a*"));
    assert_true(subscribe_pattern_valid("vehicle:*"));
}

static void test_names(void **state)
{
    (void)state;
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_true(subscribe_room_name_valid("vehicle:1"));
    assert_false(subscribe_room_name_valid(""));
    assert_false(subscribe_room_name_valid("a\nb"));
    assert_false(subscribe_room_name_valid(long_name));
    assert_true(shape_field_valid("engine_metrics.temperature"));
    assert_false(shape_field_valid("a..b"));
    assert_false(shape_field_valid(".a"));
    assert_false(shape_field_valid("a."));
    assert_false(shape_field_valid("a b"));
    assert_true(session_id_valid("0f8e7d6c-0000-4000-8000-000000000000"));
    assert_false(session_id_valid("a/b"));
    assert_false(session_id_valid(""));
    char u[37];
    session_uuid4(u);
    assert_int_equal(strlen(u), 36);
    assert_int_equal(u[14], '4');
}

static void test_shape_key_and_rate(void **state)
{
    (void)state;
    const char *f1[] = {"speed", "a.b", "speed"};
    const char *f2[] = {"a.b", "speed"};
    struct sub_shape *s1 = shape_new(2, f1, 3), *s2 = shape_new(0, f2, 2);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_string_equal(s1->key, "a.b,speed");
    assert_string_equal(s1->key, s2->key);
    assert_int_equal(s1->interval_ms, 500);
    assert_int_equal(s2->interval_ms, 0);
    shape_unref(s1);
    shape_unref(s2);
    shape_unref(NULL);
}

static struct tb_msg *text_msg(const char *s) { return msg_new(s, strlen(s)); }

static void test_projection(void **state)
{
    (void)state;
    const char *f[] = {"speed", "engine.temp", "engine", "missing.x"};
    struct sub_shape *sh = shape_new(0, f, 2);
    struct tb_msg *m = text_msg("{\"type\":\"t\",\"room\":\"r\",\"seq\":3,\"data\":"
                                "{\"speed\":5,\"engine\":{\"temp\":90,\"rpm\":1},\"x\":1}}");
    struct tb_msg *p = shape_project(sh, m);
    assert_non_null(p);
    assert_string_equal((char *)msg_payload(p),
                        "{\"type\":\"t\",\"room\":\"r\",\"seq\":3,\"data\":{\"engine\":{\"temp\":90},\"speed\":5}}");
    /* the same shape shares one projection per message */
    struct shape_cache sc;
    shape_cache_init(&sc, m);
    struct tb_msg *a = shape_cache_get(&sc, sh), *b = shape_cache_get(&sc, sh);
    assert_ptr_equal(a, b);
    msg_unref(a);
    msg_unref(b);
    shape_cache_clear(&sc);
    /* a whole object and one of its paths: the whole object */
    struct sub_shape *whole = shape_new(0, f + 1, 3);
    struct tb_msg *w = shape_project(whole, m);
    assert_non_null(strstr((char *)msg_payload(w), "\"engine\":{\"temp\":90,\"rpm\":1}"));
    /* data that is not an object is sent as it is */
    struct tb_msg *s = text_msg("{\"type\":\"t\",\"data\":\"text\"}");
    struct tb_msg *ps = shape_project(sh, s);
    assert_ptr_equal(ps, s);
    msg_unref(ps);
    msg_unref(s);
    msg_unref(w);
    msg_unref(p);
    msg_unref(m);
    shape_unref(whole);
    shape_unref(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_glob_exhaustive_and_worst_case),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_shape_key_and_rate),
        cmocka_unit_test(test_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
