/* dlock_interop_driver: the C side of tests/interop/run.sh. Uses only dlock.h; the REST token
 * comes from UPSTASH_REDIS_REST_TOKEN, as with @upstash/redis's Redis.fromEnv().
 *
 *   driver hold URL ID HOLD_MS        acquire once; print "HELD <token>"; sleep; release;
 *                                     print "RELEASED". Exit 0, or 1 if not acquired.
 *   driver try URL ID                 acquire once. Acquired: release, print "ACQUIRED", exit 0.
 *                                     Not: print "NOT_ACQUIRED held=<0|1> holder=<value>
 *                                     remaining=<ms>" (dlock_lock_inspect), exit 1.
 *   driver debounce URL ID WAIT ARG FILE
 *                                     one dlock_debounce_call_sync; the callback appends
 *                                     "C:<ARG>" and a newline to FILE. Exit 0 (ran), 3
 *                                     (superseded).
 * Errors exit 100 - rc (rc < 0) after printing dlock_errmsg() to stderr; bad usage exits 99. */
#include "dlock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "driver: %s: %s: %s\n", what, dlock_strerror(rc), dlock_errmsg());
    return 100 - rc;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *outfile, *outarg;

static void on_run(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    (void)userdata;
    FILE *f = fopen(outfile, "a");
    if (f != NULL) {
        fprintf(f, "C:%s\n", outarg);
        fclose(f);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: see the comment at the top of driver.c\n");
        return 99;
    }
    const char *cmd = argv[1], *url = argv[2], *id = argv[3];
    dlock_client_options o = {.rest_token = getenv("UPSTASH_REDIS_REST_TOKEN")};
    dlock_client *c = NULL;
    int rc = dlock_client_open(&c, url, &o);
    if (rc != DLOCK_OK) {
        return fail("open", rc);
    }
    int status = 0;
    if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "try") == 0) {
        dlock_lock_options lo = {.lease_ms = 30000, .attempts = 1};
        dlock_lock *l = NULL;
        if ((rc = dlock_lock_new(&l, c, id, &lo)) != DLOCK_OK) {
            return fail("lock_new", rc);
        }
        rc = dlock_lock_acquire(l, NULL);
        if (rc < 0) {
            return fail("acquire", rc);
        }
        if (rc == DLOCK_NOT_ACQUIRED) {
            dlock_lock_info info;
            if ((rc = dlock_lock_inspect(c, id, NULL, &info)) != DLOCK_OK) {
                return fail("inspect", rc);
            }
            printf("NOT_ACQUIRED held=%d holder=%s remaining=%lld\n", info.held, info.holder_token,
                   (long long)info.remaining_ms);
            status = 1;
        } else {
            if (strcmp(cmd, "hold") == 0) {
                printf("HELD %s\n", dlock_lock_token(l));
                fflush(stdout);
                sleep_ms(argc > 4 ? atol(argv[4]) : 1000);
            } else {
                printf("ACQUIRED\n");
            }
            if ((rc = dlock_lock_release(l)) != DLOCK_OK) {
                return rc < 0 ? fail("release", rc) : 2;
            }
            if (strcmp(cmd, "hold") == 0) {
                printf("RELEASED\n");
            }
        }
        dlock_lock_free(l);
    } else if (strcmp(cmd, "debounce") == 0 && argc == 7) {
        outarg = argv[5];
        outfile = argv[6];
        dlock_debounce_options d = {.wait_ms = atol(argv[4]), .callback = on_run};
        dlock_debounce *db = NULL;
        if ((rc = dlock_debounce_new(&db, c, id, &d)) != DLOCK_OK) {
            return fail("debounce_new", rc);
        }
        rc = dlock_debounce_call_sync(db, outarg, strlen(outarg));
        if (rc < 0) {
            return fail("debounce", rc);
        }
        status = rc; /* 0 ran, 3 superseded */
        dlock_debounce_free(db);
    } else {
        fprintf(stderr, "driver: unknown command or wrong arguments: %s\n", cmd);
        status = 99;
    }
    dlock_client_close(c);
    return status;
}
