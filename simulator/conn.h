/* conn: one MQTT connection of the simulator (libmosquitto, threaded).
 *
 * Why: telesim spreads its vehicles over one or more connections; each needs the same
 * handling: a last will, connecting with retries and backoff while the broker is down,
 * automatic reconnection later, knowing when the broker (re)accepted us so the vehicles'
 * retained setup/status can be announced again, and counting acknowledgements so a clean
 * exit can wait for its final "offline" messages to be delivered.
 *
 * Threads: the main thread creates, publishes and destroys; libmosquitto's network thread
 * (mosquitto_loop_start) runs the callbacks, which only touch the atomics below and, in
 * session mode, the reply slot under 'lock'. mosquitto_publish is thread-safe. */
#ifndef TELESIM_CONN_H
#define TELESIM_CONN_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

struct sim_command;

struct conn_params {
    const char *host;
    int port;
    const char *username; /* NULL or "" for none */
    const char *password;
    int protocol;         /* 311 or 5 */
};

struct conn {
    struct mosquitto *mosq;
    char client_id[64];
    char will_topic[128];
    const struct conn_params *params; /* borrowed */
    bool loop_started;

    atomic_int up;            /* CONNACK accepted and not yet disconnected */
    atomic_int announce;      /* set on every accepted CONNACK; main clears it */
    atomic_int connack_rc;    /* last CONNACK code (-1: none yet) */
    atomic_uint reconnects;   /* accepted CONNACKs after the first */
    atomic_ullong handed;     /* messages handed to the library */
    atomic_ullong published;  /* ... of which written (QoS 0) or acknowledged (QoS 1/2) */

    /* session replies (session mode only) */
    pthread_mutex_t lock;
    char reply_topic[128];
    char reply[256];          /* session id from the reply, "" until one arrives */
    char correlation[40];
    /* commands for its vehicles (--commands), oldest first, under 'lock' (command.h) */
    struct sim_command *cmds, *cmds_tail;
};

/* Creates the client (not yet connected) with a retained "offline" will on will_topic.
 * 'params' is borrowed and must outlive the conn. Returns NULL on failure (logged). */
struct conn *conn_new(const char *client_id, const char *will_topic,
                      const struct conn_params *params);
/* Disconnects (when connected), stops the network thread and frees. conn_free(NULL) is fine. */
void conn_free(struct conn *c);

/* Connects, retrying with backoff (0.5 s doubling to 5 s) and one clear message per attempt
 * while the broker is unreachable, until connected or *stop becomes true. Then starts the
 * network thread (with SIGINT/SIGTERM blocked, so signals reach the main thread) and
 * waits up to 10 s for the CONNACK. Returns 0, -1 when stopped, or -2
 * when the broker refused us (bad credentials, ...: retrying would not help). */
int conn_connect(struct conn *c, const volatile sig_atomic_t *stop);

/* Publishes; returns a MOSQ_ERR_* code (0 = handed to the library). */
int conn_publish(struct conn *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain);

/* Waits until every message handed over so far was written (QoS 0) or acknowledged
 * (QoS 1/2), or timeout_ms passes, or the connection is down. True when all were. */
bool conn_flush(struct conn *c, int timeout_ms);

/* Subscribes to 'topic' and remembers it as the reply topic for session replies. */
int conn_expect_reply(struct conn *c, const char *topic, const char *correlation);
/* Copies the reply's session id into out (size outlen) once one arrived; returns true then. */
bool conn_take_reply(struct conn *c, char *out, size_t outlen);

/* Subscribes to vehicle/<id>/cmd/+ (after every connect: sessions are clean). */
int conn_subscribe_commands(struct conn *c, const char *vehicle_id);
/* Takes the queued commands (a list, oldest first; the caller frees each). */
struct sim_command *conn_take_commands(struct conn *c);
/* Publishes a command reply (QoS 1); with MQTT 5 the correlation travels as correlation
 * data, with 3.1.1 it is already in the payload. */
int conn_publish_reply(struct conn *c, const char *topic, const char *payload, const char *correlation);

#endif
