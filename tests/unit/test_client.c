/* test_client.c - outbound HTTP and SMTP against scripted local servers. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client.h"
#include "err.h"
#include "netguard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define TLS_DIR "tests/data/tls"
#define WAIT_MS 15000 /* a transfer that takes longer than this has hung */

/* ---- a scripted server on 127.0.0.1, one thread per connection --------- */

#define MAX_REQS 16
#define MAX_CONNS 16

typedef struct srv srv;

typedef enum { KEEP, CLOSE, CLOSED } verdict;

/* Answers request n (the whole request, NUL-ended) on fd. */
typedef verdict (*srv_fn)(srv *s, int fd, const char *req, int n);

struct srv {
    int lfd, port;
    pthread_t th;
    int running;
    atomic_int stop;
    atomic_int accepts;
    pthread_mutex_t mu;
    pthread_t conns[MAX_CONNS];
    int nconns;
    srv_fn fn;          /* HTTP: answers each request */
    int smtp;           /* speak SMTP instead */
    size_t big_len;     /* h_big: the body's length */
    char location[256]; /* h_redirect: where /redir points */
    int rcpt_code;      /* SMTP: the reply to RCPT TO */
    int auth;           /* SMTP: offer AUTH PLAIN */
    /* What the server saw: read after srv_stop. */
    char *req[MAX_REQS];
    int nreq;
    char mail_from[1024], rcpt[2048], data[8192], auth_plain[1024];
    int quits;
};

typedef struct {
    srv *s;
    int fd;
    char *buf;
    size_t len, cap;
} conn;

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sendf(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return send_all(fd, buf, (size_t)n);
}

/* Read more into the connection's buffer: -1 at the end, or when told to
 * stop. */
static int conn_fill(conn *k)
{
    for (;;) {
        if (atomic_load(&k->s->stop))
            return -1;
        struct pollfd p = {k->fd, POLLIN, 0};
        int r = poll(&p, 1, 20);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            continue;
        if (k->cap - k->len < 65536 + 1) {
            size_t cap = k->cap ? k->cap * 2 : 131072;
            char *b = realloc(k->buf, cap);
            if (!b)
                return -1;
            k->buf = b;
            k->cap = cap;
        }
        ssize_t n = recv(k->fd, k->buf + k->len, k->cap - k->len - 1, 0);
        if (n <= 0)
            return -1;
        k->len += (size_t)n;
        k->buf[k->len] = 0;
        return 0;
    }
}

static void conn_consume(conn *k, size_t n)
{
    memmove(k->buf, k->buf + n, k->len - n);
    k->len -= n;
    k->buf[k->len] = 0;
}

/* One whole HTTP request (head and Content-Length body), malloc'd. */
static char *read_request(conn *k)
{
    char *end;
    while (!k->buf || !(end = memmem(k->buf, k->len, "\r\n\r\n", 4)))
        if (conn_fill(k))
            return NULL;
    size_t head = (size_t)(end - k->buf) + 4, clen = 0;
    char save = k->buf[head];
    k->buf[head] = 0;
    const char *cl = strcasestr(k->buf, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    k->buf[head] = save;
    while (k->len < head + clen)
        if (conn_fill(k))
            return NULL;
    char *req = malloc(head + clen + 1);
    if (!req)
        return NULL;
    memcpy(req, k->buf, head + clen);
    req[head + clen] = 0;
    conn_consume(k, head + clen);
    return req;
}

static void serve_http(conn *k)
{
    srv *s = k->s;
    for (;;) {
        char *req = read_request(k);
        if (!req)
            break;
        pthread_mutex_lock(&s->mu);
        int n = s->nreq++;
        if (n < MAX_REQS)
            s->req[n] = req;
        pthread_mutex_unlock(&s->mu);
        verdict v = s->fn(s, k->fd, req, n);
        if (n >= MAX_REQS)
            free(req);
        if (v == CLOSED)
            return;
        if (v == CLOSE)
            break;
    }
    close(k->fd);
}

/* One SMTP command line, CRLF removed, into line. */
static int read_line(conn *k, char *line, size_t cap)
{
    char *end;
    while (!k->buf || !(end = memmem(k->buf, k->len, "\r\n", 2)))
        if (conn_fill(k))
            return -1;
    size_t n = (size_t)(end - k->buf);
    snprintf(line, cap, "%.*s", (int)n, k->buf);
    conn_consume(k, n + 2);
    return 0;
}

static void append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s", s);
}

static void serve_smtp(conn *k)
{
    srv *s = k->s;
    char line[1024];
    int fd = k->fd;
    sendf(fd, "220 test.example ESMTP ready\r\n");
    while (!read_line(k, line, sizeof line)) {
        pthread_mutex_lock(&s->mu);
        if (!strncasecmp(line, "EHLO ", 5)) {
            sendf(fd, "250-test.example\r\n%s250 HELP\r\n",
                  s->auth ? "250-AUTH PLAIN\r\n" : "");
        } else if (!strncasecmp(line, "AUTH PLAIN", 10)) {
            const char *arg = line + 10;
            while (*arg == ' ')
                arg++;
            if (!*arg) {
                sendf(fd, "334 \r\n");
                pthread_mutex_unlock(&s->mu);
                if (read_line(k, line, sizeof line))
                    break;
                pthread_mutex_lock(&s->mu);
                arg = line;
            }
            snprintf(s->auth_plain, sizeof s->auth_plain, "%s", arg);
            sendf(fd, "235 2.7.0 Authentication successful\r\n");
        } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            snprintf(s->mail_from, sizeof s->mail_from, "%s", line + 10);
            sendf(fd, "250 2.1.0 OK\r\n");
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            if (s->rcpt[0])
                append(s->rcpt, sizeof s->rcpt, ",");
            append(s->rcpt, sizeof s->rcpt, line + 8);
            if (s->rcpt_code == 550)
                sendf(fd, "550 5.1.1 No such user here\r\n");
            else
                sendf(fd, "250 2.1.5 OK\r\n");
        } else if (!strcasecmp(line, "DATA")) {
            sendf(fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
            pthread_mutex_unlock(&s->mu);
            char data[8192] = "";
            int ok = 0;
            while (!read_line(k, line, sizeof line)) {
                if (!strcmp(line, ".")) {
                    ok = 1;
                    break;
                }
                append(data, sizeof data, line[0] == '.' ? line + 1 : line);
                append(data, sizeof data, "\r\n");
            }
            pthread_mutex_lock(&s->mu);
            if (ok) {
                snprintf(s->data, sizeof s->data, "%s", data);
                sendf(fd, "250 2.0.0 Queued\r\n");
            }
        } else if (!strcasecmp(line, "RSET") || !strcasecmp(line, "NOOP")) {
            sendf(fd, "250 2.0.0 OK\r\n");
        } else if (!strcasecmp(line, "QUIT")) {
            s->quits++;
            sendf(fd, "221 2.0.0 Bye\r\n");
            pthread_mutex_unlock(&s->mu);
            break;
        } else {
            sendf(fd, "502 5.5.2 Command not recognized\r\n");
        }
        pthread_mutex_unlock(&s->mu);
    }
    close(fd);
}

static void *conn_main(void *arg)
{
    conn *k = arg;
    if (k->s->smtp)
        serve_smtp(k);
    else
        serve_http(k);
    free(k->buf);
    free(k);
    return NULL;
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s->accepts, 1);
        conn *k = calloc(1, sizeof *k);
        if (!k || s->nconns == MAX_CONNS) {
            free(k);
            close(fd);
            continue;
        }
        k->s = s;
        k->fd = fd;
        if (pthread_create(&s->conns[s->nconns], NULL, conn_main, k)) {
            free(k);
            close(fd);
            continue;
        }
        s->nconns++;
    }
    for (int i = 0; i < s->nconns; i++)
        pthread_join(s->conns[i], NULL);
    return NULL;
}

/* A TCP socket on 127.0.0.1 and a free port; listening when backlog > 0. */
static int tcp_socket(int *port, int backlog)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (backlog > 0)
        assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Whether a connection waits on a listener nobody accepts on. */
static int pending_conn(int lfd)
{
    int fl = fcntl(lfd, F_GETFL);
    assert_int_equal(fcntl(lfd, F_SETFL, fl | O_NONBLOCK), 0);
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

/* ---- the fixture ------------------------------------------------------- */

#define MAX_RES 8
#define MAX_SRV 4
#define MAX_FDS 4

typedef struct result result;
struct result {
    int calls;
    int in_send_when_called;
    hl_xfer_res res; /* a copy: headers and body are owned */
    char *headers, *body;
    void (*hook)(result *r); /* runs inside the callback */
    int hook_rc;
};

static struct {
    uv_loop_t loop;
    uv_timer_t guard, tick;
    int expired, ticked;
    int loop_closed;
    hl_client *c;
    int client_closed;
    int in_send;
    result res[MAX_RES];
    srv *srvs[MAX_SRV];
    int nsrv;
    int fds[MAX_FDS];
    int nfds;
    pid_t pid; /* openssl s_server */
    int pid_out;
} g;

static void on_done(void *ud, const hl_xfer_res *r)
{
    result *o = ud;
    /* uv_run(UV_RUN_ONCE) would otherwise go on to wait for I/O. */
    uv_stop(&g.loop);
    o->calls++;
    o->in_send_when_called |= g.in_send;
    if (o->calls > 1)
        return;
    if (getenv("HL_TEST_VERBOSE"))
        fprintf(stderr, "  result: %s status %d \"%s\" ip %s %zu bytes\n",
                hl_xfer_error_name(r->error), r->status, r->error_text,
                r->primary_ip, r->body_len);
    o->res = *r;
    o->headers = strdup(r->headers);
    o->body = malloc(r->body_len + 1);
    if (o->body) {
        memcpy(o->body, r->body, r->body_len);
        o->body[r->body_len] = 0;
    }
    o->res.headers = o->headers;
    o->res.body = o->body;
    if (o->hook)
        o->hook(o);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    g.expired = 1;
    uv_stop(&g.loop);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    g.ticked = 1;
    uv_stop(&g.loop);
}

static void run_until(const int *flag)
{
    g.expired = 0;
    assert_int_equal(uv_timer_start(&g.guard, on_guard, WAIT_MS, 0), 0);
    while (!*flag && !g.expired)
        uv_run(&g.loop, UV_RUN_ONCE);
    uv_timer_stop(&g.guard);
    assert_false(g.expired);
}

static void run_for(uint64_t ms)
{
    g.ticked = 0;
    assert_int_equal(uv_timer_start(&g.tick, on_tick, ms, 0), 0);
    run_until(&g.ticked);
}

static void wait_done(result *r)
{
    run_until(&r->calls);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->in_send_when_called, 0);
}

static void send_ok(const hl_xfer_req *req, result *r)
{
    g.in_send = 1;
    int rc = hl_client_send(g.c, req, on_done, r);
    g.in_send = 0;
    assert_int_equal(rc, 0);
}

static void close_client(void)
{
    if (!g.client_closed) {
        g.client_closed = 1;
        hl_client_close(g.c);
    }
}

/* Close the client and the loop: uv_loop_close() must find nothing open. */
static void close_loop(void)
{
    close_client();
    if (g.loop_closed)
        return;
    g.loop_closed = 1;
    uv_close((uv_handle_t *)&g.guard, NULL);
    uv_close((uv_handle_t *)&g.tick, NULL);
    /* A callback's uv_stop() may end a run early: run again. */
    int alive = 1;
    for (int i = 0; i < 10 && alive; i++)
        alive = uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_int_equal(alive, 0);
    assert_int_equal(uv_loop_close(&g.loop), 0);
}

static srv *srv_start(srv_fn fn, int smtp)
{
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_true(g.nsrv < MAX_SRV);
    g.srvs[g.nsrv++] = s;
    s->fn = fn;
    s->smtp = smtp;
    s->rcpt_code = 250;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = tcp_socket(&s->port, 64);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    s->running = 1;
    return s;
}

/* Stop and join every thread: what s saw can be read after. */
static void srv_stop(srv *s)
{
    if (!s->running)
        return;
    s->running = 0;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static void srv_free(srv *s)
{
    srv_stop(s);
    for (int i = 0; i < s->nreq && i < MAX_REQS; i++)
        free(s->req[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A listener nobody accepts on: connections complete, nothing answers. */
static int silent_listener(int *port)
{
    assert_true(g.nfds < MAX_FDS);
    return g.fds[g.nfds++] = tcp_socket(port, 64);
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    g.pid = -1;
    g.pid_out = -1;
    if (uv_loop_init(&g.loop) || uv_timer_init(&g.loop, &g.guard) ||
        uv_timer_init(&g.loop, &g.tick))
        return -1;
    return hl_client_create(&g.loop, &g.c) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    close_loop();
    for (int i = 0; i < g.nsrv; i++)
        srv_free(g.srvs[i]);
    for (int i = 0; i < g.nfds; i++)
        close(g.fds[i]);
    for (int i = 0; i < MAX_RES; i++) {
        free(g.res[i].headers);
        free(g.res[i].body);
    }
    if (g.pid > 0) {
        kill(g.pid, SIGTERM);
        waitpid(g.pid, NULL, 0);
    }
    if (g.pid_out >= 0)
        close(g.pid_out);
    return 0;
}

static hl_xfer_req http_req(const char *method, const char *url)
{
    hl_xfer_req r;
    memset(&r, 0, sizeof r);
    r.kind = HL_XFER_HTTP;
    r.method = method;
    r.url = url;
    r.timeout_ms = 10000;
    return r;
}

static const char *header(const result *r, const char *name)
{
    static char buf[256];
    return hl_xfer_header(&r->res, name, buf, sizeof buf);
}

/* The value of a request header as the server saw it, or NULL. */
static const char *req_header(const char *req, const char *name, char *out,
                              size_t cap)
{
    hl_xfer_res fake;
    memset(&fake, 0, sizeof fake);
    fake.headers = req;
    return hl_xfer_header(&fake, name, out, cap);
}

static const char *req_body(const char *req)
{
    const char *p = strstr(req, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* ---- handlers -------------------------------------------------------- */

static verdict h_ok(srv *s, int fd, const char *req, int n)
{
    (void)s, (void)req, (void)n;
    sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "X-Request-Id:  abc-123 \r\nContent-Length: 11\r\n\r\n"
              "{\"ok\":true}");
    return KEEP;
}

static verdict h_503(srv *s, int fd, const char *req, int n)
{
    (void)s, (void)req, (void)n;
    sendf(fd, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n"
              "Content-Length: 4\r\n\r\nbusy");
    return KEEP;
}

static verdict h_reset(srv *s, int fd, const char *req, int n)
{
    (void)s, (void)req, (void)n;
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
    return CLOSED;
}

static verdict h_empty(srv *s, int fd, const char *req, int n)
{
    (void)s, (void)fd, (void)req, (void)n;
    return CLOSE;
}

static char pattern(size_t i)
{
    return (char)('a' + i % 26);
}

static verdict h_big(srv *s, int fd, const char *req, int n)
{
    (void)req, (void)n;
    char chunk[16384];
    sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", s->big_len);
    for (size_t off = 0; off < s->big_len;) {
        size_t k =
            s->big_len - off < sizeof chunk ? s->big_len - off : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = pattern(off + i);
        if (send_all(fd, chunk, k))
            return CLOSE; /* the client stopped reading */
        off += k;
    }
    return KEEP;
}

static verdict h_redirect(srv *s, int fd, const char *req, int n)
{
    (void)n;
    if (strstr(req, " /redir "))
        sendf(fd,
              "HTTP/1.1 302 Found\r\nLocation: %s\r\nX-Hop: 1\r\n"
              "Content-Length: 5\r\n\r\nmoved",
              s->location);
    else
        sendf(fd, "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\n"
                  "\r\nfinal");
    return KEEP;
}

/* ---- HTTP ------------------------------------------------------------ */

static void test_post_200_body_and_headers(void **state)
{
    (void)state;
    srv *s = srv_start(h_ok, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook?x=1", s->port);
    const hl_header h[] = {{"Content-Type", "application/json"},
                           {"X-Custom", "yes"},
                           {"X-Empty", ""}};
    hl_xfer_req req = http_req("POST", url);
    req.headers = h;
    req.n_headers = 3;
    req.body = "{\"a\":1,\"b\":\"two\"}";
    req.body_len = strlen(req.body);
    result *r = &g.res[0];
    send_ok(&req, r);
    assert_int_equal(hl_client_active(g.c), 1);
    wait_done(r);
    assert_int_equal(hl_client_active(g.c), 0);

    assert_int_equal(r->res.error, HL_XERR_NONE);
    assert_string_equal(r->res.error_text, "");
    assert_int_equal(r->res.status, 200);
    assert_string_equal(r->res.body, "{\"ok\":true}");
    assert_int_equal(r->res.body_len, 11);
    assert_false(r->res.truncated);
    assert_string_equal(r->res.primary_ip, "127.0.0.1");
    assert_true(r->res.duration_us > 0);
    assert_string_equal(header(r, "content-type"), "application/json");
    assert_string_equal(header(r, "X-REQUEST-ID"), "abc-123");
    assert_null(header(r, "X-Missing"));
    assert_null(header(r, "Content")); /* a prefix is not a name */

    srv_stop(s);
    assert_int_equal(s->nreq, 1);
    const char *got = s->req[0];
    char v[256];
    assert_true(!strncmp(got, "POST /hook?x=1 HTTP/1.1\r\n", 25));
    assert_string_equal(req_header(got, "x-custom", v, sizeof v), "yes");
    assert_string_equal(req_header(got, "X-Empty", v, sizeof v), "");
    assert_string_equal(req_header(got, "Content-Type", v, sizeof v),
                        "application/json");
    assert_string_equal(req_header(got, "Content-Length", v, sizeof v), "17");
    assert_null(req_header(got, "Expect", v, sizeof v));
    assert_string_equal(req_body(got), "{\"a\":1,\"b\":\"two\"}");
}

static void test_methods_as_sent(void **state)
{
    (void)state;
    srv *s = srv_start(h_ok, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/m", s->port);
    const char *methods[] = {"PUT", "patch", "DELETE", "GET", "POST"};
    for (int i = 0; i < 5; i++) {
        hl_xfer_req req = http_req(methods[i], url);
        if (i < 2) {
            req.body = "data";
            req.body_len = 4;
        }
        send_ok(&req, &g.res[i]);
        wait_done(&g.res[i]);
        assert_int_equal(g.res[i].res.error, HL_XERR_NONE);
        assert_int_equal(g.res[i].res.status, 200);
    }
    srv_stop(s);
    assert_int_equal(s->nreq, 5);
    char v[256];
    assert_true(!strncmp(s->req[0], "PUT /m HTTP/1.1\r\n", 17));
    assert_string_equal(req_body(s->req[0]), "data");
    assert_true(!strncmp(s->req[1], "PATCH /m HTTP/1.1\r\n", 19));
    assert_string_equal(req_body(s->req[1]), "data");
    assert_true(!strncmp(s->req[2], "DELETE /m HTTP/1.1\r\n", 20));
    assert_null(req_header(s->req[2], "Content-Length", v, sizeof v));
    assert_true(!strncmp(s->req[3], "GET /m HTTP/1.1\r\n", 17));
    assert_null(req_header(s->req[3], "Content-Length", v, sizeof v));
    /* An empty POST; no Content-Type was given, so none is made up. */
    assert_true(!strncmp(s->req[4], "POST /m HTTP/1.1\r\n", 18));
    assert_string_equal(req_header(s->req[4], "Content-Length", v, sizeof v),
                        "0");
    assert_null(req_header(s->req[4], "Content-Type", v, sizeof v));
}

/* libcurl would ask "Expect: 100-continue" before a body over 1 MiB and
 * wait a second for the answer. */
static void test_large_post_without_expect(void **state)
{
    (void)state;
    srv *s = srv_start(h_ok, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", s->port);
    size_t len = 2 * 1024 * 1024;
    char *body = malloc(len);
    assert_non_null(body);
    for (size_t i = 0; i < len; i++)
        body[i] = pattern(i);
    hl_xfer_req req = http_req("POST", url);
    req.body = body;
    req.body_len = len;
    send_ok(&req, &g.res[0]);
    free(body); /* the client copied it */
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 200);
    srv_stop(s);
    char v[256];
    assert_int_equal(s->nreq, 1);
    assert_null(req_header(s->req[0], "Expect", v, sizeof v));
    const char *got = req_body(s->req[0]);
    assert_int_equal(strlen(got), len);
    for (size_t i = 0; i < len; i += 4097)
        assert_int_equal(got[i], pattern(i));
}

static char reuse_url[128];

static void send_second(result *r)
{
    hl_xfer_req req = http_req("POST", reuse_url);
    req.body = "two";
    req.body_len = 3;
    r->hook_rc = hl_client_send(g.c, &req, on_done, &g.res[1]);
}

/* The second transfer, sent from the first one's callback, goes over the
 * first one's connection. */
static void test_connection_reused(void **state)
{
    (void)state;
    srv *s = srv_start(h_ok, 0);
    snprintf(reuse_url, sizeof reuse_url, "http://127.0.0.1:%d/r", s->port);
    hl_xfer_req req = http_req("POST", reuse_url);
    req.body = "one";
    req.body_len = 3;
    g.res[0].hook = send_second;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].hook_rc, 0);
    wait_done(&g.res[1]);
    assert_int_equal(g.res[0].res.status, 200);
    assert_int_equal(g.res[1].res.status, 200);
    assert_int_equal(g.res[1].res.error, HL_XERR_NONE);
    srv_stop(s);
    assert_int_equal(s->nreq, 2);
    assert_int_equal(atomic_load(&s->accepts), 1);
    assert_string_equal(req_body(s->req[0]), "one");
    assert_string_equal(req_body(s->req[1]), "two");
}

static void test_503_retry_after(void **state)
{
    (void)state;
    srv *s = srv_start(h_503, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    hl_xfer_req req = http_req("POST", url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 503);
    assert_string_equal(header(&g.res[0], "retry-after"), "120");
    assert_string_equal(g.res[0].res.body, "busy");
}

static void test_timeout(void **state)
{
    (void)state;
    int port;
    silent_listener(&port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("POST", url);
    req.timeout_ms = 300;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_TIMEOUT);
    assert_int_equal(g.res[0].res.status, 0);
    assert_true(g.res[0].res.duration_us >= 250000);
    assert_non_null(strstr(g.res[0].res.error_text, "timed out"));
}

static void test_refused(void **state)
{
    (void)state;
    int port;
    /* Bound, never listening: a connection gets a reset at once. */
    assert_true(g.nfds < MAX_FDS);
    g.fds[g.nfds++] = tcp_socket(&port, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("POST", url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_REFUSED);
    assert_string_equal(hl_xfer_error_name(g.res[0].res.error), "refused");
    assert_int_equal(g.res[0].res.status, 0);
    assert_true(g.res[0].res.error_text[0]);
}

static void test_reset(void **state)
{
    (void)state;
    srv *s = srv_start(h_reset, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    hl_xfer_req req = http_req("POST", url);
    req.body = "x";
    req.body_len = 1;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_RESET);
    assert_int_equal(g.res[0].res.status, 0);
    assert_non_null(strstr(g.res[0].res.error_text, "reset"));
    srv_stop(s);
    assert_int_equal(s->nreq, 1);
}

static void test_empty_reply(void **state)
{
    (void)state;
    srv *s = srv_start(h_empty, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    hl_xfer_req req = http_req("POST", url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_RESET);
    assert_non_null(strstr(g.res[0].res.error_text, "Empty reply"));
}

static void check_truncated(size_t big, size_t max, size_t kept)
{
    srv *s = srv_start(h_big, 0);
    s->big_len = big;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    hl_xfer_req req = http_req("GET", url);
    req.max_response = max;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    const hl_xfer_res *r = &g.res[0].res;
    assert_int_equal(r->error, HL_XERR_NONE);
    assert_string_equal(r->error_text, "");
    assert_int_equal(r->status, 200);
    assert_true(r->truncated);
    assert_int_equal(r->body_len, kept);
    for (size_t i = 0; i < kept; i++)
        assert_int_equal(r->body[i], pattern(i));
    assert_int_equal(r->body[kept], 0);
}

static void test_truncated_body(void **state)
{
    (void)state;
    check_truncated(100000, 1000, 1000);
}

static void test_truncated_default_64k(void **state)
{
    (void)state;
    check_truncated(70000, 0, 65536);
}

/* Far past max_response the client stops reading: still an answer. */
static void test_truncated_stops_reading(void **state)
{
    (void)state;
    check_truncated(4 * 1024 * 1024, 1000, 1000);
}

/* ---- the address check ----------------------------------------------- */

static int check_calls;

static int guard_check(void *ud, const struct sockaddr *sa, char *why,
                       size_t whylen)
{
    (void)ud;
    check_calls++;
    return hl_addr_refused(sa, NULL, 0, why, whylen);
}

static void test_blocked_never_connects(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("POST", url);
    req.check_addr = guard_check;
    check_calls = 0;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_BLOCKED);
    assert_string_equal(hl_xfer_error_name(HL_XERR_BLOCKED), "blocked");
    assert_true(!strncmp(g.res[0].res.error_text,
                         "127.0.0.1 is a loopback address (127.0.0.0/8)", 45));
    assert_non_null(strstr(g.res[0].res.error_text, "outbound.allow_networks"));
    assert_true(check_calls >= 1);
    assert_false(pending_conn(lfd));
}

/* A connection opened by a transfer without the check is judged again
 * when a transfer with it would reuse the connection. */
static void test_blocked_on_reused_connection(void **state)
{
    (void)state;
    srv *s = srv_start(h_ok, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    hl_xfer_req req = http_req("POST", url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.status, 200);
    req.check_addr = guard_check;
    send_ok(&req, &g.res[1]);
    wait_done(&g.res[1]);
    assert_int_equal(g.res[1].res.error, HL_XERR_BLOCKED);
    assert_non_null(strstr(g.res[1].res.error_text, "loopback"));
    srv_stop(s);
    assert_int_equal(s->nreq, 1);
}

static int blocked_port;

static int port_check(void *ud, const struct sockaddr *sa, char *why,
                      size_t whylen)
{
    (void)ud;
    int port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    check_calls++;
    if (port != blocked_port)
        return 0;
    snprintf(why, whylen, "port %d is not for you", port);
    return 1;
}

static void test_redirect_followed(void **state)
{
    (void)state;
    srv *s = srv_start(h_redirect, 0);
    snprintf(s->location, sizeof s->location, "/final");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redir", s->port);
    hl_xfer_req req = http_req("POST", url);
    req.body = "keep me";
    req.body_len = 7;
    req.follow_redirects = 3;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    const result *r = &g.res[0];
    assert_int_equal(r->res.error, HL_XERR_NONE);
    assert_int_equal(r->res.status, 200);
    assert_string_equal(r->res.body, "final");
    /* Only the last response's headers. */
    assert_string_equal(header(r, "X-Final"), "yes");
    assert_null(header(r, "Location"));
    assert_null(header(r, "X-Hop"));
    srv_stop(s);
    assert_int_equal(s->nreq, 2);
    /* A POST stays a POST, with its body, after a 302. */
    assert_true(!strncmp(s->req[1], "POST /final ", 12));
    assert_string_equal(req_body(s->req[1]), "keep me");
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    srv *s = srv_start(h_redirect, 0);
    snprintf(s->location, sizeof s->location, "/final");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redir", s->port);
    hl_xfer_req req = http_req("POST", url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 302);
    assert_string_equal(header(&g.res[0], "location"), "/final");
    srv_stop(s);
    assert_int_equal(s->nreq, 1);
}

static void test_too_many_redirects_is_the_last_answer(void **state)
{
    (void)state;
    srv *s = srv_start(h_redirect, 0);
    snprintf(s->location, sizeof s->location, "/redir");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redir", s->port);
    hl_xfer_req req = http_req("GET", url);
    req.follow_redirects = 2;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 302);
    assert_non_null(strstr(g.res[0].res.error_text, "redirect"));
    srv_stop(s);
    assert_int_equal(s->nreq, 3);
}

static void test_redirect_target_blocked(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    srv *s = srv_start(h_redirect, 0);
    snprintf(s->location, sizeof s->location, "http://127.0.0.1:%d/x", port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redir", s->port);
    hl_xfer_req req = http_req("POST", url);
    req.follow_redirects = 3;
    req.check_addr = port_check;
    blocked_port = port;
    check_calls = 0;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_BLOCKED);
    char want[64];
    snprintf(want, sizeof want, "port %d is not for you", port);
    assert_string_equal(g.res[0].res.error_text, want);
    assert_true(check_calls >= 2);
    assert_false(pending_conn(lfd));
    srv_stop(s);
    assert_int_equal(s->nreq, 1);
}

/* ---- SMTP ------------------------------------------------------------ */

#define MESSAGE                                                                \
    "From: Hookline <hookline@example.org>\r\n"                                \
    "To: a@example.net, b@example.net\r\n"                                     \
    "Subject: hello\r\n"                                                       \
    "\r\n"                                                                     \
    "first line\r\n"                                                           \
    ".a line that starts with a dot\r\n"

static hl_xfer_req smtp_req(const char *url)
{
    static const char *const rcpt[] = {"<a@example.net>", "<b@example.net>"};
    hl_xfer_req r;
    memset(&r, 0, sizeof r);
    r.kind = HL_XFER_SMTP;
    r.url = url;
    r.timeout_ms = 10000;
    r.mail_from = "<hookline@example.org>";
    r.rcpt = rcpt;
    r.n_rcpt = 2;
    r.body = MESSAGE;
    r.body_len = strlen(MESSAGE);
    return r;
}

static void test_smtp_delivers(void **state)
{
    (void)state;
    srv *s = srv_start(NULL, 1);
    char url[128];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s->port);
    hl_xfer_req req = smtp_req(url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_string_equal(g.res[0].res.error_text, "");
    assert_int_equal(g.res[0].res.status, 250);
    assert_string_equal(g.res[0].res.primary_ip, "127.0.0.1");
    /* The cached connection says QUIT when the client closes. */
    close_loop();
    srv_stop(s);
    assert_string_equal(s->mail_from, "<hookline@example.org>");
    assert_string_equal(s->rcpt, "<a@example.net>,<b@example.net>");
    assert_string_equal(s->data, MESSAGE);
    assert_string_equal(s->auth_plain, "");
    assert_int_equal(s->quits, 1);
}

static void test_smtp_auth_plain(void **state)
{
    (void)state;
    srv *s = srv_start(NULL, 1);
    s->auth = 1;
    char url[128];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s->port);
    hl_xfer_req req = smtp_req(url);
    req.username = "user";
    req.password = "pass";
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 250);
    srv_stop(s);
    /* base64("\0user\0pass") */
    assert_string_equal(s->auth_plain, "AHVzZXIAcGFzcw==");
    assert_string_equal(s->data, MESSAGE);
}

/* A refused recipient is the server's answer, like an HTTP 5xx. */
static void test_smtp_rcpt_550(void **state)
{
    (void)state;
    srv *s = srv_start(NULL, 1);
    s->rcpt_code = 550;
    char url[128];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s->port);
    hl_xfer_req req = smtp_req(url);
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.status, 550);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_non_null(strstr(g.res[0].res.error_text, "RCPT"));
    srv_stop(s);
    assert_string_equal(s->data, "");
}

/* ---- closing --------------------------------------------------------- */

static void send_while_closing(result *r)
{
    hl_xfer_req req = http_req("GET", "http://127.0.0.1:1/");
    r->hook_rc = hl_client_send(g.c, &req, on_done, &g.res[7]);
}

static void test_close_aborts_in_flight(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("POST", url);
    for (int i = 0; i < 3; i++)
        send_ok(&req, &g.res[i]);
    g.res[0].hook = send_while_closing;
    run_for(100); /* connected and sent, waiting for answers */
    assert_int_equal(hl_client_active(g.c), 3);
    send_ok(&req, &g.res[3]); /* not even started */
    close_client();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g.res[i].calls, 1);
        assert_int_equal(g.res[i].res.error, HL_XERR_ABORTED);
        assert_string_equal(hl_xfer_error_name(g.res[i].res.error), "aborted");
    }
    assert_int_equal(g.res[0].hook_rc, HL_ESHUTDOWN);
    assert_int_equal(g.res[7].calls, 0);
    close_loop(); /* uv_loop_close() == 0 */
    (void)lfd;
}

static void close_from_cb(result *r)
{
    (void)r;
    close_client();
}

static void test_close_from_a_callback(void **state)
{
    (void)state;
    int port;
    silent_listener(&port);
    srv *s = srv_start(h_ok, 0);
    char url[128], hang[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    snprintf(hang, sizeof hang, "http://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("POST", hang);
    send_ok(&req, &g.res[1]);
    req = http_req("POST", url);
    g.res[0].hook = close_from_cb;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.status, 200);
    assert_int_equal(g.res[1].calls, 1);
    assert_int_equal(g.res[1].res.error, HL_XERR_ABORTED);
    close_loop();
}

/* ---- requests refused up front ----------------------------------------- */

static void test_send_rejects_bad_requests(void **state)
{
    (void)state;
    const hl_header crlf[] = {{"X-A", "1\r\nX-Injected: 2"}};
    const hl_header colon[] = {{"X:A", "1"}};
    const hl_header semicolon[] = {{"X;A", ""}};
    const hl_header empty_name[] = {{"", "1"}};
    static const char *const bad_rcpt[] = {"<a@example.net>\r\nDATA"};
    hl_xfer_req req = http_req("POST", "http://127.0.0.1:1/");
    req.kind = 7;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req = http_req("FETCH", "http://127.0.0.1:1/");
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req = http_req(NULL, "http://127.0.0.1:1/");
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req = http_req("POST", "http://127.0.0.1:1/");
    req.headers = crlf;
    req.n_headers = 1;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req.headers = colon;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req.headers = semicolon;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req.headers = empty_name;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req = smtp_req("smtp://127.0.0.1:1");
    req.n_rcpt = 0;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    req = smtp_req("smtp://127.0.0.1:1");
    req.rcpt = bad_rcpt;
    req.n_rcpt = 1;
    assert_int_equal(hl_client_send(g.c, &req, on_done, &g.res[0]), HL_ERANGE);
    assert_int_equal(hl_client_active(g.c), 0);
    close_loop();
    assert_int_equal(g.res[0].calls, 0);
}

/* An http:// transfer may not go elsewhere, nor smtp:// be given to HTTP. */
static void test_scheme_must_match_kind(void **state)
{
    (void)state;
    hl_xfer_req req = http_req("GET", "file:///etc/passwd");
    send_ok(&req, &g.res[0]);
    req = http_req("GET", "smtp://127.0.0.1:1/");
    send_ok(&req, &g.res[1]);
    wait_done(&g.res[0]);
    wait_done(&g.res[1]);
    assert_int_equal(g.res[0].res.error, HL_XERR_OTHER);
    assert_int_equal(g.res[1].res.error, HL_XERR_OTHER);
    assert_true(g.res[0].res.error_text[0]);
}

/* ---- small functions ----------------------------------------------- */

static void test_header_lookup(void **state)
{
    (void)state;
    hl_xfer_res r;
    char buf[16];
    memset(&r, 0, sizeof r);
    r.headers = "HTTP/1.1 200 OK\r\n"
                "Content-Type:text/plain\r\n"
                "X-Long: 0123456789abcdefghij\r\n"
                "X-Folded: one\r\n"
                "\t two\r\n"
                "Set-Cookie: a=1\r\n"
                "Set-Cookie: b=2\r\n"
                "X-Blank:   \r\n"
                "\r\n";
    assert_string_equal(hl_xfer_header(&r, "CONTENT-TYPE", buf, sizeof buf),
                        "text/plain");
    assert_string_equal(hl_xfer_header(&r, "x-long", buf, sizeof buf),
                        "0123456789abcde");
    assert_string_equal(hl_xfer_header(&r, "X-Folded", buf, sizeof buf),
                        "one two");
    assert_string_equal(hl_xfer_header(&r, "set-cookie", buf, sizeof buf),
                        "a=1");
    assert_string_equal(hl_xfer_header(&r, "X-Blank", buf, sizeof buf), "");
    assert_null(hl_xfer_header(&r, "Content", buf, sizeof buf));
    assert_null(hl_xfer_header(&r, "HTTP/1.1 200 OK", buf, sizeof buf));
    assert_null(hl_xfer_header(&r, "X-Long", buf, 0));
    r.headers = "";
    assert_null(hl_xfer_header(&r, "Content-Type", buf, sizeof buf));
    close_loop();
}

static void test_error_names(void **state)
{
    (void)state;
    static const char *const want[] = {
        "none", "timeout", "dns",      "refused", "reset",
        "tls",  "blocked", "protocol", "aborted", "other",
    };
    for (int i = HL_XERR_NONE; i <= HL_XERR_OTHER; i++)
        assert_string_equal(hl_xfer_error_name(i), want[i]);
    assert_string_equal(hl_xfer_error_name(-1), "unknown");
    assert_string_equal(hl_xfer_error_name(HL_XERR_OTHER + 1), "unknown");
    close_loop();
}

/* A name under .invalid never resolves (RFC 6761). Where the resolver
 * cannot even say so in time, the test is skipped, not failed. */
static void test_dns_failure(void **state)
{
    (void)state;
    hl_xfer_req req = http_req("POST", "http://hookline-test.invalid./");
    req.timeout_ms = 3000;
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    if (g.res[0].res.error == HL_XERR_TIMEOUT)
        skip();
    assert_int_equal(g.res[0].res.error, HL_XERR_DNS);
    assert_non_null(strstr(g.res[0].res.error_text, "hookline-test.invalid"));
}

/* ---- TLS, against openssl s_server ------------------------------------- */

static int have_openssl(void)
{
    return !system("openssl version >/dev/null 2>&1");
}

/* Start `openssl s_server -www` on host and a free port; 0 if there is no
 * openssl. verify: "-Verify" (a client certificate is required) or NULL. */
static int tls_server(const char *host, const char *verify)
{
    int out[2];
    if (!have_openssl())
        return 0;
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char accept[64];
    snprintf(accept, sizeof accept, "%s:0", host);
    char *argv[] = {"openssl",
                    "s_server",
                    "-www",
                    "-accept",
                    accept,
                    "-cert",
                    TLS_DIR "/server.pem",
                    "-key",
                    TLS_DIR "/server.key",
                    "-CAfile",
                    TLS_DIR "/ca.pem",
                    (char *)verify,
                    "1",
                    NULL};
    extern char **environ;
    int rc = posix_spawnp(&g.pid, "openssl", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    g.pid_out = out[0];
    assert_int_equal(rc, 0);
    /* It prints "ACCEPT host:port" once it listens. */
    char want[64], buf[512] = "";
    size_t len = 0;
    const char *a;
    snprintf(want, sizeof want, "ACCEPT %s:", host);
    while (!(a = strstr(buf, want)) || !strchr(a, '\n')) {
        struct pollfd p = {out[0], POLLIN, 0};
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        ssize_t n = read(out[0], buf + len, sizeof buf - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = 0;
    }
    int port = atoi(a + strlen(want));
    assert_true(port > 0);
    return port;
}

static void test_tls_files_exist(void **state)
{
    (void)state;
    const char *files[] = {"ca.pem",     "server.pem", "server.key",
                           "client.pem", "client.key", "README.md"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, TLS_DIR "/%s", files[i]);
        if (access(path, R_OK))
            fail_msg("%s is missing (run the tests from the repository root)",
                     path);
    }
    close_loop();
}

static void test_tls_verified_with_client_cert(void **state)
{
    (void)state;
    int port = tls_server("127.0.0.1", "-Verify");
    if (!port)
        skip();
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("GET", url);
    req.ca_file = TLS_DIR "/ca.pem";
    req.client_cert = TLS_DIR "/client.pem";
    req.client_key = TLS_DIR "/client.key";
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[0].res.status, 200);
    /* s_server -www describes the session, client certificate included. */
    assert_non_null(strstr(g.res[0].res.body, "hookline test client"));

    /* Without the CA the server's certificate is not trusted. */
    req.ca_file = NULL;
    send_ok(&req, &g.res[1]);
    wait_done(&g.res[1]);
    assert_int_equal(g.res[1].res.error, HL_XERR_TLS);
    assert_true(g.res[1].res.error_text[0]);

    /* insecure skips the check. */
    req.insecure = 1;
    send_ok(&req, &g.res[2]);
    wait_done(&g.res[2]);
    assert_int_equal(g.res[2].res.error, HL_XERR_NONE);
    assert_int_equal(g.res[2].res.status, 200);
}

static void test_tls_client_cert_required(void **state)
{
    (void)state;
    int port = tls_server("127.0.0.1", "-Verify");
    if (!port)
        skip();
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
    hl_xfer_req req = http_req("GET", url);
    req.ca_file = TLS_DIR "/ca.pem";
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_TLS);
    assert_int_equal(g.res[0].res.status, 0);
}

static void test_tls_name_mismatch(void **state)
{
    (void)state;
    /* The certificate names 127.0.0.1, ::1 and localhost, not 127.0.0.2. */
    int port = tls_server("127.0.0.2", NULL);
    if (!port)
        skip();
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.2:%d/", port);
    hl_xfer_req req = http_req("GET", url);
    req.ca_file = TLS_DIR "/ca.pem";
    send_ok(&req, &g.res[0]);
    wait_done(&g.res[0]);
    assert_int_equal(g.res[0].res.error, HL_XERR_TLS);
    assert_non_null(strstr(g.res[0].res.error_text, "127.0.0.2"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    /* Loopback only: no proxy from the environment. */
    const char *proxies[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                             "HTTPS_PROXY", "all_proxy",   "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++)
        unsetenv(proxies[i]);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_post_200_body_and_headers),
        T(test_methods_as_sent),
        T(test_large_post_without_expect),
        T(test_connection_reused),
        T(test_503_retry_after),
        T(test_timeout),
        T(test_refused),
        T(test_reset),
        T(test_empty_reply),
        T(test_truncated_body),
        T(test_truncated_default_64k),
        T(test_truncated_stops_reading),
        T(test_blocked_never_connects),
        T(test_blocked_on_reused_connection),
        T(test_redirect_followed),
        T(test_redirect_not_followed),
        T(test_too_many_redirects_is_the_last_answer),
        T(test_redirect_target_blocked),
        T(test_smtp_delivers),
        T(test_smtp_auth_plain),
        T(test_smtp_rcpt_550),
        T(test_close_aborts_in_flight),
        T(test_close_from_a_callback),
        T(test_send_rejects_bad_requests),
        T(test_scheme_must_match_kind),
        T(test_header_lookup),
        T(test_error_names),
        T(test_dns_failure),
        T(test_tls_files_exist),
        T(test_tls_verified_with_client_cert),
        T(test_tls_client_cert_required),
        T(test_tls_name_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
