/* Unit tests for fanout (bridge/fanout.c) on a whole bridge without sockets: envelopes
 * serialized once per (message, room) and shared by reference, seq per room, no room for a
 * message nobody gets or keeps, keep_last on join (one type and several types, oldest
 * first), shaped subscriptions sharing one projection per field list, control frames,
 * server.max_rooms and the join-state hook.
 *
 * Connections are opened with bridge_open(br, NULL, path): their frames stay in c->q
 * (nothing is written without a socket), so every test asserts the exact queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define EPOCH 0x5eedULL

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', send_queue_frames: 64}\n"
    "endpoints:\n"
    "  /ws/vehicle/{id}: {rooms: [\"vehicle:{id}\"]}\n"
    "  /ws/session/{sid}: {rooms: [\"session:{sid}\"]}\n"
    "  /ws/pair: {rooms: [\"pair:a\", \"pair:b\"]}\n"
    "  /ws/connect: {rooms: [], client_subscriptions: true}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/telemetry\", rooms: [\"vehicle:{id}\"], type: telemetry_update}\n"
    "  - {match: \"vehicle/{id}/state\", rooms: [\"vehicle:{id}\"], type: vehicle_state, keep_last: true}\n"
    "  - {match: \"session/{sid}/setup\", rooms: [\"session:{sid}\"], type: setup_update, keep_last: true}\n"
    "  - {match: \"session/{sid}/telemetry\", rooms: [\"session:{sid}\"], type: telemetry_update,\n"
    "     keep_last: true}\n"
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
#define STATE "vehicle/{id}/state"
#define SETUP "session/{sid}/setup"
#define STELE "session/{sid}/telemetry"

static void deliver(struct bridge *br, const char *room, const char *match, const char *data)
{
    fanout_deliver(br->fan, room, fixture_route(br, match), "vehicle/1/telemetry", data, strlen(data));
}

static struct conn *open_conn(struct bridge *br, const char *path)
{
    struct conn *c = bridge_open(br, NULL, path);
    assert_non_null(c);
    return c;
}

/* "data" of frame i equals the JSON 'want' (member order ignored). */
static void expect_data(const struct conn *c, uint32_t i, const char *want)
{
    cJSON *j = parse(c, i), *w = cJSON_Parse(want);
    assert_non_null(w);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    assert_non_null(d);
    if (!cJSON_Compare(d, w, true)) {
        char *got = cJSON_PrintUnformatted(d);
        print_error("data %s, want %s\n", got, want);
        free(got);
        fail();
    }
    cJSON_Delete(w);
    cJSON_Delete(j);
}

/* ---- serialize once ---------------------------------------------------------------- */

static void test_serialize_once(void **state)
{
    struct bridge *br = *state;
    struct conn *a = open_conn(br, "/ws/vehicle/1"), *b = open_conn(br, "/ws/vehicle/1");
    struct conn *other = open_conn(br, "/ws/vehicle/2");
    assert_int_equal(a->q_len, 1);
    assert_int_equal(b->q_len, 1);
    expect_frame(a, 0, "welcome", NULL, -1);
    uint64_t routed = br->st.routed;

    /* not canonical JSON on purpose: it must be embedded byte for byte */
    static const char data[] = "{\"speed\": 5.50, \"tags\":[ \"a\",\"b\" ],\"nested\":{\"x\":1e2}}";
    uint64_t before = tb_wall_ms();
    fanout_deliver(br->fan, "vehicle:1", fixture_route(br, TELE), "vehicle/1/telemetry", data, strlen(data));
    uint64_t after = tb_wall_ms();

    assert_int_equal(br->st.routed, routed + 1);
    assert_int_equal(a->q_len, 2);
    assert_int_equal(b->q_len, 2);
    assert_int_equal(other->q_len, 1);
    struct tb_msg *m = frame(a, 1);
    assert_ptr_equal(frame(b, 1), m);     /* one buffer, two references */
    assert_int_equal(m->refs, 2);         /* nothing else keeps it: no keep_last, no history */

    /* the envelope: exactly type, room, topic, seq, ts, data in this order */
    const char *text = (const char *)msg_payload(m);
    assert_int_equal(strlen(text), m->len);
    cJSON *j = parse(a, 1);
    static const char *const keys[] = {"type", "room", "topic", "seq", "ts", "data"};
    size_t n = 0;
    for (const cJSON *it = j->child; it; it = it->next, n++) {
        assert_true(n < 6);
        assert_string_equal(it->string, keys[n]);
    }
    assert_int_equal(n, 6);
    assert_string_equal(str_of(j, "type"), "telemetry_update");
    assert_string_equal(str_of(j, "room"), "vehicle:1");
    assert_string_equal(str_of(j, "topic"), "vehicle/1/telemetry");
    assert_int_equal((long)num_of(j, "seq"), 1);
    double ts = num_of(j, "ts");
    assert_true(ts >= (double)before && ts <= (double)after);
    cJSON_Delete(j);
    char tail[128];
    snprintf(tail, sizeof tail, ",\"data\":%s}", data);
    assert_true(strlen(text) > strlen(tail));
    assert_string_equal(text + strlen(text) - strlen(tail), tail);

    /* one message routed to two rooms (what the router hands over): one envelope per room */
    deliver(br, "vehicle:1", TELE, "{\"v\":2}");
    deliver(br, "vehicle:2", TELE, "{\"v\":2}");
    assert_int_equal(br->st.routed, routed + 3);
    assert_int_equal(a->q_len, 3);
    assert_int_equal(other->q_len, 2);
    assert_ptr_equal(frame(a, 2), frame(b, 2));
    assert_ptr_not_equal(frame(a, 2), frame(other, 1));
    expect_frame(a, 2, "telemetry_update", "vehicle:1", 2);
    expect_frame(other, 1, "telemetry_update", "vehicle:2", 1);

    bridge_close(br, a);
    bridge_close(br, b);
    bridge_close(br, other);
}

static void test_seq_per_room(void **state)
{
    struct bridge *br = *state;
    struct conn *a = open_conn(br, "/ws/vehicle/1"), *b = open_conn(br, "/ws/vehicle/2");
    const char *order[] = {"vehicle:1", "vehicle:1", "vehicle:2", "vehicle:1", "vehicle:2", "vehicle:1"};
    for (size_t i = 0; i < 6; i++)
        deliver(br, order[i], TELE, "{}");
    assert_int_equal(a->q_len, 1 + 4);
    assert_int_equal(b->q_len, 1 + 2);
    for (uint32_t i = 1; i <= 4; i++)
        expect_frame(a, i, "telemetry_update", "vehicle:1", (long)i);
    for (uint32_t i = 1; i <= 2; i++)
        expect_frame(b, i, "telemetry_update", "vehicle:2", (long)i);
    assert_int_equal(room_find(br->rooms, "vehicle:1")->seq, 4);
    assert_int_equal(room_find(br->rooms, "vehicle:2")->seq, 2);
    bridge_close(br, a);
    bridge_close(br, b);
    /* nothing kept: the rooms go with their last member */
    assert_null(room_find(br->rooms, "vehicle:1"));
    assert_null(room_find(br->rooms, "vehicle:2"));
}

/* ---- rooms that are not worth creating --------------------------------------------- */

static void test_no_room_for_nobody(void **state)
{
    struct bridge *br = *state;
    uint64_t routed = br->st.routed;
    size_t rooms = room_registry_count(br->rooms);

    deliver(br, "vehicle:9", TELE, "{\"speed\":1}");
    assert_null(room_find(br->rooms, "vehicle:9"));
    assert_int_equal(br->st.routed, routed);
    assert_int_equal(room_registry_count(br->rooms), rooms);

    /* a client pattern that does not match: the room is tried and released again */
    struct conn *p = open_conn(br, "/ws/connect");
    send_json(br, p, "{\"type\":\"subscribe\",\"rooms\":[\"other:*\"]}");
    assert_int_equal(p->q_len, 2);
    expect_frame(p, 1, "subscribed", NULL, -1);
    deliver(br, "vehicle:10", TELE, "{\"speed\":1}");
    assert_null(room_find(br->rooms, "vehicle:10"));
    assert_int_equal(br->st.routed, routed);
    assert_int_equal(p->q_len, 2);

    /* a matching pattern: the new room is joined before the message goes out */
    send_json(br, p, "{\"type\":\"subscribe\",\"rooms\":[\"vehicle:*\"]}");
    assert_int_equal(p->q_len, 3);
    expect_frame(p, 2, "subscribed", NULL, -1);
    deliver(br, "vehicle:11", TELE, "{\"speed\":2}");
    assert_non_null(room_find(br->rooms, "vehicle:11"));
    assert_int_equal(br->st.routed, routed + 1);
    assert_int_equal(p->q_len, 4);
    expect_frame(p, 3, "telemetry_update", "vehicle:11", 1);
    bridge_close(br, p);
    assert_null(room_find(br->rooms, "vehicle:11"));

    /* a route with keep_last makes the room worth keeping without members */
    deliver(br, "vehicle:9", STATE, "{\"mode\":\"race\"}");
    struct room *r = room_find(br->rooms, "vehicle:9");
    assert_non_null(r);
    assert_int_equal(r->seq, 1);
    assert_non_null(r->last);
    assert_int_equal(br->st.routed, routed + 2);
}

/* ---- keep_last ------------------------------------------------------------------------ */

static void test_keep_last_on_connect(void **state)
{
    struct bridge *br = *state;
    deliver(br, "vehicle:3", STATE, "{\"n\":1}");
    deliver(br, "vehicle:3", STATE, "{\"n\":2}");
    deliver(br, "vehicle:3", STATE, "{\"n\":3}");
    struct room *r = room_find(br->rooms, "vehicle:3");
    assert_non_null(r);
    assert_int_equal(r->n_lasts, 1);

    struct conn *c = open_conn(br, "/ws/vehicle/3");
    assert_int_equal(c->q_len, 2);
    expect_frame(c, 0, "welcome", NULL, -1);
    expect_frame(c, 1, "vehicle_state", "vehicle:3", 3);
    expect_data(c, 1, "{\"n\":3}");
    assert_ptr_equal(frame(c, 1), r->lasts[0].msg);   /* the kept buffer itself */

    /* a message of a route without keep_last does not replace it */
    deliver(br, "vehicle:3", TELE, "{\"speed\":9}");
    assert_int_equal(c->q_len, 3);
    expect_frame(c, 2, "telemetry_update", "vehicle:3", 4);
    struct conn *d = open_conn(br, "/ws/vehicle/3");
    assert_int_equal(d->q_len, 2);
    expect_frame(d, 1, "vehicle_state", "vehicle:3", 3);

    /* no state: the welcome frame only */
    struct conn *e = open_conn(br, "/ws/vehicle/4");
    assert_int_equal(e->q_len, 1);
    bridge_close(br, c);
    bridge_close(br, d);
    bridge_close(br, e);
}

static void test_keep_last_per_type(void **state)
{
    struct bridge *br = *state;
    deliver(br, "session:abc", SETUP, "{\"track\":\"monza\"}");   /* seq 1 */
    deliver(br, "session:abc", STELE, "{\"lap\":1}");             /* seq 2 */
    deliver(br, "session:abc", STELE, "{\"lap\":2}");             /* seq 3 */

    struct conn *c = open_conn(br, "/ws/session/abc");
    assert_int_equal(c->q_len, 3);
    expect_frame(c, 0, "welcome", NULL, -1);
    expect_frame(c, 1, "setup_update", "session:abc", 1);
    expect_data(c, 1, "{\"track\":\"monza\"}");
    expect_frame(c, 2, "telemetry_update", "session:abc", 3);
    expect_data(c, 2, "{\"lap\":2}");

    /* a new setup is now the newer one: telemetry first, then setup */
    deliver(br, "session:abc", SETUP, "{\"track\":\"spa\"}");     /* seq 4 */
    assert_int_equal(c->q_len, 4);
    expect_frame(c, 3, "setup_update", "session:abc", 4);
    struct conn *d = open_conn(br, "/ws/session/abc");
    assert_int_equal(d->q_len, 3);
    expect_frame(d, 1, "telemetry_update", "session:abc", 3);
    expect_frame(d, 2, "setup_update", "session:abc", 4);
    expect_data(d, 2, "{\"track\":\"spa\"}");
    bridge_close(br, c);
    bridge_close(br, d);
}

/* ---- shaped subscriptions ------------------------------------------------------------- */

/* Subscribes c to one room; the reply must be followed by exactly 'state' frames. */
static void subscribe(struct bridge *br, struct conn *c, const char *room, const char *fields_json,
                      uint32_t state)
{
    char req[256];
    if (fields_json)
        snprintf(req, sizeof req, "{\"type\":\"subscribe\",\"rooms\":[\"%s\"],\"fields\":%s}", room, fields_json);
    else
        snprintf(req, sizeof req, "{\"type\":\"subscribe\",\"rooms\":[\"%s\"]}", room);
    uint32_t before = c->q_len;
    send_json(br, c, req);
    assert_int_equal(c->q_len, before + 1 + state);
    cJSON *j = parse(c, before);
    assert_string_equal(str_of(j, "type"), "subscribed");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    const cJSON *rejected = cJSON_GetObjectItemCaseSensitive(j, "rejected");
    assert_int_equal(cJSON_GetArraySize(rooms), 1);
    assert_string_equal(cJSON_GetArrayItem(rooms, 0)->valuestring, room);
    assert_int_equal(cJSON_GetArraySize(rejected), 0);
    cJSON_Delete(j);
}

static void test_shaped_projection_shared(void **state)
{
    struct bridge *br = *state;
    struct conn *a = open_conn(br, "/ws/connect"), *b = open_conn(br, "/ws/connect");
    struct conn *c = open_conn(br, "/ws/connect"), *d = open_conn(br, "/ws/connect");
    struct conn *e = open_conn(br, "/ws/vehicle/1");   /* endpoint room, unshaped */
    subscribe(br, a, "vehicle:1", "[\"speed\",\"engine.temp\"]", 0);
    subscribe(br, b, "vehicle:1", "[\"engine.temp\",\"speed\",\"speed\"]", 0);  /* same list */
    subscribe(br, c, "vehicle:1", "[\"rpm\"]", 0);
    subscribe(br, d, "vehicle:1", NULL, 0);
    uint64_t routed = br->st.routed;

    static const char data[] = "{\"speed\":5,\"rpm\":3000,\"engine\":{\"temp\":90,\"oil\":3},\"gear\":2}";
    deliver(br, "vehicle:1", TELE, data);
    assert_int_equal(br->st.routed, routed + 1);   /* projections are not routings */
    struct conn *all[] = {a, b, c, d, e};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(all[i]->q_len, i < 4 ? 3 : 2);
    struct tb_msg *pa = frame(a, 2), *pb = frame(b, 2), *pc = frame(c, 2), *pd = frame(d, 2);
    struct tb_msg *orig = frame(e, 1);
    assert_ptr_equal(pa, pb);              /* one projection per field list */
    assert_ptr_not_equal(pa, orig);
    assert_ptr_not_equal(pc, pa);
    assert_ptr_not_equal(pc, orig);
    assert_ptr_equal(pd, orig);            /* unshaped: the original envelope */
    assert_int_equal(pa->refs, 2);
    assert_int_equal(pc->refs, 1);
    assert_int_equal(orig->refs, 2);

    expect_data(a, 2, "{\"speed\":5,\"engine\":{\"temp\":90}}");
    expect_data(c, 2, "{\"rpm\":3000}");
    expect_data(d, 2, data);
    for (size_t i = 0; i < 4; i++)
        expect_frame(all[i], 2, "telemetry_update", "vehicle:1", 1);
    cJSON *j = parse(a, 2);
    assert_string_equal(str_of(j, "topic"), "vehicle/1/telemetry");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(j, "ts"));
    cJSON_Delete(j);

    /* a shaped joiner gets the room's last value projected */
    deliver(br, "vehicle:5", STATE, "{\"speed\":7,\"rpm\":1}");
    subscribe(br, c, "vehicle:5", "[\"speed\"]", 1);
    assert_int_equal(c->q_len, 5);
    expect_frame(c, 4, "vehicle_state", "vehicle:5", 1);
    expect_data(c, 4, "{\"speed\":7}");

    for (size_t i = 0; i < 5; i++)
        bridge_close(br, all[i]);
}

/* ---- control frames ------------------------------------------------------------------- */

/* text == prefix <digits> suffix, the digits within [lo, hi] */
static void expect_ts_text(const char *text, const char *prefix, const char *suffix, uint64_t lo, uint64_t hi)
{
    size_t np = strlen(prefix), ns = strlen(suffix), n = strlen(text);
    if (n < np + ns + 1 || strncmp(text, prefix, np) != 0 || strcmp(text + n - ns, suffix) != 0)
        fail_msg("control frame %s, want %s<ts>%s", text, prefix, suffix);
    char *end;
    unsigned long long ts = strtoull(text + np, &end, 10);
    assert_ptr_equal(end, text + n - ns);
    assert_true(ts >= lo && ts <= hi);
}

static void test_control_frames(void **state)
{
    struct bridge *br = *state;
    cJSON *top = cJSON_Parse("{\"room\":\"r\",\"n\":1,\"ok\":true}");
    cJSON *data = cJSON_Parse("{\"a\":[1,2],\"s\":\"x\"}");
    uint64_t lo = tb_wall_ms();
    struct tb_msg *m = fanout_build_control(br->fan, "x", top, data);
    struct tb_msg *bare = fanout_build_control(br->fan, "x", NULL, NULL);
    struct tb_msg *only_data = fanout_build_control(br->fan, "q\"t", NULL, data);
    uint64_t hi = tb_wall_ms();
    assert_non_null(m);
    assert_non_null(bare);
    assert_non_null(only_data);
    expect_ts_text((const char *)msg_payload(m), "{\"type\":\"x\",\"ts\":",
                   ",\"room\":\"r\",\"n\":1,\"ok\":true,\"data\":{\"a\":[1,2],\"s\":\"x\"}}", lo, hi);
    expect_ts_text((const char *)msg_payload(bare), "{\"type\":\"x\",\"ts\":", "}", lo, hi);
    expect_ts_text((const char *)msg_payload(only_data), "{\"type\":\"q\\\"t\",\"ts\":",
                   ",\"data\":{\"a\":[1,2],\"s\":\"x\"}}", lo, hi);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->key, 0);   /* control frames never conflate */
    msg_unref(m);
    msg_unref(bare);
    msg_unref(only_data);

    /* sent to one connection: queued after what it had */
    struct conn *c = open_conn(br, "/ws/connect");
    fanout_send_frame(br->fan, c, "x", top, data);
    fanout_send_control(br->fan, c, "y", NULL);
    assert_int_equal(c->q_len, 3);
    expect_ts_text(text_of(c, 1), "{\"type\":\"x\",\"ts\":",
                   ",\"room\":\"r\",\"n\":1,\"ok\":true,\"data\":{\"a\":[1,2],\"s\":\"x\"}}", lo, tb_wall_ms());
    expect_ts_text(text_of(c, 2), "{\"type\":\"y\",\"ts\":", "}", lo, tb_wall_ms());
    bridge_close(br, c);
    cJSON_Delete(top);
    cJSON_Delete(data);
}

/* ---- server.max_rooms ----------------------------------------------------------------- */

static const char CONFIG_MAX_ROOMS[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', max_rooms: 2}\n"
    "endpoints:\n"
    "  /ws/vehicle/{id}: {rooms: [\"vehicle:{id}\"]}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/state\", rooms: [\"vehicle:{id}\"], type: vehicle_state, keep_last: true}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static void test_max_rooms(void **state)
{
    (void)state;
    struct bridge *br = make_bridge(CONFIG_MAX_ROOMS);
    struct room *r1 = fanout_room(br->fan, "r1");
    struct room *r2 = fanout_room(br->fan, "r2");
    assert_non_null(r1);
    assert_non_null(r2);
    assert_int_equal(br->st.rooms_refused, 0);
    assert_null(fanout_room(br->fan, "r3"));
    assert_int_equal(br->st.rooms_refused, 1);
    assert_null(room_find(br->rooms, "r3"));
    assert_int_equal(room_registry_count(br->rooms), 2);
    /* existing rooms are still found, without counting */
    assert_ptr_equal(fanout_room(br->fan, "r1"), r1);
    assert_int_equal(br->st.rooms_refused, 1);

    /* a delivery that would create a room is refused too, and nothing is routed */
    fanout_deliver(br->fan, "vehicle:1", fixture_route(br, STATE), "vehicle/1/state", "{}", 2);
    assert_null(room_find(br->rooms, "vehicle:1"));
    assert_int_equal(br->st.rooms_refused, 2);
    assert_int_equal(br->st.routed, 0);
    /* into an existing one it goes */
    fanout_deliver(br->fan, "r1", fixture_route(br, STATE), "vehicle/1/state", "{}", 2);
    assert_int_equal(br->st.routed, 1);
    assert_int_equal(r1->seq, 1);

    /* a connection whose endpoint room cannot be had still gets its welcome, without it,
     * then an error frame naming the room (code room_limit) */
    struct conn *c = open_conn(br, "/ws/vehicle/1");
    assert_int_equal(br->st.rooms_refused, 3);
    assert_null(c->subs);
    assert_int_equal(c->q_len, 2);
    cJSON *w = parse(c, 0);
    assert_string_equal(str_of(w, "type"), "welcome");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(w, "data"), "rooms")), 0);
    cJSON_Delete(w);
    cJSON *e = parse(c, 1);
    assert_string_equal(str_of(e, "type"), "error");
    assert_string_equal(str_of(e, "code"), "room_limit");
    assert_string_equal(str_of(e, "room"), "vehicle:1");
    cJSON_Delete(e);
    bridge_close(br, c);
    bridge_free(br);
}

/* ---- join state hook ------------------------------------------------------------------ */

struct join_log {
    struct fanout *f;
    size_t calls;
    char rooms[8][32];
    uint32_t q_len_at[8];
    struct conn *conn[8];
};

static void on_join(void *ud, struct conn *c, struct sub *s)
{
    struct join_log *jl = ud;
    assert_true(jl->calls < 8);
    assert_ptr_equal(s->conn, c);
    snprintf(jl->rooms[jl->calls], sizeof jl->rooms[0], "%s", s->room->name);
    jl->q_len_at[jl->calls] = c->q_len;
    jl->conn[jl->calls] = c;
    jl->calls++;
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "room", s->room->name);
    fanout_send_frame(jl->f, c, "marker", top, NULL);
    cJSON_Delete(top);
}

static void test_join_state_hook(void **state)
{
    struct bridge *br = *state;
    struct join_log jl = {.f = br->fan};
    fanout_on_join_state(br->fan, on_join, &jl);
    deliver(br, "pair:a", STATE, "{\"k\":\"a1\"}");
    deliver(br, "pair:a", STATE, "{\"k\":\"a2\"}");
    deliver(br, "pair:b", STATE, "{\"k\":\"b1\"}");

    /* endpoint rooms in their listed order: each room's last value, then the hook */
    struct conn *c = open_conn(br, "/ws/pair");
    assert_int_equal(jl.calls, 2);
    assert_string_equal(jl.rooms[0], "pair:a");
    assert_string_equal(jl.rooms[1], "pair:b");
    assert_ptr_equal(jl.conn[0], c);
    assert_int_equal(jl.q_len_at[0], 2);   /* welcome, last of pair:a */
    assert_int_equal(jl.q_len_at[1], 4);   /* ..., marker, last of pair:b */
    assert_int_equal(c->q_len, 5);
    expect_frame(c, 0, "welcome", NULL, -1);
    expect_frame(c, 1, "vehicle_state", "pair:a", 2);
    expect_frame(c, 2, "marker", "pair:a", -1);
    expect_frame(c, 3, "vehicle_state", "pair:b", 1);
    expect_frame(c, 4, "marker", "pair:b", -1);

    /* a room without last values: the hook still runs, after the reply */
    struct conn *s = open_conn(br, "/ws/connect");
    assert_int_equal(jl.calls, 2);   /* no endpoint rooms: no join */
    send_json(br, s, "{\"type\":\"subscribe\",\"rooms\":[\"empty:1\"]}");
    assert_int_equal(jl.calls, 3);
    assert_string_equal(jl.rooms[2], "empty:1");
    assert_int_equal(s->q_len, 3);
    expect_frame(s, 1, "subscribed", NULL, -1);
    expect_frame(s, 2, "marker", "empty:1", -1);

    /* removed: last values only */
    fanout_on_join_state(br->fan, NULL, NULL);
    struct conn *d = open_conn(br, "/ws/pair");
    assert_int_equal(jl.calls, 3);
    assert_int_equal(d->q_len, 3);
    expect_frame(d, 1, "vehicle_state", "pair:a", 2);
    expect_frame(d, 2, "vehicle_state", "pair:b", 1);
    bridge_close(br, c);
    bridge_close(br, s);
    bridge_close(br, d);
}

/* ---- authorizer ------------------------------------------------------------------- */

static bool deny_b(void *ud, const struct conn *c, const char *room)
{
    (void)c;
    (*(int *)ud)++;
    return strcmp(room, "pair:b") != 0;
}

/* The hook access control plugs into: a refused room is neither joined from an endpoint
 * nor by a subscribe (rejected with forbidden), and a client never gets its frames. */
static void test_authorizer(void **state)
{
    struct bridge *br = *state;
    int asked = 0;
    fanout_set_authorizer(br->fan, deny_b, &asked);
    struct conn *p = open_conn(br, "/ws/pair");
    assert_non_null(conn_find_sub(p, "pair:a"));
    assert_null(conn_find_sub(p, "pair:b"));
    struct conn *c = open_conn(br, "/ws/connect");
    uint32_t before = c->q_len;
    send_json(br, c, "{\"type\":\"subscribe\",\"rooms\":[\"pair:a\",\"pair:b\"]}");
    assert_int_equal(c->q_len, before + 1);
    cJSON *j = parse(c, before);
    assert_string_equal(str_of(j, "type"), "subscribed");
    const cJSON *rejected = cJSON_GetObjectItemCaseSensitive(j, "rejected");
    assert_int_equal(cJSON_GetArraySize(rejected), 1);
    assert_string_equal(str_of(cJSON_GetArrayItem(rejected, 0), "room"), "pair:b");
    assert_string_equal(str_of(cJSON_GetArrayItem(rejected, 0), "code"), "forbidden");
    cJSON_Delete(j);
    uint32_t qp = p->q_len, qc = c->q_len;
    deliver(br, "pair:b", TELE, "{\"x\":1}");
    assert_int_equal(p->q_len, qp);
    assert_int_equal(c->q_len, qc);
    assert_true(asked >= 4);
    fanout_set_authorizer(br->fan, NULL, NULL);
    assert_true(fanout_may_join(br->fan, c, "pair:b"));
    bridge_close(br, p);
    bridge_close(br, c);
}

/* ---- delivery: once (issue 15, point 2) ------------------------------------------------- */

static void deliver_pair(struct bridge *br, const char *match)
{
    static const char *const rooms[] = {"pair:a", "pair:b"};
    fanout_message_begin(br->fan, 2);
    fanout_deliver_rooms(br->fan, fixture_route(br, match), NULL, rooms, 2, "vehicle/1/telemetry", "{}", 2);
}

static void test_delivery_once(void **state)
{
    struct bridge *br = *state;
    struct conn *both = open_conn(br, "/ws/pair"), *c = open_conn(br, "/ws/connect");
    send_json(br, c, "{\"type\":\"subscribe\",\"rooms\":[\"pair:b\"]}");
    assert_int_equal(both->q_len, 1);
    assert_int_equal(c->q_len, 2);
    deliver_pair(br, TELE);
    assert_int_equal(both->q_len, 2);            /* once, through its first room */
    cJSON *j = parse(both, 1);
    char *rooms = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "rooms"));
    assert_string_equal(rooms, "[\"pair:a\",\"pair:b\"]");
    free(rooms);
    cJSON_Delete(j);
    assert_int_equal(c->q_len, 3);               /* the member of one room gets its room's frame */
    expect_frame(c, 2, "telemetry_update", "pair:b", 1);
    /* another message is another delivery; another type of the same message too */
    deliver_pair(br, TELE);
    assert_int_equal(both->q_len, 3);
    static const char *const a[] = {"pair:a"}, *const b[] = {"pair:b"};
    fanout_message_begin(br->fan, 2);
    fanout_deliver_rooms(br->fan, fixture_route(br, TELE), NULL, a, 1, "t", "{}", 2);
    fanout_deliver_rooms(br->fan, fixture_route(br, STATE), NULL, b, 1, "t", "{}", 2);
    assert_int_equal(both->q_len, 5);
    assert_null(strstr(text_of(both, 3), "\"rooms\""));   /* a route of one room names none */
    /* delivery: per_room, the old behaviour */
    fanout_set_delivery_once(br->fan, false);
    deliver_pair(br, TELE);
    assert_int_equal(both->q_len, 7);
    expect_frame(both, 5, "telemetry_update", "pair:a", -1);
    expect_frame(both, 6, "telemetry_update", "pair:b", -1);
    assert_null(strstr(text_of(both, 5), "\"rooms\""));
    bridge_close(br, both);
    bridge_close(br, c);
}

/* ---- keyed snapshots (issue 15, point 1) ----------------------------------------------- */

static const char POOL_CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', send_queue_frames: 64}\n"
    "endpoints:\n"
    "  /ws/pool: {rooms: [pool]}\n"
    "routes:\n"
    "  - {match: \"fleet/{id}\", rooms: [pool], type: vehicle_update, keep_last: per_topic,\n"
    "     keep_last_max: 20000, slow_client: disconnect}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static void publish_vehicle(struct bridge *br, unsigned id, unsigned value)
{
    char topic[32], data[32], key[64];
    snprintf(topic, sizeof topic, "fleet/%u", id);
    snprintf(data, sizeof data, "{\"v\":%u}", value);
    snprintf(key, sizeof key, "vehicle_update\x1f%s", topic);
    fanout_deliver_keyed(br->fan, "pool", fixture_route(br, "fleet/{id}"), key, topic, data, strlen(data));
}

/* What a client read: the newest value per vehicle, and the seqs in order. */
struct reader {
    long seen[10100];
    long last_seq;
    size_t frames;
};

/* Takes every queued frame off c as the writer would, checking seq order. */
static void read_all(struct conn *c, struct reader *rd)
{
    while (c->q_len) {
        struct tb_msg *m = conn_queue_pop(c);
        cJSON *j = cJSON_ParseWithLength((const char *)msg_payload(m), m->len);
        msg_unref(m);
        assert_non_null(j);
        if (!strcmp(str_of(j, "type"), "vehicle_update")) {
            long seq = (long)num_of(j, "seq");
            assert_true(seq > rd->last_seq);       /* no duplicate, never backwards */
            rd->last_seq = seq;
            unsigned id = (unsigned)atoi(str_of(j, "topic") + 6);
            assert_true(id < 10100);
            rd->seen[id] = (long)num_of(cJSON_GetObjectItemCaseSensitive(j, "data"), "v");
            rd->frames++;
        }
        cJSON_Delete(j);
    }
    conn_admit_pending(c);
}

/* A joiner of a room holding 10,000 vehicles gets all of them, paced: its queue (64
 * frames, slow_client: disconnect) never holds more than half, it is not closed, live
 * updates during the snapshot come once with their newest value and in seq order, and a
 * member already live gets every update at once. */
static void test_keyed_snapshot_paced(void **state)
{
    (void)state;
    struct bridge *br = make_bridge(POOL_CONFIG);
    struct reader *live = calloc(1, sizeof *live), *joiner = calloc(1, sizeof *joiner);
    struct conn *old = open_conn(br, "/ws/pool");
    read_all(old, live);
    for (unsigned id = 0; id < 10000; id++) {
        publish_vehicle(br, id, 1);
        read_all(old, live);
    }
    assert_int_equal(room_keyed_count(room_find(br->rooms, "pool")), 10000);

    struct conn *c = open_conn(br, "/ws/pool");
    expect_frame(c, 0, "welcome", NULL, -1);
    assert_int_equal(c->q_len, 32);
    unsigned value = 2;
    while (c->n_snapping) {
        assert_true(c->q_len <= 32);
        read_all(c, joiner);
        /* live traffic while the snapshot runs: old vehicles, and new ones */
        publish_vehicle(br, (value * 7919u) % 10000u, value);
        if (value % 50 == 0)
            publish_vehicle(br, 10000 + value / 50, value);
        value++;
        uint32_t before = (uint32_t)live->frames;
        read_all(old, live);
        assert_true(live->frames > before);     /* the live member is not held back */
    }
    read_all(c, joiner);
    assert_false(conn_has_backlog(c));
    assert_false(c->closing);
    for (unsigned id = 0; id < 10100; id++)
        assert_int_equal(joiner->seen[id], live->seen[id]);   /* every vehicle, newest value */
    assert_true(joiner->frames >= 10000);
    /* then live: one frame per update */
    size_t before = joiner->frames;
    publish_vehicle(br, 5, 99999);
    read_all(c, joiner);
    assert_int_equal(joiner->frames, before + 1);
    assert_int_equal(joiner->seen[5], 99999);
    bridge_close(br, c);
    bridge_close(br, old);
    free(live);
    free(joiner);
    bridge_free(br);
}

/* A joiner that leaves mid-snapshot leaves nothing behind (ASan checks the cursor). */
static void test_keyed_snapshot_leave(void **state)
{
    (void)state;
    struct bridge *br = make_bridge(POOL_CONFIG);
    for (unsigned id = 0; id < 500; id++)
        publish_vehicle(br, id, 1);
    struct conn *c = open_conn(br, "/ws/pool");
    assert_true(conn_has_backlog(c));
    bridge_close(br, c);
    publish_vehicle(br, 1, 2);   /* moves the entry the cursor stood near */
    struct room *room = room_find(br->rooms, "pool");
    assert_int_equal(room_keyed_count(room), 500);
    assert_int_equal(room->keyed->snaps.count, 0);
    bridge_free(br);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serialize_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_per_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_room_for_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_last_on_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_last_per_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shaped_projection_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_frames, setup, teardown),
        cmocka_unit_test(test_max_rooms),
        cmocka_unit_test_setup_teardown(test_join_state_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorizer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_once, setup, teardown),
        cmocka_unit_test(test_keyed_snapshot_paced),
        cmocka_unit_test(test_keyed_snapshot_leave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
