/* The library side: a client opened the way every mode opens one. */
#include "bench.h"

dlock_client *lib_open(const bench_config *cfg, const char *url, int pool) {
    dlock_client_options o = {0};
    o.rest_token = cfg->rest_token;
    o.pool_size = pool;
    o.command_timeout_ms = 10000;
    dlock_client *c;
    if (dlock_client_open(&c, url, &o) < 0) {
        die("dlock_client_open %s: %s", url, dlock_errmsg());
    }
    return c;
}

void lib_check(int rc, const char *what) {
    if (rc < 0) {
        die("%s: %s: %s", what, dlock_strerror(rc), dlock_errmsg());
    }
}

int step_lib_cycle(void *ctx, int phase) {
    lib_ctx *x = ctx;
    int rc = phase == 0 ? dlock_lock_acquire(x->l, &x->ao) : dlock_lock_release(x->l);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "%s: %s %s\n", phase == 0 ? "acquire" : "release", dlock_strerror(rc),
                dlock_errmsg());
        return 1;
    }
    return 0;
}
