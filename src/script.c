/* The Lua scripts (src/lua, one file each) behind every lock and debounce call. They go out as
 * EVALSHA (40 bytes instead of the body) and fall back to EVAL on NOSCRIPT, which also reloads
 * the script cache,
 * so SCRIPT FLUSH, a restart or a failover to a fresh replica never makes a call fail. */
#include "fmacros.h"

#include "internal.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bodies: src/lua/NAME.lua, embedded by cmake/embed_lua.cmake (lua_scripts.c). */
extern const char dlock__lua_release[], dlock__lua_extend[], dlock__lua_renew[],
    dlock__lua_acquire_fenced[], dlock__lua_inspect[], dlock__lua_incr_expire[],
    dlock__lua_queue_try[], dlock__lua_queue_release[], dlock__lua_inspect_details[],
    dlock__lua_quorum_acquire[], dlock__lua_quorum_fence[];

dlock__script dlock__script_release = {.body = dlock__lua_release};
dlock__script dlock__script_extend = {.body = dlock__lua_extend};
dlock__script dlock__script_renew = {.body = dlock__lua_renew};
dlock__script dlock__script_acquire_fenced = {.body = dlock__lua_acquire_fenced};
dlock__script dlock__script_inspect = {.body = dlock__lua_inspect};
dlock__script dlock__script_incr_expire = {.body = dlock__lua_incr_expire};
dlock__script dlock__script_queue_try = {.body = dlock__lua_queue_try};
dlock__script dlock__script_queue_release = {.body = dlock__lua_queue_release};
dlock__script dlock__script_inspect_details = {.body = dlock__lua_inspect_details};
dlock__script dlock__script_quorum_acquire = {.body = dlock__lua_quorum_acquire};
dlock__script dlock__script_quorum_fence = {.body = dlock__lua_quorum_fence};

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_of(dlock__script *s) {
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->body, strlen(s->body), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
        snprintf(s->sha + 2 * i, 3, "%02x", d[i]);
    }
}

static void init_shas(void) {
    sha_of(&dlock__script_release);
    sha_of(&dlock__script_extend);
    sha_of(&dlock__script_inspect);
    sha_of(&dlock__script_incr_expire);
    sha_of(&dlock__script_renew);
    sha_of(&dlock__script_acquire_fenced);
    sha_of(&dlock__script_queue_try);
    sha_of(&dlock__script_queue_release);
    sha_of(&dlock__script_inspect_details);
    sha_of(&dlock__script_quorum_acquire);
    sha_of(&dlock__script_quorum_fence);
}

int dlock__script_run(dlock_client *c, dlock__script *s, int nkeys, int argc, const char **argv,
                      const size_t *lens, dlock__reply *reply, int *sent) {
    return dlock__script_run_then(c, s, nkeys, argc, argv, lens, NULL, reply, NULL, sent);
}

/* One try: the script (as EVALSHA or EVAL), and `after` pipelined behind it on the same node. */
static int run_once(dlock_client *c, int argc, const char **av, const size_t *al,
                    const dlock__cmd *after, dlock__reply *reply, dlock__reply *after_reply,
                    int *sent) {
    dlock__cmd cmds[2] = {{argc, av, al}, {0, NULL, NULL}};
    if (after == NULL) {
        return dlock__client_exec(c, cmds, 1, reply, sent);
    }
    cmds[1] = *after;
    dlock__reply r[2];
    int rc = dlock__client_exec(c, cmds, 2, r, sent);
    if (rc == DLOCK_OK) {
        *reply = r[0];
        *after_reply = r[1];
    }
    return rc;
}

int dlock__script_argv(dlock__script *s, int full, int nkeys, int argc, const char **argv,
                       const size_t *lens, const char **av, size_t *al, char nk[12]) {
    pthread_once(&sha_once, init_shas);
    snprintf(nk, 12, "%d", nkeys);
    av[0] = full ? "EVAL" : "EVALSHA";
    av[1] = full ? s->body : s->sha;
    av[2] = nk;
    al[0] = full ? 4 : 7;
    al[1] = full ? strlen(s->body) : 40;
    al[2] = strlen(nk);
    memcpy(av + 3, argv, (size_t)argc * sizeof *av);
    memcpy(al + 3, lens, (size_t)argc * sizeof *al);
    return argc + 3;
}

int dlock__script_missing(const dlock__reply *r) {
    return r->type == DLOCK__REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int dlock__script_run_then(dlock_client *c, dlock__script *s, int nkeys, int argc,
                           const char **argv, const size_t *lens, const dlock__cmd *after,
                           dlock__reply *reply, dlock__reply *after_reply, int *sent) {
    enum { MAX_ARGS = 16 };
    if (argc > MAX_ARGS - 3) {
        return dlock__err(DLOCK_EINVAL, "internal: too many script arguments");
    }
    const char *av[MAX_ARGS];
    size_t al[MAX_ARGS];
    char nk[12];
    int n = dlock__script_argv(s, 0, nkeys, argc, argv, lens, av, al, nk);
    int rc = run_once(c, n, av, al, after, reply, after_reply, sent);
    if (rc != DLOCK_OK || !dlock__script_missing(reply)) {
        return rc;
    }
    /* NOSCRIPT means the script did not run, so sending it in full is safe (and so is running
     * `after` again: a WAIT after a write that did not happen waits for nothing new). */
    dlock__reply_clear(reply);
    if (after != NULL) {
        dlock__reply_clear(after_reply);
    }
    n = dlock__script_argv(s, 1, nkeys, argc, argv, lens, av, al, nk);
    return run_once(c, n, av, al, after, reply, after_reply, sent);
}
