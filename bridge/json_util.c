/* json_util: dotted-path lookup and number formatting over cJSON. Pure; any thread. */
#include "json_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const cJSON *json_path_get(const cJSON *root, const char *path, size_t len)
{
    static const char prefix[] = "payload.";
    if (len >= sizeof(prefix) - 1 && memcmp(path, prefix, sizeof(prefix) - 1) == 0) {
        path += sizeof(prefix) - 1;
        len -= sizeof(prefix) - 1;
    }
    const cJSON *node = root;
    size_t pos = 0;
    while (node && pos <= len) {
        const char *dot = memchr(path + pos, '.', len - pos);
        size_t seg = dot ? (size_t)(dot - (path + pos)) : len - pos;
        if (!cJSON_IsObject(node) || seg == 0)
            return NULL;
        const cJSON *child = NULL;
        for (const cJSON *c = node->child; c; c = c->next) {
            if (c->string && strlen(c->string) == seg && memcmp(c->string, path + pos, seg) == 0) {
                child = c;
                break;
            }
        }
        node = child;
        pos += seg + 1;
        if (!dot)
            break;
    }
    return node;
}

int json_format_number(double v, char *out, size_t outlen)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
        return snprintf(out, outlen, "%.0f", v);
    return snprintf(out, outlen, "%.15g", v);
}
