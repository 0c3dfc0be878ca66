/* engine.h - the running daemon: loop, listener, signals, reload, shutdown. */
#ifndef HL_ENGINE_H
#define HL_ENGINE_H

#include "config.h"
#include "map.h"

/* How long SIGINT/SIGTERM waits for requests in flight before closing. */
#define HL_SHUTDOWN_GRACE_MS 10000

/*
 * Run until SIGINT or SIGTERM. Takes ownership of cfg and maps (both are
 * replaced on SIGHUP and freed on exit). config_path is re-read on SIGHUP.
 * Returns 0 after a clean shutdown, or a negative code if start-up failed
 * (the reason has been logged).
 */
int hl_engine_run_take(const char *config_path, hl_config *cfg,
                       hl_mappings *maps);

#endif
