/* Mode restwait (issue 13): what waiters cost over the Upstash REST transport, where every
 * command is billed. W threads (one client, a pooled connection each) loop blocking acquire +
 * release on one id through the local gateway, once uncontended and once with W workers; the
 * commands each cycle costs are counted where Upstash would bill them (the gateway's
 * GET /gateway-stats). */
#include "bench.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMP (1u << 16) /* wait samples kept per worker */

/* One measured run of acquire+release cycles on one id through a REST gateway. */
typedef struct rest_row {
    double cycles_per_s;
    double p50_ms, p99_ms;           /* the wait for the lock (acquire's time) */
    double hand_p50_ms, hand_p99_ms; /* a hand-off: release called -> the next holder's acquire
                                      * returned (W > 1); a wait is W - 1 of them in a row */
    double fairness;                 /* fewest / most cycles per worker */
    double commands;                 /* per cycle, counted by the gateway (GET /gateway-stats): HTTP
                                      * commands (a pipeline counts each) plus SSE streams opened */
    double streams;                  /* of those, streams opened, per cycle */
    double messages;                 /* SSE messages the gateway sent, per cycle */
    uint64_t cycles, overlaps, errors;
} rest_row;

typedef struct gw_stats {
    double commands, streams, messages;
} gw_stats;

static size_t on_stats(char *p, size_t size, size_t n, void *ud) {
    char *buf = ud;
    size_t have = strlen(buf), k = size * n;
    if (have + k < 512) {
        memcpy(buf + have, p, k);
        buf[have + k] = '\0';
    }
    return size * n;
}

static double field(const char *body, const char *name) {
    const char *p = strstr(body, name);
    return p != NULL ? strtod(p + strlen(name), NULL) : 0;
}

static int read_stats(const char *url, gw_stats *out) {
    char full[512], body[512] = "";
    snprintf(full, sizeof full, "%s/gateway-stats", url);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stats);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    out->commands = field(body, "\"commands\":");
    out->streams = field(body, "\"streams\":");
    out->messages = field(body, "\"messages\":");
    return cc == CURLE_OK && strstr(body, "\"streams\":") != NULL ? 0 : -1;
}

typedef struct shared {
    dlock_client *client;
    const char *id;
    uint64_t end_ns;
    atomic_int ready, go, inside;
    atomic_ulong overlaps;
    _Atomic uint64_t released_at; /* now_ns() when the last holder called release */
} shared;

typedef struct worker {
    shared *sh;
    pthread_t th;
    uint64_t count, errors, nsamp, nhand;
    uint64_t *samp, *hand;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    shared *sh = w->sh;
    dlock_lock *l = NULL;
    if (dlock_lock_new(&l, sh->client, sh->id, NULL) != DLOCK_OK) {
        w->errors++;
        atomic_fetch_add(&sh->ready, 1);
        return NULL;
    }
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go)) {
        sleep_ns(100000);
    }
    for (uint64_t t0; (t0 = now_ns()) < sh->end_ns;) {
        dlock_acquire_options ao = {.wait_ms = (int64_t)((sh->end_ns - t0) / 1000000u) + 3000};
        int rc = dlock_lock_acquire(l, &ao);
        uint64_t t1 = now_ns();
        if (rc != DLOCK_OK) {
            w->errors += rc < 0;
            continue;
        }
        if (atomic_fetch_add(&sh->inside, 1) != 0) {
            atomic_fetch_add(&sh->overlaps, 1);
        }
        atomic_fetch_sub(&sh->inside, 1);
        w->count++;
        if (w->nsamp < MAX_SAMP) {
            w->samp[w->nsamp++] = t1 - t0;
        }
        /* A release made while this call waited handed the lock to it (FIFO). */
        uint64_t rel = atomic_load(&sh->released_at);
        if (rel > t0 && w->nhand < MAX_SAMP) {
            w->hand[w->nhand++] = t1 - rel;
        }
        atomic_store(&sh->released_at, now_ns());
        if (dlock_lock_release(l) != DLOCK_OK) {
            w->errors++;
        }
    }
    dlock_lock_free(l);
    return NULL;
}

/* p50 and p99 in ms of the samples the workers kept in samp (hand = 0) or hand (hand = 1). */
static void percentiles(const worker *w, int n, int hand, double *p50, double *p99) {
    uint64_t total = 0, k = 0;
    for (int i = 0; i < n; i++) {
        total += hand ? w[i].nhand : w[i].nsamp;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    if (all == NULL) {
        die("out of memory");
    }
    for (int i = 0; i < n; i++) {
        uint64_t m = hand ? w[i].nhand : w[i].nsamp;
        memcpy(all + k, hand ? w[i].hand : w[i].samp, m * sizeof *all);
        k += m;
    }
    qsort(all, total, sizeof *all, cmp_u64);
    *p50 = total ? (double)all[(total - 1) / 2] / 1e6 : 0;
    *p99 = total ? (double)all[(size_t)((double)(total - 1) * 0.99)] / 1e6 : 0;
    free(all);
}

static void summarise(worker *w, int n, double secs, rest_row *out) {
    uint64_t total = 0, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < n; i++) {
        total += w[i].count;
        lo = w[i].count < lo ? w[i].count : lo;
        hi = w[i].count > hi ? w[i].count : hi;
        out->errors += w[i].errors;
    }
    out->cycles = total;
    out->cycles_per_s = (double)total / secs;
    out->fairness = hi > 0 ? (double)lo / (double)hi : 0;
    percentiles(w, n, 0, &out->p50_ms, &out->p99_ms);
    percentiles(w, n, 1, &out->hand_p50_ms, &out->hand_p99_ms);
}

/* Runs `workers` threads for `secs`; workers == 1 is the uncontended cycle. Returns 0, or -1
 * if the gateway's stats could not be read (the counts are then 0). */
static int rest_run(const char *url, const char *token, int workers, double secs, rest_row *out) {
    memset(out, 0, sizeof *out);
    dlock_client_options co = {.rest_token = token, .pool_size = workers};
    shared sh = {.id = workers > 1 ? KEY_PREFIX "rest-contend" : KEY_PREFIX "rest-cycle"};
    if (dlock_client_open(&sh.client, url, &co) != DLOCK_OK) {
        fprintf(stderr, "bench_rest: %s\n", dlock_errmsg());
        return -1;
    }
    worker w[MAX_WORKERS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < workers; i++) {
        w[i].sh = &sh;
        w[i].samp = malloc(MAX_SAMP * sizeof *w[i].samp);
        w[i].hand = malloc(MAX_SAMP * sizeof *w[i].hand);
        if (w[i].samp == NULL || w[i].hand == NULL ||
            pthread_create(&w[i].th, NULL, work, &w[i]) != 0) {
            die("cannot start REST worker %d", i);
        }
    }
    while (atomic_load(&sh.ready) < workers) {
        sleep_ns(1000000);
    }
    gw_stats s0, s1;
    int rc = read_stats(url, &s0);
    uint64_t start = now_ns();
    sh.end_ns = start + secs_ns(secs);
    atomic_store(&sh.go, 1);
    for (int i = 0; i < workers; i++) {
        pthread_join(w[i].th, NULL);
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    rc |= read_stats(url, &s1);
    summarise(w, workers, elapsed, out);
    out->overlaps = atomic_load(&sh.overlaps);
    if (rc == 0 && out->cycles > 0) {
        /* The two stats reads are GETs the gateway does not count; lock_new sends nothing. */
        double c = (double)out->cycles;
        out->streams = (s1.streams - s0.streams) / c;
        out->commands = (s1.commands - s0.commands) / c + out->streams;
        out->messages = (s1.messages - s0.messages) / c;
    }
    for (int i = 0; i < workers; i++) {
        free(w[i].samp);
        free(w[i].hand);
    }
    dlock_client_close(sh.client);
    return rc == 0 ? 0 : -1;
}

/* The targets, and commands per cycle as the gateway counts them. */
void mode_restwait(bench *b, const char *url) {
    const bench_config *cfg = b->cfg;
    const int W = cfg->workers;
    rest_row u, k;
    int ok = rest_run(url, cfg->rest_token, 1, cfg->secs, &u) == 0;
    ok &= rest_run(url, cfg->rest_token, W, cfg->secs, &k) == 0;
    char name[96];
    snprintf(name, sizeof name, "rest: W=%d dlock cycles/s (threads)", W);
    add_metric(b->res, name, k.cycles_per_s, "/s",
               "p50 %.2f ms, p99 %.2f ms wait; uncontended %.0f/s%s", k.p50_ms, k.p99_ms,
               u.cycles_per_s, k.errors + u.errors ? "; ERRORS" : "");
    snprintf(name, sizeof name, "rest: commands per cycle, W=1");
    add_metric(b->res, name, u.commands, "cmd", "%s", ok ? "" : "gateway stats unavailable");
    snprintf(name, sizeof name, "rest: commands per cycle, W=%d", W);
    add_metric(b->res, name, k.commands, "cmd",
               "of which SSE streams %.3f; %.2f messages per cycle", k.streams, k.messages);
    snprintf(name, sizeof name, "rest: W=%d hand-off, release -> next holder", W);
    add_metric(b->res, name, k.hand_p50_ms * 1000, "us",
               "p50; p99 %.0f us (a wait is %d hand-offs in a row: one stalled hand-off "
               "delays every waiter queued behind it)",
               k.hand_p99_ms * 1000, W - 1);
    snprintf(name, sizeof name, "rest: W=%d fairness, fewest/most cycles", W);
    add_check(b->res, name, k.fairness, 0.8, 1, "x");
    snprintf(name, sizeof name, "rest: W=%d p99 / p50 wait for the lock", W);
    add_check(b->res, name, k.p50_ms > 0 ? k.p99_ms / k.p50_ms : 0, 2.0, 0, "x");
    snprintf(name, sizeof name, "rest: W=%d cycles/s, contended / uncontended", W);
    add_check(b->res, name, u.cycles_per_s > 0 ? k.cycles_per_s / u.cycles_per_s : 0, 0.4, 1, "x");
    snprintf(name, sizeof name, "rest: W=%d overlapping holds", W);
    add_check(b->res, name, (double)k.overlaps, 0, 0, "");
}
