/* sdk.c - the host side of the connector SDK: the API table connectors call. */
#include "sdk.h"

#include "config.h"
#include "err.h"
#include "log.h"
#include "redact.h"
#include "template.h"
#include "verify.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define J(v) ((json_t *)(v))
#define H(v) ((hlc_json *)(v))

/* ---- logging, memory ----------------------------------------------------- */

static void sdk_log(const hlc_instance *inst, int level, const char *msg, ...)
{
    static const hl_log_level map[] = {HL_LOG_DEBUG, HL_LOG_INFO, HL_LOG_WARN,
                                       HL_LOG_ERROR};
    hl_log_level lv = level >= 0 && level < 4 ? map[level] : HL_LOG_INFO;
    if (lv < hl_log_get_level())
        return;
    /* "connector" = the instance, then the plugin's pairs (at most 16). */
    const char *kv[34] = {"connector", inst ? inst->name : "?"};
    size_t n = 2;
    va_list ap;
    va_start(ap, msg);
    for (const char *k; n + 2 < sizeof kv / sizeof *kv &&
                        (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        kv[n++] = k;
        kv[n++] = v ? v : "";
    }
    va_end(ap);
    kv[n] = NULL;
    hl_log(lv, "connector", msg, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5],
           kv[6], kv[7], kv[8], kv[9], kv[10], kv[11], kv[12], kv[13], kv[14],
           kv[15], kv[16], kv[17], kv[18], kv[19], kv[20], kv[21], kv[22],
           kv[23], kv[24], kv[25], kv[26], kv[27], kv[28], kv[29], kv[30],
           kv[31], kv[32], kv[33], NULL);
}

static void *sdk_alloc(size_t n)
{
    return calloc(1, n ? n : 1);
}

/* ---- configuration ------------------------------------------------------- */

const hlc_key *hl_sdk_key(const hlc_key *keys, const char *name)
{
    for (const hlc_key *k = keys; k && k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

const hl_ynode *hl_sdk_node(const hl_ynode *section, const char *key)
{
    char part[128];
    const hl_ynode *n = section;
    while (n && *key) {
        const char *dot = strchr(key, '.');
        size_t len = dot ? (size_t)(dot - key) : strlen(key);
        if (len >= sizeof part || n->type != HL_YMAP)
            return NULL;
        memcpy(part, key, len);
        part[len] = 0;
        n = hl_ynode_get(n, part);
        key += len + (dot != NULL);
    }
    return n && !hl_ynode_is_null(n) ? n : NULL;
}

/* The host's keys, which every connector has. */
static const hlc_key host_keys[] = {
    {"url", HLC_KEY_STRING, 0, NULL, NULL, NULL},
    {"policy", HLC_KEY_STRING, 0, NULL, NULL, NULL},
    {"tenant", HLC_KEY_STRING, 0, NULL, NULL, NULL},
    {"plugin", HLC_KEY_STRING, 0, NULL, NULL, NULL},
    {"timeout", HLC_KEY_DURATION, 0, NULL, NULL, NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const hlc_key *key_of(const hlc_config *c, const char *key)
{
    const hlc_key *k = hl_sdk_key(c->keys, key);
    return k ? k : hl_sdk_key(host_keys, key);
}

static const char *cfg_string(const hlc_config *c, const char *key)
{
    const hl_ynode *n = hl_sdk_node(c->node, key);
    if (n && n->type == HL_YSCALAR)
        return n->u.scalar.str;
    const hlc_key *k = key_of(c, key);
    return k ? k->default_value : NULL;
}

static int64_t cfg_int(const hlc_config *c, const char *key)
{
    const char *s = cfg_string(c, key);
    const hlc_key *k = key_of(c, key);
    if (!s || !k)
        return 0;
    uint64_t v = 0;
    switch (k->type) {
    case HLC_KEY_BOOL:
        return !strcmp(s, "true");
    case HLC_KEY_DURATION:
        return hl_parse_duration(s, &v) ? 0 : (int64_t)v;
    case HLC_KEY_SIZE:
        return hl_parse_size(s, &v) ? 0 : (int64_t)v;
    default:
        return strtoll(s, NULL, 10);
    }
}

static int cfg_has(const hlc_config *c, const char *key)
{
    return hl_sdk_node(c->node, key) != NULL;
}

static size_t cfg_count(const hlc_config *c, const char *key)
{
    const hl_ynode *n = hl_sdk_node(c->node, key);
    if (!n)
        return 0;
    return n->type == HL_YSEQ ? n->u.seq.n
           : n->type == HL_YMAP ? n->u.map.n
                                : 0;
}

static const char *cfg_item(const hlc_config *c, const char *key, size_t i,
                            const char **value)
{
    const hl_ynode *n = hl_sdk_node(c->node, key);
    if (value)
        *value = NULL;
    if (n && n->type == HL_YSEQ && i < n->u.seq.n &&
        n->u.seq.items[i]->type == HL_YSCALAR)
        return n->u.seq.items[i]->u.scalar.str;
    if (n && n->type == HL_YMAP && i < n->u.map.n) {
        const hl_ynode *v = n->u.map.pairs[i].value;
        if (value && v->type == HL_YSCALAR)
            *value = v->u.scalar.str;
        return n->u.map.pairs[i].key->u.scalar.str;
    }
    return NULL;
}

/* ---- JSON ---------------------------------------------------------------- */

static int js_type(const hlc_json *v)
{
    if (!v)
        return -1;
    switch (json_typeof(J(v))) {
    case JSON_OBJECT: return HLC_JSON_OBJECT;
    case JSON_ARRAY: return HLC_JSON_ARRAY;
    case JSON_STRING: return HLC_JSON_STRING;
    case JSON_INTEGER: return HLC_JSON_INTEGER;
    case JSON_REAL: return HLC_JSON_REAL;
    case JSON_TRUE: return HLC_JSON_TRUE;
    case JSON_FALSE: return HLC_JSON_FALSE;
    default: return HLC_JSON_NULL;
    }
}

static const hlc_json *js_get(const hlc_json *obj, const char *key)
{
    return H(json_object_get(J(obj), key));
}

/* RFC 6901, with ~1 for '/' and ~0 for '~'. */
static const hlc_json *js_pointer(const hlc_json *root, const char *ptr)
{
    json_t *cur = J(root);
    if (!ptr || !*ptr)
        return root;
    if (*ptr != '/')
        return NULL;
    char tok[512];
    while (cur && *ptr == '/') {
        ptr++;
        size_t n = 0;
        for (; *ptr && *ptr != '/'; ptr++) {
            char ch = *ptr;
            if (ch == '~') {
                if (ptr[1] != '0' && ptr[1] != '1')
                    return NULL;
                ch = ptr[1] == '0' ? '~' : '/';
                ptr++;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = ch;
        }
        tok[n] = 0;
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            if (!n || (n > 1 && tok[0] == '0') || !isdigit((unsigned char)tok[0]))
                return NULL;
            unsigned long long i = strtoull(tok, &end, 10);
            cur = *end ? NULL : json_array_get(cur, (size_t)i);
        } else {
            return NULL;
        }
    }
    return H(cur);
}

static const hlc_json *js_at(const hlc_json *arr, size_t i)
{
    return H(json_array_get(J(arr), i));
}

static size_t js_size(const hlc_json *v)
{
    if (json_is_array(J(v)))
        return json_array_size(J(v));
    return json_is_object(J(v)) ? json_object_size(J(v)) : 0;
}

static const char *js_key_at(const hlc_json *obj, size_t i,
                             const hlc_json **value)
{
    if (value)
        *value = NULL;
    if (!json_is_object(J(obj)))
        return NULL;
    void *it = json_object_iter(J(obj));
    for (size_t k = 0; it && k < i; k++)
        it = json_object_iter_next(J(obj), it);
    if (!it)
        return NULL;
    if (value)
        *value = H(json_object_iter_value(it));
    return json_object_iter_key(it);
}

static const char *js_string(const hlc_json *v)
{
    return json_string_value(J(v));
}

static int64_t js_integer(const hlc_json *v)
{
    return json_integer_value(J(v));
}

static double js_number(const hlc_json *v)
{
    return json_number_value(J(v));
}

static hlc_json *js_object(void) { return H(json_object()); }
static hlc_json *js_array(void) { return H(json_array()); }
static hlc_json *js_new_string(const char *s) { return s ? H(json_string(s)) : NULL; }
static hlc_json *js_new_stringn(const char *s, size_t n) { return s ? H(json_stringn(s, n)) : NULL; }
static hlc_json *js_new_integer(int64_t v) { return H(json_integer(v)); }
static hlc_json *js_new_real(double v) { return H(json_real(v)); }
static hlc_json *js_new_bool(int v) { return H(json_boolean(v)); }
static hlc_json *js_new_null(void) { return H(json_null()); }
static hlc_json *js_copy(const hlc_json *v) { return H(json_deep_copy(J(v))); }

static int js_set(hlc_json *obj, const char *key, hlc_json *value)
{
    if (!obj || !key || !value) {
        json_decref(J(value));
        return HL_ERANGE;
    }
    return json_object_set_new(J(obj), key, J(value)) ? HL_ENOMEM : 0;
}

static int js_append(hlc_json *arr, hlc_json *value)
{
    if (!arr || !value) {
        json_decref(J(value));
        return HL_ERANGE;
    }
    return json_array_append_new(J(arr), J(value)) ? HL_ENOMEM : 0;
}

static int js_del(hlc_json *obj, const char *key)
{
    return json_object_del(J(obj), key) ? HL_ENOTFOUND : 0;
}

static char *js_dump(const hlc_json *v, size_t *len)
{
    char *s = v ? json_dumps(J(v), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (len)
        *len = s ? strlen(s) : 0;
    return s;
}

static hlc_json *js_parse(const char *text, size_t len)
{
    return H(json_loadb(text, len, JSON_DECODE_ANY, NULL));
}

static void js_free(hlc_json *v)
{
    json_decref(J(v));
}

/* ---- templates, text ----------------------------------------------------- */

static hlc_template *tpl_compile(const char *src, char *err, size_t errlen)
{
    hl_template *t = NULL;
    if (hl_template_compile(src, strlen(src), &t, err, errlen))
        return NULL;
    return (hlc_template *)t;
}

static char *tpl_render(const hlc_template *t, const hlc_json *ctx, int escape,
                        size_t *len, char *err, size_t errlen)
{
    char *out = NULL;
    size_t n = 0;
    hl_escape esc = escape == HLC_ESC_JSON   ? HL_ESC_JSON
                    : escape == HLC_ESC_NONE ? HL_ESC_NONE
                                             : HL_ESC_HTML;
    hl_template_render((const hl_template *)t, J(ctx), NULL, esc, &out, &n,
                       err, errlen);
    if (len)
        *len = n;
    return out;
}

static void tpl_free(hlc_template *t)
{
    hl_template_destroy((hl_template *)t);
}

static char *text_truncate(const char *s, size_t max_chars,
                           const char *ellipsis)
{
    if (!s)
        s = "";
    if (!ellipsis)
        ellipsis = "";
    size_t chars = 0, cut = 0, ell_chars = 0, len = strlen(s);
    for (const char *p = ellipsis; *p; p++)
        ell_chars += ((unsigned char)*p & 0xc0) != 0x80;
    /* Where the text has max_chars characters, and where there is room
     * left for the ellipsis. */
    if (ell_chars > max_chars)
        ellipsis = ""; /* no room for it: cut the text alone */
    size_t keep = max_chars > ell_chars ? max_chars - ell_chars : 0;
    if (!*ellipsis)
        keep = max_chars;
    size_t i = 0;
    for (; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) == 0x80)
            continue;
        if (chars == keep)
            cut = i;
        if (chars == max_chars)
            break;
        chars++;
    }
    if (i >= len) { /* it fits */
        char *out = strdup(s);
        return out;
    }
    size_t el = strlen(ellipsis);
    char *out = malloc(cut + el + 1);
    if (!out)
        return NULL;
    memcpy(out, s, cut);
    memcpy(out + cut, ellipsis, el + 1);
    return out;
}

/* ---- requests ------------------------------------------------------------ */

void hl_request_init(hlc_request *r)
{
    memset(r, 0, sizeof *r);
    r->kind = -1;
    r->idem_header = strdup("Idempotency-Key");
}

void hl_request_free(hlc_request *r)
{
    free(r->method);
    free(r->url);
    for (size_t i = 0; i < r->n_headers; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r->client_cert);
    free(r->client_key);
    free(r->ca_file);
    free(r->idem_header);
    free(r->mail_from);
    for (size_t i = 0; i < r->n_rcpt; i++)
        free(r->rcpt[i]);
    free(r->rcpt);
    free(r->username);
    free(r->password);
    free(r->path);
    memset(r, 0, sizeof *r);
}

/* Replace *dst with a copy of s (NULL stays NULL); 0 or HL_ENOMEM. */
static int set_str(char **dst, const char *s)
{
    char *c = s ? strdup(s) : NULL;
    if (s && !c)
        return HL_ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

/* Header names and values must not smuggle in another header. */
static int header_ok(const char *s, int name)
{
    if (name && !*s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || (name && (ch <= ' ' || ch == ':')))
            return 0;
    }
    return 1;
}

static int req_http(hlc_request *r, const char *method, const char *url)
{
    static const char *const ok[] = {"POST", "PUT", "PATCH", "GET", "DELETE"};
    int known = 0;
    for (size_t i = 0; method && i < sizeof ok / sizeof *ok; i++)
        known |= !strcmp(method, ok[i]);
    if (!known || !url ||
        (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)))
        return HL_ERANGE;
    r->kind = HL_XFER_HTTP;
    return set_str(&r->method, method) | set_str(&r->url, url);
}

static int req_header(hlc_request *r, const char *name, const char *value)
{
    if (!name || !value || !header_ok(name, 1) || !header_ok(value, 0))
        return HL_ESYNTAX;
    hl_header *h = realloc(r->headers, (r->n_headers + 1) * sizeof *h);
    if (!h)
        return HL_ENOMEM;
    r->headers = h;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return HL_ENOMEM;
    }
    h[r->n_headers].name = n;
    h[r->n_headers].value = v;
    r->n_headers++;
    return 0;
}

static int req_body(hlc_request *r, const void *body, size_t len)
{
    char *b = malloc(len + 1);
    if (!b)
        return HL_ENOMEM;
    if (len)
        memcpy(b, body, len);
    b[len] = 0;
    free(r->body);
    r->body = b;
    r->body_len = len;
    return 0;
}

static const void *req_get_body(const hlc_request *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body;
}

static int req_tls(hlc_request *r, const char *cert, const char *key,
                   const char *ca)
{
    return set_str(&r->client_cert, cert) | set_str(&r->client_key, key) |
           set_str(&r->ca_file, ca);
}

static int req_idem(hlc_request *r, const char *name)
{
    if (name && !header_ok(name, 1))
        return HL_ESYNTAX;
    r->idem_renamed = 1;
    return set_str(&r->idem_header, name);
}

static int req_smtp(hlc_request *r, const char *url, const char *from,
                    const char *const *rcpt, size_t n, const char *user,
                    const char *password, int starttls)
{
    if (!url || !from || !n ||
        (strncasecmp(url, "smtp://", 7) && strncasecmp(url, "smtps://", 8)))
        return HL_ERANGE;
    char **v = calloc(n, sizeof *v);
    if (!v)
        return HL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(rcpt[i] ? rcpt[i] : ""))) {
            while (i--)
                free(v[i]);
            free(v);
            return HL_ENOMEM;
        }
    for (size_t i = 0; i < r->n_rcpt; i++)
        free(r->rcpt[i]);
    free(r->rcpt);
    r->rcpt = v;
    r->n_rcpt = n;
    r->kind = HL_XFER_SMTP;
    r->starttls = starttls;
    return set_str(&r->url, url) | set_str(&r->mail_from, from) |
           set_str(&r->username, user) | set_str(&r->password, password);
}

static int req_file(hlc_request *r, const char *path, uint64_t max_bytes,
                    uint32_t keep)
{
    if (!path || !*path)
        return HL_ERANGE;
    r->kind = HL_XFER_FILE;
    r->max_bytes = max_bytes;
    r->keep = keep;
    return set_str(&r->path, path);
}

/* ---- responses, classification ------------------------------------------- */

static int resp_status(const hlc_response *r)
{
    return r->res->status;
}

static int resp_error(const hlc_response *r)
{
    /* hl_xfer_error and hlc_net_error list the same classes in order. */
    return r->res->error;
}

static const char *resp_error_text(const hlc_response *r)
{
    return r->res->error_text;
}

_Static_assert((int)HLC_NET_OTHER == (int)HL_XERR_OTHER &&
                   (int)HLC_NET_BLOCKED == (int)HL_XERR_BLOCKED &&
                   (int)HLC_NET_TIMEOUT == (int)HL_XERR_TIMEOUT,
               "hlc_net_error mirrors hl_xfer_error");

static const char *resp_header(const hlc_response *r, const char *name)
{
    /* Valid until the next call, as the SDK header says. */
    static _Thread_local char buf[1024];
    return hl_xfer_header(r->res, name, buf, sizeof buf);
}

static const char *resp_body(const hlc_response *r, size_t *len)
{
    if (len)
        *len = r->res->body_len;
    return r->res->body ? r->res->body : "";
}

int64_t hl_retry_after_ms(const char *v, int64_t now_ms)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end || s > 10ull * 365 * 86400)
            return -1;
        return (int64_t)s * 1000;
    }
    struct tm tm = {0};
    /* The IMF-fixdate, and the two obsolete forms HTTP still accepts. */
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                        "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    const char *end = NULL;
    for (size_t i = 0; i < 3 && !end; i++) {
        memset(&tm, 0, sizeof tm);
        end = strptime(v, forms[i], &tm);
        while (end && (*end == ' ' || *end == '\t'))
            end++;
        if (end && *end)
            end = NULL;
    }
    if (!end)
        return -1;
    int64_t at = (int64_t)timegm(&tm) * 1000;
    return at > now_ms ? at - now_ms : 0;
}

static void outcome(hlc_outcome *out, int verdict, int64_t after,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void outcome(hlc_outcome *out, int verdict, int64_t after,
                    const char *fmt, ...)
{
    out->verdict = (uint32_t)verdict;
    out->retry_after_ms = after;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

void hl_classify_default(const hl_xfer_res *res, hlc_outcome *out)
{
    int s = res->status;
    if (res->error != HL_XERR_NONE) {
        int permanent = res->error == HL_XERR_BLOCKED;
        outcome(out, permanent ? HLC_FAILED : HLC_RETRY, -1, "%s: %s",
                hl_xfer_error_name(res->error), res->error_text);
        return;
    }
    if (res->status >= 200 && res->status < 300) {
        outcome(out, HLC_DELIVERED, -1, "HTTP %d", s);
        return;
    }
    char ra[64];
    int64_t after = -1;
    if (s == 429 || s == 503)
        after = hl_retry_after_ms(hl_xfer_header(res, "Retry-After", ra,
                                                 sizeof ra),
                                  (int64_t)time(NULL) * 1000);
    if (s == 408 || s == 425 || s == 429 || s >= 500)
        outcome(out, HLC_RETRY, after, "HTTP %d", s);
    else if (s == 410)
        outcome(out, HLC_DISABLE, -1,
                "HTTP 410: the destination is gone; resume the connector "
                "once its url is fixed");
    else
        outcome(out, HLC_FAILED, -1, "HTTP %d", s);
}

static void classify_default(const hlc_response *r, hlc_outcome *out)
{
    hl_classify_default(r->res, out);
}

/* ---- rendering ----------------------------------------------------------- */

int hl_render(const hlc_instance *inst, const hl_redactor *red,
              json_t *event, const hlc_delivery *dl, hlc_request *req,
              char *why, size_t whylen)
{
    if (red && hl_redact_json(red, event) < 0) {
        snprintf(why, whylen,
                 "redaction failed; the event is not sent unredacted");
        return HLC_RENDER_RETRY;
    }
    char err[512] = "";
    int rc = inst->desc->render(inst->state, (const hlc_json *)event, dl, req,
                                err, sizeof err);
    if (rc == HLC_RENDER_OK && req->kind < 0) {
        rc = HLC_RENDER_FAILED;
        snprintf(err, sizeof err, "the connector made no request");
    }
    if (rc < HLC_RENDER_OK || rc > HLC_RENDER_RETRY) {
        snprintf(err, sizeof err, "the connector returned %d from render",
                 rc);
        rc = HLC_RENDER_FAILED;
    }
    if (rc == HLC_RENDER_FAILED || rc == HLC_RENDER_RETRY)
        snprintf(why, whylen, "render: %s",
                 *err ? err : "the connector gave no reason");
    return rc;
}

size_t hl_request_headers(const hlc_request *rq, const char *delivery_id,
                          const char *correlation_id, hl_header *out,
                          size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < rq->n_headers && n < cap; i++)
        out[n++] = rq->headers[i];
    if (rq->kind != HL_XFER_HTTP)
        return n;
    if (rq->idem_header && n < cap)
        out[n++] = (hl_header){rq->idem_header, delivery_id};
    if (correlation_id && *correlation_id && n < cap)
        out[n++] = (hl_header){"X-Request-ID", correlation_id};
    if (n < cap)
        out[n++] = (hl_header){"User-Agent", "hookline/" HL_VERSION};
    return n;
}

/* ---- key-value store ----------------------------------------------------- */

static int kv_get(const hlc_instance *inst, const char *key, char **value)
{
    *value = NULL;
    if (!inst->kv)
        return HL_ENOTFOUND;
    return hl_queue_kv_get(inst->kv, inst->name, key, value);
}

static int kv_put(const hlc_instance *inst, const char *key,
                  const char *value)
{
    if (!inst->kv || !value)
        return HL_ESTORE;
    return hl_queue_kv_put(inst->kv, inst->name, key, value);
}

static int kv_del(const hlc_instance *inst, const char *key)
{
    if (!inst->kv)
        return HL_ESTORE;
    return hl_queue_kv_put(inst->kv, inst->name, key, NULL);
}

/* ---- signatures ---------------------------------------------------------- */

static int sign_sw(const char *const *secrets, size_t n, const char *msg_id,
                   int64_t ts, const void *body, size_t len, char *out,
                   size_t cap)
{
    hl_strlist l = {(const char **)secrets, n};
    return hl_sign_standard_webhooks(&l, msg_id, ts, body, len, out, cap);
}

static int sign_hmac(int hash, int enc, const char *prefix, const char *secret,
                     const void *body, size_t len, char *out, size_t cap)
{
    int alg = hash == HLC_SHA1     ? HL_HASH_SHA1
              : hash == HLC_SHA512 ? HL_HASH_SHA512
              : hash == HLC_SHA256 ? HL_HASH_SHA256
                                   : -1;
    int e = enc == HLC_ENC_HEX ? HL_ENC_HEX : enc == HLC_ENC_BASE64 ? HL_ENC_BASE64 : -1;
    if (alg < 0 || e < 0)
        return HL_ERANGE;
    return hl_sign_hmac(alg, e, prefix, secret, body, len, out, cap);
}

static int b64(const void *in, size_t len, char *out, size_t cap)
{
    if (len > (SIZE_MAX / 4) * 3 - 3 || cap < 4 * ((len + 2) / 3) + 1 ||
        len > INT32_MAX)
        return HL_ETOOBIG;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return 0;
}

const hlc_api hl_sdk_api = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_api),
    .log = sdk_log,
    .alloc = sdk_alloc,
    .realloc = realloc,
    .free = free,
    .config_string = cfg_string,
    .config_int = cfg_int,
    .config_has = cfg_has,
    .config_count = cfg_count,
    .config_item = cfg_item,
    .json_type = js_type,
    .json_get = js_get,
    .json_pointer = js_pointer,
    .json_at = js_at,
    .json_size = js_size,
    .json_key_at = js_key_at,
    .json_string = js_string,
    .json_integer = js_integer,
    .json_number = js_number,
    .json_object = js_object,
    .json_array = js_array,
    .json_new_string = js_new_string,
    .json_new_stringn = js_new_stringn,
    .json_new_integer = js_new_integer,
    .json_new_real = js_new_real,
    .json_new_bool = js_new_bool,
    .json_new_null = js_new_null,
    .json_copy = js_copy,
    .json_set = js_set,
    .json_append = js_append,
    .json_del = js_del,
    .json_dump = js_dump,
    .json_parse = js_parse,
    .json_free = js_free,
    .template_compile = tpl_compile,
    .template_render = tpl_render,
    .template_free = tpl_free,
    .text_truncate = text_truncate,
    .request_http = req_http,
    .request_header = req_header,
    .request_body = req_body,
    .request_get_body = req_get_body,
    .request_tls = req_tls,
    .request_idempotency_header = req_idem,
    .request_smtp = req_smtp,
    .response_status = resp_status,
    .response_error = resp_error,
    .response_error_text = resp_error_text,
    .response_header = resp_header,
    .response_body = resp_body,
    .classify_default = classify_default,
    .kv_get = kv_get,
    .kv_put = kv_put,
    .kv_del = kv_del,
    .sign_standard_webhooks = sign_sw,
    .sign_hmac = sign_hmac,
    .base64 = b64,
    .request_file = req_file,
};
