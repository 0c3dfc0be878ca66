/* id.h - unique, time-sortable identifiers (ULID) and random hex. */
#ifndef HL_ID_H
#define HL_ID_H

#include <stddef.h>
#include <stdint.h>

#define HL_ID_LEN 26 /* Crockford base32 characters */

/* A ULID for the time now_ms: 48 bits of milliseconds, 80 random bits.
 * Ids made in the same millisecond are strictly increasing, from any
 * thread. out must hold HL_ID_LEN + 1 bytes. Returns 0 or HL_EINTERNAL. */
int hl_id_new(int64_t now_ms, char out[HL_ID_LEN + 1]);
/* The millisecond timestamp inside an id (read case-insensitively), or -1
 * if it is not a ULID. */
int64_t hl_id_time(const char *id);
/* n random bytes (n <= 64) as 2n lowercase hex digits (out holds 2n + 1);
 * HL_EINTERNAL when n is larger. */
int hl_random_hex(size_t n, char *out);
/* Wall-clock milliseconds since the epoch. */
int64_t hl_now_ms(void);

#endif
