/* route.h - routing: which connectors a canonical event goes to. */
#ifndef HL_ROUTE_H
#define HL_ROUTE_H

#include "config.h"

#include <jansson.h>

typedef struct hl_router hl_router;

/* Compile cfg's routes (patterns once, JIT where there). The config must
 * outlive the router. Returns 0, HL_ENOMEM or HL_ECONFIG (a pattern that
 * does not compile: config loading has checked them already). */
int hl_router_create(const hl_config *cfg, hl_router **out);
void hl_router_destroy(hl_router *r);

/*
 * The connectors a canonical event goes to: routes are tried in order; the
 * first that matches ends the search unless it says `continue: true`. A
 * connector with a tenant only takes that tenant's events; a connector is
 * listed once even when several routes name it. Writes up to cap indexes
 * into cfg->connectors into out and returns how many there are (which may
 * be more than cap). route_name, when not NULL, gets the name of the first
 * route that matched, or NULL when none did (the event is unrouted).
 */
size_t hl_route_event(const hl_router *r, json_t *event, size_t *out,
                      size_t cap, const char **route_name);

/* Shell-style glob: '*' any run, '?' one character; for event types. */
int hl_glob_match(const char *pattern, const char *text);

#endif
