/* The Redis-protocol transport: one socket (TCP, unix, or TLS over TCP) with deadlines on every
 * read and write. hiredis does the protocol (redisFormatCommandArgv, redisReader); this file does
 * the sockets, because hiredis 0.14's blocking API has no per-command deadline and no TLS.
 * Besides the blocking exec, a call can be split in two (send, then recv as poll(2) says), so
 * that one thread can wait on many servers at once (the quorum fan-out); a connection may then
 * carry replies owed to requests whose caller stopped waiting, which it drops as they come. */
#include "fmacros.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct dlock__conn {
    int fd;
    SSL *ssl;
    redisReader *reader;
    /* After connecting, the socket is blocking with SO_RCVTIMEO/SO_SNDTIMEO, so a command costs
     * one send and one recv, with no poll before the recv. timeo_ms is the timeout set now; it is
     * lowered for a call whose deadline is nearer (see arm). */
    int blocking;
    int64_t timeo_ms, default_timeo_ms;
    int precise;  /* timeouts end at the deadline exactly (subscribed connections) */
    int build_rc; /* why the reply builder refused a reply (hiredis only says "Out of memory") */
    /* The split call: the request bytes not written yet (out[off..len)), and the number of
     * replies owed to abandoned requests, read and dropped before any reply is returned. */
    char *out;
    size_t out_len, out_off;
    size_t owed;
};

/* ---- replies: hiredis parses, reply.c builds ----
 *
 * These callbacks build dlock__reply trees straight from hiredis's buffers, with no redisReply in
 * between, so the limits of reply.c apply before anything is allocated: hiredis 0.14 would
 * otherwise calloc the element table of "*2147483647" (16 GB) as soon as it read the header.
 * The top-level reply is malloc'd; a nested one is its slot in the parent's element array.
 * hiredis frees only the top-level object (freeObject), which owns the rest. */

static void *built(const redisReadTask *t, dlock__reply *r, int rc) {
    if (rc == DLOCK_OK) {
        return r;
    }
    ((dlock__conn *)t->privdata)->build_rc = rc;
    if (t->parent == NULL) {
        dlock__reply_clear(r);
        free(r);
    }
    return NULL;
}

static dlock__reply *place(const redisReadTask *t) {
    if (t->parent == NULL) {
        return malloc(sizeof(dlock__reply));
    }
    dlock__reply *parent = t->parent->obj;
    return &parent->element[t->idx];
}

static void *on_string(const redisReadTask *t, char *s, size_t len) {
    dlock__reply *r = place(t);
    if (r == NULL) {
        return NULL;
    }
    dlock__reply_type type = t->type == REDIS_REPLY_ERROR ? DLOCK__REPLY_ERROR : DLOCK__REPLY_STR;
    return built(t, r, dlock__reply_str(r, type, s, len));
}

static void *on_array(const redisReadTask *t, int n) {
    dlock__reply *r = place(t);
    if (r == NULL) {
        return NULL;
    }
    int depth = 0;
    for (const redisReadTask *p = t->parent; p != NULL; p = p->parent) {
        depth++;
    }
    return built(t, r, dlock__reply_array(r, n < 0 ? 0 : (size_t)n, depth));
}

static void *on_integer(const redisReadTask *t, long long v) {
    dlock__reply *r = place(t);
    if (r != NULL) {
        dlock__reply_int(r, v);
    }
    return r;
}

static void *on_nil(const redisReadTask *t) {
    dlock__reply *r = place(t);
    if (r != NULL) {
        memset(r, 0, sizeof *r);
    }
    return r;
}

static void on_free(void *obj) {
    dlock__reply_clear(obj);
    free(obj);
}

static redisReplyObjectFunctions reply_fns = {
    .createString = on_string,
    .createArray = on_array,
    .createInteger = on_integer,
    .createNil = on_nil,
    .freeObject = on_free,
};

/* ---- socket setup ---- */

static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline) {
    if (connect(fd, sa, len) == 0) {
        return DLOCK_OK;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        return -errno;
    }
    if (dlock__poll_fd(fd, POLLOUT, deadline) != DLOCK_OK) {
        return -ETIMEDOUT;
    }
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
        return -errno;
    }
    return err == 0 ? DLOCK_OK : -err;
}

static int connect_error(const dlock__config *cfg, int neg_errno) {
    if (neg_errno == -ETIMEDOUT) {
        return dlock__err(DLOCK_ETIMEDOUT, "%s: connect timed out after %d ms", cfg->display,
                          cfg->connect_timeout_ms);
    }
    return dlock__err(DLOCK_ECONNECT, "%s: cannot connect: %s", cfg->display, strerror(-neg_errno));
}

static int open_unix(const dlock__config *cfg, int64_t deadline, int *out) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(cfg->url.path);
    if (n >= sizeof sun.sun_path) {
        return dlock__err(DLOCK_EINVAL, "unix socket path is too long (%zu bytes, at most %zu)", n,
                          sizeof sun.sun_path - 1);
    }
    memcpy(sun.sun_path, cfg->url.path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return dlock__err(DLOCK_ESYS, "socket: %s", strerror(errno));
    }
    int rc = connect_fd(fd, (struct sockaddr *)&sun, sizeof sun, deadline);
    if (rc != DLOCK_OK) {
        close(fd);
        return connect_error(cfg, rc);
    }
    *out = fd;
    return DLOCK_OK;
}

static int open_tcp(const dlock__config *cfg, int64_t deadline, int *out) {
    struct addrinfo *res = NULL;
    int g = 0;
    int rc = dlock__resolve(cfg->url.host, cfg->url.port, deadline, &res, &g);
    if (rc == DLOCK_ETIMEDOUT) {
        return dlock__err(rc, "%s: resolving host '%s' took longer than connect_timeout_ms (%d ms)",
                          cfg->display, cfg->url.host, cfg->connect_timeout_ms);
    }
    if (rc == DLOCK_ECONNECT) {
        return dlock__err(rc, "%s: cannot resolve host '%s': %s", cfg->display, cfg->url.host,
                          gai_strerror(g));
    }
    if (rc != DLOCK_OK) {
        return dlock__err(rc, "%s: cannot resolve host '%s': %s", cfg->display, cfg->url.host,
                          rc == DLOCK_ENOMEM ? "out of memory" : "cannot start a thread");
    }
    rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc == DLOCK_OK) {
            int one = 1;
            /* Lock commands are tiny request/reply pairs: Nagle would only add latency. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            *out = fd;
            break;
        }
        close(fd);
        if (rc == -ETIMEDOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    return rc == DLOCK_OK ? DLOCK_OK : connect_error(cfg, rc);
}

/* ---- raw I/O with deadlines ---- */

static void set_timeouts(dlock__conn *c, int64_t ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->timeo_ms = ms;
}

/* Makes a blocking socket's timeouts end by `deadline`, give or take a small tolerance, with no
 * system call in the common case (the deadline is command_timeout_ms away, as last time).
 * Returns DLOCK_ETIMEDOUT if the deadline has passed. */
static int arm(dlock__conn *c, int64_t deadline) {
    int64_t left = deadline - dlock__now_ms();
    if (left <= 0) {
        return DLOCK_ETIMEDOUT;
    }
    if (c->blocking) {
        int64_t want = left < c->default_timeo_ms ? left : c->default_timeo_ms;
        /* A subscribed connection waits in short slices, where 50 ms of slack would show. */
        int64_t tol = c->precise                      ? 0
                      : c->default_timeo_ms / 10 < 50 ? c->default_timeo_ms / 10
                                                      : 50;
        if (c->timeo_ms > left + tol || c->timeo_ms < want / 2) {
            set_timeouts(c, want > 0 ? want : 1);
        }
    }
    return DLOCK_OK;
}

/* After the connection is set up: switch to blocking I/O with the command timeout. */
static void go_blocking(dlock__conn *c, int64_t timeout_ms) {
    int fl = fcntl(c->fd, F_GETFL);
    if (fl >= 0 && fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) == 0) {
        c->blocking = 1;
        c->default_timeo_ms = timeout_ms;
        set_timeouts(c, timeout_ms);
    }
}

/* OpenSSL writes with write(2), which raises SIGPIPE on a connection the server closed and would
 * kill a program that did not ignore it. Plain sockets use MSG_NOSIGNAL; around TLS calls the
 * signal is blocked for this thread and a SIGPIPE that they raised is consumed (libcurl's way). */
typedef struct sigpipe_guard {
    sigset_t old;
    int was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g) {
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_restore(const sigpipe_guard *g) {
    if (!g->was_pending) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) > 0) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static int io_error(dlock__conn *c, int64_t deadline, const char *op) {
    if (dlock__now_ms() >= deadline) {
        return dlock__err(DLOCK_ETIMEDOUT, "no reply within the command deadline");
    }
    (void)c;
    return dlock__err(DLOCK_EIO, "connection lost while %s", op);
}

static int write_all(dlock__conn *c, const char *buf, size_t len, int64_t deadline, int *sent) {
    while (len > 0) {
        ssize_t n;
        short want = POLLOUT;
        if (arm(c, deadline) != DLOCK_OK) {
            return dlock__err(DLOCK_ETIMEDOUT, "could not send within the command deadline");
        }
        if (c->ssl != NULL) {
            ERR_clear_error();
            sigpipe_guard g;
            sigpipe_block(&g);
            int r = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
            sigpipe_restore(&g);
            n = r;
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                    n = -1;
                    errno = EAGAIN;
                } else {
                    return dlock__err(DLOCK_EIO, "connection lost while sending");
                }
            }
        } else {
            n = send(c->fd, buf, len, MSG_NOSIGNAL);
        }
        if (n > 0) {
            *sent = 1;
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (dlock__poll_fd(c->fd, want, deadline) != DLOCK_OK) {
                return dlock__err(DLOCK_ETIMEDOUT, "could not send within the command deadline");
            }
            continue;
        }
        return dlock__err(DLOCK_EIO, "connection lost while sending: %s", strerror(errno));
    }
    return DLOCK_OK;
}

/* Reads what is available (waiting for at least one byte) into the reader. */
static int read_some(dlock__conn *c, int64_t deadline) {
    char buf[16384];
    if (deadline <= dlock__now_ms()) {
        /* No time left (draining pub/sub messages): read only what is already there. */
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if ((c->ssl == NULL || SSL_pending(c->ssl) == 0) && poll(&p, 1, 0) <= 0) {
            return DLOCK_ETIMEDOUT;
        }
    } else if (!c->blocking && c->ssl == NULL &&
               dlock__poll_fd(c->fd, POLLIN, deadline) != DLOCK_OK) {
        /* While connecting the socket is non-blocking: a reply is rarely there the instant a
         * request has gone out, so wait first and read once. */
        return io_error(c, deadline, "waiting for a reply");
    }
    for (;;) {
        if (deadline > dlock__now_ms() && arm(c, deadline) != DLOCK_OK) {
            return io_error(c, deadline, "waiting for a reply");
        }
        ssize_t n;
        short want = POLLIN;
        if (c->ssl != NULL) {
            ERR_clear_error();
            sigpipe_guard g;
            sigpipe_block(&g);
            int r = SSL_read(c->ssl, buf, sizeof buf);
            sigpipe_restore(&g);
            n = r;
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                    n = -1;
                    errno = EAGAIN;
                } else {
                    return dlock__err(DLOCK_EIO, "connection closed by the server");
                }
            }
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n == 0) {
                return dlock__err(DLOCK_EIO, "connection closed by the server");
            }
        }
        if (n > 0) {
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                return dlock__err(DLOCK_EPROTO, "cannot buffer reply");
            }
            return DLOCK_OK;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (dlock__poll_fd(c->fd, want, deadline) != DLOCK_OK) {
                return io_error(c, deadline, "waiting for a reply");
            }
            continue;
        }
        return dlock__err(DLOCK_EIO, "connection lost while reading: %s", strerror(errno));
    }
}

/* ---- the transport ---- */

/* The next whole reply the reader holds, past those owed to abandoned requests: 1 with *out, 0
 * if none is complete yet, or an error. */
static int buffered_reply(dlock__conn *c, dlock__reply *out) {
    for (;;) {
        void *raw = NULL;
        if (redisReaderGetReply(c->reader, &raw) != REDIS_OK) {
            return c->build_rc != DLOCK_OK
                       ? c->build_rc /* the builder's message says why */
                       : dlock__err(DLOCK_EPROTO, "malformed reply: %s", c->reader->errstr);
        }
        if (raw == NULL) {
            return 0;
        }
        if (c->owed == 0) {
            *out = *(dlock__reply *)raw;
            free(raw);
            return 1;
        }
        c->owed--; /* the reply of a request nobody waits for any more */
        on_free(raw);
    }
}

/* Reads one whole reply: what the reader has buffered, else from the socket until deadline. */
static int read_reply(dlock__conn *c, dlock__reply *out, int64_t deadline) {
    for (;;) {
        int rc = buffered_reply(c, out);
        if (rc != 0) {
            return rc < 0 ? rc : DLOCK_OK;
        }
        if ((rc = read_some(c, deadline)) != DLOCK_OK) {
            return rc;
        }
    }
}

static int resp_read(dlock__conn *c, dlock__reply *out, int64_t deadline) {
    memset(out, 0, sizeof *out);
    c->precise = 1; /* only subscribed connections read unsolicited replies */
    int rc = read_reply(c, out, deadline);
    if (rc != DLOCK_OK) {
        dlock__reply_clear(out);
    }
    return rc;
}

/* The commands in the protocol's form, in one malloc'd buffer: a pipeline costs one write. */
static int format_request(const dlock__cmd *cmds, size_t n, char **out, size_t *out_len) {
    char *buf = NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char *one = NULL;
        int k = redisFormatCommandArgv(&one, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        char *grown = k > 0 ? realloc(buf, len + (size_t)k) : NULL;
        if (grown == NULL) {
            redisFreeCommand(one);
            free(buf);
            return dlock__err(DLOCK_ENOMEM, "out of memory formatting a command");
        }
        buf = grown;
        memcpy(buf + len, one, (size_t)k);
        len += (size_t)k;
        redisFreeCommand(one);
    }
    *out = buf;
    *out_len = len;
    return DLOCK_OK;
}

static int resp_exec(dlock__conn *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                     int64_t deadline, int *sent) {
    *sent = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&replies[i], 0, sizeof replies[i]);
    }
    if (c->out != NULL) {
        return dlock__err(DLOCK_ESTATE, "internal: a split request is still being written");
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = format_request(cmds, n, &buf, &len);
    if (rc == DLOCK_OK) {
        rc = write_all(c, buf, len, deadline, sent);
        free(buf);
    }
    /* Replies owed to abandoned requests come first; read_reply drops them. */
    for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
        rc = read_reply(c, &replies[i], deadline);
    }
    if (rc != DLOCK_OK) {
        for (size_t i = 0; i < n; i++) {
            dlock__reply_clear(&replies[i]);
        }
    }
    return rc;
}

/* ---- the split call: send, then recv whenever poll(2) says the socket is ready ----
 *
 * Nothing here waits. A TLS record can arrive in pieces, so SSL_read on a blocking socket that
 * poll called readable may still block: a TLS connection used for a split call is made
 * non-blocking for good (its blocking exec then polls before each read, as while connecting).
 * Plain sockets take MSG_DONTWAIT instead, and keep the cheaper blocking exec. */

static void tls_nonblocking(dlock__conn *c) {
    int fl;
    if (c->blocking && (fl = fcntl(c->fd, F_GETFL)) >= 0 &&
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) == 0) {
        c->blocking = 0;
    }
}

/* A TLS call that returned r <= 0: DLOCK__AGAIN with what to wait for, or 0 (a real error). */
static int tls_again(dlock__conn *c, int r, short *events) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return DLOCK__AGAIN;
    }
    return 0;
}

/* Writes what the socket takes now of the pending request: DLOCK_OK once it is all written,
 * DLOCK__AGAIN with *events, or EIO. *sent is set once a byte went out. */
static int write_now(dlock__conn *c, int *sent, short *events) {
    while (c->out_off < c->out_len) {
        size_t left = c->out_len - c->out_off;
        ssize_t n;
        if (c->ssl != NULL) {
            tls_nonblocking(c);
            ERR_clear_error();
            sigpipe_guard g;
            sigpipe_block(&g);
            int r =
                SSL_write(c->ssl, c->out + c->out_off, left > INT32_MAX ? INT32_MAX : (int)left);
            sigpipe_restore(&g);
            if (r <= 0) {
                return tls_again(c, r, events) == DLOCK__AGAIN
                           ? DLOCK__AGAIN
                           : dlock__err(DLOCK_EIO, "connection lost while sending");
            }
            n = r;
        } else {
            n = send(c->fd, c->out + c->out_off, left, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                *events = POLLOUT;
                return DLOCK__AGAIN;
            }
            if (n < 0) {
                return dlock__err(DLOCK_EIO, "connection lost while sending: %s", strerror(errno));
            }
        }
        *sent = 1;
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return DLOCK_OK;
}

/* One read of what has arrived, into the reader, without waiting: DLOCK_OK, DLOCK__AGAIN with
 * *events, or EIO. */
static int read_now(dlock__conn *c, short *events) {
    char buf[16384];
    ssize_t n;
    if (c->ssl != NULL) {
        tls_nonblocking(c);
        ERR_clear_error();
        sigpipe_guard g;
        sigpipe_block(&g);
        int r = SSL_read(c->ssl, buf, sizeof buf);
        sigpipe_restore(&g);
        if (r <= 0) {
            return tls_again(c, r, events) == DLOCK__AGAIN
                       ? DLOCK__AGAIN
                       : dlock__err(DLOCK_EIO, "connection closed by the server");
        }
        n = r;
    } else {
        do {
            n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
            return dlock__err(DLOCK_EIO, "connection closed by the server");
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *events = POLLIN;
            return DLOCK__AGAIN;
        }
        if (n < 0) {
            return dlock__err(DLOCK_EIO, "connection lost while reading: %s", strerror(errno));
        }
    }
    if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
        return dlock__err(DLOCK_EPROTO, "cannot buffer reply");
    }
    return DLOCK_OK;
}

static int resp_send(dlock__conn *c, const dlock__cmd *cmds, size_t n, int *sent) {
    *sent = 0;
    if (c->out != NULL) {
        return dlock__err(DLOCK_ESTATE, "internal: the previous request is still being written");
    }
    int rc = format_request(cmds, n, &c->out, &c->out_len);
    if (rc != DLOCK_OK) {
        return rc;
    }
    c->out_off = 0;
    short events;
    rc = write_now(c, sent, &events);
    return rc == DLOCK__AGAIN ? DLOCK_OK : rc; /* recv writes the rest */
}

static int resp_recv(dlock__conn *c, dlock__reply *out, short *events) {
    memset(out, 0, sizeof *out);
    int sent;
    int rc = write_now(c, &sent, events);
    while (rc == DLOCK_OK) {
        if ((rc = buffered_reply(c, out)) != 0) {
            return rc < 0 ? rc : DLOCK_OK;
        }
        rc = read_now(c, events);
    }
    return rc;
}

static int resp_fd(const dlock__conn *c) {
    return c->fd;
}

static int resp_abandon(dlock__conn *c, size_t n) {
    c->owed += n;
    return c->out == NULL;
}

/* Bytes in the reader that belong to no reply anyone asked for. */
static int stray_bytes(const dlock__conn *c) {
    return c->owed == 0 && c->reader->pos < c->reader->len;
}

/* Drops what has come of the owed replies, without waiting. 0 if the connection broke, or sent
 * a reply nobody asked for. */
static int settle(dlock__conn *c) {
    for (;;) {
        dlock__reply r;
        int rc = buffered_reply(c, &r);
        if (rc != 0) {
            if (rc > 0) {
                dlock__reply_clear(&r);
            }
            return 0;
        }
        if (c->owed == 0) {
            return !stray_bytes(c);
        }
        short events;
        if ((rc = read_now(c, &events)) != DLOCK_OK) {
            return rc == DLOCK__AGAIN;
        }
    }
}

static int resp_alive(dlock__conn *c) {
    if (c->owed > 0) {
        if (!settle(c)) {
            return 0;
        }
        if (c->owed > 0) {
            return 1; /* a reply still on its way, which the next request's read drops */
        }
    }
    if (stray_bytes(c)) {
        return 0;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 0) {
        return 1;
    }
    if (c->ssl != NULL && (p.revents & (POLLERR | POLLHUP)) == 0) {
        /* A readable TLS socket may hold only a protocol record (a session ticket): peek to
         * tell that from a close_notify or stray application data, without blocking. */
        char b;
        int fl = fcntl(c->fd, F_GETFL);
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
        ERR_clear_error();
        int r = SSL_peek(c->ssl, &b, 1);
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        ERR_clear_error();
        fcntl(c->fd, F_SETFL, fl);
        return r <= 0 && e == SSL_ERROR_WANT_READ;
    }
    /* An idle connection has nothing to read: readable means EOF (CLIENT KILL, server restart,
     * idle timeout) or a reply we did not ask for. Either way it is not safe to reuse. */
    return 0;
}

static void resp_close(dlock__conn *c) {
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
    }
    free(c->out);
    free(c);
}

/* A refused AUTH, SELECT or PING. */
static int setup_error(const dlock__config *cfg, const char *what, const dlock__reply *r) {
    const char *s = r->str, *shown = r->str;
    if ((cfg->password != NULL && cfg->password[0] != '\0' && strstr(s, cfg->password) != NULL) ||
        (cfg->username != NULL && cfg->username[0] != '\0' && strstr(s, cfg->username) != NULL &&
         strncmp(s, "ERR unknown command", 19) == 0)) {
        /* e.g. "ERR unknown command 'AUTH', with args beginning with: '<password>'" */
        shown = "(the server's reply is not shown: it repeats the credentials)";
    }
    return dlock__err(dlock__reply_error_rc(r), "%s failed: %s", what, shown);
}

/* AUTH and SELECT if configured, then PING: one round trip that proves the peer speaks Redis
 * and accepts us, so a wrong password or a silent server fails at connect, not later. */
static int handshake(const dlock__config *cfg, dlock__conn *c, int64_t deadline) {
    const char *argv[3][3];
    size_t lens[3][3];
    const char *what[3];
    dlock__cmd cmds[3];
    size_t n = 0;
    char db[16];
    if (cfg->password != NULL) {
        int k = 0;
        argv[n][k++] = "AUTH";
        if (cfg->username != NULL) {
            argv[n][k++] = cfg->username;
        }
        argv[n][k++] = cfg->password;
        for (int i = 0; i < k; i++) {
            lens[n][i] = strlen(argv[n][i]);
        }
        cmds[n] = (dlock__cmd){k, argv[n], lens[n]};
        what[n++] = "AUTH";
    } else if (cfg->username != NULL) {
        return dlock__err(DLOCK_EINVAL, "%s: a user name was given without a password",
                          cfg->display);
    }
    if (cfg->url.db != 0) {
        snprintf(db, sizeof db, "%d", cfg->url.db);
        argv[n][0] = "SELECT";
        argv[n][1] = db;
        lens[n][0] = 6;
        lens[n][1] = strlen(db);
        cmds[n] = (dlock__cmd){2, argv[n], lens[n]};
        what[n++] = "SELECT";
    }
    argv[n][0] = "PING";
    lens[n][0] = 4;
    cmds[n] = (dlock__cmd){1, argv[n], lens[n]};
    what[n++] = "PING";

    dlock__reply replies[3];
    int sent;
    int rc = resp_exec(c, cmds, n, replies, deadline, &sent);
    if (rc != DLOCK_OK) {
        return rc == DLOCK_ETIMEDOUT
                   ? dlock__err(DLOCK_ETIMEDOUT,
                                "%s: the server accepted the connection but did not answer "
                                "within %d ms",
                                cfg->display, cfg->connect_timeout_ms)
                   : dlock__err_prefix(rc, "%s", cfg->display);
    }
    for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
        if (replies[i].type == DLOCK__REPLY_ERROR) {
            rc = setup_error(cfg, what[i], &replies[i]);
            dlock__err_prefix(rc, "%s", cfg->display);
        }
    }
    for (size_t i = 0; i < n; i++) {
        dlock__reply_clear(&replies[i]);
    }
    return rc;
}

static int resp_connect(const dlock__config *cfg, dlock__conn **out) {
    int64_t deadline = dlock__deadline_in(cfg->connect_timeout_ms);
    dlock__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    c->fd = -1;
    if ((c->reader = redisReaderCreateWithFunctions(&reply_fns)) == NULL) {
        free(c);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    c->reader->privdata = c;
    int rc = cfg->url.scheme == DLOCK__SCHEME_UNIX ? open_unix(cfg, deadline, &c->fd)
                                                   : open_tcp(cfg, deadline, &c->fd);
    if (rc == DLOCK_OK && cfg->url.scheme == DLOCK__SCHEME_REDISS) {
        void *ssl = NULL;
        rc = dlock__tls_handshake(cfg, cfg->tp_state, c->fd, deadline, &ssl);
        c->ssl = ssl;
        if (rc != DLOCK_OK) {
            dlock__err_prefix(rc, "%s", cfg->display);
        }
    }
    if (rc == DLOCK_OK) {
        rc = handshake(cfg, c, deadline);
    }
    if (rc != DLOCK_OK) {
        resp_close(c);
        return rc;
    }
    go_blocking(c, cfg->command_timeout_ms);
    *out = c;
    return DLOCK_OK;
}

/* The SSL_CTX, made once per client: loading a CA store costs milliseconds. */
static int resp_init(const dlock__config *cfg, void **state) {
    *state = NULL;
    return cfg->url.scheme == DLOCK__SCHEME_REDISS ? dlock__tls_ctx_new(cfg, state) : DLOCK_OK;
}

const dlock__transport dlock__resp_transport = {
    .name = "resp",
    .init = resp_init,
    .fini = dlock__tls_ctx_free,
    .connect = resp_connect,
    .exec = resp_exec,
    .alive = resp_alive,
    .close = resp_close,
    .read = resp_read,
    .send = resp_send,
    .recv = resp_recv,
    .fd = resp_fd,
    .abandon = resp_abandon,
};
