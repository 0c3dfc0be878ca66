/* verify.c - inbound webhook signatures and tokens, and outbound signing. */
#include "verify.h"

#include "err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* The most v1 signatures one webhook-signature header may carry. */
#define MAX_SIGS 16

typedef struct {
    const char *digest; /* libcrypto's name */
    const char *name;   /* the config's name */
    size_t size;
} hash_alg;

static const hash_alg algs[] = {
    [HL_HASH_SHA1] = {"SHA1", "sha1", 20},
    [HL_HASH_SHA256] = {"SHA256", "sha256", 32},
    [HL_HASH_SHA512] = {"SHA512", "sha512", 64},
};

typedef struct {
    const void *p;
    size_t n;
} part;

typedef struct {
    unsigned char b[EVP_MAX_MD_SIZE];
    size_t n;
} sigbuf;

/* One request being verified, and where its failure message goes. */
typedef struct {
    hl_header_fn get;
    void *ctx;
    const void *body;
    size_t len;
    int64_t now;
    char *why;
    size_t whylen;
} req;

static const hash_alg *alg_of(int alg)
{
    if (alg < 0 || (size_t)alg >= sizeof algs / sizeof algs[0])
        return NULL;
    return &algs[alg];
}

__attribute__((format(printf, 3, 4))) static int fail(const req *r, int code,
                                                      const char *fmt, ...)
{
    if (r->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, r->whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A header's value without surrounding whitespace, or NULL if absent. */
static const char *header(const req *r, const char *name, size_t *n)
{
    const char *s = r->get(r->ctx, name);
    if (!s)
        return NULL;
    s += strspn(s, " \t\r\n");
    size_t len = strlen(s);
    while (len && strchr(" \t\r\n", s[len - 1]))
        len--;
    *n = len;
    return s;
}

/* 300000 -> "5m", 400000 -> "6m40s", 1500 -> "1s500ms". */
static void fmt_duration(uint64_t ms, char *buf, size_t size)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof units / sizeof units[0] && pos < size; i++) {
        if (ms < units[i].ms)
            continue;
        int w = snprintf(buf + pos, size - pos, "%" PRIu64 "%s",
                         ms / units[i].ms, units[i].unit);
        if (w < 0)
            break;
        pos += (size_t)w;
        ms %= units[i].ms;
    }
    if (!pos)
        snprintf(buf, size, "0s");
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex of either case -> bytes: 0, HL_ESYNTAX or HL_ETOOBIG (> cap). */
static int hex_decode(const char *s, size_t n, unsigned char *out, size_t cap,
                      size_t *outlen)
{
    if (n == 0 || n % 2)
        return HL_ESYNTAX;
    for (size_t i = 0; i < n; i++)
        if (hex_val(s[i]) < 0)
            return HL_ESYNTAX;
    if (n / 2 > cap)
        return HL_ETOOBIG;
    for (size_t i = 0; i < n / 2; i++)
        out[i] =
            (unsigned char)(hex_val(s[2 * i]) << 4 | hex_val(s[2 * i + 1]));
    *outlen = n / 2;
    return 0;
}

/*
 * Padded standard base64 -> bytes: 0, HL_ESYNTAX or HL_ETOOBIG (> cap).
 * EVP_DecodeBlock decodes '=' as zero bits and always yields whole groups of
 * three, so the padding is checked here and the last group goes through a
 * small buffer: out never receives more than the decoded length.
 */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t cap,
                      size_t *outlen)
{
    if (n == 0 || n % 4 || n > INT32_MAX)
        return HL_ESYNTAX;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return HL_ESYNTAX;
    }
    size_t len = n / 4 * 3 - pad, head = n - 4;
    if (len > cap)
        return HL_ETOOBIG;
    unsigned char last[3];
    if (head && EVP_DecodeBlock(out, (const unsigned char *)s, (int)head) !=
                    (int)(head / 4 * 3))
        return HL_ESYNTAX;
    if (EVP_DecodeBlock(last, (const unsigned char *)s + head, 4) != 3)
        return HL_ESYNTAX;
    memcpy(out + head / 4 * 3, last, 3 - pad);
    *outlen = len;
    return 0;
}

static int decode(int enc, const char *s, size_t n, unsigned char *out,
                  size_t cap, size_t *outlen)
{
    return enc == HL_ENC_HEX ? hex_decode(s, n, out, cap, outlen)
                             : b64_decode(s, n, out, cap, outlen);
}

/* Append n bytes of s and keep out terminated: 0 or HL_ETOOBIG. */
static int put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    if (outlen - *pos <= n)
        return HL_ETOOBIG;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return 0;
}

/* Append the hex or base64 of a MAC. */
static int put_encoded(char *out, size_t outlen, size_t *pos, int enc,
                       const unsigned char *mac, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char text[2 * EVP_MAX_MD_SIZE + 1]; /* hex is longer than base64 */
    size_t tn = 0;
    if (enc == HL_ENC_HEX) {
        for (size_t i = 0; i < n; i++) {
            text[tn++] = digits[mac[i] >> 4];
            text[tn++] = digits[mac[i] & 15];
        }
    } else {
        int w = EVP_EncodeBlock((unsigned char *)text, mac, (int)n);
        if (w < 0)
            return HL_EINTERNAL;
        tn = (size_t)w;
    }
    return put(out, outlen, pos, text, tn);
}

/* HMAC(digest, key) over the concatenated parts into mac[EVP_MAX_MD_SIZE]. */
static int hmac_parts(const char *digest, const void *key, size_t keylen,
                      const part *pt, size_t npt, unsigned char *mac,
                      size_t *maclen)
{
    int rc = HL_EINTERNAL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest,
                                         0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    if (!ctx)
        goto out;
    if (!EVP_MAC_init(ctx, key, keylen, params))
        goto out;
    for (size_t i = 0; i < npt; i++)
        if (pt[i].n && !EVP_MAC_update(ctx, pt[i].p, pt[i].n))
            goto out;
    if (!EVP_MAC_final(ctx, mac, maclen, EVP_MAX_MD_SIZE))
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    return rc;
}

/* Whether mac equals any signature; every one is compared, in constant time. */
static int any_equal(const unsigned char *mac, size_t n, const sigbuf *sigs,
                     size_t nsigs)
{
    int eq = 0;
    for (size_t i = 0; i < nsigs; i++)
        eq |= (sigs[i].n == n) & (CRYPTO_memcmp(mac, sigs[i].b, n) == 0);
    return eq;
}

/* The key bytes of secret i: the string itself, or decoded from whsec_. */
static int secret_key(const req *r, const char *check, const hl_strlist *l,
                      size_t i, bool whsec, unsigned char *buf,
                      const unsigned char **key, size_t *keylen)
{
    const char *s = l->v[i];
    if (!s || !*s)
        return fail(r, HL_ECONFIG,
                    "%s: secret %zu of verify.%s.secrets is empty; fix the "
                    "source's configuration",
                    check, i + 1, check);
    if (!whsec) {
        *key = (const unsigned char *)s;
        *keylen = strlen(s);
        return 0;
    }
    int rc = hl_whsec_decode(s, buf, HL_WHSEC_KEY_MAX, keylen);
    if (rc == HL_ETOOBIG)
        return fail(r, HL_ECONFIG,
                    "%s: secret %zu of verify.%s.secrets is longer than %d "
                    "bytes; fix the source's configuration",
                    check, i + 1, check, HL_WHSEC_KEY_MAX);
    if (rc)
        return fail(r, HL_ECONFIG,
                    "%s: secret %zu of verify.%s.secrets is not \"whsec_\" "
                    "followed by base64; fix the source's configuration",
                    check, i + 1, check);
    *key = buf;
    return 0;
}

/* Pass when HMAC(secret, parts) equals any signature for any secret. */
static int match_secrets(const req *r, const char *check, const hash_alg *a,
                         const hl_strlist *secrets, bool whsec, const part *pt,
                         size_t npt, const sigbuf *sigs, size_t nsigs)
{
    unsigned char buf[HL_WHSEC_KEY_MAX], mac[EVP_MAX_MD_SIZE];
    int rc = 0, eq = 0;
    for (size_t i = 0; i < secrets->n; i++) {
        const unsigned char *key = NULL;
        size_t keylen = 0, maclen = 0;
        rc = secret_key(r, check, secrets, i, whsec, buf, &key, &keylen);
        if (rc)
            goto out;
        rc = hmac_parts(a->digest, key, keylen, pt, npt, mac, &maclen);
        if (rc) {
            fail(r, rc, "%s: libcrypto could not compute the HMAC", check);
            goto out;
        }
        eq |= any_equal(mac, maclen, sigs, nsigs);
    }
    if (!eq)
        rc = fail(r, HL_EVERIFY,
                  "%s: signature does not match any configured secret", check);
out:
    OPENSSL_cleanse(buf, sizeof buf);
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

/* One signature in hex or base64 that must be an HMAC of alg a. */
static int decode_sig(const req *r, const char *check, int enc,
                      const hash_alg *a, const char *s, size_t n, sigbuf *sig)
{
    int rc = decode(enc, s, n, sig->b, sizeof sig->b, &sig->n);
    if (rc == HL_ESYNTAX)
        return fail(r, HL_EVERIFY, "%s: signature is not valid %s", check,
                    enc == HL_ENC_HEX ? "hex" : "base64");
    if (rc || sig->n != a->size)
        return fail(r, HL_EVERIFY,
                    "%s: signature is not as long as a %s HMAC; check the "
                    "algorithm and the encoding",
                    check, a->name);
    return 0;
}

/* Decimal Unix seconds, digits only: 0 or HL_ESYNTAX. */
static int parse_ts(const char *s, size_t n, int64_t *out)
{
    int64_t t = 0;
    if (n == 0)
        return HL_ESYNTAX;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || t > (INT64_MAX - (s[i] - '0')) / 10)
            return HL_ESYNTAX;
        t = t * 10 + (s[i] - '0');
    }
    *out = t;
    return 0;
}

/* The timestamp header must be within tol_ms of now, either way. */
static int check_time(const req *r, const char *check, const char *name,
                      const char *s, size_t n, uint64_t tol_ms)
{
    int64_t ts;
    if (parse_ts(s, n, &ts))
        return fail(r, HL_EVERIFY, "%s: %s is not a number", check, name);
    bool future = ts > r->now;
    /* Unsigned subtraction gives the exact distance without overflow. */
    uint64_t d = future ? (uint64_t)ts - (uint64_t)r->now
                        : (uint64_t)r->now - (uint64_t)ts;
    if (d <= tol_ms / 1000)
        return 0;
    char tol[48], off[48];
    fmt_duration(tol_ms, tol, sizeof tol);
    fmt_duration(d > UINT64_MAX / 1000 ? UINT64_MAX : d * 1000, off,
                 sizeof off);
    return fail(r, HL_EVERIFY,
                "%s: %s is outside the %s tolerance (%s in the %s); check the "
                "sender's clock",
                check, name, tol, off, future ? "future" : "past");
}

static int check_hmac(const req *r, const hl_verify_cfg *v)
{
    const char *name = v->hmac.header, *pfx = v->hmac.prefix;
    const hash_alg *a = alg_of(v->hmac.algorithm);
    int enc = v->hmac.encoding;
    if (!a || !name || (enc != HL_ENC_HEX && enc != HL_ENC_BASE64))
        return fail(r, HL_ECONFIG,
                    "hmac: header, algorithm or encoding is not set; fix the "
                    "source's configuration");
    size_t n, pn = pfx ? strlen(pfx) : 0;
    const char *s = header(r, name, &n);
    if (!s)
        return fail(r, HL_EVERIFY, "hmac: header %s is missing", name);
    /* One signature, or several separated by commas while the sender
     * rotates its secret (PagerDuty: "v1=…,v1=…"); any one may match. */
    sigbuf sigs[MAX_SIGS];
    size_t nsigs = 0;
    size_t i = 0;
    do {
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        size_t end = i++;
        while (start < end && s[start] == ' ')
            start++;
        while (end > start && s[end - 1] == ' ')
            end--;
        if (nsigs == MAX_SIGS)
            return fail(r, HL_EVERIFY,
                        "hmac: header %s holds more than %d signatures", name,
                        MAX_SIGS);
        if (pn && (end - start < pn || memcmp(s + start, pfx, pn)))
            return fail(r, HL_EVERIFY,
                        "hmac: header %s does not start with \"%s\"", name,
                        pfx);
        int rc = decode_sig(r, "hmac", enc, a, s + start + pn,
                            end - start - pn, &sigs[nsigs++]);
        if (rc)
            return rc;
    } while (i < n);
    if (!v->hmac.timestamp_header) {
        part pt = {r->body, r->len};
        return match_secrets(r, "hmac", a, &v->hmac.secrets, false, &pt, 1,
                             sigs, nsigs);
    }
    size_t tn;
    const char *ts = header(r, v->hmac.timestamp_header, &tn);
    if (!ts)
        return fail(r, HL_EVERIFY, "hmac: header %s is missing",
                    v->hmac.timestamp_header);
    int rc = check_time(r, "hmac", v->hmac.timestamp_header, ts, tn,
                        v->hmac.tolerance_ms);
    if (rc)
        return rc;
    part pts[] = {{ts, tn}, {":", 1}, {r->body, r->len}};
    return match_secrets(r, "hmac", a, &v->hmac.secrets, false, pts, 3, sigs,
                         nsigs);
}

/* The decodable "v1,<base64>" entries of a webhook-signature value. */
static int parse_v1(const req *r, const char *s, size_t n, sigbuf *sigs,
                    size_t *nsigs)
{
    size_t nv1 = 0, i = 0;
    *nsigs = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && s[i] != ' ')
            i++;
        size_t len = i - start;
        while (i < n && s[i] == ' ')
            i++;
        if (len < 3 || memcmp(s + start, "v1,", 3))
            continue; /* another version, such as v1a */
        if (++nv1 > MAX_SIGS)
            return fail(r, HL_EVERIFY,
                        "standard_webhooks: webhook-signature holds more than "
                        "%d v1 signatures",
                        MAX_SIGS);
        sigbuf *sig = &sigs[*nsigs];
        if (!b64_decode(s + start + 3, len - 3, sig->b, sizeof sig->b, &sig->n))
            ++*nsigs;
    }
    if (!nv1)
        return fail(r, HL_EVERIFY,
                    "standard_webhooks: webhook-signature has no "
                    "\"v1,<base64>\" signature");
    if (!*nsigs)
        return fail(r, HL_EVERIFY,
                    "standard_webhooks: no v1 signature in webhook-signature "
                    "is valid base64");
    return 0;
}

static int check_standard_webhooks(const req *r, const hl_verify_cfg *v)
{
    static const char *const names[] = {"webhook-id", "webhook-timestamp",
                                        "webhook-signature"};
    const char *h[3];
    size_t n[3];
    for (size_t i = 0; i < 3; i++) {
        h[i] = header(r, names[i], &n[i]);
        if (!h[i])
            return fail(r, HL_EVERIFY,
                        "standard_webhooks: header %s is missing", names[i]);
    }
    int rc = check_time(r, "standard_webhooks", names[1], h[1], n[1],
                        v->standard_webhooks.tolerance_ms);
    sigbuf sigs[MAX_SIGS] = {0};
    size_t nsigs;
    if (!rc)
        rc = parse_v1(r, h[2], n[2], sigs, &nsigs);
    if (rc)
        return rc;
    part pt[] = {
        {h[0], n[0]}, {".", 1}, {h[1], n[1]}, {".", 1}, {r->body, r->len}};
    return match_secrets(r, "standard_webhooks", &algs[HL_HASH_SHA256],
                         &v->standard_webhooks.secrets, true, pt, 5, sigs,
                         nsigs);
}

static int check_slack(const req *r, const hl_verify_cfg *v)
{
    static const char TS[] = "X-Slack-Request-Timestamp";
    static const char SIG[] = "X-Slack-Signature";
    size_t tn, sn;
    const char *ts = header(r, TS, &tn), *s = header(r, SIG, &sn);
    if (!ts || !s)
        return fail(r, HL_EVERIFY, "slack: header %s is missing",
                    ts ? SIG : TS);
    int rc = check_time(r, "slack", TS, ts, tn, v->slack.tolerance_ms);
    if (rc)
        return rc;
    if (sn < 3 || memcmp(s, "v0=", 3))
        return fail(r, HL_EVERIFY, "slack: %s does not start with \"v0=\"",
                    SIG);
    const hash_alg *a = &algs[HL_HASH_SHA256];
    sigbuf sig;
    rc = decode_sig(r, "slack", HL_ENC_HEX, a, s + 3, sn - 3, &sig);
    if (rc)
        return rc;
    part pt[] = {{"v0:", 3}, {ts, tn}, {":", 1}, {r->body, r->len}};
    return match_secrets(r, "slack", a, &v->slack.secrets, false, pt, 4, &sig,
                         1);
}

/* SHA-256 of a token, so tokens of any length compare in constant time. */
static int token_hash(const char *s, size_t n, unsigned char *md)
{
    unsigned int mdlen;
    return EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) ? 0 : HL_EINTERNAL;
}

static int check_bearer(const req *r, const hl_verify_cfg *v)
{
    size_t n, sp = 6;
    const char *s = header(r, "Authorization", &n);
    if (!s)
        return fail(r, HL_EVERIFY, "bearer: Authorization header is missing");
    if (n <= sp || strncasecmp(s, "Bearer", sp) ||
        (s[sp] != ' ' && s[sp] != '\t'))
        return fail(r, HL_EVERIFY,
                    "bearer: Authorization header is not \"Bearer <token>\"");
    while (s[sp] == ' ' || s[sp] == '\t')
        sp++;
    unsigned char got[32], want[32];
    int eq = 0;
    if (token_hash(s + sp, n - sp, got))
        return fail(r, HL_EINTERNAL, "bearer: libcrypto could not hash");
    for (size_t i = 0; i < v->bearer.tokens.n; i++) {
        const char *t = v->bearer.tokens.v[i];
        if (!t || !*t)
            return fail(r, HL_ECONFIG,
                        "bearer: token %zu of verify.bearer.tokens is empty; "
                        "fix the source's configuration",
                        i + 1);
        if (token_hash(t, strlen(t), want))
            return fail(r, HL_EINTERNAL, "bearer: libcrypto could not hash");
        eq |= CRYPTO_memcmp(got, want, sizeof got) == 0;
    }
    if (!eq)
        return fail(r, HL_EVERIFY,
                    "bearer: token does not match any configured token");
    return 0;
}

int hl_verify_request(const hl_verify_cfg *v, hl_header_fn get, void *ctx,
                      const void *body, size_t len, int64_t now_sec, char *why,
                      size_t whylen)
{
    const req r = {get, ctx, body, len, now_sec, why, whylen};
    int rc = 0;
    if (whylen)
        why[0] = '\0';
    if (!rc && v->hmac_set)
        rc = check_hmac(&r, v);
    if (!rc && v->standard_webhooks_set)
        rc = check_standard_webhooks(&r, v);
    if (!rc && v->slack_set)
        rc = check_slack(&r, v);
    if (!rc && v->bearer_set)
        rc = check_bearer(&r, v);
    return rc;
}

int hl_whsec_decode(const char *secret, unsigned char *key, size_t cap,
                    size_t *keylen)
{
    static const char pfx[] = "whsec_";
    if (!secret || strncmp(secret, pfx, sizeof pfx - 1))
        return HL_ESYNTAX;
    const char *b = secret + sizeof pfx - 1;
    return b64_decode(b, strlen(b), key, cap, keylen);
}

/* One "v1,<base64>" entry for one secret. */
static int sign_one(const char *secret, const part *pt, size_t npt, char *out,
                    size_t outlen, size_t *pos)
{
    unsigned char key[HL_WHSEC_KEY_MAX], mac[EVP_MAX_MD_SIZE];
    size_t keylen, maclen;
    int rc = hl_whsec_decode(secret, key, sizeof key, &keylen);
    if (rc)
        goto out;
    rc = hmac_parts("SHA256", key, keylen, pt, npt, mac, &maclen);
    if (!rc)
        rc = put(out, outlen, pos, "v1,", 3);
    if (!rc)
        rc = put_encoded(out, outlen, pos, HL_ENC_BASE64, mac, maclen);
out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int hl_sign_standard_webhooks(const hl_strlist *secrets, const char *msg_id,
                              int64_t ts, const void *body, size_t len,
                              char *out, size_t outlen)
{
    char tsbuf[24];
    int tn = snprintf(tsbuf, sizeof tsbuf, "%" PRId64, ts);
    part pt[] = {{msg_id, strlen(msg_id)},
                 {".", 1},
                 {tsbuf, (size_t)tn},
                 {".", 1},
                 {body, len}};
    size_t pos = 0;
    int rc = secrets->n ? 0 : HL_ECONFIG;
    if (outlen)
        out[0] = '\0';
    for (size_t i = 0; i < secrets->n && !rc; i++) {
        if (i)
            rc = put(out, outlen, &pos, " ", 1);
        if (!rc)
            rc = sign_one(secrets->v[i], pt, 5, out, outlen, &pos);
    }
    if (rc && outlen)
        out[0] = '\0';
    return rc;
}

int hl_sign_hmac(int alg, int enc, const char *prefix, const char *secret,
                 const void *body, size_t len, char *out, size_t outlen)
{
    const hash_alg *a = alg_of(alg);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen, pos = 0;
    part pt = {body, len};
    int rc = 0;
    if (outlen)
        out[0] = '\0';
    if (!a || (enc != HL_ENC_HEX && enc != HL_ENC_BASE64))
        return HL_ERANGE;
    if (!secret || !*secret)
        return HL_ECONFIG;
    rc = hmac_parts(a->digest, secret, strlen(secret), &pt, 1, mac, &maclen);
    if (!rc && prefix)
        rc = put(out, outlen, &pos, prefix, strlen(prefix));
    if (!rc)
        rc = put_encoded(out, outlen, &pos, enc, mac, maclen);
    if (rc && outlen)
        out[0] = '\0';
    return rc;
}
