/* Unit tests for the alert state machine, driven by a fake monotonic clock (the now_ms
 * arguments) and a fake wall clock. Rules are built with the real topic / template /
 * expr compilers, the way config.c builds them. Single-threaded cmocka executable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alert.h"
#include "log.h"

/* ---- rule construction ------------------------------------------------------------- */

struct rule_spec {
    const char *name, *match, *when, *clear_when;
    uint64_t for_ms, inactive_for_ms;
    enum cfg_severity severity;
    const char *message, *key, *value_field, *publish_topic;
    const char *rooms[4];
};

static struct expr *compile_expr(const char *src)
{
    if (!src)
        return NULL;
    char err[256];
    int col = 0;
    struct expr *e = expr_compile(src, err, sizeof(err), &col);
    if (!e)
        fail_msg("expr '%s': col %d: %s", src, col, err);
    return e;
}

static struct tmpl *compile_tmpl(const char *src, const struct topic_pattern *p, unsigned flags)
{
    if (!src)
        return NULL;
    char err[256];
    int col = 0;
    struct tmpl *t = tmpl_compile(src, p, flags, err, sizeof(err), &col);
    if (!t)
        fail_msg("template '%s': col %d: %s", src, col, err);
    return t;
}

static void rule_build(struct cfg_alert *a, const struct rule_spec *s)
{
    char err[256];
    int col = 0;
    memset(a, 0, sizeof(*a));
    a->name = strdup(s->name);
    a->match_src = strdup(s->match);
    a->match = topic_pattern_compile(s->match, err, sizeof(err), &col);
    if (!a->match)
        fail_msg("pattern '%s': %s", s->match, err);
    a->when = compile_expr(s->when);
    a->clear_when = compile_expr(s->clear_when);
    a->for_ms = s->for_ms;
    a->inactive_for_ms = s->inactive_for_ms;
    a->severity = s->severity;
    a->message = compile_tmpl(s->message, a->match, TMPL_BARE_FIELDS);
    a->key = compile_tmpl(s->key, a->match, 0);
    a->value_field = s->value_field ? strdup(s->value_field) : NULL;
    while (a->n_rooms < 4 && s->rooms[a->n_rooms])
        a->n_rooms++;
    a->rooms = a->n_rooms ? calloc(a->n_rooms, sizeof(*a->rooms)) : NULL;
    for (size_t i = 0; i < a->n_rooms; i++)
        a->rooms[i] = compile_tmpl(s->rooms[i], a->match, 0);
    if (s->publish_topic) {
        struct topic_pattern *kn = topic_pattern_compile("{key}/{name}", err, sizeof(err), &col);
        assert_non_null(kn);
        a->publish_topic = compile_tmpl(s->publish_topic, kn, 0);
        topic_pattern_free(kn);
    }
}

static const struct rule_spec overheat = {
    .name = "engine_overheat", .match = "vehicle/{id}/telemetry",
    .when = "engine_metrics.temperature > 110", .clear_when = "engine_metrics.temperature < 100",
    .for_ms = 5000, .severity = CFG_SEV_CRITICAL,
    .message = "Engine temperature {engine_metrics.temperature} C",
    .rooms = {"alerts", "vehicle:{id}"},
};

static const struct rule_spec overheat_now = {
    .name = "overheat_now", .match = "vehicle/{id}/telemetry",
    .when = "engine_metrics.temperature > 110", .severity = CFG_SEV_WARNING,
};

static const struct rule_spec offline = {
    .name = "vehicle_offline", .match = "vehicle/{id}/telemetry",
    .inactive_for_ms = 30000, .severity = CFG_SEV_WARNING,
    .message = "Vehicle {id} is offline", .rooms = {"alerts", "vehicle:{id}"},
};

/* ---- fixture ----------------------------------------------------------------------- */

struct fx {
    struct alert_engine *e;
    struct alert_events ev;
    struct cfg_alert rules[4];
    size_t n;
};

static uint64_t fake_wall;
static uint64_t wall_fn(void *ud)
{
    (void)ud;
    return fake_wall;
}

static struct fx *fx_new(const struct rule_spec *specs[], size_t n)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->e = alert_engine_new();
    assert_non_null(f->e);
    fake_wall = 1700000000000ull;
    alert_engine_set_wall_clock(f->e, wall_fn, NULL);
    for (size_t i = 0; i < n; i++)
        rule_build(&f->rules[i], specs[i]);
    f->n = n;
    assert_int_equal(alert_engine_set_rules(f->e, f->rules, n, &f->ev), 0);
    assert_int_equal(f->ev.n, 0);
    return f;
}

static void fx_free(struct fx *f)
{
    alert_engine_free(f->e);
    alert_events_free(&f->ev);
    for (size_t i = 0; i < f->n; i++)
        cfg_alert_free(&f->rules[i]);
    free(f);
}

/* Sends a message whose payload is 'json' (NULL: not JSON) at 'now'. */
static void msg(struct fx *f, const char *topic, const char *json, uint64_t now)
{
    cJSON *p = json ? cJSON_Parse(json) : NULL;
    if (json && !p)
        fail_msg("bad test JSON %s", json);
    alert_engine_on_message(f->e, topic, p, now, &f->ev);
    cJSON_Delete(p);
}

static void temp(struct fx *f, const char *vehicle, double t, uint64_t now)
{
    char topic[128], json[128];
    snprintf(topic, sizeof(topic), "vehicle/%s/telemetry", vehicle);
    snprintf(json, sizeof(json), "{\"engine_metrics\":{\"temperature\":%g}}", t);
    msg(f, topic, json, now);
}

static size_t count_kind(const struct fx *f, enum alert_event_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < f->ev.n; i++)
        n += f->ev.v[i].kind == k;
    return n;
}

static bool has_event(const struct fx *f, enum alert_event_kind k, const char *id)
{
    for (size_t i = 0; i < f->ev.n; i++)
        if (f->ev.v[i].kind == k && strcmp(f->ev.v[i].alert.id, id) == 0)
            return true;
    return false;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_for_holds_raises_once(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat};
    struct fx *f = fx_new(specs, 1);
    for (uint64_t t = 0; t < 5000; t += 500)
        temp(f, "car1", 115, t);
    assert_int_equal(f->ev.n, 0);
    fake_wall += 5000;
    temp(f, "car1", 117, 5000);
    assert_int_equal(f->ev.n, 1);
    const struct alert *a = &f->ev.v[0].alert;
    assert_int_equal(f->ev.v[0].kind, ALERT_EV_RAISED);
    assert_string_equal(a->id, "engine_overheat:car1");
    assert_string_equal(a->rule, "engine_overheat");
    assert_string_equal(a->key, "car1");
    assert_string_equal(a->message, "Engine temperature 117 C");
    assert_int_equal(a->severity, CFG_SEV_CRITICAL);
    assert_true(cJSON_IsNumber(a->value));
    assert_true(a->value->valuedouble == 117);
    assert_int_equal(a->raised_at, 1700000005000ull);
    assert_int_equal(a->cleared_at, 0);
    assert_int_equal(a->state, ALERT_ACTIVE);
    assert_false(a->acknowledged);
    assert_int_equal(a->n_rooms, 2);
    assert_string_equal(a->rooms[0], "alerts");
    assert_string_equal(a->rooms[1], "vehicle:car1");
    assert_string_equal(a->publish_topic, "alerts/car1/engine_overheat");
    assert_int_equal(alert_engine_count_active(f->e), 1);
    assert_non_null(alert_engine_find(f->e, "engine_overheat:car1"));

    /* still hot: no second alert, from messages or ticks */
    alert_events_reset(&f->ev);
    for (uint64_t t = 5500; t < 20000; t += 500) {
        temp(f, "car1", 120, t);
        alert_engine_tick(f->e, t + 1, &f->ev);
    }
    assert_int_equal(f->ev.n, 0);
    assert_int_equal(alert_engine_count_active(f->e), 1);
    fx_free(f);
}

static void test_dip_resets_timer(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat};
    struct fx *f = fx_new(specs, 1);
    temp(f, "car1", 115, 0);
    temp(f, "car1", 112, 3000);
    temp(f, "car1", 105, 4000);    /* dip below 'when' (not below clear): the timer restarts */
    temp(f, "car1", 115, 4500);
    temp(f, "car1", 115, 5000);
    alert_engine_tick(f->e, 9000, &f->ev);
    temp(f, "car1", 115, 9400);
    assert_int_equal(f->ev.n, 0);
    temp(f, "car1", 115, 9500);    /* 5 s since 4500 */
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 1);
    fx_free(f);
}

static void test_tick_raises_pending(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat};
    struct fx *f = fx_new(specs, 1);
    temp(f, "car1", 111, 1000);
    temp(f, "car1", 118, 2000);
    alert_engine_tick(f->e, 5999, &f->ev);
    assert_int_equal(f->ev.n, 0);
    alert_engine_tick(f->e, 6000, &f->ev);
    assert_int_equal(f->ev.n, 1);
    /* rendered from the latest true payload */
    assert_string_equal(f->ev.v[0].alert.message, "Engine temperature 118 C");
    assert_true(f->ev.v[0].alert.value->valuedouble == 118);
    assert_string_equal(f->ev.v[0].alert.rooms[1], "vehicle:car1");
    temp(f, "car1", 118, 6100);
    alert_engine_tick(f->e, 7000, &f->ev);
    assert_int_equal(f->ev.n, 1);
    fx_free(f);
}

static void test_hysteresis(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat};
    struct fx *f = fx_new(specs, 1);
    temp(f, "car1", 115, 0);
    temp(f, "car1", 115, 5000);
    assert_int_equal(alert_engine_count_active(f->e), 1);
    alert_events_reset(&f->ev);
    /* between the thresholds: 'when' is false but 'clear_when' is not true yet */
    temp(f, "car1", 105, 6000);
    temp(f, "car1", 100, 7000);
    temp(f, "car1", 111, 8000);
    assert_int_equal(f->ev.n, 0);
    assert_int_equal(alert_engine_count_active(f->e), 1);
    fake_wall += 9000;
    temp(f, "car1", 99.5, 9000);
    assert_int_equal(f->ev.n, 1);
    const struct alert *a = &f->ev.v[0].alert;
    assert_int_equal(f->ev.v[0].kind, ALERT_EV_CLEARED);
    assert_int_equal(a->state, ALERT_CLEARED);
    assert_string_equal(a->reason, "condition cleared");
    assert_int_equal(a->cleared_at, 1700000009000ull);
    assert_string_equal(a->id, "engine_overheat:car1");
    assert_int_equal(alert_engine_count_active(f->e), 0);
    assert_null(alert_engine_find(f->e, "engine_overheat:car1"));
    /* and it can be raised again, after a fresh 5 s */
    temp(f, "car1", 115, 10000);
    temp(f, "car1", 115, 14999);
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 0);
    temp(f, "car1", 115, 15000);
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 1);
    fx_free(f);
}

static void test_default_clear_and_duplicates(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat_now};
    struct fx *f = fx_new(specs, 1);
    temp(f, "car1", 111, 0);
    temp(f, "car1", 112, 10);
    temp(f, "car1", 150, 20);
    temp(f, "car2", 150, 30);     /* another key: its own alert */
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 2);
    assert_int_equal(alert_engine_count_active(f->e), 2);
    /* defaults: message = rule name, rooms = [alerts], value = first field of 'when' */
    const struct alert *a = &f->ev.v[0].alert;
    assert_string_equal(a->message, "overheat_now");
    assert_int_equal(a->n_rooms, 1);
    assert_string_equal(a->rooms[0], "alerts");
    assert_true(a->value->valuedouble == 111);
    assert_string_equal(f->ev.v[1].alert.id, "overheat_now:car2");
    alert_events_reset(&f->ev);
    msg(f, "vehicle/car1/telemetry", NULL, 35);      /* not JSON: no information, no clear */
    assert_int_equal(f->ev.n, 0);
    temp(f, "car1", 110, 40);     /* no clear_when: clears when 'when' stops holding */
    assert_int_equal(count_kind(f, ALERT_EV_CLEARED), 1);
    assert_string_equal(f->ev.v[0].alert.id, "overheat_now:car1");
    assert_int_equal(alert_engine_count_active(f->e), 1);
    fx_free(f);
}

static void test_missing_field_never_raises(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat, &overheat_now};
    struct fx *f = fx_new(specs, 2);
    for (uint64_t t = 0; t <= 60000; t += 1000) {
        msg(f, "vehicle/car1/telemetry", "{\"speed\":10}", t);
        msg(f, "vehicle/car1/telemetry", "{\"engine_metrics\":{\"temperature\":\"hot\"}}", t);
        msg(f, "vehicle/car1/telemetry", "{\"engine_metrics\":7}", t);
        msg(f, "vehicle/car1/telemetry", "[115]", t);
        msg(f, "vehicle/car1/telemetry", NULL, t);
        msg(f, "vehicle/car1/other", "{\"engine_metrics\":{\"temperature\":200}}", t);
        alert_engine_tick(f->e, t, &f->ev);
    }
    assert_int_equal(f->ev.n, 0);
    assert_int_equal(alert_engine_count_active(f->e), 0);
    fx_free(f);
}

static void test_inactivity(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&offline};
    struct fx *f = fx_new(specs, 1);
    alert_engine_tick(f->e, 100000, &f->ev);   /* nothing seen yet: nothing to raise */
    assert_int_equal(f->ev.n, 0);
    msg(f, "vehicle/car1/telemetry", "{}", 100000);
    msg(f, "vehicle/car1/telemetry", NULL, 101000);   /* non-JSON counts as activity */
    alert_engine_tick(f->e, 130999, &f->ev);
    assert_int_equal(f->ev.n, 0);
    alert_engine_tick(f->e, 131000, &f->ev);
    assert_int_equal(f->ev.n, 1);
    const struct alert *a = &f->ev.v[0].alert;
    assert_string_equal(a->id, "vehicle_offline:car1");
    assert_string_equal(a->message, "Vehicle car1 is offline");
    assert_null(a->value);
    assert_string_equal(a->rooms[1], "vehicle:car1");
    alert_engine_tick(f->e, 140000, &f->ev);
    assert_int_equal(f->ev.n, 1);
    alert_events_reset(&f->ev);
    msg(f, "vehicle/car1/telemetry", "{}", 141000);   /* new telemetry clears it */
    assert_int_equal(f->ev.n, 1);
    assert_int_equal(f->ev.v[0].kind, ALERT_EV_CLEARED);
    assert_string_equal(f->ev.v[0].alert.reason, "telemetry resumed");
    alert_events_reset(&f->ev);
    alert_engine_tick(f->e, 170999, &f->ev);
    assert_int_equal(f->ev.n, 0);
    alert_engine_tick(f->e, 171000, &f->ev);
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 1);
    fx_free(f);
}

static void test_force_inactive(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&offline, &overheat};
    struct fx *f = fx_new(specs, 2);
    /* a key never seen (retained last will after a restart) */
    assert_int_equal(alert_engine_force_inactive(f->e, "car9", 5, &f->ev), 1);
    assert_int_equal(f->ev.n, 1);
    assert_string_equal(f->ev.v[0].alert.id, "vehicle_offline:car9");
    assert_string_equal(f->ev.v[0].alert.rooms[1], "vehicle:car9");
    assert_int_equal(alert_engine_force_inactive(f->e, "car9", 6, &f->ev), 0);
    alert_engine_tick(f->e, 1000000, &f->ev);
    assert_int_equal(f->ev.n, 1);
    /* a key seen a moment ago goes offline at once */
    msg(f, "vehicle/car1/telemetry", "{}", 10);
    assert_int_equal(alert_engine_force_inactive(f->e, "car1", 20, &f->ev), 1);
    assert_int_equal(alert_engine_count_active(f->e), 2);
    alert_events_reset(&f->ev);
    msg(f, "vehicle/car9/telemetry", "{}", 30);
    assert_int_equal(count_kind(f, ALERT_EV_CLEARED), 1);
    assert_int_equal(alert_engine_count_active(f->e), 1);
    fx_free(f);
}

static void test_ack(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat_now};
    struct fx *f = fx_new(specs, 1);
    temp(f, "car1", 120, 0);
    alert_events_reset(&f->ev);
    fake_wall += 42;
    assert_int_equal(alert_engine_ack(f->e, "overheat_now:car1", "alice", 1, &f->ev), 0);
    assert_int_equal(f->ev.n, 1);
    assert_int_equal(f->ev.v[0].kind, ALERT_EV_ACKED);
    assert_true(f->ev.v[0].alert.acknowledged);
    assert_string_equal(f->ev.v[0].alert.acknowledged_by, "alice");
    assert_int_equal(f->ev.v[0].alert.acknowledged_at, 1700000000042ull);
    assert_true(alert_engine_find(f->e, "overheat_now:car1")->acknowledged);
    assert_int_equal(alert_engine_ack(f->e, "overheat_now:car1", "bob", 2, &f->ev), 1);
    assert_int_equal(f->ev.n, 1);
    assert_int_equal(alert_engine_ack(f->e, "overheat_now:car2", "bob", 2, &f->ev), -1);
    assert_int_equal(alert_engine_ack(f->e, "nosuchrule:car1", NULL, 2, &f->ev), -1);
    assert_int_equal(alert_engine_ack(f->e, "overheat_now", NULL, 2, &f->ev), -1);
    assert_int_equal(alert_engine_ack(f->e, "", NULL, 2, &f->ev), -1);
    assert_int_equal(alert_engine_ack(f->e, NULL, NULL, 2, &f->ev), -1);
    assert_int_equal(f->ev.n, 1);
    /* a cleared alert is gone */
    temp(f, "car1", 90, 3);
    assert_int_equal(alert_engine_ack(f->e, "overheat_now:car1", "bob", 4, &f->ev), -1);
    fx_free(f);
}

static void test_set_rules_keeps_and_clears(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat, &overheat_now, &offline};
    struct fx *f = fx_new(specs, 3);
    temp(f, "car1", 120, 0);           /* overheat pending, overheat_now active */
    temp(f, "car2", 120, 0);
    alert_engine_tick(f->e, 5000, &f->ev);   /* overheat car1+car2 active */
    temp(f, "car3", 120, 6000);        /* overheat pending for car3, overheat_now active */
    assert_int_equal(alert_engine_count_active(f->e), 5);
    alert_events_reset(&f->ev);

    /* new snapshot: overheat survives (new cfg objects, same name and match), overheat_now
     * is removed, vehicle_offline changes its match source (a different rule now) */
    struct rule_spec moved = offline;
    moved.match = "car/{id}/telemetry";
    struct cfg_alert next[2];
    rule_build(&next[0], &overheat);
    rule_build(&next[1], &moved);
    assert_int_equal(alert_engine_set_rules(f->e, next, 2, &f->ev), 0);
    for (size_t i = 0; i < f->n; i++)
        cfg_alert_free(&f->rules[i]);    /* the old snapshot is gone: nothing may point into it */
    f->n = 0;
    assert_int_equal(f->ev.n, 3);
    for (size_t i = 0; i < f->ev.n; i++) {
        assert_int_equal(f->ev.v[i].kind, ALERT_EV_CLEARED);
        assert_string_equal(f->ev.v[i].alert.reason, "rule removed");
        assert_string_equal(f->ev.v[i].alert.rule, "overheat_now");
    }
    assert_int_equal(alert_engine_count_active(f->e), 2);
    assert_non_null(alert_engine_find(f->e, "engine_overheat:car1"));
    alert_events_reset(&f->ev);
    /* the pending timer of car3 survived the reload */
    temp(f, "car3", 120, 11000);
    assert_int_equal(count_kind(f, ALERT_EV_RAISED), 1);
    assert_string_equal(f->ev.v[0].alert.id, "engine_overheat:car3");
    /* the surviving alerts still clear with the new rule */
    temp(f, "car1", 90, 12000);
    assert_int_equal(count_kind(f, ALERT_EV_CLEARED), 1);
    assert_int_equal(alert_engine_count_active(f->e), 2);

    alert_events_reset(&f->ev);
    assert_int_equal(alert_engine_set_rules(f->e, NULL, 0, &f->ev), 0);
    assert_int_equal(count_kind(f, ALERT_EV_CLEARED), 2);
    assert_int_equal(alert_engine_count_active(f->e), 0);
    cfg_alert_free(&next[0]);
    cfg_alert_free(&next[1]);
    fx_free(f);
}

static void test_json_and_restore(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat, &offline};
    struct fx *f = fx_new(specs, 2);
    temp(f, "car1", 120, 0);
    temp(f, "car1", 121, 5000);
    assert_int_equal(alert_engine_ack(f->e, "engine_overheat:car1", "ops", 5001, &f->ev), 0);
    cJSON *j = alert_to_json(alert_engine_find(f->e, "engine_overheat:car1"));
    assert_non_null(j);
    const char *fields[] = {"id", "rule", "type", "severity", "message", "key", "value", "raised_at",
                            "cleared_at", "acknowledged", "acknowledged_by", "state", "reason", "rooms"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!cJSON_HasObjectItem(j, fields[i]))
            fail_msg("alert JSON lacks %s", fields[i]);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "engine_overheat");
    assert_string_equal(cJSON_GetObjectItem(j, "severity")->valuestring, "critical");
    assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, "active");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "cleared_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
    assert_true(cJSON_GetObjectItem(j, "value")->valuedouble == 121);

    /* a restarted bridge: a fresh engine, the same rules, the retained JSON */
    struct fx *g = fx_new(specs, 2);
    fake_wall = 1800000000000ull;
    assert_int_equal(alert_engine_restore(g->e, j), 0);
    assert_int_equal(alert_engine_restore(g->e, j), 0);     /* idempotent */
    assert_int_equal(alert_engine_count_active(g->e), 1);
    assert_int_equal(g->ev.n, 0);
    const struct alert *r = alert_engine_find(g->e, "engine_overheat:car1");
    assert_non_null(r);
    cJSON *j2 = alert_to_json(r);
    assert_true(cJSON_Compare(j, j2, true));    /* same alert, same timestamps */
    cJSON_Delete(j2);
    assert_int_equal(alert_engine_ack(g->e, r->id, "x", 0, &g->ev), 1);
    /* still hot after restart: no duplicate; cooled down: cleared */
    temp(g, "car1", 125, 100);
    temp(g, "car1", 125, 10000);
    assert_int_equal(g->ev.n, 0);
    temp(g, "car1", 80, 11000);
    assert_int_equal(count_kind(g, ALERT_EV_CLEARED), 1);
    assert_int_equal(alert_engine_count_active(g->e), 0);

    /* what restore refuses */
    cJSON_ReplaceItemInObject(j, "state", cJSON_CreateString("cleared"));
    assert_int_equal(alert_engine_restore(g->e, j), -1);
    cJSON_ReplaceItemInObject(j, "state", cJSON_CreateString("active"));
    cJSON_ReplaceItemInObject(j, "rule", cJSON_CreateString("gone"));
    assert_int_equal(alert_engine_restore(g->e, j), -1);
    cJSON_DeleteItemFromObject(j, "key");
    assert_int_equal(alert_engine_restore(g->e, j), -1);
    cJSON *junk = cJSON_Parse("[1]");
    assert_int_equal(alert_engine_restore(g->e, junk), -1);
    assert_int_equal(alert_engine_restore(g->e, NULL), -1);
    cJSON_Delete(junk);
    cJSON_Delete(j);

    /* an inactivity alert without rooms in its JSON gets them from the rule */
    cJSON *o = cJSON_Parse("{\"rule\":\"vehicle_offline\",\"key\":\"car5\",\"state\":\"active\","
                           "\"raised_at\":5,\"severity\":\"info\"}");
    assert_int_equal(alert_engine_restore(g->e, o), 0);
    cJSON_Delete(o);
    r = alert_engine_find(g->e, "vehicle_offline:car5");
    assert_non_null(r);
    assert_int_equal(r->severity, CFG_SEV_INFO);
    assert_int_equal(r->raised_at, 5);
    assert_string_equal(r->rooms[1], "vehicle:car5");
    alert_events_reset(&g->ev);
    alert_engine_tick(g->e, 10000000, &g->ev);      /* not seen since restart: no re-raise */
    assert_false(has_event(g, ALERT_EV_RAISED, "vehicle_offline:car5"));
    assert_true(has_event(g, ALERT_EV_RAISED, "vehicle_offline:car1"));   /* quiet since 11 s */
    msg(g, "vehicle/car5/telemetry", "{}", 10000001);
    assert_true(has_event(g, ALERT_EV_CLEARED, "vehicle_offline:car5"));
    fx_free(g);
    fx_free(f);
}

static int collect(const struct alert *a, void *ud)
{
    size_t *n = ud;
    (*n)++;
    return strcmp(a->key, "stop") == 0;
}

static void test_foreach_active(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&overheat, &overheat_now};
    struct fx *f = fx_new(specs, 2);
    temp(f, "car1", 120, 0);
    temp(f, "car1", 120, 5000);
    temp(f, "car2", 120, 5000);
    assert_int_equal(alert_engine_count_active(f->e), 3);
    size_t n = 0;
    assert_int_equal(alert_engine_foreach_active(f->e, "alerts", collect, &n), 3);
    n = 0;
    assert_int_equal(alert_engine_foreach_active(f->e, "vehicle:car1", collect, &n), 1);
    assert_int_equal(n, 1);
    assert_int_equal(alert_engine_foreach_active(f->e, "vehicle:car2", collect, &n), 0);
    assert_int_equal(alert_engine_foreach_active(f->e, NULL, collect, &n), 3);
    fx_free(f);
}

static void test_templates_key_and_topic(void **state)
{
    (void)state;
    static const struct rule_spec spec = {
        .name = "low_battery", .match = "fleet/{group}/{id}", .when = "battery.soc < 20",
        .key = "{group}-{payload.vin}", .value_field = "battery",
        .message = "Battery {battery.soc}% {battery.missing}",
        .publish_topic = "ops/{name}/{key}", .rooms = {"fleet:{group}", "{payload.team|all}"},
    };
    const struct rule_spec *specs[] = {&spec};
    struct fx *f = fx_new(specs, 1);
    msg(f, "fleet/north/x1", "{\"battery\":{\"soc\":10}}", 0);          /* no vin: no key */
    assert_int_equal(f->ev.n, 0);
    msg(f, "fleet/north/x1", "{\"vin\":\"V1\",\"battery\":{\"soc\":10}}", 0);
    assert_int_equal(f->ev.n, 1);
    const struct alert *a = &f->ev.v[0].alert;
    assert_string_equal(a->id, "low_battery:north-V1");
    assert_string_equal(a->publish_topic, "ops/low_battery/north-V1");
    assert_string_equal(a->message, "low_battery");   /* a field without default is missing */
    assert_null(a->value);                            /* an object is not a value */
    assert_int_equal(a->n_rooms, 2);
    assert_string_equal(a->rooms[0], "fleet:north");
    assert_string_equal(a->rooms[1], "all");
    fx_free(f);
}

static void test_events_reset_and_free(void **state)
{
    (void)state;
    struct alert_events ev = {0};
    alert_events_reset(&ev);
    alert_events_free(&ev);
    alert_events_free(NULL);
    alert_engine_free(NULL);
    assert_string_equal(alert_event_kind_name(ALERT_EV_RAISED), "alert");
    assert_string_equal(alert_event_kind_name(ALERT_EV_CLEARED), "alert_cleared");
    assert_string_equal(alert_event_kind_name(ALERT_EV_ACKED), "alert_acknowledged");
    /* many keys and events: the list grows and frees cleanly */
    const struct rule_spec *specs[] = {&overheat_now};
    struct fx *f = fx_new(specs, 1);
    char v[32];
    for (int i = 0; i < 500; i++) {
        snprintf(v, sizeof(v), "car%d", i);
        temp(f, v, 120, (uint64_t)i);
    }
    assert_int_equal(f->ev.n, 500);
    assert_int_equal(alert_engine_count_active(f->e), 500);
    for (int i = 0; i < 500; i += 2) {
        snprintf(v, sizeof(v), "car%d", i);
        temp(f, v, 20, 1000);
    }
    assert_int_equal(alert_engine_count_active(f->e), 250);
    fx_free(f);
}

/* Memory stays bounded: a rule tracks at most ALERT_MAX_KEYS_PER_RULE keys. */
static void test_key_cap(void **state)
{
    (void)state;
    const struct rule_spec *specs[] = {&offline};
    struct fx *f = fx_new(specs, 1);
    char topic[64];
    for (int i = 0; i < ALERT_MAX_KEYS_PER_RULE + 10; i++) {
        snprintf(topic, sizeof(topic), "vehicle/v%d/telemetry", i);
        msg(f, topic, NULL, 0);
    }
    alert_engine_tick(f->e, 30000, &f->ev);
    assert_int_equal(alert_engine_count_active(f->e), ALERT_MAX_KEYS_PER_RULE);
    assert_int_equal(alert_engine_force_inactive(f->e, "v-new", 30000, &f->ev), 0);
    fx_free(f);
}

/* The rules as config.c builds them from YAML (defaults for key, rooms, publish_topic,
 * message and value_field included) drive the engine the same way. */
static void test_rules_from_config(void **state)
{
    (void)state;
    static const char yaml[] =
        "alerts:\n"
        "  - name: engine_overheat\n"
        "    match: vehicle/{id}/telemetry\n"
        "    when: engine_metrics.temperature > 110\n"
        "    for: 5s\n"
        "    clear_when: engine_metrics.temperature < 100\n"
        "    severity: critical\n"
        "    message: \"Engine temperature {engine_metrics.temperature} C\"\n"
        "    rooms: [alerts, \"vehicle:{id}\"]\n"
        "  - name: vehicle_offline\n"
        "    match: vehicle/{id}/telemetry\n"
        "    inactive_for: 30s\n"
        "  - name: speeding\n"
        "    match: vehicle/{id}/telemetry\n"
        "    when: speed > 130\n"
        "    publish_topic: \"ops/{name}/{key}\"\n";
    struct config_diag diag = {0};
    struct tb_config *c = config_load_string("test.yaml", yaml, sizeof(yaml) - 1, &diag);
    for (size_t i = 0; i < diag.n; i++)
        print_error("%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    assert_non_null(c);
    assert_int_equal(c->n_alerts, 3);

    struct alert_engine *e = alert_engine_new();
    struct alert_events ev = {0};
    fake_wall = 1;
    alert_engine_set_wall_clock(e, wall_fn, NULL);
    assert_int_equal(alert_engine_set_rules(e, c->alerts, c->n_alerts, &ev), 0);
    const char *hot = "{\"engine_metrics\":{\"temperature\":112},\"speed\":150}";
    cJSON *p = cJSON_Parse(hot);
    alert_engine_on_message(e, "vehicle/car1/telemetry", p, 0, &ev);
    alert_engine_on_message(e, "vehicle/car1/telemetry", p, 5000, &ev);
    cJSON_Delete(p);
    alert_engine_tick(e, 35000, &ev);
    assert_int_equal(ev.n, 3);
    const struct alert *a = &ev.v[0].alert;          /* speeding: at once, defaults */
    assert_string_equal(a->id, "speeding:car1");
    assert_string_equal(a->message, "speeding");
    assert_int_equal(a->severity, CFG_SEV_WARNING);
    assert_true(a->value->valuedouble == 150);
    assert_string_equal(a->publish_topic, "ops/speeding/car1");
    assert_string_equal(a->rooms[0], "alerts");
    a = &ev.v[1].alert;                               /* overheat after 5 s */
    assert_string_equal(a->id, "engine_overheat:car1");
    assert_string_equal(a->message, "Engine temperature 112 C");
    assert_true(a->value->valuedouble == 112);
    assert_string_equal(a->publish_topic, "alerts/car1/engine_overheat");
    assert_string_equal(a->rooms[1], "vehicle:car1");
    a = &ev.v[2].alert;                               /* quiet for 30 s */
    assert_string_equal(a->id, "vehicle_offline:car1");
    assert_string_equal(a->message, "vehicle_offline");
    assert_null(a->value);

    /* a reload with the same file keeps everything */
    struct tb_config *c2 = config_load_string("test.yaml", yaml, sizeof(yaml) - 1, &diag);
    assert_non_null(c2);
    alert_events_reset(&ev);
    assert_int_equal(alert_engine_set_rules(e, c2->alerts, c2->n_alerts, &ev), 0);
    config_unref(c);
    assert_int_equal(ev.n, 0);
    assert_int_equal(alert_engine_count_active(e), 3);
    alert_engine_free(e);
    alert_events_free(&ev);
    config_unref(c2);
}

int main(void)
{
    log_set_level(TB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_for_holds_raises_once),
        cmocka_unit_test(test_dip_resets_timer),
        cmocka_unit_test(test_tick_raises_pending),
        cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_default_clear_and_duplicates),
        cmocka_unit_test(test_missing_field_never_raises),
        cmocka_unit_test(test_inactivity),
        cmocka_unit_test(test_force_inactive),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_set_rules_keeps_and_clears),
        cmocka_unit_test(test_json_and_restore),
        cmocka_unit_test(test_foreach_active),
        cmocka_unit_test(test_templates_key_and_topic),
        cmocka_unit_test(test_events_reset_and_free),
        cmocka_unit_test(test_key_cap),
        cmocka_unit_test(test_rules_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
