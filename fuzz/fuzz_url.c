/* Fuzz target: server URL parsing (dlock__url_parse) and dlock_client_open on URLs the parser
 * refuses. dlock_client_open is only called when the parser has already said no, so a fuzz run
 * never opens a network connection.
 *
 * Checks beyond "no crash, no leak, no undefined behaviour":
 * - a parsed URL is self-consistent (scheme, host, port, path, db within their ranges);
 * - a refused URL is DLOCK_EINVAL with a message, and dlock_client_open refuses it the same way
 *   and leaves *out NULL;
 * - the message never echoes the password: dlock.h promises "No message ever contains a password"
 *   (checked for passwords that carry both letters and digits and appear once in the URL, so
 *   that fixed message text or a host of the same spelling cannot be mistaken for a leak). */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The password a person meant: between the first ':' after "://" and the LAST '@' (the parser's
 * own rule), cut at the first character a URL parser may stop at. Returns its length or 0. */
static size_t password_of(const char *s, char *out, size_t size) {
    const char *sep = strstr(s, "://");
    const char *at = strrchr(s, '@');
    if (sep == NULL || at == NULL || at < sep) {
        return 0;
    }
    /* Only schemes with credentials, and only a ':' before any '/', '?' or '#': that is where a
     * person writes "user:password@" (unix:///path?db=1:x@ has no password). */
    size_t slen = (size_t)(sep - s);
    if (!(slen == 5 && strncasecmp(s, "redis", 5) == 0) &&
        !(slen == 6 && strncasecmp(s, "rediss", 6) == 0) &&
        !(slen == 4 && strncasecmp(s, "http", 4) == 0) &&
        !(slen == 5 && strncasecmp(s, "https", 5) == 0)) {
        return 0;
    }
    const char *colon = memchr(sep + 3, ':', (size_t)(at - sep - 3));
    if (colon == NULL || strcspn(sep + 3, "/?#") < (size_t)(colon - sep - 3)) {
        return 0;
    }
    size_t n = strcspn(colon + 1, "/?#@[]%");
    if (colon + 1 + n > at) {
        n = (size_t)(at - colon - 1);
    }
    if (n < 6 || n >= size) {
        return 0;
    }
    int letter = 0, digit = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)colon[1 + i];
        if (c >= '0' && c <= '9') {
            digit = 1;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            letter = 1;
        } else {
            return 0;
        }
    }
    if (!letter || !digit) {
        return 0;
    }
    memcpy(out, colon + 1, n);
    out[n] = '\0';
    /* It must occur once in the URL, or the message may name it as something else. */
    const char *first = strstr(s, out);
    return first != NULL && strstr(first + 1, out) == NULL ? n : 0;
}

static void check_parsed(const dlock__url *u) {
    switch (u->scheme) {
    case DLOCK__SCHEME_REDIS:
    case DLOCK__SCHEME_REDISS:
        if (u->host == NULL || u->host[0] == '\0' || u->port < 1 || u->port > 65535 || u->db < 0 ||
            u->db > 1000000 || u->path != NULL) {
            abort();
        }
        break;
    case DLOCK__SCHEME_UNIX:
        if (u->host != NULL || u->path == NULL || u->path[0] != '/' || u->db < 0) {
            abort();
        }
        break;
    case DLOCK__SCHEME_HTTP:
    case DLOCK__SCHEME_HTTPS:
        if (u->host == NULL || u->host[0] == '\0' || u->path == NULL || u->port < 1 ||
            u->port > 65535 || u->username != NULL || u->password != NULL) {
            abort();
        }
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) {
        return 0;
    }
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0'; /* an embedded NUL just ends the URL early, as it would for a caller */

    dlock__url u;
    int rc = dlock__url_parse(s, &u);
    if (rc == DLOCK_OK) {
        check_parsed(&u);
        dlock__url_free(&u);
    } else {
        if (rc != DLOCK_EINVAL || dlock_errmsg()[0] == '\0') {
            abort();
        }
        char pw[4096], msg[1024];
        snprintf(msg, sizeof msg, "%s", dlock_errmsg());
        if (password_of(s, pw, sizeof pw) > 0 && strstr(msg, pw) != NULL) {
            fprintf(stderr, "fuzz_url: the message for URL '%s' contains its password: %s\n", s,
                    msg);
            abort();
        }
        dlock_client *c = (dlock_client *)1;
        if (dlock_client_open(&c, s, NULL) != rc || c != NULL) {
            abort();
        }
        if (password_of(s, pw, sizeof pw) > 0 && strstr(dlock_errmsg(), pw) != NULL) {
            abort();
        }
    }
    free(s);
    return 0;
}
