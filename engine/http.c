/* http.c - the HTTP/1.1 server on libuv: connections, parsing, limits, ordered replies. */
#include "http.h"

#include "buf.h"
#include "err.h"
#include "jsontext.h"
#include "log.h"

#include <http_parser.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADER_BYTES (16 * 1024)
#define MAX_PIPELINED 64
#define READ_BUF (64 * 1024)
/* How long a closed upgraded connection may take to flush its writes. */
#define RAW_CLOSE_MS 2000

typedef struct conn conn;

/* One request from its first byte to its answer being written. */
typedef struct pending {
    hl_http_req req;
    conn *c; /* NULL once the connection is gone (orphan) */
    struct pending *next;
    hl_buf url;
    hl_buf body;
    /* Header names and values, NUL-separated, in one buffer; the offsets
     * become pointers once the headers are complete. */
    hl_buf hdr;
    size_t *hoff; /* name and value offsets: 2 per header */
    size_t hoff_cap;
    int headers_done; /* later header callbacks are chunked trailers */
    char *out; /* the answer, once ready */
    size_t out_len;
    int done;
    int close_after;
    int upgrade;    /* the parser saw an upgrade request */
    int switch_raw; /* the answer is a 101: the connection is handed over */
} pending;

/* Where a connection stands with hl_http_upgrade. */
enum {
    UP_NONE,
    UP_WAITING,   /* the 101 waits behind earlier answers */
    UP_SWITCHING, /* the 101 is written; reading starts from a 0 ms timer */
    UP_LIVE       /* bytes read go to the owner */
};

struct hl_http_raw {
    conn *c;
    hl_http_raw_cbs cbs;
    void *ud;
    hl_buf early;    /* written before the 101 could go out */
    size_t queued;   /* bytes handed to libuv and not yet written */
    int close_asked; /* hl_http_raw_close, or the peer's EOF */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    hl_http_server *srv;
    hl_http_limits lim;
    pending *cur;          /* being parsed */
    pending *head, *tail;  /* parsed, answered in this order */
    size_t npending;
    size_t header_bytes;
    int last_was_value;
    int in_headers;
    int err_status; /* set by a callback that stops the parser */
    int reading;
    int closing;
    int close_when_flushed;
    int writes;
    int handles;
    int upgrade_parsed; /* no more HTTP is read after an upgrade request */
    int up;             /* UP_* */
    hl_http_raw raw;
    char *rest; /* bytes read after the upgrade request, for the owner */
    size_t rest_len;
    conn *prev, *next;
};

struct hl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    hl_http_limits lim;
    hl_http_handler handler;
    void *ud;
    conn *conns;
    size_t nconns;
    int shutting_down;
    void (*done)(hl_http_server *, void *);
    void *done_ud;
    http_parser_settings settings;
    char readbuf[READ_BUF];
    int readbuf_busy;
};

typedef struct {
    uv_write_t w;
    conn *c;
    char *data;
    size_t len;
    int raw; /* counted in the owner's hl_http_raw.queued */
} write_req;

static void conn_close(conn *c);
static void conn_flush(conn *c);
static void conn_arm(conn *c);
static void conn_resume(conn *c);
static void maybe_done(hl_http_server *srv);
static void on_timer(uv_timer_t *t);
static void raw_switch(conn *c);
static void raw_start(conn *c);
static void raw_read(conn *c, ssize_t nread, const uv_buf_t *buf);
static void keep_rest(conn *c, const char *data, size_t len);

const char *hl_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- requests ------------------------------------------------------------ */

static void pending_free(pending *p)
{
    free(p->req.headers);
    hl_buf_free(&p->hdr);
    free(p->hoff);
    hl_buf_free(&p->body);
    hl_buf_free(&p->url);
    free(p->out);
    free(p);
}

static int on_message_begin(http_parser *hp)
{
    conn *c = hp->data;
    c->cur = calloc(1, sizeof *c->cur);
    if (!c->cur) {
        c->err_status = 503;
        return -1;
    }
    c->cur->c = c;
    c->header_bytes = 0;
    c->last_was_value = 0;
    c->in_headers = 1;
    conn_arm(c); /* the header deadline runs from the first byte */
    return 0;
}

static int count_header_bytes(conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    conn *c = hp->data;
    if (count_header_bytes(c, n))
        return -1;
    hl_buf_put(&c->cur->url, at, n);
    if (c->cur->url.oom) {
        c->err_status = 503;
        return -1;
    }
    return 0;
}

/* Start a name (which = 0) or a value (which = 1) at the current end. */
static int hstart(pending *p, int which)
{
    size_t i = 2 * p->req.n_headers + (size_t)which;
    if (which == 0) {
        if (i + 2 > p->hoff_cap) {
            size_t cap = p->hoff_cap ? p->hoff_cap * 2 : 32;
            size_t *o = realloc(p->hoff, cap * sizeof *o);
            if (!o)
                return -1;
            p->hoff = o;
            p->hoff_cap = cap;
        }
        p->req.n_headers++;
        i = 2 * p->req.n_headers - 2;
    } else {
        i = 2 * p->req.n_headers - 1;
    }
    if (p->hdr.len)
        hl_buf_put(&p->hdr, "", 1); /* ends the previous piece */
    p->hoff[i] = p->hdr.len;
    return p->hdr.oom ? -1 : 0;
}

/* RFC 9110 token characters; the packaged parser is lenient about them,
 * and "Name : value" must be refused (it is a request smuggling vector). */
static int is_token(const char *at, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)at[i];
        if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch)) || !ch)
            return 0;
    }
    return 1;
}

/* A piece of a header name (value = 0) or value (value = 1); the parser
 * may split either across calls. */
static int header_piece(http_parser *hp, const char *at, size_t n, int value)
{
    conn *c = hp->data;
    pending *p = c->cur;
    if (count_header_bytes(c, n))
        return -1;
    if (!value && !is_token(at, n)) {
        c->err_status = 400;
        return -1;
    }
    if (p->headers_done)
        return 0; /* trailers after a chunked body are not kept */
    int starts = value ? !c->last_was_value
                       : c->last_was_value || !p->req.n_headers;
    if (starts && hstart(p, value)) {
        c->err_status = 503;
        return -1;
    }
    c->last_was_value = value;
    hl_buf_put(&p->hdr, at, n);
    if (p->hdr.oom) {
        c->err_status = 503;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    return header_piece(hp, at, n, 0);
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    return header_piece(hp, at, n, 1);
}

/* Turn the offsets into the name/value pointers of the request. */
static int headers_finish(conn *c, pending *p)
{
    size_t n = p->req.n_headers;
    if (n && !c->last_was_value && hstart(p, 1)) /* a name with no value */
        return -1;
    hl_buf_put(&p->hdr, "", 1);
    if (p->hdr.oom)
        return -1;
    if (!n)
        return 0;
    p->req.headers = malloc(n * sizeof *p->req.headers);
    if (!p->req.headers)
        return -1;
    for (size_t i = 0; i < n; i++) {
        p->req.headers[i].name = p->hdr.p + p->hoff[2 * i];
        p->req.headers[i].value = p->hdr.p + p->hoff[2 * i + 1];
    }
    return 0;
}

static void send_raw(conn *c, const char *data, size_t len);

static int on_headers_complete(http_parser *hp)
{
    conn *c = hp->data;
    pending *p = c->cur;
    if (headers_finish(c, p)) {
        c->err_status = 503;
        return -1;
    }
    p->headers_done = 1;
    c->in_headers = 0;
    if ((hp->flags & F_CONTENTLENGTH) && hp->content_length > c->lim.max_body) {
        c->err_status = 413;
        return -1;
    }
    const char *expect = hl_http_header_get(&p->req, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !c->head)
        send_raw(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    conn_arm(c);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    conn *c = hp->data;
    pending *p = c->cur;
    if (p->body.len + n > c->lim.max_body) {
        c->err_status = 413;
        return -1;
    }
    hl_buf_put(&p->body, at, n);
    if (p->body.oom) {
        c->err_status = 503;
        return -1;
    }
    return 0;
}

/* Path and query, split in place in the URL's buffer. */
static int split_url(pending *p)
{
    if (!p->url.len)
        hl_buf_puts(&p->url, "/");
    hl_buf_put(&p->body, "", 0); /* an empty body is "" too */
    if (p->url.oom || p->body.oom)
        return -1;
    p->req.path = p->url.p;
    char *q = strchr(p->url.p, '?');
    if (q) {
        *q = 0;
        p->req.query = q + 1;
    }
    p->req.body = p->body.p;
    p->req.body_len = p->body.len;
    return 0;
}

/* Requests are answered in the order they are queued here. */
static void conn_enqueue(conn *c, pending *p)
{
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    c->npending++;
}

static int on_message_complete(http_parser *hp)
{
    conn *c = hp->data;
    pending *p = c->cur;
    c->cur = NULL;
    p->req.method = http_method_str((enum http_method)hp->method);
    if (split_url(p)) {
        pending_free(p);
        c->err_status = 503;
        return -1;
    }
    /* After a "Connection: close" request or an upgrade request (answered
     * as plain HTTP) nothing more is read from this connection. */
    p->close_after = !http_should_keep_alive(hp) || hp->upgrade;
    p->upgrade = hp->upgrade;
    if (hp->upgrade)
        c->upgrade_parsed = 1;
    if (p->close_after)
        http_parser_pause(hp, 1);
    conn_enqueue(c, p);
    c->srv->handler(&p->req, c->srv->ud);
    if (c->npending >= MAX_PIPELINED && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    return 0;
}

/* ---- answers ------------------------------------------------------------- */

/* A HEAD answer carries the headers a GET would, and no body. */
static char *build_answer(int status, const char *ctype, const char *extra,
                          const void *body, size_t len, int head_only,
                          int close, size_t *out_len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s",
                     status, hl_http_status_text(status), len,
                     ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    size_t elen = extra ? strlen(extra) : 0;
    size_t blen = head_only ? 0 : len;
    char *out = malloc((size_t)n + elen + 2 + blen);
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)n);
    if (elen)
        memcpy(out + n, extra, elen);
    memcpy(out + n + elen, "\r\n", 2);
    if (blen)
        memcpy(out + n + elen + 2, body, blen);
    *out_len = (size_t)n + elen + 2 + blen;
    return out;
}

void hl_http_respond(hl_http_req *req, int status, const char *content_type,
                     const char *extra, const void *body, size_t len)
{
    pending *p = (pending *)req; /* req is the first member */
    if (p->done)
        return;
    if (!p->c) {
        pending_free(p); /* the client went away before the answer */
        return;
    }
    conn *c = p->c;
    int close = p->close_after || c->srv->shutting_down;
    p->out = build_answer(status, content_type, extra, body, len,
                          !strcmp(req->method, "HEAD"), close, &p->out_len);
    if (!p->out) {
        static const char oom[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
        p->out = strdup(oom);
        p->out_len = p->out ? sizeof oom - 1 : 0;
        close = 1;
    }
    p->close_after = close;
    p->done = 1;
    conn_flush(c);
}

void hl_http_respond_error(hl_http_req *req, int status, const char *code,
                           const char *message, const char *extra)
{
    char ecode[128], emsg[1024], body[1300];
    hl_json_escape(ecode, sizeof ecode, code);
    hl_json_escape(emsg, sizeof emsg, message);
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", ecode,
                     emsg);
    hl_http_respond(req, status, "application/json", extra, body,
                    n > 0 ? (size_t)n : 0);
}

const char *hl_http_header_get(const hl_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* ---- connections --------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    conn *c = wr->c;
    int raw = wr->raw;
    if (raw)
        c->raw.queued -= wr->len;
    free(wr->data);
    free(wr);
    c->writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_when_flushed && !c->writes) {
        conn_close(c);
        return;
    }
    if (raw && !c->raw.queued && !c->raw.close_asked && c->raw.cbs.on_drain)
        c->raw.cbs.on_drain(&c->raw, c->raw.ud);
}

/* Takes ownership of data (malloc'd); raw: the owner's bytes after a 101.
 * On failure the connection is closed. */
static int write_owned(conn *c, char *data, size_t len, int raw)
{
    write_req *wr = malloc(sizeof *wr);
    if (!wr) {
        free(data);
        conn_close(c);
        return HL_ENOMEM;
    }
    wr->c = c;
    wr->data = data;
    wr->len = len;
    wr->raw = raw;
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(data);
        free(wr);
        conn_close(c);
        return rc;
    }
    c->writes++;
    if (raw)
        c->raw.queued += len;
    return 0;
}

static void send_raw(conn *c, const char *data, size_t len)
{
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, data, len);
    write_owned(c, copy, len, 0);
}

static void conn_flush(conn *c)
{
    if (c->closing)
        return;
    while (c->head && c->head->done) {
        pending *p = c->head;
        c->head = p->next;
        if (!c->head)
            c->tail = NULL;
        c->npending--;
        int close = p->close_after, sw = p->switch_raw;
        write_owned(c, p->out, p->out_len, 0);
        p->out = NULL;
        pending_free(p);
        if (c->closing)
            return;
        if (sw) {
            raw_switch(c);
            return;
        }
        if (close) {
            c->close_when_flushed = 1;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            break;
        }
    }
    if (c->close_when_flushed) {
        if (!c->writes)
            conn_close(c);
        return;
    }
    if (c->up)
        return;
    if (!c->reading && c->npending < MAX_PIPELINED / 2 &&
        !c->srv->shutting_down)
        conn_resume(c);
    if (!c->cur)
        conn_arm(c);
}

/* Answer a protocol-level problem in order, then close. */
static void conn_fail(conn *c, int status, const char *code, const char *msg)
{
    pending *p = calloc(1, sizeof *p);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (!p) {
        conn_close(c);
        return;
    }
    p->c = c;
    p->req.method = "GET";
    p->close_after = 1;
    conn_enqueue(c, p);
    hl_http_respond_error(&p->req, status, code, msg, NULL);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles)
        return;
    hl_http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    if (c->up)
        c->raw.cbs.on_close(&c->raw, c->raw.ud);
    hl_buf_free(&c->raw.early);
    free(c->rest);
    free(c);
    maybe_done(srv);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->cur)
        pending_free(c->cur);
    c->cur = NULL;
    for (pending *p = c->head, *next; p; p = next) {
        next = p->next;
        if (p->done)
            pending_free(p);
        else
            p->c = NULL; /* the handler still owns it; freed on answer */
    }
    c->head = c->tail = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->up == UP_WAITING)
        return; /* an earlier answer is still owed; no HTTP timeout now */
    if (c->up) {
        if (c->raw.close_asked)
            conn_close(c); /* the writes did not flush in time */
        else if (c->up == UP_SWITCHING)
            raw_start(c);
        return;
    }
    if (c->in_headers) {
        conn_fail(c, 408, "header_timeout",
                  "the request headers did not arrive within "
                  "server.header_timeout");
    } else if (!c->head && !c->writes) {
        conn_close(c); /* idle */
    }
}

static void conn_arm(conn *c)
{
    if (c->up)
        return; /* the owner of an upgraded connection keeps its own time */
    uint64_t ms = c->in_headers ? c->lim.header_timeout_ms
                                : c->lim.idle_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    (void)suggested;
    if (c->srv->readbuf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    c->srv->readbuf_busy = 1;
    buf->base = c->srv->readbuf;
    buf->len = READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (buf->base == c->srv->readbuf)
        c->srv->readbuf_busy = 0;
    if (nread == 0)
        return;
    if (c->up) {
        raw_read(c, nread, buf);
        return;
    }
    if (nread == UV_EOF && (c->head || c->writes)) {
        /* The client half-closed after sending: answer what it sent. */
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->close_when_flushed = 1;
        if (c->cur) {
            pending_free(c->cur);
            c->cur = NULL;
        }
        return;
    }
    if (nread < 0) {
        conn_close(c); /* reset, or EOF with nothing owed */
        return;
    }
    int was_in_headers = c->in_headers;
    size_t used = http_parser_execute(&c->parser, &c->srv->settings,
                                      buf->base, (size_t)nread);
    if (c->closing)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED || (c->parser.upgrade && e == HPE_OK)) {
        /* The last request closes the connection or hands it over: what
         * follows an upgrade request is kept for its new owner. */
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (c->parser.upgrade && used < (size_t)nread && !c->rest)
            keep_rest(c, buf->base + used, (size_t)nread - used);
        return;
    }
    if (e != HPE_OK || used != (size_t)nread) {
        if (c->err_status == 431 || e == HPE_HEADER_OVERFLOW)
            conn_fail(c, 431, "headers_too_large",
                      "the request headers are larger than 16 KiB");
        else if (c->err_status == 413)
            conn_fail(c, 413, "body_too_large",
                      "the request body is larger than server.max_body");
        else if (c->err_status == 503)
            conn_fail(c, 503, "unavailable", "out of memory; try again");
        else if (c->err_status == 400)
            conn_fail(c, 400, "bad_request",
                      "malformed HTTP request: a header name holds a "
                      "character that is not allowed (such as a space "
                      "before the colon)");
        else {
            char msg[256];
            snprintf(msg, sizeof msg, "malformed HTTP request: %s",
                     http_errno_description(e));
            conn_fail(c, 400, "bad_request", msg);
        }
        return;
    }
    /* The header deadline runs from a request's first byte, not per read. */
    if (!(was_in_headers && c->in_headers))
        conn_arm(c);
}

static void conn_resume(conn *c)
{
    if (c->reading || c->closing)
        return;
    if (c->upgrade_parsed && c->up != UP_LIVE)
        return; /* what follows is not HTTP */
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void on_connection(uv_stream_t *ls, int status)
{
    hl_http_server *srv = ls->data;
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = srv;
    c->lim = srv->lim;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (srv->nconns > c->lim.max_connections || srv->shutting_down) {
        conn_fail(c, 503, "too_many_connections",
                  srv->shutting_down ? "the server is shutting down"
                                     : "the server is at server.max_connections; "
                                       "retry later");
        return;
    }
    conn_resume(c);
    conn_arm(c);
}

/* ---- upgraded connections ------------------------------------------------ */

static void keep_rest(conn *c, const char *data, size_t len)
{
    c->rest = malloc(len);
    if (!c->rest) {
        conn_close(c); /* the new protocol's first bytes would be lost */
        return;
    }
    memcpy(c->rest, data, len);
    c->rest_len = len;
}

/* Stop reading; close once every write is out, or after RAW_CLOSE_MS. */
static void raw_finish(conn *c)
{
    c->raw.close_asked = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    c->close_when_flushed = 1;
    if (!c->writes) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, RAW_CLOSE_MS, 0);
}

/* The 101 is queued: queue what the owner wrote meanwhile, then start
 * reading from the loop (never from inside hl_http_upgrade). */
static void raw_switch(conn *c)
{
    c->up = UP_SWITCHING;
    if (c->raw.early.len || c->raw.early.oom) {
        size_t n;
        char *data = hl_buf_take(&c->raw.early, &n);
        if (!data) {
            conn_close(c);
            return;
        }
        if (write_owned(c, data, n, 1))
            return;
    }
    if (c->raw.close_asked)
        raw_finish(c);
    else
        uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* The bytes that came with the upgrade request go first. */
static void raw_start(conn *c)
{
    char *rest = c->rest;
    size_t n = c->rest_len;
    c->up = UP_LIVE;
    c->rest = NULL;
    c->rest_len = 0;
    if (n)
        c->raw.cbs.on_data(&c->raw, rest, n, c->raw.ud);
    free(rest);
    if (!c->closing && !c->raw.close_asked)
        conn_resume(c);
}

static void raw_read(conn *c, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == UV_EOF && c->writes) {
        raw_finish(c); /* the peer is done; let what is queued go out */
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (!c->raw.close_asked)
        c->raw.cbs.on_data(&c->raw, buf->base, (size_t)nread, c->raw.ud);
}

/* "101 Switching Protocols", Connection: upgrade, then extra. */
static char *build_upgrade(const char *extra, size_t *out_len)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Connection: Upgrade\r\n";
    size_t hlen = sizeof head - 1, elen = extra ? strlen(extra) : 0;
    char *out = malloc(hlen + elen + 2);
    if (!out)
        return NULL;
    memcpy(out, head, hlen);
    if (elen)
        memcpy(out + hlen, extra, elen);
    memcpy(out + hlen + elen, "\r\n", 2);
    *out_len = hlen + elen + 2;
    return out;
}

hl_http_raw *hl_http_upgrade(hl_http_req *req, const char *extra,
                             const hl_http_raw_cbs *cbs, void *ud)
{
    pending *p = (pending *)req; /* req is the first member */
    if (p->done)
        return NULL;
    conn *c = p->c;
    int status = 500;
    const char *code = "internal", *why = NULL;
    if (!c)
        why = "the client closed the connection";
    else if (!p->upgrade || p != c->tail)
        why = "this request cannot be upgraded: it lacks \"Connection: "
              "Upgrade\" with an Upgrade header";
    else if (!cbs || !cbs->on_data || !cbs->on_close)
        why = "the upgrade has no on_data or on_close callback";
    else if (c->srv->shutting_down) {
        status = 503;
        code = "unavailable";
        why = "the server is shutting down; reconnect later";
    }
    char *out = NULL;
    size_t len = 0;
    if (!why && !(out = build_upgrade(extra, &len))) {
        status = 503;
        code = "unavailable";
        why = "out of memory; try again";
    }
    if (why) {
        hl_http_respond_error(req, status, code, why, NULL);
        return NULL;
    }
    p->out = out;
    p->out_len = len;
    p->done = 1;
    p->switch_raw = 1;
    p->close_after = 0;
    c->raw.c = c;
    c->raw.cbs = *cbs;
    c->raw.ud = ud;
    c->up = UP_WAITING;
    conn_flush(c);
    return &c->raw;
}

int hl_http_raw_write(hl_http_raw *r, const void *data, size_t len)
{
    conn *c = r->c;
    if (c->closing || r->close_asked)
        return UV_EPIPE;
    if (!len)
        return 0;
    if (len > UINT_MAX)
        return HL_ETOOBIG;
    if (c->up == UP_WAITING) {
        hl_buf_put(&r->early, data, len);
        return r->early.oom ? HL_ENOMEM : 0;
    }
    char *copy = malloc(len);
    if (!copy)
        return HL_ENOMEM;
    memcpy(copy, data, len);
    return write_owned(c, copy, len, 1);
}

size_t hl_http_raw_pending(const hl_http_raw *r)
{
    /* What libuv still holds: a write the socket took at once is not
     * pending, although its callback runs on a later turn of the loop. */
    return uv_stream_get_write_queue_size((const uv_stream_t *)&r->c->tcp) +
           r->early.len;
}

void hl_http_raw_close(hl_http_raw *r)
{
    conn *c = r->c;
    if (c->closing || r->close_asked)
        return;
    if (c->up == UP_WAITING)
        r->close_asked = 1; /* the 101 and the early writes go out first */
    else
        raw_finish(c);
}

/* ---- the server ---------------------------------------------------------- */

int hl_http_server_create(uv_loop_t *loop, const hl_http_limits *limits,
                          hl_http_handler handler, void *ud,
                          hl_http_server **out)
{
    hl_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return HL_ENOMEM;
    srv->loop = loop;
    srv->lim = *limits;
    srv->handler = handler;
    srv->ud = ud;
    http_parser_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    *out = srv;
    return 0;
}

int hl_http_server_listen(hl_http_server *srv, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (rc)
        return rc;
    rc = uv_tcp_init(srv->loop, &srv->listener);
    if (rc)
        return rc;
    srv->listener.data = srv;
    srv->listening = 1;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    return rc;
}

uint16_t hl_http_server_port(const hl_http_server *srv)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!srv->listening ||
        uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len))
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void hl_http_server_set_limits(hl_http_server *srv, const hl_http_limits *l)
{
    srv->lim = *l;
}

size_t hl_http_server_connections(const hl_http_server *srv)
{
    return srv->nconns;
}

static void on_listener_closed(uv_handle_t *h)
{
    hl_http_server *srv = h->data;
    srv->listening = 0;
    maybe_done(srv);
}

static void maybe_done(hl_http_server *srv)
{
    if (srv->shutting_down == 1 && !srv->listening && !srv->nconns &&
        srv->done) {
        srv->shutting_down = 2;
        srv->done(srv, srv->done_ud);
    }
}

void hl_http_server_shutdown(hl_http_server *srv,
                             void (*done)(hl_http_server *, void *), void *ud)
{
    srv->shutting_down = 1;
    srv->done = done;
    srv->done_ud = ud;
    if (srv->listening && !uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    for (conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->up)
            continue; /* its owner closes it, or hl_http_server_abort */
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (!c->head && !c->writes)
            conn_close(c);
        else
            c->close_when_flushed = 1;
    }
    maybe_done(srv);
}

void hl_http_server_abort(hl_http_server *srv)
{
    for (conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

void hl_http_server_destroy(hl_http_server *srv)
{
    free(srv);
}
