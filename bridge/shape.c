/* shape: projection of routed messages and the shape objects (see shape.h).
 * Service thread only.
 *
 * Projection parses the already serialized envelope, builds a new "data" holding only
 * the requested paths (with their parent objects) and prints it again. That is real
 * JSON work, which is why shape_cache makes it happen once per (message, field list)
 * and not once per client. */
#include "shape.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_util.h"

bool shape_field_valid(const char *f)
{
    size_t n = strlen(f), seg = 0;
    if (n == 0 || n > SHAPE_FIELD_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = f[i];
        if (ch == '.') {
            if (!seg)
                return false;
            seg = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '_' || ch == '-') {
            seg++;
        } else {
            return false;
        }
    }
    return seg > 0;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct sub_shape *shape_new(double max_rate, const char *const *fields, size_t n_fields)
{
    struct sub_shape *sh = calloc(1, sizeof *sh);
    if (!sh || !(sh->fields = calloc(n_fields + 1, sizeof *sh->fields)))
        goto fail;
    sh->refs = 1;
    sh->max_rate = max_rate > 0 ? max_rate : 0;
    sh->interval_ms = sh->max_rate > 0 ? (uint64_t)llround(1000.0 / sh->max_rate) : 0;
    size_t keylen = 1;
    for (size_t i = 0; i < n_fields; i++) {
        if (!(sh->fields[sh->n_fields++] = strdup(fields[i])))
            goto fail;
        keylen += strlen(fields[i]) + 1;
    }
    qsort(sh->fields, sh->n_fields, sizeof *sh->fields, by_string);
    size_t w = 0;
    for (size_t i = 0; i < sh->n_fields; i++) {
        if (w && strcmp(sh->fields[w - 1], sh->fields[i]) == 0)
            free(sh->fields[i]);
        else
            sh->fields[w++] = sh->fields[i];
    }
    sh->n_fields = w;
    if (!(sh->key = malloc(keylen)))
        goto fail;
    sh->key[0] = '\0';
    for (size_t i = 0; i < sh->n_fields; i++) {
        if (i)
            strcat(sh->key, ",");
        strcat(sh->key, sh->fields[i]);
    }
    return sh;
fail:
    shape_unref(sh);
    return NULL;
}

struct sub_shape *shape_ref(struct sub_shape *sh)
{
    if (sh)
        sh->refs++;
    return sh;
}

void shape_unref(struct sub_shape *sh)
{
    if (!sh || --sh->refs > 0)
        return;
    for (size_t i = 0; sh->fields && i < sh->n_fields; i++)
        free(sh->fields[i]);
    free(sh->fields);
    free(sh->key);
    free(sh);
}

/* Copies root[path] into out[path], creating the parent objects on the way. */
static void copy_path(cJSON *out, const cJSON *root, const char *path)
{
    const cJSON *v = json_path_get(root, path, strlen(path));
    if (!v)
        return;
    cJSON *dst = out;
    const char *p = path;
    for (const char *dot; (dot = strchr(p, '.')); p = dot + 1) {
        char name[SHAPE_FIELD_MAX_LEN + 1];
        size_t len = (size_t)(dot - p);
        memcpy(name, p, len);
        name[len] = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(dst, name);
        if (!next && !(next = cJSON_AddObjectToObject(dst, name)))
            return;
        if (!cJSON_IsObject(next))
            return; /* "a" and "a.b" both asked for: "a" already holds all of it */
        dst = next;
    }
    if (!cJSON_GetObjectItemCaseSensitive(dst, p))
        cJSON_AddItemToObject(dst, p, cJSON_Duplicate(v, true));
}

struct tb_msg *shape_project(const struct sub_shape *sh, struct tb_msg *m)
{
    if (!sh || !sh->n_fields)
        return msg_ref(m);
    cJSON *env = cJSON_ParseWithLength((const char *)msg_payload(m), m->len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(env, "data");
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(env);
        return msg_ref(m);
    }
    struct tb_msg *out = NULL;
    cJSON *proj = cJSON_CreateObject();
    if (!proj)
        goto done;
    /* Sorted fields put "a" before "a.b", so a whole object is never split. */
    for (size_t i = 0; i < sh->n_fields; i++)
        copy_path(proj, data, sh->fields[i]);
    cJSON_ReplaceItemInObjectCaseSensitive(env, "data", proj);
    char *text = cJSON_PrintUnformatted(env);
    if (text) {
        out = msg_new(text, strlen(text));
        if (out)
            out->key = m->key; /* conflates like the original */
        free(text);
    }
done:
    cJSON_Delete(env);
    return out;
}

void shape_cache_init(struct shape_cache *sc, struct tb_msg *src)
{
    sc->src = src;
    sc->n = 0;
}

struct tb_msg *shape_cache_get(struct shape_cache *sc, const struct sub_shape *sh)
{
    if (!sh || !sh->n_fields)
        return msg_ref(sc->src);
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->slot[i].key, sh->key) == 0)
            return msg_ref(sc->slot[i].msg);
    struct tb_msg *m = shape_project(sh, sc->src);
    if (m && sc->n < SHAPE_CACHE_SLOTS) {
        sc->slot[sc->n].key = sh->key;
        sc->slot[sc->n].msg = msg_ref(m);
        sc->n++;
    }
    return m;
}

void shape_cache_clear(struct shape_cache *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        msg_unref(sc->slot[i].msg);
    sc->n = 0;
}
