/* engine.h - the running daemon: loop, listener, signals, reload, shutdown. */
#ifndef HL_ENGINE_H
#define HL_ENGINE_H

#include "config.h"
#include "diag.h"
#include "map.h"
#include "plugin.h"

/* How long SIGINT/SIGTERM waits for requests in flight before closing. */
#define HL_SHUTDOWN_GRACE_MS 10000

/* How long shutdown waits for deliveries in flight before giving them
 * back to the queue unsent. */
#define HL_DISPATCH_GRACE_MS 5000

/* Everything a configuration file brings: the config, the source mappings
 * and the connector instances. */
typedef struct {
    hl_config *cfg;
    hl_mappings *maps;
    hl_plugins *plugins;
} hl_loaded;

/* Load and check it all (the same for check, run and reload): every problem
 * goes to d. 0 with everything set, or a negative code with nothing. */
int hl_engine_load(const char *path, hl_diags *d, hl_loaded *out);
void hl_loaded_free(hl_loaded *l);

/*
 * Run until SIGINT or SIGTERM. Takes ownership of what l holds (replaced
 * on SIGHUP, freed on exit). config_path is re-read on SIGHUP. Returns 0
 * after a clean shutdown, or a negative code if start-up failed (the
 * reason has been logged).
 */
int hl_engine_run_take(const char *config_path, hl_loaded *l);

#endif
