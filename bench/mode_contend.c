/* Modes contend-threads and contend-procs: W workers contending for one id with an empty
 * critical section, as threads on one shared client and as processes with a client each, next
 * to raw workers spinning on SET NX, and the library's confirming hand-off for the record. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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
    const bench *b;
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

static void contend_raw_worker(contend_arg *a, const char *key) {
    contend_shared *sh = a->sh;
    raw_ctx x;
    raw_init(&x, a->b->lua, raw_connect(a->url), key);
    x.seq = (uint64_t)a->idx << 40;
    contend_wait_go(sh);
    for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
        raw_new_token(&x);
        /* The limit: retry at once, no backoff. */
        while (!raw_set_nx(&x, key)) {
            if (now_ns() > sh->end_ns + 2000000000u) {
                redisFree(x.c);
                return;
            }
        }
        contend_record(sh, a->idx, now_ns() - t0);
        raw_release(&x, key);
    }
    redisFree(x.c);
}

static void *contend_worker(void *arg) {
    contend_arg *a = arg;
    contend_shared *sh = a->sh;
    const char *key = KEY_PREFIX "contend";
    if (a->raw) {
        contend_raw_worker(a, key);
        return NULL;
    }
    dlock_client *c = a->client != NULL ? a->client : lib_open(a->b->cfg, a->url, 0);
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
static void run_contend(const bench *b, const char *url, int raw, int procs, double secs,
                        contend_acc *acc) {
    int W = b->cfg->workers;
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
        shared_client = lib_open(b->cfg, url, W); /* a pooled connection per thread, all kept */
    }
    fflush(NULL);
    for (int i = 0; i < W; i++) {
        args[i] = (contend_arg){b, sh, i, raw, url, shared_client};
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

/* Adds the row and the plot series of one implementation; *fairness = fewest / most cycles. */
static result *report_contend(bench *b, const char *tr, const char *impl, int procs,
                              contend_acc *acc, double *fairness) {
    int raw = strcmp(impl, "raw") == 0;
    int W = b->cfg->workers;
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
    result *r = add_result(b->res, tr, mode, op, impl, &acc->s, (double)total / acc->elapsed);
    *fairness = hi > 0 ? (double)lo / (double)hi : 0;
    snprintf(r->note, sizeof r->note, "fairness %.2f (min %llu / max %llu)%s; per worker: %s",
             *fairness, (unsigned long long)lo, (unsigned long long)hi,
             acc->errors ? "; ERRORS" : "", counts);
    fprintf(stderr, "        %s\n", r->note);
    char tag[64], title[96];
    snprintf(tag, sizeof tag, "wait_%s_%s_%s", tr, procs ? "procs" : "threads", impl);
    snprintf(title, sizeof title, "%s W=%d %s %s wait", tr, W, procs ? "processes" : "threads",
             raw ? "raw spin" : impl);
    save_series(b->res, &acc->s, tag, title, 1);
    s_free(&acc->s);
    return r;
}

/* The library's internal switch between the two hand-off protocols (src/queue.h): 0 = a grant
 * message is the grant (what dlock does), 1 = it is a wake-up that a try confirms. */
extern int dlock__queue_confirm_grants;

void mode_contend(bench *b, const char *url) {
    const double secs = b->cfg->secs;
    const int W = b->cfg->workers;
    const char *tr = transport_of(url);
    int can_raw = strcmp(tr, "rest") != 0; /* REST: no raw limit (its waiters are woken over SSE) */
    for (int procs = 0; procs <= 1; procs++) {
        size_t from = results_count(b->res);
        contend_acc racc, lacc, cacc;
        memset(&racc, 0, sizeof racc);
        memset(&lacc, 0, sizeof lacc);
        memset(&cacc, 0, sizeof cacc);
        int compare = can_raw && !procs;          /* the confirming protocol, for the record */
        for (int round = 0; round < 2; round++) { /* interleaved, like run_pair */
            if (can_raw) {
                run_contend(b, url, 1, procs, secs / 2, &racc);
            }
            if (compare) {
                dlock__queue_confirm_grants = 1;
                run_contend(b, url, 0, procs, secs / 2, &cacc);
                dlock__queue_confirm_grants = 0;
            }
            run_contend(b, url, 0, procs, secs / 2, &lacc);
        }
        double fair;
        if (can_raw) {
            report_contend(b, tr, "raw", procs, &racc, &fair);
        }
        if (compare) {
            report_contend(b, tr, "confirm", procs, &cacc, &fair);
        }
        const result *r = report_contend(b, tr, "dlock", procs, &lacc, &fair);
        pair_ratios(b->res, from);
        const char *kind = procs ? "processes" : "threads";
        char name[96];
        if (r->ratio >= 0) {
            snprintf(name, sizeof name, "%s: W=%d %s, dlock / raw cycles/s", tr, W, kind);
            add_check(b->res, name, r->ratio, 0.90, 1, "x");
        }
        snprintf(name, sizeof name, "%s: W=%d %s, dlock p99 wait for the lock", tr, W, kind);
        add_check(b->res, name, r->p99 / 1000.0, 10.0, 0, "ms");
        snprintf(name, sizeof name, "%s: W=%d %s, dlock fairness (fewest/most)", tr, W, kind);
        add_check(b->res, name, fair, 0.5, 1, "x");
    }
}
