/* Unit tests for conn: the bounded send queue and conflation, without a socket. Every test
 * builds its own conn_env (counters, room registry, a want_write hook that counts) and
 * asserts the exact frames, their order and the counters. Leaks are caught by the ASan
 * build (messages, pending entries, subscriptions and rooms must all be freed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"
#include "log.h"
#include "msg.h"
#include "room.h"
#include "stats.h"

struct fix {
    struct tb_stats st;
    struct room_registry *rooms;
    struct conn_env env;
    unsigned wants;            /* want_write calls */
    struct conn *want_conn;    /* connection of the last call */
    void *want_ud;             /* ud of the last call */
};

static void on_want_write(void *ud, struct conn *c)
{
    struct fix *f = ud;
    f->wants++;
    f->want_conn = c;
    f->want_ud = ud;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->rooms = room_registry_new();
    if (!f->rooms) {
        free(f);
        return -1;
    }
    f->env.st = &f->st;
    f->env.rooms = f->rooms;
    f->env.want_write = on_want_write;
    f->env.ud = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    room_registry_free(f->rooms);
    free(f);
    return 0;
}

/* A routed message: key of 'topic' (NULL = key 0). The caller owns the reference. */
static struct tb_msg *mk(const char *text, const char *topic)
{
    struct tb_msg *m = msg_new(text, strlen(text));
    assert_non_null(m);
    m->key = topic ? msg_topic_key(topic) : 0;
    return m;
}

/* Enqueues a new message for subscription s and drops the caller's reference. */
static enum conn_enqueue_result enq(struct conn *c, struct sub *s, const char *topic,
                                    const char *text, bool conflate)
{
    struct tb_msg *m = mk(text, topic);
    enum conn_enqueue_result r = conn_enqueue(c, m, s, conflate);
    msg_unref(m);
    return r;
}

/* Frame i of the queue as text. */
static const char *frame(const struct conn *c, uint32_t i)
{
    assert_true(i < c->q_len);
    return (const char *)msg_payload(conn_queue_frame(c, i));
}

/* Pops the oldest frame and checks its text. */
static void pop_expect(struct conn *c, const char *want)
{
    assert_true(c->q_len > 0);
    size_t bytes = c->q_bytes;
    struct tb_msg *m = conn_queue_pop(c);
    assert_string_equal((const char *)msg_payload(m), want);
    assert_int_equal(c->q_bytes, bytes - m->len);
    msg_unref(m);
}

/* What the writer does: pop everything, admit waiting messages, repeat; the frames seen,
 * comma-separated, into out. */
static void drain(struct conn *c, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (;;) {
        while (c->q_len) {
            struct tb_msg *m = conn_queue_pop(c);
            int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", (const char *)msg_payload(m));
            assert_true(w > 0 && (size_t)w < cap - n);
            n += (size_t)w;
            msg_unref(m);
        }
        conn_admit_pending(c);
        if (!c->q_len)
            break;
    }
    assert_int_equal(c->q_bytes, 0);
    assert_false(conn_has_backlog(c));
}

static struct conn *new_conn(struct fix *f, uint64_t id, size_t frames, size_t bytes)
{
    struct conn *c = conn_new(&f->env, NULL, id, frames, bytes);
    assert_non_null(c);
    assert_int_equal(c->id, id);
    assert_int_equal(c->q_len, 0);
    assert_false(c->closing);
    return c;
}

static void test_queue_under_bound(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 1, 8, 1000);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "vehicle:1"));
    assert_non_null(s);
    assert_ptr_equal(conn_find_sub(c, "vehicle:1"), s);
    assert_null(conn_find_sub(c, "vehicle:2"));

    struct tb_msg *m1 = mk("{\"n\":1}", "vehicle/1/telemetry");
    assert_int_equal(conn_enqueue(c, m1, s, true), CONN_QUEUED);
    assert_int_equal(m1->refs, 2); /* the queue holds a reference, not a copy */
    assert_int_equal(f->wants, 1); /* the queue became non-empty */
    assert_ptr_equal(f->want_conn, c);
    assert_ptr_equal(f->want_ud, f);
    assert_int_equal(enq(c, s, "vehicle/1/telemetry", "{\"n\":2}", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "vehicle/1/status", "{\"n\":33}", false), CONN_QUEUED);
    assert_int_equal(conn_send_text(c, "{\"type\":\"pong\"}", 15), CONN_QUEUED);
    assert_int_equal(f->wants, 1); /* not again while non-empty */

    assert_int_equal(c->q_len, 4);
    assert_int_equal(c->q_bytes, 7 + 7 + 8 + 15);
    assert_ptr_equal(conn_queue_frame(c, 0), m1);
    assert_string_equal(frame(c, 1), "{\"n\":2}");
    assert_string_equal(frame(c, 2), "{\"n\":33}");
    assert_string_equal(frame(c, 3), "{\"type\":\"pong\"}");
    assert_int_equal(f->st.conflated, 0);
    assert_int_equal(f->st.dropped, 0);
    assert_int_equal(conn_pending_count(c), 0);

    /* the frame bytes are a complete unmasked text frame */
    struct tb_msg *q0 = conn_queue_frame(c, 0);
    assert_int_equal(msg_frame_len(q0), 2 + 7);
    assert_int_equal(msg_frame(q0)[0], 0x81);
    assert_int_equal(msg_frame(q0)[1], 7);

    pop_expect(c, "{\"n\":1}");
    assert_int_equal(m1->refs, 1);
    msg_unref(m1);
    pop_expect(c, "{\"n\":2}");
    pop_expect(c, "{\"n\":33}");
    pop_expect(c, "{\"type\":\"pong\"}");
    assert_int_equal(c->q_len, 0);
    assert_int_equal(c->q_bytes, 0);

    /* the ring wraps and grows past its first capacity (4) while keeping order */
    for (int i = 0; i < 8; i++) {
        char t[16];
        snprintf(t, sizeof t, "w%d", i);
        assert_int_equal(enq(c, s, "vehicle/1/telemetry", t, true), CONN_QUEUED);
        if (i == 1)
            pop_expect(c, "w0");
    }
    assert_int_equal(f->wants, 2); /* non-empty again once */
    assert_int_equal(c->q_len, 7);
    for (uint32_t i = 0; i < 7; i++) {
        char t[16];
        snprintf(t, sizeof t, "w%u", i + 1);
        assert_string_equal(frame(c, i), t);
    }
    assert_int_equal(c->q_bytes, 14);
    assert_false(c->closing);
    conn_free(c);
    assert_null(room_find(f->rooms, "vehicle:1"));
}

static void test_conflation_keeps_room_order(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 2, 2, 1 << 20);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "fleet"));
    assert_int_equal(enq(c, s, "vehicle/9/telemetry", "Q1", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "vehicle/8/telemetry", "Q2", true), CONN_QUEUED);
    /* full: A1, B1, A2 for topics A, B */
    assert_int_equal(enq(c, s, "vehicle/A/telemetry", "A1", true), CONN_CONFLATED);
    assert_int_equal(enq(c, s, "vehicle/B/telemetry", "B1", true), CONN_CONFLATED);
    assert_int_equal(conn_pending_count(c), 2);
    assert_int_equal(s->n_pending, 2);
    struct tb_msg *a2 = mk("A2", "vehicle/A/telemetry");
    assert_int_equal(conn_enqueue(c, a2, s, true), CONN_CONFLATED);
    assert_int_equal(conn_pending_count(c), 2); /* A2 replaced A1 */
    assert_int_equal(s->n_pending, 2);
    assert_int_equal(a2->refs, 2);
    assert_int_equal(c->q_len, 2);
    assert_int_equal(c->conflated, 3);
    assert_int_equal(f->st.conflated, 3);
    assert_int_equal(f->st.dropped, 0);
    assert_int_equal(f->wants, 1);
    assert_true(conn_has_backlog(c));

    /* one slot frees: the room has messages waiting, so a newer one waits behind them
     * even though it would fit */
    pop_expect(c, "Q1");
    assert_int_equal(enq(c, s, "vehicle/C/telemetry", "C1", true), CONN_CONFLATED);
    assert_int_equal(c->q_len, 1);
    assert_int_equal(conn_pending_count(c), 3);
    assert_int_equal(f->st.conflated, 4);

    conn_admit_pending(c); /* one slot: the oldest waiting is B1 (A moved to the end) */
    assert_int_equal(c->q_len, 2);
    assert_string_equal(frame(c, 0), "Q2");
    assert_string_equal(frame(c, 1), "B1");
    assert_int_equal(conn_pending_count(c), 2);

    char seen[256];
    drain(c, seen, sizeof seen);
    assert_string_equal(seen, "Q2,B1,A2,C1");
    assert_int_equal(s->n_pending, 0);
    assert_int_equal(conn_pending_count(c), 0);
    assert_int_equal(a2->refs, 1);
    msg_unref(a2);

    /* with nothing waiting any more, messages go straight into the queue again */
    assert_int_equal(enq(c, s, "vehicle/A/telemetry", "A3", true), CONN_QUEUED);
    assert_string_equal(frame(c, 0), "A3");
    assert_false(c->closing);
    assert_int_equal(f->st.dropped, 0);
    conn_free(c);
    assert_int_equal(room_registry_count(f->rooms), 0);
}

static void test_conflation_is_per_subscription(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 3, 1, 1 << 20);
    struct sub *fleet = conn_subscribe(c, room_get(f->rooms, "fleet"));
    struct sub *veh = conn_subscribe(c, room_get(f->rooms, "vehicle:5"));
    assert_int_equal(enq(c, veh, "vehicle/5/setup", "S", true), CONN_QUEUED);
    /* one topic, two rooms: two waiting entries */
    assert_int_equal(enq(c, fleet, "vehicle/5/telemetry", "F1", true), CONN_CONFLATED);
    assert_int_equal(enq(c, veh, "vehicle/5/telemetry", "V1", true), CONN_CONFLATED);
    assert_int_equal(enq(c, fleet, "vehicle/5/telemetry", "F2", true), CONN_CONFLATED);
    assert_int_equal(enq(c, veh, "vehicle/5/telemetry", "V2", true), CONN_CONFLATED);
    assert_int_equal(conn_pending_count(c), 2);
    assert_int_equal(fleet->n_pending, 1);
    assert_int_equal(veh->n_pending, 1);
    assert_int_equal(f->st.conflated, 4);
    /* a control frame on the full queue is dropped (no close), and does not disturb them */
    assert_int_equal(conn_send_text(c, "ctl", 3), CONN_DROPPED);
    char seen[64];
    drain(c, seen, sizeof seen);
    assert_string_equal(seen, "S,F2,V2");
    assert_false(c->closing);
    conn_free(c);
    assert_int_equal(room_registry_count(f->rooms), 0);
}

static void test_byte_bound(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 4, 100, 10);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "r"));
    assert_int_equal(enq(c, s, "t/a", "aaaa", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "t/b", "bbbbbb", true), CONN_QUEUED); /* 10 bytes: exactly at the bound */
    assert_int_equal(c->q_bytes, 10);
    assert_int_equal(enq(c, s, "t/c", "c", true), CONN_CONFLATED);   /* 11 > 10 */
    assert_int_equal(c->q_len, 2);
    assert_int_equal(conn_pending_count(c), 1);
    /* control frames obey the byte bound too */
    assert_int_equal(conn_send_text(c, "x", 1), CONN_DROPPED);
    assert_false(c->closing);
    assert_int_equal(f->st.dropped, 1);

    pop_expect(c, "aaaa");
    conn_admit_pending(c); /* 6 + 1 fits */
    assert_int_equal(c->q_len, 2);
    assert_int_equal(c->q_bytes, 7);
    assert_string_equal(frame(c, 1), "c");
    assert_int_equal(conn_pending_count(c), 0);

    /* waiting messages are admitted only while their bytes fit */
    assert_int_equal(enq(c, s, "t/d", "dddd", true), CONN_CONFLATED); /* 7 + 4 > 10 */
    assert_int_equal(conn_send_text(c, "pg", 2), CONN_QUEUED);        /* 7 + 2 fits: control frames are not behind */
    assert_int_equal(c->q_bytes, 9);
    conn_admit_pending(c);
    assert_int_equal(c->q_len, 3); /* 9 + 4 > 10: still waiting */
    assert_int_equal(conn_pending_count(c), 1);
    pop_expect(c, "bbbbbb");
    conn_admit_pending(c);
    assert_int_equal(c->q_len, 3);
    assert_string_equal(frame(c, 0), "c");
    assert_string_equal(frame(c, 1), "pg");
    assert_string_equal(frame(c, 2), "dddd");
    assert_int_equal(c->q_bytes, 7);

    char seen[64];
    drain(c, seen, sizeof seen);
    assert_string_equal(seen, "c,pg,dddd");

    /* one frame larger than the byte bound still goes through an empty queue */
    assert_int_equal(enq(c, s, "t/big", "0123456789abcdef", true), CONN_QUEUED);
    assert_int_equal(c->q_bytes, 16);
    assert_int_equal(enq(c, s, "t/e", "e", false), CONN_DROPPED); /* but nothing after it */
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    conn_free(c);
}

static void test_disconnect_on_full_queue(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 5, 2, 1 << 20);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "orders"));
    assert_int_equal(enq(c, s, "o/1", "o1", false), CONN_QUEUED);
    assert_int_equal(enq(c, s, "o/2", "o2", false), CONN_QUEUED);
    assert_int_equal(f->wants, 1);
    assert_int_equal(enq(c, s, "o/3", "o3", false), CONN_DROPPED);
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    assert_int_equal(c->close_code, 4008);
    assert_non_null(c->close_reason);
    assert_non_null(strstr(c->close_reason, "slow consumer"));
    assert_int_equal(c->dropped, 1);
    assert_int_equal(f->st.dropped, 1);
    assert_int_equal(f->st.conflated, 0);
    assert_int_equal(f->wants, 2); /* the close is written too */
    assert_ptr_equal(f->want_conn, c);
    assert_int_equal(c->q_len, 2); /* what was queued stays */
    assert_int_equal(conn_pending_count(c), 0);

    /* a closing connection takes nothing more and counts nothing more */
    assert_int_equal(enq(c, s, "o/4", "o4", true), CONN_DROPPED);
    assert_int_equal(conn_send_text(c, "x", 1), CONN_DROPPED);
    assert_int_equal(f->st.dropped, 1);
    assert_int_equal(c->q_len, 2);
    conn_close(c, TB_CLOSE_GOING_AWAY, "bye"); /* the first close wins */
    assert_int_equal(c->close_code, 4008);
    assert_int_equal(f->wants, 2);
    conn_free(c);
}

static void test_disconnect_behind_conflated_value(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 6, 1, 1 << 20);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "vehicle:3"));
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T1", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T2", true), CONN_CONFLATED);
    assert_int_equal(f->wants, 1);
    /* the same topic from a disconnect route: neither replace T2 nor overtake it */
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T3", false), CONN_DROPPED);
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    assert_int_equal(f->st.dropped, 1);
    assert_int_equal(c->dropped, 1);
    assert_int_equal(f->st.conflated, 1);
    assert_int_equal(f->wants, 2);
    assert_int_equal(conn_pending_count(c), 1);
    char seen[64];
    drain(c, seen, sizeof seen); /* T2 still waits (the close frame goes after it) */
    assert_string_equal(seen, "T1,T2");
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T4", true), CONN_DROPPED);
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T5", true), CONN_DROPPED);
    conn_free(c);
    assert_int_equal(room_registry_count(f->rooms), 0);
}

static void test_disconnect_behind_room_backlog(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 7, 1, 1 << 20);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "vehicle:3"));
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T1", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "vehicle/3/telemetry", "T2", true), CONN_CONFLATED);
    pop_expect(c, "T1"); /* room now has space, but the room has a message waiting */
    /* another topic of a disconnect route cannot overtake T2 and cannot wait: 4008 */
    assert_int_equal(enq(c, s, "vehicle/3/status", "S1", false), CONN_DROPPED);
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    assert_int_equal(c->q_len, 0);
    conn_free(c);
}

static void test_pending_bound(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 8, 2, 1 << 20);
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "fleet"));
    assert_int_equal(enq(c, s, "q/1", "q1", true), CONN_QUEUED);
    assert_int_equal(enq(c, s, "q/2", "q2", true), CONN_QUEUED);
    char topic[32], text[32];
    for (int i = 0; i < 2 * 16; i++) {
        snprintf(topic, sizeof topic, "vehicle/%d/telemetry", i);
        snprintf(text, sizeof text, "v%d", i);
        assert_int_equal(enq(c, s, topic, text, true), CONN_CONFLATED);
    }
    assert_int_equal(conn_pending_count(c), 32);
    assert_false(c->closing);
    /* updates of topics already waiting do not add entries */
    for (int i = 0; i < 32; i += 5) {
        snprintf(topic, sizeof topic, "vehicle/%d/telemetry", i);
        snprintf(text, sizeof text, "v%d'", i);
        assert_int_equal(enq(c, s, topic, text, true), CONN_CONFLATED);
    }
    assert_int_equal(conn_pending_count(c), 32);
    assert_false(c->closing);
    assert_int_equal(f->st.conflated, 32 + 7);
    assert_int_equal(f->st.dropped, 0);
    assert_int_equal(f->wants, 1);
    /* one more distinct topic is beyond max_frames * 16 */
    assert_int_equal(enq(c, s, "vehicle/99/telemetry", "v99", true), CONN_DROPPED);
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    assert_int_equal(f->st.dropped, 1);
    assert_int_equal(conn_pending_count(c), 32);
    assert_int_equal(f->wants, 2);

    /* the waiting ones are still all there, in order of their last update */
    char seen[1024], want[1024];
    size_t n = (size_t)snprintf(want, sizeof want, "q1,q2");
    for (int i = 0; i < 32; i++)
        if (i % 5)
            n += (size_t)snprintf(want + n, sizeof want - n, ",v%d", i);
    for (int i = 0; i < 32; i += 5)
        n += (size_t)snprintf(want + n, sizeof want - n, ",v%d'", i);
    drain(c, seen, sizeof seen);
    assert_string_equal(seen, want);
    conn_free(c);
}

static void test_control_frames_on_full_queue(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 9, 2, 1 << 20);
    assert_int_equal(conn_send_text(c, "welcome", 7), CONN_QUEUED);
    assert_int_equal(conn_send_text(c, "hb1", 3), CONN_QUEUED);
    assert_int_equal(f->wants, 1);
    assert_int_equal(conn_send_text(c, "hb2", 3), CONN_DROPPED);
    /* key set but no subscription: still a control frame, never waits */
    struct tb_msg *m = mk("err", "some/topic");
    assert_int_equal(conn_enqueue(c, m, NULL, true), CONN_DROPPED);
    assert_int_equal(m->refs, 1);
    msg_unref(m);
    assert_false(c->closing);
    assert_int_equal(c->close_code, 0);
    assert_int_equal(conn_pending_count(c), 0);
    assert_int_equal(c->dropped, 2);
    assert_int_equal(f->st.dropped, 2);
    assert_int_equal(f->st.conflated, 0);
    assert_int_equal(f->wants, 1); /* no close asked for */
    assert_int_equal(c->q_len, 2);
    assert_string_equal(frame(c, 0), "welcome");
    assert_string_equal(frame(c, 1), "hb1");

    /* a routed message without a conflation key cannot wait: it closes */
    struct sub *s = conn_subscribe(c, room_get(f->rooms, "r"));
    assert_int_equal(enq(c, s, NULL, "nokey", true), CONN_DROPPED);
    assert_true(c->closing);
    assert_int_equal(c->close_code, TB_CLOSE_SLOW_CONSUMER);
    assert_int_equal(f->wants, 2);
    conn_free(c);
}

static void test_unsubscribe_drops_waiting(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 10, 1, 1 << 20);
    struct sub *s1 = conn_subscribe(c, room_get(f->rooms, "r1"));
    struct sub *s2 = conn_subscribe(c, room_get(f->rooms, "r2"));
    struct sub *s3 = conn_subscribe(c, room_get(f->rooms, "r3"));
    assert_int_equal(room_registry_count(f->rooms), 3);
    assert_int_equal(enq(c, s2, "t/0", "r2-0", true), CONN_QUEUED);
    struct tb_msg *a = mk("r1-A", "t/A");
    assert_int_equal(conn_enqueue(c, a, s1, true), CONN_CONFLATED);
    assert_int_equal(enq(c, s2, "t/C", "r2-C", true), CONN_CONFLATED);
    assert_int_equal(enq(c, s1, "t/B", "r1-B", true), CONN_CONFLATED);
    assert_int_equal(enq(c, s3, "t/D", "r3-D", true), CONN_CONFLATED);
    assert_int_equal(conn_pending_count(c), 4);
    assert_int_equal(a->refs, 2);

    conn_unsubscribe(c, s1);
    assert_int_equal(a->refs, 1); /* its waiting message was released */
    msg_unref(a);
    assert_int_equal(conn_pending_count(c), 2);
    assert_null(conn_find_sub(c, "r1"));
    assert_null(room_find(f->rooms, "r1")); /* nothing keeps it */
    assert_non_null(room_find(f->rooms, "r2"));
    assert_int_equal(room_registry_count(f->rooms), 2);

    /* a room with a last value outlives its last member */
    struct room *r3 = room_find(f->rooms, "r3");
    struct tb_msg *last = mk("last", "t/D");
    room_set_last(r3, last, 1);
    msg_unref(last);
    conn_unsubscribe(c, s3);
    assert_ptr_equal(room_find(f->rooms, "r3"), r3);
    assert_false(room_has_members(r3));
    assert_int_equal(conn_pending_count(c), 1);

    char seen[64];
    drain(c, seen, sizeof seen);
    assert_string_equal(seen, "r2-0,r2-C");
    assert_ptr_equal(c->subs, s2);
    assert_null(s2->conn_next);
    conn_free(c);
    assert_null(room_find(f->rooms, "r2"));
    assert_int_equal(room_registry_count(f->rooms), 1); /* r3 keeps its last value */
}

static void test_free_releases_everything(void **state)
{
    struct fix *f = *state;
    struct conn *c = new_conn(f, 11, 3, 1 << 20);
    struct sub *s[3];
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "room%d", i);
        s[i] = conn_subscribe(c, room_get(f->rooms, name));
        assert_non_null(s[i]);
    }
    /* a second connection in room0 keeps that room alive */
    struct conn *other = new_conn(f, 12, 4, 1 << 20);
    struct sub *os = conn_subscribe(other, room_find(f->rooms, "room0"));
    assert_int_equal(room_member_count(room_find(f->rooms, "room0")), 2);

    struct tb_msg *shared = mk("shared", "t/x");
    assert_int_equal(conn_enqueue(c, shared, s[0], true), CONN_QUEUED);
    assert_int_equal(conn_enqueue(other, shared, os, true), CONN_QUEUED);
    assert_int_equal(enq(c, s[1], "t/y", "y", true), CONN_QUEUED);
    assert_int_equal(conn_send_text(c, "ctl", 3), CONN_QUEUED);
    /* the same message (key of t/x) for each subscription, again and again: one waiting
     * entry per subscription */
    for (int i = 0; i < 40; i++)
        assert_int_equal(conn_enqueue(c, shared, s[i % 3], true), CONN_CONFLATED);
    assert_int_equal(conn_pending_count(c), 3);
    for (int i = 0; i < 40; i++) { /* grows the pending index past its first size */
        char topic[16], text[16];
        snprintf(topic, sizeof topic, "t/%d", i);
        snprintf(text, sizeof text, "p%d", i);
        assert_int_equal(enq(c, s[i % 3], topic, text, true), CONN_CONFLATED);
    }
    assert_int_equal(conn_pending_count(c), 43);
    assert_int_equal(shared->refs, 2 + 1 + 3);
    conn_free(c);
    assert_int_equal(shared->refs, 2); /* ours and other's queue */
    assert_non_null(room_find(f->rooms, "room0"));
    assert_null(room_find(f->rooms, "room1"));
    assert_null(room_find(f->rooms, "room2"));
    assert_int_equal(room_member_count(room_find(f->rooms, "room0")), 1);
    conn_free(other);
    assert_int_equal(shared->refs, 1);
    msg_unref(shared);
    assert_int_equal(room_registry_count(f->rooms), 0);
    conn_free(NULL);
}

static void test_count_sent(void **state)
{
    struct fix *f = *state;
    struct conn *a = new_conn(f, 13, 4, 100);
    struct conn *b = new_conn(f, 14, 4, 100);
    conn_count_sent(a, 3);
    conn_count_sent(b, 5);
    conn_count_sent(a, 1);
    assert_int_equal(a->sent, 4);
    assert_int_equal(b->sent, 5);
    assert_int_equal(f->st.delivered, 9);
    assert_int_equal(f->st.dropped, 0);
    assert_int_equal(f->st.conflated, 0);
    conn_free(a);
    conn_free(b);
}

/* Envelope profiles (issue 15, point 6): the time field renamed and reformatted, the key
 * kept, payload text that looks like a time field left alone. */
static void expect_retime(const char *in, const char *field, int iso, const char *want)
{
    struct tb_msg *m = msg_new(in, strlen(in));
    m->key = 42;
    struct tb_msg *out = msg_retime(m, field, iso);
    assert_non_null(out);
    assert_string_equal((const char *)msg_payload(out), want);
    assert_int_equal(out->len, strlen(want));
    assert_int_equal(out->key, 42);
    msg_unref(out);
    msg_unref(m);
}

static void test_msg_retime(void **state)
{
    (void)state;
    expect_retime("{\"type\":\"t\",\"room\":\"r\",\"seq\":3,\"ts\":1705314600123,\"data\":{\"ts\":1}}", "timestamp", 1,
                  "{\"type\":\"t\",\"room\":\"r\",\"seq\":3,\"timestamp\":\"2024-01-15T10:30:00.123Z\",\"data\":{\"ts\":1}}");
    expect_retime("{\"type\":\"welcome\",\"ts\":5,\"data\":{}}", "time", 0, "{\"type\":\"welcome\",\"time\":5,\"data\":{}}");
    expect_retime("{\"type\":\"pong\",\"ts\":0}", "timestamp", 1, "{\"type\":\"pong\",\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    /* a name that only looks like the field, inside a string, is not it */
    expect_retime("{\"type\":\"a,\\\"ts\\\":1\",\"ts\":2}", "t", 0, "{\"type\":\"a,\\\"ts\\\":1\",\"t\":2}");
    expect_retime("{\"type\":\"none\"}", "t", 1, "{\"type\":\"none\"}");   /* no field: the same */
}

/* A connection with a profile queues its own copy; others share the frame. */
static void test_enqueue_with_profile(void **state)
{
    struct fix *f = *state;
    struct conn *plain = conn_new(&f->env, NULL, 1, 8, 65536), *seed = conn_new(&f->env, NULL, 2, 8, 65536);
    seed->profile = calloc(1, sizeof *seed->profile);
    assert_non_null(seed->profile);
    snprintf(seed->profile->ts_field, sizeof seed->profile->ts_field, "timestamp");
    seed->profile->ts_iso = true;
    const char *text = "{\"type\":\"x\",\"ts\":1000}";
    struct tb_msg *m = msg_new(text, strlen(text));
    conn_enqueue(plain, m, NULL, false);
    conn_enqueue(seed, m, NULL, false);
    assert_ptr_equal(conn_queue_frame(plain, 0), m);
    assert_string_equal((const char *)msg_payload(conn_queue_frame(seed, 0)),
                        "{\"type\":\"x\",\"timestamp\":\"1970-01-01T00:00:01.000Z\"}");
    assert_int_equal(m->refs, 2);
    msg_unref(m);
    /* seed 002's alerts and heartbeats: raised_at -> timestamp (the alert's own, not the
     * payload value's), server_status ok -> healthy, heartbeat timestamp in ISO 8601 */
    snprintf(seed->profile->alert_time_field, sizeof seed->profile->alert_time_field, "timestamp");
    snprintf(seed->profile->status_ok, sizeof seed->profile->status_ok, "healthy");
    const char *alert = "{\"type\":\"alert\",\"ts\":0,\"data\":{\"value\":{\"raised_at\":1},\"raised_at\":2000,\"state\":\"active\"}}";
    const char *beat = "{\"type\":\"heartbeat\",\"ts\":0,\"data\":{\"timestamp\":3000,\"server_status\":\"ok\"}}";
    const char *routed = "{\"type\":\"telemetry\",\"ts\":0,\"data\":{\"raised_at\":1,\"server_status\":\"ok\"}}";
    const char *text_in[] = {alert, beat, routed};
    for (int i = 0; i < 3; i++) {
        m = msg_new(text_in[i], strlen(text_in[i]));
        conn_enqueue(seed, m, NULL, false);
        msg_unref(m);
    }
    assert_string_equal((const char *)msg_payload(conn_queue_frame(seed, 1)),
                        "{\"type\":\"alert\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":{\"value\":{\"raised_at\":1},"
                        "\"timestamp\":\"1970-01-01T00:00:02.000Z\",\"state\":\"active\"}}");
    assert_string_equal((const char *)msg_payload(conn_queue_frame(seed, 2)),
                        "{\"type\":\"heartbeat\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":{\"timestamp\":"
                        "\"1970-01-01T00:00:03.000Z\",\"server_status\":\"healthy\"}}");
    assert_string_equal((const char *)msg_payload(conn_queue_frame(seed, 3)),   /* payload untouched */
                        "{\"type\":\"telemetry\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":{\"raised_at\":1,"
                        "\"server_status\":\"ok\"}}");
    conn_free(plain);
    conn_free(seed);
}

int main(void)
{
    log_set_level(TB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_retime),
        cmocka_unit_test_setup_teardown(test_enqueue_with_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_under_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflation_keeps_room_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflation_is_per_subscription, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_on_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_behind_conflated_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_behind_room_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_frames_on_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_drops_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_releases_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_sent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
