/* err.h - hookline's error codes: one table, names and messages derived from it. */
#ifndef HL_ERR_H
#define HL_ERR_H

/*
 * Functions return 0 on success and a negative code on failure: either -errno
 * or one of the project codes below, which live in a reserved range far from
 * errno values. A delivery outcome is not an error and has its own enum.
 */
#define HL_ERR_BASE 100000

#define HL_ERR_MAP(X)                                                          \
    X(CONFIG, 1, "invalid configuration")                                      \
    X(YAML, 2, "malformed YAML")                                               \
    X(NOMEM, 3, "out of memory")                                               \
    X(RANGE, 4, "value out of range")                                          \
    X(SYNTAX, 5, "malformed value")                                            \
    X(NOTFOUND, 6, "not found")                                                \
    X(EXISTS, 7, "already exists")                                             \
    X(TOOBIG, 8, "too large")                                                  \
    X(VERIFY, 9, "signature or token check failed")                            \
    X(STORE, 10, "storage failure")                                            \
    X(BUSY, 11, "busy, try again")                                             \
    X(SHUTDOWN, 12, "shutting down")                                           \
    X(PLUGIN, 13, "connector plugin failure")                                  \
    X(ABI, 14, "connector ABI mismatch")                                       \
    X(HTTP, 15, "malformed HTTP request")                                      \
    X(INTERNAL, 16, "internal error")                                          \
    X(CONFLICT, 17, "conflicts with the current state")

enum {
#define HL__ERR_ENUM(name, n, msg) HL_E##name = -(HL_ERR_BASE + (n)),
    HL_ERR_MAP(HL__ERR_ENUM)
#undef HL__ERR_ENUM
};

/* A human-readable message for any code: project codes and -errno alike. */
const char *hl_strerror(int err);
/* The symbolic name ("HL_ECONFIG", "ENOENT") of any code. */
const char *hl_err_name(int err);

#endif
