/* The poll path of the quorum fan-out: the calling thread writes a request to every member's
 * connection and then waits on all their sockets with one poll(2), reading each reply with
 * hiredis's reader as it comes (the transport's split call). No thread hand-off per member and
 * operation, so a round costs what raw hiredis pays to do the same: N writes, N reads.
 *
 * Only a member that is one Redis-protocol server (not Cluster, Sentinel or REST, whose routing
 * needs the whole exec) with an idle, healthy connection takes this path; connecting may block
 * for the member timeout, so a member with no idle connection goes to its thread, which
 * connects. A member whose reply was not needed when the round was decided keeps its connection:
 * the transport drops the late reply before the next one (abandon), so the member's requests stay
 * in order on it. A member past its deadline has its connection closed, as exec would. */
#include "fmacros.h"

#include "quorum_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { CALL_NONE, CALL_TAKEN, CALL_WAITING, CALL_DONE };

void dlock__qpoll_init(dlock__qpoll *p, const dlock__qreq *req) {
    memset(p, 0, sizeof *p);
    p->req = req;
}

int dlock__qpoll_take(dlock__qpoll *p, int i, dlock_client *c) {
    dlock__node *node = dlock__client_split_node(c);
    if (node == NULL) {
        return 0;
    }
    const dlock__transport *tp = dlock__node_transport(node);
    dlock__conn *conn;
    while (dlock__node_take_idle(node, &conn)) {
        if (tp->alive(conn)) {
            p->call[i] = (dlock__qcall){
                .client = c, .node = node, .tp = tp, .conn = conn, .state = CALL_TAKEN};
            return 1;
        }
        tp->close(conn); /* EOF, stray data: what borrow would drop too */
    }
    return 0;
}

/* The member has its outcome: rc (1 yes, 0 no, < 0 an error with the thread's message). */
static void outcome(dlock__qpoll *p, dlock__qcall *k, int rc) {
    k->res.rc = rc;
    if (rc < 0) {
        snprintf(k->res.msg, sizeof k->res.msg, "%s", dlock_errmsg());
    }
    k->state = CALL_DONE;
    p->waiting--;
    p->yes += rc == 1;
    p->no += rc == 0;
}

/* The connection failed (rc): it is closed, and the message names its server. */
static void broken(dlock__qpoll *p, dlock__qcall *k, int rc) {
    k->tp->close(k->conn);
    k->conn = NULL;
    outcome(p, k, dlock__err_prefix(rc, "%s", dlock__node_display(k->node)));
}

static int send_op(dlock__qcall *k, const dlock__qreq *req) {
    dlock__qcmd cmd;
    dlock__qop_cmd(req, k->full, &cmd);
    k->script = cmd.script;
    int sent;
    k->events = POLLIN;
    return k->tp->send(k->conn, &cmd.cmd, 1, &sent);
}

void dlock__qpoll_send(dlock__qpoll *p, int64_t deadline) {
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        dlock__qcall *k = &p->call[i];
        if (k->state != CALL_TAKEN) {
            continue;
        }
        /* The member's own command deadline, within the round's. */
        int64_t own = dlock__add_sat(dlock__now_ms(), k->client->cfg.command_timeout_ms);
        k->deadline = own < deadline ? own : deadline;
        k->state = CALL_WAITING;
        p->waiting++;
        if (dlock__now_ms() >= deadline) {
            /* The caller's cap has passed (a renewal at the end of its lease): too late. */
            dlock__node_give_back(k->node, k->conn);
            k->conn = NULL;
            outcome(p, k, dlock__err(DLOCK_ETIMEDOUT, "not sent"));
            continue;
        }
        int rc = send_op(k, p->req);
        if (rc != DLOCK_OK) {
            broken(p, k, rc);
        }
    }
}

/* Reads what the member's socket has: its reply judged, or NOSCRIPT answered with the script in
 * full (it did not run), or nothing yet. */
static void step(dlock__qpoll *p, dlock__qcall *k) {
    for (;;) {
        dlock__reply r;
        int rc = k->tp->recv(k->conn, &r, &k->events);
        if (rc == DLOCK__AGAIN) {
            return;
        }
        if (rc != DLOCK_OK) {
            broken(p, k, rc);
            return;
        }
        if (k->script && !k->full && dlock__script_missing(&r)) {
            dlock__reply_clear(&r);
            k->full = 1;
            if ((rc = send_op(k, p->req)) != DLOCK_OK) {
                broken(p, k, rc);
                return;
            }
            continue;
        }
        rc = dlock__qop_judge(k->client, p->req, &r, &k->res);
        dlock__reply_clear(&r);
        /* One reply per request, whatever it said: the connection is in step, and idle. */
        dlock__node_give_back(k->node, k->conn);
        k->conn = NULL;
        outcome(p, k, rc);
        return;
    }
}

static void expire(dlock__qpoll *p, dlock__qcall *k) {
    k->tp->close(k->conn); /* its reply may still come: never reuse it */
    k->conn = NULL;
    outcome(p, k,
            dlock__err(DLOCK_ETIMEDOUT, "%s: no reply in time", dlock__node_display(k->node)));
}

int dlock__qpoll_wait(dlock__qpoll *p, int wake_fd, int64_t until) {
    struct pollfd fds[DLOCK_QUORUM_MAX + 1];
    int who[DLOCK_QUORUM_MAX + 1], nfds = 0, before = p->waiting;
    int64_t now = dlock__now_ms(), wake_at = until;
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        dlock__qcall *k = &p->call[i];
        if (k->state != CALL_WAITING) {
            continue;
        }
        if (now >= k->deadline) {
            expire(p, k);
            continue;
        }
        wake_at = k->deadline < wake_at ? k->deadline : wake_at;
        fds[nfds] = (struct pollfd){.fd = k->tp->fd(k->conn), .events = k->events};
        who[nfds++] = i;
    }
    if (p->waiting < before) {
        return before - p->waiting;
    }
    if (wake_fd >= 0) {
        fds[nfds] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
        who[nfds++] = -1;
    }
    if (nfds == 0) {
        return 0;
    }
    int64_t left = wake_at - now;
    int n = poll(fds, (nfds_t)nfds, left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left);
    if (n < 0 && errno != EINTR) {
        for (int j = 0; j < nfds; j++) {
            if (who[j] >= 0) {
                broken(p, &p->call[who[j]],
                       dlock__err(DLOCK_ESYS, "poll failed: %s", strerror(errno)));
            }
        }
    }
    for (int j = 0; j < nfds && n > 0; j++) {
        if (fds[j].revents == 0) {
            continue;
        }
        if (who[j] < 0) {
            uint64_t v;
            if (read(wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: another reader took it; the caller counts again anyway */
            }
        } else {
            step(p, &p->call[who[j]]);
        }
    }
    return before - p->waiting;
}

int dlock__qpoll_state(const dlock__qpoll *p, int i) {
    const dlock__qcall *k = &p->call[i];
    return k->state == CALL_DONE ? 1 : k->state == CALL_WAITING ? 0 : -1;
}

void dlock__qpoll_end(dlock__qpoll *p) {
    int64_t now = dlock__now_ms();
    for (int i = 0; i < DLOCK_QUORUM_MAX; i++) {
        dlock__qcall *k = &p->call[i];
        if (k->conn == NULL) {
            continue;
        }
        if (k->state == CALL_TAKEN) {
            dlock__node_give_back(k->node, k->conn); /* never sent on */
        } else if (now < k->deadline && k->tp->abandon(k->conn, 1)) {
            /* Decided without it: the reply is dropped when it comes. */
            dlock__node_give_back(k->node, k->conn);
        } else {
            k->tp->close(k->conn);
        }
        k->conn = NULL;
    }
}
