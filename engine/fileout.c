/* fileout.c - file outputs for connectors: appends with size-based rotation. */
#include "fileout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *why, size_t whylen, const char *what, const char *path,
                int e)
{
    snprintf(why, whylen, "cannot %s %s: %s", what, path, strerror(e));
    return -e;
}

/* path.(keep-1) -> path.keep, ..., path -> path.1. */
static int rotate(const char *path, uint32_t keep, char *why, size_t whylen)
{
    char from[4200], to[4200];
    if (!keep) {
        if (unlink(path) && errno != ENOENT)
            return fail(why, whylen, "remove", path, errno);
        return 0;
    }
    snprintf(to, sizeof to, "%s.%u", path, keep);
    if (unlink(to) && errno != ENOENT)
        return fail(why, whylen, "remove", to, errno);
    for (uint32_t i = keep; i > 1; i--) {
        snprintf(from, sizeof from, "%s.%u", path, i - 1);
        snprintf(to, sizeof to, "%s.%u", path, i);
        if (rename(from, to) && errno != ENOENT)
            return fail(why, whylen, "rotate", from, errno);
    }
    snprintf(to, sizeof to, "%s.1", path);
    if (rename(path, to) && errno != ENOENT)
        return fail(why, whylen, "rotate", path, errno);
    return 0;
}

int hl_file_append(const char *path, const void *data, size_t len,
                   uint64_t max_bytes, uint32_t keep, char *why,
                   size_t whylen)
{
    struct stat st;
    if (max_bytes && stat(path, &st) == 0 && st.st_size > 0 &&
        (uint64_t)st.st_size + len > max_bytes) {
        int rc = rotate(path, keep, why, whylen);
        if (rc)
            return rc;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return fail(why, whylen, "open", path, errno);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            return fail(why, whylen, "write to", path, e);
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd))
        return fail(why, whylen, "close", path, errno);
    return 0;
}
