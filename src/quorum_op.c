/* What a Redlock request asks one member, and how its answer reads: the command of each
 * dlock__qop and the judge of its reply. Both ways of sending (the member's thread, quorum.c, and
 * the poll path, quorum_poll.c) use these, so a member means the same whichever way it went. */
#include "fmacros.h"

#include "quorum_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The script behind an op, and how many of id, fence_key, token, arg it takes (keys first). */
static dlock__script *script_of(dlock__qop op, int *nkeys, int *argc) {
    switch (op) {
    case DLOCK__QOP_FSET:
    case DLOCK__QOP_FENCE:
        *nkeys = 2;
        *argc = 4;
        return op == DLOCK__QOP_FSET ? &dlock__script_quorum_acquire : &dlock__script_quorum_fence;
    case DLOCK__QOP_RELEASE:
        *nkeys = 1;
        *argc = 2;
        return &dlock__script_release;
    case DLOCK__QOP_EXTEND:
    case DLOCK__QOP_RENEW:
        *nkeys = 1;
        *argc = 3;
        return op == DLOCK__QOP_EXTEND ? &dlock__script_extend : &dlock__script_renew;
    case DLOCK__QOP_INSPECT:
        *nkeys = 1;
        *argc = 1;
        return &dlock__script_inspect;
    default:
        return NULL; /* SET and GET are plain commands */
    }
}

void dlock__qop_cmd(const dlock__qreq *q, int full, dlock__qcmd *out) {
    int alen = snprintf(out->arg, sizeof out->arg, "%lld", (long long)q->arg);
    int nkeys = 0, argc = 0;
    dlock__script *s = script_of(q->op, &nkeys, &argc);
    out->script = s != NULL;
    out->cmd.argv = out->argv;
    out->cmd.argvlen = out->lens;
    if (s != NULL) {
        /* The script's keys and args: id, then fence_key for the two-key scripts, token, arg. */
        const char *v[4];
        size_t l[4];
        int k = 0;
        v[k] = q->id;
        l[k++] = q->idlen;
        if (nkeys == 2) {
            v[k] = q->fence_key;
            l[k++] = q->fence_len;
        }
        v[k] = q->token;
        l[k++] = q->token_len;
        v[k] = out->arg;
        l[k++] = (size_t)alen;
        out->cmd.argc =
            dlock__script_argv(s, full, nkeys, argc, v, l, out->argv, out->lens, out->nk);
        return;
    }
    if (q->op == DLOCK__QOP_GET) {
        const char *v[] = {"GET", q->id};
        size_t l[] = {3, q->idlen};
        out->cmd.argc = 2;
        memcpy(out->argv, v, sizeof v);
        memcpy(out->lens, l, sizeof l);
        return;
    }
    const char *v[] = {"SET", q->id, q->token, "NX", "PX", out->arg};
    size_t l[] = {3, q->idlen, q->token_len, 2, 2, (size_t)alen};
    out->cmd.argc = 6;
    memcpy(out->argv, v, sizeof v);
    memcpy(out->lens, l, sizeof l);
}

static int int_reply(dlock_client *c, const dlock__reply *r, const char *what, int64_t *value) {
    if (r->type != DLOCK__REPLY_INT) {
        return dlock__reply_error(c, r, what);
    }
    *value = r->integer;
    return r->integer != 0;
}

static int set_reply(dlock_client *c, const dlock__reply *r) {
    if (r->type == DLOCK__REPLY_NIL) {
        return 0; /* NX: the key exists */
    }
    if (r->type == DLOCK__REPLY_STR && r->len == 2 && memcmp(r->str, "OK", 2) == 0) {
        return 1;
    }
    return dlock__reply_error(c, r, "SET NX PX");
}

static int fset_reply(dlock_client *c, const dlock__reply *r, int64_t *value) {
    if (r->type != DLOCK__REPLY_ARRAY || r->elements < 1 ||
        r->element[0].type != DLOCK__REPLY_INT) {
        return dlock__reply_error(c, r, "Redlock acquire");
    }
    if (r->element[0].integer == 0) {
        return 0;
    }
    if (r->elements != 2 || r->element[1].type != DLOCK__REPLY_STR) {
        return dlock__reply_error(c, r, "Redlock acquire");
    }
    *value = strtoll(r->element[1].str, NULL, 10);
    return 1;
}

static int get_reply(dlock_client *c, const dlock__qreq *q, const dlock__reply *r) {
    if (r->type == DLOCK__REPLY_NIL) {
        return 0;
    }
    if (r->type != DLOCK__REPLY_STR) {
        return dlock__reply_error(c, r, "status (GET)");
    }
    return r->len == q->token_len && memcmp(r->str, q->token, r->len) == 0;
}

static int inspect_reply(dlock_client *c, const dlock__reply *r, dlock__qresult *out) {
    if (r->type != DLOCK__REPLY_ARRAY || r->elements != 2 ||
        r->element[1].type != DLOCK__REPLY_INT ||
        (r->element[0].type != DLOCK__REPLY_STR && r->element[0].type != DLOCK__REPLY_NIL)) {
        return dlock__reply_error(c, r, "inspect");
    }
    if (r->element[0].type == DLOCK__REPLY_NIL) {
        return 0;
    }
    out->value = r->element[1].integer;
    out->len = r->element[0].len;
    out->str = malloc(out->len + 1);
    if (out->str == NULL) {
        return dlock__err(DLOCK_ENOMEM, "out of memory");
    }
    memcpy(out->str, r->element[0].str, out->len + 1);
    return 1;
}

int dlock__qop_judge(dlock_client *c, const dlock__qreq *q, const dlock__reply *r,
                     dlock__qresult *out) {
    switch (q->op) {
    case DLOCK__QOP_SET:
        return set_reply(c, r);
    case DLOCK__QOP_FSET:
        return fset_reply(c, r, &out->value);
    case DLOCK__QOP_GET:
        return get_reply(c, q, r);
    case DLOCK__QOP_INSPECT:
        return inspect_reply(c, r, out);
    default:
        return int_reply(c, r, "Redlock", &out->value);
    }
}
