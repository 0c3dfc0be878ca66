/* test_config.c - the configuration loader: every message a user can get, with its position, and the typed values. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* What a test loaded, freed by the teardown even when an assertion fails. */
static hl_diags g_diags;
static hl_config *g_cfgs[16];
static size_t g_ncfgs;

static hl_config *keep(hl_config *cfg)
{
    if (cfg) {
        assert_true(g_ncfgs < sizeof g_cfgs / sizeof *g_cfgs);
        g_cfgs[g_ncfgs++] = cfg;
    }
    return cfg;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_ncfgs; i++)
        hl_config_destroy(g_cfgs[i]);
    g_ncfgs = 0;
    hl_diags_free(&g_diags);
    return 0;
}

static size_t count_kind(const char *const *want, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; want[i]; i++)
        n += strstr(want[i], kind) != NULL;
    return n;
}

static void dump(const hl_diags *d, const char *const *want)
{
    char buf[2048];
    print_message("expected:\n");
    for (size_t i = 0; want[i]; i++)
        print_message("  %s\n", want[i]);
    print_message("got:\n");
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        print_message("  %s\n", buf);
    }
}

/* Assert that d holds exactly the messages of want (NULL-terminated), in
 * order, formatted as the user reads them. */
static void assert_diags(const hl_diags *d, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    char buf[2048];
    int same = d->n == n;
    for (size_t i = 0; same && i < n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        same = strcmp(buf, want[i]) == 0;
    }
    if (!same)
        dump(d, want);
    assert_int_equal(d->n, n);
    for (size_t i = 0; i < n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        assert_string_equal(buf, want[i]);
    }
    assert_int_equal(d->errors, count_kind(want, ": error: "));
    assert_int_equal(d->warnings, count_kind(want, ": warning: "));
}

/*
 * Load text as "t.yaml" and assert the exact messages and return code
 * (want_rc 0: the load succeeds, whatever the warnings). Returns the
 * configuration when the load succeeded; the caller destroys it.
 */
static hl_config *load_expect(const char *text, int want_rc,
                              const char *const *want)
{
    hl_diags_free(&g_diags);
    hl_config *cfg = (hl_config *)1;
    int rc = hl_config_load_string("t.yaml", text, strlen(text), &g_diags,
                                   &cfg);
    if (cfg != (hl_config *)1)
        keep(cfg);
    assert_diags(&g_diags, want);
    assert_int_equal(rc, want_rc);
    if (want_rc)
        assert_null(cfg);
    else
        assert_non_null(cfg);
    return cfg;
}

/* The load fails with HL_ECONFIG and exactly these messages. */
static void expect_errors(const char *text, const char *const *want)
{
    assert_true(count_kind(want, ": error: ") > 0);
    load_expect(text, HL_ECONFIG, want);
}

/* The load succeeds with exactly these messages (warnings, or none). */
static hl_config *expect_ok(const char *text, const char *const *want)
{
    assert_int_equal(count_kind(want, ": error: "), 0);
    return load_expect(text, 0, want);
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_MSGS ((const char *const[]){NULL})

/* A source with a verify section, so that no warning is expected. */
#define VERIFIED "verify: {bearer: {tokens: [t]}}"

/* ---- YAML-level errors ---------------------------------------------------- */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    load_expect("server:\n  listen: [1, 2\nstorage: {}\n", HL_EYAML,
                MSGS("t.yaml:3:8: error: YAML syntax: did not find expected "
                     "',' or ']' while parsing a flow sequence (started at "
                     "line 2)"));
}

static void test_second_document(void **state)
{
    (void)state;
    load_expect("server: {}\n---\nstorage: {}\n", HL_EYAML,
                MSGS("t.yaml:2:1: error: expected one YAML document, found a "
                     "second one; remove the '---' line"));
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load_expect("server:\n  listen: 127.0.0.1:1\nlog: {}\nserver:\n  "
                "listen: 127.0.0.1:2\n",
                HL_EYAML,
                MSGS("t.yaml:4:1: error: duplicate key 'server' (first "
                     "defined at line 1); remove one of them"));
    load_expect("log: {level: info, level: debug}\n", HL_EYAML,
                MSGS("t.yaml:1:20: error: duplicate key 'level' (first "
                     "defined at line 1); remove one of them"));
}

static void test_root_not_a_mapping(void **state)
{
    (void)state;
    expect_errors("- server\n",
                  MSGS("t.yaml:1:1: error: expected a mapping of sections "
                       "(server, storage, sources, ...), got list"));
    expect_errors("hello\n",
                  MSGS("t.yaml:1:1: error: expected a mapping of sections "
                       "(server, storage, sources, ...), got scalar"));
}

/* ---- keys and types ------------------------------------------------------ */

static void test_unknown_key_did_you_mean(void **state)
{
    (void)state;
    expect_errors("stream:\n  max_clent: 3\n",
                  MSGS("t.yaml:2:3: error: stream.max_clent: unknown key "
                       "'max_clent'; did you mean 'max_clients'?"));
    expect_errors("sever:\n  listen: 127.0.0.1:80\n",
                  MSGS("t.yaml:1:1: error: sever: unknown key 'sever'; did "
                       "you mean 'server'?"));
}

static void test_unknown_key_lists_choices(void **state)
{
    (void)state;
    expect_errors("stream: {heartbeat: 30s, colour: blue}\n",
                  MSGS("t.yaml:1:26: error: stream.colour: unknown key "
                       "'colour'; expected one of: heartbeat, max_clients, "
                       "client_buffer"));
    expect_errors("frobnicate: 1\n",
                  MSGS("t.yaml:1:1: error: frobnicate: unknown key "
                       "'frobnicate'; expected one of: server, storage, log, "
                       "admin, outbound, connectors_path, schemas_path, policies_path, "
                       "tenants, sources, "
                       "connectors, policies, routes, stream"));
}

static void test_mapping_where_string_expected(void **state)
{
    (void)state;
    expect_errors("storage:\n  path: {a: 1}\n",
                  MSGS("t.yaml:2:9: error: storage.path: expected a string, "
                       "got mapping"));
    expect_errors("server:\n  listen: {host: x}\n",
                  MSGS("t.yaml:2:11: error: server.listen: expected "
                       "HOST:PORT, got mapping"));
}

static void test_list_where_mapping_expected(void **state)
{
    (void)state;
    expect_errors("log: [info]\n",
                  MSGS("t.yaml:1:6: error: log: expected a mapping, got "
                       "list"));
    expect_errors("sources:\n  - github\n",
                  MSGS("t.yaml:2:3: error: sources: expected a mapping of "
                       "names to settings, got list"));
    expect_errors("tenants:\n  acme: [x]\n",
                  MSGS("t.yaml:2:9: error: tenants.acme: expected a mapping, "
                       "got list"));
}

static void test_missing_required_keys(void **state)
{
    (void)state;
    expect_errors("sources:\n  x:\n    " VERIFIED "\n",
                  MSGS("t.yaml:3:5: error: sources.x: missing required key "
                       "'kind'"));
    expect_errors("sources:\n  gh:\n    kind: github\n    verify:\n      "
                  "hmac: {header: X-Hub-Signature-256}\n",
                  MSGS("t.yaml:5:13: error: sources.gh.verify.hmac: missing "
                       "required key 'secrets'"));
    expect_errors("connectors:\n  c: {url: \"https://x.example/\"}\n"
                  "routes:\n  - to: c\n",
                  MSGS("t.yaml:2:6: error: connectors.c: missing required "
                       "key 'plugin'"));
    /* A section left empty still gives the position of the missing key's
     * parent (it had none). */
    expect_errors("sources:\n  s:\n    " VERIFIED "\nconnectors:\n  c: ~\n"
                  "routes:\n  - ~\n  - to: c\n",
                  MSGS("t.yaml:3:5: error: sources.s: missing required key "
                       "'kind'",
                       "t.yaml:5:6: error: connectors.c: missing required key "
                       "'plugin'",
                       "t.yaml:7:5: error: routes[0]: missing required key "
                       "'to'"));
    expect_errors("sources:\n  s:\n",
                  MSGS("t.yaml:2:5: error: sources.s: missing required key "
                       "'kind'",
                       "t.yaml:2:5: warning: sources.s: no 'verify' section: "
                       "this source accepts requests from anyone who can "
                       "reach the listener"));
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_errors("server:\n  header_timeout: 10\n",
                  MSGS("t.yaml:2:19: error: server.header_timeout: expected a "
                       "duration such as 500ms, 5s, 2m, 1h or 7d, got '10'"));
    expect_errors("server:\n  idle_timeout: 5 minutes\n",
                  MSGS("t.yaml:2:17: error: server.idle_timeout: expected a "
                       "duration such as 500ms, 5s, 2m, 1h or 7d, got '5 "
                       "minutes'"));
    expect_errors("server:\n  header_timeout: 2h\n",
                  MSGS("t.yaml:2:19: error: server.header_timeout: duration "
                       "'2h' is out of range; use from 100ms to 1h"));
    expect_errors("policies:\n  p:\n    retry: {schedule: [0s, 5x]}\n",
                  MSGS("t.yaml:3:28: error: policies.p.retry.schedule[1]: "
                       "expected a duration such as 500ms, 5s, 2m, 1h or 7d, "
                       "got '5x'"));
}

static void test_bad_size(void **state)
{
    (void)state;
    expect_errors("server:\n  max_body: 5XB\n",
                  MSGS("t.yaml:2:13: error: server.max_body: expected a size "
                       "such as 512KiB, 1MiB or 1048576, got '5XB'"));
    expect_errors("server:\n  max_body: 1.5MiB\n",
                  MSGS("t.yaml:2:13: error: server.max_body: expected a size "
                       "such as 512KiB, 1MiB or 1048576, got '1.5MiB'"));
    expect_errors("server:\n  max_body: 512\n",
                  MSGS("t.yaml:2:13: error: server.max_body: size '512' is "
                       "out of range; use from 1KiB to 1GiB"));
}

static void test_number_out_of_range(void **state)
{
    (void)state;
    expect_errors("storage:\n  max_queued: -1\n",
                  MSGS("t.yaml:2:15: error: storage.max_queued: expected a "
                       "whole number from 1 to 1000000000000, got '-1'"));
    expect_errors("policies:\n  p: {max_in_flight: 10001}\n",
                  MSGS("t.yaml:2:22: error: policies.p.max_in_flight: "
                       "expected a whole number from 1 to 10000, got "
                       "'10001'"));
    expect_errors("policies:\n  p: {retry: {max_attempts: 0}}\n",
                  MSGS("t.yaml:2:29: error: policies.p.retry.max_attempts: "
                       "expected a whole number from 1 to 1000, got '0'"));
    expect_errors("policies:\n  p: {rate: {per_second: 0}}\n",
                  MSGS("t.yaml:2:26: error: policies.p.rate.per_second: "
                       "expected a number from 0.001 to 10000000, got '0'"));
    expect_errors("policies:\n  p: {retry: {jitter: 2}}\n",
                  MSGS("t.yaml:2:23: error: policies.p.retry.jitter: expected "
                       "full, none or a fraction from 0 to 1 (0.2 means "
                       "+-20%), got '2'"));
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_errors("storage:\n  durability: maybe\n",
                  MSGS("t.yaml:2:15: error: storage.durability: expected one "
                       "of full, normal; got 'maybe'"));
    expect_errors("log: {level: verbose, format: xml}\n",
                  MSGS("t.yaml:1:14: error: log.level: expected one of debug, "
                       "info, warn, error; got 'verbose'",
                       "t.yaml:1:31: error: log.format: expected one of text, "
                       "json; got 'xml'"));
}

static void test_bad_bool(void **state)
{
    (void)state;
    expect_errors("connectors:\n  c: {plugin: webhook}\nroutes:\n  - to: "
                  "[c]\n    continue: yes\n",
                  MSGS("t.yaml:5:15: error: routes[0].continue: expected true "
                       "or false, got 'yes'"));
}

static void test_bad_listen(void **state)
{
    (void)state;
    expect_errors("server:\n  listen: nope\n",
                  MSGS("t.yaml:2:11: error: server.listen: expected HOST:PORT "
                       "with an IP address, such as 127.0.0.1:8080 or "
                       "[::1]:8080, got 'nope'"));
    expect_errors("server:\n  listen: 127.0.0.1:70000\n",
                  MSGS("t.yaml:2:11: error: server.listen: expected HOST:PORT "
                       "with an IP address, such as 127.0.0.1:8080 or "
                       "[::1]:8080, got '127.0.0.1:70000'"));
    expect_errors("server:\n  listen: example.com:80\n",
                  MSGS("t.yaml:2:11: error: server.listen: expected HOST:PORT "
                       "with an IP address, such as 127.0.0.1:8080 or "
                       "[::1]:8080, got 'example.com:80'"));
}

static void test_listen_forms(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok("server: {listen: \"[::1]:9090\"}\n", NO_MSGS);
    assert_string_equal(cfg->server.listen, "[::1]:9090");
    assert_string_equal(cfg->server.host, "::1");
    assert_int_equal(cfg->server.port, 9090);
    cfg = expect_ok("server: {listen: \"localhost:81\"}\n", NO_MSGS);
    assert_string_equal(cfg->server.host, "127.0.0.1");
    assert_int_equal(cfg->server.port, 81);
    cfg = expect_ok("server: {listen: 0.0.0.0:8443}\n", NO_MSGS);
    assert_string_equal(cfg->server.host, "0.0.0.0");
    assert_int_equal(cfg->server.port, 8443);
}

static void test_bad_cidr(void **state)
{
    (void)state;
    expect_errors(
        "outbound:\n  allow_networks: [10.0.0.0/8, 10.1.2.3/8, nope, "
        "fd00::/8]\n",
        MSGS("t.yaml:2:32: error: outbound.allow_networks[1]: '10.1.2.3/8' "
             "has host bits set; write the network address, such as "
             "10.0.0.0/8 or fd00::/8",
             "t.yaml:2:44: error: outbound.allow_networks[2]: expected an "
             "address or network such as 10.0.0.0/8 or fd00::/8, got "
             "'nope'"));
    expect_errors("outbound:\n  allow_networks: [10.0.0.0/33, \"::/129\"]\n",
                  MSGS("t.yaml:2:20: error: outbound.allow_networks[0]: "
                       "'10.0.0.0/33': the prefix must be at most 32 for an "
                       "IPv4 address",
                       "t.yaml:2:33: error: outbound.allow_networks[1]: "
                       "'::/129': the prefix must be at most 128 for an IPv6 "
                       "address"));
    hl_config *cfg = expect_ok(
        "outbound:\n  allow_networks: [10.0.0.0/8, \"fd00::/8\", "
        "192.168.1.7]\n",
        NO_MSGS);
    assert_int_equal(cfg->outbound.n_allow_networks, 3);
    assert_int_equal(cfg->outbound.allow_networks[0].family, AF_INET);
    assert_int_equal(cfg->outbound.allow_networks[0].prefix, 8);
    assert_int_equal(cfg->outbound.allow_networks[1].family, AF_INET6);
    assert_int_equal(cfg->outbound.allow_networks[1].prefix, 8);
    assert_int_equal(cfg->outbound.allow_networks[2].prefix, 32);
    assert_string_equal(cfg->outbound.allow_networks[2].text, "192.168.1.7");
}

static void test_bad_url(void **state)
{
    (void)state;
    expect_errors("connectors:\n  a:\n    plugin: webhook\n    url: not a "
                  "url\nroutes:\n  - to: [a]\n",
                  MSGS("t.yaml:4:10: error: connectors.a.url: expected an "
                       "absolute URL such as https://host/path (Bad "
                       "scheme)"));
    expect_errors("connectors:\n  a:\n    plugin: webhook\n    url: "
                  "ftp://files.example/in\nroutes:\n  - to: [a]\n",
                  MSGS("t.yaml:4:10: error: connectors.a.url: "
                       "the URL uses the scheme 'ftp'; "
                       "expected http, https, smtp or smtps"));
}

static void test_bad_regex(void **state)
{
    (void)state;
    expect_errors("connectors:\n  c: {plugin: webhook}\nroutes:\n  - to: "
                  "[c]\n    match:\n      labels:\n        env: {matches: "
                  "\"prod(\"}\n        team: {not_matches: \"[a-\"}\n",
                  MSGS("t.yaml:7:24: error: "
                       "routes[0].match.labels.env.matches: invalid regular "
                       "expression at offset 5: missing closing parenthesis",
                       "t.yaml:8:29: error: "
                       "routes[0].match.labels.team.not_matches: invalid "
                       "regular expression at offset 3: missing terminating ] "
                       "for character class"));
    expect_errors("policies:\n  p:\n    redact:\n      - secrets\n      - "
                  "{pattern: \"(?<x\", action: hash}\n",
                  MSGS("t.yaml:5:19: error: policies.p.redact[1].pattern: "
                       "invalid regular expression at offset 4: syntax error "
                       "in subpattern name (missing terminator?)"));
}

static void test_redaction_rules(void **state)
{
    (void)state;
    expect_errors(
        "policies:\n  p:\n    redact: [{path: /a, pattern: b}, {pattern: x, "
        "action: drop}, \"bad pack!\"]\n",
        MSGS("t.yaml:3:14: error: policies.p.redact[0]: a redaction rule "
             "needs exactly one of 'path' (a JSON Pointer or glob) or "
             "'pattern' (a regular expression)",
             "t.yaml:3:59: error: policies.p.redact[1].action: a pattern rule "
             "can mask or hash what it matches; drop applies to path rules",
             "t.yaml:3:66: error: policies.p.redact[2]: expected a redaction "
             "pack name such as secrets or pii, got 'bad pack!'"));
    hl_config *cfg = expect_ok(
        "policies:\n  p:\n    redact: [pii, {path: /user/email, action: "
        "drop}, {pattern: \"\\\\d{16}\", replacement: \"####\"}]\n",
        NO_MSGS);
    const hl_policy_cfg *p = &cfg->policies[0];
    assert_int_equal(p->n_redact, 3);
    assert_int_equal(p->redact[0].kind, HL_REDACT_PACK);
    assert_string_equal(p->redact[0].value, "pii");
    assert_int_equal(p->redact[1].kind, HL_REDACT_FIELD);
    assert_string_equal(p->redact[1].value, "/user/email");
    assert_int_equal(p->redact[1].action, HL_REDACT_DROP);
    assert_int_equal(p->redact[2].kind, HL_REDACT_PATTERN);
    assert_string_equal(p->redact[2].value, "\\d{16}");
    assert_int_equal(p->redact[2].action, HL_REDACT_MASK);
    assert_string_equal(p->redact[2].replacement, "####");
}

static void test_bad_source_name(void **state)
{
    (void)state;
    expect_errors("sources:\n  \"git hub\": {kind: github, " VERIFIED "}\n",
                  MSGS("t.yaml:2:3: error: sources.git hub: the name 'git "
                       "hub' may hold only letters, digits, '-', '_' and '.', "
                       "start with a letter or digit, and be at most 64 "
                       "characters"));
    expect_errors("sources:\n  gh: {kind: \"../github\", " VERIFIED "}\n",
                  MSGS("t.yaml:2:14: error: sources.gh.kind: '../github' is "
                       "not a kind name: letters, digits, '-', '_' and '.', "
                       "starting with a letter or digit"));
}

/* ---- references between sections ----------------------------------------- */

static void test_unknown_references(void **state)
{
    (void)state;
    expect_errors(
        "tenants:\n  acme: {token: t}\nsources:\n  s: {tenant: acme, kind: "
        "generic, " VERIFIED "}\n  u: {tenant: ghost, kind: generic, " VERIFIED
        "}\nconnectors:\n  c: {plugin: webhook, policy: nope}\n  d: {plugin: "
        "webhook, tenant: ghost}\nroutes:\n  - match: {source: [s, nosuch], "
        "tenant: beta}\n    to: [c, missing]\n  - to: d\n",
        MSGS("t.yaml:5:15: error: sources.u.tenant: no tenant named 'ghost' "
             "(tenants: acme); define it under 'tenants' or fix the name",
             "t.yaml:7:32: error: connectors.c.policy: no policy named 'nope' "
             "(policies: none are defined); define it under 'policies' or "
             "fix the name",
             "t.yaml:8:32: error: connectors.d.tenant: no tenant named "
             "'ghost' (tenants: acme); define it under 'tenants' or fix the "
             "name",
             "t.yaml:10:25: error: routes[0].match.source[1]: no source named "
             "'nosuch' (sources: s, u); define it under 'sources' or fix the "
             "name",
             "t.yaml:10:42: error: routes[0].match.tenant: no tenant named "
             "'beta' (tenants: acme); define it under 'tenants' or fix the "
             "name",
             "t.yaml:11:13: error: routes[0].to[1]: no connector named "
             "'missing' (connectors: c, d); define it under 'connectors' or fix "
             "the name"));
}

static void test_several_tenants_source_without_tenant(void **state)
{
    (void)state;
    expect_errors("tenants:\n  acme: {token: a}\n  beta: {token: b}\n"
                  "sources:\n  s:\n    kind: generic\n    " VERIFIED "\n",
                  MSGS("t.yaml:6:5: error: sources.s: missing required key "
                       "'tenant' (needed when several tenants are "
                       "configured)"));
    /* With no tenants, everything is tenant "default", and may say so. */
    hl_config *dflt = expect_ok(
        "sources:\n  s: {kind: generic, tenant: default, " VERIFIED "}\n"
        "connectors:\n  c: {plugin: webhook, tenant: default}\n"
        "routes:\n  - {match: {tenant: default}, to: [c]}\n",
        NO_MSGS);
    assert_string_equal(hl_config_source(dflt, "s")->tenant, "default");
    /* With one tenant, a source without one belongs to it. */
    hl_config *cfg = expect_ok("tenants:\n  acme: {token: a}\nsources:\n  s: "
                               "{kind: generic, " VERIFIED "}\n",
                               NO_MSGS);
    assert_string_equal(hl_config_source(cfg, "s")->tenant, "acme");
    cfg = expect_ok("sources:\n  s: {kind: generic, " VERIFIED "}\n", NO_MSGS);
    assert_string_equal(hl_config_source(cfg, "s")->tenant, "default");
}

/* ---- verify -------------------------------------------------------------- */

static void test_empty_verify(void **state)
{
    (void)state;
    expect_errors("sources:\n  s: {kind: generic, verify: {}}\n",
                  MSGS("t.yaml:2:30: error: sources.s.verify: verify is empty; name at least "
                       "one check: hmac, standard_webhooks, slack or "
                       "bearer"));
    /* A verify of the wrong type is one mistake, reported once. */
    expect_errors("sources:\n  s: {kind: generic, verify: [hmac]}\n",
                  MSGS("t.yaml:2:30: error: sources.s.verify: expected a "
                       "mapping, got list"));
    /* `verify:` with nothing below it checks nothing: it is warned about
     * like a missing verify section. */
    expect_ok("sources:\n  s:\n    kind: generic\n    verify:\n",
              MSGS("t.yaml:3:5: warning: sources.s: no 'verify' section: this "
                   "source accepts requests from anyone who can reach the "
                   "listener"));
}

static void test_whsec_prefix(void **state)
{
    (void)state;
    expect_errors("sources:\n  p:\n    kind: generic\n    verify:\n      "
                  "standard_webhooks:\n        secrets: [whsec_QUJD, "
                  "MfKQ9r8GKYqr]\n",
                  MSGS("t.yaml:6:31: error: "
                       "sources.p.verify.standard_webhooks.secrets[1]: a "
                       "Standard Webhooks secret is 'whsec_' followed by "
                       "base64 (a key of at most 256 bytes)"));
}

static void test_verify_values(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok(
        "sources:\n  s:\n    kind: generic\n    verify:\n      hmac: "
        "{header: X-Sig, algorithm: sha512, encoding: base64, secrets: "
        "old}\n      slack: {secrets: [a, b], tolerance: 90s}\n      "
        "bearer: {tokens: [t1]}\n",
        NO_MSGS);
    const hl_verify_cfg *v = &hl_config_source(cfg, "s")->verify;
    assert_true(v->hmac_set);
    assert_string_equal(v->hmac.header, "X-Sig");
    assert_int_equal(v->hmac.algorithm, HL_HASH_SHA512);
    assert_int_equal(v->hmac.encoding, HL_ENC_BASE64);
    assert_null(v->hmac.prefix);
    assert_int_equal(v->hmac.secrets.n, 1);
    assert_string_equal(v->hmac.secrets.v[0], "old");
    assert_true(v->slack_set);
    assert_int_equal(v->slack.secrets.n, 2);
    assert_int_equal(v->slack.tolerance_ms, 90000);
    assert_false(v->standard_webhooks_set);
    assert_true(v->bearer_set);
    assert_string_equal(v->bearer.tokens.v[0], "t1");
}

static void test_fields_on_non_generic_kind(void **state)
{
    (void)state;
    expect_errors("sources:\n  gh:\n    kind: github\n    " VERIFIED "\n"
                  "    fields: {title: /issue/title}\n",
                  MSGS("t.yaml:5:13: error: sources.gh.fields: 'fields' "
                       "applies only to sources of kind generic; 'github' "
                       "sources are mapped by schemas/sources/github.yaml"));
    /* Without a kind, only the missing kind is reported (this crashed). */
    expect_errors("sources:\n  gh:\n    " VERIFIED
                  "\n    fields: {title: /issue/title}\n",
                  MSGS("t.yaml:3:5: error: sources.gh: missing required key "
                       "'kind'"));
    expect_errors("sources:\n  g:\n    kind: generic\n    " VERIFIED "\n"
                  "    fields: {colour: /c, title: issue/title}\n",
                  MSGS("t.yaml:5:14: error: sources.g.fields.colour: 'colour' "
                       "is not a canonical field; expected one of type, "
                       "title, text, severity, status, url, labels, "
                       "dedupkey, subject, correlationid, time",
                       "t.yaml:5:33: error: sources.g.fields.title: expected "
                       "a JSON Pointer such as /alert/title (it starts with "
                       "'/'), got issue/title"));
    hl_config *cfg = expect_ok("sources:\n  g:\n    kind: generic\n    " VERIFIED
                               "\n    fields: {title: /a/t, dedupkey: /id}\n",
                               NO_MSGS);
    const hl_source_cfg *s = hl_config_source(cfg, "g");
    assert_int_equal(s->n_fields, 2);
    assert_string_equal(s->fields[0].name, "title");
    assert_string_equal(s->fields[0].value, "/a/t");
    assert_string_equal(s->fields[1].name, "dedupkey");
    assert_string_equal(s->fields[1].value, "/id");
}

/* ---- policies -------------------------------------------------------------- */

static void test_schedule_and_exponential(void **state)
{
    (void)state;
    expect_errors("policies:\n  p:\n    retry:\n      schedule: [1s, 5s]\n"
                  "      exponential: {base: 1s, max: 5m}\n",
                  MSGS("t.yaml:5:20: error: policies.p.retry: use either "
                       "'schedule' or 'exponential', not both"));
}

static void test_exponential_max_below_base(void **state)
{
    (void)state;
    expect_errors("policies:\n  p:\n    retry: {exponential: {base: 10s, "
                  "max: 1s}}\n",
                  MSGS("t.yaml:3:43: error: policies.p.retry.exponential.max: "
                       "max must not be smaller than base"));
    /* A missing or invalid max is one mistake, not two. */
    expect_errors("policies:\n  p:\n    retry: {exponential: {base: 10s}}\n",
                  MSGS("t.yaml:3:26: error: policies.p.retry.exponential: "
                       "missing required key 'max'"));
    expect_errors("policies:\n  p:\n    retry: {exponential: {base: 10s, "
                  "max: soon}}\n",
                  MSGS("t.yaml:3:43: error: policies.p.retry.exponential.max: "
                       "expected a duration such as 500ms, 5s, 2m, 1h or 7d, "
                       "got 'soon'"));
}

static void test_policy_values(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok(
        "policies:\n  p:\n    retry: {schedule: [0s, 500ms, 1h30m], "
        "max_attempts: 5, max_age: 2d, jitter: none}\n    rate: "
        "{per_second: 0.5}\n    circuit: {failures: 3}\n",
        NO_MSGS);
    const hl_policy_cfg *p = &cfg->policies[0];
    assert_string_equal(p->name, "p");
    assert_false(p->retry.exponential);
    assert_int_equal(p->retry.n_schedule, 3);
    assert_int_equal(p->retry.schedule_ms[0], 0);
    assert_int_equal(p->retry.schedule_ms[1], 500);
    assert_int_equal(p->retry.schedule_ms[2], 5400000);
    assert_int_equal(p->retry.max_attempts, 5);
    assert_int_equal(p->retry.max_age_ms, 2 * 86400000ULL);
    assert_int_equal(p->retry.jitter, HL_JITTER_NONE);
    assert_true(p->rate.set);
    assert_true(p->rate.per_second == 0.5);
    assert_true(p->rate.burst == 1); /* at least one token */
    assert_int_equal(p->circuit.failures, 3);
    assert_int_equal(p->circuit.cooldown_ms, 30000);
    assert_int_equal(p->max_in_flight, 16);
}

static void test_route_severity(void **state)
{
    (void)state;
    expect_errors("connectors:\n  c: {plugin: webhook}\nroutes:\n  - match: "
                  "{severity: [critical, fatal]}\n    to: [c]\n  - match: "
                  "{severity: high}\n    to: c\n",
                  MSGS("t.yaml:4:34: error: routes[0].match.severity[1]: "
                       "expected one of critical, error, warning, info; got "
                       "'fatal'",
                       "t.yaml:6:23: error: routes[1].match.severity: "
                       "expected one of critical, error, warning, info; got "
                       "'high'"));
}

/* ---- all errors, in file order ------------------------------------------- */

static void test_all_errors_in_file_order(void **state)
{
    (void)state;
    /* Three mistakes found in three different phases of the loader: a
     * reference (checked last), and two keys of one section listed in the
     * opposite order of the key table. */
    expect_errors("connectors:\n  c: {plugin: webhook, policy: nope}\n"
                  "server:\n  idle_timeout: forever\n  listen: nowhere\n"
                  "routes:\n  - to: [c]\n",
                  MSGS("t.yaml:2:32: error: connectors.c.policy: no policy "
                       "named 'nope' (policies: none are defined); define it "
                       "under 'policies' or fix the name",
                       "t.yaml:4:17: error: server.idle_timeout: expected a "
                       "duration such as 500ms, 5s, 2m, 1h or 7d, got "
                       "'forever'",
                       "t.yaml:5:11: error: server.listen: expected HOST:PORT "
                       "with an IP address, such as 127.0.0.1:8080 or "
                       "[::1]:8080, got 'nowhere'"));
    /* An expansion error (found while reading) and key errors around it. */
    unsetenv("HL_T_UNSET_ORDER");
    expect_errors("log: {level: loud}\nadmin:\n  token: "
                  "\"abcdefghijklmnop${HL_T_UNSET_ORDER}\"\nstream: {bogus: "
                  "1}\n",
                  MSGS("t.yaml:1:14: error: log.level: expected one of debug, "
                       "info, warn, error; got 'loud'",
                       "t.yaml:3:27: error: environment variable "
                       "HL_T_UNSET_ORDER is not set (export it, or put the "
                       "value in a file and use ${file:PATH})",
                       "t.yaml:4:10: error: stream.bogus: unknown key "
                       "'bogus'; expected one of: heartbeat, max_clients, "
                       "client_buffer"));
}

/* ---- warnings ------------------------------------------------------------ */

static void test_warning_source_without_verify(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok(
        "sources:\n  open:\n    kind: generic\n",
        MSGS("t.yaml:3:5: warning: sources.open: no 'verify' section: this "
             "source accepts requests from anyone who can reach the "
             "listener"));
    assert_int_equal(cfg->n_sources, 1);
}

static void test_warnings_tenants_and_connectors(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok(
        "tenants:\n  acme: {token: a}\n  beta: {token: b}\nconnectors:\n"
        "  shared:\n    plugin: webhook\n  beta-out:\n    plugin: webhook\n"
        "    tenant: beta\n  spare: {plugin: webhook, tenant: acme}\n"
        "routes:\n  - match: {tenant: acme}\n    to: [shared, beta-out]\n",
        MSGS("t.yaml:6:5: warning: connectors.shared: no 'tenant': this "
             "connector receives events of every tenant; set tenant to keep "
             "tenants apart",
             "t.yaml:10:10: warning: connectors.spare: no route sends events "
             "to this connector",
             "t.yaml:13:18: warning: routes[0].to[1]: connector 'beta-out' serves "
             "only tenant 'beta', which this route never matches, so it will "
             "get nothing here"));
    assert_int_equal(cfg->n_connectors, 3);
    assert_null(hl_config_connector(cfg, "shared")->tenant);
}

static void test_warning_short_admin_token(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok(
        "admin:\n  token: s3cret\n",
        MSGS("t.yaml:2:10: warning: admin.token: shorter than 16 characters; "
             "use a long random token"));
    assert_string_equal(cfg->admin.token, "s3cret");
    cfg = expect_ok("admin:\n  token: 0123456789abcdef\n", NO_MSGS);
    assert_string_equal(cfg->admin.token, "0123456789abcdef");
}

/* ---- ${...} expansion ----------------------------------------------------- */

static void test_env_set(void **state)
{
    (void)state;
    setenv("HL_T_DBPATH", "/srv/hl/queue.db", 1);
    setenv("HL_T_TOK1", "tok-one", 1);
    setenv("HL_T_TOK2", "tok-two", 1);
    hl_config *cfg = expect_ok(
        "storage:\n  path: ${HL_T_DBPATH}\nsources:\n  s:\n    kind: generic\n"
        "    verify: {bearer: {tokens: [${HL_T_TOK1}, ${HL_T_TOK2}]}}\n"
        "tenants:\n  acme: {token: \"pre-${HL_T_TOK1}-mid-${HL_T_TOK2}\"}\n",
        NO_MSGS);
    assert_string_equal(cfg->storage.path, "/srv/hl/queue.db");
    const hl_source_cfg *s = hl_config_source(cfg, "s");
    assert_int_equal(s->verify.bearer.tokens.n, 2);
    assert_string_equal(s->verify.bearer.tokens.v[0], "tok-one");
    assert_string_equal(s->verify.bearer.tokens.v[1], "tok-two");
    assert_string_equal(hl_config_tenant(cfg, "acme")->token,
                        "pre-tok-one-mid-tok-two");
    unsetenv("HL_T_DBPATH");
    unsetenv("HL_T_TOK1");
    unsetenv("HL_T_TOK2");
}

static void test_env_unset(void **state)
{
    (void)state;
    unsetenv("HL_T_NOPE");
    unsetenv("HL_T_NOPE2");
    setenv("HL_T_SET", "x", 1);
    /* The position is the '$' of the reference: the second reference of one
     * string, and an item of a flow sequence. (The connector's own keys are
     * checked by its plugin, so an empty value draws no second message.) */
    expect_errors("sources:\n  s:\n    kind: generic\n    verify:\n      hmac:"
                  "\n        header: X-Sig\n        prefix: "
                  "\"${HL_T_SET}=${HL_T_NOPE}:\"\n        secrets: [a]\n"
                  "connectors:\n  c:\n    plugin: slack\n    channels: "
                  "[\"#ops\", ${HL_T_NOPE2}]\nroutes:\n  - to: c\n",
                  MSGS("t.yaml:7:30: error: environment variable HL_T_NOPE is "
                       "not set (export it, or put the value in a file and "
                       "use ${file:PATH})",
                       "t.yaml:12:24: error: environment variable HL_T_NOPE2 is "
                       "not set (export it, or put the value in a file and "
                       "use ${file:PATH})"));
    /* A key that must not be empty reports only the unset variable. */
    expect_errors("admin:\n  token: ${HL_T_NOPE}\nsources:\n  s:\n    kind: "
                  "generic\n    verify: {bearer: {tokens: [${HL_T_NOPE2}]}}\n",
                  MSGS("t.yaml:2:10: error: environment variable HL_T_NOPE is "
                       "not set (export it, or put the value in a file and "
                       "use ${file:PATH})",
                       "t.yaml:6:32: error: environment variable HL_T_NOPE2 is "
                       "not set (export it, or put the value in a file and "
                       "use ${file:PATH})"));
    /* A block scalar: the reference on its second line. */
    expect_errors("tenants:\n  acme:\n    token: |\n      first\n      "
                  "second ${HL_T_NOPE}\n",
                  MSGS("t.yaml:5:14: error: environment variable HL_T_NOPE is "
                       "not set (export it, or put the value in a file and "
                       "use ${file:PATH})"));
    unsetenv("HL_T_SET");
}

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/hl_test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_file_reference(void **state)
{
    (void)state;
    char *one = write_temp("s3cr3t-from-file\n");
    char *two = write_temp("line one\nline two\r\n");
    char text[1024];
    snprintf(text, sizeof text,
             "sources:\n  s:\n    kind: generic\n    verify: {bearer: {tokens: "
             "[${file:%s}, \"${file:%s}\"]}}\n",
             one, two);
    hl_config *cfg = expect_ok(text, NO_MSGS);
    const hl_source_cfg *s = hl_config_source(cfg, "s");
    assert_int_equal(s->verify.bearer.tokens.n, 2);
    assert_string_equal(s->verify.bearer.tokens.v[0], "s3cr3t-from-file");
    assert_string_equal(s->verify.bearer.tokens.v[1], "line one\nline two");
    unlink(one);
    unlink(two);
    free(one);
    free(two);
}

static void test_file_reference_missing(void **state)
{
    (void)state;
    expect_errors("connectors:\n  pager:\n    plugin: pagerduty\n    "
                  "routing_key: ${file:/nonexistent/hl-test/key}\nroutes:\n"
                  "  - to: [pager]\n",
                  MSGS("t.yaml:4:18: error: "
                       "${file:/nonexistent/hl-test/key}: cannot read the "
                       "file: No such file or directory"));
    expect_errors("connectors:\n  pager:\n    plugin: pagerduty\n    "
                  "routing_key: ${file:hl-test-absent/key}\nroutes:\n"
                  "  - to: [pager]\n",
                  MSGS("t.yaml:4:18: error: "
                       "${file:hl-test-absent/key}: cannot read the file: No "
                       "such file or directory (a relative path starts from "
                       "hookline's working directory)"));
}

static void test_literal_dollar_brace(void **state)
{
    (void)state;
    setenv("HL_T_LIT", "expanded", 1);
    hl_config *cfg = expect_ok(
        "admin:\n  token: \"$${HL_T_LIT} stays, ${HL_T_LIT} not\"\n"
        "tenants:\n  acme:\n    token: $${HL_T_LIT}\n",
        NO_MSGS);
    assert_string_equal(cfg->admin.token, "${HL_T_LIT} stays, expanded not");
    assert_string_equal(hl_config_tenant(cfg, "acme")->token, "${HL_T_LIT}");
    unsetenv("HL_T_LIT");
}

static void test_invalid_reference(void **state)
{
    (void)state;
    expect_errors("admin:\n  token: \"0123456789abcdef${not valid}\"\n",
                  MSGS("t.yaml:2:27: error: '${not valid}' is not a valid "
                       "reference: use ${NAME} for an environment variable, "
                       "${file:PATH} for a file's contents, or $${ for a "
                       "literal ${"));
    expect_errors("admin:\n  token: \"0123456789abcdef${}\"\n",
                  MSGS("t.yaml:2:27: error: '${}' is not a valid reference: "
                       "use ${NAME} for an environment variable, "
                       "${file:PATH} for a file's contents, or $${ for a "
                       "literal ${"));
}

static void test_expanded_null_stays_a_string(void **state)
{
    (void)state;
    setenv("HL_T_NULL", "null", 1);
    setenv("HL_T_TILDE", "~", 1);
    hl_config *cfg = expect_ok("storage:\n  path: ${HL_T_NULL}\n"
                               "tenants:\n  acme: {token: ${HL_T_TILDE}}\n",
                               NO_MSGS);
    /* A plain null would give the default ./var/hookline.db. */
    assert_string_equal(cfg->storage.path, "null");
    assert_string_equal(hl_config_tenant(cfg, "acme")->token, "~");
    /* While a plain null in the file is the default. */
    cfg = expect_ok("storage:\n  path: null\n", NO_MSGS);
    assert_string_equal(cfg->storage.path, "./var/hookline.db");
    unsetenv("HL_T_NULL");
    unsetenv("HL_T_TILDE");
}

/* ---- scalar grammars --------------------------------------------------------- */

static uint64_t dur(const char *s)
{
    uint64_t ms = 12345;
    int rc = hl_parse_duration(s, &ms);
    if (rc)
        fail_msg("hl_parse_duration(\"%s\") = %d", s, rc);
    return ms;
}

static void test_parse_duration(void **state)
{
    (void)state;
    assert_int_equal(dur("500ms"), 500);
    assert_int_equal(dur("5s"), 5000);
    assert_int_equal(dur("2m"), 120000);
    assert_int_equal(dur("1h"), 3600000);
    assert_int_equal(dur("7d"), 7 * 86400000ULL);
    assert_int_equal(dur("1h30m"), 5400000);
    assert_int_equal(dur("1m30s250ms"), 90250);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("0s"), 0);
    uint64_t ms = 77;
    assert_int_equal(hl_parse_duration("10", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("5 s", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("-5s", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("5sec", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("1.5s", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("5w", &ms), HL_ESYNTAX);
    assert_int_equal(hl_parse_duration("300000000000d", &ms), HL_ERANGE);
    assert_int_equal(hl_parse_duration("99999999999999999999ms", &ms),
                     HL_ERANGE);
    assert_int_equal(
        hl_parse_duration("18446744073709551615ms1ms", &ms), HL_ERANGE);
    assert_int_equal(ms, 77); /* untouched on error */
}

static uint64_t size(const char *s)
{
    uint64_t b = 12345;
    int rc = hl_parse_size(s, &b);
    if (rc)
        fail_msg("hl_parse_size(\"%s\") = %d", s, rc);
    return b;
}

static void test_parse_size(void **state)
{
    (void)state;
    assert_int_equal(size("512KiB"), 524288);
    assert_int_equal(size("1MiB"), 1048576);
    assert_int_equal(size("2GiB"), 2147483648ULL);
    assert_int_equal(size("1GB"), 1000000000);
    assert_int_equal(size("5KB"), 5000);
    assert_int_equal(size("1024"), 1024);
    assert_int_equal(size("7B"), 7);
    assert_int_equal(size("0"), 0);
    uint64_t b = 77;
    assert_int_equal(hl_parse_size("1mib", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("1 MiB", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("1TiB", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("MiB", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("-1", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("1.5MiB", &b), HL_ESYNTAX);
    assert_int_equal(hl_parse_size("99999999999999999999", &b), HL_ERANGE);
    assert_int_equal(hl_parse_size("20000000000GiB", &b), HL_ERANGE);
    assert_int_equal(b, 77);
}

static void test_parse_cidr(void **state)
{
    (void)state;
    hl_cidr c;
    assert_int_equal(hl_parse_cidr("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(c.addr[0], 10);
    assert_string_equal(c.text, "10.0.0.0/8");
    assert_int_equal(hl_parse_cidr("192.168.4.0/22", &c), 0);
    assert_int_equal(c.prefix, 22);
    assert_int_equal(c.addr[2], 4);
    assert_int_equal(hl_parse_cidr("127.0.0.1", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(hl_parse_cidr("0.0.0.0/0", &c), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(hl_parse_cidr("fd00::/8", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(c.addr[0], 0xfd);
    assert_int_equal(hl_parse_cidr("2001:db8::/32", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(c.addr[1], 0x01);
    assert_int_equal(c.addr[3], 0xb8);
    assert_int_equal(hl_parse_cidr("::1", &c), 0);
    assert_int_equal(c.prefix, 128);
    assert_int_equal(c.addr[15], 1);
    /* Host bits set, prefix too long, syntax. */
    assert_int_equal(hl_parse_cidr("10.1.2.3/8", &c), HL_ERANGE);
    assert_int_equal(hl_parse_cidr("fd00::1/8", &c), HL_ERANGE);
    assert_int_equal(hl_parse_cidr("10.0.0.0/33", &c), HL_ERANGE);
    assert_int_equal(hl_parse_cidr("::/129", &c), HL_ERANGE);
    assert_int_equal(hl_parse_cidr("10.0.0.0/", &c), HL_ESYNTAX);
    assert_int_equal(hl_parse_cidr("10.0.0.0/x", &c), HL_ESYNTAX);
    assert_int_equal(hl_parse_cidr("/8", &c), HL_ESYNTAX);
    assert_int_equal(hl_parse_cidr("10.0.0/8", &c), HL_ESYNTAX);
    assert_int_equal(hl_parse_cidr("example.com", &c), HL_ESYNTAX);
    assert_int_equal(hl_parse_cidr("", &c), HL_ESYNTAX);
}

/* ---- defaults ------------------------------------------------------------------ */

static void assert_defaults(const hl_config *cfg)
{
    assert_string_equal(cfg->file, "t.yaml");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_string_equal(cfg->server.host, "127.0.0.1");
    assert_int_equal(cfg->server.port, 8080);
    assert_int_equal(cfg->server.max_body, 1048576);
    assert_int_equal(cfg->server.max_connections, 10000);
    assert_int_equal(cfg->server.header_timeout_ms, 10000);
    assert_int_equal(cfg->server.idle_timeout_ms, 60000);
    assert_string_equal(cfg->storage.path, "./var/hookline.db");
    assert_int_equal(cfg->storage.durability, HL_DURABILITY_FULL);
    assert_int_equal(cfg->storage.max_queued, 1000000);
    assert_int_equal(cfg->storage.retention_delivered_ms, 7 * 86400000ULL);
    assert_int_equal(cfg->storage.retention_failed_ms, 30 * 86400000ULL);
    assert_int_equal(cfg->log.level, HL_LOG_INFO);
    assert_int_equal(cfg->log.format, HL_LOG_TEXT);
    assert_null(cfg->admin.token);
    assert_int_equal(cfg->outbound.timeout_ms, 15000);
    assert_int_equal(cfg->outbound.n_allow_networks, 0);
    assert_int_equal(cfg->connectors_path.n, 0);
    assert_int_equal(cfg->n_tenants, 0);
    assert_int_equal(cfg->n_sources, 0);
    assert_int_equal(cfg->n_connectors, 0);
    assert_int_equal(cfg->n_policies, 0);
    assert_int_equal(cfg->n_routes, 0);
    assert_int_equal(cfg->stream.heartbeat_ms, 30000);
    assert_int_equal(cfg->stream.max_clients, 1000);
    assert_int_equal(cfg->stream.client_buffer, 1000);
    const hl_policy_cfg *p = &cfg->default_policy;
    assert_null(p->name);
    assert_true(p->retry.exponential);
    assert_int_equal(p->retry.n_schedule, 0);
    assert_int_equal(p->retry.base_ms, 1000);
    assert_true(p->retry.factor == 2);
    assert_int_equal(p->retry.max_ms, 600000);
    assert_int_equal(p->retry.max_attempts, 10);
    assert_int_equal(p->retry.jitter, HL_JITTER_FRACTION);
    assert_true(p->retry.jitter_fraction == 0.1);
    assert_false(p->rate.set);
    assert_int_equal(p->max_in_flight, 16);
    assert_int_equal(p->circuit.failures, 5);
    assert_int_equal(p->circuit.cooldown_ms, 30000);
    assert_int_equal(p->n_redact, 0);
}

static void test_defaults(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "{}\n", "# only a comment\n",
                                        "server:\nstorage: {}\nlog:\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        hl_config *cfg = expect_ok(texts[i], NO_MSGS);
        assert_defaults(cfg);
    }
}

static void test_connector_default_policy(void **state)
{
    (void)state;
    hl_config *cfg = expect_ok("policies:\n  slow: {max_in_flight: 1}\n"
                               "connectors:\n  a: {plugin: webhook}\n  b: "
                               "{plugin: webhook, policy: slow}\nroutes:\n  - "
                               "to: [a, b]\n",
                               NO_MSGS);
    const hl_policy_cfg *pa =
        hl_config_policy_for(cfg, hl_config_connector(cfg, "a"));
    const hl_policy_cfg *pb =
        hl_config_policy_for(cfg, hl_config_connector(cfg, "b"));
    assert_ptr_equal(pa, &cfg->default_policy);
    assert_string_equal(pb->name, "slow");
    assert_int_equal(pb->max_in_flight, 1);
    assert_int_equal(pb->retry.max_attempts, 10);
    assert_true(pb->retry.exponential);
    assert_int_equal(cfg->routes[0].to.n, 2);
    assert_string_equal(cfg->routes[0].name, "route-1");
    assert_false(cfg->routes[0].cont);
}

/* ---- files --------------------------------------------------------------------- */

static void test_missing_file(void **state)
{
    (void)state;
    hl_config *cfg = (hl_config *)1;
    int rc = hl_config_load("/nonexistent/hl-test/hookline.yaml", &g_diags,
                            &cfg);
    assert_int_equal(rc, -ENOENT);
    assert_null(cfg);
    assert_diags(&g_diags, MSGS("/nonexistent/hl-test/hookline.yaml: error: cannot "
                          "open the file: No such file or directory"));
}

/* tests/data/config/design.yaml, found from this file's own path unless
 * HL_TEST_DATA names the data folder. */
static void data_path(char *buf, size_t size, const char *name)
{
    const char *dir = getenv("HL_TEST_DATA");
    if (dir) {
        snprintf(buf, size, "%s/%s", dir, name);
        return;
    }
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    snprintf(buf, size, "%.*s../data/%s", slash ? (int)(slash - self + 1) : 0,
             self, name);
    if (access(buf, R_OK) == 0)
        return;
    /* Not run from the top of the tree: build/test/unit/<binary>. */
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = 0;
    char *cut = strstr(exe, "/build/test/unit/");
    if (cut) {
        *cut = 0;
        snprintf(buf, size, "%s/tests/data/%s", exe, name);
    }
}

static void test_design_example(void **state)
{
    (void)state;
    static const char *const env[][2] = {
        {"HOOKLINE_ADMIN_TOKEN", "adm-0123456789abcdef0123456789"},
        {"ACME_TOKEN", "acme-0123456789abcdef"},
        {"AM_TOKEN", "am-token"},
        {"GITHUB_SECRET", "gh-secret"},
        {"PARTNER_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        {"SLACK_SIGNING_SECRET", "slack-signing"},
        {"SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T0/B0/x"},
        {"PD_ROUTING_KEY", "pd-routing-key"},
        {"JIRA_EMAIL_AND_TOKEN", "ops@acme.example:jira-token"},
        {"OUT_WHSEC", "whsec_b3V0Ym91bmQ="},
        {"CI_SECRET", "ci-secret"},
    };
    for (size_t i = 0; i < sizeof env / sizeof *env; i++)
        setenv(env[i][0], env[i][1], 1);
    char path[1024];
    data_path(path, sizeof path, "config/design.yaml");
    hl_diags *d = &g_diags;
    hl_config *cfg = NULL;
    int rc = hl_config_load(path, d, &cfg);
    keep(cfg);
    char want[1200];
    snprintf(want, sizeof want,
             "%s:70:5: warning: connectors.legacy-ci: no route sends events "
             "to this connector",
             path);
    assert_diags(d, MSGS(want));
    assert_int_equal(rc, 0);
    assert_non_null(cfg);

    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->server.max_body, 1048576);
    assert_int_equal(cfg->log.format, HL_LOG_JSON);
    assert_string_equal(cfg->admin.token, "adm-0123456789abcdef0123456789");
    assert_int_equal(cfg->n_tenants, 1);
    assert_string_equal(cfg->tenants[0].token, "acme-0123456789abcdef");
    assert_int_equal(cfg->n_sources, 4);
    assert_int_equal(cfg->n_connectors, 5);
    assert_int_equal(cfg->n_policies, 2);
    assert_int_equal(cfg->n_routes, 3);

    const hl_source_cfg *am = hl_config_source(cfg, "alertmanager");
    assert_true(am->verify.bearer_set);
    assert_string_equal(am->verify.bearer.tokens.v[0], "am-token");
    assert_true(am->rate.set);
    assert_true(am->rate.per_second == 200 && am->rate.burst == 400);

    const hl_source_cfg *gh = hl_config_source(cfg, "github");
    assert_string_equal(gh->kind, "github");
    assert_string_equal(gh->idempotency_header, "X-GitHub-Delivery");
    assert_true(gh->verify.hmac_set);
    assert_string_equal(gh->verify.hmac.header, "X-Hub-Signature-256");
    assert_int_equal(gh->verify.hmac.algorithm, HL_HASH_SHA256);
    assert_string_equal(gh->verify.hmac.prefix, "sha256=");
    assert_int_equal(gh->verify.hmac.encoding, HL_ENC_HEX);
    assert_int_equal(gh->verify.hmac.secrets.n, 1);
    assert_string_equal(gh->verify.hmac.secrets.v[0], "gh-secret");

    const hl_source_cfg *partner = hl_config_source(cfg, "partner");
    assert_true(partner->verify.standard_webhooks_set);
    assert_int_equal(partner->verify.standard_webhooks.tolerance_ms, 300000);
    assert_string_equal(partner->verify.standard_webhooks.secrets.v[0],
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_string_equal(partner->tenant, "acme");
    assert_true(hl_config_source(cfg, "slack-actions")->verify.slack_set);

    const hl_policy_cfg *chat = &cfg->policies[0];
    assert_string_equal(chat->name, "chat");
    assert_false(chat->retry.exponential);
    assert_int_equal(chat->retry.n_schedule, 8);
    assert_int_equal(chat->retry.schedule_ms[0], 0);
    assert_int_equal(chat->retry.schedule_ms[2], 300000);
    assert_int_equal(chat->retry.schedule_ms[7], 36000000);
    assert_int_equal(chat->retry.max_attempts, 8);
    assert_int_equal(chat->retry.jitter, HL_JITTER_FRACTION);
    assert_true(chat->retry.jitter_fraction == 0.2);
    assert_int_equal(chat->max_in_flight, 4);
    assert_int_equal(chat->circuit.failures, 5);
    assert_int_equal(chat->circuit.cooldown_ms, 30000);
    assert_int_equal(chat->n_redact, 2);
    assert_string_equal(chat->redact[1].value, "pii");

    const hl_policy_cfg *paging = &cfg->policies[1];
    assert_string_equal(paging->name, "paging");
    assert_true(paging->retry.exponential);
    assert_int_equal(paging->retry.base_ms, 1000);
    assert_true(paging->retry.factor == 2);
    assert_int_equal(paging->retry.max_ms, 300000);
    assert_int_equal(paging->retry.max_attempts, 12);
    assert_int_equal(paging->retry.max_age_ms, 86400000);
    assert_int_equal(paging->retry.jitter, HL_JITTER_FULL);

    const hl_connector_cfg *ops = hl_config_connector(cfg, "ops-chat");
    assert_string_equal(ops->url, "https://hooks.slack.example/services/T0/B0/x");
    assert_ptr_equal(hl_config_policy_for(cfg, ops), chat);
    const hl_connector_cfg *po = hl_config_connector(cfg, "partner-out");
    assert_string_equal(po->tenant, "acme");
    assert_string_equal(po->plugin, "webhook");
    assert_null(hl_config_connector(cfg, "pager")->url);

    const hl_route_cfg *r = &cfg->routes[0];
    assert_string_equal(r->name, "page-on-critical");
    assert_true(r->cont);
    assert_int_equal(r->source.n, 1);
    assert_string_equal(r->source.v[0], "alertmanager");
    assert_int_equal(r->severity.n, 2);
    assert_string_equal(r->severity.v[0], "critical");
    assert_string_equal(r->severity.v[1], "error");
    assert_int_equal(r->to.n, 2);
    assert_string_equal(r->to.v[1], "pager");
    assert_false(cfg->routes[1].cont);
    assert_string_equal(cfg->routes[1].type.v[0], "issue.*");
    assert_string_equal(cfg->routes[2].tenant.v[0], "acme");

    for (size_t i = 0; i < sizeof env / sizeof *env; i++)
        unsetenv(env[i][0]);
}

/* The design example with none of its variables set: each is named. */
static void test_design_example_without_env(void **state)
{
    (void)state;
    static const char *const vars[] = {
        "HOOKLINE_ADMIN_TOKEN", "ACME_TOKEN", "AM_TOKEN", "GITHUB_SECRET",
        "PARTNER_WHSEC", "SLACK_SIGNING_SECRET", "SLACK_WEBHOOK_URL",
        "PD_ROUTING_KEY", "JIRA_EMAIL_AND_TOKEN", "OUT_WHSEC", "CI_SECRET"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    char path[1024];
    data_path(path, sizeof path, "config/design.yaml");
    hl_diags *d = &g_diags;
    hl_config *cfg = (hl_config *)1;
    int rc = hl_config_load(path, d, &cfg);
    assert_int_equal(rc, HL_ECONFIG);
    assert_null(cfg);
    /* Every unset variable is named, each once or more, in file order. */
    char buf[2048];
    unsigned last = 0;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        int found = 0;
        for (size_t j = 0; j < d->n; j++) {
            hl_diag_format(&d->v[j], buf, sizeof buf);
            found |= strstr(buf, vars[i]) && strstr(buf, " is not set ");
        }
        if (!found)
            fail_msg("no message names %s", vars[i]);
    }
    for (size_t j = 0; j < d->n; j++) {
        assert_true(d->v[j].line >= last);
        last = d->v[j].line;
    }
    assert_true(d->errors >= sizeof vars / sizeof *vars);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_yaml_syntax_error, teardown),
        cmocka_unit_test_teardown(test_second_document, teardown),
        cmocka_unit_test_teardown(test_duplicate_key, teardown),
        cmocka_unit_test_teardown(test_root_not_a_mapping, teardown),
        cmocka_unit_test_teardown(test_unknown_key_did_you_mean, teardown),
        cmocka_unit_test_teardown(test_unknown_key_lists_choices, teardown),
        cmocka_unit_test_teardown(test_mapping_where_string_expected, teardown),
        cmocka_unit_test_teardown(test_list_where_mapping_expected, teardown),
        cmocka_unit_test_teardown(test_missing_required_keys, teardown),
        cmocka_unit_test_teardown(test_bad_duration, teardown),
        cmocka_unit_test_teardown(test_bad_size, teardown),
        cmocka_unit_test_teardown(test_number_out_of_range, teardown),
        cmocka_unit_test_teardown(test_bad_enum, teardown),
        cmocka_unit_test_teardown(test_bad_bool, teardown),
        cmocka_unit_test_teardown(test_bad_listen, teardown),
        cmocka_unit_test_teardown(test_listen_forms, teardown),
        cmocka_unit_test_teardown(test_bad_cidr, teardown),
        cmocka_unit_test_teardown(test_bad_url, teardown),
        cmocka_unit_test_teardown(test_bad_regex, teardown),
        cmocka_unit_test_teardown(test_redaction_rules, teardown),
        cmocka_unit_test_teardown(test_bad_source_name, teardown),
        cmocka_unit_test_teardown(test_unknown_references, teardown),
        cmocka_unit_test_teardown(test_several_tenants_source_without_tenant, teardown),
        cmocka_unit_test_teardown(test_empty_verify, teardown),
        cmocka_unit_test_teardown(test_whsec_prefix, teardown),
        cmocka_unit_test_teardown(test_verify_values, teardown),
        cmocka_unit_test_teardown(test_fields_on_non_generic_kind, teardown),
        cmocka_unit_test_teardown(test_schedule_and_exponential, teardown),
        cmocka_unit_test_teardown(test_exponential_max_below_base, teardown),
        cmocka_unit_test_teardown(test_policy_values, teardown),
        cmocka_unit_test_teardown(test_route_severity, teardown),
        cmocka_unit_test_teardown(test_all_errors_in_file_order, teardown),
        cmocka_unit_test_teardown(test_warning_source_without_verify, teardown),
        cmocka_unit_test_teardown(test_warnings_tenants_and_connectors, teardown),
        cmocka_unit_test_teardown(test_warning_short_admin_token, teardown),
        cmocka_unit_test_teardown(test_env_set, teardown),
        cmocka_unit_test_teardown(test_env_unset, teardown),
        cmocka_unit_test_teardown(test_file_reference, teardown),
        cmocka_unit_test_teardown(test_file_reference_missing, teardown),
        cmocka_unit_test_teardown(test_literal_dollar_brace, teardown),
        cmocka_unit_test_teardown(test_invalid_reference, teardown),
        cmocka_unit_test_teardown(test_expanded_null_stays_a_string, teardown),
        cmocka_unit_test_teardown(test_parse_duration, teardown),
        cmocka_unit_test_teardown(test_parse_size, teardown),
        cmocka_unit_test_teardown(test_parse_cidr, teardown),
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_connector_default_policy, teardown),
        cmocka_unit_test_teardown(test_missing_file, teardown),
        cmocka_unit_test_teardown(test_design_example, teardown),
        cmocka_unit_test_teardown(test_design_example_without_env, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
