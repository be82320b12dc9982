/* Mode memory: heap bytes per client, per lock handle and per pending debounce call
 * (mallinfo2 deltas over 20, 1000 and 1000 objects). Runs first, on a fresh heap. */
#include "bench.h"

#include <malloc.h>
#include <stdio.h>

/* Bytes the allocator has handed out, over all arenas (glibc sums them), mmapped chunks too. */
static double heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

static void ignore_call(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    (void)userdata;
}

enum { NCLIENTS = 20, NLOCKS = 1000, NCALLS = 1000 };

/* Warm up: library one-time state (script hashes, thread-local errmsg, TLS/curl init). */
static void warm_up(const bench_config *cfg, const char *url) {
    dlock_client *w = lib_open(cfg, url, 0);
    dlock_lock *wl;
    lib_check(dlock_lock_new(&wl, w, KEY_PREFIX "mem:warm", NULL), "lock_new");
    lib_check(dlock_lock_acquire(wl, NULL), "acquire");
    dlock_lock_release(wl);
    dlock_lock_free(wl);
    dlock_client_close(w);
    malloc_trim(0);
}

/* Returns the first client, still open, for the other figures. */
static dlock_client *per_client(bench *b, const char *url) {
    dlock_client *cs[NCLIENTS];
    double m0 = heap_bytes();
    for (int i = 0; i < NCLIENTS; i++) {
        cs[i] = lib_open(b->cfg, url, 0);
    }
    double m1 = heap_bytes();
    for (int i = 0; i < NCLIENTS; i++) {
        dlock_lock *l;
        lib_check(dlock_lock_new(&l, cs[i], KEY_PREFIX "mem:c", NULL), "lock_new");
        lib_check(dlock_lock_acquire(l, NULL), "acquire");
        dlock_lock_release(l);
        dlock_lock_free(l);
    }
    double m2 = heap_bytes();
    add_metric(b->res, "heap per client (open)", (m1 - m0) / NCLIENTS, "bytes",
               "%d clients, one connection each, mallinfo2 delta", NCLIENTS);
    add_metric(b->res, "heap per client (after a cycle)", (m2 - m0) / NCLIENTS, "bytes",
               "incl. hiredis reader buffer after the first reply");
    for (int i = 1; i < NCLIENTS; i++) {
        dlock_client_close(cs[i]);
    }
    return cs[0];
}

static void per_lock(bench *b, dlock_client *c) {
    static dlock_lock *ls[NLOCKS];
    char id[64];
    double m0 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        snprintf(id, sizeof id, KEY_PREFIX "mem:l:%04d", i); /* 19-byte ids */
        lib_check(dlock_lock_new(&ls[i], c, id, NULL), "lock_new");
    }
    double m1 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        lib_check(dlock_lock_acquire(ls[i], NULL), "acquire");
    }
    double m2 = heap_bytes();
    for (int i = 0; i < NLOCKS; i++) {
        dlock_lock_release(ls[i]);
        dlock_lock_free(ls[i]);
    }
    add_metric(b->res, "heap per lock handle (idle)", (m1 - m0) / NLOCKS, "bytes",
               "%d handles, 19-byte ids", NLOCKS);
    add_metric(b->res, "heap per lock handle (held)", (m2 - m0) / NLOCKS, "bytes",
               "after acquire: + the token copy");
}

static void per_debounce_call(bench *b, dlock_client *c) {
    dlock_debounce *d;
    dlock_debounce_options dop = {.wait_ms = 500, .callback = ignore_call};
    lib_check(dlock_debounce_new(&d, c, KEY_PREFIX "mem:d", &dop), "debounce_new");
    char arg[64] = {0};
    lib_check(dlock_debounce_call(d, arg, sizeof arg), "debounce_call"); /* starts the thread */
    dlock_debounce_flush(d);
    double m0 = heap_bytes();
    for (int i = 0; i < NCALLS; i++) {
        lib_check(dlock_debounce_call(d, arg, sizeof arg), "debounce_call");
    }
    double m1 = heap_bytes();
    add_metric(b->res, "heap per pending debounce call", (m1 - m0) / NCALLS, "bytes",
               "%d queued calls with a %zu-byte argument, wait 500 ms", NCALLS, sizeof arg);
    dlock_debounce_free(d);
}

void mode_memory(bench *b, const char *url) {
    warm_up(b->cfg, url);
    dlock_client *c = per_client(b, url);
    per_lock(b, c);
    per_debounce_call(b, c);
    dlock_client_close(c);
}
