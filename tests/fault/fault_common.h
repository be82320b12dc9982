/* Shared by the fault-injection programs: the monotonic clock, the fenced storage model and the
 * log record format that fault_worker writes and fault_check reads.
 *
 * Clock: CLOCK_MONOTONIC in microseconds. It is one clock for the whole machine on Linux, so the
 * hold intervals that different worker processes log can be compared with each other.
 *
 * The storage: a file "state" that plays the resource a lock protects. It holds a counter, the
 * highest fencing token it has seen, and tallies. Every access (read or write) carries the
 * accessor's fencing token; with fencing on, an access with a token lower than the highest seen
 * is rejected, and an accepted one raises the highest seen (Kleppmann's fencing, applied to reads
 * as well as writes, so a read-modify-write by a stale holder cannot interleave with a newer one).
 * Each single access is atomic (flock): the storage's own atomicity, which a real database has.
 * The read-modify-write spanning two accesses is what the lock must protect. */
#ifndef DLOCK_FAULT_COMMON_H
#define DLOCK_FAULT_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static inline int64_t fault_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void fault_sleep_us(int64_t us) {
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

typedef struct fault_state {
    int64_t counter;   /* the protected value */
    int64_t max_fence; /* highest fencing token seen by an accepted access */
    int64_t writes;    /* accepted writes */
    int64_t rejected;  /* rejected accesses (reads and writes) */
} fault_state;

static inline int fault_state_load(int fd, fault_state *s) {
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    memset(s, 0, sizeof *s);
    if (n < 0) {
        return -1;
    }
    buf[n] = '\0';
    if (n > 0 && sscanf(buf, "%" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64, &s->counter,
                        &s->max_fence, &s->writes, &s->rejected) != 4) {
        return -1;
    }
    return 0;
}

static inline int fault_state_store(int fd, const fault_state *s) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
                     s->counter, s->max_fence, s->writes, s->rejected);
    /* Fixed width would be tidier; truncating after the write is simpler and just as correct
     * since every access holds the flock. */
    if (pwrite(fd, buf, (size_t)n, 0) != n || ftruncate(fd, n) != 0) {
        return -1;
    }
    return 0;
}

/* One storage access. write = 0: read the counter into *value; write = 1: store *value.
 * fence = 0 means unfenced (always accepted). Returns 1 accepted, 0 rejected, -1 I/O error. */
static inline int fault_storage_access(const char *path, int write, int64_t fence, int64_t *value) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    int rc = -1;
    fault_state s;
    if (flock(fd, LOCK_EX) == 0 && fault_state_load(fd, &s) == 0) {
        if (fence > 0 && fence < s.max_fence) {
            s.rejected++;
            rc = 0;
        } else {
            if (fence > s.max_fence) {
                s.max_fence = fence;
            }
            if (write) {
                s.counter = *value;
                s.writes++;
            } else {
                *value = s.counter;
            }
            rc = 1;
        }
        if (fault_state_store(fd, &s) != 0) {
            rc = -1;
        }
    }
    close(fd); /* releases the flock */
    return rc;
}

#endif
