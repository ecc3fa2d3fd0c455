/* http_api: the JSON bodies of the bridge's HTTP endpoints. Service thread.
 *   /health           status, broker state, connections per endpoint, counters, uptime
 *   /ws/status        the same as /health (name kept from the replaced systems)
 *   /ws/connections   connections total and per endpoint
 *   /health/live      200 {"status":"alive"} while the service loop answers
 *   /health/ready     200 {"status":"ready"}, or 503 {"status":"not_ready","reasons":[...]}
 *                     while the broker is disconnected, the last reload failed or the
 *                     bridge is stopping
 *   /metrics          counters and gauges in Prometheus text format (labels per endpoint
 *                     and reason, build_info, process_*) */
#ifndef TB_HTTP_API_H
#define TB_HTTP_API_H

#include <stdbool.h>

#include "sbuf.h"

struct addr_table;
struct bridge;
struct reload;

/* What the bodies report on. */
struct http_api_src {
    const struct bridge *br;
    const struct reload *rl;        /* may be NULL */
    const char *event_loop;         /* "libev" or "poll" */
    const struct addr_table *addrs; /* limits per address (ws_server); may be NULL */
    bool restricted;                /* an auth section and no admin credential: /health is
                                       the status only, /ws/connections and /metrics 403 */
};

/* Builds the body for 'path' into out and sets *content_type; returns the HTTP status
 * (200, or 503 for /health/ready when not ready), or 0 when the path is not an API path. */
int http_api_render(const struct http_api_src *src, const char *path, struct sbuf *out,
                    const char **content_type);

#endif
