/* hlc_util.c - small helpers the built-in connectors share: text buffers, a JSON builder, reading the canonical event. */
#include "hlc_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- text ---------------------------------------------------------------- */

void hlcu_sb_addn(hlcu_sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = b->a->realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void hlcu_sb_add(hlcu_sbuf *b, const char *s)
{
    hlcu_sb_addn(b, s, strlen(s));
}

char *hlcu_sb_take(hlcu_sbuf *b)
{
    if (!b->failed && !b->s)
        hlcu_sb_addn(b, "", 0);
    if (b->failed) {
        b->a->free(b->s);
        return NULL;
    }
    return b->s;
}

size_t hlcu_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

int hlcu_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xe0) == 0xc0 ? 1
                : (*p & 0xf0) == 0xe0 ? 2
                : (*p & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xc2))
            return 0;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

void hlcu_one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

int hlcu_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int hlcu_link_ok(const char *url)
{
    return url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7));
}

void hlcu_body_line(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    while (len &&
           (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) {
        body++;
        len--;
    }
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[n++] = ch < ' ' || ch == 0x7f ? ' ' : (char)ch;
    }
    while (n && out[n - 1] == ' ')
        n--;
    /* Do not end inside a UTF-8 sequence. */
    size_t k = n;
    while (k && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
        k--;
    if (k && ((unsigned char)out[k - 1] & 0xc0) == 0xc0) {
        unsigned char lead = (unsigned char)out[k - 1];
        size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (n - (k - 1) < want)
            n = k - 1;
    }
    out[n] = 0;
}

/* ---- the canonical event ------------------------------------------------- */

const char *hlcu_ev_str(const hlc_api *a, const hlc_json *ev, const char *ptr)
{
    const char *s = a->json_string(a->json_pointer(ev, ptr));
    return s && *s ? s : NULL;
}

int hlcu_status_closed(const char *status)
{
    return status && (!strcmp(status, "resolved") || !strcmp(status, "closed"));
}

int hlcu_is_resolved(const hlc_api *a, const hlc_json *ev)
{
    const char *ty = hlcu_ev_str(a, ev, "/type");
    if (hlcu_status_closed(hlcu_ev_str(a, ev, "/data/status")))
        return 1;
    return ty &&
           (hlcu_ends_with(ty, ".resolved") || hlcu_ends_with(ty, ".closed"));
}

const char *const hlcu_severities[HLCU_SEVERITIES] = {"critical", "error",
                                                      "warning", "info"};

size_t hlcu_severity_of(const hlc_api *a, const hlc_json *ev)
{
    const char *s = hlcu_ev_str(a, ev, "/severity");
    for (size_t i = 0; s && i < HLCU_SEVERITIES; i++)
        if (!strcmp(s, hlcu_severities[i]))
            return i;
    return HLCU_SEVERITIES - 1;
}

const char *hlcu_title_of(const hlc_api *a, const hlc_json *ev)
{
    const char *t = hlcu_ev_str(a, ev, "/data/title");
    if (!t)
        t = hlcu_ev_str(a, ev, "/type");
    return t ? t : "(no title)";
}

char *hlcu_context_line(const hlc_api *a, const hlc_json *ev)
{
    hlcu_sbuf b = {.a = a};
    const char *parts[3] = {hlcu_ev_str(a, ev, "/type"),
                            hlcu_ev_str(a, ev, "/time"),
                            hlcu_ev_str(a, ev, "/id")};
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        if (b.len)
            hlcu_sb_add(&b, " \xc2\xb7 ");
        if (i == 2)
            hlcu_sb_add(&b, "event ");
        hlcu_sb_add(&b, parts[i]);
    }
    return hlcu_sb_take(&b);
}

const char *hlcu_short_key(const hlc_api *a, const char *key, size_t max,
                           char buf[HLCU_HASHED_KEY_SIZE])
{
    if (hlcu_chars(key) <= max)
        return key;
    if (a->sign_hmac(HLC_SHA256, HLC_ENC_HEX, "hookline-", "hookline", key,
                     strlen(key), buf, HLCU_HASHED_KEY_SIZE))
        return NULL;
    return buf;
}

/* ---- templates ----------------------------------------------------------- */

int hlcu_compile(const hlc_api *a, const hlc_config *cfg, const char *key,
                 hlc_template **out, char *err, size_t errlen)
{
    const char *src = a->config_string(cfg, key);
    if (!src)
        return 0;
    char why[256] = "";
    if (!(*out = a->template_compile(src, why, sizeof why))) {
        snprintf(err, errlen, "%s: the Mustache template does not compile: %s",
                 key, why);
        return -1;
    }
    return 0;
}

int hlcu_compile_key(const hlc_api *a, const hlc_config *cfg, const char *key,
                     hlc_template **out, char *err, size_t errlen)
{
    const char *src = a->config_string(cfg, key);
    char why[400] = "";
    if (src && !(*out = a->template_compile(src, why, sizeof why))) {
        snprintf(err, errlen, "%s: the template does not compile: %s", key,
                 why);
        return -1;
    }
    return 0;
}

int hlcu_render_override(const hlc_api *a, const hlc_template *t,
                         const hlc_json *ctx, const char *key, char **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (!t)
        return 0;
    char why[256] = "";
    char *r = a->template_render(t, ctx, HLC_ESC_NONE, NULL, why, sizeof why);
    if (!r) {
        snprintf(err, errlen, "%s: the template failed: %s", key, why);
        return -1;
    }
    if (!hlcu_utf8_valid(r)) {
        snprintf(err, errlen, "%s: the template made text that is not UTF-8",
                 key);
        a->free(r);
        return -1;
    }
    if (!r[strspn(r, " \t\r\n")])
        a->free(r);
    else
        *out = r;
    return 0;
}

/* ---- building JSON ------------------------------------------------------- */

hlc_json *hlcu_put(hlcu_jb *b, hlc_json *obj, const char *key, hlc_json *v)
{
    if (b->a->json_set(obj, key, v)) {
        b->failed = 1;
        return NULL;
    }
    return v;
}

hlc_json *hlcu_push(hlcu_jb *b, hlc_json *arr, hlc_json *v)
{
    if (b->a->json_append(arr, v)) {
        b->failed = 1;
        return NULL;
    }
    return v;
}

void hlcu_put_str(hlcu_jb *b, hlc_json *obj, const char *key, const char *s)
{
    if (!s)
        b->failed = 1;
    else
        hlcu_put(b, obj, key, b->a->json_new_string(s));
}

/* ---- requests ------------------------------------------------------------ */

int hlcu_request_json(const hlc_api *a, hlc_request *req, const char *url,
                      const char *body, size_t len, char *err, size_t errlen)
{
    if (a->request_http(req, "POST", url) ||
        a->request_header(req, "Content-Type", "application/json") ||
        a->request_body(req, body, len)) {
        snprintf(err, errlen, "out of memory building the request");
        return HLC_RENDER_RETRY;
    }
    return HLC_RENDER_OK;
}

/* ---- classifying --------------------------------------------------------- */

void hlcu_add_reason(hlc_outcome *out, size_t *n, const char *fmt, ...)
{
    if (*n >= sizeof out->reason - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out->reason + *n, sizeof out->reason - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n += (size_t)w;
}
