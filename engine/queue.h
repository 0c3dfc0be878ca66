/* queue.h - the durable queue interface the engine is written against. */
#ifndef HL_QUEUE_H
#define HL_QUEUE_H

#include "id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Nothing outside a backend may assume which store is behind this interface:
 * the embedded SQLite store (store.c) is one implementation, and a replicated
 * one can sit beside it.
 */

typedef struct hl_queue hl_queue;

/* One inbound webhook as received. Every pointer is borrowed until the
 * append callback has run. */
typedef struct {
    char id[HL_ID_LEN + 1];
    const char *tenant;
    const char *source;
    const char *content_type;   /* may be NULL */
    const char *correlation_id;
    const char *idem_key;       /* NULL: no idempotency key */
    const char *headers_json;   /* kept request headers, a JSON object */
    const void *body;
    size_t body_len;
    int64_t received_ms;
} hl_inbound;

typedef struct {
    int status;     /* 0, or HL_ESTORE / HL_EBUSY / HL_ESHUTDOWN ... */
    bool duplicate; /* the idempotency key was seen: id is the first event's */
    char id[HL_ID_LEN + 1];
    const char *reason; /* a human-readable cause when status != 0 */
} hl_append_result;

/* Runs on the loop thread once the event is durable (or failed). */
typedef void (*hl_append_cb)(void *ud, const hl_append_result *res);

/* A stored webhook waiting to be normalized; the batch owns the memory. */
typedef struct {
    int64_t seq; /* its place in arrival order */
    hl_inbound ev;
} hl_stored;

typedef struct {
    hl_stored *v;
    size_t n;
    int64_t from; /* the seq the read started after */
    void **mem; /* what the pointers of v point into */
    size_t nmem;
} hl_stored_batch;

void hl_stored_batch_free(hl_stored_batch *b);

/* One canonical event as stored: its JSON text and the columns that are
 * searched. Every string is malloc'd and owned by the settle. */
typedef struct {
    char *id, *type, *severity, *dedupkey, *time;
    char *raw_ptr; /* where data.raw is in the webhook's body, or NULL */
    char *body;    /* the event's JSON; without data.raw when raw_ptr is set */
} hl_canonical_row;

/* The outcome of normalizing one stored webhook. */
typedef struct {
    char event_id[HL_ID_LEN + 1];
    int64_t seq; /* the webhook's place in arrival order */
    char tenant[80], source[80];
    int parsed;            /* rows hold its events; else reason says why not */
    hl_canonical_row *rows;
    size_t n;
    char reason[512];
} hl_settle;

void hl_settle_free(hl_settle *st);

/* Called on the writer's thread after a commit that stored new events. */
typedef void (*hl_commit_hook)(void *ud);

typedef struct {
    int (*append)(hl_queue *q, const hl_inbound *ev, hl_append_cb cb,
                  void *ud);
    uint64_t (*backlog)(const hl_queue *q);
    void (*close)(hl_queue *q);
    int (*read_received)(hl_queue *q, int64_t after_seq, size_t max,
                         hl_stored_batch *out);
    int (*settle_take)(hl_queue *q, hl_settle *st);
    void (*on_commit)(hl_queue *q, hl_commit_hook fn, void *ud);
    int (*retry_unparsed)(hl_queue *q);
} hl_queue_ops;

struct hl_queue {
    const hl_queue_ops *ops;
};

/* Queue ev; cb runs later on the loop thread, exactly once, also when the
 * append fails. Returns 0, or a negative code (cb will not run). */
static inline int hl_queue_append(hl_queue *q, const hl_inbound *ev,
                                  hl_append_cb cb, void *ud)
{
    return q->ops->append(q, ev, cb, ud);
}

/* Events accepted and not yet finished (delivered, failed or expired). */
static inline uint64_t hl_queue_backlog(const hl_queue *q)
{
    return q->ops->backlog(q);
}

/* Up to max webhooks still waiting to be normalized with a seq above
 * after_seq (negative: above the committed normalization cursor, and so
 * also after a commit of outcomes failed), oldest first. Safe from any one
 * thread besides the loop's. */
static inline int hl_queue_read_received(hl_queue *q, int64_t after_seq,
                                         size_t max, hl_stored_batch *out)
{
    return q->ops->read_received(q, after_seq, max, out);
}

/* Record a normalization outcome: the canonical events replace any stored
 * for that webhook (normalizing again is idempotent) and the webhook is
 * marked normalized, or unparsed with the reason. Takes ownership of st
 * (malloc'd, freed with hl_settle_free) unless it returns HL_EBUSY (too
 * many wait: try again shortly); outcomes are committed in order, with
 * intake's writes going first. Returns 0, HL_EBUSY or HL_ESHUTDOWN. */
static inline int hl_queue_settle_take(hl_queue *q, hl_settle *st)
{
    return q->ops->settle_take(q, st);
}

/* fn(ud) runs after each commit that stored new events (NULL: none). */
static inline void hl_queue_on_commit(hl_queue *q, hl_commit_hook fn,
                                      void *ud)
{
    q->ops->on_commit(q, fn, ud);
}

/* Put every unparsed webhook back in line to be normalized (after a
 * mapping was fixed). Queued for the writer; 0 or HL_ESHUTDOWN. */
static inline int hl_queue_retry_unparsed(hl_queue *q)
{
    return q->ops->retry_unparsed(q);
}

/* Finish every queued append (their callbacks run), then close. Call on the
 * loop thread; the loop must run afterwards for handles to close. */
static inline void hl_queue_close(hl_queue *q)
{
    q->ops->close(q);
}

#endif
