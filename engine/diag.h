/* diag.h - diagnostics collected while loading files: what, where, what to do. */
#ifndef HL_DIAG_H
#define HL_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    HL_DIAG_ERROR,
    HL_DIAG_WARNING,
} hl_diag_kind;

typedef struct {
    hl_diag_kind kind;
    char *file;   /* may be NULL */
    unsigned line; /* 1-based; 0 when the message has no position */
    unsigned col;
    char *path;   /* key path such as "sources.github.verify"; may be NULL */
    char *msg;
} hl_diag;

typedef struct {
    hl_diag *v;
    size_t n, cap;
    size_t errors, warnings;
} hl_diags;

/* Append one message; on allocation failure the message is dropped but the
 * error count still grows, so a failure is never mistaken for success. */
__attribute__((format(printf, 7, 8))) void
hl_diags_add(hl_diags *d, hl_diag_kind kind, const char *file, unsigned line,
             unsigned col, const char *path, const char *fmt, ...);

/* "FILE:LINE:COL: error: PATH: MSG" into buf (always terminated). */
void hl_diag_format(const hl_diag *m, char *buf, size_t size);
/* One formatted line per message. */
void hl_diags_print(const hl_diags *d, FILE *f);
/* Move every message of src to the end of dst; src is left empty. */
void hl_diags_move(hl_diags *dst, hl_diags *src);
void hl_diags_free(hl_diags *d);

/* Levenshtein distance, for "did you mean"; 99 for words over 40 bytes. */
size_t hl_edit_distance(const char *a, const char *b);

#endif
