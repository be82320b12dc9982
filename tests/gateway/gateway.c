/* dlock_rest_gateway: a small Upstash-REST-compatible HTTP(S) gateway in front of a real
 * redis-server, for the tests of dlock's REST transport and for interop with @upstash/redis.
 * It follows shared/upstash-rest.md: POST /, /pipeline, /multi-exec; Bearer token; JSON numbers
 * passed to Redis as their text; {"result"} / 400 {"error"}; Upstash-Encoding: base64; an
 * upstash-sync-token on each 2xx. Plus fault modes for the tests (see README.md).
 *
 * One Redis connection, used under a mutex for a whole request: requests are serialised, which
 * is plenty for tests, and a /multi-exec can never interleave with another request's commands.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (16 << 20)

static const char *g_token, *g_redis, *g_fault, *g_log;
static _Atomic int g_stop; /* set on SIGTERM: hanging requests give up */
static redisContext *g_rc;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* g_rc, g_sync, the log file */
static unsigned long g_sync;
/* What the gateway served (GET /gateway-stats): HTTP command requests, the commands in them
 * (a pipeline counts each), SSE streams opened, and messages sent on them. */
static atomic_ulong g_stat_requests, g_stat_commands, g_stat_streams, g_stat_messages;

enum route { R_SINGLE, R_PIPELINE, R_MULTI };

typedef struct req {
    char *body;
    size_t len;
    int too_big;
} req;

/* ---- small helpers ---- */

static char *b64enc(const char *s, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        v |= i + 1 < n ? (unsigned char)s[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned char)s[i + 2] : 0;
        *p++ = t[v >> 18 & 63];
        *p++ = t[v >> 12 & 63];
        *p++ = i + 1 < n ? t[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? t[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

static void logf_(const char *fmt, ...) {
    if (g_log == NULL) {
        return;
    }
    FILE *f = fopen(g_log, "a");
    if (f == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned status, const char *body,
                                 int with_sync) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (with_sync && status / 100 == 2) {
        char tok[32];
        pthread_mutex_lock(&g_mu);
        snprintf(tok, sizeof tok, "gw-%lu", ++g_sync);
        pthread_mutex_unlock(&g_mu);
        MHD_add_response_header(r, "upstash-sync-token", tok);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *msg) {
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = json_dumps(o, JSON_COMPACT);
    enum MHD_Result ret = send_body(conn, status, s, 0);
    free(s);
    json_decref(o);
    return ret;
}

/* ---- fault modes ---- */

typedef struct trunc_state {
    char *data;
    size_t len;
} trunc_state;

static ssize_t trunc_read(void *cls, uint64_t pos, char *buf, size_t max) {
    trunc_state *t = cls;
    if (pos >= t->len) {
        return MHD_CONTENT_READER_END_WITH_ERROR; /* close mid-body */
    }
    size_t n = t->len - pos < max ? t->len - pos : max;
    memcpy(buf, t->data + pos, n);
    return (ssize_t)n;
}

static void trunc_free(void *cls) {
    trunc_state *t = cls;
    free(t->data);
    free(t);
}

/* Answers with the fault; returns MHD_NO to drop the connection. */
static enum MHD_Result fault(struct MHD_Connection *conn, const char *mode) {
    if (strcmp(mode, "malformed") == 0) {
        return send_body(conn, 200, "{\"result\": T0s=}", 1);
    }
    if (strcmp(mode, "shape") == 0) {
        return send_body(conn, 200, "{\"answer\":42}", 1);
    }
    if (strcmp(mode, "http500") == 0) {
        return send_error(conn, 500, "injected fault: internal server error");
    }
    if (strcmp(mode, "http503") == 0) {
        return send_body(conn, 503, "<html>Service Unavailable</html>", 0);
    }
    if (strcmp(mode, "close") == 0) {
        return MHD_NO;
    }
    if (strcmp(mode, "hang") == 0) {
        /* Never answer (thread per connection, so only this client waits); bounded so a
         * leftover gateway does not hold a thread forever. */
        for (int i = 0; i < 1200 && !g_stop; i++) {
            usleep(50 * 1000);
        }
        return MHD_NO;
    }
    if (strcmp(mode, "truncated") == 0) {
        trunc_state *t = malloc(sizeof *t);
        t->data = strdup("{\"result\":\"aGVsbG8gd29ybGQ=\"}");
        t->len = 10; /* of 28 bytes promised below */
        struct MHD_Response *r =
            MHD_create_response_from_callback(28, 64, trunc_read, t, trunc_free);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_error(conn, 500, "gateway: unknown fault mode");
}

/* ---- Redis ---- */

/* Shortest text that reads back as the same double: what JS would have printed. */
static void real_text(double d, char *out, size_t size) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, d);
        if (strtod(out, NULL) == d) {
            return;
        }
    }
}

/* JSON array of arguments into argv/lens (pointers into the JSON or into `store`). */
static int to_args(json_t *cmd, const char **argv, size_t *lens, char (*store)[32], size_t max) {
    size_t n = json_array_size(cmd);
    if (!json_is_array(cmd) || n == 0 || n > max) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(cmd, i);
        if (json_is_string(v)) {
            argv[i] = json_string_value(v);
            lens[i] = json_string_length(v);
            continue;
        }
        if (json_is_integer(v)) {
            /* The integer's own text, never via a double: 1000000 stays "1000000". */
            snprintf(store[i], sizeof store[i], "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            real_text(json_real_value(v), store[i], sizeof store[i]);
        } else if (json_is_boolean(v)) {
            snprintf(store[i], sizeof store[i], "%s", json_is_true(v) ? "true" : "false");
        } else {
            return -1;
        }
        argv[i] = store[i];
        lens[i] = strlen(store[i]);
    }
    return (int)n;
}

/* A Redis reply as JSON. Strings are base64 when asked, except a top-level "OK" status, which
 * Upstash leaves alone; inside arrays "OK" is encoded too (the SDK's array decoder would turn a
 * bare "OK" into garbage). Returns NULL for a string that cannot go out as JSON. */
static json_t *to_json(const redisReply *r, int b64, int top) {
    switch (r->type) {
    case REDIS_REPLY_NIL:
        return json_null();
    case REDIS_REPLY_INTEGER:
        return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < r->elements; i++) {
            json_t *e = to_json(r->element[i], b64, 0);
            if (e == NULL) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, e);
        }
        return a;
    }
    default: /* string, status, or an error nested in an array (sent as its text) */
        if (!b64 || (top && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0)) {
            return json_stringn(r->str, r->len); /* NULL if not UTF-8 */
        }
        char *e = b64enc(r->str, r->len);
        json_t *s = json_string(e);
        free(e);
        return s;
    }
}

/* {"result": X} or {"error": "..."} for one reply. */
static json_t *envelope(const redisReply *r, int b64) {
    if (r == NULL) {
        return json_pack("{s:s}", "error", "ERR gateway lost its Redis connection");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return json_pack("{s:s%}", "error", r->str, r->len);
    }
    json_t *v = to_json(r, b64, 1);
    if (v == NULL) {
        return json_pack("{s:s}", "error",
                         "ERR reply is not valid UTF-8; send Upstash-Encoding: base64");
    }
    return json_pack("{s:o}", "result", v);
}

/* A new connection to --redis, or NULL. */
static redisContext *redis_connect(void) {
    struct timeval tv = {5, 0};
    redisContext *rc;
    if (g_redis[0] == '/') {
        rc = redisConnectUnixWithTimeout(g_redis, tv);
    } else {
        char host[256];
        snprintf(host, sizeof host, "%s", g_redis);
        char *colon = strrchr(host, ':');
        int port = colon != NULL ? atoi(colon + 1) : 6379;
        if (colon != NULL) {
            *colon = '\0';
        }
        rc = redisConnectWithTimeout(host, port, tv);
    }
    if (rc != NULL && rc->err == 0) {
        redisSetTimeout(rc, tv);
        return rc;
    }
    if (rc != NULL) {
        redisFree(rc);
    }
    return NULL;
}

static int redis_ready(void) {
    if (g_rc != NULL && g_rc->err == 0) {
        return 1;
    }
    if (g_rc != NULL) {
        redisFree(g_rc);
    }
    g_rc = redis_connect();
    return g_rc != NULL;
}

/* Runs the commands of `cmds` (an array of arrays) pipelined; wraps in MULTI/EXEC if asked.
 * Returns the JSON response body and sets *status. */
static json_t *run(json_t *cmds, enum route route, int b64, unsigned *status) {
    size_t n = json_array_size(cmds);
    *status = 200;
    pthread_mutex_lock(&g_mu);
    if (!redis_ready()) {
        pthread_mutex_unlock(&g_mu);
        *status = 500;
        return json_pack("{s:s}", "error", "gateway: unable to connect to the Redis server");
    }
    if (route == R_MULTI) {
        redisAppendCommand(g_rc, "MULTI");
    }
    for (size_t i = 0; i < n; i++) {
        const char *argv[64];
        size_t lens[64];
        char store[64][32];
        int argc = to_args(json_array_get(cmds, i), argv, lens, store, 64);
        redisAppendCommandArgv(g_rc, argc, argv, lens);
    }
    if (route == R_MULTI) {
        redisAppendCommand(g_rc, "EXEC");
    }
    size_t total = n + (route == R_MULTI ? 2 : 0);
    redisReply **rs = calloc(total, sizeof *rs);
    for (size_t i = 0; i < total; i++) {
        void *r = NULL;
        if (redisGetReply(g_rc, &r) != REDIS_OK) {
            break;
        }
        rs[i] = r;
    }
    pthread_mutex_unlock(&g_mu);

    json_t *out;
    if (route == R_SINGLE) {
        out = envelope(rs[0], b64);
        if (json_object_get(out, "error") != NULL) {
            *status = 400;
        }
    } else if (route == R_MULTI) {
        redisReply *exec = rs[total - 1];
        if (exec == NULL || exec->type != REDIS_REPLY_ARRAY) {
            out = envelope(exec, b64); /* EXECABORT, or nil for a WATCH abort */
            if (json_object_get(out, "error") != NULL) {
                *status = 400;
            }
        } else {
            out = json_array();
            for (size_t i = 0; i < exec->elements; i++) {
                json_array_append_new(out, envelope(exec->element[i], b64));
            }
        }
    } else {
        out = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(out, envelope(rs[i], b64));
        }
    }
    for (size_t i = 0; i < total; i++) {
        if (rs[i] != NULL) {
            freeReplyObject(rs[i]);
        }
    }
    free(rs);
    return out;
}

/* ---- SSE subscribe (shared/upstash-rest.md, "SSE subscribe") ----
 *
 * POST /subscribe/<channel> answers a stream of server-sent events, as Upstash does: first
 * `data: subscribe,<channel>,1`, then `data: message,<channel>,<payload>` for each message, each
 * event followed by a blank line, and a `: keepalive` comment every 15 s. Each stream holds a
 * Redis connection of its own, SUBSCRIBEd before the 200 goes out, so a PUBLISH counts it as a
 * subscriber from the moment the client sees the status; the connection is closed when the
 * client goes away, so a PUBLISH to a dead client's channel counts nobody. The path is taken as
 * one channel (percent-decoded by libmicrohttpd), slashes included. Stream data is never base64,
 * whatever Upstash-Encoding says. */

#define SSE_KEEPALIVE_MS 15000
#define SSE_CUT_MS       300 /* fault ssecut: the stream closes this long after it opened */
#define SLOW_MS          100 /* faults slow, slowstall: each command waits this long first */

enum sse_fault { SSE_OK, SSE_STALL, SSE_CUT };

typedef struct sse_state {
    redisContext *rc;
    char *channel;
    int client_fd;
    enum sse_fault fault;
    char *out; /* bytes to send before reading Redis again */
    size_t out_len, out_pos;
    long long opened_ms, last_write_ms;
} sse_state;

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends `data: TYPE,CHANNEL,PAYLOAD` framed the SSE way: a payload holding line breaks goes
 * out as one data line per line, and a blank line ends the event. */
static void sse_event(sse_state *st, const char *type, const char *payload, size_t plen) {
    size_t cap = strlen(type) + strlen(st->channel) + plen * 7 + 32;
    char *o = malloc(cap);
    size_t n = (size_t)snprintf(o, cap, "data: %s,%s,", type, st->channel);
    for (size_t i = 0; i < plen; i++) {
        if (payload[i] == '\n' || payload[i] == '\r') {
            if (payload[i] == '\r' && i + 1 < plen && payload[i + 1] == '\n') {
                i++;
            }
            memcpy(o + n, "\ndata: ", 7);
            n += 7;
        } else {
            o[n++] = payload[i];
        }
    }
    memcpy(o + n, "\n\n", 2);
    n += 2;
    free(st->out);
    st->out = o;
    st->out_len = n;
    st->out_pos = 0;
}

/* Waits up to 200 ms for one Redis reply on the subscribed connection, watching the client's
 * socket at the same time: a client that goes away (RDHUP, HUP, ERR) ends the wait at once, so
 * its subscription is dropped before a release can count it. 1 with *out, 0 if none came, -1 if
 * Redis broke, -2 if the client left. */
static int sse_redis_reply(sse_state *st, redisReply **out) {
    void *r = NULL;
    if (redisGetReplyFromReader(st->rc, &r) != REDIS_OK) {
        return -1;
    }
    if (r == NULL) {
        struct pollfd p[2] = {{.fd = st->rc->fd, .events = POLLIN},
                              {.fd = st->client_fd, .events = POLLRDHUP}};
        if (poll(p, st->client_fd >= 0 ? 2 : 1, 200) <= 0) {
            return 0;
        }
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
            return -2;
        }
        if (!(p[0].revents & POLLIN)) {
            return 0;
        }
        if (redisBufferRead(st->rc) != REDIS_OK ||
            redisGetReplyFromReader(st->rc, &r) != REDIS_OK) {
            return -1;
        }
    }
    *out = r;
    return r != NULL;
}

/* libmicrohttpd's content reader, on the connection's own thread: it blocks until it has bytes
 * to send (returning 0 would make that thread spin), or ends the stream. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse_state *st = cls;
    for (;;) {
        if (st->out_pos < st->out_len) {
            size_t n = st->out_len - st->out_pos < max ? st->out_len - st->out_pos : max;
            memcpy(buf, st->out + st->out_pos, n);
            st->out_pos += n;
            st->last_write_ms = mono_ms();
            return (ssize_t)n;
        }
        long long now = mono_ms();
        if (g_stop || (st->fault == SSE_CUT && now - st->opened_ms >= SSE_CUT_MS)) {
            return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection */
        }
        if (now - st->last_write_ms >= SSE_KEEPALIVE_MS) {
            free(st->out);
            st->out = strdup(": keepalive\n\n");
            st->out_len = strlen(st->out);
            st->out_pos = 0;
            continue;
        }
        redisReply *r = NULL;
        int got = sse_redis_reply(st, &r);
        if (got == -2) {
            return MHD_CONTENT_READER_END_OF_STREAM; /* nobody to tell: no error to log */
        }
        if (got < 0) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (got == 0) {
            continue;
        }
        int msg = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(r->element[0]->str, "message") == 0;
        if (msg && st->fault != SSE_STALL) {
            atomic_fetch_add(&g_stat_messages, 1);
            sse_event(st, "message", r->element[2]->str, r->element[2]->len);
        }
        freeReplyObject(r);
    }
}

static void sse_free(void *cls) {
    sse_state *st = cls;
    redisFree(st->rc); /* the client is gone: so is its subscription */
    free(st->channel);
    free(st->out);
    free(st);
}

static enum MHD_Result sse_subscribe(struct MHD_Connection *conn, const char *channel,
                                     const char *mode) {
    if (strcmp(mode, "nosse") == 0) {
        return send_error(conn, 404, "gateway: endpoint not found (fault nosse)");
    }
    if (strcmp(mode, "ssehang") == 0) {
        return fault(conn, "hang");
    }
    if (channel[0] == '\0') {
        return send_error(conn, 400, "ERR no channel to subscribe to");
    }
    redisContext *rc = redis_connect();
    redisReply *r = rc != NULL ? redisCommand(rc, "SUBSCRIBE %s", channel) : NULL;
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3;
    if (r != NULL) {
        freeReplyObject(r);
    }
    if (!ok) {
        if (rc != NULL) {
            redisFree(rc);
        }
        return send_error(conn, 500, "gateway: unable to subscribe on the Redis server");
    }
    atomic_fetch_add(&g_stat_streams, 1);
    sse_state *st = calloc(1, sizeof *st);
    st->rc = rc;
    st->channel = strdup(channel);
    st->fault = strcmp(mode, "ssestall") == 0 || strcmp(mode, "slowstall") == 0 ? SSE_STALL
                : strcmp(mode, "ssecut") == 0                                   ? SSE_CUT
                                                                                : SSE_OK;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->client_fd = ci != NULL ? ci->connect_fd : -1;
    st->opened_ms = st->last_write_ms = mono_ms();
    sse_event(st, "subscribe", "1", 1);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, st, sse_free);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* GET /gateway-stats (not Upstash's: for the benchmark): what the gateway has served, so a
 * client's commands per cycle can be counted where Upstash would bill them. */
static enum MHD_Result send_stats(struct MHD_Connection *conn) {
    char body[160];
    snprintf(body, sizeof body,
             "{\"requests\":%lu,\"commands\":%lu,\"streams\":%lu,\"messages\":%lu}",
             atomic_load(&g_stat_requests), atomic_load(&g_stat_commands),
             atomic_load(&g_stat_streams), atomic_load(&g_stat_messages));
    return send_body(conn, 200, body, 0);
}

/* ---- HTTP ---- */

/* Splits "/fault/MODE/rest" or "/fault-all/MODE/rest" off the path. */
static const char *strip_fault(const char *url, char *mode, size_t size, int *all) {
    *all = 0;
    mode[0] = '\0';
    const char *p = NULL;
    if (strncmp(url, "/fault/", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "/fault-all/", 11) == 0) {
        p = url + 11;
        *all = 1;
    }
    if (p == NULL) {
        return url;
    }
    size_t n = strcspn(p, "/");
    snprintf(mode, size, "%.*s", (int)(n < size ? n : size - 1), p);
    return p + n;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    req *rq = *con_cls;
    if (rq == NULL) {
        *con_cls = calloc(1, sizeof(req));
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (rq->len + *upload_size > MAX_BODY) {
            rq->too_big = 1;
        } else {
            rq->body = realloc(rq->body, rq->len + *upload_size + 1);
            memcpy(rq->body + rq->len, upload, *upload_size);
            rq->len += *upload_size;
            rq->body[rq->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }

    char mode[32];
    int all;
    const char *path = strip_fault(url, mode, sizeof mode, &all);
    if (mode[0] == '\0' && g_fault != NULL) {
        snprintf(mode, sizeof mode, "%s", g_fault);
        all = 1;
    }
    if (strcmp(path, "/gateway-stats") == 0) {
        return send_stats(conn);
    }
    /* The SSE faults touch streams only: commands through the same base URL work. */
    int slow = strcmp(mode, "slow") == 0 || strcmp(mode, "slowstall") == 0;
    int sse_mode = strcmp(mode, "nosse") == 0 || strcmp(mode, "ssehang") == 0 ||
                   strcmp(mode, "ssestall") == 0 || strcmp(mode, "ssecut") == 0 || slow;
    int sse = strncmp(path, "/subscribe/", 11) == 0;
    enum route route = R_SINGLE;
    if (sse) {
        /* routed below, after the method and the token are checked */
    } else if (strcmp(path, "") == 0 || strcmp(path, "/") == 0) {
        route = R_SINGLE;
    } else if (strcmp(path, "/pipeline") == 0) {
        route = R_PIPELINE;
    } else if (strcmp(path, "/multi-exec") == 0) {
        route = R_MULTI;
    } else {
        return send_error(conn, 404, "gateway: endpoint not found");
    }
    if (strcmp(method, "POST") != 0) {
        return send_error(conn, 405, "gateway: only POST is supported");
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, g_token) != 0) {
        return send_error(conn, 401, "WRONGPASS invalid or missing auth token");
    }
    if (sse) {
        pthread_mutex_lock(&g_mu);
        logf_("%s stream\n", url);
        pthread_mutex_unlock(&g_mu);
        if (mode[0] != '\0' && !sse_mode) {
            return fault(conn, mode);
        }
        return sse_subscribe(conn, path + 11, mode);
    }
    if (sse_mode) {
        mode[0] = '\0';
    }
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';')) {
        return send_error(conn, 400, "Invalid content type. Expected application/json.");
    }
    if (rq->too_big) {
        return send_error(conn, 413, "gateway: request body too large");
    }
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upstash-Encoding");
    const char *sync = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "upstash-sync-token");
    int b64 = enc != NULL && strcasecmp(enc, "base64") == 0;
    pthread_mutex_lock(&g_mu);
    /* Never the Authorization header: the log is for tests that check what the client sent. */
    logf_("%s sync=%s enc=%s body=%.*s\n", url, sync ? sync : "-", enc ? enc : "-", (int)rq->len,
          rq->body ? rq->body : "");
    pthread_mutex_unlock(&g_mu);

    json_error_t je;
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, JSON_ALLOW_NUL, &je);
    json_t *cmds = NULL;
    if (route == R_SINGLE && json_is_array(in)) {
        cmds = json_pack("[O]", in);
    } else if (route != R_SINGLE && json_is_array(in)) {
        cmds = json_incref(in);
    }
    int ok = cmds != NULL && json_array_size(cmds) > 0;
    for (size_t i = 0; ok && i < json_array_size(cmds); i++) {
        const char *argv[64];
        size_t lens[64];
        char store[64][32];
        ok = to_args(json_array_get(cmds, i), argv, lens, store, 64) > 0;
    }
    json_decref(in);
    if (!ok) {
        json_decref(cmds);
        return send_error(conn, 400,
                          "ERR invalid request body: expected a JSON array of "
                          "strings and numbers (an array of them for pipelines)");
    }
    if (mode[0] != '\0') {
        json_t *c0 = json_array_get(json_array_get(cmds, 0), 0);
        int lone_ping = route == R_SINGLE && json_array_size(json_array_get(cmds, 0)) == 1 &&
                        json_is_string(c0) && strcasecmp(json_string_value(c0), "ping") == 0;
        if (all || !lone_ping) {
            json_decref(cmds);
            return fault(conn, mode);
        }
    }
    if (slow) {
        usleep(SLOW_MS * 1000); /* before the command runs: the client waits longer for it */
    }
    atomic_fetch_add(&g_stat_requests, 1);
    atomic_fetch_add(&g_stat_commands, json_array_size(cmds));
    unsigned status;
    json_t *out = run(cmds, route, b64, &status);
    json_decref(cmds);
    char *s = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(out);
    enum MHD_Result ret = send_body(conn, status, s, 1);
    free(s);
    return ret;
}

static void done(void *cls, struct MHD_Connection *conn, void **con_cls,
                 enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    req *rq = *con_cls;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "gateway: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void usage(void) {
    fprintf(stderr, "usage: dlock_rest_gateway --redis HOST:PORT|/SOCKET --token TOKEN "
                    "[--port N] [--port-file FILE] [--tls-cert FILE --tls-key FILE] "
                    "[--fault MODE] [--log FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0;
    const char *cert = NULL, *key = NULL, *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (strcmp(a, "--port") == 0) {
            port = atoi(v);
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--redis") == 0) {
            g_redis = v;
        } else if (strcmp(a, "--token") == 0) {
            g_token = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            key = v;
        } else if (strcmp(a, "--fault") == 0) {
            g_fault = v;
        } else if (strcmp(a, "--log") == 0) {
            g_log = v;
        } else {
            usage();
        }
        i++;
    }
    if (g_redis == NULL || g_token == NULL || (cert == NULL) != (key == NULL)) {
        usage();
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD's threads inherit the mask */
    signal(SIGPIPE, SIG_IGN);

    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    char *cert_pem = NULL, *key_pem = NULL;
    if (cert != NULL) {
        flags |= MHD_USE_TLS;
        cert_pem = slurp(cert);
        key_pem = slurp(key);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        cert != NULL
            ? MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                               MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_HTTPS_MEM_CERT,
                               cert_pem, MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_END)
            : MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                               MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "gateway: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info != NULL ? info->port : port;
    printf("%d\n", bound);
    fflush(stdout);
    if (port_file != NULL) {
        /* Written under a temporary name and renamed, so a reader never sees half a number. */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", bound) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "gateway: cannot write %s\n", port_file);
            return 1;
        }
    }
    int sig;
    sigwait(&set, &sig);
    g_stop = 1;
    MHD_stop_daemon(d);
    if (g_rc != NULL) {
        redisFree(g_rc);
    }
    free(cert_pem);
    free(key_pem);
    return 0;
}
