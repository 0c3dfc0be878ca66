/* cli.c - the operator's commands over a running engine: the admin API (events, deliveries, retry, replay, pause, resume, status) and the live stream (tail). */
#include "cli.h"

#include "err.h"
#include "ws.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8080"
/* Every request, the connection and the websocket handshake. */
#define TIMEOUT_MS 10000
#define TOKEN_FILE_MAX 4096
/* The websocket handshake's answer head, and an error's body. */
#define HEAD_MAX 16384
#define ERROR_BODY_MAX 65536
/* The largest stream message accepted. */
#define STREAM_MESSAGE_MAX (16u << 20)
/* After Ctrl-C: how long the server has to answer our close. */
#define CLOSE_WAIT_MS 2000
/* Characters of free text (errors, responses) in a table cell. */
#define CELL_MAX 60

/* ---- help ---------------------------------------------------------------- */

#define COMMON_OPTIONS                                                         \
    "  --url URL           the engine's address (default: $HOOKLINE_URL,\n"    \
    "                      else " DEFAULT_URL ")\n"                            \
    "  --token TOKEN       admin.token, or a tenant's token to see only\n"     \
    "                      that tenant (default: $HOOKLINE_TOKEN)\n"           \
    "  --token-file PATH   read the token from a file (its first line)\n"      \
    "  --json              print the server's JSON as received\n"              \
    "  -h, --help          show this help\n"

#define EXIT_STATUS                                                            \
    "\n"                                                                       \
    "Exit status 0 when done, 1 when the engine refused (its error is\n"       \
    "printed) or could not be reached, 2 for bad usage.\n"

#define TIME_FILTERS                                                           \
    "  --since WHEN        received at or after WHEN: RFC 3339\n"              \
    "                      (2026-11-28T07:00:00Z), a duration ago (15m, 2h,\n" \
    "                      7d) or milliseconds since the epoch\n"              \
    "  --until WHEN        received before WHEN\n"

#define PAGE_FILTERS                                                           \
    "  --limit N           at most N (1 to 500; default 50)\n"                 \
    "  --cursor C          the next page: the cursor the last one ended on\n"

const char hl_cli_usage_events[] =
    "Usage: hookline events [FILTERS] [--limit N] [--cursor C] [OPTIONS]\n"
    "       hookline events [OPTIONS] ID\n"
    "\n"
    "List the webhooks received, newest first (GET /v1/events), with their\n"
    "canonical events' types and their deliveries by state; or show one in\n"
    "full: headers, body, canonical events and deliveries\n"
    "(GET /v1/events/ID).\n"
    "\n"
    "Filters:\n"
    "  --tenant T          one tenant's\n"
    "  --source S          one source's\n"
    "  --type GLOB         with a canonical event of that type (alert.*)\n"
    "  --state S[,S...]    in one of these states (received, normalized,\n"
    "                      unparsed), or with a delivery in one (queued,\n"
    "                      sending, retrying, delivered, failed, expired)\n"
    "  --connector C       with a delivery to this connector\n" TIME_FILTERS
        PAGE_FILTERS "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_deliveries[] =
    "Usage: hookline deliveries [FILTERS] [--limit N] [--cursor C] "
    "[OPTIONS]\n"
    "       hookline deliveries [OPTIONS] ID\n"
    "\n"
    "List deliveries, newest first (GET /v1/deliveries): the connector each\n"
    "goes to, its state, attempts and last answer; or show one with every\n"
    "attempt (GET /v1/deliveries/ID).\n"
    "\n"
    "Filters:\n"
    "  --tenant T          one tenant's\n"
    "  --source S          from one source\n"
    "  --type GLOB         of canonical events of that type (alert.*)\n"
    "  --state S[,S...]    queued, sending, retrying, delivered, failed,\n"
    "                      expired\n"
    "  --connector C       to one connector\n"
    "  --event ID          of one webhook or canonical event\n" TIME_FILTERS
        PAGE_FILTERS "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_retry[] =
    "Usage: hookline retry [OPTIONS] DELIVERY_ID\n"
    "\n"
    "Send one delivery again now, whatever its state, with a fresh round of\n"
    "its policy's attempts (POST /v1/deliveries/ID/retry). One being sent\n"
    "at that moment is refused: retry after its attempt.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_replay[] =
    "Usage: hookline replay [FILTERS] [OPTIONS]\n"
    "\n"
    "Send again every delivery that matches the filters, each with a fresh\n"
    "round of its policy's attempts (POST /v1/replay), and print how many.\n"
    "Without --state the failed and expired ones are replayed; with no\n"
    "filter at all, every failed and expired delivery.\n"
    "\n"
    "Filters:\n"
    "  --tenant T          one tenant's\n"
    "  --source S          from one source\n"
    "  --connector C       to one connector\n"
    "  --type GLOB         of canonical events of that type (alert.*)\n"
    "  --event ID          of one webhook or canonical event\n"
    "  --state S[,S...]    failed, expired, delivered, retrying\n" TIME_FILTERS
    "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_pause[] =
    "Usage: hookline pause [OPTIONS] CONNECTOR\n"
    "\n"
    "Hold a connector's deliveries (POST /v1/connectors/NAME/pause): nothing\n"
    "is sent to it and its deliveries wait, until 'hookline resume'. The\n"
    "hold is kept in the store: it outlasts a restart.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_resume[] =
    "Usage: hookline resume [OPTIONS] CONNECTOR\n"
    "\n"
    "Let a paused connector deliver again (POST /v1/connectors/NAME/resume).\n"
    "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_status[] =
    "Usage: hookline status [OPTIONS]\n"
    "\n"
    "The connectors the engine runs (GET /v1/connectors): whether each is\n"
    "active, paused or disabled, its circuit breaker (closed, open,\n"
    "half_open) and its deliveries queued, retrying and being sent.\n"
    "'hookline connectors' lists the plugins installed instead.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS EXIT_STATUS;

const char hl_cli_usage_tail[] =
    "Usage: hookline tail [--tenant T] [--source S] [--connector C]\n"
    "                     [--types LIST] [--since SEQ] [OPTIONS]\n"
    "\n"
    "Follow what the engine commits, as it happens (the websocket\n"
    "GET /v1/stream): webhooks received, normalized or unparsed, each\n"
    "delivery's change of state, connectors paused, resumed or tripped.\n"
    "One line each, or the message's JSON with --json:\n"
    "  seq 12  07:39:49.602  delivery.state  acme/demo → sink  delivered  "
    "attempt 1  HTTP 200  01M8...\n"
    "Ctrl-C (or SIGTERM) closes the stream and exits 0; so does the engine\n"
    "going away. When tail falls too far behind the engine drops it: tail\n"
    "says so and reconnects from the last message it had.\n"
    "\n"
    "Filters:\n"
    "  --tenant T          one tenant's\n"
    "  --source S          from one source\n"
    "  --connector C       about one connector\n"
    "  --types LIST        some of event.received, event.normalized,\n"
    "                      event.unparsed, delivery.state, connector.state\n"
    "  --since SEQ         first what was committed after message SEQ (0:\n"
    "                      all that is kept), then live; default: live only\n"
    "\n"
    "Options:\n" COMMON_OPTIONS "\n"
    "Exit status 0 when stopped or when the engine goes away, 1 when it\n"
    "refused, could not be reached or the connection was lost (resume with\n"
    "--since and the last seq), 2 for bad usage.\n";

/* ---- options ------------------------------------------------------------- */

enum {
    F_TENANT,
    F_SOURCE,
    F_TYPE,
    F_STATE,
    F_CONNECTOR,
    F_EVENT,
    F_SINCE,
    F_UNTIL,
    F_LIMIT,
    F_CURSOR,
    F_TYPES,
    N_FILTERS
};

/* The option's name is the API's parameter name. */
static const char *const filter_names[N_FILTERS] = {
    "tenant", "source", "type",  "state",  "connector", "event",
    "since",  "until",  "limit", "cursor", "types"};

#define BIT(f) (1u << (f))
#define SELECT_FILTERS                                                         \
    (BIT(F_TENANT) | BIT(F_SOURCE) | BIT(F_TYPE) | BIT(F_STATE) |              \
     BIT(F_CONNECTOR) | BIT(F_SINCE) | BIT(F_UNTIL))

enum { O_URL = 1000, O_TOKEN, O_TOKEN_FILE, O_JSON, O_FILTER = 1100 };

typedef struct {
    const char *name; /* the command, for messages */
    const char *usage;
    unsigned filters; /* BIT(F_*) it takes */
    int min_args, max_args;
    const char *missing; /* what to say when an argument is missing */
} spec;

typedef struct {
    const spec *sp;
    hl_cli_url url;
    char *token; /* malloc'd; NULL: none */
    int json;
    const char *filter[N_FILTERS]; /* borrowed from argv */
    char **args;                   /* the positional arguments */
    int n_args;
} cli;

static int usage_error(const spec *sp, const char *fmt, const char *what)
{
    fprintf(stderr, "hookline %s: ", sp->name);
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n\n%s", sp->usage);
    return 2;
}

/* The first line of path, trimmed, into *out (malloc'd). 0, or 1 with the
 * reason printed. */
static int read_token_file(const char *cmd, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hookline %s: cannot read the token file %s: %s\n", cmd,
                path, strerror(errno));
        return 1;
    }
    char *buf = malloc(TOKEN_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TOKEN_FILE_MAX + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "hookline %s: cannot read the token file %s: %s\n", cmd,
                path, buf ? "read error" : "out of memory");
        free(buf);
        return 1;
    }
    if (n > TOKEN_FILE_MAX) {
        fprintf(stderr,
                "hookline %s: the token file %s is longer than %d bytes; "
                "put the token alone in it\n",
                cmd, path, TOKEN_FILE_MAX);
        free(buf);
        return 1;
    }
    buf[n] = 0;
    size_t start = strspn(buf, " \t\r\n");
    size_t len = strcspn(buf + start, "\r\n");
    while (len && (buf[start + len - 1] == ' ' || buf[start + len - 1] == '\t'))
        len--;
    if (!len) {
        fprintf(stderr, "hookline %s: the token file %s is empty\n", cmd, path);
        free(buf);
        return 1;
    }
    memmove(buf, buf + start, len);
    buf[len] = 0;
    *out = buf;
    return 0;
}

static int token_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x20 || *t == 0x7f)
            return 0;
    return 1;
}

/* Where the token comes from: --token, --token-file, else $HOOKLINE_TOKEN.
 * -1 to go on, else the exit status. */
static int take_token(cli *c, const char *token, const char *file)
{
    const spec *sp = c->sp;
    if (token && file)
        return usage_error(sp, "%s", "give --token or --token-file, not both");
    if (token && !*token)
        return usage_error(sp, "%s", "--token is empty");
    if (file) {
        if (read_token_file(sp->name, file, &c->token))
            return 1;
    } else {
        if (!token) {
            token = getenv("HOOKLINE_TOKEN");
            if (token && !*token)
                token = NULL;
        }
        if (token && !(c->token = strdup(token))) {
            fprintf(stderr, "hookline %s: out of memory\n", sp->name);
            return 1;
        }
    }
    if (c->token && !token_ok(c->token)) {
        fprintf(stderr,
                "hookline %s: the token holds a control character; "
                "it must be one line of text\n",
                sp->name);
        return 1;
    }
    return -1;
}

static int any_filter(const cli *c)
{
    for (int i = 0; i < N_FILTERS; i++)
        if (c->filter[i])
            return 1;
    return 0;
}

/* Parse argv into c. -1 to go on, else the exit status (help: 0). */
static int parse(const spec *sp, int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    c->sp = sp;
    struct option lo[N_FILTERS + 6];
    size_t n = 0;
    lo[n++] = (struct option){"url", required_argument, NULL, O_URL};
    lo[n++] = (struct option){"token", required_argument, NULL, O_TOKEN};
    lo[n++] =
        (struct option){"token-file", required_argument, NULL, O_TOKEN_FILE};
    lo[n++] = (struct option){"json", no_argument, NULL, O_JSON};
    lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
    for (int i = 0; i < N_FILTERS; i++)
        if (sp->filters & BIT(i))
            lo[n++] = (struct option){filter_names[i], required_argument, NULL,
                                      O_FILTER + i};
    lo[n] = (struct option){NULL, 0, NULL, 0};
    const char *url = NULL, *token = NULL, *token_file = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': fputs(sp->usage, stdout); return 0;
        case O_URL: url = optarg; break;
        case O_TOKEN: token = optarg; break;
        case O_TOKEN_FILE: token_file = optarg; break;
        case O_JSON: c->json = 1; break;
        case ':': return usage_error(sp, "%s needs a value", argv[optind - 1]);
        case '?':
            return usage_error(sp, "unknown option '%s'", argv[optind - 1]);
        default: c->filter[ch - O_FILTER] = optarg; break;
        }
    }
    c->args = argv + optind;
    c->n_args = argc - optind;
    if (c->n_args < sp->min_args)
        return usage_error(sp, "%s", sp->missing);
    if (c->n_args > sp->max_args)
        return usage_error(sp, "unexpected argument '%s'",
                           c->args[sp->max_args]);
    if (c->n_args && !*c->args[0])
        return usage_error(sp, "%s", "the ID or name is empty");
    if (c->n_args && any_filter(c))
        return usage_error(sp, "%s", "an ID takes no filters");
    const char *from = "--url";
    if (!url && (url = getenv("HOOKLINE_URL")) && *url)
        from = "HOOKLINE_URL";
    if (!url || !*url)
        url = DEFAULT_URL;
    const char *why;
    if (hl_cli_url_parse(url, &c->url, &why)) {
        fprintf(stderr, "hookline %s: %s '%s': %s\n\n%s", sp->name, from, url,
                why, sp->usage);
        return 2;
    }
    return take_token(c, token, token_file);
}

/* ---- addresses and text -------------------------------------------------- */

int hl_cli_url_parse(const char *url, hl_cli_url *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (!strncasecmp(url, "http://", 7)) {
        p = url + 7;
    } else if (!strncasecmp(url, "https://", 8)) {
        p = url + 8;
        out->tls = 1;
    } else {
        *why = "use http://HOST[:PORT] or https://HOST[:PORT]";
        return HL_ESYNTAX;
    }
    for (const char *s = url; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '?' || *s == '#') {
            *why = "the address holds a space, a control character, a "
                   "query or a fragment; give scheme://HOST[:PORT][/PATH]";
            return HL_ESYNTAX;
        }
    size_t alen = strcspn(p, "/");
    const char *host_end = p + alen;
    if (memchr(p, '@', alen)) {
        *why = "user names and passwords do not go in the address; give "
               "the token with --token";
        return HL_ESYNTAX;
    }
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        if (!close || close == p + 1 ||
            (close + 1 < host_end && close[1] != ':') ||
            strspn(p + 1, "0123456789abcdefABCDEF:.") !=
                (size_t)(close - p - 1)) {
            *why = "an IPv6 address goes in brackets: http://[::1]:8080";
            return HL_ESYNTAX;
        }
        colon = close + 1 < host_end ? close + 1 : NULL;
    } else {
        colon = memchr(p, ':', alen);
        if (colon == p || !alen) {
            *why = "the host is missing";
            return HL_ESYNTAX;
        }
    }
    if (colon) {
        size_t dl = (size_t)(host_end - colon - 1);
        long port = dl && dl <= 5 && strspn(colon + 1, "0123456789") >= dl
                        ? strtol(colon + 1, NULL, 10)
                        : 0;
        if (port < 1 || port > 65535) {
            *why = "the port must be a number from 1 to 65535";
            return HL_ESYNTAX;
        }
    }
    size_t plen = strlen(host_end);
    while (plen && host_end[plen - 1] == '/')
        plen--;
    if (alen >= sizeof out->authority || plen >= sizeof out->path) {
        *why = "the address is too long";
        return HL_ESYNTAX;
    }
    memcpy(out->authority, p, alen);
    memcpy(out->path, host_end, plen);
    snprintf(out->base, sizeof out->base, "%s://%s%s",
             out->tls ? "https" : "http", out->authority, out->path);
    return 0;
}

static void put_escaped(hl_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
            ch == '~') {
            hl_buf_put(b, s, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            hl_buf_put(b, e, 3);
        }
    }
}

void hl_cli_query_add(hl_buf *b, const char *name, const char *value)
{
    hl_buf_puts(b, b->p && memchr(b->p, '?', b->len) ? "&" : "?");
    put_escaped(b, name);
    hl_buf_puts(b, "=");
    put_escaped(b, value);
}

static void bprintf(hl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void bprintf(hl_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        hl_buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    hl_buf_put(b, big, (size_t)n);
    free(big);
}

/* s[0..n) for a terminal: control characters (C0, DEL, C1) become
 * spaces, and past max characters (0: no limit) it is cut with an
 * ellipsis. */
static void put_clean_n(hl_buf *b, const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (size_t chars = 0; p < end; p++) {
        int lead = (*p & 0xC0) != 0x80;
        if (lead && max && chars == max) {
            hl_buf_puts(b, "…");
            return;
        }
        chars += lead;
        if (*p < 0x20 || *p == 0x7f) {
            hl_buf_put(b, " ", 1);
        } else if (*p == 0xC2 && p + 1 < end && p[1] >= 0x80 && p[1] <= 0x9F) {
            hl_buf_put(b, " ", 1);
            p++;
        } else {
            hl_buf_put(b, p, 1);
        }
    }
}

static void put_clean(hl_buf *b, const char *s, size_t max)
{
    put_clean_n(b, s, strlen(s), max);
}

static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The string at key of o, or NULL. */
static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The string or number at key of o as text into out, else dflt. */
static const char *text_of(const json_t *o, const char *key, char *out,
                           size_t cap, const char *dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
        return out;
    }
    if (json_is_true(v) || json_is_false(v))
        return json_is_true(v) ? "true" : "false";
    return dflt;
}

/* HH:MM:SS.mmm of an RFC 3339 time, else the time as given. */
static void put_clock(hl_buf *b, const char *t)
{
    if (strlen(t) >= 23 && t[10] == 'T')
        put_clean_n(b, t + 11, 12, 0);
    else
        put_clean(b, t, 40);
}

/* ---- tables -------------------------------------------------------------- */

#define TABLE_COLS 10

typedef struct {
    size_t cols;
    const char *head[TABLE_COLS];
    char **cell; /* row-major, cleaned copies */
    size_t n, cap;
    int oom;
} table;

static void table_init(table *t, const char *const *head)
{
    memset(t, 0, sizeof *t);
    while (head[t->cols] && t->cols < TABLE_COLS) {
        t->head[t->cols] = head[t->cols];
        t->cols++;
    }
}

/* The next cell, left to right, row after row; NULL shows as "-". */
static void table_add(table *t, const char *s, size_t max)
{
    if (t->oom)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **v = realloc(t->cell, cap * sizeof *v);
        if (!v) {
            t->oom = 1;
            return;
        }
        t->cell = v;
        t->cap = cap;
    }
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    put_clean(&b, s && *s ? s : "-", max);
    char *copy = hl_buf_take(&b, NULL);
    if (!copy) {
        t->oom = 1;
        return;
    }
    t->cell[t->n++] = copy;
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cell[i]);
    free(t->cell);
    t->cell = NULL;
    t->n = t->cap = 0;
}

static void print_row(const table *t, const char *const *row,
                      const size_t *width)
{
    for (size_t k = 0; k < t->cols; k++) {
        fputs(row[k], stdout);
        if (k + 1 < t->cols)
            printf("%*s", (int)(width[k] - text_width(row[k]) + 2), "");
    }
    putchar('\n');
}

/* Print with columns as wide as their widest cell, two spaces apart, and
 * free the cells. 0, or 1 when memory ran out. */
static int table_print(table *t)
{
    if (t->oom) {
        table_free(t);
        fputs("hookline: out of memory\n", stderr);
        return 1;
    }
    size_t width[TABLE_COLS];
    for (size_t k = 0; k < t->cols; k++)
        width[k] = text_width(t->head[k]);
    for (size_t i = 0; i < t->n; i++) {
        size_t w = text_width(t->cell[i]);
        if (w > width[i % t->cols])
            width[i % t->cols] = w;
    }
    print_row(t, t->head, width);
    for (size_t i = 0; i + t->cols <= t->n; i += t->cols)
        print_row(t, (const char *const *)t->cell + i, width);
    table_free(t);
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

/* Why url could not be reached, in the words a user acts on. */
static void report_unreachable(const char *cmd, const char *url, CURLcode e,
                               long os_errno, const char *detail)
{
    const char *why = os_errno  ? strerror((int)os_errno)
                      : *detail ? detail
                                : curl_easy_strerror(e);
    if (e == CURLE_OPERATION_TIMEDOUT)
        fprintf(stderr,
                "hookline %s: %s did not answer within %d s; is it "
                "hookline's address? set --url or HOOKLINE_URL\n",
                cmd, url, TIMEOUT_MS / 1000);
    else if (e == CURLE_COULDNT_CONNECT || e == CURLE_COULDNT_RESOLVE_HOST ||
             e == CURLE_COULDNT_RESOLVE_PROXY)
        fprintf(stderr,
                "hookline %s: cannot reach %s: %s; is hookline running? set "
                "--url or HOOKLINE_URL\n",
                cmd, url, why);
    else if (e == CURLE_SSL_CONNECT_ERROR && !strncasecmp(url, "https", 5))
        fprintf(stderr,
                "hookline %s: %s: %s; hookline itself speaks plain HTTP: "
                "use http://, or the address of the TLS proxy in front\n",
                cmd, url, why);
    else
        fprintf(stderr, "hookline %s: %s: %s\n", cmd, url, why);
}

/* A refusal: {"error":{"code","message"}} as "STATUS CODE: MESSAGE". */
static void report_refusal(const cli *c, long status, const char *body,
                           size_t len)
{
    const char *cmd = c->sp->name;
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    const char *code = str(e, "code"), *msg = str(e, "message");
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    if (code && msg) {
        bprintf(&b, "%ld ", status);
        put_clean(&b, code, 80);
        hl_buf_puts(&b, ": ");
        put_clean(&b, msg, 0);
    } else {
        bprintf(&b, "%s answered HTTP %ld", c->url.base, status);
        if (len) {
            char *first = strndup(body, strcspn(body, "\r\n"));
            if (first) {
                hl_buf_puts(&b, ": ");
                put_clean(&b, first, 200);
                free(first);
            }
        }
    }
    fprintf(stderr, "hookline %s: %s\n", cmd, b.p ? b.p : "refused");
    if (status == 401 && !c->token)
        fprintf(stderr,
                "hookline %s: no token was given: use --token, --token-file "
                "or HOOKLINE_TOKEN\n",
                cmd);
    hl_buf_free(&b);
    json_decref(o);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    hl_buf *b = ud;
    hl_buf_put(b, p, size * n);
    return b->oom ? 0 : size * n;
}

#define SET(h, opt, val)                                                       \
    do {                                                                       \
        if (e == CURLE_OK)                                                     \
            e = curl_easy_setopt(h, opt, val);                                 \
    } while (0)

static struct curl_slist *header_add(struct curl_slist *l, const char *line,
                                     int *oom)
{
    struct curl_slist *n = *oom ? NULL : curl_slist_append(l, line);
    if (!n)
        *oom = 1;
    return n ? n : l;
}

/* method on path (with its query) with body (JSON, NULL: none). A 2xx:
 * 0 and its body in *text (malloc'd, NUL-terminated). Else the failure is
 * reported and 1. */
static int call(const cli *c, const char *method, const char *path,
                const char *body, char **text)
{
    const char *cmd = c->sp->name;
    int rc = 1, oom = 0;
    char err[CURL_ERROR_SIZE] = "";
    hl_buf url, auth, resp;
    hl_buf_init(&url, NULL, 0);
    hl_buf_init(&auth, NULL, 0);
    hl_buf_init(&resp, NULL, 0);
    struct curl_slist *hs = NULL;
    CURL *h = curl_easy_init();
    bprintf(&url, "%s%s", c->url.base, path);
    if (c->token)
        bprintf(&auth, "Authorization: Bearer %s", c->token);
    hs = header_add(hs, "Accept: application/json", &oom);
    hs = header_add(hs, "User-Agent: hookline/" HL_VERSION, &oom);
    hs = header_add(hs, "Expect:", &oom);
    if (body)
        hs = header_add(hs, "Content-Type: application/json", &oom);
    if (c->token)
        hs = header_add(hs, auth.p ? auth.p : "", &oom);
    if (!h || oom || url.oom || auth.oom) {
        fprintf(stderr, "hookline %s: out of memory\n", cmd);
        goto out;
    }
    CURLcode e = CURLE_OK;
    SET(h, CURLOPT_URL, url.p);
    SET(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET")) {
        SET(h, CURLOPT_POSTFIELDS, body ? body : "");
        SET(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    }
    SET(h, CURLOPT_HTTPHEADER, hs);
    SET(h, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    SET(h, CURLOPT_CONNECTTIMEOUT_MS, (long)TIMEOUT_MS);
    SET(h, CURLOPT_FOLLOWLOCATION, 0L);
    SET(h, CURLOPT_NOSIGNAL, 1L);
    SET(h, CURLOPT_ERRORBUFFER, err);
    SET(h, CURLOPT_WRITEFUNCTION, on_body);
    SET(h, CURLOPT_WRITEDATA, &resp);
    if (e != CURLE_OK) {
        fprintf(stderr, "hookline %s: libcurl: %s\n", cmd,
                curl_easy_strerror(e));
        goto out;
    }
    e = curl_easy_perform(h);
    if (e != CURLE_OK) {
        long os_errno = 0;
        if (curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
            os_errno = 0;
        if (e == CURLE_WRITE_ERROR && resp.oom)
            fprintf(stderr, "hookline %s: out of memory\n", cmd);
        else
            report_unreachable(cmd, c->url.base, e, os_errno, err);
        goto out;
    }
    long status = 0;
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
        fprintf(stderr, "hookline %s: libcurl gave no status\n", cmd);
        goto out;
    }
    if (status < 200 || status > 299) {
        report_refusal(c, status, resp.p ? resp.p : "", resp.len);
        goto out;
    }
    if (!resp.p)
        hl_buf_puts(&resp, "");
    if (!(*text = hl_buf_take(&resp, NULL))) {
        fprintf(stderr, "hookline %s: out of memory\n", cmd);
        goto out;
    }
    rc = 0;
out:
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    hl_buf_free(&url);
    hl_buf_free(&auth);
    hl_buf_free(&resp);
    return rc;
}

/* How a command shows an answer that is not --json; the exit status. */
typedef int (*show_fn)(const cli *c, json_t *o);

/* call(), then the answer as received (--json) or through show. */
static int fetch(const cli *c, const char *method, const hl_buf *path,
                 const char *body, show_fn show)
{
    if (path->oom) {
        fprintf(stderr, "hookline %s: out of memory\n", c->sp->name);
        return 1;
    }
    char *text = NULL;
    if (call(c, method, path->p, body, &text))
        return 1;
    int rc = 0;
    if (c->json) {
        size_t n = strlen(text);
        fwrite(text, 1, n, stdout);
        if (!n || text[n - 1] != '\n')
            putchar('\n');
    } else {
        json_error_t je;
        json_t *o = json_loads(text, 0, &je);
        if (!json_is_object(o)) {
            fprintf(stderr,
                    "hookline %s: the answer from %s is not a JSON object "
                    "(%s); is it hookline's address?\n",
                    c->sp->name, c->url.base,
                    o ? "another JSON value" : je.text);
            rc = 1;
        } else {
            rc = show(c, o);
        }
        json_decref(o);
    }
    free(text);
    return rc;
}

/* The path of a collection, with the filters as its query. */
static void list_path(const cli *c, const char *collection, hl_buf *path)
{
    hl_buf_puts(path, collection);
    for (int i = 0; i < N_FILTERS; i++)
        if (c->filter[i])
            hl_cli_query_add(path, filter_names[i], c->filter[i]);
}

/* collection/ID[/verb] with ID percent-encoded. */
static void item_path(const char *collection, const char *id, const char *verb,
                      hl_buf *path)
{
    hl_buf_puts(path, collection);
    hl_buf_puts(path, "/");
    put_escaped(path, id);
    if (verb) {
        hl_buf_puts(path, "/");
        hl_buf_puts(path, verb);
    }
}

static int start(const spec *sp, int argc, char **argv, cli *c)
{
    int rc = parse(sp, argc, argv, c);
    if (rc >= 0) {
        free(c->token);
        c->token = NULL;
        return rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "hookline %s: libcurl could not start\n", sp->name);
        free(c->token);
        c->token = NULL;
        return 1;
    }
    return -1;
}

static int finish(cli *c, int rc)
{
    free(c->token);
    c->token = NULL;
    curl_global_cleanup();
    return rc;
}

/* ---- showing what came back ---------------------------------------------- */

/* "label        value", cleaned; nothing when value is NULL. */
static void field(const char *label, const char *value)
{
    if (!value)
        return;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    put_clean(&b, value, 0);
    printf("%-13s%s\n", label, b.p ? b.p : "");
    hl_buf_free(&b);
}

/* v as indented JSON, every line after indent. */
static void print_json(const json_t *v, const char *indent)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (!s) {
        printf("%s(out of memory)\n", indent);
        return;
    }
    for (char *line = s; *line;) {
        size_t n = strcspn(line, "\n");
        printf("%s%.*s\n", indent, (int)n, line);
        line += n + (line[n] == '\n');
    }
    free(s);
}

static void page_note(const json_t *o, const char *noun)
{
    char cur[32];
    const char *next = text_of(o, "next_cursor", cur, sizeof cur, NULL);
    if (next)
        printf("\nmore %s: add --cursor %s for the next page\n", noun, next);
}

/* "delivered 1, retrying 2" from {"delivered":1,"retrying":2}. */
static void put_counts(hl_buf *b, const json_t *counts)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)counts, k, v)
    {
        bprintf(b, "%s%s %lld", b->len ? ", " : "", k,
                (long long)json_integer_value(v));
    }
}

/* Whether the comma-separated list holds item. */
static int in_list(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && !memcmp(p, item, n))
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

static int show_events(const cli *c, json_t *o)
{
    (void)c;
    json_t *list = json_object_get(o, "events");
    if (!json_array_size(list)) {
        puts("no events match");
        return 0;
    }
    static const char *const head[] = {"RECEIVED",   "ID",    "TENANT",
                                       "SOURCE",     "STATE", "TYPE",
                                       "DELIVERIES", NULL};
    table t;
    table_init(&t, head);
    size_t i;
    json_t *ev;
    json_array_foreach(list, i, ev)
    {
        hl_buf types, dl;
        hl_buf_init(&types, NULL, 0);
        hl_buf_init(&dl, NULL, 0);
        size_t k;
        json_t *canon;
        json_array_foreach(json_object_get(ev, "events"), k, canon)
        {
            const char *type = str(canon, "type");
            if (type && !(types.p && in_list(types.p, type)))
                bprintf(&types, "%s%s", types.len ? "," : "", type);
        }
        put_counts(&dl, json_object_get(ev, "deliveries"));
        table_add(&t, str(ev, "received_at"), 0);
        table_add(&t, str(ev, "id"), 0);
        table_add(&t, str(ev, "tenant"), 0);
        table_add(&t, str(ev, "source"), 0);
        table_add(&t, str(ev, "state"), 0);
        table_add(&t, types.oom ? NULL : types.p, CELL_MAX);
        table_add(&t, dl.oom ? NULL : dl.p, 0);
        hl_buf_free(&types);
        hl_buf_free(&dl);
    }
    int rc = table_print(&t);
    page_note(o, "events");
    return rc;
}

/* "HTTP 503: reason", "HTTP 200", the error alone, or nothing; an error
 * that only repeats the status is left out. */
static void put_last(hl_buf *b, const json_t *d)
{
    json_t *status = json_object_get(d, "last_status");
    const char *err = str(d, "last_error");
    char http[40] = "";
    if (json_is_integer(status))
        snprintf(http, sizeof http, "HTTP %lld",
                 (long long)json_integer_value(status));
    if (*http && err && !strncmp(err, http, strlen(http)))
        http[0] = 0; /* the error says it */
    else if (*http && err && !strcmp(err, http + 5))
        err = NULL;
    hl_buf_puts(b, http);
    if (err && *err)
        bprintf(b, "%s%s", b->len ? ": " : "", err);
}

static void deliveries_table(const json_t *list, int with_event)
{
    static const char *const head[] = {"ID",           "CONNECTOR", "STATE",
                                       "ATTEMPTS",     "LAST",      "UPDATED",
                                       "NEXT ATTEMPT", "EVENT",     NULL};
    static const char *const head_short[] = {
        "ID",   "CONNECTOR", "STATE",        "ATTEMPTS",
        "LAST", "UPDATED",   "NEXT ATTEMPT", NULL};
    table t;
    table_init(&t, with_event ? head : head_short);
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        char n[32];
        hl_buf last;
        hl_buf_init(&last, NULL, 0);
        put_last(&last, d);
        table_add(&t, str(d, "id"), 0);
        table_add(&t, str(d, "connector"), 0);
        table_add(&t, str(d, "state"), 0);
        table_add(&t, text_of(d, "attempts", n, sizeof n, NULL), 0);
        table_add(&t, last.oom ? NULL : last.p, CELL_MAX);
        table_add(&t, str(d, "updated_at"), 0);
        table_add(&t, str(d, "next_attempt_at"), 0);
        if (with_event)
            table_add(&t, str(d, "event_id"), 0);
        hl_buf_free(&last);
    }
    table_print(&t);
}

static int show_event(const cli *c, json_t *o)
{
    (void)c;
    char size[32];
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    field("event", str(o, "id"));
    field("tenant", str(o, "tenant"));
    field("source", str(o, "source"));
    field("received", str(o, "received_at"));
    const char *state = str(o, "state"), *reason = str(o, "reason");
    if (state)
        bprintf(&b, "%s%s%s", state, reason ? ": " : "", reason ? reason : "");
    field("state", b.p);
    field("correlation", str(o, "correlation_id"));
    hl_buf_free(&b);
    bprintf(&b, "%s, %s bytes",
            str(o, "content_type") ? str(o, "content_type") : "no type",
            text_of(o, "size", size, sizeof size, "?"));
    field("content", b.p);
    hl_buf_free(&b);
    json_t *headers = json_object_get(o, "headers");
    if (json_object_size(headers)) {
        puts("\nheaders");
        const char *k;
        json_t *v;
        json_object_foreach(headers, k, v)
        {
            hl_buf_init(&b, NULL, 0);
            put_clean(&b, k, 0);
            hl_buf_puts(&b, ": ");
            put_clean(&b, json_is_string(v) ? json_string_value(v) : "", 0);
            printf("  %s\n", b.p ? b.p : "");
            hl_buf_free(&b);
        }
    }
    if (json_object_get(o, "body")) {
        puts("\nbody");
        print_json(json_object_get(o, "body"), "  ");
    } else if (str(o, "body_text")) {
        puts("\nbody (text)");
        hl_buf_init(&b, NULL, 0);
        put_clean(&b, str(o, "body_text"), 2000);
        printf("  %s\n", b.p ? b.p : "");
        hl_buf_free(&b);
    } else if (str(o, "body_base64")) {
        printf("\nbody (binary, base64)\n  %.2000s\n", str(o, "body_base64"));
    }
    size_t i;
    json_t *ev;
    json_t *canon = json_object_get(o, "canonical");
    json_array_foreach(canon, i, ev)
    {
        hl_buf_init(&b, NULL, 0);
        put_clean(&b, str(ev, "id") ? str(ev, "id") : "?", 0);
        hl_buf_puts(&b, " (");
        put_clean(&b, str(ev, "type") ? str(ev, "type") : "no type", 0);
        if (str(ev, "severity")) {
            hl_buf_puts(&b, ", ");
            put_clean(&b, str(ev, "severity"), 0);
        }
        hl_buf_puts(&b, ")");
        printf("\ncanonical event %s\n", b.p ? b.p : "");
        hl_buf_free(&b);
        print_json(ev, "  ");
    }
    if (!json_array_size(canon))
        puts("\nno canonical event (not normalized yet, or unparsed)");
    json_t *dl = json_object_get(o, "deliveries");
    if (json_array_size(dl)) {
        puts("\ndeliveries");
        deliveries_table(dl, 0);
    } else {
        puts("\nno deliveries");
    }
    return 0;
}

static int show_deliveries(const cli *c, json_t *o)
{
    (void)c;
    json_t *list = json_object_get(o, "deliveries");
    if (!json_array_size(list)) {
        puts("no deliveries match");
        return 0;
    }
    deliveries_table(list, 1);
    page_note(o, "deliveries");
    return 0;
}

static int show_delivery(const cli *c, json_t *o)
{
    (void)c;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    field("delivery", str(o, "id"));
    field("event", str(o, "event_id"));
    if (str(o, "canonical_id") && str(o, "event_id") &&
        strcmp(str(o, "canonical_id"), str(o, "event_id")))
        field("canonical", str(o, "canonical_id"));
    field("tenant", str(o, "tenant"));
    field("source", str(o, "source"));
    field("connector", str(o, "connector"));
    field("route", str(o, "route"));
    field("type", str(o, "type"));
    field("state", str(o, "state"));
    field("created", str(o, "created_at"));
    field("updated", str(o, "updated_at"));
    field("next attempt", str(o, "next_attempt_at"));
    put_last(&b, o);
    field("last", b.p);
    hl_buf_free(&b);
    json_t *attempts = json_object_get(o, "attempts");
    if (!json_array_size(attempts)) {
        puts("\nno attempts yet");
        return 0;
    }
    puts("\nattempts");
    static const char *const head[] = {"#",      "STARTED",  "DURATION",
                                       "STATUS", "OUTCOME",  "ERROR",
                                       "REASON", "RESPONSE", NULL};
    table t;
    table_init(&t, head);
    size_t i;
    json_t *a;
    json_array_foreach(attempts, i, a)
    {
        char n[32], ms[40], st[32];
        const char *dur = text_of(a, "duration_ms", n, sizeof n, NULL);
        if (dur)
            snprintf(ms, sizeof ms, "%s ms", dur);
        table_add(&t, text_of(a, "attempt", st, sizeof st, NULL), 0);
        table_add(&t, str(a, "started_at"), 0);
        table_add(&t, dur ? ms : NULL, 0);
        table_add(&t, text_of(a, "status", st, sizeof st, NULL), 0);
        table_add(&t, str(a, "outcome"), 0);
        table_add(&t, str(a, "error_class"), 0);
        table_add(&t, str(a, "reason"), CELL_MAX);
        table_add(&t, str(a, "response"), CELL_MAX);
    }
    return table_print(&t);
}

static int show_retry(const cli *c, json_t *o)
{
    (void)c;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    hl_buf_puts(&b, "delivery ");
    put_clean(&b, str(o, "id") ? str(o, "id") : "?", 0);
    hl_buf_puts(&b, " is ");
    put_clean(&b, str(o, "state") ? str(o, "state") : "queued", 0);
    hl_buf_puts(&b, " again (it was ");
    put_clean(&b, str(o, "was") ? str(o, "was") : "?", 0);
    hl_buf_puts(&b, ")");
    puts(b.p ? b.p : "queued again");
    hl_buf_free(&b);
    return 0;
}

static int show_replay(const cli *c, json_t *o)
{
    long long n = (long long)json_integer_value(json_object_get(o, "replayed"));
    printf("replayed %lld deliver%s\n", n, n == 1 ? "y" : "ies");
    if (!n && !c->filter[F_STATE])
        puts("(without --state only failed and expired deliveries are "
             "replayed)");
    return 0;
}

static int show_control(const cli *c, json_t *o)
{
    (void)c;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    hl_buf_puts(&b, "connector ");
    put_clean(&b, str(o, "connector") ? str(o, "connector") : "?", 0);
    hl_buf_puts(&b, ": ");
    put_clean(&b, str(o, "state") ? str(o, "state") : "?", 0);
    puts(b.p ? b.p : "done");
    hl_buf_free(&b);
    return 0;
}

static int show_status(const cli *c, json_t *o)
{
    (void)c;
    json_t *list = json_object_get(o, "connectors");
    if (!json_array_size(list)) {
        puts("no connectors");
        return 0;
    }
    static const char *const head[] = {"CONNECTOR", "PLUGIN",  "TENANT",
                                       "STATE",     "CIRCUIT", "QUEUED",
                                       "RETRYING",  "SENDING", NULL};
    table t;
    table_init(&t, head);
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        char a[32], b[32], d[32];
        json_t *q = json_object_get(x, "queue");
        table_add(&t, str(x, "name"), 0);
        table_add(&t, str(x, "plugin"), 0);
        table_add(&t, str(x, "tenant"), 0);
        table_add(&t, str(x, "state"), 0);
        table_add(&t, str(x, "circuit"), 0);
        table_add(&t, text_of(q, "queued", a, sizeof a, "0"), 0);
        table_add(&t, text_of(q, "retrying", b, sizeof b, "0"), 0);
        table_add(&t, text_of(q, "sending", d, sizeof d, "0"), 0);
    }
    return table_print(&t);
}

/* ---- the commands over the admin API ------------------------------------- */

static const spec spec_events = {
    .name = "events",
    .usage = hl_cli_usage_events,
    .filters = SELECT_FILTERS | BIT(F_LIMIT) | BIT(F_CURSOR),
    .max_args = 1,
};
static const spec spec_deliveries = {
    .name = "deliveries",
    .usage = hl_cli_usage_deliveries,
    .filters = SELECT_FILTERS | BIT(F_EVENT) | BIT(F_LIMIT) | BIT(F_CURSOR),
    .max_args = 1,
};
static const spec spec_retry = {
    .name = "retry",
    .usage = hl_cli_usage_retry,
    .min_args = 1,
    .max_args = 1,
    .missing = "give the ID of the delivery to retry",
};
static const spec spec_replay = {
    .name = "replay",
    .usage = hl_cli_usage_replay,
    .filters = SELECT_FILTERS | BIT(F_EVENT),
};
static const spec spec_pause = {
    .name = "pause",
    .usage = hl_cli_usage_pause,
    .min_args = 1,
    .max_args = 1,
    .missing = "give the name of the connector to pause",
};
static const spec spec_resume = {
    .name = "resume",
    .usage = hl_cli_usage_resume,
    .min_args = 1,
    .max_args = 1,
    .missing = "give the name of the connector to resume",
};
static const spec spec_status = {
    .name = "status",
    .usage = hl_cli_usage_status,
};

/* A list, or one item when an ID is given. */
static int list_or_one(const spec *sp, int argc, char **argv,
                       const char *collection, show_fn list, show_fn one)
{
    cli c;
    int rc = start(sp, argc, argv, &c);
    if (rc >= 0)
        return rc;
    hl_buf path;
    hl_buf_init(&path, NULL, 0);
    hl_buf_puts(&path, c.url.path);
    if (c.n_args)
        item_path(collection, c.args[0], NULL, &path);
    else
        list_path(&c, collection, &path);
    rc = fetch(&c, "GET", &path, NULL, c.n_args ? one : list);
    hl_buf_free(&path);
    return finish(&c, rc);
}

int hl_cli_events(int argc, char **argv)
{
    return list_or_one(&spec_events, argc, argv, "/v1/events", show_events,
                       show_event);
}

int hl_cli_deliveries(int argc, char **argv)
{
    return list_or_one(&spec_deliveries, argc, argv, "/v1/deliveries",
                       show_deliveries, show_delivery);
}

/* POST collection/ARG/verb with no body. */
static int post_item(const spec *sp, int argc, char **argv,
                     const char *collection, const char *verb, show_fn show)
{
    cli c;
    int rc = start(sp, argc, argv, &c);
    if (rc >= 0)
        return rc;
    hl_buf path;
    hl_buf_init(&path, NULL, 0);
    hl_buf_puts(&path, c.url.path);
    item_path(collection, c.args[0], verb, &path);
    rc = fetch(&c, "POST", &path, NULL, show);
    hl_buf_free(&path);
    return finish(&c, rc);
}

int hl_cli_retry(int argc, char **argv)
{
    return post_item(&spec_retry, argc, argv, "/v1/deliveries", "retry",
                     show_retry);
}

int hl_cli_pause(int argc, char **argv)
{
    return post_item(&spec_pause, argc, argv, "/v1/connectors", "pause",
                     show_control);
}

int hl_cli_resume(int argc, char **argv)
{
    return post_item(&spec_resume, argc, argv, "/v1/connectors", "resume",
                     show_control);
}

int hl_cli_replay(int argc, char **argv)
{
    cli c;
    int rc = start(&spec_replay, argc, argv, &c);
    if (rc >= 0)
        return rc;
    json_t *filters = json_object();
    for (int i = 0; filters && i < N_FILTERS; i++)
        if (c.filter[i] && json_object_set_new(filters, filter_names[i],
                                               json_string(c.filter[i])))
            json_decref(filters), filters = NULL;
    char *body = filters ? json_dumps(filters, JSON_COMPACT) : NULL;
    json_decref(filters);
    hl_buf path;
    hl_buf_init(&path, NULL, 0);
    hl_buf_puts(&path, c.url.path);
    hl_buf_puts(&path, "/v1/replay");
    if (body) {
        rc = fetch(&c, "POST", &path, body, show_replay);
    } else {
        fprintf(stderr, "hookline replay: out of memory, or a filter is not "
                        "UTF-8\n");
        rc = 1;
    }
    free(body);
    hl_buf_free(&path);
    return finish(&c, rc);
}

int hl_cli_status(int argc, char **argv)
{
    cli c;
    int rc = start(&spec_status, argc, argv, &c);
    if (rc >= 0)
        return rc;
    hl_buf path;
    hl_buf_init(&path, NULL, 0);
    hl_buf_puts(&path, c.url.path);
    hl_buf_puts(&path, "/v1/connectors");
    rc = fetch(&c, "GET", &path, NULL, show_status);
    hl_buf_free(&path);
    return finish(&c, rc);
}

/* ---- stream messages as lines -------------------------------------------- */

static void put_sep(hl_buf *b)
{
    hl_buf_puts(b, "  ");
}

/* "tenant/source", either part missing left out. */
static void put_origin(hl_buf *b, const json_t *o)
{
    const char *t = str(o, "tenant"), *s = str(o, "source");
    if (t)
        put_clean(b, t, 0);
    if (t && s)
        hl_buf_puts(b, "/");
    if (s)
        put_clean(b, s, 0);
}

static void line_delivery(hl_buf *b, const json_t *o)
{
    char n[32];
    const char *state = str(o, "state");
    put_origin(b, o);
    hl_buf_puts(b, " → ");
    put_clean(b, str(o, "connector") ? str(o, "connector") : "?", 0);
    put_sep(b);
    put_clean(b, state ? state : "?", 0);
    /* Requeued, it counts the attempts made so far; else it is the one
     * just made. */
    int queued = state && !strcmp(state, "queued");
    const char *attempt = text_of(o, "attempt", n, sizeof n, NULL);
    if (attempt && !(queued && !strcmp(attempt, "0")))
        bprintf(b, "  %s %s", queued ? "after attempt" : "attempt", attempt);
    json_t *status = json_object_get(o, "status");
    if (json_is_integer(status))
        bprintf(b, "  HTTP %lld", (long long)json_integer_value(status));
    const char *cls = str(o, "error_class"), *reason = str(o, "reason");
    int ok = state && !strcmp(state, "delivered");
    if (cls) {
        put_sep(b);
        put_clean(b, cls, 0);
        if (reason) {
            hl_buf_puts(b, ": ");
            put_clean(b, reason, 120);
        }
    } else if (reason && !ok) {
        put_sep(b);
        put_clean(b, reason, 120);
    }
    if (str(o, "next_attempt_at")) {
        hl_buf_puts(b, "  next ");
        put_clock(b, str(o, "next_attempt_at"));
    }
    if (str(o, "delivery_id")) {
        put_sep(b);
        put_clean(b, str(o, "delivery_id"), 0);
    }
}

static void line_normalized(hl_buf *b, const json_t *o)
{
    put_origin(b, o);
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(o, "events"), i, ev)
    {
        hl_buf_puts(b, i ? "; " : "  ");
        put_clean(b, str(ev, "type") ? str(ev, "type") : "?", 0);
        json_t *dl = json_object_get(ev, "deliveries");
        if (!json_array_size(dl)) {
            hl_buf_puts(b, " (no route)");
            continue;
        }
        hl_buf_puts(b, " → ");
        size_t k;
        json_t *d;
        json_array_foreach(dl, k, d)
        {
            if (k)
                hl_buf_puts(b, ",");
            put_clean(b, str(d, "connector") ? str(d, "connector") : "?", 0);
        }
    }
}

int hl_cli_note_line(const char *json, size_t len, hl_buf *out)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return HL_ESYNTAX;
    }
    size_t start = out->len;
    char n[32];
    const char *type = str(o, "type"),
               *seq = text_of(o, "seq", n, sizeof n, NULL);
    bprintf(out, "seq %s  ", seq ? seq : "?");
    put_clock(out, str(o, "time") ? str(o, "time") : "?");
    put_sep(out);
    put_clean(out, type ? type : "?", 0);
    put_sep(out);
    if (!type) {
        put_clean_n(out, json, len, 0);
    } else if (!strcmp(type, "delivery.state")) {
        line_delivery(out, o);
    } else if (!strcmp(type, "event.normalized")) {
        line_normalized(out, o);
    } else if (!strcmp(type, "event.received") ||
               !strcmp(type, "event.unparsed")) {
        put_origin(out, o);
        if (str(o, "reason")) {
            put_sep(out);
            put_clean(out, str(o, "reason"), 120);
        }
    } else if (!strcmp(type, "connector.state")) {
        put_clean(out, str(o, "connector") ? str(o, "connector") : "?", 0);
        put_sep(out);
        put_clean(out, str(o, "state") ? str(o, "state") : "?", 0);
        if (str(o, "reason")) {
            put_sep(out);
            put_clean(out, str(o, "reason"), 120);
        }
    } else {
        char *s = json_dumps(o, JSON_COMPACT);
        put_clean(out, s ? s : "", 0);
        free(s);
    }
    if (type && !strncmp(type, "event.", 6) && str(o, "event_id")) {
        put_sep(out);
        put_clean(out, str(o, "event_id"), 0);
    }
    json_decref(o);
    /* Whatever a field held, nothing reaches the terminal that could
     * move its cursor or change its state. */
    for (size_t k = start; k < out->len; k++) {
        unsigned char c = (unsigned char)out->p[k];
        if (c < 0x20 || c == 0x7f)
            out->p[k] = ' ';
        else if (c == 0xC2 && k + 1 < out->len &&
                 (unsigned char)out->p[k + 1] >= 0x80 &&
                 (unsigned char)out->p[k + 1] <= 0x9F)
            out->p[k] = out->p[k + 1] = ' ';
    }
    return out->oom ? HL_ENOMEM : 0;
}

/* ---- the websocket handshake --------------------------------------------- */

/* The value of header name in an HTTP head, trimmed, into out; 1 when
 * present (the first of that name). */
static int head_get(const char *head, size_t len, const char *name, char *out,
                    size_t cap)
{
    size_t nl = strlen(name);
    const char *end = head + len;
    const char *p = memchr(head, '\n', len);
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (ll > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl &&
                   (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r'))
                vl--;
            snprintf(out, cap, "%.*s", (int)vl, v);
            return 1;
        }
        p = eol;
    }
    return 0;
}

/* Whether the comma-separated list holds token (case-insensitive). */
static int list_has(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t k = n;
        while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        if (k == tl && !strncasecmp(p, token, tl))
            return 1;
        p += n;
    }
    return 0;
}

int hl_cli_ws_answer(const char *head, size_t len, const char *key,
                     const char **why)
{
    char v[256];
    if (len < 13 ||
        (memcmp(head, "HTTP/1.1 ", 9) && memcmp(head, "HTTP/1.0 ", 9)) ||
        !isdigit((unsigned char)head[9]) || !isdigit((unsigned char)head[10]) ||
        !isdigit((unsigned char)head[11]) ||
        isdigit((unsigned char)head[12])) {
        *why = "the answer is not HTTP; is it hookline's address?";
        return -1;
    }
    int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 +
                 (head[11] - '0');
    if (status != 101)
        return status;
    if (!head_get(head, len, "Upgrade", v, sizeof v) ||
        !list_has(v, "websocket")) {
        *why = "the 101 answer does not upgrade to websocket";
        return -1;
    }
    if (!head_get(head, len, "Connection", v, sizeof v) ||
        !list_has(v, "upgrade")) {
        *why = "the 101 answer has no Connection: Upgrade";
        return -1;
    }
    char want[29];
    hl_ws_accept_of(key, want);
    if (!head_get(head, len, "Sec-WebSocket-Accept", v, sizeof v) ||
        strcmp(v, want)) {
        *why = "Sec-WebSocket-Accept does not match the key sent";
        return -1;
    }
    return 0;
}

/* ---- tail: the connection ------------------------------------------------ */

static volatile sig_atomic_t g_stop;
static int g_wake[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    g_stop = 1;
    if (g_wake[1] >= 0) {
        ssize_t n = write(g_wake[1], "x", 1);
        (void)n;
    }
    errno = saved;
}

typedef struct {
    const cli *c;
    CURL *h;
    curl_socket_t fd;
    hl_ws_parser parser;
    long long last_seq;        /* of the last message; -1: none yet */
    long long resume;          /* reconnect from here (lagged); -1: do not */
    int closing;               /* our close was sent */
    int done;                  /* stop reading */
    int status;                /* the exit status once done */
    char err[CURL_ERROR_SIZE]; /* libcurl's words, as long as h lives */
} tail;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until t's socket is ready for events, until deadline (ms on the
 * monotonic clock; 0: none). 1 ready, 0 timed out, -1 a signal asked to
 * stop (only when watch_signal). */
static int wait_ready(const tail *t, short events, int64_t deadline,
                      int watch_signal)
{
    for (;;) {
        if (watch_signal && g_stop)
            return -1;
        struct pollfd p[2] = {{.fd = t->fd, .events = events},
                              {.fd = g_wake[0], .events = POLLIN}};
        int ms = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return 0;
            ms = (int)left;
        }
        int n = poll(p, watch_signal ? 2 : 1, ms);
        if (n < 0 && errno != EINTR)
            return 1; /* let the next read or write say what is wrong */
        if (n > 0 && p[0].revents)
            return 1;
    }
}

/* Send all of data within the timeout. 0, or -1 (the connection is gone). */
static int send_all(tail *t, const void *data, size_t len)
{
    int64_t deadline = now_ms() + TIMEOUT_MS;
    const char *p = data;
    while (len) {
        size_t n = 0;
        CURLcode e = curl_easy_send(t->h, p, len, &n);
        if (e == CURLE_AGAIN) {
            if (!wait_ready(t, POLLOUT, deadline, 0))
                return -1;
            continue;
        }
        if (e != CURLE_OK)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

/* One frame, masked with fresh random bytes as a client must. 0, or -1
 * (the connection is gone). */
static int send_frame(tail *t, int opcode, const void *data, size_t len)
{
    uint8_t mask[4];
    if (RAND_bytes(mask, sizeof mask) != 1)
        return -1;
    hl_buf b;
    hl_buf_init(&b, NULL, 0);
    int rc = hl_ws_frame(&b, opcode, data, len, mask);
    if (!rc)
        rc = send_all(t, b.p, b.len);
    hl_buf_free(&b);
    return rc;
}

/* A close frame with code (0: none). */
static int send_close(tail *t, uint16_t code)
{
    uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return send_frame(t, HL_WS_CLOSE, pl, code ? 2 : 0);
}

/* Connect (TLS for https) within the timeout. 0, or the exit status. */
static int tail_connect(tail *t)
{
    const char *cmd = t->c->sp->name;
    hl_buf url;
    hl_buf_init(&url, NULL, 0);
    t->err[0] = 0;
    bprintf(&url, "%s://%s/", t->c->url.tls ? "https" : "http",
            t->c->url.authority);
    if (url.oom || !(t->h = curl_easy_init())) {
        hl_buf_free(&url);
        fprintf(stderr, "hookline %s: out of memory\n", cmd);
        return 1;
    }
    CURLcode e = CURLE_OK;
    SET(t->h, CURLOPT_URL, url.p);
    SET(t->h, CURLOPT_CONNECT_ONLY, 1L);
    SET(t->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(t->h, CURLOPT_CONNECTTIMEOUT_MS, (long)TIMEOUT_MS);
    SET(t->h, CURLOPT_TCP_KEEPALIVE, 1L);
    SET(t->h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    SET(t->h, CURLOPT_NOSIGNAL, 1L);
    SET(t->h, CURLOPT_ERRORBUFFER, t->err);
    if (e == CURLE_OK)
        e = curl_easy_perform(t->h);
    if (e == CURLE_OK)
        e = curl_easy_getinfo(t->h, CURLINFO_ACTIVESOCKET, &t->fd);
    if (e == CURLE_OK && t->fd == CURL_SOCKET_BAD)
        e = CURLE_COULDNT_CONNECT;
    if (e != CURLE_OK) {
        long os_errno = 0;
        if (curl_easy_getinfo(t->h, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
            os_errno = 0;
        report_unreachable(cmd, t->c->url.base, e, os_errno, t->err);
    }
    hl_buf_free(&url);
    return e == CURLE_OK ? 0 : 1;
}

/* The opening handshake's request, asking for what follows since (NULL:
 * live only). */
static void upgrade_request(const tail *t, const char *since, const char *key,
                            hl_buf *req)
{
    const cli *c = t->c;
    hl_buf path;
    hl_buf_init(&path, NULL, 0);
    hl_buf_puts(&path, c->url.path);
    hl_buf_puts(&path, "/v1/stream");
    static const int keys[] = {F_TENANT, F_SOURCE, F_CONNECTOR, F_TYPES};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (c->filter[keys[i]])
            hl_cli_query_add(&path, filter_names[keys[i]], c->filter[keys[i]]);
    if (since)
        hl_cli_query_add(&path, "since", since);
    bprintf(req,
            "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hookline/" HL_VERSION
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
            path.oom ? "/" : path.p, c->url.authority, key);
    if (c->token)
        bprintf(req, "Authorization: Bearer %s\r\n", c->token);
    hl_buf_puts(req, "\r\n");
    if (path.oom)
        req->oom = 1;
    hl_buf_free(&path);
}

/* Read into b until it holds want bytes (0: the end of the head), the
 * connection ends or the deadline passes. 1 done, 0 ended or timed out, -1
 * stopped by a signal. */
static int read_until(tail *t, hl_buf *b, size_t want, size_t *head_len,
                      int64_t deadline)
{
    for (;;) {
        if (want ? b->len >= want : 0)
            return 1;
        if (!want && b->len >= 4) {
            const char *e = memmem(b->p, b->len, "\r\n\r\n", 4);
            if (e) {
                *head_len = (size_t)(e - b->p) + 4;
                return 1;
            }
        }
        if (b->len > (want ? want : HEAD_MAX) || b->oom)
            return 0;
        char tmp[4096];
        size_t n = 0;
        CURLcode e = curl_easy_recv(t->h, tmp, sizeof tmp, &n);
        if (e == CURLE_AGAIN) {
            int w = wait_ready(t, POLLIN, deadline, 1);
            if (w <= 0)
                return w;
            continue;
        }
        if (e != CURLE_OK || !n)
            return 0;
        hl_buf_put(b, tmp, n);
    }
}

/* The refusal of a handshake answered with status: its body, reported. */
static int handshake_refused(tail *t, hl_buf *in, size_t head_len, int status,
                             int64_t deadline)
{
    char v[32];
    size_t want = head_len;
    if (head_get(in->p, head_len, "Content-Length", v, sizeof v)) {
        long n = strtol(v, NULL, 10);
        want += n > 0 && n < ERROR_BODY_MAX ? (size_t)n : 0;
    }
    if (want > head_len)
        read_until(t, in, want, &head_len, deadline);
    size_t len = in->len > want ? want - head_len : in->len - head_len;
    if (status < 400) {
        fprintf(stderr,
                "hookline %s: %s answered HTTP %d instead of opening the "
                "websocket; is it hookline's address? (a proxy in between "
                "must pass Upgrade)\n",
                t->c->sp->name, t->c->url.base, status);
        return 1;
    }
    report_refusal(t->c, status, in->p + head_len, len);
    return 1;
}

/* Connect and upgrade. -1 to go on, with the bytes past the answer's head
 * left in in; else the exit status. */
static int tail_open(tail *t, const char *since, hl_buf *in)
{
    const char *cmd = t->c->sp->name;
    int rc = tail_connect(t);
    if (rc)
        return rc;
    uint8_t raw[16];
    char key[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        fprintf(stderr, "hookline %s: no random bytes for the key\n", cmd);
        return 1;
    }
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    hl_buf req;
    hl_buf_init(&req, NULL, 0);
    upgrade_request(t, since, key, &req);
    rc = req.oom ? -1 : send_all(t, req.p, req.len);
    hl_buf_free(&req);
    if (rc) {
        fprintf(stderr,
                "hookline %s: %s closed the connection before the "
                "handshake\n",
                cmd, t->c->url.base);
        return 1;
    }
    size_t head_len = 0;
    int64_t deadline = now_ms() + TIMEOUT_MS;
    rc = read_until(t, in, 0, &head_len, deadline);
    if (rc < 0)
        return 0; /* stopped before it began */
    if (!rc) {
        fprintf(stderr,
                "hookline %s: %s gave no answer to the websocket handshake "
                "(within %d s and %d bytes); is it hookline's address?\n",
                cmd, t->c->url.base, TIMEOUT_MS / 1000, HEAD_MAX);
        return 1;
    }
    const char *why = NULL;
    int status = hl_cli_ws_answer(in->p, head_len, key, &why);
    if (status > 0)
        return handshake_refused(t, in, head_len, status, deadline);
    if (status < 0) {
        fprintf(stderr, "hookline %s: %s: %s\n", cmd, t->c->url.base, why);
        return 1;
    }
    memmove(in->p, in->p + head_len, in->len - head_len);
    in->len -= head_len;
    return -1;
}

/* ---- tail: the messages -------------------------------------------------- */

static int on_text(tail *t, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *type = str(o, "type");
    if (type && !strcmp(type, "lagged")) {
        json_t *last = json_object_get(o, "last_seq");
        t->resume = json_is_integer(last) ? (long long)json_integer_value(last)
                                          : t->last_seq;
        if (t->resume < 0)
            t->resume = 0;
        fprintf(stderr,
                "hookline %s: fell behind the stream and was dropped after "
                "seq %lld; reconnecting from there\n",
                t->c->sp->name, t->resume);
        json_decref(o);
        t->done = 1;
        return 1;
    }
    json_t *seq = json_object_get(o, "seq");
    if (json_is_integer(seq))
        t->last_seq = (long long)json_integer_value(seq);
    json_decref(o);
    if (t->c->json) {
        fwrite(data, 1, len, stdout);
        putchar('\n');
    } else {
        hl_buf b;
        hl_buf_init(&b, NULL, 0);
        if (hl_cli_note_line(data, len, &b) == HL_ESYNTAX) {
            hl_buf_free(&b);
            put_clean_n(&b, data, len, 0);
        }
        puts(b.p ? b.p : "");
        hl_buf_free(&b);
    }
    fflush(stdout);
    return 0;
}

/* The server's close: answered, and what it means for the exit status. */
static int on_close(tail *t, const hl_ws_message *m)
{
    const char *cmd = t->c->sp->name;
    uint16_t code = m->close_code;
    t->done = 1;
    if (t->closing) /* the answer to ours */
        return 1;
    send_close(t, code == HL_WS_NO_STATUS ? 0 : code);
    char reason[HL_WS_MAX_CONTROL + 1];
    snprintf(reason, sizeof reason, "%.*s", (int)m->close_reason_len,
             m->close_reason ? m->close_reason : "");
    hl_buf r;
    hl_buf_init(&r, NULL, 0);
    put_clean(&r, reason, 0);
    const char *why = r.p && *r.p ? r.p : "no reason given";
    char resume[64] = "";
    if (t->last_seq >= 0)
        snprintf(resume, sizeof resume, "; resume with --since %lld",
                 t->last_seq);
    if (code == HL_WS_POLICY && !strcmp(reason, "lagged")) {
        t->resume = t->last_seq >= 0 ? t->last_seq : 0;
        fprintf(stderr,
                "hookline %s: fell behind the stream and was dropped; "
                "reconnecting from seq %lld\n",
                cmd, t->resume);
    } else if (code == HL_WS_GOING_AWAY) {
        fprintf(stderr,
                "hookline %s: hookline is going away (close 1001: "
                "%s)%s\n",
                cmd, why, resume);
        t->status = 0;
    } else if (code == HL_WS_NORMAL || code == HL_WS_NO_STATUS) {
        fprintf(stderr, "hookline %s: the engine ended the stream%s\n", cmd,
                resume);
        t->status = 0;
    } else {
        fprintf(stderr,
                "hookline %s: the engine closed the stream (close "
                "%u: %s)%s\n",
                cmd, (unsigned)code, why, resume);
        t->status = 1;
    }
    hl_buf_free(&r);
    return 1;
}

static int on_message(void *ud, const hl_ws_message *m)
{
    tail *t = ud;
    switch (m->opcode) {
    case HL_WS_TEXT: return on_text(t, m->data, m->len);
    case HL_WS_PING:
        if (!t->closing)
            send_frame(t, HL_WS_PONG, m->data, m->len);
        return 0;
    case HL_WS_CLOSE: return on_close(t, m);
    default: return 0; /* binary messages and pongs mean nothing here */
    }
}

static void feed(tail *t, const char *data, size_t len)
{
    int code = hl_ws_parser_feed(&t->parser, data, len, on_message, t);
    if (code > 1 && !t->done) {
        fprintf(stderr, "hookline %s: the engine sent a bad frame: %s\n",
                t->c->sp->name,
                t->parser.error ? t->parser.error : "protocol error");
        send_close(t, (uint16_t)code);
        t->done = 1;
        t->status = 1;
    }
}

/* Ctrl-C: say goodbye, and give the server a moment to answer. */
static int64_t begin_close(tail *t)
{
    t->status = 0;
    if (send_close(t, HL_WS_NORMAL)) {
        t->done = 1;
        return 0;
    }
    t->closing = 1;
    return now_ms() + CLOSE_WAIT_MS;
}

static void connection_lost(tail *t, const char *how)
{
    t->done = 1;
    if (t->closing) /* we were leaving anyway */
        return;
    t->status = 1;
    if (t->last_seq >= 0)
        fprintf(stderr,
                "hookline %s: %s after seq %lld; resume with: hookline tail "
                "--since %lld\n",
                t->c->sp->name, how, t->last_seq, t->last_seq);
    else
        fprintf(stderr, "hookline %s: %s\n", t->c->sp->name, how);
}

/* Read and handle frames until the stream ends or a signal stops it. */
static void tail_read(tail *t)
{
    int64_t deadline = 0;
    while (!t->done) {
        int w = wait_ready(t, POLLIN, deadline, !t->closing);
        if (w < 0) {
            deadline = begin_close(t);
            continue;
        }
        if (!w) { /* no answer to our close: leave anyway */
            t->done = 1;
            break;
        }
        for (;;) {
            char buf[16384];
            size_t n = 0;
            CURLcode e = curl_easy_recv(t->h, buf, sizeof buf, &n);
            if (e == CURLE_AGAIN)
                break;
            if (e != CURLE_OK || !n) {
                connection_lost(t, e != CURLE_OK
                                       ? "the connection failed"
                                       : "the engine closed the connection");
                break;
            }
            feed(t, buf, n);
            if (t->done)
                break;
        }
    }
}

/* One connection, from since (NULL: live). The exit status; t->resume set
 * when it should go on from there. */
static int tail_once(tail *t, const char *since)
{
    hl_buf in;
    hl_buf_init(&in, NULL, 0);
    t->h = NULL;
    t->fd = CURL_SOCKET_BAD;
    t->closing = t->done = t->status = 0;
    t->resume = -1;
    hl_ws_parser_init(&t->parser, STREAM_MESSAGE_MAX, 0);
    int rc = tail_open(t, since, &in);
    if (rc < 0) {
        fprintf(stderr,
                "hookline %s: following %s/v1/stream%s%s%s "
                "(Ctrl-C to stop)\n",
                t->c->sp->name, t->c->url.base, since ? " from seq " : "",
                since ? since : "", since ? "" : ", live");
        if (in.len)
            feed(t, in.p, in.len);
        tail_read(t);
        rc = t->status;
    }
    hl_ws_parser_close(&t->parser);
    hl_buf_free(&in);
    curl_easy_cleanup(t->h);
    t->h = NULL;
    return rc;
}

static const spec spec_tail = {
    .name = "tail",
    .usage = hl_cli_usage_tail,
    .filters = BIT(F_TENANT) | BIT(F_SOURCE) | BIT(F_CONNECTOR) | BIT(F_TYPES) |
               BIT(F_SINCE),
};

/* Ctrl-C and SIGTERM wake the poll through a pipe. 0, or -errno. */
static int signals_on(struct sigaction *old_int, struct sigaction *old_term)
{
    if (pipe2(g_wake, O_CLOEXEC | O_NONBLOCK))
        return -errno;
    g_stop = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, old_int))
        goto fail;
    if (sigaction(SIGTERM, &sa, old_term)) {
        sigaction(SIGINT, old_int, NULL);
        goto fail;
    }
    return 0;
fail:;
    int err = -errno;
    close(g_wake[0]);
    close(g_wake[1]);
    g_wake[0] = g_wake[1] = -1;
    return err;
}

static void signals_off(const struct sigaction *old_int,
                        const struct sigaction *old_term)
{
    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGTERM, old_term, NULL);
    close(g_wake[0]);
    close(g_wake[1]);
    g_wake[0] = g_wake[1] = -1;
}

int hl_cli_tail(int argc, char **argv)
{
    cli c;
    int rc = start(&spec_tail, argc, argv, &c);
    if (rc >= 0)
        return rc;
    struct sigaction old_int, old_term;
    int err = signals_on(&old_int, &old_term);
    if (err) {
        fprintf(stderr, "hookline tail: cannot watch for Ctrl-C: %s\n",
                strerror(-err));
        return finish(&c, 1);
    }
    tail t = {.c = &c, .last_seq = -1};
    char since[32];
    const char *from = c.filter[F_SINCE];
    for (;;) {
        rc = tail_once(&t, from);
        if (t.resume < 0 || g_stop)
            break;
        snprintf(since, sizeof since, "%lld", t.resume);
        from = since;
    }
    signals_off(&old_int, &old_term);
    return finish(&c, rc);
}
