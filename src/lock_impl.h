/* The lock handle, shared by lock.c (the operations) and renew.c (the auto-renew thread). */
#ifndef DLOCK_LOCK_IMPL_H
#define DLOCK_LOCK_IMPL_H

#include "internal.h"
#include "queue.h"

struct dlock_lock {
    dlock_client *client;
    char *id;
    size_t idlen;
    int fencing;     /* options.fencing */
    char *fence_key; /* fencing counter, "{ID}:fence"; NULL for ids with no Cluster slot for it */
    size_t fence_len;
    dlock__queue *queue; /* the id's wait queue; NULL for ids with no Cluster slot for it */
    char *holder_key;    /* "{ID}:holder" (holder.h); NULL with the queue */
    size_t holder_key_len;
    char *holder;      /* options.holder, copied; NULL = none */
    atomic_int cancel; /* dlock_lock_cancel: stop the current or next acquire */
    int contended;     /* the last blocking acquire had to wait (see queued_acquire in lock.c) */

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
    int wait_replicas;       /* 0 = no WAIT after lock writes */
    int64_t wait_timeout_ms; /* WAIT's timeout, when wait_replicas */

    /* The hold. The renewal thread reads and updates it, so it is guarded by mu. */
    pthread_mutex_t mu;
    char *token; /* NULL when this handle holds nothing */
    size_t token_len;
    int64_t fencing_token;
    int64_t hold_lease_ms; /* the lease this hold was taken with (renewal keeps at least it) */
    int64_t granted_at;    /* monotonic ms when the last request Redis confirmed was sent */
    int64_t granted_ms;    /* lease Redis confirmed from then; -1 = no expiry */
    int lost;              /* auto-renew found the hold lost: status says FREE */

    /* The renewal thread of the current hold, if any. */
    pthread_cond_t wake;
    pthread_t thread;
    int thread_live;  /* created and not yet joined */
    int stop_renewal; /* asks the thread to exit */
};

/* Starts the renewal thread for the hold just taken (l->mu not held). */
int dlock__renew_start(dlock_lock *l);
/* Stops and joins the renewal thread, if any (l->mu not held). Safe from inside on_lost. */
void dlock__renew_stop(dlock_lock *l);

#endif
