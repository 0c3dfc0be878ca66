/* fuzz_admin.c - libFuzzer target: what the admin API parses from a request:
 * query parameters, times, and canonical events posted to POST /v1/events. A
 * completed event must pass its own check again unchanged but for the
 * attributes hookline sets. */
#include "admin.h"
#include "event.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    static const char *const names[] = {"state", "since", "a", "", "limit"};
    char out[64];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (hl_query_param(s, names[i], out, sizeof out) &&
            strlen(out) >= sizeof out)
            abort();
    int64_t t;
    hl_parse_when(s, 1764316800000, &t);
    json_t *ev = json_loadb((const char *)data, size, 0, NULL);
    char why[512];
    if (ev && !hl_event_complete(ev, "acme", "01M8GHH5Z2R2JZJG00KKSE1AZK",
                                 "c", 1764316800000, why, sizeof why)) {
        /* Completed, it is whole: every server attribute present. */
        if (!json_object_get(ev, "id") || !json_object_get(ev, "time") ||
            !json_object_get(ev, "severity") ||
            !json_object_get(json_object_get(ev, "data"), "raw"))
            abort();
        json_object_del(ev, "id");
        if (hl_event_complete(ev, "acme", "01M8GHH5Z2R2JZJG00KKSE1AZK", "c",
                              1764316800000, why, sizeof why))
            abort();
    } else if (ev && !why[0]) {
        abort(); /* refused without saying why */
    }
    json_decref(ev);
    free(s);
    return 0;
}
