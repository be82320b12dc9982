/* Helpers shared by the dlock test programs: the environment the harness wrote, clients, unique
 * ids, a raw hiredis connection for looking at keys directly, clocks and child processes.
 *
 * Functions named dlt_* that "assert" fail the current cmocka test on error, so they may only
 * be called from the thread running the test (cmocka unwinds with longjmp). Worker threads use
 * the non-asserting forms and report back to the test thread.
 */
#ifndef DLOCK_TEST_SUPPORT_H
#define DLOCK_TEST_SUPPORT_H

#include "dlock.h"

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <sys/types.h>

/* cmocka.h uses these without including them, so they must come first; keep clang-format's
 * include sorting away from the order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

/* ---- Environment written by harness/redis-env.sh ---------------------------------------- */

/* The value of KEY from $DLOCK_TEST_ENV_DIR/env (loaded on first use; DLOCK_TEST_ENV_DIR may
 * list several directories separated by ':', the first with the key wins), or NULL when the file
 * or the key is missing. The process environment overrides the file, so a developer can point a
 * single test at another server. */
const char *dlt_env(const char *key);

/* As dlt_env, but fails the test when the key is missing (the fixture did not run). */
const char *dlt_env_require(const char *key);

/* dlt_env_require(key) parsed as a port or other positive integer. */
int dlt_env_int(const char *key);

/* ---- Ids, clocks --------------------------------------------------------------------------- */

/* A fresh id no other test, run or process uses: "dlock-test:<tag>:<pid>:<n>:<random>".
 * Returns a pointer into a small ring of static buffers (valid for the next 15 calls); thread
 * safe. */
const char *dlt_id(const char *tag);

/* Monotonic milliseconds. */
int64_t dlt_now_ms(void);

void dlt_sleep_ms(int64_t ms);

/* Upper bounds of timing checks are multiplied by this (>= 1): 10 under valgrind, or the value of
 * $DLOCK_TEST_TIME_FACTOR. Lower bounds are never relaxed: waiting too little is always a bug. */
int64_t dlt_slow(int64_t ms);

/* 1 if `s` is a lowercase UUID v4 (8-4-4-4-12 hex, version 4, variant 10xx). */
int dlt_is_uuid_v4(const char *s);

/* Case-insensitive substring test. */
int dlt_contains(const char *haystack, const char *needle);

/* ---- Clients ------------------------------------------------------------------------------- */

/* $DLOCK_TEST_TRANSPORT: NULL for the plain runs, "rest", "cluster" or "sentinel" for the suites'
 * second runs. On "cluster" and "sentinel" DLOCK_TEST_URL names the topology's URL
 * (DLOCK_TEST_CLUSTER_URL, DLOCK_TEST_SENTINEL_URL in the env file of its fixture). */
const char *dlt_transport(void);
int dlt_topology_is_cluster(void);
int dlt_topology_is_sentinel(void);

/* 1 when this run goes through the REST gateway (DLOCK_TEST_TRANSPORT=rest): DLOCK_TEST_URL then
 * names the gateway, and clients get the token from $DLOCK_TEST_REST_TOKEN. */
int dlt_transport_is_rest(void);

/* 1 on the https run of the REST suites (DLOCK_TEST_TRANSPORT=rest-h2, which is also REST):
 * DLOCK_TEST_URL names nghttpx in front of the gateway (DLOCK_TEST_REST_H2_URL), which speaks
 * HTTP/2 by ALPN, and clients opened with dlt_client_open trust DLOCK_TEST_REST_CA. */
int dlt_transport_is_rest_h2(void);

/* 1 (with a message on stderr) if this run's transport was not set up: the rest-h2 run without
 * nghttpx. The suites then exit 77, which CTest reports as skipped. */
int dlt_transport_missing(void);

/* dlock_client_open, adding the REST test token for http(s) URLs, and on the rest-h2 run the
 * proxy's CA for https URLs opened without CA options. Does not assert, so forked children,
 * helper processes and worker threads may use it. */
int dlt_client_open(dlock_client **out, const char *url, const dlock_client_options *options);

/* Opens a client and asserts DLOCK_OK (printing dlock_errmsg otherwise). */
dlock_client *dlt_open(const char *url, const dlock_client_options *options);

/* dlt_open on the plain TCP server, default options. */
dlock_client *dlt_open_plain(void);

/* Makes a lock handle and asserts DLOCK_OK. */
dlock_lock *dlt_lock_new(dlock_client *client, const char *id, const dlock_lock_options *options);

/* Asserts that rc == want; on mismatch the failure message includes both codes' names and
 * dlock_errmsg(). Use through the macro so the failure names the caller's line. */
void dlt_assert_rc_at(int rc, int want, const char *expr, const char *file, int line);
#define dlt_assert_rc(expr, want) dlt_assert_rc_at((expr), (want), #expr, __FILE__, __LINE__)

/* ---- Raw Redis ------------------------------------------------------------------------------ */

/* A plain hiredis connection to 127.0.0.1:port, AUTHenticated with `password` when non-NULL.
 * Asserts success. Free with redisFree. */
redisContext *dlt_raw_connect(int port, const char *password);

/* Raw connection to the server the suite's clients use: the plain TCP server; on a Cluster run
 * a node of the cluster (dlt_raw_cmd then routes each key to its slot's master); on a Sentinel
 * run the current master. */
redisContext *dlt_raw_plain(void);
/* The same without asserting, for worker threads: NULL if it cannot connect. */
redisContext *dlt_raw_plain_try(void);

/* Runs a command (redisCommand format, %b for binary) and asserts a reply came back. Free the
 * reply with freeReplyObject. On a Cluster it follows -MOVED and -ASK to the key's node, and
 * sends KEYS and SCRIPT to every master (KEYS replies merged into one array). */
redisReply *dlt_raw_cmd(redisContext *c, const char *fmt, ...);
/* The same without asserting: NULL if no reply came. */
redisReply *dlt_raw_try(redisContext *c, const char *fmt, ...);

/* The string value of binary key (key, keylen), malloc'd and NUL-terminated (with *len set if
 * len is non-NULL), or NULL if the key does not exist. */
char *dlt_raw_get(redisContext *c, const char *key, size_t keylen, size_t *len);

/* PTTL of the key: -2 missing, -1 no expiry, else milliseconds. */
long long dlt_raw_pttl(redisContext *c, const char *key, size_t keylen);

/* 1 if the key exists. */
int dlt_raw_exists(redisContext *c, const char *key, size_t keylen);

/* Entries in the wait queue of lock `id` ("{ID}:queue"). */
long long dlt_queue_len(redisContext *c, const char *id);

/* Waits up to 3 s (more under valgrind) for the wait queue of `id` to hold n entries; fails the
 * test otherwise. */
void dlt_await_queue_len(redisContext *c, const char *id, long long n);

/* Deletes the key (cleanup). */
void dlt_raw_del(redisContext *c, const char *key, size_t keylen);

/* ---- Processes and sockets ------------------------------------------------------------------ */

/* Path of the dlock_test_helper program ($DLOCK_TEST_HELPER, set by CTest). Fails the test if
 * unset. */
const char *dlt_helper_path(void);

/* Starts argv[0] with argv (searched in PATH if it has no '/'), stdin from /dev/null. Returns the
 * child's pid or -1. Does not assert, so worker threads may use it. */
pid_t dlt_spawn(const char *const argv[]);

/* Waits up to timeout_ms for the child. Returns its exit status (0-255), 128+signal if it was
 * killed, or -1 on timeout (the child is then killed with SIGKILL and reaped). */
int dlt_wait(pid_t pid, int64_t timeout_ms);

/* dlt_spawn + dlt_wait. */
int dlt_run(const char *const argv[], int64_t timeout_ms);

/* A TCP socket listening on 127.0.0.1 at a kernel-chosen port that never accepts. The kernel
 * still completes the TCP handshake for up to the backlog, so a client connects and then hears
 * nothing: a silent server. Sets *port. Returns the fd (close it when done) or asserts. */
int dlt_silent_listener(int *port);

/* A port on 127.0.0.1 that nothing listens on (bound, read and closed again), so a connect is
 * refused. */
int dlt_closed_port(void);

/* Reads the PID from a redis pid file; 0 if missing. */
pid_t dlt_read_pid(const char *pidfile);

/* Waits until redis on 127.0.0.1:port answers PING (up to timeout_ms); returns 1 if it did. */
int dlt_wait_for_redis(int port, const char *password, int64_t timeout_ms);

/* ---- HTTP/2 through nghttpx (harness/rest-env.sh) ------------------------------------------- */

/* The size of nghttpx's access log (DLOCK_TEST_REST_H2_LOG) now: a mark for
 * dlt_assert_h2_since. 0 if there is none. */
long dlt_h2_log_size(void);

/* Fails the test unless every request nghttpx logged after `mark` came over HTTP/2 (ALPN h2,
 * nghttpx's own record of what it negotiated), with at least min_commands command requests and
 * min_streams SSE streams (POST /subscribe/...) among them. Other programs' requests through the
 * same proxy count too: the check is that nothing went through without h2. */
void dlt_assert_h2_since(long mark, int min_commands, int min_streams);

/* On the rest-h2 run, a cmocka group of one test: dlt_assert_h2_since(mark, ...). Returns its
 * failures; 0 on other runs. Called at the end of a suite's main, mark taken at its start. */
int dlt_run_h2_check(long mark, int min_commands, int min_streams);

#endif /* DLOCK_TEST_SUPPORT_H */
