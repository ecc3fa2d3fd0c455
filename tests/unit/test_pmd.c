/* Unit tests for pmd (permessage-deflate, compressed once per message) and the conn side
 * of it: the twin is built once and shared, inflates (raw DEFLATE + the RFC 7692 tail) to
 * the original payload, small / control / incompressible frames stay as they are, and a
 * connection that negotiated deflate queues twins, including frames queued before it said
 * so. Leaks (twins, references) are caught by the ASan build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "conn.h"
#include "msg.h"
#include "pmd.h"
#include "room.h"
#include "stats.h"

static const char *json_payload(char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "{\"type\":\"telemetry_update\",\"data\":{");
    for (int i = 0; used + 40 < n && i < 40; i++)
        used += (size_t)snprintf(buf + used, n - used, "\"sensor_%d\":%d.5,", i, i * 3);
    snprintf(buf + used - 1, n - used + 1, "}}");
    return buf;
}

/* Inflates a twin's payload as a client does; returns the length. */
static size_t inflate_twin(struct tb_msg *t, unsigned char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    static unsigned char tail[4] = {0, 0, 0xff, 0xff};
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    zs.next_in = msg_payload(t);
    zs.avail_in = t->len;
    assert_true(inflate(&zs, Z_SYNC_FLUSH) == Z_OK);
    zs.next_in = tail;
    zs.avail_in = sizeof tail;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
    size_t n = cap - zs.avail_out;
    inflateEnd(&zs);
    return n;
}

static void test_twin_built_once_and_inflates(void **state)
{
    (void)state;
    struct pmd *z = pmd_new();
    assert_int_equal(pmd_configure(z, 64, 1), 0);
    char buf[2048];
    json_payload(buf, sizeof buf);
    struct tb_msg *m = msg_new(buf, strlen(buf));
    struct tb_msg *t = pmd_frame(z, m);
    assert_ptr_not_equal(t, m);
    assert_ptr_equal(pmd_frame(z, m), t);          /* the same twin for every member */
    assert_int_equal(msg_frame(t)[0], 0xC1);       /* FIN + RSV1 + text */
    assert_true(t->len < m->len);
    unsigned char out[4096];
    size_t n = inflate_twin(t, out, sizeof out);
    assert_int_equal(n, m->len);
    assert_memory_equal(out, msg_payload(m), n);
    struct pmd_stats st = pmd_stats(z);
    assert_int_equal(st.frames, 1);
    assert_int_equal(st.bytes_in, m->len);
    assert_int_equal(st.bytes_out, t->len);
    /* the twin outlives the original while a queue holds it */
    msg_ref(t);
    msg_unref(m);
    assert_int_equal(inflate_twin(t, out, sizeof out), n);
    msg_unref(t);
    pmd_free(z);
}

static void test_small_control_and_incompressible_stay(void **state)
{
    (void)state;
    struct pmd *z = pmd_new();
    assert_int_equal(pmd_configure(z, 256, 6), 0);
    struct tb_msg *small = msg_new("{\"type\":\"pong\"}", 15);
    assert_ptr_equal(pmd_frame(z, small), small);
    char buf[1024];
    memset(buf, 'a', sizeof buf);
    struct tb_msg *ping = msg_new_control(0x9, "tb", 2);
    assert_ptr_equal(pmd_frame(z, ping), ping);
    unsigned char noise[512];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 24);
    struct tb_msg *rnd = msg_new(noise, sizeof noise);
    assert_ptr_equal(pmd_frame(z, rnd), rnd);      /* not smaller: sent as it is */
    assert_int_equal(pmd_stats(z).frames, 0);
    /* a later min_bytes does not revisit a message already decided */
    assert_int_equal(pmd_configure(z, 0, 6), 0);
    assert_ptr_equal(pmd_frame(z, small), small);
    msg_unref(small);
    msg_unref(ping);
    msg_unref(rnd);
    pmd_free(z);
}

static void no_write(void *ud, struct conn *c)
{
    (void)ud;
    (void)c;
}

static void test_conn_queues_twins(void **state)
{
    (void)state;
    struct tb_stats st = {0};
    struct room_registry *rooms = room_registry_new();
    struct pmd *z = pmd_new();
    assert_int_equal(pmd_configure(z, 100, 1), 0);
    struct conn_env env = {&st, rooms, no_write, NULL, NULL, z};
    struct conn *plain = conn_new(&env, NULL, 1, 16, 1 << 20);
    struct conn *zc = conn_new(&env, NULL, 2, 16, 1 << 20);
    char buf[2048];
    json_payload(buf, sizeof buf);
    struct tb_msg *before = msg_new(buf, strlen(buf));
    conn_enqueue(zc, before, NULL, false);         /* queued before the handshake said so */
    assert_ptr_equal(conn_queue_frame(zc, 0), before);
    conn_set_deflate(zc);
    struct tb_msg *twin_before = conn_queue_frame(zc, 0);
    assert_ptr_not_equal(twin_before, before);
    assert_int_equal(zc->q_bytes, twin_before->len);
    struct tb_msg *m = msg_new(buf, strlen(buf));
    conn_enqueue(plain, m, NULL, false);
    conn_enqueue(zc, m, NULL, false);
    assert_ptr_equal(conn_queue_frame(plain, 0), m);
    assert_ptr_equal(conn_queue_frame(zc, 1), m->twin);
    msg_unref(before);
    msg_unref(m);                                  /* the queues keep what they hold */
    assert_int_equal(msg_frame(conn_queue_frame(zc, 1))[0], 0xC1);
    conn_free(plain);
    conn_free(zc);
    pmd_free(z);
    room_registry_free(rooms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twin_built_once_and_inflates),
        cmocka_unit_test(test_small_control_and_incompressible_stay),
        cmocka_unit_test(test_conn_queues_twins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
