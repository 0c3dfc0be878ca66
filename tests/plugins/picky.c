/* picky.c - a well-formed connector whose create refuses some settings, and that skips every event. */
#include <hookline/connector.h>

#include <stdio.h>
#include <string.h>

static const hlc_key keys[] = {
    {"channel", HLC_KEY_STRING, HLC_KEY_REQUIRED, NULL, NULL,
     "where messages go"},
    {"mode", HLC_KEY_STRING, 0, "fast", "fast|slow", "how"},
    {"retries", HLC_KEY_INT, 0, "3", NULL, "a number"},
    {"wait", HLC_KEY_DURATION, 0, "1s", NULL, "a duration"},
    {"text", HLC_KEY_TEMPLATE, 0, NULL, NULL, "a template"},
    {"auth.token", HLC_KEY_SECRET, HLC_KEY_REQUIRED, NULL, NULL,
     "a token, required when auth is given"},
    {"auth.user", HLC_KEY_STRING, 0, NULL, NULL, "a user"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err,
                  size_t errlen)
{
    (void)inst;
    *state = NULL;
    const char *ch = api->config_string(cfg, "channel");
    if (ch && ch[0] != '#') {
        snprintf(err, errlen, "channel: '%s' must start with '#'", ch);
        return -1;
    }
    if (api->config_int(cfg, "retries") > 10) {
        snprintf(err, errlen, "at most 10 retries");
        return -1;
    }
    return 0;
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)state, (void)event, (void)d, (void)req, (void)err, (void)errlen;
    return HLC_RENDER_SKIP;
}

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = sizeof(hlc_connector),
    .name = "picky",
    .version = "1.0",
    .description = "checks its configuration; skips every event",
    .keys = keys,
    .create = create,
    .render = render,
};

HLC_DEFINE_CONNECTOR(desc)
