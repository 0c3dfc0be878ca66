/* mattermost.c - the mattermost connector: a canonical event as a message attachment to a Mattermost incoming webhook. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

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

/* ---- the event ----------------------------------------------------------- */

/* The colour and emoji of each of hlcu_severities. */
static const char *const colors[HLCU_SEVERITIES] = {"#D0021B", "#F57C00",
                                                    "#F2C744", "#2F80ED"};
static const char *const emojis[HLCU_SEVERITIES] = {
    ":red_circle:", ":large_orange_circle:", ":large_yellow_circle:",
    ":large_blue_circle:"};
#define RESOLVED_COLOR "#2EB67D"
#define RESOLVED_EMOJI ":white_check_mark:"

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
    if (!hlcu_link_ok(m->url)) {
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
    if (m->icon_url && (!hlcu_link_ok(m->icon_url) || has_blank(m->icon_url))) {
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
        hlcu_compile(api, cfg, "title", &m->title, err, errlen) ||
        hlcu_compile(api, cfg, "text", &m->text, err, errlen)) {
        destroy(m);
        return -1;
    }
    *state = m;
    return 0;
}

/* ---- rendering ----------------------------------------------------------- */

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
    if (hlcu_render_override(m->api, m->title, ev, "title", &c->title_override,
                             err, errlen) ||
        hlcu_render_override(m->api, m->text, ev, "text", &c->text_override,
                             err, errlen))
        return HLC_RENDER_FAILED;
    c->severity = hlcu_severity_of(a, ev);
    c->resolved = hlcu_is_resolved(a, ev);
    hlcu_sbuf t = {.a = a};
    if (c->resolved)
        hlcu_sb_add(&t, "Resolved: ");
    hlcu_sb_add(&t,
                c->title_override ? c->title_override : hlcu_title_of(a, ev));
    char *whole = hlcu_sb_take(&t);
    c->title = whole ? a->text_truncate(whole, TITLE_MAX, ELLIPSIS) : NULL;
    a->free(whole);
    if (!c->title) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    hlcu_one_line(c->title);
    c->text =
        c->text_override ? c->text_override : hlcu_ev_str(a, ev, "/data/text");
    c->url = hlcu_ev_str(a, ev, "/data/url");
    if (!hlcu_link_ok(c->url))
        c->url = NULL;
    return HLC_RENDER_OK;
}

static void gather_free(const hlc_api *a, content *c)
{
    a->free(c->title_override);
    a->free(c->text_override);
    a->free(c->title);
}

static void add_field(hlcu_jb *b, hlc_json *fields, const char *title,
                      const char *value)
{
    const hlc_api *a = b->a;
    hlc_json *f = a->json_object();
    char *v = a->text_truncate(value, FIELD_MAX, ELLIPSIS);
    hlcu_put_str(b, f, "title", title);
    hlcu_put_str(b, f, "value", v);
    hlcu_put(b, f, "short", a->json_new_bool(1));
    hlcu_push(b, fields, f);
    a->free(v);
}

static hlc_json *fields_of(hlcu_jb *b, const hlc_json *ev, const content *c)
{
    const hlc_api *a = b->a;
    hlc_json *fields = a->json_array();
    add_field(b, fields, "Severity", hlcu_severities[c->severity]);
    const char *src = hlcu_ev_str(a, ev, "/source");
    const char *status = hlcu_ev_str(a, ev, "/data/status");
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

static hlc_json *attachment(hlcu_jb *b, const hlc_json *ev, const content *c)
{
    const hlc_api *a = b->a;
    hlc_json *att = a->json_object();
    hlcu_sbuf fb = {.a = a};
    hlcu_sb_add(&fb, "[");
    hlcu_sb_add(&fb, c->resolved ? "resolved" : hlcu_severities[c->severity]);
    hlcu_sb_add(&fb, "] ");
    hlcu_sb_add(&fb, c->title);
    char *fallback = hlcu_sb_take(&fb);
    hlcu_put_str(b, att, "fallback", fallback);
    a->free(fallback);
    hlcu_put_str(b, att, "color",
                 c->resolved ? RESOLVED_COLOR : colors[c->severity]);
    hlcu_put_str(b, att, "title", c->title);
    if (c->url)
        hlcu_put_str(b, att, "title_link", c->url);
    if (c->text) {
        char *t = a->text_truncate(c->text, POST_MAX, ELLIPSIS);
        hlcu_put_str(b, att, "text", t);
        a->free(t);
    }
    hlcu_put(b, att, "fields", fields_of(b, ev, c));
    char *foot = hlcu_context_line(a, ev);
    hlcu_put_str(b, att, "footer", foot);
    a->free(foot);
    return att;
}

/* One Markdown message: heading, text, facts, link, footer. The text is
 * cut so that the whole stays one post. */
static char *markdown(const hlc_api *a, const hlc_json *ev, const content *c)
{
    hlcu_sbuf head = {.a = a}, tail = {.a = a};
    hlcu_sb_add(&head, "#### ");
    hlcu_sb_add(&head, c->resolved ? RESOLVED_EMOJI : emojis[c->severity]);
    hlcu_sb_add(&head, " ");
    hlcu_sb_add(&head, c->title);
    hlcu_sb_add(&head, "\n");
    hlcu_sb_add(&tail, "\n**Severity:** ");
    hlcu_sb_add(&tail, hlcu_severities[c->severity]);
    const char *src = hlcu_ev_str(a, ev, "/source");
    const char *status = hlcu_ev_str(a, ev, "/data/status");
    if (src) {
        hlcu_sb_add(&tail, " \xc2\xb7 **Source:** ");
        hlcu_sb_add(&tail, src);
    }
    if (status) {
        hlcu_sb_add(&tail, " \xc2\xb7 **Status:** ");
        hlcu_sb_add(&tail, status);
    }
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    for (size_t i = 0, n = a->json_size(labels), k = 0; i < n; i++) {
        const hlc_json *v;
        const char *name = a->json_key_at(labels, i, &v);
        if (!name || !a->json_string(v))
            continue;
        hlcu_sb_add(&tail, k++ ? ", " : "\n**Labels:** ");
        hlcu_sb_add(&tail, name);
        hlcu_sb_add(&tail, "=");
        hlcu_sb_add(&tail, a->json_string(v));
    }
    if (c->url) {
        hlcu_sb_add(&tail, "\n[Open](");
        hlcu_sb_add(&tail, c->url);
        hlcu_sb_add(&tail, ")");
    }
    char *foot = hlcu_context_line(a, ev);
    if (foot && *foot) {
        hlcu_sb_add(&tail, "\n_");
        hlcu_sb_add(&tail, foot);
        hlcu_sb_add(&tail, "_");
    }
    a->free(foot);
    char *h = hlcu_sb_take(&head), *t = hlcu_sb_take(&tail), *out = NULL;
    if (h && t) {
        size_t used = hlcu_chars(h) + hlcu_chars(t) + 1;
        hlcu_sbuf all = {.a = a};
        hlcu_sb_add(&all, h);
        if (c->text && used < POST_MAX) {
            char *cut = a->text_truncate(c->text, POST_MAX - used, ELLIPSIS);
            if (cut)
                hlcu_sb_add(&all, cut);
            else
                all.failed = 1;
            a->free(cut);
            hlcu_sb_add(&all, "\n");
        }
        hlcu_sb_add(&all, t);
        char *whole = hlcu_sb_take(&all);
        out = whole ? a->text_truncate(whole, POST_MAX, ELLIPSIS) : NULL;
        a->free(whole);
    }
    a->free(h);
    a->free(t);
    return out;
}

static hlc_json *message(mattermost *m, const hlc_json *ev, const content *c,
                         hlcu_jb *b)
{
    const hlc_api *a = m->api;
    hlc_json *msg = a->json_object();
    if (m->channel)
        hlcu_put_str(b, msg, "channel", m->channel);
    if (m->username)
        hlcu_put_str(b, msg, "username", m->username);
    if (m->icon_url)
        hlcu_put_str(b, msg, "icon_url", m->icon_url);
    if (m->type)
        hlcu_put_str(b, msg, "type", m->type);
    if (m->text_style) {
        char *text = markdown(a, ev, c);
        hlcu_put_str(b, msg, "text", text);
        a->free(text);
    } else {
        hlc_json *atts = a->json_array();
        hlcu_push(b, atts, attachment(b, ev, c));
        hlcu_put(b, msg, "attachments", atts);
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
    hlcu_jb b = {.a = a};
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
    rc = hlcu_request_json(a, req, m->url, body, len, err, errlen);
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
    hlcu_body_line(body, len, line, sizeof line);
    if (status >= 200 && status < 300) {
        snprintf(out->reason, sizeof out->reason, "HTTP %d%s%s", status,
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
