/* bench.h: what dlock_bench's files share. main.c parses the arguments into a bench_config
 * (config.c), reads the scripts and hands one `bench` context to every mode; each mode is one
 * mode_*.c file that measures, then records rows, metrics and targets in the results object
 * (report.c). Modes call the shared code below and never each other.
 *
 * There are no mutable globals: everything a mode may change is reached through its `bench *`. */
#ifndef DLOCK_BENCH_H
#define DLOCK_BENCH_H

#include "dlock.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_URLS    4
#define MAX_WORKERS 64
#define MAX_KEYS    16 /* entries in --keys */
#define KEY_PREFIX  "dlockbench:"

/* Exit status for bad arguments (sysexits.h EX_USAGE); anything else that fails exits 1. */
#define BENCH_EXIT_USAGE 64

/* ---- Configuration (config.c) ---------------------------------------------------------------
 */

typedef struct bench_config {
    double secs; /* length of each measurement */
    int workers; /* contending workers, 1 .. MAX_WORKERS */
    const char *urls[MAX_URLS];
    int nurls;
    const char *rest_token;
    const char *outdir;
    const char *cli;
    long keys[MAX_KEYS]; /* id counts for the keys mode, each >= 1 */
    int nkeys;
    const char *modes; /* comma-separated, every name known (bench_mode_known) */
    const char *json;
} bench_config;

/* Every mode, in the order main.c runs them; the default of --modes. */
#define BENCH_ALL_MODES                                                                            \
    "cycle,contend,restwait,deadwaiter,keys,extend,debounce,memory,cli,server,cluster"

/* Fills cfg from argv, every value checked: on bad input prints a message naming the option
 * and exits BENCH_EXIT_USAGE; --help prints the usage and exits 0. */
void bench_parse_args(bench_config *cfg, int argc, char **argv);

/* 1 if the comma-separated list has exactly the name `m`. */
int bench_list_has(const char *list, const char *m);

/* ---- Errors, time, samples (stats.c) --------------------------------------------------------
 */

_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

uint64_t now_ns(void);
uint64_t secs_ns(double s);
void sleep_ns(uint64_t ns);
uint64_t xorshift(uint64_t *s);
int cmp_u64(const void *a, const void *b);

typedef struct samples {
    uint64_t *v; /* latencies in ns */
    size_t n, cap;
    int sorted;
} samples;

void s_add(samples *s, uint64_t ns);
double s_pct(samples *s, double p); /* nearest-rank percentile, in microseconds */
double s_sum_s(const samples *s);
void s_free(samples *s);

/* ---- Results: table rows, metrics, targets and plot series (report.c) -----------------------
 */

typedef struct result {
    char transport[8], mode[24], op[40], impl[12];
    double ops, p50, p99, p999; /* ops/s; latencies in us; p99 < 0 = not measured */
    size_t n;
    double ratio; /* to the limit measured in this run; < 0 = none */
    char note[200];
} result;

/* Everything the run has measured, in order; owned by main.c, filled by the modes. Rows stay
 * where they are once added, so a mode may keep a result * and fill in its note later. */
typedef struct bench_results bench_results;

bench_results *results_new(const char *outdir);
void results_free(bench_results *res);

/* The number of rows so far: a mark for pair_ratios. */
size_t results_count(const bench_results *res);

/* Adds a row (latencies from s, which may be NULL) and echoes it on stderr. */
result *add_result(bench_results *res, const char *tr, const char *mode, const char *op,
                   const char *impl, samples *s, double ops);
void add_metric(bench_results *res, const char *name, double value, const char *unit,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void add_check(bench_results *res, const char *name, double value, double target,
               int higher_is_better, const char *unit);

/* Sets the ratio of the dlock rows added since mark `from` to their raw counterparts. */
void pair_ratios(bench_results *res, size_t from);
const result *find_result(const bench_results *res, const char *tr, const char *mode,
                          const char *op, const char *impl);

/* Writes the latency-by-percentile curve of s as lat_TAG.dat for panel 0 (one client) or 1
 * (waiting workers) of the plot. */
void save_series(bench_results *res, samples *s, const char *tag, const char *title, int panel);

/* The output: the table on stdout, the JSON file, the gnuplot script (latency.gp). */
void print_table(const bench_results *res, const bench_config *cfg, const char *load0,
                 const char *load1);
void write_json(const bench_results *res, const bench_config *cfg, const char *path,
                const char *load0, const char *load1);
void write_plot(const bench_results *res);

/* ---- The context every mode gets ------------------------------------------------------------
 */

/* The Lua scripts the library sends, read from src/lua (raw.c, load_scripts). */
typedef struct bench_scripts {
    char *release, *extend, *incr;
} bench_scripts;

/* The one context: read-only configuration and scripts, and the results every mode adds to.
 * main.c owns it; a mode gets it as `bench *b` and keeps nothing of it after it returns. */
typedef struct bench {
    const bench_config *cfg;
    const bench_scripts *lua;
    bench_results *res;
} bench;

/* ---- Raw hiredis, the limit (raw.c) ---------------------------------------------------------
 */

void load_scripts(bench_scripts *lua);
void free_scripts(bench_scripts *lua);

const char *transport_of(const char *url);

/* Where a redis:// or unix:// URL points: the socket path, or host and port. Returns 0; 1 for
 * the schemes raw hiredis cannot speak (no endpoint); -1 for a port that is not 1..65535. */
typedef struct bench_endpoint {
    char path[512]; /* unix:// */
    char host[512]; /* redis:// */
    int port;
} bench_endpoint;
int url_endpoint(const char *url, bench_endpoint *ep);

/* Connects the way the library would for this URL, with nothing around hiredis. NULL for
 * transports raw hiredis cannot speak (REST); dies on a failed connect. */
redisContext *raw_connect(const char *url);
redisReply *raw_cmd(redisContext *c, int argc, const char **argv); /* dies on an error reply */
void raw_do(redisContext *c, int argc, const char **argv);

typedef struct raw_ctx {
    redisContext *c;
    char key[96], token[40], sha_release[41], sha_extend[41], sha_incr[41];
    uint64_t seq, rng, nkeys;
} raw_ctx;

void raw_init(raw_ctx *x, const bench_scripts *lua, redisContext *c, const char *key);
/* raw_connect + raw_init on the key "KEY:raw", beside the library's KEY; NULL (x untouched)
 * where there is no raw client. */
redisContext *raw_open_beside(raw_ctx *x, const bench_scripts *lua, const char *url,
                              const char *key);
void raw_new_token(raw_ctx *x);
int raw_set_nx(raw_ctx *x, const char *key);
void raw_release(raw_ctx *x, const char *key);
int step_raw_ping(void *ctx, int phase);
/* The cycle the library is measured against: phase 0 SET NX PX with a new token, phase 1 the
 * release script (ctx: raw_ctx). */
int step_raw_cycle(void *ctx, int phase);

/* ---- The library (lib.c) --------------------------------------------------------------------
 */

typedef struct lib_ctx {
    dlock_client *c;
    dlock_lock *l;
    dlock_debounce *d;
    dlock_acquire_options ao;
    uint64_t rng, nkeys;
    char key[96];
} lib_ctx;

dlock_client *lib_open(const bench_config *cfg, const char *url, int pool);
void lib_check(int rc, const char *what); /* dies if rc < 0 */
/* Phase 0 dlock_lock_acquire, phase 1 dlock_lock_release of x->l (ctx: lib_ctx). */
int step_lib_cycle(void *ctx, int phase);

/* ---- The timed loop (loop.c) ----------------------------------------------------------------
 */

/* One iteration is nphases steps; each step's latency and the whole iteration's are recorded.
 * A step returns 0 to go on, or nonzero to stop the loop (a fatal error has been reported). */
typedef int (*step_fn)(void *ctx, int phase);

#define MAX_PHASES 3

typedef struct loop_out {
    samples phase[MAX_PHASES], total;
    double elapsed;
} loop_out;

void run_loop(step_fn f, void *ctx, int nphases, double secs, loop_out *o);
void run_pair(step_fn raw, void *raw_arg, loop_out *raw_out, step_fn lib, void *lib_arg,
              loop_out *lib_out, int nphases, double secs);
void loop_free(loop_out *o);
result *report_loop(bench_results *res, const char *tr, const char *mode, const char *op,
                    const char *impl, loop_out *o, int nphases, const char *const *phase_names);

/* ---- The modes (mode_*.c), run by main.c in its table's order -------------------------------
 */

void mode_memory(bench *b, const char *url);
void mode_cli(bench *b, const char *url);
void mode_server(bench *b, const char *url);
void mode_cycle(bench *b, const char *url);
void mode_extend(bench *b, const char *url);
void mode_debounce(bench *b, const char *url);
void mode_contend(bench *b, const char *url);
void mode_restwait(bench *b, const char *url);
void mode_deadwaiter(bench *b, const char *url);
void mode_keys(bench *b, const char *url);
void mode_cluster(bench *b, const char *url); /* only on a Redis Cluster URL */

#endif
