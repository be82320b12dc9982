/* dlock_bench: throughput, latency, fairness and memory of dlock, each measured next to its limit
 * in the same run: the same Redis commands sent with raw hiredis (no library around them) and
 * redis-benchmark for the server's own ceiling. Driven by bench/run.sh (`make bench`); see
 * bench/README.md for what each mode measures and how to read the output.
 *
 * Every measurement is bounded by --seconds, so a whole run has a known upper bound on time.
 * This file runs the modes (one mode_*.c each) in the order of the table below and writes the
 * output; bench.h says what the files share. */
#include "bench.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum mode_scope {
    ONCE_FIRST_URL,   /* once, on the first --url */
    ONCE_FIRST_REDIS, /* once, on the first URL that is not REST */
    EACH_URL,
    EACH_REST_URL,
    EACH_REDIS_URL,   /* every URL that is not REST */
    EACH_CLUSTER_URL, /* every Redis Cluster URL; no other mode runs on those */
};

/* The run order: memory first, on a fresh heap; then the CLI (it only reads a clock and
 * waits); then every URL in turn. */
static const struct {
    const char *name;
    void (*run)(bench *b, const char *url);
    enum mode_scope scope;
} modes[] = {
    {"memory", mode_memory, ONCE_FIRST_URL},
    {"cli", mode_cli, ONCE_FIRST_REDIS},
    {"server", mode_server, EACH_URL},
    {"cycle", mode_cycle, EACH_URL},
    {"extend", mode_extend, EACH_URL},
    {"debounce", mode_debounce, EACH_URL},
    {"contend", mode_contend, EACH_URL}, /* REST: no raw limit (its waiters are woken over SSE) */
    {"restwait", mode_restwait, EACH_REST_URL},
    {"deadwaiter", mode_deadwaiter, EACH_REDIS_URL}, /* REST: test_rest_wait covers it */
    {"keys", mode_keys, EACH_REDIS_URL},             /* needs a raw client to fill the keyspace */
    {"cluster", mode_cluster, EACH_CLUSTER_URL},
};
#define NMODES (sizeof modes / sizeof modes[0])

static int is_rest(const char *url) {
    return strcmp(transport_of(url), "rest") == 0;
}

/* A redis:// URL whose server says cluster_enabled:1. */
static int is_cluster(const char *url) {
    redisContext *c = is_rest(url) ? NULL : raw_connect(url);
    if (c == NULL) {
        return 0;
    }
    const char *argv[] = {"INFO", "cluster"};
    redisReply *r = raw_cmd(c, 2, argv);
    int yes = r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_enabled:1") != NULL;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static void read_loadavg(char *buf, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f != NULL) {
        if (fgets(buf, (int)n, f) == NULL) {
            buf[0] = '\0';
        }
        buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
    }
}

static void run_once(bench *b, const char *first_redis) {
    for (size_t m = 0; m < NMODES; m++) {
        const char *url = modes[m].scope == ONCE_FIRST_URL     ? b->cfg->urls[0]
                          : modes[m].scope == ONCE_FIRST_REDIS ? first_redis
                                                               : NULL;
        if (url != NULL && bench_list_has(b->cfg->modes, modes[m].name)) {
            fprintf(stderr, "== %s\n", modes[m].name);
            modes[m].run(b, url);
        }
    }
}

static void run_each_url(bench *b) {
    for (int u = 0; u < b->cfg->nurls; u++) {
        const char *url = b->cfg->urls[u];
        int rest = is_rest(url), cluster = is_cluster(url);
        fprintf(stderr, "== %s (%s)\n", cluster ? "cluster" : transport_of(url), url);
        for (size_t m = 0; m < NMODES; m++) {
            enum mode_scope s = modes[m].scope;
            int here = cluster ? s == EACH_CLUSTER_URL
                               : s == EACH_URL || (s == EACH_REST_URL && rest) ||
                                     (s == EACH_REDIS_URL && !rest);
            if (here && bench_list_has(b->cfg->modes, modes[m].name)) {
                modes[m].run(b, url);
            }
        }
    }
}

int main(int argc, char **argv) {
    bench_config cfg;
    bench_parse_args(&cfg, argc, argv);
    for (size_t m = 0; m < NMODES; m++) { /* the table and the list --modes accepts agree */
        if (!bench_list_has(BENCH_ALL_MODES, modes[m].name)) {
            die("mode %s is missing from BENCH_ALL_MODES", modes[m].name);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bench_scripts lua;
    load_scripts(&lua);
    bench b = {.cfg = &cfg, .lua = &lua, .res = results_new(cfg.outdir)};
    char load0[128], load1[128];
    read_loadavg(load0, sizeof load0);

    const char *first_redis = NULL;
    for (int u = 0; u < cfg.nurls && first_redis == NULL; u++) {
        first_redis = is_rest(cfg.urls[u]) || is_cluster(cfg.urls[u]) ? NULL : cfg.urls[u];
    }
    run_once(&b, first_redis);
    run_each_url(&b);

    read_loadavg(load1, sizeof load1);
    print_table(b.res, &cfg, load0, load1);
    if (cfg.json != NULL) {
        write_json(b.res, &cfg, cfg.json, load0, load1);
    }
    write_plot(b.res);
    results_free(b.res);
    free_scripts(&lua);
    return 0;
}
