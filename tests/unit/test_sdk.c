/* test_sdk.c - the host side of the connector SDK, called through hl_sdk_api as a plugin calls it. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client.h"
#include "err.h"
#include "log.h"
#include "sdk.h"
#include "ydoc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const hlc_api *const A = &hl_sdk_api;

/* ---- fixture ------------------------------------------------------------ */

/* What a test made, freed by the teardown even when an assertion fails. */
static struct {
    hl_diags diags;
    hl_ydoc *doc;
    hlc_config cfg;
    hlc_request req;
    int req_init;
    json_t *json[8];
    size_t njson;
    char *text[48];
    size_t ntext;
    hlc_template *tpl;
    FILE *log;
} g;

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    hl_request_init(&g.req);
    g.req_init = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g.req_init)
        hl_request_free(&g.req);
    for (size_t i = 0; i < g.njson; i++)
        json_decref(g.json[i]);
    for (size_t i = 0; i < g.ntext; i++)
        free(g.text[i]);
    if (g.tpl)
        A->template_free(g.tpl);
    hl_ydoc_destroy(g.doc);
    hl_diags_free(&g.diags);
    if (g.log) {
        hl_log_set_stream(NULL);
        fclose(g.log);
    }
    hl_log_setup(HL_LOG_INFO, HL_LOG_TEXT);
    return 0;
}

/* Parse JSON text (must be valid); freed by the teardown. */
static const hlc_json *doc(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("test JSON does not parse: %s: %s", text, e.text);
    assert_true(g.njson < sizeof g.json / sizeof *g.json);
    g.json[g.njson++] = v;
    return (const hlc_json *)v;
}

/* Keep an allocated string until the teardown; returns it. */
static char *keep(char *s)
{
    assert_true(g.ntext < sizeof g.text / sizeof *g.text);
    g.text[g.ntext++] = s;
    return s;
}

/* Compact JSON text of v, freed by the teardown. */
static const char *dump(const hlc_json *v)
{
    size_t len = 99;
    char *s = keep(A->json_dump(v, &len));
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    return s;
}

/* ---- JSON: reading ------------------------------------------------------ */

#define DOC                                                                    \
    "{\"a\":{\"b/c\":1,\"m~n\":2,\"\":3,\"~1\":4,\"arr\":[10,20,{\"x\":\"y\"}]}," \
    "\"0\":\"zero\",\"s\":\"text\"}"

static void assert_ptr_int(const hlc_json *root, const char *ptr, int64_t want)
{
    const hlc_json *v = A->json_pointer(root, ptr);
    if (!v)
        fail_msg("json_pointer(%s): nothing, want %lld", ptr, (long long)want);
    assert_int_equal(A->json_type(v), HLC_JSON_INTEGER);
    assert_int_equal(A->json_integer(v), want);
}

static void assert_ptr_none(const hlc_json *root, const char *ptr)
{
    const hlc_json *v = A->json_pointer(root, ptr);
    if (v)
        fail_msg("json_pointer(%s) found %s; want nothing", ptr, dump(v));
}

static void test_json_pointer_rfc6901(void **state)
{
    (void)state;
    const hlc_json *d = doc(DOC);
    /* "" is the whole document. */
    assert_ptr_equal(A->json_pointer(d, ""), d);
    /* ~1 is '/', ~0 is '~', and ~01 is the two characters "~1". */
    assert_ptr_int(d, "/a/b~1c", 1);
    assert_ptr_int(d, "/a/m~0n", 2);
    assert_ptr_int(d, "/a/~01", 4);
    /* An empty token is the key "". */
    assert_ptr_int(d, "/a/", 3);
    /* A token of digits is an object key when the value is an object. */
    assert_string_equal(A->json_string(A->json_pointer(d, "/0")), "zero");
    assert_string_equal(A->json_string(A->json_pointer(d, "/a/arr/2/x")),
                        "y");
}

static void test_json_pointer_arrays(void **state)
{
    (void)state;
    const hlc_json *d = doc(DOC);
    assert_ptr_int(d, "/a/arr/0", 10);
    assert_ptr_int(d, "/a/arr/1", 20);
    assert_int_equal(A->json_type(A->json_pointer(d, "/a/arr/2")),
                     HLC_JSON_OBJECT);
    /* Leading zeros are not array indexes (RFC 6901 section 4). */
    assert_ptr_none(d, "/a/arr/01");
    assert_ptr_none(d, "/a/arr/00");
    /* Past the end, "-" (the element after the last), signs, junk. */
    assert_ptr_none(d, "/a/arr/3");
    assert_ptr_none(d, "/a/arr/-");
    assert_ptr_none(d, "/a/arr/+1");
    assert_ptr_none(d, "/a/arr/-1");
    assert_ptr_none(d, "/a/arr/1x");
    assert_ptr_none(d, "/a/arr/");
    assert_ptr_none(d, "/a/arr/99999999999999999999999");
}

static void test_json_pointer_missing_and_malformed(void **state)
{
    (void)state;
    const hlc_json *d = doc(DOC);
    assert_ptr_none(d, "/nope");
    assert_ptr_none(d, "/a/nope/deeper");
    assert_ptr_none(d, "/a/b~1c/deeper"); /* through a number */
    assert_ptr_none(d, "/s/0");           /* through a string */
    assert_ptr_none(d, "a");              /* must start with '/' */
    assert_ptr_none(d, "/a/b/c");         /* "b/c" needs ~1 */
    assert_ptr_none(d, "/a/m~2n");        /* ~ must be ~0 or ~1 */
    assert_ptr_none(d, "/a/m~");
    assert_ptr_none(NULL, "/a");
    char longtok[2000];
    memset(longtok, 'k', sizeof longtok - 1);
    longtok[0] = '/';
    longtok[sizeof longtok - 1] = 0;
    assert_ptr_none(d, longtok);
}

static void test_json_read_accessors(void **state)
{
    (void)state;
    const hlc_json *d =
        doc("{\"i\":-42,\"r\":1.5,\"s\":\"h\\u00e9\",\"t\":true,\"f\":false,"
          "\"n\":null,\"l\":[1,2,3],\"o\":{}}");
    assert_int_equal(A->json_type(d), HLC_JSON_OBJECT);
    assert_int_equal(A->json_type(NULL), -1);
    assert_int_equal(A->json_type(A->json_get(d, "i")), HLC_JSON_INTEGER);
    assert_int_equal(A->json_type(A->json_get(d, "r")), HLC_JSON_REAL);
    assert_int_equal(A->json_type(A->json_get(d, "s")), HLC_JSON_STRING);
    assert_int_equal(A->json_type(A->json_get(d, "t")), HLC_JSON_TRUE);
    assert_int_equal(A->json_type(A->json_get(d, "f")), HLC_JSON_FALSE);
    assert_int_equal(A->json_type(A->json_get(d, "n")), HLC_JSON_NULL);
    assert_int_equal(A->json_type(A->json_get(d, "l")), HLC_JSON_ARRAY);
    assert_null(A->json_get(d, "missing"));
    assert_null(A->json_get(A->json_get(d, "l"), "i")); /* not an object */

    assert_int_equal(A->json_integer(A->json_get(d, "i")), -42);
    assert_true(A->json_number(A->json_get(d, "r")) == 1.5);
    assert_true(A->json_number(A->json_get(d, "i")) == -42.0);
    assert_string_equal(A->json_string(A->json_get(d, "s")), "h\xc3\xa9");
    assert_null(A->json_string(A->json_get(d, "i"))); /* another type */
    assert_int_equal(A->json_size(d), 8);
    assert_int_equal(A->json_size(A->json_get(d, "l")), 3);
    assert_int_equal(A->json_size(A->json_get(d, "o")), 0);
    assert_int_equal(A->json_size(A->json_get(d, "s")), 0);
    assert_int_equal(A->json_integer(A->json_at(A->json_get(d, "l"), 2)), 3);
    assert_null(A->json_at(A->json_get(d, "l"), 3));
    assert_null(A->json_at(d, 0)); /* not an array */
}

static void test_json_key_at_in_insertion_order(void **state)
{
    (void)state;
    hlc_json *o = A->json_object();
    g.json[g.njson++] = (json_t *)o;
    const char *keys[] = {"zeta", "alpha", "mid", "beta", "0"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(A->json_set(o, keys[i], A->json_new_integer(i)), 0);
    assert_int_equal(A->json_size(o), 5);
    for (size_t i = 0; i < 5; i++) {
        const hlc_json *v = NULL;
        const char *k = A->json_key_at(o, i, &v);
        assert_non_null(k);
        assert_string_equal(k, keys[i]);
        assert_int_equal(A->json_integer(v), (int64_t)i);
        assert_string_equal(A->json_key_at(o, i, NULL), keys[i]);
    }
    const hlc_json *v = (const hlc_json *)o;
    assert_null(A->json_key_at(o, 5, &v));
    assert_null(v); /* cleared when there is no such member */
    v = (const hlc_json *)o;
    assert_null(A->json_key_at(doc("[1,2]"), 0, &v));
    assert_null(v);

    /* Parsed text keeps the document's order too. */
    const hlc_json *p = doc("{\"b\":1,\"a\":2,\"c\":3}");
    assert_string_equal(A->json_key_at(p, 0, NULL), "b");
    assert_string_equal(A->json_key_at(p, 1, NULL), "a");
    assert_string_equal(A->json_key_at(p, 2, NULL), "c");
}

/* ---- JSON: building ----------------------------------------------------- */

static void test_json_build_set_replace_del(void **state)
{
    (void)state;
    hlc_json *o = A->json_object();
    g.json[g.njson++] = (json_t *)o;
    hlc_json *arr = A->json_array();
    assert_int_equal(A->json_append(arr, A->json_new_string("one")), 0);
    assert_int_equal(A->json_append(arr, A->json_new_stringn("tw\0o", 4)), 0);
    assert_int_equal(A->json_append(arr, A->json_new_real(0.25)), 0);
    assert_int_equal(A->json_append(arr, A->json_new_bool(1)), 0);
    assert_int_equal(A->json_append(arr, A->json_new_bool(0)), 0);
    assert_int_equal(A->json_append(arr, A->json_new_null()), 0);
    assert_int_equal(A->json_set(o, "list", arr), 0);
    assert_int_equal(A->json_set(o, "n", A->json_new_integer(1)), 0);
    /* Setting a key again replaces (and frees) the old value. */
    assert_int_equal(A->json_set(o, "n", A->json_new_integer(INT64_MIN)), 0);
    assert_string_equal(dump(o), "{\"list\":[\"one\",\"tw\\u0000o\",0.25,"
                                 "true,false,null],\"n\":-9223372036854775808}");

    hlc_json *copy = A->json_copy(o);
    assert_int_equal(A->json_del(o, "list"), 0);
    assert_int_equal(A->json_del(o, "list"), HL_ENOTFOUND);
    assert_string_equal(dump(o), "{\"n\":-9223372036854775808}");
    /* The deep copy is not changed by what happened to the original. */
    assert_int_equal(A->json_size(A->json_get(copy, "list")), 6);
    A->json_free(copy);
    A->json_free(NULL); /* nothing */
}

/* A value handed to json_set or json_append is theirs also when they fail:
 * ASan's leak check fails this test if one is not freed. */
static void test_json_set_append_take_ownership_on_failure(void **state)
{
    (void)state;
    hlc_json *o = A->json_object();
    g.json[g.njson++] = (json_t *)o;
    hlc_json *arr = A->json_array();
    g.json[g.njson++] = (json_t *)arr;

    assert_true(A->json_set(NULL, "k", A->json_new_string("lost?")) < 0);
    assert_true(A->json_set(o, NULL, A->json_new_string("lost?")) < 0);
    assert_true(A->json_set(arr, "k", A->json_new_string("lost?")) < 0);
    assert_true(A->json_set(o, "\xff\xfe", A->json_new_string("lost?")) < 0);
    assert_true(A->json_set(o, "k", NULL) < 0);
    assert_true(A->json_append(NULL, A->json_new_integer(1)) < 0);
    assert_true(A->json_append(o, A->json_new_integer(1)) < 0);
    assert_true(A->json_append(arr, NULL) < 0);
    /* A value built up before being refused: all of it is freed. */
    hlc_json *big = A->json_object();
    assert_int_equal(A->json_set(big, "inner", A->json_array()), 0);
    assert_true(A->json_append(o, big) < 0);
    /* Nothing was added anywhere. */
    assert_int_equal(A->json_size(o), 0);
    assert_int_equal(A->json_size(arr), 0);
}

static void test_json_strings_must_be_utf8(void **state)
{
    (void)state;
    assert_null(A->json_new_string("\xc3\x28"));
    assert_null(A->json_new_stringn("ok\xff", 3));
    assert_null(A->json_new_string(NULL));
    assert_null(A->json_new_stringn(NULL, 0));
    hlc_json *s = A->json_new_stringn("abc", 2); /* only n bytes */
    assert_string_equal(A->json_string(s), "ab");
    A->json_free(s);
}

static void test_json_dump_parse_round_trip(void **state)
{
    (void)state;
    const char *text =
        "{\"s\":\"quote \\\" backslash \\\\ tab \\t \\u00e9 \\ud83d\\ude00\","
        "\"i\":42,\"r\":-1.5,\"t\":true,\"f\":false,\"z\":null,"
        "\"l\":[1,\"two\",[],{}],\"o\":{\"k\":\"v\"}}";
    hlc_json *v = A->json_parse(text, strlen(text));
    assert_non_null(v);
    size_t len = 0;
    char *out = keep(A->json_dump(v, &len));
    /* Compact, in the document's order, UTF-8 written as is. */
    assert_string_equal(out, "{\"s\":\"quote \\\" backslash \\\\ tab \\t "
                             "\xc3\xa9 \xf0\x9f\x98\x80\",\"i\":42,\"r\":-1.5,"
                             "\"t\":true,\"f\":false,\"z\":null,\"l\":[1,"
                             "\"two\",[],{}],\"o\":{\"k\":\"v\"}}");
    assert_int_equal(len, strlen(out));
    hlc_json *back = A->json_parse(out, len);
    assert_non_null(back);
    assert_true(json_equal((json_t *)v, (json_t *)back));
    A->json_free(back);
    A->json_free(v);

    /* Only len bytes are read; scalars are JSON too. */
    hlc_json *arr = A->json_parse("[1,2]garbage", 5);
    assert_non_null(arr);
    assert_int_equal(A->json_size(arr), 2);
    A->json_free(arr);
    hlc_json *num = A->json_parse("42", 2);
    assert_int_equal(A->json_integer(num), 42);
    assert_string_equal(dump(num), "42");
    A->json_free(num);

    assert_null(A->json_parse("{\"a\":", 5));
    assert_null(A->json_parse("not json", 8));
    assert_null(A->json_parse("", 0));
    assert_null(A->json_parse("[1] [2]", 7));
    len = 7;
    assert_null(A->json_dump(NULL, &len));
    assert_int_equal(len, 0);
}

/* ---- text --------------------------------------------------------------- */

/* Characters in UTF-8 text s (which must be valid UTF-8). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void assert_truncated(const char *s, size_t max, const char *ell,
                             const char *want)
{
    char *got = keep(A->text_truncate(s, max, ell));
    assert_non_null(got);
    if (strcmp(got, want))
        fail_msg("text_truncate(\"%s\", %zu, \"%s\") is \"%s\", want \"%s\"", s,
                 max, ell ? ell : "(null)", got, want);
    if (utf8_chars(got) > max)
        fail_msg("text_truncate(\"%s\", %zu) has %zu characters", s, max,
                 utf8_chars(got));
}

static void test_text_truncate_ascii(void **state)
{
    (void)state;
    assert_truncated("hello world", 8, "...", "hello...");
    assert_truncated("hello world", 10, "...", "hello w...");
    assert_truncated("hello world", 5, "", "hello");
    assert_truncated("hello world", 5, NULL, "hello");
    /* A one-character ellipsis of three bytes counts as one. */
    assert_truncated("abcdef", 4, "\xe2\x80\xa6", "abc\xe2\x80\xa6");
}

static void test_text_truncate_fits_exactly(void **state)
{
    (void)state;
    /* Exactly max_chars: not cut, no ellipsis. */
    assert_truncated("hello", 5, "...", "hello");
    assert_truncated("h\xc3\xa9llo", 5, "\xe2\x80\xa6", "h\xc3\xa9llo");
    assert_truncated("hello", 50, "...", "hello");
    assert_truncated("", 3, "...", "");
    assert_truncated(NULL, 3, "...", "");
    /* One more than fits: cut, and the ellipsis takes its share. */
    assert_truncated("hello!", 5, "...", "he...");
}

/* "é" is 2 bytes, "日" 3, "😀" 4: a cut lands between characters only. */
static void test_text_truncate_utf8_never_cuts_a_character(void **state)
{
    (void)state;
    assert_truncated("h\xc3\xa9llo w\xc3\xb6rld", 6, "\xe2\x80\xa6",
                     "h\xc3\xa9llo\xe2\x80\xa6");
    assert_truncated("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3, "",
                     "\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_truncated("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86"
                     "\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
                     4, "\xe2\x80\xa6",
                     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe2\x80\xa6");
    assert_truncated("a\xf0\x9f\x98\x80" "b\xf0\x9f\x98\x80" "c", 3,
                     "\xe2\x80\xa6", "a\xf0\x9f\x98\x80\xe2\x80\xa6");
    assert_truncated("a\xf0\x9f\x98\x80" "b\xf0\x9f\x98\x80" "c", 4, "..",
                     "a\xf0\x9f\x98\x80..");
    /* Every cut of a mixed string is valid UTF-8 and short enough. */
    const char *mixed = "x\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80y\xc3\xa9z";
    for (size_t max = 1; max <= 8; max++) {
        char *got = keep(A->text_truncate(mixed, max, "\xe2\x80\xa6"));
        assert_non_null(got);
        assert_true(utf8_chars(got) <= max);
        json_t *check = json_string(got); /* NULL if not valid UTF-8 */
        if (!check)
            fail_msg("cut at %zu characters is not valid UTF-8", max);
        json_decref(check);
    }
}

/* No room for the ellipsis: the result still has at most max_chars
 * characters, as the SDK promises. */
static void test_text_truncate_max_smaller_than_ellipsis(void **state)
{
    (void)state;
    /* Just room for the ellipsis: nothing of the text is left. */
    assert_truncated("hello world", 3, "...", "...");
    /* Less: a shorter cut of the text; never more than max_chars. */
    for (size_t max = 0; max < 3; max++) {
        const char *ell[] = {"...", "\xe2\x80\xa6\xe2\x80\xa6\xe2\x80\xa6"};
        for (int e = 0; e < 2; e++) {
            char *got = keep(A->text_truncate("hello world", max, ell[e]));
            assert_non_null(got);
            if (utf8_chars(got) > max || strncmp(got, "hello world",
                                                 strlen(got)))
                fail_msg("text_truncate(\"hello world\", %zu, \"%s\") is "
                         "\"%s\": %zu characters, not a cut of the text",
                         max, ell[e], got, utf8_chars(got));
        }
    }
}

/* ---- templates ---------------------------------------------------------- */

static char *render(const char *src, const char *ctx, int esc, size_t *len)
{
    char err[256] = "";
    if (g.tpl)
        A->template_free(g.tpl);
    g.tpl = A->template_compile(src, err, sizeof err);
    if (!g.tpl)
        fail_msg("template '%s' does not compile: %s", src, err);
    char *out = A->template_render(g.tpl, doc(ctx), esc, len, err, sizeof err);
    if (!out)
        fail_msg("template '%s' does not render: %s", src, err);
    return keep(out);
}

static void test_template_json_escaping(void **state)
{
    (void)state;
    size_t len = 0;
    const char *ctx = "{\"title\":\"Disk \\\"/var\\\" at 95% \\\\ full\","
                      "\"lines\":\"a\\nb\"}";
    char *out = render("{\"text\":\"{{title}}\",\"more\":\"{{lines}}\"}", ctx,
                       HLC_ESC_JSON, &len);
    assert_string_equal(out, "{\"text\":\"Disk \\\"/var\\\" at 95% \\\\ "
                             "full\",\"more\":\"a\\nb\"}");
    assert_int_equal(len, strlen(out));
    /* What it made is JSON, and says what the event said. */
    hlc_json *v = A->json_parse(out, len);
    assert_non_null(v);
    assert_string_equal(A->json_string(A->json_get(v, "text")),
                        "Disk \"/var\" at 95% \\ full");
    assert_string_equal(A->json_string(A->json_get(v, "more")), "a\nb");
    A->json_free(v);
}

static void test_template_html_and_none(void **state)
{
    (void)state;
    const char *ctx = "{\"x\":\"<a href=\\\"q\\\">&</a>\"}";
    assert_string_equal(render("[{{x}}]", ctx, HLC_ESC_HTML, NULL),
                        "[&lt;a href=&quot;q&quot;&gt;&amp;&lt;/a&gt;]");
    assert_string_equal(render("[{{x}}]", ctx, HLC_ESC_NONE, NULL),
                        "[<a href=\"q\">&</a>]");
    /* {{{x}}} is raw whatever the mode. */
    assert_string_equal(render("[{{{x}}}]", ctx, HLC_ESC_JSON, NULL),
                        "[<a href=\"q\">&</a>]");
    assert_string_equal(render("{{#l}}{{.}},{{/l}}", "{\"l\":[1,2,3]}",
                               HLC_ESC_JSON, NULL),
                        "1,2,3,");
}

static void test_template_compile_error(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(A->template_compile("{\"a\":\"{{#open}}x\"}", err, sizeof err));
    assert_string_equal(err, "line 1, column 19: unclosed section 'open' "
                             "opened at line 1, column 7");
    err[0] = 0;
    assert_null(A->template_compile("line one\nbad {{name", err, sizeof err));
    assert_string_equal(err, "line 2, column 5: unclosed tag");
}

/* ---- requests ----------------------------------------------------------- */

static void test_request_http_methods_and_schemes(void **state)
{
    (void)state;
    hlc_request *r = &g.req;
    assert_int_equal(r->kind, -1);
    assert_string_equal(r->idem_header, "Idempotency-Key");
    const char *ok[] = {"POST", "PUT", "PATCH", "GET", "DELETE"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(A->request_http(r, ok[i], "https://x.example/h"), 0);
    assert_int_equal(A->request_http(r, "POST", "http://x.example:8080/a?b=c"),
                     0);
    assert_int_equal(r->kind, HL_XFER_HTTP);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "http://x.example:8080/a?b=c");
    assert_int_equal(A->request_http(r, "PUT", "HTTPS://X.EXAMPLE/"), 0);
    assert_string_equal(r->method, "PUT");

    /* Refused: the request stays as it was. */
    const char *bad_methods[] = {"FETCH", "post", "CONNECT", "TRACE", "",
                                 "POST ", NULL};
    for (int i = 0; i < 7; i++)
        assert_int_equal(A->request_http(r, bad_methods[i], "https://x/"),
                         HL_ERANGE);
    const char *bad_urls[] = {"ftp://x.example/",  "file:///etc/passwd",
                              "gopher://x:70/",    "//x.example/",
                              "x.example/hook",    "",
                              "smtp://mail:25",    "https:/x.example",
                              NULL};
    for (int i = 0; i < 9; i++)
        if (A->request_http(r, "POST", bad_urls[i]) != HL_ERANGE)
            fail_msg("request_http accepted url '%s'",
                     bad_urls[i] ? bad_urls[i] : "(null)");
    assert_string_equal(r->method, "PUT");
    assert_string_equal(r->url, "HTTPS://X.EXAMPLE/");
    assert_int_equal(r->kind, HL_XFER_HTTP);
}

static void test_request_header_refuses_injection(void **state)
{
    (void)state;
    hlc_request *r = &g.req;
    assert_int_equal(A->request_header(r, "X-Team", "ops"), 0);
    assert_int_equal(A->request_header(r, "X-Empty", ""), 0);
    assert_int_equal(A->request_header(r, "X-Tab", "a\tb c"), 0);
    /* A value that would start a header (or a body) of its own. */
    const char *values[] = {"ok\r\nX-Admin: yes", "ok\nX-Admin: yes",
                            "ok\r", "\r\n\r\n<html>", NULL};
    for (int i = 0; i < 5; i++)
        assert_int_equal(A->request_header(r, "X-Ok", values[i]), HL_ESYNTAX);
    /* Names: no spaces, colons, control characters, nor empty. */
    const char *names[] = {"Bad Name", "X:Y", "", "X-A\r\nX-B", "X\tY",
                           "X-\x01", NULL};
    for (int i = 0; i < 7; i++)
        assert_int_equal(A->request_header(r, names[i], "v"), HL_ESYNTAX);
    assert_int_equal(r->n_headers, 3);
    assert_string_equal(r->headers[0].name, "X-Team");
    assert_string_equal(r->headers[0].value, "ops");
    assert_string_equal(r->headers[1].name, "X-Empty");
    assert_string_equal(r->headers[1].value, "");
    assert_string_equal(r->headers[2].value, "a\tb c");
}

static void test_request_body_and_tls(void **state)
{
    (void)state;
    hlc_request *r = &g.req;
    size_t len = 99;
    assert_null(A->request_get_body(r, &len));
    assert_int_equal(len, 0);
    assert_int_equal(A->request_body(r, "a\0b", 3), 0);
    const char *b = A->request_get_body(r, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(b, "a\0b", 3);
    assert_int_equal(A->request_body(r, "{}", 2), 0); /* replaces */
    assert_string_equal(A->request_get_body(r, &len), "{}");
    assert_int_equal(len, 2);
    assert_int_equal(A->request_body(r, NULL, 0), 0);
    assert_string_equal(A->request_get_body(r, NULL), "");

    assert_int_equal(A->request_tls(r, "/c.pem", NULL, "/ca.pem"), 0);
    assert_string_equal(r->client_cert, "/c.pem");
    assert_null(r->client_key);
    assert_string_equal(r->ca_file, "/ca.pem");
}

static void test_request_idempotency_header(void **state)
{
    (void)state;
    hlc_request *r = &g.req;
    assert_int_equal(r->idem_renamed, 0);
    assert_int_equal(A->request_idempotency_header(r, "X-Dedup-Key"), 0);
    assert_string_equal(r->idem_header, "X-Dedup-Key");
    assert_int_equal(r->idem_renamed, 1);
    assert_int_equal(A->request_idempotency_header(r, "bad name"), HL_ESYNTAX);
    assert_int_equal(A->request_idempotency_header(r, "X\r\nY"), HL_ESYNTAX);
    assert_string_equal(r->idem_header, "X-Dedup-Key");
    /* NULL: the key travels another way; no header is sent. */
    assert_int_equal(A->request_idempotency_header(r, NULL), 0);
    assert_null(r->idem_header);
    assert_int_equal(r->idem_renamed, 1);
}

static void test_request_smtp(void **state)
{
    (void)state;
    hlc_request *r = &g.req;
    const char *rcpt[] = {"oncall@acme.example", "ops@acme.example"};
    assert_int_equal(A->request_smtp(r, "smtp://mail.acme.example:587",
                                     "hookline@acme.example", rcpt, 2, "user",
                                     "pw", 1),
                     0);
    assert_int_equal(r->kind, HL_XFER_SMTP);
    assert_string_equal(r->url, "smtp://mail.acme.example:587");
    assert_string_equal(r->mail_from, "hookline@acme.example");
    assert_int_equal(r->n_rcpt, 2);
    assert_string_equal(r->rcpt[0], "oncall@acme.example");
    assert_string_equal(r->rcpt[1], "ops@acme.example");
    assert_ptr_not_equal(r->rcpt[0], rcpt[0]); /* copied */
    assert_string_equal(r->username, "user");
    assert_string_equal(r->password, "pw");
    assert_int_equal(r->starttls, 1);

    /* Again, without auth, over smtps: replaces everything. */
    const char *one[] = {"a@b.example"};
    assert_int_equal(A->request_smtp(r, "smtps://mail.acme.example", "f@x", one,
                                     1, NULL, NULL, 0),
                     0);
    assert_int_equal(r->n_rcpt, 1);
    assert_string_equal(r->rcpt[0], "a@b.example");
    assert_null(r->username);
    assert_null(r->password);
    assert_int_equal(r->starttls, 0);

    assert_int_equal(A->request_smtp(r, "https://mail.example/", "f@x", one, 1,
                                     NULL, NULL, 0),
                     HL_ERANGE);
    assert_int_equal(A->request_smtp(r, "smtp://mail.example", "f@x", one, 0,
                                     NULL, NULL, 0),
                     HL_ERANGE);
    assert_int_equal(A->request_smtp(r, "smtp://mail.example", NULL, one, 1,
                                     NULL, NULL, 0),
                     HL_ERANGE);
    assert_string_equal(r->url, "smtps://mail.acme.example");
}

/* ---- configuration ------------------------------------------------------ */

static const hlc_key cfg_keys[] = {
    {"channel", HLC_KEY_STRING, HLC_KEY_REQUIRED, NULL, NULL, "where"},
    {"mode", HLC_KEY_STRING, 0, "fast", "fast|slow", "how"},
    {"retries", HLC_KEY_INT, 0, "3", NULL, "set"},
    {"count", HLC_KEY_INT, 0, "12", NULL, "unset"},
    {"wait", HLC_KEY_DURATION, 0, "2s", NULL, "set"},
    {"grace", HLC_KEY_DURATION, 0, "1m30s", NULL, "unset"},
    {"limit", HLC_KEY_SIZE, 0, "1KiB", NULL, "set"},
    {"chunk", HLC_KEY_SIZE, 0, "64KiB", NULL, "unset"},
    {"enabled", HLC_KEY_BOOL, 0, NULL, NULL, "set true"},
    {"quiet", HLC_KEY_BOOL, 0, "true", NULL, "set false"},
    {"verbose", HLC_KEY_BOOL, 0, "true", NULL, "unset"},
    {"strict", HLC_KEY_BOOL, 0, NULL, NULL, "unset, no default"},
    {"signing.hmac.secret", HLC_KEY_SECRET, 0, NULL, NULL, ""},
    {"signing.hmac.header", HLC_KEY_STRING, 0, "X-Hub-Signature-256", NULL, ""},
    {"signing.hmac.algorithm", HLC_KEY_STRING, 0, "sha256", NULL, ""},
    {"signing.standard_webhooks.secret", HLC_KEY_SECRET, 0, NULL, NULL, ""},
    {"headers", HLC_KEY_MAP, 0, NULL, NULL, ""},
    {"tags", HLC_KEY_LIST, 0, NULL, NULL, ""},
    {"mixed", HLC_KEY_LIST, 0, NULL, NULL, ""},
    {"blank", HLC_KEY_STRING, 0, "was blank", NULL, ""},
    {"missing", HLC_KEY_STRING, 0, NULL, NULL, ""},
    {NULL, 0, 0, NULL, NULL, NULL},
};

#define CFG_YAML                                                               \
    "url: https://hooks.acme.example/in\n"                                     \
    "timeout: 30s\n"                                                           \
    "channel: \"#ops\"\n"                                                      \
    "retries: 7\n"                                                             \
    "wait: 1500ms\n"                                                           \
    "limit: 2MiB\n"                                                            \
    "enabled: true\n"                                                          \
    "quiet: false\n"                                                           \
    "signing:\n"                                                               \
    "  hmac:\n"                                                                \
    "    secret: s3cret\n"                                                     \
    "    header: X-Sig\n"                                                      \
    "headers:\n"                                                               \
    "  X-One: \"1\"\n"                                                         \
    "  X-Two: two\n"                                                           \
    "  X-Deep: {a: b}\n"                                                       \
    "tags: [a, b, c]\n"                                                        \
    "mixed: [one, [two], three]\n"                                             \
    "blank:\n"

static const hlc_config *cfg(void)
{
    int rc = hl_ydoc_load_string("c.yaml", CFG_YAML, strlen(CFG_YAML), 0,
                                 &g.diags, &g.doc);
    if (rc)
        fail_msg("the test YAML does not load: %d", rc);
    g.cfg.node = hl_ydoc_root(g.doc);
    g.cfg.keys = cfg_keys;
    assert_non_null(g.cfg.node);
    return &g.cfg;
}

static void test_config_strings_and_defaults(void **state)
{
    (void)state;
    const hlc_config *c = cfg();
    assert_string_equal(A->config_string(c, "channel"), "#ops");
    assert_string_equal(A->config_string(c, "mode"), "fast"); /* default */
    assert_null(A->config_string(c, "missing"));  /* no default */
    assert_null(A->config_string(c, "not.a.key"));
    assert_string_equal(A->config_string(c, "blank"), "was blank"); /* null */
    /* The host's keys are read the same way. */
    assert_string_equal(A->config_string(c, "url"),
                        "https://hooks.acme.example/in");
    assert_null(A->config_string(c, "policy"));
    /* Dotted names reach into sections. */
    assert_string_equal(A->config_string(c, "signing.hmac.secret"), "s3cret");
    assert_string_equal(A->config_string(c, "signing.hmac.header"), "X-Sig");
    assert_string_equal(A->config_string(c, "signing.hmac.algorithm"),
                        "sha256");
    assert_null(A->config_string(c, "signing.standard_webhooks.secret"));
}

static void test_config_int_durations_sizes_bools(void **state)
{
    (void)state;
    const hlc_config *c = cfg();
    assert_int_equal(A->config_int(c, "retries"), 7);
    assert_int_equal(A->config_int(c, "count"), 12);      /* default */
    assert_int_equal(A->config_int(c, "wait"), 1500);     /* ms */
    assert_int_equal(A->config_int(c, "grace"), 90000);   /* 1m30s */
    assert_int_equal(A->config_int(c, "timeout"), 30000); /* the host's */
    assert_int_equal(A->config_int(c, "limit"), 2 * 1024 * 1024);
    assert_int_equal(A->config_int(c, "chunk"), 64 * 1024);
    assert_int_equal(A->config_int(c, "enabled"), 1);
    assert_int_equal(A->config_int(c, "quiet"), 0); /* set over a default */
    assert_int_equal(A->config_int(c, "verbose"), 1);
    assert_int_equal(A->config_int(c, "strict"), 0);
    assert_int_equal(A->config_int(c, "missing"), 0);
    assert_int_equal(A->config_int(c, "not.a.key"), 0);
}

static void test_config_has_nested(void **state)
{
    (void)state;
    const hlc_config *c = cfg();
    assert_true(A->config_has(c, "channel"));
    assert_true(A->config_has(c, "signing"));
    assert_true(A->config_has(c, "signing.hmac"));
    assert_true(A->config_has(c, "signing.hmac.secret"));
    assert_false(A->config_has(c, "signing.standard_webhooks"));
    assert_false(A->config_has(c, "signing.hmac.secret.deeper"));
    assert_false(A->config_has(c, "mode"));  /* a default is not set */
    assert_false(A->config_has(c, "blank")); /* `blank:` is null */
    assert_false(A->config_has(c, "nope"));
    assert_true(A->config_has(c, "headers"));
}

static void test_config_count_items_map_and_list(void **state)
{
    (void)state;
    const hlc_config *c = cfg();
    const char *v = "x";
    assert_int_equal(A->config_count(c, "headers"), 3);
    assert_string_equal(A->config_item(c, "headers", 0, &v), "X-One");
    assert_string_equal(v, "1");
    assert_string_equal(A->config_item(c, "headers", 1, &v), "X-Two");
    assert_string_equal(v, "two");
    /* A value that is not a string: the key, and no value. */
    assert_string_equal(A->config_item(c, "headers", 2, &v), "X-Deep");
    assert_null(v);
    v = "x";
    assert_null(A->config_item(c, "headers", 3, &v));
    assert_null(v);
    assert_string_equal(A->config_item(c, "headers", 1, NULL), "X-Two");

    assert_int_equal(A->config_count(c, "tags"), 3);
    const char *want[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        v = "x";
        assert_string_equal(A->config_item(c, "tags", i, &v), want[i]);
        assert_null(v); /* list items have no value */
    }
    assert_null(A->config_item(c, "tags", 3, NULL));
    assert_int_equal(A->config_count(c, "mixed"), 3);
    assert_string_equal(A->config_item(c, "mixed", 0, NULL), "one");
    assert_null(A->config_item(c, "mixed", 1, NULL)); /* not a string */
    assert_string_equal(A->config_item(c, "mixed", 2, NULL), "three");

    /* Unset, or not a list or mapping. */
    assert_int_equal(A->config_count(c, "nope"), 0);
    assert_int_equal(A->config_count(c, "channel"), 0);
    assert_null(A->config_item(c, "nope", 0, &v));
    assert_null(A->config_item(c, "channel", 0, &v));
    assert_int_equal(A->config_count(c, "signing"), 1);
}

/* ---- Retry-After -------------------------------------------------------- */

#define DATE_S INT64_C(1445412480) /* Wed, 21 Oct 2015 07:28:00 GMT */
#define DATE "Wed, 21 Oct 2015 07:28:00 GMT"

static void test_retry_after_delta_seconds(void **state)
{
    (void)state;
    int64_t now = DATE_S * 1000;
    assert_int_equal(hl_retry_after_ms("7", now), 7000);
    assert_int_equal(hl_retry_after_ms("0", now), 0);
    assert_int_equal(hl_retry_after_ms("120", now), 120000);
    assert_int_equal(hl_retry_after_ms(" 7", now), 7000);
    assert_int_equal(hl_retry_after_ms("7 ", now), 7000);
    assert_int_equal(hl_retry_after_ms("\t 30 \t", now), 30000);
    assert_int_equal(hl_retry_after_ms("86400", now), 86400000);
}

static void test_retry_after_http_date(void **state)
{
    (void)state;
    /* Relative to the now given, not the clock. */
    assert_int_equal(hl_retry_after_ms(DATE, (DATE_S - 30) * 1000), 30000);
    assert_int_equal(hl_retry_after_ms(DATE, DATE_S * 1000 - 1500), 1500);
    assert_int_equal(hl_retry_after_ms(DATE, DATE_S * 1000), 0);
    /* A date in the past: no wait. */
    assert_int_equal(hl_retry_after_ms(DATE, (DATE_S + 10) * 1000), 0);
    assert_int_equal(hl_retry_after_ms(DATE, (DATE_S + 86400 * 365) * 1000),
                     0);
    /* Whitespace before it, as before a number. */
    assert_int_equal(hl_retry_after_ms("  " DATE, (DATE_S - 30) * 1000),
                     30000);
    assert_int_equal(hl_retry_after_ms("\t" DATE, (DATE_S - 30) * 1000),
                     30000);
}

static void test_retry_after_garbage(void **state)
{
    (void)state;
    int64_t now = DATE_S * 1000;
    const char *bad[] = {"",
                         "   ",
                         "soon",
                         "7s",
                         "7 seconds",
                         "1.5",
                         "-5",
                         "+5",
                         "0x10",
                         "99999999999999999999999",
                         "999999999999", /* 31 700 years */
                         "Wed, 21 Oct 2015 07:28:00",
                         "Wed, 21 Oct 2015 07:28:00 GMT tomorrow",
                         "Wed, 21 Oct 2015 25:28:00 GMT",
                         "2015-10-21T07:28:00Z",
                         NULL};
    for (size_t i = 0; bad[i]; i++)
        if (hl_retry_after_ms(bad[i], now) != -1)
            fail_msg("Retry-After '%s' read as %lld ms; want -1", bad[i],
                     (long long)hl_retry_after_ms(bad[i], now));
    assert_int_equal(hl_retry_after_ms(NULL, now), -1);
}

/* ---- default classification --------------------------------------------- */

typedef struct {
    int status;
    const char *headers;
    int verdict;
    int64_t after;
    const char *reason;
} status_case;

#define HDRS(status_line, more) "HTTP/1.1 " status_line "\r\n" more "\r\n"

static hl_xfer_res res_of(int status, const char *headers, const char *body)
{
    hl_xfer_res r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.error = HL_XERR_NONE;
    r.headers = headers;
    r.body = body;
    r.body_len = body ? strlen(body) : 0;
    return r;
}

static const char *verdict_name(int v)
{
    switch (v) {
    case HLC_DELIVERED: return "delivered";
    case HLC_RETRY: return "retry";
    case HLC_FAILED: return "failed";
    case HLC_DISABLE: return "disable";
    default: return "?";
    }
}

static void check_case(const status_case *c)
{
    hl_xfer_res r = res_of(c->status, c->headers, "");
    hlc_outcome o;
    memset(&o, 0xa5, sizeof o);
    hl_classify_default(&r, &o);
    if ((int)o.verdict != c->verdict || o.retry_after_ms != c->after ||
        strcmp(o.reason, c->reason))
        fail_msg("status %d: %s after %lld \"%.256s\"; want %s after %lld "
                 "\"%s\"",
                 c->status, verdict_name((int)o.verdict),
                 (long long)o.retry_after_ms, o.reason,
                 verdict_name(c->verdict), (long long)c->after, c->reason);
    /* The same through the table a plugin calls. */
    hlc_response resp = {&r};
    hlc_outcome o2;
    memset(&o2, 0, sizeof o2);
    A->classify_default(&resp, &o2);
    assert_int_equal(o2.verdict, o.verdict);
    assert_int_equal(o2.retry_after_ms, o.retry_after_ms);
    assert_string_equal(o2.reason, o.reason);
}

static void test_classify_default_statuses(void **state)
{
    (void)state;
    static const char gone[] = "HTTP 410: the destination is gone; resume the "
                               "connector once its url is fixed";
    const status_case cases[] = {
        {200, HDRS("200 OK", ""), HLC_DELIVERED, -1, "HTTP 200"},
        {201, HDRS("201 Created", ""), HLC_DELIVERED, -1, "HTTP 201"},
        {204, HDRS("204 No Content", ""), HLC_DELIVERED, -1, "HTTP 204"},
        {408, HDRS("408 Request Timeout", ""), HLC_RETRY, -1, "HTTP 408"},
        {425, HDRS("425 Too Early", ""), HLC_RETRY, -1, "HTTP 425"},
        {429, HDRS("429 Too Many Requests", ""), HLC_RETRY, -1, "HTTP 429"},
        {500, HDRS("500 Internal Server Error", ""), HLC_RETRY, -1,
         "HTTP 500"},
        {502, HDRS("502 Bad Gateway", ""), HLC_RETRY, -1, "HTTP 502"},
        {503, HDRS("503 Service Unavailable", ""), HLC_RETRY, -1, "HTTP 503"},
        {410, HDRS("410 Gone", ""), HLC_DISABLE, -1, gone},
        {400, HDRS("400 Bad Request", ""), HLC_FAILED, -1, "HTTP 400"},
        {401, HDRS("401 Unauthorized", ""), HLC_FAILED, -1, "HTTP 401"},
        {404, HDRS("404 Not Found", ""), HLC_FAILED, -1, "HTTP 404"},
        {422, HDRS("422 Unprocessable Content", ""), HLC_FAILED, -1,
         "HTTP 422"},
        /* Redirects are not followed unless asked: a 3xx is final. */
        {301, HDRS("301 Moved Permanently", "Location: /x\r\n"), HLC_FAILED,
         -1, "HTTP 301"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(&cases[i]);
}

static void test_classify_retry_after(void **state)
{
    (void)state;
    const status_case cases[] = {
        {429, HDRS("429 Too Many", "Retry-After: 7\r\n"), HLC_RETRY, 7000,
         "HTTP 429"},
        {429, HDRS("429 Too Many", "retry-after:  12 \r\n"), HLC_RETRY, 12000,
         "HTTP 429"},
        {503, HDRS("503 Unavailable", "Content-Type: text/plain\r\n"
                                      "Retry-After: 120\r\n"),
         HLC_RETRY, 120000, "HTTP 503"},
        {429, HDRS("429 Too Many", "Retry-After: whenever\r\n"), HLC_RETRY,
         -1, "HTTP 429"},
        /* A date in the past: at once. */
        {429, HDRS("429 Too Many", "Retry-After: " DATE "\r\n"), HLC_RETRY,
         0, "HTTP 429"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(&cases[i]);

    /* A date a minute from now, by the clock classify reads. */
    char hdrs[256], date[64];
    time_t t = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(hdrs, sizeof hdrs,
             "HTTP/1.1 503 Unavailable\r\nRetry-After: %s\r\n\r\n", date);
    hl_xfer_res r = res_of(503, hdrs, "");
    hlc_outcome o;
    hl_classify_default(&r, &o);
    assert_int_equal(o.verdict, HLC_RETRY);
    if (o.retry_after_ms < 55000 || o.retry_after_ms > 60000)
        fail_msg("Retry-After: %s read as %lld ms; want about 60000", date,
                 (long long)o.retry_after_ms);
}

static void test_classify_transport_errors(void **state)
{
    (void)state;
    static const struct {
        int error;
        const char *text;
        int verdict;
    } cases[] = {
        {HL_XERR_TIMEOUT, "Operation timed out after 10000 milliseconds",
         HLC_RETRY},
        {HL_XERR_DNS, "Could not resolve host: nowhere.example", HLC_RETRY},
        {HL_XERR_REFUSED, "Failed to connect to 127.0.0.1 port 9",
         HLC_RETRY},
        {HL_XERR_RESET, "Connection reset by peer", HLC_RETRY},
        {HL_XERR_TLS, "SSL certificate problem: self-signed certificate",
         HLC_RETRY},
        {HL_XERR_PROTOCOL, "Weird server reply", HLC_RETRY},
        {HL_XERR_ABORTED, "shutting down", HLC_RETRY},
        {HL_XERR_OTHER, "something else", HLC_RETRY},
        /* The SSRF guard refused the address: trying again cannot help. */
        {HL_XERR_BLOCKED, "127.0.0.1 is a loopback address", HLC_FAILED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        hl_xfer_res r = res_of(0, NULL, NULL);
        r.error = cases[i].error;
        snprintf(r.error_text, sizeof r.error_text, "%s", cases[i].text);
        hlc_outcome o;
        memset(&o, 0xa5, sizeof o);
        hl_classify_default(&r, &o);
        const char *name = hl_xfer_error_name(cases[i].error);
        assert_non_null(name);
        assert_true(name[0] != 0);
        char want[300];
        snprintf(want, sizeof want, "%s: %s", name, cases[i].text);
        if ((int)o.verdict != cases[i].verdict || strcmp(o.reason, want))
            fail_msg("error %d: %s \"%.256s\"; want %s \"%s\"", cases[i].error,
                     verdict_name((int)o.verdict), o.reason,
                     verdict_name(cases[i].verdict), want);
        assert_int_equal(o.retry_after_ms, -1);
    }
    /* A response with an error besides (a reset mid-body): the error. */
    hl_xfer_res r = res_of(200, HDRS("200 OK", ""), "partial");
    r.error = HL_XERR_RESET;
    snprintf(r.error_text, sizeof r.error_text, "closed mid-body");
    hlc_outcome o;
    hl_classify_default(&r, &o);
    assert_int_equal(o.verdict, HLC_RETRY);
}

static void test_response_accessors(void **state)
{
    (void)state;
    hl_xfer_res r = res_of(429,
                           "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n"
                           "X-Request-Id: abc\r\n\r\n",
                           "{\"error\":\"slow down\"}");
    hlc_response resp = {&r};
    assert_int_equal(A->response_status(&resp), 429);
    assert_int_equal(A->response_error(&resp), HLC_NET_NONE);
    assert_string_equal(A->response_header(&resp, "Retry-After"), "7");
    assert_string_equal(A->response_header(&resp, "retry-after"), "7");
    assert_string_equal(A->response_header(&resp, "x-request-id"), "abc");
    assert_null(A->response_header(&resp, "Location"));
    size_t len = 0;
    assert_string_equal(A->response_body(&resp, &len),
                        "{\"error\":\"slow down\"}");
    assert_int_equal(len, 21);

    hl_xfer_res e = res_of(0, NULL, NULL);
    e.error = HL_XERR_BLOCKED;
    snprintf(e.error_text, sizeof e.error_text, "10.0.0.1 is private");
    hlc_response eresp = {&e};
    assert_int_equal(A->response_status(&eresp), 0);
    assert_int_equal(A->response_error(&eresp), HLC_NET_BLOCKED);
    assert_string_equal(A->response_error_text(&eresp), "10.0.0.1 is private");
    assert_string_equal(A->response_body(&eresp, &len), "");
    assert_int_equal(len, 0);
}

/* ---- the rest of the table ---------------------------------------------- */

static void test_signing_and_base64(void **state)
{
    (void)state;
    char out[256];
    /* GitHub's documented example (see test_verify.c). */
    assert_int_equal(A->sign_hmac(HLC_SHA256, HLC_ENC_HEX, "sha256=",
                                  "It's a Secret to Everybody",
                                  "Hello, World!", 13, out, sizeof out),
                     0);
    assert_string_equal(out, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d"
                             "7586c22c46f4379c8b043e17");
    assert_int_equal(A->sign_hmac(99, HLC_ENC_HEX, NULL, "s", "b", 1, out,
                                  sizeof out),
                     HL_ERANGE);
    /* Standard Webhooks' reference vector. */
    const char *sw[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(A->sign_standard_webhooks(
                         sw, 1, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                         body, strlen(body), out, sizeof out),
                     0);
    assert_string_equal(out, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

    assert_int_equal(A->base64("user:pw", 7, out, sizeof out), 0);
    assert_string_equal(out, "dXNlcjpwdw==");
    assert_int_equal(A->base64("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(A->base64("user:pw", 7, out, 12), HL_ETOOBIG);
    assert_int_equal(A->base64("user:pw", 7, out, 13), 0);
}

static void test_kv_without_store(void **state)
{
    (void)state;
    hlc_instance inst;
    memset(&inst, 0, sizeof inst);
    inst.name = "pager";
    char *v = (char *)"x";
    assert_int_equal(A->kv_get(&inst, "k", &v), HL_ENOTFOUND);
    assert_null(v);
    assert_int_equal(A->kv_put(&inst, "k", "v"), HL_ESTORE);
    assert_int_equal(A->kv_del(&inst, "k"), HL_ESTORE);
}

static void test_log_names_the_connector(void **state)
{
    (void)state;
    g.log = tmpfile();
    assert_non_null(g.log);
    hl_log_set_stream(g.log);
    hl_log_setup(HL_LOG_INFO, HL_LOG_TEXT);
    hlc_instance inst;
    memset(&inst, 0, sizeof inst);
    inst.name = "pager";
    A->log(&inst, HLC_LOG_WARN, "slow destination", "status", "503", "why",
           "a b", NULL);
    A->log(&inst, HLC_LOG_DEBUG, "not shown at info", NULL);
    A->log(NULL, HLC_LOG_ERROR, "no instance", "k", NULL, NULL);
    fflush(g.log);
    rewind(g.log);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, g.log);
    buf[n] = 0;
    const char *line1 = strstr(buf, "WARN  connector: slow destination "
                                    "connector=pager status=503 why=\"a b\"\n");
    if (!line1)
        fail_msg("log:\n%s", buf);
    assert_null(strstr(buf, "not shown"));
    assert_non_null(strstr(buf, "ERROR connector: no instance connector=? k="));
}

static void test_alloc_is_zeroed(void **state)
{
    (void)state;
    unsigned char *p = A->alloc(64);
    assert_non_null(p);
    for (int i = 0; i < 64; i++)
        assert_int_equal(p[i], 0);
    p = A->realloc(p, 128);
    assert_non_null(p);
    A->free(p);
    void *z = A->alloc(0);
    assert_non_null(z);
    A->free(z);
    assert_int_equal(A->abi_version, HLC_ABI_VERSION);
    assert_int_equal(A->struct_size, sizeof(hlc_api));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_json_pointer_rfc6901),
        T(test_json_pointer_arrays),
        T(test_json_pointer_missing_and_malformed),
        T(test_json_read_accessors),
        T(test_json_key_at_in_insertion_order),
        T(test_json_build_set_replace_del),
        T(test_json_set_append_take_ownership_on_failure),
        T(test_json_strings_must_be_utf8),
        T(test_json_dump_parse_round_trip),
        T(test_text_truncate_ascii),
        T(test_text_truncate_fits_exactly),
        T(test_text_truncate_utf8_never_cuts_a_character),
        T(test_text_truncate_max_smaller_than_ellipsis),
        T(test_template_json_escaping),
        T(test_template_html_and_none),
        T(test_template_compile_error),
        T(test_request_http_methods_and_schemes),
        T(test_request_header_refuses_injection),
        T(test_request_body_and_tls),
        T(test_request_idempotency_header),
        T(test_request_smtp),
        T(test_config_strings_and_defaults),
        T(test_config_int_durations_sizes_bools),
        T(test_config_has_nested),
        T(test_config_count_items_map_and_list),
        T(test_retry_after_delta_seconds),
        T(test_retry_after_http_date),
        T(test_retry_after_garbage),
        T(test_classify_default_statuses),
        T(test_classify_retry_after),
        T(test_classify_transport_errors),
        T(test_response_accessors),
        T(test_signing_and_base64),
        T(test_kv_without_store),
        T(test_log_names_the_connector),
        T(test_alloc_is_zeroed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
