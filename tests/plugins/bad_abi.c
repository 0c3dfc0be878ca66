/* bad_abi.c - a plugin built for a connector ABI major version hookline does not load. */
#include <hookline/connector.h>

static int create(const hlc_api *api, const hlc_instance *inst,
                  const hlc_config *cfg, void **state, char *err,
                  size_t errlen)
{
    (void)api, (void)inst, (void)cfg, (void)err, (void)errlen;
    *state = NULL;
    return 0;
}

static int render(void *state, const hlc_json *event, const hlc_delivery *d,
                  hlc_request *req, char *err, size_t errlen)
{
    (void)state, (void)event, (void)d, (void)req, (void)err, (void)errlen;
    return HLC_RENDER_SKIP;
}

static const hlc_connector desc = {
    .abi_version = (uint32_t)((HLC_ABI_MAJOR + 1) << 16),
    .struct_size = sizeof(hlc_connector),
    .name = "bad_abi",
    .version = "0",
    .create = create,
    .render = render,
};

HLC_DEFINE_CONNECTOR(desc)
