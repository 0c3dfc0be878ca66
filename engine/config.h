/* config.h - hookline.yaml as a typed, validated configuration. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include "diag.h"
#include "log.h"
#include "ydoc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every string below points into the configuration's own memory and lives as
 * long as the hl_config. Durations are milliseconds, sizes are bytes. A field
 * that is optional and absent is NULL (strings) or has its `set` flag false.
 */

typedef struct {
    const char **v;
    size_t n;
} hl_strlist;

/* The source of events published with POST /v1/events. */
#define HL_API_SOURCE "api"

typedef struct {
    const char *listen; /* as written, "127.0.0.1:8080" or "[::1]:8080" */
    char host[64];      /* the address part, without brackets */
    uint16_t port;
    uint64_t max_body;
    uint64_t max_connections;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
} hl_server_cfg;

typedef enum {
    HL_DURABILITY_FULL,
    HL_DURABILITY_NORMAL,
} hl_durability;

struct hl_redact_rule;

typedef struct {
    const char *path;
    int durability; /* hl_durability */
    uint64_t max_queued;
    uint64_t max_size; /* bytes; 0: no limit */
    uint64_t retention_delivered_ms;
    uint64_t retention_failed_ms;
    /* Redaction applied to webhook bodies before they are stored. */
    struct hl_redact_rule *redact_at_rest;
    size_t n_redact_at_rest;
} hl_storage_cfg;

typedef struct {
    int level;  /* hl_log_level */
    int format; /* hl_log_format */
} hl_log_cfg;

typedef struct {
    const char *token; /* NULL: the admin API is closed */
} hl_admin_cfg;

typedef struct {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];  /* network byte order; 4 bytes used for AF_INET */
    unsigned prefix;
    const char *text;
} hl_cidr;

typedef struct {
    uint64_t timeout_ms;
    hl_cidr *allow_networks;
    size_t n_allow_networks;
} hl_outbound_cfg;

typedef struct {
    const char *name;
    const char *token;
} hl_tenant_cfg;

typedef enum {
    HL_HASH_SHA1,
    HL_HASH_SHA256,
    HL_HASH_SHA512,
} hl_hash_alg;

typedef enum {
    HL_ENC_HEX,
    HL_ENC_BASE64,
} hl_encoding;

typedef struct {
    const char *header;
    int algorithm; /* hl_hash_alg */
    const char *prefix; /* NULL: none */
    int encoding; /* hl_encoding */
    hl_strlist secrets; /* several while rotating */
    /* Set: the signature covers "TIMESTAMP:BODY", the timestamp (Unix
     * seconds) read from this header and within tolerance of now, as
     * Grafana signs when given a timestamp header. */
    const char *timestamp_header;
    uint64_t tolerance_ms;
} hl_hmac_cfg;

/* Standard Webhooks ("whsec_" + base64 secrets) and Slack's v0 scheme. */
typedef struct {
    hl_strlist secrets;
    uint64_t tolerance_ms;
} hl_timed_cfg;

typedef struct {
    hl_strlist tokens;
} hl_bearer_cfg;

/* Inbound checks of a source; every configured check must pass. */
typedef struct {
    bool hmac_set;
    hl_hmac_cfg hmac;
    bool standard_webhooks_set;
    hl_timed_cfg standard_webhooks;
    bool slack_set;
    hl_timed_cfg slack;
    bool bearer_set;
    hl_bearer_cfg bearer;
} hl_verify_cfg;

typedef struct {
    bool set;
    double per_second;
    double burst;
} hl_rate_cfg;

typedef struct {
    const char *name;  /* a canonical field: title, text, severity, ... */
    const char *value; /* a JSON Pointer into the body */
} hl_field_cfg;

typedef struct {
    const char *name;
    const char *tenant;
    const char *kind; /* schemas/sources/<kind>.yaml */
    const char *idempotency_header;
    hl_verify_cfg verify;
    hl_rate_cfg rate;
    hl_field_cfg *fields; /* generic kind: canonical field -> JSON Pointer */
    size_t n_fields;
    const hl_ynode *node;
} hl_source_cfg;

typedef struct {
    const char *name;
    const char *plugin;
    const char *url;
    const char *policy; /* NULL: the built-in default policy */
    const char *tenant; /* NULL: serves every tenant */
    uint64_t timeout_ms; /* 0: outbound.timeout */
    /* The whole section; the plugin's own keys are checked against the
     * table the plugin declares when it is loaded. */
    const hl_ynode *node;
} hl_connector_cfg;

typedef enum {
    HL_JITTER_NONE,
    HL_JITTER_FULL,     /* uniform in [0, delay] */
    HL_JITTER_FRACTION, /* delay * (1 +- fraction) */
} hl_jitter_kind;

typedef struct {
    uint64_t *schedule_ms; /* delay before each attempt */
    size_t n_schedule;
    bool exponential;
    uint64_t base_ms;
    double factor;
    uint64_t max_ms;
    uint64_t max_attempts; /* 0: the schedule's length */
    uint64_t max_age_ms;
    int jitter; /* hl_jitter_kind */
    double jitter_fraction;
} hl_retry_cfg;

typedef struct {
    uint64_t failures;
    uint64_t cooldown_ms;
} hl_circuit_cfg;

typedef enum {
    HL_REDACT_PACK, /* a pack from policies/redact/<name>.yaml */
    HL_REDACT_FIELD,
    HL_REDACT_PATTERN,
} hl_redact_kind;

typedef enum {
    HL_REDACT_MASK,
    HL_REDACT_DROP,
    HL_REDACT_HASH,
} hl_redact_action;

typedef struct hl_redact_rule {
    int kind;           /* hl_redact_kind */
    const char *value;  /* pack name, path (JSON Pointer or glob) or regex */
    int action;         /* hl_redact_action */
    const char *replacement; /* mask text; NULL: the default mask */
} hl_redact_rule;

typedef struct {
    const char *name;
    hl_retry_cfg retry;
    hl_rate_cfg rate;
    uint64_t max_in_flight;
    hl_circuit_cfg circuit;
    hl_redact_rule *redact;
    size_t n_redact;
} hl_policy_cfg;

typedef enum {
    HL_LABEL_EQUALS,
    HL_LABEL_NOT,
    HL_LABEL_MATCHES,
    HL_LABEL_NOT_MATCHES,
} hl_label_op;

typedef struct {
    const char *name;
    int op; /* hl_label_op */
    const char *value;
} hl_label_match;

typedef struct {
    const char *name;
    hl_strlist tenant, source, type, severity; /* empty: any */
    hl_label_match *labels;
    size_t n_labels;
    hl_strlist to;
    bool cont;
} hl_route_cfg;

typedef struct {
    uint64_t heartbeat_ms;
    uint64_t max_clients;
    uint64_t client_buffer;
} hl_stream_cfg;

typedef struct hl_config {
    const char *file;
    hl_server_cfg server;
    hl_storage_cfg storage;
    hl_log_cfg log;
    hl_admin_cfg admin;
    hl_outbound_cfg outbound;
    hl_strlist connectors_path; /* empty: found (hl_plugin_dirs) */
    const char *schemas_path;  /* NULL: found (hl_config_find_dir) */
    const char *policies_path; /* NULL: found (hl_config_find_dir) */
    hl_tenant_cfg *tenants;
    size_t n_tenants;
    hl_source_cfg *sources;
    size_t n_sources;
    hl_connector_cfg *connectors;
    size_t n_connectors;
    hl_policy_cfg *policies;
    size_t n_policies;
    hl_route_cfg *routes;
    size_t n_routes;
    hl_stream_cfg stream;
    hl_policy_cfg default_policy; /* for connectors that name none */
    struct hl_config_mem *mem;
} hl_config;

/*
 * Load and validate a file. Every problem found goes to d (errors and
 * warnings, each with file:line:col and key path). Returns 0 and sets *out,
 * or a negative code with *out NULL when any error was found.
 */
int hl_config_load(const char *path, hl_diags *d, hl_config **out);
/* The same from a buffer; name is used in messages. */
int hl_config_load_string(const char *name, const char *text, size_t len,
                          hl_diags *d, hl_config **out);
/* Configurations are reference-counted, so a request in flight keeps the
 * configuration it started with across a reload. A loaded config has one
 * reference; destroy drops one and frees at zero. Thread-safe. */
hl_config *hl_config_retain(hl_config *cfg);
void hl_config_destroy(hl_config *cfg);

const hl_tenant_cfg *hl_config_tenant(const hl_config *cfg, const char *name);
const hl_source_cfg *hl_config_source(const hl_config *cfg, const char *name);
const hl_connector_cfg *hl_config_connector(const hl_config *cfg,
                                            const char *name);
/* The connector's policy, or the default policy. */
const hl_policy_cfg *hl_config_policy_for(const hl_config *cfg,
                                          const hl_connector_cfg *c);

/*
 * The folder of hookline's data files NAME ("schemas", "policies"): the
 * configured path when set, else the first that exists of ./NAME, the
 * installed EXE/../share/hookline/NAME, and the build tree's EXE/../NAME and
 * EXE/../../NAME. Writes the path tried last into out; 0 or -ENOENT.
 */
int hl_config_find_dir(const char *configured, const char *name, char *out,
                       size_t cap);

/* The folder of the running executable; 0 or -ENOENT. */
int hl_config_exe_dir(char *out, size_t cap);

/* "15s", "1h30m", "500ms", "7d" -> milliseconds. */
int hl_parse_duration(const char *s, uint64_t *ms);
/* "1MiB", "512KiB", "1024", "2GB" -> bytes. */
int hl_parse_size(const char *s, uint64_t *bytes);
/* "10.0.0.0/8", "fd00::/8", "127.0.0.1" (a /32). */
int hl_parse_cidr(const char *s, hl_cidr *out);

#endif
