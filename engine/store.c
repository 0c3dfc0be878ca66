/* store.c - the embedded SQLite queue: schema and migrations, one writer thread, group commit. */
#include "store.h"
#include "store_int.h"

#include "err.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_BATCH 1024
/* Normalization outcomes are committed apart from intake: an intake commit
 * stays small and its fsync short. A commit of outcomes alone stays short
 * too (SETTLE_ALONE, no fsync), so intake arriving meanwhile waits little. */
#define SETTLE_SHARE 0
#define SETTLE_ALONE 16
/* The dispatcher's leases and attempt records go before normalization
 * outcomes, and a few ride along with intake's commits, so deliveries keep
 * moving under a burst of intake. */
#define DELIVERY_SHARE 2
#define DELIVERY_ALONE 64
/* Normalization outcomes waiting for the writer, at most. */
#define MAX_SETTLES 4096
/* Under load, wait this long for more requests to share one commit. */

/* The writer's work: an inbound webhook to append, or a normalization
 * outcome to record (settle set). */
typedef enum {
    JOB_APPEND, /* an inbound webhook: the only kind that answers intake */
    JOB_SETTLE, /* a normalization outcome */
    JOB_RETRY,  /* put unparsed webhooks back to 'received' */
    JOB_LEASE,  /* lease deliveries that are due */
    JOB_FINISH, /* record the end of attempts */
    JOB_KV,     /* a connector's key-value write */
    JOB_ASK,    /* an operator's repair (hl_queue_ask) */
} job_kind;

typedef struct job {
    int kind; /* job_kind */
    hl_inbound ev;
    hl_append_cb cb;
    void *ud;
    hl_append_result res;
    hl_settle *settle;
    struct {
        char connector[128];
        size_t max;
        int64_t now_ms;
        uint64_t lease_ms;
        hl_lease_cb cb;
        void *ud;
        hl_lease *out;
    } lease;
    hl_attempt_row *rows;
    size_t n_rows;
    struct {
        char *connector, *key, *value; /* value NULL: delete */
        int held; /* connector_state: key is the state, value the reason */
        int rc, done;
    } kv;
    struct {
        const hl_query *q; /* the caller's, while it waits */
        hl_query own;      /* a note sent without waiting */
        json_t *out;
        int rc, done, detached;
    } ask;
    struct job *next;
} job;

typedef struct {
    hl_queue base;
    uv_loop_t *loop;
    uv_async_t async;
    sqlite3 *db;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *in_head, *in_tail;   /* intake appends */
    job *set_head, *set_tail; /* normalization outcomes */
    job *dl_head, *dl_tail;   /* leases, attempts, connector state */
    size_t nsettles;
    job *out_head, *out_tail;
    int stopping;
    _Atomic uint64_t backlog;
    sqlite3_stmt *st_begin, *st_commit, *st_rollback, *st_insert, *st_find;
    sqlite3_stmt *st_canon_del, *st_canon_ins, *st_state;
    /* Commits of normalization outcomes alone need no fsync: lost in a
     * power cut, the webhooks are still 'received' and are normalized
     * again. The next intake commit's fsync covers them anyway. */
    sqlite3_stmt *st_sync_relaxed, *st_sync_full, *st_retry;
    sqlite3_stmt *st_retry_cursor, *st_cursor;
    sqlite3_stmt *st_dlv_ins, *st_lease, *st_lease_ev, *st_next_due;
    sqlite3_stmt *st_next_tenant, *st_held_put, *st_held_del;
    /* Per connector, the tenant whose turn was first at the last lease. */
    struct {
        char connector[128], tenant[80];
    } turns[256];
    size_t n_turns;
    sqlite3_stmt *st_finish, *st_attempt, *st_kv_put, *st_kv_del, *st_vacuum;
    sqlite3_stmt *st_kv_get; /* on rd_db */
    hl__notes notes;           /* made by the transaction being written */
    _Atomic int64_t notes_seq; /* the last committed */
    hl_metric *m_batch, *m_commit, *m_fsync;
    hl_notes_cb notes_hook;
    void *notes_ud;
    /* Operators' questions read on their own connection. */
    sqlite3 *adm_db;
    pthread_mutex_t adm_mu;
    pthread_cond_t kv_cv;
    hl_commit_hook dhook; /* new deliveries */
    void *dhook_ud;
    int full_sync, relaxed;
    _Atomic int settle_failed; /* the normalizer must read from the cursor */
    /* The normalizer reads on its own connection. */
    sqlite3 *rd_db;
    sqlite3_stmt *st_read, *st_read_cursor;
    pthread_mutex_t rd_mu;
    hl_commit_hook hook;
    void *hook_ud;
    /* WAL checkpoints run on their own connection and thread, so a
     * checkpoint never stalls the commits of intake. */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    int ckpt_started;
    int ckpt_wanted;
    pthread_cond_t ckpt_cv;
    _Atomic uint64_t commits, events, failures, last_batch_n, last_commit_us;
    _Atomic uint64_t commit_us_total;
} store;

/* ---- schema -------------------------------------------------------------- */

/* Forward migrations: entry i brings user_version i to i + 1. */
static const char *const migrations[] = {
    /* 0 -> 1: inbound events as received. */
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  correlation_id TEXT NOT NULL,"
    "  content_type TEXT,"
    "  headers TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  idem_key TEXT,"
    "  state TEXT NOT NULL DEFAULT 'received',"
    "  state_reason TEXT"
    ");"
    "CREATE UNIQUE INDEX events_idem ON events(source, idem_key)"
    "  WHERE idem_key IS NOT NULL;"
    "CREATE INDEX events_state ON events(state, seq);"
    "PRAGMA application_id = 1212960305;", /* HL_APPLICATION_ID */
    /* 1 -> 2: canonical events, made from the stored webhooks. */
    "CREATE TABLE canonical ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  event_id TEXT NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  severity TEXT NOT NULL,"
    "  dedupkey TEXT,"
    "  time TEXT NOT NULL,"
    "  raw_ptr TEXT,"
    "  body TEXT NOT NULL"
    ");"
    "CREATE INDEX canonical_event ON canonical(event_id);"
    /* The normalizer goes forward by seq from a cursor committed with its
     * outcomes; only unparsed webhooks are indexed by state, so intake's
     * inserts and the normalizer's updates pay for no index on state. */
    "CREATE TABLE normalize_cursor (id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  seq INTEGER NOT NULL);"
    "INSERT INTO normalize_cursor (id, seq) VALUES (1,"
    "  coalesce((SELECT min(seq) - 1 FROM events WHERE state = 'received'),"
    "           (SELECT max(seq) FROM events), 0));"
    "DROP INDEX events_state;"
    "CREATE INDEX events_unparsed ON events(seq) WHERE state = 'unparsed';",
    /* 2 -> 3: deliveries, their attempts, connectors' own state. For a
     * delivery in 'sending', next_at is when its lease runs out. */
    "ALTER TABLE canonical ADD COLUMN route TEXT;"
    "CREATE TABLE deliveries ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  canonical_id TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  connector TEXT NOT NULL,"
    "  route TEXT,"
    "  state TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  last_status INTEGER,"
    "  last_error TEXT"
    ");"
    "CREATE INDEX deliveries_due ON deliveries(connector, tenant, next_at)"
    "  WHERE state IN ('queued', 'retrying', 'sending');"
    "CREATE INDEX deliveries_canonical ON deliveries(canonical_id);"
    "CREATE TABLE attempts ("
    "  seq INTEGER PRIMARY KEY,"
    "  delivery_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  duration_ms INTEGER NOT NULL,"
    "  status INTEGER,"
    "  outcome TEXT NOT NULL,"
    "  error_class TEXT,"
    "  reason TEXT,"
    "  response TEXT"
    ");"
    "CREATE INDEX attempts_delivery ON attempts(delivery_id);"
    "CREATE TABLE connector_kv ("
    "  connector TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (connector, key)"
    ") WITHOUT ROWID;"
    /* A connector held by an operator (paused) or by its destination
     * (disabled, after a 410), until resumed. */
    "CREATE TABLE connector_state ("
    "  connector TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  reason TEXT,"
    "  since INTEGER NOT NULL"
    ");",
    /* 3 -> 4: the live stream's notes, kept for clients that resume; a
     * delivery's source, and where its current round of attempts began
     * and when (an operator's retry starts a new one). */
    "ALTER TABLE deliveries ADD COLUMN source TEXT;"
    "ALTER TABLE deliveries ADD COLUMN attempt_base INTEGER NOT NULL "
    "  DEFAULT 0;"
    "ALTER TABLE deliveries ADD COLUMN round_at INTEGER;"
    "UPDATE deliveries SET source = (SELECT c.source FROM canonical c WHERE "
    "  c.id = deliveries.canonical_id);"
    "CREATE TABLE stream ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  tenant TEXT,"
    "  source TEXT,"
    "  connector TEXT,"
    "  body TEXT NOT NULL"
    ");"
    "CREATE INDEX deliveries_failed ON deliveries(connector, updated_at)"
    "  WHERE state IN ('failed', 'expired');",
};

_Static_assert(sizeof migrations / sizeof *migrations ==
                   HL_STORE_SCHEMA_VERSION,
               "one migration per schema version");

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen,
                const char *path)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    fail(err, errlen, HL_ESTORE, "%s: %s", path,
         msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return HL_ESTORE;
}

/* What to tell a user whose file SQLite refused, by the kind of refusal. */
static const char *advice(sqlite3 *db)
{
    switch (sqlite3_errcode(db) & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return " (the file is not a SQLite database or is damaged; restore it "
               "from a backup, or move it aside to start afresh)";
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return " (hookline needs to write this file and its folder; fix their "
               "permissions)";
    case SQLITE_CANTOPEN:
        return " (check that the folder exists and is writable)";
    default:
        return "";
    }
}

static int sqlite_fail(sqlite3 *db, const char *path, const char *what,
                       char *err, size_t errlen)
{
    int sys = sqlite3_system_errno(db);
    return fail(err, errlen, HL_ESTORE, "%s: %s: %s%s%s%s%s", path, what,
                sqlite3_errmsg(db), sys ? " (" : "", sys ? strerror(sys) : "",
                sys ? ")" : "", advice(db));
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int version = 0;
    int rc = pragma_int(db, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK)
        return sqlite_fail(db, path, "cannot read the schema version", err,
                           errlen);
    if (version > HL_STORE_SCHEMA_VERSION)
        return fail(err, errlen, HL_ESTORE,
                    "%s: the database has schema version %d, newer than this "
                    "hookline knows (%d); run a newer hookline",
                    path, version, HL_STORE_SCHEMA_VERSION);
    for (int v = version; v < HL_STORE_SCHEMA_VERSION; v++) {
        char sql[64];
        if (exec(db, "BEGIN IMMEDIATE", err, errlen, path) ||
            exec(db, migrations[v], err, errlen, path))
            goto rollback;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec(db, sql, err, errlen, path) ||
            exec(db, "COMMIT", err, errlen, path))
            goto rollback;
        char from[16], to[16];
        snprintf(from, sizeof from, "%d", v);
        snprintf(to, sizeof to, "%d", v + 1);
        HL_INFO("store", "schema migrated", "path", path, "from", from, "to",
                to);
    }
    return 0;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return HL_ESTORE;
}

static int make_dir(const char *path, const char *dir, char *err,
                    size_t errlen)
{
    struct stat st;
    if (mkdir(dir, 0750) == 0)
        return 0;
    int e = errno;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (e == EEXIST)
        e = ENOTDIR;
    return fail(err, errlen, -e, "%s: cannot create its folder %s: %s", path,
                dir, strerror(e));
}

/* SQLite's own open error hides the cause; ask the file system first
 * (with the effective ids, as the open will use). */
static int check_access(const char *path, const char *dir, char *err,
                        size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return fail(err, errlen, HL_ESTORE, "%s: not a regular file",
                        path);
        if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS))
            return fail(err, errlen, HL_ESTORE,
                        "%s: the file is read-only to hookline (%s); it needs "
                        "to write this file and its folder: fix their "
                        "permissions",
                        path, strerror(errno));
    }
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS))
        return fail(err, errlen, HL_ESTORE,
                    "%s: cannot write in its folder %s: %s (SQLite keeps its "
                    "-wal and -shm files beside the database)",
                    path, dir, strerror(errno));
    return 0;
}

static int mkdirs_for(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return check_access(path, ".", err, errlen);
    if (slash == dir)
        return check_access(path, "/", err, errlen);
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = make_dir(path, dir, err, errlen);
        if (rc)
            return rc;
        *p = '/';
    }
    int rc = make_dir(path, dir, err, errlen);
    return rc ? rc : check_access(path, dir, err, errlen);
}

static int prepare(store *s, const char *path, char *err, size_t errlen)
{
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
        {offsetof(store, st_begin), "BEGIN IMMEDIATE"},
        {offsetof(store, st_commit), "COMMIT"},
        {offsetof(store, st_rollback), "ROLLBACK"},
        {offsetof(store, st_insert),
         "INSERT INTO events (id, tenant, source, received_at, "
         "correlation_id, content_type, headers, body, idem_key) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
        {offsetof(store, st_find),
         "SELECT id FROM events WHERE source = ?1 AND idem_key = ?2"},
        {offsetof(store, st_canon_del),
         "DELETE FROM canonical WHERE event_id = ?1"},
        {offsetof(store, st_canon_ins),
         "INSERT INTO canonical (id, event_id, tenant, source, type, "
         "severity, dedupkey, time, raw_ptr, body, route) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
        {offsetof(store, st_dlv_ins),
         "INSERT INTO deliveries (id, canonical_id, event_id, tenant, "
         "connector, route, state, created_at, next_at, updated_at, source) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7, ?7, ?8)"},
        {offsetof(store, st_lease),
         "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, "
         "next_at = ?3, updated_at = ?2 WHERE seq IN (SELECT seq FROM "
         "deliveries WHERE connector = ?1 AND tenant = ?5 AND state IN "
         "('queued', 'retrying', 'sending') AND next_at <= ?2 ORDER BY "
         "next_at LIMIT ?4) "
         "RETURNING id, canonical_id, tenant, attempts, "
         "coalesce(round_at, created_at), attempts - attempt_base, source"},
        {offsetof(store, st_next_tenant),
         "SELECT tenant FROM deliveries WHERE connector = ?1 AND tenant > ?2 "
         "AND state IN ('queued', 'retrying', 'sending') ORDER BY tenant "
         "LIMIT 1"},
        {offsetof(store, st_lease_ev),
         "SELECT c.body, c.raw_ptr, CASE WHEN c.raw_ptr IS NOT NULL THEN "
         "e.body END, e.correlation_id, e.received_at FROM canonical c JOIN "
         "events e ON "
         "e.id = c.event_id WHERE c.id = ?1"},
        {offsetof(store, st_next_due),
         "SELECT min(next_at) FROM deliveries WHERE connector = ?1 AND "
         "tenant = ?2 AND state IN ('queued', 'retrying', 'sending')"},
        {offsetof(store, st_finish),
         "UPDATE deliveries SET state = ?2, next_at = ?3, updated_at = ?4, "
         "last_status = ?5, last_error = ?6, attempts = attempts - ?8 "
         "WHERE id = ?1 AND state = 'sending' AND attempts = ?7 "
         "RETURNING event_id, canonical_id, tenant, source, connector"},
        {offsetof(store, st_attempt),
         "INSERT INTO attempts (delivery_id, attempt, started_at, "
         "duration_ms, status, outcome, error_class, reason, response) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
        {offsetof(store, st_kv_put),
         "INSERT INTO connector_kv (connector, key, value, updated_at) "
         "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (connector, key) DO UPDATE "
         "SET value = excluded.value, updated_at = excluded.updated_at"},
        {offsetof(store, st_kv_del),
         "DELETE FROM connector_kv WHERE connector = ?1 AND key = ?2"},
        {offsetof(store, st_held_put),
         "INSERT INTO connector_state (connector, state, reason, since) "
         "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (connector) DO UPDATE SET "
         "state = excluded.state, reason = excluded.reason, "
         "since = excluded.since"},
        {offsetof(store, st_held_del),
         "DELETE FROM connector_state WHERE connector = ?1"},
        {offsetof(store, st_retry_cursor),
         "UPDATE normalize_cursor SET seq = (SELECT min(seq) - 1 FROM events "
         "WHERE state = 'unparsed') WHERE id = 1 AND EXISTS (SELECT 1 FROM "
         "events WHERE state = 'unparsed')"},
        {offsetof(store, st_retry),
         "UPDATE events SET state = 'received', state_reason = NULL "
         "WHERE state = 'unparsed'"},
        {offsetof(store, st_cursor),
         "UPDATE normalize_cursor SET seq = ?1 WHERE id = 1 AND seq < ?1"},
        {offsetof(store, notes.ins),
         "INSERT INTO stream (seq, at, type, tenant, source, connector, body) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
        {offsetof(store, st_vacuum), "PRAGMA incremental_vacuum(2000)"},
        {offsetof(store, st_sync_relaxed), "PRAGMA synchronous = NORMAL"},
        {offsetof(store, st_sync_full), "PRAGMA synchronous = FULL"},
        {offsetof(store, st_state),
         "UPDATE events SET state = ?2, state_reason = ?3 WHERE id = ?1 AND "
         "state = 'received'"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++) {
        sqlite3_stmt **st = (sqlite3_stmt **)((char *)s + stmts[i].off);
        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1,
                               SQLITE_PREPARE_PERSISTENT, st,
                               NULL) != SQLITE_OK)
            return fail(err, errlen, HL_ESTORE, "%s: %s", path,
                        sqlite3_errmsg(s->db));
    }
    return 0;
}

/* ---- the writer thread --------------------------------------------------- */

static const char *reason_of(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_FULL:
        return "the disk holding storage.path is full";
    case SQLITE_IOERR:
        return "an I/O error on storage.path";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "the database is locked by another process";
    case SQLITE_READONLY:
        return "the database file is read-only";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "the database file is damaged";
    default:
        return "the store could not commit";
    }
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Insert one event, or find the first one with its idempotency key. */
static int write_one(store *s, job *j)
{
    const hl_inbound *ev = &j->ev;
    if (ev->idem_key) {
        sqlite3_stmt *f = s->st_find;
        sqlite3_bind_text(f, 1, ev->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(f, 2, ev->idem_key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(f);
        if (rc == SQLITE_ROW) {
            snprintf(j->res.id, sizeof j->res.id, "%s",
                     (const char *)sqlite3_column_text(f, 0));
            j->res.duplicate = true;
        }
        sqlite3_reset(f);
        sqlite3_clear_bindings(f);
        if (rc == SQLITE_ROW)
            return SQLITE_OK;
        if (rc != SQLITE_DONE)
            return rc;
    }
    sqlite3_stmt *st = s->st_insert;
    sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ev->received_ms);
    sqlite3_bind_text(st, 5, ev->correlation_id, -1, SQLITE_STATIC);
    if (ev->content_type)
        sqlite3_bind_text(st, 6, ev->content_type, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_text(st, 7, ev->headers_json, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 8, ev->body ? ev->body : "", ev->body_len,
                        SQLITE_STATIC);
    if (ev->idem_key)
        sqlite3_bind_text(st, 9, ev->idem_key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 9);
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        return rc;
    snprintf(j->res.id, sizeof j->res.id, "%s", ev->id);
    return hl__note_add(&s->notes, "event.received", ev->tenant, ev->source,
                        NULL,
                        json_pack("{s:s, s:s, s:s, s:s}", "event_id", ev->id,
                                  "tenant", ev->tenant, "source", ev->source,
                                  "correlation_id", ev->correlation_id));
}

void hl_settle_free(hl_settle *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        hl_canonical_row *r = &st->rows[i];
        free(r->id);
        free(r->type);
        free(r->severity);
        free(r->dedupkey);
        free(r->time);
        free(r->raw_ptr);
        free(r->body);
        free(r->route);
        for (size_t k = 0; k < r->n_deliveries; k++)
            free(r->connectors[k]);
        free(r->connectors);
        free(r->delivery_ids);
    }
    free(st->rows);
    free(st);
}

const char *hl_delivery_state_name(int state)
{
    static const char *const names[] = {"queued",    "sending", "retrying",
                                        "delivered", "failed",  "expired",
                                        "paused"};
    return state >= 0 && state < 7 ? names[state] : "unknown";
}

static int terminal(int state)
{
    return state == HL_DS_DELIVERED || state == HL_DS_FAILED ||
           state == HL_DS_EXPIRED;
}

void hl_lease_free(hl_lease *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].event);
        free(l->v[i].raw_ptr);
        free(l->v[i].raw_body);
        free(l->v[i].correlation_id);
    }
    free(l->v);
    free(l);
}

void hl_attempt_rows_free(hl_attempt_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        free(rows[i].reason);
        free(rows[i].response);
    }
    free(rows);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int write_deliveries(store *s, const hl_settle *set,
                            const hl_canonical_row *r, int64_t now)
{
    sqlite3_stmt *st = s->st_dlv_ins;
    int rc = SQLITE_OK;
    for (size_t k = 0; rc == SQLITE_OK && k < r->n_deliveries; k++) {
        bind_opt(st, 1, r->delivery_ids[k]);
        bind_opt(st, 2, r->id);
        bind_opt(st, 3, set->event_id);
        bind_opt(st, 4, set->tenant);
        bind_opt(st, 5, r->connectors[k]);
        bind_opt(st, 6, r->route);
        sqlite3_bind_int64(st, 7, now);
        bind_opt(st, 8, set->source);
        rc = step_done(st);
        sqlite3_clear_bindings(st);
    }
    return rc;
}

static int write_canonical(store *s, const hl_settle *set,
                           const hl_canonical_row *r, int64_t now)
{
    sqlite3_stmt *st = s->st_canon_ins;
    bind_opt(st, 1, r->id);
    bind_opt(st, 2, set->event_id);
    bind_opt(st, 3, set->tenant);
    bind_opt(st, 4, set->source);
    bind_opt(st, 5, r->type);
    bind_opt(st, 6, r->severity);
    bind_opt(st, 7, r->dedupkey);
    bind_opt(st, 8, r->time);
    bind_opt(st, 9, r->raw_ptr);
    bind_opt(st, 10, r->body);
    bind_opt(st, 11, r->route);
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_OK ? write_deliveries(s, set, r, now) : rc;
}

/* event.normalized, with its events and the deliveries made; or
 * event.unparsed with the reason. */
static int note_settle(store *s, const hl_settle *st)
{
    if (!st->parsed)
        return hl__note_add(&s->notes, "event.unparsed", st->tenant,
                            st->source, NULL,
                            json_pack("{s:s, s:s, s:s, s:s}", "event_id",
                                      st->event_id, "tenant", st->tenant,
                                      "source", st->source, "reason",
                                      st->reason));
    json_t *events = json_array();
    for (size_t i = 0; i < st->n; i++) {
        const hl_canonical_row *r = &st->rows[i];
        json_t *d = json_array();
        for (size_t k = 0; k < r->n_deliveries; k++)
            json_array_append_new(d, json_pack("{s:s, s:s}", "id",
                                               r->delivery_ids[k],
                                               "connector", r->connectors[k]));
        json_array_append_new(
            events, json_pack("{s:s, s:s, s:s, s:s?, s:o}", "id", r->id,
                              "type", r->type, "severity", r->severity,
                              "route", r->route, "deliveries", d));
    }
    return hl__note_add(&s->notes, "event.normalized", st->tenant,
                        st->source, NULL,
                        json_pack("{s:s, s:s, s:s, s:o}", "event_id",
                                  st->event_id, "tenant", st->tenant,
                                  "source", st->source, "events", events));
}

/* Mark the webhook normalized (or unparsed) and store its canonical events
 * and their deliveries. A webhook no longer 'received' was settled before:
 * nothing is written twice. *delta is the change to the backlog: the
 * webhook leaves it, its deliveries join it. */
static int write_settle(store *s, const hl_settle *st, int64_t *delta,
                        uint64_t *created)
{
    sqlite3_stmt *u = s->st_state;
    sqlite3_bind_text(u, 1, st->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 2, st->parsed ? "normalized" : "unparsed", -1,
                      SQLITE_STATIC);
    if (st->parsed)
        sqlite3_bind_null(u, 3);
    else
        sqlite3_bind_text(u, 3, st->reason, -1, SQLITE_STATIC);
    int rc = step_done(u);
    sqlite3_clear_bindings(u);
    if (rc != SQLITE_OK || sqlite3_changes(s->db) == 0)
        return rc;
    *delta -= 1;
    if ((rc = note_settle(s, st)) != SQLITE_OK || !st->parsed)
        return rc;
    sqlite3_bind_text(s->st_canon_del, 1, st->event_id, -1, SQLITE_STATIC);
    rc = step_done(s->st_canon_del);
    sqlite3_clear_bindings(s->st_canon_del);
    int64_t now = hl_now_ms();
    for (size_t i = 0; rc == SQLITE_OK && i < st->n; i++) {
        rc = write_canonical(s, st, &st->rows[i], now);
        *delta += (int64_t)st->rows[i].n_deliveries;
        *created += st->rows[i].n_deliveries;
    }
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i, size_t *len)
{
    const void *t = sqlite3_column_blob(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (len)
        *len = n;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    char *c = malloc(n + 1);
    if (c) {
        if (n)
            memcpy(c, t, n);
        c[n] = 0;
    }
    return c;
}

/* The leased row's event: its canonical JSON and, where data.raw lives in
 * the webhook's body, that body. */
static int lease_event(store *s, hl_lease_item *it)
{
    sqlite3_stmt *q = s->st_lease_ev;
    sqlite3_bind_text(q, 1, it->event_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        it->event = col_dup(q, 0, NULL);
        it->raw_ptr = col_dup(q, 1, NULL);
        it->raw_body = col_dup(q, 2, &it->raw_len);
        it->correlation_id = col_dup(q, 3, NULL);
        it->received_ms = sqlite3_column_int64(q, 4);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK; /* gone: the dispatcher fails the delivery */
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

/* A connector's tenants that have deliveries waiting, with the earliest
 * due time of each: an index seek per tenant, not a scan. */
typedef struct {
    char name[80];
    int64_t due;
    int open; /* may have more due */
} tenant_due;

static int64_t tenant_min(store *s, const char *connector, const char *t)
{
    sqlite3_stmt *d = s->st_next_due;
    sqlite3_bind_text(d, 1, connector, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 2, t, -1, SQLITE_STATIC);
    int64_t due = -1;
    if (sqlite3_step(d) == SQLITE_ROW &&
        sqlite3_column_type(d, 0) != SQLITE_NULL)
        due = sqlite3_column_int64(d, 0);
    sqlite3_reset(d);
    sqlite3_clear_bindings(d);
    return due;
}

/* *out is malloc'd; returns how many (0 also when out of memory). */
static size_t waiting_tenants(store *s, const char *connector,
                              tenant_due **out)
{
    size_t n = 0, cap = 0;
    char last[80] = "";
    *out = NULL;
    for (;;) {
        if (n == cap) {
            tenant_due *v = realloc(*out, (cap ? cap * 2 : 8) * sizeof *v);
            if (!v)
                break;
            *out = v;
            cap = cap ? cap * 2 : 8;
        }
        tenant_due *td = *out;
        sqlite3_stmt *q = s->st_next_tenant;
        sqlite3_bind_text(q, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, last, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            snprintf(last, sizeof last, "%s", sqlite3_column_text(q, 0));
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc != SQLITE_ROW)
            break;
        snprintf(td[n].name, sizeof td[n].name, "%s", last);
        td[n].due = tenant_min(s, connector, last);
        td[n].open = 1;
        n++;
    }
    return n;
}

/* Where this connector's round over its tenants starts this time: the
 * tenant after the one that started the last round. */
static size_t turn_start(store *s, const char *connector, tenant_due *t,
                         size_t n)
{
    size_t k = 0;
    for (; k < s->n_turns; k++)
        if (!strcmp(s->turns[k].connector, connector))
            break;
    if (k == s->n_turns) {
        if (s->n_turns == sizeof s->turns / sizeof *s->turns)
            return 0;
        snprintf(s->turns[k].connector, sizeof s->turns[k].connector, "%s",
                 connector);
        s->turns[k].tenant[0] = 0;
        s->n_turns++;
    }
    size_t first = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, s->turns[k].tenant) > 0) {
            first = i;
            break;
        }
    snprintf(s->turns[k].tenant, sizeof s->turns[k].tenant, "%.79s",
             n ? t[first].name : "");
    return first;
}

/* Lease up to max of one tenant's due deliveries into l. */
static int lease_tenant(store *s, job *j, const char *tenant, size_t max,
                        hl_lease *l, size_t *got)
{
    sqlite3_stmt *st = s->st_lease;
    sqlite3_bind_text(st, 1, j->lease.connector, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->lease.now_ms);
    sqlite3_bind_int64(st, 3, j->lease.now_ms + (int64_t)j->lease.lease_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)max);
    sqlite3_bind_text(st, 5, tenant, -1, SQLITE_STATIC);
    size_t before = l->n;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && l->n < j->lease.max) {
        hl_lease_item *it = &l->v[l->n++];
        snprintf(it->id, sizeof it->id, "%s", sqlite3_column_text(st, 0));
        snprintf(it->event_id, sizeof it->event_id, "%s",
                 sqlite3_column_text(st, 1));
        snprintf(it->tenant, sizeof it->tenant, "%s",
                 sqlite3_column_text(st, 2));
        it->attempt = (uint32_t)sqlite3_column_int(st, 3);
        it->created_ms = sqlite3_column_int64(st, 4);
        it->round = (uint32_t)sqlite3_column_int(st, 5);
        snprintf(it->source, sizeof it->source, "%s",
                 sqlite3_column_type(st, 6) == SQLITE_NULL
                     ? ""
                     : (const char *)sqlite3_column_text(st, 6));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    *got = l->n - before;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Lease a connector's due deliveries, taking turns over its tenants so a
 * flood from one cannot starve another: each due tenant gets an equal
 * share of max, and what one cannot use goes to the others. */
static int write_lease(store *s, job *j)
{
    hl_lease *l = calloc(1, sizeof *l);
    if (!l || !(l->v = calloc(j->lease.max ? j->lease.max : 1,
                              sizeof *l->v))) {
        free(l);
        return SQLITE_NOMEM;
    }
    j->lease.out = l;
    tenant_due *t;
    size_t n = waiting_tenants(s, j->lease.connector, &t);
    size_t first = turn_start(s, j->lease.connector, t, n);
    size_t open = 0;
    for (size_t i = 0; i < n; i++)
        open += (t[i].open = t[i].due >= 0 && t[i].due <= j->lease.now_ms);
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && open && l->n < j->lease.max) {
        size_t left = j->lease.max - l->n;
        size_t share = left / open ? left / open : 1;
        for (size_t k = 0; rc == SQLITE_OK && k < n && l->n < j->lease.max;
             k++) {
            tenant_due *td = &t[(first + k) % n];
            if (!td->open)
                continue;
            size_t got = 0;
            rc = lease_tenant(s, j, td->name, share, l, &got);
            if (got < share) {
                td->open = 0; /* it has no more due */
                open--;
            }
        }
    }
    for (size_t i = 0; rc == SQLITE_OK && i < l->n; i++)
        rc = lease_event(s, &l->v[i]);
    /* The earliest due time of what is left, leases included. */
    l->next_due_ms = -1;
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        int64_t due = tenant_min(s, j->lease.connector, t[i].name);
        if (due >= 0 && (l->next_due_ms < 0 || due < l->next_due_ms))
            l->next_due_ms = due;
    }
    free(t);
    return rc;
}

static const char *outcome_name(const hl_attempt_row *r)
{
    switch (r->state) {
    case HL_DS_DELIVERED: return "delivered";
    case HL_DS_FAILED: return "failed";
    case HL_DS_EXPIRED: return "expired";
    case HL_DS_RETRYING: return "retry";
    default: return "given_back";
    }
}

/* A delivery the destination took: its status says it all (a delivery
 * never sent, such as one the connector skipped, keeps why). */
static int quiet_reason(const hl_attempt_row *r)
{
    return r->state == HL_DS_DELIVERED && r->status;
}

/* delivery.state for a finished attempt; u is on the updated row
 * (RETURNING event_id, canonical_id, tenant, source, connector). */
static int note_finish(store *s, const hl_attempt_row *r, sqlite3_stmt *u)
{
    const char *tenant = (const char *)sqlite3_column_text(u, 2);
    const char *source = (const char *)sqlite3_column_text(u, 3);
    const char *connector = (const char *)sqlite3_column_text(u, 4);
    json_t *f = json_pack(
        "{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:i, s:s?, s:s?}",
        "delivery_id", r->id, "event_id", sqlite3_column_text(u, 0),
        "canonical_id", sqlite3_column_text(u, 1), "tenant", tenant, "source",
        source, "connector", connector, "state",
        hl_delivery_state_name(r->state), "attempt", (int)r->attempt,
        "error_class", r->error_class, "reason",
        quiet_reason(r) ? NULL : r->reason);
    if (f && r->status)
        json_object_set_new(f, "status", json_integer(r->status));
    if (f && r->next_ms &&
        (r->state == HL_DS_RETRYING || r->state == HL_DS_QUEUED)) {
        char at[32];
        hl__iso_ms(r->next_ms, at);
        json_object_set_new(f, "next_attempt_at", json_string(at));
    }
    return hl__note_add(&s->notes, "delivery.state", tenant, source,
                        connector, f);
}

static int write_finish(store *s, job *j, int64_t *delta)
{
    int64_t now = hl_now_ms();
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < j->n_rows; i++) {
        const hl_attempt_row *r = &j->rows[i];
        sqlite3_stmt *u = s->st_finish;
        sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 2, hl_delivery_state_name(r->state), -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(u, 3, r->next_ms ? r->next_ms : now);
        sqlite3_bind_int64(u, 4, now);
        if (r->status)
            sqlite3_bind_int(u, 5, r->status);
        else
            sqlite3_bind_null(u, 5);
        bind_opt(u, 6, quiet_reason(r) ? NULL : r->reason);
        sqlite3_bind_int64(u, 7, r->attempt);
        sqlite3_bind_int(u, 8, !r->counted);
        rc = sqlite3_step(u);
        int found = rc == SQLITE_ROW;
        if (found)
            rc = note_finish(s, r, u);
        else if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_reset(u);
        sqlite3_clear_bindings(u);
        if (rc != SQLITE_OK)
            continue;
        if (!found) {
            /* A lease that ran out: another attempt owns the delivery. */
            char n[16];
            snprintf(n, sizeof n, "%u", r->attempt);
            HL_WARN("store", "attempt ended after its lease ran out; its "
                             "record is dropped",
                    "delivery", r->id, "attempt", n, "state",
                    hl_delivery_state_name(r->state));
            continue;
        }
        if (terminal(r->state))
            *delta -= 1;
        if (!r->counted)
            continue;
        sqlite3_stmt *a = s->st_attempt;
        sqlite3_bind_text(a, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(a, 2, r->attempt);
        sqlite3_bind_int64(a, 3, r->started_ms);
        sqlite3_bind_int64(a, 4, r->duration_ms);
        if (r->status)
            sqlite3_bind_int(a, 5, r->status);
        else
            sqlite3_bind_null(a, 5);
        sqlite3_bind_text(a, 6, outcome_name(r), -1, SQLITE_STATIC);
        bind_opt(a, 7, r->error_class);
        bind_opt(a, 8, r->reason);
        bind_opt(a, 9, r->response);
        rc = step_done(a);
        sqlite3_clear_bindings(a);
    }
    return rc;
}

static int write_kv(store *s, job *j)
{
    if (j->kv.held) {
        sqlite3_stmt *st = j->kv.key ? s->st_held_put : s->st_held_del;
        sqlite3_bind_text(st, 1, j->kv.connector, -1, SQLITE_STATIC);
        if (j->kv.key) {
            sqlite3_bind_text(st, 2, j->kv.key, -1, SQLITE_STATIC);
            bind_opt(st, 3, j->kv.value);
            sqlite3_bind_int64(st, 4, hl_now_ms());
        }
        int rc = step_done(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
            return rc;
        const char *state = !j->kv.key                     ? "resumed"
                            : !strcmp(j->kv.key, "paused") ? "paused"
                                                           : "disabled";
        return hl__note_add(&s->notes, "connector.state", NULL, NULL,
                            j->kv.connector,
                            json_pack("{s:s, s:s, s:s?}", "connector",
                                      j->kv.connector, "state", state,
                                      "reason", j->kv.value));
    }
    sqlite3_stmt *st = j->kv.value ? s->st_kv_put : s->st_kv_del;
    sqlite3_bind_text(st, 1, j->kv.connector, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->kv.key, -1, SQLITE_STATIC);
    if (j->kv.value) {
        sqlite3_bind_text(st, 3, j->kv.value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, hl_now_ms());
    }
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Full durability for commits that answer requests or write a
 * connector's state; relaxed for the rest, which is read again (or
 * redelivered under the same idempotency key) after a power cut. */
static void set_sync(store *s, const job *batch)
{
    if (!s->full_sync)
        return;
    int full = 0;
    for (const job *j = batch; j && !full; j = j->next)
        full = j->kind == JOB_APPEND || j->kind == JOB_KV;
    if (full == !s->relaxed)
        return;
    step_done(full ? s->st_sync_full : s->st_sync_relaxed);
    s->relaxed = !full;
}

static void run_hook(store *s, int deliveries)
{
    /* Under the lock, so a hook cannot be removed while it runs. */
    pthread_mutex_lock(&s->mu);
    hl_commit_hook fn = deliveries ? s->dhook : s->hook;
    if (fn)
        fn(deliveries ? s->dhook_ud : s->hook_ud);
    pthread_mutex_unlock(&s->mu);
}

/* An operator's repair; what it changed counts like the writer's own. */
static int write_ask(store *s, job *j, int64_t *delta, uint64_t *back,
                     uint64_t *created, hl__repair *rep)
{
    const hl_query *q = j->ask.detached ? &j->ask.own : j->ask.q;
    hl__repair r = {0};
    json_decref(j->ask.out);
    j->ask.out = NULL;
    /* A repair that fails is undone alone: intake sharing the
     * transaction is committed all the same. */
    size_t n0 = s->notes.n;
    int64_t seq0 = s->notes.seq;
    int rc = sqlite3_exec(s->db, "SAVEPOINT ask", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = hl__ask_write(s->db, &s->notes, q, &j->ask.out, &r);
    j->ask.rc = rc == SQLITE_NOTFOUND     ? HL_ENOTFOUND
                : rc == SQLITE_CONSTRAINT ? HL_ECONFLICT
                : rc != SQLITE_OK         ? HL_ESTORE
                                          : 0;
    if (rc != SQLITE_OK) {
        if (j->ask.rc == HL_ESTORE)
            HL_ERROR("store", "an operator's repair failed; nothing of it "
                              "was kept",
                     "reason", sqlite3_errmsg(s->db));
        json_decref(j->ask.out);
        j->ask.out = NULL;
        for (size_t i = n0; i < s->notes.n; i++)
            hl_note_clear(&s->notes.v[i]);
        s->notes.n = n0;
        s->notes.seq = seq0;
        sqlite3_exec(s->db, "ROLLBACK TO ask", NULL, NULL, NULL);
    }
    int released = sqlite3_exec(s->db, "RELEASE ask", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return released; /* an answer, not a failed transaction */
    *delta += (int64_t)r.queued;
    *back += r.back;
    *created += r.live;
    rep->reread |= r.reread;
    rep->purged |= r.purged;
    return rc;
}

static int write_job(store *s, job *j, int64_t *delta, uint64_t *back,
                     uint64_t *created, int64_t *cursor, hl__repair *rep)
{
    int rc;
    switch (j->kind) {
    case JOB_ASK:
        return write_ask(s, j, delta, back, created, rep);
    case JOB_RETRY:
        rc = step_done(s->st_retry_cursor);
        if (rc == SQLITE_OK)
            rc = step_done(s->st_retry);
        *back += (uint64_t)sqlite3_changes(s->db);
        return rc;
    case JOB_SETTLE:
        if (j->settle->seq > *cursor)
            *cursor = j->settle->seq;
        return write_settle(s, j->settle, delta, created);
    case JOB_LEASE:
        return write_lease(s, j);
    case JOB_FINISH:
        return write_finish(s, j, delta);
    case JOB_KV:
        return write_kv(s, j);
    default:
        return write_one(s, j);
    }
}

/* After a commit, hand its notes on; after a rollback, forget them and
 * their seqs. */
static void publish_notes(store *s, int committed, int64_t seq0)
{
    hl__notes *nb = &s->notes;
    if (committed && nb->n) {
        atomic_store(&s->notes_seq, nb->seq);
        pthread_mutex_lock(&s->mu);
        hl_notes_cb fn = s->notes_hook;
        void *ud = s->notes_ud;
        if (fn)
            fn(ud, nb->v, nb->n);
        pthread_mutex_unlock(&s->mu);
    }
    if (!committed)
        nb->seq = seq0;
    for (size_t i = 0; i < nb->n; i++)
        hl_note_clear(&nb->v[i]);
    nb->n = 0;
}

/* Returns 1 when the batch was committed. */
static int commit_batch(store *s, job *batch, size_t n)
{
    set_sync(s, batch);
    uint64_t t0 = now_us();
    int rc = step_done(s->st_begin);
    int64_t delta = 0, cursor = 0;
    uint64_t back = 0, created = 0;
    hl__repair rep = {0};
    int64_t seq0 = s->notes.seq;
    for (job *j = batch; rc == SQLITE_OK && j; j = j->next)
        rc = write_job(s, j, &delta, &back, &created, &cursor, &rep);
    if (rc == SQLITE_OK && cursor) {
        sqlite3_bind_int64(s->st_cursor, 1, cursor);
        rc = step_done(s->st_cursor);
    }
    if (rc == SQLITE_OK) {
        /* COMMIT is where the WAL is written and, under durability full,
         * fsynced. */
        uint64_t c0 = now_us();
        rc = step_done(s->st_commit);
        hl_metric_observe(s->m_fsync, NULL, (double)(now_us() - c0) / 1e6);
    }
    if (rc != SQLITE_OK && cursor)
        atomic_store(&s->settle_failed, 1);
    uint64_t fresh = 0;
    publish_notes(s, rc == SQLITE_OK, seq0);
    for (job *j = batch; j; j = j->next) {
        if (rc != SQLITE_OK && j->kind == JOB_KV)
            j->kv.rc = HL_ESTORE;
        if (rc != SQLITE_OK && j->kind == JOB_ASK && !j->ask.rc)
            j->ask.rc = HL_ESTORE;
        if (j->kind != JOB_APPEND)
            continue;
        if (rc != SQLITE_OK) {
            j->res.status = (rc & 0xff) == SQLITE_BUSY ? HL_EBUSY : HL_ESTORE;
            j->res.reason = reason_of(rc);
            j->res.duplicate = false;
        } else if (!j->res.duplicate) {
            fresh++;
        }
    }
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(s->db))
            step_done(s->st_rollback);
        atomic_fetch_add(&s->failures, 1);
        char code[16];
        snprintf(code, sizeof code, "%d", rc);
        HL_ERROR("store", "commit failed; the requests get 503", "reason",
                 reason_of(rc), "sqlite", sqlite3_errstr(rc), "code", code);
        if (cursor)
            run_hook(s, 0);
        return 0;
    }
    atomic_fetch_add(&s->backlog, fresh + back);
    if (delta >= 0)
        atomic_fetch_add(&s->backlog, (uint64_t)delta);
    else
        atomic_fetch_sub(&s->backlog, (uint64_t)-delta);
    atomic_fetch_add(&s->events, fresh);
    if (rep.reread)
        atomic_store(&s->settle_failed, 1); /* read from the cursor */
    if (fresh || back || atomic_load(&s->settle_failed))
        run_hook(s, 0);
    if (rep.purged) { /* one page a step: step until it is done */
        while (sqlite3_step(s->st_vacuum) == SQLITE_ROW)
            ;
        sqlite3_reset(s->st_vacuum);
    }
    if (created)
        run_hook(s, 1);
    atomic_fetch_add(&s->commits, 1);
    atomic_store(&s->last_batch_n, n);
    uint64_t took = now_us() - t0;
    hl_metric_observe(s->m_batch, NULL, (double)n);
    hl_metric_observe(s->m_commit, NULL, (double)took / 1e6);
    atomic_store(&s->last_commit_us, took);
    atomic_fetch_add(&s->commit_us_total, took);
    return 1;
}

/* Move up to max jobs from a queue onto *tail; returns how many. */
static size_t take_from(job **head, job **qtail, size_t max, job ***tail)
{
    size_t n = 0;
    while (*head && n < max) {
        job *j = *head;
        *head = j->next;
        j->next = NULL;
        **tail = j;
        *tail = &j->next;
        n++;
    }
    if (!*head)
        *qtail = NULL;
    return n;
}

/* A batch: intake first, up to MAX_BATCH; background work (up to
 * SETTLE_SHARE jobs beside intake, SETTLE_ALONE without). Holds s->mu. */
static size_t take(store *s, job **batch)
{
    job **tail = batch;
    *batch = NULL;
    size_t n = take_from(&s->in_head, &s->in_tail, MAX_BATCH, &tail);
    size_t k = take_from(&s->dl_head, &s->dl_tail,
                         n ? DELIVERY_SHARE : DELIVERY_ALONE, &tail);
    size_t m = take_from(&s->set_head, &s->set_tail,
                         n ? SETTLE_SHARE : SETTLE_ALONE, &tail);
    s->nsettles -= m;
    return n + k + m;
}

static void free_job(job *j)
{
    hl_settle_free(j->settle);
    hl_attempt_rows_free(j->rows, j->n_rows);
    hl_lease_free(j->lease.out);
    free(j);
}

/* Background jobs have no request to answer: finish them here, off the
 * loop (a lease goes to its callback, a kv write wakes its waiter), and
 * return the intake jobs. A settle whose commit failed is read and
 * normalized again later; a failed lease comes back empty. */
static job *finish_background(store *s, job *batch, int committed)
{
    job *head = NULL, **tail = &head;
    for (job *j = batch, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (j->kind == JOB_APPEND) {
            *tail = j;
            tail = &j->next;
            continue;
        }
        if (j->kind == JOB_LEASE) {
            hl_lease *l = j->lease.out;
            if (!committed || !l) {
                hl_lease_free(l);
                l = calloc(1, sizeof *l);
                if (l) {
                    l->status = HL_ESTORE;
                    l->next_due_ms = j->lease.now_ms + 1000;
                }
            }
            j->lease.out = NULL;
            if (l)
                j->lease.cb(j->lease.ud, l);
        }
        if (j->kind == JOB_ASK && j->ask.detached) {
            json_decref(j->ask.out);
            json_decref(j->ask.own.note);
            free((char *)j->ask.own.note_type);
            free(j);
            continue;
        }
        if (j->kind == JOB_KV || j->kind == JOB_ASK) {
            pthread_mutex_lock(&s->mu);
            j->kv.done = 1;
            pthread_cond_broadcast(&s->kv_cv);
            pthread_mutex_unlock(&s->mu);
            continue; /* the waiter frees it */
        }
        free_job(j);
    }
    return head;
}

static void *writer(void *arg)
{
    store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->in_head && !s->set_head && !s->dl_head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->in_head && !s->set_head && !s->dl_head && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job *batch;
        size_t n = take(s, &batch);
        pthread_mutex_unlock(&s->mu);

        int ok = commit_batch(s, batch, n);
        batch = finish_background(s, batch, ok);
        if (!batch)
            continue;

        pthread_mutex_lock(&s->mu);
        job *tail = batch;
        while (tail->next)
            tail = tail->next;
        if (s->out_tail)
            s->out_tail->next = batch;
        else
            s->out_head = batch;
        s->out_tail = tail;
        pthread_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
    }
    return NULL;
}

/* ---- checkpoints -------------------------------------------------------- */

#define CHECKPOINT_PAGES 1000
#define RESTART_FRAMES 4096 /* 16 MiB of 4 KiB pages */

/* Called by SQLite on the writer thread after each commit. */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    store *s = arg;
    (void)name;
    /* The checkpoint thread copies pages without holding up commits, but
     * under constant writes it never reaches the end of the WAL, and the
     * WAL only starts over once a checkpoint has. When the WAL is long, the
     * writer finishes the few frames left itself, and its next commit
     * writes the WAL from the start again. */
    if (pages >= RESTART_FRAMES) {
        int log, done;
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                  &done);
        return SQLITE_OK;
    }
    if (pages >= CHECKPOINT_PAGES) {
        pthread_mutex_lock(&s->mu);
        if (!s->ckpt_wanted) {
            s->ckpt_wanted = 1;
            pthread_cond_signal(&s->ckpt_cv);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return SQLITE_OK;
}

static void *checkpointer(void *arg)
{
    store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->ckpt_wanted && !s->stopping)
            pthread_cond_wait(&s->ckpt_cv, &s->mu);
        int stop = s->stopping;
        s->ckpt_wanted = 0;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
                                           SQLITE_CHECKPOINT_PASSIVE, &log,
                                           &done);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            HL_WARN("store", "checkpoint failed", "reason",
                    sqlite3_errmsg(s->ckpt_db));
    }
    return NULL;
}

/* ---- the loop side ------------------------------------------------------- */

static void deliver_results(store *s)
{
    pthread_mutex_lock(&s->mu);
    job *j = s->out_head;
    s->out_head = s->out_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (j) {
        job *next = j->next;
        j->cb(j->ud, &j->res);
        free(j);
        j = next;
    }
}

static void on_async(uv_async_t *a)
{
    deliver_results(a->data);
}

static int enqueue(store *s, job *j);

static int store_append(hl_queue *q, const hl_inbound *ev, hl_append_cb cb,
                        void *ud)
{
    store *s = (store *)q;
    job *j = calloc(1, sizeof *j);
    if (!j)
        return HL_ENOMEM;
    j->kind = JOB_APPEND;
    j->ev = *ev;
    j->cb = cb;
    j->ud = ud;
    return enqueue(s, j);
}

static int store_settle_take(hl_queue *q, hl_settle *st)
{
    store *s = (store *)q;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        hl_settle_free(st);
        return HL_ENOMEM;
    }
    j->kind = JOB_SETTLE;
    j->settle = st;
    int rc = enqueue(s, j);
    if (rc && rc != HL_EBUSY)
        hl_settle_free(st);
    return rc;
}

/* Hand a job to the writer; on refusal the job is freed. Outcomes of
 * normalizing are refused with HL_EBUSY while MAX_SETTLES wait. */
static int enqueue(store *s, job *j)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->stopping ? HL_ESHUTDOWN
             : j->kind == JOB_SETTLE && s->nsettles >= MAX_SETTLES
                 ? HL_EBUSY
                 : 0;
    if (rc) {
        pthread_mutex_unlock(&s->mu);
        free(j);
        return rc;
    }
    /* Operators' repairs (a replay, a purge) are written like outcomes of
     * normalizing: in transactions of their own, never in intake's. */
    int detached = j->kind == JOB_ASK && j->ask.detached;
    int settle = j->kind == JOB_SETTLE || j->kind == JOB_RETRY ||
                 (j->kind == JOB_ASK && !detached);
    /* A connector's own note (its circuit) is written in order with the
     * attempts that caused it. */
    int delivery = j->kind == JOB_LEASE || j->kind == JOB_FINISH ||
                   j->kind == JOB_KV || detached;
    job **head = settle ? &s->set_head : delivery ? &s->dl_head : &s->in_head;
    job **tail = settle ? &s->set_tail : delivery ? &s->dl_tail : &s->in_tail;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
    if (settle)
        s->nsettles++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void hl_stored_batch_free(hl_stored_batch *b)
{
    for (size_t i = 0; i < b->nmem; i++)
        free(b->mem[i]);
    free(b->mem);
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* One row into one allocation: the strings, then the body. */
static int stored_row(sqlite3_stmt *st, hl_stored *out, void **mem)
{
    static const int text_cols[] = {2, 3, 5, 6, 7, 9};
    size_t need = 0;
    for (size_t i = 0; i < 6; i++)
        need += (size_t)sqlite3_column_bytes(st, text_cols[i]) + 1;
    size_t blen = (size_t)sqlite3_column_bytes(st, 8);
    char *p = malloc(need + blen + 1);
    if (!p)
        return HL_ENOMEM;
    *mem = p;
    memset(out, 0, sizeof *out);
    out->seq = sqlite3_column_int64(st, 0);
    snprintf(out->ev.id, sizeof out->ev.id, "%s",
             (const char *)sqlite3_column_text(st, 1));
    const char **dst[] = {&out->ev.tenant,        &out->ev.source,
                          &out->ev.correlation_id, &out->ev.content_type,
                          &out->ev.headers_json,   &out->ev.idem_key};
    for (size_t i = 0; i < 6; i++) {
        const unsigned char *t = sqlite3_column_text(st, text_cols[i]);
        size_t n = (size_t)sqlite3_column_bytes(st, text_cols[i]);
        if (!t) {
            *dst[i] = NULL;
            continue;
        }
        memcpy(p, t, n);
        p[n] = 0;
        *dst[i] = p;
        p += n + 1;
    }
    if (blen)
        memcpy(p, sqlite3_column_blob(st, 8), blen);
    p[blen] = 0;
    out->ev.body = p;
    out->ev.body_len = blen;
    out->ev.received_ms = sqlite3_column_int64(st, 4);
    return 0;
}

static int store_read_received(hl_queue *q, int64_t after_seq, size_t max,
                               hl_stored_batch *out)
{
    store *s = (store *)q;
    memset(out, 0, sizeof *out);
    out->v = calloc(max ? max : 1, sizeof *out->v);
    out->mem = calloc(max ? max : 1, sizeof *out->mem);
    if (!out->v || !out->mem) {
        hl_stored_batch_free(out);
        return HL_ENOMEM;
    }
    pthread_mutex_lock(&s->rd_mu);
    if (after_seq < 0 || atomic_exchange(&s->settle_failed, 0)) {
        sqlite3_stmt *c = s->st_read_cursor;
        after_seq = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0)
                                                  : 0;
        sqlite3_reset(c);
    }
    out->from = after_seq;
    sqlite3_stmt *st = s->st_read;
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int rc;
    while (out->n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (stored_row(st, &out->v[out->n], &out->mem[out->nmem]))
            break;
        out->nmem++;
        out->n++;
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->rd_mu);
    return 0;
}

static int store_retry_unparsed(hl_queue *q)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return HL_ENOMEM;
    j->kind = JOB_RETRY;
    return enqueue((store *)q, j);
}

static int store_lease(hl_queue *q, const char *connector, size_t max,
                       int64_t now_ms, uint64_t lease_ms, hl_lease_cb cb,
                       void *ud)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return HL_ENOMEM;
    j->kind = JOB_LEASE;
    snprintf(j->lease.connector, sizeof j->lease.connector, "%s", connector);
    j->lease.max = max;
    j->lease.now_ms = now_ms;
    j->lease.lease_ms = lease_ms;
    j->lease.cb = cb;
    j->lease.ud = ud;
    return enqueue((store *)q, j);
}

static int store_finish_take(hl_queue *q, hl_attempt_row *rows, size_t n)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        hl_attempt_rows_free(rows, n);
        return HL_ENOMEM;
    }
    j->kind = JOB_FINISH;
    j->rows = rows;
    j->n_rows = n;
    int rc = enqueue((store *)q, j);
    if (rc)
        hl_attempt_rows_free(rows, n);
    return rc;
}

static int store_kv_get(hl_queue *q, const char *connector, const char *key,
                        char **value)
{
    store *s = (store *)q;
    *value = NULL;
    pthread_mutex_lock(&s->rd_mu);
    sqlite3_stmt *st = s->st_kv_get;
    sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *value = col_dup(st, 0, NULL);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->rd_mu);
    if (rc == SQLITE_ROW)
        return *value ? 0 : HL_ENOMEM;
    return rc == SQLITE_DONE ? HL_ENOTFOUND : HL_ESTORE;
}

/* Hand j to the writer and wait until it is written: 0 (the caller frees
 * j) or why it was refused (j is freed). */
static int enqueue_wait(store *s, job *j)
{
    int rc = enqueue(s, j);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    while (!j->kv.done)
        pthread_cond_wait(&s->kv_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int store_ask(hl_queue *q, const hl_query *qr, json_t **out)
{
    store *s = (store *)q;
    *out = NULL;
    if (qr->kind < HL_R_RETRY) {
        pthread_mutex_lock(&s->adm_mu);
        int rc = hl__ask_read(s->adm_db, qr, out);
        pthread_mutex_unlock(&s->adm_mu);
        return rc == SQLITE_OK         ? 0
               : rc == SQLITE_NOTFOUND ? HL_ENOTFOUND
                                       : HL_ESTORE;
    }
    job *j = calloc(1, sizeof *j);
    if (!j)
        return HL_ENOMEM;
    j->kind = JOB_ASK;
    if (qr->kind == HL_R_NOTE) {
        /* Sent without waiting: the dispatcher's thread must not block. */
        j->ask.detached = 1;
        j->ask.own.kind = HL_R_NOTE;
        j->ask.own.note = json_deep_copy(qr->note);
        j->ask.own.note_type = strdup(qr->note_type);
        if (!j->ask.own.note || !j->ask.own.note_type) {
            json_decref(j->ask.own.note);
            free((char *)j->ask.own.note_type);
            free(j);
            return HL_ENOMEM;
        }
        json_t *keep = j->ask.own.note;
        char *type = (char *)j->ask.own.note_type;
        int rc = enqueue(s, j);
        if (rc) {
            json_decref(keep);
            free(type);
        }
        return rc;
    }
    j->ask.q = qr;
    int rc = enqueue_wait(s, j);
    if (rc)
        return rc;
    rc = j->ask.rc;
    if (!rc)
        *out = j->ask.out;
    else
        json_decref(j->ask.out);
    free(j);
    return rc;
}

static void store_on_notes(hl_queue *q, hl_notes_cb fn, void *ud)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->mu);
    s->notes_hook = fn;
    s->notes_ud = ud;
    pthread_mutex_unlock(&s->mu);
}

static int store_read_notes(hl_queue *q, int64_t after_seq, size_t max,
                            hl_note **out, size_t *n, int64_t *last_seq)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->adm_mu);
    *last_seq = atomic_load(&s->notes_seq);
    int rc = hl__notes_read(s->adm_db, after_seq, max, out, n);
    pthread_mutex_unlock(&s->adm_mu);
    return rc == SQLITE_OK ? 0 : HL_ESTORE;
}

/* Written by the writer like everything else; waits for the commit. */
static int kv_write(store *s, int held, const char *connector,
                    const char *key, const char *value)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return HL_ENOMEM;
    j->kind = JOB_KV;
    j->kv.held = held;
    j->kv.connector = strdup(connector);
    j->kv.key = key ? strdup(key) : NULL;
    j->kv.value = value ? strdup(value) : NULL;
    if (!j->kv.connector || (key && !j->kv.key) || (value && !j->kv.value)) {
        free(j->kv.connector);
        free(j->kv.key);
        free(j->kv.value);
        free(j);
        return HL_ENOMEM;
    }
    char *c = j->kv.connector, *k = j->kv.key, *v = j->kv.value;
    int rc = enqueue_wait(s, j);
    if (!rc) {
        rc = j->kv.rc;
        free(j);
    }
    free(c);
    free(k);
    free(v);
    return rc;
}

static int store_kv_put(hl_queue *q, const char *connector, const char *key,
                        const char *value)
{
    return kv_write((store *)q, 0, connector, key, value);
}

static int store_hold(hl_queue *q, const char *connector, const char *state,
                      const char *reason)
{
    return kv_write((store *)q, 1, connector, state, reason);
}

static int store_holds(hl_queue *q, hl_hold_cb cb, void *ud)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->rd_mu);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->rd_db,
                                "SELECT connector, state, reason FROM "
                                "connector_state ORDER BY connector",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            cb(ud, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2));
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->rd_mu);
    return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static void store_on_deliveries(hl_queue *q, hl_commit_hook fn, void *ud)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->mu);
    s->dhook = fn;
    s->dhook_ud = ud;
    pthread_mutex_unlock(&s->mu);
}

static void store_on_commit(hl_queue *q, hl_commit_hook fn, void *ud)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->mu);
    s->hook = fn;
    s->hook_ud = ud;
    pthread_mutex_unlock(&s->mu);
}

static uint64_t store_backlog(const hl_queue *q)
{
    return atomic_load(&((const store *)q)->backlog);
}

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void finalize_all(store *s)
{
    sqlite3_stmt *all[] = {s->st_begin,     s->st_commit,   s->st_rollback,
                           s->st_insert,    s->st_find,     s->st_canon_del,
                           s->st_canon_ins, s->st_state,    s->st_read,
                           s->st_sync_relaxed, s->st_sync_full, s->st_retry,
                           s->st_retry_cursor, s->st_cursor,
                           s->st_read_cursor, s->st_dlv_ins, s->st_lease,
                           s->st_lease_ev, s->st_next_due, s->st_finish,
                           s->st_attempt, s->st_kv_put, s->st_kv_del,
                           s->st_kv_get, s->st_next_tenant, s->st_held_put,
                           s->st_held_del, s->notes.ins, s->st_vacuum};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
}

static void store_close(hl_queue *q)
{
    store *s = (store *)q;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    uint64_t commits = atomic_load(&s->commits);
    if (commits) {
        char n[32], avg[32], us[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)commits);
        snprintf(avg, sizeof avg, "%.1f",
                 (double)atomic_load(&s->events) / (double)commits);
        snprintf(us, sizeof us, "%llu",
                 (unsigned long long)(atomic_load(&s->commit_us_total) /
                                      commits));
        HL_INFO("store", "closed", "commits", n, "events_per_commit", avg,
                "commit_us_avg", us);
    }
    if (s->ckpt_started)
        pthread_join(s->ckpt_thread, NULL);
    deliver_results(s);
    finalize_all(s);
    if (s->ckpt_db)
        sqlite3_close(s->ckpt_db);
    if (s->rd_db)
        sqlite3_close(s->rd_db);
    if (s->adm_db)
        sqlite3_close(s->adm_db);
    free(s->notes.v);
    pthread_mutex_destroy(&s->rd_mu);
    pthread_mutex_destroy(&s->adm_mu);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        HL_ERROR("store", "closing the database failed", "reason",
                 sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_cond_destroy(&s->kv_cv);
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

static const hl_queue_ops store_ops = {
    .append = store_append,
    .backlog = store_backlog,
    .close = store_close,
    .read_received = store_read_received,
    .settle_take = store_settle_take,
    .on_commit = store_on_commit,
    .retry_unparsed = store_retry_unparsed,
    .lease = store_lease,
    .finish_take = store_finish_take,
    .kv_get = store_kv_get,
    .kv_put = store_kv_put,
    .on_deliveries = store_on_deliveries,
    .hold = store_hold,
    .holds = store_holds,
    .ask = store_ask,
    .on_notes = store_on_notes,
    .read_notes = store_read_notes,
};

void hl_store_stats_get(const hl_queue *q, hl_store_stats *out)
{
    const store *s = (const store *)q;
    out->commits = atomic_load(&s->commits);
    out->events = atomic_load(&s->events);
    out->failures = atomic_load(&s->failures);
    out->last_batch = atomic_load(&s->last_batch_n);
    out->last_commit_us = atomic_load(&s->last_commit_us);
}

#define HL_APPLICATION_ID 0x484c4e31 /* "HLN1" */

/* Read the schema version before changing anything in the file, so a file
 * that is refused is left as it was. */
static int check_identity(sqlite3 *db, const char *path, char *err,
                          size_t errlen)
{
    int version = 0, appid = 0, tables = 0;
    if (pragma_int(db, "PRAGMA user_version", &version) != SQLITE_OK ||
        pragma_int(db, "PRAGMA application_id", &appid) != SQLITE_OK ||
        pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables) !=
            SQLITE_OK)
        return sqlite_fail(db, path, "cannot read the database", err, errlen);
    if (appid && appid != HL_APPLICATION_ID)
        return fail(err, errlen, HL_ESTORE,
                    "%s: this SQLite file belongs to another application "
                    "(application_id %d); point storage.path elsewhere",
                    path, appid);
    if (!appid && tables && version == 0)
        return fail(err, errlen, HL_ESTORE,
                    "%s: this SQLite file already holds tables that are not "
                    "hookline's; point storage.path elsewhere",
                    path);
    if (version > HL_STORE_SCHEMA_VERSION)
        return fail(err, errlen, HL_ESTORE,
                    "%s: the database has schema version %d, newer than this "
                    "hookline knows (%d); run a newer hookline",
                    path, version, HL_STORE_SCHEMA_VERSION);
    return 0;
}

static int open_db(store *s, const hl_storage_cfg *cfg, char *err,
                   size_t errlen)
{
    const char *path = cfg->path;
    int rc = mkdirs_for(path, err, errlen);
    if (rc)
        return rc;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        if (!s->db)
            return fail(err, errlen, HL_ENOMEM, "%s: out of memory", path);
        return sqlite_fail(s->db, path, "cannot open", err, errlen);
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 1000);
    if ((rc = check_identity(s->db, path, err, errlen)))
        return rc;
    char sql[300];
    snprintf(sql, sizeof sql,
             "PRAGMA auto_vacuum = INCREMENTAL;"
             "PRAGMA journal_mode = WAL;"
             /* A WAL that grew while a backlog was normalized is cut back
              * once a checkpoint has caught up. */
             "PRAGMA journal_size_limit = 67108864;"
             "PRAGMA synchronous = %s;"
             "PRAGMA foreign_keys = ON;",
             cfg->durability == HL_DURABILITY_FULL ? "FULL" : "NORMAL");
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(s->db, path, "cannot set up the database", err,
                           errlen);
    int wal = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            wal = !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
    }
    if (!wal)
        return fail(err, errlen, HL_ESTORE,
                    "%s: the file system does not support SQLite's WAL mode; "
                    "put storage.path on a local disk",
                    path);
    s->full_sync = cfg->durability == HL_DURABILITY_FULL;
    if ((rc = migrate(s->db, path, err, errlen)))
        return rc;
    if (cfg->max_size) {
        int page = 4096;
        pragma_int(s->db, "PRAGMA page_size", &page);
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %llu",
                 (unsigned long long)(cfg->max_size / (uint64_t)page));
        if (exec(s->db, sql, err, errlen, path))
            return HL_ESTORE;
    }
    int pending = 0;
    if (pragma_int(s->db,
                   "SELECT (SELECT count(*) FROM events WHERE seq > (SELECT "
                   "seq FROM normalize_cursor) AND state = 'received') + "
                   "(SELECT count(*) FROM deliveries WHERE state IN "
                   "('queued', 'sending', 'retrying', 'paused'))",
                   &pending) != SQLITE_OK)
        return fail(err, errlen, HL_ESTORE, "%s: %s", path,
                    sqlite3_errmsg(s->db));
    atomic_store(&s->backlog, (uint64_t)pending);
    if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE |
                                              SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return fail(err, errlen, HL_ESTORE, "%s: cannot open: %s", path,
                    s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "out of memory");
    sqlite3_busy_timeout(s->ckpt_db, 1000);
    snprintf(sql, sizeof sql, "PRAGMA synchronous = %s",
             cfg->durability == HL_DURABILITY_FULL ? "FULL" : "NORMAL");
    if (exec(s->ckpt_db, sql, err, errlen, path))
        return HL_ESTORE;
    sqlite3_wal_autocheckpoint(s->db, 0);
    sqlite3_wal_hook(s->db, on_wal, s);
    if (sqlite3_open_v2(path, &s->rd_db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(
            s->rd_db,
            "SELECT seq, id, tenant, source, received_at, correlation_id, "
            "content_type, headers, body, idem_key FROM events "
            "WHERE state = 'received' AND seq > ?1 ORDER BY seq LIMIT ?2",
            -1, SQLITE_PREPARE_PERSISTENT, &s->st_read, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->rd_db,
                           "SELECT seq FROM normalize_cursor WHERE id = 1", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->st_read_cursor,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->rd_db,
                           "SELECT value FROM connector_kv WHERE connector = "
                           "?1 AND key = ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->st_kv_get,
                           NULL) != SQLITE_OK)
        return sqlite_fail(s->rd_db, path, "cannot open for reading", err,
                           errlen);
    sqlite3_busy_timeout(s->rd_db, 1000);
    if (sqlite3_open_v2(path, &s->adm_db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return sqlite_fail(s->adm_db, path, "cannot open for reading", err,
                           errlen);
    sqlite3_busy_timeout(s->adm_db, 1000);
    int seq = 0;
    if (pragma_int(s->db,
                   "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE "
                   "name = 'stream'), 0)",
                   &seq) != SQLITE_OK)
        return sqlite_fail(s->db, path, "cannot read the stream", err,
                           errlen);
    s->notes.seq = seq;
    atomic_store(&s->notes_seq, seq);
    return prepare(s, path, err, errlen);
}

int hl_store_open(uv_loop_t *loop, const hl_storage_cfg *cfg, hl_queue **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return fail(err, errlen, HL_ENOMEM, "out of memory");
    s->base.ops = &store_ops;
    s->loop = loop;
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                   1024};
    s->m_batch = hl_metric_histogram(
        "hookline_store_commit_batch_size",
        "Writes (webhooks, outcomes, attempts) per committed transaction.",
        "", sizes, sizeof sizes / sizeof *sizes);
    s->m_commit = hl_metric_histogram(
        "hookline_store_commit_duration_seconds",
        "Time to commit one transaction, fsync included when durability "
        "is full.",
        "", hl_metric_latency_bounds, hl_metric_latency_n);
    s->m_fsync = hl_metric_histogram(
        "hookline_store_fsync_seconds",
        "The COMMIT of one transaction: writing the WAL and, when durability "
        "is full, its fsync.",
        "", hl_metric_latency_bounds, hl_metric_latency_n);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    pthread_cond_init(&s->kv_cv, NULL);
    pthread_mutex_init(&s->rd_mu, NULL);
    pthread_mutex_init(&s->adm_mu, NULL);
    int rc = uv_async_init(loop, &s->async, on_async);
    if (rc) {
        pthread_mutex_destroy(&s->adm_mu);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->ckpt_cv);
        pthread_cond_destroy(&s->kv_cv);
        pthread_mutex_destroy(&s->rd_mu);
        free(s);
        return fail(err, errlen, rc, "uv_async_init: %s", uv_strerror(rc));
    }
    s->async.data = s;
    rc = open_db(s, cfg, err, errlen);
    if (!rc) {
        if (pthread_create(&s->thread, NULL, writer, s) == 0)
            s->thread_started = 1;
        else
            rc = fail(err, errlen, HL_EINTERNAL,
                      "cannot start the writer thread");
    }
    if (!rc) {
        if (pthread_create(&s->ckpt_thread, NULL, checkpointer, s) == 0)
            s->ckpt_started = 1;
        else
            rc = fail(err, errlen, HL_EINTERNAL,
                      "cannot start the checkpoint thread");
    }
    if (rc) {
        store_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
