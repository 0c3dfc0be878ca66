/* ws.h - the WebSocket protocol (RFC 6455) without I/O: handshake, frame
 * parsing with reassembly, frame writing, strict UTF-8 checking. */
#ifndef HL_WS_H
#define HL_WS_H

#include "buf.h"
#include "http.h"

#include <stddef.h>
#include <stdint.h>

/* Opcodes. */
enum {
    HL_WS_CONT = 0,
    HL_WS_TEXT = 1,
    HL_WS_BINARY = 2,
    HL_WS_CLOSE = 8,
    HL_WS_PING = 9,
    HL_WS_PONG = 10
};

/* Close codes. HL_WS_NO_STATUS is never sent: it stands for a close frame
 * that carried no code. */
enum {
    HL_WS_NORMAL = 1000,
    HL_WS_GOING_AWAY = 1001,
    HL_WS_PROTOCOL = 1002,
    HL_WS_NO_STATUS = 1005,
    HL_WS_BAD_DATA = 1007,
    HL_WS_POLICY = 1008,
    HL_WS_TOO_BIG = 1009,
    HL_WS_INTERNAL = 1011
};

/* The largest payload of a control frame (RFC 6455 5.5). */
#define HL_WS_MAX_CONTROL 125

/*
 * Server side of the opening handshake: checks that req asks for a
 * websocket: method GET, an Upgrade header naming "websocket", a Connection
 * header holding the token "upgrade" (both comma-separated lists compared
 * case-insensitively, over every header of that name),
 * Sec-WebSocket-Version 13 and a Sec-WebSocket-Key that is the base64 form
 * of exactly 16 bytes. Returns 0 and fills accept (28 characters and a NUL)
 * with the Sec-WebSocket-Accept value, or an HTTP status:
 *   426  Sec-WebSocket-Version is missing or not 13; answer with the header
 *        line "Sec-WebSocket-Version: 13";
 *   400  anything else;
 *   500  libcrypto could not compute the digest.
 * On failure accept is "" and *why is a static message naming the header
 * (or the method) at fault and what to send instead.
 */
int hl_ws_handshake_check(const hl_http_req *req, char accept[29],
                          const char **why);
/* base64(SHA-1(key + the RFC 6455 GUID)), 28 characters and a NUL; ""
 * if libcrypto fails. */
void hl_ws_accept_of(const char *key, char accept[29]);

/* One message as the parser hands it over. */
typedef struct {
    int opcode;       /* TEXT or BINARY (the whole reassembled message),
                         CLOSE, PING or PONG */
    const char *data; /* the unmasked payload, valid during the callback
                         only; never NULL */
    size_t len;
    uint16_t close_code;      /* CLOSE: the peer's code, HL_WS_NO_STATUS when it
                                 sent none */
    const char *close_reason; /* CLOSE: UTF-8, not NUL-terminated */
    size_t close_reason_len;
} hl_ws_message;

/* Incremental strict UTF-8 state: continuation bytes still owed and the
 * range the next one must fall in. */
typedef struct {
    uint8_t need;
    uint8_t lo, hi;
} hl_utf8_state;

/* A frame parser, embedded in its owner; _init/_close. The fields are
 * private except error. */
typedef struct hl_ws_parser {
    size_t max_message;
    int expect_masked;
    /* the frame being read */
    uint8_t head[14];
    uint8_t head_len;  /* bytes of the head read so far */
    uint8_t head_need; /* bytes of the head in all, once known */
    uint8_t fin, opcode;
    uint8_t mask[4];
    int in_payload;
    uint64_t left; /* payload bytes still to come */
    uint64_t got;  /* payload bytes read (the mask position) */
    /* the data message being reassembled */
    int msg_opcode; /* TEXT or BINARY while one is open, else 0 */
    hl_buf msg;
    hl_utf8_state utf8;
    /* the control frame being read */
    uint8_t ctl[HL_WS_MAX_CONTROL];
    size_t ctl_len;
    int code;          /* once non-zero every feed returns it */
    const char *error; /* static text: why the parser stopped, or NULL */
} hl_ws_parser;

/* max_message: the largest data message accepted, reassembled, in bytes.
 * expect_masked: 1 on a server (client frames must be masked, RFC 6455
 * 5.1), 0 on a client (server frames must not be). */
void hl_ws_parser_init(hl_ws_parser *p, size_t max_message, int expect_masked);
void hl_ws_parser_close(hl_ws_parser *p);

typedef int (*hl_ws_message_fn)(void *ud, const hl_ws_message *m);

/*
 * Feed bytes as they arrive, split anywhere. Calls on_message for every
 * complete data message (fragments reassembled) and every control frame,
 * in order. Returns 0, or a close code to send before closing:
 *   HL_WS_PROTOCOL  reserved bits set, unknown opcode, unmasked client frame
 *                   or masked server frame, control frame fragmented or
 *                   longer than 125 bytes, continuation with no message
 *                   open, new data frame while a fragmented message is
 *                   open, 64-bit length with the top bit set, close payload
 *                   of 1 byte, invalid close code;
 *   HL_WS_BAD_DATA  text message or close reason not valid UTF-8 (found as
 *                   soon as the bytes seen cannot start valid UTF-8);
 *   HL_WS_TOO_BIG   the message would exceed max_message (found from the
 *                   frame head, before its payload is buffered);
 *   HL_WS_INTERNAL  out of memory.
 * Then p->error holds a static reason and every later feed returns the
 * same code without reading. When on_message returns non-zero the parser
 * stops the same way and returns that value.
 */
int hl_ws_parser_feed(hl_ws_parser *p, const void *data, size_t len,
                      hl_ws_message_fn on_message, void *ud);

/*
 * Append one frame with FIN set to out. mask: NULL on a server; on a client
 * 4 bytes the caller picks at random. Returns 0, HL_ERANGE (unknown opcode,
 * or a control frame longer than 125 bytes) or HL_ENOMEM (out->oom).
 */
int hl_ws_frame(hl_buf *out, int opcode, const void *data, size_t len,
                const uint8_t *mask);
/* A close frame carrying code and reason (UTF-8, may be NULL), the reason
 * cut on a character boundary so the payload stays within 125 bytes. Code 0
 * writes a close frame with no payload (the answer to one that had none).
 * Returns as hl_ws_frame. */
int hl_ws_close_frame(hl_buf *out, uint16_t code, const char *reason,
                      const uint8_t *mask);

/* 1 when s[0..n) is valid UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence; else 0. */
int hl_utf8_valid(const void *s, size_t n);
/* The incremental form: start from a zeroed state, feed pieces; 0 as soon
 * as the bytes so far cannot begin valid UTF-8. At the end the text is
 * complete when st->need is 0. */
int hl_utf8_step(hl_utf8_state *st, const void *s, size_t n);

#endif
