/* rate.c - token buckets, for intake limits and delivery rate shaping. */
#include "rate.h"

#include <math.h>
#include <time.h>

uint64_t hl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void hl_bucket_init(hl_bucket *b, double per_second, double burst,
                    uint64_t now_us)
{
    b->per_us = per_second / 1e6;
    b->burst = burst < 1 ? 1 : burst;
    b->tokens = b->burst;
    b->last_us = now_us;
}

static void refill(hl_bucket *b, uint64_t now_us)
{
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * b->per_us;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->last_us = now_us;
}

void hl_bucket_reset(hl_bucket *b, double per_second, double burst,
                     uint64_t now_us)
{
    refill(b, now_us);
    b->per_us = per_second / 1e6;
    b->burst = burst < 1 ? 1 : burst;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
}

uint64_t hl_bucket_take(hl_bucket *b, uint64_t now_us)
{
    refill(b, now_us);
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    if (b->per_us <= 0)
        return UINT64_MAX;
    return (uint64_t)ceil((1 - b->tokens) / b->per_us);
}
