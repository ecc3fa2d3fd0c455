/*
 * bench_alerts: what alert evaluation costs per MQTT message, with 50 rules.
 *
 * Why: every telemetry message the bridge routes also goes through every alert rule whose
 * pattern matches (alert_runtime_on_message -> alert_engine_on_message), on the service
 * thread that also does all WebSocket fan-out. This prints what that costs, so a change
 * to the engine, the expression evaluator or the topic matcher shows up as a number.
 *
 * How: 50 rules are loaded through the real config loader (config_load_string) - 45
 * condition rules over the simulator's fields (comparisons, and/or/not, some with 'for'
 * and 'clear_when') and 5 inactivity rules - and fed a realistic simulator telemetry
 * payload for V vehicles round-robin, N messages per scenario:
 *   quiet      no condition holds (the normal case: one key render + one evaluation per rule)
 *   active     every vehicle overheating (131.5 C): the temperature rules' alerts are
 *              active, each message evaluates their clear conditions instead
 *   parse+eval 'quiet' plus cJSON_Parse of the payload per message (the bridge parses
 *              once per message for routing and alerts together)
 *   tick       alert_engine_tick over V vehicles' inactivity state
 * Figures: ns per message (per tick), messages per second. Single thread, no I/O.
 *
 *   bench_alerts [-n MESSAGES] [-v VEHICLES]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "config.h"
#include "log.h"
#include "sbuf.h"

#define N_RULES 50

static const char *const payload_fmt =
    "{\"vehicle_id\":\"veh-%05u\",\"timestamp\":\"2026-11-22T01:02:03.456Z\",\"ts_ms\":1795309823456,"
    "\"simulation_mode\":\"personal\",\"speed\":87.4,\"acceleration\":0.42,"
    "\"engine_metrics\":{\"temperature\":%.1f,\"rpm\":2430,\"oil_pressure\":2.61},"
    "\"battery_metrics\":{\"voltage\":12.61,\"level\":78.2},"
    "\"fuel_metrics\":{\"level\":54.3,\"consumption\":6.8},"
    "\"location\":{\"latitude\":48.137154,\"longitude\":11.576124,\"heading\":271.5},"
    "\"odometer\":18234.55,\"gear\":5}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 45 condition rules cycling through realistic checks with varied thresholds, 5 inactivity.
 * Each 'when' / 'clear_when' is a format taking the threshold base + the rule's step. */
static char *rules_yaml(void)
{
    static const struct {
        const char *when, *clear, *for_;
        int base, clear_base;
    } kinds[] = {
        {"engine_metrics.temperature > %d", "engine_metrics.temperature < %d", "5s", 110, 100},
        {"engine_metrics.oil_pressure < 1.%d", "engine_metrics.oil_pressure > 2.%d", "3s", 0, 0},
        {"battery_metrics.level < %d", "battery_metrics.level > %d", NULL, 10, 20},
        {"speed > 1%d0 and simulation_mode == \"fleet\"", NULL, "10s", 0, 0},
        {"acceleration < -%d", NULL, NULL, 5, 0},
        {"fuel_metrics.level < %d or fuel_metrics.consumption > 30", NULL, NULL, 5, 0},
        {"engine_metrics.rpm > 6%d00 and not (gear == 1)", NULL, "2s", 0, 0},
        {"battery_metrics.voltage < 11.%d", NULL, "5s", 0, 0},
        {"(engine_metrics.temperature > 1%d0 or engine_metrics.oil_pressure < 0.8) and speed > 10",
         NULL, NULL, 0, 0},
    };
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "mqtt: {host: 127.0.0.1}\nendpoints:\n  /ws/alerts: {rooms: [alerts]}\n"
                  "routes:\n  - match: vehicle/{id}/telemetry\n    rooms: [\"vehicle:{id}\"]\nalerts:\n");
    size_t nk = sizeof kinds / sizeof kinds[0];
    for (int i = 0; i < N_RULES - 5; i++) {
        size_t k = (size_t)i % nk;
        int step = 1 + i / (int)nk;
        char text[200];
        snprintf(text, sizeof text, kinds[k].when, kinds[k].base + step);
        sbuf_printf(&b, "  - name: rule_%02d\n    match: vehicle/{id}/telemetry\n    when: '%s'\n", i, text);
        if (kinds[k].clear) {
            snprintf(text, sizeof text, kinds[k].clear, kinds[k].clear_base + step);
            sbuf_printf(&b, "    clear_when: '%s'\n", text);
        }
        if (kinds[k].for_)
            sbuf_printf(&b, "    for: %s\n", kinds[k].for_);
        sbuf_printf(&b, "    severity: warning\n    message: \"rule %d: {engine_metrics.temperature} on {id}\"\n"
                        "    rooms: [alerts, \"vehicle:{id}\"]\n", i);
    }
    for (int i = 0; i < 5; i++)
        sbuf_printf(&b, "  - name: quiet_%d\n    match: vehicle/{id}/telemetry\n    inactive_for: %ds\n"
                        "    severity: warning\n    rooms: [alerts]\n", i, 30 + i);
    if (sbuf_failed(&b))
        return NULL;
    sbuf_append(&b, "", 1);
    return b.data;
}

struct feed {
    char **topics;
    cJSON **payloads;
    char **texts;
    unsigned v;
};

static int feed_init(struct feed *f, unsigned v, double temp)
{
    f->v = v;
    f->topics = calloc(v, sizeof *f->topics);
    f->payloads = calloc(v, sizeof *f->payloads);
    f->texts = calloc(v, sizeof *f->texts);
    if (!f->topics || !f->payloads || !f->texts)
        return -1;
    for (unsigned i = 0; i < v; i++) {
        char t[64], p[1024];
        snprintf(t, sizeof t, "vehicle/veh-%05u/telemetry", i);
        snprintf(p, sizeof p, payload_fmt, i, temp);
        f->topics[i] = strdup(t);
        f->texts[i] = strdup(p);
        f->payloads[i] = cJSON_Parse(p);
        if (!f->topics[i] || !f->texts[i] || !f->payloads[i])
            return -1;
    }
    return 0;
}

static void feed_free(struct feed *f)
{
    for (unsigned i = 0; i < f->v; i++) {
        free(f->topics[i]);
        free(f->texts[i]);
        cJSON_Delete(f->payloads[i]);
    }
    free(f->topics);
    free(f->payloads);
    free(f->texts);
}

static void report(const char *name, double secs, unsigned long n, size_t events, size_t active)
{
    printf("%-11s %10lu msgs  %8.1f ns/msg  %11.0f msgs/s  (events %zu, active alerts %zu)\n", name, n,
           secs * 1e9 / (double)n, (double)n / secs, events, active);
}

static double run(struct alert_engine *e, const struct feed *f, unsigned long n, bool parse,
                  uint64_t *clock_ms, struct alert_events *ev, size_t *events)
{
    double t0 = now_s();
    for (unsigned long i = 0; i < n; i++) {
        unsigned k = (unsigned)(i % f->v);
        if (k == 0)
            (*clock_ms) += 100;   /* simulated time: every vehicle reports every 100 ms */
        if (parse) {
            cJSON *j = cJSON_Parse(f->texts[k]);
            alert_engine_on_message(e, f->topics[k], j, *clock_ms, ev);
            cJSON_Delete(j);
        } else {
            alert_engine_on_message(e, f->topics[k], f->payloads[k], *clock_ms, ev);
        }
        if (ev->n) {
            *events += ev->n;
            alert_events_reset(ev);
        }
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    unsigned long n = 2000000;
    unsigned v = 1000;
    int c;
    while ((c = getopt(argc, argv, "n:v:h")) != -1) {
        switch (c) {
        case 'n': n = strtoul(optarg, NULL, 10); break;
        case 'v': v = (unsigned)strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-n MESSAGES] [-v VEHICLES]\n", argv[0]);
            return c == 'h' ? 0 : 2;
        }
    }
    if (!n || !v)
        return 2;
    log_set_level(TB_LOG_WARN);   /* raises and clears are logged at info */
    char *yaml = rules_yaml();
    struct config_diag diag = {0};
    struct tb_config *cfg = yaml ? config_load_string("bench-rules", yaml, strlen(yaml), &diag) : NULL;
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    free(yaml);
    if (!cfg || cfg->n_alerts != N_RULES) {
        fprintf(stderr, "bench_alerts: rules did not load\n");
        return 1;
    }
    struct feed quiet = {0}, hot = {0};
    if (feed_init(&quiet, v, 91.5) < 0 || feed_init(&hot, v, 131.5) < 0) {
        fprintf(stderr, "bench_alerts: out of memory\n");
        return 1;
    }
    printf("bench_alerts: %zu rules (%d inactivity), %u vehicles, payload %zu bytes\n", cfg->n_alerts, 5, v,
           strlen(quiet.texts[0]));

    struct alert_engine *e = alert_engine_new();
    struct alert_events ev = {0};
    alert_engine_set_rules(e, cfg->alerts, cfg->n_alerts, &ev);
    uint64_t clock_ms = 1000000;
    size_t events = 0;

    run(e, &quiet, v * 10ul, false, &clock_ms, &ev, &events);   /* warm-up: key tables built */
    events = 0;
    double s = run(e, &quiet, n, false, &clock_ms, &ev, &events);
    report("quiet", s, n, events, alert_engine_count_active(e));

    run(e, &hot, v * 100ul, false, &clock_ms, &ev, &events);   /* past every 'for': alerts raised */
    events = 0;
    s = run(e, &hot, n, false, &clock_ms, &ev, &events);
    report("active", s, n, events, alert_engine_count_active(e));

    run(e, &quiet, v * 2ul, false, &clock_ms, &ev, &events);   /* clear them again */
    events = 0;
    s = run(e, &quiet, n, true, &clock_ms, &ev, &events);
    report("parse+eval", s, n, events, alert_engine_count_active(e));

    unsigned long ticks = 2000;
    double t0 = now_s();
    for (unsigned long i = 0; i < ticks; i++)
        alert_engine_tick(e, clock_ms, &ev);
    s = now_s() - t0;
    printf("%-11s %10lu ticks %8.1f us/tick (%u vehicles x %d inactivity rules)\n", "tick", ticks,
           s * 1e6 / (double)ticks, v, 5);

    alert_events_free(&ev);
    alert_engine_free(e);
    feed_free(&quiet);
    feed_free(&hot);
    config_unref(cfg);
    return 0;
}
