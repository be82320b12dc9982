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
