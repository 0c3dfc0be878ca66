/* stream.h - GET /v1/stream: the live websocket feed of committed changes, filtered, resumable from the store. */
#ifndef HL_STREAM_H
#define HL_STREAM_H

#include "config.h"
#include "http.h"
#include "queue.h"

#include <uv.h>

typedef struct hl_stream hl_stream;

/* Listen to q's notes (q and loop are borrowed); cfg is retained. */
int hl_stream_create(uv_loop_t *loop, hl_queue *q, hl_config *cfg,
                     hl_stream **out);
void hl_stream_set_config(hl_stream *s, hl_config *cfg);
/* GET /v1/stream: the handshake, the token, the filters; then the feed. */
void hl_stream_handle(hl_stream *s, hl_http_req *req);
/* Say goodbye (close 1001) to every client and take no more. */
void hl_stream_shutdown(hl_stream *s);
/* Store reads in flight: the queue must stay open until it is 0. */
size_t hl_stream_busy(const hl_stream *s);
/* Stop listening to the queue and close the handles; on the loop, once
 * every client is gone and nothing is busy. */
void hl_stream_close(hl_stream *s);
/* After the loop has closed the handles. */
void hl_stream_destroy(hl_stream *s);

#endif
