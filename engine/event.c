/* event.c - canonical events published through the API: checked against event.v1.json's rules and completed. */
#include "event.h"

#include "config.h"
#include "err.h"
#include "store_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *why;
    size_t cap;
    size_t len;
    int n;
} problems;

static void problem(problems *p, const char *path, const char *fmt, ...)
{
    if (p->len + 8 >= p->cap)
        return;
    int k = snprintf(p->why + p->len, p->cap - p->len, "%s%s: ",
                     p->n ? "; " : "", path);
    if (k < 0 || (size_t)k >= p->cap - p->len) {
        p->len = p->cap - 1;
        return;
    }
    p->len += (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(p->why + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    p->len = k < 0 || (size_t)k >= p->cap - p->len ? p->cap - 1
                                                    : p->len + (size_t)k;
    p->n++;
}

/* ^[a-z0-9_]+(\.[a-z0-9_]+)*$ */
static int dotted(const char *s)
{
    int seg = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (!seg)
                return 0;
            seg = 0;
        } else if (islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
                   *s == '_') {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

/* ^[a-z_]+$ */
static int word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), digit by digit. */
int hl_event_time_valid(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return 0;
    int mo = (s[5] - '0') * 10 + s[6] - '0', d = (s[8] - '0') * 10 + s[9] - '0';
    int h = (s[11] - '0') * 10 + s[12] - '0';
    int mi = (s[14] - '0') * 10 + s[15] - '0';
    int se = (s[17] - '0') * 10 + s[18] - '0';
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return 0;
    const char *p = s + i;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (!strcmp(p, "Z"))
        return 1;
    return (p[0] == '+' || p[0] == '-') && isdigit((unsigned char)p[1]) &&
           isdigit((unsigned char)p[2]) && p[3] == ':' &&
           isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) &&
           !p[6];
}

static const char *string_at(json_t *o, const char *key, const char *path,
                             int required, problems *p)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            problem(p, path, "required");
        return NULL;
    }
    if (!json_is_string(v) || !json_string_length(v)) {
        problem(p, path, "must be a non-empty string");
        return NULL;
    }
    return json_string_value(v);
}

static void check_keys(json_t *o, const char *const *known, const char *at,
                       problems *p)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key))
            i++;
        if (!known[i]) {
            char path[160];
            snprintf(path, sizeof path, "%s%.100s", at, key);
            problem(p, path, "not an attribute of event.v1.json");
        }
    }
}

static void check_data(json_t *ev, problems *p)
{
    static const char *const known[] = {"title", "text", "status", "url",
                                        "labels", "raw", NULL};
    json_t *data = json_object_get(ev, "data");
    if (!json_is_object(data)) {
        problem(p, "data", data ? "must be an object" : "required");
        return;
    }
    check_keys(data, known, "data.", p);
    string_at(data, "title", "data.title", 1, p);
    json_t *text = json_object_get(data, "text");
    if (text && !json_is_string(text))
        problem(p, "data.text", "must be a string");
    const char *status = string_at(data, "status", "data.status", 0, p);
    if (status && !word(status))
        problem(p, "data.status", "'%.60s' must match ^[a-z_]+$", status);
    string_at(data, "url", "data.url", 0, p);
    json_t *labels = json_object_get(data, "labels");
    if (!labels) {
        json_object_set_new(data, "labels", json_object());
    } else if (!json_is_object(labels)) {
        problem(p, "data.labels", "must be an object of strings");
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v) if (!json_is_string(v))
        {
            char path[160];
            snprintf(path, sizeof path, "data.labels.%.100s", k);
            problem(p, path, "must be a string");
        }
    }
    if (!json_object_get(data, "raw"))
        json_object_set_new(data, "raw", json_deep_copy(data));
}

/* An attribute the server sets: when sent, it must say the same. */
static void server_set(json_t *ev, const char *key, const char *value,
                       problems *p)
{
    json_t *v = json_object_get(ev, key);
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), value)))
        problem(p, key, "is set by hookline to '%s'; leave it out", value);
    else if (!v)
        json_object_set_new(ev, key, json_string(value));
}

int hl_event_complete(json_t *ev, const char *tenant, const char *id,
                      const char *correlation_id, int64_t now_ms, char *why,
                      size_t cap)
{
    static const char *const known[] = {
        "specversion", "id",       "source",        "type",     "time",
        "subject",     "tenant",   "datacontenttype", "severity",
        "correlationid", "dedupkey", "data",         NULL};
    problems p = {.why = why, .cap = cap};
    why[0] = 0;
    if (!json_is_object(ev)) {
        problem(&p, "body", "must be a JSON object: one canonical event");
        return HL_ESYNTAX;
    }
    check_keys(ev, known, "", &p);
    if (json_object_get(ev, "id"))
        problem(&p, "id", "is assigned by hookline; to publish once only, "
                          "send an Idempotency-Key header");
    json_t *t = json_object_get(ev, "tenant");
    if (t && (!json_is_string(t) || strcmp(json_string_value(t), tenant)))
        problem(&p, "tenant", "must be '%s', the tenant of the token", tenant);
    char source[128];
    snprintf(source, sizeof source, "/%s/%s", tenant, HL_API_SOURCE);
    server_set(ev, "source", source, &p);
    server_set(ev, "specversion", "1.0", &p);
    server_set(ev, "datacontenttype", "application/json", &p);
    const char *type = string_at(ev, "type", "type", 1, &p);
    if (type && !dotted(type))
        problem(&p, "type", "'%.60s' must be lowercase words joined by dots, "
                            "like alert.firing", type);
    const char *time = string_at(ev, "time", "time", 0, &p);
    if (time && !hl_event_time_valid(time))
        problem(&p, "time", "'%.60s' is not an RFC 3339 time such as "
                            "2026-11-28T07:30:16Z", time);
    string_at(ev, "subject", "subject", 0, &p);
    string_at(ev, "dedupkey", "dedupkey", 0, &p);
    string_at(ev, "correlationid", "correlationid", 0, &p);
    const char *sev = string_at(ev, "severity", "severity", 0, &p);
    if (sev && strcmp(sev, "critical") && strcmp(sev, "error") &&
        strcmp(sev, "warning") && strcmp(sev, "info"))
        problem(&p, "severity", "'%.60s' is not one of critical, error, "
                                "warning, info", sev);
    check_data(ev, &p);
    if (p.n)
        return HL_ESYNTAX;
    json_object_set_new(ev, "id", json_string(id));
    json_object_set_new(ev, "tenant", json_string(tenant));
    if (!time) {
        char at[32];
        hl__iso_ms(now_ms, at);
        json_object_set_new(ev, "time", json_string(at));
    }
    if (!sev)
        json_object_set_new(ev, "severity", json_string("info"));
    if (!json_object_get(ev, "correlationid"))
        json_object_set_new(ev, "correlationid", json_string(correlation_id));
    return 0;
}
