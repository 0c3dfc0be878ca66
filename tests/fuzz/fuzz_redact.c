/* fuzz_redact.c - libFuzzer target: redaction with the secrets and pii packs
 * never crashes, always leaves valid JSON, and is stable (a second pass
 * changes nothing), for JSON documents and for free text. Runs from the
 * repository root, where the packs are (policies/redact). */
#include "diag.h"
#include "redact.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [0]: both packs; [1]: both packs, then keyed hashes by path and pattern. */
static hl_redactor *g_r[2];

static hl_redactor *make(const hl_redact_rule *rules, size_t n)
{
    hl_diags d = {0};
    hl_redactor *r = NULL;
    if (hl_redactor_create(rules, n, "policies/redact",
                           (const unsigned char *)"fuzz", 4, &d, &r)) {
        hl_diags_print(&d, stderr);
        fprintf(stderr, "fuzz_redact: run from the repository root\n");
        abort();
    }
    hl_diags_free(&d);
    return r;
}

static void setup(void)
{
    hl_redact_rule rules[] = {
        {HL_REDACT_PACK, "secrets", 0, NULL},
        {HL_REDACT_PACK, "pii", 0, NULL},
        {HL_REDACT_FIELD, "**/k*", HL_REDACT_HASH, NULL},
        {HL_REDACT_FIELD, "/a/*/b", HL_REDACT_DROP, NULL},
        {HL_REDACT_PATTERN, "(?<secret>\\d{4,})", HL_REDACT_HASH, NULL},
    };
    g_r[0] = make(rules, 2);
    g_r[1] = make(rules, 5);
}

/* Free text: a result always comes back, and redacting it again keeps it. */
static void check_text(const hl_redactor *r, const char *s, size_t n)
{
    size_t n1, n2;
    char *once = hl_redact_text(r, s, n, &n1);
    if (!once)
        abort();
    char *twice = hl_redact_text(r, once, n1, &n2);
    if (!twice || n1 != n2 || memcmp(once, twice, n1) != 0)
        abort();
    free(once);
    free(twice);
}

/* A parsed document, or the input as a string inside an event. */
static json_t *document(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size,
                             JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (doc)
        return doc;
    json_t *s = json_stringn((const char *)data, size);
    if (!s)
        return NULL; /* not UTF-8: only the text check applies */
    doc = json_pack("{s:{s:O,s:{s:O,s:s},s:[O]}}", "data", "text", s, "labels",
                    "key", s, "env", "prod", "raw", s);
    json_decref(s);
    return doc;
}

static char *dump(const json_t *doc)
{
    char *s = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        abort();
    return s;
}

/* Valid JSON that reads back the same, and a second pass that finds nothing
 * more to do. */
static void check_json(const hl_redactor *r, json_t *doc)
{
    if (hl_redact_json(r, doc) < 0)
        abort();
    char *once = dump(doc);
    json_t *back = json_loads(once, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!back || !json_equal(back, doc))
        abort();
    if (hl_redact_json(r, back) != 0)
        abort();
    char *twice = dump(back);
    if (strcmp(once, twice) != 0)
        abort();
    free(once);
    free(twice);
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_r[0])
        setup();
    for (int i = 0; i < 2; i++) {
        check_text(g_r[i], (const char *)data, size);
        json_t *doc = document(data, size);
        if (doc)
            check_json(g_r[i], doc);
        json_decref(doc);
    }
    return 0;
}
