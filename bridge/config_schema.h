/* config_schema: private to config*.c. The schema engine the loader is built on.
 *
 * A section of the YAML file is described by a table of cfg_field rows (name, type,
 * offset into a C struct, range, default written as YAML text, choices). cfg_apply()
 * walks one mapping against such a table: unknown keys get a "did you mean", each value
 * is typed and range-checked, absent keys get their default (parsed by the same code, so
 * a default can never disagree with what a user could write). Fields that need more
 * than a scalar parse (patterns, templates, expressions) are stored as CT_NODE and
 * compiled by config.c once their whole mapping is known.
 *
 * Every diagnostic goes through cfg_error() with a node's start mark, so messages
 * carry file:line:column. Runs on whichever thread loads the config. */
#ifndef TB_CONFIG_SCHEMA_H
#define TB_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "config.h"

struct cfg_msg {
    int line, col;
    char *text;               /* "file:line:col: message" */
};

struct loader {
    const char *name;         /* file name used in messages */
    char *dir;                /* directory for relative paths (owned) */
    yaml_document_t doc;
    bool have_doc;
    char **val;               /* per node index: substituted scalar text, NULL if not scalar */
    bool *bad;                /* per node index: substitution failed, error already reported */
    struct cfg_msg *msgs;     /* collected errors, sorted by position at the end */
    size_t nmsgs;
    struct tb_config *cfg;
    struct topic_pattern *pub_pattern;   /* synthetic "{key}/{name}" for publish_topic */
};

enum cfg_type {
    CT_STR,        /* char *, must not be empty */
    CT_OPTSTR,     /* char *, empty = NULL */
    CT_PATH,       /* char *, empty = NULL, relative to the config file's directory */
    CT_BOOL,       /* bool */
    CT_INT,        /* int */
    CT_COUNT,      /* size_t, plain integer */
    CT_SIZE,       /* size_t, bytes with optional k/KiB/m/MiB/g/GiB suffix */
    CT_DUR,        /* uint64_t milliseconds: 500ms, 5s, 2m, 1h; bare number = seconds */
    CT_DUR_INT,    /* int milliseconds, same syntax */
    CT_STRLIST,    /* char ** at off, size_t count at off_n */
    CT_ENUM,       /* int: enum_values[i] (or i) for choices[i] */
    CT_NODE,       /* const yaml_node_t * stored for later compilation */
    CT_CUSTOM,     /* scalar handed to 'scalar' (also for the default, node NULL) */
    CT_SECTION,    /* node (NULL when absent) handed to 'section' */
};

struct cfg_field {
    const char *name;
    enum cfg_type type;
    size_t off;
    long long min, max;       /* CT_INT/COUNT/SIZE/DUR*: inclusive range; both 0 = unchecked */
    long long min_on;         /* CT_DUR*: 0 (off) or at least this (then 'min' is unused) */
    const char *def;          /* default as YAML text; NULL = zero / NULL */
    bool required;
    const char *const *choices;     /* CT_ENUM, NULL-terminated */
    const int *enum_values;         /* CT_ENUM, NULL = index */
    size_t off_n;                   /* CT_STRLIST count */
    /* CT_CUSTOM: parses the value; CT_STRLIST: validates each item (optional). Nonzero
     * after reporting an error. */
    int (*scalar)(struct loader *l, const yaml_node_t *n, const char *text, void *base);
    int (*section)(struct loader *l, const yaml_node_t *n, void *base);
    /* Needs a restart to take effect: the dotted key reported when a reload changes it
     * ("mqtt.host"), and the flag itself; NULL = a reload applies it. See cfg_keep_restart(). */
    const char *restart;
    /* CT_CUSTOM with 'restart': keeps cur's value in next (both section bases) when they
     * differ; returns true when they differed. */
    bool (*keep)(void *next, const void *cur);
    /* CT_SECTION whose mapping is a struct embedded at 'off' and applied with this schema
     * (mqtt, server, ...): lets cfg_keep_restart() recurse. NULL for lists of items. */
    const struct cfg_schema *sub;
};

struct cfg_schema {
    const char *what;         /* "mqtt", "route", ... for messages */
    const struct cfg_field *fields;
    size_t n;
};

/* Walks mapping 'map' (NULL or null scalar = empty) into 'base'. Returns 0 or -1. */
int cfg_apply(struct loader *l, const yaml_node_t *map, const struct cfg_schema *s, void *base);

/* Records "name:line:col: message" at n's start (+ extra columns); always returns -1. */
int cfg_error(struct loader *l, const yaml_node_t *n, int extra_cols, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_error_at(struct loader *l, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* For every restart field of 's' (recursing into CT_SECTION fields with 'sub') whose value
 * differs between next and cur (both bases of 's'; compared by type): copies cur's value
 * into next (strings duplicated, next's old ones freed) and, in table order, stores the
 * field's 'restart' key at names[n] while n < max. Returns the new n. */
size_t cfg_keep_restart(const struct cfg_schema *s, void *next, const void *cur,
                        const char **names, size_t n, size_t max);

/* Keeps string cur in *next when they differ (NULL = unset); true when they differed. On
 * allocation failure *next is left as it was. For 'keep' hooks. */
bool cfg_keep_str(char **next, const char *cur);

/* Substitutes ${VAR} / ${VAR:-default} in every scalar of the document. */
int cfg_substitute_all(struct loader *l);

/* The substituted text of a scalar node, or NULL (not a scalar, or already reported). */
const char *cfg_text(const struct loader *l, const yaml_node_t *n);
/* True for an absent value: NULL, or a plain scalar "", "~", "null". */
bool cfg_is_null(const struct loader *l, const yaml_node_t *n);
/* 1-based column where a scalar's text starts (after an opening quote). */
int cfg_text_col(const yaml_node_t *n);
int cfg_line(const yaml_node_t *n);

/* Scalar parsers shared with defaults and tests; return 0 or -1. */
int cfg_parse_duration_ms(const char *s, uint64_t *out);
int cfg_parse_size(const char *s, size_t *out);
int cfg_parse_int(const char *s, long long *out);
int cfg_parse_bool(const char *s, bool *out);

/* Resolves a path against the loader's directory; returns a malloc'd string. */
char *cfg_resolve_path(const struct loader *l, const char *p);

/* ---- the 'auth' section (config_auth.c) ---- */
/* The 'auth' top-level section (CT_SECTION hook; base is the tb_config). Key files are
 * read and parsed at load, so --check reports a bad key; a reload builds new key sets. */
int cfg_section_auth(struct loader *l, const yaml_node_t *n, void *base);
/* An endpoint's 'require' mapping (capture: claim), after its pattern is compiled. */
int cfg_auth_endpoint_require(struct loader *l, const yaml_node_t *n, struct cfg_endpoint *e);
/* Cross-checks once everything is loaded: an endpoint with auth needs an 'auth' section. */
int cfg_auth_check(struct loader *l, struct tb_config *c);
void cfg_auth_free(struct cfg_auth *a);
void cfg_auth_endpoint_free(struct cfg_endpoint *e);

#endif
