/* fuzz_cli.c - libFuzzer target: what the CLI reads from a server it was
 * pointed at: stream messages turned into readable lines (which must never
 * carry a control character to the terminal), websocket handshake answers,
 * and URLs. */
#include "cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    if (!hl_cli_note_line((const char *)data, size, &b)) {
        for (size_t i = 0; i < b.len; i++)
            if ((unsigned char)b.p[i] < 0x20 || b.p[i] == 0x7f)
                abort();
    }
    hl_buf_free(&b);
    const char *why = NULL;
    int rc = hl_cli_ws_answer((const char *)data, size,
                              "dGhlIHNhbXBsZSBub25jZQ==", &why);
    if (rc == -1 && !why)
        abort();
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    hl_cli_url u;
    if (hl_cli_url_parse(s, &u, &why) == 0 &&
        (strlen(u.base) >= sizeof u.base || strlen(u.path) >= sizeof u.path))
        abort();
    free(s);
    return 0;
}
