/* file.c - the file connector: a JSON line per event, appended, rotated. */
#include <hookline/connector.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEEP 1000
#define MAX_PATH 4000

static const hlc_key keys[] = {
    {"path", HLC_KEY_STRING, HLC_KEY_REQUIRED, NULL, NULL,
     "the file to append to, e.g. /var/log/hookline/events.jsonl; its "
     "folder must exist and be writable (a relative path starts from the "
     "folder hookline was started in)"},
    {"max_size", HLC_KEY_SIZE, 0, "100MiB", NULL,
     "rotate before the file would grow past this: the file becomes "
     "PATH.1, PATH.1 becomes PATH.2, and so on; 0: never rotate"},
    {"keep", HLC_KEY_INT, 0, "5", NULL,
     "how many rotated files to keep (PATH.1 to PATH.N); older ones are "
     "removed; 0: none is kept"},
    {"template", HLC_KEY_TEMPLATE, 0, NULL, NULL,
     "a Mustache template for the line instead of the event as JSON, "
     "values JSON-escaped; one line: a line break ends it"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct {
    const hlc_api *api;
    const char *path;
    uint64_t max_size;
    uint32_t keep;
    hlc_template *line;
} file_out;

static void destroy(void *state)
{
    file_out *f = state;
    if (!f)
        return;
    if (f->line)
        f->api->template_free(f->line);
    f->api->free(f);
}

/* The folder path is in: "." for a bare name. */
static void folder_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* Refuses a path hookline could not append to, saying which folder or
 * file is the problem. */
static int check_path(const char *path, char *err, size_t errlen)
{
    char dir[MAX_PATH + 1];
    struct stat st;
    if (!*path || strlen(path) > MAX_PATH || path[strlen(path) - 1] == '/') {
        snprintf(err, errlen,
                 "path: expected a file name, such as "
                 "/var/log/hookline/events.jsonl");
        return -1;
    }
    folder_of(path, dir, sizeof dir);
    if (stat(dir, &st)) {
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(err, errlen,
                     "path: the folder %s does not exist; "
                     "create it or fix path",
                     dir);
        else
            snprintf(err, errlen,
                     "path: the folder %s cannot be reached "
                     "(%s); fix its permissions or path",
                     dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "path: %s is not a folder; fix path", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK)) {
        snprintf(err, errlen,
                 "path: hookline cannot write in the folder %s "
                 "(%s); give it write permission or fix path",
                 dir, strerror(errno));
        return -1;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "path: %s is not a regular file", path);
        return -1;
    }
    if (access(path, F_OK) == 0 && access(path, W_OK)) {
        snprintf(err, errlen, "path: hookline cannot write to %s (%s)", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err, size_t errlen)
{
    (void)inst;
    file_out *f = api->alloc(sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->api = api;
    /* request_file came with ABI 1.1. */
    if (api->struct_size <
            offsetof(hlc_api, request_file) + sizeof api->request_file ||
        !api->request_file) {
        snprintf(err, errlen,
                 "this hookline is older than the file "
                 "connector: it needs connector ABI 1.1");
        goto fail;
    }
    f->path = api->config_string(cfg, "path");
    if (api->config_string(cfg, "url")) {
        snprintf(err, errlen,
                 "url: the file connector writes to path and "
                 "takes no url; remove it");
        goto fail;
    }
    if (!f->path) {
        snprintf(err, errlen, "path is required: the file to append to");
        goto fail;
    }
    if (check_path(f->path, err, errlen))
        goto fail;
    int64_t keep = api->config_int(cfg, "keep");
    if (keep < 0 || keep > MAX_KEEP) {
        snprintf(err, errlen, "keep: expected 0 to %d rotated files, got %lld",
                 MAX_KEEP, (long long)keep);
        goto fail;
    }
    f->keep = (uint32_t)keep;
    f->max_size = (uint64_t)api->config_int(cfg, "max_size");
    const char *tpl = api->config_string(cfg, "template");
    if (tpl) {
        size_t n = strlen(tpl);
        while (n && (tpl[n - 1] == '\n' || tpl[n - 1] == '\r'))
            n--;
        if (memchr(tpl, '\n', n) || memchr(tpl, '\r', n)) {
            snprintf(err, errlen,
                     "template: a line cannot hold a line "
                     "break; write the template on one line");
            goto fail;
        }
        char why[300];
        if (!(f->line = api->template_compile(tpl, why, sizeof why))) {
            snprintf(err, errlen, "template: %s", why);
            goto fail;
        }
    }
    *state = f;
    return 0;
fail:
    destroy(f);
    return -1;
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    file_out *f = state;
    const hlc_api *a = f->api;
    (void)d;
    size_t len = 0;
    char *text = f->line ? a->template_render(f->line, event, HLC_ESC_JSON,
                                              &len, err, errlen)
                         : a->json_dump(event, &len);
    if (!text)
        return f->line ? HLC_RENDER_FAILED : HLC_RENDER_RETRY;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    char *line = a->realloc(text, len + 1);
    if (!line) {
        a->free(text);
        snprintf(err, errlen, "out of memory");
        return HLC_RENDER_RETRY;
    }
    line[len++] = '\n';
    int rc = HLC_RENDER_OK;
    if (a->request_file(req, f->path, f->max_size, f->keep) ||
        a->request_body(req, line, len)) {
        snprintf(err, errlen, "the file request could not be made");
        rc = HLC_RENDER_RETRY;
    }
    a->free(line);
    return rc;
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "file",
    .version = "1.0.0",
    .description = "appends each event as one line of JSON (or a Mustache "
                   "line) to a file, rotated by size: for audit and "
                   "debugging",
    .keys = keys,
    .create = create,
    .render = render,
    .classify = NULL,
    .destroy = destroy,
};

HLC_DEFINE_CONNECTOR(desc)
