/* queue.h - the durable queue interface the engine is written against. */
#ifndef HL_QUEUE_H
#define HL_QUEUE_H

#include "id.h"

#include <jansson.h>
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
    char *route;   /* the first route that matched; NULL: unrouted */
    /* One delivery per connector the routes chose. */
    char **connectors;
    char (*delivery_ids)[HL_ID_LEN + 1];
    size_t n_deliveries;
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

/* Called on the writer's thread after a commit that stored new events or
 * new deliveries. */
typedef void (*hl_commit_hook)(void *ud);

/* ---- deliveries ---------------------------------------------------------- */

typedef enum {
    HL_DS_QUEUED,
    HL_DS_SENDING,
    HL_DS_RETRYING,
    HL_DS_DELIVERED,
    HL_DS_FAILED,
    HL_DS_EXPIRED,
    HL_DS_PAUSED,
} hl_delivery_state;

const char *hl_delivery_state_name(int state);

/* One delivery leased for an attempt; the lease owns every string. */
typedef struct {
    char id[HL_ID_LEN + 1];       /* the delivery's id: its idempotency key */
    char event_id[96];            /* the canonical event's: a ULID, with
                                     "-N" for the Nth of a split webhook */
    char tenant[80];
    char source[80];
    uint32_t attempt; /* the attempt about to be made; 1 for the first */
    uint32_t round;   /* the same, counted from an operator's retry: what
                         the retry policy goes by */
    int64_t created_ms; /* or when an operator last retried it: what the
                           retry policy's max_age counts from */
    int64_t received_ms; /* when its webhook was received */
    char *event;   /* the canonical event's JSON, without data.raw when
                      raw_ptr is set */
    char *raw_ptr; /* where data.raw is in raw_body, or NULL */
    char *raw_body;
    size_t raw_len;
    char *correlation_id;
} hl_lease_item;

typedef struct {
    hl_lease_item *v;
    size_t n;
    int status;         /* 0, or why the lease failed */
    int64_t next_due_ms; /* the earliest due time of what is left; -1: none */
} hl_lease;

void hl_lease_free(hl_lease *l);

/* Runs on the writer's thread; takes ownership of l (hl_lease_free). */
typedef void (*hl_lease_cb)(void *ud, hl_lease *l);

/* The end of one attempt: the delivery's new state and the attempt's
 * record. Strings are malloc'd and owned by the row. */
typedef struct {
    char id[HL_ID_LEN + 1];
    uint32_t attempt;
    int state;       /* hl_delivery_state: delivered, retrying, failed,
                        expired, or queued (given back unsent) */
    int64_t next_ms; /* retrying/queued: when it is due */
    int64_t started_ms;
    uint32_t duration_ms;
    int status; /* HTTP status or SMTP reply; 0: none */
    const char *error_class; /* static: "timeout", "http_5xx", ... or NULL */
    char *reason;   /* why, for a person */
    char *response; /* the first bytes of the response, redacted */
    int counted;    /* 0: an attempt never made (given back unsent) */
} hl_attempt_row;

void hl_attempt_rows_free(hl_attempt_row *rows, size_t n);

/* A held connector, as read back at start: state "paused" or "disabled". */
typedef void (*hl_hold_cb)(void *ud, const char *connector, const char *state,
                           const char *reason);

/* ---- the stream of changes, and operators' questions ------------------- */

/* One committed change, as the live stream tells it: seq grows by one for
 * every note, across restarts. json is the whole message, seq included. */
typedef struct {
    int64_t seq;
    int64_t at_ms;
    char *type;      /* "event.received", "delivery.state", ... */
    char *tenant;    /* NULL: every tenant's (a connector serving all) */
    char *source;    /* NULL when it has none */
    char *connector; /* NULL when it has none */
    char *json;
} hl_note;

/* Free a note's strings; free an array of notes and theirs. */
void hl_note_clear(hl_note *x);
void hl_notes_free(hl_note *v, size_t n);

/* Runs on the writer's thread after each commit with the notes it made;
 * they are borrowed for the call. */
typedef void (*hl_notes_cb)(void *ud, const hl_note *v, size_t n);

typedef enum {
    HL_Q_EVENTS,     /* webhooks received, newest first */
    HL_Q_EVENT,      /* one, with its canonical events and deliveries */
    HL_Q_DELIVERIES, /* deliveries, newest first */
    HL_Q_DELIVERY,   /* one, with its attempts */
    HL_Q_DEPTH,      /* live deliveries by connector and state */
    HL_R_RETRY,      /* one delivery back in line now */
    HL_R_REPLAY,     /* deliveries matching the filter back in line */
    HL_R_NORMALIZE,  /* unparsed webhooks matching the filter, again */
    HL_R_PURGE,      /* finished events past their retention */
    HL_R_NOTE,       /* a note of its own (connector.state) */
} hl_query_kind;

/* A question (HL_Q_*) or a repair (HL_R_*). Unset strings and zero times
 * match anything; tenant set restricts everything to that tenant, and an
 * id of another tenant's is not found. */
typedef struct {
    int kind;
    const char *id;
    const char *tenant, *source, *type, *connector;
    const char *state;        /* one state, or a comma-separated list */
    int64_t since_ms, until_ms;
    int64_t cursor;           /* list from below this seq; 0: the newest */
    size_t limit;             /* list length; repairs: the batch size */
    int64_t delivered_before; /* HL_R_PURGE: cut-offs, ms since the epoch */
    int64_t failed_before;
    const char *note_type;    /* HL_R_NOTE */
    json_t *note;             /* HL_R_NOTE: its fields (borrowed) */
} hl_query;

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
    int (*lease)(hl_queue *q, const char *connector, size_t max,
                 int64_t now_ms, uint64_t lease_ms, hl_lease_cb cb, void *ud);
    int (*finish_take)(hl_queue *q, hl_attempt_row *rows, size_t n);
    int (*kv_get)(hl_queue *q, const char *connector, const char *key,
                  char **value);
    int (*kv_put)(hl_queue *q, const char *connector, const char *key,
                  const char *value);
    void (*on_deliveries)(hl_queue *q, hl_commit_hook fn, void *ud);
    int (*hold)(hl_queue *q, const char *connector, const char *state,
                const char *reason);
    int (*holds)(hl_queue *q, hl_hold_cb cb, void *ud);
    int (*ask)(hl_queue *q, const hl_query *qr, json_t **out);
    void (*on_notes)(hl_queue *q, hl_notes_cb fn, void *ud);
    int (*read_notes)(hl_queue *q, int64_t after_seq, size_t max,
                      hl_note **out, size_t *n, int64_t *last_seq);
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

/*
 * Lease up to max deliveries of connector that are due at now_ms (queued,
 * retrying, or sending with an expired lease): they become 'sending' until
 * now_ms + lease_ms, their attempt count goes up, and cb gets them with
 * their events, on the writer's thread, once that is committed. Returns 0
 * (cb will run) or HL_ESHUTDOWN / HL_ENOMEM (it will not).
 */
static inline int hl_queue_lease(hl_queue *q, const char *connector,
                                 size_t max, int64_t now_ms, uint64_t lease_ms,
                                 hl_lease_cb cb, void *ud)
{
    return q->ops->lease(q, connector, max, now_ms, lease_ms, cb, ud);
}

/* Record the end of attempts; takes ownership of rows (malloc'd array),
 * also on failure. A row for a lease that has since expired and been taken
 * again is ignored. Returns 0, HL_ESHUTDOWN or HL_ENOMEM. */
static inline int hl_queue_finish_take(hl_queue *q, hl_attempt_row *rows,
                                       size_t n)
{
    return q->ops->finish_take(q, rows, n);
}

/* A connector's own small state. get: 0 with a malloc'd *value, or
 * HL_ENOTFOUND; put with value NULL deletes. put returns once committed.
 * Safe from any one thread besides the loop's and the writer's. */
static inline int hl_queue_kv_get(hl_queue *q, const char *connector,
                                  const char *key, char **value)
{
    return q->ops->kv_get(q, connector, key, value);
}

static inline int hl_queue_kv_put(hl_queue *q, const char *connector,
                                  const char *key, const char *value)
{
    return q->ops->kv_put(q, connector, key, value);
}

/* fn(ud) runs on the writer's thread after each commit that created
 * deliveries (NULL: none). */
static inline void hl_queue_on_deliveries(hl_queue *q, hl_commit_hook fn,
                                          void *ud)
{
    q->ops->on_deliveries(q, fn, ud);
}

/* Keep a connector held ("paused" by an operator, "disabled" after its
 * destination said it is gone) across restarts, with the reason; state NULL
 * releases it. Returns once committed. */
static inline int hl_queue_hold(hl_queue *q, const char *connector,
                                const char *state, const char *reason)
{
    return q->ops->hold(q, connector, state, reason);
}

/* Every held connector, to cb, oldest name first. */
static inline int hl_queue_holds(hl_queue *q, hl_hold_cb cb, void *ud)
{
    return q->ops->holds(q, cb, ud);
}

/*
 * Answer a question (HL_Q_*: read on a connection of its own) or make a
 * repair (HL_R_*: committed by the writer before it returns; its notes go
 * out like any other). *out is a new JSON object. Returns 0, HL_ENOTFOUND
 * (no such id, or another tenant's), HL_ECONFLICT (a delivery in flight),
 * HL_ESTORE or HL_ESHUTDOWN. Blocks: call it off the loop thread.
 */
static inline int hl_queue_ask(hl_queue *q, const hl_query *qr, json_t **out)
{
    return q->ops->ask(q, qr, out);
}

/* fn(ud, notes, n) runs on the writer's thread after each commit that made
 * notes (NULL: none). */
static inline void hl_queue_on_notes(hl_queue *q, hl_notes_cb fn, void *ud)
{
    q->ops->on_notes(q, fn, ud);
}

/* Up to max stored notes with seq above after_seq, oldest first (*out
 * malloc'd, free with hl_notes_free); *last_seq is the newest committed.
 * Blocks: call it off the loop thread. */
static inline int hl_queue_read_notes(hl_queue *q, int64_t after_seq,
                                      size_t max, hl_note **out, size_t *n,
                                      int64_t *last_seq)
{
    return q->ops->read_notes(q, after_seq, max, out, n, last_seq);
}

/* Finish every queued append (their callbacks run), then close. Call on the
 * loop thread; the loop must run afterwards for handles to close. */
static inline void hl_queue_close(hl_queue *q)
{
    q->ops->close(q);
}

#endif
