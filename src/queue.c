/* The wait queue of a lock id: blocking acquire with wake-on-release.
 *
 * Polling alone is unfair under contention: a holder that releases and re-acquires at once wins
 * against waiters asleep in their backoff. So a waiting handle queues itself (src/lua/queue_try.lua
 * describes the keys), subscribes to a grant channel of its own, and a dlock release
 * (queue_release.lua) hands the lock straight to the first queued waiter that is live and still
 * subscribed, and PUBLISHes the grant to it. Waiters still poll (every 250-500 ms, refreshing
 * their entry), so they also take a lock whose holder expired or does not hand off (such as
 * @upstash/lock, which just DELetes). Over REST the subscription is an SSE stream (src/sse.c); a
 * server that cannot subscribe makes the waiter poll with full-jitter backoff and never queue.
 *
 * What a grant message may be trusted for. Each try carries a number (gen) that grows with every
 * try of the handle, and a queued entry records the gen of the try that wrote it; the releaser
 * echoes that gen. A grant naming our latest try was made after that try ran, so a lease counted
 * from that try's send time is a conservative bound, and the message alone is the grant: no round
 * trip confirms it. A message naming an older try is stale (a later try has run since, and that
 * try saw whether the lock was ours), and is dropped. A grant that arrives so late that less than
 * half the lease would be left is only a wake-up: the next try reads from Redis whether the lock
 * is ours and for how long. Every path that stops waiting leaves the queue in the same call. */
#include "fmacros.h"

#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_MS   1500 /* a queue entry not refreshed for this long is skipped by releasers */
#define STEP_MIN  250  /* a queued waiter refreshes its entry every 250-500 ms */
#define STEP_MAX  500
#define BACKOFF_0 10   /* polling without a queue: full jitter in [1, b], b from 10 to 500 ms */
#define CHAN_LEN  16   /* hex digits of a handle's own grant channel suffix */
#define SUB_RETRY 1000 /* after a failed SUBSCRIBE, poll this long before subscribing again */

enum { MODE_QUEUE = 0, MODE_TRY = 1, MODE_LEAVE = 2 };

int dlock__queue_confirm_grants;

struct dlock__queue {
    dlock_client *client;
    const char *id; /* borrowed from the lock, like fence_key */
    size_t idlen;
    const char *fence_key;
    size_t fence_len;
    char *queue_key, *waiters_key, *prefix; /* prefix: of every waiter's grant channel */
    size_t queue_len, waiters_len, prefix_len;
    char chan[CHAN_LEN + 1]; /* this handle's channel suffix: random, so no other handle's */
    char *channel;           /* prefix + chan */
    size_t channel_len;
    dlock__conn *sub;     /* subscribed to channel while the handle waits; kept between waits */
    int sharded;          /* sub is SSUBSCRIBEd; before the first: try SSUBSCRIBE (1) or not */
    int no_sub;           /* the server cannot subscribe (a REST server without SSE): poll */
    int64_t sub_retry_at; /* a SUBSCRIBE failed: not again before this time */
    int64_t gen;          /* number of the handle's latest try */
};

/* A new grant channel for the handle (q->chan, q->channel), random from the OS CSPRNG like
 * tokens: a channel another handle could share would make a dead waiter look subscribed. */
static int new_channel(dlock__queue *q) {
    char uuid[DLOCK__UUID_LEN + 1];
    if (dlock__uuid4(uuid) != DLOCK_OK) {
        return DLOCK_ESYS;
    }
    memcpy(q->chan, uuid, 8);
    memcpy(q->chan + 8, uuid + 9, 4);
    memcpy(q->chan + 12, uuid + 24, 4);
    q->chan[CHAN_LEN] = '\0';
    snprintf(q->channel, q->channel_len + 1, "%s%s", q->prefix, q->chan);
    return DLOCK_OK;
}

int dlock__queue_new(dlock__queue **out, dlock_client *c, const char *id, size_t idlen,
                     const char *fence_key, size_t fence_len) {
    *out = NULL;
    dlock__queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    int ok1, ok2, ok3;
    size_t grant_len;
    q->queue_key = dlock__sibling_key(id, idlen, "queue", &q->queue_len, &ok1);
    q->waiters_key = dlock__sibling_key(id, idlen, "waiters", &q->waiters_len, &ok2);
    char *grant = dlock__sibling_key(id, idlen, "grant", &grant_len, &ok3);
    if (!ok1 || !ok2 || !ok3) {
        free(grant);
        dlock__queue_free(q);
        return DLOCK_EINVAL; /* no message: not an error of the caller's, just no queue */
    }
    q->prefix_len = grant_len + 1;
    q->channel_len = q->prefix_len + CHAN_LEN;
    q->prefix = grant != NULL ? malloc(q->prefix_len + 1) : NULL;
    q->channel = malloc(q->channel_len + 1);
    if (q->queue_key == NULL || q->waiters_key == NULL || q->prefix == NULL || q->channel == NULL) {
        free(grant);
        dlock__queue_free(q);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    snprintf(q->prefix, q->prefix_len + 1, "%s:", grant);
    free(grant);
    if (new_channel(q) != DLOCK_OK) {
        dlock__queue_free(q);
        return dlock__err(DLOCK_ESYS, "dlock_lock_new: no random bytes for the grant channel");
    }
    q->sharded = 1;
    q->client = c;
    q->id = id;
    q->idlen = idlen;
    q->fence_key = fence_key;
    q->fence_len = fence_len;
    *out = q;
    return DLOCK_OK;
}

static void unsubscribe(dlock__queue *q) {
    dlock__sub_close(q->client, q->sub);
    q->sub = NULL;
}

void dlock__queue_free(dlock__queue *q) {
    if (q == NULL) {
        return;
    }
    unsubscribe(q);
    free(q->queue_key);
    free(q->waiters_key);
    free(q->prefix);
    free(q->channel);
    free(q);
}

/* Discards messages left from earlier waits, and notices a subscription that broke since
 * (CLIENT KILL, a restarted server), so that it is made again before the next queued try. */
static void drain(dlock__queue *q) {
    while (q->sub != NULL) {
        dlock__reply m;
        const dlock__reply *payload;
        int rc = dlock__sub_read(q->client, q->sub, &m, &payload, dlock__now_ms());
        if (rc != DLOCK_OK) {
            if (rc != DLOCK_ETIMEDOUT) {
                unsubscribe(q);
            }
            return;
        }
        dlock__reply_clear(&m);
    }
}

/* Subscribes before queueing, so no grant can slip past unseen. A failure is not the caller's
 * error: the waiter then polls (and does not queue), and a Redis that is really down reports
 * itself through the next try. A server that cannot subscribe (REST without SSE) is not asked
 * again; a refused or failed SUBSCRIBE (ACL, maxclients, a loading server) is asked again a
 * second later. Subscribing never takes the wait past its deadline. */
static void subscribe_if_needed(dlock__queue *q, int64_t deadline) {
    drain(q);
    if (q->sub != NULL || q->no_sub || dlock__now_ms() < q->sub_retry_at) {
        return;
    }
    dlock__set_deadline_cap(deadline);
    int rc = dlock__sub_open(q->client, q->channel, q->channel_len, &q->sub, &q->sharded);
    dlock__set_deadline_cap(0);
    if (rc == DLOCK_ESTATE) {
        q->no_sub = 1;
    } else if (rc != DLOCK_OK) {
        q->sub_retry_at = dlock__now_ms() + SUB_RETRY;
    }
}

/* A fencing token as Redis sent it: an integer, or (from the scripts, which keep counters out of
 * Lua's doubles) a string of digits. */
static int64_t fence_of(const dlock__reply *r) {
    if (r->type == DLOCK__REPLY_INT) {
        return r->integer;
    }
    return r->type == DLOCK__REPLY_STR ? strtoll(r->str, NULL, 10) : 0;
}

/* One run of queue_try.lua as try number ++q->gen. Returns 1 if the lock is this call's (*fence
 * and *pttl set), 0 if not, or an error. */
static int try_once(dlock__queue *q, int mode, const char *token, size_t token_len, int64_t lease,
                    int fenced, int64_t first_gen, int64_t *fence, int64_t *pttl) {
    char px[24], live[24], gen[24], first[24], m[2] = {(char)('0' + mode), 0};
    const char *pub = q->sub != NULL && q->sharded ? "s" : "p";
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)lease);
    int livelen = snprintf(live, sizeof live, "%d", LIVE_MS);
    int genlen = snprintf(gen, sizeof gen, "%lld", (long long)++q->gen);
    int firstlen = snprintf(first, sizeof first, "%lld", (long long)first_gen);
    const char *argv[] = {
        q->id, q->queue_key, q->waiters_key, q->fence_key, token, px, live, fenced ? "1" : "0",
        m,     gen,          first,          q->chan,      pub};
    size_t lens[] = {q->idlen,  q->queue_len,   q->waiters_len,   q->fence_len,
                     token_len, (size_t)pxlen,  (size_t)livelen,  1,
                     1,         (size_t)genlen, (size_t)firstlen, CHAN_LEN,
                     1};
    dlock__reply r;
    int rc = dlock__script_run(q->client, &dlock__script_queue_try, 4, 13, argv, lens, &r, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_ARRAY && r.elements == 3 && r.element[0].type == DLOCK__REPLY_INT &&
        r.element[2].type == DLOCK__REPLY_INT) {
        rc = r.element[0].integer == 1;
        *fence = fence_of(&r.element[1]);
        *pttl = r.element[2].integer;
    } else {
        rc = dlock__reply_error(q->client, &r, "acquire (waiting)");
    }
    dlock__reply_clear(&r);
    return rc;
}

/* 1 if `p` is a grant of our latest try: "gen|fence|chan" with gen == q->gen and our channel.
 * Sets *fence. */
static int is_our_grant(const dlock__queue *q, const dlock__reply *p, int64_t *fence) {
    char want[24];
    int wlen = snprintf(want, sizeof want, "%lld|", (long long)q->gen);
    const char *s = p->str, *end = p->str + p->len;
    if (p->len < (size_t)wlen || memcmp(s, want, (size_t)wlen) != 0) {
        return 0;
    }
    s += wlen;
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 19 || s + digits >= end || s[digits] != '|') {
        return 0;
    }
    int64_t f = strtoll(s, NULL, 10);
    s += digits + 1;
    if ((size_t)(end - s) != CHAN_LEN || memcmp(s, q->chan, CHAN_LEN) != 0) {
        return 0;
    }
    *fence = f;
    return 1;
}

/* Waits until `until` for a grant of our latest try, waking every few ms to look at *cancel.
 * Returns 1 with *fence set if one came; 0 if time ran out, the wait was cancelled, or the
 * subscription broke (it is then closed, and made again before the next try). */
static int await_grant(dlock__queue *q, int64_t until, atomic_int *cancel, int64_t *fence) {
    for (;;) {
        int64_t now = dlock__now_ms();
        if (atomic_load(cancel) || now >= until) {
            return 0;
        }
        int64_t slice = now + DLOCK__CANCEL_SLICE_MS < until ? now + DLOCK__CANCEL_SLICE_MS : until;
        dlock__reply m;
        const dlock__reply *payload;
        int rc = dlock__sub_read(q->client, q->sub, &m, &payload, slice);
        if (rc == DLOCK_ETIMEDOUT) {
            continue;
        }
        if (rc != DLOCK_OK) {
            unsubscribe(q);
            return 0;
        }
        int ours = payload != NULL && is_our_grant(q, payload, fence);
        dlock__reply_clear(&m);
        if (ours) {
            return 1;
        }
    }
}

int dlock__queue_release(dlock__queue *q, const char *token, size_t token_len, const char *also_del,
                         size_t also_del_len, int *sent) {
    const char *argv[] = {q->id,    q->queue_key, q->waiters_key, q->fence_key,
                          also_del, token,        q->prefix};
    size_t lens[] = {q->idlen,     q->queue_len, q->waiters_len, q->fence_len,
                     also_del_len, token_len,    q->prefix_len};
    int nkeys = also_del != NULL ? 5 : 4;
    if (also_del == NULL) { /* no fifth key: the arguments move up one */
        argv[4] = token;
        lens[4] = token_len;
        argv[5] = q->prefix;
        lens[5] = q->prefix_len;
    }
    dlock__reply r;
    int rc = dlock__script_run(q->client, &dlock__script_queue_release, nkeys, nkeys + 2, argv,
                               lens, &r, sent);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        rc = r.integer >= 1 ? DLOCK_OK : DLOCK_NOT_HELD;
    } else {
        rc = dlock__reply_error(q->client, &r, "release");
    }
    dlock__reply_clear(&r);
    return rc;
}

typedef struct wait_call {
    const char *token;
    size_t token_len;
    int64_t lease;
    int fenced;
    int64_t first_gen; /* gen of this call's first try */
} wait_call;

/* A lock that was handed to a cancelled call goes on to the next waiter. */
static int cancelled_holding(dlock__queue *q, const wait_call *w) {
    int sent;
    int rc = dlock__queue_release(q, w->token, w->token_len, NULL, 0, &sent);
    if (rc < 0) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        return dlock__err(DLOCK_ECANCELED,
                          "acquire cancelled; the lock had been handed to this call and could "
                          "not be passed on (%s): it expires with its lease",
                          saved);
    }
    return dlock__err(DLOCK_ECANCELED, "acquire cancelled (a lock handed to this call meanwhile "
                                       "was passed on)");
}

/* Leaves the queue because the wait ends with `why` (NOT_ACQUIRED at the deadline, ECANCELED,
 * or the error of the last try), and answers at the same time whether the lock is ours after
 * all: a hand-off that raced the deadline, or a try whose reply was lost, must not be dropped. */
static int stop_waiting(dlock__queue *q, const wait_call *w, int why, dlock__grant *g) {
    char saved[512];
    snprintf(saved, sizeof saved, "%s", dlock_errmsg());
    int64_t sent_at = dlock__now_ms(), fence = 0, pttl = 0;
    int again = try_once(q, MODE_LEAVE, w->token, w->token_len, w->lease, w->fenced, w->first_gen,
                         &fence, &pttl);
    if (why < 0 || again < 0) {
        /* A try whose reply was lost may still run after this (a server resuming its backlog)
         * and queue us again, and an entry we could not take out stays queued, live for up to
         * LIVE_MS: with no subscriber left, no release hands the lock to them. The handle's next
         * wait must not subscribe to their channel again, or they would look live once more: a
         * release would hand the lock to this call's token, which nobody claims, and the lock
         * would sit idle for a whole lease. So it gets a new channel (if no random bytes can be
         * had, it keeps the old one). */
        unsubscribe(q);
        (void)new_channel(q);
    }
    if (again == 1) {
        if (why == DLOCK_ECANCELED) {
            return cancelled_holding(q, w);
        }
        *g = (dlock__grant){fence, sent_at, pttl, 1};
        return DLOCK_OK;
    }
    if (again < 0) {
        char left[512];
        snprintf(left, sizeof left, "%s", dlock_errmsg());
        const char *maybe = "could not check whether the lock was handed to this call (it then "
                            "expires with its lease)";
        if (why == DLOCK_ECANCELED) {
            return dlock__err(DLOCK_ECANCELED,
                              "acquire cancelled; leaving the wait queue failed (%s); %s", left,
                              maybe);
        }
        return dlock__err(why >= 0 ? again : why, "%s; %s", why >= 0 ? left : saved, maybe);
    }
    if (why == DLOCK_ECANCELED) {
        return dlock__err(DLOCK_ECANCELED, "acquire cancelled");
    }
    if (why >= 0) {
        return why;
    }
    return dlock__err(why, "%s; checked: this call does not hold the lock now", saved);
}

int dlock__queue_wait(dlock__queue *q, const char *token, size_t token_len, int64_t lease,
                      int fenced, int64_t deadline, atomic_int *cancel, dlock__grant *g) {
    const wait_call w = {token, token_len, lease, fenced, q->gen + 1};
    int64_t backoff = BACKOFF_0;
    for (;;) {
        if (atomic_exchange(cancel, 0)) {
            return stop_waiting(q, &w, DLOCK_ECANCELED, g);
        }
        subscribe_if_needed(q, deadline);
        int64_t sent_at = dlock__now_ms(), fence = 0, pttl = 0;
        int rc = try_once(q, q->sub != NULL ? MODE_QUEUE : MODE_TRY, token, token_len, lease,
                          fenced, w.first_gen, &fence, &pttl);
        if (rc == 1) {
            *g = (dlock__grant){fence, sent_at, pttl, q->gen != w.first_gen};
            return DLOCK_OK;
        }
        int64_t now = dlock__now_ms();
        if (rc < 0 || now >= deadline) {
            return stop_waiting(q, &w, rc < 0 ? rc : DLOCK_NOT_ACQUIRED, g);
        }
        int64_t left = deadline - now;
        if (q->sub != NULL) {
            int64_t step = STEP_MIN + (int64_t)dlock__random_below(STEP_MAX - STEP_MIN);
            if (await_grant(q, now + (step < left ? step : left), cancel, &fence)) {
                /* The grant postdates the try sent at sent_at: count the lease from there. */
                if (!dlock__queue_confirm_grants &&
                    lease - (dlock__now_ms() - sent_at) > lease / 2) {
                    *g = (dlock__grant){fence, sent_at, lease, 1};
                    return DLOCK_OK;
                }
                /* Late: only a wake-up. The next try reads what Redis holds. */
            }
        } else {
            int64_t pause = dlock__backoff_pause(&backoff, STEP_MAX);
            dlock__sleep_cancellable(pause < left ? pause : left, cancel);
        }
    }
}
