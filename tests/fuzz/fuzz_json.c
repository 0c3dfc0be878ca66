/* fuzz_json.c - libFuzzer target: the intake's JSON validator must agree
 * with jansson, the parser that reads the event later; and
 * escaping must always give valid JSON text. */
#include "jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off;
    const char *why;
    int ours = hl_json_validate((const char *)data, size, &off, &why) == 0;
    json_error_t err;
    json_t *doc = json_loadb((const char *)data, size,
                             JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    /* Whatever intake accepts must parse later. The other way round, jansson
     * stops reading at a raw NUL byte and accepts what came before it, which
     * intake rightly refuses; otherwise the two agree. */
    if (ours && !doc)
        abort();
    if (!ours && doc && !memchr(data, 0, size))
        abort();
    if (!ours && off > size)
        abort();
    json_decref(doc);

    /* Escaping any bytes (up to the first NUL) as a JSON string's inside
     * gives a string jansson reads back. */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    size_t need = hl_json_escape(NULL, 0, s);
    char *quoted = malloc(need + 3);
    if (quoted) {
        quoted[0] = '"';
        hl_json_escape(quoted + 1, need + 1, s);
        quoted[need + 1] = '"';
        quoted[need + 2] = 0;
        json_t *str = json_loads(quoted, JSON_DECODE_ANY, &err);
        if (!str || !json_is_string(str))
            abort();
        json_decref(str);
        free(quoted);
    }
    free(s);
    return 0;
}
