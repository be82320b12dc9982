/* test_wait: the wait queue of blocking acquire under pauses, delays, crashes and cancellation
 * (issue 10). Each test reproduces a reported violation against the real redis-server: a late
 * grant message, a paused waiter, a killed waiter, a killed subscription, a cancelled wait.
 * Redis protocol only: wake-on-release needs SUBSCRIBE. */
#include "proxy.h"
#include "support.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

/* Each test gets a client and a raw connection to the plain server (setup/teardown). */
typedef struct fixture {
    dlock_client *c;
    redisContext *raw;
} fixture;

static int fx_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || dlt_client_open(&f->c, dlt_env_require("DLOCK_TEST_URL"), NULL) != DLOCK_OK) {
        free(f);
        return -1;
    }
    f->raw = dlt_raw_plain();
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fixture *f = *state;
    redisFree(f->raw);
    dlock_client_close(f->c);
    free(f);
    return 0;
}

static void scratch_file(char *buf, size_t size, const char *tag) {
    const char *dir = getenv("DLOCK_TEST_SCRATCH");
    snprintf(buf, size, "%s/wait-%s-%d.log", dir != NULL ? dir : "/tmp", tag, (int)getpid());
    unlink(buf);
}

/* A waiter process: dlock_test_helper wait URL ID WAIT_MS LEASE_MS LOG. */
static pid_t spawn_waiter(const char *id, long wait_ms, long lease_ms, const char *log) {
    char w[24], l[24];
    snprintf(w, sizeof w, "%ld", wait_ms);
    snprintf(l, sizeof l, "%ld", lease_ms);
    const char *argv[] = {
        dlt_helper_path(), "wait", dlt_env_require("DLOCK_TEST_URL"), id, w, l, log, NULL};
    pid_t pid = dlt_spawn(argv);
    assert_true(pid > 0);
    return pid;
}

/* The line a waiter process logged: its acquire's rc and the monotonic time it returned. */
static void read_waiter_log(const char *log, int *rc, long long *t) {
    FILE *f = fopen(log, "r");
    if (f == NULL) {
        fail_msg("waiter log %s missing", log);
    }
    long long v;
    int n = fscanf(f, "%d %lld %lld", rc, t, &v);
    fclose(f);
    unlink(log);
    if (n != 3) {
        fail_msg("waiter log %s: malformed", log);
    }
}

/* A blocking acquire on a thread of its own. */
typedef struct waiter {
    dlock_lock *lock;
    dlock_acquire_options ao;
    pthread_t thread;
    int rc;
    int64_t returned_at;
    char errmsg[512];
} waiter;

static void *waiter_main(void *arg) {
    waiter *w = arg;
    w->rc = dlock_lock_acquire(w->lock, &w->ao);
    w->returned_at = dlt_now_ms();
    snprintf(w->errmsg, sizeof w->errmsg, "%s", dlock_errmsg());
    return NULL;
}

static void waiter_start(waiter *w, dlock_lock *lock, int64_t wait_ms) {
    *w = (waiter){.lock = lock, .ao = {.wait_ms = wait_ms}};
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static int waiter_join(waiter *w) {
    pthread_join(w->thread, NULL);
    if (w->rc < 0) {
        print_message("waiter: %s: %s\n", dlock_strerror(w->rc), w->errmsg);
    }
    return w->rc;
}

static char *holder_of(redisContext *raw, const char *id) {
    return dlt_raw_get(raw, id, strlen(id), NULL);
}

/* A client whose subscriptions reach Redis through a proxy that delivers the server's bytes
 * `delay_ms` late (its other connections too go through the proxy, at full speed). */
typedef struct slow_link {
    dlt_proxy *proxy;
    dlock_client *client;
} slow_link;

static slow_link slow_open(int64_t delay_ms) {
    slow_link s = {dlt_proxy_start(dlt_env_int("DLOCK_TEST_PORT")), NULL};
    dlt_proxy_delay_after(s.proxy, "SUBSCRIBE", delay_ms);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", dlt_proxy_port(s.proxy));
    dlock_client_options co = {.command_timeout_ms = (int)delay_ms + 2500,
                               .connect_timeout_ms = 1000};
    s.client = dlt_open(url, &co);
    return s;
}

/* Cuts the client off from Redis for good. */
static void slow_cut(slow_link *s) {
    dlt_proxy_stop(s->proxy);
    s->proxy = NULL;
}

static void slow_close(slow_link *s) {
    dlock_client_close(s->client);
    if (s->proxy != NULL) {
        dlt_proxy_stop(s->proxy);
    }
}

/* ---- 1a: a paused waiter reads an old grant ---- */

/* The waiter is paused while queued; the holder hands the lock to it (2 s lease), the hand-off
 * runs out, another client takes the lock. When the waiter resumes, the grant it finds on its
 * subscription is stale: it must not report the lock as its own. */
static void test_paused_waiter_ignores_stale_grant(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("paused-waiter");
    dlock_lock_options lo = {.lease_ms = 30000};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *other = dlt_lock_new(c, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    char log[256];
    scratch_file(log, sizeof log, "paused");
    pid_t w = spawn_waiter(id, 7000, 2000, log);
    dlt_await_queue_len(raw, id, 1);
    dlt_sleep_ms(50);
    assert_int_equal(kill(w, SIGSTOP), 0);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    char *v = holder_of(raw, id);
    assert_non_null(v); /* handed to the paused waiter */
    free(v);
    dlt_sleep_ms(2300); /* the hand-off's 2 s lease runs out */
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_OK);
    assert_int_equal(kill(w, SIGCONT), 0);
    assert_int_equal(dlt_wait(w, dlt_slow(15000)), DLOCK_NOT_ACQUIRED);
    int rc;
    long long t;
    read_waiter_log(log, &rc, &t);
    assert_int_equal(rc, DLOCK_NOT_ACQUIRED);
    v = holder_of(raw, id);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(other));
    free(v);
    assert_int_equal(dlt_queue_len(raw, id), 0); /* it left the queue */
    dlt_assert_rc(dlock_lock_release(other), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(other);
}

/* ---- 1b: grant messages delivered late ---- */

/* The waiter's subscription goes through a proxy that delivers 1.5 s late. A hand-off with a
 * 50 ms lease expires long before the message arrives, and another client takes the lock: the
 * waiter must not take the late message for a grant. */
static void test_late_grant_message_is_not_a_grant(void **state) {
    slow_link slow = slow_open(1500);
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("late-grant");
    dlock_lock_options lo = {.lease_ms = 30000}, wlo = {.lease_ms = 50};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *other = dlt_lock_new(c, id, &lo);
    dlock_lock *wl = dlt_lock_new(slow.client, id, &wlo);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w;
    waiter_start(&w, wl, 5000);
    dlt_await_queue_len(raw, id, 1);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK); /* handed off, 50 ms lease */
    dlt_sleep_ms(150);
    dlt_assert_rc(dlock_lock_acquire(other, NULL), DLOCK_OK);
    int rc = waiter_join(&w);
    char *v = holder_of(raw, id);
    if (rc == DLOCK_OK) {
        fail_msg("the waiter reported the lock (validity %lld ms) while Redis holds %s",
                 (long long)dlock_lock_validity_ms(wl),
                 v != NULL && strcmp(v, dlock_lock_token(other)) == 0 ? "another token" : "?");
    }
    assert_int_equal(rc, DLOCK_NOT_ACQUIRED);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(other));
    free(v);
    assert_int_equal(dlt_queue_len(raw, id), 0); /* nothing left behind for the next release */
    dlt_assert_rc(dlock_lock_release(other), DLOCK_OK);
    dlock_lock_free(wl);
    dlock_lock_free(holder);
    dlock_lock_free(other);
    slow_close(&slow);
}

/* ---- 4: a waiter that dies costs the next one little ---- */

/* Two waiter processes queue (wait 40 s, lease 10 s); the first is SIGKILLed; `gap_ms` later
 * the holder releases. The live waiter must have the lock within 1 s of the release, not after
 * the dead waiter's 10 s lease. */
static void dead_waiter_round(dlock_client *c, redisContext *raw, int64_t gap_ms) {
    const char *id = dlt_id("dead-waiter");
    dlock_lock *holder = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    char log1[256], log2[256];
    scratch_file(log1, sizeof log1, "dead1");
    scratch_file(log2, sizeof log2, "dead2");
    pid_t w1 = spawn_waiter(id, 40000, 10000, log1);
    dlt_await_queue_len(raw, id, 1);
    pid_t w2 = spawn_waiter(id, 40000, 10000, log2);
    dlt_await_queue_len(raw, id, 2);
    assert_int_equal(kill(w1, SIGKILL), 0);
    assert_int_equal(dlt_wait(w1, 5000), 128 + SIGKILL);
    dlt_sleep_ms(gap_ms);
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(dlt_wait(w2, dlt_slow(15000)), DLOCK_OK);
    int rc;
    long long t;
    read_waiter_log(log2, &rc, &t);
    assert_int_equal(rc, DLOCK_OK);
    print_message("dead waiter (released %lld ms after the kill): the live waiter had the lock "
                  "%lld ms after the release\n",
                  (long long)gap_ms, t - released);
    if (t - released > dlt_slow(1000)) {
        fail_msg("the live waiter got the lock %lld ms after the release (a dead waiter held "
                 "it)",
                 t - released);
    }
    unlink(log1);
    dlock_lock_free(holder);
}

static void test_dead_waiter_is_skipped(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    dead_waiter_round(c, raw, 100);
    dead_waiter_round(c, raw, 2500);
}

/* A waiter whose deadline passed left the queue in the same call: the release deletes the key
 * instead of handing it to nobody. */
static void test_timed_out_waiter_leaves_queue(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("timed-out");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    dlock_acquire_options ao = {.wait_ms = 300};
    dlt_assert_rc(dlock_lock_acquire(wl, &ao), DLOCK_NOT_ACQUIRED);
    assert_int_equal(dlt_queue_len(raw, id), 0);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id)));
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* The queue's keys always expire: nothing of a wait outlives the waiters and the lease. */
static void assert_expires(redisContext *raw, const char *id, const char *name) {
    char key[256];
    int n = snprintf(key, sizeof key, "{%s}:%s", id, name);
    long long t = dlt_raw_pttl(raw, key, (size_t)n);
    if (t == -1) {
        fail_msg("%s has no expiry", key);
    }
}

static void test_queue_keys_expire(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("expire");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(c, id, NULL);
    dlock_acquire_options ao = {.wait_ms = 1000};
    dlt_assert_rc(dlock_lock_acquire(holder, &ao), DLOCK_OK); /* taken by the waiting path */
    assert_expires(raw, id, "waiters");
    waiter w;
    waiter_start(&w, wl, 10000);
    dlt_await_queue_len(raw, id, 1);
    assert_expires(raw, id, "queue");
    assert_expires(raw, id, "waiters");
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK); /* handed off */
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    assert_expires(raw, id, "queue");
    assert_expires(raw, id, "waiters");
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    assert_expires(raw, id, "waiters");
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* ---- cancel ---- */

static void test_cancel_stops_a_wait(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("cancel");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w;
    waiter_start(&w, wl, 20000);
    dlt_await_queue_len(raw, id, 1);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock_lock_cancel(wl), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_ECANCELED);
    assert_true(w.returned_at - t0 < dlt_slow(500));
    assert_int_equal(dlt_queue_len(raw, id), 0);
    assert_null(dlock_lock_token(wl));
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_false(dlt_raw_exists(raw, id, strlen(id))); /* nobody was handed it */

    /* A cancel made before the acquire starts stops that acquire, and only that one. */
    dlt_assert_rc(dlock_lock_cancel(wl), DLOCK_OK);
    dlock_acquire_options ao = {.wait_ms = 1000};
    dlt_assert_rc(dlock_lock_acquire(wl, &ao), DLOCK_ECANCELED);
    dlt_assert_rc(dlock_lock_acquire(wl, &ao), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlt_assert_rc(dlock_lock_cancel(NULL), DLOCK_EINVAL);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* ---- 5: a killed subscription is made again ---- */

/* After CLIENT KILL TYPE pubsub, the handle's next wait must subscribe again and queue, and be
 * served before a waiter that queued later. */
static void test_killed_subscription_is_remade(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("resubscribe");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *first = dlt_lock_new(c, id, NULL),
               *second = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    dlock_acquire_options ao = {.wait_ms = 300};
    dlt_assert_rc(dlock_lock_acquire(first, &ao), DLOCK_NOT_ACQUIRED); /* now subscribed */
    freeReplyObject(dlt_raw_cmd(raw, "CLIENT KILL TYPE pubsub"));
    dlt_sleep_ms(50);
    waiter w1, w2;
    waiter_start(&w1, first, 10000);
    dlt_await_queue_len(raw, id, 1);
    waiter_start(&w2, second, 10000);
    dlt_await_queue_len(raw, id, 2);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w1), DLOCK_OK);
    dlt_sleep_ms(100);
    dlt_assert_rc(dlock_lock_release(first), DLOCK_OK);
    assert_int_equal(waiter_join(&w2), DLOCK_OK);
    assert_true(w1.returned_at <= w2.returned_at);
    dlt_assert_rc(dlock_lock_release(second), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(first);
    dlock_lock_free(second);
}

/* ---- found by review ---- */

/* A grant whose lease ran out leaves its record behind; when another handle then sets an equal
 * custom token, the old grantee must not take that hold for its own. */
static void test_expired_grant_record_is_not_a_hold(void **state) {
    slow_link slow = slow_open(1500);
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("stale-record");
    char token[96];
    snprintf(token, sizeof token, "worker-%s", id);
    dlock_lock_options lo = {.lease_ms = 30000}, wlo = {.lease_ms = 50};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *other = dlt_lock_new(c, id, &lo);
    dlock_lock *wl = dlt_lock_new(slow.client, id, &wlo), *bystander = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w = {.lock = wl, .ao = {.wait_ms = 3000, .token = token}}, w2;
    assert_int_equal(pthread_create(&w.thread, NULL, waiter_main, &w), 0);
    dlt_await_queue_len(raw, id, 1);
    waiter_start(&w2, bystander, 2500); /* keeps the waiter hash alive */
    dlt_await_queue_len(raw, id, 2);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK); /* handed to wl, 50 ms lease */
    dlt_sleep_ms(60);
    dlock_acquire_options oo = {.token = token};
    int orc = dlock_lock_acquire(other, &oo); /* plain SET NX with the equal token */
    int rc = waiter_join(&w);
    waiter_join(&w2);
    dlt_assert_rc(orc, DLOCK_OK);
    if (rc == DLOCK_OK) {
        fail_msg("two handles report holding %s at once (the waiter took a stale record)", id);
    }
    dlock_lock_release(other);
    dlock_lock_release(bystander);
    dlock_lock_free(bystander);
    dlock_lock_free(wl);
    dlock_lock_free(holder);
    dlock_lock_free(other);
    slow_close(&slow);
}

/* A waiter paused longer than the queue list lives comes back into the list (FIFO kept). */
static void test_paused_waiter_keeps_its_turn(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("list-expired");
    dlock_lock_options lo = {.lease_ms = 30000};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *later = dlt_lock_new(c, id, NULL);
    dlock_acquire_options ao = {.wait_ms = 1000};
    dlt_assert_rc(dlock_lock_acquire(holder, &ao), DLOCK_OK); /* the hash now lives 30 s */
    char log[256];
    scratch_file(log, sizeof log, "pause-turn");
    pid_t wp = spawn_waiter(id, 20000, 10000, log);
    dlt_await_queue_len(raw, id, 1);
    dlt_sleep_ms(50);
    assert_int_equal(kill(wp, SIGSTOP), 0);
    dlt_sleep_ms(3300); /* the list expires (2 x 1.5 s) */
    assert_int_equal(kill(wp, SIGCONT), 0);
    dlt_await_queue_len(raw, id, 1); /* back in the list */
    waiter w;
    waiter_start(&w, later, 10000);
    dlt_await_queue_len(raw, id, 2);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(dlt_wait(wp, dlt_slow(15000)), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    int rc;
    long long t;
    read_waiter_log(log, &rc, &t);
    assert_int_equal(rc, DLOCK_OK);
    if (t > w.returned_at) {
        fail_msg("FIFO broken: the waiter that queued first was served %lld ms after a later one",
                 (long long)(t - w.returned_at));
    }
    dlt_assert_rc(dlock_lock_release(later), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(later);
}

/* A SUBSCRIBE refused once (maxclients) does not turn queueing off for the handle's life. */
static void test_refused_subscribe_is_retried(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("sub-refused");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    redisReply *r = dlt_raw_cmd(raw, "CLIENT LIST");
    int n = 0;
    for (const char *s = r->str; (s = strchr(s, '\n')) != NULL; s++) {
        n++;
    }
    freeReplyObject(r);
    freeReplyObject(dlt_raw_cmd(raw, "CONFIG SET maxclients %d", n));
    dlock_acquire_options ao = {.wait_ms = 300};
    int rc = dlock_lock_acquire(wl, &ao);
    freeReplyObject(dlt_raw_cmd(raw, "CONFIG SET maxclients 10000"));
    assert_true(rc == DLOCK_NOT_ACQUIRED || rc < 0);
    waiter w;
    waiter_start(&w, wl, 5000);
    dlt_await_queue_len(raw, id, 1); /* it subscribes and queues again */
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* Cancelled, handed the lock unseen, then cut off from Redis: the call cannot know whether it
 * holds the lock, and must say so (not "nothing is held"). */
static void test_cancel_cut_off_says_it_may_hold(void **state) {
    slow_link slow = slow_open(3000);
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("cancel-cut");
    dlock_lock_options lo = {.lease_ms = 30000};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *wl = dlt_lock_new(slow.client, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w;
    waiter_start(&w, wl, 20000);
    dlt_sleep_ms(3200); /* its SUBSCRIBE's reply comes 3 s late */
    dlt_await_queue_len(raw, id, 1);
    dlt_sleep_ms(100);
    dlt_assert_rc(dlock_lock_cancel(wl), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK); /* handed to wl, which cannot see it */
    slow_cut(&slow);                                     /* and Redis is out of reach */
    assert_int_equal(waiter_join(&w), DLOCK_ECANCELED);
    if (!dlt_contains(w.errmsg, "could not check whether the lock was handed to this call")) {
        fail_msg("cancel cut off from Redis said: %s", w.errmsg);
    }
    dlt_raw_del(raw, id, strlen(id));
    dlock_lock_free(holder);
    dlock_lock_free(wl);
    slow_close(&slow);
}

/* A call that could not leave the queue (Redis out of reach when it stopped waiting) leaves its
 * entry behind, live for up to 1.5 s. The next call of the same handle must not subscribe to
 * that entry's channel again: the old entry then looks live, a release hands the lock to the old
 * call's token, which nobody claims, and the lock sits idle for a whole lease. `make fault`'s
 * cluster-kill found it (ids still for 10 s, the lease, after the cluster refused a leave with
 * CLUSTERDOWN). */
static void test_failed_leave_is_not_handed_the_lock(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    dlt_proxy *p = dlt_proxy_start(dlt_env_int("DLOCK_TEST_PORT"));
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", dlt_proxy_port(p));
    dlock_client_options co = {.command_timeout_ms = 500, .connect_timeout_ms = 500};
    dlock_client *pc = dlt_open(url, &co);
    const char *id = dlt_id("failed-leave");
    dlock_lock_options lo = {.lease_ms = 20000};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *wl = dlt_lock_new(pc, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w;
    waiter_start(&w, wl, 20000);
    dlt_await_queue_len(raw, id, 1);
    dlt_proxy_refuse(p, 1); /* its next try fails, and so does leaving the queue */
    assert_true(waiter_join(&w) < 0);
    dlt_proxy_refuse(p, 0);
    assert_int_equal(dlt_queue_len(raw, id), 1); /* the entry it could not take out */
    waiter_start(&w, wl, 20000);
    dlt_await_queue_len(raw, id, 2);
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    print_message("the next call had the lock %lld ms after the release\n",
                  (long long)(w.returned_at - released));
    assert_true(w.returned_at - released < dlt_slow(1000)); /* not after the 20 s lease */
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
    dlock_client_close(pc);
    dlt_proxy_stop(p);
}

/* Fencing counters beyond what a Lua number holds exactly (10^14 prints as 1e+14; 2^53 rounds)
 * still hand off and still increase by one. */
static void test_large_fencing_counters(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("big-fence");
    dlock_lock_options lo = {.lease_ms = 10000, .fencing = 1};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *wl = dlt_lock_new(c, id, &lo);
    freeReplyObject(dlt_raw_cmd(raw, "SET {%s}:fence 99999999999998", id));
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    assert_int_equal(dlock_lock_fencing_token(holder), 99999999999999LL);
    waiter w;
    waiter_start(&w, wl, 8000);
    dlt_await_queue_len(raw, id, 1);
    int64_t rel = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    assert_true(w.returned_at - rel < dlt_slow(1000)); /* by the hand-off, not after its lease */
    assert_int_equal(dlock_lock_fencing_token(wl), 100000000000000LL);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);

    freeReplyObject(dlt_raw_cmd(raw, "SET {%s}:fence 9007199254740993", id));
    int64_t last = 9007199254740993LL;
    dlock_acquire_options wo = {.wait_ms = 1000};
    for (int i = 0; i < 4; i++) {
        dlt_assert_rc(dlock_lock_acquire(holder, i % 2 ? &wo : NULL), DLOCK_OK);
        assert_int_equal(dlock_lock_fencing_token(holder), last + 1);
        last++;
        dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    }
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* A pattern subscriber (PSUBSCRIBE *) must neither make a dead waiter look live nor see grants. */
static void test_pattern_subscriber_changes_nothing(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw, *ps = dlt_raw_plain();
    freeReplyObject(dlt_raw_cmd(ps, "PSUBSCRIBE *"));
    redisReply *r = dlt_raw_cmd(raw, "INFO server");
    int sharded = strstr(r->str, "redis_version:7") != NULL;
    freeReplyObject(r);
    if (!sharded) {
        redisFree(ps);
        skip(); /* before Redis 7 there is no sharded pub/sub to keep patterns out */
    }
    dead_waiter_round(c, raw, 100); /* with the observer subscribed to every channel */
    /* The observer saw no grant message. */
    redisSetTimeout(ps, (struct timeval){0, 200000});
    void *m = NULL;
    assert_int_not_equal(redisGetReply(ps, &m), REDIS_OK);
    redisFree(ps);
}

/* A release that cannot hand on (broken fencing counter) fails with nothing changed: the holder
 * still holds, and the waiter keeps its place. */
static void test_failed_release_changes_nothing(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    redisContext *raw = ((fixture *)*state)->raw;
    const char *id = dlt_id("release-broken");
    dlock_lock_options lo = {.fencing = 1};
    dlock_lock *holder = dlt_lock_new(c, id, &lo), *wl = dlt_lock_new(c, id, &lo);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w;
    waiter_start(&w, wl, 3000);
    dlt_await_queue_len(raw, id, 1);
    freeReplyObject(dlt_raw_cmd(raw, "SET {%s}:fence oops", id));
    int rc = dlock_lock_release(holder);
    assert_true(rc < 0);
    assert_true(dlt_contains(dlock_errmsg(), "not an integer"));
    assert_int_equal(dlt_queue_len(raw, id), 1);
    char *v = holder_of(raw, id);
    assert_non_null(v);
    assert_string_equal(v, dlock_lock_token(holder));
    free(v);
    freeReplyObject(dlt_raw_cmd(raw, "SET {%s}:fence 7", id));
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    assert_int_equal(dlock_lock_fencing_token(wl), 8);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

/* A short wait ends at its deadline, not a socket timeout's slack later (median of 9). */
static void test_short_wait_ends_on_time(void **state) {
    dlock_client *c = ((fixture *)*state)->c;
    const char *id = dlt_id("short-wait");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    dlock_acquire_options ao = {.wait_ms = 20}, longer = {.wait_ms = 200};
    dlt_assert_rc(dlock_lock_acquire(wl, &longer), DLOCK_NOT_ACQUIRED); /* 50 ms slices */
    int64_t took[9];
    for (int i = 0; i < 9; i++) {
        int64_t t0 = dlt_now_ms();
        dlt_assert_rc(dlock_lock_acquire(wl, &ao), DLOCK_NOT_ACQUIRED);
        took[i] = dlt_now_ms() - t0;
        assert_true(took[i] >= 20);
    }
    for (int i = 1; i < 9; i++) { /* insertion sort */
        for (int j = i; j > 0 && took[j] < took[j - 1]; j--) {
            int64_t t = took[j];
            took[j] = took[j - 1];
            took[j - 1] = t;
        }
    }
    print_message("20 ms waits took %lld ms (median), %lld ms (max)\n", (long long)took[4],
                  (long long)took[8]);
    assert_true(took[4] < dlt_slow(20 + 20));
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paused_waiter_ignores_stale_grant, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_late_grant_message_is_not_a_grant, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dead_waiter_is_skipped, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timed_out_waiter_leaves_queue, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_keys_expire, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_stops_a_wait, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_subscription_is_remade, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expired_grant_record_is_not_a_hold, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_paused_waiter_keeps_its_turn, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refused_subscribe_is_retried, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_cut_off_says_it_may_hold, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_leave_is_not_handed_the_lock, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_large_fencing_counters, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pattern_subscriber_changes_nothing, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_release_changes_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_short_wait_ends_on_time, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("wait", tests, NULL, NULL);
}
