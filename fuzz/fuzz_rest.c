/* Fuzz target: arbitrary bytes as the body of an Upstash REST reply, through the REST
 * transport's decoder (dlock__rest_decode: the JSON envelopes {"result": ...} / {"error": ...},
 * base64 strings, pipelines, the shared reply builder's limits) and dlock__rest_error_text (the
 * body of a failed request).
 *
 * The first byte picks how many replies the body must hold (1 to 4, a pipeline above 1).
 * Checks: no crash, leak or undefined behaviour; a success yields well-formed replies; a failure
 * is EPROTO or ENOMEM; error_text always produces a terminated string. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_reply(const dlock__reply *r, int depth) {
    if (depth > DLOCK__REPLY_MAX_DEPTH) {
        abort();
    }
    if (r->type == DLOCK__REPLY_STR || r->type == DLOCK__REPLY_ERROR) {
        if (r->str == NULL || r->str[r->len] != '\0') {
            abort();
        }
    } else if (r->type == DLOCK__REPLY_ARRAY) {
        if ((r->elements > 0) != (r->element != NULL)) {
            abort();
        }
        for (size_t i = 0; i < r->elements; i++) {
            check_reply(&r->element[i], depth + 1);
        }
    } else if (r->type != DLOCK__REPLY_NIL && r->type != DLOCK__REPLY_INT) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 100000) {
        return 0;
    }
    size_t n = 1 + data[0] % 4;
    size_t len = size - 1;
    char *body = malloc(len + 1); /* exactly the body's bytes: an overread shows under ASan */
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data + 1, len);

    dlock__reply replies[4];
    memset(replies, 0, sizeof replies);
    int rc = dlock__rest_decode(body, len, n, replies);
    if (rc == DLOCK_OK) {
        for (size_t i = 0; i < n; i++) {
            check_reply(&replies[i], 0);
        }
    } else if (rc != DLOCK_EPROTO && rc != DLOCK_ENOMEM) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        dlock__reply_clear(&replies[i]);
    }
    char text[256];
    memset(text, 'x', sizeof text);
    (void)dlock__rest_error_text(body, len, text, sizeof text);
    if (memchr(text, '\0', sizeof text) == NULL) {
        abort();
    }
    free(body);
    return 0;
}
