/* jsontext.c - JSON as text: a strict validator for the hot path and escaping. */
#include "jsontext.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048

typedef struct {
    const unsigned char *p, *end, *start;
    const char *why;
} scan;

static int fail(scan *s, const unsigned char *at, const char *why)
{
    s->p = at;
    s->why = why;
    return -1;
}

static void skip_ws(scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int literal(scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
        return fail(s, s->p, "invalid token");
    s->p += n;
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* One UTF-8 sequence starting at s->p (a byte >= 0x80). */
static int utf8(scan *s)
{
    const unsigned char *p = s->p;
    unsigned c = *p, need, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return fail(s, p, "invalid UTF-8");
    }
    if ((size_t)(s->end - p) <= need)
        return fail(s, p, "invalid UTF-8");
    for (unsigned i = 1; i <= need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return fail(s, p, "invalid UTF-8");
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail(s, p, "invalid UTF-8");
    s->p += need + 1;
    return 0;
}

static int string(scan *s)
{
    const unsigned char *open = s->p++;
    while (s->p < s->end) {
        unsigned c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, s->p, "control character in a string");
        if (c >= 0x80) {
            if (utf8(s))
                return -1;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        if (s->end - s->p < 2)
            break;
        c = s->p[1];
        if (strchr("\"\\/bfnrt", (int)c) && c) {
            s->p += 2;
            continue;
        }
        unsigned u, lo;
        if (c != 'u' || s->end - s->p < 6 || hex4(s->p + 2, &u))
            return fail(s, s->p, "invalid escape");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return fail(s, s->p, "invalid Unicode escape (lone low surrogate)");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' ||
                hex4(s->p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return fail(s, s->p,
                            "invalid Unicode escape (unpaired surrogate)");
            s->p += 6;
        }
        s->p += 6;
    }
    return fail(s, open, "unterminated string");
}

static int number(scan *s)
{
    const unsigned char *start = s->p;
    int real = 0;
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
        return fail(s, start, "invalid number");
    if (*s->p == '0')
        s->p++;
    else
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        real = 1;
        s->p++;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return fail(s, start, "invalid number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        real = 1;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !(*s->p >= '0' && *s->p <= '9'))
            return fail(s, start, "invalid number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    /* The same limits as the parser that reads the event later. */
    size_t n = (size_t)(s->p - start);
    if (!real && n > 20)
        return fail(s, start, "too big integer");
    char small[64], *tmp = small;
    if (n >= sizeof small && !(tmp = malloc(n + 1)))
        return fail(s, start, "out of memory");
    memcpy(tmp, start, n);
    tmp[n] = 0;
    const char *why = NULL;
    errno = 0;
    if (real) {
        double d = strtod(tmp, NULL);
        if (errno == ERANGE && isinf(d))
            why = "real number overflow";
    } else {
        (void)strtoll(tmp, NULL, 10);
        if (errno == ERANGE)
            why = "too big integer";
    }
    if (tmp != small)
        free(tmp);
    if (why)
        return fail(s, start, why);
    return 0;
}

/* Iterative, so deep nesting costs a bit per level, not a stack frame. */
int hl_json_validate(const char *buf, size_t len, size_t *err_offset,
                     const char **err_reason)
{
    scan s = {(const unsigned char *)buf, (const unsigned char *)buf + len,
              (const unsigned char *)buf, NULL};
    unsigned char stack[MAX_DEPTH]; /* '{' or '[' */
    size_t depth = 0;
    int rc = 0;
    enum { VALUE, AFTER_VALUE, KEY_OR_END, VALUE_OR_END } want = VALUE;
    for (;;) {
        skip_ws(&s);
        if (want == VALUE || want == VALUE_OR_END) {
            if (s.p >= s.end) {
                rc = fail(&s, s.p, "unexpected end of input");
                break;
            }
            unsigned c = *s.p;
            if (want == VALUE_OR_END && c == ']') {
                s.p++;
                depth--;
                want = AFTER_VALUE;
                continue;
            }
            if (c == '{' || c == '[') {
                if (depth == MAX_DEPTH) {
                    rc = fail(&s, s.p, "maximum nesting depth reached");
                    break;
                }
                stack[depth++] = (unsigned char)c;
                s.p++;
                want = c == '{' ? KEY_OR_END : VALUE_OR_END;
                continue;
            }
            if (c == '"')
                rc = string(&s);
            else if (c == '-' || (c >= '0' && c <= '9'))
                rc = number(&s);
            else if (c == 't')
                rc = literal(&s, "true");
            else if (c == 'f')
                rc = literal(&s, "false");
            else if (c == 'n')
                rc = literal(&s, "null");
            else
                rc = fail(&s, s.p, "invalid token");
            if (rc)
                break;
            want = AFTER_VALUE;
        } else if (want == KEY_OR_END) {
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                depth--;
                want = AFTER_VALUE;
                continue;
            }
            if (s.p >= s.end || *s.p != '"') {
                rc = fail(&s, s.p, "expected a string key");
                break;
            }
            if ((rc = string(&s)))
                break;
            skip_ws(&s);
            if (s.p >= s.end || *s.p != ':') {
                rc = fail(&s, s.p, "expected ':'");
                break;
            }
            s.p++;
            want = VALUE;
        } else { /* AFTER_VALUE */
            if (depth == 0) {
                if (s.p != s.end)
                    rc = fail(&s, s.p, "end of input expected");
                break;
            }
            unsigned top = stack[depth - 1];
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                skip_ws(&s);
                if (top == '{') {
                    if (s.p >= s.end || *s.p != '"') {
                        rc = fail(&s, s.p, "expected a string key");
                        break;
                    }
                    want = KEY_OR_END;
                } else {
                    want = VALUE;
                }
                continue;
            }
            if (s.p < s.end && *s.p == (top == '{' ? '}' : ']')) {
                s.p++;
                depth--;
                continue;
            }
            rc = fail(&s, s.p,
                      top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            break;
        }
    }
    if (rc) {
        *err_offset = (size_t)(s.p - s.start);
        *err_reason = s.why;
    }
    return rc;
}

/* The length of the valid UTF-8 sequence at p (>= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    scan s = {p, p + 4, p, NULL};
    /* utf8() reads at most need + 1 bytes and stops at a NUL, which is
     * never a continuation byte. */
    size_t avail = 1;
    while (avail < 4 && p[avail - 1] && (p[avail] & 0xC0) == 0x80)
        avail++;
    s.end = p + avail;
    if (utf8(&s))
        return 0;
    return (size_t)(s.p - p);
}

size_t hl_json_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, written = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        size_t n = 2;
        esc[0] = '\\';
        if (*p >= 0x80) {
            /* Valid UTF-8 passes as it is; anything else becomes U+FFFD,
             * so the output is always valid JSON text. */
            size_t u = utf8_len(p);
            const char *src = u ? (const char *)p : "\\ufffd";
            n = u ? u : 6;
            if (o == written && o + n < cap) {
                memcpy(out + o, src, n);
                written += n;
            }
            o += n;
            p += u ? u - 1 : 0;
            continue;
        }
        switch (*p) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                n = 6;
            } else {
                esc[0] = (char)*p;
                n = 1;
            }
        }
        if (o == written && o + n < cap) {
            memcpy(out + o, esc, n);
            written += n;
        }
        o += n;
    }
    if (cap)
        out[written] = 0;
    return o;
}
