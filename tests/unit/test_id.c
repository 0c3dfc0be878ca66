/* test_id.c - ULIDs (format, order in one millisecond, across threads, clock steps) and random hex. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "err.h"
#include "id.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/*
 * hl_id_new keeps the last millisecond it used process-wide and never goes
 * below it, so every test takes a millisecond above all earlier ones: a day
 * ahead of the clock, then one second further each time.
 */
static int64_t fresh_ms(void)
{
    static int64_t next;
    if (!next)
        next = hl_now_ms() + INT64_C(86400000);
    next += 1000;
    return next;
}

/* 26 characters of Crockford base32, the first at most '7' (128 bits). */
static void assert_ulid(const char *id)
{
    assert_non_null(id);
    assert_int_equal(strlen(id), HL_ID_LEN);
    for (size_t i = 0; i < HL_ID_LEN; i++) {
        if (!id[i] || !strchr(crockford, id[i]))
            fail_msg("id %s: character %zu '%c' is not Crockford base32", id,
                     i, id[i]);
    }
    assert_true(id[0] >= '0' && id[0] <= '7');
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* ---- hl_id_new ---------------------------------------------------------- */

static void test_id_format_crockford_base32(void **state)
{
    (void)state;
    char id[HL_ID_LEN + 1];
    memset(id, 'x', sizeof id);
    int64_t ms = fresh_ms();
    assert_int_equal(hl_id_new(ms, id), 0);
    assert_ulid(id);
    assert_int_equal(id[HL_ID_LEN], '\0');
    assert_int_equal(hl_id_time(id), ms);

    /* The clock's own time works too, and reads back as a time near now. */
    int64_t now = hl_now_ms();
    assert_true(now > INT64_C(1577836800000));  /* after 2020-01-01 */
    assert_true(now < INT64_C(4102444800000));  /* before 2100-01-01 */
    char later[HL_ID_LEN + 1];
    assert_int_equal(hl_id_new(fresh_ms(), later), 0);
    assert_ulid(later);
    assert_true(strcmp(later, id) > 0);
}

static void test_id_same_ms_strictly_increasing_10000(void **state)
{
    (void)state;
    enum { N = 10000 };
    static char ids[N][HL_ID_LEN + 1];
    int64_t ms = fresh_ms();
    for (int i = 0; i < N; i++) {
        assert_int_equal(hl_id_new(ms, ids[i]), 0);
        assert_ulid(ids[i]);
        assert_int_equal(hl_id_time(ids[i]), ms);
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %d %s is not above id %d %s", i, ids[i], i - 1,
                     ids[i - 1]);
    }
    /* The time part is shared: the first 10 characters are all the same. */
    assert_memory_equal(ids[0], ids[N - 1], 10);
}

enum { THREADS = 4, PER_THREAD = 5000 };

typedef struct {
    int64_t ms;
    int failures;
    char ids[PER_THREAD][HL_ID_LEN + 1];
} id_worker;

static void *make_ids(void *arg)
{
    id_worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (hl_id_new(w->ms, w->ids[i]) != 0)
            w->failures++;
        /* Each thread's own ids are increasing too. */
        else if (i > 0 && strcmp(w->ids[i - 1], w->ids[i]) >= 0)
            w->failures++;
    }
    return NULL;
}

static void test_id_threads_unique_and_increasing(void **state)
{
    (void)state;
    id_worker *w = calloc(THREADS, sizeof *w);
    char(*all)[HL_ID_LEN + 1] = calloc(THREADS * PER_THREAD, sizeof *all);
    assert_non_null(w);
    assert_non_null(all);
    pthread_t t[THREADS];
    int64_t ms = fresh_ms();
    /* All threads in one millisecond value: the most contention there is. */
    for (int i = 0; i < THREADS; i++) {
        w[i].ms = ms;
        assert_int_equal(pthread_create(&t[i], NULL, make_ids, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    size_t n = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].failures, 0);
        for (int k = 0; k < PER_THREAD; k++) {
            assert_ulid(w[i].ids[k]);
            assert_int_equal(hl_id_time(w[i].ids[k]), ms);
            memcpy(all[n++], w[i].ids[k], HL_ID_LEN + 1);
        }
    }
    qsort(all, n, sizeof *all, cmp_ids);
    for (size_t i = 1; i < n; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("duplicate id %s", all[i]);
    assert_int_equal(n, THREADS * PER_THREAD);
    free(all);
    free(w);
}

static void test_id_clock_step_back_still_increasing(void **state)
{
    (void)state;
    char prev[HL_ID_LEN + 1], id[HL_ID_LEN + 1];
    int64_t ms = fresh_ms();
    assert_int_equal(hl_id_new(ms, prev), 0);
    /* The clock steps back by 5 s, by 1 ms, then to 0: ids keep rising and
     * keep the last time seen rather than going back with the clock. */
    const int64_t back[] = {ms - 5000, ms - 1, ms - 5000, 0, ms};
    for (size_t i = 0; i < sizeof back / sizeof *back; i++) {
        assert_int_equal(hl_id_new(back[i], id), 0);
        assert_ulid(id);
        if (strcmp(prev, id) >= 0)
            fail_msg("after a step back to %lld: %s is not above %s",
                     (long long)back[i], id, prev);
        assert_int_equal(hl_id_time(id), ms);
        memcpy(prev, id, sizeof id);
    }
    /* The clock moves on: the new millisecond shows. */
    assert_int_equal(hl_id_new(ms + 1, id), 0);
    assert_true(strcmp(prev, id) < 0);
    assert_int_equal(hl_id_time(id), ms + 1);
}

/* ---- hl_id_time --------------------------------------------------------- */

static void test_id_time_round_trips(void **state)
{
    (void)state;
    /* The ULID specification's ulid(1469918176385), and the largest ULID. */
    assert_int_equal(hl_id_time("01ARYZ6S41TSV4RRFFQ69G5FAV"),
                     INT64_C(1469918176385));
    assert_int_equal(hl_id_time("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
                     INT64_C(281474976710655));
    assert_int_equal(hl_id_time("00000000000000000000000000"), 0);
    for (int i = 0; i < 100; i++) {
        int64_t ms = fresh_ms() + i;
        char id[HL_ID_LEN + 1];
        assert_int_equal(hl_id_new(ms, id), 0);
        assert_int_equal(hl_id_time(id), ms);
    }
}

static void test_id_time_rejects_bad_input(void **state)
{
    (void)state;
    assert_int_equal(hl_id_time(NULL), -1);
    assert_int_equal(hl_id_time(""), -1);
    assert_int_equal(hl_id_time("01ARZ3NDEKTSV4RRFFQ69G5FA"), -1);   /* 25 */
    assert_int_equal(hl_id_time("01ARZ3NDEKTSV4RRFFQ69G5FAVX"), -1); /* 27 */
    /* Letters Crockford leaves out, and punctuation, in the time part. */
    assert_int_equal(hl_id_time("01ARZ3NDEUTSV4RRFFQ69G5FAV"), -1);
    assert_int_equal(hl_id_time("0IARZ3NDEKTSV4RRFFQ69G5FAV"), -1);
    assert_int_equal(hl_id_time("01LRZ3NDEKTSV4RRFFQ69G5FAV"), -1);
    assert_int_equal(hl_id_time("01ARO3NDEKTSV4RRFFQ69G5FAV"), -1);
    assert_int_equal(hl_id_time("01ARZ-NDEKTSV4RRFFQ69G5FAV"), -1);
    assert_int_equal(hl_id_time("01ARZ3NDE TSV4RRFFQ69G5FAV"), -1);
    /* A NUL inside: strlen is short. */
    assert_int_equal(hl_id_time("01ARZ3NDE\0KTSV4RRFFQ69G5FAV"), -1);
}

/* "-1 if it is not a ULID" (id.h): the random part must be base32 too. */
static void test_id_time_rejects_bad_random_part(void **state)
{
    (void)state;
    assert_int_equal(hl_id_time("01ARZ3NDEKTSV4RRFFQ69G5FA!"), -1);
    assert_int_equal(hl_id_time("01ARZ3NDEK----------------"), -1);
    assert_int_equal(hl_id_time("01ARZ3NDEKTSV4RRFFQ69G5FAU"), -1);
}

/* A first character above '7' needs 131 bits: not a ULID (the ULID
 * specification: "should be rejected"), not a time with its top bits lost. */
static void test_id_time_rejects_overflow(void **state)
{
    (void)state;
    assert_int_equal(hl_id_time("80000000000000000000000000"), -1);
    assert_int_equal(hl_id_time("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"), -1);
}

/* ---- hl_random_hex ------------------------------------------------------ */

static void test_random_hex_length_and_charset(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 8, 16, 32, 64};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        char a[2 * 64 + 2], b[2 * 64 + 2];
        memset(a, 'Q', sizeof a);
        memset(b, 'Q', sizeof b);
        assert_int_equal(hl_random_hex(n, a), 0);
        assert_int_equal(hl_random_hex(n, b), 0);
        assert_int_equal(strlen(a), 2 * n);
        assert_int_equal(a[2 * n + 1], 'Q'); /* nothing written past it */
        assert_int_equal(strspn(a, "0123456789abcdef"), 2 * n);
        assert_int_equal(strspn(b, "0123456789abcdef"), 2 * n);
        if (n >= 8) /* 2^-64 of a false alarm */
            assert_string_not_equal(a, b);
    }
    /* Every hex digit turns up: the two nibbles of a byte are both used. */
    char big[2 * 64 + 1];
    int seen[16] = {0};
    for (int round = 0; round < 16; round++) {
        assert_int_equal(hl_random_hex(64, big), 0);
        for (size_t i = 0; big[i]; i++)
            seen[strchr("0123456789abcdef", big[i]) - "0123456789abcdef"]++;
    }
    for (int i = 0; i < 16; i++)
        assert_true(seen[i] > 0);

    char empty[4] = "zzz";
    assert_int_equal(hl_random_hex(0, empty), 0);
    assert_string_equal(empty, "");
}

/* Above its 64-byte buffer it must fail rather than overrun. */
static void test_random_hex_too_long_refused(void **state)
{
    (void)state;
    char out[2 * 65 + 1];
    memset(out, 'Q', sizeof out);
    int rc = hl_random_hex(65, out);
    if (rc == 0) {
        assert_int_equal(strlen(out), 130);
        assert_int_equal(strspn(out, "0123456789abcdef"), 130);
    } else {
        assert_int_equal(rc, HL_EINTERNAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_format_crockford_base32),
        cmocka_unit_test(test_id_same_ms_strictly_increasing_10000),
        cmocka_unit_test(test_id_threads_unique_and_increasing),
        cmocka_unit_test(test_id_clock_step_back_still_increasing),
        cmocka_unit_test(test_id_time_round_trips),
        cmocka_unit_test(test_id_time_rejects_bad_input),
        cmocka_unit_test(test_id_time_rejects_bad_random_part),
        cmocka_unit_test(test_id_time_rejects_overflow),
        cmocka_unit_test(test_random_hex_length_and_charset),
        cmocka_unit_test(test_random_hex_too_long_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
