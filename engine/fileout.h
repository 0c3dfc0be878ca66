/* fileout.h - file outputs for connectors: appends with size-based rotation. */
#ifndef HL_FILEOUT_H
#define HL_FILEOUT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Append len bytes to path, creating it (and not its folder) when missing.
 * When the file would grow past max_bytes (0: never), it is first rotated:
 * path.(keep-1) becomes path.keep (the oldest beyond keep is removed), ...,
 * path becomes path.1; with keep 0 the full file is removed. A record is
 * written whole by one write(2) and never split across files. Returns 0, or
 * -errno with why filled ("cannot open /var/log/x.jsonl: Permission denied").
 */
int hl_file_append(const char *path, const void *data, size_t len,
                   uint64_t max_bytes, uint32_t keep, char *why,
                   size_t whylen);

#endif
