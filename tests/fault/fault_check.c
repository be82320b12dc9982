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
 *   --events FILE            what run.sh did to the workers, one a line (monotonic us):
 *                              stop W T0 T1            worker W was SIGSTOPped from T0 to T1
 *                              kill T W waiter|holder T2
 *                                                      worker W SIGKILLed between T and T2;
 *                                                      "holder" when it held the lock
 *   --idle-max MS            the dead-waiter idle figure (below) must be <= MS, and measured
 *   --min-kills N            at least N waiters must have been killed while queued
 *   --max-errors N           more failed calls than N are unexplained by the faults injected
 *   --idle-out FILE          append each dead-waiter idle figure (ms) to FILE, one a line
 *   --max-gap-ms MS          the longest pause between holds (nobody holding, from the end of
 *                            one hold to the start of the next; a failover's outage) must be
 *                            <= MS
 *
 * Checks (each failure is printed with the records involved; the exit status is 1 on any):
 *   - overlap: two holds whose intervals intersect while BOTH leases were still valid (by the
 *     validity each holder was given). Allowed only if a data loss happened between the first
 *     hold's acquire call and the second hold's start, and then fencing must have kept the
 *     storage consistent. An intersection after the first holder's validity ran out is a
 *     "takeover" (expected when a holder is paused), not a violation.
 *   - lost update: the storage counter must equal the number of accepted writes.
 *   - fencing order (with --fencing): an acquire that began after another hold's acquire had
 *     returned must have a larger token, unless a data loss came between them (the counter
 *     restarts). Ordered by when calls began and returned, so a call that a pause kept from
 *     returning is judged by what it could know.
 *   - stale holder (paused): its validity must be 0 on waking, its extend and release must
 *     return DLOCK_NOT_HELD, and with fencing
 *     its write must have been rejected and a newer holder must have had a higher token.
 *   - orphan: after an acquire that did not return OK, Redis must not hold the call's token
 *     if the call said "not acquired", or failed saying it had checked ("does not hold").
 *     An error after which the library could not reach Redis to check may leave the key
 *     holding the token until its lease ends (counted, not a failure).
 *   - deadlines: see --wait-ms/--bound-ms. A call of a worker that run.sh SIGSTOPped is
 *     measured without the time it was stopped.
 *   - broken promise ("ghost hold"): the first release after a hold, or an extend during it,
 *     returned DLOCK_NOT_HELD with its whole round trip before the end of the validity the
 *     library had promised: Redis did not hold the token although the library said it would.
 *     Also on_lost(DLOCK_LOST_TAKEN) firing before that end.
 *   - dead-waiter idle: after each waiter SIGKILLed while queued (kill ... waiter) or each
 *     blocking acquire that gave up (NOT_ACQUIRED after wait_ms), the successful releases that
 *     follow, up to one per worker plus one (enough for the queue to pass the dead entry), and
 *     for each the time from its send to the start of the next hold by anyone; the figure of the
 *     event is the longest of these. A gap in which a holder was SIGKILLed (kill ... holder) is
 *     left out: a dead holder costs its lease whatever the queue does. Printed as max and p99
 *     over events, from logged times only.
 *   - probe: a fresh id must never be "not acquired", and the last probe calls must succeed. */
#include "fault_common.h"

#include <stdlib.h>

#define NOT_ACQUIRED 1
#define NOT_HELD     2
#define LOST_TAKEN   1
#define NO_RC        (-1000)

typedef struct hold {
    int w, seq;
    int64_t t0, start, valid, end, fence;
    int rd, wr, paused;
    int64_t v0;        /* validity (ms) the acquire reported; -1 if not logged */
    int victim;        /* the worker was a victim (run.sh kills it) */
    int rel_rc;        /* the first release after the hold; NO_RC if none logged */
    int64_t ext_nh_t1; /* an extend during the hold answered NOT_HELD then; 0: none */
    int64_t rel_t0, rel_t1;
} hold;

typedef struct op {
    char kind[8];
    int64_t t0, t1;
    int rc, orphan;
    char cls;
    int w; /* the worker whose log it is; -1 for the probe or unknown */
} op;

typedef struct stale {
    int w, seq, ext, rel, wr;
    int64_t validity;
} stale;

typedef struct span {
    int w;
    int64_t t0, t1;
} span;

typedef struct lost_ev {
    int w, seq, reason;
    int64_t t;
} lost_ev;

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
static VEC(span) stops;
typedef struct kill_ev {
    int w, waiter;
    int64_t t, t2; /* the kill was sent at t, the process was gone by t2 */
} kill_ev;
static VEC(kill_ev) kills;
static VEC(lost_ev) lostevs;
static long ghosts;
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

/* The first extend of the hold (after its acquire, -e) that answered NOT_HELD: its reply time,
 * or 0. `from` is the hold's first op in the log. */
static int64_t extend_not_held(size_t from) {
    for (size_t k = from; k < ops.n; k++) {
        if (strcmp(ops.v[k].kind, "ext") == 0 && ops.v[k].rc == NOT_HELD) {
            return ops.v[k].t1;
        }
    }
    return 0;
}

static void read_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fail("cannot read %s", path);
        return;
    }
    char line[512], kind[16];
    int w = -1, victim = 0, pid;
    size_t last_hold = (size_t)-1, hold_ops = ops.n;
    while (fgets(line, sizeof line, f) != NULL) {
        hold h = {.v0 = -1, .rel_rc = NO_RC};
        op o = {.w = w};
        stale s;
        done d;
        lost_ev le;
        int nf;
        if (sscanf(line, "worker %d %d %15s", &w, &pid, kind) == 3) {
            victim = strcmp(kind, "victim") == 0;
        } else if ((nf = sscanf(line,
                                "hold %d %d %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                                " %" SCNd64 " %d %d %d %" SCNd64,
                                &h.w, &h.seq, &h.t0, &h.start, &h.valid, &h.end, &h.fence, &h.rd,
                                &h.wr, &h.paused, &h.v0)) >= 10) {
            h.victim = victim;
            h.ext_nh_t1 = extend_not_held(hold_ops);
            PUSH(holds, h);
            last_hold = holds.n - 1;
            hold_ops = ops.n;
        } else if (sscanf(line, "stale %d %d %d %d %d %" SCNd64, &s.w, &s.seq, &s.ext, &s.rel,
                          &s.wr, &s.validity) == 6) {
            PUSH(stales, s);
        } else if (sscanf(line, "done %d %d %d %d", &d.w, &d.succ, &d.errors, &d.notacq) == 4) {
            if (!victim) {
                PUSH(dones, d);
            }
        } else if (sscanf(line, "lost %d %d %" SCNd64 " %d", &le.w, &le.seq, &le.t, &le.reason) ==
                   4) {
            PUSH(lostevs, le);
        } else if (sscanf(line, "%7s %" SCNd64 " %" SCNd64 " %d %d %c", o.kind, &o.t0, &o.t1, &o.rc,
                          &o.orphan, &o.cls) == 6) {
            o.w = o.kind[0] == 'p' ? -1 : w;
            PUSH(ops, o);
            if (strcmp(o.kind, "acq") == 0) {
                hold_ops = ops.n - 1; /* ops of the next hold start with its acquire */
            }
        } else if (sscanf(line, "%7s %" SCNd64 " %" SCNd64 " %d", o.kind, &o.t0, &o.t1, &o.rc) ==
                   4) {
            o.orphan = -1;
            o.cls = '-';
            o.w = o.kind[0] == 'p' ? -1 : w;
            PUSH(ops, o);
            if (strcmp(o.kind, "rel") == 0 && last_hold != (size_t)-1 &&
                holds.v[last_hold].rel_rc == NO_RC) {
                holds.v[last_hold].rel_rc = o.rc;
                holds.v[last_hold].rel_t0 = o.t0;
                holds.v[last_hold].rel_t1 = o.t1;
            }
            if (strcmp(o.kind, "acq") == 0) {
                hold_ops = ops.n - 1;
            }
        } else {
            fail("%s: unreadable record: %s", path, line);
        }
    }
    fclose(f);
}

static void read_events(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return; /* no events: nothing was done to the workers */
    }
    char line[512], what[16];
    while (fgets(line, sizeof line, f) != NULL) {
        span sp;
        kill_ev ke;
        int n;
        if (sscanf(line, "stop %d %" SCNd64 " %" SCNd64, &sp.w, &sp.t0, &sp.t1) == 3) {
            PUSH(stops, sp);
        } else if ((n = sscanf(line, "kill %" SCNd64 " %d %15s %" SCNd64, &ke.t, &ke.w, what,
                               &ke.t2)) >= 3) {
            ke.waiter = strcmp(what, "waiter") == 0;
            ke.t2 = n == 4 ? ke.t2 : ke.t;
            PUSH(kills, ke);
        }
    }
    fclose(f);
}

/* How long worker w was stopped by run.sh within [t0, t1]. */
static int64_t stopped_within(int w, int64_t t0, int64_t t1) {
    int64_t sum = 0;
    for (size_t k = 0; k < stops.n; k++) {
        const span *sp = &stops.v[k];
        if (sp->w == w && sp->t1 > t0 && sp->t0 < t1) {
            sum += (sp->t1 < t1 ? sp->t1 : t1) - (sp->t0 > t0 ? sp->t0 : t0);
        }
    }
    return sum;
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

/* All pairs of holds that intersect. A sweep in start order keeps the holds that have not ended
 * yet; only those can intersect the next one, so a long history costs little more than its
 * length. */
static overlap_counts check_overlaps(int verbose) {
    overlap_counts oc = {0, 0, 0, 0};
    qsort(holds.v, holds.n, sizeof *holds.v, cmp_start);
    size_t *active = malloc((holds.n + 1) * sizeof *active), nactive = 0;
    if (active == NULL) {
        abort();
    }
    for (size_t j = 0; j < holds.n; j++) {
        const hold *b = &holds.v[j];
        size_t keep = 0;
        for (size_t k = 0; k < nactive; k++) {
            if (holds.v[active[k]].end > b->start) {
                active[keep++] = active[k];
            }
        }
        nactive = keep;
        for (size_t k = 0; k < nactive; k++) {
            const hold *a = &holds.v[active[k]];
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
                    if (verbose && oc.violations <= 10) {
                        fail("two holders while both leases were valid: w%d#%d [%" PRId64
                             ", %" PRId64 "] valid to %" PRId64 " and w%d#%d [%" PRId64 ", %" PRId64
                             "] valid to %" PRId64 " (us, CLOCK_MONOTONIC)",
                             a->w, a->seq, a->start, a->end, a->valid, b->w, b->seq, b->start,
                             b->end, b->valid);
                    } else if (verbose) {
                        failures++;
                    }
                }
            } else {
                oc.takeovers++;
            }
        }
        active[nactive++] = j;
    }
    free(active);
    return oc;
}

/* Broken promises seen at release and on_lost (extends are checked while reading). Needs the
 * holds sorted by start (check_overlaps). */
static void check_promises(int verbose) {
    for (size_t k = 0; k < holds.n; k++) {
        const hold *h = &holds.v[k];
        /* Redis forgetting the key (a restart without persistence) is not the library's fault. */
        if (h->rel_rc == NOT_HELD && !h->paused && h->rel_t1 < h->valid &&
            !loss_between(h->t0, h->rel_t1)) {
            ghosts++;
            if (verbose && ghosts <= 10) {
                fail("broken promise: w%d#%d's release returned NOT_HELD by %" PRId64
                     " us, before the end of its validity at %" PRId64
                     " (Redis did not hold the token the library said it held)",
                     h->w, h->seq, h->rel_t1, h->valid);
            } else {
                failures++;
            }
        }
    }
    for (size_t k = 0; k < holds.n; k++) {
        const hold *h = &holds.v[k];
        if (h->ext_nh_t1 > 0 && !h->paused && h->v0 > 0 && h->ext_nh_t1 < h->start + h->v0 * 1000 &&
            !loss_between(h->t0, h->ext_nh_t1)) {
            ghosts++;
            fail("broken promise: w%d#%d's extend returned NOT_HELD at %" PRId64
                 " us, inside the validity of %" PRId64 " ms its acquire reported at %" PRId64,
                 h->w, h->seq, h->ext_nh_t1, h->v0, h->start);
        }
    }
    for (size_t k = 0; k < lostevs.n; k++) {
        const lost_ev *e = &lostevs.v[k];
        for (size_t m = 0; m < holds.n; m++) {
            const hold *h = &holds.v[m];
            if (h->w == e->w && h->seq == e->seq && e->reason == LOST_TAKEN && e->t < h->valid &&
                losses.n == 0) {
                ghosts++;
                fail("broken promise: w%d#%d's on_lost said TAKEN at %" PRId64
                     " us, before the end of its validity at %" PRId64,
                     h->w, h->seq, e->t, h->valid);
            }
        }
    }
}

/* ---- fencing order and pauses ---- */

/* How many data losses happened at or before t (losses sorted). */
static size_t losses_upto(int64_t t) {
    size_t lo = 0, hi = losses.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (losses.v[mid] <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int cmp_by_t0(const void *a, const void *b) {
    const hold *x = &holds.v[*(const size_t *)a], *y = &holds.v[*(const size_t *)b];
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

/* Fencing order (docs/guarantees.md, section 6): every hold B whose acquire began after hold
 * A's acquire had returned has a larger token than A, unless Redis lost its data between A's
 * call and B's start (no loss between them: both in the same "epoch" of the loss list). A sweep
 * over the holds in the order their calls began, adding the holds that had returned by then,
 * with the largest token so far per epoch. Needs the holds sorted by start. */
static long check_fence_order(int verbose) {
    size_t n = holds.n, epochs = losses.n + 1;
    size_t *by_t0 = malloc((n + 1) * sizeof *by_t0), *max_at = calloc(epochs, sizeof *max_at);
    int64_t *max_fence = calloc(epochs, sizeof *max_fence);
    if (by_t0 == NULL || max_at == NULL || max_fence == NULL) {
        abort();
    }
    for (size_t k = 0; k < n; k++) {
        by_t0[k] = k;
    }
    qsort(by_t0, n, sizeof *by_t0, cmp_by_t0);
    long bad = 0;
    for (size_t k = 0, next = 0; k < n; k++) {
        const hold *b = &holds.v[by_t0[k]];
        for (; next < n && holds.v[next].start < b->t0; next++) {
            size_t e = losses_upto(holds.v[next].t0);
            if (holds.v[next].fence > max_fence[e]) {
                max_fence[e] = holds.v[next].fence;
                max_at[e] = next;
            }
        }
        size_t e = losses_upto(b->start);
        if (b->fence <= 0 || max_fence[e] <= 0 || b->fence > max_fence[e]) {
            continue;
        }
        bad++;
        const hold *a = &holds.v[max_at[e]];
        if (verbose && bad <= 10) {
            fail("fencing: w%d#%d's acquire began at %" PRId64 " us, after w%d#%d's had returned "
                 "with token %" PRId64 " at %" PRId64 ", and got token %" PRId64 " (not larger)",
                 b->w, b->seq, b->t0, a->w, a->seq, a->fence, a->start, b->fence);
        } else if (verbose) {
            failures++;
        }
    }
    free(by_t0);
    free(max_at);
    free(max_fence);
    return bad;
}

static int64_t max_token(void) {
    int64_t m = 0;
    for (size_t k = 0; k < holds.n; k++) {
        m = holds.v[k].fence > m ? holds.v[k].fence : m;
    }
    return m;
}

/* The longest pause between holds, nobody holding: from the end of the holds so far to the
 * start of the next (holds sorted by start). *at is when it began. */
static int64_t longest_gap(int64_t *at) {
    int64_t worst = 0, end = holds.n > 0 ? holds.v[0].end : 0;
    *at = 0;
    for (size_t k = 1; k < holds.n; k++) {
        if (holds.v[k].start - end > worst) {
            worst = holds.v[k].start - end;
            *at = end;
        }
        end = holds.v[k].end > end ? holds.v[k].end : end;
    }
    return worst;
}

/* ---- dead-waiter idle ---- */

typedef struct idle_stats {
    long events, kills, gaveup, unmeasured;
    int64_t max_us, p99_us, all_p99_us;
    VEC(int64_t) per_event;
} idle_stats;

static int cmp_i64(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

static int64_t pct(int64_t *v, size_t n, int p) {
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (n * (size_t)p + 99) / 100;
    return v[i > 0 ? i - 1 : 0];
}

/* A holder was SIGKILLed within [from, to]: the lock waits for its lease, whatever the queue. */
static int holder_killed_within(int64_t from, int64_t to) {
    for (size_t k = 0; k < kills.n; k++) {
        if (!kills.v[k].waiter && kills.v[k].t2 >= from && kills.v[k].t <= to) {
            return 1;
        }
    }
    return 0;
}

/* The start of the first hold at or after t, or -1 (holds sorted by start). */
static int64_t next_start(int64_t t) {
    size_t lo = 0, hi = holds.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (holds.v[mid].start < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < holds.n ? holds.v[lo].start : -1;
}

static int cmp_rel(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

/* See the header comment. `window`: releases looked at after each event. `paused`: measure
 * after the SIGSTOPs of workers instead (a figure, not a promise: a paused waiter may be handed
 * the lock, which then waits for it to wake or for the lease to end). */
static idle_stats dead_waiter_idle(size_t window, int paused) {
    idle_stats st = {0};
    VEC(int64_t) rel = {0}, gaps = {0}, events = {0};
    for (size_t k = 0; k < holds.n; k++) {
        if (holds.v[k].rel_rc == 0) {
            PUSH(rel, holds.v[k].rel_t0);
        }
    }
    qsort(rel.v, rel.n, sizeof *rel.v, cmp_rel);
    for (size_t k = 0; k < rel.n; k++) {
        int64_t nx = next_start(rel.v[k]);
        if (nx >= 0 && !holder_killed_within(rel.v[k], nx)) {
            PUSH(gaps, nx - rel.v[k]);
        }
    }
    for (size_t k = 0; paused && k < stops.n; k++) {
        PUSH(events, stops.v[k].t0);
    }
    for (size_t k = 0; !paused && k < kills.n; k++) {
        if (kills.v[k].waiter) {
            PUSH(events, kills.v[k].t);
            st.kills++;
        }
    }
    for (size_t k = 0; !paused && k < ops.n; k++) {
        if (strcmp(ops.v[k].kind, "acq") == 0 && ops.v[k].rc == NOT_ACQUIRED) {
            PUSH(events, ops.v[k].t1);
            st.gaveup++;
        }
    }
    for (size_t e = 0; e < events.n; e++) {
        size_t lo = 0, hi = rel.n;
        while (lo < hi) { /* the first release sent at or after the event */
            size_t mid = (lo + hi) / 2;
            if (rel.v[mid] < events.v[e]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        int64_t worst = -1;
        size_t seen = 0;
        for (size_t k = lo; k < rel.n && seen < window; k++, seen++) {
            int64_t nx = next_start(rel.v[k]);
            if (nx < 0) {
                break;
            }
            if (holder_killed_within(rel.v[k], nx)) {
                continue; /* the hand-off reached a live process that was then killed holding */
            }
            worst = nx - rel.v[k] > worst ? nx - rel.v[k] : worst;
        }
        if (worst < 0) {
            st.unmeasured++;
            continue;
        }
        PUSH(st.per_event, worst);
    }
    st.events = (long)st.per_event.n;
    if (st.per_event.n > 0) {
        int64_t *copy = malloc(st.per_event.n * sizeof *copy);
        if (copy == NULL) {
            abort();
        }
        memcpy(copy, st.per_event.v, st.per_event.n * sizeof *copy);
        st.p99_us = pct(copy, st.per_event.n, 99);
        st.max_us = copy[st.per_event.n - 1];
        free(copy);
    }
    st.all_p99_us = pct(gaps.v, gaps.n, 99);
    free(rel.v);
    free(gaps.v);
    free(events.v);
    return st;
}

static hold mkhold(int w, int64_t t0, int64_t start, int64_t valid, int64_t end) {
    return (hold){.w = w,
                  .seq = 1,
                  .t0 = t0,
                  .start = start,
                  .valid = valid,
                  .end = end,
                  .fence = w,
                  .rd = 1,
                  .wr = 1,
                  .v0 = (valid - start) / 1000,
                  .rel_rc = NO_RC};
}

static int selftest(void) {
    /* Three synthetic histories, one per verdict. */
    hold a = mkhold(1, 0, 100, 1000, 600), b = mkhold(2, 150, 500, 1500, 900);
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
    losses.n = 0;
    printf("fault_check selftest: overlaps %s\n", ok ? "ok" : "FAILED");

    /* The sweep must see an overlap with a long hold many holds back. */
    holds.n = 0;
    PUSH(holds, mkhold(9, 0, 0, 100000, 100000));
    for (int k = 0; k < 50; k++) {
        PUSH(holds, mkhold(k, 1000 * k + 10, 1000 * k + 10, 1000 * k + 500, 1000 * k + 400));
    }
    oc = check_overlaps(0);
    int ok2 = oc.violations == 50;
    printf("fault_check selftest: sweep %s\n", ok2 ? "ok" : "FAILED");

    /* A release that finds the key not ours inside the promised validity is a ghost hold. */
    holds.n = 0;
    ghosts = 0;
    a = mkhold(1, 0, 100, 5000, 600);
    a.rel_rc = NOT_HELD;
    a.rel_t0 = 700;
    a.rel_t1 = 800;
    PUSH(holds, a);
    b = mkhold(2, 0, 6000, 9000, 6500);
    b.rel_rc = NOT_HELD; /* after its validity: honest */
    b.rel_t0 = 9100;
    b.rel_t1 = 9200;
    PUSH(holds, b);
    check_overlaps(0);
    check_promises(0);
    int ok3 = ghosts == 1;
    printf("fault_check selftest: broken promise %s\n", ok3 ? "ok" : "FAILED");

    /* Dead-waiter idle: a kill at 1000; the releases after it free the lock at once, except one
     * whose next holder comes 10 s later (the lock was handed to the dead waiter). */
    holds.n = 0;
    for (int k = 0; k < 5; k++) {
        hold h = mkhold(k, 0, 2000 * k, 2000 * k + 1500, 2000 * k + 1000);
        h.rel_rc = 0;
        h.rel_t0 = 2000 * k + 1000;
        h.rel_t1 = h.rel_t0 + 100;
        PUSH(holds, h);
    }
    hold late = mkhold(7, 0, 10000 + 7000, 10000 + 8000, 10000 + 7500);
    late.rel_rc = 0;
    late.rel_t0 = 10000 + 7500;
    PUSH(holds, late);
    holds.v[4].start = 2000 * 4; /* the hold at 8000 ends at 9000 and its successor is "late" */
    kill_ev kill = {3, 1, 1000, 1000};
    PUSH(kills, kill);
    check_overlaps(0);
    idle_stats is = dead_waiter_idle(6, 0);
    int ok4 = is.events == 1 && is.max_us == 17000 - 9000;
    printf("fault_check selftest: dead-waiter idle %s (%" PRId64 " us)\n", ok4 ? "ok" : "FAILED",
           is.max_us);
    free(is.per_event.v);

    /* Fencing order: b began after a returned, with a larger token: fine; c began after b had
     * returned but got b's token: wrong. d began before c returned, so only a and b bind it,
     * and its token 1 is wrong, unless Redis lost its data (and the counter) in between. */
    holds.n = 0;
    kills.n = 0;
    a = mkhold(1, 0, 100, 5000, 200);
    b = mkhold(2, 150, 300, 5000, 400);
    hold c = mkhold(3, 350, 500, 5000, 600), d = mkhold(4, 450, 700, 5000, 800);
    a.fence = 5, b.fence = 6, c.fence = 6, d.fence = 1;
    PUSH(holds, a);
    PUSH(holds, b);
    PUSH(holds, c);
    check_overlaps(0);
    long f1 = check_fence_order(0);
    holds.n = 0;
    c.fence = 7;
    PUSH(holds, a);
    PUSH(holds, b);
    PUSH(holds, c);
    PUSH(holds, d);
    check_overlaps(0);
    long f2 = check_fence_order(0);
    t = 420;
    PUSH(losses, t); /* the counter restarted at 420: d's 1 is allowed */
    long f3 = check_fence_order(0);
    losses.n = 0;
    int ok5 = f1 == 1 && f2 == 1 && f3 == 0;
    printf("fault_check selftest: fencing order %s (%ld %ld %ld)\n", ok5 ? "ok" : "FAILED", f1, f2,
           f3);
    ok = ok && ok2 && ok3 && ok4 && ok5;
    printf("fault_check selftest: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *name = "run", *state_path = NULL, *losses_path = NULL, *summary = NULL,
               *events_path = NULL, *idle_out = NULL;
    int workers = 0, cycles = 0, fencing = 0, pauses = 0, expect_lost = 0, clean = 0,
        expect_allowed = 0, min_kills = 0;
    long min_errors = 0, max_errors = -1;
    int64_t wait_ms = 0, bound_ms = 0, acq_bound_ms = 0, idle_max_ms = -1, max_gap_ms = -1;
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
        } else if (strcmp(a, "--events") == 0) {
            events_path = v, i++;
        } else if (strcmp(a, "--idle-max") == 0) {
            idle_max_ms = atoll(v), i++;
        } else if (strcmp(a, "--idle-out") == 0) {
            idle_out = v, i++;
        } else if (strcmp(a, "--min-kills") == 0) {
            min_kills = atoi(v), i++;
        } else if (strcmp(a, "--max-errors") == 0) {
            max_errors = atol(v), i++;
        } else if (strcmp(a, "--max-gap-ms") == 0) {
            max_gap_ms = atoll(v), i++;
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
    if (events_path != NULL) {
        read_events(events_path);
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
        qsort(losses.v, losses.n, sizeof *losses.v, cmp_i64);
    }

    /* Recovery: every worker finished. */
    if ((int)dones.n != workers) {
        fail("%zu of %d workers finished", dones.n, workers);
    }
    long errors = 0, notacq = 0;
    for (size_t k = 0; k < dones.n; k++) {
        errors += dones.v[k].errors;
        notacq += dones.v[k].notacq;
        if (cycles > 0 ? dones.v[k].succ != cycles : dones.v[k].succ < 1) {
            fail("worker %d made %d of %d holds before its deadline (did it recover?)",
                 dones.v[k].w, dones.v[k].succ, cycles);
        }
    }

    /* Mutual exclusion, fencing order, and how long the id stood still. */
    overlap_counts oc = check_overlaps(1);
    check_promises(1);
    long fence_backwards = fencing ? check_fence_order(1) : 0;
    int64_t gap_at, gap_us = longest_gap(&gap_at);
    if (max_gap_ms >= 0 && gap_us > max_gap_ms * 1000) {
        fail("nobody held the lock for %" PRId64 " ms from %" PRId64 " us on (bound %" PRId64
             " ms): the clients did not recover in time",
             gap_us / 1000, gap_at, max_gap_ms);
    }
    idle_stats idle = dead_waiter_idle((size_t)workers + 1, 0);
    idle_stats pidle = dead_waiter_idle((size_t)workers + 1, 1);
    free(pidle.per_event.v); /* only its figures are used */
    long waiter_kills = 0, holder_kills = 0;
    for (size_t k = 0; k < kills.n; k++) {
        waiter_kills += kills.v[k].waiter;
        holder_kills += !kills.v[k].waiter;
    }
    if (waiter_kills < min_kills) {
        fail("%ld waiters killed while queued, want >= %d", waiter_kills, min_kills);
    }
    if (idle_max_ms >= 0) {
        if (idle.events == 0 || idle.unmeasured > 0) {
            fail("dead-waiter idle: %ld events measured, %ld could not be (no hold followed)",
                 idle.events, idle.unmeasured);
        } else if (idle.max_us > idle_max_ms * 1000) {
            fail("dead-waiter idle: max %" PRId64
                 " ms after a waiter died or gave up, over %" PRId64 " ms",
                 idle.max_us / 1000, idle_max_ms);
        }
    }
    if (idle_out != NULL) {
        FILE *f = fopen(idle_out, "a");
        for (size_t k = 0; f != NULL && k < idle.per_event.n; k++) {
            fprintf(f, "%" PRId64 "\n", idle.per_event.v[k] / 1000);
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    free(idle.per_event.v);
    long zero_validity = 0;
    for (size_t k = 0; k < holds.n; k++) {
        zero_validity += holds.v[k].v0 == 0;
    }

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
    int64_t max_err_us = 0, max_ok_us = 0;
    for (size_t k = 0; k < ops.n; k++) {
        const op *o = &ops.v[k];
        int probe = o->kind[0] == 'p', acq = strstr(o->kind, "acq") != NULL;
        int64_t dur = o->t1 - o->t0 - (o->w >= 0 ? stopped_within(o->w, o->t0, o->t1) : 0);
        probe_ops += probe;
        if (o->rc < 0) {
            probe_errors += probe;
            max_err_us = dur > max_err_us ? dur : max_err_us;
        } else {
            max_ok_us = dur > max_ok_us ? dur : max_ok_us;
        }
        /* Every call is bounded, the ones that succeed too (a blocking acquire by its wait). */
        int64_t limit = (acq && !probe ? wait_ms + acq_bound_ms : bound_ms) * 1000;
        if (bound_ms > 0 && dur > limit) {
            fail("%s returned %d after %" PRId64 " ms, over its bound of %" PRId64 " ms", o->kind,
                 o->rc, dur / 1000, limit / 1000);
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
    /* A call of a worker that was SIGSTOPped during it may miss its deadline: explained. */
    long stopped_errors = 0;
    for (size_t k = 0; k < ops.n; k++) {
        const op *o = &ops.v[k];
        stopped_errors += o->rc < 0 && o->w >= 0 && stopped_within(o->w, o->t0, o->t1) > 0;
    }
    if (max_errors >= 0 && all_errors - stopped_errors > max_errors) {
        fail("%ld calls failed (%ld of them while their worker was stopped), more than the %ld "
             "the faults explain",
             all_errors, stopped_errors, max_errors);
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
    if (fencing) {
        printf("  fencing: %ld tokens not larger than one returned before the acquire began; "
               "largest %" PRId64 "\n",
               fence_backwards, holds.n > 0 ? max_token() : 0);
    }
    printf("  longest pause between holds: %" PRId64 " ms\n", gap_us / 1000);
    printf("  storage: counter %" PRId64 ", accepted writes %" PRId64 ", rejected accesses %" PRId64
           ", lost updates %" PRId64 "%s\n",
           st.counter, st.writes, st.rejected, lost, expect_lost ? " (expected: no fencing)" : "");
    printf("  calls: %zu logged, %ld errors (%ld by the probe), %ld not acquired after wait; "
           "slowest failed call %" PRId64 " ms, slowest other %" PRId64 " ms\n",
           ops.n, all_errors, probe_errors, notacq, max_err_us / 1000, max_ok_us / 1000);
    printf("  orphans: %ld after a failure the library could not verify (they expire with the "
           "lease; %ld of them with a message that does not say so), %ld not checkable; holds "
           "past their validity %ld; stale writes rejected %ld\n",
           orphans_allowed, orphans_silent, orphans_unknown, overran, stale_rejected);
    printf(
        "  promises: %ld broken (NOT_HELD or TAKEN inside the validity given); %ld holds granted "
        "with no validity left; %zu lost notices\n",
        ghosts, zero_validity, lostevs.n);
    if (kills.n > 0 || stops.n > 0 || idle.gaveup > 0) {
        printf("  workers: %ld waiters and %ld holders SIGKILLed, %zu SIGSTOPs, %ld waits given "
               "up\n",
               waiter_kills, holder_kills, stops.n, idle.gaveup);
    }
    printf("  dead-waiter idle (release -> next holder, after a waiter died or gave up): %ld "
           "events, max %" PRId64 " ms, p99 %" PRId64 " ms (every release: p99 %" PRId64 " ms)\n",
           idle.events, idle.max_us / 1000, idle.p99_us / 1000, idle.all_p99_us / 1000);
    if (stops.n > 0) {
        printf(
            "  idle after a SIGSTOP of a worker (a figure, not a promise): %ld events, max %" PRId64
            " ms, p99 %" PRId64 " ms\n",
            pidle.events, pidle.max_us / 1000, pidle.p99_us / 1000);
    }
    printf("[%s] %s\n", name, failures ? "FAILED" : "ok");
    if (summary != NULL) {
        FILE *f = fopen(summary, "a");
        if (f != NULL) {
            fprintf(f,
                    "FIGURES name=%s ok=%d holds=%zu overlaps=%ld allowed_overlaps=%ld "
                    "takeovers=%ld lost_updates=%" PRId64 " rejected=%" PRId64
                    " stale_rejected=%ld errors=%ld max_err_ms=%" PRId64 " orphans=%ld"
                    " orphans_silent=%ld ghosts=%ld waiter_kills=%ld holder_kills=%ld stops=%zu"
                    " gaveup=%ld idle_events=%ld idle_max_ms=%" PRId64 " idle_p99_ms=%" PRId64
                    " zero_validity=%ld lost_notices=%zu fence_backwards=%ld max_gap_ms=%" PRId64
                    "\n",
                    name, failures == 0, holds.n, oc.violations, oc.allowed, oc.takeovers, lost,
                    st.rejected, stale_rejected, all_errors, max_err_us / 1000, orphans_allowed,
                    orphans_silent, ghosts, waiter_kills, holder_kills, stops.n, idle.gaveup,
                    idle.events, idle.max_us / 1000, idle.p99_us / 1000, zero_validity, lostevs.n,
                    fence_backwards, gap_us / 1000);
            fclose(f);
        }
    }
    return failures ? 1 : 0;
}
