/* Unit tests for resume after reconnect: room_history_since (room.c) on its own, and the
 * whole request path (subscribe with "since" and "epoch", subscribe.c's plan / execute)
 * on a bridge without sockets: replay of exactly the missed messages, nothing when up to
 * date, and a "resync" with its reason (history_gap, epoch_changed, seq_ahead,
 * history_expired, backlog_too_large) followed by the room's current state.
 *
 * Connections are opened with bridge_open(br, NULL, path): their frames stay in c->q, so
 * every test asserts the exact queue after the welcome frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "bridge.h"
#include "bridge_fixture.h"
#include "config.h"
#include "conn.h"
#include "fanout.h"
#include "log.h"
#include "msg.h"
#include "room.h"

#define EPOCH 0xfeed1234ULL

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', send_queue_frames: 64}\n"
    "endpoints:\n"
    "  /ws/connect: {rooms: [], client_subscriptions: true}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/telemetry\", rooms: [\"vehicle:{id}\"], type: telemetry_update,\n"
    "     keep_last: true, history: 5}\n"
    "  - {match: \"vehicle/{id}/live\", rooms: [\"vehicle:{id}\"], type: live_update}\n"
    "  - {match: \"fleet/{id}\", rooms: [\"fleet:{id}\"], type: fleet_update, history: 5}\n"
    "  - {match: \"ttl/{id}\", rooms: [\"ttl:{id}\"], type: ttl_update, keep_last: true, history: 5,\n"
    "     history_ttl: 10ms}\n"
    "  - {match: \"ttllong/{id}\", rooms: [\"ttllong:{id}\"], type: ttl_update, history: 5,\n"
    "     history_ttl: 1h}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

/* ---- helpers ----------------------------------------------------------------------- */

static struct bridge *make_bridge(const char *yaml)
{
    return fixture_bridge(yaml, EPOCH);
}

static int setup(void **state)
{
    log_set_level(TB_LOG_ERROR);
    *state = make_bridge(CONFIG);
    return 0;
}

static int teardown(void **state)
{
    bridge_free(*state);
    return 0;
}

#define TELE "vehicle/{id}/telemetry"
#define LIVE "vehicle/{id}/live"
#define FLEET "fleet/{id}"
#define TTL "ttl/{id}"
#define TTLLONG "ttllong/{id}"

/* Delivers n messages {"n":k} to room (k counts per call from 'first'). */
static void deliver_n(struct bridge *br, const char *room, const char *match, int first, int n)
{
    for (int k = first; k < first + n; k++) {
        char data[32];
        int len = snprintf(data, sizeof data, "{\"n\":%d}", k);
        fanout_deliver(br->fan, room, fixture_route(br, match), "vehicle/1/telemetry", data, (size_t)len);
    }
}

/* A connection on /ws/connect; its welcome frame's epoch copied to 'epoch' (17 bytes). */
static struct conn *open_conn(struct bridge *br, char *epoch)
{
    struct conn *c = bridge_open(br, NULL, "/ws/connect");
    assert_non_null(c);
    assert_int_equal(c->q_len, 1);
    cJSON *w = parse(c, 0);
    assert_string_equal(str_of(w, "type"), "welcome");
    const char *e = str_of(cJSON_GetObjectItemCaseSensitive(w, "data"), "epoch");
    assert_int_equal(strlen(e), 16);
    if (epoch)
        snprintf(epoch, 17, "%s", e);
    cJSON_Delete(w);
    return c;
}

/* Subscribes to 'room' with since {room: since} and 'epoch' (NULL: no epoch member). */
static void resume(struct bridge *br, struct conn *c, const char *room, long since, const char *epoch)
{
    char req[512], ep[64] = "";
    if (epoch)
        snprintf(ep, sizeof ep, ",\"epoch\":\"%s\"", epoch);
    snprintf(req, sizeof req, "{\"type\":\"subscribe\",\"rooms\":[\"%s\"],\"since\":{\"%s\":%ld}%s}",
             room, room, since, ep);
    send_json(br, c, req);
}

/* Frame i is the "subscribed" reply for 'room' (accepted). Returns its "resumed" count for
 * the room, or -1 when the room is not in "resumed" (it got a resync). */
static long expect_subscribed(const struct conn *c, uint32_t i, const char *room)
{
    cJSON *j = parse(c, i);
    assert_string_equal(str_of(j, "type"), "subscribed");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "rejected")), 0);
    bool found = false;
    for (const cJSON *r = rooms ? rooms->child : NULL; r; r = r->next)
        found |= cJSON_IsString(r) && strcmp(r->valuestring, room) == 0;
    assert_true(found);
    const cJSON *resumed = cJSON_GetObjectItemCaseSensitive(j, "resumed");
    assert_true(cJSON_IsObject(resumed));
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(resumed, room);
    long out = -1;
    if (n) {
        assert_true(cJSON_IsNumber(n));
        out = (long)n->valuedouble;
    }
    cJSON_Delete(j);
    return out;
}

static void expect_resync(const struct conn *c, uint32_t i, const char *room, const char *reason, long seq)
{
    cJSON *j = parse(c, i);
    assert_string_equal(str_of(j, "type"), "resync");
    assert_string_equal(str_of(j, "room"), room);
    assert_string_equal(str_of(j, "reason"), reason);
    assert_int_equal((long)num_of(j, "seq"), seq);
    cJSON_Delete(j);
}

/* No frame of the queue is a resync. */
static void expect_no_resync(const struct conn *c)
{
    for (uint32_t i = 0; i < c->q_len; i++) {
        cJSON *j = parse(c, i);
        assert_string_not_equal(str_of(j, "type"), "resync");
        cJSON_Delete(j);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- room_history_since on its own ---------------------------------------------------- */

static void push(struct room *room, uint64_t seq, uint64_t at)
{
    char text[48];
    int n = snprintf(text, sizeof text, "{\"seq\":%llu,\"pad\":\"%.*s\"}", (unsigned long long)seq,
                     (int)seq, "xxxxxxxxxx");   /* a different length per seq */
    struct tb_msg *m = msg_new(text, (size_t)n);
    room_history_push(room, m, seq, at);
    room->seq = seq;   /* what fanout_deliver does */
    msg_unref(m);
}

static long span_seq(const struct room *room, const struct room_span *sp, size_t k)
{
    cJSON *j = cJSON_Parse((const char *)msg_payload(room_span_msg(room, sp, k)));
    assert_non_null(j);
    long s = (long)num_of(j, "seq");
    cJSON_Delete(j);
    return s;
}

static void test_history_since(void **state)
{
    (void)state;
    struct room_registry *r = room_registry_new();
    struct room *room = room_get(r, "vehicle:1");
    struct room_span sp;
    /* no history at all */
    assert_int_equal(room_history_since(room, 0, 0, &sp), ROOM_SINCE_OK);
    assert_int_equal(sp.count, 0);
    room->seq = 3;
    assert_int_equal(room_history_since(room, 3, 0, &sp), ROOM_SINCE_OK);
    assert_int_equal(sp.count, 0);
    assert_int_equal(sp.bytes, 0);
    assert_int_equal(room_history_since(room, 2, 0, &sp), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(room, 4, 0, &sp), ROOM_SINCE_AHEAD);

    /* seq 4..10 into a ring of 5: it holds 6..10 and has wrapped */
    assert_int_equal(room_set_history_cap(room, 5), 0);
    for (uint64_t s = 4; s <= 10; s++)
        push(room, s, s * 10);          /* at 40 .. 100 */
    assert_int_equal(room->hist_len, 5);
    assert_int_not_equal(room->hist_head, 0);

    assert_int_equal(room_history_since(room, 10, 1000, &sp), ROOM_SINCE_OK);
    assert_int_equal(sp.count, 0);
    assert_int_equal(sp.bytes, 0);

    memset(&sp, 0xff, sizeof sp);
    assert_int_equal(room_history_since(room, 7, 1000, &sp), ROOM_SINCE_OK);
    assert_int_equal(sp.first, 2);
    assert_int_equal(sp.count, 3);
    size_t bytes = 0;
    for (size_t k = 0; k < sp.count; k++) {
        assert_int_equal(span_seq(room, &sp, k), 8 + (long)k);
        bytes += room_span_msg(room, &sp, k)->len;
    }
    assert_int_equal(sp.bytes, bytes);
    assert_int_equal(bytes, 3 * strlen("{\"seq\":8,\"pad\":\"\"}") + 8 + 9 + 1 + 10);

    assert_int_equal(room_history_since(room, 5, 1000, &sp), ROOM_SINCE_OK);   /* oldest kept */
    assert_int_equal(sp.first, 0);
    assert_int_equal(sp.count, 5);
    assert_int_equal(span_seq(room, &sp, 0), 6);
    assert_int_equal(span_seq(room, &sp, 4), 10);

    memset(&sp, 0xff, sizeof sp);
    assert_int_equal(room_history_since(room, 4, 1000, &sp), ROOM_SINCE_GAP);  /* 5 is gone */
    assert_int_equal(sp.count, 0);
    assert_int_equal(room_history_since(room, 0, 1000, &sp), ROOM_SINCE_GAP);
    memset(&sp, 0xff, sizeof sp);
    assert_int_equal(room_history_since(room, 11, 1000, &sp), ROOM_SINCE_AHEAD);
    assert_int_equal(sp.count, 0);

    /* history_ttl: only the oldest needed entry counts; at + ttl == now is still young */
    room->hist_ttl_ms = 25;
    assert_int_equal(room_history_since(room, 7, 105, &sp), ROOM_SINCE_OK);      /* 80 + 25 */
    assert_int_equal(sp.count, 3);
    memset(&sp, 0xff, sizeof sp);
    assert_int_equal(room_history_since(room, 7, 106, &sp), ROOM_SINCE_EXPIRED);
    assert_int_equal(sp.count, 0);
    assert_int_equal(room_history_since(room, 9, 106, &sp), ROOM_SINCE_OK);      /* 100 + 25 */
    assert_int_equal(sp.count, 1);
    assert_int_equal(room_history_since(room, 5, 86, &sp), ROOM_SINCE_EXPIRED);  /* 60 + 25 */
    assert_int_equal(room_history_since(room, 10, 100000, &sp), ROOM_SINCE_OK);  /* nothing missed */
    assert_int_equal(room_history_since(room, 4, 100000, &sp), ROOM_SINCE_GAP);  /* gap beats expiry */
    room->hist_ttl_ms = 0;

    /* a seq that never reached the history (a route without it) is a gap */
    push(room, 12, 120);                 /* 11 went elsewhere: the ring is 7,8,9,10,12 */
    assert_int_equal(room->seq, 12);
    assert_int_equal(room_history_since(room, 11, 1000, &sp), ROOM_SINCE_OK);
    assert_int_equal(sp.count, 1);
    assert_int_equal(span_seq(room, &sp, 0), 12);
    assert_int_equal(room_history_since(room, 10, 1000, &sp), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(room, 9, 1000, &sp), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(room, 8, 1000, &sp), ROOM_SINCE_GAP);
    room->seq = 13;                      /* 13 went elsewhere too, after the newest kept */
    assert_int_equal(room_history_since(room, 12, 1000, &sp), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(room, 11, 1000, &sp), ROOM_SINCE_GAP);
    assert_int_equal(room_history_since(room, 13, 1000, &sp), ROOM_SINCE_OK);
    room_registry_free(r);
}

/* ---- resume through the request path -------------------------------------------------- */

static void test_resume_replays_missed(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "vehicle:1", TELE, 1, 7);   /* seq 1..7, history holds 3..7 */
    struct room *room = room_find(br->rooms, "vehicle:1");
    assert_non_null(room);
    assert_int_equal(room->seq, 7);

    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    assert_string_equal(epoch, "00000000feed1234");
    resume(br, c, "vehicle:1", 4, epoch);
    assert_int_equal(c->q_len, 2 + 3);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), 3);
    struct room_span sp;
    assert_int_equal(room_history_since(room, 4, tb_now_ms(), &sp), ROOM_SINCE_OK);
    for (uint32_t k = 0; k < 3; k++) {
        expect_frame(c, 2 + k, "telemetry_update", "vehicle:1", 5 + (long)k);
        assert_ptr_equal(frame(c, 2 + k), room_span_msg(room, &sp, k));   /* no copy */
    }
    expect_no_resync(c);
    /* live messages follow, no gap, no duplicate */
    deliver_n(br, "vehicle:1", TELE, 8, 1);
    assert_int_equal(c->q_len, 6);
    expect_frame(c, 5, "telemetry_update", "vehicle:1", 8);

    /* the oldest entry the history holds: everything it has */
    struct conn *d = open_conn(br, epoch);
    resume(br, d, "vehicle:1", 3, epoch);     /* history now 4..8 */
    assert_int_equal(d->q_len, 2 + 5);
    assert_int_equal(expect_subscribed(d, 1, "vehicle:1"), 5);
    for (uint32_t k = 0; k < 5; k++)
        expect_frame(d, 2 + k, "telemetry_update", "vehicle:1", 4 + (long)k);
    expect_no_resync(d);

    /* a room without keep_last resumes the same way */
    deliver_n(br, "fleet:1", FLEET, 1, 4);
    struct conn *e = open_conn(br, epoch);
    resume(br, e, "fleet:1", 2, epoch);
    assert_int_equal(e->q_len, 2 + 2);
    assert_int_equal(expect_subscribed(e, 1, "fleet:1"), 2);
    expect_frame(e, 2, "fleet_update", "fleet:1", 3);
    expect_frame(e, 3, "fleet_update", "fleet:1", 4);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_close(br, e);
}

static void test_resume_up_to_date(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "vehicle:1", TELE, 1, 7);
    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    resume(br, c, "vehicle:1", 7, epoch);
    assert_int_equal(c->q_len, 2);             /* the reply only: not even the last value */
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), 0);
    deliver_n(br, "vehicle:1", TELE, 8, 1);
    assert_int_equal(c->q_len, 3);
    expect_frame(c, 2, "telemetry_update", "vehicle:1", 8);
    bridge_close(br, c);
}

static void test_resync_history_gap(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "vehicle:1", TELE, 1, 7);   /* history 3..7 */
    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    resume(br, c, "vehicle:1", 1, epoch);     /* needs 2..7 */
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), -1);
    expect_resync(c, 2, "vehicle:1", "history_gap", 7);
    expect_frame(c, 3, "telemetry_update", "vehicle:1", 7);   /* the last value */
    assert_ptr_equal(frame(c, 3), room_find(br->rooms, "vehicle:1")->lasts[0].msg);

    struct conn *z = open_conn(br, epoch);
    resume(br, z, "vehicle:1", 0, epoch);
    assert_int_equal(z->q_len, 4);
    expect_resync(z, 2, "vehicle:1", "history_gap", 7);
    expect_frame(z, 3, "telemetry_update", "vehicle:1", 7);

    /* without keep_last: the resync and nothing else */
    deliver_n(br, "fleet:1", FLEET, 1, 7);
    struct conn *d = open_conn(br, epoch);
    resume(br, d, "fleet:1", 1, epoch);
    assert_int_equal(d->q_len, 3);
    assert_int_equal(expect_subscribed(d, 1, "fleet:1"), -1);
    expect_resync(d, 2, "fleet:1", "history_gap", 7);

    /* a room that also gets messages of a route without history: the missed one is a gap */
    struct conn *member = open_conn(br, epoch);      /* live_update is only seq'd with members */
    send_json(br, member, "{\"type\":\"subscribe\",\"rooms\":[\"vehicle:2\"]}");
    deliver_n(br, "vehicle:2", TELE, 1, 2);          /* 1, 2 */
    deliver_n(br, "vehicle:2", LIVE, 3, 1);          /* 3: not in history */
    deliver_n(br, "vehicle:2", TELE, 4, 1);          /* 4 */
    assert_int_equal(room_find(br->rooms, "vehicle:2")->seq, 4);
    struct conn *g = open_conn(br, epoch);
    resume(br, g, "vehicle:2", 2, epoch);
    assert_int_equal(g->q_len, 4);
    expect_resync(g, 2, "vehicle:2", "history_gap", 4);
    expect_frame(g, 3, "telemetry_update", "vehicle:2", 4);
    struct conn *h = open_conn(br, epoch);
    resume(br, h, "vehicle:2", 3, epoch);            /* only 4 missed: it is there */
    assert_int_equal(h->q_len, 3);
    assert_int_equal(expect_subscribed(h, 1, "vehicle:2"), 1);
    expect_frame(h, 2, "telemetry_update", "vehicle:2", 4);
    expect_no_resync(h);

    bridge_close(br, c);
    bridge_close(br, z);
    bridge_close(br, d);
    bridge_close(br, member);
    bridge_close(br, g);
    bridge_close(br, h);
}

static void test_resync_epoch_changed(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "vehicle:1", TELE, 1, 7);
    struct conn *c = open_conn(br, NULL);
    resume(br, c, "vehicle:1", 6, "0000000000000000");   /* another bridge's */
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), -1);
    expect_resync(c, 2, "vehicle:1", "epoch_changed", 7);
    expect_frame(c, 3, "telemetry_update", "vehicle:1", 7);

    struct conn *d = open_conn(br, NULL);
    resume(br, d, "vehicle:1", 6, NULL);                 /* no epoch at all */
    assert_int_equal(d->q_len, 4);
    expect_resync(d, 2, "vehicle:1", "epoch_changed", 7);
    expect_frame(d, 3, "telemetry_update", "vehicle:1", 7);

    struct conn *e = open_conn(br, NULL);
    resume(br, e, "vehicle:1", 6, "00000000FEED1234");   /* the epoch is compared as sent */
    assert_int_equal(e->q_len, 4);
    expect_resync(e, 2, "vehicle:1", "epoch_changed", 7);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_close(br, e);
}

static void test_resync_seq_ahead(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "vehicle:1", TELE, 1, 7);
    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    resume(br, c, "vehicle:1", 8, epoch);
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), -1);
    expect_resync(c, 2, "vehicle:1", "seq_ahead", 7);
    expect_frame(c, 3, "telemetry_update", "vehicle:1", 7);

    /* a room that does not exist (forgotten): seq 0, nothing to send after the resync */
    struct conn *d = open_conn(br, epoch);
    resume(br, d, "vehicle:77", 5, epoch);
    assert_int_equal(d->q_len, 3);
    expect_resync(d, 2, "vehicle:77", "seq_ahead", 0);
    bridge_close(br, c);
    bridge_close(br, d);
}

static void test_resync_history_expired(void **state)
{
    struct bridge *br = *state;
    deliver_n(br, "ttl:1", TTL, 1, 3);           /* history_ttl: 10ms */
    deliver_n(br, "ttllong:1", TTLLONG, 1, 3);   /* history_ttl: 1h */
    struct room *room = room_find(br->rooms, "ttl:1");
    assert_non_null(room);
    assert_int_equal(room->hist_ttl_ms, 10);
    assert_int_equal(room->hist_len, 3);
    sleep_ms(30);

    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    resume(br, c, "ttl:1", 1, epoch);
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "ttl:1"), -1);
    expect_resync(c, 2, "ttl:1", "history_expired", 3);
    expect_frame(c, 3, "ttl_update", "ttl:1", 3);   /* keep_last does not expire */

    /* up to date: nothing missed, so nothing expired */
    struct conn *d = open_conn(br, epoch);
    resume(br, d, "ttl:1", 3, epoch);
    assert_int_equal(d->q_len, 2);
    assert_int_equal(expect_subscribed(d, 1, "ttl:1"), 0);

    /* the same age under a long ttl replays */
    struct conn *e = open_conn(br, epoch);
    resume(br, e, "ttllong:1", 1, epoch);
    assert_int_equal(e->q_len, 4);
    assert_int_equal(expect_subscribed(e, 1, "ttllong:1"), 2);
    expect_frame(e, 2, "ttl_update", "ttllong:1", 2);
    expect_frame(e, 3, "ttl_update", "ttllong:1", 3);

    /* the sweep drops them; then the history no longer reaches back */
    assert_int_equal(room_history_expire(room, tb_now_ms()), 3);
    struct conn *f = open_conn(br, epoch);
    resume(br, f, "ttl:1", 2, epoch);
    assert_int_equal(f->q_len, 4);
    expect_resync(f, 2, "ttl:1", "history_gap", 3);
    expect_frame(f, 3, "ttl_update", "ttl:1", 3);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_close(br, e);
    bridge_close(br, f);
}

static const char CONFIG_SMALL_QUEUE[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', send_queue_frames: 6}\n"
    "endpoints:\n"
    "  /ws/connect: {rooms: [], client_subscriptions: true}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/telemetry\", rooms: [\"vehicle:{id}\"], type: telemetry_update,\n"
    "     keep_last: true, history: 8}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static void test_resync_backlog_frames(void **state)
{
    (void)state;
    struct bridge *br = make_bridge(CONFIG_SMALL_QUEUE);
    deliver_n(br, "vehicle:1", TELE, 1, 6);   /* history 1..6 */
    char epoch[17];

    /* welcome + reply + 5 missed = 7 > 6 frames */
    struct conn *c = open_conn(br, epoch);
    resume(br, c, "vehicle:1", 1, epoch);
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), -1);
    expect_resync(c, 2, "vehicle:1", "backlog_too_large", 6);
    expect_frame(c, 3, "telemetry_update", "vehicle:1", 6);

    /* welcome + reply + 4 missed = 6: fits exactly */
    struct conn *d = open_conn(br, epoch);
    resume(br, d, "vehicle:1", 2, epoch);
    assert_int_equal(d->q_len, 6);
    assert_int_equal(expect_subscribed(d, 1, "vehicle:1"), 4);
    for (uint32_t k = 0; k < 4; k++)
        expect_frame(d, 2 + k, "telemetry_update", "vehicle:1", 3 + (long)k);
    expect_no_resync(d);

    /* two rooms in one request share the queue: the second one does not fit any more */
    deliver_n(br, "vehicle:2", TELE, 1, 5);
    struct conn *e = open_conn(br, epoch);
    send_json(br, e, "{\"type\":\"subscribe\",\"rooms\":[\"vehicle:1\",\"vehicle:2\"],"
                     "\"since\":{\"vehicle:1\":4,\"vehicle:2\":2},\"epoch\":\"00000000feed1234\"}");
    assert_int_equal(e->q_len, 6);
    assert_int_equal(expect_subscribed(e, 1, "vehicle:1"), 2);
    assert_int_equal(expect_subscribed(e, 1, "vehicle:2"), -1);
    expect_frame(e, 2, "telemetry_update", "vehicle:1", 5);
    expect_frame(e, 3, "telemetry_update", "vehicle:1", 6);
    expect_resync(e, 4, "vehicle:2", "backlog_too_large", 5);
    expect_frame(e, 5, "telemetry_update", "vehicle:2", 5);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_close(br, e);
    bridge_free(br);
}

static const char CONFIG_SMALL_BYTES[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', send_queue_frames: 64, send_queue_bytes: 4k}\n"
    "endpoints:\n"
    "  /ws/connect: {rooms: [], client_subscriptions: true}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/telemetry\", rooms: [\"vehicle:{id}\"], type: telemetry_update,\n"
    "     keep_last: true, history: 8}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static void test_resync_backlog_bytes(void **state)
{
    (void)state;
    struct bridge *br = make_bridge(CONFIG_SMALL_BYTES);
    char data[1001];
    memset(data, 'x', sizeof data - 1);
    data[0] = '"';
    data[sizeof data - 2] = '"';
    data[sizeof data - 1] = '\0';             /* a 1000-byte JSON string */
    for (int i = 0; i < 6; i++)
        fanout_deliver(br->fan, "vehicle:1", fixture_route(br, TELE), "vehicle/1/telemetry", data, strlen(data));
    struct room *room = room_find(br->rooms, "vehicle:1");
    size_t one = room->lasts[0].msg->len;

    char epoch[17];
    struct conn *c = open_conn(br, epoch);
    size_t budget = br->cfg->server.send_queue_bytes - c->q_bytes - 1024;   /* the reply's share */
    assert_true(one * 2 <= budget && one * 3 > budget);   /* 2 missed fit, 3 do not */

    resume(br, c, "vehicle:1", 3, epoch);    /* 3 missed */
    assert_int_equal(c->q_len, 4);
    assert_int_equal(expect_subscribed(c, 1, "vehicle:1"), -1);
    expect_resync(c, 2, "vehicle:1", "backlog_too_large", 6);
    expect_frame(c, 3, "telemetry_update", "vehicle:1", 6);

    struct conn *d = open_conn(br, epoch);
    resume(br, d, "vehicle:1", 4, epoch);    /* 2 missed */
    assert_int_equal(d->q_len, 4);
    assert_int_equal(expect_subscribed(d, 1, "vehicle:1"), 2);
    expect_frame(d, 2, "telemetry_update", "vehicle:1", 5);
    expect_frame(d, 3, "telemetry_update", "vehicle:1", 6);
    expect_no_resync(d);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_free(br);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_since),
        cmocka_unit_test_setup_teardown(test_resume_replays_missed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_up_to_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_history_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_epoch_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_seq_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_history_expired, setup, teardown),
        cmocka_unit_test(test_resync_backlog_frames),
        cmocka_unit_test(test_resync_backlog_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
