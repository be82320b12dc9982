/* The fan-out engine of a quorum client (quorum.c, with quorum_op.c and quorum_poll.c), used by
 * the Redlock operations (quorum_lock.c). Not API. */
#ifndef DLOCK_QUORUM_IMPL_H
#define DLOCK_QUORUM_IMPL_H

#include "internal.h"

/* What one request asks each member. */
typedef enum dlock__qop {
    DLOCK__QOP_SET,     /* SET id token NX PX arg: yes = set, no = the key exists */
    DLOCK__QOP_FSET,    /* quorum_acquire.lua: as SET, and yes carries the member's counter */
    DLOCK__QOP_FENCE,   /* quorum_fence.lua with t = arg: yes = stored, no = key not ours */
    DLOCK__QOP_RELEASE, /* release.lua: yes = deleted, no = not ours */
    DLOCK__QOP_EXTEND,  /* extend.lua with ms = arg: yes carries the new PTTL (-1: none) */
    DLOCK__QOP_RENEW,   /* renew.lua with lease = arg: the same */
    DLOCK__QOP_GET,     /* GET id: yes = holds token */
    DLOCK__QOP_INSPECT, /* inspect.lua: yes = a key, with its value and PTTL; no = none */
} dlock__qop;

typedef struct dlock__qreq {
    dlock__qop op;
    const char *id, *fence_key, *token; /* borrowed for the call; the engine copies them */
    size_t idlen, fence_len, token_len;
    int64_t arg;
    int64_t lease_ms; /* for the default member timeout */
} dlock__qreq;

#define DLOCK__Q_NOT_ASKED 100 /* rc of a member the request was not sent to */

typedef struct dlock__qresult {
    int rc;        /* 1 yes, 0 no, < 0 error, DLOCK__Q_NOT_ASKED */
    int64_t value; /* FSET: counter; EXTEND/RENEW/INSPECT: PTTL */
    char *str;     /* INSPECT: the key's value (malloc'd, NUL-terminated), else NULL */
    size_t len;
    char msg[160]; /* the error, naming the member */
} dlock__qresult;

typedef struct dlock__qtally {
    int n, majority, asked;
    int yes, no, failed;
    int undecided;   /* of the failed: still running when the answers already decided the round */
    int64_t sent_at; /* monotonic ms just before the first member was asked */
    dlock__qresult r[DLOCK_QUORUM_MAX];
} dlock__qtally;

/* Sends req at once to every member i with targets[i] != 0 (targets NULL: all). Returns when
 * need_yes members answered yes, or need_no answered no, or neither can happen any more, or all
 * answered (need_yes = need_no = 0 waits for all), and at the latest when the member timeout has
 * passed: a member that has not answered by then counts as failed ("no reply within N ms").
 * Returns DLOCK_OK with *t filled (free with dlock__qtally_clear), or ENOMEM. */
int dlock__qfanout(dlock__quorum *q, const dlock__qreq *req, const int *targets, int need_yes,
                   int need_no, dlock__qtally *t);
void dlock__qtally_clear(dlock__qtally *t);

/* Sets the thread's message to `head` followed by each failed member's message, and returns the
 * code of the first failure (or `fallback` if none failed). */
int dlock__qtally_err(const dlock__qtally *t, int fallback, const char *head);

int dlock__quorum_size(const dlock__quorum *q);

/* The per-member timeout used for a request about a lease of `lease_ms`. */
int64_t dlock__quorum_timeout(const dlock__quorum *q, int64_t lease_ms);

/* How many requests to member i (-1: all members) of quorum client c went the poll path and how
 * many the member's thread, since open: for the tests, which check which path was taken. */
void dlock__quorum_paths(const dlock_client *c, int i, long *polled, long *threaded);

/* ---- quorum_op.c: what a request asks one member, and how its answer reads ---- */

typedef struct dlock__qcmd {
    dlock__cmd cmd; /* points into this struct: do not copy it */
    int script;     /* an EVALSHA (or, sent in full, EVAL): NOSCRIPT means send it in full */
    const char *argv[8];
    size_t lens[8];
    char arg[24], nk[12];
} dlock__qcmd;

/* The command of req for one member: a script as EVALSHA (full 0) or EVAL (full 1). */
void dlock__qop_cmd(const dlock__qreq *req, int full, dlock__qcmd *out);
/* Member client c's reply r to req: 1 yes, 0 no, or an error (with the thread's message); sets
 * out->value, and out->str for INSPECT. r stays the caller's. */
int dlock__qop_judge(dlock_client *c, const dlock__qreq *req, const dlock__reply *r,
                     dlock__qresult *out);

/* ---- quorum_poll.c: the poll path, one thread driving many members' connections ---- */

typedef struct dlock__qcall {
    dlock_client *client;
    dlock__node *node;
    const dlock__transport *tp;
    dlock__conn *conn; /* the connection while the call has it */
    int state;
    int script, full; /* the request is a script; it went again in full after NOSCRIPT */
    int64_t deadline;
    short events; /* what recv waits for */
    dlock__qresult res;
} dlock__qcall;

typedef struct dlock__qpoll {
    const dlock__qreq *req;
    int waiting, yes, no; /* members sent to and not answered yet; answers so far */
    dlock__qcall call[DLOCK_QUORUM_MAX];
} dlock__qpoll;

void dlock__qpoll_init(dlock__qpoll *p, const dlock__qreq *req);
/* Takes an idle, healthy connection of member i's client c for the poll path. Returns 1, or 0
 * when c cannot split a call (Cluster, Sentinel, REST) or has no idle connection: the member then
 * goes to its thread (making a connection may block for the member timeout). */
int dlock__qpoll_take(dlock__qpoll *p, int i, dlock_client *c);
/* Sends the request on every taken connection; each member waits until its own deadline (its
 * command timeout, within `deadline`). A failed send is an outcome at once. */
void dlock__qpoll_send(dlock__qpoll *p, int64_t deadline);
/* Reads what has come, waiting with one poll(2) until an outcome is new, wake_fd (if >= 0) is
 * readable, or `until`; a member past its deadline fails with DLOCK_ETIMEDOUT. Returns the
 * number of new outcomes (p->yes, p->no and p->waiting count them). */
int dlock__qpoll_wait(dlock__qpoll *p, int wake_fd, int64_t until);
/* Member i: 1 with its outcome in p->call[i].res, 0 still waiting, -1 not on the poll path. */
int dlock__qpoll_state(const dlock__qpoll *p, int i);
/* Ends the round: a connection still waiting goes back to its pool with its reply abandoned
 * (dropped when it comes), or is closed when past its deadline or not all written. */
void dlock__qpoll_end(dlock__qpoll *p);

#endif
