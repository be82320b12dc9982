/* quorum_fault: the mutual-exclusion check of `make fault`, on a Redlock over the five servers of
 * tests/harness/quorum-env.sh, while a random minority of them is paused (SIGSTOP) or killed and
 * restarted from its AOF, over and over.
 *
 *   quorum_fault [WORKERS [HOLDS [broken]]]
 *
 * (default 4 x 50; the environment gives DLOCK_TEST_ENV_DIR and DLOCK_QUORUM_HARNESS)
 *
 * WORKERS processes each take the lock HOLDS times (fenced, lease 1 s, wait_ms 15 s) and do a
 * read-modify-write of a counter in shared "storage" that refuses an access whose fencing token
 * is lower than the highest it has seen. Then it checks: no two holds intersect while both
 * holders' validity lasted; no update was lost (counter == accepted writes); fencing tokens
 * increase in the order of the holds; every worker finished. Every 10th hold lasts 400 ms, so
 * that faults land inside holds. Prints its figures; exit 0 if clean. "broken" makes worker 0
 * skip the lock on every 5th hold (it works as if it held it, with its last token): the check
 * must then fail, which shows it can. It ends with a FAULTS and a FIGURES line for the figures of
 * tests/fault/run.sh (scenario quorum, `make fault`); ctest runs the broken self-test only. */
#define _GNU_SOURCE
#include "dlock.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N        5
#define MAXHOLDS 100000

typedef struct hold {
    int64_t start_us, valid_until_us, end_us, fence;
} hold;

typedef struct shared {
    pthread_mutex_t mu; /* the storage's own lock: one access at a time, as a database would */
    int64_t counter, max_fence, accepted, refused;
    int nholds, errors, done;
    hold holds[MAXHOLDS];
} shared;

static char env_urls[2048], env_dir[1024], env_pid[N][1024];

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void load_env(void) {
    const char *dir = getenv("DLOCK_TEST_ENV_DIR");
    char path[1200], line[2200];
    snprintf(path, sizeof path, "%s/env", dir != NULL ? dir : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "quorum_fault: cannot read %s (run through ctest)\n", path);
        exit(2);
    }
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        int i;
        if (strncmp(line, "DLOCK_QUORUM_URLS=", 18) == 0) {
            snprintf(env_urls, sizeof env_urls, "%.2000s", line + 18);
        } else if (strncmp(line, "DLOCK_QUORUM_DIR=", 17) == 0) {
            snprintf(env_dir, sizeof env_dir, "%.1000s", line + 17);
        } else if (sscanf(line, "DLOCK_Q%d_PID_FILE=", &i) == 1 && i >= 1 && i <= N) {
            snprintf(env_pid[i - 1], sizeof env_pid[0], "%.1000s", strchr(line, '=') + 1);
        }
    }
    fclose(f);
}

/* Storage access with the fencing check. Returns 1 if accepted. */
static int access_storage(shared *s, int64_t fence, int write, int64_t *value) {
    pthread_mutex_lock(&s->mu);
    int ok = fence >= s->max_fence;
    if (!ok) {
        s->refused++;
    } else {
        s->max_fence = fence;
        if (write) {
            s->counter = *value;
            s->accepted++;
        } else {
            *value = s->counter;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void worker(shared *s, int wid, int holds, int broken) {
    const char *urls[N];
    char buf[sizeof env_urls];
    snprintf(buf, sizeof buf, "%s", env_urls);
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p != NULL && n < N;
         p = strtok_r(NULL, ",", &save)) {
        urls[n++] = p;
    }
    dlock_client_options co = {.connect_timeout_ms = 1000, .command_timeout_ms = 500};
    dlock_client *c;
    if (dlock_client_open_quorum(&c, urls, (size_t)n, &co) != DLOCK_OK) {
        fprintf(stderr, "worker: open: %s\n", dlock_errmsg());
        _exit(1);
    }
    dlock_lock_options lo = {.lease_ms = 1000, .fencing = 1};
    dlock_lock *l;
    dlock_lock_new(&l, c, "quorum-fault", &lo);
    dlock_acquire_options ao = {.wait_ms = 15000};
    int64_t give_up = now_us() + 240 * 1000000LL;
    int64_t last_fence = 0;
    for (int k = 0; k < holds && now_us() < give_up;) {
        if (broken && wid == 0 && k % 5 == 4) {
            hold h = {now_us(), now_us() + 1000000, 0, last_fence};
            int64_t v = 0;
            if (access_storage(s, h.fence, 0, &v)) {
                usleep(20000);
                v++;
                access_storage(s, h.fence, 1, &v);
            }
            h.end_us = now_us();
            int at = __atomic_fetch_add(&s->nholds, 1, __ATOMIC_SEQ_CST);
            s->holds[at < MAXHOLDS ? at : 0] = h;
            k++;
            continue;
        }
        int rc = dlock_lock_acquire(l, &ao);
        if (rc != DLOCK_OK) {
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            sleep_ms(20);
            continue;
        }
        hold h = {now_us(), 0, 0, dlock_lock_fencing_token(l)};
        last_fence = h.fence;
        h.valid_until_us = h.start_us + dlock_lock_validity_ms(l) * 1000;
        int64_t v = 0;
        if (access_storage(s, h.fence, 0, &v)) {
            usleep(k % 10 == 9 ? 400000 : 2000);
            v++;
            access_storage(s, h.fence, 1, &v);
        }
        h.end_us = now_us();
        dlock_lock_release(l);
        int at = __atomic_fetch_add(&s->nholds, 1, __ATOMIC_SEQ_CST);
        if (at < MAXHOLDS) {
            s->holds[at] = h;
        }
        k++;
    }
    __atomic_add_fetch(&s->done, 1, __ATOMIC_SEQ_CST);
    dlock_lock_free(l);
    dlock_client_close(c);
    _exit(0);
}

static pid_t read_pid(int i) {
    FILE *f = fopen(env_pid[i], "r");
    long pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return (pid_t)pid;
}

static void harness(const char *cmd, int i) {
    char line[3000];
    snprintf(line, sizeof line, "bash '%s' %s '%s' %d >/dev/null", getenv("DLOCK_QUORUM_HARNESS"),
             cmd, env_dir, i + 1);
    if (system(line) != 0) {
        fprintf(stderr, "quorum_fault: %s %d failed\n", cmd, i + 1);
    }
}

/* One fault: 1 or 2 servers paused or killed for 100..1500 ms (sometimes past the lease). */
static int inject(int *pauses, int *kills) {
    int down[2] = {-1, -1}, how[2], k = 1 + rand() % 2;
    for (int d = 0; d < k; d++) {
        do {
            down[d] = rand() % N;
        } while (d == 1 && down[1] == down[0]);
        how[d] = rand() % 2;
        if (how[d]) {
            kill(read_pid(down[d]), SIGSTOP);
            (*pauses)++;
        } else {
            harness("kill", down[d]);
            (*kills)++;
        }
    }
    sleep_ms(100 + rand() % 1400);
    for (int d = 0; d < k; d++) {
        if (how[d]) {
            kill(read_pid(down[d]), SIGCONT);
        } else {
            harness("restart", down[d]);
        }
    }
    return k;
}

static int by_start(const void *a, const void *b) {
    const hold *x = a, *y = b;
    return x->start_us < y->start_us ? -1 : x->start_us > y->start_us;
}

static int check(shared *s, int workers, int holds) {
    int n = s->nholds < MAXHOLDS ? s->nholds : MAXHOLDS, overlaps = 0, backwards = 0;
    qsort(s->holds, (size_t)n, sizeof *s->holds, by_start);
    for (int i = 0; i < n; i++) {
        const hold *a = &s->holds[i];
        int64_t a_end = a->end_us < a->valid_until_us ? a->end_us : a->valid_until_us;
        for (int k = i + 1; k < n && s->holds[k].start_us < a_end; k++) {
            if (s->holds[k].start_us < s->holds[k].valid_until_us) {
                overlaps++; /* both valid at s->holds[k].start_us */
            }
        }
        if (i > 0 && a->fence <= s->holds[i - 1].fence) {
            backwards++;
        }
    }
    int lost = s->counter != s->accepted;
    int ok = overlaps == 0 && backwards == 0 && !lost && s->done == workers && n == workers * holds;
    printf("quorum_fault: %d holds by %d workers (%d finished), %d failed acquires, fencing "
           "tokens up to %lld\n",
           n, workers, s->done, s->errors, (long long)s->max_fence);
    printf("quorum_fault: overlaps while both valid %d, tokens not increasing %d, lost update %s "
           "(counter %lld, accepted %lld), refused accesses %lld\n",
           overlaps, backwards, lost ? "YES" : "no", (long long)s->counter, (long long)s->accepted,
           (long long)s->refused);
    printf("FIGURES name=quorum ok=%d holds=%d overlaps=%d allowed_overlaps=0 fence_backwards=%d "
           "lost_updates=%lld rejected=%lld errors=%d finished=%d workers=%d\n",
           ok, n, overlaps, backwards, (long long)(s->accepted - s->counter), (long long)s->refused,
           s->errors, s->done, workers);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    int workers = argc > 1 ? atoi(argv[1]) : 4, holds = argc > 2 ? atoi(argv[2]) : 50;
    int broken = argc > 3 && strcmp(argv[3], "broken") == 0;
    load_env();
    shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED || getenv("DLOCK_QUORUM_HARNESS") == NULL) {
        fprintf(stderr, "quorum_fault: mmap failed or DLOCK_QUORUM_HARNESS unset\n");
        return 2;
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->mu, &ma);
    pid_t pids[64];
    workers = workers > 64 ? 64 : workers;
    for (int w = 0; w < workers; w++) {
        if ((pids[w] = fork()) == 0) {
            worker(s, w, holds, broken);
        }
    }
    srand((unsigned)getpid());
    int pauses = 0, kills = 0, faults = 0;
    while (__atomic_load_n(&s->done, __ATOMIC_SEQ_CST) < workers) {
        faults += inject(&pauses, &kills) > 0;
        sleep_ms(200);
    }
    for (int w = 0; w < workers; w++) {
        waitpid(pids[w], NULL, 0);
    }
    printf("quorum_fault: %d faults: %d pauses, %d kills with AOF restart\n", faults, pauses,
           kills);
    printf("FAULTS name=quorum n=%d what=%d SIGSTOPs and %d SIGKILLs + AOF restarts of 1 or 2 of "
           "the 5 servers\n",
           faults, pauses, kills);
    int rc = check(s, workers, holds);
    munmap(s, sizeof *s);
    return rc;
}
