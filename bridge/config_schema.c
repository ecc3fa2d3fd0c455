/* config_schema: the table-driven schema engine, ${VAR} substitution and scalar
 * parsers behind config_load(). See config_schema.h for the design. Runs on the
 * thread that loads the config; keeps no global state. */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suggest.h"

/* ---- diagnostics ----------------------------------------------------------------- */

static int add_msg(struct loader *l, int line, int col, const char *fmt, va_list ap)
{
    char body[512];
    vsnprintf(body, sizeof(body), fmt, ap);
    struct cfg_msg *m = realloc(l->msgs, (l->nmsgs + 1) * sizeof(*m));
    if (!m)
        return -1;
    l->msgs = m;
    m = &l->msgs[l->nmsgs];
    size_t n = strlen(l->name) + strlen(body) + 32;
    if (!(m->text = malloc(n)))
        return -1;
    snprintf(m->text, n, "%s:%d:%d: %s", l->name, line, col, body);
    m->line = line;
    m->col = col;
    l->nmsgs++;
    return -1;
}

int cfg_error_at(struct loader *l, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_msg(l, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

int cfg_error(struct loader *l, const yaml_node_t *n, int extra_cols, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_msg(l, cfg_line(n), (int)n->start_mark.column + 1 + extra_cols, fmt, ap);
    va_end(ap);
    return -1;
}

int cfg_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

int cfg_text_col(const yaml_node_t *n)
{
    bool quoted = n->type == YAML_SCALAR_NODE &&
                  (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                   n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    return (int)n->start_mark.column + 1 + quoted;
}

/* ---- ${VAR} substitution ---------------------------------------------------------- */

static size_t node_index(const struct loader *l, const yaml_node_t *n)
{
    return (size_t)(n - l->doc.nodes.start);
}

/* Expands one "${...}" whose '$' is at s[at]; returns the index after '}' or -1. */
static long expand_var(struct loader *l, const yaml_node_t *n, const char *s, size_t at, FILE *out)
{
    int col = cfg_text_col(n) - 1 - ((int)n->start_mark.column) + (int)at;
    const char *close = strchr(s + at, '}');
    if (!close)
        return cfg_error(l, n, col, "unterminated '${' (write ${VAR} or ${VAR:-default})");
    const char *name = s + at + 2;
    const char *dflt = strstr(name, ":-");
    size_t len = (size_t)((dflt && dflt < close ? dflt : close) - name);
    bool ok = len > 0 && (isalpha((unsigned char)name[0]) || name[0] == '_');
    for (size_t i = 0; i < len; i++)
        ok &= isalnum((unsigned char)name[i]) || name[i] == '_';
    if (!ok)
        return cfg_error(l, n, col, "bad environment variable name '%.*s'", (int)len, name);
    char var[128];
    snprintf(var, sizeof(var), "%.*s", (int)len, name);
    const char *v = getenv(var);
    if (dflt && dflt < close && (!v || !*v))
        fwrite(dflt + 2, 1, (size_t)(close - dflt - 2), out);
    else if (v)
        fputs(v, out);
    else
        return cfg_error(l, n, col, "environment variable %s is not set "
                         "(write ${%s:-default} to give a default)", var, var);
    return (long)(close - s) + 1;
}

static char *substitute(struct loader *l, const yaml_node_t *n, const char *s, bool *bad)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return NULL;
    for (size_t i = 0; s[i];) {
        if (s[i] == '$' && s[i + 1] == '{') {
            long next = expand_var(l, n, s, i, out);
            if (next < 0) {
                *bad = true;
                break;
            }
            i = (size_t)next;
        } else {
            fputc(s[i++], out);
        }
    }
    fclose(out);
    return buf;
}

int cfg_substitute_all(struct loader *l)
{
    size_t n = (size_t)(l->doc.nodes.top - l->doc.nodes.start);
    l->val = calloc(n + 1, sizeof(*l->val));
    l->bad = calloc(n + 1, sizeof(*l->bad));
    if (!l->val || !l->bad)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *node = &l->doc.nodes.start[i];
        if (node->type != YAML_SCALAR_NODE)
            continue;
        const char *s = (const char *)node->data.scalar.value;
        l->val[i] = strchr(s, '$') ? substitute(l, node, s, &l->bad[i]) : strdup(s);
        if (!l->val[i])
            return -1;
    }
    return 0;
}

const char *cfg_text(const struct loader *l, const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    size_t i = node_index(l, n);
    return l->bad[i] ? NULL : l->val[i];
}

bool cfg_is_null(const struct loader *l, const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* ---- scalar parsers --------------------------------------------------------------- */

int cfg_parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno)
        return -1;
    *out = v;
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no", "off" };
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            return 0;
        }
    }
    return -1;
}

struct unit {
    const char *suffix;
    double mult;
};

/* Parses "<number><suffix>" with the suffix from 'units' ("" = bare number allowed). */
static int parse_with_units(const char *s, const struct unit *units, size_t n, double *out)
{
    char *end;
    if (!*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(end, units[i].suffix)) {
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    double v;
    if (parse_with_units(s, units, sizeof(units) / sizeof(units[0]), &v) || v > 1e15)
        return -1;
    /* A positive value below 1 ms is not "off": it rounds up, to meet the key's minimum. */
    *out = v > 0 && v < 1 ? 1 : (uint64_t)llround(v);
    return 0;
}

int cfg_parse_size(const char *s, size_t *out)
{
    static const struct unit units[] = {
        { "", 1 }, { "k", 1024 }, { "K", 1024 }, { "KB", 1024 }, { "KiB", 1024 },
        { "m", 1048576 }, { "M", 1048576 }, { "MB", 1048576 }, { "MiB", 1048576 },
        { "g", 1073741824 }, { "G", 1073741824 }, { "GB", 1073741824 }, { "GiB", 1073741824 },
    };
    double v;
    if (parse_with_units(s, units, sizeof(units) / sizeof(units[0]), &v) || v != floor(v) ||
        v > (double)SIZE_MAX / 2)
        return -1;
    *out = (size_t)v;
    return 0;
}

char *cfg_resolve_path(const struct loader *l, const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    size_t n = strlen(l->dir) + strlen(p) + 2;
    char *joined = malloc(n);
    if (!joined)
        return NULL;
    snprintf(joined, n, "%s/%s", l->dir, p);
    char *real = realpath(joined, NULL);   /* normalizes ".." when the path exists */
    if (!real)
        return joined;
    free(joined);
    return real;
}

/* ---- the schema engine ------------------------------------------------------------ */

static const char *expected(enum cfg_type t)
{
    switch (t) {
    case CT_BOOL: return "expected a boolean (true or false)";
    case CT_INT: case CT_COUNT: return "expected an integer";
    case CT_SIZE: return "expected a size in bytes (e.g. 65536, 64k, 1MiB)";
    case CT_DUR: case CT_DUR_INT: return "expected a duration (e.g. 500ms, 5s, 2m, 1h)";
    case CT_STRLIST: return "expected a sequence of strings";
    case CT_SECTION: return "expected a mapping";
    default: return "expected a string";
    }
}

static void *at(void *base, size_t off) { return (char *)base + off; }
static const void *cat(const void *base, size_t off) { return (const char *)base + off; }

/* Range failures are reported here (-2); parse failures (-1) by the caller. */
static int check_range(struct loader *l, const yaml_node_t *n, const struct cfg_field *f,
                       long long v, const char *unit)
{
    if (f->min_on && v != 0 && (v < f->min_on || v > f->max)) {
        if (n)
            cfg_error(l, n, 0, "%s must be 0 (off) or between %lld and %lld%s (got '%s')", f->name,
                      f->min_on, f->max, unit, cfg_text(l, n));
        return -2;
    }
    if (f->min_on)
        return 0;
    if ((f->min || f->max) && (v < f->min || v > f->max)) {
        if (n)
            cfg_error(l, n, 0, "%s must be between %lld and %lld%s (got %lld%s)", f->name,
                      f->min, f->max, unit, v, unit);
        return -2;
    }
    return 0;
}

static int set_enum(struct loader *l, const yaml_node_t *n, const struct cfg_field *f,
                    const char *s, void *dst)
{
    size_t k = 0;
    for (; f->choices[k]; k++) {
        if (!strcmp(s, f->choices[k])) {
            *(int *)dst = f->enum_values ? f->enum_values[k] : (int)k;
            return 0;
        }
    }
    if (!n)
        return -2;
    char list[160] = "";
    for (size_t i = 0; f->choices[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", f->choices[i]);
    const char *hint = suggest_closest(s, (const char *const *)f->choices, k);
    cfg_error(l, n, 0, "%s must be one of %s%s%s%s", f->name, list,
              hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    return -2;
}

static int set_string(struct loader *l, const yaml_node_t *n, const struct cfg_field *f,
                      const char *s, void *dst)
{
    char **out = dst;
    free(*out);
    *out = NULL;
    if (!*s) {
        if (f->type == CT_STR && n)
            cfg_error(l, n, 0, "%s must not be empty", f->name);
        return f->type == CT_STR ? -2 : 0;
    }
    *out = f->type == CT_PATH ? cfg_resolve_path(l, s) : strdup(s);
    return *out ? 0 : -2;
}

static int set_number(struct loader *l, const yaml_node_t *n, const struct cfg_field *f,
                      const char *s, void *dst)
{
    long long i = 0;
    uint64_t ms = 0;
    size_t sz = 0;
    int rc;
    switch (f->type) {
    case CT_INT: case CT_COUNT:
        if ((rc = cfg_parse_int(s, &i)) || (rc = check_range(l, n, f, i, "")))
            return rc;
        if (f->type == CT_COUNT && i < 0)
            return -1;
        if (f->type == CT_INT)
            *(int *)dst = (int)i;
        else
            *(size_t *)dst = (size_t)i;
        return 0;
    case CT_SIZE:
        if ((rc = cfg_parse_size(s, &sz)) || (rc = check_range(l, n, f, (long long)sz, " bytes")))
            return rc;
        *(size_t *)dst = sz;
        return 0;
    default:
        if ((rc = cfg_parse_duration_ms(s, &ms)) || (rc = check_range(l, n, f, (long long)ms, " ms")))
            return rc;
        if (f->type == CT_DUR)
            *(uint64_t *)dst = ms;
        else
            *(int *)dst = (int)ms;
        return 0;
    }
}

/* Types 's' into the field; n is NULL when s is the default (then nothing is reported).
 * Returns 0, -1 (s does not parse as the type: caller reports) or -2 (reported). */
static int set_scalar(struct loader *l, const yaml_node_t *n, const struct cfg_field *f,
                      const char *s, void *base)
{
    void *dst = at(base, f->off);
    switch (f->type) {
    case CT_STR: case CT_OPTSTR: case CT_PATH: return set_string(l, n, f, s, dst);
    case CT_ENUM: return set_enum(l, n, f, s, dst);
    case CT_CUSTOM: return f->scalar(l, n, s, base) ? -2 : 0;
    case CT_BOOL: return cfg_parse_bool(s, dst);
    default: return set_number(l, n, f, s, dst);
    }
}

static int set_strlist(struct loader *l, const yaml_node_t *n, const struct cfg_field *f, void *base)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_error(l, n, 0, "%s: %s", f->name, expected(CT_STRLIST));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **list = calloc(cnt + 1, sizeof(*list));
    if (!list)
        return -1;
    *(char ***)at(base, f->off) = list;
    size_t *np = at(base, f->off_n);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *item = yaml_document_get_node(&l->doc, n->data.sequence.items.start[i]);
        const char *s = cfg_text(l, item);
        if (item->type != YAML_SCALAR_NODE)
            return cfg_error(l, item, 0, "%s: %s", f->name, expected(CT_STRLIST));
        if (!s || !(list[(*np)++] = strdup(s)))
            return -1;
        if (f->scalar && f->scalar(l, item, s, base))
            return -2;      /* the item's validator reported it */
    }
    return 0;
}

/* Applies one present value. */
static int set_value(struct loader *l, const yaml_node_t *n, const struct cfg_field *f, void *base)
{
    if (f->type == CT_NODE) {
        *(const yaml_node_t **)at(base, f->off) = n;
        return 0;
    }
    if (f->type == CT_SECTION)
        return f->section(l, n, base);     /* checks its own node type */
    if (f->type == CT_STRLIST)
        return set_strlist(l, n, f, base);
    if (n->type != YAML_SCALAR_NODE)
        return cfg_error(l, n, 0, "%s: %s", f->name, expected(f->type));
    const char *s = cfg_text(l, n);
    if (!s)
        return -1;      /* substitution already failed and was reported */
    int rc = set_scalar(l, n, f, s, base);
    if (rc == -1)
        cfg_error(l, n, 0, "%s: %s", f->name, expected(f->type));
    return rc ? -1 : 0;
}

static int set_default(struct loader *l, const yaml_node_t *map, const struct cfg_field *f,
                       void *base, const struct cfg_schema *s)
{
    if (f->required)
        return map ? cfg_error(l, map, 0, "%s needs '%s'", s->what, f->name) : -1;
    if (f->type == CT_SECTION)
        return f->section(l, NULL, base);
    if (!f->def)
        return 0;
    return set_scalar(l, NULL, f, f->def, base) ? -1 : 0;
}

static const struct cfg_field *find_field(const struct cfg_schema *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, key))
            return &s->fields[i];
    }
    return NULL;
}

static int unknown_key(struct loader *l, const yaml_node_t *k, const char *key,
                       const struct cfg_schema *s)
{
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < s->n && n < 64; i++)
        names[n++] = s->fields[i].name;
    const char *hint = suggest_closest(key, names, n);
    if (hint)
        return cfg_error(l, k, 0, "unknown key '%s' in %s; did you mean '%s'?", key, s->what, hint);
    return cfg_error(l, k, 0, "unknown key '%s' in %s", key, s->what);
}

int cfg_apply(struct loader *l, const yaml_node_t *map, const struct cfg_schema *s, void *base)
{
    bool seen[64] = { false };
    int rc = 0;
    if (map && !cfg_is_null(l, map) && map->type != YAML_MAPPING_NODE)
        return cfg_error(l, map, 0, "%s: expected a mapping", s->what);
    if (map && map->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
            const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
            const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
            const char *key = cfg_text(l, k);
            const struct cfg_field *f = key ? find_field(s, key) : NULL;
            if (!key || !f) {
                rc = k->type != YAML_SCALAR_NODE ? cfg_error(l, k, 0, "expected a key name")
                     : key ? unknown_key(l, k, key, s) : -1;
                continue;
            }
            if (seen[f - s->fields]) {
                rc = cfg_error(l, k, 0, "duplicate key '%s' in %s", key, s->what);
                continue;
            }
            seen[f - s->fields] = true;
            if (cfg_is_null(l, v))
                seen[f - s->fields] = false;   /* "key:" with no value = the default */
            else if (set_value(l, v, f, base))
                rc = -1;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!seen[i] && set_default(l, map, &s->fields[i], base, s))
            rc = -1;
    }
    return rc;
}

/* ---- settings that need a restart -------------------------------------------------- */

bool cfg_keep_str(char **next, const char *cur)
{
    if (*next == cur || (*next && cur && !strcmp(*next, cur)))
        return false;
    char *copy = NULL;
    if (cur && !(copy = strdup(cur)))
        return true;            /* out of memory: next keeps its own value */
    free(*next);
    *next = copy;
    return true;
}

static bool strlist_differs(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return true;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]))
            return true;
    }
    return false;
}

/* Keeps cur's string list (char ** at off, count at off_n) in next when they differ. */
static bool keep_strlist(const struct cfg_field *f, void *next, const void *cur)
{
    char ***nl = at(next, f->off), **cl = *(char **const *)cat(cur, f->off);
    size_t *nn = at(next, f->off_n), cn = *(const size_t *)cat(cur, f->off_n);
    if (!strlist_differs(*nl, *nn, cl, cn))
        return false;
    char **copy = calloc(cn + 1, sizeof(*copy));
    size_t i = 0;
    while (copy && i < cn && (copy[i] = strdup(cl[i])))
        i++;
    if (!copy || i < cn) {      /* out of memory: next keeps its own list */
        while (copy && i)
            free(copy[--i]);
        free(copy);
        return true;
    }
    for (size_t k = 0; k < *nn; k++)
        free((*nl)[k]);
    free(*nl);
    *nl = copy;
    *nn = cn;
    return true;
}

/* Keeps a plain value (bool, int, size_t, uint64_t: no padding bits) of 'size' bytes. */
static bool keep_bytes(void *next, const void *cur, size_t size)
{
    if (!memcmp(next, cur, size))
        return false;
    memcpy(next, cur, size);
    return true;
}

/* Keeps cur's value of one field in next when they differ; true when they differed. */
static bool keep_field(const struct cfg_field *f, void *next, const void *cur)
{
    void *dst = at(next, f->off);
    const void *src = cat(cur, f->off);
    switch (f->type) {
    case CT_STR: case CT_OPTSTR: case CT_PATH: return cfg_keep_str(dst, *(char *const *)src);
    case CT_BOOL: return keep_bytes(dst, src, sizeof(bool));
    case CT_INT: case CT_ENUM: case CT_DUR_INT: return keep_bytes(dst, src, sizeof(int));
    case CT_COUNT: case CT_SIZE: return keep_bytes(dst, src, sizeof(size_t));
    case CT_DUR: return keep_bytes(dst, src, sizeof(uint64_t));
    case CT_STRLIST: return keep_strlist(f, next, cur);
    case CT_CUSTOM: return f->keep && f->keep(next, cur);
    case CT_NODE: case CT_SECTION: break;   /* no value of a loaded snapshot */
    }
    return false;
}

size_t cfg_keep_restart(const struct cfg_schema *s, void *next, const void *cur,
                        const char **names, size_t n, size_t max)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct cfg_field *f = &s->fields[i];
        if (f->type == CT_SECTION && f->sub)
            n = cfg_keep_restart(f->sub, at(next, f->off), cat(cur, f->off), names, n, max);
        else if (f->restart && keep_field(f, next, cur) && n < max)
            names[n++] = f->restart;
    }
    return n;
}
