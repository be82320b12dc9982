/* WAIT after a lock write, for dlock_lock_options.wait_replicas: the command, sent on the same
 * connection right behind the write (a pipeline stays on one node, so on a Cluster it reaches
 * the master that took the write), and what its reply means. WAIT counts the replicas that
 * acknowledged the connection's latest write, so it means something only on that connection. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>

void dlock__wait_init(dlock__wait *w, int replicas, int64_t timeout_ms) {
    memset(w, 0, sizeof *w);
    w->replicas = replicas;
    w->timeout_ms = timeout_ms;
    snprintf(w->nbuf, sizeof w->nbuf, "%d", replicas);
    snprintf(w->tbuf, sizeof w->tbuf, "%lld", (long long)timeout_ms);
    w->argv[0] = "WAIT";
    w->argv[1] = w->nbuf;
    w->argv[2] = w->tbuf;
    w->lens[0] = 4;
    w->lens[1] = strlen(w->nbuf);
    w->lens[2] = strlen(w->tbuf);
    w->cmd = (dlock__cmd){3, w->argv, w->lens};
}

int dlock__wait_check(const dlock__wait *w, const dlock_client *c, const dlock__reply *r,
                      const char *what) {
    if (r->type != DLOCK__REPLY_INT) {
        return dlock__reply_error(c, r, "WAIT");
    }
    if (r->integer >= w->replicas) {
        return DLOCK_OK;
    }
    return dlock__err(DLOCK_EREPLICAS,
                      "%s: %s: %lld of the %d replicas asked for acknowledged the lock write "
                      "within %lld ms (WAIT)",
                      c->cfg.display, what, r->integer, w->replicas, (long long)w->timeout_ms);
}
