/* Redis Sentinel: the master of a named group, as the sentinels say, with a pool (pool.c).
 *
 * The sentinels are asked in turn (the one that answered last first) for
 * SENTINEL GET-MASTER-ADDR-BY-NAME; a null answer means that sentinel does not know the name.
 * The address is checked with ROLE, since a sentinel that has not seen a failover yet may still
 * name the demoted master. The master is looked up again, at most every RESOLVE_MIN_MS, after a
 * connection error and after a READONLY or UNBLOCKED reply (a demoted master refusing a write);
 * a command that cannot have run (nothing sent, or refused as READONLY) is then sent again to
 * the new master while the deadline allows.
 *
 * The master also moves as soon as a sentinel announces +switch-master (sentinel_watch.c): the
 * old master would go on taking writes, without an error, until the sentinels demote it.
 *
 * Masters are never freed before the client: a thread may still use one that was replaced. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVE_MIN_MS 250
#define RETRY_MS       100

struct dlock__sentinel {
    const dlock__config *cfg;
    const dlock__transport *tp;
    int pool_size;
    dlock__config scfg; /* cfg with the sentinels' credentials and no db */
    dlock__node **sentinels;
    size_t nsentinels;
    pthread_mutex_t mu; /* guards everything below */
    size_t preferred;   /* the sentinel that answered last */
    dlock__node *master;
    dlock__node **all; /* every master node made, freed at close */
    size_t nall, cap;
    int64_t last_resolve;
    dlock__switch_watch *watch;
};

static int is_str(const dlock__reply *r, const char *s) {
    return r->type == DLOCK__REPLY_STR && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int call(dlock__node *n, int argc, const char **argv, dlock__reply *r, int64_t deadline) {
    size_t lens[4];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    dlock__cmd cmd = {argc, argv, lens};
    int sent;
    return dlock__node_exec(n, &cmd, 1, r, deadline, &sent);
}

/* The node for the master at host:port (made once per address). */
static dlock__node *master_node(dlock__sentinel *s, const char *host, int port) {
    pthread_mutex_lock(&s->mu);
    dlock__node *n = NULL;
    for (size_t i = 0; i < s->nall && n == NULL; i++) {
        if (dlock__node_port(s->all[i]) == port && strcmp(dlock__node_host(s->all[i]), host) == 0) {
            n = s->all[i];
        }
    }
    if (n == NULL && s->nall == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        dlock__node **p = realloc(s->all, cap * sizeof *p);
        if (p != NULL) {
            s->all = p;
            s->cap = cap;
        }
    }
    if (n == NULL && s->nall < s->cap &&
        dlock__node_new(s->cfg, s->tp, s->pool_size, host, port, &n) == DLOCK_OK) {
        s->all[s->nall++] = n;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Asks sentinel k. Returns DLOCK_OK with the confirmed master in *out, or an error whose
 * message says what this sentinel said; *answered tells whether the sentinel replied at all. */
static int ask(dlock__sentinel *s, size_t k, int64_t deadline, dlock__node **out, int *answered) {
    dlock__node *sn = s->sentinels[k];
    const char *argv[] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", s->cfg->url.master_name};
    dlock__reply r;
    int rc = call(sn, 3, argv, &r, deadline);
    if (rc != DLOCK_OK) {
        return rc;
    }
    *answered = 1;
    char host[256] = "";
    long port = 0;
    if (r.type == DLOCK__REPLY_ARRAY && r.elements == 2 && r.element[0].type == DLOCK__REPLY_STR &&
        r.element[1].type == DLOCK__REPLY_STR && r.element[0].len < sizeof host) {
        memcpy(host, r.element[0].str, r.element[0].len + 1);
        port = strtol(r.element[1].str, NULL, 10);
    }
    if (r.type == DLOCK__REPLY_NIL || (r.type == DLOCK__REPLY_ARRAY && r.elements == 0)) {
        rc = dlock__err(DLOCK_ESERVER, "%s: this sentinel knows no master named '%.100s'",
                        dlock__node_display(sn), s->cfg->url.master_name);
    } else if (r.type == DLOCK__REPLY_ERROR) {
        rc = dlock__err(dlock__reply_error_rc(&r), "%s: SENTINEL GET-MASTER-ADDR-BY-NAME: %s",
                        dlock__node_display(sn), r.str);
    } else if (host[0] == '\0' || port <= 0 || port > 65535) {
        rc = dlock__err(DLOCK_EPROTO, "%s: unexpected reply to SENTINEL GET-MASTER-ADDR-BY-NAME",
                        dlock__node_display(sn));
    }
    dlock__reply_clear(&r);
    if (rc != DLOCK_OK) {
        return rc;
    }
    dlock__node *m = master_node(s, host, (int)port);
    if (m == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    const char *role[] = {"ROLE"};
    if ((rc = call(m, 1, role, &r, deadline)) != DLOCK_OK) {
        return dlock__err_prefix(rc, "%s named master %s, which", dlock__node_display(sn),
                                 dlock__node_display(m));
    }
    int master = r.type == DLOCK__REPLY_ARRAY && r.elements > 0 && is_str(&r.element[0], "master");
    dlock__reply_clear(&r);
    if (!master) {
        return dlock__err(DLOCK_ESERVER, "%s named %s as master '%.100s', but it is not a master",
                          dlock__node_display(sn), dlock__node_display(m), s->cfg->url.master_name);
    }
    *out = m;
    return DLOCK_OK;
}

/* How much a sentinel's failure says about the cause when none answered: a rejected credential
 * or certificate is the operator's to fix and outranks a sentinel that is down. */
static int failure_rank(int rc) {
    return rc == DLOCK_EAUTH ? 3 : rc == DLOCK_ETLS ? 2 : rc == DLOCK_ETIMEDOUT ? 1 : 0;
}

/* Asks the sentinels in turn until one names a confirmed master. */
static int resolve(dlock__sentinel *s, int64_t deadline) {
    pthread_mutex_lock(&s->mu);
    size_t start = s->preferred;
    s->last_resolve = dlock__now_ms();
    pthread_mutex_unlock(&s->mu);
    int rc = DLOCK_ECONNECT, reachable = 0, worst = DLOCK_ECONNECT, timeouts = 0, tried = 0;
    char first[512] = "", unreached[512] = "";
    for (size_t i = 0; i < s->nsentinels && dlock__now_ms() < deadline; i++) {
        size_t k = (start + i) % s->nsentinels;
        dlock__node *m = NULL;
        int answered = 0;
        if ((rc = ask(s, k, deadline, &m, &answered)) == DLOCK_OK) {
            pthread_mutex_lock(&s->mu);
            s->master = m;
            s->preferred = k;
            pthread_mutex_unlock(&s->mu);
            return DLOCK_OK;
        }
        reachable += answered;
        if (first[0] == '\0' || (reachable == 1 && answered)) {
            snprintf(first, sizeof first, "%s", dlock_errmsg());
        }
        if (!answered) {
            tried++;
            timeouts += rc == DLOCK_ETIMEDOUT;
            if (unreached[0] == '\0' || failure_rank(rc) > failure_rank(worst)) {
                worst = rc;
                snprintf(unreached, sizeof unreached, "%s", dlock_errmsg());
            }
        }
    }
    if (reachable == 0) {
        /* One refused our password or certificate: that is the cause to name. All timed out (or
         * the deadline left no time to try): ETIMEDOUT. Otherwise they are down. */
        int code = failure_rank(worst) >= 2 ? worst
                   : timeouts == tried      ? DLOCK_ETIMEDOUT
                                            : DLOCK_ECONNECT;
        return dlock__err(code, "%s: no sentinel answered (%zu tried; %s)", s->cfg->display,
                          s->nsentinels,
                          tried > 0 ? unreached : "no time left before the deadline");
    }
    return dlock__err(rc, "%s: no master found (%s)", s->cfg->display, first);
}

static void resolve_soon(dlock__sentinel *s, int64_t deadline) {
    pthread_mutex_lock(&s->mu);
    int due = dlock__now_ms() - s->last_resolve >= RESOLVE_MIN_MS;
    pthread_mutex_unlock(&s->mu);
    if (due) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        (void)resolve(s, deadline);
        dlock__err(0, "%s", saved);
    }
}

/* The watch's news: the new master, or (host NULL) a reason to ask the sentinels again. */
static void on_switch(void *arg, const char *host, int port) {
    dlock__sentinel *s = arg;
    if (host == NULL) {
        (void)resolve(s, dlock__deadline_in(s->cfg->connect_timeout_ms));
        return;
    }
    dlock__node *m = master_node(s, host, port);
    if (m != NULL) {
        pthread_mutex_lock(&s->mu);
        s->master = m;
        pthread_mutex_unlock(&s->mu);
    }
}

static int add_sentinel(dlock__sentinel *s, const char *host, int port) {
    return dlock__node_new(&s->scfg, s->tp, 1, host, port, &s->sentinels[s->nsentinels++]);
}

int dlock__sentinel_new(const dlock__config *cfg, const dlock__transport *tp, int pool_size,
                        dlock__sentinel **out) {
    dlock__sentinel *s = calloc(1, sizeof *s);
    if (s == NULL || (s->sentinels = calloc(cfg->url.nextra + 1, sizeof *s->sentinels)) == NULL) {
        free(s);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->tp = tp;
    s->pool_size = pool_size;
    s->scfg = *cfg;
    s->scfg.username = cfg->sentinel_username;
    s->scfg.password = cfg->sentinel_password;
    s->scfg.url.db = 0;
    /* One frozen sentinel must not use up the whole connect deadline: each gets a share. */
    int share = cfg->connect_timeout_ms / (int)(cfg->url.nextra + 1);
    s->scfg.connect_timeout_ms = share > 500 ? share : 500;
    if (s->scfg.connect_timeout_ms > cfg->connect_timeout_ms) {
        s->scfg.connect_timeout_ms = cfg->connect_timeout_ms;
    }
    pthread_mutex_init(&s->mu, NULL);
    int rc = add_sentinel(s, cfg->url.host, cfg->url.port);
    for (size_t i = 0; i < cfg->url.nextra && rc == DLOCK_OK; i++) {
        rc = add_sentinel(s, cfg->url.extra[i].host, cfg->url.extra[i].port);
    }
    if (rc == DLOCK_OK) {
        rc = resolve(s, dlock__deadline_in(cfg->connect_timeout_ms));
    }
    if (rc == DLOCK_OK) {
        rc = dlock__switch_watch_start(s->sentinels, s->nsentinels, tp, &s->scfg, on_switch, s,
                                       &s->watch);
    }
    if (rc != DLOCK_OK) {
        dlock__sentinel_free(s);
        return rc;
    }
    *out = s;
    return DLOCK_OK;
}

void dlock__sentinel_free(dlock__sentinel *s) {
    if (s == NULL) {
        return;
    }
    dlock__switch_watch_stop(s->watch); /* first: it uses the nodes */
    for (size_t i = 0; i < s->nsentinels; i++) {
        dlock__node_free(s->sentinels[i]);
    }
    for (size_t i = 0; i < s->nall; i++) {
        dlock__node_free(s->all[i]);
    }
    free(s->sentinels);
    free(s->all);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

dlock__node *dlock__sentinel_master(dlock__sentinel *s) {
    pthread_mutex_lock(&s->mu);
    dlock__node *m = s->master;
    pthread_mutex_unlock(&s->mu);
    return m;
}

int dlock__sentinel_exec(dlock__sentinel *s, const dlock__cmd *cmds, size_t n,
                         dlock__reply *replies, int64_t deadline, int *sent) {
    for (;;) {
        dlock__node *m = dlock__sentinel_master(s);
        int rc = dlock__node_exec(m, cmds, n, replies, deadline, sent);
        int readonly =
            rc == DLOCK_OK && dlock__reply_error_kind(&replies[0]) == DLOCK__SRV_READONLY;
        if (rc == DLOCK_OK && !readonly) {
            return DLOCK_OK;
        }
        /* A lost or demoted master: ask the sentinels again. Send again only what cannot have
         * run: nothing sent, or refused by a replica (READONLY runs nothing). */
        resolve_soon(s, deadline);
        int retry =
            (readonly || !*sent) && rc != DLOCK_ENOMEM && dlock__now_ms() + RETRY_MS < deadline;
        if (!retry) {
            return rc;
        }
        if (readonly) {
            for (size_t i = 0; i < n; i++) {
                dlock__reply_clear(&replies[i]);
            }
        }
        if (dlock__sentinel_master(s) == m) {
            dlock__sleep_ms(RETRY_MS);
        }
    }
}
