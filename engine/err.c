/* err.c - messages and names for hookline's error codes. */
#include "err.h"

#include <string.h>

const char *hl_strerror(int err)
{
    switch (err) {
#define HL__ERR_MSG(name, n, msg)                                              \
    case HL_E##name:                                                           \
        return msg;
        HL_ERR_MAP(HL__ERR_MSG)
#undef HL__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -HL_ERR_BASE)
        return strerror(-err);
    return "unknown error";
}

const char *hl_err_name(int err)
{
    switch (err) {
#define HL__ERR_NAME(name, n, msg)                                             \
    case HL_E##name:                                                           \
        return "HL_E" #name;
        HL_ERR_MAP(HL__ERR_NAME)
#undef HL__ERR_NAME
    case 0:
        return "OK";
    default:
        break;
    }
    if (err < 0 && err > -HL_ERR_BASE) {
        const char *s = strerrorname_np(-err);
        if (s)
            return s;
    }
    return "UNKNOWN";
}
