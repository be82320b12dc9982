/* Fuzz target: arbitrary bytes as the body of an Upstash REST reply. rest.c is included so that
 * its static decoder (decode_ok_body: the JSON envelopes {"result": ...} / {"error": ...}, base64
 * strings, pipelines) and error_text (the body of a failed request) are reachable.
 *
 * The first byte picks how many replies the body must hold (1 to 4, a pipeline above 1).
 * Checks: no crash, leak or undefined behaviour; a success yields well-formed replies; a failure
 * is EPROTO or ENOMEM with every reply cleared; error_text always produces a terminated string.
 * TODO(library): expose the decoder so this target need not include rest.c, e.g.
 *   int dlock__rest_decode(const char *body, size_t len, size_t n, dlock__reply *replies);
 */
#include "../src/rest.c"

#include <stdint.h>

static void check_reply(const dlock__reply *r, int depth) {
    if (depth > MAX_DEPTH + 1) {
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
    dlock__conn c;
    memset(&c, 0, sizeof c);
    c.body.data = malloc(size); /* exactly the body's bytes: an overread shows under ASan */
    if (c.body.data == NULL) {
        return 0;
    }
    memcpy(c.body.data, data + 1, size - 1);
    c.body.len = size - 1;
    c.body.cap = size;

    dlock__reply replies[4];
    memset(replies, 0, sizeof replies);
    int rc = decode_ok_body(&c, n, replies);
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
    (void)error_text(&c, text, sizeof text);
    if (memchr(text, '\0', sizeof text) == NULL) {
        abort();
    }
    free(c.body.data);
    return 0;
}
