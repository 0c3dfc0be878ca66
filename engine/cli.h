/* cli.h - the operator's commands over a running engine: the admin API (events, deliveries, retry, replay, pause, resume, status) and the live stream (tail). */
#ifndef HL_CLI_H
#define HL_CLI_H

#include "buf.h"

#include <stddef.h>

/*
 * The commands. argv[0] is the command's name; each returns the exit
 * status: 0 done, 1 the engine refused or could not be reached (the reason
 * on stderr), 2 bad usage (the usage text on stderr).
 */
int hl_cli_events(int argc, char **argv);
int hl_cli_deliveries(int argc, char **argv);
int hl_cli_retry(int argc, char **argv);
int hl_cli_replay(int argc, char **argv);
int hl_cli_pause(int argc, char **argv);
int hl_cli_resume(int argc, char **argv);
int hl_cli_status(int argc, char **argv);
int hl_cli_tail(int argc, char **argv);

/* Their help texts. */
extern const char hl_cli_usage_events[];
extern const char hl_cli_usage_deliveries[];
extern const char hl_cli_usage_retry[];
extern const char hl_cli_usage_replay[];
extern const char hl_cli_usage_pause[];
extern const char hl_cli_usage_resume[];
extern const char hl_cli_usage_status[];
extern const char hl_cli_usage_tail[];

/* An engine's address: http[s]://HOST[:PORT][/PREFIX]. */
typedef struct {
    int tls;             /* https */
    char authority[300]; /* HOST[:PORT] as written: the Host header */
    char path[1024];     /* the prefix, "" or "/a/b" (no trailing '/') */
    char base[1400];     /* scheme://authority/prefix, no trailing '/' */
} hl_cli_url;

/* Split url. 0, or HL_ESYNTAX with *why a static reason. */
int hl_cli_url_parse(const char *url, hl_cli_url *out, const char **why);

/* Append "?name=value", or "&name=value" when b already holds a '?', with
 * value percent-encoded (everything but A-Z a-z 0-9 - . _ ~). */
void hl_cli_query_add(hl_buf *b, const char *name, const char *value);

/* One message of the stream (a JSON object) as one readable line, without
 * a newline, control characters replaced:
 *   seq 12  07:39:49.602  delivery.state  acme/demo → sink  delivered
 *   attempt 1  HTTP 200  01M8...
 * 0, HL_ESYNTAX (not a JSON object) or HL_ENOMEM. */
int hl_cli_note_line(const char *json, size_t len, hl_buf *out);

/* The answer to a websocket opening handshake sent with key: head is the
 * status line and headers up to the blank line. 0 when it is a 101 that
 * accepts key; the status when it is another; -1 when it is no HTTP
 * answer or a 101 that does not accept key, with *why a static reason. */
int hl_cli_ws_answer(const char *head, size_t len, const char *key,
                     const char **why);

#endif
