/* template.h - Mustache templates over JSON, for connector bodies. */
#ifndef HL_TEMPLATE_H
#define HL_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * The Mustache spec v1.x core: variables ({{x}} escaped, {{{x}}} and {{&x}}
 * raw), dotted names (a.b.c, and a.0 indexes an array), the implicit
 * iterator {{.}}, sections {{#x}}..{{/x}} over lists, objects and truthy
 * values, inverted sections {{^x}}, comments {{! }}, set delimiters
 * {{=<% %>=}}, partials {{>name}} with standalone-line indentation. No
 * lambdas.
 *
 * Values interpolate as: strings as they are; integers in decimal; reals in
 * the shortest form that reads back the same (1.5, 1.21, 3); true/false as
 * "true"/"false"; null and missing names as nothing; objects and arrays as
 * compact JSON text. Falsey, for sections: missing, null, false, 0, 0.0,
 * "" and the empty list.
 *
 * A compiled template is immutable apart from its partial cache, which a
 * lock guards: one template may be rendered from several threads at once.
 */
typedef struct hl_template hl_template;

typedef enum {
    HL_ESC_HTML, /* & " < > become entities, as the spec says */
    HL_ESC_JSON, /* the value fits inside a JSON string literal */
    HL_ESC_NONE
} hl_escape;

/* Sections nested deeper than this in one template do not compile; while
 * rendering, sections and partials together nest at most this deep. */
#define HL_TEMPLATE_MAX_NESTING 256
/* Partials including partials: deeper is an HL_ERANGE error. */
#define HL_TEMPLATE_MAX_PARTIAL_DEPTH 64
/* A render that writes more bytes than this fails with HL_ETOOBIG. */
#define HL_TEMPLATE_MAX_OUTPUT (16u * 1024 * 1024)
/* A render that takes more steps than this fails with HL_ETOOBIG: a step
 * is a node visited or a list item entered; compiling a partial counts one
 * step per 64 bytes. */
#define HL_TEMPLATE_MAX_STEPS 1000000u
/* Distinct (partial, indentation, source) a template caches at most; more
 * are compiled for each use. */
#define HL_TEMPLATE_MAX_CACHED 256

/*
 * Compile src (len bytes, need not be NUL-terminated). On success *out owns
 * a template for hl_template_destroy(). On a syntax error returns
 * HL_ESYNTAX and writes "line L, column C: what is wrong" into err (columns
 * count UTF-8 characters, from 1); HL_ENOMEM when memory runs out.
 */
int hl_template_compile(const char *src, size_t len, hl_template **out,
                        char *err, size_t errlen);

/*
 * Render t against ctx (borrowed; NULL renders as null). partials (borrowed,
 * may be NULL) is a JSON object name -> template source string; a missing
 * name renders as nothing, a non-string is an HL_ESYNTAX error. Partials are
 * compiled on first use and cached in t. esc applies to {{x}} only.
 *
 * On success *out is malloc'd and NUL-terminated (the caller frees it) and
 * *len its length without the terminator (values may hold NUL bytes). On
 * failure *out is NULL, *len 0, and err says what went wrong and where:
 * HL_ESYNTAX (a partial does not compile or is not a string), HL_ERANGE
 * (nesting limits above), HL_ETOOBIG (output or step limits), HL_ENOMEM.
 */
int hl_template_render(const hl_template *t, json_t *ctx, json_t *partials,
                       hl_escape esc, char **out, size_t *len, char *err,
                       size_t errlen);

void hl_template_destroy(hl_template *t);

#endif
