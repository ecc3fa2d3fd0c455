/* json_util: small helpers over cJSON shared by templates, expressions and alerts. Pure. */
#ifndef TB_JSON_UTIL_H
#define TB_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Looks up a dotted field path ("a.b.c", len bytes; a leading "payload." is skipped)
 * in 'root'. Returns NULL when any step is absent or not an object. */
const cJSON *json_path_get(const cJSON *root, const char *path, size_t len);

/* Formats a number the way templates and messages show it: integers without a
 * fraction, others with up to 15 significant digits. Returns snprintf's result. */
int json_format_number(double v, char *out, size_t outlen);

/* True when text[0..len) is exactly one RFC 8259 JSON value (surrounding whitespace
 * allowed). Stricter than cJSON, which accepts leading zeros ("007"), "1.", and raw
 * control bytes inside strings: text that passes can be embedded in a frame as is.
 * Nesting deeper than 512 levels is rejected. UTF-8 is checked separately. */
bool json_strict_valid(const char *text, size_t len);

/* True when JSON text holds the escape \u0000 (cJSON would cut that string at the NUL):
 * names must refuse it rather than be cut. Escaped backslashes ("\\u0000") do not count. */
bool json_has_nul_escape(const char *text, size_t len);

#endif
