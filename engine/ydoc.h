/* ydoc.h - a YAML document as a tree of nodes that remember their positions. */
#ifndef HL_YDOC_H
#define HL_YDOC_H

#include "diag.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    HL_YSCALAR,
    HL_YSEQ,
    HL_YMAP,
} hl_ynode_type;

typedef struct hl_ynode hl_ynode;

typedef struct {
    hl_ynode *key; /* always a scalar */
    hl_ynode *value;
} hl_ypair;

struct hl_ynode {
    hl_ynode_type type;
    unsigned line, col; /* 1-based, in characters */
    union {
        struct {
            char *str;   /* NUL-terminated, after ${...} expansion */
            size_t len;
            bool plain;  /* unquoted and not produced by an expansion */
            bool failed; /* an expansion in it failed (already reported) */
        } scalar;
        struct {
            hl_ynode **items;
            size_t n;
        } seq;
        struct {
            hl_ypair *pairs;
            size_t n;
        } map;
    } u;
};

typedef struct hl_ydoc hl_ydoc;

enum {
    /* Expand ${NAME} from the environment and ${file:PATH} from files
     * (relative paths from the working directory); $${ is a literal ${. */
    HL_YDOC_EXPAND = 1u << 0,
};

/*
 * Parse a file or a buffer into a tree. Problems are added to d with their
 * position; the return value is 0 when d got no new error, else HL_EYAML
 * (syntax), HL_ECONFIG (expansion) or -errno (reading the file). *out is set
 * whenever a tree could be built, even with expansion errors; free it with
 * hl_ydoc_destroy(). An empty document has a NULL root.
 */
int hl_ydoc_load_file(const char *path, unsigned flags, hl_diags *d,
                      hl_ydoc **out);
int hl_ydoc_load_string(const char *name, const char *text, size_t len,
                        unsigned flags, hl_diags *d, hl_ydoc **out);
void hl_ydoc_destroy(hl_ydoc *doc);

const hl_ynode *hl_ydoc_root(const hl_ydoc *doc);
const char *hl_ydoc_file(const hl_ydoc *doc);

/* The value of key in a mapping (NULL if absent or n is not a mapping). */
const hl_ynode *hl_ynode_get(const hl_ynode *map, const char *key);
/* An unquoted empty, ~ or null scalar. */
bool hl_ynode_is_null(const hl_ynode *n);
const char *hl_ynode_type_name(const hl_ynode *n);

#endif
