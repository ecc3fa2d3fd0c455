/* shape: per-client shaping of one subscription: a projection of "data" to a few
 * fields and a maximum delivery rate per room.
 *
 * A shape is immutable and refcounted; every subscription made by one subscribe
 * request shares it. Its 'key' is the canonical list of fields (sorted, deduplicated),
 * so two clients asking for the same fields in any order get the same projection.
 * fanout_deliver projects each routed message at most once per distinct key through a
 * shape_cache that lives for that one call: serialization stays shared among all
 * clients with the same shape. The rate part (max_rate) is applied by fanout.c.
 * Service thread only (refcounts are not atomic). */
#ifndef TB_SHAPE_H
#define TB_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define SHAPE_MAX_FIELDS 32
#define SHAPE_FIELD_MAX_LEN 128
#define SHAPE_MAX_RATE 1000.0

struct sub_shape {
    unsigned refs;
    double max_rate;            /* messages per second per room; 0 = unlimited */
    uint64_t interval_ms;       /* 1000 / max_rate, rounded; 0 = unlimited */
    char **fields;              /* sorted, distinct dotted paths; n_fields 0 = whole data */
    size_t n_fields;
    char *key;                  /* fields joined with ',' ("" when none) */
};

/* Is 'f' a usable field path: 1..SHAPE_FIELD_MAX_LEN bytes of dot-separated,
 * non-empty names made of letters, digits, '_' and '-'? */
bool shape_field_valid(const char *f);

/* New shape with refcount 1 (fields copied); NULL when out of memory. */
struct sub_shape *shape_new(double max_rate, const char *const *fields, size_t n_fields);
struct sub_shape *shape_ref(struct sub_shape *sh);    /* NULL is harmless */
void shape_unref(struct sub_shape *sh);               /* NULL is harmless */

/* The routed envelope 'm' with "data" cut down to the shape's fields (nested objects
 * are kept along each path; absent fields are left out). Returns a new reference: m
 * itself when the shape has no fields or data is not a JSON object; NULL when out of
 * memory. */
struct tb_msg *shape_project(const struct sub_shape *sh, struct tb_msg *m);

/* Projections of one message, shared per shape key during one delivery. */
#define SHAPE_CACHE_SLOTS 16
struct shape_cache {
    struct tb_msg *src;
    size_t n;
    struct {
        const char *key;        /* borrowed from a shape alive for the whole delivery */
        struct tb_msg *msg;
    } slot[SHAPE_CACHE_SLOTS];
};

void shape_cache_init(struct shape_cache *sc, struct tb_msg *src);
/* The projection of sc->src for 'sh': a new reference (release with msg_unref). */
struct tb_msg *shape_cache_get(struct shape_cache *sc, const struct sub_shape *sh);
void shape_cache_clear(struct shape_cache *sc);

#endif
