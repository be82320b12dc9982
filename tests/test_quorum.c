/* Redlock (dlock_client_open_quorum) against five independent redis-servers with AOF
 * (tests/harness/quorum-env.sh), which the tests kill -9, restart, SIGSTOP and SIGCONT. */
#include "support.h"

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
    dlock_lock_free(other);
    dlock_lock_free(l);
    dlock_client_close(c);
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

int main(void) {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
