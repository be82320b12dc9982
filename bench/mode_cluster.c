/* Mode cluster (issue 11): dlock through a Redis Cluster seed URL, next to raw hiredis talking
 * straight to the master that owns the id's slot, so the row shows what routing adds (the slot
 * map look-up, the per-node pool) and nothing else. The id is picked so that its slot is NOT on
 * the seed node: every command the library sends must be routed.
 *
 * Two measurements: the uncontended acquire+release cycle (one client, one id, ratio to raw),
 * and the hand-off under contention (W threads on one shared cluster client, blocking acquire,
 * waiters woken over sharded pub/sub on the owning master) next to W raw threads spinning on
 * SET NX on that master. main.c runs this mode only on URLs whose server says cluster_enabled:1,
 * and no other mode on them. */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cl_phases[] = {"acquire (SET NX PX)", "release (EVALSHA)"};

/* Where the id lives: its slot and the master that serves it. */
typedef struct cl_owner {
    char key[96];
    long long slot;
    char host[64]; /* an address, as CLUSTER SLOTS gives it */
    int port;
} cl_owner;

/* The master of `slot` in the seed's CLUSTER SLOTS reply; 0 if found. */
static int slot_master(redisContext *seed, long long slot, char *host, size_t hlen, int *port) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    redisReply *r = raw_cmd(seed, 2, argv);
    int found = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && found < 0; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3 && e->element[0]->integer <= slot &&
            slot <= e->element[1]->integer && e->element[2]->type == REDIS_REPLY_ARRAY &&
            e->element[2]->elements >= 2) {
            snprintf(host, hlen, "%s", e->element[2]->element[0]->str);
            *port = (int)e->element[2]->element[1]->integer;
            found = 0;
        }
    }
    freeReplyObject(r);
    return found;
}

/* The first id "PREFIX:N" whose slot another master than the seed serves. */
static void pick_id(redisContext *seed, int seed_port, const char *prefix, cl_owner *o) {
    for (int n = 0; n < 64; n++) {
        snprintf(o->key, sizeof o->key, "%s:%d", prefix, n);
        const char *argv[] = {"CLUSTER", "KEYSLOT", o->key};
        redisReply *r = raw_cmd(seed, 3, argv);
        o->slot = r->integer;
        freeReplyObject(r);
        if (slot_master(seed, o->slot, o->host, sizeof o->host, &o->port) != 0) {
            die("cluster: no master serves slot %lld", o->slot);
        }
        if (o->port != seed_port) {
            return;
        }
    }
    die("cluster: every id tried hashes to the seed node (a one-master cluster?)");
}

static redisContext *connect_owner(const cl_owner *o) {
    char url[100];
    snprintf(url, sizeof url, "redis://%s:%d", o->host, o->port);
    return raw_connect(url);
}

/* ---- the uncontended cycle ---- */

/* Did the library's release run on the owner, as the script the raw limit sends? */
static int ran_on_owner(redisContext *owner, raw_ctx *rx, lib_ctx *lx) {
    const char *flush[] = {"SCRIPT", "FLUSH"}, *ex[] = {"SCRIPT", "EXISTS", rx->sha_release};
    raw_do(owner, 2, flush);
    int ok = step_lib_cycle(lx, 0) == 0 && step_lib_cycle(lx, 1) == 0;
    redisReply *e = raw_cmd(owner, 3, ex);
    ok &= e->type == REDIS_REPLY_ARRAY && e->elements == 1 && e->element[0]->integer == 1;
    freeReplyObject(e);
    return ok;
}

static void cluster_cycle(bench *b, const char *url, redisContext *seed, int seed_port) {
    cl_owner o;
    pick_id(seed, seed_port, KEY_PREFIX "cluster:cycle", &o);
    size_t from = results_count(b->res);
    raw_ctx rx;
    redisContext *rc = connect_owner(&o);
    raw_init(&rx, b->lua, rc, o.key);
    loop_out ro, lo;
    memset(&ro, 0, sizeof ro);
    run_loop(step_raw_ping, &rx, 1, b->cfg->secs / 2, &ro);
    report_loop(b->res, "cluster", "rtt", "PING (owning master)", "raw", &ro, 0, NULL);
    loop_free(&ro);

    lib_ctx lx = {0};
    lx.c = lib_open(b->cfg, url, 0);
    lib_check(dlock_lock_new(&lx.l, lx.c, o.key, NULL), "lock_new");
    lx.ao.attempts = 1;
    run_pair(step_raw_cycle, &rx, &ro, step_lib_cycle, &lx, &lo, 2, 2 * b->cfg->secs);
    report_loop(b->res, "cluster", "cycle", "acquire+release", "raw", &ro, 2, cl_phases);
    save_series(b->res, &ro.total, "cycle_cluster_raw", "cluster raw hiredis to the owner", 0);
    loop_free(&ro);
    result *r =
        report_loop(b->res, "cluster", "cycle", "acquire+release", "dlock", &lo, 2, cl_phases);
    save_series(b->res, &lo.total, "cycle_cluster_dlock", "cluster dlock via a seed URL", 0);
    loop_free(&lo);
    snprintf(r->note, sizeof r->note, "seed port %d; the id's slot %lld is on %s:%d%s", seed_port,
             o.slot, o.host, o.port,
             ran_on_owner(rc, &rx, &lx) ? "" : "; WARNING: release did not run there");
    dlock_lock_free(lx.l);
    dlock_client_close(lx.c);
    redisFree(rc);

    pair_ratios(b->res, from);
    if (r->ratio >= 0) {
        add_check(b->res, "cluster: one connection, dlock via seed / raw to owner cycles/s",
                  r->ratio, 0.95, 1, "x");
    }
}

/* ---- the hand-off under contention ---- */

typedef struct cl_shared {
    const bench *b;
    const cl_owner *o;
    dlock_client *client; /* shared by the dlock threads, a pooled connection each */
    uint64_t end_ns;
    atomic_int ready, go, inside;
    atomic_ulong overlaps, errors;
} cl_shared;

typedef struct cl_worker {
    cl_shared *sh;
    pthread_t th;
    int idx, raw;
    uint64_t count;
    samples wait; /* ns from the start of an acquire to holding the lock */
} cl_worker;

static void wait_go(cl_shared *sh) {
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go)) {
        sleep_ns(100000);
    }
}

/* The critical section: empty, but checked, so two holders at once are counted. */
static void held(cl_worker *w, uint64_t wait) {
    if (atomic_fetch_add(&w->sh->inside, 1) != 0) {
        atomic_fetch_add(&w->sh->overlaps, 1);
    }
    atomic_fetch_sub(&w->sh->inside, 1);
    w->count++;
    s_add(&w->wait, wait);
}

/* The limit: W raw threads on the owning master, each retrying SET NX at once, no backoff. */
static void raw_worker(cl_worker *w) {
    cl_shared *sh = w->sh;
    raw_ctx x;
    raw_init(&x, sh->b->lua, connect_owner(sh->o), sh->o->key);
    x.seq = (uint64_t)w->idx << 40;
    wait_go(sh);
    for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
        raw_new_token(&x);
        int got;
        while (!(got = raw_set_nx(&x, x.key)) && now_ns() < sh->end_ns + 2000000000u) {
        }
        if (!got) {
            break;
        }
        held(w, now_ns() - t0);
        raw_release(&x, x.key);
    }
    redisFree(x.c);
}

static void *cl_work(void *arg) {
    cl_worker *w = arg;
    cl_shared *sh = w->sh;
    if (w->raw) {
        raw_worker(w);
        return NULL;
    }
    dlock_lock *l;
    lib_check(dlock_lock_new(&l, sh->client, sh->o->key, NULL), "lock_new");
    wait_go(sh);
    for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
        /* Blocking acquire until a little after the end, so waiters at the end get through. */
        dlock_acquire_options ao = {.wait_ms = (int64_t)((sh->end_ns - t0) / 1000000u) + 2000};
        int rc = dlock_lock_acquire(l, &ao);
        if (rc == DLOCK_OK) {
            held(w, now_ns() - t0);
            rc = dlock_lock_release(l);
        }
        if (rc < 0 || rc == DLOCK_NOT_HELD) {
            atomic_fetch_add(&sh->errors, 1);
        }
    }
    dlock_lock_free(l);
    return NULL;
}

typedef struct cl_acc {
    samples wait;
    uint64_t count[MAX_WORKERS], overlaps, errors;
    double elapsed;
} cl_acc;

/* One slice of `secs` with W threads; adds to acc. */
static void contend_slice(bench *b, const char *url, const cl_owner *o, int raw, double secs,
                          cl_acc *acc) {
    const int W = b->cfg->workers;
    cl_shared sh = {.b = b, .o = o};
    if (!raw) {
        sh.client = lib_open(b->cfg, url, W);
    }
    cl_worker w[MAX_WORKERS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < W; i++) {
        w[i] = (cl_worker){.sh = &sh, .idx = i, .raw = raw};
        if (pthread_create(&w[i].th, NULL, cl_work, &w[i]) != 0) {
            die("pthread_create failed");
        }
    }
    while (atomic_load(&sh.ready) < W) {
        sleep_ns(1000000);
    }
    uint64_t start = now_ns();
    sh.end_ns = start + secs_ns(secs);
    atomic_store(&sh.go, 1);
    for (int i = 0; i < W; i++) {
        pthread_join(w[i].th, NULL);
    }
    acc->elapsed += (double)(now_ns() - start) / 1e9;
    for (int i = 0; i < W; i++) {
        acc->count[i] += w[i].count;
        for (size_t k = 0; k < w[i].wait.n; k++) {
            s_add(&acc->wait, w[i].wait.v[k]);
        }
        s_free(&w[i].wait);
    }
    acc->overlaps += atomic_load(&sh.overlaps);
    acc->errors += atomic_load(&sh.errors);
    if (sh.client != NULL) {
        dlock_client_close(sh.client);
    }
}

/* The row of one implementation; *fairness = fewest / most cycles per worker. */
static result *report_slices(bench *b, const char *impl, cl_acc *acc, double *fairness) {
    const int W = b->cfg->workers;
    uint64_t total = 0, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < W; i++) {
        total += acc->count[i];
        lo = acc->count[i] < lo ? acc->count[i] : lo;
        hi = acc->count[i] > hi ? acc->count[i] : hi;
    }
    char op[40], tag[64], title[96];
    snprintf(op, sizeof op, "W=%d wait+cycle", W);
    result *r = add_result(b->res, "cluster", "contend-threads", op, impl, &acc->wait,
                           (double)total / acc->elapsed);
    *fairness = hi > 0 ? (double)lo / (double)hi : 0;
    snprintf(r->note, sizeof r->note, "fairness %.2f (min %llu / max %llu); %llu overlaps%s",
             *fairness, (unsigned long long)lo, (unsigned long long)hi,
             (unsigned long long)acc->overlaps, acc->errors ? "; ERRORS" : "");
    fprintf(stderr, "        %s\n", r->note);
    snprintf(tag, sizeof tag, "wait_cluster_threads_%s", impl);
    snprintf(title, sizeof title, "cluster W=%d threads %s wait", W,
             strcmp(impl, "raw") == 0 ? "raw spin" : impl);
    save_series(b->res, &acc->wait, tag, title, 1);
    s_free(&acc->wait);
    return r;
}

static void cluster_contend(bench *b, const char *url, redisContext *seed, int seed_port) {
    const int W = b->cfg->workers;
    cl_owner o;
    pick_id(seed, seed_port, KEY_PREFIX "cluster:contend", &o);
    size_t from = results_count(b->res);
    cl_acc racc, lacc;
    memset(&racc, 0, sizeof racc);
    memset(&lacc, 0, sizeof lacc);
    for (int round = 0; round < 2; round++) { /* interleaved, like run_pair */
        contend_slice(b, url, &o, 1, b->cfg->secs / 2, &racc);
        contend_slice(b, url, &o, 0, b->cfg->secs / 2, &lacc);
    }
    double fair, raw_fair;
    report_slices(b, "raw", &racc, &raw_fair);
    uint64_t overlaps = lacc.overlaps;
    const result *r = report_slices(b, "dlock", &lacc, &fair);
    pair_ratios(b->res, from);
    char name[96];
    if (r->ratio >= 0) {
        snprintf(name, sizeof name, "cluster: W=%d threads, dlock / raw cycles/s", W);
        add_check(b->res, name, r->ratio, 0.90, 1, "x");
    }
    snprintf(name, sizeof name, "cluster: W=%d threads, dlock p99 wait for the lock", W);
    add_check(b->res, name, r->p99 / 1000.0, 10.0, 0, "ms");
    snprintf(name, sizeof name, "cluster: W=%d threads, dlock fairness (fewest/most)", W);
    add_check(b->res, name, fair, 0.5, 1, "x");
    snprintf(name, sizeof name, "cluster: W=%d threads, dlock overlapping holds", W);
    add_check(b->res, name, (double)overlaps, 0, 0, "");
}

void mode_cluster(bench *b, const char *url) {
    bench_endpoint ep;
    redisContext *seed = raw_connect(url);
    if (seed == NULL || url_endpoint(url, &ep) != 0) {
        die("cluster: %s is not a redis:// URL", url);
    }
    cluster_cycle(b, url, seed, ep.port);
    cluster_contend(b, url, seed, ep.port);
    redisFree(seed);
}
