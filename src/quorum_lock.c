/* Redlock: the lock operations on a quorum client (quorum.c fans each request out).
 *
 * Every outcome counts answers against the majority Q = N/2 + 1. A request succeeds with Q
 * "yes" answers. It is refused (NOT_ACQUIRED, NOT_HELD) only when so many members answered "no"
 * that Q yes answers were impossible (N - Q + 1 of them); whatever else happened (members that
 * failed or did not answer in time, with too few answers left either way) is an error naming each
 * failed member. So "others hold it" is never reported because servers were down, and the
 * reverse. */
#include "fmacros.h"

#include "quorum.h"
#include "quorum_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t drift_of(const dlock_lock *l, int64_t lease) {
    return l->drift_ms > 0 ? l->drift_ms : 2 + lease / 100;
}

static dlock__qreq request(const dlock_lock *l, dlock__qop op, const char *token, size_t token_len,
                           int64_t arg, int64_t lease) {
    dlock__qreq r = {op,        l->id,    l->fence_key != NULL ? l->fence_key : "",
                     token,     l->idlen, l->fence_key != NULL ? l->fence_len : 0,
                     token_len, arg,      lease};
    return r;
}

/* The number of "no" answers that makes a majority of "yes" impossible. */
static int refusal(const dlock__qtally *t) {
    return t->n - t->majority + 1;
}

static int fail(const dlock__qtally *t, const char *what) {
    char head[200];
    snprintf(head, sizeof head,
             "Redlock %s: %d of %d servers said yes, %d needed; %d said no, %d failed", what,
             t->yes, t->n, t->majority, t->no, t->failed);
    return dlock__qtally_err(t, DLOCK_ETIMEDOUT, head);
}

/* After a failed attempt: deletes the call's key on every member that may hold it, that is all
 * but those that answered that the key existed (a member that timed out may have set it). The
 * caller's message is kept. */
static void undo(dlock_lock *l, const dlock__qtally *t, const char *token, size_t token_len,
                 int64_t lease) {
    int targets[DLOCK_QUORUM_MAX], any = 0;
    for (int i = 0; i < t->n; i++) {
        targets[i] = t->r[i].rc != 0 && t->r[i].rc != DLOCK__Q_NOT_ASKED;
        any |= targets[i];
    }
    if (!any) {
        return;
    }
    char saved[512];
    snprintf(saved, sizeof saved, "%s", dlock_errmsg());
    dlock__qreq req = request(l, DLOCK__QOP_RELEASE, token, token_len, 0, lease);
    dlock__qtally rt;
    if (dlock__qfanout(l->client->quorum, &req, targets, 0, 0, &rt) == DLOCK_OK) {
        dlock__qtally_clear(&rt);
    }
    dlock__err(DLOCK_OK, "%s", saved);
}

/* Phase 2 of a fenced acquire (see docs/guarantees.md): t = 1 + the largest counter read by the
 * members that set our key, stored on them; it counts once a majority stored it. */
static int fence_phase(dlock_lock *l, const dlock__qtally *t1, const char *token, size_t token_len,
                       int64_t lease, int64_t *fence) {
    int targets[DLOCK_QUORUM_MAX];
    int64_t max = 0;
    for (int i = 0; i < t1->n; i++) {
        targets[i] = t1->r[i].rc == 1;
        if (targets[i] && t1->r[i].value > max) {
            max = t1->r[i].value;
        }
    }
    dlock__qreq req = request(l, DLOCK__QOP_FENCE, token, token_len, max + 1, lease);
    dlock__qtally t;
    int rc = dlock__qfanout(l->client->quorum, &req, targets, t1->majority,
                            t1->yes - t1->majority + 1, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (t.yes >= t.majority) {
        *fence = max + 1;
    } else {
        rc = fail(&t, "fenced acquire (storing the fencing token)");
    }
    dlock__qtally_clear(&t);
    return rc;
}

/* One attempt. Returns OK with *g, NOT_ACQUIRED, or an error; *hopeless is 1 when so many
 * members failed that no majority could have answered at all. Leaves no key of this attempt
 * behind unless it returns OK. */
static int attempt(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                   dlock__grant *g, int *hopeless) {
    dlock__qreq req =
        request(l, l->fencing ? DLOCK__QOP_FSET : DLOCK__QOP_SET, token, token_len, lease, lease);
    dlock__qtally t;
    dlock__quorum *q = l->client->quorum;
    /* Decided as soon as a majority said yes, or so many said no that it cannot. */
    int rc = dlock__qfanout(q, &req, NULL, dlock__quorum_size(q) / 2 + 1,
                            dlock__quorum_size(q) - dlock__quorum_size(q) / 2, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    *hopeless = t.failed - t.undecided > t.n - t.majority;
    int64_t fence = 0;
    if (t.yes < t.majority) {
        rc = t.no >= refusal(&t) ? DLOCK_NOT_ACQUIRED : fail(&t, "acquire");
    } else if (l->fencing) {
        rc = fence_phase(l, &t, token, token_len, lease, &fence);
    }
    int64_t elapsed = dlock__now_ms() - t.sent_at;
    if (rc == DLOCK_OK && lease - elapsed - drift_of(l, lease) <= 0) {
        rc = dlock__err(DLOCK_ETIMEDOUT,
                        "Redlock acquire: a majority took %lld ms, which leaves no validity of a "
                        "%lld ms lease (drift margin %lld ms)",
                        (long long)elapsed, (long long)lease, (long long)drift_of(l, lease));
    }
    if (rc == DLOCK_OK) {
        g->sent_at = t.sent_at;
        g->ms = lease;
        g->fence = fence;
    } else if (rc != DLOCK_ENOMEM) {
        undo(l, &t, token, token_len, lease);
    }
    dlock__qtally_clear(&t);
    return rc;
}

static int cancelled(dlock_lock *l) {
    atomic_store(&l->cancel, 0);
    return dlock__err(DLOCK_ECANCELED, "acquire cancelled");
}

int dlock__quorum_acquire(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                          int attempts, int64_t delay, int64_t wait_ms, dlock__grant *g) {
    int64_t deadline = wait_ms > 0 ? dlock__add_sat(dlock__now_ms(), wait_ms) : 0;
    int64_t backoff = 10;
    for (int i = 1;; i++) {
        if (atomic_load(&l->cancel)) {
            return cancelled(l);
        }
        int hopeless = 0;
        int rc = attempt(l, token, token_len, lease, g, &hopeless);
        if (rc == DLOCK_OK || rc == DLOCK_ENOMEM) {
            return rc;
        }
        int64_t pause;
        if (deadline > 0) {
            /* Keep waiting while others hold it, or while a majority can still answer (failed
             * members only tipped a contended vote); stop when a majority cannot be heard. */
            int64_t left = deadline - dlock__now_ms();
            if (left <= 0 || (rc < 0 && hopeless)) {
                return rc;
            }
            pause = dlock__backoff_pause(&backoff, 500);
            pause = pause < left ? pause : left;
        } else {
            if (i >= attempts) {
                return rc;
            }
            /* Jitter, so that contenders that collided do not collide again. */
            pause =
                delay > 0 ? delay / 2 + (int64_t)dlock__random_below((uint64_t)(delay / 2 + 1)) : 0;
        }
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        if (pause > 0 && dlock__sleep_cancellable(pause, &l->cancel)) {
            return cancelled(l);
        }
        dlock__err(DLOCK_OK, "%s", saved);
    }
}

int dlock__quorum_release(dlock_lock *l, int *sent) {
    dlock__qreq req = request(l, DLOCK__QOP_RELEASE, l->token, l->token_len, 0, l->hold_lease_ms);
    dlock__qtally t;
    int rc = dlock__qfanout(l->client->quorum, &req, NULL, 0, 0, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    *sent = 1;
    if (t.yes >= t.majority) {
        rc = DLOCK_OK;
    } else if (t.no >= refusal(&t)) {
        rc = DLOCK_NOT_HELD;
    } else {
        rc = fail(&t, "release");
    }
    dlock__qtally_clear(&t);
    return rc;
}

/* The lease that the majority with the longest leases holds: the majority-th largest PTTL. */
static int64_t majority_lease(const dlock__qtally *t) {
    int64_t v[DLOCK_QUORUM_MAX];
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->r[i].rc == 1) {
            v[n++] = t->r[i].value < 0 ? INT64_MAX : t->r[i].value;
        }
    }
    for (int i = 1; i < n; i++) { /* insertion sort, descending: n <= DLOCK_QUORUM_MAX */
        for (int k = i; k > 0 && v[k] > v[k - 1]; k--) {
            int64_t x = v[k];
            v[k] = v[k - 1];
            v[k - 1] = x;
        }
    }
    return v[t->majority - 1] == INT64_MAX ? -1 : v[t->majority - 1];
}

int dlock__quorum_extend(dlock_lock *l, const char *token, size_t token_len, int renew, int64_t ms,
                         int64_t *granted) {
    int64_t lease = l->hold_lease_ms > 0 ? l->hold_lease_ms : l->lease_ms;
    dlock__qreq req =
        request(l, renew ? DLOCK__QOP_RENEW : DLOCK__QOP_EXTEND, token, token_len, ms, lease);
    dlock__qtally t;
    dlock__quorum *q = l->client->quorum;
    int rc = dlock__qfanout(q, &req, NULL, dlock__quorum_size(q) / 2 + 1,
                            dlock__quorum_size(q) - dlock__quorum_size(q) / 2, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    const char *what = renew ? "renewal" : "extend";
    if (t.yes >= t.majority) {
        *granted = majority_lease(&t);
        int64_t elapsed = dlock__now_ms() - t.sent_at;
        rc = 1;
        if (*granted >= 0 && *granted - elapsed - drift_of(l, lease) <= 0) {
            rc = dlock__err(DLOCK_ETIMEDOUT,
                            "Redlock %s: a majority took %lld ms, which leaves no "
                            "validity",
                            what, (long long)elapsed);
        }
    } else {
        rc = t.no >= refusal(&t) ? 0 : fail(&t, what);
    }
    dlock__qtally_clear(&t);
    return rc;
}

int dlock__quorum_status(dlock_lock *l, int *held) {
    dlock__qreq req = request(l, DLOCK__QOP_GET, l->token, l->token_len, 0, l->hold_lease_ms);
    dlock__qtally t;
    dlock__quorum *q = l->client->quorum;
    int rc = dlock__qfanout(q, &req, NULL, dlock__quorum_size(q) / 2 + 1,
                            dlock__quorum_size(q) - dlock__quorum_size(q) / 2, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    *held = t.yes >= t.majority;
    if (!*held && t.no < refusal(&t)) {
        rc = fail(&t, "status");
    }
    dlock__qtally_clear(&t);
    return rc;
}

/* Fills *out from the member values: held if a majority hold one value. */
static int inspect_tally(const dlock__qtally *t, const char *token, dlock_lock_info *out) {
    int best = -1, best_count = 0;
    for (int i = 0; i < t->n; i++) {
        int count = 0;
        for (int k = 0; t->r[i].rc == 1 && k < t->n; k++) {
            count += t->r[k].rc == 1 && t->r[k].len == t->r[i].len &&
                     memcmp(t->r[k].str, t->r[i].str, t->r[i].len) == 0;
        }
        if (count > best_count) {
            best = i;
            best_count = count;
        }
    }
    if (best_count + t->failed < t->majority && best_count < t->majority) {
        return DLOCK_OK; /* free: no value can have a majority */
    }
    if (best_count < t->majority) {
        return fail(t, "inspect");
    }
    const dlock__qresult *v = &t->r[best];
    dlock__qtally same = *t;
    for (int i = 0; i < t->n; i++) {
        same.r[i].rc =
            t->r[i].rc == 1 && t->r[i].len == v->len && memcmp(t->r[i].str, v->str, v->len) == 0;
    }
    out->held = 1;
    out->remaining_ms = majority_lease(&same);
    size_t n = v->len < sizeof out->holder_token - 1 ? v->len : sizeof out->holder_token - 1;
    memcpy(out->holder_token, v->str, n);
    out->token_matches =
        token != NULL && strlen(token) == v->len && memcmp(token, v->str, v->len) == 0;
    return DLOCK_OK;
}

int dlock__quorum_inspect(dlock_client *c, const char *id, const char *token,
                          dlock_lock_info *out) {
    dlock__qreq req = {DLOCK__QOP_INSPECT,     id, "", "", strlen(id), 0, 0, 0,
                       DLOCK__DEFAULT_LEASE_MS};
    dlock__qtally t;
    int rc = dlock__qfanout(c->quorum, &req, NULL, 0, 0, &t);
    if (rc != DLOCK_OK) {
        return rc;
    }
    rc = inspect_tally(&t, token, out);
    dlock__qtally_clear(&t);
    return rc;
}
