/* fault_worker: one contender of the mutual-exclusion check, or a deadline probe.
 *
 *   fault_worker worker -u URL -i ID -w N -s STATE -o LOG [options]
 *   fault_worker probe  -u URL -o LOG -x STOPFILE [options]
 *   fault_worker now                       prints CLOCK_MONOTONIC in microseconds
 *
 * worker: takes lock ID through the public API (dlock_lock_acquire with wait_ms and a token of
 * its own choosing, so it can later ask Redis whether a failed call left the key holding it),
 * then in the critical section does a read-modify-write of the counter in STATE (read, sleep,
 * write +1) through the fenced storage model of fault_common.h, and logs its hold interval with
 * the lease validity that dlock_lock_validity_ms reported. It stops after -n successful
 * acquisitions or at the -D deadline. With -p, the listed hold numbers are paused with a real
 * SIGSTOP (a child sends SIGCONT after -P ms) between the read and the write, so the lease runs
 * out while the holder believes it holds the lock; it then writes, extends and releases. With
 * -L N every N-th hold lasts a second (-H MS: that long instead; keep it inside the lease) and
 * shows the file STATE.longcs meanwhile, so the injector can kill Redis while a hold is in
 * progress. -r N sets the lock option wait_replicas = N (each lock write waits for N replicas,
 * WAIT).
 *
 * Worker kinds (issue 10), combinable:
 *   -R        reuse one token for every acquire of this worker (the seed's model: one uuid per
 *             Lock object), so a hand-off message from an earlier acquire names this one too
 *   -a        auto-renew (renew interval -I MS, 0 = the library's lease/3); the hold sleeps in
 *             10 ms steps and ends early when on_lost fires
 *   -e MS     dlock_lock_extend(MS) right after each acquire (with -a: extend mid-renewal)
 *   -k FILE   before each acquire write the call's token to FILE, remove it when the call returns,
 *             so run.sh can SIGKILL this worker while it is queued (and tell a waiter from a
 *             holder by asking Redis whose token the key holds)
 *   -V        a victim: run.sh kills it; it is not expected to finish (log header says so)
 *   -G MS     every other acquire waits only MS ms, so the worker often stops waiting while
 *             queued (a "gave up" event for the dead-waiter idle figure)
 *   -U        deliberately broken, to show the checker bites: after a release that failed, go
 *             on working for 50 ms as if the lock were still held, on the validity the acquire
 *             gave (a client that ignores that a lost release reply may have taken effect)
 *   -x FILE   also stop when FILE exists; -n 0 means no hold count limit
 * run.sh also SIGSTOPs workers at random (waiter-pause) and logs those pauses itself.
 *
 * probe: every 25 ms takes a fresh id with a single attempt (no waiting) and releases it, timing
 * every call, until STOPFILE exists. A fresh id is never held by anyone, so the only honest
 * answers are OK or an error: "not acquired" would be an error reported as contention.
 *
 * Every record is one line (fault_check reads them):
 *   worker W PID KIND              first line; KIND worker or victim
 *   acq|pacq T0 T1 RC ORPHAN CLASS   a failed or successful acquire; ORPHAN: -1 not checked,
 *                                    0 key not ours, 1 key held OUR token after the call failed,
 *                                    2 could not check; CLASS: what dlock_errmsg said about the
 *                                    lost reply: V verified-not-held, U unverifiable, N other
 *   rel|prel|ext T0 T1 RC            rel: the first release after a hold; rer: a retry of it
 *   rer T0 T1 RC                     after an error (a hold whose release failed every time is
 *                                    released again before the next acquire, until it works)
 *   hold W SEQ T0 START VALID_UNTIL END FENCE READ WRITE PAUSED V0
 *                                    T0: the acquire call began; VALID_UNTIL: the latest end of
 *                                    validity the library promised during the hold (after the
 *                                    acquire, after each extend, at the end); V0: the validity
 *                                    in ms the acquire itself reported
 *   lost W SEQ T REASON              on_lost fired (auto-renew) at T
 *   stale W SEQ EXT_RC REL_RC WRITE VALIDITY_MS   (a paused hold, after waking)
 *   done W SUCCESSES ERRORS NOT_ACQUIRED */
#include "dlock.h"
#include "fault_common.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct cfg {
    const char *mode;
    const char *url, *direct_url, *id, *state, *log, *stopfile;
    const char *marker;
    int wid, cycles, fencing, connect_ms, command_ms, long_every, reuse, renew, victim, broken;
    int wait_replicas;
    int64_t lease_ms, wait_ms, cs_us, think_ms, deadline_s, pause_ms, renew_ms, extend_ms,
        giveup_ms, long_ms;
    int pauses[16], npauses;
} cfg;

static FILE *wlog;
static dlock_client *inspector; /* a second client, straight to Redis, for orphan checks */

static void usage(void) {
    fprintf(stderr, "usage: fault_worker worker|probe|now [-u URL] [-d DIRECT_URL] [-i ID] [-w N]\n"
                    "  [-n CYCLES] [-l LEASE_MS] [-W WAIT_MS] [-f] [-c CS_US] [-t THINK_MS]\n"
                    "  [-s STATE] [-o LOG] [-C CONNECT_MS] [-T COMMAND_MS] [-D DEADLINE_S]\n"
                    "  [-p HOLD,HOLD,...] [-P PAUSE_MS] [-x STOPFILE] [-L EVERY]\n"
                    "  [-R] [-a] [-I RENEW_MS] [-e EXTEND_MS] [-k MARKER] [-V] [-G GIVEUP_MS]\n"
                    "  [-H LONG_MS] [-r WAIT_REPLICAS] [-U]\n");
    exit(2);
}

static int64_t num(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0) {
        usage();
    }
    return v;
}

static void parse(int argc, char **argv, cfg *c) {
    *c = (cfg){.cycles = 200,
               .lease_ms = 2000,
               .wait_ms = 10000,
               .cs_us = 2000,
               .think_ms = 5,
               .connect_ms = 1000,
               .command_ms = 500,
               .deadline_s = 240,
               .pause_ms = 3000,
               .long_ms = 1000};
    if (argc < 2) {
        usage();
    }
    c->mode = argv[1];
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "u:d:i:w:n:l:W:fc:t:s:o:C:T:D:p:P:x:L:RaI:e:k:VG:UH:r:")) !=
           -1) {
        switch (opt) {
        case 'u':
            c->url = optarg;
            break;
        case 'd':
            c->direct_url = optarg;
            break;
        case 'i':
            c->id = optarg;
            break;
        case 'w':
            c->wid = (int)num(optarg);
            break;
        case 'n':
            c->cycles = (int)num(optarg);
            break;
        case 'l':
            c->lease_ms = num(optarg);
            break;
        case 'W':
            c->wait_ms = num(optarg);
            break;
        case 'f':
            c->fencing = 1;
            break;
        case 'c':
            c->cs_us = num(optarg);
            break;
        case 't':
            c->think_ms = num(optarg);
            break;
        case 's':
            c->state = optarg;
            break;
        case 'o':
            c->log = optarg;
            break;
        case 'C':
            c->connect_ms = (int)num(optarg);
            break;
        case 'T':
            c->command_ms = (int)num(optarg);
            break;
        case 'D':
            c->deadline_s = num(optarg);
            break;
        case 'p':
            for (char *tok = strtok(optarg, ","); tok != NULL && c->npauses < 16;
                 tok = strtok(NULL, ",")) {
                c->pauses[c->npauses++] = (int)num(tok);
            }
            break;
        case 'P':
            c->pause_ms = num(optarg);
            break;
        case 'x':
            c->stopfile = optarg;
            break;
        case 'L':
            c->long_every = (int)num(optarg);
            break;
        case 'R':
            c->reuse = 1;
            break;
        case 'a':
            c->renew = 1;
            break;
        case 'I':
            c->renew_ms = num(optarg);
            break;
        case 'e':
            c->extend_ms = num(optarg);
            break;
        case 'k':
            c->marker = optarg;
            break;
        case 'V':
            c->victim = 1;
            break;
        case 'G':
            c->giveup_ms = num(optarg);
            break;
        case 'U':
            c->broken = 1;
            break;
        case 'H':
            c->long_ms = num(optarg);
            break;
        case 'r':
            c->wait_replicas = (int)num(optarg);
            break;
        default:
            usage();
        }
    }
    if (c->direct_url == NULL) {
        c->direct_url = c->url;
    }
}

static dlock_client *open_client(const cfg *c, const char *url, int64_t give_up_us) {
    dlock_client_options o = {.connect_timeout_ms = c->connect_ms,
                              .command_timeout_ms = c->command_ms};
    for (;;) {
        dlock_client *cl;
        int rc = dlock_client_open(&cl, url, &o);
        if (rc == DLOCK_OK) {
            return cl;
        }
        if (fault_now_us() > give_up_us) {
            fprintf(stderr, "fault_worker: cannot open %s: %s\n", url, dlock_errmsg());
            exit(1);
        }
        fault_sleep_us(50000);
    }
}

/* Did a call that failed leave the key holding `token`? Asked on the direct client, retried
 * for a while if Redis is down. 0 no, 1 yes, 2 could not tell. */
static int orphan_check(const cfg *c, const char *id, const char *token) {
    int64_t give_up = fault_now_us() + 3000000;
    for (;;) {
        dlock_lock_info info;
        if (dlock_lock_inspect(inspector, id, token, &info) == DLOCK_OK) {
            return info.token_matches ? 1 : 0;
        }
        if (fault_now_us() > give_up) {
            return 2;
        }
        (void)c;
        fault_sleep_us(50000);
    }
}

static char classify(int rc) {
    if (rc >= 0) {
        return '-';
    }
    const char *m = dlock_errmsg();
    if (strstr(m, "does not hold") != NULL) {
        return 'V';
    }
    if (strstr(m, "could not check") != NULL) {
        return 'U';
    }
    return 'N';
}

static int is_pause(const cfg *c, int hold) {
    for (int i = 0; i < c->npauses; i++) {
        if (c->pauses[i] == hold) {
            return 1;
        }
    }
    return 0;
}

/* A real SIGSTOP of this process for pause_ms: a child wakes us with SIGCONT. */
static void pause_self(int64_t pause_ms) {
    fflush(NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        fault_sleep_us(pause_ms * 1000);
        kill(parent, SIGCONT);
        _exit(0);
    }
    if (child > 0) {
        raise(SIGSTOP);
        waitpid(child, NULL, 0);
    }
}

/* on_lost, on the library's renewal thread: log it and tell the hold to stop. */
typedef struct hold_ctx {
    int wid, seq;
    volatile sig_atomic_t lost;
} hold_ctx;

static void on_lost(dlock_lock *lock, int reason, void *userdata) {
    hold_ctx *h = userdata;
    (void)lock;
    h->lost = 1;
    fprintf(wlog, "lost %d %d %" PRId64 " %d\n", h->wid, h->seq, fault_now_us(), reason);
    fflush(wlog);
}

static int stop_requested(const cfg *c) {
    struct stat st;
    return c->stopfile != NULL && stat(c->stopfile, &st) == 0;
}

/* The marker run.sh reads to kill this worker while it waits: the call's token, written whole
 * (rename) so a reader never sees half of it. */
static void marker_set(const cfg *c, const char *token) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->marker);
    FILE *f = fopen(tmp, "w");
    if (f != NULL) {
        fprintf(f, "%s\n", token);
        fclose(f);
        rename(tmp, c->marker);
    }
}

/* Sleeps us microseconds of work, in 10 ms steps for an auto-renewed hold so that it stops as
 * soon as on_lost says the lock is gone. */
static void work(const hold_ctx *h, int64_t us) {
    int64_t until = fault_now_us() + us;
    for (int64_t now = fault_now_us(); now < until && !h->lost; now = fault_now_us()) {
        fault_sleep_us(until - now < 10000 ? until - now : 10000);
    }
}

static int64_t valid_until_now(const dlock_lock *lock) {
    int64_t v = dlock_lock_validity_ms(lock);
    return v > 0 ? fault_now_us() + v * 1000 : 0;
}

/* The first release of a hold is logged as rel; after an error it is retried (rer) a few times,
 * so that a lost release reply does not block the id for a whole lease. `again`: every attempt
 * is a retry (finish_release). */
static int release_hold(const cfg *c, dlock_lock *lock, int *errors, int again) {
    int rel = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        int64_t t0 = fault_now_us();
        rel = dlock_lock_release(lock);
        fprintf(wlog, "%s %" PRId64 " %" PRId64 " %d\n", attempt == 0 && !again ? "rel" : "rer", t0,
                fault_now_us(), rel);
        if (rel >= 0) {
            break;
        }
        fprintf(stderr, "fault_worker %d: release: %s\n", c->wid, dlock_errmsg());
        (*errors)++;
        fault_sleep_us(50000);
    }
    return rel;
}

/* A hold whose release failed every time (Redis away for longer than the retries, a failover)
 * still holds its token in the handle, and an acquire on the handle would answer at once that
 * it holds the lock already: release it first, as the library says, until that works. */
static void finish_release(const cfg *c, dlock_lock *lock, int *errors, int64_t deadline) {
    while (!stop_requested(c) && fault_now_us() < deadline &&
           release_hold(c, lock, errors, 1) < 0) {
    }
}

static int run_worker(const cfg *c) {
    if (c->url == NULL || c->id == NULL || c->state == NULL) {
        usage();
    }
    int64_t start = fault_now_us(), deadline = start + c->deadline_s * 1000000;
    dlock_client *cl = open_client(c, c->url, start + 10000000);
    inspector = open_client(c, c->direct_url, start + 10000000);
    static hold_ctx hc;
    hc.wid = c->wid;
    dlock_lock_options lo = {.lease_ms = c->lease_ms,
                             .fencing = c->fencing,
                             .auto_renew = c->renew,
                             .renew_interval_ms = c->renew_ms,
                             .on_lost = on_lost,
                             .userdata = &hc,
                             .wait_replicas = c->wait_replicas};
    dlock_lock *lock;
    if (dlock_lock_new(&lock, cl, c->id, &lo) != DLOCK_OK) {
        fprintf(stderr, "fault_worker: lock_new: %s\n", dlock_errmsg());
        return 1;
    }
    fprintf(wlog, "worker %d %d %s\n", c->wid, (int)getpid(), c->victim ? "victim" : "worker");
    fflush(wlog);
    unsigned seed = (unsigned)getpid() ^ (unsigned)start;
    int succ = 0, errors = 0, notacq = 0, unreleased = 0;
    for (int seq = 1;
         (c->cycles == 0 || succ < c->cycles) && fault_now_us() < deadline && !stop_requested(c);
         seq++) {
        if (unreleased) {
            finish_release(c, lock, &errors, deadline);
            unreleased = 0;
        }
        char token[64];
        if (c->reuse) {
            snprintf(token, sizeof token, "w%d-%d", c->wid, (int)getpid());
        } else {
            snprintf(token, sizeof token, "w%d-%d-%d", c->wid, (int)getpid(), seq);
        }
        /* -G: every other wait is short, so this worker often gives up while queued. */
        int64_t wait = c->giveup_ms > 0 && seq % 2 == 0 ? c->giveup_ms : c->wait_ms;
        dlock_acquire_options ao = {.wait_ms = wait, .token = token};
        if (c->marker != NULL) {
            marker_set(c, token);
        }
        hc.seq = seq;
        hc.lost = 0;
        int64_t t0 = fault_now_us();
        int rc = dlock_lock_acquire(lock, &ao);
        int64_t t1 = fault_now_us();
        if (c->marker != NULL) {
            unlink(c->marker);
        }
        if (rc != DLOCK_OK) {
            char cls = classify(rc);
            if (rc < 0) {
                fprintf(stderr, "fault_worker %d: acquire: %s\n", c->wid, dlock_errmsg());
            }
            int orphan = orphan_check(c, c->id, token);
            fprintf(wlog, "acq %" PRId64 " %" PRId64 " %d %d %c\n", t0, t1, rc, orphan, cls);
            if (rc < 0) {
                errors++;
                fault_sleep_us(20000); /* do not spin while Redis is away */
            } else {
                notacq++;
            }
            fflush(wlog);
            continue;
        }
        fprintf(wlog, "acq %" PRId64 " %" PRId64 " 0 -1 -\n", t0, t1);
        if (c->victim) {
            fflush(wlog); /* run.sh reads it to tell a victim that held from one that waited */
        }
        int64_t v0 = dlock_lock_validity_ms(lock);
        int64_t valid_until = v0 > 0 ? fault_now_us() + v0 * 1000 : 0;
        int64_t fence = dlock_lock_fencing_token(lock);
        int hold = succ + 1, paused = is_pause(c, hold);
        if (c->extend_ms > 0) {
            int64_t e0 = fault_now_us();
            int ext = dlock_lock_extend(lock, c->extend_ms);
            fprintf(wlog, "ext %" PRId64 " %" PRId64 " %d\n", e0, fault_now_us(), ext);
            if (ext < 0) {
                fprintf(stderr, "fault_worker %d: extend: %s\n", c->wid, dlock_errmsg());
                errors++;
            }
            int64_t v = valid_until_now(lock);
            valid_until = v > valid_until ? v : valid_until;
        }

        /* The critical section: read, (pause), work, write back + 1. */
        int64_t value = 0;
        int rd = fault_storage_access(c->state, 0, fence, &value), wr = -1;
        if (paused) {
            pause_self(c->pause_ms);
        }
        /* Every -L'th hold works for -H ms (a second), inside its lease, with a marker file that
         * tells the fault injector "kill Redis now": a data loss then lands mid-hold. */
        int is_long = c->long_every > 0 && hold % c->long_every == 0;
        char marker[4096];
        snprintf(marker, sizeof marker, "%s.longcs", c->state);
        if (rd == 1 && is_long) {
            fclose(fopen(marker, "w"));
            fault_sleep_us(c->long_ms * 1000);
            unlink(marker);
        }
        if (rd == 1) {
            work(&hc, c->cs_us);
            value++;
            wr = hc.lost ? 0 : fault_storage_access(c->state, 1, fence, &value);
        }
        int64_t end = fault_now_us();
        if (rd < 0 || (rd == 1 && wr < 0)) {
            fprintf(stderr, "fault_worker: storage I/O error on %s\n", c->state);
            return 1;
        }
        /* Auto-renewal may have promised more by now: the last promise counts too. */
        int64_t v_end = valid_until_now(lock);
        valid_until = v_end > valid_until ? v_end : valid_until;
        if (hc.lost && wr == 0) {
            wr = -1; /* not attempted: the library said the lock was lost */
        }
        fprintf(wlog,
                "hold %d %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                " %d %d %d %" PRId64 "\n",
                c->wid, seq, t0, t1, valid_until, end, fence, rd, wr, paused, v0);

        int ext = 0;
        int64_t stale_validity = paused ? dlock_lock_validity_ms(lock) : 0;
        if (paused) {
            t0 = fault_now_us();
            ext = dlock_lock_extend(lock, 100);
            fprintf(wlog, "ext %" PRId64 " %" PRId64 " %d\n", t0, fault_now_us(), ext);
        }
        int errors_before = errors;
        int rel = release_hold(c, lock, &errors, 0);
        unreleased = rel < 0;
        if (c->broken && errors > errors_before) {
            int64_t b0 = fault_now_us();
            fault_sleep_us(50000);
            fprintf(wlog,
                    "hold %d %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                    " 1 -1 0 %" PRId64 "\n",
                    c->wid, seq, t0, b0, valid_until, fault_now_us(), fence, v0);
        }
        if (paused) {
            fprintf(wlog, "stale %d %d %d %d %d %" PRId64 "\n", c->wid, seq, ext, rel, wr,
                    stale_validity);
        }
        fflush(wlog);
        succ++;
        if (c->think_ms > 0) {
            fault_sleep_us((int64_t)(rand_r(&seed) % (unsigned)(c->think_ms * 1000 + 1)));
        }
    }
    fprintf(wlog, "done %d %d %d %d\n", c->wid, succ, errors, notacq);
    dlock_lock_free(lock);
    dlock_client_close(inspector);
    dlock_client_close(cl);
    return c->cycles == 0 || succ == c->cycles ? 0 : 3;
}

static int run_probe(const cfg *c) {
    if (c->url == NULL || c->stopfile == NULL) {
        usage();
    }
    int64_t start = fault_now_us(), deadline = start + c->deadline_s * 1000000;
    dlock_client *cl = open_client(c, c->url, start + 10000000);
    inspector = open_client(c, c->direct_url, start + 10000000);
    dlock_lock_options lo = {.lease_ms = c->lease_ms,
                             .attempts = 1,
                             .fencing = c->fencing,
                             .wait_replicas = c->wait_replicas};
    for (int n = 1; !stop_requested(c) && fault_now_us() < deadline; n++) {
        char id[64], token[64];
        snprintf(id, sizeof id, "dlock-fault:probe:%d:%d", (int)getpid(), n);
        snprintf(token, sizeof token, "p-%d-%d", (int)getpid(), n);
        dlock_lock *lock;
        if (dlock_lock_new(&lock, cl, id, &lo) != DLOCK_OK) {
            return 1;
        }
        dlock_acquire_options ao = {.token = token};
        int64_t t0 = fault_now_us();
        int rc = dlock_lock_acquire(lock, &ao);
        int64_t t1 = fault_now_us();
        if (rc == DLOCK_OK) {
            fprintf(wlog, "pacq %" PRId64 " %" PRId64 " 0 -1 -\n", t0, t1);
            t0 = fault_now_us();
            int rel = dlock_lock_release(lock);
            fprintf(wlog, "prel %" PRId64 " %" PRId64 " %d\n", t0, fault_now_us(), rel);
        } else {
            char cls = classify(rc);
            int orphan = orphan_check(c, id, token);
            fprintf(wlog, "pacq %" PRId64 " %" PRId64 " %d %d %c\n", t0, t1, rc, orphan, cls);
        }
        fflush(wlog);
        dlock_lock_free(lock);
        fault_sleep_us(25000);
    }
    dlock_client_close(inspector);
    dlock_client_close(cl);
    return 0;
}

int main(int argc, char **argv) {
    cfg c;
    if (argc >= 2 && strcmp(argv[1], "now") == 0) {
        printf("%" PRId64 "\n", fault_now_us());
        return 0;
    }
    parse(argc, argv, &c);
    if (c.log == NULL) {
        usage();
    }
    if ((wlog = fopen(c.log, "a")) == NULL) {
        perror(c.log);
        return 1;
    }
    int rc;
    if (strcmp(c.mode, "worker") == 0) {
        rc = run_worker(&c);
    } else if (strcmp(c.mode, "probe") == 0) {
        rc = run_probe(&c);
    } else {
        usage();
        rc = 2;
    }
    fclose(wlog);
    return rc;
}
