/* id.c - unique, time-sortable identifiers (ULID) and random hex. */
#include "id.h"

#include "err.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t g_last_ms = -1;
static unsigned char g_last_rand[10];

/* Random bytes are drawn from OpenSSL in blocks: one call per id costs
 * more than the rest of making it. Guarded by g_lock. */
static unsigned char g_pool[4096];
static size_t g_pool_left;

static int pool_take(unsigned char *out, size_t n)
{
    if (n > sizeof g_pool)
        return RAND_bytes(out, (int)n) == 1 ? 0 : HL_EINTERNAL;
    if (g_pool_left < n) {
        if (RAND_bytes(g_pool, sizeof g_pool) != 1)
            return HL_EINTERNAL;
        g_pool_left = sizeof g_pool;
    }
    memcpy(out, g_pool + sizeof g_pool - g_pool_left, n);
    OPENSSL_cleanse(g_pool + sizeof g_pool - g_pool_left, n);
    g_pool_left -= n;
    return 0;
}

int64_t hl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Add one to the 80-bit big-endian random part; 1 on overflow. */
static int increment(unsigned char r[10])
{
    for (int i = 9; i >= 0; i--)
        if (++r[i] != 0)
            return 0;
    return 1;
}

int hl_id_new(int64_t now_ms, char out[HL_ID_LEN + 1])
{
    unsigned char bytes[16];
    pthread_mutex_lock(&g_lock);
    if (now_ms <= g_last_ms) {
        /* Same millisecond (or the clock stepped back): keep order. */
        now_ms = g_last_ms;
        if (increment(g_last_rand)) {
            now_ms = ++g_last_ms;
            memset(g_last_rand, 0, sizeof g_last_rand);
        }
    } else if (pool_take(g_last_rand, sizeof g_last_rand)) {
        pthread_mutex_unlock(&g_lock);
        return HL_EINTERNAL;
    }
    g_last_ms = now_ms;
    uint64_t ms = (uint64_t)now_ms & 0xFFFFFFFFFFFFULL;
    for (int i = 0; i < 6; i++)
        bytes[i] = (unsigned char)(ms >> (40 - 8 * i));
    memcpy(bytes + 6, g_last_rand, 10);
    pthread_mutex_unlock(&g_lock);

    /* 128 bits as 26 base32 digits, most significant first (2 spare bits). */
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = (v << 8) | bytes[i];
    for (int i = HL_ID_LEN - 1; i >= 0; i--) {
        out[i] = b32[(unsigned)(v & 31)];
        v >>= 5;
    }
    out[HL_ID_LEN] = 0;
    return 0;
}

/* The value of one base32 digit, case-insensitively, or -1. */
static int digit(char ch)
{
    if (ch >= 'a' && ch <= 'z')
        ch = (char)(ch - 'a' + 'A');
    const char *p = ch ? strchr(b32, ch) : NULL;
    return p ? (int)(p - b32) : -1;
}

int64_t hl_id_time(const char *id)
{
    if (!id || strlen(id) != HL_ID_LEN)
        return -1;
    for (int i = 0; i < HL_ID_LEN; i++)
        if (digit(id[i]) < 0)
            return -1;
    /* 26 digits hold 130 bits: the first may not use the top 2. */
    if (digit(id[0]) > 7)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++)
        v = (v << 5) | (uint64_t)digit(id[i]);
    return (int64_t)v;
}

int hl_random_hex(size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char buf[64];
    if (n > sizeof buf)
        return HL_EINTERNAL;
    pthread_mutex_lock(&g_lock);
    int rc = pool_take(buf, n);
    pthread_mutex_unlock(&g_lock);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[buf[i] >> 4];
        out[2 * i + 1] = hex[buf[i] & 15];
    }
    out[2 * n] = 0;
    return 0;
}
