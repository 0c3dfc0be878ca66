/* dispatch.c - the dispatcher: leased deliveries -> connector render -> libcurl -> classify -> settled. */
#include "dispatch.h"

#include "client.h"
#include "err.h"
#include "fileout.h"
#include "id.h"
#include "log.h"
#include "metrics.h"
#include "netguard.h"
#include "policy.h"
#include "redact.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A lease outlives the longest attempt (the timeout) by this much plus
 * half the timeout. After a crash, what was in flight is sent again once
 * its lease runs out. */
#define LEASE_MARGIN_MS 2000
/* The part of a response kept with its attempt. */
#define EXCERPT_BYTES 2048
/* How often a connector whose lease failed (a busy store) asks again. */
#define LEASE_RETRY_MS 500
/* Deliveries leased ahead of what is in flight, at most: the next lease is
 * on its way while these are sent. */
#define PREFETCH 256
/* Attempt records go to the store in batches: this many, or after
 * FLUSH_MS. */
#define FLUSH_ROWS 128
#define FLUSH_MS 2

/* Leased deliveries of a connector not started yet, in lease order. */
typedef struct ready {
    hl_lease *lease;
    size_t next; /* the first item not started */
    struct ready *link;
} ready;

typedef struct conn {
    char name[128];
    hlc_instance *inst;           /* of d->plugins */
    const hl_policy_cfg *policy;
    hl_redactor *redactor; /* the policy's; NULL: none */
    uint64_t timeout_ms;
    uint32_t max_in_flight;
    uint32_t in_flight;
    uint32_t asked;
    /* Leased ahead (up to PREFETCH), so the next lease is on its way while
     * these are sent. */
    ready *ready_head, *ready_tail;
    uint32_t n_ready;
    int starting;
    int leasing;
    hl_gate gate;      /* circuit breaker and rate */
    int reopened;      /* the circuit just opened: give back what waits */
    int64_t wait_until; /* ready deliveries wait for the gate until then */
    int more;         /* deliveries may be due now */
    int64_t next_due; /* -1: nothing waits */
    /* The soonest retry settled while a lease was on its way: that lease's
     * next due time was read before the writer knew of it. -1: none. */
    int64_t due_unseen;
    int held;         /* hl_hold: paused, or disabled by a 410 */
    int gone;         /* no longer configured */
} conn;

/* A pause or resume from the admin API. */
typedef struct ctl_msg {
    char name[128];
    int held;
    struct ctl_msg *next;
} ctl_msg;

typedef struct lease_msg {
    conn *c;
    hl_lease *lease;
    struct lease_msg *next;
} lease_msg;

struct hl_dispatcher {
    hl_queue *q;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    uv_timer_t grace;
    uv_timer_t flush_timer;
    hl_client *client;
    /* Shared with other threads, under mu. */
    pthread_mutex_t mu;
    lease_msg *inbox;
    ctl_msg *controls;
    hl_config *next_cfg;
    hl_plugins *next_plugins;
    int stop_requested;
    int closed;        /* the loop's handles are closing */
    size_t leases_out; /* asked of the store, callback not yet run */
    pthread_cond_t cv;
    uint64_t grace_ms;
    _Atomic int new_deliveries;
    /* The loop's own. */
    hl_config *cfg;
    hl_plugins *plugins;
    hl_redactor *excerpt_redactor; /* for connectors without redaction */
    conn **conns;
    size_t n_conns;
    hl_attempt_row *pending;
    size_t n_pending, cap_pending;
    int stopping;
    size_t in_flight;
    _Atomic uint64_t attempts, delivered, retried, failed;
    _Atomic uint64_t circuit_opened, circuit_closed;
    /* What other threads may read of each connector, under mu. */
    struct {
        char name[128];
        int held, circuit;
    } pub[256];
    size_t n_pub;
    hl_metric *m_attempts, *m_latency, *m_circuit;
};

/* Let other threads see c's hold and circuit (hl_dispatcher_status), and
 * Prometheus its circuit. */
static void publish(hl_dispatcher *d, const conn *c)
{
    pthread_mutex_lock(&d->mu);
    size_t i = 0;
    while (i < d->n_pub && strcmp(d->pub[i].name, c->name))
        i++;
    if (i == d->n_pub && d->n_pub < sizeof d->pub / sizeof *d->pub)
        snprintf(d->pub[d->n_pub++].name, sizeof d->pub[i].name, "%s",
                 c->name);
    if (i < d->n_pub) {
        d->pub[i].held = c->held;
        d->pub[i].circuit = c->gate.state;
    }
    pthread_mutex_unlock(&d->mu);
    const char *v[] = {c->name};
    hl_metric_set(d->m_circuit, v, c->gate.state);
}

/* connector.state on the live stream. */
static void note_connector(hl_dispatcher *d, const conn *c, const char *state,
                           const char *reason)
{
    json_t *f = json_pack("{s:s, s:s, s:s}", "connector", c->name, "state",
                          state, "reason", reason);
    hl_query q = {.kind = HL_R_NOTE, .note_type = "connector.state",
                  .note = f};
    json_t *out = NULL;
    if (!f || hl_queue_ask(d->q, &q, &out))
        HL_WARN("dispatch", "could not note a connector's state on the "
                            "stream",
                "connector", c->name, "state", state);
    json_decref(out);
    json_decref(f);
}

int hl_dispatcher_status(hl_dispatcher *d, const char *connector, int *held,
                         int *circuit)
{
    int rc = HL_ENOTFOUND;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_pub; i++)
        if (!strcmp(d->pub[i].name, connector)) {
            *held = d->pub[i].held;
            *circuit = d->pub[i].circuit;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

typedef struct {
    hl_dispatcher *d;
    conn *c;
    hl_plugins *plugins; /* a reference: the instance lives while we do */
    hlc_instance *inst;
    hl_lease_item it;
    json_t *event;
    hlc_request req;
    int64_t started_ms;
    uint64_t t0_ns;
} attempt;

static void pump(hl_dispatcher *d, conn *c);
static void arm(hl_dispatcher *d);
static void wake(hl_dispatcher *d);
static void give_back_ready(hl_dispatcher *d, conn *c);

/* ---- recording outcomes -------------------------------------------------- */

static void flush_pending(hl_dispatcher *d);
static void on_flush_timer(uv_timer_t *t);

/* A record for the next batch: a full batch goes at once, the rest within
 * FLUSH_MS. */
static hl_attempt_row *new_row(hl_dispatcher *d)
{
    if (d->n_pending >= FLUSH_ROWS)
        flush_pending(d);
    if (!d->stopping && !uv_is_active((uv_handle_t *)&d->flush_timer))
        uv_timer_start(&d->flush_timer, on_flush_timer, FLUSH_MS, 0);
    if (d->n_pending == d->cap_pending) {
        size_t cap = d->cap_pending ? d->cap_pending * 2 : 64;
        hl_attempt_row *v = realloc(d->pending, cap * sizeof *v);
        if (!v)
            return NULL;
        d->pending = v;
        d->cap_pending = cap;
    }
    hl_attempt_row *r = &d->pending[d->n_pending++];
    memset(r, 0, sizeof *r);
    return r;
}

static void flush_pending(hl_dispatcher *d)
{
    if (!d->n_pending)
        return;
    hl_attempt_row *rows = d->pending;
    size_t n = d->n_pending;
    d->pending = NULL;
    d->n_pending = d->cap_pending = 0;
    int rc = hl_queue_finish_take(d->q, rows, n);
    if (rc)
        HL_ERROR("dispatch", "could not record attempts; their leases run "
                             "out and they are sent again",
                 "reason", hl_strerror(rc));
}

static void on_flush_timer(uv_timer_t *t)
{
    flush_pending(t->data);
}

static double random_unit(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)rand();
    return (double)r / 4294967296.0;
}

static const char *error_class(const hl_xfer_res *res, int kind)
{
    if (!res)
        return NULL;
    if (res->error != HL_XERR_NONE)
        return hl_xfer_error_name(res->error);
    if (kind == HL_XFER_SMTP)
        return res->status >= 500   ? "smtp_5xx"
               : res->status >= 400 ? "smtp_4xx"
                                    : NULL;
    if (res->status >= 500)
        return "http_5xx";
    if (res->status >= 400)
        return "http_4xx";
    if (res->status >= 300)
        return "http_3xx";
    return NULL;
}

/* The sooner of two due times; -1 is none. */
static int64_t due_min(int64_t a, int64_t b)
{
    return a < 0 || (b >= 0 && b < a) ? b : a;
}

/* What an attempt says of the destination, for the circuit breaker;
 * returns the circuit's change (HL_GATE_OPENED, HL_GATE_CLOSED or none),
 * which settle notes on the stream after the attempt that caused it. */
static int gate_account(hl_dispatcher *d, conn *c, const hlc_outcome *o,
                        const hl_xfer_res *res, int counted, int64_t now)
{
    int result = HL_GATE_NEUTRAL;
    if (counted && o->verdict == HLC_DELIVERED)
        result = HL_GATE_SUCCESS;
    else if (counted && o->verdict == HLC_RETRY && res)
        result = HL_GATE_FAILURE;
    else if (counted && o->verdict == HLC_FAILED && res &&
             res->error == HL_XERR_NONE)
        result = HL_GATE_SUCCESS; /* it answered: it is up */
    int change = hl_gate_record(&c->gate, result, now);
    if (change == HL_GATE_OPENED) {
        char n[32], cool[32];
        snprintf(n, sizeof n, "%u", c->gate.fails);
        snprintf(cool, sizeof cool, "%llums",
                 (unsigned long long)c->policy->circuit.cooldown_ms);
        HL_WARN("dispatch",
                "circuit open: deliveries wait, spending no attempts, until "
                "a probe after the cooldown succeeds",
                "connector", c->name, "failures", n, "cooldown", cool);
        c->wait_until = c->gate.open_until_ms;
        c->reopened = 1;
        atomic_fetch_add(&d->circuit_opened, 1);
        publish(d, c);
    } else if (change == HL_GATE_CLOSED) {
        HL_INFO("dispatch", "circuit closed: the probe succeeded",
                "connector", c->name);
        atomic_fetch_add(&d->circuit_closed, 1);
        c->more = 1;
        publish(d, c);
    }
    return change;
}

static const char *outcome_label(int state)
{
    switch (state) {
    case HL_DS_DELIVERED: return "delivered";
    case HL_DS_RETRYING: return "retry";
    case HL_DS_EXPIRED: return "expired";
    default: return "failed";
    }
}

/* Record the end of an attempt (or of a delivery that was never sent:
 * res NULL, counted 0). */
static void settle(attempt *a, const hlc_outcome *o, const hl_xfer_res *res,
                   int counted)
{
    hl_dispatcher *d = a->d;
    conn *c = a->c;
    int64_t now = hl_now_ms();
    hl_attempt_row *r = new_row(d);
    if (!r) {
        HL_ERROR("dispatch", "out of memory recording an attempt; its lease "
                             "runs out and it is sent again",
                 "delivery", a->it.id);
        return;
    }
    snprintf(r->id, sizeof r->id, "%s", a->it.id);
    r->attempt = a->it.attempt;
    r->started_ms = a->started_ms ? a->started_ms : now;
    r->duration_ms = a->t0_ns ? (uint32_t)((uv_hrtime() - a->t0_ns) / 1000000)
                              : 0;
    r->status = res ? res->status : 0;
    r->error_class = error_class(res, a->req.kind);
    r->counted = counted;
    r->reason = strdup(o->reason);
    switch (o->verdict) {
    case HLC_DELIVERED:
        r->state = HL_DS_DELIVERED;
        atomic_fetch_add(&d->delivered, 1);
        break;
    case HLC_FAILED:
        r->state = HL_DS_FAILED;
        atomic_fetch_add(&d->failed, 1);
        break;
    case HLC_DISABLE:
        if (!c->held) {
            HL_ERROR("dispatch",
                     "connector disabled: the destination says it is gone; "
                     "its deliveries wait until it is resumed (POST "
                     "/v1/connectors/NAME/resume)",
                     "connector", c->name, "reason", o->reason);
            if (hl_queue_hold(d->q, c->name, "disabled", o->reason))
                HL_ERROR("dispatch", "could not record the connector as "
                                     "disabled; a restart resumes it",
                         "connector", c->name);
        }
        c->held = HL_HOLD_DISABLED;
        publish(d, c);
        r->state = HL_DS_RETRYING;
        r->next_ms = now;
        break;
    default: /* HLC_RETRY */
        if (!counted) {
            r->state = HL_DS_QUEUED;
            r->next_ms = now + (o->retry_after_ms > 0 ? o->retry_after_ms : 0);
            break;
        }
        r->state = hl_retry_next(&c->policy->retry, a->it.round,
                                 a->it.created_ms, now, o->retry_after_ms,
                                 random_unit(), &r->next_ms);
        atomic_fetch_add(r->state == HL_DS_RETRYING ? &d->retried : &d->failed,
                         1);
        break;
    }
    int circuit = gate_account(d, c, o, res, counted, now);
    if (counted) {
        const char *v[] = {c->name, outcome_label(r->state)};
        hl_metric_add(d->m_attempts, v, 1);
    }
    if (r->state == HL_DS_DELIVERED && a->it.received_ms) {
        const char *v[] = {c->name};
        hl_metric_observe(d->m_latency, v,
                          (double)(now - a->it.received_ms) / 1000.0);
    }
    if (res && res->body_len) {
        size_t n = res->body_len < EXCERPT_BYTES ? res->body_len
                                                 : EXCERPT_BYTES;
        const hl_redactor *red = c->redactor ? c->redactor
                                             : d->excerpt_redactor;
        r->response = red ? hl_redact_text(red, res->body, n, NULL)
                          : strndup(res->body, n);
    }
    if (r->state == HL_DS_RETRYING && r->next_ms) {
        c->next_due = due_min(c->next_due, r->next_ms);
        if (c->leasing)
            c->due_unseen = due_min(c->due_unseen, r->next_ms);
    }
    if (counted)
        atomic_fetch_add(&d->attempts, 1);
    if (hl_log_get_level() <= HL_LOG_DEBUG) {
        char st[16];
        snprintf(st, sizeof st, "%d", r->status);
        HL_DEBUG("dispatch", "attempt", "delivery", a->it.id, "connector",
                 c->name, "state", hl_delivery_state_name(r->state), "status",
                 st, "reason", o->reason);
    }
    /* The circuit's change follows, on the stream, the attempt that made
     * it: the attempt's record goes to the writer first. */
    if (circuit == HL_GATE_OPENED || circuit == HL_GATE_CLOSED) {
        flush_pending(d);
        if (circuit == HL_GATE_OPENED)
            note_connector(d, c, "circuit_open", "consecutive failures");
        else
            note_connector(d, c, "circuit_closed", "a probe succeeded");
    }
}

static void outcome_set(hlc_outcome *o, int verdict, const char *why)
{
    o->verdict = (uint32_t)verdict;
    o->retry_after_ms = -1;
    size_t n = strlen(why);
    if (n >= sizeof o->reason)
        n = sizeof o->reason - 1;
    memcpy(o->reason, why, n);
    o->reason[n] = 0;
}

static void attempt_free(attempt *a)
{
    json_decref(a->event);
    hl_request_free(&a->req);
    free(a->it.event);
    free(a->it.raw_ptr);
    free(a->it.raw_body);
    free(a->it.correlation_id);
    hl_plugins_release(a->plugins);
    free(a);
}

/* The attempt is over: record it and let the connector lease again. */
static void attempt_end(attempt *a, const hlc_outcome *o,
                        const hl_xfer_res *res, int counted)
{
    hl_dispatcher *d = a->d;
    conn *c = a->c;
    settle(a, o, res, counted);
    c->in_flight--;
    d->in_flight--;
    attempt_free(a);
    if ((c->held || c->reopened) && !c->starting) {
        c->reopened = 0;
        give_back_ready(d, c);
    }
    if (d->stopping) {
        /* The last attempt of a stop: no need to wait out the grace. The
         * client is closed from the loop, not from inside its callback. */
        if (!d->in_flight)
            wake(d);
        return;
    }
    pump(d, c);
    arm(d);
}

/* ---- one attempt --------------------------------------------------------- */

static void on_response(void *ud, const hl_xfer_res *res)
{
    attempt *a = ud;
    hlc_outcome o = {.retry_after_ms = -1};
    if (res->error == HL_XERR_ABORTED) {
        /* Stopped before the answer: not an attempt the destination saw
         * through; it goes back in line. */
        outcome_set(&o, HLC_RETRY, "given back at shutdown");
        attempt_end(a, &o, NULL, 0);
        return;
    }
    hlc_response resp = {.res = res};
    const hlc_connector *desc = a->inst->desc;
    if (desc->classify) {
        hlc_delivery dl = {
            .struct_size = sizeof dl,
            .attempt = a->it.attempt,
            .delivery_id = a->it.id,
            .event_id = a->it.event_id,
            .correlation_id = a->it.correlation_id ? a->it.correlation_id : "",
            .connector = a->c->name,
            .now_ms = hl_now_ms(),
        };
        desc->classify(a->inst->state, (const hlc_json *)a->event, &dl, &resp,
                       &o);
        if (o.verdict < HLC_DELIVERED || o.verdict > HLC_DISABLE)
            hl_classify_default(res, &o);
    } else {
        hl_classify_default(res, &o);
    }
    attempt_end(a, &o, res, 1);
}

/* The canonical event with data.raw put back from the webhook's body. */
static json_t *load_event(const hl_lease_item *it, char *why, size_t whylen)
{
    json_error_t e;
    json_t *ev = json_loads(it->event, 0, &e);
    if (!ev) {
        snprintf(why, whylen, "the stored event is not JSON: %s", e.text);
        return NULL;
    }
    if (!it->raw_ptr || !it->raw_body)
        return ev;
    json_t *body = json_loadb(it->raw_body, it->raw_len, JSON_DECODE_ANY, &e);
    const hlc_json *raw = body ? hl_sdk_api.json_pointer((hlc_json *)body,
                                                         it->raw_ptr)
                               : NULL;
    json_t *data = json_object_get(ev, "data");
    if (raw && json_is_object(data))
        json_object_set(data, "raw", (json_t *)raw);
    json_decref(body);
    return ev;
}

/* The SSRF guard, for every connection an attempt opens: the networks
 * allowed are those of the configuration the attempt started with. */
static int guard(void *ud, const struct sockaddr *sa, char *why, size_t len)
{
    const attempt *a = ud;
    const hl_config *cfg = hl_plugins_config(a->plugins);
    return hl_addr_refused(sa, cfg->outbound.allow_networks,
                           cfg->outbound.n_allow_networks, why, len);
}

/* Turn the rendered request into the client's. */
static int send_request(hl_dispatcher *d, attempt *a)
{
    hlc_request *rq = &a->req;
    hl_header *hs = calloc(rq->n_headers + 3, sizeof *hs);
    if (!hs)
        return HL_ENOMEM;
    size_t n = hl_request_headers(rq, a->it.id, a->it.correlation_id, hs,
                                  rq->n_headers + 3);
    hl_xfer_req x = {
        .kind = rq->kind,
        .method = rq->method,
        .url = rq->url,
        .headers = hs,
        .n_headers = n,
        .body = rq->body,
        .body_len = rq->body_len,
        .timeout_ms = a->c->timeout_ms,
        .client_cert = rq->client_cert,
        .client_key = rq->client_key,
        .ca_file = rq->ca_file,
        .mail_from = rq->mail_from,
        .rcpt = (const char *const *)rq->rcpt,
        .n_rcpt = rq->n_rcpt,
        .username = rq->username,
        .password = rq->password,
        .starttls = rq->starttls,
        .check_addr = guard,
        .check_ud = a,
    };
    a->started_ms = hl_now_ms();
    a->t0_ns = uv_hrtime();
    int rc = hl_client_send(d->client, &x, on_response, a);
    free(hs); /* the client copies what it keeps */
    return rc;
}

/* Render and send one leased delivery; problems before sending end it
 * here. */
static void start_attempt(hl_dispatcher *d, conn *c, hl_lease_item *it)
{
    attempt *a = calloc(1, sizeof *a);
    if (!a) {
        HL_ERROR("dispatch", "out of memory; the delivery is sent when its "
                             "lease runs out",
                 "delivery", it->id);
        return;
    }
    a->d = d;
    a->c = c;
    a->it = *it;
    memset(it, 0, sizeof *it); /* the attempt owns the strings now */
    snprintf(it->id, sizeof it->id, "%s", a->it.id);
    a->plugins = hl_plugins_retain(d->plugins);
    a->inst = c->inst;
    hl_request_init(&a->req);
    c->in_flight++;
    d->in_flight++;
    hlc_outcome o = {.retry_after_ms = -1};
    char why[512] = "";
    if (!a->it.event) {
        outcome_set(&o, HLC_FAILED, "the canonical event is no longer stored");
        attempt_end(a, &o, NULL, 1);
        return;
    }
    if (!(a->event = load_event(&a->it, why, sizeof why))) {
        outcome_set(&o, HLC_FAILED, why);
        attempt_end(a, &o, NULL, 1);
        return;
    }
    hlc_delivery dl = {
        .struct_size = sizeof dl,
        .attempt = a->it.attempt,
        .delivery_id = a->it.id,
        .event_id = a->it.event_id,
        .correlation_id = a->it.correlation_id ? a->it.correlation_id : "",
        .connector = c->name,
        .now_ms = hl_now_ms(),
    };
    int rc = hl_render(a->inst, c->redactor, a->event, &dl, &a->req, why,
                       sizeof why);
    if (rc == HLC_RENDER_SKIP) {
        outcome_set(&o, HLC_DELIVERED, "nothing to send for this event (the "
                                       "connector skipped it)");
        attempt_end(a, &o, NULL, 1);
        return;
    }
    if (rc != HLC_RENDER_OK) {
        outcome_set(&o, rc == HLC_RENDER_RETRY ? HLC_RETRY : HLC_FAILED, why);
        attempt_end(a, &o, NULL, 1);
        return;
    }
    if (a->req.kind == HL_XFER_FILE) {
        a->started_ms = hl_now_ms();
        a->t0_ns = uv_hrtime();
        char msg[600];
        int frc = hl_file_append(a->req.path, a->req.body, a->req.body_len,
                                 a->req.max_bytes, a->req.keep, msg,
                                 sizeof msg);
        if (frc)
            outcome_set(&o, HLC_RETRY, msg);
        else
            outcome_set(&o, HLC_DELIVERED, "appended to the file");
        attempt_end(a, &o, NULL, 1);
        return;
    }
    if ((rc = send_request(d, a))) {
        snprintf(why, sizeof why, "the request could not be made: %s",
                 hl_strerror(rc));
        outcome_set(&o, HLC_FAILED, why);
        attempt_end(a, &o, NULL, 1);
    }
}

/* ---- leasing --------------------------------------------------------------- */

static uint64_t lease_ms(const conn *c)
{
    return c->timeout_ms + c->timeout_ms / 2 + LEASE_MARGIN_MS;
}

/* On the writer's thread: hand the lease to the loop. */
static void on_lease(void *ud, hl_lease *l)
{
    conn *c = ud;
    hl_dispatcher *d = *(hl_dispatcher **)(c + 1);
    lease_msg *m = malloc(sizeof *m);
    if (!m) {
        hl_lease_free(l); /* the leases run out and are taken again */
        pthread_mutex_lock(&d->mu);
        d->leases_out--;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        return;
    }
    m->c = c;
    m->lease = l;
    pthread_mutex_lock(&d->mu);
    d->leases_out--;
    if (d->closed) {
        /* The loop is gone: the leases run out and are taken again. */
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        hl_lease_free(l);
        free(m);
        return;
    }
    m->next = d->inbox;
    d->inbox = m;
    uv_async_send(&d->wake);
    pthread_mutex_unlock(&d->mu);
}

/* Wake the loop from another thread, unless it has closed. */
static void wake(hl_dispatcher *d)
{
    pthread_mutex_lock(&d->mu);
    if (!d->closed)
        uv_async_send(&d->wake);
    pthread_mutex_unlock(&d->mu);
}

/* Start leased deliveries while the connector has room. */
static void start_ready(hl_dispatcher *d, conn *c)
{
    if (c->starting)
        return; /* an attempt that ended at once; the outer call goes on */
    c->starting = 1;
    c->wait_until = -1;
    while (c->ready_head && c->in_flight < c->max_in_flight) {
        int change;
        int64_t now = hl_now_ms();
        int64_t wait = hl_gate_admit(&c->gate, now, hl_mono_us(), &change);
        if (change == HL_GATE_HALF_OPENED)
            HL_INFO("dispatch", "circuit half-open: one probe decides",
                    "connector", c->name);
        if (wait) {
            c->wait_until = wait > 0 ? now + wait : -1;
            break;
        }
        ready *r = c->ready_head;
        hl_lease_item *it = &r->lease->v[r->next++];
        c->n_ready--;
        if (r->next == r->lease->n) {
            c->ready_head = r->link;
            if (!c->ready_head)
                c->ready_tail = NULL;
        }
        start_attempt(d, c, it);
        if (r->next == r->lease->n) {
            hl_lease_free(r->lease);
            free(r);
        }
    }
    c->starting = 0;
    if (c->reopened) {
        c->reopened = 0;
        give_back_ready(d, c);
    }
}

/* Give back what was leased and not started (stopping, or the connector
 * is gone or held). */
static void give_back_ready(hl_dispatcher *d, conn *c)
{
    while (c->ready_head) {
        ready *r = c->ready_head;
        c->ready_head = r->link;
        for (; r->next < r->lease->n; r->next++) {
            attempt a = {.d = d, .c = c, .it = r->lease->v[r->next]};
            hlc_outcome o;
            outcome_set(&o, HLC_RETRY, "given back unsent");
            settle(&a, &o, NULL, 0);
        }
        hl_lease_free(r->lease);
        free(r);
    }
    c->ready_tail = NULL;
    c->n_ready = 0;
    c->more = 1; /* what was given back is due again at once */
}

static void pump(hl_dispatcher *d, conn *c)
{
    if (d->stopping || c->gone || c->held)
        return;
    start_ready(d, c);
    int64_t now = hl_now_ms();
    if (c->leasing || hl_gate_holding(&c->gate, now))
        return;
    if (c->gate.state == HL_CIRCUIT_OPEN)
        c->more = 1; /* the cooldown is over: lease the probe */
    uint32_t ahead = c->max_in_flight < PREFETCH ? c->max_in_flight : PREFETCH;
    ahead = hl_gate_ahead(&c->gate, ahead, lease_ms(c));
    uint32_t cap = c->gate.state == HL_CIRCUIT_CLOSED ? c->max_in_flight + ahead
                                                     : 1;
    if (c->gate.rated && cap > ahead + 1)
        cap = ahead + 1; /* the rate, not max_in_flight, sets the pace */
    uint32_t have = c->in_flight + c->n_ready;
    if (have >= cap)
        return;
    /* Lease in batches: wait until half of what is leased ahead is used,
     * unless idle. */
    if (have && cap - have < (ahead + 1) / 2)
        return;
    if (!c->more && (c->next_due < 0 || c->next_due > now))
        return;
    c->more = 0;
    c->asked = cap - have;
    c->leasing = 1;
    c->due_unseen = -1;
    /* Outcomes recorded so far go first, so the lease's next due time
     * counts their retries (the writer takes the two in order). */
    flush_pending(d);
    pthread_mutex_lock(&d->mu);
    d->leases_out++;
    pthread_mutex_unlock(&d->mu);
    int rc = hl_queue_lease(d->q, c->name, c->asked, now, lease_ms(c),
                            on_lease, c);
    if (rc) {
        pthread_mutex_lock(&d->mu);
        d->leases_out--;
        pthread_mutex_unlock(&d->mu);
        c->leasing = 0;
        c->next_due = now + LEASE_RETRY_MS;
    }
}

static void got_lease(hl_dispatcher *d, conn *c, hl_lease *l)
{
    if (hl_log_get_level() <= HL_LOG_DEBUG) {
        char n[32], ask[32];
        snprintf(n, sizeof n, "%zu", l->n);
        snprintf(ask, sizeof ask, "%u", c->asked);
        HL_DEBUG("dispatch", "leased", "connector", c->name, "asked", ask,
                 "got", n, "first", l->n ? l->v[0].id : "");
    }
    c->leasing = 0;
    c->next_due = l->next_due_ms;
    if (l->status)
        c->next_due = hl_now_ms() + LEASE_RETRY_MS;
    else if (l->n >= c->asked)
        c->more = 1; /* there may be more than we asked for */
    c->next_due = due_min(c->next_due, c->due_unseen);
    c->due_unseen = -1;
    ready *r = l->n ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        if (l->n)
            HL_ERROR("dispatch", "out of memory; leased deliveries are sent "
                                 "when their leases run out",
                     "connector", c->name);
        hl_lease_free(l);
        return;
    }
    r->lease = l;
    if (c->ready_tail)
        c->ready_tail->link = r;
    else
        c->ready_head = r;
    c->ready_tail = r;
    c->n_ready += (uint32_t)l->n;
    /* Held, or its circuit opened while the lease was on its way: they
     * would wait longer than their lease. */
    if (d->stopping || c->gone || c->held ||
        hl_gate_holding(&c->gate, hl_now_ms()))
        give_back_ready(d, c);
    else
        pump(d, c);
}

/* ---- configuration ------------------------------------------------------- */

static conn *conn_find(hl_dispatcher *d, const char *name)
{
    for (size_t i = 0; i < d->n_conns; i++)
        if (!strcmp(d->conns[i]->name, name))
            return d->conns[i];
    return NULL;
}

/* A conn is followed in memory by its dispatcher's address, so the
 * writer's lease callback finds it. */
static conn *conn_new(hl_dispatcher *d, const char *name)
{
    conn **v = realloc(d->conns, (d->n_conns + 1) * sizeof *v);
    if (!v)
        return NULL;
    d->conns = v;
    conn *c = calloc(1, sizeof *c + sizeof(hl_dispatcher *));
    if (!c)
        return NULL;
    *(hl_dispatcher **)(c + 1) = d;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->next_due = -1;
    c->due_unseen = -1;
    c->wait_until = -1;
    c->more = 1; /* look for what waits from before */
    d->conns[d->n_conns++] = c;
    publish(d, c);
    return c;
}

static void apply_config(hl_dispatcher *d, hl_config *cfg, hl_plugins *p)
{
    /* A connector no longer configured finishes what is in flight under
     * the new default policy, and leases no more. */
    for (size_t i = 0; i < d->n_conns; i++) {
        conn *c = d->conns[i];
        c->gone = 1;
        c->inst = NULL;
        c->policy = &cfg->default_policy;
        c->gate.policy = c->policy;
        hl_redactor_destroy(c->redactor);
        c->redactor = NULL;
    }
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        const hl_connector_cfg *cc = &cfg->connectors[i];
        conn *c = conn_find(d, cc->name);
        if (!c && !(c = conn_new(d, cc->name))) {
            HL_ERROR("dispatch", "out of memory; connector not started",
                     "connector", cc->name);
            continue;
        }
        const hl_policy_cfg *pol = hl_config_policy_for(cfg, cc);
        hl_redactor *red = NULL;
        if (pol->n_redact) {
            hl_diags dg = {0};
            if (hl_redactor_for(cfg, pol->redact, pol->n_redact, &dg, &red))
                HL_ERROR("dispatch", "the policy's redaction cannot be built; "
                                     "the connector is held",
                         "connector", cc->name);
            hl_diags_free(&dg);
        }
        c->redactor = red;
        c->inst = hl_plugins_instance(p, i);
        c->policy = pol;
        c->timeout_ms = cc->timeout_ms ? cc->timeout_ms
                                       : cfg->outbound.timeout_ms;
        hl_gate_configure(&c->gate, pol, hl_mono_us());
        c->max_in_flight = pol->max_in_flight ? (uint32_t)pol->max_in_flight
                                              : 16;
        /* Held when its redaction could not be built: never unredacted. */
        c->gone = pol->n_redact && !red;
        c->more = 1;
    }
    for (size_t i = 0; i < d->n_conns; i++)
        if (d->conns[i]->gone)
            give_back_ready(d, d->conns[i]);
    hl_plugins_attach(p, d->q);
    hl_config *old_cfg = d->cfg;
    hl_plugins *old_p = d->plugins;
    d->cfg = cfg;
    d->plugins = p;
    hl_plugins_release(old_p);
    hl_config_destroy(old_cfg);
}

/* ---- the loop ------------------------------------------------------------ */

static void pump_all(hl_dispatcher *d);

static void on_timer(uv_timer_t *t)
{
    pump_all(t->data);
}

static void pump_all(hl_dispatcher *d)
{
    for (size_t i = 0; i < d->n_conns; i++)
        pump(d, d->conns[i]);
    arm(d);
}

/* One timer for the soonest due time of any connector that can lease. */
static void arm(hl_dispatcher *d)
{
    int64_t now = hl_now_ms(), soonest = -1;
    for (size_t i = 0; i < d->n_conns; i++) {
        conn *c = d->conns[i];
        if (c->gone || c->held)
            continue;
        int64_t t = -1;
        if (hl_gate_holding(&c->gate, now))
            t = c->gate.open_until_ms; /* the cooldown's end: probe */
        else if (c->n_ready && c->wait_until >= 0)
            t = c->wait_until; /* tokens */
        else if (!c->leasing && c->in_flight < c->max_in_flight)
            t = c->next_due;
        if (t >= 0 && (soonest < 0 || t < soonest))
            soonest = t;
    }
    if (soonest < 0 || d->stopping) {
        uv_timer_stop(&d->timer);
        return;
    }
    uv_timer_start(&d->timer, on_timer,
                   soonest > now ? (uint64_t)(soonest - now) : 1, 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish_stop(hl_dispatcher *d)
{
    if (d->client) {
        hl_client_close(d->client); /* aborts: each gives its delivery back */
        d->client = NULL;
    }
    flush_pending(d);
    pthread_mutex_lock(&d->mu);
    d->closed = 1; /* no more uv_async_send from other threads */
    pthread_mutex_unlock(&d->mu);
    uv_walk(&d->loop, close_walk, NULL);
}

static void on_grace(uv_timer_t *t)
{
    hl_dispatcher *d = t->data;
    char n[32];
    snprintf(n, sizeof n, "%zu", d->in_flight);
    HL_WARN("dispatch", "grace period over; giving back what is in flight",
            "in_flight", n);
    finish_stop(d);
}

static void begin_stop(hl_dispatcher *d)
{
    d->stopping = 1;
    uv_timer_stop(&d->timer);
    for (size_t i = 0; i < d->n_conns; i++)
        give_back_ready(d, d->conns[i]);
    if (!d->in_flight) {
        finish_stop(d);
        return;
    }
    uv_timer_start(&d->grace, on_grace, d->grace_ms, 0);
}

static void apply_controls(hl_dispatcher *d, ctl_msg *m)
{
    /* Oldest first: the list is a stack. */
    ctl_msg *rev = NULL;
    while (m) {
        ctl_msg *next = m->next;
        m->next = rev;
        rev = m;
        m = next;
    }
    for (ctl_msg *next; rev; rev = next) {
        next = rev->next;
        conn *c = conn_find(d, rev->name);
        if (c) {
            c->held = rev->held;
            publish(d, c);
            if (c->held)
                give_back_ready(d, c);
            else
                c->more = 1;
        }
        free(rev);
    }
}

static void on_wake(uv_async_t *h)
{
    hl_dispatcher *d = h->data;
    pthread_mutex_lock(&d->mu);
    lease_msg *in = d->inbox;
    d->inbox = NULL;
    ctl_msg *ctl = d->controls;
    d->controls = NULL;
    hl_config *cfg = d->next_cfg;
    hl_plugins *p = d->next_plugins;
    d->next_cfg = NULL;
    d->next_plugins = NULL;
    int stop = d->stop_requested;
    pthread_mutex_unlock(&d->mu);
    if (cfg)
        apply_config(d, cfg, p);
    apply_controls(d, ctl);
    /* Oldest first: the inbox is a stack. */
    lease_msg *rev = NULL;
    while (in) {
        lease_msg *next = in->next;
        in->next = rev;
        rev = in;
        in = next;
    }
    for (lease_msg *m = rev, *next; m; m = next) {
        next = m->next;
        got_lease(d, m->c, m->lease);
        free(m);
    }
    if (atomic_exchange(&d->new_deliveries, 0))
        for (size_t i = 0; i < d->n_conns; i++)
            d->conns[i]->more = 1;
    if (stop && !d->stopping) {
        begin_stop(d);
        return;
    }
    if (d->stopping) {
        if (!d->in_flight && d->client)
            finish_stop(d);
        return;
    }
    pump_all(d);
}

/* On the writer's thread, after a commit that made deliveries. */
static void on_deliveries(void *ud)
{
    hl_dispatcher *d = ud;
    atomic_store(&d->new_deliveries, 1);
    wake(d);
}

static void *run(void *arg)
{
    hl_dispatcher *d = arg;
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int hold_of(const char *state)
{
    return !state                     ? HL_HOLD_NONE
           : !strcmp(state, "paused") ? HL_HOLD_PAUSED
                                      : HL_HOLD_DISABLED;
}

/* At start: connectors held before the restart stay held. */
static void on_hold(void *ud, const char *name, const char *state,
                    const char *reason)
{
    hl_dispatcher *d = ud;
    conn *c = conn_find(d, name);
    if (!c)
        return;
    c->held = hold_of(state);
    publish(d, c);
    HL_WARN("dispatch", "connector held since before the restart; resume it "
                        "with POST /v1/connectors/NAME/resume",
            "connector", name, "state", state, "reason", reason ? reason : "");
}

int hl_dispatcher_control(hl_dispatcher *d, const char *connector, int held)
{
    int rc = hl_queue_hold(d->q, connector,
                           held == HL_HOLD_PAUSED     ? "paused"
                           : held == HL_HOLD_DISABLED ? "disabled"
                                                      : NULL,
                           held ? "by the admin API" : NULL);
    if (rc)
        return rc;
    ctl_msg *m = calloc(1, sizeof *m);
    if (!m)
        return HL_ENOMEM;
    snprintf(m->name, sizeof m->name, "%s", connector);
    m->held = held;
    pthread_mutex_lock(&d->mu);
    m->next = d->controls;
    d->controls = m;
    pthread_mutex_unlock(&d->mu);
    wake(d);
    HL_INFO("dispatch", held ? "connector paused" : "connector resumed",
            "connector", connector);
    return 0;
}

int hl_dispatcher_start(hl_queue *q, hl_config *cfg, hl_plugins *plugins,
                        hl_dispatcher **out)
{
    *out = NULL;
    hl_dispatcher *d = calloc(1, sizeof *d);
    if (!d) {
        hl_plugins_release(plugins);
        return HL_ENOMEM;
    }
    d->q = q;
    d->m_attempts = hl_metric_counter(
        "hookline_delivery_attempts_total",
        "Delivery attempts, by connector and outcome (delivered, retry, "
        "failed, expired).",
        "connector,outcome");
    d->m_latency = hl_metric_histogram(
        "hookline_delivery_latency_seconds",
        "From a webhook's receipt to its delivery, by connector.",
        "connector", hl_metric_latency_bounds, hl_metric_latency_n);
    d->m_circuit = hl_metric_gauge(
        "hookline_circuit_state",
        "A connector's circuit breaker: 0 closed, 1 open, 2 half-open.",
        "connector");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rc = uv_loop_init(&d->loop);
    if (rc)
        goto fail_loop;
    uv_async_init(&d->loop, &d->wake, on_wake);
    uv_timer_init(&d->loop, &d->timer);
    uv_timer_init(&d->loop, &d->grace);
    uv_timer_init(&d->loop, &d->flush_timer);
    d->wake.data = d->timer.data = d->grace.data = d->flush_timer.data = d;
    if ((rc = hl_client_create(&d->loop, &d->client)))
        goto fail;
    static const hl_redact_rule secrets = {HL_REDACT_PACK, "secrets",
                                           HL_REDACT_MASK, NULL};
    hl_diags dg = {0};
    if (hl_redactor_for(cfg, &secrets, 1, &dg, &d->excerpt_redactor))
        HL_WARN("dispatch", "the secrets pack is missing; response excerpts "
                            "are stored as received");
    hl_diags_free(&dg);
    apply_config(d, hl_config_retain(cfg), plugins);
    plugins = NULL;
    if (hl_queue_holds(q, on_hold, d))
        HL_WARN("dispatch", "could not read which connectors are held");
    hl_queue_on_deliveries(q, on_deliveries, d);
    if (pthread_create(&d->thread, NULL, run, d)) {
        hl_queue_on_deliveries(q, NULL, NULL);
        rc = HL_EINTERNAL;
        goto fail;
    }
    wake(d); /* lease what waits from before */
    *out = d;
    return 0;
fail:
    if (d->client)
        hl_client_close(d->client);
    uv_walk(&d->loop, close_walk, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
fail_loop:
    hl_plugins_release(plugins);
    hl_plugins_release(d->plugins);
    hl_config_destroy(d->cfg);
    hl_redactor_destroy(d->excerpt_redactor);
    for (size_t i = 0; i < d->n_conns; i++) {
        hl_redactor_destroy(d->conns[i]->redactor);
        free(d->conns[i]);
    }
    free(d->conns);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return rc < 0 ? rc : HL_EINTERNAL;
}

void hl_dispatcher_set_config(hl_dispatcher *d, hl_config *cfg,
                              hl_plugins *plugins)
{
    pthread_mutex_lock(&d->mu);
    hl_config *old_cfg = d->next_cfg;
    hl_plugins *old_p = d->next_plugins;
    d->next_cfg = hl_config_retain(cfg);
    d->next_plugins = plugins;
    pthread_mutex_unlock(&d->mu);
    hl_plugins_release(old_p);
    hl_config_destroy(old_cfg);
    wake(d);
}

void hl_dispatcher_stop(hl_dispatcher *d, uint64_t grace_ms)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop_requested = 1;
    d->grace_ms = grace_ms;
    pthread_mutex_unlock(&d->mu);
    wake(d);
    pthread_join(d->thread, NULL);
    hl_queue_on_deliveries(d->q, NULL, NULL);
    flush_pending(d);
    /* The writer may still hold leases asked for: their callbacks need d. */
    pthread_mutex_lock(&d->mu);
    while (d->leases_out)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    /* Leases granted after the loop stopped go back on their own when they
     * run out; free what reached the inbox. */
    for (lease_msg *m = d->inbox, *next; m; m = next) {
        next = m->next;
        hl_lease_free(m->lease);
        free(m);
    }
    for (ctl_msg *m = d->controls, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    if (uv_loop_close(&d->loop))
        HL_ERROR("dispatch", "event loop still had open handles at exit");
    char a[32], b[32], c[32], e[32], o[32], k[32];
    snprintf(a, sizeof a, "%llu", (unsigned long long)d->attempts);
    snprintf(b, sizeof b, "%llu", (unsigned long long)d->delivered);
    snprintf(c, sizeof c, "%llu", (unsigned long long)d->retried);
    snprintf(e, sizeof e, "%llu", (unsigned long long)d->failed);
    snprintf(o, sizeof o, "%llu", (unsigned long long)d->circuit_opened);
    snprintf(k, sizeof k, "%llu", (unsigned long long)d->circuit_closed);
    HL_INFO("dispatch", "stopped", "attempts", a, "delivered", b, "retried",
            c, "failed", e, "circuit_opened", o, "circuit_closed", k);
    hl_plugins_release(d->next_plugins);
    hl_config_destroy(d->next_cfg);
    hl_plugins_release(d->plugins);
    hl_config_destroy(d->cfg);
    hl_redactor_destroy(d->excerpt_redactor);
    for (size_t i = 0; i < d->n_conns; i++) {
        hl_redactor_destroy(d->conns[i]->redactor);
        free(d->conns[i]);
    }
    free(d->conns);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

void hl_dispatcher_stats_get(const hl_dispatcher *d, hl_dispatch_stats *out)
{
    out->attempts = atomic_load(&d->attempts);
    out->delivered = atomic_load(&d->delivered);
    out->retried = atomic_load(&d->retried);
    out->failed = atomic_load(&d->failed);
    out->circuit_opened = atomic_load(&d->circuit_opened);
    out->circuit_closed = atomic_load(&d->circuit_closed);
}
