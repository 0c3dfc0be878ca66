/* email.c - the email connector: each event as a text and HTML mail, SMTP. */
#include <hookline/connector.h>

#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_RCPT 100
#define MAX_SUBJECT 200 /* characters; longer is cut with an ellipsis */

/* The defaults. The context is the canonical event plus `hookline`:
 * labels (a list of {name, value}), has_labels, and link (data.url when it
 * is an http(s) URL, the only kind put in an HTML link). */
#define DEFAULT_SUBJECT "[{{severity}}] {{data.title}}"

// clang-format off
static const char default_text[] =
    "{{data.title}}\n"
    "\n"
    "{{#data.text}}\n"
    "{{data.text}}\n"
    "\n"
    "{{/data.text}}\n"
    "Severity: {{severity}}\n"
    "Source:   {{source}}\n"
    "{{#data.status}}\n"
    "Status:   {{data.status}}\n"
    "{{/data.status}}\n"
    "{{#hookline.has_labels}}\n"
    "Labels:\n"
    "{{#hookline.labels}}\n"
    "  {{name}}: {{value}}\n"
    "{{/hookline.labels}}\n"
    "{{/hookline.has_labels}}\n"
    "{{#data.url}}\n"
    "\n"
    "Link: {{data.url}}\n"
    "{{/data.url}}\n"
    "\n"
    "-- \n"
    "Sent by hookline for event {{id}}.\n";

static const char default_html[] =
    "<!DOCTYPE html>\n"
    "<html>\n"
    "<head><meta charset=\"utf-8\"><title>{{data.title}}</title></head>\n"
    "<body style=\"font-family: sans-serif; font-size: 14px\">\n"
    "<h2 style=\"margin: 0 0 12px 0\">{{data.title}}</h2>\n"
    "{{#data.text}}\n"
    "<p style=\"white-space: pre-wrap\">{{data.text}}</p>\n"
    "{{/data.text}}\n"
    "<table cellpadding=\"4\" style=\"border-collapse: collapse\">\n"
    "<tr><th align=\"left\">Severity</th><td>{{severity}}</td></tr>\n"
    "<tr><th align=\"left\">Source</th><td>{{source}}</td></tr>\n"
    "{{#data.status}}\n"
    "<tr><th align=\"left\">Status</th><td>{{data.status}}</td></tr>\n"
    "{{/data.status}}\n"
    "{{#hookline.has_labels}}\n"
    "<tr><th align=\"left\" valign=\"top\">Labels</th><td>\n"
    "{{#hookline.labels}}\n"
    "<code>{{name}}</code>: {{value}}<br>\n"
    "{{/hookline.labels}}\n"
    "</td></tr>\n"
    "{{/hookline.has_labels}}\n"
    "{{#hookline.link}}\n"
    "<tr><th align=\"left\">Link</th><td><a "
    "href=\"{{hookline.link}}\">{{hookline.link}}</a></td></tr>\n"
    "{{/hookline.link}}\n"
    "</table>\n"
    "<p style=\"color: #888888; font-size: 12px\">Sent by hookline for "
    "event {{id}}.</p>\n"
    "</body>\n"
    "</html>\n";
// clang-format on

static const hlc_key keys[] = {
    {"from", HLC_KEY_STRING, HLC_KEY_REQUIRED, NULL, NULL,
     "the sender, an address or \"Name <address>\"; also the envelope "
     "sender (MAIL FROM)"},
    {"to", HLC_KEY_LIST, HLC_KEY_REQUIRED, NULL, NULL,
     "the recipients (To), at least one, each an address or \"Name "
     "<address>\""},
    {"cc", HLC_KEY_LIST, 0, NULL, NULL, "copy recipients (Cc)"},
    {"bcc", HLC_KEY_LIST, 0, NULL, NULL,
     "hidden recipients: in the envelope, not in the headers"},
    {"reply_to", HLC_KEY_STRING, 0, NULL, NULL,
     "where replies go (Reply-To), an address or \"Name <address>\""},
    {"starttls", HLC_KEY_BOOL, 0, "true", NULL,
     "on smtp://, upgrade to TLS with STARTTLS and send nothing if the "
     "server does not offer it; false sends in clear text (a relay on a "
     "trusted network only). smtps:// is TLS from the start and ignores it"},
    {"username", HLC_KEY_STRING, 0, NULL, NULL,
     "the user name for SMTP AUTH, with password; none: no AUTH"},
    {"password", HLC_KEY_SECRET, 0, NULL, NULL, "the password for SMTP AUTH"},
    {"subject", HLC_KEY_TEMPLATE, 0, DEFAULT_SUBJECT, NULL,
     "a Mustache template for the Subject over the canonical event, not "
     "escaped; made one line, cut at 200 characters, and RFC 2047-encoded "
     "when not short ASCII"},
    {"text", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "a Mustache template for the text/plain part, not escaped; default: "
     "title, text, severity, source, status, labels and link. Besides the "
     "event: hookline.labels (a list of name, value), hookline.has_labels, "
     "hookline.link (data.url when it is http or https)"},
    {"html", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "a Mustache template for the text/html part, values HTML-escaped; "
     "default: the same as text, as a table; a template that makes only "
     "white space sends the text part alone"},
    {"tls.ca_file", HLC_KEY_STRING, 0, NULL, NULL,
     "a PEM bundle to verify the server with instead of the system's"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const char *url;
    int starttls; /* what request_smtp gets: 0 on smtps:// */
    const char *username, *password, *ca_file;
    mime_mailbox from, reply_to;
    mime_mailbox *to, *cc, *bcc;
    size_t n_to, n_cc, n_bcc;
    const char *rcpt[MAX_RCPT]; /* the envelope: borrowed from the above */
    size_t n_rcpt;
    hlc_template *subject, *text, *html;
} email;

/* ---- configuration ------------------------------------------------------- */

static void free_list(mime_mailbox *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mime_mailbox_free(&v[i]);
    free(v);
}

static void destroy(void *state)
{
    email *m = state;
    if (!m)
        return;
    mime_mailbox_free(&m->from);
    mime_mailbox_free(&m->reply_to);
    free_list(m->to, m->n_to);
    free_list(m->cc, m->n_cc);
    free_list(m->bcc, m->n_bcc);
    if (m->subject)
        m->api->template_free(m->subject);
    if (m->text)
        m->api->template_free(m->text);
    if (m->html)
        m->api->template_free(m->html);
    m->api->free(m);
}

/* The mailboxes of list key into *out, their addresses into the envelope. */
static int read_list(email *m, const hlc_config *cfg, const char *key,
                     mime_mailbox **out, size_t *n, char *err, size_t errlen)
{
    size_t count = m->api->config_count(cfg, key);
    if (!count)
        return 0;
    if (m->n_rcpt + count > MAX_RCPT) {
        snprintf(err, errlen,
                 "%s: at most %d recipients in all (to, cc "
                 "and bcc); send to a list address instead",
                 key, MAX_RCPT);
        return -1;
    }
    if (!(*out = calloc(count, sizeof **out))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const char *s = m->api->config_item(cfg, key, i, NULL);
        char why[300];
        if (mime_mailbox_parse(s ? s : "", &(*out)[i], why, sizeof why)) {
            snprintf(err, errlen, "%s: item %zu: %s", key, i + 1, why);
            return -1;
        }
        (*n)++;
        m->rcpt[m->n_rcpt++] = (*out)[i].addr;
    }
    return 0;
}

static int read_mailbox(const hlc_api *api, const hlc_config *cfg,
                        const char *key, mime_mailbox *out, char *err,
                        size_t errlen)
{
    const char *s = api->config_string(cfg, key);
    char why[300];
    if (!s)
        return 0;
    if (mime_mailbox_parse(s, out, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

static int read_url(email *m, const hlc_config *cfg, char *err, size_t errlen)
{
    m->url = m->api->config_string(cfg, "url");
    if (!m->url) {
        snprintf(err, errlen,
                 "url is required: smtp://HOST:PORT (587 with "
                 "STARTTLS) or smtps://HOST:PORT (465)");
        return -1;
    }
    int smtps = !strncasecmp(m->url, "smtps://", 8);
    if ((!smtps && strncasecmp(m->url, "smtp://", 7)) ||
        strpbrk(m->url, "\r\n \t") || !m->url[smtps ? 8 : 7] ||
        m->url[smtps ? 8 : 7] == '/' || m->url[smtps ? 8 : 7] == ':') {
        snprintf(err, errlen,
                 "url: expected smtp://HOST:PORT or "
                 "smtps://HOST:PORT, got '%s'",
                 m->url);
        return -1;
    }
    m->starttls = !smtps && m->api->config_int(cfg, "starttls");
    return 0;
}

static int read_auth(email *m, const hlc_instance *inst, const hlc_config *cfg,
                     char *err, size_t errlen)
{
    const hlc_api *a = m->api;
    m->username = a->config_string(cfg, "username");
    m->password = a->config_string(cfg, "password");
    if (m->password && !m->username) {
        snprintf(err, errlen, "password: give username too");
        return -1;
    }
    if (m->username && !m->password) {
        snprintf(err, errlen, "username: give password too");
        return -1;
    }
    if ((m->username && strpbrk(m->username, "\r\n")) ||
        (m->password && strpbrk(m->password, "\r\n"))) {
        snprintf(err, errlen, "%s: a line break cannot be sent",
                 m->username && strpbrk(m->username, "\r\n") ? "username"
                                                             : "password");
        return -1;
    }
    if (m->username && !m->starttls && strncasecmp(m->url, "smtps://", 8))
        a->log(inst, HLC_LOG_WARN,
               "the SMTP password goes in clear text: starttls is false on "
               "smtp://",
               "url", m->url, NULL);
    m->ca_file = a->config_string(cfg, "tls.ca_file");
    if (m->ca_file && access(m->ca_file, R_OK)) {
        snprintf(err, errlen, "tls.ca_file: cannot read %s", m->ca_file);
        return -1;
    }
    return 0;
}

static int compile(email *m, const hlc_config *cfg, const char *key,
                   const char *fallback, hlc_template **out, char *err,
                   size_t errlen)
{
    const char *src = m->api->config_string(cfg, key);
    char why[300];
    if (!(*out = m->api->template_compile(src ? src : fallback, why,
                                          sizeof why))) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    email *m = api->alloc(sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->api = api;
    if (read_url(m, cfg, err, errlen) || read_auth(m, inst, cfg, err, errlen))
        goto fail;
    if (!api->config_string(cfg, "from")) {
        snprintf(err, errlen, "from is required: the sender's address");
        goto fail;
    }
    if (read_mailbox(api, cfg, "from", &m->from, err, errlen) ||
        read_mailbox(api, cfg, "reply_to", &m->reply_to, err, errlen) ||
        read_list(m, cfg, "to", &m->to, &m->n_to, err, errlen) ||
        read_list(m, cfg, "cc", &m->cc, &m->n_cc, err, errlen) ||
        read_list(m, cfg, "bcc", &m->bcc, &m->n_bcc, err, errlen))
        goto fail;
    if (!m->n_to) {
        snprintf(err, errlen, "to: give at least one recipient");
        goto fail;
    }
    if (compile(m, cfg, "subject", DEFAULT_SUBJECT, &m->subject, err, errlen) ||
        compile(m, cfg, "text", default_text, &m->text, err, errlen) ||
        compile(m, cfg, "html", default_html, &m->html, err, errlen))
        goto fail;
    *state = m;
    return 0;
fail:
    destroy(m);
    return -1;
}

/* ---- rendering ----------------------------------------------------------- */

/* data.labels as a list of {name, value} (allocated; NULL when out of
 * memory). */
static hlc_json *label_list(const hlc_api *a, const hlc_json *labels)
{
    hlc_json *list = a->json_array();
    size_t n =
        a->json_type(labels) == HLC_JSON_OBJECT ? a->json_size(labels) : 0;
    for (size_t i = 0; list && i < n; i++) {
        const hlc_json *v = NULL;
        const char *k = a->json_key_at(labels, i, &v);
        const char *s = a->json_string(v);
        hlc_json *item = a->json_object();
        /* The list owns item from here, also when appending fails. */
        if (a->json_append(list, item) || !k ||
            a->json_set(item, "name", a->json_new_string(k)) ||
            a->json_set(item, "value", a->json_new_string(s ? s : ""))) {
            a->json_free(list);
            return NULL;
        }
    }
    return list;
}

/* The event with `hookline` added for the templates (allocated; NULL when
 * out of memory). */
static hlc_json *context(const hlc_api *a, const hlc_json *event)
{
    hlc_json *ctx = a->json_copy(event), *hl = a->json_object();
    if (!ctx || !hl) {
        a->json_free(ctx);
        a->json_free(hl);
        return NULL;
    }
    /* ctx owns hl from here; hl owns what is set in it. */
    const hlc_json *labels = a->json_pointer(event, "/data/labels");
    const char *url = a->json_string(a->json_pointer(event, "/data/url"));
    int link = url && (!strncasecmp(url, "https://", 8) ||
                       !strncasecmp(url, "http://", 7));
    if (a->json_set(ctx, "hookline", hl) ||
        a->json_set(hl, "labels", label_list(a, labels)) ||
        a->json_set(hl, "has_labels",
                    a->json_new_bool(a->json_type(labels) == HLC_JSON_OBJECT &&
                                     a->json_size(labels) > 0)) ||
        (link && a->json_set(hl, "link", a->json_new_string(url)))) {
        a->json_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Letters, digits, '-', '_' and '.': safe inside <...@hookline> and a
 * boundary. Anything else becomes '_'. */
static void token(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                    (*s >= '0' && *s <= '9') || strchr("-_.", *s))
                       ? *s
                       : '_';
    out[n] = 0;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!strchr(" \t\r\n", *s))
            return 0;
    return 1;
}

typedef struct {
    char *subject, *text, *html;
    size_t text_len, html_len;
} rendered;

static int render_parts(email *m, const hlc_json *ctx, rendered *r, char *err,
                        size_t errlen)
{
    const hlc_api *a = m->api;
    char *subject =
        a->template_render(m->subject, ctx, HLC_ESC_NONE, NULL, err, errlen);
    if (!subject)
        return -1;
    mime_one_line(subject);
    r->subject = a->text_truncate(subject, MAX_SUBJECT, "…");
    a->free(subject);
    if (!r->subject) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(r->text = a->template_render(m->text, ctx, HLC_ESC_NONE, &r->text_len,
                                       err, errlen)) ||
        !(r->html = a->template_render(m->html, ctx, HLC_ESC_HTML, &r->html_len,
                                       err, errlen)))
        return -1;
    return 0;
}

static void headers(email *m, const hlc_json *event, const hlc_delivery *d,
                    const rendered *r, mime_buf *b)
{
    const hlc_api *a = m->api;
    char date[40], id[128], line[200];
    mime_header_mailboxes(b, "From", &m->from, 1);
    if (m->reply_to.addr)
        mime_header_mailboxes(b, "Reply-To", &m->reply_to, 1);
    mime_header_mailboxes(b, "To", m->to, m->n_to);
    if (m->n_cc)
        mime_header_mailboxes(b, "Cc", m->cc, m->n_cc);
    mime_header_text(b, "Subject", r->subject);
    mime_date(d->now_ms, date);
    mime_header(b, "Date", date);
    /* The delivery id: every attempt sends the same message. */
    token(d->delivery_id, id, sizeof id);
    snprintf(line, sizeof line, "<%s@hookline>", id);
    mime_header(b, "Message-ID", line);
    /* Messages about the same thing (one dedupkey) thread together. */
    const char *dk = a->json_string(a->json_get(event, "dedupkey"));
    char sig[80];
    if (dk && *dk &&
        !a->sign_hmac(HLC_SHA256, HLC_ENC_HEX, NULL, "hookline-thread", dk,
                      strlen(dk), sig, sizeof sig)) {
        sig[32] = 0;
        snprintf(line, sizeof line, "<thread.%s@hookline>", sig);
        mime_header(b, "References", line);
    }
    mime_header(b, "MIME-Version", "1.0");
    mime_header(b, "Auto-Submitted", "auto-generated");
    token(d->event_id, id, sizeof id);
    if (*id)
        mime_header(b, "X-Hookline-Event", id);
}

static void message(email *m, const hlc_json *event, const hlc_delivery *d,
                    const rendered *r, mime_buf *b)
{
    char id[128], boundary[160], line[200];
    headers(m, event, d, r, b);
    if (blank(r->html)) {
        mime_part(b, "text/plain; charset=UTF-8", r->text, r->text_len);
        return;
    }
    /* "=_" is never in quoted-printable or base64 text. */
    token(d->delivery_id, id, sizeof id);
    snprintf(boundary, sizeof boundary, "=_hookline_%.50s", id); /* <= 70 */
    snprintf(line, sizeof line, "multipart/alternative;\r\n boundary=\"%s\"",
             boundary);
    mime_header(b, "Content-Type", line);
    mime_puts(b, "\r\nThis is a multi-part message in MIME format.\r\n");
    snprintf(line, sizeof line, "\r\n--%s\r\n", boundary);
    mime_puts(b, line);
    mime_part(b, "text/plain; charset=UTF-8", r->text, r->text_len);
    mime_puts(b, line + 2);
    mime_part(b, "text/html; charset=UTF-8", r->html, r->html_len);
    snprintf(line, sizeof line, "--%s--\r\n", boundary);
    mime_puts(b, line);
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    email *m = state;
    const hlc_api *a = m->api;
    rendered r = {0};
    mime_buf b = {0};
    int rc = HLC_RENDER_RETRY;
    hlc_json *ctx = context(a, event);
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    if (render_parts(m, ctx, &r, err, errlen)) {
        rc = HLC_RENDER_FAILED;
        goto out;
    }
    message(m, event, d, &r, &b);
    if (b.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (a->request_smtp(req, m->url, m->from.addr, m->rcpt, m->n_rcpt,
                        m->username, m->password, m->starttls) ||
        a->request_body(req, b.p, b.len) ||
        (m->ca_file && a->request_tls(req, NULL, NULL, m->ca_file))) {
        snprintf(err, errlen, "the SMTP request could not be made");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->json_free(ctx);
    a->free(r.subject);
    a->free(r.text);
    a->free(r.html);
    mime_buf_free(&b);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* What a reply code means (RFC 5321 4.2.3, RFC 4954 6). */
static const char *reply_meaning(int code)
{
    switch (code) {
    case 421: return "the service is not available, closing the connection";
    case 450: return "the mailbox is unavailable for now (busy or blocked)";
    case 451: return "a local error in processing";
    case 452: return "insufficient system storage";
    case 454: return "temporary authentication failure";
    case 455: return "the server cannot accommodate the parameters";
    case 500: return "syntax error, command not recognized";
    case 501: return "syntax error in parameters";
    case 502: return "command not implemented";
    case 503: return "bad sequence of commands";
    case 504: return "command parameter not implemented";
    case 521: return "the server does not accept mail";
    case 530: return "authentication required";
    case 534: return "the authentication mechanism is too weak";
    case 535: return "authentication credentials invalid";
    case 538: return "encryption required for the authentication mechanism";
    case 550:
        return "mailbox unavailable (not found, no access, or refused "
               "by policy)";
    case 551: return "user not local";
    case 552: return "exceeded storage allocation";
    case 553: return "mailbox name not allowed";
    case 554: return "transaction failed";
    case 555: return "MAIL FROM or RCPT TO parameters not recognized";
    default:
        return code >= 500   ? "permanent failure"
               : code >= 400 ? "temporary failure"
                             : "accepted";
    }
}

/* Which command the reply answered, from libcurl's text ("RCPT failed:
 * 550"; a refused end of data is its "Weird server reply"). */
static const char *stage(const char *curl_text)
{
    static const struct {
        const char *curl, *stage;
    } map[] = {
        {"MAIL failed", " to MAIL FROM"},
        {"RCPT failed", " to RCPT TO"},
        {"DATA failed", " to DATA"},
        {"Weird server reply", " at the end of the message"},
        {"Login denied", " to AUTH"},
    };
    for (size_t i = 0; curl_text && i < sizeof map / sizeof *map; i++)
        if (strstr(curl_text, map[i].curl))
            return map[i].stage;
    return "";
}

/* The server's own words when the host passes them as the response body
 * (its last line, made one line): "" when there are none. */
static void server_said(const hlc_api *a, const hlc_response *resp, char *out,
                        size_t cap)
{
    size_t len = 0;
    const char *body = a->response_body(resp, &len);
    out[0] = 0;
    while (len && (body[len - 1] == '\n' || body[len - 1] == '\r' ||
                   body[len - 1] == ' ' || body[len - 1] == '\t'))
        len--;
    size_t start = len;
    while (start && body[start - 1] != '\n')
        start--;
    if (len > start) {
        snprintf(out, cap, "; the server said: %.*s", (int)(len - start),
                 body + start);
        mime_one_line(out);
    }
}

static void verdict(hlc_outcome *out, int v, int code, const char *text,
                    const char *said, const char *advice)
{
    out->verdict = (uint32_t)v;
    out->retry_after_ms = -1;
    snprintf(out->reason, sizeof out->reason, "SMTP %d%s: %s%s%s", code,
             stage(text), reply_meaning(code), said, advice);
}

static void transport(const hlc_api *a, const hlc_response *resp,
                      hlc_outcome *out)
{
    const char *text = a->response_error_text(resp);
    a->classify_default(resp, out);
    if (a->response_error(resp) != HLC_NET_TLS || !text)
        return;
    if (strstr(text, "STARTTLS not supported"))
        snprintf(out->reason, sizeof out->reason,
                 "tls: the server does not offer STARTTLS (%s); use "
                 "smtps:// or a server with STARTTLS, or set starttls: "
                 "false to send in clear text",
                 text);
    else if (strstr(text, "certificate"))
        snprintf(out->reason, sizeof out->reason,
                 "tls: %s; when the server's certificate comes from a "
                 "private CA, give it as tls.ca_file",
                 text);
}

static void classify(void *state, const hlc_json *event, const hlc_delivery *d,
                     const hlc_response *resp, hlc_outcome *out)
{
    email *m = state;
    const hlc_api *a = m->api;
    (void)event;
    (void)d;
    int code = a->response_status(resp);
    const char *text = a->response_error_text(resp);
    char said[160];
    server_said(a, resp, said, sizeof said);
    if (a->response_error(resp) != HLC_NET_NONE)
        transport(a, resp, out);
    else if (code >= 200 && code < 300)
        verdict(out, HLC_DELIVERED, code, NULL, "", "");
    else if (code == 530 || code == 534 || code == 535 || code == 538)
        verdict(out, HLC_FAILED, code, text, said,
                "; check username and password, and that the account may "
                "send mail");
    else if (code >= 400 && code < 500)
        verdict(out, HLC_RETRY, code, text, said, "");
    else if (code >= 500 && code < 600)
        verdict(out, HLC_FAILED, code, text, said, "");
    else
        a->classify_default(resp, out);
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "email",
    .version = "1.0.0",
    .description = "sends each event as an e-mail over SMTP (STARTTLS or "
                   "smtps, AUTH): a multipart text and HTML message from "
                   "Mustache templates; a retry resends the same Message-ID",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
