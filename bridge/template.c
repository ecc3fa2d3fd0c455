/* template: string templates for room names and messages. Pure; any thread.
 *
 * Why: room names, alert keys and messages are built per message from topic
 * captures and payload fields; resolving names at compile time keeps the hot
 * path to a few memcpy's and one json_path_get per field.
 *
 * How: compile turns the source into an array of segments (literal text, capture
 * index, payload field path, whole topic), each with an optional default. Every
 * name is resolved against the pattern once, so a template that names a capture
 * its pattern lacks is a load-time error, never a run-time surprise. */
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

enum seg_kind { SEG_TEXT, SEG_CAPTURE, SEG_FIELD, SEG_TOPIC };

struct seg {
    enum seg_kind kind;
    char *text;         /* SEG_TEXT: literal; SEG_FIELD: dotted path */
    size_t len;
    int cap;            /* SEG_CAPTURE */
    char *def;          /* default after the last '|', or NULL */
    bool or_next;       /* a fallback chain: when this has no value, the next segment stands in */
};

struct tmpl {
    char *src;
    struct seg *segs;
    size_t nsegs;
    bool uses_payload;
    bool plain_fields;  /* TMPL_PLAIN_FIELDS */
};

struct builder {
    struct tmpl *t;
    const struct topic_pattern *pattern;
    unsigned flags;
    char *err;
    size_t errlen;
    int *err_col;
    char *lit;          /* pending literal text being accumulated */
    size_t litlen;
};

static int fail(struct builder *b, int col, const char *fmt, const char *arg, size_t arglen)
{
    if (b->err && b->errlen)
        snprintf(b->err, b->errlen, fmt, (int)arglen, arg);
    if (b->err_col)
        *b->err_col = col;
    return -1;
}

static struct seg *push_seg(struct tmpl *t, enum seg_kind kind)
{
    struct seg *s = &t->segs[t->nsegs++];
    s->kind = kind;
    return s;
}

static int flush_literal(struct builder *b)
{
    if (!b->litlen)
        return 0;
    struct seg *s = push_seg(b->t, SEG_TEXT);
    if (!(s->text = strndup(b->lit, b->litlen)))
        return fail(b, 1, "%.*s", "out of memory", 13);
    s->len = b->litlen;
    b->litlen = 0;
    return 0;
}

/* JSON keys may hold digits and '-', so names are looser than C identifiers. */
static bool ident_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* Checks "name(.name)*"; returns the 0-based offset of the first bad char, or -1. */
static int bad_name_offset(const char *name, size_t len)
{
    bool start = true;      /* at the start of a dotted component */
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '.' && !start) {
            start = true;
            continue;
        }
        if (!ident_char(name[i]))
            return (int)i;
        start = false;
    }
    return start ? (int)len - 1 : -1;
}

/* Resolves a placeholder name (at 0-based offset 'off' in src) into a segment. */
static int resolve(struct builder *b, const char *name, size_t len, size_t off, struct seg **out)
{
    int cap = b->pattern ? topic_pattern_capture_index(b->pattern, name, len) : -1;
    if (cap >= 0) {
        *out = push_seg(b->t, SEG_CAPTURE);
        (*out)->cap = cap;
        return 0;
    }
    if (len == 5 && memcmp(name, "topic", 5) == 0) {
        *out = push_seg(b->t, SEG_TOPIC);
        return 0;
    }
    bool payload = len > 8 && memcmp(name, "payload.", 8) == 0;
    if (!payload && !(b->flags & TMPL_BARE_FIELDS)) {
        if (b->err && b->errlen)
            snprintf(b->err, b->errlen, "template names {%.*s} but the pattern has no capture %.*s",
                     (int)len, name, (int)len, name);
        if (b->err_col)
            *b->err_col = (int)off + 1;
        return -1;
    }
    *out = push_seg(b->t, SEG_FIELD);
    if (!((*out)->text = strndup(name, len)))
        return fail(b, 1, "%.*s", "out of memory", 13);
    (*out)->len = len;
    b->t->uses_payload = true;
    return 0;
}

/* One name of a placeholder (src[at..at+len)) into a segment. */
static int name_seg(struct builder *b, size_t at, size_t len, struct seg **out)
{
    const char *name = b->t->src + at;
    if (len == 0)
        return fail(b, (int)at + 1, "empty placeholder name%.*s", "", 0);
    int bad = bad_name_offset(name, len);
    if (bad >= 0)
        return fail(b, (int)at + 1 + bad, "bad character in placeholder name '%.*s'", name, len);
    return resolve(b, name, len, at, out);
}

/* Parses the placeholder whose '{' is at src[open]; returns the index after '}'.
 * {a|b|...|d}: a, b, ... are names tried in turn (a fallback chain); the last part d is
 * one more name when it is a payload field ("payload.x"), else the literal default. */
static long placeholder(struct builder *b, size_t open)
{
    const char *src = b->t->src;
    const char *close = strchr(src + open, '}');
    if (!close)
        return fail(b, (int)open + 1, "unclosed '{'%.*s", "", 0);
    size_t end = (size_t)(close - src);
    if (flush_literal(b))
        return -1;
    struct seg *s = NULL;
    size_t at = open + 1;
    for (;;) {
        const char *bar = memchr(src + at, '|', end - at);
        size_t part_end = bar ? (size_t)(bar - src) : end;
        if (s)
            s->or_next = true;
        if (name_seg(b, at, part_end - at, &s))
            return -1;
        if (!bar)
            break;
        at = part_end + 1;
        const char *next_bar = memchr(src + at, '|', end - at);
        bool last = !next_bar;
        if (last && !(end - at > 8 && !memcmp(src + at, "payload.", 8))) {
            if (!(s->def = strndup(src + at, end - at)))
                return fail(b, 1, "%.*s", "out of memory", 13);
            break;
        }
    }
    return (long)end + 1;
}

static int parse(struct builder *b)
{
    const char *src = b->t->src;
    size_t i = 0;
    while (src[i]) {
        if ((src[i] == '{' && src[i + 1] == '{') || (src[i] == '}' && src[i + 1] == '}')) {
            b->lit[b->litlen++] = src[i];
            i += 2;
        } else if (src[i] == '}') {
            return fail(b, (int)i + 1, "unmatched '}' (write '}}' for a literal brace)%.*s", "", 0);
        } else if (src[i] == '{') {
            long next = placeholder(b, i);
            if (next < 0)
                return -1;
            i = (size_t)next;
        } else {
            b->lit[b->litlen++] = src[i++];
        }
    }
    return flush_literal(b);
}

struct tmpl *tmpl_compile(const char *src, const struct topic_pattern *pattern, unsigned flags,
                          char *err, size_t errlen, int *err_col)
{
    struct builder b = { .pattern = pattern, .flags = flags, .err = err, .errlen = errlen,
                         .err_col = err_col };
    size_t n = strlen(src);
    b.t = calloc(1, sizeof(*b.t));
    b.lit = malloc(n + 1);
    if (!b.t || !b.lit || !(b.t->src = strdup(src)) ||
        !(b.t->segs = calloc(n + 1, sizeof(*b.t->segs)))) {
        fail(&b, 1, "%.*s", "out of memory", 13);
        goto fail;
    }
    b.t->plain_fields = flags & TMPL_PLAIN_FIELDS;
    if (parse(&b))
        goto fail;
    free(b.lit);
    return b.t;
fail:
    free(b.lit);
    tmpl_free(b.t);
    return NULL;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nsegs; i++) {
        free(t->segs[i].text);
        free(t->segs[i].def);
    }
    free(t->segs);
    free(t->src);
    free(t);
}

const char *tmpl_source(const struct tmpl *t) { return t->src; }
bool tmpl_uses_payload(const struct tmpl *t) { return t->uses_payload; }

bool tmpl_is_constant(const struct tmpl *t)
{
    return t->nsegs == 0 || (t->nsegs == 1 && t->segs[0].kind == SEG_TEXT);
}

struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap) {
        o->overflow = true;
        n = o->cap > o->len + 1 ? o->cap - o->len - 1 : 0;
        /* never cut a UTF-8 sequence in two: the result may end up in a text frame */
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Appends a JSON value's text; false when it has none (missing, null, object, array). */
static bool put_json(struct out *o, const cJSON *v)
{
    char num[64];
    if (cJSON_IsString(v))
        put(o, v->valuestring, strlen(v->valuestring));
    else if (cJSON_IsNumber(v))
        put(o, num, (size_t)json_format_number(v->valuedouble, num, sizeof(num)));
    else if (cJSON_IsBool(v))
        put(o, cJSON_IsTrue(v) ? "true" : "false", cJSON_IsTrue(v) ? 4 : 5);
    else
        return false;
    return true;
}

/* Renders one non-literal segment; false when it has no value. */
/* A payload value that may stand in a room name: 1..64 of [A-Za-z0-9_.-]. Anything else
 * (":", "/", spaces, ...) could name another room ("vehicle:42", "alerts"). */
static bool plain_name(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        char c = v[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.') || n >= 64)
            return false;
    }
    return n > 0;
}

static bool put_value(struct out *o, const struct seg *s, const struct tmpl_ctx *ctx, bool plain)
{
    const struct topic_match *m = ctx ? ctx->match : NULL;
    switch (s->kind) {
    case SEG_CAPTURE:
        if (!m || (size_t)s->cap >= m->n || !m->cap[s->cap].ptr)
            return false;
        put(o, m->cap[s->cap].ptr, m->cap[s->cap].len);
        return true;
    case SEG_TOPIC:
        if (!ctx || !ctx->topic)
            return false;
        put(o, ctx->topic, strlen(ctx->topic));
        return true;
    case SEG_FIELD:
        if (!ctx || !ctx->payload)
            return false;
        if (plain) {
            const cJSON *v = json_path_get(ctx->payload, s->text, s->len);
            if (!cJSON_IsNumber(v) && !(cJSON_IsString(v) && plain_name(v->valuestring)))
                return false;
        }
        return put_json(o, json_path_get(ctx->payload, s->text, s->len));
    default:
        put(o, s->text, s->len);
        return true;
    }
}

int tmpl_render(const struct tmpl *t, const struct tmpl_ctx *ctx, char *out, size_t outlen)
{
    char dummy;
    struct out o = { .buf = outlen ? out : &dummy, .cap = outlen ? outlen : 1 };
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct seg *s = &t->segs[i];
        bool ok = put_value(&o, s, ctx, t->plain_fields);
        while (!ok && s->or_next) {
            s = &t->segs[++i];
            ok = put_value(&o, s, ctx, t->plain_fields);
        }
        while (s->or_next)          /* a value was found: skip the rest of the chain */
            s = &t->segs[++i];
        if (!ok) {
            if (!s->def) {
                o.buf[0] = '\0';
                return -1;
            }
            put(&o, s->def, strlen(s->def));
        }
    }
    o.buf[o.len] = '\0';
    return o.overflow || outlen == 0 ? -2 : (int)o.len;
}
