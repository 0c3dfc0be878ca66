/* test_map.c - source mappings: golden canonical events for every inbound
 * fixture, every DSL operator, unparsed payloads and load errors with their
 * positions. */
/*
 * Golden cases: every payload in ../shared/fixtures/inbound (HL_FIXTURES
 * overrides the folder) and in tests/data/golden/inputs, named KIND__WHAT.EXT,
 * is normalized with schemas/sources/KIND.yaml, the request headers of
 * tests/data/golden/KIND__WHAT.headers.json and fixed ids and times, and must
 * give exactly the JSON of tests/data/golden/KIND__WHAT.expected.json.
 * HL_GOLDEN_WRITE=1 rewrites the expected files from what the engine gives:
 * read every changed field against its payload before keeping it, since an
 * expected file is a claim that the output is right. tests/e2e/test_golden.py
 * checks every expected event against schemas/event.v1.json.
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "diag.h"
#include "err.h"
#include "map.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fixed inputs of every case, so expected events never change. */
#define TEST_ID "01M8G49QRBSP2991E0W2GJFV6G"
#define TEST_TENANT "acme"
#define TEST_CORRELATION "c0ffee"
#define TEST_RECEIVED_MS INT64_C(1764300000000) /* 2025-11-28T03:20:00Z */
#define TEST_RECEIVED "2025-11-28T03:20:00.000Z"

#define MAPPINGS_DIR "schemas/sources"
#define GOLDEN_DIR "tests/data/golden"
#define INPUTS_DIR GOLDEN_DIR "/inputs"

/* ---- helpers ------------------------------------------------------------ */

/* The shipped mappings, loaded once for the whole run. */
static hl_mappings *g_shipped;

/* What one test made, freed by the teardown even when an assertion fails. */
static hl_diags g_diags;
static hl_mappings *g_ms;
static json_t *g_events;
static char g_why[1024];
static char g_dir[64]; /* the temporary folder of the last load_yaml() */

static int teardown(void **state)
{
    (void)state;
    hl_diags_free(&g_diags);
    hl_mappings_destroy(g_ms);
    g_ms = NULL;
    json_decref(g_events);
    g_events = NULL;
    g_why[0] = 0;
    return 0;
}

static const char *fixtures_dir(void)
{
    const char *env = getenv("HL_FIXTURES");
    return env && *env ? env : "../shared/fixtures/inbound";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void print_diags(const hl_diags *d)
{
    char buf[2048];
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        print_message("  %s\n", buf);
    }
}

/* The messages must be exactly these, in this order. */
static void assert_diags(const hl_diags *d, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    int same = d->n == n;
    char buf[2048];
    for (size_t i = 0; same && i < n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        same = !strcmp(buf, want[i]);
    }
    if (!same) {
        print_message("expected:\n");
        for (size_t i = 0; i < n; i++)
            print_message("  %s\n", want[i]);
        print_message("got:\n");
        print_diags(d);
        fail_msg("the load messages differ");
    }
}

/* Split text into lines in place. */
static size_t split_lines(char *text, char ***out)
{
    size_t n = 0, cap = 64;
    char **v = malloc(cap * sizeof *v);
    for (char *p = text; v && *p;) {
        if (n == cap) {
            char **bigger = realloc(v, cap * 2 * sizeof *v);
            if (!bigger)
                break;
            v = bigger;
            cap *= 2;
        }
        v[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    *out = v;
    return v ? n : 0;
}

/* A unified-looking line diff of two texts (longest common subsequence),
 * with three lines of context around each change. */
static void print_diff(const char *want_text, const char *got_text)
{
    char *a = strdup(want_text), *b = strdup(got_text), **x, **y;
    size_t n = split_lines(a, &x), m = split_lines(b, &y);
    uint32_t *lcs = calloc((n + 1) * (m + 1), sizeof *lcs);
    char *op = malloc(n + m + 1);
    const char **line = malloc((n + m + 1) * sizeof *line);
    if (!lcs || !op || !line) {
        print_message("--- expected\n%s\n+++ got\n%s\n", want_text, got_text);
        goto out;
    }
#define L(i, j) lcs[(size_t)(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            L(i, j) = !strcmp(x[i], y[j])          ? L(i + 1, j + 1) + 1
                      : L(i + 1, j) >= L(i, j + 1) ? L(i + 1, j)
                                                   : L(i, j + 1);
    size_t k = 0, i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && !strcmp(x[i], y[j])) {
            op[k] = ' ', line[k++] = x[i++], j++;
        } else if (i < n && (j == m || L(i + 1, j) >= L(i, j + 1))) {
            op[k] = '-', line[k++] = x[i++];
        } else {
            op[k] = '+', line[k++] = y[j++];
        }
    }
#undef L
    print_message("--- expected\n+++ got\n");
    size_t last = (size_t)-1;
    for (size_t t = 0; t < k; t++) {
        int near = 0;
        for (size_t u = t > 3 ? t - 3 : 0; u < k && u <= t + 3; u++)
            near |= op[u] != ' ';
        if (!near)
            continue;
        if (last == (size_t)-1 || t != last + 1)
            print_message("@@ line %zu @@\n", t + 1);
        print_message("%c%s\n", op[t], line[t]);
        last = t;
    }
out:
    free(lcs);
    free(op);
    free(line);
    free(x);
    free(y);
    free(a);
    free(b);
}

static char *pretty(const json_t *v)
{
    return json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* One webhook with the fixed inputs. */
static int apply(const hl_mapping *m, const hl_source_cfg *src,
                 const char *source, const char *body, size_t len,
                 const char *content_type, const char *headers_json,
                 json_t **events)
{
    hl_inbound ev = {
        .tenant = TEST_TENANT,
        .source = source,
        .content_type = content_type,
        .correlation_id = TEST_CORRELATION,
        .headers_json = headers_json,
        .body = body,
        .body_len = len,
        .received_ms = TEST_RECEIVED_MS,
    };
    memcpy(ev.id, TEST_ID, sizeof TEST_ID);
    return hl_map_apply(m, src, &ev, events, g_why, sizeof g_why);
}

/* ---- golden cases: every inbound fixture, and our own inputs ------------- */

typedef struct {
    char name[200];   /* the input's file name without its extension */
    char kind[64];    /* what comes before "__" */
    char input[1200]; /* its path */
    char test_name[220];
} golden_case;

static golden_case *g_cases;
static size_t g_ncases;

static void add_cases(const char *dir, const char *only_ext)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *de;
    while ((de = readdir(dh))) {
        const char *dot = strrchr(de->d_name, '.');
        const char *sep = strstr(de->d_name, "__");
        if (de->d_name[0] == '.' || !dot || !sep || sep > dot ||
            (only_ext && strcmp(dot, only_ext)))
            continue;
        golden_case *v = realloc(g_cases, (g_ncases + 1) * sizeof *v);
        if (!v)
            break;
        g_cases = v;
        golden_case *c = &g_cases[g_ncases++];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%.*s", (int)(dot - de->d_name),
                 de->d_name);
        snprintf(c->kind, sizeof c->kind, "%.*s", (int)(sep - de->d_name),
                 de->d_name);
        snprintf(c->input, sizeof c->input, "%s/%s", dir, de->d_name);
        snprintf(c->test_name, sizeof c->test_name, "golden_%s", c->name);
    }
    closedir(dh);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const golden_case *)a)->name,
                  ((const golden_case *)b)->name);
}

static void collect_cases(void)
{
    add_cases(fixtures_dir(), ".json");
    add_cases(INPUTS_DIR, NULL);
    qsort(g_cases, g_ncases, sizeof *g_cases, by_name);
}

/* The request headers a case was sent with, as intake keeps them: names in
 * lower case; the content type also comes back on its own. */
static char *case_headers(const golden_case *c, char *ctype, size_t ctlen)
{
    char path[1200];
    snprintf(path, sizeof path, GOLDEN_DIR "/%s.headers.json", c->name);
    json_error_t e;
    json_t *h = json_load_file(path, 0, &e);
    if (!json_is_object(h)) {
        json_decref(h);
        print_message("%s: %s (line %d)\n", path, e.text, e.line);
        return NULL;
    }
    json_t *low = json_object();
    const char *k;
    json_t *v;
    ctype[0] = 0;
    json_object_foreach(h, k, v)
    {
        char name[128];
        snprintf(name, sizeof name, "%s", k);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_object_set(low, name, v);
        if (!strcmp(name, "content-type") && json_is_string(v))
            snprintf(ctype, ctlen, "%s", json_string_value(v));
    }
    char *text = json_dumps(low, JSON_COMPACT);
    json_decref(low);
    json_decref(h);
    return text;
}

static void test_golden(void **state)
{
    const golden_case *c = *state;
    const hl_mapping *m = hl_mappings_get(g_shipped, c->kind);
    if (!m)
        fail_msg("%s: no mapping " MAPPINGS_DIR "/%s.yaml", c->name, c->kind);
    char ctype[200], expected[1200], problem[2600] = "";
    char *headers = case_headers(c, ctype, sizeof ctype);
    size_t len = 0;
    char *body = slurp(c->input, &len);
    if (!headers || !body) {
        free(headers);
        free(body);
        fail_msg("%s: cannot read " GOLDEN_DIR "/%s.headers.json or %s",
                 c->name, c->name, c->input);
    }
    hl_source_cfg src = {
        .name = c->kind, .tenant = TEST_TENANT, .kind = c->kind};
    int rc = apply(m, &src, c->kind, body, len, ctype[0] ? ctype : NULL,
                   headers, &g_events);
    free(headers);
    free(body);
    if (rc)
        fail_msg("%s: %s: %s", c->name, hl_err_name(rc), g_why);
    snprintf(expected, sizeof expected, GOLDEN_DIR "/%s.expected.json",
             c->name);
    char *got = pretty(g_events);
    if (getenv("HL_GOLDEN_WRITE")) {
        FILE *f = fopen(expected, "w");
        if (f) {
            fprintf(f, "%s\n", got);
            fclose(f);
            print_message("# wrote %s\n", expected);
        }
    }
    json_error_t e;
    json_t *want = json_load_file(expected, 0, &e);
    if (!want)
        snprintf(problem, sizeof problem, "%s: %s (line %d)", expected, e.text,
                 e.line);
    else if (!json_equal(want, g_events)) {
        char *want_text = pretty(want);
        print_diff(want_text, got);
        free(want_text);
        snprintf(problem, sizeof problem, "%s: the events differ from %s",
                 c->name, expected);
    }
    json_decref(want);
    free(got);
    if (problem[0])
        fail_msg("%s", problem);
}

/* Every fixture has its golden files, and every golden file its input. */
static void test_golden_complete(void **state)
{
    (void)state;
    DIR *dh = opendir(fixtures_dir());
    if (!dh)
        fail_msg("no fixtures at %s (run from the repository root, or set "
                 "HL_FIXTURES)",
                 fixtures_dir());
    closedir(dh);
    size_t fixtures = 0;
    for (size_t i = 0; i < g_ncases; i++) {
        char path[1200];
        fixtures +=
            !strncmp(g_cases[i].input, fixtures_dir(), strlen(fixtures_dir()));
        snprintf(path, sizeof path, GOLDEN_DIR "/%s.expected.json",
                 g_cases[i].name);
        if (!exists(path) && !getenv("HL_GOLDEN_WRITE"))
            fail_msg("%s has no %s", g_cases[i].input, path);
        snprintf(path, sizeof path, GOLDEN_DIR "/%s.headers.json",
                 g_cases[i].name);
        if (!exists(path))
            fail_msg("%s has no %s", g_cases[i].input, path);
    }
    assert_true(fixtures >= 10);
    dh = opendir(GOLDEN_DIR);
    assert_non_null(dh);
    struct dirent *de;
    char orphan[300] = "";
    while ((de = readdir(dh))) {
        size_t n = strlen(de->d_name);
        const char *suffix =
            n > 14 && !strcmp(de->d_name + n - 14, ".expected.json")
                ? ".expected.json"
            : n > 13 && !strcmp(de->d_name + n - 13, ".headers.json")
                ? ".headers.json"
                : NULL;
        if (!suffix)
            continue;
        size_t base = n - strlen(suffix), i = 0;
        while (i < g_ncases && (strlen(g_cases[i].name) != base ||
                                strncmp(g_cases[i].name, de->d_name, base)))
            i++;
        if (i == g_ncases && !orphan[0])
            snprintf(orphan, sizeof orphan, "%s", de->d_name);
    }
    closedir(dh);
    if (orphan[0])
        fail_msg(GOLDEN_DIR "/%s has no input", orphan);
}

/* ---- the DSL, one mapping at a time ----------------------------------------
 */

/* Write yaml as KIND.yaml into a new temporary folder and load that folder;
 * the folder is gone again when this returns (g_dir keeps its name). */
static int load_yaml(const char *kind, const char *yaml)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/hl-map-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/%s.yaml", g_dir, kind);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    hl_mappings_destroy(g_ms);
    g_ms = NULL;
    int rc = hl_mappings_load(g_dir, &g_diags, &g_ms);
    unlink(path);
    rmdir(g_dir);
    return rc;
}

static const hl_mapping *load_ok(const char *yaml)
{
    int rc = load_yaml("t", yaml);
    if (rc) {
        print_diags(&g_diags);
        fail_msg("load: %s", hl_err_name(rc));
    }
    const hl_mapping *m = hl_mappings_get(g_ms, "t");
    assert_non_null(m);
    return m;
}

/* The kept headers every DSL case is sent with. */
#define HEADERS "{\"x-thing\": \"Hi\", \"content-type\": \"application/json\"}"

static int run_with(const char *yaml, const char *body, const char *ctype,
                    const hl_source_cfg *src)
{
    const hl_mapping *m = load_ok(yaml);
    hl_source_cfg dflt = {.name = "t-src", .tenant = TEST_TENANT, .kind = "t"};
    json_decref(g_events);
    g_events = NULL;
    return apply(m, src ? src : &dflt, "t-src", body, strlen(body), ctype,
                 HEADERS, &g_events);
}

/* Normalize body with a mapping; it must succeed. */
static json_t *run(const char *yaml, const char *body)
{
    int rc = run_with(yaml, body, "application/json", NULL);
    if (rc)
        fail_msg("%s: %s", hl_err_name(rc), g_why);
    assert_true(json_is_array(g_events));
    return g_events;
}

/* It must end unparsed: the reason. */
static const char *run_fails(const char *yaml, const char *body)
{
    int rc = run_with(yaml, body, "application/json", NULL);
    assert_int_equal(rc, HL_ESYNTAX);
    assert_null(g_events);
    return g_why;
}

/* A value of event i by dotted path ("data.labels.x"): its text, or NULL. */
static const char *at(json_t *events, size_t i, const char *path)
{
    json_t *v = json_array_get(events, i);
    char part[128];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, path);
        v = json_object_get(v, part);
        path += n + (path[n] == '.');
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *label(json_t *events, size_t i, const char *name)
{
    char path[160];
    snprintf(path, sizeof path, "data.labels.%s", name);
    return at(events, i, path);
}

#define MAP(...)                                                               \
    "kind: t\nevent:\n  type: { value: message }\n  title: t\n" __VA_ARGS__

static void test_template(void **state)
{
    (void)state;
    json_t *ev =
        run("kind: t\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: \"{{body.a.b}}|{{item.a.b}}|{{headers.x-thing}}|"
            "{{source.name}}|{{source.kind}}|{{source.tenant}}|{{index}}|"
            "{{body.list.1.name}}|{{body.n}}|{{body.missing}}|{{body.html}}|"
            "{{#body.list}}{{name}},{{/body.list}}\"\n",
            "{\"a\": {\"b\": \"AB\"}, \"list\": [{\"name\": \"zero\"}, "
            "{\"name\": \"one\"}], \"n\": 1.5, \"html\": \"<&\\\">\"}");
    assert_int_equal(json_array_size(ev), 1);
    assert_string_equal(at(ev, 0, "data.title"),
                        "AB|AB|Hi|t-src|t|acme|1|one|1.5||<&\">|zero,one,");
}

static void test_pointer(void **state)
{
    (void)state;
    json_t *ev = run(MAP("  labels:\n"
                         "    set:\n"
                         "      item: { pointer: /a/b }\n"
                         "      body: { pointer: /a/b, from: body }\n"
                         "      explicit_item: { pointer: /a/b, from: item }\n"
                         "      header: { pointer: /x-thing, from: headers }\n"
                         "      escapes: { pointer: /we~1ird~0key }\n"
                         "      tilde_order: { pointer: /x~01 }\n"
                         "      index: { pointer: /list/1/name }\n"
                         "      past_end: { pointer: /list/2/name }\n"
                         "      not_index: { pointer: /list/x }\n"
                         "      number: { pointer: /n }\n"
                         "      integer: { pointer: /i }\n"
                         "      boolean: { pointer: /t }\n"
                         "      null: { pointer: /z }\n"
                         "      object: { pointer: /a }\n"
                         "      missing: { pointer: /a/c }\n"
                         "      through_string: { pointer: /a/b/c }\n"
                         "      empty_key: { pointer: / }\n"),
                     "{\"a\": {\"b\": \"AB\"}, \"we/ird~key\": \"esc\", "
                     "\"x~1\": \"tilde\", \"list\": [{\"name\": \"zero\"}, "
                     "{\"name\": \"one\"}], \"n\": 1.25, \"i\": -7, "
                     "\"t\": true, \"z\": null, \"\": \"empty key\"}");
    assert_string_equal(label(ev, 0, "item"), "AB");
    assert_string_equal(label(ev, 0, "body"), "AB");
    assert_string_equal(label(ev, 0, "explicit_item"), "AB");
    assert_string_equal(label(ev, 0, "header"), "Hi");
    assert_string_equal(label(ev, 0, "escapes"), "esc");
    /* ~01 is "~1" (decode ~0 last), not "/" */
    assert_string_equal(label(ev, 0, "tilde_order"), "tilde");
    assert_string_equal(label(ev, 0, "index"), "one");
    assert_string_equal(label(ev, 0, "number"), "1.25");
    assert_string_equal(label(ev, 0, "integer"), "-7");
    assert_string_equal(label(ev, 0, "boolean"), "true");
    assert_string_equal(label(ev, 0, "empty_key"), "empty key");
    /* absent, null, objects and paths that lead nowhere set no label */
    assert_null(label(ev, 0, "past_end"));
    assert_null(label(ev, 0, "not_index"));
    assert_null(label(ev, 0, "null"));
    assert_null(label(ev, 0, "object"));
    assert_null(label(ev, 0, "missing"));
    assert_null(label(ev, 0, "through_string"));
    assert_int_equal(
        json_object_size(json_object_get(
            json_object_get(json_array_get(ev, 0), "data"), "labels")),
        11);
}

static void test_header(void **state)
{
    (void)state;
    json_t *ev = run(MAP("  labels:\n"
                         "    set:\n"
                         "      upper: { header: X-THING }\n"
                         "      mixed: { header: X-Thing }\n"
                         "      lower: { header: x-thing }\n"
                         "      ctype: { header: Content-Type }\n"
                         "      missing: { header: X-Missing }\n"),
                     "{}");
    assert_string_equal(label(ev, 0, "upper"), "Hi");
    assert_string_equal(label(ev, 0, "mixed"), "Hi");
    assert_string_equal(label(ev, 0, "lower"), "Hi");
    assert_string_equal(label(ev, 0, "ctype"), "application/json");
    assert_null(label(ev, 0, "missing"));
}

static void test_value(void **state)
{
    (void)state;
    json_t *ev = run(MAP("  subject: { value: \"a b\" }\n"
                         "  labels:\n"
                         "    set:\n"
                         "      int: { value: 42 }\n"
                         "      real: { value: 2.5 }\n"
                         "      bool: { value: true }\n"
                         "      quoted: { value: \"true\" }\n"
                         "      nothing: { value: null }\n"),
                     "{}");
    assert_string_equal(at(ev, 0, "subject"), "a b");
    assert_string_equal(label(ev, 0, "int"), "42");
    assert_string_equal(label(ev, 0, "real"), "2.5");
    assert_string_equal(label(ev, 0, "bool"), "true");
    assert_string_equal(label(ev, 0, "quoted"), "true");
    assert_null(label(ev, 0, "nothing"));
}

static void test_regex(void **state)
{
    (void)state;
    json_t *ev = run(
        MAP("  labels:\n"
            "    set:\n"
            "      number: { regex: '^(\\w+)-(\\d+)$', in: { pointer: /code }, "
            "group: 2 }\n"
            "      named: { regex: '^(?<word>\\w+)-(?<num>\\d+)$', "
            "in: { pointer: /code }, group: word }\n"
            "      whole: { regex: '\\d+', in: { pointer: /code } }\n"
            "      group0: { regex: 'c-1', in: { pointer: /code }, group: 0 }\n"
            "      unset: { regex: '^(\\w+)-(\\d+)(-x)?$', "
            "in: { pointer: /code }, group: 3 }\n"
            "      no_group: { regex: '^(\\w+)', in: { pointer: /code }, "
            "group: 5 }\n"
            "      no_match: { regex: '^x', in: { pointer: /code } }\n"
            "      of_number: { regex: '^(\\d\\d)', in: { pointer: /num }, "
            "group: 1 }\n"
            "      of_template: { regex: '@(.*)$', in: \"{{body.code}}@"
            "{{headers.x-thing}}\", group: 1 }\n"
            "      of_missing: { regex: '.*', in: { pointer: /nope } }\n"
            "      utf8: { regex: '^(.)', in: { pointer: /u }, group: 1 }\n"),
        "{\"code\": \"abc-123\", \"num\": 98765, \"u\": \"\\u00e9t\\u00e9\"}");
    assert_string_equal(label(ev, 0, "number"), "123");
    assert_string_equal(label(ev, 0, "named"), "abc");
    assert_string_equal(label(ev, 0, "whole"), "123");
    assert_string_equal(label(ev, 0, "group0"), "c-1");
    assert_string_equal(label(ev, 0, "of_number"), "98");
    assert_string_equal(label(ev, 0, "of_template"), "Hi");
    assert_string_equal(label(ev, 0, "utf8"), "\xc3\xa9");
    assert_null(label(ev, 0, "unset"));
    assert_null(label(ev, 0, "no_group"));
    assert_null(label(ev, 0, "no_match"));
    assert_null(label(ev, 0, "of_missing"));
}

static void test_lookup(void **state)
{
    (void)state;
    json_t *ev = run(
        MAP("  labels:\n"
            "    set:\n"
            "      hit: { lookup: { hi: critical, lo: info }, "
            "in: { pointer: /lvl }, default: { value: dflt } }\n"
            "      number_key: { lookup: { \"1\": one, \"2\": two }, "
            "in: { pointer: /n } }\n"
            "      bool_key: { lookup: { \"true\": yes }, "
            "in: { pointer: /t } }\n"
            "      number_result: { lookup: { hi: 5 }, in: { pointer: /lvl } "
            "}\n"
            "      default: { lookup: { x: y }, in: { pointer: /lvl }, "
            "default: { pointer: /other } }\n"
            "      no_default: { lookup: { x: y }, in: { pointer: /lvl } }\n"
            "      missing_in: { lookup: { x: y }, in: { pointer: /nope }, "
            "default: { value: fallback } }\n"
            "      case_matters: { lookup: { HI: upper }, "
            "in: { pointer: /lvl } }\n"),
        "{\"lvl\": \"hi\", \"n\": 2, \"t\": true, \"other\": \"from-other\"}");
    assert_string_equal(label(ev, 0, "hit"), "critical");
    assert_string_equal(label(ev, 0, "number_key"), "two");
    assert_string_equal(label(ev, 0, "bool_key"), "yes");
    assert_string_equal(label(ev, 0, "number_result"), "5");
    assert_string_equal(label(ev, 0, "default"), "from-other");
    assert_string_equal(label(ev, 0, "missing_in"), "fallback");
    assert_null(label(ev, 0, "no_default"));
    assert_null(label(ev, 0, "case_matters"));
}

static void test_first(void **state)
{
    (void)state;
    json_t *ev = run(
        MAP("  labels:\n"
            "    set:\n"
            "      skips: { first: [ { pointer: /missing }, { pointer: /empty "
            "},"
            " { pointer: /nil }, \"{{body.missing}}\", { pointer: /zero }, "
            "{ value: last } ] }\n"
            "      falsy_kept: { first: [ { pointer: /f }, { value: x } ] }\n"
            "      object_is_present: { first: [ { pointer: /o }, "
            "{ value: x } ] }\n"
            "      none: { first: [ { pointer: /missing }, { pointer: /empty } "
            "] }\n"),
        "{\"empty\": \"\", \"nil\": null, \"zero\": 0, \"f\": false, "
        "\"o\": {\"a\": 1}}");
    /* 0 and false are values, not absences */
    assert_string_equal(label(ev, 0, "skips"), "0");
    assert_string_equal(label(ev, 0, "falsy_kept"), "false");
    /* an object is present (first stops there) but is no text */
    assert_null(label(ev, 0, "object_is_present"));
    assert_null(label(ev, 0, "none"));
}

static void test_hash(void **state)
{
    (void)state;
    json_t *ev = run(MAP("  dedupkey: { hash: { pointer: /o1 } }\n"
                         "  labels:\n"
                         "    set:\n"
                         "      h1: { hash: { pointer: /o1 } }\n"
                         "      h2: { hash: { pointer: /o2 } }\n"
                         "      h3: { hash: { pointer: /o3 } }\n"
                         "      text: { hash: { pointer: /s } }\n"
                         "      missing: { hash: { pointer: /nope } }\n"
                         "      empty: { hash: { pointer: /e } }\n"),
                     "{\"o1\": {\"a\": 1, \"b\": [1, 2], \"c\": {\"x\": \"y\", "
                     "\"w\": \"z\"}},"
                     " \"o2\": {\"c\": {\"w\": \"z\", \"x\": \"y\"}, \"b\": "
                     "[1, 2], \"a\": 1},"
                     " \"o3\": {\"a\": 1, \"b\": [2, 1], \"c\": {\"x\": \"y\", "
                     "\"w\": \"z\"}},"
                     " \"s\": \"abc\", \"e\": \"\"}");
    /* SHA-256 of the sorted compact JSON
     * {"a":1,"b":[1,2],"c":{"w":"z","x":"y"}}, its first 16 bytes in hex:
     * stable across runs, builds and key order */
    assert_string_equal(label(ev, 0, "h1"), "9e1ae51877b87f085e421157b5876720");
    assert_string_equal(label(ev, 0, "h2"), "9e1ae51877b87f085e421157b5876720");
    assert_string_equal(at(ev, 0, "dedupkey"),
                        "9e1ae51877b87f085e421157b5876720");
    /* list order matters */
    assert_string_not_equal(label(ev, 0, "h3"),
                            "9e1ae51877b87f085e421157b5876720");
    assert_int_equal(strlen(label(ev, 0, "h3")), 32);
    /* SHA-256 of "abc" with its quotes */
    assert_string_equal(label(ev, 0, "text"),
                        "6cc43f858fbb763301637b5af970e2a4");
    assert_null(label(ev, 0, "missing"));
    assert_null(label(ev, 0, "empty"));
}

static void test_lower(void **state)
{
    (void)state;
    json_t *ev = run(MAP("  labels:\n"
                         "    set:\n"
                         "      text: { lower: { pointer: /m } }\n"
                         "      number: { lower: { pointer: /n } }\n"
                         "      template: { lower: \"{{headers.x-thing}}\" }\n"
                         "      missing: { lower: { pointer: /nope } }\n"
                         "      object: { lower: { pointer: /o } }\n"),
                     "{\"m\": \"MiXeD-Case_1\", \"n\": 12, \"o\": {}}");
    assert_string_equal(label(ev, 0, "text"), "mixed-case_1");
    assert_string_equal(label(ev, 0, "number"), "12");
    assert_string_equal(label(ev, 0, "template"), "hi");
    assert_null(label(ev, 0, "missing"));
    assert_null(label(ev, 0, "object"));
}

static void test_rules(void **state)
{
    (void)state;
    json_t *ev = run(
        MAP("  labels:\n"
            "    set:\n"
            "      equals: { rules: [ { when: { pointer: /s, equals: resolved "
            "},"
            " value: { value: yes } } ], default: { value: no } }\n"
            "      equals_no: { rules: [ { when: { pointer: /s, equals: firing "
            "},"
            " value: { value: yes } } ], default: { value: no } }\n"
            "      equals_bool: { rules: [ { when: { pointer: /t, equals: true "
            "},"
            " value: { value: yes } } ] }\n"
            "      equals_bool_text: { rules: [ { when: { pointer: /ts, "
            "equals: true }, value: { value: yes } } ] }\n"
            "      equals_number: { rules: [ { when: { pointer: /n, "
            "equals: \"2\" }, value: { value: yes } } ] }\n"
            "      in: { rules: [ { when: { pointer: /n, in: [1, 2, 3] }, "
            "value: { value: yes } } ] }\n"
            "      in_no: { rules: [ { when: { pointer: /s, in: [a, b] }, "
            "value: { value: yes } } ], default: { value: no } }\n"
            "      matches: { rules: [ { when: { pointer: /s, "
            "matches: '^res.*ed$' }, value: { value: yes } } ] }\n"
            "      matches_missing: { rules: [ { when: { pointer: /nope, "
            "matches: '.*' }, value: { value: yes } } ], default: "
            "{ value: no } }\n"
            "      exists: { rules: [ { when: { pointer: /s, exists: true }, "
            "value: { value: yes } } ] }\n"
            "      exists_empty: { rules: [ { when: { pointer: /e, "
            "exists: true } , value: { value: yes } } ], default: "
            "{ value: no } }\n"
            "      not_exists: { rules: [ { when: { pointer: /nope, "
            "exists: false }, value: { value: yes } } ] }\n"
            "      header: { rules: [ { when: { header: X-Thing, equals: Hi }, "
            "value: { value: yes } } ] }\n"
            "      all: { rules: [ { when: [ { pointer: /s, equals: resolved "
            "}, "
            "{ header: X-Thing, equals: Hi }, { pointer: /n, in: [2] } ], "
            "value: { value: yes } } ], default: { value: no } }\n"
            "      not_all: { rules: [ { when: [ { pointer: /s, "
            "equals: resolved }, { header: X-Thing, equals: Bye } ], "
            "value: { value: yes } } ], default: { value: no } }\n"
            "      first_wins: { rules: [ { when: { pointer: /s, "
            "exists: false }, value: { value: one } }, { when: { pointer: "
            "/s, exists: true }, value: { value: two } }, { when: "
            "{ pointer: /n, exists: true }, value: { value: three } } ] }\n"
            "      value_spec: { rules: [ { when: { pointer: /s, exists: true "
            "},"
            " value: \"{{body.s}}!\" } ] }\n"
            "      no_default: { rules: [ { when: { pointer: /nope, "
            "exists: true }, value: { value: yes } } ] }\n"
            "      regex_subject: { rules: [ { when: { equals: res, regex: "
            "'^(...)', in: { pointer: /s }, group: 1 }, value: { value: yes "
            "} } ], default: { value: no } }\n"),
        "{\"s\": \"resolved\", \"t\": true, \"ts\": \"true\", \"n\": 2, "
        "\"e\": \"\"}");
    assert_string_equal(label(ev, 0, "equals"), "yes");
    assert_string_equal(label(ev, 0, "regex_subject"), "yes");
    assert_string_equal(label(ev, 0, "equals_no"), "no");
    assert_string_equal(label(ev, 0, "equals_bool"), "yes");
    assert_string_equal(label(ev, 0, "equals_bool_text"), "yes");
    assert_string_equal(label(ev, 0, "equals_number"), "yes");
    assert_string_equal(label(ev, 0, "in"), "yes");
    assert_string_equal(label(ev, 0, "in_no"), "no");
    assert_string_equal(label(ev, 0, "matches"), "yes");
    assert_string_equal(label(ev, 0, "matches_missing"), "no");
    assert_string_equal(label(ev, 0, "exists"), "yes");
    assert_string_equal(label(ev, 0, "exists_empty"), "no");
    assert_string_equal(label(ev, 0, "not_exists"), "yes");
    assert_string_equal(label(ev, 0, "header"), "yes");
    assert_string_equal(label(ev, 0, "all"), "yes");
    assert_string_equal(label(ev, 0, "not_all"), "no");
    assert_string_equal(label(ev, 0, "first_wins"), "two");
    assert_string_equal(label(ev, 0, "value_spec"), "resolved!");
    assert_null(label(ev, 0, "no_default"));
}

static const char split_map[] =
    "kind: t\n"
    "split: { pointer: /items }\n"
    "event:\n"
    "  type: \"{{item.kind}}\"\n"
    "  title: \"{{index}}: {{item.name}} of {{body.group}}\"\n"
    "  dedupkey: { pointer: /name }\n"
    "  labels:\n"
    "    copy: { pointer: /labels }\n"
    "    set: { group: { pointer: /group, from: body }, "
    "x: { value: set-wins } }\n";

static void test_split(void **state)
{
    (void)state;
    json_t *ev = run(split_map,
                     "{\"group\": \"g\", \"items\": [{\"kind\": \"A.One\", "
                     "\"name\": \"a\", \"labels\": {\"x\": \"1\", \"n\": 2, "
                     "\"b\": false, \"o\": {\"no\": 1}, \"nil\": null}}, "
                     "{\"kind\": \"B\", \"name\": \"b\"}, {\"name\": \"c\"}]}");
    assert_int_equal(json_array_size(ev), 3);
    assert_string_equal(at(ev, 0, "id"), TEST_ID "-1");
    assert_string_equal(at(ev, 1, "id"), TEST_ID "-2");
    assert_string_equal(at(ev, 2, "id"), TEST_ID "-3");
    assert_string_equal(at(ev, 0, "type"), "a.one");
    assert_string_equal(at(ev, 1, "type"), "b");
    assert_string_equal(at(ev, 2, "type"), "t.event");
    assert_string_equal(at(ev, 0, "data.title"), "1: a of g");
    assert_string_equal(at(ev, 2, "data.title"), "3: c of g");
    assert_string_equal(at(ev, 1, "dedupkey"), "b");
    assert_string_equal(at(ev, 0, "source"), "/acme/t-src");
    /* copied labels: strings, numbers and booleans as text; a set label
     * replaces a copied one of the same name */
    json_t *want = json_loads("{\"x\": \"set-wins\", \"n\": \"2\", \"b\": "
                              "\"false\", \"group\": \"g\"}",
                              0, NULL);
    json_t *labels = json_object_get(
        json_object_get(json_array_get(ev, 0), "data"), "labels");
    int same = json_equal(want, labels);
    json_decref(want);
    assert_true(same);
    /* data.raw is the item, not the whole body */
    json_t *raw =
        json_object_get(json_object_get(json_array_get(ev, 1), "data"), "raw");
    json_t *item = json_loads("{\"kind\": \"B\", \"name\": \"b\"}", 0, NULL);
    same = json_equal(item, raw);
    json_decref(item);
    assert_true(same);
}

static void test_split_unparsed(void **state)
{
    (void)state;
    assert_string_equal(run_fails(split_map, "{\"group\": \"g\"}"),
                        "split: the payload has no list there");
    assert_string_equal(run_fails(split_map, "{\"items\": {\"a\": 1}}"),
                        "split: the payload has no list there (found another "
                        "kind of value)");
    assert_string_equal(run_fails(split_map, "{\"items\": []}"),
                        "split: the list is empty, so there are no events");
    assert_string_equal(run_fails(split_map, "[1, 2]"),
                        "split: the payload has no list there");
}

static void test_not_json(void **state)
{
    (void)state;
    assert_string_equal(run_fails(MAP(""), "{\"a\": tru}"),
                        "the body is not JSON: invalid token near 'tru' at "
                        "byte offset 9");
    assert_string_equal(run_fails(MAP(""), "{\"a\": 1} x"),
                        "the body is not JSON: end of file expected near 'x' "
                        "at byte offset 10");
    assert_string_equal(run_fails(MAP(""), ""),
                        "the body is not JSON: unexpected token near end of "
                        "file at byte offset 0");
    /* any JSON value is a body */
    json_t *ev = run(MAP(""), "\"just text\"");
    assert_int_equal(json_array_size(ev), 1);
}

static void test_severity(void **state)
{
    (void)state;
    static const char map[] = "kind: t\n"
                              "split: { pointer: /items }\n"
                              "event:\n"
                              "  type: { value: message }\n"
                              "  title: t\n"
                              "  severity: { pointer: /sev }\n";
    json_t *ev = run(map, "{\"items\": [{\"sev\": \"critical\"}, {\"sev\": "
                          "\"error\"}, {\"sev\": \"warning\"}, {\"sev\": "
                          "\"info\"}, {}]}");
    assert_string_equal(at(ev, 0, "severity"), "critical");
    assert_string_equal(at(ev, 1, "severity"), "error");
    assert_string_equal(at(ev, 2, "severity"), "warning");
    assert_string_equal(at(ev, 3, "severity"), "info");
    assert_string_equal(at(ev, 4, "severity"), "info"); /* the default */
    assert_string_equal(run_fails(map, "{\"items\": [{\"sev\": \"info\"}, "
                                       "{\"sev\": \"urgent\"}]}"),
                        "event 2: severity 'urgent' is not one of critical, "
                        "error, warning, info; fix the mapping's severity "
                        "lookup");
    assert_string_equal(
        run_fails(map, "{\"items\": [{\"sev\": \"Critical\"}]}"),
        "event 1: severity 'Critical' is not one of critical, "
        "error, warning, info; fix the mapping's severity "
        "lookup");
}

static void test_types(void **state)
{
    (void)state;
    json_t *ev = run("kind: t\n"
                     "split: { pointer: /items }\n"
                     "event:\n"
                     "  type: { pointer: /type }\n"
                     "  title: { pointer: /title }\n",
                     "{\"items\": [{\"type\": \"Foo Bar.Baz\"}, {\"type\": "
                     "\"..Issue..Opened..\"}, {}, {\"type\": \"\"}, "
                     "{\"type\": \"...\"}, {\"type\": 42}, {\"type\": "
                     "\"a-b/c\"}, {\"type\": \"x\", \"title\": \"\"}]}");
    assert_string_equal(at(ev, 0, "type"), "foo_bar.baz");
    assert_string_equal(at(ev, 1, "type"), "issue.opened");
    assert_string_equal(at(ev, 2, "type"), "t.event");
    assert_string_equal(at(ev, 3, "type"), "t.event");
    assert_string_equal(at(ev, 4, "type"), "t.event");
    assert_string_equal(at(ev, 5, "type"), "42");
    assert_string_equal(at(ev, 6, "type"), "a_b_c");
    /* an empty title falls back to the type */
    assert_string_equal(at(ev, 2, "data.title"), "t.event");
    assert_string_equal(at(ev, 7, "data.title"), "x");
}

static void test_times(void **state)
{
    (void)state;
    json_t *ev =
        run("kind: t\n"
            "split: { pointer: /items }\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: t\n"
            "  time: { pointer: /t }\n",
            "{\"items\": [{\"t\": 1700000000}, {\"t\": 1700000000123},"
            " {\"t\": \"1700000000.5\"}, {\"t\": 1700000000.25}, "
            "{\"t\": \"2021-10-12T09:51:03.157076+02:00\"}, "
            "{\"t\": \"2019-05-15T15:20:18Z\"}, {\"t\": \"yesterday\"},"
            " {\"t\": 12345}, {}, {\"t\": \"2021-13-12T09:51:03Z\"}, "
            "{\"t\": \"1700000000123\"}]}");
    assert_string_equal(at(ev, 0, "time"), "2023-11-14T22:13:20.000Z");
    assert_string_equal(at(ev, 1, "time"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(at(ev, 2, "time"), "2023-11-14T22:13:20.500Z");
    assert_string_equal(at(ev, 3, "time"), "2023-11-14T22:13:20.250Z");
    assert_string_equal(at(ev, 4, "time"), "2021-10-12T09:51:03.157076+02:00");
    assert_string_equal(at(ev, 5, "time"), "2019-05-15T15:20:18Z");
    assert_string_equal(at(ev, 6, "time"), TEST_RECEIVED);
    assert_string_equal(at(ev, 7, "time"), TEST_RECEIVED);
    assert_string_equal(at(ev, 8, "time"), TEST_RECEIVED);
    assert_string_equal(at(ev, 9, "time"), TEST_RECEIVED);
    assert_string_equal(at(ev, 10, "time"), "2023-11-14T22:13:20.123Z");
}

static void test_form_body(void **state)
{
    (void)state;
    static const char map[] = "kind: t\n"
                              "event:\n"
                              "  type: \"x.{{body.payload.type}}\"\n"
                              "  title: t\n"
                              "  labels:\n"
                              "    set:\n"
                              "      user: { pointer: /payload/user/id }\n"
                              "      token: { pointer: /token }\n"
                              "      other: { pointer: /other }\n"
                              "      empty: { pointer: /empty }\n"
                              "      flag: { pointer: /flag }\n";
    int rc = run_with(map,
                      "token=abc+def%21&payload=%7B%22type%22%3A%22block_"
                      "actions%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D"
                      "&other=not+%7Bjson&empty=&flag",
                      "application/x-www-form-urlencoded; charset=utf-8", NULL);
    if (rc)
        fail_msg("%s", g_why);
    json_t *ev = g_events;
    assert_string_equal(at(ev, 0, "type"), "x.block_actions");
    assert_string_equal(label(ev, 0, "user"), "U1");
    assert_string_equal(label(ev, 0, "token"), "abc def!");
    assert_string_equal(label(ev, 0, "other"), "not {json");
    assert_null(label(ev, 0, "empty"));
    assert_null(label(ev, 0, "flag"));
    json_t *raw =
        json_object_get(json_object_get(json_array_get(ev, 0), "data"), "raw");
    json_t *want = json_loads(
        "{\"token\": \"abc def!\", \"payload\": {\"type\": \"block_actions\", "
        "\"user\": {\"id\": \"U1\"}}, \"other\": \"not {json\", \"empty\": "
        "\"\", \"flag\": \"\"}",
        0, NULL);
    int same = json_equal(want, raw);
    json_decref(want);
    assert_true(same);
    /* a payload field that is not JSON stays text */
    rc = run_with(map, "payload=%7Bbroken", "application/x-www-form-urlencoded",
                  NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(at(g_events, 0, "type"), "x");
    assert_string_equal(at(g_events, 0, "data.raw.payload"), "{broken");
}

static void test_generic_fields(void **state)
{
    (void)state;
    const hl_mapping *m = hl_mappings_get(g_shipped, "generic");
    assert_non_null(m);
    hl_field_cfg fields[] = {
        {"title", "/alert/name"}, {"severity", "/lvl"}, {"labels", "/tags"},
        {"url", "/links/0"},      {"dedupkey", "/id"},  {"subject", "/host"},
        {"nonsense", "/x"},
    };
    hl_source_cfg src = {.name = "partner",
                         .tenant = TEST_TENANT,
                         .kind = "generic",
                         .fields = fields,
                         .n_fields = sizeof fields / sizeof *fields};
    const char *body =
        "{\"alert\": {\"name\": \"Disk full\"}, \"lvl\": \"ERR\", \"tags\": "
        "{\"host\": \"db1\", \"n\": 3}, \"links\": [\"https://x.example/1\"], "
        "\"id\": \"k1\", \"host\": \"db1\", \"type\": \"Disk.Full\", \"text\": "
        "\"87%\", \"title\": \"ignored: the source names another field\", "
        "\"labels\": {\"ignored\": \"yes\"}}";
    int rc = apply(m, &src, "partner", body, strlen(body), "application/json",
                   "{}", &g_events);
    if (rc)
        fail_msg("%s", g_why);
    json_t *ev = g_events;
    assert_string_equal(at(ev, 0, "type"), "disk.full");
    assert_string_equal(at(ev, 0, "data.title"), "Disk full");
    /* The named field still goes through the kind's severity table. */
    assert_string_equal(at(ev, 0, "severity"), "error");
    assert_string_equal(at(ev, 0, "data.url"), "https://x.example/1");
    assert_string_equal(at(ev, 0, "dedupkey"), "k1");
    assert_string_equal(at(ev, 0, "subject"), "db1");
    assert_string_equal(at(ev, 0, "data.text"), "87%");
    assert_string_equal(at(ev, 0, "source"), "/acme/partner");
    assert_string_equal(label(ev, 0, "host"), "db1");
    assert_string_equal(label(ev, 0, "n"), "3");
    assert_null(label(ev, 0, "ignored"));

    /* without fields: the canonical names as they are, type message */
    json_decref(g_events);
    g_events = NULL;
    hl_source_cfg plain = {
        .name = "partner", .tenant = TEST_TENANT, .kind = "generic"};
    body = "{\"title\": \"Hello\", \"severity\": \"WARN\", \"labels\": "
           "{\"a\": \"b\"}, \"status\": \"Firing Now\", \"timestamp\": "
           "1700000000}";
    rc = apply(m, &plain, "partner", body, strlen(body), "application/json",
               "{}", &g_events);
    if (rc)
        fail_msg("%s", g_why);
    ev = g_events;
    assert_string_equal(at(ev, 0, "type"), "message");
    assert_string_equal(at(ev, 0, "data.title"), "Hello");
    assert_string_equal(at(ev, 0, "severity"), "warning");
    assert_string_equal(at(ev, 0, "data.status"), "firing_now");
    assert_string_equal(at(ev, 0, "time"), "2023-11-14T22:13:20.000Z");
    assert_string_equal(label(ev, 0, "a"), "b");
    assert_null(at(ev, 0, "dedupkey"));
}

static void test_event_envelope(void **state)
{
    (void)state;
    json_t *ev =
        run(MAP("  status: { pointer: /st }\n"), "{\"st\": \"Re-Opened 2\"}");
    json_t *want = json_loads(
        "[{\"specversion\": \"1.0\", \"id\": \"" TEST_ID "\", \"source\": "
        "\"/acme/t-src\", \"type\": \"message\", \"time\": \"" TEST_RECEIVED
        "\", \"datacontenttype\": \"application/json\", \"tenant\": \"acme\", "
        "\"severity\": \"info\", \"correlationid\": \"c0ffee\", \"data\": "
        "{\"title\": \"t\", \"status\": \"re_opened__\", \"labels\": {}, "
        "\"raw\": {\"st\": \"Re-Opened 2\"}}}]",
        0, NULL);
    int same = json_equal(want, ev);
    if (!same) {
        char *a = pretty(want), *b = pretty(ev);
        print_diff(a, b);
        free(a);
        free(b);
    }
    json_decref(want);
    assert_true(same);
}

/* ---- load errors ------------------------------------------------------------
 */

/* Load one file and expect exactly these messages, FILE standing for it. */
static void refuses(const char *kind, const char *yaml, const char *const *want)
{
    assert_int_equal(load_yaml(kind, yaml), HL_ECONFIG);
    assert_null(g_ms);
    char full[16][600];
    const char *ptrs[17];
    size_t n = 0;
    for (; want[n] && n < 16; n++) {
        snprintf(full[n], sizeof full[n], "%s/%s.yaml:%s", g_dir, kind,
                 want[n]);
        ptrs[n] = full[n];
    }
    ptrs[n] = NULL;
    assert_diags(&g_diags, ptrs);
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_load_unknown_operator(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: { pointr: /title }\n",
            MSGS("4:10: error: event.title: a spec needs one of: template, "
                 "pointer, header, value, regex, lookup, first, hash, rules, "
                 "lower"));
}

static void test_load_two_operators(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: { pointer: /title, value: x }\n",
            MSGS("4:29: error: event.title: 'pointer' and 'value' together; "
                 "a spec has one operator"));
}

static void test_load_unknown_keys(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "colour: red\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: { pointer: /t, form: body }\n"
            "  colour: { value: red }\n"
            "  labels: { copy: { pointer: /l }, add: {} }\n",
            MSGS("2:1: error: colour: unknown key 'colour'; expected kind, "
                 "description, split, event",
                 "5:25: error: event.title: unknown key 'form' beside "
                 "'pointer'",
                 "6:3: error: event.colour: unknown field 'colour'; expected "
                 "type, subject, time, severity, status, title, text, url, "
                 "dedupkey, labels",
                 "7:36: error: event.labels.add: unknown key 'add' in labels; "
                 "expected copy, set (a mapping of label name to spec)"));
}

static void test_load_missing_fields(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  subject: x\n",
            MSGS("3:3: error: event: missing required field 'type'",
                 "3:3: error: event: missing required field 'title'"));
    hl_diags_free(&g_diags);
    refuses("t", "kind: t\n", MSGS("1:1: error: missing required key 'event'"));
}

static void test_load_kind_mismatch(void **state)
{
    (void)state;
    refuses("alerts",
            "kind: alertmanager\n"
            "event: { type: x, title: y }\n",
            MSGS("1:7: error: kind: kind must be 'alerts', the file's name"));
}

static void test_load_bad_regex(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: { regex: 'ab(c', in: { pointer: /t } }\n"
            "  text: { regex: '(x', in: { pointer: /t } }\n"
            "  url: { rules: [ { when: { pointer: /u, matches: '[z' }, "
            "value: x } ] }\n",
            MSGS("4:19: error: event.title.regex: invalid regular expression "
                 "at offset 4: missing closing parenthesis",
                 "5:18: error: event.text.regex: invalid regular expression "
                 "at offset 2: missing closing parenthesis",
                 "6:51: error: event.url.rules[0].when.matches: invalid "
                 "regular expression at offset 2: missing terminating ] for "
                 "character class"));
}

static void test_load_bad_template(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: \"{{#a}}x\"\n"
            "  text: { first: [ \"ok\", \"{{b\" ] }\n",
            MSGS("4:10: error: event.title.template: template: line 1, "
                 "column 8: unclosed section 'a' opened at line 1, column 1",
                 "5:26: error: event.text.first[1].template: template: line "
                 "1, column 1: unclosed tag"));
}

static void test_load_bad_pointer(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "split: { pointer: alerts }\n"
            "event:\n"
            "  type: { value: message }\n"
            "  title: { pointer: title, from: everywhere }\n",
            MSGS("2:19: error: split.pointer: expected a JSON Pointer such as "
                 "/alerts/0/labels",
                 "5:21: error: event.title.pointer: expected a JSON Pointer "
                 "such as /alerts/0/labels",
                 "5:34: error: event.title.from: expected item, body or "
                 "headers"));
}

static void test_load_bad_conditions(void **state)
{
    (void)state;
    refuses("t",
            "kind: t\n"
            "event:\n"
            "  type:\n"
            "    rules:\n"
            "      - when: { pointer: /status }\n"
            "        value: x\n"
            "      - value: y\n"
            "      - when: { pointer: /s, in: solo }\n"
            "        value: z\n"
            "      - when: { pointer: /s, equals: a, exists: true }\n"
            "        value: w\n"
            "  title: t\n",
            MSGS("5:15: error: event.type.rules[0].when: a condition needs "
                 "one of equals, in (a list), matches, exists",
                 "7:9: error: event.type.rules[1]: a rule is a mapping with "
                 "'when' and 'value'",
                 "8:15: error: event.type.rules[2].when: a condition needs "
                 "one of equals, in (a list), matches, exists",
                 "10:41: error: event.type.rules[3].when: a condition has "
                 "one comparison; 'equals' and 'exists' are two"));
}

static void test_load_other_files(void **state)
{
    (void)state;
    /* a folder that is not there */
    assert_int_equal(hl_mappings_load("/nonexistent/hl-map", &g_diags, &g_ms),
                     -ENOENT);
    assert_null(g_ms);
    assert_diags(&g_diags, MSGS("/nonexistent/hl-map: error: cannot read the "
                                "source mappings folder: No such file or "
                                "directory"));
    /* the shipped mappings all load: one per kind, no messages */
    hl_diags_free(&g_diags);
    assert_int_equal(hl_mappings_load(MAPPINGS_DIR, &g_diags, &g_ms), 0);
    assert_int_equal(g_diags.n, 0);
    static const char *const kinds[] = {"alertmanager", "datadog", "generic",
                                        "github",       "grafana", "pagerduty",
                                        "sentry",       "slack"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!hl_mappings_get(g_ms, kinds[i]))
            fail_msg("no mapping for kind %s", kinds[i]);
    assert_int_equal(hl_mappings_count(g_ms), sizeof kinds / sizeof *kinds);
    assert_null(hl_mappings_get(g_ms, "nope"));
}

/* ---- main --------------------------------------------------------------- */

static int load_shipped(void **state)
{
    (void)state;
    hl_diags d = {0};
    int rc = hl_mappings_load(MAPPINGS_DIR, &d, &g_shipped);
    if (rc) {
        hl_diags_print(&d, stderr);
        fprintf(stderr, "cannot load " MAPPINGS_DIR ": %s\n", hl_err_name(rc));
    }
    hl_diags_free(&d);
    return rc ? -1 : 0;
}

static int free_shipped(void **state)
{
    (void)state;
    hl_mappings_destroy(g_shipped);
    g_shipped = NULL;
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        T(test_template),
        T(test_pointer),
        T(test_header),
        T(test_value),
        T(test_regex),
        T(test_lookup),
        T(test_first),
        T(test_hash),
        T(test_lower),
        T(test_rules),
        T(test_split),
        T(test_split_unparsed),
        T(test_not_json),
        T(test_severity),
        T(test_types),
        T(test_times),
        T(test_form_body),
        T(test_generic_fields),
        T(test_event_envelope),
        T(test_load_unknown_operator),
        T(test_load_two_operators),
        T(test_load_unknown_keys),
        T(test_load_missing_fields),
        T(test_load_kind_mismatch),
        T(test_load_bad_regex),
        T(test_load_bad_template),
        T(test_load_bad_pointer),
        T(test_load_bad_conditions),
        T(test_load_other_files),
        T(test_golden_complete),
    };
    size_t nfixed = sizeof fixed / sizeof *fixed;
    collect_cases();
    struct CMUnitTest *tests = calloc(nfixed + g_ncases, sizeof *tests);
    if (!tests)
        return 1;
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < g_ncases; i++) {
        struct CMUnitTest *t = &tests[nfixed + i];
        t->name = g_cases[i].test_name;
        t->test_func = test_golden;
        t->teardown_func = teardown;
        t->initial_state = &g_cases[i];
    }
    int failed = _cmocka_run_group_tests("map", tests, nfixed + g_ncases,
                                         load_shipped, free_shipped);
    free(tests);
    free(g_cases);
    return failed;
}
