/* fuzz_protocol: feeds arbitrary client frames to the real request dispatcher.
 *
 * Why: every byte a WebSocket client sends ends up in protocol_handle_frame; it must
 * answer with an error or a reply and never crash, leak or corrupt state. The target
 * builds a small bridge (config from text, a room registry with some state, one
 * connection without a socket) once, and runs each input through
 * protocol_handle_frame, followed by a routed delivery so shaped / pattern
 * subscriptions made by the input are exercised too. The connection is reset between
 * inputs (queue drained, abuse counter cleared, subscriptions dropped).
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with clang's libFuzzer
 * (-fsanitize=fuzzer,address) when available, else with driver.c, a standalone runner
 * that replays the corpus and then random mutations of it for a bounded time.
 * Single thread. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "log.h"
#include "protocol.h"

static const char CONFIG[] =
    "mqtt: {host: 127.0.0.1, port: 1883}\n"
    "server: {listen: '127.0.0.1:1', max_message_bytes: 4k, send_queue_frames: 64,\n"
    "         max_rooms_per_connection: 16}\n"
    "endpoints:\n"
    "  /ws/connect: {rooms: [], client_subscriptions: true,\n"
    "                allow_subscribe: [\"vehicle:*\", \"session:*\", fleet, \"a*b*c\"]}\n"
    "routes:\n"
    "  - {match: \"vehicle/{id}/telemetry\", rooms: [\"vehicle:{id}\"], type: telemetry_update,\n"
    "     keep_last: true, history: 8}\n"
    "  - {match: \"session/{sid}/setup\", rooms: [\"session:{sid}\"], type: setup_update, keep_last: true}\n"
    "sessions: {}\n"
    "heartbeat: {interval: 0, ws_ping: 0, idle_timeout: 0}\n";

static struct bridge br;
static struct conn *conn;
static const struct cfg_route *tele_route, *setup_route;

static void deliver(const char *room, const struct cfg_route *r, const char *data)
{
    bridge_deliver(&br, room, r->type, "vehicle/x/telemetry", data, strlen(data), r);
}

static void setup_once(void)
{
    if (conn)
        return;
    log_set_level(TB_LOG_ERROR);
    struct config_diag diag = {0};
    br.cfg = config_load_string("fuzz.yaml", CONFIG, sizeof CONFIG - 1, &diag);
    if (!br.cfg)
        abort();
    config_diag_free(&diag);
    br.rooms = room_registry_new();
    br.epoch = 0x1234;
    sbuf_init(&br.scratch);
    tele_route = &br.cfg->routes[0];
    setup_route = &br.cfg->routes[1];
    for (int i = 0; i < 12; i++)
        deliver("vehicle:1", tele_route, "{\"speed\":1,\"engine_metrics\":{\"temperature\":90}}");
    deliver("session:abc", setup_route, "{\"track\":\"x\"}");
    conn = conn_new(&br, NULL, 1, br.cfg->server.send_queue_frames, br.cfg->server.send_queue_bytes);
    conn->path = strdup("/ws/connect");
    struct topic_match m;
    const struct cfg_endpoint *ep = config_find_endpoint(br.cfg, conn->path, &m);
    bridge_on_open(&br, conn, ep, &m);
}

/* Back to a fresh connection state without freeing the connection. */
static void reset_conn(void)
{
    while (conn->q_len) {
        msg_unref(conn->q[conn->q_head]);
        conn->q_head = (conn->q_head + 1) % conn->q_cap;
        conn->q_len--;
    }
    conn->q_bytes = 0;
    protocol_on_close(&br, conn);
    while (conn->subs)
        conn_unsubscribe(conn, conn->subs);
    conn->pending_head = conn->pending_tail = NULL;
    conn->closing = false;
    conn->bad_frames = 0;
    protocol_on_open(&br, conn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    protocol_handle_frame(&br, conn, (const char *)data, size, size && data[0] == 0xff);
    deliver("vehicle:1", tele_route, "{\"speed\":2,\"engine_metrics\":{\"temperature\":91},\"x\":[1]}");
    deliver("vehicle:new", tele_route, "\"not an object\"");
    reset_conn();
    return 0;
}
