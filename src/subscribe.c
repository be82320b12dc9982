/* A connection subscribed to one pub/sub channel: the waiting side of a hand-off. It goes
 * through the client's transport but is never pooled: a subscribed connection can do nothing
 * else. */
#include "fmacros.h"

#include "internal.h"

#include <string.h>

int dlock__sub_open(dlock_client *c, const char *channel, size_t len, dlock__conn **out) {
    const dlock__transport *tp = c->tp;
    *out = NULL;
    if (tp->read == NULL) {
        return dlock__err(DLOCK_ESTATE, "%s: the %s transport cannot subscribe", c->cfg.display,
                          tp->name);
    }
    dlock__conn *conn;
    int rc = tp->connect(&c->cfg, &conn);
    if (rc != DLOCK_OK) {
        return rc;
    }
    const char *argv[] = {"SUBSCRIBE", channel};
    size_t lens[] = {9, len};
    dlock__cmd cmd = {2, argv, lens};
    dlock__reply r;
    int sent;
    rc = tp->exec(conn, &cmd, 1, &r, dlock__deadline_in(c->cfg.command_timeout_ms), &sent);
    if (rc != DLOCK_OK) {
        tp->close(conn);
        return dlock__err_prefix(rc, "%s: SUBSCRIBE", c->cfg.display);
    }
    int ok = r.type == DLOCK__REPLY_ARRAY && r.elements == 3 &&
             r.element[0].type == DLOCK__REPLY_STR && strcmp(r.element[0].str, "subscribe") == 0;
    if (!ok) {
        rc = r.type == DLOCK__REPLY_ERROR ? dlock__reply_error(c, &r, "SUBSCRIBE")
                                          : dlock__err(DLOCK_EPROTO,
                                                       "%s: SUBSCRIBE: unexpected "
                                                       "reply",
                                                       c->cfg.display);
        tp->close(conn);
    } else {
        *out = conn;
    }
    dlock__reply_clear(&r);
    return rc;
}

int dlock__sub_read(dlock_client *c, dlock__conn *conn, dlock__reply *msg,
                    const dlock__reply **payload, int64_t deadline_ms) {
    *payload = NULL;
    int rc = c->tp->read(conn, msg, deadline_ms);
    if (rc != DLOCK_OK) {
        return rc;
    }
    if (msg->type == DLOCK__REPLY_ARRAY && msg->elements == 3 &&
        msg->element[0].type == DLOCK__REPLY_STR && strcmp(msg->element[0].str, "message") == 0 &&
        msg->element[2].type == DLOCK__REPLY_STR) {
        *payload = &msg->element[2];
    }
    return DLOCK_OK;
}

void dlock__sub_close(dlock_client *c, dlock__conn *conn) {
    if (conn != NULL) {
        c->tp->close(conn);
    }
}

const char *dlock__sub_publish_command(const dlock_client *c) {
    (void)c;
    return "publish";
}
