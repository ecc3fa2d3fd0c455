/* mqtt_client: libmosquitto wrapper with a bounded hand-off queue to the service thread.
 *
 * Which thread: the bridge's own MQTT network thread (net_main, started once a first
 * connection attempt got through) drives libmosquitto's external-loop API: poll() on the
 * broker socket and on an eventfd ('evfd'), mosquitto_loop_read / _write / _misc, and
 * reconnecting with backoff. It never uses select(): libmosquitto's own loop
 * (mosquitto_loop_start) does, and fails on a socket numbered FD_SETSIZE or more, which a
 * reconnect gets while a thousand WebSocket clients are connected. The callbacks
 * (on_connect, on_disconnect, on_message, on_subscribe, on_publish) run on that thread
 * and touch only the queue (under 'lock'), the filter list (under 'lock' too) and the
 * network thread's own fields. Everything else is called from the service thread; what
 * it queues for the broker (publish, subscribe, DISCONNECT) is written by the network
 * thread, woken through 'evfd'. */
#include "mqtt_client.h"

#include <errno.h>
#include <sys/socket.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "log.h"

#define QUEUE_MAX_BYTES (256u * 1024 * 1024)

struct mqtt_client {
    struct mosquitto *mosq;
    void (*wake)(void *);
    void *wake_ud;
    int qos;
    int protocol;
    pthread_mutex_t lock;
    struct mqtt_event *head, *tail;
    size_t queued_bytes;
    char **filters;              /* current subscription set, under lock */
    size_t n_filters;
    char **extra;                /* extra filters (alert runtime), under lock; subscribed first */
    size_t n_extra;
    char **fixed;                /* the bridge's own topics (sync marker, cluster), before all */
    size_t n_fixed;
    char *cluster_name;          /* retained on telebridge/<id>/cluster when clustering */
    char *cluster_topic;
    char *client_id;
    int suback_wait[3];          /* initial subscriptions not acknowledged yet (network thread) */
    size_t n_suback_wait;
    char *status_topic;          /* telebridge/<instance_id>/status: "online" / will "offline" */
    int acked_mid;               /* atomic: mid of the last PUBACK'ed publish */
    int connected;               /* atomic */
    unsigned connects;           /* atomic */
    uint64_t dropped;            /* atomic */
    bool started;                /* the network thread runs */
    pthread_t thread;            /* the network thread (net_main) */
    int evfd;                    /* eventfd: wakes the network thread (queued output, stop) */
    int stopping;                /* atomic: mqtt_client_free asks the network thread to end */
    bool tls;                    /* TLS configured */
    /* network thread only: */
    bool handshaking;            /* a connection attempt not answered by a CONNACK yet */
    bool broken;                 /* the socket failed without libmosquitto closing it */
    unsigned reconnects;         /* attempts since the last CONNACK (the backoff step) */
    unsigned failed_attempts;    /* failed connection attempts since the last CONNACK (logged) */
    uint64_t handshake_started_ms; /* monotonic start of the current attempt */
    unsigned reconnect_min_ms, reconnect_max_ms;
    /* The broker was unreachable at start-up: the network thread only takes over
     * reconnecting once a first attempt got through (to connecting, at least), so
     * until then mqtt_client_tick retries on the service thread, with backoff. */
    bool never_connected;
    uint64_t retry_at_ms;
    unsigned backoff_ms, backoff_max_ms;
    char *host;
    int port, keepalive;
};

void mqtt_event_free(struct mqtt_event *ev)
{
    if (!ev)
        return;
    free(ev->topic);
    free(ev->payload);
    free(ev->response_topic);
    free(ev->correlation);
    free(ev);
}

static void push_event(struct mqtt_client *m, struct mqtt_event *ev)
{
    size_t sz = ev->payload_len + (ev->topic ? strlen(ev->topic) : 0) + sizeof *ev;
    pthread_mutex_lock(&m->lock);
    if (ev->kind == MQTT_EV_MESSAGE && m->queued_bytes + sz > QUEUE_MAX_BYTES) {
        pthread_mutex_unlock(&m->lock);
        __atomic_add_fetch(&m->dropped, 1, __ATOMIC_RELAXED);
        if (log_ratelimit_allow("mqtt-queue-full", 10000))
            LOG_WARN("mqtt", "hand-off queue full (%u MiB): dropping messages", QUEUE_MAX_BYTES >> 20);
        mqtt_event_free(ev);
        return;
    }
    m->queued_bytes += sz;
    bool was_empty = !m->head;
    if (m->tail)
        m->tail->next = ev;
    else
        m->head = ev;
    m->tail = ev;
    pthread_mutex_unlock(&m->lock);
    /* One wake-up per batch: the service thread drains the whole queue, and looks again
     * after each batch it processes, so events added to a non-empty queue are not missed. */
    if (was_empty)
        m->wake(m->wake_ud);
}

struct mqtt_event *mqtt_client_drain(struct mqtt_client *m)
{
    pthread_mutex_lock(&m->lock);
    struct mqtt_event *list = m->head;
    m->head = m->tail = NULL;
    m->queued_bytes = 0;
    pthread_mutex_unlock(&m->lock);
    return list;
}

/* Subscribes a set; the message id is remembered so the connection is reported up
 * only once the broker has acknowledged every initial subscription (network thread). */
static void subscribe_set(struct mqtt_client *m, char **set, size_t n)
{
    if (!n)
        return;
    int mid = 0;
    int rc = mosquitto_subscribe_multiple(m->mosq, &mid, (int)n, set, m->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        LOG_ERROR("mqtt", "subscribe failed: %s", mosquitto_strerror(rc));
        return;
    }
    if (m->n_suback_wait < sizeof m->suback_wait / sizeof m->suback_wait[0])
        m->suback_wait[m->n_suback_wait++] = mid;
    for (size_t i = 0; i < n; i++)
        LOG_DEBUG("mqtt", "subscribing %s (qos %d)", set[i], m->qos);
}

static void push_state(struct mqtt_client *m, enum mqtt_event_kind kind, int rc)
{
    struct mqtt_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return;
    ev->kind = kind;
    ev->rc = rc;
    push_event(m, ev);
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    (void)mosq; (void)props;
    struct mqtt_client *m = ud;
    for (int i = 0; i < n; i++)
        if (granted[i] >= 0x80)
            LOG_ERROR("mqtt", "the broker refused a subscription (reason 0x%02x)", granted[i]);
    size_t k = 0;
    while (k < m->n_suback_wait && m->suback_wait[k] != mid)
        k++;
    if (k == m->n_suback_wait)
        return; /* a later subscription (reload): nothing waits for it */
    m->suback_wait[k] = m->suback_wait[--m->n_suback_wait];
    if (!m->n_suback_wait)
        push_state(m, MQTT_EV_CONNECTED, 0);
}

/* The fixed and extra filters go first: the broker then sends their retained messages
 * (the alert state to restore) before any telemetry of the route filters. 'connected' is
 * set under the same lock: a filter set replaced meanwhile (replace_set reads 'connected'
 * under it) is either subscribed here or there, never twice (a second SUBSCRIBE would
 * make the broker send the retained messages again). */
static void subscribe_all(struct mqtt_client *m)
{
    pthread_mutex_lock(&m->lock);
    subscribe_set(m, m->fixed, m->n_fixed);
    subscribe_set(m, m->extra, m->n_extra);
    subscribe_set(m, m->filters, m->n_filters);
    __atomic_store_n(&m->connected, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&m->lock);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags, const mosquitto_property *props)
{
    (void)mosq; (void)flags; (void)props;
    struct mqtt_client *m = ud;
    m->handshaking = false;
    if (rc != 0) {
        push_state(m, MQTT_EV_DISCONNECTED, rc);
        return;
    }
    m->reconnects = 0;   /* the backoff starts again from reconnect_min */
    if (m->failed_attempts)
        LOG_INFO("mqtt", "connected to %s:%d after %u failed attempt(s)", m->host, m->port, m->failed_attempts);
    m->failed_attempts = 0;
    __atomic_add_fetch(&m->connects, 1, __ATOMIC_RELAXED);
    mosquitto_publish(m->mosq, NULL, m->status_topic, 6, "online", 1, true);
    if (m->cluster_topic)
        mosquitto_publish(m->mosq, NULL, m->cluster_topic, (int)strlen(m->cluster_name), m->cluster_name, 1, true);
    m->n_suback_wait = 0;
    subscribe_all(m);
    /* Reported up once subscribed: from then on, what is published gets routed. */
    if (!m->n_suback_wait)
        push_state(m, MQTT_EV_CONNECTED, 0);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
    (void)mosq; (void)props;
    struct mqtt_client *m = ud;
    __atomic_store_n(&m->connected, 0, __ATOMIC_RELEASE);
    if (rc == MQTT_RC_SESSION_TAKEN_OVER && log_ratelimit_allow("mqtt-taken-over", 10000))
        LOG_ERROR("mqtt", "the broker closed our connection because another client connected with "
                  "client_id '%s' (session taken over): two processes share mqtt.client_id; "
                  "give each its own", m->client_id ? m->client_id : "");
    struct mqtt_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return;
    ev->kind = MQTT_EV_DISCONNECTED;
    ev->rc = rc;
    push_event(m, ev);
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    struct mqtt_client *m = ud;
    struct mqtt_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        goto fail;
    ev->kind = MQTT_EV_MESSAGE;
    ev->topic = strdup(msg->topic);
    ev->payload = malloc((size_t)msg->payloadlen + 1);
    if (!ev->topic || !ev->payload)
        goto fail;
    if (msg->payloadlen)    /* an empty message (a cleared retained topic) has payload NULL */
        memcpy(ev->payload, msg->payload, (size_t)msg->payloadlen);
    ev->payload[msg->payloadlen] = '\0';
    ev->payload_len = (size_t)msg->payloadlen;
    ev->retain = msg->retain;
    char *rt = NULL;
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false))
        ev->response_topic = rt;
    void *cd = NULL;
    uint16_t cdlen = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false)) {
        ev->correlation = cd;
        ev->correlation_len = cdlen;
    }
    push_event(m, ev);
    return;
fail:
    mqtt_event_free(ev);
    __atomic_add_fetch(&m->dropped, 1, __ATOMIC_RELAXED);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int rc, const mosquitto_property *props)
{
    (void)mosq; (void)rc; (void)props;
    struct mqtt_client *m = ud;
    __atomic_store_n(&m->acked_mid, mid, __ATOMIC_RELEASE);
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *str)
{
    (void)mosq; (void)ud;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        LOG_WARN("mqtt", "%s", str);
    else
        LOG_DEBUG("mqtt", "%s", str);
}

/* Protocol, credentials and TLS of cfg->mqtt on mosq (the client, or the start-up probe). */
static int configure_conn(struct mosquitto *mosq, const struct cfg_mqtt *c, bool *tls)
{
    int rc = MOSQ_ERR_SUCCESS;
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         c->protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (c->username && (rc = mosquitto_username_pw_set(mosq, c->username, c->password)))
        return rc;
    if (c->tls_ca || c->tls_cert) {
        rc = mosquitto_tls_set(mosq, c->tls_ca, NULL, c->tls_cert, c->tls_key, NULL);
        if (rc)
            return rc;
        if (c->tls_insecure)
            mosquitto_tls_insecure_set(mosq, true);
        *tls = true;
    }
    return MOSQ_ERR_SUCCESS;
}

static int configure(struct mqtt_client *m, const struct tb_config *cfg)
{
    int rc = configure_conn(m->mosq, &cfg->mqtt, &m->tls);
    if (rc)
        return rc;
    /* Reconnecting is net_main's (reconnect_delay), not libmosquitto's: its
     * mosquitto_reconnect_delay_set only serves its own loop. */
    /* The bridge's own status: the broker publishes "offline" (retained) if we vanish. */
    return mosquitto_will_set(m->mosq, m->status_topic, 7, "offline", 1, true);
}

/* Wakes the network thread: output was queued (libmosquitto only queues it, the client
 * being in threaded mode), or mqtt_client_free wants it to end. Any thread. */
static void net_wake(struct mqtt_client *m)
{
    uint64_t one = 1;
    if (m->evfd >= 0 && write(m->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        LOG_WARN("mqtt", "cannot wake the network thread: %s", strerror(errno));
}

/* The wait before the next reconnect attempt: libmosquitto's "exponential" backoff that
 * mosquitto_loop_start used (reconnect_min x (n + 1)^2, at most reconnect_max, n counting
 * the attempts since the last CONNACK), in milliseconds instead of whole seconds. */
static uint64_t reconnect_delay(struct mqtt_client *m)
{
    uint64_t min = m->reconnect_min_ms, max = m->reconnect_max_ms;
    if (max <= min)
        return min;
    uint64_t n = m->reconnects + 1, d = min * n * n;
    if (d > max)
        return max;
    m->reconnects++;
    return d;
}

/* A connection attempt that will not complete: the socket reported an error or hang-up
 * before the CONNACK, or the handshake took too long. libmosquitto notices a refused TCP
 * connect on its own, but a TLS one only by the keepalive timer (~30 s) while poll()
 * keeps reporting the error (a busy loop): so the network thread ends the attempt here,
 * logs it, and the usual backoff schedules the next one. */
#define HANDSHAKE_TIMEOUT_MS 10000

static void attempt_failed(struct mqtt_client *m, const char *why)
{
    m->broken = true;
    m->handshaking = false;
    __atomic_store_n(&m->connected, 0, __ATOMIC_RELEASE);
    m->failed_attempts++;
    if (log_ratelimit_allow("mqtt-connect-failed", 30000))
        LOG_WARN("mqtt", "connecting to %s:%d failed: %s (attempt %u; retrying with backoff up to %u ms)",
                 m->host, m->port, why, m->failed_attempts, m->reconnect_max_ms);
    push_state(m, MQTT_EV_DISCONNECTED, MOSQ_ERR_CONN_LOST);
}

static bool attempt_broken(struct mqtt_client *m, short revents, uint64_t now)
{
    if (!m->handshaking || m->broken)
        return false;
    if (revents & (POLLERR | POLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(mosquitto_socket(m->mosq), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        attempt_failed(m, err ? strerror(err) : "connection refused or closed before the handshake");
        return true;
    }
    if (m->handshake_started_ms && now - m->handshake_started_ms > HANDSHAKE_TIMEOUT_MS) {
        attempt_failed(m, "no CONNACK within 10 s");
        return true;
    }
    return false;
}

/* One read / write on the broker socket as poll() reported it. libmosquitto closes the
 * socket and calls on_disconnect itself when a read or write fails; a failed TLS
 * handshake it leaves open, so that is reported here and the socket replaced on the
 * next attempt. */
static void net_io(struct mqtt_client *m, short revents)
{
    if (attempt_broken(m, revents, tb_now_ms()))
        return;
    int rc = MOSQ_ERR_SUCCESS;
    /* During a TLS handshake, mosquitto_loop_read is what advances it (whichever way
     * OpenSSL waits); packet writes wait for it. */
    if ((revents & (POLLIN | POLLHUP | POLLERR)) || (m->tls && m->handshaking))
        rc = mosquitto_loop_read(m->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(m->mosq) >= 0 && mosquitto_want_write(m->mosq) &&
        ((revents & POLLOUT) || __atomic_load_n(&m->connected, __ATOMIC_ACQUIRE)))
        rc = mosquitto_loop_write(m->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS && mosquitto_socket(m->mosq) >= 0 && !m->broken) {
        LOG_WARN("mqtt", "connection failed: %s", mosquitto_strerror(rc));
        m->broken = true;
        __atomic_store_n(&m->connected, 0, __ATOMIC_RELEASE);
        push_state(m, MQTT_EV_DISCONNECTED, rc);
    }
}

/* A connection attempt that failed at once: counted (logged with the CONNACK) and logged,
 * at most one line every 30 s. 'max_ms' is the backoff bound that applies. */
static void connect_failed(struct mqtt_client *m, int rc, unsigned max_ms)
{
    m->failed_attempts++;
    if (log_ratelimit_allow("mqtt-connect-failed", 30000))
        LOG_WARN("mqtt", "connecting to %s:%d failed: %s (attempt %u; retrying with backoff up to %u ms)",
                 m->host, m->port, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
                 m->failed_attempts, max_ms);
}

/* The network thread. Writes go out as soon as they are queued: on a wake-up, once
 * connected, without waiting for poll() to report the socket writable (as libmosquitto's
 * loop did); before the CONNACK only on POLLOUT (the TCP connect may still be under way). */
static void *net_main(void *arg)
{
    struct mqtt_client *m = arg;
    uint64_t next_misc = 0, reconnect_at = 0, stop_by = 0;
    for (;;) {
        uint64_t now = tb_now_ms();
        int sock = mosquitto_socket(m->mosq);
        if (__atomic_load_n(&m->stopping, __ATOMIC_ACQUIRE)) {
            /* Send what mqtt_client_free queued (the DISCONNECT; writing it closes the
             * socket), for 2 s at most. */
            if (!stop_by)
                stop_by = now + 2000;
            if (sock < 0 || m->broken || !mosquitto_want_write(m->mosq) || now >= stop_by)
                break;
        } else if (sock < 0 || m->broken) {
            if (!reconnect_at)
                reconnect_at = now + reconnect_delay(m);
            if (now >= reconnect_at) {
                reconnect_at = 0;
                m->broken = false;
                m->handshaking = true;
                m->handshake_started_ms = now;
                int rc = mosquitto_reconnect_async(m->mosq);  /* closes a broken socket first */
                if (rc != MOSQ_ERR_SUCCESS)
                    connect_failed(m, rc, m->reconnect_max_ms);
                continue;
            }
            sock = -1;
        }
        struct pollfd pfd[2] = { { .fd = m->evfd, .events = POLLIN }, { .fd = sock, .events = POLLIN } };
        if (sock >= 0 && mosquitto_want_write(m->mosq))
            pfd[1].events |= POLLOUT;
        uint64_t until = now + 1000;   /* mosquitto_loop_misc at least once a second */
        if (sock >= 0 && next_misc && next_misc < until)
            until = next_misc;
        if (reconnect_at && reconnect_at < until)
            until = reconnect_at;
        if (stop_by && stop_by < until)
            until = stop_by;
        int n = poll(pfd, sock >= 0 ? 2 : 1, until > now ? (int)(until - now) : 0);
        if (n < 0 && errno != EINTR) {
            LOG_ERROR("mqtt", "poll: %s", strerror(errno));
            usleep(100000);
            continue;
        }
        bool woken = false;
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            woken = read(m->evfd, &v, sizeof v) == sizeof v;
        }
        if (sock >= 0 && (pfd[1].revents || woken))
            net_io(m, n > 0 ? pfd[1].revents : 0);
        now = tb_now_ms();
        if (mosquitto_socket(m->mosq) >= 0)
            attempt_broken(m, 0, now);      /* the handshake deadline */
        if (mosquitto_socket(m->mosq) >= 0 && !m->broken && now >= next_misc) {
            /* keepalive: PINGREQ, or on_disconnect when the broker stopped answering */
            mosquitto_loop_misc(m->mosq);
            next_misc = now + 1000;
        }
    }
    return NULL;
}

static int start_thread(struct mqtt_client *m)
{
    m->handshaking = true;
    m->handshake_started_ms = tb_now_ms();
    int rc = pthread_create(&m->thread, NULL, net_main, m);
    if (rc != 0) {
        LOG_ERROR("mqtt", "cannot start network thread: %s", strerror(rc));
        return -1;
    }
    pthread_setname_np(m->thread, "tb-mqtt");
    m->started = true;
    return 0;
}

/* The next first-connect attempt after the current backoff, which doubles up to
 * mqtt.reconnect_max. */
static void schedule_retry(struct mqtt_client *m)
{
    m->retry_at_ms = tb_now_ms() + m->backoff_ms;
    m->backoff_ms = m->backoff_ms * 2 > m->backoff_max_ms ? m->backoff_max_ms : m->backoff_ms * 2;
}

void mqtt_client_tick(struct mqtt_client *m, uint64_t now_ms)
{
    if (!m || !m->never_connected || now_ms < m->retry_at_ms)
        return;
    int rc = mosquitto_connect_bind_async(m->mosq, m->host, m->port, m->keepalive, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        connect_failed(m, rc, m->backoff_max_ms);
        schedule_retry(m);
        return;
    }
    m->never_connected = false;
    if (start_thread(m) != 0)
        LOG_ERROR("mqtt", "the bridge stays up without a broker connection");
}

struct mqtt_client *mqtt_client_new(const struct tb_config *cfg, void (*wake)(void *), void *wake_ud)
{
    struct mqtt_client *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->evfd = -1;
    pthread_mutex_init(&m->lock, NULL);
    m->wake = wake;
    m->wake_ud = wake_ud;
    m->qos = cfg->mqtt.qos;
    m->protocol = cfg->mqtt.protocol;
    m->backoff_ms = (unsigned)cfg->mqtt.reconnect_min_ms;
    m->backoff_max_ms = (unsigned)cfg->mqtt.reconnect_max_ms;
    m->reconnect_min_ms = (unsigned)cfg->mqtt.reconnect_min_ms;
    m->reconnect_max_ms = (unsigned)cfg->mqtt.reconnect_max_ms;
    m->host = strdup(cfg->mqtt.host);
    m->port = cfg->mqtt.port;
    m->keepalive = cfg->mqtt.keepalive;
    mosquitto_lib_init();
    m->mosq = mosquitto_new(cfg->mqtt.client_id, cfg->mqtt.clean_session, m);
    const char *iid = cfg->cluster.instance_id ? cfg->cluster.instance_id : cfg->mqtt.client_id;
    m->status_topic = mqtt_client_own_topic(iid, "status");
    m->client_id = strdup(cfg->mqtt.client_id ? cfg->mqtt.client_id : "");
    if (cfg->cluster.name) {
        m->cluster_name = strdup(cfg->cluster.name);
        m->cluster_topic = mqtt_client_own_topic(iid, "cluster");
    }
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!m->mosq || !m->status_topic || !m->client_id || !m->host || m->evfd < 0 ||
        (cfg->cluster.name && (!m->cluster_name || !m->cluster_topic))) {
        LOG_ERROR("mqtt", "cannot create client: %s", strerror(errno));
        goto fail;
    }
    /* Our own network thread writes: libmosquitto must only queue from other threads. */
    mosquitto_threaded_set(m->mosq, true);
    int rc = configure(m, cfg);
    if (rc) {
        LOG_ERROR("mqtt", "configuration: %s", mosquitto_strerror(rc));
        goto fail;
    }
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
    mosquitto_subscribe_v5_callback_set(m->mosq, on_subscribe);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_log_callback_set(m->mosq, on_log);
    if (mqtt_client_set_filters(m, cfg->filters, cfg->n_filters))
        goto fail;
    LOG_INFO("mqtt", "connecting to %s:%d as %s (MQTT %s, qos %d)", cfg->mqtt.host, cfg->mqtt.port,
             cfg->mqtt.client_id, cfg->mqtt.protocol == 5 ? "5" : "3.1.1", cfg->mqtt.qos);
    return m;
fail:
    mqtt_client_free(m);
    return NULL;
}

int mqtt_client_start(struct mqtt_client *m)
{
    int rc = mosquitto_connect_bind_async(m->mosq, m->host, m->port, m->keepalive, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        m->failed_attempts++;
        LOG_WARN("mqtt", "connect to %s:%d: %s (retrying in the background)", m->host, m->port,
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        m->never_connected = true;
        schedule_retry(m);
        return 0;
    }
    return start_thread(m);
}

static void free_filters(char **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i]);
    free(f);
}

/* A clean DISCONNECT discards the will, so say "offline" ourselves and wait (briefly)
 * for the broker to have it before disconnecting. */
static void publish_offline(struct mqtt_client *m)
{
    int mid = 0;
    if (!m->started || !mqtt_client_connected(m) ||
        mosquitto_publish(m->mosq, &mid, m->status_topic, 7, "offline", 1, true) != MOSQ_ERR_SUCCESS)
        return;
    net_wake(m);
    for (int i = 0; i < 200 && __atomic_load_n(&m->acked_mid, __ATOMIC_ACQUIRE) != mid; i++)
        usleep(5000);
}

void mqtt_client_free(struct mqtt_client *m)
{
    if (!m)
        return;
    if (m->mosq) {
        publish_offline(m);
        mosquitto_disconnect(m->mosq);
        if (m->started) {
            __atomic_store_n(&m->stopping, 1, __ATOMIC_RELEASE);
            net_wake(m);
            pthread_join(m->thread, NULL);
        }
        mosquitto_destroy(m->mosq);
    }
    if (m->evfd >= 0)
        close(m->evfd);
    struct mqtt_event *ev = mqtt_client_drain(m);
    while (ev) {
        struct mqtt_event *next = ev->next;
        mqtt_event_free(ev);
        ev = next;
    }
    free_filters(m->filters, m->n_filters);
    free_filters(m->extra, m->n_extra);
    free_filters(m->fixed, m->n_fixed);
    free(m->status_topic);
    free(m->cluster_topic);
    free(m->cluster_name);
    free(m->client_id);
    free(m->host);
    pthread_mutex_destroy(&m->lock);
    mosquitto_lib_cleanup();
    free(m);
}

static bool contains(char *const *set, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], s) == 0)
            return true;
    return false;
}

/* Is s wanted by a filter set other than 'set'? (Under lock or on the service thread.) */
static bool wanted_elsewhere(const struct mqtt_client *m, char ***set, const char *s)
{
    return (set != &m->filters && contains(m->filters, m->n_filters, s)) ||
           (set != &m->extra && contains(m->extra, m->n_extra, s)) ||
           (set != &m->fixed && contains(m->fixed, m->n_fixed, s));
}

/* Replaces one of the three filter sets (*set: the route filters, the extra ones or the
 * fixed ones) and, when connected, subscribes what is new and unsubscribes what no set
 * wants now. */
static int replace_set(struct mqtt_client *m, char ***set, size_t *n_set, char *const *filters,
                       size_t n)
{
    char **copy = calloc(n ? n : 1, sizeof *copy);
    if (!copy)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(copy[i] = strdup(filters[i]))) {
            free_filters(copy, i);
            return -1;
        }
    pthread_mutex_lock(&m->lock);
    char **old = *set;
    size_t n_old = *n_set;
    *set = copy;
    *n_set = n;
    bool online = __atomic_load_n(&m->connected, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; online && i < n; i++)
        if (!contains(old, n_old, copy[i]) && !wanted_elsewhere(m, set, copy[i])) {
            int rc = mosquitto_subscribe(m->mosq, NULL, copy[i], m->qos);
            if (rc == MOSQ_ERR_SUCCESS)
                LOG_INFO("mqtt", "subscribe %s", copy[i]);
            else
                LOG_WARN("mqtt", "subscribe %s failed: %s", copy[i], mosquitto_strerror(rc));
        }
    for (size_t i = 0; online && i < n_old; i++)
        if (!contains(copy, n, old[i]) && !wanted_elsewhere(m, set, old[i])) {
            int rc = mosquitto_unsubscribe(m->mosq, NULL, old[i]);
            if (rc == MOSQ_ERR_SUCCESS)
                LOG_INFO("mqtt", "unsubscribe %s", old[i]);
            else
                LOG_WARN("mqtt", "unsubscribe %s failed: %s", old[i], mosquitto_strerror(rc));
        }
    if (online)
        net_wake(m);
    free_filters(old, n_old);
    return 0;
}

int mqtt_client_set_filters(struct mqtt_client *m, char *const *filters, size_t n)
{
    return replace_set(m, &m->filters, &m->n_filters, filters, n);
}

int mqtt_client_set_extra_filters(struct mqtt_client *m, char *const *filters, size_t n)
{
    return replace_set(m, &m->extra, &m->n_extra, filters, n);
}

int mqtt_client_set_fixed_filters(struct mqtt_client *m, char *const *filters, size_t n)
{
    return replace_set(m, &m->fixed, &m->n_fixed, filters, n);
}

char *mqtt_client_own_topic(const char *instance_id, const char *what)
{
    size_t len = strlen(instance_id) + strlen(what) + sizeof "telebridge//";
    char *t = malloc(len);
    if (t)
        snprintf(t, len, "telebridge/%s/%s", instance_id, what);
    return t;
}

/* ---- start-up probe: is our instance id online elsewhere? ---------------------------- */

struct probe {
    const char *status_topic, *marker_topic;
    int online;      /* the retained status said "online" */
    bool done;       /* our marker came back: the retained status (if any) came before */
    bool failed;
};

static void probe_connect(struct mosquitto *mosq, void *ud, int rc)
{
    struct probe *p = ud;
    if (rc != 0) {
        p->failed = true;
        return;
    }
    char *topics[2] = {(char *)p->status_topic, (char *)p->marker_topic};
    if (mosquitto_subscribe_multiple(mosq, NULL, 2, topics, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
        p->failed = true;
}

/* Mosquitto sends the retained messages of a subscription right after its SUBACK, so a
 * marker published now comes back after them. */
static void probe_subscribed(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted)
{
    (void)mid; (void)n; (void)granted;
    struct probe *p = ud;
    if (mosquitto_publish(mosq, NULL, p->marker_topic, 5, "probe", 1, false) != MOSQ_ERR_SUCCESS)
        p->failed = true;
}

static void probe_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
    (void)mosq;
    struct probe *p = ud;
    if (strcmp(msg->topic, p->marker_topic) == 0)
        p->done = true;
    else if (strcmp(msg->topic, p->status_topic) == 0 && msg->retain)
        p->online = msg->payloadlen == 6 && memcmp(msg->payload, "online", 6) == 0;
}

int mqtt_client_probe_online(const struct tb_config *cfg, unsigned timeout_ms)
{
    const char *iid = cfg->cluster.instance_id ? cfg->cluster.instance_id : cfg->mqtt.client_id;
    char id[256];
    snprintf(id, sizeof id, "%.200s-probe-%ld", cfg->mqtt.client_id ? cfg->mqtt.client_id : "tb",
             (long)getpid());
    struct probe p = {0};
    char *status = mqtt_client_own_topic(iid, "status"), *marker = mqtt_client_own_topic(iid, "probe");
    mosquitto_lib_init();
    struct mosquitto *mosq = status && marker ? mosquitto_new(id, true, &p) : NULL;
    int result = -1;
    bool tls = false;
    p.status_topic = status;
    p.marker_topic = marker;
    if (mosq && configure_conn(mosq, &cfg->mqtt, &tls) == MOSQ_ERR_SUCCESS) {
        mosquitto_connect_callback_set(mosq, probe_connect);
        mosquitto_subscribe_callback_set(mosq, probe_subscribed);
        mosquitto_message_callback_set(mosq, probe_message);
        /* non-blocking connect: an unreachable host costs timeout_ms, not a TCP timeout */
        if (mosquitto_connect_async(mosq, cfg->mqtt.host, cfg->mqtt.port, cfg->mqtt.keepalive) == MOSQ_ERR_SUCCESS) {
            uint64_t end = tb_now_ms() + timeout_ms;
            while (!p.done && !p.failed && tb_now_ms() < end)
                if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS)
                    p.failed = true;
            if (p.done)
                result = p.online;
            mosquitto_disconnect(mosq);
        }
    }
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(status);
    free(marker);
    return result;
}

int mqtt_client_publish(struct mqtt_client *m, const char *topic, const void *payload, size_t len,
                        int qos, bool retain)
{
    int rc = mosquitto_publish(m->mosq, NULL, topic, (int)len, payload, qos, retain);
    if (rc == MOSQ_ERR_SUCCESS)
        net_wake(m);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
        LOG_WARN("mqtt", "publish %s: %s", topic, mosquitto_strerror(rc));
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

int mqtt_client_publish_response(struct mqtt_client *m, const char *topic, const void *payload,
                                 size_t len, const void *correlation, size_t correlation_len)
{
    mosquitto_property *props = NULL;
    if (correlation && m->protocol == 5)
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation,
                                      (uint16_t)correlation_len);
    int rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)len, payload, 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS)
        net_wake(m);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

int mqtt_client_publish_uplink(struct mqtt_client *m, const char *topic, const void *payload, size_t len,
                               int qos, bool retain, const struct mqtt_uplink_props *up)
{
    mosquitto_property *props = NULL;
    if (m->protocol == 5) {
        if (up->sender)
            mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "sender", up->sender);
        if (up->response_topic) {
            mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, up->response_topic);
            mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, up->correlation,
                                          (uint16_t)strlen(up->correlation));
        }
    }
    int rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)len, payload, qos, retain, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS)
        net_wake(m);
    else if (rc != MOSQ_ERR_NO_CONN)
        LOG_WARN("mqtt", "publish %s: %s", topic, mosquitto_strerror(rc));
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

bool mqtt_client_connected(const struct mqtt_client *m) { return __atomic_load_n(&m->connected, __ATOMIC_ACQUIRE); }
size_t mqtt_client_queued_bytes(struct mqtt_client *m)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->lock);
    size_t n = m->queued_bytes;
    pthread_mutex_unlock(&m->lock);
    return n;
}

uint64_t mqtt_client_dropped(const struct mqtt_client *m) { return __atomic_load_n(&m->dropped, __ATOMIC_RELAXED); }
unsigned mqtt_client_connects(const struct mqtt_client *m) { return __atomic_load_n(&m->connects, __ATOMIC_RELAXED); }
