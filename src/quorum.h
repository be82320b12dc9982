/* Redlock: a client over N independent Redis servers ("members"), and the lock operations on it.
 * A quorum client is a dlock_client with no transport of its own (client->quorum != NULL); each
 * member is an ordinary dlock_client, and a request goes to all members at once (quorum.c: from
 * the calling thread with poll(2), or through a member's worker thread). lock.c and renew.c call
 * in here for a lock on such a client; this module never calls back into them. */
#ifndef DLOCK_QUORUM_H
#define DLOCK_QUORUM_H

#include "lock_impl.h"

/* The number of members. */
int dlock__quorum_size(const dlock__quorum *q);

/* acquire: attempts/delay (wait_ms == 0) or polling until wait_ms. Returns DLOCK_OK with *g (the
 * first send time, the lease, and the fencing token), DLOCK_NOT_ACQUIRED, DLOCK_ECANCELED, or an
 * error naming each member that failed. On every return but OK, no key of this call is left on a
 * member that answered. */
int dlock__quorum_acquire(dlock_lock *l, const char *token, size_t token_len, int64_t lease,
                          int attempts, int64_t delay, int64_t wait_ms, dlock__grant *g);

/* release of the handle's token on all members: OK (a majority deleted it), NOT_HELD (a majority
 * did not hold it), or an error; *sent = 1 if any member may have run it. */
int dlock__quorum_release(dlock_lock *l, int *sent);

/* extend (op 0: add ms to each remaining lease) or renewal (op 1: make each at least ms). Returns
 * 1 with *granted (the lease a majority holds from `sent_at`, -1 = no expiry), 0 when a majority
 * no longer holds the token, or an error. */
int dlock__quorum_extend(dlock_lock *l, const char *token, size_t token_len, int renew, int64_t ms,
                         int64_t *granted);

/* status: *held = 1 if a majority holds the handle's token. OK or an error. */
int dlock__quorum_status(dlock_lock *l, int *held);

/* inspect across the members: held when a majority hold one token. */
int dlock__quorum_inspect(dlock_client *c, const char *id, const char *token, dlock_lock_info *out);

#endif
