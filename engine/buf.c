/* buf.c - a growable byte buffer, always NUL-terminated. */
#include "buf.h"

#include "jsontext.h"

#include <stdlib.h>
#include <string.h>

void hl_buf_init(hl_buf *b, char *storage, size_t size)
{
    b->p = storage;
    b->cap = storage ? size : 0;
    b->len = 0;
    b->inline_ = storage;
    b->inline_cap = b->cap;
    b->oom = 0;
    if (storage && size)
        storage[0] = 0;
}

static int grow(hl_buf *b, size_t need)
{
    if (b->len + need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = b->p == b->inline_ ? malloc(cap) : realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    if (b->p == b->inline_ && b->len)
        memcpy(p, b->inline_, b->len);
    b->p = p;
    b->cap = cap;
    return 0;
}

void hl_buf_put(hl_buf *b, const void *data, size_t n)
{
    if (b->oom || grow(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void hl_buf_puts(hl_buf *b, const char *s)
{
    hl_buf_put(b, s, strlen(s));
}

void hl_buf_json(hl_buf *b, const char *s)
{
    size_t need = hl_json_escape(NULL, 0, s);
    if (b->oom || grow(b, need))
        return;
    hl_json_escape(b->p + b->len, need + 1, s);
    b->len += need;
}

char *hl_buf_take(hl_buf *b, size_t *len)
{
    char *out = NULL;
    if (!b->oom) {
        if (b->p && b->p != b->inline_) {
            out = b->p;
        } else if ((out = malloc(b->len + 1))) {
            if (b->len)
                memcpy(out, b->p, b->len);
            out[b->len] = 0;
        }
    }
    if (len)
        *len = out ? b->len : 0;
    if (!out)
        hl_buf_free(b);
    hl_buf_init(b, b->inline_, b->inline_cap);
    return out;
}

void hl_buf_free(hl_buf *b)
{
    if (b->p && b->p != b->inline_)
        free(b->p);
    hl_buf_init(b, b->inline_, b->inline_cap);
}
