/* jsontext.h - JSON as text: a strict validator for the hot path and escaping. */
#ifndef HL_JSONTEXT_H
#define HL_JSONTEXT_H

#include <stddef.h>

/*
 * Check that buf holds exactly one JSON text (RFC 8259) without building
 * anything: the intake path only needs to know. It accepts what jansson's
 * json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) accepts and nothing more, so
 * an event accepted here always parses later: UTF-8 must be valid, \u
 * escapes must pair their surrogates, integers must fit 64 bits, reals must
 * be finite, nesting is at most 2048 deep. Returns 0, or -1 with the byte
 * offset and a short reason.
 */
int hl_json_validate(const char *buf, size_t len, size_t *err_offset,
                     const char **err_reason);

/* Append s as the inside of a JSON string (no quotes) to out, which has
 * room for cap bytes including the terminator; returns the length that
 * escaping needs (like snprintf), so out was cut short when it is >= cap. */
size_t hl_json_escape(char *out, size_t cap, const char *s);

#endif
