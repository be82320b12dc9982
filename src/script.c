/* The Lua scripts behind release, extend, inspect and debounce. They go out as EVALSHA (40 bytes
 * instead of the body) and fall back to EVAL on NOSCRIPT, which also reloads the script cache,
 * so SCRIPT FLUSH, a restart or a failover to a fresh replica never makes a call fail. */
#include "fmacros.h"

#include "internal.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deletes the key only if it still holds our token: 1 if deleted, 0 if not ours. */
dlock__script dlock__script_release = {
    .body = "if redis.call('get', KEYS[1]) == ARGV[1] then\n"
            "  return redis.call('del', KEYS[1])\n"
            "end\n"
            "return 0\n",
};

/* Adds ARGV[2] ms to the remaining lease with millisecond precision (the seed's TTL/EXPIRE loses
 * up to a second and fails on fractions). Returns the new PTTL, 0 if not ours, -1 if the key
 * has no expiry (left unchanged: there is no lease to extend). */
dlock__script dlock__script_extend = {
    .body = "if redis.call('get', KEYS[1]) ~= ARGV[1] then\n"
            "  return 0\n"
            "end\n"
            "local t = redis.call('pttl', KEYS[1])\n"
            "if t == -1 then\n"
            "  return -1\n"
            "end\n"
            "if t < 0 then t = 0 end\n"
            "local n = t + tonumber(ARGV[2])\n"
            "redis.call('pexpire', KEYS[1], n)\n"
            "return n\n",
};

/* Auto-renew: set the lease back to its full length (ARGV[2] ms) if the key is still ours. */
dlock__script dlock__script_renew = {
    .body = "if redis.call('get', KEYS[1]) == ARGV[1] then\n"
            "  redis.call('pexpire', KEYS[1], ARGV[2])\n"
            "  return 1\n"
            "end\n"
            "return 0\n",
};

/* Fenced acquire: the seed's SET NX PX plus INCR of the fencing counter, atomically, so a token
 * is handed out exactly when the lock is. Returns the fencing token, or 0 if not acquired. */
dlock__script dlock__script_acquire_fenced = {
    .body = "if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
            "  return redis.call('incr', KEYS[2])\n"
            "end\n"
            "return 0\n",
};

/* The value and remaining lease of a key, read atomically. */
dlock__script dlock__script_inspect = {
    .body = "return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}\n",
};

/* Debounce: INCR, and an expiry so counters do not pile up (the seed's never expire). */
dlock__script dlock__script_incr_expire = {
    .body = "local n = redis.call('incr', KEYS[1])\n"
            "redis.call('pexpire', KEYS[1], ARGV[1])\n"
            "return n\n",
};

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
}

int dlock__script_run(dlock_client *c, dlock__script *s, int nkeys, int argc, const char **argv,
                      const size_t *lens, dlock__reply *reply, int *sent) {
    pthread_once(&sha_once, init_shas);
    enum { MAX_ARGS = 8 };
    if (argc > MAX_ARGS - 3) {
        return dlock__err(DLOCK_EINVAL, "internal: too many script arguments");
    }
    const char *av[MAX_ARGS];
    size_t al[MAX_ARGS];
    char nk[12];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = "EVALSHA";
    av[1] = s->sha;
    av[2] = nk;
    al[0] = 7;
    al[1] = 40;
    al[2] = strlen(nk);
    memcpy(av + 3, argv, (size_t)argc * sizeof *av);
    memcpy(al + 3, lens, (size_t)argc * sizeof *al);
    int rc = dlock__client_call(c, argc + 3, av, al, reply, sent);
    if (rc != DLOCK_OK || reply->type != DLOCK__REPLY_ERROR ||
        strncmp(reply->str, "NOSCRIPT", 8) != 0) {
        return rc;
    }
    /* NOSCRIPT means the script did not run, so sending it in full is safe. */
    dlock__reply_clear(reply);
    av[0] = "EVAL";
    av[1] = s->body;
    al[0] = 4;
    al[1] = strlen(s->body);
    return dlock__client_call(c, argc + 3, av, al, reply, sent);
}
