/* alert: the alert state machine. Pure: no I/O, no threads, no clock of its own.
 *
 * Thread: an engine is not thread-safe; the bridge drives it from the libwebsockets
 * service thread only (messages, ticks, acks and restores all arrive there).
 *
 * The caller feeds it matched telemetry (alert_engine_on_message), a periodic tick
 * (alert_engine_tick), retained "offline" statuses (alert_engine_force_inactive),
 * client acknowledgements (alert_engine_ack) and, at start-up, the retained alerts
 * read back from the broker (alert_engine_restore). Every change of an alert is
 * appended to a struct alert_events as a self-contained snapshot; the caller then
 * fans the snapshots out to rooms and MQTT and resets the list.
 *
 * Times: every 'now_ms' is a monotonic clock (durations: for, inactive_for);
 * the timestamps inside alerts (raised_at, cleared_at, acknowledged_at) come from a
 * wall clock that defaults to tb_wall_ms() and can be replaced for tests.
 *
 * Per (rule, key) there is at most one active alert, with the stable id
 * "<rule>:<key>", so a restarted bridge maps retained alerts back to their rules.
 *
 * Rules are borrowed: the engine keeps pointers into the cfg_alert array given to
 * alert_engine_set_rules, so the caller keeps that config snapshot alive until the
 * next set_rules call or alert_engine_free. A rule's publish_topic template, when set,
 * must be compiled against a pattern whose captures are key (index 0) and name
 * (index 1), e.g. topic_pattern_compile("{key}/{name}"); when NULL the topic is
 * "alerts/<key>/<name>". */
#ifndef TB_ALERT_H
#define TB_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"

/* Most keys tracked per rule; telemetry for further keys is ignored (and logged,
 * rate-limited) until some are freed. Bounds memory against a flood of vehicle ids. */
#define ALERT_MAX_KEYS_PER_RULE 100000

enum alert_state { ALERT_ACTIVE, ALERT_CLEARED };

/* One alert. The engine owns the live ones; events carry deep copies. */
struct alert {
    char *id;                  /* "<rule>:<key>" */
    char *rule;
    enum cfg_severity severity;
    char *message;             /* rendered from the payload at raise time */
    char *key;
    cJSON *value;              /* number, string or bool; NULL = no value (JSON null) */
    uint64_t raised_at;        /* wall ms */
    uint64_t cleared_at;       /* wall ms, 0 while active */
    bool acknowledged;
    char *acknowledged_by;     /* NULL until acknowledged (or when acked anonymously) */
    uint64_t acknowledged_at;  /* wall ms, 0 until acknowledged */
    enum alert_state state;
    char *reason;              /* why it was cleared, NULL while active */
    char **rooms;              /* rendered room names */
    size_t n_rooms;
    char *publish_topic;       /* MQTT topic of its retained state */
};

enum alert_event_kind { ALERT_EV_RAISED, ALERT_EV_CLEARED, ALERT_EV_ACKED };

struct alert_event {
    enum alert_event_kind kind;
    struct alert alert;        /* snapshot after the change; owned by the event list */
};

/* A growable list; zero-initialise it ("struct alert_events ev = {0};"). */
struct alert_events {
    struct alert_event *v;
    size_t n, cap;
};

void alert_events_reset(struct alert_events *ev);   /* frees the snapshots, keeps the array */
void alert_events_free(struct alert_events *ev);    /* frees everything; NULL is harmless */

const char *alert_event_kind_name(enum alert_event_kind k);   /* "alert", "alert_cleared", ... */

/* {"id","rule","type","severity","message","key","value","raised_at","cleared_at",
 *  "acknowledged","acknowledged_by","acknowledged_at","state","reason","rooms"}.
 * "type" repeats the rule name; absent values are JSON null. Caller frees. */
cJSON *alert_to_json(const struct alert *a);

struct alert_engine;

struct alert_engine *alert_engine_new(void);
void alert_engine_free(struct alert_engine *e);   /* NULL is harmless */

/* Replaces the wall clock used for timestamps (default: tb_wall_ms). */
void alert_engine_set_wall_clock(struct alert_engine *e, uint64_t (*wall_ms)(void *ud), void *ud);

/* (Re)configures the rules (borrowed, see above). A rule that still exists with the same
 * name and match source keeps its state (active alerts, pending timers, last-seen times);
 * the alerts of every other old rule are cleared with reason "rule removed".
 * Returns 0, or -1 when out of memory (the old rules stay). */
int alert_engine_set_rules(struct alert_engine *e, const struct cfg_alert *rules, size_t n,
                           struct alert_events *out);

/* A message on 'topic'; 'payload' is NULL when it was not JSON. A rule with
 * inactive_for is an inactivity rule: any matching message counts as activity and its
 * 'when' is not evaluated. Condition rules ignore messages that are not JSON; in a JSON
 * payload a missing field makes 'when' false (so it resets a pending 'for' and, without
 * clear_when, clears the alert). */
void alert_engine_on_message(struct alert_engine *e, const char *topic, const cJSON *payload,
                             uint64_t now_ms, struct alert_events *out);

/* Raises 'for' alerts whose condition has held long enough (it is assumed to hold until
 * a message says otherwise) and inactivity alerts whose key has gone quiet. Call it
 * about once a second. */
void alert_engine_tick(struct alert_engine *e, uint64_t now_ms, struct alert_events *out);

/* Raises at once every inactivity rule's alert for 'key' (e.g. a retained "offline" on
 * vehicle/<key>/status). For a key never seen, each capture of the rule's pattern reads
 * as 'key' when rendering rooms. Returns the number of alerts raised. */
int alert_engine_force_inactive(struct alert_engine *e, const char *key, uint64_t now_ms,
                                struct alert_events *out);

/* Acknowledges an active alert. Returns 0 when newly acknowledged (an ACKED event is
 * appended), 1 when it already was (no event), -1 when no active alert has that id.
 * 'by' may be NULL. */
int alert_engine_ack(struct alert_engine *e, const char *alert_id, const char *by,
                     uint64_t now_ms, struct alert_events *out);

/* Rebuilds an active alert from its retained JSON (the alert_to_json format). Returns 0
 * when restored or already active (idempotent), -1 when the JSON is not an active alert
 * of a current rule. No event is emitted: the alert was already published. */
int alert_engine_restore(struct alert_engine *e, const cJSON *alert_json);

/* Like restore, but an alert already active takes the JSON's fields (raised_at, message,
 * value, acknowledgement, rooms): the state another bridge of a cluster published wins
 * over the one this engine computed for itself. Returns 0 or -1 like restore. */
int alert_engine_adopt(struct alert_engine *e, const cJSON *alert_json);

/* Drops an active alert without an event (another bridge of a cluster cleared it and
 * said so). Returns 0, or -1 when no active alert has that id. */
int alert_engine_forget(struct alert_engine *e, const char *alert_id);

/* Calls fn for each active alert that lists 'room' (every active alert when room is
 * NULL), e.g. to bring a client that just joined up to date. Stops when fn returns
 * non-zero. Returns the number of calls. */
size_t alert_engine_foreach_active(const struct alert_engine *e, const char *room,
                                   int (*fn)(const struct alert *a, void *ud), void *ud);

/* Looks up an active alert by id; NULL when none. Valid until the next engine call. */
const struct alert *alert_engine_find(const struct alert_engine *e, const char *alert_id);

size_t alert_engine_count_active(const struct alert_engine *e);

#endif
