/* dlock_bench: throughput, latency, fairness and memory of dlock, each measured next to its limit
 * in the same run: the same Redis commands sent with raw hiredis (no library around them) and
 * redis-benchmark for the server's own ceiling. Driven by bench/run.sh (`make bench`); see
 * bench/README.md for what each mode measures and how to read the output.
 *
 * Every measurement is bounded by --seconds, so a whole run has a known upper bound on time. */
#include "dlock.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_URLS    4
#define MAX_WORKERS 64
#define MAX_RESULTS 256
#define KEY_PREFIX  "dlockbench:"

/* The scripts the library sends, read at run time from src/lua (DLOCK_LUA_DIR, set by CMake:
 * the same files the library embeds), so the raw-hiredis limit sends exactly the Redis work the
 * library sends even as the scripts change. mode_cycle checks that the library really ran the
 * same release script (SCRIPT EXISTS after a library release) and says so in the table if not. */
#ifndef DLOCK_LUA_DIR
#define DLOCK_LUA_DIR "src/lua"
#endif

static char *release_body, *extend_body, *incr_body;

static void die(const char *fmt, ...);

static char *read_script(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.lua", DLOCK_LUA_DIR, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        die("cannot read %s: %s", path, strerror(errno));
    }
    static const size_t max = 1 << 17;
    char *body = malloc(max);
    size_t n = body != NULL ? fread(body, 1, max - 1, f) : 0;
    fclose(f);
    if (body == NULL || n == 0) {
        die("cannot read %s", path);
    }
    body[n] = '\0';
    return body;
}

static void load_scripts(void) {
    release_body = read_script("queue_release");
    extend_body = read_script("extend");
    incr_body = read_script("incr_expire");
}

/* ---- Configuration ------------------------------------------------------------------------- */

static struct {
    double secs;
    int workers;
    const char *urls[MAX_URLS];
    int nurls;
    const char *rest_token;
    const char *outdir;
    const char *cli;
    const char *keys;
    const char *modes;
    const char *json;
} cfg = {
    .secs = 2.0,
    .workers = 16,
    .outdir = ".",
    .keys = "1,1000,100000,1000000",
    .modes = "cycle,contend,deadwaiter,keys,extend,debounce,memory,cli,server",
};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dlock_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int mode_on(const char *m) {
    size_t n = strlen(m);
    for (const char *p = cfg.modes; (p = strstr(p, m)) != NULL; p += n) {
        if ((p == cfg.modes || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* ---- Time and samples ---------------------------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t secs_ns(double s) {
    return (uint64_t)(s * 1e9);
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

typedef struct samples {
    uint64_t *v; /* latencies in ns */
    size_t n, cap;
    int sorted;
} samples;

static void s_add(samples *s, uint64_t ns) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            die("out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
    s->sorted = 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, in microseconds. */
static double s_pct(samples *s, double p) {
    if (s->n == 0) {
        return 0;
    }
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, cmp_u64);
        s->sorted = 1;
    }
    double rank = ceil(p / 100.0 * (double)s->n);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    if (i >= s->n) {
        i = s->n - 1;
    }
    return (double)s->v[i] / 1000.0;
}

static double s_sum_s(const samples *s) {
    double t = 0;
    for (size_t i = 0; i < s->n; i++) {
        t += (double)s->v[i];
    }
    return t / 1e9;
}

static void s_free(samples *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- Results ------------------------------------------------------------------------------- */

typedef struct result {
    char transport[8], mode[24], op[40], impl[12];
    double ops, p50, p99, p999; /* ops/s; latencies in us */
    size_t n;
    double ratio; /* to the limit measured in this run; < 0 = none */
    char note[200];
} result;

typedef struct metric {
    char name[64];
    double value;
    char unit[16], note[200];
} metric;

typedef struct check {
    char name[96];
    double value, target;
    int higher_is_better, met;
    char unit[12];
} check;

static result results[MAX_RESULTS];
static metric metrics[MAX_RESULTS];
static check checks[MAX_RESULTS];
static size_t nresults, nmetrics, nchecks;

/* The gnuplot series: "transport mode impl" -> percentile file. */
static struct {
    char file[96], title[96];
    int panel;
} series[32];
static size_t nseries;

static const char *transport_of(const char *url) {
    if (strncmp(url, "unix:", 5) == 0) {
        return "unix";
    }
    if (strncmp(url, "rediss:", 7) == 0) {
        return "tls";
    }
    if (strncmp(url, "http:", 5) == 0 || strncmp(url, "https:", 6) == 0) {
        return "rest";
    }
    return "tcp";
}

static result *add_result(const char *tr, const char *mode, const char *op, const char *impl,
                          samples *s, double ops) {
    if (nresults == MAX_RESULTS) {
        die("too many results");
    }
    result *r = &results[nresults++];
    snprintf(r->transport, sizeof r->transport, "%s", tr);
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->impl, sizeof r->impl, "%s", impl);
    r->ops = ops;
    r->n = s != NULL ? s->n : 0;
    r->p50 = s != NULL ? s_pct(s, 50) : 0;
    r->p99 = s != NULL ? s_pct(s, 99) : 0;
    r->p999 = s != NULL ? s_pct(s, 99.9) : 0;
    r->ratio = -1;
    fprintf(stderr, "  %-5s %-18s %-26s %-6s %10.0f ops/s  p50 %8.1f  p99 %8.1f  p99.9 %8.1f us\n",
            tr, mode, op, impl, ops, r->p50, r->p99, r->p999);
    return r;
}

static void add_metric(const char *name, double value, const char *unit, const char *fmt, ...) {
    if (nmetrics == MAX_RESULTS) {
        die("too many metrics");
    }
    metric *m = &metrics[nmetrics++];
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->unit, sizeof m->unit, "%s", unit);
    m->value = value;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->note, sizeof m->note, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  %-40s %12.1f %-6s %s\n", name, value, unit, m->note);
}

static void add_check(const char *name, double value, double target, int higher_is_better,
                      const char *unit) {
    if (nchecks == MAX_RESULTS) {
        die("too many checks");
    }
    check *c = &checks[nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->unit, sizeof c->unit, "%s", unit);
    c->value = value;
    c->target = target;
    c->higher_is_better = higher_is_better;
    c->met = higher_is_better ? value >= target : value <= target;
}

/* Writes the latency-by-percentile curve of s for the plot: x = 1/(1-p), y = latency in us. */
static void save_series(samples *s, const char *tag, const char *title, int panel) {
    if (s->n == 0 || nseries == sizeof series / sizeof series[0]) {
        return;
    }
    char path[512];
    snprintf(series[nseries].file, sizeof series[nseries].file, "lat_%s.dat", tag);
    snprintf(series[nseries].title, sizeof series[nseries].title, "%s", title);
    series[nseries].panel = panel;
    snprintf(path, sizeof path, "%s/%s", cfg.outdir, series[nseries].file);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f, "# percentile-x latency_us (%s, n=%zu)\n", title, s->n);
    for (int k = 0; k <= 100; k++) {
        double p = 100.0 * (1.0 - pow(10.0, -(double)k / 20.0)); /* 0% .. 99.999% */
        if (k > 0 && (1.0 - p / 100.0) * (double)s->n < 1.0) {
            break; /* beyond what this many samples can show */
        }
        fprintf(f, "%.6f %.3f\n", 1.0 / (1.0 - p / 100.0), s_pct(s, p));
    }
    fprintf(f, "%.6f %.3f\n", (double)s->n, s_pct(s, 100)); /* the maximum */
    fclose(f);
    nseries++;
}

/* ---- Raw hiredis --------------------------------------------------------------------------- */

/* Connects the way the library would for this URL, with nothing around hiredis. NULL for
 * transports raw hiredis cannot speak (REST). */
static redisContext *raw_connect(const char *url) {
    struct timeval tv = {5, 0};
    redisContext *c = NULL;
    char buf[512];
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(buf, sizeof buf, "%s", url + 7);
        buf[strcspn(buf, "?")] = '\0';
        c = redisConnectUnixWithTimeout(buf, tv);
    } else if (strncmp(url, "redis://", 8) == 0) {
        const char *h = strchr(url + 8, '@');
        snprintf(buf, sizeof buf, "%s", h != NULL ? h + 1 : url + 8);
        buf[strcspn(buf, "/")] = '\0';
        int port = 6379;
        char *colon = strrchr(buf, ':');
        if (colon != NULL && strchr(buf, ']') < colon) {
            *colon = '\0';
            port = atoi(colon + 1);
        }
        char *host = buf;
        if (host[0] == '[') {
            host++;
            host[strcspn(host, "]")] = '\0';
        }
        c = redisConnectWithTimeout(host, port, tv);
    } else {
        return NULL;
    }
    if (c == NULL || c->err) {
        die("raw connect %s: %s", url, c != NULL ? c->errstr : "out of memory");
    }
    redisSetTimeout(c, tv);
    return c;
}

static redisReply *raw_cmd(redisContext *c, int argc, const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        die("raw command %s: %s", argv[0], c->errstr);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        die("raw command %s: %s", argv[0], r->str);
    }
    return r;
}

static void raw_do(redisContext *c, int argc, const char **argv) {
    freeReplyObject(raw_cmd(c, argc, argv));
}

static void script_load(redisContext *c, const char *body, char sha[41]) {
    const char *argv[] = {"SCRIPT", "LOAD", body};
    redisReply *r = raw_cmd(c, 3, argv);
    snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
}

static dlock_client *lib_open(const char *url, int pool) {
    dlock_client_options o = {0};
    o.rest_token = cfg.rest_token;
    o.pool_size = pool;
    o.command_timeout_ms = 10000;
    dlock_client *c;
    if (dlock_client_open(&c, url, &o) < 0) {
        die("dlock_client_open %s: %s", url, dlock_errmsg());
    }
    return c;
}

static void lib_check(int rc, const char *what) {
    if (rc < 0) {
        die("%s: %s: %s", what, dlock_strerror(rc), dlock_errmsg());
    }
}

/* ---- The timed loop ------------------------------------------------------------------------ */

/* One iteration is nphases steps; each step's latency and the whole iteration's are recorded.
 * A step returns 0 to go on, or nonzero to stop the loop (a fatal error has been reported). */
typedef int (*step_fn)(void *ctx, int phase);

#define MAX_PHASES 3

typedef struct loop_out {
    samples phase[MAX_PHASES], total;
    double elapsed;
} loop_out;

/* Runs f for secs seconds and appends to o (zero it first); warms up on the first call. */
static void run_loop(step_fn f, void *ctx, int nphases, double secs, loop_out *o) {
    if (o->total.n == 0) {
        for (int i = 0; i < 50; i++) { /* warm up: connections, script cache, caches */
            for (int p = 0; p < nphases; p++) {
                if (f(ctx, p) != 0) {
                    die("warm-up failed");
                }
            }
        }
    }
    uint64_t start = now_ns(), end = start + secs_ns(secs), t = start;
    while (t < end) {
        uint64_t t0 = t;
        for (int p = 0; p < nphases; p++) {
            if (f(ctx, p) != 0) {
                die("step failed");
            }
            uint64_t t1 = now_ns();
            s_add(&o->phase[p], t1 - t);
            t = t1;
        }
        s_add(&o->total, t - t0);
    }
    o->elapsed += (double)(t - start) / 1e9;
}

/* The limit and the library, interleaved in ROUNDS slices of secs/ROUNDS each, so a change in
 * the machine's load during the run hits both alike. `raw` may be NULL (no raw client). */
#define ROUNDS 10

static void run_pair(step_fn raw, void *raw_ctx, loop_out *raw_out, step_fn lib, void *lib_ctx,
                     loop_out *lib_out, int nphases, double secs) {
    memset(lib_out, 0, sizeof *lib_out);
    if (raw != NULL) {
        memset(raw_out, 0, sizeof *raw_out);
    }
    for (int r = 0; r < ROUNDS; r++) {
        if (raw != NULL) {
            run_loop(raw, raw_ctx, nphases, secs / ROUNDS, raw_out);
        }
        run_loop(lib, lib_ctx, nphases, secs / ROUNDS, lib_out);
    }
}

static void loop_free(loop_out *o) {
    for (int p = 0; p < MAX_PHASES; p++) {
        s_free(&o->phase[p]);
    }
    s_free(&o->total);
}

/* Records one loop: the whole iteration as `op`, and each named phase separately (its ops/s is
 * 1 / mean latency of that step). Returns the row of the whole iteration. */
static result *report_loop(const char *tr, const char *mode, const char *op, const char *impl,
                           loop_out *o, int nphases, const char *const *phase_names) {
    result *r = add_result(tr, mode, op, impl, &o->total, (double)o->total.n / o->elapsed);
    for (int p = 0; p < nphases && phase_names != NULL; p++) {
        if (phase_names[p] != NULL) {
            add_result(tr, mode, phase_names[p], impl, &o->phase[p],
                       (double)o->phase[p].n / s_sum_s(&o->phase[p]));
        }
    }
    return r;
}

/* Sets the ratio of the dlock rows just added (from index `from`) to their raw counterparts. */
static void pair_ratios(size_t from) {
    for (size_t i = from; i < nresults; i++) {
        if (strcmp(results[i].impl, "dlock") != 0) {
            continue;
        }
        for (size_t j = from; j < nresults; j++) {
            if (strcmp(results[j].impl, "raw") == 0 &&
                strcmp(results[j].transport, results[i].transport) == 0 &&
                strcmp(results[j].mode, results[i].mode) == 0 &&
                strcmp(results[j].op, results[i].op) == 0 && results[j].ops > 0) {
                results[i].ratio = results[i].ops / results[j].ops;
            }
        }
    }
}

static const result *find_result(const char *tr, const char *mode, const char *op,
                                 const char *impl) {
    for (size_t i = 0; i < nresults; i++) {
        if (strcmp(results[i].transport, tr) == 0 && strcmp(results[i].mode, mode) == 0 &&
            strcmp(results[i].op, op) == 0 && strcmp(results[i].impl, impl) == 0) {
            return &results[i];
        }
    }
    return NULL;
}

/* ---- Steps ----------------------------------------------------------------------------------- */

typedef struct raw_ctx {
    redisContext *c;
    char key[96], token[40], sha_release[41], sha_extend[41], sha_incr[41];
    uint64_t seq, rng, nkeys;
} raw_ctx;

typedef struct lib_ctx {
    dlock_client *c;
    dlock_lock *l;
    dlock_debounce *d;
    dlock_acquire_options ao;
    uint64_t rng, nkeys;
    char key[96];
} lib_ctx;

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void raw_init(raw_ctx *x, redisContext *c, const char *key) {
    memset(x, 0, sizeof *x);
    x->c = c;
    snprintf(x->key, sizeof x->key, "%s", key);
    script_load(c, release_body, x->sha_release);
    script_load(c, extend_body, x->sha_extend);
    script_load(c, incr_body, x->sha_incr);
    x->rng = 0x9e3779b97f4a7c15u;
}

/* A fresh 36-byte token per acquire, like the library's UUID (but no getrandom: the limit). */
static void raw_new_token(raw_ctx *x) {
    snprintf(x->token, sizeof x->token, "00000000-0000-4000-8000-%012llx",
             (unsigned long long)(++x->seq & 0xffffffffffffu));
}

static int raw_set_nx(raw_ctx *x, const char *key) {
    const char *argv[] = {"SET", key, x->token, "NX", "PX", "10000"};
    redisReply *r = raw_cmd(x->c, 6, argv);
    int ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

/* The library's release for ids that have sibling keys (all ids without braces): the hand-off
 * script with the queue, waiters, fence and holder keys "{ID}:NAME" and the grant channel prefix.
 */
static void raw_release(raw_ctx *x, const char *key) {
    char q[128], w[128], fe[128], ho[128], ch[128];
    snprintf(q, sizeof q, "{%s}:queue", key);
    snprintf(w, sizeof w, "{%s}:waiters", key);
    snprintf(fe, sizeof fe, "{%s}:fence", key);
    snprintf(ho, sizeof ho, "{%s}:holder", key);
    snprintf(ch, sizeof ch, "{%s}:grant:", key);
    const char *argv[] = {"EVALSHA", x->sha_release, "5", key, q, w, fe, ho, x->token, ch};
    raw_do(x->c, 10, argv);
}

static int step_raw_cycle(void *ctx, int phase) {
    raw_ctx *x = ctx;
    if (phase == 0) {
        raw_new_token(x);
        if (!raw_set_nx(x, x->key)) {
            fprintf(stderr, "raw SET NX: key %s is taken\n", x->key);
            return 1;
        }
    } else {
        raw_release(x, x->key);
    }
    return 0;
}

static int step_lib_cycle(void *ctx, int phase) {
    lib_ctx *x = ctx;
    int rc = phase == 0 ? dlock_lock_acquire(x->l, &x->ao) : dlock_lock_release(x->l);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "%s: %s %s\n", phase == 0 ? "acquire" : "release", dlock_strerror(rc),
                dlock_errmsg());
        return 1;
    }
    return 0;
}

static int step_raw_ping(void *ctx, int phase) {
    (void)phase;
    raw_ctx *x = ctx;
    const char *argv[] = {"PING"};
    raw_do(x->c, 1, argv);
    return 0;
}

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

static atomic_long debounce_fired;

static void on_debounce(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    (void)userdata;
    atomic_fetch_add(&debounce_fired, 1);
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

/* ---- (a) one client, acquire + release on one id --------------------------------------------
 */

static const char *const cycle_phases[] = {"acquire (SET NX PX)", "release (EVALSHA)"};

static void mode_cycle(const char *url) {
    const char *tr = transport_of(url);
    size_t from = nresults;
    char key[96], tag[64], title[96];
    snprintf(key, sizeof key, KEY_PREFIX "cycle:%s", tr);
    loop_out ro, lo;
    raw_ctx rx;
    redisContext *rc = raw_connect(url);
    if (rc != NULL) {
        raw_init(&rx, rc, key);
        memset(&ro, 0, sizeof ro);
        run_loop(step_raw_ping, &rx, 1, cfg.secs / 2, &ro);
        report_loop(tr, "rtt", "PING", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    lib_ctx lx = {0};
    lx.c = lib_open(url, 0);
    lib_check(dlock_lock_new(&lx.l, lx.c, key, NULL), "lock_new");
    lx.ao.attempts = 1;
    run_pair(rc != NULL ? step_raw_cycle : NULL, &rx, &ro, step_lib_cycle, &lx, &lo, 2,
             2 * cfg.secs);
    if (rc != NULL) {
        report_loop(tr, "cycle", "acquire+release", "raw", &ro, 2, cycle_phases);
        snprintf(tag, sizeof tag, "cycle_%s_raw", tr);
        snprintf(title, sizeof title, "%s raw hiredis SET NX PX + EVALSHA", tr);
        save_series(&ro.total, tag, title, 0);
        loop_free(&ro);
    }
    result *r = report_loop(tr, "cycle", "acquire+release", "dlock", &lo, 2, cycle_phases);
    if (rc != NULL) {
        /* Did the library run the very release script the raw limit sends? */
        const char *flush[] = {"SCRIPT", "FLUSH"}, *ex[] = {"SCRIPT", "EXISTS", rx.sha_release};
        raw_do(rc, 2, flush);
        step_lib_cycle(&lx, 0);
        step_lib_cycle(&lx, 1);
        redisReply *e = raw_cmd(rc, 3, ex);
        int same = e->type == REDIS_REPLY_ARRAY && e->elements == 1 && e->element[0]->integer == 1;
        freeReplyObject(e);
        snprintf(r->note, sizeof r->note, "%s",
                 same ? "raw sends the library's release script"
                      : "WARNING: the library ran another release script than the raw limit");
        redisFree(rc);
    }
    snprintf(tag, sizeof tag, "cycle_%s_dlock", tr);
    snprintf(title, sizeof title, "%s dlock acquire + release", tr);
    save_series(&lo.total, tag, title, 0);
    loop_free(&lo);
    dlock_lock_free(lx.l);
    dlock_client_close(lx.c);

    pair_ratios(from);
    if (r->ratio >= 0) {
        char name[96];
        snprintf(name, sizeof name, "%s: one connection, dlock / raw hiredis cycles/s", tr);
        add_check(name, r->ratio, 0.95, 1, "x");
    }
}

/* ---- (b) W workers contending for one id, as threads and as processes -----------------------
 */

#define SAMPLES_PER_WORKER (1u << 17)

typedef struct contend_shared {
    atomic_int ready, go;
    uint64_t end_ns;
    struct {
        uint64_t count, nsamp, errors;
    } w[MAX_WORKERS];
    uint64_t samp[]; /* MAX_WORKERS * SAMPLES_PER_WORKER wait times, ns */
} contend_shared;

typedef struct contend_arg {
    contend_shared *sh;
    int idx, raw;
    const char *url;
    dlock_client *client; /* shared by threads; NULL = open one (processes) */
} contend_arg;

static void contend_record(contend_shared *sh, int idx, uint64_t wait) {
    sh->w[idx].count++;
    if (sh->w[idx].nsamp < SAMPLES_PER_WORKER) {
        sh->samp[(size_t)idx * SAMPLES_PER_WORKER + sh->w[idx].nsamp++] = wait;
    }
}

static void contend_wait_go(contend_shared *sh) {
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go)) {
        sleep_ns(100000);
    }
}

static void *contend_worker(void *arg) {
    contend_arg *a = arg;
    contend_shared *sh = a->sh;
    const char *key = KEY_PREFIX "contend";
    if (a->raw) {
        raw_ctx x;
        raw_init(&x, raw_connect(a->url), key);
        x.seq = (uint64_t)a->idx << 40;
        contend_wait_go(sh);
        for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
            raw_new_token(&x);
            /* The limit: retry at once, no backoff. */
            while (!raw_set_nx(&x, key)) {
                if (now_ns() > sh->end_ns + 2000000000u) {
                    goto out_raw;
                }
            }
            contend_record(sh, a->idx, now_ns() - t0);
            raw_release(&x, key);
        }
    out_raw:
        redisFree(x.c);
        return NULL;
    }
    dlock_client *c = a->client != NULL ? a->client : lib_open(a->url, 0);
    dlock_lock *l;
    lib_check(dlock_lock_new(&l, c, key, NULL), "lock_new");
    contend_wait_go(sh);
    for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
        /* Blocking acquire until a little after the end, so waiters at the end get through. */
        dlock_acquire_options ao = {.wait_ms = (int64_t)((sh->end_ns - t0) / 1000000u) + 2000};
        int rc = dlock_lock_acquire(l, &ao);
        uint64_t t1 = now_ns();
        if (rc == DLOCK_OK) {
            contend_record(sh, a->idx, t1 - t0);
            rc = dlock_lock_release(l);
        }
        if (rc < 0 || rc == DLOCK_NOT_HELD) {
            sh->w[a->idx].errors++;
        }
    }
    dlock_lock_free(l);
    if (a->client == NULL) {
        dlock_client_close(c);
    }
    return NULL;
}

typedef struct contend_acc {
    samples s;
    uint64_t count[MAX_WORKERS], errors;
    double elapsed;
} contend_acc;

/* One contention slice of `secs`; adds its counts, waits and time to acc. */
static void run_contend(const char *url, int raw, int procs, double secs, contend_acc *acc) {
    int W = cfg.workers;
    size_t size = sizeof(contend_shared) + (size_t)MAX_WORKERS * SAMPLES_PER_WORKER * 8;
    contend_shared *sh =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (sh == MAP_FAILED) {
        die("mmap: %s", strerror(errno));
    }
    contend_arg args[MAX_WORKERS];
    pthread_t th[MAX_WORKERS];
    pid_t pids[MAX_WORKERS];
    dlock_client *shared_client = NULL;
    if (!raw && !procs) {
        shared_client = lib_open(url, W); /* a pooled connection per thread, all kept */
    }
    fflush(NULL);
    for (int i = 0; i < W; i++) {
        args[i] = (contend_arg){sh, i, raw, url, shared_client};
        if (procs) {
            pids[i] = fork();
            if (pids[i] < 0) {
                die("fork: %s", strerror(errno));
            }
            if (pids[i] == 0) {
                contend_worker(&args[i]);
                _exit(0);
            }
        } else if (pthread_create(&th[i], NULL, contend_worker, &args[i]) != 0) {
            die("pthread_create failed");
        }
    }
    while (atomic_load(&sh->ready) < W) {
        sleep_ns(1000000);
    }
    uint64_t start = now_ns();
    sh->end_ns = start + secs_ns(secs);
    atomic_store(&sh->go, 1);
    for (int i = 0; i < W; i++) {
        if (procs) {
            int st;
            waitpid(pids[i], &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                die("contention worker process %d failed", i);
            }
        } else {
            pthread_join(th[i], NULL);
        }
    }
    acc->elapsed += (double)(now_ns() - start) / 1e9;
    if (shared_client != NULL) {
        dlock_client_close(shared_client);
    }
    for (int i = 0; i < W; i++) {
        acc->count[i] += sh->w[i].count;
        acc->errors += sh->w[i].errors;
        for (uint64_t k = 0; k < sh->w[i].nsamp; k++) {
            s_add(&acc->s, sh->samp[(size_t)i * SAMPLES_PER_WORKER + k]);
        }
    }
    munmap(sh, size);
}

static void report_contend(const char *tr, const char *impl, int procs, contend_acc *acc) {
    int raw = strcmp(impl, "raw") == 0;
    int W = cfg.workers;
    uint64_t total = 0, lo = UINT64_MAX, hi = 0;
    char counts[400] = "";
    size_t cl = 0;
    for (int i = 0; i < W; i++) {
        total += acc->count[i];
        lo = acc->count[i] < lo ? acc->count[i] : lo;
        hi = acc->count[i] > hi ? acc->count[i] : hi;
        if (cl < sizeof counts - 24) {
            cl += (size_t)snprintf(counts + cl, sizeof counts - cl, "%s%llu", i ? " " : "",
                                   (unsigned long long)acc->count[i]);
        }
    }
    char mode[24];
    snprintf(mode, sizeof mode, "contend-%s", procs ? "procs" : "threads");
    char op[40];
    snprintf(op, sizeof op, "W=%d wait+cycle", W);
    result *r = add_result(tr, mode, op, impl, &acc->s, (double)total / acc->elapsed);
    double fair = hi > 0 ? (double)lo / (double)hi : 0;
    snprintf(r->note, sizeof r->note, "fairness %.2f (min %llu / max %llu)%s; per worker: %s", fair,
             (unsigned long long)lo, (unsigned long long)hi, acc->errors ? "; ERRORS" : "", counts);
    fprintf(stderr, "        %s\n", r->note);
    char tag[64], title[96];
    snprintf(tag, sizeof tag, "wait_%s_%s_%s", tr, procs ? "procs" : "threads", impl);
    snprintf(title, sizeof title, "%s W=%d %s %s wait", tr, W, procs ? "processes" : "threads",
             raw ? "raw spin" : impl);
    save_series(&acc->s, tag, title, 1);
    s_free(&acc->s);
}

/* The library's internal switch between the two hand-off protocols (src/queue.h): 0 = a grant
 * message is the grant (what dlock does), 1 = it is a wake-up that a try confirms. */
extern int dlock__queue_confirm_grants;

static void mode_contend(const char *url) {
    const char *tr = transport_of(url);
    int can_raw = strcmp(tr, "rest") != 0;
    for (int procs = 0; procs <= 1; procs++) {
        size_t from = nresults;
        contend_acc racc, lacc, cacc;
        memset(&racc, 0, sizeof racc);
        memset(&lacc, 0, sizeof lacc);
        memset(&cacc, 0, sizeof cacc);
        int compare = can_raw && !procs;          /* the confirming protocol, for the record */
        for (int round = 0; round < 2; round++) { /* interleaved, like run_pair */
            if (can_raw) {
                run_contend(url, 1, procs, cfg.secs / 2, &racc);
            }
            if (compare) {
                dlock__queue_confirm_grants = 1;
                run_contend(url, 0, procs, cfg.secs / 2, &cacc);
                dlock__queue_confirm_grants = 0;
            }
            run_contend(url, 0, procs, cfg.secs / 2, &lacc);
        }
        if (can_raw) {
            report_contend(tr, "raw", procs, &racc);
        }
        if (compare) {
            report_contend(tr, "confirm", procs, &cacc);
        }
        report_contend(tr, "dlock", procs, &lacc);
        pair_ratios(from);
        const result *r = &results[nresults - 1];
        const char *kind = procs ? "processes" : "threads";
        char name[96];
        if (r->ratio >= 0) {
            snprintf(name, sizeof name, "%s: W=%d %s, dlock / raw cycles/s", tr, cfg.workers, kind);
            add_check(name, r->ratio, 0.90, 1, "x");
        }
        snprintf(name, sizeof name, "%s: W=%d %s, dlock p99 wait for the lock", tr, cfg.workers,
                 kind);
        add_check(name, r->p99 / 1000.0, 10.0, 0, "ms");
        double lo, hi;
        if (sscanf(strstr(r->note, "(min"), "(min %lf / max %lf", &lo, &hi) == 2) {
            snprintf(name, sizeof name, "%s: W=%d %s, dlock fairness (fewest/most)", tr,
                     cfg.workers, kind);
            add_check(name, hi > 0 ? lo / hi : 0, 0.5, 1, "x");
        }
    }
}

/* ---- (b2) what a waiter that dies while queued costs the next live one ---------------------
 * Each round: a holder holds the id; two waiter processes queue (wait 40 s, the default 10 s
 * lease); the first is SIGKILLed; `gap` ms later the holder releases. The figure is the time
 * from that release to the second waiter's acquisition: before issue 10 it was the dead
 * waiter's whole lease. */

#define DEAD_ROUNDS 12

static long long queue_len(redisContext *c, const char *key) {
    char q[128];
    snprintf(q, sizeof q, "{%s}:queue", key);
    const char *argv[] = {"LLEN", q};
    redisReply *r = raw_cmd(c, 2, argv);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void await_queue_len(redisContext *c, const char *key, long long n) {
    uint64_t until = now_ns() + secs_ns(10);
    while (queue_len(c, key) < n) {
        if (now_ns() > until) {
            die("deadwaiter: waiters did not queue on %s", key);
        }
        sleep_ns(2000000);
    }
}

/* A waiter process: blocking acquire, then the time it returned, into *at. */
static pid_t spawn_dead_waiter(const char *url, const char *key, volatile uint64_t *at) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dlock_client *c = lib_open(url, 0);
        dlock_lock *l;
        lib_check(dlock_lock_new(&l, c, key, NULL), "lock_new");
        dlock_acquire_options ao = {.wait_ms = 40000};
        int rc = dlock_lock_acquire(l, &ao);
        *at = rc == DLOCK_OK ? now_ns() : 0;
        if (rc == DLOCK_OK) {
            dlock_lock_release(l);
        }
        _exit(0);
    }
    return pid;
}

static uint64_t dead_waiter_round(const char *url, redisContext *raw, int round, int gap_ms,
                                  volatile uint64_t *at) {
    char key[64];
    snprintf(key, sizeof key, KEY_PREFIX "dead:%d:%d", (int)getpid(), round);
    dlock_client *c = lib_open(url, 0);
    dlock_lock *holder;
    lib_check(dlock_lock_new(&holder, c, key, NULL), "lock_new");
    lib_check(dlock_lock_acquire(holder, NULL), "acquire");
    *at = 0;
    pid_t dead = spawn_dead_waiter(url, key, at);
    await_queue_len(raw, key, 1);
    pid_t live = spawn_dead_waiter(url, key, at);
    await_queue_len(raw, key, 2);
    kill(dead, SIGKILL);
    waitpid(dead, NULL, 0);
    sleep_ns((uint64_t)gap_ms * 1000000u);
    uint64_t released = now_ns();
    lib_check(dlock_lock_release(holder), "release");
    int st;
    waitpid(live, &st, 0);
    dlock_lock_free(holder);
    dlock_client_close(c);
    if (*at == 0) {
        die("deadwaiter: the live waiter did not get the lock");
    }
    return *at - released;
}

static void mode_deadwaiter(const char *url) {
    const char *tr = transport_of(url);
    redisContext *raw = raw_connect(url);
    volatile uint64_t *at =
        mmap(NULL, sizeof *at, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) {
        die("mmap: %s", strerror(errno));
    }
    static const int gaps[] = {0, 100, 2500};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        samples s;
        memset(&s, 0, sizeof s);
        int rounds = gaps[g] > 1000 ? 3 : DEAD_ROUNDS;
        uint64_t worst = 0;
        for (int i = 0; i < rounds; i++) {
            uint64_t idle = dead_waiter_round(url, raw, (int)g * 100 + i, gaps[g], at);
            s_add(&s, idle);
            worst = idle > worst ? idle : worst;
        }
        char op[48], name[96];
        snprintf(op, sizeof op, "kill, %d ms, release", gaps[g]);
        result *r = add_result(tr, "dead-waiter", op, "dlock", &s, 0);
        snprintf(r->note, sizeof r->note, "release -> next live waiter; max %.1f ms over %d",
                 (double)worst / 1e6, rounds);
        fprintf(stderr, "        %s\n", r->note);
        snprintf(name, sizeof name,
                 "%s: dead waiter (released %d ms after its kill) costs the "
                 "next, max",
                 tr, gaps[g]);
        add_check(name, (double)worst / 1e6, 1000, 0, "ms");
        s_free(&s);
    }
    munmap((void *)at, sizeof *at);
    redisFree(raw);
}

/* ---- (c) many distinct ids ------------------------------------------------------------------ */

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

static void mode_keys(const char *url) {
    const char *tr = transport_of(url);
    redisContext *rc = raw_connect(url);
    if (rc == NULL) {
        fprintf(stderr, "  keys: skipped on %s (no raw client to populate with)\n", tr);
        return;
    }
    static const char *const key_phases[] = {"new+acquire", "release+free"};
    double first = -1, worst = -1, last = -1;
    long first_n = 0, last_n = 0;
    for (const char *p = cfg.keys; *p != '\0';) {
        long n = strtol(p, (char **)&p, 10);
        p += *p == ',';
        if (n < 1) {
            continue;
        }
        populate(rc, n);
        char mode[24];
        snprintf(mode, sizeof mode, "ids=%ld", n);
        size_t from = nresults;
        loop_out ro, lo;
        raw_ctx rx;
        raw_init(&rx, rc, "");
        rx.nkeys = (uint64_t)n;
        lib_ctx lx = {0};
        lx.c = lib_open(url, 0);
        lx.nkeys = (uint64_t)n;
        lx.rng = 0x9e3779b97f4a7c15u;
        lx.ao.attempts = 1;
        run_pair(step_raw_keys, &rx, &ro, step_lib_keys, &lx, &lo, 2, cfg.secs * 1.2);
        result *rr = report_loop(tr, mode, "acquire+release", "raw", &ro, 0, NULL);
        result *r = report_loop(tr, mode, "acquire+release", "dlock", &lo, 2, key_phases);
        loop_free(&ro);
        loop_free(&lo);
        dlock_client_close(lx.c);
        pair_ratios(from);
        snprintf(r->note, sizeof r->note, "DBSIZE %lld", dbsize(rc));
        snprintf(rr->note, sizeof rr->note, "%s", r->note);
        /* dlock's own cost is what must stay flat: the server itself slows down with a big
         * keyspace (cache misses), for raw hiredis just as much, so compare dlock / raw. */
        double ratio = rr->ops > 0 ? r->ops / rr->ops : 0;
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
        add_check(name, last / first, 0.90, 1, "x");
        snprintf(name, sizeof name, "%s: flat cost, slowest / first id count", tr);
        add_check(name, worst / first, 0.90, 1, "x");
    }
}

/* ---- (d) extend and status ----------------------------------------------------------------- */

static void mode_extend(const char *url) {
    const char *tr = transport_of(url);
    size_t from = nresults;
    char key[96];
    snprintf(key, sizeof key, KEY_PREFIX "extend:%s", tr);
    loop_out ro, lo;
    raw_ctx rx;
    redisContext *rc = raw_connect(url);
    if (rc != NULL) {
        char rkey[128];
        snprintf(rkey, sizeof rkey, "%s:raw", key);
        raw_init(&rx, rc, rkey);
        raw_new_token(&rx);
        raw_set_nx(&rx, rkey);
    }
    lib_ctx lx = {0};
    lx.c = lib_open(url, 0);
    lib_check(dlock_lock_new(&lx.l, lx.c, key, NULL), "lock_new");
    dlock_acquire_options ao = {.lease_ms = 600000};
    lib_check(dlock_lock_acquire(lx.l, &ao), "acquire");
    run_pair(rc != NULL ? step_raw_extend : NULL, &rx, &ro, step_lib_extend, &lx, &lo, 1, cfg.secs);
    if (rc != NULL) {
        report_loop(tr, "extend", "extend (EVALSHA)", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    result *re = report_loop(tr, "extend", "extend (EVALSHA)", "dlock", &lo, 0, NULL);
    loop_free(&lo);
    run_pair(rc != NULL ? step_raw_status : NULL, &rx, &ro, step_lib_status, &lx, &lo, 1, cfg.secs);
    if (rc != NULL) {
        report_loop(tr, "status", "status (GET)", "raw", &ro, 0, NULL);
        loop_free(&ro);
        raw_release(&rx, rx.key);
        redisFree(rc);
    }
    result *rs = report_loop(tr, "status", "status (GET)", "dlock", &lo, 0, NULL);
    loop_free(&lo);
    dlock_lock_release(lx.l);
    dlock_lock_free(lx.l);
    dlock_client_close(lx.c);
    pair_ratios(from);
    char name[96];
    if (re->ratio >= 0) {
        snprintf(name, sizeof name, "%s: extend, dlock / raw ops/s", tr);
        add_check(name, re->ratio, 0.95, 1, "x");
        snprintf(name, sizeof name, "%s: status, dlock / raw ops/s", tr);
        add_check(name, rs->ratio, 0.95, 1, "x");
    }
}

/* ---- (e) debounce ---------------------------------------------------------------------------- */

static void mode_debounce(const char *url) {
    const char *tr = transport_of(url);
    size_t from = nresults;
    char key[96];
    snprintf(key, sizeof key, KEY_PREFIX "debounce:%s", tr);
    loop_out ro, lo;
    redisContext *rc = raw_connect(url);
    raw_ctx rx;
    if (rc != NULL) {
        char rkey[128];
        snprintf(rkey, sizeof rkey, "%s:raw", key);
        raw_init(&rx, rc, rkey);
        rx.seq = 0; /* no wait: the limit for the asynchronous path (INCR + GET per call) */
        memset(&ro, 0, sizeof ro);
        run_loop(step_raw_debounce, &rx, 1, cfg.secs / 2, &ro);
        report_loop(tr, "debounce-async", "call (INCR+GET)", "raw", &ro, 0, NULL);
        loop_free(&ro);
        rx.seq = 1000000; /* the 1 ms wait */
    }
    lib_ctx lx = {0};
    lx.c = lib_open(url, 0);
    dlock_debounce_options dop = {.wait_ms = 1, .callback = on_debounce};
    lib_check(dlock_debounce_new(&lx.d, lx.c, key, &dop), "debounce_new");
    run_pair(rc != NULL ? step_raw_debounce : NULL, &rx, &ro, step_lib_debounce_sync, &lx, &lo, 1,
             cfg.secs);
    if (rc != NULL) {
        report_loop(tr, "debounce-sync", "call_sync wait=1ms", "raw", &ro, 0, NULL);
        loop_free(&ro);
    }
    result *r = report_loop(tr, "debounce-sync", "call_sync wait=1ms", "dlock", &lo, 0, NULL);
    snprintf(r->note, sizeof r->note, "latency includes the 1 ms wait");
    loop_free(&lo);

    /* Asynchronous: batches of calls, each batch flushed; throughput is decided calls/s. */
    samples enq = {0};
    uint64_t start = now_ns(), end = start + secs_ns(cfg.secs / 2), t = start;
    long calls = 0;
    atomic_store(&debounce_fired, 0);
    while (t < end) {
        for (int i = 0; i < 200; i++) {
            uint64_t t0 = now_ns();
            lib_check(dlock_debounce_call(lx.d, &calls, sizeof calls), "debounce_call");
            s_add(&enq, now_ns() - t0);
            calls++;
        }
        dlock_debounce_flush(lx.d);
        t = now_ns();
    }
    double el = (double)(t - start) / 1e9;
    r = add_result(tr, "debounce-async", "call (INCR+GET)", "dlock", &enq, (double)calls / el);
    snprintf(r->note, sizeof r->note,
             "ops/s = decided calls/s incl. flush; latency = call() enqueue only; %ld callbacks",
             (long)atomic_load(&debounce_fired));
    s_free(&enq);
    dlock_debounce_free(lx.d);
    dlock_client_close(lx.c);
    if (rc != NULL) {
        const char *del[] = {"DEL", key, rx.key};
        raw_do(rc, 3, del);
        redisFree(rc);
    }
    pair_ratios(from);
    const result *rs = find_result(tr, "debounce-sync", "call_sync wait=1ms", "dlock");
    if (rs != NULL && rs->ratio >= 0) {
        char name[96];
        snprintf(name, sizeof name, "%s: debounce call_sync, dlock / raw calls/s", tr);
        add_check(name, rs->ratio, 0.95, 1, "x");
    }
}

/* ---- Memory ---------------------------------------------------------------------------------- */

/* Bytes the allocator has handed out, over all arenas (glibc sums them), mmapped chunks too. */
static double heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

static void mode_memory(const char *url) {
    enum { NCLIENTS = 20, NLOCKS = 1000, NCALLS = 1000 };
    /* Warm up: library one-time state (script hashes, thread-local errmsg, TLS/curl init). */
    dlock_client *w = lib_open(url, 0);
    dlock_lock *wl;
    lib_check(dlock_lock_new(&wl, w, KEY_PREFIX "mem:warm", NULL), "lock_new");
    lib_check(dlock_lock_acquire(wl, NULL), "acquire");
    dlock_lock_release(wl);
    dlock_lock_free(wl);
    dlock_client_close(w);
    malloc_trim(0);

    dlock_client *cs[NCLIENTS];
    double m0 = heap_bytes();
    for (int i = 0; i < NCLIENTS; i++) {
        cs[i] = lib_open(url, 0);
    }
    double m1 = heap_bytes();
    for (int i = 0; i < NCLIENTS; i++) {
        dlock_lock *l;
        lib_check(dlock_lock_new(&l, cs[i], KEY_PREFIX "mem:c", NULL), "lock_new");
        lib_check(dlock_lock_acquire(l, NULL), "acquire");
        dlock_lock_release(l);
        dlock_lock_free(l);
    }
    double m2 = heap_bytes();
    add_metric("heap per client (open)", (m1 - m0) / NCLIENTS, "bytes",
               "%d clients, one connection each, mallinfo2 delta", NCLIENTS);
    add_metric("heap per client (after a cycle)", (m2 - m0) / NCLIENTS, "bytes",
               "incl. hiredis reader buffer after the first reply");
    for (int i = 1; i < NCLIENTS; i++) {
        dlock_client_close(cs[i]);
    }
    dlock_client *c = cs[0];

    static dlock_lock *ls[NLOCKS];
    char id[64];
    m0 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        snprintf(id, sizeof id, KEY_PREFIX "mem:l:%04d", i); /* 19-byte ids */
        lib_check(dlock_lock_new(&ls[i], c, id, NULL), "lock_new");
    }
    m1 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        lib_check(dlock_lock_acquire(ls[i], NULL), "acquire");
    }
    m2 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        dlock_lock_release(ls[i]);
        dlock_lock_free(ls[i]);
    }
    add_metric("heap per lock handle (idle)", (m1 - m0) / NLOCKS, "bytes",
               "%d handles, 19-byte ids", NLOCKS);
    add_metric("heap per lock handle (held)", (m2 - m0) / NLOCKS, "bytes",
               "after acquire: + the token copy");

    dlock_debounce *d;
    dlock_debounce_options dop = {.wait_ms = 500, .callback = on_debounce};
    lib_check(dlock_debounce_new(&d, c, KEY_PREFIX "mem:d", &dop), "debounce_new");
    char arg[64] = {0};
    lib_check(dlock_debounce_call(d, arg, sizeof arg), "debounce_call"); /* starts the thread */
    dlock_debounce_flush(d);
    m0 = heap_bytes();
    for (int i = 0; i < NCALLS; i++) {
        lib_check(dlock_debounce_call(d, arg, sizeof arg), "debounce_call");
    }
    m1 = heap_bytes();
    add_metric("heap per pending debounce call", (m1 - m0) / NCALLS, "bytes",
               "%d queued calls with a %zu-byte argument, wait 500 ms", NCALLS, sizeof arg);
    dlock_debounce_free(d);
    dlock_client_close(c);
}

/* ---- CLI: peak RSS and wall time of `dlock run ID -- true` ----------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void mode_cli(const char *url) {
    if (cfg.cli == NULL || access(cfg.cli, X_OK) != 0) {
        add_metric("cli: dlock run ID -- true", 0, "skipped", "CLI binary not built (%s)",
                   cfg.cli != NULL ? cfg.cli : "no --cli");
        return;
    }
    redisContext *rc = raw_connect(url);
    if (rc == NULL) {
        return;
    }
    raw_ctx rx;
    raw_init(&rx, rc, "");
    loop_out o;
    memset(&o, 0, sizeof o);
    run_loop(step_raw_ping, &rx, 1, 0.5, &o);
    double rtt_us = s_pct(&o.total, 50);
    loop_free(&o);
    redisFree(rc);

    enum { RUNS = 21 };
    double wall[RUNS];
    long max_rss = 0;
    for (int i = 0; i < RUNS; i++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                dup2(devnull, 1);
            }
            execl(cfg.cli, cfg.cli, "run", "--url", url, KEY_PREFIX "cli", "--", "true",
                  (char *)NULL);
            _exit(127);
        }
        int st;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &st, 0, &ru) < 0) {
            die("cannot run %s", cfg.cli);
        }
        wall[i] = (double)(now_ns() - t0) / 1e3;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            add_metric("cli: dlock run ID -- true", 0, "failed", "%s exited with status %d",
                       cfg.cli, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            return;
        }
        max_rss = ru.ru_maxrss > max_rss ? ru.ru_maxrss : max_rss;
    }
    qsort(wall, RUNS, sizeof wall[0], cmp_double);
    add_metric("rtt: raw hiredis PING p50", rtt_us, "us", "%s", transport_of(url));
    add_metric("cli: dlock run peak RSS", (double)max_rss, "KiB", "max of %d runs (wait4)", RUNS);
    add_metric("cli: dlock run wall p50", wall[RUNS / 2] / 1000.0, "ms", "%d runs, fork to exit",
               RUNS);
    add_metric("cli: dlock run wall / (2 x RTT)", wall[RUNS / 2] / (2 * rtt_us), "x",
               "process start + connect + SET + EVALSHA + exit, over two PINGs");
}

/* ---- Server ceiling: redis-benchmark ---------------------------------------------------------
 */

static void mode_server(const char *url) {
    char where[600];
    const char *tr = transport_of(url);
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(where, sizeof where, "-s '%s'", url + 7);
    } else if (strncmp(url, "redis://", 8) == 0) {
        char hp[256];
        snprintf(hp, sizeof hp, "%s", url + 8);
        hp[strcspn(hp, "/")] = '\0';
        char *colon = strrchr(hp, ':');
        const char *port = "6379";
        if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
        }
        snprintf(where, sizeof where, "-h '%s' -p '%s'", hp, port);
    } else {
        return;
    }
    static const struct {
        const char *label, *args;
    } runs[] = {
        {"c=1", "-c 1 -n 30000"},
        {"c=50", "-c 50 -n 100000"},
        {"c=50 P=16", "-c 50 -n 300000 -P 16"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char cmd[900];
        snprintf(cmd, sizeof cmd, "redis-benchmark %s -t set,get %s -q 2>/dev/null", where,
                 runs[i].args);
        FILE *p = popen(cmd, "r");
        if (p == NULL) {
            return;
        }
        char line[512];
        while (fgets(line, sizeof line, p) != NULL) {
            /* "SET: 86956.52 requests per second, p50=0.287 msec" (maybe after \r progress) */
            char *s = strrchr(line, '\r');
            s = s != NULL ? s + 1 : line;
            char name[16];
            double rps, p50 = 0;
            if (sscanf(s, "%15[A-Z]: %lf requests per second, p50=%lf", name, &rps, &p50) >= 2) {
                char op[40];
                snprintf(op, sizeof op, "%s %s", name, runs[i].label);
                result *r = add_result(tr, "server", op, "redis-bm", NULL, rps);
                r->p50 = p50 * 1000.0;
                r->p99 = r->p999 = -1; /* -q prints the median only */
                snprintf(r->note, sizeof r->note, "redis-benchmark %s", runs[i].args);
            }
        }
        if (pclose(p) != 0 && i == 0) {
            fprintf(stderr, "  redis-benchmark failed or absent: server ceiling skipped\n");
            return;
        }
    }
}

/* ---- Output ---------------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(f, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            fprintf(f, "\\u%04x", *s);
        } else {
            fputc(*s, f);
        }
    }
    fputc('"', f);
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

static void print_table(const char *load0, const char *load1) {
    printf("\ndlock %s benchmark: %.1f s per measurement, W=%d, %ld CPUs, load %s -> %s\n",
           dlock_version(), cfg.secs, cfg.workers, sysconf(_SC_NPROCESSORS_ONLN), load0, load1);
    printf("%-5s %-15s %-24s %-8s %10s %9s %9s %9s %6s  %s\n", "tr", "mode", "operation", "impl",
           "ops/s", "p50 us", "p99 us", "p99.9 us", "ratio", "note");
    for (size_t i = 0; i < nresults; i++) {
        const result *r = &results[i];
        char ratio[16] = "", p99[16] = "", p999[16] = "";
        if (r->ratio >= 0) {
            snprintf(ratio, sizeof ratio, "%.2f", r->ratio);
        }
        if (r->p99 >= 0) {
            snprintf(p99, sizeof p99, "%.1f", r->p99);
            snprintf(p999, sizeof p999, "%.1f", r->p999);
        }
        printf("%-5s %-15s %-24s %-8s %10.0f %9.1f %9s %9s %6s  %s\n", r->transport, r->mode, r->op,
               r->impl, r->ops, r->p50, p99, p999, ratio, r->note);
    }
    if (nmetrics > 0) {
        printf("\n%-40s %12s %-7s %s\n", "metric", "value", "unit", "note");
        for (size_t i = 0; i < nmetrics; i++) {
            printf("%-40s %12.1f %-7s %s\n", metrics[i].name, metrics[i].value, metrics[i].unit,
                   metrics[i].note);
        }
    }
    if (nchecks > 0) {
        printf("\n%-62s %9s %8s  %s\n", "target", "measured", "target", "met");
        for (size_t i = 0; i < nchecks; i++) {
            const check *c = &checks[i];
            printf("%-62s %7.2f%-2s %s%5.2f%-2s %s\n", c->name, c->value, c->unit,
                   c->higher_is_better ? ">=" : "<=", c->target, c->unit, c->met ? "yes" : "NO");
        }
    }
    printf("(ratio = dlock ops/s / raw hiredis ops/s with the same commands in this run; "
           "per-step rows: ops/s = 1 / mean step latency)\n");
}

static void write_json(const char *path, const char *load0, const char *load1) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "dlock_bench: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\n  \"meta\": {\"dlock_version\": ");
    json_str(f, dlock_version());
    fprintf(f, ", \"date\": \"%s\", \"cpus\": %ld, \"seconds\": %.2f, \"workers\": %d, ", date,
            sysconf(_SC_NPROCESSORS_ONLN), cfg.secs, cfg.workers);
    fprintf(f, "\"loadavg_start\": ");
    json_str(f, load0);
    fprintf(f, ", \"loadavg_end\": ");
    json_str(f, load1);
    fprintf(f, "},\n  \"results\": [\n");
    for (size_t i = 0; i < nresults; i++) {
        const result *r = &results[i];
        fprintf(f, "    {\"transport\": \"%s\", \"mode\": ", r->transport);
        json_str(f, r->mode);
        fprintf(f, ", \"op\": ");
        json_str(f, r->op);
        fprintf(f, ", \"impl\": \"%s\", \"ops_per_s\": %.1f, \"p50_us\": %.2f, ", r->impl, r->ops,
                r->p50);
        if (r->p99 >= 0) {
            fprintf(f, "\"p99_us\": %.2f, \"p999_us\": %.2f, ", r->p99, r->p999);
        } else {
            fprintf(f, "\"p99_us\": null, \"p999_us\": null, ");
        }
        fprintf(f, "\"samples\": %zu, \"ratio_to_raw\": ", r->n);
        if (r->ratio >= 0) {
            fprintf(f, "%.4f", r->ratio);
        } else {
            fprintf(f, "null");
        }
        fprintf(f, ", \"note\": ");
        json_str(f, r->note);
        fprintf(f, "}%s\n", i + 1 < nresults ? "," : "");
    }
    fprintf(f, "  ],\n  \"metrics\": [\n");
    for (size_t i = 0; i < nmetrics; i++) {
        fprintf(f, "    {\"name\": ");
        json_str(f, metrics[i].name);
        fprintf(f, ", \"value\": %.2f, \"unit\": ", metrics[i].value);
        json_str(f, metrics[i].unit);
        fprintf(f, ", \"note\": ");
        json_str(f, metrics[i].note);
        fprintf(f, "}%s\n", i + 1 < nmetrics ? "," : "");
    }
    fprintf(f, "  ],\n  \"targets\": [\n");
    for (size_t i = 0; i < nchecks; i++) {
        const check *c = &checks[i];
        fprintf(f, "    {\"name\": ");
        json_str(f, c->name);
        fprintf(f,
                ", \"measured\": %.4f, \"target\": %.4f, \"unit\": \"%s\", \"op\": \"%s\", "
                "\"met\": %s}%s\n",
                c->value, c->target, c->unit,
                c->higher_is_better ? ">=" : "<=", c->met ? "true" : "false",
                i + 1 < nchecks ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* A gnuplot script for the latency curves; bench/run.sh runs it when gnuplot is installed. */
static void write_plot(void) {
    if (nseries == 0) {
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/latency.gp", cfg.outdir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f, "set terminal pngcairo size 1400,600 noenhanced\n"
               "set output 'latency.png'\n"
               "set multiplot layout 1,2\n"
               "set logscale xy\n"
               "set grid\n"
               "set key top left font ',9'\n"
               "set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, '99%%%%' 100, "
               "'99.9%%%%' 1000, '99.99%%%%' 10000, '99.999%%%%' 100000)\n"
               "set xlabel 'percentile'\n"
               "set ylabel 'latency (us)'\n");
    const char *titles[] = {"acquire + release, one client", "wait for the lock, W workers"};
    for (int panel = 0; panel < 2; panel++) {
        fprintf(f, "set title '%s'\nplot ", titles[panel]);
        int first = 1;
        for (size_t i = 0; i < nseries; i++) {
            if (series[i].panel == panel) {
                fprintf(f, "%s'%s' using 1:2 with lines lw 2 title '%s'", first ? "" : ", \\\n  ",
                        series[i].file, series[i].title);
                first = 0;
            }
        }
        if (first) {
            fprintf(f, "1/0 notitle");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
}

static void usage(void) {
    fprintf(stderr,
            "usage: dlock_bench [options] --url URL [--url URL ...]\n"
            "  --url URL         redis://host:port, unix:///path.sock, http(s)://gateway (REST)\n"
            "  --rest-token T    token for http(s):// URLs\n"
            "  --seconds S       length of each measurement (default 2)\n"
            "  --workers W       contending workers (default 16, max %d)\n"
            "  --keys LIST       id counts for the many-ids mode (default %s)\n"
            "  --modes LIST      of cycle,contend,keys,extend,debounce,memory,cli,server\n"
            "  --cli PATH        the dlock CLI binary, for the cli mode\n"
            "  --out DIR         where latency .dat files and latency.gp go (default .)\n"
            "  --json FILE       write all results as JSON\n",
            MAX_WORKERS, cfg.keys);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (strcmp(a, "--url") == 0 && cfg.nurls < MAX_URLS) {
            cfg.urls[cfg.nurls++] = v;
        } else if (strcmp(a, "--rest-token") == 0) {
            cfg.rest_token = v;
        } else if (strcmp(a, "--seconds") == 0) {
            cfg.secs = atof(v);
        } else if (strcmp(a, "--workers") == 0) {
            cfg.workers = atoi(v);
        } else if (strcmp(a, "--keys") == 0) {
            cfg.keys = v;
        } else if (strcmp(a, "--modes") == 0) {
            cfg.modes = v;
        } else if (strcmp(a, "--cli") == 0) {
            cfg.cli = v;
        } else if (strcmp(a, "--out") == 0) {
            cfg.outdir = v;
        } else if (strcmp(a, "--json") == 0) {
            cfg.json = v;
        } else {
            usage();
        }
        i++;
    }
    if (cfg.nurls == 0 || cfg.secs <= 0 || cfg.workers < 1 || cfg.workers > MAX_WORKERS) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    load_scripts();
    char load0[128], load1[128];
    read_loadavg(load0, sizeof load0);

    /* Memory first, on a fresh heap; then the CLI (it only reads a clock and waits). */
    const char *first_redis = NULL;
    for (int u = 0; u < cfg.nurls; u++) {
        if (first_redis == NULL && strcmp(transport_of(cfg.urls[u]), "rest") != 0) {
            first_redis = cfg.urls[u];
        }
    }
    if (mode_on("memory")) {
        fprintf(stderr, "== memory\n");
        mode_memory(cfg.urls[0]);
    }
    if (mode_on("cli") && first_redis != NULL) {
        fprintf(stderr, "== cli\n");
        mode_cli(first_redis);
    }
    for (int u = 0; u < cfg.nurls; u++) {
        const char *url = cfg.urls[u];
        int rest = strcmp(transport_of(url), "rest") == 0;
        fprintf(stderr, "== %s (%s)\n", transport_of(url), url);
        if (mode_on("server")) {
            mode_server(url);
        }
        if (mode_on("cycle")) {
            mode_cycle(url);
        }
        if (mode_on("extend")) {
            mode_extend(url);
        }
        if (mode_on("debounce")) {
            mode_debounce(url);
        }
        if (mode_on("contend")) { /* REST cannot subscribe: its waiters poll (no raw limit) */
            mode_contend(url);
        }
        if (mode_on("deadwaiter") && !rest) { /* REST waiters poll: there is no queue */
            mode_deadwaiter(url);
        }
        if (mode_on("keys") && !rest) { /* needs a raw client to fill the keyspace */
            mode_keys(url);
        }
    }
    read_loadavg(load1, sizeof load1);
    print_table(load0, load1);
    if (cfg.json != NULL) {
        write_json(cfg.json, load0, load1);
    }
    write_plot();
    return 0;
}
