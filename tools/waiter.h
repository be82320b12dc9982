/* waiter.h: acquiring a lock while staying responsive to signals and telling the user why the
 * wait is long. */
#ifndef DLOCK_CLI_WAITER_H
#define DLOCK_CLI_WAITER_H

#include "dlock.h"

/* Returned by waiter_acquire when a signal interrupted the wait. */
#define WAITER_INTERRUPTED 1000

/* Acquires `lock` (on `client`) with `options`. The library call runs on a helper thread while
 * the calling thread waits for it, so that SIGINT, SIGTERM and SIGHUP end the wait at once.
 * When `notice` is set and the wait passes one second, says on stderr who holds the lock and for
 * how long. child_block_signals() must have been called.
 * On a stop signal the acquire is cancelled (dlock_lock_cancel), so that it leaves the wait
 * queue and passes on a lock handed to it meanwhile, and the helper is joined; a lock it took
 * before the cancel is released. A second stop signal during that (a round trip at most, within
 * the client's deadlines) gives up on the helper: the token is generated here rather than by
 * the library, so that the lock the helper may have taken can still be released from another
 * handle.
 * Returns the acquire's return code, or WAITER_INTERRUPTED with *signo set: then the lock is
 * not held (released if it had been taken) and the caller must _exit(): after a second signal
 * the helper thread may still be inside the library, so nothing may be freed. */
int waiter_acquire(dlock_client *client, dlock_lock *lock, const dlock_acquire_options *options,
                   int notice, int *signo);

/* The library's message for the failure waiter_acquire last returned (dlock_errmsg() belongs to
 * the helper thread that made the call). */
const char *waiter_errmsg(void);

/* After an acquire of `id` found it taken: reads what holds it (one more round trip) and, unless
 * `quiet`, says on stderr that another holder has it, `how` the acquire tried ("after waiting
 * 5.0s", "after 3 tries 100ms apart", or "") and the holder's remaining lease. Returns 0 for such
 * a conflict, or, if the key is no lock at all (a list: Redis answers WRONGTYPE), the exit code
 * after printing Redis's text: an error is never reported as "held". */
int waiter_conflict(dlock_client *client, const char *id, const char *how, int quiet);

#endif /* DLOCK_CLI_WAITER_H */
