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
 * answers. done(srv) runs once every handle is closed; then destroy. */
void hl_http_server_shutdown(hl_http_server *srv,
                             void (*done)(hl_http_server *srv, void *ud),
                             void *ud);
/* After shutdown: close every connection now, answered or not. */
void hl_http_server_abort(hl_http_server *srv);
size_t hl_http_server_connections(const hl_http_server *srv);
void hl_http_server_destroy(hl_http_server *srv);

/* extra: further header lines, each ending in "\r\n", or NULL. */
void hl_http_respond(hl_http_req *req, int status, const char *content_type,
                     const char *extra, const void *body, size_t len);
/* {"error":{"code":code,"message":message}} with that status. */
void hl_http_respond_error(hl_http_req *req, int status, const char *code,
                           const char *message, const char *extra);

/* Case-insensitive header lookup; NULL when absent. */
const char *hl_http_header_get(const hl_http_req *req, const char *name);
const char *hl_http_status_text(int status);

#endif
