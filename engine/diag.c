/* diag.c - diagnostics collected while loading files. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void hl_diags_add(hl_diags *d, hl_diag_kind kind, const char *file,
                  unsigned line, unsigned col, const char *path,
                  const char *fmt, ...)
{
    if (kind == HL_DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        hl_diag *v = realloc(d->v, cap * sizeof *v);
        if (!v)
            return;
        d->v = v;
        d->cap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hl_diag *m = &d->v[d->n];
    m->kind = kind;
    m->file = dup_or_null(file);
    m->line = line;
    m->col = col;
    m->path = path && *path ? strdup(path) : NULL;
    m->msg = strdup(buf);
    if (!m->msg) {
        free(m->file);
        free(m->path);
        return;
    }
    d->n++;
}

void hl_diag_format(const hl_diag *m, char *buf, size_t size)
{
    const char *kind = m->kind == HL_DIAG_ERROR ? "error" : "warning";
    char where[600] = "";
    if (m->file && m->line)
        snprintf(where, sizeof where, "%s:%u:%u: ", m->file, m->line, m->col);
    else if (m->file)
        snprintf(where, sizeof where, "%s: ", m->file);
    snprintf(buf, size, "%s%s: %s%s%s", where, kind, m->path ? m->path : "",
             m->path ? ": " : "", m->msg);
}

void hl_diags_print(const hl_diags *d, FILE *f)
{
    char buf[2048];
    for (size_t i = 0; i < d->n; i++) {
        hl_diag_format(&d->v[i], buf, sizeof buf);
        fprintf(f, "%s\n", buf);
    }
}

void hl_diags_move(hl_diags *dst, hl_diags *src)
{
    for (size_t i = 0; i < src->n; i++) {
        hl_diag *m = &src->v[i];
        hl_diags_add(dst, m->kind, m->file, m->line, m->col, m->path, "%s",
                     m->msg);
        if (m->kind == HL_DIAG_ERROR)
            dst->errors--;
        else
            dst->warnings--;
    }
    dst->errors += src->errors;
    dst->warnings += src->warnings;
    hl_diags_free(src);
}

void hl_diags_free(hl_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].path);
        free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

size_t hl_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}
