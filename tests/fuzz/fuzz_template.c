/* fuzz_template: topic patterns, room templates and subscription globs (issue 14).
 *
 * Why: topic patterns and room templates come from the config file; the topics they are
 * matched against and the payloads rendered into room names come from any publisher on
 * the broker; subscription patterns and room names come from WebSocket clients. None of
 * them may crash, leak, read out of bounds or take exponential time.
 * Input: up to four lines, then the rest:
 *   line 1  topic pattern        (topic_pattern_compile)
 *   line 2  room template        (tmpl_compile against that pattern; flags from its length)
 *   line 3  concrete topic       (topic_pattern_match, topic_name_valid)
 *   line 4  glob                 (subscribe_glob_match against line 3 and line 2)
 *   rest    payload JSON         (cJSON; tmpl_render into a small and a large buffer)
 * Single thread; no sockets. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "subscribe.h"
#include "template.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*p, end) as a fresh NUL-terminated string; advances *p. */
static char *next_line(const char **p, const char *end)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    char *out = malloc(n + 1);
    if (!out)
        abort();
    memcpy(out, s, n);
    out[n] = '\0';
    *p = nl ? nl + 1 : end;
    return out;
}

static void render_all(const struct tmpl *t, const struct topic_pattern *pat, const char *topic,
                       const cJSON *payload)
{
    struct topic_match m;
    bool matched = pat && topic_pattern_match(pat, topic, &m);
    struct tmpl_ctx ctx = {.topic = topic, .match = matched ? &m : NULL, .payload = payload};
    char small[8], big[512];
    (void)tmpl_render(t, &ctx, small, sizeof small);
    (void)tmpl_render(t, &ctx, big, sizeof big);
    (void)tmpl_is_constant(t);
    (void)tmpl_uses_payload(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *pat_src = next_line(&p, end), *tmpl_src = next_line(&p, end);
    char *topic = next_line(&p, end), *glob = next_line(&p, end);
    char err[256];
    int col = 0;
    struct topic_pattern *pat = topic_pattern_compile(pat_src, err, sizeof err, &col);
    if (pat) {
        (void)topic_pattern_filter(pat);
        (void)topic_pattern_match(pat, topic, NULL);
    }
    (void)topic_name_valid(topic);
    (void)subscribe_glob_match(glob, topic);
    (void)subscribe_glob_match(glob, tmpl_src);
    cJSON *payload = cJSON_ParseWithLength(p, (size_t)(end - p));
    unsigned flags = (unsigned)strlen(tmpl_src) & (TMPL_BARE_FIELDS | TMPL_PLAIN_FIELDS);
    struct tmpl *t = tmpl_compile(tmpl_src, pat, flags, err, sizeof err, &col);
    if (t) {
        render_all(t, pat, topic, payload);
        tmpl_free(t);
    }
    cJSON_Delete(payload);
    topic_pattern_free(pat);
    free(pat_src);
    free(tmpl_src);
    free(topic);
    free(glob);
    return 0;
}
