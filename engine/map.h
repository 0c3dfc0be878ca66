/* map.h - source mappings: schemas/sources/<kind>.yaml turn a stored webhook into canonical events. */
#ifndef HL_MAP_H
#define HL_MAP_H

#include "config.h"
#include "diag.h"
#include "queue.h"

#include <jansson.h>

/*
 * A mapping file is declarative (see schemas/sources/README.md): how one
 * payload splits into items, and how each canonical field is computed from
 * the body, the item, the kept headers and the source, with JSON Pointers,
 * Mustache templates, PCRE2 captures, lookup tables and ordered rules. A new
 * kind needs a YAML file, not C.
 */
typedef struct hl_mappings hl_mappings;
typedef struct hl_mapping hl_mapping;

/* Load every <kind>.yaml of dir. Every problem goes to d with its
 * file:line:col; returns 0, or HL_ECONFIG (or -errno for the folder) with
 * *out NULL. */
int hl_mappings_load(const char *dir, hl_diags *d, hl_mappings **out);
const hl_mapping *hl_mappings_get(const hl_mappings *m, const char *kind);
size_t hl_mappings_count(const hl_mappings *m);
void hl_mappings_destroy(hl_mappings *m);

/*
 * Normalize one stored webhook of source src with mapping m. On success
 * *events is a new JSON array of canonical events (CloudEvents 1.0 with
 * hookline's extensions, schemas/event.v1.json). On failure returns
 * HL_ESYNTAX (the payload does not fit the mapping: not JSON, nothing to
 * split, a computed value out of its domain) and why says what and where;
 * the raw webhook stays as it was, to be normalized again later.
 */
int hl_map_apply(const hl_mapping *m, const hl_source_cfg *src,
                 const hl_inbound *ev, json_t **events, char *why,
                 size_t whylen);

/*
 * Where data.raw of event `index` (from 0) sits in the webhook's body, as a
 * JSON Pointer ("" for the whole body), so that storage need not keep the
 * payload twice. Returns 0, or -1 when the split is not a plain pointer into
 * the body (then data.raw must be kept with the event).
 */
int hl_map_raw_pointer(const hl_mapping *m, size_t index, char *out,
                       size_t cap);

#endif
