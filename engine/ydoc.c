/* ydoc.c - a YAML document as a tree of nodes that remember their positions. */
#include "ydoc.h"

#include "buf.h"
#include "err.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_ALIASES 10000
#define MAX_FILE_SIZE (16u << 20)
#define MAX_SECRET_FILE (1u << 20)

/*
 * libyaml ends a plain scalar at '{' or '}' inside a flow collection, so
 * `tokens: [${TOKEN}]` would not parse. Before parsing, the braces of every
 * ${...} are swapped for two private-use characters, which keeps every
 * character column unchanged; expansion looks for those markers.
 */
#define MARK_OPEN "\xEE\x80\x80"  /* U+E000 */
#define MARK_CLOSE "\xEE\x80\x81" /* U+E001 */
#define MARK_LEN 3

typedef struct {
    unsigned line, col;
} ypos;

struct hl_ydoc {
    char *file;
    unsigned flags;
    hl_ynode *root;
    void **blocks; /* every allocation of the tree */
    size_t nblocks, capblocks;
    ypos *marks; /* positions of every ${ in the source, in order */
    size_t nmarks, capmarks;
    struct {
        char *name;
        hl_ynode *node;
    } *anchors;
    size_t nanchors, capanchors;
    size_t aliases;
    hl_diags *diags;
    int oom;
};

static void *doc_alloc(hl_ydoc *doc, size_t size)
{
    if (doc->nblocks == doc->capblocks) {
        size_t cap = doc->capblocks ? doc->capblocks * 2 : 64;
        void **b = realloc(doc->blocks, cap * sizeof *b);
        if (!b) {
            doc->oom = 1;
            return NULL;
        }
        doc->blocks = b;
        doc->capblocks = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        doc->oom = 1;
        return NULL;
    }
    doc->blocks[doc->nblocks++] = p;
    return p;
}

/* Grow an array owned by the doc: reallocs the tracked block in place. */
static void *doc_grow(hl_ydoc *doc, void *old, size_t size)
{
    if (!old)
        return doc_alloc(doc, size);
    for (size_t i = doc->nblocks; i-- > 0;) {
        if (doc->blocks[i] == old) {
            void *p = realloc(old, size);
            if (!p) {
                doc->oom = 1;
                return NULL;
            }
            doc->blocks[i] = p;
            return p;
        }
    }
    return NULL;
}

static void add_mark(hl_ydoc *doc, unsigned line, unsigned col)
{
    if (doc->nmarks == doc->capmarks) {
        size_t cap = doc->capmarks ? doc->capmarks * 2 : 16;
        ypos *m = realloc(doc->marks, cap * sizeof *m);
        if (!m) {
            doc->oom = 1;
            return;
        }
        doc->marks = m;
        doc->capmarks = cap;
    }
    doc->marks[doc->nmarks++] = (ypos){line, col};
}

/* Swap the braces of ${...} for markers; records where each one starts. */
static char *premark(hl_ydoc *doc, const char *text, size_t len,
                     size_t *outlen)
{
    size_t extra = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '$' && text[i + 1] == '{')
            extra += 2 * (MARK_LEN - 1);
    char *out = malloc(len + extra + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int starts = c == '$' && i + 1 < len && text[i + 1] == '{' &&
                     !(i > 0 && text[i - 1] == '$');
        size_t close = 0;
        if (starts) {
            for (size_t j = i + 2; j < len; j++) {
                if (text[j] == '}') {
                    close = j;
                    break;
                }
                if (text[j] == '\n' || text[j] == '{')
                    break;
            }
        }
        if (close) {
            add_mark(doc, line, col);
            out[o++] = '$';
            memcpy(out + o, MARK_OPEN, MARK_LEN);
            o += MARK_LEN;
            size_t n = close - (i + 2);
            memcpy(out + o, text + i + 2, n);
            o += n;
            memcpy(out + o, MARK_CLOSE, MARK_LEN);
            o += MARK_LEN;
            for (size_t j = i; j <= close; j++)
                if (((unsigned char)text[j] & 0xC0) != 0x80)
                    col++;
            i = close;
            continue;
        }
        out[o++] = c;
        if (c == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)c & 0xC0) != 0x80) {
            col++;
        }
    }
    out[o] = 0;
    *outlen = o;
    return out;
}

/* The position of the k-th ${ at or after (line, col). */
static ypos mark_after(const hl_ydoc *doc, unsigned line, unsigned col,
                       size_t k)
{
    for (size_t i = 0; i < doc->nmarks; i++) {
        const ypos *m = &doc->marks[i];
        if (m->line > line || (m->line == line && m->col >= col)) {
            if (i + k < doc->nmarks)
                return doc->marks[i + k];
            break;
        }
    }
    return (ypos){line, col};
}

static int valid_env_name(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') ||
                    (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Read a ${file:PATH} secret; returns 0 or -errno / HL_ETOOBIG. */
static int read_secret(const hl_ydoc *doc, const char *path, hl_buf *out)
{
    (void)doc;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char buf[8192];
    size_t n, total = 0, start = out->len;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        total += n;
        if (total > MAX_SECRET_FILE) {
            rc = HL_ETOOBIG;
            break;
        }
        hl_buf_put(out, buf, n);
        if (out->oom) {
            rc = HL_ENOMEM;
            break;
        }
    }
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    if (!rc && out->len > start && out->p[out->len - 1] == '\n') {
        out->p[--out->len] = 0;
        if (out->len > start && out->p[out->len - 1] == '\r')
            out->p[--out->len] = 0;
    }
    return rc;
}

/* Expand the markers of one scalar; returns 1 if anything was expanded. */
static int expand(hl_ydoc *doc, hl_ynode *n)
{
    const char *s = n->u.scalar.str;
    if (!strstr(s, MARK_OPEN) && !strstr(s, MARK_CLOSE) && !strstr(s, "$${"))
        return 0;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    size_t k = 0, errors_before = doc->diags->errors;
    int expanded = 0;
    while (*s) {
        if (s[0] == '$' && s[1] == '$' && s[2] == '{') {
            hl_buf_put(&b, "${", 2);
            s += 3;
            continue;
        }
        if (strncmp(s, MARK_CLOSE, MARK_LEN) == 0) {
            hl_buf_put(&b, "}", 1); /* the scalar ended inside a ${...} */
            s += MARK_LEN;
            continue;
        }
        if (s[0] != '$' || strncmp(s + 1, MARK_OPEN, MARK_LEN) != 0) {
            hl_buf_put(&b, s, 1);
            s++;
            continue;
        }
        const char *ref = s + 1 + MARK_LEN;
        const char *end = strstr(ref, MARK_CLOSE);
        if (!end) {
            hl_buf_put(&b, "${", 2);
            s = ref;
            continue;
        }
        size_t rn = (size_t)(end - ref);
        ypos at = mark_after(doc, n->line, n->col, k++);
        expanded = 1;
        if (rn > 5 && strncmp(ref, "file:", 5) == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%.*s", (int)(rn - 5), ref + 5);
            int rc = read_secret(doc, path, &b);
            if (rc)
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, at.line,
                             at.col, NULL,
                             "${file:%s}: cannot read the file: %s%s", path,
                             rc == HL_ETOOBIG ? "larger than 1 MiB"
                                              : hl_strerror(rc),
                             path[0] == '/'
                                 ? ""
                                 : " (a relative path starts from hookline's "
                                   "working directory)");
        } else if (valid_env_name(ref, rn)) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)rn, ref);
            const char *v = getenv(name);
            if (v)
                hl_buf_put(&b, v, strlen(v));
            else
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, at.line,
                             at.col, NULL,
                             "environment variable %s is not set (export it, "
                             "or put the value in a file and use "
                             "${file:PATH})",
                             name);
        } else {
            hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, at.line, at.col,
                         NULL,
                         "'${%.*s}' is not a valid reference: use ${NAME} for "
                         "an environment variable, ${file:PATH} for a file's "
                         "contents, or $${ for a literal ${",
                         (int)rn, ref);
        }
        s = end + MARK_LEN;
    }
    hl_buf_put(&b, "", 0);
    if (b.oom) {
        hl_buf_free(&b);
        doc->oom = 1;
        return expanded;
    }
    char *copy = doc_alloc(doc, b.len + 1);
    if (copy) {
        memcpy(copy, b.p, b.len + 1);
        n->u.scalar.str = copy;
        n->u.scalar.len = b.len;
    }
    hl_buf_free(&b);
    n->u.scalar.failed = doc->diags->errors > errors_before;
    return expanded;
}

/* Put the markers back as braces, for documents loaded without expansion. */
static void unmark(char *s, size_t *len)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (strncmp(r, MARK_OPEN, MARK_LEN) == 0) {
            *w++ = '{';
            r += MARK_LEN;
        } else if (strncmp(r, MARK_CLOSE, MARK_LEN) == 0) {
            *w++ = '}';
            r += MARK_LEN;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    *len = (size_t)(w - s);
}

static hl_ynode *new_node(hl_ydoc *doc, hl_ynode_type type,
                          const yaml_mark_t *m)
{
    hl_ynode *n = doc_alloc(doc, sizeof *n);
    if (!n)
        return NULL;
    n->type = type;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    return n;
}

static void set_anchor(hl_ydoc *doc, const yaml_char_t *name, hl_ynode *n)
{
    if (!name)
        return;
    if (doc->nanchors == doc->capanchors) {
        size_t cap = doc->capanchors ? doc->capanchors * 2 : 8;
        void *a = realloc(doc->anchors, cap * sizeof *doc->anchors);
        if (!a) {
            doc->oom = 1;
            return;
        }
        doc->anchors = a;
        doc->capanchors = cap;
    }
    char *copy = doc_alloc(doc, strlen((const char *)name) + 1);
    if (!copy)
        return;
    strcpy(copy, (const char *)name);
    doc->anchors[doc->nanchors].name = copy;
    doc->anchors[doc->nanchors].node = n;
    doc->nanchors++;
}

static hl_ynode *find_anchor(const hl_ydoc *doc, const char *name)
{
    for (size_t i = doc->nanchors; i-- > 0;)
        if (strcmp(doc->anchors[i].name, name) == 0)
            return doc->anchors[i].node;
    return NULL;
}

typedef struct {
    hl_ynode *node;
    const yaml_char_t *anchor; /* owned copy, set once complete */
    char *anchor_copy;
    hl_ynode *pending_key; /* mappings: key waiting for its value */
} frame;

/* Attach a finished node to its parent; checks duplicate keys. */
static int attach(hl_ydoc *doc, frame *parent, hl_ynode *n)
{
    hl_ynode *p = parent->node;
    if (p->type == HL_YSEQ) {
        hl_ynode **items = doc_grow(doc, p->u.seq.items,
                                    (p->u.seq.n + 1) * sizeof *items);
        if (!items)
            return -1;
        items[p->u.seq.n++] = n;
        p->u.seq.items = items;
        return 0;
    }
    if (!parent->pending_key) {
        if (n->type != HL_YSCALAR) {
            hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, n->line,
                         n->col, NULL,
                         "a mapping key must be a plain string, not a %s",
                         hl_ynode_type_name(n));
            return -1;
        }
        for (size_t i = 0; i < p->u.map.n; i++) {
            const hl_ynode *k = p->u.map.pairs[i].key;
            if (strcmp(k->u.scalar.str, n->u.scalar.str) == 0) {
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, n->line,
                             n->col, NULL,
                             "duplicate key '%s' (first defined at line %u); "
                             "remove one of them",
                             n->u.scalar.str, k->line);
                return -1;
            }
        }
        parent->pending_key = n;
        return 0;
    }
    hl_ypair *pairs = doc_grow(doc, p->u.map.pairs,
                               (p->u.map.n + 1) * sizeof *pairs);
    if (!pairs)
        return -1;
    pairs[p->u.map.n].key = parent->pending_key;
    pairs[p->u.map.n].value = n;
    p->u.map.n++;
    p->u.map.pairs = pairs;
    parent->pending_key = NULL;
    return 0;
}

static void yaml_error(hl_ydoc *doc, const yaml_parser_t *p)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context)
        hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                     (unsigned)m->line + 1, (unsigned)m->column + 1, NULL,
                     "YAML syntax: %s %s (started at line %zu)", problem,
                     p->context, p->context_mark.line + 1);
    else
        hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                     (unsigned)m->line + 1, (unsigned)m->column + 1, NULL,
                     "YAML syntax: %s", problem);
}

static hl_ynode *scalar_node(hl_ydoc *doc, const yaml_event_t *e)
{
    hl_ynode *n = new_node(doc, HL_YSCALAR, &e->start_mark);
    if (!n)
        return NULL;
    size_t len = e->data.scalar.length;
    char *s = doc_alloc(doc, len + 1);
    if (!s)
        return NULL;
    memcpy(s, e->data.scalar.value, len);
    s[len] = 0;
    n->u.scalar.str = s;
    n->u.scalar.len = strlen(s); /* stops at an embedded NUL */
    n->u.scalar.plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (doc->flags & HL_YDOC_EXPAND) {
        if (expand(doc, n))
            n->u.scalar.plain = false;
    } else {
        unmark(n->u.scalar.str, &n->u.scalar.len);
    }
    return n;
}

static int build(hl_ydoc *doc, yaml_parser_t *p)
{
    frame stack[MAX_DEPTH + 1];
    size_t depth = 0;
    int docs = 0, rc = 0;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(p, &e)) {
            yaml_error(doc, p);
            rc = HL_EYAML;
            break;
        }
        hl_ynode *done = NULL;
        const yaml_char_t *anchor = NULL;
        int stop = 0;
        switch (e.type) {
        case YAML_STREAM_END_EVENT:
            stop = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                             (unsigned)e.start_mark.line + 1,
                             (unsigned)e.start_mark.column + 1, NULL,
                             "expected one YAML document, found a second "
                             "one; remove the '---' line");
                rc = HL_EYAML;
                stop = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            done = scalar_node(doc, &e);
            anchor = e.data.scalar.anchor;
            break;
        case YAML_ALIAS_EVENT:
            done = find_anchor(doc, (const char *)e.data.alias.anchor);
            if (!done) {
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                             (unsigned)e.start_mark.line + 1,
                             (unsigned)e.start_mark.column + 1, NULL,
                             "alias *%s names no complete anchor defined "
                             "before it",
                             (const char *)e.data.alias.anchor);
                rc = HL_EYAML;
            } else if (++doc->aliases > MAX_ALIASES) {
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                             (unsigned)e.start_mark.line + 1,
                             (unsigned)e.start_mark.column + 1, NULL,
                             "too many aliases (more than %d)", MAX_ALIASES);
                rc = HL_EYAML;
                done = NULL;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == MAX_DEPTH) {
                hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file,
                             (unsigned)e.start_mark.line + 1,
                             (unsigned)e.start_mark.column + 1, NULL,
                             "nested deeper than %d levels", MAX_DEPTH);
                rc = HL_EYAML;
                stop = 1;
                break;
            }
            stack[depth] = (frame){0};
            stack[depth].node = new_node(
                doc, e.type == YAML_SEQUENCE_START_EVENT ? HL_YSEQ : HL_YMAP,
                &e.start_mark);
            if (!stack[depth].node) {
                stop = 1;
                break;
            }
            {
                const yaml_char_t *a = e.type == YAML_SEQUENCE_START_EVENT
                                           ? e.data.sequence_start.anchor
                                           : e.data.mapping_start.anchor;
                if (a) {
                    stack[depth].anchor_copy =
                        doc_alloc(doc, strlen((const char *)a) + 1);
                    if (stack[depth].anchor_copy)
                        strcpy(stack[depth].anchor_copy, (const char *)a);
                }
            }
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            done = stack[depth].node;
            anchor = (const yaml_char_t *)stack[depth].anchor_copy;
            break;
        default:
            break;
        }
        if (done) {
            set_anchor(doc, anchor, done);
            if (depth == 0)
                doc->root = done;
            else if (attach(doc, &stack[depth - 1], done))
                rc = HL_EYAML;
        }
        yaml_event_delete(&e);
        if (doc->oom) {
            hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, 0, 0, NULL,
                         "out of memory while reading the document");
            return HL_ENOMEM;
        }
        if (stop || rc)
            break;
    }
    return rc;
}

static int valid_utf8_markers(hl_ydoc *doc, const char *text, size_t len)
{
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < len; i++) {
        if (i + MARK_LEN <= len && (memcmp(text + i, MARK_OPEN, MARK_LEN) == 0 ||
                                    memcmp(text + i, MARK_CLOSE, MARK_LEN) == 0)) {
            hl_diags_add(doc->diags, HL_DIAG_ERROR, doc->file, line, col, NULL,
                         "the private-use characters U+E000 and U+E001 are "
                         "reserved; remove them");
            return HL_EYAML;
        }
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return 0;
}

int hl_ydoc_load_string(const char *name, const char *text, size_t len,
                        unsigned flags, hl_diags *d, hl_ydoc **out)
{
    *out = NULL;
    size_t errors_before = d->errors;
    hl_ydoc *doc = calloc(1, sizeof *doc);
    if (!doc)
        return HL_ENOMEM;
    doc->flags = flags;
    doc->diags = d;
    doc->file = strdup(name ? name : "<string>");
    if (!doc->file) {
        hl_ydoc_destroy(doc);
        return HL_ENOMEM;
    }
    int rc = valid_utf8_markers(doc, text, len);
    if (rc) {
        hl_ydoc_destroy(doc);
        return rc;
    }
    size_t mlen;
    char *marked = premark(doc, text, len, &mlen);
    if (!marked || doc->oom) {
        free(marked);
        hl_ydoc_destroy(doc);
        return HL_ENOMEM;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        free(marked);
        hl_ydoc_destroy(doc);
        return HL_ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)marked, mlen);
    rc = build(doc, &p);
    yaml_parser_delete(&p);
    free(marked);
    if (rc == HL_EYAML || rc == HL_ENOMEM) {
        hl_ydoc_destroy(doc);
        return rc;
    }
    *out = doc;
    return d->errors > errors_before ? HL_ECONFIG : 0;
}

int hl_ydoc_load_file(const char *path, unsigned flags, hl_diags *d,
                      hl_ydoc **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = -errno;
        hl_diags_add(d, HL_DIAG_ERROR, path, 0, 0, NULL,
                     "cannot open the file: %s", hl_strerror(err));
        return err;
    }
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    char buf[16384];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (b.len + n > MAX_FILE_SIZE) {
            hl_diags_add(d, HL_DIAG_ERROR, path, 0, 0, NULL,
                         "the file is larger than 16 MiB");
            rc = HL_ETOOBIG;
            break;
        }
        hl_buf_put(&b, buf, n);
        if (b.oom) {
            rc = HL_ENOMEM;
            break;
        }
    }
    if (!rc && ferror(f)) {
        rc = -EIO;
        hl_diags_add(d, HL_DIAG_ERROR, path, 0, 0, NULL,
                     "cannot read the file: %s", hl_strerror(rc));
    }
    fclose(f);
    if (!rc)
        rc = hl_ydoc_load_string(path, b.p ? b.p : "", b.len, flags, d, out);
    hl_buf_free(&b);
    return rc;
}

void hl_ydoc_destroy(hl_ydoc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->nblocks; i++)
        free(doc->blocks[i]);
    free(doc->blocks);
    free(doc->marks);
    free(doc->anchors);
    free(doc->file);
    free(doc);
}

const hl_ynode *hl_ydoc_root(const hl_ydoc *doc)
{
    return doc->root;
}

const char *hl_ydoc_file(const hl_ydoc *doc)
{
    return doc->file;
}

const hl_ynode *hl_ynode_get(const hl_ynode *map, const char *key)
{
    if (!map || map->type != HL_YMAP)
        return NULL;
    for (size_t i = 0; i < map->u.map.n; i++)
        if (strcmp(map->u.map.pairs[i].key->u.scalar.str, key) == 0)
            return map->u.map.pairs[i].value;
    return NULL;
}

bool hl_ynode_is_null(const hl_ynode *n)
{
    if (!n)
        return true;
    if (n->type != HL_YSCALAR || !n->u.scalar.plain)
        return false;
    const char *s = n->u.scalar.str;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const char *hl_ynode_type_name(const hl_ynode *n)
{
    if (!n || hl_ynode_is_null(n))
        return "null";
    switch (n->type) {
    case HL_YSCALAR:
        return "scalar";
    case HL_YSEQ:
        return "list";
    case HL_YMAP:
        return "mapping";
    }
    return "node";
}
