/* uplink: publish rules applied to one client request (see uplink.h). Pure; any thread.
 *
 * Every check runs before anything is built, so a refused request allocates nothing. */
#include "uplink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* Keys of the published payload that only the bridge writes. */
static const char *const stamped_keys[] = { "sender", "reply_to", "correlation" };

const struct cfg_publish *uplink_rule(const struct cfg_endpoint *ep, const char *type)
{
    for (size_t i = 0; ep && i < ep->n_publish; i++) {
        if (!strcmp(ep->publish[i].type, type))
            return &ep->publish[i];
    }
    return NULL;
}

bool uplink_type_known(const struct tb_config *cfg, const char *type)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        if (uplink_rule(&cfg->endpoints[i], type))
            return true;
    }
    return false;
}

static int refuse(struct uplink_refusal *why, const char *code, const char *fmt, const char *arg)
{
    why->code = code;
    snprintf(why->msg, sizeof why->msg, fmt, arg);
    return -1;
}

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(list[i], s))
            return true;
    }
    return false;
}

/* The shape of "data": an object, no stamped key, only allowed keys, the required ones. */
static int check_data(const struct cfg_publish *r, const cJSON *data, struct uplink_refusal *why)
{
    if (!cJSON_IsObject(data))
        return refuse(why, "bad_field", "\"data\" must be a JSON object%s", "");
    for (size_t i = 0; i < sizeof stamped_keys / sizeof stamped_keys[0]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(data, stamped_keys[i]))
            return refuse(why, "bad_field", "\"data.%s\" is set by the bridge, not by clients", stamped_keys[i]);
    }
    for (const cJSON *f = data->child; r->n_fields && f; f = f->next) {
        if (!listed(r->fields, r->n_fields, f->string))
            return refuse(why, "bad_field", "\"data.%.100s\" is not an allowed field of this message", f->string);
    }
    for (size_t i = 0; i < r->n_required; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(data, r->required[i]))
            return refuse(why, "bad_field", "\"data.%.100s\" is required", r->required[i]);
    }
    return 0;
}

static bool has_space_or_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

static int render_topic(const struct cfg_publish *r, const struct topic_match *path, const cJSON *req,
                        char *topic, struct uplink_refusal *why)
{
    struct tmpl_ctx ctx = { NULL, path, req };
    int n = tmpl_render(r->topic, &ctx, topic, UPLINK_TOPIC_MAX);
    if (n == -2)
        return refuse(why, "too_large", "the topic would be longer than %s bytes", "511");
    if (n < 0)
        return refuse(why, "bad_field", "a value of the topic '%.100s' is missing or is not a number or "
                      "1-64 of [A-Za-z0-9_.-] ('/', '+', '#' and empty values are refused)",
                      tmpl_source(r->topic));
    if (!topic_name_valid(topic) || strstr(topic, "//") || !strncmp(topic, "telebridge/", 11) ||
        has_space_or_control(topic))
        return refuse(why, "bad_field", "the rendered topic '%.100s' is not a topic clients may publish to", topic);
    return 0;
}

/* data + the stamp, as JSON text. */
static char *build_payload(const cJSON *data, const struct uplink_stamp *stamp)
{
    cJSON *o = cJSON_Duplicate(data, true);
    if (!o)
        return NULL;
    if (stamp->sender)
        cJSON_AddStringToObject(o, "sender", stamp->sender);
    else
        cJSON_AddNullToObject(o, "sender");
    if (stamp->reply_to) {
        cJSON_AddStringToObject(o, "reply_to", stamp->reply_to);
        cJSON_AddStringToObject(o, "correlation", stamp->correlation ? stamp->correlation : "");
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

int uplink_build(const struct cfg_publish *r, const struct topic_match *path, const cJSON *req,
                 const struct uplink_stamp *stamp, struct uplink_out *out, struct uplink_refusal *why)
{
    memset(out, 0, sizeof *out);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(req, "data");
    const cJSON *retain = cJSON_GetObjectItemCaseSensitive(req, "retain");
    if (check_data(r, data, why))
        return -1;
    char *text = cJSON_PrintUnformatted(data);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (!len)
        return refuse(why, "internal", "out of memory%s", "");
    if (len > r->max_bytes)
        return refuse(why, "too_large", "\"data\" is larger than this message's max_bytes%s", "");
    if (retain && !cJSON_IsBool(retain))
        return refuse(why, "bad_field", "\"retain\" must be true or false%s", "");
    out->retain = cJSON_IsTrue(retain);
    if (out->retain && !r->retain)
        return refuse(why, "not_allowed", "this message may not be retained (the rule has retain: false)%s", "");
    if (render_topic(r, path, req, out->topic, why))
        return -1;
    if (!(out->payload = build_payload(data, stamp)))
        return refuse(why, "internal", "out of memory%s", "");
    out->len = strlen(out->payload);
    return 0;
}

void uplink_out_free(struct uplink_out *out)
{
    free(out->payload);
    out->payload = NULL;
}

bool uplink_bucket_take(struct uplink_bucket *b, size_t per_second, size_t burst, uint64_t now_ms)
{
    if (!per_second)
        return true;
    if (!b->started) {
        b->started = true;
        b->tokens = (double)burst;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * (double)per_second / 1000.0;
        if (b->tokens > (double)burst)
            b->tokens = (double)burst;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}
