/* topic: compiled topic / path patterns and matching. Pure; any thread.
 *
 * A pattern is split on '/'. Each level is one of
 *   literal   "vehicle"        matches exactly that level
 *   capture   "{id}"           matches any one level and names it (MQTT '+')
 *   wildcard  "+"              matches any one level, unnamed
 *   tail      "#"              last level only: matches zero or more remaining levels
 *                              (MQTT semantics: "a/#" matches "a" and "a/b/c")
 * Captures must be whole levels: "v{id}" is an error. Capture names are
 * [A-Za-z_][A-Za-z0-9_]*, unique within a pattern. Empty levels are allowed
 * literals ("/ws/x" has an empty first level), so the same matcher serves
 * WebSocket endpoint paths.
 *
 * topic_pattern_filter() gives the MQTT subscription filter ("vehicle/+/telemetry"). */
#ifndef TB_TOPIC_H
#define TB_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_MAX_CAPTURES 8

struct topic_pattern;

/* A matched capture is a slice of the subject string (not NUL-terminated). */
struct topic_slice {
    const char *ptr;
    size_t len;
};

struct topic_match {
    size_t n;                                 /* = topic_pattern_ncaptures() */
    struct topic_slice cap[TOPIC_MAX_CAPTURES];
    struct topic_slice tail;                  /* what '#' matched, len 0 if none */
};

/* Compiles 'src'. On error returns NULL and writes a message to err (errlen bytes)
 * and the 1-based column within src of the offending character to *err_col. */
struct topic_pattern *topic_pattern_compile(const char *src, char *err, size_t errlen, int *err_col);
void topic_pattern_free(struct topic_pattern *p);

const char *topic_pattern_source(const struct topic_pattern *p);
const char *topic_pattern_filter(const struct topic_pattern *p);
size_t topic_pattern_ncaptures(const struct topic_pattern *p);
const char *topic_pattern_capture_name(const struct topic_pattern *p, size_t i);
/* Index of the capture called 'name' (len bytes), or -1. */
int topic_pattern_capture_index(const struct topic_pattern *p, const char *name, size_t len);
/* True when the pattern has no captures, wildcards or '#'. */
bool topic_pattern_is_literal(const struct topic_pattern *p);

/* Matches a concrete topic (or path). 'm' may be NULL. */
bool topic_pattern_match(const struct topic_pattern *p, const char *subject, struct topic_match *m);

/* Validates a concrete MQTT topic name as published (no wildcards, not empty,
 * valid UTF-8 is the broker's job). */
bool topic_name_valid(const char *topic);

#endif
