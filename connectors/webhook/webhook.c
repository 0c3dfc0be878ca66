/* webhook.c - the webhook connector: the canonical event (or a template) POSTed as JSON, signed. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_SECRETS 8
#define SIG_CAP 1024

static const hlc_key keys[] = {
    {"method", HLC_KEY_STRING, 0, "POST", "POST|PUT|PATCH",
     "the HTTP method"},
    {"content_type", HLC_KEY_STRING, 0, "application/json", NULL,
     "the Content-Type of the body"},
    {"body", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "a Mustache template for the body, values JSON-escaped; default: the "
     "canonical event as JSON"},
    {"headers", HLC_KEY_MAP, 0, NULL, NULL, "extra request headers"},
    {"signing.standard_webhooks.secret", HLC_KEY_SECRET, 0, NULL, NULL,
     "a whsec_ secret: sign with Standard Webhooks (webhook-id is the "
     "delivery id)"},
    {"signing.standard_webhooks.secrets", HLC_KEY_LIST, 0, NULL, NULL,
     "several whsec_ secrets while rotating: one signature each"},
    {"signing.hmac.secret", HLC_KEY_SECRET, 0, NULL, NULL,
     "the shared secret of a GitHub-style HMAC signature header"},
    {"signing.hmac.header", HLC_KEY_STRING, 0, "X-Hub-Signature-256", NULL,
     "the header that carries the HMAC signature"},
    {"signing.hmac.algorithm", HLC_KEY_STRING, 0, "sha256",
     "sha1|sha256|sha512", "the HMAC's hash"},
    {"signing.hmac.prefix", HLC_KEY_STRING, 0, NULL, NULL,
     "text before the signature; default '<algorithm>=', \"\" for none"},
    {"signing.hmac.encoding", HLC_KEY_STRING, 0, "hex", "hex|base64",
     "how the signature is written"},
    {"auth.basic", HLC_KEY_SECRET, 0, NULL, NULL,
     "user:password for HTTP basic authentication"},
    {"auth.bearer", HLC_KEY_SECRET, 0, NULL, NULL,
     "a token sent as Authorization: Bearer"},
    {"tls.client_cert", HLC_KEY_STRING, 0, NULL, NULL,
     "a PEM client certificate for mutual TLS"},
    {"tls.client_key", HLC_KEY_STRING, 0, NULL, NULL,
     "its PEM private key (default: inside client_cert)"},
    {"tls.ca_file", HLC_KEY_STRING, 0, NULL, NULL,
     "a PEM bundle to verify the server with instead of the system's"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const hlc_config *cfg;
    const char *url, *method, *content_type;
    int json_body;
    hlc_template *body;
    const char *sw[MAX_SECRETS];
    size_t n_sw;
    const char *hmac_secret, *hmac_header, *hmac_prefix;
    int hmac_hash, hmac_enc;
    char hmac_default_prefix[16];
    char *authorization;
    const char *cert, *key, *ca;
} webhook;

static int readable(const char *path)
{
    return !path || access(path, R_OK) == 0;
}

/* A value that goes into a header must not start another one. */
static int header_safe(const char *v)
{
    return !v || !strpbrk(v, "\r\n");
}

static int setup_signing(webhook *w, char *err, size_t errlen)
{
    const hlc_api *a = w->api;
    const char *one = a->config_string(w->cfg,
                                       "signing.standard_webhooks.secret");
    if (one)
        w->sw[w->n_sw++] = one;
    size_t n = a->config_count(w->cfg, "signing.standard_webhooks.secrets");
    for (size_t i = 0; i < n; i++) {
        if (w->n_sw == MAX_SECRETS) {
            snprintf(err, errlen,
                     "signing.standard_webhooks.secrets: at most %d secrets",
                     MAX_SECRETS);
            return -1;
        }
        w->sw[w->n_sw++] = a->config_item(
            w->cfg, "signing.standard_webhooks.secrets", i, NULL);
    }
    if (a->config_has(w->cfg, "signing.standard_webhooks") && !w->n_sw) {
        snprintf(err, errlen,
                 "signing.standard_webhooks: give secret (or secrets while "
                 "rotating)");
        return -1;
    }
    char sig[SIG_CAP];
    for (size_t i = 0; i < w->n_sw; i++)
        if (a->sign_standard_webhooks(&w->sw[i], 1, "msg", 0, "", 0, sig,
                                      sizeof sig)) {
            if (one && i == 0)
                snprintf(err, errlen,
                         "signing.standard_webhooks.secret: not a Standard "
                         "Webhooks secret: expected whsec_ and base64");
            else
                snprintf(err, errlen,
                         "signing.standard_webhooks.secrets: item %zu is not "
                         "a Standard Webhooks secret: expected whsec_ and "
                         "base64",
                         i + (one ? 0 : 1));
            return -1;
        }
    if (!a->config_has(w->cfg, "signing.hmac"))
        return 0;
    w->hmac_secret = a->config_string(w->cfg, "signing.hmac.secret");
    if (!w->hmac_secret || !*w->hmac_secret) {
        snprintf(err, errlen, "signing.hmac: give secret");
        return -1;
    }
    w->hmac_header = a->config_string(w->cfg, "signing.hmac.header");
    const char *alg = a->config_string(w->cfg, "signing.hmac.algorithm");
    w->hmac_hash = !strcmp(alg, "sha1")     ? HLC_SHA1
                   : !strcmp(alg, "sha512") ? HLC_SHA512
                                            : HLC_SHA256;
    w->hmac_enc = strcmp(a->config_string(w->cfg, "signing.hmac.encoding"),
                         "base64")
                      ? HLC_ENC_HEX
                      : HLC_ENC_BASE64;
    w->hmac_prefix = a->config_string(w->cfg, "signing.hmac.prefix");
    if (!w->hmac_prefix) {
        snprintf(w->hmac_default_prefix, sizeof w->hmac_default_prefix,
                 "%s=", alg);
        w->hmac_prefix = w->hmac_default_prefix;
    }
    if (!header_safe(w->hmac_prefix)) {
        snprintf(err, errlen, "signing.hmac.prefix: a line break cannot be "
                              "sent in a header");
        return -1;
    }
    if (!*w->hmac_header || strpbrk(w->hmac_header, " \t:\r\n")) {
        snprintf(err, errlen, "signing.hmac.header: '%s' is not a header "
                              "name",
                 w->hmac_header);
        return -1;
    }
    return 0;
}

static int setup_auth(webhook *w, char *err, size_t errlen)
{
    const hlc_api *a = w->api;
    const char *basic = a->config_string(w->cfg, "auth.basic");
    const char *bearer = a->config_string(w->cfg, "auth.bearer");
    if (!header_safe(bearer)) {
        snprintf(err, errlen, "auth.bearer: a line break cannot be sent in "
                              "a header");
        return -1;
    }
    if (basic && bearer) {
        snprintf(err, errlen, "auth: give basic or bearer, not both");
        return -1;
    }
    if (bearer) {
        size_t n = strlen(bearer) + 8;
        if (!(w->authorization = a->alloc(n)))
            return -1;
        snprintf(w->authorization, n, "Bearer %s", bearer);
    } else if (basic) {
        if (!strchr(basic, ':')) {
            snprintf(err, errlen, "auth.basic: expected user:password");
            return -1;
        }
        size_t len = strlen(basic), cap = 4 * ((len + 2) / 3) + 1;
        if (!(w->authorization = a->alloc(cap + 6)))
            return -1;
        memcpy(w->authorization, "Basic ", 6);
        if (a->base64(basic, len, w->authorization + 6, cap))
            return -1;
    }
    return 0;
}

static int setup_tls(webhook *w, char *err, size_t errlen)
{
    const hlc_api *a = w->api;
    w->cert = a->config_string(w->cfg, "tls.client_cert");
    w->key = a->config_string(w->cfg, "tls.client_key");
    w->ca = a->config_string(w->cfg, "tls.ca_file");
    const char *names[] = {"tls.client_cert", "tls.client_key", "tls.ca_file"};
    const char *paths[] = {w->cert, w->key, w->ca};
    for (int i = 0; i < 3; i++)
        if (!readable(paths[i])) {
            snprintf(err, errlen, "%s: cannot read %s", names[i], paths[i]);
            return -1;
        }
    if (w->key && !w->cert) {
        snprintf(err, errlen, "tls.client_key: give tls.client_cert too");
        return -1;
    }
    return 0;
}

static void destroy(void *state)
{
    webhook *w = state;
    if (!w)
        return;
    if (w->body)
        w->api->template_free(w->body);
    w->api->free(w->authorization);
    w->api->free(w);
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err,
                  size_t errlen)
{
    (void)inst;
    webhook *w = api->alloc(sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->api = api;
    w->cfg = cfg;
    w->url = api->config_string(cfg, "url");
    w->method = api->config_string(cfg, "method");
    w->content_type = api->config_string(cfg, "content_type");
    w->json_body = !strncasecmp(w->content_type, "application/json", 16) ||
                   strstr(w->content_type, "+json") != NULL;
    const char *body = api->config_string(cfg, "body");
    if (!w->url) {
        snprintf(err, errlen, "url is required: where to send events");
        goto fail;
    }
    if (strncmp(w->url, "http://", 7) && strncmp(w->url, "https://", 8)) {
        snprintf(err, errlen, "url: expected an http:// or https:// URL");
        goto fail;
    }
    if (!header_safe(w->content_type)) {
        snprintf(err, errlen, "content_type: a line break cannot be sent in "
                              "a header");
        goto fail;
    }
    size_t nh = api->config_count(cfg, "headers");
    for (size_t i = 0; i < nh; i++) {
        const char *v, *k = api->config_item(cfg, "headers", i, &v);
        if (!header_safe(v) || !*k || strpbrk(k, " \t:\r\n")) {
            snprintf(err, errlen, "headers: '%s' is not a header a request "
                                  "can carry",
                     k);
            goto fail;
        }
    }
    if (body && !(w->body = api->template_compile(body, err, errlen)))
        goto fail;
    if (setup_signing(w, err, errlen) || setup_auth(w, err, errlen) ||
        setup_tls(w, err, errlen))
        goto fail;
    *state = w;
    return 0;
fail:
    destroy(w);
    return -1;
}

static int sign(webhook *w, const hlc_delivery *d, hlc_request *req,
                const char *body, size_t len, char *err, size_t errlen)
{
    const hlc_api *a = w->api;
    char sig[SIG_CAP];
    if (w->n_sw) {
        int64_t ts = d->now_ms / 1000;
        char tss[24];
        snprintf(tss, sizeof tss, "%lld", (long long)ts);
        if (a->sign_standard_webhooks(w->sw, w->n_sw, d->delivery_id, ts, body,
                                      len, sig, sizeof sig)) {
            snprintf(err, errlen, "Standard Webhooks signing failed");
            return HLC_RENDER_FAILED;
        }
        if (a->request_header(req, "webhook-id", d->delivery_id) ||
            a->request_header(req, "webhook-timestamp", tss) ||
            a->request_header(req, "webhook-signature", sig))
            return HLC_RENDER_RETRY;
    }
    if (w->hmac_secret) {
        if (a->sign_hmac(w->hmac_hash, w->hmac_enc, w->hmac_prefix,
                         w->hmac_secret, body, len, sig, sizeof sig)) {
            snprintf(err, errlen, "HMAC signing failed");
            return HLC_RENDER_FAILED;
        }
        if (a->request_header(req, w->hmac_header, sig))
            return HLC_RENDER_RETRY;
    }
    return HLC_RENDER_OK;
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    webhook *w = state;
    const hlc_api *a = w->api;
    size_t len = 0;
    char *body = w->body ? a->template_render(w->body, event, HLC_ESC_JSON,
                                              &len, err, errlen)
                         : a->json_dump(event, &len);
    if (!body)
        return w->body ? HLC_RENDER_FAILED : HLC_RENDER_RETRY;
    int rc = HLC_RENDER_RETRY;
    if (w->body && w->json_body) {
        hlc_json *check = a->json_parse(body, len);
        if (!check) {
            snprintf(err, errlen,
                     "the body template made text that is not JSON, and "
                     "content_type is %s",
                     w->content_type);
            rc = HLC_RENDER_FAILED;
            goto out;
        }
        a->json_free(check);
    }
    if (a->request_http(req, w->method, w->url) ||
        a->request_header(req, "Content-Type", w->content_type) ||
        a->request_body(req, body, len))
        goto out;
    if (w->authorization &&
        a->request_header(req, "Authorization", w->authorization))
        goto out;
    size_t n = a->config_count(w->cfg, "headers");
    for (size_t i = 0; i < n; i++) {
        const char *v, *k = a->config_item(w->cfg, "headers", i, &v);
        if (a->request_header(req, k, v ? v : "")) {
            snprintf(err, errlen, "headers.%s: not a valid header", k);
            rc = HLC_RENDER_FAILED;
            goto out;
        }
    }
    if ((w->cert || w->ca) && a->request_tls(req, w->cert, w->key, w->ca))
        goto out;
    rc = sign(w, d, req, body, len, err, errlen);
out:
    a->free(body);
    return rc;
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "webhook",
    .version = "1.0.0",
    .description = "POSTs the canonical event, or a Mustache body, to any "
                   "URL; Standard Webhooks or HMAC signatures, basic or "
                   "bearer auth, mutual TLS",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = NULL,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
