/* map.c - source mappings: schemas/sources/<kind>.yaml turn a stored webhook into canonical events. */
#include "map.h"

#include "buf.h"
#include "err.h"
#include "event.h"
#include "keypath.h"
#include "template.h"
#include "ydoc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- compiled specs -------------------------------------------------------- */

typedef enum {
    S_TEMPLATE, /* "text {{item.x}}" */
    S_POINTER,  /* {pointer: /a/b, from: item|body|headers} */
    S_HEADER,   /* {header: X-Name} */
    S_VALUE,    /* {value: literal} */
    S_REGEX,    /* {regex: RE, in: spec, group: N|name} */
    S_LOOKUP,   /* {lookup: {k: v}, in: spec, default: spec} */
    S_FIRST,    /* {first: [spec, ...]}: the first that is not empty */
    S_HASH,     /* {hash: spec}: hex digest of its canonical JSON */
    S_RULES,    /* {rules: [{when: cond(s), value: spec}], default: spec} */
    S_LOWER,    /* {lower: spec} */
} skind;

typedef enum { FROM_ITEM, FROM_BODY, FROM_HEADERS } sfrom;
typedef enum { C_EQUALS, C_IN, C_MATCHES, C_EXISTS } cop;

typedef struct spec spec;
typedef struct cond cond;

typedef struct {
    cond *conds;
    size_t n;
    spec *value;
} rule;

struct spec {
    skind kind;
    sfrom from;
    char *text;       /* pointer, header name */
    json_t *value;    /* literal, lookup table */
    hl_template *tpl;
    pcre2_code *re;
    int group;        /* capture number, or -1 for a name */
    char *group_name;
    spec *in, *dflt;
    spec **list;
    size_t n;
    rule *rules;
    size_t nrules;
};

struct cond {
    spec *subject;
    cop op;
    json_t *arg;
    pcre2_code *re;
};

/* The canonical fields a mapping computes, in the order events are built. */
static const char *const field_names[] = {
    "type",   "subject", "time", "severity", "status",
    "title",  "text",    "url",  "dedupkey", NULL};
enum { F_TYPE, F_SUBJECT, F_TIME, F_SEVERITY, F_STATUS, F_TITLE, F_TEXT, F_URL,
       F_DEDUPKEY, F_COUNT };

struct hl_mapping {
    char *kind;
    spec *split;
    spec *fields[F_COUNT];
    spec *labels_copy;
    char **label_names;
    spec **label_specs;
    size_t nlabels;
};

struct hl_mappings {
    hl_mapping **v;
    size_t n;
};

static void spec_free(spec *s);

static void rule_free(rule *r)
{
    for (size_t i = 0; i < r->n; i++) {
        spec_free(r->conds[i].subject);
        json_decref(r->conds[i].arg);
        pcre2_code_free(r->conds[i].re);
    }
    free(r->conds);
    spec_free(r->value);
}

static void spec_free(spec *s)
{
    if (!s)
        return;
    free(s->text);
    json_decref(s->value);
    if (s->tpl)
        hl_template_destroy(s->tpl);
    pcre2_code_free(s->re);
    free(s->group_name);
    spec_free(s->in);
    spec_free(s->dflt);
    for (size_t i = 0; i < s->n; i++)
        spec_free(s->list[i]);
    free(s->list);
    for (size_t i = 0; i < s->nrules; i++)
        rule_free(&s->rules[i]);
    free(s->rules);
    free(s);
}

static void mapping_free(hl_mapping *m)
{
    if (!m)
        return;
    free(m->kind);
    spec_free(m->split);
    for (int i = 0; i < F_COUNT; i++)
        spec_free(m->fields[i]);
    spec_free(m->labels_copy);
    for (size_t i = 0; i < m->nlabels; i++) {
        free(m->label_names[i]);
        spec_free(m->label_specs[i]);
    }
    free(m->label_names);
    free(m->label_specs);
    free(m);
}

/* ---- loading ----------------------------------------------------------------- */

typedef struct {
    hl_diags *d;
    const char *file;
    hl_keypath kp;
    int errors;
} ld_t;

__attribute__((format(printf, 3, 4))) static void
lerr(ld_t *ld, const hl_ynode *n, const char *fmt, ...)
{
    char buf[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hl_diags_add(ld->d, HL_DIAG_ERROR, ld->file, n ? n->line : 0,
                 n ? n->col : 0, ld->kp.s, "%s", buf);
    ld->errors++;
}

#define push(ld, ...) hl_keypath_push(&(ld)->kp, __VA_ARGS__)
#define push_key(ld, key) hl_keypath_key(&(ld)->kp, key)
#define pop(ld, mark) hl_keypath_pop(&(ld)->kp, mark)

static json_t *node_json(const hl_ynode *n)
{
    if (hl_ynode_is_null(n))
        return json_null();
    if (n->type == HL_YSCALAR) {
        const char *s = n->u.scalar.str;
        if (n->u.scalar.plain) {
            if (!strcmp(s, "true"))
                return json_true();
            if (!strcmp(s, "false"))
                return json_false();
            char *end;
            long long i = strtoll(s, &end, 10);
            if (*s && !*end)
                return json_integer(i);
            double dv = strtod(s, &end);
            if (*s && !*end)
                return json_real(dv);
        }
        return json_string(s);
    }
    if (n->type == HL_YSEQ) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n->u.seq.n; i++)
            json_array_append_new(a, node_json(n->u.seq.items[i]));
        return a;
    }
    json_t *o = json_object();
    for (size_t i = 0; o && i < n->u.map.n; i++)
        json_object_set_new(o, n->u.map.pairs[i].key->u.scalar.str,
                            node_json(n->u.map.pairs[i].value));
    return o;
}

static pcre2_code *compile_re(ld_t *ld, const hl_ynode *n)
{
    if (n->type != HL_YSCALAR) {
        lerr(ld, n, "expected a regular expression");
        return NULL;
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)n->u.scalar.str,
                                   PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
                                   &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(code, msg, sizeof msg);
        lerr(ld, n, "invalid regular expression at offset %zu: %s",
             (size_t)off, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* a speed-up when there */
    return re;
}

static spec *compile_spec(ld_t *ld, const hl_ynode *n);

static spec *sub(ld_t *ld, const hl_ynode *map, const char *key, int required)
{
    const hl_ynode *v = hl_ynode_get(map, key);
    if (!v) {
        if (required)
            lerr(ld, map, "missing required key '%s'", key);
        return NULL;
    }
    size_t mark = push_key(ld, key);
    spec *s = compile_spec(ld, v);
    pop(ld, mark);
    return s;
}

static const char *const operators[] = {"template", "pointer", "header",
                                        "value",    "regex",   "lookup",
                                        "first",    "hash",    "rules",
                                        "lower",    NULL};

/* Keys a spec of each operator may also have. */
static int allowed_key(skind k, const char *key)
{
    switch (k) {
    case S_POINTER:
        return !strcmp(key, "from");
    case S_REGEX:
        return !strcmp(key, "in") || !strcmp(key, "group");
    case S_LOOKUP:
        return !strcmp(key, "in") || !strcmp(key, "default");
    case S_RULES:
        return !strcmp(key, "default");
    default:
        return 0;
    }
}

static int compile_cond(ld_t *ld, const hl_ynode *n, cond *c);

static int compile_rules(ld_t *ld, const hl_ynode *n, spec *s)
{
    if (n->type != HL_YSEQ) {
        lerr(ld, n, "expected a list of {when, value} rules");
        return -1;
    }
    s->rules = calloc(n->u.seq.n ? n->u.seq.n : 1, sizeof *s->rules);
    if (!s->rules)
        return -1;
    s->nrules = n->u.seq.n;
    for (size_t i = 0; i < n->u.seq.n; i++) {
        const hl_ynode *r = n->u.seq.items[i];
        size_t mark = push(ld, "[%zu]", i);
        const hl_ynode *w = hl_ynode_get(r, "when");
        if (r->type != HL_YMAP || !w) {
            lerr(ld, r, "a rule is a mapping with 'when' and 'value'");
        } else {
            size_t nc = w->type == HL_YSEQ ? w->u.seq.n : 1;
            s->rules[i].conds = calloc(nc ? nc : 1, sizeof(cond));
            s->rules[i].n = s->rules[i].conds ? nc : 0;
            size_t m2 = push_key(ld, "when");
            for (size_t j = 0; j < s->rules[i].n; j++)
                compile_cond(ld, w->type == HL_YSEQ ? w->u.seq.items[j] : w,
                             &s->rules[i].conds[j]);
            pop(ld, m2);
            s->rules[i].value = sub(ld, r, "value", 1);
            for (size_t k = 0; k < r->u.map.n; k++) {
                const char *key = r->u.map.pairs[k].key->u.scalar.str;
                if (strcmp(key, "when") && strcmp(key, "value"))
                    lerr(ld, r->u.map.pairs[k].key,
                         "unknown key '%s' in a rule; expected when, value",
                         key);
            }
        }
        pop(ld, mark);
    }
    return 0;
}

static int compile_operator(ld_t *ld, const hl_ynode *n, spec *s,
                            const char *op, const hl_ynode *arg)
{
    size_t mark = push_key(ld, op);
    int ok = 1;
    if (s->kind == S_POINTER || s->kind == S_HEADER) {
        if (arg->type != HL_YSCALAR ||
            (s->kind == S_POINTER && arg->u.scalar.str[0] &&
             arg->u.scalar.str[0] != '/')) {
            lerr(ld, arg,
                 s->kind == S_POINTER
                     ? "expected a JSON Pointer such as /alerts/0/labels"
                     : "expected a header name");
            ok = 0;
        } else {
            s->text = strdup(arg->u.scalar.str);
        }
    } else if (s->kind == S_TEMPLATE) {
        char err[300];
        if (arg->type != HL_YSCALAR) {
            lerr(ld, arg, "expected a template string");
            ok = 0;
        } else if (hl_template_compile(arg->u.scalar.str, arg->u.scalar.len,
                                       &s->tpl, err, sizeof err)) {
            lerr(ld, arg, "template: %s", err);
            ok = 0;
        }
    } else if (s->kind == S_VALUE) {
        s->value = node_json(arg);
    } else if (s->kind == S_REGEX) {
        ok = (s->re = compile_re(ld, arg)) != NULL;
    } else if (s->kind == S_LOOKUP) {
        if (arg->type != HL_YMAP) {
            lerr(ld, arg, "expected a mapping of values to results");
            ok = 0;
        } else {
            s->value = node_json(arg);
        }
    } else if (s->kind == S_FIRST) {
        if (arg->type != HL_YSEQ || !arg->u.seq.n) {
            lerr(ld, arg, "expected a non-empty list of specs");
            ok = 0;
        } else {
            s->list = calloc(arg->u.seq.n, sizeof *s->list);
            s->n = s->list ? arg->u.seq.n : 0;
            for (size_t i = 0; i < s->n; i++) {
                size_t m2 = push(ld, "[%zu]", i);
                s->list[i] = compile_spec(ld, arg->u.seq.items[i]);
                pop(ld, m2);
            }
        }
    } else if (s->kind == S_HASH || s->kind == S_LOWER) {
        s->in = compile_spec(ld, arg);
    } else if (s->kind == S_RULES) {
        compile_rules(ld, arg, s);
    }
    pop(ld, mark);
    (void)n;
    return ok;
}

static void compile_extras(ld_t *ld, const hl_ynode *n, spec *s,
                           const char *op)
{
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key;
        const hl_ynode *v = n->u.map.pairs[i].value;
        const char *key = k->u.scalar.str;
        if (!strcmp(key, op))
            continue;
        if (!allowed_key(s->kind, key)) {
            lerr(ld, k, "unknown key '%s' beside '%s'", key, op);
            continue;
        }
        size_t mark = push_key(ld, key);
        if (!strcmp(key, "from")) {
            const char *f = v->type == HL_YSCALAR ? v->u.scalar.str : "";
            if (!strcmp(f, "item"))
                s->from = FROM_ITEM;
            else if (!strcmp(f, "body"))
                s->from = FROM_BODY;
            else if (!strcmp(f, "headers"))
                s->from = FROM_HEADERS;
            else
                lerr(ld, v, "expected item, body or headers");
        } else if (!strcmp(key, "group")) {
            char *end;
            long g = v->type == HL_YSCALAR ? strtol(v->u.scalar.str, &end, 10)
                                           : -1;
            if (v->type == HL_YSCALAR && *v->u.scalar.str && !*end && g >= 0)
                s->group = (int)g;
            else if (v->type == HL_YSCALAR) {
                s->group = -1;
                s->group_name = strdup(v->u.scalar.str);
            } else
                lerr(ld, v, "expected a group number or name");
        } else if (!strcmp(key, "in")) {
            s->in = compile_spec(ld, v);
        } else if (!strcmp(key, "default")) {
            s->dflt = compile_spec(ld, v);
        }
        pop(ld, mark);
    }
    if ((s->kind == S_REGEX || s->kind == S_LOOKUP) && !s->in)
        lerr(ld, n, "'%s' needs 'in': the value to look at", op);
}

/* A spec: a template string, or a mapping with exactly one operator. */
static spec *compile_spec(ld_t *ld, const hl_ynode *n)
{
    spec *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (n->type == HL_YSCALAR) {
        s->kind = S_TEMPLATE;
        compile_operator(ld, n, s, "template", n);
        return s;
    }
    if (n->type != HL_YMAP) {
        lerr(ld, n, "expected a template string or a mapping with one of: "
                    "template, pointer, header, value, regex, lookup, first, "
                    "hash, rules, lower");
        return s;
    }
    const char *op = NULL;
    const hl_ynode *arg = NULL;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const char *key = n->u.map.pairs[i].key->u.scalar.str;
        for (int k = 0; operators[k]; k++) {
            if (strcmp(key, operators[k]))
                continue;
            if (op) {
                lerr(ld, n->u.map.pairs[i].key,
                     "'%s' and '%s' together; a spec has one operator", op,
                     key);
                return s;
            }
            op = key;
            s->kind = (skind)k;
            arg = n->u.map.pairs[i].value;
        }
    }
    if (!op) {
        lerr(ld, n, "a spec needs one of: template, pointer, header, value, "
                    "regex, lookup, first, hash, rules, lower");
        return s;
    }
    compile_operator(ld, n, s, op, arg);
    compile_extras(ld, n, s, op);
    return s;
}

static int compile_cond(ld_t *ld, const hl_ynode *n, cond *c)
{
    static const char *const ops[] = {"equals", "in", "matches", "exists",
                                      NULL};
    if (n->type != HL_YMAP) {
        lerr(ld, n, "a condition is a mapping: a spec and one of equals, in, "
                    "matches, exists");
        return -1;
    }
    /* The comparison is taken out; what remains is the spec. `in` is the
     * comparison only with a list: beside regex or lookup it names their
     * input. */
    const hl_ynode *arg = NULL;
    int found = -1;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *v = n->u.map.pairs[i].value;
        for (int k = 0; ops[k]; k++) {
            if (strcmp(n->u.map.pairs[i].key->u.scalar.str, ops[k]) ||
                (k == C_IN && v->type != HL_YSEQ))
                continue;
            if (found >= 0) {
                lerr(ld, n->u.map.pairs[i].key,
                     "a condition has one comparison; '%s' and '%s' are two",
                     ops[found], ops[k]);
                return -1;
            }
            found = k;
            arg = v;
        }
    }
    if (found < 0) {
        lerr(ld, n, "a condition needs one of equals, in (a list), matches, "
                    "exists");
        return -1;
    }
    c->op = (cop)found;
    hl_ynode copy = *n;
    hl_ypair pairs[16];
    size_t np = 0;
    for (size_t i = 0; i < n->u.map.n && np < 16; i++)
        if (n->u.map.pairs[i].value != arg)
            pairs[np++] = n->u.map.pairs[i];
    copy.u.map.pairs = pairs;
    copy.u.map.n = np;
    c->subject = compile_spec(ld, &copy);
    size_t mark = push_key(ld, ops[found]);
    if (c->op == C_MATCHES)
        c->re = compile_re(ld, arg);
    else if (c->op == C_IN && arg->type != HL_YSEQ)
        lerr(ld, arg, "expected a list of values");
    else
        c->arg = node_json(arg);
    pop(ld, mark);
    return 0;
}

static void compile_labels(ld_t *ld, const hl_ynode *n, hl_mapping *m)
{
    if (n->type != HL_YMAP) {
        lerr(ld, n, "expected a mapping with 'copy' and/or 'set'");
        return;
    }
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key, *v = n->u.map.pairs[i].value;
        size_t mark = push_key(ld, k->u.scalar.str);
        if (!strcmp(k->u.scalar.str, "copy")) {
            m->labels_copy = compile_spec(ld, v);
        } else if (!strcmp(k->u.scalar.str, "set") && v->type == HL_YMAP) {
            m->label_names = calloc(v->u.map.n + 1, sizeof(char *));
            m->label_specs = calloc(v->u.map.n + 1, sizeof(spec *));
            for (size_t j = 0; m->label_names && m->label_specs &&
                               j < v->u.map.n;
                 j++) {
                const hl_ynode *lk = v->u.map.pairs[j].key;
                size_t m2 = push_key(ld, lk->u.scalar.str);
                m->label_names[j] = strdup(lk->u.scalar.str);
                m->label_specs[j] = compile_spec(ld, v->u.map.pairs[j].value);
                m->nlabels++;
                pop(ld, m2);
            }
        } else {
            lerr(ld, k, "unknown key '%s' in labels; expected copy, set "
                        "(a mapping of label name to spec)",
                 k->u.scalar.str);
        }
        pop(ld, mark);
    }
}

static void compile_event(ld_t *ld, const hl_ynode *n, hl_mapping *m)
{
    if (n->type != HL_YMAP) {
        lerr(ld, n, "expected a mapping of canonical fields to specs");
        return;
    }
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key, *v = n->u.map.pairs[i].value;
        const char *key = k->u.scalar.str;
        size_t mark = push_key(ld, key);
        int f = 0;
        while (field_names[f] && strcmp(field_names[f], key))
            f++;
        if (field_names[f])
            m->fields[f] = compile_spec(ld, v);
        else if (!strcmp(key, "labels"))
            compile_labels(ld, v, m);
        else
            lerr(ld, k,
                 "unknown field '%s'; expected type, subject, time, severity, "
                 "status, title, text, url, dedupkey, labels",
                 key);
        pop(ld, mark);
    }
    if (!m->fields[F_TYPE])
        lerr(ld, n, "missing required field 'type'");
    if (!m->fields[F_TITLE])
        lerr(ld, n, "missing required field 'title'");
}

static hl_mapping *compile_file(ld_t *ld, const hl_ynode *root,
                                const char *kind)
{
    hl_mapping *m = calloc(1, sizeof *m);
    if (!m || !(m->kind = strdup(kind))) {
        mapping_free(m);
        return NULL;
    }
    if (!root || root->type != HL_YMAP) {
        lerr(ld, root, "expected a mapping with kind, split and event");
        return m;
    }
    for (size_t i = 0; i < root->u.map.n; i++) {
        const hl_ynode *k = root->u.map.pairs[i].key;
        const hl_ynode *v = root->u.map.pairs[i].value;
        const char *key = k->u.scalar.str;
        size_t mark = push_key(ld, key);
        if (!strcmp(key, "kind")) {
            if (v->type != HL_YSCALAR || strcmp(v->u.scalar.str, kind))
                lerr(ld, v, "kind must be '%s', the file's name", kind);
        } else if (!strcmp(key, "split")) {
            m->split = compile_spec(ld, v);
        } else if (!strcmp(key, "event")) {
            compile_event(ld, v, m);
        } else if (strcmp(key, "description")) {
            lerr(ld, k, "unknown key '%s'; expected kind, description, split, "
                        "event",
                 key);
        }
        pop(ld, mark);
    }
    if (!hl_ynode_get(root, "event"))
        lerr(ld, root, "missing required key 'event'");
    return m;
}

static int load_one(const char *dir, const char *name, hl_diags *d,
                    hl_mapping **out)
{
    char path[4096], kind[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t klen = strlen(name) - 5;
    if (klen >= sizeof kind)
        klen = sizeof kind - 1;
    memcpy(kind, name, klen);
    kind[klen] = 0;
    hl_ydoc *doc;
    int rc = hl_ydoc_load_file(path, 0, d, &doc);
    if (!doc)
        return rc ? rc : HL_ECONFIG;
    ld_t ld = {.d = d, .file = path};
    *out = compile_file(&ld, hl_ydoc_root(doc), kind);
    hl_ydoc_destroy(doc);
    if (!*out)
        return HL_ENOMEM;
    if (ld.errors) {
        mapping_free(*out);
        *out = NULL;
        return HL_ECONFIG;
    }
    return 0;
}

static int by_kind(const void *a, const void *b)
{
    return strcmp((*(hl_mapping *const *)a)->kind,
                  (*(hl_mapping *const *)b)->kind);
}

int hl_mappings_load(const char *dir, hl_diags *d, hl_mappings **out)
{
    *out = NULL;
    DIR *dh = opendir(dir);
    if (!dh) {
        int err = -errno;
        hl_diags_add(d, HL_DIAG_ERROR, dir, 0, 0, NULL,
                     "cannot read the source mappings folder: %s",
                     hl_strerror(err));
        return err;
    }
    hl_mappings *ms = calloc(1, sizeof *ms);
    int rc = ms ? 0 : HL_ENOMEM;
    struct dirent *de;
    while (!rc && (de = readdir(dh))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".yaml") ||
            de->d_name[0] == '.')
            continue;
        hl_mapping *m = NULL;
        if (load_one(dir, de->d_name, d, &m)) {
            if (!m && d->errors == 0)
                rc = HL_ENOMEM;
            continue;
        }
        hl_mapping **v = realloc(ms->v, (ms->n + 1) * sizeof *v);
        if (!v) {
            mapping_free(m);
            rc = HL_ENOMEM;
            break;
        }
        ms->v = v;
        ms->v[ms->n++] = m;
    }
    closedir(dh);
    if (!rc && d->errors)
        rc = HL_ECONFIG;
    if (rc) {
        hl_mappings_destroy(ms);
        return rc;
    }
    qsort(ms->v, ms->n, sizeof *ms->v, by_kind);
    *out = ms;
    return 0;
}

const hl_mapping *hl_mappings_get(const hl_mappings *m, const char *kind)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (!strcmp(m->v[i]->kind, kind))
            return m->v[i];
    return NULL;
}

size_t hl_mappings_count(const hl_mappings *m)
{
    return m ? m->n : 0;
}

void hl_mappings_destroy(hl_mappings *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        mapping_free(m->v[i]);
    free(m->v);
    free(m);
}

/* ---- evaluation ---------------------------------------------------------------- */

typedef struct {
    json_t *ctx; /* {"body", "item", "headers", "source", "index"} */
    json_t *body, *item, *headers;
    char *why;
    size_t whylen;
    int failed;
} evalctx;

__attribute__((format(printf, 2, 3))) static void efail(evalctx *ec,
                                                         const char *fmt, ...)
{
    if (ec->failed)
        return;
    ec->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ec->why, ec->whylen, fmt, ap);
    va_end(ap);
}

/* A value as text: strings, numbers and booleans; NULL for the rest. */
static char *to_text(const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strndup(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return strdup(buf);
    case JSON_REAL:
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        for (int p = 1; p < 17; p++) {
            char shorter[64];
            snprintf(shorter, sizeof shorter, "%.*g", p, json_real_value(v));
            if (strtod(shorter, NULL) == json_real_value(v)) {
                memcpy(buf, shorter, strlen(shorter) + 1);
                break;
            }
        }
        return strdup(buf);
    case JSON_TRUE:
        return strdup("true");
    case JSON_FALSE:
        return strdup("false");
    default:
        return NULL;
    }
}

static int empty(const json_t *v)
{
    return !v || json_is_null(v) ||
           (json_is_string(v) && json_string_length(v) == 0);
}

/* RFC 6901: "/a/b~1c/0". */
static json_t *resolve(json_t *root, const char *ptr)
{
    json_t *cur = root;
    const char *p = ptr;
    while (cur && *p == '/') {
        p++;
        char tok[512];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        tok[n] = 0;
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            int canonical = isdigit((unsigned char)*tok) &&
                            (tok[0] != '0' || !tok[1]); /* no leading 0 */
            cur = canonical && !*end ? json_array_get(cur, i) : NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

static json_t *eval(evalctx *ec, const spec *s);

static json_t *eval_template(evalctx *ec, const spec *s)
{
    char *out, err[300];
    size_t len;
    if (hl_template_render(s->tpl, ec->ctx, NULL, HL_ESC_NONE, &out, &len,
                           err, sizeof err)) {
        efail(ec, "template: %s", err);
        return NULL;
    }
    json_t *v = json_stringn_nocheck(out, len);
    free(out);
    return v;
}

static json_t *eval_regex(evalctx *ec, const spec *s)
{
    json_t *v = eval(ec, s->in);
    char *text = v ? to_text(v) : NULL;
    json_decref(v);
    if (!text)
        return NULL;
    json_t *out = NULL;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(s->re, NULL);
    if (md && pcre2_match(s->re, (PCRE2_SPTR)text, strlen(text), 0, 0, md,
                          NULL) >= 0) {
        PCRE2_UCHAR *got;
        PCRE2_SIZE glen;
        int rc = s->group_name
                     ? pcre2_substring_get_byname(md, (PCRE2_SPTR)s->group_name,
                                                  &got, &glen)
                     : pcre2_substring_get_bynumber(md, (uint32_t)s->group,
                                                    &got, &glen);
        if (rc == 0) {
            out = json_stringn((const char *)got, glen);
            pcre2_substring_free(got);
        }
    }
    pcre2_match_data_free(md);
    free(text);
    return out;
}

static json_t *eval_lookup(evalctx *ec, const spec *s)
{
    json_t *v = eval(ec, s->in);
    char *key = v ? to_text(v) : NULL;
    json_decref(v);
    json_t *hit = key ? json_object_get(s->value, key) : NULL;
    free(key);
    if (hit)
        return json_incref(hit);
    return s->dflt ? eval(ec, s->dflt) : NULL;
}

static json_t *eval_hash(evalctx *ec, const spec *s)
{
    json_t *v = eval(ec, s->in);
    if (empty(v)) {
        json_decref(v);
        return NULL;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
                                   JSON_ENCODE_ANY);
    json_decref(v);
    if (!text)
        return NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
    free(text);
    if (!ok)
        return NULL;
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return json_string(hex);
}

static int text_equal(const json_t *a, const json_t *b)
{
    char *x = to_text(a), *y = to_text(b);
    int eq = x && y && !strcmp(x, y);
    free(x);
    free(y);
    return eq;
}

static int holds(evalctx *ec, const cond *c)
{
    json_t *v = eval(ec, c->subject);
    int yes = 0;
    if (c->op == C_EXISTS) {
        yes = !empty(v) == json_is_true(c->arg);
    } else if (c->op == C_EQUALS) {
        yes = v && text_equal(v, c->arg);
    } else if (c->op == C_IN) {
        size_t i;
        json_t *x;
        json_array_foreach(c->arg, i, x) yes |= v && text_equal(v, x);
    } else if (c->op == C_MATCHES && v) {
        char *t = to_text(v);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->re, NULL);
        yes = t && md &&
              pcre2_match(c->re, (PCRE2_SPTR)t, strlen(t), 0, 0, md, NULL) >= 0;
        pcre2_match_data_free(md);
        free(t);
    }
    json_decref(v);
    return yes;
}

static json_t *eval_rules(evalctx *ec, const spec *s)
{
    for (size_t i = 0; i < s->nrules; i++) {
        int all = 1;
        for (size_t j = 0; all && j < s->rules[i].n; j++)
            all = holds(ec, &s->rules[i].conds[j]);
        if (all)
            return eval(ec, s->rules[i].value);
    }
    return s->dflt ? eval(ec, s->dflt) : NULL;
}

/* A new reference, or NULL when the value is absent. */
static json_t *eval(evalctx *ec, const spec *s)
{
    if (!s || ec->failed)
        return NULL;
    json_t *root;
    switch (s->kind) {
    case S_TEMPLATE:
        return eval_template(ec, s);
    case S_POINTER:
        root = s->from == FROM_BODY      ? ec->body
               : s->from == FROM_HEADERS ? ec->headers
                                         : ec->item;
        root = resolve(root, s->text);
        return root ? json_incref(root) : NULL;
    case S_HEADER: {
        char name[256];
        snprintf(name, sizeof name, "%s", s->text);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_t *h = json_object_get(ec->headers, name);
        return h ? json_incref(h) : NULL;
    }
    case S_VALUE:
        return json_incref(s->value);
    case S_REGEX:
        return eval_regex(ec, s);
    case S_LOOKUP:
        return eval_lookup(ec, s);
    case S_FIRST:
        for (size_t i = 0; i < s->n; i++) {
            json_t *v = eval(ec, s->list[i]);
            if (!empty(v))
                return v;
            json_decref(v);
        }
        return NULL;
    case S_HASH:
        return eval_hash(ec, s);
    case S_RULES:
        return eval_rules(ec, s);
    case S_LOWER: {
        json_t *v = eval(ec, s->in);
        char *t = v ? to_text(v) : NULL;
        json_decref(v);
        if (!t)
            return NULL;
        for (char *p = t; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_t *out = json_string(t);
        free(t);
        return out;
    }
    }
    return NULL;
}

/* ---- canonical events ------------------------------------------------------------ */

/* A field's text, or NULL when absent or not text. */
static char *field_text(evalctx *ec, const spec *s)
{
    json_t *v = eval(ec, s);
    char *t = empty(v) ? NULL : to_text(v);
    json_decref(v);
    return t;
}

/* Types read "alert.firing" or "message": lower case [a-z0-9_] words joined
 * by dots. An empty type becomes KIND.event, never a silent drop. */
static char *clean_type(const char *in, const char *kind)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    int last_dot = 1;
    for (const char *p = in; *p; p++) {
        char ch = (char)tolower((unsigned char)*p);
        if (ch == '.') {
            if (!last_dot)
                hl_buf_put(&b, ".", 1);
            last_dot = 1;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '_')
            ch = '_';
        hl_buf_put(&b, &ch, 1);
        last_dot = 0;
    }
    while (b.len && b.p[b.len - 1] == '.')
        b.p[--b.len] = 0;
    if (!b.len) {
        hl_buf_puts(&b, kind);
        hl_buf_puts(&b, ".event");
    }
    return hl_buf_take(&b, NULL);
}

static void format_ms(int64_t ms, char out[40])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}

/* RFC 3339 text as given; epoch seconds or milliseconds converted; else the
 * time hookline received the webhook. */
static json_t *event_time(evalctx *ec, const spec *s, int64_t received_ms)
{
    char buf[40];
    json_t *v = eval(ec, s);
    if (json_is_string(v) && hl_event_time_valid(json_string_value(v)))
        return v;
    double num = 0;
    if (json_is_number(v))
        num = json_number_value(v);
    else if (json_is_string(v)) {
        char *end;
        num = strtod(json_string_value(v), &end);
        if (*end)
            num = 0;
    }
    json_decref(v);
    if (num > 1e8 && num < 1e14)
        format_ms((int64_t)(num < 1e11 ? num * 1000 : num), buf);
    else
        format_ms(received_ms, buf);
    return json_string(buf);
}

static void set_text(json_t *obj, const char *key, char *text)
{
    if (text)
        json_object_set_new(obj, key, json_string(text));
    free(text);
}

static json_t *event_labels(evalctx *ec, const hl_mapping *m,
                            const spec *copy)
{
    json_t *labels = json_object();
    json_t *src = eval(ec, copy ? copy : m->labels_copy);
    const char *k;
    json_t *v;
    if (json_is_object(src)) {
        json_object_foreach(src, k, v) {
            char *t = to_text(v);
            set_text(labels, k, t);
        }
    }
    json_decref(src);
    for (size_t i = 0; i < m->nlabels; i++)
        set_text(labels, m->label_names[i], field_text(ec, m->label_specs[i]));
    return labels;
}

static const char *const severities[] = {"critical", "error", "warning", "info",
                                         NULL};

/* Source fields (kind generic) override the mapping's specs by pointer. */
typedef struct {
    spec *fields[F_COUNT];
    spec *labels;
} overrides;

static void overrides_build(overrides *o, const hl_source_cfg *src)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; src && i < src->n_fields; i++) {
        spec *s = calloc(1, sizeof *s);
        if (!s || !(s->text = strdup(src->fields[i].value))) {
            free(s);
            continue;
        }
        s->kind = S_POINTER;
        if (!strcmp(src->fields[i].name, "labels")) {
            spec_free(o->labels);
            o->labels = s;
            continue;
        }
        int f = 0;
        while (field_names[f] && strcmp(field_names[f], src->fields[i].name))
            f++;
        if (field_names[f]) {
            spec_free(o->fields[f]);
            o->fields[f] = s;
        } else {
            spec_free(s);
        }
    }
}

static void overrides_free(overrides *o)
{
    for (int i = 0; i < F_COUNT; i++)
        spec_free(o->fields[i]);
    spec_free(o->labels);
}

static const spec *pick(const overrides *o, const hl_mapping *m, int f)
{
    return o->fields[f] ? o->fields[f] : m->fields[f];
}

static json_t *build_event(evalctx *ec, const hl_mapping *m,
                           const overrides *o, const hl_inbound *ev,
                           size_t index, int split)
{
    char id[64], source[200];
    if (split)
        snprintf(id, sizeof id, "%s-%zu", ev->id, index + 1);
    else
        snprintf(id, sizeof id, "%s", ev->id);
    snprintf(source, sizeof source, "/%s/%s", ev->tenant, ev->source);
    char *type_raw = field_text(ec, pick(o, m, F_TYPE));
    char *type = clean_type(type_raw ? type_raw : "", m->kind);
    free(type_raw);
    char *sev = field_text(ec, pick(o, m, F_SEVERITY));
    const spec *table = m->fields[F_SEVERITY];
    if (sev && o->fields[F_SEVERITY] && table && table->kind == S_LOOKUP) {
        /* A source's own severity field still goes through the table. */
        for (char *p = sev; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_t *hit = json_object_get(table->value, sev);
        json_t *dv = hit ? NULL : eval(ec, table->dflt);
        char *mapped = to_text(hit ? hit : dv);
        json_decref(dv);
        free(sev);
        sev = mapped;
    }
    int ok = 0;
    for (int i = 0; sev && severities[i]; i++)
        ok |= !strcmp(sev, severities[i]);
    if (sev && !ok)
        efail(ec, "event %zu: severity '%.60s' is not one of critical, error, "
                  "warning, info; fix the mapping's severity lookup",
              index + 1, sev);
    char *title = field_text(ec, pick(o, m, F_TITLE));
    json_t *e = json_object(), *data = json_object();
    json_object_set_new(e, "specversion", json_string("1.0"));
    json_object_set_new(e, "id", json_string(id));
    json_object_set_new(e, "source", json_string(source));
    set_text(e, "type", type ? strdup(type) : NULL);
    json_object_set_new(e, "time",
                        event_time(ec, pick(o, m, F_TIME), ev->received_ms));
    set_text(e, "subject", field_text(ec, pick(o, m, F_SUBJECT)));
    json_object_set_new(e, "datacontenttype", json_string("application/json"));
    json_object_set_new(e, "tenant", json_string(ev->tenant));
    json_object_set_new(e, "severity", json_string(ok ? sev : "info"));
    json_object_set_new(e, "correlationid", json_string(ev->correlation_id));
    set_text(e, "dedupkey", field_text(ec, pick(o, m, F_DEDUPKEY)));
    set_text(data, "title", title ? title : strdup(type ? type : "event"));
    set_text(data, "text", field_text(ec, pick(o, m, F_TEXT)));
    char *status = field_text(ec, pick(o, m, F_STATUS));
    if (status)
        for (char *p = status; *p; p++)
            *p = isalpha((unsigned char)*p) ? (char)tolower((unsigned char)*p)
                                            : '_';
    set_text(data, "status", status);
    set_text(data, "url", field_text(ec, pick(o, m, F_URL)));
    json_object_set_new(data, "labels", event_labels(ec, m, o->labels));
    json_object_set(data, "raw", ec->item);
    json_object_set_new(e, "data", data);
    free(type);
    free(sev);
    return e;
}

/* application/x-www-form-urlencoded -> object; a "payload" field holding
 * JSON (Slack interactions, GitHub's form deliveries) is parsed. */
static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

static char *url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n &&
                   hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)s[i + 1]) * 16 +
                          hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

static json_t *parse_form(const char *body, size_t len)
{
    json_t *obj = json_object();
    size_t i = 0;
    while (obj && i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && body[eq] != '=')
            eq++;
        char *k = url_decode(body + i, eq - i);
        char *v = eq < end ? url_decode(body + eq + 1, end - eq - 1)
                           : strdup("");
        if (k && v && *k) {
            json_t *parsed = !strcmp(k, "payload") ? json_loads(v, 0, NULL)
                                                   : NULL;
            json_t *val = parsed ? parsed : json_string(v);
            json_object_set_new(obj, k, val ? val : json_null());
        }
        free(k);
        free(v);
        i = end + 1;
    }
    return obj;
}

static json_t *parse_body(const hl_inbound *ev, char *why, size_t whylen)
{
    const char *ct = ev->content_type ? ev->content_type : "";
    if (!strncasecmp(ct, "application/x-www-form-urlencoded", 33))
        return parse_form(ev->body, ev->body_len);
    json_error_t err;
    json_t *body = json_loadb(ev->body, ev->body_len,
                              JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!body)
        snprintf(why, whylen, "the body is not JSON: %s at byte offset %d",
                 err.text, err.position);
    return body;
}

static json_t *make_ctx(const hl_source_cfg *src, const hl_inbound *ev,
                        json_t *body, json_t *headers)
{
    json_t *source = json_pack("{s:s, s:s, s:s}", "name", ev->source, "kind",
                               src && src->kind ? src->kind : "", "tenant",
                               ev->tenant);
    json_t *ctx = json_object();
    if (!source || !ctx) {
        json_decref(source);
        json_decref(ctx);
        return NULL;
    }
    json_object_set(ctx, "body", body);
    json_object_set(ctx, "headers", headers);
    json_object_set_new(ctx, "source", source);
    return ctx;
}

int hl_map_apply(const hl_mapping *m, const hl_source_cfg *src,
                 const hl_inbound *ev, json_t **events, char *why,
                 size_t whylen)
{
    *events = NULL;
    why[0] = 0;
    json_t *body = parse_body(ev, why, whylen);
    if (!body)
        return HL_ESYNTAX;
    json_t *headers = json_loads(ev->headers_json ? ev->headers_json : "{}",
                                 0, NULL);
    if (!headers)
        headers = json_object();
    json_t *ctx = make_ctx(src, ev, body, headers);
    json_t *out = json_array();
    overrides o;
    overrides_build(&o, src);
    evalctx ec = {.ctx = ctx, .body = body, .item = body, .headers = headers,
                  .why = why, .whylen = whylen};
    json_t *items = NULL;
    if (m->split) {
        items = eval(&ec, m->split);
        if (!ec.failed && !json_is_array(items))
            efail(&ec, "split: the payload has no list there%s",
                  items ? " (found another kind of value)" : "");
        else if (!ec.failed && json_array_size(items) == 0)
            efail(&ec, "split: the list is empty, so there are no events");
    }
    size_t count = m->split && json_is_array(items) ? json_array_size(items) : 1;
    for (size_t i = 0; ctx && out && !ec.failed && i < count; i++) {
        ec.item = m->split ? json_array_get(items, i) : body;
        json_object_set(ctx, "item", ec.item);
        json_object_set_new(ctx, "index", json_integer((json_int_t)i + 1));
        json_t *e = build_event(&ec, m, &o, ev, i, m->split != NULL);
        if (e)
            json_array_append_new(out, e);
    }
    overrides_free(&o);
    json_decref(items);
    json_decref(ctx);
    json_decref(headers);
    json_decref(body);
    if (ec.failed || !out || !ctx) {
        if (!why[0])
            snprintf(why, whylen, "out of memory");
        json_decref(out);
        return ec.failed ? HL_ESYNTAX : HL_ENOMEM;
    }
    *events = out;
    return 0;
}

int hl_map_raw_pointer(const hl_mapping *m, size_t index, char *out,
                       size_t cap)
{
    if (!m->split) {
        snprintf(out, cap, "%s", "");
        return 0;
    }
    if (m->split->kind != S_POINTER || m->split->from == FROM_HEADERS)
        return -1;
    int n = snprintf(out, cap, "%s/%zu", m->split->text, index);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}
