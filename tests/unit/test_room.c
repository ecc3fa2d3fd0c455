/* Unit tests for room: history ring, expiry by history_ttl, lockstep membership lookup,
 * release of idle rooms. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_ring_keeps_newest),
        cmocka_unit_test(test_history_expiry),
        cmocka_unit_test(test_lockstep_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
