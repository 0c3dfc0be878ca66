/* fuzz_template.c - libFuzzer target: a template compiles or fails with a
 * message, renders in every escaping mode without a crash or a leak, and in
 * JSON mode a template whose own text is JSON-safe always gives a valid JSON
 * string. Input: template bytes, NUL, JSON context (also the partials). */
#include "template.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The context: the JSON after the NUL, plus "raw", the template's bytes as
 * an unchecked string, so invalid UTF-8 reaches the escaping. */
static json_t *context(const char *in, size_t size, size_t tlen)
{
    json_error_t e;
    json_t *ctx = NULL;
    if (tlen < size)
        ctx = json_loadb(in + tlen + 1, size - tlen - 1,
                         JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!ctx)
        ctx = json_object();
    if (ctx && json_is_object(ctx) &&
        json_object_set_new(ctx, "raw", json_stringn_nocheck(in, tlen)))
        abort();
    return ctx;
}

static void render(const hl_template *t, json_t *ctx, hl_escape esc, char **out,
                   size_t *len)
{
    char err[256];
    int rc = hl_template_render(t, ctx, json_is_object(ctx) ? ctx : NULL, esc,
                                out, len, err, sizeof err);
    if (rc && (*out || *len || !err[0]))
        abort();
    if (!rc && (!*out || (*out)[*len]))
        abort();
}

/* The template with everything that could put non-JSON text in the output
 * neutralised: quotes, backslashes, control bytes, raw and partial tags,
 * delimiter changes. NULL if what is left is not a JSON string's inside
 * (invalid UTF-8): then nothing is promised. */
static char *json_safe(const char *in, size_t len)
{
    char *s = malloc(len + 3);
    if (!s)
        return NULL;
    s[0] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int bad = c < 0x20 || strchr("\"\\&=>", c);
        s[i + 1] = bad ? '_' : (char)c;
        if (c == '{' && i >= 2 && s[i] == '{' && s[i - 1] == '{')
            s[i + 1] = '_';
    }
    s[len + 1] = '"';
    s[len + 2] = 0;
    json_error_t e;
    json_t *str = json_loads(s, JSON_DECODE_ANY, &e);
    int ok = json_is_string(str);
    json_decref(str);
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

static void check_json_mode(const char *in, size_t tlen, json_t *ctx)
{
    char *safe = json_safe(in, tlen);
    hl_template *t = NULL;
    char err[256], *out = NULL;
    size_t len = 0;
    if (!safe || hl_template_compile(safe + 1, tlen, &t, err, sizeof err))
        goto out;
    render(t, ctx, HL_ESC_JSON, &out, &len);
    if (!out)
        goto out;
    char *doc = malloc(len + 3);
    if (!doc)
        goto out;
    doc[0] = '"';
    memcpy(doc + 1, out, len);
    memcpy(doc + 1 + len, "\"", 2);
    json_error_t e;
    json_t *str =
        json_loadb(doc, len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!json_is_string(str))
        abort();
    json_decref(str);
    free(doc);
out:
    free(out);
    hl_template_destroy(t);
    free(safe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nul = memchr(in, 0, size);
    size_t tlen = nul ? (size_t)(nul - in) : size;
    json_t *ctx = context(in, size, tlen);
    hl_template *t = NULL;
    char err[256] = "";
    int rc = hl_template_compile(in, tlen, &t, err, sizeof err);
    if (rc && (t || !err[0]))
        abort();
    for (int esc = HL_ESC_HTML; !rc && esc <= HL_ESC_NONE; esc++) {
        char *out = NULL;
        size_t len = 0;
        render(t, ctx, (hl_escape)esc, &out, &len);
        free(out);
    }
    hl_template_destroy(t);
    check_json_mode(in, tlen, ctx);
    json_decref(ctx);
    return 0;
}
