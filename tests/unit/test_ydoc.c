/* test_ydoc.c - the YAML node tree (positions, anchors, limits, ${...} expansion) and the diagnostics it reports through. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "diag.h"
#include "err.h"
#include "ydoc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a test loaded, freed by the teardown even when an assertion fails. */
static hl_diags g_diags;
static hl_ydoc *g_doc;
static char g_text[8192];

static int teardown(void **state)
{
    (void)state;
    hl_ydoc_destroy(g_doc);
    g_doc = NULL;
    hl_diags_free(&g_diags);
    return 0;
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_MSGS ((const char *const[]){NULL})

static void assert_diags(const hl_diags *d, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    char buf[2048];
    if (d->n != n) {
        print_message("expected %zu messages, got:\n", n);
        for (size_t i = 0; i < d->n; i++) {
            hl_diag_format(&d->v[i], buf, sizeof buf);
            print_message("  %s\n", buf);
        }
    }
    assert_int_equal(d->n, n);
    for (size_t i = 0; i < n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        assert_string_equal(buf, want[i]);
    }
}

/* Load text as "t.yaml" with flags; assert the return code and messages.
 * Returns the root (NULL for an empty document or a failed load). */
static const hl_ynode *load(const char *text, unsigned flags, int want_rc,
                            const char *const *want)
{
    hl_ydoc_destroy(g_doc);
    g_doc = NULL;
    hl_diags_free(&g_diags);
    int rc = hl_ydoc_load_string("t.yaml", text, strlen(text), flags,
                                 &g_diags, &g_doc);
    assert_diags(&g_diags, want);
    assert_int_equal(rc, want_rc);
    if (want_rc == HL_EYAML)
        assert_null(g_doc);
    else
        assert_non_null(g_doc);
    return g_doc ? hl_ydoc_root(g_doc) : NULL;
}

static void assert_pos(const hl_ynode *n, unsigned line, unsigned col)
{
    assert_non_null(n);
    if (n->line != line || n->col != col)
        fail_msg("node at %u:%u, expected %u:%u", n->line, n->col, line, col);
}

static void assert_scalar(const hl_ynode *n, const char *want)
{
    assert_non_null(n);
    assert_int_equal(n->type, HL_YSCALAR);
    assert_string_equal(n->u.scalar.str, want);
    assert_int_equal(n->u.scalar.len, strlen(want));
}

/* ---- tree and positions --------------------------------------------------- */

static void test_positions(void **state)
{
    (void)state;
    const hl_ynode *root = load("server:\n"
                                "  listen: 127.0.0.1:80\n"
                                "sources:\n"
                                "  gh:\n"
                                "    verify: {hmac: {secrets: [a, \"b\"]}}\n"
                                "    list:\n"
                                "      - one\n"
                                "      -   two\n"
                                "      - k: v\n",
                                0, 0, NO_MSGS);
    assert_int_equal(root->type, HL_YMAP);
    assert_pos(root, 1, 1);
    assert_int_equal(root->u.map.n, 2);
    assert_pos(root->u.map.pairs[0].key, 1, 1);
    const hl_ynode *server = hl_ynode_get(root, "server");
    assert_int_equal(server->type, HL_YMAP);
    assert_pos(server, 2, 3);
    const hl_ynode *listen = hl_ynode_get(server, "listen");
    assert_scalar(listen, "127.0.0.1:80");
    assert_pos(listen, 2, 11);
    assert_pos(server->u.map.pairs[0].key, 2, 3);
    const hl_ynode *gh = hl_ynode_get(hl_ynode_get(root, "sources"), "gh");
    const hl_ynode *verify = hl_ynode_get(gh, "verify");
    assert_pos(verify, 5, 13);
    const hl_ynode *hmac = hl_ynode_get(verify, "hmac");
    assert_pos(hmac, 5, 20);
    const hl_ynode *secrets = hl_ynode_get(hmac, "secrets");
    assert_int_equal(secrets->type, HL_YSEQ);
    assert_pos(secrets, 5, 30);
    assert_int_equal(secrets->u.seq.n, 2);
    assert_pos(secrets->u.seq.items[0], 5, 31);
    assert_true(secrets->u.seq.items[0]->u.scalar.plain);
    assert_pos(secrets->u.seq.items[1], 5, 34); /* the opening quote */
    assert_false(secrets->u.seq.items[1]->u.scalar.plain);
    const hl_ynode *list = hl_ynode_get(gh, "list");
    assert_int_equal(list->type, HL_YSEQ);
    assert_pos(list, 7, 7);
    assert_int_equal(list->u.seq.n, 3);
    assert_pos(list->u.seq.items[0], 7, 9);
    assert_pos(list->u.seq.items[1], 8, 11);
    assert_pos(list->u.seq.items[2], 9, 9);
    assert_scalar(hl_ynode_get(list->u.seq.items[2], "k"), "v");
    assert_pos(hl_ynode_get(list->u.seq.items[2], "k"), 9, 12);
    assert_null(hl_ynode_get(list, "k")); /* not a mapping */
    assert_null(hl_ynode_get(root, "absent"));
}

static void test_columns_count_characters(void **state)
{
    (void)state;
    /* "é" is two bytes but one column. */
    const hl_ynode *root = load("café: [ä, b]\n", 0, 0, NO_MSGS);
    const hl_ynode *seq = hl_ynode_get(root, "café");
    assert_pos(seq, 1, 7);
    assert_pos(seq->u.seq.items[0], 1, 8);
    assert_pos(seq->u.seq.items[1], 1, 11);
    assert_scalar(seq->u.seq.items[0], "ä");
}

static void test_empty_document(void **state)
{
    (void)state;
    assert_null(load("", 0, 0, NO_MSGS));
    assert_null(load("# nothing here\n\n", 0, 0, NO_MSGS));
    const hl_ynode *root = load("~\n", 0, 0, NO_MSGS);
    assert_true(hl_ynode_is_null(root));
    assert_string_equal(hl_ydoc_file(g_doc), "t.yaml");
}

static void test_null_and_type_names(void **state)
{
    (void)state;
    const hl_ynode *root = load("a: \nb: ~\nc: null\nd: \"null\"\ne: ''\n"
                                "f: NULL\ng: [x]\nh: {}\ni: nil\n",
                                0, 0, NO_MSGS);
    assert_true(hl_ynode_is_null(hl_ynode_get(root, "a")));
    assert_true(hl_ynode_is_null(hl_ynode_get(root, "b")));
    assert_true(hl_ynode_is_null(hl_ynode_get(root, "c")));
    assert_false(hl_ynode_is_null(hl_ynode_get(root, "d")));
    assert_false(hl_ynode_is_null(hl_ynode_get(root, "e")));
    assert_true(hl_ynode_is_null(hl_ynode_get(root, "f")));
    assert_false(hl_ynode_is_null(hl_ynode_get(root, "i")));
    assert_true(hl_ynode_is_null(hl_ynode_get(root, "zz"))); /* absent */
    assert_string_equal(hl_ynode_type_name(hl_ynode_get(root, "c")), "null");
    assert_string_equal(hl_ynode_type_name(hl_ynode_get(root, "d")),
                        "scalar");
    assert_string_equal(hl_ynode_type_name(hl_ynode_get(root, "g")), "list");
    assert_string_equal(hl_ynode_type_name(hl_ynode_get(root, "h")),
                        "mapping");
    assert_string_equal(hl_ynode_type_name(NULL), "null");
}

/* ---- YAML errors ----------------------------------------------------------- */

static void test_syntax_error(void **state)
{
    (void)state;
    load("a: b\n  c: d\n", 0, HL_EYAML,
         MSGS("t.yaml:2:4: error: YAML syntax: mapping values are not "
              "allowed in this context"));
    load("a: \"open\n", 0, HL_EYAML,
         MSGS("t.yaml:2:1: error: YAML syntax: found unexpected end of "
              "stream while scanning a quoted scalar (started at line 1)"));
}

static void test_second_document(void **state)
{
    (void)state;
    load("a: 1\n---\nb: 2\n", 0, HL_EYAML,
         MSGS("t.yaml:2:1: error: expected one YAML document, found a second "
              "one; remove the '---' line"));
    /* An explicit start of the first document is fine. */
    const hl_ynode *root = load("---\na: 1\n", 0, 0, NO_MSGS);
    assert_scalar(hl_ynode_get(root, "a"), "1");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load("a:\n  x: 1\n  y: 2\n  x: 3\n", 0, HL_EYAML,
         MSGS("t.yaml:4:3: error: duplicate key 'x' (first defined at line "
              "2); remove one of them"));
}

static void test_non_scalar_key(void **state)
{
    (void)state;
    load("? [a, b]\n: c\n", 0, HL_EYAML,
         MSGS("t.yaml:1:3: error: a mapping key must be a plain string, not "
              "a list"));
}

/* ---- anchors and aliases ------------------------------------------------------ */

static void test_anchors_and_aliases(void **state)
{
    (void)state;
    const hl_ynode *root = load("base: &b {retry: {max_attempts: 3}}\n"
                                "name: &n shared\n"
                                "p1: *b\n"
                                "p2: {policy: *b, label: *n}\n",
                                0, 0, NO_MSGS);
    const hl_ynode *base = hl_ynode_get(root, "base");
    assert_int_equal(base->type, HL_YMAP);
    assert_ptr_equal(hl_ynode_get(root, "p1"), base);
    const hl_ynode *p2 = hl_ynode_get(root, "p2");
    assert_ptr_equal(hl_ynode_get(p2, "policy"), base);
    assert_scalar(hl_ynode_get(p2, "label"), "shared");
    assert_scalar(hl_ynode_get(hl_ynode_get(hl_ynode_get(p2, "policy"),
                                            "retry"),
                               "max_attempts"),
                  "3");
    /* An anchored node starts at its '&', and an alias is that node. */
    assert_pos(base, 1, 7);
    assert_pos(hl_ynode_get(root, "p1"), 1, 7);
}

static void test_undefined_alias(void **state)
{
    (void)state;
    load("a: 1\nb: *nowhere\n", 0, HL_EYAML,
         MSGS("t.yaml:2:4: error: alias *nowhere names no complete anchor "
              "defined before it"));
    /* An alias inside the node its anchor names is not complete yet. */
    load("a: &self [1, *self]\n", 0, HL_EYAML,
         MSGS("t.yaml:1:14: error: alias *self names no complete anchor "
              "defined before it"));
}

/* ---- limits --------------------------------------------------------------------- */

static void test_nesting_limit(void **state)
{
    (void)state;
    /* 64 levels: accepted. */
    memset(g_text, 0, sizeof g_text);
    memset(g_text, '[', 64);
    memset(g_text + 64, ']', 64);
    const hl_ynode *n = load(g_text, 0, 0, NO_MSGS);
    size_t depth = 0;
    for (; n && n->type == HL_YSEQ; depth++)
        n = n->u.seq.n ? n->u.seq.items[0] : NULL;
    assert_int_equal(depth, 64);
    /* 65: refused at the 65th opening bracket. */
    memset(g_text, 0, sizeof g_text);
    memset(g_text, '[', 65);
    memset(g_text + 65, ']', 65);
    load(g_text, 0, HL_EYAML,
         MSGS("t.yaml:1:65: error: nested deeper than 64 levels"));
    /* Block style counts the same way. */
    size_t len = 0;
    for (int i = 0; i < 70; i++)
        len += (size_t)snprintf(g_text + len, sizeof g_text - len, "%*sk:\n",
                                i, "");
    load(g_text, 0, HL_EYAML,
         MSGS("t.yaml:65:65: error: nested deeper than 64 levels"));
}

static void test_reserved_characters(void **state)
{
    (void)state;
    load("a: 1\nb: \"x\xEE\x80\x80y\"\n", 0, HL_EYAML,
         MSGS("t.yaml:2:6: error: the private-use characters U+E000 and "
              "U+E001 are reserved; remove them"));
    load("# \xC3\xA9\xEE\x80\x81\n", HL_YDOC_EXPAND, HL_EYAML,
         MSGS("t.yaml:1:4: error: the private-use characters U+E000 and "
              "U+E001 are reserved; remove them"));
    /* Other private-use characters are ordinary text. */
    const hl_ynode *root = load("a: \"\xEE\x80\x82\"\n", 0, 0, NO_MSGS);
    assert_scalar(hl_ynode_get(root, "a"), "\xEE\x80\x82");
}

/* ---- ${...} -------------------------------------------------------------------- */

static void test_without_expansion_text_is_kept(void **state)
{
    (void)state;
    setenv("HL_T_YX", "expanded", 1);
    const hl_ynode *root = load("a: ${HL_T_YX}\nb: [${HL_T_YX}, x]\n"
                                "c: {k: ${HL_T_YX}}\nd: $${HL_T_YX}\n",
                                0, 0, NO_MSGS);
    assert_scalar(hl_ynode_get(root, "a"), "${HL_T_YX}");
    const hl_ynode *b = hl_ynode_get(root, "b");
    assert_int_equal(b->u.seq.n, 2);
    assert_scalar(b->u.seq.items[0], "${HL_T_YX}");
    assert_scalar(hl_ynode_get(hl_ynode_get(root, "c"), "k"), "${HL_T_YX}");
    assert_scalar(hl_ynode_get(root, "d"), "$${HL_T_YX}");
    assert_true(hl_ynode_get(root, "a")->u.scalar.plain);
    unsetenv("HL_T_YX");
}

static void test_expansion(void **state)
{
    (void)state;
    setenv("HL_T_YA", "alpha", 1);
    setenv("HL_T_YB", "", 1);
    setenv("HL_T_YNULL", "null", 1);
    const hl_ynode *root = load("a: ${HL_T_YA}\n"
                                "b: [${HL_T_YA}, \"${HL_T_YA}\", x${HL_T_YA}y]\n"
                                "c: {k: ${HL_T_YA}}\n"
                                "d: pre-${HL_T_YA}-${HL_T_YA}-post\n"
                                "e: \"[${HL_T_YB}]\"\n"
                                "f: ${HL_T_YNULL}\n"
                                "g: \"$${HL_T_YA} is ${HL_T_YA}\"\n"
                                "h: plain\n",
                                HL_YDOC_EXPAND, 0, NO_MSGS);
    assert_scalar(hl_ynode_get(root, "a"), "alpha");
    assert_false(hl_ynode_get(root, "a")->u.scalar.plain);
    const hl_ynode *b = hl_ynode_get(root, "b");
    assert_int_equal(b->type, HL_YSEQ);
    assert_int_equal(b->u.seq.n, 3);
    assert_scalar(b->u.seq.items[0], "alpha");
    assert_scalar(b->u.seq.items[1], "alpha");
    assert_scalar(b->u.seq.items[2], "xalphay");
    assert_pos(b->u.seq.items[2], 2, 31);
    assert_scalar(hl_ynode_get(hl_ynode_get(root, "c"), "k"), "alpha");
    assert_scalar(hl_ynode_get(root, "d"), "pre-alpha-alpha-post");
    assert_scalar(hl_ynode_get(root, "e"), "[]");
    /* An expanded "null" is the string null. */
    assert_scalar(hl_ynode_get(root, "f"), "null");
    assert_false(hl_ynode_is_null(hl_ynode_get(root, "f")));
    assert_string_equal(hl_ynode_type_name(hl_ynode_get(root, "f")),
                        "scalar");
    assert_scalar(hl_ynode_get(root, "g"), "${HL_T_YA} is alpha");
    assert_true(hl_ynode_get(root, "h")->u.scalar.plain);
    unsetenv("HL_T_YA");
    unsetenv("HL_T_YB");
    unsetenv("HL_T_YNULL");
}

static void test_expansion_errors(void **state)
{
    (void)state;
    unsetenv("HL_T_YUNSET");
    setenv("HL_T_YA", "alpha", 1);
    const hl_ynode *root = load(
        "a: ${HL_T_YUNSET}\n"
        "b: [ok, ${HL_T_YA}, ${HL_T_YUNSET}]\n"
        "c: \"${HL_T_YA}${HL_T_YUNSET}\"\n"
        "d: ${not valid}\n"
        "e: ${file:/nonexistent/hl-test/secret}\n"
        "f: |\n  text\n  more ${HL_T_YUNSET} text\n",
        HL_YDOC_EXPAND, HL_ECONFIG,
        MSGS("t.yaml:1:4: error: environment variable HL_T_YUNSET is not set "
             "(export it, or put the value in a file and use ${file:PATH})",
             "t.yaml:2:21: error: environment variable HL_T_YUNSET is not set "
             "(export it, or put the value in a file and use ${file:PATH})",
             "t.yaml:3:15: error: environment variable HL_T_YUNSET is not set "
             "(export it, or put the value in a file and use ${file:PATH})",
             "t.yaml:4:4: error: '${not valid}' is not a valid reference: use "
             "${NAME} for an environment variable, ${file:PATH} for a file's "
             "contents, or $${ for a literal ${",
             "t.yaml:5:4: error: ${file:/nonexistent/hl-test/secret}: cannot "
             "read the file: No such file or directory",
             "t.yaml:8:8: error: environment variable HL_T_YUNSET is not set "
             "(export it, or put the value in a file and use "
             "${file:PATH})"));
    /* The tree is still built, so later checks can run. */
    assert_non_null(root);
    assert_scalar(hl_ynode_get(root, "c"), "alpha");
    assert_int_equal(hl_ynode_get(root, "b")->u.seq.n, 3);
    unsetenv("HL_T_YA");
}

static void test_file_expansion(void **state)
{
    (void)state;
    char path[] = "/tmp/hl_test_ydoc_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char content[] = "top secret\n\n";
    assert_int_equal(write(fd, content, sizeof content - 1),
                     (ssize_t)(sizeof content - 1));
    close(fd);
    snprintf(g_text, sizeof g_text, "a: ${file:%s}\nb: [\"<${file:%s}>\"]\n",
             path, path);
    char text[sizeof g_text];
    memcpy(text, g_text, sizeof text);
    const hl_ynode *root = load(text, HL_YDOC_EXPAND, 0, NO_MSGS);
    unlink(path);
    /* Only one trailing newline is dropped. */
    assert_scalar(hl_ynode_get(root, "a"), "top secret\n");
    assert_scalar(hl_ynode_get(root, "b")->u.seq.items[0], "<top secret\n>");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/hl_test_ydoc_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char content[] = "a:\n  b: [1, 2]\n";
    assert_int_equal(write(fd, content, sizeof content - 1),
                     (ssize_t)(sizeof content - 1));
    close(fd);
    hl_diags_free(&g_diags);
    int rc = hl_ydoc_load_file(path, 0, &g_diags, &g_doc);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(g_diags.n, 0);
    assert_string_equal(hl_ydoc_file(g_doc), path);
    const hl_ynode *b = hl_ynode_get(hl_ynode_get(hl_ydoc_root(g_doc), "a"),
                                     "b");
    assert_pos(b, 2, 6);
    assert_scalar(b->u.seq.items[1], "2");

    hl_ydoc *doc = (hl_ydoc *)1;
    rc = hl_ydoc_load_file("/nonexistent/hl-test/x.yaml", 0, &g_diags, &doc);
    assert_int_equal(rc, -ENOENT);
    assert_null(doc);
    assert_diags(&g_diags, MSGS("/nonexistent/hl-test/x.yaml: error: cannot "
                                "open the file: No such file or directory"));
}

/* ---- diagnostics ---------------------------------------------------------------- */

static void test_diag_format(void **state)
{
    (void)state;
    hl_diags *d = &g_diags;
    hl_diags_add(d, HL_DIAG_ERROR, "f.yaml", 3, 14, "server.listen",
                 "expected %s, got '%s'", "HOST:PORT", "x");
    hl_diags_add(d, HL_DIAG_WARNING, "f.yaml", 7, 1, NULL, "no path");
    hl_diags_add(d, HL_DIAG_ERROR, "f.yaml", 0, 0, "a.b", "no position");
    hl_diags_add(d, HL_DIAG_ERROR, NULL, 0, 0, NULL, "bare");
    hl_diags_add(d, HL_DIAG_WARNING, "f.yaml", 2, 2, "", "empty path");
    assert_int_equal(d->errors, 3);
    assert_int_equal(d->warnings, 2);
    assert_diags(d, MSGS("f.yaml:3:14: error: server.listen: expected "
                         "HOST:PORT, got 'x'",
                         "f.yaml:7:1: warning: no path",
                         "f.yaml: error: a.b: no position", "error: bare",
                         "f.yaml:2:2: warning: empty path"));
    /* A short buffer is still terminated. */
    char small[12];
    hl_diag_format(&d->v[0], small, sizeof small);
    assert_string_equal(small, "f.yaml:3:14");
}

static void test_diags_move_and_print(void **state)
{
    (void)state;
    hl_diags src = {0};
    hl_diags_add(&g_diags, HL_DIAG_WARNING, "a", 1, 1, NULL, "first");
    hl_diags_add(&src, HL_DIAG_ERROR, "b", 2, 3, "p", "second");
    hl_diags_add(&src, HL_DIAG_WARNING, "b", 4, 5, NULL, "third");
    hl_diags_move(&g_diags, &src);
    assert_int_equal(src.n, 0);
    assert_null(src.v);
    assert_int_equal(g_diags.errors, 1);
    assert_int_equal(g_diags.warnings, 2);
    assert_diags(&g_diags, MSGS("a:1:1: warning: first",
                                "b:2:3: error: p: second",
                                "b:4:5: warning: third"));
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    hl_diags_print(&g_diags, f);
    fclose(f);
    assert_string_equal(out, "a:1:1: warning: first\nb:2:3: error: p: "
                             "second\nb:4:5: warning: third\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_positions, teardown),
        cmocka_unit_test_teardown(test_columns_count_characters, teardown),
        cmocka_unit_test_teardown(test_empty_document, teardown),
        cmocka_unit_test_teardown(test_null_and_type_names, teardown),
        cmocka_unit_test_teardown(test_syntax_error, teardown),
        cmocka_unit_test_teardown(test_second_document, teardown),
        cmocka_unit_test_teardown(test_duplicate_key, teardown),
        cmocka_unit_test_teardown(test_non_scalar_key, teardown),
        cmocka_unit_test_teardown(test_anchors_and_aliases, teardown),
        cmocka_unit_test_teardown(test_undefined_alias, teardown),
        cmocka_unit_test_teardown(test_nesting_limit, teardown),
        cmocka_unit_test_teardown(test_reserved_characters, teardown),
        cmocka_unit_test_teardown(test_without_expansion_text_is_kept,
                                  teardown),
        cmocka_unit_test_teardown(test_expansion, teardown),
        cmocka_unit_test_teardown(test_expansion_errors, teardown),
        cmocka_unit_test_teardown(test_file_expansion, teardown),
        cmocka_unit_test_teardown(test_load_file, teardown),
        cmocka_unit_test_teardown(test_diag_format, teardown),
        cmocka_unit_test_teardown(test_diags_move_and_print, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
