/* main.c - the hookline command line: run, check, version, help. */
#include "config.h"
#include "engine.h"
#include "err.h"
#include "log.h"
#include "normalize.h"
#include "plugin.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONFIG "hookline.yaml"

static const char usage_main[] =
    "hookline - a queue-first webhook and connector engine\n"
    "\n"
    "Usage: hookline <command> [options]\n"
    "\n"
    "Commands:\n"
    "  run       start the engine on a configuration file\n"
    "  check     validate a configuration file without running it\n"
    "  connectors  list the connector plugins found, with their keys\n"
    "  version   print the version\n"
    "  help      show help for a command\n"
    "\n"
    "Run 'hookline help <command>' or 'hookline <command> --help' for the\n"
    "options of a command.\n";

static const char usage_run[] =
    "Usage: hookline run [-c FILE]\n"
    "\n"
    "Start the engine in the foreground and log to stderr.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   configuration file (default: $HOOKLINE_CONFIG,\n"
    "                      else ./" DEFAULT_CONFIG ")\n"
    "  -h, --help          show this help\n"
    "\n"
    "Signals: SIGHUP reloads the file (an invalid file is reported and the\n"
    "running configuration kept); SIGINT or SIGTERM stop accepting, finish\n"
    "requests in flight (at most 10 s) and exit 0.\n";

static const char usage_check[] =
    "Usage: hookline check [-c FILE]\n"
    "\n"
    "Validate a configuration file without running it: every error and\n"
    "warning is printed as FILE:LINE:COL. Exit status 0 when the file is\n"
    "valid (warnings allowed), 1 when it has errors.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   configuration file (default: $HOOKLINE_CONFIG,\n"
    "                      else ./" DEFAULT_CONFIG ")\n"
    "  -h, --help          show this help\n";

static const char usage_connectors[] =
    "Usage: hookline connectors [-c FILE] [NAME]\n"
    "\n"
    "List the connector plugins in the folders hookline loads them from\n"
    "(connectors_path of FILE when it is given, else the built-in folders),\n"
    "each with its version and configuration keys; NAME shows one.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   read connectors_path from this file\n"
    "  -h, --help          show this help\n";

static const char usage_version[] = "Usage: hookline version\n"
                                    "\n"
                                    "Print the version and exit.\n";

typedef struct {
    const char *name;
    const char *usage;
    int (*fn)(int argc, char **argv);
} command;

/* Parses -c/--config and -h; returns 0, 1 (help shown) or 2 (bad usage). */
static int parse_opts(int argc, char **argv, const char *usage,
                      const char **config)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *env = getenv("HOOKLINE_CONFIG");
    *config = env && *env ? env : DEFAULT_CONFIG;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *config = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        default:
            if (optopt == 'c')
                fprintf(stderr, "hookline %s: -c needs a file name\n\n%s",
                        argv[0], usage);
            else
                fprintf(stderr, "hookline %s: unknown option '%s'\n\n%s",
                        argv[0], argv[optind - 1], usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hookline %s: unexpected argument '%s'\n\n%s", argv[0],
                argv[optind], usage);
        return 2;
    }
    return 0;
}

static void plural(char *out, size_t cap, size_t n, const char *what)
{
    snprintf(out, cap, "%zu %s%s", n, what, n == 1 ? "" : "s");
}

/* Options, then the file: prints every diagnostic. Returns -1 to go on
 * (with *l and *d set, l->cfg NULL when the file has errors), else the
 * exit status (help shown, or bad usage). */
static int load_for(int argc, char **argv, const char *usage,
                    const char **path, hl_loaded *l, hl_diags *d)
{
    int rc = parse_opts(argc, argv, usage, path);
    if (rc)
        return rc == 1 ? 0 : 2;
    hl_engine_load(*path, d, l);
    hl_diags_print(d, stderr);
    return -1;
}

static int cmd_check(int argc, char **argv)
{
    const char *path;
    hl_diags d = {0};
    hl_loaded l;
    int rc = load_for(argc, argv, usage_check, &path, &l, &d);
    if (rc >= 0)
        return rc;
    hl_config *cfg = l.cfg;
    char e[32], w[32];
    plural(e, sizeof e, d.errors, "error");
    plural(w, sizeof w, d.warnings, "warning");
    if (!cfg) {
        fprintf(stderr, "%s: %s, %s\n", path, e, w);
        hl_diags_free(&d);
        return 1;
    }
    char t[32], s[32], c[32], p[32], r[32];
    plural(t, sizeof t, cfg->n_tenants, "tenant");
    plural(s, sizeof s, cfg->n_sources, "source");
    plural(c, sizeof c, cfg->n_connectors, "connector");
    plural(p, sizeof p, cfg->n_policies, "policy");
    if (cfg->n_policies != 1)
        snprintf(p, sizeof p, "%zu policies", cfg->n_policies);
    plural(r, sizeof r, cfg->n_routes, "route");
    printf("%s: ok: %s, %s, %s, %s, %s; %s\n", path, t, s, c, p, r, w);
    hl_loaded_free(&l);
    hl_diags_free(&d);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *path;
    hl_diags d = {0};
    hl_loaded l;
    int rc = load_for(argc, argv, usage_run, &path, &l, &d);
    if (rc >= 0)
        return rc;
    if (!l.cfg) {
        fprintf(stderr,
                "%s: %zu error%s; hookline did not start (see 'hookline "
                "check -c %s')\n",
                path, d.errors, d.errors == 1 ? "" : "s", path);
        hl_diags_free(&d);
        return 1;
    }
    hl_diags_free(&d);
    return hl_engine_run_take(path, &l) ? 1 : 0;
}

static int cmd_connectors(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(usage_connectors, stdout);
            return 0;
        }
        if (ch != 'c') {
            fprintf(stderr, "hookline connectors: unknown option '%s'\n\n%s",
                    argv[optind - 1], usage_connectors);
            return 2;
        }
        path = optarg;
    }
    const char *name = optind < argc ? argv[optind] : NULL;
    if (name && optind + 1 < argc) {
        fprintf(stderr, "hookline connectors: unexpected argument '%s'\n\n%s",
                argv[optind + 1], usage_connectors);
        return 2;
    }
    hl_config *cfg = NULL;
    if (path) {
        hl_diags d = {0};
        hl_config_load(path, &d, &cfg);
        hl_diags_print(&d, stderr);
        hl_diags_free(&d);
        if (!cfg)
            return 1;
    }
    printf("Every connector takes url, policy, tenant (only that tenant's "
           "events) and timeout (default: outbound.timeout).\n\n");
    int rc = hl_plugins_describe(cfg, name, stdout);
    hl_config_destroy(cfg);
    return rc ? 1 : 0;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage_version, stdout);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "hookline version: unexpected argument '%s'\n",
                argv[1]);
        return 2;
    }
    printf("hookline %s\n", HL_VERSION);
    return 0;
}

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"run", usage_run, cmd_run},
    {"check", usage_check, cmd_check},
    {"connectors", usage_connectors, cmd_connectors},
    {"version", usage_version, cmd_version},
    {"help", usage_main, cmd_help},
};

static const command *find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stdout);
        return 0;
    }
    const command *c = find(argv[1]);
    if (!c) {
        fprintf(stderr, "hookline help: unknown command '%s'\n\n%s", argv[1],
                usage_main);
        return 2;
    }
    fputs(c->usage, stdout);
    return 0;
}

/* Freed memory stays with the allocator rather than going back to the
 * kernel at every free: giving it back (madvise, munmap) flushes the TLB
 * of every core, which took a third of the dispatcher's time under load. */
static void tune_allocator(void)
{
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

int main(int argc, char **argv)
{
    tune_allocator();
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return cmd_help(1, argv);
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
        return cmd_version(1, argv + 1);
    const command *c = find(argv[1]);
    if (!c) {
        fprintf(stderr, "hookline: unknown command '%s'\n\n%s", argv[1],
                usage_main);
        return 2;
    }
    return c->fn(argc - 1, argv + 1);
}
