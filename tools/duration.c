/* duration.c: parses durations exactly, in integers. strtod would accept "inf", "nan", hex
 * floats, exponents and leading blanks, and round 0.1 inexactly; none of that belongs in a
 * lease. */
#include "duration.h"

#include <string.h>

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

int duration_parse(const char *text, int64_t max_ms, int64_t *out_ms, const char **why) {
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    const char *p = text;

    if (*p == '\0') {
        *why = "is empty (examples: 500ms, 1.5s, 10s, 2m, 1h)";
        return -1;
    }
    if (*p == '-') {
        *why = "is negative";
        return -1;
    }
    /* The integer part, bounded early so that no product below can overflow: anything over
     * max_ms in the smallest unit is too large whatever the unit. */
    int64_t whole = 0;
    int digits = 0, too_large = 0;
    for (; is_digit(*p); p++, digits++) {
        if (whole > max_ms || whole > (INT64_MAX - 9) / 10) {
            too_large = 1;
        } else {
            whole = whole * 10 + (*p - '0');
        }
    }
    /* The fraction: at most 9 digits (a nanosecond of an hour is far below a millisecond).
     * More are refused rather than dropped, which could turn a tiny duration into 0 ms. */
    int64_t frac = 0, frac_scale = 1;
    if (*p == '.') {
        p++;
        for (; is_digit(*p); p++, digits++) {
            if (frac_scale == 1000000000) {
                *why = "has more than 9 digits after the decimal point";
                return -1;
            }
            frac = frac * 10 + (*p - '0');
            frac_scale *= 10;
        }
    }
    if (digits == 0) {
        *why = "is not a duration (examples: 500ms, 1.5s, 10s, 2m, 1h)";
        return -1;
    }
    int64_t unit = -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].name) == 0) {
            unit = units[i].ms;
            break;
        }
    }
    if (unit < 0) {
        *why = "has an unknown unit (use ms, s, m or h; a bare number is seconds)";
        return -1;
    }
    if (too_large || whole > max_ms / unit) {
        *why = "is too large";
        return -1;
    }
    int64_t ms = whole * unit;
    /* frac < 10^9 and unit <= 3.6e6, so the product fits in 63 bits. */
    int64_t frac_ms = (frac * unit + frac_scale - 1) / frac_scale;
    if (frac_ms > max_ms - ms) {
        *why = "is too large";
        return -1;
    }
    *out_ms = ms + frac_ms;
    return 0;
}
