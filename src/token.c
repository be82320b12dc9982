/* Lock tokens: random UUID v4 strings from the OS CSPRNG, the form @upstash/lock stores
 * (crypto.randomUUID()), so a token says nothing about its holder and cannot be guessed. */
#include "fmacros.h"

#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static int fill_random(void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return dlock__err(DLOCK_ESYS, "getrandom failed: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return DLOCK_OK;
}

int dlock__uuid4(char out[DLOCK__UUID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int rc = fill_random(b, sizeof b);
    if (rc != DLOCK_OK) {
        return rc;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
    return DLOCK_OK;
}

uint64_t dlock__random_below(uint64_t n) {
    uint64_t x = 0;
    if (n <= 1 || fill_random(&x, sizeof x) != DLOCK_OK) {
        return 0;
    }
    /* The modulo bias is below 2^-40 for the small n used for jitter; irrelevant there. */
    return x % n;
}

int dlock_token_uuid(char out[DLOCK_UUID_LEN + 1]) {
    dlock__err_clear();
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_token_uuid: out is NULL");
    }
    return dlock__uuid4(out);
}
