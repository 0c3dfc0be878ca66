/* mime.h - the email connector's message text: addresses, headers, parts. */
#ifndef HOOKLINE_EMAIL_MIME_H
#define HOOKLINE_EMAIL_MIME_H

/*
 * Plain C, no hookline API: everything here can be checked on its own.
 * Every line written ends in CRLF; header lines are folded to at most 78
 * octets where a place to fold exists, and body lines are at most 76, so no
 * line comes near SMTP's 998 and none is a lone "." (quoted-printable
 * writes a leading dot as =2E; base64 has no dots).
 */

#include <stddef.h>
#include <stdint.h>

/* A growing text. oom is set by the first allocation that fails; the
 * writers then do nothing, so a caller checks it once at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} mime_buf;

void mime_buf_free(mime_buf *b);
void mime_put(mime_buf *b, const char *s, size_t n);
void mime_puts(mime_buf *b, const char *s);

/* One mailbox: a display name (possibly empty) and an address. */
typedef struct {
    char *name;
    char *addr;
} mime_mailbox;

/* Parse "addr" or "Display Name <addr>" (the name may be quoted). On a
 * problem returns -1 with why saying what to fix; *m is then empty. */
int mime_mailbox_parse(const char *s, mime_mailbox *m, char *why,
                       size_t whylen);
void mime_mailbox_free(mime_mailbox *m);

/* "Name: a, b, c" with the mailboxes, folded between them. */
void mime_header_mailboxes(mime_buf *b, const char *name, const mime_mailbox *v,
                           size_t n);
/* "Name: value" for unstructured text (Subject): as it is when it is short
 * printable ASCII, else RFC 2047 encoded-words (=?UTF-8?B?...?=), folded. */
void mime_header_text(mime_buf *b, const char *name, const char *value);
/* "Name: value" written as is (value must be one short line of ASCII). */
void mime_header(mime_buf *b, const char *name, const char *value);

/* Control characters (CR and LF among them) become spaces, runs of spaces
 * one, and leading and trailing spaces go: a header value that cannot
 * start another header. In place. */
void mime_one_line(char *s);

/* The RFC 5322 date of a Unix time in milliseconds, in UTC:
 * "Thu, 17 Sep 2026 14:13:20 +0000". */
void mime_date(int64_t ms, char out[40]);

/* A body part's Content-Type and Content-Transfer-Encoding headers, the
 * blank line and the text (any line ends) encoded as quoted-printable, or
 * base64 when most of it is not ASCII; ends with CRLF. */
void mime_part(mime_buf *b, const char *content_type, const char *text,
               size_t len);

#endif
