/* Redlock (dlock_client_open_quorum) against five independent redis-servers with AOF
 * (tests/harness/quorum-env.sh), which the tests kill -9, restart, SIGSTOP and SIGCONT, some of
 * them behind the tests' proxy (tests/proxy.h), which delays replies or cuts them short.
 * `test_quorum members` runs the tests whose members are of every kind dlock takes (a Cluster
 * seed, a Sentinel group, TLS, unix), against the redis, cluster and sentinel fixtures too. */
#include "proxy.h"
#include "quorum_impl.h" /* dlock__quorum_paths: which way each member request went */
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 5

/* ---- the servers ---- */

static int q_port(int i) {
    char key[32];
    snprintf(key, sizeof key, "DLOCK_Q%d_PORT", i + 1);
    return dlt_env_int(key);
}

static const char *q_url(int i) {
    char key[32];
    snprintf(key, sizeof key, "DLOCK_Q%d_URL", i + 1);
    return dlt_env_require(key);
}

static pid_t q_pid(int i) {
    char key[32];
    snprintf(key, sizeof key, "DLOCK_Q%d_PID_FILE", i + 1);
    return dlt_read_pid(dlt_env_require(key));
}

static int harness(const char *cmd, int i) {
    char num[16];
    snprintf(num, sizeof num, "%d", i + 1);
    const char *harness = getenv("DLOCK_QUORUM_HARNESS");
    assert_non_null(harness);
    const char *argv[] = {"bash", harness, cmd, dlt_env_require("DLOCK_QUORUM_DIR"), num, NULL};
    return dlt_run(argv, 30000);
}

static int state[N]; /* 0 up, 1 paused, 2 killed */

static void q_kill(int i) {
    assert_int_equal(harness("kill", i), 0);
    state[i] = 2;
}

static void q_pause(int i) {
    pid_t pid = q_pid(i);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    state[i] = 1;
}

static void q_up(int i) {
    if (state[i] == 1) {
        assert_int_equal(kill(q_pid(i), SIGCONT), 0);
    } else if (state[i] == 2) {
        assert_int_equal(harness("restart", i), 0);
    }
    state[i] = 0;
}

static void all_up(void) {
    for (int i = 0; i < N; i++) {
        q_up(i);
    }
}

/* Every test starts and ends with all servers up. */
static int setup(void **unused) {
    (void)unused;
    all_up();
    return 0;
}

static int teardown(void **unused) {
    (void)unused;
    all_up();
    return 0;
}

/* The value of key id on server i (malloc'd), or NULL. */
static char *key_on(int i, const char *id) {
    redisContext *c = dlt_raw_connect(q_port(i), NULL);
    char *v = dlt_raw_get(c, id, strlen(id), NULL);
    redisFree(c);
    return v;
}

static int holds(int i, const char *id, const char *token) {
    char *v = key_on(i, id);
    int same = v != NULL && token != NULL && strcmp(v, token) == 0;
    free(v);
    return same;
}

static int count_holding(const char *id, const char *token) {
    int n = 0;
    for (int i = 0; i < N; i++) {
        n += state[i] != 2 && state[i] != 1 && holds(i, id, token);
    }
    return n;
}

/* An acquire returns once a majority said yes; the slower servers' SETs land a little later. */
static int wait_holding(const char *id, const char *token, int want) {
    int n = 0;
    for (int64_t t0 = dlt_now_ms(); dlt_now_ms() - t0 < dlt_slow(1000); dlt_sleep_ms(5)) {
        if ((n = count_holding(id, token)) == want) {
            break;
        }
    }
    return n;
}

static void raw_set(int i, const char *id, const char *value, int px) {
    redisContext *c = dlt_raw_connect(q_port(i), NULL);
    freeReplyObject(dlt_raw_cmd(c, "SET %s %s PX %d", id, value, px));
    redisFree(c);
}

/* A quorum client on the first n servers. Under valgrind (dlt_slow) the default member timeout
 * is too short for anything: it is scaled like every other bound. */
static dlock_client *q_open_n(int n, const dlock_client_options *o) {
    const char *urls[N];
    for (int i = 0; i < n; i++) {
        urls[i] = q_url(i);
    }
    dlock_client_options slow = {0};
    if (o == NULL && dlt_slow(1) > 1) {
        slow.quorum_timeout_ms = (int)dlt_slow(100);
        o = &slow;
    }
    dlock_client *c = NULL;
    int rc = dlock_client_open_quorum(&c, urls, (size_t)n, o);
    if (rc != DLOCK_OK) {
        fail_msg("dlock_client_open_quorum = %d: %s", rc, dlock_errmsg());
    }
    return c;
}

static dlock_client *q_open(const dlock_client_options *o) {
    return q_open_n(N, o);
}

/* A quorum client on exactly these URLs. */
static dlock_client *q_open_urls(const char *const *urls, int n, const dlock_client_options *o) {
    dlock_client *c = NULL;
    int rc = dlock_client_open_quorum(&c, urls, (size_t)n, o);
    if (rc != DLOCK_OK) {
        fail_msg("dlock_client_open_quorum = %d: %s", rc, dlock_errmsg());
    }
    return c;
}

/* Requests to member i (-1: all) of c so far that went the poll path (*threaded: the member's
 * thread). */
static long polled_i(dlock_client *c, int i, long *threaded) {
    long p, t;
    dlock__quorum_paths(c, i, &p, &t);
    if (threaded != NULL) {
        *threaded = t;
    }
    return p;
}

static long polled(dlock_client *c, long *threaded) {
    return polled_i(c, -1, threaded);
}

static void proxy_url(char *buf, size_t size, const dlt_proxy *p) {
    snprintf(buf, size, "redis://127.0.0.1:%d", dlt_proxy_port(p));
}

/* ---- tests ---- */

static void test_open_rules(void **unused) {
    (void)unused;
    dlock_client *c = (dlock_client *)1;
    const char *urls[] = {q_url(0), q_url(1), q_url(0)};
    dlt_assert_rc(dlock_client_open_quorum(&c, urls, 2, NULL), DLOCK_EINVAL);
    assert_null(c);
    assert_true(dlt_contains(dlock_errmsg(), "3 to"));
    dlt_assert_rc(dlock_client_open_quorum(&c, urls, 3, NULL), DLOCK_EINVAL);
    assert_true(dlt_contains(dlock_errmsg(), "twice"));
    const char *bad[] = {q_url(0), q_url(1), "redis://127.0.0.1:99999"};
    dlt_assert_rc(dlock_client_open_quorum(&c, bad, 3, NULL), DLOCK_EINVAL);
    assert_null(c);

    c = q_open(NULL);
    assert_true(dlt_contains(dlock_client_server(c), "redlock:redis://127.0.0.1:"));
    dlock_debounce_options dopt = {.callback = (dlock_debounce_fn)1};
    dlock_debounce *d = NULL;
    dlt_assert_rc(dlock_debounce_new(&d, c, "x", &dopt), DLOCK_EINVAL);
    assert_true(dlt_contains(dlock_errmsg(), "Redlock"));
    dlock_client_close(c);
}

/* An even number of servers: four need three (a majority), so they tolerate one failure only. */
static void test_four_servers(void **unused) {
    (void)unused;
    dlock_client *c = q_open_n(4, NULL);
    const char *id = dlt_id("q-four");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    q_kill(0);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    q_kill(1);
    int rc = dlock_lock_acquire(l, NULL);
    assert_true(rc < 0);
    /* Decided as soon as 3 yes became impossible, so the second live answer may not be in. */
    assert_true(dlt_contains(dlock_errmsg(), "of 4 servers said yes, 3 needed"));
    assert_true(dlt_contains(dlock_errmsg(), "0 said no"));
    assert_null(key_on(2, id));
    assert_null(key_on(3, id));
    /* Two held by another of four: a majority of yes is impossible: NOT_ACQUIRED. */
    all_up();
    raw_set(0, id, "someone-else", 10000);
    raw_set(1, id, "someone-else", 10000);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_NOT_ACQUIRED);
    assert_null(key_on(2, id));
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* Two of five down at open: still opens (a majority answers) and locks. */
static void test_open_with_minority_down(void **unused) {
    (void)unused;
    q_kill(0);
    q_kill(3);
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-open-down");
    dlock_lock *l = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_int_equal(wait_holding(id, dlock_lock_token(l), 3), 3);
    /* The servers come back; the next acquire uses them again (reopened by their threads). */
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    all_up();
    dlt_sleep_ms(600); /* past the reopen interval */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_int_equal(wait_holding(id, dlock_lock_token(l), 5), 5);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static void test_cycle_on_all(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-cycle");
    dlock_lock_options lo = {.lease_ms = 5000};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlt_is_uuid_v4(dlock_lock_token(l)));
    assert_int_equal(wait_holding(id, dlock_lock_token(l), 5), 5);
    int64_t v = dlock_lock_validity_ms(l);
    assert_true(v > 4800 && v <= 5000 - 52);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, dlock_lock_token(l), &info), DLOCK_OK);
    assert_true(info.held && info.token_matches && info.remaining_ms > 4500);
    dlt_assert_rc(dlock_lock_extend(l, 5000), DLOCK_OK);
    assert_true(dlock_lock_validity_ms(l) > 9000);
    redisContext *raw = dlt_raw_connect(q_port(2), NULL);
    assert_true(dlt_raw_pttl(raw, id, strlen(id)) > 9000);
    redisFree(raw);

    /* A second handle: not acquired (every server answered "held"), and it left nothing. */
    dlock_lock_options one = {.attempts = 1};
    dlock_lock *other = dlt_lock_new(c, id, &one);
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_NOT_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    for (int i = 0; i < N; i++) {
        char *k = key_on(i, id);
        assert_null(k);
    }
    dlt_assert_rc(dlock_lock_release(l), DLOCK_NOT_HELD);
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_FREE);
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_false(info.held);
    /* Five healthy TCP servers: every member request of the seven calls above that reach the
     * servers (a release or status of a handle that holds nothing does not) went the poll path,
     * and so did the undo of the refused acquire on servers that had not answered yet. */
    long threaded;
    assert_true(polled(c, &threaded) >= 5 * 7);
    assert_int_equal(threaded, 0);
    dlock_lock_free(other);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* The poll path sends scripts as EVALSHA and, on NOSCRIPT (the servers' caches flushed), sends
 * them in full on the same connection, within the same round. */
static void test_noscript_on_poll_path(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-noscript");
    dlock_lock_options lo = {.attempts = 1, .fencing = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) {
            redisContext *raw = dlt_raw_connect(q_port(i), NULL);
            freeReplyObject(dlt_raw_cmd(raw, "SCRIPT FLUSH"));
            redisFree(raw);
        }
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        assert_true(dlock_lock_fencing_token(l) >= 1);
        dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK);
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    }
    long threaded;
    assert_true(polled(c, &threaded) > 0);
    assert_int_equal(threaded, 0);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* Server 1 behind a proxy that delivers its replies `delay_ms` late (once a connection has sent
 * a SET); the others direct. */
static dlock_client *open_with_late_first(dlt_proxy **px, int64_t delay_ms, int timeout_ms) {
    *px = dlt_proxy_start(q_port(0));
    dlt_proxy_delay_after(*px, "SET", delay_ms);
    static char first[64];
    proxy_url(first, sizeof first, *px);
    const char *urls[N] = {first, q_url(1), q_url(2), q_url(3), q_url(4)};
    dlock_client_options co = {.quorum_timeout_ms = timeout_ms};
    return q_open_urls(urls, N, &co);
}

/* A server that answers after the round was decided keeps its connection on the poll path, and
 * its late reply is dropped before its next one is read. Here the release needs that server's
 * answer (two others are paused, and time out): taking the acquire's late "OK" for the release's
 * answer would fail the release. */
static void test_late_reply_is_dropped(void **unused) {
    (void)unused;
    dlt_proxy *px;
    dlock_client *c = open_with_late_first(&px, 150, (int)dlt_slow(1000));
    const char *id = dlt_id("q-late");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    for (int k = 0; k < 3; k++) {
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK); /* decided before server 1 answers */
        long t0, t1, p0 = polled_i(c, 0, &t0);
        q_pause(3);
        q_pause(4);
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        /* Server 1's connection was reused for it: no thread, no reconnect. */
        assert_int_equal(polled_i(c, 0, &t1), p0 + 1);
        assert_int_equal(t1, t0);
        assert_null(key_on(0, id));
        q_up(3);
        q_up(4);
        dlt_sleep_ms(50);
    }
    /* The connection with the late reply breaks before the next request: that request finds it
     * dead (not merely busy) and reconnects on server 1's thread, so its answer still counts. */
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    long t0, t1;
    polled_i(c, 0, &t0);
    dlt_proxy_cut_all(px);
    dlt_sleep_ms(100);
    q_pause(3);
    q_pause(4);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    polled_i(c, 0, &t1);
    assert_int_equal(t1, t0 + 1);
    assert_null(key_on(0, id));
    dlock_lock_free(l);
    dlock_client_close(c);
    dlt_proxy_stop(px);
}

/* A server that answers only after the member timeout counts as failed and is named, the call
 * does not wait for it, and its connection is closed, so that its late reply is never read as
 * the answer to another request. */
static void test_reply_after_member_timeout(void **unused) {
    (void)unused;
    dlt_proxy *px;
    const int timeout = (int)dlt_slow(100);
    dlock_client *c = open_with_late_first(&px, 4 * timeout, timeout);
    const char *id = dlt_id("q-too-late");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    raw_set(3, id, "someone-else", 10000);
    raw_set(4, id, "someone-else", 10000);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_lock_acquire(l, NULL); /* 2 yes, 2 no: server 1 decides, and is too late */
    int64_t took = dlt_now_ms() - t0;
    assert_true(rc < 0);
    char port[16];
    snprintf(port, sizeof port, ":%d", dlt_proxy_port(px));
    const char *msg = dlock_errmsg();
    assert_true(dlt_contains(msg, "2 said no, 1 failed"));
    assert_true(dlt_contains(msg, port));
    assert_true(dlt_contains(msg, "no reply within"));
    assert_true(took >= timeout && took < 3 * timeout);
    assert_null(key_on(1, id)); /* the failed attempt's undo */
    assert_null(key_on(2, id));
    assert_null(key_on(0, id)); /* server 1 ran the SET; the undo (a new connection) deleted it */
    /* Every server's answer counts for inspect: a failed one would leave it undecided (2 held
     * + 1 failed could be a majority). So server 1 answered, and with its own reply. */
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_false(info.held);
    /* With the others free, server 1 is not needed: the acquire is decided without it. */
    for (int i = 3; i < N; i++) {
        redisContext *raw = dlt_raw_connect(q_port(i), NULL);
        dlt_raw_del(raw, id, strlen(id));
        redisFree(raw);
    }
    for (int k = 0; k < 3; k++) {
        t0 = dlt_now_ms();
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        assert_true(dlt_now_ms() - t0 < timeout);
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    }
    dlock_lock_free(l);
    dlock_client_close(c);
    dlt_proxy_stop(px);
}

/* A connection cut in the middle of a reply (part of it read, then EOF) fails that member only,
 * named; the next request reconnects. Both a status reply (SET) and an array (the fenced
 * acquire's script) are cut short. */
static void test_reply_cut_midway(void **unused) {
    (void)unused;
    dlt_proxy *px = dlt_proxy_start(q_port(0));
    char first[64], port[16];
    proxy_url(first, sizeof first, px);
    snprintf(port, sizeof port, ":%d", dlt_proxy_port(px));
    const char *urls[N] = {first, q_url(1), q_url(2), q_url(3), q_url(4)};
    dlock_client *c = q_open_urls(urls, N, NULL);
    for (int fenced = 0; fenced < 2; fenced++) {
        const char *id = dlt_id("q-cut");
        dlock_lock_options lo = {.attempts = 1, .fencing = fenced};
        dlock_lock *l = dlt_lock_new(c, id, &lo);
        if (fenced) { /* load the scripts, so that the cut hits the script's reply */
            dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
            dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        }
        raw_set(3, id, "someone-else", 10000);
        raw_set(4, id, "someone-else", 10000);
        int cuts = dlt_proxy_cuts_done(px);
        dlt_proxy_cut_next_reply_after(px, fenced ? 6 : 2); /* "*2\r\n:1" / "+O" */
        int rc = dlock_lock_acquire(l, NULL);
        assert_true(rc < 0);
        assert_int_equal(dlt_proxy_cuts_done(px), cuts + 1);
        const char *msg = dlock_errmsg();
        assert_true(dlt_contains(msg, "2 said no, 1 failed"));
        assert_true(dlt_contains(msg, port));
        assert_true(dlt_contains(msg, "connection"));
        for (int i = 0; i < 3; i++) {
            assert_null(key_on(i, id)); /* the undo reached server 1 on a new connection */
        }
        for (int i = 3; i < N; i++) {
            redisContext *raw = dlt_raw_connect(q_port(i), NULL);
            dlt_raw_del(raw, id, strlen(id));
            redisFree(raw);
        }
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        assert_int_equal(wait_holding(id, dlock_lock_token(l), 5), 5);
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        dlock_lock_free(l);
    }
    dlock_client_close(c);
    dlt_proxy_stop(px);
}

/* The majority holds with two of five down (one killed, one silent). */
static void test_two_down_majority_holds(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-two-down");
    dlock_lock_options lo = {.attempts = 1, .fencing = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    q_kill(1);
    q_pause(4);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlock_lock_fencing_token(l) >= 1);
    assert_int_equal(wait_holding(id, dlock_lock_token(l), 3), 3);
    dlt_assert_rc(dlock_lock_extend(l, 1000), DLOCK_OK);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    for (int i = 0; i < N; i++) {
        if (state[i] == 0) {
            char *k = key_on(i, id);
            assert_null(k);
        }
    }
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* Three of five down: an error naming each failed server, never NOT_ACQUIRED, and no key of the
 * call is left on the two live ones. */
static void test_three_down_is_an_error(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-three-down");
    dlock_lock_options lo = {.attempts = 2, .delay_ms = 20};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    q_kill(0);
    q_kill(2);
    q_pause(3);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_lock_acquire(l, NULL);
    int64_t took = dlt_now_ms() - t0;
    assert_true(rc < 0);
    const char *msg = dlock_errmsg();
    for (int i = 0; i < N; i++) {
        char port[16];
        snprintf(port, sizeof port, ":%d", q_port(i));
        assert_true(dlt_contains(msg, port) == (state[i] != 0));
    }
    assert_true(dlt_contains(msg, "2 of 5 servers said yes, 3 needed"));
    /* Two attempts, each bounded by the member timeout (100 ms), plus the pause and the undo. */
    assert_true(took < dlt_slow(600));
    assert_null(key_on(1, id));
    assert_null(key_on(4, id));
    assert_null(dlock_lock_token(l));
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* One server silent (SIGSTOP): acquire returns as soon as the others form a majority, far
 * within the lease and within the member timeout. */
static void test_silent_server_does_not_delay(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    dlock_lock_options lo = {.lease_ms = 10000, .attempts = 1, .fencing = 1};
    q_pause(2);
    int64_t worst = 0;
    for (int k = 0; k < 20; k++) {
        dlock_lock *l = dlt_lock_new(c, dlt_id("q-silent"), &lo);
        int64_t t0 = dlt_now_ms();
        dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
        int64_t took = dlt_now_ms() - t0;
        worst = took > worst ? took : worst;
        assert_true(dlock_lock_validity_ms(l) > 10000 - 102 - dlt_slow(50));
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        dlock_lock_free(l);
    }
    print_message("slowest acquire with a silent server: %lld ms\n", (long long)worst);
    assert_true(polled(c, NULL) > 0); /* the four live servers on the poll path */
    /* The member timeout is 100 ms for a 10 s lease: deciding without the silent server means
     * well under it (a loaded machine may add tens of ms). */
    assert_true(worst < dlt_slow(80));
    dlock_client_close(c);
}

/* Someone else holds a majority: NOT_ACQUIRED, and our key is left on none of the others. */
static void test_split_vote(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-split");
    dlock_lock_options lo = {.attempts = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    for (int i = 0; i < 3; i++) {
        raw_set(i, id, "someone-else", 10000);
    }
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_NOT_ACQUIRED);
    for (int i = 3; i < N; i++) {
        assert_null(key_on(i, id));
    }
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(c, id, NULL, &info), DLOCK_OK);
    assert_true(info.held);
    assert_string_equal(info.holder_token, "someone-else");

    /* Someone holds two: we get the other three, a majority. */
    const char *id2 = dlt_id("q-split2");
    dlock_lock *l2 = dlt_lock_new(c, id2, &lo);
    raw_set(0, id2, "someone-else", 10000);
    raw_set(1, id2, "someone-else", 10000);
    dlt_assert_rc(dlock_lock_acquire(l2, NULL), DLOCK_OK);
    assert_int_equal(wait_holding(id2, dlock_lock_token(l2), 3), 3);
    dlt_assert_rc(dlock_lock_release(l2), DLOCK_OK);

    /* Someone holds two and one server is down: two yes, two no, one failed. The failure kept
     * us from a majority, so this is an error, not "held by another". */
    const char *id3 = dlt_id("q-split3");
    dlock_lock *l3 = dlt_lock_new(c, id3, &lo);
    raw_set(0, id3, "someone-else", 10000);
    raw_set(1, id3, "someone-else", 10000);
    q_kill(4);
    int rc = dlock_lock_acquire(l3, NULL);
    assert_true(rc < 0);
    assert_true(dlt_contains(dlock_errmsg(), "2 said no, 1 failed"));
    assert_null(key_on(2, id3));
    assert_null(key_on(3, id3));
    dlock_lock_free(l3);
    dlock_lock_free(l2);
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* Fencing tokens strictly increase over many acquisitions while a different random minority is
 * down each time: paused (SIGSTOP) or killed and restarted from its AOF. A per-server INCR
 * taking the maximum over the majority fails this within a few rounds. */
static void test_fencing_survives_minorities(void **unused) {
    (void)unused;
    /* A short lease, so that a key a paused server sets after it resumes soon expires; the member
     * timeout is set apart from it, so that slow runs (valgrind) do not turn into failures. */
    dlock_client_options co = {.quorum_timeout_ms = (int)dlt_slow(50)};
    dlock_client *c = q_open(&co);
    const char *id = dlt_id("q-fence");
    dlock_lock_options lo = {
        .lease_ms = 250 + dlt_slow(50), .attempts = 3, .delay_ms = 300, .fencing = 1};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    const char *env = getenv("DLOCK_QUORUM_ROUNDS");
    const int rounds = env != NULL ? atoi(env) : dlt_slow(1) > 1 ? 40 : 200;
    srand((unsigned)getpid());
    int64_t last = 0;
    int paused = 0, killed = 0;
    for (int k = 0; k < rounds; k++) {
        int down = 1 + rand() % 2;
        for (int d = 0; d < down;) {
            int i = rand() % N;
            if (state[i] == 0) {
                if (rand() % 2) {
                    q_pause(i);
                    paused++;
                } else {
                    q_kill(i);
                    killed++;
                }
                d++;
            }
        }
        int rc = dlock_lock_acquire(l, NULL);
        if (rc != DLOCK_OK) {
            fail_msg("round %d: acquire = %d: %s", k, rc, dlock_errmsg());
        }
        int64_t f = dlock_lock_fencing_token(l);
        if (f <= last) {
            fail_msg("round %d: fencing token %lld after %lld", k, (long long)f, (long long)last);
        }
        last = f;
        char token[64];
        snprintf(token, sizeof token, "%s", dlock_lock_token(l));
        dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
        for (int i = 0; i < N; i++) {
            int was_paused = state[i] == 1;
            q_up(i);
            if (was_paused) {
                /* Once resumed, a paused server runs the SET it was sent and the release sent
                 * on another connection in either order: delete such a leftover key of this
                 * (released) hold, as its expiry would a little later. */
                redisContext *raw = dlt_raw_connect(q_port(i), NULL);
                freeReplyObject(dlt_raw_cmd(raw, "EVAL %s 1 %s %s",
                                            "if redis.call('get', KEYS[1]) == ARGV[1] then "
                                            "return redis.call('del', KEYS[1]) end return 0",
                                            id, token));
                redisFree(raw);
            }
        }
    }
    print_message("%d rounds: last fencing token %lld, %d pauses, %d kills\n", rounds,
                  (long long)last, paused, killed);
    dlock_lock_free(l);
    dlock_client_close(c);
}

static atomic_int lost_reason;

static void on_lost(dlock_lock *l, int reason, void *ud) {
    (void)l;
    (void)ud;
    atomic_store(&lost_reason, reason);
}

/* Auto-renew keeps a Redlock alive over several leases with two servers down, and reports the
 * loss once the majority is gone: a third server down (EXPIRED), or the key taken on a majority
 * (TAKEN). */
static void test_auto_renew_across_quorum(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    dlock_lock_options lo = {.lease_ms = 600, .auto_renew = 1, .on_lost = on_lost};
    const char *id = dlt_id("q-renew");
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    atomic_store(&lost_reason, 0);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    q_kill(0);
    q_pause(1);
    for (int k = 0; k < 8; k++) {
        dlt_sleep_ms(250);
        assert_int_equal(atomic_load(&lost_reason), 0);
        assert_true(dlock_lock_validity_ms(l) > 0);
    }
    redisContext *raw = dlt_raw_connect(q_port(3), NULL);
    long long pttl = dlt_raw_pttl(raw, id, strlen(id));
    redisFree(raw);
    assert_true(pttl > 0 && pttl <= 600);
    q_kill(2); /* three of five down: no majority can confirm a renewal */
    int64_t t0 = dlt_now_ms();
    while (atomic_load(&lost_reason) == 0 && dlt_now_ms() - t0 < dlt_slow(3000)) {
        dlt_sleep_ms(10);
    }
    assert_int_equal(atomic_load(&lost_reason), DLOCK_LOST_EXPIRED);
    assert_true(dlt_now_ms() - t0 <= dlt_slow(800));
    assert_int_equal(dlock_lock_validity_ms(l), 0);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_FREE);
    dlock_lock_free(l);

    /* TAKEN: a majority of the keys replaced behind the holder's back. */
    all_up();
    id = dlt_id("q-renew-taken");
    l = dlt_lock_new(c, id, &lo);
    atomic_store(&lost_reason, 0);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    for (int i = 0; i < 3; i++) {
        raw_set(i, id, "thief", 5000);
    }
    t0 = dlt_now_ms();
    while (atomic_load(&lost_reason) == 0 && dlt_now_ms() - t0 < dlt_slow(3000)) {
        dlt_sleep_ms(10);
    }
    assert_int_equal(atomic_load(&lost_reason), DLOCK_LOST_TAKEN);
    assert_true(dlt_now_ms() - t0 <= dlt_slow(400));
    dlock_lock_free(l);
    dlock_client_close(c);
}

/* A blocking acquire polls until the holder's keys go, and stops at once when no majority
 * answers. */
static void test_wait_polls(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    const char *id = dlt_id("q-wait");
    dlock_lock_options lo = {.lease_ms = 5000};
    dlock_lock *holder = dlt_lock_new(c, id, &lo);
    dlock_lock *waiter = dlt_lock_new(c, id, &lo);
    dlock_lock_options shortl = {.lease_ms = 300};
    dlock_lock *brief = dlt_lock_new(c, id, &shortl);
    dlt_assert_rc(dlock_lock_acquire(brief, NULL), DLOCK_OK);
    dlock_acquire_options wo = {.wait_ms = 3000};
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(waiter, &wo), DLOCK_OK);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 250 && took < dlt_slow(1000));
    dlt_assert_rc(dlock_lock_release(waiter), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    wo.wait_ms = 400;
    t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_acquire(waiter, &wo), DLOCK_NOT_ACQUIRED);
    assert_true(dlt_now_ms() - t0 >= 400);
    q_kill(0);
    q_kill(1);
    q_kill(2);
    wo.wait_ms = 5000;
    t0 = dlt_now_ms();
    assert_true(dlock_lock_acquire(waiter, &wo) < 0);
    assert_true(dlt_now_ms() - t0 < dlt_slow(500));
    dlock_lock_free(brief);
    dlock_lock_free(waiter);
    dlock_lock_free(holder);
    dlock_client_close(c);
}

/* Threads sharing one quorum client run their calls at once (each takes its own pooled
 * connection to every server, or goes to a server's thread when there is none yet). */
typedef struct sharer {
    dlock_client *c;
    int k, cycles, failures;
    char msg[256];
} sharer;

static void *share_main(void *arg) {
    sharer *s = arg;
    dlock_lock_options lo = {.attempts = 1, .fencing = s->k % 2};
    char id[96];
    snprintf(id, sizeof id, "%s", dlt_id("q-share"));
    dlock_lock *l = NULL;
    if (dlock_lock_new(&l, s->c, id, &lo) != DLOCK_OK) {
        s->failures = s->cycles;
        return NULL;
    }
    for (int i = 0; i < s->cycles; i++) {
        int rc = dlock_lock_acquire(l, NULL);
        if (rc == DLOCK_OK) {
            rc = dlock_lock_release(l);
        }
        if (rc != DLOCK_OK && s->failures++ == 0) {
            snprintf(s->msg, sizeof s->msg, "%s: %s", dlock_strerror(rc), dlock_errmsg());
        }
    }
    dlock_lock_free(l);
    return NULL;
}

static void test_threads_share_client(void **unused) {
    (void)unused;
    dlock_client *c = q_open(NULL);
    enum { THREADS = 4 };
    sharer s[THREADS];
    pthread_t t[THREADS];
    for (int k = 0; k < THREADS; k++) {
        s[k] = (sharer){.c = c, .k = k, .cycles = (int)(dlt_slow(1) > 1 ? 20 : 200)};
        assert_int_equal(pthread_create(&t[k], NULL, share_main, &s[k]), 0);
    }
    for (int k = 0; k < THREADS; k++) {
        pthread_join(t[k], NULL);
    }
    for (int k = 0; k < THREADS; k++) {
        if (s[k].failures != 0) {
            fail_msg("thread %d: %d of %d cycles failed, the first: %s", k, s[k].failures,
                     s[k].cycles, s[k].msg);
        }
    }
    long threaded, p = polled(c, &threaded);
    print_message("%ld member requests on the poll path, %ld on the servers' threads\n", p,
                  threaded);
    assert_true(p > 0);
    dlock_client_close(c);
}

/* ---- members of every kind (issue 12): `test_quorum members` ---- */

/* 1 if the member (a client of its own) holds id with token (NULL: with any token). */
static int member_holds(dlock_client *mc, const char *id, const char *token) {
    dlock_lock_info info;
    dlt_assert_rc(dlock_lock_inspect(mc, id, token, &info), DLOCK_OK);
    return info.held && (token == NULL || info.token_matches);
}

/* Waits until `want` of the members hold id with token (the slower ones land after the call). */
static int members_holding(dlock_client *const *mc, int n, const char *id, const char *token,
                           int want) {
    int held = 0;
    for (int64_t t0 = dlt_now_ms(); dlt_now_ms() - t0 < dlt_slow(2000); dlt_sleep_ms(10)) {
        held = 0;
        for (int i = 0; i < n; i++) {
            held += member_holds(mc[i], id, token);
        }
        if (held == want) {
            break;
        }
    }
    return held;
}

/* A Redlock whose members are a TCP server, a Redis Cluster (seed URL), a Sentinel group, a TLS
 * server (behind the proxy, database 2) and a unix socket (database 3): the Cluster and Sentinel
 * members go through their threads (their routing needs the whole exec), the others the poll
 * path, TLS included. Each member counts: with two members held by someone else, the lock is
 * taken only with the Cluster's and the Sentinel group's yes. A TLS reply cut in the middle of
 * a record fails that member only. */
static void test_members_of_every_kind(void **unused) {
    (void)unused;
    const char *ca = dlt_env_require("DLOCK_TEST_CA");
    char tls_port[16];
    snprintf(tls_port, sizeof tls_port, "%s", dlt_env_require("DLOCK_TEST_TLS_PORT"));
    dlt_proxy *px = dlt_proxy_start(atoi(tls_port));
    char tls[128], unix_url[600];
    snprintf(tls, sizeof tls, "rediss://127.0.0.1:%d/2", dlt_proxy_port(px));
    snprintf(unix_url, sizeof unix_url, "%s?db=3", dlt_env_require("DLOCK_TEST_UNIX"));
    const char *urls[N] = {q_url(0), dlt_env_require("DLOCK_TEST_CLUSTER_URL"),
                           dlt_env_require("DLOCK_TEST_SENTINEL_URL"), tls, unix_url};
    dlock_client_options co = {.tls_ca_file = ca, .quorum_timeout_ms = (int)dlt_slow(200)};
    dlock_client *c = q_open_urls(urls, N, &co);
    const char *shown = dlock_client_server(c);
    assert_true(dlt_contains(shown, "redis-sentinel://"));
    assert_true(dlt_contains(shown, dlt_env_require("DLOCK_TEST_SENTINEL_MASTER")));
    assert_true(dlt_contains(shown, "rediss://"));
    assert_true(dlt_contains(shown, "unix://"));
    dlock_client *mc[N];
    for (int i = 0; i < N; i++) {
        mc[i] = dlt_open(urls[i], &co);
    }

    const char *id = dlt_id("q-members");
    /* A lease longer than members_holding's wait, also under valgrind: a count that falls back
     * to 0 because the lease ran out would hide whether every member got the lock. */
    dlock_lock_options lo = {.attempts = 1, .fencing = 1, .lease_ms = 60000};
    dlock_lock *l = dlt_lock_new(c, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_true(dlock_lock_fencing_token(l) >= 1);
    assert_int_equal(members_holding(mc, N, id, dlock_lock_token(l), N), N);
    dlt_assert_rc(dlock_lock_extend(l, 2000), DLOCK_OK);
    dlock_state st;
    dlt_assert_rc(dlock_lock_status(l, &st), DLOCK_OK);
    assert_int_equal(st, DLOCK_ACQUIRED);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    assert_int_equal(members_holding(mc, N, id, NULL, 0), 0);
    long threaded[N];
    for (int i = 0; i < N; i++) {
        long p = polled_i(c, i, &threaded[i]);
        /* TCP, TLS and unix on the poll path; Cluster and Sentinel on their threads. */
        assert_true(i == 1 || i == 2 ? p == 0 && threaded[i] > 0 : p > 0 && threaded[i] == 0);
    }

    /* Someone else holds the TLS and unix members: the Cluster's and Sentinel's yes decide. */
    dlock_lock_options other_o = {.attempts = 1, .lease_ms = 20000};
    dlock_lock *other[3] = {dlt_lock_new(mc[3], id, &other_o), dlt_lock_new(mc[4], id, &other_o),
                            dlt_lock_new(mc[0], id, &other_o)};
    dlt_assert_rc(dlock_lock_acquire(other[0], NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(other[1], NULL), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_int_equal(members_holding(mc, 3, id, dlock_lock_token(l), 3), 3);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    /* ... and with the TCP server down, they are one short: an error naming it, not "held". */
    q_kill(0);
    int rc = dlock_lock_acquire(l, NULL);
    assert_true(rc < 0);
    char port[24];
    snprintf(port, sizeof port, ":%d", q_port(0));
    assert_true(
        dlt_contains(dlock_errmsg(), "2 of 5 servers said yes, 3 needed; 2 said no, 1 failed"));
    assert_true(dlt_contains(dlock_errmsg(), port));
    assert_int_equal(members_holding(mc + 1, 2, id, NULL, 0), 0); /* undone on both */
    q_up(0);

    /* A TLS reply cut short (3 bytes of a record, then EOF) when its answer is needed: the TCP
     * and unix members are held by someone else now, and the TLS member is free. */
    dlt_assert_rc(dlock_lock_release(other[0]), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(other[2], NULL), DLOCK_OK);
    int cuts = dlt_proxy_cuts_done(px);
    dlt_proxy_cut_next_reply_after(px, 3);
    rc = dlock_lock_acquire(l, NULL);
    assert_true(rc < 0);
    assert_int_equal(dlt_proxy_cuts_done(px), cuts + 1);
    snprintf(port, sizeof port, ":%d/2", dlt_proxy_port(px));
    assert_true(
        dlt_contains(dlock_errmsg(), "2 of 5 servers said yes, 3 needed; 2 said no, 1 failed"));
    assert_true(dlt_contains(dlock_errmsg(), port));
    assert_false(member_holds(mc[3], id, NULL)); /* undone on a new connection */
    dlt_assert_rc(dlock_lock_release(other[1]), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(other[2]), DLOCK_OK);
    dlt_assert_rc(dlock_lock_acquire(l, NULL), DLOCK_OK);
    assert_int_equal(members_holding(mc, N, id, dlock_lock_token(l), N), N);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);

    for (int i = 0; i < 3; i++) {
        dlock_lock_free(other[i]);
    }
    dlock_lock_free(l);
    for (int i = 0; i < N; i++) {
        dlock_client_close(mc[i]);
    }
    dlock_client_close(c);
    dlt_proxy_stop(px);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_four_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_with_minority_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle_on_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_down_majority_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_down_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_does_not_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_vote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_renew_across_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fencing_survives_minorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_on_poll_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reply_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_after_member_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_cut_midway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_client, setup, teardown),
    };
    const struct CMUnitTest members[] = {
        cmocka_unit_test_setup_teardown(test_members_of_every_kind, setup, teardown),
    };
    if (argc > 1 && strcmp(argv[1], "members") == 0) {
        return cmocka_run_group_tests_name("members", members, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
