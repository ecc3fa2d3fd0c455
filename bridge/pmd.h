/* pmd: permessage-deflate (RFC 7692) for outgoing frames, compressed once per message.
 *
 * A room message is serialized once (msg.h) and every member queues the same frame. A
 * member that negotiated permessage-deflate queues the message's compressed twin instead:
 * built by the first such member (pmd_frame), kept in the message, shared by all the
 * others. That works because the bridge never uses context takeover for its own frames:
 * each message is compressed on its own (the stream is reset between messages), so one
 * compressed frame is valid for every connection, whatever that connection received
 * before. The handshake says so with server_no_context_takeover (ws_server.c).
 *
 * Only data frames (text) of at least min_bytes are compressed; a frame that does not get
 * smaller is sent as it is (RSV1 clear). Client frames are inflated by libwebsockets' own
 * permessage-deflate extension (ws_server.c), not here.
 *
 * Threads: service thread only (one zlib stream, reused). */
#ifndef TB_PMD_H
#define TB_PMD_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct pmd;

/* NULL when out of memory. */
struct pmd *pmd_new(void);
void pmd_free(struct pmd *z);   /* NULL is harmless */

/* min_bytes: smaller payloads go uncompressed; level: zlib level 1-9. Applies to
 * messages not compressed yet. Returns 0, or -1 when the stream cannot be set up (then
 * nothing is compressed until a later call succeeds). */
int pmd_configure(struct pmd *z, size_t min_bytes, int level);

/* The frame to queue for a connection that negotiated permessage-deflate: m's compressed
 * twin (RSV1 set; built on the first call, then shared), or m itself (a control frame,
 * smaller than min_bytes, not smaller compressed, or out of memory). Not a new
 * reference: the caller takes one as for m. */
struct tb_msg *pmd_frame(struct pmd *z, struct tb_msg *m);

/* Messages compressed, and their payload bytes before and after. */
struct pmd_stats {
    uint64_t frames, bytes_in, bytes_out;
};
struct pmd_stats pmd_stats(const struct pmd *z);

#endif
