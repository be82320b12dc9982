/* The lock handle, shared by lock.c (the operations) and renew.c (the auto-renew thread). */
#ifndef DLOCK_LOCK_IMPL_H
#define DLOCK_LOCK_IMPL_H

#include "internal.h"

struct dlock_lock {
    dlock_client *client;
    char *id;
    size_t idlen;
    int fencing;      /* options.fencing */
    int has_siblings; /* the keys below exist: the id has a usable Cluster slot for them */
    char *fence_key;  /* fencing counter, "{ID}:fence" */
    size_t fence_len;
    char *queue_key; /* waiters in arrival order, "{ID}:queue" (see wait.c) */
    size_t queue_len;
    char *waiters_key; /* waiter -> "live_until|lease|fenced", "{ID}:waiters" */
    size_t waiters_len;
    char *channel; /* pub/sub channel of hand-offs, "dlock:grant:ID" */
    size_t channel_len;
    dlock__conn *sub; /* subscribed connection of a waiting handle; NULL until needed */

    /* settings, fixed after dlock_lock_new */
    int64_t lease_ms;
    int attempts;
    int64_t delay_ms; /* -1 = no pause */
    int64_t drift_ms; /* 0 = 2 + lease/100 */
    int auto_renew;
    int64_t renew_interval_ms; /* 0 = lease/3 */
    int64_t max_hold_ms;       /* 0 = no cap */
    dlock_lock_lost_fn on_lost;
    dlock_lock_renew_error_fn on_renew_error;
    void *userdata;

    /* The hold. The renewal thread reads and updates it, so it is guarded by mu. */
    pthread_mutex_t mu;
    char *token; /* NULL when this handle holds nothing */
    size_t token_len;
    int64_t fencing_token;
    int64_t hold_lease_ms; /* the lease this hold was taken with (renewal restores it) */
    int64_t granted_at;    /* monotonic ms when the last granting request was sent */
    int64_t granted_ms;    /* lease that request granted; -1 = no expiry */
    int lost;              /* auto-renew found the hold lost: status says FREE */

    /* The renewal thread of the current hold, if any. */
    pthread_cond_t wake;
    pthread_t thread;
    int thread_live;  /* created and not yet joined */
    int stop_renewal; /* asks the thread to exit */
};

/* One SET NX PX, or the fenced script (lock.c). OK, NOT_ACQUIRED, or an error; *fence set. */
int dlock__lock_try_set(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                        int64_t *fence);

/* Blocking acquire until wait_ms have passed (wait.c). On DLOCK_OK sets *fence, and *granted_at
 * / *granted_ms: a send time and the lease remaining at that time. */
int dlock__lock_wait(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                     int64_t wait_ms, int64_t *fence, int64_t *granted_at, int64_t *granted_ms);
/* Closes the subscribed connection, if any. */
void dlock__wait_close(dlock_lock *l);

/* Starts the renewal thread for the hold just taken (l->mu not held). */
int dlock__renew_start(dlock_lock *l);
/* Stops and joins the renewal thread, if any (l->mu not held). Safe from inside on_lost. */
void dlock__renew_stop(dlock_lock *l);

#endif
