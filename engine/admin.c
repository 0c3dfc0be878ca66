/* admin.c - the admin API: who is asking, and the /v1 routes that inspect and repair. */
#include "admin.h"

#include "err.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "metrics.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TOKEN_MAX 512
#define PURGE_BATCH 500
#define PURGE_AGAIN_MS 50

struct hl_admin {
    uv_loop_t *loop;
    hl_queue *q;
    hl_config *cfg;
    hl_dispatcher *disp;
    uv_timer_t retention;
    int retention_on, purging, closed;
    uint64_t interval_ms;
    size_t busy;
    hl_metric *m_depth, *m_backlog;
};

/* ---- who is asking ------------------------------------------------------- */

static int token_eq(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

int hl_admin_auth(const hl_config *cfg, hl_http_req *req, int allow_query,
                  hl_principal *who)
{
    memset(who, 0, sizeof *who);
    int any = cfg->admin.token != NULL;
    for (size_t i = 0; i < cfg->n_tenants; i++)
        any |= cfg->tenants[i].token != NULL;
    if (!any) {
        hl_http_respond_error(req, 403, "admin_closed",
                              "the admin API is off: set admin.token (or a "
                              "tenant's token) in the configuration",
                              NULL);
        return -1;
    }
    char tok[TOKEN_MAX];
    const char *h = hl_http_header_get(req, "Authorization");
    int have = 0;
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ')
            h++;
        size_t n = strlen(h);
        while (n && h[n - 1] == ' ')
            n--;
        if (n && n < sizeof tok) {
            memcpy(tok, h, n);
            tok[n] = 0;
            have = 1;
        }
    } else if (allow_query &&
               hl_query_param(req->query, "access_token", tok, sizeof tok) &&
               *tok) {
        have = 1;
    }
    /* Every token is compared, whichever matches. */
    int admin = 0;
    const char *tenant = NULL;
    if (have) {
        admin = cfg->admin.token && token_eq(tok, cfg->admin.token);
        for (size_t i = 0; i < cfg->n_tenants; i++)
            if (cfg->tenants[i].token && token_eq(tok, cfg->tenants[i].token))
                tenant = cfg->tenants[i].name;
    }
    if (!admin && !tenant) {
        hl_http_respond_error(
            req, 401, "unauthorized",
            have ? "the token is neither admin.token nor a tenant's token"
                 : allow_query ? "send Authorization: Bearer <token>, or "
                                 "?access_token=<token>"
                               : "send Authorization: Bearer <token>",
            "WWW-Authenticate: Bearer\r\n");
        return -1;
    }
    who->admin = admin;
    if (!admin)
        snprintf(who->tenant, sizeof who->tenant, "%s", tenant);
    return 0;
}

/* ---- parameters ---------------------------------------------------------- */

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

static void url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n &&
            (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[k] = 0;
}

int hl_query_param(const char *query, const char *name, char *out,
                   size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        if (kl == nl && !memcmp(p, name, nl)) {
            if (eq)
                url_decode(eq + 1, len - kl - 1, out, cap);
            else if (cap)
                out[0] = 0;
            return 1;
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int hl_parse_when(const char *s, int64_t now_ms, int64_t *out)
{
    if (!*s)
        return HL_ESYNTAX;
    uint64_t ago;
    if (isdigit((unsigned char)*s) && !hl_parse_duration(s, &ago) &&
        strspn(s, "0123456789") != strlen(s)) {
        *out = now_ms - (int64_t)ago;
        return 0;
    }
    if (strspn(s, "0123456789") == strlen(s) && strlen(s) <= 15) {
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    if (!hl_event_time_valid(s))
        return HL_ESYNTAX;
    int y = atoi(s), mo = atoi(s + 5), d = atoi(s + 8);
    int h = atoi(s + 11), mi = atoi(s + 14), se = atoi(s + 17);
    int64_t ms = 0;
    const char *p = s + 19;
    if (*p == '.') {
        int scale = 100;
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            ms += (*p - '0') * scale;
    }
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                h * 3600 + mi * 60 + se;
    if (*p == '+' || *p == '-') {
        int off = atoi(p + 1) * 3600 + atoi(p + 4) * 60;
        t -= *p == '+' ? off : -off;
    }
    *out = t * 1000 + ms;
    return 0;
}

/* ---- work off the loop --------------------------------------------------- */

typedef struct work work;
typedef void (*answer_fn)(work *w);

struct work {
    uv_work_t uv;
    hl_admin *a;
    hl_http_req *req; /* NULL: retention */
    hl_query q;
    char tenant[80], source[80], type[128], state[128], connector[128];
    char id[128];
    int repeat;   /* repairs: batches until none is left */
    int status;   /* on success */
    int rc;
    json_t *out;
    answer_fn answer;
    char what[160]; /* for a 404: "no event 01H..." */
};

static void run_work(uv_work_t *u)
{
    work *w = u->data;
    w->rc = hl_queue_ask(w->a->q, &w->q, &w->out);
    /* Large repairs go in batches, each its own short transaction, so
     * intake never waits long behind them. */
    while (!w->rc && w->repeat &&
           json_is_true(json_object_get(w->out, "more"))) {
        json_t *next = NULL;
        w->rc = hl_queue_ask(w->a->q, &w->q, &next);
        if (w->rc)
            break;
        const char *k;
        json_t *v;
        json_object_foreach(next, k, v) if (json_is_integer(v))
            json_object_set_new(
                w->out, k,
                json_integer(json_integer_value(json_object_get(w->out, k)) +
                             json_integer_value(v)));
        json_object_set(w->out, "more", json_object_get(next, "more"));
        json_decref(next);
    }
    json_object_del(w->out, "more");
}

static void respond_json(hl_http_req *req, int status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (!text) {
        hl_http_respond_error(req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n';
    hl_http_respond(req, status, "application/json", NULL, text, n + 1);
    free(text);
}

static void answer_default(work *w)
{
    respond_json(w->req, w->status, w->out);
}

static void after_work(uv_work_t *u, int status)
{
    work *w = u->data;
    w->a->busy--;
    if (!w->req) { /* retention */
        w->answer(w);
        json_decref(w->out);
        free(w);
        return;
    }
    if (status == UV_ECANCELED || w->rc == HL_ESHUTDOWN)
        hl_http_respond_error(w->req, 503, "shutting_down",
                              "hookline is shutting down; retry later",
                              "Retry-After: 5\r\n");
    else if (w->rc == HL_ENOTFOUND)
        hl_http_respond_error(w->req, 404, "not_found", w->what, NULL);
    else if (w->rc == HL_ECONFLICT)
        hl_http_respond_error(w->req, 409, "in_flight",
                              "the delivery is being sent now; its attempt "
                              "decides what happens next, retry after it",
                              NULL);
    else if (w->rc)
        hl_http_respond_error(w->req, 503, "store_unavailable",
                              "the store could not answer; retry later",
                              "Retry-After: 1\r\n");
    else
        w->answer(w);
    json_decref(w->out);
    free(w);
}

static work *work_new(hl_admin *a, hl_http_req *req, int kind)
{
    work *w = calloc(1, sizeof *w);
    if (!w) {
        if (req)
            hl_http_respond_error(req, 503, "unavailable",
                                  "out of memory; retry later", NULL);
        return NULL;
    }
    w->a = a;
    w->req = req;
    w->q.kind = kind;
    w->status = 200;
    w->answer = answer_default;
    w->uv.data = w;
    return w;
}

static void submit(work *w)
{
    int rc = uv_queue_work(w->a->loop, &w->uv, run_work, after_work);
    if (rc) {
        if (w->req)
            hl_http_respond_error(w->req, 503, "unavailable",
                                  "could not start the query; retry later",
                                  NULL);
        free(w);
        return;
    }
    w->a->busy++;
}

/* ---- filters ------------------------------------------------------------- */

static const char *const filter_keys[] = {
    "tenant", "source", "type",  "state", "connector",
    "event",  "since",  "until", "cursor", "limit", NULL};

static const char *const states[] = {
    "queued",   "sending",  "retrying", "delivered", "failed",
    "expired",  "received", "normalized", "unparsed", NULL};

typedef int (*param_fn)(void *ctx, const char *name, char *out, size_t cap);

static int from_query(void *ctx, const char *name, char *out, size_t cap)
{
    return hl_query_param(ctx, name, out, cap);
}

static int from_json(void *ctx, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(ctx, name);
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_array(v)) { /* "state": ["failed", "expired"] */
        size_t k = 0, i;
        json_t *x;
        out[0] = 0;
        json_array_foreach(v, i, x) if (json_is_string(x) && k + 2 < cap)
        {
            int n = snprintf(out + k, cap - k, "%s%s", k ? "," : "",
                             json_string_value(x));
            k = n < 0 || (size_t)n >= cap - k ? cap - 1 : k + (size_t)n;
        }
    } else
        return 0;
    return 1;
}

static int known(const char *const *list, const char *s, size_t n)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == n && !strncmp(list[i], s, n))
            return 1;
    return 0;
}

/* An unknown parameter's name into bad; 1 when there is one. */
static int unknown_param(const char *query, json_t *body, char *bad,
                         size_t cap)
{
    if (body) {
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v) if (!known(filter_keys, k, strlen(k)))
        {
            snprintf(bad, cap, "%s", k);
            return 1;
        }
        return 0;
    }
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        size_t kl = strcspn(p, "=&");
        if (len && !known(filter_keys, p, kl) &&
            !(kl == 12 && !strncmp(p, "access_token", 12))) {
            snprintf(bad, cap, "%.*s", (int)(kl < 60 ? kl : 60), p);
            return 1;
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

/* Fill w->q from the request's parameters. 1: go on; 0: answered (a bad
 * parameter, or a filter on another tenant: nothing to see). */
static int filter(work *w, const hl_principal *who, param_fn get, void *ctx,
                  json_t *body)
{
    hl_query *q = &w->q;
    char bad[200], v[160], msg[400];
    if (unknown_param(body ? NULL : ctx, body, bad, sizeof bad)) {
        snprintf(msg, sizeof msg,
                 "unknown parameter '%s'; use tenant, source, type, state, "
                 "connector, event, since, until, cursor, limit",
                 bad);
        goto bad;
    }
    if (get(ctx, "tenant", w->tenant, sizeof w->tenant) && *w->tenant) {
        if (!who->admin && strcmp(w->tenant, who->tenant)) {
            json_decref(w->out);
            w->out = json_pack("{s:[], s:n}",
                               q->kind == HL_Q_EVENTS ? "events"
                                                      : "deliveries",
                               "next_cursor");
            if (q->kind >= HL_R_RETRY) {
                json_decref(w->out);
                w->out = json_pack("{s:i}", q->kind == HL_R_NORMALIZE
                                                ? "requeued"
                                                : "replayed",
                                   0);
            }
            respond_json(w->req, q->kind >= HL_R_RETRY ? 202 : 200, w->out);
            return 0;
        }
        q->tenant = w->tenant;
    }
    if (!who->admin) { /* copied: the work outlives the caller's frame */
        snprintf(w->tenant, sizeof w->tenant, "%s", who->tenant);
        q->tenant = w->tenant;
    }
    if (get(ctx, "source", w->source, sizeof w->source) && *w->source)
        q->source = w->source;
    if (get(ctx, "type", w->type, sizeof w->type) && *w->type)
        q->type = w->type;
    if (get(ctx, "connector", w->connector, sizeof w->connector) &&
        *w->connector)
        q->connector = w->connector;
    if (get(ctx, "event", w->id, sizeof w->id) && *w->id)
        q->id = w->id;
    if (get(ctx, "state", w->state, sizeof w->state) && *w->state) {
        for (const char *p = w->state; *p;) {
            size_t n = strcspn(p, ",");
            if (!known(states, p, n)) {
                snprintf(msg, sizeof msg,
                         "state '%.*s' is not one of queued, sending, "
                         "retrying, delivered, failed, expired, received, "
                         "normalized, unparsed",
                         (int)(n < 60 ? n : 60), p);
                goto bad;
            }
            p += n + (p[n] == ',');
        }
        q->state = w->state;
    }
    int64_t now = hl_now_ms();
    static const char *const times[] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        if (!get(ctx, times[i], v, sizeof v) || !*v)
            continue;
        int64_t *t = i ? &q->until_ms : &q->since_ms;
        if (hl_parse_when(v, now, t)) {
            snprintf(msg, sizeof msg,
                     "%s '%.60s' is not a time: use RFC 3339 "
                     "(2026-11-28T07:00:00Z), a duration ago (15m, 2h, 7d) "
                     "or milliseconds since the epoch",
                     times[i], v);
            goto bad;
        }
    }
    if (get(ctx, "cursor", v, sizeof v) && *v) {
        char *end;
        q->cursor = strtoll(v, &end, 10);
        if (*end || q->cursor <= 0) {
            snprintf(msg, sizeof msg,
                     "cursor '%.60s' is not one this API gave out; pass "
                     "next_cursor from the previous page",
                     v);
            goto bad;
        }
    }
    if (get(ctx, "limit", v, sizeof v) && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 500) {
            snprintf(msg, sizeof msg,
                     "limit '%.60s' must be a number from 1 to 500", v);
            goto bad;
        }
        q->limit = (size_t)n;
    }
    return 1;
bad:
    hl_http_respond_error(w->req, 400, "invalid_parameter", msg, NULL);
    return 0;
}

/* ---- routes -------------------------------------------------------------- */

static void list(hl_admin *a, hl_http_req *req, const hl_principal *who,
                 int kind)
{
    work *w = work_new(a, req, kind);
    if (!w)
        return;
    if (!filter(w, who, from_query, req->query, NULL)) {
        json_decref(w->out);
        free(w);
        return;
    }
    submit(w);
}

/* The id segment of /v1/KIND/{id}[/verb]; 0 when it is not one. */
static int id_of(const char *rest, char *id, size_t cap, const char **verb)
{
    size_t n = strcspn(rest, "/");
    if (!n || n >= cap)
        return 0;
    memcpy(id, rest, n);
    id[n] = 0;
    *verb = rest[n] == '/' ? rest + n + 1 : NULL;
    return 1;
}

static void one(hl_admin *a, hl_http_req *req, const hl_principal *who,
                int kind, const char *id, const char *noun)
{
    work *w = work_new(a, req, kind);
    if (!w)
        return;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->q.id = w->id;
    if (!who->admin) {
        snprintf(w->tenant, sizeof w->tenant, "%s", who->tenant);
        w->q.tenant = w->tenant;
    }
    snprintf(w->what, sizeof w->what, "no %s '%.80s'", noun, id);
    if (kind == HL_R_RETRY)
        w->status = 202;
    submit(w);
}

static void repair(hl_admin *a, hl_http_req *req, const hl_principal *who,
                   int kind)
{
    json_t *body = NULL;
    if (req->body_len) {
        json_error_t e;
        body = json_loadb(req->body, req->body_len, 0, &e);
        if (!json_is_object(body)) {
            char msg[300];
            snprintf(msg, sizeof msg,
                     "the body must be a JSON object of filters (%s); or "
                     "send none and use query parameters",
                     body ? "not an object" : e.text);
            json_decref(body);
            hl_http_respond_error(req, 400, "invalid_json", msg, NULL);
            return;
        }
    }
    work *w = work_new(a, req, kind);
    if (!w) {
        json_decref(body);
        return;
    }
    int ok = body ? filter(w, who, from_json, body, body)
                  : filter(w, who, from_query, req->query, NULL);
    json_decref(body);
    if (!ok) {
        json_decref(w->out);
        free(w);
        return;
    }
    if (kind == HL_R_NORMALIZE &&
        (w->q.type || w->q.state || w->q.connector)) {
        hl_http_respond_error(req, 400, "invalid_parameter",
                              "normalize takes tenant, source, event, since "
                              "and until: unparsed webhooks have no type, "
                              "state or connector yet",
                              NULL);
        free(w);
        return;
    }
    if (kind == HL_R_REPLAY && w->q.state) {
        /* Never what is in flight; and queued ones are already in line. */
        for (const char *p = w->q.state; *p;) {
            size_t n = strcspn(p, ",");
            if ((n == 7 && !strncmp(p, "sending", 7)) ||
                (n == 6 && !strncmp(p, "queued", 6)) ||
                known(states + 6, p, n)) {
                hl_http_respond_error(
                    req, 400, "invalid_parameter",
                    "replay takes deliveries in states failed, expired, "
                    "delivered or retrying",
                    NULL);
                free(w);
                return;
            }
            p += n + (p[n] == ',');
        }
    }
    w->q.limit = 0;
    w->repeat = 1;
    w->status = 202;
    submit(w);
}

/* ---- POST /v1/events ----------------------------------------------------- */

/* A published event until its append has run: the queue borrows every
 * string of the inbound event until then. */
typedef struct {
    hl_http_req *req;
    char id[HL_ID_LEN + 1];
    char tenant[80];
    char corr[130];
    char *body;
    char *idem;
} publish_t;

static void on_published(void *ud, const hl_append_result *res)
{
    publish_t *p = ud;
    if (res->status) {
        hl_http_respond_error(p->req, 503, "store_unavailable",
                              "the event could not be stored; it was not "
                              "accepted, retry later",
                              "Retry-After: 1\r\n");
    } else {
        char body[128];
        int n = snprintf(body, sizeof body,
                         "{\"id\":\"%s\",\"status\":\"%s\"}\n", res->id,
                         res->duplicate ? "duplicate" : "queued");
        hl_http_respond(p->req, res->duplicate ? 200 : 202,
                        "application/json", NULL, body, (size_t)n);
    }
    free(p->body);
    free(p->idem);
    free(p);
}

static void publish(hl_admin *a, hl_http_req *req, const hl_principal *who)
{
    json_error_t e;
    json_t *ev = json_loadb(req->body, req->body_len, 0, &e);
    char why[1200];
    if (!ev) {
        snprintf(why, sizeof why,
                 "the body is not JSON: %s at line %d column %d", e.text,
                 e.line, e.column);
        hl_http_respond_error(req, 400, "invalid_json", why, NULL);
        return;
    }
    const char *tenant = who->tenant;
    if (who->admin) {
        tenant = json_string_value(json_object_get(ev, "tenant"));
        if (!tenant || (!hl_config_tenant(a->cfg, tenant) &&
                        (a->cfg->n_tenants || strcmp(tenant, "default")))) {
            json_decref(ev);
            hl_http_respond_error(req, 400, "invalid_event",
                                  "tenant: with the admin token, name a "
                                  "configured tenant; or publish with the "
                                  "tenant's own token",
                                  NULL);
            return;
        }
    }
    publish_t *p = calloc(1, sizeof *p);
    int64_t now = hl_now_ms();
    if (!p || hl_id_new(now, p->id)) {
        free(p);
        json_decref(ev);
        hl_http_respond_error(req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    snprintf(p->tenant, sizeof p->tenant, "%s", tenant);
    const char *rid = hl_http_header_get(req, "X-Request-ID");
    snprintf(p->corr, sizeof p->corr, "%.128s", rid && *rid ? rid : p->id);
    if (hl_event_complete(ev, p->tenant, p->id, p->corr, now, why,
                          sizeof why)) {
        json_decref(ev);
        free(p);
        hl_http_respond_error(req, 400, "invalid_event", why, NULL);
        return;
    }
    if (hl_queue_backlog(a->q) >= a->cfg->storage.max_queued) {
        json_decref(ev);
        free(p);
        hl_http_respond_error(req, 503, "queue_full",
                              "the queue is at storage.max_queued; retry "
                              "later",
                              "Retry-After: 5\r\n");
        return;
    }
    p->req = req;
    p->body = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    const char *idem = hl_http_header_get(req, "Idempotency-Key");
    if (idem && *idem) {
        /* Keys are kept per tenant. */
        size_t n = strlen(p->tenant) + strlen(idem) + 2;
        if ((p->idem = malloc(n)))
            snprintf(p->idem, n, "%s:%s", p->tenant, idem);
    }
    if (!p->body || (idem && *idem && !p->idem)) {
        free(p->body);
        free(p->idem);
        free(p);
        hl_http_respond_error(req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    hl_inbound in = {
        .tenant = p->tenant,
        .source = HL_API_SOURCE,
        .content_type = "application/json",
        .correlation_id = p->corr,
        .idem_key = p->idem,
        .headers_json = "{}",
        .body = p->body,
        .body_len = strlen(p->body),
        .received_ms = now,
    };
    memcpy(in.id, p->id, sizeof in.id);
    int rc = hl_queue_append(a->q, &in, on_published, p);
    if (rc) {
        hl_append_result res = {.status = rc};
        on_published(p, &res);
    }
}

/* ---- connectors ---------------------------------------------------------- */

static int visible(const hl_connector_cfg *c, const hl_principal *who)
{
    return who->admin || (c->tenant && !strcmp(c->tenant, who->tenant));
}

static const char *circuit_name(int s)
{
    return s == 1 ? "open" : s == 2 ? "half_open" : "closed";
}

static void answer_connectors(work *w)
{
    hl_admin *a = w->a;
    json_t *arr = json_array();
    for (size_t i = 0; i < a->cfg->n_connectors; i++) {
        const hl_connector_cfg *c = &a->cfg->connectors[i];
        hl_principal who = {.admin = !w->q.tenant};
        if (w->q.tenant)
            snprintf(who.tenant, sizeof who.tenant, "%s", w->q.tenant);
        if (!visible(c, &who))
            continue;
        int held = 0, circuit = 0;
        if (a->disp)
            hl_dispatcher_status(a->disp, c->name, &held, &circuit);
        json_t *depth = json_object_get(w->out, c->name);
        json_t *queue = json_pack("{s:I, s:I, s:I}", "queued",
                                  json_integer_value(json_object_get(depth, "queued")),
                                  "retrying",
                                  json_integer_value(json_object_get(depth, "retrying")),
                                  "sending",
                                  json_integer_value(json_object_get(depth, "sending")));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:o}", "name",
                           c->name, "plugin", c->plugin, "tenant", c->tenant,
                           "policy", c->policy,
                           "state",
                           held == HL_HOLD_PAUSED     ? "paused"
                           : held == HL_HOLD_DISABLED ? "disabled"
                                                      : "active",
                           "circuit", circuit_name(circuit), "queue", queue));
    }
    json_t *o = json_pack("{s:o}", "connectors", arr);
    respond_json(w->req, 200, o);
    json_decref(o);
}

static void control(hl_admin *a, hl_http_req *req, const hl_principal *who,
                    const char *name, const char *verb)
{
    int held = !strcmp(verb, "pause") ? HL_HOLD_PAUSED : HL_HOLD_NONE;
    char msg[300];
    const hl_connector_cfg *c = hl_config_connector(a->cfg, name);
    if (!c || !visible(c, who)) {
        snprintf(msg, sizeof msg, "no connector named '%.100s'", name);
        hl_http_respond_error(req, 404, "not_found", msg, NULL);
        return;
    }
    if (!a->disp || hl_dispatcher_control(a->disp, name, held)) {
        hl_http_respond_error(req, 503, "store_unavailable",
                              "the change could not be recorded; try again",
                              "Retry-After: 1\r\n");
        return;
    }
    json_t *o = json_pack("{s:s, s:s}", "connector", name, "state",
                          held ? "paused" : "active");
    respond_json(req, 200, o);
    json_decref(o);
}

/* ---- dispatch ------------------------------------------------------------ */

static int method_is(hl_http_req *req, const char *m, const char *allow)
{
    if (!strcmp(req->method, m))
        return 1;
    if (!strcmp(m, "GET") && !strcmp(req->method, "HEAD"))
        return 1;
    char extra[64], msg[200];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    snprintf(msg, sizeof msg, "%.100s accepts %s", req->path, allow);
    hl_http_respond_error(req, 405, "method_not_allowed", msg, extra);
    return 0;
}

static void not_found(hl_http_req *req)
{
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.200s", req->path);
    hl_http_respond_error(req, 404, "not_found", msg, NULL);
}

enum {
    OP_NONE,
    OP_EVENTS,
    OP_PUBLISH,
    OP_EVENT,
    OP_DELIVERIES,
    OP_DELIVERY,
    OP_RETRY,
    OP_REPLAY,
    OP_NORMALIZE,
    OP_CONNECTORS,
    OP_CONTROL,
};

/* The operation a path and method ask for; OP_NONE once answered (404 or
 * 405: said before the token is looked at, as for every route). */
static int route_of(hl_http_req *req, char *id, size_t cap,
                    const char **verb)
{
    const char *p = req->path;
    int post = !strcmp(req->method, "POST");
    *verb = NULL;
    if (!strcmp(p, "/v1/events"))
        return post ? OP_PUBLISH
                    : method_is(req, "GET", "GET, POST") ? OP_EVENTS
                                                         : OP_NONE;
    if (!strncmp(p, "/v1/events/", 11) && id_of(p + 11, id, cap, verb) &&
        !*verb)
        return method_is(req, "GET", "GET") ? OP_EVENT : OP_NONE;
    if (!strcmp(p, "/v1/deliveries"))
        return method_is(req, "GET", "GET") ? OP_DELIVERIES : OP_NONE;
    if (!strncmp(p, "/v1/deliveries/", 15) && id_of(p + 15, id, cap, verb)) {
        if (!*verb)
            return method_is(req, "GET", "GET") ? OP_DELIVERY : OP_NONE;
        if (!strcmp(*verb, "retry"))
            return method_is(req, "POST", "POST") ? OP_RETRY : OP_NONE;
    }
    if (!strcmp(p, "/v1/replay"))
        return method_is(req, "POST", "POST") ? OP_REPLAY : OP_NONE;
    if (!strcmp(p, "/v1/normalize"))
        return method_is(req, "POST", "POST") ? OP_NORMALIZE : OP_NONE;
    if (!strcmp(p, "/v1/connectors"))
        return method_is(req, "GET", "GET") ? OP_CONNECTORS : OP_NONE;
    if (!strncmp(p, "/v1/connectors/", 15) && id_of(p + 15, id, cap, verb) &&
        *verb && (!strcmp(*verb, "pause") || !strcmp(*verb, "resume")))
        return method_is(req, "POST", "POST") ? OP_CONTROL : OP_NONE;
    if (!strncmp(p, "/v1/connectors/", 15)) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "no route for %.200s; use /v1/connectors/NAME/pause or "
                 "/v1/connectors/NAME/resume",
                 p);
        hl_http_respond_error(req, 404, "not_found", msg, NULL);
        return OP_NONE;
    }
    not_found(req);
    return OP_NONE;
}

void hl_admin_handle(hl_admin *a, hl_http_req *req)
{
    hl_principal who;
    const char *verb;
    char id[128];
    int op = route_of(req, id, sizeof id, &verb);
    if (op == OP_NONE || hl_admin_auth(a->cfg, req, 0, &who))
        return;
    switch (op) {
    case OP_PUBLISH:
        publish(a, req, &who);
        break;
    case OP_EVENTS:
        list(a, req, &who, HL_Q_EVENTS);
        break;
    case OP_EVENT:
        one(a, req, &who, HL_Q_EVENT, id, "event");
        break;
    case OP_DELIVERIES:
        list(a, req, &who, HL_Q_DELIVERIES);
        break;
    case OP_DELIVERY:
        one(a, req, &who, HL_Q_DELIVERY, id, "delivery");
        break;
    case OP_RETRY:
        one(a, req, &who, HL_R_RETRY, id, "delivery");
        break;
    case OP_REPLAY:
        repair(a, req, &who, HL_R_REPLAY);
        break;
    case OP_NORMALIZE:
        repair(a, req, &who, HL_R_NORMALIZE);
        break;
    case OP_CONTROL:
        control(a, req, &who, id, verb);
        break;
    default: { /* OP_CONNECTORS */
        work *w = work_new(a, req, HL_Q_DEPTH);
        if (!w)
            return;
        if (!who.admin) {
            snprintf(w->tenant, sizeof w->tenant, "%s", who.tenant);
            w->q.tenant = w->tenant;
        }
        w->answer = answer_connectors;
        submit(w);
    }
    }
}

/* ---- metrics ------------------------------------------------------------- */

static void answer_metrics(work *w)
{
    hl_admin *a = w->a;
    hl_metric_clear(a->m_depth);
    const char *conn;
    json_t *per;
    json_object_foreach(w->out, conn, per)
    {
        const char *state;
        json_t *n;
        json_object_foreach(per, state, n)
        {
            const char *v[] = {conn, state};
            hl_metric_set(a->m_depth, v, (double)json_integer_value(n));
        }
    }
    hl_metric_set(a->m_backlog, NULL, (double)hl_queue_backlog(a->q));
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    if (hl_metrics_render(&b)) {
        hl_buf_free(&b);
        hl_http_respond_error(w->req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    hl_http_respond(w->req, 200, "text/plain; version=0.0.4; charset=utf-8",
                    NULL, b.p ? b.p : "", b.len);
    hl_buf_free(&b);
}

void hl_admin_metrics(hl_admin *a, hl_http_req *req)
{
    work *w = work_new(a, req, HL_Q_DEPTH);
    if (!w)
        return;
    w->answer = answer_metrics;
    submit(w);
}

/* ---- retention ----------------------------------------------------------- */

static void on_retention(uv_timer_t *t);

static void answer_purge(work *w)
{
    hl_admin *a = w->a;
    a->purging = 0;
    json_int_t n = json_integer_value(json_object_get(w->out, "purged"));
    if (w->rc && w->rc != HL_ESHUTDOWN)
        HL_WARN("store", "purging past retention failed; trying again later",
                "reason", hl_strerror(w->rc));
    else if (n) {
        char k[32];
        snprintf(k, sizeof k, "%lld", (long long)n);
        HL_DEBUG("store", "purged events past retention", "events", k);
    }
    if (a->closed)
        return;
    /* A full batch: more is waiting, go on soon; else at the interval. */
    int more = !w->rc && json_is_true(json_object_get(w->out, "more"));
    uv_timer_start(&a->retention, on_retention,
                   more ? PURGE_AGAIN_MS : a->interval_ms, 0);
}

static void on_retention(uv_timer_t *t)
{
    hl_admin *a = t->data;
    if (a->purging || a->closed)
        return;
    const hl_storage_cfg *st = &a->cfg->storage;
    if (!st->retention_delivered_ms && !st->retention_failed_ms) {
        uv_timer_start(&a->retention, on_retention, a->interval_ms, 0);
        return;
    }
    work *w = work_new(a, NULL, HL_R_PURGE);
    if (!w)
        return;
    int64_t now = hl_now_ms();
    w->q.delivered_before = st->retention_delivered_ms
                                ? now - (int64_t)st->retention_delivered_ms
                                : 0;
    w->q.failed_before = st->retention_failed_ms
                             ? now - (int64_t)st->retention_failed_ms
                             : 0;
    w->q.limit = PURGE_BATCH;
    w->answer = answer_purge;
    a->purging = 1;
    submit(w);
}

void hl_admin_start_retention(hl_admin *a, uint64_t interval_ms)
{
    a->interval_ms = interval_ms ? interval_ms : 60000;
    if (!a->retention_on) {
        uv_timer_init(a->loop, &a->retention);
        a->retention.data = a;
        a->retention_on = 1;
    }
    uv_timer_start(&a->retention, on_retention, a->interval_ms, 0);
}

/* ---- life ---------------------------------------------------------------- */

int hl_admin_create(uv_loop_t *loop, hl_queue *q, hl_config *cfg,
                    hl_admin **out)
{
    hl_admin *a = calloc(1, sizeof *a);
    if (!a)
        return HL_ENOMEM;
    a->loop = loop;
    a->q = q;
    a->cfg = hl_config_retain(cfg);
    a->m_depth = hl_metric_gauge(
        "hookline_queue_depth",
        "Deliveries waiting or in flight, by connector and state.",
        "connector,state");
    a->m_backlog = hl_metric_gauge(
        "hookline_backlog",
        "Webhooks not yet normalized plus deliveries not yet finished.", "");
    *out = a;
    return 0;
}

void hl_admin_set_config(hl_admin *a, hl_config *cfg)
{
    hl_config *old = a->cfg;
    a->cfg = hl_config_retain(cfg);
    hl_config_destroy(old);
}

void hl_admin_set_dispatcher(hl_admin *a, hl_dispatcher *d)
{
    a->disp = d;
}

size_t hl_admin_busy(const hl_admin *a)
{
    return a ? a->busy : 0;
}

void hl_admin_close(hl_admin *a)
{
    if (!a || a->closed)
        return;
    a->closed = 1;
    if (a->retention_on)
        uv_close((uv_handle_t *)&a->retention, NULL);
}

void hl_admin_destroy(hl_admin *a)
{
    if (!a)
        return;
    hl_config_destroy(a->cfg);
    free(a);
}
