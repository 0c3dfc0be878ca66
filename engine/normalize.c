/* normalize.c - the normalizer: stored webhooks -> canonical events, off the intake path. */
#include "normalize.h"

#include "err.h"
#include "id.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "ydoc.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define IDLE_WAIT_MS 1000
/* Now and then the whole queue is read again, so a webhook whose outcome
 * could not be committed (a full disk) is normalized again. */
#define RESCAN_MS 60000
/* After a reload, how long the retry of unparsed webhooks may take to be
 * committed before the queue is read from the start. */
#define RETRY_DELAY_MS 300

struct hl_normalizer {
    hl_queue *q;
    pthread_t thread;
    pthread_mutex_t mu; /* guards cfg and maps */
    hl_config *cfg;
    hl_mappings *maps;
    hl_router *router;
    /* Waking is apart from mu: the writer wakes us while holding the
     * queue's lock, and we settle (take the queue's lock) holding mu. */
    pthread_mutex_t wmu;
    pthread_cond_t cv;
    _Atomic int stopping;
    int woken;
    _Atomic uint64_t rescan_at; /* read from the start again after then */
    _Atomic uint64_t normalized, events, unparsed, unrouted, deliveries;
    hl_metric *m_webhooks, *m_unrouted;
};

int hl_mappings_for_config(const hl_config *cfg, hl_diags *d,
                           hl_mappings **out)
{
    char base[4000], dir[4096];
    *out = NULL;
    if (hl_config_find_dir(cfg->schemas_path, "schemas", base, sizeof base)) {
        hl_diags_add(d, HL_DIAG_ERROR, cfg->file, 0, 0, "schemas_path",
                     "%s: no such folder; set schemas_path to the folder "
                     "holding event.v1.json and sources/",
                     base);
        return HL_ECONFIG;
    }
    snprintf(dir, sizeof dir, "%s/sources", base);
    size_t before = d->errors;
    int rc = hl_mappings_load(dir, d, out);
    if (rc)
        return rc;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const hl_source_cfg *s = &cfg->sources[i];
        if (hl_mappings_get(*out, s->kind))
            continue;
        const hl_ynode *k = hl_ynode_get(s->node, "kind");
        char path[128];
        snprintf(path, sizeof path, "sources.%s.kind", s->name);
        hl_diags_add(d, HL_DIAG_ERROR, cfg->file, k ? k->line : 0,
                     k ? k->col : 0, path,
                     "no mapping for kind '%s': expected %s/%s.yaml (kinds "
                     "are the file names there)",
                     s->kind, dir, s->kind);
    }
    if (d->errors > before) {
        hl_mappings_destroy(*out);
        *out = NULL;
        return HL_ECONFIG;
    }
    return 0;
}

static void wake(void *ud)
{
    hl_normalizer *n = ud;
    pthread_mutex_lock(&n->wmu);
    n->woken = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->wmu);
}

static char *dup_field(json_t *e, const char *key)
{
    const char *v = json_string_value(json_object_get(e, key));
    return v ? strdup(v) : NULL;
}

/* The connectors the routes send e to: one delivery each. */
static int route_row(hl_normalizer *n, json_t *e, hl_canonical_row *r)
{
    size_t idx[256];
    const char *route = NULL;
    size_t k = hl_route_event(n->router, e, idx, 256, &route);
    if (k > 256)
        k = 256; /* more connectors than any configuration has */
    if (!route) {
        atomic_fetch_add(&n->unrouted, 1);
        hl_metric_add(n->m_unrouted, NULL, 1);
        return 0;
    }
    if (!(r->route = strdup(route)))
        return HL_ENOMEM;
    if (!k)
        return 0;
    r->connectors = calloc(k, sizeof *r->connectors);
    r->delivery_ids = calloc(k, sizeof *r->delivery_ids);
    if (!r->connectors || !r->delivery_ids)
        return HL_ENOMEM;
    int64_t now = hl_now_ms();
    for (size_t i = 0; i < k; i++) {
        r->n_deliveries++;
        if (!(r->connectors[i] = strdup(n->cfg->connectors[idx[i]].name)) ||
            hl_id_new(now, r->delivery_ids[i]))
            return HL_ENOMEM;
    }
    atomic_fetch_add(&n->deliveries, k);
    return 0;
}

/* The events as rows, serialized here rather than on the writer, with the
 * deliveries the routes make. data.raw is a part of the stored body: where
 * the mapping says where, it is kept as a pointer instead of a copy. */
static int to_rows(hl_normalizer *nz, hl_settle *out, const hl_mapping *m,
                   json_t *events)
{
    size_t n = json_array_size(events);
    out->rows = calloc(n ? n : 1, sizeof *out->rows);
    if (!out->rows)
        return HL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(events, i);
        hl_canonical_row *r = &out->rows[i];
        out->n++;
        r->id = dup_field(e, "id");
        r->type = dup_field(e, "type");
        r->severity = dup_field(e, "severity");
        r->dedupkey = dup_field(e, "dedupkey");
        r->time = dup_field(e, "time");
        if (route_row(nz, e, r))
            return HL_ENOMEM;
        char ptr[512];
        json_t *data = json_object_get(e, "data");
        if (m && !hl_map_raw_pointer(m, i, ptr, sizeof ptr)) {
            r->raw_ptr = strdup(ptr);
            json_object_del(data, "raw");
        }
        r->body = json_dumps(e, JSON_COMPACT);
        if (!r->id || !r->type || !r->severity || !r->time || !r->body)
            return HL_ENOMEM;
    }
    return 0;
}

/* One stored webhook: its canonical events, or why it is unparsed. */
static hl_settle *normalize_one(hl_normalizer *n, const hl_stored *st)
{
    hl_settle *out = calloc(1, sizeof *out);
    if (!out)
        return NULL;
    snprintf(out->event_id, sizeof out->event_id, "%s", st->ev.id);
    out->seq = st->seq;
    snprintf(out->tenant, sizeof out->tenant, "%s", st->ev.tenant);
    snprintf(out->source, sizeof out->source, "%s", st->ev.source);
    const hl_source_cfg *src = hl_config_source(n->cfg, st->ev.source);
    const hl_mapping *m = src ? hl_mappings_get(n->maps, src->kind) : NULL;
    json_t *events = NULL;
    if (!src && !strcmp(st->ev.source, HL_API_SOURCE)) {
        /* Published with POST /v1/events: checked and completed then. */
        json_t *e = json_loadb(st->ev.body, st->ev.body_len, 0, NULL);
        if (json_is_object(e) && (events = json_array()) &&
            !json_array_append_new(events, e))
            out->parsed = 1;
        else
            snprintf(out->reason, sizeof out->reason,
                     "the published event is not a JSON object");
        if (!out->parsed)
            json_decref(e);
    } else if (!src)
        snprintf(out->reason, sizeof out->reason,
                 "source '%s' is no longer in the configuration; add it back "
                 "and normalize the event again",
                 st->ev.source);
    else if (!m)
        snprintf(out->reason, sizeof out->reason,
                 "no mapping for kind '%s'", src->kind);
    else if (!hl_map_apply(m, src, &st->ev, &events, out->reason,
                           sizeof out->reason))
        out->parsed = 1;
    if (out->parsed && to_rows(n, out, m, events)) {
        json_decref(events);
        hl_settle_free(out);
        return NULL;
    }
    json_decref(events);
    return out;
}

static void account(hl_normalizer *n, const hl_settle *st)
{
    const char *v[] = {st->source, st->parsed ? "normalized" : "unparsed"};
    hl_metric_add(n->m_webhooks, v, 1);
    if (st->parsed) {
        atomic_fetch_add(&n->normalized, 1);
        atomic_fetch_add(&n->events, st->n);
        return;
    }
    atomic_fetch_add(&n->unparsed, 1);
    HL_WARN("normalize", "event unparsed; its raw body is kept", "id",
            st->event_id, "reason", st->reason);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleep until new events are committed, the timeout, or stop. */
static int wait_for_more(hl_normalizer *n, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&n->wmu);
    while (!n->woken && !n->stopping)
        if (pthread_cond_timedwait(&n->cv, &n->wmu, &until) == ETIMEDOUT)
            break;
    n->woken = 0;
    int stop = n->stopping;
    pthread_mutex_unlock(&n->wmu);
    return stop;
}

static void *run(void *arg)
{
    hl_normalizer *n = arg;
    /* Only on otherwise idle CPU: under load intake keeps its latency, and
     * the normalizer catches up as soon as there is room (the backlog is
     * bounded by storage.max_queued). */
    struct sched_param sp = {0};
    if (sched_setscheduler((pid_t)syscall(SYS_gettid), SCHED_IDLE, &sp) &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19))
        HL_DEBUG("normalize", "could not lower the thread's priority");
    int64_t last = -1; /* from the committed cursor */
    for (;;) {
        hl_stored_batch b;
        if (hl_queue_read_received(n->q, last, BATCH, &b)) {
            if (wait_for_more(n, IDLE_WAIT_MS))
                break;
            continue;
        }
        last = b.from; /* moved back when a commit of outcomes failed */
        pthread_mutex_lock(&n->mu);
        for (size_t i = 0; i < b.n && !n->stopping; i++) {
            hl_settle *st = normalize_one(n, &b.v[i]);
            if (!st)
                break;
            account(n, st);
            int rc;
            while ((rc = hl_queue_settle_take(n->q, st)) == HL_EBUSY &&
                   !n->stopping) {
                struct timespec pause = {0, 5 * 1000000};
                nanosleep(&pause, NULL); /* the writer is behind */
            }
            if (rc) {
                if (rc == HL_EBUSY)
                    hl_settle_free(st);
                break;
            }
            last = b.v[i].seq;
        }
        int stop = n->stopping;
        pthread_mutex_unlock(&n->mu);
        size_t got = b.n;
        hl_stored_batch_free(&b);
        if (stop)
            break;
        if (got == BATCH)
            continue;
        if (mono_ms() >= n->rescan_at) {
            last = -1;
            n->rescan_at = mono_ms() + RESCAN_MS;
        }
        if (wait_for_more(n, IDLE_WAIT_MS))
            break;
    }
    return NULL;
}

int hl_normalizer_start(hl_queue *q, hl_config *cfg, hl_mappings *maps,
                        hl_normalizer **out)
{
    hl_normalizer *n = calloc(1, sizeof *n);
    if (!n) {
        hl_mappings_destroy(maps);
        return HL_ENOMEM;
    }
    n->q = q;
    n->m_webhooks = hl_metric_counter(
        "hookline_webhooks_normalized_total",
        "Stored webhooks normalized, by source and result (normalized, "
        "unparsed).",
        "source,result");
    n->m_unrouted = hl_metric_counter(
        "hookline_events_unrouted_total",
        "Canonical events that no route matched.", "");
    if (hl_router_create(cfg, &n->router)) {
        hl_mappings_destroy(maps);
        free(n);
        return HL_ENOMEM;
    }
    n->cfg = hl_config_retain(cfg);
    n->maps = maps;
    n->rescan_at = mono_ms() + RESCAN_MS;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->wmu, NULL);
    pthread_cond_init(&n->cv, NULL);
    hl_queue_on_commit(q, wake, n);
    if (pthread_create(&n->thread, NULL, run, n)) {
        hl_queue_on_commit(q, NULL, NULL);
        hl_config_destroy(n->cfg);
        hl_mappings_destroy(maps);
        hl_router_destroy(n->router);
        pthread_mutex_destroy(&n->mu);
        pthread_mutex_destroy(&n->wmu);
        pthread_cond_destroy(&n->cv);
        free(n);
        return HL_EINTERNAL;
    }
    *out = n;
    return 0;
}

void hl_normalizer_set_config(hl_normalizer *n, hl_config *cfg,
                              hl_mappings *maps)
{
    hl_router *router = NULL;
    if (hl_router_create(cfg, &router)) {
        HL_ERROR("normalize", "out of memory building the routes; the "
                              "running configuration is kept");
        hl_mappings_destroy(maps);
        return;
    }
    pthread_mutex_lock(&n->mu);
    hl_config *old = n->cfg;
    hl_mappings *old_maps = n->maps;
    hl_router *old_router = n->router;
    n->cfg = hl_config_retain(cfg);
    n->maps = maps;
    n->router = router;
    pthread_mutex_unlock(&n->mu);
    hl_config_destroy(old);
    hl_mappings_destroy(old_maps);
    hl_router_destroy(old_router);
    /* A fixed mapping may fit what did not: unparsed webhooks go back in
     * line, and are read again once that has been committed. */
    if (hl_queue_retry_unparsed(n->q))
        HL_WARN("normalize", "could not queue unparsed events again");
    n->rescan_at = mono_ms() + RETRY_DELAY_MS;
    wake(n);
}

void hl_normalizer_stop(hl_normalizer *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->wmu);
    n->stopping = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->wmu);
    pthread_join(n->thread, NULL);
    hl_queue_on_commit(n->q, NULL, NULL); /* the writer calls it no more */
    char a[32], b[32], c[32], d[32], e[32];
    snprintf(a, sizeof a, "%llu", (unsigned long long)n->normalized);
    snprintf(b, sizeof b, "%llu", (unsigned long long)n->events);
    snprintf(c, sizeof c, "%llu", (unsigned long long)n->unparsed);
    snprintf(d, sizeof d, "%llu", (unsigned long long)n->unrouted);
    snprintf(e, sizeof e, "%llu", (unsigned long long)n->deliveries);
    HL_INFO("normalize", "stopped", "normalized", a, "events", b, "unparsed",
            c, "unrouted", d, "deliveries", e);
    hl_config_destroy(n->cfg);
    hl_mappings_destroy(n->maps);
    hl_router_destroy(n->router);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->wmu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

void hl_normalizer_stats_get(const hl_normalizer *n, hl_normalizer_stats *out)
{
    out->normalized = atomic_load(&n->normalized);
    out->events = atomic_load(&n->events);
    out->unparsed = atomic_load(&n->unparsed);
    out->unrouted = atomic_load(&n->unrouted);
    out->deliveries = atomic_load(&n->deliveries);
}
