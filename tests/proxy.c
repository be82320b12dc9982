/* The tests' TCP proxy (proxy.h). One thread polls the listening socket and every pair of
 * sockets; late bytes wait in a per-connection queue until they are due. */
#include "proxy.h"

#include "support.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_MAX 32

typedef struct chunk {
    struct chunk *next;
    int64_t due;
    size_t len;
    char data[];
} chunk;

typedef struct pair {
    int client, server;
    int delayed;        /* this connection has sent the pattern */
    chunk *head, *tail; /* server bytes not yet delivered (delayed connections) */
} pair;

struct dlt_proxy {
    int listen_fd, port, upstream_port;
    atomic_int cut, cut_keep, cuts_done, cut_all, stop,
        refuse;         /* cut_keep: bytes delivered first */
    pthread_mutex_t mu; /* guards pattern and delay_ms */
    char pattern[64];
    int64_t delay_ms;
    pthread_t thread;
    pair pairs[PROXY_MAX];
};

static int connect_upstream(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void close_pair(pair *q) {
    if (q->client >= 0) {
        close(q->client);
        close(q->server);
    }
    while (q->head != NULL) {
        chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    *q = (pair){.client = -1, .server = -1};
}

static int write_all(int fd, const char *buf, size_t n) {
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w <= 0) {
            return 0;
        }
        off += (size_t)w;
    }
    return 1;
}

static void accept_one(dlt_proxy *p) {
    int c = accept(p->listen_fd, NULL, NULL);
    int s = c >= 0 && !atomic_load(&p->refuse) ? connect_upstream(p->upstream_port) : -1;
    for (int i = 0; i < PROXY_MAX && s >= 0; i++) {
        if (p->pairs[i].client < 0) {
            p->pairs[i] = (pair){.client = c, .server = s};
            return;
        }
    }
    if (c >= 0) {
        close(c);
    }
    if (s >= 0) {
        close(s);
    }
}

/* Client to server: always at once. Marks the pair delayed when it carries the pattern. */
static int relay_request(dlt_proxy *p, pair *q) {
    char buf[16384];
    ssize_t n = read(q->client, buf, sizeof buf - 1);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    pthread_mutex_lock(&p->mu);
    if (p->pattern[0] != '\0' && memmem(buf, (size_t)n, p->pattern, strlen(p->pattern)) != NULL) {
        q->delayed = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return write_all(q->server, buf, (size_t)n);
}

/* Server to client: lost (cut), queued (delayed connection) or relayed at once. */
static int relay_reply(dlt_proxy *p, pair *q) {
    int expected = 1;
    if (atomic_compare_exchange_strong(&p->cut, &expected, 0)) {
        atomic_fetch_add(&p->cuts_done, 1);
        char part[16384];
        ssize_t n = atomic_load(&p->cut_keep) > 0 ? read(q->server, part, sizeof part) : 0;
        if (n > 0) {
            size_t keep = (size_t)atomic_load(&p->cut_keep);
            write_all(q->client, part, (size_t)n < keep ? (size_t)n : keep);
        }
        return 0;
    }
    char buf[16384];
    ssize_t n = read(q->server, buf, sizeof buf);
    if (n <= 0) {
        return 0;
    }
    if (!q->delayed) {
        return write_all(q->client, buf, (size_t)n);
    }
    chunk *c = malloc(sizeof *c + (size_t)n);
    if (c == NULL) {
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    c->due = dlt_now_ms() + p->delay_ms;
    pthread_mutex_unlock(&p->mu);
    c->next = NULL;
    c->len = (size_t)n;
    memcpy(c->data, buf, (size_t)n);
    if (q->tail != NULL) {
        q->tail->next = c;
    } else {
        q->head = c;
    }
    q->tail = c;
    return 1;
}

/* Delivers the late bytes that are due. Returns 0 if the client is gone. */
static int deliver_due(pair *q, int64_t now) {
    while (q->head != NULL && q->head->due <= now) {
        chunk *c = q->head;
        q->head = c->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        int ok = write_all(q->client, c->data, c->len);
        free(c);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int poll_timeout(const dlt_proxy *p, int64_t now) {
    int64_t t = 20;
    for (int i = 0; i < PROXY_MAX; i++) {
        const chunk *c = p->pairs[i].head;
        if (c != NULL && c->due - now < t) {
            t = c->due - now > 0 ? c->due - now : 0;
        }
    }
    return (int)t;
}

static void *proxy_main(void *arg) {
    dlt_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        if (atomic_exchange(&p->cut_all, 0)) {
            for (int i = 0; i < PROXY_MAX; i++) {
                close_pair(&p->pairs[i]);
            }
        }
        struct pollfd fds[1 + 2 * PROXY_MAX];
        fds[0] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < PROXY_MAX; i++) {
            fds[1 + 2 * i] = (struct pollfd){.fd = p->pairs[i].client, .events = POLLIN};
            fds[2 + 2 * i] = (struct pollfd){.fd = p->pairs[i].server, .events = POLLIN};
        }
        int n = poll(fds, 1 + 2 * PROXY_MAX, poll_timeout(p, dlt_now_ms()));
        if (n > 0 && (fds[0].revents & POLLIN)) {
            accept_one(p);
        }
        int64_t now = dlt_now_ms();
        for (int i = 0; i < PROXY_MAX; i++) {
            pair *q = &p->pairs[i];
            if (q->client < 0 || fds[1 + 2 * i].fd != q->client) {
                continue;
            }
            short cr = n > 0 ? fds[1 + 2 * i].revents : 0, sr = n > 0 ? fds[2 + 2 * i].revents : 0;
            int ok = !(cr & (POLLIN | POLLHUP | POLLERR)) || relay_request(p, q);
            ok = ok && (!(sr & (POLLIN | POLLHUP | POLLERR)) || relay_reply(p, q));
            if (!ok || !deliver_due(q, now)) {
                close_pair(q);
            }
        }
    }
    for (int i = 0; i < PROXY_MAX; i++) {
        close_pair(&p->pairs[i]);
    }
    return NULL;
}

dlt_proxy *dlt_proxy_start(int upstream_port) {
    dlt_proxy *p = calloc(1, sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < PROXY_MAX; i++) {
        p->pairs[i] = (pair){.client = -1, .server = -1};
    }
    p->upstream_port = upstream_port;
    p->listen_fd = dlt_silent_listener(&p->port);
    pthread_mutex_init(&p->mu, NULL);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
    return p;
}

int dlt_proxy_port(const dlt_proxy *p) {
    return p->port;
}

void dlt_proxy_cut_next_reply(dlt_proxy *p) {
    dlt_proxy_cut_next_reply_after(p, 0);
}

void dlt_proxy_cut_next_reply_after(dlt_proxy *p, int bytes) {
    atomic_store(&p->cut_keep, bytes);
    atomic_store(&p->cut, 1);
}

int dlt_proxy_cuts_done(const dlt_proxy *p) {
    return atomic_load(&((dlt_proxy *)p)->cuts_done);
}

void dlt_proxy_delay_after(dlt_proxy *p, const char *pattern, int64_t ms) {
    pthread_mutex_lock(&p->mu);
    snprintf(p->pattern, sizeof p->pattern, "%s", pattern);
    p->delay_ms = ms;
    pthread_mutex_unlock(&p->mu);
}

void dlt_proxy_cut_all(dlt_proxy *p) {
    atomic_store(&p->cut_all, 1);
}

void dlt_proxy_refuse(dlt_proxy *p, int on) {
    atomic_store(&p->refuse, on);
    if (on) {
        atomic_store(&p->cut_all, 1);
    }
}

void dlt_proxy_stop(dlt_proxy *p) {
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
