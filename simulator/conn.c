/* conn: libmosquitto wrapper for the simulator (see conn.h for the threading rules). */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mqtt_protocol.h>

#include "command.h"

#define KEEPALIVE_S 30

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        return; /* a signal: let the caller look at its stop flag */
}

/* ---- callbacks: network thread --------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
    struct conn *c = ud;
    int first = atomic_load(&c->connack_rc) == -1;
    atomic_store(&c->connack_rc, rc);
    if (rc != 0) {
        fprintf(stderr, "telesim: broker refused connection %s: %s\n", c->client_id,
                rc < 128 ? mosquitto_connack_string(rc) : mosquitto_reason_string(rc));
        return;
    }
    if (!first)
        atomic_fetch_add(&c->reconnects, 1);
    atomic_store(&c->up, 1);
    atomic_store(&c->announce, 1);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *props)
{
    struct conn *c = ud;
    int was_up = atomic_exchange(&c->up, 0);
    if (rc != 0 && was_up)
        fprintf(stderr, "telesim: lost connection %s to %s:%d (%s); reconnecting\n",
                c->client_id, c->params->host, c->params->port, mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
    struct conn *c = ud;
    atomic_fetch_add(&c->published, 1);
}

/* A vehicle command: queued for the main thread, which owns the vehicles. */
static void queue_command(struct conn *c, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
    char *rt = NULL;
    void *cd = NULL;
    uint16_t cdlen = 0;
    mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
    mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false);
    struct sim_command *cmd = command_parse(msg->topic, msg->payload, (size_t)msg->payloadlen, rt, cd, cdlen);
    free(rt);
    free(cd);
    if (!cmd)
        return;
    pthread_mutex_lock(&c->lock);
    *(c->cmds_tail ? &c->cmds_tail->next : &c->cmds) = cmd;
    c->cmds_tail = cmd;
    pthread_mutex_unlock(&c->lock);
}

/* A session reply is JSON {"session_id": "...", "correlation": "..."} or the bare id;
 * the correlation (JSON field or MQTT 5 correlation data) must match when present. */
static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct conn *c = ud;
    if (strstr(msg->topic, "/cmd/")) {
        queue_command(c, msg, props);
        return;
    }
    char sid[128] = "", corr[64] = "";
    void *cd = NULL;
    uint16_t cdlen = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false)) {
        snprintf(corr, sizeof corr, "%.*s", (int)cdlen, (const char *)cd);
        free(cd);
    }
    cJSON *j = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
    if (cJSON_IsObject(j)) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "session_id");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "correlation");
        if (cJSON_IsString(s))
            snprintf(sid, sizeof sid, "%s", s->valuestring);
        if (cJSON_IsString(k) && !corr[0])
            snprintf(corr, sizeof corr, "%s", k->valuestring);
    } else if (msg->payloadlen > 0 && msg->payloadlen < (int)sizeof sid) {
        snprintf(sid, sizeof sid, "%.*s", msg->payloadlen, (const char *)msg->payload);
    }
    cJSON_Delete(j);

    size_t n = strlen(sid);
    if (n == 0 || n > 64 || strspn(sid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_.") != n)
        return; /* not usable as a topic level: ignore, the caller falls back to a UUID */
    pthread_mutex_lock(&c->lock);
    if (!strcmp(msg->topic, c->reply_topic) && (!corr[0] || !strcmp(corr, c->correlation)))
        snprintf(c->reply, sizeof c->reply, "%s", sid);
    pthread_mutex_unlock(&c->lock);
}

/* ---- main thread ------------------------------------------------------------------------ */

struct conn *conn_new(const char *client_id, const char *will_topic,
                      const struct conn_params *params)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
    snprintf(c->will_topic, sizeof c->will_topic, "%s", will_topic);
    c->params = params;
    atomic_init(&c->connack_rc, -1);
    pthread_mutex_init(&c->lock, NULL);

    c->mosq = mosquitto_new(c->client_id, true, c);
    if (!c->mosq)
        goto fail;
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         params->protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (params->username && params->username[0] &&
        mosquitto_username_pw_set(c->mosq, params->username, params->password) != 0)
        goto fail;
    if (mosquitto_will_set(c->mosq, c->will_topic, 7, "offline", 1, true) != 0)
        goto fail;
    mosquitto_max_inflight_messages_set(c->mosq, 1000);
    /* a steady 1 s retry: a restarted broker is picked up at once */
    mosquitto_reconnect_delay_set(c->mosq, 1, 1, false);
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(c->mosq, on_publish);
    mosquitto_message_v5_callback_set(c->mosq, on_message);
    return c;
fail:
    fprintf(stderr, "telesim: cannot create MQTT client %s\n", client_id);
    conn_free(c);
    return NULL;
}

void conn_free(struct conn *c)
{
    if (!c)
        return;
    if (c->mosq) {
        if (c->loop_started) {
            mosquitto_disconnect(c->mosq);
            mosquitto_loop_stop(c->mosq, false);
        }
        mosquitto_destroy(c->mosq);
    }
    while (c->cmds) {
        struct sim_command *next = c->cmds->next;
        command_free(c->cmds);
        c->cmds = next;
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int conn_connect(struct conn *c, const volatile sig_atomic_t *stop)
{
    const struct conn_params *p = c->params;
    long backoff_ms = 500;
    for (int attempt = 1;; attempt++) {
        int rc = mosquitto_connect(c->mosq, p->host, p->port, KEEPALIVE_S);
        if (rc == MOSQ_ERR_SUCCESS)
            break;
        const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        fprintf(stderr, "telesim: cannot connect to broker %s:%d (%s); retry %d in %.1f s\n",
                p->host, p->port, why, attempt, backoff_ms / 1000.0);
        for (long waited = 0; waited < backoff_ms && !*stop; waited += 100)
            sleep_ms(100);
        if (*stop)
            return -1;
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int lrc = mosquitto_loop_start(c->mosq);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (lrc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "telesim: cannot start the MQTT network thread\n");
        return -2;
    }
    c->loop_started = true;
    for (int waited = 0; waited < 10000 && !*stop; waited += 10) {
        int rc = atomic_load(&c->connack_rc);
        if (rc == 0)
            return 0;
        if (rc > 0)
            return -2;
        sleep_ms(10);
    }
    if (*stop)
        return -1;
    fprintf(stderr, "telesim: no CONNACK from %s:%d within 10 s\n", p->host, p->port);
    return -2;
}

int conn_publish(struct conn *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain)
{
    int rc = mosquitto_publish(c->mosq, NULL, topic, (int)len, payload, qos, retain);
    if (rc == MOSQ_ERR_SUCCESS)
        atomic_fetch_add(&c->handed, 1);
    return rc;
}

bool conn_flush(struct conn *c, int timeout_ms)
{
    for (int waited = 0;; waited += 5) {
        if (atomic_load(&c->published) >= atomic_load(&c->handed))
            return true;
        if (waited >= timeout_ms || !atomic_load(&c->up))
            return false;
        sleep_ms(5);
    }
}

int conn_expect_reply(struct conn *c, const char *topic, const char *correlation)
{
    pthread_mutex_lock(&c->lock);
    snprintf(c->reply_topic, sizeof c->reply_topic, "%s", topic);
    snprintf(c->correlation, sizeof c->correlation, "%s", correlation);
    c->reply[0] = 0;
    pthread_mutex_unlock(&c->lock);
    return mosquitto_subscribe(c->mosq, NULL, topic, 1);
}

bool conn_take_reply(struct conn *c, char *out, size_t outlen)
{
    pthread_mutex_lock(&c->lock);
    bool got = c->reply[0] != 0;
    if (got)
        snprintf(out, outlen, "%s", c->reply);
    pthread_mutex_unlock(&c->lock);
    return got;
}

int conn_subscribe_commands(struct conn *c, const char *vehicle_id)
{
    char topic[128];
    snprintf(topic, sizeof topic, "vehicle/%s/cmd/+", vehicle_id);
    return mosquitto_subscribe(c->mosq, NULL, topic, 1);
}

struct sim_command *conn_take_commands(struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    struct sim_command *list = c->cmds;
    c->cmds = c->cmds_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    return list;
}

int conn_publish_reply(struct conn *c, const char *topic, const char *payload, const char *correlation)
{
    mosquitto_property *props = NULL;
    if (c->params->protocol == 5 && correlation[0])
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation,
                                      (uint16_t)strlen(correlation));
    int rc = mosquitto_publish_v5(c->mosq, NULL, topic, (int)strlen(payload), payload, 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS)
        atomic_fetch_add(&c->handed, 1);
    return rc;
}
