/* Fuzz target: the dlock command's duration syntax (tools/duration.c): "500ms", "1.5s", "2m",
 * "1h", a bare number being seconds.
 *
 * Besides "no crash": every accepted duration is compared with an exact reference computed in
 * 128-bit integers from all of its digits -- the value in ms rounded UP (duration.h: "A fraction
 * finer than a millisecond is rounded up, so a non-zero duration never becomes 0 ms") -- and must
 * be within max_ms; a refusal must say why, and may only refuse a valid duration for having
 * more than 9 fraction digits. The first byte picks max_ms. */
#include "duration.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GCC and clang have 128-bit integers; __extension__ keeps -Wpedantic quiet about them. */
__extension__ typedef __int128 i128;

static const int64_t maxes[] = {0, 1, 999, 1000, 60000, 1000000000000, INT64_MAX / 2, INT64_MAX};

/* Exact ms of text (digits [. digits] unit), rounded up; -1 if not this shape or too long.
 * *frac_digits is set to the number of digits after the point. */
static i128 reference(const char *s, int *frac_digits) {
    i128 n = 0, scale = 1;
    int digits = 0, frac = 0;
    *frac_digits = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits < 30) {
            n = n * 10 + (*p - '0');
        }
    }
    if (*p == '.') {
        p++;
        frac = 1;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 30) {
                n = n * 10 + (*p - '0');
                scale *= 10;
            }
            (*frac_digits)++;
        }
    }
    (void)frac;
    if (digits == 0 || digits > 30) {
        return -1;
    }
    i128 unit;
    if (strcmp(p, "ms") == 0) {
        unit = 1;
    } else if (strcmp(p, "s") == 0 || *p == '\0') {
        unit = 1000;
    } else if (strcmp(p, "m") == 0) {
        unit = 60000;
    } else if (strcmp(p, "h") == 0) {
        unit = 3600000;
    } else {
        return -1;
    }
    return (n * unit + scale - 1) / scale;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 256) {
        return 0;
    }
    int64_t max_ms = maxes[data[0] % (sizeof maxes / sizeof maxes[0])];
    char text[257];
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    int64_t ms = -12345;
    const char *why = NULL;
    int rc = duration_parse(text, max_ms, &ms, &why);
    int frac_digits;
    i128 want = reference(text, &frac_digits);
    if (rc == 0) {
        if (ms < 0 || ms > max_ms) {
            abort();
        }
        if (want >= 0 && want != ms) {
            fprintf(stderr, "fuzz_cli_duration: '%s' parsed as %lld ms, exactly it is %lld ms\n",
                    text, (long long)ms, (long long)want);
            abort();
        }
    } else {
        if (rc != -1 || why == NULL || why[0] == '\0') {
            abort();
        }
        /* Refusing a finer fraction than a nanosecond of an hour (over 9 digits) is fair; a
         * wrong value is not. */
        if (want >= 0 && want <= max_ms && frac_digits <= 9) {
            fprintf(stderr, "fuzz_cli_duration: '%s' refused (%s) but is %lld ms <= %lld\n", text,
                    why, (long long)want, (long long)max_ms);
            abort();
        }
    }
    return 0;
}
