/* msg: one outgoing WebSocket text frame, serialized once and shared.
 *
 * A message routed to a room is turned into JSON once; every connection in the room
 * queues a reference to the same buffer. The buffer reserves LWS_PRE bytes of headroom
 * so libwebsockets can put its frame header in front without copying, and the frame
 * header is also precomputed there (msg_frame) so several frames can be coalesced into
 * one write. Threads: the refcount is not atomic, so only the service thread takes and
 * drops references; writer threads read the frame bytes of queued messages (writer.h)
 * while the service thread waits for them, and a message never changes once built. */
#ifndef TB_MSG_H
#define TB_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

struct tb_msg {
    uint32_t refs;
    uint32_t len;       /* payload bytes */
    uint8_t hdr_len;    /* bytes of the precomputed frame header before the payload */
    uint64_t key;       /* conflation key within a room: hash of the MQTT topic (0 = none) */
    struct tb_msg *twin; /* the same message compressed (pmd.h), built on first need; own reference */
    bool twin_done;     /* twin decided: built, or not worth it (NULL) */
    unsigned char buf[]; /* LWS_PRE headroom, payload, NUL */
};

/* Copies len bytes into a new message with refcount 1; NULL when out of memory. */
struct tb_msg *msg_new(const void *data, size_t len);
/* A control frame (opcode 0x8 close, 0x9 ping, 0xA pong) with at most 125 payload
 * bytes, e.g. the bridge's own pings (ws_server); NULL on a bad opcode or length. */
struct tb_msg *msg_new_control(unsigned opcode, const void *data, size_t len);
static inline struct tb_msg *msg_ref(struct tb_msg *m) { m->refs++; return m; }
void msg_unref(struct tb_msg *m);   /* NULL is harmless */

/* m with its time field (the first ,"ts":<ms>; every frame the bridge builds has it
 * before any payload text) renamed to 'field' and, with iso, written as an ISO 8601
 * UTC string ("2024-01-15T10:30:00.123Z"); same key. A new reference to m itself when
 * it has no such field; NULL when out of memory. */
struct tb_msg *msg_retime(struct tb_msg *m, const char *field, int iso);
/* The same for the first (or, with last, the last) member "key":<ms> of the payload. */
struct tb_msg *msg_rewrite_time(struct tb_msg *m, const char *key, bool last, const char *new_key, int iso);
/* m with the first occurrence of 'from' replaced by 'to' (a new reference to m itself
 * when there is none); NULL when out of memory. */
struct tb_msg *msg_replace_first(struct tb_msg *m, const char *from, const char *to);

/* Conflation key of a topic: messages of one topic in one room replace each other. */
uint64_t msg_topic_key(const char *topic);

static inline unsigned char *msg_payload(struct tb_msg *m) { return m->buf + LWS_PRE; }
/* The whole unmasked server-to-client text frame: header + payload. */
static inline unsigned char *msg_frame(struct tb_msg *m) { return m->buf + LWS_PRE - m->hdr_len; }
static inline size_t msg_frame_len(const struct tb_msg *m) { return (size_t)m->hdr_len + m->len; }

#endif
