/* test_recovery: failures in the middle of use, on the harness's "victim" server that no other
 * test program touches. A reply lost to a dropped connection (through a small proxy), idle
 * connections killed by the server, a server that stops answering (SIGSTOP), and a server that
 * dies (SIGKILL) and is restarted from the same config. The rule throughout: Redis trouble is an
 * error (rc < 0), never NOT_ACQUIRED or NOT_HELD, and the client works again once Redis does. */
#include "proxy.h"
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- Fixture ------------------------------------------------------------------------------- */

struct ctx {
    dlock_client *client;
    redisContext *raw;
    int port;
};

static int setup(void **state) {
    struct ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return -1;
    }
    c->port = dlt_env_int("DLOCK_TEST_VICTIM_PORT");
    /* Short deadlines keep the failure tests quick. */
    dlock_client_options o = {.connect_timeout_ms = 1000, .command_timeout_ms = 1000};
    c->client = dlt_open(dlt_env_require("DLOCK_TEST_VICTIM_URL"), &o);
    c->raw = dlt_raw_connect(c->port, NULL);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    struct ctx *c = *state;
    dlock_client_close(c->client);
    redisFree(c->raw);
    free(c);
    return 0;
}

#define C ((struct ctx *)*state)

static void assert_error(int rc, const char *what) {
    if (rc >= 0) {
        fail_msg("%s with Redis down gave %d (%s); expected an error", what, rc,
                 dlock_strerror(rc));
    }
    if (dlock_errmsg()[0] == '\0') {
        fail_msg("%s failed with %d but dlock_errmsg() is empty", what, rc);
    }
}

/* ---- Tests --------------------------------------------------------------------------------- */

static void test_lost_set_reply(void **state) {
    dlt_proxy *p = dlt_proxy_start(C->port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", dlt_proxy_port(p));
    dlock_client_options o = {.connect_timeout_ms = 1000, .command_timeout_ms = 1000};
    dlock_client *c = dlt_open(url, &o);
    const char *id = dlt_id("lost-reply");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);

    dlt_proxy_cut_next_reply(p);
    int rc = dlock_lock_acquire(l, NULL);
    assert_int_equal(dlt_proxy_cuts_done(p), 1);
    /* The SET took effect, so the lock is ours: acquire must say so (it checks with a GET
     * after reconnecting) rather than report an error or NOT_ACQUIRED. */
    dlt_assert_rc(rc, DLOCK_OK);
    /* ...and a success leaves no stale message behind (issue 10, item 10). */
    assert_string_equal(dlock_errmsg(), "");
    char *v = dlt_raw_get(C->raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);

    /* A lost release reply. The release may have run (the reply to EVALSHA was lost) or not
     * (the lost reply was NOSCRIPT): it cannot know, so it must say OK only if the key is gone,
     * and otherwise report an error and keep the token so the caller can retry. It must never
     * claim NOT_HELD for a lock it held. */
    char *tok = strdup(dlock_lock_token(l));
    dlt_proxy_cut_next_reply(p);
    rc = dlock_lock_release(l);
    if (rc == DLOCK_OK) {
        assert_false(dlt_raw_exists(C->raw, id, strlen(id)));
    } else if (rc < 0) {
        assert_non_null(dlock_lock_token(l));
        assert_string_equal(dlock_lock_token(l), tok);
        /* The retry settles it. */
        rc = dlock_lock_release(l);
        if (rc != DLOCK_OK && rc != DLOCK_NOT_HELD) {
            fail_msg("retried release gave %d (%s): %s", rc, dlock_strerror(rc), dlock_errmsg());
        }
        assert_false(dlt_raw_exists(C->raw, id, strlen(id)));
    } else {
        fail_msg("release with a lost reply gave %d (%s)", rc, dlock_strerror(rc));
    }
    free(tok);

    /* And the client goes on working through the proxy. */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
    dlt_proxy_stop(p);
}

/* Issue 10, item 6: after a release whose reply never came, validity is 0 whatever the code. */
static void test_no_validity_after_failed_release(void **state) {
    pid_t pid = dlt_read_pid(dlt_env_require("DLOCK_TEST_VICTIM_PID_FILE"));
    assert_true(pid > 0);
    dlock_client_options o = {.connect_timeout_ms = 300, .command_timeout_ms = 300};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_VICTIM_URL"), &o);
    const char *id = dlt_id("release-lost");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlock_lock_validity_ms(l) > 9000);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    int rc = dlock_lock_release(l);
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_true(rc < 0);
    assert_int_equal(dlock_lock_validity_ms(l), 0);
    assert_non_null(dlock_lock_token(l)); /* kept, so the release can be retried */
    rc = dlock_lock_release(l);
    assert_true(rc == DLOCK_OK || rc == DLOCK_NOT_HELD);
    assert_false(dlt_raw_exists(C->raw, id, strlen(id)));
    dlock_lock_free(l);
    dlock_client_close(c);
}

static void test_idle_connections_killed(void **state) {
    dlock_client_options o = {
        .connect_timeout_ms = 1000, .command_timeout_ms = 1000, .pool_size = 1};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_VICTIM_URL"), &o);
    const char *id1 = dlt_id("killed-1");
    dlock_lock *l1 = dlt_lock_new(c, id1, NULL);
    dlt_assert_rc(dlock_lock_acquire(l1, NULL), DLOCK_OK);
    /* The server drops every client connection but ours (SKIPME defaults to yes). */
    redisReply *r = dlt_raw_cmd(C->raw, "CLIENT KILL TYPE normal");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer >= 1);
    freeReplyObject(r);

    const char *id2 = dlt_id("killed-2");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l2 = dlt_lock_new(c, id2, &lo);
    int rc = dlock_lock_acquire(l2, NULL);
    /* OK (it reconnected) or an error; if an error, it must not hold the lock. */
    if (rc == DLOCK_OK) {
        char *v = dlt_raw_get(C->raw, id2, strlen(id2), NULL);
        assert_string_equal(v, dlock_lock_token(l2));
        free(v);
        dlt_assert_rc(dlock_lock_release(l2), DLOCK_OK);
    } else if (rc < 0) {
        assert_false(dlt_raw_exists(C->raw, id2, strlen(id2)));
    } else {
        fail_msg("acquire after CLIENT KILL gave %d (%s)", rc, dlock_strerror(rc));
    }
    /* By now it has reconnected. */
    dlock_state st = DLOCK_FREE;
    dlt_assert_rc(dlock_lock_status(l1, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l1), DLOCK_OK);
    dlock_lock_free(l1);
    dlock_lock_free(l2);
    dlock_client_close(c);
}

static void test_stopped_server_times_out(void **state) {
    pid_t pid = dlt_read_pid(dlt_env_require("DLOCK_TEST_VICTIM_PID_FILE"));
    assert_true(pid > 0);
    const char *id1 = dlt_id("stopped-1");
    dlock_lock *l1 = dlt_lock_new(C->client, id1, NULL);
    dlt_assert_rc(dlock_lock_acquire(l1, NULL), DLOCK_OK);

    assert_int_equal(kill(pid, SIGSTOP), 0);
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l2 = dlt_lock_new(C->client, dlt_id("stopped-2"), &lo);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_lock_acquire(l2, NULL);
    int64_t took = dlt_now_ms() - t0;
    dlock_state st = DLOCK_ACQUIRED;
    int src = dlock_lock_status(l1, &st);
    kill(pid, SIGCONT);

    dlt_assert_rc(rc, DLOCK_ETIMEDOUT);
    /* command_timeout_ms is 1000. */
    if (took < 950 || took > dlt_slow(2500)) {
        fail_msg("acquire on a stopped server returned after %lld ms", (long long)took);
    }
    assert_true(src < 0);
    assert_int_equal(st, DLOCK_FREE);

    /* Once the server runs again, the client works, and no reply meant for the timed-out
     * commands is taken as the answer to a later one. */
    assert_true(dlt_wait_for_redis(C->port, NULL, 5000));
    for (int i = 0; i < 5; i++) {
        st = DLOCK_FREE;
        dlt_assert_rc(dlock_lock_status(l1, &st), DLOCK_OK);
        assert_int_equal(st, DLOCK_ACQUIRED);
        dlock_lock_info info;
        dlt_assert_rc(dlock_lock_inspect(C->client, id1, dlock_lock_token(l1), &info), DLOCK_OK);
        assert_int_equal(info.token_matches, 1);
    }
    dlt_assert_rc(dlock_lock_release(l1), DLOCK_OK);
    dlock_lock_free(l1);
    dlock_lock_free(l2);
}

struct errors_seen {
    pthread_mutex_t mu;
    int errors;
    int last_rc;
    char last_msg[256];
    int calls;
};

static void err_cb(int rc, const char *msg, void *userdata) {
    struct errors_seen *e = userdata;
    pthread_mutex_lock(&e->mu);
    e->errors++;
    e->last_rc = rc;
    snprintf(e->last_msg, sizeof e->last_msg, "%s", msg != NULL ? msg : "");
    pthread_mutex_unlock(&e->mu);
}

static void call_cb(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    struct errors_seen *e = userdata;
    pthread_mutex_lock(&e->mu);
    e->calls++;
    pthread_mutex_unlock(&e->mu);
}

/* Last: it kills the server. */
static void test_killed_and_restarted(void **state) {
    const char *pidfile = dlt_env_require("DLOCK_TEST_VICTIM_PID_FILE");
    pid_t pid = dlt_read_pid(pidfile);
    assert_true(pid > 0);
    const char *id1 = dlt_id("kill-1");
    dlock_lock *l1 = dlt_lock_new(C->client, id1, NULL);
    dlt_assert_rc(dlock_lock_acquire(l1, NULL), DLOCK_OK);
    char *tok = strdup(dlock_lock_token(l1));

    struct errors_seen e = {.last_rc = 0};
    pthread_mutex_init(&e.mu, NULL);
    dlock_debounce_options dopt = {
        .wait_ms = 100, .callback = call_cb, .userdata = &e, .error_callback = err_cb};
    dlock_debounce *d = NULL;
    dlt_assert_rc(dlock_debounce_new(&d, C->client, dlt_id("kill-deb"), &dopt), DLOCK_OK);

    assert_int_equal(kill(pid, SIGKILL), 0);
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
        dlt_sleep_ms(10);
    }
    assert_int_not_equal(kill(pid, 0), 0);

    /* Everything fails with an error, quickly (a refused connect, not the deadline). */
    dlock_lock_options lo = {.attempts = 3, .delay_ms = 10};
    dlock_lock *l2 = dlt_lock_new(C->client, dlt_id("kill-2"), &lo);
    int64_t t0 = dlt_now_ms();
    assert_error(dlock_lock_acquire(l2, NULL), "acquire");
    assert_true(dlt_now_ms() - t0 < dlt_slow(3000));
    assert_null(dlock_lock_token(l2));
    assert_error(dlock_lock_extend(l1, 1000), "extend");
    assert_error(dlock_lock_release(l1), "release");
    /* An error is not NOT_HELD: the handle keeps its token so the release can be retried. */
    assert_non_null(dlock_lock_token(l1));
    assert_string_equal(dlock_lock_token(l1), tok);
    dlock_state st = DLOCK_ACQUIRED;
    assert_error(dlock_lock_status(l1, &st), "status");
    assert_int_equal(st, DLOCK_FREE);
    dlock_lock_info info;
    assert_error(dlock_lock_inspect(C->client, id1, NULL, &info), "inspect");

    /* Debounce: async failures reach error_callback; sync ones are returned. */
    dlt_assert_rc(dlock_debounce_call(d, "x", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    pthread_mutex_lock(&e.mu);
    int errors = e.errors, last_rc = e.last_rc, calls = e.calls;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", e.last_msg);
    pthread_mutex_unlock(&e.mu);
    assert_int_equal(errors, 1);
    assert_true(last_rc < 0);
    assert_true(msg[0] != '\0');
    assert_int_equal(calls, 0);
    assert_error(dlock_debounce_call_sync(d, "y", 1), "debounce call_sync");
    assert_int_equal(e.calls, 0);

    /* Restart from the same config (daemonize yes: returns once forked). */
    const char *argv[] = {"redis-server", dlt_env_require("DLOCK_TEST_VICTIM_CONF"), NULL};
    assert_int_equal(dlt_run(argv, 10000), 0);
    if (!dlt_wait_for_redis(C->port, NULL, dlt_slow(10000))) {
        fail_msg("the victim server did not come back on port %d", C->port);
    }
    assert_true(dlt_read_pid(pidfile) > 0);

    /* The same client recovers. The restarted server is empty, so l1's lock is gone. */
    dlt_assert_rc(dlock_lock_acquire(l2, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l2), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l1), DLOCK_NOT_HELD);
    assert_null(dlock_lock_token(l1));
    dlt_assert_rc(dlock_debounce_call_sync(d, "z", 1), DLOCK_OK);
    assert_int_equal(e.calls, 1);
    dlt_assert_rc(dlock_debounce_call(d, "w", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(e.errors, 1);

    /* The raw connection died with the server; reconnect it for the teardown. */
    redisFree(C->raw);
    C->raw = dlt_raw_connect(C->port, NULL);
    dlock_debounce_free(d);
    dlock_lock_free(l1);
    dlock_lock_free(l2);
    pthread_mutex_destroy(&e.mu);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_set_reply),
        cmocka_unit_test(test_no_validity_after_failed_release),
        cmocka_unit_test(test_idle_connections_killed),
        cmocka_unit_test(test_stopped_server_times_out),
        cmocka_unit_test(test_killed_and_restarted),
    };
    return cmocka_run_group_tests_name("recovery", tests, setup, teardown);
}
