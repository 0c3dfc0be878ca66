/* policy.h - delivery policies: when a failed attempt is tried again, and when it stops. */
#ifndef HL_POLICY_H
#define HL_POLICY_H

#include "config.h"

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

#endif
