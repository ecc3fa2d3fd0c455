/* http_api: the JSON bodies of the bridge's HTTP endpoints. Service thread.
 *   /health           status, broker state, connections per endpoint, counters, uptime
 *   /ws/status        the same as /health (name kept from the replaced systems)
 *   /ws/connections   connections total and per endpoint
 *   /metrics          the counters in Prometheus text format */
#ifndef TB_HTTP_API_H
#define TB_HTTP_API_H

#include <stdbool.h>

#include "sbuf.h"

struct bridge;
struct reload;

/* What the bodies report on. */
struct http_api_src {
    const struct bridge *br;
    const struct reload *rl;        /* may be NULL */
    const char *event_loop;         /* "libev" or "poll" */
    bool restricted;                /* an auth section and no admin credential: /health is
                                       the status only, /ws/connections and /metrics 403 */
};

/* Builds the body for 'path' into out and sets *content_type; returns the HTTP status
 * (200), or 0 when the path is not an API path. */
int http_api_render(const struct http_api_src *src, const char *path, struct sbuf *out,
                    const char **content_type);

#endif
