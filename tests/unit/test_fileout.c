/* test_fileout.c - file outputs: appends, size-based rotation, errors that say where. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fileout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hl-fileout-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The whole file as a string ("" when missing). */
static const char *slurp(const char *name)
{
    static char buf[4096];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void append(const char *line, uint64_t max, uint32_t keep)
{
    char path[256], why[256] = "";
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    assert_int_equal(hl_file_append(path, line, strlen(line), max, keep, why,
                                    sizeof why),
                     0);
    assert_string_equal(why, "");
}

static void test_appends(void **state)
{
    (void)state;
    append("{\"n\":1}\n", 0, 0);
    append("{\"n\":2}\n", 0, 0);
    assert_string_equal(slurp("out.jsonl"), "{\"n\":1}\n{\"n\":2}\n");
    struct stat st;
    char path[256];
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    assert_int_equal(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
}

static void test_rotates_keeping_n(void **state)
{
    (void)state;
    /* 8-byte records, 16 bytes a file: two records each. */
    const char *rec[] = {"aaaaaaa\n", "bbbbbbb\n", "ccccccc\n", "ddddddd\n",
                         "eeeeeee\n", "fffffff\n", "ggggggg\n"};
    for (int i = 0; i < 7; i++)
        append(rec[i], 16, 2);
    assert_string_equal(slurp("out.jsonl"), "ggggggg\n");
    assert_string_equal(slurp("out.jsonl.1"), "eeeeeee\nfffffff\n");
    assert_string_equal(slurp("out.jsonl.2"), "ccccccc\nddddddd\n");
    assert_string_equal(slurp("out.jsonl.3"), ""); /* beyond keep: gone */
}

static void test_keep_zero_starts_over(void **state)
{
    (void)state;
    append("0123456789\n", 12, 0);
    append("abcdefghij\n", 12, 0);
    assert_string_equal(slurp("out.jsonl"), "abcdefghij\n");
    assert_string_equal(slurp("out.jsonl.1"), "");
}

static void test_a_record_larger_than_the_limit_is_written_whole(void **state)
{
    (void)state;
    append("small\n", 8, 1);
    append("a record longer than the limit\n", 8, 1);
    assert_string_equal(slurp("out.jsonl"), "a record longer than the limit\n");
    assert_string_equal(slurp("out.jsonl.1"), "small\n");
}

static void test_errors_name_the_file(void **state)
{
    (void)state;
    char path[256], why[256];
    snprintf(path, sizeof path, "%s/missing/out.jsonl", dir);
    int rc = hl_file_append(path, "x\n", 2, 0, 0, why, sizeof why);
    assert_int_equal(rc, -ENOENT);
    char want[400];
    snprintf(want, sizeof want, "cannot open %s: No such file or directory",
             path);
    assert_string_equal(why, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotates_keeping_n, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keep_zero_starts_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_record_larger_than_the_limit_is_written_whole, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_file, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
