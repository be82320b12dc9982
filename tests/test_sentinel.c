/* test_sentinel: dlock behind Redis Sentinel (harness/sentinel-env.sh: one master, two replicas,
 * three sentinels watching "mymaster").
 *
 * A redis-sentinel:// URL finds the master through the sentinels; a dead sentinel in the list is
 * skipped; all sentinels down and an unknown master name are clear errors; after a forced
 * failover (SENTINEL FAILOVER) and after kill -9 of the master, the same client works again
 * within seconds, on the new master. The failover tests run last and leave the group whole. */
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sentinel_port(int n) {
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_PORT_%d", n);
    return dlt_env_int(key);
}

static const char *url(void) {
    return dlt_env_require("DLOCK_TEST_SENTINEL_URL");
}

/* The master's port as sentinel n says (0 if it does not answer). */
static int master_port(int n) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", sentinel_port(n), tv);
    int port = 0;
    if (c != NULL && !c->err) {
        redisReply *r = redisCommand(c, "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                                     dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            port = atoi(r->element[1]->str);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return port;
}

static int node_number(int port) {
    for (int n = 1; n <= 3; n++) {
        char key[64];
        snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_PORT_%d", n);
        if (dlt_env_int(key) == port) {
            return n;
        }
    }
    fail_msg("port %d is not a node of the group", port);
    return 0;
}

static char *role_of(int port) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    char *role = NULL;
    if (c != NULL && !c->err) {
        redisReply *r = redisCommand(c, "ROLE");
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
            role = strdup(r->element[0]->str);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return role;
}

/* Acquires a fresh lock, checks its key on the master the sentinels name, releases it. */
static void roundtrip(dlock_client *c) {
    const char *id = dlt_id("sentinel");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_connect(master_port(1), NULL);
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    redisFree(raw);
    dlock_lock_free(l);
}

static void test_lock_through_sentinels(void **state) {
    (void)state;
    dlock_client *c = dlt_open(url(), NULL);
    assert_non_null(strstr(dlock_client_server(c), "redis-sentinel://"));
    assert_non_null(strstr(dlock_client_server(c), "#mymaster"));
    roundtrip(c);
    dlock_client_close(c);
}

/* The first sentinel of the list is down (nothing listens): the next one answers. */
static void test_one_sentinel_down(void **state) {
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d#%s", dlt_closed_port(),
             sentinel_port(2), dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    dlock_client *c = dlt_open(u, NULL);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_all_sentinels_down(void **state) {
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d#mymaster", dlt_closed_port(),
             dlt_closed_port());
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, u, NULL), DLOCK_ECONNECT);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "no sentinel answered"));
}

static void test_unknown_master_name(void **state) {
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "redis-sentinel://127.0.0.1:%d#no-such-group", sentinel_port(1));
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, u, NULL), DLOCK_ESERVER);
    assert_true(dlt_contains(dlock_errmsg(), "no-such-group"));
}

/* Keeps acquiring fresh locks until one works (errors meanwhile, never NOT_ACQUIRED). Returns
 * how long it took. */
static int64_t until_it_works(dlock_client *c, int64_t limit_ms) {
    int64_t start = dlt_now_ms();
    int rc;
    do {
        dlock_lock *l = dlt_lock_new(c, dlt_id("failover"), NULL);
        rc = dlock_lock_acquire(l, NULL);
        if (rc == DLOCK_OK) {
            rc = dlock_lock_release(l);
        }
        dlock_lock_free(l);
        if (rc != DLOCK_OK) {
            assert_true(rc < 0);
            dlt_sleep_ms(200);
        }
    } while (rc != DLOCK_OK && dlt_now_ms() - start < limit_ms);
    dlt_assert_rc(rc, DLOCK_OK);
    return dlt_now_ms() - start;
}

static int wait_new_master(int old, int64_t limit_ms) {
    int64_t until = dlt_now_ms() + limit_ms;
    int now;
    while ((now = master_port(1)) == old || now == 0) {
        if (dlt_now_ms() > until) {
            fail_msg("the sentinels did not promote a replica in %lld ms", (long long)limit_ms);
        }
        dlt_sleep_ms(100);
    }
    return now;
}

/* Waits until the node on port is a replica. */
static void wait_replica(int port, int64_t limit_ms) {
    int64_t until = dlt_now_ms() + limit_ms;
    for (;;) {
        char *role = role_of(port);
        int replica = role != NULL && strcmp(role, "slave") == 0;
        free(role);
        if (replica) {
            return;
        }
        if (dlt_now_ms() > until) {
            fail_msg("node %d did not become a replica", port);
        }
        dlt_sleep_ms(100);
    }
}

/* SENTINEL FAILOVER: a graceful switch. Once the old master is a replica, it answers writes with
 * READONLY; the client asks the sentinels again and carries on, on the new master, and a lock
 * held across the switch can still be released (the promoted replica had it). Until the
 * sentinels demote it, the old master still takes writes: Sentinel's own window, which no
 * client closes (issue 11's WAIT option narrows it). */
static void test_forced_failover(void **state) {
    (void)state;
    dlock_client *c = dlt_open(url(), NULL);
    int old = master_port(1);
    dlock_lock_options o = {.lease_ms = 60000};
    dlock_lock *held = dlt_lock_new(c, dlt_id("held"), &o);
    int64_t start = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(held, NULL), DLOCK_OK);
    dlt_sleep_ms(100); /* let it replicate */
    redisContext *s = dlt_raw_connect(sentinel_port(1), NULL);
    redisReply *r =
        dlt_raw_cmd(s, "SENTINEL FAILOVER %s", dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(s);
    int now = wait_new_master(old, dlt_slow(15000));
    wait_replica(old, dlt_slow(15000));
    int64_t took = until_it_works(c, dlt_slow(15000));
    print_message("forced failover: %d -> %d in %lld ms; then it works after %lld ms\n", old, now,
                  (long long)(dlt_now_ms() - start - took), (long long)took);
    dlt_assert_rc(dlock_lock_release(held), DLOCK_OK);
    dlock_lock_free(held);
    roundtrip(c);
    dlock_client_close(c);
}

/* kill -9 of the master: the sentinels promote a replica after down-after-milliseconds and the
 * election, and the same client (and a new one on the same URL) work again. The killed node is
 * started again and becomes a replica. */
static void test_master_killed(void **state) {
    (void)state;
    dlock_client *c = dlt_open(url(), NULL);
    roundtrip(c);
    int old = master_port(1), n = node_number(old);
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_PID_FILE_%d", n);
    pid_t pid = dlt_read_pid(dlt_env_require(key));
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int64_t took = until_it_works(c, dlt_slow(30000));
    int now = master_port(1);
    assert_int_not_equal(now, old);
    print_message("kill -9 of master %d: works again after %lld ms, on %d\n", old, (long long)took,
                  now);
    dlock_client *c2 = dlt_open(url(), NULL);
    roundtrip(c2);
    dlock_client_close(c2);
    dlock_client_close(c);

    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_CONF_%d", n);
    const char *argv[] = {"redis-server", dlt_env_require(key), NULL};
    assert_int_equal(dlt_run(argv, 10000), 0);
    wait_replica(old, dlt_slow(20000));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_through_sentinels), cmocka_unit_test(test_one_sentinel_down),
        cmocka_unit_test(test_all_sentinels_down),     cmocka_unit_test(test_unknown_master_name),
        cmocka_unit_test(test_forced_failover),        cmocka_unit_test(test_master_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
