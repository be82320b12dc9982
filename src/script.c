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

/* Release with hand-off, for ids whose waiters queue (see wait.c). KEYS: id, queue list, waiter
 * hash, fencing counter; ARGV: token, grant channel. If a live waiter is queued, the lock passes
 * straight to it (SET to its token with its lease, INCR of the counter if it is fenced, and a
 * PUBLISH so it learns at once); otherwise the key is deleted. Returns 0 if not ours, 1 released,
 * 2 released and handed off. Waiter entries are "live_until_ms|lease_ms|fenced". */
dlock__script dlock__script_release_handoff = {
    .body = "if redis.call('get', KEYS[1]) ~= ARGV[1] then\n"
            "  return 0\n"
            "end\n"
            "local t = redis.call('time')\n"
            "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
            "while true do\n"
            "  local w = redis.call('lpop', KEYS[2])\n"
            "  if not w then break end\n"
            "  local info = redis.call('hget', KEYS[3], w)\n"
            "  redis.call('hdel', KEYS[3], w)\n"
            "  if info then\n"
            "    local live, lease, fenced = string.match(info, '^(%d+)|(%d+)|(%d)$')\n"
            "    if live and tonumber(live) > now then\n"
            "      redis.call('set', KEYS[1], w, 'PX', lease)\n"
            "      local f = 0\n"
            "      if fenced == '1' then f = redis.call('incr', KEYS[4]) end\n"
            "      redis.call('publish', ARGV[2], w .. '|' .. f)\n"
            "      return 2\n"
            "    end\n"
            "  end\n"
            "end\n"
            "redis.call('del', KEYS[1])\n"
            "return 1\n",
};

/* A waiter's try (see wait.c). KEYS: id, queue, waiter hash, fencing counter; ARGV: token, lease,
 * live_ms (how long the queue entry stays valid without a refresh), fenced (0/1), mode (0 =
 * try and queue, 1 = try without queueing, 2 = leave). Returns {1, fencing token, pttl} when the
 * lock is ours -- taken now, or handed to us by a releaser -- else {0, 0, holder's pttl}. */
dlock__script dlock__script_acquire_wait = {
    .body = "local cur = redis.call('get', KEYS[1])\n"
            "if cur == ARGV[1] then\n"
            "  redis.call('lrem', KEYS[2], 0, ARGV[1])\n"
            "  redis.call('hdel', KEYS[3], ARGV[1])\n"
            "  local f = 0\n"
            "  if ARGV[4] == '1' then f = tonumber(redis.call('get', KEYS[4]) or '0') end\n"
            "  return {1, f, redis.call('pttl', KEYS[1])}\n"
            "end\n"
            "if not cur and ARGV[5] ~= '2' then\n"
            "  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
            "  local f = 0\n"
            "  if ARGV[4] == '1' then f = redis.call('incr', KEYS[4]) end\n"
            "  redis.call('lrem', KEYS[2], 0, ARGV[1])\n"
            "  redis.call('hdel', KEYS[3], ARGV[1])\n"
            "  return {1, f, tonumber(ARGV[2])}\n"
            "end\n"
            "if ARGV[5] == '0' then\n"
            "  local t = redis.call('time')\n"
            "  local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
            "  if redis.call('hexists', KEYS[3], ARGV[1]) == 0 then\n"
            "    redis.call('rpush', KEYS[2], ARGV[1])\n"
            "  end\n"
            "  redis.call('hset', KEYS[3], ARGV[1],\n"
            "             string.format('%d|%s|%s', now + tonumber(ARGV[3]), ARGV[2], ARGV[4]))\n"
            "  local ttl = 2 * tonumber(ARGV[3])\n"
            "  redis.call('pexpire', KEYS[2], ttl)\n"
            "  redis.call('pexpire', KEYS[3], ttl)\n"
            "else\n"
            "  redis.call('lrem', KEYS[2], 0, ARGV[1])\n"
            "  redis.call('hdel', KEYS[3], ARGV[1])\n"
            "end\n"
            "return {0, 0, redis.call('pttl', KEYS[1])}\n",
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
    sha_of(&dlock__script_release_handoff);
    sha_of(&dlock__script_acquire_wait);
}

int dlock__script_run(dlock_client *c, dlock__script *s, int nkeys, int argc, const char **argv,
                      const size_t *lens, dlock__reply *reply, int *sent) {
    pthread_once(&sha_once, init_shas);
    enum { MAX_ARGS = 16 };
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
