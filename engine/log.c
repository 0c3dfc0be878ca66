/* log.c - leveled, structured logging to stderr (text or JSON lines). */
#include "log.h"

#include "err.h"
#include "buf.h"

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

/* Text values are quoted when they hold spaces, quotes or '='. */
static void text_value(hl_buf *b, const char *s)
{
    if (s[0] && !strpbrk(s, " \t\n\"=")) {
        hl_buf_puts(b, s);
        return;
    }
    hl_buf_puts(b, "\"");
    hl_buf_json(b, s);
    hl_buf_puts(b, "\"");
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
    char small[1024];
    hl_buf b;
    hl_buf_init(&b, small, sizeof small);
    char ts[32];
    timestamp(ts);
    int json = atomic_load(&g_format) == HL_LOG_JSON;
    if (json) {
        hl_buf_puts(&b, "{\"ts\":\"");
        hl_buf_puts(&b, ts);
        hl_buf_puts(&b, "\",\"level\":\"");
        hl_buf_puts(&b, hl_log_level_name(level));
        hl_buf_puts(&b, "\",\"subsys\":\"");
        hl_buf_json(&b, subsys);
        hl_buf_puts(&b, "\",\"msg\":\"");
        hl_buf_json(&b, msg);
        hl_buf_puts(&b, "\"");
    } else {
        static const char *const tags[] = {"DEBUG", "INFO ", "WARN ",
                                           "ERROR"};
        hl_buf_puts(&b, ts);
        hl_buf_puts(&b, " ");
        hl_buf_puts(&b, tags[level]);
        hl_buf_puts(&b, " ");
        hl_buf_puts(&b, subsys);
        hl_buf_puts(&b, ": ");
        hl_buf_puts(&b, msg);
    }
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (!k)
            break;
        const char *v = va_arg(kv, const char *);
        if (json) {
            hl_buf_puts(&b, ",\"");
            hl_buf_json(&b, k);
            hl_buf_puts(&b, "\":");
            if (v) {
                hl_buf_puts(&b, "\"");
                hl_buf_json(&b, v);
                hl_buf_puts(&b, "\"");
            } else {
                hl_buf_puts(&b, "null");
            }
        } else {
            hl_buf_puts(&b, " ");
            hl_buf_puts(&b, k);
            hl_buf_puts(&b, "=");
            text_value(&b, v ? v : "null");
        }
    }
    if (json)
        hl_buf_puts(&b, "}");
    hl_buf_puts(&b, "\n");
    pthread_mutex_lock(&g_lock);
    FILE *f = g_stream ? g_stream : stderr;
    fwrite(b.p, 1, b.len, f);
    fflush(f);
    pthread_mutex_unlock(&g_lock);
    hl_buf_free(&b);
}

void hl_log(hl_log_level level, const char *subsys, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    hl_logv(level, subsys, msg, ap);
    va_end(ap);
}
