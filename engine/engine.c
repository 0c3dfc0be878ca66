/* engine.c - the running daemon: loop, listener, signals, reload, shutdown. */
#include "engine.h"

#include "admin.h"
#include "dispatch.h"
#include "err.h"
#include "http.h"
#include "intake.h"
#include "log.h"
#include "normalize.h"
#include "redact.h"
#include "store.h"
#include "stream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t grace;
    uv_timer_t settle; /* waits for reads off the loop before closing */
    hl_http_server *http;
    hl_admin *admin;
    hl_stream *stream;
    hl_queue *queue;
    hl_intake *intake;
    hl_normalizer *normalizer;
    hl_dispatcher *dispatcher;
    hl_mappings *maps;     /* until the normalizer takes them */
    hl_plugins *plugins;   /* until the dispatcher takes them */
    hl_config *cfg;
    const char *config_path;
    int stopping;
    int closed; /* everything but the loop is closed */
    unsigned reloads;
} engine;

static void apply_log(const hl_config *cfg)
{
    hl_log_setup((hl_log_level)cfg->log.level,
                 (hl_log_format)cfg->log.format);
}

static hl_http_limits limits_of(const hl_config *cfg)
{
    hl_http_limits l = {
        .max_body = cfg->server.max_body,
        .max_connections = cfg->server.max_connections,
        .header_timeout_ms = cfg->server.header_timeout_ms,
        .idle_timeout_ms = cfg->server.idle_timeout_ms,
    };
    return l;
}

/* ---- requests ------------------------------------------------------------ */

typedef void (*route_fn)(engine *e, hl_http_req *req);

typedef struct {
    const char *path;
    const char *methods; /* for Allow: "GET, HEAD" */
    route_fn fn;
} route;

static void health(engine *e, hl_http_req *req)
{
    (void)e;
    static const char body[] = "{\"status\":\"ok\"}\n";
    hl_http_respond(req, 200, "application/json", NULL, body,
                    sizeof body - 1);
}

static void ready(engine *e, hl_http_req *req)
{
    if (e->stopping) {
        hl_http_respond_error(req, 503, "shutting_down",
                              "the engine is shutting down", NULL);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}\n";
    hl_http_respond(req, 200, "application/json", NULL, body,
                    sizeof body - 1);
}

static void hooks(engine *e, hl_http_req *req)
{
    hl_intake_handle(e->intake, req, req->path + strlen("/v1/hooks/"));
}

static void admin(engine *e, hl_http_req *req)
{
    hl_admin_handle(e->admin, req);
}

static void metrics(engine *e, hl_http_req *req)
{
    hl_admin_metrics(e->admin, req);
}

static void stream(engine *e, hl_http_req *req)
{
    hl_stream_handle(e->stream, req);
}

/* Exact paths; prefixes when the path ends in '/' (one more segment), or
 * in '*' after a '/' (any more). */
static const route routes[] = {
    {"/healthz", "GET, HEAD", health},
    {"/readyz", "GET, HEAD", ready},
    {"/metrics", "GET, HEAD", metrics},
    {"/v1/hooks/", NULL, hooks},
    {"/v1/stream", NULL, stream},
    {"/v1/events", NULL, admin},
    {"/v1/events/*", NULL, admin},
    {"/v1/deliveries", NULL, admin},
    {"/v1/deliveries/*", NULL, admin},
    {"/v1/replay", NULL, admin},
    {"/v1/normalize", NULL, admin},
    {"/v1/connectors", NULL, admin},
    {"/v1/connectors/*", NULL, admin},
};

static int method_allowed(const char *methods, const char *m)
{
    size_t n = strlen(m);
    for (const char *p = methods; (p = strstr(p, m)); p += n)
        if ((p == methods || p[-1] == ' ') && (p[n] == ',' || !p[n]))
            return 1;
    return 0;
}

static int path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n > 1 && pattern[n - 1] == '*')
        return !strncmp(pattern, path, n - 1) && path[n - 1];
    if (pattern[n - 1] != '/')
        return !strcmp(pattern, path);
    /* A prefix route takes exactly one more non-empty segment. */
    return !strncmp(pattern, path, n) && path[n] && !strchr(path + n, '/');
}

static void on_request(hl_http_req *req, void *ud)
{
    engine *e = ud;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_matches(routes[i].path, req->path))
            continue;
        if (routes[i].methods &&
            !method_allowed(routes[i].methods, req->method)) {
            char allow[128], msg[160];
            snprintf(allow, sizeof allow, "Allow: %s\r\n", routes[i].methods);
            snprintf(msg, sizeof msg, "%.*s accepts %s",
                     (int)strcspn(routes[i].path, "*"), routes[i].path,
                     routes[i].methods);
            hl_http_respond_error(req, 405, "method_not_allowed", msg, allow);
            return;
        }
        routes[i].fn(e, req);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.200s", req->path);
    hl_http_respond_error(req, 404, "not_found", msg, NULL);
}

/* ---- reload -------------------------------------------------------------- */

static void log_diags(const hl_diags *d, hl_log_level level)
{
    char line[2048];
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], line, sizeof line);
        hl_log(d->v[i].kind == HL_DIAG_ERROR ? level : HL_LOG_WARN, "config",
               line, NULL);
    }
}

/* Settings read only at start: say so instead of silently ignoring them. */
static void note_restart_keys(const hl_config *old, const hl_config *cur)
{
    if (strcmp(old->server.listen, cur->server.listen))
        HL_WARN("config", "server.listen changed; restart hookline to apply",
                "old", old->server.listen, "new", cur->server.listen);
    if (strcmp(old->storage.path, cur->storage.path))
        HL_WARN("config", "storage.path changed; restart hookline to apply",
                "old", old->storage.path, "new", cur->storage.path);
    if (old->storage.durability != cur->storage.durability)
        HL_WARN("config",
                "storage.durability changed; restart hookline to apply");
}

int hl_engine_load(const char *path, hl_diags *d, hl_loaded *out)
{
    memset(out, 0, sizeof *out);
    int rc = hl_config_load(path, d, &out->cfg);
    if (rc)
        return rc;
    /* Every part reports its problems, so one run shows them all. */
    rc = hl_mappings_for_config(out->cfg, d, &out->maps);
    int rc2 = hl_redactors_check(out->cfg, d);
    int rc3 = hl_plugins_load(out->cfg, d, &out->plugins);
    rc = rc ? rc : rc2 ? rc2 : rc3;
    if (rc)
        hl_loaded_free(out);
    return rc;
}

void hl_loaded_free(hl_loaded *l)
{
    hl_mappings_destroy(l->maps);
    hl_plugins_release(l->plugins);
    hl_config_destroy(l->cfg);
    memset(l, 0, sizeof *l);
}

static void reload(engine *e)
{
    hl_diags d = {0};
    HL_INFO("config", "reloading", "file", e->config_path);
    hl_loaded l;
    int rc = hl_engine_load(e->config_path, &d, &l);
    hl_config *next = l.cfg;
    hl_mappings *maps = l.maps;
    log_diags(&d, HL_LOG_ERROR);
    if (rc) {
        char n[32];
        snprintf(n, sizeof n, "%zu", d.errors);
        HL_ERROR("config",
                 "reload failed; the running configuration is unchanged",
                 "file", e->config_path, "errors", n);
        hl_diags_free(&d);
        return;
    }
    hl_diags_free(&d);
    note_restart_keys(e->cfg, next);
    hl_config *old = e->cfg;
    e->cfg = next;
    apply_log(next);
    hl_intake_set_config(e->intake, next);
    hl_normalizer_set_config(e->normalizer, next, maps);
    hl_dispatcher_set_config(e->dispatcher, next, l.plugins);
    hl_admin_set_config(e->admin, next);
    hl_stream_set_config(e->stream, next);
    hl_http_limits lim = limits_of(next);
    hl_http_server_set_limits(e->http, &lim);
    hl_config_destroy(old);
    e->reloads++;
    char n[32];
    snprintf(n, sizeof n, "%u", e->reloads);
    HL_INFO("config", "reloaded", "file", e->config_path, "generation", n);
}

/* ---- shutdown ------------------------------------------------------------ */

static void close_all(engine *e)
{
    /* The signal handlers stay, so a late signal is not fatal; they no
     * longer keep the loop running and are closed with the rest. */
    e->closed = 1;
    uv_unref((uv_handle_t *)&e->sigint);
    uv_unref((uv_handle_t *)&e->sigterm);
    uv_unref((uv_handle_t *)&e->sighup);
    uv_close((uv_handle_t *)&e->grace, NULL);
    uv_close((uv_handle_t *)&e->settle, NULL);
    hl_admin_close(e->admin);
    hl_stream_close(e->stream);
    hl_normalizer_stop(e->normalizer);
    e->normalizer = NULL;
    hl_dispatcher_stop(e->dispatcher, HL_DISPATCH_GRACE_MS);
    e->dispatcher = NULL;
    if (e->queue) {
        hl_queue_close(e->queue); /* answers what is still queued */
        e->queue = NULL;
    }
}

/* Reads in the thread pool use the queue: close once they are back. */
static void on_settle(uv_timer_t *t)
{
    engine *e = t->data;
    if (hl_admin_busy(e->admin) || hl_stream_busy(e->stream)) {
        uv_timer_start(&e->settle, on_settle, 10, 0);
        return;
    }
    close_all(e);
    HL_INFO("engine", "stopped");
}

static void on_http_done(hl_http_server *srv, void *ud)
{
    engine *e = ud;
    (void)srv;
    hl_admin_close(e->admin); /* no retention pass starts any more */
    on_settle(&e->settle);
}

static void on_grace(uv_timer_t *t)
{
    engine *e = t->data;
    HL_WARN("engine", "grace period over; closing the remaining connections");
    hl_http_server_abort(e->http);
}

static void stop(engine *e, const char *why)
{
    if (e->stopping) {
        HL_WARN("engine", "second stop signal; closing every connection now",
                "signal", why);
        hl_http_server_abort(e->http);
        return;
    }
    e->stopping = 1;
    HL_INFO("engine", "shutting down", "signal", why);
    hl_intake_stop(e->intake);
    hl_stream_shutdown(e->stream);
    uv_timer_start(&e->grace, on_grace, HL_SHUTDOWN_GRACE_MS, 0);
    hl_http_server_shutdown(e->http, on_http_done, e);
}

static void on_signal(uv_signal_t *s, int signum)
{
    engine *e = s->data;
    if (e->closed) {
        HL_INFO("engine", "signal after the stop; already closing",
                "signal", signum == SIGHUP ? "SIGHUP" : "stop");
        return;
    }
    if (signum == SIGHUP)
        reload(e);
    else
        stop(e, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ---- start --------------------------------------------------------------- */

/* How often to look for what is past its retention: a quarter of the
 * shorter one, from a second to a minute. */
static uint64_t retention_interval(const hl_config *cfg)
{
    uint64_t d = cfg->storage.retention_delivered_ms;
    uint64_t f = cfg->storage.retention_failed_ms;
    uint64_t m = d && f ? (d < f ? d : f) : d ? d : f;
    m /= 4;
    return m < 1000 ? 1000 : m > 60000 ? 60000 : m;
}

static int start(engine *e)
{
    int rc = uv_loop_init(&e->loop);
    if (rc)
        return rc;
    uv_signal_t *sigs[] = {&e->sigint, &e->sigterm, &e->sighup};
    int nums[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&e->loop, sigs[i]);
        sigs[i]->data = e;
        if ((rc = uv_signal_start(sigs[i], on_signal, nums[i])))
            return rc;
    }
    uv_timer_init(&e->loop, &e->grace);
    e->grace.data = e;
    uv_timer_init(&e->loop, &e->settle);
    e->settle.data = e;
    char err[600];
    rc = hl_store_open(&e->loop, &e->cfg->storage, &e->queue, err, sizeof err);
    if (rc) {
        HL_ERROR("store", "cannot open the store", "reason", err);
        return rc;
    }
    if ((rc = hl_intake_create(e->queue, e->cfg, &e->intake)))
        return rc;
    rc = hl_normalizer_start(e->queue, e->cfg, e->maps, &e->normalizer);
    e->maps = NULL;
    if (rc)
        return rc;
    rc = hl_dispatcher_start(e->queue, e->cfg, e->plugins, &e->dispatcher);
    e->plugins = NULL;
    if (rc) {
        HL_ERROR("dispatch", "cannot start the dispatcher", "reason",
                 hl_strerror(rc));
        return rc;
    }
    if ((rc = hl_admin_create(&e->loop, e->queue, e->cfg, &e->admin)) ||
        (rc = hl_stream_create(&e->loop, e->queue, e->cfg, &e->stream)))
        return rc;
    hl_admin_set_dispatcher(e->admin, e->dispatcher);
    hl_admin_start_retention(e->admin, retention_interval(e->cfg));
    hl_http_limits l = limits_of(e->cfg);
    rc = hl_http_server_create(&e->loop, &l, on_request, e, &e->http);
    if (rc)
        return rc;
    rc = hl_http_server_listen(e->http, e->cfg->server.host,
                               e->cfg->server.port);
    if (rc) {
        HL_ERROR("http", "cannot listen", "addr", e->cfg->server.listen,
                 "reason", uv_strerror(rc),
                 "hint", "pick another server.listen or stop what holds it");
        return rc;
    }
    char addr[96], pid[32];
    const char *h = e->cfg->server.host;
    snprintf(addr, sizeof addr, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h,
             (unsigned)hl_http_server_port(e->http));
    snprintf(pid, sizeof pid, "%ld", (long)uv_os_getpid());
    HL_INFO("http", "listening", "addr", addr, "pid", pid, "version",
            HL_VERSION);
    return 0;
}

int hl_engine_run_take(const char *config_path, hl_loaded *l)
{
    engine e = {.cfg = l->cfg,
                .config_path = config_path,
                .maps = l->maps,
                .plugins = l->plugins};
    memset(l, 0, sizeof *l);
    signal(SIGPIPE, SIG_IGN);
    apply_log(e.cfg);
    int rc = start(&e);
    if (!rc)
        rc = uv_run(&e.loop, UV_RUN_DEFAULT);
    /* After a failed start, close whatever is still open. */
    hl_admin_close(e.admin);
    hl_stream_close(e.stream);
    hl_normalizer_stop(e.normalizer);
    hl_dispatcher_stop(e.dispatcher, HL_DISPATCH_GRACE_MS);
    hl_mappings_destroy(e.maps);
    hl_plugins_release(e.plugins);
    if (e.queue)
        hl_queue_close(e.queue);
    uv_walk(&e.loop, close_walk, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    if (e.http)
        hl_http_server_destroy(e.http);
    hl_intake_destroy(e.intake);
    hl_admin_destroy(e.admin);
    hl_stream_destroy(e.stream);
    int closed = uv_loop_close(&e.loop);
    if (closed)
        HL_ERROR("engine", "event loop still had open handles at exit");
    hl_config_destroy(e.cfg);
    return rc < 0 ? rc : closed;
}
