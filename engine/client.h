/* client.h - outbound HTTP and SMTP: libcurl's multi-socket API driven by a libuv loop. */
#ifndef HL_CLIENT_H
#define HL_CLIENT_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct hl_client hl_client;

typedef enum {
    HL_XFER_HTTP,
    HL_XFER_SMTP,
    HL_XFER_FILE, /* an append to a local file, done by the dispatcher */
} hl_xfer_kind;

typedef struct {
    const char *name;
    const char *value;
} hl_header;

/* Decides whether a resolved address may be connected to; 0 allows, else
 * why gets the reason ("127.0.0.1 is a loopback address"). */
typedef int (*hl_addr_check)(void *ud, const struct sockaddr *sa, char *why,
                             size_t whylen);

/* One request. Every pointer is borrowed for the hl_client_send call only:
 * the client copies what it keeps. check_addr and check_ud are used until
 * the callback has run. */
typedef struct {
    int kind;           /* hl_xfer_kind */
    const char *method; /* HTTP: "POST", "PUT", "PATCH", "GET", "DELETE" */
    const char *url;    /* http:// https:// smtp:// smtps:// */
    const hl_header *headers;
    size_t n_headers;
    const void *body; /* HTTP body, or the whole RFC 5322 message (SMTP) */
    size_t body_len;
    uint64_t timeout_ms;         /* the whole transfer; 0: none */
    uint64_t connect_timeout_ms; /* 0: libcurl's default */
    int follow_redirects;        /* at most this many; 0: a 3xx is final */
    /* TLS: verification is always on unless insecure is set. */
    const char *client_cert; /* PEM file; NULL: no client certificate */
    const char *client_key;  /* PEM file; NULL: in client_cert */
    const char *ca_file;     /* PEM bundle; NULL: the system's */
    int insecure;
    /* SMTP */
    const char *mail_from;
    const char *const *rcpt;
    size_t n_rcpt;
    const char *username; /* SMTP AUTH; NULL: none */
    const char *password;
    int starttls; /* smtp://: 1 requires STARTTLS, 0 plain text */
    /* Keep at most this much of the response body; 0: 64 KiB. */
    size_t max_response;
    /* Checked for every connection the transfer opens, redirects too. */
    hl_addr_check check_addr;
    void *check_ud;
} hl_xfer_req;

typedef enum {
    HL_XERR_NONE,     /* a response arrived (any status; an SMTP server's
                         negative reply too, with its code in status) */
    HL_XERR_TIMEOUT,  /* timeout_ms or connect_timeout_ms passed */
    HL_XERR_DNS,      /* the host name did not resolve */
    HL_XERR_REFUSED,  /* connection refused or unreachable */
    HL_XERR_RESET,    /* reset, or closed without a (whole) response */
    HL_XERR_TLS,      /* handshake or certificate verification failed */
    HL_XERR_BLOCKED,  /* check_addr refused every address */
    HL_XERR_PROTOCOL, /* a malformed response, an SMTP protocol error */
    HL_XERR_ABORTED,  /* the client was closed first */
    HL_XERR_OTHER,
} hl_xfer_error;

typedef struct {
    int status;        /* HTTP status, or the last SMTP reply code; 0: none */
    int error;         /* hl_xfer_error */
    char error_text[256]; /* libcurl's detail, or check_addr's reason */
    const char *headers;  /* the last response's header block, NUL-ended */
    const char *body;     /* its first max_response bytes, NUL-ended */
    size_t body_len;
    int truncated; /* the body was longer than what is kept */
    uint64_t duration_us;
    char primary_ip[64]; /* the address connected to, "" when none */
} hl_xfer_res;

/* Runs on the loop thread exactly once per transfer, never from inside
 * hl_client_send; res and what it points to live until it returns. */
typedef void (*hl_xfer_cb)(void *ud, const hl_xfer_res *res);

/* A client on loop (borrowed). Connections are reused between transfers
 * to the same host. Proxies come from the standard environment variables
 * (http_proxy, https_proxy, no_proxy), as libcurl reads them. */
int hl_client_create(uv_loop_t *loop, hl_client **out);

/* Start a transfer. Returns 0 (cb will run) or a negative code (it will
 * not): HL_ENOMEM, HL_ERANGE (an unknown kind or method, no url, a header
 * name that is not a token, CR or LF in a header value or an SMTP address,
 * SMTP without recipients), HL_ESHUTDOWN (hl_client_close has begun, as
 * inside an aborted transfer's callback), HL_EINTERNAL. */
int hl_client_send(hl_client *c, const hl_xfer_req *req, hl_xfer_cb cb,
                   void *ud);

/* Transfers in progress. */
size_t hl_client_active(const hl_client *c);

/* Abort what is in progress (each cb runs with HL_XERR_ABORTED, before this
 * returns), close the libuv handles and free the client once they are
 * closed: the loop must run afterwards. May be called from a transfer's
 * callback, not from check_addr. */
void hl_client_close(hl_client *c);

/* A response header's value (case-insensitive name, the last response of
 * the transfer), copied into out; NULL when absent. */
const char *hl_xfer_header(const hl_xfer_res *r, const char *name, char *out,
                           size_t cap);

/* "timeout", "dns", "refused", ... for logs and the attempts table. */
const char *hl_xfer_error_name(int error);

#endif
