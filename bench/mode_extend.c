/* Modes extend and status: dlock_lock_extend(l, 1) and dlock_lock_status on a held lock, next
 * to the extend script as EVALSHA and a GET. */
#include "bench.h"

#include <stdio.h>

static int step_lib_extend(void *ctx, int phase) {
    (void)phase;
    lib_ctx *x = ctx;
    int rc = dlock_lock_extend(x->l, 1);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "extend: %s %s\n", dlock_strerror(rc), dlock_errmsg());
    }
    return rc != DLOCK_OK;
}

static int step_raw_extend(void *ctx, int phase) {
    (void)phase;
    raw_ctx *x = ctx;
    const char *argv[] = {"EVALSHA", x->sha_extend, "1", x->key, x->token, "1"};
    raw_do(x->c, 6, argv);
    return 0;
}

static int step_lib_status(void *ctx, int phase) {
    (void)phase;
    lib_ctx *x = ctx;
    dlock_state st;
    int rc = dlock_lock_status(x->l, &st);
    if (rc != DLOCK_OK || st != DLOCK_ACQUIRED) {
        fprintf(stderr, "status: %s %s\n", dlock_strerror(rc), dlock_errmsg());
        return 1;
    }
    return 0;
}

static int step_raw_status(void *ctx, int phase) {
    (void)phase;
    raw_ctx *x = ctx;
    const char *argv[] = {"GET", x->key};
    raw_do(x->c, 2, argv);
    return 0;
}

void mode_extend(bench *b, const char *url) {
    const double secs = b->cfg->secs;
    const char *tr = transport_of(url);
    size_t from = results_count(b->res);
    char key[96];
    snprintf(key, sizeof key, KEY_PREFIX "extend:%s", tr);
    loop_out ro, lo;
    raw_ctx rx;
    redisContext *rc = raw_open_beside(&rx, b->lua, url, key);
    if (rc != NULL) {
        raw_new_token(&rx);
        raw_set_nx(&rx, rx.key);
    }
    lib_ctx lx = {0};
    lx.c = lib_open(b->cfg, url, 0);
    lib_check(dlock_lock_new(&lx.l, lx.c, key, NULL), "lock_new");
    dlock_acquire_options ao = {.lease_ms = 600000};
    lib_check(dlock_lock_acquire(lx.l, &ao), "acquire");
    run_pair(rc != NULL ? step_raw_extend : NULL, &rx, &ro, step_lib_extend, &lx, &lo, 1, secs);
    if (rc != NULL) {
        report_loop(b->res, tr, "extend", "extend (EVALSHA)", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    result *re = report_loop(b->res, tr, "extend", "extend (EVALSHA)", "dlock", &lo, 0, NULL);
    loop_free(&lo);
    run_pair(rc != NULL ? step_raw_status : NULL, &rx, &ro, step_lib_status, &lx, &lo, 1, secs);
    if (rc != NULL) {
        report_loop(b->res, tr, "status", "status (GET)", "raw", &ro, 0, NULL);
        loop_free(&ro);
        raw_release(&rx, rx.key);
        redisFree(rc);
    }
    result *rs = report_loop(b->res, tr, "status", "status (GET)", "dlock", &lo, 0, NULL);
    loop_free(&lo);
    dlock_lock_release(lx.l);
    dlock_lock_free(lx.l);
    dlock_client_close(lx.c);
    pair_ratios(b->res, from);
    char name[96];
    if (re->ratio >= 0) {
        snprintf(name, sizeof name, "%s: extend, dlock / raw ops/s", tr);
        add_check(b->res, name, re->ratio, 0.95, 1, "x");
        snprintf(name, sizeof name, "%s: status, dlock / raw ops/s", tr);
        add_check(b->res, name, rs->ratio, 0.95, 1, "x");
    }
}
