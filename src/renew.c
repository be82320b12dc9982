/* Auto-renew: one thread per auto-renewed hold makes the remaining lease at least its full length
 * every interval (never shorter: an extend may have made it longer).
 * It runs on its own pooled connection, so neither the user's work nor the user's own calls on
 * the client can delay a renewal. */
#include "fmacros.h"

#include "holder.h"
#include "lock_impl.h"
#include "quorum.h"

#include <stdio.h>
#include <string.h>

/* One owner-checked renewal that never shortens the lease. Returns 1 with *remaining (the lease
 * Redis now holds, -1 = no expiry), 0 if not ours any more, < 0 on error. */
static int renew_once(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                      int64_t *remaining) {
    if (l->client->quorum != NULL) {
        return dlock__quorum_extend(l, token, token_len, 1, lease, remaining);
    }
    char px[24];
    int pxlen = snprintf(px, sizeof px, "%lld", (long long)lease);
    const char *argv[] = {l->id, token, px};
    size_t lens[] = {l->idlen, token_len, (size_t)pxlen};
    dlock__wait w; /* wait_replicas: a renewal too few replicas confirmed is an error */
    dlock__wait_init(&w, l->wait_replicas, l->wait_timeout_ms);
    dlock__reply r = {0}, wr = {0};
    int rc = dlock__script_run_then(l->client, &dlock__script_renew, 1, 3, argv, lens,
                                    l->wait_replicas > 0 ? &w.cmd : NULL, &r, &wr, NULL);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (r.type == DLOCK__REPLY_INT) {
        rc = r.integer != 0;
        *remaining = r.integer;
        if (rc == 1 && l->wait_replicas > 0) {
            int confirmed = dlock__wait_check(&w, l->client, &wr, "auto-renew");
            rc = confirmed == DLOCK_OK ? 1 : confirmed;
        }
    } else {
        rc = dlock__reply_error(l->client, &r, "auto-renew");
    }
    dlock__reply_clear(&r);
    dlock__reply_clear(&wr);
    return rc;
}

/* Marks the hold lost and tells the user once. Called and returns with l->mu held. */
static void declare_lost(dlock_lock *l, int reason) {
    l->lost = 1;
    if (l->on_lost != NULL) {
        pthread_mutex_unlock(&l->mu);
        l->on_lost(l, reason, l->userdata);
        pthread_mutex_lock(&l->mu);
    }
}

static void *renew_main(void *arg) {
    dlock_lock *l = arg;
    pthread_mutex_lock(&l->mu);
    const int64_t lease = l->hold_lease_ms;
    /* The lock's renew_interval_ms was checked against its own lease; an acquire may have asked
     * for a shorter one, which that interval would outlast. */
    int64_t interval =
        l->renew_interval_ms > 0 && l->renew_interval_ms < lease ? l->renew_interval_ms : lease / 3;
    interval = interval > 0 ? interval : 1;
    int64_t retry = interval / 4 < 20 ? 20 : interval / 4;
    const int64_t hold_start = l->granted_at;
    int64_t next = l->granted_at + interval;
    /* A private copy: the handle's token may be dropped by release while we are mid-call. */
    size_t token_len = l->token_len;
    char token[DLOCK__MAX_TOKEN_LEN + 1];
    memcpy(token, l->token, token_len + 1);

    while (!l->stop_renewal) {
        int64_t now = dlock__now_ms();
        int64_t lease_end = l->granted_ms < 0 ? INT64_MAX : l->granted_at + l->granted_ms;
        if (l->max_hold_ms > 0 && now - hold_start >= l->max_hold_ms) {
            /* Renewal is over; the hold lasts until the lease granted last runs out. */
            if (now < lease_end) {
                dlock__cond_wait_until(&l->wake, &l->mu, lease_end);
                continue;
            }
            declare_lost(l, DLOCK_LOST_MAX_HOLD);
            break;
        }
        if (now < next) {
            dlock__cond_wait_until(&l->wake, &l->mu,
                                   l->max_hold_ms > 0 && hold_start + l->max_hold_ms < next
                                       ? hold_start + l->max_hold_ms
                                       : next);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        int64_t sent_at = dlock__now_ms();
        /* A renewal that answers after the lease ran out saves nothing: wait no longer. */
        dlock__set_deadline_cap(lease_end);
        int64_t remaining = 0;
        int rc = renew_once(l, token, token_len, lease, &remaining);
        dlock__set_deadline_cap(0);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dlock_errmsg());
        pthread_mutex_lock(&l->mu);
        if (l->stop_renewal) {
            break; /* released meanwhile: whatever the reply said is moot */
        }
        now = dlock__now_ms();
        if (rc == 1) {
            /* Only what Redis confirmed: the lease it holds now, counted from our send. */
            l->granted_at = sent_at;
            l->granted_ms = remaining;
            next = sent_at + interval;
            if (l->holder != NULL && l->holder_key != NULL) {
                pthread_mutex_unlock(&l->mu);
                dlock__holder_touch(l->client, l->holder_key, l->holder_key_len, remaining);
                pthread_mutex_lock(&l->mu);
                if (l->stop_renewal) {
                    break;
                }
            }
        } else if (rc == 0) {
            declare_lost(l, DLOCK_LOST_TAKEN);
            break;
        } else if (now < lease_end) {
            if (l->on_renew_error != NULL) {
                pthread_mutex_unlock(&l->mu);
                l->on_renew_error(l, rc, msg, l->userdata);
                pthread_mutex_lock(&l->mu);
            }
            next = now + retry < lease_end ? now + retry : lease_end;
        } else {
            declare_lost(l, DLOCK_LOST_EXPIRED);
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int dlock__renew_start(dlock_lock *l) {
    dlock__renew_stop(l);
    pthread_mutex_lock(&l->mu);
    l->stop_renewal = 0;
    int e = pthread_create(&l->thread, NULL, renew_main, l);
    l->thread_live = e == 0;
    pthread_mutex_unlock(&l->mu);
    if (e != 0) {
        return dlock__err(DLOCK_ESYS, "auto-renew: cannot start thread: %s", strerror(e));
    }
    return DLOCK_OK;
}

void dlock__renew_stop(dlock_lock *l) {
    pthread_mutex_lock(&l->mu);
    int live = l->thread_live;
    pthread_t t = l->thread;
    l->stop_renewal = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    if (!live || pthread_equal(t, pthread_self())) {
        return; /* none, or called from on_lost: the thread exits once the callback returns */
    }
    pthread_join(t, NULL);
    pthread_mutex_lock(&l->mu);
    l->thread_live = 0;
    pthread_mutex_unlock(&l->mu);
}
