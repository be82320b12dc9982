/* A connection subscribed to one pub/sub channel: the waiting side of a hand-off. It goes to the
 * server that owns the channel -- the one server, or on a Cluster the master of the channel's
 * slot, with sharded pub/sub -- and is never pooled: a subscribed connection can do nothing
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

/* One try at node. Returns DLOCK_OK with *out, 1 with the redirection in *moved (to clear), 2 if
 * the server has no SSUBSCRIBE, or an error. */
static int subscribe_at(dlock_client *c, dlock__node *node, const dlock__cmd *cmd,
                        dlock__conn **out, dlock__reply *moved) {
    const char *what = cmd->argv[0],
               *ack = what[0] == 'S' && what[1] == 'S' ? "ssubscribe" : "subscribe";
    dlock__conn *conn;
    int rc = dlock__node_connect(node, &conn);
    if (rc != DLOCK_OK) {
        return rc;
    }
    dlock__reply r;
    int sent;
    rc = c->tp->exec(conn, cmd, 1, &r, dlock__deadline_in(c->cfg.command_timeout_ms), &sent);
    if (rc != DLOCK_OK) {
        c->tp->close(conn);
        return dlock__err_prefix(rc, "%s: %s", dlock__node_display(node), what);
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
    if (c->cluster == NULL) {
        dlock__reply unused;
        int rc = subscribe_at(c, dlock__client_node(c), &cmd, out, &unused);
        if (rc == 2) {
            argv[0] = "SUBSCRIBE";
            lens[0] = 9;
            want = 0;
            rc = subscribe_at(c, dlock__client_node(c), &cmd, out, &unused);
        }
        *sharded = want;
        return rc;
    }
    *sharded = 1;
    dlock__node *node = dlock__cluster_node_for(c->cluster, (int)dlock__key_slot(channel, len));
    for (int hop = 0; hop < MAX_HOPS && node != NULL; hop++) {
        dlock__reply moved;
        int rc = subscribe_at(c, node, &cmd, out, &moved);
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
