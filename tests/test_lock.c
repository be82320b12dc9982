/* test_lock: the lock API against real servers.
 *
 * The core tests (the ports of upstash/lock's src/lock.test.ts first, then ours) run once per
 * transport: plain TCP, unix socket, TLS with a CA file, and an ACL user with a password. Each
 * checks the key directly over a raw hiredis connection to the same server, since the wire
 * format (key = id, value = token, PX lease) is what makes dlock and @upstash/lock exclude each
 * other. The concurrency tests (threads, processes) run once, over TCP. */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct transport {
    const char *name;
    dlock_client *client;
    redisContext *raw; /* plain connection to the same server, for checking keys */
};

/* ---- Per-transport setup ------------------------------------------------------------------ */

static int setup_common(void **state, const char *name, const char *url,
                        const dlock_client_options *o, int raw_port, const char *raw_pass) {
    struct transport *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return -1;
    }
    t->name = name;
    t->client = dlt_open(url, o);
    t->raw = raw_port > 0 ? dlt_raw_connect(raw_port, raw_pass) : dlt_raw_plain();
    *state = t;
    return 0;
}

/* Also the REST, Cluster and Sentinel runs' setup: DLOCK_TEST_URL and dlt_raw_plain follow the
 * run's transport. */
static int setup_tcp(void **state) {
    return setup_common(state, "tcp", dlt_env_require("DLOCK_TEST_URL"), NULL, 0, NULL);
}

static int setup_unix(void **state) {
    return setup_common(state, "unix", dlt_env_require("DLOCK_TEST_UNIX"), NULL,
                        dlt_env_int("DLOCK_TEST_PORT"), NULL);
}

static int setup_tls(void **state) {
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CA")};
    return setup_common(state, "tls", dlt_env_require("DLOCK_TEST_TLS_URL"), &o,
                        dlt_env_int("DLOCK_TEST_TLS_PLAIN_PORT"), NULL);
}

static int setup_acl(void **state) {
    /* The password is given as an option, and then freed by the caller's scope ending: the
     * library must have copied it, since later connections of the pool need it again. */
    char *user = strdup(dlt_env_require("DLOCK_TEST_ACL_USER"));
    char *pass = strdup(dlt_env_require("DLOCK_TEST_ACL_PASS"));
    dlock_client_options o = {.username = user, .password = pass, .pool_size = 1};
    int rc = setup_common(state, "acl", dlt_env_require("DLOCK_TEST_ACL_URL"), &o,
                          dlt_env_int("DLOCK_TEST_ACL_PORT"),
                          dlt_env_require("DLOCK_TEST_DEFAULT_PASS"));
    memset(pass, 'x', strlen(pass));
    free(user);
    free(pass);
    return rc;
}

static int teardown(void **state) {
    struct transport *t = *state;
    if (t != NULL) {
        dlock_client_close(t->client);
        redisFree(t->raw);
        free(t);
    }
    return 0;
}

#define T ((struct transport *)*state)

/* The stored value of lock `id`, malloc'd, or NULL. */
static char *stored(void **state, const char *id) {
    return dlt_raw_get(T->raw, id, strlen(id), NULL);
}

static void assert_status(dlock_lock *l, dlock_state want) {
    dlock_state st = want == DLOCK_FREE ? DLOCK_ACQUIRED : DLOCK_FREE;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, want);
}

/* ---- Ports of upstash/lock src/lock.test.ts ----------------------------------------------- */

/* "lock created, extended, and released with defaults" */
static void test_seed_defaults(void **state) {
    const char *id = dlt_id("seed-defaults");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    assert_string_equal(dlock_lock_id(l), id);
    assert_status(l, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    /* The default lease is 10 s. */
    long long pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 9000 && pttl <= 10000);
    dlt_assert_rc(dlock_lock_extend(l, 10000), DLOCK_OK);
    pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 19000 && pttl <= 20000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_status(l, DLOCK_FREE);
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    dlock_lock_free(l);
}

/* "lock created, extended, and released with values" */
static void test_seed_values(void **state) {
    const char *id = dlt_id("seed-values");
    dlock_lock_options o = {.lease_ms = 5000, .attempts = 1, .delay_ms = 100};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    assert_string_equal(dlock_lock_id(l), id);
    assert_status(l, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    long long pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 4000 && pttl <= 5000);
    dlt_assert_rc(dlock_lock_extend(l, 10000), DLOCK_OK);
    pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 14000 && pttl <= 15000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_status(l, DLOCK_FREE);
    dlock_lock_free(l);
}

/* "double lock acquisition fails". The seed forgets its token on the failed second acquire and
 * so can no longer release; dlock keeps the token it holds. */
static void test_seed_double_acquire(void **state) {
    const char *id = dlt_id("seed-double");
    dlock_lock_options o = {.lease_ms = 5000, .attempts = 1, .delay_ms = 100};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    char *first = strdup(dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_NOT_ACQUIRED);
    /* Not "another holder": the message says whose hold it is. A blocking acquire says the
     * same at once instead of waiting for itself. */
    assert_true(dlt_contains(dlock_errmsg(), "this handle already holds the lock"));
    dlock_acquire_options wo = {.wait_ms = 5000};
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(l, &wo), DLOCK_NOT_ACQUIRED);
    assert_true(dlt_now_ms() - t0 < dlt_slow(1000));
    assert_true(dlt_contains(dlock_errmsg(), "this handle already holds the lock"));
    /* Not orphaned: same token, still ACQUIRED, and the release works. */
    assert_non_null(dlock_lock_token(l));
    assert_string_equal(dlock_lock_token(l), first);
    char *v = stored(state, id);
    assert_non_null(v);
    assert_string_equal(v, first);
    free(v);
    assert_status(l, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    free(first);
    dlock_lock_free(l);
}

/* "lock acquisition fails by other instance" */
static void test_seed_other_instance(void **state) {
    const char *id = dlt_id("seed-other");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    /* attempts 1 keeps the test short; the seed waits out its default 3 tries. */
    dlock_lock_options o = {.attempts = 1};
    dlock_lock *other = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_NOT_ACQUIRED);
    assert_null(dlock_lock_token(other));
    assert_status(other, DLOCK_FREE);
    /* The holder is untouched. */
    char *v = stored(state, id);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    /* Free now: the other instance gets it. */
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(other), DLOCK_OK);
    dlock_lock_free(other);
    dlock_lock_free(l);
}

/* "lock lease times out" */
static void test_seed_lease_timeout(void **state) {
    const char *id = dlt_id("seed-lease");
    dlock_lock_options o = {.lease_ms = 100, .attempts = 1, .delay_ms = 100};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_status(l, DLOCK_ACQUIRED);
    dlt_sleep_ms(200);
    assert_status(l, DLOCK_FREE);
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    /* Expired means free for everyone. */
    dlock_lock *other = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_release(other), DLOCK_OK);
    dlock_lock_free(other);
    dlock_lock_free(l);
}

/* ---- Wire format --------------------------------------------------------------------------- */

static void test_key_is_id_value_is_uuid(void **state) {
    const char *id = dlt_id("wire");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    assert_null(dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    const char *tok = dlock_lock_token(l);
    assert_non_null(tok);
    if (!dlt_is_uuid_v4(tok)) {
        fail_msg("token \"%s\" is not a lowercase UUID v4", tok);
    }
    /* The key is the id exactly (no prefix) and holds the token exactly. */
    char *v = stored(state, id);
    assert_non_null(v);
    assert_string_equal(v, tok);
    free(v);
    redisReply *r = dlt_raw_cmd(T->raw, "TYPE %s", id);
    assert_string_equal(r->str, "string");
    freeReplyObject(r);
    /* A plain lock is one key, as in @upstash/lock: nothing else appears under or beside it
     * (no queue, counter or channel keys named after the id). */
    r = dlt_raw_cmd(T->raw, "KEYS %s*", id);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->elements != 1) {
        fail_msg("acquire made %zu keys starting with the id, expected only the id",
                 (size_t)r->elements);
    }
    freeReplyObject(r);

    /* Tokens are random: 50 acquisitions give 50 distinct v4 UUIDs. */
    char seen[50][37];
    for (int i = 0; i < 50; i++) {
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        tok = dlock_lock_token(l);
        assert_true(dlt_is_uuid_v4(tok));
        snprintf(seen[i], sizeof seen[i], "%s", tok);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(seen[i], seen[j]);
        }
    }
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    r = dlt_raw_cmd(T->raw, "KEYS %s*", id);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    dlock_lock_free(l);
}

static void test_foreign_holder_excludes(void **state) {
    /* A key written by anyone else (e.g. @upstash/lock: SET id uuid NX PX) excludes dlock. */
    const char *id = dlt_id("foreign");
    freeReplyObject(
        dlt_raw_cmd(T->raw, "SET %s %s PX 5000", id, "0b6c0f2e-3d4a-4c1b-9a8e-1f2e3d4c5b6a"));
    dlock_lock_options o = {.attempts = 2, .delay_ms = 10};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_NOT_ACQUIRED);
    /* ...and dlock cannot release or extend it. */
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_NOT_HELD);
    char *v = stored(state, id);
    assert_string_equal(v, "0b6c0f2e-3d4a-4c1b-9a8e-1f2e3d4c5b6a");
    free(v);
    assert_true(dlt_raw_pttl(T->raw, id, strlen(id)) <= 5000);
    dlt_raw_del(T->raw, id, strlen(id));
    dlock_lock_free(l);
}

/* ---- Release and extend -------------------------------------------------------------------- */

static void test_release_by_non_holder(void **state) {
    const char *id = dlt_id("nonholder");
    dlock_lock *a = dlt_lock_new(T->client, id, NULL);
    dlock_lock *b = dlt_lock_new(T->client, id, NULL);
    /* Releasing a lock never acquired: NOT_HELD, nothing deleted. */
    dlt_assert_rc(dlock_lock_release(b), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_acquire(a, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(b), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_extend(b, 1000), DLOCK_NOT_HELD);
    char *v = stored(state, id);
    assert_string_equal(v, dlock_lock_token(a));
    free(v);

    /* The key changes hands behind a's back (as after an expiry): a's release must not delete
     * the new holder's key. */
    freeReplyObject(dlt_raw_cmd(T->raw, "SET %s %s PX 5000", id, "someone-else"));
    dlt_assert_rc(dlock_lock_release(a), DLOCK_NOT_HELD);
    assert_null(dlock_lock_token(a));
    v = stored(state, id);
    assert_string_equal(v, "someone-else");
    free(v);
    assert_status(a, DLOCK_FREE);

    /* Release twice: the second finds nothing to release. */
    dlt_raw_del(T->raw, id, strlen(id));
    dlt_assert_rc(dlock_lock_acquire(a, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(a), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(a), DLOCK_NOT_HELD);
    dlock_lock_free(a);
    dlock_lock_free(b);
}

static void test_extend_millisecond_precision(void **state) {
    const char *id = dlt_id("extend-ms");
    dlock_lock_options o = {.lease_ms = 10000};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    const int64_t amounts[] = {1500, 250, 1, 999};
    for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        long long before = dlt_raw_pttl(T->raw, id, strlen(id));
        dlt_assert_rc(dlock_lock_extend(l, amounts[i]), DLOCK_OK);
        long long after = dlt_raw_pttl(T->raw, id, strlen(id));
        /* after = before - (time between the two PTTLs) + amount: never more, and only a little
         * less. A seconds-based extend (the seed's TTL/EXPIRE) would be off by up to 1000. */
        if (after > before + amounts[i] || after < before + amounts[i] - dlt_slow(150)) {
            fail_msg("extend(%lld): PTTL %lld -> %lld", (long long)amounts[i], before, after);
        }
    }
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

static void test_extend_with_little_time_left(void **state) {
    /* Under 500 ms left, TTL rounds to 0 seconds: the seed's script gives up there. */
    const char *id = dlt_id("extend-short");
    dlock_lock_options o = {.lease_ms = 400};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_sleep_ms(100);
    long long before = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(before > 0 && before < 500);
    dlt_assert_rc(dlock_lock_extend(l, 2000), DLOCK_OK);
    long long after = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(after <= before + 2000 && after > before + 2000 - dlt_slow(150));
    /* It really lives past the original lease. */
    dlt_sleep_ms(500);
    assert_status(l, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

static void test_extend_expired(void **state) {
    const char *id = dlt_id("extend-expired");
    dlock_lock_options o = {.lease_ms = 50};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_NOT_HELD); /* never acquired */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_sleep_ms(150);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_NOT_HELD);
    /* An extend must not bring the key back. */
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    dlock_lock_free(l);
}

static void test_script_flush(void **state) {
    /* Release and extend are scripts; after SCRIPT FLUSH (or a restart, or a failover) their
     * EVALSHA gets NOSCRIPT and must fall back to sending the script again. */
    const char *id = dlt_id("flush");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK); /* load the scripts once */
    freeReplyObject(dlt_raw_cmd(T->raw, "SCRIPT FLUSH"));
    long long before = dlt_raw_pttl(T->raw, id, strlen(id));
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK);
    assert_true(dlt_raw_pttl(T->raw, id, strlen(id)) > before + 500);
    freeReplyObject(dlt_raw_cmd(T->raw, "SCRIPT FLUSH"));
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    /* The fallback must not lose the NOT_HELD outcome either. */
    freeReplyObject(dlt_raw_cmd(T->raw, "SCRIPT FLUSH"));
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    dlock_lock_free(l);
}

/* ---- Retries -------------------------------------------------------------------------------- */

/* Times one failing acquire of a lock held by someone else. */
static int64_t time_failed_acquire(void **state, const char *id, const dlock_lock_options *lo,
                                   const dlock_acquire_options *ao) {
    dlock_lock *l = dlt_lock_new(T->client, id, lo);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(l, ao), DLOCK_NOT_ACQUIRED);
    int64_t took = dlt_now_ms() - t0;
    assert_null(dlock_lock_token(l));
    dlock_lock_free(l);
    return took;
}

static void test_attempts_and_delay(void **state) {
    const char *id = dlt_id("retry");
    dlock_lock *holder = dlt_lock_new(T->client, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);

    /* 3 attempts, 300 ms apart: two pauses (600 ms), none after the last (which would make
     * it 900). */
    dlock_lock_options lo = {.attempts = 3, .delay_ms = 300};
    int64_t took = time_failed_acquire(state, id, &lo, NULL);
    if (took < 595 || took >= dlt_slow(850)) {
        fail_msg("3 attempts x 300 ms took %lld ms, expected ~600", (long long)took);
    }
    /* One attempt: no pause at all. */
    lo = (dlock_lock_options){.attempts = 1, .delay_ms = 1000};
    took = time_failed_acquire(state, id, &lo, NULL);
    if (took >= dlt_slow(400)) {
        fail_msg("1 attempt took %lld ms, expected no pause", (long long)took);
    }
    /* Defaults: 3 attempts, 100 ms apart. */
    took = time_failed_acquire(state, id, NULL, NULL);
    if (took < 195 || took >= dlt_slow(295)) {
        fail_msg("default retries took %lld ms, expected ~200", (long long)took);
    }
    /* delay -1: no pause between 5 attempts. */
    lo = (dlock_lock_options){.attempts = 5, .delay_ms = -1};
    took = time_failed_acquire(state, id, &lo, NULL);
    if (took >= dlt_slow(250)) {
        fail_msg("5 attempts with delay -1 took %lld ms", (long long)took);
    }
    /* Acquire options override the lock's: 2 attempts x 250 ms instead of 1 x 1000. */
    lo = (dlock_lock_options){.attempts = 1, .delay_ms = 1000};
    dlock_acquire_options ao = {.attempts = 2, .delay_ms = 250};
    took = time_failed_acquire(state, id, &lo, &ao);
    if (took < 245 || took >= dlt_slow(450)) {
        fail_msg("acquire options 2 x 250 ms took %lld ms", (long long)took);
    }
    /* ...and -1 in the acquire options means no pause even if the lock has one. */
    lo = (dlock_lock_options){.attempts = 4, .delay_ms = 1000};
    ao = (dlock_acquire_options){.delay_ms = -1};
    took = time_failed_acquire(state, id, &lo, &ao);
    if (took >= dlt_slow(300)) {
        fail_msg("4 attempts with acquire delay -1 took %lld ms", (long long)took);
    }
    /* The holder kept its lock through all of that. */
    assert_status(holder, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    dlock_lock_free(holder);
}

static void test_acquire_on_later_attempt(void **state) {
    const char *id = dlt_id("later");
    dlock_lock_options ho = {.lease_ms = 300};
    dlock_lock *holder = dlt_lock_new(T->client, id, &ho);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    dlock_lock_options lo = {.attempts = 40, .delay_ms = 50};
    dlock_lock *l = dlt_lock_new(T->client, id, &lo);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    int64_t took = dlt_now_ms() - t0;
    /* It had to wait for the holder's lease to run out. */
    assert_true(took >= 200 && took < dlt_slow(1500));
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_NOT_HELD);
    assert_status(l, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_lock_free(holder);
}

static void test_acquire_options_lease(void **state) {
    const char *id = dlt_id("acq-lease");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    dlock_acquire_options ao = {.lease_ms = 2000};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    long long pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 1500 && pttl <= 2000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    /* The override was for that call only: the next acquire uses the lock's 10 s again. */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 9000 && pttl <= 10000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

static void test_options_are_copied(void **state) {
    const char *id = dlt_id("copied");
    char *idbuf = strdup(id);
    dlock_lock_options *o = malloc(sizeof *o);
    *o = (dlock_lock_options){.lease_ms = 3000};
    dlock_lock *l = dlt_lock_new(T->client, idbuf, o);
    /* The caller may free both as soon as the call returns. */
    memset(idbuf, 'z', strlen(idbuf));
    free(idbuf);
    o->lease_ms = 99999;
    free(o);
    assert_string_equal(dlock_lock_id(l), id);
    char *tokbuf = strdup("copied-token-123");
    dlock_acquire_options ao = {.token = tokbuf};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    memset(tokbuf, 'q', strlen(tokbuf));
    free(tokbuf);
    assert_string_equal(dlock_lock_token(l), "copied-token-123");
    long long pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 2500 && pttl <= 3000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

/* ---- Tokens and ids ------------------------------------------------------------------------ */

static void test_custom_token(void **state) {
    const char *id = dlt_id("token");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    const char *tok = "my custom token \xc3\xbc \"quoted\"";
    dlock_acquire_options ao = {.token = tok};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    assert_string_equal(dlock_lock_token(l), tok);
    char *v = stored(state, id);
    assert_string_equal(v, tok);
    free(v);
    assert_status(l, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_extend(l, 500), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    /* "" means a random UUID, like NULL. */
    ao.token = "";
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    assert_true(dlt_is_uuid_v4(dlock_lock_token(l)));
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    /* 512 bytes is the limit, 513 is refused before anything is sent. */
    char big[514];
    memset(big, 'T', 512);
    big[512] = '\0';
    ao.token = big;
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    v = stored(state, id);
    assert_int_equal(strlen(v), 512);
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    big[512] = 'T';
    big[513] = '\0';
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_EINVAL);
    assert_true(dlock_errmsg()[0] != '\0');
    assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    assert_null(dlock_lock_token(l));
    dlock_lock_free(l);
}

static void check_odd_id(void **state, const char *id, size_t len) {
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    assert_int_equal(strlen(dlock_lock_id(l)), len);
    assert_memory_equal(dlock_lock_id(l), id, len);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    size_t vlen = 0;
    char *v = dlt_raw_get(T->raw, id, len, &vlen);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    assert_status(l, DLOCK_ACQUIRED);
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(T->client, id, dlock_lock_token(l), &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_int_equal(info.token_matches, 1);
    dlt_assert_rc(dlock_lock_extend(l, 100), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(T->raw, id, len));
    dlock_lock_free(l);
}

static void test_odd_ids(void **state) {
    static const char *const suffixes[] = {
        " with spaces ",
        "\"double\" 'single' `back`",
        "new\nline\r\nand\ttab",
        "\xc3\xbcnic\xc3\xb6"
        "de \xe9\x94\x81 \xf0\x9f\x94\x92",
        "*?[glob]{hash}\\",
        "$5\r\nSET\r\n", /* looks like RESP: must be sent as one bulk string */
    };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char id[256];
        snprintf(id, sizeof id, "%s%s", dlt_id("odd"), suffixes[i]);
        check_odd_id(state, id, strlen(id));
    }
    /* One byte is a valid id too. A key that fixed would collide across runs, so clear it. */
    dlt_raw_del(T->raw, "\x01", 1);
    check_odd_id(state, "\x01", 1);

    /* 64 KiB is the limit. */
    char *big = malloc(65538);
    const char *prefix = dlt_id("big");
    memset(big, 'k', 65537);
    memcpy(big, prefix, strlen(prefix));
    big[65536] = '\0';
    check_odd_id(state, big, 65536);
    big[65536] = 'k';
    big[65537] = '\0';
    dlock_lock *l = (dlock_lock *)&l;
    dlt_assert_rc(dlock_lock_new(&l, T->client, big, NULL), DLOCK_EINVAL);
    assert_null(l);
    assert_true(dlock_errmsg()[0] != '\0');
    free(big);
}

/* ---- Bad arguments ------------------------------------------------------------------------- */

static void expect_new_einval(void **state, const char *id, const dlock_lock_options *o,
                              const char *word) {
    dlock_lock *l = (dlock_lock *)&l;
    dlt_assert_rc(dlock_lock_new(&l, T->client, id, o), DLOCK_EINVAL);
    assert_null(l);
    if (word != NULL && !dlt_contains(dlock_errmsg(), word)) {
        fail_msg("message for a bad %s does not name it: \"%s\"", word, dlock_errmsg());
    }
}

static void test_bad_options(void **state) {
    const char *id = dlt_id("bad");
    expect_new_einval(state, id, &(dlock_lock_options){.lease_ms = -1}, "lease");
    expect_new_einval(state, id, &(dlock_lock_options){.attempts = -1}, "attempts");
    expect_new_einval(state, id, &(dlock_lock_options){.delay_ms = -2}, "delay");
    expect_new_einval(state, id, &(dlock_lock_options){.wait_replicas = -1}, "wait_replicas");
    /* WAIT must answer before the command deadline (2000 ms by default) ends the round trip. */
    expect_new_einval(state, id,
                      &(dlock_lock_options){.wait_replicas = 1, .wait_replicas_timeout_ms = 2000},
                      "command_timeout_ms");
    expect_new_einval(state, "", NULL, "id");
    expect_new_einval(state, NULL, NULL, "id");
    dlock_lock *l = (dlock_lock *)&l;
    dlt_assert_rc(dlock_lock_new(&l, NULL, id, NULL), DLOCK_EINVAL);
    assert_null(l);

    l = dlt_lock_new(T->client, id, NULL);
    const dlock_acquire_options bad[] = {{.lease_ms = -5}, {.attempts = -1}, {.delay_ms = -2}};
    const char *words[] = {"lease", "attempts", "delay"};
    for (int i = 0; i < 3; i++) {
        dlt_assert_rc(dlock_lock_acquire(l, &bad[i]), DLOCK_EINVAL);
        if (!dlt_contains(dlock_errmsg(), words[i])) {
            fail_msg("acquire: message for a bad %s: \"%s\"", words[i], dlock_errmsg());
        }
        assert_false(dlt_raw_exists(T->raw, id, strlen(id)));
    }

    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    long long before = dlt_raw_pttl(T->raw, id, strlen(id));
    dlt_assert_rc(dlock_lock_extend(l, 0), DLOCK_EINVAL);
    assert_true(dlock_errmsg()[0] != '\0');
    dlt_assert_rc(dlock_lock_extend(l, -1000), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_extend(l, INT64_MAX), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_extend(l, INT64_MAX - 5000), DLOCK_EINVAL);
    /* None of the refused extends touched the lease, and the lock is still held. */
    assert_true(dlt_raw_pttl(T->raw, id, strlen(id)) <= before);
    assert_status(l, DLOCK_ACQUIRED);
    /* A bad acquire leaves the held token alone. */
    char *tok = strdup(dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_acquire(l, &bad[0]), DLOCK_EINVAL);
    assert_string_equal(dlock_lock_token(l), tok);
    free(tok);

    dlt_assert_rc(dlock_lock_status(l, NULL), DLOCK_EINVAL);
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(T->client, NULL, NULL, &info), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_inspect(T->client, "", NULL, &info), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_inspect(T->client, id, NULL, NULL), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

/* ---- Inspect, status, accessors ------------------------------------------------------------ */

static void test_inspect(void **state) {
    const char *id = dlt_id("inspect");
    dlock_lock_info info;
    memset(&info, 0x55, sizeof info);
    dlt_assert_rc(dlock_lock_inspect(T->client, id, "whatever", &info), DLOCK_OK);
    assert_int_equal(info.held, 0);
    assert_int_equal(info.remaining_ms, 0);
    assert_int_equal(info.token_matches, 0);
    assert_string_equal(info.holder_token, "");

    dlock_lock_options o = {.lease_ms = 5000};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_inspect(T->client, id, dlock_lock_token(l), &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_true(info.remaining_ms > 4000 && info.remaining_ms <= 5000);
    assert_int_equal(info.token_matches, 1);
    assert_string_equal(info.holder_token, dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_inspect(T->client, id, "not-the-token", &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_int_equal(info.token_matches, 0);
    dlt_assert_rc(dlock_lock_inspect(T->client, id, NULL, &info), DLOCK_OK);
    assert_int_equal(info.token_matches, 0);
    assert_string_equal(info.holder_token, dlock_lock_token(l));
    /* Inspecting changes nothing. */
    assert_status(l, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    /* A key with no expiry, and a value too long for holder_token. */
    char longval[200];
    memset(longval, 'v', sizeof longval - 1);
    longval[sizeof longval - 1] = '\0';
    freeReplyObject(dlt_raw_cmd(T->raw, "SET %s %s", id, longval));
    dlt_assert_rc(dlock_lock_inspect(T->client, id, longval, &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_int_equal(info.remaining_ms, -1);
    /* The comparison uses the whole stored value, not the truncated copy. */
    assert_int_equal(info.token_matches, 1);
    assert_int_equal(strlen(info.holder_token), sizeof info.holder_token - 1);
    assert_memory_equal(info.holder_token, longval, sizeof info.holder_token - 1);
    longval[150] = 'w';
    dlt_assert_rc(dlock_lock_inspect(T->client, id, longval, &info), DLOCK_OK);
    assert_int_equal(info.token_matches, 0);
    dlt_raw_del(T->raw, id, strlen(id));
    dlock_lock_free(l);
}

static void test_status_follows_redis(void **state) {
    const char *id = dlt_id("status");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    assert_status(l, DLOCK_FREE);
    /* A key that exists but is not ours: a handle with no token is still FREE. */
    freeReplyObject(dlt_raw_cmd(T->raw, "SET %s %s PX 5000", id, "x"));
    assert_status(l, DLOCK_FREE);
    dlt_raw_del(T->raw, id, strlen(id));
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_status(l, DLOCK_ACQUIRED);
    /* Deleted behind our back: status asks Redis, it does not trust the handle. */
    dlt_raw_del(T->raw, id, strlen(id));
    assert_status(l, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    assert_null(dlock_lock_token(l));
    dlock_lock_free(l);
}

static void test_reacquire_gives_new_token(void **state) {
    const char *id = dlt_id("reacquire");
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    char *first = strdup(dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_null(dlock_lock_token(l));
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_string_not_equal(dlock_lock_token(l), first);
    free(first);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

static void test_free_does_not_release(void **state) {
    const char *id = dlt_id("free");
    dlock_lock_options o = {.lease_ms = 5000};
    dlock_lock *l = dlt_lock_new(T->client, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    char *tok = strdup(dlock_lock_token(l));
    dlock_lock_free(l);
    /* The key stays until its lease ends. */
    char *v = stored(state, id);
    assert_non_null(v);
    assert_string_equal(v, tok);
    long long pttl = dlt_raw_pttl(T->raw, id, strlen(id));
    assert_true(pttl > 0 && pttl <= 5000);
    free(v);
    free(tok);
    dlt_raw_del(T->raw, id, strlen(id));
}

#define CORE_TESTS                                                                                 \
    cmocka_unit_test(test_seed_defaults), cmocka_unit_test(test_seed_values),                      \
        cmocka_unit_test(test_seed_double_acquire), cmocka_unit_test(test_seed_other_instance),    \
        cmocka_unit_test(test_seed_lease_timeout), cmocka_unit_test(test_key_is_id_value_is_uuid), \
        cmocka_unit_test(test_foreign_holder_excludes),                                            \
        cmocka_unit_test(test_release_by_non_holder),                                              \
        cmocka_unit_test(test_extend_millisecond_precision),                                       \
        cmocka_unit_test(test_extend_with_little_time_left),                                       \
        cmocka_unit_test(test_extend_expired), cmocka_unit_test(test_script_flush),                \
        cmocka_unit_test(test_attempts_and_delay),                                                 \
        cmocka_unit_test(test_acquire_on_later_attempt),                                           \
        cmocka_unit_test(test_acquire_options_lease), cmocka_unit_test(test_options_are_copied),   \
        cmocka_unit_test(test_custom_token), cmocka_unit_test(test_odd_ids),                       \
        cmocka_unit_test(test_bad_options), cmocka_unit_test(test_inspect),                        \
        cmocka_unit_test(test_status_follows_redis),                                               \
        cmocka_unit_test(test_reacquire_gives_new_token),                                          \
        cmocka_unit_test(test_free_does_not_release)

/* ---- Concurrency: threads ------------------------------------------------------------------ */

#define N_THREADS 8
#define N_CYCLES  25

struct shared {
    dlock_client *client;
    const char *common_id;
    atomic_int inside;     /* threads inside the critical section right now */
    atomic_int violations; /* times a thread found another inside */
    long counter;          /* incremented without atomics inside the lock */
};

struct worker {
    struct shared *sh;
    int index;
    int failed_rc; /* first unexpected rc, 0 if none */
    char where[64];
    char msg[256];
};

static void worker_fail(struct worker *w, int rc, const char *where) {
    if (w->failed_rc == 0) {
        w->failed_rc = rc == 0 ? -100 : rc;
        snprintf(w->where, sizeof w->where, "%s", where);
        snprintf(w->msg, sizeof w->msg, "%s", dlock_errmsg());
    }
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct shared *sh = w->sh;
    const char *own_id = dlt_id("thread-own");
    dlock_lock *own = NULL;
    dlock_lock *common = NULL;
    dlock_lock_options co = {.lease_ms = 10000, .attempts = 5000, .delay_ms = 2};
    int rc = dlock_lock_new(&own, sh->client, own_id, NULL);
    if (rc != DLOCK_OK) {
        worker_fail(w, rc, "new own");
    }
    rc = dlock_lock_new(&common, sh->client, sh->common_id, &co);
    if (rc != DLOCK_OK) {
        worker_fail(w, rc, "new common");
    }
    for (int i = 0; i < N_CYCLES && w->failed_rc == 0; i++) {
        /* Its own lock: nobody else wants it, so every step must succeed first time. */
        if ((rc = dlock_lock_acquire(own, NULL)) != DLOCK_OK) {
            worker_fail(w, rc, "acquire own");
        }
        if ((rc = dlock_lock_extend(own, 100)) != DLOCK_OK) {
            worker_fail(w, rc, "extend own");
        }
        if ((rc = dlock_lock_release(own)) != DLOCK_OK) {
            worker_fail(w, rc, "release own");
        }
        /* The common lock: mutual exclusion. */
        if ((rc = dlock_lock_acquire(common, NULL)) != DLOCK_OK) {
            worker_fail(w, rc, "acquire common");
            break;
        }
        if (atomic_fetch_add(&sh->inside, 1) != 0) {
            atomic_fetch_add(&sh->violations, 1);
        }
        long c = sh->counter;
        dlt_sleep_ms(1); /* widen the window a broken lock would let others into */
        sh->counter = c + 1;
        atomic_fetch_sub(&sh->inside, 1);
        if ((rc = dlock_lock_release(common)) != DLOCK_OK) {
            worker_fail(w, rc, "release common");
        }
    }
    dlock_lock_free(own);
    dlock_lock_free(common);
    return NULL;
}

static void test_threads_share_client(void **state) {
    struct shared sh = {.client = T->client, .common_id = dlt_id("threads")};
    atomic_init(&sh.inside, 0);
    atomic_init(&sh.violations, 0);
    struct worker w[N_THREADS];
    pthread_t tid[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.sh = &sh, .index = i};
        assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(tid[i], NULL);
    }
    for (int i = 0; i < N_THREADS; i++) {
        if (w[i].failed_rc != 0) {
            fail_msg("thread %d: %s gave %d (%s): %s", i, w[i].where, w[i].failed_rc,
                     dlock_strerror(w[i].failed_rc), w[i].msg);
        }
    }
    assert_int_equal(atomic_load(&sh.violations), 0);
    assert_int_equal(sh.counter, N_THREADS * N_CYCLES);
    assert_false(dlt_raw_exists(T->raw, sh.common_id, strlen(sh.common_id)));
}

/* ---- Concurrency: processes ---------------------------------------------------------------- */

static void test_processes_exclude_each_other(void **state) {
    const char *id = dlt_id("procs");
    const char *scratch = dlt_env("DLOCK_TEST_SCRATCH");
    char log[512];
    snprintf(log, sizeof log, "%s/procs-%ld.log", scratch != NULL ? scratch : "/tmp",
             (long)getpid());
    unlink(log);

    /* This process holds the lock while the helpers start: they must wait for it. */
    dlock_lock *l = dlt_lock_new(T->client, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);

    enum { NPROC = 3, CYCLES = 5 };
    const char *url = dlt_env_require("DLOCK_TEST_URL");
    const char *argv[] = {dlt_helper_path(), "lock", url, id, "5", "20", log, NULL};
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = dlt_spawn(argv);
        assert_true(pids[i] > 0);
    }
    dlt_sleep_ms(300);
    FILE *f = fopen(log, "r");
    if (f != NULL) {
        fclose(f);
        fail_msg("a helper entered the critical section while this process held the lock");
    }
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    for (int i = 0; i < NPROC; i++) {
        int st = dlt_wait(pids[i], dlt_slow(30000));
        if (st != 0) {
            fail_msg("helper %d exited with %d", i, st);
        }
    }
    /* Every "E pid" is followed directly by the same pid's "X pid". */
    f = fopen(log, "r");
    assert_non_null(f);
    char line[64], prev[64] = "";
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (n % 2 == 0) {
            if (line[0] != 'E') {
                fail_msg("line %d: expected an entry, got \"%s\"", n + 1, line);
            }
        } else if (line[0] != 'X' || strcmp(line + 1, prev + 1) != 0) {
            fail_msg("line %d: \"%s\" after \"%s\": two processes held the lock", n + 1, line,
                     prev);
        }
        snprintf(prev, sizeof prev, "%s", line);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 2 * NPROC * CYCLES);
    unlink(log);
    dlock_lock_free(l);
}

int main(void) {
    const struct CMUnitTest core[] = {CORE_TESTS};
    const struct CMUnitTest concurrency[] = {
        cmocka_unit_test(test_threads_share_client),
        cmocka_unit_test(test_processes_exclude_each_other),
    };
    int failed = 0;
    if (dlt_transport_missing()) {
        return 77;
    }
    if (dlt_transport() != NULL) {
        /* DLOCK_TEST_URL is the REST gateway (over http, or https through nghttpx), the Cluster
         * or the Sentinel group: the core suite once, through it (the group names say which). */
        long h2 = dlt_h2_log_size();
        failed += cmocka_run_group_tests_name(dlt_transport(), core, setup_tcp, teardown);
        failed += cmocka_run_group_tests_name("concurrency", concurrency, setup_tcp, teardown);
        failed += dlt_run_h2_check(h2, 100, 0);
        return failed;
    }
    failed += cmocka_run_group_tests_name("lock/tcp", core, setup_tcp, teardown);
    failed += cmocka_run_group_tests_name("lock/unix", core, setup_unix, teardown);
    failed += cmocka_run_group_tests_name("lock/tls", core, setup_tls, teardown);
    failed += cmocka_run_group_tests_name("lock/acl", core, setup_acl, teardown);
    failed += cmocka_run_group_tests_name("lock/concurrency", concurrency, setup_tcp, teardown);
    return failed;
}
