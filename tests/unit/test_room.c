/* Unit tests for room: history ring, expiry by history_ttl, lockstep membership lookup,
 * release of idle rooms, keyed last values (order, bound, TTL) and snapshot cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "room.h"

static void push(struct room *room, uint64_t seq, uint64_t at)
{
    char text[32];
    int n = snprintf(text, sizeof text, "{\"seq\":%llu}", (unsigned long long)seq);
    struct tb_msg *m = msg_new(text, (size_t)n);
    room_history_push(room, m, seq, at);
    msg_unref(m);
}

static void test_history_ring_keeps_newest(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "vehicle:1");
    assert_int_equal(room_set_history_cap(room, 3), 0);
    for (uint64_t s = 1; s <= 5; s++)
        push(room, s, s * 10);
    assert_int_equal(room->hist_len, 3);
    assert_int_equal(room->hist_seq[room->hist_head], 3);
    assert_int_equal(room_set_history_cap(room, 2), 0); /* shrink keeps the newest */
    assert_int_equal(room->hist_len, 2);
    assert_int_equal(room->hist_seq[room->hist_head], 4);
    room_registry_free(r);
}

static void test_history_expiry(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "vehicle:2");
    room_set_history_cap(room, 10);
    for (uint64_t s = 1; s <= 5; s++)
        push(room, s, (s - 1) * 1000); /* at 0, 1000, ..., 4000 */
    assert_int_equal(room_history_expire(room, 3500), 0); /* no ttl: nothing expires */
    room->hist_ttl_ms = 1000;
    assert_int_equal(room_history_expire(room, 3500), 3); /* 0, 1000, 2000 are too old */
    assert_int_equal(room->hist_len, 2);
    assert_int_equal(room->hist_seq[room->hist_head], 4);
    push(room, 6, 5000);                                   /* the ring still works after */
    assert_int_equal(room->hist_len, 3);
    assert_int_equal(room_history_expire(room, 100000), 3);
    assert_int_equal(room->hist_len, 0);
    /* nothing left: the room can be freed */
    room_release_if_idle(r, room);
    assert_null(room_find(r, "vehicle:2"));
    assert_int_equal(room_registry_count(r), 0);
    room_registry_free(r);
}

static void remember(struct room *room, size_t bytes, uint64_t seq)
{
    char *text = malloc(bytes);
    memset(text, 'x', bytes);
    struct tb_msg *m = msg_new(text, bytes);
    free(text);
    struct room_keep keep = {.last = true, .history = 100};
    room->seq = seq;
    room_remember(room, &keep, "t", NULL, m, seq, seq);
    msg_unref(m);
}

/* Issue 14, point 7: what rooms store is bounded in bytes, per room and in total; the
 * oldest history goes first, the last value stays, and the counts return to 0. */
static void test_byte_bounds(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    room_registry_set_byte_limits(r, 10000, 15000);
    struct room *a = room_get(r, "a");
    for (uint64_t s = 1; s <= 20; s++)
        remember(a, 1000, s);
    /* last value (1000) + history <= 10000: 9 entries of history, the newest ones */
    assert_true(a->bytes <= 10000);
    assert_int_equal(a->hist_len, 9);
    assert_int_equal(a->hist_seq[a->hist_head], 12);
    assert_int_equal(room_registry_stored_bytes(r), a->bytes);
    assert_int_equal(room_registry_trimmed(r), 11);
    /* the total bound: room b may only take what is left of 15000 */
    struct room *b = room_get(r, "b");
    for (uint64_t s = 1; s <= 20; s++)
        remember(b, 1000, s);
    assert_true(room_registry_stored_bytes(r) <= 15000);
    assert_int_equal(room_registry_stored_bytes(r), a->bytes + b->bytes);
    assert_non_null(b->lasts);
    /* a resume from before the trimmed entries is a gap (the client gets a resync) */
    struct room_span span;
    assert_int_equal(room_history_since(a, 5, 20, &span), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(a, 15, 20, &span), ROOM_SINCE_OK);
    /* one payload larger than the room bound: delivered as last value, no history */
    remember(a, 20000, 21);
    assert_int_equal(a->hist_len, 0);
    assert_int_equal(a->bytes, 20000);
    room_registry_free(r);
}

/* Issue 14, point 2: client-created rooms are counted until routed data reaches them. */
static void test_client_rooms_counted(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *c1 = room_get_for(r, "c1", true);
    room_get_for(r, "c2", true);
    room_get(r, "routed");
    assert_int_equal(room_registry_client_count(r), 2);
    room_mark_routed(c1);
    room_mark_routed(c1);
    assert_int_equal(room_registry_client_count(r), 1);
    room_release_if_idle(r, room_find(r, "c2"));
    assert_int_equal(room_registry_client_count(r), 0);
    assert_int_equal(room_registry_count(r), 2);
    room_registry_free(r);
}

static void test_lockstep_lookup(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *a = room_get(r, "a"), *b = room_get(r, "b");
    int c1, c2; /* stand-ins: the lookup only compares connection pointers */
    struct sub *s1 = room_join(a, (struct conn *)&c1);
    struct sub *s2 = room_join(a, (struct conn *)&c2);
    struct sub *s3 = room_join(b, (struct conn *)&c2);
    s3->conn_next = s2; /* c2's subscriptions: b, a */
    assert_ptr_equal(room_sub_of(a, (struct conn *)&c2, s3), s2);
    assert_ptr_equal(room_sub_of(b, (struct conn *)&c2, s3), s3);
    assert_ptr_equal(room_sub_of(a, (struct conn *)&c1, s1), s1);
    assert_null(room_sub_of(b, (struct conn *)&c1, s1));
    room_leave(s1);
    room_leave(s2);
    room_leave(s3);
    free(s1);
    free(s2);
    free(s3);
    room_registry_free(r);
}

/* ---- keyed last values (issue 15, point 1) ---- */

static void keyed(struct room *room, const char *key, uint64_t seq, uint64_t at, size_t max, uint64_t ttl)
{
    char text[32];
    int n = snprintf(text, sizeof text, "{\"seq\":%llu}", (unsigned long long)seq);
    struct tb_msg *m = msg_new(text, (size_t)n);
    room->seq = seq;
    assert_int_equal(room_keyed_set(room, key, m, seq, at, max, ttl), 0);
    msg_unref(m);
}

/* The seq carried by a kept message ({"seq":N}). */
static unsigned long long seq_of(struct tb_msg *m)
{
    return strtoull((const char *)msg_payload(m) + 7, NULL, 10);
}

static void test_keyed_newest_per_key_bounded(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "pool");
    keyed(room, "a", 1, 1, 3, 0);
    keyed(room, "b", 2, 2, 3, 0);
    keyed(room, "a", 3, 3, 3, 0);          /* a: newest value, moves to the end */
    keyed(room, "c", 4, 4, 3, 0);
    assert_int_equal(room_keyed_count(room), 3);
    assert_int_equal(seq_of(room_keyed_get(room, "a")), 3);
    keyed(room, "d", 5, 5, 3, 0);          /* beyond 3: the oldest (b) goes, not a */
    assert_null(room_keyed_get(room, "b"));
    assert_non_null(room_keyed_get(room, "a"));
    assert_int_equal(room_registry_keyed_dropped(r), 1);
    assert_true(room_has_state(room));
    size_t bytes = room_registry_stored_bytes(r);
    assert_true(bytes > 0);
    room_release_if_idle(r, room);         /* state: kept */
    assert_int_equal(room_registry_count(r), 1);
    room_registry_free(r);
}

static void test_keyed_ttl(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "pool");
    keyed(room, "a", 1, 1000, 0, 5000);
    keyed(room, "b", 2, 2000, 0, 5000);
    keyed(room, "a", 3, 4000, 0, 5000);    /* a refreshed */
    assert_int_equal(room_keyed_expire(room, 6000), 0);
    assert_int_equal(room_keyed_expire(room, 7001), 1);   /* b, silent since 2000 */
    assert_null(room_keyed_get(room, "b"));
    assert_int_equal(room_keyed_expire(room, 9001), 1);
    assert_false(room_has_state(room));
    assert_int_equal(room_registry_stored_bytes(r), 0);
    room_release_if_idle(r, room);
    assert_int_equal(room_registry_count(r), 0);
    room_registry_free(r);
}

/* The snapshot cursor: every key once, seqs only growing, an update before the cursor
 * reaches its key is sent once with the newest value, one after it is sent again, a
 * dropped key is skipped. */
static void test_snapshot_cursor(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "pool");
    for (uint64_t i = 1; i <= 5; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
        keyed(room, key, i, i, 5, 0);
    }
    int c1;
    struct sub *s = room_join(room, (struct conn *)&c1);
    assert_true(room_snapshot_start(s));
    assert_int_equal(seq_of(room_snapshot_take(s)), 1);   /* k1 */
    keyed(room, "k1", 6, 6, 5, 0);         /* after it was sent: sent again at the end */
    keyed(room, "k3", 7, 7, 5, 0);         /* before: moves to the end, sent once */
    keyed(room, "k2", 8, 8, 5, 0);         /* the cursor's own entry moves */
    keyed(room, "k6", 9, 9, 5, 0);         /* bound 5: k4 (oldest) goes */
    unsigned long long want[] = {5, 6, 7, 8, 9}, prev = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct tb_msg *m = room_snapshot_take(s);
        assert_non_null(m);
        assert_true(seq_of(m) > prev);
        prev = seq_of(m);
        assert_int_equal(prev, want[i]);
    }
    assert_false(room_snapshot_active(s));
    assert_null(room_snapshot_take(s));
    /* the last entry updated while the cursor stands on it stays to be sent */
    assert_true(room_snapshot_start(s));
    for (int i = 0; i < 4; i++)
        room_snapshot_take(s);
    keyed(room, "k6", 10, 10, 5, 0);
    assert_int_equal(seq_of(room_snapshot_take(s)), 10);
    assert_false(room_snapshot_active(s));
    /* leaving mid-snapshot, and the room dropping the cursor's entry at the end */
    assert_true(room_snapshot_start(s));
    room_leave(s);
    assert_false(room_snapshot_active(s));
    free(s);
    room_registry_free(r);
}

static void test_snapshot_entry_dropped_under_cursor(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "pool");
    keyed(room, "a", 1, 1000, 0, 5000);
    int c1;
    struct sub *s = room_join(room, (struct conn *)&c1);
    assert_true(room_snapshot_start(s));
    assert_int_equal(room_keyed_expire(room, 10000), 1);   /* the only entry: done */
    assert_false(room_snapshot_active(s));
    assert_false(room_snapshot_start(s));                   /* nothing to send */
    room_leave(s);
    free(s);
    room_registry_free(r);
}

/* A live member that fell behind: its cursor resumes at the entry just updated and sends
 * it and every entry updated after it, each once with its newest value. */
static void test_snapshot_resume_at_newest(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "pool");
    int c1;
    struct sub *s = room_join(room, (struct conn *)&c1);
    assert_false(room_snapshot_resume(s));               /* empty store: nothing to resume */
    keyed(room, "a", 1, 1, 0, 0);
    keyed(room, "b", 2, 2, 0, 0);
    keyed(room, "c", 3, 3, 0, 0);                        /* the update that found it behind */
    assert_true(room_snapshot_resume(s));
    assert_true(room_snapshot_resume(s));                /* already active: unchanged */
    keyed(room, "a", 4, 4, 0, 0);                        /* updated after: follows */
    keyed(room, "c", 5, 5, 0, 0);                        /* its own entry again: once, newest */
    unsigned long long want[] = {4, 5};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(seq_of(room_snapshot_take(s)), want[i]);
    assert_false(room_snapshot_active(s));
    room_leave(s);
    free(s);
    room_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_ring_keeps_newest),
        cmocka_unit_test(test_history_expiry),
        cmocka_unit_test(test_lockstep_lookup),
        cmocka_unit_test(test_byte_bounds),
        cmocka_unit_test(test_client_rooms_counted),
        cmocka_unit_test(test_keyed_newest_per_key_bounded),
        cmocka_unit_test(test_keyed_ttl),
        cmocka_unit_test(test_snapshot_cursor),
        cmocka_unit_test(test_snapshot_entry_dropped_under_cursor),
        cmocka_unit_test(test_snapshot_resume_at_newest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
