/* template.c - Mustache: compile once to a flat node list, render many. */
#include "template.h"

#include "err.h"
#include "jsontext.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_SHOWN 120 /* bytes of a name an error message quotes */

/* ---- the compiled form ----------------------------------------------- */

enum node_type { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED, N_PARTIAL };

/* A piece of the template's own copy of its source. */
struct slice {
    size_t off, len;
};

/* Nodes sit in one array in template order; a section's children are the
 * nodes after it up to its end index. */
struct node {
    enum node_type type;
    size_t pos;          /* offset of the tag, for messages */
    struct slice text;   /* text, the whole name, or the partial's name */
    struct slice indent; /* N_PARTIAL: the standalone line's indentation */
    size_t part, nparts; /* dotted name parts in t->parts; 0 parts is "." */
    size_t end;          /* sections: index after the last child */
};

struct cache_entry {
    char *key; /* name NUL indentation NUL source */
    size_t keylen;
    hl_template *t;
};

struct cache {
    pthread_mutex_t lock;
    struct cache_entry *v;
    size_t n, cap;
};

struct hl_template {
    char *src;
    size_t len;
    size_t indent_len; /* a partial compiled with indentation added */
    struct node *nodes;
    size_t nnodes, capnodes;
    struct slice *parts;
    size_t nparts, capparts;
    struct cache *cache; /* partials compiled while rendering; or NULL */
};

/* ---- shared helpers ------------------------------------------------- */

static void errfmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errfmt(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int shown(size_t len)
{
    return (int)(len > NAME_SHOWN ? NAME_SHOWN : len);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* Line and column (UTF-8 characters, from 1) of offset at in source s;
 * columns leave out the indentation a partial was compiled with. */
static void where(const char *s, size_t at, size_t indent_len, size_t *line,
                  size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)s[i] & 0xC0) != 0x80) {
            ++*col;
        }
    }
    if (indent_len && *col > indent_len)
        *col -= indent_len;
}

/* Write "line L, column C: " and the message; returns the message's code. */
static int errat(char *err, size_t errlen, const char *prefix,
                 const hl_template *t, size_t at, int code, const char *fmt,
                 va_list ap)
{
    if (!err || !errlen)
        return code;
    size_t line, col;
    where(t->src, at, t->indent_len, &line, &col);
    int k =
        snprintf(err, errlen, "%sline %zu, column %zu: ", prefix, line, col);
    if (k >= 0 && (size_t)k < errlen)
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    return code;
}

static void free_template(hl_template *t);

/* ---- compiling ------------------------------------------------------ */

struct parser {
    hl_template *t;
    const char *s;
    size_t len;
    const char *otag, *ctag; /* the delimiters, pieces of s */
    size_t olen, clen;
    size_t pos; /* where the text not yet placed starts */
    size_t open[HL_TEMPLATE_MAX_NESTING]; /* node indices of open sections */
    size_t depth;
    char *err;
    size_t errlen;
};

struct tag {
    char type;         /* 0 for a variable, else one of { & # ^ / > ! = */
    size_t start, end; /* the whole tag, delimiters included */
    struct slice body; /* inside, trimmed, without the type and '}' or '=' */
};

static int syntax(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int syntax(struct parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errat(p->err, p->errlen, "", p->t, at, HL_ESYNTAX, fmt, ap);
    va_end(ap);
    return HL_ESYNTAX;
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *nv = realloc(*v, n * size);
    if (!nv)
        return HL_ENOMEM;
    *v = nv;
    *cap = n;
    return 0;
}

static int add_node(struct parser *p, enum node_type type, size_t pos,
                    struct slice text, size_t *index)
{
    hl_template *t = p->t;
    if (grow((void **)&t->nodes, &t->capnodes, t->nnodes + 1, sizeof *t->nodes))
        return HL_ENOMEM;
    t->nodes[t->nnodes] = (struct node){.type = type, .pos = pos, .text = text};
    if (index)
        *index = t->nnodes;
    t->nnodes++;
    return 0;
}

static int add_text(struct parser *p, size_t from, size_t to)
{
    if (to <= from)
        return 0;
    return add_node(p, N_TEXT, from, (struct slice){from, to - from}, NULL);
}

/* Where the closing delimiter is, searching from `from`; with a close
 * character ('}' or '='), where that character is, right before it. */
static bool find_close(const struct parser *p, size_t from, char close,
                       size_t *at)
{
    size_t i = from + (close ? 1 : 0);
    while (i < p->len && p->len - i >= p->clen) {
        const char *hit = memmem(p->s + i, p->len - i, p->ctag, p->clen);
        if (!hit)
            return false;
        size_t h = (size_t)(hit - p->s);
        if (!close || p->s[h - 1] == close) {
            *at = close ? h - 1 : h;
            return true;
        }
        i = h + 1;
    }
    return false;
}

static struct slice trim(const char *s, size_t from, size_t to)
{
    while (from < to && is_space(s[from]))
        from++;
    while (to > from && is_space(s[to - 1]))
        to--;
    return (struct slice){from, to - from};
}

/* Read the tag whose opening delimiter is at `at`. */
static int scan_tag(struct parser *p, size_t at, struct tag *tg)
{
    size_t q = at + p->olen;
    char c = q < p->len ? p->s[q] : 0;
    tg->type = c && strchr("{&#^/>!=", c) ? c : 0;
    size_t from = q + (tg->type ? 1 : 0);
    char close = tg->type == '{' ? '}' : tg->type == '=' ? '=' : 0;
    size_t e;
    if (!find_close(p, from, close, &e)) {
        if (close == '=' && find_close(p, from, 0, &e))
            return syntax(p, at, "invalid set-delimiters tag");
        return syntax(p, at, "unclosed tag");
    }
    tg->start = at;
    tg->end = e + (close ? 1 : 0) + p->clen;
    tg->body = trim(p->s, from, e);
    return 0;
}

static bool can_stand_alone(char type)
{
    return type && strchr("#^/>!=", type);
}

/* A tag alone on its line but for blanks: the line goes, newline included.
 * Sets where the line starts and where the text after it starts. */
static bool standalone(const struct parser *p, const struct tag *tg,
                       size_t *line_start, size_t *next)
{
    size_t b = tg->start, e = tg->end;
    while (b > p->pos && is_blank(p->s[b - 1]))
        b--;
    if (b > 0 && p->s[b - 1] != '\n')
        return false;
    while (e < p->len && is_blank(p->s[e]))
        e++;
    if (e < p->len) {
        if (p->s[e] == '\n')
            e++;
        else if (p->s[e] == '\r' && e + 1 < p->len && p->s[e + 1] == '\n')
            e += 2;
        else
            return false;
    }
    *line_start = b;
    *next = e;
    return true;
}

static bool has_space_or_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (is_space(s[i]) || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

/* A name must be one word; the opening delimiter inside it means the tag
 * before it was never closed. */
static int check_word(struct parser *p, const struct tag *tg)
{
    const char *n = p->s + tg->body.off;
    size_t len = tg->body.len;
    if (!len)
        return syntax(p, tg->start, "empty tag name");
    if (memmem(n, len, p->otag, p->olen))
        return syntax(p, tg->start, "unclosed tag");
    if (has_space_or_control(n, len))
        return syntax(p, tg->start,
                      "invalid tag name '%.*s': a name is one word", shown(len),
                      n);
    return 0;
}

static int add_part(struct parser *p, size_t off, size_t len)
{
    hl_template *t = p->t;
    if (grow((void **)&t->parts, &t->capparts, t->nparts + 1, sizeof *t->parts))
        return HL_ENOMEM;
    t->parts[t->nparts++] = (struct slice){off, len};
    return 0;
}

/* Split a dotted name into the parts lookups walk; "." has none. */
static int add_name(struct parser *p, const struct tag *tg, size_t node)
{
    int rc = check_word(p, tg);
    if (rc)
        return rc;
    const char *n = p->s + tg->body.off;
    size_t len = tg->body.len, first = p->t->nparts, start = 0;
    if (len == 1 && n[0] == '.')
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && n[i] != '.')
            continue;
        if (i == start)
            return syntax(p, tg->start,
                          "invalid tag name '%.*s': empty part in a "
                          "dotted name",
                          shown(len), n);
        if ((rc = add_part(p, tg->body.off + start, i - start)))
            return rc;
        start = i + 1;
    }
    p->t->nodes[node].part = first;
    p->t->nodes[node].nparts = p->t->nparts - first;
    return 0;
}

static int add_var(struct parser *p, const struct tag *tg)
{
    size_t i;
    enum node_type type = tg->type ? N_RAW : N_VAR;
    int rc = add_node(p, type, tg->start, tg->body, &i);
    return rc ? rc : add_name(p, tg, i);
}

static int open_section(struct parser *p, const struct tag *tg)
{
    if (p->depth == HL_TEMPLATE_MAX_NESTING)
        return syntax(p, tg->start, "sections nested more than %d deep",
                      HL_TEMPLATE_MAX_NESTING);
    size_t i;
    enum node_type type = tg->type == '#' ? N_SECTION : N_INVERTED;
    int rc = add_node(p, type, tg->start, tg->body, &i);
    if (!rc)
        rc = add_name(p, tg, i);
    if (!rc)
        p->open[p->depth++] = i;
    return rc;
}

static int close_section(struct parser *p, const struct tag *tg)
{
    int rc = check_word(p, tg);
    if (rc)
        return rc;
    const char *n = p->s + tg->body.off;
    size_t len = tg->body.len;
    if (!p->depth)
        return syntax(p, tg->start, "unexpected closing tag '%.*s'", shown(len),
                      n);
    struct node *sec = &p->t->nodes[p->open[p->depth - 1]];
    if (sec->text.len != len || memcmp(p->s + sec->text.off, n, len)) {
        size_t line, col;
        where(p->s, sec->pos, p->t->indent_len, &line, &col);
        return syntax(p, tg->start,
                      "closing tag '%.*s' does not match section '%.*s' "
                      "opened at line %zu, column %zu",
                      shown(len), n, shown(sec->text.len), p->s + sec->text.off,
                      line, col);
    }
    sec->end = p->t->nnodes;
    p->depth--;
    return 0;
}

static int add_partial(struct parser *p, const struct tag *tg,
                       struct slice indent)
{
    int rc = check_word(p, tg);
    size_t i;
    if (!rc)
        rc = add_node(p, N_PARTIAL, tg->start, tg->body, &i);
    if (!rc)
        p->t->nodes[i].indent = indent;
    return rc;
}

/* {{=<% %>=}}: two words, neither with '=' in it. */
static int set_delimiters(struct parser *p, const struct tag *tg)
{
    const char *s = p->s + tg->body.off;
    size_t len = tg->body.len, a = 0, b;
    while (a < len && !is_space(s[a]))
        a++;
    b = a;
    while (b < len && is_space(s[b]))
        b++;
    if (!a || b == len || has_space_or_control(s, a) ||
        has_space_or_control(s + b, len - b) || memchr(s, '=', len))
        return syntax(p, tg->start, "invalid set-delimiters tag");
    p->otag = s;
    p->olen = a;
    p->ctag = s + b;
    p->clen = len - b;
    return 0;
}

static int apply_tag(struct parser *p, const struct tag *tg,
                     struct slice indent)
{
    switch (tg->type) {
    case '!': return 0;
    case '=': return set_delimiters(p, tg);
    case '#':
    case '^': return open_section(p, tg);
    case '/': return close_section(p, tg);
    case '>': return add_partial(p, tg, indent);
    default: return add_var(p, tg);
    }
}

/* Place the text before the tag, minus a standalone line, then the tag. */
static int place_tag(struct parser *p, const struct tag *tg)
{
    size_t text_end = tg->start, next = tg->end;
    struct slice indent = {tg->start, 0};
    if (can_stand_alone(tg->type) && standalone(p, tg, &text_end, &next))
        indent = (struct slice){text_end, tg->start - text_end};
    int rc = add_text(p, p->pos, text_end);
    p->pos = next;
    return rc ? rc : apply_tag(p, tg, indent);
}

static int parse(struct parser *p)
{
    int rc;
    while (p->pos < p->len) {
        const char *hit =
            memmem(p->s + p->pos, p->len - p->pos, p->otag, p->olen);
        if (!hit)
            break;
        struct tag tg = {0};
        if ((rc = scan_tag(p, (size_t)(hit - p->s), &tg)) ||
            (rc = place_tag(p, &tg)))
            return rc;
    }
    if ((rc = add_text(p, p->pos, p->len)))
        return rc;
    if (p->depth) {
        const struct node *sec = &p->t->nodes[p->open[p->depth - 1]];
        size_t line, col;
        where(p->s, sec->pos, p->t->indent_len, &line, &col);
        return syntax(p, p->len,
                      "unclosed section '%.*s' opened at line %zu, "
                      "column %zu",
                      shown(sec->text.len), p->s + sec->text.off, line, col);
    }
    return 0;
}

static int cache_create(struct cache **out)
{
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return HL_ENOMEM;
    if (pthread_mutex_init(&c->lock, NULL)) {
        free(c);
        return HL_ENOMEM;
    }
    *out = c;
    return 0;
}

/* Compile src, taking ownership of it (freed on failure too). A template
 * with a cache can hold partials; partials compiled for it have none. */
static int compile_take(char *src, size_t len, size_t indent_len,
                        bool with_cache, hl_template **out, char *err,
                        size_t errlen)
{
    int rc = HL_ENOMEM;
    hl_template *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) {
        free(src);
        goto out;
    }
    t->src = src;
    t->len = len;
    t->indent_len = indent_len;
    if (with_cache && (rc = cache_create(&t->cache)))
        goto out;
    struct parser p = {.t = t,
                       .s = src,
                       .len = len,
                       .otag = "{{",
                       .olen = 2,
                       .ctag = "}}",
                       .clen = 2,
                       .err = err,
                       .errlen = errlen};
    if ((rc = parse(&p)))
        goto out;
    *out = t;
    t = NULL;
out:
    if (rc == HL_ENOMEM)
        errfmt(err, errlen, "out of memory compiling a template");
    free_template(t);
    return rc;
}

int hl_template_compile(const char *src, size_t len, hl_template **out,
                        char *err, size_t errlen)
{
    char *copy = malloc(len + 1);
    *out = NULL;
    if (!copy) {
        errfmt(err, errlen, "out of memory compiling a template");
        return HL_ENOMEM;
    }
    if (len)
        memcpy(copy, src, len);
    copy[len] = 0;
    return compile_take(copy, len, 0, true, out, err, errlen);
}

static void free_template(hl_template *t)
{
    if (!t)
        return;
    if (t->cache) {
        for (size_t i = 0; i < t->cache->n; i++) {
            free(t->cache->v[i].key);
            free_template(t->cache->v[i].t);
        }
        free(t->cache->v);
        pthread_mutex_destroy(&t->cache->lock);
        free(t->cache);
    }
    free(t->nodes);
    free(t->parts);
    free(t->src);
    free(t);
}

void hl_template_destroy(hl_template *t)
{
    free_template(t);
}

/* ---- rendering: output ---------------------------------------------- */

struct render {
    const hl_template *root; /* holds the partial cache */
    json_t *partials;        /* borrowed */
    hl_escape esc;
    char *buf;
    size_t len, cap;
    json_t *stack[HL_TEMPLATE_MAX_NESTING + 1]; /* borrowed contexts */
    size_t sp;
    unsigned nesting, partial_depth;
    size_t steps;
    const char *pname; /* the partial being rendered, for messages */
    int pnamelen;
    char *err;
    size_t errlen;
};

static int fail(struct render *r, const hl_template *t, size_t at, int code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* An error at a node of t: "[partial 'p', ]line L, column C: ...". */
static int fail(struct render *r, const hl_template *t, size_t at, int code,
                const char *fmt, ...)
{
    char prefix[NAME_SHOWN + 16] = "";
    if (r->pname)
        snprintf(prefix, sizeof prefix, "partial '%.*s', ", r->pnamelen,
                 r->pname);
    va_list ap;
    va_start(ap, fmt);
    errat(r->err, r->errlen, prefix, t, at, code, fmt, ap);
    va_end(ap);
    return code;
}

static int nomem(struct render *r)
{
    errfmt(r->err, r->errlen, "out of memory rendering a template");
    return HL_ENOMEM;
}

/* Room for n more bytes and a terminator. */
static int reserve(struct render *r, size_t n)
{
    if (n > HL_TEMPLATE_MAX_OUTPUT - r->len) {
        errfmt(r->err, r->errlen,
               "rendered output larger than %u bytes: the data holds a "
               "list or a value too large for this template",
               HL_TEMPLATE_MAX_OUTPUT);
        return HL_ETOOBIG;
    }
    if (r->len + n + 1 <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->len + n + 1)
        cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b)
        return nomem(r);
    r->buf = b;
    r->cap = cap;
    return 0;
}

static int put(struct render *r, const char *s, size_t n)
{
    int rc = reserve(r, n);
    if (rc || !n)
        return rc;
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    return 0;
}

static const char *html_entity(char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '"': return "&quot;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    default: return NULL;
    }
}

static int put_html(struct render *r, const char *s, size_t n)
{
    size_t run = 0;
    int rc;
    for (size_t i = 0; i < n; i++) {
        const char *ent = html_entity(s[i]);
        if (!ent)
            continue;
        if ((rc = put(r, s + run, i - run)) || (rc = put(r, ent, strlen(ent))))
            return rc;
        run = i + 1;
    }
    return put(r, s + run, n - run);
}

/* The inside of a JSON string; s[n] must be NUL. hl_json_escape stops at
 * NUL, so a value's own NUL bytes are written between its pieces. */
static int put_json(struct render *r, const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t piece = strlen(s + i);
        size_t need = hl_json_escape(NULL, 0, s + i);
        int rc = reserve(r, need);
        if (rc)
            return rc;
        hl_json_escape(r->buf + r->len, need + 1, s + i);
        r->len += need;
        i += piece;
        if (i >= n)
            return 0;
        if ((rc = put(r, "\\u0000", 6)))
            return rc;
        i++;
    }
}

static int put_escaped(struct render *r, const char *s, size_t n, hl_escape esc)
{
    switch (esc) {
    case HL_ESC_HTML: return put_html(r, s, n);
    case HL_ESC_JSON: return put_json(r, s, n);
    default: return put(r, s, n);
    }
}

/* ---- rendering: values ---------------------------------------------- */

/* The shortest %g that reads back as the same double: 1.21, 1.5, 3. */
static size_t format_real(char *buf, size_t cap, double d)
{
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

static bool truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
    case JSON_TRUE: return true;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    default: return false;
    }
}

/* A decimal index into an array: digits, no leading zero. */
static json_t *array_item(json_t *a, const char *s, size_t len)
{
    size_t i = 0;
    if (!len || len > 18 || (len > 1 && s[0] == '0'))
        return NULL;
    for (size_t k = 0; k < len; k++) {
        if (s[k] < '0' || s[k] > '9')
            return NULL;
        i = i * 10 + (size_t)(s[k] - '0');
    }
    return json_array_get(a, i);
}

static json_t *child(json_t *v, const char *src, struct slice name)
{
    if (json_is_object(v))
        return json_object_getn(v, src + name.off, name.len);
    if (json_is_array(v))
        return array_item(v, src + name.off, name.len);
    return NULL;
}

/* The value a name means: the first part from the innermost context that
 * has it, the other parts inside that value only. Borrowed; NULL if none. */
static json_t *lookup(const struct render *r, const hl_template *t,
                      const struct node *n)
{
    if (!n->nparts)
        return r->stack[r->sp - 1];
    const struct slice *parts = t->parts + n->part;
    json_t *v = NULL;
    for (size_t k = r->sp; k-- > 0 && !v;)
        v = child(r->stack[k], t->src, parts[0]);
    for (size_t j = 1; v && j < n->nparts; j++)
        v = child(v, t->src, parts[j]);
    return v;
}

static int put_value(struct render *r, json_t *v, hl_escape esc)
{
    char num[64];
    size_t n;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return put_escaped(r, json_string_value(v), json_string_length(v), esc);
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                             json_integer_value(v));
        return put_escaped(r, num, n, esc);
    case JSON_REAL:
        n = format_real(num, sizeof num, json_real_value(v));
        return put_escaped(r, num, n, esc);
    case JSON_TRUE: return put_escaped(r, "true", 4, esc);
    case JSON_FALSE: return put_escaped(r, "false", 5, esc);
    case JSON_NULL: return 0;
    default: break;
    }
    char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!dump)
        return nomem(r);
    int rc = put_escaped(r, dump, strlen(dump), esc);
    free(dump);
    return rc;
}

static int render_var(struct render *r, const hl_template *t,
                      const struct node *n)
{
    json_t *v = lookup(r, t, n);
    if (!v)
        return 0;
    return put_value(r, v, n->type == N_RAW ? HL_ESC_NONE : r->esc);
}

/* ---- rendering: sections and partials -------------------------------- */

static int render_nodes(struct render *r, const hl_template *t, size_t from,
                        size_t to);

/* Count one node visited or one list item entered against the budget. */
static int step(struct render *r)
{
    if (++r->steps <= HL_TEMPLATE_MAX_STEPS)
        return 0;
    errfmt(r->err, r->errlen,
           "rendering took more than %u steps: the data holds lists too "
           "long for this template",
           HL_TEMPLATE_MAX_STEPS);
    return HL_ETOOBIG;
}

static int enter(struct render *r, const hl_template *t, size_t at)
{
    if (r->nesting >= HL_TEMPLATE_MAX_NESTING)
        return fail(r, t, at, HL_ERANGE,
                    "sections and partials nested more than %d deep",
                    HL_TEMPLATE_MAX_NESTING);
    r->nesting++;
    return 0;
}

/* Render a section's children with v atop the context stack. */
static int render_with(struct render *r, const hl_template *t, size_t i,
                       json_t *v)
{
    const struct node *n = &t->nodes[i];
    int rc = step(r);
    if (rc || (rc = enter(r, t, n->pos)))
        return rc;
    r->stack[r->sp++] = v;
    rc = render_nodes(r, t, i + 1, n->end);
    r->sp--;
    r->nesting--;
    return rc;
}

static int render_section(struct render *r, const hl_template *t, size_t i)
{
    const struct node *n = &t->nodes[i];
    json_t *v = lookup(r, t, n);
    int rc = 0;
    if (n->type == N_INVERTED) {
        if (truthy(v) || (rc = enter(r, t, n->pos)))
            return rc;
        rc = render_nodes(r, t, i + 1, n->end);
        r->nesting--;
        return rc;
    }
    if (!truthy(v))
        return 0;
    if (!json_is_array(v))
        return render_with(r, t, i, v);
    for (size_t k = 0; k < json_array_size(v) && !rc; k++)
        rc = render_with(r, t, i, json_array_get(v, k));
    return rc;
}

/* src with indent at the start of every line that has something on it
 * after the newline: what the spec means by indenting a partial. */
static char *indent_source(const char *src, size_t len, const char *ind,
                           size_t ilen, size_t *outlen)
{
    size_t lines = len ? 1 : 0;
    for (size_t i = 0; i + 1 < len; i++)
        lines += src[i] == '\n';
    size_t n = len + lines * ilen, o = 0;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (ilen && (i == 0 || src[i - 1] == '\n')) {
            memcpy(out + o, ind, ilen);
            o += ilen;
        }
        out[o++] = src[i];
    }
    out[o] = 0;
    *outlen = o;
    return out;
}

/* Compile a partial's source, indented for a standalone tag. */
static int compile_partial(struct render *r, const hl_template *t,
                           const struct node *n, json_t *src, hl_template **out)
{
    size_t len;
    char *text = indent_source(json_string_value(src), json_string_length(src),
                               t->src + n->indent.off, n->indent.len, &len);
    if (!text)
        return nomem(r);
    r->steps += len / 64;
    char msg[256];
    int rc =
        compile_take(text, len, n->indent.len, false, out, msg, sizeof msg);
    if (rc)
        errfmt(r->err, r->errlen, "partial '%.*s': %s", shown(n->text.len),
               t->src + n->text.off, msg);
    return rc;
}

/* The cache key: name NUL indentation NUL source. */
static char *cache_key(const hl_template *t, const struct node *n, json_t *src,
                       size_t *keylen)
{
    size_t slen = json_string_length(src);
    size_t len = n->text.len + 1 + n->indent.len + 1 + slen;
    char *k = malloc(len);
    if (!k)
        return NULL;
    memcpy(k, t->src + n->text.off, n->text.len);
    k[n->text.len] = 0;
    memcpy(k + n->text.len + 1, t->src + n->indent.off, n->indent.len);
    k[n->text.len + 1 + n->indent.len] = 0;
    if (slen)
        memcpy(k + len - slen, json_string_value(src), slen);
    *keylen = len;
    return k;
}

static hl_template *cache_find(const struct cache *c, const char *key,
                               size_t keylen)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].keylen == keylen && !memcmp(c->v[i].key, key, keylen))
            return c->v[i].t;
    return NULL;
}

/* Keep t under key (taking both); false if the cache is full. */
static bool cache_add(struct cache *c, char *key, size_t keylen, hl_template *t)
{
    if (c->n == HL_TEMPLATE_MAX_CACHED ||
        grow((void **)&c->v, &c->cap, c->n + 1, sizeof *c->v))
        return false;
    c->v[c->n++] = (struct cache_entry){key, keylen, t};
    return true;
}

/* The compiled partial a tag names, from the cache or compiled now: *pt is
 * NULL when there is no such partial; *owned is set when the cache was full
 * and the caller must destroy the partial after use. */
static int partial_get(struct render *r, const hl_template *t,
                       const struct node *n, const hl_template **pt,
                       hl_template **owned)
{
    struct cache *c = r->root->cache;
    json_t *src =
        json_is_object(r->partials)
            ? json_object_getn(r->partials, t->src + n->text.off, n->text.len)
            : NULL;
    *pt = NULL;
    *owned = NULL;
    if (!src)
        return 0;
    if (!json_is_string(src))
        return fail(r, t, n->pos, HL_ESYNTAX, "partial '%.*s' is not a string",
                    shown(n->text.len), t->src + n->text.off);
    size_t keylen;
    char *key = cache_key(t, n, src, &keylen);
    if (!key)
        return nomem(r);
    if (pthread_mutex_lock(&c->lock)) {
        free(key);
        errfmt(r->err, r->errlen, "cannot lock the partial cache");
        return HL_EINTERNAL;
    }
    hl_template *p = cache_find(c, key, keylen);
    int rc = 0;
    if (p)
        goto out;
    if ((rc = compile_partial(r, t, n, src, &p)))
        goto out;
    if (cache_add(c, key, keylen, p))
        key = NULL;
    else
        *owned = p;
out:
    pthread_mutex_unlock(&c->lock);
    free(key);
    *pt = p;
    return rc;
}

static int render_partial(struct render *r, const hl_template *t,
                          const struct node *n)
{
    if (r->partial_depth >= HL_TEMPLATE_MAX_PARTIAL_DEPTH)
        return fail(r, t, n->pos, HL_ERANGE,
                    "partials nested more than %d deep: does partial '%.*s' "
                    "include itself?",
                    HL_TEMPLATE_MAX_PARTIAL_DEPTH, shown(n->text.len),
                    t->src + n->text.off);
    const hl_template *pt;
    hl_template *owned;
    int rc = partial_get(r, t, n, &pt, &owned);
    if (rc || !pt || (rc = enter(r, t, n->pos)))
        goto out;
    const char *name = r->pname;
    int namelen = r->pnamelen;
    r->pname = t->src + n->text.off;
    r->pnamelen = shown(n->text.len);
    r->partial_depth++;
    rc = render_nodes(r, pt, 0, pt->nnodes);
    r->partial_depth--;
    r->nesting--;
    r->pname = name;
    r->pnamelen = namelen;
out:
    free_template(owned);
    return rc;
}

static int render_node(struct render *r, const hl_template *t, size_t i)
{
    const struct node *n = &t->nodes[i];
    switch (n->type) {
    case N_TEXT: return put(r, t->src + n->text.off, n->text.len);
    case N_VAR:
    case N_RAW: return render_var(r, t, n);
    case N_SECTION:
    case N_INVERTED: return render_section(r, t, i);
    case N_PARTIAL: return render_partial(r, t, n);
    }
    return HL_EINTERNAL;
}

static int render_nodes(struct render *r, const hl_template *t, size_t from,
                        size_t to)
{
    for (size_t i = from; i < to;) {
        int rc = step(r);
        if (rc || (rc = render_node(r, t, i)))
            return rc;
        const struct node *n = &t->nodes[i];
        i = n->type == N_SECTION || n->type == N_INVERTED ? n->end : i + 1;
    }
    return 0;
}

int hl_template_render(const hl_template *t, json_t *ctx, json_t *partials,
                       hl_escape esc, char **out, size_t *len, char *err,
                       size_t errlen)
{
    struct render *r = calloc(1, sizeof *r);
    int rc = HL_ENOMEM;
    *out = NULL;
    *len = 0;
    errfmt(err, errlen, "%s", "");
    if (!r) {
        errfmt(err, errlen, "out of memory rendering a template");
        goto out;
    }
    *r = (struct render){.root = t,
                         .partials = partials,
                         .esc = esc,
                         .err = err,
                         .errlen = errlen};
    if (esc != HL_ESC_HTML && esc != HL_ESC_JSON && esc != HL_ESC_NONE) {
        errfmt(err, errlen, "unknown escaping mode %d", (int)esc);
        rc = HL_ERANGE;
        goto out;
    }
    r->stack[r->sp++] = ctx ? ctx : json_null();
    if ((rc = render_nodes(r, t, 0, t->nnodes)) || (rc = reserve(r, 0)))
        goto out;
    r->buf[r->len] = 0;
    *out = r->buf;
    *len = r->len;
    r->buf = NULL;
out:
    if (r)
        free(r->buf);
    free(r);
    return rc;
}
