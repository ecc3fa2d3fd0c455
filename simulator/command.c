/* command: parsing and answering vehicle commands (see command.h). */
#include "command.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static void copy_str(char *dst, size_t n, const cJSON *s)
{
    if (cJSON_IsString(s))
        snprintf(dst, n, "%s", s->valuestring);
}

struct sim_command *command_parse(const char *topic, const void *payload, size_t len,
                                  const char *response_topic, const void *corr, size_t corr_len)
{
    const char *rest = strncmp(topic, "vehicle/", 8) ? NULL : topic + 8;
    const char *mid = rest ? strstr(rest, "/cmd/") : NULL;
    if (!mid || mid == rest || (size_t)(mid - rest) >= sizeof ((struct sim_command *)0)->vehicle ||
        !mid[5] || strchr(mid + 5, '/'))
        return NULL;
    struct sim_command *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->vehicle, rest, (size_t)(mid - rest));
    snprintf(c->name, sizeof c->name, "%s", mid + 5);
    cJSON *j = cJSON_ParseWithLength(payload, len);
    if (cJSON_IsObject(j)) {
        copy_str(c->reply_to, sizeof c->reply_to, cJSON_GetObjectItemCaseSensitive(j, "reply_to"));
        copy_str(c->correlation, sizeof c->correlation, cJSON_GetObjectItemCaseSensitive(j, "correlation"));
        copy_str(c->sender, sizeof c->sender, cJSON_GetObjectItemCaseSensitive(j, "sender"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "args");
        if (args)
            c->args = cJSON_PrintUnformatted(args);
    }
    cJSON_Delete(j);
    if (response_topic) {   /* MQTT 5 properties win over payload fields */
        snprintf(c->reply_to, sizeof c->reply_to, "%s", response_topic);
        snprintf(c->correlation, sizeof c->correlation, "%.*s",
                 (int)(corr_len < sizeof c->correlation ? corr_len : sizeof c->correlation - 1),
                 corr ? (const char *)corr : "");
    }
    return c;
}

void command_free(struct sim_command *c)
{
    if (!c)
        return;
    free(c->args);
    free(c);
}

static void fail(cJSON *out, const char *why)
{
    cJSON_AddBoolToObject(out, "ok", false);
    cJSON_AddStringToObject(out, "error", why);
}

static void set_rate(const struct sim_command *c, cJSON *out, double rate, uint32_t *every)
{
    cJSON *args = c->args ? cJSON_Parse(c->args) : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(args, "rate");
    if (!cJSON_IsNumber(r) || !(r->valuedouble > 0) || r->valuedouble > rate) {
        char why[96];
        snprintf(why, sizeof why, "args.rate must be a number in (0, %g] messages/s", rate);
        fail(out, why);
    } else {
        long n = lround(rate / r->valuedouble);
        *every = n < 1 ? 1 : (uint32_t)n;
        cJSON_AddBoolToObject(out, "ok", true);
        cJSON_AddNumberToObject(out, "rate", rate / *every);
    }
    cJSON_Delete(args);
}

static void diagnostics(const struct vehicle *v, cJSON *out, uint64_t wall_ms)
{
    char buf[1024];
    int n = vehicle_telemetry_json(v, wall_ms, NULL, buf, sizeof buf);
    cJSON *d = n > 0 ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
    if (!d) {
        fail(out, "no snapshot");
        return;
    }
    const char *an = vm_anomaly_name(v->anomaly);
    cJSON_AddStringToObject(d, "anomaly", an ? an : "none");
    cJSON_AddNumberToObject(d, "anomalies", v->anomalies);
    cJSON_AddNumberToObject(d, "refuels", v->refuels);
    cJSON_AddBoolToObject(out, "ok", true);
    cJSON_AddItemToObject(out, "diagnostics", d);
}

char *command_answer(const struct sim_command *c, const struct vehicle *v, double rate,
                     uint64_t wall_ms, uint32_t *every)
{
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    cJSON_AddStringToObject(out, "vehicle_id", v->id);
    cJSON_AddStringToObject(out, "command", c->name);
    if (c->sender[0])
        cJSON_AddStringToObject(out, "sender", c->sender);
    if (c->correlation[0])
        cJSON_AddStringToObject(out, "correlation", c->correlation);
    cJSON_AddNumberToObject(out, "ts_ms", (double)wall_ms);
    if (!strcmp(c->name, "ping")) {
        cJSON_AddBoolToObject(out, "ok", true);
    } else if (!strcmp(c->name, "horn")) {
        cJSON_AddBoolToObject(out, "ok", true);
        cJSON_AddBoolToObject(out, "honked", true);
    } else if (!strcmp(c->name, "set_rate")) {
        set_rate(c, out, rate, every);
    } else if (!strcmp(c->name, "request_diagnostics")) {
        diagnostics(v, out, wall_ms);
    } else {
        fail(out, "unknown command (ping, horn, set_rate, request_diagnostics)");
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    return text;
}
