/* pagerduty.c - the PagerDuty connector: canonical events as Events API v2 trigger, acknowledge and resolve. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

#define DEFAULT_URL "https://events.pagerduty.com"
#define ENQUEUE_PATH "/v2/enqueue"
#define ROUTING_KEY_LEN 32
#define DEDUP_MAX 255         /* characters of dedup_key */
#define SUMMARY_MAX 1024      /* characters of payload.summary */
#define BODY_MAX (512 * 1024) /* bytes PagerDuty accepts in one event */
#define ELLIPSIS "\xe2\x80\xa6"

static const hlc_key keys[] = {
    {"routing_key", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "the 32-character integration key of the service's Events API v2 "
     "integration (Service > Integrations > Events API v2); sent in the "
     "body, never logged"},
    {"source", HLC_KEY_TEMPLATE, 0, "{{source}}", NULL,
     "payload.source, where it happened: a Mustache template over the "
     "canonical event, rendered without escaping and put into the body as a "
     "JSON string (quotes and newlines cannot break it); empty output falls "
     "back to the event's source"},
    {"summary", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "payload.summary, the incident's title: a Mustache template (rendered "
     "and placed like source); default data.title; cut to 1024 characters, "
     "ending in an ellipsis (\xe2\x80\xa6)"},
    {"component", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "payload.component, the part of the source that is affected (e.g. "
     "'{{data.labels.service}}'): a Mustache template placed like source; "
     "left out when unset or empty"},
    {"group", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "payload.group, a cluster or grouping of sources (e.g. "
     "'{{data.labels.cluster}}'); a template placed like source, left out "
     "when empty"},
    {"class", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "payload.class, the kind of event (e.g. '{{type}}'); a template placed "
     "like source, left out when empty"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* The optional payload fields made from templates, in body order. */
enum { T_SOURCE, T_SUMMARY, T_COMPONENT, T_GROUP, T_CLASS, N_TPL };
static const char *const tpl_keys[N_TPL] = {"source", "summary", "component",
                                            "group", "class"};

typedef struct {
    const hlc_api *api;
    const hlc_instance *inst;
    const char *routing_key; /* borrowed from the configuration */
    char *enqueue_url;
    hlc_template *tpl[N_TPL];
} pagerduty;

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    pagerduty *p = state;
    if (!p)
        return;
    for (int i = 0; i < N_TPL; i++)
        if (p->tpl[i])
            p->api->template_free(p->tpl[i]);
    p->api->free(p->enqueue_url);
    p->api->free(p);
}

/* "{base without trailing slashes}{path}", allocated; NULL when out of
 * memory. */
static char *join_url(const hlc_api *a, const char *base, const char *path)
{
    size_t bl = strlen(base), pl = strlen(path);
    while (bl && base[bl - 1] == '/')
        bl--;
    char *u = a->alloc(bl + pl + 1);
    if (u) {
        memcpy(u, base, bl);
        memcpy(u + bl, path, pl + 1);
    }
    return u;
}

static int check_url(const char *url, char *err, size_t errlen)
{
    if (!hlcu_link_ok(url)) {
        snprintf(err, errlen,
                 "url: expected the http:// or https:// base URL of the "
                 "Events API (default %s), got '%s'",
                 DEFAULT_URL, url);
        return -1;
    }
    return 0;
}

static int check_routing_key(const char *key, char *err, size_t errlen)
{
    size_t n = strlen(key);
    if (n != ROUTING_KEY_LEN) {
        snprintf(err, errlen,
                 "routing_key: expected the %d-character integration key of "
                 "an Events API v2 integration, got %zu characters",
                 ROUTING_KEY_LEN, n);
        return -1;
    }
    for (const char *c = key; *c; c++)
        if (*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen,
                     "routing_key: contains a space or a control character; "
                     "copy the key again from the integration's page");
            return -1;
        }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    pagerduty *p = api->alloc(sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->api = api;
    p->inst = inst;
    const char *url = api->config_string(cfg, "url");
    if (!url)
        url = DEFAULT_URL;
    p->routing_key = api->config_string(cfg, "routing_key");
    if (!p->routing_key) {
        snprintf(err, errlen,
                 "routing_key: required: the integration key of the "
                 "service's Events API v2 integration");
        goto fail;
    }
    if (check_url(url, err, errlen) ||
        check_routing_key(p->routing_key, err, errlen))
        goto fail;
    if (!(p->enqueue_url = join_url(api, url, ENQUEUE_PATH))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < N_TPL; i++)
        if (hlcu_compile_key(api, cfg, tpl_keys[i], &p->tpl[i], err, errlen))
            goto fail;
    *state = p;
    return 0;
fail:
    destroy(p);
    return -1;
}

/* ---- rendering ----------------------------------------------------------- */

/* A string of the event, or NULL. Unlike hlcu_ev_str an empty one is kept:
 * an empty title or source is sent as it is, not replaced by a fallback. */
static const char *ev_str(const hlc_api *a, const hlc_json *ev, const char *ptr)
{
    return a->json_string(a->json_pointer(ev, ptr));
}

static const char *event_action(const char *status)
{
    if (hlcu_status_closed(status))
        return "resolve";
    if (status && !strcmp(status, "acknowledged"))
        return "acknowledge";
    return "trigger";
}

/* The dedup_key for a dedupkey: itself, or "hookline-" and the hex
 * HMAC-SHA256 (key "hookline") of it when it is longer than PagerDuty
 * takes, so the same long key always gives the same dedup_key. */
static hlc_json *dedup_json(const hlc_api *a, const char *key)
{
    char buf[HLCU_HASHED_KEY_SIZE];
    const char *k = hlcu_short_key(a, key, DEDUP_MAX, buf);
    return k ? a->json_new_string(k) : NULL;
}

/* Render template i (NULL when unset); *text is allocated, "" allowed. */
static int render_tpl(pagerduty *p, int i, const hlc_json *ev, char **text,
                      char *err, size_t errlen)
{
    *text = NULL;
    if (!p->tpl[i])
        return 0;
    char why[400] = "";
    if (!(*text = p->api->template_render(p->tpl[i], ev, HLC_ESC_NONE, NULL,
                                          why, sizeof why))) {
        snprintf(err, errlen, "%s: the template could not be rendered: %s",
                 tpl_keys[i], why);
        return -1;
    }
    return 0;
}

/* Set obj[key] to text, or to fallback when text is NULL or empty; nothing
 * when both are. */
static int set_text(const hlc_api *a, hlc_json *obj, const char *key,
                    const char *text, const char *fallback)
{
    const char *v = text && *text ? text : fallback;
    return v && *v ? a->json_set(obj, key, a->json_new_string(v)) : 0;
}

/* payload.{summary,source,severity,timestamp,component,group,class,
 * custom_details} of a trigger from the rendered templates; 0 or -1 when
 * out of memory. */
static int fill_payload(const hlc_api *a, const hlc_json *ev,
                        char *const text[N_TPL], hlc_json *payload)
{
    const char *title = ev_str(a, ev, "/data/title");
    const char *summary = text[T_SUMMARY] && *text[T_SUMMARY] ? text[T_SUMMARY]
                          : title                             ? title
                                  : ev_str(a, ev, "/type");
    char *cut =
        a->text_truncate(summary ? summary : "event", SUMMARY_MAX, ELLIPSIS);
    int bad = !cut || a->json_set(payload, "summary", a->json_new_string(cut));
    a->free(cut);
    const char *source = ev_str(a, ev, "/source");
    bad |= set_text(a, payload, "source", text[T_SOURCE],
                    source ? source : "hookline");
    bad |= a->json_set(
        payload, "severity",
        a->json_new_string(hlcu_severities[hlcu_severity_of(a, ev)]));
    bad |= set_text(a, payload, "timestamp", ev_str(a, ev, "/time"), NULL);
    bad |= set_text(a, payload, "component", text[T_COMPONENT], NULL);
    bad |= set_text(a, payload, "group", text[T_GROUP], NULL);
    bad |= set_text(a, payload, "class", text[T_CLASS], NULL);
    const hlc_json *labels = a->json_pointer(ev, "/data/labels");
    if (a->json_type(labels) == HLC_JSON_OBJECT && a->json_size(labels))
        bad |= a->json_set(payload, "custom_details", a->json_copy(labels));
    return bad ? -1 : 0;
}

/* links: [{href: data.url, text}] when the event has a URL. */
static int build_links(const hlc_api *a, const hlc_json *ev, hlc_json *body)
{
    const char *url = ev_str(a, ev, "/data/url");
    if (!url || !*url)
        return 0;
    hlc_json *links = a->json_array(), *link = a->json_object();
    if (!links || !link) {
        a->json_free(links);
        a->json_free(link);
        return -1;
    }
    int bad = a->json_set(link, "href", a->json_new_string(url));
    bad |= a->json_set(link, "text", a->json_new_string("View in source"));
    bad |= a->json_append(links, link);
    bad |= a->json_set(body, "links", links);
    return bad ? -1 : 0;
}

/* The rest of a trigger: payload, links, client; an hlc_render_result. */
static int build_trigger(pagerduty *p, const hlc_json *ev, hlc_json *body,
                         char *err, size_t errlen)
{
    const hlc_api *a = p->api;
    char *text[N_TPL] = {0};
    int rc = HLC_RENDER_FAILED;
    for (int i = 0; i < N_TPL; i++)
        if (render_tpl(p, i, ev, &text[i], err, errlen))
            goto out;
    rc = HLC_RENDER_RETRY;
    hlc_json *payload = a->json_object();
    if (!payload || a->json_set(body, "payload", payload) ||
        fill_payload(a, ev, text, payload) || build_links(a, ev, body) ||
        a->json_set(body, "client", a->json_new_string("hookline"))) {
        snprintf(err, errlen, "out of memory building the event");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    for (int i = 0; i < N_TPL; i++)
        a->free(text[i]);
    return rc;
}

/* The event's body; an hlc_render_result. */
static int build_body(pagerduty *p, const hlc_json *ev, const char *action,
                      const char *dedup, hlc_json *body, char *err,
                      size_t errlen)
{
    const hlc_api *a = p->api;
    int bad =
        a->json_set(body, "routing_key", a->json_new_string(p->routing_key));
    bad |= a->json_set(body, "event_action", a->json_new_string(action));
    if (dedup)
        bad |= a->json_set(body, "dedup_key", dedup_json(a, dedup));
    if (bad) {
        snprintf(err, errlen, "out of memory building the event");
        return HLC_RENDER_RETRY;
    }
    if (strcmp(action, "trigger"))
        return HLC_RENDER_OK; /* acknowledge and resolve name the incident */
    return build_trigger(p, ev, body, err, errlen);
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)d;
    pagerduty *p = state;
    const hlc_api *a = p->api;
    const char *action = event_action(ev_str(a, ev, "/data/status"));
    const char *dedup = ev_str(a, ev, "/dedupkey");
    if (dedup && !*dedup)
        dedup = NULL;
    if (strcmp(action, "trigger") && !dedup) {
        snprintf(err, errlen,
                 "the event is %s, so it would %s a PagerDuty incident, but "
                 "it has no dedupkey to name which one; give its source a "
                 "dedupkey (the one its trigger had)",
                 ev_str(a, ev, "/data/status"), action);
        return HLC_RENDER_FAILED;
    }
    hlc_json *body = a->json_object();
    char *text = NULL;
    size_t len = 0;
    int rc = HLC_RENDER_RETRY;
    if (!body) {
        snprintf(err, errlen, "out of memory building the event");
        goto out;
    }
    int built = build_body(p, ev, action, dedup, body, err, errlen);
    if (built) {
        rc = built;
        goto out;
    }
    if (!(text = a->json_dump(body, &len))) {
        snprintf(err, errlen, "out of memory writing the event");
        goto out;
    }
    if (len > BODY_MAX) {
        snprintf(err, errlen,
                 "the event is %zu bytes of JSON, more than the %d PagerDuty "
                 "accepts; drop large labels with the policy's redact rules",
                 len, BODY_MAX);
        rc = HLC_RENDER_FAILED;
        goto out;
    }
    if (a->request_http(req, "POST", p->enqueue_url) ||
        a->request_header(req, "Content-Type", "application/json") ||
        a->request_header(req, "Accept", "application/json") ||
        a->request_body(req, text, len)) {
        snprintf(err, errlen, "out of memory making the request");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->free(text);
    a->json_free(body);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* "HTTP 400: PagerDuty refused the event: message: error; error" from
 * {"status": "invalid event", "message": ..., "errors": [...]}. */
static void invalid_event_reason(const hlc_api *a, const hlc_response *r,
                                 hlc_outcome *out)
{
    size_t len = 0, n = 0;
    const char *text = a->response_body(r, &len);
    hlc_json *body = a->json_parse(text, len);
    const char *msg = a->json_string(a->json_get(body, "message"));
    const hlc_json *errs = a->json_get(body, "errors");
    hlcu_add_reason(out, &n, "HTTP 400: PagerDuty refused the event: %s",
                    msg ? msg : "invalid event");
    const char *sep = ": ";
    for (size_t i = 0; i < a->json_size(errs); i++) {
        const char *e = a->json_string(a->json_at(errs, i));
        if (e) {
            hlcu_add_reason(out, &n, "%s%s", sep, e);
            sep = "; ";
        }
    }
    a->json_free(body);
}

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    (void)d;
    pagerduty *p = state;
    const hlc_api *a = p->api;
    a->classify_default(r, out);
    if (a->response_error(r) != HLC_NET_NONE)
        return;
    int status = a->response_status(r);
    if (status == 400) {
        out->verdict = HLC_FAILED;
        out->retry_after_ms = -1;
        invalid_event_reason(a, r, out);
    } else if (status == 429) {
        out->verdict = HLC_RETRY;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 429: over PagerDuty's rate for this routing key; "
                 "trying again %s",
                 out->retry_after_ms >= 0 ? "after its Retry-After"
                                          : "at the policy's next delay");
    } else if (status >= 200 && status < 300) {
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d: PagerDuty accepted the event", status);
    }
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "pagerduty",
    .version = "1.0.0",
    .description = "PagerDuty Events API v2: triggers, acknowledges and "
                   "resolves incidents by dedupkey (POST "
                   "{url}/v2/enqueue, url default " DEFAULT_URL ")",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
