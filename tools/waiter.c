/* waiter.c: the interruptible acquire of `dlock run` and `dlock acquire`. */
#include "waiter.h"

#include "child.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The notice appears once the wait has lasted this long: shorter waits are normal contention. */
#define NOTICE_AFTER_MS 1000

struct job {
    dlock_lock *lock;
    dlock_acquire_options options;
    pthread_t waiter;
    atomic_int done;
    int rc;
    char errmsg[512]; /* dlock_errmsg() is per thread: carry the helper's to the caller */
};

/* Static: it must outlive an interrupted call until _exit, and keep the helper's message. */
static struct job last;

static void *acquire_thread(void *arg) {
    struct job *j = arg;
    j->rc = dlock_lock_acquire(j->lock, &j->options);
    snprintf(j->errmsg, sizeof j->errmsg, "%s", dlock_errmsg());
    atomic_store(&j->done, 1);
    pthread_kill(j->waiter, CHILD_SIG_ACQUIRED);
    return NULL;
}

static void print_notice(dlock_client *client, const char *id, int64_t waited_ms, int64_t wait_ms) {
    dlock_lock_info info;
    char left[32], limit[64] = "";
    if (dlock_lock_inspect(client, id, NULL, &info) != DLOCK_OK) {
        return; /* the helper will meet the same failure and report it */
    }
    if (wait_ms > 0 && wait_ms < DLOCK_MAX_DURATION_MS) { /* not -w forever */
        cli_format_ms(wait_ms - waited_ms > 0 ? wait_ms - waited_ms : 0, left, sizeof left);
        snprintf(limit, sizeof limit, "; giving up in %s", left);
    }
    if (!info.held) {
        cli_error("waiting for lock '%s' (it was just released; retrying)", id);
    } else if (info.remaining_ms < 0) {
        cli_error("waiting for lock '%s': held by another holder with no expiry%s", id, limit);
    } else {
        cli_format_ms(info.remaining_ms, left, sizeof left);
        cli_error("waiting for lock '%s': held by another holder, %s of its lease left%s", id, left,
                  limit);
    }
}

/* Releases what the helper may have acquired with `token`, on a handle of our own (the helper's
 * may be in use). Best effort: if Redis cannot be reached, the lease ends the lock. */
static void release_token(dlock_client *client, const char *id, const char *token) {
    dlock_lock *l;
    if (dlock_lock_new(&l, client, id, NULL) != DLOCK_OK) {
        return;
    }
    if (dlock_lock_adopt(l, token) == DLOCK_OK) {
        dlock_lock_release(l);
    }
    dlock_lock_free(l);
}

static int is_stop_signal(int sig) {
    return sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
}

/* After a stop signal: cancels the helper's acquire, which leaves the wait queue and passes on a
 * lock handed to it meanwhile, and waits for the helper to return (about 50 ms plus a round trip,
 * bounded by the client's deadlines), then releases the lock if the acquire had succeeded
 * before the cancel. A second stop signal cuts that wait short: the lock taken with our token,
 * if any, is released from another handle and the helper is left inside the library. Returns 1
 * if the helper was joined. */
static int stop_helper(dlock_client *client, dlock_lock *lock, pthread_t t, const char *token) {
    dlock_lock_cancel(lock);
    while (!atomic_load(&last.done)) {
        siginfo_t si;
        int sig = sigwaitinfo(child_signal_set(), &si);
        if (is_stop_signal(sig)) {
            if (token != NULL) {
                release_token(client, dlock_lock_id(lock), token);
            }
            return 0;
        }
    }
    pthread_join(t, NULL);
    if (last.rc == DLOCK_OK) {
        dlock_lock_release(lock);
    }
    return 1;
}

int waiter_acquire(dlock_client *client, dlock_lock *lock, const dlock_acquire_options *options,
                   int notice, int *signo) {
    static char token[37]; /* read by the helper thread until it returns */
    memset(&last, 0, sizeof last);
    last.lock = lock;
    last.options = *options;
    last.waiter = pthread_self();
    if (dlock_token_uuid(token) == DLOCK_OK) {
        last.options.token = token;
    }
    pthread_t t;
    int err = pthread_create(&t, NULL, acquire_thread, &last);
    if (err != 0) {
        cli_error("cannot start a thread: %s", strerror(err));
        return DLOCK_ESYS;
    }
    int64_t start = cli_now_ms();
    int noticed = !notice;
    while (!atomic_load(&last.done)) {
        siginfo_t si;
        int sig;
        if (!noticed) {
            int64_t left = NOTICE_AFTER_MS - (cli_now_ms() - start);
            struct timespec ts = {left / 1000, (left % 1000) * 1000000};
            sig = left > 0 ? sigtimedwait(child_signal_set(), &si, &ts) : -1;
            if (sig < 0 && (left <= 0 || errno == EAGAIN)) {
                noticed = 1;
                if (!atomic_load(&last.done)) {
                    print_notice(client, dlock_lock_id(lock), cli_now_ms() - start,
                                 options->wait_ms);
                }
                continue;
            }
        } else {
            sig = sigwaitinfo(child_signal_set(), &si);
        }
        if (is_stop_signal(sig)) {
            stop_helper(client, lock, t, last.options.token);
            *signo = sig;
            return WAITER_INTERRUPTED;
        }
        /* CHILD_SIG_ACQUIRED, or a stray signal (SIGCHLD, SIGUSR2): the loop re-checks done. */
    }
    pthread_join(t, NULL);
    return last.rc;
}

const char *waiter_errmsg(void) {
    return last.errmsg;
}

int waiter_conflict(dlock_client *client, const char *id, const char *how, int quiet) {
    dlock_lock_info info;
    char left[32], lease[64] = "";
    int rc = dlock_lock_inspect(client, id, NULL, &info);
    if (rc == DLOCK_ESERVER || rc == DLOCK_EPROTO) {
        /* SET NX found a key, but not one a lock could be: a list, a hash, ... (WRONGTYPE). */
        char what[96];
        snprintf(what, sizeof what, "lock '%.40s%s' cannot be taken", id,
                 strlen(id) > 40 ? "..." : "");
        return cli_fail(rc, what);
    }
    if (quiet) {
        return 0;
    }
    if (rc == DLOCK_OK && info.held && info.remaining_ms >= 0) {
        cli_format_ms(info.remaining_ms, left, sizeof left);
        snprintf(lease, sizeof lease, " (%s of its lease left)", left);
    } else if (rc == DLOCK_OK && info.held) {
        snprintf(lease, sizeof lease, " (with no expiry)");
    }
    if (how[0] != '\0') {
        cli_error("lock '%s' is still held by another holder %s%s", id, how, lease);
    } else {
        cli_error("lock '%s' is held by another holder%s", id, lease);
    }
    return 0;
}
