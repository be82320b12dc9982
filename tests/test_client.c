/* test_client: connecting to real servers. TCP, unix socket, database selection, ACL users and
 * passwords (right, wrong, percent-encoded, overridden), TLS (verified, unverified, wrong CA,
 * server name, client certificates) and REDIS_URL. */
#include "support.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Acquires and releases a fresh lock on `c`: proof that the connection really works. */
static void roundtrip(dlock_client *c) {
    dlock_lock *l = dlt_lock_new(c, dlt_id("client"), NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
}

static void assert_no_secret(const char *s, const char *secret) {
    if (s != NULL && strstr(s, secret) != NULL) {
        fail_msg("\"%s\" contains the password", s);
    }
}

static void test_plain_tcp(void **state) {
    (void)state;
    const char *url = dlt_env_require("DLOCK_TEST_URL");
    dlock_client *c = dlt_open(url, NULL);
    const char *server = dlock_client_server(c);
    assert_non_null(server);
    assert_non_null(strstr(server, "127.0.0.1"));
    assert_non_null(strstr(server, dlt_env_require("DLOCK_TEST_PORT")));
    roundtrip(c);
    dlock_client_close(c);
}

/* Several hosts are seeds of a Redis Cluster: for a server that is not a cluster node they are
 * refused, so two independent servers can never split one lock's holders. The first seed may be
 * down: the next one is tried. */
static void test_host_list_needs_cluster(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d,127.0.0.1:%s", dlt_closed_port(),
             dlt_env_require("DLOCK_TEST_PORT"));
    dlock_client *c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, url, NULL), DLOCK_EINVAL);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "not a cluster node"));
}

/* A host name goes through the resolver (on a thread, so it obeys connect_timeout_ms); the
 * server only listens on 127.0.0.1, which localhost may resolve to after ::1. */
static void test_host_name(void **state) {
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "redis://localhost:%s", dlt_env_require("DLOCK_TEST_PORT"));
    dlock_client *c = dlt_open(url, NULL);
    assert_non_null(strstr(dlock_client_server(c), "localhost"));
    roundtrip(c);
    dlock_client_close(c);
}

/* A server that answers AUTH with "unknown command ... args beginning with: '<password>'" (AUTH
 * renamed away; some proxies do the same): the message must not repeat the password. */
static void test_auth_reply_echoing_password(void **state) {
    (void)state;
    int port = dlt_closed_port();
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = {"redis-server", "--port", portarg, "--bind",
                          "127.0.0.1",    "--save", "",      "--rename-command",
                          "AUTH",         "",       NULL};
    pid_t pid = dlt_spawn(argv);
    assert_true(pid > 0);
    assert_true(dlt_wait_for_redis(port, NULL, 10000));
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    dlock_client_options o = {.password = "Echoed-S3cret"};
    dlock_client *c = NULL;
    int rc = dlock_client_open(&c, url, &o);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(rc < 0);
    assert_null(c);
    assert_null(strstr(dlock_errmsg(), "Echoed-S3cret"));
    assert_true(dlt_contains(dlock_errmsg(), "AUTH"));
}

static void test_unix_socket(void **state) {
    (void)state;
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_UNIX"), NULL);
    assert_non_null(strstr(dlock_client_server(c), dlt_env_require("DLOCK_TEST_UNIX_PATH")));
    /* The unix socket and the TCP port are one server: a lock taken on one is seen on the
     * other. */
    const char *id = dlt_id("unix");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    redisFree(raw);
    dlock_client_close(c);
}

/* The key lands in the selected database and in no other. */
static void check_db(const char *url, int db) {
    dlock_client *c = dlt_open(url, NULL);
    const char *id = dlt_id("db");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    redisContext *raw = dlt_raw_plain();
    assert_false(dlt_raw_exists(raw, id, strlen(id))); /* not in db 0 */
    redisReply *r = dlt_raw_cmd(raw, "SELECT %d", db);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(l));
    free(v);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    redisFree(raw);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static void test_select_db_tcp(void **state) {
    (void)state;
    char url[256];
    snprintf(url, sizeof url, "%s/3", dlt_env_require("DLOCK_TEST_URL"));
    check_db(url, 3);
    dlock_client *c = dlt_open(url, NULL);
    /* The description names the database but carries no credentials. */
    assert_non_null(strstr(dlock_client_server(c), "3"));
    dlock_client_close(c);
}

static void test_select_db_unix(void **state) {
    (void)state;
    char url[256];
    snprintf(url, sizeof url, "%s?db=5", dlt_env_require("DLOCK_TEST_UNIX"));
    check_db(url, 5);
}

static void test_select_db_out_of_range(void **state) {
    (void)state;
    /* The server has 16 databases: SELECT 99 fails at open, not at the first lock. */
    char url[256];
    snprintf(url, sizeof url, "%s/99", dlt_env_require("DLOCK_TEST_URL"));
    dlock_client *c = (dlock_client *)&c;
    int rc = dlock_client_open(&c, url, NULL);
    if (rc >= 0) {
        fail_msg("open of db 99 gave %d", rc);
    }
    assert_null(c);
    assert_true(dlock_errmsg()[0] != '\0');
}

/* ---- ACL and passwords -------------------------------------------------------------------- */

static void acl_url(char *buf, size_t n, const char *user, const char *pass) {
    int port = dlt_env_int("DLOCK_TEST_ACL_PORT");
    if (user != NULL && pass != NULL) {
        snprintf(buf, n, "redis://%s:%s@127.0.0.1:%d", user, pass, port);
    } else if (pass != NULL) {
        snprintf(buf, n, "redis://:%s@127.0.0.1:%d", pass, port);
    } else {
        snprintf(buf, n, "redis://127.0.0.1:%d", port);
    }
}

static void test_acl_user_in_url(void **state) {
    (void)state;
    const char *user = dlt_env_require("DLOCK_TEST_ACL_USER");
    const char *pass = dlt_env_require("DLOCK_TEST_ACL_PASS");
    char url[256];
    acl_url(url, sizeof url, user, pass);
    dlock_client *c = dlt_open(url, NULL);
    assert_no_secret(dlock_client_server(c), pass);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_acl_user_in_options(void **state) {
    (void)state;
    char url[256];
    /* The options override whatever the URL says. */
    acl_url(url, sizeof url, "nobody", "wrong");
    dlock_client_options o = {.username = dlt_env_require("DLOCK_TEST_ACL_USER"),
                              .password = dlt_env_require("DLOCK_TEST_ACL_PASS")};
    dlock_client *c = dlt_open(url, &o);
    roundtrip(c);
    dlock_client_close(c);
    acl_url(url, sizeof url, NULL, NULL);
    c = dlt_open(url, &o);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_acl_percent_encoded(void **state) {
    (void)state;
    /* "s3cret" with its 'e' written %65, and the user "dlocktest" with 'd' as %64. */
    char url[256];
    acl_url(url, sizeof url, "%64locktest", "s3cr%65t");
    assert_string_equal(dlt_env_require("DLOCK_TEST_ACL_PASS"), "s3cret");
    dlock_client *c = dlt_open(url, NULL);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_default_user_password(void **state) {
    (void)state;
    /* Password only: AUTH for the default user (requirepass). */
    char url[256];
    acl_url(url, sizeof url, NULL, dlt_env_require("DLOCK_TEST_DEFAULT_PASS"));
    dlock_client *c = dlt_open(url, NULL);
    roundtrip(c);
    dlock_client_close(c);
    /* And the same given as options. */
    acl_url(url, sizeof url, NULL, NULL);
    dlock_client_options o = {.password = dlt_env_require("DLOCK_TEST_DEFAULT_PASS")};
    c = dlt_open(url, &o);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_wrong_password(void **state) {
    (void)state;
    const char *bad = "Wr0ngPassw0rdXYZ";
    char url[256];
    acl_url(url, sizeof url, dlt_env_require("DLOCK_TEST_ACL_USER"), bad);
    dlock_client *c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, url, NULL), DLOCK_EAUTH);
    assert_null(c);
    assert_true(dlock_errmsg()[0] != '\0');
    assert_no_secret(dlock_errmsg(), bad);

    /* The wrong password for the default user, given as an option. */
    acl_url(url, sizeof url, NULL, NULL);
    dlock_client_options o = {.password = bad};
    dlt_assert_rc(dlock_client_open(&c, url, &o), DLOCK_EAUTH);
    assert_no_secret(dlock_errmsg(), bad);

    /* The right password for another user is still wrong. */
    dlock_client_options o2 = {.username = "default",
                               .password = dlt_env_require("DLOCK_TEST_ACL_PASS")};
    dlt_assert_rc(dlock_client_open(&c, url, &o2), DLOCK_EAUTH);
    assert_no_secret(dlock_errmsg(), dlt_env_require("DLOCK_TEST_ACL_PASS"));

    /* Unknown user. */
    acl_url(url, sizeof url, "no-such-user", bad);
    dlt_assert_rc(dlock_client_open(&c, url, NULL), DLOCK_EAUTH);
    assert_no_secret(dlock_errmsg(), bad);
}

static void test_no_password_for_protected_server(void **state) {
    (void)state;
    /* With no password there may be nothing to send at open, so the refusal may only come with
     * the first command; but it must come, and as an error, never as NOT_ACQUIRED. */
    char url[256];
    acl_url(url, sizeof url, NULL, NULL);
    dlock_client *c = NULL;
    int rc = dlock_client_open(&c, url, NULL);
    if (rc == DLOCK_OK) {
        dlock_lock *l = dlt_lock_new(c, dlt_id("noauth"), NULL);
        rc = dlock_lock_acquire(l, NULL);
        dlock_lock_free(l);
        dlock_client_close(c);
    }
    if (rc != DLOCK_EAUTH && rc != DLOCK_ESERVER) {
        fail_msg("no password on a requirepass server gave %d (%s): %s", rc, dlock_strerror(rc),
                 dlock_errmsg());
    }
}

/* ---- TLS ---------------------------------------------------------------------------------- */

static void test_tls_verified(void **state) {
    (void)state;
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CA")};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_TLS_URL"), &o);
    assert_non_null(strstr(dlock_client_server(c), "rediss://"));
    roundtrip(c);
    dlock_client_close(c);
}

static void test_tls_ca_dir(void **state) {
    (void)state;
    /* A hashed CA directory (openssl rehash) works like a CA file... */
    dlock_client_options o = {.tls_ca_dir = dlt_env_require("DLOCK_TEST_CA_DIR")};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_TLS_URL"), &o);
    roundtrip(c);
    dlock_client_close(c);
    /* ...and one holding only an unrelated CA does not verify the server. */
    o.tls_ca_dir = dlt_env_require("DLOCK_TEST_OTHER_CA_DIR");
    c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, dlt_env_require("DLOCK_TEST_TLS_URL"), &o), DLOCK_ETLS);
    assert_null(c);
}

static void test_tls_no_ca_fails(void **state) {
    (void)state;
    /* The system store does not know our self-signed CA: verification must fail. */
    dlock_client *c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, dlt_env_require("DLOCK_TEST_TLS_URL"), NULL), DLOCK_ETLS);
    assert_null(c);
    assert_true(dlock_errmsg()[0] != '\0');
}

static void test_tls_wrong_ca_fails(void **state) {
    (void)state;
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_OTHER_CA")};
    dlock_client *c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, dlt_env_require("DLOCK_TEST_TLS_URL"), &o), DLOCK_ETLS);
    assert_null(c);
}

static void test_tls_missing_ca_file(void **state) {
    (void)state;
    dlock_client_options o = {.tls_ca_file = "/nonexistent/dlock-ca.pem"};
    dlock_client *c = (dlock_client *)&c;
    int rc = dlock_client_open(&c, dlt_env_require("DLOCK_TEST_TLS_URL"), &o);
    if (rc != DLOCK_ETLS && rc != DLOCK_EINVAL) {
        fail_msg("missing CA file gave %d (%s)", rc, dlock_strerror(rc));
    }
    assert_null(c);
    assert_non_null(strstr(dlock_errmsg(), "/nonexistent/dlock-ca.pem"));
}

static void test_tls_insecure(void **state) {
    (void)state;
    dlock_client_options o = {.tls_insecure = 1};
    dlock_client *c = dlt_open(dlt_env_require("DLOCK_TEST_TLS_URL"), &o);
    roundtrip(c);
    dlock_client_close(c);
}

static void test_tls_server_name(void **state) {
    (void)state;
    const char *url = dlt_env_require("DLOCK_TEST_TLS_URL");
    /* The certificate names IP:127.0.0.1 and DNS:localhost: both verify... */
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CA"),
                              .tls_server_name = "localhost"};
    dlock_client *c = dlt_open(url, &o);
    roundtrip(c);
    dlock_client_close(c);
    /* ...and any other name does not, although the chain is good. */
    o.tls_server_name = "not-the-server.example";
    c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open(&c, url, &o), DLOCK_ETLS);
    assert_null(c);
}

static void test_tls_to_plain_port(void **state) {
    (void)state;
    /* rediss:// to a server that does not speak TLS must fail, not hang or succeed. */
    dlock_client_options o = {.tls_insecure = 1, .connect_timeout_ms = 2000};
    dlock_client *c = (dlock_client *)&c;
    char url[128];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%s", dlt_env_require("DLOCK_TEST_PORT"));
    int64_t t0 = dlt_now_ms();
    int rc = dlock_client_open(&c, url, &o);
    /* Redis reads the ClientHello as the start of an inline command and waits for the rest,
     * so the handshake may fail (ETLS, EIO) or time out. */
    if (rc != DLOCK_ETLS && rc != DLOCK_EIO && rc != DLOCK_ETIMEDOUT) {
        fail_msg("rediss:// to a plain port gave %d (%s): %s", rc, dlock_strerror(rc),
                 dlock_errmsg());
    }
    assert_null(c);
    assert_true(dlt_now_ms() - t0 < dlt_slow(2700));
}

static void test_mtls(void **state) {
    (void)state;
    const char *url = dlt_env_require("DLOCK_TEST_MTLS_URL");
    dlock_client_options o = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CA"),
                              .tls_cert_file = dlt_env_require("DLOCK_TEST_CLIENT_CERT"),
                              .tls_key_file = dlt_env_require("DLOCK_TEST_CLIENT_KEY")};
    dlock_client *c = dlt_open(url, &o);
    roundtrip(c);
    dlock_client_close(c);

    /* Without a client certificate the server refuses. With TLS 1.3 the client learns it only
     * when it first reads, so accept the failure at open or at the first command. */
    dlock_client_options o2 = {.tls_ca_file = dlt_env_require("DLOCK_TEST_CA")};
    c = NULL;
    int rc = dlock_client_open(&c, url, &o2);
    if (rc == DLOCK_OK) {
        dlock_lock *l = dlt_lock_new(c, dlt_id("mtls"), NULL);
        rc = dlock_lock_acquire(l, NULL);
        dlock_lock_free(l);
        dlock_client_close(c);
    }
    if (rc >= 0) {
        fail_msg("mTLS server without client certificate gave %d", rc);
    }

    /* A missing key file is reported, naming the file. */
    dlock_client_options o3 = o;
    o3.tls_key_file = "/nonexistent/client.key";
    c = (dlock_client *)&c;
    rc = dlock_client_open(&c, url, &o3);
    if (rc != DLOCK_ETLS && rc != DLOCK_EINVAL) {
        fail_msg("missing client key gave %d (%s)", rc, dlock_strerror(rc));
    }
    assert_null(c);
}

/* ---- REDIS_URL ---------------------------------------------------------------------------- */

static void test_open_env(void **state) {
    (void)state;
    /* The Upstash REST variables take precedence over REDIS_URL: make sure none is set. */
    unsetenv("UPSTASH_REDIS_REST_URL");
    unsetenv("UPSTASH_REDIS_REST_TOKEN");
    char url[256];
    acl_url(url, sizeof url, dlt_env_require("DLOCK_TEST_ACL_USER"),
            dlt_env_require("DLOCK_TEST_ACL_PASS"));
    setenv("REDIS_URL", url, 1);
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open_env(&c, NULL), DLOCK_OK);
    assert_non_null(strstr(dlock_client_server(c), dlt_env_require("DLOCK_TEST_ACL_PORT")));
    assert_no_secret(dlock_client_server(c), dlt_env_require("DLOCK_TEST_ACL_PASS"));
    roundtrip(c);
    dlock_client_close(c);

    /* Options apply to open_env too: a wrong password overrides the URL's right one. */
    dlock_client_options o = {.password = "nope-nope"};
    c = (dlock_client *)&c;
    dlt_assert_rc(dlock_client_open_env(&c, &o), DLOCK_EAUTH);
    assert_null(c);

    setenv("REDIS_URL", dlt_env_require("DLOCK_TEST_UNIX"), 1);
    dlt_assert_rc(dlock_client_open_env(&c, NULL), DLOCK_OK);
    roundtrip(c);
    dlock_client_close(c);
    unsetenv("REDIS_URL");
}

/* Clients opened and closed leave no connection behind (valgrind checks the memory; this checks
 * the sockets). On the victim server: only test_recovery uses it, and that runs alone
 * (RUN_SERIAL), so the count is exact. */
static long connected_clients(redisContext *raw) {
    redisReply *r = dlt_raw_cmd(raw, "INFO clients");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "connected_clients:");
    assert_non_null(p);
    long n = strtol(p + strlen("connected_clients:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

static void test_close_releases_connections(void **state) {
    (void)state;
    const char *url = dlt_env_require("DLOCK_TEST_VICTIM_URL");
    redisContext *raw = dlt_raw_connect(dlt_env_int("DLOCK_TEST_VICTIM_PORT"), NULL);
    long before = connected_clients(raw);
    for (int i = 0; i < 20; i++) {
        dlock_client *c = dlt_open(url, NULL);
        roundtrip(c);
        dlock_client_close(c);
    }
    /* The server notices a close on its next event loop turn: give it a moment. */
    long after = connected_clients(raw);
    for (int tries = 0; tries < 100 && after != before; tries++) {
        dlt_sleep_ms(10);
        after = connected_clients(raw);
    }
    if (after != before) {
        fail_msg("connected_clients went from %ld to %ld after 20 open/close", before, after);
    }
    redisFree(raw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_tcp),
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_host_list_needs_cluster),
        cmocka_unit_test(test_auth_reply_echoing_password),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_select_db_tcp),
        cmocka_unit_test(test_select_db_unix),
        cmocka_unit_test(test_select_db_out_of_range),
        cmocka_unit_test(test_acl_user_in_url),
        cmocka_unit_test(test_acl_user_in_options),
        cmocka_unit_test(test_acl_percent_encoded),
        cmocka_unit_test(test_default_user_password),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_no_password_for_protected_server),
        cmocka_unit_test(test_tls_verified),
        cmocka_unit_test(test_tls_ca_dir),
        cmocka_unit_test(test_tls_no_ca_fails),
        cmocka_unit_test(test_tls_wrong_ca_fails),
        cmocka_unit_test(test_tls_missing_ca_file),
        cmocka_unit_test(test_tls_insecure),
        cmocka_unit_test(test_tls_server_name),
        cmocka_unit_test(test_tls_to_plain_port),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_open_env),
        cmocka_unit_test(test_close_releases_connections),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
