/* metrics.c - counters, gauges and histograms, rendered as Prometheus text format 0.0.4. */
#include "metrics.h"

#include "err.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 64
#define MAX_LABELS 4

enum { COUNTER, GAUGE, HISTOGRAM };

typedef struct {
    char *key;    /* the values joined by \x1f: what lookups compare */
    char *labels; /* rendered: name="value",... (escaped) */
    double value; /* counter, gauge; histogram: the sum */
    uint64_t count;
    uint64_t *buckets; /* histogram: per bound, not cumulative */
} series;

struct hl_metric {
    const char *name, *help;
    int kind;
    char label_names[MAX_LABELS][32];
    size_t n_labels;
    const double *bounds;
    size_t n_bounds;
    pthread_mutex_t mu;
    series s[HL_METRIC_SERIES + 1]; /* the last: "_other" */
    size_t n;
};

const double hl_metric_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025, 0.05,   0.1,
                                           0.25,   0.5,   1,      2.5,
                                           5,      10};
const size_t hl_metric_latency_n =
    sizeof hl_metric_latency_bounds / sizeof *hl_metric_latency_bounds;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static hl_metric *families[MAX_FAMILIES];
static size_t n_families;

static hl_metric *family(const char *name, const char *help, int kind,
                         const char *labels, const double *bounds, size_t n)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_families; i++)
        if (!strcmp(families[i]->name, name)) {
            pthread_mutex_unlock(&reg_mu);
            return families[i];
        }
    hl_metric *m = n_families < MAX_FAMILIES ? calloc(1, sizeof *m) : NULL;
    if (!m) {
        pthread_mutex_unlock(&reg_mu);
        return NULL;
    }
    m->name = name;
    m->help = help;
    m->kind = kind;
    m->bounds = bounds;
    m->n_bounds = n;
    for (const char *p = labels; *p && m->n_labels < MAX_LABELS;) {
        size_t k = strcspn(p, ",");
        snprintf(m->label_names[m->n_labels++], 32, "%.*s", (int)k, p);
        p += k + (p[k] == ',');
    }
    pthread_mutex_init(&m->mu, NULL);
    families[n_families++] = m;
    pthread_mutex_unlock(&reg_mu);
    return m;
}

hl_metric *hl_metric_counter(const char *name, const char *help,
                             const char *labels)
{
    return family(name, help, COUNTER, labels, NULL, 0);
}

hl_metric *hl_metric_gauge(const char *name, const char *help,
                           const char *labels)
{
    return family(name, help, GAUGE, labels, NULL, 0);
}

hl_metric *hl_metric_histogram(const char *name, const char *help,
                               const char *labels, const double *bounds,
                               size_t n)
{
    return family(name, help, HISTOGRAM, labels, bounds, n);
}

/* A label value inside quotes: backslash, quote and newline escaped. */
static void put_escaped(hl_buf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            hl_buf_puts(b, "\\\\");
        else if (*p == '"')
            hl_buf_puts(b, "\\\"");
        else if (*p == '\n')
            hl_buf_puts(b, "\\n");
        else
            hl_buf_put(b, p, 1);
    }
}

static char *render_labels(const hl_metric *m, const char *const *values)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    for (size_t i = 0; i < m->n_labels; i++) {
        if (i)
            hl_buf_puts(&b, ",");
        hl_buf_puts(&b, m->label_names[i]);
        hl_buf_puts(&b, "=\"");
        put_escaped(&b, values && values[i] ? values[i] : "");
        hl_buf_puts(&b, "\"");
    }
    hl_buf_put(&b, "", 1);
    return hl_buf_take(&b, NULL);
}

/* The values joined by \x1f into buf (cut at its size). */
static void join(const hl_metric *m, const char *const *values, char *buf,
                 size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < m->n_labels && k + 1 < cap; i++) {
        int n = snprintf(buf + k, cap - k, "%s%s", i ? "\x1f" : "",
                         values && values[i] ? values[i] : "");
        k = n < 0 || (size_t)n >= cap - k ? cap - 1 : k + (size_t)n;
    }
}

/* The series for values, made when new; under m->mu. NULL: no memory. */
static series *find(hl_metric *m, const char *const *values)
{
    char key[512];
    join(m, values, key, sizeof key);
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].key, key))
            return &m->s[i];
    series *s;
    const char *const *vals = values;
    const char *other[MAX_LABELS] = {"_other", "_other", "_other", "_other"};
    if (m->n < HL_METRIC_SERIES) {
        s = &m->s[m->n];
    } else {
        /* Bounded: every further label set shares one series. */
        s = &m->s[HL_METRIC_SERIES];
        if (s->labels)
            return s;
        vals = other;
    }
    if (m->kind == HISTOGRAM &&
        !(s->buckets = calloc(m->n_bounds ? m->n_bounds : 1,
                              sizeof *s->buckets)))
        return NULL;
    s->labels = render_labels(m, vals);
    s->key = strdup(key);
    if (!s->labels || !s->key) {
        free(s->labels);
        free(s->key);
        free(s->buckets);
        memset(s, 0, sizeof *s);
        return NULL;
    }
    if (s != &m->s[HL_METRIC_SERIES])
        m->n++;
    return s;
}

void hl_metric_add(hl_metric *m, const char *const *values, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, values);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->mu);
}

void hl_metric_set(hl_metric *m, const char *const *values, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, values);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->mu);
}

void hl_metric_observe(hl_metric *m, const char *const *values, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, values);
    if (s) {
        s->value += v;
        s->count++;
        size_t i = 0;
        while (i < m->n_bounds && v > m->bounds[i])
            i++;
        if (i < m->n_bounds)
            s->buckets[i]++;
    }
    pthread_mutex_unlock(&m->mu);
}

void hl_metric_clear(hl_metric *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i <= HL_METRIC_SERIES; i++) {
        free(m->s[i].key);
        free(m->s[i].labels);
        free(m->s[i].buckets);
        memset(&m->s[i], 0, sizeof m->s[i]);
    }
    m->n = 0;
    pthread_mutex_unlock(&m->mu);
}

static void put_number(hl_buf *b, double v)
{
    char n[64];
    if (isinf(v))
        snprintf(n, sizeof n, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        snprintf(n, sizeof n, "%lld", (long long)v);
    else
        snprintf(n, sizeof n, "%.17g", v);
    hl_buf_puts(b, n);
}

/* name{labels[,extra]} */
static void put_sample(hl_buf *b, const char *name, const char *suffix,
                       const char *labels, const char *extra)
{
    hl_buf_puts(b, name);
    hl_buf_puts(b, suffix);
    int any = labels && *labels;
    if (any || extra) {
        hl_buf_puts(b, "{");
        if (any)
            hl_buf_puts(b, labels);
        if (any && extra)
            hl_buf_puts(b, ",");
        if (extra)
            hl_buf_puts(b, extra);
        hl_buf_puts(b, "}");
    }
    hl_buf_puts(b, " ");
}

static void render_series(hl_buf *b, const hl_metric *m, const series *s)
{
    if (m->kind != HISTOGRAM) {
        put_sample(b, m->name, "", s->labels, NULL);
        put_number(b, s->value);
        hl_buf_puts(b, "\n");
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= m->n_bounds; i++) {
        char le[48];
        if (i < m->n_bounds) {
            cum += s->buckets[i];
            snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
        } else {
            snprintf(le, sizeof le, "le=\"+Inf\"");
        }
        put_sample(b, m->name, "_bucket", s->labels, le);
        put_number(b, (double)(i < m->n_bounds ? cum : s->count));
        hl_buf_puts(b, "\n");
    }
    put_sample(b, m->name, "_sum", s->labels, NULL);
    put_number(b, s->value);
    hl_buf_puts(b, "\n");
    put_sample(b, m->name, "_count", s->labels, NULL);
    put_number(b, (double)s->count);
    hl_buf_puts(b, "\n");
}

int hl_metrics_render(hl_buf *out)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&reg_mu);
    size_t n = n_families;
    pthread_mutex_unlock(&reg_mu);
    for (size_t f = 0; f < n; f++) {
        hl_metric *m = families[f];
        pthread_mutex_lock(&m->mu);
        hl_buf_puts(out, "# HELP ");
        hl_buf_puts(out, m->name);
        hl_buf_puts(out, " ");
        hl_buf_puts(out, m->help);
        hl_buf_puts(out, "\n# TYPE ");
        hl_buf_puts(out, m->name);
        hl_buf_puts(out, " ");
        hl_buf_puts(out, kinds[m->kind]);
        hl_buf_puts(out, "\n");
        for (size_t i = 0; i < m->n; i++)
            render_series(out, m, &m->s[i]);
        if (m->s[HL_METRIC_SERIES].labels)
            render_series(out, m, &m->s[HL_METRIC_SERIES]);
        pthread_mutex_unlock(&m->mu);
    }
    return out->oom ? HL_ENOMEM : 0;
}
