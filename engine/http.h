/* http.h - the HTTP/1.1 server on libuv: connections, parsing, limits, ordered replies. */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hl_http_server hl_http_server;
typedef struct hl_http_req hl_http_req;

typedef struct {
    const char *name;
    const char *value;
} hl_http_header;

struct hl_http_req {
    const char *method; /* "GET", "POST", ... */
    char *path;         /* the URL path, not decoded */
    char *query;        /* after '?', or NULL */
    hl_http_header *headers;
    size_t n_headers;
    char *body;
    size_t body_len;
    void *user; /* free for the handler */
};

typedef struct {
    uint64_t max_body;
    uint64_t max_connections;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
} hl_http_limits;

/* Called once per complete request on the loop thread. The handler must
 * answer it exactly once with hl_http_respond*(), now or later (also on the
 * loop thread); answers on one connection go out in request order. */
typedef void (*hl_http_handler)(hl_http_req *req, void *ud);

int hl_http_server_create(uv_loop_t *loop, const hl_http_limits *limits,
                          hl_http_handler handler, void *ud,
                          hl_http_server **out);
/* Bind and listen; port 0 picks a free port (see hl_http_server_port). */
int hl_http_server_listen(hl_http_server *srv, const char *host,
                          uint16_t port);
uint16_t hl_http_server_port(const hl_http_server *srv);
/* New limits for connections accepted from now on. */
void hl_http_server_set_limits(hl_http_server *srv,
                               const hl_http_limits *limits);
/* Stop accepting; idle connections close now, busy ones after their
 * answers. Upgraded connections are left to their owner, which closes them
 * with hl_http_raw_close (before or during shutdown); hl_http_server_abort
 * ends them otherwise. done(srv) runs once every handle is closed; then
 * destroy. */
void hl_http_server_shutdown(hl_http_server *srv,
                             void (*done)(hl_http_server *srv, void *ud),
                             void *ud);
/* After shutdown: close every connection now, answered or not, upgraded
 * ones too (their on_close runs). */
void hl_http_server_abort(hl_http_server *srv);
/* Open connections, upgraded ones included. */
size_t hl_http_server_connections(const hl_http_server *srv);
void hl_http_server_destroy(hl_http_server *srv);

/* extra: further header lines, each ending in "\r\n", or NULL. */
void hl_http_respond(hl_http_req *req, int status, const char *content_type,
                     const char *extra, const void *body, size_t len);
/* {"error":{"code":code,"message":message}} with that status. */
void hl_http_respond_error(hl_http_req *req, int status, const char *code,
                           const char *message, const char *extra);

/* ---- taking a connection over after "101 Switching Protocols" ----------- */

typedef struct hl_http_raw hl_http_raw;

/* All run on the loop thread. */
typedef struct {
    /* Bytes read after the upgrade; data is valid during the call only. */
    void (*on_data)(hl_http_raw *r, const char *data, size_t len, void *ud);
    /* Optional: every byte written with hl_http_raw_write is out. */
    void (*on_drain)(hl_http_raw *r, void *ud);
    /* The connection is gone: the peer closed or reset it, a write failed,
     * hl_http_server_abort, or hl_http_raw_close finished. Runs exactly
     * once, never from inside another hl_http_* call; r is invalid once it
     * returns and must not be written to from it. */
    void (*on_close)(hl_http_raw *r, void *ud);
} hl_http_raw_cbs;

/*
 * Answer req with "101 Switching Protocols", "Connection: Upgrade" and
 * extra (further header lines, each ending in "\r\n", naming the protocol:
 * "Upgrade: websocket\r\n..."), and hand the connection to cbs (on_data and
 * on_close are required). The 101 goes out after the answers to earlier
 * requests on the connection; requests after this one are never served.
 * Bytes the client sent after the request's end come to on_data first,
 * from the loop, after this returns. The connection is then exempt from
 * the header and idle timeouts. Returns the connection, valid until its
 * on_close; or NULL, having answered req with an error instead (500 when
 * req did not ask for an upgrade, "Connection: Upgrade" with an Upgrade
 * header, or cbs lacks a required callback; 503 during shutdown or when
 * out of memory), and then no callback runs.
 */
hl_http_raw *hl_http_upgrade(hl_http_req *req, const char *extra,
                             const hl_http_raw_cbs *cbs, void *ud);
/* Queue a copy of data. Returns 0, UV_EPIPE (closing or closed),
 * HL_ETOOBIG (over 4 GiB at once) or HL_ENOMEM. */
int hl_http_raw_write(hl_http_raw *r, const void *data, size_t len);
/* Bytes queued and not yet written. */
size_t hl_http_raw_pending(const hl_http_raw *r);
/* Stop reading and close once the queued writes are out (closing anyway
 * after 2 s); on_close follows. Later writes fail. */
void hl_http_raw_close(hl_http_raw *r);

/* Case-insensitive header lookup; NULL when absent. */
const char *hl_http_header_get(const hl_http_req *req, const char *name);
const char *hl_http_status_text(int status);

#endif
