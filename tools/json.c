/* json.c: JSON strings for arbitrary bytes. */
#include "json.h"

#include <stdint.h>
#include <stdio.h>

/* The length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    uint32_t cp;
    size_t len;
    if (p[0] < 0x80) {
        return 1;
    } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0; /* overlong, beyond Unicode, or a UTF-16 surrogate */
    }
    return len;
}

int json_is_utf8(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

void json_string(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", stdout);
            i++;
        } else if (p[i] == '"' || p[i] == '\\') {
            printf("\\%c", p[i]);
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            printf("\\u%04x", p[i]);
            i++;
        } else {
            fwrite(p + i, 1, n, stdout);
            i += n;
        }
    }
    putchar('"');
}

void json_base64(const char *s, size_t len) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= p[i + 2];
        }
        putchar(digits[v >> 18 & 63]);
        putchar(digits[v >> 12 & 63]);
        putchar(i + 1 < len ? digits[v >> 6 & 63] : '=');
        putchar(i + 2 < len ? digits[v & 63] : '=');
    }
    putchar('"');
}
