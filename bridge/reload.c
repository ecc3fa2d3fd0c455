/* reload: file watching, debounce and the atomic swap of the config snapshot.
 *
 * Threads: the watcher thread runs watch_main() and touches only the atomics in
 * struct reload_state and ws_server_wake(). Everything else runs on the service thread. */
#include "reload.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"
#include "mqtt_client.h"
#include "ws_server.h"

#define DEBOUNCE_MS 200

struct reload_state {
    pthread_t thread;
    bool running;
    int ino_fd, stop_fd;
    char *dir, *base;
    uint64_t changed_at;     /* atomic: monotonic ms of the last change seen, 0 = none */
    /* status for /health (service thread) */
    uint64_t at_wall_ms;
    bool ok;
    unsigned count, failures;
    char trigger[32];
    cJSON *errors, *needs_restart;
};

static struct reload_state *state(struct bridge *br)
{
    if (!br->reload) {
        struct reload_state *rs = calloc(1, sizeof *rs);
        if (!rs)
            return NULL;
        rs->ino_fd = rs->stop_fd = -1;
        rs->ok = true;
        br->reload = rs;
    }
    return br->reload;
}

static bool event_is_ours(const struct reload_state *rs, const struct inotify_event *ev)
{
    return ev->len && strcmp(ev->name, rs->base) == 0;
}

static void *watch_main(void *ud)
{
    struct bridge *br = ud;
    struct reload_state *rs = br->reload;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd pfd[2] = {{rs->ino_fd, POLLIN, 0}, {rs->stop_fd, POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        ssize_t n = read(rs->ino_fd, buf, sizeof buf);
        if (n <= 0)
            continue;
        bool ours = false;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            ours |= event_is_ours(rs, ev);
            p += sizeof *ev + ev->len;
        }
        if (ours) {
            __atomic_store_n(&rs->changed_at, tb_now_ms(), __ATOMIC_RELEASE);
            ws_server_wake(br);
        }
    }
    return NULL;
}

int reload_watch_start(struct bridge *br)
{
    struct reload_state *rs = state(br);
    if (!rs)
        return -1;
    const char *path = br->cfg->path;
    const char *slash = strrchr(path, '/');
    rs->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    rs->base = strdup(slash ? slash + 1 : path);
    rs->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    rs->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!rs->dir || !rs->base || rs->ino_fd < 0 || rs->stop_fd < 0 ||
        inotify_add_watch(rs->ino_fd, rs->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0) {
        LOG_WARN("reload", "cannot watch %s (%s); reload with SIGHUP", rs->dir ? rs->dir : path, strerror(errno));
        return -1;
    }
    if (pthread_create(&rs->thread, NULL, watch_main, br) != 0) {
        LOG_WARN("reload", "cannot start the watcher thread; reload with SIGHUP");
        return -1;
    }
    rs->running = true;
    LOG_INFO("reload", "watching %s for changes (and SIGHUP)", path);
    return 0;
}

void reload_watch_stop(struct bridge *br)
{
    struct reload_state *rs = br->reload;
    if (!rs)
        return;
    if (rs->running) {
        uint64_t one = 1;
        ssize_t w = write(rs->stop_fd, &one, sizeof one);
        (void)w;
        pthread_join(rs->thread, NULL);
    }
    if (rs->ino_fd >= 0)
        close(rs->ino_fd);
    if (rs->stop_fd >= 0)
        close(rs->stop_fd);
    free(rs->dir);
    free(rs->base);
    cJSON_Delete(rs->errors);
    cJSON_Delete(rs->needs_restart);
    free(rs);
    br->reload = NULL;
}

void reload_poll(struct bridge *br, uint64_t now_ms)
{
    if (br->stopping)
        return;
    if (br->reload_requested) {
        br->reload_requested = 0;
        reload_now(br, "SIGHUP");
        return;
    }
    struct reload_state *rs = br->reload;
    if (!rs)
        return;
    uint64_t at = __atomic_load_n(&rs->changed_at, __ATOMIC_ACQUIRE);
    if (!at || now_ms - at < DEBOUNCE_MS)
        return;
    /* Clear only if no newer change arrived meanwhile. */
    if (__atomic_compare_exchange_n(&rs->changed_at, &at, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        reload_now(br, "file change");
}

/* ---- settings that need a restart -------------------------------------------------- */

static bool str_differs(const char *a, const char *b)
{
    return (a || b) && (!a || !b || strcmp(a, b) != 0);
}

/* Keeps the running value of a string setting in 'next' and notes the change. */
static void keep_str(char **next_field, const char *cur, const char *name, cJSON *notes)
{
    if (!str_differs(*next_field, cur))
        return;
    cJSON_AddItemToArray(notes, cJSON_CreateString(name));
    free(*next_field);
    *next_field = cur ? strdup(cur) : NULL;
}

#define KEEP_INT(field, name)                                          \
    do {                                                               \
        if (next->field != cur->field) {                               \
            cJSON_AddItemToArray(notes, cJSON_CreateString(name));     \
            next->field = cur->field;                                  \
        }                                                              \
    } while (0)

static cJSON *keep_restart_settings(struct tb_config *next, const struct tb_config *cur)
{
    cJSON *notes = cJSON_CreateArray();
    keep_str(&next->mqtt.host, cur->mqtt.host, "mqtt.host", notes);
    KEEP_INT(mqtt.port, "mqtt.port");
    keep_str(&next->mqtt.client_id, cur->mqtt.client_id, "mqtt.client_id", notes);
    keep_str(&next->mqtt.username, cur->mqtt.username, "mqtt.username", notes);
    keep_str(&next->mqtt.password, cur->mqtt.password, "mqtt.password", notes);
    KEEP_INT(mqtt.keepalive, "mqtt.keepalive");
    KEEP_INT(mqtt.protocol, "mqtt.protocol");
    KEEP_INT(mqtt.qos, "mqtt.qos");
    KEEP_INT(mqtt.clean_session, "mqtt.clean_session");
    keep_str(&next->mqtt.tls_ca, cur->mqtt.tls_ca, "mqtt.tls_ca", notes);
    keep_str(&next->mqtt.tls_cert, cur->mqtt.tls_cert, "mqtt.tls_cert", notes);
    keep_str(&next->mqtt.tls_key, cur->mqtt.tls_key, "mqtt.tls_key", notes);
    KEEP_INT(mqtt.tls_insecure, "mqtt.tls_insecure");
    KEEP_INT(mqtt.reconnect_min_ms, "mqtt.reconnect_min");
    KEEP_INT(mqtt.reconnect_max_ms, "mqtt.reconnect_max");
    keep_str(&next->server.listen_host, cur->server.listen_host, "server.listen", notes);
    KEEP_INT(server.port, "server.listen");
    KEEP_INT(server.writer_threads, "server.writer_threads");
    KEEP_INT(heartbeat.ws_ping_ms, "heartbeat.ws_ping");
    KEEP_INT(heartbeat.idle_timeout_ms, "heartbeat.idle_timeout");
    return notes;
}

/* ---- applying ------------------------------------------------------------------------ */

/* Recomputes the endpoint rooms of one connection under the new config. */
static void rejoin(struct bridge *br, struct conn *c, const struct tb_config *old)
{
    const char *ep_path = c->endpoint >= 0 ? old->endpoints[c->endpoint].path : NULL;
    const struct cfg_endpoint *ep = ep_path ? config_endpoint_by_path(br->cfg, ep_path) : NULL;
    struct topic_match m;
    if (!ep || !topic_pattern_match(ep->pattern, c->path, &m)) {
        c->endpoint = -1;
        conn_close(c, TB_CLOSE_ENDPOINT_REMOVED, "endpoint removed by configuration reload");
        return;
    }
    c->endpoint = (int)(ep - br->cfg->endpoints);
    char names[CFG_MAX_ROOMS][256];
    size_t n = 0;
    struct tmpl_ctx ctx = {c->path, &m, NULL};
    for (size_t i = 0; i < ep->n_rooms && n < CFG_MAX_ROOMS; i++)
        if (tmpl_render(ep->rooms[i], &ctx, names[n], sizeof names[n]) > 0 &&
            bridge_authorize_join(br, c, names[n]))
            n++;
    /* Leave endpoint rooms that are no longer listed (client subscriptions stay). */
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->conn_next;
        if (!s->auto_joined)
            continue;
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++)
            keep = strcmp(names[i], s->room->name) == 0;
        if (keep)
            continue;
        s->auto_joined = false;
        if (!s->how) /* no client subscription or pattern holds it either */
            conn_unsubscribe(c, s);
    }
    for (size_t i = 0; i < n; i++) {
        if (conn_find_sub(c, names[i]))
            continue;
        struct sub *s = bridge_join(br, c, names[i]);
        if (s) {
            s->auto_joined = true;
            bridge_send_room_state(br, c, s);
        }
    }
}

static void notify_clients(struct bridge *br)
{
    cJSON *d = cJSON_CreateObject();
    char ver[24];
    snprintf(ver, sizeof ver, "%016llx", (unsigned long long)br->cfg->version);
    cJSON_AddStringToObject(d, "config_version", ver);
    for (struct conn *c = br->conns; c; c = c->next)
        if (!c->closing)
            bridge_send_control(br, c, "config_reloaded", d);
    cJSON_Delete(d);
}

void reload_apply(struct bridge *br, struct tb_config *next)
{
    struct reload_state *rs = state(br);
    struct tb_config *old = br->cfg;
    cJSON *notes = keep_restart_settings(next, old);
    for (cJSON *it = notes->child; it; it = it->next)
        LOG_WARN("reload", "%s changed: needs a restart; the running value stays until then", it->valuestring);
    br->cfg = next;
    mqtt_client_set_filters(br->mqtt, next->filters, next->n_filters);
    for (struct conn *c = br->conns; c; c = c->next)
        rejoin(br, c, old);
    bridge_on_config_changed(br, old);
    notify_clients(br);
    config_unref(old);
    if (rs) {
        cJSON_Delete(rs->needs_restart);
        rs->needs_restart = notes;
    } else {
        cJSON_Delete(notes);
    }
}

static void record(struct reload_state *rs, bool ok, const char *why, const struct config_diag *diag)
{
    rs->at_wall_ms = tb_wall_ms();
    rs->ok = ok;
    rs->count++;
    rs->failures += !ok;
    snprintf(rs->trigger, sizeof rs->trigger, "%s", why);
    cJSON_Delete(rs->errors);
    rs->errors = cJSON_CreateArray();
    for (size_t i = 0; diag && i < diag->n; i++)
        cJSON_AddItemToArray(rs->errors, cJSON_CreateString(diag->msgs[i]));
}

int reload_now(struct bridge *br, const char *why)
{
    struct reload_state *rs = state(br);
    struct config_diag diag = {0};
    struct tb_config *next = config_load(br->cfg->path, &diag);
    if (!next) {
        for (size_t i = 0; i < diag.n; i++)
            LOG_ERROR("reload", "%s", diag.msgs[i]);
        LOG_ERROR("reload", "configuration not reloaded (%s): %zu error(s); the running configuration stays",
                  why, diag.n);
        if (rs)
            record(rs, false, why, &diag);
        config_diag_free(&diag);
        return -1;
    }
    config_diag_free(&diag);
    if (next->version == br->cfg->version) {
        LOG_DEBUG("reload", "%s: configuration unchanged", why);
        config_unref(next);
        if (rs)
            record(rs, true, why, NULL);
        return 0;
    }
    reload_apply(br, next);
    if (rs)
        record(rs, true, why, NULL);
    LOG_INFO("reload", "configuration reloaded (%s): version %016llx, %zu endpoints, %zu routes, %zu alert rules",
             why, (unsigned long long)br->cfg->version, br->cfg->n_endpoints, br->cfg->n_routes,
             br->cfg->n_alerts);
    return 0;
}

cJSON *reload_status_json(const struct bridge *br)
{
    const struct reload_state *rs = br->reload;
    cJSON *j = cJSON_CreateObject();
    if (!rs || !rs->count) {
        cJSON_AddNullToObject(j, "last");
        return j;
    }
    cJSON_AddBoolToObject(j, "ok", rs->ok);
    cJSON_AddNumberToObject(j, "at", (double)rs->at_wall_ms);
    cJSON_AddStringToObject(j, "trigger", rs->trigger);
    cJSON_AddNumberToObject(j, "count", rs->count);
    cJSON_AddNumberToObject(j, "failures", rs->failures);
    cJSON_AddItemToObject(j, "errors", rs->errors ? cJSON_Duplicate(rs->errors, true) : cJSON_CreateArray());
    cJSON_AddItemToObject(j, "needs_restart",
                          rs->needs_restart ? cJSON_Duplicate(rs->needs_restart, true) : cJSON_CreateArray());
    return j;
}
