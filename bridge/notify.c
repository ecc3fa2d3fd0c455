/* notify: sd_notify messages to the service manager; see notify.h. */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

#ifdef TB_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0 && log_ratelimit_allow("sd_notify", 60000))
        LOG_WARN("notify", "sd_notify to $NOTIFY_SOCKET failed: %s", strerror(-rc));
}

void notify_init(struct notify *n)
{
    uint64_t usec = 0;
    n->watchdog_ms = 0;
    n->next_watchdog_ms = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        /* half the interval, as sd_watchdog_enabled(3) recommends; at least 1 ms */
        n->watchdog_ms = usec / 2000 ? usec / 2000 : 1;
        LOG_INFO("notify", "systemd watchdog: pinging every %llu ms", (unsigned long long)n->watchdog_ms);
    }
}
#else
static void send_state(const char *state)
{
    (void)state;
}

void notify_init(struct notify *n)
{
    n->watchdog_ms = 0;
    n->next_watchdog_ms = 0;
}
#endif

void notify_ready(const struct notify *n, const char *status)
{
    (void)n;
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status ? status : "running");
    send_state(msg);
}

void notify_reloading(const struct notify *n)
{
    (void)n;
    /* MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) tell this reload from an
     * older one; older versions ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    send_state(msg);
}

void notify_stopping(const struct notify *n)
{
    (void)n;
    send_state("STOPPING=1\nSTATUS=stopping");
}

void notify_watchdog(struct notify *n, uint64_t now_ms)
{
    if (!n->watchdog_ms || now_ms < n->next_watchdog_ms)
        return;
    n->next_watchdog_ms = now_ms + n->watchdog_ms;
    send_state("WATCHDOG=1");
}
