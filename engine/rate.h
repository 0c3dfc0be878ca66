/* rate.h - token buckets, for intake limits and delivery rate shaping. */
#ifndef HL_RATE_H
#define HL_RATE_H

#include <stdint.h>

typedef struct {
    double per_us; /* tokens added per microsecond */
    double burst;  /* capacity */
    double tokens;
    uint64_t last_us;
} hl_bucket;

/* A full bucket of `burst` tokens refilled at per_second. */
void hl_bucket_init(hl_bucket *b, double per_second, double burst,
                    uint64_t now_us);
/* Change the rate and capacity, keeping the tokens (capped). */
void hl_bucket_reset(hl_bucket *b, double per_second, double burst,
                     uint64_t now_us);
/* Take one token: returns 0, or else the microseconds until one is there. */
uint64_t hl_bucket_take(hl_bucket *b, uint64_t now_us);
/* Monotonic microseconds. */
uint64_t hl_mono_us(void);

#endif
