/* fault_load: many threads hammering a handful of lock ids through one shared client.
 *
 *   fault_load -u URL [-t THREADS] [-n CYCLES] [-k IDS] [-P POOL] [-M MAX_GROWTH_MB]
 *
 * THREADS threads (default 100) each run CYCLES cycles (default 1000) on id "dlock-load:<t % IDS>"
 * (default 5 ids) with their own lock handle on ONE dlock_client: a single-attempt acquire and,
 * when it succeeds, an extend every 16th hold and a release. Every call must return OK or
 * NOT_ACQUIRED (an acquire) -- never an error, never NOT_HELD -- and no two threads may hold an
 * id at once (checked in-process with an atomic holder count per id). The resident set size is
 * read after 10% of the cycles and at the end; with -M the growth in between must stay under
 * MAX_GROWTH_MB (a leak per cycle would show as growth proportional to the cycles). */
#include "dlock.h"
#include "fault_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MAX_IDS 64

static const char *url;
static int threads = 100, cycles = 1000, nids = 5, pool = 0;
static dlock_client *client;
static atomic_int holders[MAX_IDS];
static atomic_long done_cycles, acquired, not_acquired, errors, violations, extends;

static long rss_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, n) == 0) {
            v = atol(line + n + 1);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

static void report_error(const char *what, int rc) {
    if (atomic_fetch_add(&errors, 1) < 5) {
        fprintf(stderr, "fault_load: %s: %s: %s\n", what, dlock_strerror(rc), dlock_errmsg());
    }
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg, slot = t % nids;
    char id[64];
    snprintf(id, sizeof id, "dlock-load:%d", slot);
    dlock_lock_options lo = {.lease_ms = 10000, .attempts = 1};
    dlock_lock *lock;
    int rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc != DLOCK_OK) {
        report_error("lock_new", rc);
        return NULL;
    }
    for (int i = 0; i < cycles; i++) {
        rc = dlock_lock_acquire(lock, NULL);
        if (rc == DLOCK_OK) {
            atomic_fetch_add(&acquired, 1);
            if (atomic_fetch_add(&holders[slot], 1) != 0) {
                atomic_fetch_add(&violations, 1);
            }
            if (i % 16 == 0) {
                rc = dlock_lock_extend(lock, 1000);
                atomic_fetch_add(&extends, 1);
                if (rc != DLOCK_OK) {
                    report_error("extend", rc);
                }
            }
            atomic_fetch_sub(&holders[slot], 1);
            rc = dlock_lock_release(lock);
            if (rc != DLOCK_OK) {
                report_error("release", rc);
            }
        } else if (rc == DLOCK_NOT_ACQUIRED) {
            atomic_fetch_add(&not_acquired, 1);
        } else {
            report_error("acquire", rc);
        }
        atomic_fetch_add(&done_cycles, 1);
    }
    dlock_lock_free(lock);
    return NULL;
}

int main(int argc, char **argv) {
    long max_growth_mb = 0;
    int opt;
    while ((opt = getopt(argc, argv, "u:t:n:k:P:M:")) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'n':
            cycles = atoi(optarg);
            break;
        case 'k':
            nids = atoi(optarg);
            break;
        case 'P':
            pool = atoi(optarg);
            break;
        case 'M':
            max_growth_mb = atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: fault_load -u URL [-t THREADS] [-n CYCLES] [-k IDS] [-P POOL] "
                            "[-M MAX_GROWTH_MB]\n");
            return 2;
        }
    }
    if (url == NULL || threads < 1 || cycles < 1 || nids < 1 || nids > MAX_IDS) {
        fprintf(stderr, "fault_load: -u URL is required; 1 <= IDS <= %d\n", MAX_IDS);
        return 2;
    }
    dlock_client_options co = {.pool_size = pool};
    int rc = dlock_client_open(&client, url, &co);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "fault_load: open %s: %s\n", url, dlock_errmsg());
        return 1;
    }
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int64_t t0 = fault_now_us();
    long rss_start = rss_kb("VmRSS:");
    int started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&tid[started], NULL, worker, (void *)(intptr_t)started) != 0) {
            fprintf(stderr, "fault_load: pthread_create failed after %d threads\n", started);
            atomic_fetch_add(&errors, 1);
            break;
        }
    }
    long total = (long)started * cycles, rss_warm = -1;
    while (rss_warm < 0 && atomic_load(&done_cycles) < total) {
        if (atomic_load(&done_cycles) >= total / 10) {
            rss_warm = rss_kb("VmRSS:");
        }
        fault_sleep_us(10000);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }
    int64_t us = fault_now_us() - t0;
    long rss_end = rss_kb("VmRSS:"), hwm = rss_kb("VmHWM:");
    if (rss_warm < 0) {
        rss_warm = rss_end;
    }
    dlock_client_close(client);
    free(tid);
    long growth_kb = rss_end - rss_warm;
    printf("fault_load: %d threads x %d cycles on %d ids: %ld cycles in %.1f s (%.0f/s); "
           "acquired %ld, not acquired %ld, extends %ld, errors %ld, exclusion violations %ld\n",
           started, cycles, nids, atomic_load(&done_cycles), (double)us / 1e6,
           (double)atomic_load(&done_cycles) * 1e6 / (double)(us > 0 ? us : 1),
           atomic_load(&acquired), atomic_load(&not_acquired), atomic_load(&extends),
           atomic_load(&errors), atomic_load(&violations));
    printf("fault_load: RSS %ld kB at start, %ld kB after 10%%, %ld kB at the end (growth %ld "
           "kB), peak %ld kB\n",
           rss_start, rss_warm, rss_end, growth_kb, hwm);
    printf("FIGURES name=load cycles=%ld errors=%ld violations=%ld rss_kb=%ld growth_kb=%ld "
           "peak_kb=%ld\n",
           atomic_load(&done_cycles), atomic_load(&errors), atomic_load(&violations), rss_end,
           growth_kb, hwm);
    int ok = atomic_load(&errors) == 0 && atomic_load(&violations) == 0 &&
             atomic_load(&done_cycles) == total && atomic_load(&acquired) > 0;
    if (max_growth_mb > 0 && growth_kb > max_growth_mb * 1024) {
        printf("fault_load: RSS grew by %ld kB, over the %ld MB bound\n", growth_kb, max_growth_mb);
        ok = 0;
    }
    printf("fault_load: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
