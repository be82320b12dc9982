/* The timed loop: a step function run for a while, each step's latency recorded; and the limit
 * and the library interleaved. */
#include "bench.h"

#include <string.h>

/* Runs f for secs seconds and appends to o (zero it first); warms up on the first call. */
void run_loop(step_fn f, void *ctx, int nphases, double secs, loop_out *o) {
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

void run_pair(step_fn raw, void *raw_arg, loop_out *raw_out, step_fn lib, void *lib_arg,
              loop_out *lib_out, int nphases, double secs) {
    memset(lib_out, 0, sizeof *lib_out);
    if (raw != NULL) {
        memset(raw_out, 0, sizeof *raw_out);
    }
    for (int r = 0; r < ROUNDS; r++) {
        if (raw != NULL) {
            run_loop(raw, raw_arg, nphases, secs / ROUNDS, raw_out);
        }
        run_loop(lib, lib_arg, nphases, secs / ROUNDS, lib_out);
    }
}

void loop_free(loop_out *o) {
    for (int p = 0; p < MAX_PHASES; p++) {
        s_free(&o->phase[p]);
    }
    s_free(&o->total);
}

/* Records one loop: the whole iteration as `op`, and each named phase separately (its ops/s is
 * 1 / mean latency of that step). Returns the row of the whole iteration. */
result *report_loop(bench_results *res, const char *tr, const char *mode, const char *op,
                    const char *impl, loop_out *o, int nphases, const char *const *phase_names) {
    result *r = add_result(res, tr, mode, op, impl, &o->total, (double)o->total.n / o->elapsed);
    for (int p = 0; p < nphases && phase_names != NULL; p++) {
        if (phase_names[p] != NULL) {
            add_result(res, tr, mode, phase_names[p], impl, &o->phase[p],
                       (double)o->phase[p].n / s_sum_s(&o->phase[p]));
        }
    }
    return r;
}
