/* test_policy.c - delivery policies: the delay before each retry, jitter, Retry-After, and when retrying stops. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "policy.h"
#include "queue.h"

#include <string.h>

#define NOW INT64_C(1717243200000) /* 2024-06-01T12:00:00Z */
#define SEC INT64_C(1000)
#define MIN (60 * SEC)

/* ---- helpers ------------------------------------------------------------ */

/* A schedule policy, as `retry: {schedule: [...]}` loads it, without jitter
 * or max_age. The schedule lives as long as the test's own array. */
static hl_retry_cfg schedule_of(uint64_t *ms, size_t n, uint64_t max_attempts)
{
    hl_retry_cfg r;
    memset(&r, 0, sizeof r);
    r.schedule_ms = ms;
    r.n_schedule = n;
    r.max_attempts = max_attempts;
    r.jitter = HL_JITTER_NONE;
    return r;
}

static hl_retry_cfg exponential_of(uint64_t base, double factor, uint64_t max,
                                   uint64_t max_attempts)
{
    hl_retry_cfg r;
    memset(&r, 0, sizeof r);
    r.exponential = true;
    r.base_ms = base;
    r.factor = factor;
    r.max_ms = max;
    r.max_attempts = max_attempts;
    r.jitter = HL_JITTER_NONE;
    return r;
}

/* After attempt `made` failed at NOW: the state, and next_ms through *next. */
static int next_after(const hl_retry_cfg *r, uint32_t made, int64_t created,
                      int64_t retry_after, double rnd, int64_t *next)
{
    *next = -12345; /* overwritten either way */
    return hl_retry_next(r, made, created, NOW, retry_after, rnd, next);
}

/* Retrying, due exactly `delay` after NOW. */
static void assert_retry_in(const hl_retry_cfg *r, uint32_t made,
                            int64_t retry_after, double rnd, int64_t delay)
{
    int64_t next;
    int st = next_after(r, made, NOW, retry_after, rnd, &next);
    if (st != HL_DS_RETRYING)
        fail_msg("after attempt %u: state %s, want retrying", made,
                 hl_delivery_state_name(st));
    if (next != NOW + delay)
        fail_msg("after attempt %u: next attempt in %lld ms, want %lld", made,
                 (long long)(next - NOW), (long long)delay);
}

/* Retrying, due between lo and hi ms after NOW (float rounding). */
static void assert_retry_between(const hl_retry_cfg *r, uint32_t made,
                                 int64_t retry_after, double rnd, int64_t lo,
                                 int64_t hi)
{
    int64_t next;
    assert_int_equal(next_after(r, made, NOW, retry_after, rnd, &next),
                     HL_DS_RETRYING);
    if (next < NOW + lo || next > NOW + hi)
        fail_msg("rnd %.4f: next attempt in %lld ms, want %lld..%lld", rnd,
                 (long long)(next - NOW), (long long)lo, (long long)hi);
}

/* ---- schedules ---------------------------------------------------------- */

/* schedule[k] is the delay before attempt k + 1: [0s, 5s, 5m] sends at
 * once, then 5 s after the first failure, then 5 min after the second. */
static void test_schedule_delay_before_each_attempt(void **state)
{
    (void)state;
    uint64_t s[] = {0, 5 * SEC, 5 * MIN};
    hl_retry_cfg r = schedule_of(s, 3, 3);
    assert_int_equal(hl_retry_delay(&r, 0), 0);
    assert_int_equal(hl_retry_delay(&r, 1), 5 * SEC);
    assert_int_equal(hl_retry_delay(&r, 2), 5 * MIN);
    /* Beyond the schedule: its last entry again. */
    assert_int_equal(hl_retry_delay(&r, 3), 5 * MIN);
    assert_int_equal(hl_retry_delay(&r, 4000000000u), 5 * MIN);

    assert_retry_in(&r, 1, -1, 0.5, 5 * SEC);
    assert_retry_in(&r, 2, -1, 0.5, 5 * MIN);
}

static void test_schedule_stops_at_max_attempts(void **state)
{
    (void)state;
    uint64_t s[] = {0, 1 * SEC, 5 * SEC, 30 * SEC};
    hl_retry_cfg r = schedule_of(s, 4, 4);
    assert_retry_in(&r, 3, -1, 0.5, 30 * SEC);
    int64_t next;
    assert_int_equal(next_after(&r, 4, NOW, -1, 0.5, &next), HL_DS_FAILED);
    assert_int_equal(next, 0);
    assert_int_equal(next_after(&r, 5, NOW, -1, 0.5, &next), HL_DS_FAILED);
    assert_int_equal(next, 0);
    /* A Retry-After does not buy another attempt. */
    assert_int_equal(next_after(&r, 4, NOW, 1000, 0.5, &next), HL_DS_FAILED);

    /* max_attempts beyond the schedule: the last delay repeats. */
    r.max_attempts = 6;
    assert_retry_in(&r, 4, -1, 0.5, 30 * SEC);
    assert_retry_in(&r, 5, -1, 0.5, 30 * SEC);
    assert_int_equal(next_after(&r, 6, NOW, -1, 0.5, &next), HL_DS_FAILED);

    /* One attempt only. */
    r.max_attempts = 1;
    assert_int_equal(next_after(&r, 1, NOW, -1, 0.5, &next), HL_DS_FAILED);
}

/* The loader turns max_attempts 0 into the schedule's length; given to the
 * policy as is, 0 means no limit. */
static void test_max_attempts_zero_is_unlimited(void **state)
{
    (void)state;
    uint64_t s[] = {0, 2 * SEC};
    hl_retry_cfg r = schedule_of(s, 2, 0);
    assert_retry_in(&r, 2, -1, 0.5, 2 * SEC);
    assert_retry_in(&r, 1000, -1, 0.5, 2 * SEC);
    assert_retry_in(&r, UINT32_MAX, -1, 0.5, 2 * SEC);

    hl_retry_cfg e = exponential_of(1 * SEC, 2, 10 * MIN, 0);
    assert_retry_in(&e, 500, -1, 0.5, 10 * MIN);
}

/* ---- exponential -------------------------------------------------------- */

static void test_exponential_doubles_up_to_cap(void **state)
{
    (void)state;
    hl_retry_cfg r = exponential_of(1 * SEC, 2, 1 * MIN, 100);
    assert_int_equal(hl_retry_delay(&r, 1), 1 * SEC);
    assert_int_equal(hl_retry_delay(&r, 2), 2 * SEC);
    assert_int_equal(hl_retry_delay(&r, 3), 4 * SEC);
    assert_int_equal(hl_retry_delay(&r, 6), 32 * SEC);
    assert_int_equal(hl_retry_delay(&r, 7), 1 * MIN); /* 64 s, capped */
    assert_int_equal(hl_retry_delay(&r, 99), 1 * MIN);
    assert_int_equal(hl_retry_delay(&r, UINT32_MAX), 1 * MIN);

    assert_retry_in(&r, 1, -1, 0.5, 1 * SEC);
    assert_retry_in(&r, 4, -1, 0.5, 8 * SEC);
    assert_retry_in(&r, 30, -1, 0.5, 1 * MIN);
    int64_t next;
    assert_int_equal(next_after(&r, 100, NOW, -1, 0.5, &next), HL_DS_FAILED);
    assert_int_equal(next, 0);
}

static void test_exponential_other_factor_and_no_cap(void **state)
{
    (void)state;
    hl_retry_cfg r = exponential_of(500, 3, 0, 10);
    assert_int_equal(hl_retry_delay(&r, 1), 500);
    assert_int_equal(hl_retry_delay(&r, 2), 1500);
    assert_int_equal(hl_retry_delay(&r, 3), 4500);
    assert_int_equal(hl_retry_delay(&r, 5), 40500);
    /* No cap: huge attempt numbers neither overflow nor wrap around. */
    uint64_t far = hl_retry_delay(&r, 4000);
    assert_true(far >= hl_retry_delay(&r, 30));
    assert_true(far <= UINT64_C(1000000000000000)); /* ~31 700 years */

    /* A factor of 1: the same delay every time. */
    r = exponential_of(7 * SEC, 1, 1 * MIN, 10);
    assert_int_equal(hl_retry_delay(&r, 1), 7 * SEC);
    assert_int_equal(hl_retry_delay(&r, 9), 7 * SEC);
}

/* ---- jitter ------------------------------------------------------------- */

static void test_jitter_full(void **state)
{
    (void)state;
    uint64_t s[] = {0, 10 * SEC};
    hl_retry_cfg r = schedule_of(s, 2, 5);
    r.jitter = HL_JITTER_FULL;
    /* Uniform in [0, delay]: rnd scales the delay. */
    assert_retry_in(&r, 1, -1, 0.0, 0);
    assert_retry_in(&r, 1, -1, 0.5, 5 * SEC);
    assert_retry_between(&r, 1, -1, 0.999, 9989, 9990);
    assert_retry_between(&r, 1, -1, 0.25, 2500, 2500);
}

static void test_jitter_fraction(void **state)
{
    (void)state;
    uint64_t s[] = {0, 10 * SEC};
    hl_retry_cfg r = schedule_of(s, 2, 5);
    r.jitter = HL_JITTER_FRACTION;
    r.jitter_fraction = 0.2;
    /* delay * (1 +- 0.2): 8 s .. 12 s, 10 s in the middle. */
    assert_retry_between(&r, 1, -1, 0.0, 7999, 8000);
    assert_retry_between(&r, 1, -1, 0.5, 9999, 10000);
    assert_retry_between(&r, 1, -1, 0.99999, 11999, 12000);
    for (int i = 0; i < 100; i++)
        assert_retry_between(&r, 1, -1, i / 100.0, 7999, 12000);

    /* With exponential backoff too. */
    hl_retry_cfg e = exponential_of(1 * SEC, 2, 1 * MIN, 10);
    e.jitter = HL_JITTER_FRACTION;
    e.jitter_fraction = 0.5;
    assert_retry_between(&e, 3, -1, 0.0, 1999, 2000);
    assert_retry_between(&e, 3, -1, 0.99999, 5999, 6000);
}

static void test_no_jitter_ignores_rnd(void **state)
{
    (void)state;
    uint64_t s[] = {0, 10 * SEC};
    hl_retry_cfg r = schedule_of(s, 2, 5);
    assert_retry_in(&r, 1, -1, 0.0, 10 * SEC);
    assert_retry_in(&r, 1, -1, 0.999, 10 * SEC);
}

/* ---- Retry-After -------------------------------------------------------- */

static void test_retry_after_longer_than_delay_is_honoured(void **state)
{
    (void)state;
    uint64_t s[] = {0, 5 * SEC, 10 * MIN};
    hl_retry_cfg r = schedule_of(s, 3, 5);
    /* 429 with Retry-After: 30: the policy would wait 5 s. */
    assert_retry_in(&r, 1, 30 * SEC, 0.5, 30 * SEC);
    /* Shorter than the policy's own delay: the delay wins. */
    assert_retry_in(&r, 1, 2 * SEC, 0.5, 5 * SEC);
    assert_retry_in(&r, 1, 0, 0.5, 5 * SEC);
    /* -1: none given. */
    assert_retry_in(&r, 1, -1, 0.5, 5 * SEC);

    /* Full jitter may pick 0; the destination's wish still holds. */
    r.jitter = HL_JITTER_FULL;
    assert_retry_in(&r, 1, 7 * SEC, 0.0, 7 * SEC);
}

static void test_retry_after_clamped_to_largest_delay(void **state)
{
    (void)state;
    uint64_t s[] = {0, 5 * SEC, 10 * MIN, 1 * MIN};
    hl_retry_cfg r = schedule_of(s, 4, 5);
    /* "Retry-After: 86400" cannot park a delivery for a day when the
     * policy never waits more than 10 min. */
    assert_retry_in(&r, 1, 86400 * SEC, 0.5, 10 * MIN);
    assert_retry_in(&r, 1, 10 * MIN, 0.5, 10 * MIN);
    assert_retry_in(&r, 1, 10 * MIN - 1, 0.5, 10 * MIN - 1);

    hl_retry_cfg e = exponential_of(1 * SEC, 2, 2 * MIN, 10);
    assert_retry_in(&e, 1, 3600 * SEC, 0.5, 2 * MIN);
    assert_retry_in(&e, 1, 90 * SEC, 0.5, 90 * SEC);
}

/* ---- max_age ------------------------------------------------------------ */

static void test_max_age_expires(void **state)
{
    (void)state;
    uint64_t s[] = {0, 20 * SEC};
    hl_retry_cfg r = schedule_of(s, 2, 0);
    r.max_age_ms = 1 * MIN;
    int64_t next;
    /* Created 30 s ago: the next attempt at +20 s is within the minute. */
    assert_int_equal(next_after(&r, 1, NOW - 30 * SEC, -1, 0.5, &next),
                     HL_DS_RETRYING);
    assert_int_equal(next, NOW + 20 * SEC);
    /* Exactly at max_age still goes. */
    assert_int_equal(next_after(&r, 1, NOW - 40 * SEC, -1, 0.5, &next),
                     HL_DS_RETRYING);
    assert_int_equal(next, NOW + 20 * SEC);
    /* Created 41 s ago: +20 s falls after max_age. */
    assert_int_equal(next_after(&r, 1, NOW - 41 * SEC, -1, 0.5, &next),
                     HL_DS_EXPIRED);
    assert_int_equal(next, 0);
    /* A Retry-After that reaches past max_age expires it too (here the
     * largest delay is 20 s, so a longer one is clamped to 20 s). */
    assert_int_equal(next_after(&r, 1, NOW - 10 * SEC, 55 * SEC, 0.5, &next),
                     HL_DS_RETRYING);
    assert_int_equal(next, NOW + 20 * SEC);
    uint64_t longer[] = {0, 20 * SEC, 2 * MIN};
    hl_retry_cfg l = schedule_of(longer, 3, 0);
    l.max_age_ms = 1 * MIN;
    assert_int_equal(next_after(&l, 1, NOW - 10 * SEC, 49 * SEC, 0.5, &next),
                     HL_DS_RETRYING);
    assert_int_equal(next, NOW + 49 * SEC);
    assert_int_equal(next_after(&l, 1, NOW - 10 * SEC, 90 * SEC, 0.5, &next),
                     HL_DS_EXPIRED);
    assert_int_equal(next, 0);

    /* max_age 0: no age limit. */
    r.max_age_ms = 0;
    assert_int_equal(next_after(&r, 1, NOW - 400 * 86400 * SEC, -1, 0.5,
                                &next),
                     HL_DS_RETRYING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_delay_before_each_attempt),
        cmocka_unit_test(test_schedule_stops_at_max_attempts),
        cmocka_unit_test(test_max_attempts_zero_is_unlimited),
        cmocka_unit_test(test_exponential_doubles_up_to_cap),
        cmocka_unit_test(test_exponential_other_factor_and_no_cap),
        cmocka_unit_test(test_jitter_full),
        cmocka_unit_test(test_jitter_fraction),
        cmocka_unit_test(test_no_jitter_ignores_rnd),
        cmocka_unit_test(test_retry_after_longer_than_delay_is_honoured),
        cmocka_unit_test(test_retry_after_clamped_to_largest_delay),
        cmocka_unit_test(test_max_age_expires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
