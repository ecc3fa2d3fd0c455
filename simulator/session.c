/* session: session id request/response with a local UUID fallback (see session.h). */
#include "session.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <mqtt_protocol.h>

#include "prng.h"

static void random_bytes(uint8_t *b, size_t n)
{
    if (getrandom(b, n, 0) == (ssize_t)n)
        return;
    /* no entropy syscall (very old kernel): the clock mixed by splitmix is still unique enough */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)prng_splitmix64(&x);
}

void session_uuid4(char out[37])
{
    uint8_t b[16];
    random_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static void sleep_10ms(void)
{
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
}

void session_obtain(struct conn *c, int protocol, const char *vehicle_id, int wait_ms,
                    char out[65], bool *from_bridge)
{
    char reply_to[128], corr[33], body[512];
    uint8_t rnd[8];
    random_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 8; i++)
        snprintf(corr + 2 * i, 3, "%02x", rnd[i]);
    snprintf(reply_to, sizeof reply_to, "session/response/%s", c->client_id);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int n = snprintf(body, sizeof body,
                     "{\"client_id\":\"%s\",\"vehicle_id\":\"%s\",\"reply_to\":\"%s\","
                     "\"correlation\":\"%s\",\"ts_ms\":%lld}",
                     c->client_id, vehicle_id, reply_to, corr,
                     (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);

    *from_bridge = false;
    conn_expect_reply(c, reply_to, corr);
    mosquitto_property *props = NULL;
    if (protocol == 5) {
        mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, reply_to);
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
                                      (uint16_t)strlen(corr));
    }
    int rc = mosquitto_publish_v5(c->mosq, NULL, SESSION_REQUEST_TOPIC, n, body, 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS) {
        for (int waited = 0; waited < wait_ms; waited += 10) {
            if (conn_take_reply(c, out, 65)) {
                *from_bridge = true;
                break;
            }
            sleep_10ms();
        }
    }
    mosquitto_unsubscribe(c->mosq, NULL, reply_to);
    if (!*from_bridge)
        session_uuid4(out);
}
