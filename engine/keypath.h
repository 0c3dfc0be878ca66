/* keypath.h - the key path ("sources.github.verify", "routes[0].to[1]") that
 * loaders put in front of their messages. */
#ifndef HL_KEYPATH_H
#define HL_KEYPATH_H

#include <stddef.h>

typedef struct {
    char s[512];
    size_t len;
} hl_keypath;

/* Append printf-style text; returns the length to pop back to. The path is
 * cut, never overrun, when it grows too long. */
__attribute__((format(printf, 2, 3))) size_t
hl_keypath_push(hl_keypath *p, const char *fmt, ...);
/* Append ".key" (or "key" at the start). */
size_t hl_keypath_key(hl_keypath *p, const char *key);
void hl_keypath_pop(hl_keypath *p, size_t mark);

#endif
