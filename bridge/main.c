/* main: command line, start-up and shutdown of the telebridge daemon.
 *
 *   telebridge -c FILE [--log-level L] [--log-format F]    run
 *   telebridge --check -c FILE             validate a config, exit 0 / 1 with the errors
 *   telebridge --explain TOPIC [--payload JSON] -c FILE   where would a message go?
 *   telebridge --help | --version
 *
 * Start-up order: config, rooms, WebSocket listener (fails fast if the port is taken),
 * then the MQTT client, which connects in the background and retries with backoff.
 * SIGTERM / SIGINT: close frames to every client, clean MQTT disconnect, exit 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "expr.h"
#include "hash.h"
#include "log.h"
#include "notify.h"
#include "mqtt_client.h"
#include "reload.h"
#include "router.h"
#include "topic.h"
#include "ws_server.h"

/* For the signal handler: it only sets a flag and wakes the loop. */
static struct bridge *volatile g_br;
static struct ws_server *volatile g_ws;

static void on_signal(int sig)
{
    struct bridge *br = g_br;
    if (br) {
        if (sig == SIGHUP)
            br->reload_requested = 1;
        else
            br->stop_requested = 1;
    }
    ws_server_wake(g_ws);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: telebridge -c FILE [--log-level debug|info|warn|error] [--log-format text|json|logfmt]\n"
            "       telebridge --check -c FILE\n"
            "       telebridge --explain TOPIC [--payload JSON] -c FILE\n"
            "       telebridge --help | --version\n"
            "\n"
            "MQTT-to-WebSocket bridge for vehicle telemetry.\n"
            "  -c, --config FILE     YAML configuration (see README.md)\n"
            "      --check           validate the configuration and exit (0 valid, 1 invalid)\n"
            "      --explain TOPIC   print the routes, rooms and alert rules TOPIC would hit\n"
            "      --payload JSON    sample payload for --explain (default {})\n"
            "  -l, --log-level L     debug, info (default), warn or error (overrides log.level)\n"
            "      --log-format F    text (default), json or logfmt (overrides log.format)\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n");
}

/* Loads a config for a one-shot command, printing every error to stderr. */
static struct tb_config *load_for_command(const char *path)
{
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load(path, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    return cfg;
}

static int check_config(const char *path)
{
    struct tb_config *cfg = load_for_command(path);
    if (!cfg)
        return 1;
    printf("%s: OK (%zu endpoints, %zu routes, %zu alert rules, %zu MQTT filters)\n", path,
           cfg->n_endpoints, cfg->n_routes, cfg->n_alerts, cfg->n_filters);
    config_unref(cfg);
    return 0;
}

struct explain_ud {
    const struct tb_config *cfg;
    size_t deliveries;
};

static void explain_room(size_t route, const char *room, void *ud)
{
    struct explain_ud *e = ud;
    const struct cfg_route *r = &e->cfg->routes[route];
    printf("  route %zu (line %d, match %s): type %s -> room %s%s%s\n", route + 1, r->line,
           r->match_src, r->type, room,
           !r->keep_last ? "" : r->keep_by == CFG_KEEP_TYPE ? " [keep_last]"
           : r->keep_by == CFG_KEEP_TOPIC ? " [keep_last per_topic]" : " [keep_last by payload field]",
           r->history ? " [history]" : "");
    e->deliveries++;
}

/* --explain: which routes, rooms and alert rules would a topic (and payload) hit? */
static int explain(const char *path, const char *topic, const char *payload)
{
    struct tb_config *cfg = load_for_command(path);
    if (!cfg)
        return 1;
    struct inbound in;
    inbound_init(&in, topic, payload, strlen(payload));
    printf("topic %s, payload %s\n", topic, in.json ? "JSON" : "not JSON (delivered as a string)");
    struct explain_ud e = {cfg, 0};
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct cfg_route *r = &cfg->routes[i];
        if (!topic_pattern_match(r->match, topic, NULL))
            continue;
        if (!in.json && r->non_json == CFG_NONJSON_DROP)
            printf("  route %zu (line %d, match %s): dropped (payload not JSON)\n", i + 1, r->line, r->match_src);
        else if (r->when && !expr_eval(r->when, in.json))
            printf("  route %zu (line %d, match %s): skipped, when '%s' is false\n", i + 1, r->line,
                   r->match_src, expr_source(r->when));
    }
    router_explain(cfg, &in, explain_room, &e);
    if (!e.deliveries)
        printf("  no room receives this message\n");
    for (size_t i = 0; i < cfg->n_alerts; i++) {
        const struct cfg_alert *a = &cfg->alerts[i];
        if (!topic_pattern_match(a->match, topic, NULL))
            continue;
        if (a->inactive_for_ms)
            printf("  alert %s (line %d): inactivity timer reset (inactive_for %llums)\n", a->name, a->line,
                   (unsigned long long)a->inactive_for_ms);
        else if (a->when)
            printf("  alert %s (line %d): when '%s' is %s%s\n", a->name, a->line, expr_source(a->when),
                   expr_eval(a->when, in.json) ? "TRUE" : "false",
                   a->for_ms ? " (must hold for its 'for' duration)" : "");
    }
    inbound_free(&in);
    config_unref(cfg);
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The epoch names the instance and the run: its top 24 bits are a hash of the instance
 * id, the rest changes at every start. A client that resumes on another bridge of a
 * cluster (or after a restart) sends an epoch that is not this one and gets "resync". */
/* The start-up check of the instance id: a broker that is up answers in milliseconds
 * (Mosquitto) or seconds (NATS creating its JetStream consumers under load). */
#define PROBE_TIMEOUT_MS 10000

static uint64_t make_epoch(const char *instance_id)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t run = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 24);
    return (tb_hash_str(instance_id ? instance_id : "") << 40) | (run & ((1ull << 40) - 1));
}

static int run(const char *path)
{
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load(path, &diag);
    for (size_t i = 0; i < diag.n; i++)
        LOG_ERROR("config", "%s", diag.msgs[i]);
    config_diag_free(&diag);
    if (!cfg) {
        LOG_ERROR("main", "refusing to start with an invalid configuration");
        return 1;
    }
    log_apply_config((enum tb_log_level)cfg->log.level, (enum tb_log_format)cfg->log.format);
    /* Two processes with one instance id would take each other's broker session over,
     * again and again (issue 16: 13 takeovers in 12 s, without a word). */
    const char *iid = cfg->cluster.instance_id ? cfg->cluster.instance_id : cfg->mqtt.client_id;
    int online = mqtt_client_probe_online(cfg, PROBE_TIMEOUT_MS);
    if (online < 0)
        LOG_WARN("main", "could not check whether instance '%s' is online elsewhere (broker not "
                 "reachable yet); starting", iid);
    if (online == 1) {
        LOG_ERROR("main", "refusing to start: instance '%s' is online elsewhere (retained \"online\" "
                  "on telebridge/%s/status): give this process its own cluster.instance_id and "
                  "mqtt.client_id; if that process is gone, its last will clears the status within "
                  "1.5 x mqtt.keepalive", iid, iid);
        config_unref(cfg);
        return 1;
    }
    int rc = 1;
    struct reload *rl = NULL;
    struct ws_server *ws = NULL;
    struct mqtt_client *mqtt = NULL;
    struct bridge *br = bridge_new(cfg, make_epoch(iid));
    if (!br)
        goto out;
    g_br = br;
    install_signals();
    if (!(ws = ws_server_start(br, NULL)))
        goto out;
    g_ws = ws;
    if (!(mqtt = mqtt_client_new(br->cfg, ws_server_wake, ws)))
        goto out;
    ws_server_set_mqtt(ws, mqtt);
    rl = reload_new(br->cfg->path, ws_server_wake, ws);
    ws_server_set_reload(ws, rl);
    bridge_start_alerts(br, mqtt);      /* its filters, before the first connect */
    if (mqtt_client_start(mqtt) != 0)
        goto out;
    LOG_INFO("main", "telebridge %s running (%zu endpoints, %zu routes)", TB_VERSION,
             br->cfg->n_endpoints, br->cfg->n_routes);
    notify_ready(&br->notify, "running");
    ws_server_run(ws);
    rc = 0;
out:
    reload_free(rl);
    /* The MQTT thread wakes the service loop: stop it before the loop's context goes. */
    mqtt_client_free(mqtt);     /* clean DISCONNECT, joins the network thread */
    if (ws)
        ws_server_set_mqtt(ws, NULL);
    g_ws = NULL;
    ws_server_destroy(ws);      /* closes remaining connections (frees their state) */
    g_br = NULL;
    bridge_free(br);
    LOG_INFO("main", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {"explain", required_argument, NULL, 'x'},
        {"payload", required_argument, NULL, 'p'}, {"log-format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false;
    const char *explain_topic = NULL, *payload = "{}";
    int c;
    while ((c = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'k': check = true; break;
        case 'x': explain_topic = optarg; break;
        case 'p': payload = optarg; break;
        case 'l': {
            int lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "telebridge: unknown log level '%s'\n", optarg);
                return 2;
            }
            log_pin_level((enum tb_log_level)lvl);
            break;
        }
        case 'f': {
            int fmt = log_format_parse(optarg);
            if (fmt < 0) {
                fprintf(stderr, "telebridge: unknown log format '%s' (text, json or logfmt)\n", optarg);
                return 2;
            }
            log_pin_format((enum tb_log_format)fmt);
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("telebridge %s\n", TB_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telebridge: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "telebridge: no configuration given (-c FILE)\n");
        usage(stderr);
        return 2;
    }
    if (explain_topic)
        return explain(path, explain_topic, payload);
    return check ? check_config(path) : run(path);
}
