/* fuzz_map.c - libFuzzer target: every shipped source mapping, over any body,
 * either refuses the payload with a reason or yields canonical events that
 * have every field schemas/event.v1.json requires. */
#include "config.h"
#include "diag.h"
#include "err.h"
#include "map.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID "01M8G49QRBSP2991E0W2GJFV6G"

static hl_mappings *g_maps;
static char g_kinds[32][64];
static size_t g_nkinds;

/*
 * The first byte b picks the kind (b % kinds) and, with what is left
 * (b / kinds), the request: one of eight header sets, and a form-encoded
 * body when bit 3 is set.
 */
static const char *const headers[8] = {
    "{\"x-github-event\": \"issues\", \"sentry-hook-resource\": \"issue\"}",
    "{\"x-github-event\": \"pull_request\", \"sentry-hook-resource\": "
    "\"event_alert\"}",
    "{\"x-github-event\": \"push\", \"sentry-hook-resource\": "
    "\"metric_alert\"}",
    "{\"x-github-event\": \"workflow_run\", \"sentry-hook-resource\": "
    "\"error\"}",
    "{\"x-github-event\": \"check_run\", \"sentry-hook-resource\": "
    "\"installation\"}",
    "{\"x-github-event\": \"release\", \"x-thing\": \"\"}",
    "{\"x-github-event\": \"issue_comment\"}",
    "{}",
};

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("HL_MAPPINGS");
    if (!dir || !*dir)
        dir = "schemas/sources";
    hl_diags d = {0};
    if (hl_mappings_load(dir, &d, &g_maps)) {
        hl_diags_print(&d, stderr);
        fprintf(stderr,
                "fuzz_map: cannot load %s (run from the repository "
                "root, or set HL_MAPPINGS)\n",
                dir);
        abort();
    }
    hl_diags_free(&d);
    DIR *dh = opendir(dir);
    struct dirent *de;
    while (dh && (de = readdir(dh)) && g_nkinds < 32) {
        size_t n = strlen(de->d_name);
        if (n > 5 && n < 64 && de->d_name[0] != '.' &&
            !strcmp(de->d_name + n - 5, ".yaml")) {
            memcpy(g_kinds[g_nkinds], de->d_name, n - 5);
            g_kinds[g_nkinds++][n - 5] = 0;
        }
    }
    if (dh)
        closedir(dh);
    qsort(g_kinds, g_nkinds, sizeof *g_kinds, by_name);
    if (!g_nkinds || g_nkinds != hl_mappings_count(g_maps))
        abort();
    return 0;
}

static const char *str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Present and non-empty, or absent; never empty or another kind. */
static void optional_text(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (v && (!json_is_string(v) || !json_string_length(v)))
        abort();
}

/* [a-z0-9_]+ words joined by single dots. */
static int is_type(const char *s)
{
    int words = 0;
    while (*s) {
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (!n)
            return 0;
        words++;
        s += n;
        if (*s == '.' && s[1])
            s++;
        else if (*s)
            return 0;
    }
    return words > 0;
}

/* YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|+HH:MM|-HH:MM), the schema's pattern. */
static int is_time(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return 0;
    s += sizeof shape - 1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (!strcmp(s, "Z"))
        return 1;
    return (*s == '+' || *s == '-') && isdigit((unsigned char)s[1]) &&
           isdigit((unsigned char)s[2]) && s[3] == ':' &&
           isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]) &&
           !s[6];
}

static void check_event(const json_t *e, size_t i, size_t n, const char *kind)
{
    char id[64], source[96];
    if (n > 1)
        snprintf(id, sizeof id, "%s-%zu", ID, i + 1);
    else
        snprintf(id, sizeof id, "%s", ID);
    snprintf(source, sizeof source, "/acme/%s", kind);
    const char *v;
    if (!json_is_object(e) || !(v = str(e, "specversion")) || strcmp(v, "1.0"))
        abort();
    /* one split item gives -1: a list of one is still a split */
    if (!(v = str(e, "id")) ||
        (strcmp(v, id) && (n != 1 || strcmp(v, ID "-1"))))
        abort();
    if (!(v = str(e, "source")) || strcmp(v, source))
        abort();
    if (!(v = str(e, "type")) || !is_type(v))
        abort();
    if (!(v = str(e, "time")) || !is_time(v))
        abort();
    if (!(v = str(e, "datacontenttype")) || strcmp(v, "application/json"))
        abort();
    if (!(v = str(e, "tenant")) || strcmp(v, "acme"))
        abort();
    if (!(v = str(e, "severity")) ||
        (strcmp(v, "critical") && strcmp(v, "error") && strcmp(v, "warning") &&
         strcmp(v, "info")))
        abort();
    if (!(v = str(e, "correlationid")) || strcmp(v, "c0ffee"))
        abort();
    optional_text(e, "subject");
    optional_text(e, "dedupkey");
    const json_t *data = json_object_get(e, "data");
    if (!json_is_object(data) || !(v = str(data, "title")) || !*v)
        abort();
    optional_text(data, "url");
    const json_t *status = json_object_get(data, "status");
    if (status) {
        if (!json_is_string(status) || !json_string_length(status))
            abort();
        for (const char *p = json_string_value(status); *p; p++)
            if (!islower((unsigned char)*p) && *p != '_')
                abort();
    }
    const json_t *text = json_object_get(data, "text");
    if (text && !json_is_string(text))
        abort();
    const json_t *labels = json_object_get(data, "labels");
    const char *k;
    const json_t *lv;
    if (!json_is_object(labels))
        abort();
    json_object_foreach((json_t *)labels, k, lv)
    {
        if (!json_is_string(lv))
            abort();
    }
    if (!json_object_get(data, "raw"))
        abort();
    /* nothing beside the schema's properties */
    static const char *const top[] = {"specversion",
                                      "id",
                                      "source",
                                      "type",
                                      "time",
                                      "subject",
                                      "datacontenttype",
                                      "tenant",
                                      "severity",
                                      "correlationid",
                                      "dedupkey",
                                      "data",
                                      NULL};
    static const char *const in_data[] = {"title",  "text", "status", "url",
                                          "labels", "raw",  NULL};
    json_object_foreach((json_t *)e, k, lv)
    {
        size_t j = 0;
        while (top[j] && strcmp(top[j], k))
            j++;
        if (!top[j])
            abort();
    }
    json_object_foreach((json_t *)data, k, lv)
    {
        size_t j = 0;
        while (in_data[j] && strcmp(in_data[j], k))
            j++;
        if (!in_data[j])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    unsigned b = data[0];
    const char *kind = g_kinds[b % g_nkinds];
    unsigned variant = b / (unsigned)g_nkinds;
    const hl_mapping *m = hl_mappings_get(g_maps, kind);
    if (!m)
        abort();
    hl_source_cfg src = {.name = kind, .tenant = "acme", .kind = kind};
    hl_inbound ev = {
        .tenant = "acme",
        .source = kind,
        .content_type = variant & 8 ? "application/x-www-form-urlencoded"
                                    : "application/json",
        .correlation_id = "c0ffee",
        .headers_json = headers[variant % 8],
        .body = data + 1,
        .body_len = size - 1,
        .received_ms = INT64_C(1764300000000),
    };
    memcpy(ev.id, ID, sizeof ID);
    json_t *events = (json_t *)1;
    char why[512];
    int rc = hl_map_apply(m, &src, &ev, &events, why, sizeof why);
    if (rc) {
        if ((rc != HL_ESYNTAX && rc != HL_ENOMEM) || events || !why[0])
            abort();
        return 0;
    }
    if (!json_is_array(events) || !json_array_size(events))
        abort();
    size_t n = json_array_size(events);
    for (size_t i = 0; i < n; i++)
        check_event(json_array_get(events, i), i, n, kind);
    json_decref(events);
    return 0;
}
