/* fuzz_http.c - libFuzzer target: raw request bytes over a real loopback
 * connection to the HTTP server and webhook intake; any input must get
 * well-formed answers or a closed connection, never a crash or a leak. */
#include "config.h"
#include "http.h"
#include "intake.h"
#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An in-memory queue: every append succeeds at once. */
static int mem_append(hl_queue *q, const hl_inbound *ev, hl_append_cb cb,
                      void *ud)
{
    (void)q;
    hl_append_result res = {.status = 0};
    memcpy(res.id, ev->id, sizeof res.id);
    cb(ud, &res);
    return 0;
}

static uint64_t mem_backlog(const hl_queue *q)
{
    (void)q;
    return 0;
}

static void mem_close(hl_queue *q)
{
    (void)q;
}

/* Nothing is ever waiting to be normalized here. */
static int mem_read(hl_queue *q, int64_t after, size_t max,
                    hl_stored_batch *out)
{
    (void)q;
    (void)after;
    (void)max;
    memset(out, 0, sizeof *out);
    return 0;
}

static int mem_settle(hl_queue *q, hl_settle *st)
{
    (void)q;
    hl_settle_free(st);
    return 0;
}

static void mem_on_commit(hl_queue *q, hl_commit_hook fn, void *ud)
{
    (void)q;
    (void)fn;
    (void)ud;
}

static int mem_retry(hl_queue *q)
{
    (void)q;
    return 0;
}

static const hl_queue_ops mem_ops = {
    .append = mem_append,
    .backlog = mem_backlog,
    .close = mem_close,
    .read_received = mem_read,
    .settle_take = mem_settle,
    .on_commit = mem_on_commit,
    .retry_unparsed = mem_retry,
};
static hl_queue mem_queue = {&mem_ops};

static const char config_text[] =
    "server: { listen: 127.0.0.1:0, max_body: 4KiB }\n"
    "sources:\n"
    "  open: { kind: generic, idempotency_header: X-Id }\n"
    "  tok: { kind: generic, verify: { bearer: { tokens: [t] } } }\n"
    "  gh:\n"
    "    kind: github\n"
    "    verify: { hmac: { header: X-Hub-Signature-256, prefix: \"sha256=\","
    " secrets: [s] } }\n"
    "  sl: { kind: slack, rate: { per_second: 1000, burst: 1000 } }\n";

static uv_loop_t loop;
static hl_http_server *srv;
static hl_intake *intake;

static void on_request(hl_http_req *req, void *ud)
{
    (void)ud;
    if (!strncmp(req->path, "/v1/hooks/", 10) && req->path[10])
        hl_intake_handle(intake, req, req->path + 10);
    else if (!strcmp(req->path, "/healthz"))
        hl_http_respond(req, 200, "application/json", NULL, "{}", 2);
    else
        hl_http_respond_error(req, 404, "not_found", "no route", NULL);
}

static void setup(void)
{
    hl_diags d = {0};
    hl_config *cfg;
    if (hl_config_load_string("fuzz.yaml", config_text, strlen(config_text),
                              &d, &cfg))
        abort();
    hl_diags_free(&d);
    uv_loop_init(&loop);
    hl_http_limits lim = {4096, 100, 10000, 10000};
    if (hl_http_server_create(&loop, &lim, on_request, NULL, &srv) ||
        hl_http_server_listen(srv, "127.0.0.1", 0) ||
        hl_intake_create(&mem_queue, cfg, &intake))
        abort();
    hl_config_destroy(cfg); /* the intake holds its own reference */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(hl_http_server_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa))
        abort();
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    char buf[65536];
    int eof = 0;
    /* Feed the bytes, then close our side; run the loop until the server
     * has closed the connection. */
    while (!eof) {
        if (sent < size) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = size;
            if (sent == size)
                shutdown(fd, SHUT_WR);
        } else if (size == 0) {
            shutdown(fd, SHUT_WR);
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            eof = 1;
    }
    close(fd);
    while (hl_http_server_connections(srv))
        uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
