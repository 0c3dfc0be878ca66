/* test_admin.c - the admin API's pure parts: query parameters, times, published events, metrics text. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "admin.h"
#include "err.h"
#include "event.h"
#include "metrics.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- query parameters ---------------------------------------------------- */

static void test_query_param_decodes_and_finds_exact_names(void **state)
{
    (void)state;
    char v[64];
    const char *q = "state=failed%2Cexpired&since=15m&type=alert.*&x=a+b&e";
    assert_true(hl_query_param(q, "state", v, sizeof v));
    assert_string_equal(v, "failed,expired");
    assert_true(hl_query_param(q, "type", v, sizeof v));
    assert_string_equal(v, "alert.*");
    assert_true(hl_query_param(q, "x", v, sizeof v));
    assert_string_equal(v, "a b");
    assert_true(hl_query_param(q, "e", v, sizeof v));
    assert_string_equal(v, "");
    assert_false(hl_query_param(q, "stat", v, sizeof v));
    assert_false(hl_query_param(NULL, "state", v, sizeof v));
    /* A broken escape is kept as written; output never overflows. */
    assert_true(hl_query_param("k=%zz%4", "k", v, sizeof v));
    assert_string_equal(v, "%zz%4");
    char tiny[4];
    assert_true(hl_query_param("k=abcdef", "k", tiny, sizeof tiny));
    assert_string_equal(tiny, "abc");
}

/* ---- times --------------------------------------------------------------- */

static void test_parse_when_forms(void **state)
{
    (void)state;
    int64_t t, now = 1764316800000; /* 2025-11-28T08:00:00Z */
    assert_int_equal(hl_parse_when("2025-11-28T08:00:00Z", now, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(hl_parse_when("2025-11-28T09:00:00.250+01:00", now, &t),
                     0);
    assert_int_equal(t, now + 250);
    assert_int_equal(hl_parse_when("2025-11-28T07:30:00-00:30", now, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(hl_parse_when("15m", now, &t), 0);
    assert_int_equal(t, now - 15 * 60000);
    assert_int_equal(hl_parse_when("7d", now, &t), 0);
    assert_int_equal(t, now - 7 * 86400000LL);
    assert_int_equal(hl_parse_when("1764316800000", now, &t), 0);
    assert_int_equal(t, now);
    /* 1970 and leap days go through the same arithmetic. */
    assert_int_equal(hl_parse_when("1970-01-01T00:00:00Z", now, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(hl_parse_when("2024-02-29T00:00:00Z", now, &t), 0);
    assert_int_equal(t, 1709164800000);
}

static void test_parse_when_rejects(void **state)
{
    (void)state;
    int64_t t;
    const char *bad[] = {"",  "yesterday", "2025-13-01T00:00:00Z",
                         "2025-11-28 08:00:00Z", "2025-11-28T08:00:00",
                         "15x", "-5m"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (hl_parse_when(bad[i], 0, &t) != HL_ESYNTAX)
            fail_msg("'%s' was accepted", bad[i]);
}

/* ---- published events ---------------------------------------------------- */

static json_t *complete(const char *text, char *why, size_t cap, int *rc)
{
    json_t *ev = json_loads(text, 0, NULL);
    assert_non_null(ev);
    *rc = hl_event_complete(ev, "acme", "01M8GHH5Z2R2JZJG00KKSE1AZK",
                            "corr-1", 1764316800000, why, cap);
    return ev;
}

static void test_event_completed_with_defaults(void **state)
{
    (void)state;
    char why[512];
    int rc;
    json_t *ev = complete("{\"type\":\"deploy.finished\",\"data\":{\"title\":"
                          "\"v2 is out\"}}",
                          why, sizeof why, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "id")),
                        "01M8GHH5Z2R2JZJG00KKSE1AZK");
    assert_string_equal(json_string_value(json_object_get(ev, "source")),
                        "/acme/api");
    assert_string_equal(json_string_value(json_object_get(ev, "tenant")),
                        "acme");
    assert_string_equal(json_string_value(json_object_get(ev, "severity")),
                        "info");
    assert_string_equal(json_string_value(json_object_get(ev, "time")),
                        "2025-11-28T08:00:00.000Z");
    assert_string_equal(
        json_string_value(json_object_get(ev, "correlationid")), "corr-1");
    json_t *data = json_object_get(ev, "data");
    assert_true(json_is_object(json_object_get(data, "labels")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(data, "raw"), "title")),
                        "v2 is out");
    json_decref(ev);
}

static void test_event_every_problem_listed(void **state)
{
    (void)state;
    char why[1024];
    int rc;
    json_t *ev = complete(
        "{\"id\":\"x\",\"type\":\"Deploy Done\",\"tenant\":\"beta\","
        "\"severity\":\"loud\",\"time\":\"yesterday\",\"extra\":1,"
        "\"source\":\"/beta/x\",\"data\":{\"labels\":{\"n\":1},\"more\":2}}",
        why, sizeof why, &rc);
    assert_int_equal(rc, HL_ESYNTAX);
    const char *want[] = {"extra: not an attribute", "id: is assigned",
                          "tenant: must be 'acme'", "source: is set by",
                          "type: 'Deploy Done'", "time: 'yesterday'",
                          "severity: 'loud'", "data.more: not an attribute",
                          "data.title: required",
                          "data.labels.n: must be a string"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(why, want[i]))
            fail_msg("'%s' missing from: %s", want[i], why);
    json_decref(ev);
    ev = complete("[1]", why, sizeof why, &rc);
    assert_int_equal(rc, HL_ESYNTAX);
    assert_non_null(strstr(why, "must be a JSON object"));
    json_decref(ev);
}

/* ---- metrics ------------------------------------------------------------- */

static void test_metrics_text_format(void **state)
{
    (void)state;
    hl_metric *c = hl_metric_counter("test_requests_total", "Requests.",
                                     "source,status");
    const char *v1[] = {"a\"b\\c\nd", "200"};
    hl_metric_add(c, v1, 2);
    hl_metric_add(c, v1, 1);
    static const double bounds[] = {0.1, 1};
    hl_metric *h = hl_metric_histogram("test_seconds", "Latency.", "",
                                       bounds, 2);
    hl_metric_observe(h, NULL, 0.05);
    hl_metric_observe(h, NULL, 0.5);
    hl_metric_observe(h, NULL, 5);
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_metrics_render(&b), 0);
    const char *want[] = {
        "# HELP test_requests_total Requests.\n"
        "# TYPE test_requests_total counter\n"
        "test_requests_total{source=\"a\\\"b\\\\c\\nd\",status=\"200\"} 3\n",
        "# TYPE test_seconds histogram\n"
        "test_seconds_bucket{le=\"0.1\"} 1\n"
        "test_seconds_bucket{le=\"1\"} 2\n"
        "test_seconds_bucket{le=\"+Inf\"} 3\n"
        "test_seconds_sum 5.5499999999999998\n"
        "test_seconds_count 3\n"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(b.p, want[i]))
            fail_msg("missing:\n%s\nin:\n%s", want[i], b.p);
    hl_buf_free(&b);
}

static void test_metrics_label_sets_bounded(void **state)
{
    (void)state;
    hl_metric *c = hl_metric_counter("test_bounded_total", "Bounded.", "k");
    for (int i = 0; i < HL_METRIC_SERIES + 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "v%d", i);
        const char *v[] = {k};
        hl_metric_add(c, v, 1);
    }
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_metrics_render(&b), 0);
    assert_non_null(strstr(b.p, "test_bounded_total{k=\"_other\"} 50\n"));
    assert_null(strstr(b.p, "k=\"v200\""));
    assert_non_null(strstr(b.p, "k=\"v199\"} 1\n"));
    hl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_param_decodes_and_finds_exact_names),
        cmocka_unit_test(test_parse_when_forms),
        cmocka_unit_test(test_parse_when_rejects),
        cmocka_unit_test(test_event_completed_with_defaults),
        cmocka_unit_test(test_event_every_problem_listed),
        cmocka_unit_test(test_metrics_text_format),
        cmocka_unit_test(test_metrics_label_sets_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
