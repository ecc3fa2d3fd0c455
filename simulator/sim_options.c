/* sim_options: the option table and its parser (see sim_options.h). */
#include "sim_options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vehicle_model.h"

enum kind { K_LONG, K_DOUBLE, K_STRING, K_FLAG, K_SPECIAL };

struct row {
    const char *name;
    enum kind kind;
    size_t off;        /* field offset for LONG/DOUBLE/STRING/FLAG */
    size_t size;       /* STRING: buffer size */
    double min, max;
    const char *arg, *help;
};

#define F(field) offsetof(struct sim_options, field)
#define S(field) sizeof(((struct sim_options *)0)->field)

static const struct row rows[] = {
    {"vehicles", K_LONG, F(vehicles), 0, 1, SIM_MAX_VEHICLES, "N", "vehicles to simulate (1..100000, default 10)"},
    {"rate", K_DOUBLE, F(rate), 0, 0.001, 1000, "HZ", "telemetry messages per vehicle per second (default 1)"},
    {"interval", K_SPECIAL, 0, 0, 0.001, 1000, "S", "seconds between messages of a vehicle (= --rate 1/S)"},
    {"duration", K_DOUBLE, F(duration), 0, 0, 1e9, "S", "stop after S seconds (default 0 = until Ctrl-C)"},
    {"mode", K_SPECIAL, 0, 0, 0, 0, "M", "personal | fleet | mixed (half each) (default personal)"},
    {"seed", K_SPECIAL, 0, 0, 0, 0, "S", "seed for reproducible values (default: random, printed)"},
    {"host", K_STRING, F(host), S(host), 0, 0, "H", "broker host (default 127.0.0.1)"},
    {"port", K_LONG, F(port), 0, 1, 65535, "P", "broker port (default 1883)"},
    {"username", K_STRING, F(username), S(username), 0, 0, "U", "MQTT username"},
    {"password", K_STRING, F(password), S(password), 0, 0, "P", "MQTT password"},
    {"qos", K_LONG, F(qos), 0, 0, 2, "Q", "QoS of telemetry (0..2, default 0)"},
    {"protocol", K_SPECIAL, 0, 0, 0, 0, "V", "MQTT protocol 311 | 5 (default 311)"},
    {"id-prefix", K_STRING, F(id_prefix), S(id_prefix), 0, 0, "P", "vehicle id prefix (default veh-)"},
    {"anomaly-rate", K_DOUBLE, F(anomaly_rate), 0, 0, 1, "P", "chance per vehicle per second of a random anomaly"},
    {"anomaly", K_SPECIAL, 0, 0, 0, 0, "A[,A]", "overheat | low_battery | low_oil_pressure | harsh_braking"},
    {"connections", K_LONG, F(connections), 0, 1, SIM_MAX_CONNECTIONS, "K", "spread vehicles over K MQTT connections (default 1)"},
    {"session", K_FLAG, F(session), 0, 0, 0, NULL, "race-session monitor: one car, session/<sid>/... at 2 Hz"},
    {"fleet-groups", K_LONG, F(fleet_groups), 0, 1, 1000, "G", "fleet vehicles are spread over G groups (default 1)"},
    {"commands", K_FLAG, F(commands), 0, 0, 0, NULL, "answer ping, horn, set_rate, request_diagnostics on vehicle/<id>/cmd/+"},
    {"quiet", K_FLAG, F(quiet), 0, 0, 0, NULL, "no progress or info lines (the summary still prints)"},
    {"help", K_FLAG, F(help), 0, 0, 0, NULL, "this text"},
    {"version", K_FLAG, F(version), 0, 0, 0, NULL, "print the version and exit"},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_number(const struct row *r, const char *arg, double *out, bool integer,
                        char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double d = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(d) || (integer && d != floor(d)))
        return fail(err, errlen, "--%s: '%s' is not %s", r->name, arg,
                    integer ? "an integer" : "a number");
    if (d < r->min || d > r->max)
        return fail(err, errlen, "--%s: %s is out of range (%g..%g)", r->name, arg, r->min, r->max);
    *out = d;
    return 0;
}

static int parse_anomalies(struct sim_options *o, const char *arg, char *err, size_t errlen)
{
    const char *p = arg;
    while (*p) {
        size_t n = strcspn(p, ",");
        enum vm_anomaly a = vm_anomaly_parse(p, n);
        if (a == VM_ANOMALY_NONE)
            return fail(err, errlen, "--anomaly: unknown anomaly '%.*s' (overheat, low_battery, "
                        "low_oil_pressure, harsh_braking)", (int)n, p);
        o->anomaly_mask |= 1u << a;
        p += n;
        if (*p == ',')
            p++;
    }
    if (!o->anomaly_mask)
        return fail(err, errlen, "--anomaly: needs a name");
    o->anomaly_forced = true;
    return 0;
}

static int parse_special(struct sim_options *o, const struct row *r, const char *arg,
                         char *err, size_t errlen)
{
    double d;
    if (!strcmp(r->name, "interval")) {
        if (parse_number(r, arg, &d, false, err, errlen))
            return -1;
        o->rate = 1.0 / d;
    } else if (!strcmp(r->name, "mode")) {
        static const char *const modes[] = {"personal", "fleet", "mixed"};
        for (int i = 0; i < 3; i++)
            if (!strcmp(arg, modes[i])) {
                o->mode = (enum sim_mode)i;
                return 0;
            }
        return fail(err, errlen, "--mode: '%s' is not personal, fleet or mixed", arg);
    } else if (!strcmp(r->name, "protocol")) {
        if (!strcmp(arg, "311") || !strcmp(arg, "3.1.1"))
            o->protocol = 311;
        else if (!strcmp(arg, "5") || !strcmp(arg, "5.0"))
            o->protocol = 5;
        else
            return fail(err, errlen, "--protocol: '%s' is not 311 or 5", arg);
    } else if (!strcmp(r->name, "seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(arg, &end, 0);
        if (errno || end == arg || *end || arg[0] == '-')
            return fail(err, errlen, "--seed: '%s' is not an unsigned integer", arg);
        o->seed = s;
        o->seed_set = true;
    } else if (!strcmp(r->name, "anomaly")) {
        return parse_anomalies(o, arg, err, errlen);
    }
    return 0;
}

static int apply(struct sim_options *o, const struct row *r, const char *arg, char *err,
                 size_t errlen)
{
    char *field = (char *)o + r->off;
    double d;
    switch (r->kind) {
    case K_LONG:
        if (parse_number(r, arg, &d, true, err, errlen))
            return -1;
        *(long *)(void *)field = (long)d;
        return 0;
    case K_DOUBLE:
        if (parse_number(r, arg, &d, false, err, errlen))
            return -1;
        *(double *)(void *)field = d;
        return 0;
    case K_STRING:
        if (strlen(arg) >= r->size)
            return fail(err, errlen, "--%s: longer than %zu characters", r->name, r->size - 1);
        if (!strcmp(r->name, "id-prefix") && strpbrk(arg, "/+#\"\\ "))
            return fail(err, errlen, "--id-prefix: must not contain / + # \" \\ or spaces");
        memcpy(field, arg, strlen(arg) + 1);
        return 0;
    case K_FLAG:
        *(bool *)(void *)field = true;
        return 0;
    case K_SPECIAL:
        return parse_special(o, r, arg, err, errlen);
    }
    return 0;
}

static void defaults(struct sim_options *o)
{
    memset(o, 0, sizeof *o);
    o->vehicles = 10;
    o->rate = 1.0;
    o->mode = SIM_MODE_PERSONAL;
    strcpy(o->host, "127.0.0.1");
    o->port = 1883;
    o->protocol = 311;
    strcpy(o->id_prefix, "veh-");
    o->connections = 1;
    o->fleet_groups = 1;
}

int sim_options_parse(struct sim_options *o, int argc, char **argv, char *err, size_t errlen)
{
    struct option longopts[N_ROWS + 1];
    for (size_t i = 0; i < N_ROWS; i++)
        longopts[i] = (struct option){rows[i].name, rows[i].arg ? required_argument : no_argument,
                                      NULL, (int)(i + 256)};
    longopts[N_ROWS] = (struct option){0, 0, 0, 0};

    defaults(o);
    bool rate_given = false, vehicles_given = false;
    optind = 0; /* GNU: full re-initialisation, so parsing can be repeated */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":", longopts, NULL);
        if (c == -1)
            break;
        if (c == '?')
            return fail(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
        if (c == ':')
            return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
        const struct row *r = &rows[c - 256];
        if (apply(o, r, optarg, err, errlen))
            return -1;
        if (!strcmp(r->name, "rate") || !strcmp(r->name, "interval"))
            rate_given = true;
        if (!strcmp(r->name, "vehicles") || !strcmp(r->name, "connections"))
            vehicles_given = true;
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
    if (o->help || o->version)
        return 0;
    if (o->session && vehicles_given && (o->vehicles != 1 || o->connections != 1))
        return fail(err, errlen, "--session simulates one monitored car; drop --vehicles/--connections");
    if (o->connections > o->vehicles)
        return fail(err, errlen, "--connections %ld is more than --vehicles %ld",
                    o->connections, o->vehicles);
    if (o->session && !rate_given)
        o->rate = 2.0;
    if (o->session) {
        o->vehicles = 1;
        o->connections = 1;
    }
    if (o->vehicles * o->rate > 2e6)
        return fail(err, errlen, "--vehicles x --rate = %.0f msg/s is more than 2000000",
                    o->vehicles * o->rate);
    if (!o->anomaly_mask)
        o->anomaly_mask = ((1u << VM_ANOMALY_COUNT) - 1) & ~1u;
    return 0;
}

void sim_options_usage(void *out, const char *argv0)
{
    FILE *f = out;
    fprintf(f, "usage: %s [options]\n"
               "Simulates vehicles publishing telemetry over MQTT (see docs/simulator.md).\n\n",
            argv0);
    for (size_t i = 0; i < N_ROWS; i++) {
        char left[48];
        snprintf(left, sizeof left, "--%s%s%s", rows[i].name, rows[i].arg ? " " : "",
                 rows[i].arg ? rows[i].arg : "");
        fprintf(f, "  %-24s %s\n", left, rows[i].help);
    }
}
