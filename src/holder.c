/* The holder record (holder.h). Best effort throughout: the record only informs operators, so
 * its failures keep their message out of the caller's dlock_errmsg(). */
#include "fmacros.h"

#include "holder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_quietly(dlock_client *c, int argc, const char **argv, const size_t *lens) {
    char saved[512];
    snprintf(saved, sizeof saved, "%s", dlock_errmsg());
    dlock__reply r;
    if (dlock__client_call(c, argc, argv, lens, &r, NULL) == DLOCK_OK) {
        dlock__reply_clear(&r);
    }
    if (saved[0] == '\0') {
        dlock__err_clear();
    } else {
        dlock__err(0, "%s", saved);
    }
}

void dlock__holder_write(dlock_client *c, const char *key, size_t key_len, const char *token,
                         size_t token_len, const char *text, int64_t ms) {
    size_t text_len = strlen(text), n = token_len + 1 + text_len;
    char *value = malloc(n);
    if (value == NULL) {
        return;
    }
    memcpy(value, token, token_len);
    value[token_len] = '\n';
    memcpy(value + token_len + 1, text, text_len);
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)ms);
    const char *argv[] = {"SET", key, value, "PX", px};
    size_t lens[] = {3, key_len, n, 2, (size_t)pxlen};
    run_quietly(c, ms > 0 ? 5 : 3, argv, lens);
    free(value);
}

void dlock__holder_touch(dlock_client *c, const char *key, size_t key_len, int64_t ms) {
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)ms);
    const char *argv[] = {ms > 0 ? "PEXPIRE" : "PERSIST", key, px};
    size_t lens[] = {ms > 0 ? 7u : 7u, key_len, (size_t)pxlen};
    run_quietly(c, ms > 0 ? 3 : 2, argv, lens);
}
