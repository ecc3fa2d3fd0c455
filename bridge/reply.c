/* reply: replies, refusals and errors to one client (see reply.h). Service thread only. */
#include "reply.h"

#include "conn.h"
#include "fanout.h"

void reply_send(struct fanout *f, struct conn *c, const char *type, cJSON *top, const cJSON *id)
{
    if (!top)
        top = cJSON_CreateObject();
    if (id)
        cJSON_AddItemToObject(top, "id", cJSON_Duplicate(id, true));
    fanout_send_frame(f, c, type, top, NULL);
    cJSON_Delete(top);
}

void reply_refusal(struct fanout *f, struct conn *c, const cJSON *id, const char *code, const char *msg)
{
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "code", code);
    cJSON_AddStringToObject(top, "message", msg);
    reply_send(f, c, "error", top, id);
}

void reply_error(struct fanout *f, struct conn *c, const cJSON *id, const char *code, const char *msg)
{
    reply_refusal(f, c, id, code, msg);
    if (++c->bad_frames >= TB_MAX_BAD_FRAMES)
        conn_close(c, TB_CLOSE_POLICY, "too many invalid frames");
}
