/* test_template.c - Mustache: the spec suite, escaping, errors, partials. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "err.h"
#include "template.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------- */

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

/* Compile and render; returns the render code, *out is malloc'd or NULL. */
static int render_src(const char *src, size_t len, json_t *ctx,
                      json_t *partials, hl_escape esc, char **out,
                      size_t *outlen, char *err, size_t errlen)
{
    hl_template *t = NULL;
    int rc = hl_template_compile(src, len, &t, err, errlen);
    *out = NULL;
    *outlen = 0;
    if (rc)
        return rc;
    rc = hl_template_render(t, ctx, partials, esc, out, outlen, err, errlen);
    hl_template_destroy(t);
    return rc;
}

/* Render a template against JSON text and check the output exactly. */
static void renders(const char *src, const char *data, hl_escape esc,
                    const char *want)
{
    json_t *ctx = parse(data);
    char *out, err[256];
    size_t len;
    int rc = render_src(src, strlen(src), ctx, NULL, esc, &out, &len, err,
                        sizeof err);
    if (rc)
        fail_msg("%s: %s (%s)", src, err, hl_err_name(rc));
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
    json_decref(ctx);
}

/* Compile must fail with HL_ESYNTAX and exactly this message. */
static void refuses(const char *src, const char *want)
{
    hl_template *t = (hl_template *)1;
    char err[256] = "untouched";
    assert_int_equal(hl_template_compile(src, strlen(src), &t, err, sizeof err),
                     HL_ESYNTAX);
    assert_null(t);
    assert_string_equal(err, want);
}

/* ---- the official spec suite ----------------------------------------- */

static const char *const spec_files[] = {
    "comments.json", "delimiters.json", "interpolation.json",
    "inverted.json", "partials.json",   "sections.json",
};
#define NSPEC (sizeof spec_files / sizeof spec_files[0])

static int has_spec(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/interpolation.json", dir);
    return stat(path, &st) == 0;
}

/* HL_MUSTACHE_SPEC, or the fixtures next to the repository: tests/run runs
 * from the repository root, and the binary sits in build/test/unit/. */
static const char *spec_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("HL_MUSTACHE_SPEC");
    if (env && *env) {
        if (!has_spec(env))
            fail_msg("HL_MUSTACHE_SPEC=%s holds no Mustache spec files", env);
        return env;
    }
    char exe[PATH_MAX] = "", *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    for (int up = 0; up < 4 && (slash = strrchr(exe, '/')); up++)
        *slash = 0; /* build/test/unit/test_template -> the repository */
    const char *tried[] = {"tests/data/mustache-spec",
                           "../shared/fixtures/mustache-spec", NULL};
    const char *roots[] = {".", exe};
    for (size_t r = 0; r < 2; r++)
        for (size_t i = 0; tried[i]; i++) {
            snprintf(dir, sizeof dir, "%s/%s", *roots[r] ? roots[r] : "/",
                     tried[i]);
            if (has_spec(dir))
                return dir;
        }
    fail_msg("the Mustache spec suite is missing: looked for %s and %s "
             "under the current folder and under %s; set HL_MUSTACHE_SPEC "
             "to its folder",
             tried[0], tried[1], *exe ? exe : "/");
    return NULL;
}

static char *quoted(const char *s, size_t len)
{
    json_t *v = json_stringn_nocheck(s ? s : "", s ? len : 0);
    char *q = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return q;
}

/* Run one case; returns 1 if it passes, else prints why. */
static int spec_case(const char *file, json_t *tc, int loud)
{
    const char *name = json_string_value(json_object_get(tc, "name"));
    json_t *tpl = json_object_get(tc, "template");
    json_t *want = json_object_get(tc, "expected");
    if (!name || !json_is_string(tpl) || !json_is_string(want))
        fail_msg("%s: a case without name, template or expected", file);
    char *out, err[512] = "";
    size_t len;
    int rc =
        render_src(json_string_value(tpl), json_string_length(tpl),
                   json_object_get(tc, "data"), json_object_get(tc, "partials"),
                   HL_ESC_HTML, &out, &len, err, sizeof err);
    int ok = !rc && len == json_string_length(want) &&
             !memcmp(out, json_string_value(want), len);
    if (!ok && loud) {
        char *w = quoted(json_string_value(want), json_string_length(want));
        char *g = rc ? NULL : quoted(out, len);
        print_message("  FAIL %s / %s\n    expected %s\n    got      %s%s\n",
                      file, name, w, rc ? hl_err_name(rc) : g, rc ? err : "");
        free(w);
        free(g);
    }
    free(out);
    return ok;
}

/* Run every case of one spec file; *passed and *total add up. */
static void spec_file(const char *file, int loud, size_t *passed, size_t *total)
{
    char path[PATH_MAX];
    json_error_t e;
    int k = snprintf(path, sizeof path, "%s/%s", spec_dir(), file);
    if (k < 0 || (size_t)k >= sizeof path)
        fail_msg("path too long: %s/%s", spec_dir(), file);
    json_t *doc = json_load_file(path, 0, &e);
    if (!doc)
        fail_msg("cannot read %s: %s at line %d", path, e.text, e.line);
    json_t *tests = json_object_get(doc, "tests");
    if (!json_array_size(tests))
        fail_msg("%s holds no tests", path);
    size_t ok = 0, n = json_array_size(tests);
    for (size_t i = 0; i < n; i++)
        ok += (size_t)spec_case(file, json_array_get(tests, i), loud);
    if (loud)
        print_message("spec %s: %zu/%zu passed\n", file, ok, n);
    *passed += ok;
    *total += n;
    json_decref(doc);
}

static void spec_one(const char *file)
{
    size_t passed = 0, total = 0;
    spec_file(file, 1, &passed, &total);
    assert_int_equal(passed, total);
}

static void test_spec_comments(void **state)
{
    (void)state;
    spec_one("comments.json");
}

static void test_spec_delimiters(void **state)
{
    (void)state;
    spec_one("delimiters.json");
}

static void test_spec_interpolation(void **state)
{
    (void)state;
    spec_one("interpolation.json");
}

static void test_spec_inverted(void **state)
{
    (void)state;
    spec_one("inverted.json");
}

static void test_spec_partials(void **state)
{
    (void)state;
    spec_one("partials.json");
}

static void test_spec_sections(void **state)
{
    (void)state;
    spec_one("sections.json");
}

static void test_spec_total(void **state)
{
    (void)state;
    size_t passed = 0, total = 0;
    for (size_t i = 0; i < NSPEC; i++)
        spec_file(spec_files[i], 0, &passed, &total);
    print_message("spec total: %zu/%zu cases passed in %zu files\n", passed,
                  total, NSPEC);
    assert_true(total >= 100); /* the v1 core suite has 130-odd cases */
    assert_int_equal(passed, total);
}

/* ---- escaping ------------------------------------------------------- */

/* Render {{v}} in JSON mode; the output inside quotes must read back as
 * `back` (back_len bytes), and equal `want`. */
static void json_escapes(json_t *v, const char *want, const char *back,
                         size_t back_len)
{
    json_t *ctx = json_pack("{so}", "v", v);
    assert_non_null(ctx);
    char *out, err[256];
    size_t len;
    assert_int_equal(render_src("{{v}}", 5, ctx, NULL, HL_ESC_JSON, &out, &len,
                                err, sizeof err),
                     0);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));

    char *doc = malloc(len + 3);
    assert_non_null(doc);
    sprintf(doc, "\"%s\"", out);
    json_error_t e;
    json_t *str = json_loads(doc, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!str)
        fail_msg("%s does not parse: %s", doc, e.text);
    assert_true(json_is_string(str));
    assert_int_equal(json_string_length(str), back_len);
    assert_memory_equal(json_string_value(str), back, back_len);
    json_decref(str);
    free(doc);
    free(out);
    json_decref(ctx);
}

static void test_json_escaping(void **state)
{
    (void)state;
    const char *plain =
        "say \"hi\" \\ to\nthe\tworld\r\b\f\x01\x1f caf\xc3\xa9";
    json_escapes(json_string(plain),
                 "say \\\"hi\\\" \\\\ to\\nthe\\tworld\\r\\b\\f\\u0001\\u001f "
                 "caf\xc3\xa9",
                 plain, strlen(plain));
    /* Invalid UTF-8 (a stray byte, a cut sequence, an overlong form) never
     * reaches the JSON: each becomes U+FFFD. */
    json_escapes(json_stringn_nocheck("a\xff"
                                      "b\xc3"
                                      "c\xc0\xaf",
                                      7),
                 "a\\ufffdb\\ufffdc\\ufffd\\ufffd",
                 "a\xef\xbf\xbd"
                 "b\xef\xbf\xbd"
                 "c\xef\xbf\xbd\xef\xbf\xbd",
                 15);
    /* A NUL inside a value is escaped, not an end. */
    json_escapes(json_stringn("a\0b", 3), "a\\u0000b", "a\0b", 3);
    /* Numbers and objects are escaped too: an object is JSON text. */
    json_escapes(json_pack("{s:s}", "q", "x\"y"),
                 "{\\\"q\\\":\\\"x\\\\\\\"y\\\"}", "{\"q\":\"x\\\"y\"}", 12);
    json_escapes(json_integer(-42), "-42", "-42", 3);
}

static void test_escape_modes(void **state)
{
    (void)state;
    const char *data = "{\"v\":\"<a href=\\\"x\\\">&'\\n</a>\"}";
    renders("{{v}}", data, HL_ESC_HTML,
            "&lt;a href=&quot;x&quot;&gt;&amp;'\n&lt;/a&gt;");
    renders("{{v}}", data, HL_ESC_NONE, "<a href=\"x\">&'\n</a>");
    renders("{{v}}", data, HL_ESC_JSON, "<a href=\\\"x\\\">&'\\n</a>");
    /* Triple mustache and & never escape, in any mode. */
    for (hl_escape esc = HL_ESC_HTML; esc <= HL_ESC_NONE; esc++) {
        renders("{{{v}}}|{{& v}}", data, esc,
                "<a href=\"x\">&'\n</a>|<a href=\"x\">&'\n</a>");
    }
    /* Template text is the author's and is never escaped. */
    renders("\"<{{v}}>\"", "{\"v\":\"\\\"\"}", HL_ESC_JSON, "\"<\\\">\"");
}

/* ---- a canonical event ------------------------------------------------ */

static const char *const event =
    "{\"specversion\":\"1.0\",\"type\":\"alert\",\"severity\":\"critical\","
    "\"data\":{\"title\":\"Disk \\\"full\\\"\",\"status\":\"firing\","
    "\"labels\":{\"host\":\"db-7\"}}}";

static void test_canonical_event(void **state)
{
    (void)state;
    renders("[{{severity}}] {{data.title}}", event, HL_ESC_NONE,
            "[critical] Disk \"full\"");
    renders("[{{severity}}] {{data.title}}", event, HL_ESC_HTML,
            "[critical] Disk &quot;full&quot;");

    /* A connector body: JSON mode keeps the document valid whatever the
     * title holds, and {{{ }}} drops a whole object in as JSON. */
    const char *body = "{\n"
                       "  \"text\": \"[{{severity}}] {{data.title}} on "
                       "{{data.labels.host}}\",\n"
                       "  {{#data.url}}\n"
                       "  \"url\": \"{{data.url}}\",\n"
                       "  {{/data.url}}\n"
                       "  \"labels\": {{{data.labels}}}\n"
                       "}\n";
    json_t *ctx = parse(event);
    char *out, err[256];
    size_t len;
    assert_int_equal(render_src(body, strlen(body), ctx, NULL, HL_ESC_JSON,
                                &out, &len, err, sizeof err),
                     0);
    assert_string_equal(out, "{\n"
                             "  \"text\": \"[critical] Disk \\\"full\\\" on "
                             "db-7\",\n"
                             "  \"labels\": {\"host\":\"db-7\"}\n"
                             "}\n");
    json_error_t e;
    json_t *doc = json_loads(out, 0, &e);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "text")),
                        "[critical] Disk \"full\" on db-7");
    json_decref(doc);
    free(out);

    /* With a URL the optional line appears, its value escaped. */
    assert_int_equal(json_object_set_new(json_object_get(ctx, "data"), "url",
                                         json_string("https://x/?a=1&b=\"")),
                     0);
    assert_int_equal(render_src(body, strlen(body), ctx, NULL, HL_ESC_JSON,
                                &out, &len, err, sizeof err),
                     0);
    doc = json_loads(out, 0, &e);
    if (!doc)
        fail_msg("not JSON: %s (%s)", out, e.text);
    assert_string_equal(json_string_value(json_object_get(doc, "url")),
                        "https://x/?a=1&b=\"");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(doc, "labels"), "host")),
                        "db-7");
    json_decref(doc);
    free(out);
    json_decref(ctx);
}

/* ---- values and names --------------------------------------------------- */

static void test_values(void **state)
{
    (void)state;
    renders("{{i}} {{r}} {{h}} {{w}} {{n}} {{s}} {{big}} {{tiny}}",
            "{\"i\":123,\"r\":1.5,\"h\":1.210,\"w\":3.0,\"n\":-0.25,"
            "\"s\":0.1,\"big\":-9223372036854775808,\"tiny\":1e-7}",
            HL_ESC_HTML, "123 1.5 1.21 3 -0.25 0.1 -9223372036854775808 1e-07");
    renders("{{t}}/{{f}}/{{z}}/{{missing}}/{{missing.x}}",
            "{\"t\":true,\"f\":false,\"z\":null}", HL_ESC_HTML,
            "true/false///");
    renders("{{{o}}} {{{a}}} {{{e}}}",
            "{\"o\":{\"b\":1,\"a\":[true,null]},\"a\":[1,\"x\"],\"e\":{}}",
            HL_ESC_HTML, "{\"b\":1,\"a\":[true,null]} [1,\"x\"] {}");
    /* Array items by index, in dotted names. */
    renders("{{list.0.n}} {{list.1.n}} {{list.2.n}} {{list.01.n}}",
            "{\"list\":[{\"n\":\"a\"},{\"n\":\"b\"}]}", HL_ESC_HTML, "a b  ");
    /* Falsey: missing, null, false, 0, 0.0, "" and []; {} is truthy. */
    renders("{{#a}}A{{/a}}{{#b}}B{{/b}}{{#c}}C{{/c}}{{#d}}D{{/d}}"
            "{{#e}}E{{/e}}{{#f}}F{{/f}}{{#g}}G{{/g}}{{#h}}H{{/h}}",
            "{\"b\":null,\"c\":false,\"d\":0,\"e\":0.0,\"f\":\"\",\"g\":[],"
            "\"h\":{}}",
            HL_ESC_HTML, "H");
    renders("{{^a}}A{{/a}}{{^b}}B{{/b}}{{^c}}C{{/c}}{{^d}}D{{/d}}"
            "{{^e}}E{{/e}}{{^f}}F{{/f}}{{^g}}G{{/g}}{{^h}}H{{/h}}",
            "{\"b\":null,\"c\":false,\"d\":0,\"e\":0.0,\"f\":\"\",\"g\":[],"
            "\"h\":{}}",
            HL_ESC_HTML, "ABCDEFG");
    renders("{{#n}}[{{.}}]{{/n}}", "{\"n\":7}", HL_ESC_HTML, "[7]");
    /* A NULL context is null: only text renders. */
    char *out, err[128];
    size_t len;
    assert_int_equal(render_src("a{{b}}{{.}}c", 12, NULL, NULL, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     0);
    assert_string_equal(out, "ac");
    free(out);
}

static void test_bytes(void **state)
{
    (void)state;
    /* An empty template renders an empty, terminated string. */
    char *out, err[128];
    size_t len = 9;
    assert_int_equal(
        render_src("", 0, NULL, NULL, HL_ESC_HTML, &out, &len, err, sizeof err),
        0);
    assert_non_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(out[0], 0);
    free(out);
    /* NUL bytes in the template and in values pass through; *len counts. */
    json_t *ctx = json_pack("{s:s%}", "v", "x\0y", (size_t)3);
    assert_non_null(ctx);
    assert_int_equal(render_src("a\0{{{v}}}|", 10, ctx, NULL, HL_ESC_NONE, &out,
                                &len, err, sizeof err),
                     0);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "a\0x\0y|", 7);
    free(out);
    json_decref(ctx);
}

/* ---- compile errors ------------------------------------------------- */

static void test_compile_errors(void **state)
{
    (void)state;
    refuses("Hi\n    {{#items}}\n{{x}}",
            "line 3, column 6: unclosed section 'items' opened at line 2, "
            "column 5");
    refuses("{{#a}}{{#b}}\n", "line 2, column 1: unclosed section 'b' opened "
                              "at line 1, column 7");
    refuses("ok\n{{/x}}", "line 2, column 1: unexpected closing tag 'x'");
    refuses("a\n{{#a}}{{/b}}", "line 2, column 7: closing tag 'b' does not "
                               "match section 'a' opened at line 2, column 1");
    refuses("Hello {{name", "line 1, column 7: unclosed tag");
    refuses("Hello {{name}", "line 1, column 7: unclosed tag");
    refuses("{{{x}}", "line 1, column 1: unclosed tag");
    refuses("{{a {{b}}", "line 1, column 1: unclosed tag");
    refuses("{{", "line 1, column 1: unclosed tag");
    refuses("x {{=<%%>=}}", "line 1, column 3: invalid set-delimiters tag");
    refuses("{{= a b c =}}", "line 1, column 1: invalid set-delimiters tag");
    refuses("{{=a= b=}}", "line 1, column 1: invalid set-delimiters tag");
    refuses("{{=}}", "line 1, column 1: invalid set-delimiters tag");
    refuses("{{=<% %>}}", "line 1, column 1: invalid set-delimiters tag");
    refuses("{{}}", "line 1, column 1: empty tag name");
    refuses("{{# }}{{/}}", "line 1, column 1: empty tag name");
    refuses("{{a b}}", "line 1, column 1: invalid tag name 'a b': a name is "
                       "one word");
    refuses("{{>my partial}}", "line 1, column 1: invalid tag name 'my "
                               "partial': a name is one word");
    refuses("{{a..b}}", "line 1, column 1: invalid tag name 'a..b': empty "
                        "part in a dotted name");
    refuses("{{#.a}}{{/.a}}", "line 1, column 1: invalid tag name '.a': "
                              "empty part in a dotted name");
    /* Columns count characters, not bytes. */
    refuses("h\xc3\xa9llo \xe2\x82\xac {{/x}}",
            "line 1, column 9: unexpected closing tag 'x'");
    /* Positions under custom delimiters, and after a multi-line comment. */
    refuses("{{=<% %>=}}\n<%#a%>\n", "line 3, column 1: unclosed section 'a' "
                                     "opened at line 2, column 1");
    refuses("{{!\n\n}} {{/x}}", "line 3, column 4: unexpected closing tag 'x'");
}

static void test_compile_errors_more(void **state)
{
    (void)state;
    /* Nesting deeper than the limit is refused at the tag that goes over. */
    size_t n = HL_TEMPLATE_MAX_NESTING + 1;
    char *deep = malloc(n * 6 + 1);
    assert_non_null(deep);
    for (size_t i = 0; i < n; i++)
        memcpy(deep + i * 6, "{{#a}}", 6);
    deep[n * 6] = 0;
    char want[128];
    snprintf(want, sizeof want,
             "line 1, column %zu: sections nested more than %d deep",
             (n - 1) * 6 + 1, HL_TEMPLATE_MAX_NESTING);
    refuses(deep, want);
    free(deep);

    /* No room for a message is fine; a short buffer is cut and ended. */
    hl_template *t;
    assert_int_equal(hl_template_compile("{{/x}}", 6, &t, NULL, 0), HL_ESYNTAX);
    char small[8];
    assert_int_equal(hl_template_compile("{{/x}}", 6, &t, small, sizeof small),
                     HL_ESYNTAX);
    assert_string_equal(small, "line 1,");
    /* The source need not be NUL-terminated: len bounds it. */
    assert_int_equal(hl_template_compile("{{x}}{{", 5, &t, small, sizeof small),
                     0);
    hl_template_destroy(t);
}

/* ---- partials ------------------------------------------------------- */

static void test_partial_recursion_limit(void **state)
{
    (void)state;
    json_t *partials = parse("{\"self\":\"x{{>self}}\",\"a\":\"{{>b}}\","
                             "\"b\":\"\\n  {{>a}}\\n\"}");
    char *out = (char *)1, err[256];
    size_t len = 7;
    assert_int_equal(render_src("{{>self}}", 9, NULL, partials, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     HL_ERANGE);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_string_equal(err, "partial 'self', line 1, column 2: partials "
                             "nested more than 64 deep: does partial 'self' "
                             "include itself?");
    /* Two partials including each other, the indentation growing. */
    assert_int_equal(render_src("{{>a}}", 6, NULL, partials, HL_ESC_HTML, &out,
                                &len, err, sizeof err),
                     HL_ERANGE);
    assert_string_equal(err, "partial 'b', line 2, column 3: partials nested "
                             "more than 64 deep: does partial 'a' include "
                             "itself?");
    /* Recursion that the data ends is fine, up to the limit. */
    json_t *tree = json_pack("{s:s,s:[]}", "n", "z", "kids");
    for (int i = 0; i < 30; i++)
        tree = json_pack("{s:i,s:[o]}", "n", i, "kids", tree);
    json_t *node = parse("{\"node\":\"{{n}}({{#kids}}{{>node}}{{/kids}})\"}");
    assert_int_equal(render_src("{{>node}}", 9, tree, node, HL_ESC_HTML, &out,
                                &len, err, sizeof err),
                     0);
    assert_int_equal(strncmp(out, "29(28(27(", 9), 0);
    assert_non_null(strstr(out, "2(1(0(z()))))"));
    assert_int_equal(len, strlen(out));
    assert_int_equal(out[len - 1], ')');
    free(out);
    /* Sections inside the recursion reach the overall nesting limit first. */
    json_t *deep = parse("{\"p\":\"{{#t}}{{#t}}{{#t}}{{#t}}{{#t}}{{>p}}"
                         "{{/t}}{{/t}}{{/t}}{{/t}}{{/t}}\"}");
    json_t *ctx = parse("{\"t\":true}");
    assert_int_equal(render_src("{{>p}}", 6, ctx, deep, HL_ESC_HTML, &out, &len,
                                err, sizeof err),
                     HL_ERANGE);
    assert_string_equal(err, "partial 'p', line 1, column 19: sections and "
                             "partials nested more than 256 deep");
    json_decref(ctx);
    json_decref(deep);
    json_decref(node);
    json_decref(tree);
    json_decref(partials);
}

static void test_partial_errors(void **state)
{
    (void)state;
    json_t *partials = parse("{\"num\":5,\"bad\":\"x\\n{{#a}}\","
                             "\"ok\":\"[{{v}}]\"}");
    char *out, err[256];
    size_t len;
    assert_int_equal(render_src("a\n {{>num}}", 11, NULL, partials, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     HL_ESYNTAX);
    assert_string_equal(err, "line 2, column 2: partial 'num' is not a "
                             "string");
    /* The partial's own positions, indentation of a standalone tag left out. */
    assert_int_equal(render_src("  {{>bad}}\n", 11, NULL, partials, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     HL_ESYNTAX);
    assert_string_equal(err, "partial 'bad': line 2, column 7: unclosed "
                             "section 'a' opened at line 2, column 1");
    assert_null(out);
    /* A missing partial renders nothing, with or without a partials object. */
    assert_int_equal(render_src("<{{>none}}>", 11, NULL, partials, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     0);
    assert_string_equal(out, "<>");
    free(out);
    assert_int_equal(render_src("<{{>ok}}>", 9, NULL, NULL, HL_ESC_HTML, &out,
                                &len, err, sizeof err),
                     0);
    assert_string_equal(out, "<>");
    free(out);
    json_decref(partials);
}

static void test_partial_cache(void **state)
{
    (void)state;
    hl_template *t;
    char *out, err[256];
    size_t len;
    const char *src = "{{>p}}|\n  {{>p}}\n";
    assert_int_equal(hl_template_compile(src, strlen(src), &t, err, sizeof err),
                     0);
    json_t *ctx = parse("{\"v\":1}");
    json_t *p1 = parse("{\"p\":\"a{{v}}\\nb\\n\"}");
    json_t *p2 = parse("{\"p\":\"c{{v}}\"}");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(hl_template_render(t, ctx, p1, HL_ESC_HTML, &out, &len,
                                            err, sizeof err),
                         0);
        assert_string_equal(out, "a1\nb\n|\n  a1\n  b\n");
        free(out);
    }
    /* Another source under the same name is not served from the cache. */
    assert_int_equal(hl_template_render(t, ctx, p2, HL_ESC_HTML, &out, &len,
                                        err, sizeof err),
                     0);
    assert_string_equal(out, "c1|\n  c1");
    free(out);
    json_decref(p1);
    json_decref(p2);
    json_decref(ctx);
    hl_template_destroy(t);

    /* More distinct indentations than the cache keeps: the rest are
     * compiled for each use and freed (LeakSanitizer checks). */
    size_t n = HL_TEMPLATE_MAX_CACHED + 40, cap = n * (n + 8) + 1, o = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (size_t i = 0; i < n; i++) {
        memset(many + o, ' ', i);
        o += i;
        memcpy(many + o, "{{>p}}\n", 7);
        o += 7;
    }
    json_t *pp = parse("{\"p\":\"x\"}");
    assert_int_equal(
        render_src(many, o, NULL, pp, HL_ESC_HTML, &out, &len, err, sizeof err),
        0);
    assert_int_equal(len, n * (n - 1) / 2 + n);
    assert_memory_equal(out + len - (n - 1) - 1, many + o - 7 - (n - 1), n - 1);
    free(out);
    free(many);
    json_decref(pp);
}

struct shared {
    hl_template *t;
    json_t *ctx, *partials;
    int failures;
};

static void *render_many(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 200; i++) {
        char *out, err[128];
        size_t len;
        if (hl_template_render(s->t, s->ctx, s->partials, HL_ESC_JSON, &out,
                               &len, err, sizeof err) ||
            strcmp(out, "<a:1>  <b:1>\n"))
            __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
        free(out);
    }
    return NULL;
}

static void test_threads_share_a_template(void **state)
{
    (void)state;
    struct shared s = {0};
    const char *src = "{{>a}}\n  {{>b}}\n";
    char err[128];
    assert_int_equal(
        hl_template_compile(src, strlen(src), &s.t, err, sizeof err), 0);
    s.ctx = parse("{\"v\":1}");
    s.partials = parse("{\"a\":\"<a:{{v}}>\",\"b\":\"<b:{{v}}>\\n\"}");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, render_many, &s), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(s.failures, 0);
    json_decref(s.ctx);
    json_decref(s.partials);
    hl_template_destroy(s.t);
}

/* ---- render limits ---------------------------------------------------- */

static void test_render_limits(void **state)
{
    (void)state;
    char *out = (char *)1, err[256];
    size_t len = 1;
    /* Output: a 1 MiB string repeated 20 times. */
    char *big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, 'x', 1 << 20);
    json_t *ctx = json_pack("{s:s%,s:[]}", "s", big, (size_t)(1 << 20), "l");
    assert_non_null(ctx);
    for (int i = 0; i < 20; i++)
        json_array_append_new(json_object_get(ctx, "l"), json_true());
    assert_int_equal(render_src("{{#l}}{{s}}{{/l}}", 17, ctx, NULL, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     HL_ETOOBIG);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_string_equal(err, "rendered output larger than 16777216 bytes: "
                             "the data holds a list or a value too large for "
                             "this template");
    json_decref(ctx);
    free(big);

    /* Steps: three nested loops over 200 items enter 8 million items, even
     * with nothing inside the innermost. */
    ctx = json_pack("{s:[]}", "l");
    for (int i = 0; i < 200; i++)
        json_array_append_new(json_object_get(ctx, "l"), json_integer(i));
    const char *loops = "{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}";
    assert_int_equal(render_src(loops, strlen(loops), ctx, NULL, HL_ESC_HTML,
                                &out, &len, err, sizeof err),
                     HL_ETOOBIG);
    assert_string_equal(err, "rendering took more than 1000000 steps: the "
                             "data holds lists too long for this template");
    /* Two loops are 40 thousand steps: fine. */
    assert_int_equal(render_src(loops + 6, 24, ctx, NULL, HL_ESC_HTML, &out,
                                &len, err, sizeof err),
                     0);
    free(out);
    /* An unknown escaping mode is refused. */
    assert_int_equal(render_src("x", 1, ctx, NULL, (hl_escape)7, &out, &len,
                                err, sizeof err),
                     HL_ERANGE);
    assert_string_equal(err, "unknown escaping mode 7");
    json_decref(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_comments),
        cmocka_unit_test(test_spec_delimiters),
        cmocka_unit_test(test_spec_interpolation),
        cmocka_unit_test(test_spec_inverted),
        cmocka_unit_test(test_spec_partials),
        cmocka_unit_test(test_spec_sections),
        cmocka_unit_test(test_spec_total),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_escape_modes),
        cmocka_unit_test(test_canonical_event),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_compile_errors_more),
        cmocka_unit_test(test_partial_recursion_limit),
        cmocka_unit_test(test_partial_errors),
        cmocka_unit_test(test_partial_cache),
        cmocka_unit_test(test_threads_share_a_template),
        cmocka_unit_test(test_render_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
