/* The fan-out engine of a quorum client (quorum.c), used by the Redlock operations
 * (quorum_lock.c). Not API. */
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

#endif
