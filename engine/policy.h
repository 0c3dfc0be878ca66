/* policy.h - delivery policies: when a failed attempt is tried again, and when it stops. */
#ifndef HL_POLICY_H
#define HL_POLICY_H

#include "config.h"
#include "rate.h"

#include <stdint.h>

/*
 * After attempt number `made` (1 for the first) of a delivery created at
 * created_ms failed with a retryable outcome at now_ms: the state it goes
 * to (HL_DS_RETRYING, or HL_DS_FAILED once max_attempts are made, or
 * HL_DS_EXPIRED when the next attempt would fall after max_age) and, when
 * retrying, the time of the next attempt in *next_ms. retry_after_ms (-1:
 * none) is the destination's Retry-After: it is honoured, up to the
 * policy's largest delay. rnd is a uniform random number in [0, 1) for the
 * jitter.
 */
int hl_retry_next(const hl_retry_cfg *r, uint32_t made, int64_t created_ms,
                  int64_t now_ms, int64_t retry_after_ms, double rnd,
                  int64_t *next_ms);

/* The delay before attempt made + 1, without jitter or Retry-After. */
uint64_t hl_retry_delay(const hl_retry_cfg *r, uint32_t made);

/*
 * A connector's gate: its circuit breaker and its token bucket. After
 * `circuit.failures` attempts in a row fail (retryable failures: 5xx, 429,
 * timeouts, refused or reset connections), the circuit opens for
 * `circuit.cooldown`: nothing is sent and no attempt is spent. Then one
 * probe goes; its success closes the circuit, its failure opens it again.
 * The bucket lets attempts start at `rate.per_second` after a `rate.burst`.
 */
typedef enum {
    HL_CIRCUIT_CLOSED,
    HL_CIRCUIT_OPEN,
    HL_CIRCUIT_HALF_OPEN, /* one probe decides */
} hl_circuit_state;

typedef enum {
    HL_GATE_NEUTRAL,  /* says nothing of the destination (given back) */
    HL_GATE_SUCCESS,  /* the destination answered (2xx, or a 4xx) */
    HL_GATE_FAILURE,  /* a retryable failure */
} hl_gate_result;

typedef enum {
    HL_GATE_SAME,
    HL_GATE_OPENED,
    HL_GATE_HALF_OPENED,
    HL_GATE_CLOSED,
} hl_gate_change;

typedef struct {
    const hl_policy_cfg *policy;
    int state; /* hl_circuit_state */
    uint32_t fails;
    int64_t open_until_ms;
    int probing;
    int rated;
    hl_bucket bucket;
} hl_gate;

/* Take the policy's settings (again, after a reload): the circuit keeps
 * its state, the bucket its tokens. */
void hl_gate_configure(hl_gate *g, const hl_policy_cfg *p, uint64_t now_us);

/* May an attempt start now? 0: yes (a token is spent; a half-open
 * circuit's probe is out). Else the milliseconds until asking again makes
 * sense, or -1 when only the end of an attempt in flight can change it.
 * *change tells when the circuit went half-open. */
int64_t hl_gate_admit(hl_gate *g, int64_t now_ms, uint64_t now_us,
                      int *change);

/* How many deliveries to hold leased ahead of those in flight: what can
 * start within half a lease at the policy's rate, at most want. */
uint32_t hl_gate_ahead(const hl_gate *g, uint32_t want, uint64_t lease_ms);

/* Whether the circuit holds everything back now (open, cooling down). */
int hl_gate_holding(const hl_gate *g, int64_t now_ms);

/* Count an attempt's result; returns the circuit's change. */
int hl_gate_record(hl_gate *g, int result, int64_t now_ms);

#endif
