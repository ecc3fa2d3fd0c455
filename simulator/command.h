/* command: the commands a simulated vehicle answers (issue 17's round trip).
 *
 * With --commands, every vehicle subscribes vehicle/<id>/cmd/+ . A command message is the
 * bridge's publish of a client's "data" ({"command":"ping","args":{..},"sender":"alice"});
 * the reply goes to the MQTT 5 response topic with the same correlation data, or, over
 * MQTT 3.1.1, to the payload's "reply_to" with its "correlation" copied into the reply.
 * Answered commands: ping, horn, set_rate {"rate": r} (0 < r <= the run's --rate: the
 * vehicle publishes every round(--rate / r)-th tick) and request_diagnostics (the current
 * telemetry snapshot plus anomaly state). Anything else gets {"ok":false,"error":..}.
 *
 * Threads: command_parse runs on a connection's network thread and only allocates;
 * command_answer runs on the main thread, which owns the vehicles. */
#ifndef TELESIM_COMMAND_H
#define TELESIM_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "vehicle_model.h"

struct sim_command {
    char vehicle[48];
    char name[64];
    char reply_to[256];        /* "" = nobody waits for an answer */
    char correlation[128];
    char sender[136];          /* as the bridge stamped it; "" if none */
    char *args;                /* JSON text of "args", or NULL */
    struct sim_command *next;
};

/* A command for topic vehicle/<id>/cmd/<name>, or NULL (not a command, or out of memory).
 * response_topic / corr: the MQTT 5 properties, or NULL. */
struct sim_command *command_parse(const char *topic, const void *payload, size_t len,
                                  const char *response_topic, const void *corr, size_t corr_len);
void command_free(struct sim_command *c);

/* The reply's JSON text (malloc'd) for vehicle v; 'every' is the vehicle's publish divider
 * (set_rate changes it); 'rate' is the run's --rate. NULL when out of memory. */
char *command_answer(const struct sim_command *c, const struct vehicle *v, double rate,
                     uint64_t wall_ms, uint32_t *every);

#endif
