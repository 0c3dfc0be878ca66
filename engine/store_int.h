/* store_int.h - what store.c shares with store_admin.c: notes and operators' SQL. */
#ifndef HL_STORE_INT_H
#define HL_STORE_INT_H

#include "queue.h"

#include <jansson.h>
#include <sqlite3.h>

/* The notes one transaction makes, written to the stream table with it. */
typedef struct {
    sqlite3_stmt *ins; /* INSERT INTO stream */
    int64_t seq;       /* the last seq handed out */
    hl_note *v;
    size_t n, cap;
} hl__notes;

/* Add a note: fields (taken) gets seq, type and time, is written to the
 * stream table and kept in nb until the commit. Returns an SQLite code. */
int hl__note_add(hl__notes *nb, const char *type, const char *tenant,
                 const char *source, const char *connector, json_t *fields);

/* "2026-11-28T07:30:16.123Z" */
void hl__iso_ms(int64_t ms, char out[32]);

/* Questions, on a connection of their own. */
int hl__ask_read(sqlite3 *db, const hl_query *q, json_t **out);

/* Repairs, inside the writer's transaction. *queued counts deliveries put
 * back in line from a finished state, *back webhooks to normalize again,
 * *live deliveries that became due (the dispatcher is woken). */
typedef struct {
    uint64_t queued, back, live;
    int reread; /* the normalize cursor moved back: read from it again */
    int purged; /* rows were deleted: vacuum after the commit */
} hl__repair;

int hl__ask_write(sqlite3 *db, hl__notes *nb, const hl_query *q,
                  json_t **out, hl__repair *rep);

int hl__notes_read(sqlite3 *db, int64_t after, size_t max, hl_note **out,
                   size_t *n);

#endif
