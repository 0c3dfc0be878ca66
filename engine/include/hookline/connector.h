/* hookline/connector.h - the connector SDK: the one header a connector plugin includes. */
#ifndef HOOKLINE_CONNECTOR_H
#define HOOKLINE_CONNECTOR_H

/*
 * A connector turns a canonical event into a request, and a response into an
 * outcome. It is pure: hookline owns every socket, timer, retry, rate limit
 * and redaction, and calls the connector only to render and to classify. A
 * connector can be tested without a network.
 *
 * A plugin is a shared object exporting one function, named by
 * HLC_ENTRY_SYMBOL, that returns a const descriptor (hlc_connector). Write
 * it with HLC_DEFINE_CONNECTOR and build with -fvisibility=hidden:
 *
 *     static const hlc_connector desc = {
 *         .abi_version = HLC_ABI_VERSION,
 *         .struct_size = sizeof(hlc_connector),
 *         .name = "hello", .version = "1.0.0",
 *         .description = "posts a greeting",
 *         .keys = keys,
 *         .create = create, .render = render, .destroy = destroy,
 *     };
 *     HLC_DEFINE_CONNECTOR(desc)
 *
 * Compatibility: the ABI version is major << 16 | minor. hookline loads a
 * plugin whose major version equals its own; the structures below only ever
 * grow at their end (a minor version), and each starts with its size, so
 * either side checks the size before it touches a newer field.
 *
 * Threads: hookline calls create and destroy on its main thread, and render
 * and classify on its dispatcher thread, one call at a time per instance.
 * Every function of hlc_api may be called from inside any of them.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HLC_ABI_MAJOR 1
#define HLC_ABI_MINOR 1
#define HLC_ABI_VERSION ((uint32_t)(HLC_ABI_MAJOR << 16 | HLC_ABI_MINOR))
#define HLC_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define HLC_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

#define HLC_ENTRY_SYMBOL "hookline_connector_entry"

#if defined(__GNUC__) || defined(__clang__)
#define HLC_EXPORT __attribute__((visibility("default")))
#else
#define HLC_EXPORT
#endif

/* Opaque things the host owns; the connector only holds pointers to them. */
typedef struct hlc_json hlc_json;         /* a JSON value */
typedef struct hlc_config hlc_config;     /* one instance's configuration */
typedef struct hlc_instance hlc_instance; /* one configured connector */
typedef struct hlc_request hlc_request;   /* what render fills in */
typedef struct hlc_response hlc_response; /* what classify reads */
typedef struct hlc_template hlc_template; /* a compiled Mustache template */

/* ---- configuration keys -------------------------------------------------- */

typedef enum {
    HLC_KEY_STRING = 1,
    HLC_KEY_SECRET,   /* a string never printed or logged */
    HLC_KEY_INT,      /* a whole number */
    HLC_KEY_BOOL,     /* true | false */
    HLC_KEY_DURATION, /* "500ms", "15s", "2m": read in milliseconds */
    HLC_KEY_SIZE,     /* "512KiB", "1MiB": read in bytes */
    HLC_KEY_LIST,     /* a list of strings */
    HLC_KEY_MAP,      /* a mapping of strings to strings (e.g. headers) */
    HLC_KEY_TEMPLATE, /* a Mustache template, checked when loaded */
} hlc_key_type;

enum {
    HLC_KEY_REQUIRED = 1u << 0,
};

/*
 * One key of a connector's section in hookline.yaml. Nested keys are
 * written with dots: "signing.hmac.secret" is `signing: {hmac: {secret:
 * ...}}`. hookline checks a section against the table before create runs
 * (unknown keys, types, required keys, choices), reports problems with
 * file:line:col, and prints the table as help (`hookline connectors`).
 * A table ends with an entry whose name is NULL.
 */
typedef struct {
    const char *name;
    uint32_t type;  /* hlc_key_type */
    uint32_t flags; /* HLC_KEY_REQUIRED */
    const char *default_value; /* as written in YAML; NULL: none */
    const char *choices;       /* strings: "a|b|c"; NULL: any */
    const char *description;
} hlc_key;

/* ---- delivery, outcome --------------------------------------------------- */

/* The delivery an event is being rendered or classified for. */
typedef struct {
    uint32_t struct_size;
    uint32_t attempt;           /* 1 for the first */
    const char *delivery_id;    /* stable across attempts: the idempotency key */
    const char *event_id;       /* the canonical event's id */
    const char *correlation_id; /* follows the event from intake on */
    const char *connector;      /* the instance's name in hookline.yaml */
    int64_t now_ms;             /* Unix time in milliseconds */
} hlc_delivery;

typedef enum {
    HLC_DELIVERED = 1, /* the destination has it */
    HLC_RETRY,         /* try again later (retry_after_ms, or the policy) */
    HLC_FAILED,        /* a permanent failure: the dead-letter set */
    HLC_DISABLE,       /* the destination is gone: hold the connector */
} hlc_verdict;

typedef struct {
    uint32_t verdict;       /* hlc_verdict */
    int64_t retry_after_ms; /* HLC_RETRY: at least this long; -1: policy */
    char reason[256];       /* why, for the attempts table and logs */
} hlc_outcome;

/* What render returns. */
typedef enum {
    HLC_RENDER_OK = 0,     /* the request is filled in */
    HLC_RENDER_SKIP = 1,   /* nothing to send for this event: done */
    HLC_RENDER_FAILED = 2, /* the event cannot be sent (err says why) */
    HLC_RENDER_RETRY = 3,  /* a passing problem (err says why) */
} hlc_render_result;

/* Transport errors, as hlc_api.response_error reports them. */
typedef enum {
    HLC_NET_NONE = 0, /* a response arrived */
    HLC_NET_TIMEOUT,
    HLC_NET_DNS,
    HLC_NET_REFUSED,
    HLC_NET_RESET,
    HLC_NET_TLS,
    HLC_NET_BLOCKED, /* the address is not allowed (SSRF guard) */
    HLC_NET_PROTOCOL,
    HLC_NET_ABORTED,
    HLC_NET_OTHER,
} hlc_net_error;

typedef enum {
    HLC_JSON_OBJECT,
    HLC_JSON_ARRAY,
    HLC_JSON_STRING,
    HLC_JSON_INTEGER,
    HLC_JSON_REAL,
    HLC_JSON_TRUE,
    HLC_JSON_FALSE,
    HLC_JSON_NULL,
} hlc_json_type;

typedef enum {
    HLC_ESC_HTML, /* {{x}} escapes & " < > as the Mustache spec says */
    HLC_ESC_JSON, /* {{x}} fits inside a JSON string literal */
    HLC_ESC_NONE,
} hlc_escape;

typedef enum {
    HLC_SHA1,
    HLC_SHA256,
    HLC_SHA512,
} hlc_hash;

typedef enum {
    HLC_ENC_HEX,
    HLC_ENC_BASE64,
} hlc_encoding;

typedef enum {
    HLC_LOG_DEBUG,
    HLC_LOG_INFO,
    HLC_LOG_WARN,
    HLC_LOG_ERROR,
} hlc_log_level;

/* ---- what the host offers ------------------------------------------------ */

/*
 * Functions returning int return 0 on success and a negative number on
 * failure. Strings and JSON values a getter returns are borrowed: they live
 * as long as what they were read from. Memory a function says is
 * "allocated" is freed with free().
 */
typedef struct hlc_api {
    uint32_t abi_version; /* the host's HLC_ABI_VERSION */
    uint32_t struct_size;

    /* Log msg with key, value string pairs, ending with NULL. */
    void (*log)(const hlc_instance *inst, int level, const char *msg, ...);

    /* Allocation, matching free(). */
    void *(*alloc)(size_t n); /* zeroed; NULL when out of memory */
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);

    /* This instance's configuration, already checked against the key
     * table: a value of the right type, its default, or NULL/0 when unset
     * without a default. */
    const char *(*config_string)(const hlc_config *c, const char *key);
    /* INT as is, BOOL 0/1, DURATION in ms, SIZE in bytes. */
    int64_t (*config_int)(const hlc_config *c, const char *key);
    /* Whether the file sets key (or anything under it, for "signing"). */
    int (*config_has)(const hlc_config *c, const char *key);
    /* Items of a LIST or MAP key (0 when unset). config_item returns the
     * i-th list item, or the i-th map key with its value in *value. */
    size_t (*config_count)(const hlc_config *c, const char *key);
    const char *(*config_item)(const hlc_config *c, const char *key,
                               size_t i, const char **value);

    /* JSON: reading (borrowed results; NULL when absent or of another
     * type). */
    int (*json_type)(const hlc_json *v); /* hlc_json_type; -1 for NULL */
    const hlc_json *(*json_get)(const hlc_json *obj, const char *key);
    const hlc_json *(*json_pointer)(const hlc_json *root, const char *ptr);
    const hlc_json *(*json_at)(const hlc_json *arr, size_t i);
    size_t (*json_size)(const hlc_json *v); /* array items, object keys */
    /* Object members in order: i from 0 to json_size - 1. */
    const char *(*json_key_at)(const hlc_json *obj, size_t i,
                               const hlc_json **value);
    const char *(*json_string)(const hlc_json *v);
    int64_t (*json_integer)(const hlc_json *v);
    double (*json_number)(const hlc_json *v); /* integer or real */
    /* JSON: building. New values belong to the caller until json_set or
     * json_append takes them (also when those fail); json_free releases
     * one the caller still holds. Strings must be UTF-8 (NULL if not). */
    hlc_json *(*json_object)(void);
    hlc_json *(*json_array)(void);
    hlc_json *(*json_new_string)(const char *s);
    hlc_json *(*json_new_stringn)(const char *s, size_t n);
    hlc_json *(*json_new_integer)(int64_t v);
    hlc_json *(*json_new_real)(double v);
    hlc_json *(*json_new_bool)(int v);
    hlc_json *(*json_new_null)(void);
    hlc_json *(*json_copy)(const hlc_json *v); /* deep */
    int (*json_set)(hlc_json *obj, const char *key, hlc_json *value);
    int (*json_append)(hlc_json *arr, hlc_json *value);
    int (*json_del)(hlc_json *obj, const char *key);
    /* Compact text (allocated); *len may be NULL. */
    char *(*json_dump)(const hlc_json *v, size_t *len);
    hlc_json *(*json_parse)(const char *text, size_t len); /* NULL: not JSON */
    void (*json_free)(hlc_json *v);

    /* Mustache templates (the spec's full syntax; partials are not used).
     * render returns allocated text, or NULL with err filled. */
    hlc_template *(*template_compile)(const char *src, char *err,
                                      size_t errlen);
    char *(*template_render)(const hlc_template *t, const hlc_json *ctx,
                             int escape, size_t *len, char *err,
                             size_t errlen);
    void (*template_free)(hlc_template *t);

    /* Text: an allocated copy of s cut to at most max_chars characters
     * (UTF-8 aware), ending in ellipsis (counted in max_chars) when cut. */
    char *(*text_truncate)(const char *s, size_t max_chars,
                           const char *ellipsis);

    /* The request render fills in. The host adds an Idempotency-Key
     * header with the delivery id and an X-Request-ID header with the
     * correlation id; request_idempotency_header renames the first (NULL:
     * do not send it, when the connector carries the key another way). */
    int (*request_http)(hlc_request *r, const char *method, const char *url);
    int (*request_header)(hlc_request *r, const char *name,
                          const char *value);
    int (*request_body)(hlc_request *r, const void *body, size_t len);
    const void *(*request_get_body)(const hlc_request *r, size_t *len);
    int (*request_tls)(hlc_request *r, const char *client_cert,
                       const char *client_key, const char *ca_file);
    int (*request_idempotency_header)(hlc_request *r, const char *name);
    /* SMTP: url smtp://host:port or smtps://; the message goes in
     * request_body (RFC 5322 text with CRLF line ends). */
    int (*request_smtp)(hlc_request *r, const char *url, const char *from,
                        const char *const *rcpt, size_t n_rcpt,
                        const char *username, const char *password,
                        int starttls);

    /* The response classify reads. */
    int (*response_status)(const hlc_response *r);  /* 0: none arrived */
    int (*response_error)(const hlc_response *r);   /* hlc_net_error */
    const char *(*response_error_text)(const hlc_response *r);
    /* A header of the response (case-insensitive name); the value lives
     * until the next response_header call. */
    const char *(*response_header)(const hlc_response *r, const char *name);
    const char *(*response_body)(const hlc_response *r, size_t *len);
    /* hookline's own classification: 2xx delivered; 408, 425, 429, 5xx
     * and transport errors retried (Retry-After honoured); 410 disables;
     * other statuses failed. A connector refines it. */
    void (*classify_default)(const hlc_response *r, hlc_outcome *out);

    /* A small store of this instance's own state, kept across restarts
     * (e.g. "the ticket this dedupkey opened"). get: 0 and an allocated
     * *value, or a negative number when absent. */
    int (*kv_get)(const hlc_instance *inst, const char *key, char **value);
    int (*kv_put)(const hlc_instance *inst, const char *key,
                  const char *value);
    int (*kv_del)(const hlc_instance *inst, const char *key);

    /* Signatures. out gets a NUL-terminated value; 0 or negative.
     * Standard Webhooks: "v1,<base64>" for each "whsec_..." secret,
     * space-separated, over "<msg_id>.<ts>.<body>". */
    int (*sign_standard_webhooks)(const char *const *secrets, size_t n,
                                  const char *msg_id, int64_t ts,
                                  const void *body, size_t len, char *out,
                                  size_t cap);
    /* prefix (may be NULL) + hex or base64 of HMAC(hash, secret, body). */
    int (*sign_hmac)(int hash, int encoding, const char *prefix,
                     const char *secret, const void *body, size_t len,
                     char *out, size_t cap);
    /* Base64 (with padding) of len bytes; 0, or negative if cap is too
     * small (4 * ceil(len / 3) + 1 is enough). */
    int (*base64)(const void *in, size_t len, char *out, size_t cap);

    /* ABI 1.1. A file append instead of a network request: the body is
     * appended to path (the host opens, writes and rotates it). Past
     * max_bytes the file is renamed path.1 (path.1 to path.2, ...; at most
     * keep old files) and a new one started; 0: never rotated. */
    int (*request_file)(hlc_request *r, const char *path, uint64_t max_bytes,
                        uint32_t keep);
} hlc_api;

/* ---- what the connector offers ------------------------------------------- */

typedef struct hlc_connector {
    uint32_t abi_version; /* HLC_ABI_VERSION it was built with */
    uint32_t struct_size; /* sizeof(hlc_connector) it was built with */
    const char *name;     /* as `plugin:` names it */
    const char *version;
    const char *description;
    const hlc_key *keys; /* its own keys; url, policy, tenant and timeout
                            are the host's and are read with config_* too */
    /* Check the configuration and make the instance's state. On a problem
     * return non-zero with err saying what to fix; start err with a key
     * name and ": " ("auth.basic: expected user:token") to have hookline
     * point at that key's line. */
    int (*create)(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err,
                  size_t errlen);
    /* Fill req for the event (hlc_render_result). The event is the
     * canonical event after this destination's redaction. */
    int (*render)(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen);
    /* Judge a response or a transport error. NULL: classify_default. */
    void (*classify)(void *state, const hlc_json *event,
                     const hlc_delivery *d, const hlc_response *resp,
                     hlc_outcome *out);
    void (*destroy)(void *state);
} hlc_connector;

typedef const hlc_connector *(*hlc_entry_fn)(void);

#define HLC_DEFINE_CONNECTOR(desc)                                             \
    HLC_EXPORT const hlc_connector *hookline_connector_entry(void);            \
    HLC_EXPORT const hlc_connector *hookline_connector_entry(void)             \
    {                                                                          \
        return &(desc);                                                        \
    }

/* The layout is the ABI: changing it must be a deliberate act. */
#if defined(__LP64__) && !defined(__cplusplus)
_Static_assert(sizeof(hlc_key) == 40, "hlc_key layout is ABI");
_Static_assert(sizeof(hlc_delivery) == 48, "hlc_delivery layout is ABI");
_Static_assert(offsetof(hlc_delivery, now_ms) == 40, "hlc_delivery layout");
_Static_assert(sizeof(hlc_outcome) == 272, "hlc_outcome layout is ABI");
_Static_assert(offsetof(hlc_outcome, reason) == 16, "hlc_outcome layout");
_Static_assert(offsetof(hlc_connector, name) == 8, "hlc_connector layout");
_Static_assert(offsetof(hlc_connector, create) == 40, "hlc_connector layout");
_Static_assert(offsetof(hlc_connector, destroy) == 64, "hlc_connector layout");
_Static_assert(sizeof(hlc_connector) == 72, "hlc_connector layout is ABI");
_Static_assert(offsetof(hlc_api, log) == 8, "hlc_api layout");
_Static_assert(offsetof(hlc_api, base64) == 448,
               "hlc_api layout is ABI: add new functions at the end");
_Static_assert(offsetof(hlc_api, request_file) == 456, "hlc_api 1.1");
#endif

#ifdef __cplusplus
}
#endif

#endif
