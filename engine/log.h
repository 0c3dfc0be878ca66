/* log.h - leveled, structured logging to stderr (text or JSON lines). */
#ifndef HL_LOG_H
#define HL_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum {
    HL_LOG_DEBUG,
    HL_LOG_INFO,
    HL_LOG_WARN,
    HL_LOG_ERROR,
} hl_log_level;

typedef enum {
    HL_LOG_TEXT,
    HL_LOG_JSON,
} hl_log_format;

/* Set the threshold and the format; safe to call while other threads log. */
void hl_log_setup(hl_log_level level, hl_log_format format);
/* Redirect output (tests); NULL restores stderr. */
void hl_log_set_stream(FILE *f);
hl_log_level hl_log_get_level(void);

/* Parse "debug|info|warn|error" / "text|json"; return 0 or HL_ESYNTAX. */
int hl_log_level_parse(const char *s, hl_log_level *out);
int hl_log_format_parse(const char *s, hl_log_format *out);
const char *hl_log_level_name(hl_log_level level);

/*
 * Log one line: msg, then key and value string pairs, ended by NULL:
 *   hl_log(HL_LOG_INFO, "http", "listening", "addr", "127.0.0.1:8080", NULL);
 * A NULL value prints as null. The line is written with a single write.
 */
void hl_log(hl_log_level level, const char *subsys, const char *msg, ...);
void hl_logv(hl_log_level level, const char *subsys, const char *msg,
             va_list kv);

#define HL_DEBUG(sub, ...) hl_log(HL_LOG_DEBUG, sub, __VA_ARGS__, NULL)
#define HL_INFO(sub, ...) hl_log(HL_LOG_INFO, sub, __VA_ARGS__, NULL)
#define HL_WARN(sub, ...) hl_log(HL_LOG_WARN, sub, __VA_ARGS__, NULL)
#define HL_ERROR(sub, ...) hl_log(HL_LOG_ERROR, sub, __VA_ARGS__, NULL)

#endif
