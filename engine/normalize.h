/* normalize.h - the normalizer: stored webhooks -> canonical events, off the intake path. */
#ifndef HL_NORMALIZE_H
#define HL_NORMALIZE_H

#include "config.h"
#include "diag.h"
#include "map.h"
#include "queue.h"

typedef struct hl_normalizer hl_normalizer;

/* Load <cfg->schemas_path>/sources/ and check that every configured source
 * has a mapping for its kind; problems go to d with file:line:col. */
int hl_mappings_for_config(const hl_config *cfg, hl_diags *d,
                           hl_mappings **out);

/* Start the normalizer thread over q (borrowed). Takes a reference to cfg
 * and ownership of maps. */
int hl_normalizer_start(hl_queue *q, hl_config *cfg, hl_mappings *maps,
                        hl_normalizer **out);
/* Use cfg (a new reference is taken) and maps (taken) from the next
 * webhook on; unparsed webhooks are normalized again with them. */
void hl_normalizer_set_config(hl_normalizer *n, hl_config *cfg,
                              hl_mappings *maps);
/* Finish the webhook in hand, stop the thread and free everything. Call
 * before closing the queue. */
void hl_normalizer_stop(hl_normalizer *n);

typedef struct {
    uint64_t normalized; /* webhooks that became canonical events */
    uint64_t events;     /* canonical events made */
    uint64_t unparsed;
    uint64_t unrouted;   /* canonical events no route matched */
    uint64_t deliveries; /* deliveries the routes made */
} hl_normalizer_stats;

void hl_normalizer_stats_get(const hl_normalizer *n, hl_normalizer_stats *out);

#endif
