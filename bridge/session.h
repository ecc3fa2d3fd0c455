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
 * forgotten first, and each for sessions.ttl after its issue). A session id is also known when its room holds data (a setup or
 * telemetry seen on the broker, e.g. retained after a bridge restart, or from a
 * monitor that made up its own id), so a restart does not orphan running sessions.
 * Service thread only; the registry of issued ids is this module's own struct. */
#ifndef TB_SESSION_H
#define TB_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_sessions;
struct mqtt_client;
struct mqtt_event;
struct room_registry;
struct session_registry;

#define SESSION_ID_MAX 64

/* The ids this bridge issued; empty until the first is issued. NULL when out of memory. */
struct session_registry *session_registry_new(void);
void session_registry_free(struct session_registry *r);   /* NULL is harmless */

/* Handles the event when it is a session request (answered through 'mqtt', which may be
 * NULL: nothing is published); returns true if it was one. */
bool session_on_mqtt(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                     const struct mqtt_event *ev);

/* Cluster (issue 16; borrowed, NULL = off): only the owner of a request answers it, and
 * every issued id is also published retained on telebridge/sessions/<id>. */
struct cluster;
void session_registry_set_cluster(struct session_registry *r, const struct cluster *cl);
/* A message on telebridge/sessions/<id> (another member issued <id>): remembered, so
 * join_session works here too; an empty one (the entry was cleared) forgets the id; one
 * already past sessions.ttl is cleared (by its owner). Returns false when the topic is
 * not one of those. */
bool session_on_issued(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                       const char *topic, const char *payload, size_t payload_len);
/* Forgets the ids older than sessions.ttl (checked once a second); in a cluster the
 * owner of each also clears its retained entry, so the broker does not keep every id
 * ever issued. An id pushed out by max_sessions is cleared the same way. */
void session_tick(struct session_registry *r, const struct cfg_sessions *cs, struct mqtt_client *mqtt,
                  uint64_t now_wall_ms);
/* Ids currently remembered. */
size_t session_count(const struct session_registry *r);

/* Is 'sid' usable as a session id (1..64 of [A-Za-z0-9_.-])? */
bool session_id_valid(const char *sid);
/* Writes the room of session 'sid' into out; false when it does not fit. */
bool session_room(const struct cfg_sessions *cs, const char *sid, char *out, size_t outlen);
/* Is 'sid' a valid session id, i.e. one this bridge issued? The one place that decides
 * (sessions.validate and session_known ask it); a retained registry shared by several
 * bridges belongs here. */
bool session_issued(const struct session_registry *r, const char *sid);
/* Is 'sid' a session this bridge (or, in a cluster, a member) issued, or one whose room
 * holds data ('rooms' may be NULL: issued ids only)? */
bool session_known(const struct session_registry *r, const struct cfg_sessions *cs,
                   struct room_registry *rooms, const char *sid);
/* The session id of a room name, or NULL when it is not a session room. */
const char *session_of_room(const struct cfg_sessions *cs, const char *room);

/* A random UUID v4 in out (37 bytes with the NUL). */
void session_uuid4(char out[37]);

#endif
