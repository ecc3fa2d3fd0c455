/* session: race sessions. A monitor asks the bridge for a session id over MQTT and
 * dashboards join the session's room by that id.
 *
 * Request (on sessions.request_topic, default "session/request"): any payload; the
 * reply goes to the MQTT 5 Response Topic property when present, else to the JSON
 * payload's "reply_to"; the correlation is the MQTT 5 Correlation Data, else the
 * payload's "correlation". Reply: {"session_id": <new UUID v4>, "correlation": ..,
 * "room": "session:<id>"}, published with QoS 1 (and the correlation data as a
 * property on MQTT 5). Requests without a usable reply topic are logged and dropped.
 *
 * The bridge remembers the ids it issued (up to sessions.max_sessions, oldest
 * forgotten first). A session id is also known when its room holds data (a setup or
 * telemetry seen on the broker, e.g. retained after a bridge restart, or from a
 * monitor that made up its own id), so a restart does not orphan running sessions.
 * Service thread only. */
#ifndef TB_SESSION_H
#define TB_SESSION_H

#include <stdbool.h>
#include <stddef.h>

struct bridge;
struct mqtt_event;

#define SESSION_ID_MAX 64

/* Handles the event when it is a session request; returns true if it was one. */
bool session_on_mqtt(struct bridge *br, const struct mqtt_event *ev);

/* Is 'sid' usable as a session id (1..64 of [A-Za-z0-9_.-])? */
bool session_id_valid(const char *sid);
/* Writes the room of session 'sid' into out; false when it does not fit. */
bool session_room(const struct bridge *br, const char *sid, char *out, size_t outlen);
/* Is 'sid' a session this bridge issued, or one whose room holds data? */
bool session_known(struct bridge *br, const char *sid);
/* The session id of a room name, or NULL when it is not a session room. */
const char *session_of_room(const struct bridge *br, const char *room);

/* A random UUID v4 in out (37 bytes with the NUL). */
void session_uuid4(char out[37]);

/* Frees the registry (at shutdown). */
void session_registry_free(struct bridge *br);

#endif
