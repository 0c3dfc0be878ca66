/* test_route.c - routing tables: matches, order, continue, tenants. */
#include "config.h"
#include "route.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static hl_config *g_cfg;
static hl_router *g_router;

static const char config_text[] =
    "tenants:\n"
    "  acme: { token: acme-token-0123456789 }\n"
    "  beta: { token: beta-token-0123456789 }\n"
    "sources:\n"
    "  am: { tenant: acme, kind: alertmanager, verify: { bearer: { tokens: "
    "[t] } } }\n"
    "  gh: { tenant: acme, kind: github, verify: { bearer: { tokens: [t] } } "
    "}\n"
    "  bgen: { tenant: beta, kind: generic, verify: { bearer: { tokens: [t] "
    "} } }\n"
    "connectors:\n"
    "  chat: { plugin: slack, tenant: acme }\n"
    "  pager: { plugin: pagerduty, tenant: acme }\n"
    "  tickets: { plugin: jira, tenant: acme }\n"
    "  beta-out: { plugin: webhook, tenant: beta }\n"
    "  audit: { plugin: file }\n"
    "routes:\n"
    "  - name: page-on-critical\n"
    "    match: { source: am, severity: [critical, error] }\n"
    "    to: [chat, pager]\n"
    "    continue: true\n"
    "  - name: prod-db\n"
    "    match:\n"
    "      source: am\n"
    "      labels: { env: prod, team: { matches: '^(db|storage)$' },"
    " region: { not: eu }, canary: { not_matches: 'yes|true' } }\n"
    "    to: [tickets, chat]\n"
    "  - name: issues\n"
    "    match: { source: gh, type: 'issue.*' }\n"
    "    to: [tickets]\n"
    "  - name: everything\n"
    "    to: [audit, beta-out]\n";

static int setup(void **state)
{
    (void)state;
    hl_diags d = {0};
    if (hl_config_load_string("r.yaml", config_text, strlen(config_text), &d,
                              &g_cfg)) {
        hl_diags_print(&d, stderr);
        return -1;
    }
    hl_diags_free(&d);
    return hl_router_create(g_cfg, &g_router);
}

static int teardown(void **state)
{
    (void)state;
    hl_router_destroy(g_router);
    hl_config_destroy(g_cfg);
    return 0;
}

/* Route an event; returns the connector names joined by ',' and the first
 * route's name. */
static const char *route(const char *tenant, const char *source,
                         const char *type, const char *severity,
                         const char *labels_json, const char **first)
{
    static char out[256];
    char text[1024];
    snprintf(text, sizeof text,
             "{\"tenant\":\"%s\",\"source\":\"/%s/%s\",\"type\":\"%s\","
             "\"severity\":\"%s\",\"data\":{\"labels\":%s}}",
             tenant, tenant, source, type, severity,
             labels_json ? labels_json : "{}");
    json_t *ev = json_loads(text, 0, NULL);
    assert_non_null(ev);
    size_t idx[16];
    size_t n = hl_route_event(g_router, ev, idx, 16, first);
    json_decref(ev);
    out[0] = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, g_cfg->connectors[idx[i]].name);
    }
    return out;
}

static void test_first_match_and_continue(void **state)
{
    (void)state;
    const char *first;
    /* Critical alert: paging route continues, prod-db is then tried and
     * matches, so it stops there; chat is listed once. */
    assert_string_equal(route("acme", "am", "alert.firing", "critical",
                              "{\"env\":\"prod\",\"team\":\"db\"}", &first),
                        "chat,pager,tickets");
    assert_string_equal(first, "page-on-critical");
    /* A warning skips the paging route and stops at prod-db. */
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"prod\",\"team\":\"storage\"}",
                              &first),
                        "tickets,chat");
    assert_string_equal(first, "prod-db");
}

static void test_label_matchers(void **state)
{
    (void)state;
    const char *first;
    /* Equality fails: falls through to the catch-all. */
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"dev\",\"team\":\"db\"}", &first),
                        "audit");
    assert_string_equal(first, "everything");
    /* The regex must match the whole value as written (^...$). */
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"prod\",\"team\":\"dbx\"}", NULL),
                        "audit");
    /* not: a different value passes, the named one fails. */
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"prod\",\"team\":\"db\","
                              "\"region\":\"us\"}",
                              NULL),
                        "tickets,chat");
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"prod\",\"team\":\"db\","
                              "\"region\":\"eu\"}",
                              NULL),
                        "audit");
    /* not_matches: a canary is excluded. */
    assert_string_equal(route("acme", "am", "alert.firing", "warning",
                              "{\"env\":\"prod\",\"team\":\"db\","
                              "\"canary\":\"yes\"}",
                              NULL),
                        "audit");
}

static void test_type_glob_and_source(void **state)
{
    (void)state;
    assert_string_equal(
        route("acme", "gh", "issue.opened", "info", NULL, NULL), "tickets");
    assert_string_equal(
        route("acme", "gh", "pr.opened", "info", NULL, NULL), "audit");
    assert_int_equal(hl_glob_match("issue.*", "issue.opened"), 1);
    assert_int_equal(hl_glob_match("issue.*", "issues.opened"), 0);
    assert_int_equal(hl_glob_match("*.fail?d", "build.failed"), 1);
    assert_int_equal(hl_glob_match("*", ""), 1);
    assert_int_equal(hl_glob_match("a*b*c", "aXbYbZc"), 1);
    assert_int_equal(hl_glob_match("a*b*c", "aXbYbZ"), 0);
}

static void test_connectors_keep_to_their_tenant(void **state)
{
    (void)state;
    /* beta's event reaches beta-out and the tenant-less audit, never acme's
     * connectors. */
    assert_string_equal(
        route("beta", "bgen", "message", "critical", NULL, NULL),
        "audit,beta-out");
    /* acme's event never reaches beta-out. */
    assert_string_equal(
        route("acme", "gh", "pr.closed", "info", NULL, NULL), "audit");
}

static void test_unrouted(void **state)
{
    (void)state;
    /* A config whose only route cannot match. */
    static const char text[] =
        "connectors:\n  c: { plugin: webhook }\n"
        "routes:\n  - match: { source: nowhere-src }\n    to: [c]\n"
        "sources:\n  nowhere-src: { kind: generic, verify: { bearer: "
        "{ tokens: [t] } } }\n";
    hl_diags d = {0};
    hl_config *cfg;
    assert_int_equal(hl_config_load_string("u.yaml", text, strlen(text), &d,
                                           &cfg),
                     0);
    hl_diags_free(&d);
    hl_router *r;
    assert_int_equal(hl_router_create(cfg, &r), 0);
    json_t *ev = json_loads("{\"tenant\":\"default\",\"source\":"
                            "\"/default/other\",\"type\":\"message\"}",
                            0, NULL);
    size_t idx[4];
    const char *first = "sentinel";
    assert_int_equal(hl_route_event(r, ev, idx, 4, &first), 0);
    assert_null(first);
    json_decref(ev);
    hl_router_destroy(r);
    hl_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_and_continue),
        cmocka_unit_test(test_label_matchers),
        cmocka_unit_test(test_type_glob_and_source),
        cmocka_unit_test(test_connectors_keep_to_their_tenant),
        cmocka_unit_test(test_unrouted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
