/* uplink_runtime: client publishes and their replies (see uplink_runtime.h). Service
 * thread only.
 *
 * Pending requests are one list in the runtime (oldest first), at most
 * UPLINK_MAX_PENDING of them; a reply or a timeout looks them up by a linear walk, which
 * stays cheap at that bound. The token in the reply topic is a per-runtime counter in
 * hex, so a reply can only reach the request it was published for. */
#include "uplink_runtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "conn.h"
#include "log.h"
#include "mqtt_client.h"
#include "reply.h"
#include "router.h"
#include "subscribe.h"

#define TB_ERR_RATE_LIMITED "rate_limited"
#define TB_ERR_TIMEOUT "timeout"
#define TB_ERR_TOO_MANY_PENDING "too_many_pending"
#define TB_ERR_BROKER_UNAVAILABLE "broker_unavailable"

struct pending {
    uint64_t token;
    struct conn *c;
    cJSON *id;                   /* the request's id (owned) */
    uint64_t deadline_ms, timeout_ms;
    struct pending *prev, *next;
};

/* Per connection: one rate bucket per publish rule of its endpoint. */
struct conn_uplink {
    const struct cfg_publish *rules;   /* the rules the buckets belong to (reset on reload) */
    struct uplink_bucket *buckets;
    size_t n_buckets;
    size_t pending;
};

struct uplink_runtime {
    struct fanout *f;
    struct mqtt_client *mqtt;
    struct uplink_policy policy;
    struct pending *head, *tail;
    uint64_t next_token;
    struct uplink_stats st;
};

/* ---- the default policy: the token's identity, else the endpoint's identity capture -- */

static bool identity_from_path(void *ud, const struct tb_config *cfg, const struct conn *c,
                               struct uplink_who *who)
{
    (void)ud;
    memset(who, 0, sizeof *who);
    who->ep = c->path ? config_find_endpoint(cfg, c->path, &who->path) : NULL;
    if (!who->ep)
        return false;
    if (c->identity && c->identity->subject && c->identity->subject[0]) {
        /* authenticated (issue 13): the token's subject or the API key's identity; the
         * endpoint's 'require' has already bound its path captures to the claims */
        if (strlen(c->identity->subject) > UPLINK_SENDER_MAX)
            return false;
        strcpy(who->sender, c->identity->subject);
        return true;
    }
    int i = who->ep->identity_capture;
    if (i < 0 || (size_t)i >= who->path.n)
        return true;                   /* anonymous endpoint: "sender": null */
    if (who->path.cap[i].len > UPLINK_SENDER_MAX)
        return false;                  /* never cut an identity short: refuse instead */
    memcpy(who->sender, who->path.cap[i].ptr, who->path.cap[i].len);
    who->sender[who->path.cap[i].len] = '\0';
    return true;
}

static const char *permit_from_rule(void *ud, const struct uplink_who *who, const struct cfg_publish *r,
                                    const char *topic)
{
    (void)ud, (void)who;
    for (size_t i = 0; i < r->n_allow_topics; i++) {
        if (subscribe_glob_match(r->allow_topics[i], topic))
            return NULL;
    }
    return r->n_allow_topics ? "this topic is not among the message's allow_topics" : NULL;
}

const struct uplink_policy uplink_policy_from_config = { identity_from_path, permit_from_rule, NULL };

/* ---- life cycle --------------------------------------------------------------------- */

struct uplink_runtime *uplink_runtime_new(struct fanout *f, struct mqtt_client *mqtt)
{
    struct uplink_runtime *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->f = f;
    u->mqtt = mqtt;
    u->policy = uplink_policy_from_config;
    return u;
}

static void pending_free(struct uplink_runtime *u, struct pending *p)
{
    *(p->prev ? &p->prev->next : &u->head) = p->next;
    *(p->next ? &p->next->prev : &u->tail) = p->prev;
    if (p->c->uplink)
        p->c->uplink->pending--;
    u->st.pending--;
    cJSON_Delete(p->id);
    free(p);
}

void uplink_runtime_free(struct uplink_runtime *u)
{
    if (!u)
        return;
    while (u->head)
        pending_free(u, u->head);
    free(u);
}

void uplink_runtime_set_mqtt(struct uplink_runtime *u, struct mqtt_client *mqtt) { u->mqtt = mqtt; }
void uplink_runtime_set_policy(struct uplink_runtime *u, const struct uplink_policy *p) { u->policy = *p; }

void uplink_runtime_conn_close(struct uplink_runtime *u, struct conn *c)
{
    if (!u || !c->uplink)
        return;
    for (struct pending *p = u->head, *next; p; p = next) {
        next = p->next;
        if (p->c == c)
            pending_free(u, p);
    }
    free(c->uplink->buckets);
    free(c->uplink);
    c->uplink = NULL;
}

/* ---- a request ---------------------------------------------------------------------- */

/* The connection's bucket for rule r of endpoint ep (NULL when out of memory). */
static struct uplink_bucket *bucket_of(struct conn *c, const struct cfg_endpoint *ep, const struct cfg_publish *r)
{
    if (!c->uplink && !(c->uplink = calloc(1, sizeof *c->uplink)))
        return NULL;
    struct conn_uplink *cu = c->uplink;
    /* first publish, or the config was reloaded: 'rules' is only compared, never read (a
     * new snapshot may reuse the address; the count keeps the index in bounds) */
    if (cu->rules != ep->publish || cu->n_buckets != ep->n_publish) {
        free(cu->buckets);
        cu->n_buckets = 0;
        if (!(cu->buckets = calloc(ep->n_publish, sizeof *cu->buckets)))
            return NULL;
        cu->n_buckets = ep->n_publish;
        cu->rules = ep->publish;
    }
    return &cu->buckets[r - ep->publish];
}

static void refuse(struct uplink_runtime *u, struct conn *c, const cJSON *id, const char *code, const char *msg)
{
    u->st.refused++;
    /* a malformed message counts against the connection's bad-frame budget */
    if (!strcmp(code, TB_ERR_BAD_FIELD) || !strcmp(code, TB_ERR_TOO_LARGE))
        reply_error(u->f, c, id, code, msg);
    else
        reply_refusal(u->f, c, id, code, msg);
}

static int refusal(struct uplink_refusal *why, const char *code, const char *msg)
{
    why->code = code;
    snprintf(why->msg, sizeof why->msg, "%s", msg);
    return -1;
}

/* The checks before anything is built: rate, broker, a command's id and the pending
 * bounds. 0, or -1 with 'why' filled. */
static int admit(struct uplink_runtime *u, struct conn *c, const struct uplink_who *who,
                 const struct cfg_publish *r, const cJSON *id, struct uplink_refusal *why)
{
    struct uplink_bucket *b = bucket_of(c, who->ep, r);
    if (!b)
        return refusal(why, TB_ERR_INTERNAL, "out of memory");
    if (!uplink_bucket_take(b, r->rate_per_second, r->rate_burst, tb_now_ms())) {
        u->st.rate_limited++;
        return refusal(why, TB_ERR_RATE_LIMITED, "too many messages of this type; slow down");
    }
    if (!u->mqtt || !mqtt_client_connected(u->mqtt))
        return refusal(why, TB_ERR_BROKER_UNAVAILABLE, "the bridge is not connected to the broker");
    if (!r->reply_timeout_ms)
        return 0;
    if (!id)
        return refusal(why, TB_ERR_BAD_FIELD, "a request that waits for a reply needs an \"id\"");
    if (c->uplink->pending >= UPLINK_MAX_PENDING_PER_CONN || u->st.pending >= UPLINK_MAX_PENDING)
        return refusal(why, TB_ERR_TOO_MANY_PENDING, "too many requests waiting for replies; wait for one");
    return 0;
}

/* A pending command, not linked yet (so a refusal after it frees it alone). */
static struct pending *pending_new(struct conn *c, const cJSON *id, uint64_t token, uint64_t timeout_ms)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || !(p->id = cJSON_Duplicate(id, true))) {
        free(p);
        return NULL;
    }
    p->token = token;
    p->c = c;
    p->timeout_ms = timeout_ms;
    p->deadline_ms = tb_now_ms() + timeout_ms;
    return p;
}

static void pending_link(struct uplink_runtime *u, struct pending *p)
{
    p->prev = u->tail;
    *(u->tail ? &u->tail->next : &u->head) = p;
    u->tail = p;
    p->c->uplink->pending++;
    u->st.pending++;
}

/* What the bridge tells the client once the message is on its way. */
static void accepted(struct uplink_runtime *u, struct conn *c, const struct uplink_out *out,
                     struct pending *p, const cJSON *id)
{
    u->st.published++;
    if (p) {
        pending_link(u, p);            /* the answer is the reply, or the timeout */
    } else if (id) {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "topic", out->topic);
        reply_send(u->f, c, "published", top, id);
    }
}

/* Builds, authorizes and publishes an admitted request; for a command, 'token' names its
 * reply topic and the pending entry that waits for it. */
static void publish_checked(struct uplink_runtime *u, const struct tb_config *cfg, struct conn *c,
                            const struct uplink_who *who, const struct cfg_publish *r,
                            const cJSON *req, const cJSON *id)
{
    uint64_t token = ++u->next_token;
    char corr[24], reply_topic[UPLINK_TOPIC_MAX];
    snprintf(corr, sizeof corr, "%016" PRIx64, token);
    snprintf(reply_topic, sizeof reply_topic, "telebridge/%s/reply/%s", cfg->mqtt.client_id, corr);
    bool command = r->reply_timeout_ms != 0;   /* reply_to in the payload also with MQTT 5 */
    struct uplink_stamp stamp = { who->sender[0] ? who->sender : NULL,
                                  command ? reply_topic : NULL, command ? corr : NULL };
    struct mqtt_uplink_props props = { stamp.sender, stamp.reply_to, stamp.correlation };
    struct pending *p = command ? pending_new(c, id, token, r->reply_timeout_ms) : NULL;
    struct uplink_out out = { .payload = NULL };
    struct uplink_refusal why;
    const char *denied = NULL;
    if (command && !p)
        refuse(u, c, id, TB_ERR_INTERNAL, "out of memory");
    else if (uplink_build(r, &who->path, req, &stamp, &out, &why))
        refuse(u, c, id, why.code, why.msg);
    else if (u->policy.permit && (denied = u->policy.permit(u->policy.ud, who, r, out.topic)))
        refuse(u, c, id, TB_ERR_NOT_ALLOWED, denied);
    else if (mqtt_client_publish_uplink(u->mqtt, out.topic, out.payload, out.len, r->qos, out.retain, &props))
        refuse(u, c, id, TB_ERR_BROKER_UNAVAILABLE, "the broker did not take the message");
    else {
        accepted(u, c, &out, p, id);
        p = NULL;                      /* linked: the reply or the timeout frees it */
    }
    if (p) {
        cJSON_Delete(p->id);
        free(p);
    }
    uplink_out_free(&out);
}

bool uplink_runtime_handle(struct uplink_runtime *u, const struct tb_config *cfg, struct conn *c,
                           const char *type, const cJSON *req, const cJSON *id)
{
    if (!u || !uplink_type_known(cfg, type))
        return false;
    struct uplink_who who;
    const struct cfg_publish *r = NULL;
    if (u->policy.identity(u->policy.ud, cfg, c, &who))
        r = uplink_rule(who.ep, type);
    struct uplink_refusal why;
    if (!r)
        refuse(u, c, id, TB_ERR_NOT_ALLOWED, "this endpoint may not send messages of this type");
    else if (admit(u, c, &who, r, id, &why))
        refuse(u, c, id, why.code, why.msg);
    else
        publish_checked(u, cfg, c, &who, r, req, id);
    return true;
}

/* ---- replies ------------------------------------------------------------------------ */

static void deliver_reply(struct uplink_runtime *u, struct pending *p, const struct mqtt_event *ev)
{
    /* the router's reading of a payload: JSON as standard JSON, anything else (binary,
     * invalid UTF-8) as a safe JSON string */
    struct inbound in;
    inbound_init(&in, ev->topic, ev->payload, ev->payload_len);
    cJSON *top = cJSON_CreateObject();
    cJSON *data = cJSON_ParseWithLength(in.data, in.data_len);
    inbound_free(&in);
    cJSON_AddItemToObject(top, "data", data ? data : cJSON_CreateNull());
    reply_send(u->f, p->c, "reply", top, p->id);
    u->st.replies++;
    pending_free(u, p);
}

bool uplink_runtime_on_mqtt(struct uplink_runtime *u, const struct tb_config *cfg, const struct mqtt_event *ev)
{
    if (!u || !cfg->replies || strncmp(ev->topic, "telebridge/", 11))
        return false;
    const char *id = cfg->mqtt.client_id;
    size_t n = strlen(id);
    const char *rest = ev->topic + 11;
    if (strncmp(rest, id, n) || strncmp(rest + n, "/reply/", 7))
        return false;
    char *end = NULL;
    uint64_t token = strtoull(rest + n + 7, &end, 16);
    for (struct pending *p = u->head; p && end && !*end; p = p->next) {
        if (p->token == token) {
            deliver_reply(u, p, ev);
            return true;
        }
    }
    u->st.stray_replies++;
    return true;
}

void uplink_runtime_tick(struct uplink_runtime *u, uint64_t now_ms)
{
    if (!u)
        return;
    for (struct pending *p = u->head, *next; p; p = next) {
        next = p->next;
        if (now_ms < p->deadline_ms)
            continue;
        char msg[80];
        snprintf(msg, sizeof msg, "no reply within %" PRIu64 " ms", p->timeout_ms);
        reply_refusal(u->f, p->c, p->id, TB_ERR_TIMEOUT, msg);
        u->st.timeouts++;
        pending_free(u, p);
    }
}

void uplink_runtime_stats(const struct uplink_runtime *u, struct uplink_stats *out)
{
    memset(out, 0, sizeof *out);
    if (u)
        *out = u->st;
}
