/* reload: file watching, debounce, validation and the hand-over of a new snapshot.
 *
 * Threads: the watcher thread runs watch_main() and touches only the atomic
 * 'changed_at' and the wake function. Everything else runs on the service thread. */
#include "reload.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "log.h"
#include "notify.h"

#define DEBOUNCE_MS 200

struct reload {
    pthread_t thread;
    bool running;
    int ino_fd, stop_fd;
    char *dir, *base;
    void (*wake)(void *ud);
    void *wake_ud;
    uint64_t changed_at;     /* atomic: monotonic ms of the last change seen, 0 = none */
    /* status for /health (service thread) */
    uint64_t at_wall_ms;
    bool ok;
    unsigned count, failures;
    char trigger[32];
    cJSON *errors, *needs_restart;
};

static bool event_is_ours(const struct reload *rl, const struct inotify_event *ev)
{
    return ev->len && strcmp(ev->name, rl->base) == 0;
}

static void *watch_main(void *ud)
{
    struct reload *rl = ud;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd pfd[2] = {{rl->ino_fd, POLLIN, 0}, {rl->stop_fd, POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        ssize_t n = read(rl->ino_fd, buf, sizeof buf);
        if (n <= 0)
            continue;
        bool ours = false;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            ours |= event_is_ours(rl, ev);
            p += sizeof *ev + ev->len;
        }
        if (ours) {
            __atomic_store_n(&rl->changed_at, tb_now_ms(), __ATOMIC_RELEASE);
            rl->wake(rl->wake_ud);
        }
    }
    return NULL;
}

static int watch_start(struct reload *rl, const char *path)
{
    const char *slash = strrchr(path, '/');
    rl->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    rl->base = strdup(slash ? slash + 1 : path);
    rl->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    rl->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!rl->dir || !rl->base || rl->ino_fd < 0 || rl->stop_fd < 0 ||
        inotify_add_watch(rl->ino_fd, rl->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0) {
        LOG_WARN("reload", "cannot watch %s (%s); reload with SIGHUP", rl->dir ? rl->dir : path, strerror(errno));
        return -1;
    }
    if (pthread_create(&rl->thread, NULL, watch_main, rl) != 0) {
        LOG_WARN("reload", "cannot start the watcher thread; reload with SIGHUP");
        return -1;
    }
    rl->running = true;
    LOG_INFO("reload", "watching %s for changes (and SIGHUP)", path);
    return 0;
}

struct reload *reload_new(const char *path, void (*wake)(void *ud), void *wake_ud)
{
    struct reload *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->ino_fd = rl->stop_fd = -1;
    rl->ok = true;
    rl->wake = wake;
    rl->wake_ud = wake_ud;
    watch_start(rl, path);
    return rl;
}

void reload_free(struct reload *rl)
{
    if (!rl)
        return;
    if (rl->running) {
        uint64_t one = 1;
        ssize_t w = write(rl->stop_fd, &one, sizeof one);
        (void)w;
        pthread_join(rl->thread, NULL);
    }
    if (rl->ino_fd >= 0)
        close(rl->ino_fd);
    if (rl->stop_fd >= 0)
        close(rl->stop_fd);
    free(rl->dir);
    free(rl->base);
    cJSON_Delete(rl->errors);
    cJSON_Delete(rl->needs_restart);
    free(rl);
}

void reload_poll(struct reload *rl, struct bridge *br, uint64_t now_ms)
{
    if (br->stopping)
        return;
    if (br->reload_requested) {
        br->reload_requested = 0;
        reload_now(rl, br, "SIGHUP");
        return;
    }
    if (!rl)
        return;
    uint64_t at = __atomic_load_n(&rl->changed_at, __ATOMIC_ACQUIRE);
    if (!at || now_ms - at < DEBOUNCE_MS)
        return;
    /* Clear only if no newer change arrived meanwhile. */
    if (__atomic_compare_exchange_n(&rl->changed_at, &at, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        reload_now(rl, br, "file change");
}

/* Settings that need a restart keep their running values (the config key table's
 * restart column); returns their names for /health. */
static cJSON *keep_restart_settings(struct tb_config *next, const struct tb_config *cur)
{
    const char *names[CFG_MAX_RESTART_SETTINGS];
    size_t n = config_keep_restart_settings(next, cur, names, CFG_MAX_RESTART_SETTINGS);
    cJSON *notes = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        LOG_WARN("reload", "%s changed: needs a restart; the running value stays until then", names[i]);
        cJSON_AddItemToArray(notes, cJSON_CreateString(names[i]));
    }
    return notes;
}

static void record(struct reload *rl, bool ok, const char *why, const struct config_diag *diag)
{
    rl->at_wall_ms = tb_wall_ms();
    rl->ok = ok;
    rl->count++;
    rl->failures += !ok;
    snprintf(rl->trigger, sizeof rl->trigger, "%s", why);
    cJSON_Delete(rl->errors);
    rl->errors = cJSON_CreateArray();
    for (size_t i = 0; diag && i < diag->n; i++)
        cJSON_AddItemToArray(rl->errors, cJSON_CreateString(diag->msgs[i]));
}

/* reload_now without the service-manager notifications around it. */
static int reload_config(struct reload *rl, struct bridge *br, const char *why)
{
    struct config_diag diag = {0};
    struct tb_config *next = config_load(br->cfg->path, &diag);
    if (!next) {
        for (size_t i = 0; i < diag.n; i++)
            LOG_ERROR("reload", "%s", diag.msgs[i]);
        LOG_ERROR("reload", "configuration not reloaded (%s): %zu error(s); the running configuration stays",
                  why, diag.n);
        if (rl)
            record(rl, false, why, &diag);
        config_diag_free(&diag);
        return -1;
    }
    config_diag_free(&diag);
    if (next->version == br->cfg->version) {
        LOG_DEBUG("reload", "%s: configuration unchanged", why);
        config_unref(next);
        if (rl)
            record(rl, true, why, NULL);
        return 0;
    }
    cJSON *notes = keep_restart_settings(next, br->cfg);
    log_apply_config((enum tb_log_level)next->log.level, (enum tb_log_format)next->log.format);
    bridge_apply_config(br, next);
    if (rl) {
        record(rl, true, why, NULL);
        cJSON_Delete(rl->needs_restart);
        rl->needs_restart = notes;
    } else {
        cJSON_Delete(notes);
    }
    LOG_INFO("reload", "configuration reloaded (%s): version %016llx, %zu endpoints, %zu routes, %zu alert rules",
             why, (unsigned long long)br->cfg->version, br->cfg->n_endpoints, br->cfg->n_routes,
             br->cfg->n_alerts);
    return 0;
}

int reload_now(struct reload *rl, struct bridge *br, const char *why)
{
    notify_reloading(&br->notify);
    int rc = reload_config(rl, br, why);
    notify_ready(&br->notify, rc == 0 ? "running" : "running; the last reload failed, see the log");
    return rc;
}

void reload_get_stats(const struct reload *rl, struct reload_stats *out)
{
    out->count = rl ? rl->count : 0;
    out->failures = rl ? rl->failures : 0;
    out->last_ok = !rl || !rl->count || rl->ok;
    out->at_wall_ms = rl && rl->count ? rl->at_wall_ms : 0;
}

unsigned reload_successes(const struct reload *rl)
{
    return rl ? rl->count - rl->failures : 0;
}

cJSON *reload_status_json(const struct reload *rl)
{
    cJSON *j = cJSON_CreateObject();
    if (!rl || !rl->count) {
        cJSON_AddNullToObject(j, "last");
        return j;
    }
    cJSON_AddBoolToObject(j, "ok", rl->ok);
    cJSON_AddNumberToObject(j, "at", (double)rl->at_wall_ms);
    cJSON_AddStringToObject(j, "trigger", rl->trigger);
    cJSON_AddNumberToObject(j, "count", rl->count);
    cJSON_AddNumberToObject(j, "failures", rl->failures);
    cJSON_AddItemToObject(j, "errors", rl->errors ? cJSON_Duplicate(rl->errors, true) : cJSON_CreateArray());
    cJSON_AddItemToObject(j, "needs_restart",
                          rl->needs_restart ? cJSON_Duplicate(rl->needs_restart, true) : cJSON_CreateArray());
    return j;
}
