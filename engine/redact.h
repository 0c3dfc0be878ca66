/* redact.h - redaction of JSON values and free text: fields and patterns. */
#ifndef HL_REDACT_H
#define HL_REDACT_H

#include "config.h"
#include "diag.h"

#include <jansson.h>
#include <stddef.h>

/*
 * A redactor is built once from a policy's rules and is then read-only: any
 * number of threads may redact with it at the same time.
 *
 * Field rules name a place in a JSON document by path:
 *   - a JSON Pointer (RFC 6901): /data/labels/token, /items/0/secret
 *     (~1 is '/', ~0 is '~'; array elements are named by their index);
 *   - a glob, where a whole segment '*' is any one key or index, a whole
 *     segment '**' zero or more levels (but a final one at least one), and
 *     '*' or '?' inside a segment any run of characters or any one
 *     character; a backslash makes the next character literal. So
 *     "/data/labels/" then a star is every label, and a path starting "**"
 *     then "/password" is a key named password at any depth (see
 *     policies/redact/secrets.yaml).
 * The first field rule (in the order given, packs expanded where they are
 * named) that names a value decides it, and nothing under it is looked at
 * again by field rules. The document's root itself is never replaced.
 *
 * Pattern rules are PCRE2 regular expressions run over every string value
 * (object keys are left alone) and over free text. A pattern with a named
 * group 'secret' replaces only that group and keeps the rest of the match as
 * context (with (?J) several alternatives may each name a 'secret'; the first
 * one set counts; when none is set the whole match is replaced). Matches of
 * all pattern rules are found, overlapping ones joined, and replaced in one
 * pass; passes repeat until nothing changes (at most 8), in case a
 * replacement made a new match next to it.
 *
 * Actions:
 *   mask  the value (field) or the matched text (pattern) becomes the rule's
 *         replacement, by default "[REDACTED]";
 *   drop  the field is removed (field rules only);
 *   hash  "hmac256:" and the first 16 hex digits of HMAC-SHA256(key, value):
 *         the same value always gives the same token under one key, so events
 *         can be correlated without showing the value. A non-string field is
 *         hashed as its compact JSON text with sorted keys.
 * A value that already is what its rule would make of it (the mask text, or a
 * hash token) is left as it is and not counted, and pattern rules never touch
 * a hash token inside a text: so a redacted document redacted again stays the
 * same, provided no pattern matches inside a mask text.
 *
 * Array elements are named by their index in the document as this call got
 * it: dropping /tags/1 does not make /tags/2 the new /tags/1.
 */
typedef struct hl_redactor hl_redactor;

/* The mask used when a rule names no replacement. */
#define HL_REDACT_MASK_DEFAULT "[REDACTED]"

/*
 * Build a redactor from a policy's rules. Packs are read from
 * <packs_dir>/<name>.yaml (packs_dir NULL means "policies/redact"); their
 * format is described at the top of policies/redact/secrets.yaml. Every
 * problem goes to d: an unknown pack (naming the pack, the folder and the
 * packs found there), a YAML or rule error in a pack file with its
 * file:line:col, a bad regular expression with its offset. Rules given here
 * are reported as "redact[i]". Returns 0, HL_ECONFIG, HL_ENOMEM or
 * HL_EINTERNAL (no random bytes for the key).
 *
 * hash_key is the secret for keyed hashes (copied); NULL means a random key
 * made once per process. A non-NULL key must not be empty.
 */
int hl_redactor_create(const hl_redact_rule *rules, size_t n,
                       const char *packs_dir, const unsigned char *hash_key,
                       size_t key_len, hl_diags *d, hl_redactor **out);

/*
 * Redact a JSON value in place: field rules first, then pattern rules over
 * every string value. Returns the number of replacements made (drops
 * included), or a negative code: HL_ENOMEM, HL_ETOOBIG (nested deeper than
 * HL_REDACT_MAX_DEPTH), HL_EINTERNAL (PCRE2 or libcrypto failed, for example
 * a match limit). On failure the document may be partly redacted and must
 * not be sent anywhere.
 */
int hl_redact_json(const hl_redactor *r, json_t *doc);

#define HL_REDACT_MAX_DEPTH 4096

/*
 * Redact free text (for example a stored response excerpt) with the pattern
 * rules. Returns a malloc'd, NUL-terminated copy (*out_len is its length, the
 * terminator excluded; out_len may be NULL), or NULL on failure. Bytes that
 * are not valid UTF-8 are kept as they are.
 */
char *hl_redact_text(const hl_redactor *r, const char *text, size_t len,
                     size_t *out_len);

void hl_redactor_destroy(hl_redactor *r);

/* The redactor of rules with the packs of cfg's policies folder
 * (hl_config_find_dir(cfg->policies_path, "policies")/redact). */
int hl_redactor_for(const hl_config *cfg, const hl_redact_rule *rules,
                    size_t n, hl_diags *d, hl_redactor **out);
/* Build every redactor cfg names (each policy's, storage.redact_at_rest),
 * so that check and reload report their problems; 0 or HL_ECONFIG. */
int hl_redactors_check(const hl_config *cfg, hl_diags *d);

#endif
