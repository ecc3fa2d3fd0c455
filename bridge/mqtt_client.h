/* mqtt_client: the broker connection (libmosquitto) and the hand-off queue.
 *
 * Threads: the module's own MQTT network thread (poll() on the broker socket, never
 * select(), so the socket may be numbered above FD_SETSIZE) runs libmosquitto's I/O and
 * callbacks; they only copy what arrived into a mutex-guarded queue and wake the
 * service thread (the 'wake' function, lws_cancel_service). The service thread drains
 * the whole queue per wake-up. Connection state changes travel through the same queue,
 * so the service thread sees them in order with the messages. The network thread
 * reconnects with backoff (mqtt.reconnect_min .. reconnect_max); on every (re)connect
 * the callback resubscribes the current filter set, and the service thread is told
 * "connected" only when the broker has acknowledged those subscriptions (so /health
 * "connected" means routing).
 * mqtt_client_set_filters() (service thread) diffs the set: new filters are subscribed, dropped ones unsubscribed, unchanged ones untouched.
 *
 * The queue is bounded (bytes); past the bound messages are dropped and counted.
 *
 * The bridge's own status is retained on telebridge/<instance_id>/status (cluster.instance_id,
 * default mqtt.client_id): "online" after every connect, "offline" as the last will and on a
 * clean shutdown (mqtt_client_free); with cluster.name, that name is retained on
 * telebridge/<instance_id>/cluster after every connect. */
#ifndef TB_MQTT_CLIENT_H
#define TB_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum mqtt_event_kind { MQTT_EV_MESSAGE, MQTT_EV_CONNECTED, MQTT_EV_DISCONNECTED };

struct mqtt_event {
    enum mqtt_event_kind kind;
    int rc;                      /* connect / disconnect reason code */
    char *topic;
    char *payload;               /* NUL-terminated copy; payload_len bytes */
    size_t payload_len;
    bool retain;
    char *response_topic;        /* MQTT 5 property, or NULL */
    void *correlation;           /* MQTT 5 property, or NULL */
    size_t correlation_len;
    struct mqtt_event *next;
};

struct mqtt_client;

/* Creates the client from cfg->mqtt, with cfg's route filters; nothing connects yet.
 * 'wake' is called from the MQTT thread when events are queued. */
struct mqtt_client *mqtt_client_new(const struct tb_config *cfg, void (*wake)(void *), void *wake_ud);
/* Starts connecting in the background (the network thread). Call it once the filter sets
 * are complete (the alert runtime's extra filters too), so the first connect subscribes
 * them all, the retained alert state first. 0, or -1 when the thread cannot start. */
int mqtt_client_start(struct mqtt_client *m);
void mqtt_client_free(struct mqtt_client *m);   /* disconnects cleanly, joins the thread */

/* Replaces the subscription set (copies the strings). Service thread. */
int mqtt_client_set_filters(struct mqtt_client *m, char *const *filters, size_t n);
/* A second, independent set (the alert runtime's retained alert topics), subscribed
 * before the other on every connect; a filter in either set stays subscribed. */
int mqtt_client_set_extra_filters(struct mqtt_client *m, char *const *filters, size_t n);

/* A third set, subscribed before both others: the bridge's own topics (the start-up
 * sync marker, cluster membership, forwarded acks, issued session ids). */
int mqtt_client_set_fixed_filters(struct mqtt_client *m, char *const *filters, size_t n);

/* "telebridge/<instance_id>/<what>", malloc'ed (NULL when out of memory). */
char *mqtt_client_own_topic(const char *instance_id, const char *what);

/* Start-up check (blocking, before mqtt_client_new): connects with a client id of its
 * own, reads the retained telebridge/<instance_id>/status and returns 1 when it says
 * "online" (another process runs with this id: starting would take its session over
 * and the two would flap), 0 when not, -1 when it could not tell within timeout_ms
 * (broker unreachable). */
int mqtt_client_probe_online(const struct tb_config *cfg, unsigned timeout_ms);

/* Takes all queued events, oldest first; the caller frees them with mqtt_event_free. */
struct mqtt_event *mqtt_client_drain(struct mqtt_client *m);
void mqtt_event_free(struct mqtt_event *ev);     /* frees one event */

/* Publishes (thread-safe). payload may be NULL with len 0 (clears a retained message).
 * When response_topic is given (MQTT 5), it is sent as a property with correlation data. */
int mqtt_client_publish(struct mqtt_client *m, const char *topic, const void *payload, size_t len,
                        int qos, bool retain);
int mqtt_client_publish_response(struct mqtt_client *m, const char *topic, const void *payload,
                                 size_t len, const void *correlation, size_t correlation_len);
/* A client's publish (uplink_runtime.c). With MQTT 5: "sender" as a user property and,
 * for a request, the response topic with the correlation (as data); with 3.1.1 only the
 * payload carries them (the caller puts them there). Thread-safe. */
struct mqtt_uplink_props {
    const char *sender;            /* NULL = anonymous: no user property */
    const char *response_topic;    /* NULL = no reply wanted */
    const char *correlation;       /* with response_topic */
};
int mqtt_client_publish_uplink(struct mqtt_client *m, const char *topic, const void *payload, size_t len,
                               int qos, bool retain, const struct mqtt_uplink_props *up);

/* Service thread, a few times a second: retries the first connection when the broker was
 * unreachable at start-up (the network thread starts, and reconnects by itself, only once
 * a first attempt got through). */
void mqtt_client_tick(struct mqtt_client *m, uint64_t now_ms);
bool mqtt_client_connected(const struct mqtt_client *m);
uint64_t mqtt_client_dropped(const struct mqtt_client *m);
unsigned mqtt_client_connects(const struct mqtt_client *m);
/* Bytes waiting in the hand-off queue for the service thread (any thread; NULL: 0). */
size_t mqtt_client_queued_bytes(struct mqtt_client *m);

#endif
