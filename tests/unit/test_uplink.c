/* Unit tests for uplink (the pure half of client publishes): rule lookup, the checks of a
 * request against its rule (data shape, allowed and required fields, stamped keys, size,
 * retain, topic values with '/', '+', '#', NUL, empty, spaces), the payload the bridge
 * builds (sender, reply_to, correlation), and the token bucket. Config from YAML text. */
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
#include "uplink.h"

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883, client_id: tb-unit}\n"
    "server: {listen: '127.0.0.1:1'}\n"
    "endpoints:\n"
    "  /ws/control/{vehicle_id}/{user_id}:\n"
    "    rooms: []\n"
    "    identity: user_id\n"
    "    publish:\n"
    "      - type: command\n"
    "        topic: \"vehicle/{vehicle_id}/cmd/{data.command}\"\n"
    "        max_bytes: 64\n"
    "        fields: [command, args]\n"
    "        required: [command]\n"
    "        reply: {timeout: 2s}\n"
    "      - type: pin\n"
    "        topic: \"pins/{user_id}\"\n"
    "        retain: true\n"
    "        rate: {per_second: 2}\n"
    "  /ws/plain: {rooms: []}\n";

static struct tb_config *cfg;
static const struct cfg_endpoint *ep;
static struct topic_match path;

static int group_setup(void **state)
{
    (void)state;
    log_set_level(TB_LOG_ERROR);
    struct config_diag d = {0};
    cfg = config_load_string("t.yaml", CONFIG, sizeof CONFIG - 1, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    config_diag_free(&d);
    if (!cfg)
        return -1;
    ep = config_find_endpoint(cfg, "/ws/control/v1/alice", &path);
    return ep ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    config_unref(cfg);
    return 0;
}

/* Builds request 'json' against rule 'type'; returns the refusal code or NULL. */
static const char *build(const char *type, const char *json, const struct uplink_stamp *stamp,
                         struct uplink_out *out)
{
    static struct uplink_refusal why;
    cJSON *req = cJSON_Parse(json);
    assert_non_null(req);
    const struct uplink_stamp anon = {0};
    int rc = uplink_build(uplink_rule(ep, type), &path, req, stamp ? stamp : &anon, out, &why);
    cJSON_Delete(req);
    return rc ? why.code : NULL;
}

static void test_rules_and_config(void **state)
{
    (void)state;
    assert_non_null(uplink_rule(ep, "command"));
    assert_null(uplink_rule(ep, "note"));
    assert_true(uplink_type_known(cfg, "pin"));
    assert_false(uplink_type_known(cfg, "note"));
    const struct cfg_publish *c = uplink_rule(ep, "command"), *p = uplink_rule(ep, "pin");
    assert_int_equal(c->qos, 1);
    assert_false(c->retain);
    assert_int_equal(c->reply_timeout_ms, 2000);
    assert_int_equal(p->rate_per_second, 2);
    assert_int_equal(p->rate_burst, 2);   /* burst defaults to per_second */
    assert_true(cfg->replies);
    bool has_reply_filter = false;
    for (size_t i = 0; i < cfg->n_filters; i++)
        has_reply_filter |= !strcmp(cfg->filters[i], "telebridge/tb-unit/reply/#");
    assert_true(has_reply_filter);
}

static void test_accepted_with_stamp(void **state)
{
    (void)state;
    struct uplink_out out;
    struct uplink_stamp st = {"alice", "telebridge/tb-unit/reply/01", "01"};
    assert_null(build("command", "{\"type\":\"command\",\"data\":{\"command\":\"horn\",\"args\":{\"n\":2}}}", &st, &out));
    assert_string_equal(out.topic, "vehicle/v1/cmd/horn");
    assert_false(out.retain);
    assert_string_equal(out.payload, "{\"command\":\"horn\",\"args\":{\"n\":2},\"sender\":\"alice\","
                                     "\"reply_to\":\"telebridge/tb-unit/reply/01\",\"correlation\":\"01\"}");
    uplink_out_free(&out);
    /* anonymous: "sender": null; a retained publish where the rule allows it */
    assert_null(build("pin", "{\"data\":{\"x\":1},\"retain\":true}", NULL, &out));
    assert_string_equal(out.topic, "pins/alice");
    assert_true(out.retain);
    assert_string_equal(out.payload, "{\"x\":1,\"sender\":null}");
    uplink_out_free(&out);
}

static void test_refusals(void **state)
{
    (void)state;
    struct uplink_out out;
    static const struct {
        const char *type, *json, *code;
    } cases[] = {
        {"command", "{\"data\":\"horn\"}", "bad_field"},
        {"command", "{}", "bad_field"},
        {"command", "{\"data\":{\"args\":{}}}", "bad_field"},                       /* required */
        {"command", "{\"data\":{\"command\":\"horn\",\"x\":1}}", "bad_field"},      /* not listed */
        {"pin", "{\"data\":{\"sender\":\"bob\"}}", "bad_field"},                    /* stamped keys */
        {"pin", "{\"data\":{\"reply_to\":\"a\"}}", "bad_field"},
        {"pin", "{\"data\":{\"correlation\":\"a\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"horn\",\"args\":\"0123456789012345678901234567890123456789012345678901234567890\"}}", "too_large"},
        {"command", "{\"data\":{\"command\":\"horn\"},\"retain\":true}", "not_allowed"},
        {"pin", "{\"data\":{},\"retain\":1}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"a/b\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"+\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"#\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":\"a b\"}}", "bad_field"},
        {"command", "{\"data\":{\"command\":{\"x\":1}}}", "bad_field"},
        {"command", "{\"data\":{\"command\":1e300}}", "bad_field"},                 /* renders 1e+300 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *code = build(cases[i].type, cases[i].json, NULL, &out);
        if (!code || strcmp(code, cases[i].code))
            fail_msg("case %zu (%s): got %s, want %s", i, cases[i].json, code ? code : "accepted", cases[i].code);
        assert_null(out.payload);
    }
}

static void test_wildcard_in_a_path_capture(void **state)
{
    (void)state;
    struct topic_match m;
    assert_non_null(config_find_endpoint(cfg, "/ws/control/v+/alice", &m));
    struct uplink_refusal why;
    struct uplink_out out;
    const struct uplink_stamp st = {0};
    cJSON *req = cJSON_Parse("{\"data\":{\"command\":\"horn\"}}");
    assert_int_equal(uplink_build(uplink_rule(ep, "command"), &m, req, &st, &out, &why), -1);
    assert_string_equal(why.code, "bad_field");
    cJSON_Delete(req);
}

static void test_bucket(void **state)
{
    (void)state;
    struct uplink_bucket b = {0};
    for (int i = 0; i < 3; i++)
        assert_true(uplink_bucket_take(&b, 1, 3, 1000));
    assert_false(uplink_bucket_take(&b, 1, 3, 1000));
    assert_false(uplink_bucket_take(&b, 1, 3, 1999));
    assert_true(uplink_bucket_take(&b, 1, 3, 2000));     /* one token a second */
    assert_true(uplink_bucket_take(&b, 1, 3, 100000));   /* refilled, capped at burst */
    assert_true(uplink_bucket_take(&b, 1, 3, 100000));
    assert_true(uplink_bucket_take(&b, 1, 3, 100000));
    assert_false(uplink_bucket_take(&b, 1, 3, 100000));
    struct uplink_bucket free_b = {0};
    for (int i = 0; i < 100; i++)
        assert_true(uplink_bucket_take(&free_b, 0, 0, 5));   /* no rate: unlimited */
}

static void test_check_errors(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"      - {type: c, topic: \"v/{nope}\"}\n", "publish topic names {nope}"},
        {"      - {type: c, topic: \"v/#\"}\n", "must not contain the MQTT wildcard '#'"},
        {"      - {type: c, topic: \"$SYS/x\"}\n", "is reserved"},
        {"      - {type: subscribe, topic: a}\n", "handles itself"},
        {"      - {type: c}\n", "topic"},
        {"      - {type: c, topic: a, max_bytes: 1}\n", "max_bytes"},
        {"      - {type: c, topic: a, reply: {timeout: 1h}}\n", "timeout"},
        {"      - {type: c, topic: a}\n      - {type: c, topic: b}\n", "duplicate publish type 'c'"},
        {"      - just-a-string\n", "publish rule: expected a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "endpoints:\n  /ws/x/{id}:\n    rooms: []\n    publish:\n%s", bad[i][0]);
        struct config_diag d = {0};
        struct tb_config *c = config_load_string("b.yaml", text, strlen(text), &d);
        assert_null(c);
        bool found = false;
        for (size_t k = 0; k < d.n; k++)
            found |= strstr(d.msgs[k], bad[i][1]) != NULL;
        if (!found)
            fail_msg("case %zu: no '%s' in %s", i, bad[i][1], d.n ? d.msgs[0] : "(no message)");
        config_diag_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_and_config),
        cmocka_unit_test(test_accepted_with_stamp),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_wildcard_in_a_path_capture),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_check_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
