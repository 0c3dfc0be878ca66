/* verify.h - inbound webhook signatures and tokens, and outbound signing. */
#ifndef HL_VERIFY_H
#define HL_VERIFY_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

/* The largest Standard Webhooks key accepted, in bytes (the spec says 24-64;
 * a longer key is refused as HL_ETOOBIG, by config validation too). */
#define HL_WHSEC_KEY_MAX 256

/* Look up a request header by name, case-insensitively; NULL if absent. */
typedef const char *(*hl_header_fn)(void *ctx, const char *name);

/*
 * Run every check configured in v against one request; with none configured
 * the request passes. now_sec is the current Unix time (passed in so tests
 * are deterministic). Returns 0, or:
 *   HL_EVERIFY    the request failed a check (answer 401);
 *   HL_ECONFIG    a configured secret or token is unusable (empty, not
 *                 "whsec_" + base64, unknown algorithm); config validation
 *                 should have refused it (answer 500);
 *   HL_EINTERNAL  libcrypto failed.
 * On any failure why (always NUL-terminated when whylen > 0) names the check,
 * what was wrong and what to do, e.g.
 *   "hmac: header X-Hub-Signature-256 is missing"
 *   "standard_webhooks: webhook-timestamp is outside the 5m tolerance
 *    (6m40s in the past)"
 * and never contains a secret, a token, a header's value or the expected
 * signature. Every secret is compared with every signature, in constant time.
 */
int hl_verify_request(const hl_verify_cfg *v, hl_header_fn get, void *ctx,
                      const void *body, size_t len, int64_t now_sec, char *why,
                      size_t whylen);

/*
 * Standard Webhooks secret "whsec_<base64>" -> key bytes. Returns 0,
 * HL_ESYNTAX (no "whsec_" prefix, bad base64, empty key) or HL_ETOOBIG
 * (key longer than cap). Used by config validation too.
 */
int hl_whsec_decode(const char *secret, unsigned char *key, size_t cap,
                    size_t *keylen);

/*
 * Outbound signing; on failure out is "" (when outlen > 0).
 *
 * The webhook-signature value for Standard Webhooks: one
 * "v1,<base64 HMAC-SHA256(key, msg_id.ts.body)>" per secret, space-separated.
 * Returns 0, HL_ECONFIG (no secrets), HL_ESYNTAX or HL_ETOOBIG (a secret that
 * hl_whsec_decode refuses), HL_ETOOBIG (out too small) or HL_EINTERNAL.
 */
int hl_sign_standard_webhooks(const hl_strlist *secrets, const char *msg_id,
                              int64_t ts, const void *body, size_t len,
                              char *out, size_t outlen);

/*
 * prefix (may be NULL) + hex or base64 of HMAC(alg, secret, body), e.g.
 * "sha256=757107ea...". alg is an hl_hash_alg, enc an hl_encoding. Returns 0,
 * HL_ERANGE (unknown alg or enc), HL_ECONFIG (empty secret), HL_ETOOBIG (out
 * too small) or HL_EINTERNAL.
 */
int hl_sign_hmac(int alg, int enc, const char *prefix, const char *secret,
                 const void *body, size_t len, char *out, size_t outlen);

#endif
