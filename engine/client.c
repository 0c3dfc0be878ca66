/* client.c - outbound HTTP and SMTP: libcurl multi-socket on a libuv loop. */
#include "client.h"

#include "buf.h"
#include "err.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/*
 * How it fits together. One multi handle holds every transfer, so libcurl
 * keeps finished connections in its cache and reuses them. libcurl says
 * which sockets to watch (on_socket: one uv_poll_t each, freed in its close
 * callback) and when to call it back (on_curl_timer: one uv_timer_t); the
 * loop's callbacks hand the events to curl_multi_socket_action and then
 * collect finished transfers with curl_multi_info_read. libcurl never
 * finishes a transfer inside curl_multi_add_handle, so a callback never
 * runs inside hl_client_send.
 */

#define DEFAULT_MAX_RESPONSE (64 * 1024)
/* Past max_response, read and drop at most this much more, so that a
 * slightly long answer leaves its connection reusable; then stop. */
#define MAX_DISCARD (1024 * 1024)
/* The most header bytes kept (for SMTP these are the server's replies). */
#define MAX_HEADER_BLOCK (256 * 1024)

#if LIBCURL_VERSION_NUM >= 0x075000
#define HAVE_PREREQ 1 /* 7.80.0 */
#endif

typedef struct sock sock;
typedef struct xfer xfer;

#define EASY_SPARE 64

struct hl_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's one timeout */
    xfer *xfers;      /* in progress */
    sock *socks;      /* watched for libcurl */
    size_t active;
    size_t handles; /* libuv handles whose close callback has not run */
    int closing;
    /* Easy handles kept for the next transfers: making one and its
     * buffers anew for every request cost more than the request. */
    CURL *spare[EASY_SPARE];
    size_t n_spare;
};

/* A socket libcurl asked us to watch. */
struct sock {
    uv_poll_t poll;
    hl_client *c;
    curl_socket_t fd;
    int events;  /* what libcurl asked for: UV_READABLE, UV_WRITABLE */
    int closing; /* libcurl let go of it */
    sock *prev, *next;
};

/* One transfer, from hl_client_send to its callback. */
struct xfer {
    hl_client *c;
    CURL *easy;
    xfer *prev, *next;
    hl_xfer_cb cb;
    void *ud;
    int kind;
    struct curl_slist *headers; /* libcurl does not copy lists */
    struct curl_slist *rcpt;
    char *upload; /* the SMTP message */
    size_t upload_len, upload_off;
    hl_buf body; /* the last response's, at most max_body bytes */
    hl_buf head; /* the last response's header block */
    size_t max_body;
    size_t discarded;
    int truncated;
    int stopped; /* we stopped reading a long body on purpose */
    int oom;
    hl_addr_check check;
    void *check_ud;
    int blocked;            /* connections check refused */
    int opened_after_block; /* connections opened after the first refusal */
    char why[256];          /* check's last reason */
    char errbuf[CURL_ERROR_SIZE];
    uint64_t start; /* uv_hrtime */
};

static void check_done(hl_client *c);

/* --- lists -------------------------------------------------------------- */

static void xfer_link(hl_client *c, xfer *x)
{
    x->prev = NULL;
    x->next = c->xfers;
    if (c->xfers)
        c->xfers->prev = x;
    c->xfers = x;
    c->active++;
}

static void xfer_unlink(xfer *x)
{
    hl_client *c = x->c;
    if (x->prev)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    c->active--;
}

static void xfer_free(xfer *x)
{
    hl_client *c = x->c;
    if (x->easy && c && !c->closing && c->n_spare < EASY_SPARE) {
        curl_easy_reset(x->easy); /* every option back to its default */
        c->spare[c->n_spare++] = x->easy;
    } else if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->rcpt);
    free(x->upload);
    hl_buf_free(&x->body);
    hl_buf_free(&x->head);
    free(x);
}

/* --- libuv handles -------------------------------------------------------- */

static void handle_closed(hl_client *c)
{
    /* The timer is closed last of all by hl_client_close, so no handle
     * left means the client is closing. */
    if (--c->handles == 0) {
        free(c);
        curl_global_cleanup();
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    sock *k = h->data;
    hl_client *c = k->c;
    free(k);
    handle_closed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static sock *sock_open(hl_client *c, curl_socket_t fd)
{
    sock *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    if (uv_poll_init_socket(c->loop, &k->poll, fd)) {
        free(k); /* never registered with the loop */
        return NULL;
    }
    k->poll.data = k;
    k->c = c;
    k->fd = fd;
    k->next = c->socks;
    if (c->socks)
        c->socks->prev = k;
    c->socks = k;
    c->handles++;
    return k;
}

/* Stops watching at once (libcurl may close the socket and reuse its
 * number right after); the memory goes in the close callback. */
static void sock_close(sock *k)
{
    hl_client *c = k->c;
    k->closing = 1;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->socks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

/* --- results ---------------------------------------------------------- */

static int is_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED: return 1;
    default: return 0;
    }
}

/* libcurl reports a TLS alert received after the handshake (TLS 1.3 sends
 * "certificate required" then) as a receive error. */
static int is_tls_alert(const xfer *x)
{
    return strstr(x->errbuf, "SSL_read") || strstr(x->errbuf, "SSL routines");
}

static int classify(const xfer *x, CURLcode rc, long status)
{
    if (x->oom)
        return HL_XERR_OTHER;
    /* An SMTP server's negative reply is a response, like an HTTP 5xx. */
    if (x->kind == HL_XFER_SMTP && status >= 400 &&
        (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
         rc == CURLE_WEIRD_SERVER_REPLY || rc == CURLE_LOGIN_DENIED ||
         rc == CURLE_REMOTE_ACCESS_DENIED || rc == CURLE_UPLOAD_FAILED ||
         rc == CURLE_QUOTE_ERROR))
        return HL_XERR_NONE;
    if (is_tls_error(rc))
        return HL_XERR_TLS;
    switch (rc) {
    case CURLE_OK: return HL_XERR_NONE;
    case CURLE_WRITE_ERROR: return x->stopped ? HL_XERR_NONE : HL_XERR_OTHER;
    case CURLE_TOO_MANY_REDIRECTS:
        return HL_XERR_NONE; /* the last 3xx is the answer */
    case CURLE_OPERATION_TIMEDOUT: return HL_XERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return HL_XERR_DNS;
    case CURLE_COULDNT_CONNECT:
        return x->blocked && !x->opened_after_block ? HL_XERR_BLOCKED
                                                    : HL_XERR_REFUSED;
    case CURLE_ABORTED_BY_CALLBACK:
        return x->blocked ? HL_XERR_BLOCKED : HL_XERR_OTHER;
    case CURLE_RECV_ERROR: return is_tls_alert(x) ? HL_XERR_TLS : HL_XERR_RESET;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM: return HL_XERR_RESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP3:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_RANGE_ERROR:
    case CURLE_LOGIN_DENIED:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_UPLOAD_FAILED:
    case CURLE_QUOTE_ERROR: return HL_XERR_PROTOCOL;
    default: return HL_XERR_OTHER;
    }
}

static void fill_result(xfer *x, CURLcode rc, hl_xfer_res *res)
{
    long status = 0;
    char *ip = NULL;
    if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
        snprintf(res->primary_ip, sizeof res->primary_ip, "%s", ip);
    res->status = (int)status;
    res->duration_us = (uv_hrtime() - x->start) / 1000;
    res->headers = x->head.p && !x->head.oom ? x->head.p : "";
    res->body = x->body.p && !x->body.oom ? x->body.p : "";
    res->body_len = x->body.p && !x->body.oom ? x->body.len : 0;
    res->truncated = x->truncated;
    /* An SMTP server's answer is its reply lines, which libcurl hands to
     * the header callback: the last line with the failing code (a QUIT's
     * "221 Bye" may follow it) is the body a connector reads. */
    if (x->kind == HL_XFER_SMTP && status >= 400 && !res->body_len &&
        x->head.p && !x->head.oom && x->head.len) {
        char code[24];
        snprintf(code, sizeof code, "%ld", status);
        const char *h = x->head.p, *line = NULL;
        for (const char *p = h; p < h + x->head.len;) {
            const char *nl = memchr(p, '\n', (size_t)(h + x->head.len - p));
            if (!strncmp(p, code, strlen(code)))
                line = p;
            p = nl ? nl + 1 : h + x->head.len;
        }
        if (line) {
            size_t n = strcspn(line, "\r\n");
            hl_buf_put(&x->body, line, n);
        }
        if (line && !x->body.oom) {
            res->body = x->body.p;
            res->body_len = x->body.len;
        }
    }
    res->error = classify(x, rc, status);
    if (x->oom)
        snprintf(res->error_text, sizeof res->error_text,
                 "out of memory while keeping the response");
    else if (res->error == HL_XERR_BLOCKED)
        snprintf(res->error_text, sizeof res->error_text, "%s", x->why);
    else if (rc != CURLE_OK && !x->stopped)
        snprintf(res->error_text, sizeof res->error_text, "%s",
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* Take x out of the client and run its callback: with what libcurl
 * reported, or with error (>= 0) and text instead. */
static void finish(xfer *x, CURLcode rc, int error, const char *text)
{
    hl_client *c = x->c;
    hl_xfer_res res;
    memset(&res, 0, sizeof res);
    xfer_unlink(x);
    fill_result(x, rc, &res);
    if (error >= 0) {
        res.error = error;
        snprintf(res.error_text, sizeof res.error_text, "%s", text);
    }
    /* Out of the multi handle before the callback, which may send again
     * or close the client. */
    if (c->multi) {
        CURLMcode mrc = curl_multi_remove_handle(c->multi, x->easy);
        if (mrc != CURLM_OK)
            HL_ERROR("client", "curl_multi_remove_handle failed", "error",
                     curl_multi_strerror(mrc));
    }
    x->cb(x->ud, &res);
    xfer_free(x);
}

static void fail_all(hl_client *c, int error, const char *text)
{
    while (c->xfers)
        finish(c->xfers, CURLE_OK, error, text);
}

/* --- libcurl's callbacks ------------------------------------------------ */

static void after_action(hl_client *c, CURLMcode rc)
{
    if (c->closing)
        return;
    check_done(c);
    /* CURLM_BAD_SOCKET: an event for a socket libcurl already let go. */
    if (rc != CURLM_OK && rc != CURLM_BAD_SOCKET && !c->closing) {
        char text[128];
        snprintf(text, sizeof text, "curl_multi_socket_action: %s",
                 curl_multi_strerror(rc));
        HL_ERROR("client", "curl_multi_socket_action failed", "error",
                 curl_multi_strerror(rc));
        fail_all(c, HL_XERR_OTHER, text);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock *k = h->data;
    hl_client *c = k->c;
    int flags = 0, running = 0;
    /* On an error (a reset, say) libuv stops the handle and tells no more;
     * no flags make libcurl look at the socket itself and find out why. */
    if (status >= 0) {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    CURLMcode rc = curl_multi_socket_action(c->multi, k->fd, flags, &running);
    /* k may be closing now (CURL_POLL_REMOVE), but it is freed only in its
     * close callback, on a later turn of the loop. */
    if (status < 0 && !k->closing && k->events &&
        !uv_is_active((uv_handle_t *)&k->poll) &&
        uv_poll_start(&k->poll, k->events, on_poll))
        HL_ERROR("client", "uv_poll_start failed");
    after_action(c, rc);
}

static void on_timeout(uv_timer_t *t)
{
    hl_client *c = t->data;
    int running = 0;
    CURLMcode rc =
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    after_action(c, rc);
}

/* CURLMOPT_TIMERFUNCTION: never act from here, only arm the timer (a
 * timeout of 0 fires on the loop's next turn). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    hl_client *c = userp;
    (void)multi;
    int r = timeout_ms < 0 ? uv_timer_stop(&c->timer)
                           : uv_timer_start(&c->timer, on_timeout,
                                            (uint64_t)timeout_ms, 0);
    return r ? -1 : 0;
}

/* CURLMOPT_SOCKETFUNCTION. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    hl_client *c = userp;
    sock *k = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl drops its own record of k after this returns. */
        if (k)
            sock_close(k);
        return 0;
    }
    if (!k) {
        if (!(k = sock_open(c, fd)))
            return -1;
        if (curl_multi_assign(c->multi, fd, k) != CURLM_OK) {
            sock_close(k);
            return -1;
        }
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    k->events = events;
    int r = events ? uv_poll_start(&k->poll, events, on_poll)
                   : uv_poll_stop(&k->poll);
    return r ? -1 : 0;
}

static void check_done(hl_client *c)
{
    CURLMsg *m;
    int left;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
            !priv) {
            HL_ERROR("client", "a finished transfer without its record");
            continue;
        }
        finish((xfer *)(void *)priv, rc, -1, NULL);
    }
}

/* check_addr's verdict on one address; a refusal is remembered. */
static int refuse(xfer *x, const struct sockaddr *sa)
{
    char why[sizeof x->why];
    why[0] = 0;
    if (!x->check(x->check_ud, sa, why, sizeof why))
        return 0;
    why[sizeof why - 1] = 0;
    x->blocked++;
    if (!why[0]) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const void *a =
            sa->sa_family == AF_INET6
                ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
            inet_ntop(sa->sa_family, a, ip, sizeof ip);
        snprintf(why, sizeof why, "the outbound address check refused %s", ip);
    }
    memcpy(x->why, why, sizeof why);
    return 1;
}

/* CURLOPT_OPENSOCKETFUNCTION: every connection the transfer opens,
 * redirects included, passes here with its address. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose,
                                 struct curl_sockaddr *a)
{
    xfer *x = ud;
    (void)purpose;
    if (x->check && refuse(x, &a->addr))
        return CURL_SOCKET_BAD;
    if (x->blocked)
        x->opened_after_block++;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

#ifdef HAVE_PREREQ
/* CURLOPT_PREREQFUNCTION: before each request, on a new connection or a
 * reused one. A reused connection was judged by whichever transfer opened
 * it, maybe with another check, so judge it again. */
static int prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    xfer *x = ud;
    struct sockaddr_storage ss;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    (void)local_ip;
    (void)local_port;
    if (!x->check || !ip)
        return CURL_PREREQFUNC_OK;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    } else {
        return CURL_PREREQFUNC_OK; /* not IP: judged when opened */
    }
    return refuse(x, (struct sockaddr *)&ss) ? CURL_PREREQFUNC_ABORT
                                             : CURL_PREREQFUNC_OK;
}
#endif

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    /* A status line starts a response: a 1xx, a redirect or a proxy's
     * CONNECT answer came before; only the last response is kept. */
    if (x->kind == HL_XFER_HTTP && len >= 5 && !memcmp(p, "HTTP/", 5)) {
        hl_buf_free(&x->head);
        hl_buf_free(&x->body);
        x->truncated = 0;
        x->discarded = 0;
    }
    if (x->head.len + len > MAX_HEADER_BLOCK)
        return len;
    hl_buf_put(&x->head, p, len);
    if (x->head.oom) {
        x->oom = 1;
        return 0;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n, keep = 0;
    if (x->body.len < x->max_body)
        keep =
            len < x->max_body - x->body.len ? len : x->max_body - x->body.len;
    if (keep) {
        hl_buf_put(&x->body, p, keep);
        if (x->body.oom) {
            x->oom = 1;
            return 0;
        }
    }
    if (keep < len) {
        x->truncated = 1;
        x->discarded += len - keep;
        if (x->discarded > MAX_DISCARD) {
            x->stopped = 1;
            return 0; /* libcurl ends the transfer: CURLE_WRITE_ERROR */
        }
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t room = size * n, left = x->upload_len - x->upload_off;
    if (room > left)
        room = left;
    if (room)
        memcpy(buf, x->upload + x->upload_off, room);
    x->upload_off += room;
    return room;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    xfer *x = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->upload_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->upload_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* --- setting a transfer up ------------------------------------------ */

static int curl_err(CURLcode rc)
{
    return rc == CURLE_OUT_OF_MEMORY ? HL_ENOMEM : HL_EINTERNAL;
}

#define SET(opt, val)                                                          \
    do {                                                                       \
        CURLcode rc_ = curl_easy_setopt(x->easy, opt, val);                    \
        if (rc_ != CURLE_OK) {                                                 \
            err = curl_err(rc_);                                               \
            goto out;                                                          \
        }                                                                      \
    } while (0)

static long ms_long(uint64_t ms)
{
    return ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)ms;
}

static int setup_common(xfer *x, const hl_xfer_req *req)
{
    int err = 0;
    int http = req->kind == HL_XFER_HTTP;
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)x);
#ifdef HAVE_PREREQ
    SET(CURLOPT_PREREQFUNCTION, prereq);
    SET(CURLOPT_PREREQDATA, (void *)x);
#endif
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Closing a transfer does not wait for a name lookup in progress. */
    SET(CURLOPT_QUICK_EXIT, 1L);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, http ? "http,https" : "smtp,smtps");
#else
    SET(CURLOPT_PROTOCOLS, http ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
                                : (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
    if (req->timeout_ms)
        SET(CURLOPT_TIMEOUT_MS, ms_long(req->timeout_ms));
    if (req->connect_timeout_ms)
        SET(CURLOPT_CONNECTTIMEOUT_MS, ms_long(req->connect_timeout_ms));
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);
    if (req->client_cert) {
        SET(CURLOPT_SSLCERT, req->client_cert);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (req->client_key) {
        SET(CURLOPT_SSLKEY, req->client_key);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (req->ca_file)
        SET(CURLOPT_CAINFO, req->ca_file);
out:
    return err;
}

static const char *const methods[] = {"POST", "PUT", "PATCH", "GET", "DELETE"};

static const char *http_method(const char *m)
{
    for (size_t i = 0; m && i < sizeof methods / sizeof *methods; i++)
        if (!strcasecmp(m, methods[i]))
            return methods[i];
    return NULL;
}

/* No CR or LF: they would start another header or command. */
static int one_line(const char *s)
{
    return !s || !strpbrk(s, "\r\n");
}

/* An HTTP token (RFC 9110 5.6.2), as a header name must be. */
static int is_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

static int headers_ok(const hl_xfer_req *req)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (!is_token(req->headers[i].name) || !one_line(req->headers[i].value))
            return 0;
    return 1;
}

static int add_line(struct curl_slist **list, const char *s)
{
    struct curl_slist *l = curl_slist_append(*list, s);
    if (!l)
        return HL_ENOMEM;
    *list = l;
    return 0;
}

static int add_header(struct curl_slist **list, const hl_header *h)
{
    const char *v = h->value ? h->value : "";
    size_t n = strlen(h->name) + strlen(v) + 3;
    char *line = malloc(n);
    if (!line)
        return HL_ENOMEM;
    /* "Name;" is libcurl's way to send a header with an empty value. */
    if (*v)
        snprintf(line, n, "%s: %s", h->name, v);
    else
        snprintf(line, n, "%s;", h->name);
    int err = add_line(list, line);
    free(line);
    return err;
}

static int setup_http(xfer *x, const hl_xfer_req *req, const char *method)
{
    int err = 0;
    int expect = 0, ctype = 0;
    int get_like = !strcmp(method, "GET") || !strcmp(method, "DELETE");
    int has_body = !get_like || req->body_len > 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const hl_header *h = &req->headers[i];
        expect |= !strcasecmp(h->name, "Expect");
        ctype |= !strcasecmp(h->name, "Content-Type");
        if ((err = add_header(&x->headers, h)))
            goto out;
    }
    /* No "Expect: 100-continue" wait before a large body, and no
     * libcurl-made form Content-Type on a body whose type we do not know. */
    if (!expect && (err = add_line(&x->headers, "Expect:")))
        goto out;
    if (has_body && !ctype && (err = add_line(&x->headers, "Content-Type:")))
        goto out;
    SET(CURLOPT_HTTPHEADER, x->headers);
    if (has_body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS,
            req->body_len ? (const char *)req->body : "");
        if (strcmp(method, "POST"))
            SET(CURLOPT_CUSTOMREQUEST, method);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET"))
            SET(CURLOPT_CUSTOMREQUEST, method);
    }
    if (req->follow_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)req->follow_redirects);
        /* A POST stays a POST after 301 and 302; 303 means GET. */
        SET(CURLOPT_POSTREDIR,
            (long)(CURL_REDIR_POST_301 | CURL_REDIR_POST_302));
#if LIBCURL_VERSION_NUM >= 0x075500
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
        SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    }
out:
    return err;
}

static int setup_smtp(xfer *x, const hl_xfer_req *req)
{
    int err = 0;
    if (req->mail_from)
        SET(CURLOPT_MAIL_FROM, req->mail_from);
    for (size_t i = 0; i < req->n_rcpt; i++)
        if ((err = add_line(&x->rcpt, req->rcpt[i])))
            goto out;
    SET(CURLOPT_MAIL_RCPT, x->rcpt);
    if (!(x->upload = malloc(req->body_len ? req->body_len : 1))) {
        err = HL_ENOMEM;
        goto out;
    }
    if (req->body_len)
        memcpy(x->upload, req->body, req->body_len);
    x->upload_len = req->body_len;
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, (void *)x);
    SET(CURLOPT_SEEKFUNCTION, on_seek);
    SET(CURLOPT_SEEKDATA, (void *)x);
    SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    SET(CURLOPT_USE_SSL,
        req->starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
    if (req->username) {
        SET(CURLOPT_USERNAME, req->username);
        SET(CURLOPT_PASSWORD, req->password ? req->password : "");
    }
out:
    return err;
}

#undef SET

/* HL_ERANGE for what no transfer could carry. */
static int check_req(const hl_xfer_req *req, const char **method)
{
    *method = NULL;
    if (!req->url || (req->body_len && !req->body) ||
        (req->n_headers && !req->headers) || !headers_ok(req))
        return HL_ERANGE;
    if (req->kind == HL_XFER_HTTP)
        return (*method = http_method(req->method)) ? 0 : HL_ERANGE;
    if (req->kind != HL_XFER_SMTP || !req->n_rcpt || !req->rcpt ||
        !one_line(req->mail_from) || !one_line(req->username) ||
        !one_line(req->password))
        return HL_ERANGE;
    for (size_t i = 0; i < req->n_rcpt; i++)
        if (!req->rcpt[i] || !req->rcpt[i][0] || !one_line(req->rcpt[i]))
            return HL_ERANGE;
    return 0;
}

/* --- the public functions ------------------------------------------- */

int hl_client_create(uv_loop_t *loop, hl_client **out)
{
    int err = 0;
    hl_client *c = NULL;
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return HL_EINTERNAL;
    if (!(c = calloc(1, sizeof *c))) {
        err = HL_ENOMEM;
        goto out;
    }
    c->loop = loop;
    if (!(c->multi = curl_multi_init())) {
        err = HL_ENOMEM;
        goto out;
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket) ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c)) {
        err = HL_EINTERNAL;
        goto out;
    }
    if (uv_timer_init(loop, &c->timer)) {
        err = HL_EINTERNAL;
        goto out;
    }
    c->timer.data = c;
    c->handles = 1;
    *out = c;
    c = NULL;
out:
    if (c) {
        if (c->multi && curl_multi_cleanup(c->multi) != CURLM_OK)
            HL_ERROR("client", "curl_multi_cleanup failed");
        free(c);
        curl_global_cleanup();
    }
    return err;
}

int hl_client_send(hl_client *c, const hl_xfer_req *req, hl_xfer_cb cb,
                   void *ud)
{
    int err = 0;
    xfer *x = NULL;
    const char *method;
    if (!c || !req || !cb)
        return HL_ERANGE;
    if (c->closing)
        return HL_ESHUTDOWN;
    if ((err = check_req(req, &method)))
        return err;
    if (!(x = calloc(1, sizeof *x)))
        return HL_ENOMEM;
    x->c = c;
    x->cb = cb;
    x->ud = ud;
    x->kind = req->kind;
    x->max_body = req->max_response ? req->max_response : DEFAULT_MAX_RESPONSE;
    x->check = req->check_addr;
    x->check_ud = req->check_ud;
    hl_buf_init(&x->body, NULL, 0);
    hl_buf_init(&x->head, NULL, 0);
    x->easy = c->n_spare ? c->spare[--c->n_spare] : curl_easy_init();
    if (!x->easy) {
        err = HL_ENOMEM;
        goto out;
    }
    if ((err = setup_common(x, req)))
        goto out;
    err = req->kind == HL_XFER_HTTP ? setup_http(x, req, method)
                                    : setup_smtp(x, req);
    if (err)
        goto out;
    x->start = uv_hrtime();
    CURLMcode mrc = curl_multi_add_handle(c->multi, x->easy);
    if (mrc != CURLM_OK) {
        err = mrc == CURLM_OUT_OF_MEMORY ? HL_ENOMEM : HL_EINTERNAL;
        goto out;
    }
    xfer_link(c, x);
    x = NULL;
out:
    if (x)
        xfer_free(x); /* curl_easy_cleanup leaves the multi handle too */
    return err;
}

size_t hl_client_active(const hl_client *c)
{
    return c ? c->active : 0;
}

void hl_client_close(hl_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    fail_all(c, HL_XERR_ABORTED, "the client was closed first");
    /* Closes the cached connections (an SMTP one says QUIT first). */
    CURLMcode rc = curl_multi_cleanup(c->multi);
    if (rc != CURLM_OK)
        HL_ERROR("client", "curl_multi_cleanup failed", "error",
                 curl_multi_strerror(rc));
    c->multi = NULL;
    while (c->n_spare)
        curl_easy_cleanup(c->spare[--c->n_spare]);
    while (c->socks)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Append n bytes of s to out (cap bytes, *len used), cutting at the end. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + 1 >= cap)
        return;
    if (n > cap - 1 - *len)
        n = cap - 1 - *len;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = 0;
}

/* s..e without the spaces and tabs around it. */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

const char *hl_xfer_header(const hl_xfer_res *r, const char *name, char *out,
                           size_t cap)
{
    if (!r || !r->headers || !name || !*name || !out || !cap)
        return NULL;
    size_t nlen = strlen(name), len = 0;
    int found = 0;
    const char *p = r->headers;
    out[0] = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        const char *e = end;
        if (e > p && e[-1] == '\r')
            e--;
        if (found && (*p == ' ' || *p == '\t')) {
            /* An obsolete folded line continues the value. */
            const char *s = p;
            trim(&s, &e);
            put(out, cap, &len, " ", 1);
            put(out, cap, &len, s, (size_t)(e - s));
        } else if (found) {
            break;
        } else if ((size_t)(e - p) > nlen && p[nlen] == ':' &&
                   !strncasecmp(p, name, nlen)) {
            const char *s = p + nlen + 1;
            trim(&s, &e);
            put(out, cap, &len, s, (size_t)(e - s));
            found = 1;
        }
        p = nl ? nl + 1 : end;
    }
    return found ? out : NULL;
}

const char *hl_xfer_error_name(int error)
{
    static const char *const names[] = {
        [HL_XERR_NONE] = "none",       [HL_XERR_TIMEOUT] = "timeout",
        [HL_XERR_DNS] = "dns",         [HL_XERR_REFUSED] = "refused",
        [HL_XERR_RESET] = "reset",     [HL_XERR_TLS] = "tls",
        [HL_XERR_BLOCKED] = "blocked", [HL_XERR_PROTOCOL] = "protocol",
        [HL_XERR_ABORTED] = "aborted", [HL_XERR_OTHER] = "other",
    };
    if (error < 0 || (size_t)error >= sizeof names / sizeof *names)
        return "unknown";
    return names[error];
}
