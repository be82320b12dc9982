/* test_sentinel_secure: dlock behind a Sentinel group reached over TLS only, with passwords on
 * the data nodes and on the sentinels (harness/sentinel-env.sh ... secure).
 *
 * A rediss-sentinel:// URL with the node password and the sentinel_password option finds the
 * master over TLS and locks there; a wrong or missing sentinel password is DLOCK_EAUTH naming a
 * sentinel, a wrong node password DLOCK_EAUTH naming the master, a CA that does not sign the
 * servers DLOCK_ETLS; no message carries a password. After SENTINEL FAILOVER the same client
 * works again on the new master, over TLS. The tests' raw checks use the plain ports, with the
 * passwords (hiredis 0.14 has no TLS). */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *node_pass(void) {
    return dlt_env_require("DLOCK_TEST_SENTINEL_NODE_PASSWORD");
}

static const char *sentinel_pass(void) {
    return dlt_env_require("DLOCK_TEST_SENTINEL_PASSWORD");
}

/* The URL of the environment with the node password in it. */
static const char *url(void) {
    static char u[512];
    const char *base = dlt_env_require("DLOCK_TEST_SENTINEL_URL");
    const char *rest = strstr(base, "://");
    assert_non_null(rest);
    snprintf(u, sizeof u, "rediss-sentinel://:%s@%s", node_pass(), rest + 3);
    return u;
}

static dlock_client_options secure_options(void) {
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_SENTINEL_CA"),
                              .sentinel_password = sentinel_pass()};
    return o;
}

static int env_port(const char *fmt, int n) {
    char key[64];
    snprintf(key, sizeof key, fmt, n);
    return dlt_env_int(key);
}

/* The plain port of the data node whose TLS port is tls_port. */
static int plain_port_of(int tls_port) {
    for (int n = 1; n <= 3; n++) {
        if (env_port("DLOCK_TEST_SENTINEL_NODE_TLS_PORT_%d", n) == tls_port) {
            return env_port("DLOCK_TEST_SENTINEL_NODE_PORT_%d", n);
        }
    }
    fail_msg("port %d is not a node's TLS port", tls_port);
    return 0;
}

/* The master's TLS port, as sentinel n says (asked on its plain port, with its password). */
static int master_tls_port_by(int n) {
    redisContext *s = dlt_raw_connect(env_port("DLOCK_TEST_SENTINEL_PORT_%d", n), sentinel_pass());
    redisReply *r = dlt_raw_cmd(s, "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                                dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    assert_true(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    int port = atoi(r->element[1]->str);
    freeReplyObject(r);
    redisFree(s);
    return port;
}

static int master_tls_port(void) {
    return master_tls_port_by(1);
}

/* 1 when every sentinel names a master other than old. */
static int all_moved_from(int old) {
    for (int n = 1; n <= 3; n++) {
        if (master_tls_port_by(n) == old) {
            return 0;
        }
    }
    return 1;
}

/* Acquires a fresh lock, finds its key on the master the sentinels name, releases it. */
static void roundtrip(dlock_client *c) {
    const char *id = dlt_id("secure");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_connect(plain_port_of(master_tls_port()), node_pass());
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    redisFree(raw);
    dlock_lock_free(l);
}

static void assert_no_secret_in_message(void) {
    assert_false(dlt_contains(dlock_errmsg(), node_pass()));
    assert_false(dlt_contains(dlock_errmsg(), sentinel_pass()));
}

static void test_lock_over_tls_with_passwords(void **state) {
    (void)state;
    dlock_client_options o = secure_options();
    dlock_client *c = dlt_open(url(), &o);
    assert_non_null(strstr(dlock_client_server(c), "rediss-sentinel://"));
    assert_false(dlt_contains(dlock_client_server(c), node_pass()));
    roundtrip(c);
    dlock_client_close(c);
}

/* Every sentinel refuses the password: that is the cause, not "no sentinel answered" as if they
 * were down. */
static void test_wrong_sentinel_password(void **state) {
    (void)state;
    dlock_client_options o = secure_options();
    o.sentinel_password = "not-the-password";
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, url(), &o), DLOCK_EAUTH);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "WRONGPASS"));
    assert_no_secret_in_message();
    assert_false(dlt_contains(dlock_errmsg(), "not-the-password"));

    o.sentinel_password = NULL; /* and none at all */
    dlt_assert_rc(dlock_client_open(&c, url(), &o), DLOCK_EAUTH);
    assert_true(dlt_contains(dlock_errmsg(), "NOAUTH"));
}

/* The sentinels answer, the master they name refuses the node password. */
static void test_wrong_node_password(void **state) {
    (void)state;
    dlock_client_options o = secure_options();
    char u[512];
    const char *base = dlt_env_require("DLOCK_TEST_SENTINEL_URL");
    snprintf(u, sizeof u, "rediss-sentinel://:not-the-password@%s", strstr(base, "://") + 3);
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, u, &o), DLOCK_EAUTH);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "named master"));
    assert_no_secret_in_message();
    assert_false(dlt_contains(dlock_errmsg(), "not-the-password"));
}

/* The sentinels' certificates are checked, even with one down in the list. */
static void test_wrong_ca(void **state) {
    (void)state;
    dlock_client_options o = secure_options();
    o.tls_ca_file = dlt_env_require("DLOCK_TEST_SENTINEL_OTHER_CA");
    char u[512];
    snprintf(u, sizeof u, "rediss-sentinel://:%s@127.0.0.1:%d,127.0.0.1:%d#%s", node_pass(),
             dlt_closed_port(), env_port("DLOCK_TEST_SENTINEL_TLS_PORT_%d", 2),
             dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, u, &o), DLOCK_ETLS);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "certificate"));
    assert_no_secret_in_message();
}

/* The CLI: the sentinels' password from DLOCK_SENTINEL_PASSWORD, the nodes' from DLOCK_PASSWORD
 * (never the command line). A refused sentinel password exits 77 (credentials), not 69 (down). */
static void test_cli_with_passwords(void **state) {
    (void)state;
    const char *base = dlt_env_require("DLOCK_TEST_SENTINEL_URL");
    const char *argv[] = {
        dlt_env_require("DLOCK_TEST_CLI"),         "run",         "--url", base,   "--cacert",
        dlt_env_require("DLOCK_TEST_SENTINEL_CA"), dlt_id("cli"), "--",    "true", NULL};
    setenv("DLOCK_PASSWORD", node_pass(), 1);
    setenv("DLOCK_SENTINEL_PASSWORD", sentinel_pass(), 1);
    assert_int_equal(dlt_run(argv, dlt_slow(10000)), 0);
    setenv("DLOCK_SENTINEL_PASSWORD", "not-the-password", 1);
    assert_int_equal(dlt_run(argv, dlt_slow(10000)), 77);
    unsetenv("DLOCK_SENTINEL_PASSWORD");
    unsetenv("DLOCK_PASSWORD");
}

/* SENTINEL FAILOVER: the same client hears of the new master from the sentinels, over TLS, and
 * locks there (roundtrip checks the key on the master the sentinels name). */
static void test_failover_over_tls(void **state) {
    (void)state;
    dlock_client_options o = secure_options();
    dlock_client *c = dlt_open(url(), &o);
    roundtrip(c);
    int old = master_tls_port();
    redisContext *s = dlt_raw_connect(env_port("DLOCK_TEST_SENTINEL_PORT_%d", 1), sentinel_pass());
    redisReply *r =
        dlt_raw_cmd(s, "SENTINEL FAILOVER %s", dlt_env_require("DLOCK_TEST_SENTINEL_MASTER"));
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(s);
    int64_t until = dlt_now_ms() + dlt_slow(20000);
    while (!all_moved_from(old) && dlt_now_ms() < until) {
        dlt_sleep_ms(100);
    }
    assert_true(all_moved_from(old));
    dlt_sleep_ms(200); /* the +switch-master messages' way to the client */
    dlock_lock *l = dlt_lock_new(c, dlt_id("after"), NULL);
    int rc;
    while ((rc = dlock_lock_acquire(l, NULL)) != DLOCK_OK && dlt_now_ms() < until) {
        assert_true(rc < 0); /* an error while failing over, never NOT_ACQUIRED */
        dlt_sleep_ms(200);
    }
    dlt_assert_rc(rc, DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    roundtrip(c);
    dlock_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_over_tls_with_passwords),
        cmocka_unit_test(test_wrong_sentinel_password),
        cmocka_unit_test(test_wrong_node_password),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_cli_with_passwords),
        cmocka_unit_test(test_failover_over_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
