/* jira.c - the Jira Cloud connector: an issue per dedupkey, comments on it for later events, a transition when resolved. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

#include "hlc_util.h"

#define ELLIPSIS "\xe2\x80\xa6"
#define SUMMARY_MAX 255     /* characters of fields.summary */
#define TEXT_MAX 20000      /* characters of text in a description */
#define LABEL_ITEMS_MAX 100 /* labels listed in a description */
#define LABEL_TEXT_MAX 200  /* characters of a label's name or value there */
#define JIRA_LABEL_MAX 255  /* characters of a Jira label */
#define DEDUP_HEX 12        /* hex digits of the dedup label's hash */
#define ISSUE_KEY_MAX 64
#define PENDING_MAX 1024 /* requests remembered between render and classify */
#define PENDING_STALE_MS (5 * 60 * 1000)

static const hlc_key keys[] = {
    {"project", HLC_KEY_STRING, HLC_KEY_REQUIRED, NULL, NULL,
     "the key of the project new issues go to, e.g. OPS"},
    {"issue_type", HLC_KEY_STRING, 0, "Task", NULL,
     "the name of the issue type of new issues (Task, Bug, Incident, ...)"},
    {"auth.basic", HLC_KEY_SECRET, 0, NULL, NULL,
     "email:API-token of the Atlassian account that files issues (HTTP "
     "basic authentication); give this or auth.bearer"},
    {"auth.bearer", HLC_KEY_SECRET, 0, NULL, NULL,
     "an OAuth 2.0 access token or personal access token, sent as "
     "Authorization: Bearer; give this or auth.basic"},
    {"summary", HLC_KEY_TEMPLATE, 0, "{{data.title}}", NULL,
     "the issue's summary (and the first line of each comment): a Mustache "
     "template over the canonical event, rendered without escaping and put "
     "into the body as a JSON string (quotes and newlines cannot break it); "
     "line breaks become spaces; cut to 255 characters"},
    {"description", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "the text of the issue's description and of comments, a template "
     "placed like summary (blank lines separate paragraphs); default "
     "data.text. A bullet list of the labels and a link to data.url follow "
     "it, in Atlassian Document Format"},
    {"labels", HLC_KEY_LIST, 0, NULL, NULL,
     "Jira labels put on every new issue (no spaces), besides hookline-<12 "
     "hex digits of HMAC-SHA256(key 'hookline', dedupkey)>, which marks the "
     "issue of each dedupkey"},
    {"priority_critical", HLC_KEY_STRING, 0, "Highest", NULL,
     "the priority name for severity critical; \"\" sends no priority (for "
     "projects whose create screen has none)"},
    {"priority_error", HLC_KEY_STRING, 0, "High", NULL,
     "the priority name for severity error; \"\" sends none"},
    {"priority_warning", HLC_KEY_STRING, 0, "Medium", NULL,
     "the priority name for severity warning; \"\" sends none"},
    {"priority_info", HLC_KEY_STRING, 0, "Low", NULL,
     "the priority name for severity info; \"\" sends none"},
    {"resolve_transition", HLC_KEY_STRING, 0, NULL, NULL,
     "the id of the transition that resolves an issue (GET "
     "/rest/api/3/issue/KEY/transitions lists them); with it a resolved "
     "event moves the issue through it, without it a resolved event adds a "
     "comment"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* The priority key of each of hlcu_severities. */
static const char *const prio_keys[HLCU_SEVERITIES] = {
    "priority_critical", "priority_error", "priority_warning", "priority_info"};

/* What a request rendered for a delivery does, until classify sees its
 * answer. */
enum { K_CREATE = 1, K_COMMENT, K_TRANSITION };

typedef struct {
    char id[64]; /* the delivery id */
    int kind;
    char issue[ISSUE_KEY_MAX]; /* commented on or moved; "" for create */
    char *dedup;               /* the event's dedupkey (allocated) or NULL */
    int64_t at_ms;
} pending;

typedef struct {
    const hlc_api *api;
    const hlc_instance *inst;
    const hlc_config *cfg;
    char *base;          /* url without trailing slashes */
    char *authorization; /* "Basic ..." or "Bearer ..." */
    const char *project, *issue_type, *transition;
    const char *priority[HLCU_SEVERITIES];
    hlc_template *summary, *description;
    pending *pend;
    size_t n_pend, cap_pend;
} jira;

/* ---- configuration ------------------------------------------------------- */

static void destroy(void *state)
{
    jira *j = state;
    if (!j)
        return;
    if (j->summary)
        j->api->template_free(j->summary);
    if (j->description)
        j->api->template_free(j->description);
    for (size_t i = 0; i < j->n_pend; i++)
        j->api->free(j->pend[i].dedup);
    j->api->free(j->pend);
    j->api->free(j->base);
    j->api->free(j->authorization);
    j->api->free(j);
}

static int has_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 1;
    return 0;
}

static int setup_url(jira *j, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    const char *url = a->config_string(j->cfg, "url");
    if (!url || !*url) {
        snprintf(err, errlen,
                 "url: required: the base URL of the Jira site, e.g. "
                 "https://your-domain.atlassian.net");
        return -1;
    }
    if (!hlcu_link_ok(url)) {
        snprintf(err, errlen,
                 "url: expected the http:// or https:// base URL of the "
                 "Jira site, e.g. https://your-domain.atlassian.net");
        return -1;
    }
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    if (!(j->base = a->alloc(n + 1))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(j->base, url, n);
    return 0;
}

static int setup_auth(jira *j, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    const char *basic = a->config_string(j->cfg, "auth.basic");
    const char *bearer = a->config_string(j->cfg, "auth.bearer");
    if (!basic == !bearer) {
        snprintf(err, errlen,
                 "auth: give exactly one of basic (email:API-token) and "
                 "bearer (a token)");
        return -1;
    }
    if (bearer) {
        if (!*bearer || has_space(bearer)) {
            snprintf(err, errlen,
                     "auth.bearer: expected a token without spaces or line "
                     "breaks");
            return -1;
        }
        size_t n = strlen(bearer) + sizeof "Bearer ";
        if (!(j->authorization = a->alloc(n)))
            goto oom;
        snprintf(j->authorization, n, "Bearer %s", bearer);
        return 0;
    }
    const char *colon = strchr(basic, ':');
    if (!colon || colon == basic || !colon[1]) {
        snprintf(err, errlen,
                 "auth.basic: expected email:API-token (an API token from "
                 "id.atlassian.com)");
        return -1;
    }
    size_t len = strlen(basic), cap = 4 * ((len + 2) / 3) + 1;
    if (!(j->authorization = a->alloc(cap + 6)))
        goto oom;
    memcpy(j->authorization, "Basic ", 6);
    if (a->base64(basic, len, j->authorization + 6, cap))
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int setup_fields(jira *j, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    j->project = a->config_string(j->cfg, "project");
    j->issue_type = a->config_string(j->cfg, "issue_type");
    j->transition = a->config_string(j->cfg, "resolve_transition");
    const char *p = j->project ? j->project : "";
    int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z');
    for (; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
             (*p >= '0' && *p <= '9') || *p == '_';
    if (!ok) {
        snprintf(err, errlen,
                 "project: expected a project key such as OPS (letters, "
                 "digits and _, starting with a letter)");
        return -1;
    }
    if (!j->issue_type || !*j->issue_type) {
        snprintf(err, errlen,
                 "issue_type: expected the name of an issue type, e.g. Task");
        return -1;
    }
    const char *t = j->transition;
    if (t && (!*t || strspn(t, "0123456789") != strlen(t))) {
        snprintf(err, errlen,
                 "resolve_transition: expected the transition's id, a "
                 "number such as 31 (GET /rest/api/3/issue/KEY/transitions "
                 "lists them)");
        return -1;
    }
    for (int i = 0; i < 4; i++)
        j->priority[i] = a->config_string(j->cfg, prio_keys[i]);
    return 0;
}

static int setup_labels(jira *j, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    size_t n = a->config_count(j->cfg, "labels");
    for (size_t i = 0; i < n; i++) {
        const char *l = a->config_item(j->cfg, "labels", i, NULL);
        if (!l || !*l || has_space(l) || strlen(l) > JIRA_LABEL_MAX) {
            snprintf(err, errlen,
                     "labels: item %zu: a Jira label is 1 to 255 characters "
                     "without spaces",
                     i + 1);
            return -1;
        }
    }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    jira *j = api->alloc(sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->api = api;
    j->inst = inst;
    j->cfg = cfg;
    if (setup_url(j, err, errlen) || setup_fields(j, err, errlen) ||
        setup_auth(j, err, errlen) || setup_labels(j, err, errlen) ||
        hlcu_compile_key(api, cfg, "summary", &j->summary, err, errlen) ||
        hlcu_compile_key(api, cfg, "description", &j->description, err,
                         errlen)) {
        destroy(j);
        return -1;
    }
    *state = j;
    return 0;
}

/* ---- what render sent, for classify -------------------------------------- */

static pending *find_pending(jira *j, const char *id)
{
    for (size_t i = 0; i < j->n_pend; i++)
        if (!strcmp(j->pend[i].id, id))
            return &j->pend[i];
    return NULL;
}

static void drop_pending(jira *j, pending *p)
{
    j->api->free(p->dedup);
    *p = j->pend[--j->n_pend];
}

/* Another delivery is opening the issue of this dedupkey right now. */
static const char *create_in_flight(jira *j, const char *dedup,
                                    const hlc_delivery *d)
{
    for (size_t i = 0; i < j->n_pend; i++) {
        pending *p = &j->pend[i];
        if (p->kind == K_CREATE && p->dedup && !strcmp(p->dedup, dedup) &&
            strcmp(p->id, d->delivery_id) &&
            d->now_ms - p->at_ms < PENDING_STALE_MS)
            return p->id;
    }
    return NULL;
}

/* Remember what the request of delivery d does; 0 or -1 (out of memory). */
static int remember(jira *j, const hlc_delivery *d, int kind, const char *issue,
                    const char *dedup)
{
    pending *p = find_pending(j, d->delivery_id);
    if (p)
        drop_pending(j, p);
    if (j->n_pend == PENDING_MAX) { /* the oldest was never answered */
        size_t old = 0;
        for (size_t i = 1; i < j->n_pend; i++)
            if (j->pend[i].at_ms < j->pend[old].at_ms)
                old = i;
        drop_pending(j, &j->pend[old]);
    }
    if (j->n_pend == j->cap_pend) {
        size_t cap = j->cap_pend ? 2 * j->cap_pend : 8;
        pending *v = j->api->realloc(j->pend, cap * sizeof *v);
        if (!v)
            return -1;
        j->pend = v;
        j->cap_pend = cap;
    }
    p = &j->pend[j->n_pend];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", d->delivery_id);
    snprintf(p->issue, sizeof p->issue, "%s", issue ? issue : "");
    p->kind = kind;
    p->at_ms = d->now_ms;
    if (dedup) {
        size_t n = strlen(dedup) + 1;
        if (!(p->dedup = j->api->alloc(n)))
            return -1;
        memcpy(p->dedup, dedup, n);
    }
    j->n_pend++;
    return 0;
}

/* ---- Atlassian Document Format ------------------------------------------- */

/* {"type": type} with content [] when content is set; NULL when out of
 * memory. */
static hlc_json *node(const hlc_api *a, const char *type, hlc_json **content)
{
    hlc_json *n = a->json_object();
    if (!n || a->json_set(n, "type", a->json_new_string(type))) {
        a->json_free(n);
        return NULL;
    }
    if (content) {
        *content = a->json_array();
        if (a->json_set(n, "content", *content)) {
            a->json_free(n);
            return NULL;
        }
    }
    return n;
}

/* Append a text node of s[0..n) (nothing when empty), with mark (NULL,
 * "strong", or "link" to href). */
static int add_text(const hlc_api *a, hlc_json *content, const char *s,
                    size_t n, const char *mark, const char *href)
{
    if (!n)
        return 0;
    hlc_json *t = node(a, "text", NULL);
    int bad = !t || a->json_set(t, "text", a->json_new_stringn(s, n));
    if (!bad && mark) {
        hlc_json *marks = a->json_array(), *m = node(a, mark, NULL);
        bad |= !marks || !m;
        if (!bad && href) {
            hlc_json *attrs = a->json_object();
            bad |=
                !attrs || a->json_set(attrs, "href", a->json_new_string(href));
            bad |= a->json_set(m, "attrs", attrs);
        }
        bad |= a->json_append(marks, m);
        bad |= a->json_set(t, "marks", marks);
    }
    bad |= a->json_append(content, t);
    return bad ? -1 : 0;
}

/* A paragraph of s[0..n) with hardBreaks for its line breaks. */
static int add_paragraph(const hlc_api *a, hlc_json *content, const char *s,
                         size_t n)
{
    hlc_json *inl = NULL, *p = node(a, "paragraph", &inl);
    int bad = !p;
    for (size_t i = 0; !bad && i < n;) {
        size_t l = 0;
        while (i + l < n && s[i + l] != '\n')
            l++;
        size_t keep = l && s[i + l - 1] == '\r' ? l - 1 : l;
        if (keep && a->json_size(inl))
            bad |= a->json_append(inl, node(a, "hardBreak", NULL));
        bad |= add_text(a, inl, s + i, keep, NULL, NULL);
        i += l + 1;
    }
    if (!bad && !a->json_size(inl)) {
        a->json_free(p); /* only line breaks: no paragraph */
        return 0;
    }
    return bad || a->json_append(content, p) ? -1 : 0;
}

/* Paragraphs of text, split at blank lines. */
static int add_paragraphs(const hlc_api *a, hlc_json *content, const char *text)
{
    char *cut = a->text_truncate(text, TEXT_MAX, ELLIPSIS);
    if (!cut)
        return -1;
    int bad = 0;
    for (const char *s = cut; !bad && *s;) {
        const char *end = strstr(s, "\n\n");
        const char *crlf = strstr(s, "\r\n\r\n");
        if (crlf && (!end || crlf < end))
            end = crlf;
        size_t n = end ? (size_t)(end - s) : strlen(s);
        bad |= add_paragraph(a, content, s, n);
        s += n;
        while (*s == '\r' || *s == '\n')
            s++;
    }
    a->free(cut);
    return bad ? -1 : 0;
}

/* A bullet list of "name: value" for each label. */
static int add_labels(const hlc_api *a, hlc_json *content,
                      const hlc_json *labels)
{
    size_t n = a->json_size(labels);
    if (a->json_type(labels) != HLC_JSON_OBJECT || !n)
        return 0;
    hlc_json *items = NULL, *list = node(a, "bulletList", &items);
    int bad = !list;
    for (size_t i = 0; !bad && i < n && i < LABEL_ITEMS_MAX; i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(labels, i, &v);
        const char *s = a->json_string(v);
        char *kc = a->text_truncate(k, LABEL_TEXT_MAX, ELLIPSIS);
        char *vc = a->text_truncate(s ? s : "", LABEL_TEXT_MAX, ELLIPSIS);
        hlc_json *pc = NULL, *li_content = NULL;
        hlc_json *li = node(a, "listItem", &li_content);
        hlc_json *p = node(a, "paragraph", &pc);
        bad |= !kc || !vc || !li || !p;
        if (!bad) {
            bad |= add_text(a, pc, kc, strlen(kc), "strong", NULL);
            bad |= add_text(a, pc, ": ", 2, NULL, NULL);
            bad |= add_text(a, pc, vc, strlen(vc), NULL, NULL);
            bad |= a->json_append(li_content, p);
            p = NULL;
            bad |= a->json_append(items, li);
            li = NULL;
        }
        a->json_free(p);
        a->json_free(li);
        a->free(kc);
        a->free(vc);
    }
    return bad || a->json_append(content, list) ? -1 : 0;
}

/* A paragraph linking to url. */
static int add_link(const hlc_api *a, hlc_json *content, const char *url)
{
    hlc_json *inl = NULL, *p = node(a, "paragraph", &inl);
    int bad = !p || add_text(a, inl, url, strlen(url), "link", url);
    return bad || a->json_append(content, p) ? -1 : 0;
}

/* ---- rendering ----------------------------------------------------------- */

/* Render t over ev without escaping (allocated), or NULL with err. */
static char *render_tpl(jira *j, const hlc_template *t, const char *key,
                        const hlc_json *ev, char *err, size_t errlen)
{
    char why[400] = "";
    char *s =
        j->api->template_render(t, ev, HLC_ESC_NONE, NULL, why, sizeof why);
    if (!s)
        snprintf(err, errlen, "%s: the template could not be rendered: %s", key,
                 why);
    return s;
}

/* The summary: rendered, one line, at most 255 characters (allocated). */
static char *make_summary(jira *j, const hlc_json *ev, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    char *s = j->summary ? render_tpl(j, j->summary, "summary", ev, err, errlen)
                         : NULL;
    if (j->summary && !s)
        return NULL;
    for (char *c = s; c && *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    const char *text = s && strspn(s, " ") < strlen(s) ? s : NULL;
    if (!text)
        text = hlcu_ev_str(a, ev, "/data/title");
    char *cut =
        a->text_truncate(text ? text : "hookline event", SUMMARY_MAX, ELLIPSIS);
    a->free(s);
    if (!cut)
        snprintf(err, errlen, "out of memory");
    return cut;
}

/* An ADF document: lead (a first paragraph, may be NULL), the description
 * text, the labels, the link. An hlc_render_result. */
static int make_doc(jira *j, const hlc_json *ev, const char *lead,
                    hlc_json **out, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    char *text = NULL;
    if (j->description &&
        !(text = render_tpl(j, j->description, "description", ev, err, errlen)))
        return HLC_RENDER_FAILED;
    hlc_json *content = a->json_array(), *doc = node(a, "doc", NULL);
    int bad = !doc || a->json_set(doc, "version", a->json_new_integer(1));
    if (doc && !bad)
        bad |= a->json_set(doc, "content", content);
    else
        a->json_free(content);
    if (!bad && lead)
        bad |= add_paragraph(a, content, lead, strlen(lead));
    const char *body = j->description ? text : hlcu_ev_str(a, ev, "/data/text");
    if (!bad && body)
        bad |= add_paragraphs(a, content, body);
    if (!bad)
        bad |= add_labels(a, content, a->json_pointer(ev, "/data/labels"));
    const char *url = hlcu_ev_str(a, ev, "/data/url");
    if (!bad && url)
        bad |= add_link(a, content, url);
    a->free(text);
    if (bad) {
        a->json_free(doc);
        snprintf(err, errlen, "out of memory building the document");
        return HLC_RENDER_RETRY;
    }
    *out = doc;
    return HLC_RENDER_OK;
}

/* "hookline-" and 12 hex digits of HMAC-SHA256(key "hookline", dedup). */
static int dedup_label(const hlc_api *a, const char *dedup, char *out,
                       size_t cap)
{
    char mac[16 + 64 + 1];
    if (a->sign_hmac(HLC_SHA256, HLC_ENC_HEX, "hookline-", "hookline", dedup,
                     strlen(dedup), mac, sizeof mac))
        return -1;
    snprintf(out, cap, "%.*s", 9 + DEDUP_HEX, mac);
    return 0;
}

/* {"key": value} or {"name": value} set at obj[field]. */
static int set_named(const hlc_api *a, hlc_json *obj, const char *field,
                     const char *key, const char *value)
{
    hlc_json *o = a->json_object();
    if (!o || a->json_set(o, key, a->json_new_string(value))) {
        a->json_free(o);
        return -1;
    }
    return a->json_set(obj, field, o);
}

static int set_issue_labels(jira *j, const char *dedup, hlc_json *fields)
{
    const hlc_api *a = j->api;
    hlc_json *labels = a->json_array();
    int bad = !labels;
    size_t n = a->config_count(j->cfg, "labels");
    for (size_t i = 0; !bad && i < n; i++)
        bad |= a->json_append(labels, a->json_new_string(a->config_item(
                                          j->cfg, "labels", i, NULL)));
    char label[32];
    if (!bad && dedup) {
        bad |= dedup_label(a, dedup, label, sizeof label);
        if (!bad)
            bad |= a->json_append(labels, a->json_new_string(label));
    }
    if (bad || !a->json_size(labels)) {
        a->json_free(labels);
        return bad ? -1 : 0;
    }
    return a->json_set(fields, "labels", labels);
}

/* {"fields": {...}} of a new issue; an hlc_render_result. */
static int create_body(jira *j, const hlc_json *ev, const char *dedup,
                       hlc_json *body, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    char *summary = make_summary(j, ev, err, errlen);
    if (!summary)
        return HLC_RENDER_FAILED;
    hlc_json *doc = NULL, *fields = a->json_object();
    int rc = make_doc(j, ev, NULL, &doc, err, errlen);
    if (rc)
        goto out;
    rc = HLC_RENDER_RETRY;
    int bad = !fields || a->json_set(body, "fields", fields);
    bad |= set_named(a, fields, "project", "key", j->project);
    bad |= set_named(a, fields, "issuetype", "name", j->issue_type);
    bad |= a->json_set(fields, "summary", a->json_new_string(summary));
    bad |= a->json_set(fields, "description", doc);
    bad |= set_issue_labels(j, dedup, fields);
    const char *prio = j->priority[hlcu_severity_of(a, ev)];
    if (prio && *prio)
        bad |= set_named(a, fields, "priority", "name", prio);
    if (bad) {
        snprintf(err, errlen, "out of memory building the issue");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->free(summary);
    return rc;
}

/* {"body": ADF} of a comment: "<what>: <summary>", then the description. */
static int comment_body(jira *j, const hlc_json *ev, int resolved,
                        hlc_json *body, char *err, size_t errlen)
{
    const hlc_api *a = j->api;
    char *summary = make_summary(j, ev, err, errlen);
    if (!summary)
        return HLC_RENDER_FAILED;
    const char *status = hlcu_ev_str(a, ev, "/data/status");
    const char *what = resolved ? "Resolved" : status ? status : "Update";
    size_t n = strlen(what) + strlen(summary) + 3;
    char *lead = a->alloc(n);
    hlc_json *doc = NULL;
    int rc = HLC_RENDER_RETRY;
    if (lead) {
        snprintf(lead, n, "%s: %s", what, summary);
        rc = make_doc(j, ev, lead, &doc, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory building the comment");
    }
    if (!rc && a->json_set(body, "body", doc)) {
        snprintf(err, errlen, "out of memory building the comment");
        rc = HLC_RENDER_RETRY;
    }
    a->free(lead);
    a->free(summary);
    return rc;
}

static int transition_body(jira *j, hlc_json *body)
{
    return set_named(j->api, body, "transition", "id", j->transition);
}

static int valid_issue_key(const char *k)
{
    size_t n = strlen(k), dash = strcspn(k, "-");
    if (!n || n >= ISSUE_KEY_MAX || !dash || dash + 1 >= n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        int word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                   (c >= '0' && c <= '9') || c == '_';
        if (i < dash ? !word : i > dash && (c < '0' || c > '9'))
            return 0;
    }
    return 1;
}

/* The issue the dedupkey opened, from the store (allocated), or NULL. */
static char *known_issue(jira *j, const char *dedup)
{
    char *issue = NULL;
    if (!dedup || j->api->kv_get(j->inst, dedup, &issue) || !issue)
        return NULL;
    if (valid_issue_key(issue))
        return issue;
    j->api->log(j->inst, HLC_LOG_WARN,
                "the stored issue of a dedupkey is not an issue key; opening "
                "a new issue",
                "value", issue, NULL);
    j->api->free(issue);
    return NULL;
}

static char *make_url(const hlc_api *a, const char *base, const char *issue,
                      const char *tail)
{
    size_t n = strlen(base) + strlen(issue) + strlen(tail) +
               sizeof "/rest/api/3/issue/";
    char *u = a->alloc(n);
    if (u)
        snprintf(u, n, "%s/rest/api/3/issue%s%s%s", base, *issue ? "/" : "",
                 issue, tail);
    return u;
}

/* Decide: open an issue, comment on it, or move it; fill body and *url.
 * An hlc_render_result. */
static int plan(jira *j, const hlc_json *ev, const hlc_delivery *d,
                const char *dedup, hlc_json *body, char **url, char *err,
                size_t errlen)
{
    const hlc_api *a = j->api;
    const char *status = hlcu_ev_str(a, ev, "/data/status");
    int resolved = hlcu_status_closed(status);
    char *issue = known_issue(j, dedup);
    const char *busy = !issue && dedup ? create_in_flight(j, dedup, d) : NULL;
    if (busy) {
        snprintf(err, errlen,
                 "delivery %s is opening the issue of this dedupkey; this "
                 "one waits for it so as not to open a second issue",
                 busy);
        return HLC_RENDER_RETRY;
    }
    int kind, rc;
    const char *tail;
    if (!issue) {
        kind = K_CREATE, tail = "";
        rc = create_body(j, ev, dedup, body, err, errlen);
    } else if (resolved && j->transition) {
        kind = K_TRANSITION, tail = "/transitions";
        rc = transition_body(j, body) ? HLC_RENDER_RETRY : HLC_RENDER_OK;
    } else {
        kind = K_COMMENT, tail = "/comment";
        rc = comment_body(j, ev, resolved, body, err, errlen);
    }
    if (!rc) {
        *url = make_url(a, j->base, issue ? issue : "", tail);
        if (!*url || remember(j, d, kind, issue, dedup)) {
            snprintf(err, errlen, "out of memory");
            rc = HLC_RENDER_RETRY;
        }
    }
    a->free(issue);
    return rc;
}

static int render(void *state, const hlc_json *ev, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    jira *j = state;
    const hlc_api *a = j->api;
    const char *dedup = hlcu_ev_str(a, ev, "/dedupkey");
    hlc_json *body = a->json_object();
    char *url = NULL, *text = NULL;
    size_t len = 0;
    int rc = body ? plan(j, ev, d, dedup, body, &url, err, errlen)
                  : HLC_RENDER_RETRY;
    if (rc)
        goto out;
    rc = HLC_RENDER_RETRY;
    if (!(text = a->json_dump(body, &len)) ||
        a->request_http(req, "POST", url) ||
        a->request_header(req, "Content-Type", "application/json") ||
        a->request_header(req, "Accept", "application/json") ||
        a->request_header(req, "Authorization", j->authorization) ||
        a->request_body(req, text, len)) {
        snprintf(err, errlen, "out of memory making the request");
        goto out;
    }
    rc = HLC_RENDER_OK;
out:
    a->free(text);
    a->free(url);
    a->json_free(body);
    return rc;
}

/* ---- classifying --------------------------------------------------------- */

/* What the request did, for reasons: "opening an issue in OPS", ... */
static void describe(const jira *j, const pending *p, char *out, size_t cap)
{
    if (p->kind == K_COMMENT)
        snprintf(out, cap, "the comment on %s", p->issue);
    else if (p->kind == K_TRANSITION)
        snprintf(out, cap, "transition %s of %s", j->transition, p->issue);
    else
        snprintf(out, cap, "the new issue in %s", j->project);
}

/* "HTTP 400: Jira refused <what>: message; field: error". */
static void refused(const hlc_api *a, const hlc_response *r, const char *what,
                    hlc_outcome *out)
{
    size_t len = 0, n = 0;
    const char *text = a->response_body(r, &len);
    hlc_json *body = a->json_parse(text, len);
    const hlc_json *msgs = a->json_get(body, "errorMessages");
    const hlc_json *errs = a->json_get(body, "errors");
    const char *sep = ": ";
    hlcu_add_reason(out, &n, "HTTP %d: Jira refused %s", a->response_status(r),
                    what);
    for (size_t i = 0; i < a->json_size(msgs); i++) {
        const char *m = a->json_string(a->json_at(msgs, i));
        if (m) {
            hlcu_add_reason(out, &n, "%s%s", sep, m);
            sep = "; ";
        }
    }
    for (size_t i = 0; i < a->json_size(errs); i++) {
        const hlc_json *v;
        const char *k = a->json_key_at(errs, i, &v);
        const char *m = a->json_string(v);
        if (k && m) {
            hlcu_add_reason(out, &n, "%s%s: %s", sep, k, m);
            sep = "; ";
        }
    }
    a->json_free(body);
    out->verdict = HLC_FAILED;
    out->retry_after_ms = -1;
}

/* Forget the dedupkey's issue if it is still this one. */
static void forget(jira *j, const char *dedup, const char *issue)
{
    char *have = NULL;
    if (!dedup || j->api->kv_get(j->inst, dedup, &have))
        return;
    if (have && !strcmp(have, issue) && j->api->kv_del(j->inst, dedup))
        j->api->log(j->inst, HLC_LOG_ERROR,
                    "could not forget the issue of a dedupkey", "issue", issue,
                    NULL);
    j->api->free(have);
}

/* 201 to a create: keep "dedupkey -> issue key". */
static void opened(jira *j, const hlc_response *r, const pending *p,
                   hlc_outcome *out)
{
    const hlc_api *a = j->api;
    size_t len = 0;
    const char *text = a->response_body(r, &len);
    hlc_json *body = a->json_parse(text, len);
    const char *key = a->json_string(a->json_get(body, "key"));
    if (!key || !valid_issue_key(key)) {
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d: an issue was opened, but the answer names no "
                 "issue key; later events of its dedupkey open new issues",
                 a->response_status(r));
        a->log(j->inst, HLC_LOG_WARN,
               "Jira's answer to a new issue has no issue key", NULL);
    } else {
        snprintf(out->reason, sizeof out->reason, "HTTP %d: opened %s",
                 a->response_status(r), key);
        if (p->dedup && a->kv_put(j->inst, p->dedup, key))
            a->log(j->inst, HLC_LOG_ERROR,
                   "could not store the issue of a dedupkey; its next event "
                   "opens another issue",
                   "issue", key, NULL);
    }
    a->json_free(body);
}

static void delivered(jira *j, const hlc_response *r, const pending *p,
                      hlc_outcome *out)
{
    int status = j->api->response_status(r);
    if (p->kind == K_CREATE) {
        opened(j, r, p, out);
    } else if (p->kind == K_TRANSITION) {
        forget(j, p->dedup, p->issue);
        snprintf(out->reason, sizeof out->reason,
                 "HTTP %d: moved %s through transition %s", status, p->issue,
                 j->transition);
    } else {
        snprintf(out->reason, sizeof out->reason, "HTTP %d: commented on %s",
                 status, p->issue);
    }
}

static void judge(jira *j, const hlc_response *r, const pending *p,
                  hlc_outcome *out)
{
    const hlc_api *a = j->api;
    int status = a->response_status(r);
    char what[128];
    describe(j, p, what, sizeof what);
    if (status >= 200 && status < 300) {
        delivered(j, r, p, out);
    } else if (status == 400) {
        refused(a, r, what, out);
    } else if (status == 401) {
        out->verdict = HLC_FAILED;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 401: Jira refused the credentials; check auth.basic "
                 "(email:API-token) or auth.bearer");
        a->log(j->inst, HLC_LOG_ERROR,
               "Jira refused the credentials (HTTP 401): every request fails "
               "until auth is fixed",
               NULL);
    } else if (status == 403) {
        out->verdict = HLC_FAILED;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 403: the account behind auth may not make %s; give it "
                 "the project's permissions",
                 what);
        a->log(j->inst, HLC_LOG_ERROR, "Jira forbids the account (HTTP 403)",
               "what", what, NULL);
    } else if (status == 404 && p->kind != K_CREATE) {
        forget(j, p->dedup, p->issue);
        out->verdict = HLC_RETRY;
        out->retry_after_ms = -1;
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 404: %s is gone (deleted or moved); forgot it, so the "
                 "next attempt opens a new issue",
                 p->issue);
    } else if (status == 404) {
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 404: no Jira REST API v3 at url; check that url is "
                 "the site's base URL, e.g. "
                 "https://your-domain.atlassian.net");
    } else if (status == 429) {
        snprintf(out->reason, sizeof out->reason,
                 "HTTP 429: over Jira's rate limit; trying again %s",
                 out->retry_after_ms >= 0 ? "after its Retry-After"
                                          : "at the policy's next delay");
    }
}

static void classify(void *state, const hlc_json *ev, const hlc_delivery *d,
                     const hlc_response *r, hlc_outcome *out)
{
    (void)ev;
    jira *j = state;
    const hlc_api *a = j->api;
    pending *found = find_pending(j, d->delivery_id);
    pending p = {.kind = K_CREATE};
    if (found) {
        p = *found;
        found->dedup = NULL; /* p owns it now */
        drop_pending(j, found);
    }
    a->classify_default(r, out);
    if (a->response_error(r) == HLC_NET_NONE)
        judge(j, r, &p, out);
    a->free(p.dedup);
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "jira",
    .version = "1.0.0",
    .description = "Jira Cloud REST API v3 at url (required: the site, e.g. "
                   "https://your-domain.atlassian.net): opens an issue per "
                   "dedupkey, comments on it for later events of the same "
                   "dedupkey, and moves it through resolve_transition when "
                   "resolved",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = classify,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
