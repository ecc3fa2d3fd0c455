/* template: string templates for room names and messages. Pure; any thread.
 *
 *   "vehicle:{id}"                       capture of the topic / path pattern
 *   "{payload.simulation_mode|personal}" payload field (dotted path) with a default
 *   "{payload.simulation_mode|payload.mode|personal}"   a fallback chain: the first name
 *                                        with a value, else the default
 *   "Engine temperature {engine_metrics.temperature} C"   bare field (TMPL_BARE_FIELDS)
 *   "{topic}"                            the whole topic
 *   "{{" and "}}"                        literal braces
 *
 * A name that is a capture of the pattern given at compile time is a capture;
 * "payload.x.y" is a payload field; "topic" is the topic; with TMPL_BARE_FIELDS any
 * other dotted name is a payload field, otherwise it is a compile error ("template
 * names {x} but the pattern has no capture x"). Payload strings render as-is, numbers
 * in the shortest form that round-trips ("%.15g", integers without ".0"), booleans as
 * true/false. A field that is missing, null, an object or an array uses the next name of
 * the chain, then the default after the last '|' when there is one; without a default
 * the render fails. In a chain every part but the last is a name (a capture, topic or
 * payload field); the last is a name when it starts with "payload.", else the default. */
#ifndef TB_TEMPLATE_H
#define TB_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "topic.h"

/* TMPL_BARE_FIELDS: any dotted name is a payload field (alert messages).
 * TMPL_PLAIN_FIELDS: a payload field renders only when its value is a number or a string
 * of 1..64 [A-Za-z0-9_.-], else it counts as missing (the default applies): room names, so a
 * publisher cannot steer a message into another room ("vehicle:42", "alerts"). */
enum { TMPL_BARE_FIELDS = 1, TMPL_PLAIN_FIELDS = 2 };

struct tmpl;

struct tmpl_ctx {
    const char *topic;              /* may be NULL */
    const struct topic_match *match; /* captures of 'pattern' given at compile time; may be NULL */
    const cJSON *payload;           /* may be NULL (payload not JSON) */
};

/* 'pattern' may be NULL (no captures). On error returns NULL, message in err and
 * the 1-based column within src in *err_col. */
struct tmpl *tmpl_compile(const char *src, const struct topic_pattern *pattern, unsigned flags,
                          char *err, size_t errlen, int *err_col);
void tmpl_free(struct tmpl *t);

const char *tmpl_source(const struct tmpl *t);
/* True when the template has no placeholders; then tmpl_render ignores ctx. */
bool tmpl_is_constant(const struct tmpl *t);
/* True when the template reads payload fields. */
bool tmpl_uses_payload(const struct tmpl *t);

/* Renders into out (always NUL-terminated when outlen > 0). Returns the length, or -1
 * when a field without default is missing, or -2 when the result does not fit. */
int tmpl_render(const struct tmpl *t, const struct tmpl_ctx *ctx, char *out, size_t outlen);

#endif
