/* opsgenie.c - the Opsgenie connector: canonical events as alerts (create, and close by alias when resolved). */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

#define URL_US "https://api.opsgenie.com"
#define URL_EU "https://api.eu.opsgenie.com"
#define ELLIPSIS "\xe2\x80\xa6"

/* Opsgenie's limits, in characters. */
#define MESSAGE_MAX 130
#define ALIAS_MAX 512
#define DESCRIPTION_MAX 15000
#define ENTITY_MAX 512
#define SOURCE_MAX 100
#define NOTE_MAX 25000
#define TAGS_MAX 20
#define TAG_MAX 50
#define DETAILS_MAX 8000

static const hlc_key keys[] = {
    {"api_key", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "the key of an API integration (Settings > Integrations > API), sent "
     "as Authorization: GenieKey <api_key>; never logged"},
    {"region", HLC_KEY_STRING, 0, "us", "us|eu",
     "where the account lives: us (" URL_US ") or eu (" URL_EU "); the "
     "default for url, which overrides it"},
    {"message", HLC_KEY_TEMPLATE, 0, "{{data.title}}", NULL,
     "the alert's message: a Mustache template over the canonical event, "
     "rendered without escaping and put into the body as a JSON string "
     "(quotes and newlines cannot break it); cut to 130 characters"},
    {"description", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "the alert's description, a template placed like message; default "
     "data.text followed by data.url; cut to 15000 characters"},
    {"entity", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "the alert's entity, the thing it is about (e.g. "
     "'{{data.labels.instance}}'): a template placed like message; left out "
     "when unset or empty; cut to 512 characters"},
    {"source", HLC_KEY_TEMPLATE, 0, "{{source}}", NULL,
     "the alert's source field (and the note's, when it is closed): a "
     "template placed like message; cut to 100 characters"},
    {"note", HLC_KEY_TEMPLATE, 0, "Resolved: {{data.title}}", NULL,
     "the note added when a resolved event closes the alert: a template "
     "placed like message; cut to 25000 characters"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

enum { T_MESSAGE, T_DESCRIPTION, T_ENTITY, T_SOURCE, T_NOTE, N_TPL };
static const char *const tpl_keys[N_TPL] = {"message", "description", "entity",
                                            "source", "note"};

typedef struct {
    const hlc_api *api;
    const hlc_instance *inst;
    char *base;          /* the API base URL without trailing slashes */
    char *authorization; /* "GenieKey <api_key>" */
    hlc_template *tpl[N_TPL];
} opsgenie;

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    opsgenie *o = state;
    if (!o)
        return;
    for (int i = 0; i < N_TPL; i++)
        if (o->tpl[i])
            o->api->template_free(o->tpl[i]);
    o->api->free(o->base);
    o->api->free(o->authorization);
    o->api->free(o);
}

static char *dup_str(const hlc_api *a, const char *s, size_t n)
{
    char *c = a->alloc(n + 1);
    if (c)
        memcpy(c, s, n);
    return c;
}

static int setup_url(opsgenie *o, const hlc_config *cfg, char *err,
                     size_t errlen)
{
    const hlc_api *a = o->api;
    const char *url = a->config_string(cfg, "url");
    const char *region = a->config_string(cfg, "region");
    if (!url)
        url = region && !strcmp(region, "eu") ? URL_EU : URL_US;
    if (!hlcu_link_ok(url)) {
        snprintf(err, errlen,
                 "url: expected the http:// or https:// base URL of the "
                 "Opsgenie API (default %s, or %s with region: eu), got '%s'",
                 URL_US, URL_EU, url);
        return -1;
    }
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    if (!(o->base = dup_str(a, url, n))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int setup_key(opsgenie *o, const hlc_config *cfg, char *err,
                     size_t errlen)
{
    const hlc_api *a = o->api;
    const char *key = a->config_string(cfg, "api_key");
    if (!key || !*key) {
        snprintf(err, errlen,
                 "api_key: required: the key of an Opsgenie API integration");
        return -1;
    }
    for (const char *c = key; *c; c++)
        if (*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen,
                     "api_key: contains a space or a control character; "
                     "copy the key again from the integration's page");
            return -1;
        }
    size_t n = strlen(key) + sizeof "GenieKey ";
    if (!(o->authorization = a->alloc(n))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(o->authorization, n, "GenieKey %s", key);
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    opsgenie *o = api->alloc(sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    o->api = api;
    o->inst = inst;
    if (setup_key(o, cfg, err, errlen) || setup_url(o, cfg, err, errlen))
        goto fail;
    for (int i = 0; i < N_TPL; i++)
        if (hlcu_compile_key(api, cfg, tpl_keys[i], &o->tpl[i], err, errlen))
            goto fail;
    *state = o;
    return 0;
fail:
    destroy(o);
    return -1;
}

/* ---- rendering ----------------------------------------------------------- */

static const char *priority(const char *severity)
{
    if (!severity)
        return "P3";
    if (!strcmp(severity, "critical"))
        return "P1";
    if (!strcmp(severity, "error"))
        return "P2";
    if (!strcmp(severity, "info"))
        return "P5";
    return "P3";
}

/* The alias for a dedupkey: itself, or "hookline-" and the hex
 * HMAC-SHA256 (key "hookline") of it when it is longer than Opsgenie
 * takes, so the same long key always gives the same alias. *out is
 * allocated. */
static int make_alias(const hlc_api *a, const char *key, char **out)
{
    char buf[HLCU_HASHED_KEY_SIZE];
    const char *k = hlcu_short_key(a, key, ALIAS_MAX, buf);
    *out = k ? dup_str(a, k, strlen(k)) : NULL;
    return *out ? 0 : -1;
}

/* Render template i, cut to max characters; *text is allocated (NULL when
 * the template is unset). An hlc_render_result. */
static int render_tpl(opsgenie *o, int i, const hlc_json *ev, size_t max,
                      char **text, char *err, size_t errlen)
{
    const hlc_api *a = o->api;
    *text = NULL;
    if (!o->tpl[i])
        return HLC_RENDER_OK;
    char why[400] = "";
    char *full =
        a->template_render(o->tpl[i], ev, HLC_ESC_NONE, NULL, why, sizeof why);
    if (!full) {
        snprintf(err, errlen, "%s: the template could not be rendered: %s",
                 tpl_keys[i], why);
        return HLC_RENDER_FAILED;
    }
    *text = a->text_truncate(full, max, ELLIPSIS);
    a->free(full);
    if (!*text) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    return HLC_RENDER_OK;
}

/* Set obj[key] to text (cut to max characters) unless it is NULL or
 * empty. */
static int set_cut(const hlc_api *a, hlc_json *obj, const char *key,
                   const char *text, size_t max)
{
    if (!text || !*text)
        return 0;
    char *cut = a->text_truncate(text, max, ELLIPSIS);
    int rc = cut ? a->json_set(obj, key, a->json_new_string(cut)) : -1;
    a->free(cut);
    return rc;
}

/* The default description: data.text, then data.url on a line of its own. */
static int set_description(const hlc_api *a, const hlc_json *ev, hlc_json *body)
{
    const char *text = hlcu_ev_str(a, ev, "/data/text");
    const char *url = hlcu_ev_str(a, ev, "/data/url");
    if (!url)
        return set_cut(a, body, "description", text, DESCRIPTION_MAX);
    size_t tl = text ? strlen(text) : 0, ul = strlen(url);
    char *both = a->alloc(tl + ul + 3);
    if (!both)
        return -1;
    snprintf(both, tl + ul + 3, "%s%s%s", text ? text : "", text ? "\n\n" : "",
             url);
    int rc = set_cut(a, body, "description", both, DESCRIPTION_MAX);
    a->free(both);
    return rc;
}

/* Append tag (cut to TAG_MAX characters) unless it is there already. */
static int add_tag(const hlc_api *a, hlc_json *tags, const char *tag)
{
    if (!*tag || a->json_size(tags) >= TAGS_MAX)
        return 0;
    char *cut = a->text_truncate(tag, TAG_MAX, "");
    if (!cut)
        return -1;
    for (size_t i = 0; i < a->json_size(tags); i++)
        if (!strcmp(a->json_string(a->json_at(tags, i)), cut)) {
            a->free(cut);
            return 0;
        }
    int rc = a->json_append(tags, a->json_new_string(cut));
    a->free(cut);
    return rc;
}

/* tags: the source, then "name:value" of each label, at most 20; details:
 * the labels, as many as fit in 8000 characters. */
static int set_labels(const hlc_api *a, const hlc_json *ev, hlc_json *body)
{
    hlc_json *tags = a->json_array(), *details = a->json_object();
    int bad = !tags || !details;
    const char *source = hlcu_ev_str(a, ev, "/source");
    if (!bad && source)
        bad |= add_tag(a, tags, source);
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    size_t used = 0;
    for (size_t i = 0; !bad && i < a->json_size(labels); i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(labels, i, &v);
        const char *s = a->json_string(v);
        if (!k || !s)
            continue;
        size_t n = strlen(k) + strlen(s) + 2;
        char *tag = a->alloc(n);
        if (!tag) {
            bad = 1;
            break;
        }
        snprintf(tag, n, "%s:%s", k, s);
        bad |= add_tag(a, tags, tag);
        a->free(tag);
        size_t chars = hlcu_chars(k) + hlcu_chars(s);
        if (used + chars <= DETAILS_MAX) {
            used += chars;
            bad |= a->json_set(details, k, a->json_new_string(s));
        }
    }
    if (bad) {
        a->json_free(tags);
        a->json_free(details);
        return -1;
    }
    bad |= a->json_size(tags) ? a->json_set(body, "tags", tags)
                              : (a->json_free(tags), 0);
    bad |= a->json_size(details) ? a->json_set(body, "details", details)
                                 : (a->json_free(details), 0);
    return bad ? -1 : 0;
}

/* The body of POST /v2/alerts; an hlc_render_result. */
static int build_alert(opsgenie *o, const hlc_json *ev, const char *alias,
                       hlc_json *body, char *err, size_t errlen)
{
    const hlc_api *a = o->api;
    char *text[N_TPL] = {0};
    static const size_t max[N_TPL] = {MESSAGE_MAX, DESCRIPTION_MAX, ENTITY_MAX,
                                      SOURCE_MAX, NOTE_MAX};
    int rc = HLC_RENDER_OK;
    for (int i = 0; i < T_NOTE && !rc; i++)
        rc = render_tpl(o, i, ev, max[i], &text[i], err, errlen);
    if (rc)
        goto out;
    const char *message = text[T_MESSAGE] && *text[T_MESSAGE]
                              ? text[T_MESSAGE]
                              : hlcu_ev_str(a, ev, "/data/title");
    int bad = set_cut(a, body, "message", message ? message : "hookline event",
                      MESSAGE_MAX);
    if (alias)
        bad |= a->json_set(body, "alias", a->json_new_string(alias));
    bad |= o->tpl[T_DESCRIPTION] ? set_cut(a, body, "description",
                                           text[T_DESCRIPTION], DESCRIPTION_MAX)
                                 : set_description(a, ev, body);
    bad |= set_labels(a, ev, body);
    bad |= set_cut(a, body, "entity", text[T_ENTITY], ENTITY_MAX);
    bad |= set_cut(a, body, "source", text[T_SOURCE], SOURCE_MAX);
    bad |= a->json_set(
        body, "priority",
        a->json_new_string(priority(hlcu_ev_str(a, ev, "/severity"))));
    if (bad) {
        snprintf(err, errlen, "out of memory building the alert");
        rc = HLC_RENDER_RETRY;
    }
out:
    for (int i = 0; i < N_TPL; i++)
        a->free(text[i]);
    return rc;
}

/* The body of POST /v2/alerts/{alias}/close; an hlc_render_result. */
static int build_close(opsgenie *o, const hlc_json *ev, hlc_json *body,
                       char *err, size_t errlen)
{
    const hlc_api *a = o->api;
    char *source = NULL, *note = NULL;
    int rc = render_tpl(o, T_SOURCE, ev, SOURCE_MAX, &source, err, errlen);
    if (!rc)
        rc = render_tpl(o, T_NOTE, ev, NOTE_MAX, &note, err, errlen);
    if (rc)
        goto out;
    if (set_cut(a, body, "source", source, SOURCE_MAX) ||
        set_cut(a, body, "note", note, NOTE_MAX)) {
        snprintf(err, errlen, "out of memory building the close request");
        rc = HLC_RENDER_RETRY;
    }
out:
    a->free(source);
    a->free(note);
    return rc;
}

/* base + "/v2/alerts", or, to close an alert, base + "/v2/alerts/" +
 * the percent-encoded alias + "/close?identifierType=alias"; allocated. */
static char *alerts_url(const hlc_api *a, const char *base,
                        const char *close_alias)
{
    static const char tail[] = "/close?identifierType=alias";
    static const char hex[] = "0123456789ABCDEF";
    const char *alias = close_alias ? close_alias : "";
    size_t n =
        strlen(base) + sizeof "/v2/alerts/" + 3 * strlen(alias) + sizeof tail;
    char *u = a->alloc(n), *w = u;
    if (!u)
        return NULL;
    w += snprintf(w, n, "%s/v2/alerts", base);
    if (!close_alias)
        return u;
    *w++ = '/';
    for (const unsigned char *c = (const unsigned char *)alias; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
            (*c >= '0' && *c <= '9') || strchr("-._~", *c)) {
            *w++ = (char)*c;
        } else {
            *w++ = '%';
            *w++ = hex[*c >> 4];
            *w++ = hex[*c & 15];
        }
    }
    memcpy(w, tail, sizeof tail);
    return u;
}

static int request(opsgenie *o, hlc_request *req, const char *url,
                   const char *body, size_t len)
{
    const hlc_api *a = o->api;
    return a->request_http(req, "POST", url) ||
           a->request_header(req, "Content-Type", "application/json") ||
           a->request_header(req, "Accept", "application/json") ||
           a->request_header(req, "Authorization", o->authorization) ||
           a->request_body(req, body, len);
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)d;
    opsgenie *o = state;
    const hlc_api *a = o->api;
    int resolved = hlcu_status_closed(hlcu_ev_str(a, ev, "/data/status"));
    const char *dedup = hlcu_ev_str(a, ev, "/dedupkey");
    if (resolved && !dedup)
        return HLC_RENDER_SKIP; /* no alias: no alert of ours to close */
    hlc_json *body = a->json_object();
    char *alias = NULL, *url = NULL, *text = NULL;
    size_t len = 0;
    int rc = HLC_RENDER_RETRY;
    if (!body || (dedup && make_alias(a, dedup, &alias))) {
        snprintf(err, errlen, "out of memory building the alert");
        goto out;
    }
    int built = resolved ? build_close(o, ev, body, err, errlen)
                         : build_alert(o, ev, alias, body, err, errlen);
    if (built) {
        rc = built;
        goto out;
    }
    url = alerts_url(a, o->base, resolved ? alias : NULL);
    if (!url || !(text = a->json_dump(body, &len)) ||
        request(o, req, url, text, len)) {
        snprintf(err, errlen, "out of memory making the request");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->free(text);
    a->free(url);
    a->free(alias);
    a->json_free(body);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* "HTTP N: what: message (field: error; ...)" from an Opsgenie error body:
 * {"message": ..., "errors": {field: error}}. */
static void refused(const hlc_api *a, const hlc_response *r, int status,
                    const char *what, hlc_outcome *out)
{
    size_t len = 0, n = 0;
    const char *text = a->response_body(r, &len);
    hlc_json *body = a->json_parse(text, len);
    const char *msg = a->json_string(a->json_get(body, "message"));
    const hlc_json *errs = a->json_get(body, "errors");
    hlcu_add_reason(out, &n, "HTTP %d: %s", status, what);
    if (msg)
        hlcu_add_reason(out, &n, ": %s", msg);
    const char *sep = " (";
    for (size_t i = 0; i < a->json_size(errs); i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(errs, i, &v);
        const char *e = a->json_string(v);
        if (k && e) {
            hlcu_add_reason(out, &n, "%s%s: %s", sep, k, e);
            sep = "; ";
        }
    }
    if (*sep == ';')
        hlcu_add_reason(out, &n, ")");
    a->json_free(body);
    out->verdict = HLC_FAILED;
    out->retry_after_ms = -1;
}

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    opsgenie *o = state;
    const hlc_api *a = o->api;
    a->classify_default(r, out);
    if (a->response_error(r) != HLC_NET_NONE)
        return;
    int status = a->response_status(r);
    switch (status) {
    case 400:
    case 403:
    case 422: refused(a, r, status, "Opsgenie refused the request", out); break;
    case 401:
        refused(a, r, status,
                "Opsgenie refused api_key; check it is the key of an enabled "
                "API integration, for this region",
                out);
        a->log(o->inst, HLC_LOG_ERROR,
               "Opsgenie refused the API key (HTTP 401): every alert will "
               "fail until api_key is fixed",
               "delivery", d->delivery_id, NULL);
        break;
    case 402:
        refused(a, r, status,
                "Opsgenie says the account's plan does not allow this", out);
        a->log(o->inst, HLC_LOG_ERROR,
               "Opsgenie answered 402 Payment Required: the account's plan "
               "does not allow API alerts; alerts fail until it does",
               "delivery", d->delivery_id, NULL);
        break;
    case 429:
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 429: over Opsgenie's rate limit; trying again %s",
                 out->retry_after_ms >= 0 ? "after its Retry-After"
                                          : "at the policy's next delay");
        break;
    default:
        if (status >= 200 && status < 300)
            snprintf(out->reason, sizeof out->reason,
                     "HTTP %d: Opsgenie accepted the request", status);
        break;
    }
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "opsgenie",
    .version = "1.0.0",
    .description = "Opsgenie Alert API: creates an alert per event (alias "
                   "from the dedupkey; POST {url}/v2/alerts) and closes it "
                   "by alias when the event is resolved",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
