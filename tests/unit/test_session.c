/* Unit tests for the registry of issued session ids (session.c): what a member learns from
 * the cluster's retained entries (telebridge/sessions/<id>), forgetting a cleared entry,
 * sessions.ttl counted from the issue time, max_sessions pushing the oldest out, and
 * hostile entries (bad ids, bad payloads, issue times in the future). No MQTT client: the
 * retained clears the owner publishes are checked by the cluster integration test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "session.h"

static struct cfg_sessions sessions_cfg(size_t max, uint64_t ttl_ms)
{
    struct cfg_sessions cs = {0};
    cs.enabled = true;
    cs.max_sessions = max;
    cs.ttl_ms = ttl_ms;
    return cs;
}

/* A retained registry entry as a member announces it. */
static bool learn(struct session_registry *r, const struct cfg_sessions *cs, const char *sid, uint64_t issued)
{
    char topic[128], payload[256];
    snprintf(topic, sizeof topic, "telebridge/sessions/%s", sid);
    int n = snprintf(payload, sizeof payload, "{\"session_id\":\"%s\",\"instance\":\"b1\",\"issued_at\":%llu}",
                     sid, (unsigned long long)issued);
    return session_on_issued(r, cs, NULL, topic, payload, (size_t)n);
}

static void test_learns_and_forgets_cleared(void **state)
{
    (void)state;
    struct cfg_sessions cs = sessions_cfg(100, 0);
    struct session_registry *r = session_registry_new();
    uint64_t now = tb_wall_ms();
    assert_true(learn(r, &cs, "s-1", now));
    assert_true(learn(r, &cs, "s-2", now));
    assert_true(learn(r, &cs, "s-2", now));   /* twice: remembered once */
    assert_true(session_issued(r, "s-1"));
    assert_true(session_issued(r, "s-2"));
    assert_int_equal(session_count(r), 2);
    /* the owner cleared the entry: an empty retained message */
    assert_true(session_on_issued(r, &cs, NULL, "telebridge/sessions/s-1", "", 0));
    assert_false(session_issued(r, "s-1"));
    assert_true(session_issued(r, "s-2"));
    assert_int_equal(session_count(r), 1);
    /* forgetting an unknown id changes nothing */
    assert_true(session_on_issued(r, &cs, NULL, "telebridge/sessions/nope", "", 0));
    assert_int_equal(session_count(r), 1);
    /* not a registry topic */
    assert_false(session_on_issued(r, &cs, NULL, "telebridge/other/s-3", "{}", 2));
    assert_false(session_issued(r, ""));
    session_registry_free(r);
}

static void test_ttl_counts_from_issue(void **state)
{
    (void)state;
    struct cfg_sessions cs = sessions_cfg(100, 60000);
    struct session_registry *r = session_registry_new();
    uint64_t now = tb_wall_ms();
    /* already past the TTL when heard of (a member that restarts late): not remembered */
    assert_true(learn(r, &cs, "old", now - 61000));
    assert_false(session_issued(r, "old"));
    assert_true(learn(r, &cs, "young", now - 30000));
    assert_true(learn(r, &cs, "new", now));
    assert_int_equal(session_count(r), 2);
    session_tick(r, &cs, NULL, now + 29000);
    assert_true(session_issued(r, "young"));
    session_tick(r, &cs, NULL, now + 31000);   /* young is 61 s old now */
    assert_false(session_issued(r, "young"));
    assert_true(session_issued(r, "new"));
    assert_int_equal(session_count(r), 1);
    session_tick(r, &cs, NULL, now + 30500);   /* within the sweep interval: nothing */
    session_tick(r, &cs, NULL, now + 61000);
    assert_false(session_issued(r, "new"));
    assert_int_equal(session_count(r), 0);
    /* the ring is reusable after everything expired */
    assert_true(learn(r, &cs, "again", tb_wall_ms()));
    assert_true(session_issued(r, "again"));
    session_registry_free(r);
}

static void test_ttl_zero_keeps(void **state)
{
    (void)state;
    struct cfg_sessions cs = sessions_cfg(100, 0);
    struct session_registry *r = session_registry_new();
    uint64_t now = tb_wall_ms();
    assert_true(learn(r, &cs, "year-old", now - 365ull * 86400000ull));
    session_tick(r, &cs, NULL, now + 86400000ull);
    assert_true(session_issued(r, "year-old"));
    session_registry_free(r);
}

static void test_max_sessions_pushes_oldest_out(void **state)
{
    (void)state;
    struct cfg_sessions cs = sessions_cfg(3, 0);
    struct session_registry *r = session_registry_new();
    uint64_t now = tb_wall_ms();
    assert_true(learn(r, &cs, "a", now));
    assert_true(learn(r, &cs, "b", now));
    assert_true(learn(r, &cs, "c", now));
    assert_true(learn(r, &cs, "d", now));
    assert_false(session_issued(r, "a"));
    assert_true(session_issued(r, "b") && session_issued(r, "c") && session_issued(r, "d"));
    /* a cleared slot in the middle: the next id takes it, no live id is pushed out */
    assert_true(session_on_issued(r, &cs, NULL, "telebridge/sessions/c", "", 0));
    assert_true(learn(r, &cs, "e", now));
    assert_int_equal(session_count(r), 3);
    assert_true(session_issued(r, "b") && session_issued(r, "d") && session_issued(r, "e"));
    assert_false(session_issued(r, "c"));
    /* full again without gaps: the oldest (b) goes */
    assert_true(learn(r, &cs, "f", now));
    assert_false(session_issued(r, "b"));
    assert_true(session_issued(r, "d") && session_issued(r, "e") && session_issued(r, "f"));
    session_registry_free(r);
}

static void test_hostile_entries(void **state)
{
    (void)state;
    struct cfg_sessions cs = sessions_cfg(100, 60000);
    struct session_registry *r = session_registry_new();
    uint64_t now = tb_wall_ms();
    /* ids that are not session ids */
    assert_true(learn(r, &cs, "a b", now));
    assert_true(learn(r, &cs, "x/y", now));
    char long_id[80];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_true(learn(r, &cs, long_id, now));
    assert_int_equal(session_count(r), 0);
    /* payloads that are not JSON, or without a usable issue time: counted from now */
    const char *bad[] = {"not json", "{\"issued_at\":\"yesterday\"}", "{\"issued_at\":-5}", "[1,2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char topic[64];
        snprintf(topic, sizeof topic, "telebridge/sessions/bad%zu", i);
        assert_true(session_on_issued(r, &cs, NULL, topic, bad[i], strlen(bad[i])));
    }
    assert_int_equal(session_count(r), 4);
    session_tick(r, &cs, NULL, now + 30000);
    assert_int_equal(session_count(r), 4);
    /* an issue time in the future cannot make an id live forever: counted from now */
    assert_true(learn(r, &cs, "future", now + 1000ull * 86400000ull));
    assert_true(session_issued(r, "future"));
    session_tick(r, &cs, NULL, now + 120000);
    assert_false(session_issued(r, "future"));
    assert_int_equal(session_count(r), 0);
    session_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_forgets_cleared),
        cmocka_unit_test(test_ttl_counts_from_issue),
        cmocka_unit_test(test_ttl_zero_keeps),
        cmocka_unit_test(test_max_sessions_pushes_oldest_out),
        cmocka_unit_test(test_hostile_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
