/* test_policy.c - delivery policies: retry delays, jitter, Retry-After, when retrying stops; the circuit breaker and rate gate. */
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

/* ---- the gate: circuit breaker and rate ---------------------------------- */

static hl_policy_cfg gate_policy(uint64_t failures, uint64_t cooldown_ms)
{
    hl_policy_cfg p;
    memset(&p, 0, sizeof p);
    p.circuit.failures = failures;
    p.circuit.cooldown_ms = cooldown_ms;
    return p;
}

static void test_circuit_opens_after_failures_in_a_row(void **state)
{
    (void)state;
    hl_policy_cfg p = gate_policy(3, 1000);
    hl_gate g;
    memset(&g, 0, sizeof g);
    hl_gate_configure(&g, &p, 0);
    int ch;
    assert_int_equal(hl_gate_admit(&g, NOW, 0, &ch), 0);
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW), HL_GATE_SAME);
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW), HL_GATE_SAME);
    /* A success in between starts the count again. */
    assert_int_equal(hl_gate_record(&g, HL_GATE_SUCCESS, NOW), HL_GATE_SAME);
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW), HL_GATE_SAME);
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW), HL_GATE_SAME);
    /* Given back: says nothing. */
    assert_int_equal(hl_gate_record(&g, HL_GATE_NEUTRAL, NOW), HL_GATE_SAME);
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW + 5),
                     HL_GATE_OPENED);
    assert_true(hl_gate_holding(&g, NOW + 5));
    assert_int_equal(hl_gate_admit(&g, NOW + 5, 0, &ch), 1000);
    assert_int_equal(ch, HL_GATE_SAME);
    /* Attempts from before it opened do not extend the cooldown. */
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW + 500),
                     HL_GATE_SAME);
    assert_true(hl_gate_holding(&g, NOW + 1004));
    assert_false(hl_gate_holding(&g, NOW + 1005));
}

static void test_circuit_one_probe_decides(void **state)
{
    (void)state;
    hl_policy_cfg p = gate_policy(1, 1000);
    hl_gate g;
    memset(&g, 0, sizeof g);
    hl_gate_configure(&g, &p, 0);
    int ch;
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW),
                     HL_GATE_OPENED);
    /* After the cooldown: half-open, one probe and no second. */
    assert_int_equal(hl_gate_admit(&g, NOW + 1000, 0, &ch), 0);
    assert_int_equal(ch, HL_GATE_HALF_OPENED);
    assert_int_equal(hl_gate_admit(&g, NOW + 1001, 0, &ch), -1);
    assert_int_equal(hl_gate_ahead(&g, 16, 10000), 0);
    /* The probe fails: open again for a whole cooldown. */
    assert_int_equal(hl_gate_record(&g, HL_GATE_FAILURE, NOW + 1010),
                     HL_GATE_OPENED);
    assert_int_equal(hl_gate_admit(&g, NOW + 1010, 0, &ch), 1000);
    /* The next probe succeeds: closed, everything may go. */
    assert_int_equal(hl_gate_admit(&g, NOW + 2010, 0, &ch), 0);
    assert_int_equal(hl_gate_record(&g, HL_GATE_SUCCESS, NOW + 2020),
                     HL_GATE_CLOSED);
    assert_int_equal(g.state, HL_CIRCUIT_CLOSED);
    assert_int_equal(hl_gate_admit(&g, NOW + 2021, 0, &ch), 0);
    assert_int_equal(hl_gate_admit(&g, NOW + 2021, 0, &ch), 0);
}

static void test_circuit_probe_given_back_lets_another_probe(void **state)
{
    (void)state;
    hl_policy_cfg p = gate_policy(1, 100);
    hl_gate g;
    memset(&g, 0, sizeof g);
    hl_gate_configure(&g, &p, 0);
    int ch;
    hl_gate_record(&g, HL_GATE_FAILURE, NOW);
    assert_int_equal(hl_gate_admit(&g, NOW + 100, 0, &ch), 0);
    assert_int_equal(hl_gate_record(&g, HL_GATE_NEUTRAL, NOW + 101),
                     HL_GATE_SAME);
    assert_int_equal(hl_gate_admit(&g, NOW + 102, 0, &ch), 0);
}

static void test_rate_burst_then_per_second(void **state)
{
    (void)state;
    hl_policy_cfg p = gate_policy(5, 1000);
    p.rate.set = true;
    p.rate.per_second = 10;
    p.rate.burst = 3;
    hl_gate g;
    memset(&g, 0, sizeof g);
    uint64_t us = 1000000;
    hl_gate_configure(&g, &p, us);
    int ch;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hl_gate_admit(&g, NOW, us, &ch), 0);
    /* Empty: the next token in 100 ms. */
    assert_int_equal(hl_gate_admit(&g, NOW, us, &ch), 100);
    assert_int_equal(hl_gate_admit(&g, NOW + 100, us + 100000, &ch), 0);
    assert_int_equal(hl_gate_admit(&g, NOW + 150, us + 150000, &ch), 50);
    /* What is leased ahead is what the rate can start in half a lease. */
    assert_int_equal(hl_gate_ahead(&g, 64, 2000), 10);
    assert_int_equal(hl_gate_ahead(&g, 4, 2000), 4);
    assert_int_equal(hl_gate_ahead(&g, 64, 100), 1);
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
        cmocka_unit_test(test_circuit_opens_after_failures_in_a_row),
        cmocka_unit_test(test_circuit_one_probe_decides),
        cmocka_unit_test(test_circuit_probe_given_back_lets_another_probe),
        cmocka_unit_test(test_rate_burst_then_per_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
