/* expr: boolean conditions over JSON payload fields, for route 'when' filters and
 * alert rules. Pure; any thread; a compiled expression is immutable.
 *
 * Grammar (lowest precedence first):
 *   expr    := or
 *   or      := and ( ("or" | "||") and )*
 *   and     := not ( ("and" | "&&") not )*
 *   not     := ("not" | "!") not | cmp
 *   cmp     := operand ( ("==" | "!=" | "<" | "<=" | ">" | ">=") operand )?
 *   operand := number | string ('..' or "..") | true | false | null | field | "(" expr ")"
 *   field   := name ("." name)*        e.g. engine_metrics.temperature ; "payload." prefix optional
 * A bare field used as a condition is true when it is boolean true, a non-zero number or a
 * non-empty string. Comparisons: number with number, string with string (byte order),
 * bool with bool (== / != only). A missing field or mismatched types makes the comparison
 * false (and "!=" false too); never an error at run time. */
#ifndef TB_EXPR_H
#define TB_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "json_util.h"

struct expr;

/* On error returns NULL, writes a message to err and the 1-based column within src to *err_col. */
struct expr *expr_compile(const char *src, char *err, size_t errlen, int *err_col);
void expr_free(struct expr *e);
const char *expr_source(const struct expr *e);

bool expr_eval(const struct expr *e, const cJSON *payload);

/* The first field path referenced by the expression, in source order (as written,
 * "payload." prefix included), or NULL when it references none. Owned by 'e'. */
const char *expr_first_field(const struct expr *e);





#endif
