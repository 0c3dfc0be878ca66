/* store.c - the embedded SQLite queue: schema and migrations, one writer thread, group commit. */
#include "store.h"

#include "err.h"
#include "log.h"

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
/* Normalization outcomes waiting for the writer, at most. */
#define MAX_SETTLES 4096
/* Under load, wait this long for more requests to share one commit. */

/* The writer's work: an inbound webhook to append, or a normalization
 * outcome to record (settle set). */
typedef struct job {
    hl_inbound ev;
    hl_append_cb cb;
    void *ud;
    hl_append_result res;
    hl_settle *settle;
    int retry_unparsed; /* put unparsed webhooks back to 'received' */
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
         "severity, dedupkey, time, raw_ptr, body) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
        {offsetof(store, st_retry_cursor),
         "UPDATE normalize_cursor SET seq = (SELECT min(seq) - 1 FROM events "
         "WHERE state = 'unparsed') WHERE id = 1 AND EXISTS (SELECT 1 FROM "
         "events WHERE state = 'unparsed')"},
        {offsetof(store, st_retry),
         "UPDATE events SET state = 'received', state_reason = NULL "
         "WHERE state = 'unparsed'"},
        {offsetof(store, st_cursor),
         "UPDATE normalize_cursor SET seq = ?1 WHERE id = 1 AND seq < ?1"},
        {offsetof(store, st_sync_relaxed), "PRAGMA synchronous = NORMAL"},
        {offsetof(store, st_sync_full), "PRAGMA synchronous = FULL"},
        {offsetof(store, st_state),
         "UPDATE events SET state = ?2, state_reason = ?3 WHERE id = ?1 AND "
         "state != ?2"},
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
    if (rc == SQLITE_OK)
        snprintf(j->res.id, sizeof j->res.id, "%s", ev->id);
    return rc;
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
    }
    free(st->rows);
    free(st);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int write_canonical(store *s, const hl_settle *set,
                           const hl_canonical_row *r)
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
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Replace the webhook's canonical events and set its state. Returns the
 * change to the backlog through *leaving (1 when it stops waiting). */
static int write_settle(store *s, const hl_settle *st, int *leaving)
{
    sqlite3_bind_text(s->st_canon_del, 1, st->event_id, -1, SQLITE_STATIC);
    int rc = step_done(s->st_canon_del);
    sqlite3_clear_bindings(s->st_canon_del);
    for (size_t i = 0; rc == SQLITE_OK && i < st->n; i++)
        rc = write_canonical(s, st, &st->rows[i]);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *u = s->st_state;
    sqlite3_bind_text(u, 1, st->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 2, st->parsed ? "normalized" : "unparsed", -1,
                      SQLITE_STATIC);
    if (st->parsed)
        sqlite3_bind_null(u, 3);
    else
        sqlite3_bind_text(u, 3, st->reason, -1, SQLITE_STATIC);
    rc = step_done(u);
    sqlite3_clear_bindings(u);
    *leaving = !st->parsed && sqlite3_changes(s->db) > 0;
    return rc;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* One transaction for the whole batch; on any failure every job fails. */
/* Full durability for commits that answer requests, relaxed for the rest. */
static void set_sync(store *s, const job *batch)
{
    if (!s->full_sync)
        return;
    int intake = 0;
    for (const job *j = batch; j && !intake; j = j->next)
        intake = !j->settle && !j->retry_unparsed;
    if (intake == !s->relaxed)
        return;
    step_done(intake ? s->st_sync_full : s->st_sync_relaxed);
    s->relaxed = !intake;
}

static void commit_batch(store *s, job *batch, size_t n)
{
    set_sync(s, batch);
    uint64_t t0 = now_us();
    int rc = step_done(s->st_begin);
    uint64_t leaving = 0, back = 0;
    int64_t cursor = 0;
    for (job *j = batch; rc == SQLITE_OK && j; j = j->next) {
        int gone = 0;
        if (j->retry_unparsed) {
            rc = step_done(s->st_retry_cursor);
            if (rc == SQLITE_OK)
                rc = step_done(s->st_retry);
            back += (uint64_t)sqlite3_changes(s->db);
        } else if (j->settle) {
            rc = write_settle(s, j->settle, &gone);
            if (j->settle->seq > cursor)
                cursor = j->settle->seq;
        } else {
            rc = write_one(s, j);
        }
        leaving += (uint64_t)gone;
    }
    if (rc == SQLITE_OK && cursor) {
        sqlite3_bind_int64(s->st_cursor, 1, cursor);
        rc = step_done(s->st_cursor);
    }
    if (rc == SQLITE_OK)
        rc = step_done(s->st_commit);
    if (rc != SQLITE_OK && cursor)
        atomic_store(&s->settle_failed, 1);
    uint64_t fresh = 0;
    for (job *j = batch; j; j = j->next) {
        if (j->settle || j->retry_unparsed)
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
        if (cursor) {
            pthread_mutex_lock(&s->mu);
            if (s->hook)
                s->hook(s->hook_ud);
            pthread_mutex_unlock(&s->mu);
        }
        return;
    }
    atomic_fetch_add(&s->backlog, fresh);
    atomic_fetch_sub(&s->backlog, leaving);
    atomic_fetch_add(&s->backlog, back);
    atomic_fetch_add(&s->events, fresh);
    if (fresh || back || atomic_load(&s->settle_failed)) {
        /* Under the lock, so the hook cannot be removed while it runs. */
        pthread_mutex_lock(&s->mu);
        if (s->hook)
            s->hook(s->hook_ud);
        pthread_mutex_unlock(&s->mu);
    }
    atomic_fetch_add(&s->commits, 1);
    atomic_store(&s->last_batch_n, n);
    uint64_t took = now_us() - t0;
    atomic_store(&s->last_commit_us, took);
    atomic_fetch_add(&s->commit_us_total, took);
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

/* A batch: intake first, up to MAX_BATCH; normalization outcomes (up to
 * SETTLE_SHARE beside intake, SETTLE_ALONE without). Holds s->mu. */
static size_t take(store *s, job **batch)
{
    job **tail = batch;
    *batch = NULL;
    size_t n = take_from(&s->in_head, &s->in_tail, MAX_BATCH, &tail);
    size_t m = take_from(&s->set_head, &s->set_tail,
                         n ? SETTLE_SHARE : SETTLE_ALONE, &tail);
    s->nsettles -= m;
    return n + m;
}

/* Settles have no one to answer: free them here, off the loop. A settle
 * whose commit failed is read and normalized again later. */
static job *drop_settles(job *batch)
{
    job *head = NULL, **tail = &head;
    for (job *j = batch, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (j->settle || j->retry_unparsed) {
            hl_settle_free(j->settle);
            free(j);
        } else {
            *tail = j;
            tail = &j->next;
        }
    }
    return head;
}

static void *writer(void *arg)
{
    store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->in_head && !s->set_head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->in_head && !s->set_head && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job *batch;
        size_t n = take(s, &batch);
        pthread_mutex_unlock(&s->mu);

        commit_batch(s, batch, n);
        batch = drop_settles(batch);
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
    int rc = s->stopping                                ? HL_ESHUTDOWN
             : j->settle && s->nsettles >= MAX_SETTLES ? HL_EBUSY
                                                        : 0;
    if (rc) {
        pthread_mutex_unlock(&s->mu);
        free(j);
        return rc;
    }
    int background = j->settle || j->retry_unparsed;
    job **head = background ? &s->set_head : &s->in_head;
    job **tail = background ? &s->set_tail : &s->in_tail;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
    if (background)
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
    j->retry_unparsed = 1;
    return enqueue((store *)q, j);
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
                           s->st_read_cursor};
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
    pthread_mutex_destroy(&s->rd_mu);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        HL_ERROR("store", "closing the database failed", "reason",
                 sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ckpt_cv);
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
    char sql[200];
    snprintf(sql, sizeof sql,
             "PRAGMA auto_vacuum = INCREMENTAL;"
             "PRAGMA journal_mode = WAL;"
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
                   "SELECT (SELECT count(*) FROM events) - (SELECT count(*) "
                   "FROM events WHERE state = 'unparsed')",
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
                           NULL) != SQLITE_OK)
        return sqlite_fail(s->rd_db, path, "cannot open for reading", err,
                           errlen);
    sqlite3_busy_timeout(s->rd_db, 1000);
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    pthread_mutex_init(&s->rd_mu, NULL);
    int rc = uv_async_init(loop, &s->async, on_async);
    if (rc) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->ckpt_cv);
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
