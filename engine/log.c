/* log.c - leveled, structured logging to stderr (text or JSON lines). */
#include "log.h"

#include "err.h"
#include "jsontext.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int g_level = HL_LOG_INFO;
static _Atomic int g_format = HL_LOG_TEXT;
static FILE *g_stream;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hl_log_setup(hl_log_level level, hl_log_format format)
{
    atomic_store(&g_level, (int)level);
    atomic_store(&g_format, (int)format);
}

void hl_log_set_stream(FILE *f)
{
    pthread_mutex_lock(&g_lock);
    g_stream = f;
    pthread_mutex_unlock(&g_lock);
}

hl_log_level hl_log_get_level(void)
{
    return (hl_log_level)atomic_load(&g_level);
}

const char *hl_log_level_name(hl_log_level level)
{
    if ((unsigned)level >= sizeof level_names / sizeof *level_names)
        return "unknown";
    return level_names[level];
}

int hl_log_level_parse(const char *s, hl_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof *level_names; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (hl_log_level)i;
            return 0;
        }
    }
    return HL_ESYNTAX;
}

int hl_log_format_parse(const char *s, hl_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = HL_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = HL_LOG_JSON;
    else
        return HL_ESYNTAX;
    return 0;
}

/* A growable line buffer; on allocation failure it keeps what fits. */
typedef struct {
    char *p;
    size_t len, cap;
    char small[1024];
} linebuf;

static void lb_put(linebuf *b, const char *s, size_t n)
{
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *np = b->p == b->small ? malloc(cap) : realloc(b->p, cap);
        if (!np)
            return;
        if (b->p == b->small)
            memcpy(np, b->small, b->len);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void lb_puts(linebuf *b, const char *s)
{
    lb_put(b, s, strlen(s));
}

/* JSON string body escaping (no quotes). */
static void lb_json(linebuf *b, const char *s)
{
    char small[256];
    size_t need = hl_json_escape(small, sizeof small, s);
    if (need < sizeof small) {
        lb_put(b, small, need);
        return;
    }
    char *big = malloc(need + 1);
    if (!big)
        return;
    hl_json_escape(big, need + 1, s);
    lb_put(b, big, need);
    free(big);
}

/* Text values are quoted when they hold spaces, quotes or '='. */
static void lb_text_value(linebuf *b, const char *s)
{
    if (s[0] && !strpbrk(s, " \t\n\"=")) {
        lb_puts(b, s);
        return;
    }
    lb_put(b, "\"", 1);
    lb_json(b, s);
    lb_put(b, "\"", 1);
}

static void timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void hl_logv(hl_log_level level, const char *subsys, const char *msg,
             va_list kv)
{
    if ((int)level < atomic_load(&g_level))
        return;
    linebuf b = {.p = NULL, .len = 0, .cap = sizeof b.small};
    b.p = b.small;
    char ts[32];
    timestamp(ts);
    int json = atomic_load(&g_format) == HL_LOG_JSON;
    if (json) {
        lb_puts(&b, "{\"ts\":\"");
        lb_puts(&b, ts);
        lb_puts(&b, "\",\"level\":\"");
        lb_puts(&b, hl_log_level_name(level));
        lb_puts(&b, "\",\"subsys\":\"");
        lb_json(&b, subsys);
        lb_puts(&b, "\",\"msg\":\"");
        lb_json(&b, msg);
        lb_puts(&b, "\"");
    } else {
        static const char *const tags[] = {"DEBUG", "INFO ", "WARN ",
                                           "ERROR"};
        lb_puts(&b, ts);
        lb_puts(&b, " ");
        lb_puts(&b, tags[level]);
        lb_puts(&b, " ");
        lb_puts(&b, subsys);
        lb_puts(&b, ": ");
        lb_puts(&b, msg);
    }
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (!k)
            break;
        const char *v = va_arg(kv, const char *);
        if (json) {
            lb_puts(&b, ",\"");
            lb_json(&b, k);
            lb_puts(&b, "\":");
            if (v) {
                lb_puts(&b, "\"");
                lb_json(&b, v);
                lb_puts(&b, "\"");
            } else {
                lb_puts(&b, "null");
            }
        } else {
            lb_puts(&b, " ");
            lb_puts(&b, k);
            lb_puts(&b, "=");
            lb_text_value(&b, v ? v : "null");
        }
    }
    if (json)
        lb_puts(&b, "}");
    lb_puts(&b, "\n");
    pthread_mutex_lock(&g_lock);
    FILE *f = g_stream ? g_stream : stderr;
    fwrite(b.p, 1, b.len, f);
    fflush(f);
    pthread_mutex_unlock(&g_lock);
    if (b.p != b.small)
        free(b.p);
}

void hl_log(hl_log_level level, const char *subsys, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    hl_logv(level, subsys, msg, ap);
    va_end(ap);
}
