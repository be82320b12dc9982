/* Debounce: the seed's INCR, wait, GET, compare, on the seed's key, so C and JS instances share
 * one debounce. Asynchronous calls go through two threads per handle, both started by the first
 * dlock_debounce_call: a counter that sends each call's INCR as soon as the call is made, and a
 * decider that waits out each call's wait, GETs and runs the callback, in call order. They are
 * separate so that a slow callback delays only later decisions, never the counting of later
 * calls: a call counted late looks later than calls that other handles or processes make after
 * it, so they would not supersede it and both callbacks would run (issue 10, item 8). */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Beyond every call's wait, the counter lives this much longer, so keys of idle debounces
 * disappear (the seed's never do) yet never expire under a waiting call. */
#define EXPIRY_MARGIN_MS ((int64_t)10 * 60 * 1000)

enum pending_state {
    UNCOUNTED,  /* queued; the counter has not sent its INCR yet */
    COUNTED,    /* count is our INCR's result; decide at `due` */
    SUPERSEDED, /* a later call of this handle was counted: decided, no GET needed */
    FAILED,     /* the INCR failed: rc and errmsg say why */
};

typedef struct pending {
    struct pending *next;
    void *arg;
    size_t len;
    enum pending_state state;
    long long count; /* our INCR result */
    int64_t due;     /* monotonic ms when the decision is made */
    int rc;          /* the INCR's error, for the decider to report in call order */
    char *errmsg;    /* its message (malloc'd), or NULL */
} pending;

struct dlock_debounce {
    dlock_client *client;
    char *id;
    size_t idlen;
    int64_t wait_ms;
    dlock_debounce_fn callback;
    dlock_debounce_error_fn error_callback;
    void *userdata;

    /* Calls queue in order from head to tail. The counter works on the first uncounted one
     * (`uncounted`; those after it are uncounted too), the decider on the head once counted. */
    pthread_mutex_t mu;
    pthread_cond_t to_count;  /* new call or stop: the counter re-examines the queue */
    pthread_cond_t to_decide; /* a call counted or superseded, or stop: so does the decider */
    pthread_cond_t idle;      /* outstanding reached 0 */
    pending *head, *tail, *uncounted;
    size_t outstanding;
    int started, stopping;
    pthread_t counter, decider;
};

int dlock_debounce_new(dlock_debounce **out, dlock_client *client, const char *id,
                       const dlock_debounce_options *o) {
    dlock__err_clear();
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_debounce_new: out is NULL");
    }
    *out = NULL;
    if (client == NULL || o == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_debounce_new: %s is NULL",
                          client == NULL ? "client" : "options (the callback is required)");
    }
    if (client->quorum != NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_debounce_new: a Redlock client (several servers) "
                                        "cannot debounce; open a client on one server for it");
    }
    int rc = dlock__check_id(id, "dlock_debounce_new");
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (o->callback == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_debounce_new: options.callback is NULL");
    }
    if (o->wait_ms < 0 || o->wait_ms > DLOCK_MAX_DURATION_MS) {
        return dlock__err(DLOCK_EINVAL,
                          "dlock_debounce_new: wait_ms must be from 0 to 10^12, "
                          "got %lld",
                          (long long)o->wait_ms);
    }
    dlock_debounce *d = calloc(1, sizeof *d);
    if (d == NULL || (d->id = strdup(id)) == NULL) {
        free(d);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    d->client = client;
    d->idlen = strlen(id);
    d->wait_ms = o->wait_ms ? o->wait_ms : DLOCK__DEFAULT_WAIT_MS;
    d->callback = o->callback;
    d->error_callback = o->error_callback;
    d->userdata = o->userdata;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->to_count, NULL);
    dlock__cond_init_monotonic(&d->to_decide);
    pthread_cond_init(&d->idle, NULL);
    *out = d;
    return DLOCK_OK;
}

/* INCR with an expiry, atomically. Sets *count. */
static int count_call(dlock_debounce *d, long long *count) {
    char ttl[24];
    int ttllen = snprintf(ttl, sizeof ttl, "%lld", (long long)(2 * d->wait_ms + EXPIRY_MARGIN_MS));
    const char *argv[] = {d->id, ttl};
    size_t lens[] = {d->idlen, (size_t)ttllen};
    dlock__reply r;
    int rc = dlock__script_run(d->client, &dlock__script_incr_expire, 1, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        *count = r.integer;
    } else {
        rc = dlock__reply_error(d->client, &r, "debounce INCR");
    }
    dlock__reply_clear(&r);
    return rc;
}

/* GET the counter: DLOCK_OK if it still equals count, DLOCK_SUPERSEDED if not, or an error. */
static int still_last(dlock_debounce *d, long long count) {
    const char *argv[] = {"GET", d->id};
    size_t lens[] = {3, d->idlen};
    dlock__reply r;
    int rc = dlock__client_call(d->client, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    char want[24];
    snprintf(want, sizeof want, "%lld", count);
    if (r.type == DLOCK__REPLY_STR) {
        /* Compare decimal text: the counter is what INCR made it (or a JS instance's INCR). */
        rc = strcmp(r.str, want) == 0 ? DLOCK_OK : DLOCK_SUPERSEDED;
    } else if (r.type == DLOCK__REPLY_NIL) {
        rc = DLOCK_SUPERSEDED; /* deleted under us: no call can claim it */
    } else {
        rc = dlock__reply_error(d->client, &r, "debounce GET");
    }
    dlock__reply_clear(&r);
    return rc;
}

static int check_call(dlock_debounce *d, const void *arg, size_t len, const char *what) {
    if (d == NULL) {
        return dlock__err(DLOCK_EINVAL, "%s: debounce is NULL", what);
    }
    if (arg == NULL && len > 0) {
        return dlock__err(DLOCK_EINVAL, "%s: arg is NULL but len is %zu", what, len);
    }
    return DLOCK_OK;
}

int dlock_debounce_call_sync(dlock_debounce *d, const void *arg, size_t len) {
    dlock__err_clear();
    int rc = check_call(d, arg, len, "dlock_debounce_call_sync");
    long long count;
    if (rc != DLOCK_OK || (rc = count_call(d, &count)) != DLOCK_OK) {
        return rc;
    }
    dlock__sleep_ms(d->wait_ms);
    if ((rc = still_last(d, count)) == DLOCK_OK) {
        d->callback(arg, len, d->userdata);
    }
    return rc;
}

/* Removes the head entry after its decision; called with d->mu held. */
static void finish_head(dlock_debounce *d) {
    pending *p = d->head;
    d->head = p->next;
    if (d->head == NULL) {
        d->tail = NULL;
    }
    free(p->arg);
    free(p->errmsg);
    free(p);
    if (--d->outstanding == 0) {
        pthread_cond_broadcast(&d->idle);
    }
}

static void report(dlock_debounce *d, int rc, const char *msg) {
    if (d->error_callback != NULL) {
        d->error_callback(rc, msg, d->userdata);
    }
}

/* The counter: sends each call's INCR as soon as it is queued, one call after another so that a
 * handle's calls are counted in call order. It never runs a user callback: an INCR failure is
 * left in the entry for the decider, so that callbacks and error callbacks of one handle keep
 * running one at a time, in call order, on one thread. The mutex is never held across a round
 * trip. */
static void *counter_main(void *arg) {
    dlock_debounce *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        pending *p = d->uncounted;
        if (p == NULL) {
            if (d->stopping) {
                break;
            }
            pthread_cond_wait(&d->to_count, &d->mu);
            continue;
        }
        /* The decider never removes an uncounted entry, so p stays valid while unlocked. */
        pthread_mutex_unlock(&d->mu);
        long long count = 0;
        int rc = count_call(d, &count);
        char *msg = rc != DLOCK_OK ? strdup(dlock_errmsg()) : NULL;
        int64_t now = dlock__now_ms();
        pthread_mutex_lock(&d->mu);
        d->uncounted = p->next;
        if (rc != DLOCK_OK) {
            p->state = FAILED;
            p->rc = rc;
            p->errmsg = msg;
        } else {
            p->state = COUNTED;
            p->count = count;
            p->due = now + d->wait_ms;
            /* Our own later INCR supersedes every earlier call of this handle for certain:
             * decide those now, without a GET. */
            for (pending *q = d->head; q != p; q = q->next) {
                q->state = q->state == COUNTED ? SUPERSEDED : q->state;
            }
        }
        pthread_cond_signal(&d->to_decide);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* The decider: takes the calls in order, waits until each one's wait is over, and decides it
 * (GET and callback). The mutex is never held across a round trip or a callback. */
static void *decider_main(void *arg) {
    dlock_debounce *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        pending *p = d->head;
        if (p == NULL || p->state == UNCOUNTED) {
            if (p == NULL && d->stopping) {
                break;
            }
            pthread_cond_wait(&d->to_decide, &d->mu);
            continue;
        }
        if (p->state == COUNTED && p->due > dlock__now_ms()) {
            dlock__cond_wait_until(&d->to_decide, &d->mu, p->due);
            continue;
        }
        if (p->state == FAILED) {
            pthread_mutex_unlock(&d->mu);
            report(d, p->rc, p->errmsg != NULL ? p->errmsg : dlock_strerror(p->rc));
            pthread_mutex_lock(&d->mu);
            finish_head(d);
            continue;
        }
        if (p->state == SUPERSEDED) {
            finish_head(d);
            continue;
        }
        /* The counter may mark p superseded meanwhile; the GET decides the same then. */
        long long count = p->count;
        pthread_mutex_unlock(&d->mu);
        int rc = still_last(d, count);
        if (rc == DLOCK_OK) {
            d->callback(p->arg, p->len, d->userdata);
        } else if (rc < 0) {
            report(d, rc, dlock_errmsg());
        }
        pthread_mutex_lock(&d->mu);
        finish_head(d);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Starts the counter and the decider; called with d->mu held. */
static int start_threads(dlock_debounce *d) {
    int e = pthread_create(&d->counter, NULL, counter_main, d);
    if (e == 0) {
        e = pthread_create(&d->decider, NULL, decider_main, d);
        if (e != 0) {
            /* The queue is empty, so the counter exits as soon as it sees `stopping`. */
            d->stopping = 1;
            pthread_cond_signal(&d->to_count);
            pthread_mutex_unlock(&d->mu);
            pthread_join(d->counter, NULL);
            pthread_mutex_lock(&d->mu);
            d->stopping = 0;
        }
    }
    if (e != 0) {
        return dlock__err(DLOCK_ESYS, "dlock_debounce_call: cannot start thread: %s", strerror(e));
    }
    d->started = 1;
    return DLOCK_OK;
}

int dlock_debounce_call(dlock_debounce *d, const void *arg, size_t len) {
    dlock__err_clear();
    int rc = check_call(d, arg, len, "dlock_debounce_call");
    if (rc != DLOCK_OK) {
        return rc;
    }
    pending *p = calloc(1, sizeof *p);
    if (p == NULL || (len > 0 && (p->arg = malloc(len)) == NULL)) {
        free(p);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    if (len > 0) {
        memcpy(p->arg, arg, len);
    }
    p->len = len;
    pthread_mutex_lock(&d->mu);
    if (!d->started && (rc = start_threads(d)) != DLOCK_OK) {
        pthread_mutex_unlock(&d->mu);
        free(p->arg);
        free(p);
        return rc;
    }
    if (d->tail != NULL) {
        d->tail->next = p;
    } else {
        d->head = p;
    }
    d->tail = p;
    if (d->uncounted == NULL) {
        d->uncounted = p;
    }
    d->outstanding++;
    pthread_cond_signal(&d->to_count);
    pthread_mutex_unlock(&d->mu);
    return DLOCK_OK;
}

int dlock_debounce_flush(dlock_debounce *d) {
    dlock__err_clear();
    if (d == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_debounce_flush: debounce is NULL");
    }
    pthread_mutex_lock(&d->mu);
    while (d->outstanding > 0) {
        pthread_cond_wait(&d->idle, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return DLOCK_OK;
}

void dlock_debounce_free(dlock_debounce *d) {
    if (d == NULL) {
        return;
    }
    dlock_debounce_flush(d);
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->to_count);
    pthread_cond_signal(&d->to_decide);
    int started = d->started;
    pthread_mutex_unlock(&d->mu);
    if (started) {
        pthread_join(d->counter, NULL);
        pthread_join(d->decider, NULL);
    }
    pthread_cond_destroy(&d->to_count);
    pthread_cond_destroy(&d->to_decide);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    free(d->id);
    free(d);
}
