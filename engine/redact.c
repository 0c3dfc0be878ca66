/* redact.c - redaction of JSON values and free text: fields and patterns. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "redact.h"

#include "buf.h"
#include "err.h"
#include "ydoc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PACKS_DIR "policies/redact"
#define HASH_PREFIX "hmac256:"
#define HASH_PREFIX_LEN (sizeof HASH_PREFIX - 1)
#define HASH_HEX 16
#define TOKEN_LEN (HASH_PREFIX_LEN + HASH_HEX)
#define PROCESS_KEY_LEN 32
#define MAX_PASSES 8
#define PACK_NAME_MAX 64

#ifdef PCRE2_MATCH_INVALID_UTF
#define RE_OPTIONS (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF)
#else
#define RE_OPTIONS PCRE2_UTF
#endif

enum { CHECK_NONE, CHECK_LUHN };

/* What a field rule does to the value it names (positive, unlike errors). */
enum { FIELD_KEEP, FIELD_SET, FIELD_DROP };

typedef struct {
    char *glob; /* the segment, ~0 and ~1 decoded; NULL for "**" */
} seg;

typedef struct {
    int action;        /* hl_redact_action */
    char *replacement; /* mask text; NULL: HL_REDACT_MASK_DEFAULT */
    /* field rules */
    seg *segs;
    size_t nsegs;
    /* pattern rules */
    pcre2_code *code;
    uint32_t *secret; /* numbers of the groups named "secret", ascending */
    size_t nsecret;
    int check;
    bool jit; /* compiled to machine code */
} rule;

typedef struct {
    rule *v;
    size_t n, cap;
} rule_list;

struct hl_redactor {
    rule_list fields, patterns;
    unsigned char *key;
    size_t key_len;
    uint32_t ovec_pairs; /* the most capture groups of any pattern, plus 1 */
};

/* Where a rule came from, for messages. */
typedef struct {
    const char *file; /* pack file, or NULL for the caller's rules */
    unsigned line, col;
    const char *path; /* "rules[2].pattern", "redact[0]" */
} where;

/* A rule before it is compiled. */
typedef struct {
    const char *value; /* regex or path */
    int kind;          /* HL_REDACT_FIELD or HL_REDACT_PATTERN */
    int action;
    const char *replacement;
    int check;
    where repl_at; /* where the replacement was given */
} rule_src;

typedef struct {
    hl_redactor *r;
    hl_diags *d;
    const char *dir;
    char **packs; /* names already loaded */
    size_t npacks;
    bool hashes; /* some rule hashes: a key is needed */
} build;

static void err_at(build *b, const where *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(build *b, const where *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hl_diags_add(b->d, HL_DIAG_ERROR, w->file, w->line, w->col, w->path, "%s",
                 msg);
}

/* ---- rules ------------------------------------------------------------ */

static void rule_free(rule *ru)
{
    for (size_t i = 0; i < ru->nsegs; i++)
        free(ru->segs[i].glob);
    free(ru->segs);
    free(ru->replacement);
    pcre2_code_free(ru->code);
    free(ru->secret);
}

static int rules_push(rule_list *rs, rule *ru)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 8;
        rule *v = realloc(rs->v, cap * sizeof *v);
        if (!v)
            return HL_ENOMEM;
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = *ru;
    memset(ru, 0, sizeof *ru);
    return 0;
}

static void rules_free(rule_list *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        rule_free(&rs->v[i]);
    free(rs->v);
}

/* Copy the replacement, refusing text that is not valid UTF-8 (it would
 * make the JSON invalid). */
static int set_replacement(build *b, rule *ru, const rule_src *src)
{
    if (!src->replacement)
        return 0;
    json_t *probe = json_string(src->replacement);
    if (!probe) {
        err_at(b, &src->repl_at, "the replacement is not valid UTF-8 text");
        return HL_ECONFIG;
    }
    json_decref(probe);
    ru->replacement = strdup(src->replacement);
    return ru->replacement ? 0 : HL_ENOMEM;
}

/* ---- paths: JSON Pointers and globs ------------------------------------ */

/* Decode ~0 and ~1 in s[0..n) into a new string; NULL with *bad set on a
 * malformed escape, NULL alone when out of memory. */
static char *decode_segment(const char *s, size_t n, bool *bad)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '~') {
            *o++ = s[i];
            continue;
        }
        if (i + 1 == n || (s[i + 1] != '0' && s[i + 1] != '1')) {
            *bad = true;
            free(out);
            return NULL;
        }
        *o++ = s[++i] == '0' ? '~' : '/';
    }
    *o = 0;
    return out;
}

static int segs_push(rule *ru, const char *s, size_t n, bool *bad)
{
    bool deep = n == 2 && s[0] == '*' && s[1] == '*';
    if (deep && ru->nsegs && !ru->segs[ru->nsegs - 1].glob)
        return 0; /* "**" then "**" is one "**" */
    seg *v = realloc(ru->segs, (ru->nsegs + 1) * sizeof *v);
    if (!v)
        return HL_ENOMEM;
    ru->segs = v;
    char *glob = NULL;
    if (!deep && !(glob = decode_segment(s, n, bad)))
        return *bad ? HL_ECONFIG : HL_ENOMEM;
    ru->segs[ru->nsegs++].glob = glob;
    return 0;
}

static int parse_path(build *b, rule *ru, const char *path, const where *w)
{
    const char *p = path;
    if (*p == '/')
        p++;
    else if (strncmp(p, "**", 2) != 0 || (p[2] && p[2] != '/')) {
        err_at(b, w,
               "expected a JSON Pointer such as /data/labels/token or a glob "
               "such as **/password, got '%s'",
               path);
        return HL_ECONFIG;
    }
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        bool bad = false;
        int rc = segs_push(ru, p, n, &bad);
        if (bad)
            err_at(b, w, "'%s': '~' must be followed by 0 (for ~) or 1 (for /)",
                   path);
        if (rc || !end)
            return rc;
        p = end + 1;
    }
}

/* One path segment against a glob: '*' any run, '?' any one character,
 * '\' makes the next character literal. */
static bool glob_match(const char *p, const char *s, size_t n)
{
    const char *star = NULL;
    size_t i = 0, star_i = 0;
    while (i < n) {
        if (*p == '*') {
            star = ++p;
            star_i = i;
            continue;
        }
        if (*p == '?') {
            p++;
            for (i++; i < n && ((unsigned char)s[i] & 0xC0) == 0x80; i++)
                ;
            continue;
        }
        const char *lit = *p == '\\' && p[1] ? p + 1 : p;
        if (*lit && *lit == s[i]) {
            p = lit + 1;
            i++;
            continue;
        }
        if (!star)
            return false;
        p = star;
        i = ++star_i;
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

/* One step of the path being walked: an object key or an array index. */
typedef struct {
    const char *key; /* NULL: an index, in num */
    size_t len;
    char num[24];
} step;

static bool step_match(const seg *g, const step *s)
{
    if (s->key)
        return glob_match(g->glob, s->key, s->len);
    return glob_match(g->glob, s->num, s->len);
}

/* Whether segments p name the steps s exactly or, with prefix, whether they
 * could name something below s. A final "**" needs at least one step. */
static bool path_match(const seg *p, size_t np, const step *s, size_t ns,
                       bool prefix)
{
    for (; np && p->glob; p++, np--, s++, ns--) {
        if (!ns)
            return prefix;
        if (!step_match(p, s))
            return false;
    }
    if (!np)
        return ns == 0;
    if (np == 1)
        return prefix || ns > 0;
    for (size_t k = 0; k <= ns; k++)
        if (path_match(p + 1, np - 1, s + k, ns - k, prefix))
            return true;
    return false;
}

/* ---- patterns ---------------------------------------------------------- */

/* The numbers of the groups named "secret", from the pattern's name table. */
static int find_secret_groups(rule *ru)
{
    uint32_t count, size;
    PCRE2_SPTR table;
    if (pcre2_pattern_info(ru->code, PCRE2_INFO_NAMECOUNT, &count) ||
        pcre2_pattern_info(ru->code, PCRE2_INFO_NAMEENTRYSIZE, &size) ||
        pcre2_pattern_info(ru->code, PCRE2_INFO_NAMETABLE, &table))
        return HL_EINTERNAL;
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR e = table + (size_t)i * size;
        if (strcmp((const char *)e + 2, "secret") != 0)
            continue;
        uint32_t *v = realloc(ru->secret, (ru->nsecret + 1) * sizeof *v);
        if (!v)
            return HL_ENOMEM;
        ru->secret = v;
        uint32_t g = (uint32_t)e[0] << 8 | e[1], j = (uint32_t)ru->nsecret++;
        for (; j > 0 && v[j - 1] > g; j--)
            v[j] = v[j - 1];
        v[j] = g;
    }
    return 0;
}

static int compile_pattern(build *b, rule *ru, const char *re, const where *w)
{
    int errcode;
    PCRE2_SIZE off;
    ru->code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, RE_OPTIONS,
                             &errcode, &off, NULL);
    if (!ru->code) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", errcode);
        err_at(b, w, "invalid regular expression at offset %zu: %s",
               (size_t)off, (const char *)msg);
        return HL_ECONFIG;
    }
    /* Without JIT (not built in, or no executable memory) the interpreter
     * gives the same results, only slower: a failure here is not an error. */
    ru->jit = pcre2_jit_compile(ru->code, PCRE2_JIT_COMPLETE) == 0;
    uint32_t groups;
    if (pcre2_pattern_info(ru->code, PCRE2_INFO_CAPTURECOUNT, &groups))
        return HL_EINTERNAL;
    if (groups + 1 > b->r->ovec_pairs)
        b->r->ovec_pairs = groups + 1;
    return find_secret_groups(ru);
}

/* Check, compile and append one rule; errors go to b->d. */
static int add_rule(build *b, const rule_src *src, const where *w)
{
    rule ru = {.action = src->action, .check = src->check};
    int rc = HL_ECONFIG;
    if (src->action < HL_REDACT_MASK || src->action > HL_REDACT_HASH) {
        err_at(b, w, "unknown action %d; expected mask, drop or hash",
               src->action);
        goto out;
    }
    if (!src->value || !*src->value) {
        err_at(b, w, "the %s is empty",
               src->kind == HL_REDACT_FIELD ? "path" : "pattern");
        goto out;
    }
    if (src->kind == HL_REDACT_PATTERN && src->action == HL_REDACT_DROP) {
        err_at(b, w,
               "a pattern rule can mask or hash what it matches; drop "
               "applies to path rules");
        goto out;
    }
    if ((rc = set_replacement(b, &ru, src)))
        goto out;
    if (src->kind == HL_REDACT_FIELD)
        rc = parse_path(b, &ru, src->value, w);
    else
        rc = compile_pattern(b, &ru, src->value, w);
    if (rc)
        goto out;
    b->hashes |= src->action == HL_REDACT_HASH;
    rc = rules_push(
        src->kind == HL_REDACT_FIELD ? &b->r->fields : &b->r->patterns, &ru);
out:
    rule_free(&ru);
    return rc;
}

/* ---- pack files -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "pii, secrets": the packs found in dir, into buf; -errno if unreadable. */
static int list_packs(const char *dir, char *buf, size_t size)
{
    char *names[64];
    size_t n = 0, len = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return -errno;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 64) {
        size_t l = strlen(e->d_name);
        if (l > 5 && e->d_name[0] != '.' &&
            strcmp(e->d_name + l - 5, ".yaml") == 0 &&
            (names[n] = strndup(e->d_name, l - 5)))
            n++;
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_str);
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w =
            snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
        if (w > 0 && (size_t)w < size - len)
            len += (size_t)w;
        free(names[i]);
    }
    return 0;
}

static void unknown_pack(build *b, const char *name, const where *w)
{
    char list[512];
    int rc = list_packs(b->dir, list, sizeof list);
    if (rc)
        err_at(b, w,
               "unknown redaction pack '%s': cannot read the packs folder "
               "%s: %s",
               name, b->dir, hl_strerror(rc));
    else
        err_at(b, w,
               "unknown redaction pack '%s': there is no %s.yaml in %s "
               "(packs there: %s)",
               name, name, b->dir, *list ? list : "none");
}

static const char *const pack_rule_keys[] = {
    "name", "pattern", "path", "action", "replacement", "check", NULL};
static const char *const action_names[] = {"mask", "drop", "hash", NULL};
static const char *const check_names[] = {"none", "luhn", NULL};

/* A rule's position and path ("rules[3].pattern") for messages. */
typedef struct {
    where w;
    char path[64];
} pack_where;

static const where *at(pack_where *pw, const char *file, size_t i,
                       const char *key, const hl_ynode *n)
{
    if (key)
        snprintf(pw->path, sizeof pw->path, "rules[%zu].%s", i, key);
    else
        snprintf(pw->path, sizeof pw->path, "rules[%zu]", i);
    pw->w = (where){file, n->line, n->col, pw->path};
    return &pw->w;
}

/* A non-empty scalar, or NULL after an error. */
static const char *want_scalar(build *b, const hl_ynode *n, const where *w,
                               const char *what)
{
    if (n->type == HL_YSCALAR && !hl_ynode_is_null(n) && n->u.scalar.len)
        return n->u.scalar.str;
    err_at(b, w, "expected %s, got %s", what,
           n->type == HL_YSCALAR && !hl_ynode_is_null(n)
               ? "an empty string"
               : hl_ynode_type_name(n));
    return NULL;
}

/* The index of s in names (NULL-terminated), or -1 after an error. */
static int want_enum(build *b, const hl_ynode *n, const where *w,
                     const char *const *names)
{
    const char *s = want_scalar(b, n, w, "one of the names below");
    for (int i = 0; s && names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (s) {
        char list[128] = "";
        for (int i = 0; names[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     i ? ", " : "", names[i]);
        err_at(b, w, "unknown value '%s'; expected one of: %s", s, list);
    }
    return -1;
}

static bool check_keys(build *b, const hl_ynode *n, const char *file, size_t i)
{
    bool ok = true;
    for (size_t k = 0; k < n->u.map.n; k++) {
        const hl_ynode *key = n->u.map.pairs[k].key;
        size_t j = 0;
        while (pack_rule_keys[j] &&
               strcmp(pack_rule_keys[j], key->u.scalar.str))
            j++;
        if (pack_rule_keys[j])
            continue;
        pack_where pw;
        err_at(b, at(&pw, file, i, key->u.scalar.str, key),
               "unknown key '%s'; expected one of: name, pattern, path, "
               "action, replacement, check",
               key->u.scalar.str);
        ok = false;
    }
    return ok;
}

/* Read action, replacement and check of a pack rule into src. */
static bool pack_rule_options(build *b, const hl_ynode *n, const char *file,
                              size_t i, rule_src *src, pack_where *repl_pw)
{
    pack_where pw;
    const hl_ynode *v;
    bool ok = true;
    if ((v = hl_ynode_get(n, "action")) &&
        (src->action =
             want_enum(b, v, at(&pw, file, i, "action", v), action_names)) < 0)
        ok = false;
    if ((v = hl_ynode_get(n, "check")) &&
        (src->check =
             want_enum(b, v, at(&pw, file, i, "check", v), check_names)) < 0)
        ok = false;
    if ((v = hl_ynode_get(n, "replacement"))) {
        if (v->type != HL_YSCALAR || hl_ynode_is_null(v)) {
            err_at(b, at(&pw, file, i, "replacement", v),
                   "expected the text a match is replaced with, got %s",
                   hl_ynode_type_name(v));
            ok = false;
        } else if (src->action != HL_REDACT_MASK) {
            err_at(b, at(&pw, file, i, "replacement", v),
                   "a replacement applies to action mask only");
            ok = false;
        }
        src->replacement = v->u.scalar.str;
        src->repl_at = *at(repl_pw, file, i, "replacement", v);
    }
    return ok;
}

static int pack_rule_name(build *b, const hl_ynode *n, const char *file,
                          size_t i, const hl_ynode *prev_rules)
{
    pack_where pw;
    const hl_ynode *v = hl_ynode_get(n, "name");
    if (!v) {
        err_at(b, at(&pw, file, i, NULL, n),
               "a rule needs a 'name' (such as aws-access-key-id)");
        return HL_ECONFIG;
    }
    const char *name = want_scalar(b, v, at(&pw, file, i, "name", v),
                                   "a rule name such as aws-access-key-id");
    if (!name)
        return HL_ECONFIG;
    for (size_t j = 0; j < i; j++) {
        const hl_ynode *o = hl_ynode_get(prev_rules->u.seq.items[j], "name");
        if (o && o->type == HL_YSCALAR && strcmp(o->u.scalar.str, name) == 0) {
            err_at(b, &pw.w,
                   "the rule name '%s' is already used at line %u; rename "
                   "one of them",
                   name, o->line);
            return HL_ECONFIG;
        }
    }
    return 0;
}

/* The path of a field rule may be one string or a list of them. */
static int add_pack_paths(build *b, const hl_ynode *v, const char *file,
                          size_t i, rule_src *src)
{
    pack_where pw;
    size_t n = v->type == HL_YSEQ ? v->u.seq.n : 1;
    int rc = n ? 0 : HL_ECONFIG;
    if (!n)
        err_at(b, at(&pw, file, i, "path", v), "the list of paths is empty");
    for (size_t k = 0; k < n; k++) {
        const hl_ynode *p = v->type == HL_YSEQ ? v->u.seq.items[k] : v;
        const char *s = want_scalar(b, p, at(&pw, file, i, "path", p),
                                    "a JSON Pointer or glob path");
        src->value = s;
        int r = s ? add_rule(b, src, &pw.w) : HL_ECONFIG;
        if (r && (!rc || r == HL_ENOMEM))
            rc = r;
    }
    return rc;
}

static int add_pack_rule(build *b, const hl_ynode *seq, size_t i,
                         const char *file)
{
    const hl_ynode *n = seq->u.seq.items[i];
    pack_where pw;
    if (n->type != HL_YMAP) {
        err_at(b, at(&pw, file, i, NULL, n),
               "expected a rule (name, and pattern or path), got %s",
               hl_ynode_type_name(n));
        return HL_ECONFIG;
    }
    bool ok = check_keys(b, n, file, i);
    ok &= pack_rule_name(b, n, file, i, seq) == 0;
    rule_src src = {.action = HL_REDACT_MASK, .check = CHECK_NONE};
    pack_where repl_pw;
    ok &= pack_rule_options(b, n, file, i, &src, &repl_pw);
    const hl_ynode *pat = hl_ynode_get(n, "pattern");
    const hl_ynode *path = hl_ynode_get(n, "path");
    if (!pat == !path) {
        err_at(b, at(&pw, file, i, NULL, n),
               "a rule needs exactly one of 'pattern' (a regular expression) "
               "or 'path' (a JSON Pointer or glob)");
        return HL_ECONFIG;
    }
    if (path && src.check != CHECK_NONE) {
        err_at(b, at(&pw, file, i, "check", hl_ynode_get(n, "check")),
               "a check applies to pattern rules only");
        ok = false;
    }
    if (pat && src.action == HL_REDACT_DROP) {
        err_at(b, at(&pw, file, i, "action", hl_ynode_get(n, "action")),
               "a pattern rule can mask or hash what it matches; drop "
               "applies to path rules");
        ok = false;
    }
    if (!ok)
        return HL_ECONFIG;
    if (path) {
        src.kind = HL_REDACT_FIELD;
        return add_pack_paths(b, path, file, i, &src);
    }
    src.kind = HL_REDACT_PATTERN;
    src.value = want_scalar(b, pat, at(&pw, file, i, "pattern", pat),
                            "a regular expression");
    return src.value ? add_rule(b, &src, &pw.w) : HL_ECONFIG;
}

static int add_pack_doc(build *b, const hl_ydoc *doc)
{
    const char *file = hl_ydoc_file(doc);
    const hl_ynode *root = hl_ydoc_root(doc);
    where w = {file, root ? root->line : 0, root ? root->col : 0, NULL};
    const hl_ynode *list = hl_ynode_get(root, "rules");
    if (!list) {
        err_at(b, &w, "expected a mapping with 'rules:', a list of rules");
        return HL_ECONFIG;
    }
    int rc = 0;
    for (size_t k = 0; k < root->u.map.n; k++) {
        const hl_ynode *key = root->u.map.pairs[k].key;
        if (strcmp(key->u.scalar.str, "rules") != 0) {
            where kw = {file, key->line, key->col, key->u.scalar.str};
            err_at(b, &kw, "unknown key '%s'; expected: rules",
                   key->u.scalar.str);
            rc = HL_ECONFIG;
        }
    }
    if (list->type != HL_YSEQ) {
        where lw = {file, list->line, list->col, "rules"};
        err_at(b, &lw, "expected a list of rules, got %s",
               hl_ynode_type_name(list));
        return HL_ECONFIG;
    }
    for (size_t i = 0; i < list->u.seq.n; i++) {
        int r = add_pack_rule(b, list, i, file);
        if (r && (!rc || r == HL_ENOMEM))
            rc = r;
    }
    return rc;
}

static bool valid_pack_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > PACK_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Remember name; 1 if it was loaded already, 0 if new, or HL_ENOMEM. */
static int pack_seen(build *b, const char *name)
{
    for (size_t i = 0; i < b->npacks; i++)
        if (strcmp(b->packs[i], name) == 0)
            return 1;
    char **v = realloc(b->packs, (b->npacks + 1) * sizeof *v);
    if (!v)
        return HL_ENOMEM;
    b->packs = v;
    if (!(v[b->npacks] = strdup(name)))
        return HL_ENOMEM;
    b->npacks++;
    return 0;
}

static int add_pack(build *b, const char *name, const where *w)
{
    if (!name || !valid_pack_name(name)) {
        err_at(b, w,
               "'%s' is not a pack name: use letters, digits, '-' and '_', "
               "such as secrets or pii",
               name ? name : "");
        return HL_ECONFIG;
    }
    int rc = pack_seen(b, name);
    if (rc)
        return rc < 0 ? rc : 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.yaml", b->dir, name) >=
        sizeof path) {
        err_at(b, w, "the packs folder name is too long: %s", b->dir);
        return HL_ECONFIG;
    }
    hl_diags tmp = {0};
    hl_ydoc *doc = NULL;
    rc = hl_ydoc_load_file(path, 0, &tmp, &doc);
    if (rc == -ENOENT) {
        unknown_pack(b, name, w);
        rc = HL_ECONFIG;
        goto out;
    }
    hl_diags_move(b->d, &tmp);
    if (rc == HL_ENOMEM)
        goto out;
    rc = rc || !doc ? HL_ECONFIG : add_pack_doc(b, doc);
out:
    hl_diags_free(&tmp);
    hl_ydoc_destroy(doc);
    return rc;
}

/* ---- the redactor ------------------------------------------------------ */

static unsigned char g_process_key[PROCESS_KEY_LEN];
static int g_process_key_rc = HL_EINTERNAL;
static pthread_once_t g_process_key_once = PTHREAD_ONCE_INIT;

static void make_process_key(void)
{
    if (RAND_bytes(g_process_key, sizeof g_process_key) == 1)
        g_process_key_rc = 0;
}

static int set_key(build *b, const unsigned char *key, size_t len)
{
    where w = {NULL, 0, 0, NULL};
    if (key && (!len || len > INT_MAX)) {
        err_at(b, &w,
               "the hash key is %s; give a secret, or none for a "
               "random key per process",
               len ? "longer than 2 GiB" : "empty");
        return HL_ECONFIG;
    }
    if (!b->hashes)
        return 0;
    if (!key) {
        if (pthread_once(&g_process_key_once, make_process_key) ||
            g_process_key_rc) {
            err_at(b, &w,
                   "cannot make a random hash key: libcrypto has no "
                   "random bytes");
            return HL_EINTERNAL;
        }
        key = g_process_key;
        len = sizeof g_process_key;
    }
    if (!(b->r->key = malloc(len)))
        return HL_ENOMEM;
    memcpy(b->r->key, key, len);
    b->r->key_len = len;
    return 0;
}

static int add_policy_rule(build *b, const hl_redact_rule *in, size_t i)
{
    char path[48];
    snprintf(path, sizeof path, "redact[%zu]", i);
    where w = {NULL, 0, 0, path};
    if (in->kind == HL_REDACT_PACK)
        return add_pack(b, in->value, &w);
    if (in->kind != HL_REDACT_FIELD && in->kind != HL_REDACT_PATTERN) {
        err_at(b, &w, "unknown rule kind %d", in->kind);
        return HL_ECONFIG;
    }
    char repl_path[48];
    snprintf(repl_path, sizeof repl_path, "redact[%zu].replacement", i);
    snprintf(path, sizeof path, "redact[%zu].%s", i,
             in->kind == HL_REDACT_FIELD ? "path" : "pattern");
    rule_src src = {in->value,       in->kind,   in->action,
                    in->replacement, CHECK_NONE, {NULL, 0, 0, repl_path}};
    return add_rule(b, &src, &w);
}

int hl_redactor_create(const hl_redact_rule *rules, size_t n,
                       const char *packs_dir, const unsigned char *hash_key,
                       size_t key_len, hl_diags *d, hl_redactor **out)
{
    *out = NULL;
    build b = {.d = d, .dir = packs_dir ? packs_dir : DEFAULT_PACKS_DIR};
    size_t errors = d->errors;
    int rc = HL_ENOMEM;
    if (!(b.r = calloc(1, sizeof *b.r)))
        goto out;
    b.r->ovec_pairs = 1;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = add_policy_rule(&b, &rules[i], i);
        if (r && r != HL_ECONFIG) {
            rc = r; /* out of memory, or PCRE2 failed: stop */
            goto out;
        }
        if (r)
            rc = r;
    }
    if (!rc && d->errors > errors)
        rc = HL_ECONFIG;
    if (!rc)
        rc = set_key(&b, hash_key, key_len);
    if (rc)
        goto out;
    *out = b.r;
    b.r = NULL;
out:
    for (size_t i = 0; i < b.npacks; i++)
        free(b.packs[i]);
    free(b.packs);
    hl_redactor_destroy(b.r);
    return rc;
}

void hl_redactor_destroy(hl_redactor *r)
{
    if (!r)
        return;
    rules_free(&r->fields);
    rules_free(&r->patterns);
    if (r->key)
        OPENSSL_cleanse(r->key, r->key_len);
    free(r->key);
    free(r);
}

/* ---- actions ----------------------------------------------------------- */

static bool is_token(const char *s, size_t n)
{
    if (n != TOKEN_LEN || memcmp(s, HASH_PREFIX, HASH_PREFIX_LEN) != 0)
        return false;
    for (size_t i = HASH_PREFIX_LEN; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* "hmac256:" and 16 hex digits of HMAC-SHA256(key, s) into out. */
static int make_token(const hl_redactor *r, const char *s, size_t n,
                      char out[TOKEN_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), r->key, (int)r->key_len, (const unsigned char *)s,
              n, md, &mdlen) ||
        mdlen < HASH_HEX / 2)
        return HL_EINTERNAL;
    memcpy(out, HASH_PREFIX, HASH_PREFIX_LEN);
    for (size_t i = 0; i < HASH_HEX / 2; i++)
        snprintf(out + HASH_PREFIX_LEN + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static const char *mask_of(const rule *ru)
{
    return ru->replacement ? ru->replacement : HL_REDACT_MASK_DEFAULT;
}

/* What ru makes of the text s[0..n): into tok (hash) or the mask. NULL when
 * s already is that, so nothing changes. */
static const char *replace_text(const hl_redactor *r, const rule *ru,
                                const char *s, size_t n,
                                char tok[TOKEN_LEN + 1], int *rc)
{
    *rc = 0;
    if (ru->action == HL_REDACT_HASH) {
        if (is_token(s, n))
            return NULL;
        *rc = make_token(r, s, n, tok);
        return *rc ? NULL : tok;
    }
    const char *m = mask_of(ru);
    return strlen(m) == n && memcmp(m, s, n) == 0 ? NULL : m;
}

/* The new value a mask or hash field rule gives v: *nv, or NULL when v
 * already is that. */
static int field_value(const hl_redactor *r, const rule *ru, json_t *v,
                       json_t **nv)
{
    char tok[TOKEN_LEN + 1];
    int rc = 0;
    char *dump = NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    *nv = NULL;
    if (!s && ru->action == HL_REDACT_HASH) {
        dump = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (!dump)
            return HL_ENOMEM;
        s = dump;
        n = strlen(dump);
    }
    const char *t = s ? replace_text(r, ru, s, n, tok, &rc) : mask_of(ru);
    if (t && !(*nv = json_string(t)))
        rc = HL_ENOMEM;
    free(dump);
    return rc;
}

/* ---- field rules over a document --------------------------------------- */

typedef struct {
    const hl_redactor *r;
    step *v;
    size_t n, cap;
    int count;
} fwalk;

static int push_step(fwalk *w, const char *key, size_t len, size_t index)
{
    if (w->n >= HL_REDACT_MAX_DEPTH)
        return HL_ETOOBIG;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        step *v = realloc(w->v, cap * sizeof *v);
        if (!v)
            return HL_ENOMEM;
        w->v = v;
        w->cap = cap;
    }
    step *s = &w->v[w->n++];
    s->key = key;
    if (key)
        s->len = len;
    else
        s->len = (size_t)snprintf(s->num, sizeof s->num, "%zu", index);
    return 0;
}

static const rule *field_rule(const fwalk *w)
{
    const rule_list *fs = &w->r->fields;
    for (size_t i = 0; i < fs->n; i++)
        if (path_match(fs->v[i].segs, fs->v[i].nsegs, w->v, w->n, false))
            return &fs->v[i];
    return NULL;
}

static bool field_below(const fwalk *w)
{
    const rule_list *fs = &w->r->fields;
    for (size_t i = 0; i < fs->n; i++)
        if (path_match(fs->v[i].segs, fs->v[i].nsegs, w->v, w->n, true))
            return true;
    return false;
}

static int fields_in(fwalk *w, json_t *v);

/* Decide the value at the top of the path: FIELD_KEEP (looked inside),
 * FIELD_SET (*nv replaces it), FIELD_DROP, or an error. */
static int field_apply(fwalk *w, json_t *v, json_t **nv)
{
    *nv = NULL;
    const rule *ru = field_rule(w);
    if (!ru)
        return field_below(w) ? fields_in(w, v) : FIELD_KEEP;
    if (ru->action == HL_REDACT_DROP) {
        w->count++;
        return FIELD_DROP;
    }
    int rc = field_value(w->r, ru, v, nv);
    if (rc)
        return rc;
    w->count += *nv != NULL;
    return *nv ? FIELD_SET : FIELD_KEEP;
}

static int fields_object(fwalk *w, json_t *obj)
{
    const char *key;
    size_t len;
    json_t *v, *nv;
    void *tmp;
    json_object_keylen_foreach_safe(obj, tmp, key, len, v)
    {
        int rc = push_step(w, key, len, 0);
        if (rc)
            return rc;
        rc = field_apply(w, v, &nv);
        w->n--;
        if (rc == FIELD_SET && json_object_setn_new_nocheck(obj, key, len, nv))
            return HL_ENOMEM;
        if (rc == FIELD_DROP && json_object_deln(obj, key, len))
            return HL_EINTERNAL;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int fields_array(fwalk *w, json_t *arr)
{
    size_t i = 0;
    for (size_t orig = 0; i < json_array_size(arr); orig++) {
        json_t *nv;
        int rc = push_step(w, NULL, 0, orig);
        if (rc)
            return rc;
        rc = field_apply(w, json_array_get(arr, i), &nv);
        w->n--;
        if (rc == FIELD_SET && json_array_set_new(arr, i, nv))
            return HL_ENOMEM;
        if (rc == FIELD_DROP && json_array_remove(arr, i))
            return HL_EINTERNAL;
        if (rc < 0)
            return rc;
        i += rc != FIELD_DROP;
    }
    return 0;
}

static int fields_in(fwalk *w, json_t *v)
{
    if (json_is_object(v))
        return fields_object(w, v);
    if (json_is_array(v))
        return fields_array(w, v);
    return FIELD_KEEP;
}

static int redact_fields(const hl_redactor *r, json_t *doc)
{
    fwalk w = {.r = r};
    int rc = fields_in(&w, doc);
    free(w.v);
    return rc < 0 ? rc : w.count;
}

/* ---- pattern rules over text ------------------------------------------- */

typedef struct {
    size_t start, end;
    const rule *ru;
} span;

typedef struct {
    const hl_redactor *r;
    pcre2_match_data *md;
    span *v;
    size_t n, cap;
} scan;

static bool luhn_ok(const char *s, size_t n)
{
    unsigned sum = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        if (s[i] < '0' || s[i] > '9')
            continue;
        unsigned d = (unsigned)(s[i] - '0');
        if (digits++ % 2) {
            d *= 2;
            d -= d > 9 ? 9 : 0;
        }
        sum += d;
    }
    return digits >= 2 && sum % 10 == 0;
}

static int add_span(scan *sc, size_t start, size_t end, const rule *ru)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        span *v = realloc(sc->v, cap * sizeof *v);
        if (!v)
            return HL_ENOMEM;
        sc->v = v;
        sc->cap = cap;
    }
    sc->v[sc->n++] = (span){start, end, ru};
    return 0;
}

/* The part of a match to replace: the first "secret" group that is set, or
 * the whole match. */
static void target(const rule *ru, const PCRE2_SIZE *ov, int rc, size_t *a,
                   size_t *b)
{
    *a = ov[0];
    *b = ov[1] < ov[0] ? ov[0] : ov[1];
    for (size_t i = 0; i < ru->nsecret; i++) {
        uint32_t g = ru->secret[i];
        if ((int)g < rc && ov[2 * g] != PCRE2_UNSET &&
            ov[2 * g + 1] >= ov[2 * g]) {
            *a = ov[2 * g];
            *b = ov[2 * g + 1];
            return;
        }
    }
}

/* The offset of the character after the one at i. */
static size_t next_char(const char *s, size_t len, size_t i)
{
    for (i++; i < len && ((unsigned char)s[i] & 0xC0) == 0x80; i++)
        ;
    return i;
}

static int scan_rule(scan *sc, const rule *ru, const char *s, size_t len)
{
    size_t pos = 0;
    while (pos <= len) {
        int rc =
            pcre2_match(ru->code, (PCRE2_SPTR)s, len, pos, 0, sc->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc <= 0)
            return HL_EINTERNAL;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t a, b;
        target(ru, ov, rc, &a, &b);
        bool keep = b > a && (ru->check != CHECK_LUHN || luhn_ok(s + a, b - a));
        if (keep && (rc = add_span(sc, a, b, ru)))
            return rc;
        /* A match left alone may hide another starting inside it. */
        pos = keep && ov[1] > ov[0] ? ov[1] : next_char(s, len, ov[0]);
    }
    return 0;
}

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1;
    return x->ru < y->ru ? -1 : x->ru > y->ru;
}

static void join_spans(scan *sc)
{
    if (sc->n < 2)
        return;
    qsort(sc->v, sc->n, sizeof *sc->v, cmp_span);
    size_t k = 0;
    for (size_t i = 1; i < sc->n; i++) {
        if (sc->v[i].start < sc->v[k].end) {
            if (sc->v[i].end > sc->v[k].end)
                sc->v[k].end = sc->v[i].end;
        } else {
            sc->v[++k] = sc->v[i];
        }
    }
    sc->n = k + 1;
}

/* Append the parts of sp outside the hash tokens in s. */
static int cut_span(scan *sc, span sp, const char *s, size_t len)
{
    size_t from = sp.start >= TOKEN_LEN ? sp.start - TOKEN_LEN + 1 : 0;
    size_t piece = sp.start;
    const char *p = memmem(s + from, len - from, HASH_PREFIX, HASH_PREFIX_LEN);
    for (; p && (size_t)(p - s) < sp.end;
         p = memmem(p + 1, len - (size_t)(p + 1 - s), HASH_PREFIX,
                    HASH_PREFIX_LEN)) {
        size_t t = (size_t)(p - s);
        if (t + TOKEN_LEN > len || !is_token(p, TOKEN_LEN))
            continue;
        int rc = t > piece ? add_span(sc, piece, t, sp.ru) : 0;
        if (rc)
            return rc;
        if (t + TOKEN_LEN > piece)
            piece = t + TOKEN_LEN;
    }
    return piece < sp.end ? add_span(sc, piece, sp.end, sp.ru) : 0;
}

/* A hash token in the text ("hmac256:" and 16 hex digits) is what a hash
 * rule made: patterns leave it alone, so redacting again changes nothing.
 * The spans (sorted, disjoint) lose the parts that cover one. */
static int cut_tokens(scan *sc, const char *s, size_t len)
{
    if (!sc->n || !memmem(s, len, HASH_PREFIX, HASH_PREFIX_LEN))
        return 0;
    size_t n = sc->n;
    for (size_t i = 0; i < n; i++) {
        int rc = cut_span(sc, sc->v[i], s, len);
        if (rc)
            return rc;
    }
    memmove(sc->v, sc->v + n, (sc->n - n) * sizeof *sc->v);
    sc->n -= n;
    return 0;
}

/* Every match of every pattern, sorted, overlapping ones joined, hash
 * tokens left out. */
static int find_spans(scan *sc, const char *s, size_t len)
{
    sc->n = 0;
    const rule_list *ps = &sc->r->patterns;
    for (size_t i = 0; i < ps->n; i++) {
        int rc = scan_rule(sc, &ps->v[i], s, len);
        if (rc)
            return rc;
    }
    join_spans(sc);
    return cut_tokens(sc, s, len);
}

/* s with the spans replaced into *out (NULL when nothing changed); returns
 * the number of replacements. */
static int rewrite(scan *sc, const char *s, size_t len, char **out,
                   size_t *outlen)
{
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    size_t prev = 0;
    int count = 0, rc = 0;
    *out = NULL;
    for (size_t i = 0; i < sc->n; i++) {
        const span *sp = &sc->v[i];
        char tok[TOKEN_LEN + 1];
        const char *t = replace_text(sc->r, sp->ru, s + sp->start,
                                     sp->end - sp->start, tok, &rc);
        if (rc)
            goto out;
        if (!t)
            continue;
        hl_buf_put(&b, s + prev, sp->start - prev);
        hl_buf_puts(&b, t);
        prev = sp->end;
        count += count < INT_MAX;
    }
    if (!count)
        goto out;
    hl_buf_put(&b, s + prev, len - prev);
    if (!(*out = hl_buf_take(&b, outlen)))
        rc = HL_ENOMEM;
out:
    hl_buf_free(&b);
    return rc ? rc : count;
}

/* Redact s until nothing changes: *out is the result (malloc'd) or NULL if
 * it is s. Returns the number of replacements. */
static int redact_bytes(scan *sc, const char *s, size_t len, char **out,
                        size_t *outlen)
{
    char *cur = NULL;
    size_t curlen = len;
    int total = 0, rc = 0;
    *out = NULL;
    for (int pass = 0; pass < MAX_PASSES; pass++) {
        const char *in = cur ? cur : s;
        char *next;
        if ((rc = find_spans(sc, in, curlen)) < 0)
            goto out;
        if (!sc->n)
            break;
        if ((rc = rewrite(sc, in, curlen, &next, &curlen)) < 0)
            goto out;
        if (!next)
            break;
        free(cur);
        cur = next;
        total = rc > INT_MAX - total ? INT_MAX : total + rc;
    }
    *out = cur;
    *outlen = curlen;
    cur = NULL;
    rc = total;
out:
    free(cur);
    return rc;
}

static int scan_init(scan *sc, const hl_redactor *r)
{
    *sc = (scan){.r = r};
    sc->md = pcre2_match_data_create(r->ovec_pairs, NULL);
    return sc->md ? 0 : HL_ENOMEM;
}

static void scan_close(scan *sc)
{
    pcre2_match_data_free(sc->md);
    free(sc->v);
}

/* ---- pattern rules over a document ------------------------------------- */

/* The string v redacted as a new value (*nv), or NULL if unchanged. */
static int string_value(scan *sc, json_t *v, json_t **nv)
{
    char *s;
    size_t n;
    *nv = NULL;
    int rc =
        redact_bytes(sc, json_string_value(v), json_string_length(v), &s, &n);
    if (rc <= 0 || !s)
        return rc;
    if (!(*nv = json_stringn_nocheck(s, n)))
        rc = HL_ENOMEM;
    free(s);
    return rc;
}

static int strings_in(scan *sc, json_t *v, size_t depth);

/* Redact child v (a string, or look inside it); *nv replaces it if set. */
static int string_child(scan *sc, json_t *v, size_t depth, json_t **nv)
{
    *nv = NULL;
    if (json_is_string(v))
        return string_value(sc, v, nv);
    return strings_in(sc, v, depth + 1);
}

static int strings_in(scan *sc, json_t *v, size_t depth)
{
    if (depth > HL_REDACT_MAX_DEPTH)
        return HL_ETOOBIG;
    int total = 0, rc = 0;
    json_t *child, *nv;
    if (json_is_object(v)) {
        const char *key;
        size_t len;
        json_object_keylen_foreach(v, key, len, child)
        {
            if ((rc = string_child(sc, child, depth, &nv)) < 0)
                return rc;
            if (nv && json_object_setn_new_nocheck(v, key, len, nv))
                return HL_ENOMEM;
            total = rc > INT_MAX - total ? INT_MAX : total + rc;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_array_foreach(v, i, child)
        {
            if ((rc = string_child(sc, child, depth, &nv)) < 0)
                return rc;
            if (nv && json_array_set_new(v, i, nv))
                return HL_ENOMEM;
            total = rc > INT_MAX - total ? INT_MAX : total + rc;
        }
    }
    return total;
}

/* The root: a string is changed in place, a container looked into. */
static int redact_strings(const hl_redactor *r, json_t *doc)
{
    scan sc;
    char *s = NULL;
    size_t n;
    int rc = scan_init(&sc, r);
    if (rc)
        goto out;
    if (!json_is_string(doc)) {
        rc = strings_in(&sc, doc, 0);
        goto out;
    }
    rc = redact_bytes(&sc, json_string_value(doc), json_string_length(doc), &s,
                      &n);
    if (rc > 0 && s && json_string_setn_nocheck(doc, s, n))
        rc = HL_ENOMEM;
out:
    free(s);
    scan_close(&sc);
    return rc;
}

int hl_redact_json(const hl_redactor *r, json_t *doc)
{
    if (!r || !doc)
        return -EINVAL;
    int fields = 0, strings = 0;
    if (r->fields.n && (fields = redact_fields(r, doc)) < 0)
        return fields;
    if (r->patterns.n && (strings = redact_strings(r, doc)) < 0)
        return strings;
    return strings > INT_MAX - fields ? INT_MAX : fields + strings;
}

char *hl_redact_text(const hl_redactor *r, const char *text, size_t len,
                     size_t *out_len)
{
    scan sc;
    char *s = NULL;
    size_t n = 0;
    if (!r || (!text && len))
        return NULL;
    if (!text)
        text = "";
    if (scan_init(&sc, r))
        return NULL;
    int rc = r->patterns.n ? redact_bytes(&sc, text, len, &s, &n) : 0;
    scan_close(&sc);
    if (rc < 0)
        return NULL;
    if (!s) {
        if (!(s = malloc(len + 1)))
            return NULL;
        memcpy(s, text, len);
        s[len] = 0;
        n = len;
    }
    if (out_len)
        *out_len = n;
    return s;
}

int hl_redactor_for(const hl_config *cfg, const hl_redact_rule *rules,
                    size_t n, hl_diags *d, hl_redactor **out)
{
    char base[4000], dir[4096];
    if (hl_config_find_dir(cfg->policies_path, "policies", base,
                           sizeof base)) {
        hl_diags_add(d, HL_DIAG_ERROR, cfg->file, 0, 0, "policies_path",
                     "%s: no such folder; set policies_path to the folder "
                     "holding redact/",
                     base);
        return HL_ECONFIG;
    }
    snprintf(dir, sizeof dir, "%s/redact", base);
    return hl_redactor_create(rules, n, dir, NULL, 0, d, out);
}

/* Build one redactor and drop it, with its messages under path. */
static int check_one(const hl_config *cfg, const hl_redact_rule *rules,
                     size_t n, const char *path, hl_diags *d)
{
    if (!n)
        return 0;
    hl_diags local = {0};
    hl_redactor *r = NULL;
    int rc = hl_redactor_for(cfg, rules, n, &local, &r);
    for (size_t i = 0; i < local.n; i++) {
        hl_diag *m = &local.v[i];
        char at[300];
        /* Messages about the rules given here belong to the configuration
         * file; those about pack files keep their own file. */
        int ours = !m->file || !strcmp(m->file, cfg->file);
        snprintf(at, sizeof at, "%s%s%s", path,
                 m->path && ours ? "." : "", m->path && ours ? m->path : "");
        hl_diags_add(d, m->kind, ours ? cfg->file : m->file, m->line, m->col,
                     ours ? at : m->path, "%s", m->msg);
    }
    hl_diags_free(&local);
    hl_redactor_destroy(r);
    return rc;
}

int hl_redactors_check(const hl_config *cfg, hl_diags *d)
{
    int rc = 0;
    char path[160];
    for (size_t i = 0; i < cfg->n_policies; i++) {
        snprintf(path, sizeof path, "policies.%s", cfg->policies[i].name);
        if (check_one(cfg, cfg->policies[i].redact, cfg->policies[i].n_redact,
                      path, d))
            rc = HL_ECONFIG;
    }
    if (check_one(cfg, cfg->storage.redact_at_rest,
                  cfg->storage.n_redact_at_rest, "storage", d))
        rc = HL_ECONFIG;
    return rc;
}
