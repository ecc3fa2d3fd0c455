/* Unit tests for router: a message's (route, room) deliveries under a config loaded from
 * YAML text; route order, room rendering (captures, payload fields, defaults), duplicate
 * rooms, 'when' filters, non-JSON payloads and non_json: drop, unrenderable rooms, the
 * counters, and reuse of the output struct. Nothing is delivered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "router.h"
#include "stats.h"

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1'}\n"
    "endpoints:\n"
    "  /ws: {rooms: [personal]}\n"
    "routes:\n"
    /* 0: a capture, a payload field with a default, and the capture room again */
    "  - match: vehicle/{id}/telemetry\n"
    "    rooms: [\"vehicle:{id}\", \"{payload.simulation_mode|personal}\", \"vehicle:{id}\"]\n"
    "    rooms_allowed: [personal, fleet]\n"
    "    type: telemetry_update\n"
    /* 1: the same topic, filtered */
    "  - match: vehicle/{id}/telemetry\n"
    "    rooms: [hot, \"hot:{id}\"]\n"
    "    when: speed > 100\n"
    "    type: hot_update\n"
    /* 2, 3: one topic, non-JSON dropped by the first route only */
    "  - match: vehicle/{id}/raw\n"
    "    rooms: [\"raw:{id}\"]\n"
    "    non_json: drop\n"
    "  - match: vehicle/{id}/raw\n"
    "    rooms: [\"rawstr:{id}\"]\n"
    /* 4: a payload field without default */
    "  - match: driver/{d}\n"
    "    rooms: [\"team:{payload.team}\", \"driver:{d}\"]\n"
    "    rooms_allowed: [\"team:*\"]\n"
    /* 5: a topic whose only route filters everything out */
    "  - match: alarm/{id}\n"
    "    rooms: [alarms]\n"
    "    when: level > 3\n";

static struct tb_config *cfg;

static int group_setup(void **state)
{
    log_set_level(TB_LOG_ERROR);
    struct config_diag d = {0};
    cfg = config_load_string("t.yaml", CONFIG, sizeof CONFIG - 1, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    config_diag_free(&d);
    return cfg && cfg->n_routes == 6 ? 0 : -1;
}

static int group_teardown(void **state)
{
    config_unref(cfg);
    cfg = NULL;
    return 0;
}

/* Routes one message with fresh counters into 'out'; returns the count. */
static size_t route(const char *topic, const char *payload, struct router_out *out,
                    struct tb_stats *st)
{
    struct inbound in;
    inbound_init(&in, topic, payload, strlen(payload));
    size_t n = router_route(cfg, &in, out, st);
    inbound_free(&in);
    assert_int_equal(n, out->n);
    return n;
}

static void expect_delivery(const struct router_out *out, size_t k, size_t route_index,
                            const char *room)
{
    assert_true(k < out->n);
    assert_int_equal(out->v[k].route_index, route_index);
    assert_ptr_equal(out->v[k].route, &cfg->routes[route_index]);
    assert_string_equal(out->v[k].room, room);
}

static void expect_no_counts(const struct tb_stats *st)
{
    assert_int_equal(st->non_json, 0);
    assert_int_equal(st->unrouted, 0);
    assert_int_equal(st->room_errors, 0);
}

static void test_route_order_and_rooms(void **state)
{
    struct router_out out = {0};
    struct tb_stats st = {0};
    /* duplicate vehicle:7 rendered once; route 1's 'when' is false */
    assert_int_equal(route("vehicle/7/telemetry", "{\"simulation_mode\":\"fleet\",\"speed\":50}",
                           &out, &st), 2);
    expect_delivery(&out, 0, 0, "vehicle:7");
    expect_delivery(&out, 1, 0, "fleet");
    assert_string_equal(out.v[0].route->type, "telemetry_update");
    expect_no_counts(&st);

    /* no simulation_mode: the default; speed > 100: route 1 too, after route 0 */
    assert_int_equal(route("vehicle/7/telemetry", "{\"speed\":120.5}", &out, &st), 4);
    expect_delivery(&out, 0, 0, "vehicle:7");
    expect_delivery(&out, 1, 0, "personal");
    expect_delivery(&out, 2, 1, "hot");
    expect_delivery(&out, 3, 1, "hot:7");
    assert_string_equal(out.v[2].route->type, "hot_update");
    expect_no_counts(&st);

    /* a mode that is not a plain name cannot steer the message: the default applies */
    assert_int_equal(route("vehicle/42/telemetry", "{\"simulation_mode\":\"vehicle:1\"}", &out, &st), 2);
    expect_delivery(&out, 0, 0, "vehicle:42");
    expect_delivery(&out, 1, 0, "personal");

    /* the mode equal to the capture room: rendered once */
    assert_int_equal(route("vehicle/x/telemetry", "{\"simulation_mode\":\"vehicle:x\"}", &out, &st), 2);
    assert_int_equal(route("vehicle/fleet/telemetry", "{\"simulation_mode\":\"fleet\"}", &out, &st), 2);
    expect_delivery(&out, 0, 0, "vehicle:fleet");
    expect_delivery(&out, 1, 0, "fleet");
    expect_no_counts(&st);
    router_out_free(&out);
}

/* issue 14.4: the payload selects only among rooms_allowed; 14.11: a NUL selects nothing */
static void test_payload_rooms_allowed(void **state)
{
    (void)state;
    struct router_out out = {0};
    struct tb_stats st = {0};
    assert_int_equal(route("vehicle/7/telemetry", "{\"simulation_mode\":\"alerts\"}", &out, &st), 1);
    expect_delivery(&out, 0, 0, "vehicle:7");
    assert_int_equal(st.rooms_not_allowed, 1);
    assert_true(router_room_allowed(&cfg->routes[4], "team:a"));
    assert_false(router_room_allowed(&cfg->routes[4], "teamx"));
    assert_true(router_room_allowed(&cfg->routes[0], "fleet"));
    assert_false(router_room_allowed(&cfg->routes[0], "fleet2"));
    memset(&st, 0, sizeof st);
    assert_int_equal(route("vehicle/7/telemetry", "{\"simulation_mode\":\"fleet\\u0000x\"}", &out, &st), 1);
    expect_delivery(&out, 0, 0, "vehicle:7");
    assert_int_equal(st.room_errors, 1);
    memset(&st, 0, sizeof st);
    /* an escaped backslash before "u0000" is not a NUL */
    assert_int_equal(route("vehicle/7/telemetry", "{\"simulation_mode\":\"fleet\",\"n\":\"\\\\u0000\"}", &out, &st), 2);
    assert_int_equal(st.room_errors, 0);
    router_out_free(&out);
}

static void test_when_false_and_unrouted(void **state)
{
    struct router_out out = {0};
    struct tb_stats st = {0};
    /* matched but filtered: no delivery, and not unrouted */
    assert_int_equal(route("alarm/1", "{\"level\":1}", &out, &st), 0);
    expect_no_counts(&st);
    assert_int_equal(route("alarm/1", "{\"level\":4}", &out, &st), 1);
    expect_delivery(&out, 0, 5, "alarms");
    assert_int_equal(route("alarm/1", "{\"other\":9}", &out, &st), 0); /* field missing: false */
    expect_no_counts(&st);

    /* no route matches */
    assert_int_equal(route("other/x", "{\"a\":1}", &out, &st), 0);
    assert_int_equal(st.unrouted, 1);
    assert_int_equal(route("vehicle/7/telemetry/extra", "{}", &out, &st), 0);
    assert_int_equal(route("vehicle/7", "{}", &out, &st), 0);
    assert_int_equal(st.unrouted, 3);
    assert_int_equal(st.non_json, 0);
    assert_int_equal(st.room_errors, 0);
    router_out_free(&out);
}

static void test_non_json(void **state)
{
    struct router_out out = {0};
    struct tb_stats st = {0};
    struct inbound in;
    const char *text = "hello";
    inbound_init(&in, "vehicle/3/raw", text, strlen(text));
    assert_null(in.json);
    assert_int_equal(in.data_len, 7);
    assert_memory_equal(in.data, "\"hello\"", 7);
    /* route 2 drops non-JSON; route 3 delivers it as a string */
    assert_int_equal(router_route(cfg, &in, &out, &st), 1);
    expect_delivery(&out, 0, 3, "rawstr:3");
    assert_int_equal(st.non_json, 1);
    assert_int_equal(st.unrouted, 0);
    assert_int_equal(st.room_errors, 0);
    inbound_free(&in);

    /* JSON on the same topic: both routes */
    inbound_init(&in, "vehicle/3/raw", "{\"a\": 1}", 8);
    assert_non_null(in.json);
    assert_int_equal(in.data_len, 8);
    assert_memory_equal(in.data, "{\"a\": 1}", 8); /* the payload as is */
    assert_int_equal(router_route(cfg, &in, &out, &st), 2);
    expect_delivery(&out, 0, 2, "raw:3");
    expect_delivery(&out, 1, 3, "rawstr:3");
    assert_int_equal(st.non_json, 1);
    inbound_free(&in);

    /* quotes, a newline and trailing garbage: a JSON string with escapes */
    const char *odd = "{\"a\":1} x\n\"q\"";
    inbound_init(&in, "vehicle/3/raw", odd, strlen(odd));
    assert_null(in.json);
    assert_int_equal(in.data_len, strlen("\"{\\\"a\\\":1} x\\n\\\"q\\\"\""));
    assert_memory_equal(in.data, "\"{\\\"a\\\":1} x\\n\\\"q\\\"\"", in.data_len);
    assert_int_equal(router_route(cfg, &in, &out, &st), 1);
    assert_int_equal(st.non_json, 2);
    inbound_free(&in);

    /* non-JSON on a route with payload templates and a 'when': fields are missing, so the
     * default room applies and the filter is false */
    assert_int_equal(route("vehicle/9/telemetry", "speed=200", &out, &st), 2);
    expect_delivery(&out, 0, 0, "vehicle:9");
    expect_delivery(&out, 1, 0, "personal");
    assert_int_equal(st.non_json, 3);

    /* non-JSON on a topic no route matches: both counters */
    assert_int_equal(route("nowhere", "x", &out, &st), 0);
    assert_int_equal(st.non_json, 4);
    assert_int_equal(st.unrouted, 1);
    assert_int_equal(st.room_errors, 0);
    router_out_free(&out);
}

static void test_room_errors(void **state)
{
    struct router_out out = {0};
    struct tb_stats st = {0};
    assert_int_equal(route("driver/d1", "{\"team\":\"red\"}", &out, &st), 2);
    expect_delivery(&out, 0, 4, "team:red");
    expect_delivery(&out, 1, 4, "driver:d1");
    expect_no_counts(&st);

    /* team missing: that room is skipped and counted, the other one delivered */
    assert_int_equal(route("driver/d1", "{}", &out, &st), 1);
    expect_delivery(&out, 0, 4, "driver:d1");
    assert_int_equal(st.room_errors, 1);
    /* a value that is not a plain name counts as missing */
    assert_int_equal(route("driver/d2", "{\"team\":\"a b\"}", &out, &st), 1);
    expect_delivery(&out, 0, 4, "driver:d2");
    assert_int_equal(st.room_errors, 2);
    assert_int_equal(route("driver/d2", "{\"team\":{\"x\":1}}", &out, &st), 1);
    assert_int_equal(st.room_errors, 3);
    /* a number renders */
    assert_int_equal(route("driver/d3", "{\"team\":12}", &out, &st), 2);
    expect_delivery(&out, 0, 4, "team:12");
    assert_int_equal(st.room_errors, 3);
    assert_int_equal(st.unrouted, 0);
    assert_int_equal(st.non_json, 0);
    router_out_free(&out);
}

static void test_out_reused(void **state)
{
    struct router_out out = {0};
    struct tb_stats st = {0};
    assert_int_equal(route("vehicle/1/telemetry", "{\"speed\":200}", &out, &st), 4);
    struct route_delivery *v = out.v;
    size_t cap = out.cap;
    assert_non_null(v);
    assert_true(cap >= 4);
    /* fewer deliveries: n reset, no reallocation, the new ones from index 0 */
    assert_int_equal(route("driver/z", "{}", &out, &st), 1);
    assert_ptr_equal(out.v, v);
    assert_int_equal(out.cap, cap);
    expect_delivery(&out, 0, 4, "driver:z");
    /* none: n is 0, not the old count */
    assert_int_equal(route("none/such", "{}", &out, &st), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(route("vehicle/2/telemetry", "{\"speed\":200,\"simulation_mode\":\"fleet\"}",
                           &out, &st), 4);
    expect_delivery(&out, 0, 0, "vehicle:2");
    expect_delivery(&out, 1, 0, "fleet");
    expect_delivery(&out, 2, 1, "hot");
    expect_delivery(&out, 3, 1, "hot:2");
    assert_ptr_equal(out.v, v);
    router_out_free(&out);
    assert_null(out.v);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.cap, 0);
    router_out_free(&out); /* twice is harmless */
}

static void test_out_grows(void **state)
{
    /* more deliveries than the first allocation: a route with many rooms */
    static const char many[] =
        "mqtt: {host: 127.0.0.1, port: 1883}\n"
        "server: {listen: '127.0.0.1:1'}\n"
        "endpoints: {/ws: {rooms: [a]}}\n"
        "routes:\n"
        "  - {match: \"m/{x}\", rooms: [r0, r1, r2, r3, r4, r5, r6, \"a:{x}\", \"b:{x}\", r0, \"c:{x}\"]}\n"
        "  - {match: \"m/+\", rooms: [\"{topic}\"]}\n";
    struct config_diag d = {0};
    struct tb_config *c = config_load_string("t.yaml", many, sizeof many - 1, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    config_diag_free(&d);
    assert_non_null(c);
    struct router_out out = {0};
    struct tb_stats st = {0};
    struct inbound in;
    inbound_init(&in, "m/q", "1", 1);
    assert_int_equal(router_route(c, &in, &out, &st), 11);
    static const char *const want[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6",
                                       "a:q", "b:q", "c:q", "m/q"};
    for (size_t k = 0; k < 11; k++) {
        assert_string_equal(out.v[k].room, want[k]);
        assert_int_equal(out.v[k].route_index, k < 10 ? 0 : 1);
        assert_ptr_equal(out.v[k].route, &c->routes[k < 10 ? 0 : 1]);
    }
    assert_int_equal(st.non_json, 0); /* "1" is JSON */
    inbound_free(&in);
    router_out_free(&out);
    config_unref(c);
}

static void test_router_matches(void **state)
{
    assert_true(router_matches(cfg, "vehicle/7/telemetry"));
    assert_true(router_matches(cfg, "vehicle/7/raw"));
    assert_true(router_matches(cfg, "driver/x"));
    assert_true(router_matches(cfg, "alarm/1")); /* matches, whatever 'when' says */
    assert_false(router_matches(cfg, "vehicle/7"));
    assert_false(router_matches(cfg, "vehicle/7/telemetry/extra"));
    assert_false(router_matches(cfg, "vehicle/7/status"));
    assert_false(router_matches(cfg, "driver"));
    assert_false(router_matches(cfg, ""));
}

struct explained {
    char text[256];
    size_t n;
};

static void on_explain(size_t r, const char *room, void *ud)
{
    struct explained *e = ud;
    e->n += (size_t)snprintf(e->text + e->n, sizeof e->text - e->n, "%s%zu:%s", e->n ? "," : "",
                             r, room);
}

static void test_explain_counts_nothing(void **state)
{
    struct explained e = {{0}, 0};
    struct inbound in;
    const char *p = "{\"speed\":101}";
    inbound_init(&in, "vehicle/5/telemetry", p, strlen(p));
    router_explain(cfg, &in, on_explain, &e);
    assert_string_equal(e.text, "0:vehicle:5,0:personal,1:hot,1:hot:5");
    inbound_free(&in);
    /* a room error is not counted by explain (no stats) and does not crash */
    e.n = 0;
    e.text[0] = '\0';
    inbound_init(&in, "driver/k", "{}", 2);
    router_explain(cfg, &in, on_explain, &e);
    assert_string_equal(e.text, "4:driver:k");
    inbound_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_order_and_rooms),
        cmocka_unit_test(test_payload_rooms_allowed),
        cmocka_unit_test(test_when_false_and_unrouted),
        cmocka_unit_test(test_non_json),
        cmocka_unit_test(test_room_errors),
        cmocka_unit_test(test_out_reused),
        cmocka_unit_test(test_out_grows),
        cmocka_unit_test(test_router_matches),
        cmocka_unit_test(test_explain_counts_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
