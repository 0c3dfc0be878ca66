/* store_admin.c - the SQLite store's answers to operators: listings, one event or delivery, repairs, retention, the stream's notes. */
#include "store_int.h"

#include "err.h"
#include "id.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_DEFAULT 50
#define LIST_MAX 500
#define REPAIR_BATCH 1000
#define PURGE_SCAN 2000

/* ---- notes ------------------------------------------------------------- */

void hl__iso_ms(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", day, (int)(ms % 1000));
}

void hl_note_clear(hl_note *x)
{
    free(x->type);
    free(x->tenant);
    free(x->source);
    free(x->connector);
    free(x->json);
    memset(x, 0, sizeof *x);
}

void hl_notes_free(hl_note *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        hl_note_clear(&v[i]);
    free(v);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int hl__note_add(hl__notes *nb, const char *type, const char *tenant,
                 const char *source, const char *connector, json_t *fields)
{
    if (!fields)
        return SQLITE_NOMEM;
    if (nb->n == nb->cap) {
        size_t cap = nb->cap ? nb->cap * 2 : 64;
        hl_note *v = realloc(nb->v, cap * sizeof *v);
        if (!v) {
            json_decref(fields);
            return SQLITE_NOMEM;
        }
        nb->v = v;
        nb->cap = cap;
    }
    int64_t now = hl_now_ms();
    char at[32];
    hl__iso_ms(now, at);
    int64_t seq = nb->seq + 1;
    json_object_set_new(fields, "seq", json_integer(seq));
    json_object_set_new(fields, "type", json_string(type));
    json_object_set_new(fields, "time", json_string(at));
    char *text = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(fields);
    hl_note *n = &nb->v[nb->n];
    *n = (hl_note){.seq = seq,
                   .at_ms = now,
                   .type = strdup(type),
                   .tenant = dup_or_null(tenant),
                   .source = dup_or_null(source),
                   .connector = dup_or_null(connector),
                   .json = text};
    int rc = SQLITE_NOMEM;
    if (!text || !n->type || (tenant && !n->tenant) ||
        (source && !n->source) || (connector && !n->connector))
        goto fail;
    sqlite3_stmt *st = nb->ins;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    bind_text(st, 4, tenant);
    bind_text(st, 5, source);
    bind_text(st, 6, connector);
    sqlite3_bind_text(st, 7, text, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        nb->seq = seq;
        nb->n++;
        return SQLITE_OK;
    }
fail:
    hl_note_clear(n);
    return rc;
}

int hl__notes_read(sqlite3 *db, int64_t after, size_t max, hl_note **out,
                   size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT seq, at, type, tenant, source, "
                                "connector, body FROM stream WHERE seq > ?1 "
                                "ORDER BY seq LIMIT ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    hl_note *v = calloc(max ? max : 1, sizeof *v);
    if (!v) {
        sqlite3_finalize(st);
        return SQLITE_NOMEM;
    }
    size_t k = 0;
    while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_note *x = &v[k++];
        x->seq = sqlite3_column_int64(st, 0);
        x->at_ms = sqlite3_column_int64(st, 1);
        x->type = dup_or_null((const char *)sqlite3_column_text(st, 2));
        x->tenant = dup_or_null((const char *)sqlite3_column_text(st, 3));
        x->source = dup_or_null((const char *)sqlite3_column_text(st, 4));
        x->connector = dup_or_null((const char *)sqlite3_column_text(st, 5));
        x->json = dup_or_null((const char *)sqlite3_column_text(st, 6));
        if (!x->type || !x->json) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        hl_notes_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return SQLITE_OK;
}

/* ---- filters ------------------------------------------------------------ */

/* The filter's conditions, over e (events), and d (deliveries) with c
 * (canonical) when deliveries are listed. Parameters ?1..?9 are bound by
 * bind_filter in this order: tenant, source, type, states, connector,
 * since, until, cursor, id. */
#define FILTER_EVENTS                                                          \
    "(?1 IS NULL OR e.tenant = ?1) AND (?2 IS NULL OR e.source = ?2) AND "     \
    "(?6 = 0 OR e.received_at >= ?6) AND (?7 = 0 OR e.received_at < ?7) AND "  \
    "(?3 IS NULL OR EXISTS (SELECT 1 FROM canonical c WHERE c.event_id = "     \
    "e.id AND c.type GLOB ?3)) AND (?4 IS NULL OR instr(',' || ?4 || ',', "   \
    "',' || e.state || ',') > 0 OR EXISTS (SELECT 1 FROM canonical c JOIN "    \
    "deliveries d ON d.canonical_id = c.id WHERE c.event_id = e.id AND "       \
    "instr(',' || ?4 || ',', ',' || d.state || ',') > 0)) AND "               \
    "(?5 IS NULL OR EXISTS (SELECT 1 FROM canonical c JOIN deliveries d ON "   \
    "d.canonical_id = c.id WHERE c.event_id = e.id AND d.connector = ?5))"

#define FILTER_DELIVERIES                                                      \
    "(?1 IS NULL OR d.tenant = ?1) AND (?2 IS NULL OR d.source = ?2) AND "     \
    "(?3 IS NULL OR c.type GLOB ?3) AND (?4 IS NULL OR instr(',' || ?4 || "    \
    "',', ',' || d.state || ',') > 0) AND (?5 IS NULL OR d.connector = ?5) "   \
    "AND (?6 = 0 OR e.received_at >= ?6) AND (?7 = 0 OR e.received_at < ?7) "  \
    "AND (?9 IS NULL OR d.event_id = ?9 OR d.canonical_id = ?9)"

static void bind_filter(sqlite3_stmt *st, const hl_query *q)
{
    bind_text(st, 1, q->tenant);
    bind_text(st, 2, q->source);
    bind_text(st, 3, q->type);
    bind_text(st, 4, q->state);
    bind_text(st, 5, q->connector);
    sqlite3_bind_int64(st, 6, q->since_ms);
    sqlite3_bind_int64(st, 7, q->until_ms);
    sqlite3_bind_int64(st, 8, q->cursor);
    bind_text(st, 9, q->id);
}

static size_t limit_of(const hl_query *q)
{
    if (!q->limit)
        return LIST_DEFAULT;
    return q->limit > LIST_MAX ? LIST_MAX : q->limit;
}

#define ISO(x) "strftime('%Y-%m-%dT%H:%M:%fZ', (" x ") / 1000.0, 'unixepoch')"

#define EVENT_JSON                                                             \
    "json_object('id', e.id, 'tenant', e.tenant, 'source', e.source, "         \
    "'received_at', " ISO("e.received_at") ", 'state', e.state, 'reason', "    \
    "e.state_reason, 'correlation_id', e.correlation_id, 'content_type', "     \
    "e.content_type, 'size', length(e.body), 'events', json((SELECT "         \
    "json_group_array(json_object('id', c.id, 'type', c.type, 'severity', "    \
    "c.severity, 'route', c.route)) FROM canonical c WHERE c.event_id = "      \
    "e.id)), 'deliveries', json((SELECT json_group_object(state, n) FROM "     \
    "(SELECT d.state AS state, count(*) AS n FROM canonical c JOIN "           \
    "deliveries d ON d.canonical_id = c.id WHERE c.event_id = e.id GROUP BY "  \
    "d.state))))"

#define DELIVERY_JSON                                                          \
    "json_object('id', d.id, 'event_id', d.event_id, 'canonical_id', "        \
    "d.canonical_id, 'tenant', d.tenant, 'source', d.source, 'connector', "   \
    "d.connector, 'route', d.route, 'type', c.type, 'state', d.state, "       \
    "'attempts', d.attempts, 'created_at', " ISO("d.created_at") ", "         \
    "'updated_at', " ISO("d.updated_at") ", 'next_attempt_at', CASE WHEN "    \
    "d.state IN ('queued', 'retrying') THEN " ISO("d.next_at") " END, "       \
    "'last_status', d.last_status, 'last_error', d.last_error)"

/* Rows of (seq, json text) into {"KEY": [...], "next_cursor": ...}. */
static int list_rows(sqlite3_stmt *st, const char *key, size_t limit,
                     json_t **out)
{
    json_t *arr = json_array();
    int64_t last = 0;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        json_t *item = json_loads((const char *)sqlite3_column_text(st, 1),
                                  0, NULL);
        if (item)
            json_array_append_new(arr, item);
        n++;
    }
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, key, arr);
    char cur[32];
    snprintf(cur, sizeof cur, "%lld", (long long)last);
    json_object_set_new(o, "next_cursor",
                        n == limit && last > 1 ? json_string(cur) : json_null());
    *out = o;
    return SQLITE_OK;
}

static int list(sqlite3 *db, const hl_query *q, json_t **out)
{
    int events = q->kind == HL_Q_EVENTS;
    const char *sql =
        events ? "SELECT e.seq, " EVENT_JSON " FROM events e WHERE "
                 "(?8 = 0 OR e.seq < ?8) AND " FILTER_EVENTS
                 " AND (?9 IS NULL OR e.id = ?9) ORDER BY e.seq DESC LIMIT ?10"
               : "SELECT d.seq, " DELIVERY_JSON " FROM deliveries d JOIN "
                 "canonical c ON c.id = d.canonical_id JOIN events e ON e.id "
                 "= d.event_id WHERE (?8 = 0 OR d.seq < ?8) AND "
                 FILTER_DELIVERIES " ORDER BY d.seq DESC LIMIT ?10";
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_filter(st, q);
    size_t limit = limit_of(q);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)limit);
    rc = list_rows(st, events ? "events" : "deliveries", limit, out);
    sqlite3_finalize(st);
    return rc;
}

/* One JSON text from a statement with one row and one column. */
static int one_json(sqlite3 *db, const char *sql, const hl_query *q,
                    json_t **out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_text(st, 1, q->id);
    bind_text(st, 2, q->tenant);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        rc = *out ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The webhook's body as JSON when it is, else as text or base64. */
static void put_body(json_t *o, const void *body, size_t len)
{
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (j) {
        json_object_set_new(o, "body", j);
        return;
    }
    j = json_stringn(body, len); /* NULL unless valid UTF-8 */
    if (j) {
        json_object_set_new(o, "body_text", j);
        return;
    }
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (!b64)
        return;
    EVP_EncodeBlock((unsigned char *)b64, body, (int)len);
    json_object_set_new(o, "body_base64", json_string(b64));
    free(b64);
}

/* data.raw back in place where it was kept as a pointer into the body. */
static void put_raw(json_t *ev, const char *ptr, const json_t *body)
{
    json_t *cur = (json_t *)body;
    const char *p = ptr;
    while (cur && *p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        char tok[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof tok; i++) {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                tok[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                tok[k++] = p[i];
            }
        }
        tok[k] = 0;
        if (json_is_array(cur)) {
            char *end;
            unsigned long idx = strtoul(tok, &end, 10);
            cur = *end || !*tok ? NULL : json_array_get(cur, idx);
        } else {
            cur = json_object_get(cur, tok);
        }
        p += n;
    }
    json_t *data = json_object_get(ev, "data");
    if (cur && json_is_object(data))
        json_object_set(data, "raw", cur);
}

static int event_get(sqlite3 *db, const hl_query *q, json_t **out)
{
    int rc = one_json(db,
                      "SELECT " EVENT_JSON " FROM events e WHERE e.id = ?1 "
                      "AND (?2 IS NULL OR e.tenant = ?2)",
                      q, out);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db,
                            "SELECT headers, body FROM events WHERE id = ?1",
                            -1, &st, NULL);
    json_t *body = NULL;
    if (rc == SQLITE_OK) {
        bind_text(st, 1, q->id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            json_object_set_new(*out, "headers",
                                json_loads((const char *)sqlite3_column_text(
                                               st, 0),
                                           0, NULL));
            const void *b = sqlite3_column_blob(st, 1);
            size_t n = (size_t)sqlite3_column_bytes(st, 1);
            put_body(*out, b ? b : "", n);
            body = json_loadb(b ? b : "", n, JSON_DECODE_ANY, NULL);
        }
        sqlite3_finalize(st);
    }
    /* The canonical events in full, and every delivery of each. */
    rc = sqlite3_prepare_v2(
        db,
        "SELECT c.body, c.raw_ptr, json((SELECT json_group_array(" DELIVERY_JSON
        ") FROM deliveries d WHERE d.canonical_id = c.id)) FROM canonical c "
        "WHERE c.event_id = ?1 ORDER BY c.seq",
        -1, &st, NULL);
    if (rc != SQLITE_OK) {
        json_decref(body);
        json_decref(*out);
        *out = NULL;
        return rc;
    }
    bind_text(st, 1, q->id);
    json_t *events = json_array(), *deliveries = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *ev = json_loads((const char *)sqlite3_column_text(st, 0), 0,
                                NULL);
        if (ev && sqlite3_column_type(st, 1) != SQLITE_NULL)
            put_raw(ev, (const char *)sqlite3_column_text(st, 1), body);
        if (ev)
            json_array_append_new(events, ev);
        json_t *d = json_loads((const char *)sqlite3_column_text(st, 2), 0,
                               NULL);
        json_array_extend(deliveries, d);
        json_decref(d);
    }
    sqlite3_finalize(st);
    json_decref(body);
    json_object_set_new(*out, "canonical", events);
    json_object_set_new(*out, "deliveries", deliveries);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int delivery_get(sqlite3 *db, const hl_query *q, json_t **out)
{
    int rc = one_json(
        db,
        "SELECT json_set(" DELIVERY_JSON ", '$.attempt_list', json((SELECT "
        "json_group_array(json_object('attempt', a.attempt, 'started_at', "
        ISO("a.started_at") ", 'duration_ms', a.duration_ms, 'status', "
        "a.status, 'outcome', a.outcome, 'error_class', a.error_class, "
        "'reason', a.reason, 'response', a.response)) FROM (SELECT * FROM "
        "attempts WHERE delivery_id = d.id ORDER BY seq) a))) FROM deliveries "
        "d JOIN canonical c ON c.id = d.canonical_id WHERE d.id = ?1 AND (?2 "
        "IS NULL OR d.tenant = ?2)",
        q, out);
    if (rc != SQLITE_OK)
        return rc;
    /* "attempts" is the count in listings; here the list takes the name. */
    json_t *list = json_object_get(*out, "attempt_list");
    json_object_set(*out, "attempts", list);
    json_object_del(*out, "attempt_list");
    return SQLITE_OK;
}

static int depth(sqlite3 *db, const hl_query *q, json_t **out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT connector, state, count(*) FROM deliveries WHERE state IN "
        "('queued', 'retrying', 'sending') AND (?1 IS NULL OR tenant = ?1) "
        "GROUP BY connector, state",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_text(st, 1, q->tenant);
    json_t *o = json_object();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st, 0);
        json_t *per = json_object_get(o, c);
        if (!per) {
            per = json_object();
            json_object_set_new(o, c, per);
        }
        json_object_set_new(per, (const char *)sqlite3_column_text(st, 1),
                            json_integer(sqlite3_column_int64(st, 2)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return SQLITE_OK;
}

int hl__ask_read(sqlite3 *db, const hl_query *q, json_t **out)
{
    *out = NULL;
    switch (q->kind) {
    case HL_Q_EVENTS:
    case HL_Q_DELIVERIES:
        return list(db, q, out);
    case HL_Q_EVENT:
        return event_get(db, q, out);
    case HL_Q_DELIVERY:
        return delivery_get(db, q, out);
    case HL_Q_DEPTH:
        return depth(db, q, out);
    default:
        return SQLITE_MISUSE;
    }
}

/* ---- repairs ------------------------------------------------------------ */

/* A delivery back in line: due now, with a fresh round of its policy's
 * attempts and age limit. */
#define REQUEUE_SET                                                            \
    "UPDATE deliveries SET state = 'queued', next_at = ?20, updated_at = "    \
    "?20, round_at = ?20, attempt_base = attempts WHERE "

#define REQUEUE_RETURNING                                                      \
    " RETURNING id, event_id, canonical_id, tenant, source, connector, "      \
    "attempts"

static int note_queued(hl__notes *nb, sqlite3_stmt *st, const char *why)
{
    json_t *f = json_pack(
        "{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:I, s:s}", "delivery_id",
        sqlite3_column_text(st, 0), "event_id", sqlite3_column_text(st, 1),
        "canonical_id", sqlite3_column_text(st, 2), "tenant",
        sqlite3_column_text(st, 3), "source", sqlite3_column_text(st, 4),
        "connector", sqlite3_column_text(st, 5), "state", "queued",
        "attempt", (json_int_t)sqlite3_column_int64(st, 6), "reason", why);
    return hl__note_add(nb, "delivery.state",
                        (const char *)sqlite3_column_text(st, 3),
                        (const char *)sqlite3_column_text(st, 4),
                        (const char *)sqlite3_column_text(st, 5), f);
}

/* Run a requeueing UPDATE ... RETURNING, noting each row. */
static int requeue_rows(sqlite3_stmt *st, hl__notes *nb, const char *why,
                        uint64_t *n)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        (*n)++;
        if ((rc = note_queued(nb, st, why)) != SQLITE_OK)
            return rc;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int retry_one(sqlite3 *db, hl__notes *nb, const hl_query *q,
                     json_t **out, hl__repair *rep)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT state FROM deliveries WHERE id = ?1 "
                                "AND (?2 IS NULL OR tenant = ?2)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_text(st, 1, q->id);
    bind_text(st, 2, q->tenant);
    rc = sqlite3_step(st);
    char state[16] = "";
    if (rc == SQLITE_ROW)
        snprintf(state, sizeof state, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return SQLITE_NOTFOUND;
    if (rc != SQLITE_ROW)
        return rc;
    if (!strcmp(state, "sending"))
        return SQLITE_CONSTRAINT; /* in flight: its attempt decides */
    rc = sqlite3_prepare_v2(db, REQUEUE_SET "id = ?1" REQUEUE_RETURNING, -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_text(st, 1, q->id);
    sqlite3_bind_int64(st, 20, hl_now_ms());
    uint64_t n = 0;
    rc = requeue_rows(st, nb, "retried by an operator", &n);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc;
    int live = !strcmp(state, "queued") || !strcmp(state, "retrying");
    rep->queued += live ? 0 : n;
    rep->live += n;
    *out = json_pack("{s:s, s:s, s:s}", "id", q->id, "state", "queued",
                     "was", state);
    return SQLITE_OK;
}

/* Deliveries matching the filter, in finished states unless asked for
 * retrying ones; never one in flight. */
static int replay(sqlite3 *db, hl__notes *nb, const hl_query *q,
                  json_t **out, hl__repair *rep)
{
    hl_query f = *q;
    if (!f.state)
        f.state = "failed,expired";
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db,
        REQUEUE_SET "seq IN (SELECT d.seq FROM deliveries d JOIN canonical c "
                    "ON c.id = d.canonical_id JOIN events e ON e.id = "
                    "d.event_id WHERE d.state <> 'sending' AND "
        FILTER_DELIVERIES " ORDER BY d.seq LIMIT ?10)" REQUEUE_RETURNING,
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    bind_filter(st, &f);
    sqlite3_bind_int64(st, 10, REPAIR_BATCH);
    sqlite3_bind_int64(st, 20, hl_now_ms());
    uint64_t n = 0;
    rc = requeue_rows(st, nb, "replayed by an operator", &n);
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc;
    int live_only = !strstr(f.state, "failed") && !strstr(f.state, "expired") &&
                    !strstr(f.state, "delivered");
    rep->queued += live_only ? 0 : n;
    rep->live += n;
    *out = json_pack("{s:I, s:b}", "replayed", (json_int_t)n, "more",
                     n == REPAIR_BATCH);
    return SQLITE_OK;
}

static int normalize_again(sqlite3 *db, const hl_query *q, json_t **out,
                           hl__repair *rep)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db,
        "UPDATE events SET state = 'received', state_reason = NULL WHERE seq "
        "IN (SELECT e.seq FROM events e WHERE e.state = 'unparsed' AND (?1 IS "
        "NULL OR e.tenant = ?1) AND (?2 IS NULL OR e.source = ?2) AND (?6 = 0 "
        "OR e.received_at >= ?6) AND (?7 = 0 OR e.received_at < ?7) AND (?9 IS "
        "NULL OR e.id = ?9) ORDER BY e.seq LIMIT ?10) RETURNING seq",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    hl_query f = *q;
    f.type = f.state = f.connector = NULL;
    bind_filter(st, &f);
    sqlite3_bind_int64(st, 10, REPAIR_BATCH);
    uint64_t n = 0;
    int64_t low = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (!low || seq < low)
            low = seq;
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (low) {
        rc = sqlite3_prepare_v2(db,
                                "UPDATE normalize_cursor SET seq = ?1 WHERE "
                                "id = 1 AND seq > ?1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_int64(st, 1, low - 1);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rc;
        rep->reread = 1;
    }
    rep->back += n;
    *out = json_pack("{s:I, s:b}", "requeued", (json_int_t)n, "more",
                     n == REPAIR_BATCH);
    return SQLITE_OK;
}

static int exec_bound(sqlite3 *db, const char *sql, const char *id)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Whether the webhook is finished and past its retention: every delivery
 * of it delivered before delivered_before, or failed or expired before
 * failed_before (unparsed webhooks count as failed). */
static int purgeable(sqlite3_stmt *chk, const char *id, const char *state,
                     int64_t received, const hl_query *q)
{
    if (!strcmp(state, "received"))
        return 0;
    if (!strcmp(state, "unparsed"))
        return q->failed_before && received < q->failed_before;
    sqlite3_bind_text(chk, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(chk, 2, q->delivered_before);
    sqlite3_bind_int64(chk, 3, q->failed_before);
    int keep = 1, any = 0;
    if (sqlite3_step(chk) == SQLITE_ROW) {
        any = sqlite3_column_int(chk, 0) > 0;
        keep = sqlite3_column_int(chk, 1) > 0;
    }
    sqlite3_reset(chk);
    sqlite3_clear_bindings(chk);
    /* Finished and past its own retention; an event no route took counts
     * as delivered. */
    return !keep && (any || received < q->delivered_before);
}

static int purge(sqlite3 *db, const hl_query *q, json_t **out,
                 hl__repair *rep)
{
    static const char *const del[] = {
        ("DELETE FROM attempts WHERE delivery_id IN (SELECT d.id FROM "
         "canonical c JOIN deliveries d ON d.canonical_id = c.id WHERE "
         "c.event_id = ?1)"),
        ("DELETE FROM deliveries WHERE canonical_id IN (SELECT id FROM "
         "canonical WHERE event_id = ?1)"),
        "DELETE FROM canonical WHERE event_id = ?1",
        "DELETE FROM events WHERE id = ?1",
    };
    sqlite3_stmt *scan = NULL, *chk = NULL;
    int64_t cut = q->delivered_before > q->failed_before ? q->delivered_before
                                                          : q->failed_before;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT id, state, received_at FROM events "
                                "WHERE received_at < ?1 ORDER BY seq LIMIT ?2",
                                -1, &scan, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db,
            "SELECT count(*), coalesce(sum(d.state NOT IN ('delivered', "
            "'failed', 'expired') OR (d.state = 'delivered' AND d.updated_at "
            ">= ?2) OR (d.state <> 'delivered' AND d.updated_at >= ?3)), 0) "
            "FROM canonical c JOIN deliveries d ON d.canonical_id = c.id "
            "WHERE c.event_id = ?1",
            -1, &chk, NULL);
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(scan, 1, cut);
    sqlite3_bind_int64(scan, 2, PURGE_SCAN);
    size_t max = q->limit ? q->limit : 500, n = 0, seen = 0;
    char (*ids)[HL_ID_LEN + 8] = calloc(max, sizeof *ids);
    if (!ids) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    while (n < max && (rc = sqlite3_step(scan)) == SQLITE_ROW) {
        seen++;
        const char *id = (const char *)sqlite3_column_text(scan, 0);
        if (purgeable(chk, id, (const char *)sqlite3_column_text(scan, 1),
                      sqlite3_column_int64(scan, 2), q))
            snprintf(ids[n++], sizeof *ids, "%s", id);
    }
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_finalize(scan);
    scan = NULL;
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        for (size_t k = 0; rc == SQLITE_OK && k < sizeof del / sizeof *del;
             k++)
            rc = exec_bound(db, del[k], ids[i]);
    free(ids);
    if (rc == SQLITE_OK && n) {
        /* With the newest webhooks purged, SQLite gives their seqs out
         * again: the normalize cursor must not stay above them. */
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(db,
                                "UPDATE normalize_cursor SET seq = coalesce("
                                "(SELECT max(seq) FROM events), 0) WHERE id = "
                                "1 AND seq > coalesce((SELECT max(seq) FROM "
                                "events), 0)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK
                                                  : sqlite3_errcode(db);
            rep->reread |= sqlite3_changes(db) > 0;
            sqlite3_finalize(st);
        }
    }
    if (rc == SQLITE_OK) {
        /* The stream's notes are kept as long as the shorter retention:
         * the later of the two cut-offs. */
        int64_t low = cut;
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(db,
                                "DELETE FROM stream WHERE seq IN (SELECT seq "
                                "FROM stream WHERE at < ?1 ORDER BY seq LIMIT "
                                "?2)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, low);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)max * 4);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK
                                                  : sqlite3_errcode(db);
            int notes = sqlite3_changes(db);
            sqlite3_finalize(st);
            rep->purged = n || notes;
            *out = json_pack("{s:I, s:I, s:b}", "purged", (json_int_t)n,
                             "notes", (json_int_t)notes, "more",
                             seen == PURGE_SCAN || n == max ||
                                 (size_t)notes == max * 4);
        }
    }
out:
    sqlite3_finalize(scan);
    sqlite3_finalize(chk);
    return rc;
}

int hl__ask_write(sqlite3 *db, hl__notes *nb, const hl_query *q,
                  json_t **out, hl__repair *rep)
{
    *out = NULL;
    switch (q->kind) {
    case HL_R_RETRY:
        return retry_one(db, nb, q, out, rep);
    case HL_R_REPLAY:
        return replay(db, nb, q, out, rep);
    case HL_R_NORMALIZE:
        return normalize_again(db, q, out, rep);
    case HL_R_PURGE:
        return purge(db, q, out, rep);
    case HL_R_NOTE: {
        json_t *f = json_deep_copy(q->note);
        const char *tenant = json_string_value(json_object_get(f, "tenant"));
        const char *conn = json_string_value(json_object_get(f, "connector"));
        char *t = dup_or_null(tenant), *c = dup_or_null(conn);
        int rc = hl__note_add(nb, q->note_type, t, NULL, c, f);
        free(t);
        free(c);
        *out = json_object();
        return rc;
    }
    default:
        return SQLITE_MISUSE;
    }
}
