/* notify: the systemd service manager protocol (sd_notify), for Type=notify units.
 *
 *   READY=1          once the listener is up (the MQTT connection follows in the background)
 *   RELOADING=1      while a SIGHUP / file-change reload runs, READY=1 after it
 *   STOPPING=1       when shutdown begins
 *   WATCHDOG=1       from the service loop's tick, at half the unit's WatchdogSec, so a
 *                    stuck loop gets the process restarted
 *   STATUS=...       a one-line status systemctl shows
 *
 * Without NOTIFY_SOCKET in the environment (not started by systemd) every call does
 * nothing. Built without libsystemd (TB_HAVE_SYSTEMD undefined) it does nothing either.
 * Service thread only. */
#ifndef TB_NOTIFY_H
#define TB_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct notify {
    uint64_t watchdog_ms;       /* WATCHDOG=1 every this many ms; 0 = no watchdog */
    uint64_t next_watchdog_ms;  /* monotonic */
};

/* Reads the watchdog interval the service manager asks for (WATCHDOG_USEC). */
void notify_init(struct notify *n);
void notify_ready(const struct notify *n, const char *status);
void notify_reloading(const struct notify *n);
void notify_stopping(const struct notify *n);
/* Sends WATCHDOG=1 when it is due; call it from a periodic tick. */
void notify_watchdog(struct notify *n, uint64_t now_ms);

#endif
