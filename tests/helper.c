/* dlock_test_helper: a second process for the cross-process tests. It uses only dlock.h, and
 * support.c's dlt_client_open for what the run's clients need (the REST token, the https run's
 * CA), read from the environment and the harness's env file like the tests' own clients.
 *
 *   dlock_test_helper lock URL ID CYCLES HOLD_MS LOGFILE
 *       CYCLES times: acquire ID (retrying for up to ~20 s), append "E <pid>" to LOGFILE, sleep
 *       HOLD_MS, append "X <pid>", release. The parent checks that E/X lines of different
 *       processes never interleave.
 *   dlock_test_helper debounce URL ID WAIT_MS ARG OUTFILE
 *       One dlock_debounce_call_sync; the callback appends "<ARG>" and a newline to OUTFILE.
 *   dlock_test_helper wait URL ID WAIT_MS LEASE_MS LOGFILE
 *       One blocking acquire (wait_ms) with the lease, then appends "<rc> <t> <validity>" (t:
 *       CLOCK_MONOTONIC ms when the acquire returned) to LOGFILE; if it got the lock, holds it
 *       for 100 ms and releases it.
 *
 * Exit status: a dlock outcome rc >= 0 exits with rc (0 OK, 1 NOT_ACQUIRED, 2 NOT_HELD,
 * 3 SUPERSEDED); an error rc < 0 exits with 100 - rc; bad usage exits with 99.
 */
#include "support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int helper_exit(int rc) {
    return rc >= 0 ? rc : 100 - rc;
}

static void helper_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One write(2) per line on an O_APPEND file, so lines of concurrent processes never mix. */
static void helper_append(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        perror(path);
        exit(98);
    }
    size_t len = strlen(line);
    if (write(fd, line, len) != (ssize_t)len) {
        perror("write");
        exit(98);
    }
    close(fd);
}

static int helper_lock(const char *url, const char *id, int cycles, long hold_ms, const char *log) {
    dlock_client *client = NULL;
    int rc = dlt_client_open(&client, url, NULL);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "helper: open: %s\n", dlock_errmsg());
        return helper_exit(rc);
    }
    /* Many short tries: the other process holds the lock for a few cycles at a time. */
    dlock_lock_options lo = {.lease_ms = 10000, .attempts = 4000, .delay_ms = 5};
    dlock_lock *lock = NULL;
    rc = dlock_lock_new(&lock, client, id, &lo);
    char line[64];
    for (int i = 0; rc == DLOCK_OK && i < cycles; i++) {
        rc = dlock_lock_acquire(lock, NULL);
        if (rc != DLOCK_OK) {
            fprintf(stderr, "helper: acquire: %d %s\n", rc, dlock_errmsg());
            break;
        }
        snprintf(line, sizeof line, "E %ld\n", (long)getpid());
        helper_append(log, line);
        helper_sleep_ms(hold_ms);
        snprintf(line, sizeof line, "X %ld\n", (long)getpid());
        helper_append(log, line);
        rc = dlock_lock_release(lock);
        if (rc != DLOCK_OK) {
            fprintf(stderr, "helper: release: %d %s\n", rc, dlock_errmsg());
        }
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return helper_exit(rc);
}

static long long helper_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int helper_wait(const char *url, const char *id, long wait_ms, long lease_ms,
                       const char *log) {
    dlock_client *client = NULL;
    int rc = dlt_client_open(&client, url, NULL);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "helper: open: %s\n", dlock_errmsg());
        return helper_exit(rc);
    }
    dlock_lock_options lo = {.lease_ms = lease_ms};
    dlock_lock *lock = NULL;
    rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc == DLOCK_OK) {
        dlock_acquire_options ao = {.wait_ms = wait_ms};
        rc = dlock_lock_acquire(lock, &ao);
        char line[96];
        snprintf(line, sizeof line, "%d %lld %lld\n", rc, helper_now_ms(),
                 (long long)dlock_lock_validity_ms(lock));
        helper_append(log, line);
        if (rc == DLOCK_OK) {
            helper_sleep_ms(100);
            dlock_lock_release(lock);
        }
    }
    if (rc < 0) {
        fprintf(stderr, "helper: wait: %d %s\n", rc, dlock_errmsg());
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return helper_exit(rc);
}

struct helper_debounce_ctx {
    const char *outfile;
};

static void helper_debounce_cb(const void *arg, size_t len, void *userdata) {
    struct helper_debounce_ctx *ctx = userdata;
    char line[256];
    snprintf(line, sizeof line, "%.*s\n", (int)(len < 200 ? len : 200), (const char *)arg);
    helper_append(ctx->outfile, line);
}

static int helper_debounce(const char *url, const char *id, long wait_ms, const char *arg,
                           const char *outfile) {
    dlock_client *client = NULL;
    int rc = dlt_client_open(&client, url, NULL);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "helper: open: %s\n", dlock_errmsg());
        return helper_exit(rc);
    }
    struct helper_debounce_ctx ctx = {outfile};
    dlock_debounce_options o = {
        .wait_ms = wait_ms, .callback = helper_debounce_cb, .userdata = &ctx};
    dlock_debounce *d = NULL;
    rc = dlock_debounce_new(&d, client, id, &o);
    if (rc == DLOCK_OK) {
        rc = dlock_debounce_call_sync(d, arg, strlen(arg));
    }
    if (rc < 0) {
        fprintf(stderr, "helper: debounce: %d %s\n", rc, dlock_errmsg());
    }
    dlock_debounce_free(d);
    dlock_client_close(client);
    return helper_exit(rc);
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "lock") == 0) {
        return helper_lock(argv[2], argv[3], atoi(argv[4]), atol(argv[5]), argv[6]);
    }
    if (argc == 7 && strcmp(argv[1], "debounce") == 0) {
        return helper_debounce(argv[2], argv[3], atol(argv[4]), argv[5], argv[6]);
    }
    if (argc == 7 && strcmp(argv[1], "wait") == 0) {
        return helper_wait(argv[2], argv[3], atol(argv[4]), atol(argv[5]), argv[6]);
    }
    fprintf(stderr,
            "usage: %s lock URL ID CYCLES HOLD_MS LOGFILE\n"
            "       %s debounce URL ID WAIT_MS ARG OUTFILE\n"
            "       %s wait URL ID WAIT_MS LEASE_MS LOGFILE\n",
            argv[0], argv[0], argv[0]);
    return 99;
}
