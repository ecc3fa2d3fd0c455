/* writer: gets queued frames from connections' send queues onto their sockets.
 *
 * Two paths:
 *   - writable events (writer_on_writable): queued frames, already framed in their
 *     headroom, are coalesced into writes of up to 64 KiB through lws_write
 *     (LWS_WRITE_HTTP: lws passes the bytes through unchanged);
 *   - end of batch: between writer_batch_begin and writer_batch_end (one MQTT batch or
 *     one tick) a connection whose queue becomes non-empty is put on a list instead of
 *     asking lws for a writable event; writer_batch_end writes every listed connection
 *     once, directly with sendmsg() on its socket (bypassing lws, no copy: iovecs over
 *     the frames' headroom), split between the service thread and the writer threads.
 *     Connections that lws must write itself (TLS, or lws holding an unsent remainder)
 *     take the writable-event path.
 *
 * Threads: everything here runs on the service thread except the writer threads'
 * part of writer_batch_end: each writer thread polls and sendmsg()s the sockets of its
 * share of the list and reads those connections' queued frames; it writes nothing but
 * its own result slots. The service thread waits for all of them before it pops what
 * was sent, counts, and hands lws the rest of a frame a socket took only in part. The
 * pool's state lives in struct writer (one per bridge). */
#ifndef TB_WRITER_H
#define TB_WRITER_H

#include <stdbool.h>

struct conn;
struct writer;

struct writer *writer_new(void);
/* Stops the threads and frees the list; NULL is harmless. */
void writer_free(struct writer *w);

/* Starts n writer threads (at most CFG_MAX_WRITER_THREADS; 0 = the service thread
 * writes alone); 0, or -1 when they could not all be started (none then run). */
int writer_start_threads(struct writer *w, unsigned n);
unsigned writer_thread_count(const struct writer *w);

/* conn_env's want_write hook (ud = the writer): a connection has frames (or a close)
 * to write. */
void writer_want(void *ud, struct conn *c);
/* The connection is going away: drop it from the end-of-batch list. */
void writer_forget(struct writer *w, struct conn *c);

/* Not nested. */
void writer_batch_begin(struct writer *w);
void writer_batch_end(struct writer *w);

/* LWS_CALLBACK_SERVER_WRITEABLE; returns -1 when lws should close the connection. */
int writer_on_writable(struct writer *w, struct conn *c);

#endif
