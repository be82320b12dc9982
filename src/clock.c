/* Monotonic time, and waiting on a socket against a deadline. Deadlines and lease bookkeeping never
 * use the wall clock, which can jump. */
#include "fmacros.h"

#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

int64_t dlock__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Thread_local int64_t deadline_cap;

int64_t dlock__deadline_in(int64_t ms) {
    int64_t d = dlock__add_sat(dlock__now_ms(), ms);
    return deadline_cap > 0 && deadline_cap < d ? deadline_cap : d;
}

void dlock__set_deadline_cap(int64_t cap) {
    deadline_cap = cap;
}

int64_t dlock__tighten_deadline_cap(int64_t by) {
    int64_t prev = deadline_cap;
    if (prev == 0 || by < prev) {
        deadline_cap = by;
    }
    return prev;
}

void dlock__cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

void dlock__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms) {
    int64_t left = until_ms - dlock__now_ms();
    if (left <= 0) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

void dlock__sleep_ms(int64_t ms) {
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int dlock__sleep_cancellable(int64_t ms, atomic_int *cancel) {
    int64_t until = dlock__add_sat(dlock__now_ms(), ms > 0 ? ms : 0);
    for (;;) {
        if (atomic_load(cancel)) {
            return 1;
        }
        int64_t left = until - dlock__now_ms();
        if (left <= 0) {
            return 0;
        }
        dlock__sleep_ms(left < DLOCK__CANCEL_SLICE_MS ? left : DLOCK__CANCEL_SLICE_MS);
    }
}

int64_t dlock__backoff_pause(int64_t *backoff, int64_t cap) {
    int64_t pause = 1 + (int64_t)dlock__random_below((uint64_t)*backoff);
    *backoff = *backoff * 2 > cap ? cap : *backoff * 2;
    return pause;
}

int64_t dlock__add_sat(int64_t a, int64_t b) {
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int dlock__poll_fd(int fd, short events, int64_t deadline_ms) {
    for (;;) {
        int64_t left = deadline_ms - dlock__now_ms();
        if (left <= 0) {
            return DLOCK_ETIMEDOUT;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0) {
            return DLOCK_OK; /* ready, or an error/hangup that the next read/write reports */
        }
        if (n < 0 && errno != EINTR) {
            return DLOCK_EIO;
        }
    }
}
