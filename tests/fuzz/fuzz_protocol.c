/* fuzz_protocol: feeds arbitrary client frames to the real request dispatcher.
 *
 * Why: every byte a WebSocket client sends ends up in protocol_handle_frame; it must
 * answer with an error or a reply and never crash, leak or corrupt state. The target
 * builds a small bridge (bridge_new: config from text, rooms with some state) once,
 * and for each input opens one connection without a socket (bridge_open), runs the
 * input through the request dispatcher, then a routed delivery so shaped / pattern
 * subscriptions made by the input are exercised too, and closes the connection
 * (bridge_close frees all it held).
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
#include "fanout.h"
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

static struct bridge *br;
static const struct cfg_route *tele_route, *setup_route;

static void deliver(const char *room, const struct cfg_route *r, const char *data)
{
    fanout_deliver(br->fan, room, r, "vehicle/x/telemetry", data, strlen(data));
}

static void setup_once(void)
{
    if (br)
        return;
    log_set_level(TB_LOG_ERROR);
    struct config_diag diag = {0};
    struct tb_config *cfg = config_load_string("fuzz.yaml", CONFIG, sizeof CONFIG - 1, &diag);
    if (!cfg)
        abort();
    config_diag_free(&diag);
    if (!(br = bridge_new(cfg, 0x1234)))
        abort();
    bridge_start_alerts(br, NULL);
    tele_route = &br->cfg->routes[0];
    setup_route = &br->cfg->routes[1];
    for (int i = 0; i < 12; i++)
        deliver("vehicle:1", tele_route, "{\"speed\":1,\"engine_metrics\":{\"temperature\":90}}");
    deliver("session:abc", setup_route, "{\"track\":\"x\"}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    struct conn *conn = bridge_open(br, NULL, "/ws/connect");
    if (!conn)
        abort();
    bridge_on_client_frame(br, conn, (const char *)data, size, size && data[0] == 0xff);
    deliver("vehicle:1", tele_route, "{\"speed\":2,\"engine_metrics\":{\"temperature\":91},\"x\":[1]}");
    deliver("vehicle:new", tele_route, "\"not an object\"");
    bridge_close(br, conn);
    return 0;
}
