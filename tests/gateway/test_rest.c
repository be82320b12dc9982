/* test_rest: the Upstash REST transport (src/rest.c) against dlock_rest_gateway, a local
 * Upstash-compatible gateway in front of the fixture's plain redis-server. Lock and debounce over
 * http:// and over https:// (verified against the test CA), binary-safe replies, and every failure
 * the transport maps: bad token, Redis error envelopes, malformed/truncated/odd JSON, HTTP 5xx,
 * refused and silent peers, timeouts. No message may ever carry the token.
 *
 * The gateway is started here (fork/exec, port chosen by the kernel), once over HTTP and once
 * over HTTPS; fault modes are selected per client by the base URL (/fault/MODE applies MODE to
 * every request but the PING of dlock_client_open, /fault-all/MODE to all of them). */
#include "internal.h"
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN     "Tok-9f8e7d6c5b4a-secret"
#define BAD_TOKEN "Wrong-1a2b3c4d5e6f-secret"

typedef struct gateway {
    pid_t pid;
    int port;
    char log[1024];
} gateway;

static gateway g_http, g_https;

/* Starts the gateway with `extra` arguments (NULL-terminated) and waits for its port file. */
static int gateway_start(gateway *g, const char *name, const char *const *extra) {
    const char *scratch = getenv("DLOCK_TEST_SCRATCH");
    char portfile[1024], redis[64];
    snprintf(portfile, sizeof portfile, "%s/%s.%ld.port", scratch ? scratch : "/tmp", name,
             (long)getpid());
    snprintf(g->log, sizeof g->log, "%s/%s.%ld.log", scratch ? scratch : "/tmp", name,
             (long)getpid());
    unlink(portfile);
    unlink(g->log);
    snprintf(redis, sizeof redis, "127.0.0.1:%s", dlt_env("DLOCK_TEST_PORT"));
    const char *argv[24] = {DLOCK_TEST_GATEWAY, "--redis", redis,   "--token", TOKEN, "--port", "0",
                            "--port-file",      portfile,  "--log", g->log};
    int n = 11;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 23; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    if ((g->pid = dlt_spawn(argv)) < 0) {
        return -1;
    }
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(portfile, "r");
        if (f != NULL) {
            int ok = fscanf(f, "%d", &g->port) == 1;
            fclose(f);
            if (ok) {
                return 0;
            }
        }
        dlt_sleep_ms(10);
    }
    fprintf(stderr, "gateway %s did not start\n", name);
    return -1;
}

static void gateway_stop(gateway *g) {
    if (g->pid > 0) {
        kill(g->pid, SIGTERM);
        dlt_wait(g->pid, 10000);
        g->pid = 0;
    }
}

static int setup(void **state) {
    (void)state;
    if (dlt_env("DLOCK_TEST_PORT") == NULL || dlt_env("DLOCK_TEST_DIR") == NULL) {
        fprintf(stderr, "DLOCK_TEST_ENV_DIR is not set: run through ctest\n");
        return -1;
    }
    char cert[1024], key[1024];
    snprintf(cert, sizeof cert, "%s/server.crt", dlt_env("DLOCK_TEST_DIR"));
    snprintf(key, sizeof key, "%s/server.key", dlt_env("DLOCK_TEST_DIR"));
    const char *tls[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    if (gateway_start(&g_http, "gw-http", NULL) != 0 ||
        gateway_start(&g_https, "gw-https", tls) != 0) {
        gateway_stop(&g_http);
        gateway_stop(&g_https);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    gateway_stop(&g_http);
    gateway_stop(&g_https);
    return 0;
}

/* ---- helpers ---- */

static const char *url_of(const gateway *g, const char *scheme, const char *path) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s://127.0.0.1:%d%s", scheme, g->port, path);
    return buf;
}

static void assert_no_token(void) {
    const char *m = dlock_errmsg();
    if (strstr(m, TOKEN) != NULL || strstr(m, BAD_TOKEN) != NULL) {
        fail_msg("dlock_errmsg() carries the token: \"%s\"", m);
    }
}

static void assert_msg_has(const char *word) {
    if (!dlt_contains(dlock_errmsg(), word)) {
        fail_msg("dlock_errmsg() does not mention \"%s\": \"%s\"", word, dlock_errmsg());
    }
}

static dlock_client *open_rest(const char *url, int command_timeout_ms) {
    dlock_client_options o = {.rest_token = TOKEN, .command_timeout_ms = command_timeout_ms};
    return dlt_open(url, &o);
}

/* Opens `url`, expecting `want`; checks *out is NULL and the message is clean. */
static void open_fails(const char *url, const dlock_client_options *o, int want) {
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open(&c, url, o), want);
    assert_null(c);
    assert_no_token();
}

static int64_t run_callbacks;
static char last_arg[64];

static void on_debounce(const void *arg, size_t len, void *userdata) {
    (void)userdata;
    __atomic_add_fetch(&run_callbacks, 1, __ATOMIC_SEQ_CST);
    snprintf(last_arg, sizeof last_arg, "%.*s", (int)len, (const char *)arg);
}

/* ---- lock and debounce through the gateway ---- */

static void lock_cycle(dlock_client *c) {
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-lock");
    size_t idlen = strlen(id);
    dlock_lock *a = dlt_lock_new(c, id, NULL), *b = dlt_lock_new(c, id, NULL);
    dlock_acquire_options once = {.attempts = 1};

    dlt_assert_rc(dlock_lock_acquire(a, NULL), DLOCK_OK);
    assert_true(dlt_is_uuid_v4(dlock_lock_token(a)));
    char *v = dlt_raw_get(raw, id, idlen, NULL);
    assert_string_equal(v, dlock_lock_token(a)); /* the same key and value as over RESP */
    free(v);
    long long pttl = dlt_raw_pttl(raw, id, idlen);
    assert_true(pttl > 9000 && pttl <= 10000);
    dlt_assert_rc(dlock_lock_acquire(b, &once), DLOCK_NOT_ACQUIRED);

    dlock_state st;
    dlt_assert_rc(dlock_lock_status(a, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_extend(a, 20000), DLOCK_OK);
    assert_true(dlt_raw_pttl(raw, id, idlen) > 25000);

    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, dlock_lock_token(a), &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_int_equal(info.token_matches, 1);
    assert_true(info.remaining_ms > 25000);
    assert_string_equal(info.holder_token, dlock_lock_token(a));

    dlt_assert_rc(dlock_lock_release(b), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_release(a), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, idlen));
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_int_equal(info.held, 0);
    dlt_assert_rc(dlock_lock_acquire(b, &once), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(b), DLOCK_OK);

    /* EVALSHA after SCRIPT FLUSH: the gateway's 400 NOSCRIPT envelope must reach script.c as a
     * Redis error reply, which falls back to EVAL. */
    dlt_assert_rc(dlock_lock_acquire(a, NULL), DLOCK_OK);
    freeReplyObject(dlt_raw_cmd(raw, "SCRIPT FLUSH"));
    dlt_assert_rc(dlock_lock_release(a), DLOCK_OK);

    dlock_lock_free(a);
    dlock_lock_free(b);
    redisFree(raw);
}

static void debounce_cycle(dlock_client *c) {
    const char *id = dlt_id("rest-debounce");
    dlock_debounce_options o = {.wait_ms = 200, .callback = on_debounce};
    dlock_debounce *d = NULL;
    dlt_assert_rc(dlock_debounce_new(&d, c, id, &o), DLOCK_OK);
    run_callbacks = 0;
    dlt_assert_rc(dlock_debounce_call_sync(d, "one", 3), DLOCK_OK);
    assert_int_equal(run_callbacks, 1);
    assert_string_equal(last_arg, "one");
    /* Three calls inside one wait: only the last runs. */
    run_callbacks = 0;
    dlt_assert_rc(dlock_debounce_call(d, "a", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_call(d, "b", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_call(d, "c", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(run_callbacks, 1);
    assert_string_equal(last_arg, "c");
    dlock_debounce_free(d);
}

static void test_http_lock_and_debounce(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", ""), 0);
    assert_string_equal(dlock_client_server(c), url_of(&g_http, "http", ""));
    lock_cycle(c);
    debounce_cycle(c);
    dlock_client_close(c);
}

static void test_https_lock_and_debounce(void **state) {
    (void)state;
    dlock_client_options o = {.rest_token = TOKEN, .tls_ca_file = dlt_env("DLOCK_TEST_CA")};
    dlock_client *c = dlt_open(url_of(&g_https, "https", "/"), &o);
    lock_cycle(c);
    debounce_cycle(c);
    dlock_client_close(c);
    /* The certificate names localhost too. */
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d", g_https.port);
    dlock_client_close(dlt_open(url, &o));
}

static void test_https_wrong_ca(void **state) {
    (void)state;
    dlock_client_options o = {.rest_token = TOKEN, .tls_ca_file = dlt_env("DLOCK_TEST_OTHER_CA")};
    open_fails(url_of(&g_https, "https", ""), &o, DLOCK_ETLS);
    /* The default system store does not know the test CA either. */
    dlock_client_options d = {.rest_token = TOKEN};
    open_fails(url_of(&g_https, "https", ""), &d, DLOCK_ETLS);
    /* A name the certificate does not carry. */
    dlock_client_options n = {.rest_token = TOKEN,
                              .tls_ca_file = dlt_env("DLOCK_TEST_CA"),
                              .tls_server_name = "other.example"};
    open_fails(url_of(&g_https, "https", ""), &n, DLOCK_ETLS);
    /* tls_insecure turns verification off (tests only). */
    dlock_client_options i = {
        .rest_token = TOKEN, .tls_ca_file = dlt_env("DLOCK_TEST_OTHER_CA"), .tls_insecure = 1};
    dlock_client_close(dlt_open(url_of(&g_https, "https", ""), &i));
}

/* Ids and tokens with JSON-hostile but valid UTF-8 bytes go through exactly; any reply bytes
 * come back exactly (base64); arguments that are not UTF-8 are refused before sending. */
static void test_arbitrary_bytes(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", ""), 0);
    redisContext *raw = dlt_raw_plain();
    char id[160], token[] = "tok \"quoted\" \\ / \n\t\x01\x1f \xc3\xa9 \xf0\x9f\x94\x92 OK";
    snprintf(id, sizeof id, "%s \"{x}\"\n\\\x7f \xe2\x82\xac", dlt_id("rest-bytes"));
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlock_acquire_options ao = {.token = token};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    size_t len = 0;
    char *v = dlt_raw_get(raw, id, strlen(id), &len);
    assert_int_equal(len, strlen(token));
    assert_memory_equal(v, token, len);
    free(v);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    /* A stored value that is not UTF-8 (NUL, 0xff) comes back byte for byte. */
    static const char bin[] = "\xff\xfe\x00\x80 OK T0s= \xc0";
    freeReplyObject(dlt_raw_cmd(raw, "SET %s %b", id, bin, sizeof bin - 1));
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_int_equal(info.held, 1);
    assert_memory_equal(info.holder_token, bin, sizeof bin - 1);
    /* A value that is just "OK" (a bulk string, base64-encoded by the gateway). */
    freeReplyObject(dlt_raw_cmd(raw, "SET %s OK", id));
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_string_equal(info.holder_token, "OK");
    dlt_raw_del(raw, id, strlen(id));

    /* Not UTF-8: refused with EINVAL, nothing sent, the bytes not echoed. */
    ao.token = "bad \xff\xfe token";
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_EINVAL);
    assert_msg_has("UTF-8");
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    dlock_lock_free(l);
    redisFree(raw);
    dlock_client_close(c);
}

static void test_bad_token(void **state) {
    (void)state;
    dlock_client_options o = {.rest_token = BAD_TOKEN};
    open_fails(url_of(&g_http, "http", ""), &o, DLOCK_EAUTH);
    assert_msg_has("401");
    assert_msg_has("WRONGPASS");
    dlock_client_options none = {0};
    open_fails(url_of(&g_http, "http", ""), &none, DLOCK_EAUTH);
    assert_msg_has("rest_token");
    dlock_client_options tls = {.rest_token = BAD_TOKEN, .tls_ca_file = dlt_env("DLOCK_TEST_CA")};
    open_fails(url_of(&g_https, "https", ""), &tls, DLOCK_EAUTH);
    /* dlock_client_open_env reads the token from UPSTASH_REDIS_REST_TOKEN. */
    setenv("UPSTASH_REDIS_REST_URL", url_of(&g_http, "http", ""), 1);
    setenv("UPSTASH_REDIS_REST_TOKEN", TOKEN, 1);
    dlock_client *c = NULL;
    dlt_assert_rc(dlock_client_open_env(&c, NULL), DLOCK_OK);
    dlock_client_close(c);
    setenv("UPSTASH_REDIS_REST_TOKEN", BAD_TOKEN, 1);
    dlt_assert_rc(dlock_client_open_env(&c, NULL), DLOCK_EAUTH);
    assert_no_token();
    unsetenv("UPSTASH_REDIS_REST_URL");
    unsetenv("UPSTASH_REDIS_REST_TOKEN");
}

/* A Redis error (400 {"error"}) is DLOCK_ESERVER with Redis's text, as over RESP. */
static void test_error_envelope(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", ""), 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-hash");
    freeReplyObject(dlt_raw_cmd(raw, "HSET %s f v", id));
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_ESERVER);
    assert_msg_has("WRONGTYPE");
    assert_no_token();

    /* Debounce INCR on a lock key. */
    const char *lid = dlt_id("rest-lockkey");
    dlock_lock *l = dlt_lock_new(c, lid, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlock_debounce_options o = {.wait_ms = 50, .callback = on_debounce};
    dlock_debounce *d = NULL;
    dlt_assert_rc(dlock_debounce_new(&d, c, lid, &o), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_call_sync(d, NULL, 0), DLOCK_ESERVER);
    assert_msg_has("not an integer");
    dlock_debounce_free(d);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlt_raw_del(raw, id, strlen(id));
    redisFree(raw);
    dlock_client_close(c);
}

/* Several commands in one request go to /pipeline; per-command errors stay per command. */
static void test_pipeline(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", ""), 0);
    const char *id = dlt_id("rest-pipe");
    size_t idlen = strlen(id);
    const char *a0[] = {"SET", id, "41"}, *a1[] = {"INCR", id}, *a2[] = {"HGET", id, "f"},
               *a3[] = {"MGET", id, "no-such-key-dlock"};
    size_t l0[] = {3, idlen, 2}, l1[] = {4, idlen}, l2[] = {4, idlen, 1}, l3[] = {4, idlen, 17};
    dlock__cmd cmds[] = {{3, a0, l0}, {2, a1, l1}, {3, a2, l2}, {3, a3, l3}};
    dlock__reply r[4];
    int sent = 0;
    dlt_assert_rc(dlock__client_exec(c, cmds, 4, r, &sent), DLOCK_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(r[0].type, DLOCK__REPLY_STR);
    assert_string_equal(r[0].str, "OK");
    assert_int_equal(r[1].type, DLOCK__REPLY_INT);
    assert_int_equal(r[1].integer, 42);
    assert_int_equal(r[2].type, DLOCK__REPLY_ERROR);
    assert_non_null(strstr(r[2].str, "WRONGTYPE"));
    assert_int_equal(r[3].type, DLOCK__REPLY_ARRAY);
    assert_int_equal(r[3].elements, 2);
    assert_string_equal(r[3].element[0].str, "42");
    assert_int_equal(r[3].element[1].type, DLOCK__REPLY_NIL);
    for (int i = 0; i < 4; i++) {
        dlock__reply_clear(&r[i]);
    }
    /* int64 precision survives the JSON. */
    const char *s0[] = {"SET", id, "9007199254740993"}, *s1[] = {"INCRBY", id, "1"};
    size_t sl0[] = {3, idlen, 16}, sl1[] = {6, idlen, 1};
    dlock__cmd big[] = {{3, s0, sl0}, {3, s1, sl1}};
    dlt_assert_rc(dlock__client_exec(c, big, 2, r, NULL), DLOCK_OK);
    assert_int_equal(r[1].type, DLOCK__REPLY_INT);
    assert_true(r[1].integer == 9007199254740994LL);
    dlock__reply_clear(&r[0]);
    dlock__reply_clear(&r[1]);
    const char *d0[] = {"DEL", id};
    size_t dl0[] = {3, idlen};
    dlock__cmd del = {2, d0, dl0};
    dlt_assert_rc(dlock__client_exec(c, &del, 1, r, NULL), DLOCK_OK);
    dlock__reply_clear(&r[0]);
    dlock_client_close(c);
}

/* The client sends the upstash-sync-token of the last 2xx reply, and arguments as strings. */
static void test_wire_format(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", ""), 0);
    dlock_lock *l = dlt_lock_new(c, dlt_id("rest-wire"), NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
    FILE *f = fopen(g_http.log, "r");
    assert_non_null(f);
    char *line = NULL; /* getline: a request's line can be longer than any fixed buffer */
    size_t cap = 0;
    int synced = 0, set_px = 0;
    while (getline(&line, &cap, f) != -1) {
        synced += strstr(line, " sync=gw-") != NULL;
        set_px += strstr(line, "\"NX\",\"PX\",\"10000\"]") != NULL;
        assert_non_null(strstr(line, " enc=base64 "));
        assert_null(strstr(line, TOKEN));
    }
    free(line);
    fclose(f);
    assert_true(synced > 0);
    assert_true(set_px > 0);
}

/* ---- faults ---- */

static void fault_case(const char *mode, int want, const char *word) {
    char path[64];
    snprintf(path, sizeof path, "/fault/%s", mode);
    dlock_client *c = open_rest(url_of(&g_http, "http", path), 0);
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, dlt_id("rest-fault"), NULL, &info), want);
    if (word != NULL) {
        assert_msg_has(word);
    }
    assert_no_token();
    dlock_client_close(c);
}

static void test_bad_replies(void **state) {
    (void)state;
    fault_case("malformed", DLOCK_EPROTO, "JSON");
    fault_case("truncated", DLOCK_EPROTO, "truncated");
    fault_case("shape", DLOCK_EPROTO, "result");
    fault_case("http500", DLOCK_EHTTP, "500");
    fault_case("http503", DLOCK_EHTTP, "503");
    fault_case("close", DLOCK_EIO, NULL);
    /* ... and was sent once: a request that got no reply is never resent blindly (it may have
     * run). The client's first connection is reused, which is when curl would resend. */
    FILE *f = fopen(g_http.log, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int sent = 0;
    while (getline(&line, &cap, f) != -1) {
        sent += strncmp(line, "/fault/close ", 13) == 0 && strstr(line, "[\"ping\"]") == NULL;
    }
    free(line);
    fclose(f);
    assert_int_equal(sent, 1);
    /* The same at open: the PING's reply is checked just as strictly. */
    dlock_client_options o = {.rest_token = TOKEN};
    open_fails(url_of(&g_http, "http", "/fault-all/shape"), &o, DLOCK_EPROTO);
    open_fails(url_of(&g_http, "http", "/fault-all/http500"), &o, DLOCK_EHTTP);
    open_fails(url_of(&g_http, "http", "/no-such-route"), &o, DLOCK_EHTTP);
    assert_msg_has("404");
}

static void test_connect_failures(void **state) {
    (void)state;
    dlock_client_options o = {.rest_token = TOKEN, .connect_timeout_ms = 500};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", dlt_closed_port());
    open_fails(url, &o, DLOCK_ECONNECT);
    assert_msg_has("127.0.0.1");

    /* A peer that accepts TCP and never answers: ETIMEDOUT at open, near connect_timeout. */
    int port, fd = dlt_silent_listener(&port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    int64_t t0 = dlt_now_ms();
    open_fails(url, &o, DLOCK_ETIMEDOUT);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 450 && took < dlt_slow(1500));
    close(fd);

    t0 = dlt_now_ms();
    open_fails(url_of(&g_http, "http", "/fault-all/hang"), &o, DLOCK_ETIMEDOUT);
    took = dlt_now_ms() - t0;
    assert_true(took >= 450 && took < dlt_slow(1500));
}

static void test_command_timeout(void **state) {
    (void)state;
    dlock_client *c = open_rest(url_of(&g_http, "http", "/fault/hang"), 400);
    dlock_lock_info info;
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_inspect(c, dlt_id("rest-hang"), NULL, &info), DLOCK_ETIMEDOUT);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 380 && took < dlt_slow(1200));
    assert_msg_has("command_timeout_ms");
    assert_no_token();
    dlock_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_lock_and_debounce),
        cmocka_unit_test(test_https_lock_and_debounce),
        cmocka_unit_test(test_https_wrong_ca),
        cmocka_unit_test(test_arbitrary_bytes),
        cmocka_unit_test(test_bad_token),
        cmocka_unit_test(test_error_envelope),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_connect_failures),
        cmocka_unit_test(test_command_timeout),
    };
    return cmocka_run_group_tests_name("rest", tests, setup, teardown);
}
