/* ws_auth: a request's credential from its headers or query (see ws_auth.h). Service thread. */
#include "ws_auth.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const struct gate_cred none = {NULL, 0, false};

/* Copies a header into buf; -1 when absent, -2 when too long. */
static int header(struct lws *wsi, enum lws_token_indexes h, char *buf, size_t cap)
{
    int len = lws_hdr_total_length(wsi, h);
    if (len <= 0)
        return -1;
    if ((size_t)len >= cap)
        return -2;
    return lws_hdr_copy(wsi, buf, (int)cap, h) == len ? len : -2;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* "bearer, <token>" (the token is the offered subprotocol after "bearer"). */
static struct gate_cred from_subprotocol(struct lws *wsi, char *buf, size_t cap)
{
    int n = header(wsi, WSI_TOKEN_PROTOCOL, buf, cap);
    if (n == -2)
        return (struct gate_cred){buf, 1, false};   /* too long: fails verification */
    if (n < 0)
        return none;
    const char *p = skip_space(buf);
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ',' && p[6] != ' '))
        return none;
    p = skip_space(p + 6);
    if (*p != ',')
        return none;
    p = skip_space(p + 1);
    size_t len = strcspn(p, ", \t");
    return len ? (struct gate_cred){p, len, false} : none;
}

static struct gate_cred from_urlarg(struct lws *wsi, const char *name, char *buf, size_t cap, bool api_key)
{
    /* lws copies "name=value" into buf and returns the value */
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, (int)cap);
    size_t n = v ? strlen(v) : 0;
    return n ? (struct gate_cred){v, n, api_key} : none;
}

static struct gate_cred from_authorization(struct lws *wsi, char *buf, size_t cap)
{
    int n = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, buf, cap);
    if (n == -2)
        return (struct gate_cred){buf, 1, false};
    if (n < 0)
        return none;
    const char *p = skip_space(buf);
    if (strncasecmp(p, "bearer ", 7) != 0)
        return (struct gate_cred){buf, (size_t)n, false};   /* another scheme: refused as invalid */
    p = skip_space(p + 7);
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    return len ? (struct gate_cred){p, len, false} : (struct gate_cred){buf, 1, false};
}

static struct gate_cred from_api_key_header(struct lws *wsi, char *buf, size_t cap)
{
    int len = lws_hdr_custom_length(wsi, "x-api-key:", 10);
    if (len <= 0)
        return none;
    if ((size_t)len >= cap || lws_hdr_custom_copy(wsi, buf, (int)cap, "x-api-key:", 10) != len)
        return (struct gate_cred){buf, 1, true};
    return (struct gate_cred){buf, (size_t)len, true};
}

struct gate_cred ws_auth_credential(struct lws *wsi, char *buf, size_t cap, bool websocket)
{
    struct gate_cred c = websocket ? from_subprotocol(wsi, buf, cap) : none;
    if (!c.len)
        c = from_urlarg(wsi, "token=", buf, cap, false);
    if (!c.len)
        c = from_authorization(wsi, buf, cap);
    if (!c.len)
        c = from_api_key_header(wsi, buf, cap);
    if (!c.len)
        c = from_urlarg(wsi, "api_key=", buf, cap, true);
    return c;
}
