/* main.c - the hookline command line: run, check, connectors, render, version, help, and the commands over a running engine (cli.c). */
#include "cli.h"
#include "config.h"
#include "engine.h"
#include "err.h"
#include "log.h"
#include "normalize.h"
#include "id.h"
#include "plugin.h"
#include "redact.h"
#include "sdk.h"

#include <jansson.h>

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
    "  run         start the engine on a configuration file\n"
    "  check       validate a configuration file without running it\n"
    "  connectors  list the connector plugins found, with their keys\n"
    "  render      show the request a connector would send for an event\n"
    "  version     print the version\n"
    "  help        show help for a command\n"
    "\n"
    "Commands for a running engine, over its admin API:\n"
    "  events      list the webhooks received, or show one in full\n"
    "  deliveries  list deliveries, or show one with its attempts\n"
    "  retry       send one delivery again\n"
    "  replay      send again the deliveries that match filters\n"
    "  pause       hold a connector's deliveries\n"
    "  resume      let a paused connector deliver again\n"
    "  status      the connectors: state, circuit breaker, queue\n"
    "  tail        follow what the engine does, live\n"
    "These take --url (default: $HOOKLINE_URL, else\n"
    "http://127.0.0.1:8080) and --token or --token-file (default:\n"
    "$HOOKLINE_TOKEN): admin.token, or a tenant's token.\n"
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

static const char usage_render[] =
    "Usage: hookline render [-c FILE] [--delivery-id ID] [--now MS]\n"
    "                       CONNECTOR [EVENT.json]\n"
    "\n"
    "Render a canonical event (a file, or standard input when EVENT is\n"
    "missing or '-') through a connector of FILE, after its policy's\n"
    "redaction, and print the request it would send, without sending it:\n"
    "  {\"kind\":\"http\",\"method\":…,\"url\":…,\"headers\":[[name,value],…],\n"
    "   \"body\":…}\n"
    "an SMTP message as {\"kind\":\"smtp\",\"url\":…,\"mail_from\":…,\"rcpt\":[…],\n"
    "\"body\":…}, a file append as {\"kind\":\"file\",\"path\":…,\"max_bytes\":…,\n"
    "\"keep\":…,\"body\":…}, or {\"skip\":true} when the connector sends\n"
    "nothing for it.\n"
    "Exit status 1 when the connector refuses the event (the reason on\n"
    "stderr).\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE      configuration file (as for run)\n"
    "  --delivery-id ID       the delivery id (idempotency key, signatures);\n"
    "                         default: a new one\n"
    "  --now MS               the time in Unix milliseconds (signatures)\n"
    "  -h, --help             show this help\n";

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

/* The rendered request as one JSON object. */
static json_t *request_json(const hlc_request *rq, const char *delivery_id,
                            const char *corr)
{
    json_t *o = json_object();
    if (rq->kind == HL_XFER_FILE) {
        json_object_set_new(o, "kind", json_string("file"));
        json_object_set_new(o, "path", json_string(rq->path));
        json_object_set_new(o, "max_bytes", json_integer((json_int_t)rq->max_bytes));
        json_object_set_new(o, "keep", json_integer(rq->keep));
    } else if (rq->kind == HL_XFER_SMTP) {
        json_t *rcpt = json_array();
        for (size_t i = 0; i < rq->n_rcpt; i++)
            json_array_append_new(rcpt, json_string(rq->rcpt[i]));
        json_object_set_new(o, "kind", json_string("smtp"));
        json_object_set_new(o, "url", json_string(rq->url));
        json_object_set_new(o, "mail_from", json_string(rq->mail_from));
        json_object_set_new(o, "rcpt", rcpt);
    } else {
        json_object_set_new(o, "kind", json_string("http"));
        json_object_set_new(o, "method", json_string(rq->method));
        json_object_set_new(o, "url", json_string(rq->url));
    }
    json_t *hs = json_array();
    hl_header *h = calloc(rq->n_headers + 3, sizeof *h);
    size_t n = h ? hl_request_headers(rq, delivery_id, corr, h,
                                      rq->n_headers + 3)
                 : 0;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hs, json_pack("[ss]", h[i].name, h[i].value));
    free(h);
    json_object_set_new(o, "headers", hs);
    json_object_set_new(o, "body", json_stringn_nocheck(rq->body ? rq->body
                                                                 : "",
                                                        rq->body_len));
    return o;
}

static json_t *read_event(const char *path)
{
    json_error_t e;
    json_t *ev = !path || !strcmp(path, "-")
                     ? json_loadf(stdin, 0, &e)
                     : json_load_file(path, 0, &e);
    if (!ev)
        fprintf(stderr, "hookline render: %s:%d:%d: %s\n",
                path ? path : "<stdin>", e.line, e.column, e.text);
    return ev;
}

static int render_with(hl_loaded *l, const char *name, json_t *ev,
                       const char *id, int64_t now)
{
    const hl_config *cfg = l->cfg;
    size_t i = 0;
    while (i < cfg->n_connectors && strcmp(cfg->connectors[i].name, name))
        i++;
    if (i == cfg->n_connectors) {
        fprintf(stderr, "hookline render: no connector named '%s' in %s\n",
                name, cfg->file);
        return 1;
    }
    const hl_policy_cfg *pol = hl_config_policy_for(cfg, &cfg->connectors[i]);
    hl_redactor *red = NULL;
    hl_diags d = {0};
    if (pol->n_redact && hl_redactor_for(cfg, pol->redact, pol->n_redact, &d,
                                         &red)) {
        hl_diags_print(&d, stderr);
        hl_diags_free(&d);
        return 1;
    }
    hl_diags_free(&d);
    const char *corr = json_string_value(json_object_get(ev, "correlationid"));
    hlc_delivery dl = {
        .struct_size = sizeof dl,
        .attempt = 1,
        .delivery_id = id,
        .event_id = json_string_value(json_object_get(ev, "id")),
        .correlation_id = corr ? corr : "",
        .connector = name,
        .now_ms = now,
    };
    if (!dl.event_id)
        dl.event_id = "";
    hlc_request rq;
    hl_request_init(&rq);
    char why[600] = "";
    int rc = hl_render(hl_plugins_instance(l->plugins, i), red, ev, &dl, &rq,
                       why, sizeof why);
    int status = 0;
    if (rc == HLC_RENDER_SKIP) {
        puts("{\"skip\":true}");
    } else if (rc != HLC_RENDER_OK) {
        fprintf(stderr, "hookline render: %s: %s\n", name, why);
        status = 1;
    } else {
        json_t *o = request_json(&rq, id, corr);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
    }
    hl_request_free(&rq);
    hl_redactor_destroy(red);
    return status;
}

static int cmd_render(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"delivery-id", required_argument, NULL, 'i'},
        {"now", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *env = getenv("HOOKLINE_CONFIG");
    const char *path = env && *env ? env : DEFAULT_CONFIG;
    char id[HL_ID_LEN + 1] = "";
    int64_t now = hl_now_ms();
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'i':
            snprintf(id, sizeof id, "%s", optarg);
            break;
        case 'n':
            now = strtoll(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "hookline render: --now takes Unix "
                                "milliseconds, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            fputs(usage_render, stdout);
            return 0;
        default:
            fprintf(stderr, "hookline render: unknown option '%s'\n\n%s",
                    argv[optind - 1], usage_render);
            return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        fprintf(stderr, "hookline render: give a connector name and at most "
                        "one event file\n\n%s",
                usage_render);
        return 2;
    }
    if (!*id)
        hl_id_new(now, id);
    hl_diags d = {0};
    hl_loaded l;
    hl_engine_load(path, &d, &l);
    hl_diags_print(&d, stderr);
    hl_diags_free(&d);
    if (!l.cfg)
        return 1;
    json_t *ev = read_event(optind + 1 < argc ? argv[optind + 1] : NULL);
    int rc = ev ? render_with(&l, argv[optind], ev, id, now) : 1;
    json_decref(ev);
    hl_loaded_free(&l);
    return rc;
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
    {"render", usage_render, cmd_render},
    {"events", hl_cli_usage_events, hl_cli_events},
    {"deliveries", hl_cli_usage_deliveries, hl_cli_deliveries},
    {"retry", hl_cli_usage_retry, hl_cli_retry},
    {"replay", hl_cli_usage_replay, hl_cli_replay},
    {"pause", hl_cli_usage_pause, hl_cli_pause},
    {"resume", hl_cli_usage_resume, hl_cli_resume},
    {"status", hl_cli_usage_status, hl_cli_status},
    {"tail", hl_cli_usage_tail, hl_cli_tail},
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
