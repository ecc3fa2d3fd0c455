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

/* ---- strict validation: a small recursive-descent recognizer ------------------------ */

struct jscan {
    const unsigned char *p, *end;
    int depth;
};

static void skip_ws(struct jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool lit(struct jscan *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool digits(struct jscan *j)
{
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static bool number(struct jscan *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++; /* a leading zero stands alone */
    else if (!digits(j))
        return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j))
            return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return false;
    }
    return true;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool string(struct jscan *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    for (j->p++; j->p < j->end; j->p++) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (++j->p >= j->end)
            return false;
        c = *j->p;
        if (c == 'u') {
            if (j->end - j->p < 5 || !is_hex(j->p[1]) || !is_hex(j->p[2]) || !is_hex(j->p[3]) ||
                !is_hex(j->p[4]))
                return false;
            j->p += 4;
        } else if (!strchr("\"\\/bfnrt", c)) {
            return false;
        }
    }
    return false;
}

static bool value(struct jscan *j);

static bool container(struct jscan *j, unsigned char close, bool keyed)
{
    if (++j->depth > 512)
        return false;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        if (keyed) {
            if (!string(j))
                return false;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return false;
        }
        if (!value(j))
            return false;
        skip_ws(j);
        if (j->p >= j->end)
            return false;
        if (*j->p == ',') {
            j->p++;
            skip_ws(j);
            continue;
        }
        if (*j->p++ != close)
            return false;
        j->depth--;
        return true;
    }
}

static bool value(struct jscan *j)
{
    skip_ws(j);
    if (j->p >= j->end)
        return false;
    switch (*j->p) {
    case '{': return container(j, '}', true);
    case '[': return container(j, ']', false);
    case '"': return string(j);
    case 't': return lit(j, "true");
    case 'f': return lit(j, "false");
    case 'n': return lit(j, "null");
    default: return number(j);
    }
}

bool json_strict_valid(const char *text, size_t len)
{
    struct jscan j = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
    if (!value(&j))
        return false;
    skip_ws(&j);
    return j.p == j.end;
}

bool json_has_nul_escape(const char *text, size_t len)
{
    const char *end = text + len;
    for (const char *p = memchr(text, '\\', len); p && p + 1 < end;
         p = memchr(p, '\\', (size_t)(end - p))) {
        if (p[1] == 'u' && end - p >= 6 && !memcmp(p + 2, "0000", 4))
            return true;
        p += 2;    /* the escaped character, whatever it is */
    }
    return false;
}
