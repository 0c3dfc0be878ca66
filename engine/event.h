/* event.h - canonical events published through the API: checked against event.v1.json's rules and completed. */
#ifndef HL_EVENT_H
#define HL_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Check ev (a JSON object as posted) against schemas/event.v1.json and
 * complete it in place: id, tenant, source (/TENANT/api), specversion,
 * datacontenttype, and when absent time (now), severity (info),
 * correlationid, data.labels ({}) and data.raw (the data as posted).
 * Returns 0, or HL_ESYNTAX with every problem in why ("data.title:
 * required; type: ...").
 */
int hl_event_complete(json_t *ev, const char *tenant, const char *id,
                      const char *correlation_id, int64_t now_ms, char *why,
                      size_t cap);

/* 1 when s is an RFC 3339 date-time as event.v1.json accepts. */
int hl_event_time_valid(const char *s);

#endif
