/* test_sentinel: dlock behind Redis Sentinel (harness/sentinel-env.sh: one master, two replicas,
 * three sentinels watching "mymaster").
 *
 * A redis-sentinel:// URL finds the master through the sentinels; a dead sentinel in the list is
 * skipped; all sentinels down and an unknown master name are clear errors; after a forced
 * failover (SENTINEL FAILOVER) and after kill -9 of the master, the same client works again
 * within seconds, on the new master. With wait_replicas, a lock write the replicas cannot
 * acknowledge (both SIGSTOPped) does not count; without it, a failover after an unreplicated
 * acquire loses the lock and a second holder gets in (the seed's warning, made visible). The
 * failover tests run last and leave the group whole. */
#include "support.h"

#include <signal.h>
#include <stdatomic.h>
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

/* SENTINEL FAILOVER, asked of sentinel 1: a graceful switch to a replica. */
static void force_failover(void) {
    redisContext *s = dlt_raw_connect(sentinel_port(1), NULL);
    redisReply *r =
        dlt_raw_cmd(s, "SENTINEL FAILOVER %s", dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(s);
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

/* 1 when every sentinel names a master other than old. */
static int all_moved_from(int old) {
    for (int n = 1; n <= 3; n++) {
        int p = master_port(n);
        if (p == old || p == 0) {
            return 0;
        }
    }
    return 1;
}

/* SENTINEL FAILOVER leaves the old master taking writes until the sentinels next look at it (up
 * to 10 s). A client that waited for an error would lock there all that while, beside clients
 * already on the new master; dlock hears +switch-master and moves at once, so a lock taken right
 * after the switch is on the new master. */
static void test_switch_moves_client_at_once(void **state) {
    (void)state;
    dlock_client *c = dlt_open(url(), NULL);
    roundtrip(c); /* a pooled connection to the old master, still healthy after the switch */
    int old = master_port(1);
    force_failover();
    int64_t until = dlt_now_ms() + dlt_slow(15000);
    while (!all_moved_from(old)) {
        assert_true(dlt_now_ms() < until);
        dlt_sleep_ms(50);
    }
    int now = master_port(1);
    dlt_sleep_ms(200); /* the +switch-master messages' way to the client */
    char *role = role_of(old);
    print_message("after the switch %d -> %d the old master is still a %s\n", old, now,
                  role != NULL ? role : "(no answer)");
    free(role);

    const char *id = dlt_id("switched");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_connect(now, NULL);
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v); /* on the new master, where every other client looks */
    free(v);
    redisFree(raw);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    wait_replica(old, dlt_slow(15000));
    dlock_client_close(c);
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
    force_failover();
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
    /* The client moves when the first sentinel announces the switch; sentinel 1, which
     * roundtrip asks, may be the last. */
    int now = wait_new_master(old, dlt_slow(15000));
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

/* ---- wait_replicas ---- */

static int node_port_n(int n) {
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_PORT_%d", n);
    return dlt_env_int(key);
}

static pid_t node_pid(int n) {
    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_PID_FILE_%d", n);
    pid_t pid = dlt_read_pid(dlt_env_require(key));
    assert_true(pid > 0);
    return pid;
}

/* Waits until the master has both replicas online and caught up: a write is acknowledged by 2. */
static void wait_group_whole(void) {
    int64_t until = dlt_now_ms() + dlt_slow(20000);
    for (;;) {
        int port = master_port(1);
        redisContext *m =
            port > 0 ? redisConnectWithTimeout("127.0.0.1", port, (struct timeval){1, 0}) : NULL;
        long long acks = -1;
        if (m != NULL && !m->err) {
            redisSetTimeout(m, (struct timeval){2, 0});
            freeReplyObject(redisCommand(m, "SET dlock-test:whole x PX 1000"));
            redisReply *r = redisCommand(m, "WAIT 2 500");
            acks = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
            freeReplyObject(r);
        }
        redisFree(m);
        if (acks == 2) {
            return;
        }
        if (dlt_now_ms() > until) {
            fail_msg("the group did not get both replicas back (%lld acknowledged)", acks);
        }
        dlt_sleep_ms(100);
    }
}

/* The two replicas of the current master (their node numbers). */
static void replicas_of(int master, int out[2]) {
    int k = 0;
    for (int n = 1; n <= 3; n++) {
        if (node_port_n(n) != master) {
            out[k++] = n;
        }
    }
}

static long long wait_calls(int port) {
    redisContext *m = dlt_raw_connect(port, NULL);
    redisReply *r = dlt_raw_cmd(m, "INFO commandstats");
    const char *p = strstr(r->str, "cmdstat_wait:calls=");
    long long n = p != NULL ? atoll(p + strlen("cmdstat_wait:calls=")) : 0;
    freeReplyObject(r);
    redisFree(m);
    return n;
}

typedef struct renew_seen {
    atomic_int ereplicas; /* on_renew_error calls with DLOCK_EREPLICAS */
    atomic_int lost, reason;
} renew_seen;

/* A release sends no grant to a waiter subscribed on a replica. Replication carries PUBLISH and
 * SPUBLISH on to the replicas while the releaser's count is only of the master's own
 * subscribers, and a master demoted by a failover keeps its subscribers: such a waiter took the
 * message for its grant while the releaser, counting none, passed the lock on (test_cluster's
 * test_no_grant_to_a_subscriber_elsewhere has the story). A waiter's entry, as queue_try.lua
 * writes it, names a channel with a raw subscriber on a replica, sharded and then plain. */
static void test_no_grant_to_a_replica_subscriber(void **state) {
    (void)state;
    wait_group_whole(); /* replication up, or nothing could reach the replica anyway */
    dlock_client *c = dlt_open(url(), NULL);
    int master = master_port(1), rep[2];
    replicas_of(master, rep);
    const char *how[2] = {"SSUBSCRIBE", "SUBSCRIBE"}, *pub[2] = {"s", "p"};
    const char *chan[2] = {"00000000feedf00d", "00000000deadbeef"};
    for (int k = 0; k < 2; k++) {
        const char *id = dlt_id("replica-sub");
        char channel[256];
        snprintf(channel, sizeof channel, "{%s}:grant:%s", id, chan[k]);
        redisContext *sub = dlt_raw_connect(node_port_n(rep[0]), NULL);
        redisReply *r = redisCommand(sub, "%s %s", how[k], channel);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        freeReplyObject(r);

        dlock_lock *holder = dlt_lock_new(c, id, NULL);
        dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
        redisContext *m = dlt_raw_connect(master, NULL);
        r = dlt_raw_cmd(m, "TIME");
        long long now = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
        freeReplyObject(r);
        freeReplyObject(redisCommand(m, "RPUSH {%s}:queue elsewhere", id));
        freeReplyObject(redisCommand(m, "HSET {%s}:waiters elsewhere %lld|2000|0|1|%s|%s", id,
                                     now + 10000, chan[k], pub[k]));
        dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
        dlock_lock_free(holder);
        assert_false(dlt_raw_exists(m, id, strlen(id))); /* released, handed to nobody */
        redisFree(m);
        struct timeval tv = {0, (int)dlt_slow(300) * 1000};
        redisSetTimeout(sub, tv);
        void *got = NULL;
        if (redisGetReply(sub, &got) == REDIS_OK) {
            const redisReply *msg = got;
            fail_msg("%s on a replica received a grant the releaser did not make: %s", how[k],
                     msg->type == REDIS_REPLY_ARRAY && msg->elements == 3 ? msg->element[2]->str
                                                                          : "?");
        }
        freeReplyObject(got);
        redisFree(sub);
    }
    dlock_client_close(c);
}

static void on_renew_error(dlock_lock *l, int rc, const char *msg, void *ud) {
    (void)l;
    (void)msg;
    renew_seen *s = ud;
    if (rc == DLOCK_EREPLICAS) {
        atomic_fetch_add(&s->ereplicas, 1);
    }
}

static void on_lost(dlock_lock *l, int reason, void *ud) {
    (void)l;
    renew_seen *s = ud;
    atomic_store(&s->reason, reason);
    atomic_fetch_add(&s->lost, 1);
}

/* Replication blocked (both replicas SIGSTOPped): an acquire with wait_replicas reports
 * DLOCK_EREPLICAS and leaves no key; an extend reports it; a renewal reports it to
 * on_renew_error. With both replicas running the same options succeed, and a lock without the
 * option never sends WAIT (the master's WAIT count does not move). */
static void test_wait_replicas(void **state) {
    (void)state;
    wait_group_whole();
    int master = master_port(1), rep[2];
    replicas_of(master, rep);
    dlock_client *c = dlt_open(url(), NULL);
    renew_seen seen = {0};
    dlock_lock_options wo = {.wait_replicas = 2, .wait_replicas_timeout_ms = 300, .attempts = 1};
    dlock_lock_options ro = wo;
    ro.auto_renew = 1;
    ro.lease_ms = 3000;
    ro.renew_interval_ms = 200;
    ro.on_renew_error = on_renew_error;
    ro.on_lost = on_lost;
    ro.userdata = &seen;
    dlock_lock *ext = dlt_lock_new(c, dlt_id("wait-ext"), &wo);
    dlock_lock *ren = dlt_lock_new(c, dlt_id("wait-renew"), &ro);
    dlt_assert_rc(dlock_lock_acquire(ext, NULL), DLOCK_OK); /* both replicas acknowledge */
    dlt_assert_rc(dlock_lock_acquire(ren, NULL), DLOCK_OK);

    assert_int_equal(kill(node_pid(rep[0]), SIGSTOP), 0);
    assert_int_equal(kill(node_pid(rep[1]), SIGSTOP), 0);
    const char *id = dlt_id("wait-blocked");
    dlock_lock_options one = wo;
    one.wait_replicas = 1;
    dlock_lock *l = dlt_lock_new(c, id, &one);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_lock_acquire(l, NULL);
    int64_t took = dlt_now_ms() - t0;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dlock_errmsg());
    redisContext *raw = dlt_raw_connect(master, NULL);
    int left = dlt_raw_exists(raw, id, strlen(id));
    int rc_ext = dlock_lock_extend(ext, 1000);
    int64_t until = dlt_now_ms() + dlt_slow(3000);
    while (atomic_load(&seen.ereplicas) == 0 && dlt_now_ms() < until) {
        dlt_sleep_ms(20);
    }
    int rc_ren = dlock_lock_release(ren); /* stops its renewals, and their WAITs */
    /* Off means off: no WAIT at all, so it does not wait for the frozen replicas either. */
    long long before = wait_calls(master);
    dlock_lock *plain = dlt_lock_new(c, dlt_id("wait-off"), NULL);
    int64_t t1 = dlt_now_ms();
    int rc_plain = dlock_lock_acquire(plain, NULL);
    int rc_plain_ext = dlock_lock_extend(plain, 1000);
    int64_t plain_took = dlt_now_ms() - t1;
    long long after = wait_calls(master);
    kill(node_pid(rep[0]), SIGCONT);
    kill(node_pid(rep[1]), SIGCONT);

    dlt_assert_rc(rc, DLOCK_EREPLICAS);
    print_message("blocked replication: acquire -> %s in %lld ms\n", msg, (long long)took);
    assert_true(dlt_contains(msg, "replicas") && dlt_contains(msg, "released"));
    assert_true(took >= 300);
    assert_false(left); /* the acquire took back what it set */
    assert_null(dlock_lock_token(l));
    dlt_assert_rc(rc_ext, DLOCK_EREPLICAS);
    assert_true(atomic_load(&seen.ereplicas) >= 1);
    dlt_assert_rc(rc_plain, DLOCK_OK);
    dlt_assert_rc(rc_plain_ext, DLOCK_OK);
    assert_true(plain_took < 250);
    assert_int_equal(after, before);
    dlt_assert_rc(rc_ren, DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(plain), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(ext), DLOCK_OK);
    assert_int_equal(atomic_load(&seen.lost), 0);
    dlock_lock_free(plain);
    dlock_lock_free(l);
    dlock_lock_free(ext);
    dlock_lock_free(ren);
    redisFree(raw);
    dlock_client_close(c);
    wait_group_whole();
}

/* The lock key's value on the master sentinel 1 names (NULL if absent or unreachable). */
static char *value_on_master(const char *id) {
    int port = master_port(1);
    redisContext *raw =
        port > 0 ? redisConnectWithTimeout("127.0.0.1", port, (struct timeval){1, 0}) : NULL;
    char *v = NULL;
    if (raw != NULL && !raw->err) {
        redisReply *r = redisCommand(raw, "GET %b", id, strlen(id));
        v = r != NULL && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
        freeReplyObject(r);
    }
    redisFree(raw);
    return v;
}

/* `dlock run` across a failover of the master: SENTINEL FAILOVER, or kill -9 (then the killed
 * node is started again). The lock was replicated before the failover, so the promoted replica
 * has it: the run's renewals follow the new master, the key keeps the run's token on it, and the
 * command finishes with its own status, not the lock-lost 75. The lease (10 s) outlasts the
 * sentinels' detection and election (about 5 s), and the command (16 s) outlasts the lease, so
 * only renewals on the new master keep the lock. */
static void run_across_failover(int kill_master) {
    const char *id = dlt_id(kill_master ? "run-kill" : "run-failover");
    const char *argv[] = {dlt_env_require("DLOCK_TEST_CLI"),
                          "run",
                          "--url",
                          url(),
                          "-l",
                          "15s",
                          id,
                          "--",
                          "sleep",
                          "9",
                          NULL};
    pid_t run = dlt_spawn(argv);
    assert_true(run > 0);
    char *token = NULL;
    for (int64_t until = dlt_now_ms() + dlt_slow(10000); token == NULL; dlt_sleep_ms(50)) {
        assert_true(dlt_now_ms() < until);
        token = value_on_master(id);
    }
    dlt_sleep_ms(200); /* let it replicate */
    int old = master_port(1), n = node_number(old);
    if (kill_master) {
        assert_int_equal(kill(node_pid(n), SIGKILL), 0);
    } else {
        force_failover();
    }
    int now = wait_new_master(old, dlt_slow(20000));
    char *v = value_on_master(id);
    assert_non_null(v); /* the promoted replica had it */
    assert_string_equal(v, token);
    free(v);
    int status = dlt_wait(run, dlt_slow(30000));
    print_message("dlock run across %s of master %d (now %d): exit %d\n",
                  kill_master ? "kill -9" : "SENTINEL FAILOVER", old, now, status);
    assert_int_equal(status, 0); /* sleep's own status: the lock was never lost */
    v = value_on_master(id);
    assert_null(v); /* released on the new master */
    free(token);
    if (kill_master) {
        char key[64];
        snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_CONF_%d", n);
        const char *start[] = {"redis-server", dlt_env_require(key), NULL};
        assert_int_equal(dlt_run(start, 10000), 0);
    }
    wait_replica(old, dlt_slow(20000));
}

static void test_run_across_forced_failover(void **state) {
    (void)state;
    run_across_failover(0);
}

static void test_run_across_master_killed(void **state) {
    (void)state;
    run_across_failover(1);
}

/* Without wait_replicas: the replicas miss an acquire (SIGSTOPped, their links cut), the master
 * is killed, a replica is promoted without the key, and a second holder gets in, with the same
 * fencing token: the failover lost the lock and the fencing counter's increment. The first
 * holder's auto-renew finds that out (LOST_TAKEN). */
static void test_failover_loses_unwaited_lock(void **state) {
    (void)state;
    wait_group_whole();
    int master = master_port(1), rep[2], n = node_number(master);
    replicas_of(master, rep);
    dlock_client *c = dlt_open(url(), NULL);
    renew_seen seen = {0};
    const char *id = dlt_id("lost");
    dlock_lock_options o = {.fencing = 1,
                            .auto_renew = 1,
                            .lease_ms = 30000,
                            .renew_interval_ms = 300,
                            .attempts = 1,
                            .on_lost = on_lost,
                            .userdata = &seen};
    dlock_lock *first = dlt_lock_new(c, id, &o);
    redisContext *raw = dlt_raw_connect(master, NULL);
    pid_t mpid = node_pid(n);
    assert_int_equal(kill(node_pid(rep[0]), SIGSTOP), 0);
    assert_int_equal(kill(node_pid(rep[1]), SIGSTOP), 0);
    /* Cut the replication links, so nothing already in the sockets carries the write over. */
    freeReplyObject(dlt_raw_cmd(raw, "CLIENT KILL TYPE replica"));
    int rc = dlock_lock_acquire(first, NULL);
    int64_t fence = dlock_lock_fencing_token(first);
    kill(mpid, SIGKILL);
    kill(node_pid(rep[0]), SIGCONT);
    kill(node_pid(rep[1]), SIGCONT);
    redisFree(raw);
    dlt_assert_rc(rc, DLOCK_OK);

    /* Another process, through the same URL, once a replica is promoted (until then the
     * sentinels still name the dead master, so opening fails too). */
    dlock_client *c2 = NULL;
    dlock_lock_options o2 = {.fencing = 1, .attempts = 1};
    dlock_lock *second = NULL;
    int64_t start = dlt_now_ms();
    do {
        if (c2 == NULL && (rc = dlt_client_open(&c2, url(), NULL)) == DLOCK_OK) {
            second = dlt_lock_new(c2, id, &o2);
        }
        if (c2 != NULL && (rc = dlock_lock_acquire(second, NULL)) == DLOCK_NOT_ACQUIRED) {
            fail_msg("the first holder's lock survived the failover: not what this test sets up");
        }
        if (rc != DLOCK_OK) {
            dlt_sleep_ms(200);
        }
    } while (rc != DLOCK_OK && dlt_now_ms() - start < dlt_slow(30000));
    dlt_assert_rc(rc, DLOCK_OK); /* two holders: the failover lost the first one's lock */
    print_message("failover lost the lock: a second holder got it after %lld ms, fencing token "
                  "%lld again\n",
                  (long long)(dlt_now_ms() - start), (long long)dlock_lock_fencing_token(second));
    assert_true(dlock_lock_fencing_token(second) <= fence);
    int64_t until = dlt_now_ms() + dlt_slow(10000);
    while (atomic_load(&seen.lost) == 0 && dlt_now_ms() < until) {
        dlt_sleep_ms(20);
    }
    assert_int_equal(atomic_load(&seen.lost), 1);
    assert_int_equal(atomic_load(&seen.reason), DLOCK_LOST_TAKEN);
    dlt_assert_rc(dlock_lock_release(first), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_release(second), DLOCK_OK);
    dlock_lock_free(first);
    dlock_lock_free(second);
    dlock_client_close(c2);
    dlock_client_close(c);

    char key[64];
    snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_NODE_CONF_%d", n);
    const char *argv[] = {"redis-server", dlt_env_require(key), NULL};
    assert_int_equal(dlt_run(argv, 10000), 0);
    wait_replica(master, dlt_slow(20000));
    wait_group_whole();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_through_sentinels),
        cmocka_unit_test(test_one_sentinel_down),
        cmocka_unit_test(test_all_sentinels_down),
        cmocka_unit_test(test_unknown_master_name),
        cmocka_unit_test(test_wait_replicas),
        cmocka_unit_test(test_no_grant_to_a_replica_subscriber),
        cmocka_unit_test(test_failover_loses_unwaited_lock),
        cmocka_unit_test(test_switch_moves_client_at_once),
        cmocka_unit_test(test_forced_failover),
        cmocka_unit_test(test_master_killed),
        cmocka_unit_test(test_run_across_forced_failover),
        cmocka_unit_test(test_run_across_master_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
