/* telesim: simulates vehicles (or one race-session monitor) publishing telemetry over MQTT.
 *
 * How it works: the vehicles live in one array and are stepped by the main thread at the
 * nominal interval (so values never depend on timing). Publishing is paced with absolute
 * deadlines: each tick of 1/rate seconds is split into up to one slot per millisecond,
 * the vehicles are spread evenly over the slots, and the main thread sleeps with
 * clock_nanosleep(TIMER_ABSTIME) until each slot's deadline, computed from the start time
 * (never from the previous wake-up), so lateness does not accumulate and the achieved rate
 * converges to the target. Vehicles are spread over K MQTT connections (vehicle i on
 * connection i % K); each connection has its own libmosquitto network thread.
 *
 * Status and last will (one will per MQTT connection, see docs/simulator.md): when every
 * connection carries exactly one vehicle, the will is the vehicle's own
 * vehicle/<id>/status "offline" (retained) like a real device; otherwise the will is on
 * telesim/<client_id>/status and each vehicle's setup names its mqtt_client_id. Either way
 * a clean exit (duration over, SIGINT, SIGTERM) publishes "offline" for every vehicle.
 *
 * Threads: main thread for everything here; conn.c callbacks on the network threads only
 * set flags and counters. Signal handlers only set g_stop. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "conn.h"
#include "session.h"
#include "sim_options.h"
#include "vehicle_model.h"

#define NS_PER_S 1000000000LL
#define PROGRESS_EVERY_NS (5 * NS_PER_S)
#define SESSION_TRACK "Hockenheimring"

static volatile sig_atomic_t g_stop;

struct run {
    struct sim_options o;
    struct conn_params params;
    struct vm_config cfg;
    struct vehicle *veh;
    long n;
    struct conn **conns;
    long k;
    bool per_vehicle_will; /* every connection carries exactly one vehicle */
    uint32_t *every;       /* per vehicle: publish every n-th tick (set_rate command) */
    uint32_t *ticks;       /* per vehicle: ticks since its last publish */
    uint64_t commands;     /* commands answered */
    char session_id[65];
    uint64_t sent, errors, extra_sent;
    int64_t start_ns, end_ns, max_lag_ns, next_fleet_ns, next_progress_ns;
    bool tty;
};

static void on_signal(int sig)
{
    g_stop = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps until the absolute monotonic deadline, waking at least every 200 ms (and on
 * signals) to look at g_stop. */
static void sleep_until(int64_t deadline_ns)
{
    while (!g_stop) {
        int64_t now = mono_ns();
        if (now >= deadline_ns)
            return;
        int64_t until = deadline_ns - now > NS_PER_S / 5 ? now + NS_PER_S / 5 : deadline_ns;
        struct timespec ts = {until / NS_PER_S, until % NS_PER_S};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

static struct conn *conn_of(const struct run *r, long i)
{
    return r->conns[i % r->k];
}

/* Counts a publish of one of our own extra messages (setup, status, fleet, session). */
static void publish_extra(struct run *r, struct conn *c, const char *topic, const char *payload,
                          size_t len, int qos, bool retain)
{
    if (conn_publish(c, topic, payload, len, qos, retain) == MOSQ_ERR_SUCCESS)
        r->extra_sent++;
    else
        r->errors++;
}

static void publish_status(struct run *r, struct conn *c, const char *id, const char *state)
{
    char topic[128];
    snprintf(topic, sizeof topic, "vehicle/%s/status", id);
    publish_extra(r, c, topic, state, strlen(state), 1, true);
}

/* After every accepted CONNACK: (re)publish the retained setup and "online" status of the
 * connection's vehicles (the broker may have published our will, or restarted). */
static void announce(struct run *r, long ci)
{
    struct conn *c = r->conns[ci];
    char buf[2048];
    if (!r->per_vehicle_will)
        publish_extra(r, c, c->will_topic, "online", 6, 1, true);
    for (long i = ci; i < r->n; i += r->k) {
        struct vehicle *v = &r->veh[i];
        if (!r->o.session) {
            char topic[128];
            int len = vehicle_setup_json(v, wall_ms(), c->client_id, buf, sizeof buf);
            snprintf(topic, sizeof topic, "vehicle/%s/setup", v->id);
            if (len > 0)
                publish_extra(r, c, topic, buf, (size_t)len, 1, true);
        }
        publish_status(r, c, v->id, "online");
        if (r->o.commands && conn_subscribe_commands(c, v->id) != MOSQ_ERR_SUCCESS)
            r->errors++;
    }
    if (r->o.commands && !r->o.quiet)
    {
        printf("telesim: answering commands on vehicle/<id>/cmd/+ (%s)\n", c->client_id);
        fflush(stdout);
    }
}

static void publish_fleet_summaries(struct run *r)
{
    long groups = r->o.fleet_groups;
    long *online = calloc((size_t)groups * 2, sizeof *online);
    double *speed = calloc((size_t)groups, sizeof *speed);
    if (!online || !speed)
        goto out;
    long *total = online + groups;
    bool any = false;
    for (long i = 0; i < r->n; i++) {
        const struct vehicle *v = &r->veh[i];
        if (!v->group)
            continue;
        any = true;
        total[v->group - 1]++;
        if (atomic_load(&conn_of(r, i)->up)) {
            online[v->group - 1]++;
            speed[v->group - 1] += v->speed_kmh;
        }
    }
    uint64_t now = wall_ms();
    char ts[32], topic[64], buf[512];
    vm_format_time(now, ts);
    for (long g = 0; any && g < groups; g++) {
        if (!total[g])
            continue;
        snprintf(topic, sizeof topic, "fleet/group-%ld", g + 1);
        int len = snprintf(buf, sizeof buf,
                           "{\"group\":\"group-%ld\",\"vehicles_online\":%ld,\"vehicles_total\":%ld,"
                           "\"average_speed\":%.1f,\"timestamp\":\"%s\",\"ts_ms\":%" PRIu64 "}",
                           g + 1, online[g], total[g], online[g] ? speed[g] / online[g] : 0.0,
                           ts, now);
        publish_extra(r, r->conns[0], topic, buf, (size_t)len, 0, false);
    }
out:
    free(online);
    free(speed);
}

static long conns_up(const struct run *r)
{
    long up = 0;
    for (long i = 0; i < r->k; i++)
        up += atomic_load(&r->conns[i]->up);
    return up;
}

/* Answers the commands queued on connection ci (command.h). */
static void answer_commands(struct run *r, long ci)
{
    struct conn *c = r->conns[ci];
    for (struct sim_command *cmd = conn_take_commands(c), *next; cmd; cmd = next) {
        next = cmd->next;
        for (long i = ci; i < r->n && cmd->reply_to[0]; i += r->k) {
            if (strcmp(r->veh[i].id, cmd->vehicle))
                continue;
            char *reply = command_answer(cmd, &r->veh[i], r->o.rate, wall_ms(), &r->every[i]);
            if (reply && conn_publish_reply(c, cmd->reply_to, reply, cmd->correlation) == MOSQ_ERR_SUCCESS)
                r->commands++;
            else
                r->errors++;
            free(reply);
            break;
        }
        command_free(cmd);
    }
}

/* Between slots: announcements after (re)connects, commands, fleet summaries, progress. */
static void housekeeping(struct run *r, int64_t now)
{
    for (long ci = 0; ci < r->k; ci++)
        if (atomic_exchange(&r->conns[ci]->announce, 0))
            announce(r, ci);
    for (long ci = 0; ci < r->k && r->o.commands; ci++)
        answer_commands(r, ci);
    if (now >= r->next_fleet_ns) {
        publish_fleet_summaries(r);
        r->next_fleet_ns += NS_PER_S;
        if (r->next_fleet_ns < now)
            r->next_fleet_ns = now + NS_PER_S;
    }
    if (r->tty && !r->o.quiet && now >= r->next_progress_ns) {
        double el = (double)(now - r->start_ns) / NS_PER_S;
        printf("telesim: %.0f s  sent %" PRIu64 "  %.1f msg/s  errors %" PRIu64
               "  connections up %ld/%ld\n",
               el, r->sent, el > 0 ? r->sent / el : 0.0, r->errors, conns_up(r), r->k);
        fflush(stdout);
        r->next_progress_ns += PROGRESS_EVERY_NS;
    }
}

static void publish_vehicle(struct run *r, long i, double dt)
{
    static char buf[1024];
    char topic[128];
    struct vehicle *v = &r->veh[i];
    vehicle_step(v, dt);
    if (++r->ticks[i] < r->every[i])
        return;
    r->ticks[i] = 0;
    int len = vehicle_telemetry_json(v, wall_ms(), r->o.session ? r->session_id : NULL, buf,
                                     sizeof buf);
    if (r->o.session)
        snprintf(topic, sizeof topic, "session/%s/telemetry", r->session_id);
    else
        snprintf(topic, sizeof topic, "vehicle/%s/telemetry", v->id);
    if (len > 0 && conn_publish(conn_of(r, i), topic, buf, (size_t)len, (int)r->o.qos, false) ==
                       MOSQ_ERR_SUCCESS)
        r->sent++;
    else
        r->errors++;
}

/* The paced loop (see the comment at the top). Returns when the duration is over or on
 * a signal; the run's elapsed time ends at the last tick boundary when it ran out. */
static void run_loop(struct run *r)
{
    double dt = 1.0 / r->o.rate;
    int64_t tick_ns = llround(1e9 / r->o.rate);
    long slots = tick_ns / 1000000 > 0 ? (long)(tick_ns / 1000000) : 1;
    if (slots > r->n)
        slots = r->n;
    int64_t ticks = r->o.duration > 0 ? llround(r->o.duration * r->o.rate) : INT64_MAX;
    if (ticks < 1)
        ticks = 1;

    r->start_ns = mono_ns() + 1000000;
    int64_t covered = r->start_ns;
    r->next_fleet_ns = r->start_ns;
    r->next_progress_ns = r->start_ns + PROGRESS_EVERY_NS;
    for (int64_t t = 0; t < ticks && !g_stop; t++) {
        for (long s = 0; s < slots && !g_stop; s++) {
            int64_t deadline = r->start_ns + t * tick_ns + (int64_t)s * tick_ns / slots;
            sleep_until(deadline);
            if (g_stop)
                break;
            int64_t now = mono_ns();
            if (now - deadline > r->max_lag_ns)
                r->max_lag_ns = now - deadline;
            housekeeping(r, now);
            for (long i = s * r->n / slots; i < (s + 1) * r->n / slots; i++)
                publish_vehicle(r, i, dt);
            covered = deadline + tick_ns / slots;
        }
    }
    if (!g_stop && ticks != INT64_MAX)
        sleep_until(r->start_ns + ticks * tick_ns);
    /* the messages sent cover the time up to the next slot that was due: measuring the
     * rate over that (not up to the signal) keeps the first slot at t=0 from inflating it */
    r->end_ns = mono_ns();
    if (covered > r->end_ns)
        r->end_ns = covered;
}

static void publish_session_setup(struct run *r)
{
    char vbuf[2048], buf[2600], topic[128], ts[32];
    struct conn *c = r->conns[0];
    uint64_t now = wall_ms();
    vm_format_time(now, ts);
    if (vehicle_setup_json(&r->veh[0], now, c->client_id, vbuf, sizeof vbuf) < 0)
        return;
    int len = snprintf(buf, sizeof buf,
                       "{\"session_id\":\"%s\",\"track\":\"%s\",\"started_at\":\"%s\","
                       "\"ts_ms\":%" PRIu64 ",\"telemetry_hz\":%g,\"vehicle\":%s}",
                       r->session_id, SESSION_TRACK, ts, now, r->o.rate, vbuf);
    snprintf(topic, sizeof topic, "session/%s/setup", r->session_id);
    if (len > 0 && (size_t)len < sizeof buf)
        publish_extra(r, c, topic, buf, (size_t)len, 1, true);
}

/* ---- setup and teardown ----------------------------------------------------------------- */

static int make_vehicles(struct run *r)
{
    r->n = r->o.vehicles;
    r->veh = calloc((size_t)r->n, sizeof *r->veh);
    r->every = calloc((size_t)r->n, sizeof *r->every);
    r->ticks = calloc((size_t)r->n, sizeof *r->ticks);
    if (!r->veh || !r->every || !r->ticks)
        return -1;
    for (long i = 0; i < r->n; i++)
        r->every[i] = 1;
    r->cfg.anomaly_rate = r->o.anomaly_rate;
    r->cfg.anomaly_mask = r->o.anomaly_mask;
    long fleet_count = 0;
    for (long i = 0; i < r->n; i++) {
        char id[64];
        enum vm_mode mode = r->o.mode == SIM_MODE_FLEET ? VM_MODE_FLEET
                            : r->o.mode == SIM_MODE_MIXED && (i % 2) ? VM_MODE_FLEET
                                                                     : VM_MODE_PERSONAL;
        uint32_t group = 0;
        if (mode == VM_MODE_FLEET)
            group = (uint32_t)(fleet_count++ % r->o.fleet_groups) + 1;
        if (r->o.session)
            snprintf(id, sizeof id, "%smonitor-%ld", r->o.id_prefix, i + 1);
        else
            snprintf(id, sizeof id, "%s%05ld", r->o.id_prefix, i + 1);
        vehicle_init(&r->veh[i], r->o.seed, (uint32_t)i, id, mode, group, &r->cfg);
        if (r->o.anomaly_forced) {
            enum vm_anomaly a = VM_ANOMALY_NONE;
            for (int b = 1; b < VM_ANOMALY_COUNT && a == VM_ANOMALY_NONE; b++)
                if (r->o.anomaly_mask & (1u << b))
                    a = (enum vm_anomaly)b;
            vehicle_start_anomaly(&r->veh[i], a);
        }
    }
    return 0;
}

static int make_conns(struct run *r)
{
    r->k = r->o.connections;
    r->per_vehicle_will = r->k == r->n;
    r->conns = calloc((size_t)r->k, sizeof *r->conns);
    if (!r->conns)
        return -1;
    for (long ci = 0; ci < r->k; ci++) {
        char cid[64], will[128];
        if (r->per_vehicle_will) {
            snprintf(cid, sizeof cid, "%s", r->veh[ci].id);
            snprintf(will, sizeof will, "vehicle/%s/status", cid);
        } else {
            snprintf(cid, sizeof cid, "%sconn-%ld", r->o.id_prefix, ci + 1);
            snprintf(will, sizeof will, "telesim/%s/status", cid);
        }
        r->conns[ci] = conn_new(cid, will, &r->params);
        if (!r->conns[ci])
            return -1;
    }
    return 0;
}

/* Clean exit: "offline" for every vehicle (and connection), then wait for delivery. */
static void go_offline(struct run *r)
{
    for (long ci = 0; ci < r->k; ci++) {
        struct conn *c = r->conns[ci];
        if (!c || !atomic_load(&c->up))
            continue;
        for (long i = ci; i < r->n; i += r->k)
            publish_status(r, c, r->veh[i].id, "offline");
        if (!r->per_vehicle_will)
            publish_extra(r, c, c->will_topic, "offline", 7, 1, true);
    }
    for (long ci = 0; ci < r->k; ci++)
        if (r->conns[ci] && !conn_flush(r->conns[ci], 5000))
            fprintf(stderr, "telesim: %s: not every message was delivered before exit\n",
                    r->conns[ci]->client_id);
}

static void print_summary(const struct run *r)
{
    double el = r->start_ns ? (double)(r->end_ns - r->start_ns) / NS_PER_S : 0;
    double target = (double)r->n * r->o.rate, rate = el > 0 ? r->sent / el : 0;
    unsigned reconnects = 0;
    for (long ci = 0; ci < r->k; ci++)
        if (r->conns[ci])
            reconnects += atomic_load(&r->conns[ci]->reconnects);
    printf("telesim: sent %" PRIu64 " telemetry messages from %ld vehicle%s in %.2f s: "
           "%.1f msg/s (target %.1f, %+.2f%%), errors %" PRIu64 ", other messages %" PRIu64
           ", reconnects %u, max lag %.1f ms\n",
           r->sent, r->n, r->n == 1 ? "" : "s", el, rate, target, target > 0 ? 100.0 * (rate - target) / target : 0.0,
           r->errors, r->extra_sent, reconnects, (double)r->max_lag_ns / 1e6);
    if (r->o.commands)
        printf("telesim: answered %" PRIu64 " commands\n", r->commands);
    fflush(stdout);
}

static uint64_t random_seed(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return s % 1000000000ULL; /* short enough to retype */
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: sleeps return early */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int connect_all(struct run *r)
{
    for (long ci = 0; ci < r->k; ci++) {
        int rc = conn_connect(r->conns[ci], &g_stop);
        if (rc)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct run run;
    struct run *r = &run;
    char err[256];
    int exit_code = 0;

    if (sim_options_parse(&r->o, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "telesim: %s\n", err);
        return 2;
    }
    if (r->o.help) {
        sim_options_usage(stdout, argv[0]);
        return 0;
    }
    if (r->o.version) {
        printf("telesim %s\n", TB_VERSION);
        return 0;
    }
    if (!r->o.seed_set)
        r->o.seed = random_seed();
    r->params = (struct conn_params){r->o.host, (int)r->o.port, r->o.username, r->o.password,
                                     (int)r->o.protocol};
    r->tty = isatty(STDOUT_FILENO);
    install_signals();
    mosquitto_lib_init();

    if (make_vehicles(r) || make_conns(r)) {
        fprintf(stderr, "telesim: out of memory or cannot create MQTT clients\n");
        exit_code = 1;
        goto done;
    }
    if (!r->o.quiet) {
        static const char *const modes[] = {"personal", "fleet", "mixed"};
        printf("telesim: %ld %s (%s), %g Hz, %ld connection%s to %s:%ld (MQTT %s), seed %" PRIu64
               "\n", r->n, r->o.session ? "session monitor" : "vehicles", modes[r->o.mode],
               r->o.rate, r->k, r->k == 1 ? "" : "s", r->o.host, r->o.port,
               r->o.protocol == 5 ? "5" : "3.1.1", r->o.seed);
        fflush(stdout);
    }
    int rc = connect_all(r);
    if (rc == -2) {
        exit_code = 1;
        goto done;
    }
    if (rc == 0) {
        for (long ci = 0; ci < r->k; ci++)
            if (atomic_exchange(&r->conns[ci]->announce, 0))
                announce(r, ci);
        if (r->o.session) {
            bool from_bridge;
            session_obtain(r->conns[0], (int)r->o.protocol, r->veh[0].id, 2000, r->session_id,
                           &from_bridge);
            printf("session id: %s (%s)\n", r->session_id,
                   from_bridge ? "from the bridge" : "generated locally, no reply within 2 s");
            fflush(stdout);
            publish_session_setup(r);
        }
        run_loop(r);
    }
    go_offline(r);
    print_summary(r);
done:
    for (long ci = 0; r->conns && ci < r->k; ci++)
        conn_free(r->conns[ci]);
    free(r->conns);
    free(r->veh);
    free(r->every);
    free(r->ticks);
    mosquitto_lib_cleanup();
    return exit_code;
}
