/* config.c - hookline.yaml -> a typed, validated hl_config, every error with its position. */
#include "config.h"

#include "err.h"
#include "keypath.h"
#include "verify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctype.h>
#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct hl_config_mem {
    _Atomic long refs;
    hl_ydoc *doc;
    void **blocks;
    size_t n, cap;
};

/* ---- loading context, memory, messages ------------------------------- */

typedef struct {
    hl_config *cfg;
    hl_diags *d;
    hl_keypath kp;
    int oom;
} ld_t;

static void *ld_alloc(ld_t *ld, size_t size)
{
    struct hl_config_mem *m = ld->cfg->mem;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        void **b = realloc(m->blocks, cap * sizeof *b);
        if (!b) {
            ld->oom = 1;
            return NULL;
        }
        m->blocks = b;
        m->cap = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        ld->oom = 1;
        return NULL;
    }
    m->blocks[m->n++] = p;
    return p;
}

#define path_push(ld, ...) hl_keypath_push(&(ld)->kp, __VA_ARGS__)
#define path_key(ld, key) hl_keypath_key(&(ld)->kp, key)
#define path_pop(ld, mark) hl_keypath_pop(&(ld)->kp, mark)

__attribute__((format(printf, 4, 5))) static void
ld_msg(ld_t *ld, hl_diag_kind kind, const hl_ynode *n, const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hl_diags_add(ld->d, kind, ld->cfg->file, n ? n->line : 0, n ? n->col : 0,
                 ld->kp.s, "%s", buf);
}

#define ld_err(ld, n, ...) ld_msg(ld, HL_DIAG_ERROR, n, __VA_ARGS__)
#define ld_warn(ld, n, ...) ld_msg(ld, HL_DIAG_WARNING, n, __VA_ARGS__)

/* What a value is, for "expected X, got Y" messages. */
static const char *got(const hl_ynode *n)
{
    return hl_ynode_type_name(n);
}

/* ---- scalar grammars (public) --------------------------------------- */

int hl_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1},           {"s", 1000},         {"m", 60000},
                 {"h", 3600000},      {"d", 86400000ULL}};
    uint64_t total = 0;
    const char *p = s;
    if (!*p)
        return HL_ESYNTAX;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return HL_ESYNTAX;
        uint64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > (UINT64_MAX - 9) / 10)
                return HL_ERANGE;
            v = v * 10 + (uint64_t)(*p++ - '0');
        }
        size_t best = SIZE_MAX, bestlen = 0;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
            size_t l = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, l) == 0 && l > bestlen &&
                !isalpha((unsigned char)p[l])) {
                best = i;
                bestlen = l;
            }
        }
        if (best == SIZE_MAX)
            return HL_ESYNTAX;
        if (v && units[best].ms > UINT64_MAX / v)
            return HL_ERANGE;
        if (total > UINT64_MAX - v * units[best].ms)
            return HL_ERANGE;
        total += v * units[best].ms;
        p += bestlen;
    }
    *ms = total;
    return 0;
}

int hl_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1024ULL},
                 {"MiB", 1024ULL * 1024},
                 {"GiB", 1024ULL * 1024 * 1024},
                 {"KB", 1000ULL},
                 {"MB", 1000ULL * 1000},
                 {"GB", 1000ULL * 1000 * 1000}};
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return HL_ESYNTAX;
    uint64_t v = 0;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX - 9) / 10)
            return HL_ERANGE;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (v && units[i].mult > UINT64_MAX / v)
                return HL_ERANGE;
            *bytes = v * units[i].mult;
            return 0;
        }
    }
    return HL_ESYNTAX;
}

int hl_parse_cidr(const char *s, hl_cidr *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr)
        return HL_ESYNTAX;
    memcpy(addr, s, alen);
    addr[alen] = 0;
    memset(out, 0, sizeof *out);
    unsigned maxp;
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        maxp = 128;
    } else {
        return HL_ESYNTAX;
    }
    out->prefix = maxp;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p)
            return HL_ESYNTAX;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p) || v > 1000)
                return HL_ESYNTAX;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > maxp)
            return HL_ERANGE;
        out->prefix = v;
    }
    /* The host bits must be zero, so "10.1.2.3/8" is not silently 10/8. */
    unsigned nbytes = maxp / 8;
    for (unsigned bit = out->prefix; bit < nbytes * 8; bit++)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return HL_ERANGE;
    out->text = s;
    return 0;
}

/* ---- key tables ------------------------------------------------------ */

typedef enum {
    K_STR,
    K_BOOL,
    K_UINT,
    K_NUM,
    K_DUR,
    K_SIZE,
    K_ENUM,
    K_LIST, /* hl_strlist; a single string is a list of one */
    K_SECTION,
    K_CUSTOM,
} kkind;

enum {
    F_REQ = 1,      /* must be present */
    F_NONEMPTY = 2, /* strings, and each item of a list, must not be "" */
    F_OPEN = 4,     /* sections: keys not in the table are allowed */
};

typedef struct key key;
typedef int (*custom_fn)(ld_t *ld, const hl_ynode *n, void *field);

struct key {
    const char *name;
    kkind kind;
    size_t off;
    unsigned flags;
    const char *def; /* default, in the same grammar as the file */
    const char *const *choices;
    double min, max;
    const key *sub;  /* K_SECTION */
    custom_fn fn;    /* K_CUSTOM */
    size_t set_off;  /* K_SECTION: offset of a bool set when present, +1 */
};

#define END_KEYS {NULL, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL, 0}

#define KEY(name, kind, type, field, flags, def)                               \
    {name, kind, offsetof(type, field), flags, def, NULL, 0, 0, NULL, NULL, 0}
#define KNUM(name, kind, type, field, flags, def, lo, hi)                      \
    {name, kind, offsetof(type, field), flags, def, NULL, lo, hi, NULL, NULL, 0}
#define KENUM(name, type, field, def, choices)                                 \
    {name, K_ENUM, offsetof(type, field), 0, def, choices, 0, 0, NULL, NULL, 0}
#define KSEC(name, type, field, sub)                                           \
    {name, K_SECTION, offsetof(type, field), 0, NULL, NULL, 0, 0, sub, NULL, 0}
#define KOPT(name, type, field, flag, sub)                                     \
    {name, K_SECTION, offsetof(type, field), 0, NULL, NULL, 0, 0, sub, NULL,   \
     offsetof(type, flag) + 1}
#define KFN(name, type, field, flags, def, fn)                                 \
    {name, K_CUSTOM, offsetof(type, field), flags, def, NULL, 0, 0, NULL, fn, 0}


static int load_section(ld_t *ld, const hl_ynode *n, const key *keys,
                        void *base);

/* Numbers without exponents: 10000000, 0.001. */
static const char *fmt_number(double v, char *buf, size_t cap)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%g", v);
    return buf;
}

typedef struct {
    const char *name;
    double size;
} unit;

/* v in the largest unit that divides it exactly, else in the base unit. */
static const char *fmt_units(double v, const unit *units, size_t n,
                             const char *base, char *buf, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (v >= units[i].size && fmod(v, units[i].size) == 0) {
            snprintf(buf, cap, "%.0f%s", v / units[i].size, units[i].name);
            return buf;
        }
    snprintf(buf, cap, "%.0f%s", v, base);
    return buf;
}

/* 100ms, 30s, 1h, 3650d. */
static const char *fmt_duration(double v, char *buf, size_t cap)
{
    static const unit units[] = {{"d", 86400000.0}, {"h", 3600000.0},
                                 {"m", 60000.0},    {"s", 1000.0}};
    return fmt_units(v, units, 4, "ms", buf, cap);
}

/* 1KiB, 1GiB, 512 bytes. */
static const char *fmt_size(double v, char *buf, size_t cap)
{
    static const unit units[] = {
        {"GiB", 1073741824.0}, {"MiB", 1048576.0}, {"KiB", 1024.0}};
    return fmt_units(v, units, 3, " bytes", buf, cap);
}

/* "from 100ms to 1h" for a key's bounds, into buf. */
static const char *range_text(const key *k,
                              const char *(*fmt)(double, char *, size_t),
                              char *buf)
{
    char lo[40], hi[40];
    snprintf(buf, 96, "from %s to %s", fmt(k->min, lo, sizeof lo),
             fmt(k->max, hi, sizeof hi));
    return buf;
}

static void unknown_key(ld_t *ld, const hl_ynode *k, const key *keys)
{
    const char *best = NULL;
    size_t bestd = 3;
    char list[400] = "";
    size_t len = 0;
    for (const key *kk = keys; kk->name; kk++) {
        size_t dist = hl_edit_distance(k->u.scalar.str, kk->name);
        if (dist < bestd) {
            bestd = dist;
            best = kk->name;
        }
        int w = snprintf(list + len, sizeof list - len, "%s%s",
                         len ? ", " : "", kk->name);
        if (w > 0 && (size_t)w < sizeof list - len)
            len += (size_t)w;
    }
    size_t mark = path_key(ld, k->u.scalar.str);
    if (best)
        ld_err(ld, k, "unknown key '%s'; did you mean '%s'?",
               k->u.scalar.str, best);
    else
        ld_err(ld, k, "unknown key '%s'; expected one of: %s",
               k->u.scalar.str, list);
    path_pop(ld, mark);
}

static int want_scalar(ld_t *ld, const hl_ynode *n, const char *what)
{
    if (n->type == HL_YSCALAR && !hl_ynode_is_null(n))
        return 0;
    ld_err(ld, n, "expected %s, got %s", what,
           hl_ynode_is_null(n) ? "nothing" : got(n));
    return HL_ECONFIG;
}

static int parse_uint(ld_t *ld, const hl_ynode *n, const key *k,
                      uint64_t *out)
{
    if (want_scalar(ld, n, "a whole number"))
        return HL_ECONFIG;
    const char *s = n->u.scalar.str;
    uint64_t v = 0;
    int ok = *s != 0;
    for (const char *p = s; *p && ok; p++) {
        if (!isdigit((unsigned char)*p) || v > (UINT64_MAX - 9) / 10)
            ok = 0;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || (double)v < k->min || (double)v > k->max) {
        ld_err(ld, n, "expected a whole number from %.0f to %.0f, got '%s'",
               k->min, k->max, s);
        return HL_ECONFIG;
    }
    *out = v;
    return 0;
}

static int parse_num(ld_t *ld, const hl_ynode *n, const key *k, double *out)
{
    if (want_scalar(ld, n, "a number"))
        return HL_ECONFIG;
    const char *s = n->u.scalar.str;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < k->min || v > k->max) {
        char lo[32], hi[32];
        ld_err(ld, n, "expected a number from %s to %s, got '%s'",
               fmt_number(k->min, lo, sizeof lo),
               fmt_number(k->max, hi, sizeof hi), s);
        return HL_ECONFIG;
    }
    *out = v;
    return 0;
}

static int parse_enum(ld_t *ld, const hl_ynode *n, const key *k, int *out)
{
    if (want_scalar(ld, n, "a string"))
        return HL_ECONFIG;
    char list[300] = "";
    size_t len = 0;
    for (int i = 0; k->choices[i]; i++) {
        if (strcmp(n->u.scalar.str, k->choices[i]) == 0) {
            *out = i;
            return 0;
        }
        int w = snprintf(list + len, sizeof list - len, "%s%s",
                         i ? ", " : "", k->choices[i]);
        if (w > 0 && (size_t)w < sizeof list - len)
            len += (size_t)w;
    }
    ld_err(ld, n, "expected one of %s; got '%s'", list, n->u.scalar.str);
    return HL_ECONFIG;
}

static int parse_str(ld_t *ld, const hl_ynode *n, const key *k,
                     const char **out)
{
    if (n->type != HL_YSCALAR) {
        ld_err(ld, n, "expected a string, got %s", got(n));
        return HL_ECONFIG;
    }
    if ((k->flags & F_NONEMPTY) && n->u.scalar.str[0] == 0) {
        ld_err(ld, n, "must not be empty");
        return HL_ECONFIG;
    }
    *out = n->u.scalar.str;
    return 0;
}

static int parse_list(ld_t *ld, const hl_ynode *n, const key *k,
                      hl_strlist *out)
{
    if (n->type == HL_YMAP) {
        ld_err(ld, n, "expected a list of strings, got a mapping");
        return HL_ECONFIG;
    }
    size_t count = n->type == HL_YSEQ ? n->u.seq.n : 1;
    const char **v = ld_alloc(ld, (count ? count : 1) * sizeof *v);
    if (!v)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const hl_ynode *it = n->type == HL_YSEQ ? n->u.seq.items[i] : n;
        size_t mark = n->type == HL_YSEQ ? path_push(ld, "[%zu]", i)
                                         : ld->kp.len;
        if (it->type != HL_YSCALAR) {
            ld_err(ld, it, "expected a string, got %s", got(it));
            rc = HL_ECONFIG;
        } else if (it->u.scalar.failed) {
            rc = HL_ECONFIG; /* the expansion error says it all */
        } else if ((k->flags & F_NONEMPTY) && !it->u.scalar.str[0]) {
            ld_err(ld, it, "must not be empty");
            rc = HL_ECONFIG;
        } else {
            v[i] = it->u.scalar.str;
        }
        path_pop(ld, mark);
    }
    if (!rc && count == 0 && (k->flags & F_REQ)) {
        ld_err(ld, n, "must list at least one value");
        rc = HL_ECONFIG;
    }
    out->v = v;
    out->n = rc ? 0 : count;
    return rc;
}

/* Durations and sizes: a grammar, then the key's range in the same units. */
static int parse_unit(ld_t *ld, const hl_ynode *n, const key *k, uint64_t *out,
                      int (*parse)(const char *, uint64_t *),
                      const char *(*fmt)(double, char *, size_t),
                      const char *what, const char *example)
{
    if (want_scalar(ld, n, what))
        return HL_ECONFIG;
    uint64_t u;
    if (parse(n->u.scalar.str, &u)) {
        ld_err(ld, n, "expected %s %s, got '%s'", what, example,
               n->u.scalar.str);
        return HL_ECONFIG;
    }
    if ((double)u < k->min || (double)u > k->max) {
        char lo_hi[96];
        ld_err(ld, n, "%s '%s' is out of range; use %s", what + 2,
               n->u.scalar.str, range_text(k, fmt, lo_hi));
        return HL_ECONFIG;
    }
    *out = u;
    return 0;
}

static int parse_value(ld_t *ld, const hl_ynode *n, const key *k, void *base)
{
    void *field = (char *)base + k->off;
    if (n->type == HL_YSCALAR && n->u.scalar.failed)
        return HL_ECONFIG; /* the expansion error says it all */
    switch (k->kind) {
    case K_STR:
        return parse_str(ld, n, k, (const char **)field);
    case K_BOOL:
        if (want_scalar(ld, n, "true or false"))
            return HL_ECONFIG;
        if (!strcmp(n->u.scalar.str, "true"))
            *(bool *)field = true;
        else if (!strcmp(n->u.scalar.str, "false"))
            *(bool *)field = false;
        else {
            ld_err(ld, n, "expected true or false, got '%s'",
                   n->u.scalar.str);
            return HL_ECONFIG;
        }
        return 0;
    case K_UINT:
        return parse_uint(ld, n, k, (uint64_t *)field);
    case K_NUM:
        return parse_num(ld, n, k, (double *)field);
    case K_DUR:
        return parse_unit(ld, n, k, (uint64_t *)field, hl_parse_duration,
                          fmt_duration, "a duration",
                          "such as 500ms, 5s, 2m, 1h or 7d");
    case K_SIZE:
        return parse_unit(ld, n, k, (uint64_t *)field, hl_parse_size,
                          fmt_size, "a size", "such as 512KiB, 1MiB or 1048576");
    case K_ENUM:
        return parse_enum(ld, n, k, (int *)field);
    case K_LIST:
        return parse_list(ld, n, k, (hl_strlist *)field);
    case K_SECTION:
        if (k->set_off)
            *(bool *)((char *)base + k->set_off - 1) = true;
        return load_section(ld, n, k->sub, field);
    case K_CUSTOM:
        return k->fn(ld, n, field);
    }
    return HL_EINTERNAL;
}

/* Defaults are written in the file's own grammar and parsed the same way. */
static int apply_default(ld_t *ld, const key *k, void *base)
{
    if (k->kind == K_SECTION && !k->set_off)
        return load_section(ld, NULL, k->sub, (char *)base + k->off);
    if (!k->def)
        return 0;
    hl_ynode tmp = {.type = HL_YSCALAR};
    tmp.u.scalar.str = (char *)k->def;
    tmp.u.scalar.len = strlen(k->def);
    tmp.u.scalar.plain = false;
    return parse_value(ld, &tmp, k, base);
}

static int load_section(ld_t *ld, const hl_ynode *n, const key *keys,
                        void *base)
{
    int rc = 0;
    const hl_ynode *at = n; /* where a missing key is reported */
    if (n && hl_ynode_is_null(n))
        n = NULL;
    if (n && n->type != HL_YMAP) {
        ld_err(ld, n, "expected a mapping, got %s", got(n));
        return HL_ECONFIG;
    }
    unsigned open = 0;
    for (const key *k = keys; k->name; k++)
        open |= k->flags & F_OPEN;
    for (size_t i = 0; n && !open && i < n->u.map.n; i++) {
        const hl_ynode *kn = n->u.map.pairs[i].key;
        const key *k = keys;
        while (k->name && strcmp(k->name, kn->u.scalar.str))
            k++;
        if (!k->name) {
            unknown_key(ld, kn, keys);
            rc = HL_ECONFIG;
        }
    }
    for (const key *k = keys; k->name; k++) {
        if (!*k->name)
            continue; /* the F_OPEN marker */
        const hl_ynode *v = n ? hl_ynode_get(n, k->name) : NULL;
        size_t mark = path_key(ld, k->name);
        int r;
        if (v && !hl_ynode_is_null(v)) {
            r = parse_value(ld, v, k, base);
        } else if (k->flags & F_REQ) {
            path_pop(ld, mark);
            ld_err(ld, v ? v : at, "missing required key '%s'", k->name);
            r = HL_ECONFIG;
            mark = ld->kp.len;
        } else {
            r = apply_default(ld, k, base);
        }
        path_pop(ld, mark);
        if (r)
            rc = r;
    }
    return rc;
}

/* ---- custom value types ---------------------------------------------- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
            return 0;
    return 1;
}

static int parse_listen(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_server_cfg *srv = (hl_server_cfg *)((char *)field -
                                           offsetof(hl_server_cfg, listen));
    if (want_scalar(ld, n, "HOST:PORT"))
        return HL_ECONFIG;
    const char *s = n->u.scalar.str;
    const char *colon = strrchr(s, ':');
    char host[64];
    size_t hlen = colon ? (size_t)(colon - s) : 0;
    const char *hs = s;
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        hs++;
        hlen -= 2;
    }
    unsigned char buf[16];
    int ok = colon && hlen > 0 && hlen < sizeof host;
    if (ok) {
        memcpy(host, hs, hlen);
        host[hlen] = 0;
        if (!strcmp(host, "localhost"))
            strcpy(host, "127.0.0.1");
        ok = inet_pton(AF_INET, host, buf) == 1 ||
             inet_pton(AF_INET6, host, buf) == 1;
    }
    unsigned long port = 0;
    if (ok) {
        char *end;
        port = strtoul(colon + 1, &end, 10);
        ok = colon[1] && !*end && port <= 65535 &&
             isdigit((unsigned char)colon[1]);
    }
    if (!ok) {
        ld_err(ld, n,
               "expected HOST:PORT with an IP address, such as "
               "127.0.0.1:8080 or [::1]:8080, got '%s'",
               s);
        return HL_ECONFIG;
    }
    srv->listen = s;
    memcpy(srv->host, host, hlen + 1);
    srv->port = (uint16_t)port;
    return 0;
}

static int parse_cidrs(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_outbound_cfg *ob = (hl_outbound_cfg *)((char *)field -
                                              offsetof(hl_outbound_cfg,
                                                       allow_networks));
    static const key k = {"", K_LIST, 0, F_NONEMPTY, NULL, NULL, 0, 0,
                          NULL, NULL, 0};
    hl_strlist l;
    int rc = parse_list(ld, n, &k, &l);
    if (rc)
        return rc;
    ob->allow_networks = ld_alloc(ld, (l.n ? l.n : 1) * sizeof(hl_cidr));
    if (!ob->allow_networks)
        return HL_ENOMEM;
    for (size_t i = 0; i < l.n; i++) {
        const hl_ynode *it = n->type == HL_YSEQ ? n->u.seq.items[i] : n;
        int r = hl_parse_cidr(l.v[i], &ob->allow_networks[i]);
        if (r) {
            size_t mark = path_push(ld, "[%zu]", i);
            const char *slash = strchr(l.v[i], '/');
            unsigned maxp = strchr(l.v[i], ':') ? 128 : 32;
            if (r == HL_ERANGE && slash && strtoul(slash + 1, NULL, 10) > maxp)
                ld_err(ld, it, "'%s': the prefix must be at most %u for an "
                               "%s address",
                       l.v[i], maxp, maxp == 32 ? "IPv4" : "IPv6");
            else if (r == HL_ERANGE)
                ld_err(ld, it, "'%s' has host bits set; write the network "
                               "address, such as 10.0.0.0/8 or fd00::/8",
                       l.v[i]);
            else
                ld_err(ld, it, "expected an address or network such as "
                               "10.0.0.0/8 or fd00::/8, got '%s'",
                       l.v[i]);
            path_pop(ld, mark);
            rc = HL_ECONFIG;
        }
    }
    ob->n_allow_networks = rc ? 0 : l.n;
    return rc;
}

static int parse_url(ld_t *ld, const hl_ynode *n, void *field)
{
    if (want_scalar(ld, n, "a URL"))
        return HL_ECONFIG;
    const char *s = n->u.scalar.str;
    CURLU *u = curl_url();
    if (!u)
        return HL_ENOMEM;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, s, 0);
    char *scheme = NULL;
    int rc = 0;
    if (uc != CURLUE_OK) {
        /* The URL itself is not repeated: a hook URL is a credential. */
        ld_err(ld, n,
               "expected an absolute URL such as https://host/path (%s)",
               curl_url_strerror(uc));
        rc = HL_ECONFIG;
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
               strcmp(scheme, "http") && strcmp(scheme, "https") &&
               strcmp(scheme, "smtp") && strcmp(scheme, "smtps")) {
        ld_err(ld, n,
               "the URL uses the scheme '%s'; expected http, https, smtp or "
               "smtps",
               scheme);
        rc = HL_ECONFIG;
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!rc)
        *(const char **)field = s;
    return rc;
}

static int check_regex(ld_t *ld, const hl_ynode *n, const char *re)
{
    int errcode;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF, &errcode, &off, NULL);
    if (code) {
        pcre2_code_free(code);
        return 0;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof msg);
    ld_err(ld, n, "invalid regular expression at offset %zu: %s", (size_t)off,
           (const char *)msg);
    return HL_ECONFIG;
}

static const char *const canonical_fields[] = {
    "type", "title", "text", "severity", "status", "url",
    "labels", "dedupkey", "subject", "correlationid", "time", NULL};

static int parse_fields(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_source_cfg *src =
        (hl_source_cfg *)((char *)field - offsetof(hl_source_cfg, fields));
    if (n->type != HL_YMAP) {
        ld_err(ld, n, "expected a mapping of canonical field to JSON "
                      "Pointer, got %s",
               got(n));
        return HL_ECONFIG;
    }
    src->fields = ld_alloc(ld, (n->u.map.n ? n->u.map.n : 1) *
                                   sizeof *src->fields);
    if (!src->fields)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key, *v = n->u.map.pairs[i].value;
        size_t mark = path_key(ld, k->u.scalar.str);
        int known = 0;
        for (const char *const *f = canonical_fields; *f; f++)
            known |= !strcmp(*f, k->u.scalar.str);
        if (!known) {
            ld_err(ld, k,
                   "'%s' is not a canonical field; expected one of type, "
                   "title, text, severity, status, url, labels, dedupkey, "
                   "subject, correlationid, time",
                   k->u.scalar.str);
            rc = HL_ECONFIG;
        } else if (v->type != HL_YSCALAR ||
                   (v->u.scalar.str[0] && v->u.scalar.str[0] != '/')) {
            ld_err(ld, v,
                   "expected a JSON Pointer such as /alert/title (it starts "
                   "with '/'), got %s",
                   v->type == HL_YSCALAR ? v->u.scalar.str : got(v));
            rc = HL_ECONFIG;
        } else {
            src->fields[src->n_fields].name = k->u.scalar.str;
            src->fields[src->n_fields].value = v->u.scalar.str;
            src->n_fields++;
        }
        path_pop(ld, mark);
    }
    return rc;
}

static const char *const jitter_choices[] = {"none", "full", NULL};

static int parse_jitter(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_retry_cfg *r =
        (hl_retry_cfg *)((char *)field - offsetof(hl_retry_cfg, jitter));
    if (want_scalar(ld, n, "full, none or a fraction from 0 to 1"))
        return HL_ECONFIG;
    const char *s = n->u.scalar.str;
    char *end;
    double v = strtod(s, &end);
    if (!strcmp(s, "full")) {
        r->jitter = HL_JITTER_FULL;
    } else if (!strcmp(s, "none")) {
        r->jitter = HL_JITTER_NONE;
    } else if (end != s && !*end && v >= 0 && v <= 1) {
        r->jitter = v > 0 ? HL_JITTER_FRACTION : HL_JITTER_NONE;
        r->jitter_fraction = v;
    } else {
        ld_err(ld, n,
               "expected full, none or a fraction from 0 to 1 (0.2 means "
               "+-20%%), got '%s'",
               s);
        return HL_ECONFIG;
    }
    (void)jitter_choices;
    return 0;
}

static int parse_schedule(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_retry_cfg *r =
        (hl_retry_cfg *)((char *)field - offsetof(hl_retry_cfg, schedule_ms));
    static const key k = {"", K_LIST, 0, F_REQ | F_NONEMPTY, NULL, NULL, 0, 0,
                          NULL, NULL, 0};
    hl_strlist l;
    int rc = parse_list(ld, n, &k, &l);
    if (rc)
        return rc;
    r->schedule_ms = ld_alloc(ld, l.n * sizeof *r->schedule_ms);
    if (!r->schedule_ms)
        return HL_ENOMEM;
    for (size_t i = 0; i < l.n; i++) {
        if (hl_parse_duration(l.v[i], &r->schedule_ms[i])) {
            size_t mark = path_push(ld, "[%zu]", i);
            ld_err(ld, n->type == HL_YSEQ ? n->u.seq.items[i] : n,
                   "expected a duration such as 500ms, 5s, 2m, 1h or 7d, "
                   "got '%s'",
                   l.v[i]);
            path_pop(ld, mark);
            rc = HL_ECONFIG;
        }
    }
    r->n_schedule = rc ? 0 : l.n;
    return rc;
}

static const char *const redact_actions[] = {"mask", "drop", "hash", NULL};

static int parse_redact_rule(ld_t *ld, const hl_ynode *n, hl_redact_rule *out)
{
    if (n->type == HL_YSCALAR) {
        if (!valid_name(n->u.scalar.str)) {
            ld_err(ld, n,
                   "expected a redaction pack name such as secrets or pii, "
                   "got '%s'",
                   n->u.scalar.str);
            return HL_ECONFIG;
        }
        out->kind = HL_REDACT_PACK;
        out->value = n->u.scalar.str;
        return 0;
    }
    typedef struct {
        const char *path, *pattern, *replacement;
        int action;
    } rule_src;
    static const key rule_keys[] = {
        KEY("path", K_STR, rule_src, path, F_NONEMPTY, NULL),
        KEY("pattern", K_STR, rule_src, pattern, F_NONEMPTY, NULL),
        KENUM("action", rule_src, action, "mask", redact_actions),
        KEY("replacement", K_STR, rule_src, replacement, 0, NULL),
        END_KEYS};
    rule_src tmp = {0};
    int rc = load_section(ld, n, rule_keys, &tmp);
    if (rc)
        return rc;
    const char *path = tmp.path, *pattern = tmp.pattern;
    if (!!path == !!pattern) {
        ld_err(ld, n, "a redaction rule needs exactly one of 'path' (a JSON "
                      "Pointer or glob) or 'pattern' (a regular expression)");
        return HL_ECONFIG;
    }
    out->action = tmp.action;
    out->replacement = tmp.replacement;
    if (path) {
        out->kind = HL_REDACT_FIELD;
        out->value = path;
        return 0;
    }
    out->kind = HL_REDACT_PATTERN;
    out->value = pattern;
    size_t mark = path_key(ld, "pattern");
    rc = check_regex(ld, hl_ynode_get(n, "pattern"), pattern);
    path_pop(ld, mark);
    if (!rc && out->action == HL_REDACT_DROP) {
        mark = path_key(ld, "action");
        ld_err(ld, hl_ynode_get(n, "action"),
               "a pattern rule can mask or hash what it matches; drop "
               "applies to path rules");
        path_pop(ld, mark);
        rc = HL_ECONFIG;
    }
    return rc;
}

/* field is a hl_redact_rule pointer followed by its count (a policy's
 * redact, storage.redact_at_rest). */
static int parse_redact(ld_t *ld, const hl_ynode *n, void *field)
{
    hl_redact_rule **rules = field;
    size_t *count = (size_t *)((char *)field + sizeof(hl_redact_rule *));
    if (n->type != HL_YSEQ) {
        ld_err(ld, n, "expected a list of pack names and rules, got %s",
               got(n));
        return HL_ECONFIG;
    }
    *rules = ld_alloc(ld, (n->u.seq.n ? n->u.seq.n : 1) * sizeof **rules);
    if (!*rules)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n->u.seq.n; i++) {
        size_t mark = path_push(ld, "[%zu]", i);
        if (parse_redact_rule(ld, n->u.seq.items[i], &(*rules)[i]))
            rc = HL_ECONFIG;
        path_pop(ld, mark);
    }
    *count = rc ? 0 : n->u.seq.n;
    return rc;
}

static int parse_label_match(ld_t *ld, const hl_ynode *k, const hl_ynode *v,
                             hl_label_match *out)
{
    static const char *const ops[] = {"equals", "not", "matches",
                                      "not_matches"};
    out->name = k->u.scalar.str;
    if (v->type == HL_YSCALAR) {
        out->op = HL_LABEL_EQUALS;
        out->value = v->u.scalar.str;
        return 0;
    }
    if (v->type != HL_YMAP || v->u.map.n != 1) {
        ld_err(ld, v,
               "expected a value to equal, or a mapping with one of equals, "
               "not, matches, not_matches");
        return HL_ECONFIG;
    }
    const hl_ynode *opk = v->u.map.pairs[0].key, *opv = v->u.map.pairs[0].value;
    for (int i = 0; i < 4; i++) {
        if (strcmp(opk->u.scalar.str, ops[i]))
            continue;
        size_t mark = path_key(ld, ops[i]);
        int rc = want_scalar(ld, opv, "a string");
        if (!rc && i >= HL_LABEL_MATCHES)
            rc = check_regex(ld, opv, opv->u.scalar.str);
        path_pop(ld, mark);
        out->op = i;
        out->value = rc ? NULL : opv->u.scalar.str;
        return rc;
    }
    ld_err(ld, opk,
           "unknown label operator '%s'; expected equals, not, matches or "
           "not_matches",
           opk->u.scalar.str);
    return HL_ECONFIG;
}

static int parse_labels(ld_t *ld, const hl_ynode *n, void *field)
{
    /* field is &route->labels; n_labels follows it. */
    hl_label_match **labels = field;
    size_t *count = (size_t *)((char *)field + sizeof(hl_label_match *));
    if (n->type != HL_YMAP) {
        ld_err(ld, n, "expected a mapping of label name to matcher, got %s",
               got(n));
        return HL_ECONFIG;
    }
    *labels = ld_alloc(ld, (n->u.map.n ? n->u.map.n : 1) * sizeof **labels);
    if (!*labels)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key;
        size_t mark = path_key(ld, k->u.scalar.str);
        if (parse_label_match(ld, k, n->u.map.pairs[i].value, &(*labels)[i]))
            rc = HL_ECONFIG;
        path_pop(ld, mark);
    }
    *count = rc ? 0 : n->u.map.n;
    return rc;
}

static const char *const severities[] = {"critical", "error", "warning",
                                         "info", NULL};

/* ---- the tables ------------------------------------------------------ */

#define DAY_MS 86400000.0
#define MAX_DUR (3650 * DAY_MS)

static const key server_keys[] = {
    KFN("listen", hl_server_cfg, listen, 0, "127.0.0.1:8080", parse_listen),
    KNUM("max_body", K_SIZE, hl_server_cfg, max_body, 0, "1MiB", 1024,
         1024.0 * 1024 * 1024),
    KNUM("max_connections", K_UINT, hl_server_cfg, max_connections, 0,
         "10000", 1, 1000000),
    KNUM("header_timeout", K_DUR, hl_server_cfg, header_timeout_ms, 0, "10s",
         100, 3600000),
    KNUM("idle_timeout", K_DUR, hl_server_cfg, idle_timeout_ms, 0, "60s", 100,
         DAY_MS),
    END_KEYS};

static const char *const durabilities[] = {"full", "normal", NULL};

static const key retention_keys[] = {
    KNUM("delivered", K_DUR, hl_storage_cfg, retention_delivered_ms, 0, "7d",
         1000, MAX_DUR),
    KNUM("failed", K_DUR, hl_storage_cfg, retention_failed_ms, 0, "30d",
         1000, MAX_DUR),
    END_KEYS};

static const key storage_keys[] = {
    KEY("path", K_STR, hl_storage_cfg, path, F_NONEMPTY, "./var/hookline.db"),
    KENUM("durability", hl_storage_cfg, durability, "full", durabilities),
    KNUM("max_queued", K_UINT, hl_storage_cfg, max_queued, 0, "1000000", 1,
         1e12),
    KNUM("max_size", K_SIZE, hl_storage_cfg, max_size, 0, NULL, 1024 * 1024,
         1e15),
    KFN("redact_at_rest", hl_storage_cfg, redact_at_rest, 0, NULL,
        parse_redact),
    {"retention", K_SECTION, 0, 0, NULL, NULL, 0, 0, retention_keys, NULL, 0},
    END_KEYS};

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static const key log_keys[] = {
    KENUM("level", hl_log_cfg, level, "info", log_levels),
    KENUM("format", hl_log_cfg, format, "text", log_formats), END_KEYS};

static const key admin_keys[] = {
    KEY("token", K_STR, hl_admin_cfg, token, F_NONEMPTY, NULL), END_KEYS};

static const key outbound_keys[] = {
    KNUM("timeout", K_DUR, hl_outbound_cfg, timeout_ms, 0, "15s", 100,
         3600000),
    KFN("allow_networks", hl_outbound_cfg, allow_networks, 0, NULL,
        parse_cidrs),
    END_KEYS};

static const key tenant_keys[] = {
    KEY("token", K_STR, hl_tenant_cfg, token, F_NONEMPTY, NULL), END_KEYS};

static const char *const hash_algs[] = {"sha1", "sha256", "sha512", NULL};
static const char *const encodings[] = {"hex", "base64", NULL};

static const key hmac_keys[] = {
    KEY("header", K_STR, hl_hmac_cfg, header, F_REQ | F_NONEMPTY, NULL),
    KENUM("algorithm", hl_hmac_cfg, algorithm, "sha256", hash_algs),
    KEY("prefix", K_STR, hl_hmac_cfg, prefix, 0, NULL),
    KENUM("encoding", hl_hmac_cfg, encoding, "hex", encodings),
    KEY("secrets", K_LIST, hl_hmac_cfg, secrets, F_REQ | F_NONEMPTY, NULL),
    KEY("timestamp_header", K_STR, hl_hmac_cfg, timestamp_header, F_NONEMPTY,
        NULL),
    KNUM("tolerance", K_DUR, hl_hmac_cfg, tolerance_ms, 0, "5m", 1000,
         DAY_MS),
    END_KEYS};

static const key timed_keys[] = {
    KEY("secrets", K_LIST, hl_timed_cfg, secrets, F_REQ | F_NONEMPTY, NULL),
    KNUM("tolerance", K_DUR, hl_timed_cfg, tolerance_ms, 0, "5m", 1000,
         DAY_MS),
    END_KEYS};

static const key bearer_keys[] = {
    KEY("tokens", K_LIST, hl_bearer_cfg, tokens, F_REQ | F_NONEMPTY, NULL),
    END_KEYS};

static const key verify_keys[] = {
    KOPT("hmac", hl_verify_cfg, hmac, hmac_set, hmac_keys),
    KOPT("standard_webhooks", hl_verify_cfg, standard_webhooks,
         standard_webhooks_set, timed_keys),
    KOPT("slack", hl_verify_cfg, slack, slack_set, timed_keys),
    KOPT("bearer", hl_verify_cfg, bearer, bearer_set, bearer_keys),
    END_KEYS};

static const key rate_keys[] = {
    KNUM("per_second", K_NUM, hl_rate_cfg, per_second, F_REQ, NULL, 0.001,
         1e7),
    KNUM("burst", K_NUM, hl_rate_cfg, burst, 0, NULL, 1, 1e8), END_KEYS};

static const key source_keys[] = {
    KEY("tenant", K_STR, hl_source_cfg, tenant, F_NONEMPTY, NULL),
    KEY("kind", K_STR, hl_source_cfg, kind, F_REQ | F_NONEMPTY, NULL),
    KEY("idempotency_header", K_STR, hl_source_cfg, idempotency_header,
        F_NONEMPTY, NULL),
    KSEC("verify", hl_source_cfg, verify, verify_keys),
    KOPT("rate", hl_source_cfg, rate, rate.set, rate_keys),
    KFN("fields", hl_source_cfg, fields, 0, NULL, parse_fields), END_KEYS};

static const key connector_keys[] = {
    KEY("plugin", K_STR, hl_connector_cfg, plugin, F_REQ | F_NONEMPTY, NULL),
    KFN("url", hl_connector_cfg, url, 0, NULL, parse_url),
    KEY("policy", K_STR, hl_connector_cfg, policy, F_NONEMPTY, NULL),
    KEY("tenant", K_STR, hl_connector_cfg, tenant, F_NONEMPTY, NULL),
    KNUM("timeout", K_DUR, hl_connector_cfg, timeout_ms, 0, NULL, 100,
         3600000),
    {"", K_STR, 0, F_OPEN, NULL, NULL, 0, 0, NULL, NULL, 0},
    END_KEYS};

static const key exponential_keys[] = {
    KNUM("base", K_DUR, hl_retry_cfg, base_ms, F_REQ, NULL, 1, DAY_MS),
    KNUM("factor", K_NUM, hl_retry_cfg, factor, 0, "2", 1, 100),
    KNUM("max", K_DUR, hl_retry_cfg, max_ms, F_REQ, NULL, 1, 30 * DAY_MS),
    END_KEYS};

static const key retry_keys[] = {
    KFN("schedule", hl_retry_cfg, schedule_ms, 0, NULL, parse_schedule),
    {"exponential", K_SECTION, 0, 0, NULL, NULL, 0, 0, exponential_keys, NULL,
     offsetof(hl_retry_cfg, exponential) + 1},
    KNUM("max_attempts", K_UINT, hl_retry_cfg, max_attempts, 0, NULL, 1,
         1000),
    KNUM("max_age", K_DUR, hl_retry_cfg, max_age_ms, 0, NULL, 1000, MAX_DUR),
    KFN("jitter", hl_retry_cfg, jitter, 0, "0.1", parse_jitter), END_KEYS};

static const key circuit_keys[] = {
    KNUM("failures", K_UINT, hl_circuit_cfg, failures, 0, "5", 1, 10000),
    KNUM("cooldown", K_DUR, hl_circuit_cfg, cooldown_ms, 0, "30s", 100,
         DAY_MS),
    END_KEYS};

static const key policy_keys[] = {
    KSEC("retry", hl_policy_cfg, retry, retry_keys),
    KOPT("rate", hl_policy_cfg, rate, rate.set, rate_keys),
    KNUM("max_in_flight", K_UINT, hl_policy_cfg, max_in_flight, 0, "16", 1,
         10000),
    KSEC("circuit", hl_policy_cfg, circuit, circuit_keys),
    KFN("redact", hl_policy_cfg, redact, 0, NULL, parse_redact), END_KEYS};

static const key match_keys[] = {
    KEY("tenant", K_LIST, hl_route_cfg, tenant, F_NONEMPTY, NULL),
    KEY("source", K_LIST, hl_route_cfg, source, F_NONEMPTY, NULL),
    KEY("type", K_LIST, hl_route_cfg, type, F_NONEMPTY, NULL),
    KEY("severity", K_LIST, hl_route_cfg, severity, F_NONEMPTY, NULL),
    KFN("labels", hl_route_cfg, labels, 0, NULL, parse_labels), END_KEYS};

static const key route_keys[] = {
    KEY("name", K_STR, hl_route_cfg, name, F_NONEMPTY, NULL),
    {"match", K_SECTION, 0, 0, NULL, NULL, 0, 0, match_keys, NULL, 0},
    KEY("to", K_LIST, hl_route_cfg, to, F_REQ | F_NONEMPTY, NULL),
    KEY("continue", K_BOOL, hl_route_cfg, cont, 0, "false"), END_KEYS};

static const key stream_keys[] = {
    KNUM("heartbeat", K_DUR, hl_stream_cfg, heartbeat_ms, 0, "30s", 1000,
         3600000),
    KNUM("max_clients", K_UINT, hl_stream_cfg, max_clients, 0, "1000", 1,
         1000000),
    KNUM("client_buffer", K_UINT, hl_stream_cfg, client_buffer, 0, "1000", 1,
         1000000),
    END_KEYS};

/* ---- named sections and lists ------------------------------------------ */

/* A mapping of name -> section, into an array of elem_size structs whose
 * name (and node, unless node_off is SIZE_MAX) fields are set. */
static int load_named(ld_t *ld, const hl_ynode *n, const key *keys,
                      size_t elem_size, size_t name_off, size_t node_off,
                      void **out, size_t *count)
{
    if (n->type != HL_YMAP) {
        ld_err(ld, n, "expected a mapping of names to settings, got %s",
               got(n));
        return HL_ECONFIG;
    }
    char *arr = ld_alloc(ld, (n->u.map.n ? n->u.map.n : 1) * elem_size);
    if (!arr)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const hl_ynode *k = n->u.map.pairs[i].key;
        char *elem = arr + i * elem_size;
        size_t mark = path_key(ld, k->u.scalar.str);
        if (!valid_name(k->u.scalar.str)) {
            ld_err(ld, k,
                   "the name '%s' may hold only letters, digits, '-', '_' "
                   "and '.', start with a letter or digit, and be at most "
                   "64 characters",
                   k->u.scalar.str);
            rc = HL_ECONFIG;
        }
        *(const char **)(elem + name_off) = k->u.scalar.str;
        if (node_off != SIZE_MAX)
            *(const hl_ynode **)(elem + node_off) = n->u.map.pairs[i].value;
        if (load_section(ld, n->u.map.pairs[i].value, keys, elem))
            rc = HL_ECONFIG;
        path_pop(ld, mark);
    }
    *out = arr;
    *count = n->u.map.n;
    return rc;
}

/* One parser per named section: the name and, where kept, the node. */
#define NAMED_PARSER(fn, type, keys, node_off, arr, count)                     \
    static int fn(ld_t *ld, const hl_ynode *n, void *field)                    \
    {                                                                          \
        (void)field;                                                           \
        return load_named(ld, n, keys, sizeof(type), offsetof(type, name),     \
                          node_off, (void **)&ld->cfg->arr,                    \
                          &ld->cfg->count);                                    \
    }

NAMED_PARSER(parse_tenants, hl_tenant_cfg, tenant_keys, SIZE_MAX, tenants,
             n_tenants)
NAMED_PARSER(parse_sources, hl_source_cfg, source_keys,
             offsetof(hl_source_cfg, node), sources, n_sources)
NAMED_PARSER(parse_connectors, hl_connector_cfg, connector_keys,
             offsetof(hl_connector_cfg, node), connectors, n_connectors)
NAMED_PARSER(parse_policies, hl_policy_cfg, policy_keys, SIZE_MAX, policies,
             n_policies)

static int parse_routes(ld_t *ld, const hl_ynode *n, void *field)
{
    (void)field;
    hl_config *cfg = ld->cfg;
    if (n->type != HL_YSEQ) {
        ld_err(ld, n, "expected a list of routes, got %s", got(n));
        return HL_ECONFIG;
    }
    cfg->routes = ld_alloc(ld, (n->u.seq.n ? n->u.seq.n : 1) *
                                   sizeof *cfg->routes);
    if (!cfg->routes)
        return HL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n->u.seq.n; i++) {
        hl_route_cfg *r = &cfg->routes[i];
        size_t mark = path_push(ld, "[%zu]", i);
        if (load_section(ld, n->u.seq.items[i], route_keys, r))
            rc = HL_ECONFIG;
        if (!r->name) {
            char *name = ld_alloc(ld, 32);
            if (!name)
                return HL_ENOMEM;
            snprintf(name, 32, "route-%zu", i + 1);
            r->name = name;
        }
        path_pop(ld, mark);
    }
    cfg->n_routes = n->u.seq.n;
    return rc;
}

static const key top_keys[] = {
    KSEC("server", hl_config, server, server_keys),
    KSEC("storage", hl_config, storage, storage_keys),
    KSEC("log", hl_config, log, log_keys),
    KSEC("admin", hl_config, admin, admin_keys),
    KSEC("outbound", hl_config, outbound, outbound_keys),
    KEY("connectors_path", K_LIST, hl_config, connectors_path, F_NONEMPTY,
        NULL),
    KEY("schemas_path", K_STR, hl_config, schemas_path, F_NONEMPTY, NULL),
    KEY("policies_path", K_STR, hl_config, policies_path, F_NONEMPTY, NULL),
    KFN("tenants", hl_config, tenants, 0, NULL, parse_tenants),
    KFN("sources", hl_config, sources, 0, NULL, parse_sources),
    KFN("connectors", hl_config, connectors, 0, NULL, parse_connectors),
    KFN("policies", hl_config, policies, 0, NULL, parse_policies),
    KFN("routes", hl_config, routes, 0, NULL, parse_routes),
    KSEC("stream", hl_config, stream, stream_keys),
    END_KEYS};

/* ---- after parsing: defaults that depend on other keys, references ------ */

/* The node of a key path below n ("match", "source"), or n itself. */
static const hl_ynode *node_at(const hl_ynode *n, const char *k1,
                               const char *k2)
{
    const hl_ynode *v = k1 ? hl_ynode_get(n, k1) : NULL;
    if (v && k2 && hl_ynode_get(v, k2))
        v = hl_ynode_get(v, k2);
    return v ? v : n;
}

/* The node of the i-th item of a list written as a list or one scalar. */
static const hl_ynode *item_at(const hl_ynode *n, size_t i)
{
    if (n && n->type == HL_YSEQ && i < n->u.seq.n)
        return n->u.seq.items[i];
    return n;
}

static void finish_rate(hl_rate_cfg *r)
{
    if (r->set && r->burst == 0)
        r->burst = r->per_second < 1 ? 1 : r->per_second;
}

static void finish_retry(ld_t *ld, hl_retry_cfg *r, const hl_ynode *n)
{
    if (r->n_schedule && r->exponential) {
        size_t mark = path_key(ld, "retry");
        ld_err(ld, node_at(n, "retry", "exponential"),
               "use either 'schedule' or 'exponential', not both");
        path_pop(ld, mark);
        return;
    }
    if (!r->n_schedule && !r->exponential) {
        r->exponential = true;
        r->base_ms = 1000;
        r->factor = 2;
        r->max_ms = 600000;
    }
    if (r->exponential && r->max_ms && r->max_ms < r->base_ms) {
        size_t mark = path_push(ld, "%sretry.exponential.max",
                                ld->kp.len ? "." : "");
        ld_err(ld, node_at(node_at(n, "retry", "exponential"), "max", NULL),
               "max must not be smaller than base");
        path_pop(ld, mark);
    }
    if (!r->max_attempts)
        r->max_attempts = r->n_schedule ? r->n_schedule : 10;
}

static void finish_policy(ld_t *ld, hl_policy_cfg *p, const hl_ynode *n)
{
    finish_retry(ld, &p->retry, n);
    finish_rate(&p->rate);
}

static int in_list(const hl_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return 1;
    return 0;
}

/* "acme, beta" for messages, or "none are defined". */
static void names_of(const void *arr, size_t n, size_t elem, char *out,
                     size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *)((const char *)arr + i * elem);
        int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    if (!n)
        snprintf(out, cap, "none are defined");
}

static void unknown_ref(ld_t *ld, const hl_ynode *at, const char *what,
                        const char *name, const void *arr, size_t n,
                        size_t elem, const char *section)
{
    char names[300];
    names_of(arr, n, elem, names, sizeof names);
    ld_err(ld, at, "no %s named '%s' (%s: %s); define it under '%s' or fix "
                   "the name",
           what, name, section, names, section);
}

static void check_sources(ld_t *ld)
{
    hl_config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        hl_source_cfg *s = &cfg->sources[i];
        size_t mark = path_push(ld, "sources.%s", s->name);
        const hl_verify_cfg *v = &s->verify;
        const hl_ynode *vn = hl_ynode_get(s->node, "verify");
        if (!strcmp(s->name, HL_API_SOURCE))
            ld_err(ld, s->node, "the source name '%s' is reserved for events "
                                "published with POST /v1/events; pick "
                                "another name", HL_API_SOURCE);
        if (!s->tenant && cfg->n_tenants == 1) {
            s->tenant = cfg->tenants[0].name;
        } else if (!s->tenant && cfg->n_tenants > 1) {
            ld_err(ld, s->node, "missing required key 'tenant' (needed "
                                "when several tenants are configured)");
        } else if (!s->tenant) {
            s->tenant = "default";
        } else if (!hl_config_tenant(cfg, s->tenant) &&
                   (cfg->n_tenants || strcmp(s->tenant, "default"))) {
            size_t m2 = path_key(ld, "tenant");
            unknown_ref(ld, node_at(s->node, "tenant", NULL), "tenant",
                        s->tenant, cfg->tenants, cfg->n_tenants,
                        sizeof *cfg->tenants, "tenants");
            path_pop(ld, m2);
        }
        if (vn && vn->type == HL_YMAP && !v->hmac_set &&
            !v->standard_webhooks_set && !v->slack_set && !v->bearer_set) {
            size_t m2 = path_key(ld, "verify");
            ld_err(ld, vn, "verify is empty; name at least one check: hmac, "
                           "standard_webhooks, slack or bearer");
            path_pop(ld, m2);
        } else if (!vn || hl_ynode_is_null(vn)) {
            ld_warn(ld, s->node,
                    "no 'verify' section: this source accepts requests from "
                    "anyone who can reach the listener");
        }
        if (v->standard_webhooks_set) {
            for (size_t j = 0; j < v->standard_webhooks.secrets.n; j++) {
                unsigned char raw[HL_WHSEC_KEY_MAX];
                size_t rawlen;
                int r = hl_whsec_decode(v->standard_webhooks.secrets.v[j], raw,
                                        sizeof raw, &rawlen);
                if (!r)
                    continue;
                size_t m2 =
                    path_push(ld, ".verify.standard_webhooks.secrets[%zu]", j);
                ld_err(ld,
                       item_at(node_at(vn, "standard_webhooks", "secrets"), j),
                       r == HL_ETOOBIG
                           ? "the secret's key is longer than %d bytes"
                           : "a Standard Webhooks secret is 'whsec_' followed "
                             "by base64 (a key of at most %d bytes)",
                       HL_WHSEC_KEY_MAX);
                path_pop(ld, m2);
            }
        }
        if (s->n_fields && s->kind && strcmp(s->kind, "generic")) {
            size_t m2 = path_key(ld, "fields");
            ld_err(ld, node_at(s->node, "fields", NULL),
                   "'fields' applies only to sources of kind generic; '%s' "
                   "sources are mapped by schemas/sources/%s.yaml",
                   s->kind, s->kind);
            path_pop(ld, m2);
        }
        if (s->kind && !valid_name(s->kind)) {
            size_t m2 = path_key(ld, "kind");
            ld_err(ld, node_at(s->node, "kind", NULL),
                   "'%s' is not a kind name: letters, digits, '-', '_' and '.', "
                   "starting with a letter or digit",
                   s->kind);
            path_pop(ld, m2);
        }
        finish_rate(&s->rate);
        path_pop(ld, mark);
    }
}

static void check_connectors(ld_t *ld)
{
    hl_config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        hl_connector_cfg *c = &cfg->connectors[i];
        size_t mark = path_push(ld, "connectors.%s", c->name);
        if (c->policy && !hl_config_policy_for(cfg, c)->name) {
            size_t m2 = path_key(ld, "policy");
            unknown_ref(ld, node_at(c->node, "policy", NULL), "policy",
                        c->policy, cfg->policies, cfg->n_policies,
                        sizeof *cfg->policies, "policies");
            path_pop(ld, m2);
        }
        if (c->tenant && !hl_config_tenant(cfg, c->tenant) &&
            (cfg->n_tenants || strcmp(c->tenant, "default"))) {
            size_t m2 = path_key(ld, "tenant");
            unknown_ref(ld, node_at(c->node, "tenant", NULL), "tenant",
                        c->tenant, cfg->tenants, cfg->n_tenants,
                        sizeof *cfg->tenants, "tenants");
            path_pop(ld, m2);
        }
        if (!c->tenant && cfg->n_tenants > 1)
            ld_warn(ld, c->node,
                    "no 'tenant': this connector receives events of every "
                    "tenant; set tenant to keep tenants apart");
        if (c->plugin && !valid_name(c->plugin)) {
            size_t m2 = path_key(ld, "plugin");
            ld_err(ld, node_at(c->node, "plugin", NULL),
                   "'%s' is not a plugin name: letters, digits, '-', '_' and '.', "
                   "starting with a letter or digit",
                   c->plugin);
            path_pop(ld, m2);
        }
        int used = 0;
        for (size_t r = 0; r < cfg->n_routes; r++)
            used |= in_list(&cfg->routes[r].to, c->name);
        if (!used)
            ld_warn(ld, c->node, "no route sends events to this connector");
        path_pop(ld, mark);
    }
}

static void check_route_list(ld_t *ld, const hl_ynode *rn, const char *field,
                             const hl_strlist *l, const char *what,
                             const void *arr, size_t n, size_t elem,
                             const char *section)
{
    for (size_t j = 0; j < l->n; j++) {
        int found = 0;
        for (size_t k = 0; k < n && !found; k++)
            found = !strcmp(*(const char *const *)((const char *)arr + k * elem),
                            l->v[j]);
        if (found ||
            (!strcmp(what, "tenant") && n == 0 &&
             !strcmp(l->v[j], "default")) ||
            (!strcmp(what, "source") && !strcmp(l->v[j], HL_API_SOURCE)))
            continue; /* events published with POST /v1/events */
        const hl_ynode *ln = !strcmp(field, "to") ? node_at(rn, "to", NULL)
                                                : node_at(rn, "match", field);
        size_t mark = path_push(ld, strcmp(field, "to") ? ".match.%s" : ".%s",
                                field);
        if (ln && ln->type == HL_YSEQ)
            path_push(ld, "[%zu]", j);
        unknown_ref(ld, item_at(ln, j), what, l->v[j], arr, n, elem, section);
        path_pop(ld, mark);
    }
}

static void check_routes(ld_t *ld)
{
    hl_config *cfg = ld->cfg;
    const hl_ynode *routes = hl_ynode_get(hl_ydoc_root(cfg->mem->doc), "routes");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        hl_route_cfg *r = &cfg->routes[i];
        const hl_ynode *rn = item_at(routes, i);
        size_t mark = path_push(ld, "routes[%zu]", i);
        check_route_list(ld, rn, "to", &r->to, "connector", cfg->connectors,
                         cfg->n_connectors, sizeof *cfg->connectors,
                         "connectors");
        check_route_list(ld, rn, "source", &r->source, "source",
                         cfg->sources, cfg->n_sources, sizeof *cfg->sources,
                         "sources");
        check_route_list(ld, rn, "tenant", &r->tenant, "tenant",
                         cfg->tenants, cfg->n_tenants, sizeof *cfg->tenants,
                         "tenants");
        for (size_t j = 0; j < r->severity.n; j++) {
            int ok = 0;
            for (const char *const *s = severities; *s; s++)
                ok |= !strcmp(*s, r->severity.v[j]);
            if (ok)
                continue;
            const hl_ynode *sn = node_at(rn, "match", "severity");
            size_t m2 = path_push(ld, ".match.severity");
            if (sn->type == HL_YSEQ)
                path_push(ld, "[%zu]", j);
            ld_err(ld, item_at(sn, j),
                   "expected one of critical, error, warning, info; got '%s'",
                   r->severity.v[j]);
            path_pop(ld, m2);
        }
        for (size_t j = 0; j < r->to.n && r->tenant.n; j++) {
            const hl_connector_cfg *c = hl_config_connector(cfg, r->to.v[j]);
            if (!c || !c->tenant || in_list(&r->tenant, c->tenant))
                continue;
            const hl_ynode *tn = node_at(rn, "to", NULL);
            size_t m2 = path_push(ld, tn && tn->type == HL_YSEQ ? ".to[%zu]"
                                                                 : ".to",
                                  j);
            ld_warn(ld, item_at(tn, j),
                    "connector '%s' serves only tenant '%s', which this "
                    "route never matches, so it will get nothing here",
                    c->name, c->tenant);
            path_pop(ld, m2);
        }
        path_pop(ld, mark);
    }
}

static void finish(ld_t *ld)
{
    hl_config *cfg = ld->cfg;
    const hl_ynode *root = hl_ydoc_root(cfg->mem->doc);
    const hl_ynode *pols = hl_ynode_get(root, "policies");
    for (size_t i = 0; i < cfg->n_policies; i++) {
        size_t mark = path_push(ld, "policies.%s", cfg->policies[i].name);
        finish_policy(ld, &cfg->policies[i],
                      pols ? pols->u.map.pairs[i].value : NULL);
        path_pop(ld, mark);
    }
    load_section(ld, NULL, policy_keys, &cfg->default_policy);
    cfg->default_policy.name = NULL;
    finish_policy(ld, &cfg->default_policy, NULL);
    check_sources(ld);
    check_connectors(ld);
    check_routes(ld);
    if (cfg->admin.token && strlen(cfg->admin.token) < 16) {
        size_t mark = path_push(ld, "admin.token");
        ld_warn(ld, node_at(hl_ynode_get(root, "admin"), "token", NULL),
                "shorter than 16 characters; use a long random token");
        path_pop(ld, mark);
    }
}

/* ---- public API -------------------------------------------------------- */

static int load_doc(hl_ydoc *doc, int yrc, hl_diags *d, hl_config **out)
{
    *out = NULL;
    size_t errors_before = d->errors;
    hl_config *cfg = calloc(1, sizeof *cfg);
    struct hl_config_mem *mem = calloc(1, sizeof *mem);
    if (!cfg || !mem) {
        free(cfg);
        free(mem);
        hl_ydoc_destroy(doc);
        return HL_ENOMEM;
    }
    cfg->mem = mem;
    mem->refs = 1;
    mem->doc = doc;
    cfg->file = hl_ydoc_file(doc);
    ld_t ld = {.cfg = cfg, .d = d};
    const hl_ynode *root = hl_ydoc_root(doc);
    if (root && root->type != HL_YMAP) {
        ld_err(&ld, root, "expected a mapping of sections (server, storage, "
                          "sources, ...), got %s",
               got(root));
    } else {
        load_section(&ld, root, top_keys, cfg);
        finish(&ld);
    }
    if (ld.oom)
        hl_diags_add(d, HL_DIAG_ERROR, cfg->file, 0, 0, NULL,
                     "out of memory while loading the configuration");
    if (yrc || d->errors > errors_before) {
        hl_config_destroy(cfg);
        return ld.oom ? HL_ENOMEM : HL_ECONFIG;
    }
    *out = cfg;
    return 0;
}

/* Put the messages from index first on into file order (line, then column;
 * messages without a position last). Stable, so a message and what follows
 * from it at the same place keep their order. The loader finds problems in
 * phases (syntax, expansion, keys in table order, cross-references), so
 * without this a user would read them out of order. */
static void sort_by_position(hl_diags *d, size_t first)
{
    for (size_t i = first + 1; i < d->n; i++) {
        hl_diag m = d->v[i];
        unsigned ml = m.line ? m.line : UINT_MAX;
        size_t j = i;
        while (j > first) {
            const hl_diag *p = &d->v[j - 1];
            unsigned pl = p->line ? p->line : UINT_MAX;
            if (pl < ml || (pl == ml && p->col <= m.col))
                break;
            d->v[j] = *p;
            j--;
        }
        d->v[j] = m;
    }
}

int hl_config_load(const char *path, hl_diags *d, hl_config **out)
{
    hl_ydoc *doc;
    *out = NULL;
    size_t first = d->n;
    int rc = hl_ydoc_load_file(path, HL_YDOC_EXPAND, d, &doc);
    if (doc)
        rc = load_doc(doc, rc, d, out);
    else if (!rc)
        rc = HL_ECONFIG;
    sort_by_position(d, first);
    return rc;
}

int hl_config_load_string(const char *name, const char *text, size_t len,
                          hl_diags *d, hl_config **out)
{
    hl_ydoc *doc;
    *out = NULL;
    size_t first = d->n;
    int rc = hl_ydoc_load_string(name, text, len, HL_YDOC_EXPAND, d, &doc);
    if (doc)
        rc = load_doc(doc, rc, d, out);
    else if (!rc)
        rc = HL_ECONFIG;
    sort_by_position(d, first);
    return rc;
}

hl_config *hl_config_retain(hl_config *cfg)
{
    atomic_fetch_add(&cfg->mem->refs, 1);
    return cfg;
}

void hl_config_destroy(hl_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->mem && atomic_fetch_sub(&cfg->mem->refs, 1) > 1)
        return;
    if (cfg->mem) {
        for (size_t i = 0; i < cfg->mem->n; i++)
            free(cfg->mem->blocks[i]);
        free(cfg->mem->blocks);
        hl_ydoc_destroy(cfg->mem->doc);
        free(cfg->mem);
    }
    free(cfg);
}

#define FIND(arr, n, name)                                                     \
    do {                                                                       \
        for (size_t i_ = 0; name && i_ < (n); i_++)                            \
            if (!strcmp((arr)[i_].name, name))                                 \
                return &(arr)[i_];                                             \
        return NULL;                                                           \
    } while (0)

const hl_tenant_cfg *hl_config_tenant(const hl_config *cfg, const char *name)
{
    FIND(cfg->tenants, cfg->n_tenants, name);
}

const hl_source_cfg *hl_config_source(const hl_config *cfg, const char *name)
{
    FIND(cfg->sources, cfg->n_sources, name);
}

const hl_connector_cfg *hl_config_connector(const hl_config *cfg,
                                            const char *name)
{
    FIND(cfg->connectors, cfg->n_connectors, name);
}

const hl_policy_cfg *hl_config_policy_for(const hl_config *cfg,
                                          const hl_connector_cfg *c)
{
    for (size_t i = 0; c->policy && i < cfg->n_policies; i++)
        if (!strcmp(cfg->policies[i].name, c->policy))
            return &cfg->policies[i];
    return &cfg->default_policy;
}

int hl_config_exe_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    char *slash = strrchr(out, '/');
    if (!slash)
        return -ENOENT;
    *slash = 0;
    return 0;
}

int hl_config_find_dir(const char *configured, const char *name, char *out,
                       size_t cap)
{
    struct stat st;
    if (configured) {
        snprintf(out, cap, "%s", configured);
        return stat(out, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -ENOENT;
    }
    char exe[4096];
    int slash = !hl_config_exe_dir(exe, sizeof exe);
    const char *const tries[] = {".", "%s/../share/hookline", "%s/..",
                                 "%s/../.."};
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        char base[4096];
        if (i && !slash)
            break;
        snprintf(base, sizeof base, tries[i], exe);
        snprintf(out, cap, "%s/%s", base, name);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
    }
    snprintf(out, cap, "./%s", name);
    return -ENOENT;
}
