/* The Upstash REST transport: each command is a JSON array POSTed to the base URL, a batch is an
 * array of arrays POSTed to {base}/pipeline (shared/upstash-rest.md). libcurl does HTTP, TLS and
 * connection reuse; jansson does JSON.
 *
 * Choices that differ from @upstash/redis, and why:
 * - Every argument goes out as a JSON string, numbers too ("5000", not 5000). The lock layer
 *   hands us bytes and does not know which are numbers; a string reaches Redis byte for byte,
 *   while a JSON number is at the mercy of the server's number parser (a double loses integers
 *   above 2^53). Upstash and SRH accept strings for every argument, as Redis itself only has
 *   strings.
 * - JSON strings must be UTF-8, so an argument that is not valid UTF-8 (a binary id or token)
 *   cannot be sent at all: it is refused with DLOCK_EINVAL before anything is sent. Replies have
 *   no such limit: we ask for Upstash-Encoding: base64 and decode every string to raw bytes.
 * - No retries here. The client reconnects on the next call; lock.c decides what a failed
 *   request means (it checks whether a SET took effect), which a blind resend could not. */
#include "fmacros.h"

#include "http.h"
#include "internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_BODY ((size_t)64 << 20) /* a larger reply is refused: no lock reply comes close */
#define SYNC_MAX 256                /* longest upstash-sync-token kept */
#define SNIPPET  120                /* bytes of a non-JSON error body quoted in a message */

/* ---- process-wide setup ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe in older libcurls, hence pthread_once. We never call
 * curl_global_cleanup: a library cannot know when the last user of libcurl in the process is
 * done, and the memory is reclaimed at exit. */
static void global_init(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the read-your-writes token, shared by all connections of one client ----
 *
 * Upstash returns an upstash-sync-token with each response; a request carrying it is served
 * only once the replica answering it has seen those writes. A dlock client spreads its requests
 * over pooled connections, so a token kept per connection would let a GET on one connection miss
 * a SET made on another (lock status right after acquire, the debounce GET after INCR). So the
 * token lives in the client's config, made and freed with the client. */

typedef struct sync_token {
    pthread_mutex_t mu;
    char token[SYNC_MAX];
} sync_token;

static int rest_init(const dlock__config *cfg, void **state) {
    (void)cfg;
    sync_token *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&t->mu, NULL);
    *state = t;
    return DLOCK_OK;
}

static void rest_fini(void *state) {
    sync_token *t = state;
    if (t != NULL) {
        pthread_mutex_destroy(&t->mu);
        free(t);
    }
}

/* ---- one connection ---- */

/* The request body, fed to curl by a read callback (not CURLOPT_POSTFIELDS) on purpose: when a
 * request on a reused connection gets no reply at all, curl resends it on a fresh connection,
 * which needs a rewind. Without a seek callback it cannot rewind and fails instead
 * (CURLE_SEND_FAIL_REWIND). A blind resend could run a command twice: a SET NX whose first run
 * succeeded would then answer nil, and we would report NOT_ACQUIRED for a lock we hold. Failing
 * lets lock.c ask Redis what happened. */
typedef struct upload {
    const char *data;
    size_t len, pos;
} upload;

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *userdata) {
    upload *u = userdata;
    size_t n = u->len - u->pos < size * nmemb ? u->len - u->pos : size * nmemb;
    memcpy(ptr, u->data + u->pos, n);
    u->pos += n;
    return n;
}

typedef struct buf {
    char *data;
    size_t len, cap;
    int overflow;
} buf;

struct dlock__conn {
    const dlock__config *cfg;
    CURL *h;
    sync_token *sync;           /* the client's, never NULL */
    char *url;                  /* base URL (with tls_server_name as host, if set) */
    char *url_pipeline;         /* url + "/pipeline" */
    struct curl_slist *headers; /* fixed headers; the Authorization one is a secret */
    struct curl_slist *connect_to;
    char errbuf[CURL_ERROR_SIZE];
    upload req;
    buf body;
    char resp_sync[SYNC_MAX]; /* upstash-sync-token of the current response */
    int resp_sync_seen;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    buf *b = userdata;
    size_t n = size * nmemb;
    if (n > MAX_BODY - b->len) {
        b->overflow = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
    dlock__conn *c = userdata;
    size_t n = size * nmemb;
    static const char name[] = "upstash-sync-token:";
    /* A new status line starts a new response (after a 100 Continue, say): forget the old one. */
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        c->resp_sync_seen = 0;
        c->resp_sync[0] = '\0';
    } else if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
        const char *v = ptr + sizeof name - 1, *end = ptr + n;
        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
            end--;
        }
        size_t vlen = (size_t)(end - v);
        if (vlen < sizeof c->resp_sync) { /* an absurdly long token is ignored, not cut */
            memcpy(c->resp_sync, v, vlen);
            c->resp_sync[vlen] = '\0';
            c->resp_sync_seen = 1;
        }
    }
    return n;
}

/* ---- messages ---- */

/* Replaces every occurrence of the REST token in the calling thread's message by "***". No
 * message we build contains it, but server text and curl's error buffer are not ours, and the
 * header promises that no message ever carries a token. Tokens under 4 bytes are not hunted:
 * they would match ordinary words. Returns rc. */
static int scrub(const dlock__config *cfg, int rc) {
    const char *tok = cfg->rest_token;
    size_t tlen = tok != NULL ? strlen(tok) : 0;
    const char *msg = dlock_errmsg();
    if (tlen < 4 || strstr(msg, tok) == NULL) {
        return rc;
    }
    char out[512];
    size_t o = 0;
    for (const char *p = msg; *p != '\0' && o + 4 < sizeof out;) {
        if (strncmp(p, tok, tlen) == 0) {
            memcpy(out + o, "***", 3);
            o += 3;
            p += tlen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return dlock__err(rc, "%s", out);
}

/* Copies at most SNIPPET bytes of a server's text into out, printable ASCII only, so a message
 * never carries control characters or half a UTF-8 sequence. */
static void snippet(const char *s, size_t len, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < len && i < SNIPPET && o + 4 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (len > SNIPPET && o + 4 < size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* ---- encoding the request ---- */

/* Strict UTF-8 as JSON (and jansson) demand: no overlong forms, no surrogates, <= U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return 0;
        }
        if (n - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (size_t k = 2; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += more + 1;
    }
    return 1;
}

static int encode_cmd(const dlock__cmd *cmd, json_t **out) {
    json_t *a = json_array();
    if (a == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < cmd->argc; i++) {
        if (!utf8_valid((const unsigned char *)cmd->argv[i], cmd->argvlen[i])) {
            json_decref(a);
            /* Naming the argument's position only: its bytes may be a secret token. */
            return dlock__err(DLOCK_EINVAL,
                              "REST transport: argument %d of %.16s is not valid UTF-8 (JSON "
                              "cannot carry it; use redis:// or rediss:// for binary ids and "
                              "tokens)",
                              i + 1, i == 0 ? "the command" : cmd->argv[0]);
        }
        if (json_array_append_new(a, json_stringn_nocheck(cmd->argv[i], cmd->argvlen[i])) != 0) {
            json_decref(a);
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
    }
    *out = a;
    return DLOCK_OK;
}

/* ---- decoding the reply ---- */

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict padded standard base64 into a string reply. Returns DLOCK_OK, EPROTO (with a message)
 * or ENOMEM. */
static int b64decode(const char *s, size_t n, dlock__reply *r) {
    if (n % 4 != 0) {
        return dlock__err(DLOCK_EPROTO,
                          "REST reply: a string is not base64 (length %zu); does "
                          "the server honour Upstash-Encoding: base64?",
                          n);
    }
    int rc = dlock__reply_str(r, DLOCK__REPLY_STR, NULL, n / 4 * 3);
    if (rc != DLOCK_OK) {
        return rc;
    }
    char *d = r->str;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)s[i + k];
            if (ch == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                v[k] = 0;
                pad++;
            } else if ((v[k] = b64val(ch)) < 0 || pad > 0) {
                return dlock__err(DLOCK_EPROTO, "REST reply: a string is not valid base64");
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | v[3];
        d[o++] = (char)(w >> 16);
        if (pad < 2) {
            d[o++] = (char)(w >> 8 & 0xff);
        }
        if (pad < 1) {
            d[o++] = (char)(w & 0xff);
        }
    }
    d[o] = '\0';
    r->len = o;
    return DLOCK_OK;
}

/* One `result` value into *r. Strings are base64 except a bare "OK", which Upstash leaves as it
 * is; SRH encodes it ("T0s="), which decodes to "OK" anyway. "OK" cannot be mistaken for base64
 * (its length is not a multiple of 4), so it is accepted at any depth. */
static int decode_value(const json_t *v, dlock__reply *r, int depth) {
    memset(r, 0, sizeof *r);
    switch (json_typeof(v)) {
    case JSON_NULL:
        r->type = DLOCK__REPLY_NIL;
        return DLOCK_OK;
    case JSON_INTEGER:
        dlock__reply_int(r, (long long)json_integer_value(v));
        return DLOCK_OK;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 2 && memcmp(s, "OK", 2) == 0) {
            return dlock__reply_str(r, DLOCK__REPLY_STR, "OK", 2);
        }
        return b64decode(s, n, r);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        int rc = dlock__reply_array(r, n, depth);
        if (rc != DLOCK_OK) {
            return dlock__err_prefix(rc, "REST reply");
        }
        for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
            rc = decode_value(json_array_get(v, i), &r->element[i], depth + 1);
        }
        return rc;
    }
    default:
        /* Redis (RESP2) has no floats, booleans or maps: such a reply is not from Redis. */
        return dlock__err(DLOCK_EPROTO, "REST reply: unexpected JSON %s in a result",
                          json_is_object(v) ? "object"
                          : json_is_real(v) ? "real number"
                                            : "boolean");
    }
}

/* One envelope, {"result": X} or {"error": "text"}, into *r. */
static int decode_envelope(const json_t *env, dlock__reply *r) {
    memset(r, 0, sizeof *r);
    if (!json_is_object(env)) {
        return dlock__err(DLOCK_EPROTO, "REST reply: expected a JSON object with \"result\" or "
                                        "\"error\"");
    }
    const json_t *err = json_object_get(env, "error");
    if (err != NULL) {
        if (!json_is_string(err)) {
            return dlock__err(DLOCK_EPROTO, "REST reply: \"error\" is not a string");
        }
        return dlock__reply_str(r, DLOCK__REPLY_ERROR, json_string_value(err),
                                json_string_length(err));
    }
    const json_t *res = json_object_get(env, "result");
    if (res == NULL) {
        return dlock__err(DLOCK_EPROTO, "REST reply: the object has neither \"result\" nor "
                                        "\"error\"");
    }
    return decode_value(res, r, 0);
}

int dlock__rest_decode(const char *body, size_t len, size_t n, dlock__reply *replies) {
    json_error_t je;
    json_t *root = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return dlock__err(DLOCK_EPROTO, "REST reply is not valid JSON (%s at byte %d of %zu)",
                          je.text, je.position, len);
    }
    int rc = DLOCK_OK;
    if (n == 1) {
        rc = decode_envelope(root, &replies[0]);
    } else if (!json_is_array(root) || json_array_size(root) != n) {
        rc = dlock__err(DLOCK_EPROTO, "REST pipeline reply: expected an array of %zu objects", n);
    } else {
        for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
            rc = decode_envelope(json_array_get(root, i), &replies[i]);
        }
    }
    json_decref(root);
    return rc;
}

/* The server's explanation of a failed request: the "error" of a JSON body, else a printable
 * snippet of the body. Returns 1 if it was a proper {"error": "..."} envelope. */
int dlock__rest_error_text(const char *body, size_t len, char *out, size_t size) {
    json_t *root = json_loadb(body != NULL ? body : "", len, 0, NULL);
    const json_t *e = json_is_object(root) ? json_object_get(root, "error") : NULL;
    int ok = json_is_string(e);
    if (ok) {
        snprintf(out, size, "%s", json_string_value(e));
    } else if (len > 0) {
        snippet(body, len, out, size);
    } else {
        snprintf(out, size, "(empty body)");
    }
    json_decref(root);
    return ok;
}

/* ---- one HTTP exchange ---- */

static int curl_failure(dlock__conn *c, CURLcode cc, int *sent) {
    const char *why = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        *sent = 0;
        return dlock__err(DLOCK_ECONNECT, "cannot connect: %s", why);
    case CURLE_OPERATION_TIMEDOUT: {
        /* Sent if curl wrote the request headers (request size) or at least got to the point of
         * sending (pretransfer); otherwise it timed out while still connecting. */
        curl_off_t pre = 0;
        long reqsize = 0;
        curl_easy_getinfo(c->h, CURLINFO_PRETRANSFER_TIME_T, &pre);
        curl_easy_getinfo(c->h, CURLINFO_REQUEST_SIZE, &reqsize);
        *sent = pre > 0 || reqsize > 0;
        return dlock__err(DLOCK_ETIMEDOUT, "timed out: %s", why);
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        *sent = 0; /* the handshake comes before the request */
        return dlock__err(DLOCK_ETLS, "TLS: %s", why);
    case CURLE_OUT_OF_MEMORY:
        return dlock__err(DLOCK_ENOMEM, "out of memory in libcurl");
    case CURLE_WRITE_ERROR:
        if (c->body.overflow) {
            return dlock__err(DLOCK_EPROTO, "REST reply is larger than %zu bytes", MAX_BODY);
        }
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a reply");
    case CURLE_SEND_FAIL_REWIND:
        return dlock__err(DLOCK_EIO, "the server closed the connection without a reply (the "
                                     "request may have been carried out; not resent)");
    case CURLE_PARTIAL_FILE:
        return dlock__err(DLOCK_EPROTO, "REST reply truncated: %s", why);
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return dlock__err(DLOCK_EPROTO, "malformed HTTP reply: %s", why);
    default:
        return dlock__err(DLOCK_EIO, "HTTP request failed: %s", why);
    }
}

/* POSTs `body` to `url` before `deadline` and leaves the reply in c->body. Returns DLOCK_OK with
 * the status in *status, or a failure. */
static int post(dlock__conn *c, const char *url, const char *body, int64_t deadline, long *status,
                int *sent) {
    *sent = 0;
    int64_t left = deadline - dlock__now_ms();
    if (left <= 0) {
        return dlock__err(DLOCK_ETIMEDOUT, "timed out before the request could be sent");
    }
    c->body.len = 0;
    c->body.overflow = 0;
    c->errbuf[0] = '\0';
    c->resp_sync_seen = 0;

    /* The sync token goes first in a list node on our stack, ahead of the fixed headers, so no
     * request allocates a header list. Sent only when non-empty: libcurl drops a header with an
     * empty value anyway. */
    char synchdr[sizeof "upstash-sync-token: " + SYNC_MAX];
    struct curl_slist first = {synchdr, c->headers};
    struct curl_slist *headers = c->headers;
    if (c->sync != NULL) {
        pthread_mutex_lock(&c->sync->mu);
        if (c->sync->token[0] != '\0') {
            snprintf(synchdr, sizeof synchdr, "upstash-sync-token: %s", c->sync->token);
            headers = &first;
        }
        pthread_mutex_unlock(&c->sync->mu);
    }
    long connect_ms = c->cfg->connect_timeout_ms < left ? c->cfg->connect_timeout_ms : (long)left;
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, headers);
    c->req = (upload){body, strlen(body), 0};
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req.len);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)(left > LONG_MAX ? LONG_MAX : left));
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    /* Past this point bytes may leave: report them as possibly sent unless curl tells us the
     * failure came before the request (curl_failure). */
    *sent = 1;
    CURLcode cc = curl_easy_perform(c->h);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers); /* `first` dies with this frame */
    if (cc != CURLE_OK) {
        return curl_failure(c, cc, sent);
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300 && c->sync != NULL) {
        /* As @upstash/redis: every 2xx replaces the token, with "" when the header is absent. */
        pthread_mutex_lock(&c->sync->mu);
        snprintf(c->sync->token, sizeof c->sync->token, "%s",
                 c->resp_sync_seen ? c->resp_sync : "");
        pthread_mutex_unlock(&c->sync->mu);
    }
    return DLOCK_OK;
}

static int rest_exec(dlock__conn *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                     int64_t deadline, int *sent) {
    *sent = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&replies[i], 0, sizeof replies[i]);
    }
    if (n == 0) {
        return DLOCK_OK;
    }
    /* One command is one array to the base URL; more are an array of arrays to /pipeline,
     * which runs them in order, not atomically, like RESP pipelining. */
    json_t *root = NULL;
    int rc = DLOCK_OK;
    if (n == 1) {
        rc = encode_cmd(&cmds[0], &root);
    } else if ((root = json_array()) == NULL) {
        rc = dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    for (size_t i = 0; n > 1 && i < n && rc == DLOCK_OK; i++) {
        json_t *one = NULL;
        if ((rc = encode_cmd(&cmds[i], &one)) == DLOCK_OK && json_array_append_new(root, one)) {
            rc = dlock__err(DLOCK_ENOMEM, "out of memory");
        }
    }
    char *body = NULL;
    if (rc == DLOCK_OK && (body = json_dumps(root, JSON_COMPACT)) == NULL) {
        rc = dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    json_decref(root);
    long status = 0;
    if (rc == DLOCK_OK) {
        rc = post(c, n == 1 ? c->url : c->url_pipeline, body, deadline, &status, sent);
    }
    free(body);
    if (rc != DLOCK_OK) {
        return scrub(c->cfg, rc);
    }

    char text[300];
    if (status >= 200 && status < 300) {
        rc = dlock__rest_decode(c->body.data, c->body.len, n, replies);
    } else if (status == 401) {
        dlock__rest_error_text(c->body.data, c->body.len, text, sizeof text);
        rc = dlock__err(DLOCK_EAUTH, "the REST token was rejected (HTTP 401): %s%s", text,
                        c->cfg->rest_token == NULL ? " (no rest_token was given)" : "");
    } else if (status == 400 &&
               dlock__rest_error_text(c->body.data, c->body.len, text, sizeof text)) {
        /* Redis refused the command (Upstash answers 400 {"error"} on the single-command route;
         * on /pipeline a 400 means the whole batch was refused). Hand it up as Redis's error
         * reply so callers treat it exactly like RESP's: NOSCRIPT fallback, WRONGTYPE, ... */
        for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
            rc = dlock__reply_str(&replies[i], DLOCK__REPLY_ERROR, text, strlen(text));
        }
    } else {
        dlock__rest_error_text(c->body.data, c->body.len, text, sizeof text);
        rc = dlock__err(DLOCK_EHTTP, "HTTP %ld from the REST server: %s", status, text);
    }
    if (rc != DLOCK_OK) {
        for (size_t i = 0; i < n; i++) {
            dlock__reply_clear(&replies[i]);
        }
        return scrub(c->cfg, rc);
    }
    return DLOCK_OK;
}

/* 1 unless the connection curl keeps for us has been closed by the server (EOF or error on its
 * socket). curl would notice and reconnect by itself, but only by failing a request on the dead
 * connection first and retrying it; dropping the handle here avoids that resend. Readable data
 * on an idle connection is not taken as death: it may be a TLS session ticket or an HTTP/2
 * frame, which curl consumes. */
static int rest_alive(dlock__conn *c) {
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
        return 1; /* no connection kept: the next request simply makes one */
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) {
        return 1;
    }
    if (p.revents & (POLLERR | POLLNVAL)) {
        return 0;
    }
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r != 0; /* 0 = orderly EOF */
}

static void rest_close(dlock__conn *c) {
    if (c == NULL) {
        return;
    }
    if (c->h != NULL) {
        curl_easy_cleanup(c->h);
    }
    for (struct curl_slist *s = c->headers; s != NULL; s = s->next) {
        explicit_bzero(s->data, strlen(s->data)); /* the Authorization header */
    }
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->connect_to);
    free(c->url);
    free(c->url_pipeline);
    free(c->body.data);
    free(c);
}

/* The base URL, with the host replaced by tls_server_name when one is set: libcurl verifies and
 * sends SNI for the URL's host, so the name goes into the URL and CURLOPT_CONNECT_TO sends the
 * connection to the real address. */
static int make_urls(const dlock__config *cfg, dlock__conn *c) {
    const char *base = cfg->url.path;
    char *url = NULL;
    if (cfg->tls_server_name != NULL && cfg->url.scheme == DLOCK__SCHEME_HTTPS) {
        const char *auth = strstr(base, "://") + 3;
        const char *tail = auth + strcspn(auth, "/?#");
        int k = asprintf(&url, "https://%s:%d%s", cfg->tls_server_name, cfg->url.port, tail);
        char *ct = NULL;
        int j = asprintf(&ct, "%s:%d:%s%s%s:%d", cfg->tls_server_name, cfg->url.port,
                         strchr(cfg->url.host, ':') ? "[" : "", cfg->url.host,
                         strchr(cfg->url.host, ':') ? "]" : "", cfg->url.port);
        if (k < 0 || j < 0) {
            free(j < 0 ? NULL : ct);
            free(k < 0 ? NULL : url);
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        c->connect_to = curl_slist_append(NULL, ct);
        free(ct);
        if (c->connect_to == NULL) {
            free(url);
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
    } else if ((url = strdup(base)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    c->url = url;
    if (asprintf(&c->url_pipeline, "%s/pipeline", url) < 0) {
        c->url_pipeline = NULL;
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    return DLOCK_OK;
}

static int setup_handle(const dlock__config *cfg, dlock__conn *c) {
    if ((c->h = curl_easy_init()) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "cannot create a libcurl handle");
    }
    int rc = make_urls(cfg, c);
    if (rc != DLOCK_OK) {
        return rc;
    }
    /* The token lives in this header list and nowhere else in curl: never turn on
     * CURLOPT_VERBOSE, which would print it. "Expect:" stops curl from waiting for a
     * 100 Continue before sending a larger body (an EVAL), which costs up to a second. */
    const char *fixed[] = {"Content-Type: application/json", "Upstash-Encoding: base64", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        struct curl_slist *s = curl_slist_append(c->headers, fixed[i]);
        if (s == NULL) {
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        c->headers = s;
    }
    if (cfg->rest_token != NULL) {
        char *auth = NULL;
        if (asprintf(&auth, "Authorization: Bearer %s", cfg->rest_token) < 0) {
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        struct curl_slist *s = curl_slist_append(c->headers, auth);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        if (s == NULL) {
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        c->headers = s;
    }
    CURL *h = c->h;
    /* Timeouts without signals: the client is used from many threads. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &c->req);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    dlock__http_setup(h, cfg, c->connect_to);
    return DLOCK_OK;
}

/* Proves the endpoint answers and takes our token with one PING, within the connect deadline,
 * so a dead endpoint or a bad token fails at dlock_client_open. */
static int handshake(const dlock__config *cfg, dlock__conn *c) {
    const char *argv[] = {"ping"};
    size_t lens[] = {4};
    dlock__cmd cmd = {1, argv, lens};
    dlock__reply r;
    int sent;
    int rc = rest_exec(c, &cmd, 1, &r, dlock__deadline_in(cfg->connect_timeout_ms), &sent);
    if (rc == DLOCK_ETIMEDOUT) {
        return dlock__err(rc, "%s: no answer within connect_timeout_ms (%d ms)", cfg->display,
                          cfg->connect_timeout_ms);
    }
    if (rc != DLOCK_OK) {
        return dlock__err_prefix(rc, "%s", cfg->display);
    }
    if (r.type == DLOCK__REPLY_ERROR) {
        /* A server that refuses PING (a command allow-list) has still accepted the token:
         * authentication comes first. Only an auth error is fatal. */
        if (dlock__reply_error_kind(&r) == DLOCK__SRV_AUTH) {
            rc =
                dlock__err(DLOCK_EAUTH, "%s: the REST token was rejected: %s", cfg->display, r.str);
        }
    } else if (r.type != DLOCK__REPLY_STR || r.len != 4 || memcmp(r.str, "PONG", 4) != 0) {
        /* A server that ignores Upstash-Encoding: base64 sends "PONG" raw, which decodes to
         * other bytes: catch it here rather than corrupt values later. */
        rc = dlock__err(DLOCK_EPROTO,
                        "%s: PING did not return PONG through the REST API (does the server "
                        "honour Upstash-Encoding: base64?)",
                        cfg->display);
    }
    dlock__reply_clear(&r);
    return scrub(cfg, rc);
}

static int rest_connect(const dlock__config *cfg, dlock__conn **out) {
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        return dlock__err(DLOCK_ESYS, "%s: curl_global_init failed: %s", cfg->display,
                          curl_easy_strerror(global_rc));
    }
    dlock__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    c->cfg = cfg;
    int rc = setup_handle(cfg, c);
    c->sync = cfg->tp_state;
    if (rc == DLOCK_OK) {
        rc = handshake(cfg, c);
    } else {
        dlock__err_prefix(rc, "%s", cfg->display);
    }
    if (rc != DLOCK_OK) {
        rest_close(c);
        return rc;
    }
    *out = c;
    return DLOCK_OK;
}

const dlock__transport dlock__rest_transport = {
    .name = "rest",
    .init = rest_init,
    .fini = rest_fini,
    .connect = rest_connect,
    .exec = rest_exec,
    .alive = rest_alive,
    .close = rest_close,
};
