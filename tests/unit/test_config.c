/* Unit tests for config: one fixture per kind of mistake (tests/data/config/), each asserting
 * the exact "file:line:column: message"; defaults; every field; env substitution; durations
 * and sizes; the example config/telebridge.yaml. Leaks are caught by the ASan build. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "config_schema.h"

static char path_buf[1024];

static const char *data_path(const char *name)
{
    const char *dir = getenv("TB_TEST_DATA");
    snprintf(path_buf, sizeof(path_buf), "%s/config/%s", dir ? dir : "tests/data", name);
    return path_buf;
}

static struct tb_config *load_ok(const char *path)
{
    struct config_diag d = { 0 };
    struct tb_config *c = config_load(path, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    config_diag_free(&d);
    if (!c)
        fail_msg("%s did not load", path);
    return c;
}

static struct tb_config *load_str(const char *text, struct config_diag *d)
{
    return config_load_string("inline.yaml", text, strlen(text), d);
}

/* Loads a fixture that must fail and compares every message, in order, without the
 * directory part of the file name. */
/* text fails to load with an error containing needle (every message is printed). */
static void expect_load_error(const char *text, const char *needle)
{
    struct config_diag d = { 0 };
    struct tb_config *c = load_str(text, &d);
    assert_null(c);
    bool found = false;
    for (size_t i = 0; i < d.n; i++) {
        print_message("  %s\n", d.msgs[i]);
        found = found || strstr(d.msgs[i], needle);
    }
    config_diag_free(&d);
    if (!found)
        fail_msg("no error containing '%s' for:\n%s", needle, text);
}

static void expect_errors(const char *fixture, const char *const *want, size_t nwant)
{
    struct config_diag d = { 0 };
    const char *path = data_path(fixture);
    size_t prefix = strlen(path) - strlen(fixture);
    struct tb_config *c = config_load(path, &d);
    assert_null(c);
    for (size_t i = 0; i < d.n; i++)
        print_message("  %s\n", d.msgs[i] + prefix);
    assert_int_equal(d.n, nwant);
    for (size_t i = 0; i < nwant; i++)
        assert_string_equal(d.msgs[i] + prefix, want[i]);
    config_diag_free(&d);
}

#define EXPECT(fixture, ...) do { \
        static const char *const w_[] = { __VA_ARGS__ }; \
        expect_errors(fixture, w_, sizeof(w_) / sizeof(w_[0])); \
    } while (0)

static void test_unknown_key(void **state)
{
    EXPECT("unknown_key.yaml", "unknown_key.yaml:2:3: unknown key 'hots' in mqtt; did you mean 'host'?");
}

static void test_bad_types(void **state)
{
    EXPECT("bad_type.yaml",
           "bad_type.yaml:2:18: clean_session: expected a boolean (true or false)",
           "bad_type.yaml:4:20: allowed_origins: expected a sequence of strings");
}

static void test_out_of_range(void **state)
{
    EXPECT("out_of_range.yaml",
           "out_of_range.yaml:2:9: port must be between 1 and 65535 (got 70000)",
           "out_of_range.yaml:3:8: qos must be between 0 and 1 (got 2)");
}

static void test_bad_pattern(void **state)
{
    EXPECT("bad_pattern.yaml",
           "bad_pattern.yaml:2:21: bad topic pattern 'vehicle/v{id}/telemetry': "
           "a capture must be a whole level, like {name}");
}

static void test_bad_template(void **state)
{
    EXPECT("bad_template.yaml",
           "bad_template.yaml:3:23: bad room 'vehicle:{vehicle_id}': template names {vehicle_id} "
           "but the pattern has no capture vehicle_id");
}

static void test_bad_expression(void **state)
{
    struct config_diag d = { 0 };
    assert_null(config_load(data_path("bad_expr.yaml"), &d));
    assert_int_equal(d.n, 1);
    /* The message text is expr's; the position arithmetic is ours. */
    assert_non_null(strstr(d.msgs[0], "bad_expr.yaml:4:25: bad when expression: "));
    config_diag_free(&d);
}

static void test_duplicate_endpoint(void **state)
{
    EXPECT("duplicate_endpoint.yaml",
           "duplicate_endpoint.yaml:4:3: duplicate endpoint '/ws/{y}' (already defined at line 3)");
}

static void test_bad_alias(void **state)
{
    EXPECT("bad_alias.yaml",
           "bad_alias.yaml:3:18: same_as names unknown endpoint '/ws/persona'; did you mean '/ws/personal'?",
           "bad_alias.yaml:4:25: same_as target '/ws' is itself an alias (of '/ws/persona')",
           "bad_alias.yaml:6:21: '/ws/v2' cannot alias '/ws/v/{vid}': its room 'vehicle:{vid}' needs "
           "captures that '/ws/v2' lacks (template names {vid} but the pattern has no capture vid)");
}

static void test_bad_alerts(void **state)
{
    EXPECT("alerts_bad.yaml",
           "alerts_bad.yaml:5:5: duplicate alert name 'a1' (already defined at line 2)",
           "alerts_bad.yaml:8:5: alert 'nothing' needs 'when' or 'inactive_for'",
           "alerts_bad.yaml:13:17: bad room 'v:{vid}': template names {vid} but the pattern has no capture vid",
           "alerts_bad.yaml:14:29: bad publish_topic 'alerts/{id}': template names {id} but the pattern "
           "has no capture id");
}

static void test_syntax_error(void **state)
{
    EXPECT("syntax.yaml",
           "syntax.yaml:3:2: YAML syntax error: did not find expected key while parsing a block mapping");
}

static void test_empty(void **state)
{
    EXPECT("empty.yaml", "empty.yaml:1:1: empty configuration");
    EXPECT("empty0.yaml", "empty0.yaml:1:1: empty configuration");
}

static void test_missing_file(void **state)
{
    struct config_diag d = { 0 };
    assert_null(config_load("/nonexistent/tb.yaml", &d));
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0], "/nonexistent/tb.yaml: cannot open: No such file or directory");
    config_diag_free(&d);
    config_diag_free(NULL);
}

static void test_env_missing(void **state)
{
    unsetenv("TB_TEST_SURELY_UNSET_VAR");
    EXPECT("env_missing.yaml",
           "env_missing.yaml:2:10: environment variable TB_TEST_SURELY_UNSET_VAR is not set "
           "(write ${TB_TEST_SURELY_UNSET_VAR:-default} to give a default)");
}

static void test_several_errors(void **state)
{
    EXPECT("several.yaml",
           "several.yaml:2:3: unknown key 'prot' in mqtt; did you mean 'port'?",
           "several.yaml:3:14: keepalive: expected an integer",
           "several.yaml:5:11: listen: expected host:port (e.g. 0.0.0.0:8080, [::1]:8080, :8080)",
           "several.yaml:6:22: max_message_bytes: expected a size in bytes (e.g. 65536, 64k, 1MiB)",
           "several.yaml:8:5: route needs 'match'",
           "several.yaml:9:14: bad topic pattern 'a/#/b': '#' must be the last level",
           "several.yaml:11:18: slow_client must be one of conflate, disconnect; did you mean 'conflate'?",
           "several.yaml:13:13: interval: expected a duration (e.g. 500ms, 5s, 2m, 1h)");
}

static void test_inline_errors(void **state)
{
    static const struct { const char *yaml, *want; } cases[] = {
        { "- a\n- b\n", "inline.yaml:1:1: expected a mapping of sections" },
        { "routes: {a: 1}\n", "inline.yaml:1:9: routes: expected a sequence of routes" },
        { "routes:\n  - match: a\n    rooms: [x]\n    bogus: 1\n", "inline.yaml:4:5: unknown key 'bogus' in route" },
        { "mqtt: {host: a, host: b}\n", "inline.yaml:1:17: duplicate key 'host' in mqtt" },
        { "mqtt: {protocol: 4}\n", "inline.yaml:1:18: protocol must be one of 5, 5.0, 311, 3.1.1" },
        { "mqtt: {host: ''}\n", "inline.yaml:1:14: host must not be empty" },
        { "mqtt: {reconnect_min: 5s, reconnect_max: 1s}\n", "inline.yaml:1:7: mqtt: reconnect_min is larger" },
        { "endpoints: {ws: {rooms: [a]}}\n", "inline.yaml:1:13: endpoint path 'ws' must start with '/'" },
        { "endpoints: {/a: {rooms: [a], same_as: /b}, /b: {rooms: [b]}}\n", "inline.yaml:1:25: an endpoint with same_as" },
        { "endpoints: {/a: {rooms: [\"{payload.x|y}\"]}}\n", "cannot use payload fields" },
        { "alerts:\n  - name: 'a b'\n    match: x\n    when: v\n", "inline.yaml:2:5: alert name 'a b' may use only" },
        { "alerts:\n  - match: x\n    when: v\n", "inline.yaml:2:5: alert needs 'name'" },
        { "alerts:\n  - {name: a, match: x, inactive_for: 1s, clear_when: v > 1}\n", "clear_when needs a 'when'" },
        { "alerts:\n  - {name: a, match: x, when: v, severity: critcal}\n", "did you mean 'critical'?" },
        { "heartbeat: {interval: -5s}\n", "inline.yaml:1:23: interval: expected a duration" },
        { "server: {send_queue_frames: -1}\n", "inline.yaml:1:29: send_queue_frames must be between 1 and 1000000 (got -1)" },
        { "server: {writer_threads: 17}\n", "inline.yaml:1:26: writer_threads must be 'auto' or between 0 and 16 (got 17)" },
        { "server: {writer_threads: -1}\n", "inline.yaml:1:26: writer_threads must be 'auto' or between 0 and 16 (got -1)" },
        { "server: {writer_threads: many}\n", "inline.yaml:1:26: writer_threads must be 'auto' or between 0 and 16 (got many)" },
        { "mqtt: {host: \"${1BAD}\"}\n", "inline.yaml:1:15: bad environment variable name '1BAD'" },
        { "mqtt: {host: \"${OPEN\"}\n", "inline.yaml:1:15: unterminated '${'" },
        { "mqtt: {port: \"${TB_TEST_PORT_X:-abc}\"}\n", "inline.yaml:1:14: port: expected an integer" },
        { "endpoints: {/a: {rooms: [r1,r2,r3,r4,r5,r6,r7,r8,r9,r10,r11,r12,r13,r14,r15,r16,r17,r18,"
          "r19,r20,r21,r22,r23,r24,r25,r26,r27,r28,r29,r30,r31,r32,r33]}}\n",
          "inline.yaml:1:25: rooms: at most 32 rooms (got 33)" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_diag d = { 0 };
        assert_null(load_str(cases[i].yaml, &d));
        bool ok = d.n >= 1 && strstr(d.msgs[0], cases[i].want);
        if (!ok)
            print_error("case %zu: got '%s', want '%s'\n", i, d.n ? d.msgs[0] : "(none)", cases[i].want);
        config_diag_free(&d);
        assert_true(ok);
    }
}

static void test_writer_threads(void **state)
{
    static const struct { const char *yaml; int want; } cases[] = {
        { "server: {writer_threads: 0}\n", 0 },
        { "server: {writer_threads: 3}\n", 3 },
        { "server: {writer_threads: 16}\n", 16 },
        { "server: {writer_threads: auto}\n", CFG_WRITER_THREADS_AUTO },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_diag d = { 0 };
        struct tb_config *c = load_str(cases[i].yaml, &d);
        assert_non_null(c);
        assert_int_equal(c->server.writer_threads, cases[i].want);
        config_unref(c);
        config_diag_free(&d);
    }
}

static void test_defaults(void **state)
{
    struct config_diag d = { 0 };
    struct tb_config *c = load_str("heartbeat: {}\n", &d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->mqtt.host, "127.0.0.1");
    assert_int_equal(c->mqtt.port, 1883);
    assert_non_null(strstr(c->mqtt.client_id, "telebridge-"));
    assert_null(c->mqtt.username);
    assert_null(c->mqtt.password);
    assert_int_equal(c->server.writer_threads, CFG_WRITER_THREADS_AUTO);
    assert_int_equal(c->mqtt.keepalive, 30);
    assert_int_equal(c->mqtt.protocol, 5);
    assert_int_equal(c->mqtt.qos, 1);
    assert_true(c->mqtt.clean_session);
    assert_null(c->mqtt.tls_ca);
    assert_false(c->mqtt.tls_insecure);
    assert_int_equal(c->mqtt.reconnect_min_ms, 500);
    assert_int_equal(c->mqtt.reconnect_max_ms, 10000);
    assert_string_equal(c->server.listen_host, "0.0.0.0");
    assert_int_equal(c->server.port, 8080);
    assert_int_equal(c->server.n_allowed_origins, 0);
    assert_int_equal(c->server.max_connections, 20000);
    assert_int_equal(c->server.max_message_bytes, 65536);
    assert_null(c->server.static_dir);
    assert_int_equal(c->server.send_queue_frames, 256);
    assert_int_equal(c->server.send_queue_bytes, 1 << 20);
    assert_int_equal(c->heartbeat.interval_ms, 10000);
    assert_int_equal(c->heartbeat.ws_ping_ms, 20000);
    assert_int_equal(c->heartbeat.idle_timeout_ms, 60000);
    assert_int_equal(c->log.level, TB_LOG_INFO);       /* defaults */
    assert_int_equal(c->log.format, TB_LOG_TEXT);
    assert_int_equal(c->server.n_trusted_proxies, 0);
    assert_int_equal(c->n_endpoints + c->n_routes + c->n_alerts + c->n_filters, 0);
    assert_int_equal(c->refcount, 1);
    config_unref(c);

    c = load_str("mqtt: {tls_ca: /ca.pem}\n"
                 "routes: [{match: 'a/{x}', rooms: [r]}]\n"
                 "alerts: [{name: n, match: 'a/{x}', when: 'v > 1'}, {name: m, match: b, when: w}]\n", &d);
    assert_non_null(c);
    assert_int_equal(c->mqtt.port, 8883);
    struct cfg_route *r = &c->routes[0];
    assert_string_equal(r->type, "message");
    assert_false(r->keep_last);
    assert_int_equal(r->history, 0);
    assert_int_equal(r->history_ttl_ms, 0);
    assert_int_equal(r->slow_client, CFG_SLOW_CONFLATE);
    assert_int_equal(r->non_json, CFG_NONJSON_STRING);
    assert_null(r->when);
    struct cfg_alert *a = &c->alerts[0];
    assert_int_equal(a->severity, CFG_SEV_WARNING);
    assert_string_equal(tmpl_source(a->message), "n");
    assert_string_equal(tmpl_source(a->key), "{x}");
    assert_string_equal(tmpl_source(c->alerts[1].key), "{topic}");
    assert_string_equal(a->value_field, "v");
    assert_int_equal(a->n_rooms, 1);
    assert_string_equal(tmpl_source(a->rooms[0]), "alerts");
    assert_string_equal(tmpl_source(a->publish_topic), "alerts/{key}/{name}");
    assert_int_equal(a->for_ms, 0);
    assert_int_equal(a->inactive_for_ms, 0);
    assert_null(a->clear_when);
    assert_int_equal(c->n_filters, 2);
    assert_string_equal(c->filters[0], "a/+");
    assert_string_equal(c->filters[1], "b");
    config_unref(c);
}

static void test_full(void **state)
{
    unsetenv("TB_TEST_USER");
    struct tb_config *c = load_ok(data_path("full.yaml"));
    const struct cfg_mqtt *m = &c->mqtt;
    assert_string_equal(m->host, "broker.example");
    assert_int_equal(m->port, 8884);
    assert_string_equal(m->client_id, "tb-test");
    assert_string_equal(m->username, "alice");
    assert_string_equal(m->password, "secret");
    assert_int_equal(m->keepalive, 45);
    assert_int_equal(m->protocol, 311);
    assert_int_equal(m->qos, 0);
    assert_false(m->clean_session);
    assert_non_null(strstr(m->tls_ca, "/config/certs/ca.pem"));
    assert_true(m->tls_ca[0] == '/');
    assert_string_equal(m->tls_cert, "/etc/tb/cert.pem");
    assert_string_equal(m->tls_key, "/etc/tb/key.pem");
    assert_true(m->tls_insecure);
    assert_int_equal(m->reconnect_min_ms, 250);
    assert_int_equal(m->reconnect_max_ms, 60000);

    const struct cfg_server *s = &c->server;
    assert_string_equal(s->listen_host, "::1");
    assert_int_equal(s->port, 9090);
    assert_int_equal(s->n_allowed_origins, 2);
    assert_string_equal(s->allowed_origins[1], "https://dash.example");
    assert_int_equal(c->log.level, TB_LOG_WARN);
    assert_int_equal(c->log.format, TB_LOG_LOGFMT);
    assert_int_equal(s->max_connections, 500);
    assert_int_equal(s->max_message_bytes, 128 * 1024);
    assert_true(s->static_dir[0] == '/');
    assert_non_null(strstr(s->static_dir, "/config/www"));
    assert_int_equal(s->send_queue_frames, 64);
    assert_int_equal(s->send_queue_bytes, 2 << 20);

    assert_int_equal(c->n_endpoints, 4);
    const struct cfg_endpoint *e = &c->endpoints[0];
    assert_string_equal(e->path, "/ws/t/{vid}");
    assert_int_equal(e->n_rooms, 2);
    assert_int_equal(e->max_connections, 10);
    assert_int_equal(e->line, 27);
    assert_int_equal(e->col, 3);
    e = &c->endpoints[2];
    assert_string_equal(e->same_as, "/ws/t/{vid}");
    assert_int_equal(e->n_rooms, 2);
    assert_true(c->endpoints[3].client_subscriptions);
    assert_int_equal(c->endpoints[3].n_rooms, 0);

    struct topic_match tm;
    e = config_find_endpoint(c, "/ws/t/all", &tm);
    assert_string_equal(e->path, "/ws/t/all");
    e = config_find_endpoint(c, "/ws/alias/9", &tm);
    assert_string_equal(e->path, "/ws/alias/{vid}");
    char room[64];
    struct tmpl_ctx ctx = { .match = &tm };
    assert_int_equal(tmpl_render(e->rooms[0], &ctx, room, sizeof(room)), 9);
    assert_string_equal(room, "vehicle:9");
    assert_null(config_find_endpoint(c, "/nope", &tm));

    assert_int_equal(c->n_routes, 3);
    const struct cfg_route *r = &c->routes[0];
    assert_string_equal(r->match_src, "vehicle/{id}/telemetry");
    assert_int_equal(r->n_rooms, 2);
    assert_non_null(r->when);
    assert_string_equal(r->type, "telemetry_update");
    assert_true(r->keep_last);
    assert_int_equal(r->history, 50);
    assert_int_equal(r->history_ttl_ms, 120000);
    assert_int_equal(r->slow_client, CFG_SLOW_DISCONNECT);
    assert_int_equal(r->non_json, CFG_NONJSON_DROP);
    assert_int_equal(r->line, 32);
    assert_int_equal(r->col, 5);

    assert_int_equal(c->n_alerts, 2);
    const struct cfg_alert *a = &c->alerts[0];
    assert_string_equal(a->name, "hot-engine");
    assert_int_equal(a->for_ms, 1500);
    assert_int_equal(a->inactive_for_ms, 3600000);
    assert_non_null(a->clear_when);
    assert_int_equal(a->severity, CFG_SEV_CRITICAL);
    assert_string_equal(cfg_severity_name(a->severity), "critical");
    assert_string_equal(tmpl_source(a->message), "Hot {engine.temp} on {id}");
    assert_string_equal(tmpl_source(a->key), "car-{id}");
    assert_string_equal(a->value_field, "engine.temp");
    assert_string_equal(tmpl_source(a->publish_topic), "tb/alerts/{name}/{key}");
    assert_string_equal(c->alerts[1].value_field, "kind");

    assert_int_equal(c->n_filters, 2);
    assert_string_equal(c->filters[0], "vehicle/+/telemetry");
    assert_string_equal(c->filters[1], "raw/#");
    assert_int_equal(c->heartbeat.interval_ms, 0);
    assert_int_equal(c->heartbeat.ws_ping_ms, 1500);
    assert_int_equal(c->heartbeat.idle_timeout_ms, 2000);

    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(c->refcount, 2);
    config_unref(c);
    config_unref(c);
    config_unref(NULL);
}

static void test_env_substitution(void **state)
{
    setenv("TB_TEST_HOST", "mq.local", 1);
    setenv("TB_TEST_PORT", "1999", 1);
    setenv("TB_TEST_EMPTY", "", 1);
    unsetenv("TB_TEST_NOPE");
    struct config_diag d = { 0 };
    struct tb_config *c = load_str(
        "mqtt:\n"
        "  host: \"${TB_TEST_HOST}\"\n"
        "  port: ${TB_TEST_PORT}\n"
        "  client_id: id-${TB_TEST_NOPE:-dflt}-${TB_TEST_HOST}\n"
        "  username: ${TB_TEST_NOPE:-}\n"
        "  password: \"${TB_TEST_EMPTY}\"\n"
        "server: {listen: \"${TB_TEST_NOPE:-:7000}\"}\n", &d);
    assert_non_null(c);
    assert_string_equal(c->mqtt.host, "mq.local");
    assert_int_equal(c->mqtt.port, 1999);
    assert_string_equal(c->mqtt.client_id, "id-dflt-mq.local");
    assert_null(c->mqtt.username);
    assert_null(c->mqtt.password);
    assert_string_equal(c->server.listen_host, "0.0.0.0");
    assert_int_equal(c->server.port, 7000);
    config_unref(c);
}

static void test_durations_and_sizes(void **state)
{
    uint64_t ms;
    size_t sz;
    static const struct { const char *s; uint64_t ms; } durs[] = {
        { "500ms", 500 }, { "5s", 5000 }, { "2m", 120000 }, { "1h", 3600000 }, { "3", 3000 },
        { "0", 0 }, { "1.5s", 1500 }, { "0.25", 250 },
    };
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        assert_int_equal(cfg_parse_duration_ms(durs[i].s, &ms), 0);
        assert_int_equal(ms, durs[i].ms);
    }
    static const char *const bad_durs[] = { "", "5 s", "5x", "-1s", "s", " 5s" };
    for (size_t i = 0; i < sizeof(bad_durs) / sizeof(bad_durs[0]); i++)
        assert_int_equal(cfg_parse_duration_ms(bad_durs[i], &ms), -1);
    static const struct { const char *s; size_t n; } sizes[] = {
        { "65536", 65536 }, { "64k", 65536 }, { "64K", 65536 }, { "64KiB", 65536 },
        { "2m", 2 << 20 }, { "1MiB", 1 << 20 },
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(cfg_parse_size(sizes[i].s, &sz), 0);
        assert_int_equal(sz, sizes[i].n);
    }
    assert_int_equal(cfg_parse_size("1.5", &sz), -1);
    assert_int_equal(cfg_parse_size("12q", &sz), -1);
    assert_int_equal(cfg_parse_size("-1k", &sz), -1);
}

static void test_listen_and_protocol(void **state)
{
    static const struct { const char *yaml, *host; int port, proto; } cases[] = {
        { "server: {listen: 10.0.0.1:81}\nmqtt: {protocol: 311}\n", "10.0.0.1", 81, 311 },
        { "server: {listen: \"[::1]:8080\"}\nmqtt: {protocol: 3.1.1}\n", "::1", 8080, 311 },
        { "server: {listen: \":8080\"}\nmqtt: {protocol: 5}\n", "0.0.0.0", 8080, 5 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_diag d = { 0 };
        struct tb_config *c = load_str(cases[i].yaml, &d);
        assert_non_null(c);
        assert_string_equal(c->server.listen_host, cases[i].host);
        assert_int_equal(c->server.port, cases[i].port);
        assert_int_equal(c->mqtt.protocol, cases[i].proto);
        config_unref(c);
    }
}

static void test_version(void **state)
{
    struct config_diag d = { 0 };
    struct tb_config *a = load_str("heartbeat: {interval: 1s}\n", &d);
    struct tb_config *b = load_str("heartbeat: {interval: 1s}\n", &d);
    struct tb_config *c = load_str("heartbeat: {interval: 2s}\n", &d);
    assert_true(a && b && c);
    assert_true(a->version == b->version);
    assert_true(a->version != c->version);
    /* FNV-1a 64 of the empty-ish known input, so other tools can compute the same. */
    config_unref(a);
    config_unref(b);
    config_unref(c);
}

static void test_example_config(void **state)
{
    unsetenv("TB_MQTT_HOST");
    unsetenv("TB_MQTT_PORT");
    unsetenv("MQTT_USER");
    unsetenv("MQTT_PASSWORD");
    unsetenv("TB_LISTEN");
    char path[1024];
    const char *dir = getenv("TB_TEST_DATA");
    snprintf(path, sizeof(path), "%s/../../config/telebridge.yaml", dir ? dir : "tests/data");
    struct tb_config *c = load_ok(path);
    assert_string_equal(c->mqtt.host, "127.0.0.1");
    assert_int_equal(c->mqtt.port, 1883);
    assert_null(c->mqtt.username);
    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.port, 8080);
    assert_non_null(strstr(c->server.static_dir, "dashboard"));
    assert_int_equal(c->n_endpoints, 10);
    assert_int_equal(c->n_routes, 8);
    assert_int_equal(c->n_alerts, 6);
    /* 8 route and alert filters + sessions.request_topic + the uplink reply topic */
    assert_int_equal(c->n_filters, 10);
    assert_true(c->replies);
    const struct cfg_endpoint *ctl = config_endpoint_by_path(c, "/ws/control/{vehicle_id}/{user_id}");
    assert_non_null(ctl);
    assert_int_equal(ctl->n_publish, 1);
    assert_int_equal(ctl->publish[0].reply_timeout_ms, 5000);

    struct topic_match m;
    const struct cfg_endpoint *e = config_find_endpoint(c, "/ws", &m);
    assert_string_equal(e->same_as, "/ws/personal");
    assert_int_equal(e->n_rooms, 1);
    assert_string_equal(tmpl_source(e->rooms[0]), "personal");
    e = config_find_endpoint(c, "/ws/telemetry/7", &m);
    assert_string_equal(e->path, "/ws/telemetry/{vehicle_id}");
    assert_true(config_find_endpoint(c, "/ws/connect", &m)->client_subscriptions);

    const struct cfg_alert *off = &c->alerts[5];
    assert_string_equal(off->name, "vehicle_offline");
    assert_null(off->when);
    assert_int_equal(off->inactive_for_ms, 30000);
    assert_int_equal(c->heartbeat.idle_timeout_ms, 60000);
    config_unref(c);

    setenv("TB_MQTT_PORT", "1884", 1);
    setenv("TB_LISTEN", "0.0.0.0:9000", 1);
    c = load_ok(path);
    assert_int_equal(c->mqtt.port, 1884);
    assert_int_equal(c->server.port, 9000);
    config_unref(c);
    unsetenv("TB_MQTT_PORT");
    unsetenv("TB_LISTEN");
}

/* ---- settings that need a restart (config_keep_restart_settings) ---------------------- */

static struct tb_config *load_str_ok(const char *text)
{
    struct config_diag d = { 0 };
    struct tb_config *c = load_str(text, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    config_diag_free(&d);
    if (!c)
        fail_msg("inline config did not load:\n%s", text);
    return c;
}

/* server.trusted_proxies: addresses and CIDRs load; anything else is an error at the item
 * (issue 19). */
static void test_trusted_proxies(void **state)
{
    (void)state;
    struct tb_config *c = load_str_ok("server: {trusted_proxies: [127.0.0.1, \"10.0.0.0/8\", \"fd00::/8\"]}\n");
    assert_int_equal(c->server.n_trusted_proxies, 3);
    assert_string_equal(c->server.trusted_proxies[2], "fd00::/8");
    config_unref(c);
    static const char *const bad[] = {"localhost", "10.0.0.0/33", "1.2.3.4/", "", "::/129", "1.2.3.4 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "server:\n  trusted_proxies: [127.0.0.1, \"%s\"]\n", bad[i]);
        struct config_diag d = { 0 };
        assert_null(load_str(text, &d));
        assert_int_equal(d.n, 1);
        assert_non_null(strstr(d.msgs[0], "inline.yaml:2:32: trusted_proxies: '"));
        config_diag_free(&d);
    }
    struct config_diag d = { 0 };
    assert_null(load_str("log: {format: xml}\n", &d));
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.msgs[0], "inline.yaml:1:15:"));
    config_diag_free(&d);
}

static void expect_names(const char **got, size_t n, const char *const *want, size_t nwant)
{
    for (size_t i = 0; i < n; i++)
        print_message("  %s\n", got[i]);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < nwant; i++)
        assert_string_equal(got[i], want[i]);
}

#define EXPECT_NAMES(got, n, ...) do { \
        static const char *const w_[] = { __VA_ARGS__ }; \
        expect_names(got, n, w_, sizeof(w_) / sizeof(w_[0])); \
    } while (0)

static void test_restart_keeps_running_values(void **state)
{
    struct tb_config *cur = load_str_ok(
        "mqtt: {host: a.example, port: 1883}\n"
        "server: {listen: 0.0.0.0:8080, max_connections: 100}\n"
        "heartbeat: {ws_ping: 20s, interval: 10s}\n"
        "routes: [{match: 'a/{x}', rooms: [r]}]\n");
    struct tb_config *next = load_str_ok(
        "mqtt: {host: b.example, port: 1884}\n"
        "server: {listen: 127.0.0.1:9090, max_connections: 200}\n"
        "heartbeat: {ws_ping: 5s, interval: 3s}\n"
        "routes: [{match: 'b/{y}', rooms: [s]}]\n");
    const char *names[CFG_MAX_RESTART_SETTINGS];
    size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "mqtt.host", "mqtt.port", "server.listen", "heartbeat.ws_ping");
    /* restart settings: the running values */
    assert_string_equal(next->mqtt.host, "a.example");
    assert_ptr_not_equal(next->mqtt.host, cur->mqtt.host);      /* a copy, owned by next */
    assert_int_equal(next->mqtt.port, 1883);
    assert_string_equal(next->server.listen_host, "0.0.0.0");
    assert_int_equal(next->server.port, 8080);
    assert_int_equal(next->heartbeat.ws_ping_ms, 20000);
    /* the rest: next's own values */
    assert_int_equal(next->server.max_connections, 200);
    assert_int_equal(next->heartbeat.interval_ms, 3000);
    assert_int_equal(next->n_routes, 1);
    assert_string_equal(next->routes[0].match_src, "b/{y}");
    /* cur is untouched */
    assert_string_equal(cur->mqtt.host, "a.example");
    assert_string_equal(cur->routes[0].match_src, "a/{x}");
    /* nothing left to keep */
    assert_int_equal(config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS), 0);
    config_unref(next);
    config_unref(cur);
}

static void test_restart_identical(void **state)
{
    static const char *const text =
        "mqtt: {host: h, username: u, password: p, tls_ca: /ca.pem, client_id: c}\n"
        "server: {listen: '[::1]:81', writer_threads: 2, allowed_origins: [x]}\n";
    struct tb_config *cur = load_str_ok(text), *next = load_str_ok(text);
    const char *names[CFG_MAX_RESTART_SETTINGS];
    assert_int_equal(config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS), 0);
    assert_string_equal(next->mqtt.username, "u");
    assert_string_equal(next->server.listen_host, "::1");
    config_unref(next);
    config_unref(cur);

    /* defaults on both sides, names may be NULL when max_names is 0 */
    cur = load_str_ok("heartbeat: {}\n");
    next = load_str_ok("routes: [{match: a, rooms: [r]}]\n");
    assert_int_equal(config_keep_restart_settings(next, cur, NULL, 0), 0);
    config_unref(next);
    config_unref(cur);
}

static void test_restart_null_strings(void **state)
{
    const char *names[CFG_MAX_RESTART_SETTINGS];
    /* unset -> set: reported, back to NULL */
    struct tb_config *cur = load_str_ok("mqtt: {host: h}\n");
    struct tb_config *next = load_str_ok("mqtt: {host: h, username: bob, password: ''}\n");
    assert_null(next->mqtt.password);   /* '' = unset, like cur */
    size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "mqtt.username");
    assert_null(next->mqtt.username);
    config_unref(next);
    config_unref(cur);

    /* set -> unset: reported, the running string copied back */
    cur = load_str_ok("mqtt: {username: alice, tls_ca: /ca.pem, port: 8883}\n");
    next = load_str_ok("mqtt: {port: 8883}\n");
    n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "mqtt.username", "mqtt.tls_ca");
    assert_string_equal(next->mqtt.username, "alice");
    assert_string_equal(next->mqtt.tls_ca, "/ca.pem");
    config_unref(next);
    config_unref(cur);
}

/* listen is one key for two fields: either part changing reports it once and keeps both. */
static void test_restart_listen(void **state)
{
    static const struct { const char *cur, *next; } cases[] = {
        { "server: {listen: 10.0.0.1:81}\n", "server: {listen: 10.0.0.1:82}\n" },
        { "server: {listen: 10.0.0.1:81}\n", "server: {listen: 10.0.0.2:81}\n" },
        { "server: {listen: 10.0.0.1:81}\n", "server: {listen: '[::1]:82'}\n" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tb_config *cur = load_str_ok(cases[i].cur), *next = load_str_ok(cases[i].next);
        const char *names[CFG_MAX_RESTART_SETTINGS];
        size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
        EXPECT_NAMES(names, n, "server.listen");
        assert_string_equal(next->server.listen_host, "10.0.0.1");
        assert_int_equal(next->server.port, 81);
        config_unref(next);
        config_unref(cur);
    }
}

/* Every restart setting, in key-table order (the order reload.c's hand-kept list had). */
static void test_restart_every_key(void **state)
{
    struct tb_config *cur = load_str_ok("heartbeat: {}\n");
    struct tb_config *next = load_str_ok(
        "mqtt: {host: h2, port: 1884, client_id: c2, username: u2, password: p2, keepalive: 60,\n"
        "       protocol: 311, qos: 0, clean_session: false, tls_ca: /ca2.pem, tls_cert: /c2.pem,\n"
        "       tls_key: /k2.pem, tls_insecure: true, reconnect_min: 1s, reconnect_max: 20s}\n"
        "server: {listen: 127.0.0.1:9000, writer_threads: 2, max_rooms: 5,\n"
        "         allowed_origins: [http://a], static_dir: /srv, reuse_port: true}\n"
        "heartbeat: {interval: 1s, ws_ping: 5s, idle_timeout: 30s}\n"
        "sessions: {request_topic: s/req}\n"
        "limits: {max_addresses: 500, client_rate: 7}\n"
        "cluster: {name: fleet2, instance_id: i2}\n");
    const char *names[CFG_MAX_RESTART_SETTINGS];
    size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n,
                 "mqtt.host", "mqtt.port", "mqtt.client_id", "mqtt.username", "mqtt.password",
                 "mqtt.keepalive", "mqtt.protocol", "mqtt.qos", "mqtt.clean_session",
                 "mqtt.tls_ca", "mqtt.tls_cert", "mqtt.tls_key", "mqtt.tls_insecure",
                 "mqtt.reconnect_min", "mqtt.reconnect_max",
                 "server.listen", "server.reuse_port", "server.writer_threads",
                 "heartbeat.ws_ping", "heartbeat.idle_timeout", "limits.max_addresses",
                 "cluster.name", "cluster.instance_id");
    assert_int_equal(next->limits.max_addresses, 100000);
    assert_int_equal(next->limits.client_rate, 7);     /* applied by a reload */
    assert_null(next->cluster.name);
    assert_string_equal(next->cluster.instance_id, cur->cluster.instance_id);
    const struct cfg_mqtt *a = &next->mqtt, *b = &cur->mqtt;
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->port, b->port);
    assert_string_equal(a->client_id, b->client_id);
    assert_null(a->username);
    assert_null(a->password);
    assert_int_equal(a->keepalive, b->keepalive);
    assert_int_equal(a->protocol, 5);
    assert_int_equal(a->qos, 1);
    assert_true(a->clean_session);
    assert_null(a->tls_ca);
    assert_null(a->tls_cert);
    assert_null(a->tls_key);
    assert_false(a->tls_insecure);
    assert_int_equal(a->reconnect_min_ms, 500);
    assert_int_equal(a->reconnect_max_ms, 10000);
    assert_string_equal(next->server.listen_host, "0.0.0.0");
    assert_int_equal(next->server.port, 8080);
    assert_int_equal(next->server.writer_threads, CFG_WRITER_THREADS_AUTO);
    assert_int_equal(next->heartbeat.ws_ping_ms, 20000);
    assert_int_equal(next->heartbeat.idle_timeout_ms, 60000);
    /* not restart settings: kept as loaded */
    assert_int_equal(next->server.max_rooms, 5);
    assert_int_equal(next->server.n_allowed_origins, 1);
    assert_string_equal(next->server.static_dir, "/srv");
    assert_int_equal(next->heartbeat.interval_ms, 1000);
    assert_string_equal(next->sessions.request_topic, "s/req");
    config_unref(next);

    /* names[] is bounded by max_names; every value is still kept */
    next = load_str_ok("mqtt: {host: h2, port: 1884, qos: 0}\n");
    n = config_keep_restart_settings(next, cur, names, 2);
    EXPECT_NAMES(names, n, "mqtt.host", "mqtt.port");
    assert_string_equal(next->mqtt.host, "127.0.0.1");
    assert_int_equal(next->mqtt.qos, 1);
    config_unref(next);
    config_unref(cur);
}

/* The engine on a hand-made table: the value types no restart setting uses today. */
struct keep_demo {
    char **list;
    size_t n_list;
    size_t size;
    uint64_t dur;
    bool flag;
    int other;        /* not a restart field */
};

static void test_restart_engine_types(void **state)
{
    static const struct cfg_field fields[] = {
        { .name = "list", .type = CT_STRLIST, .off = offsetof(struct keep_demo, list),
          .off_n = offsetof(struct keep_demo, n_list), .restart = "demo.list" },
        { .name = "size", .type = CT_SIZE, .off = offsetof(struct keep_demo, size), .restart = "demo.size" },
        { .name = "dur", .type = CT_DUR, .off = offsetof(struct keep_demo, dur), .restart = "demo.dur" },
        { .name = "flag", .type = CT_BOOL, .off = offsetof(struct keep_demo, flag), .restart = "demo.flag" },
        { .name = "other", .type = CT_INT, .off = offsetof(struct keep_demo, other) },
    };
    static const struct cfg_schema schema = { "demo", fields, sizeof(fields) / sizeof(fields[0]) };
    char *cur_list[] = { "a", "b", NULL };
    struct keep_demo cur = { cur_list, 2, 10, 20, true, 1 };
    struct keep_demo next = { calloc(2, sizeof(char *)), 1, 11, 20, false, 2 };
    assert_non_null(next.list);
    next.list[0] = strdup("a");
    const char *names[8];
    size_t n = cfg_keep_restart(&schema, &next, &cur, names, 0, 8);
    EXPECT_NAMES(names, n, "demo.list", "demo.size", "demo.flag");
    assert_int_equal(next.n_list, 2);
    assert_string_equal(next.list[0], "a");
    assert_string_equal(next.list[1], "b");
    assert_null(next.list[2]);
    assert_ptr_not_equal(next.list[1], cur_list[1]);
    assert_int_equal(next.size, 10);
    assert_true(next.flag);
    assert_int_equal(next.other, 2);
    assert_int_equal(cfg_keep_restart(&schema, &next, &cur, names, 0, 8), 0);
    for (size_t i = 0; i < next.n_list; i++)
        free(next.list[i]);
    free(next.list);
}


/* issue 14.11: a second document is refused at its start, not silently ignored */
/* limits: defaults that leave the dashboard, the bench and the tests alone, and ranges. */
static void test_limits_keys(void **state)
{
    (void)state;
    struct tb_config *c = load_str_ok("heartbeat: {}\n");
    const struct cfg_limits *l = &c->limits;
    assert_int_equal(l->client_rate, 100);
    assert_int_equal(l->client_burst, 200);
    assert_int_equal(l->close_after, 100);
    assert_int_equal(l->max_per_address, 256);
    assert_int_equal(l->handshake_rate, 20);
    assert_int_equal(l->handshake_burst, 100);
    assert_int_equal(l->ipv6_prefix, 64);
    assert_int_equal(l->max_addresses, 100000);
    assert_true(l->exempt_loopback);
    config_unref(c);
    c = load_str_ok("limits: {client_rate: 0, close_after: 0, max_per_address: 0, handshake_rate: 0,\n"
                    "         ipv6_prefix: 128, exempt_loopback: false}\n");
    assert_int_equal(c->limits.client_rate, 0);
    assert_int_equal(c->limits.ipv6_prefix, 128);
    assert_false(c->limits.exempt_loopback);
    config_unref(c);
    /* per endpoint: absent = the limits: values (-1); an alias inherits its target's */
    c = load_str_ok("endpoints:\n  /a: {rooms: [r], client_rate: 5, client_burst: 9}\n"
                    "  /b: {same_as: /a}\n  /c: {same_as: /a, client_rate: 0}\n  /d: {rooms: [r]}\n");
    assert_int_equal(c->endpoints[0].client_rate, 5);
    assert_int_equal(c->endpoints[1].client_rate, 5);
    assert_int_equal(c->endpoints[1].client_burst, 9);
    assert_int_equal(c->endpoints[2].client_rate, 0);
    assert_int_equal(c->endpoints[2].client_burst, 9);
    assert_int_equal(c->endpoints[3].client_rate, -1);
    assert_int_equal(c->endpoints[3].client_burst, -1);
    config_unref(c);
    static const char *const bad[][2] = {
        {"limits: {client_burst: 0}\n", "client_burst must be between 1"},
        {"limits: {handshake_burst: 0}\n", "handshake_burst must be between 1"},
        {"limits: {ipv6_prefix: 8}\n", "ipv6_prefix must be between 16 and 128"},
        {"limits: {ipv6_prefix: 129}\n", "ipv6_prefix must be between 16 and 128"},
        {"limits: {max_addresses: 1}\n", "max_addresses must be between 16"},
        {"limits: {client_rate: -1}\n", "client_rate"},
        {"limits: {client_rate: fast}\n", "client_rate"},
        {"limits: {clientrate: 5}\n", "client_rate"},      /* did you mean */
        {"limits: [1, 2]\n", "limits"},
        {"endpoints: {/a: {rooms: [r], client_burst: 0}}\n", "client_burst must be at least 1"},
        {"endpoints: {/a: {rooms: [r], client_rate: -2}}\n", "client_rate must be between -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config_diag d = { 0 };
        assert_null(load_str(bad[i][0], &d));
        assert_true(d.n >= 1);
        print_message("  %s\n", d.msgs[0]);
        assert_non_null(strstr(d.msgs[0], bad[i][1]));
        config_diag_free(&d);
    }
}

static void test_second_document_refused(void **state)
{
    (void)state;
    struct config_diag d = { 0 };
    assert_null(load_str("mqtt: {host: a}\n---\nmqtt: {host: b}\n", &d));
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.msgs[0], "inline.yaml:2:1: a second YAML document starts here"));
    config_diag_free(&d);
    /* a document end marker alone is fine */
    struct tb_config *c = load_str("mqtt: {host: a}\n...\n", &d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    config_unref(c);
    /* broken YAML after the first document is reported too */
    assert_null(load_str("mqtt: {host: a}\n---\n[a\n", &d));
    assert_true(d.n >= 1 && strstr(d.msgs[0], "YAML syntax error after the first document"));
    config_diag_free(&d);
}

/* issue 14.11: durations are 0 (off) or at least a sane minimum per key */
static void test_duration_minimums(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        { "heartbeat: {interval: 0.0000001ms}\n",
          "inline.yaml:1:23: interval must be 0 (off) or between 100 and 86400000 ms (got '0.0000001ms')" },
        { "heartbeat: {interval: 50ms}\n", "interval must be 0 (off) or between 100" },
        { "heartbeat: {ws_ping: 10ms}\n", "ws_ping must be 0 (off) or between 1000" },
        { "heartbeat: {idle_timeout: 0.5s}\n", "idle_timeout must be 0 (off) or between 1000" },
        { "mqtt: {reconnect_min: 1ms}\n", "reconnect_min must be between 10 and 3600000 ms (got 1 ms)" },
        { "mqtt: {reconnect_min: 0.0001ms}\n", "reconnect_min must be between 10 and 3600000 ms (got 1 ms)" },
        { "routes:\n  - {match: a, rooms: [b], history_ttl: 1ms}\n", "history_ttl must be 0 (off) or between 10" },
        { "alerts:\n  - {name: a, match: x, when: v, for: 1ms}\n", "for must be 0 (off) or between 10" },
        { "alerts:\n  - {name: a, match: x, inactive_for: 0.001s}\n", "inactive_for must be 0 (off) or between 100" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_load_error(bad[i].yaml, bad[i].want);
    struct config_diag d = { 0 };
    struct tb_config *c = load_str("heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n"
                                   "mqtt: {reconnect_min: 10ms}\n", &d);
    assert_non_null(c);
    assert_int_equal(c->heartbeat.interval_ms, 0);
    assert_int_equal(c->mqtt.reconnect_min_ms, 10);
    config_unref(c);
}

/* issue 14.4 / 14.5 / 14.10: the keys behind them */
/* Issue 16: $share/ routes are refused with a reason; cluster ids are one topic level and
 * not reserved words; client_id no longer holds the pid, and instance_id follows it. */
static void test_cluster_keys(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "routes:\n  - match: $share/g/vehicle/{id}/telemetry\n    rooms: [a]\n",
        "cluster: {instance_id: a/b}\n",
        "cluster: {instance_id: ack}\n",
        "cluster: {name: \"x y\"}\n",
        "mqtt: {client_id: \"has space\"}\n",
    };
    static const char *const why[] = {"$share/<group>/ shared subscriptions are not supported",
                                      "must be 1..64 of", "is reserved", "cluster.name", "set cluster.instance_id"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config_diag d = {0};
        assert_null(load_str(bad[i], &d));
        assert_true(d.n >= 1);
        if (!strstr(d.msgs[0], why[i]))
            fail_msg("%s -> %s", bad[i], d.msgs[0]);
        config_diag_free(&d);
    }
    struct tb_config *c = load_str_ok("mqtt: {client_id: b-1}\ncluster: {name: fleet}\n");
    assert_string_equal(c->cluster.instance_id, "b-1");
    assert_string_equal(c->cluster.name, "fleet");
    config_unref(c);
    c = load_str_ok("heartbeat: {}\n");
    assert_null(c->cluster.name);
    char pid[32];
    snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    assert_null(strstr(c->mqtt.client_id, pid));   /* stable across restarts */
    assert_string_equal(c->cluster.instance_id, c->mqtt.client_id);
    assert_int_equal(strncmp(c->mqtt.client_id, "telebridge-", 11), 0);
    config_unref(c);
}

static void test_hardening_keys(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        { "routes:\n  - {match: \"v/{id}\", rooms: [\"{payload.mode|p}\"]}\n",
          "inline.yaml:2:30: a room of this route is chosen by the payload: list the rooms it may select in 'rooms_allowed'" },
        { "endpoints: {\"/a/{u}\": {rooms: [a], identity: user}}\n",
          "identity 'user' is not a capture of the path '/a/{u}'" },
        { "endpoints: {/a: {rooms: [a], ack: all}}\n", "ack must be one of members, none" },
        { "alert_state: {hmac_key: short}\n", "hmac_key must be at least 16 bytes" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_load_error(bad[i].yaml, bad[i].want);
    struct config_diag d = { 0 };
    struct tb_config *c = load_str(
        "mqtt: {client_id: me}\n"
        "endpoints:\n"
        "  \"/a/{x}/{u}\": {rooms: [a], identity: u}\n"
        "  /n: {rooms: [a], ack: none}\n"
        "  \"/one/{who}\": {rooms: [a]}\n"
        "  \"/anon/{who}\": {rooms: [a], identity: none}\n"
        "routes:\n"
        "  - {match: \"v/{id}\", rooms: [\"{payload.mode|p}\"], rooms_allowed: [p, \"q*\"]}\n", &d);
    assert_non_null(c);
    assert_int_equal(c->endpoints[0].identity_capture, 1);
    assert_int_equal(c->endpoints[0].ack, CFG_ACK_MEMBERS);
    assert_int_equal(c->endpoints[1].identity_capture, -1);
    assert_int_equal(c->endpoints[1].ack, CFG_ACK_NONE);
    assert_int_equal(c->endpoints[2].identity_capture, 0);
    assert_int_equal(c->endpoints[3].identity_capture, -1);
    assert_int_equal(c->routes[0].n_rooms_allowed, 2);
    assert_string_equal(c->routes[0].rooms_allowed[1], "q*");
    assert_string_equal(c->alert_state.origin, "telebridge");
    assert_null(c->alert_state.hmac_key);
    assert_int_equal(c->alert_state.max_restored, 10000);
    config_unref(c);
    c = load_str("alert_state: {origin: bridge-a, hmac_key: 0123456789abcdef, max_restored: 5}\n", &d);
    assert_non_null(c);
    assert_string_equal(c->alert_state.origin, "bridge-a");
    assert_string_equal(c->alert_state.hmac_key, "0123456789abcdef");
    assert_int_equal(c->alert_state.max_restored, 5);
    config_unref(c);
}

/* ---- server: wss:// pair and permessage-deflate --------------------------------------- */

static char tls_buf[4][1024];

/* "server: {listen: ..., <extra>}" with @CRT@, @KEY@, @OTHERKEY@ naming tests/data/tls. */
static const char *tls_text(const char *extra)
{
    const char *dir = getenv("TB_TEST_DATA");
    dir = dir ? dir : "tests/data";
    snprintf(tls_buf[0], sizeof tls_buf[0], "%s/tls/server.crt", dir);
    snprintf(tls_buf[1], sizeof tls_buf[1], "%s/tls/server.key", dir);
    snprintf(tls_buf[2], sizeof tls_buf[2], "%s/tls/other.key", dir);
    static char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "server:\n  listen: :8443\n");
    for (const char *p = extra; *p && n + 1024 < sizeof text;) {
        static const char *const keys[] = {"@CRT@", "@KEY@", "@OTHERKEY@"};
        size_t k = 0;
        while (k < 3 && strncmp(p, keys[k], strlen(keys[k])))
            k++;
        if (k < 3) {
            n += (size_t)snprintf(text + n, sizeof text - n, "%s", tls_buf[k]);
            p += strlen(keys[k]);
        } else {
            text[n++] = *p++;
        }
    }
    text[n] = '\0';
    return text;
}

static void test_tls_pair_checked(void **state)
{
    (void)state;
    struct tb_config *c = load_str_ok(tls_text("  tls_cert: @CRT@\n  tls_key: @KEY@\n"));
    assert_non_null(c->server.tls_cert);
    assert_null(c->server.tls_client_ca);
    config_unref(c);
    expect_load_error(tls_text("  tls_cert: @CRT@\n"), "tls_cert and tls_key go together");
    expect_load_error(tls_text("  tls_key: @KEY@\n"), "tls_cert and tls_key go together");
    expect_load_error(tls_text("  tls_cert: @CRT@\n  tls_key: @OTHERKEY@\n"), "other.key: key values mismatch");
    expect_load_error(tls_text("  tls_cert: /nonexistent/x.crt\n  tls_key: @KEY@\n"), "tls_cert /nonexistent/x.crt");
    expect_load_error(tls_text("  tls_cert: @KEY@\n  tls_key: @KEY@\n"), "tls_cert");  /* a key is no certificate */
    expect_load_error(tls_text("  tls_client_ca: @CRT@\n"), "tls_client_ca needs tls_cert");
    expect_load_error(tls_text("  tls_cert: @CRT@\n  tls_key: @KEY@\n  tls_client_ca: /nonexistent/ca.crt\n"),
                      "tls_client_ca /nonexistent/ca.crt");
}

static void test_deflate_keys(void **state)
{
    (void)state;
    struct tb_config *c = load_str_ok("server: {}\n");
    assert_true(c->server.deflate.enabled);
    assert_int_equal(c->server.deflate.min_bytes, 256);
    assert_int_equal(c->server.deflate.level, 1);
    config_unref(c);
    c = load_str_ok("server: {deflate: {enabled: false, min_bytes: 1k, level: 9}}\n");
    assert_false(c->server.deflate.enabled);
    assert_int_equal(c->server.deflate.min_bytes, 1024);
    assert_int_equal(c->server.deflate.level, 9);
    config_unref(c);
    expect_load_error("server: {deflate: {level: 0}}\n", "level");
    expect_load_error("server: {deflate: {level: 10}}\n", "level");
    expect_load_error("server: {deflate: {levels: 3}}\n", "did you mean 'level'");
    expect_load_error("server: {deflate: yes}\n", "expected a mapping");
}

static void test_tls_restart_settings(void **state)
{
    (void)state;
    const char *names[CFG_MAX_RESTART_SETTINGS];
    /* off -> on: needs a restart, next stays without TLS */
    struct tb_config *cur = load_str_ok(tls_text(""));
    struct tb_config *next = load_str_ok(tls_text("  tls_cert: @CRT@\n  tls_key: @KEY@\n"));
    size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "server.tls_cert");
    assert_null(next->server.tls_cert);
    assert_null(next->server.tls_key);
    config_unref(next);
    /* on -> on with the same or other files: a reload applies it; the client CA does not */
    struct tb_config *on = load_str_ok(tls_text("  tls_cert: @CRT@\n  tls_key: @KEY@\n"));
    next = load_str_ok(tls_text("  tls_cert: @CRT@\n  tls_key: @KEY@\n  tls_client_ca: @CRT@\n"));
    n = config_keep_restart_settings(next, on, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "server.tls_client_ca");
    assert_null(next->server.tls_client_ca);
    assert_non_null(next->server.tls_cert);
    config_unref(next);
    /* on -> off: the running pair stays */
    n = config_keep_restart_settings(cur, on, names, CFG_MAX_RESTART_SETTINGS);
    EXPECT_NAMES(names, n, "server.tls_cert");
    assert_string_equal(cur->server.tls_cert, on->server.tls_cert);
    assert_string_equal(cur->server.tls_key, on->server.tls_key);
    config_unref(on);
    config_unref(cur);
}

/* keep_last: true | false | per_topic | {by: payload.<field>}, keep_last_max, keep_last_ttl
 * (issue 15, point 1). */
static void test_keep_last_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        { "routes:\n  - {match: a, rooms: [a], keep_last: per_room}\n",
          "inline.yaml:2:39: keep_last: expected true, false, per_topic or {by: payload.<field>}, not 'per_room'" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {by: vehicle_id}}\n",
          "keep_last.by: expected a payload field such as payload.vehicle_id, not 'vehicle_id'" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {by: payload.}}\n", "not 'payload.'" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {by: payload.a..b}}\n", "not 'payload.a..b'" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {by: \"payload.a b\"}}\n", "not 'payload.a b'" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {key: payload.a}}\n", "keep_last: expected true" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: {by: payload.a, x: 1}}\n", "keep_last: expected true" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: [a]}\n", "keep_last: expected true" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: per_topic, keep_last_max: 0}\n",
          "keep_last_max must be between 1 and 10000000" },
        { "routes:\n  - {match: a, rooms: [a], keep_last: per_topic, keep_last_ttl: 10ms}\n", "keep_last_ttl" },
        /* envelope profiles (issue 15, point 6) */
        { "endpoints: {/a: {rooms: [a], envelope: {ts_field: seq}}}\n", "envelope.ts_field 'seq' would replace the envelope's own 'seq'" },
        { "endpoints: {/a: {rooms: [a], envelope: {ts_field: \"a b\"}}}\n", "envelope.ts_field: expected 1 to 23 of [A-Za-z0-9_]" },
        { "endpoints: {/a: {rooms: [a], envelope: {timestamp: rfc822}}}\n", "timestamp must be one of ms, iso8601" },
        { "endpoints: {/a: {rooms: [a], envelope: {tz: utc}}}\n", "unknown key 'tz' in envelope" },
        { "endpoints: {/a: {rooms: [a], envelope: iso}}\n", "envelope: expected a mapping" },
        { "endpoints: {/a: {rooms: [a], request_alias: data.type}}\n", "request_alias must be one of none, data.subscription_type" },
        /* a fallback chain that reads the payload still needs rooms_allowed (issue 15, point 4) */
        { "routes:\n  - {match: \"v/{id}\", rooms: [\"{id|payload.mode|p}\"]}\n", "list the rooms it may select in 'rooms_allowed'" },
        { "routes:\n  - {match: \"v/{id}\", rooms: [\"{payload.a|fleet|p}\"], rooms_allowed: [p]}\n",
          "template names {fleet} but the pattern has no capture fleet" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config_diag d = { 0 };
        assert_null(load_str(bad[i].yaml, &d));
        bool ok = d.n >= 1 && strstr(d.msgs[0], bad[i].want);
        if (!ok)
            print_error("case %zu: got '%s', want '%s'\n", i, d.n ? d.msgs[0] : "(none)", bad[i].want);
        config_diag_free(&d);
        assert_true(ok);
    }
    struct config_diag d = { 0 };
    struct tb_config *c = load_str(
        "routes:\n"
        "  - {match: a, rooms: [a], keep_last: true}\n"
        "  - {match: b, rooms: [a], keep_last: per_topic, keep_last_max: 50, keep_last_ttl: 1h}\n"
        "  - {match: c, rooms: [a], keep_last: {by: payload.vehicle.id}}\n"
        "  - {match: d, rooms: [a], keep_last: false}\n", &d);
    assert_non_null(c);
    assert_true(c->routes[0].keep_last);
    assert_int_equal(c->routes[0].keep_by, CFG_KEEP_TYPE);
    assert_int_equal(c->routes[0].keep_last_max, 10000);
    assert_int_equal(c->routes[0].keep_last_ttl_ms, 0);
    assert_int_equal(c->routes[1].keep_by, CFG_KEEP_TOPIC);
    assert_int_equal(c->routes[1].keep_last_max, 50);
    assert_int_equal(c->routes[1].keep_last_ttl_ms, 3600000);
    assert_int_equal(c->routes[2].keep_by, CFG_KEEP_FIELD);
    assert_string_equal(c->routes[2].keep_by_field, "vehicle.id");
    assert_false(c->routes[3].keep_last);
    config_unref(c);
    c = load_str("endpoints:\n  /a: {rooms: [a], envelope: {ts_field: timestamp, timestamp: iso8601}}\n"
                 "  /b: {same_as: /a}\n  /c: {rooms: [c]}\n", &d);
    assert_non_null(c);
    assert_true(c->endpoints[0].envelope.set);
    assert_string_equal(c->endpoints[1].envelope.ts_field, "timestamp");
    assert_int_equal(c->endpoints[1].envelope.timestamp, CFG_TS_ISO8601);
    assert_false(c->endpoints[2].envelope.set);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_pattern),
        cmocka_unit_test(test_bad_template),
        cmocka_unit_test(test_bad_expression),
        cmocka_unit_test(test_duplicate_endpoint),
        cmocka_unit_test(test_bad_alias),
        cmocka_unit_test(test_bad_alerts),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_env_missing),
        cmocka_unit_test(test_several_errors),
        cmocka_unit_test(test_inline_errors),
        cmocka_unit_test(test_keep_last_forms),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_writer_threads),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test(test_listen_and_protocol),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_restart_keeps_running_values),
        cmocka_unit_test(test_restart_identical),
        cmocka_unit_test(test_restart_null_strings),
        cmocka_unit_test(test_tls_pair_checked),
        cmocka_unit_test(test_deflate_keys),
        cmocka_unit_test(test_tls_restart_settings),
        cmocka_unit_test(test_restart_listen),
        cmocka_unit_test(test_restart_every_key),
        cmocka_unit_test(test_restart_engine_types),
        cmocka_unit_test(test_second_document_refused),
        cmocka_unit_test(test_limits_keys),
        cmocka_unit_test(test_duration_minimums),
        cmocka_unit_test(test_hardening_keys),
        cmocka_unit_test(test_cluster_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
