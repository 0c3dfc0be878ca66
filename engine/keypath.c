/* keypath.c - the key path that loaders put in front of their messages. */
#include "keypath.h"

#include <stdarg.h>
#include <stdio.h>

size_t hl_keypath_push(hl_keypath *p, const char *fmt, ...)
{
    size_t mark = p->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->s + p->len, sizeof p->s - p->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->len += (size_t)n;
    if (p->len >= sizeof p->s)
        p->len = sizeof p->s - 1;
    return mark;
}

size_t hl_keypath_key(hl_keypath *p, const char *key)
{
    return hl_keypath_push(p, p->len ? ".%s" : "%s", key);
}

void hl_keypath_pop(hl_keypath *p, size_t mark)
{
    p->len = mark;
    p->s[mark] = 0;
}
