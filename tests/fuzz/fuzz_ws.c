/* fuzz_ws.c - libFuzzer target: WebSocket frames fed to the parser in both
 * mask modes, whole and split at a chosen point, must give the same result;
 * every message handed over must be well-formed and survive re-encoding;
 * the handshake check must answer any header set. */
#include "buf.h"
#include "http.h"
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 64

typedef struct {
    hl_buf log; /* opcode, length, close code and payload of every message */
    int expect_masked;
} transcript;

static int same_message(void *ud, const hl_ws_message *m)
{
    const hl_ws_message *want = ud;
    if (m->opcode != want->opcode || m->len != want->len ||
        memcmp(m->data, want->data, m->len) ||
        m->close_code != want->close_code)
        abort();
    return 0;
}

/* A message the parser accepted, written again as its peer would and read
 * back, must come out the same. */
static void reencode(const hl_ws_message *m, int expect_masked)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    if (hl_ws_frame(&b, m->opcode, m->data, m->len,
                    expect_masked ? mask : NULL))
        abort();
    hl_ws_parser p;
    hl_ws_parser_init(&p, MAX_MESSAGE, expect_masked);
    if (hl_ws_parser_feed(&p, b.p, b.len, same_message, (void *)m))
        abort();
    hl_ws_parser_close(&p);
    hl_buf_free(&b);
}

static int on_message(void *ud, const hl_ws_message *m)
{
    transcript *t = ud;
    switch (m->opcode) {
    case HL_WS_TEXT:
        if (!hl_utf8_valid(m->data, m->len))
            abort();
        /* fall through */
    case HL_WS_BINARY:
        if (m->len > MAX_MESSAGE)
            abort();
        break;
    case HL_WS_CLOSE:
        if (m->close_code != HL_WS_NO_STATUS &&
            (m->close_reason_len + 2 != m->len ||
             !hl_utf8_valid(m->close_reason, m->close_reason_len)))
            abort();
        /* fall through */
    case HL_WS_PING:
    case HL_WS_PONG:
        if (m->len > HL_WS_MAX_CONTROL)
            abort();
        break;
    default: abort();
    }
    reencode(m, t->expect_masked);
    uint8_t head[8] = {(uint8_t)m->opcode, (uint8_t)(m->len >> 8),
                       (uint8_t)m->len, (uint8_t)(m->close_code >> 8),
                       (uint8_t)m->close_code};
    hl_buf_put(&t->log, head, sizeof head);
    hl_buf_put(&t->log, m->data, m->len);
    /* A PONG of exactly 3 bytes stops the parser: the stop path is fuzzed
     * too. */
    return m->opcode == HL_WS_PONG && m->len == 3 ? 77 : 0;
}

static int parse(const uint8_t *data, size_t size, size_t split, int masked,
                 transcript *t)
{
    hl_ws_parser p;
    hl_buf_init(&t->log, NULL, 0);
    t->expect_masked = masked;
    hl_ws_parser_init(&p, MAX_MESSAGE, masked);
    int rc = hl_ws_parser_feed(&p, data, split, on_message, t);
    if (!rc)
        rc = hl_ws_parser_feed(&p, data + split, size - split, on_message, t);
    if (rc && (!p.error || hl_ws_parser_feed(&p, "", 0, on_message, t) != rc))
        abort();
    if (!rc && p.error)
        abort();
    hl_ws_parser_close(&p);
    return rc;
}

static void frames(const uint8_t *data, size_t size, size_t split)
{
    for (int masked = 0; masked <= 1; masked++) {
        transcript a, b;
        int ra = parse(data, size, 0, masked, &a);
        int rb = parse(data, size, split, masked, &b);
        if (ra != rb || a.log.len != b.log.len ||
            (a.log.len && memcmp(a.log.p, b.log.p, a.log.len)))
            abort();
        if (ra != 0 && ra != HL_WS_PROTOCOL && ra != HL_WS_BAD_DATA &&
            ra != HL_WS_TOO_BIG && ra != 77)
            abort();
        hl_buf_free(&a.log);
        hl_buf_free(&b.log);
    }
}

/* Lines "name: value" after a first line holding the method. */
static void handshake(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = 0;
    hl_http_header h[16];
    hl_http_req req;
    memset(&req, 0, sizeof req);
    req.headers = h;
    char *line = text, *next;
    req.method = line;
    for (; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (line == text || req.n_headers == 16)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        h[req.n_headers].name = line;
        h[req.n_headers].value = colon + 1;
        req.n_headers++;
    }
    char accept[29];
    const char *why = NULL;
    int st = hl_ws_handshake_check(&req, accept, &why);
    if (st == 0 ? (strlen(accept) != 28 || why)
                : ((st != 400 && st != 426) || !why || accept[0]))
        abort();
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* The first byte says where to split the rest, as a fraction. */
    size_t split = (size - 1) * data[0] / 255;
    frames(data + 1, size - 1, split);
    handshake(data + 1, size - 1);
    hl_utf8_state st = {0, 0, 0};
    int ok = 1;
    for (size_t i = 1; i < size && ok; i++)
        ok = hl_utf8_step(&st, data + i, 1);
    if ((ok && !st.need) != hl_utf8_valid(data + 1, size - 1))
        abort();
    return 0;
}
