/* route.c - routing: which connectors a canonical event goes to. */
#include "route.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef struct {
    const hl_label_match *m;
    pcre2_code *re; /* matches / not_matches */
} label_rule;

typedef struct {
    const hl_route_cfg *cfg;
    label_rule *labels;
    size_t *to; /* connector indexes */
    size_t nto;
} route;

struct hl_router {
    const hl_config *cfg;
    route *routes;
    size_t n;
};

int hl_glob_match(const char *p, const char *t)
{
    const char *star = NULL, *resume = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            resume = t;
        } else if (*p == '?' || *p == *t) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return !*p;
}

static int compile_route(const hl_config *cfg, const hl_route_cfg *rc,
                         route *r)
{
    r->cfg = rc;
    r->labels = calloc(rc->n_labels ? rc->n_labels : 1, sizeof *r->labels);
    r->to = calloc(rc->to.n ? rc->to.n : 1, sizeof *r->to);
    if (!r->labels || !r->to)
        return HL_ENOMEM;
    for (size_t i = 0; i < rc->n_labels; i++) {
        const hl_label_match *m = &rc->labels[i];
        r->labels[i].m = m;
        if (m->op != HL_LABEL_MATCHES && m->op != HL_LABEL_NOT_MATCHES)
            continue;
        int code;
        PCRE2_SIZE off;
        r->labels[i].re = pcre2_compile((PCRE2_SPTR)m->value,
                                        PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                                        &code, &off, NULL);
        if (!r->labels[i].re)
            return HL_ECONFIG;
        pcre2_jit_compile(r->labels[i].re, PCRE2_JIT_COMPLETE);
    }
    for (size_t i = 0; i < rc->to.n; i++) {
        size_t k = 0;
        while (k < cfg->n_connectors &&
               strcmp(cfg->connectors[k].name, rc->to.v[i]))
            k++;
        if (k == cfg->n_connectors)
            return HL_ECONFIG;
        r->to[r->nto++] = k;
    }
    return 0;
}

int hl_router_create(const hl_config *cfg, hl_router **out)
{
    *out = NULL;
    hl_router *r = calloc(1, sizeof *r);
    if (!r)
        return HL_ENOMEM;
    r->cfg = cfg;
    r->routes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *r->routes);
    if (!r->routes) {
        free(r);
        return HL_ENOMEM;
    }
    r->n = cfg->n_routes;
    for (size_t i = 0; i < r->n; i++) {
        int rc = compile_route(cfg, &cfg->routes[i], &r->routes[i]);
        if (rc) {
            hl_router_destroy(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

void hl_router_destroy(hl_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        for (size_t j = 0; r->routes[i].labels && j < r->routes[i].cfg->n_labels;
             j++)
            pcre2_code_free(r->routes[i].labels[j].re);
        free(r->routes[i].labels);
        free(r->routes[i].to);
    }
    free(r->routes);
    free(r);
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* An empty list matches anything; else the value must be in it. */
static int in_list(const hl_strlist *l, const char *v, int glob)
{
    if (!l->n)
        return 1;
    for (size_t i = 0; v && i < l->n; i++)
        if (glob ? hl_glob_match(l->v[i], v) : !strcmp(l->v[i], v))
            return 1;
    return 0;
}

static int regex_hit(pcre2_code *re, const char *v)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int hit = md && pcre2_match(re, (PCRE2_SPTR)v, strlen(v), 0, 0, md,
                                NULL) >= 0;
    pcre2_match_data_free(md);
    return hit;
}

/* A missing label equals nothing and matches no pattern, so `not` and
 * `not_matches` hold for it. */
static int label_ok(const label_rule *l, json_t *labels)
{
    const char *v = json_string_value(json_object_get(labels, l->m->name));
    switch (l->m->op) {
    case HL_LABEL_EQUALS:
        return v && !strcmp(v, l->m->value);
    case HL_LABEL_NOT:
        return !v || strcmp(v, l->m->value);
    case HL_LABEL_MATCHES:
        return v && regex_hit(l->re, v);
    case HL_LABEL_NOT_MATCHES:
        return !v || !regex_hit(l->re, v);
    }
    return 0;
}

static int matches(const route *r, json_t *ev, const char *source)
{
    const hl_route_cfg *c = r->cfg;
    if (!in_list(&c->tenant, str(ev, "tenant"), 0) ||
        !in_list(&c->source, source, 0) ||
        !in_list(&c->type, str(ev, "type"), 1) ||
        !in_list(&c->severity, str(ev, "severity"), 0))
        return 0;
    json_t *labels = json_object_get(json_object_get(ev, "data"), "labels");
    for (size_t i = 0; i < c->n_labels; i++)
        if (!label_ok(&r->labels[i], labels))
            return 0;
    return 1;
}

size_t hl_route_event(const hl_router *r, json_t *event, size_t *out,
                      size_t cap, const char **route_name)
{
    /* source is "/TENANT/SOURCE". */
    const char *src = str(event, "source");
    const char *slash = src ? strrchr(src, '/') : NULL;
    const char *source = slash ? slash + 1 : NULL;
    const char *tenant = str(event, "tenant");
    size_t n = 0;
    if (route_name)
        *route_name = NULL;
    unsigned char *seen = calloc(r->cfg->n_connectors + 1, 1);
    if (!seen)
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        if (!matches(rt, event, source))
            continue;
        if (route_name && !*route_name)
            *route_name = rt->cfg->name;
        for (size_t j = 0; j < rt->nto; j++) {
            size_t k = rt->to[j];
            const char *ct = r->cfg->connectors[k].tenant;
            if (seen[k] || (ct && (!tenant || strcmp(ct, tenant))))
                continue;
            seen[k] = 1;
            if (n < cap)
                out[n] = k;
            n++;
        }
        if (!rt->cfg->cont)
            break;
    }
    free(seen);
    return n;
}
