/* Unit tests for cluster (issue 16): the live set from statuses and cluster names, the
 * refusals (self, strangers, other clusters, too many ids), and rendezvous ownership:
 * one owner per key everywhere, balance, and that a leaving member moves only its keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

static void join(struct cluster *cl, const char *id)
{
    cluster_on_status(cl, id, true);
    cluster_on_name(cl, id, cluster_name(cl));
}

static void test_topics(void **state)
{
    (void)state;
    char id[CLUSTER_ID_MAX + 1];
    assert_int_equal(cluster_parse_topic("telebridge/b-1/status", id, sizeof id), CLUSTER_TOPIC_STATUS);
    assert_string_equal(id, "b-1");
    assert_int_equal(cluster_parse_topic("telebridge/b-2/cluster", id, sizeof id), CLUSTER_TOPIC_NAME);
    assert_string_equal(id, "b-2");
    assert_int_equal(cluster_parse_topic("telebridge//status", id, sizeof id), CLUSTER_TOPIC_NONE);
    assert_int_equal(cluster_parse_topic("telebridge/b/x/status", id, sizeof id), CLUSTER_TOPIC_NONE);
    assert_int_equal(cluster_parse_topic("vehicle/b/status", id, sizeof id), CLUSTER_TOPIC_NONE);
    assert_int_equal(cluster_parse_topic("telebridge/ack/x", id, sizeof id), CLUSTER_TOPIC_NONE);
    char longid[200];
    memset(longid, 'a', sizeof longid);
    memcpy(longid, "telebridge/", 11);
    snprintf(longid + 150, 50, "/status");
    assert_int_equal(cluster_parse_topic(longid, id, sizeof id), CLUSTER_TOPIC_NONE);
}

static void test_live_set(void **state)
{
    (void)state;
    struct cluster *cl = cluster_new("a", "fleet");
    assert_non_null(cl);
    assert_int_equal(cluster_live_count(cl), 1);
    /* online without our cluster name (a bridge without clustering): not a member */
    assert_int_equal(cluster_on_status(cl, "b", true), 0);
    assert_int_equal(cluster_live_count(cl), 1);
    assert_int_equal(cluster_on_name(cl, "b", "fleet"), 1);
    assert_int_equal(cluster_live_count(cl), 2);
    /* another cluster on the same broker */
    join(cl, "x");
    assert_int_equal(cluster_live_count(cl), 3);
    assert_int_equal(cluster_on_name(cl, "x", "other"), 1);
    assert_int_equal(cluster_live_count(cl), 2);
    /* statuses about self are ignored (a stale will of our previous run) */
    assert_int_equal(cluster_on_status(cl, "a", false), 0);
    assert_true(cluster_is_live(cl, "a"));
    /* the last will takes b out; it comes back with its next "online" */
    uint64_t g = cluster_generation(cl);
    assert_int_equal(cluster_on_status(cl, "b", false), 1);
    assert_false(cluster_is_live(cl, "b"));
    assert_true(cluster_generation(cl) > g);
    assert_int_equal(cluster_on_status(cl, "b", true), 1);
    char list[128];
    cluster_live_list(cl, list, sizeof list);
    assert_string_equal(list, "a,b");
    /* an offline stranger is not even remembered */
    assert_int_equal(cluster_on_status(cl, "ghost", false), 0);
    cluster_free(cl);
    assert_null(cluster_new("", "fleet"));
}

static void test_too_many_ids(void **state)
{
    (void)state;
    struct cluster *cl = cluster_new("a", "fleet");
    char id[32];
    for (int i = 0; i < CLUSTER_MAX_TRACKED; i++) {
        snprintf(id, sizeof id, "p%d", i);
        assert_true(cluster_on_status(cl, id, true) >= 0);
    }
    assert_int_equal(cluster_on_status(cl, "one-too-many", true), -1);
    assert_int_equal(cluster_live_count(cl), 1);   /* online, but none named our cluster */
    cluster_free(cl);
}

/* Every member computes the same owner; ownership is spread; a leaving member moves
 * only the keys it owned. */
static void test_rendezvous(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c"};
    struct cluster *cl[3];
    for (int i = 0; i < 3; i++) {
        cl[i] = cluster_new(ids[i], "fleet");
        for (int j = 0; j < 3; j++)
            if (j != i)
                join(cl[i], ids[j]);
    }
    enum { KEYS = 3000 };
    int owned[3] = {0};
    char owner_before[KEYS];
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "veh-%05d", k);
        int n_owning = 0;
        for (int i = 0; i < 3; i++) {
            assert_string_equal(cluster_owner(cl[i], key), cluster_owner(cl[0], key));
            if (cluster_owns(cl[i], key)) {
                n_owning++;
                owned[i]++;
                owner_before[k] = (char)i;
            }
        }
        assert_int_equal(n_owning, 1);
    }
    for (int i = 0; i < 3; i++)
        assert_true(owned[i] > KEYS / 3 - KEYS / 10 && owned[i] < KEYS / 3 + KEYS / 10);
    /* c dies: a and b see its will */
    cluster_on_status(cl[0], "c", false);
    cluster_on_status(cl[1], "c", false);
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "veh-%05d", k);
        assert_true(cluster_owns(cl[0], key) != cluster_owns(cl[1], key));
        if (owner_before[k] != 2)   /* keys of a and b stay where they were */
            assert_true(cluster_owns(cl[(int)owner_before[k]], key));
    }
    assert_true(cluster_owns(NULL, "anything"));
    for (int i = 0; i < 3; i++)
        cluster_free(cl[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_live_set),
        cmocka_unit_test(test_too_many_ids),
        cmocka_unit_test(test_rendezvous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
