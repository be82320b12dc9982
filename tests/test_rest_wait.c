/* test_rest_wait: wake-on-release over the Upstash REST transport (issue 13). A waiting handle
 * subscribes through the gateway's SSE endpoint (POST /subscribe/<channel>, src/sse.c) and is
 * handed the lock by the releaser's script, as on the Redis protocol (test_wait.c). Each test
 * states what it would show without the stream: REST waiters used to poll with backoff.
 *
 *   test_rest_wait http   through the fixture's gateway (DLOCK_TEST_REST_URL)
 *   test_rest_wait h2     through nghttpx in front of it: https, HTTP/2 negotiated by ALPN and
 *                         checked (DLOCK_TEST_REST_H2_URL, DLOCK_TEST_REST_H2_LOG)
 *
 * Faults are chosen per client by the base URL (tests/gateway/README.md): /fault/nosse (404 on
 * /subscribe), /fault/ssehang (no answer), /fault/ssestall (subscribed, messages never sent),
 * /fault/ssecut (each stream closed 300 ms after it opened). */
#include "internal.h"
#include "sse.h"
#include "support.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *g_base; /* the REST base URL of this run */
static int g_h2;
static long g_h2_mark; /* nghttpx's access log before this program's first request */

/* ---- helpers ---- */

static const char *url_with(const char *path) {
    static char buf[4][256];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "%s%s", g_base, path);
    return b;
}

static dlock_client_options client_options(int command_timeout_ms) {
    dlock_client_options o = {.rest_token = dlt_env_require("DLOCK_TEST_REST_TOKEN"),
                              .command_timeout_ms = command_timeout_ms};
    if (g_h2) {
        o.tls_ca_file = dlt_env_require("DLOCK_TEST_REST_CA");
    }
    return o;
}

static dlock_client *open_at(const char *path, int command_timeout_ms) {
    dlock_client_options o = client_options(command_timeout_ms);
    return dlt_open(url_with(path), &o);
}

static long long numsub(redisContext *raw, const char *channel) {
    redisReply *r = dlt_raw_cmd(raw, "PUBSUB NUMSUB %s", channel);
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->integer : -1;
    freeReplyObject(r);
    return n;
}

static int holds(redisContext *raw, const char *id, const char *token) {
    char *v = dlt_raw_get(raw, id, strlen(id), NULL);
    int yes = v != NULL && token != NULL && strcmp(v, token) == 0;
    free(v);
    return yes;
}

/* The gateway's count of SSE streams opened so far (GET /gateway-stats, on the plain URL). */
static long gateway_streams(void) {
    char url[256], body[256] = "";
    snprintf(url, sizeof url, "%s/gateway-stats", dlt_env_require("DLOCK_TEST_REST_URL"));
    CURL *h = curl_easy_init();
    FILE *f = fmemopen(body, sizeof body - 1, "w");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    CURLcode cc = curl_easy_perform(h);
    fclose(f);
    curl_easy_cleanup(h);
    const char *p = strstr(body, "\"streams\":");
    if (cc != CURLE_OK || p == NULL) {
        fail_msg("GET %s failed: %s", url, body);
    }
    return atol(p + 10);
}

/* A blocking acquire on a thread of its own; with `then_release`, it holds the lock for
 * hold_ms and releases it (handing it on), recording when it got it and in which place. */
typedef struct waiter {
    dlock_lock *lock;
    int64_t wait_ms, hold_ms;
    int then_release;
    atomic_int *order;
    pthread_t thread;
    int rc, place;
    int64_t got_at;
    char errmsg[512];
} waiter;

static void *waiter_main(void *arg) {
    waiter *w = arg;
    dlock_acquire_options ao = {.wait_ms = w->wait_ms};
    w->rc = dlock_lock_acquire(w->lock, &ao);
    w->got_at = dlt_now_ms();
    snprintf(w->errmsg, sizeof w->errmsg, "%s", dlock_errmsg());
    if (w->rc == DLOCK_OK && w->then_release) {
        w->place = atomic_fetch_add(w->order, 1);
        dlt_sleep_ms(w->hold_ms);
        dlock_lock_release(w->lock);
    }
    return NULL;
}

static void waiter_start(waiter *w, dlock_lock *lock, int64_t wait_ms) {
    w->lock = lock;
    w->wait_ms = wait_ms;
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static int waiter_join(waiter *w) {
    pthread_join(w->thread, NULL);
    if (w->rc < 0) {
        print_message("waiter: %s: %s\n", dlock_strerror(w->rc), w->errmsg);
    }
    return w->rc;
}

/* ---- the stream itself ---- */

/* A stream confirms its subscription before sub_open returns (PUBLISH counts it), delivers a
 * message with commas and a line break intact, honours read deadlines, and is gone from Redis
 * soon after it is closed. Over nghttpx it must have negotiated HTTP/2. */
static void test_stream(void **state) {
    (void)state;
    dlock_client *c = open_at("", 0);
    redisContext *raw = dlt_raw_plain();
    char channel[200];
    snprintf(channel, sizeof channel, "{%s, with commas/and slash}:grant:00ff", dlt_id("sse"));
    dlock__conn *conn = NULL;
    int sharded = 1;
    dlt_assert_rc(dlock__sub_open(c, channel, strlen(channel), &conn, &sharded), DLOCK_OK);
    assert_int_equal(sharded, 0); /* /subscribe is SUBSCRIBE: releases must PUBLISH */
    long v = dlock__sse_http_version((dlock__sse *)conn);
    print_message("stream over %s: HTTP version %s\n", g_base,
                  v == CURL_HTTP_VERSION_2_0   ? "2"
                  : v == CURL_HTTP_VERSION_1_1 ? "1.1"
                                               : "other");
    assert_int_equal(v, g_h2 ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1);
    assert_int_equal(numsub(raw, channel), 1);

    dlock__reply m;
    const dlock__reply *payload;
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock__sub_read(c, conn, &m, &payload, t0 + 150), DLOCK_ETIMEDOUT);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 150 && took < dlt_slow(400));

    static const char text[] = "7|0|00ff|tok,en\nsecond line";
    redisReply *r = dlt_raw_cmd(raw, "PUBLISH %s %b", channel, text, sizeof text - 1);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    dlt_assert_rc(dlock__sub_read(c, conn, &m, &payload, dlt_now_ms() + dlt_slow(2000)), DLOCK_OK);
    assert_non_null(payload);
    assert_int_equal(payload->len, sizeof text - 1);
    assert_memory_equal(payload->str, text, sizeof text - 1);
    dlock__reply_clear(&m);

    dlock__sub_close(c, conn);
    int64_t until = dlt_now_ms() + dlt_slow(2000);
    while (numsub(raw, channel) != 0) {
        if (dlt_now_ms() > until) {
            fail_msg("the gateway still subscribes %s after the stream closed", channel);
        }
        dlt_sleep_ms(10);
    }
    redisFree(raw);
    dlock_client_close(c);
}

/* Servers that cannot stream: refusals are ESTATE (the queue then polls and never asks again),
 * a bad token EAUTH, a silent server ETIMEDOUT at the command deadline. No message carries the
 * token. */
static void test_stream_refused(void **state) {
    (void)state;
    const char *token = dlt_env_require("DLOCK_TEST_REST_TOKEN");
    dlock__conn *conn = NULL;
    int sharded = 1;
    dlock_client *c = open_at("/fault/nosse", 300);
    dlt_assert_rc(dlock__sub_open(c, "ch", 2, &conn, &sharded), DLOCK_ESTATE);
    assert_null(conn);
    assert_non_null(strstr(dlock_errmsg(), "404"));
    dlock_client_close(c);
    c = open_at("/fault/ssehang", 300);
    int64_t t0 = dlt_now_ms();
    dlt_assert_rc(dlock__sub_open(c, "ch", 2, &conn, &sharded), DLOCK_ETIMEDOUT);
    int64_t took = dlt_now_ms() - t0;
    assert_true(took >= 290 && took < dlt_slow(1000));
    assert_null(strstr(dlock_errmsg(), token));
    dlock_client_close(c);

    /* A token the server refuses: the config is the client's, so change it under the client. */
    c = open_at("", 0);
    char *saved = c->cfg.rest_token, wrong[] = "Wrong-token-for-sse-123";
    c->cfg.rest_token = wrong;
    dlt_assert_rc(dlock__sub_open(c, "ch", 2, &conn, &sharded), DLOCK_EAUTH);
    assert_null(strstr(dlock_errmsg(), "Wrong-token-for-sse-123"));
    c->cfg.rest_token = saved;
    dlock_client_close(c);
}

/* Calls of one Redis command so far (INFO commandstats; a script's own calls count too). Only
 * meaningful because the suite runs alone (RUN_SERIAL). */
static long long calls_of(redisContext *raw, const char *cmd) {
    redisReply *r = dlt_raw_cmd(raw, "INFO commandstats");
    char want[64];
    snprintf(want, sizeof want, "cmdstat_%s:calls=", cmd);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, want) : NULL;
    long long n = p != NULL ? atoll(p + strlen(want)) : 0;
    freeReplyObject(r);
    return n;
}

static long long scripts_run(redisContext *raw) {
    return calls_of(raw, "evalsha") + calls_of(raw, "eval");
}

static void cycle(dlock_lock *l) {
    dlock_acquire_options ao = {.wait_ms = 2000};
    dlt_assert_rc(dlock_lock_acquire(l, &ao), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
}

/* While a handle's blocking acquires find the lock free they cost what a plain acquire does:
 * SET NX PX, no queue script, no stream. Once one has waited, the next goes straight to the
 * queue (no SET NX first, which under contention would be a wasted request each time); a queued
 * try that finds the lock free switches the handle back. Without the plain first try every
 * uncontended cycle ran two scripts and opened a stream. */
static void test_uncontended_wait_is_plain(void **state) {
    (void)state;
    dlock_client *c = open_at("", 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-plain");
    dlock_lock *l = dlt_lock_new(c, id, NULL), *holder = dlt_lock_new(c, id, NULL);
    long streams0 = gateway_streams();
    long long scripts0 = scripts_run(raw);
    for (int i = 0; i < 5; i++) {
        cycle(l);
    }
    assert_int_equal(scripts_run(raw) - scripts0, 5); /* the releases */
    assert_int_equal(gateway_streams() - streams0, 0);

    /* Contended: l waits for the holder and is handed the lock. */
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w = {0};
    waiter_start(&w, l, 5000);
    dlt_await_queue_len(raw, id, 1);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    /* Having waited, l queues at once: no SET reaches Redis before its entry does. */
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    long long sets0 = calls_of(raw, "set");
    waiter_start(&w, l, 5000);
    dlt_await_queue_len(raw, id, 1);
    assert_int_equal(calls_of(raw, "set") - sets0, 0);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(l), DLOCK_OK);
    /* Free again: the next acquire is a queued try that takes it (2 scripts with the release),
     * and the one after that is plain again (1). */
    scripts0 = scripts_run(raw);
    cycle(l);
    assert_int_equal(scripts_run(raw) - scripts0, 2);
    cycle(l);
    assert_int_equal(scripts_run(raw) - scripts0, 3);
    dlock_lock_free(l);
    dlock_lock_free(holder);
    redisFree(raw);
    dlock_client_close(c);
}

/* ---- hand-off ---- */

/* Five waiters queue one after another; the holder releases and each waiter releases in turn.
 * They must get the lock in arrival order, each within a few ms of the release before it.
 * Polling waiters (what REST had) get it in random order, 1-500 ms late. */
static void test_fifo_order(void **state) {
    (void)state;
    enum { N = 5 };
    dlock_client *c = open_at("", 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-fifo");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *locks[N];
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    atomic_int order = 0;
    waiter w[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        locks[i] = dlt_lock_new(c, id, NULL);
        w[i].then_release = 1;
        w[i].hold_ms = 30;
        w[i].order = &order;
        waiter_start(&w[i], locks[i], 15000);
        dlt_await_queue_len(raw, id, i + 1);
    }
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    int64_t prev = released, worst = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(waiter_join(&w[i]), DLOCK_OK);
    }
    for (int i = 0; i < N; i++) {
        if (w[i].place != i) {
            fail_msg("waiter %d (queued %d-th) got the lock %d-th", i, i + 1, w[i].place + 1);
        }
        /* From the previous holder's release (its 30 ms hold after it got the lock). */
        int64_t gap = w[i].got_at - prev - (i > 0 ? 30 : 0);
        worst = gap > worst ? gap : worst;
        prev = w[i].got_at;
    }
    print_message("FIFO over %s: %d hand-offs, the slowest %lld ms after its release\n", g_base, N,
                  (long long)worst);
    if (worst > dlt_slow(150)) {
        fail_msg("a hand-off took %lld ms: the grant did not come over the stream",
                 (long long)worst);
    }
    for (int i = 0; i < N; i++) {
        dlock_lock_free(locks[i]);
    }
    dlock_lock_free(holder);
    assert_int_equal(dlt_queue_len(raw, id), 0);
    redisFree(raw);
    dlock_client_close(c);
}

/* The waiter's stream is subscribed but delivers nothing (ssestall): the release hands the lock
 * to it (PUBLISH counted the subscriber) and the grant is lost. The waiter must still get the
 * lock, by its next poll (every 250-500 ms), well before its deadline. */
static void test_lost_grant(void **state) {
    (void)state;
    dlock_client *c = open_at("", 0), *stalled = open_at("/fault/ssestall", 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-lost");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(stalled, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter w = {0};
    waiter_start(&w, wl, 8000);
    dlt_await_queue_len(raw, id, 1);
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_false(holds(raw, id, dlock_lock_token(holder)));
    assert_true(dlt_raw_exists(raw, id, strlen(id))); /* handed to the waiter, not deleted */
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    int64_t took = w.got_at - released;
    print_message("lost grant: the waiter polled its way to the lock in %lld ms\n",
                  (long long)took);
    assert_true(took < dlt_slow(1500));
    assert_true(holds(raw, id, dlock_lock_token(wl)));
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(wl);
    redisFree(raw);
    dlock_client_close(stalled);
    dlock_client_close(c);
}

/* Streams that break mid-wait (ssecut closes each 300 ms after it opened) or never open
 * (nosse): the caller sees nothing of it and gets the lock. With a cut stream the waiter
 * subscribes again; without /subscribe it stops asking and polls, never queued (a queued
 * waiter nobody can wake would only slow the hand-off down). */
static void test_broken_stream(void **state) {
    (void)state;
    dlock_client *c = open_at("", 0), *cut = open_at("/fault/ssecut", 0),
                 *none = open_at("/fault/nosse", 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-cut");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(cut, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    long streams0 = gateway_streams();
    waiter w = {0};
    waiter_start(&w, wl, 8000);
    dlt_sleep_ms(1500); /* several cuts */
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    long streams = gateway_streams() - streams0;
    print_message("cut streams: the waiter opened %ld streams and got the lock\n", streams);
    assert_true(streams >= 2);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(wl);

    wl = dlt_lock_new(none, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    waiter_start(&w, wl, 8000);
    dlt_sleep_ms(600);
    assert_int_equal(dlt_queue_len(raw, id), 0);
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
    dlock_lock_free(wl);
    dlock_lock_free(holder);
    redisFree(raw);
    dlock_client_close(none);
    dlock_client_close(cut);
    dlock_client_close(c);
}

/* A release lands around the waiter's deadline, on either side of it. Whatever the waiter
 * reports must be what Redis holds: OK and its token in the key, or NOT_ACQUIRED and not its
 * token (a grant that raced the deadline is taken, not dropped); and it has left the queue. The
 * window between the waiter's last try and its leaving the queue is one round trip; slowstall
 * widens it (each command waits 100 ms at the gateway, and the stream never delivers the grant),
 * so that a waiter that did not check on leaving would report NOT_ACQUIRED for a lock handed
 * to it in several of the rounds. */
static void race_rounds(const char *path, int rounds, int from_ms, int to_ms, int *ok,
                        int *missed) {
    dlock_client *c = open_at("", 0), *wc = open_at(path, 0);
    redisContext *raw = dlt_raw_plain();
    for (int round = 0; round < rounds; round++) {
        const char *id = dlt_id("rest-race");
        dlock_lock *holder = dlt_lock_new(c, id, NULL), *wl = dlt_lock_new(wc, id, NULL);
        dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
        waiter w = {0};
        int64_t start = dlt_now_ms();
        waiter_start(&w, wl, 400);
        dlt_sleep_ms(from_ms + (to_ms - from_ms) * round / rounds - (dlt_now_ms() - start));
        dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
        int rc = waiter_join(&w);
        if (rc == DLOCK_OK) {
            ++*ok;
            if (!holds(raw, id, dlock_lock_token(wl))) {
                fail_msg("%s round %d: the waiter reported the lock, Redis does not hold its "
                         "token",
                         path, round);
            }
            dlt_assert_rc(dlock_lock_release(wl), DLOCK_OK);
        } else {
            ++*missed;
            assert_int_equal(rc, DLOCK_NOT_ACQUIRED);
            char *v = dlt_raw_get(raw, id, strlen(id), NULL);
            if (v != NULL) {
                fail_msg("%s round %d: NOT_ACQUIRED, but the key holds %s (the waiter's token "
                         "was not kept: a grant was dropped)",
                         path, round, v);
            }
        }
        assert_int_equal(dlt_queue_len(raw, id), 0);
        dlock_lock_free(holder);
        dlock_lock_free(wl);
    }
    redisFree(raw);
    dlock_client_close(wc);
    dlock_client_close(c);
}

static void test_timeout_races_grant(void **state) {
    (void)state;
    int ok = 0, missed = 0, sok = 0, smissed = 0;
    race_rounds("", 12, 370, 430, &ok, &missed);
    race_rounds("/fault/slowstall", 12, 350, 950, &sok, &smissed);
    print_message("deadline races: %d got the lock, %d timed out; slow and stalled: %d and %d; "
                  "all consistent\n",
                  ok, missed, sok, smissed);
}

/* A waiter process is SIGKILLed while queued; 100 ms later the holder releases. The live waiter
 * queued behind it must have the lock within 1 s: the dead one's stream closed with its process,
 * the gateway dropped its subscription, so the release's PUBLISH reached nobody and skipped it.
 * (A gateway that kept the dead stream's subscription would hand the lock to the dead waiter,
 * and the live one would wait for the lease, 10 s.) */
static void test_dead_waiter(void **state) {
    (void)state;
    dlock_client *c = open_at("", 0);
    redisContext *raw = dlt_raw_plain();
    const char *id = dlt_id("rest-dead");
    dlock_lock *holder = dlt_lock_new(c, id, NULL), *live = dlt_lock_new(c, id, NULL);
    dlt_assert_rc(dlock_lock_acquire(holder, NULL), DLOCK_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* After fork the child opens its own client, as the README says. */
        dlock_client_options o = client_options(0);
        dlock_client *cc = NULL;
        dlock_lock *l = NULL;
        if (dlock_client_open(&cc, url_with(""), &o) != DLOCK_OK ||
            dlock_lock_new(&l, cc, id, NULL) != DLOCK_OK) {
            _exit(3);
        }
        dlock_acquire_options ao = {.wait_ms = 40000};
        _exit(dlock_lock_acquire(l, &ao) == DLOCK_OK ? 0 : 4);
    }
    dlt_await_queue_len(raw, id, 1);
    waiter w = {0};
    waiter_start(&w, live, 20000);
    dlt_await_queue_len(raw, id, 2);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(dlt_wait(pid, 5000), 128 + SIGKILL);
    dlt_sleep_ms(100);
    int64_t released = dlt_now_ms();
    dlt_assert_rc(dlock_lock_release(holder), DLOCK_OK);
    assert_int_equal(waiter_join(&w), DLOCK_OK);
    int64_t took = w.got_at - released;
    print_message("dead waiter: the live one had the lock %lld ms after the release\n",
                  (long long)took);
    if (took > dlt_slow(1000)) {
        fail_msg("the live waiter got the lock %lld ms after the release", (long long)took);
    }
    dlt_assert_rc(dlock_lock_release(live), DLOCK_OK);
    dlock_lock_free(holder);
    dlock_lock_free(live);
    redisFree(raw);
    dlock_client_close(c);
}

/* Over nghttpx: every request that went through since this program started, commands and
 * streams, negotiated h2. */
static void test_all_http2(void **state) {
    (void)state;
    if (!g_h2) {
        skip();
    }
    dlt_assert_h2_since(g_h2_mark, 10, 10);
}

int main(int argc, char **argv) {
    g_h2 = argc > 1 && strcmp(argv[1], "h2") == 0;
    const char *key = g_h2 ? "DLOCK_TEST_REST_H2_URL" : "DLOCK_TEST_REST_URL";
    g_base = dlt_env(key);
    if (g_base == NULL || getenv("DLOCK_TEST_REST_TOKEN") == NULL) {
        fprintf(stderr,
                "%s or DLOCK_TEST_REST_TOKEN is not set: run through ctest (the h2 run "
                "needs nghttpx, package nghttp2-proxy)\n",
                key);
        return g_h2 && dlt_env("DLOCK_TEST_REST_URL") != NULL ? 77 : 1;
    }
    g_h2_mark = dlt_h2_log_size();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream),        cmocka_unit_test(test_stream_refused),
        cmocka_unit_test(test_fifo_order),    cmocka_unit_test(test_lost_grant),
        cmocka_unit_test(test_broken_stream), cmocka_unit_test(test_timeout_races_grant),
        cmocka_unit_test(test_dead_waiter),   cmocka_unit_test(test_uncontended_wait_is_plain),
        cmocka_unit_test(test_all_http2),
    };
    int rc =
        cmocka_run_group_tests_name(g_h2 ? "rest_wait_h2" : "rest_wait_http", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
