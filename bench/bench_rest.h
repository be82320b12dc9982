/* bench_rest.c: the REST rows of `make bench` (issue 13) -- what waiters cost over the Upstash
 * REST transport, where every command is billed. Uses dlock.h and libcurl only. */
#ifndef DLOCK_BENCH_REST_H
#define DLOCK_BENCH_REST_H

#include <stdint.h>

/* One measured run of acquire+release cycles on one id through a REST gateway. */
typedef struct bench_rest_row {
    double cycles_per_s;
    double p50_ms, p99_ms; /* the wait for the lock (acquire's time) */
    double fairness;       /* fewest / most cycles per worker */
    double commands;       /* per cycle, counted by the gateway (GET /gateway-stats): HTTP
                            * commands (a pipeline counts each) plus SSE streams opened */
    double streams;        /* of those, streams opened, per cycle */
    double messages;       /* SSE messages the gateway sent, per cycle */
    uint64_t cycles, overlaps, errors;
} bench_rest_row;

/* Runs `workers` threads (one client, a pooled connection each) for `secs` on one id, each
 * looping blocking acquire + release; workers == 1 is the uncontended cycle. Returns 0, or -1
 * if the gateway's stats could not be read (the counts are then 0). */
int bench_rest_run(const char *url, const char *token, int workers, double secs,
                   bench_rest_row *out);

#endif
