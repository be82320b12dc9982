/* A quorum client: N independent Redis servers ("members"), each an ordinary dlock_client. A
 * request (one round) goes to every member at once, so it costs about the slowest needed
 * member's round trip, not the sum; the caller waits only until the outcome is decided, and
 * never past the member timeout. A member is reached one of two ways:
 *  - the poll path (quorum_poll.c): the calling thread writes the request to the member's
 *    connection and waits on every such member's socket with one poll(2). It takes a member that
 *    is one Redis-protocol server with an idle connection: the common case, and as cheap as raw
 *    hiredis doing the same fan-out.
 *  - the member's own worker thread, for the others: Cluster, Sentinel and REST members (their
 *    routing needs a whole blocking exec), a member with no idle connection (connecting may block
 *    for the member timeout), and one still busy with an earlier job. A silent member's worker
 *    may stay blocked, but nobody waits for it.
 * A member's requests reach it in order either way: its worker runs its jobs in order, a member
 * with a job on its worker gets the next ones there too, and on the poll path a reply that came
 * too late for its round is dropped on the same connection before the next one is read. */
#include "fmacros.h"

#include "quorum_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define REOPEN_MS 500 /* a member unreachable since open is tried again at most this often */

typedef struct qround qround;

typedef struct qjob {
    struct qjob *next;
    qround *round;
    int i; /* the member */
} qjob;

/* The thread-path part of one request. Shared by the caller and the workers (refcounted): the
 * caller may return before a silent member's worker is done with it. */
struct qround {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, pending, yes, no, failed;
    int need_yes, need_no; /* what decides the round (see decided) */
    int wake_fd;           /* eventfd the caller polls beside the poll path's sockets, or -1 */
    dlock__qreq req;       /* strings point into buf */
    int64_t deadline, timeout_ms;
    char *buf;
    qjob job[DLOCK_QUORUM_MAX];
    dlock__qresult res[DLOCK_QUORUM_MAX];
};

typedef struct qmember {
    dlock__quorum *q;
    int i;
    char *url;            /* may hold a password: never printed */
    char name[256];       /* printable: the URL without credentials */
    dlock_client *client; /* NULL while unreachable since open */
    int64_t reopen_at;
    char open_msg[160];
    int open_rc, opened; /* the first open has been tried */
    pthread_t thread;
    int thread_live;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qjob *head, *tail;
    int stop;
    atomic_int busy;              /* jobs queued to or running on the worker */
    atomic_long polled, threaded; /* its requests by the way they went (dlock__quorum_paths) */
} qmember;

struct dlock__quorum {
    int n;
    int timeout_ms; /* options.quorum_timeout_ms; 0 = from the lease */
    dlock_client_options opts;
    pthread_mutex_t mu; /* guards `opened`, `refs` and the members' open results */
    pthread_cond_t cv;
    int opened;
    int refs; /* the owner + each live worker: the last one out frees */
    qmember m[DLOCK_QUORUM_MAX];
};

/* ---- one member's side of a request, on its thread ---- */

/* Runs the request on member client c. Returns 1 (yes), 0 (no) or an error. */
static int run_op(dlock_client *c, const dlock__qreq *q, dlock__qresult *out) {
    dlock__qcmd cmd;
    dlock__reply r;
    dlock__qop_cmd(q, 0, &cmd);
    int rc = dlock__client_exec(c, &cmd.cmd, 1, &r, NULL);
    if (rc == DLOCK_OK && cmd.script && dlock__script_missing(&r)) {
        /* The script did not run: send it in full, which also loads it. */
        dlock__reply_clear(&r);
        dlock__qop_cmd(q, 1, &cmd);
        rc = dlock__client_exec(c, &cmd.cmd, 1, &r, NULL);
    }
    if (rc != DLOCK_OK) {
        return rc;
    }
    rc = dlock__qop_judge(c, q, &r, out);
    dlock__reply_clear(&r);
    return rc;
}

/* ---- the workers ---- */

static int quorum_unref(dlock__quorum *q);

/* Whether the answers so far decide a round (need_yes = need_no = 0: only all answers do). */
static int decided(int pending, int yes, int no, int need_yes, int need_no) {
    if (pending == 0) {
        return 1;
    }
    if (need_yes == 0 && need_no == 0) {
        return 0;
    }
    if (yes >= need_yes || no >= need_no) {
        return 1;
    }
    return yes + pending < need_yes && no + pending < need_no;
}

static void round_unref(qround *r) {
    pthread_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last) {
        return;
    }
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        free(r->res[i].str);
    }
    if (r->wake_fd >= 0) {
        close(r->wake_fd);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->buf);
    free(r);
}

/* Opens the member's client: at start-up, and later (at most every REOPEN_MS) while it has none.
 * Called on the member's worker thread. */
static int member_open(qmember *m) {
    int64_t now = dlock__now_ms();
    if (m->client == NULL && (!m->opened || now >= m->reopen_at)) {
        dlock_client *c = NULL;
        int rc = dlock_client_open(&c, m->url, &m->q->opts);
        /* Published under the quorum's mutex: dlock_client_open_quorum and the fan-out read it
         * meanwhile. */
        pthread_mutex_lock(&m->q->mu);
        m->client = c;
        m->open_rc = rc;
        snprintf(m->open_msg, sizeof m->open_msg, "%s", dlock_errmsg());
        m->reopen_at = now + REOPEN_MS;
        pthread_mutex_unlock(&m->q->mu);
    }
    if (m->client != NULL) {
        return DLOCK_OK;
    }
    return dlock__err(m->open_rc, "%s", m->open_msg);
}

static void run_job(qmember *m, qjob *j) {
    qround *r = j->round;
    /* Filled here and moved into the round under its mutex: the caller may read the round at any
     * time, and must never see a half-written result. */
    dlock__qresult out = {0};
    int rc;
    if (dlock__now_ms() >= r->deadline) {
        /* Queued behind a request that took its whole timeout: too late to send. */
        rc = dlock__err(DLOCK_ETIMEDOUT, "not sent");
    } else {
        dlock__set_deadline_cap(r->deadline);
        rc = member_open(m);
        if (rc == DLOCK_OK) {
            rc = run_op(m->client, &r->req, &out);
        }
        dlock__set_deadline_cap(0);
    }
    if (rc == DLOCK_ETIMEDOUT) {
        snprintf(out.msg, sizeof out.msg, "%.100s: no reply within %lld ms", m->name,
                 (long long)r->timeout_ms);
    } else if (rc < 0) {
        snprintf(out.msg, sizeof out.msg, "%s", dlock_errmsg());
    }
    out.rc = rc;
    pthread_mutex_lock(&r->mu);
    r->res[j->i] = out;
    r->yes += rc == 1;
    r->no += rc == 0;
    r->failed += rc < 0;
    r->pending--;
    /* Wake the caller once, when the round is decided, not for every answer: on a busy machine
     * each needless wake-up is a context switch on the caller's critical path. With members on
     * the poll path too, only the caller can tell, so every answer rings its eventfd. */
    int wake = r->wake_fd < 0 && decided(r->pending, r->yes, r->no, r->need_yes, r->need_no);
    if (wake) {
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (r->wake_fd >= 0) {
        uint64_t one = 1;
        if (write(r->wake_fd, &one, sizeof one) < 0) {
            /* EAGAIN: the counter is already non-zero, which wakes the caller as well */
        }
    }
    atomic_fetch_sub(&m->busy, 1); /* the poll path may take the member again */
    round_unref(r);
}

static void *member_main(void *arg) {
    qmember *m = arg;
    member_open(m);
    pthread_mutex_lock(&m->q->mu);
    m->opened = 1;
    m->q->opened++;
    pthread_cond_broadcast(&m->q->cv);
    pthread_mutex_unlock(&m->q->mu);
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->head == NULL && !m->stop) {
            pthread_cond_wait(&m->cv, &m->mu);
        }
        if (m->head == NULL) {
            break;
        }
        qjob *j = m->head;
        m->head = j->next;
        if (m->head == NULL) {
            m->tail = NULL;
        }
        pthread_mutex_unlock(&m->mu);
        run_job(m, j);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    quorum_unref(m->q); /* may free m: touch nothing after it */
    return NULL;
}

/* ---- fan-out ---- */

int dlock__quorum_size(const dlock__quorum *q) {
    return q->n;
}

int64_t dlock__quorum_timeout(const dlock__quorum *q, int64_t lease_ms) {
    if (q->timeout_ms > 0) {
        return q->timeout_ms;
    }
    int64_t t = lease_ms / 20;
    return t < DLOCK_QUORUM_TIMEOUT_MIN_MS   ? DLOCK_QUORUM_TIMEOUT_MIN_MS
           : t > DLOCK_QUORUM_TIMEOUT_MAX_MS ? DLOCK_QUORUM_TIMEOUT_MAX_MS
                                             : t;
}

void dlock__quorum_paths(const dlock_client *c, int i, long *polled, long *threaded) {
    const dlock__quorum *q = c->quorum;
    *polled = *threaded = 0;
    for (int k = 0; k < q->n; k++) {
        if (i < 0 || k == i) {
            *polled += atomic_load(&q->m[k].polled);
            *threaded += atomic_load(&q->m[k].threaded);
        }
    }
}

/* The thread-path part of a round: a copy of the request (a silent member's worker may read it
 * after the caller returned) and, when members are on the poll path too, an eventfd. */
static qround *round_new(const dlock__qreq *req, int64_t timeout_ms, int64_t deadline,
                         int with_fd) {
    qround *r = calloc(1, sizeof *r);
    size_t n = req->idlen + req->fence_len + req->token_len + 3;
    char *b = r != NULL ? malloc(n) : NULL;
    int fd = b != NULL && with_fd ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (b == NULL || (with_fd && fd < 0)) {
        free(b);
        free(r);
        return NULL;
    }
    r->buf = b;
    r->req = *req;
    r->wake_fd = fd;
    const char *src[] = {req->id, req->fence_key, req->token};
    size_t len[] = {req->idlen, req->fence_len, req->token_len};
    const char **dst[] = {&r->req.id, &r->req.fence_key, &r->req.token};
    for (int k = 0; k < 3; k++) {
        if (len[k] > 0) {
            memcpy(b, src[k], len[k]);
        }
        b[len[k]] = '\0';
        *dst[k] = b;
        b += len[k] + 1;
    }
    r->timeout_ms = timeout_ms;
    r->deadline = deadline;
    pthread_mutex_init(&r->mu, NULL);
    dlock__cond_init_monotonic(&r->cv);
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        r->res[i].rc = DLOCK__Q_NOT_ASKED;
    }
    return r;
}

static void submit(qmember *m, qjob *j) {
    atomic_fetch_add(&m->busy, 1);
    pthread_mutex_lock(&m->mu);
    j->next = NULL;
    if (m->tail != NULL) {
        m->tail->next = j;
    } else {
        m->head = j;
    }
    m->tail = j;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Waits until the answers of both paths decide the round, or the deadline. Returns 1 if
 * decided. */
static int wait_round(dlock__qpoll *p, qround *r, int need_yes, int need_no, int64_t deadline) {
    /* A worker enforces the deadline on its member's own I/O; the slack covers its wake-up. */
    int64_t until = r != NULL ? deadline + 5 : deadline;
    for (;;) {
        int pending = p->waiting, yes = p->yes, no = p->no;
        if (r != NULL) {
            pthread_mutex_lock(&r->mu);
            pending += r->pending;
            yes += r->yes;
            no += r->no;
            pthread_mutex_unlock(&r->mu);
        }
        if (decided(pending, yes, no, need_yes, need_no)) {
            return 1;
        }
        if (dlock__now_ms() >= until) {
            return 0;
        }
        if (r == NULL || r->wake_fd >= 0) {
            dlock__qpoll_wait(p, r != NULL ? r->wake_fd : -1, until);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        while (!decided(r->pending, r->yes, r->no, need_yes, need_no) && dlock__now_ms() < until) {
            dlock__cond_wait_until(&r->cv, &r->mu, until);
        }
        pthread_mutex_unlock(&r->mu);
    }
}

/* Moves every member's outcome into the tally; a member with none yet failed by timeout. */
static void collect(dlock__quorum *q, dlock__qpoll *p, qround *r, const int *targets,
                    int was_decided, int64_t timeout_ms, dlock__qtally *t) {
    if (r != NULL) {
        pthread_mutex_lock(&r->mu);
    }
    for (int i = 0; i < q->n; i++) {
        dlock__qresult *d = &t->r[i], *s = NULL;
        int polled = dlock__qpoll_state(p, i);
        if (polled == 1) {
            s = &p->call[i].res;
        } else if (polled < 0 && r != NULL && r->res[i].rc != DLOCK__Q_NOT_ASKED) {
            s = &r->res[i];
        }
        if (s != NULL) {
            *d = *s;
            s->str = NULL; /* moved to the tally */
            if (polled == 1 && d->rc == DLOCK_ETIMEDOUT) {
                snprintf(d->msg, sizeof d->msg, "%.100s: no reply within %lld ms", q->m[i].name,
                         (long long)timeout_ms);
            }
        } else if (targets == NULL || targets[i]) {
            d->rc = DLOCK_ETIMEDOUT; /* still running: its reply, if any, is ignored */
            t->undecided += was_decided;
            snprintf(d->msg, sizeof d->msg, "%.100s: %s %lld ms", q->m[i].name,
                     was_decided ? "no reply yet when decided, after" : "no reply within",
                     (long long)(dlock__now_ms() - t->sent_at));
        } else {
            d->rc = DLOCK__Q_NOT_ASKED;
        }
        t->yes += d->rc == 1;
        t->no += d->rc == 0;
        t->failed += d->rc < 0;
    }
    if (r != NULL) {
        pthread_mutex_unlock(&r->mu);
    }
}

int dlock__qfanout(dlock__quorum *q, const dlock__qreq *req, const int *targets, int need_yes,
                   int need_no, dlock__qtally *t) {
    memset(t, 0, sizeof *t);
    t->n = q->n;
    t->majority = q->n / 2 + 1;
    int64_t timeout_ms = dlock__quorum_timeout(q, req->lease_ms);
    dlock_client *clients[DLOCK_QUORUM_MAX];
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->n; i++) {
        clients[i] = q->m[i].client;
    }
    pthread_mutex_unlock(&q->mu);
    dlock__qpoll p;
    dlock__qpoll_init(&p, req);
    int threaded[DLOCK_QUORUM_MAX] = {0}, nthread = 0, npoll = 0;
    for (int i = 0; i < q->n; i++) {
        if (targets != NULL && !targets[i]) {
            continue;
        }
        t->asked++;
        /* A member with a job on its worker gets this one there too, behind it: in order. */
        if (clients[i] != NULL && atomic_load(&q->m[i].busy) == 0 &&
            dlock__qpoll_take(&p, i, clients[i])) {
            npoll++;
            atomic_fetch_add(&q->m[i].polled, 1);
        } else {
            threaded[i] = 1;
            nthread++;
            atomic_fetch_add(&q->m[i].threaded, 1);
        }
    }
    t->sent_at = dlock__now_ms();
    /* The caller's own cap (a renewal that must not outlive its lease) bounds every member. */
    int64_t deadline = dlock__deadline_in(timeout_ms);
    qround *r = NULL;
    if (nthread > 0) {
        if ((r = round_new(req, timeout_ms, deadline, npoll > 0)) == NULL) {
            dlock__qpoll_end(&p);
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        r->refs = nthread + 1;
        r->need_yes = need_yes;
        r->need_no = need_no;
        r->pending = nthread;
        for (int i = 0; i < q->n; i++) {
            if (threaded[i]) {
                r->job[i].round = r;
                r->job[i].i = i;
                submit(&q->m[i], &r->job[i]);
            }
        }
    }
    dlock__qpoll_send(&p, deadline);
    int was_decided = wait_round(&p, r, need_yes, need_no, deadline);
    collect(q, &p, r, targets, was_decided, timeout_ms, t);
    dlock__qpoll_end(&p);
    if (r != NULL) {
        round_unref(r);
    }
    return DLOCK_OK;
}

void dlock__qtally_clear(dlock__qtally *t) {
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        free(t->r[i].str);
        t->r[i].str = NULL;
    }
}

int dlock__qtally_err(const dlock__qtally *t, int fallback, const char *head) {
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", head);
    int rc = 0;
    for (int i = 0; i < t->n && n < sizeof buf; i++) {
        if (t->r[i].rc < 0) {
            rc = rc != 0 ? rc : t->r[i].rc;
            n += (size_t)snprintf(buf + n, sizeof buf - n, "; %s", t->r[i].msg);
        }
    }
    return dlock__err(rc != 0 ? rc : fallback, "%s", buf);
}

/* ---- open and close ---- */

static void free_opts(dlock_client_options *o) {
    char **s[] = {(char **)&o->username,        (char **)&o->password,
                  (char **)&o->tls_ca_file,     (char **)&o->tls_ca_dir,
                  (char **)&o->tls_cert_file,   (char **)&o->tls_key_file,
                  (char **)&o->tls_server_name, (char **)&o->rest_token};
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        if (*s[k] != NULL) {
            explicit_bzero(*s[k], strlen(*s[k])); /* passwords and tokens among them */
            free(*s[k]);
            *s[k] = NULL;
        }
    }
}

/* Copies the options (with their strings) for members opened later. 0 or ENOMEM. */
static int copy_opts(dlock_client_options *d, const dlock_client_options *o) {
    static const dlock_client_options defaults;
    *d = o != NULL ? *o : defaults;
    const char **s[] = {&d->username,      &d->password,     &d->tls_ca_file,     &d->tls_ca_dir,
                        &d->tls_cert_file, &d->tls_key_file, &d->tls_server_name, &d->rest_token};
    int oom = 0;
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        if (*s[k] != NULL && (*s[k] = strdup(*s[k])) == NULL) {
            oom = 1;
        }
    }
    return oom ? dlock__err(DLOCK_ENOMEM, "out of memory") : DLOCK_OK;
}

static void quorum_destroy(dlock__quorum *q) {
    for (int i = 0; i < q->n; i++) {
        qmember *m = &q->m[i];
        dlock_client_close(m->client);
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        free(m->url);
    }
    free_opts(&q->opts);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Drops one reference; the last frees everything. Returns 1 if it did. */
static int quorum_unref(dlock__quorum *q) {
    pthread_mutex_lock(&q->mu);
    int last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    if (last) {
        quorum_destroy(q);
    }
    return last;
}

/* Stops the workers. One blocked on a silent server (a connect or a request that has not timed
 * out yet) is not waited for beyond a short grace: it is detached and frees the quorum itself
 * when its call returns (within connect_timeout_ms), so that closing never hangs on a server
 * that does not answer. */
void dlock__quorum_free(dlock__quorum *q) {
    if (q == NULL) {
        return;
    }
    int64_t grace = q->timeout_ms > 0 ? q->timeout_ms : DLOCK_QUORUM_TIMEOUT_MAX_MS;
    for (int i = 0; i < q->n; i++) {
        qmember *m = &q->m[i];
        pthread_mutex_lock(&m->mu);
        m->stop = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until); /* pthread_timedjoin_np takes CLOCK_REALTIME */
    until.tv_sec += (time_t)(grace / 1000);
    until.tv_nsec += (long)(grace % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (int i = 0; i < q->n; i++) {
        qmember *m = &q->m[i];
        if (m->thread_live && pthread_timedjoin_np(m->thread, NULL, &until) != 0) {
            pthread_detach(m->thread);
        }
    }
    quorum_unref(q);
}

static int check_args(dlock_client **out, const char *const *urls, size_t n,
                      const dlock_client_options *o) {
    if (out == NULL) {
        return dlock__err(DLOCK_EINVAL, "dlock_client_open_quorum: out is NULL");
    }
    *out = NULL;
    if (urls == NULL || n < DLOCK_QUORUM_MIN || n > DLOCK_QUORUM_MAX) {
        return dlock__err(DLOCK_EINVAL,
                          "dlock_client_open_quorum: a Redlock needs %d to %d servers, got %zu "
                          "(with 1 or 2 no server may fail; use dlock_client_open for one)",
                          DLOCK_QUORUM_MIN, DLOCK_QUORUM_MAX, urls == NULL ? (size_t)0 : n);
    }
    if (o != NULL && o->quorum_timeout_ms < 0) {
        return dlock__err(DLOCK_EINVAL, "option quorum_timeout_ms must be >= 0 (0 = default)");
    }
    for (size_t i = 0; i < n; i++) {
        if (urls[i] == NULL) {
            return dlock__err(DLOCK_EINVAL, "dlock_client_open_quorum: urls[%zu] is NULL", i);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(urls[i], urls[k]) == 0) {
                return dlock__err(DLOCK_EINVAL,
                                  "dlock_client_open_quorum: server %zu is given twice; the "
                                  "servers of a Redlock must be independent",
                                  i + 1);
            }
        }
    }
    return DLOCK_OK;
}

/* A member that could not be reached is tolerated (its worker tries again later) as long as a
 * majority was reached; a wrong URL, password or certificate never is. */
static int check_members(dlock__quorum *q) {
    int up = 0;
    for (int i = 0; i < q->n; i++) {
        qmember *m = &q->m[i];
        if (!m->opened && m->client == NULL) {
            continue; /* still connecting: tolerated, as an unreachable one */
        }
        int rc = m->client != NULL ? DLOCK_OK : m->open_rc;
        if (rc != DLOCK_OK && rc != DLOCK_ECONNECT && rc != DLOCK_ETIMEDOUT && rc != DLOCK_EIO) {
            return dlock__err(rc, "Redlock server %d of %d: %s", i + 1, q->n, m->open_msg);
        }
        up += rc == DLOCK_OK;
    }
    if (up >= q->n / 2 + 1) {
        return DLOCK_OK;
    }
    char buf[512];
    size_t len =
        (size_t)snprintf(buf, sizeof buf, "Redlock: only %d of %d servers reachable, %d needed", up,
                         q->n, q->n / 2 + 1);
    for (int i = 0; i < q->n && len < sizeof buf; i++) {
        if (q->m[i].client == NULL) {
            len += (size_t)snprintf(buf + len, sizeof buf - len, "; %s", q->m[i].open_msg);
        }
    }
    return dlock__err(q->m[0].client == NULL ? q->m[0].open_rc : DLOCK_ECONNECT, "%s", buf);
}

/* A member's name for messages, without credentials. */
static void member_name(qmember *m, int n) {
    dlock__url u;
    if (dlock__url_parse(m->url, &u) != DLOCK_OK) {
        snprintf(m->name, sizeof m->name, "server %d of %d", m->i + 1, n);
        return;
    }
    dlock__url_display(&u, m->name, sizeof m->name);
    dlock__url_free(&u);
}

/* Starts the workers, which open their members in parallel, and waits for every first try. */
static int start_members(dlock__quorum *q, const char *const *urls) {
    for (int i = 0; i < q->n; i++) {
        qmember *m = &q->m[i];
        m->q = q;
        m->i = i;
        pthread_mutex_init(&m->mu, NULL);
        pthread_cond_init(&m->cv, NULL);
        if ((m->url = strdup(urls[i])) == NULL) {
            return dlock__err(DLOCK_ENOMEM, "out of memory");
        }
        member_name(m, q->n);
    }
    int started = 0;
    for (int i = 0; i < q->n; i++) {
        pthread_mutex_lock(&q->mu);
        q->refs++; /* the worker's, dropped when it exits */
        pthread_mutex_unlock(&q->mu);
        int e = pthread_create(&q->m[i].thread, NULL, member_main, &q->m[i]);
        if (e != 0) {
            pthread_mutex_lock(&q->mu);
            q->refs--;
            pthread_mutex_unlock(&q->mu);
            return dlock__err(DLOCK_ESYS, "Redlock: cannot start a thread: %s", strerror(e));
        }
        q->m[i].thread_live = 1;
        started++;
    }
    /* Once a majority is connected, the others get the member timeout (at most) to catch up: a
     * silent server (SIGSTOP, a dead host) must not hold up the open for the connect timeout.
     * Its thread keeps trying; requests meanwhile count it as failed. */
    int64_t grace = q->timeout_ms > 0 ? q->timeout_ms : DLOCK_QUORUM_TIMEOUT_MAX_MS, until = 0;
    pthread_mutex_lock(&q->mu);
    while (q->opened < started) {
        int up = 0;
        for (int i = 0; i < q->n; i++) {
            up += q->m[i].client != NULL;
        }
        if (up >= q->n / 2 + 1 && until == 0) {
            until = dlock__now_ms() + grace;
        }
        if (until != 0 && dlock__now_ms() >= until) {
            break;
        }
        if (until != 0) {
            dlock__cond_wait_until(&q->cv, &q->mu, until);
        } else {
            pthread_cond_wait(&q->cv, &q->mu);
        }
    }
    int rc = check_members(q);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* "redlock:" and each member's name, for dlock_client_server and messages. */
static int make_display(dlock_client *c, const dlock__quorum *q) {
    char buf[2048];
    size_t len = (size_t)snprintf(buf, sizeof buf, "redlock:");
    for (int i = 0; i < q->n && len < sizeof buf; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? "," : "", q->m[i].name);
    }
    if ((c->cfg.display = strdup(buf)) == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    return DLOCK_OK;
}

int dlock_client_open_quorum(dlock_client **out, const char *const *urls, size_t n,
                             const dlock_client_options *options) {
    dlock__err_clear();
    int rc = check_args(out, urls, n, options);
    if (rc != DLOCK_OK) {
        return rc;
    }
    dlock_client *c = calloc(1, sizeof *c);
    dlock__quorum *q = calloc(1, sizeof *q);
    if (c == NULL || q == NULL) {
        free(c);
        free(q);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&q->mu, NULL);
    dlock__cond_init_monotonic(&q->cv);
    c->quorum = q;
    q->refs = 1;
    q->n = (int)n;
    q->timeout_ms = options != NULL ? options->quorum_timeout_ms : 0;
    if ((rc = copy_opts(&q->opts, options)) != DLOCK_OK ||
        (rc = start_members(q, urls)) != DLOCK_OK || (rc = make_display(c, q)) != DLOCK_OK) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        dlock_client_close(c);
        return dlock__err(rc, "%s", saved);
    }
    *out = c;
    return DLOCK_OK;
}
