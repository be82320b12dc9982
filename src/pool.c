/* One server and its pool of idle connections. Each call borrows a connection for its round trip,
 * so any number of threads can share a node without waiting on each other's replies; idle
 * connections (at most pool_size) are kept for reuse. A plain client has one node; a cluster
 * client has one per server it has heard of (cluster.c). */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dlock__node {
    dlock__config cfg; /* the client's settings with this node's address; see node_new */
    const dlock__config *base;
    const dlock__transport *tp;
    pthread_mutex_t mu; /* guards idle[] */
    dlock__conn **idle;
    int nidle, pool_size;
    int own_addr; /* cfg.url.host and cfg.display are this node's own copies */
};

static dlock__node *node_alloc(const dlock__config *base, const dlock__transport *tp,
                               int pool_size) {
    dlock__node *n = calloc(1, sizeof *n);
    if (n == NULL || (n->idle = calloc((size_t)pool_size, sizeof *n->idle)) == NULL) {
        free(n);
        return NULL;
    }
    n->base = base;
    n->cfg = *base;
    n->tp = tp;
    n->pool_size = pool_size;
    pthread_mutex_init(&n->mu, NULL);
    return n;
}

int dlock__node_new(const dlock__config *base, const dlock__transport *tp, int pool_size,
                    const char *host, int port, dlock__node **out) {
    dlock__node *n = node_alloc(base, tp, pool_size);
    if (n == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    if (host != NULL) {
        /* Another server of the same deployment: same credentials, db, TLS settings and
         * transport state, its own address. */
        char display[300];
        snprintf(display, sizeof display, strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                 base->url.scheme == DLOCK__SCHEME_REDISS ? "rediss" : "redis", host, port);
        if (base->url.db != 0) {
            size_t k = strlen(display);
            snprintf(display + k, sizeof display - k, "/%d", base->url.db);
        }
        n->own_addr = 1;
        n->cfg.url.host = strdup(host);
        n->cfg.url.port = port;
        n->cfg.url.path = NULL;
        n->cfg.display = strdup(display);
        if (n->cfg.url.host == NULL || n->cfg.display == NULL) {
            dlock__node_free(n);
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
    }
    *out = n;
    return DLOCK_OK;
}

void dlock__node_free(dlock__node *n) {
    if (n == NULL) {
        return;
    }
    for (int i = 0; i < n->nidle; i++) {
        n->tp->close(n->idle[i]);
    }
    free(n->idle);
    pthread_mutex_destroy(&n->mu);
    if (n->own_addr) {
        free(n->cfg.url.host);
        free(n->cfg.display);
    }
    free(n);
}

const char *dlock__node_host(const dlock__node *n) {
    return n->cfg.url.host;
}

int dlock__node_port(const dlock__node *n) {
    return n->cfg.url.port;
}

const char *dlock__node_display(const dlock__node *n) {
    return n->cfg.display;
}

int dlock__node_connect(dlock__node *n, dlock__conn **out) {
    return n->tp->connect(&n->cfg, out);
}

/* Opens a connection before `deadline` as well as within connect_timeout_ms. */
static int connect_by(dlock__node *n, int64_t deadline, dlock__conn **out) {
    int tighter = deadline < dlock__deadline_in(n->cfg.connect_timeout_ms);
    int64_t prev = dlock__tighten_deadline_cap(deadline);
    int rc = n->tp->connect(&n->cfg, out);
    dlock__set_deadline_cap(prev);
    if (rc == DLOCK_ETIMEDOUT && tighter) {
        /* The transport's message names connect_timeout_ms, which is not what ran out. */
        return dlock__err(rc, "%s: no connection before the command's deadline", n->cfg.display);
    }
    return rc;
}

/* Takes an idle connection that still looks healthy, or opens a new one before deadline. */
static int borrow(dlock__node *n, int64_t deadline, dlock__conn **out) {
    for (;;) {
        dlock__conn *conn = NULL;
        pthread_mutex_lock(&n->mu);
        if (n->nidle > 0) {
            conn = n->idle[--n->nidle];
        }
        pthread_mutex_unlock(&n->mu);
        if (conn == NULL) {
            return connect_by(n, deadline, out);
        }
        if (n->tp->alive(conn)) {
            *out = conn;
            return DLOCK_OK;
        }
        n->tp->close(conn);
    }
}

int dlock__node_take_idle(dlock__node *n, dlock__conn **out) {
    pthread_mutex_lock(&n->mu);
    *out = n->nidle > 0 ? n->idle[--n->nidle] : NULL;
    pthread_mutex_unlock(&n->mu);
    return *out != NULL;
}

const dlock__transport *dlock__node_transport(const dlock__node *n) {
    return n->tp;
}

void dlock__node_give_back(dlock__node *n, dlock__conn *conn) {
    pthread_mutex_lock(&n->mu);
    if (n->nidle < n->pool_size) {
        n->idle[n->nidle++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&n->mu);
    if (conn != NULL) {
        n->tp->close(conn);
    }
}

int dlock__node_exec(dlock__node *n, const dlock__cmd *cmds, size_t count, dlock__reply *replies,
                     int64_t deadline, int *sent) {
    *sent = 0;
    dlock__conn *conn;
    int rc = borrow(n, deadline, &conn);
    if (rc != DLOCK_OK) {
        return rc; /* connect already named the server */
    }
    rc = n->tp->exec(conn, cmds, count, replies, deadline, sent);
    if (rc != DLOCK_OK) {
        /* The stream position is unknown after a failure: never reuse this connection. */
        n->tp->close(conn);
        if (rc == DLOCK_ETIMEDOUT) {
            return dlock__err(rc, "%s: no reply within command_timeout_ms (%d ms)", n->cfg.display,
                              n->cfg.command_timeout_ms);
        }
        return dlock__err_prefix(rc, "%s", n->cfg.display);
    }
    dlock__node_give_back(n, conn);
    return DLOCK_OK;
}
