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
 * Otherwise, in one step on the service thread: settings that need a restart keep
 * their running values (reported as "needs restart"), the snapshot is swapped, MQTT
 * subscriptions are diffed, every connection's endpoint rooms are recomputed (a
 * connection whose endpoint is gone is closed with TB_CLOSE_ENDPOINT_REMOVED), alert
 * rules are replaced, and clients get a "config_reloaded" frame. Rooms are not tied to
 * the config, so surviving rooms keep their last value, history and sequence numbers. */
#ifndef TB_RELOAD_H
#define TB_RELOAD_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct bridge;
struct tb_config;

/* Starts watching br->cfg->path; 0 or -1 (logged; SIGHUP still works). */
int reload_watch_start(struct bridge *br);
void reload_watch_stop(struct bridge *br);

/* Service thread: reloads if a signal or a settled file change asks for it. */
void reload_poll(struct bridge *br, uint64_t now_ms);

/* Service thread: reloads now. Returns 0 when the new config was applied. */
int reload_now(struct bridge *br, const char *why);

/* Applies an already validated snapshot (takes ownership of 'next'). */
void reload_apply(struct bridge *br, struct tb_config *next);

/* {"ok","at","trigger","count","failures","errors":[...],"needs_restart":[...]} for /health. */
cJSON *reload_status_json(const struct bridge *br);

#endif
