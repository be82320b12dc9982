/* Mode dead-waiter: what a waiter that dies while queued costs the next live one. Each round: a
 * holder holds the id; two waiter processes queue (wait 40 s, the default 10 s lease); the
 * first is SIGKILLed; `gap` ms later the holder releases. The figure is the time from that
 * release to the second waiter's acquisition: before issue 10 it was the dead waiter's whole
 * lease. */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEAD_ROUNDS 12

static long long queue_len(redisContext *c, const char *key) {
    char q[128];
    snprintf(q, sizeof q, "{%s}:queue", key);
    const char *argv[] = {"LLEN", q};
    redisReply *r = raw_cmd(c, 2, argv);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void await_queue_len(redisContext *c, const char *key, long long n) {
    uint64_t until = now_ns() + secs_ns(10);
    while (queue_len(c, key) < n) {
        if (now_ns() > until) {
            die("deadwaiter: waiters did not queue on %s", key);
        }
        sleep_ns(2000000);
    }
}

/* A waiter process: blocking acquire, then the time it returned, into *at. */
static pid_t spawn_waiter(const bench_config *cfg, const char *url, const char *key,
                          volatile uint64_t *at) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dlock_client *c = lib_open(cfg, url, 0);
        dlock_lock *l;
        lib_check(dlock_lock_new(&l, c, key, NULL), "lock_new");
        dlock_acquire_options ao = {.wait_ms = 40000};
        int rc = dlock_lock_acquire(l, &ao);
        *at = rc == DLOCK_OK ? now_ns() : 0;
        if (rc == DLOCK_OK) {
            dlock_lock_release(l);
        }
        _exit(0);
    }
    return pid;
}

static uint64_t dead_waiter_round(const bench_config *cfg, const char *url, redisContext *raw,
                                  int round, int gap_ms, volatile uint64_t *at) {
    char key[64];
    snprintf(key, sizeof key, KEY_PREFIX "dead:%d:%d", (int)getpid(), round);
    dlock_client *c = lib_open(cfg, url, 0);
    dlock_lock *holder;
    lib_check(dlock_lock_new(&holder, c, key, NULL), "lock_new");
    lib_check(dlock_lock_acquire(holder, NULL), "acquire");
    *at = 0;
    pid_t dead = spawn_waiter(cfg, url, key, at);
    await_queue_len(raw, key, 1);
    pid_t live = spawn_waiter(cfg, url, key, at);
    await_queue_len(raw, key, 2);
    kill(dead, SIGKILL);
    waitpid(dead, NULL, 0);
    sleep_ns((uint64_t)gap_ms * 1000000u);
    uint64_t released = now_ns();
    lib_check(dlock_lock_release(holder), "release");
    int st;
    waitpid(live, &st, 0);
    dlock_lock_free(holder);
    dlock_client_close(c);
    if (*at == 0) {
        die("deadwaiter: the live waiter did not get the lock");
    }
    return *at - released;
}

void mode_deadwaiter(bench *b, const char *url) {
    const char *tr = transport_of(url);
    redisContext *raw = raw_connect(url);
    volatile uint64_t *at =
        mmap(NULL, sizeof *at, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) {
        die("mmap: %s", strerror(errno));
    }
    static const int gaps[] = {0, 100, 2500};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        samples s;
        memset(&s, 0, sizeof s);
        int rounds = gaps[g] > 1000 ? 3 : DEAD_ROUNDS;
        uint64_t worst = 0;
        for (int i = 0; i < rounds; i++) {
            uint64_t idle = dead_waiter_round(b->cfg, url, raw, (int)g * 100 + i, gaps[g], at);
            s_add(&s, idle);
            worst = idle > worst ? idle : worst;
        }
        char op[48], name[96];
        snprintf(op, sizeof op, "kill, %d ms, release", gaps[g]);
        result *r = add_result(b->res, tr, "dead-waiter", op, "dlock", &s, 0);
        snprintf(r->note, sizeof r->note, "release -> next live waiter; max %.1f ms over %d",
                 (double)worst / 1e6, rounds);
        fprintf(stderr, "        %s\n", r->note);
        snprintf(name, sizeof name,
                 "%s: dead waiter (released %d ms after its kill) costs the next, max", tr,
                 gaps[g]);
        add_check(b->res, name, (double)worst / 1e6, 1000, 0, "ms");
        s_free(&s);
    }
    munmap((void *)at, sizeof *at);
    redisFree(raw);
}
