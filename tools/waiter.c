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

/* A random UUID v4, like the library's own tokens (and @upstash/lock's). */
static int make_token(char out[37]) {
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n != (ssize_t)sizeof b) {
        return -1;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

static void print_notice(dlock_client *client, const char *id, int64_t waited_ms, int64_t wait_ms) {
    dlock_lock_info info;
    char left[32], limit[32];
    if (dlock_lock_inspect(client, id, NULL, &info) != DLOCK_OK) {
        return; /* the helper will meet the same failure and report it */
    }
    if (wait_ms > 0) {
        cli_format_ms(wait_ms - waited_ms > 0 ? wait_ms - waited_ms : 0, limit, sizeof limit);
    }
    if (!info.held) {
        fprintf(stderr, "dlock: waiting for lock '%s' (it was just released; retrying)\n", id);
    } else if (info.remaining_ms < 0) {
        fprintf(stderr, "dlock: waiting for lock '%s': held by another holder with no expiry%s%s\n",
                id, wait_ms > 0 ? "; giving up in " : "", wait_ms > 0 ? limit : "");
    } else {
        cli_format_ms(info.remaining_ms, left, sizeof left);
        fprintf(stderr,
                "dlock: waiting for lock '%s': held by another holder, %s of its lease left%s%s\n",
                id, left, wait_ms > 0 ? "; giving up in " : "", wait_ms > 0 ? limit : "");
    }
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    if (make_token(token) == 0) {
        last.options.token = token;
    }
    pthread_t t;
    int err = pthread_create(&t, NULL, acquire_thread, &last);
    if (err != 0) {
        cli_error("cannot start a thread: %s", strerror(err));
        return DLOCK_ESYS;
    }
    int64_t start = now_ms();
    int noticed = !notice;
    while (!atomic_load(&last.done)) {
        siginfo_t si;
        int sig;
        if (!noticed) {
            int64_t left = NOTICE_AFTER_MS - (now_ms() - start);
            struct timespec ts = {left / 1000, (left % 1000) * 1000000};
            sig = left > 0 ? sigtimedwait(child_signal_set(), &si, &ts) : -1;
            if (sig < 0 && (left <= 0 || errno == EAGAIN)) {
                noticed = 1;
                if (!atomic_load(&last.done)) {
                    print_notice(client, dlock_lock_id(lock), now_ms() - start, options->wait_ms);
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

void waiter_report_conflict(dlock_client *client, const char *id) {
    dlock_lock_info info;
    char left[32];
    if (dlock_lock_inspect(client, id, NULL, &info) == DLOCK_OK && info.held) {
        if (info.remaining_ms >= 0) {
            cli_format_ms(info.remaining_ms, left, sizeof left);
            cli_error("lock '%s' is held by another holder (%s of its lease left)", id, left);
        } else {
            cli_error("lock '%s' is held by another holder (with no expiry)", id);
        }
    } else {
        cli_error("lock '%s' is held by another holder", id);
    }
}
