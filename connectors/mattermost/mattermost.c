/* mattermost.c - the mattermost connector: a canonical event as a message attachment to a Mattermost incoming webhook. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

/* Mattermost splits a message longer than its post size (16383 characters
 * by default) into several posts; a message is kept to one. */
#define POST_MAX 16383
#define FIELD_MAX 1000          /* one field's value: a label, not a document */
#define TITLE_MAX 1000          /* an attachment's title is one line */
#define ELLIPSIS "\xe2\x80\xa6" /* U+2026, one character */

static const hlc_key keys[] = {
    {"url", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "the incoming webhook URL (https://chat.example.com/hooks/ID); anyone "
     "who has it can post, so write it as ${MATTERMOST_WEBHOOK_URL} or "
     "${file:PATH}"},
    {"channel", HLC_KEY_STRING, 0, NULL, NULL,
     "post to this channel (its name, e.g. town-square, or @user for a "
     "direct message) instead of the webhook's own; a webhook locked to its "
     "channel refuses it"},
    {"username", HLC_KEY_STRING, 0, NULL, NULL,
     "the sender's name shown on the message (the server must allow "
     "integrations to override usernames)"},
    {"icon_url", HLC_KEY_STRING, 0, NULL, NULL,
     "the sender's picture, an http(s) URL (the server must allow "
     "integrations to override profile picture icons)"},
    {"type", HLC_KEY_STRING, 0, NULL, NULL,
     "a custom post type for a plugin that renders it; it must start with "
     "custom_"},
    {"style", HLC_KEY_STRING, 0, "attachment", "attachment|text",
     "attachment: a message attachment with a colour bar by severity, the "
     "title linked to data.url, the text and fields; text: one Markdown "
     "message, for clients that do not show attachments"},
    {"title", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template over the canonical event for the title, e.g. "
     "'[{{data.labels.env}}] {{data.title}}'; default: data.title ('Resolved: "
     "' is put before it for a resolved event). Rendered without escaping "
     "and put in the body as a JSON string by the JSON library, so quotes "
     "and line breaks in values cannot break the body; empty output falls "
     "back to the default"},
    {"text", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template for the text (Markdown), cut to 16383 characters; "
     "default: data.text. Rendered without escaping and JSON-escaped by the "
     "JSON library; empty output falls back to the default"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const char *url, *channel, *username, *icon_url, *type;
    int text_style;
    hlc_template *title, *text;
} mattermost;

/* ---- text ---------------------------------------------------------------- */

typedef struct {
    const hlc_api *a;
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
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

static void sb_add(sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* The text built (allocated; "" when nothing was added), or NULL when out
 * of memory. */
static char *sb_take(sbuf *b)
{
    if (!b->failed && !b->s)
        sb_addn(b, "", 0);
    if (b->failed) {
        b->a->free(b->s);
        return NULL;
    }
    return b->s;
}

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int utf8_valid(const char *s)
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

/* Line breaks and tabs as spaces, in place: a title is one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

/* ---- the event ----------------------------------------------------------- */

/* A non-empty string of the event, or NULL. */
static const char *ev_str(const hlc_api *a, const hlc_json *ev, const char *ptr)
{
    const char *s = a->json_string(a->json_pointer(ev, ptr));
    return s && *s ? s : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* data.status resolved or closed, or a type that ends so. */
static int is_resolved(const hlc_api *a, const hlc_json *ev)
{
    const char *st = ev_str(a, ev, "/data/status");
    const char *ty = ev_str(a, ev, "/type");
    if (st && (!strcmp(st, "resolved") || !strcmp(st, "closed")))
        return 1;
    return ty && (ends_with(ty, ".resolved") || ends_with(ty, ".closed"));
}

static const char *const severities[] = {"critical", "error", "warning",
                                         "info"};
static const char *const colors[] = {"#D0021B", "#F57C00", "#F2C744",
                                     "#2F80ED"};
static const char *const emojis[] = {
    ":red_circle:", ":large_orange_circle:", ":large_yellow_circle:",
    ":large_blue_circle:"};
#define RESOLVED_COLOR "#2EB67D"
#define RESOLVED_EMOJI ":white_check_mark:"

static size_t severity_of(const hlc_api *a, const hlc_json *ev)
{
    const char *s = ev_str(a, ev, "/severity");
    for (size_t i = 0; s && i < 4; i++)
        if (!strcmp(s, severities[i]))
            return i;
    return 3;
}

static const char *title_of(const hlc_api *a, const hlc_json *ev)
{
    const char *t = ev_str(a, ev, "/data/title");
    if (!t)
        t = ev_str(a, ev, "/type");
    return t ? t : "(no title)";
}

static int link_ok(const char *url)
{
    return url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7));
}

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    mattermost *m = state;
    if (!m)
        return;
    if (m->title)
        m->api->template_free(m->title);
    if (m->text)
        m->api->template_free(m->text);
    m->api->free(m);
}

static int compile(mattermost *m, const hlc_config *cfg, const char *key,
                   hlc_template **out, char *err, size_t errlen)
{
    const char *src = m->api->config_string(cfg, key);
    if (!src)
        return 0;
    char why[256] = "";
    if (!(*out = m->api->template_compile(src, why, sizeof why))) {
        snprintf(err, errlen, "%s: the Mustache template does not compile: %s",
                 key, why);
        return -1;
    }
    return 0;
}

static int has_blank(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ')
            return 1;
    return 0;
}

static int check_keys(mattermost *m, char *err, size_t errlen)
{
    if (!m->url) {
        snprintf(err, errlen, "url: give the Mattermost incoming webhook URL");
        return -1;
    }
    if (!link_ok(m->url)) {
        snprintf(err, errlen,
                 "url: expected the https:// URL of a "
                 "Mattermost incoming webhook (…/hooks/ID)");
        return -1;
    }
    if (m->channel && (!*m->channel || has_blank(m->channel) ||
                       !strcmp(m->channel, "@") || !strcmp(m->channel, "#"))) {
        snprintf(err, errlen,
                 "channel: expected a channel name such as "
                 "town-square, or @user, without blanks");
        return -1;
    }
    if (m->username && (!*m->username || strlen(m->username) > 64 ||
                        strpbrk(m->username, "\r\n"))) {
        snprintf(err, errlen,
                 "username: expected one line of at most 64 "
                 "characters");
        return -1;
    }
    if (m->icon_url && (!link_ok(m->icon_url) || has_blank(m->icon_url))) {
        snprintf(err, errlen,
                 "icon_url: expected an http:// or https:// URL "
                 "of an image");
        return -1;
    }
    if (m->type &&
        (strncmp(m->type, "custom_", 7) || !m->type[7] || has_blank(m->type))) {
        snprintf(err, errlen,
                 "type: '%s' does not start with custom_; "
                 "Mattermost accepts only custom_ post types "
                 "from a webhook",
                 m->type);
        return -1;
    }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    (void)inst;
    mattermost *m = api->alloc(sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->api = api;
    m->url = api->config_string(cfg, "url");
    m->channel = api->config_string(cfg, "channel");
    m->username = api->config_string(cfg, "username");
    m->icon_url = api->config_string(cfg, "icon_url");
    m->type = api->config_string(cfg, "type");
    const char *style = api->config_string(cfg, "style");
    m->text_style = style && !strcmp(style, "text");
    if (check_keys(m, err, errlen) ||
        compile(m, cfg, "title", &m->title, err, errlen) ||
        compile(m, cfg, "text", &m->text, err, errlen)) {
        destroy(m);
        return -1;
    }
    *state = m;
    return 0;
}

/* ---- rendering ----------------------------------------------------------- */

/* Builds JSON and remembers the first failure, so a message is built
 * straight through and checked once. */
typedef struct {
    const hlc_api *a;
    int failed;
} jb;

/* Sets obj[key] = v (taken, also on failure); v, or NULL on failure. */
static hlc_json *put(jb *b, hlc_json *obj, const char *key, hlc_json *v)
{
    if (b->a->json_set(obj, key, v)) {
        b->failed = 1;
        return NULL;
    }
    return v;
}

static hlc_json *push(jb *b, hlc_json *arr, hlc_json *v)
{
    if (b->a->json_append(arr, v)) {
        b->failed = 1;
        return NULL;
    }
    return v;
}

static void put_str(jb *b, hlc_json *obj, const char *key, const char *s)
{
    if (!s)
        b->failed = 1;
    else
        put(b, obj, key, b->a->json_new_string(s));
}

/* Render an override; *out NULL when there is none or it came out empty. */
static int override(mattermost *m, const hlc_template *t, const hlc_json *ev,
                    const char *key, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!t)
        return 0;
    char why[256] = "";
    char *r =
        m->api->template_render(t, ev, HLC_ESC_NONE, NULL, why, sizeof why);
    if (!r) {
        snprintf(err, errlen, "%s: the template failed: %s", key, why);
        return -1;
    }
    if (!utf8_valid(r)) {
        snprintf(err, errlen, "%s: the template made text that is not UTF-8",
                 key);
        m->api->free(r);
        return -1;
    }
    if (!r[strspn(r, " \t\r\n")])
        m->api->free(r);
    else
        *out = r;
    return 0;
}

/* What a message says, before it is shaped as an attachment or text. */
typedef struct {
    char *title_override, *text_override;
    char *title;      /* one line, "Resolved: " before it when resolved */
    const char *text; /* the override, or data.text; NULL: none */
    const char *url;  /* data.url when it is a link */
    size_t severity;
    int resolved;
} content;

static int gather(mattermost *m, const hlc_json *ev, content *c, char *err,
                  size_t errlen)
{
    const hlc_api *a = m->api;
    if (override(m, m->title, ev, "title", &c->title_override, err, errlen) ||
        override(m, m->text, ev, "text", &c->text_override, err, errlen))
        return HLC_RENDER_FAILED;
    c->severity = severity_of(a, ev);
    c->resolved = is_resolved(a, ev);
    sbuf t = {.a = a};
    if (c->resolved)
        sb_add(&t, "Resolved: ");
    sb_add(&t, c->title_override ? c->title_override : title_of(a, ev));
    char *whole = sb_take(&t);
    c->title = whole ? a->text_truncate(whole, TITLE_MAX, ELLIPSIS) : NULL;
    a->free(whole);
    if (!c->title) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    one_line(c->title);
    c->text = c->text_override ? c->text_override : ev_str(a, ev, "/data/text");
    c->url = ev_str(a, ev, "/data/url");
    if (!link_ok(c->url))
        c->url = NULL;
    return HLC_RENDER_OK;
}

static void gather_free(const hlc_api *a, content *c)
{
    a->free(c->title_override);
    a->free(c->text_override);
    a->free(c->title);
}

/* "alert.firing · <time> · event <id>" */
static char *footer(const hlc_api *a, const hlc_json *ev)
{
    sbuf b = {.a = a};
    const char *parts[3] = {ev_str(a, ev, "/type"), ev_str(a, ev, "/time"),
                            ev_str(a, ev, "/id")};
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        if (b.len)
            sb_add(&b, " \xc2\xb7 ");
        if (i == 2)
            sb_add(&b, "event ");
        sb_add(&b, parts[i]);
    }
    return sb_take(&b);
}

static void add_field(jb *b, hlc_json *fields, const char *title,
                      const char *value)
{
    const hlc_api *a = b->a;
    hlc_json *f = a->json_object();
    char *v = a->text_truncate(value, FIELD_MAX, ELLIPSIS);
    put_str(b, f, "title", title);
    put_str(b, f, "value", v);
    put(b, f, "short", a->json_new_bool(1));
    push(b, fields, f);
    a->free(v);
}

static hlc_json *fields_of(jb *b, const hlc_json *ev, const content *c)
{
    const hlc_api *a = b->a;
    hlc_json *fields = a->json_array();
    add_field(b, fields, "Severity", severities[c->severity]);
    const char *src = ev_str(a, ev, "/source");
    const char *status = ev_str(a, ev, "/data/status");
    if (src)
        add_field(b, fields, "Source", src);
    if (status)
        add_field(b, fields, "Status", status);
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    for (size_t i = 0, n = a->json_size(labels); i < n; i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(labels, i, &v);
        if (k && a->json_string(v))
            add_field(b, fields, k, a->json_string(v));
    }
    return fields;
}

static hlc_json *attachment(jb *b, const hlc_json *ev, const content *c)
{
    const hlc_api *a = b->a;
    hlc_json *att = a->json_object();
    sbuf fb = {.a = a};
    sb_add(&fb, "[");
    sb_add(&fb, c->resolved ? "resolved" : severities[c->severity]);
    sb_add(&fb, "] ");
    sb_add(&fb, c->title);
    char *fallback = sb_take(&fb);
    put_str(b, att, "fallback", fallback);
    a->free(fallback);
    put_str(b, att, "color",
            c->resolved ? RESOLVED_COLOR : colors[c->severity]);
    put_str(b, att, "title", c->title);
    if (c->url)
        put_str(b, att, "title_link", c->url);
    if (c->text) {
        char *t = a->text_truncate(c->text, POST_MAX, ELLIPSIS);
        put_str(b, att, "text", t);
        a->free(t);
    }
    put(b, att, "fields", fields_of(b, ev, c));
    char *foot = footer(a, ev);
    put_str(b, att, "footer", foot);
    a->free(foot);
    return att;
}

/* One Markdown message: heading, text, facts, link, footer. The text is
 * cut so that the whole stays one post. */
static char *markdown(const hlc_api *a, const hlc_json *ev, const content *c)
{
    sbuf head = {.a = a}, tail = {.a = a};
    sb_add(&head, "#### ");
    sb_add(&head, c->resolved ? RESOLVED_EMOJI : emojis[c->severity]);
    sb_add(&head, " ");
    sb_add(&head, c->title);
    sb_add(&head, "\n");
    sb_add(&tail, "\n**Severity:** ");
    sb_add(&tail, severities[c->severity]);
    const char *src = ev_str(a, ev, "/source");
    const char *status = ev_str(a, ev, "/data/status");
    if (src) {
        sb_add(&tail, " \xc2\xb7 **Source:** ");
        sb_add(&tail, src);
    }
    if (status) {
        sb_add(&tail, " \xc2\xb7 **Status:** ");
        sb_add(&tail, status);
    }
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    for (size_t i = 0, n = a->json_size(labels), k = 0; i < n; i++) {
        const hlc_json *v;
        const char *name = a->json_key_at(labels, i, &v);
        if (!name || !a->json_string(v))
            continue;
        sb_add(&tail, k++ ? ", " : "\n**Labels:** ");
        sb_add(&tail, name);
        sb_add(&tail, "=");
        sb_add(&tail, a->json_string(v));
    }
    if (c->url) {
        sb_add(&tail, "\n[Open](");
        sb_add(&tail, c->url);
        sb_add(&tail, ")");
    }
    char *foot = footer(a, ev);
    if (foot && *foot) {
        sb_add(&tail, "\n_");
        sb_add(&tail, foot);
        sb_add(&tail, "_");
    }
    a->free(foot);
    char *h = sb_take(&head), *t = sb_take(&tail), *out = NULL;
    if (h && t) {
        size_t used = chars(h) + chars(t) + 1;
        sbuf all = {.a = a};
        sb_add(&all, h);
        if (c->text && used < POST_MAX) {
            char *cut = a->text_truncate(c->text, POST_MAX - used, ELLIPSIS);
            if (cut)
                sb_add(&all, cut);
            else
                all.failed = 1;
            a->free(cut);
            sb_add(&all, "\n");
        }
        sb_add(&all, t);
        char *whole = sb_take(&all);
        out = whole ? a->text_truncate(whole, POST_MAX, ELLIPSIS) : NULL;
        a->free(whole);
    }
    a->free(h);
    a->free(t);
    return out;
}

static hlc_json *message(mattermost *m, const hlc_json *ev, const content *c,
                         jb *b)
{
    const hlc_api *a = m->api;
    hlc_json *msg = a->json_object();
    if (m->channel)
        put_str(b, msg, "channel", m->channel);
    if (m->username)
        put_str(b, msg, "username", m->username);
    if (m->icon_url)
        put_str(b, msg, "icon_url", m->icon_url);
    if (m->type)
        put_str(b, msg, "type", m->type);
    if (m->text_style) {
        char *text = markdown(a, ev, c);
        put_str(b, msg, "text", text);
        a->free(text);
    } else {
        hlc_json *atts = a->json_array();
        push(b, atts, attachment(b, ev, c));
        put(b, msg, "attachments", atts);
    }
    return msg;
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)d;
    mattermost *m = state;
    const hlc_api *a = m->api;
    content c = {0};
    jb b = {.a = a};
    hlc_json *msg = NULL;
    char *body = NULL;
    size_t len = 0;
    int rc = gather(m, ev, &c, err, errlen);
    if (rc != HLC_RENDER_OK)
        goto out;
    msg = message(m, ev, &c, &b);
    rc = HLC_RENDER_RETRY;
    if (!msg || b.failed || !(body = a->json_dump(msg, &len))) {
        snprintf(err, errlen, "out of memory building the message");
        goto out;
    }
    if (a->request_http(req, "POST", m->url) ||
        a->request_header(req, "Content-Type", "application/json") ||
        a->request_body(req, body, len)) {
        snprintf(err, errlen, "out of memory building the request");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->json_free(msg);
    a->free(body);
    gather_free(a, &c);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* Mattermost's answers to a webhook it refuses are JSON app errors
 * ({"id": "web.incoming_webhook....", "message": ...}); these ids say more
 * than the status. */
static const struct {
    const char *id;
    uint32_t verdict;
    const char *hint;
} mm_errors[] = {
    {"web.incoming_webhook.invalid.app_error", HLC_DISABLE,
     "no such webhook (deleted?); set url to a new one, then resume the "
     "connector"},
    {"web.incoming_webhook.disabled.app_error", HLC_DISABLE,
     "incoming webhooks are turned off on the server; resume the connector "
     "once an admin turns them on"},
    {"web.incoming_webhook.channel_locked.app_error", HLC_FAILED,
     "the webhook is locked to its channel; remove the channel key"},
    {"web.incoming_webhook.channel.app_error", HLC_FAILED,
     "no such channel; fix the channel key"},
    {"web.incoming_webhook.user.app_error", HLC_FAILED,
     "no such user for the channel key, or the webhook's owner is gone"},
    {"web.incoming_webhook.permissions.app_error", HLC_FAILED,
     "the webhook's owner may not post in that channel"},
};

/* The start of the body as one printable line. */
static void body_line(const char *body, size_t len, char *out, size_t cap)
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
    size_t k = n; /* do not end inside a UTF-8 sequence */
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

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    (void)d;
    mattermost *m = state;
    const hlc_api *a = m->api;
    a->classify_default(r, out);
    if (a->response_error(r) != HLC_NET_NONE)
        return;
    int status = a->response_status(r);
    size_t len = 0;
    const char *body = a->response_body(r, &len);
    char line[120];
    body_line(body, len, line, sizeof line);
    if (status >= 200 && status < 300) {
        snprintf(out->reason, sizeof out->reason, "%d%s%s", status,
                 *line ? " " : "", line);
        return;
    }
    hlc_json *j = a->json_parse(body, len);
    const char *id = a->json_string(a->json_get(j, "id"));
    const char *msg = a->json_string(a->json_get(j, "message"));
    if (!id || !msg) {
        if (*line)
            snprintf(out->reason, sizeof out->reason, "HTTP %d: %s", status,
                     line);
        a->json_free(j);
        return;
    }
    const char *hint = NULL;
    for (size_t i = 0; i < sizeof mm_errors / sizeof *mm_errors; i++)
        if (!strcmp(id, mm_errors[i].id)) {
            out->verdict = mm_errors[i].verdict;
            out->retry_after_ms = -1;
            hint = mm_errors[i].hint;
        }
    snprintf(out->reason, sizeof out->reason, "HTTP %d: %.80s (%.60s)%s%s",
             status, msg, id, hint ? "; " : "", hint ? hint : "");
    a->json_free(j);
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "mattermost",
    .version = "1.0.0",
    .description = "posts each event to a Mattermost incoming webhook as a "
                   "message attachment (colour by severity, title linked to "
                   "data.url, text, fields for severity, source and labels) "
                   "or as one Markdown message",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
