/* intake.c - POST /v1/hooks/{source}: validate, persist, answer. */
#include "intake.h"
#include "metrics.h"

#include "buf.h"
#include "err.h"
#include "id.h"
#include "jsontext.h"
#include "log.h"
#include "rate.h"
#include "redact.h"
#include "verify.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IDEM_KEY 256
#define MAX_REQUEST_ID 128

typedef struct {
    const char *source; /* points into the config it was built from */
    hl_bucket bucket;
} limiter;

struct hl_intake {
    hl_queue *queue;
    hl_config *cfg;
    hl_redactor *at_rest; /* storage.redact_at_rest, or NULL */
    limiter *limits;
    size_t n_limits;
    uint64_t inflight; /* appended, not yet committed or failed */
    int stopping;
};

static hl_metric *m_requests, *m_latency;

/* One request between its arrival and its answer. */
typedef struct {
    hl_intake *in;
    hl_http_req *req;
    hl_config *cfg; /* a reference, held until the answer */
    hl_inbound ev;
    char *headers_json;
    char *redacted_body; /* what is stored instead of the body, or NULL */
    char corr[MAX_REQUEST_ID + 1];
    uint64_t t0_ns;
} pending;

/* ---- configuration -------------------------------------------------------- */

static int build_limits(hl_intake *in, hl_config *cfg)
{
    limiter *l = calloc(cfg->n_sources ? cfg->n_sources : 1, sizeof *l);
    if (!l)
        return HL_ENOMEM;
    uint64_t now = hl_mono_us();
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const hl_source_cfg *s = &cfg->sources[i];
        if (!s->rate.set)
            continue;
        l[n].source = s->name;
        hl_bucket_init(&l[n].bucket, s->rate.per_second, s->rate.burst, now);
        /* A reload keeps how much of its burst a source has used. */
        for (size_t j = 0; j < in->n_limits; j++) {
            if (strcmp(in->limits[j].source, s->name) == 0) {
                l[n].bucket = in->limits[j].bucket;
                hl_bucket_reset(&l[n].bucket, s->rate.per_second,
                                s->rate.burst, now);
            }
        }
        n++;
    }
    free(in->limits);
    in->limits = l;
    in->n_limits = n;
    return 0;
}

/* The storage.redact_at_rest redactor of cfg (NULL when none is set). */
static int build_at_rest(const hl_config *cfg, hl_redactor **out)
{
    *out = NULL;
    if (!cfg->storage.n_redact_at_rest)
        return 0;
    hl_diags d = {0};
    int rc = hl_redactor_for(cfg, cfg->storage.redact_at_rest,
                             cfg->storage.n_redact_at_rest, &d, out);
    char line[1024];
    for (size_t i = 0; i < d.n; i++) {
        hl_diag_format(&d.v[i], line, sizeof line);
        HL_ERROR("intake", line);
    }
    hl_diags_free(&d);
    return rc;
}

int hl_intake_create(hl_queue *q, hl_config *cfg, hl_intake **out)
{
    m_requests = hl_metric_counter("hookline_intake_requests_total",
                                   "Webhooks received, by source and the "
                                   "status answered.",
                                   "source,status");
    m_latency = hl_metric_histogram(
        "hookline_intake_duration_seconds",
        "From a webhook's arrival to its answer once stored durably.",
        "source", hl_metric_latency_bounds, hl_metric_latency_n);
    hl_intake *in = calloc(1, sizeof *in);
    if (!in)
        return HL_ENOMEM;
    in->queue = q;
    int rc = build_limits(in, cfg);
    if (!rc)
        rc = build_at_rest(cfg, &in->at_rest);
    if (rc) {
        free(in->limits);
        free(in);
        return rc;
    }
    in->cfg = hl_config_retain(cfg);
    *out = in;
    return 0;
}

void hl_intake_set_config(hl_intake *in, hl_config *cfg)
{
    if (build_limits(in, cfg))
        HL_ERROR("intake", "out of memory; source rate limits unchanged");
    hl_redactor *r;
    if (build_at_rest(cfg, &r)) {
        HL_ERROR("intake", "storage.redact_at_rest could not be built; "
                           "the previous one stays in force");
    } else {
        hl_redactor_destroy(in->at_rest);
        in->at_rest = r;
    }
    hl_config *old = in->cfg;
    in->cfg = hl_config_retain(cfg);
    hl_config_destroy(old);
}

void hl_intake_stop(hl_intake *in)
{
    in->stopping = 1;
}

void hl_intake_destroy(hl_intake *in)
{
    if (!in)
        return;
    free(in->limits);
    hl_redactor_destroy(in->at_rest);
    hl_config_destroy(in->cfg);
    free(in);
}

/* ---- helpers -------------------------------------------------------------- */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Credentials, signatures and transport headers are never stored. */
static int secret_or_transport(const char *name)
{
    static const char *const words[] = {"authorization", "signature", "token",
                                        "secret",        "cookie",    "api-key",
                                        "apikey",        "password",  "auth"};
    static const char *const exact[] = {"connection", "content-length",
                                        "transfer-encoding", "keep-alive",
                                        "expect", "upgrade", "te", "trailer",
                                        "proxy-connection", "host"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (!strcmp(name, exact[i]))
            return 1;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(name, words[i]))
            return 1;
    return 0;
}

static int kept(const hl_http_header *h, const char *also_drop, char *name,
                size_t cap)
{
    if (!h->name || strlen(h->name) >= cap)
        return 0;
    strcpy(name, h->name);
    lower(name);
    return !secret_or_transport(name) &&
           !(also_drop && !strcasecmp(name, also_drop));
}

char *hl_intake_kept_headers(const hl_http_req *req, const char *also_drop)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    hl_buf_puts(&b, "{");
    int first = 1;
    for (size_t i = 0; i < req->n_headers; i++) {
        char name[128], other[128];
        if (!kept(&req->headers[i], also_drop, name, sizeof name))
            continue;
        /* A repeated header was written with its first occurrence. */
        size_t j = 0;
        while (j < i && !(kept(&req->headers[j], also_drop, other,
                               sizeof other) &&
                          !strcmp(name, other)))
            j++;
        if (j < i)
            continue;
        hl_buf_puts(&b, first ? "\"" : ",\"");
        first = 0;
        hl_buf_json(&b, name);
        hl_buf_puts(&b, "\":\"");
        /* Repeated headers join as one, the way HTTP defines it. */
        const char *sep = "";
        for (j = i; j < req->n_headers; j++) {
            if (j > i && !(kept(&req->headers[j], also_drop, other,
                                sizeof other) &&
                           !strcmp(name, other)))
                continue;
            hl_buf_puts(&b, sep);
            hl_buf_json(&b, req->headers[j].value ? req->headers[j].value : "");
            sep = ", ";
        }
        hl_buf_puts(&b, "\"");
    }
    hl_buf_puts(&b, "}");
    return hl_buf_take(&b, NULL);
}

static int valid_request_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_REQUEST_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.:/+=", s[i]))
            return 0;
    return 1;
}

/* X-Request-ID, else the trace id of a W3C traceparent, else a new one. */
static void correlation_id(const hl_http_req *req, char out[MAX_REQUEST_ID + 1])
{
    const char *rid = hl_http_header_get(req, "X-Request-ID");
    if (rid && valid_request_id(rid)) {
        snprintf(out, MAX_REQUEST_ID + 1, "%s", rid);
        return;
    }
    const char *tp = hl_http_header_get(req, "traceparent");
    if (tp && strlen(tp) >= 55 && tp[2] == '-' && tp[35] == '-') {
        int ok = 1;
        for (int i = 3; i < 35; i++)
            ok &= isxdigit((unsigned char)tp[i]) != 0;
        if (ok && strncmp(tp + 3, "00000000000000000000000000000000", 32)) {
            snprintf(out, MAX_REQUEST_ID + 1, "%.32s", tp + 3);
            lower(out);
            return;
        }
    }
    if (hl_random_hex(16, out))
        snprintf(out, MAX_REQUEST_ID + 1, "unknown");
}

static const char *media_type(const char *ct, char *buf, size_t cap)
{
    size_t n = strcspn(ct, ";");
    while (n && isspace((unsigned char)ct[n - 1]))
        n--;
    while (n && isspace((unsigned char)*ct)) {
        ct++;
        n--;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, ct, n);
    buf[n] = 0;
    lower(buf);
    return buf;
}

static int is_json_type(const char *mt)
{
    size_t n = strlen(mt);
    return !strcmp(mt, "application/json") ||
           (n > 5 && !strcmp(mt + n - 5, "+json"));
}

static const char *header_cb(void *ctx, const char *name)
{
    return hl_http_header_get(ctx, name);
}

/* ---- answers -------------------------------------------------------------- */

/* Requests by source (configured sources only: the label set stays
 * bounded) and status. */
static void count(const char *source, int status)
{
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    const char *v[] = {source ? source : "_unknown", st};
    hl_metric_add(m_requests, v, 1);
}

static void answer_error(const char *source, hl_http_req *req,
                         const char *corr, int status, const char *code,
                         const char *msg, int retry_after_s)
{
    count(source, status);
    char extra[256];
    int n = snprintf(extra, sizeof extra, "X-Request-ID: %s\r\n", corr);
    if (retry_after_s > 0 && n > 0 && (size_t)n < sizeof extra)
        snprintf(extra + n, sizeof extra - (size_t)n, "Retry-After: %d\r\n",
                 retry_after_s);
    hl_http_respond_error(req, status, code, msg, extra);
}

static void on_appended(void *ud, const hl_append_result *res)
{
    pending *p = ud;
    p->in->inflight--;
    if (res->status) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "the event could not be stored (%s); it was not accepted, "
                 "retry later",
                 res->reason ? res->reason : hl_strerror(res->status));
        answer_error(p->ev.source, p->req, p->corr, 503, "store_unavailable",
                     msg, 1);
    } else {
        char body[128], extra[200];
        int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"%s\"}\n",
                         res->id, res->duplicate ? "duplicate" : "queued");
        snprintf(extra, sizeof extra, "X-Request-ID: %s\r\n", p->corr);
        count(p->ev.source, res->duplicate ? 200 : 202);
        hl_http_respond(p->req, res->duplicate ? 200 : 202,
                        "application/json", extra, body, (size_t)n);
    }
    const char *v[] = {p->ev.source};
    hl_metric_observe(m_latency, v, (double)(uv_hrtime() - p->t0_ns) / 1e9);
    free(p->headers_json);
    free(p->redacted_body);
    hl_config_destroy(p->cfg);
    free(p);
}

/* ---- the request ---------------------------------------------------------- */

static hl_bucket *bucket_of(hl_intake *in, const char *source)
{
    for (size_t i = 0; i < in->n_limits; i++)
        if (!strcmp(in->limits[i].source, source))
            return &in->limits[i].bucket;
    return NULL;
}

/* The checks before anything is stored; 0 when the request may be queued,
 * else it has been answered. */
static int admit(hl_intake *in, hl_http_req *req, const hl_source_cfg *src,
                 const char *corr)
{
    char msg[600];
    char why[400];
    int rc = hl_verify_request(&src->verify, header_cb, req, req->body,
                               req->body_len, hl_now_ms() / 1000, why,
                               sizeof why);
    if (rc == HL_EVERIFY) {
        answer_error(src->name, req, corr, 401, "verification_failed", why, 0);
        return -1;
    }
    if (rc) {
        HL_ERROR("intake", "verification could not run", "source", src->name,
                 "reason", why);
        answer_error(src->name, req, corr, 500, "verification_misconfigured", why, 0);
        return -1;
    }
    hl_bucket *b = bucket_of(in, src->name);
    uint64_t wait_us = b ? hl_bucket_take(b, hl_mono_us()) : 0;
    if (wait_us) {
        int secs = (int)((wait_us + 999999) / 1000000);
        snprintf(msg, sizeof msg,
                 "source '%s' is over its rate limit of %g requests/s; retry "
                 "after %d s",
                 src->name, src->rate.per_second, secs);
        answer_error(src->name, req, corr, 429, "rate_limited", msg, secs);
        return -1;
    }
    const char *ct = hl_http_header_get(req, "Content-Type");
    char mt[128];
    int form_ok = !strcmp(src->kind, "slack");
    if (!ct || (!is_json_type(media_type(ct, mt, sizeof mt)) &&
                !(form_ok && !strcmp(mt, "application/x-www-form-urlencoded")))) {
        snprintf(msg, sizeof msg, "%s%s%s; send application/json%s",
                 ct ? "Content-Type " : "Content-Type is missing",
                 ct ? mt : "", ct ? " is not accepted here" : "",
                 form_ok ? " or application/x-www-form-urlencoded" : "");
        answer_error(src->name, req, corr, 415, "unsupported_media_type", msg, 0);
        return -1;
    }
    if (req->body_len == 0) {
        answer_error(src->name, req, corr, 400, "empty_body",
                     "the body is empty; send the webhook's payload", 0);
        return -1;
    }
    size_t off;
    const char *reason;
    if (is_json_type(mt) &&
        hl_json_validate(req->body, req->body_len, &off, &reason)) {
        snprintf(msg, sizeof msg,
                 "the body is not valid JSON: %s at byte offset %zu", reason,
                 off);
        answer_error(src->name, req, corr, 400, "invalid_json", msg, 0);
        return -1;
    }
    return 0;
}

/* storage.redact_at_rest: what is stored is the redacted body (JSON is
 * written again compactly; other bodies are redacted as text). Signatures
 * were checked on the body as received. */
static int redact_at_rest(const hl_redactor *r, pending *p)
{
    json_t *doc = json_loadb(p->ev.body, p->ev.body_len,
                             JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    size_t len = 0;
    if (doc) {
        int n = hl_redact_json(r, doc);
        if (n > 0)
            p->redacted_body = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(doc);
        if (n < 0 || (n > 0 && !p->redacted_body))
            return -1;
        if (!n)
            return 0;
        len = strlen(p->redacted_body);
    } else {
        p->redacted_body = hl_redact_text(r, p->ev.body, p->ev.body_len, &len);
        if (!p->redacted_body)
            return -1;
    }
    p->ev.body = p->redacted_body;
    p->ev.body_len = len;
    return 0;
}

void hl_intake_handle(hl_intake *in, hl_http_req *req, const char *source)
{
    char corr[MAX_REQUEST_ID + 1];
    correlation_id(req, corr);
    const hl_source_cfg *src = hl_config_source(in->cfg, source);
    char msg[400];
    if (!src) {
        snprintf(msg, sizeof msg,
                 "no source named '%.100s'; sources are defined under "
                 "'sources' in the configuration",
                 source);
        answer_error(NULL, req, corr, 404, "unknown_source", msg, 0);
        return;
    }
    if (strcmp(req->method, "POST")) {
        char extra[200];
        snprintf(extra, sizeof extra, "Allow: POST\r\nX-Request-ID: %s\r\n",
                 corr);
        count(src->name, 405);
        hl_http_respond_error(req, 405, "method_not_allowed",
                              "webhooks are sent with POST", extra);
        return;
    }
    if (in->stopping) {
        answer_error(src->name, req, corr, 503, "shutting_down",
                     "hookline is shutting down; retry in a few seconds", 5);
        return;
    }
    if (admit(in, req, src, corr))
        return;
    const char *idem = NULL;
    if (src->idempotency_header) {
        idem = hl_http_header_get(req, src->idempotency_header);
        if (idem && strlen(idem) > MAX_IDEM_KEY) {
            snprintf(msg, sizeof msg, "header %s is longer than %d bytes",
                     src->idempotency_header, MAX_IDEM_KEY);
            answer_error(src->name, req, corr, 400, "idempotency_key_too_long", msg, 0);
            return;
        }
        if (idem && !*idem)
            idem = NULL;
    }
    /* Appends in flight count too, or a burst could overshoot the bound. */
    uint64_t backlog = hl_queue_backlog(in->queue) + in->inflight;
    if (backlog >= in->cfg->storage.max_queued) {
        answer_error(src->name, req, corr, 503, "queue_full",
                     "the queue is at storage.max_queued; retry later", 5);
        return;
    }
    pending *p = calloc(1, sizeof *p);
    const char *drop = src->verify.hmac_set ? src->verify.hmac.header : NULL;
    char *headers = p ? hl_intake_kept_headers(req, drop) : NULL;
    int64_t now = hl_now_ms();
    if (!p || !headers || hl_id_new(now, p->ev.id)) {
        free(headers);
        free(p);
        answer_error(src->name, req, corr, 503, "unavailable",
                     "out of memory; retry later", 1);
        return;
    }
    p->in = in;
    p->req = req;
    p->cfg = hl_config_retain(in->cfg);
    p->headers_json = headers;
    memcpy(p->corr, corr, sizeof corr);
    p->ev.tenant = src->tenant;
    p->ev.source = src->name;
    p->ev.content_type = hl_http_header_get(req, "Content-Type");
    p->ev.correlation_id = p->corr;
    p->ev.idem_key = idem;
    p->ev.headers_json = headers;
    p->ev.body = req->body;
    p->ev.body_len = req->body_len;
    if (in->at_rest && redact_at_rest(in->at_rest, p)) {
        free(headers);
        free(p->redacted_body);
        hl_config_destroy(p->cfg);
        free(p);
        answer_error(src->name, req, corr, 503, "unavailable",
                     "the body could not be redacted for storage; it was not "
                     "accepted, retry later",
                     1);
        return;
    }
    p->ev.received_ms = now;
    p->t0_ns = uv_hrtime();
    in->inflight++;
    int rc = hl_queue_append(in->queue, &p->ev, on_appended, p);
    if (rc) {
        hl_append_result res = {.status = rc, .reason = hl_strerror(rc)};
        on_appended(p, &res);
    }
}
