/* The wait queue of one lock id: its keys, its Lua (src/lua/queue_*.lua), the subscribed
 * connection of a waiting handle, and the releasing half of the hand-off. The lock (lock.c)
 * calls it; it never calls back into the lock. */
#ifndef DLOCK_QUEUE_H
#define DLOCK_QUEUE_H

#include "internal.h"

#include <stdatomic.h>

typedef struct dlock__queue dlock__queue;

/* What a successful wait got: the fencing token, and the lease remaining (`ms`, -1 = no expiry)
 * counted from the monotonic time `sent_at` of a request that Redis ran before the grant; and
 * whether the call had to wait for it (0: its first try found the lock free). */
typedef struct dlock__grant {
    int64_t fence;
    int64_t sent_at;
    int64_t ms;
    int waited;
} dlock__grant;

/* For the benchmark's comparison of the two hand-off protocols only: when set, a grant message is
 * a wake-up that the next try confirms (one more round trip), instead of the grant itself. */
extern int dlock__queue_confirm_grants;

/* Makes the queue of lock `id`. fence_key is borrowed: it must outlive the queue. Returns
 * DLOCK_OK, DLOCK_EINVAL (no second key can share id's Cluster slot: *out stays NULL and the
 * lock goes without a queue), or DLOCK_ENOMEM. Nothing is sent to Redis. */
int dlock__queue_new(dlock__queue **out, dlock_client *c, const char *id, size_t idlen,
                     const char *fence_key, size_t fence_len);
/* Closes the subscribed connection, if any, and frees. NULL is a no-op. */
void dlock__queue_free(dlock__queue *q);

/* Waits until the monotonic `deadline` for the lock: queued for a hand-off when the transport
 * can subscribe, else polling. Returns DLOCK_OK with *g, DLOCK_NOT_ACQUIRED at the deadline,
 * DLOCK_ECANCELED when *cancel became non-zero (it is reset), or an error. On every return but
 * DLOCK_OK the call has left the queue, or, if Redis could not be reached to leave it, closed its
 * subscription so that no release hands the lock to it; a lock handed to it meanwhile is handed
 * on (cancel) or reported as held (deadline). */
int dlock__queue_wait(dlock__queue *q, const char *token, size_t token_len, int64_t lease,
                      int fenced, int64_t deadline, atomic_int *cancel, dlock__grant *g);

/* Releases a lock held with `token`, handing it to the first live waiter; `also_del` (may be
 * NULL) is a key that goes with the hold and is deleted with it. Returns DLOCK_OK,
 * DLOCK_NOT_HELD (not ours), or an error; *sent tells whether the request may have run. */
int dlock__queue_release(dlock__queue *q, const char *token, size_t token_len, const char *also_del,
                         size_t also_del_len, int *sent);

#endif
