/* Blocking acquire with a deadline, and wake-on-release.
 *
 * Polling alone is unfair under contention: a holder that releases and re-acquires at once wins
 * against waiters asleep in their backoff. So a waiting dlock handle queues itself (a list of
 * tokens plus a hash of "live_until|lease|fenced" entries, in the lock key's Cluster slot), and a
 * dlock release hands the lock straight to the first live waiter and PUBLISHes the hand-off on
 * the channel "dlock:grant:ID", to which waiting handles subscribe. Waiters still poll (at most
 * every 500 ms, refreshing their entry), so they also take a lock whose holder expired or does not
 * hand off (such as @upstash/lock, which just DELetes), and a waiter that crashed drops out of the
 * queue when its entry's liveness runs out. Transports that cannot subscribe (REST), and ids with
 * no usable Cluster slot for the queue, fall back to polling with full-jitter backoff. */
#include "fmacros.h"

#include "lock_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_MS   3000 /* a queue entry not refreshed for this long is skipped by releasers */
#define POLL_MAX  500  /* longest pause between polls; well under LIVE_MS */
#define BACKOFF_0 10

enum { MODE_QUEUE = 0, MODE_TRY = 1, MODE_LEAVE = 2 };

void dlock__wait_close(dlock_lock *l) {
    if (l->sub != NULL) {
        l->client->tp->close(l->sub);
        l->sub = NULL;
    }
}

/* A dedicated connection subscribed to the hand-off channel. Failure is not an error: the waiter
 * then polls, and a Redis that is really down reports itself through the next try. */
static void ensure_subscribed(dlock_lock *l) {
    const dlock__transport *tp = l->client->tp;
    if (l->sub != NULL || tp->read == NULL) {
        return;
    }
    dlock__conn *conn;
    if (tp->connect(&l->client->cfg, &conn) != DLOCK_OK) {
        return;
    }
    const char *argv[] = {"SUBSCRIBE", l->channel};
    size_t lens[] = {9, l->channel_len};
    dlock__cmd cmd = {2, argv, lens};
    dlock__reply r;
    int sent;
    int rc =
        tp->exec(conn, &cmd, 1, &r, dlock__deadline_in(l->client->cfg.command_timeout_ms), &sent);
    if (rc == DLOCK_OK && r.type == DLOCK__REPLY_ARRAY && r.elements == 3 &&
        r.element[0].type == DLOCK__REPLY_STR && strcmp(r.element[0].str, "subscribe") == 0) {
        l->sub = conn;
    } else {
        tp->close(conn);
    }
    if (rc == DLOCK_OK) {
        dlock__reply_clear(&r);
    }
}

/* Waits until `until` for a hand-off message naming our token ("token|fence"). Returns 1 if one
 * came, with *fence set. */
static int await_grant(dlock_lock *l, const char *token, size_t token_len, int64_t until,
                       int64_t *fence) {
    for (;;) {
        dlock__reply m;
        int rc = l->client->tp->read(l->sub, &m, until);
        if (rc == DLOCK_ETIMEDOUT) {
            return 0;
        }
        if (rc != DLOCK_OK) {
            dlock__wait_close(l); /* broken: poll from now on */
            return 0;
        }
        const dlock__reply *p =
            m.type == DLOCK__REPLY_ARRAY && m.elements == 3 ? &m.element[2] : NULL;
        /* "token|fence": our token exactly, then only digits (tokens may contain '|'). */
        int ours = p != NULL && p->type == DLOCK__REPLY_STR && p->len > token_len + 1 &&
                   memcmp(p->str, token, token_len) == 0 && p->str[token_len] == '|' &&
                   strspn(p->str + token_len + 1, "0123456789") == p->len - token_len - 1;
        if (ours) {
            *fence = strtoll(p->str + token_len + 1, NULL, 10);
        }
        dlock__reply_clear(&m);
        if (ours) {
            return 1;
        }
    }
}

/* Discards hand-off messages left from earlier waits (they would only cause a spare poll). */
static void drain(dlock_lock *l) {
    while (l->sub != NULL) {
        dlock__reply m;
        int rc = l->client->tp->read(l->sub, &m, dlock__now_ms());
        if (rc != DLOCK_OK) {
            if (rc != DLOCK_ETIMEDOUT) {
                dlock__wait_close(l);
            }
            return;
        }
        dlock__reply_clear(&m);
    }
}

/* One run of the waiter script. Returns 1 if the lock is ours (fence and pttl set), 0 if not,
 * or an error. */
static int wait_try(dlock_lock *l, int mode, const char *token, size_t token_len, int64_t lease,
                    int64_t *fence, int64_t *pttl) {
    char px[24], live[24], m[2] = {(char)('0' + mode), 0};
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)lease);
    int livelen = snprintf(live, sizeof live, "%d", LIVE_MS);
    const char *argv[] = {l->id, l->queue_key, l->waiters_key, l->fence_key,
                          token, px,           live,           l->fencing ? "1" : "0",
                          m};
    size_t lens[] = {l->idlen,  l->queue_len,  l->waiters_len,  l->fence_len,
                     token_len, (size_t)pxlen, (size_t)livelen, 1,
                     1};
    dlock__reply r;
    int rc = dlock__script_run(l->client, &dlock__script_acquire_wait, 4, 9, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_ARRAY && r.elements == 3 && r.element[0].type == DLOCK__REPLY_INT &&
        r.element[1].type == DLOCK__REPLY_INT && r.element[2].type == DLOCK__REPLY_INT) {
        rc = r.element[0].integer == 1;
        *fence = r.element[1].integer;
        *pttl = r.element[2].integer;
    } else {
        rc = dlock__reply_error(l->client, &r, "acquire (waiting)");
    }
    dlock__reply_clear(&r);
    return rc;
}

/* Plain polling with full-jitter exponential backoff: sleep uniform in [1, b], b doubling from
 * 10 ms to 500 ms, so waiters spread out instead of retrying in lockstep. */
static int poll_only(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                     int64_t deadline, int64_t *fence, int64_t *granted_at) {
    int64_t backoff = BACKOFF_0;
    for (;;) {
        *granted_at = dlock__now_ms();
        int rc = dlock__lock_try_set(l, token, token_len, lease, fence);
        int64_t left = deadline - dlock__now_ms();
        if (rc != DLOCK_NOT_ACQUIRED || left <= 0) {
            return rc;
        }
        int64_t pause = 1 + (int64_t)dlock__random_below((uint64_t)backoff);
        dlock__sleep_ms(pause < left ? pause : left);
        backoff = backoff * 2 > POLL_MAX ? POLL_MAX : backoff * 2;
    }
}

int dlock__lock_wait(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                     int64_t wait_ms, int64_t *fence, int64_t *granted_at, int64_t *granted_ms) {
    int64_t deadline = dlock__add_sat(dlock__now_ms(), wait_ms);
    *granted_ms = lease;
    if (!l->has_siblings) {
        return poll_only(l, token, token_len, lease, deadline, fence, granted_at);
    }
    ensure_subscribed(l); /* before queueing, so no hand-off can slip past unseen */
    drain(l);
    int64_t backoff = BACKOFF_0, pttl = 0;
    for (;;) {
        int mode = l->sub != NULL ? MODE_QUEUE : MODE_TRY;
        int64_t sent_at = dlock__now_ms();
        int rc = wait_try(l, mode, token, token_len, lease, fence, &pttl);
        int64_t now = dlock__now_ms();
        if (rc < 0 || now >= deadline) {
            /* Leave the queue. This also answers whether the lock is ours after all: a reply
             * lost above, or a hand-off that raced the deadline, must not be dropped. */
            if (rc != 1) {
                char saved[512];
                snprintf(saved, sizeof saved, "%s", dlock_errmsg());
                sent_at = dlock__now_ms();
                int again = wait_try(l, MODE_LEAVE, token, token_len, lease, fence, &pttl);
                if (again != 1) {
                    if (rc >= 0) {
                        return again < 0 ? again : DLOCK_NOT_ACQUIRED;
                    }
                    return dlock__err(rc, "%s; %s", saved,
                                      again == 0 ? "checked: this call does not hold the lock now"
                                                 : "could not check whether the lock was handed "
                                                   "to this call (it then expires with its "
                                                   "lease)");
                }
                rc = 1;
            }
        }
        if (rc == 1) {
            *granted_at = sent_at;
            *granted_ms = pttl; /* remaining at the server when it ran: measured from our send */
            return DLOCK_OK;
        }
        int64_t left = deadline - now;
        if (l->sub != NULL) {
            /* Hand-offs wake us at once; the poll is for holders that do not hand off. A grant
             * message is the grant itself, with no round trip to confirm it: only a releaser's
             * script sends it, after setting the key to our token with our lease. That happened
             * after our last try ran (which saw the lock not ours), so the lease is measured
             * from that try's send time: a conservative start. */
            int64_t step = POLL_MAX / 2 + (int64_t)dlock__random_below(POLL_MAX / 2);
            if (await_grant(l, token, token_len, now + (step < left ? step : left), fence)) {
                *granted_at = sent_at;
                *granted_ms = lease;
                return DLOCK_OK;
            }
        } else {
            int64_t pause = 1 + (int64_t)dlock__random_below((uint64_t)backoff);
            dlock__sleep_ms(pause < left ? pause : left);
            backoff = backoff * 2 > POLL_MAX ? POLL_MAX : backoff * 2;
        }
    }
}
