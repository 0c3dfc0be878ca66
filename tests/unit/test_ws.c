/* test_ws.c - the WebSocket protocol core (handshake, frames, UTF-8) and the
 * HTTP server's upgrade path over real loopback sockets. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "http.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- collecting what the parser hands over ------------------------------- */

#define MAX_GOT 32

typedef struct {
    int n;
    int opcode[MAX_GOT];
    size_t len[MAX_GOT];
    char data[MAX_GOT][256]; /* the first 255 bytes, NUL-terminated */
    uint16_t code[MAX_GOT];
    char reason[MAX_GOT][128];
    hl_buf log;  /* every message in full: opcode, length, payload */
    hl_buf last; /* the last message's payload in full */
    int stop_at; /* return 4321 from the n-th message (1-based) */
} got;

static void got_init(got *g)
{
    memset(g, 0, sizeof *g);
    hl_buf_init(&g->log, NULL, 0);
    hl_buf_init(&g->last, NULL, 0);
}

static void got_free(got *g)
{
    hl_buf_free(&g->log);
    hl_buf_free(&g->last);
}

static int on_msg(void *ud, const hl_ws_message *m)
{
    got *g = ud;
    assert_non_null(m->data);
    if (g->n < MAX_GOT) {
        int i = g->n;
        g->opcode[i] = m->opcode;
        g->len[i] = m->len;
        size_t k = m->len < 255 ? m->len : 255;
        memcpy(g->data[i], m->data, k);
        g->data[i][k] = 0;
        g->code[i] = m->close_code;
        k = m->close_reason_len < 127 ? m->close_reason_len : 127;
        memcpy(g->reason[i], m->close_reason, k);
        g->reason[i][k] = 0;
    }
    g->n++;
    char line[64];
    int n = snprintf(line, sizeof line, "[%d %zu %u]", m->opcode, m->len,
                     (unsigned)m->close_code);
    hl_buf_put(&g->log, line, (size_t)n);
    hl_buf_put(&g->log, m->data, m->len);
    hl_buf_free(&g->last);
    hl_buf_put(&g->last, m->data, m->len);
    return g->stop_at && g->n == g->stop_at ? 4321 : 0;
}

/* One frame with every head bit chosen: b0 is FIN, RSV and opcode as sent. */
static void mkframe(hl_buf *out, uint8_t b0, const void *pl, size_t len,
                    const uint8_t *mask)
{
    uint8_t h[14];
    size_t n = 0;
    uint8_t mb = mask ? 0x80 : 0;
    h[n++] = b0;
    if (len < 126) {
        h[n++] = (uint8_t)(mb | len);
    } else if (len <= 0xFFFF) {
        h[n++] = mb | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = mb | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    hl_buf_put(out, h, n);
    const uint8_t *s = pl;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = s[i] ^ (mask ? mask[i & 3] : 0);
        hl_buf_put(out, &b, 1);
    }
    assert_false(out->oom);
}

/* Feed all at once, then one byte at a time, then in uneven pieces; the
 * three must return the same code and hand over the same messages. */
static int feed_3ways(const void *data, size_t len, size_t max, int masked,
                      got *g, const char **err)
{
    hl_ws_parser p;
    got g2, g3;
    const uint8_t *s = data;
    int n0 = g->n; /* g may hold messages from earlier feeds */
    size_t l0 = g->log.len;

    hl_ws_parser_init(&p, max, masked);
    int rc = hl_ws_parser_feed(&p, data, len, on_msg, g);
    if (err)
        *err = p.error;
    hl_ws_parser_close(&p);

    got_init(&g2);
    g2.stop_at = g->stop_at;
    hl_ws_parser_init(&p, max, masked);
    int rc2 = 0;
    for (size_t i = 0; i < len && !rc2; i++)
        rc2 = hl_ws_parser_feed(&p, s + i, 1, on_msg, &g2);
    if (rc2) /* stopped: later feeds give the same code */
        assert_int_equal(hl_ws_parser_feed(&p, "\x81", 1, on_msg, &g2), rc2);
    hl_ws_parser_close(&p);

    got_init(&g3);
    g3.stop_at = g->stop_at;
    hl_ws_parser_init(&p, max, masked);
    int rc3 = 0;
    for (size_t i = 0, step = 1; i < len && !rc3;) {
        size_t k = len - i < step ? len - i : step;
        rc3 = hl_ws_parser_feed(&p, s + i, k, on_msg, &g3);
        i += k;
        step = step * 3 % 17 + 1;
    }
    hl_ws_parser_close(&p);

    assert_int_equal(rc2, rc);
    assert_int_equal(rc3, rc);
    assert_int_equal(g2.n, g->n - n0);
    assert_int_equal(g3.n, g->n - n0);
    assert_int_equal(g2.log.len, g->log.len - l0);
    assert_int_equal(g3.log.len, g->log.len - l0);
    if (g->log.len > l0) {
        assert_memory_equal(g2.log.p, g->log.p + l0, g->log.len - l0);
        assert_memory_equal(g3.log.p, g->log.p + l0, g->log.len - l0);
    }
    got_free(&g2);
    got_free(&g3);
    return rc;
}

/* ---- handshake ----------------------------------------------------------- */

static void test_accept_rfc_example(void **state)
{
    (void)state;
    char acc[29];
    hl_ws_accept_of(RFC_KEY, acc);
    assert_string_equal(acc, RFC_ACCEPT);
}

typedef struct {
    const char *method;
    hl_http_header h[8];
    size_t n;
} fake_req;

static hl_http_req as_req(fake_req *f)
{
    hl_http_req r = {.method = f->method, .path = "/ws"};
    r.headers = f->h;
    r.n_headers = f->n;
    return r;
}

static fake_req good_req(void)
{
    fake_req f = {"GET",
                  {{"Host", "example.com"},
                   {"Upgrade", "websocket"},
                   {"Connection", "Upgrade"},
                   {"Sec-WebSocket-Key", RFC_KEY},
                   {"Sec-WebSocket-Version", "13"}},
                  5};
    return f;
}

static void test_handshake_accepts_browser_forms(void **state)
{
    (void)state;
    char acc[29];
    const char *why = "x";
    fake_req f = good_req();
    hl_http_req r = as_req(&f);
    assert_int_equal(hl_ws_handshake_check(&r, acc, &why), 0);
    assert_string_equal(acc, RFC_ACCEPT);
    assert_null(why);

    /* Firefox: a list in Connection; mixed case; spaces around values;
     * the token in a second Connection header. */
    f.h[1].value = "WebSocket";
    f.h[2].value = "keep-alive, Upgrade";
    f.h[3].value = " " RFC_KEY " ";
    f.h[4].value = " 13 ";
    r = as_req(&f);
    assert_int_equal(hl_ws_handshake_check(&r, acc, &why), 0);
    assert_string_equal(acc, RFC_ACCEPT);

    f.h[2].value = "keep-alive";
    f.h[5] = (hl_http_header){"connection", "upgrade"};
    f.n = 6;
    r = as_req(&f);
    assert_int_equal(hl_ws_handshake_check(&r, acc, &why), 0);
    assert_string_equal(acc, RFC_ACCEPT);
}

static void test_handshake_errors_name_the_header(void **state)
{
    (void)state;
    static const struct {
        int idx;           /* header to change, -1: the method */
        const char *value; /* NULL: remove it */
        int status;
        const char *why; /* in the message */
    } cases[] = {
        {-1, "POST", 400, "GET"},
        {1, NULL, 400, "Upgrade"},
        {1, "h2c", 400, "Upgrade: websocket"},
        {1, "websockets", 400, "Upgrade"},
        {2, NULL, 400, "Connection"},
        {2, "keep-alive", 400, "Connection: Upgrade"},
        {2, "upgraded", 400, "Connection"},
        {4, NULL, 426, "Sec-WebSocket-Version: 13"},
        {4, "8", 426, "Sec-WebSocket-Version: 13"},
        {4, "13, 8", 426, "Sec-WebSocket-Version"},
        {3, NULL, 400, "Sec-WebSocket-Key"},
        {3, "", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25jZQ", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25jZQ=", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25j", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25jZQ===", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25jZ!==", 400, "Sec-WebSocket-Key"},
        {3, "dGhlIHNhbXBsZSBub25jZSE=", 400, "16"}, /* 17 bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_req f = good_req();
        if (cases[i].idx < 0) {
            f.method = cases[i].value;
        } else if (cases[i].value) {
            f.h[cases[i].idx].value = cases[i].value;
        } else {
            f.h[cases[i].idx] = f.h[f.n - 1];
            f.n--;
        }
        hl_http_req r = as_req(&f);
        char acc[29] = "junk";
        const char *why = NULL;
        int st = hl_ws_handshake_check(&r, acc, &why);
        if (st != cases[i].status || !why || !strstr(why, cases[i].why))
            fail_msg("case %zu: status %d, why \"%s\"; wanted %d and \"%s\"", i,
                     st, why ? why : "(null)", cases[i].status, cases[i].why);
        assert_string_equal(acc, "");
    }
}

/* ---- RFC 6455 section 5.7 ------------------------------------------------ */

static void test_rfc_single_masked_text(void **state)
{
    (void)state;
    static const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                0x7f, 0x9f, 0x4d, 0x51, 0x58};
    got g;
    got_init(&g);
    assert_int_equal(feed_3ways(f, sizeof f, 1024, 1, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.opcode[0], HL_WS_TEXT);
    assert_int_equal(g.len[0], 5);
    assert_string_equal(g.data[0], "Hello");
    got_free(&g);

    /* What hl_ws_frame writes with the same mask is those bytes. */
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_ws_frame(&b, HL_WS_TEXT, "Hello", 5, rfc_mask), 0);
    assert_int_equal(b.len, sizeof f);
    assert_memory_equal(b.p, f, sizeof f);
    hl_buf_free(&b);
}

static void test_rfc_unmasked_and_fragmented_in_client_mode(void **state)
{
    (void)state;
    static const uint8_t one[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c,
                                   0x80, 0x02, 0x6c, 0x6f};
    got g;
    got_init(&g);
    assert_int_equal(feed_3ways(one, sizeof one, 1024, 0, &g, NULL), 0);
    assert_int_equal(feed_3ways(frag, sizeof frag, 1024, 0, &g, NULL), 0);
    assert_int_equal(g.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g.opcode[i], HL_WS_TEXT);
        assert_string_equal(g.data[i], "Hello");
    }
    got_free(&g);

    /* The same unmasked frame is refused on a server. */
    hl_ws_parser p;
    got_init(&g);
    hl_ws_parser_init(&p, 1024, 1);
    assert_int_equal(hl_ws_parser_feed(&p, one, sizeof one, on_msg, &g),
                     HL_WS_PROTOCOL);
    assert_int_equal(g.n, 0);
    hl_ws_parser_close(&p);
    got_free(&g);
}

static void test_rfc_ping_and_masked_pong(void **state)
{
    (void)state;
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    got g;
    got_init(&g);
    assert_int_equal(feed_3ways(ping, sizeof ping, 1024, 0, &g, NULL), 0);
    assert_int_equal(feed_3ways(pong, sizeof pong, 1024, 1, &g, NULL), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.opcode[0], HL_WS_PING);
    assert_string_equal(g.data[0], "Hello");
    assert_int_equal(g.opcode[1], HL_WS_PONG);
    assert_string_equal(g.data[1], "Hello");
    got_free(&g);
}

static void test_fragments_with_interleaved_ping(void **state)
{
    (void)state;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x01, "Hel", 3, rfc_mask);        /* TEXT, not FIN */
    mkframe(&b, 0x89, "p1", 2, rfc_mask);         /* PING */
    mkframe(&b, 0x00, "l", 1, rfc_mask);          /* CONT */
    mkframe(&b, 0x8A, "", 0, rfc_mask);           /* empty PONG */
    mkframe(&b, 0x00, "", 0, rfc_mask);           /* empty CONT */
    mkframe(&b, 0x80, "o", 1, rfc_mask);          /* CONT, FIN */
    mkframe(&b, 0x02, "\x00\x01", 2, rfc_mask);   /* BINARY, not FIN */
    mkframe(&b, 0x88, "\x03\xe8ok", 4, rfc_mask); /* CLOSE 1000 "ok" */
    mkframe(&b, 0x80, "\xff", 1, rfc_mask);       /* CONT, FIN */
    mkframe(&b, 0x81, "", 0, rfc_mask);           /* empty TEXT */
    got g;
    got_init(&g);
    assert_int_equal(feed_3ways(b.p, b.len, 1024, 1, &g, NULL), 0);
    assert_int_equal(g.n, 6);
    assert_int_equal(g.opcode[0], HL_WS_PING);
    assert_string_equal(g.data[0], "p1");
    assert_int_equal(g.opcode[1], HL_WS_PONG);
    assert_int_equal(g.len[1], 0);
    assert_int_equal(g.opcode[2], HL_WS_TEXT);
    assert_string_equal(g.data[2], "Hello");
    assert_int_equal(g.opcode[3], HL_WS_CLOSE);
    assert_int_equal(g.code[3], HL_WS_NORMAL);
    assert_string_equal(g.reason[3], "ok");
    assert_int_equal(g.opcode[4], HL_WS_BINARY);
    assert_int_equal(g.len[4], 3);
    assert_memory_equal(g.data[4], "\x00\x01\xff", 3);
    assert_int_equal(g.opcode[5], HL_WS_TEXT);
    assert_int_equal(g.len[5], 0);
    got_free(&g);
    hl_buf_free(&b);
}

static void test_close_without_code_is_1005(void **state)
{
    (void)state;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x88, "", 0, NULL);
    got g;
    got_init(&g);
    assert_int_equal(feed_3ways(b.p, b.len, 16, 0, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.opcode[0], HL_WS_CLOSE);
    assert_int_equal(g.code[0], HL_WS_NO_STATUS);
    assert_int_equal(g.len[0], 0);
    got_free(&g);
    hl_buf_free(&b);
}

/* ---- errors -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int masked; /* server mode */
    size_t max;
    int code;
    const char *why; /* in p->error */
    int msgs;        /* messages handed over before the error */
} err_case;

static void check_error(const err_case *ec, const hl_buf *b)
{
    got g;
    got_init(&g);
    const char *why = NULL;
    int rc = feed_3ways(b->p, b->len, ec->max, ec->masked, &g, &why);
    if (rc != ec->code || !why || !strstr(why, ec->why) || g.n != ec->msgs)
        fail_msg("%s: code %d (\"%s\") after %d messages; wanted %d (\"%s\") "
                 "after %d",
                 ec->name, rc, why ? why : "(null)", g.n, ec->code, ec->why,
                 ec->msgs);
    got_free(&g);
}

static void test_every_error_code(void **state)
{
    (void)state;
    const uint8_t *m = rfc_mask;
    hl_buf b;
    uint8_t big[8] = {0};
#define CASE(nm, msk, mx, cd, wy, ms, ...)                                     \
    do {                                                                       \
        hl_buf_init(&b, NULL, 0);                                              \
        __VA_ARGS__;                                                           \
        err_case ec = {nm, msk, mx, cd, wy, ms};                               \
        check_error(&ec, &b);                                                  \
        hl_buf_free(&b);                                                       \
    } while (0)

    CASE("rsv1", 1, 64, HL_WS_PROTOCOL, "reserved", 0,
         mkframe(&b, 0xC1, "a", 1, m));
    CASE("rsv3 on ping", 1, 64, HL_WS_PROTOCOL, "reserved", 0,
         mkframe(&b, 0x99, "a", 1, m));
    CASE("opcode 3", 1, 64, HL_WS_PROTOCOL, "opcode", 0,
         mkframe(&b, 0x83, "a", 1, m));
    CASE("opcode 11", 1, 64, HL_WS_PROTOCOL, "opcode", 0,
         mkframe(&b, 0x8B, "", 0, m));
    CASE("unmasked from client", 1, 64, HL_WS_PROTOCOL, "unmasked", 0,
         mkframe(&b, 0x81, "a", 1, NULL));
    CASE("masked from server", 0, 64, HL_WS_PROTOCOL, "masked", 0,
         mkframe(&b, 0x81, "a", 1, m));
    CASE("fragmented ping", 1, 64, HL_WS_PROTOCOL, "fragmented control", 0,
         mkframe(&b, 0x09, "a", 1, m));
    CASE("close of 126", 1, 64, HL_WS_PROTOCOL, "125", 0, {
        char pl[126];
        memset(pl, 'a', sizeof pl);
        pl[0] = 0x03;
        pl[1] = (char)0xe8;
        mkframe(&b, 0x88, pl, sizeof pl, m);
    });
    CASE("ping of 127-coded length", 0, 64, HL_WS_PROTOCOL, "125", 0,
         hl_buf_put(&b, "\x89\x7f", 2));
    CASE("continuation first", 1, 64, HL_WS_PROTOCOL, "continuation", 0,
         mkframe(&b, 0x80, "a", 1, m));
    CASE("continuation after a whole message", 1, 64, HL_WS_PROTOCOL,
         "continuation", 1, {
             mkframe(&b, 0x81, "a", 1, m);
             mkframe(&b, 0x80, "b", 1, m);
         });
    CASE("text inside a fragmented message", 1, 64, HL_WS_PROTOCOL,
         "fragmented message is open", 0, {
             mkframe(&b, 0x01, "a", 1, m);
             mkframe(&b, 0x81, "b", 1, m);
         });
    CASE("binary inside a fragmented message, after a ping", 1, 64,
         HL_WS_PROTOCOL, "fragmented message is open", 1, {
             mkframe(&b, 0x02, "a", 1, m);
             mkframe(&b, 0x89, "", 0, m);
             mkframe(&b, 0x82, "b", 1, m);
         });
    CASE("64-bit top bit", 0, SIZE_MAX, HL_WS_PROTOCOL, "top bit", 0, {
        hl_buf_put(&b, "\x82\x7f", 2);
        big[0] = 0x80;
        hl_buf_put(&b, big, 8);
    });
    CASE("close of 1 byte", 1, 64, HL_WS_PROTOCOL, "1-byte", 0,
         mkframe(&b, 0x88, "\x03", 1, m));
    static const unsigned bad_codes[] = {0,    999,  1004, 1005, 1006, 1012,
                                         1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t pl[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        CASE("bad close code", 1, 64, HL_WS_PROTOCOL, "close code", 0,
             mkframe(&b, 0x88, pl, 2, m));
    }
    CASE("text not UTF-8", 1, 64, HL_WS_BAD_DATA, "UTF-8", 0,
         mkframe(&b, 0x81, "a\xff", 2, m));
    CASE("text ends mid-sequence", 1, 64, HL_WS_BAD_DATA, "UTF-8", 0,
         mkframe(&b, 0x81, "a\xe2\x82", 3, m));
    CASE("fragmented text ends mid-sequence", 1, 64, HL_WS_BAD_DATA, "UTF-8", 0,
         {
             mkframe(&b, 0x01, "a\xe2", 2, m);
             mkframe(&b, 0x80, "\x82", 1, m);
         });
    CASE("close reason not UTF-8", 1, 64, HL_WS_BAD_DATA, "reason", 0,
         mkframe(&b, 0x88, "\x03\xe8\xc0\x80", 4, m));
    CASE("too big in one frame", 1, 4, HL_WS_TOO_BIG, "limit", 0,
         mkframe(&b, 0x82, "12345", 5, m));
    CASE("too big over fragments", 1, 4, HL_WS_TOO_BIG, "limit", 1, {
        mkframe(&b, 0x02, "123", 3, m);
        mkframe(&b, 0x89, "ping longer than the limit", 26, m);
        mkframe(&b, 0x80, "45", 2, m);
    });
#undef CASE
}

static void test_handler_stop_value_is_returned(void **state)
{
    (void)state;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    for (int i = 0; i < 3; i++)
        mkframe(&b, 0x81, "x", 1, rfc_mask);
    got g;
    got_init(&g);
    g.stop_at = 2;
    assert_int_equal(feed_3ways(b.p, b.len, 64, 1, &g, NULL), 4321);
    assert_int_equal(g.n, 2); /* the third frame was not read */
    got_free(&g);
    hl_buf_free(&b);
}

static void test_valid_close_codes(void **state)
{
    (void)state;
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                  1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint8_t pl[2] = {(uint8_t)(ok[i] >> 8), (uint8_t)ok[i]};
        hl_buf b;
        hl_buf_init(&b, NULL, 0);
        mkframe(&b, 0x88, pl, 2, rfc_mask);
        got g;
        got_init(&g);
        assert_int_equal(feed_3ways(b.p, b.len, 0, 1, &g, NULL), 0);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.code[0], ok[i]);
        assert_int_equal(g.reason[0][0], 0);
        got_free(&g);
        hl_buf_free(&b);
    }
}

/* ---- lengths and limits -------------------------------------------------- */

static void test_16_and_64_bit_lengths(void **state)
{
    (void)state;
    static const size_t sizes[] = {125, 126, 127, 300, 65535, 65536, 70001};
    for (int masked = 0; masked <= 1; masked++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            char *pl = malloc(n);
            assert_non_null(pl);
            for (size_t k = 0; k < n; k++)
                pl[k] = (char)(k * 7 + 3);
            hl_buf b;
            hl_buf_init(&b, NULL, 0);
            mkframe(&b, 0x82, pl, n, masked ? rfc_mask : NULL);
            assert_int_equal(b.len, n + 2 +
                                        (n < 126     ? 0
                                         : n < 65536 ? 2
                                                     : 8) +
                                        (masked ? 4 : 0));
            got g;
            got_init(&g);
            assert_int_equal(feed_3ways(b.p, b.len, 70001, masked, &g, NULL),
                             0);
            assert_int_equal(g.n, 1);
            assert_int_equal(g.opcode[0], HL_WS_BINARY);
            assert_int_equal(g.last.len, n);
            assert_memory_equal(g.last.p, pl, n);
            got_free(&g);
            hl_buf_free(&b);
            free(pl);
        }
    }
}

static void test_too_big_found_before_payload(void **state)
{
    (void)state;
    hl_ws_parser p;
    got g;
    got_init(&g);
    /* A 16-bit length of 1000 against a limit of 100: only the head. */
    hl_ws_parser_init(&p, 100, 1);
    assert_int_equal(hl_ws_parser_feed(&p, "\x82\xfe\x03\xe8\x01\x02\x03\x04",
                                       8, on_msg, &g),
                     HL_WS_TOO_BIG);
    assert_int_equal(p.msg.len, 0);
    assert_string_equal(p.error, "message larger than the limit");
    hl_ws_parser_close(&p);

    /* A 64-bit length of 1 TiB from a server. */
    hl_ws_parser_init(&p, 1 << 20, 0);
    assert_int_equal(hl_ws_parser_feed(&p,
                                       "\x81\x7f\x00\x00\x01\x00\x00\x00"
                                       "\x00\x00",
                                       10, on_msg, &g),
                     HL_WS_TOO_BIG);
    hl_ws_parser_close(&p);

    /* A second fragment that would cross the limit: refused at its head,
     * with only the first fragment buffered. */
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    char sixty[60];
    memset(sixty, 'x', sizeof sixty);
    mkframe(&b, 0x01, sixty, 60, rfc_mask);
    hl_buf_put(&b, "\x80\xa9", 2); /* CONT, FIN, masked, 41 */
    hl_ws_parser_init(&p, 100, 1);
    assert_int_equal(hl_ws_parser_feed(&p, b.p, b.len, on_msg, &g), 0);
    assert_int_equal(hl_ws_parser_feed(&p, "\x01\x02\x03\x04", 4, on_msg, &g),
                     HL_WS_TOO_BIG);
    assert_int_equal(p.msg.len, 60);
    hl_ws_parser_close(&p);
    hl_buf_free(&b);

    /* Exactly at the limit is fine. */
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x01, sixty, 60, rfc_mask);
    mkframe(&b, 0x80, sixty, 40, rfc_mask);
    assert_int_equal(feed_3ways(b.p, b.len, 100, 1, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], 100);
    hl_buf_free(&b);
    got_free(&g);
}

/* ---- UTF-8 --------------------------------------------------------------- */

static void test_utf8_table(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } t[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"\x00", 1, 1},
        {"\x7f", 1, 1},
        {"\xc2\x80", 2, 1},         /* U+0080 */
        {"\xdf\xbf", 2, 1},         /* U+07FF */
        {"\xe0\xa0\x80", 3, 1},     /* U+0800 */
        {"\xe2\x82\xac", 3, 1},     /* euro sign */
        {"\xed\x9f\xbf", 3, 1},     /* U+D7FF */
        {"\xee\x80\x80", 3, 1},     /* U+E000 */
        {"\xef\xbf\xbf", 3, 1},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 1}, /* U+10000 */
        {"\xf0\x9f\x98\x80", 4, 1}, /* an emoji */
        {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1},
        {"\x80", 1, 0}, /* lone continuation */
        {"\xbf", 1, 0},
        {"\xc0\x80", 2, 0},         /* overlong NUL */
        {"\xc1\xbf", 2, 0},         /* overlong */
        {"\xe0\x80\x80", 3, 0},     /* overlong */
        {"\xe0\x9f\xbf", 3, 0},     /* overlong */
        {"\xf0\x80\x80\x80", 4, 0}, /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0},     /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0},     /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0},
        {"\xfe", 1, 0},
        {"\xff", 1, 0},
        {"\xc2", 1, 0}, /* truncated */
        {"\xe2\x82", 2, 0},
        {"\xf0\x9f\x98", 3, 0},
        {"\xc2\x41", 2, 0}, /* a continuation missing */
        {"\xe2\x28\xa1", 3, 0},
        {"a\xf0\x9f\x98\x80\x80", 6, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (hl_utf8_valid(t[i].s, t[i].n) != t[i].ok)
            fail_msg("case %zu: hl_utf8_valid gave %d", i, !t[i].ok);
        /* The same verdict byte by byte. */
        hl_utf8_state st = {0, 0, 0};
        int ok = 1;
        for (size_t k = 0; k < t[i].n && ok; k++)
            ok = hl_utf8_step(&st, t[i].s + k, 1);
        assert_int_equal(ok && !st.need, t[i].ok);
    }
}

static void test_utf8_split_across_fragments(void **state)
{
    (void)state;
    hl_buf b;
    got g;
    /* A euro sign and an emoji cut across three fragments: valid. */
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x01, "\xe2", 1, rfc_mask);
    mkframe(&b, 0x00, "\x82\xac\xf0\x9f", 4, rfc_mask);
    mkframe(&b, 0x80, "\x98\x80", 2, rfc_mask);
    got_init(&g);
    assert_int_equal(feed_3ways(b.p, b.len, 64, 1, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.data[0], "\xe2\x82\xac\xf0\x9f\x98\x80");
    got_free(&g);
    hl_buf_free(&b);

    /* A surrogate whose first byte ends a fragment: refused at the second
     * byte, before the message ends. */
    hl_ws_parser p;
    got_init(&g);
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x01, "ok\xed", 3, rfc_mask);
    mkframe(&b, 0x00, "\xa0\x80", 2, rfc_mask);
    hl_ws_parser_init(&p, 64, 1);
    assert_int_equal(hl_ws_parser_feed(&p, b.p, b.len, on_msg, &g),
                     HL_WS_BAD_DATA);
    assert_int_equal(g.n, 0);
    hl_ws_parser_close(&p);
    hl_buf_free(&b);

    /* An invalid byte in the first fragment is refused with that fragment,
     * while the message is still open. */
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x01, "\xc0\x80", 2, rfc_mask);
    hl_ws_parser_init(&p, 64, 1);
    assert_int_equal(hl_ws_parser_feed(&p, b.p, b.len, on_msg, &g),
                     HL_WS_BAD_DATA);
    hl_ws_parser_close(&p);
    hl_buf_free(&b);

    /* Binary messages are not checked. */
    hl_buf_init(&b, NULL, 0);
    mkframe(&b, 0x02, "\xc0", 1, rfc_mask);
    mkframe(&b, 0x80, "\x80\xff", 2, rfc_mask);
    assert_int_equal(feed_3ways(b.p, b.len, 64, 1, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.opcode[0], HL_WS_BINARY);
    hl_buf_free(&b);
    got_free(&g);
}

/* ---- writing ------------------------------------------------------------- */

static void test_round_trip_both_mask_modes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 100000};
    static const uint8_t mask[4] = {0xa5, 0x00, 0xff, 0x3c};
    for (int masked = 0; masked <= 1; masked++) {
        hl_buf b;
        hl_buf_init(&b, NULL, 0);
        char *pl = malloc(100000);
        assert_non_null(pl);
        for (size_t k = 0; k < 100000; k++)
            pl[k] = (char)('a' + k % 26);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            int op = i % 2 ? HL_WS_TEXT : HL_WS_BINARY;
            assert_int_equal(
                hl_ws_frame(&b, op, pl, sizes[i], masked ? mask : NULL), 0);
        }
        assert_int_equal(
            hl_ws_frame(&b, HL_WS_PING, pl, 125, masked ? mask : NULL), 0);
        assert_int_equal(
            hl_ws_frame(&b, HL_WS_PONG, NULL, 0, masked ? mask : NULL), 0);
        assert_int_equal(hl_ws_close_frame(&b, HL_WS_GOING_AWAY, "restart",
                                           masked ? mask : NULL),
                         0);
        got g;
        got_init(&g);
        assert_int_equal(feed_3ways(b.p, b.len, 100000, masked, &g, NULL), 0);
        size_t n = sizeof sizes / sizeof sizes[0];
        assert_int_equal(g.n, n + 3);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(g.opcode[i], i % 2 ? HL_WS_TEXT : HL_WS_BINARY);
            assert_int_equal(g.len[i], sizes[i]);
            assert_memory_equal(g.data[i], pl, sizes[i] < 255 ? sizes[i] : 255);
        }
        assert_int_equal(g.opcode[n], HL_WS_PING);
        assert_int_equal(g.len[n], 125);
        assert_int_equal(g.opcode[n + 1], HL_WS_PONG);
        assert_int_equal(g.opcode[n + 2], HL_WS_CLOSE);
        assert_int_equal(g.code[n + 2], HL_WS_GOING_AWAY);
        assert_string_equal(g.reason[n + 2], "restart");
        /* The last data message in full. */
        assert_int_equal(g.len[n - 1], 100000);
        got_free(&g);
        hl_buf_free(&b);
        free(pl);
    }
}

static void test_close_frame_reason_cut_on_a_character(void **state)
{
    (void)state;
    char reason[301];
    for (int i = 0; i < 150; i++)
        memcpy(reason + 2 * i, "\xc3\xa9", 2); /* e acute */
    reason[300] = 0;
    for (int shift = 0; shift <= 1; shift++) {
        hl_buf b;
        hl_buf_init(&b, NULL, 0);
        /* With shift the text starts with an ASCII byte, so the cut at 123
         * bytes lands inside a character the other way. */
        char r[302];
        snprintf(r, sizeof r, "%s%s", shift ? "x" : "", reason);
        assert_int_equal(hl_ws_close_frame(&b, HL_WS_POLICY, r, NULL), 0);
        assert_true(b.len - 2 <= HL_WS_MAX_CONTROL);
        got g;
        got_init(&g);
        assert_int_equal(feed_3ways(b.p, b.len, 0, 0, &g, NULL), 0);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.code[0], HL_WS_POLICY);
        assert_int_equal(g.len[0], shift ? 2 + 123 : 2 + 122);
        got_free(&g);
        hl_buf_free(&b);
    }
    /* No code: an empty close frame. */
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    assert_int_equal(hl_ws_close_frame(&b, 0, "ignored", NULL), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.p, "\x88\x00", 2);
    /* Frames that cannot be written. */
    char pl[126] = {0};
    assert_int_equal(hl_ws_frame(&b, HL_WS_PING, pl, 126, NULL), HL_ERANGE);
    assert_int_equal(hl_ws_frame(&b, 3, pl, 1, NULL), HL_ERANGE);
    assert_int_equal(hl_ws_frame(&b, 16, pl, 1, NULL), HL_ERANGE);
    assert_int_equal(b.len, 2);
    hl_buf_free(&b);
}

/* ---- the upgrade path of the HTTP server --------------------------------- */

/* The server runs on this thread's loop; a client thread speaks to it over
 * a plain blocking socket and records the first thing that went wrong. */

typedef enum {
    SC_ECHO,
    SC_PIPELINED,
    SC_LATE_UPGRADE,
    SC_REFUSED,
    SC_ABORT,
    SC_PEER_GONE
} scenario;

typedef struct harness {
    scenario sc;
    uv_loop_t loop;
    hl_http_server *srv;
    uint16_t port;
    uv_async_t finished; /* the client thread is done */
    uv_timer_t timer;    /* /slow's answer; the abort check */
    uv_timer_t late;     /* SC_LATE_UPGRADE: the upgrade, answered later */
    hl_http_req *ws_req;
    pthread_t th;
    int shut;
    int done_calls;
    /* the upgraded connection, server side */
    hl_http_raw *raw;
    hl_ws_parser ws;
    int ws_live;
    hl_http_req *slow; /* /slow, answered from the timer */
    hl_buf first_data; /* the first on_data call's bytes */
    int data_calls, drains, close_calls, plain_upgrade_null;
    size_t conns_at_close;
    size_t conns_before_abort;
    int done_before_abort;
    /* the client's verdict */
    char fail[512];
} harness;

#define CL_CHECK(h, cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            if (!(h)->fail[0])                                                 \
                snprintf((h)->fail, sizeof(h)->fail, "line %d: %s", __LINE__,  \
                         #cond);                                               \
            return;                                                            \
        }                                                                      \
    } while (0)

static void on_server_done(hl_http_server *srv, void *ud)
{
    harness *h = ud;
    (void)srv;
    h->done_calls++;
}

/* -- the owner of the upgraded connection -- */

static void raw_send(harness *h, int opcode, const char *data, size_t len)
{
    hl_buf out;
    hl_buf_init(&out, NULL, 0);
    assert_int_equal(hl_ws_frame(&out, opcode, data, len, NULL), 0);
    assert_int_equal(hl_http_raw_write(h->raw, out.p, out.len), 0);
    hl_buf_free(&out);
}

static void on_abort_timer(uv_timer_t *t)
{
    harness *h = t->data;
    h->conns_before_abort = hl_http_server_connections(h->srv);
    h->done_before_abort = h->done_calls;
    hl_http_server_abort(h->srv);
}

static int on_server_msg(void *ud, const hl_ws_message *m)
{
    harness *h = ud;
    if (m->opcode != HL_WS_TEXT)
        return 0;
    raw_send(h, HL_WS_TEXT, m->data, m->len);
    if (m->len == 5 && !memcmp(m->data, "close", 5)) {
        hl_buf out;
        hl_buf_init(&out, NULL, 0);
        assert_int_equal(hl_ws_close_frame(&out, HL_WS_NORMAL, "bye", NULL), 0);
        assert_int_equal(hl_http_raw_write(h->raw, out.p, out.len), 0);
        /* What the socket took at once is not pending. */
        assert_true(hl_http_raw_pending(h->raw) <= out.len);
        hl_buf_free(&out);
        hl_http_raw_close(h->raw);
        /* Closing: nothing more is accepted. */
        assert_int_equal(hl_http_raw_write(h->raw, "x", 1), UV_EPIPE);
    } else if (h->sc == SC_ABORT) {
        /* Shutdown leaves the upgraded connection open; abort ends it. */
        h->shut = 1;
        hl_http_server_shutdown(h->srv, on_server_done, h);
        uv_timer_start(&h->timer, on_abort_timer, 200, 0);
    }
    return 0;
}

static void on_raw_data(hl_http_raw *r, const char *data, size_t len, void *ud)
{
    harness *h = ud;
    assert_ptr_equal(r, h->raw);
    if (!h->data_calls++)
        hl_buf_put(&h->first_data, data, len);
    int rc = hl_ws_parser_feed(&h->ws, data, len, on_server_msg, h);
    if (rc) {
        hl_buf out;
        hl_buf_init(&out, NULL, 0);
        hl_ws_close_frame(&out, (uint16_t)rc, h->ws.error, NULL);
        hl_http_raw_write(r, out.p, out.len);
        hl_buf_free(&out);
        hl_http_raw_close(r);
    }
}

static void on_raw_drain(hl_http_raw *r, void *ud)
{
    harness *h = ud;
    assert_ptr_equal(r, h->raw);
    assert_int_equal(hl_http_raw_pending(r), 0);
    h->drains++;
}

static void on_raw_close(hl_http_raw *r, void *ud)
{
    harness *h = ud;
    assert_ptr_equal(r, h->raw);
    h->close_calls++;
    h->conns_at_close = hl_http_server_connections(h->srv);
    h->raw = NULL;
}

static const hl_http_raw_cbs raw_cbs = {on_raw_data, on_raw_drain,
                                        on_raw_close};

static void on_slow_timer(uv_timer_t *t)
{
    harness *h = t->data;
    hl_http_respond(h->slow, 200, "text/plain", NULL, "slow", 4);
    h->slow = NULL;
}

static void upgrade(harness *h, hl_http_req *req)
{
    char accept[29], extra[128];
    const char *why;
    int st = hl_ws_handshake_check(req, accept, &why);
    if (st) {
        hl_http_respond_error(req, st, "bad_handshake", why,
                              st == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                        : NULL);
        return;
    }
    snprintf(extra, sizeof extra,
             "Upgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n", accept);
    hl_ws_parser_init(&h->ws, 4096, 1);
    h->ws_live = 1;
    h->raw = hl_http_upgrade(req, extra, &raw_cbs, h);
    assert_non_null(h->raw);
    if (h->sc == SC_PIPELINED) /* written before the 101 can go out */
        raw_send(h, HL_WS_TEXT, "early", 5);
}

static void on_late_timer(uv_timer_t *t)
{
    harness *h = t->data;
    upgrade(h, h->ws_req);
}

static void on_request(hl_http_req *req, void *ud)
{
    harness *h = ud;
    if (!strcmp(req->path, "/slow")) {
        h->slow = req;
        uv_timer_start(&h->timer, on_slow_timer, 50, 0);
        return;
    }
    if (!strcmp(req->path, "/plain")) {
        /* Not an upgrade request: refused with a 500. */
        h->plain_upgrade_null = !hl_http_upgrade(req, NULL, &raw_cbs, h);
        return;
    }
    if (h->sc == SC_LATE_UPGRADE) {
        h->ws_req = req;
        uv_timer_start(&h->late, on_late_timer, 100, 0);
        return;
    }
    upgrade(h, req);
}

static void on_finished(uv_async_t *a)
{
    harness *h = a->data;
    if (!h->shut) {
        h->shut = 1;
        hl_http_server_shutdown(h->srv, on_server_done, h);
    }
    uv_close((uv_handle_t *)&h->finished, NULL);
    uv_close((uv_handle_t *)&h->timer, NULL);
    uv_close((uv_handle_t *)&h->late, NULL);
}

/* -- the client -- */

typedef struct {
    harness *h;
    int fd;
    char buf[1 << 16];
    size_t len;
    hl_ws_parser ws; /* client mode */
    int msgs;
    int opcode[8];
    char data[8][64];
    uint16_t code[8];
} client;

static int cl_msg(void *ud, const hl_ws_message *m)
{
    client *c = ud;
    if (c->msgs < 8) {
        c->opcode[c->msgs] = m->opcode;
        snprintf(c->data[c->msgs], sizeof c->data[0], "%.*s", (int)m->len,
                 m->data);
        c->code[c->msgs] = m->close_code;
    }
    c->msgs++;
    return 0;
}

static int cl_connect(client *c, harness *h)
{
    memset(c, 0, sizeof *c);
    c->h = h;
    hl_ws_parser_init(&c->ws, 4096, 0);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c->fd >= 0 && !connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
}

static void cl_close(client *c)
{
    close(c->fd);
    hl_ws_parser_close(&c->ws);
}

static int cl_send(client *c, const void *data, size_t len)
{
    return send(c->fd, data, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Read more; 0 at EOF, on an error or after 5 s without a byte. */
static int cl_fill(client *c)
{
    if (c->len == sizeof c->buf)
        return 0;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return 0;
    c->len += (size_t)n;
    return 1;
}

static void cl_consume(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One response: head into head (NUL-terminated), body into body. */
static int cl_response(client *c, char *head, size_t hcap, char *body,
                       size_t bcap)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!cl_fill(c))
            return 0;
    size_t hn = (size_t)(end - c->buf) + 4;
    if (hn >= hcap)
        return 0;
    memcpy(head, c->buf, hn);
    head[hn] = 0;
    cl_consume(c, hn);
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    size_t bn = cl ? strtoul(cl + 17, NULL, 10) : 0;
    if (bn >= bcap)
        return 0;
    while (c->len < bn)
        if (!cl_fill(c))
            return 0;
    memcpy(body, c->buf, bn);
    body[bn] = 0;
    cl_consume(c, bn);
    return 1;
}

/* Wait until the server has sent want messages in all. */
static int cl_messages(client *c, int want)
{
    for (;;) {
        if (c->len) {
            if (hl_ws_parser_feed(&c->ws, c->buf, c->len, cl_msg, c))
                return 0;
            c->len = 0;
        }
        if (c->msgs >= want)
            return 1;
        if (!cl_fill(c))
            return 0;
    }
}

/* EOF from the server (not a timeout). */
static int cl_eof(client *c)
{
    char b[64];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int cl_frame(client *c, int opcode, const char *text)
{
    static const uint8_t mask[4] = {1, 2, 3, 4};
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    int ok = !hl_ws_frame(&b, opcode, text, strlen(text), mask) &&
             cl_send(c, b.p, b.len);
    hl_buf_free(&b);
    return ok;
}

static const char upgrade_req[] = "GET /ws HTTP/1.1\r\n"
                                  "Host: 127.0.0.1\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: keep-alive, Upgrade\r\n"
                                  "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\n";
/* RFC 6455 5.7: "Hello", masked. */
static const char hello_frame[] =
    "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

static void check_101(harness *h, const char *head)
{
    CL_CHECK(h, !strncmp(head, "HTTP/1.1 101 Switching Protocols\r\n", 34));
    CL_CHECK(h, strcasestr(head, "\r\nUpgrade: websocket\r\n"));
    CL_CHECK(h, strcasestr(head, "\r\nConnection: Upgrade\r\n"));
    CL_CHECK(h, strstr(head, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
    CL_CHECK(h, !strcasestr(head, "Content-Length"));
}

/* The request and a frame in one write; the echo; a pause longer than the
 * idle timeout; "close" echoed, then a close frame and EOF. */
static void client_echo(harness *h, client *c)
{
    char head[1024], body[256], req[512];
    size_t n = sizeof upgrade_req - 1;
    memcpy(req, upgrade_req, n);
    memcpy(req + n, hello_frame, sizeof hello_frame - 1);
    CL_CHECK(h, cl_send(c, req, n + sizeof hello_frame - 1));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    check_101(h, head);
    if (h->fail[0])
        return;
    CL_CHECK(h, cl_messages(c, 1));
    CL_CHECK(h, c->opcode[0] == HL_WS_TEXT && !strcmp(c->data[0], "Hello"));
    usleep(750 * 1000); /* three idle timeouts */
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "close"));
    CL_CHECK(h, cl_messages(c, 3));
    CL_CHECK(h, c->opcode[1] == HL_WS_TEXT && !strcmp(c->data[1], "close"));
    CL_CHECK(h, c->opcode[2] == HL_WS_CLOSE && c->code[2] == HL_WS_NORMAL);
    CL_CHECK(h, !strcmp(c->data[2], "\x03\xe8"
                                    "bye"));
    CL_CHECK(h, cl_eof(c));
}

/* A slow request, the upgrade and a frame in one write: the answers keep
 * their order, and what the owner wrote before the 101 follows it. */
static void client_pipelined(harness *h, client *c)
{
    char head[1024], body[256], req[1024];
    int n =
        snprintf(req, sizeof req, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n%s%s",
                 upgrade_req, hello_frame);
    CL_CHECK(h, cl_send(c, req, (size_t)n));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    CL_CHECK(h, !strncmp(head, "HTTP/1.1 200 ", 13));
    CL_CHECK(h, !strcmp(body, "slow"));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    check_101(h, head);
    if (h->fail[0])
        return;
    CL_CHECK(h, cl_messages(c, 2));
    CL_CHECK(h, !strcmp(c->data[0], "early"));
    CL_CHECK(h, !strcmp(c->data[1], "Hello"));
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "close"));
    CL_CHECK(h, cl_messages(c, 4));
    CL_CHECK(h, c->opcode[3] == HL_WS_CLOSE);
    CL_CHECK(h, cl_eof(c));
}

static void client_refused(harness *h, client *c)
{
    char head[1024], body[1024];
    char req[512];
    /* Version 8: 426 naming the version to send, then the connection
     * closes (nothing after an upgrade request is read as HTTP). */
    snprintf(req, sizeof req,
             "GET /ws HTTP/1.1\r\nHost: x\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: " RFC_KEY "\r\n"
             "Sec-WebSocket-Version: 8\r\n\r\n"
             "GET /plain HTTP/1.1\r\n\r\n");
    CL_CHECK(h, cl_send(c, req, strlen(req)));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    CL_CHECK(h, !strncmp(head, "HTTP/1.1 426 Upgrade Required\r\n", 31));
    CL_CHECK(h, strstr(head, "\r\nSec-WebSocket-Version: 13\r\n"));
    CL_CHECK(h, strstr(head, "\r\nConnection: close\r\n"));
    CL_CHECK(h, strstr(body, "Sec-WebSocket-Version: 13"));
    CL_CHECK(h, cl_eof(c));
    cl_close(c);

    /* No key: 400 naming Sec-WebSocket-Key. */
    CL_CHECK(h, cl_connect(c, h));
    snprintf(req, sizeof req,
             "GET /ws HTTP/1.1\r\nHost: x\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n");
    CL_CHECK(h, cl_send(c, req, strlen(req)));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    CL_CHECK(h, !strncmp(head, "HTTP/1.1 400 ", 13));
    CL_CHECK(h, strstr(body, "Sec-WebSocket-Key"));
    CL_CHECK(h, cl_eof(c));
    cl_close(c);

    /* hl_http_upgrade on a plain request: 500, and the connection stays
     * usable for HTTP. */
    CL_CHECK(h, cl_connect(c, h));
    snprintf(req, sizeof req,
             "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    CL_CHECK(h, cl_send(c, req, strlen(req)));
    for (int i = 0; i < 2; i++) {
        CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
        CL_CHECK(h, !strncmp(head, "HTTP/1.1 500 ", 13));
        CL_CHECK(h, strstr(body, "Connection: Upgrade"));
    }
}

/* A slow request (answered at 50 ms) and the upgrade with a frame in one
 * write, a second frame 20 ms later; the upgrade is answered at 100 ms.
 * Nothing sent after the upgrade request is read as HTTP meanwhile, even
 * once the slow answer is out: both frames reach the new owner. */
static void client_late_upgrade(harness *h, client *c)
{
    char head[1024], body[256], req[1024];
    int n =
        snprintf(req, sizeof req, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n%s%s",
                 upgrade_req, hello_frame);
    CL_CHECK(h, cl_send(c, req, (size_t)n));
    usleep(20 * 1000);
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "second"));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    CL_CHECK(h, !strncmp(head, "HTTP/1.1 200 ", 13));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    check_101(h, head);
    if (h->fail[0])
        return;
    CL_CHECK(h, cl_messages(c, 2));
    CL_CHECK(h, !strcmp(c->data[0], "Hello"));
    CL_CHECK(h, !strcmp(c->data[1], "second"));
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "close"));
    CL_CHECK(h, cl_messages(c, 4));
    CL_CHECK(h, c->opcode[3] == HL_WS_CLOSE);
    CL_CHECK(h, cl_eof(c));
}

/* Upgrade, echo; then the server shuts down and, 200 ms later, aborts. */
static void client_abort(harness *h, client *c)
{
    char head[1024], body[256];
    CL_CHECK(h, cl_send(c, upgrade_req, sizeof upgrade_req - 1));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    check_101(h, head);
    if (h->fail[0])
        return;
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "hi"));
    CL_CHECK(h, cl_messages(c, 1));
    CL_CHECK(h, !strcmp(c->data[0], "hi"));
    CL_CHECK(h, cl_eof(c));
}

/* Upgrade, echo, then the client goes away. */
static void client_peer_gone(harness *h, client *c)
{
    char head[1024], body[256];
    CL_CHECK(h, cl_send(c, upgrade_req, sizeof upgrade_req - 1));
    CL_CHECK(h, cl_response(c, head, sizeof head, body, sizeof body));
    check_101(h, head);
    if (h->fail[0])
        return;
    CL_CHECK(h, cl_frame(c, HL_WS_TEXT, "bye"));
    CL_CHECK(h, cl_messages(c, 1));
}

static void *client_main(void *arg)
{
    harness *h = arg;
    client *c = malloc(sizeof *c);
    if (!c || !cl_connect(c, h)) {
        snprintf(h->fail, sizeof h->fail, "cannot connect");
    } else {
        switch (h->sc) {
        case SC_ECHO: client_echo(h, c); break;
        case SC_PIPELINED: client_pipelined(h, c); break;
        case SC_LATE_UPGRADE: client_late_upgrade(h, c); break;
        case SC_REFUSED: client_refused(h, c); break;
        case SC_ABORT: client_abort(h, c); break;
        case SC_PEER_GONE: client_peer_gone(h, c); break;
        }
        cl_close(c);
    }
    free(c);
    uv_async_send(&h->finished);
    return NULL;
}

static void run_scenario(harness *h, scenario sc)
{
    memset(h, 0, sizeof *h);
    h->sc = sc;
    hl_buf_init(&h->first_data, NULL, 0);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    /* SC_ECHO: a short idle timeout the upgraded connection must outlive;
     * the others keep it long so a loaded machine cannot close a
     * connection before its request is read. */
    hl_http_limits lim = {4096, 16, 10000, sc == SC_ECHO ? 250 : 10000};
    assert_int_equal(
        hl_http_server_create(&h->loop, &lim, on_request, h, &h->srv), 0);
    assert_int_equal(hl_http_server_listen(h->srv, "127.0.0.1", 0), 0);
    h->port = hl_http_server_port(h->srv);
    assert_true(h->port > 0);
    assert_int_equal(uv_async_init(&h->loop, &h->finished, on_finished), 0);
    assert_int_equal(uv_timer_init(&h->loop, &h->timer), 0);
    assert_int_equal(uv_timer_init(&h->loop, &h->late), 0);
    h->finished.data = h->timer.data = h->late.data = h;
    assert_int_equal(pthread_create(&h->th, NULL, client_main, h), 0);
    assert_int_equal(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(pthread_join(h->th, NULL), 0);
    if (h->fail[0])
        fail_msg("client: %s", h->fail);
    assert_int_equal(h->done_calls, 1);
    assert_int_equal(hl_http_server_connections(h->srv), 0);
    hl_http_server_destroy(h->srv);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    if (h->ws_live)
        hl_ws_parser_close(&h->ws);
}

static void test_http_upgrade_echo(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_ECHO);
    /* The frame sent with the request came to on_data first, unchanged. */
    assert_int_equal(h->first_data.len, sizeof hello_frame - 1);
    assert_memory_equal(h->first_data.p, hello_frame, sizeof hello_frame - 1);
    assert_int_equal(h->close_calls, 1);
    assert_true(h->drains >= 1);
    assert_null(h->raw);
    hl_buf_free(&h->first_data);
    free(h);
}

static void test_http_upgrade_after_pipelined_request(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_PIPELINED);
    assert_int_equal(h->first_data.len, sizeof hello_frame - 1);
    assert_memory_equal(h->first_data.p, hello_frame, sizeof hello_frame - 1);
    assert_int_equal(h->close_calls, 1);
    hl_buf_free(&h->first_data);
    free(h);
}

static void test_http_late_upgrade_reads_nothing_as_http(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_LATE_UPGRADE);
    /* The second frame is usually read later, but may have come with the
     * first read on a loaded machine. */
    assert_true(h->first_data.len >= sizeof hello_frame - 1);
    assert_memory_equal(h->first_data.p, hello_frame, sizeof hello_frame - 1);
    assert_int_equal(h->close_calls, 1);
    hl_buf_free(&h->first_data);
    free(h);
}

static void test_http_upgrade_refused(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_REFUSED);
    assert_int_equal(h->plain_upgrade_null, 1);
    assert_int_equal(h->close_calls, 0);
    assert_int_equal(h->data_calls, 0);
    hl_buf_free(&h->first_data);
    free(h);
}

static void test_http_shutdown_leaves_upgraded_to_abort(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_ABORT);
    /* 200 ms into shutdown the upgraded connection was still open and
     * done had not run; abort closed it and its on_close ran once. */
    assert_int_equal(h->conns_before_abort, 1);
    assert_int_equal(h->done_before_abort, 0);
    assert_int_equal(h->close_calls, 1);
    assert_int_equal(h->conns_at_close, 0);
    hl_buf_free(&h->first_data);
    free(h);
}

static void test_http_upgraded_peer_close(void **state)
{
    (void)state;
    harness *h = malloc(sizeof *h);
    assert_non_null(h);
    run_scenario(h, SC_PEER_GONE);
    assert_int_equal(h->close_calls, 1);
    hl_buf_free(&h->first_data);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_handshake_accepts_browser_forms),
        cmocka_unit_test(test_handshake_errors_name_the_header),
        cmocka_unit_test(test_rfc_single_masked_text),
        cmocka_unit_test(test_rfc_unmasked_and_fragmented_in_client_mode),
        cmocka_unit_test(test_rfc_ping_and_masked_pong),
        cmocka_unit_test(test_fragments_with_interleaved_ping),
        cmocka_unit_test(test_close_without_code_is_1005),
        cmocka_unit_test(test_every_error_code),
        cmocka_unit_test(test_handler_stop_value_is_returned),
        cmocka_unit_test(test_valid_close_codes),
        cmocka_unit_test(test_16_and_64_bit_lengths),
        cmocka_unit_test(test_too_big_found_before_payload),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_split_across_fragments),
        cmocka_unit_test(test_round_trip_both_mask_modes),
        cmocka_unit_test(test_close_frame_reason_cut_on_a_character),
        cmocka_unit_test(test_http_upgrade_echo),
        cmocka_unit_test(test_http_upgrade_after_pipelined_request),
        cmocka_unit_test(test_http_late_upgrade_reads_nothing_as_http),
        cmocka_unit_test(test_http_upgrade_refused),
        cmocka_unit_test(test_http_shutdown_leaves_upgraded_to_abort),
        cmocka_unit_test(test_http_upgraded_peer_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
