/* sdk.h - the host side of the connector SDK: the API table, requests, responses, instance config. */
#ifndef HL_SDK_H
#define HL_SDK_H

#include "client.h"
#include "config.h"
#include "queue.h"

#include <hookline/connector.h>
#include <jansson.h>

/* One instance's configuration: its section, read through its key table. */
struct hlc_config {
    const hl_ynode *node; /* the connector's section */
    const hlc_key *keys;  /* the plugin's table */
};

/* A configured connector: the plugin's descriptor and its state. */
struct hlc_instance {
    const char *name; /* borrowed from the configuration */
    const hl_connector_cfg *cfg;
    const hlc_connector *desc;
    void *state;
    hlc_config config;
    hl_queue *kv; /* the store behind kv_*; NULL until attached */
};

/* A request being rendered; every string is owned (malloc'd). */
struct hlc_request {
    int kind; /* hl_xfer_kind; -1 until render picks one */
    char *method, *url;
    hl_header *headers; /* name and value owned */
    size_t n_headers;
    char *body;
    size_t body_len;
    char *client_cert, *client_key, *ca_file;
    int idem_renamed;
    char *idem_header; /* NULL after renaming: none */
    char *mail_from;
    char **rcpt;
    size_t n_rcpt;
    char *username, *password;
    int starttls;
    char *path; /* HL_XFER_FILE */
    uint64_t max_bytes;
    uint32_t keep;
};

struct hlc_response {
    const hl_xfer_res *res;
};

extern const hlc_api hl_sdk_api;

void hl_request_init(hlc_request *r);
void hl_request_free(hlc_request *r);

/* The default classification (hlc_api.classify_default) of a transfer's
 * result. */
void hl_classify_default(const hl_xfer_res *res, hlc_outcome *out);

/* Retry-After (delta seconds or an HTTP date) in milliseconds from now_ms;
 * -1 when absent or unreadable. */
int64_t hl_retry_after_ms(const char *value, int64_t now_ms);

struct hl_redactor;

/*
 * Redact the event (when red is not NULL) and let the connector render it
 * for one delivery: the one path the dispatcher and `hookline render` share.
 * Returns an hlc_render_result; for HLC_RENDER_FAILED and HLC_RENDER_RETRY
 * why says why. HLC_RENDER_OK means req holds a request.
 */
int hl_render(const hlc_instance *inst, const struct hl_redactor *red,
              json_t *event, const hlc_delivery *dl, hlc_request *req,
              char *why, size_t whylen);

/* The request's headers and the host's own: the idempotency key (unless
 * the connector renamed it away), X-Request-ID with the correlation id and
 * User-Agent. HTTP only. Returns how many were written (at most cap). */
size_t hl_request_headers(const hlc_request *rq, const char *delivery_id,
                          const char *correlation_id, hl_header *out,
                          size_t cap);

/* The ynode at a dotted key path under a section, or NULL. */
const hl_ynode *hl_sdk_node(const hl_ynode *section, const char *key);

/* The key table's entry for a dotted name, or NULL. */
const hlc_key *hl_sdk_key(const hlc_key *keys, const char *name);

#endif
