/* test_jsontext.c - the intake's JSON validator and the shared escaping. */
#include "jsontext.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void accepts(const char *text)
{
    size_t off = 99;
    const char *why = NULL;
    if (hl_json_validate(text, strlen(text), &off, &why))
        fail_msg("refused %s: %s at %zu", text, why, off);
}

static void refuses(const char *text, size_t len, size_t want_off,
                    const char *want_why)
{
    size_t off = 0;
    const char *why = NULL;
    assert_int_equal(hl_json_validate(text, len, &off, &why), -1);
    assert_non_null(why);
    assert_string_equal(why, want_why);
    assert_int_equal(off, want_off);
}

static void test_valid_documents(void **state)
{
    (void)state;
    accepts("{}");
    accepts("[]");
    accepts(" \t\r\n{ \"a\" : [ 1 , -2.5e+3 , 0 , true , false , null ] }\n");
    accepts("\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"");
    accepts("\"\\u0000\""); /* NUL escapes are kept, as jansson allows */
    accepts("-9223372036854775808");
    accepts("9223372036854775807");
    accepts("1e308");
    accepts("1e-400"); /* underflows to 0, which jansson accepts */
    accepts("\"\xf0\x9f\x98\x80\"");
}

static void test_invalid_documents(void **state)
{
    (void)state;
    refuses("", 0, 0, "unexpected end of input");
    refuses("{\"a\":", 5, 5, "unexpected end of input");
    refuses("{\"a\" 1}", 7, 5, "expected ':'");
    refuses("{\"a\":1,}", 8, 7, "expected a string key");
    refuses("[1,]", 4, 3, "invalid token");
    refuses("[1 2]", 5, 3, "expected ',' or ']'");
    refuses("{\"a\":1 \"b\":2}", 13, 7, "expected ',' or '}'");
    refuses("{} {}", 5, 3, "end of input expected");
    refuses("01", 2, 1, "end of input expected");
    refuses("-", 1, 0, "invalid number");
    refuses("1.", 2, 0, "invalid number");
    refuses("1e+", 3, 0, "invalid number");
    refuses("tru", 3, 0, "invalid token");
    refuses("'a'", 3, 0, "invalid token");
    refuses("\"a\tb\"", 5, 2, "control character in a string");
    refuses("\"\\x\"", 4, 1, "invalid escape");
    refuses("\"\\u12g4\"", 8, 1, "invalid escape");
    refuses("\"\\ud800\"", 8, 1, "invalid Unicode escape (unpaired surrogate)");
    refuses("\"\\udc00\"", 8, 1,
            "invalid Unicode escape (lone low surrogate)");
    refuses("\"abc", 4, 0, "unterminated string");
    refuses("\"\xc3\"", 3, 1, "invalid UTF-8");
    refuses("\"\xe0\x80\xaf\"", 5, 1, "invalid UTF-8");     /* overlong */
    refuses("\"\xed\xa0\x80\"", 5, 1, "invalid UTF-8");     /* surrogate */
    refuses("\"\xf4\x90\x80\x80\"", 6, 1, "invalid UTF-8"); /* > U+10FFFF */
    refuses("null\0", 5, 4, "end of input expected");
    refuses("9223372036854775808", 19, 0, "too big integer");
    refuses("1e400", 5, 0, "real number overflow");
}

static void test_nesting_limit(void **state)
{
    (void)state;
    char buf[2 * 2049 + 1];
    for (int depth = 2048; depth <= 2049; depth++) {
        memset(buf, '[', (size_t)depth);
        memset(buf + depth, ']', (size_t)depth);
        size_t off;
        const char *why;
        int rc = hl_json_validate(buf, 2 * (size_t)depth, &off, &why);
        if (depth == 2048) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(why, "maximum nesting depth reached");
            assert_int_equal(off, 2048);
        }
    }
}

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(hl_json_escape(out, sizeof out, "a\"b\\c\n\x01"), 15);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
    /* Valid UTF-8 passes; broken bytes become U+FFFD. */
    hl_json_escape(out, sizeof out, "caf\xc3\xa9 \xff \xc3");
    assert_string_equal(out, "caf\xc3\xa9 \\ufffd \\ufffd");
    /* Cut short: the result stays terminated and never ends mid-escape. */
    char small[6];
    assert_int_equal(hl_json_escape(small, sizeof small, "ab\"cd"), 6);
    assert_string_equal(small, "ab\\\"c");
    assert_int_equal(hl_json_escape(small, sizeof small, "abcd\n"), 6);
    assert_string_equal(small, "abcd");
    assert_int_equal(hl_json_escape(NULL, 0, "\x01"), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
