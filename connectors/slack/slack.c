/* slack.c - the slack connector: a canonical event as a Block Kit message to a Slack incoming webhook. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

/* Slack's published limits (api.slack.com/reference/block-kit). */
#define TEXT_MAX 40000          /* the top-level text: Slack cuts longer ones */
#define BLOCKS_MAX 50           /* blocks in one message */
#define HEADER_MAX 150          /* a header block's plain text */
#define SECTION_MAX 3000        /* a section block's text */
#define FIELDS_MAX 10           /* fields of one section */
#define FIELD_MAX 2000          /* one field's text */
#define URL_MAX 3000            /* a button's url */
#define ELLIPSIS "\xe2\x80\xa6" /* U+2026, one character */

static const hlc_key keys[] = {
    {"url", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "the incoming webhook URL Slack gave "
     "(https://hooks.slack.com/services/T.../B.../...); it is a credential: "
     "write it as ${SLACK_WEBHOOK_URL} or ${file:PATH}"},
    {"channel", HLC_KEY_STRING, 0, NULL, NULL,
     "post to this channel (#name, or an id such as C024BE91L) instead of "
     "the webhook's own; only legacy webhooks honour it, an app's webhook "
     "always posts to the channel it was made for"},
    {"username", HLC_KEY_STRING, 0, NULL, NULL,
     "the sender's name shown on the message (legacy webhooks only)"},
    {"icon_emoji", HLC_KEY_STRING, 0, NULL, NULL,
     "the sender's picture as an emoji code such as :rotating_light: "
     "(legacy webhooks only)"},
    {"title", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template over the canonical event for the title, e.g. "
     "'[{{data.labels.env}}] {{data.title}}'; default: data.title. It makes "
     "the notification text and the header (after the severity emoji). "
     "Rendered without escaping and put in the body as a JSON string by the "
     "JSON library, so quotes and line breaks in values cannot break the "
     "body; empty output falls back to the default"},
    {"header", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template for the whole header block (plain text, cut to 150 "
     "characters with an ellipsis); default: the severity emoji, "
     "'Resolved: ' for a resolved event, and the title. Rendered without "
     "escaping and JSON-escaped by the JSON library"},
    {"text", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template for the message text in Slack mrkdwn, cut to 3000 "
     "characters; default: data.text. The template's own characters are "
     "used as written (*bold*, <{{data.url}}|links>); values from the event "
     "have &, < and > escaped, so a webhook cannot slip in <!channel>. "
     "Rendered without further escaping and JSON-escaped by the JSON "
     "library"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const char *url, *channel, *username, *icon_emoji;
    hlc_template *title, *header, *text;
} slack;

/* ---- text ---------------------------------------------------------------- */

/* Slack mrkdwn gives &, < and > a meaning (<!channel>, <url|label>): the
 * event's own text has them escaped. */
static void sb_add_escaped(hlcu_sbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        const char *run = p;
        while (*p && *p != '&' && *p != '<' && *p != '>')
            p++;
        hlcu_sb_addn(b, run, (size_t)(p - run));
        if (!*p)
            break;
        hlcu_sb_add(b, *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : "&gt;");
    }
}

static char *copy(const hlc_api *a, const char *s)
{
    hlcu_sbuf b = {.a = a};
    hlcu_sb_add(&b, s);
    return hlcu_sb_take(&b);
}

static char *escaped(const hlc_api *a, const char *s)
{
    hlcu_sbuf b = {.a = a};
    sb_add_escaped(&b, s);
    return hlcu_sb_take(&b);
}

/* s cut to max characters with an ellipsis (allocated). A cut does not
 * leave half an entity such as "&am" before the ellipsis. */
static char *fit(const hlc_api *a, const char *s, size_t max)
{
    char *t = a->text_truncate(s, max, ELLIPSIS);
    if (!t || !strcmp(t, s))
        return t;
    size_t n = strlen(t), el = strlen(ELLIPSIS);
    if (n < el)
        return t;
    char *end = t + n - el;
    for (char *q = end; q > t && end - q < 5;) {
        q--;
        if (*q == ';')
            break;
        if (*q == '&') {
            memmove(q, end, el + 1);
            break;
        }
    }
    return t;
}

/* The event's text escaped for mrkdwn and cut to max (allocated). */
static char *fit_escaped(const hlc_api *a, const char *s, size_t max)
{
    char *e = escaped(a, s);
    if (!e)
        return NULL;
    char *t = fit(a, e, max);
    a->free(e);
    return t;
}

/* ---- the event ----------------------------------------------------------- */

/* The emoji of each of hlcu_severities. */
static const char *const emojis[HLCU_SEVERITIES] = {
    ":red_circle:", ":large_orange_circle:", ":large_yellow_circle:",
    ":large_blue_circle:"};
#define RESOLVED_EMOJI ":white_check_mark:"

static int is_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (long long)era * 146097 + doe - 719468;
}

/* RFC 3339 time -> Unix seconds; 0, or -1 when it is not one. */
static int unix_time(const char *s, long long *out)
{
    if (strlen(s) < 20 || !is_digits(s, 4) || s[4] != '-' ||
        !is_digits(s + 5, 2) || s[7] != '-' || !is_digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !is_digits(s + 11, 2) || s[13] != ':' || !is_digits(s + 14, 2) ||
        s[16] != ':' || !is_digits(s + 17, 2))
        return -1;
    int mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2),
        mi = num(s + 14, 2), se = num(s + 17, 2);
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    const char *p = s + 19;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && is_digits(p + 1, 2) && p[3] == ':' &&
               is_digits(p + 4, 2)) {
        off = (num(p + 1, 2) * 60 + num(p + 4, 2)) * 60LL;
        if (*p == '-')
            off = -off;
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *out = days_from_civil(num(s, 4), mo, d) * 86400 + h * 3600 + mi * 60 + se -
           off;
    return 0;
}

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    slack *s = state;
    if (!s)
        return;
    if (s->title)
        s->api->template_free(s->title);
    if (s->header)
        s->api->template_free(s->header);
    if (s->text)
        s->api->template_free(s->text);
    s->api->free(s);
}

/* A value with no blank, no control character, at most max bytes. */
static int plain_word(const char *v, size_t max)
{
    if (!*v || strlen(v) > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ')
            return 0;
    return 1;
}

static int check_keys(slack *s, char *err, size_t errlen)
{
    if (!s->url) {
        snprintf(err, errlen, "url: give the Slack incoming webhook URL");
        return -1;
    }
    if (strncmp(s->url, "https://", 8) && strncmp(s->url, "http://", 7)) {
        snprintf(err, errlen,
                 "url: expected the https:// URL of a Slack "
                 "incoming webhook");
        return -1;
    }
    if (s->channel && (!plain_word(s->channel, 80) ||
                       (s->channel[0] == '#' && !s->channel[1]))) {
        snprintf(err, errlen,
                 "channel: expected #name or a channel id such "
                 "as C024BE91L, without blanks");
        return -1;
    }
    if (s->username && (!*s->username || strlen(s->username) > 80 ||
                        strpbrk(s->username, "\r\n"))) {
        snprintf(err, errlen,
                 "username: expected one line of at most 80 "
                 "characters");
        return -1;
    }
    if (s->icon_emoji) {
        size_t n = strlen(s->icon_emoji);
        if (n < 3 || s->icon_emoji[0] != ':' || s->icon_emoji[n - 1] != ':' ||
            !plain_word(s->icon_emoji, 100) ||
            strchr(s->icon_emoji + 1, ':') != s->icon_emoji + n - 1) {
            snprintf(err, errlen,
                     "icon_emoji: expected an emoji code such as "
                     ":rotating_light:");
            return -1;
        }
    }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    (void)inst;
    slack *s = api->alloc(sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->api = api;
    s->url = api->config_string(cfg, "url");
    s->channel = api->config_string(cfg, "channel");
    s->username = api->config_string(cfg, "username");
    s->icon_emoji = api->config_string(cfg, "icon_emoji");
    if (check_keys(s, err, errlen) ||
        hlcu_compile(api, cfg, "title", &s->title, err, errlen) ||
        hlcu_compile(api, cfg, "header", &s->header, err, errlen) ||
        hlcu_compile(api, cfg, "text", &s->text, err, errlen)) {
        destroy(s);
        return -1;
    }
    *state = s;
    return 0;
}

/* ---- rendering ----------------------------------------------------------- */

/* A text object {"type": type, "text": s}; s is taken. */
static hlc_json *text_obj(hlcu_jb *b, const char *type, char *s)
{
    hlc_json *o = b->a->json_object();
    hlcu_put_str(b, o, "type", type);
    hlcu_put_str(b, o, "text", s);
    if (!strcmp(type, "plain_text"))
        hlcu_put(b, o, "emoji", b->a->json_new_bool(1));
    b->a->free(s);
    return o;
}

/* A copy of the event with every string escaped for mrkdwn: what the text
 * template is rendered against. */
static hlc_json *escaped_copy(hlcu_jb *b, const hlc_json *v)
{
    const hlc_api *a = b->a;
    switch (a->json_type(v)) {
    case HLC_JSON_OBJECT: {
        hlc_json *o = a->json_object();
        for (size_t i = 0, n = a->json_size(v); i < n; i++) {
            const hlc_json *item;
            const char *k = a->json_key_at(v, i, &item);
            hlcu_put(b, o, k, escaped_copy(b, item));
        }
        return o;
    }
    case HLC_JSON_ARRAY: {
        hlc_json *arr = a->json_array();
        for (size_t i = 0, n = a->json_size(v); i < n; i++)
            hlcu_push(b, arr, escaped_copy(b, a->json_at(v, i)));
        return arr;
    }
    case HLC_JSON_STRING: {
        char *e = escaped(a, a->json_string(v));
        hlc_json *s = e ? a->json_new_string(e) : NULL;
        a->free(e);
        return s;
    }
    default: return a->json_copy(v);
    }
}

typedef struct {
    char *title;  /* the title override */
    char *header; /* the header override */
    char *text;   /* the text override (mrkdwn) */
} overrides;

static int render_overrides(slack *s, const hlc_json *ev, overrides *o,
                            char *err, size_t errlen)
{
    if (hlcu_render_override(s->api, s->title, ev, "title", &o->title, err,
                             errlen) ||
        hlcu_render_override(s->api, s->header, ev, "header", &o->header, err,
                             errlen))
        return HLC_RENDER_FAILED;
    if (!s->text)
        return HLC_RENDER_OK;
    hlcu_jb b = {.a = s->api};
    hlc_json *ctx = escaped_copy(&b, ev);
    int rc = HLC_RENDER_RETRY;
    if (ctx && !b.failed)
        rc = hlcu_render_override(s->api, s->text, ctx, "text", &o->text, err,
                                  errlen)
                 ? HLC_RENDER_FAILED
                 : HLC_RENDER_OK;
    else
        snprintf(err, errlen, "out of memory");
    s->api->json_free(ctx);
    return rc;
}

/* "<emoji> [Resolved: ]<title>" with the title as given (escaped when esc). */
static char *headline(const hlc_api *a, const hlc_json *ev, const char *title,
                      int esc)
{
    int resolved = hlcu_is_resolved(a, ev);
    hlcu_sbuf b = {.a = a};
    hlcu_sb_add(&b,
                resolved ? RESOLVED_EMOJI : emojis[hlcu_severity_of(a, ev)]);
    hlcu_sb_add(&b, resolved ? " Resolved: " : " ");
    if (esc)
        sb_add_escaped(&b, title);
    else
        hlcu_sb_add(&b, title);
    return hlcu_sb_take(&b);
}

/* "*name*\nvalue", both escaped, cut to a field's limit. */
static char *field_text(const hlc_api *a, const char *name, const char *value)
{
    hlcu_sbuf b = {.a = a};
    hlcu_sb_add(&b, "*");
    sb_add_escaped(&b, name);
    hlcu_sb_add(&b, "*\n");
    sb_add_escaped(&b, value);
    char *s = hlcu_sb_take(&b);
    if (!s)
        return NULL;
    char *t = fit(a, s, FIELD_MAX);
    a->free(s);
    return t;
}

static void add_field(hlcu_jb *b, hlc_json *fields, const char *name,
                      const char *value)
{
    hlcu_push(b, fields, text_obj(b, "mrkdwn", field_text(b->a, name, value)));
}

/* Severity, source, status, then the labels; labels that do not fit in
 * a section's ten fields share the last one. */
static hlc_json *fields_block(hlcu_jb *b, const hlc_json *ev)
{
    const hlc_api *a = b->a;
    size_t sev = hlcu_severity_of(a, ev);
    hlc_json *block = a->json_object(), *fields = a->json_array();
    hlcu_put_str(b, block, "type", "section");
    char sevtext[64];
    snprintf(sevtext, sizeof sevtext, "%s %s", emojis[sev],
             hlcu_severities[sev]);
    add_field(b, fields, "Severity", sevtext);
    const char *src = hlcu_ev_str(a, ev, "/source");
    const char *status = hlcu_ev_str(a, ev, "/data/status");
    if (src)
        add_field(b, fields, "Source", src);
    if (status)
        add_field(b, fields, "Status", status);
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    size_t n = a->json_size(labels), count = 0;
    for (size_t i = 0; i < n; i++) {
        const hlc_json *v;
        count += a->json_key_at(labels, i, &v) && a->json_string(v);
    }
    size_t room = FIELDS_MAX - (src != NULL) - (status != NULL) - 1;
    size_t alone = count <= room ? count : room - 1, k = 0;
    hlcu_sbuf rest = {.a = a};
    for (size_t i = 0; i < n; i++) {
        const hlc_json *v;
        const char *name = a->json_key_at(labels, i, &v);
        const char *val = a->json_string(v);
        if (!name || !val)
            continue;
        if (k++ < alone) {
            add_field(b, fields, name, val);
            continue;
        }
        if (rest.len)
            hlcu_sb_add(&rest, ", ");
        hlcu_sb_add(&rest, name);
        hlcu_sb_add(&rest, "=");
        hlcu_sb_add(&rest, val);
    }
    if (count > alone) {
        char *all = hlcu_sb_take(&rest);
        if (all)
            add_field(b, fields, "Other labels", all);
        else
            b->failed = 1;
        a->free(all);
    }
    hlcu_put(b, block, "fields", fields);
    return block;
}

static hlc_json *context_block(hlcu_jb *b, const hlc_json *ev)
{
    const hlc_api *a = b->a;
    hlc_json *block = a->json_object(), *els = a->json_array();
    hlcu_put_str(b, block, "type", "context");
    const char *parts[3] = {hlcu_ev_str(a, ev, "/type"),
                            hlcu_ev_str(a, ev, "/time"),
                            hlcu_ev_str(a, ev, "/id")};
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        hlcu_sbuf t = {.a = a};
        long long at;
        if (i == 1 && !unix_time(parts[i], &at) && at >= 0) {
            /* Each reader sees the time in their own zone. */
            char head[64];
            snprintf(head, sizeof head,
                     "<!date^%lld^{date_short_pretty} "
                     "{time_secs}|",
                     at);
            hlcu_sb_add(&t, head);
            sb_add_escaped(&t, parts[i]);
            hlcu_sb_add(&t, ">");
        } else {
            hlcu_sb_add(&t, i == 2 ? "event " : "");
            sb_add_escaped(&t, parts[i]);
        }
        char *s = hlcu_sb_take(&t);
        char *cut = s ? fit(a, s, FIELD_MAX) : NULL;
        a->free(s);
        hlcu_push(b, els, text_obj(b, "mrkdwn", cut));
    }
    hlcu_put(b, block, "elements", els);
    return block;
}

/* An http(s) link short enough for a button. */
static int link_ok(const char *url)
{
    return hlcu_link_ok(url) && strlen(url) <= URL_MAX;
}

static hlc_json *actions_block(hlcu_jb *b, const char *url)
{
    const hlc_api *a = b->a;
    hlc_json *block = a->json_object(), *els = a->json_array();
    hlc_json *button = a->json_object();
    hlcu_put_str(b, block, "type", "actions");
    hlcu_put_str(b, button, "type", "button");
    hlcu_put(b, button, "text", text_obj(b, "plain_text", copy(a, "Open")));
    hlcu_put_str(b, button, "url", url);
    hlcu_put_str(b, button, "action_id", "hookline_open");
    hlcu_push(b, els, button);
    hlcu_put(b, block, "elements", els);
    return block;
}

/* Appends a block unless the message has Slack's most already. */
static void add_block(hlcu_jb *b, hlc_json *blocks, hlc_json *block)
{
    if (b->a->json_size(blocks) >= BLOCKS_MAX) {
        b->a->json_free(block);
        return;
    }
    hlcu_push(b, blocks, block);
}

/* The header block: the header override, or the headline; one line, cut
 * to Slack's 150 characters. */
static hlc_json *header_block(hlcu_jb *b, const hlc_json *ev,
                              const overrides *o, const char *title)
{
    const hlc_api *a = b->a;
    char *head = o->header ? NULL : headline(a, ev, title, 0);
    const char *h = o->header ? o->header : head;
    char *cut = h ? a->text_truncate(h, HEADER_MAX, ELLIPSIS) : NULL;
    if (cut)
        hlcu_one_line(cut);
    hlc_json *block = a->json_object();
    hlcu_put_str(b, block, "type", "header");
    hlcu_put(b, block, "text", text_obj(b, "plain_text", cut));
    a->free(head);
    return block;
}

/* The section with the text override or data.text; NULL when there is
 * neither (Slack refuses a blank section). */
static hlc_json *text_block(hlcu_jb *b, const hlc_json *ev, const overrides *o)
{
    const hlc_api *a = b->a;
    const char *body = hlcu_ev_str(a, ev, "/data/text");
    if (body && !body[strspn(body, " \t\r\n")])
        body = NULL;
    if (!o->text && !body)
        return NULL;
    char *text = o->text ? fit(a, o->text, SECTION_MAX)
                         : fit_escaped(a, body, SECTION_MAX);
    hlc_json *block = a->json_object();
    hlcu_put_str(b, block, "type", "section");
    hlcu_put(b, block, "text", text_obj(b, "mrkdwn", text));
    return block;
}

/* The whole message: the notification text, then header, fields, text,
 * context and a button to data.url. */
static hlc_json *message(slack *s, const hlc_json *ev, const overrides *o,
                         hlcu_jb *b)
{
    const hlc_api *a = s->api;
    const char *title = o->title ? o->title : hlcu_title_of(a, ev);
    hlc_json *msg = a->json_object(), *blocks = a->json_array();
    if (s->channel)
        hlcu_put_str(b, msg, "channel", s->channel);
    if (s->username)
        hlcu_put_str(b, msg, "username", s->username);
    if (s->icon_emoji)
        hlcu_put_str(b, msg, "icon_emoji", s->icon_emoji);
    char *fallback = headline(a, ev, title, 1);
    char *cut = fallback ? fit(a, fallback, TEXT_MAX) : NULL;
    hlcu_put_str(b, msg, "text", cut);
    a->free(fallback);
    a->free(cut);

    add_block(b, blocks, header_block(b, ev, o, title));
    add_block(b, blocks, fields_block(b, ev));
    hlc_json *text = text_block(b, ev, o);
    if (text)
        add_block(b, blocks, text);
    add_block(b, blocks, context_block(b, ev));
    const char *url = hlcu_ev_str(a, ev, "/data/url");
    if (link_ok(url))
        add_block(b, blocks, actions_block(b, url));
    hlcu_put(b, msg, "blocks", blocks);
    return msg;
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)d;
    slack *s = state;
    const hlc_api *a = s->api;
    overrides o = {0};
    hlcu_jb b = {.a = a};
    hlc_json *msg = NULL;
    char *body = NULL;
    size_t len = 0;
    int rc = render_overrides(s, ev, &o, err, errlen);
    if (rc != HLC_RENDER_OK)
        goto out;
    msg = message(s, ev, &o, &b);
    rc = HLC_RENDER_RETRY;
    if (!msg || b.failed || !(body = a->json_dump(msg, &len))) {
        snprintf(err, errlen, "out of memory building the message");
        goto out;
    }
    rc = hlcu_request_json(a, req, s->url, body, len, err, errlen);
out:
    a->json_free(msg);
    a->free(body);
    a->free(o.title);
    a->free(o.header);
    a->free(o.text);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* Slack's error bodies (api.slack.com/messaging/webhooks#handling_errors). */
static const struct {
    const char *code;
    uint32_t verdict;
    const char *hint;
} slack_errors[] = {
    {"invalid_payload", HLC_FAILED,
     "Slack could not read the message; look at the title, header and text "
     "templates"},
    {"user_not_found", HLC_FAILED,
     "the channel key names a user Slack does not know"},
    {"channel_not_found", HLC_FAILED,
     "no such channel, or the webhook may not post there; fix the channel "
     "key"},
    {"action_prohibited", HLC_FAILED,
     "a workspace admin restricted posting to this channel"},
    {"posting_to_general_channel_denied", HLC_FAILED,
     "only admins may post to this channel"},
    {"too_many_attachments", HLC_FAILED, "the message has too many parts"},
    {"channel_is_archived", HLC_DISABLE,
     "the channel is archived; unarchive it or set url to another "
     "webhook, then resume the connector"},
    {"no_service", HLC_DISABLE,
     "the webhook was removed or disabled; make a new one, set url, then "
     "resume the connector"},
    {"no_service_id", HLC_DISABLE,
     "the webhook URL is incomplete; set url to the whole URL Slack gave, "
     "then resume the connector"},
    {"no_team", HLC_DISABLE,
     "the webhook's workspace is gone; set url to a new webhook, then "
     "resume the connector"},
    {"team_disabled", HLC_DISABLE,
     "the webhook's workspace is disabled; set url to a new webhook, then "
     "resume the connector"},
    {"invalid_token", HLC_DISABLE,
     "the webhook's token was revoked; make a new webhook, set url, then "
     "resume the connector"},
    {"rollup_error", HLC_RETRY, "a passing error inside Slack"},
};

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    (void)d;
    slack *s = state;
    const hlc_api *a = s->api;
    a->classify_default(r, out);
    if (a->response_error(r) != HLC_NET_NONE)
        return;
    int status = a->response_status(r);
    size_t len = 0;
    const char *body = a->response_body(r, &len);
    char word[96]; /* Slack's error code */
    hlcu_body_line(body, len, word, sizeof word);
    const char *sep = *word ? " " : "";
    if (status >= 200 && status < 300) {
        snprintf(out->reason, sizeof out->reason, "HTTP %d%s%s", status, sep,
                 word);
        return;
    }
    if (status == 429) {
        /* classify_default kept Retry-After. */
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 429%s%s: over Slack's rate of about one message a "
                 "second per webhook; sent again after Retry-After",
                 sep, word);
        return;
    }
    for (size_t i = 0; i < sizeof slack_errors / sizeof *slack_errors; i++) {
        if (strcmp(word, slack_errors[i].code))
            continue;
        /* A 5xx stays a retry whatever its body says. */
        if (status < 500) {
            out->verdict = slack_errors[i].verdict;
            if (out->verdict != HLC_RETRY)
                out->retry_after_ms = -1;
        }
        snprintf(out->reason, sizeof out->reason, "HTTP %d %s: %s", status,
                 word, slack_errors[i].hint);
        return;
    }
    if (*word)
        snprintf(out->reason, sizeof out->reason, "HTTP %d: %s", status, word);
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "slack",
    .version = "1.0.0",
    .description = "posts each event to a Slack incoming webhook as a Block "
                   "Kit message: severity emoji, header, fields for "
                   "severity, source and labels, the text, and a button to "
                   "data.url; Slack's error answers classified",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
