/* cluster: membership of several bridges acting as one, and who owns what (issue 16).
 *
 * Pure: no I/O, no clock, no threads; the bridge feeds it what the broker says and asks
 * it who owns a key. Thread: whoever owns the struct (the service thread in the bridge).
 *
 * Membership: every bridge keeps a retained "online" on telebridge/<instance_id>/status
 * (the last will says "offline") and, when clustering is on, a retained cluster name on
 * telebridge/<instance_id>/cluster. The live set is this instance plus every other id
 * whose status is "online" and whose cluster name equals ours; ids of other clusters or
 * of bridges without clustering are never members.
 *
 * Ownership: rendezvous (highest random weight) hashing over the live set. Every key
 * (an alert key such as a vehicle id, a session request) has one owner: the member with
 * the highest score(member, key). When a member leaves, only its keys move, each to the
 * member with the next highest score; when one joins, it takes only the keys it now
 * scores highest on. Needs no broker feature ($share) and keeps one vehicle's alerts on
 * one owner. */
#ifndef TB_CLUSTER_H
#define TB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_ID_MAX 64
#define CLUSTER_MAX_TRACKED 1024   /* ids tracked at most (status topics of anyone on the broker) */

struct cluster;

/* self: this instance's id; name: the cluster's name (peers must announce the same). */
struct cluster *cluster_new(const char *self, const char *name);
void cluster_free(struct cluster *cl);   /* NULL is harmless */

const char *cluster_self(const struct cluster *cl);
const char *cluster_name(const struct cluster *cl);

enum cluster_topic { CLUSTER_TOPIC_NONE, CLUSTER_TOPIC_STATUS, CLUSTER_TOPIC_NAME };

/* telebridge/<id>/status -> STATUS, telebridge/<id>/cluster -> NAME (id copied out, at
 * most CLUSTER_ID_MAX bytes, else NONE), anything else NONE. */
enum cluster_topic cluster_parse_topic(const char *topic, char *id, size_t idlen);

/* A retained status ("online" or anything else = offline) or cluster name ("" = none)
 * of 'id'. Returns 1 when the live set changed, 0 when not, -1 when the id was not
 * tracked (too many ids, or an invalid one). Messages about self are ignored. */
int cluster_on_status(struct cluster *cl, const char *id, bool online);
int cluster_on_name(struct cluster *cl, const char *id, const char *name);

size_t cluster_live_count(const struct cluster *cl);
bool cluster_is_live(const struct cluster *cl, const char *id);
/* The live ids, self included, written as "a,b,c" (sorted) into out; for logs and /health. */
void cluster_live_list(const struct cluster *cl, char *out, size_t outlen);
/* Bumped at every change of the live set. */
uint64_t cluster_generation(const struct cluster *cl);

/* The live member owning 'key' (valid until the next on_status / on_name call). */
const char *cluster_owner(const struct cluster *cl, const char *key);
/* True when this instance owns 'key'; a NULL cluster owns everything (clustering off). */
bool cluster_owns(const struct cluster *cl, const char *key);

/* The rendezvous weight of (member, key); exposed for tests. */
uint64_t cluster_score(const char *member, const char *key);

#endif
