/* teams.c - the teams connector: a canonical event as an Adaptive Card to a Microsoft Teams Workflows webhook. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

/* Teams refuses a message over 28 KB; it measures its own encoding, so the
 * body is kept under the decimal figure. */
#define BODY_MAX 28000
#define TITLE_MIN 80            /* a title is cut no shorter than this to fit */
#define ELLIPSIS "\xe2\x80\xa6" /* U+2026, one character, three bytes */
#define CARD_TYPE "application/vnd.microsoft.card.adaptive"

static const hlc_key keys[] = {
    {"url", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "the webhook URL of a Teams workflow ('Post to a channel when a "
     "webhook request is received'), or of a legacy Incoming Webhook "
     "connector; it carries its signature, so write it as "
     "${TEAMS_WEBHOOK_URL} or ${file:PATH}"},
    {"title", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template over the canonical event for the card's title, "
     "e.g. '[{{data.labels.env}}] {{data.title}}'; default: data.title "
     "('Resolved: ' is put before it for a resolved event). Rendered "
     "without escaping and put in the body as a JSON string by the JSON "
     "library, so quotes and line breaks in values cannot break the body; "
     "empty output falls back to the default"},
    {"text", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "Mustache template for the card's text (Teams' Markdown subset); "
     "default: data.text. Cut with an ellipsis so the message stays under "
     "28 KB. Rendered without escaping and JSON-escaped by the JSON "
     "library; empty output falls back to the default"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const char *url;
    hlc_template *title, *text;
} teams;

/* ---- the event ----------------------------------------------------------- */

/* Adaptive Card colours: critical and error attention, warning warning,
 * info accent; resolved good. */
static const char *const colors[HLCU_SEVERITIES] = {"attention", "attention",
                                                    "warning", "accent"};

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    teams *t = state;
    if (!t)
        return;
    if (t->title)
        t->api->template_free(t->title);
    if (t->text)
        t->api->template_free(t->text);
    t->api->free(t);
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    (void)inst;
    teams *t = api->alloc(sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->api = api;
    t->url = api->config_string(cfg, "url");
    if (!t->url) {
        snprintf(err, errlen, "url: give the Teams workflow's webhook URL");
        goto fail;
    }
    if (!hlcu_link_ok(t->url)) {
        snprintf(err, errlen,
                 "url: expected the https:// URL of a Teams "
                 "workflow webhook");
        goto fail;
    }
    if (hlcu_compile(api, cfg, "title", &t->title, err, errlen) ||
        hlcu_compile(api, cfg, "text", &t->text, err, errlen))
        goto fail;
    *state = t;
    return 0;
fail:
    destroy(t);
    return -1;
}

/* ---- rendering ----------------------------------------------------------- */

/* One fact of the FactSet; the strings are borrowed from the event. */
typedef struct {
    const char *title, *value;
} fact;

/* What the card says, and how much of it fits. */
typedef struct {
    char *title_override, *text_override;
    char *title;      /* one line, "Resolved: " before it when resolved */
    const char *text; /* the override, or data.text; NULL: none */
    const char *url;  /* data.url when it is a link; NULL: no button */
    char *context;    /* "type · time · event id" */
    const char *color;
    fact *facts;
    size_t n_facts;
    /* The budget: at most this many characters of title and text
     * (SIZE_MAX: all), the first n_keep facts, the button or not. */
    size_t title_chars, text_chars, n_keep;
} card;

static int gather_facts(const hlc_api *a, const hlc_json *ev, card *c)
{
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    size_t n = a->json_size(labels);
    if (!(c->facts = a->alloc((n + 3) * sizeof *c->facts)))
        return -1;
    c->facts[c->n_facts++] =
        (fact){"Severity", hlcu_severities[hlcu_severity_of(a, ev)]};
    const char *src = hlcu_ev_str(a, ev, "/source");
    const char *status = hlcu_ev_str(a, ev, "/data/status");
    if (src)
        c->facts[c->n_facts++] = (fact){"Source", src};
    if (status)
        c->facts[c->n_facts++] = (fact){"Status", status};
    for (size_t i = 0; i < n; i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(labels, i, &v);
        if (k && a->json_string(v))
            c->facts[c->n_facts++] = (fact){k, a->json_string(v)};
    }
    return 0;
}

static int gather(teams *t, const hlc_json *ev, card *c, char *err,
                  size_t errlen)
{
    const hlc_api *a = t->api;
    if (hlcu_render_override(t->api, t->title, ev, "title", &c->title_override,
                             err, errlen) ||
        hlcu_render_override(t->api, t->text, ev, "text", &c->text_override,
                             err, errlen))
        return HLC_RENDER_FAILED;
    int resolved = hlcu_is_resolved(a, ev);
    hlcu_sbuf tb = {.a = a};
    if (resolved)
        hlcu_sb_add(&tb, "Resolved: ");
    hlcu_sb_add(&tb,
                c->title_override ? c->title_override : hlcu_title_of(a, ev));
    c->title = hlcu_sb_take(&tb);
    c->context = hlcu_context_line(a, ev);
    if (!c->title || !c->context || gather_facts(a, ev, c)) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    hlcu_one_line(c->title);
    c->text =
        c->text_override ? c->text_override : hlcu_ev_str(a, ev, "/data/text");
    c->url = hlcu_ev_str(a, ev, "/data/url");
    if (!hlcu_link_ok(c->url))
        c->url = NULL;
    c->color = resolved ? "good" : colors[hlcu_severity_of(a, ev)];
    c->title_chars = c->text_chars = (size_t)-1;
    c->n_keep = c->n_facts;
    return HLC_RENDER_OK;
}

static void card_free(const hlc_api *a, card *c)
{
    a->free(c->title_override);
    a->free(c->text_override);
    a->free(c->title);
    a->free(c->context);
    a->free(c->facts);
}

/* A TextBlock with s cut to max characters. */
static hlc_json *text_block(hlcu_jb *b, const char *s, size_t max)
{
    const hlc_api *a = b->a;
    hlc_json *tb = a->json_object();
    char *cut = a->text_truncate(s, max, ELLIPSIS);
    hlcu_put_str(b, tb, "type", "TextBlock");
    hlcu_put_str(b, tb, "text", cut);
    hlcu_put(b, tb, "wrap", a->json_new_bool(1));
    a->free(cut);
    return tb;
}

static hlc_json *fact_set(hlcu_jb *b, const card *c)
{
    const hlc_api *a = b->a;
    hlc_json *fs = a->json_object(), *facts = a->json_array();
    hlcu_put_str(b, fs, "type", "FactSet");
    for (size_t i = 0; i < c->n_keep; i++) {
        hlc_json *f = a->json_object();
        hlcu_put_str(b, f, "title", c->facts[i].title);
        hlcu_put_str(b, f, "value", c->facts[i].value);
        hlcu_push(b, facts, f);
    }
    hlcu_put(b, fs, "facts", facts);
    return fs;
}

/* The whole message for the card's current budget. */
static hlc_json *message(hlcu_jb *b, const card *c)
{
    const hlc_api *a = b->a;
    hlc_json *body = a->json_array();
    hlc_json *title =
        hlcu_push(b, body, text_block(b, c->title, c->title_chars));
    hlcu_put_str(b, title, "weight", "Bolder");
    hlcu_put_str(b, title, "size", "Medium");
    hlcu_put_str(b, title, "color", c->color);
    if (c->n_keep)
        hlcu_push(b, body, fact_set(b, c));
    if (c->text && c->text_chars)
        hlcu_push(b, body, text_block(b, c->text, c->text_chars));
    hlc_json *ctx = hlcu_push(b, body, text_block(b, c->context, (size_t)-1));
    hlcu_put(b, ctx, "isSubtle", a->json_new_bool(1));
    hlcu_put_str(b, ctx, "size", "Small");

    hlc_json *content = a->json_object();
    hlcu_put_str(b, content, "$schema",
                 "http://adaptivecards.io/schemas/adaptive-card.json");
    hlcu_put_str(b, content, "type", "AdaptiveCard");
    hlcu_put_str(b, content, "version", "1.4");
    hlcu_put(b, content, "body", body);
    if (c->url) {
        hlc_json *actions = a->json_array(), *open = a->json_object();
        hlcu_put_str(b, open, "type", "Action.OpenUrl");
        hlcu_put_str(b, open, "title", "Open");
        hlcu_put_str(b, open, "url", c->url);
        hlcu_push(b, actions, open);
        hlcu_put(b, content, "actions", actions);
    }
    hlc_json *ms = a->json_object();
    hlcu_put_str(b, ms, "width", "Full");
    hlcu_put(b, content, "msteams", ms);

    hlc_json *att = a->json_object(), *atts = a->json_array();
    hlcu_put_str(b, att, "contentType", CARD_TYPE);
    hlcu_put(b, att, "content", content);
    hlcu_push(b, atts, att);
    hlc_json *msg = a->json_object();
    hlcu_put_str(b, msg, "type", "message");
    hlcu_put(b, msg, "attachments", atts);
    return msg;
}

/* The body for the card's current budget (allocated), or NULL when out
 * of memory. */
static char *dump(const hlc_api *a, const card *c, size_t *len)
{
    hlcu_jb b = {.a = a};
    hlc_json *msg = message(&b, c);
    char *body = b.failed ? NULL : a->json_dump(msg, len);
    a->json_free(msg);
    return body;
}

/* Whether the card fits with *knob = v: 1, 0, or -1 when out of memory. */
static int fits_with(const hlc_api *a, card *c, size_t *knob, size_t v)
{
    size_t len = 0;
    *knob = v;
    char *body = dump(a, c, &len);
    a->free(body);
    return body ? len <= BODY_MAX : -1;
}

/* The largest value in [lo, hi] of *knob with which the card fits (the
 * size grows with it), or lo when none does; -1 when out of memory. */
static int largest_fit(const hlc_api *a, card *c, size_t *knob, size_t lo,
                       size_t hi)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        int f = fits_with(a, c, knob, mid);
        if (f < 0)
            return -1;
        if (f)
            lo = mid;
        else
            hi = mid - 1;
    }
    *knob = lo;
    return 0;
}

/* The body, made to fit BODY_MAX (allocated), or NULL with err and *rc
 * set. What gives way, in order: the text (cut, then dropped), the facts
 * (from the last), the title (down to TITLE_MIN characters), the button. */
static char *fitted_body(const hlc_api *a, card *c, size_t *len, int *rc,
                         char *err, size_t errlen)
{
    char *body = dump(a, c, len);
    if (body && *len <= BODY_MAX)
        return body;
    a->free(body);
    size_t text = c->text ? hlcu_chars(c->text) : 0,
           title = hlcu_chars(c->title);
    int oom = !body;
    if (!oom && text)
        oom = largest_fit(a, c, &c->text_chars, 0, text - 1) < 0;
    if (!oom && !c->text_chars && c->n_facts)
        oom = largest_fit(a, c, &c->n_keep, 0, c->n_facts) < 0;
    if (!oom && !c->text_chars && !c->n_keep && title > TITLE_MIN)
        oom = largest_fit(a, c, &c->title_chars, TITLE_MIN, title) < 0;
    body = oom ? NULL : dump(a, c, len);
    if (body && *len > BODY_MAX && c->url) {
        a->free(body);
        c->url = NULL;
        body = dump(a, c, len);
    }
    if (!body) {
        snprintf(err, errlen, "out of memory building the card");
        *rc = HLC_RENDER_RETRY;
        return NULL;
    }
    if (*len > BODY_MAX) {
        snprintf(err, errlen,
                 "the card cannot be made smaller than Teams' %d bytes "
                 "(%zu bytes without text and facts)",
                 BODY_MAX, *len);
        a->free(body);
        *rc = HLC_RENDER_FAILED;
        return NULL;
    }
    return body;
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)d;
    teams *t = state;
    const hlc_api *a = t->api;
    card c = {0};
    char *body = NULL;
    size_t len = 0;
    int rc = gather(t, ev, &c, err, errlen);
    if (rc != HLC_RENDER_OK)
        goto out;
    if (!(body = fitted_body(a, &c, &len, &rc, err, errlen)))
        goto out;
    rc = hlcu_request_json(a, req, t->url, body, len, err, errlen);
out:
    a->free(body);
    card_free(a, &c);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* Whether s starts with word (lower case), ignoring case. */
static int starts_with(const char *s, const char *word)
{
    for (; *word; s++, word++)
        if (lower((unsigned char)*s) != *word)
            return 0;
    return 1;
}

/* Where word (lower case) starts in s, ignoring case; NULL when it is not
 * there. */
static const char *find_word(const char *s, const char *word)
{
    for (; *s; s++)
        if (starts_with(s, word))
            return s;
    return NULL;
}

/* The status in "HTTP 429", "HTTP error 413", "HTTP status: 500" inside
 * a text; 0 when there is none. */
static int status_in(const char *s)
{
    for (const char *p = s; (p = find_word(p, "http"));) {
        const char *q = p += 4;
        while (*q == ' ' || *q == ':')
            q++;
        if (starts_with(q, "error"))
            q += 5;
        else if (starts_with(q, "status"))
            q += 6;
        while (*q == ' ' || *q == ':' || *q == '=')
            q++;
        if (q[0] >= '1' && q[0] <= '5' && q[1] >= '0' && q[1] <= '9' &&
            q[2] >= '0' && q[2] <= '9' && !(q[3] >= '0' && q[3] <= '9'))
            return (q[0] - '0') * 100 + (q[1] - '0') * 10 + (q[2] - '0');
    }
    return 0;
}

/* Retry-After in seconds, as milliseconds; -1 when absent or a date. */
static int64_t retry_after(const hlc_api *a, const hlc_response *r)
{
    const char *v = a->response_header(r, "Retry-After");
    if (!v)
        return -1;
    while (*v == ' ')
        v++;
    int64_t s = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9' && s < 86400 * 365; p++)
        s = s * 10 + (*p - '0');
    return p == v ? -1 : s * 1000;
}

/* A 2xx whose body reports a failure, as the legacy connector did:
 * "Webhook message delivery failed with error: Microsoft Teams endpoint
 * returned HTTP error 429 ...". */
static void judge_success(const hlc_api *a, const hlc_response *r, int status,
                          hlc_outcome *out)
{
    size_t len = 0;
    const char *body = a->response_body(r, &len);
    char line[200];
    hlcu_body_line(body, len, line, sizeof line);
    snprintf(out->reason, sizeof out->reason, "HTTP %d%s%.100s", status,
             *line ? " " : "", line);
    if (!*line || !strcmp(line, "1"))
        return;
    hlc_json *j = a->json_parse(body, len);
    const hlc_json *e = a->json_get(j, "error");
    if (j && !e) {
        a->json_free(j);
        return; /* JSON that reports no error */
    }
    const char *msg = a->json_string(e);
    if (!msg)
        msg = a->json_string(a->json_get(e, "message"));
    char text[200];
    snprintf(text, sizeof text, "%s", msg ? msg : line);
    a->json_free(j);
    int code = status_in(text);
    if (!e && !code && !find_word(text, "error"))
        return; /* text that reports no error */
    out->retry_after_ms = -1;
    if (code == 429) {
        out->verdict = HLC_RETRY;
        out->retry_after_ms = retry_after(a, r);
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d reporting 429 (Teams throttles above about 4 "
                 "requests a second): %.160s",
                 status, text);
    } else if (code == 413) {
        out->verdict = HLC_FAILED;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d reporting 413, the message is too large for Teams: "
                 "%.160s",
                 status, text);
    } else {
        out->verdict = HLC_FAILED;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d reporting a failure: %.200s", status, text);
    }
}

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    (void)d;
    teams *t = state;
    const hlc_api *a = t->api;
    a->classify_default(r, out);
    if (a->response_error(r) != HLC_NET_NONE)
        return;
    int status = a->response_status(r);
    if (status >= 200 && status < 300) {
        judge_success(a, r, status, out);
        return;
    }
    /* A workflow's refusal: {"error": {"code": ..., "message": ...}}. */
    size_t len = 0;
    const char *body = a->response_body(r, &len);
    hlc_json *j = a->json_parse(body, len);
    const hlc_json *e = a->json_get(j, "error");
    const char *code = a->json_string(a->json_get(e, "code"));
    const char *msg = a->json_string(a->json_get(e, "message"));
    char line[160];
    hlcu_body_line(body, len, line, sizeof line);
    if (code || msg)
        snprintf(out->reason, sizeof out->reason, "HTTP %d %.60s: %.170s",
                 status, code ? code : "", msg ? msg : "");
    else if (*line)
        snprintf(out->reason, sizeof out->reason, "HTTP %d: %s", status, line);
    a->json_free(j);
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "teams",
    .version = "1.0.0",
    .description = "posts each event to a Microsoft Teams workflow webhook "
                   "as an Adaptive Card (title coloured by severity, facts "
                   "for severity, source, status and labels, the text, a "
                   "button to data.url), kept under 28 KB; reads failures "
                   "reported inside a 200 answer",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
