/* fuzz_response.c - libFuzzer target: what a destination answers (header
 * block, Retry-After, body) is read without crashing, and classifying it
 * always gives one of the outcomes. */
#include "client.h"
#include "sdk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first two bytes pick the status; the rest up to a blank line is
     * the header block, what follows the body. */
    if (size < 2)
        return 0;
    int status = 100 + (data[0] << 8 | data[1]) % 500;
    data += 2;
    size -= 2;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    char *body = strstr(copy, "\r\n\r\n");
    size_t body_len = 0;
    if (body) {
        *body = 0;
        body += 4;
        body_len = size - (size_t)(body - copy);
    }
    hl_xfer_res res;
    memset(&res, 0, sizeof res);
    res.status = status;
    res.headers = copy;
    res.body = body ? body : "";
    res.body_len = body_len;
    char out[256];
    static const char *const names[] = {"Retry-After", "Content-Type",
                                        "retry-after", "X", ""};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = hl_xfer_header(&res, names[i], out, sizeof out);
        if (v && strlen(v) >= sizeof out)
            abort();
        if (v)
            (void)hl_retry_after_ms(v, 1790000000000);
    }
    (void)hl_retry_after_ms(copy, 1790000000000);
    hlc_outcome o;
    memset(&o, 0, sizeof o);
    hl_classify_default(&res, &o);
    if (o.verdict < HLC_DELIVERED || o.verdict > HLC_DISABLE)
        abort();
    if (!memchr(o.reason, 0, sizeof o.reason))
        abort();
    free(copy);
    return 0;
}
