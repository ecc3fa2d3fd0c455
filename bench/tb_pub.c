/*
 * tb-pub: paced MQTT publisher for the Telebridge benchmarks.
 *
 * Why: every benchmark needs a load source whose offered rate is exact and whose messages
 * carry what the receiving side needs to measure the bridge: a per-vehicle sequence number
 * (loss, duplicates, reordering) and the publish time (end-to-end latency).
 *
 * How: N vehicles are published round-robin, one message every 1/(N*rate) seconds, paced
 * against absolute deadlines on CLOCK_MONOTONIC (a late wake-up sends the backlog at once,
 * so the average rate never drifts).  Each vehicle gets exactly round(rate*duration)
 * messages, seq 1..count, so a receiver knows the last seq to expect.  The payload is a
 * realistic telemetry body padded to --payload-bytes:
 *   {"vehicle_id":"7","bench_vid":7,"bench_seq":12,"bench_ts_us":<CLOCK_REALTIME us>,...}
 *
 * Threads: main thread paces and calls mosquitto_publish(); libmosquitto's own network
 * thread (mosquitto_loop_start) does all socket I/O.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pub_opts {
    const char *host;
    int port;
    int vehicles;
    int vehicle_base;
    double rate;
    double duration;
    int qos;
    int payload_bytes;
    const char *topic_fmt;
    const char *client_id;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !g_stop) {
    }
}

/* Writes one telemetry body into buf (size cap); returns its length. */
static int make_payload(char *buf, size_t cap, int vid, uint64_t seq, int target)
{
    uint64_t ts_us = now_ns(CLOCK_REALTIME) / 1000u;
    double speed = 60.0 + (double)(seq % 40);
    int n = snprintf(buf, cap,
                     "{\"vehicle_id\":\"%d\",\"bench_vid\":%d,\"bench_seq\":%llu,"
                     "\"bench_ts_us\":%llu,\"speed_kmh\":%.1f,\"rpm\":%d,\"gear\":%d,"
                     "\"engine_metrics\":{\"temperature\":%.1f,\"oil_pressure\":3.2,"
                     "\"throttle\":0.42},\"position\":{\"lat\":48.137154,\"lon\":11.576124},"
                     "\"simulation_mode\":\"fleet\",\"pad\":\"",
                     vid, vid, (unsigned long long)seq, (unsigned long long)ts_us, speed,
                     2000 + (int)(seq % 3000), 1 + (int)(seq % 6), 85.0 + (double)(seq % 10));
    if (n < 0 || (size_t)n >= cap)
        return -1;
    while (n < target - 2 && (size_t)n < cap - 3)
        buf[n++] = 'x';
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host H] [--port P] [--vehicles N] [--vehicle-base B] [--rate HZ]\n"
            "          [--duration S] [--qos Q] [--payload-bytes B] [--topic-fmt FMT]\n"
            "          [--client-id ID]\n"
            "Publishes N vehicles at HZ messages/s each for S seconds (exactly round(HZ*S)\n"
            "messages per vehicle) and prints a one-line JSON summary.\n",
            argv0);
}

static int parse_opts(int argc, char **argv, struct pub_opts *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},     {"port", required_argument, NULL, 'p'},
        {"vehicles", required_argument, NULL, 'n'}, {"vehicle-base", required_argument, NULL, 'b'},
        {"rate", required_argument, NULL, 'r'},     {"duration", required_argument, NULL, 'd'},
        {"qos", required_argument, NULL, 'q'},      {"payload-bytes", required_argument, NULL, 's'},
        {"topic-fmt", required_argument, NULL, 't'}, {"client-id", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, '?'},           {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'n': o->vehicles = atoi(optarg); break;
        case 'b': o->vehicle_base = atoi(optarg); break;
        case 'r': o->rate = atof(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'q': o->qos = atoi(optarg); break;
        case 's': o->payload_bytes = atoi(optarg); break;
        case 't': o->topic_fmt = optarg; break;
        case 'i': o->client_id = optarg; break;
        default: usage(argv[0]); return -1;
        }
    }
    if (o->vehicles < 1 || o->rate <= 0 || o->duration <= 0 || o->qos < 0 || o->qos > 1 ||
        o->payload_bytes < 64 || o->payload_bytes > 60000 || o->port <= 0) {
        usage(argv[0]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct pub_opts o = {.host = "127.0.0.1", .port = 1883, .vehicles = 1, .rate = 1.0,
                         .duration = 10.0, .qos = 0, .payload_bytes = 300,
                         .topic_fmt = "vehicle/%d/telemetry", .client_id = NULL};
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    uint64_t per_vehicle = (uint64_t)llround(o.rate * o.duration);
    if (per_vehicle < 1)
        per_vehicle = 1;
    uint64_t total = per_vehicle * (uint64_t)o.vehicles;
    double interval_ns = 1e9 / (o.rate * o.vehicles);
    char cid[64];
    if (!o.client_id) {
        snprintf(cid, sizeof cid, "tb-pub-%d", (int)getpid());
        o.client_id = cid;
    }

    mosquitto_lib_init();
    int rc = 1;
    uint64_t sent = 0, errors = 0;
    char *payload = malloc((size_t)o.payload_bytes + 512);
    struct mosquitto *m = mosquitto_new(o.client_id, true, NULL);
    if (!m || !payload) {
        fprintf(stderr, "tb-pub: out of memory\n");
        goto fail;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(m, 0);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1); /* latency is what we measure */
    int err = mosquitto_connect(m, o.host, o.port, 30);
    if (err != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "tb-pub: connect %s:%d: %s\n", o.host, o.port, mosquitto_strerror(err));
        goto fail;
    }
    if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "tb-pub: loop_start failed\n");
        goto fail;
    }

    char topic[256];
    uint64_t start = now_ns(CLOCK_MONOTONIC);
    uint64_t max_lag_ns = 0;
    while (sent < total && !g_stop) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        uint64_t due = (uint64_t)((double)(now - start) / interval_ns) + 1;
        if (due > total)
            due = total;
        if (due > sent + 1) {
            uint64_t lag = now - start - (uint64_t)((double)sent * interval_ns);
            if (lag > max_lag_ns)
                max_lag_ns = lag;
        }
        while (sent < due) {
            int vid = o.vehicle_base + (int)(sent % (uint64_t)o.vehicles);
            uint64_t seq = sent / (uint64_t)o.vehicles + 1;
            snprintf(topic, sizeof topic, o.topic_fmt, vid);
            int len = make_payload(payload, (size_t)o.payload_bytes + 512, vid, seq,
                                   o.payload_bytes);
            if (len < 0 ||
                mosquitto_publish(m, NULL, topic, len, payload, o.qos, false) != MOSQ_ERR_SUCCESS)
                errors++;
            sent++;
        }
        if (sent < total)
            sleep_until_ns(start + (uint64_t)((double)sent * interval_ns));
    }
    double elapsed = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);

    printf("{\"tool\":\"tb-pub\",\"vehicles\":%d,\"per_vehicle\":%llu,\"sent\":%llu,"
           "\"errors\":%llu,\"elapsed_s\":%.3f,\"target_rate\":%.1f,\"achieved_rate\":%.1f,"
           "\"max_lag_ms\":%.2f,\"payload_bytes\":%d,\"qos\":%d,\"interrupted\":%s}\n",
           o.vehicles, (unsigned long long)per_vehicle, (unsigned long long)sent,
           (unsigned long long)errors, elapsed, o.rate * o.vehicles,
           elapsed > 0 ? (double)sent / elapsed : 0.0, (double)max_lag_ns / 1e6,
           o.payload_bytes, o.qos, g_stop ? "true" : "false");
    fflush(stdout);
    rc = (errors == 0 && !g_stop) ? 0 : 1;
fail:
    if (m)
        mosquitto_destroy(m);
    free(payload);
    mosquitto_lib_cleanup();
    return rc;
}
