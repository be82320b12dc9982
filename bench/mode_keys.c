/* Mode ids=N: a random id out of N per cycle, with a new handle per id, for each N in --keys.
 * The keyspace is first filled to N keys with pipelined raw SETs, so DBSIZE really is N. */
#include "bench.h"

#include <stdio.h>

/* Many ids: a random id out of nkeys per cycle, with a handle made per id as a caller with
 * that many ids would (lock_new sends nothing). */
static int step_lib_keys(void *ctx, int phase) {
    lib_ctx *x = ctx;
    int rc;
    if (phase == 0) {
        snprintf(x->key, sizeof x->key, KEY_PREFIX "id:%llu",
                 (unsigned long long)(xorshift(&x->rng) % x->nkeys));
        lib_check(dlock_lock_new(&x->l, x->c, x->key, NULL), "lock_new");
        rc = dlock_lock_acquire(x->l, &x->ao);
    } else {
        rc = dlock_lock_release(x->l);
        dlock_lock_free(x->l);
        x->l = NULL;
    }
    if (rc != DLOCK_OK) {
        fprintf(stderr, "keys: %s %s\n", dlock_strerror(rc), dlock_errmsg());
        return 1;
    }
    return 0;
}

static int step_raw_keys(void *ctx, int phase) {
    raw_ctx *x = ctx;
    if (phase == 0) {
        snprintf(x->key, sizeof x->key, KEY_PREFIX "id:%llu",
                 (unsigned long long)(xorshift(&x->rng) % x->nkeys));
        raw_new_token(x);
        if (!raw_set_nx(x, x->key)) {
            return 1;
        }
    } else {
        raw_release(x, x->key);
    }
    return 0;
}

/* Fills the keyspace with n filler keys (pipelined raw SETs), so DBSIZE really is that large. */
static void populate(redisContext *c, long n) {
    char key[64];
    snprintf(key, sizeof key, KEY_PREFIX "fill:%ld", n - 1);
    const char *ex[] = {"EXISTS", key};
    redisReply *r = raw_cmd(c, 2, ex);
    long long have = r->integer;
    freeReplyObject(r);
    if (have) {
        return;
    }
    uint64_t t0 = now_ns();
    for (long i = 0; i < n;) {
        long batch = 0;
        for (; batch < 1000 && i < n; batch++, i++) {
            redisAppendCommand(c, "SET " KEY_PREFIX "fill:%ld x", i);
        }
        for (long k = 0; k < batch; k++) {
            void *rep;
            if (redisGetReply(c, &rep) != REDIS_OK) {
                die("populate: %s", c->errstr);
            }
            freeReplyObject(rep);
        }
    }
    fprintf(stderr, "  populated %ld keys in %.2f s\n", n, (double)(now_ns() - t0) / 1e9);
}

static long long dbsize(redisContext *c) {
    const char *argv[] = {"DBSIZE"};
    redisReply *r = raw_cmd(c, 1, argv);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* One id count: the raw and the dlock rows; returns dlock / raw ops/s. */
static double keys_round(bench *b, const char *url, redisContext *rc, long n) {
    static const char *const key_phases[] = {"new+acquire", "release+free"};
    const char *tr = transport_of(url);
    populate(rc, n);
    char mode[24];
    snprintf(mode, sizeof mode, "ids=%ld", n);
    size_t from = results_count(b->res);
    loop_out ro, lo;
    raw_ctx rx;
    raw_init(&rx, b->lua, rc, "");
    rx.nkeys = (uint64_t)n;
    lib_ctx lx = {0};
    lx.c = lib_open(b->cfg, url, 0);
    lx.nkeys = (uint64_t)n;
    lx.rng = 0x9e3779b97f4a7c15u;
    lx.ao.attempts = 1;
    run_pair(step_raw_keys, &rx, &ro, step_lib_keys, &lx, &lo, 2, b->cfg->secs * 1.2);
    result *rr = report_loop(b->res, tr, mode, "acquire+release", "raw", &ro, 0, NULL);
    result *r = report_loop(b->res, tr, mode, "acquire+release", "dlock", &lo, 2, key_phases);
    loop_free(&ro);
    loop_free(&lo);
    dlock_client_close(lx.c);
    pair_ratios(b->res, from);
    snprintf(r->note, sizeof r->note, "DBSIZE %lld", dbsize(rc));
    snprintf(rr->note, sizeof rr->note, "%s", r->note);
    return rr->ops > 0 ? r->ops / rr->ops : 0;
}

void mode_keys(bench *b, const char *url) {
    const char *tr = transport_of(url);
    redisContext *rc = raw_connect(url);
    if (rc == NULL) {
        fprintf(stderr, "  keys: skipped on %s (no raw client to populate with)\n", tr);
        return;
    }
    /* dlock's own cost is what must stay flat: the server itself slows down with a big
     * keyspace (cache misses), for raw hiredis just as much, so compare dlock / raw. */
    double first = -1, worst = -1, last = -1;
    long first_n = 0, last_n = 0;
    for (int i = 0; i < b->cfg->nkeys; i++) {
        long n = b->cfg->keys[i];
        double ratio = keys_round(b, url, rc, n);
        if (first < 0) {
            first = ratio;
            first_n = n;
        }
        worst = worst < 0 || ratio < worst ? ratio : worst;
        last = ratio;
        last_n = n;
    }
    redisFree(rc);
    if (first > 0 && last_n != first_n) {
        char name[96];
        snprintf(name, sizeof name, "%s: flat cost, dlock/raw at %ld ids / at %ld", tr, last_n,
                 first_n);
        add_check(b->res, name, last / first, 0.90, 1, "x");
        snprintf(name, sizeof name, "%s: flat cost, slowest / first id count", tr);
        add_check(b->res, name, worst / first, 0.90, 1, "x");
    }
}
