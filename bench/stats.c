/* Errors, time and latency samples for every mode. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dlock_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t secs_ns(double s) {
    return (uint64_t)(s * 1e9);
}

void sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void s_add(samples *s, uint64_t ns) {
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

double s_pct(samples *s, double p) {
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

double s_sum_s(const samples *s) {
    double t = 0;
    for (size_t i = 0; i < s->n; i++) {
        t += (double)s->v[i];
    }
    return t / 1e9;
}

void s_free(samples *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}
