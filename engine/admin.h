/* admin.h - the admin API: who is asking, and the /v1 routes that inspect and repair. */
#ifndef HL_ADMIN_H
#define HL_ADMIN_H

#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "queue.h"

#include <uv.h>

/* Who a request speaks for: the admin token sees everything, a tenant's
 * token only that tenant. */
typedef struct {
    int admin;
    char tenant[80]; /* when not admin */
} hl_principal;

/*
 * The token of req (Authorization: Bearer, or the access_token query
 * parameter when allow_query) checked in constant time against admin.token
 * and every tenant's token. 0 and *who; or req has been answered (401, or
 * 403 when no token is configured at all) and -1.
 */
int hl_admin_auth(const hl_config *cfg, hl_http_req *req, int allow_query,
                  hl_principal *who);

/* The value of query parameter name, URL-decoded into out; 1 when present. */
int hl_query_param(const char *query, const char *name, char *out,
                   size_t cap);

/* "2026-11-28T07:00:00Z", "15m" (that long ago) or milliseconds since the
 * epoch -> milliseconds since the epoch. 0 or HL_ESYNTAX. */
int hl_parse_when(const char *s, int64_t now_ms, int64_t *out);

typedef struct hl_admin hl_admin;

/* q, the dispatcher and the loop are borrowed; cfg is retained. */
int hl_admin_create(uv_loop_t *loop, hl_queue *q, hl_config *cfg,
                    hl_admin **out);
void hl_admin_set_config(hl_admin *a, hl_config *cfg);
void hl_admin_set_dispatcher(hl_admin *a, hl_dispatcher *d);
/* Answer a request under /v1/events, /v1/deliveries, /v1/replay,
 * /v1/normalize or /v1/connectors. */
void hl_admin_handle(hl_admin *a, hl_http_req *req);
/* GET /metrics: the store's depth is read off the loop. */
void hl_admin_metrics(hl_admin *a, hl_http_req *req);
/* Purge what is past storage.retention, a batch at a time, off the loop;
 * runs every interval_ms until hl_admin_destroy. */
void hl_admin_start_retention(hl_admin *a, uint64_t interval_ms);
/* Requests answered from the thread pool and not yet answered. */
size_t hl_admin_busy(const hl_admin *a);
/* Stop the retention timer; call on the loop once nothing is busy. */
void hl_admin_close(hl_admin *a);
void hl_admin_destroy(hl_admin *a);

#endif
