/* test_store.c - the SQLite queue: open and migrations, group commit, idempotency, backlog, deliveries and their leases, damaged, full and read-only files, close. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "err.h"
#include "id.h"
#include "log.h"
#include "queue.h"
#include "store.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- fixture ------------------------------------------------------------ */

#define MAX_EVENTS 1024
#define WAIT_MS 20000 /* a commit that takes longer than this has hung */

/* One event a test appends, and what its callback saw. Lives in g until the
 * teardown, so a callback that runs after a failed assertion is still safe. */
typedef struct ev_slot ev_slot;
struct ev_slot {
    hl_inbound ev;
    char tenant[32], source[64], corr[64], ctype[64], idem[64], headers[128];
    unsigned char *body;
    void (*hook)(ev_slot *s); /* runs inside the callback */
    int calls;
    int order; /* how many callbacks ran before this one */
    hl_append_result res;
    char reason[256];
};

static struct {
    char dir[256];  /* a fresh mkdtemp folder, removed by the teardown */
    char path[1024]; /* dir/data/hookline.db unless a test says otherwise */
    uv_loop_t loop;
    int loop_open;
    uv_timer_t timer;
    int timed_out;
    hl_queue *q;
    FILE *log; /* the store's log lines */
    char err[1024];
    ev_slot slots[MAX_EVENTS];
    size_t nslots;
    int calls;
    int appended_while_closing; /* what append returned inside a callback */
    int euid_changed;
    hl_lease *leases[64]; /* what lease() got, freed by the teardown */
    size_t nleases;
} g;

static void on_timeout(uv_timer_t *t)
{
    (void)t;
    g.timed_out = 1;
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    snprintf(g.dir, sizeof g.dir, "/tmp/hl-test-store-XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    snprintf(g.path, sizeof g.path, "%s/data/hookline.db", g.dir);
    if (uv_loop_init(&g.loop) || uv_timer_init(&g.loop, &g.timer))
        return -1;
    g.loop_open = 1;
    g.log = tmpfile();
    if (!g.log)
        return -1;
    hl_log_set_stream(g.log);
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700); /* a test may have left it read-only */
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    if (g.euid_changed && seteuid(0) == 0)
        g.euid_changed = 0;
    if (g.q) /* a test failed before its end: still free everything */
        hl_queue_close(g.q);
    g.q = NULL;
    if (g.loop_open) {
        if (!uv_is_closing((uv_handle_t *)&g.timer))
            uv_close((uv_handle_t *)&g.timer, NULL);
        uv_run(&g.loop, UV_RUN_DEFAULT);
        uv_loop_close(&g.loop);
        g.loop_open = 0;
    }
    for (size_t i = 0; i < g.nslots; i++)
        free(g.slots[i].body);
    for (size_t i = 0; i < g.nleases; i++)
        hl_lease_free(g.leases[i]);
    hl_log_set_stream(NULL);
    if (g.log)
        fclose(g.log);
    chmod(g.dir, 0700);
    nftw(g.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void on_appended(void *ud, const hl_append_result *res)
{
    ev_slot *s = ud;
    s->calls++;
    s->order = g.calls++;
    s->res = *res;
    snprintf(s->reason, sizeof s->reason, "%s",
             res->reason ? res->reason : "");
    s->res.reason = NULL; /* borrowed: only valid during the callback */
    if (s->hook)
        s->hook(s);
}

/* ---- helpers: the store ------------------------------------------------- */

static hl_storage_cfg cfg_of(const char *path, int durability,
                             uint64_t max_size)
{
    hl_storage_cfg c = {0};
    c.path = path;
    c.durability = durability;
    c.max_queued = 100000;
    c.max_size = max_size;
    return c;
}

static void open_with(int durability, uint64_t max_size)
{
    hl_storage_cfg c = cfg_of(g.path, durability, max_size);
    g.err[0] = 0;
    int rc = hl_store_open(&g.loop, &c, &g.q, g.err, sizeof g.err);
    if (rc)
        fail_msg("hl_store_open(%s): %s: %s", g.path, hl_err_name(rc), g.err);
    assert_non_null(g.q);
}

static void open_store(void)
{
    open_with(HL_DURABILITY_FULL, 0);
}

/* Open a path that must not open: returns the code, g.err has the text. */
static int open_fails(const char *path)
{
    hl_storage_cfg c = cfg_of(path, HL_DURABILITY_FULL, 0);
    hl_queue *q = (hl_queue *)&g; /* anything but NULL */
    g.err[0] = 0;
    int rc = hl_store_open(&g.loop, &c, &q, g.err, sizeof g.err);
    if (rc == 0) {
        g.q = q;
        fail_msg("hl_store_open(%s) worked; it should have failed", path);
    }
    assert_true(rc < 0);
    assert_null(q);
    assert_true(g.err[0] != 0);
    /* The half-made store closes its handle: the loop frees it. */
    uv_run(&g.loop, UV_RUN_DEFAULT);
    return rc;
}

/* Close the store and let the loop free it (the timer stays for reuse). */
static void close_store(void)
{
    hl_queue_close(g.q);
    g.q = NULL;
    uv_run(&g.loop, UV_RUN_DEFAULT);
}

/* How every test ends: close, run the loop dry, and the loop closes. */
static void finish(void)
{
    if (g.q)
        hl_queue_close(g.q);
    g.q = NULL;
    uv_close((uv_handle_t *)&g.timer, NULL);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g.loop), 0);
    g.loop_open = 0;
}

/* Run the loop until n callbacks in all have run. */
static void wait_calls(int n)
{
    g.timed_out = 0;
    assert_int_equal(uv_timer_start(&g.timer, on_timeout, WAIT_MS, 0), 0);
    while (g.calls < n && !g.timed_out)
        uv_run(&g.loop, UV_RUN_ONCE);
    uv_timer_stop(&g.timer);
    if (g.calls < n)
        fail_msg("%d callbacks after %d ms, want %d", g.calls, WAIT_MS, n);
}

/* A new event with a fresh id; strings and body are copied into the slot. */
static ev_slot *ev_new(const char *tenant, const char *source,
                       const char *idem, const void *body, size_t len)
{
    assert_true(g.nslots < MAX_EVENTS);
    size_t n = g.nslots++;
    ev_slot *s = &g.slots[n];
    memset(s, 0, sizeof *s);
    assert_int_equal(hl_id_new(hl_now_ms(), s->ev.id), 0);
    snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
    snprintf(s->source, sizeof s->source, "%s", source);
    snprintf(s->corr, sizeof s->corr, "corr-%zu", n);
    snprintf(s->ctype, sizeof s->ctype, "application/json");
    snprintf(s->headers, sizeof s->headers,
             "{\"x-test\":\"%zu\",\"user-agent\":\"test_store\"}", n);
    s->body = malloc(len + 1);
    assert_non_null(s->body);
    if (len)
        memcpy(s->body, body, len);
    s->ev.tenant = s->tenant;
    s->ev.source = s->source;
    s->ev.correlation_id = s->corr;
    s->ev.content_type = s->ctype;
    s->ev.headers_json = s->headers;
    s->ev.body = s->body;
    s->ev.body_len = len;
    s->ev.received_ms = INT64_C(1717243200000) + (int64_t)n;
    if (idem) {
        snprintf(s->idem, sizeof s->idem, "%s", idem);
        s->ev.idem_key = s->idem;
    }
    return s;
}

static ev_slot *ev_text(const char *source, const char *idem, const char *text)
{
    return ev_new("acme", source, idem, text, strlen(text));
}

static void append(ev_slot *s)
{
    int rc = hl_queue_append(g.q, &s->ev, on_appended, s);
    if (rc)
        fail_msg("append %s: %s", s->ev.id, hl_err_name(rc));
}

/* Append one event and wait for its callback. */
static void append_wait(ev_slot *s)
{
    append(s);
    wait_calls(g.calls + 1);
    assert_int_equal(s->calls, 1);
}

static void assert_stored_ok(const ev_slot *s)
{
    if (s->res.status != 0)
        fail_msg("append %s: %s (%s)", s->ev.id, hl_err_name(s->res.status),
                 s->reason);
    assert_false(s->res.duplicate);
    assert_string_equal(s->res.id, s->ev.id);
}

static void assert_duplicate_of(const ev_slot *s, const char *first_id)
{
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->res.status, 0);
    assert_true(s->res.duplicate);
    assert_string_equal(s->res.id, first_id);
}

/* ---- helpers: a separate SQLite connection ------------------------------ */

static sqlite3 *db_open(const char *path, int flags)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK)
        fail_msg("sqlite3_open_v2(%s): %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static sqlite3 *ro_open(const char *path)
{
    return db_open(path, SQLITE_OPEN_READONLY);
}

static void db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* Run sql on its own read-write connection to path. */
static void rw_exec(const char *path, const char *sql)
{
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db_exec(db, sql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    return st;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = prep(db, sql);
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("%s: no row: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void q_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st = prep(db, sql);
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("%s: no row: %s", sql, sqlite3_errmsg(db));
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, size, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
}

/* Rows with this id, or with this (source, idem_key). */
static int64_t count_where(sqlite3 *db, const char *sql, const char *a,
                           const char *b)
{
    sqlite3_stmt *st = prep(db, sql);
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int64_t rows_with_id(sqlite3 *db, const char *id)
{
    return count_where(db, "SELECT count(*) FROM events WHERE id = ?1", id,
                       NULL);
}

static int64_t rows_with_key(sqlite3 *db, const char *source, const char *key)
{
    return count_where(db,
                       "SELECT count(*) FROM events WHERE source = ?1 AND "
                       "idem_key = ?2",
                       source, key);
}

static void assert_col_text(sqlite3_stmt *st, int col, const char *want,
                            const char *id)
{
    const unsigned char *got = sqlite3_column_text(st, col);
    if (!want) {
        if (sqlite3_column_type(st, col) != SQLITE_NULL)
            fail_msg("%s: column %s is '%s', want NULL", id,
                     sqlite3_column_name(st, col), got);
        return;
    }
    if (!got || strcmp((const char *)got, want))
        fail_msg("%s: column %s is '%s', want '%s'", id,
                 sqlite3_column_name(st, col), got ? (const char *)got : "NULL",
                 want);
}

/* The stored row of ev is there once, every column exactly as appended. */
static void assert_row(sqlite3 *db, const hl_inbound *ev)
{
    sqlite3_stmt *st =
        prep(db, "SELECT tenant, source, received_at, correlation_id, "
                 "content_type, headers, body, idem_key, state, state_reason, "
                 "typeof(body) FROM events WHERE id = ?1");
    sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("event %s is not stored", ev->id);
    assert_col_text(st, 0, ev->tenant, ev->id);
    assert_col_text(st, 1, ev->source, ev->id);
    assert_int_equal(sqlite3_column_int64(st, 2), ev->received_ms);
    assert_col_text(st, 3, ev->correlation_id, ev->id);
    assert_col_text(st, 4, ev->content_type, ev->id);
    assert_col_text(st, 5, ev->headers_json, ev->id);
    assert_col_text(st, 10, "blob", ev->id);
    const void *body = sqlite3_column_blob(st, 6);
    if ((size_t)sqlite3_column_bytes(st, 6) != ev->body_len)
        fail_msg("%s: body is %d bytes, want %zu", ev->id,
                 sqlite3_column_bytes(st, 6), ev->body_len);
    if (ev->body_len && memcmp(body, ev->body, ev->body_len))
        fail_msg("%s: body bytes differ", ev->id);
    assert_col_text(st, 7, ev->idem_key, ev->id);
    assert_col_text(st, 8, "received", ev->id);
    assert_col_text(st, 9, NULL, ev->id);
    sqlite3_finalize(st);
    assert_int_equal(rows_with_id(db, ev->id), 1);
}

static int64_t event_rows(const char *path)
{
    sqlite3 *db = ro_open(path);
    int64_t n = q_int(db, "SELECT count(*) FROM events");
    sqlite3_close(db);
    return n;
}

/* ---- helpers: files ----------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (!got)
            break;
        n += got;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Copy src to dst, at most limit bytes. */
static void copy_file(const char *src, const char *dst, size_t limit)
{
    size_t len;
    unsigned char *data = slurp(src, &len);
    spit(dst, data, len < limit ? len : limit);
    free(data);
}

/* tests/data/<name>, found from this file's own path unless HL_TEST_DATA
 * names the data folder. */
static void data_path(char *buf, size_t size, const char *name)
{
    const char *dir = getenv("HL_TEST_DATA");
    if (dir) {
        snprintf(buf, size, "%s/%s", dir, name);
        return;
    }
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    snprintf(buf, size, "%.*s../data/%s", slash ? (int)(slash - self + 1) : 0,
             self, name);
}

/* Everything the store logged so far. */
static void read_log(char *out, size_t size)
{
    fflush(g.log);
    long end = ftell(g.log);
    rewind(g.log);
    size_t n = fread(out, 1, size - 1, g.log);
    out[n] = 0;
    fseek(g.log, end, SEEK_SET);
}

static void forget_log(void)
{
    fflush(g.log);
    assert_int_equal(ftruncate(fileno(g.log), 0), 0);
    rewind(g.log);
}

static void assert_err_has(const char *want)
{
    if (!strstr(g.err, want))
        fail_msg("error text '%s' does not contain '%s'", g.err, want);
}

/* ---- opening ------------------------------------------------------------ */

static void test_open_creates_folders_wal_schema(void **state)
{
    (void)state;
    struct stat st;
    char top[600];
    snprintf(top, sizeof top, "%s/var", g.dir);
    snprintf(g.path, sizeof g.path, "%s/var/lib/hookline/queue.db", g.dir);
    assert_int_equal(stat(top, &st), -1);

    open_store();
    assert_int_equal(stat(g.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    char lib[600];
    snprintf(lib, sizeof lib, "%s/var/lib/hookline", g.dir);
    assert_int_equal(stat(lib, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    sqlite3 *db = ro_open(g.path);
    char mode[32];
    q_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(q_int(db, "PRAGMA user_version"), HL_STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "PRAGMA auto_vacuum"), 2); /* incremental */
    /* Marked as hookline's, so another program's file is never taken. */
    assert_int_equal(q_int(db, "PRAGMA application_id"), 0x484c4e31);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
                               "type = 'table' AND name = 'events'"),
                     1);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 0);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(hl_queue_backlog(g.q), 0);
    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    assert_int_equal(stats.commits, 0);
    assert_int_equal(stats.events, 0);

    char log[4096];
    read_log(log, sizeof log);
    assert_non_null(strstr(log, "schema migrated"));
    finish();
}

/* ---- appending ---------------------------------------------------------- */

/* Body i: a few KB of xorshift bytes with NULs and invalid UTF-8 in it. */
static size_t make_body(unsigned char *buf, size_t i)
{
    size_t len = i * 37 % 3000;
    uint32_t x = 2463534242u + (uint32_t)i;
    for (size_t k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[k] = (unsigned char)x;
    }
    if (len >= 8) {
        memcpy(buf, "\0\xff\xfe\xc3\x28\0\x80\0", 8); /* NUL, not UTF-8 */
        buf[len - 1] = 0;
    }
    return len;
}

static void test_append_500_group_commit(void **state)
{
    (void)state;
    enum { N = 500 };
    open_store();
    static unsigned char body[3000];
    for (size_t i = 0; i < N; i++) {
        char tenant[16], source[16], key[32];
        snprintf(tenant, sizeof tenant, "t%zu", i % 3);
        snprintf(source, sizeof source, "src-%zu", i % 4);
        snprintf(key, sizeof key, "dlv-%zu", i);
        size_t len = make_body(body, i);
        ev_slot *s = ev_new(tenant, source, i % 3 ? NULL : key, body, len);
        if (i % 7 == 0)
            s->ev.content_type = NULL;
    }
    /* All of them from the loop thread before it gets to run once. */
    for (size_t i = 0; i < N; i++)
        append(&g.slots[i]);
    wait_calls(N);

    for (size_t i = 0; i < N; i++) {
        const ev_slot *s = &g.slots[i];
        assert_int_equal(s->calls, 1);
        assert_stored_ok(s);
        assert_int_equal(s->order, (int)i); /* callbacks in append order */
    }
    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    assert_int_equal(stats.events, N);
    assert_int_equal(stats.failures, 0);
    assert_true(stats.commits >= 1);
    if (stats.commits >= N)
        fail_msg("%llu commits for %d events: nothing was grouped",
                 (unsigned long long)stats.commits, N);
    assert_int_equal(hl_queue_backlog(g.q), N);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), N);
    for (size_t i = 0; i < N; i++)
        assert_row(db, &g.slots[i].ev);
    /* Stored in the order appended. */
    sqlite3_stmt *st = prep(db, "SELECT id FROM events ORDER BY seq");
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal(sqlite3_column_text(st, 0), g.slots[i].ev.id);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_append_null_content_type_and_empty_body(void **state)
{
    (void)state;
    open_store();
    ev_slot *a = ev_text("github", NULL, "");
    a->ev.content_type = NULL;
    a->ev.body = NULL; /* no body at all */
    ev_slot *b = ev_new("acme", "github", NULL, "\0", 1);
    append(a);
    append(b);
    wait_calls(2);
    assert_stored_ok(a);
    assert_stored_ok(b);

    sqlite3 *db = ro_open(g.path);
    assert_row(db, &a->ev); /* a zero-length blob, not NULL */
    assert_row(db, &b->ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* ---- idempotency -------------------------------------------------------- */

static void test_idem_same_batch(void **state)
{
    (void)state;
    open_store();
    /* Hold the write lock so the writer is stuck on a first event while the
     * two with one key queue up behind it and go into one commit. */
    sqlite3 *lock = db_open(g.path, SQLITE_OPEN_READWRITE);
    db_exec(lock, "BEGIN IMMEDIATE");
    ev_slot *first = ev_text("github", NULL, "{\"warm\":1}");
    append(first);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ev_slot *a = ev_text("github", "72d3162e-cc78", "{\"n\":1}");
    ev_slot *b = ev_text("github", "72d3162e-cc78", "{\"n\":2}");
    append(a);
    append(b);
    db_exec(lock, "ROLLBACK");
    assert_int_equal(sqlite3_close(lock), SQLITE_OK);
    wait_calls(3);

    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    /* b shared its commit with a: nothing else was queued with it. */
    assert_true(stats.last_batch >= 2);
    assert_int_equal(stats.failures, 0);
    assert_int_equal(stats.events, 2);
    assert_stored_ok(first);
    assert_stored_ok(a);
    assert_duplicate_of(b, a->ev.id);
    assert_int_equal(hl_queue_backlog(g.q), 2);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(rows_with_key(db, "github", "72d3162e-cc78"), 1);
    assert_row(db, &a->ev);
    assert_int_equal(rows_with_id(db, b->ev.id), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 2);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_idem_across_batches_and_reopen(void **state)
{
    (void)state;
    open_store();
    ev_slot *a = ev_text("stripe", "evt_1NG8Du2eZvKYlo2C", "{\"n\":1}");
    ev_slot *b = ev_text("stripe", "evt_1NG8Du2eZvKYlo2C", "{\"n\":2}");
    ev_slot *c = ev_text("stripe", "evt_1NG8Du2eZvKYlo2C", "{\"n\":3}");
    append_wait(a);
    append_wait(b);
    append_wait(c);
    assert_stored_ok(a);
    assert_duplicate_of(b, a->ev.id);
    assert_duplicate_of(c, a->ev.id);
    assert_int_equal(hl_queue_backlog(g.q), 1);
    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    assert_int_equal(stats.events, 1);

    /* The key is remembered on disk, not in memory. */
    close_store();
    open_store();
    ev_slot *d = ev_text("stripe", "evt_1NG8Du2eZvKYlo2C", "{\"n\":4}");
    append_wait(d);
    assert_duplicate_of(d, a->ev.id);
    assert_int_equal(hl_queue_backlog(g.q), 1);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(rows_with_key(db, "stripe", "evt_1NG8Du2eZvKYlo2C"), 1);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 1);
    assert_row(db, &a->ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_idem_key_is_per_source(void **state)
{
    (void)state;
    open_store();
    /* One batch and two batches: the same key under two sources. */
    ev_slot *a = ev_text("github", "shared-key", "{\"n\":1}");
    ev_slot *b = ev_text("gitlab", "shared-key", "{\"n\":2}");
    append(a);
    append(b);
    wait_calls(2);
    ev_slot *c = ev_text("bitbucket", "shared-key", "{\"n\":3}");
    append_wait(c);
    assert_stored_ok(a);
    assert_stored_ok(b);
    assert_stored_ok(c);
    assert_int_equal(hl_queue_backlog(g.q), 3);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(rows_with_key(db, "github", "shared-key"), 1);
    assert_int_equal(rows_with_key(db, "gitlab", "shared-key"), 1);
    assert_int_equal(rows_with_key(db, "bitbucket", "shared-key"), 1);
    assert_row(db, &a->ev);
    assert_row(db, &b->ev);
    assert_row(db, &c->ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_idem_null_key_never_dedups(void **state)
{
    (void)state;
    open_store();
    /* Same source, same body, no key: three events, in one batch or not. */
    ev_slot *a = ev_text("github", NULL, "{\"same\":true}");
    ev_slot *b = ev_text("github", NULL, "{\"same\":true}");
    append(a);
    append(b);
    wait_calls(2);
    ev_slot *c = ev_text("github", NULL, "{\"same\":true}");
    append_wait(c);
    assert_stored_ok(a);
    assert_stored_ok(b);
    assert_stored_ok(c);
    assert_int_equal(hl_queue_backlog(g.q), 3);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE source = "
                               "'github' AND idem_key IS NULL"),
                     3);
    assert_row(db, &a->ev);
    assert_row(db, &b->ev);
    assert_row(db, &c->ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* ---- backlog and reopening ---------------------------------------------- */

static void test_backlog_counts_and_survives_reopen(void **state)
{
    (void)state;
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 0);
    for (int i = 0; i < 5; i++) {
        append_wait(ev_text("github", NULL, "{}"));
        assert_int_equal(hl_queue_backlog(g.q), (uint64_t)i + 1);
    }
    close_store();

    /* By hand: one event could not be parsed, one was normalized. From
     * schema 3 on, a webhook leaves the backlog once normalized (its
     * deliveries, here none, join it), and an unparsed one waits for no
     * one either. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE events SET state = 'unparsed' WHERE id = '%s';"
             "UPDATE events SET state = 'normalized' WHERE id = '%s';",
             g.slots[1].ev.id, g.slots[3].ev.id);
    rw_exec(g.path, sql);

    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 3);
    append_wait(ev_text("github", NULL, "{}"));
    assert_stored_ok(&g.slots[5]);
    assert_int_equal(hl_queue_backlog(g.q), 4);
    close_store();
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 4);
    finish();
}

/* A normalization outcome for slot e: one canonical event, or unparsed. */
static hl_settle *settle_of(const ev_slot *e, int64_t seq, int parsed)
{
    hl_settle *st = calloc(1, sizeof *st);
    assert_non_null(st);
    snprintf(st->event_id, sizeof st->event_id, "%s", e->ev.id);
    st->seq = seq;
    snprintf(st->tenant, sizeof st->tenant, "%s", e->ev.tenant);
    snprintf(st->source, sizeof st->source, "%s", e->ev.source);
    st->parsed = parsed;
    if (!parsed) {
        snprintf(st->reason, sizeof st->reason, "no list at /alerts");
        return st;
    }
    st->rows = calloc(1, sizeof *st->rows);
    assert_non_null(st->rows);
    st->n = 1;
    st->rows[0].id = strdup(e->ev.id);
    st->rows[0].type = strdup("message");
    st->rows[0].severity = strdup("info");
    st->rows[0].time = strdup("2026-11-28T03:00:00.000Z");
    st->rows[0].raw_ptr = strdup("");
    st->rows[0].body = strdup("{\"specversion\":\"1.0\"}");
    return st;
}

/* Read, settle, commit, reopen, retry: the normalizer's side of the queue. */
static void test_normalize_cycle(void **state)
{
    (void)state;
    open_store();
    for (int i = 0; i < 3; i++)
        append_wait(ev_text("github", NULL, i == 2 ? "{\"bad\":1}" : "{}"));
    hl_stored_batch b;
    assert_int_equal(hl_queue_read_received(g.q, -1, 10, &b), 0);
    assert_int_equal(b.n, 3);
    int64_t seq[3];
    for (size_t i = 0; i < 3; i++) {
        seq[i] = b.v[i].seq;
        assert_string_equal(b.v[i].ev.id, g.slots[i].ev.id);
        assert_int_equal(b.v[i].ev.body_len, g.slots[i].ev.body_len);
        assert_memory_equal(b.v[i].ev.body, g.slots[i].ev.body,
                            b.v[i].ev.body_len);
        assert_string_equal(b.v[i].ev.source, "github");
        if (i)
            assert_true(seq[i] > seq[i - 1]);
    }
    hl_stored_batch_free(&b);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            hl_queue_settle_take(g.q, settle_of(&g.slots[i], seq[i], i < 2)),
            0);
    close_store(); /* the writer commits what is queued before it stops */

    sqlite3 *db = ro_open(g.path);
    char sql[256], text[128];
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof sql, "SELECT state FROM events WHERE id = '%s'",
                 g.slots[i].ev.id);
        q_text(db, sql, text, sizeof text);
        assert_string_equal(text, i < 2 ? "normalized" : "unparsed");
    }
    snprintf(sql, sizeof sql,
             "SELECT state_reason FROM events WHERE id = '%s'",
             g.slots[2].ev.id);
    q_text(db, sql, text, sizeof text);
    assert_string_equal(text, "no list at /alerts");
    assert_int_equal(q_int(db, "SELECT count(*) FROM canonical WHERE "
                               "raw_ptr = '' AND type = 'message'"),
                     2);
    assert_int_equal(q_int(db, "SELECT seq FROM normalize_cursor"), seq[2]);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* Reopened: nothing is waiting. The unparsed one no longer counts, nor
     * do the normalized ones: they made no deliveries. */
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 0);
    assert_int_equal(hl_queue_read_received(g.q, -1, 10, &b), 0);
    assert_int_equal(b.n, 0);
    hl_stored_batch_free(&b);

    /* After a mapping is fixed: the unparsed one is back in line. */
    assert_int_equal(hl_queue_retry_unparsed(g.q), 0);
    close_store();
    db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT seq FROM normalize_cursor"), seq[2] - 1);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE state = "
                               "'unparsed'"),
                     0);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 1);
    assert_int_equal(hl_queue_read_received(g.q, -1, 10, &b), 0);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.v[0].ev.id, g.slots[2].ev.id);
    hl_stored_batch_free(&b);
    finish();
}

static void test_reopen_existing_no_migration(void **state)
{
    (void)state;
    open_store();
    static unsigned char body[3000];
    for (size_t i = 0; i < 3; i++)
        append(ev_new("acme", "github", NULL, body, make_body(body, 100 + i)));
    wait_calls(3);
    close_store();
    char log[8192];
    read_log(log, sizeof log);
    assert_non_null(strstr(log, "schema migrated"));

    forget_log();
    open_store();
    read_log(log, sizeof log);
    if (strstr(log, "schema migrated"))
        fail_msg("reopening migrated again: %s", log);
    ev_slot *d = ev_text("github", NULL, "{\"after\":\"reopen\"}");
    append_wait(d);
    assert_stored_ok(d);
    assert_int_equal(hl_queue_backlog(g.q), 4);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "PRAGMA user_version"), HL_STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 4);
    for (size_t i = 0; i < 4; i++)
        assert_row(db, &g.slots[i].ev);
    /* The new event comes after the old ones. */
    char last[64];
    q_text(db, "SELECT id FROM events ORDER BY seq DESC LIMIT 1", last,
           sizeof last);
    assert_string_equal(last, d->ev.id);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_durability_normal_persists(void **state)
{
    (void)state;
    /* synchronous is per connection: another connection cannot read the
     * writer's NORMAL. What the user sees is that it opens and keeps data. */
    open_with(HL_DURABILITY_NORMAL, 0);
    for (int i = 0; i < 10; i++)
        append(ev_text("github", NULL, "{\"durability\":\"normal\"}"));
    wait_calls(10);
    for (int i = 0; i < 10; i++)
        assert_stored_ok(&g.slots[i]);
    close_store();

    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 10);
    sqlite3 *db = ro_open(g.path);
    char mode[32];
    q_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    for (int i = 0; i < 10; i++)
        assert_row(db, &g.slots[i].ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* ---- files it must refuse ----------------------------------------------- */

static void test_newer_schema_refused(void **state)
{
    (void)state;
    snprintf(g.path, sizeof g.path, "%s/future.db", g.dir);
    rw_exec(g.path, "CREATE TABLE things_to_come (x);"
                    "PRAGMA user_version = 99;");
    int rc = open_fails(g.path);
    assert_int_equal(rc, HL_ESTORE);
    assert_err_has(g.path);
    assert_err_has("version 99");
    char known[32];
    snprintf(known, sizeof known, "(%d)", HL_STORE_SCHEMA_VERSION);
    assert_err_has(known);
    assert_err_has("run a newer hookline");

    /* Nothing was migrated into it. */
    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "PRAGMA user_version"), 99);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
                               "name = 'events'"),
                     0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
                               "name = 'things_to_come'"),
                     1);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* A SQLite file of another application is refused and left as it was. */
static void test_foreign_database_refused_untouched(void **state)
{
    (void)state;
    snprintf(g.path, sizeof g.path, "%s/other.db", g.dir);
    rw_exec(g.path, "CREATE TABLE invoices (x);");
    size_t before_len, after_len;
    unsigned char *before = slurp(g.path, &before_len);
    assert_int_equal(open_fails(g.path), HL_ESTORE);
    assert_err_has(g.path);
    assert_err_has("already holds tables that are not hookline's");
    unsigned char *after = slurp(g.path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);

    snprintf(g.path, sizeof g.path, "%s/tagged.db", g.dir);
    rw_exec(g.path, "PRAGMA application_id = 42;");
    assert_int_equal(open_fails(g.path), HL_ESTORE);
    assert_err_has("belongs to another application (application_id 42)");
    finish();
}

/* Refusing a newer database must leave it as the newer hookline wrote it;
 * the store switches its journal mode to WAL before it reads the version. */
static void test_newer_schema_file_left_untouched(void **state)
{
    (void)state;
    snprintf(g.path, sizeof g.path, "%s/future.db", g.dir);
    rw_exec(g.path, "CREATE TABLE things_to_come (x);"
                    "PRAGMA user_version = 99;");
    size_t before_len, after_len;
    unsigned char *before = slurp(g.path, &before_len);
    assert_int_equal(open_fails(g.path), HL_ESTORE);
    unsigned char *after = slurp(g.path, &after_len);
    /* Bytes 18 and 19 of the header: the journal mode (1 rollback, 2 WAL). */
    int mode_before = before[18] * 10 + before[19];
    int mode_after = after[18] * 10 + after[19];
    int same = after_len == before_len && !memcmp(after, before, before_len);
    free(before);
    free(after);
    assert_int_equal(mode_after, mode_before);
    assert_true(same);
    finish();
}

/* A damaged file is refused, named, left as it was, and the user is told
 * to move it aside. */
static void assert_refused_untouched(const char *path)
{
    size_t before_len, after_len;
    unsigned char *before = slurp(path, &before_len);
    int rc = open_fails(path);
    assert_int_equal(rc, HL_ESTORE);
    assert_err_has(path);
    assert_err_has("move it aside");
    unsigned char *after = slurp(path, &after_len);
    int same = after_len == before_len && !memcmp(after, before, before_len);
    free(before);
    free(after);
    if (!same)
        fail_msg("%s was modified by the refused open", path);
}

static void test_corrupt_file_refused_untouched(void **state)
{
    (void)state;
    char src[1024];
    data_path(src, sizeof src, "store/corrupt.db");
    snprintf(g.path, sizeof g.path, "%s/corrupt.db", g.dir);
    copy_file(src, g.path, SIZE_MAX);
    struct stat st;
    assert_int_equal(stat(g.path, &st), 0);
    assert_int_equal(st.st_size, 8192);
    assert_refused_untouched(g.path);
    finish();
}

/* A real database cut short, as by a copy that stopped half way. */
static void test_truncated_db_refused(void **state)
{
    (void)state;
    open_store();
    static unsigned char body[3000];
    for (size_t i = 0; i < 40; i++)
        append(ev_new("acme", "github", NULL, body, make_body(body, 60 + i)));
    wait_calls(40);
    close_store();
    struct stat st;
    assert_int_equal(stat(g.path, &st), 0);
    assert_true(st.st_size > 3 * 4096);

    const size_t cuts[] = {(size_t)st.st_size / 2, 4096 + 1000, 3000};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char cut[600];
        snprintf(cut, sizeof cut, "%s/cut-%zu.db", g.dir, cuts[i]);
        copy_file(g.path, cut, cuts[i]);
        assert_refused_untouched(cut);
    }
    finish();
}

/*
 * tests/data/store/v1-golden.db: schema version 1 as hookline 0.1 writes it,
 * made once by `build/test/unit/test_store --make-golden PATH` and checked
 * in. Never remake it: a newer schema must open it through its migrations.
 */
#define GOLDEN_MS INT64_C(1717243200000) /* 2024-06-01T12:00:00Z */
static const unsigned char golden_bin[] = {0x00, 0xff, 0xfe, 'h', 'l',
                                           0x00, 0x80, 0xc3, 0x28, 0x00};
static const hl_inbound golden[3] = {
    {.id = "01HZ9TQGG0GJ5S2Z8W6QH3M1XA",
     .tenant = "acme",
     .source = "github",
     .content_type = "application/json",
     .correlation_id = "corr-golden-1",
     .idem_key = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
     .headers_json = "{\"x-github-event\":\"push\",\"x-github-delivery\":"
                     "\"72d3162e-cc78-11e3-81ab-4c9367dc0958\"}",
     .body = "{\"ref\":\"refs/heads/main\",\"n\":1}",
     .body_len = 31,
     .received_ms = GOLDEN_MS},
    {.id = "01HZ9TQGG1B7R3K9D2F5T8V0WE",
     .tenant = "acme",
     .source = "stripe",
     .content_type = "application/octet-stream",
     .correlation_id = "corr-golden-2",
     .idem_key = NULL,
     .headers_json = "{\"content-type\":\"application/octet-stream\"}",
     .body = golden_bin,
     .body_len = sizeof golden_bin,
     .received_ms = GOLDEN_MS + 1},
    {.id = "01HZ9TQGG2N4P6Q8S0T2V4X6Z8",
     .tenant = "beta",
     .source = "github",
     .content_type = NULL,
     .correlation_id = "corr-golden-3",
     .idem_key = NULL,
     .headers_json = "{}",
     .body = "",
     .body_len = 0,
     .received_ms = GOLDEN_MS + 2},
};

static int golden_calls, golden_failed;

static void on_golden(void *ud, const hl_append_result *res)
{
    (void)ud;
    golden_calls++;
    if (res->status) {
        fprintf(stderr, "golden: %s: %s\n", hl_err_name(res->status),
                res->reason);
        golden_failed = 1;
    }
}

/* Write the golden file with this build's store; only for schema 1. */
static int make_golden(const char *path)
{
    if (HL_STORE_SCHEMA_VERSION != 1) {
        fprintf(stderr, "golden: this build writes schema %d; v1-golden.db "
                        "is made only once, by schema 1\n",
                HL_STORE_SCHEMA_VERSION);
        return 1;
    }
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "golden: %s exists; never remake it\n", path);
        return 1;
    }
    uv_loop_t loop;
    hl_queue *q;
    char err[512];
    hl_storage_cfg c = cfg_of(path, HL_DURABILITY_FULL, 0);
    if (uv_loop_init(&loop) ||
        hl_store_open(&loop, &c, &q, err, sizeof err)) {
        fprintf(stderr, "golden: %s\n", err);
        return 1;
    }
    for (int i = 0; i < 3; i++)
        if (hl_queue_append(q, &golden[i], on_golden, NULL))
            return 1;
    while (golden_calls < 3)
        uv_run(&loop, UV_RUN_ONCE);
    hl_queue_close(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) || golden_failed)
        return 1;
    printf("golden: wrote %s\n", path);
    return 0;
}

static void test_golden_v1_opens_and_appends(void **state)
{
    (void)state;
    char src[1024];
    data_path(src, sizeof src, "store/v1-golden.db");
    snprintf(g.path, sizeof g.path, "%s/v1.db", g.dir);
    copy_file(src, g.path, SIZE_MAX);

    forget_log();
    open_store();
    /* Forward migrations from version 1 ran, one step each. */
    char log[4096];
    read_log(log, sizeof log);
    assert_null(strstr(log, "from=0"));
    for (int v = 1; v < HL_STORE_SCHEMA_VERSION; v++) {
        char step[1200];
        snprintf(step, sizeof step, "schema migrated path=%s from=%d to=%d",
                 g.path, v, v + 1);
        if (!strstr(log, step))
            fail_msg("migration '%s' not in the log:\n%s", step, log);
    }
    assert_int_equal(hl_queue_backlog(g.q), 3);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "PRAGMA user_version"), HL_STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 3);
    for (int i = 0; i < 3; i++)
        assert_row(db, &golden[i]);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* A 4th event, and the golden idempotency key still holds. */
    ev_slot *d = ev_text("github", NULL, "{\"after\":\"golden\"}");
    ev_slot *dup = ev_text("github", golden[0].idem_key, "{\"again\":1}");
    append_wait(d);
    append_wait(dup);
    assert_stored_ok(d);
    assert_duplicate_of(dup, golden[0].id);
    assert_int_equal(hl_queue_backlog(g.q), 4);

    db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 4);
    for (int i = 0; i < 3; i++)
        assert_row(db, &golden[i]);
    assert_row(db, &d->ev);
    char ok[64];
    q_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    assert_string_equal(ok, "ok");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* ---- a full disk -------------------------------------------------------- */

static void test_disk_full_max_size(void **state)
{
    (void)state;
    enum { BODY = 300 * 1000, MAX = 1024 * 1024 };
    open_with(HL_DURABILITY_FULL, MAX);
    unsigned char *body = malloc(BODY);
    assert_non_null(body);
    ev_slot *failed = NULL;
    size_t ok = 0;
    for (int i = 0; i < 10 && !failed; i++) {
        for (size_t k = 0; k < BODY; k++)
            body[k] = (unsigned char)(k * 131 + (size_t)i * 7 + k / 977);
        ev_slot *s = ev_new("acme", "bulk", NULL, body, BODY);
        append_wait(s);
        if (s->res.status == 0)
            ok++;
        else
            failed = s;
    }
    free(body);
    if (!failed)
        fail_msg("%zu appends of %d bytes fitted in max_size %d", ok, BODY,
                 MAX);
    assert_true(ok >= 1);
    assert_int_equal(failed->res.status, HL_ESTORE);
    assert_false(failed->res.duplicate);
    if (!strstr(failed->reason, "full"))
        fail_msg("reason '%s' does not say the disk is full", failed->reason);
    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    assert_true(stats.failures >= 1);
    assert_int_equal(stats.events, ok);
    assert_int_equal(hl_queue_backlog(g.q), ok);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), ok);
    for (size_t i = 0; i < ok; i++)
        assert_row(db, &g.slots[i].ev);
    assert_int_equal(rows_with_id(db, failed->ev.id), 0);
    char check[64];
    q_text(db, "PRAGMA integrity_check", check, sizeof check);
    assert_string_equal(check, "ok");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* A small one afterwards: it may fit or not, but it is answered. */
    ev_slot *small = ev_text("bulk", NULL, "{\"small\":true}");
    append_wait(small);
    if (small->res.status == 0) {
        ok++;
        db = ro_open(g.path);
        assert_row(db, &small->ev);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
    } else {
        assert_int_equal(small->res.status, HL_ESTORE);
        assert_true(small->reason[0] != 0);
    }
    finish();

    struct stat st;
    assert_int_equal(stat(g.path, &st), 0);
    assert_true(st.st_size <= MAX);
    assert_int_equal(event_rows(g.path), ok);
}

/* ---- paths it cannot write ---------------------------------------------- */

static void test_open_under_regular_file(void **state)
{
    (void)state;
    char file[600], path[700];
    snprintf(file, sizeof file, "%s/plain-file", g.dir);
    spit(file, "not a folder\n", 13);

    snprintf(path, sizeof path, "%s/hookline.db", file);
    assert_true(open_fails(path) < 0);
    assert_err_has(path);

    /* A folder to create below the file. */
    snprintf(path, sizeof path, "%s/sub/hookline.db", file);
    int rc = open_fails(path);
    assert_int_equal(rc, -ENOTDIR);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/sub", file);
    assert_err_has(sub);
    assert_err_has(strerror(ENOTDIR));

    /* /proc takes no new folders, not even from root. */
    snprintf(path, sizeof path, "/proc/hl-test-%ld/hookline.db",
             (long)getpid());
    assert_true(open_fails(path) < 0);
    snprintf(sub, sizeof sub, "/proc/hl-test-%ld", (long)getpid());
    assert_err_has(sub);
    finish();
}

/* Root writes through permission bits: act as nobody for the open. */
static void become_nobody(void)
{
    if (geteuid() != 0)
        return;
    assert_int_equal(seteuid(65534), 0);
    g.euid_changed = 1;
}

static void become_self(void)
{
    if (!g.euid_changed)
        return;
    assert_int_equal(seteuid(0), 0);
    g.euid_changed = 0;
}

static void test_open_read_only_folder(void **state)
{
    (void)state;
    char ro[600];
    snprintf(ro, sizeof ro, "%s/ro", g.dir);
    assert_int_equal(mkdir(ro, 0555), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(g.dir, 0755), 0);
    snprintf(g.path, sizeof g.path, "%s/hookline.db", ro);
    become_nobody();
    int rc = open_fails(g.path);
    become_self();
    assert_true(rc < 0);
    assert_err_has(g.path);
    finish();
}

static void test_open_read_only_file(void **state)
{
    (void)state;
    open_store();
    append_wait(ev_text("github", NULL, "{}"));
    assert_stored_ok(&g.slots[0]);
    close_store();
    char folder[600];
    snprintf(folder, sizeof folder, "%s/data", g.dir);
    assert_int_equal(chmod(g.dir, 0777), 0);
    assert_int_equal(chmod(folder, 0777), 0);
    assert_int_equal(chmod(g.path, 0444), 0);

    become_nobody();
    hl_storage_cfg c = cfg_of(g.path, HL_DURABILITY_FULL, 0);
    int rc = hl_store_open(&g.loop, &c, &g.q, g.err, sizeof g.err);
    if (rc == 0) {
        /* It opened: then the first append is where it shows. */
        ev_slot *s = ev_text("github", NULL, "{}");
        append_wait(s);
        become_self();
        fail_msg("a read-only database opened; the first append then got "
                 "%s: %s",
                 hl_err_name(s->res.status), s->reason);
    }
    become_self();
    uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_true(rc < 0);
    assert_null(g.q);
    assert_err_has(g.path);
    if (!strstr(g.err, "readonly") && !strstr(g.err, "read-only"))
        fail_msg("error text '%s' does not say the file is read-only", g.err);
    /* A healthy database the process may not write is not "damaged":
     * moving it aside to start afresh would lose its events. */
    assert_int_equal(rc, HL_ESTORE);
    if (strstr(g.err, "move it aside"))
        fail_msg("a read-only database is called damaged: '%s'", g.err);
    finish();
}

/* "unable to open database file" alone does not tell a permission problem
 * from a file in the way: the message carries the system's reason. */
static void test_open_error_names_the_cause(void **state)
{
    (void)state;
    char file[600], path[700];
    snprintf(file, sizeof file, "%s/plain-file", g.dir);
    spit(file, "not a folder\n", 13);
    snprintf(path, sizeof path, "%s/hookline.db", file);
    open_fails(path);
    assert_err_has(strerror(ENOTDIR));

    char ro[600];
    snprintf(ro, sizeof ro, "%s/ro", g.dir);
    assert_int_equal(mkdir(ro, 0555), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(g.dir, 0755), 0);
    snprintf(path, sizeof path, "%s/hookline.db", ro);
    become_nobody();
    open_fails(path);
    become_self();
    assert_err_has(strerror(EACCES));
    finish();
}

/* ---- another process holds the lock ------------------------------------ */

static void test_locked_database_answers_busy(void **state)
{
    (void)state;
    open_store();
    /* Another writer (a backup, an admin's sqlite3 shell) holds the lock
     * past the store's busy timeout. */
    sqlite3 *other = db_open(g.path, SQLITE_OPEN_READWRITE);
    db_exec(other, "BEGIN IMMEDIATE");
    ev_slot *a = ev_text("github", "busy-key", "{\"n\":1}");
    append_wait(a);
    assert_int_equal(a->res.status, HL_EBUSY);
    assert_false(a->res.duplicate);
    if (!strstr(a->reason, "locked"))
        fail_msg("reason '%s' does not say the database is locked",
                 a->reason);
    assert_int_equal(hl_queue_backlog(g.q), 0);
    db_exec(other, "ROLLBACK");
    assert_int_equal(sqlite3_close(other), SQLITE_OK);

    /* Once it lets go, the same event goes in, and is not a duplicate. */
    ev_slot *b = ev_text("github", "busy-key", "{\"n\":1}");
    append_wait(b);
    assert_stored_ok(b);
    assert_int_equal(hl_queue_backlog(g.q), 1);
    sqlite3 *db = ro_open(g.path);
    assert_int_equal(rows_with_id(db, a->ev.id), 0);
    assert_row(db, &b->ev);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    hl_store_stats stats;
    hl_store_stats_get(g.q, &stats);
    assert_int_equal(stats.failures, 1);
    finish();
}

/* ---- closing ------------------------------------------------------------ */

static void append_during_close(ev_slot *s)
{
    (void)s;
    ev_slot *late = ev_text("github", NULL, "{\"late\":true}");
    g.appended_while_closing = hl_queue_append(g.q, &late->ev, on_appended,
                                               late);
}

static void test_close_drains_and_refuses_new_appends(void **state)
{
    (void)state;
    enum { N = 50 };
    open_store();
    for (int i = 0; i < N; i++)
        ev_text("github", NULL, "{\"queued\":\"at close\"}");
    g.slots[0].hook = append_during_close;
    for (int i = 0; i < N; i++)
        append(&g.slots[i]);
    /* Not one has had its callback: the loop has not run. */
    assert_int_equal(g.calls, 0);

    hl_queue_close(g.q);
    g.q = NULL;
    /* close finished every queued append, and ran their callbacks. */
    assert_int_equal(g.calls, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(g.slots[i].calls, 1);
        assert_stored_ok(&g.slots[i]);
    }
    /* The append made from a callback while closing was refused, and its
     * callback never runs. */
    assert_int_equal(g.appended_while_closing, HL_ESHUTDOWN);
    assert_int_equal(g.nslots, N + 1);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.slots[N].calls, 0);
    assert_int_equal(g.calls, N);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), N);
    for (int i = 0; i < N; i++)
        assert_row(db, &g.slots[i].ev);
    assert_int_equal(rows_with_id(db, g.slots[N].ev.id), 0);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

/* ---- deliveries (schema 3) ---------------------------------------------- */

/* Far enough ahead that whatever a settle created is due. */
#define DUE_SLACK_MS 1000

/* Let every job queued so far commit: a kv write waits for its commit, and
 * the writer takes background jobs in order. */
static void sync_writer(void)
{
    assert_int_equal(hl_queue_kv_put(g.q, "test", "sync", NULL), 0);
}

static int64_t seq_of(const ev_slot *s)
{
    sqlite3 *db = ro_open(g.path);
    int64_t seq = count_where(db, "SELECT seq FROM events WHERE id = ?1",
                              s->ev.id, NULL);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_true(seq > 0);
    return seq;
}

/* What a settle made, for the test to look up afterwards. */
typedef struct {
    char canon[4][HL_ID_LEN + 1];
    char body[4][128];
    size_t ncanon;
    char dlv[8][HL_ID_LEN + 1];
    char conn[8][32];
    size_t ndlv;
} made_t;

/*
 * A parsed outcome for webhook e: one canonical event per entry of rows,
 * written "route:connector,connector" ("-" for no route, nothing after the
 * colon for no deliveries). Ids are fresh. With raw set, the event's
 * data.raw is at raw (a printf format taking the row's index) in the
 * webhook's body.
 */
static hl_settle *settle_rows(const ev_slot *e, const char *const *rows,
                              size_t n, const char *raw, made_t *m)
{
    assert_true(n <= 4);
    hl_settle *st = calloc(1, sizeof *st);
    assert_non_null(st);
    snprintf(st->event_id, sizeof st->event_id, "%s", e->ev.id);
    st->seq = seq_of(e);
    snprintf(st->tenant, sizeof st->tenant, "%s", e->ev.tenant);
    snprintf(st->source, sizeof st->source, "%s", e->ev.source);
    st->parsed = 1;
    st->rows = calloc(n ? n : 1, sizeof *st->rows);
    assert_non_null(st->rows);
    st->n = n;
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < n; i++) {
        hl_canonical_row *r = &st->rows[i];
        assert_int_equal(hl_id_new(hl_now_ms(), m->canon[i]), 0);
        snprintf(m->body[i], sizeof m->body[i],
                 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"type\":\"alert\"}",
                 m->canon[i]);
        r->id = strdup(m->canon[i]);
        r->type = strdup("alert");
        r->severity = strdup("critical");
        r->dedupkey = strdup("disk-full");
        r->time = strdup("2024-06-01T12:00:00.000Z");
        r->body = strdup(m->body[i]);
        if (raw) {
            char ptr[64];
            snprintf(ptr, sizeof ptr, raw, i);
            r->raw_ptr = strdup(ptr);
        }
        const char *colon = strchr(rows[i], ':');
        assert_non_null(colon);
        if (strncmp(rows[i], "-:", 2))
            r->route = strndup(rows[i], (size_t)(colon - rows[i]));
        r->connectors = calloc(4, sizeof *r->connectors);
        r->delivery_ids = calloc(4, sizeof *r->delivery_ids);
        assert_non_null(r->connectors);
        assert_non_null(r->delivery_ids);
        for (const char *p = colon + 1; *p;) {
            size_t len = strcspn(p, ",");
            assert_true(r->n_deliveries < 4 && m->ndlv < 8);
            char *conn = strndup(p, len);
            assert_int_equal(hl_id_new(hl_now_ms(),
                                       r->delivery_ids[r->n_deliveries]),
                             0);
            snprintf(m->dlv[m->ndlv], sizeof m->dlv[0], "%s",
                     r->delivery_ids[r->n_deliveries]);
            snprintf(m->conn[m->ndlv], sizeof m->conn[0], "%s", conn);
            r->connectors[r->n_deliveries++] = conn;
            m->ndlv++;
            p += len + (p[len] == ',');
        }
        m->ncanon++;
    }
    return st;
}

/* Settle e with rows and wait for the commit. */
static void settle_wait(const ev_slot *e, const char *const *rows, size_t n,
                        const char *raw, made_t *m)
{
    assert_int_equal(hl_queue_settle_take(g.q, settle_rows(e, rows, n, raw, m)),
                     0);
    sync_writer();
}

/* A webhook appended and stored. */
static ev_slot *webhook(const char *source, const char *body)
{
    ev_slot *s = ev_text(source, NULL, body);
    append_wait(s);
    assert_stored_ok(s);
    return s;
}

/* Leases arrive on the writer's thread. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hl_lease *got;
    int calls;
} lw = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};

static void on_lease(void *ud, hl_lease *l)
{
    (void)ud;
    pthread_mutex_lock(&lw.mu);
    hl_lease_free(lw.got); /* a second answer to one request: not kept */
    lw.got = l;
    lw.calls++;
    pthread_cond_broadcast(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
}

/* Lease and wait for the answer (freed by the teardown). */
static hl_lease *lease(const char *connector, size_t max, int64_t now_ms,
                       uint64_t lease_ms)
{
    pthread_mutex_lock(&lw.mu);
    int before = lw.calls;
    pthread_mutex_unlock(&lw.mu);
    int rc = hl_queue_lease(g.q, connector, max, now_ms, lease_ms, on_lease,
                            NULL);
    if (rc)
        fail_msg("lease %s: %s", connector, hl_err_name(rc));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&lw.mu);
    while (lw.calls == before &&
           pthread_cond_timedwait(&lw.cv, &lw.mu, &until) == 0)
        ;
    hl_lease *l = lw.calls > before ? lw.got : NULL;
    lw.got = NULL;
    pthread_mutex_unlock(&lw.mu);
    if (!l)
        fail_msg("no lease answer for %s after %d ms", connector, WAIT_MS);
    assert_true(g.nleases < sizeof g.leases / sizeof *g.leases);
    g.leases[g.nleases++] = l;
    if (l->status)
        fail_msg("lease %s: status %s", connector, hl_err_name(l->status));
    return l;
}

static const hl_lease_item *item_with_id(const hl_lease *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].id, id))
            return &l->v[i];
    fail_msg("delivery %s is not in the lease of %zu", id, l->n);
    return NULL;
}

/* One row of a delivery's end; strings are copied. */
static hl_attempt_row attempt_row(const char *id, uint32_t attempt, int state,
                                  int64_t next_ms, int status,
                                  const char *error_class, const char *reason,
                                  const char *response, int counted)
{
    hl_attempt_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    r.attempt = attempt;
    r.state = state;
    r.next_ms = next_ms;
    r.started_ms = INT64_C(1717243200000) + attempt;
    r.duration_ms = 12 + attempt;
    r.status = status;
    r.error_class = error_class;
    r.reason = reason ? strdup(reason) : NULL;
    r.response = response ? strdup(response) : NULL;
    r.counted = counted;
    return r;
}

/* Finish with these rows (copied into a malloc'd array) and wait. */
static void finish_wait(const hl_attempt_row *rows, size_t n)
{
    hl_attempt_row *v = malloc(n * sizeof *v);
    assert_non_null(v);
    memcpy(v, rows, n * sizeof *v);
    assert_int_equal(hl_queue_finish_take(g.q, v, n), 0);
    sync_writer();
}

static void finish_one(hl_attempt_row r)
{
    finish_wait(&r, 1);
}

/* A column of delivery id, as text ("(null)" for NULL). */
static void dlv_text(const char *id, const char *col, char *out, size_t size)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM deliveries WHERE id = '%s'", col,
             id);
    sqlite3 *db = ro_open(g.path);
    q_text(db, sql, out, size);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t dlv_int(const char *id, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM deliveries WHERE id = '%s'", col,
             id);
    sqlite3 *db = ro_open(g.path);
    int64_t v = q_int(db, sql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
}

static void assert_dlv_state(const char *id, const char *want)
{
    char got[32];
    dlv_text(id, "state", got, sizeof got);
    if (strcmp(got, want))
        fail_msg("delivery %s is '%s', want '%s'", id, got, want);
}

static int64_t sql_int(const char *sql)
{
    sqlite3 *db = ro_open(g.path);
    int64_t v = q_int(db, sql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
}

static int64_t attempt_rows(const char *id)
{
    sqlite3 *db = ro_open(g.path);
    int64_t n = count_where(db,
                            "SELECT count(*) FROM attempts WHERE "
                            "delivery_id = ?1",
                            id, NULL);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return n;
}

static _Atomic int dlv_hook_calls;

static void on_new_deliveries(void *ud)
{
    (void)ud;
    atomic_fetch_add(&dlv_hook_calls, 1);
}

static void test_settle_writes_events_and_deliveries(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{\"alerts\":[{\"a\":1},{\"a\":2}]}");
    assert_int_equal(hl_queue_backlog(g.q), 1);
    atomic_store(&dlv_hook_calls, 0);
    hl_queue_on_deliveries(g.q, on_new_deliveries, NULL);
    hl_store_stats before;
    hl_store_stats_get(g.q, &before);
    int64_t t0 = hl_now_ms();

    const char *rows[] = {"pages:pager,slack", "pages:pager", "-:"};
    made_t m;
    assert_int_equal(
        hl_queue_settle_take(g.q, settle_rows(w, rows, 3, "/alerts/%zu", &m)),
        0);
    /* The hook runs after the commit that created the deliveries; then
     * one more commit (sync_writer's) makes two in all: the canonical rows
     * cannot have gone in a commit of their own. */
    for (int ms = 0; !atomic_load(&dlv_hook_calls) && ms < WAIT_MS; ms++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&dlv_hook_calls), 1);
    sync_writer();
    int64_t t1 = hl_now_ms();
    hl_queue_on_deliveries(g.q, NULL, NULL);
    hl_store_stats after;
    hl_store_stats_get(g.q, &after);
    assert_int_equal(after.commits, before.commits + 2);
    assert_int_equal(atomic_load(&dlv_hook_calls), 1);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(count_where(db,
                                 "SELECT count(*) FROM canonical WHERE "
                                 "event_id = ?1",
                                 w->ev.id, NULL),
                     3);
    sqlite3_stmt *st = prep(
        db, "SELECT route, raw_ptr, body, tenant, source FROM canonical "
            "WHERE id = ?1");
    const char *routes[] = {"pages", "pages", NULL};
    for (size_t i = 0; i < 3; i++) {
        sqlite3_bind_text(st, 1, m.canon[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        char ptr[32];
        snprintf(ptr, sizeof ptr, "/alerts/%zu", i);
        assert_col_text(st, 0, routes[i], m.canon[i]);
        assert_col_text(st, 1, ptr, m.canon[i]);
        assert_col_text(st, 2, m.body[i], m.canon[i]);
        assert_col_text(st, 3, "acme", m.canon[i]);
        assert_col_text(st, 4, "alertmanager", m.canon[i]);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);

    /* One 'queued' delivery per connector of each event. */
    assert_int_equal(m.ndlv, 3);
    assert_int_equal(q_int(db, "SELECT count(*) FROM deliveries"), 3);
    st = prep(db, "SELECT canonical_id, event_id, tenant, connector, route, "
                  "state, attempts, created_at, next_at, last_status "
                  "FROM deliveries WHERE id = ?1");
    const char *canon_of[] = {m.canon[0], m.canon[0], m.canon[1]};
    const char *conn_of[] = {"pager", "slack", "pager"};
    for (size_t i = 0; i < 3; i++) {
        sqlite3_bind_text(st, 1, m.dlv[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_col_text(st, 0, canon_of[i], m.dlv[i]);
        assert_col_text(st, 1, w->ev.id, m.dlv[i]);
        assert_col_text(st, 2, "acme", m.dlv[i]);
        assert_col_text(st, 3, conn_of[i], m.dlv[i]);
        assert_col_text(st, 4, "pages", m.dlv[i]);
        assert_col_text(st, 5, "queued", m.dlv[i]);
        assert_int_equal(sqlite3_column_int(st, 6), 0);
        int64_t created = sqlite3_column_int64(st, 7);
        assert_true(created >= t0 && created <= t1);
        assert_int_equal(sqlite3_column_int64(st, 8), created); /* due now */
        assert_int_equal(sqlite3_column_type(st, 9), SQLITE_NULL);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    char text[64];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT state FROM events WHERE id = '%s'",
             w->ev.id);
    q_text(db, sql, text, sizeof text);
    assert_string_equal(text, "normalized");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    /* The webhook left the backlog; its three deliveries joined it. */
    assert_int_equal(hl_queue_backlog(g.q), 3);
    finish();
}

static void test_settle_twice_writes_nothing(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{\"alerts\":[{}]}");
    const char *first[] = {"pages:pager"};
    made_t a;
    settle_wait(w, first, 1, NULL, &a);
    assert_int_equal(hl_queue_backlog(g.q), 1);

    /* Normalized again (a restart before the cursor was committed): the
     * second outcome, with new ids, changes nothing. */
    const char *second[] = {"pages:pager,slack", "other:email"};
    made_t b;
    settle_wait(w, second, 2, NULL, &b);
    hl_settle *unparsed = calloc(1, sizeof *unparsed);
    assert_non_null(unparsed);
    snprintf(unparsed->event_id, sizeof unparsed->event_id, "%s", w->ev.id);
    unparsed->seq = seq_of(w);
    snprintf(unparsed->reason, sizeof unparsed->reason, "late");
    assert_int_equal(hl_queue_settle_take(g.q, unparsed), 0);
    sync_writer();

    assert_int_equal(hl_queue_backlog(g.q), 1);
    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "SELECT count(*) FROM canonical"), 1);
    assert_int_equal(q_int(db, "SELECT count(*) FROM deliveries"), 1);
    assert_int_equal(count_where(db,
                                 "SELECT count(*) FROM deliveries WHERE id = "
                                 "?1 AND canonical_id = ?2",
                                 a.dlv[0], a.canon[0]),
                     1);
    assert_int_equal(count_where(db,
                                 "SELECT count(*) FROM canonical WHERE id = "
                                 "?1 OR id = ?2",
                                 b.canon[0], b.canon[1]),
                     0);
    char sql[256], text[64];
    snprintf(sql, sizeof sql,
             "SELECT state || '/' || coalesce(state_reason, '-') FROM events "
             "WHERE id = '%s'",
             w->ev.id);
    q_text(db, sql, text, sizeof text);
    assert_string_equal(text, "normalized/-");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    finish();
}

static void test_lease_returns_due_deliveries_with_their_event(void **state)
{
    (void)state;
    open_store();
    const char *body = "{\"alerts\":[{\"labels\":{\"alertname\":\"Disk\"}}]}";
    ev_slot *w = webhook("alertmanager", body);
    ev_slot *w2 = webhook("github", "{\"ref\":\"main\"}");
    const char *rows[] = {"pages:pager,slack"};
    const char *rows2[] = {"ci:pager"};
    made_t m, m2;
    int64_t t0 = hl_now_ms();
    settle_wait(w, rows, 1, "/alerts/%zu", &m);
    settle_wait(w2, rows2, 1, NULL, &m2);
    int64_t t1 = hl_now_ms();
    int64_t now = t1 + DUE_SLACK_MS;

    hl_lease *l = lease("pager", 10, now, 30000);
    assert_int_equal(l->n, 2);
    const hl_lease_item *it = item_with_id(l, m.dlv[0]);
    assert_string_equal(it->event_id, m.canon[0]);
    assert_string_equal(it->tenant, "acme");
    assert_int_equal(it->attempt, 1);
    assert_true(it->created_ms >= t0 && it->created_ms <= t1);
    assert_string_equal(it->event, m.body[0]);
    /* data.raw stays in the webhook's body, which comes along. */
    assert_string_equal(it->raw_ptr, "/alerts/0");
    assert_int_equal(it->raw_len, strlen(body));
    assert_memory_equal(it->raw_body, body, it->raw_len);
    assert_string_equal(it->correlation_id, w->corr);

    const hl_lease_item *it2 = item_with_id(l, m2.dlv[0]);
    assert_string_equal(it2->event, m2.body[0]);
    assert_null(it2->raw_ptr);
    assert_null(it2->raw_body);
    assert_int_equal(it2->raw_len, 0);
    assert_string_equal(it2->correlation_id, w2->corr);
    assert_int_equal(it2->attempt, 1);
    /* What is left for pager: the two leases, running out at now + 30 s. */
    assert_int_equal(l->next_due_ms, now + 30000);

    for (size_t i = 0; i < 2; i++) {
        const char *id = i ? m2.dlv[0] : m.dlv[0];
        assert_dlv_state(id, "sending");
        assert_int_equal(dlv_int(id, "attempts"), 1);
        assert_int_equal(dlv_int(id, "next_at"), now + 30000);
    }
    /* Right after: nothing is due for pager. */
    l = lease("pager", 10, now, 30000);
    assert_int_equal(l->n, 0);
    assert_int_equal(l->next_due_ms, now + 30000);
    /* slack's delivery is its own. */
    l = lease("slack", 10, now, 30000);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].id, m.dlv[1]);
    assert_dlv_state(m.dlv[1], "sending");
    /* A connector with nothing at all. */
    l = lease("nobody", 10, now, 30000);
    assert_int_equal(l->n, 0);
    assert_int_equal(l->next_due_ms, -1);
    finish();
}

static void test_lease_takes_at_most_max(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{}");
    const char *rows[] = {"r:bulk", "r:bulk", "r:bulk"};
    made_t m;
    settle_wait(w, rows, 3, NULL, &m);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    /* Not yet due: created after this moment. */
    hl_lease *l = lease("bulk", 10, now - 3600000, 30000);
    assert_int_equal(l->n, 0);
    assert_true(l->next_due_ms > now - 3600000 && l->next_due_ms < now);
    l = lease("bulk", 2, now, 30000);
    assert_int_equal(l->n, 2);
    l = lease("bulk", 2, now, 30000);
    assert_int_equal(l->n, 1);
    l = lease("bulk", 2, now, 30000);
    assert_int_equal(l->n, 0);
    assert_int_equal(sql_int("SELECT count(*) FROM deliveries WHERE state = "
                             "'sending' AND attempts = 1"),
                     3);
    finish();
}

static void test_finish_delivered_and_failed(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{}");
    const char *rows[] = {"r:a,b,c"};
    made_t m;
    settle_wait(w, rows, 1, NULL, &m);
    assert_int_equal(hl_queue_backlog(g.q), 3);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(lease(m.conn[i], 10, now, 30000)->n, 1);

    hl_attempt_row r[3];
    r[0] = attempt_row(m.dlv[0], 1, HL_DS_DELIVERED, 0, 200, NULL, "200",
                       "{\"ok\":true}", 1);
    r[1] = attempt_row(m.dlv[1], 1, HL_DS_FAILED, 0, 422, "http_4xx",
                       "HTTP 422", "{\"error\":\"bad field\"}", 1);
    r[2] = attempt_row(m.dlv[2], 1, HL_DS_FAILED, 0, 0, "blocked",
                       "blocked: 10.0.0.1 is a private address", NULL, 1);
    int64_t t0 = hl_now_ms();
    finish_wait(r, 3);
    int64_t t1 = hl_now_ms();

    assert_dlv_state(m.dlv[0], "delivered");
    assert_dlv_state(m.dlv[1], "failed");
    assert_dlv_state(m.dlv[2], "failed");
    assert_int_equal(dlv_int(m.dlv[0], "last_status"), 200);
    assert_int_equal(dlv_int(m.dlv[1], "last_status"), 422);
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 1);
    int64_t upd = dlv_int(m.dlv[0], "updated_at");
    assert_true(upd >= t0 && upd <= t1);
    char text[128];
    dlv_text(m.dlv[1], "last_error", text, sizeof text);
    assert_string_equal(text, "HTTP 422");
    dlv_text(m.dlv[2], "last_status", text, sizeof text);
    assert_string_equal(text, "(null)");

    sqlite3 *db = ro_open(g.path);
    sqlite3_stmt *st = prep(
        db, "SELECT attempt, started_at, duration_ms, status, outcome, "
            "error_class, reason, response FROM attempts WHERE "
            "delivery_id = ?1");
    static const struct {
        const char *status, *outcome, *cls, *reason, *response;
    } want[] = {
        {"200", "delivered", NULL, "200", "{\"ok\":true}"},
        {"422", "failed", "http_4xx", "HTTP 422", "{\"error\":\"bad field\"}"},
        {NULL, "failed", "blocked", "blocked: 10.0.0.1 is a private address",
         NULL},
    };
    for (size_t i = 0; i < 3; i++) {
        sqlite3_bind_text(st, 1, m.dlv[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        assert_int_equal(sqlite3_column_int64(st, 1), r[i].started_ms);
        assert_int_equal(sqlite3_column_int(st, 2), r[i].duration_ms);
        assert_col_text(st, 3, want[i].status, m.dlv[i]);
        assert_col_text(st, 4, want[i].outcome, m.dlv[i]);
        assert_col_text(st, 5, want[i].cls, m.dlv[i]);
        assert_col_text(st, 6, want[i].reason, m.dlv[i]);
        assert_col_text(st, 7, want[i].response, m.dlv[i]);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE); /* one each */
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    /* Finished: out of the backlog, never leased again. */
    assert_int_equal(hl_queue_backlog(g.q), 0);
    for (size_t i = 0; i < 3; i++) {
        hl_lease *l = lease(m.conn[i], 10, now + 86400000, 30000);
        assert_int_equal(l->n, 0);
        assert_int_equal(l->next_due_ms, -1);
    }
    finish();
}

static void test_finish_retrying_waits_until_next(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{}");
    const char *rows[] = {"r:pager"};
    made_t m;
    settle_wait(w, rows, 1, NULL, &m);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    assert_int_equal(lease("pager", 10, now, 30000)->v[0].attempt, 1);

    int64_t next = now + 60000;
    finish_one(attempt_row(m.dlv[0], 1, HL_DS_RETRYING, next, 503, "http_5xx",
                           "HTTP 503", "busy", 1));
    assert_dlv_state(m.dlv[0], "retrying");
    assert_int_equal(dlv_int(m.dlv[0], "next_at"), next);
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 1);
    assert_int_equal(dlv_int(m.dlv[0], "last_status"), 503);
    assert_int_equal(attempt_rows(m.dlv[0]), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM attempts WHERE outcome = "
                             "'retry' AND error_class = 'http_5xx'"),
                     1);
    assert_int_equal(hl_queue_backlog(g.q), 1);

    /* Not before its time. */
    hl_lease *l = lease("pager", 10, next - 1, 30000);
    assert_int_equal(l->n, 0);
    assert_int_equal(l->next_due_ms, next);
    /* Then: the second attempt. */
    l = lease("pager", 10, next, 30000);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].id, m.dlv[0]);
    assert_int_equal(l->v[0].attempt, 2);
    assert_string_equal(l->v[0].event, m.body[0]);
    assert_dlv_state(m.dlv[0], "sending");
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 2);
    finish();
}

/* An attempt never made (the connector was paused, the process is
 * stopping): the delivery goes back as it was, and no attempt is kept. */
static void test_finish_given_back(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{}");
    const char *rows[] = {"r:pager"};
    made_t m;
    settle_wait(w, rows, 1, NULL, &m);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    assert_int_equal(lease("pager", 10, now, 30000)->n, 1);
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 1);

    finish_one(attempt_row(m.dlv[0], 1, HL_DS_QUEUED, now + 5, 0, NULL,
                           "given back: shutting down", NULL, 0));
    assert_dlv_state(m.dlv[0], "queued");
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 0);
    assert_int_equal(dlv_int(m.dlv[0], "next_at"), now + 5);
    assert_int_equal(attempt_rows(m.dlv[0]), 0);
    assert_int_equal(hl_queue_backlog(g.q), 1);

    hl_lease *l = lease("pager", 10, now + 5, 30000);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->v[0].attempt, 1); /* the first, still */
    finish();
}

/* A lease that runs out is taken again; the first holder's late finish is
 * then ignored. */
static void test_expired_lease_and_stale_finish(void **state)
{
    (void)state;
    open_store();
    ev_slot *w = webhook("alertmanager", "{}");
    const char *rows[] = {"r:pager"};
    made_t m;
    settle_wait(w, rows, 1, NULL, &m);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    hl_lease *l = lease("pager", 10, now, 1);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->v[0].attempt, 1);
    assert_int_equal(l->next_due_ms, now + 1);
    assert_int_equal(lease("pager", 10, now, 1)->n, 0); /* still held */
    l = lease("pager", 10, now + 1, 30000); /* run out: taken again */
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].id, m.dlv[0]);
    assert_int_equal(l->v[0].attempt, 2);
    assert_string_equal(l->v[0].event, m.body[0]);

    /* The first holder reports late: ignored. */
    finish_one(attempt_row(m.dlv[0], 1, HL_DS_DELIVERED, 0, 200, NULL, "200",
                           NULL, 1));
    assert_dlv_state(m.dlv[0], "sending");
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 2);
    assert_int_equal(attempt_rows(m.dlv[0]), 0);
    assert_int_equal(hl_queue_backlog(g.q), 1);
    /* A given-back row for the stale attempt is ignored too. */
    finish_one(attempt_row(m.dlv[0], 1, HL_DS_QUEUED, now, 0, NULL, "back",
                           NULL, 0));
    assert_int_equal(dlv_int(m.dlv[0], "attempts"), 2);
    assert_dlv_state(m.dlv[0], "sending");

    /* The current holder's finish counts. */
    finish_one(attempt_row(m.dlv[0], 2, HL_DS_DELIVERED, 0, 204, NULL, "204",
                           NULL, 1));
    assert_dlv_state(m.dlv[0], "delivered");
    assert_int_equal(attempt_rows(m.dlv[0]), 1);
    assert_int_equal(sql_int("SELECT attempt FROM attempts"), 2);
    assert_int_equal(hl_queue_backlog(g.q), 0);
    finish();
}

static void assert_kv(const char *connector, const char *key,
                      const char *want)
{
    char *v = (char *)"untouched";
    int rc = hl_queue_kv_get(g.q, connector, key, &v);
    if (!want) {
        assert_int_equal(rc, HL_ENOTFOUND);
        assert_null(v);
        return;
    }
    if (rc)
        fail_msg("kv %s/%s: %s", connector, key, hl_err_name(rc));
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_kv_put_get_delete(void **state)
{
    (void)state;
    open_store();
    assert_kv("pager", "dedup:disk", NULL);
    assert_int_equal(hl_queue_kv_put(g.q, "pager", "dedup:disk", "T-1"), 0);
    assert_kv("pager", "dedup:disk", "T-1");
    assert_int_equal(hl_queue_kv_put(g.q, "pager", "dedup:disk", "T-2"), 0);
    assert_kv("pager", "dedup:disk", "T-2");
    /* Keys are per connector. */
    assert_kv("slack", "dedup:disk", NULL);
    assert_int_equal(hl_queue_kv_put(g.q, "slack", "dedup:disk", "S-9"), 0);
    assert_int_equal(hl_queue_kv_put(g.q, "slack", "empty", ""), 0);
    assert_kv("slack", "dedup:disk", "S-9");
    assert_kv("slack", "empty", "");
    assert_kv("pager", "dedup:disk", "T-2");
    /* NULL deletes; deleting what is not there is fine. */
    assert_int_equal(hl_queue_kv_put(g.q, "pager", "dedup:disk", NULL), 0);
    assert_kv("pager", "dedup:disk", NULL);
    assert_int_equal(hl_queue_kv_put(g.q, "pager", "dedup:disk", NULL), 0);
    assert_kv("slack", "dedup:disk", "S-9");

    close_store();
    assert_int_equal(sql_int("SELECT count(*) FROM connector_kv"), 2);
    open_store();
    assert_kv("slack", "dedup:disk", "S-9");
    assert_kv("slack", "empty", "");
    assert_kv("pager", "dedup:disk", NULL);
    finish();
}

static void test_backlog_counts_webhooks_and_live_deliveries(void **state)
{
    (void)state;
    open_store();
    ev_slot *w1 = webhook("alertmanager", "{\"n\":1}");
    ev_slot *w2 = webhook("alertmanager", "{\"n\":2}");
    ev_slot *w3 = webhook("alertmanager", "{\"n\":3}");
    assert_int_equal(hl_queue_backlog(g.q), 3);

    const char *two[] = {"r:a,b"};
    made_t m;
    settle_wait(w1, two, 1, NULL, &m);
    assert_int_equal(hl_queue_backlog(g.q), 4); /* 2 received, 2 deliveries */
    const char *none[] = {"-:"};
    made_t unrouted;
    settle_wait(w2, none, 1, NULL, &unrouted);
    assert_int_equal(hl_queue_backlog(g.q), 3); /* routed nowhere: done */
    hl_settle *bad = calloc(1, sizeof *bad);
    assert_non_null(bad);
    snprintf(bad->event_id, sizeof bad->event_id, "%s", w3->ev.id);
    bad->seq = seq_of(w3);
    snprintf(bad->reason, sizeof bad->reason, "no list at /alerts");
    assert_int_equal(hl_queue_settle_take(g.q, bad), 0);
    sync_writer();
    assert_int_equal(hl_queue_backlog(g.q), 2); /* unparsed: out */

    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    assert_int_equal(lease("a", 10, now, 30000)->n, 1);
    assert_int_equal(lease("b", 10, now, 30000)->n, 1);
    assert_int_equal(hl_queue_backlog(g.q), 2); /* sending still counts */
    finish_one(attempt_row(m.dlv[0], 1, HL_DS_DELIVERED, 0, 200, NULL, "200",
                           NULL, 1));
    assert_int_equal(hl_queue_backlog(g.q), 1);
    finish_one(attempt_row(m.dlv[1], 1, HL_DS_RETRYING, now + 1000, 500,
                           "http_5xx", "HTTP 500", NULL, 1));
    assert_int_equal(hl_queue_backlog(g.q), 1); /* retrying still counts */

    /* Reopened: counted again from the file, the same. */
    close_store();
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 1);
    assert_int_equal(lease("b", 10, now + 1000, 30000)->v[0].attempt, 2);
    finish_one(attempt_row(m.dlv[1], 2, HL_DS_EXPIRED, 0, 500, "http_5xx",
                           "expired after max_age", NULL, 1));
    assert_int_equal(hl_queue_backlog(g.q), 0);
    close_store();
    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 0);
    assert_dlv_state(m.dlv[1], "expired");
    finish();
}

/* Everything of schema 3 is on disk, not in memory. */
static void test_deliveries_survive_reopen(void **state)
{
    (void)state;
    open_store();
    const char *body = "{\"alerts\":[{\"x\":1}]}";
    ev_slot *w = webhook("alertmanager", body);
    const char *rows[] = {"pages:pager,slack"};
    made_t m;
    settle_wait(w, rows, 1, "/alerts/%zu", &m);
    int64_t now = hl_now_ms() + DUE_SLACK_MS;
    assert_int_equal(lease("pager", 10, now, 30000)->n, 1);
    finish_one(attempt_row(m.dlv[0], 1, HL_DS_RETRYING, now + 1000, 429,
                           "http_429", "HTTP 429", NULL, 1));
    assert_int_equal(hl_queue_kv_put(g.q, "pager", "incident", "PD-42"), 0);
    close_store();

    open_store();
    assert_int_equal(hl_queue_backlog(g.q), 2);
    assert_kv("pager", "incident", "PD-42");
    hl_lease *l = lease("pager", 10, now + 1000, 30000);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].id, m.dlv[0]);
    assert_int_equal(l->v[0].attempt, 2);
    assert_string_equal(l->v[0].event, m.body[0]);
    assert_string_equal(l->v[0].raw_ptr, "/alerts/0");
    assert_int_equal(l->v[0].raw_len, strlen(body));
    assert_string_equal(l->v[0].correlation_id, w->corr);
    l = lease("slack", 10, now, 30000);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->v[0].attempt, 1);
    assert_int_equal(attempt_rows(m.dlv[0]), 1);
    finish();
}

/* ---- the schema 2 golden file ------------------------------------------- */

/* tests/data/store/v2-golden.db, made by make-v2-golden.py beside it. */
static const struct {
    const char *id, *state, *source;
    int64_t seq;
} v2_events[] = {
    {"01HZ9V2GLD0000000000000001", "normalized", "github", 1},
    {"01HZ9V2GLD0000000000000002", "normalized", "alertmanager", 2},
    {"01HZ9V2GLD0000000000000003", "unparsed", "alertmanager", 3},
    {"01HZ9V2GLD0000000000000004", "received", "github", 4},
};

static void test_golden_v2_opens_and_migrates(void **state)
{
    (void)state;
    char src[1024];
    data_path(src, sizeof src, "store/v2-golden.db");
    snprintf(g.path, sizeof g.path, "%s/v2.db", g.dir);
    copy_file(src, g.path, SIZE_MAX);

    forget_log();
    open_store();
    char log[4096], step[1200];
    read_log(log, sizeof log);
    assert_null(strstr(log, "from=0"));
    assert_null(strstr(log, "from=1"));
    snprintf(step, sizeof step, "schema migrated path=%s from=2 to=3",
             g.path);
    if (!strstr(log, step))
        fail_msg("migration '%s' not in the log:\n%s", step, log);
    /* Only the webhook still received waits: normalized and unparsed ones
     * do not count, and there are no deliveries yet. */
    assert_int_equal(hl_queue_backlog(g.q), 1);

    sqlite3 *db = ro_open(g.path);
    assert_int_equal(q_int(db, "PRAGMA user_version"),
                     HL_STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "PRAGMA application_id"), 0x484c4e31);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 4);
    sqlite3_stmt *st =
        prep(db, "SELECT state, source, seq FROM events WHERE id = ?1");
    for (size_t i = 0; i < 4; i++) {
        sqlite3_bind_text(st, 1, v2_events[i].id, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_col_text(st, 0, v2_events[i].state, v2_events[i].id);
        assert_col_text(st, 1, v2_events[i].source, v2_events[i].id);
        assert_int_equal(sqlite3_column_int64(st, 2), v2_events[i].seq);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    char text[128];
    q_text(db, "SELECT state_reason FROM events WHERE seq = 3", text,
           sizeof text);
    assert_string_equal(text, "no list at /alerts");
    assert_int_equal(q_int(db, "SELECT seq FROM normalize_cursor"), 3);
    /* The canonical rows, with the new route column empty. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM canonical"), 3);
    assert_int_equal(q_int(db, "SELECT count(*) FROM canonical WHERE route "
                               "IS NULL"),
                     3);
    q_text(db, "SELECT group_concat(raw_ptr, ',') FROM (SELECT raw_ptr FROM "
               "canonical WHERE event_id = '01HZ9V2GLD0000000000000002' "
               "ORDER BY seq)",
           text, sizeof text);
    assert_string_equal(text, "/alerts/0,/alerts/1");
    q_text(db, "SELECT dedupkey FROM canonical WHERE id = "
               "'01HZ9V2CAN0000000000000002'",
           text, sizeof text);
    assert_string_equal(text, "DiskFull");
    /* The new tables are there, empty. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
                               "type = 'table' AND name IN ('deliveries', "
                               "'attempts', 'connector_kv')"),
                     3);
    assert_int_equal(q_int(db, "SELECT count(*) FROM deliveries"), 0);
    q_text(db, "PRAGMA integrity_check", text, sizeof text);
    assert_string_equal(text, "ok");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* The normalizer picks up where v2 stopped. */
    hl_stored_batch b;
    assert_int_equal(hl_queue_read_received(g.q, -1, 10, &b), 0);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.v[0].ev.id, v2_events[3].id);
    assert_int_equal(b.v[0].seq, 4);
    assert_null(b.v[0].ev.content_type);
    assert_int_equal(b.v[0].ev.body_len, 10);
    assert_memory_equal(b.v[0].ev.body, "\0\xffnot json", 10);
    assert_string_equal(b.v[0].ev.correlation_id, "corr-v2-4");
    hl_stored_batch_free(&b);

    /* v2's idempotency key still holds. */
    ev_slot *dup = ev_text("github", "v2-delivery-1", "{\"again\":1}");
    append_wait(dup);
    assert_duplicate_of(dup, v2_events[0].id);

    /* And the old webhook gets deliveries like a new one. */
    ev_slot old;
    memset(&old, 0, sizeof old);
    snprintf(old.ev.id, sizeof old.ev.id, "%s", v2_events[3].id);
    old.ev.tenant = "acme";
    old.ev.source = "github";
    const char *rows[] = {"ci:pager"};
    made_t m;
    settle_wait(&old, rows, 1, NULL, &m);
    assert_int_equal(hl_queue_backlog(g.q), 1);
    hl_lease *l = lease("pager", 10, hl_now_ms() + DUE_SLACK_MS, 30000);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].correlation_id, "corr-v2-4");
    assert_string_equal(l->v[0].tenant, "acme");
    finish();
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--make-golden"))
        return make_golden(argv[2]);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_folders_wal_schema),
        T(test_append_500_group_commit),
        T(test_append_null_content_type_and_empty_body),
        T(test_idem_same_batch),
        T(test_idem_across_batches_and_reopen),
        T(test_idem_key_is_per_source),
        T(test_idem_null_key_never_dedups),
        T(test_backlog_counts_and_survives_reopen),
        T(test_normalize_cycle),
        T(test_reopen_existing_no_migration),
        T(test_durability_normal_persists),
        T(test_newer_schema_refused),
        T(test_foreign_database_refused_untouched),
        T(test_corrupt_file_refused_untouched),
        T(test_truncated_db_refused),
        T(test_golden_v1_opens_and_appends),
        T(test_disk_full_max_size),
        T(test_open_under_regular_file),
        T(test_open_read_only_folder),
        T(test_open_read_only_file),
        T(test_locked_database_answers_busy),
        T(test_close_drains_and_refuses_new_appends),
        T(test_newer_schema_file_left_untouched),
        T(test_open_error_names_the_cause),
        T(test_settle_writes_events_and_deliveries),
        T(test_settle_twice_writes_nothing),
        T(test_lease_returns_due_deliveries_with_their_event),
        T(test_lease_takes_at_most_max),
        T(test_finish_delivered_and_failed),
        T(test_finish_retrying_waits_until_next),
        T(test_finish_given_back),
        T(test_expired_lease_and_stale_finish),
        T(test_kv_put_get_delete),
        T(test_backlog_counts_webhooks_and_live_deliveries),
        T(test_deliveries_survive_reopen),
        T(test_golden_v2_opens_and_migrates),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
