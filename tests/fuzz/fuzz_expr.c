/* fuzz_expr: the condition language of route 'when' filters and alert rules (issue 14).
 *
 * Why: expressions come from the config file (compiled at load and on every reload) and
 * are evaluated against every payload any publisher sends; the parser must reject bad
 * text with a message and a column, never crash, leak or recurse without bound, and
 * evaluation must be total on any JSON.
 * Input: line 1 is the expression (expr_compile), the rest a payload (cJSON, may fail to
 * parse: then NULL is evaluated too). Single thread; no sockets. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *nl = memchr(s, '\n', size);
    size_t n = nl ? (size_t)(nl - s) : size;
    char *src = malloc(n + 1);
    if (!src)
        abort();
    memcpy(src, s, n);
    src[n] = '\0';
    char err[256];
    int col = 0;
    struct expr *e = expr_compile(src, err, sizeof err, &col);
    if (e) {
        const char *rest = nl ? nl + 1 : s + size;
        cJSON *payload = cJSON_ParseWithLength(rest, (size_t)(s + size - rest));
        (void)expr_eval(e, payload);
        (void)expr_eval(e, NULL);
        (void)expr_first_field(e);
        (void)expr_source(e);
        cJSON_Delete(payload);
        expr_free(e);
    }
    free(src);
    return 0;
}
