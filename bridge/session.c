/* session: session id request/response and the registry of issued ids (see
 * session.h). Service thread only; replies are published through mqtt_client, which
 * is thread-safe.
 *
 * The registry is a FIFO ring of ids plus a linear lookup: sessions are few (races,
 * not vehicles) and lookups happen on join_session only, so simplicity wins. Each id
 * carries its issue time (wall clock, so that members and a restarted bridge agree);
 * an id forgotten before it reaches the head of the ring (sessions.ttl, or cleared by
 * the cluster) leaves an empty slot behind. */
#include "session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "mqtt_client.h"
#include "room.h"
#include "sbuf.h"

#define REPLY_TOPIC_MAX 256
#define CORRELATION_MAX 256

struct session_registry {
    char (*ids)[SESSION_ID_MAX + 1];     /* "" = a forgotten slot */
    uint64_t *issued_ms;                 /* wall clock, per slot */
    size_t cap, head, len;
    uint64_t next_sweep_ms;
    const struct cluster *cl;    /* borrowed; NULL = we answer every request */
};

#define SWEEP_EVERY_MS 1000

void session_registry_set_cluster(struct session_registry *r, const struct cluster *cl)
{
    if (r)
        r->cl = cl;
}

struct session_registry *session_registry_new(void)
{
    return calloc(1, sizeof(struct session_registry));
}

void session_registry_free(struct session_registry *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->issued_ms);
    free(r);
}

/* A cluster's retained entry telebridge/sessions/<id> is cleared (an empty retained
 * publish) by one member: the owner of the id among the live members. */
static void retire(const struct session_registry *r, struct mqtt_client *mqtt, const char *sid)
{
    if (!r->cl || !mqtt || !cluster_owns(r->cl, sid))
        return;
    char topic[SESSION_ID_MAX + 32];
    snprintf(topic, sizeof topic, "telebridge/sessions/%s", sid);
    if (mqtt_client_publish(mqtt, topic, NULL, 0, 1, true) < 0)
        LOG_WARN("session", "could not clear the cluster's entry of session %s", sid);
    else
        LOG_INFO("session", "session %s retired from the cluster's registry", sid);
}

/* Closes the gaps forgotten ids left, keeping the order (so a full ring with gaps takes
 * a new id without pushing out a live one). */
static void compact(struct session_registry *r)
{
    size_t live = 0;
    for (size_t i = 0; i < r->len; i++) {
        size_t from = (r->head + i) % r->cap, to = (r->head + live) % r->cap;
        if (!r->ids[from][0])
            continue;
        if (from != to) {
            memcpy(r->ids[to], r->ids[from], sizeof r->ids[to]);
            r->issued_ms[to] = r->issued_ms[from];
            r->ids[from][0] = '\0';
        }
        live++;
    }
    r->len = live;
}

static void remember(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                     const char *sid, uint64_t issued_ms)
{
    if (!r->ids) {
        size_t cap = cs->max_sessions ? cs->max_sessions : 10000;
        r->ids = calloc(cap, sizeof *r->ids);
        r->issued_ms = calloc(cap, sizeof *r->issued_ms);
        if (!r->ids || !r->issued_ms) {
            free(r->ids), free(r->issued_ms);
            r->ids = NULL, r->issued_ms = NULL;
            return;
        }
        r->cap = cap;
    }
    if (r->len == r->cap)
        compact(r);
    size_t k;
    if (r->len == r->cap) {
        k = r->head; /* forget the oldest */
        r->head = (r->head + 1) % r->cap;
        if (r->ids[k][0])
            retire(r, mqtt, r->ids[k]);
    } else {
        k = (r->head + r->len++) % r->cap;
    }
    snprintf(r->ids[k], sizeof r->ids[k], "%s", sid);
    r->issued_ms[k] = issued_ms;
}

/* Empty slots at the head of the ring are dropped (the ring stays short when ids expire). */
static void trim_head(struct session_registry *r)
{
    while (r->len && !r->ids[r->head][0]) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
}

/* The slot holding 'sid' (non-empty), or NULL. */
static char *find(const struct session_registry *r, const char *sid)
{
    for (size_t i = 0; r && sid[0] && i < r->len; i++) {
        char *id = r->ids[(r->head + i) % r->cap];
        if (strcmp(id, sid) == 0)
            return id;
    }
    return NULL;
}

static void forget(struct session_registry *r, const char *sid)
{
    char *id = find(r, sid);
    if (id) {
        id[0] = '\0';
        trim_head(r);
    }
}

void session_tick(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                  uint64_t now_wall_ms)
{
    if (!r || !r->len || !cs->ttl_ms || now_wall_ms < r->next_sweep_ms)
        return;
    r->next_sweep_ms = now_wall_ms + SWEEP_EVERY_MS;
    for (size_t i = 0; i < r->len; i++) {
        size_t k = (r->head + i) % r->cap;
        if (!r->ids[k][0] || now_wall_ms < r->issued_ms[k] || now_wall_ms - r->issued_ms[k] < cs->ttl_ms)
            continue;
        LOG_INFO("session", "session %s expired (sessions.ttl)", r->ids[k]);
        retire(r, mqtt, r->ids[k]);
        r->ids[k][0] = '\0';
    }
    trim_head(r);
}

bool session_id_valid(const char *sid)
{
    size_t n = strlen(sid);
    return n > 0 && n <= SESSION_ID_MAX &&
           strspn(sid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

bool session_room(const struct cfg_sessions *cs, const char *sid, char *out, size_t outlen)
{
    const char *prefix = cs->room_prefix ? cs->room_prefix : "session:";
    int n = snprintf(out, outlen, "%s%s", prefix, sid);
    return n > 0 && (size_t)n < outlen;
}

const char *session_of_room(const struct cfg_sessions *cs, const char *room)
{
    const char *prefix = cs->room_prefix ? cs->room_prefix : "session:";
    size_t n = strlen(prefix);
    return strncmp(room, prefix, n) == 0 && room[n] ? room + n : NULL;
}

bool session_issued(const struct session_registry *r, const char *sid)
{
    return find(r, sid) != NULL;
}

size_t session_count(const struct session_registry *r)
{
    size_t n = 0;
    for (size_t i = 0; r && i < r->len; i++)
        n += r->ids[(r->head + i) % r->cap][0] != '\0';
    return n;
}

bool session_known(const struct session_registry *r, const struct cfg_sessions *cs,
                   struct room_registry *rooms, const char *sid)
{
    if (session_issued(r, sid))
        return true;
    char name[SESSION_ID_MAX + 128];
    if (!rooms || !session_room(cs, sid, name, sizeof name))
        return false;
    struct room *room = room_find(rooms, name);
    return room && room_has_state(room);
}

void session_uuid4(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* no entropy syscall: mix the clock (ids only need to be unique, not secret) */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        for (size_t i = 0; i < sizeof b; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static bool reply_topic_ok(const char *t)
{
    size_t n = strlen(t);
    return n > 0 && n <= REPLY_TOPIC_MAX && !strpbrk(t, "+#") && utf8_valid(t, n);
}

static void answer(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                   const char *reply_to, const void *corr, size_t corr_len);

/* In a cluster every member receives the request; the owner of (reply topic, correlation)
 * answers it, so the requester gets one id. */
static bool owns_request(const struct session_registry *r, const char *reply_to, const void *corr,
                         size_t corr_len)
{
    if (!r || !r->cl)
        return true;
    char key[REPLY_TOPIC_MAX + CORRELATION_MAX * 2 + 4];
    size_t n = (size_t)snprintf(key, sizeof key, "%s|", reply_to);
    for (size_t i = 0; i < corr_len && n + 2 < sizeof key; i++, n += 2)
        snprintf(key + n, 3, "%02x", ((const unsigned char *)corr)[i]);
    return cluster_owns(r->cl, key);
}

/* Tells the other members of a cluster about an issued id (retained, so a member that
 * starts later knows it too): telebridge/sessions/<id> =
 * {"session_id","instance","issued_at" (ms since the epoch)}. */
static void announce(const struct session_registry *r, struct mqtt_client *mqtt, const char *sid,
                     uint64_t issued_ms)
{
    if (!r->cl || !mqtt)
        return;
    char topic[SESSION_ID_MAX + 32], payload[SESSION_ID_MAX + CLUSTER_ID_MAX + 80];
    snprintf(topic, sizeof topic, "telebridge/sessions/%s", sid);
    int n = snprintf(payload, sizeof payload,
                     "{\"session_id\":\"%s\",\"instance\":\"%s\",\"issued_at\":%llu}", sid,
                     cluster_self(r->cl), (unsigned long long)issued_ms);
    if (n < 0 || (size_t)n >= sizeof payload || mqtt_client_publish(mqtt, topic, payload, (size_t)n, 1, true) < 0)
        LOG_WARN("session", "could not announce session %s to the cluster", sid);
}

bool session_on_issued(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                       const char *topic, const char *payload, size_t payload_len)
{
    static const char prefix[] = "telebridge/sessions/";
    if (strncmp(topic, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *sid = topic + sizeof prefix - 1;
    if (!r || !session_id_valid(sid))
        return true;
    if (!payload_len) { /* retired by its owner */
        forget(r, sid);
        return true;
    }
    if (session_known(r, cs, NULL, sid))
        return true;
    /* The issue time, so that sessions.ttl counts from the issue and not from when this
     * member heard of it (a restarted member reads every retained entry at once). An
     * entry without one (from an older bridge) counts from now. */
    uint64_t now = tb_wall_ms(), at = now;
    cJSON *j = payload ? cJSON_ParseWithLength(payload, payload_len) : NULL;
    const cJSON *ia = cJSON_GetObjectItemCaseSensitive(j, "issued_at");
    if (cJSON_IsNumber(ia) && ia->valuedouble > 0 && ia->valuedouble <= (double)now)
        at = (uint64_t)ia->valuedouble;
    cJSON_Delete(j);
    if (cs->ttl_ms && now - at >= cs->ttl_ms) {
        retire(r, mqtt, sid); /* expired while no member ran to clear it */
        return true;
    }
    remember(r, cs, mqtt, sid, at);
    return true;
}

bool session_on_mqtt(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                     const struct mqtt_event *ev)
{
    if (!cs->enabled || !cs->request_topic || strcmp(ev->topic, cs->request_topic) != 0)
        return false;
    if (ev->retain)
        return true; /* a stale retained request must not mint ids on every restart */
    cJSON *j = cJSON_ParseWithLength(ev->payload, ev->payload_len);
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(j, "reply_to");
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(j, "correlation");
    const char *reply_to = ev->response_topic ? ev->response_topic
                           : cJSON_IsString(rt) ? rt->valuestring : NULL;
    const void *corr = ev->correlation;
    size_t corr_len = ev->correlation_len;
    if (!corr && cJSON_IsString(cj)) {
        corr = cj->valuestring;
        corr_len = strlen(cj->valuestring);
    }
    if (!reply_to || !reply_topic_ok(reply_to)) {
        if (log_ratelimit_allow_capped("session-request", ev->topic, 60000, 20))
            LOG_WARN("session", "%s: request without a usable reply topic (MQTT 5 response topic "
                     "or JSON \"reply_to\"); ignored", ev->topic);
    } else if (corr_len > CORRELATION_MAX) {
        LOG_WARN("session", "%s: correlation longer than %d bytes; ignored", ev->topic, CORRELATION_MAX);
    } else if (owns_request(r, reply_to, corr, corr_len)) {
        answer(r, cs, mqtt, reply_to, corr, corr_len);
    }
    cJSON_Delete(j);
    return true;
}

static void answer(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                   const char *reply_to, const void *corr, size_t corr_len)
{
    char sid[37], room[SESSION_ID_MAX + 128];
    session_uuid4(sid);
    uint64_t now = tb_wall_ms();
    remember(r, cs, mqtt, sid, now);
    announce(r, mqtt, sid, now);
    session_room(cs, sid, room, sizeof room);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"session_id\":\"");
    sbuf_puts(&b, sid);
    sbuf_puts(&b, "\",\"room\":");
    sbuf_json_string(&b, room, strlen(room));
    if (corr && corr_len && utf8_valid(corr, corr_len) && !memchr(corr, 0, corr_len)) {
        sbuf_puts(&b, ",\"correlation\":");
        sbuf_json_string(&b, corr, corr_len);
    }
    sbuf_puts(&b, "}");
    if (!sbuf_failed(&b) && mqtt &&
        mqtt_client_publish_response(mqtt, reply_to, b.data, b.len, corr_len ? corr : NULL,
                                     corr_len) == 0)
        LOG_INFO("session", "issued session %s (reply to %s)", sid, reply_to);
    else
        LOG_WARN("session", "could not publish the session reply to %s", reply_to);
    sbuf_free(&b);
}
