/* dlock_bench_quorum: a Redlock over N servers next to its limit, raw hiredis doing the same
 * parallel fan-out (SET NX PX to all, read all, then the owner-checked DEL script to all, read
 * all), and next to N sequential round trips (what a fan-out that is not parallel would cost).
 *
 *   dlock_bench_quorum SECONDS PORT...      (bench/quorum.sh starts the servers)
 *
 * One uncontended client, one id. Prints one line per measurement and a JSON object last. */
#include "dlock.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXN     16
#define MAXCYCLE 2000000

static const char release_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    const char *name;
    double ops, p50_us, p99_us;
} result;

static double *lat;

static result finish(const char *name, int n, double elapsed) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    result r = {name, n / elapsed, lat[n / 2] * 1e6, lat[(int)(n * 0.99)] * 1e6};
    printf("%-34s %9.0f cycles/s  p50 %6.0f us  p99 %6.0f us\n", name, r.ops, r.p50_us, r.p99_us);
    return r;
}

static result bench_dlock(const char *name, dlock_client *c, int fencing, double seconds) {
    dlock_lock_options lo = {.lease_ms = 10000, .attempts = 1, .fencing = fencing};
    dlock_lock *l;
    if (dlock_lock_new(&l, c, fencing ? "bench:quorum:fenced" : "bench:quorum", &lo) != DLOCK_OK) {
        fprintf(stderr, "dlock_lock_new: %s\n", dlock_errmsg());
        exit(1);
    }
    int n = 0;
    double start = now_s(), end = start + seconds;
    for (double t = start; t < end && n < MAXCYCLE; n++) {
        int rc = dlock_lock_acquire(l, NULL);
        if (rc == DLOCK_OK) {
            rc = dlock_lock_release(l);
        }
        if (rc != DLOCK_OK) {
            fprintf(stderr, "%s: %s: %s\n", name, dlock_strerror(rc), dlock_errmsg());
            exit(1);
        }
        double t2 = now_s();
        lat[n] = t2 - t;
        t = t2;
    }
    dlock_lock_free(l);
    return finish(name, n, now_s() - start);
}

/* Sends the command to every context (all buffers flushed) before reading any reply: the
 * servers work at once, so a round costs the slowest server's round trip. */
static void fan_out(redisContext **c, int n, int parallel, const char *fmt, const char *a,
                    const char *b) {
    for (int i = 0; i < n; i++) {
        redisAppendCommand(c[i], fmt, a, b);
        if (parallel) {
            int done = 0;
            while (!done) {
                if (redisBufferWrite(c[i], &done) != REDIS_OK) {
                    fprintf(stderr, "raw write: %s\n", c[i]->errstr);
                    exit(1);
                }
            }
        } else {
            void *r;
            if (redisGetReply(c[i], &r) != REDIS_OK) {
                fprintf(stderr, "raw: %s\n", c[i]->errstr);
                exit(1);
            }
            freeReplyObject(r);
        }
    }
    for (int i = 0; parallel && i < n; i++) {
        void *r;
        if (redisGetReply(c[i], &r) != REDIS_OK) {
            fprintf(stderr, "raw read: %s\n", c[i]->errstr);
            exit(1);
        }
        freeReplyObject(r);
    }
}

static result bench_raw(const char *name, const int *ports, int n, int parallel, double seconds) {
    redisContext *c[MAXN];
    for (int i = 0; i < n; i++) {
        c[i] = redisConnect("127.0.0.1", ports[i]);
        if (c[i] == NULL || c[i]->err) {
            fprintf(stderr, "raw connect %d failed\n", ports[i]);
            exit(1);
        }
    }
    char fmt[600];
    snprintf(fmt, sizeof fmt, "EVAL %s 1 %%s %%s", release_lua);
    const char *token = "0b6f6a9e-2a4d-4c1e-9f0e-5d9b1c1f2e3a";
    int k = 0;
    double start = now_s(), end = start + seconds;
    for (double t = start; t < end && k < MAXCYCLE; k++) {
        fan_out(c, n, parallel, "SET %s %s NX PX 10000", "bench:quorum:raw", token);
        fan_out(c, n, parallel, fmt, "bench:quorum:raw", token);
        double t2 = now_s();
        lat[k] = t2 - t;
        t = t2;
    }
    for (int i = 0; i < n; i++) {
        redisFree(c[i]);
    }
    return finish(name, k, now_s() - start);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: dlock_bench_quorum SECONDS PORT PORT PORT...\n");
        return 64;
    }
    double seconds = atof(argv[1]);
    int n = argc - 2 > MAXN ? MAXN : argc - 2, ports[MAXN];
    char urls[MAXN][64];
    const char *u[MAXN];
    for (int i = 0; i < n; i++) {
        ports[i] = atoi(argv[i + 2]);
        snprintf(urls[i], sizeof urls[i], "redis://127.0.0.1:%d", ports[i]);
        u[i] = urls[i];
    }
    lat = malloc(MAXCYCLE * sizeof *lat);
    dlock_client *c;
    if (lat == NULL || dlock_client_open_quorum(&c, u, (size_t)n, NULL) != DLOCK_OK) {
        fprintf(stderr, "open: %s\n", dlock_errmsg());
        return 1;
    }
    result r[5];
    r[0] = bench_raw("raw hiredis, parallel fan-out", ports, n, 1, seconds);
    r[1] = bench_dlock("dlock Redlock", c, 0, seconds);
    r[2] = bench_dlock("dlock Redlock, fenced (2 phases)", c, 1, seconds);
    r[3] = bench_raw("raw hiredis, one server at a time", ports, n, 0, seconds);
    r[4] = bench_raw("raw hiredis, one server", ports, 1, 1, seconds);
    printf("dlock Redlock / raw parallel fan-out: %.2f\n", r[1].ops / r[0].ops);
    printf("{\"n\": %d, \"seconds\": %.1f", n, seconds);
    const char *keys[] = {"raw_parallel", "dlock", "dlock_fenced", "raw_sequential", "raw_one"};
    for (int i = 0; i < 5; i++) {
        printf(", \"%s\": {\"ops\": %.0f, \"p50_us\": %.0f, \"p99_us\": %.0f}", keys[i], r[i].ops,
               r[i].p50_us, r[i].p99_us);
    }
    printf(", \"ratio\": %.3f}\n", r[1].ops / r[0].ops);
    dlock_client_close(c);
    free(lat);
    return 0;
}
