/* plugin.c - connector plugins: found, loaded (dlopen), checked against the ABI, configured. */
#include "plugin.h"

#include "err.h"
#include "log.h"
#include "template.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The fields of ABI 1.0's descriptor, which every plugin of major 1 has. */
#define DESC_V1_SIZE (offsetof(hlc_connector, destroy) + sizeof(void (*)(void)))

typedef struct {
    char *name;
    char *path;
    void *handle;
    const hlc_connector *desc;
    int rc;    /* why it could not be loaded (handle NULL) */
    char *why; /* said again for each connector that names it */
} so_t;

struct hl_plugins {
    _Atomic int refs;
    hl_config *cfg; /* a reference: the instances read its memory */
    so_t *sos;
    size_t n_sos;
    hlc_instance *inst;
    size_t n;
};

static const char *const host_keys[] = {"plugin", "url", "policy", "tenant",
                                        "timeout"};

size_t hl_plugin_dirs(const hl_config *cfg, char (*dirs)[4096], size_t cap)
{
    size_t n = 0;
    if (cfg && cfg->connectors_path.n) {
        for (size_t i = 0; i < cfg->connectors_path.n && n < cap; i++)
            snprintf(dirs[n++], sizeof dirs[0], "%s",
                     cfg->connectors_path.v[i]);
        return n;
    }
    char exe[4000];
    if (hl_config_exe_dir(exe, sizeof exe))
        return 0;
    if (n < cap)
        snprintf(dirs[n++], sizeof dirs[0], "%s/connectors", exe);
    if (n < cap)
        snprintf(dirs[n++], sizeof dirs[0], "%s/../lib/hookline/connectors",
                 exe);
    return n;
}

/* ---- loading one file ---------------------------------------------------- */

typedef struct {
    hl_diags *d;
    const char *file; /* the config file */
    char path[256];   /* key path for messages */
} ctx_t;

static void err_at(ctx_t *c, const hl_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(ctx_t *c, const hl_ynode *n, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hl_diags_add(c->d, HL_DIAG_ERROR, c->file, n ? n->line : 0,
                 n ? n->col : 0, c->path, "%s", msg);
}

static void warn_at(ctx_t *c, const hl_ynode *n, const char *msg)
{
    hl_diags_add(c->d, HL_DIAG_WARNING, c->file, n ? n->line : 0,
                 n ? n->col : 0, c->path, "%s", msg);
}

/* Open path and check its descriptor; 0, HL_EPLUGIN or HL_EABI with the
 * reason in why. */
static int open_so(const char *path, so_t *so, char *why, size_t whylen)
{
    memset(so, 0, sizeof *so);
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, whylen, "cannot load %s: %s", path, e ? e : "?");
        return HL_EPLUGIN;
    }
    int rc = HL_EPLUGIN;
    hlc_entry_fn entry;
    *(void **)&entry = dlsym(h, HLC_ENTRY_SYMBOL);
    const hlc_connector *desc = entry ? entry() : NULL;
    if (!entry) {
        snprintf(why, whylen,
                 "%s is not a hookline connector: it exports no %s function "
                 "(define one with HLC_DEFINE_CONNECTOR from "
                 "hookline/connector.h)",
                 path, HLC_ENTRY_SYMBOL);
    } else if (!desc) {
        snprintf(why, whylen, "%s: %s returned no descriptor", path,
                 HLC_ENTRY_SYMBOL);
    } else if (HLC_ABI_MAJOR_OF(desc->abi_version) != HLC_ABI_MAJOR) {
        snprintf(why, whylen,
                 "%s was built for connector ABI %u.%u, and this hookline "
                 "loads ABI %u.x: rebuild it against this hookline's "
                 "hookline/connector.h",
                 path, HLC_ABI_MAJOR_OF(desc->abi_version),
                 HLC_ABI_MINOR_OF(desc->abi_version), HLC_ABI_MAJOR);
        rc = HL_EABI;
    } else if (HLC_ABI_MINOR_OF(desc->abi_version) > HLC_ABI_MINOR) {
        snprintf(why, whylen,
                 "%s was built for connector ABI %u.%u, newer than this "
                 "hookline's %u.%u: it may call functions this hookline "
                 "lacks; upgrade hookline or rebuild the plugin against this "
                 "hookline's hookline/connector.h",
                 path, HLC_ABI_MAJOR_OF(desc->abi_version),
                 HLC_ABI_MINOR_OF(desc->abi_version), HLC_ABI_MAJOR,
                 HLC_ABI_MINOR);
        rc = HL_EABI;
    } else if (desc->struct_size < DESC_V1_SIZE) {
        snprintf(why, whylen,
                 "%s: its descriptor is %u bytes, less than ABI %u.0's %zu: "
                 "the plugin was not built with hookline/connector.h",
                 path, desc->struct_size, HLC_ABI_MAJOR, DESC_V1_SIZE);
        rc = HL_EABI;
    } else if (!desc->name || !desc->create || !desc->render) {
        snprintf(why, whylen,
                 "%s: its descriptor lacks %s; a connector needs a name, "
                 "create and render",
                 path, !desc->name ? "a name" : !desc->create ? "create"
                                                               : "render");
    } else {
        so->handle = h;
        so->desc = desc;
        return 0;
    }
    dlclose(h);
    return rc;
}

/* ---- the connector's section against its key table ----------------------- */

static const char *type_name(uint32_t t)
{
    static const char *const names[] = {
        "?",        "string", "secret", "integer", "boolean",
        "duration", "size",   "list",   "mapping", "template"};
    return t < sizeof names / sizeof *names ? names[t] : "?";
}

/* Is prefix a section of the table (some key starts with "prefix.")? */
static int is_section(const hlc_key *keys, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const hlc_key *k = keys; k && k->name; k++)
        if (!strncmp(k->name, prefix, n) && k->name[n] == '.')
            return 1;
    return 0;
}

/* The names one level below prefix ("" for the top), comma-separated, and
 * the one closest to word (NULL when none is close). */
static void names_below(const hlc_key *keys, const char *prefix, char *out,
                        size_t cap, const char *word, char *best,
                        size_t bestcap)
{
    char seen[64][64];
    size_t n = 0, pl = strlen(prefix), len = 0, bestd = 3;
    out[0] = best[0] = 0;
    for (const hlc_key *k = keys; k && k->name && n < 64; k++) {
        if (pl && (strncmp(k->name, prefix, pl) || k->name[pl] != '.'))
            continue;
        const char *rest = k->name + (pl ? pl + 1 : 0);
        size_t plen = strcspn(rest, ".");
        if (plen >= sizeof seen[0])
            continue;
        memcpy(seen[n], rest, plen);
        seen[n][plen] = 0;
        int dup = 0;
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(seen[i], seen[n]);
        if (dup)
            continue;
        size_t dist = hl_edit_distance(word, seen[n]);
        if (dist < bestd) {
            bestd = dist;
            snprintf(best, bestcap, "%s", seen[n]);
        }
        int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "",
                         seen[n]);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
        n++;
    }
}

static int check_scalar_value(ctx_t *c, const hlc_key *k, const hl_ynode *v)
{
    const char *s = v->u.scalar.str;
    uint64_t u;
    char *end;
    switch (k->type) {
    case HLC_KEY_INT:
        strtoll(s, &end, 10);
        if (!*s || *end) {
            err_at(c, v, "'%s' is not a whole number", s);
            return -1;
        }
        return 0;
    case HLC_KEY_BOOL:
        if (strcmp(s, "true") && strcmp(s, "false")) {
            err_at(c, v, "'%s' is not a boolean; write true or false", s);
            return -1;
        }
        return 0;
    case HLC_KEY_DURATION:
        if (hl_parse_duration(s, &u)) {
            err_at(c, v, "'%s' is not a duration; write e.g. 500ms, 15s, 2m",
                   s);
            return -1;
        }
        return 0;
    case HLC_KEY_SIZE:
        if (hl_parse_size(s, &u)) {
            err_at(c, v, "'%s' is not a size; write e.g. 512KiB or 1MiB", s);
            return -1;
        }
        return 0;
    case HLC_KEY_TEMPLATE: {
        hl_template *t = NULL;
        char why[300];
        if (hl_template_compile(s, v->u.scalar.len, &t, why, sizeof why)) {
            err_at(c, v, "the Mustache template does not compile: %s", why);
            return -1;
        }
        hl_template_destroy(t);
        return 0;
    }
    default:
        break;
    }
    if (k->choices) {
        size_t n = strlen(s);
        for (const char *p = k->choices; *p;) {
            size_t l = strcspn(p, "|");
            if (l == n && !strncmp(p, s, n))
                return 0;
            p += l + (p[l] == '|');
        }
        err_at(c, v, "'%s' is not one of %s", s, k->choices);
        return -1;
    }
    return 0;
}

static int check_value(ctx_t *c, const hlc_key *k, const hl_ynode *v)
{
    if (v->type == HL_YSCALAR && v->u.scalar.failed)
        return -1; /* the expansion error is reported already */
    switch (k->type) {
    case HLC_KEY_LIST:
        if (v->type != HL_YSEQ) {
            err_at(c, v, "expected a list of strings, got %s",
                   hl_ynode_type_name(v));
            return -1;
        }
        for (size_t i = 0; i < v->u.seq.n; i++)
            if (v->u.seq.items[i]->type != HL_YSCALAR) {
                err_at(c, v->u.seq.items[i], "expected a string, got %s",
                       hl_ynode_type_name(v->u.seq.items[i]));
                return -1;
            }
        return 0;
    case HLC_KEY_MAP:
        if (v->type != HL_YMAP) {
            err_at(c, v, "expected a mapping of names to strings, got %s",
                   hl_ynode_type_name(v));
            return -1;
        }
        for (size_t i = 0; i < v->u.map.n; i++)
            if (v->u.map.pairs[i].value->type != HL_YSCALAR) {
                err_at(c, v->u.map.pairs[i].value,
                       "expected a string, got %s",
                       hl_ynode_type_name(v->u.map.pairs[i].value));
                return -1;
            }
        return 0;
    default:
        if (v->type != HL_YSCALAR) {
            err_at(c, v, "expected a %s, got %s", type_name(k->type),
                   hl_ynode_type_name(v));
            return -1;
        }
        return check_scalar_value(c, k, v);
    }
}

static int is_host_key(const char *k)
{
    for (size_t i = 0; i < sizeof host_keys / sizeof *host_keys; i++)
        if (!strcmp(k, host_keys[i]))
            return 1;
    return 0;
}

/* Check a mapping whose keys are named prefix.<key> in the table. */
static int check_map(ctx_t *c, const hlc_key *keys, const hl_ynode *map,
                     const char *prefix)
{
    int bad = 0;
    size_t base = strlen(c->path);
    for (size_t i = 0; i < map->u.map.n; i++) {
        const hl_ynode *kn = map->u.map.pairs[i].key;
        const hl_ynode *v = map->u.map.pairs[i].value;
        const char *name = kn->u.scalar.str;
        if (!*prefix && is_host_key(name))
            continue;
        char full[256];
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "",
                 name);
        snprintf(c->path + base, sizeof c->path - base, ".%s", name);
        const hlc_key *k = hl_sdk_key(keys, full);
        if (k) {
            bad |= check_value(c, k, v) != 0;
        } else if (is_section(keys, full)) {
            if (v->type != HL_YMAP) {
                err_at(c, v, "expected a mapping, got %s",
                       hl_ynode_type_name(v));
                bad = 1;
            } else {
                bad |= check_map(c, keys, v, full) != 0;
            }
        } else {
            char list[2000], best[64];
            names_below(keys, prefix, list, sizeof list, name, best,
                        sizeof best);
            if (*best)
                err_at(c, kn, "unknown key '%s'; did you mean '%s'?", name,
                       best);
            else
                err_at(c, kn, "unknown key '%s'; expected one of: %s%s%s",
                       name, *prefix ? "" : "url, policy, tenant, timeout",
                       *prefix || !*list ? "" : ", ", list);
            bad = 1;
        }
        c->path[base] = 0;
    }
    /* Required keys directly below this mapping. */
    size_t pl = strlen(prefix);
    for (const hlc_key *k = keys; k && k->name; k++) {
        if (!(k->flags & HLC_KEY_REQUIRED))
            continue;
        if (pl && (strncmp(k->name, prefix, pl) || k->name[pl] != '.'))
            continue;
        const char *rest = k->name + (pl ? pl + 1 : 0);
        if (strchr(rest, '.'))
            continue; /* deeper: checked when its mapping is */
        if (!hl_ynode_get(map, rest)) {
            err_at(c, map, "missing required key '%s' (%s)", rest,
                   k->description ? k->description : type_name(k->type));
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

/* ---- the set -------------------------------------------------------------- */

static so_t *find_loaded(hl_plugins *p, const char *name)
{
    for (size_t i = 0; i < p->n_sos; i++)
        if (!strcmp(p->sos[i].name, name))
            return &p->sos[i];
    return NULL;
}

static void plugin_failed(so_t *so, ctx_t *c, const hl_ynode *at, int rc,
                          const char *why)
{
    so->rc = rc;
    so->why = strdup(why);
    err_at(c, at, "%s", why);
}

/* Find NAME.so in the folders and open it. On failure the problem goes to
 * c (for every connector that names it) and *rc says which. */
static so_t *load_plugin(hl_plugins *p, ctx_t *c, const hl_ynode *at,
                         const char *name, int *rc)
{
    *rc = HL_ENOMEM;
    so_t *have = find_loaded(p, name);
    if (have) {
        if (!have->handle) {
            *rc = have->rc;
            err_at(c, at, "%s", have->why ? have->why : "cannot be loaded");
        }
        return have->handle ? have : NULL;
    }
    so_t *v = realloc(p->sos, (p->n_sos + 1) * sizeof *v);
    if (!v)
        return NULL;
    p->sos = v;
    so_t *so = &p->sos[p->n_sos];
    memset(so, 0, sizeof *so);
    so->name = strdup(name);
    if (!so->name)
        return NULL;
    p->n_sos++;
    char dirs[8][4096], tried[2000] = "";
    size_t nd = hl_plugin_dirs(p->cfg, dirs, 8), len = 0;
    for (size_t i = 0; i < nd; i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s.so", dirs[i], name);
        int w = snprintf(tried + len, sizeof tried - len, "%s%s",
                         len ? ", " : "", dirs[i]);
        if (w > 0 && (size_t)w < sizeof tried - len)
            len += (size_t)w;
        if (stat(path, &st))
            continue;
        char why[1200];
        so_t got;
        int orc = open_so(path, &got, why, sizeof why);
        if (orc) {
            plugin_failed(so, c, at, orc, why);
            *rc = orc;
            return NULL;
        }
        so->handle = got.handle;
        so->desc = got.desc;
        so->path = strdup(path);
        if (strcmp(so->desc->name, name)) {
            char msg[4500];
            snprintf(msg, sizeof msg,
                     "%.4200s calls itself '%s'; rename the file or the plugin so "
                     "the two agree",
                     path, so->desc->name);
            warn_at(c, at, msg);
        }
        return so;
    }
    char why[2600];
    snprintf(why, sizeof why,
             "no connector plugin '%s': %s.so is not in %s (set "
             "connectors_path to the folder that holds it; `hookline "
             "connectors` lists what is there)",
             name, name, nd ? tried : "any folder");
    plugin_failed(so, c, at, HL_EPLUGIN, why);
    *rc = HL_EPLUGIN;
    return NULL;
}

/* A create() error that starts with "key: " points at that key. */
static void create_failed(ctx_t *c, const hlc_instance *in, const char *err)
{
    const hl_ynode *at = in->cfg->node;
    size_t kl = strcspn(err, ": ");
    if (kl && kl < 200 && err[kl] == ':' && err[kl + 1] == ' ') {
        char key[200];
        memcpy(key, err, kl);
        key[kl] = 0;
        const hl_ynode *n = hl_sdk_node(in->cfg->node, key);
        if (n) {
            at = n;
            size_t base = strlen(c->path);
            snprintf(c->path + base, sizeof c->path - base, ".%s", key);
            err_at(c, at, "%s", err + kl + 2);
            c->path[base] = 0;
            return;
        }
    }
    err_at(c, at, "the %s connector refused its configuration: %s",
           in->desc->name, *err ? err : "no reason given");
}

static int make_instance(hl_plugins *p, ctx_t *c, size_t i)
{
    const hl_connector_cfg *cc = &p->cfg->connectors[i];
    hlc_instance *in = &p->inst[i];
    in->name = cc->name;
    in->cfg = cc;
    snprintf(c->path, sizeof c->path, "connectors.%s", cc->name);
    const hl_ynode *at = hl_ynode_get(cc->node, "plugin");
    int rc = HL_EPLUGIN;
    so_t *so = cc->plugin ? load_plugin(p, c, at ? at : cc->node, cc->plugin,
                                        &rc)
                          : NULL;
    if (!so)
        return rc;
    in->desc = so->desc;
    in->config.node = cc->node;
    in->config.keys = so->desc->keys;
    if (cc->node && cc->node->type == HL_YMAP &&
        check_map(c, so->desc->keys, cc->node, ""))
        return HL_ECONFIG;
    char err[1024] = "";
    void *state = NULL;
    if (so->desc->create(&hl_sdk_api, in, &in->config, &state, err,
                         sizeof err)) {
        create_failed(c, in, err);
        return HL_ECONFIG;
    }
    in->state = state;
    return 0;
}

static void destroy(hl_plugins *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->inst[i].state && p->inst[i].desc->destroy)
            p->inst[i].desc->destroy(p->inst[i].state);
    for (size_t i = 0; i < p->n_sos; i++) {
        if (p->sos[i].handle)
            dlclose(p->sos[i].handle);
        free(p->sos[i].name);
        free(p->sos[i].path);
        free(p->sos[i].why);
    }
    free(p->sos);
    free(p->inst);
    hl_config_destroy(p->cfg);
    free(p);
}

int hl_plugins_load(const hl_config *cfg, hl_diags *d, hl_plugins **out)
{
    *out = NULL;
    hl_plugins *p = calloc(1, sizeof *p);
    if (!p)
        return HL_ENOMEM;
    atomic_init(&p->refs, 1);
    p->cfg = hl_config_retain((hl_config *)cfg);
    p->n = cfg->n_connectors;
    p->inst = calloc(p->n ? p->n : 1, sizeof *p->inst);
    if (!p->inst) {
        hl_config_destroy(p->cfg);
        free(p);
        return HL_ENOMEM;
    }
    ctx_t c = {.d = d, .file = cfg->file};
    int rc = 0;
    for (size_t i = 0; i < p->n; i++) {
        int r = make_instance(p, &c, i);
        if (r && !rc)
            rc = r;
    }
    if (rc) {
        destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

hl_plugins *hl_plugins_retain(hl_plugins *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

void hl_plugins_release(hl_plugins *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        destroy(p);
}

hlc_instance *hl_plugins_instance(hl_plugins *p, size_t i)
{
    return i < p->n ? &p->inst[i] : NULL;
}

size_t hl_plugins_count(const hl_plugins *p)
{
    return p->n;
}

const hl_config *hl_plugins_config(const hl_plugins *p)
{
    return p->cfg;
}

void hl_plugins_attach(hl_plugins *p, hl_queue *q)
{
    for (size_t i = 0; i < p->n; i++)
        p->inst[i].kv = q;
}

/* ---- describing ------------------------------------------------------------ */

static void describe_one(const so_t *so, FILE *out)
{
    const hlc_connector *d = so->desc;
    fprintf(out, "%s %s\n  %s\n  file: %s\n", d->name,
            d->version ? d->version : "", d->description ? d->description : "",
            so->path);
    fprintf(out, "  keys (besides url, policy, tenant, timeout):\n");
    for (const hlc_key *k = d->keys; k && k->name; k++) {
        fprintf(out, "    %-34s %-9s", k->name, type_name(k->type));
        if (k->flags & HLC_KEY_REQUIRED)
            fprintf(out, " required");
        const char *sep = " ";
        if (k->flags & HLC_KEY_REQUIRED)
            sep = "; ";
        if (k->default_value) {
            fprintf(out, "%sdefault %s", sep, k->default_value);
            sep = "; ";
        }
        if (k->choices)
            fprintf(out, "%sone of %s", sep, k->choices);
        fprintf(out, "\n      %s\n", k->description ? k->description : "");
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hl_plugins_describe(const hl_config *cfg, const char *name, FILE *out)
{
    char dirs[8][4096];
    size_t nd = hl_plugin_dirs(cfg, dirs, 8), shown = 0;
    for (size_t i = 0; i < nd; i++) {
        DIR *dir = opendir(dirs[i]);
        if (!dir)
            continue;
        char *names[256];
        size_t n = 0;
        for (struct dirent *e; (e = readdir(dir)) && n < 256;) {
            size_t l = strlen(e->d_name);
            if (l > 3 && !strcmp(e->d_name + l - 3, ".so"))
                names[n++] = strdup(e->d_name);
        }
        closedir(dir);
        qsort(names, n, sizeof *names, by_name);
        for (size_t j = 0; j < n; j++) {
            if (!names[j])
                continue;
            char path[4400], why[1200];
            snprintf(path, sizeof path, "%s/%s", dirs[i], names[j]);
            names[j][strlen(names[j]) - 3] = 0;
            if (name && strcmp(name, names[j])) {
                free(names[j]);
                continue;
            }
            so_t so;
            if (open_so(path, &so, why, sizeof why)) {
                fprintf(out, "%s: %s\n\n", names[j], why);
            } else {
                so.path = path;
                describe_one(&so, out);
                fputc('\n', out);
                dlclose(so.handle);
                shown++;
            }
            free(names[j]);
        }
    }
    if (!shown) {
        fprintf(stderr, "hookline: no connector plugin%s%s found in",
                name ? " named " : "", name ? name : "");
        for (size_t i = 0; i < nd; i++)
            fprintf(stderr, "%s %s", i ? "," : "", dirs[i]);
        fprintf(stderr, "%s\n", nd ? "" : " any folder");
        return HL_ENOTFOUND;
    }
    return 0;
}
