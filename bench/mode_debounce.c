/* Modes debounce-sync and debounce-async: dlock_debounce_call_sync with wait_ms = 1 next to the
 * INCR script, a 1 ms sleep and a GET; and dlock_debounce_call in flushed batches of 200. */
#include "bench.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static void count_call(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    atomic_fetch_add((atomic_long *)userdata, 1);
}

static int step_lib_debounce_sync(void *ctx, int phase) {
    (void)phase;
    lib_ctx *x = ctx;
    int rc = dlock_debounce_call_sync(x->d, "x", 1);
    if (rc < 0) {
        fprintf(stderr, "call_sync: %s %s\n", dlock_strerror(rc), dlock_errmsg());
    }
    return rc < 0;
}

/* The library's call_sync, without the library: INCR-with-expiry script, the wait, GET. The
 * expiry argument is the library's (2 * wait + 10 minutes). */
static int step_raw_debounce(void *ctx, int phase) {
    (void)phase;
    raw_ctx *x = ctx;
    const char *a1[] = {"EVALSHA", x->sha_incr, "1", x->key, "600002"};
    raw_do(x->c, 5, a1);
    if (x->seq != 0) { /* seq holds the wait in ns for the sync variant */
        sleep_ns(x->seq);
    }
    const char *a2[] = {"GET", x->key};
    raw_do(x->c, 2, a2);
    return 0;
}

/* Asynchronous: batches of calls, each batch flushed; throughput is decided calls/s. */
static void debounce_async(bench *b, const char *tr, lib_ctx *lx, atomic_long *fired) {
    samples enq = {0};
    uint64_t start = now_ns(), end = start + secs_ns(b->cfg->secs / 2), t = start;
    long calls = 0;
    atomic_store(fired, 0);
    while (t < end) {
        for (int i = 0; i < 200; i++) {
            uint64_t t0 = now_ns();
            lib_check(dlock_debounce_call(lx->d, &calls, sizeof calls), "debounce_call");
            s_add(&enq, now_ns() - t0);
            calls++;
        }
        dlock_debounce_flush(lx->d);
        t = now_ns();
    }
    double el = (double)(t - start) / 1e9;
    result *r = add_result(b->res, tr, "debounce-async", "call (INCR+GET)", "dlock", &enq,
                           (double)calls / el);
    snprintf(r->note, sizeof r->note,
             "ops/s = decided calls/s incl. flush; latency = call() enqueue only; %ld callbacks",
             (long)atomic_load(fired));
    s_free(&enq);
}

void mode_debounce(bench *b, const char *url) {
    const double secs = b->cfg->secs;
    const char *tr = transport_of(url);
    size_t from = results_count(b->res);
    char key[96];
    snprintf(key, sizeof key, KEY_PREFIX "debounce:%s", tr);
    loop_out ro, lo;
    raw_ctx rx;
    redisContext *rc = raw_open_beside(&rx, b->lua, url, key);
    if (rc != NULL) {
        rx.seq = 0; /* no wait: the limit for the asynchronous path (INCR + GET per call) */
        memset(&ro, 0, sizeof ro);
        run_loop(step_raw_debounce, &rx, 1, secs / 2, &ro);
        report_loop(b->res, tr, "debounce-async", "call (INCR+GET)", "raw", &ro, 0, NULL);
        loop_free(&ro);
        rx.seq = 1000000; /* the 1 ms wait */
    }
    atomic_long fired = 0;
    lib_ctx lx = {0};
    lx.c = lib_open(b->cfg, url, 0);
    dlock_debounce_options dop = {.wait_ms = 1, .callback = count_call, .userdata = &fired};
    lib_check(dlock_debounce_new(&lx.d, lx.c, key, &dop), "debounce_new");
    run_pair(rc != NULL ? step_raw_debounce : NULL, &rx, &ro, step_lib_debounce_sync, &lx, &lo, 1,
             secs);
    if (rc != NULL) {
        report_loop(b->res, tr, "debounce-sync", "call_sync wait=1ms", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    result *r =
        report_loop(b->res, tr, "debounce-sync", "call_sync wait=1ms", "dlock", &lo, 0, NULL);
    snprintf(r->note, sizeof r->note, "latency includes the 1 ms wait");
    loop_free(&lo);

    debounce_async(b, tr, &lx, &fired);
    dlock_debounce_free(lx.d);
    dlock_client_close(lx.c);
    if (rc != NULL) {
        const char *del[] = {"DEL", key, rx.key};
        raw_do(rc, 3, del);
        redisFree(rc);
    }
    pair_ratios(b->res, from);
    const result *rs = find_result(b->res, tr, "debounce-sync", "call_sync wait=1ms", "dlock");
    if (rs != NULL && rs->ratio >= 0) {
        char name[96];
        snprintf(name, sizeof name, "%s: debounce call_sync, dlock / raw calls/s", tr);
        add_check(b->res, name, rs->ratio, 0.95, 1, "x");
    }
}
