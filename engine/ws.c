/* ws.c - the WebSocket protocol (RFC 6455) without I/O: handshake, frame
 * parsing with reassembly, frame writing, strict UTF-8 checking. */
#include "ws.h"

#include "err.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A reassembly buffer larger than this is released after its message. */
#define KEEP_BUF (64 * 1024)

/* ---- UTF-8 --------------------------------------------------------------- */

int hl_utf8_step(hl_utf8_state *st, const void *s, size_t n)
{
    const uint8_t *b = s;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (st->need) {
            if (c < st->lo || c > st->hi)
                return 0;
            st->lo = 0x80;
            st->hi = 0xBF;
            st->need--;
            continue;
        }
        if (c < 0x80)
            continue;
        st->lo = 0x80;
        st->hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            st->need = 1;
        } else if (c == 0xE0) { /* no overlong 3-byte forms */
            st->need = 2;
            st->lo = 0xA0;
        } else if (c == 0xED) { /* no surrogates U+D800..U+DFFF */
            st->need = 2;
            st->hi = 0x9F;
        } else if (c >= 0xE1 && c <= 0xEF) {
            st->need = 2;
        } else if (c == 0xF0) { /* no overlong 4-byte forms */
            st->need = 3;
            st->lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            st->need = 3;
        } else if (c == 0xF4) { /* nothing above U+10FFFF */
            st->need = 3;
            st->hi = 0x8F;
        } else {
            return 0; /* 80..C1 as a lead byte, F5..FF */
        }
    }
    return 1;
}

int hl_utf8_valid(const void *s, size_t n)
{
    hl_utf8_state st = {0, 0, 0};
    return hl_utf8_step(&st, s, n) && !st.need;
}

/* ---- handshake ----------------------------------------------------------- */

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Does any header called name hold token in its comma-separated list? */
static int has_token(const hl_http_req *req, const char *name,
                     const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i < req->n_headers; i++) {
        const hl_http_header *h = &req->headers[i];
        if (!h->name || !h->value || strcasecmp(h->name, name))
            continue;
        for (const char *v = h->value;;) {
            const char *comma = strchr(v, ',');
            const char *t = v;
            size_t n = comma ? (size_t)(comma - v) : strlen(v);
            trim(&t, &n);
            if (n == tlen && !strncasecmp(t, token, n))
                return 1;
            if (!comma)
                break;
            v = comma + 1;
        }
    }
    return 0;
}

static int is_b64(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* 16 bytes in base64 are 22 characters and "==". */
static int key_ok(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return 0;
    return 1;
}

static void accept_of(const char *key, size_t n, char accept[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, key, n) &&
             EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        accept[0] = 0;
        return;
    }
    EVP_EncodeBlock((unsigned char *)accept, md, 20); /* 28 and a NUL */
}

void hl_ws_accept_of(const char *key, char accept[29])
{
    accept_of(key, strlen(key), accept);
}

int hl_ws_handshake_check(const hl_http_req *req, char accept[29],
                          const char **why)
{
    accept[0] = 0;
    if (!req->method || strcmp(req->method, "GET")) {
        *why = "a websocket handshake must be a GET request";
        return 400;
    }
    if (!has_token(req, "Upgrade", "websocket")) {
        *why = "the Upgrade header must name \"websocket\"; send "
               "\"Upgrade: websocket\"";
        return 400;
    }
    if (!has_token(req, "Connection", "upgrade")) {
        *why = "the Connection header must hold the token \"Upgrade\"; send "
               "\"Connection: Upgrade\"";
        return 400;
    }
    const char *v = hl_http_header_get(req, "Sec-WebSocket-Version");
    size_t n = v ? strlen(v) : 0;
    if (v)
        trim(&v, &n);
    if (!v || n != 2 || memcmp(v, "13", 2)) {
        *why = v ? "Sec-WebSocket-Version is not 13, the only version "
                   "served; send \"Sec-WebSocket-Version: 13\""
                 : "the Sec-WebSocket-Version header is missing; send "
                   "\"Sec-WebSocket-Version: 13\"";
        return 426;
    }
    const char *k = hl_http_header_get(req, "Sec-WebSocket-Key");
    if (!k) {
        *why = "the Sec-WebSocket-Key header is missing; send the base64 "
               "form of 16 random bytes";
        return 400;
    }
    n = strlen(k);
    trim(&k, &n);
    if (!key_ok(k, n)) {
        *why = "Sec-WebSocket-Key is not the base64 form of 16 bytes; send "
               "16 random bytes in base64 (24 characters ending in \"==\")";
        return 400;
    }
    accept_of(k, n, accept);
    if (!accept[0]) {
        *why = "the Sec-WebSocket-Accept digest could not be computed";
        return 500;
    }
    *why = NULL;
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

void hl_ws_parser_init(hl_ws_parser *p, size_t max_message, int expect_masked)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->expect_masked = expect_masked ? 1 : 0;
    p->head_need = 2;
    hl_buf_init(&p->msg, NULL, 0);
}

void hl_ws_parser_close(hl_ws_parser *p)
{
    hl_buf_free(&p->msg);
}

static int fail(hl_ws_parser *p, int code, const char *why)
{
    p->code = code;
    p->error = why;
    return code;
}

static int is_control(int opcode)
{
    return opcode & 8;
}

/* The first head byte: FIN, reserved bits, opcode. */
static int head_first(hl_ws_parser *p)
{
    uint8_t b = p->head[0];
    p->fin = b >> 7;
    p->opcode = b & 0x0F;
    if (b & 0x70)
        return fail(p, HL_WS_PROTOCOL,
                    "reserved bits set in a frame (no extension was "
                    "negotiated)");
    switch (p->opcode) {
    case HL_WS_CONT:
        if (!p->msg_opcode)
            return fail(p, HL_WS_PROTOCOL,
                        "continuation frame with no fragmented message open");
        break;
    case HL_WS_TEXT:
    case HL_WS_BINARY:
        if (p->msg_opcode)
            return fail(p, HL_WS_PROTOCOL,
                        "new data frame while a fragmented message is open");
        break;
    case HL_WS_CLOSE:
    case HL_WS_PING:
    case HL_WS_PONG:
        if (!p->fin)
            return fail(p, HL_WS_PROTOCOL, "fragmented control frame");
        break;
    default: return fail(p, HL_WS_PROTOCOL, "unknown opcode");
    }
    return 0;
}

/* The second head byte: the mask bit and the 7-bit length. */
static int head_second(hl_ws_parser *p)
{
    uint8_t b = p->head[1];
    int masked = b >> 7, len7 = b & 0x7F;
    if (masked != p->expect_masked)
        return fail(p, HL_WS_PROTOCOL,
                    masked ? "masked frame from a server"
                           : "unmasked frame from a client");
    if (is_control(p->opcode) && len7 > HL_WS_MAX_CONTROL)
        return fail(p, HL_WS_PROTOCOL,
                    "control frame payload longer than 125 bytes");
    int ext = 0; /* bytes of extended length */
    if (len7 == 126)
        ext = 2;
    else if (len7 == 127)
        ext = 8;
    p->head_need = (uint8_t)(2 + ext + (masked ? 4 : 0));
    return 0;
}

/* The whole head is in: the length, the limit and the mask. */
static int head_done(hl_ws_parser *p)
{
    int len7 = p->head[1] & 0x7F;
    size_t at = 2;
    uint64_t len = (uint64_t)len7;
    if (len7 == 126) {
        len = (uint64_t)p->head[2] << 8 | p->head[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p->head[2 + i];
        at = 10;
        if (len >> 63)
            return fail(p, HL_WS_PROTOCOL,
                        "64-bit payload length with the top bit set");
    }
    if (!is_control(p->opcode)) {
        uint64_t have = p->msg_opcode ? p->msg.len : 0; /* <= the limit */
        if (len > (uint64_t)p->max_message - have)
            return fail(p, HL_WS_TOO_BIG, "message larger than the limit");
        if (p->opcode != HL_WS_CONT) {
            p->msg_opcode = p->opcode;
            memset(&p->utf8, 0, sizeof p->utf8);
        }
    } else {
        p->ctl_len = 0;
    }
    if (p->expect_masked)
        memcpy(p->mask, p->head + at, 4);
    p->left = len;
    p->got = 0;
    p->in_payload = 1;
    return 0;
}

static void unmask(hl_ws_parser *p, uint8_t *b, size_t n)
{
    if (!p->expect_masked)
        return;
    for (size_t i = 0; i < n; i++)
        b[i] ^= p->mask[(p->got + i) & 3];
}

static int take_payload(hl_ws_parser *p, const uint8_t *s, size_t n)
{
    if (is_control(p->opcode)) {
        memcpy(p->ctl + p->ctl_len, s, n);
        unmask(p, p->ctl + p->ctl_len, n);
        p->ctl_len += n;
    } else {
        size_t old = p->msg.len;
        hl_buf_put(&p->msg, s, n);
        if (p->msg.oom)
            return fail(p, HL_WS_INTERNAL, "out of memory");
        uint8_t *b = (uint8_t *)p->msg.p + old;
        unmask(p, b, n);
        if (p->msg_opcode == HL_WS_TEXT && !hl_utf8_step(&p->utf8, b, n))
            return fail(p, HL_WS_BAD_DATA, "text message is not valid UTF-8");
    }
    p->left -= n;
    p->got += n;
    return 0;
}

static int close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static int control_done(hl_ws_parser *p, hl_ws_message_fn cb, void *ud)
{
    hl_ws_message m = {.opcode = p->opcode,
                       .data = (const char *)p->ctl,
                       .len = p->ctl_len,
                       .close_code = HL_WS_NO_STATUS,
                       .close_reason = ""};
    if (p->opcode == HL_WS_CLOSE && p->ctl_len == 1)
        return fail(p, HL_WS_PROTOCOL, "close frame with a 1-byte payload");
    if (p->opcode == HL_WS_CLOSE && p->ctl_len >= 2) {
        unsigned code = (unsigned)p->ctl[0] << 8 | p->ctl[1];
        if (!close_code_ok(code))
            return fail(p, HL_WS_PROTOCOL, "invalid close code");
        if (!hl_utf8_valid(p->ctl + 2, p->ctl_len - 2))
            return fail(p, HL_WS_BAD_DATA, "close reason is not valid UTF-8");
        m.close_code = (uint16_t)code;
        m.close_reason = (const char *)p->ctl + 2;
        m.close_reason_len = p->ctl_len - 2;
    }
    return cb(ud, &m);
}

static void msg_reset(hl_ws_parser *p)
{
    p->msg_opcode = 0;
    if (p->msg.cap > KEEP_BUF) {
        hl_buf_free(&p->msg);
    } else if (p->msg.p) {
        p->msg.len = 0;
        p->msg.p[0] = 0;
    }
}

static int data_done(hl_ws_parser *p, hl_ws_message_fn cb, void *ud)
{
    if (!p->fin)
        return 0;
    if (p->msg_opcode == HL_WS_TEXT && p->utf8.need)
        return fail(p, HL_WS_BAD_DATA,
                    "text message ends inside a UTF-8 sequence");
    hl_ws_message m = {.opcode = p->msg_opcode,
                       .data = p->msg.p ? p->msg.p : "",
                       .len = p->msg.len,
                       .close_reason = ""};
    int rc = cb(ud, &m);
    msg_reset(p);
    return rc;
}

/* The payload is in: hand the message over and expect a new head. */
static int frame_done(hl_ws_parser *p, hl_ws_message_fn cb, void *ud)
{
    p->in_payload = 0;
    p->head_len = 0;
    p->head_need = 2;
    int rc =
        is_control(p->opcode) ? control_done(p, cb, ud) : data_done(p, cb, ud);
    if (rc && !p->code)
        fail(p, rc, "the message handler stopped the parser");
    return rc;
}

int hl_ws_parser_feed(hl_ws_parser *p, const void *data, size_t len,
                      hl_ws_message_fn on_message, void *ud)
{
    const uint8_t *s = data, *end = s + len;
    if (p->code)
        return p->code;
    for (;;) {
        if (p->in_payload) {
            size_t n = (size_t)(end - s);
            if (n > p->left)
                n = (size_t)p->left;
            if (n && take_payload(p, s, n))
                return p->code;
            s += n;
            if (p->left)
                return 0;
            if (frame_done(p, on_message, ud))
                return p->code;
            continue;
        }
        if (s == end)
            return 0;
        p->head[p->head_len++] = *s++;
        int rc = 0;
        if (p->head_len == 1)
            rc = head_first(p);
        else if (p->head_len == 2)
            rc = head_second(p);
        if (!rc && p->head_len == p->head_need)
            rc = head_done(p);
        if (rc)
            return rc;
    }
}

/* ---- writing ------------------------------------------------------------- */

int hl_ws_frame(hl_buf *out, int opcode, const void *data, size_t len,
                const uint8_t *mask)
{
    if (opcode < 0 || (opcode > HL_WS_BINARY && opcode < HL_WS_CLOSE) ||
        opcode > HL_WS_PONG)
        return HL_ERANGE;
    if (is_control(opcode) && len > HL_WS_MAX_CONTROL)
        return HL_ERANGE;
    uint8_t h[14];
    size_t n = 0;
    uint8_t mbit = mask ? 0x80 : 0;
    h[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[n++] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        h[n++] = mbit | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    hl_buf_put(out, h, n);
    size_t start = out->len;
    hl_buf_put(out, data, len);
    if (out->oom)
        return HL_ENOMEM;
    if (mask)
        for (size_t i = 0; i < len; i++)
            out->p[start + i] ^= (char)mask[i & 3];
    return 0;
}

int hl_ws_close_frame(hl_buf *out, uint16_t code, const char *reason,
                      const uint8_t *mask)
{
    if (!code)
        return hl_ws_frame(out, HL_WS_CLOSE, NULL, 0, mask);
    uint8_t pl[HL_WS_MAX_CONTROL];
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > HL_WS_MAX_CONTROL - 2) {
        rlen = HL_WS_MAX_CONTROL - 2;
        /* back up to the first byte of the character that would be cut */
        while (rlen && ((uint8_t)reason[rlen] & 0xC0) == 0x80)
            rlen--;
    }
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
    if (rlen)
        memcpy(pl + 2, reason, rlen);
    return hl_ws_frame(out, HL_WS_CLOSE, pl, 2 + rlen, mask);
}
