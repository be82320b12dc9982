/* Listens for +switch-master on a sentinel, on a thread of its own, and says when the named
 * master moved.
 *
 * Why: after a failover the old master goes on taking writes until the sentinels turn it into a
 * replica, which they do only when they next look at it (up to 10 s later). A client that waits
 * for an error to ask the sentinels again keeps taking locks there all that while, next to
 * clients that already use the new master: two holders. The sentinels announce the switch on
 * their +switch-master channel the moment it is decided, so listening narrows that window to
 * one pub/sub message.
 *
 * Every sentinel of the list, each on a thread of its own: the sentinel that leads a failover
 * announces the switch only when the failover ends (after the other replicas are reconfigured,
 * or failover-timeout), while the others announce it as soon as they hear of it; and any one may
 * be down. A thread whose connection broke subscribes again and says so (host NULL), because a
 * switch may have been missed in between. */
#include "fmacros.h"

#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_MS 100 /* how often the thread looks at the stop flag */
#define RETRY_MS 500 /* pause after no sentinel could be subscribed to */

/* One sentinel's listener. */
typedef struct listener {
    dlock__switch_watch *w;
    dlock__node *sentinel;
    pthread_t thread;
    int started;
} listener;

struct dlock__switch_watch {
    const dlock__transport *tp;
    const dlock__config *cfg;
    dlock__switch_fn on_switch;
    void *arg;
    atomic_int stop;
    listener *listeners;
    size_t n;
};

/* Sleeps ms in slices, returning early when asked to stop. */
static void nap(dlock__switch_watch *w, int64_t ms) {
    for (int64_t until = dlock__now_ms() + ms; !atomic_load(&w->stop) && dlock__now_ms() < until;) {
        dlock__sleep_ms(SLICE_MS);
    }
}

static int is_str(const dlock__reply *r, const char *s) {
    return r->type == DLOCK__REPLY_STR && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* A connection to the sentinel subscribed to +switch-master, or NULL. */
static dlock__conn *subscribe(dlock__switch_watch *w, dlock__node *sentinel) {
    dlock__conn *conn = NULL;
    if (dlock__node_connect(sentinel, &conn) != DLOCK_OK) {
        return NULL;
    }
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    size_t lens[] = {9, 14};
    dlock__cmd cmd = {2, argv, lens};
    dlock__reply r;
    int sent;
    int rc = w->tp->exec(conn, &cmd, 1, &r, dlock__deadline_in(w->cfg->command_timeout_ms), &sent);
    int ok = rc == DLOCK_OK && r.type == DLOCK__REPLY_ARRAY && r.elements == 3 &&
             is_str(&r.element[0], "subscribe");
    if (rc == DLOCK_OK) {
        dlock__reply_clear(&r);
    }
    if (!ok) {
        w->tp->close(conn);
        return NULL;
    }
    return conn;
}

/* "name old-ip old-port new-ip new-port": calls on_switch when name is ours. */
static void handle(dlock__switch_watch *w, const dlock__reply *msg) {
    if (msg->type != DLOCK__REPLY_ARRAY || msg->elements != 3 ||
        !is_str(&msg->element[0], "message") || msg->element[2].type != DLOCK__REPLY_STR ||
        msg->element[2].len >= 1024) {
        return;
    }
    char name[256], old_host[256], host[256];
    int old_port, port;
    if (sscanf(msg->element[2].str, "%255s %255s %d %255s %d", name, old_host, &old_port, host,
               &port) != 5 ||
        strcmp(name, w->cfg->url.master_name) != 0 || port <= 0 || port > 65535) {
        return;
    }
    w->on_switch(w->arg, host, port);
}

/* Reads messages until the connection breaks or the watch is stopped. */
static void listen_on(dlock__switch_watch *w, dlock__conn *conn) {
    while (!atomic_load(&w->stop)) {
        dlock__reply msg;
        int rc = w->tp->read(conn, &msg, dlock__now_ms() + SLICE_MS);
        if (rc == DLOCK_ETIMEDOUT) {
            continue;
        }
        if (rc != DLOCK_OK) {
            return;
        }
        handle(w, &msg);
        dlock__reply_clear(&msg);
    }
}

static void *listener_main(void *arg) {
    listener *l = arg;
    dlock__switch_watch *w = l->w;
    int missed = 0; /* a switch may have gone unheard since the last subscription */
    while (!atomic_load(&w->stop)) {
        dlock__conn *conn = subscribe(w, l->sentinel);
        if (conn == NULL) {
            missed = 1;
            nap(w, RETRY_MS);
            continue;
        }
        if (missed) {
            w->on_switch(w->arg, NULL, 0);
        }
        listen_on(w, conn);
        w->tp->close(conn);
        missed = 1;
    }
    return NULL;
}

int dlock__switch_watch_start(dlock__node *const *sentinels, size_t n, const dlock__transport *tp,
                              const dlock__config *cfg, dlock__switch_fn on_switch, void *arg,
                              dlock__switch_watch **out) {
    *out = NULL;
    if (tp->read == NULL) {
        return DLOCK_OK; /* a transport that cannot subscribe: errors alone move the client */
    }
    dlock__switch_watch *w = calloc(1, sizeof *w);
    if (w == NULL || (w->listeners = calloc(n, sizeof *w->listeners)) == NULL) {
        free(w);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    w->tp = tp;
    w->cfg = cfg;
    w->on_switch = on_switch;
    w->arg = arg;
    w->n = n;
    atomic_init(&w->stop, 0);
    for (size_t i = 0; i < n; i++) {
        listener *l = &w->listeners[i];
        l->w = w;
        l->sentinel = sentinels[i];
        int e = pthread_create(&l->thread, NULL, listener_main, l);
        if (e != 0) {
            dlock__switch_watch_stop(w);
            return dlock__err(DLOCK_ESYS, "cannot start a +switch-master thread: %s", strerror(e));
        }
        l->started = 1;
    }
    *out = w;
    return DLOCK_OK;
}

void dlock__switch_watch_stop(dlock__switch_watch *w) {
    if (w == NULL) {
        return;
    }
    atomic_store(&w->stop, 1);
    for (size_t i = 0; i < w->n; i++) {
        if (w->listeners[i].started) {
            pthread_join(w->listeners[i].thread, NULL);
        }
    }
    free(w->listeners);
    free(w);
}
