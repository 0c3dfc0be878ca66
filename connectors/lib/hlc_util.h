/* hlc_util.h - small helpers the built-in connectors share: text buffers, a JSON builder, reading the canonical event. */
#ifndef HLC_UTIL_H
#define HLC_UTIL_H

/*
 * Written only against the SDK header and the C library, like a connector.
 * Every connector .so links its own copy; the plugins are built with
 * -fvisibility=hidden, so none of these names leaves the .so.
 */

#include <hookline/connector.h>

#include <stddef.h>

/* ---- text ---------------------------------------------------------------- */

/* A growing string that remembers its first allocation failure, so text is
 * built straight through and checked once, by hlcu_sb_take. Start it as
 * (hlcu_sbuf){.a = api}. */
typedef struct {
    const hlc_api *a;
    char *s;
    size_t len, cap;
    int failed;
} hlcu_sbuf;

void hlcu_sb_addn(hlcu_sbuf *b, const char *s, size_t n);
void hlcu_sb_add(hlcu_sbuf *b, const char *s);

/* The text built (allocated; "" when nothing was added), or NULL when out
 * of memory (the buffer is freed then). */
char *hlcu_sb_take(hlcu_sbuf *b);

/* The number of UTF-8 characters (not bytes) in s. */
size_t hlcu_chars(const char *s);

/* Whether s is well-formed UTF-8 (no overlong two-byte forms). */
int hlcu_utf8_valid(const char *s);

/* Line breaks and tabs as spaces, in place: for a one-line title. */
void hlcu_one_line(char *s);

int hlcu_ends_with(const char *s, const char *suffix);

/* Whether url is set and starts with http:// or https://. */
int hlcu_link_ok(const char *url);

/* The start of a response body as one printable line in out (cap bytes):
 * leading blanks skipped, control characters as spaces, trailing blanks
 * dropped, never ending inside a UTF-8 sequence. */
void hlcu_body_line(const char *body, size_t len, char *out, size_t cap);

/* ---- the canonical event ------------------------------------------------- */

/* A non-empty string of the event at the JSON pointer ptr, or NULL. */
const char *hlcu_ev_str(const hlc_api *a, const hlc_json *ev, const char *ptr);

/* Whether a data.status says the matter is over: resolved or closed. */
int hlcu_status_closed(const char *status);

/* data.status resolved or closed, or a type that ends .resolved or
 * .closed. */
int hlcu_is_resolved(const hlc_api *a, const hlc_json *ev);

/* The severities of the canonical event, most severe first. */
#define HLCU_SEVERITIES 4
extern const char *const hlcu_severities[HLCU_SEVERITIES];

/* The event's severity as an index into hlcu_severities; an absent or
 * unknown one is info. */
size_t hlcu_severity_of(const hlc_api *a, const hlc_json *ev);

/* data.title, else the type, else "(no title)" (borrowed). */
const char *hlcu_title_of(const hlc_api *a, const hlc_json *ev);

/* "type · time · event id" of the parts the event has (allocated), or NULL
 * when out of memory. */
char *hlcu_context_line(const hlc_api *a, const hlc_json *ev);

/* The key itself when it is at most max characters, else "hookline-" and
 * the hex HMAC-SHA256 (key "hookline") of it written to buf, so the same
 * long key always gives the same short one. Borrowed from key or buf; NULL
 * when the hash fails. */
#define HLCU_HASHED_KEY_SIZE (16 + 64 + 1)
const char *hlcu_short_key(const hlc_api *a, const char *key, size_t max,
                           char buf[HLCU_HASHED_KEY_SIZE]);

/* ---- templates ----------------------------------------------------------- */

/* Compiles the Mustache template of config key into *out (left alone when
 * the key is unset); -1 with err set when it does not compile. The chat
 * connectors' message: "KEY: the Mustache template does not compile: ...". */
int hlcu_compile(const hlc_api *a, const hlc_config *cfg, const char *key,
                 hlc_template **out, char *err, size_t errlen);

/* As hlcu_compile, with the incident connectors' message: "KEY: the
 * template does not compile: ..." (and room for a longer reason). */
int hlcu_compile_key(const hlc_api *a, const hlc_config *cfg, const char *key,
                     hlc_template **out, char *err, size_t errlen);

/* Renders an override template t (none when NULL) against ctx, without
 * escaping. *out is the text (allocated), or NULL when there is no template
 * or the text is blank. -1 with err set when rendering fails or the text
 * is not UTF-8; key names the template in the message. */
int hlcu_render_override(const hlc_api *a, const hlc_template *t,
                         const hlc_json *ctx, const char *key, char **out,
                         char *err, size_t errlen);

/* ---- building JSON ------------------------------------------------------- */

/* Builds JSON and remembers the first failure, so a message is built
 * straight through and checked once. Start it as (hlcu_jb){.a = api}. */
typedef struct {
    const hlc_api *a;
    int failed;
} hlcu_jb;

/* Sets obj[key] = v (taken, also on failure); v, or NULL on failure. */
hlc_json *hlcu_put(hlcu_jb *b, hlc_json *obj, const char *key, hlc_json *v);

/* Appends v to arr (taken, also on failure); v, or NULL on failure. */
hlc_json *hlcu_push(hlcu_jb *b, hlc_json *arr, hlc_json *v);

/* Sets obj[key] to the string s; a NULL s (an allocation that failed)
 * counts as a failure. */
void hlcu_put_str(hlcu_jb *b, hlc_json *obj, const char *key, const char *s);

/* ---- requests ------------------------------------------------------------ */

/* Makes req a POST of the JSON body (len bytes; still the caller's) to url. An
 * hlc_render_result: HLC_RENDER_OK, or HLC_RENDER_RETRY with err set when
 * out of memory. */
int hlcu_request_json(const hlc_api *a, hlc_request *req, const char *url,
                      const char *body, size_t len, char *err, size_t errlen);

/* ---- classifying --------------------------------------------------------- */

/* Appends to out->reason, cut at its end; *n is the length so far. */
void hlcu_add_reason(hlc_outcome *out, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
