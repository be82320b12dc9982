/* test_debounce: the distributed debounce against a real server. The ports of upstash/lock's
 * src/debounce.test.ts first, then the synchronous form, argument copies, sharing between handles
 * and processes, the counter key's wire format and expiry, and bad input. */
#include "support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the callbacks saw. Written from the debounce thread, read by the test after a flush, so
 * it is guarded by a mutex. */
struct seen {
    pthread_mutex_t mu;
    int calls;
    char last[2048];
    size_t last_len;
    pthread_t thread;
    int64_t sleep_ms; /* the callback sleeps this long (the seed's async callback) */
    int errors;
    int last_rc;          /* of the last error_callback */
    char last_err[512];   /* its message */
    pthread_t err_thread; /* the thread it ran on */
};

static void seen_init(struct seen *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void seen_destroy(struct seen *s) {
    pthread_mutex_destroy(&s->mu);
}

static int seen_calls(struct seen *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void on_call(const void *arg, size_t len, void *userdata) {
    struct seen *s = userdata;
    if (s->sleep_ms > 0) {
        dlt_sleep_ms(s->sleep_ms);
    }
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->last_len = len;
    if (len <= sizeof s->last && (len == 0 || arg != NULL)) {
        if (len > 0) {
            memcpy(s->last, arg, len);
        }
    } else {
        s->errors++;
    }
    s->thread = pthread_self();
    pthread_mutex_unlock(&s->mu);
}

static void on_error(int rc, const char *msg, void *userdata) {
    struct seen *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->errors++;
    s->last_rc = rc;
    snprintf(s->last_err, sizeof s->last_err, "%s", msg != NULL ? msg : "(null)");
    s->err_thread = pthread_self();
    pthread_mutex_unlock(&s->mu);
}

struct ctx {
    dlock_client *client;
    redisContext *raw;
};

static int setup(void **state) {
    struct ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return -1;
    }
    c->client = dlt_open_plain();
    c->raw = dlt_raw_plain();
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

static dlock_debounce *debounce_new(void **state, const char *id, int64_t wait_ms, struct seen *s) {
    dlock_debounce_options o = {
        .wait_ms = wait_ms, .callback = on_call, .userdata = s, .error_callback = on_error};
    dlock_debounce *d = NULL;
    int rc = dlock_debounce_new(&d, C->client, id, &o);
    if (rc != DLOCK_OK) {
        fail_msg("dlock_debounce_new = %d (%s): %s", rc, dlock_strerror(rc), dlock_errmsg());
    }
    assert_non_null(d);
    return d;
}

/* ---- Ports of upstash/lock src/debounce.test.ts ------------------------------------------- */

/* "Debounced function is only called once per wait time" */
static void test_seed_called_once(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-once"), 1000, &s);
    int64_t t0 = dlt_now_ms();
    for (int i = 0; i < 10; i++) {
        dlt_assert_rc(dlock_debounce_call(d, NULL, 0), DLOCK_OK);
    }
    /* call() returns at once, like the seed's un-awaited call(). */
    assert_true(dlt_now_ms() - t0 < dlt_slow(500));
    assert_int_equal(seen_calls(&s), 0);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    int64_t took = dlt_now_ms() - t0;
    assert_int_equal(seen_calls(&s), 1);
    assert_int_equal(s.errors, 0);
    /* The ten calls wait concurrently (the seed checks after 2 s): one wait, not ten. */
    if (took < 1000 || took > dlt_slow(2000)) {
        fail_msg("a burst of 10 calls with wait 1000 was decided after %lld ms", (long long)took);
    }
    dlock_debounce_free(d);
    assert_int_equal(seen_calls(&s), 1);
    seen_destroy(&s);
}

/* "Debounced function with arguments is called correctly" */
static void test_seed_with_arguments(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-args"), 1000, &s);
    static const char *const words[] = {"Upstash", "Is", "A", "Serverless", "Database", "Provider"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        dlt_assert_rc(dlock_debounce_call(d, words[i], strlen(words[i])), DLOCK_OK);
    }
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(seen_calls(&s), 1);
    /* The seed only checks "one of the words". The calls of one handle are counted in order, so
     * the last call is the one that stays unsuperseded. */
    assert_int_equal(s.last_len, strlen("Provider"));
    assert_memory_equal(s.last, "Provider", s.last_len);
    dlock_debounce_free(d);
    seen_destroy(&s);
}

/* "Debounced async functions trigger correctly": a callback that takes as long as the wait. */
static void test_seed_slow_callback(void **state) {
    struct seen s;
    seen_init(&s);
    s.sleep_ms = 1000;
    dlock_debounce *d = debounce_new(state, dlt_id("deb-slow"), 1000, &s);
    for (int i = 0; i < 10; i++) {
        dlt_assert_rc(dlock_debounce_call(d, NULL, 0), DLOCK_OK);
    }
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    /* flush waits for the callback to return. */
    assert_int_equal(seen_calls(&s), 1);
    assert_true(dlt_now_ms() - t0 >= 1900);
    dlock_debounce_free(d);
    seen_destroy(&s);
}

/* ---- Synchronous calls --------------------------------------------------------------------- */

static void test_call_sync_alone(void **state) {
    struct seen s;
    seen_init(&s);
    const char *id = dlt_id("deb-sync");
    dlock_debounce *d = debounce_new(state, id, 300, &s);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_debounce_call_sync(d, "solo", 4), DLOCK_OK);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 300 && took < dlt_slow(1000));
    assert_int_equal(seen_calls(&s), 1);
    assert_memory_equal(s.last, "solo", 4);
    /* The callback ran on this thread, before call_sync returned. */
    assert_true(pthread_equal(s.thread, pthread_self()));

    /* Wire format: the key is the id, holding the INCR counter, and it expires. */
    char *v = dlt_raw_get(C->raw, id, strlen(id), NULL);
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
    long long pttl = dlt_raw_pttl(C->raw, id, strlen(id));
    if (pttl <= 0) {
        fail_msg("the debounce counter has no expiry (PTTL %lld)", pttl);
    }
    dlt_assert_rc(dlock_debounce_call_sync(d, "again", 5), DLOCK_OK);
    v = dlt_raw_get(C->raw, id, strlen(id), NULL);
    assert_string_equal(v, "2");
    free(v);
    assert_true(dlt_raw_pttl(C->raw, id, strlen(id)) > 0);
    dlock_debounce_free(d);
    dlt_raw_del(C->raw, id, strlen(id));
    seen_destroy(&s);
}

struct sync_call {
    dlock_debounce *d;
    const char *arg;
    int64_t start_after_ms;
    int rc;
    int64_t took;
};

static void *sync_call_main(void *p) {
    struct sync_call *sc = p;
    dlt_sleep_ms(sc->start_after_ms);
    int64_t t0 = dlt_now_ms();
    sc->rc = dlock_debounce_call_sync(sc->d, sc->arg, strlen(sc->arg));
    sc->took = dlt_now_ms() - t0;
    return NULL;
}

static void test_call_sync_superseded(void **state) {
    struct seen s;
    seen_init(&s);
    const char *id = dlt_id("deb-super");
    /* Two handles on one id, one per thread (a handle is used by one thread at a time). */
    dlock_debounce *d1 = debounce_new(state, id, 500, &s);
    dlock_debounce *d2 = debounce_new(state, id, 500, &s);
    struct sync_call a = {d1, "first", 0, -999, 0};
    struct sync_call b = {d2, "second", 150, -999, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, sync_call_main, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, sync_call_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    dlt_assert_rc(a.rc, DLOCK_SUPERSEDED);
    dlt_assert_rc(b.rc, DLOCK_OK);
    /* The superseded call still waited out its wait before deciding. */
    assert_true(a.took >= 500);
    assert_int_equal(seen_calls(&s), 1);
    assert_memory_equal(s.last, "second", 6);
    dlock_debounce_free(d1);
    dlock_debounce_free(d2);
    seen_destroy(&s);
}

static void *raw_incr_main(void *p) {
    /* Another process (e.g. @upstash/lock's Debounce) calling in: a bare INCR on the id. */
    const char *id = p;
    dlt_sleep_ms(100);
    redisContext *c = dlt_raw_plain_try(); /* on a Cluster, dlt_raw_try follows MOVED */
    if (c != NULL) {
        freeReplyObject(dlt_raw_try(c, "INCR %s", id));
    }
    redisFree(c);
    return NULL;
}

static void test_foreign_incr_supersedes(void **state) {
    struct seen s;
    seen_init(&s);
    const char *id = dlt_id("deb-foreign");
    dlock_debounce *d = debounce_new(state, id, 400, &s);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, raw_incr_main, (void *)id), 0);
    dlt_assert_rc(dlock_debounce_call_sync(d, "mine", 4), DLOCK_SUPERSEDED);
    pthread_join(t, NULL);
    assert_int_equal(seen_calls(&s), 0);
    char *v = dlt_raw_get(C->raw, id, strlen(id), NULL);
    assert_string_equal(v, "2");
    free(v);
    dlock_debounce_free(d);
    dlt_raw_del(C->raw, id, strlen(id));
    seen_destroy(&s);
}

/* ---- Asynchronous calls -------------------------------------------------------------------- */

static void test_async_runs_on_own_thread(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-thread"), 100, &s);
    dlt_assert_rc(dlock_debounce_call(d, "x", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(seen_calls(&s), 1);
    assert_false(pthread_equal(s.thread, pthread_self()));
    dlock_debounce_free(d);
    seen_destroy(&s);
}

static void test_binary_argument_is_copied(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-binary"), 200, &s);
    unsigned char arg[1500];
    for (size_t i = 0; i < sizeof arg; i++) {
        arg[i] = (unsigned char)(i * 7 + 3);
    }
    arg[0] = 0;
    arg[10] = 0;
    arg[sizeof arg - 1] = 0;
    unsigned char expect[sizeof arg];
    memcpy(expect, arg, sizeof arg);
    dlt_assert_rc(dlock_debounce_call(d, arg, sizeof arg), DLOCK_OK);
    /* The caller's buffer is free for reuse as soon as call() returns. */
    memset(arg, 0xEE, sizeof arg);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(seen_calls(&s), 1);
    assert_int_equal(s.last_len, sizeof expect);
    assert_memory_equal(s.last, expect, sizeof expect);

    /* The same for call_sync, and for an empty argument. */
    unsigned char small[4] = {0, 1, 0, 2};
    dlt_assert_rc(dlock_debounce_call_sync(d, small, sizeof small), DLOCK_OK);
    assert_int_equal(s.last_len, 4);
    assert_memory_equal(s.last, small, 4);
    dlt_assert_rc(dlock_debounce_call(d, NULL, 0), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(seen_calls(&s), 3);
    assert_int_equal(s.last_len, 0);
    assert_int_equal(s.errors, 0);
    dlock_debounce_free(d);
    seen_destroy(&s);
}

static void test_two_handles_share_decision(void **state) {
    struct seen s1, s2;
    seen_init(&s1);
    seen_init(&s2);
    const char *id = dlt_id("deb-share");
    dlock_debounce *d1 = debounce_new(state, id, 400, &s1);
    dlock_debounce *d2 = debounce_new(state, id, 400, &s2);
    dlt_assert_rc(dlock_debounce_call(d1, "a", 1), DLOCK_OK);
    dlt_sleep_ms(100);
    dlt_assert_rc(dlock_debounce_call(d2, "b", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d2), DLOCK_OK);
    /* One decision for both: only d2's call, the later one, ran. */
    assert_int_equal(seen_calls(&s1), 0);
    assert_int_equal(seen_calls(&s2), 1);
    assert_memory_equal(s2.last, "b", 1);
    dlock_debounce_free(d1);
    dlock_debounce_free(d2);
    seen_destroy(&s1);
    seen_destroy(&s2);
}

/* Issue 10, item 8: every call is counted when it is made, however long an earlier callback of
 * the same handle takes; only its decision waits. Wait 500 ms; A's first callback takes 2 s; A
 * calls again at +1.0 s, B call_syncs at +1.2 s. B's INCR comes after A's second, so A's second
 * call is superseded, as in the seed. (Counted only when A's callback returns, at +2.5 s, A's
 * second INCR would come after B's decision and both would run.) */
static void test_slow_callback_does_not_delay_counting(void **state) {
    struct seen sa, sb;
    seen_init(&sa);
    seen_init(&sb);
    sa.sleep_ms = 2000;
    const char *id = dlt_id("deb-count-now");
    dlock_debounce *a = debounce_new(state, id, 500, &sa);
    dlock_debounce *b = debounce_new(state, id, 500, &sb);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_debounce_call(a, "a1", 2), DLOCK_OK);
    dlt_sleep_ms(1000 - (dlt_now_ms() - t0));
    /* A's first callback is running now (from +0.5 s to +2.5 s). */
    dlt_assert_rc(dlock_debounce_call(a, "a2", 2), DLOCK_OK);
    dlt_sleep_ms(1200 - (dlt_now_ms() - t0));
    char *counter = dlt_raw_get(C->raw, id, strlen(id), NULL);
    int rc_b = dlock_debounce_call_sync(b, "b", 1);
    /* Checked only once both handles are freed: a failed check must not leave A's thread running
     * with `sa` gone. */
    dlock_debounce_free(a);
    dlock_debounce_free(b);
    dlt_raw_del(C->raw, id, strlen(id));
    if (counter == NULL || strcmp(counter, "2") != 0) {
        fail_msg("200 ms after A's second call the counter is %s, not 2: that call was not "
                 "counted while A's first callback ran",
                 counter != NULL ? counter : "(missing)");
    }
    free(counter);
    dlt_assert_rc(rc_b, DLOCK_OK);
    assert_int_equal(seen_calls(&sb), 1);
    assert_memory_equal(sb.last, "b", 1);
    if (seen_calls(&sa) != 1 || sa.last_len != 2 || memcmp(sa.last, "a1", 2) != 0) {
        fail_msg("A's callback ran %d times, last with \"%.*s\"; want once, with \"a1\" (B's "
                 "later call supersedes A's second)",
                 seen_calls(&sa), (int)sa.last_len, sa.last);
    }
    assert_int_equal(sa.errors + sb.errors, 0);
    seen_destroy(&sa);
    seen_destroy(&sb);
}

/* A failed INCR of an asynchronous call goes to error_callback, on the library's thread, and the
 * call is not decided as if counted. (The key holds a hash, so the INCR script fails.) */
static void test_async_count_error_reported(void **state) {
    struct seen s;
    seen_init(&s);
    const char *id = dlt_id("deb-err");
    freeReplyObject(dlt_raw_cmd(C->raw, "HSET %b f v", id, strlen(id)));
    dlock_debounce *d = debounce_new(state, id, 100, &s);
    dlt_assert_rc(dlock_debounce_call(d, "x", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_call(d, "y", 1), DLOCK_OK);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    dlock_debounce_free(d);
    dlt_raw_del(C->raw, id, strlen(id));
    assert_int_equal(seen_calls(&s), 0);
    assert_int_equal(s.errors, 2);
    dlt_assert_rc(s.last_rc, DLOCK_ESERVER);
    if (!dlt_contains(s.last_err, "WRONGTYPE")) {
        fail_msg("error_callback message: \"%s\"", s.last_err);
    }
    assert_false(pthread_equal(s.err_thread, pthread_self()));
    seen_destroy(&s);
}

static void test_separate_bursts(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-bursts"), 200, &s);
    for (int burst = 0; burst < 2; burst++) {
        for (int i = 0; i < 3; i++) {
            char arg[16];
            int n = snprintf(arg, sizeof arg, "b%d-%d", burst, i);
            dlt_assert_rc(dlock_debounce_call(d, arg, (size_t)n), DLOCK_OK);
        }
        dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
        assert_int_equal(seen_calls(&s), burst + 1);
        char want[16];
        int n = snprintf(want, sizeof want, "b%d-2", burst);
        assert_int_equal(s.last_len, (size_t)n);
        assert_memory_equal(s.last, want, (size_t)n);
    }
    dlock_debounce_free(d);
    seen_destroy(&s);
}

static void test_free_flushes(void **state) {
    struct seen s;
    seen_init(&s);
    dlock_debounce *d = debounce_new(state, dlt_id("deb-free"), 200, &s);
    dlt_assert_rc(dlock_debounce_call(d, "z", 1), DLOCK_OK);
    dlock_debounce_free(d);
    /* free flushed: the pending call was decided and its callback has returned. */
    assert_int_equal(seen_calls(&s), 1);
    /* A handle that never called: no thread, nothing to wait for. */
    d = debounce_new(state, dlt_id("deb-idle"), 5000, &s);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    dlock_debounce_free(d);
    assert_true(dlt_now_ms() - t0 < dlt_slow(200));
    assert_int_equal(seen_calls(&s), 1);
    seen_destroy(&s);
}

static void test_two_processes_share_decision(void **state) {
    const char *id = dlt_id("deb-procs");
    const char *scratch = dlt_env("DLOCK_TEST_SCRATCH");
    char out[512];
    snprintf(out, sizeof out, "%s/debounce-%ld.out", scratch != NULL ? scratch : "/tmp",
             (long)getpid());
    unlink(out);
    const char *url = dlt_env_require("DLOCK_TEST_URL");
    const char *first[] = {dlt_helper_path(), "debounce", url, id, "600", "first", out, NULL};
    const char *second[] = {dlt_helper_path(), "debounce", url, id, "600", "second", out, NULL};
    pid_t p1 = dlt_spawn(first);
    assert_true(p1 > 0);
    /* Give the first process time to start and INCR; the second then supersedes it. */
    dlt_sleep_ms(250);
    pid_t p2 = dlt_spawn(second);
    assert_true(p2 > 0);
    int st1 = dlt_wait(p1, dlt_slow(10000));
    int st2 = dlt_wait(p2, dlt_slow(10000));
    assert_int_equal(st1, DLOCK_SUPERSEDED);
    assert_int_equal(st2, DLOCK_OK);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_string_equal(buf, "second\n");
    unlink(out);
    (void)state;
}

/* ---- Bad input ----------------------------------------------------------------------------- */

static void expect_new_einval(void **state, const char *id, const dlock_debounce_options *o) {
    dlock_debounce *d = (dlock_debounce *)&d;
    dlt_assert_rc(dlock_debounce_new(&d, C->client, id, o), DLOCK_EINVAL);
    assert_null(d);
    assert_true(dlock_errmsg()[0] != '\0');
}

static void test_bad_input(void **state) {
    struct seen s;
    seen_init(&s);
    const char *id = dlt_id("deb-bad");
    expect_new_einval(state, id, &(dlock_debounce_options){.wait_ms = 100});
    if (!dlt_contains(dlock_errmsg(), "callback")) {
        fail_msg("message for a missing callback: \"%s\"", dlock_errmsg());
    }
    expect_new_einval(state, id, NULL);
    expect_new_einval(state, id, &(dlock_debounce_options){.wait_ms = -1, .callback = on_call});
    if (!dlt_contains(dlock_errmsg(), "wait")) {
        fail_msg("message for a negative wait: \"%s\"", dlock_errmsg());
    }
    dlock_debounce_options ok = {.wait_ms = 100, .callback = on_call, .userdata = &s};
    expect_new_einval(state, "", &ok);
    expect_new_einval(state, NULL, &ok);
    char *big = malloc(65538);
    memset(big, 'd', 65537);
    big[65537] = '\0';
    expect_new_einval(state, big, &ok);
    free(big);
    dlock_debounce *d = (dlock_debounce *)&d;
    dlt_assert_rc(dlock_debounce_new(&d, NULL, id, &ok), DLOCK_EINVAL);
    assert_null(d);
    dlt_assert_rc(dlock_debounce_new(NULL, C->client, id, &ok), DLOCK_EINVAL);

    d = debounce_new(state, id, 100, &s);
    /* A length with no bytes behind it. */
    dlt_assert_rc(dlock_debounce_call(d, NULL, 5), DLOCK_EINVAL);
    dlt_assert_rc(dlock_debounce_call_sync(d, NULL, 5), DLOCK_EINVAL);
    dlt_assert_rc(dlock_debounce_flush(d), DLOCK_OK);
    assert_int_equal(seen_calls(&s), 0);
    /* Refused calls were not counted in Redis either. */
    assert_false(dlt_raw_exists(C->raw, id, strlen(id)));
    dlock_debounce_free(d);
    seen_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_called_once),
        cmocka_unit_test(test_seed_with_arguments),
        cmocka_unit_test(test_seed_slow_callback),
        cmocka_unit_test(test_call_sync_alone),
        cmocka_unit_test(test_call_sync_superseded),
        cmocka_unit_test(test_foreign_incr_supersedes),
        cmocka_unit_test(test_async_runs_on_own_thread),
        cmocka_unit_test(test_binary_argument_is_copied),
        cmocka_unit_test(test_two_handles_share_decision),
        cmocka_unit_test(test_slow_callback_does_not_delay_counting),
        cmocka_unit_test(test_async_count_error_reported),
        cmocka_unit_test(test_separate_bursts),
        cmocka_unit_test(test_free_flushes),
        cmocka_unit_test(test_two_processes_share_decision),
        cmocka_unit_test(test_bad_input),
    };
    if (dlt_transport_missing()) {
        return 77;
    }
    long h2 = dlt_h2_log_size();
    int failed = cmocka_run_group_tests_name(dlt_transport() != NULL ? dlt_transport() : "debounce",
                                             tests, setup, teardown);
    return failed + dlt_run_h2_check(h2, 50, 0);
}
