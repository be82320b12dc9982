/* Replies: the one builder of dlock__reply trees that every transport uses (RESP through hiredis's
 * reader callbacks, REST from JSON), and the one reading of Redis's error replies. This file is a
 * leaf: it knows no transport and no client, as hiredis's read.c knows no socket. */
#include "fmacros.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

void dlock__reply_clear(dlock__reply *r) {
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        dlock__reply_clear(&r->element[i]);
    }
    free(r->element);
    free(r->str);
    memset(r, 0, sizeof *r);
}

void dlock__reply_int(dlock__reply *r, long long v) {
    memset(r, 0, sizeof *r);
    r->type = DLOCK__REPLY_INT;
    r->integer = v;
}

int dlock__reply_str(dlock__reply *r, dlock__reply_type type, const char *s, size_t len) {
    memset(r, 0, sizeof *r);
    r->type = type;
    if ((r->str = malloc(len + 1)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a reply");
    }
    if (s != NULL) {
        memcpy(r->str, s, len);
    }
    r->str[len] = '\0';
    r->len = len;
    return DLOCK_OK;
}

int dlock__reply_array(dlock__reply *r, size_t n, int depth) {
    memset(r, 0, sizeof *r);
    r->type = DLOCK__REPLY_ARRAY;
    if (depth >= DLOCK__REPLY_MAX_DEPTH) {
        return dlock__err(DLOCK_EPROTO, "reply nested deeper than %d arrays",
                          DLOCK__REPLY_MAX_DEPTH);
    }
    if (n > DLOCK__REPLY_MAX_ELEMENTS) {
        return dlock__err(DLOCK_EPROTO, "reply array of %zu elements (at most %d are accepted)", n,
                          DLOCK__REPLY_MAX_ELEMENTS);
    }
    if (n == 0) {
        return DLOCK_OK;
    }
    if ((r->element = calloc(n, sizeof *r->element)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a reply");
    }
    r->elements = n;
    return DLOCK_OK;
}

/* ---- error replies ---- */

static int starts(const char *s, size_t len, const char *word) {
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

dlock__srv_err dlock__reply_error_kind(const dlock__reply *r) {
    if (r == NULL || r->type != DLOCK__REPLY_ERROR) {
        return DLOCK__SRV_NONE;
    }
    const char *s = r->str;
    size_t n = r->len;
    static const struct {
        const char *prefix;
        dlock__srv_err kind;
    } table[] = {
        {"MOVED", DLOCK__SRV_MOVED},        {"ASK", DLOCK__SRV_ASK},
        {"TRYAGAIN", DLOCK__SRV_TRYAGAIN},  {"CLUSTERDOWN", DLOCK__SRV_CLUSTERDOWN},
        {"NOSCRIPT", DLOCK__SRV_NOSCRIPT},  {"READONLY", DLOCK__SRV_READONLY},
        {"UNBLOCKED", DLOCK__SRV_READONLY}, /* a demoted master ends blocked calls this way */
        {"LOADING", DLOCK__SRV_LOADING},    {"WRONGPASS", DLOCK__SRV_AUTH},
        {"NOAUTH", DLOCK__SRV_AUTH},        {"NOPERM", DLOCK__SRV_AUTH},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (starts(s, n, table[i].prefix)) {
            return table[i].kind;
        }
    }
    /* Older servers and proxies word the credential errors as plain ERR replies. */
    if (strstr(s, "invalid password") != NULL || strstr(s, "invalid username") != NULL ||
        strstr(s, "without any password configured") != NULL) {
        return DLOCK__SRV_AUTH;
    }
    return DLOCK__SRV_OTHER;
}

int dlock__reply_error_rc(const dlock__reply *r) {
    return dlock__reply_error_kind(r) == DLOCK__SRV_AUTH ? DLOCK_EAUTH : DLOCK_ESERVER;
}
