/* short_desc.c - a plugin whose descriptor claims fewer bytes than ABI 1.0 has. */
#include <hookline/connector.h>

static const hlc_connector desc = {
    .abi_version = HLC_ABI_VERSION,
    .struct_size = 16,
    .name = "short_desc",
};

HLC_DEFINE_CONNECTOR(desc)
