/* Fuzz target: arbitrary bytes as a Redis server's reply, through the RESP transport exactly as
 * a client uses it (dlock__resp_transport: connect, exec, close). A fake server thread on a unix
 * socket answers the connection's PING handshake with +PONG, then sends the input and closes.
 * The transport then runs 1 to 3 commands (the first byte picks how many) and reads their
 * replies through hiredis's redisReader and the conversion to dlock__reply.
 *
 * Checks: no crash, leak or undefined behaviour; the call, and closing the connection after it
 * (client.c closes a failed connection before it returns), end at once: the peer has closed, so
 * nothing may take anywhere near the command deadline; a success yields well-formed replies
 * (strings NUL-terminated at len, arrays with their elements); a failure is EIO/EPROTO/ENOMEM and
 * leaves every reply cleared. */
#include "internal.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int lfd = -1;
static char sock_path[108];
static const uint8_t *cur;
static size_t cur_len;
static sem_t go, done;

/* sem_wait returns early with EINTR when a signal arrives (libFuzzer's timeout alarm does). */
static void wait_sem(sem_t *s) {
    while (sem_wait(s) != 0) {
    }
}

/* One connection per input: read the handshake up to its PING, answer, send the input, close
 * our side, and wait for the client to close. */
static void *server(void *arg) {
    (void)arg;
    for (;;) {
        wait_sem(&go);
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            char buf[4096];
            size_t have = 0;
            while (have < sizeof buf - 1) {
                ssize_t k = read(fd, buf + have, sizeof buf - 1 - have);
                if (k <= 0) {
                    break;
                }
                have += (size_t)k;
                buf[have] = '\0';
                if (strstr(buf, "PING\r\n") != NULL) {
                    break;
                }
            }
            const char pong[] = "+PONG\r\n";
            size_t off = 0;
            if (write(fd, pong, sizeof pong - 1) == (ssize_t)(sizeof pong - 1)) {
                while (off < cur_len) {
                    ssize_t k = send(fd, cur + off, cur_len - off, MSG_NOSIGNAL);
                    if (k <= 0) {
                        break;
                    }
                    off += (size_t)k;
                }
            }
            shutdown(fd, SHUT_WR);
            while (read(fd, buf, sizeof buf) > 0) {
            }
            close(fd);
        }
        sem_post(&done);
    }
    return NULL;
}

static void setup(void) {
    snprintf(sock_path, sizeof sock_path, "/tmp/dlock-fuzz-resp-%d.sock", (int)getpid());
    unlink(sock_path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(lfd, 4) != 0) {
        perror("fuzz_resp: listen");
        abort();
    }
    sem_init(&go, 0, 0);
    sem_init(&done, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, server, NULL);
    pthread_detach(t);
}

static void cleanup(void) {
    unlink(sock_path);
}

static void check_reply(const dlock__reply *r, int depth) {
    if (depth > 10) {
        abort();
    }
    switch (r->type) {
    case DLOCK__REPLY_NIL:
    case DLOCK__REPLY_INT:
        if (r->str != NULL || r->element != NULL) {
            abort();
        }
        break;
    case DLOCK__REPLY_STR:
    case DLOCK__REPLY_ERROR:
        if (r->str == NULL || r->str[r->len] != '\0') {
            abort();
        }
        break;
    case DLOCK__REPLY_ARRAY:
        if ((r->elements > 0) != (r->element != NULL)) {
            abort();
        }
        for (size_t i = 0; i < r->elements; i++) {
            check_reply(&r->element[i], depth + 1);
        }
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 60000) {
        return 0;
    }
    if (lfd < 0) {
        setup();
        atexit(cleanup);
    }
    size_t n = 1 + data[0] % 3;
    cur = data + 1;
    cur_len = size - 1;
    sem_post(&go);

    char display[] = "fuzz";
    dlock__config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.url.scheme = DLOCK__SCHEME_UNIX;
    cfg.url.path = sock_path;
    cfg.connect_timeout_ms = 5000;
    cfg.command_timeout_ms = 5000;
    cfg.display = display;

    const dlock__transport *tp = &dlock__resp_transport;
    int64_t start = dlock__now_ms();
    dlock__conn *c = NULL;
    if (tp->connect(&cfg, &c) != DLOCK_OK) {
        abort(); /* the fake server always answers the handshake */
    }
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    dlock__cmd cmds[3] = {{1, argv, lens}, {1, argv, lens}, {1, argv, lens}};
    dlock__reply replies[3];
    int sent = 0;
    int rc = tp->exec(c, cmds, n, replies, start + 5000, &sent);
    if (rc == DLOCK_OK) {
        for (size_t i = 0; i < n; i++) {
            check_reply(&replies[i], 0);
            dlock__reply_clear(&replies[i]);
        }
    } else {
        if (rc != DLOCK_EIO && rc != DLOCK_EPROTO && rc != DLOCK_ENOMEM) {
            abort();
        }
        for (size_t i = 0; i < n; i++) {
            if (replies[i].str != NULL || replies[i].element != NULL) {
                abort();
            }
        }
    }
    (void)tp->alive(c);
    tp->close(c);
    wait_sem(&done);
    int64_t took = dlock__now_ms() - start;
    if (took > 2000) {
        fprintf(stderr, "fuzz_resp: connect + exec + close took %lld ms\n", (long long)took);
        abort();
    }
    return 0;
}
