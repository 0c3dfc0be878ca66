/* hello.c - an out-of-tree hookline connector: POSTs {"greeting": "..."}.
 *
 * Built against the installed SDK header only:
 *
 *     cc -std=c17 -shared $(pkg-config --cflags hookline-connector) \
 *        -o hello.so hello.c
 *
 * For every event routed to it, it renders the `greeting` Mustache template
 * over the canonical event and POSTs {"greeting": "<the text>"} as JSON to
 * the connector's `url`. The answer: 2xx delivered; 429 tried again after
 * the Retry-After the receiver asked for; 5xx tried again by the policy's
 * schedule; any other 4xx failed, with the status and the start of the
 * answer as the reason. Without an answer (timeout, refused connection),
 * hookline's own classification stands.
 */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

static const hlc_key keys[] = {
    {"greeting", HLC_KEY_TEMPLATE, 0, "Hello from hookline: {{data.title}}",
     NULL,
     "a Mustache template over the canonical event: the text sent as "
     "\"greeting\" (rendered without escaping, then JSON-encoded)"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const hlc_instance *inst;
    const char *url; /* lives as long as the configuration */
    hlc_template *greeting;
} hello;

static void destroy(void *state)
{
    hello *h = state;
    if (!h)
        return;
    if (h->greeting)
        h->api->template_free(h->greeting);
    h->api->free(h);
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err,
                  size_t errlen)
{
    hello *h = api->alloc(sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->api = api;
    h->inst = inst;
    h->url = api->config_string(cfg, "url");
    if (!h->url) {
        snprintf(err, errlen, "url is required: where to send the greetings");
        goto fail;
    }
    if (strncmp(h->url, "http://", 7) && strncmp(h->url, "https://", 8)) {
        snprintf(err, errlen, "url: expected an http:// or https:// URL");
        goto fail;
    }
    const char *greeting = api->config_string(cfg, "greeting");
    h->greeting = api->template_compile(greeting, err, errlen);
    if (!h->greeting)
        goto fail;
    *state = h;
    return 0;
fail:
    destroy(h);
    return -1;
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    hello *h = state;
    const hlc_api *a = h->api;
    (void)d;
    size_t len = 0;
    char *text = a->template_render(h->greeting, event, HLC_ESC_NONE, &len,
                                    err, errlen);
    if (!text)
        return HLC_RENDER_FAILED;
    hlc_json *body = a->json_object();
    hlc_json *value = a->json_new_stringn(text, len);
    a->free(text);
    if (!body || !value) {
        a->json_free(body);
        a->json_free(value);
        snprintf(err, errlen, value ? "out of memory"
                                    : "greeting: the text is not UTF-8");
        return value ? HLC_RENDER_RETRY : HLC_RENDER_FAILED;
    }
    if (a->json_set(body, "greeting", value)) {
        a->json_free(body);
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    size_t n = 0;
    char *json = a->json_dump(body, &n);
    a->json_free(body);
    if (!json) {
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    int rc = HLC_RENDER_OK;
    if (a->request_http(req, "POST", h->url) ||
        a->request_header(req, "Content-Type", "application/json") ||
        a->request_body(req, json, n)) {
        snprintf(err, errlen, "the request could not be made");
        rc = HLC_RENDER_RETRY;
    }
    a->free(json);
    return rc;
}

/* The first bytes of the answer, on one line, for a reason. */
static void excerpt(const hlc_api *a, const hlc_response *resp, char *out,
                    size_t cap)
{
    size_t len = 0, j = 0;
    const char *body = a->response_body(resp, &len);
    for (size_t i = 0; body && i < len && j + 1 < cap && j < 120; i++) {
        unsigned char c = (unsigned char)body[i];
        out[j++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[j] = '\0';
}

static void classify(void *state, const hlc_json *event, const hlc_delivery *d,
                     const hlc_response *resp, hlc_outcome *out)
{
    hello *h = state;
    const hlc_api *a = h->api;
    (void)event;
    (void)d;
    /* hookline's answer first: it judges transport errors and reads
     * Retry-After (seconds or an HTTP date) into retry_after_ms. */
    a->classify_default(resp, out);
    int status = a->response_status(resp);
    if (status == 0)
        return;
    char text[128];
    if (status >= 200 && status < 300) {
        out->verdict = HLC_DELIVERED;
        out->reason[0] = '\0';
    } else if (status == 429) {
        const char *after = a->response_header(resp, "Retry-After");
        out->verdict = HLC_RETRY;
        snprintf(out->reason, sizeof out->reason,
                 "the receiver is rate limiting (429); Retry-After: %s",
                 after ? after : "not given, the policy decides");
    } else if (status >= 500) {
        out->verdict = HLC_RETRY;
        excerpt(a, resp, text, sizeof text);
        snprintf(out->reason, sizeof out->reason,
                 "the receiver failed (HTTP %d): %s", status, text);
    } else if (status >= 400) {
        out->verdict = HLC_FAILED;
        out->retry_after_ms = -1;
        excerpt(a, resp, text, sizeof text);
        snprintf(out->reason, sizeof out->reason,
                 "the receiver refused the greeting (HTTP %d): %s", status,
                 text);
        char code[16];
        snprintf(code, sizeof code, "%d", status);
        a->log(h->inst, HLC_LOG_WARN, "greeting refused", "status", code,
               NULL);
    }
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "hello",
    .version = "1.0.0",
    .description = "POSTs {\"greeting\": \"...\"} made from a Mustache "
                   "template to a URL (an example of an out-of-tree "
                   "connector)",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
