/* policy.c - delivery policies: when a failed attempt is tried again, and when it stops. */
#include "policy.h"

#include "queue.h"

#include <math.h>

uint64_t hl_retry_delay(const hl_retry_cfg *r, uint32_t made)
{
    if (r->n_schedule) {
        size_t i = made < r->n_schedule ? made : r->n_schedule - 1;
        return r->schedule_ms[i];
    }
    double d = (double)r->base_ms * pow(r->factor > 0 ? r->factor : 1,
                                        made > 0 ? (double)(made - 1) : 0);
    if (r->max_ms && d > (double)r->max_ms)
        d = (double)r->max_ms;
    return d > 1e15 ? (uint64_t)1e15 : (uint64_t)d;
}

/* The longest delay the policy ever waits: the bound for Retry-After. */
static uint64_t largest_delay(const hl_retry_cfg *r)
{
    uint64_t m = 0;
    for (size_t i = 0; i < r->n_schedule; i++)
        if (r->schedule_ms[i] > m)
            m = r->schedule_ms[i];
    if (!r->n_schedule)
        m = r->max_ms ? r->max_ms : hl_retry_delay(r, 30);
    return m;
}

int hl_retry_next(const hl_retry_cfg *r, uint32_t made, int64_t created_ms,
                  int64_t now_ms, int64_t retry_after_ms, double rnd,
                  int64_t *next_ms)
{
    *next_ms = 0;
    if (r->max_attempts && made >= r->max_attempts)
        return HL_DS_FAILED;
    double d = (double)hl_retry_delay(r, made);
    if (r->jitter == HL_JITTER_FULL)
        d = d * rnd;
    else if (r->jitter == HL_JITTER_FRACTION)
        d = d * (1 + r->jitter_fraction * (2 * rnd - 1));
    if (retry_after_ms >= 0) {
        uint64_t cap = largest_delay(r);
        double ra = (double)retry_after_ms > (double)cap ? (double)cap
                                                         : (double)retry_after_ms;
        if (ra > d)
            d = ra;
    }
    if (d < 0)
        d = 0;
    int64_t next = now_ms + (int64_t)d;
    if (r->max_age_ms && next > created_ms + (int64_t)r->max_age_ms)
        return HL_DS_EXPIRED;
    *next_ms = next;
    return HL_DS_RETRYING;
}
