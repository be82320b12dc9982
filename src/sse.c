/* Pub/sub over the Upstash REST API as server-sent events (shared/upstash-rest.md, "SSE
 * subscribe"): POST {base}/subscribe/<percent-encoded channel> with Accept: text/event-stream
 * and body [] answers `data: subscribe,<channel>,<n>`, then `data: message,<channel>,<payload>`
 * for each message. libcurl does the HTTP through its multi interface, so every read has a
 * deadline (curl_multi_poll) while the transfer itself never times out.
 *
 * How the stream is read, and why:
 * - Lines end at CR, LF or CRLF. Only `data:` lines count (one optional space after the colon);
 *   comments (keep-alives), `event:`, `id:` and blank lines are skipped.
 * - Whether Upstash ends each event with a blank line is unverified, so an event is taken as
 *   complete at a blank line, at the next `data:` line that starts a new event (`message,`,
 *   `subscribe,`, ...), or when no further complete line has arrived: a server writes an event
 *   whole. A payload cut by that rule is only a wasted wake-up: queue.c accepts a grant only if
 *   it matches exactly, and the waiter's next poll finds the lock anyway.
 * - A message counts only if it starts with `message,<our channel>,`: the channel is compared
 *   whole, never split at commas, since lock ids may hold commas.
 * - Stream data is plain text: Upstash never base64-encodes it, so no Upstash-Encoding header
 *   is sent on this request. */
#include "fmacros.h"

#include "sse.h"

#include "http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EVENT   ((size_t)1 << 20) /* the SDK's limit too: a longer line kills the stream */
#define ERR_SNIPPET 120               /* bytes of a refusal's body quoted in a message */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* curl_global_init counts its callers, so this one beside rest.c's is harmless. */
static void global_init(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct dlock__sse {
    CURLM *m;
    CURL *h;
    struct curl_slist *headers; /* holds the Authorization header: a secret */
    struct curl_slist *connect_to;
    char *url;
    char *display;
    char *channel;
    size_t channel_len;
    char errbuf[CURL_ERROR_SIZE];
    long status;   /* HTTP status, once the first body bytes came */
    int is_stream; /* 2xx with Content-Type text/event-stream */
    int overflow;  /* an event outgrew MAX_EVENT */
    int done;      /* the transfer ended (result in `result`) */
    CURLcode result;
    char *in; /* received stream bytes; [pos, len) not yet parsed */
    size_t pos, len, cap;
    int skip_lf;                /* the last line ended with CR: a LF right after it belongs to it */
    char body[ERR_SNIPPET + 1]; /* the start of a refusal's body, for the message */
    size_t body_len;
};

/* ---- receiving ---- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
    dlock__sse *s = userdata;
    size_t n = size * nmemb;
    if (s->status == 0) {
        char *ct = NULL;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
        curl_easy_getinfo(s->h, CURLINFO_CONTENT_TYPE, &ct);
        s->is_stream =
            s->status / 100 == 2 && ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0;
    }
    if (!s->is_stream) {
        size_t k = n < ERR_SNIPPET - s->body_len ? n : ERR_SNIPPET - s->body_len;
        memcpy(s->body + s->body_len, ptr, k);
        s->body_len += k;
        return n;
    }
    if (s->pos > 0) { /* keep the unparsed tail at the front */
        memmove(s->in, s->in + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    if (n > MAX_EVENT - s->len) {
        s->overflow = 1;
        return 0; /* fails the transfer with CURLE_WRITE_ERROR */
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n) {
            cap *= 2;
        }
        char *p = realloc(s->in, cap);
        if (p == NULL) {
            return 0;
        }
        s->in = p;
        s->cap = cap;
    }
    memcpy(s->in + s->len, ptr, n);
    s->len += n;
    return n;
}

/* Lets libcurl move data until new stream bytes arrived, the transfer ended, or the monotonic
 * deadline passed (DLOCK_ETIMEDOUT, no message). At least one pass runs, even past the
 * deadline. */
static int pump(dlock__sse *s, int64_t deadline) {
    size_t before = s->len - s->pos;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(s->m, &running) != CURLM_OK) {
            return dlock__err(DLOCK_EIO, "%s: subscribe stream: libcurl failed", s->display);
        }
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(s->m, &queued)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                s->done = 1;
                s->result = msg->data.result;
            }
        }
        if (s->done || s->len - s->pos != before) {
            return DLOCK_OK;
        }
        int64_t left = deadline - dlock__now_ms();
        if (left <= 0) {
            return DLOCK_ETIMEDOUT;
        }
        if (curl_multi_poll(s->m, NULL, 0, left > 1000 ? 1000 : (int)left, NULL) != CURLM_OK) {
            return dlock__err(DLOCK_EIO, "%s: subscribe stream: libcurl failed", s->display);
        }
    }
}

/* ---- parsing ---- */

/* Takes the next complete line from the buffer. Returns 1 with *line and *n, or 0. */
static int take_line(dlock__sse *s, const char **line, size_t *n) {
    if (s->skip_lf && s->pos < s->len) {
        s->pos += s->in[s->pos] == '\n';
        s->skip_lf = 0;
    }
    for (size_t i = s->pos; i < s->len; i++) {
        if (s->in[i] == '\n' || s->in[i] == '\r') {
            *line = s->in + s->pos;
            *n = i - s->pos;
            s->skip_lf = s->in[i] == '\r';
            s->pos = i + 1;
            return 1;
        }
    }
    return 0;
}

/* 1 if a data line's value starts an event of its own, such as "message,..." */
static int starts_event(const char *v, size_t n) {
    static const char *const types[] = {"message,",  "subscribe,",  "unsubscribe,",
                                        "pmessage,", "psubscribe,", "punsubscribe,"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t k = strlen(types[i]);
        if (n >= k && memcmp(v, types[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

static int set_str(dlock__reply *r, const char *s, size_t n) {
    r->type = DLOCK__REPLY_STR;
    if ((r->str = malloc(n + 1)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a subscribe stream");
    }
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return DLOCK_OK;
}

/* An event's text as a reply: {"message", channel, payload} for a message on our channel, else
 * {text}. */
static int event_reply(const dlock__sse *s, const char *ev, size_t n, dlock__reply *out) {
    memset(out, 0, sizeof *out);
    size_t k = 8 + s->channel_len + 1;
    int ours = n >= k && memcmp(ev, "message,", 8) == 0 &&
               memcmp(ev + 8, s->channel, s->channel_len) == 0 && ev[k - 1] == ',';
    out->type = DLOCK__REPLY_ARRAY;
    out->elements = ours ? 3 : 1;
    if ((out->element = calloc(out->elements, sizeof *out->element)) == NULL) {
        out->elements = 0;
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a subscribe stream");
    }
    if (!ours) {
        return set_str(&out->element[0], ev, n);
    }
    int rc = set_str(&out->element[0], "message", 7);
    if (rc == DLOCK_OK) {
        rc = set_str(&out->element[1], s->channel, s->channel_len);
    }
    if (rc == DLOCK_OK) {
        rc = set_str(&out->element[2], ev + k, n - k);
    }
    return rc;
}

/* Parses the next event out of the buffer (see the top of the file for where an event ends).
 * Returns 1 with *out, 0 if none is complete, or an error. */
static int next_event(dlock__sse *s, dlock__reply *out) {
    char *ev = NULL;
    size_t evlen = 0;
    int have = 0, rc = 0;
    for (;;) {
        size_t pos = s->pos;
        int skip_lf = s->skip_lf;
        const char *line;
        size_t n;
        if (!take_line(s, &line, &n)) {
            break;
        }
        if (n == 0 && have) {
            break;
        }
        if (n < 5 || memcmp(line, "data:", 5) != 0) {
            continue; /* blank, comment, event:, id:, retry: */
        }
        const char *v = line + 5 + (n > 5 && line[5] == ' ');
        size_t vn = n - (size_t)(v - line);
        if (have && starts_event(v, vn)) {
            s->pos = pos; /* this line begins the next event */
            s->skip_lf = skip_lf;
            break;
        }
        char *p = realloc(ev, evlen + vn + 2);
        if (p == NULL) {
            free(ev);
            return dlock__err(DLOCK_ENOMEM, "out of memory reading a subscribe stream");
        }
        ev = p;
        if (have) {
            ev[evlen++] = '\n';
        }
        memcpy(ev + evlen, v, vn);
        evlen += vn;
        have = 1;
    }
    if (have) {
        rc = event_reply(s, ev, evlen, out);
        if (rc != DLOCK_OK) {
            dlock__reply_clear(out);
        } else {
            rc = 1;
        }
    }
    free(ev);
    return rc;
}

/* ---- failures ---- */

/* Why a transfer that ended (or never became a stream) failed, as a dlock code and message. */
static int ended(const dlock__config *cfg, dlock__sse *s, int opening) {
    long status = s->status;
    if (status == 0) {
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    }
    if (status != 0 && !(status / 100 == 2 && s->is_stream)) {
        char text[ERR_SNIPPET + 8];
        size_t o = 0;
        for (size_t i = 0; i < s->body_len; i++) {
            unsigned char ch = (unsigned char)s->body[i];
            text[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        text[o] = '\0';
        /* The server's text is not ours: it never goes out if it quotes the token. */
        if (cfg != NULL && cfg->rest_token != NULL && cfg->rest_token[0] != '\0' &&
            strstr(text, cfg->rest_token) != NULL) {
            snprintf(text, sizeof text, "(body withheld)");
        }
        if (status == 401) {
            return dlock__err(DLOCK_EAUTH, "%s: subscribe: the REST token was rejected (HTTP 401)",
                              s->display);
        }
        if (status == 400 || status == 404 || status == 405 || status == 501 || status / 100 == 2) {
            return dlock__err(DLOCK_ESTATE,
                              "%s: the REST server does not stream pub/sub (HTTP %ld on "
                              "/subscribe%s%s): waiters poll",
                              s->display, status, o > 0 ? ": " : "", text);
        }
        return dlock__err(DLOCK_EHTTP, "%s: subscribe: HTTP %ld: %s", s->display, status,
                          o > 0 ? text : "(empty body)");
    }
    const char *why = s->errbuf[0] != '\0' ? s->errbuf : curl_easy_strerror(s->result);
    switch (s->result) {
    case CURLE_OK:
        return dlock__err(DLOCK_EIO, "%s: the subscribe stream ended%s", s->display,
                          opening ? " before the subscription was confirmed" : "");
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return dlock__err(DLOCK_ECONNECT, "%s: subscribe: cannot connect: %s", s->display, why);
    case CURLE_OPERATION_TIMEDOUT:
        return dlock__err(DLOCK_ETIMEDOUT, "%s: subscribe: timed out: %s", s->display, why);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return dlock__err(DLOCK_ETLS, "%s: subscribe: TLS: %s", s->display, why);
    case CURLE_WRITE_ERROR:
        if (s->overflow) {
            return dlock__err(DLOCK_EPROTO, "%s: subscribe stream: an event over %zu bytes",
                              s->display, MAX_EVENT);
        }
        return dlock__err(DLOCK_ENOMEM, "out of memory reading a subscribe stream");
    default:
        return dlock__err(DLOCK_EIO, "%s: the subscribe stream broke: %s", s->display, why);
    }
}

/* ---- opening ---- */

/* base (without a trailing '/') + "/subscribe/" + the channel percent-encoded, so any byte of a
 * lock id survives the path. With tls_server_name, that name replaces the host in the URL
 * (libcurl verifies and sends SNI for the URL's host) and CURLOPT_CONNECT_TO still reaches the
 * real address. */
static int make_url(const dlock__config *cfg, dlock__sse *s) {
    const char *base = cfg->url.path, *tail = base;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    char host[300] = "";
    if (cfg->tls_server_name != NULL && cfg->url.scheme == DLOCK__SCHEME_HTTPS) {
        const char *auth = strstr(base, "://") + 3;
        tail = auth + strcspn(auth, "/");
        snprintf(host, sizeof host, "https://%s:%d", cfg->tls_server_name, cfg->url.port);
        int v6 = strchr(cfg->url.host, ':') != NULL;
        char ct[600];
        snprintf(ct, sizeof ct, "%s:%d:%s%s%s:%d", cfg->tls_server_name, cfg->url.port,
                 v6 ? "[" : "", cfg->url.host, v6 ? "]" : "", cfg->url.port);
        if ((s->connect_to = curl_slist_append(NULL, ct)) == NULL) {
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
    }
    size_t tlen = blen - (size_t)(tail - base), hlen = strlen(host);
    if ((s->url = malloc(hlen + tlen + 11 + 3 * s->channel_len + 1)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    char *o = s->url;
    memcpy(o, host, hlen);
    memcpy(o + hlen, tail, tlen);
    o += hlen + tlen;
    memcpy(o, "/subscribe/", 11);
    o += 11;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s->channel_len; i++) {
        unsigned char c = (unsigned char)s->channel[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return DLOCK_OK;
}

static int add_header(dlock__sse *s, const char *h) {
    struct curl_slist *l = curl_slist_append(s->headers, h);
    if (l == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    s->headers = l;
    return DLOCK_OK;
}

static int make_headers(const dlock__config *cfg, dlock__sse *s) {
    /* The headers @upstash/redis sends on a subscribe, less Upstash-Encoding (see the top). */
    const char *fixed[] = {"Content-Type: application/json", "Accept: text/event-stream",
                           "Cache-Control: no-cache", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        int rc = add_header(s, fixed[i]);
        if (rc != DLOCK_OK) {
            return rc;
        }
    }
    if (cfg->rest_token == NULL) {
        return DLOCK_OK;
    }
    size_t n = sizeof "Authorization: Bearer " + strlen(cfg->rest_token);
    char *auth = malloc(n);
    if (auth == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    snprintf(auth, n, "Authorization: Bearer %s", cfg->rest_token);
    int rc = add_header(s, auth);
    explicit_bzero(auth, n);
    free(auth);
    return rc;
}

/* The transfer's options: the same security choices as the REST transport (rest.c), and no
 * overall timeout, since a stream lasts as long as the wait. Never CURLOPT_VERBOSE: it would
 * print the Authorization header. */
static void set_options(const dlock__config *cfg, dlock__sse *s, long connect_ms) {
    CURL *h = s->h;
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "[]");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 2L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    dlock__http_setup(h, cfg, s->connect_to);
}

static int start(const dlock__config *cfg, dlock__sse *s, const char *channel, size_t len,
                 int64_t deadline) {
    if ((s->display = strdup(cfg->display)) == NULL || (s->channel = malloc(len + 1)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    memcpy(s->channel, channel, len);
    s->channel[len] = '\0';
    s->channel_len = len;
    int rc = make_url(cfg, s);
    if (rc == DLOCK_OK) {
        rc = make_headers(cfg, s);
    }
    if (rc != DLOCK_OK) {
        return rc;
    }
    if ((s->m = curl_multi_init()) == NULL || (s->h = curl_easy_init()) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "cannot create a libcurl handle");
    }
    int64_t left = deadline - dlock__now_ms();
    long connect_ms = cfg->connect_timeout_ms < left ? cfg->connect_timeout_ms : (long)left;
    set_options(cfg, s, connect_ms > 0 ? connect_ms : 1);
    if (curl_multi_add_handle(s->m, s->h) != CURLM_OK) {
        return dlock__err(DLOCK_ENOMEM, "cannot start a libcurl transfer");
    }
    return DLOCK_OK;
}

/* 1 if event reply r is the confirmation "subscribe,<our channel>,<count>". */
static int confirms(const dlock__sse *s, const dlock__reply *r) {
    if (r->elements != 1) {
        return 0;
    }
    const char *t = r->element[0].str;
    size_t n = r->element[0].len;
    return n > 10 + s->channel_len + 1 && memcmp(t, "subscribe,", 10) == 0 &&
           memcmp(t + 10, s->channel, s->channel_len) == 0 && t[10 + s->channel_len] == ',';
}

int dlock__sse_open(const dlock__config *cfg, const char *channel, size_t len, dlock__sse **out) {
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        return dlock__err(DLOCK_ESYS, "%s: curl_global_init failed", cfg->display);
    }
    dlock__sse *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    int64_t deadline = dlock__deadline_in(cfg->command_timeout_ms);
    int rc = start(cfg, s, channel, len, deadline);
    while (rc == DLOCK_OK) {
        dlock__reply r;
        int got = next_event(s, &r);
        if (got == 1) {
            int ok = confirms(s, &r);
            dlock__reply_clear(&r);
            if (ok) {
                *out = s;
                return DLOCK_OK;
            }
            continue;
        }
        if (got < 0) {
            rc = got;
        } else if (s->done) {
            rc = ended(cfg, s, 1);
        } else if ((rc = pump(s, deadline)) == DLOCK_ETIMEDOUT) {
            rc = dlock__err(DLOCK_ETIMEDOUT,
                            "%s: subscribe: no confirmation within command_timeout_ms (%d ms)",
                            s->display, cfg->command_timeout_ms);
        } else if (rc == DLOCK_OK && s->status != 0 && !s->is_stream) {
            rc = ended(cfg, s, 1); /* a refusal: no need to wait for its body to end */
        }
    }
    dlock__sse_close(s);
    return rc;
}

int dlock__sse_read(dlock__sse *s, dlock__reply *out, int64_t deadline_ms) {
    memset(out, 0, sizeof *out);
    for (;;) {
        int got = next_event(s, out);
        if (got != 0) {
            return got < 0 ? got : DLOCK_OK;
        }
        if (s->done) {
            return ended(NULL, s, 0);
        }
        int rc = pump(s, deadline_ms);
        if (rc != DLOCK_OK) {
            return rc;
        }
    }
}

void dlock__sse_close(dlock__sse *s) {
    if (s == NULL) {
        return;
    }
    if (s->m != NULL && s->h != NULL) {
        curl_multi_remove_handle(s->m, s->h);
    }
    if (s->h != NULL) {
        curl_easy_cleanup(s->h);
    }
    if (s->m != NULL) {
        curl_multi_cleanup(s->m);
    }
    for (struct curl_slist *l = s->headers; l != NULL; l = l->next) {
        explicit_bzero(l->data, strlen(l->data));
    }
    curl_slist_free_all(s->headers);
    curl_slist_free_all(s->connect_to);
    free(s->url);
    free(s->display);
    free(s->channel);
    free(s->in);
    free(s);
}

long dlock__sse_http_version(const dlock__sse *s) {
    long v = 0;
    curl_easy_getinfo(s->h, CURLINFO_HTTP_VERSION, &v);
    return v;
}
