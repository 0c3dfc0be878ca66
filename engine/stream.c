/* stream.c - GET /v1/stream: the live websocket feed of committed changes, filtered, resumable from the store. */
#include "stream.h"

#include "admin.h"
#include "err.h"
#include "id.h"
#include "log.h"
#include "metrics.h"
#include "ws.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Recent notes kept in memory; older ones are read from the store. */
#define RING 8192
/* Notes read from the store at a time for a client catching up. */
#define FETCH 512
/* The largest message a client may send (it has nothing to say but
 * control frames). */
#define MAX_IN 65536

static const char *const note_types[] = {
    "event.received", "event.normalized", "event.unparsed",
    "delivery.state", "connector.state", NULL};

typedef struct client client;

struct hl_stream {
    uv_loop_t *loop;
    hl_queue *q;
    hl_config *cfg;
    uv_async_t async;
    uv_timer_t heartbeat;
    /* From the writer's thread: the newest seq committed, and whether
     * any client listens (else notes are not copied at all). */
    _Atomic int64_t seen;
    _Atomic int watching;
    /* From the writer's thread, under mu. */
    pthread_mutex_t mu;
    hl_note *pending;
    size_t n_pending, cap_pending;
    /* The loop's own. */
    hl_note ring[RING];
    int64_t first, last; /* ring holds first..last; empty when first > last */
    client *clients;
    size_t n_clients;
    size_t busy;
    int shutting, closed;
    hl_metric *m_clients;
};

struct client {
    hl_stream *s;
    hl_http_raw *raw; /* NULL once gone */
    hl_ws_parser parser;
    hl_principal who;
    char tenant[80], source[80], connector[128];
    unsigned types;   /* bit per note_types entry; 0: all */
    int64_t next;     /* the seq it gets next */
    /* Messages written and not yet flushed, as the write offsets they end
     * at, oldest first. */
    uint64_t *ends;
    size_t n_ends, head;
    uint64_t written;
    int fetching;     /* a store read is in flight */
    int refs;         /* the connection, and a read in flight */
    int closing;
    int awaiting_pong;
    client *link;
};

static uint64_t buffer_of(const hl_stream *s)
{
    uint64_t n = s->cfg->stream.client_buffer;
    return n ? n : 1000;
}

/* ---- notes from the writer ---------------------------------------------- */

static int note_copy(hl_note *dst, const hl_note *src)
{
    *dst = (hl_note){.seq = src->seq, .at_ms = src->at_ms};
    dst->type = strdup(src->type);
    dst->json = strdup(src->json);
    dst->tenant = src->tenant ? strdup(src->tenant) : NULL;
    dst->source = src->source ? strdup(src->source) : NULL;
    dst->connector = src->connector ? strdup(src->connector) : NULL;
    if (!dst->type || !dst->json || (src->tenant && !dst->tenant) ||
        (src->source && !dst->source) ||
        (src->connector && !dst->connector)) {
        hl_note_clear(dst);
        return HL_ENOMEM;
    }
    return 0;
}

/* On the writer's thread, after a commit. */
static void on_notes(void *ud, const hl_note *v, size_t n)
{
    hl_stream *s = ud;
    if (!n)
        return;
    atomic_store(&s->seen, v[n - 1].seq);
    if (!atomic_load(&s->watching))
        return; /* nobody to tell: a client that comes reads the store */
    pthread_mutex_lock(&s->mu);
    if (s->n_pending + n > s->cap_pending) {
        size_t cap = s->cap_pending ? s->cap_pending : 256;
        while (cap < s->n_pending + n)
            cap *= 2;
        hl_note *p = realloc(s->pending, cap * sizeof *p);
        if (p) {
            s->pending = p;
            s->cap_pending = cap;
        }
    }
    for (size_t i = 0; i < n && s->n_pending < s->cap_pending; i++)
        if (!note_copy(&s->pending[s->n_pending], &v[i]))
            s->n_pending++;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

static hl_note *ring_at(hl_stream *s, int64_t seq)
{
    return &s->ring[(uint64_t)seq % RING];
}

static void ring_push_take(hl_stream *s, hl_note *n)
{
    if (n->seq <= s->last) { /* seen already */
        hl_note_clear(n);
        return;
    }
    if (n->seq != s->last + 1) { /* a gap: start the ring over */
        for (int64_t q = s->first; q <= s->last; q++)
            hl_note_clear(ring_at(s, q));
        s->first = n->seq;
    } else if (s->last - s->first + 1 >= RING) {
        hl_note_clear(ring_at(s, s->first));
        s->first++;
    }
    *ring_at(s, n->seq) = *n;
    s->last = n->seq;
    if (s->first > s->last)
        s->first = s->last;
}

/* ---- sending ------------------------------------------------------------- */

static void client_release(client *c);

static int send_frame(client *c, int opcode, const void *data, size_t len)
{
    if (!c->raw || c->closing)
        return -1;
    char small[256];
    hl_buf b;
    hl_buf_init(&b, small, sizeof small);
    int rc = hl_ws_frame(&b, opcode, data, len, NULL);
    if (!rc)
        rc = hl_http_raw_write(c->raw, b.p, b.len);
    if (!rc && (opcode == HL_WS_TEXT || opcode == HL_WS_BINARY)) {
        c->written += b.len;
        size_t cap = buffer_of(c->s) + 2;
        if (c->n_ends < cap)
            c->ends[(c->head + c->n_ends++) % cap] = c->written;
    }
    hl_buf_free(&b);
    return rc;
}

static void close_with(client *c, uint16_t code, const char *reason)
{
    if (!c->raw || c->closing)
        return;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    if (!hl_ws_close_frame(&b, code, reason, NULL))
        hl_http_raw_write(c->raw, b.p, b.len);
    hl_buf_free(&b);
    c->closing = 1;
    hl_http_raw_close(c->raw);
}

/* Messages sent and not yet flushed to the socket. */
static size_t unflushed(client *c)
{
    size_t cap = buffer_of(c->s) + 2;
    uint64_t flushed = c->written - hl_http_raw_pending(c->raw);
    while (c->n_ends && c->ends[c->head % cap] <= flushed) {
        c->head = (c->head + 1) % cap;
        c->n_ends--;
    }
    return c->n_ends;
}

static int type_index(const char *type)
{
    for (int i = 0; note_types[i]; i++)
        if (!strcmp(note_types[i], type))
            return i;
    return -1;
}

/* Whether c may see n and asked for it. */
static int wanted(const client *c, const hl_note *n)
{
    const char *tenant = n->tenant;
    if (!tenant && n->connector) { /* connector.state: the connector's */
        const hl_connector_cfg *cc =
            hl_config_connector(c->s->cfg, n->connector);
        tenant = cc ? cc->tenant : NULL;
    }
    if (!c->who.admin && (!tenant || strcmp(tenant, c->who.tenant)))
        return 0;
    if (*c->tenant && (!tenant || strcmp(tenant, c->tenant)))
        return 0;
    if (*c->source && (!n->source || strcmp(n->source, c->source)))
        return 0;
    if (*c->connector && (!n->connector || strcmp(n->connector, c->connector)))
        return 0;
    int t = type_index(n->type);
    return !c->types || (t >= 0 && (c->types >> t & 1));
}

/* Too slow: one "lagged" with the last seq it was sent, then goodbye. */
static void lagged(client *c)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg,
                     "{\"type\":\"lagged\",\"last_seq\":%lld,\"hint\":"
                     "\"reconnect with since=%lld\"}",
                     (long long)(c->next - 1), (long long)(c->next - 1));
    /* Past the buffer's bound on purpose: this one message. */
    send_frame(c, HL_WS_TEXT, msg, (size_t)n);
    char seq[32];
    snprintf(seq, sizeof seq, "%lld", (long long)(c->next - 1));
    HL_INFO("stream", "client too slow; told it lagged and closed it",
            "last_seq", seq);
    close_with(c, HL_WS_POLICY, "lagged");
}

static void fetch(client *c);

/* Send c what it has not had, from the ring (or the store when the ring
 * no longer holds it). live: new notes arrived, and a full buffer means
 * the client is too slow; else (resuming, or after a drain) it waits. */
static void pump(client *c, int live)
{
    hl_stream *s = c->s;
    int64_t newest = atomic_load(&s->seen);
    if (newest < s->last)
        newest = s->last;
    while (c->raw && !c->closing && !c->fetching && c->next <= newest) {
        if (c->next < s->first || c->next > s->last) {
            fetch(c); /* not in the ring: from the store */
            return;
        }
        const hl_note *n = ring_at(s, c->next);
        if (wanted(c, n)) {
            if (unflushed(c) >= buffer_of(s)) {
                if (live)
                    lagged(c);
                return; /* on_drain goes on */
            }
            send_frame(c, HL_WS_TEXT, n->json, strlen(n->json));
        }
        c->next++;
    }
}

typedef struct {
    uv_work_t uv;
    client *c;
    int64_t after;
    hl_note *v;
    size_t n;
    int64_t last;
    int rc;
} fetch_work;

static void run_fetch(uv_work_t *u)
{
    fetch_work *f = u->data;
    f->rc = hl_queue_read_notes(f->c->s->q, f->after, FETCH, &f->v, &f->n,
                                &f->last);
}

static void after_fetch(uv_work_t *u, int status)
{
    fetch_work *f = u->data;
    client *c = f->c;
    c->s->busy--;
    c->fetching = 0;
    if (status || f->rc) {
        close_with(c, HL_WS_INTERNAL, "the store could not be read");
    } else if (c->raw && !c->closing) {
        size_t i = 0;
        for (; i < f->n; i++) {
            hl_note *n = &f->v[i];
            if (n->seq < c->next)
                continue;
            if (wanted(c, n)) {
                if (unflushed(c) >= buffer_of(c->s))
                    break; /* on_drain goes on from here */
                send_frame(c, HL_WS_TEXT, n->json, strlen(n->json));
            }
            c->next = n->seq + 1;
        }
        /* Nothing stored from there: what is older was purged. */
        if (!f->n && c->next <= f->last)
            c->next = f->last + 1;
        if (i == f->n)
            pump(c, 0);
    }
    hl_notes_free(f->v, f->n);
    free(f);
    client_release(c);
}

static void fetch(client *c)
{
    fetch_work *f = calloc(1, sizeof *f);
    if (!f) {
        close_with(c, HL_WS_INTERNAL, "out of memory");
        return;
    }
    f->c = c;
    f->after = c->next - 1;
    f->uv.data = f;
    if (uv_queue_work(c->s->loop, &f->uv, run_fetch, after_fetch)) {
        free(f);
        close_with(c, HL_WS_INTERNAL, "could not read the store");
        return;
    }
    c->fetching = 1;
    c->refs++;
    c->s->busy++;
}

/* ---- the loop side of new notes ------------------------------------------ */

static void on_async(uv_async_t *a)
{
    hl_stream *s = a->data;
    pthread_mutex_lock(&s->mu);
    hl_note *v = s->pending;
    size_t n = s->n_pending;
    s->pending = NULL;
    s->n_pending = s->cap_pending = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        ring_push_take(s, &v[i]);
    free(v);
    for (client *c = s->clients; c; c = c->link)
        pump(c, 1);
}

/* ---- one client ---------------------------------------------------------- */

static void client_release(client *c)
{
    if (--c->refs)
        return;
    hl_ws_parser_close(&c->parser);
    free(c->ends);
    free(c);
}

static int on_message(void *ud, const hl_ws_message *m)
{
    client *c = ud;
    switch (m->opcode) {
    case HL_WS_PING:
        send_frame(c, HL_WS_PONG, m->data, m->len);
        break;
    case HL_WS_PONG:
        c->awaiting_pong = 0;
        break;
    case HL_WS_CLOSE:
        close_with(c, m->close_code == HL_WS_NO_STATUS ? 0 : HL_WS_NORMAL,
                   NULL);
        return 1;
    default:
        break; /* the feed goes one way: what a client says is ignored */
    }
    return 0;
}

static void on_data(hl_http_raw *r, const char *data, size_t len, void *ud)
{
    client *c = ud;
    (void)r;
    if (c->closing)
        return;
    int code = hl_ws_parser_feed(&c->parser, data, len, on_message, c);
    if (code > 1)
        close_with(c, (uint16_t)code, c->parser.error);
}

static void on_drain(hl_http_raw *r, void *ud)
{
    (void)r;
    pump(ud, 0);
}

static void on_close(hl_http_raw *r, void *ud)
{
    client *c = ud;
    (void)r;
    hl_stream *s = c->s;
    c->raw = NULL;
    for (client **p = &s->clients; *p; p = &(*p)->link)
        if (*p == c) {
            *p = c->link;
            break;
        }
    s->n_clients--;
    if (!s->n_clients)
        atomic_store(&s->watching, 0);
    hl_metric_set(s->m_clients, NULL, (double)s->n_clients);
    client_release(c);
}

static void on_heartbeat(uv_timer_t *t)
{
    hl_stream *s = t->data;
    char now[32];
    int n = snprintf(now, sizeof now, "%lld", (long long)hl_now_ms());
    for (client *c = s->clients; c; c = c->link) {
        if (c->closing)
            continue;
        if (c->awaiting_pong) {
            HL_INFO("stream", "client stopped answering pings; dropped");
            close_with(c, HL_WS_POLICY, "no pong to the last ping");
            continue;
        }
        c->awaiting_pong = 1;
        send_frame(c, HL_WS_PING, now, (size_t)n);
    }
}

/* The query's filters into c; 0, or why not in msg. */
static int parse_filters(client *c, const char *query, int64_t *since,
                         char *msg, size_t cap)
{
    static const char *const keys[] = {"tenant", "source", "connector",
                                       "types", "since", "access_token",
                                       NULL};
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&"), kl = strcspn(p, "=&"), i = 0;
        while (keys[i] && (strlen(keys[i]) != kl || strncmp(keys[i], p, kl)))
            i++;
        if (len && !keys[i]) {
            snprintf(msg, cap,
                     "unknown parameter '%.*s'; use tenant, source, "
                     "connector, types, since, access_token",
                     (int)(kl < 60 ? kl : 60), p);
            return -1;
        }
        p += len + (p[len] == '&');
    }
    hl_query_param(query, "tenant", c->tenant, sizeof c->tenant);
    hl_query_param(query, "source", c->source, sizeof c->source);
    hl_query_param(query, "connector", c->connector, sizeof c->connector);
    char v[256];
    if (hl_query_param(query, "types", v, sizeof v) && *v) {
        for (const char *p = v; *p;) {
            size_t k = strcspn(p, ",");
            int i = 0;
            while (note_types[i] && (strlen(note_types[i]) != k ||
                                     strncmp(note_types[i], p, k)))
                i++;
            if (!note_types[i]) {
                snprintf(msg, cap,
                         "types: '%.*s' is not one of event.received, "
                         "event.normalized, event.unparsed, delivery.state, "
                         "connector.state",
                         (int)(k < 60 ? k : 60), p);
                return -1;
            }
            c->types |= 1u << i;
            p += k + (p[k] == ',');
        }
    }
    *since = -1;
    if (hl_query_param(query, "since", v, sizeof v) && *v) {
        char *end;
        long long n = strtoll(v, &end, 10);
        if (*end || n < 0) {
            snprintf(msg, cap,
                     "since '%.60s' must be the seq of the last message "
                     "received (a number)",
                     v);
            return -1;
        }
        *since = n;
    }
    return 0;
}

void hl_stream_handle(hl_stream *s, hl_http_req *req)
{
    if (strcmp(req->method, "GET")) {
        hl_http_respond_error(req, 405, "method_not_allowed",
                              "/v1/stream is a websocket: GET with Upgrade",
                              "Allow: GET\r\n");
        return;
    }
    char accept[29];
    const char *why = NULL;
    int status = hl_ws_handshake_check(req, accept, &why);
    if (status) {
        hl_http_respond_error(req, status, "bad_handshake", why,
                              status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                              "Upgrade: websocket\r\n"
                                            : NULL);
        return;
    }
    client *c = calloc(1, sizeof *c);
    if (!c) {
        hl_http_respond_error(req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    if (hl_admin_auth(s->cfg, req, 1, &c->who)) {
        free(c);
        return;
    }
    char msg[300];
    int64_t since;
    if (parse_filters(c, req->query, &since, msg, sizeof msg)) {
        free(c);
        hl_http_respond_error(req, 400, "invalid_parameter", msg, NULL);
        return;
    }
    if (s->shutting || s->n_clients >= s->cfg->stream.max_clients) {
        free(c);
        hl_http_respond_error(req, 503,
                              s->shutting ? "shutting_down" : "too_many",
                              s->shutting ? "hookline is shutting down"
                                          : "stream.max_clients are "
                                            "connected; retry later",
                              "Retry-After: 5\r\n");
        return;
    }
    if (!(c->ends = calloc(buffer_of(s) + 2, sizeof *c->ends))) {
        free(c);
        hl_http_respond_error(req, 503, "unavailable",
                              "out of memory; retry later", NULL);
        return;
    }
    char extra[160];
    snprintf(extra, sizeof extra,
             "Upgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n", accept);
    static const hl_http_raw_cbs cbs = {on_data, on_drain, on_close};
    c->s = s;
    c->refs = 1;
    hl_ws_parser_init(&c->parser, MAX_IN, 1);
    /* Listen first, then read where the store is (on_notes does the
     * reverse): a note committed meanwhile is either copied for us or
     * before our start. A since past the newest note (a store that was
     * started afresh): from now on. */
    atomic_store(&s->watching, 1);
    int64_t newest = atomic_load(&s->seen);
    if (newest < s->last)
        newest = s->last;
    c->next = since >= 0 && since <= newest ? since + 1 : newest + 1;
    c->raw = hl_http_upgrade(req, extra, &cbs, c);
    if (!c->raw) {
        hl_ws_parser_close(&c->parser);
        free(c->ends);
        free(c);
        return;
    }
    c->link = s->clients;
    s->clients = c;
    s->n_clients++;
    hl_metric_set(s->m_clients, NULL, (double)s->n_clients);
    pump(c, 0);
}

/* ---- life ---------------------------------------------------------------- */

int hl_stream_create(uv_loop_t *loop, hl_queue *q, hl_config *cfg,
                     hl_stream **out)
{
    hl_stream *s = calloc(1, sizeof *s);
    if (!s)
        return HL_ENOMEM;
    s->loop = loop;
    s->q = q;
    s->cfg = hl_config_retain(cfg);
    s->m_clients = hl_metric_gauge("hookline_stream_clients",
                                   "Clients connected to /v1/stream.", "");
    hl_metric_set(s->m_clients, NULL, 0);
    pthread_mutex_init(&s->mu, NULL);
    uv_async_init(loop, &s->async, on_async);
    s->async.data = s;
    uv_timer_init(loop, &s->heartbeat);
    s->heartbeat.data = s;
    /* Listen first, then learn where the store is: a note committed in
     * between is in both, and the ring keeps one. */
    hl_queue_on_notes(q, on_notes, s);
    hl_note *none = NULL;
    size_t n = 0;
    int64_t last = 0;
    if (hl_queue_read_notes(q, INT64_MAX, 0, &none, &n, &last))
        HL_WARN("stream", "could not read the stream's last seq");
    hl_notes_free(none, n);
    s->last = last;
    s->first = last + 1;
    atomic_store(&s->seen, last);
    uint64_t beat = cfg->stream.heartbeat_ms ? cfg->stream.heartbeat_ms
                                             : 30000;
    uv_timer_start(&s->heartbeat, on_heartbeat, beat, beat);
    *out = s;
    return 0;
}

void hl_stream_set_config(hl_stream *s, hl_config *cfg)
{
    hl_config *old = s->cfg;
    s->cfg = hl_config_retain(cfg);
    uint64_t beat = cfg->stream.heartbeat_ms ? cfg->stream.heartbeat_ms
                                             : 30000;
    if (beat != old->stream.heartbeat_ms)
        uv_timer_start(&s->heartbeat, on_heartbeat, beat, beat);
    hl_config_destroy(old);
}

void hl_stream_shutdown(hl_stream *s)
{
    s->shutting = 1;
    for (client *c = s->clients; c; c = c->link)
        close_with(c, HL_WS_GOING_AWAY, "hookline is shutting down");
}

size_t hl_stream_busy(const hl_stream *s)
{
    return s ? s->busy : 0;
}

void hl_stream_close(hl_stream *s)
{
    if (!s || s->closed)
        return;
    s->closed = 1;
    hl_queue_on_notes(s->q, NULL, NULL);
    uv_close((uv_handle_t *)&s->async, NULL);
    uv_close((uv_handle_t *)&s->heartbeat, NULL);
}

void hl_stream_destroy(hl_stream *s)
{
    if (!s)
        return;
    for (int64_t q = s->first; q <= s->last && s->last - q < RING; q++)
        hl_note_clear(ring_at(s, q));
    hl_notes_free(s->pending, s->n_pending);
    pthread_mutex_destroy(&s->mu);
    hl_config_destroy(s->cfg);
    free(s);
}
