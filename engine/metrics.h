/* metrics.h - counters, gauges and histograms, read as Prometheus text format 0.0.4. */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include "buf.h"

#include <stddef.h>

typedef struct hl_metric hl_metric;

/* Families live for the whole process; every function is thread-safe.
 * labels: the label names, comma-separated ("connector,outcome"), or ""
 * for none. A family keeps at most HL_METRIC_SERIES label sets: past that,
 * new sets are counted under the value "_other" of every label. */
#define HL_METRIC_SERIES 200

hl_metric *hl_metric_counter(const char *name, const char *help,
                             const char *labels);
hl_metric *hl_metric_gauge(const char *name, const char *help,
                           const char *labels);
/* bounds: the upper bounds of the buckets, ascending; +Inf is added. */
hl_metric *hl_metric_histogram(const char *name, const char *help,
                               const char *labels, const double *bounds,
                               size_t n);

/* values: one per label name, in order (NULL when the family has none). */
void hl_metric_add(hl_metric *m, const char *const *values, double v);
void hl_metric_set(hl_metric *m, const char *const *values, double v);
void hl_metric_observe(hl_metric *m, const char *const *values, double v);
/* Forget every series of a gauge (before setting a fresh snapshot). */
void hl_metric_clear(hl_metric *m);

/* Every family in registration order. 0 or HL_ENOMEM. */
int hl_metrics_render(hl_buf *out);

/* Seconds, for latencies: 0.5 ms to 10 s. */
extern const double hl_metric_latency_bounds[];
extern const size_t hl_metric_latency_n;

#endif
