/* intake.h - POST /v1/hooks/{source}: validate, persist, answer. */
#ifndef HL_INTAKE_H
#define HL_INTAKE_H

#include "config.h"
#include "http.h"
#include "queue.h"

typedef struct hl_intake hl_intake;

/* q is borrowed and must outlive the intake. */
int hl_intake_create(hl_queue *q, hl_config *cfg, hl_intake **out);
/* Use cfg for requests from now on (takes a reference); requests in flight
 * finish with the configuration they started with. */
void hl_intake_set_config(hl_intake *in, hl_config *cfg);
/* From now on answer 503 with Retry-After. */
void hl_intake_stop(hl_intake *in);
/* req is a POST (or not) to /v1/hooks/<source>; answers it, now or once the
 * event is durable. */
void hl_intake_handle(hl_intake *in, hl_http_req *req, const char *source);
void hl_intake_destroy(hl_intake *in);

/* The request headers worth keeping for the mappings, as a JSON object with
 * lowercase names: never credentials, signatures or hop-by-hop headers.
 * Returns a malloc'd string or NULL. */
char *hl_intake_kept_headers(const hl_http_req *req, const char *also_drop);

#endif
