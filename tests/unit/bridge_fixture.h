/* bridge_fixture: helpers for unit tests that run a whole bridge without sockets.
 *
 * A bridge is built from YAML text with bridge_new; connections are opened with
 * bridge_open(br, NULL, path), so nothing is ever written: every frame stays in the
 * connection's queue, and the tests read it back (frame i, parsed, checked). Included
 * by test_fanout.c and test_resume.c; everything is static inline, so a test file uses
 * what it needs. Single thread. */
#ifndef TB_TEST_BRIDGE_FIXTURE_H
#define TB_TEST_BRIDGE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "bridge.h"
#include "config.h"
#include "conn.h"
#include "msg.h"

/* A bridge for 'yaml' (fails the test when the config does not load). */
static inline struct bridge *fixture_bridge(const char *yaml, uint64_t epoch)
{
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load_string("t.yaml", yaml, strlen(yaml), &diag);
    for (size_t i = 0; i < diag.n; i++)
        print_error("%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    assert_non_null(cfg);
    struct bridge *br = bridge_new(cfg, epoch);
    assert_non_null(br);
    return br;
}

/* The route whose match is 'match' (deliveries in these tests go to fanout directly). */
static inline const struct cfg_route *fixture_route(struct bridge *br, const char *match)
{
    for (size_t i = 0; i < br->cfg->n_routes; i++)
        if (strcmp(br->cfg->routes[i].match_src, match) == 0)
            return &br->cfg->routes[i];
    fail_msg("no route %s", match);
    return NULL;
}

/* Frame i of c's queue (0 = oldest). */
static inline struct tb_msg *frame(const struct conn *c, uint32_t i)
{
    if (i >= c->q_len)
        fail_msg("frame %u asked, queue holds %u", (unsigned)i, (unsigned)c->q_len);
    return conn_queue_frame(c, i);
}

static inline const char *text_of(const struct conn *c, uint32_t i)
{
    return (const char *)msg_payload(frame(c, i));
}

/* Frame i parsed (caller frees). */
static inline cJSON *parse(const struct conn *c, uint32_t i)
{
    cJSON *j = cJSON_Parse(text_of(c, i));
    if (!j)
        fail_msg("frame %u is not JSON: %s", (unsigned)i, text_of(c, i));
    return j;
}

static inline const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        fail_msg("\"%s\" is not a string", key);
    return v->valuestring;
}

static inline double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("\"%s\" is not a number", key);
    return v->valuedouble;
}

/* Frame i has this type (and, when given, room and seq >= 0). */
static inline void expect_frame(const struct conn *c, uint32_t i, const char *type, const char *room,
                                long seq)
{
    cJSON *j = parse(c, i);
    assert_string_equal(str_of(j, "type"), type);
    if (room)
        assert_string_equal(str_of(j, "room"), room);
    if (seq >= 0)
        assert_int_equal((long)num_of(j, "seq"), seq);
    cJSON_Delete(j);
}

/* A client frame, as if received. */
static inline void send_json(struct bridge *br, struct conn *c, const char *json)
{
    bridge_on_client_frame(br, c, json, strlen(json), false);
}

#endif
