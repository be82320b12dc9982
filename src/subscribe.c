/* A connection subscribed to one pub/sub channel: the waiting side of a hand-off. It goes to the
 * server that owns the channel -- the one server, or on a Cluster the master of the channel's
 * slot, with sharded pub/sub, checked with ROLE because a stale map may name a replica, which
 * Redis 7.0 lets subscribe -- and is never pooled: a subscribed connection can do nothing
 * else. See internal.h for what happens when the slot moves. On the REST transport the
 * subscription is a server-sent-event stream (sse.c) that stands in for the connection: its reads
 * give the same {"message", channel, payload} shape. */
#include "fmacros.h"

#include "internal.h"
#include "sse.h"

#include <string.h>

#define MAX_HOPS 5 /* MOVED / ASK followed while subscribing */

/* 1 if the client speaks Upstash REST, whose subscriptions are SSE streams. */
static int is_rest(const dlock_client *c) {
#ifdef DLOCK_HAVE_REST
    return c->tp == &dlock__rest_transport;
#else
    (void)c;
    return 0;
#endif
}

static int is_str(const dlock__reply *r, const char *s) {
    return r->type == DLOCK__REPLY_STR && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* On a Cluster, the master a ROLE reply names if it is a replica's ("slave", host, port, ...);
 * NULL otherwise (a master, or a ROLE the ACL refuses). */
static dlock__node *master_of_replica(dlock_client *c, const dlock__reply *role) {
    if (role->type != DLOCK__REPLY_ARRAY || role->elements < 3 ||
        !is_str(&role->element[0], "slave") || role->element[1].type != DLOCK__REPLY_STR ||
        role->element[2].type != DLOCK__REPLY_INT || role->element[2].integer <= 0 ||
        role->element[2].integer > 65535) {
        return NULL;
    }
    return dlock__cluster_node_at(c->cluster, role->element[1].str, (int)role->element[2].integer);
}

/* One try at node. Returns DLOCK_OK with *out, 1 with the redirection in *moved (to clear), 2 if
 * the server has no SSUBSCRIBE, 3 with *master set if node is a Cluster replica (whose
 * subscribers receive what its master publishes, but are not counted there, so a release skips
 * them: queue_release.lua), or an error. On a Cluster, ROLE goes first on the same connection. */
static int subscribe_at(dlock_client *c, dlock__node *node, const dlock__cmd *cmd,
                        dlock__conn **out, dlock__reply *moved, dlock__node **master) {
    const char *what = cmd->argv[0],
               *ack = what[0] == 'S' && what[1] == 'S' ? "ssubscribe" : "subscribe";
    dlock__conn *conn;
    int rc = dlock__node_connect(node, &conn);
    if (rc != DLOCK_OK) {
        return rc;
    }
    static const char *role_argv[] = {"ROLE"};
    static const size_t role_len[] = {4};
    dlock__cmd cmds[2] = {{1, role_argv, role_len}, *cmd};
    int n = c->cluster != NULL ? 2 : 1;
    dlock__reply replies[2] = {{0}, {0}};
    int sent;
    rc = c->tp->exec(conn, n == 2 ? cmds : cmd, (size_t)n, replies,
                     dlock__deadline_in(c->cfg.command_timeout_ms), &sent);
    if (rc != DLOCK_OK) {
        c->tp->close(conn);
        return dlock__err_prefix(rc, "%s: %s", dlock__node_display(node), what);
    }
    dlock__reply r = replies[n - 1];
    if (n == 2) {
        *master = master_of_replica(c, &replies[0]);
        dlock__reply_clear(&replies[0]);
        if (*master != NULL && *master != node) {
            dlock__reply_clear(&r);
            c->tp->close(conn);
            return 3;
        }
    }
    if (r.type == DLOCK__REPLY_ARRAY && r.elements == 3 && is_str(&r.element[0], ack)) {
        dlock__reply_clear(&r);
        *out = conn;
        return DLOCK_OK;
    }
    c->tp->close(conn);
    dlock__srv_err k = dlock__reply_error_kind(&r);
    if (c->cluster != NULL && (k == DLOCK__SRV_MOVED || k == DLOCK__SRV_ASK)) {
        *moved = r;
        return 1;
    }
    if (c->cluster == NULL && r.type == DLOCK__REPLY_ERROR && ack[0] == 's' && ack[1] == 's' &&
        strncmp(r.str, "ERR unknown command", 19) == 0) {
        dlock__reply_clear(&r);
        return 2; /* a server before Redis 7: SUBSCRIBE instead */
    }
    rc =
        r.type == DLOCK__REPLY_ERROR
            ? dlock__err(dlock__reply_error_rc(&r), "%s: %s: Redis replied: %s",
                         dlock__node_display(node), what, r.str)
            : dlock__err(DLOCK_EPROTO, "%s: %s: unexpected reply", dlock__node_display(node), what);
    dlock__reply_clear(&r);
    return rc;
}

int dlock__sub_open(dlock_client *c, const char *channel, size_t len, dlock__conn **out,
                    int *sharded) {
    *out = NULL;
    if (is_rest(c)) {
        dlock__sse *s;
        int rc = dlock__sse_open(&c->cfg, channel, len, &s);
        *out = (dlock__conn *)s;
        *sharded = 0; /* /subscribe is SUBSCRIBE: the release must PUBLISH */
        return rc;
    }
    if (c->tp->read == NULL) {
        *sharded = 0;
        return dlock__err(DLOCK_ESTATE, "%s: the %s transport cannot subscribe", c->cfg.display,
                          c->tp->name);
    }
    int want = c->cluster != NULL || *sharded;
    const char *argv[] = {want ? "SSUBSCRIBE" : "SUBSCRIBE", channel};
    size_t lens[] = {strlen(argv[0]), len};
    dlock__cmd cmd = {2, argv, lens};
    dlock__node *master = NULL;
    if (c->cluster == NULL) {
        dlock__reply unused;
        int rc = subscribe_at(c, dlock__client_node(c), &cmd, out, &unused, &master);
        if (rc == 2) {
            argv[0] = "SUBSCRIBE";
            lens[0] = 9;
            want = 0;
            rc = subscribe_at(c, dlock__client_node(c), &cmd, out, &unused, &master);
        }
        *sharded = want;
        return rc;
    }
    *sharded = 1;
    dlock__node *node = dlock__cluster_node_for(c->cluster, (int)dlock__key_slot(channel, len));
    for (int hop = 0; hop < MAX_HOPS && node != NULL; hop++) {
        dlock__reply moved;
        int rc = subscribe_at(c, node, &cmd, out, &moved, &master);
        if (rc == 3) { /* a stale map named a replica (just after a failover): read it again */
            dlock__cluster_refresh_now(c->cluster, dlock__deadline_in(c->cfg.command_timeout_ms));
            /* The map read again names the master at the port this client speaks to; ROLE's
             * is the one replication uses (the TLS port with tls-replication), so it serves
             * only while the map is still stale. */
            dlock__node *mapped =
                dlock__cluster_node_for(c->cluster, (int)dlock__key_slot(channel, len));
            node = mapped != NULL && mapped != node ? mapped : master;
            continue;
        }
        if (rc <= 0) {
            if (rc < 0) { /* maybe a failed-over master: let the next try find the new one */
                dlock__cluster_refresh(c->cluster, dlock__deadline_in(c->cfg.command_timeout_ms));
            }
            return rc;
        }
        dlock__node *next = dlock__cluster_follow(c->cluster, &moved, node);
        dlock__reply_clear(&moved);
        node = next;
    }
    return dlock__err(DLOCK_EIO, "%s: SSUBSCRIBE: cannot find the master of the channel's slot",
                      c->cfg.display);
}

int dlock__sub_read(dlock_client *c, dlock__conn *conn, dlock__reply *msg,
                    const dlock__reply **payload, int64_t deadline_ms) {
    *payload = NULL;
    int rc = is_rest(c) ? dlock__sse_read((dlock__sse *)conn, msg, deadline_ms)
                        : c->tp->read(conn, msg, deadline_ms);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (msg->type != DLOCK__REPLY_ARRAY || msg->elements != 3 ||
        msg->element[0].type != DLOCK__REPLY_STR) {
        return DLOCK_OK;
    }
    const dlock__reply *kind = &msg->element[0];
    if (is_str(kind, "sunsubscribe")) {
        /* The server dropped us: the channel's slot is no longer its own. */
        dlock__reply_clear(msg);
        if (c->cluster != NULL) {
            dlock__cluster_refresh(c->cluster, dlock__deadline_in(c->cfg.command_timeout_ms));
        }
        return dlock__err(DLOCK_EIO, "%s: the server ended the subscription (its slot moved)",
                          c->cfg.display);
    }
    if ((is_str(kind, "message") || is_str(kind, "smessage")) &&
        msg->element[2].type == DLOCK__REPLY_STR) {
        *payload = &msg->element[2];
    }
    return DLOCK_OK;
}

void dlock__sub_close(dlock_client *c, dlock__conn *conn) {
    if (is_rest(c)) {
        dlock__sse_close((dlock__sse *)conn);
    } else if (conn != NULL) {
        c->tp->close(conn);
    }
}
