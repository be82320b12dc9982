/* test_url: what dlock_client_open does before and without a Redis server. Bad URLs, refused and
 * silent peers, messages (which must never carry a password), dlock_strerror, dlock_version, and
 * NULL handling of every entry point. Needs no fixture. */
#include "support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "Sup3rS3cretPw"

/* Opens `url`, expects `want`, and checks the contract for failures: *out is NULL and there is
 * a message that does not leak SECRET. Returns the message (valid until the next dlock call). */
static const char *open_expect(const char *url, const dlock_client_options *o, int want) {
    dlock_client *c = (dlock_client *)&c; /* a non-NULL poison value: must be set to NULL */
    int rc = dlock_client_open(&c, url, o);
    if (rc != want) {
        fail_msg("dlock_client_open(\"%s\") = %d (%s), expected %d (%s); errmsg \"%s\"", url, rc,
                 dlock_strerror(rc), want, dlock_strerror(want), dlock_errmsg());
    }
    if (rc == DLOCK_OK) {
        dlock_client_close(c);
        return "";
    }
    assert_null(c);
    const char *msg = dlock_errmsg();
    assert_non_null(msg);
    if (msg[0] == '\0') {
        fail_msg("dlock_client_open(\"%s\") failed with an empty dlock_errmsg()", url);
    }
    if (strstr(msg, SECRET) != NULL) {
        fail_msg("dlock_errmsg() leaks the password: \"%s\"", msg);
    }
    return msg;
}

/* The message must name the problem; `any` is a '|'-separated list of acceptable words. */
static void assert_msg_names(const char *msg, const char *url, const char *any) {
    char words[256];
    snprintf(words, sizeof words, "%s", any);
    for (char *save = NULL, *w = strtok_r(words, "|", &save); w != NULL;
         w = strtok_r(NULL, "|", &save)) {
        if (dlt_contains(msg, w)) {
            return;
        }
    }
    fail_msg("message for \"%s\" does not name the problem (expected one of %s): \"%s\"", url, any,
             msg);
}

static void test_bad_urls(void **state) {
    (void)state;
    static const struct {
        const char *url;
        const char *names; /* words of which the message must contain one */
    } cases[] = {
        {"", "url|empty"},
        {"127.0.0.1:6379", "scheme|url"},
        {"ftp://127.0.0.1:6379", "ftp|scheme"},
        {"memcached://127.0.0.1:6379", "memcached|scheme"},
        {"redis:/127.0.0.1", "url|scheme|redis:/"},
        {"redis://", "host|url"},
        {"redis://:6379", "host"},
        {"redis://127.0.0.1:", "port"},
        {"redis://127.0.0.1:abc", "port"},
        {"redis://127.0.0.1:0", "port"},
        {"redis://127.0.0.1:65536", "port"},
        {"redis://127.0.0.1:-1", "port"},
        {"redis://127.0.0.1:6379x", "port"},
        {"redis://127.0.0.1/abc", "db|database"},
        {"redis://127.0.0.1/-1", "db|database"},
        {"redis://[::1", "host|bracket|]|ipv6|url"},
        {"rediss://", "host|url"},
        {"unix://", "path|socket"},
        {"unix:///tmp/x.sock?db=abc", "db|database"},
        {"redis://user:" SECRET "@127.0.0.1:notaport", "port"},
        {"redis://user:" SECRET "@:6379", "host"},
        {"redis://us%zzer:" SECRET "@127.0.0.1:6379", "percent|%|user|escape|encod"},
        /* No "@host": the password would be read as the port. */
        {"redis://user:" SECRET, "port"},
        /* A raw '/' in the password ends the authority early. */
        {"redis://user:" SECRET "/x@127.0.0.1:6379", "percent|encode"},
        {"redis://user:" SECRET "?x@127.0.0.1:6379", "percent|encode"},
        /* Host lists (cluster seeds, sentinels) and sentinel URLs. */
        {"redis://127.0.0.1:7000,", "host"},
        {"redis://127.0.0.1:7000,,127.0.0.1:7001", "host"},
        {"redis://127.0.0.1:7000,127.0.0.1:x", "port"},
        {"redis://127.0.0.1#name", "fragment"},
        {"https://a.example,b.example", "host list|list"},
        {"redis-sentinel://127.0.0.1:26379", "master|#"},
        {"redis-sentinel://127.0.0.1:26379#", "master|#"},
        {"redis-sentinel://127.0.0.1:1,#mymaster", "host"},
        {"rediss-sentinel://user:" SECRET "@:26379#m", "host"},
        {"redis-sentinel://127.0.0.1/x#m", "db|database"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *msg = open_expect(cases[i].url, NULL, DLOCK_EINVAL);
        assert_msg_names(msg, cases[i].url, cases[i].names);
    }
}

/* Sentinel URLs fail to connect with a message naming the sentinels, never the password. */
static void test_sentinels_unreachable(void **state) {
    (void)state;
    char url[200];
    int p1 = dlt_closed_port(), p2 = dlt_closed_port();
    snprintf(url, sizeof url, "redis-sentinel://user:" SECRET "@127.0.0.1:%d,[::1]:%d/2#mymaster",
             p1, p2);
    const char *msg = open_expect(url, NULL, DLOCK_ECONNECT);
    assert_msg_names(msg, url, "sentinel");
    /* Cluster seeds: each is tried; the message says none answered. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d,127.0.0.1:%d", p1, p2);
    msg = open_expect(url, NULL, DLOCK_ECONNECT);
    assert_msg_names(msg, url, "seed");
}

static void test_null_arguments(void **state) {
    (void)state;
    dlock_client *c = (dlock_client *)&c;
    assert_int_equal(dlock_client_open(&c, NULL, NULL), DLOCK_EINVAL);
    assert_null(c);
    assert_true(dlock_errmsg()[0] != '\0');
    assert_int_equal(dlock_client_open(NULL, "redis://127.0.0.1:6379", NULL), DLOCK_EINVAL);
    assert_int_equal(dlock_client_open_env(NULL, NULL), DLOCK_EINVAL);

    /* Every entry point taking a handle rejects NULL without crashing. */
    dlock_lock *l = (dlock_lock *)&l;
    assert_int_equal(dlock_lock_new(&l, NULL, "id", NULL), DLOCK_EINVAL);
    assert_null(l);
    assert_true(dlock_errmsg()[0] != '\0');
    assert_int_equal(dlock_lock_new(NULL, NULL, "id", NULL), DLOCK_EINVAL);
    assert_int_equal(dlock_lock_acquire(NULL, NULL), DLOCK_EINVAL);
    assert_int_equal(dlock_lock_release(NULL), DLOCK_EINVAL);
    assert_int_equal(dlock_lock_extend(NULL, 1000), DLOCK_EINVAL);
    dlock_state st = DLOCK_ACQUIRED;
    assert_int_equal(dlock_lock_status(NULL, &st), DLOCK_EINVAL);
    assert_int_equal(st, DLOCK_FREE);
    assert_null(dlock_lock_id(NULL));
    assert_null(dlock_lock_token(NULL));
    dlock_lock_info info;
    assert_int_equal(dlock_lock_inspect(NULL, "id", NULL, &info), DLOCK_EINVAL);

    dlock_debounce *d = (dlock_debounce *)&d;
    assert_int_equal(dlock_debounce_new(&d, NULL, "id", NULL), DLOCK_EINVAL);
    assert_null(d);
    assert_int_equal(dlock_debounce_call(NULL, "x", 1), DLOCK_EINVAL);
    assert_int_equal(dlock_debounce_call_sync(NULL, "x", 1), DLOCK_EINVAL);
    assert_int_equal(dlock_debounce_flush(NULL), DLOCK_EINVAL);

    /* Freeing NULL is a no-op. */
    dlock_client_close(NULL);
    dlock_lock_free(NULL);
    dlock_debounce_free(NULL);
}

static void test_connection_refused(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "redis://user:%s@127.0.0.1:%d", SECRET, dlt_closed_port());
    dlock_client_options o = {.connect_timeout_ms = 3000};
    int64_t t0 = dlt_now_ms();
    const char *msg = open_expect(url, &o, DLOCK_ECONNECT);
    int64_t took = dlt_now_ms() - t0;
    /* Refused is immediate: it must not wait out the connect deadline. */
    if (took >= dlt_slow(1000)) {
        fail_msg("refused connect took %lld ms", (long long)took);
    }
    assert_msg_names(msg, url, "127.0.0.1");
}

static void test_unresolvable_host(void **state) {
    (void)state;
    /* .invalid never resolves (RFC 2606). */
    const char *url = "redis://:" SECRET "@dlock-test-no-such-host.invalid:6379";
    dlock_client_options o = {.connect_timeout_ms = 3000};
    int64_t t0 = dlt_now_ms();
    const char *msg = open_expect(url, &o, DLOCK_ECONNECT);
    assert_true(dlt_now_ms() - t0 < dlt_slow(5000));
    assert_msg_names(msg, url, "dlock-test-no-such-host.invalid");
}

static void test_missing_unix_socket(void **state) {
    (void)state;
    const char *url = "unix:///nonexistent-dir-dlock/redis.sock";
    const char *msg = open_expect(url, NULL, DLOCK_ECONNECT);
    assert_msg_names(msg, url, "/nonexistent-dir-dlock/redis.sock");
}

/* A peer that completes the TCP handshake and then never says anything. Whatever the open does
 * on it (TLS handshake, AUTH, SELECT, PING) must end at the connect deadline with ETIMEDOUT. */
static void expect_silent_timeout(const char *url_fmt, int timeout_ms) {
    int port = 0;
    int fd = dlt_silent_listener(&port);
    char url[160];
    snprintf(url, sizeof url, url_fmt, port);
    dlock_client_options o = {
        .connect_timeout_ms = timeout_ms, .command_timeout_ms = timeout_ms, .tls_insecure = 1};
    int64_t t0 = dlt_now_ms();
    dlock_client *c = NULL;
    int rc = dlock_client_open(&c, url, &o);
    int64_t took = dlt_now_ms() - t0;
    if (rc == DLOCK_OK) {
        /* Plain redis:// with no password and db 0 has nothing to say at open; then the first
         * command must time out at command_timeout_ms instead. */
        dlock_lock *l = dlt_lock_new(c, dlt_id("silent"), NULL);
        t0 = dlt_now_ms();
        rc = dlock_lock_acquire(l, NULL);
        took = dlt_now_ms() - t0;
        dlock_lock_free(l);
        dlock_client_close(c);
    } else {
        assert_null(c);
    }
    close(fd);
    if (rc != DLOCK_ETIMEDOUT) {
        fail_msg("%s: got %d (%s), expected ETIMEDOUT; errmsg \"%s\"", url, rc, dlock_strerror(rc),
                 dlock_errmsg());
    }
    if (strstr(dlock_errmsg(), SECRET) != NULL) {
        fail_msg("errmsg leaks the password: %s", dlock_errmsg());
    }
    /* Within about the deadline: not early, and not much later. */
    if (took < timeout_ms - 50 || took > dlt_slow(timeout_ms + 1000)) {
        fail_msg("%s: timed out after %lld ms, deadline %d ms", url, (long long)took, timeout_ms);
    }
}

static void test_silent_server_plain(void **state) {
    (void)state;
    expect_silent_timeout("redis://127.0.0.1:%d", 500);
}

static void test_silent_server_auth(void **state) {
    (void)state;
    expect_silent_timeout("redis://u:" SECRET "@127.0.0.1:%d", 500);
}

static void test_silent_server_tls(void **state) {
    (void)state;
    expect_silent_timeout("rediss://127.0.0.1:%d", 500);
}

static void test_open_env_bad_url(void **state) {
    (void)state;
    const char *old = getenv("REDIS_URL");
    char *saved = old != NULL ? strdup(old) : NULL;

    setenv("REDIS_URL", "bogus://x", 1);
    const char *msg = NULL;
    dlock_client *c = (dlock_client *)&c;
    assert_int_equal(dlock_client_open_env(&c, NULL), DLOCK_EINVAL);
    assert_null(c);
    msg = dlock_errmsg();
    assert_msg_names(msg, "REDIS_URL=bogus://x", "bogus|scheme");

    /* The password of REDIS_URL is as secret as any other. */
    char url[128];
    snprintf(url, sizeof url, "redis://u:%s@127.0.0.1:%d", SECRET, dlt_closed_port());
    setenv("REDIS_URL", url, 1);
    assert_int_equal(dlock_client_open_env(&c, NULL), DLOCK_ECONNECT);
    assert_null(strstr(dlock_errmsg(), SECRET));

    if (saved != NULL) {
        setenv("REDIS_URL", saved, 1);
        free(saved);
    } else {
        unsetenv("REDIS_URL");
    }
}

static void test_open_env_default(void **state) {
    (void)state;
    /* Unset or empty REDIS_URL means redis://127.0.0.1:6379. Nothing may listen there in this
     * sandbox, so accept either outcome, but it must be about 127.0.0.1:6379. */
    const char *old = getenv("REDIS_URL");
    char *saved = old != NULL ? strdup(old) : NULL;
    const char *values[] = {NULL, ""};
    for (int i = 0; i < 2; i++) {
        if (values[i] == NULL) {
            unsetenv("REDIS_URL");
        } else {
            setenv("REDIS_URL", values[i], 1);
        }
        dlock_client_options o = {.connect_timeout_ms = 1000};
        dlock_client *c = NULL;
        int rc = dlock_client_open_env(&c, &o);
        if (rc == DLOCK_OK) {
            assert_non_null(strstr(dlock_client_server(c), "6379"));
            dlock_client_close(c);
        } else {
            assert_null(c);
            assert_true(rc < 0 && rc != DLOCK_EINVAL);
            if (strstr(dlock_errmsg(), "6379") == NULL) {
                fail_msg("default REDIS_URL: message does not name port 6379: \"%s\"",
                         dlock_errmsg());
            }
        }
    }
    if (saved != NULL) {
        setenv("REDIS_URL", saved, 1);
        free(saved);
    }
}

static void test_bad_client_options(void **state) {
    (void)state;
    dlock_client_options o = {.connect_timeout_ms = -1};
    open_expect("redis://127.0.0.1:6379", &o, DLOCK_EINVAL);
    dlock_client_options o2 = {.command_timeout_ms = -5};
    open_expect("redis://127.0.0.1:6379", &o2, DLOCK_EINVAL);
    dlock_client_options o3 = {.pool_size = -1};
    open_expect("redis://127.0.0.1:6379", &o3, DLOCK_EINVAL);
}

static void test_token_uuid_and_env_url(void **state) {
    (void)state;
    char a[DLOCK_UUID_LEN + 1], b[DLOCK_UUID_LEN + 1];
    dlt_assert_rc(dlock_token_uuid(a), DLOCK_OK);
    dlt_assert_rc(dlock_token_uuid(b), DLOCK_OK);
    assert_true(dlt_is_uuid_v4(a));
    assert_string_not_equal(a, b);
    dlt_assert_rc(dlock_token_uuid(NULL), DLOCK_EINVAL);

    const char *src = NULL;
    unsetenv("UPSTASH_REDIS_REST_URL");
    unsetenv("REDIS_URL");
    assert_string_equal(dlock_env_url(&src), "redis://127.0.0.1:6379");
    assert_string_equal(src, "the default");
    setenv("REDIS_URL", "redis://10.0.0.1:7000", 1);
    assert_string_equal(dlock_env_url(&src), "redis://10.0.0.1:7000");
    assert_string_equal(src, "REDIS_URL");
    setenv("UPSTASH_REDIS_REST_URL", "https://example.upstash.io", 1);
    assert_string_equal(dlock_env_url(NULL), "https://example.upstash.io");
    setenv("UPSTASH_REDIS_REST_URL", "", 1); /* empty counts as unset */
    assert_string_equal(dlock_env_url(&src), "redis://10.0.0.1:7000");
    unsetenv("UPSTASH_REDIS_REST_URL");
    unsetenv("REDIS_URL");
}

static void test_strerror(void **state) {
    (void)state;
    const int codes[] = {DLOCK_OK,        DLOCK_NOT_ACQUIRED, DLOCK_NOT_HELD, DLOCK_SUPERSEDED,
                         DLOCK_EINVAL,    DLOCK_ENOMEM,       DLOCK_EIO,      DLOCK_ETIMEDOUT,
                         DLOCK_ECONNECT,  DLOCK_EAUTH,        DLOCK_ETLS,     DLOCK_ESERVER,
                         DLOCK_EPROTO,    DLOCK_EHTTP,        DLOCK_ESTATE,   DLOCK_ESYS,
                         DLOCK_ECANCELED, DLOCK_EREPLICAS};
    const size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = dlock_strerror(12345);
    assert_non_null(unknown);
    assert_string_equal(unknown, "unknown dlock code");
    assert_string_equal(dlock_strerror(-15), "unknown dlock code");
    assert_string_equal(dlock_strerror(4), "unknown dlock code");
    assert_string_equal(dlock_strerror(-2147483647 - 1), "unknown dlock code");
    for (size_t i = 0; i < n; i++) {
        const char *s = dlock_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        if (strcmp(s, unknown) == 0) {
            fail_msg("code %d has no name", codes[i]);
        }
        /* Distinct codes get distinct names, or a log could not tell them apart. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s, dlock_strerror(codes[j])) == 0) {
                fail_msg("codes %d and %d share the name \"%s\"", codes[i], codes[j], s);
            }
        }
    }
    /* The values are the ABI: they must never change. */
    assert_int_equal(DLOCK_OK, 0);
    assert_int_equal(DLOCK_NOT_ACQUIRED, 1);
    assert_int_equal(DLOCK_NOT_HELD, 2);
    assert_int_equal(DLOCK_SUPERSEDED, 3);
    assert_int_equal(DLOCK_EINVAL, -1);
    assert_int_equal(DLOCK_ESYS, -12);
}

struct errmsg_probe {
    char before[256]; /* dlock_errmsg() on a fresh thread */
    char after[256];  /* after a failing call on that thread */
    int rc;
};

static void *errmsg_thread(void *arg) {
    struct errmsg_probe *p = arg;
    snprintf(p->before, sizeof p->before, "%s", dlock_errmsg());
    dlock_client *c = NULL;
    p->rc = dlock_client_open(&c, "ftp://thread.example", NULL);
    snprintf(p->after, sizeof p->after, "%s", dlock_errmsg());
    return NULL;
}

static void test_errmsg_per_thread(void **state) {
    (void)state;
    dlock_client *c = NULL;
    assert_int_equal(dlock_client_open(&c, "gopher://main.example", NULL), DLOCK_EINVAL);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", dlock_errmsg());
    assert_true(mine[0] != '\0');

    struct errmsg_probe p = {{0}, {0}, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, errmsg_thread, &p), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* A thread that has not failed yet sees "", not the main thread's message. */
    assert_string_equal(p.before, "");
    assert_int_equal(p.rc, DLOCK_EINVAL);
    assert_true(p.after[0] != '\0');
    /* ...and its failure does not overwrite the main thread's message. */
    assert_string_equal(dlock_errmsg(), mine);
}

static void test_version(void **state) {
    (void)state;
    assert_string_equal(dlock_version(), DLOCK_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", DLOCK_VERSION_MAJOR, DLOCK_VERSION_MINOR,
             DLOCK_VERSION_PATCH);
    assert_string_equal(dlock_version(), buf);
    assert_int_equal(DLOCK_VERSION_NUM, (DLOCK_VERSION_MAJOR << 16) | (DLOCK_VERSION_MINOR << 8) |
                                            DLOCK_VERSION_PATCH);
}

int main(void) {
    /* dlock_client_open_env prefers the Upstash REST variables over REDIS_URL. */
    unsetenv("UPSTASH_REDIS_REST_URL");
    unsetenv("UPSTASH_REDIS_REST_TOKEN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_sentinels_unreachable),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_unresolvable_host),
        cmocka_unit_test(test_missing_unix_socket),
        cmocka_unit_test(test_silent_server_plain),
        cmocka_unit_test(test_silent_server_auth),
        cmocka_unit_test(test_silent_server_tls),
        cmocka_unit_test(test_open_env_bad_url),
        cmocka_unit_test(test_open_env_default),
        cmocka_unit_test(test_bad_client_options),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_errmsg_per_thread),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_token_uuid_and_env_url),
    };
    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
