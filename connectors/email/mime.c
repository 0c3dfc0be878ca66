/* mime.c - the email connector's message text: addresses, headers, parts. */
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_WIDTH 78 /* RFC 5322 2.1.1: SHOULD; 998 is the MUST */
#define BODY_WIDTH 76   /* RFC 2045: quoted-printable and base64 lines */
#define WORD_BYTES 40   /* of text in an encoded-word: 68 octets in all */
#define MAX_NAME 200    /* bytes of a display name */
#define MAX_ADDR 254    /* RFC 5321 4.5.3.1.3, a path less its brackets */
#define MAX_LOCAL 64

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- the buffer -------------------------------------------------------- */

void mime_buf_free(mime_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void mime_put(mime_buf *b, const char *s, size_t n)
{
    if (b->oom || !n)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void mime_puts(mime_buf *b, const char *s)
{
    mime_put(b, s, strlen(s));
}

/* Base64 of n <= 57 bytes into out (at least 77 bytes): its length. */
static size_t base64_chunk(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

/* ---- mailboxes ----------------------------------------------------------- */

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static char *copy(const char *s, const char *e)
{
    char *c = malloc((size_t)(e - s) + 1);
    if (c) {
        memcpy(c, s, (size_t)(e - s));
        c[e - s] = 0;
    }
    return c;
}

/* A dot-atom: no dot first or last, none doubled. */
static int dots_ok(const char *s, size_t n)
{
    if (!n || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] == '.' && s[i - 1] == '.')
            return 0;
    return 1;
}

static int addr_ok(const char *a, char *why, size_t whylen)
{
    size_t n = strlen(a);
    const char *at = strchr(a, '@');
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p >= 0x80) {
            snprintf(why, whylen,
                     "'%s' has non-ASCII characters; write the "
                     "domain in its xn-- form",
                     a);
            return -1;
        } else if (*p == ' ') {
            snprintf(why, whylen,
                     "'%s' is not an address: it has a space; with a name, "
                     "write \"Name <name@domain.example>\"",
                     a);
            return -1;
        } else if (*p < ' ' || *p == 0x7f || strchr("<>()[],;:\\\"", *p)) {
            snprintf(why, whylen,
                     "'%s' is not an address: it has a control character "
                     "or one of <>()[],;:\\\" in it",
                     a);
            return -1;
        }
    if (!at || strchr(at + 1, '@')) {
        snprintf(why, whylen,
                 "'%s' is not an address: expected one '@', "
                 "as in ops@example.com",
                 a);
        return -1;
    }
    size_t local = (size_t)(at - a);
    if (!dots_ok(a, local) || local > MAX_LOCAL ||
        !dots_ok(at + 1, n - local - 1) || n > MAX_ADDR) {
        snprintf(why, whylen,
                 "'%s' is not an address: expected "
                 "name@domain.example, without leading, "
                 "trailing or doubled dots",
                 a);
        return -1;
    }
    return 0;
}

/* The display name between s and e, its quotes and escapes removed. */
static char *display_name(const char *s, const char *e)
{
    trim(&s, &e);
    if (e - s < 2 || *s != '"' || e[-1] != '"')
        return copy(s, e);
    char *c = copy(s + 1, e - 1), *w = c;
    for (const char *r = c; c && *r; r++) {
        if (*r == '\\' && r[1])
            r++;
        *w++ = *r;
    }
    if (c)
        *w = 0;
    return c;
}

static int name_ok(const char *name, char *why, size_t whylen)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < ' ' || *p == 0x7f) {
            snprintf(why, whylen, "the name '%s' has a control character",
                     name);
            return -1;
        }
    if (strlen(name) > MAX_NAME) {
        snprintf(why, whylen, "the name is longer than %d bytes", MAX_NAME);
        return -1;
    }
    return 0;
}

int mime_mailbox_parse(const char *s, mime_mailbox *m, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    if (!s || strpbrk(s, "\r\n")) {
        snprintf(why, whylen, "an address cannot hold a line break");
        return -1;
    }
    const char *e = s + strlen(s), *lt = strchr(s, '<');
    trim(&s, &e);
    if (lt) {
        const char *gt = strchr(lt, '>');
        if (!gt || gt + 1 != e || strchr(lt + 1, '<')) {
            snprintf(why, whylen,
                     "'%s' is not an address: expected "
                     "\"Name <name@domain.example>\"",
                     s);
            return -1;
        }
        m->name = display_name(s, lt);
        m->addr = copy(lt + 1, gt);
    } else {
        m->name = copy(s, s);
        m->addr = copy(s, e);
    }
    if (!m->name || !m->addr) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    if (!*m->addr) {
        snprintf(why, whylen, "an address is empty");
        goto fail;
    }
    if (addr_ok(m->addr, why, whylen) || name_ok(m->name, why, whylen))
        goto fail;
    return 0;
fail:
    mime_mailbox_free(m);
    return -1;
}

void mime_mailbox_free(mime_mailbox *m)
{
    free(m->name);
    free(m->addr);
    memset(m, 0, sizeof *m);
}

/* ---- headers ------------------------------------------------------------- */

/* A header line being written: tokens separated by a space, or by a fold
 * (CRLF and a space) where the next one would pass HEADER_WIDTH. */
typedef struct {
    mime_buf *b;
    size_t col;
    size_t first; /* the column after "Name:" */
} line;

static void line_start(line *l, mime_buf *b, const char *name)
{
    l->b = b;
    mime_puts(b, name);
    mime_put(b, ":", 1);
    l->col = l->first = strlen(name) + 1;
}

static void line_token(line *l, const char *t, size_t n)
{
    if (l->col > l->first && l->col + 1 + n > HEADER_WIDTH) {
        mime_put(l->b, "\r\n ", 3);
        l->col = 1;
    } else {
        mime_put(l->b, " ", 1);
        l->col++;
    }
    mime_put(l->b, t, n);
    l->col += n;
}

static void line_end(line *l)
{
    mime_put(l->b, "\r\n", 2);
}

static size_t utf8_len(unsigned char c)
{
    return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 1;
}

/* s as encoded-words of at most WORD_BYTES each, never splitting a
 * character (RFC 2047 6.3). */
static void encoded_words(line *l, const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t take = 0;
        while (i + take < n) {
            size_t c = utf8_len((unsigned char)s[i + take]);
            if (i + take + c > n)
                c = n - i - take;
            if (take + c > WORD_BYTES)
                break;
            take += c;
        }
        char w[128] = "=?UTF-8?B?";
        size_t wl =
            10 + base64_chunk((const unsigned char *)s + i, take, w + 10);
        memcpy(w + wl, "?=", 2);
        line_token(l, w, wl + 2);
        i += take;
    }
}

static int printable_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < ' ' || *s > '~')
            return 0;
    return 1;
}

/* A display name written as it is: letters, digits, spaces and the atext
 * symbols without = and ? (which could look like an encoded-word). */
static int plain_name(const char *s)
{
    for (; *s; s++)
        if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
            !(*s >= '0' && *s <= '9') && !strchr(" !#$%&'*+-/^_`{|}~", *s))
            return 0;
    return 1;
}

/* Writes t as one token, and empties it. */
static void flush_token(line *l, mime_buf *t)
{
    if (!t->oom && t->len)
        line_token(l, t->p, t->len);
    l->b->oom |= t->oom;
    t->len = 0;
}

static void quoted_string(mime_buf *t, const char *s)
{
    mime_put(t, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mime_put(t, "\\", 1);
        mime_put(t, s, 1);
    }
    mime_put(t, "\"", 1);
}

/* "addr", or the name then "<addr>"; a comma after all but the last. */
static void mailbox_tokens(line *l, const mime_mailbox *m, int last)
{
    mime_buf t = {0};
    int named = *m->name != 0;
    if (named && !printable_ascii(m->name)) {
        encoded_words(l, m->name);
    } else if (named && plain_name(m->name)) {
        line_token(l, m->name, strlen(m->name));
    } else if (named) {
        quoted_string(&t, m->name);
        flush_token(l, &t);
    }
    mime_puts(&t, named ? "<" : "");
    mime_puts(&t, m->addr);
    mime_puts(&t, named ? ">" : "");
    mime_puts(&t, last ? "" : ",");
    flush_token(l, &t);
    mime_buf_free(&t);
}

void mime_header_mailboxes(mime_buf *b, const char *name, const mime_mailbox *v,
                           size_t n)
{
    line l;
    line_start(&l, b, name);
    for (size_t i = 0; i < n; i++)
        mailbox_tokens(&l, &v[i], i + 1 == n);
    line_end(&l);
}

void mime_header_text(mime_buf *b, const char *name, const char *value)
{
    line l;
    line_start(&l, b, name);
    size_t n = strlen(value);
    /* Empty: "Subject:" alone (no encoded-word is written for nothing). */
    if (n && printable_ascii(value) && !strstr(value, "=?") &&
        l.col + 1 + n <= HEADER_WIDTH)
        line_token(&l, value, n);
    else
        encoded_words(&l, value);
    line_end(&l);
}

void mime_header(mime_buf *b, const char *name, const char *value)
{
    mime_puts(b, name);
    mime_put(b, ": ", 2);
    mime_puts(b, value);
    mime_put(b, "\r\n", 2);
}

void mime_one_line(char *s)
{
    char *w = s;
    int space = 1; /* drops leading spaces */
    for (char *r = s; *r; r++) {
        unsigned char c = (unsigned char)*r;
        if (c < ' ' || c == 0x7f || c == ' ') {
            if (!space)
                *w++ = ' ';
            space = 1;
        } else {
            *w++ = *r;
            space = 0;
        }
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = 0;
}

/* ---- the date ------------------------------------------------------------ */

void mime_date(int64_t ms, char out[40])
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    /* Days to a civil date (H. Hinnant's algorithm). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    int64_t w = (days % 7 + 11) % 7; /* 1970-01-01 was a Thursday */
    snprintf(out, 40, "%s, %02d %s %04lld %02d:%02d:%02d +0000", wd[w], (int)d,
             mon[m - 1], (long long)y, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60));
}

/* ---- bodies -------------------------------------------------------------- */

/* One line of text (no line end in it) as quoted-printable lines. */
static void qp_line(mime_buf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        int enc;
        for (;;) {
            int blank_end = (c == ' ' || c == '\t') && i + 1 == n;
            int line_head =
                col == 0 && (c == '.' || (c == 'F' && n - i >= 5 &&
                                          !memcmp(s + i, "From ", 5)));
            enc = c == '=' || c > '~' || (c < ' ' && c != '\t') || blank_end ||
                  line_head;
            if (col + (enc ? 3 : 1) <= BODY_WIDTH - 1)
                break;
            mime_put(b, "=\r\n", 3); /* a soft line break */
            col = 0;
        }
        if (enc) {
            char e[3] = {'=', hex[c >> 4], hex[c & 15]};
            mime_put(b, e, 3);
            col += 3;
        } else {
            mime_put(b, (const char *)s + i, 1);
            col++;
        }
    }
    mime_put(b, "\r\n", 2);
}

/* Calls each line of text, whatever its line ends (CRLF, LF or CR), with
 * trailing empty lines dropped. */
static void each_line(const char *text, size_t len,
                      void (*fn)(mime_buf *, const unsigned char *, size_t),
                      mime_buf *b)
{
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n' && text[j] != '\r')
            j++;
        fn(b, (const unsigned char *)text + i, j - i);
        if (j < len && text[j] == '\r' && j + 1 < len && text[j + 1] == '\n')
            j++;
        i = j + 1;
    }
}

static void crlf_line(mime_buf *b, const unsigned char *s, size_t n)
{
    mime_put(b, (const char *)s, n);
    mime_put(b, "\r\n", 2);
}

static void base64_body(mime_buf *b, const char *text, size_t len)
{
    mime_buf norm = {0};
    each_line(text, len, crlf_line, &norm);
    if (norm.len >= 2)
        norm.len -= 2; /* the part's last line end is the boundary's */
    char out[80];
    for (size_t i = 0; i < norm.len && !norm.oom; i += 57) {
        size_t n = norm.len - i < 57 ? norm.len - i : 57;
        mime_put(b, out, base64_chunk((unsigned char *)norm.p + i, n, out));
        mime_put(b, "\r\n", 2);
    }
    b->oom |= norm.oom;
    mime_buf_free(&norm);
}

void mime_part(mime_buf *b, const char *content_type, const char *text,
               size_t len)
{
    size_t high = 0;
    for (size_t i = 0; i < len; i++)
        high += (unsigned char)text[i] >= 0x80;
    int use_b64 = high * 3 > len;
    mime_header(b, "Content-Type", content_type);
    mime_header(b, "Content-Transfer-Encoding",
                use_b64 ? "base64" : "quoted-printable");
    mime_put(b, "\r\n", 2);
    if (use_b64)
        base64_body(b, text, len);
    else
        each_line(text, len, qp_line, b);
}
