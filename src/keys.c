/* The keys beside a lock id (fencing counter, wait queue, grant channels), named so that Redis
 * Cluster puts them in the id's slot and every script stays single-slot. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slot hashing uses the text between the first '{' and the next '}' when that is non-empty,
 * else the whole key. */
char *dlock__sibling_key(const char *id, size_t idlen, const char *name, size_t *len, int *ok) {
    const char *open = strchr(id, '{');
    const char *close = open != NULL ? strchr(open + 1, '}') : NULL;
    size_t n = strlen(name);
    char *k;
    *ok = 1;
    if (open != NULL && close != NULL && close > open + 1) {
        size_t tag = (size_t)(close - open - 1);
        *len = tag + n + 4 + idlen;
        if ((k = malloc(*len + 1)) != NULL) {
            snprintf(k, *len + 1, "{%.*s}:%s:%s", (int)tag, open + 1, name, id);
        }
    } else if (open != NULL || strchr(id, '}') != NULL) {
        *ok = 0;
        return NULL;
    } else {
        *len = idlen + n + 3;
        if ((k = malloc(*len + 1)) != NULL) {
            snprintf(k, *len + 1, "{%s}:%s", id, name);
        }
    }
    return k;
}
