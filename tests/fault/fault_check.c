/* fault_check: reads the logs of fault_worker processes and the storage file, and checks what
 * docs/guarantees.md promises for one run.
 *
 *   fault_check --name NAME --state STATE [options] LOG...
 *   fault_check --selftest
 *
 * Options:
 *   --workers N --cycles M   every worker must finish M holds (clients recover after faults)
 *   --fencing                the run used fencing tokens
 *   --losses FILE            monotonic microsecond times at which Redis lost its data (a
 *                            restart without persistence), one a line
 *   --wait-ms W --acq-bound-ms A --bound-ms B
 *                            a blocking acquire that fails must return within W + A ms; a failed
 *                            release/extend, or a failed single-attempt probe acquire, within B
 *   --pauses K               K holders were SIGSTOPped past their lease (see fault_worker -p)
 *   --expect-lost-updates    unfenced pause run: the checker must SEE the lost update (a
 *                            sensitivity check of the checker itself)
 *   --expect-allowed-overlaps  restart without persistence: a second holder must have come in
 *                            while the first still held (shows the fault bit)
 *   --clean                  no fault at all: no error, no "not acquired", no overlap
 *   --min-errors N           the faults must have made at least N calls fail
 *   --summary FILE           append one "FIGURES ..." line for the suite's totals
 *
 * Checks (each failure is printed with the records involved; the exit status is 1 on any):
 *   - overlap: two holds whose intervals intersect while BOTH leases were still valid (by the
 *     validity each holder was given). Allowed only if a data loss happened between the first
 *     hold's acquire call and the second hold's start, and then fencing must have kept the
 *     storage consistent. An intersection after the first holder's validity ran out is a
 *     "takeover" (expected when a holder is paused), not a violation.
 *   - lost update: the storage counter must equal the number of accepted writes.
 *   - stale holder (paused): its validity must be 0 on waking, its extend and release must
 *     return DLOCK_NOT_HELD, and with fencing
 *     its write must have been rejected and a newer holder must have had a higher token.
 *   - orphan: after an acquire that did not return OK, Redis must not hold the call's token
 *     if the call said "not acquired", or failed saying it had checked ("does not hold").
 *     An error after which the library could not reach Redis to check may leave the key
 *     holding the token until its lease ends (counted, not a failure).
 *   - deadlines: see --wait-ms/--bound-ms.
 *   - probe: a fresh id must never be "not acquired", and the last probe calls must succeed. */
#include "fault_common.h"

#include <stdlib.h>

#define NOT_ACQUIRED 1
#define NOT_HELD     2

typedef struct hold {
    int w, seq;
    int64_t t0, start, valid, end, fence;
    int rd, wr, paused;
} hold;

typedef struct op {
    char kind[8];
    int64_t t0, t1;
    int rc, orphan;
    char cls;
} op;

typedef struct stale {
    int w, seq, ext, rel, wr;
    int64_t validity;
} stale;

#define VEC(T)                                                                                     \
    struct {                                                                                       \
        T *v;                                                                                      \
        size_t n, cap;                                                                             \
    }
#define PUSH(vec, x)                                                                               \
    do {                                                                                           \
        if ((vec).n == (vec).cap) {                                                                \
            (vec).cap = (vec).cap ? (vec).cap * 2 : 256;                                           \
            (vec).v = realloc((vec).v, (vec).cap * sizeof *(vec).v);                               \
            if ((vec).v == NULL) {                                                                 \
                abort();                                                                           \
            }                                                                                      \
        }                                                                                          \
        (vec).v[(vec).n++] = (x);                                                                  \
    } while (0)

static VEC(hold) holds;
static VEC(op) ops;
static VEC(stale) stales;
static VEC(int64_t) losses;
static int failures;

typedef struct done {
    int w, succ, errors, notacq;
} done;
static VEC(done) dones;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("  FAIL: ", stdout);
    vprintf(fmt, ap);
    fputs("\n", stdout);
    va_end(ap);
    failures++;
}

static void read_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fail("cannot read %s", path);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        hold h;
        op o;
        stale s;
        done d;
        if (sscanf(line,
                   "hold %d %d %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                   " %d %d %d",
                   &h.w, &h.seq, &h.t0, &h.start, &h.valid, &h.end, &h.fence, &h.rd, &h.wr,
                   &h.paused) == 10) {
            PUSH(holds, h);
        } else if (sscanf(line, "stale %d %d %d %d %d %" SCNd64, &s.w, &s.seq, &s.ext, &s.rel,
                          &s.wr, &s.validity) == 6) {
            PUSH(stales, s);
        } else if (sscanf(line, "done %d %d %d %d", &d.w, &d.succ, &d.errors, &d.notacq) == 4) {
            PUSH(dones, d);
        } else if (sscanf(line, "%7s %" SCNd64 " %" SCNd64 " %d %d %c", o.kind, &o.t0, &o.t1, &o.rc,
                          &o.orphan, &o.cls) == 6) {
            PUSH(ops, o);
        } else if (sscanf(line, "%7s %" SCNd64 " %" SCNd64 " %d", o.kind, &o.t0, &o.t1, &o.rc) ==
                   4) {
            o.orphan = -1;
            o.cls = '-';
            PUSH(ops, o);
        } else {
            fail("%s: unreadable record: %s", path, line);
        }
    }
    fclose(f);
}

static int cmp_start(const void *a, const void *b) {
    const hold *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* A data loss strictly between the first hold's acquire call and the second hold's start. */
static int loss_between(int64_t from, int64_t to) {
    for (size_t i = 0; i < losses.n; i++) {
        if (losses.v[i] > from && losses.v[i] < to) {
            return 1;
        }
    }
    return 0;
}

typedef struct overlap_counts {
    long violations, allowed, takeovers, uncaught;
} overlap_counts;

/* All pairs of holds that intersect. Sorted by start, so for each hold only the earlier ones
 * that have not ended by its start can intersect it. */
static overlap_counts check_overlaps(int verbose) {
    overlap_counts oc = {0, 0, 0, 0};
    qsort(holds.v, holds.n, sizeof *holds.v, cmp_start);
    for (size_t j = 0; j < holds.n; j++) {
        const hold *b = &holds.v[j];
        for (size_t i = 0; i < j; i++) {
            const hold *a = &holds.v[i];
            if (a->end <= b->start) {
                continue;
            }
            /* a and b intersect from b->start on. */
            int64_t both_valid_until = min64(min64(a->end, b->end), min64(a->valid, b->valid));
            if (b->start < both_valid_until) {
                if (loss_between(a->t0, b->start)) {
                    oc.allowed++;
                    /* Fencing must have refused one of the two read-modify-writes. */
                    if (a->rd == 1 && a->wr == 1 && b->rd == 1 && b->wr == 1) {
                        oc.uncaught++;
                    }
                    if (verbose && oc.allowed <= 3) {
                        printf("  allowed overlap (Redis lost the key in between): w%d#%d "
                               "[%" PRId64 ", %" PRId64 "] fence %" PRId64 " and w%d#%d "
                               "[%" PRId64 ", %" PRId64 "] fence %" PRId64 "\n",
                               a->w, a->seq, a->start, a->end, a->fence, b->w, b->seq, b->start,
                               b->end, b->fence);
                    }
                } else {
                    oc.violations++;
                    if (verbose) {
                        fail("two holders while both leases were valid: w%d#%d [%" PRId64
                             ", %" PRId64 "] valid to %" PRId64 " and w%d#%d [%" PRId64 ", %" PRId64
                             "] valid to %" PRId64 " (us, CLOCK_MONOTONIC)",
                             a->w, a->seq, a->start, a->end, a->valid, b->w, b->seq, b->start,
                             b->end, b->valid);
                    }
                }
            } else {
                oc.takeovers++;
            }
        }
    }
    return oc;
}

static int selftest(void) {
    /* Three synthetic histories, one per verdict. */
    hold a = {1, 1, 0, 100, 1000, 600, 1, 1, 1, 0}, b = {2, 1, 150, 500, 1500, 900, 2, 1, 1, 0};
    PUSH(holds, a);
    PUSH(holds, b);
    overlap_counts oc = check_overlaps(0);
    int ok = oc.violations == 1 && oc.takeovers == 0;
    holds.n = 0;
    b.start = 1200; /* a's validity ran out at 1000: a takeover */
    a.end = 1300;
    PUSH(holds, a);
    PUSH(holds, b);
    oc = check_overlaps(0);
    ok = ok && oc.violations == 0 && oc.takeovers == 1;
    holds.n = 0;
    b.start = 500; /* overlap while valid, but Redis lost its data at 300 */
    PUSH(holds, a);
    PUSH(holds, b);
    int64_t t = 300;
    PUSH(losses, t);
    oc = check_overlaps(0);
    ok = ok && oc.violations == 0 && oc.allowed == 1;
    printf("fault_check selftest: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *name = "run", *state_path = NULL, *losses_path = NULL, *summary = NULL;
    int workers = 0, cycles = 0, fencing = 0, pauses = 0, expect_lost = 0, clean = 0,
        expect_allowed = 0;
    long min_errors = 0;
    int64_t wait_ms = 0, bound_ms = 0, acq_bound_ms = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--selftest") == 0) {
            return selftest();
        } else if (strcmp(a, "--fencing") == 0) {
            fencing = 1;
        } else if (strcmp(a, "--expect-lost-updates") == 0) {
            expect_lost = 1;
        } else if (strcmp(a, "--expect-allowed-overlaps") == 0) {
            expect_allowed = 1;
        } else if (strcmp(a, "--clean") == 0) {
            clean = 1;
        } else if (strcmp(a, "--name") == 0) {
            name = v, i++;
        } else if (strcmp(a, "--state") == 0) {
            state_path = v, i++;
        } else if (strcmp(a, "--losses") == 0) {
            losses_path = v, i++;
        } else if (strcmp(a, "--summary") == 0) {
            summary = v, i++;
        } else if (strcmp(a, "--workers") == 0) {
            workers = atoi(v), i++;
        } else if (strcmp(a, "--cycles") == 0) {
            cycles = atoi(v), i++;
        } else if (strcmp(a, "--pauses") == 0) {
            pauses = atoi(v), i++;
        } else if (strcmp(a, "--min-errors") == 0) {
            min_errors = atol(v), i++;
        } else if (strcmp(a, "--wait-ms") == 0) {
            wait_ms = atoll(v), i++;
        } else if (strcmp(a, "--acq-bound-ms") == 0) {
            acq_bound_ms = atoll(v), i++;
        } else if (strcmp(a, "--bound-ms") == 0) {
            bound_ms = atoll(v), i++;
        } else {
            fprintf(stderr, "fault_check: unknown option %s\n", a);
            return 2;
        }
    }
    if (state_path == NULL || i >= argc) {
        fprintf(stderr, "usage: fault_check --name NAME --state STATE [options] LOG...\n");
        return 2;
    }
    printf("[%s] checking\n", name);
    for (; i < argc; i++) {
        read_log(argv[i]);
    }
    if (losses_path != NULL) {
        FILE *f = fopen(losses_path, "r");
        int64_t t;
        while (f != NULL && fscanf(f, "%" SCNd64, &t) == 1) {
            PUSH(losses, t);
        }
        if (f != NULL) {
            fclose(f);
        }
    }

    /* Recovery: every worker finished. */
    if ((int)dones.n != workers) {
        fail("%zu of %d workers finished", dones.n, workers);
    }
    long errors = 0, notacq = 0;
    for (size_t k = 0; k < dones.n; k++) {
        errors += dones.v[k].errors;
        notacq += dones.v[k].notacq;
        if (dones.v[k].succ != cycles) {
            fail("worker %d made %d of %d holds before its deadline (did it recover?)",
                 dones.v[k].w, dones.v[k].succ, cycles);
        }
    }

    /* Mutual exclusion. */
    overlap_counts oc = check_overlaps(1);

    /* Lost updates: the storage counter against the accepted writes. */
    int fd = open(state_path, O_RDONLY);
    fault_state st;
    if (fd < 0 || fault_state_load(fd, &st) != 0) {
        fail("cannot read the storage %s", state_path);
        memset(&st, 0, sizeof st);
    }
    if (fd >= 0) {
        close(fd);
    }
    long logged_writes = 0, overran = 0;
    for (size_t k = 0; k < holds.n; k++) {
        logged_writes += holds.v[k].wr == 1;
        overran += !holds.v[k].paused && holds.v[k].end > holds.v[k].valid;
    }
    int64_t lost = st.writes - st.counter;
    if (logged_writes != st.writes) {
        fail("the workers logged %ld accepted writes, the storage counted %" PRId64, logged_writes,
             st.writes);
    }
    if (expect_lost) {
        if (lost <= 0) {
            fail("expected the unfenced paused holder to lose an update, and the checker saw "
                 "none: the check is not sensitive");
        }
    } else if (lost != 0) {
        fail("lost updates: the counter is %" PRId64 " after %" PRId64 " accepted writes",
             st.counter, st.writes);
    }

    /* Stale (paused) holders. */
    if ((int)stales.n != pauses) {
        fail("%zu paused holds logged, %d planned", stales.n, pauses);
    }
    long stale_rejected = 0;
    for (size_t k = 0; k < stales.n; k++) {
        const stale *s = &stales.v[k];
        if (s->ext != NOT_HELD || s->rel != NOT_HELD) {
            fail("stale holder w%d#%d: extend returned %d and release %d, want NOT_HELD (%d)", s->w,
                 s->seq, s->ext, s->rel, NOT_HELD);
        }
        if (s->validity != 0) {
            fail("stale holder w%d#%d: validity %" PRId64
                 " ms after a pause past its lease, want 0",
                 s->w, s->seq, s->validity);
        }
        const hold *h = NULL;
        for (size_t m = 0; m < holds.n; m++) {
            if (holds.v[m].w == s->w && holds.v[m].seq == s->seq) {
                h = &holds.v[m];
            }
        }
        int newer = 0;
        for (size_t m = 0; h != NULL && m < holds.n; m++) {
            const hold *o = &holds.v[m];
            if (o != h && o->start > h->start && o->start < h->end && o->start >= h->valid) {
                newer++;
                if (fencing && o->fence <= h->fence) {
                    fail("fencing: the new holder w%d#%d has token %" PRId64
                         ", not above the stale holder's %" PRId64,
                         o->w, o->seq, o->fence, h->fence);
                }
            }
        }
        if (newer == 0) {
            fail("stale holder w%d#%d: nobody took the lock over during its pause", s->w, s->seq);
        }
        if (fencing) {
            if (s->wr == 1) {
                fail("fencing: the stale holder w%d#%d's write was accepted", s->w, s->seq);
            } else {
                stale_rejected++;
            }
        }
    }

    /* Orphans and deadlines. */
    long orphans_allowed = 0, orphans_silent = 0, orphans_unknown = 0, probe_ops = 0,
         probe_errors = 0;
    int64_t max_err_us = 0;
    for (size_t k = 0; k < ops.n; k++) {
        const op *o = &ops.v[k];
        int probe = o->kind[0] == 'p', acq = strstr(o->kind, "acq") != NULL;
        int64_t dur = o->t1 - o->t0;
        probe_ops += probe;
        if (o->rc < 0) {
            probe_errors += probe;
            max_err_us = dur > max_err_us ? dur : max_err_us;
            int64_t limit = (acq && !probe ? wait_ms + acq_bound_ms : bound_ms) * 1000;
            if (bound_ms > 0 && dur > limit) {
                fail("%s failed with %d after %" PRId64 " ms, over its bound of %" PRId64 " ms",
                     o->kind, o->rc, dur / 1000, limit / 1000);
            }
        }
        if (acq && o->rc != 0) {
            if (o->orphan == 1) {
                /* NOT_ACQUIRED, or an error whose message says the library checked, while the
                 * key holds the call's token: the answer was false. An error after which the
                 * library could not reach Redis to check is honest; the key expires with its
                 * lease. Count those whose message did not say it could not check (N). */
                if (o->rc == NOT_ACQUIRED || o->cls == 'V') {
                    fail("%s returned %d (%c) but Redis held the call's token afterwards", o->kind,
                         o->rc, o->cls);
                } else {
                    orphans_allowed++;
                    orphans_silent += o->cls != 'U';
                }
            } else if (o->orphan == 2) {
                orphans_unknown++;
            }
            if (probe && o->rc == NOT_ACQUIRED) {
                fail("probe: a fresh id was reported 'not acquired'");
            }
        }
    }
    /* The probe's last calls (faults over) must all succeed. */
    int tail_checked = 0;
    for (size_t k = ops.n; k-- > 0 && tail_checked < 4;) {
        if (strcmp(ops.v[k].kind, "pacq") == 0) {
            tail_checked++;
            if (ops.v[k].rc != 0) {
                fail("probe: a call after the faults ended failed with %d", ops.v[k].rc);
            }
        }
    }
    long all_errors = errors + probe_errors;
    if (clean && (all_errors != 0 || notacq != 0 || oc.allowed != 0 || oc.takeovers != 0)) {
        fail("clean run: %ld errors, %ld not-acquired, %ld overlaps", all_errors, notacq,
             oc.allowed + oc.takeovers);
    }
    if (all_errors < min_errors) {
        fail("only %ld calls failed; the faults did not bite (want >= %ld)", all_errors,
             min_errors);
    }
    if (fencing && oc.uncaught > 0) {
        fail("%ld overlaps after a data loss where fencing let both read-modify-writes through",
             oc.uncaught);
    }
    if (expect_allowed && oc.allowed == 0) {
        fail("Redis lost a key mid-hold but no second holder came in: the data-loss fault did "
             "not bite");
    }
    if (pauses > 0 && oc.takeovers < pauses) {
        fail("%ld takeovers seen for %d pauses", oc.takeovers, pauses);
    }

    printf("  holds %zu, overlaps while valid %ld (allowed after data loss %ld), takeovers after "
           "lease end %ld\n",
           holds.n, oc.violations, oc.allowed, oc.takeovers);
    printf("  storage: counter %" PRId64 ", accepted writes %" PRId64 ", rejected accesses %" PRId64
           ", lost updates %" PRId64 "%s\n",
           st.counter, st.writes, st.rejected, lost, expect_lost ? " (expected: no fencing)" : "");
    printf("  calls: %zu logged, %ld errors (%ld by the probe), %ld not acquired after wait; "
           "slowest failed call %" PRId64 " ms\n",
           ops.n, all_errors, probe_errors, notacq, max_err_us / 1000);
    printf("  orphans: %ld after a failure the library could not verify (they expire with the "
           "lease; %ld of them with a message that does not say so), %ld not checkable; holds "
           "past their validity %ld; stale writes rejected %ld\n",
           orphans_allowed, orphans_silent, orphans_unknown, overran, stale_rejected);
    printf("[%s] %s\n", name, failures ? "FAILED" : "ok");
    if (summary != NULL) {
        FILE *f = fopen(summary, "a");
        if (f != NULL) {
            fprintf(f,
                    "FIGURES name=%s ok=%d holds=%zu overlaps=%ld allowed_overlaps=%ld "
                    "takeovers=%ld lost_updates=%" PRId64 " rejected=%" PRId64
                    " stale_rejected=%ld errors=%ld max_err_ms=%" PRId64 " orphans=%ld"
                    " orphans_silent=%ld\n",
                    name, failures == 0, holds.n, oc.violations, oc.allowed, oc.takeovers, lost,
                    st.rejected, stale_rejected, all_errors, max_err_us / 1000, orphans_allowed,
                    orphans_silent);
            fclose(f);
        }
    }
    return failures ? 1 : 0;
}
