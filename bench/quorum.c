/* dlock_bench_quorum: a Redlock over N servers next to its limit, raw hiredis doing the same
 * parallel fan-out (SET NX PX to all, read all, then the owner-checked DEL script to all, read
 * all), and next to N sequential round trips (what a fan-out that is not parallel would cost).
 *
 *   dlock_bench_quorum SECONDS PORT...      (bench/quorum.sh starts the servers)
 *
 * One uncontended client, one id. The limit and dlock run interleaved, in 10 slices of
 * SECONDS/10 each, so that a change in the machine's load hits both alike (as in dlock_bench).
 * Prints one line per measurement, the targets, and a JSON object last. */
#include "dlock.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXN     16
#define MAXCYCLE 2000000
#define SLICES   10

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

/* One measurement: its cycle latencies and the time they took. */
typedef struct run {
    double *lat;
    int n;
    double elapsed;
} run;

typedef struct result {
    double ops, p50_us, p99_us;
} result;

static result finish(const char *name, run *m) {
    qsort(m->lat, (size_t)m->n, sizeof *m->lat, cmp_double);
    result r = {m->n / m->elapsed, m->lat[m->n / 2] * 1e6, m->lat[(int)(m->n * 0.99)] * 1e6};
    printf("%-34s %9.0f cycles/s  p50 %6.0f us  p99 %6.0f us\n", name, r.ops, r.p50_us, r.p99_us);
    free(m->lat);
    return r;
}

static void run_init(run *m) {
    m->n = 0;
    m->elapsed = 0;
    if ((m->lat = malloc(MAXCYCLE * sizeof *m->lat)) == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

/* ---- dlock ---- */

static dlock_lock *lock_new(dlock_client *c, int fencing) {
    dlock_lock_options lo = {.lease_ms = 10000, .attempts = 1, .fencing = fencing};
    dlock_lock *l;
    if (dlock_lock_new(&l, c, fencing ? "bench:quorum:fenced" : "bench:quorum", &lo) != DLOCK_OK) {
        fprintf(stderr, "dlock_lock_new: %s\n", dlock_errmsg());
        exit(1);
    }
    return l;
}

static void dlock_slice(dlock_lock *l, double seconds, run *m) {
    double start = now_s(), end = start + seconds, t = start;
    for (; t < end && m->n < MAXCYCLE; m->n++) {
        int rc = dlock_lock_acquire(l, NULL);
        if (rc == DLOCK_OK) {
            rc = dlock_lock_release(l);
        }
        if (rc != DLOCK_OK) {
            fprintf(stderr, "dlock: %s: %s\n", dlock_strerror(rc), dlock_errmsg());
            exit(1);
        }
        double t2 = now_s();
        m->lat[m->n] = t2 - t;
        t = t2;
    }
    m->elapsed += t - start;
}

/* ---- raw hiredis ---- */

typedef struct raw {
    redisContext *c[MAXN];
    int n, parallel;
    char fmt[600];
} raw;

static void raw_open(raw *x, const int *ports, int n, int parallel) {
    x->n = n;
    x->parallel = parallel;
    for (int i = 0; i < n; i++) {
        x->c[i] = redisConnect("127.0.0.1", ports[i]);
        if (x->c[i] == NULL || x->c[i]->err) {
            fprintf(stderr, "raw connect %d failed\n", ports[i]);
            exit(1);
        }
    }
    snprintf(x->fmt, sizeof x->fmt, "EVAL %s 1 %%s %%s", release_lua);
}

static void raw_close(raw *x) {
    for (int i = 0; i < x->n; i++) {
        redisFree(x->c[i]);
    }
}

/* Sends the command to every context (all buffers flushed) before reading any reply: the
 * servers work at once, so a round costs the slowest server's round trip. */
static void fan_out(raw *x, const char *fmt, const char *a, const char *b) {
    for (int i = 0; i < x->n; i++) {
        redisAppendCommand(x->c[i], fmt, a, b);
        if (x->parallel) {
            int done = 0;
            while (!done) {
                if (redisBufferWrite(x->c[i], &done) != REDIS_OK) {
                    fprintf(stderr, "raw write: %s\n", x->c[i]->errstr);
                    exit(1);
                }
            }
        } else {
            void *r;
            if (redisGetReply(x->c[i], &r) != REDIS_OK) {
                fprintf(stderr, "raw: %s\n", x->c[i]->errstr);
                exit(1);
            }
            freeReplyObject(r);
        }
    }
    for (int i = 0; x->parallel && i < x->n; i++) {
        void *r;
        if (redisGetReply(x->c[i], &r) != REDIS_OK) {
            fprintf(stderr, "raw read: %s\n", x->c[i]->errstr);
            exit(1);
        }
        freeReplyObject(r);
    }
}

static void raw_slice(raw *x, double seconds, run *m) {
    const char *token = "0b6f6a9e-2a4d-4c1e-9f0e-5d9b1c1f2e3a";
    double start = now_s(), end = start + seconds, t = start;
    for (; t < end && m->n < MAXCYCLE; m->n++) {
        fan_out(x, "SET %s %s NX PX 10000", "bench:quorum:raw", token);
        fan_out(x, x->fmt, "bench:quorum:raw", token);
        double t2 = now_s();
        m->lat[m->n] = t2 - t;
        t = t2;
    }
    m->elapsed += t - start;
}

static result bench_raw(const char *name, const int *ports, int n, int parallel, double seconds) {
    raw x;
    run m;
    raw_open(&x, ports, n, parallel);
    run_init(&m);
    raw_slice(&x, seconds, &m);
    raw_close(&x);
    return finish(name, &m);
}

static void check(const char *name, double value, double target, int higher_is_better) {
    int met = higher_is_better ? value >= target : value <= target;
    printf("target: %-58s %6.2f %s %4.2f  %s\n", name, value,
           higher_is_better ? ">=" : "<=", target, met ? "met" : "NOT MET");
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
    dlock_client *c;
    if (dlock_client_open_quorum(&c, u, (size_t)n, NULL) != DLOCK_OK) {
        fprintf(stderr, "open: %s\n", dlock_errmsg());
        return 1;
    }
    result r[5];
    raw par;
    run rm, dm;
    raw_open(&par, ports, n, 1);
    dlock_lock *l = lock_new(c, 0);
    run_init(&rm);
    run_init(&dm);
    for (int s = 0; s < SLICES; s++) {
        raw_slice(&par, seconds / SLICES, &rm);
        dlock_slice(l, seconds / SLICES, &dm);
    }
    raw_close(&par);
    dlock_lock_free(l);
    r[0] = finish("raw hiredis, parallel fan-out", &rm);
    r[1] = finish("dlock Redlock", &dm);
    l = lock_new(c, 1);
    run_init(&dm);
    dlock_slice(l, seconds, &dm);
    dlock_lock_free(l);
    r[2] = finish("dlock Redlock, fenced (2 phases)", &dm);
    r[3] = bench_raw("raw hiredis, one server at a time", ports, n, 0, seconds);
    r[4] = bench_raw("raw hiredis, one server", ports, 1, 1, seconds);
    printf("dlock Redlock / raw parallel fan-out: %.2f\n", r[1].ops / r[0].ops);
    char name[96];
    snprintf(name, sizeof name, "Redlock N=%d: dlock / raw parallel fan-out, cycles/s", n);
    check(name, r[1].ops / r[0].ops, 0.9, 1);
    snprintf(name, sizeof name, "Redlock N=%d: dlock p50 / raw parallel p50 (slowest server)", n);
    check(name, r[1].p50_us / r[0].p50_us, 1.1, 0);
    snprintf(name, sizeof name, "Redlock N=%d: dlock p50 / raw one-at-a-time p50 (the sum)", n);
    check(name, r[1].p50_us / r[3].p50_us, 1.0, 0);
    printf("{\"n\": %d, \"seconds\": %.1f", n, seconds);
    const char *keys[] = {"raw_parallel", "dlock", "dlock_fenced", "raw_sequential", "raw_one"};
    for (int i = 0; i < 5; i++) {
        printf(", \"%s\": {\"ops\": %.0f, \"p50_us\": %.0f, \"p99_us\": %.0f}", keys[i], r[i].ops,
               r[i].p50_us, r[i].p99_us);
    }
    printf(", \"ratio\": %.3f}\n", r[1].ops / r[0].ops);
    dlock_client_close(c);
    return 0;
}
