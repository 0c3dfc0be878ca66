/* dispatch.h - the dispatcher: leased deliveries -> connector render -> libcurl -> classify -> settled. */
#ifndef HL_DISPATCH_H
#define HL_DISPATCH_H

#include "config.h"
#include "plugin.h"
#include "queue.h"

typedef struct hl_dispatcher hl_dispatcher;

/*
 * Start the dispatcher's thread and loop over q (borrowed). It takes a
 * reference to cfg and the caller's reference to plugins. Each connector
 * leases what is due, up to its policy's max_in_flight, so a slow
 * connector holds only its own slots.
 */
int hl_dispatcher_start(hl_queue *q, hl_config *cfg, hl_plugins *plugins,
                        hl_dispatcher **out);

/* Use cfg (a new reference) and plugins (taken) from now on; attempts in
 * flight finish with the instances they started with. */
void hl_dispatcher_set_config(hl_dispatcher *d, hl_config *cfg,
                              hl_plugins *plugins);

/* Stop leasing, let attempts in flight finish for up to grace_ms, abort
 * the rest (given back to the queue unsent), record everything and stop
 * the thread. Call before closing the queue. */
void hl_dispatcher_stop(hl_dispatcher *d, uint64_t grace_ms);

/* Why a connector sends nothing, its deliveries waiting in their place. */
typedef enum {
    HL_HOLD_NONE,
    HL_HOLD_PAUSED,   /* by an operator */
    HL_HOLD_DISABLED, /* its destination answered 410 Gone */
} hl_hold;

/* Pause (HL_HOLD_PAUSED) or resume (HL_HOLD_NONE) a configured connector;
 * the hold is kept in the store, so it outlasts a restart. Call on the
 * loop thread; returns once recorded: 0 or HL_ESTORE. */
int hl_dispatcher_control(hl_dispatcher *d, const char *connector, int held);

/* A configured connector's hold (hl_hold) and circuit (hl_circuit_state),
 * from any thread. 0 or HL_ENOTFOUND. */
int hl_dispatcher_status(hl_dispatcher *d, const char *connector, int *held,
                         int *circuit);

typedef struct {
    uint64_t attempts;
    uint64_t delivered;
    uint64_t retried;
    uint64_t failed; /* failed or expired */
    uint64_t circuit_opened, circuit_closed;
} hl_dispatch_stats;

void hl_dispatcher_stats_get(const hl_dispatcher *d, hl_dispatch_stats *out);

#endif
