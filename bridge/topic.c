/* topic: compiled topic / path patterns and matching. Pure; any thread.
 *
 * Why: routes, alerts and WebSocket endpoints all name things with the same
 * "level/level/{capture}" syntax, so one small matcher serves all three.
 *
 * How: compile splits the source on '/' once into an array of levels, each a
 * literal slice of our private copy of the source, a capture index, '+' or a
 * trailing '#'. Matching walks the subject one level at a time without copying;
 * captures are slices of the subject. The MQTT filter string is built once at
 * compile time (captures become '+'). */
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum level_kind { LV_LITERAL, LV_CAPTURE, LV_PLUS, LV_TAIL };

struct level {
    enum level_kind kind;
    const char *text;   /* LV_LITERAL: slice of pattern->src */
    size_t len;
    int cap;            /* LV_CAPTURE: capture index */
};

struct topic_pattern {
    char *src;
    char *filter;
    struct level *levels;
    size_t nlevels;
    char *capname[TOPIC_MAX_CAPTURES];
    size_t ncap;
    bool literal;
};

static int fail(char *err, size_t errlen, int *err_col, int col, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    if (err_col)
        *err_col = col;
    return -1;
}

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Compiles one capture level "{name}" starting at src[pos]. */
static int compile_capture(struct topic_pattern *p, struct level *lv, size_t pos, size_t len,
                           char *err, size_t errlen, int *err_col)
{
    const char *s = p->src + pos;
    if (len < 3 || s[len - 1] != '}')
        return fail(err, errlen, err_col, (int)pos + 1,
                    "a capture must be a whole level, like {name}");
    for (size_t i = 1; i + 1 < len; i++) {
        if (!(i == 1 ? name_start(s[i]) : name_char(s[i])))
            return fail(err, errlen, err_col, (int)(pos + i) + 1,
                        "bad capture name (use letters, digits and '_', not starting with a digit)");
    }
    for (size_t i = 0; i < p->ncap; i++) {
        if (strlen(p->capname[i]) == len - 2 && memcmp(p->capname[i], s + 1, len - 2) == 0)
            return fail(err, errlen, err_col, (int)pos + 2, "duplicate capture name");
    }
    if (p->ncap == TOPIC_MAX_CAPTURES)
        return fail(err, errlen, err_col, (int)pos + 1, "too many captures (at most 8)");
    p->capname[p->ncap] = strndup(s + 1, len - 2);
    if (!p->capname[p->ncap])
        return fail(err, errlen, err_col, (int)pos + 1, "out of memory");
    lv->kind = LV_CAPTURE;
    lv->cap = (int)p->ncap++;
    return 0;
}

/* Classifies the level src[pos, pos+len); 'last' says whether it ends the pattern. */
static int compile_level(struct topic_pattern *p, struct level *lv, size_t pos, size_t len,
                         bool last, char *err, size_t errlen, int *err_col)
{
    const char *s = p->src + pos;
    lv->text = s;
    lv->len = len;
    if (len == 1 && s[0] == '+') {
        lv->kind = LV_PLUS;
        return 0;
    }
    if (len == 1 && s[0] == '#') {
        if (!last)
            return fail(err, errlen, err_col, (int)pos + 1, "'#' must be the last level");
        lv->kind = LV_TAIL;
        return 0;
    }
    if (len > 0 && s[0] == '{')
        return compile_capture(p, lv, pos, len, err, errlen, err_col);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '{' || s[i] == '}')
            return fail(err, errlen, err_col, (int)(pos + i) + 1,
                        "a capture must be a whole level, like {name}");
        if (s[i] == '+' || s[i] == '#')
            return fail(err, errlen, err_col, (int)(pos + i) + 1,
                        "'+' and '#' must be a whole level");
    }
    lv->kind = LV_LITERAL;
    return 0;
}

static char *build_filter(const struct topic_pattern *p)
{
    size_t cap = strlen(p->src) + 1;
    char *f = malloc(cap);
    if (!f)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nlevels; i++) {
        const struct level *lv = &p->levels[i];
        if (i)
            f[n++] = '/';
        if (lv->kind == LV_LITERAL) {
            memcpy(f + n, lv->text, lv->len);
            n += lv->len;
        } else {
            f[n++] = lv->kind == LV_TAIL ? '#' : '+';
        }
    }
    f[n] = '\0';
    return f;
}

struct topic_pattern *topic_pattern_compile(const char *src, char *err, size_t errlen, int *err_col)
{
    if (!src || !*src) {
        fail(err, errlen, err_col, 1, "empty pattern");
        return NULL;
    }
    struct topic_pattern *p = calloc(1, sizeof(*p));
    if (!p || !(p->src = strdup(src)))
        goto oom;
    size_t n = 1;
    for (const char *c = src; *c; c++)
        n += *c == '/';
    if (!(p->levels = calloc(n, sizeof(*p->levels))))
        goto oom;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *slash = strchr(p->src + pos, '/');
        size_t len = slash ? (size_t)(slash - (p->src + pos)) : strlen(p->src + pos);
        if (compile_level(p, &p->levels[i], pos, len, i + 1 == n, err, errlen, err_col))
            goto fail;
        p->nlevels++;
        pos += len + 1;
    }
    p->literal = true;
    for (size_t i = 0; i < p->nlevels; i++)
        p->literal &= p->levels[i].kind == LV_LITERAL;
    if (!(p->filter = build_filter(p)))
        goto oom;
    return p;
oom:
    fail(err, errlen, err_col, 1, "out of memory");
fail:
    topic_pattern_free(p);
    return NULL;
}

void topic_pattern_free(struct topic_pattern *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ncap; i++)
        free(p->capname[i]);
    free(p->levels);
    free(p->filter);
    free(p->src);
    free(p);
}

const char *topic_pattern_source(const struct topic_pattern *p) { return p->src; }
const char *topic_pattern_filter(const struct topic_pattern *p) { return p->filter; }
size_t topic_pattern_ncaptures(const struct topic_pattern *p) { return p->ncap; }
bool topic_pattern_is_literal(const struct topic_pattern *p) { return p->literal; }

const char *topic_pattern_capture_name(const struct topic_pattern *p, size_t i)
{
    return i < p->ncap ? p->capname[i] : NULL;
}

int topic_pattern_capture_index(const struct topic_pattern *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->ncap; i++) {
        if (strlen(p->capname[i]) == len && memcmp(p->capname[i], name, len) == 0)
            return (int)i;
    }
    return -1;
}

bool topic_pattern_match(const struct topic_pattern *p, const char *subject, struct topic_match *m)
{
    struct topic_match local;
    if (!m)
        m = &local;
    memset(m, 0, sizeof(*m));
    m->n = p->ncap;
    /* MQTT: wildcards in the first level never match topics starting with '$'. */
    if (subject[0] == '$' && p->nlevels && p->levels[0].kind != LV_LITERAL)
        return false;
    const char *s = subject;
    bool done = false;      /* no level left; distinct from an empty last level */
    for (size_t i = 0; i < p->nlevels; i++) {
        const struct level *lv = &p->levels[i];
        if (lv->kind == LV_TAIL) {
            m->tail.ptr = done ? s + strlen(s) : s;
            m->tail.len = done ? 0 : strlen(s);
            return true;
        }
        if (done)
            return false;
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (lv->kind == LV_LITERAL && (len != lv->len || memcmp(s, lv->text, len) != 0))
            return false;
        if (lv->kind == LV_CAPTURE)
            m->cap[lv->cap] = (struct topic_slice){ s, len };
        s += len;
        if (slash)
            s++;
        else
            done = true;
    }
    return done;
}

bool topic_name_valid(const char *topic)
{
    return topic && *topic && !strpbrk(topic, "+#");
}
