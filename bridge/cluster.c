/* cluster: live set and rendezvous ownership (see cluster.h). Pure; the ids tracked are
 * few (the bridges of a deployment, plus whatever else announces a status on the
 * broker, bounded by CLUSTER_MAX_TRACKED), so a flat array and linear scans serve. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct peer {
    char id[CLUSTER_ID_MAX + 1];
    bool online;
    bool same_cluster;
};

struct cluster {
    char self[CLUSTER_ID_MAX + 1];
    char name[CLUSTER_ID_MAX + 1];
    struct peer *peers;
    size_t n, cap;
    uint64_t generation;
};

struct cluster *cluster_new(const char *self, const char *name)
{
    if (!self || !name || strlen(self) > CLUSTER_ID_MAX || strlen(name) > CLUSTER_ID_MAX || !self[0])
        return NULL;
    struct cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    snprintf(cl->self, sizeof cl->self, "%s", self);
    snprintf(cl->name, sizeof cl->name, "%s", name);
    return cl;
}

void cluster_free(struct cluster *cl)
{
    if (!cl)
        return;
    free(cl->peers);
    free(cl);
}

const char *cluster_self(const struct cluster *cl) { return cl->self; }
const char *cluster_name(const struct cluster *cl) { return cl->name; }

enum cluster_topic cluster_parse_topic(const char *topic, char *id, size_t idlen)
{
    static const char prefix[] = "telebridge/";
    if (strncmp(topic, prefix, sizeof prefix - 1) != 0)
        return CLUSTER_TOPIC_NONE;
    const char *p = topic + sizeof prefix - 1;
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : 0;
    if (!slash || !n || n > CLUSTER_ID_MAX || n >= idlen)
        return CLUSTER_TOPIC_NONE;
    enum cluster_topic kind = strcmp(slash + 1, "status") == 0    ? CLUSTER_TOPIC_STATUS
                              : strcmp(slash + 1, "cluster") == 0 ? CLUSTER_TOPIC_NAME
                                                                  : CLUSTER_TOPIC_NONE;
    if (kind != CLUSTER_TOPIC_NONE) {
        memcpy(id, p, n);
        id[n] = '\0';
    }
    return kind;
}

static bool live(const struct peer *p) { return p->online && p->same_cluster; }

static struct peer *find(const struct cluster *cl, const char *id)
{
    for (size_t i = 0; i < cl->n; i++)
        if (strcmp(cl->peers[i].id, id) == 0)
            return &cl->peers[i];
    return NULL;
}

static struct peer *get(struct cluster *cl, const char *id)
{
    struct peer *p = find(cl, id);
    if (p)
        return p;
    if (strlen(id) > CLUSTER_ID_MAX || cl->n >= CLUSTER_MAX_TRACKED)
        return NULL;
    if (cl->n == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 8;
        struct peer *v = realloc(cl->peers, cap * sizeof *v);
        if (!v)
            return NULL;
        cl->peers = v;
        cl->cap = cap;
    }
    p = &cl->peers[cl->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    return p;
}

/* Applies one change to a peer; forgets peers that are neither online nor ours. */
static int update(struct cluster *cl, const char *id, int online, int same)
{
    if (!id[0] || strcmp(id, cl->self) == 0)
        return 0;
    if (!find(cl, id) && online != 1 && same != 1)
        return 0;    /* nothing to remember about an offline stranger */
    struct peer *p = get(cl, id);
    if (!p)
        return -1;
    bool was = live(p);
    if (online >= 0)
        p->online = online;
    if (same >= 0)
        p->same_cluster = same;
    bool now = live(p);
    if (!p->online && !p->same_cluster)
        *p = cl->peers[--cl->n];
    if (was == now)
        return 0;
    cl->generation++;
    return 1;
}

int cluster_on_status(struct cluster *cl, const char *id, bool online)
{
    return update(cl, id, online ? 1 : 0, -1);
}

int cluster_on_name(struct cluster *cl, const char *id, const char *name)
{
    return update(cl, id, -1, strcmp(name, cl->name) == 0 ? 1 : 0);
}

size_t cluster_live_count(const struct cluster *cl)
{
    size_t n = 1;
    for (size_t i = 0; i < cl->n; i++)
        n += live(&cl->peers[i]);
    return n;
}

bool cluster_is_live(const struct cluster *cl, const char *id)
{
    if (strcmp(id, cl->self) == 0)
        return true;
    const struct peer *p = find(cl, id);
    return p && live(p);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cluster_live_list(const struct cluster *cl, char *out, size_t outlen)
{
    const char *ids[CLUSTER_MAX_TRACKED + 1];
    size_t n = 0, used = 0;
    ids[n++] = cl->self;
    for (size_t i = 0; i < cl->n; i++)
        if (live(&cl->peers[i]))
            ids[n++] = cl->peers[i].id;
    qsort(ids, n, sizeof ids[0], cmp_str);
    if (outlen)
        out[0] = '\0';
    for (size_t i = 0; i < n && used < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? "," : "", ids[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

uint64_t cluster_generation(const struct cluster *cl) { return cl->generation; }

/* FNV-1a of "member\0key", then the splitmix64 finaliser: FNV alone varies little in
 * the high bits for keys that differ only at the end (veh-00001, veh-00002). */
uint64_t cluster_score(const char *member, const char *key)
{
    uint64_t h = tb_hash_more(TB_HASH_SEED, member, strlen(member) + 1);
    h = tb_hash_more(h, key, strlen(key));
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

/* Highest score wins; a tie (practically never) goes to the smaller id, so every
 * member computes the same owner. */
static bool better(const char *id, uint64_t s, const char *best, uint64_t best_s)
{
    return s > best_s || (s == best_s && strcmp(id, best) < 0);
}

const char *cluster_owner(const struct cluster *cl, const char *key)
{
    const char *best = cl->self;
    uint64_t best_s = cluster_score(cl->self, key);
    for (size_t i = 0; i < cl->n; i++) {
        const struct peer *p = &cl->peers[i];
        if (!live(p))
            continue;
        uint64_t s = cluster_score(p->id, key);
        if (better(p->id, s, best, best_s)) {
            best = p->id;
            best_s = s;
        }
    }
    return best;
}

bool cluster_owns(const struct cluster *cl, const char *key)
{
    return !cl || cluster_owner(cl, key) == cl->self;
}
