/* Safety features beyond the seed: fencing tokens, auto-renew with lock-lost notice, blocking
 * acquire with a deadline, validity, adopt. Destructive tests (SIGKILL of Redis) run against a
 * private redis-server this program starts and stops itself. */
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a private redis-server ---- */

typedef struct own_redis {
    int port;
    pid_t pid;
    pid_t gateway_pid;       /* REST runs: a gateway of its own in front of it */
    char proxy_pidfile[512]; /* rest-h2 run: and nghttpx in front of that */
    char url[64];
} own_redis;

/* The rest-h2 run reaches the private gateway as it reaches the fixture's: https, HTTP/2,
 * through an nghttpx of its own that the harness starts (rest-env.sh h2proxy) and logs with the
 * others, so the suite's HTTP/2 check covers it too. */
static void own_h2_proxy(own_redis *r, int gateway_port) {
    const char *harness = getenv("DLOCK_TEST_REST_HARNESS");
    const char *dir = getenv("DLOCK_TEST_ENV_DIR");
    if (harness == NULL || dir == NULL) {
        fail_msg("the rest-h2 run needs DLOCK_TEST_REST_HARNESS and DLOCK_TEST_ENV_DIR (ctest)");
    }
    char name[32], cmd[1024];
    snprintf(name, sizeof name, "safety-%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "bash '%s' h2proxy '%s' %s %d", harness, dir, name, gateway_port);
    snprintf(r->proxy_pidfile, sizeof r->proxy_pidfile, "%s/h2proxy-%s.pid", dir, name);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char url[sizeof r->url] = "";
    if (fgets(url, sizeof url, p) == NULL) {
        url[0] = '\0';
    }
    int st = pclose(p);
    url[strcspn(url, "\n")] = '\0';
    if (st != 0 || strncmp(url, "https://", 8) != 0) {
        fail_msg("%s failed (status %d)", cmd, st);
    }
    snprintf(r->url, sizeof r->url, "%s", url);
}

/* In the REST variant of the suite, clients reach the private server through a gateway of its
 * own, so that killing or freezing the server is what the REST transport meets too. */
static void own_gateway(own_redis *r) {
    const char *gw = getenv("DLOCK_TEST_GATEWAY");
    const char *token = getenv("DLOCK_TEST_REST_TOKEN");
    if (!dlt_transport_is_rest() || gw == NULL || token == NULL) {
        return;
    }
    char redis[32], portfile[256];
    snprintf(redis, sizeof redis, "127.0.0.1:%d", r->port);
    snprintf(portfile, sizeof portfile, "%s/safety-gw-%d.port",
             getenv("DLOCK_TEST_SCRATCH") != NULL ? getenv("DLOCK_TEST_SCRATCH") : "/tmp",
             (int)getpid());
    unlink(portfile);
    const char *argv[] = {gw,       "--redis", redis,         "--token", token,
                          "--port", "0",       "--port-file", portfile,  NULL};
    r->gateway_pid = dlt_spawn(argv);
    assert_true(r->gateway_pid > 0);
    int port = 0;
    for (int i = 0; i < 200 && port == 0; i++) {
        FILE *f = fopen(portfile, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &port) != 1) {
                port = 0;
            }
            fclose(f);
        }
        if (port == 0) {
            dlt_sleep_ms(10);
        }
    }
    unlink(portfile);
    assert_true(port > 0);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d", port);
    if (dlt_transport_is_rest_h2()) {
        own_h2_proxy(r, port);
    }
}

/* A private server is one server whatever the run: on a Cluster or Sentinel run those tests
 * would only repeat the plain run's, so they are skipped there. */
static void skip_on_topology(void) {
    if (dlt_topology_is_cluster() || dlt_topology_is_sentinel()) {
        print_message("skipped on %s: it kills a private single server, which the plain run "
                      "covers\n",
                      dlt_transport());
        skip();
    }
}

static void own_start(own_redis *r, int port) {
    skip_on_topology();
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = {
        "redis-server", "--port",     portarg,        "--bind", "127.0.0.1",
        "--save",       "",           "--appendonly", "no",     "--protected-mode",
        "no",           "--loglevel", "warning",      NULL};
    r->port = port;
    r->pid = dlt_spawn(argv);
    assert_true(r->pid > 0);
    assert_true(dlt_wait_for_redis(port, NULL, 10000));
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", port);
    own_gateway(r);
}

static void own_kill(own_redis *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
    if (r->gateway_pid > 0) {
        kill(r->gateway_pid, SIGKILL);
        waitpid(r->gateway_pid, NULL, 0);
        r->gateway_pid = 0;
    }
    if (r->proxy_pidfile[0] != '\0') {
        /* Not our child (the harness detached it): killed by its PID. rest-env.sh stop would
         * also get it, should this test die first. */
        pid_t proxy = dlt_read_pid(r->proxy_pidfile);
        if (proxy > 0) {
            kill(proxy, SIGKILL);
        }
        unlink(r->proxy_pidfile);
        r->proxy_pidfile[0] = '\0';
    }
}

/* ---- fencing ---- */

static dlock_lock *fenced(dlock_client *c, const char *id, int64_t lease) {
    dlock_lock_options o = {.lease_ms = lease, .fencing = 1, .attempts = 1};
    return dlt_lock_new(c, id, &o);
}

static void test_fencing_increases_across_handles_and_expiry(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("fence");
    dlock_lock *a = fenced(c, id, 150), *b = fenced(c, id, 150);
    int64_t last = 0;
    for (int i = 0; i < 6; i++) {
        dlock_lock *l = i % 2 ? a : b;
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        int64_t f = dlock_lock_fencing_token(l);
        assert_true(f > last);
        last = f;
        if (i % 3 == 2) {
            dlt_sleep_ms(250); /* let the lease expire instead of releasing */
            dlock_state st;
            dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
            assert_int_equal(st, DLOCK_FREE);
        } else {
            dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
            assert_int_equal(dlock_lock_fencing_token(l), 0);
        }
    }
    /* The counter key is "{ID}:fence", has no expiry, and holds the last token. */
    redisContext *raw = dlt_raw_plain();
    char key[256];
    int n = snprintf(key, sizeof key, "{%s}:fence", id);
    char *v = dlt_raw_get(raw, key, (size_t)n, NULL);
    assert_non_null(v);
    assert_int_equal(strtoll(v, NULL, 10), last);
    assert_int_equal(dlt_raw_pttl(raw, key, (size_t)n), -1);
    free(v);
    dlt_raw_del(raw, key, (size_t)n);
    redisFree(raw);
    dlock_lock_free(a);
    dlock_lock_free(b);
    dlock_client_close(c);
}

static void test_fencing_across_processes(void **state) {
    (void)state;
    const char *id = dlt_id("fence-proc");
    char idcopy[200];
    snprintf(idcopy, sizeof idcopy, "%s", id);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* Each child acquires once and reports its fencing token through the pipe. */
    for (int i = 0; i < 4; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            dlock_client *c;
            if (dlt_client_open(&c, dlt_env("DLOCK_TEST_URL"), NULL) != DLOCK_OK) {
                _exit(2);
            }
            dlock_lock_options o = {.lease_ms = 5000, .fencing = 1};
            dlock_lock *l;
            dlock_acquire_options ao = {.wait_ms = 10000};
            if (dlock_lock_new(&l, c, idcopy, &o) != DLOCK_OK ||
                dlock_lock_acquire(l, &ao) != DLOCK_OK) {
                _exit(3);
            }
            long long f = dlock_lock_fencing_token(l);
            if (write(fds[1], &f, sizeof f) != sizeof f) {
                _exit(4);
            }
            dlock_lock_release(l);
            dlock_lock_free(l);
            dlock_client_close(c);
            _exit(0);
        }
    }
    close(fds[1]);
    long long seen[4], f;
    int n = 0;
    while (n < 4 && read(fds[0], &f, sizeof f) == sizeof f) {
        seen[n++] = f;
    }
    close(fds[0]);
    for (int i = 0; i < 4; i++) {
        int st;
        wait(&st);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(n, 4);
    /* Tokens arrive in acquisition order (each child writes while it holds the lock). */
    for (int i = 1; i < 4; i++) {
        assert_true(seen[i] > seen[i - 1]);
    }
}

static void test_fencing_interop_with_plain_holders(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("fence-mixed");
    dlock_lock *f = fenced(c, id, 5000);
    dlock_lock_options po = {.lease_ms = 5000, .attempts = 1};
    dlock_lock *p = dlt_lock_new(c, id, &po);
    /* A plain (seed-style) holder excludes a fenced one... */
    dlt_assert_rc(dlock_lock_acquire(p, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(f, NULL), DLOCK_NOT_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(p), DLOCK_OK);
    /* ...and the other way round; the lock key is the id itself, holding the token. */
    dlt_assert_rc(dlock_lock_acquire(f, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(p, NULL), DLOCK_NOT_ACQUIRED);
    redisContext *raw = dlt_raw_plain();
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(f));
    free(v);
    redisFree(raw);
    dlt_assert_rc(dlock_lock_release(f), DLOCK_OK);
    dlock_lock_free(f);
    dlock_lock_free(p);
    dlock_client_close(c);
}

static void test_fencing_hash_tags(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    char id[128];
    snprintf(id, sizeof id, "%s{tag}", dlt_id("fence-tag"));
    dlock_lock *l = fenced(c, id, 5000);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    char key[256];
    int n = snprintf(key, sizeof key, "{tag}:fence:%s", id);
    assert_true(dlt_raw_exists(raw, key, (size_t)n));
    /* Both keys map to one Cluster slot: CLUSTER KEYSLOT works without cluster mode. */
    redisReply *s1 = dlt_raw_cmd(raw, "CLUSTER KEYSLOT %s", id);
    redisReply *s2 = dlt_raw_cmd(raw, "CLUSTER KEYSLOT %s", key);
    if (s1->type == REDIS_REPLY_INTEGER && s2->type == REDIS_REPLY_INTEGER) {
        assert_int_equal(s1->integer, s2->integer);
    }
    freeReplyObject(s1);
    freeReplyObject(s2);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlt_raw_del(raw, key, (size_t)n);
    redisFree(raw);
    dlock_lock_free(l);

    /* Braces without a usable tag: no second key can share the slot. */
    dlock_lock_options o = {.fencing = 1};
    dlock_lock *bad = NULL;
    dlt_assert_rc(dlock_lock_new(&bad, c, "odd{}id", &o), DLOCK_EINVAL);
    assert_null(bad);
    assert_true(dlt_contains(dlock_errmsg(), "hash tag"));
    dlt_assert_rc(dlock_lock_new(&bad, c, "odd}id", &o), DLOCK_EINVAL);
    dlock_client_close(c);
}

/* ---- validity ---- */

static void test_validity(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    dlock_lock_options o = {.lease_ms = 400, .drift_ms = 10};
    dlock_lock *l = dlt_lock_new(c, dlt_id("validity"), &o);
    assert_int_equal(dlock_lock_validity_ms(l), 0);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    int64_t v1 = dlock_lock_validity_ms(l);
    assert_true(v1 <= 390 && v1 > 0);
    dlt_sleep_ms(100);
    int64_t v2 = dlock_lock_validity_ms(l);
    assert_true(v2 <= v1 - 100);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK);
    assert_true(dlock_lock_validity_ms(l) > 1000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_int_equal(dlock_lock_validity_ms(l), 0);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* ---- auto-renew ---- */

typedef struct lost_record {
    atomic_int count;
    atomic_int reason;
    atomic_int renew_errors;
} lost_record;

static void on_lost(dlock_lock *lock, int reason, void *userdata) {
    (void)lock;
    lost_record *r = userdata;
    atomic_fetch_add(&r->count, 1);
    atomic_store(&r->reason, reason);
}

static void on_renew_error(dlock_lock *lock, int rc, const char *msg, void *userdata) {
    (void)lock;
    (void)msg;
    lost_record *r = userdata;
    /* Runs on the renewal thread, where cmocka cannot fail a test: count, check later. */
    atomic_fetch_add(&r->renew_errors, rc < 0 ? 1 : 1000);
}

static dlock_lock *renewed(dlock_client *c, const char *id, int64_t lease, int64_t max_hold,
                           lost_record *rec) {
    dlock_lock_options o = {.lease_ms = lease,
                            .attempts = 1,
                            .auto_renew = 1,
                            .max_hold_ms = max_hold,
                            .on_lost = on_lost,
                            .on_renew_error = on_renew_error,
                            .userdata = rec};
    return dlt_lock_new(c, id, &o);
}

static void test_auto_renew_holds_for_five_leases(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("renew");
    lost_record rec = {0};
    dlock_lock *l = renewed(c, id, 300, 0, &rec);
    dlock_lock_options po = {.attempts = 1};
    dlock_lock *other = dlt_lock_new(c, id, &po);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    for (int i = 0; i < 10; i++) { /* 10 x 150 ms = 5 leases */
        dlt_sleep_ms(150);
        dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_NOT_ACQUIRED);
        char *v = dlt_raw_get(raw, id, strlen(id), NULL);
        assert_non_null(v);
        assert_string_equal(v, dlock_lock_token(l));
        free(v);
        assert_true(dlock_lock_validity_ms(l) > 0);
    }
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    /* Renewal stopped for good: nothing recreates or re-extends the key. */
    dlt_sleep_ms(250);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    assert_int_equal(atomic_load(&rec.count), 0);
    redisFree(raw);
    dlock_lock_free(other);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static void test_auto_renew_lost_when_taken(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("renew-taken");
    lost_record rec = {0};
    dlock_lock *l = renewed(c, id, 300, 0, &rec);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    /* As after a failover that lost the key: someone else now holds the id. */
    freeReplyObject(dlt_raw_cmd(raw, "SET %s intruder PX 5000", id));
    dlt_sleep_ms(400);
    assert_int_equal(atomic_load(&rec.count), 1);
    assert_int_equal(atomic_load(&rec.reason), DLOCK_LOST_TAKEN);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_string_equal(v, "intruder"); /* the intruder's lock is untouched */
    free(v);
    dlt_sleep_ms(200);
    assert_int_equal(atomic_load(&rec.count), 1); /* exactly once */
    dlt_raw_del(raw, id, strlen(id));
    redisFree(raw);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static void test_auto_renew_max_hold(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("renew-cap");
    lost_record rec = {0};
    dlock_lock *l = renewed(c, id, 200, 300, &rec);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    while (atomic_load(&rec.count) == 0 && dlt_now_ms() - t0 < dlt_slow(3000)) {
        dlt_sleep_ms(10);
    }
    int64_t took = dlt_now_ms() - t0;
    assert_int_equal(atomic_load(&rec.count), 1);
    assert_int_equal(atomic_load(&rec.reason), DLOCK_LOST_MAX_HOLD);
    assert_true(took >= 300); /* renewed until the cap, then the last lease ran out */
    /* Lost fires when the holder can no longer count on the lock: its lease measured from when
     * the last renewal was sent, so a little before Redis expires the key. Renewal has stopped,
     * so the key is gone within moments. */
    redisContext *raw = dlt_raw_plain();
    int64_t t1 = dlt_now_ms();
    while (dlt_raw_exists(raw, id, strlen(id)) && dlt_now_ms() - t1 < dlt_slow(250)) {
        dlt_sleep_ms(5);
    }
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    redisFree(raw);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* Redis dies under an auto-renewed lock: renewal fails, is retried while the lease lasts, and
 * lock-lost fires once when it runs out. CLIENT KILL alone must NOT lose the lock: renewal
 * reconnects. */
static void test_auto_renew_redis_killed(void **state) {
    (void)state;
    own_redis r = {0};
    own_start(&r, dlt_closed_port());
    dlock_client_options co = {.command_timeout_ms = 150, .connect_timeout_ms = 150};
    dlock_client *c = dlt_open(r.url, &co);
    lost_record rec = {0};
    dlock_lock *l = renewed(c, "renew-kill", 600, 0, &rec);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);

    redisContext *raw = dlt_raw_connect(r.port, NULL);
    for (int i = 0; i < 3; i++) {
        freeReplyObject(dlt_raw_cmd(raw, "CLIENT KILL TYPE normal SKIPME yes"));
        dlt_sleep_ms(250);
    }
    assert_int_equal(atomic_load(&rec.count), 0);
    char *v = dlt_raw_get(raw, "renew-kill", 10, NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    redisFree(raw);

    own_kill(&r);
    int64_t t0 = dlt_now_ms();
    while (atomic_load(&rec.count) == 0 && dlt_now_ms() - t0 < dlt_slow(5000)) {
        dlt_sleep_ms(10);
    }
    assert_int_equal(atomic_load(&rec.count), 1);
    assert_int_equal(atomic_load(&rec.reason), DLOCK_LOST_EXPIRED);
    int errors = atomic_load(&rec.renew_errors);
    assert_true(errors >= 1 && errors < 1000); /* retried while time was left, rc < 0 */
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_FREE);
    dlt_sleep_ms(300);
    assert_int_equal(atomic_load(&rec.count), 1);
    /* With Redis gone, release reports an error, never success. */
    assert_true(dlock_lock_release(l) < 0);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* A frozen Redis (SIGSTOP) must not hold renewal past the lease: each renewal's deadline is
 * capped at the lease's end, though command_timeout_ms (2 s default) is longer than the lease. */
static void test_auto_renew_lost_by_lease_end_when_redis_frozen(void **state) {
    (void)state;
    own_redis r = {0};
    own_start(&r, dlt_closed_port());
    dlock_client *c = dlt_open(r.url, NULL);
    lost_record rec = {0};
    dlock_lock *l = renewed(c, "renew-frozen", 600, 0, &rec);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_sleep_ms(250); /* let one renewal through */
    kill(r.pid, SIGSTOP);
    int64_t t0 = dlt_now_ms();
    while (atomic_load(&rec.count) == 0 && dlt_now_ms() - t0 < dlt_slow(5000)) {
        dlt_sleep_ms(5);
    }
    int64_t took = dlt_now_ms() - t0;
    kill(r.pid, SIGCONT);
    assert_int_equal(atomic_load(&rec.count), 1);
    assert_int_equal(atomic_load(&rec.reason), DLOCK_LOST_EXPIRED);
    /* The last renewal before the freeze granted at most 600 ms. */
    assert_true(took <= dlt_slow(600 + 150));
    dlock_lock_free(l);
    dlock_client_close(c);
    own_kill(&r);
}

/* An acquire may ask for a lease shorter than the lock's renew_interval_ms: renewal must still
 * come in time (at a third of that lease), and nothing is reported lost. */
static void test_auto_renew_short_acquire_lease(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    lost_record rec = {0};
    dlock_lock_options o = {.lease_ms = 10000,
                            .auto_renew = 1,
                            .renew_interval_ms = 3000,
                            .on_lost = on_lost,
                            .userdata = &rec};
    dlock_lock *l = dlt_lock_new(c, dlt_id("renew-short"), &o);
    dlock_acquire_options ao = {.lease_ms = 300};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    dlt_sleep_ms(800);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    assert_int_equal(atomic_load(&rec.count), 0);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* From on_lost, acquire is refused (ESTATE); after the loss, the handle can adopt a token. */
typedef struct reacquire_ctx {
    atomic_int calls;
    atomic_int acquire_rc;
} reacquire_ctx;

static void on_lost_reacquire(dlock_lock *lock, int reason, void *userdata) {
    (void)reason;
    reacquire_ctx *x = userdata;
    atomic_store(&x->acquire_rc, dlock_lock_acquire(lock, NULL));
    atomic_fetch_add(&x->calls, 1);
}

static void test_callbacks_cannot_reacquire(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("renew-cb");
    reacquire_ctx x = {0};
    dlock_lock_options o = {
        .lease_ms = 300, .auto_renew = 1, .on_lost = on_lost_reacquire, .userdata = &x};
    dlock_lock *l = dlt_lock_new(c, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    freeReplyObject(dlt_raw_cmd(raw, "SET %s intruder PX 5000", id));
    int64_t t0 = dlt_now_ms();
    while (atomic_load(&x.calls) == 0 && dlt_now_ms() - t0 < dlt_slow(3000)) {
        dlt_sleep_ms(10);
    }
    assert_int_equal(atomic_load(&x.calls), 1);
    assert_int_equal(atomic_load(&x.acquire_rc), DLOCK_ESTATE);
    dlt_assert_rc(dlock_lock_adopt(l, "intruder"), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK); /* the adopted token held it */
    redisFree(raw);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* ---- a holder paused past its lease ---- */

static void test_paused_holder_finds_lock_lost(void **state) {
    (void)state;
    const char *id = dlt_id("paused");
    char idcopy[200];
    snprintf(idcopy, sizeof idcopy, "%s", id);
    int to_parent[2], to_child[2];
    assert_int_equal(pipe(to_parent), 0);
    assert_int_equal(pipe(to_child), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The holder: acquire (fenced, 300 ms), report, then -- after the parent's SIGSTOP and
         * SIGCONT -- try to use the lock. Exit 0 only if release and extend say NOT_HELD. */
        dlock_client *c;
        dlock_lock *l;
        dlock_lock_options o = {.lease_ms = 300, .fencing = 1, .attempts = 1};
        if (dlt_client_open(&c, dlt_env("DLOCK_TEST_URL"), NULL) != DLOCK_OK ||
            dlock_lock_new(&l, c, idcopy, &o) != DLOCK_OK ||
            dlock_lock_acquire(l, NULL) != DLOCK_OK) {
            _exit(2);
        }
        long long f = dlock_lock_fencing_token(l);
        char go;
        if (write(to_parent[1], &f, sizeof f) != sizeof f || read(to_child[0], &go, 1) != 1) {
            _exit(3);
        }
        int ok = dlock_lock_validity_ms(l) == 0 && dlock_lock_extend(l, 1000) == DLOCK_NOT_HELD;
        ok = ok && dlock_lock_release(l) == DLOCK_NOT_HELD;
        dlock_lock_free(l);
        dlock_client_close(c);
        _exit(ok ? 0 : 4);
    }
    long long stale;
    assert_int_equal(read(to_parent[0], &stale, sizeof stale), (ssize_t)sizeof stale);
    kill(pid, SIGSTOP);
    dlt_sleep_ms(450);
    /* The lock was taken over while the holder slept, with a larger fencing token. */
    dlock_client *c = dlt_open_plain();
    dlock_lock *l = fenced(c, id, 5000);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlock_lock_fencing_token(l) > stale);
    kill(pid, SIGCONT);
    assert_int_equal(write(to_child[1], "g", 1), 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The stale holder's release did not touch the new holder's lock. */
    dlock_state s;
    dlt_assert_rc(dlock_lock_status(l, &s), DLOCK_OK);
    assert_int_equal(s, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
    close(to_parent[0]);
    close(to_parent[1]);
    close(to_child[0]);
    close(to_child[1]);
}

/* ---- blocking acquire ---- */

static void test_wait_gives_up_at_deadline(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("wait");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *waiter = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    dlock_acquire_options ao = {.wait_ms = 400};
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(waiter, &ao), DLOCK_NOT_ACQUIRED);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 400);
    assert_true(took < dlt_slow(400 + 300));
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(waiter, &ao), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(waiter), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(waiter);
    dlock_client_close(c);
}

/* Issue 10, item 2: renewal must never shorten a lease the user extended. */
static void test_renewal_keeps_an_extended_lease(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("renew-extend");
    dlock_lock_options o = {.lease_ms = 3000, .auto_renew = 1, .renew_interval_ms = 500};
    dlock_lock *l = dlt_lock_new(c, id, &o);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_extend(l, 60000), DLOCK_OK);
    dlt_sleep_ms(1300); /* two renewals */
    long long pttl = dlt_raw_pttl(raw, id, strlen(id));
    if (pttl < 55000) {
        fail_msg("after extend(60 s) a renewal cut the lease in Redis to %lld ms", pttl);
    }
    /* The handle counts only on what Redis confirmed, and never on more than it holds. */
    int64_t v = dlock_lock_validity_ms(l);
    assert_true(v > 50000);
    assert_true(v <= pttl + 50);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    redisFree(raw);
    dlock_client_close(c);
}

/* Issue 10, item 3: a call holds only what it set itself or what was handed to it. A blocking
 * acquire with a custom token that another holder already uses must not take over its hold. */
static void test_wait_does_not_take_over_an_equal_token(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("same-token");
    char token[96];
    snprintf(token, sizeof token, "custom-%s", id);
    dlock_lock *h = dlt_lock_new(c, id, NULL), *b = dlt_lock_new(c, id, NULL);
    dlock_acquire_options ho = {.token = token};
    dlt_assert_rc(dlock_lock_acquire(h, &ho), DLOCK_OK);
    dlock_acquire_options bo = {.token = token, .wait_ms = 300};
    dlt_assert_rc(dlock_lock_acquire(b, &bo), DLOCK_NOT_ACQUIRED);
    dlock_acquire_options po = {.token = token, .attempts = 1};
    dlt_assert_rc(dlock_lock_acquire(b, &po), DLOCK_NOT_ACQUIRED); /* as the seed's SET NX */
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(b, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_status(h, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(h), DLOCK_OK);
    dlock_lock_free(h);
    dlock_lock_free(b);
    dlock_client_close(c);
}

/* Issue 10, item 7: a fenced acquire whose INCR fails reports an error and leaves nothing held,
 * plain or blocking. */
static void test_fenced_acquire_with_broken_counter_holds_nothing(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("fence-broken");
    char key[256];
    int n = snprintf(key, sizeof key, "{%s}:fence", id);
    freeReplyObject(dlt_raw_cmd(raw, "SET %b not-a-number", key, (size_t)n));
    dlock_lock *l = fenced(c, id, 5000);
    int rc = dlock_lock_acquire(l, NULL);
    assert_true(rc < 0);
    assert_true(dlt_contains(dlock_errmsg(), "not an integer"));
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    assert_null(dlock_lock_token(l));
    dlock_acquire_options ao = {.wait_ms = 200};
    rc = dlock_lock_acquire(l, &ao);
    assert_true(rc < 0);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    dlt_raw_del(raw, key, (size_t)n);
    dlock_lock_free(l);
    redisFree(raw);
    dlock_client_close(c);
}

/* The holder record: who holds the lock, for operators; shown only while its hold lasts. */
static void test_holder_record(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("holder");
    dlock_lock_options o = {.lease_ms = 3000,
                            .holder = "host=h1 pid=42 cmd=backup",
                            .fencing = 1,
                            .auto_renew = 1,
                            .renew_interval_ms = 500};
    dlock_lock *l = dlt_lock_new(c, id, &o);
    dlock_lock_details d;
    dlt_assert_rc(dlock_lock_inspect_details(c, id, &d), DLOCK_OK);
    assert_false(d.info.held);
    assert_string_equal(d.holder, "");
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_inspect_details(c, id, &d), DLOCK_OK);
    assert_true(d.info.held);
    assert_string_equal(d.holder, "host=h1 pid=42 cmd=backup");
    assert_int_equal(d.fencing_counter, dlock_lock_fencing_token(l));
    assert_true(d.fencing_counter > 0);
    /* It lives as long as the hold: past the first lease (renewed), and past an extend. */
    dlt_assert_rc(dlock_lock_extend(l, 20000), DLOCK_OK);
    dlt_sleep_ms(3300);
    dlt_assert_rc(dlock_lock_inspect_details(c, id, &d), DLOCK_OK);
    assert_string_equal(d.holder, "host=h1 pid=42 cmd=backup");
    char key[256];
    int n = snprintf(key, sizeof key, "{%s}:holder", id);
    assert_true(dlt_raw_pttl(raw, key, (size_t)n) > 15000);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, key, (size_t)n)); /* removed with the hold */
    /* A record that names another token is not shown for the current holder. */
    dlock_lock *other = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_OK);
    freeReplyObject(dlt_raw_cmd(raw, "SET %b stale-token\nhost=old", key, (size_t)n));
    dlt_assert_rc(dlock_lock_inspect_details(c, id, &d), DLOCK_OK);
    assert_true(d.info.held);
    assert_string_equal(d.holder, "");
    dlt_assert_rc(dlock_lock_release(other), DLOCK_OK);
    /* Bad input. */
    char big[DLOCK_MAX_HOLDER_LEN + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dlock_lock_options bo = {.holder = big};
    dlock_lock *bad = NULL;
    dlt_assert_rc(dlock_lock_new(&bad, c, id, &bo), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_inspect_details(c, id, NULL), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_inspect_details(c, "", &d), DLOCK_EINVAL);
    dlock_lock_free(l);
    dlock_lock_free(other);
    redisFree(raw);
    dlock_client_close(c);
}

#define WAITERS 50

typedef struct waiter_ctx {
    dlock_client *client;
    const char *id;
    atomic_int *inside;
    atomic_int *overlaps;
    atomic_int *acquired;
    int rc;
    int64_t waited_ms;
    char errmsg[256]; /* dlock_errmsg() of the call that failed: it is the thread's own */
} waiter_ctx;

static void *waiter_main(void *arg) {
    waiter_ctx *w = arg;
    dlock_lock *l;
    dlock_lock_options o = {.lease_ms = 5000};
    if ((w->rc = dlock_lock_new(&l, w->client, w->id, &o)) != DLOCK_OK) {
        return NULL;
    }
    dlock_acquire_options ao = {.wait_ms = 20000};
    int64_t t0 = dlt_now_ms();
    w->rc = dlock_lock_acquire(l, &ao);
    w->waited_ms = dlt_now_ms() - t0;
    if (w->rc == DLOCK_OK) {
        if (atomic_fetch_add(w->inside, 1) != 0) {
            atomic_fetch_add(w->overlaps, 1);
        }
        dlt_sleep_ms(5);
        atomic_fetch_sub(w->inside, 1);
        atomic_fetch_add(w->acquired, 1);
        w->rc = dlock_lock_release(l);
    }
    if (w->rc != DLOCK_OK) {
        snprintf(w->errmsg, sizeof w->errmsg, "%s", dlock_errmsg());
    }
    dlock_lock_free(l);
    return NULL;
}

static void test_fifty_waiters_take_turns(void **state) {
    (void)state;
    /* More callers than pooled connections: the others open connections of their own, which
     * over https means a TLS handshake each; under valgrind that can outlast the default
     * command deadline, so it is scaled like the test's other bounds (2000 ms otherwise). */
    dlock_client_options co = {.pool_size = 8, .command_timeout_ms = (int)dlt_slow(2000)};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_URL"), &co);
    const char *id = dlt_id("waiters");
    atomic_int inside = 0, overlaps = 0, acquired = 0;
    waiter_ctx w[WAITERS];
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (waiter_ctx){c, id, &inside, &overlaps, &acquired, 0, 0, ""};
        assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < WAITERS; i++) {
        if (w[i].rc != DLOCK_OK) { /* acquired and released: none starved */
            fail_msg("waiter %d: %d (%s) after %lld ms: %s", i, w[i].rc, dlock_strerror(w[i].rc),
                     (long long)w[i].waited_ms, w[i].errmsg);
        }
        assert_true(w[i].waited_ms < 20000 + 500);
    }
    assert_int_equal(atomic_load(&acquired), WAITERS);
    assert_int_equal(atomic_load(&overlaps), 0);
    dlock_client_close(c);
}

/* ---- adopt ---- */

static void test_adopt(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    const char *id = dlt_id("adopt");
    dlock_lock *a = dlt_lock_new(c, id, NULL), *b = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(a, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_adopt(b, "not-the-token"), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(b), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_adopt(b, dlock_lock_token(a)), DLOCK_OK);
    dlt_assert_rc(dlock_lock_extend(b, 500), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(b), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(a), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_adopt(b, ""), DLOCK_EINVAL);
    dlt_assert_rc(dlock_lock_adopt(NULL, "x"), DLOCK_EINVAL);
    dlock_lock_free(a);
    dlock_lock_free(b);
    dlock_client_close(c);
}

static void test_bad_safety_options(void **state) {
    (void)state;
    dlock_client *c = dlt_open_plain();
    dlock_lock *l = NULL;
    dlock_lock_options o = {.lease_ms = 300, .auto_renew = 1, .renew_interval_ms = 300};
    dlt_assert_rc(dlock_lock_new(&l, c, "x", &o), DLOCK_EINVAL);
    assert_true(dlt_contains(dlock_errmsg(), "renew_interval_ms"));
    dlock_lock_options neg = {.max_hold_ms = -1};
    dlt_assert_rc(dlock_lock_new(&l, c, "x", &neg), DLOCK_EINVAL);
    assert_null(l);
    dlock_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fencing_increases_across_handles_and_expiry),
        cmocka_unit_test(test_fencing_across_processes),
        cmocka_unit_test(test_fencing_interop_with_plain_holders),
        cmocka_unit_test(test_fencing_hash_tags),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_auto_renew_holds_for_five_leases),
        cmocka_unit_test(test_auto_renew_lost_when_taken),
        cmocka_unit_test(test_auto_renew_max_hold),
        cmocka_unit_test(test_auto_renew_redis_killed),
        cmocka_unit_test(test_auto_renew_lost_by_lease_end_when_redis_frozen),
        cmocka_unit_test(test_auto_renew_short_acquire_lease),
        cmocka_unit_test(test_callbacks_cannot_reacquire),
        cmocka_unit_test(test_paused_holder_finds_lock_lost),
        cmocka_unit_test(test_wait_gives_up_at_deadline),
        cmocka_unit_test(test_fifty_waiters_take_turns),
        cmocka_unit_test(test_renewal_keeps_an_extended_lease),
        cmocka_unit_test(test_wait_does_not_take_over_an_equal_token),
        cmocka_unit_test(test_fenced_acquire_with_broken_counter_holds_nothing),
        cmocka_unit_test(test_holder_record),
        cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_bad_safety_options),
    };
    if (dlt_transport_missing()) {
        return 77;
    }
    long h2 = dlt_h2_log_size();
    int failed = cmocka_run_group_tests_name(dlt_transport() != NULL ? dlt_transport() : "safety",
                                             tests, NULL, NULL);
    /* The waiting tests open streams: test_fifty_waiters_take_turns alone about 50. */
    return failed + dlt_run_h2_check(h2, 100, 20);
}
