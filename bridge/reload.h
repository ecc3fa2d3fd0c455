/* reload: live configuration reload.
 *
 * Triggers: SIGHUP, and changes to the config file seen by inotify on its directory
 * (so editors that write a temporary file and rename it over the original are
 * caught). A watcher thread only notes "something changed" and wakes the service loop;
 * the service thread reloads once the file has been quiet for the debounce interval,
 * so a burst of writes becomes one reload.
 *
 * A reload loads and validates a complete new snapshot; if that fails nothing changes
 * and the errors ("file:line:column: message") are logged and kept for /health.
 * Otherwise settings that need a restart keep their running values (the config key
 * table marks them; reported as "needs restart") and bridge_apply_config swaps the
 * snapshot in, in one step on the service thread.
 *
 * Threads: the watcher thread only stores a timestamp (atomic) and calls the wake
 * function it was given; everything else runs on the service thread. */
#ifndef TB_RELOAD_H
#define TB_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct bridge;
struct reload;

/* Watches 'path' (copied); 'wake' (any thread) wakes the service loop when it changed.
 * A watcher that cannot start is logged (SIGHUP still works). NULL when out of memory. */
struct reload *reload_new(const char *path, void (*wake)(void *ud), void *wake_ud);
void reload_free(struct reload *rl);    /* stops the watcher; NULL is harmless */

/* Service thread: reloads if a signal (br->reload_requested) or a settled file change
 * asks for it. */
void reload_poll(struct reload *rl, struct bridge *br, uint64_t now_ms);

/* Service thread: reloads now. Returns 0 when the new config was applied. */
int reload_now(struct reload *rl, struct bridge *br, const char *why);

/* Reload outcomes for /metrics and /health/ready; all zero before the first reload. */
struct reload_stats {
    unsigned count, failures;
    bool last_ok;               /* true before the first reload */
    uint64_t at_wall_ms;        /* when the last one ran; 0 = never */
};
void reload_get_stats(const struct reload *rl, struct reload_stats *out);   /* rl may be NULL */

/* Reloads that succeeded so far (applied, or the file unchanged); 0 for NULL. Whoever
 * reads files the config only names (the TLS certificate) reads them again when this
 * grows: a SIGHUP after a certificate rotation leaves the config file as it was. */
unsigned reload_successes(const struct reload *rl);

/* {"ok","at","trigger","count","failures","errors":[...],"needs_restart":[...]} for /health. */
cJSON *reload_status_json(const struct reload *rl);

#endif
