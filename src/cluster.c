/* Redis Cluster routing: the slot map, a pool per node (pool.c), and the redirections.
 *
 * Each command goes to the master of its key's slot (CRC16 of the key or of its hash tag, mod
 * 16384). The map comes from CLUSTER SLOTS, which every server since 3.0 answers (CLUSTER SHARDS
 * needs 7.0). It is re-read, at most every REFRESH_MIN_MS, after a MOVED, a connection error
 * and a CLUSTERDOWN; in between, a MOVED updates its one slot at once. An ASK sends the command
 * once to the node named, after ASKING, and leaves the map alone; a TRYAGAIN pauses and resends.
 * All of it within the command's deadline and at most MAX_REDIRECTS times, so a cluster that
 * points in circles cannot hold a caller. CLUSTERDOWN is handed up as the error reply it is: the
 * caller reports DLOCK_ESERVER with Redis's text, never "not acquired".
 *
 * Nodes are never freed before the client: a thread may still be using one that left the map. */
#include "fmacros.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NSLOTS         16384
#define NO_NODE        0xFFFF
#define MAX_REDIRECTS  5
#define REFRESH_MIN_MS 250 /* the map is re-read at most this often */
#define TRYAGAIN_MS    25  /* pause before resending after TRYAGAIN */
#define RETRY_MS       100 /* pause before retrying a node that refused the connection */

struct dlock__cluster {
    const dlock__config *cfg;
    const dlock__transport *tp;
    int pool_size;
    pthread_mutex_t mu; /* guards everything below */
    dlock__node **nodes;
    size_t nnodes, cap;
    uint16_t slots[NSLOTS]; /* index into nodes[], or NO_NODE */
    int64_t last_refresh;
    unsigned next; /* rotates keyless commands and map reads over the nodes */
};

/* ---- slots ---- */

static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* CRC16-XMODEM (polynomial 0x1021, initial 0), the cluster spec's key hash. */
static void crc_init(void) {
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++) {
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        }
        crc_table[i] = c;
    }
}

unsigned dlock__key_slot(const char *key, size_t len) {
    pthread_once(&crc_once, crc_init);
    /* The hash tag: the text between the first '{' and the next '}', if not empty. */
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)(crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)key[i]) & 0xff];
    }
    return crc & (NSLOTS - 1);
}

static int is(const dlock__cmd *c, int i, const char *word) {
    return c->argvlen[i] == strlen(word) && strncasecmp(c->argv[i], word, c->argvlen[i]) == 0;
}

int dlock__cmd_key(const dlock__cmd *c) {
    static const char *const keyless[] = {
        "PING",      "INFO",     "CLUSTER",  "SCRIPT",     "ASKING", "WAIT",     "PUBLISH",
        "SUBSCRIBE", "AUTH",     "SELECT",   "ROLE",       "TIME",   "READONLY", "ECHO",
        "COMMAND",   "HELLO",    "CLIENT",   "CONFIG",     "DBSIZE", "MULTI",    "EXEC",
        "RANDOMKEY", "FUNCTION", "SENTINEL", "PSUBSCRIBE",
    };
    if (c->argc < 2) {
        return -1;
    }
    if (is(c, 0, "EVALSHA") || is(c, 0, "EVAL") || is(c, 0, "EVALSHA_RO") || is(c, 0, "EVAL_RO") ||
        is(c, 0, "FCALL") || is(c, 0, "FCALL_RO")) {
        /* EVAL body numkeys key...: routed by the first key, if there is one. */
        int has_keys = c->argc > 3 && c->argvlen[2] > 0 && c->argvlen[2] < 8 &&
                       strspn(c->argv[2], "0") < c->argvlen[2];
        return has_keys ? 3 : -1;
    }
    for (size_t i = 0; i < sizeof keyless / sizeof *keyless; i++) {
        if (is(c, 0, keyless[i])) {
            return -1;
        }
    }
    return 1;
}

/* ---- nodes and the map ---- */

/* The node at host:port, added if new. Caller holds cl->mu. Returns its index or -1 (ENOMEM). */
static int node_index(dlock__cluster *cl, const char *host, int port) {
    for (size_t i = 0; i < cl->nnodes; i++) {
        if (dlock__node_port(cl->nodes[i]) == port &&
            strcasecmp(dlock__node_host(cl->nodes[i]), host) == 0) {
            return (int)i;
        }
    }
    if (cl->nnodes == NO_NODE) {
        return -1;
    }
    if (cl->nnodes == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 8;
        dlock__node **p = realloc(cl->nodes, cap * sizeof *p);
        if (p == NULL) {
            return -1;
        }
        cl->nodes = p;
        cl->cap = cap;
    }
    dlock__node *n;
    if (dlock__node_new(cl->cfg, cl->tp, cl->pool_size, host, port, &n) != DLOCK_OK) {
        return -1;
    }
    cl->nodes[cl->nnodes] = n;
    return (int)cl->nnodes++;
}

static dlock__node *node_at(dlock__cluster *cl, const char *host, int port) {
    pthread_mutex_lock(&cl->mu);
    int i = node_index(cl, host, port);
    dlock__node *n = i >= 0 ? cl->nodes[i] : NULL;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* The master of `slot`, or (slot < 0, or not covered) any master, or NULL if none is known. */
static dlock__node *owner(dlock__cluster *cl, int slot) {
    pthread_mutex_lock(&cl->mu);
    unsigned i = slot >= 0 ? cl->slots[slot] : NO_NODE;
    if (i == NO_NODE) {
        /* Keyless, or a slot no master covers: any master will do, and one that cannot serve
         * the slot says so in Redis's words (CLUSTERDOWN), or redirects us (MOVED). */
        for (unsigned k = 0; k < NSLOTS && i == NO_NODE; k++) {
            i = cl->slots[(k + cl->next * 997u) % NSLOTS];
        }
        cl->next++;
    }
    dlock__node *n = i != NO_NODE ? cl->nodes[i] : NULL;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* After a MOVED: the slot is node's from now on. */
static void set_owner(dlock__cluster *cl, int slot, const dlock__node *node) {
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i] == node) {
            cl->slots[slot] = (uint16_t)i;
        }
    }
    pthread_mutex_unlock(&cl->mu);
}

/* Parses one CLUSTER SLOTS entry, [start, end, [host, port, ...], replicas...], into the new map;
 * `asked` is the node that answered (an empty host means its own). Unknown endpoints ("?") are
 * left uncovered. */
static int apply_entry(dlock__cluster *cl, const dlock__reply *e, const dlock__node *asked,
                       uint16_t *map) {
    if (e->type != DLOCK__REPLY_ARRAY || e->elements < 3 ||
        e->element[0].type != DLOCK__REPLY_INT || e->element[1].type != DLOCK__REPLY_INT ||
        e->element[2].type != DLOCK__REPLY_ARRAY || e->element[2].elements < 2) {
        return DLOCK_EPROTO;
    }
    long long lo = e->element[0].integer, hi = e->element[1].integer;
    const dlock__reply *m = &e->element[2];
    if (lo < 0 || hi >= NSLOTS || lo > hi || m->element[0].type != DLOCK__REPLY_STR ||
        m->element[1].type != DLOCK__REPLY_INT || m->element[1].integer <= 0 ||
        m->element[1].integer > 65535) {
        return DLOCK_EPROTO;
    }
    const char *host = m->element[0].len > 0 ? m->element[0].str : dlock__node_host(asked);
    if (strcmp(host, "?") == 0) {
        return DLOCK_OK;
    }
    pthread_mutex_lock(&cl->mu);
    int i = node_index(cl, host, (int)m->element[1].integer);
    /* Replicas are remembered too, as places to read the map from after their master died. */
    for (size_t r = 3; r < e->elements && i >= 0; r++) {
        const dlock__reply *x = &e->element[r];
        if (x->type == DLOCK__REPLY_ARRAY && x->elements >= 2 &&
            x->element[0].type == DLOCK__REPLY_STR && x->element[0].len > 0 &&
            strcmp(x->element[0].str, "?") != 0 && x->element[1].type == DLOCK__REPLY_INT) {
            (void)node_index(cl, x->element[0].str, (int)x->element[1].integer);
        }
    }
    pthread_mutex_unlock(&cl->mu);
    if (i < 0) {
        return DLOCK_ENOMEM;
    }
    for (long long s = lo; s <= hi; s++) {
        map[s] = (uint16_t)i;
    }
    return DLOCK_OK;
}

/* Reads the map from node n and installs it. */
static int read_map(dlock__cluster *cl, dlock__node *n, int64_t deadline) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    size_t lens[] = {7, 5};
    dlock__cmd cmd = {2, argv, lens};
    dlock__reply r;
    int sent;
    int rc = dlock__node_exec(n, &cmd, 1, &r, deadline, &sent);
    if (rc != DLOCK_OK) {
        return rc;
    }
    uint16_t *map = malloc(sizeof cl->slots);
    if (map == NULL) {
        dlock__reply_clear(&r);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    memset(map, 0xFF, sizeof cl->slots);
    if (r.type != DLOCK__REPLY_ARRAY) {
        rc = r.type == DLOCK__REPLY_ERROR
                 ? dlock__err(DLOCK_ESERVER, "%s: CLUSTER SLOTS: %s", dlock__node_display(n), r.str)
                 : DLOCK_EPROTO;
    }
    for (size_t i = 0; i < r.elements && rc == DLOCK_OK; i++) {
        rc = apply_entry(cl, &r.element[i], n, map);
    }
    if (rc == DLOCK_EPROTO) {
        rc = dlock__err(rc, "%s: CLUSTER SLOTS: unexpected reply", dlock__node_display(n));
    } else if (rc == DLOCK_ENOMEM) {
        rc = dlock__err(rc, "out of memory");
    }
    if (rc == DLOCK_OK) {
        pthread_mutex_lock(&cl->mu);
        memcpy(cl->slots, map, sizeof cl->slots);
        pthread_mutex_unlock(&cl->mu);
    }
    free(map);
    dlock__reply_clear(&r);
    return rc;
}

/* Reads the map from the first node that answers, starting at a different one each time. */
static int refresh(dlock__cluster *cl, int64_t deadline) {
    pthread_mutex_lock(&cl->mu);
    size_t count = cl->nnodes, start = cl->next++;
    pthread_mutex_unlock(&cl->mu);
    int rc = DLOCK_ECONNECT;
    for (size_t k = 0; k < count && dlock__now_ms() < deadline; k++) {
        pthread_mutex_lock(&cl->mu);
        dlock__node *n = cl->nodes[(start + k) % count];
        pthread_mutex_unlock(&cl->mu);
        if ((rc = read_map(cl, n, deadline)) == DLOCK_OK) {
            return DLOCK_OK;
        }
    }
    return rc;
}

/* A refresh, unless one ran in the last REFRESH_MIN_MS. Its failure is not the caller's: the
 * command still runs (or already ran) on the map there is, and the next refresh tries again. */
/* Re-reads the map unless that was done in the last REFRESH_MIN_MS (or at once, with force). */
static void refresh_if_due(dlock__cluster *cl, int64_t deadline, int force) {
    int64_t now = dlock__now_ms();
    pthread_mutex_lock(&cl->mu);
    int due = force || now - cl->last_refresh >= REFRESH_MIN_MS;
    if (due) {
        cl->last_refresh = now;
    }
    pthread_mutex_unlock(&cl->mu);
    if (due) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", dlock_errmsg());
        (void)refresh(cl, deadline);
        dlock__err(0, "%s", saved);
    }
}

static void refresh_soon(dlock__cluster *cl, int64_t deadline) {
    refresh_if_due(cl, deadline, 0);
}

int dlock__cluster_new(const dlock__config *cfg, const dlock__transport *tp, int pool_size,
                       dlock__node *seed, dlock__cluster **out) {
    dlock__cluster *cl = calloc(1, sizeof *cl);
    if (cl == NULL || (cl->nodes = malloc(8 * sizeof *cl->nodes)) == NULL) {
        free(cl);
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    cl->cfg = cfg;
    cl->tp = tp;
    cl->pool_size = pool_size;
    cl->cap = 8;
    cl->nodes[cl->nnodes++] = seed; /* found again by its address if the map names it */
    memset(cl->slots, 0xFF, sizeof cl->slots);
    pthread_mutex_init(&cl->mu, NULL);
    int rc = read_map(cl, seed, dlock__deadline_in(cfg->connect_timeout_ms));
    if (rc != DLOCK_OK) {
        cl->nodes[0] = NULL; /* the seed stays the caller's */
        dlock__cluster_free(cl);
        return rc;
    }
    cl->last_refresh = dlock__now_ms();
    *out = cl;
    return DLOCK_OK;
}

void dlock__cluster_free(dlock__cluster *cl) {
    if (cl == NULL) {
        return;
    }
    for (size_t i = 0; i < cl->nnodes; i++) {
        dlock__node_free(cl->nodes[i]);
    }
    free(cl->nodes);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

/* ---- redirections ---- */

/* Parses "MOVED 3999 host:port" / "ASK 3999 host:port" (host may be an IPv6 address, or empty
 * for the node that answered). Returns the node named, or NULL. */
static dlock__node *redirect_target(dlock__cluster *cl, const dlock__reply *e,
                                    const dlock__node *from, int *slot) {
    const char *sp1 = memchr(e->str, ' ', e->len);
    const char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    const char *colon = sp2 != NULL ? strrchr(sp2 + 1, ':') : NULL;
    if (colon == NULL) {
        return NULL;
    }
    char *end;
    long s = strtol(sp1 + 1, &end, 10);
    long port = strtol(colon + 1, NULL, 10);
    if (end != sp2 || s < 0 || s >= NSLOTS || port <= 0 || port > 65535) {
        return NULL;
    }
    char host[256];
    size_t hlen = (size_t)(colon - (sp2 + 1));
    if (hlen >= sizeof host) {
        return NULL;
    }
    memcpy(host, sp2 + 1, hlen);
    host[hlen] = '\0';
    *slot = (int)s;
    return node_at(cl, hlen > 0 ? host : dlock__node_host(from), (int)port);
}

/* What the replies of one attempt ask for: the redirection every keyed command's reply carries
 * (a pipeline is one slot, so all or none are redirected; one that ran is never resent), else
 * NONE. A keyless command riding along (the WAIT behind a lock write) is never redirected: it
 * ran, harmlessly, where the write did not, and goes along with the resend. */
static dlock__srv_err redirection(const dlock__cmd *cmds, const dlock__reply *replies, size_t n) {
    dlock__srv_err k = dlock__reply_error_kind(&replies[0]);
    if (k != DLOCK__SRV_MOVED && k != DLOCK__SRV_ASK && k != DLOCK__SRV_TRYAGAIN) {
        return DLOCK__SRV_NONE;
    }
    for (size_t i = 1; i < n; i++) {
        if (dlock__reply_error_kind(&replies[i]) != k && dlock__cmd_key(&cmds[i]) >= 0) {
            return DLOCK__SRV_NONE;
        }
    }
    return k;
}

/* Sends cmds to n, each preceded by ASKING when `asking`. */
static int send_to(dlock__node *node, int asking, const dlock__cmd *cmds, size_t n,
                   dlock__reply *replies, int64_t deadline, int *sent) {
    if (!asking) {
        return dlock__node_exec(node, cmds, n, replies, deadline, sent);
    }
    static const char *ask_argv[] = {"ASKING"};
    static const size_t ask_len[] = {6};
    dlock__cmd *two = malloc(2 * n * sizeof *two);
    dlock__reply *r2 = malloc(2 * n * sizeof *r2);
    int rc = DLOCK_ENOMEM;
    *sent = 0;
    if (two != NULL && r2 != NULL) {
        for (size_t i = 0; i < n; i++) {
            two[2 * i] = (dlock__cmd){1, ask_argv, ask_len};
            two[2 * i + 1] = cmds[i];
        }
        rc = dlock__node_exec(node, two, 2 * n, r2, deadline, sent);
        for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
            dlock__reply_clear(&r2[2 * i]);
            replies[i] = r2[2 * i + 1];
        }
    } else {
        dlock__err(rc, "out of memory");
    }
    free(two);
    free(r2);
    return rc;
}

static void clear_all(dlock__reply *replies, size_t n) {
    for (size_t i = 0; i < n; i++) {
        dlock__reply_clear(&replies[i]);
    }
}

/* Follows the redirection k that every reply carries: sets *node and *asking for the next try and
 * clears the replies. Returns 0, or -1 if the redirection names nothing usable (the replies then
 * stay, so the caller sees Redis's text). A TRYAGAIN starts over from the slot's owner after a
 * pause: when it came from the importing node after ASKING, the owner must ask us again. */
static int follow(dlock__cluster *cl, dlock__srv_err k, dlock__reply *replies, size_t n, int slot,
                  int64_t deadline, dlock__node **node, int *asking) {
    if (k == DLOCK__SRV_TRYAGAIN) {
        clear_all(replies, n);
        int64_t left = deadline - dlock__now_ms();
        dlock__sleep_ms(left < TRYAGAIN_MS ? left : TRYAGAIN_MS);
        *node = owner(cl, slot);
        *asking = 0;
        return 0;
    }
    int s = slot;
    dlock__node *next = redirect_target(cl, &replies[0], *node, &s);
    if (next == NULL) {
        return -1;
    }
    clear_all(replies, n);
    if (k == DLOCK__SRV_MOVED) {
        set_owner(cl, s, next);
        refresh_soon(cl, deadline);
    }
    *asking = k == DLOCK__SRV_ASK;
    *node = next;
    return 0;
}

int dlock__cluster_exec(dlock__cluster *cl, int key, const dlock__cmd *cmds, size_t n,
                        dlock__reply *replies, int64_t deadline, int *sent) {
    if (key == 0) {
        key = dlock__cmd_key(&cmds[0]);
    }
    int slot = key > 0 && key < cmds[0].argc
                   ? (int)dlock__key_slot(cmds[0].argv[key], cmds[0].argvlen[key])
                   : -1;
    dlock__node *node = owner(cl, slot);
    int asking = 0;
    for (int hops = 0;;) {
        if (node == NULL) {
            refresh_soon(cl, deadline);
            if ((node = owner(cl, slot)) == NULL) {
                return dlock__err(DLOCK_ECONNECT, "%s: no master of the cluster is known",
                                  cl->cfg->display);
            }
        }
        int rc = send_to(node, asking, cmds, n, replies, deadline, sent);
        if (rc != DLOCK_OK) {
            /* The node is gone or unreachable: maybe failed over. Read the map again; retry only
             * what cannot have run (nothing sent), while the deadline allows. */
            refresh_soon(cl, deadline);
            if (*sent || rc == DLOCK_ENOMEM || dlock__now_ms() + RETRY_MS >= deadline) {
                return rc;
            }
            dlock__sleep_ms(RETRY_MS);
            node = owner(cl, slot);
            asking = 0;
            continue;
        }
        dlock__srv_err k = redirection(cmds, replies, n);
        if (k == DLOCK__SRV_NONE) {
            if (dlock__reply_error_kind(&replies[0]) == DLOCK__SRV_CLUSTERDOWN) {
                refresh_soon(cl, deadline);
            }
            return DLOCK_OK;
        }
        /* MOVED and ASK count against the cap; TRYAGAIN only against the deadline. */
        hops = k == DLOCK__SRV_TRYAGAIN ? 0 : hops + 1;
        if (hops > MAX_REDIRECTS || dlock__now_ms() >= deadline) {
            rc = dlock__err(DLOCK_ESERVER, "%s: the cluster still redirects (%s) after %s",
                            dlock__node_display(node), replies[0].str,
                            hops > MAX_REDIRECTS ? "the most redirections allowed"
                                                 : "the command deadline");
            clear_all(replies, n);
            return rc;
        }
        if (follow(cl, k, replies, n, slot, deadline, &node, &asking) != 0) {
            return DLOCK_OK;
        }
    }
}

dlock__node *dlock__cluster_node_for(dlock__cluster *cl, int slot) {
    return owner(cl, slot);
}

dlock__node *dlock__cluster_follow(dlock__cluster *cl, const dlock__reply *redirect,
                                   const dlock__node *from) {
    int s = -1;
    dlock__node *n = redirect_target(cl, redirect, from, &s);
    if (n != NULL && dlock__reply_error_kind(redirect) == DLOCK__SRV_MOVED) {
        set_owner(cl, s, n);
    }
    return n;
}

void dlock__cluster_refresh(dlock__cluster *cl, int64_t deadline) {
    refresh_soon(cl, deadline);
}

void dlock__cluster_refresh_now(dlock__cluster *cl, int64_t deadline) {
    refresh_if_due(cl, deadline, 1);
}

dlock__node *dlock__cluster_node_at(dlock__cluster *cl, const char *host, int port) {
    return node_at(cl, host, port);
}
