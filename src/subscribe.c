/* Pub/sub connections, routed like commands (see internal.h, "subscribe.c"). */
#include "fmacros.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HOPS 5

struct dlock__sub {
    dlock_client *c;
    dlock__conn *conn; /* NULL between a lost subscription and the next one */
    int sharded;
    size_t len;
    char channel[]; /* len bytes, NUL-terminated */
};

int dlock__client_sharded_pubsub(const dlock_client *c) {
    return c->cluster != NULL;
}

static int is_str(const dlock__reply *r, const char *s) {
    return r->type == DLOCK__REPLY_STR && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* One try at node: a connection of its own, and the (S)SUBSCRIBE. Returns DLOCK_OK with the
 * connection in s->conn, 1 with *moved set for a redirection, or an error. */
static int subscribe_at(dlock__sub *s, dlock__node *node, int64_t deadline, dlock__reply *moved) {
    const char *argv[] = {s->sharded ? "SSUBSCRIBE" : "SUBSCRIBE", s->channel};
    size_t lens[] = {strlen(argv[0]), s->len};
    dlock__cmd cmd = {2, argv, lens};
    dlock__conn *conn;
    int rc = dlock__node_connect(node, &conn);
    if (rc != DLOCK_OK) {
        return rc;
    }
    dlock__reply r;
    int sent;
    rc = s->c->tp->exec(conn, &cmd, 1, &r, deadline, &sent);
    if (rc != DLOCK_OK) {
        s->c->tp->close(conn);
        return dlock__err_prefix(rc, "%s: %s", dlock__node_display(node), argv[0]);
    }
    if (r.type == DLOCK__REPLY_ARRAY && r.elements == 3 &&
        is_str(&r.element[0], s->sharded ? "ssubscribe" : "subscribe")) {
        dlock__reply_clear(&r);
        s->conn = conn;
        return DLOCK_OK;
    }
    s->c->tp->close(conn);
    dlock__srv_err k = dlock__reply_error_kind(&r);
    if (k == DLOCK__SRV_MOVED || k == DLOCK__SRV_ASK) {
        *moved = r;
        return 1;
    }
    rc = r.type == DLOCK__REPLY_ERROR
             ? dlock__err(dlock__reply_error_rc(&r), "%s: %s: Redis replied: %s",
                          dlock__node_display(node), argv[0], r.str)
             : dlock__err(DLOCK_EPROTO, "%s: %s: unexpected reply", dlock__node_display(node),
                          argv[0]);
    dlock__reply_clear(&r);
    return rc;
}

/* Subscribes at the master of the channel's slot (the one server off a cluster). */
static int sub_open(dlock__sub *s) {
    int64_t deadline = dlock__deadline_in(s->c->cfg.command_timeout_ms);
    dlock_client *c = s->c;
    dlock__node *node =
        c->cluster != NULL
            ? dlock__cluster_node_for(c->cluster, (int)dlock__key_slot(s->channel, s->len))
            : c->node;
    for (int hop = 0; hop < MAX_HOPS && node != NULL; hop++) {
        dlock__reply moved;
        int rc = subscribe_at(s, node, deadline, &moved);
        if (rc <= 0) {
            if (rc < 0 && c->cluster != NULL) {
                dlock__cluster_refresh(c->cluster, deadline);
            }
            return rc;
        }
        dlock__node *next = dlock__cluster_follow(c->cluster, &moved, node);
        dlock__reply_clear(&moved);
        node = next;
    }
    return dlock__err(DLOCK_ESERVER, "%s: cannot find the master of channel %.64s", c->cfg.display,
                      s->channel);
}

int dlock__client_subscribe(dlock_client *c, const char *channel, size_t len, dlock__sub **out) {
    *out = NULL;
    if (c->tp->read == NULL) {
        return dlock__err(DLOCK_ESTATE, "%s: the %s transport cannot subscribe", c->cfg.display,
                          c->tp->name);
    }
    dlock__sub *s = calloc(1, sizeof *s + len + 1);
    if (s == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    s->c = c;
    s->sharded = dlock__client_sharded_pubsub(c);
    s->len = len;
    memcpy(s->channel, channel, len);
    int rc = sub_open(s);
    if (rc != DLOCK_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return DLOCK_OK;
}

static void drop_conn(dlock__sub *s) {
    if (s->conn != NULL) {
        s->c->tp->close(s->conn);
        s->conn = NULL;
    }
}

int dlock__sub_read(dlock__sub *s, dlock__reply *out, int64_t deadline_ms) {
    int resubscribed = 0;
    for (;;) {
        if (s->conn == NULL) {
            int rc = sub_open(s);
            if (rc != DLOCK_OK) {
                return rc;
            }
            resubscribed = 1;
        }
        int rc = s->c->tp->read(s->conn, out, deadline_ms);
        if (rc == DLOCK_ETIMEDOUT) {
            return rc;
        }
        if (rc != DLOCK_OK) {
            /* On a cluster a broken connection may be a failed-over master: try the slot's new
             * master once. Elsewhere the caller decides (it polls meanwhile). */
            drop_conn(s);
            if (!s->sharded || resubscribed) {
                return rc;
            }
            dlock__cluster_refresh(s->c->cluster, dlock__deadline_in(s->c->cfg.command_timeout_ms));
            continue;
        }
        if (s->sharded && out->type == DLOCK__REPLY_ARRAY && out->elements >= 1 &&
            is_str(&out->element[0], "sunsubscribe")) {
            /* The server dropped us: the slot moved away. Follow it. */
            dlock__reply_clear(out);
            drop_conn(s);
            if (resubscribed) {
                return dlock__err(DLOCK_EIO, "%s: subscription to %.64s dropped again",
                                  s->c->cfg.display, s->channel);
            }
            dlock__cluster_refresh(s->c->cluster, dlock__deadline_in(s->c->cfg.command_timeout_ms));
            continue;
        }
        return DLOCK_OK;
    }
}

void dlock__sub_close(dlock__sub *s) {
    if (s != NULL) {
        drop_conn(s);
        free(s);
    }
}
