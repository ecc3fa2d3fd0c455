/* session: how a race-session monitor obtains its session id.
 *
 * Why: in the race dashboard system a monitor asks for a session id and gets a UUID back.
 * telesim asks the bridge over MQTT (request/response), and when nobody answers within
 * the wait it makes up a random UUID v4 itself, so it works with or without a bridge.
 *
 * Request: publish to "session/request" (QoS 1) the JSON
 *   {"client_id", "vehicle_id", "reply_to", "correlation", "ts_ms"}
 * and, on MQTT 5, the same reply topic and correlation as the Response Topic and
 * Correlation Data properties. The answer on reply_to is {"session_id": "...",
 * "correlation": "..."} (or MQTT 5 correlation data), or the bare id.
 * Main thread; the reply arrives on the conn's network thread (see conn.h). */
#ifndef TELESIM_SESSION_H
#define TELESIM_SESSION_H

#include <stdbool.h>

#include "conn.h"

#define SESSION_REQUEST_TOPIC "session/request"

/* A random UUID v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") from the kernel's generator. */
void session_uuid4(char out[37]);

/* Asks for a session id, waiting up to wait_ms; falls back to session_uuid4().
 * Sets *from_bridge to whether the id came from a reply. out must hold 65 bytes. */
void session_obtain(struct conn *c, int protocol, const char *vehicle_id, int wait_ms,
                    char out[65], bool *from_bridge);

#endif
