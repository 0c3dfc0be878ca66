/* fuzz_config.c - libFuzzer target: any bytes as hookline.yaml must load or
 * be refused with diagnostics, never crash, leak or hang. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl_diags d = {0};
    hl_config *cfg = NULL;
    int rc = hl_config_load_string("fuzz.yaml", (const char *)data, size, &d,
                                   &cfg);
    /* A refused file always says why; an accepted one has no errors. */
    if ((rc != 0) != (d.errors != 0) || (rc == 0) != (cfg != NULL))
        abort();
    for (size_t i = 0; i < d.n; i++) {
        char line[2048];
        hl_diag_format(&d.v[i], line, sizeof line);
    }
    hl_config_destroy(cfg);
    hl_diags_free(&d);
    return 0;
}
