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

void hl_gate_configure(hl_gate *g, const hl_policy_cfg *p, uint64_t now_us)
{
    int was_rated = g->rated;
    g->policy = p;
    g->rated = p->rate.set && p->rate.per_second > 0;
    if (!g->rated)
        return;
    double burst = p->rate.burst >= 1 ? p->rate.burst : 1;
    if (was_rated)
        hl_bucket_reset(&g->bucket, p->rate.per_second, burst, now_us);
    else
        hl_bucket_init(&g->bucket, p->rate.per_second, burst, now_us);
}

int hl_gate_holding(const hl_gate *g, int64_t now_ms)
{
    return g->state == HL_CIRCUIT_OPEN && now_ms < g->open_until_ms;
}

int64_t hl_gate_admit(hl_gate *g, int64_t now_ms, uint64_t now_us,
                      int *change)
{
    *change = HL_GATE_SAME;
    if (g->state == HL_CIRCUIT_OPEN) {
        if (now_ms < g->open_until_ms)
            return g->open_until_ms - now_ms;
        g->state = HL_CIRCUIT_HALF_OPEN;
        g->probing = 0;
        *change = HL_GATE_HALF_OPENED;
    }
    if (g->state == HL_CIRCUIT_HALF_OPEN && g->probing)
        return -1;
    if (g->rated) {
        uint64_t wait = hl_bucket_take(&g->bucket, now_us);
        if (wait)
            return (int64_t)((wait + 999) / 1000);
    }
    if (g->state == HL_CIRCUIT_HALF_OPEN)
        g->probing = 1;
    return 0;
}

uint32_t hl_gate_ahead(const hl_gate *g, uint32_t want, uint64_t lease_ms)
{
    if (g->state == HL_CIRCUIT_HALF_OPEN)
        return 0;
    if (!g->rated)
        return want;
    double can = g->policy->rate.per_second * (double)lease_ms / 2000.0;
    if (can < 1)
        can = 1;
    return can < (double)want ? (uint32_t)can : want;
}

int hl_gate_record(hl_gate *g, int result, int64_t now_ms)
{
    const hl_circuit_cfg *c = &g->policy->circuit;
    if (result == HL_GATE_NEUTRAL) {
        if (g->state == HL_CIRCUIT_HALF_OPEN)
            g->probing = 0; /* no answer: the next one probes */
        return HL_GATE_SAME;
    }
    if (result == HL_GATE_SUCCESS) {
        g->fails = 0;
        if (g->state == HL_CIRCUIT_CLOSED)
            return HL_GATE_SAME;
        g->state = HL_CIRCUIT_CLOSED;
        g->probing = 0;
        return HL_GATE_CLOSED;
    }
    g->fails++;
    if (g->state == HL_CIRCUIT_OPEN)
        return HL_GATE_SAME; /* an attempt from before it opened */
    if (g->state == HL_CIRCUIT_HALF_OPEN ||
        (c->failures && g->fails >= c->failures)) {
        g->state = HL_CIRCUIT_OPEN;
        g->probing = 0;
        g->open_until_ms = now_ms + (int64_t)c->cooldown_ms;
        return HL_GATE_OPENED;
    }
    return HL_GATE_SAME;
}
