/* The results object: table rows, metrics and targets in the order the modes add them, the
 * latency curves for the plot, and the three outputs (table, JSON, gnuplot script). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESULTS 256
#define MAX_SERIES  32

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

/* A gnuplot series: "transport mode impl" -> percentile file. */
typedef struct series {
    char file[96], title[96];
    int panel;
} series;

struct bench_results {
    const char *outdir; /* where the lat_*.dat files and latency.gp go */
    result results[MAX_RESULTS];
    metric metrics[MAX_RESULTS];
    check checks[MAX_RESULTS];
    series series[MAX_SERIES];
    size_t nresults, nmetrics, nchecks, nseries;
};

/* The next free slot of an array of MAX_RESULTS entries whose count is *n. */
static size_t next_slot(size_t *n, const char *what) {
    if (*n == MAX_RESULTS) {
        die("too many %s", what);
    }
    return (*n)++;
}

bench_results *results_new(const char *outdir) {
    bench_results *res = calloc(1, sizeof *res);
    if (res == NULL) {
        die("out of memory");
    }
    res->outdir = outdir;
    return res;
}

void results_free(bench_results *res) {
    free(res);
}

size_t results_count(const bench_results *res) {
    return res->nresults;
}

result *add_result(bench_results *res, const char *tr, const char *mode, const char *op,
                   const char *impl, samples *s, double ops) {
    result *r = &res->results[next_slot(&res->nresults, "results")];
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

void add_metric(bench_results *res, const char *name, double value, const char *unit,
                const char *fmt, ...) {
    metric *m = &res->metrics[next_slot(&res->nmetrics, "metrics")];
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->unit, sizeof m->unit, "%s", unit);
    m->value = value;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->note, sizeof m->note, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  %-40s %12.1f %-6s %s\n", name, value, unit, m->note);
}

void add_check(bench_results *res, const char *name, double value, double target,
               int higher_is_better, const char *unit) {
    check *c = &res->checks[next_slot(&res->nchecks, "checks")];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->unit, sizeof c->unit, "%s", unit);
    c->value = value;
    c->target = target;
    c->higher_is_better = higher_is_better;
    c->met = higher_is_better ? value >= target : value <= target;
}

void pair_ratios(bench_results *res, size_t from) {
    result *rs = res->results;
    for (size_t i = from; i < res->nresults; i++) {
        if (strcmp(rs[i].impl, "dlock") != 0) {
            continue;
        }
        for (size_t j = from; j < res->nresults; j++) {
            if (strcmp(rs[j].impl, "raw") == 0 && strcmp(rs[j].transport, rs[i].transport) == 0 &&
                strcmp(rs[j].mode, rs[i].mode) == 0 && strcmp(rs[j].op, rs[i].op) == 0 &&
                rs[j].ops > 0) {
                rs[i].ratio = rs[i].ops / rs[j].ops;
            }
        }
    }
}

const result *find_result(const bench_results *res, const char *tr, const char *mode,
                          const char *op, const char *impl) {
    for (size_t i = 0; i < res->nresults; i++) {
        const result *r = &res->results[i];
        if (strcmp(r->transport, tr) == 0 && strcmp(r->mode, mode) == 0 && strcmp(r->op, op) == 0 &&
            strcmp(r->impl, impl) == 0) {
            return r;
        }
    }
    return NULL;
}

/* The curve is x = 1/(1-p), y = latency in us. */
void save_series(bench_results *res, samples *s, const char *tag, const char *title, int panel) {
    if (s->n == 0 || res->nseries == MAX_SERIES) {
        return;
    }
    series *se = &res->series[res->nseries];
    char path[512];
    snprintf(se->file, sizeof se->file, "lat_%s.dat", tag);
    snprintf(se->title, sizeof se->title, "%s", title);
    se->panel = panel;
    snprintf(path, sizeof path, "%s/%s", res->outdir, se->file);
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
    res->nseries++;
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

void print_table(const bench_results *res, const bench_config *cfg, const char *load0,
                 const char *load1) {
    printf("\ndlock %s benchmark: %.1f s per measurement, W=%d, %ld CPUs, load %s -> %s\n",
           dlock_version(), cfg->secs, cfg->workers, sysconf(_SC_NPROCESSORS_ONLN), load0, load1);
    printf("%-5s %-15s %-24s %-8s %10s %9s %9s %9s %6s  %s\n", "tr", "mode", "operation", "impl",
           "ops/s", "p50 us", "p99 us", "p99.9 us", "ratio", "note");
    for (size_t i = 0; i < res->nresults; i++) {
        const result *r = &res->results[i];
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
    if (res->nmetrics > 0) {
        printf("\n%-40s %12s %-7s %s\n", "metric", "value", "unit", "note");
        for (size_t i = 0; i < res->nmetrics; i++) {
            const metric *m = &res->metrics[i];
            printf("%-40s %12.1f %-7s %s\n", m->name, m->value, m->unit, m->note);
        }
    }
    if (res->nchecks > 0) {
        printf("\n%-62s %9s %8s  %s\n", "target", "measured", "target", "met");
        for (size_t i = 0; i < res->nchecks; i++) {
            const check *c = &res->checks[i];
            printf("%-62s %7.2f%-2s %s%5.2f%-2s %s\n", c->name, c->value, c->unit,
                   c->higher_is_better ? ">=" : "<=", c->target, c->unit, c->met ? "yes" : "NO");
        }
    }
    printf("(ratio = dlock ops/s / raw hiredis ops/s with the same commands in this run; "
           "per-step rows: ops/s = 1 / mean step latency)\n");
}

static void json_result(FILE *f, const result *r) {
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
    fprintf(f, "}");
}

static void json_metric(FILE *f, const metric *m) {
    fprintf(f, "    {\"name\": ");
    json_str(f, m->name);
    fprintf(f, ", \"value\": %.2f, \"unit\": ", m->value);
    json_str(f, m->unit);
    fprintf(f, ", \"note\": ");
    json_str(f, m->note);
    fprintf(f, "}");
}

static void json_check(FILE *f, const check *c) {
    fprintf(f, "    {\"name\": ");
    json_str(f, c->name);
    fprintf(f,
            ", \"measured\": %.4f, \"target\": %.4f, \"unit\": \"%s\", \"op\": \"%s\", "
            "\"met\": %s}",
            c->value, c->target, c->unit,
            c->higher_is_better ? ">=" : "<=", c->met ? "true" : "false");
}

void write_json(const bench_results *res, const bench_config *cfg, const char *path,
                const char *load0, const char *load1) {
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
            sysconf(_SC_NPROCESSORS_ONLN), cfg->secs, cfg->workers);
    fprintf(f, "\"loadavg_start\": ");
    json_str(f, load0);
    fprintf(f, ", \"loadavg_end\": ");
    json_str(f, load1);
    fprintf(f, "},\n  \"results\": [\n");
    for (size_t i = 0; i < res->nresults; i++) {
        json_result(f, &res->results[i]);
        fprintf(f, "%s\n", i + 1 < res->nresults ? "," : "");
    }
    fprintf(f, "  ],\n  \"metrics\": [\n");
    for (size_t i = 0; i < res->nmetrics; i++) {
        json_metric(f, &res->metrics[i]);
        fprintf(f, "%s\n", i + 1 < res->nmetrics ? "," : "");
    }
    fprintf(f, "  ],\n  \"targets\": [\n");
    for (size_t i = 0; i < res->nchecks; i++) {
        json_check(f, &res->checks[i]);
        fprintf(f, "%s\n", i + 1 < res->nchecks ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* bench/run.sh runs the script when gnuplot is installed. */
void write_plot(const bench_results *res) {
    if (res->nseries == 0) {
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/latency.gp", res->outdir);
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
        for (size_t i = 0; i < res->nseries; i++) {
            const series *se = &res->series[i];
            if (se->panel == panel) {
                fprintf(f, "%s'%s' using 1:2 with lines lw 2 title '%s'", first ? "" : ", \\\n  ",
                        se->file, se->title);
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
