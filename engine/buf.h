/* buf.h - a growable byte buffer, always NUL-terminated, that remembers
 * running out of memory instead of failing every call. */
#ifndef HL_BUF_H
#define HL_BUF_H

#include <stddef.h>

typedef struct {
    char *p;      /* the bytes, NUL-terminated once anything was put */
    size_t len;
    size_t cap;
    char *inline_; /* caller-provided first storage, or NULL */
    size_t inline_cap;
    int oom;       /* an allocation failed: the content is incomplete */
} hl_buf;

/* Start empty; storage (may be NULL) is used until more is needed. */
void hl_buf_init(hl_buf *b, char *storage, size_t size);
void hl_buf_put(hl_buf *b, const void *data, size_t n);
void hl_buf_puts(hl_buf *b, const char *s);
/* s as the inside of a JSON string (see hl_json_escape). */
void hl_buf_json(hl_buf *b, const char *s);
/* Hand the bytes over (malloc'd, never the caller's storage) and reset b;
 * NULL after an allocation failure. */
char *hl_buf_take(hl_buf *b, size_t *len);
void hl_buf_free(hl_buf *b);

#endif
