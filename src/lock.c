/* Lock: the seed's SET NX PX lock, with owner-checked release and extend as Lua scripts, plus
 * fencing tokens, blocking acquire with jittered backoff, and validity bookkeeping. */
#include "fmacros.h"

#include "holder.h"
#include "lock_impl.h"
#include "quorum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest lease or extension accepted: far beyond any sane lease, far below where adding it to
 * Redis's clock could overflow. */
#define MAX_LEASE_MS DLOCK_MAX_DURATION_MS

static int check_lease(int64_t v, const char *what) {
    if (v < 0 || v > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "%s must be from 1 to %lld ms, got %lld", what,
                          (long long)MAX_LEASE_MS, (long long)v);
    }
    return DLOCK_OK;
}

/* Validates the fields shared by dlock_lock_options and dlock_acquire_options (0 = inherit). */
static int check_settings(int64_t lease, int attempts, int64_t delay, const char *what) {
    int rc = check_lease(lease, what);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (attempts < 0) {
        return dlock__err(DLOCK_EINVAL, "attempts must be >= 1 (0 = default), got %d", attempts);
    }
    if (delay < -1 || delay > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "delay_ms must be >= 0, or -1 for no pause, got %lld",
                          (long long)delay);
    }
    return DLOCK_OK;
}

/* Makes the fencing counter's key and the wait queue. Ids whose slot no second key can share
 * still work, with plain release and polling waiters; only fencing needs the counter. */
static int make_siblings(dlock_lock *l, int fencing) {
    int ok;
    l->fence_key = dlock__sibling_key(l->id, l->idlen, "fence", &l->fence_len, &ok);
    if (!ok) {
        return fencing ? dlock__err(DLOCK_EINVAL,
                                    "dlock_lock_new: fencing needs an id without '{' or '}', or "
                                    "with a non-empty hash tag such as 'jobs{42}': no second key "
                                    "can share the Redis Cluster slot of this id")
                       : DLOCK_OK;
    }
    l->holder_key = dlock__sibling_key(l->id, l->idlen, "holder", &l->holder_key_len, &ok);
    if (l->fence_key == NULL || l->holder_key == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    if (l->client->quorum != NULL) {
        /* A Redlock polls (no wait queue) and records no holder text (a majority rule for a
         * best-effort record is not worth a second fan-out per acquire and renewal). */
        free(l->holder_key);
        l->holder_key = NULL;
        return DLOCK_OK;
    }
    return dlock__queue_new(&l->queue, l->client, l->id, l->idlen, l->fence_key, l->fence_len);
}

static void free_siblings(dlock_lock *l) {
    dlock__queue_free(l->queue);
    free(l->fence_key);
    free(l->holder_key);
    free(l->holder);
}

/* wait_replicas and its timeout, which must end before the command's deadline does (or the
 * connection would be dropped as timed out instead of WAIT answering). */
static int check_wait_replicas(const dlock_client *c, const dlock_lock_options *o, int64_t *out) {
    int64_t cmd = c->cfg.command_timeout_ms;
    if (o->wait_replicas < 0 || o->wait_replicas_timeout_ms < 0) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: wait_replicas and "
                                        "wait_replicas_timeout_ms must be >= 0 (0 = off/default)");
    }
    if (o->wait_replicas > 0 && o->wait_replicas_timeout_ms >= cmd) {
        return dlock__err(DLOCK_EINVAL,
                          "dlock_lock_new: wait_replicas_timeout_ms (%lld) must be shorter than "
                          "the client's command_timeout_ms (%lld)",
                          (long long)o->wait_replicas_timeout_ms, (long long)cmd);
    }
    int64_t dflt = cmd / 2 < 1000 ? cmd / 2 : 1000;
    *out = o->wait_replicas_timeout_ms > 0 ? o->wait_replicas_timeout_ms : (dflt > 0 ? dflt : 1);
    return DLOCK_OK;
}

int dlock_lock_new(dlock_lock **out, dlock_client *client, const char *id,
                   const dlock_lock_options *o) {
    dlock__err_clear();
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: out is NULL");
    }
    *out = NULL;
    if (client == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: client is NULL");
    }
    int rc = dlock__check_id(id, "dlock_lock_new");
    static const dlock_lock_options defaults;
    if (o == NULL) {
        o = &defaults;
    }
    if (rc != DLOCK_OK ||
        (rc = check_settings(o->lease_ms, o->attempts, o->delay_ms, "lease_ms")) != DLOCK_OK) {
        return rc;
    }
    if (o->renew_interval_ms < 0 || o->max_hold_ms < 0 || o->drift_ms < 0) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: renew_interval_ms, max_hold_ms and "
                                        "drift_ms must be >= 0 (0 = default)");
    }
    if (o->holder != NULL && strnlen(o->holder, DLOCK_MAX_HOLDER_LEN + 1) > DLOCK_MAX_HOLDER_LEN) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: holder is longer than %d bytes",
                          DLOCK_MAX_HOLDER_LEN);
    }
    int64_t lease = o->lease_ms ? o->lease_ms : DLOCK__DEFAULT_LEASE_MS;
    if (o->auto_renew && o->renew_interval_ms >= lease) {
        return dlock__err(DLOCK_EINVAL,
                          "dlock_lock_new: renew_interval_ms (%lld) must be shorter than the "
                          "lease (%lld ms), or the lease runs out between renewals",
                          (long long)o->renew_interval_ms, (long long)lease);
    }
    int64_t wait_timeout = 0;
    if (client->quorum != NULL && o->wait_replicas != 0) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_new: wait_replicas does not apply to a Redlock "
                                        "(its servers are independent masters; a majority of "
                                        "them, not replicas, keeps the lock)");
    }
    if (client->quorum == NULL &&
        (rc = check_wait_replicas(client, o, &wait_timeout)) != DLOCK_OK) {
        return rc;
    }
    dlock_lock *l = calloc(1, sizeof *l);
    if (l == NULL || (l->id = strdup(id)) == NULL) {
        free(l);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    l->client = client;
    l->idlen = strlen(id);
    l->fencing = o->fencing != 0;
    if ((rc = make_siblings(l, l->fencing)) != DLOCK_OK) {
        free_siblings(l);
        free(l->id);
        free(l);
        return rc;
    }
    l->lease_ms = lease;
    l->attempts = o->attempts ? o->attempts : DLOCK__DEFAULT_ATTEMPTS;
    l->delay_ms = o->delay_ms ? o->delay_ms : DLOCK__DEFAULT_DELAY_MS;
    l->drift_ms = o->drift_ms;
    l->auto_renew = o->auto_renew;
    l->renew_interval_ms = o->renew_interval_ms;
    l->max_hold_ms = o->max_hold_ms;
    l->on_lost = o->on_lost;
    l->on_renew_error = o->on_renew_error;
    l->userdata = o->userdata;
    l->wait_replicas = o->wait_replicas;
    l->wait_timeout_ms = wait_timeout;
    if (o->holder != NULL && (l->holder = strdup(o->holder)) == NULL) {
        free_siblings(l);
        free(l->id);
        free(l);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&l->mu, NULL);
    dlock__cond_init_monotonic(&l->wake);
    *out = l;
    return DLOCK_OK;
}

/* Forgets the hold. Called with l->mu held. */
static void drop_token(dlock_lock *l) {
    free(l->token);
    l->token = NULL;
    l->token_len = 0;
    l->fencing_token = 0;
    l->granted_ms = 0;
    l->lost = 0;
}

void dlock_lock_free(dlock_lock *l) {
    if (l == NULL) {
        return;
    }
    dlock__renew_stop(l);
    drop_token(l);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->mu);
    free_siblings(l);
    free(l->id);
    free(l);
}

/* After a SET whose reply was lost, asks (on a fresh connection) whether the key now holds our
 * token. Returns 1 if it does, 0 if not, or a negative code if Redis cannot tell us. With
 * fencing it also reads the counter: while we hold the lock nobody else can increment it, so
 * its value is our fencing token. */
static int set_took_effect(dlock_lock *l, const char *token, size_t token_len, int64_t *fence) {
    const char *a1[] = {"GET", l->id}, *a2[] = {"GET", l->fence_key};
    size_t l1[] = {3, l->idlen}, l2[] = {3, l->fence_len};
    dlock__cmd cmds[] = {{2, a1, l1}, {2, a2, l2}};
    dlock__reply r[2];
    int rc = dlock__client_exec(l->client, cmds, l->fencing ? 2 : 1, r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    int ours = r[0].type == DLOCK__REPLY_STR && r[0].len == token_len &&
               memcmp(r[0].str, token, r[0].len) == 0;
    if (l->fencing) {
        if (ours) {
            *fence = r[1].type == DLOCK__REPLY_STR ? strtoll(r[1].str, NULL, 10) : 0;
        }
        dlock__reply_clear(&r[1]);
    }
    dlock__reply_clear(&r[0]);
    return ours;
}

static int plain_release(dlock_lock *l, const char *token, size_t token_len, int *sent);

/* Takes back a hold this call made but must not count (too few replicas confirmed it), keeping
 * the message and saying what became of the hold. Returns rc. */
static int undo_hold(dlock_lock *l, const char *token, size_t token_len, int rc) {
    char saved[512];
    snprintf(saved, sizeof saved, "%s", dlock_errmsg());
    int sent = 0;
    int r = l->queue != NULL ? dlock__queue_release(l->queue, token, token_len, l->holder_key,
                                                    l->holder_key_len, &sent)
                             : plain_release(l, token, token_len, &sent);
    return dlock__err(rc, "%s; %s", saved,
                      r >= 0 ? "the lock was released again"
                             : "releasing it again failed too (it expires with its lease)");
}

/* One SET NX PX (or the fenced script), followed on the same connection by WAIT when the lock
 * has wait_replicas. Returns OK, NOT_ACQUIRED or an error; never an error while holding the
 * lock. Sets *fence to the fencing token when fencing. */
static int try_set(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                   int64_t *fence) {
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)lease);
    dlock__wait w;
    dlock__wait_init(&w, l->wait_replicas, l->wait_timeout_ms);
    const dlock__cmd *after = l->wait_replicas > 0 ? &w.cmd : NULL;
    dlock__reply r = {0}, wr = {0};
    int sent, rc;
    if (l->fencing) {
        const char *argv[] = {l->id, l->fence_key, token, px};
        size_t lens[] = {l->idlen, l->fence_len, token_len, (size_t)pxlen};
        rc = dlock__script_run_then(l->client, &dlock__script_acquire_fenced, 2, 4, argv, lens,
                                    after, &r, &wr, &sent);
    } else {
        const char *argv[] = {"SET", l->id, token, "NX", "PX", px};
        size_t lens[] = {3, l->idlen, token_len, 2, 2, (size_t)pxlen};
        dlock__cmd cmds[2] = {{6, argv, lens}, w.cmd};
        dlock__reply rr[2];
        if ((rc = dlock__client_exec(l->client, cmds, after ? 2 : 1, rr, &sent)) == DLOCK_OK) {
            r = rr[0];
            wr = after ? rr[1] : wr;
        }
    }
    if (rc != DLOCK_OK) {
        if (!sent) {
            return rc;
        }
        /* The SET may have been applied and its reply lost: find out before answering, so we
         * never report an error (and leak a held lock) or a success that is not true. */
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        int ours = set_took_effect(l, token, token_len, fence);
        if (ours == 1 && after != NULL) {
            dlock__err(rc, "%s; the SET took effect, but WAIT's answer was lost", saved);
            return undo_hold(l, token, token_len, rc);
        }
        if (ours == 1) {
            return DLOCK_OK;
        }
        return dlock__err(rc, "%s; %s", saved,
                          ours == 0
                              ? "checked after reconnecting: this call does not hold the lock now "
                                "(a SET delayed in the network would still expire with "
                                "its lease)"
                              : "could not check whether the SET took effect (the key "
                                "expires with its lease if it did)");
    }
    if (l->fencing && r.type == DLOCK__REPLY_INT && r.integer == 0) {
        rc = DLOCK_NOT_ACQUIRED;
    } else if (l->fencing && r.type == DLOCK__REPLY_STR && r.len > 0 &&
               strspn(r.str, "0123456789") == r.len) {
        *fence = strtoll(r.str, NULL, 10); /* the counter's text: Lua would round it */
        rc = DLOCK_OK;
    } else if (!l->fencing && r.type == DLOCK__REPLY_STR && r.len == 2 &&
               memcmp(r.str, "OK", 2) == 0) {
        rc = DLOCK_OK;
    } else if (!l->fencing && r.type == DLOCK__REPLY_NIL) {
        rc = DLOCK_NOT_ACQUIRED;
    } else {
        rc = dlock__reply_error(l->client, &r, "SET NX PX");
    }
    if (rc == DLOCK_OK && after != NULL &&
        (rc = dlock__wait_check(&w, l->client, &wr, "acquire")) != DLOCK_OK) {
        rc = undo_hold(l, token, token_len, rc);
    }
    dlock__reply_clear(&r);
    dlock__reply_clear(&wr);
    return rc;
}

/* A hold the wait queue got may have been written by the releaser's hand-off, on another
 * connection, where our WAIT would count nothing. So we write once more behind it on our own:
 * the renewal script, asked for a lease 1 ms longer so that it always writes; replication keeps
 * order, so a replica that has our write has the hold too. Then WAIT. */
static int confirm_replicas(dlock_lock *l, const char *token, size_t token_len, int64_t lease) {
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)dlock__add_sat(lease, 1));
    const char *argv[] = {l->id, token, px};
    size_t lens[] = {l->idlen, token_len, (size_t)pxlen};
    dlock__wait w;
    dlock__wait_init(&w, l->wait_replicas, l->wait_timeout_ms);
    dlock__reply r = {0}, wr = {0};
    int rc = dlock__script_run_then(l->client, &dlock__script_renew, 1, 3, argv, lens, &w.cmd, &r,
                                    &wr, NULL);
    if (rc != DLOCK_OK) {
        return undo_hold(l, token, token_len, rc);
    }
    if (r.type == DLOCK__REPLY_INT && r.integer == 0) {
        rc = dlock__err(DLOCK_NOT_ACQUIRED,
                        "%s: the lock was lost before its replicas could "
                        "confirm it",
                        l->client->cfg.display);
    } else if (r.type != DLOCK__REPLY_INT) {
        rc = undo_hold(l, token, token_len, dlock__reply_error(l->client, &r, "acquire"));
    } else if ((rc = dlock__wait_check(&w, l->client, &wr, "acquire")) != DLOCK_OK) {
        rc = undo_hold(l, token, token_len, rc);
    }
    dlock__reply_clear(&r);
    dlock__reply_clear(&wr);
    return rc;
}

static int cancelled(dlock_lock *l) {
    atomic_store(&l->cancel, 0);
    return dlock__err(DLOCK_ECANCELED, "acquire cancelled");
}

/* Up to `attempts` tries, delay ms apart (never after the last: the seed sleeps there too). */
static int try_attempts(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                        int attempts, int64_t delay, dlock__grant *g) {
    int rc = DLOCK_NOT_ACQUIRED;
    for (int i = 0; i < attempts; i++) {
        if (atomic_load(&l->cancel)) {
            return cancelled(l);
        }
        g->sent_at = dlock__now_ms();
        rc = try_set(l, token, token_len, lease, &g->fence);
        if (rc != DLOCK_NOT_ACQUIRED) {
            break;
        }
        if (i + 1 < attempts && delay > 0 && dlock__sleep_cancellable(delay, &l->cancel)) {
            return cancelled(l);
        }
    }
    return rc;
}

/* Polling until the deadline, for ids that have no wait queue (no Cluster slot for one). */
static int poll_until(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                      int64_t deadline, dlock__grant *g) {
    int64_t backoff = 10;
    for (;;) {
        g->sent_at = dlock__now_ms();
        int rc = try_set(l, token, token_len, lease, &g->fence);
        int64_t left = deadline - dlock__now_ms();
        if (rc != DLOCK_NOT_ACQUIRED || left <= 0) {
            return rc;
        }
        int64_t pause = dlock__backoff_pause(&backoff, 500);
        if (dlock__sleep_cancellable(pause < left ? pause : left, &l->cancel)) {
            return cancelled(l);
        }
    }
}

/* A blocking acquire on an id with a wait queue. While the handle's blocking acquires find the
 * lock free, each starts with one plain try (try_set: SET NX PX, as a non-blocking acquire): the
 * queue's try is a larger script (it records how the holder took the lock, for hand-offs and
 * lost replies), and a waiter's stream would be opened for nothing. Once an acquire has had to
 * wait, the next ones go straight to the queue, so contention costs no extra round trip; an
 * acquire whose first queued try finds the lock free returns to plain tries. Both ways a free
 * lock goes to whoever asks first, and a held one is handed to the queue's first waiter, so
 * this changes what a call costs, never who gets the lock. */
static int queued_acquire(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                          int64_t wait_ms, dlock__grant *g) {
    int64_t deadline = dlock__add_sat(dlock__now_ms(), wait_ms);
    if (!l->contended) {
        g->sent_at = dlock__now_ms();
        int rc = try_set(l, token, token_len, lease, &g->fence);
        if (rc != DLOCK_NOT_ACQUIRED) {
            return rc; /* with wait_replicas, try_set has had them confirm it */
        }
    }
    int rc =
        dlock__queue_wait(l->queue, token, token_len, lease, l->fencing, deadline, &l->cancel, g);
    l->contended = rc != DLOCK_OK || g->waited;
    if (rc == DLOCK_OK && l->wait_replicas > 0) {
        rc = confirm_replicas(l, token, token_len, lease);
    }
    return rc;
}

/* A handle that still holds the lock gets NOT_ACQUIRED at once, as the seed's second acquire
 * does, but says why: a waiting acquire would otherwise wait for itself until its deadline, and
 * "another holder has the lock" would be untrue. One GET, only when the handle holds a token. */
static int already_held(dlock_lock *l) {
    pthread_mutex_lock(&l->mu);
    int holding = l->token != NULL && !l->lost;
    pthread_mutex_unlock(&l->mu);
    if (!holding) {
        return DLOCK_OK;
    }
    dlock_state st;
    int rc = dlock_lock_status(l, &st);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (st == DLOCK_ACQUIRED) {
        return dlock__err(DLOCK_NOT_ACQUIRED, "this handle already holds the lock (acquired "
                                              "earlier and not released); release it first");
    }
    return DLOCK_OK;
}

/* 1 when called from on_lost or on_renew_error, i.e. on the handle's own renewal thread. */
static int on_renewal_thread(dlock_lock *l) {
    pthread_mutex_lock(&l->mu);
    int self = l->thread_live && pthread_equal(l->thread, pthread_self());
    pthread_mutex_unlock(&l->mu);
    return self;
}

int dlock_lock_acquire(dlock_lock *l, const dlock_acquire_options *o) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_acquire: lock is NULL");
    }
    if (on_renewal_thread(l)) {
        /* The new hold would need a renewal thread while this one is still running. */
        return dlock__err(DLOCK_ESTATE, "dlock_lock_acquire: not allowed from on_lost or "
                                        "on_renew_error; acquire from another thread");
    }
    static const dlock_acquire_options defaults;
    if (o == NULL) {
        o = &defaults;
    }
    int rc = check_settings(o->lease_ms, o->attempts, o->delay_ms, "lease_ms");
    if (rc != DLOCK_OK) {
        return rc;
    }
    int64_t lease = o->lease_ms ? o->lease_ms : l->lease_ms;
    int attempts = o->attempts ? o->attempts : l->attempts;
    int64_t delay = o->delay_ms ? o->delay_ms : l->delay_ms;

    char uuid[DLOCK__UUID_LEN + 1];
    const char *token = uuid;
    size_t token_len = DLOCK__UUID_LEN;
    if (o->token != NULL && o->token[0] != '\0') {
        token = o->token;
        token_len = strnlen(o->token, DLOCK__MAX_TOKEN_LEN + 1);
        if (token_len > DLOCK__MAX_TOKEN_LEN) {
            return dlock__err(DLOCK_EINVAL, "token is longer than %d bytes", DLOCK__MAX_TOKEN_LEN);
        }
    } else if ((rc = dlock__uuid4(uuid)) != DLOCK_OK) {
        return rc;
    }

    if ((rc = already_held(l)) != DLOCK_OK) {
        return rc;
    }
    dlock__grant g = {0, 0, lease, 0};
    if (atomic_exchange(&l->cancel, 0)) {
        return dlock__err(DLOCK_ECANCELED, "acquire cancelled (by a dlock_lock_cancel made before "
                                           "it started)");
    }
    if (l->client->quorum != NULL) {
        rc = dlock__quorum_acquire(l, token, token_len, lease, attempts, delay, o->wait_ms, &g);
    } else if (o->wait_ms > 0 && l->queue != NULL) {
        rc = queued_acquire(l, token, token_len, lease, o->wait_ms, &g);
    } else if (o->wait_ms > 0) {
        rc =
            poll_until(l, token, token_len, lease, dlock__add_sat(dlock__now_ms(), o->wait_ms), &g);
    } else {
        rc = try_attempts(l, token, token_len, lease, attempts, delay, &g);
    }
    if (rc != DLOCK_OK) {
        return rc; /* a token this handle held before stays, so it can still be released */
    }
    char *copy = malloc(token_len + 1);
    if (copy == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory (the lock was acquired and will expire)");
    }
    memcpy(copy, token, token_len);
    copy[token_len] = '\0';
    dlock__renew_stop(l); /* a renewal of an earlier hold of this handle must not outlive it */
    pthread_mutex_lock(&l->mu);
    drop_token(l);
    l->token = copy;
    l->token_len = token_len;
    l->fencing_token = g.fence;
    l->hold_lease_ms = lease;
    l->granted_at = g.sent_at;
    l->granted_ms = g.ms;
    pthread_mutex_unlock(&l->mu);
    if (l->holder != NULL && l->holder_key != NULL) {
        dlock__holder_write(l->client, l->holder_key, l->holder_key_len, token, token_len,
                            l->holder, g.ms);
    }
    if (l->auto_renew && (rc = dlock__renew_start(l)) != DLOCK_OK) {
        /* Holding a lock nobody renews, while reporting failure, would leave it orphaned. */
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        dlock_lock_release(l);
        return dlock__err(rc, "%s; the lock was released again", saved);
    }
    dlock__err_clear(); /* a verified lost reply or a timed-out wait step left a message */
    return DLOCK_OK;
}

/* The release script for ids without a wait queue. OK, NOT_HELD or an error. */
static int plain_release(dlock_lock *l, const char *token, size_t token_len, int *sent) {
    const char *argv[] = {l->id, token};
    size_t lens[] = {l->idlen, token_len};
    dlock__reply r;
    int rc = dlock__script_run(l->client, &dlock__script_release, 1, 2, argv, lens, &r, sent);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        rc = r.integer >= 1 ? DLOCK_OK : DLOCK_NOT_HELD;
    } else {
        rc = dlock__reply_error(l->client, &r, "release");
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_release(dlock_lock *l) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_release: lock is NULL");
    }
    dlock__renew_stop(l); /* for good: a renewal after release would resurrect nothing, but
                             its failure would be reported as a loss */
    if (l->token == NULL) {
        return DLOCK_NOT_HELD;
    }
    int sent = 0;
    int rc = l->client->quorum != NULL ? dlock__quorum_release(l, &sent)
             : l->queue != NULL        ? dlock__queue_release(l->queue, l->token, l->token_len,
                                                              l->holder_key, l->holder_key_len, &sent)
                                       : plain_release(l, l->token, l->token_len, &sent);
    pthread_mutex_lock(&l->mu);
    if (rc == DLOCK_OK || rc == DLOCK_NOT_HELD) {
        drop_token(l);
    } else {
        l->granted_ms = 0; /* whatever happened, this handle no longer counts on holding it */
    }
    pthread_mutex_unlock(&l->mu);
    if (rc < 0 && sent) {
        /* A retry would then find the key gone and say NOT_HELD: tell the caller why. */
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        return dlock__err(rc, "%s; the release may have taken effect before the reply was lost",
                          saved);
    }
    return rc;
}

/* extend of a Redlock: as below, with the lease a majority confirmed. */
static int quorum_extend(dlock_lock *l, int64_t ms) {
    int64_t sent_at = dlock__now_ms(), granted = 0;
    int rc = dlock__quorum_extend(l, l->token, l->token_len, 0, ms, &granted);
    pthread_mutex_lock(&l->mu);
    if (rc == 0) {
        l->lost = 1;
    } else if (rc == 1) {
        l->granted_at = sent_at;
        l->granted_ms = granted;
    }
    pthread_mutex_unlock(&l->mu);
    return rc == 0 ? DLOCK_NOT_HELD : rc == 1 ? DLOCK_OK : rc;
}

int dlock_lock_extend(dlock_lock *l, int64_t ms) {
    dlock__err_clear();
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_extend: lock is NULL");
    }
    if (ms <= 0 || ms > MAX_LEASE_MS) {
        return dlock__err(DLOCK_EINVAL, "extend: ms must be from 1 to %lld, got %lld",
                          (long long)MAX_LEASE_MS, (long long)ms);
    }
    pthread_mutex_lock(&l->mu);
    int lost = l->lost;
    pthread_mutex_unlock(&l->mu);
    if (l->token == NULL || lost) {
        return DLOCK_NOT_HELD;
    }
    if (l->client->quorum != NULL) {
        return quorum_extend(l, ms);
    }
    char add[24];
    int addlen = snprintf(add, sizeof add, "%lld", (long long)ms);
    const char *argv[] = {l->id, l->token, add};
    size_t lens[] = {l->idlen, l->token_len, (size_t)addlen};
    dlock__wait w;
    dlock__wait_init(&w, l->wait_replicas, l->wait_timeout_ms);
    dlock__reply r = {0}, wr = {0};
    int64_t sent_at = dlock__now_ms();
    int rc = dlock__script_run_then(l->client, &dlock__script_extend, 1, 3, argv, lens,
                                    l->wait_replicas > 0 ? &w.cmd : NULL, &r, &wr, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        /* An extension too few replicas confirmed is not counted: validity stays as it was. */
        int confirmed = r.integer > 0 && l->wait_replicas > 0
                            ? dlock__wait_check(&w, l->client, &wr, "extend")
                            : DLOCK_OK;
        pthread_mutex_lock(&l->mu);
        if (r.integer == 0) {
            rc = DLOCK_NOT_HELD;
            l->lost = 1;
        } else if (confirmed != DLOCK_OK) {
            rc = confirmed;
        } else {
            l->granted_at = sent_at;
            l->granted_ms = r.integer; /* the new PTTL, or -1: no expiry */
        }
        pthread_mutex_unlock(&l->mu);
        if (r.integer != 0 && l->holder != NULL && l->holder_key != NULL) {
            dlock__holder_touch(l->client, l->holder_key, l->holder_key_len, r.integer);
        }
    } else {
        rc = dlock__reply_error(l->client, &r, "extend");
    }
    dlock__reply_clear(&r);
    dlock__reply_clear(&wr);
    return rc;
}

int dlock_lock_status(dlock_lock *l, dlock_state *out) {
    dlock__err_clear();
    if (out != NULL) {
        *out = DLOCK_FREE;
    }
    if (l == NULL || out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_status: %s is NULL",
                          l == NULL ? "lock" : "out");
    }
    pthread_mutex_lock(&l->mu);
    int lost = l->lost;
    pthread_mutex_unlock(&l->mu);
    if (l->token == NULL || lost) {
        return DLOCK_OK;
    }
    if (l->client->quorum != NULL) {
        int held = 0;
        int rc = dlock__quorum_status(l, &held);
        *out = rc == DLOCK_OK && held ? DLOCK_ACQUIRED : DLOCK_FREE;
        return rc;
    }
    const char *argv[] = {"GET", l->id};
    size_t lens[] = {3, l->idlen};
    dlock__reply r;
    int rc = dlock__client_call(l->client, 2, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_STR || r.type == DLOCK__REPLY_NIL) {
        if (r.type == DLOCK__REPLY_STR && r.len == l->token_len &&
            memcmp(r.str, l->token, r.len) == 0) {
            *out = DLOCK_ACQUIRED;
        }
    } else {
        rc = dlock__reply_error(l->client, &r, "status (GET)");
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_cancel(dlock_lock *l) {
    if (l == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_cancel: lock is NULL");
    }
    atomic_store(&l->cancel, 1);
    return DLOCK_OK;
}

const char *dlock_lock_id(const dlock_lock *l) {
    return l != NULL ? l->id : NULL;
}

const char *dlock_lock_token(const dlock_lock *l) {
    return l != NULL ? l->token : NULL;
}

int64_t dlock_lock_fencing_token(const dlock_lock *l) {
    return l != NULL && l->token != NULL ? l->fencing_token : 0;
}

int64_t dlock_lock_validity_ms(const dlock_lock *l) {
    if (l == NULL) {
        return 0;
    }
    dlock_lock *m = (dlock_lock *)l; /* the mutex is not part of the logical state */
    pthread_mutex_lock(&m->mu);
    int64_t v = 0;
    if (l->token != NULL && !l->lost) {
        if (l->granted_ms < 0) {
            v = INT64_MAX;
        } else {
            int64_t drift = l->drift_ms > 0 ? l->drift_ms : 2 + l->hold_lease_ms / 100;
            v = l->granted_ms - (dlock__now_ms() - l->granted_at) - drift;
            v = v > 0 ? v : 0;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return v;
}

int dlock_lock_adopt(dlock_lock *l, const char *token) {
    dlock__err_clear();
    if (l == NULL || token == NULL || token[0] == '\0') {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_adopt: %s",
                          l == NULL ? "lock is NULL" : "token is NULL or empty");
    }
    size_t n = strnlen(token, DLOCK__MAX_TOKEN_LEN + 1);
    if (n > DLOCK__MAX_TOKEN_LEN) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_adopt: token is longer than %d bytes",
                          DLOCK__MAX_TOKEN_LEN);
    }
    if (on_renewal_thread(l)) {
        return dlock__err(DLOCK_ESTATE, "dlock_lock_adopt: not allowed from on_lost or "
                                        "on_renew_error");
    }
    char *copy = strdup(token);
    if (copy == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&l->mu);
    int busy = l->thread_live && !l->stop_renewal && !l->lost;
    if (!busy) {
        drop_token(l);
        l->token = copy;
        l->token_len = n;
        l->hold_lease_ms = l->lease_ms;
    }
    pthread_mutex_unlock(&l->mu);
    if (busy) {
        free(copy);
        return dlock__err(DLOCK_ESTATE, "dlock_lock_adopt: this handle auto-renews a hold of its "
                                        "own; release it first");
    }
    return DLOCK_OK;
}

int dlock_lock_inspect(dlock_client *client, const char *id, const char *token,
                       dlock_lock_info *out) {
    dlock__err_clear();
    if (client == NULL || out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_inspect: %s is NULL",
                          client == NULL ? "client" : "out");
    }
    memset(out, 0, sizeof *out);
    int rc = dlock__check_id(id, "dlock_lock_inspect");
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (client->quorum != NULL) {
        return dlock__quorum_inspect(client, id, token, out);
    }
    const char *argv[] = {id};
    size_t lens[] = {strlen(id)};
    dlock__reply r;
    if ((rc = dlock__script_run(client, &dlock__script_inspect, 1, 1, argv, lens, &r, NULL)) !=
        DLOCK_OK) {
        return rc;
    }
    if (r.type != DLOCK__REPLY_ARRAY || r.elements != 2 || r.element[1].type != DLOCK__REPLY_INT ||
        (r.element[0].type != DLOCK__REPLY_STR && r.element[0].type != DLOCK__REPLY_NIL)) {
        rc = dlock__reply_error(client, &r, "inspect");
    } else if (r.element[0].type == DLOCK__REPLY_STR) {
        const dlock__reply *v = &r.element[0];
        out->held = 1;
        out->remaining_ms = r.element[1].integer;
        size_t n = v->len < sizeof out->holder_token - 1 ? v->len : sizeof out->holder_token - 1;
        memcpy(out->holder_token, v->str, n);
        out->token_matches =
            token != NULL && strlen(token) == v->len && memcmp(token, v->str, v->len) == 0;
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock_lock_inspect_details(dlock_client *client, const char *id, dlock_lock_details *out) {
    dlock__err_clear();
    if (client == NULL || out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_lock_inspect_details: %s is NULL",
                          client == NULL ? "client" : "out");
    }
    memset(out, 0, sizeof *out);
    int rc = dlock__check_id(id, "dlock_lock_inspect_details"), ok;
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (client->quorum != NULL) { /* a Redlock: the lock's majority view, no holder record */
        return dlock_lock_inspect(client, id, NULL, &out->info);
    }
    size_t idlen = strlen(id), hlen, flen;
    char *hkey = dlock__sibling_key(id, idlen, "holder", &hlen, &ok);
    char *fkey = ok ? dlock__sibling_key(id, idlen, "fence", &flen, &ok) : NULL;
    if (!ok) { /* no siblings: the lock alone */
        return dlock_lock_inspect(client, id, NULL, &out->info);
    }
    if (hkey == NULL || fkey == NULL) {
        free(hkey);
        free(fkey);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    const char *argv[] = {id, hkey, fkey};
    size_t lens[] = {idlen, hlen, flen};
    dlock__reply r;
    rc = dlock__script_run(client, &dlock__script_inspect_details, 3, 3, argv, lens, &r, NULL);
    free(hkey);
    free(fkey);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type != DLOCK__REPLY_ARRAY || r.elements != 4 || r.element[1].type != DLOCK__REPLY_INT) {
        rc = dlock__reply_error(client, &r, "inspect");
    } else {
        const dlock__reply *v = &r.element[0], *h = &r.element[2], *f = &r.element[3];
        if (v->type == DLOCK__REPLY_STR) {
            out->info.held = 1;
            out->info.remaining_ms = r.element[1].integer;
            size_t n = v->len < sizeof out->info.holder_token - 1
                           ? v->len
                           : sizeof out->info.holder_token - 1;
            memcpy(out->info.holder_token, v->str, n);
        }
        if (h->type == DLOCK__REPLY_STR) {
            size_t n = h->len < DLOCK_MAX_HOLDER_LEN ? h->len : DLOCK_MAX_HOLDER_LEN;
            memcpy(out->holder, h->str, n);
        }
        if (f->type == DLOCK__REPLY_STR) {
            out->fencing_counter = strtoll(f->str, NULL, 10);
        }
    }
    dlock__reply_clear(&r);
    return rc;
}
