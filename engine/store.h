/* store.h - the embedded SQLite queue (the default hl_queue backend). */
#ifndef HL_STORE_H
#define HL_STORE_H

#include "config.h"
#include "queue.h"

#include <uv.h>

#define HL_STORE_SCHEMA_VERSION 4

/*
 * Open (creating it and its folder if needed) the SQLite file of cfg, bring
 * its schema up to date, and start the writer thread. On failure returns a
 * negative code and writes what went wrong and what to do into err.
 */
int hl_store_open(uv_loop_t *loop, const hl_storage_cfg *cfg, hl_queue **out,
                  char *err, size_t errlen);

typedef struct {
    uint64_t commits;      /* transactions committed */
    uint64_t events;       /* events committed */
    uint64_t failures;     /* batches rolled back */
    uint64_t last_batch;   /* events in the last commit */
    uint64_t last_commit_us;
} hl_store_stats;

void hl_store_stats_get(const hl_queue *q, hl_store_stats *out);

#endif
