/* Test support: see support.h. Built with _GNU_SOURCE (tests/CMakeLists.txt) for POSIX calls. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

/* ---- Environment ------------------------------------------------------------------------- */

#define DLT_MAX_VARS 256

static struct {
    char *key;
    char *value;
} dlt_vars[DLT_MAX_VARS];
static int dlt_nvars;
static pthread_once_t dlt_env_once = PTHREAD_ONCE_INIT;

/* The env file is read once for the whole process; the strings live until exit on purpose
 * (tests hand them out as const char * freely), and an atexit hook frees them so valgrind's
 * leak report stays clean. */
static void dlt_env_free(void) {
    for (int i = 0; i < dlt_nvars; i++) {
        free(dlt_vars[i].key);
        free(dlt_vars[i].value);
    }
    dlt_nvars = 0;
}

static void dlt_env_load_file(const char *dir, size_t dirlen) {
    char path[4096];
    snprintf(path, sizeof path, "%.*s/env", (int)dirlen, dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL && dlt_nvars < DLT_MAX_VARS) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (eq == NULL || line[0] == '#') {
            continue;
        }
        *eq = '\0';
        dlt_vars[dlt_nvars].key = strdup(line);
        dlt_vars[dlt_nvars].value = strdup(eq + 1);
        dlt_nvars++;
    }
    fclose(f);
}

/* DLOCK_TEST_ENV_DIR may name several fixtures' directories, separated by ':' (a test that
 * needs the quorum servers and a Cluster, say); a key found in an earlier one wins. */
static void dlt_env_load(void) {
    const char *dir = getenv("DLOCK_TEST_ENV_DIR");
    if (dir == NULL || dir[0] == '\0') {
        return;
    }
    for (const char *d = dir; *d != '\0';) {
        size_t n = strcspn(d, ":");
        if (n > 0) {
            dlt_env_load_file(d, n);
        }
        d += n + (d[n] == ':');
    }
    atexit(dlt_env_free);
}

const char *dlt_transport(void) {
    const char *t = getenv("DLOCK_TEST_TRANSPORT");
    return t != NULL && t[0] != '\0' ? t : NULL;
}

static int dlt_transport_is(const char *name) {
    const char *t = dlt_transport();
    return t != NULL && strcmp(t, name) == 0;
}

int dlt_transport_is_rest(void) {
    return dlt_transport_is("rest") || dlt_transport_is_rest_h2();
}

int dlt_transport_is_rest_h2(void) {
    return dlt_transport_is("rest-h2");
}

int dlt_topology_is_cluster(void) {
    return dlt_transport_is("cluster");
}

int dlt_topology_is_sentinel(void) {
    return dlt_transport_is("sentinel");
}

const char *dlt_env(const char *key) {
    /* The REST variants of the suites run the same tests through the gateway in front of the
     * plain server: only the URL the clients use changes. */
    if (strcmp(key, "DLOCK_TEST_URL") == 0) {
        /* So do the Cluster and Sentinel runs: DLOCK_TEST_ENV_DIR is then the topology's. */
        key = dlt_transport_is_rest_h2()   ? "DLOCK_TEST_REST_H2_URL"
              : dlt_transport_is_rest()    ? "DLOCK_TEST_REST_URL"
              : dlt_topology_is_cluster()  ? "DLOCK_TEST_CLUSTER_URL"
              : dlt_topology_is_sentinel() ? "DLOCK_TEST_SENTINEL_URL"
                                           : key;
    }
    const char *v = getenv(key);
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    pthread_once(&dlt_env_once, dlt_env_load);
    for (int i = 0; i < dlt_nvars; i++) {
        if (strcmp(dlt_vars[i].key, key) == 0) {
            return dlt_vars[i].value;
        }
    }
    return NULL;
}

const char *dlt_env_require(const char *key) {
    const char *v = dlt_env(key);
    if (v == NULL) {
        fail_msg("%s is not set: run through ctest (fixture 'redis') or set DLOCK_TEST_ENV_DIR "
                 "to a directory made by tests/harness/redis-env.sh start DIR",
                 key);
    }
    return v;
}

int dlt_env_int(const char *key) {
    const char *v = dlt_env_require(key);
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n <= 0 || n > 1000000) {
        fail_msg("%s=%s is not a positive integer", key, v);
    }
    return (int)n;
}

/* ---- Ids, clocks --------------------------------------------------------------------------- */

int64_t dlt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dlt_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t dlt_slow(int64_t ms) {
    static int factor = 0;
    if (factor == 0) {
        const char *f = getenv("DLOCK_TEST_TIME_FACTOR");
        int v = f != NULL ? atoi(f) : 0;
        if (v < 1) {
            v = RUNNING_ON_VALGRIND ? 10 : 1;
        }
        factor = v;
    }
    return ms * factor;
}

const char *dlt_id(const char *tag) {
    static _Atomic unsigned counter;
    static _Thread_local char ring[16][160];
    static _Thread_local unsigned slot;
    static _Atomic unsigned seeded;
    static unsigned seed;
    if (!seeded++) {
        seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)dlt_now_ms();
    }
    unsigned n = counter++;
    char *buf = ring[slot++ % 16];
    /* pid + counter make ids unique within a run; the time-derived part keeps a rerun (same pid
     * after a wrap, or a leftover key of a killed run) from colliding. */
    snprintf(buf, sizeof ring[0], "dlock-test:%s:%ld:%u:%08x", tag, (long)getpid(), n,
             (seed * 2654435761u) ^ (unsigned)dlt_now_ms() ^ (n << 20));
    return buf;
}

static int dlt_is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int dlt_is_uuid_v4(const char *s) {
    if (s == NULL || strlen(s) != 36) {
        return 0;
    }
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        } else if (!dlt_is_lower_hex(s[i])) {
            return 0;
        }
    }
    /* Version nibble 4; variant bits 10xx, i.e. the first digit of group 4 is 8, 9, a or b. */
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

int dlt_contains(const char *haystack, const char *needle) {
    return haystack != NULL && needle != NULL && strcasestr(haystack, needle) != NULL;
}

/* ---- Clients ------------------------------------------------------------------------------- */

void dlt_assert_rc_at(int rc, int want, const char *expr, const char *file, int line) {
    if (rc != want) {
        const char *msg = dlock_errmsg();
        print_error("%s returned %d (%s), expected %d (%s); errmsg: \"%s\"\n", expr, rc,
                    dlock_strerror(rc), want, dlock_strerror(want), msg != NULL ? msg : "(null)");
        _fail(file, line);
    }
}

int dlt_client_open(dlock_client **out, const char *url, const dlock_client_options *options) {
    dlock_client_options o = {0};
    if (options != NULL) {
        o = *options;
    }
    if (o.rest_token == NULL && url != NULL && strncmp(url, "http", 4) == 0) {
        o.rest_token = getenv("DLOCK_TEST_REST_TOKEN");
    }
    /* The https run's proxy serves a certificate of the harness's CA. Only on that run: other
     * tests open https URLs with no CA on purpose (the system store must refuse it). */
    if (dlt_transport_is_rest_h2() && url != NULL && strncmp(url, "https:", 6) == 0 &&
        o.tls_ca_file == NULL && o.tls_ca_dir == NULL && !o.tls_insecure) {
        o.tls_ca_file = dlt_env("DLOCK_TEST_REST_CA");
    }
    return dlock_client_open(out, url, &o);
}

dlock_client *dlt_open(const char *url, const dlock_client_options *options) {
    dlock_client *c = NULL;
    int rc = dlt_client_open(&c, url, options);
    if (rc != DLOCK_OK) {
        fail_msg("dlock_client_open(%s) = %d (%s): %s", url, rc, dlock_strerror(rc),
                 dlock_errmsg());
    }
    assert_non_null(c);
    return c;
}

dlock_client *dlt_open_plain(void) {
    return dlt_open(dlt_env_require("DLOCK_TEST_URL"), NULL);
}

dlock_lock *dlt_lock_new(dlock_client *client, const char *id, const dlock_lock_options *options) {
    dlock_lock *l = NULL;
    int rc = dlock_lock_new(&l, client, id, options);
    if (rc != DLOCK_OK) {
        fail_msg("dlock_lock_new = %d (%s): %s", rc, dlock_strerror(rc), dlock_errmsg());
    }
    assert_non_null(l);
    return l;
}

/* ---- Raw Redis ------------------------------------------------------------------------------ */

redisContext *dlt_raw_connect(int port, const char *password) {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        fail_msg("raw connect to 127.0.0.1:%d: %s", port, c != NULL ? c->errstr : "no memory");
    }
    redisSetTimeout(c, tv);
    if (password != NULL) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fail_msg("raw AUTH on port %d failed", port);
        }
        freeReplyObject(r);
    }
    return c;
}

/* ---- Raw access on a Cluster or behind Sentinel ----
 *
 * On a Cluster a key lives on the master of its slot: a raw command is sent where the caller
 * sent it and, on -MOVED or -ASK, again to the node named (a connection of its own, closed
 * after the reply, so worker threads may do this too). KEYS and SCRIPT, which have no key, go to
 * every master (KEYS replies merged), since the caller means "the keys of this id" or "the
 * server the client uses". Behind Sentinel the raw connection is to the current master. */

static redisContext *dlt_raw_try_connect(const char *host, int port) {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* The node a "MOVED 3999 host:port" or "ASK 3999 host:port" error names. */
static int dlt_redirect(const redisReply *r, char *host, size_t size, int *port, int *ask) {
    if (r->type != REDIS_REPLY_ERROR) {
        return 0;
    }
    *ask = strncmp(r->str, "ASK ", 4) == 0;
    if (!*ask && strncmp(r->str, "MOVED ", 6) != 0) {
        return 0;
    }
    const char *addr = strrchr(r->str, ' '), *colon = strrchr(r->str, ':');
    if (addr == NULL || colon == NULL || colon < addr || (size_t)(colon - addr) > size) {
        return 0;
    }
    size_t n = (size_t)(colon - addr - 1);
    if (n == 0) {
        snprintf(host, size, "127.0.0.1"); /* the node that answered, which is on loopback */
    } else {
        snprintf(host, size, "%.*s", (int)n, addr + 1);
    }
    *port = atoi(colon + 1);
    return *port > 0;
}

static redisReply *dlt_raw_follow(redisContext *c, const char *fmt, va_list ap) {
    va_list aq;
    va_copy(aq, ap);
    redisReply *r = redisvCommand(c, fmt, aq);
    va_end(aq);
    char host[128];
    int port, ask;
    for (int hops = 0; r != NULL && hops < 5 && dlt_redirect(r, host, sizeof host, &port, &ask);
         hops++) {
        freeReplyObject(r);
        r = NULL;
        redisContext *n = dlt_raw_try_connect(host, port);
        if (n == NULL) {
            break;
        }
        if (ask) {
            freeReplyObject(redisCommand(n, "ASKING"));
        }
        va_copy(aq, ap);
        r = redisvCommand(n, fmt, aq);
        va_end(aq);
        redisFree(n);
    }
    return r;
}

/* Appends the elements of array `from` to array `into` (which takes them over). */
static int dlt_merge(redisReply *into, redisReply *from) {
    if (from->elements == 0) {
        return 0; /* and from->element may be NULL, which memcpy must not get */
    }
    size_t n = into->elements + from->elements;
    redisReply **e = realloc(into->element, (n > 0 ? n : 1) * sizeof *e);
    if (e == NULL) {
        return -1;
    }
    memcpy(e + into->elements, from->element, from->elements * sizeof *e);
    into->element = e;
    into->elements = n;
    from->elements = 0;
    return 0;
}

/* The command on every master of the cluster c belongs to. */
static redisReply *dlt_raw_every_master(redisContext *c, const char *fmt, va_list ap) {
    redisReply *slots = redisCommand(c, "CLUSTER SLOTS");
    if (slots == NULL || slots->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(slots);
        return NULL;
    }
    redisReply *out = NULL;
    int done[64], ndone = 0;
    for (size_t i = 0; i < slots->elements; i++) {
        redisReply *m = slots->element[i]->element[2];
        int port = (int)m->element[1]->integer, seen = 0;
        for (int k = 0; k < ndone; k++) {
            seen |= done[k] == port;
        }
        if (seen || ndone == 64) {
            continue;
        }
        done[ndone++] = port;
        redisContext *n =
            dlt_raw_try_connect(m->element[0]->len > 0 ? m->element[0]->str : "127.0.0.1", port);
        va_list aq;
        va_copy(aq, ap);
        redisReply *r = n != NULL ? redisvCommand(n, fmt, aq) : NULL;
        va_end(aq);
        redisFree(n);
        if (r == NULL) {
            freeReplyObject(out);
            out = NULL;
            break;
        }
        if (out == NULL || (r->type == REDIS_REPLY_ERROR && out->type != REDIS_REPLY_ERROR)) {
            freeReplyObject(out);
            out = r;
        } else {
            if (out->type == REDIS_REPLY_ARRAY && r->type == REDIS_REPLY_ARRAY) {
                (void)dlt_merge(out, r);
            }
            freeReplyObject(r);
        }
    }
    freeReplyObject(slots);
    return out;
}

static redisReply *dlt_raw_route(redisContext *c, const char *fmt, va_list ap) {
    if (dlt_topology_is_cluster() &&
        (strncasecmp(fmt, "KEYS ", 5) == 0 || strncasecmp(fmt, "SCRIPT ", 7) == 0)) {
        return dlt_raw_every_master(c, fmt, ap);
    }
    return dlt_raw_follow(c, fmt, ap);
}

/* The master's port as the first sentinel that answers says; 0 if none does. */
static int dlt_sentinel_master_port(void) {
    for (int n = 1; n <= 3; n++) {
        char key[64];
        snprintf(key, sizeof key, "DLOCK_TEST_SENTINEL_PORT_%d", n);
        const char *p = dlt_env(key), *name = dlt_env("DLOCK_TEST_SENTINEL_MASTER");
        redisContext *s =
            p != NULL && name != NULL ? dlt_raw_try_connect("127.0.0.1", atoi(p)) : NULL;
        redisReply *r =
            s != NULL ? redisCommand(s, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", name) : NULL;
        int port = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
                       ? atoi(r->element[1]->str)
                       : 0;
        freeReplyObject(r);
        redisFree(s);
        if (port > 0) {
            return port;
        }
    }
    return 0;
}

redisContext *dlt_raw_plain_try(void) {
    if (dlt_topology_is_sentinel()) {
        int port = dlt_sentinel_master_port();
        return port > 0 ? dlt_raw_try_connect("127.0.0.1", port) : NULL;
    }
    if (dlt_topology_is_cluster()) {
        /* Any node will do (a replica redirects too); the first that is up. */
        for (int n = 1; n <= 16; n++) {
            char key[64];
            snprintf(key, sizeof key, "DLOCK_TEST_CLUSTER_PORT_%d", n);
            const char *p = dlt_env(key);
            redisContext *c = p != NULL ? dlt_raw_try_connect("127.0.0.1", atoi(p)) : NULL;
            if (c != NULL) {
                return c;
            }
        }
        return NULL;
    }
    const char *p = dlt_env("DLOCK_TEST_PORT");
    return p != NULL ? dlt_raw_try_connect("127.0.0.1", atoi(p)) : NULL;
}

redisContext *dlt_raw_plain(void) {
    if (dlt_transport() == NULL || dlt_transport_is_rest()) {
        return dlt_raw_connect(dlt_env_int("DLOCK_TEST_PORT"), NULL);
    }
    redisContext *c = dlt_raw_plain_try();
    if (c == NULL) {
        fail_msg("no raw connection to the %s's %s (fixture not running?)", dlt_transport(),
                 dlt_topology_is_cluster() ? "nodes" : "master");
    }
    return c;
}

redisReply *dlt_raw_try(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = dlt_raw_route(c, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *dlt_raw_cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = dlt_raw_route(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        fail_msg("raw command \"%s\" failed: %s", fmt, c->errstr);
    }
    return r;
}

char *dlt_raw_get(redisContext *c, const char *key, size_t keylen, size_t *len) {
    redisReply *r = dlt_raw_cmd(c, "GET %b", key, keylen);
    char *out = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        out = malloc((size_t)r->len + 1);
        assert_non_null(out);
        memcpy(out, r->str, (size_t)r->len);
        out[r->len] = '\0';
        if (len != NULL) {
            *len = (size_t)r->len;
        }
    } else if (r->type != REDIS_REPLY_NIL) {
        int type = r->type;
        freeReplyObject(r);
        fail_msg("GET returned reply type %d", type);
    }
    freeReplyObject(r);
    return out;
}

long long dlt_raw_pttl(redisContext *c, const char *key, size_t keylen) {
    redisReply *r = dlt_raw_cmd(c, "PTTL %b", key, keylen);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

int dlt_raw_exists(redisContext *c, const char *key, size_t keylen) {
    redisReply *r = dlt_raw_cmd(c, "EXISTS %b", key, keylen);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    int v = r->integer > 0;
    freeReplyObject(r);
    return v;
}

void dlt_raw_del(redisContext *c, const char *key, size_t keylen) {
    freeReplyObject(dlt_raw_cmd(c, "DEL %b", key, keylen));
}

/* ---- Processes and sockets ------------------------------------------------------------------ */

const char *dlt_helper_path(void) {
    const char *p = getenv("DLOCK_TEST_HELPER");
    if (p == NULL || p[0] == '\0') {
        fail_msg("DLOCK_TEST_HELPER is not set (run through ctest)");
    }
    return p;
}

pid_t dlt_spawn(const char *const argv[]) {
    pid_t pid = fork();
    if (pid != 0) {
        return pid; /* parent, or -1 */
    }
    /* Child: only async-signal-safe calls until exec, since the parent may have threads. */
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    }
    /* execvp's prototype predates const; it does not modify the strings. */
    execvp(argv[0], (char *const *)argv);
    static const char msg[] = "dlt_spawn: exec failed: ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, argv[0], strlen(argv[0]));
    (void)!write(2, "\n", 1);
    _exit(127);
}

int dlt_wait(pid_t pid, int64_t timeout_ms) {
    int64_t deadline = dlt_now_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status)) {
                return WEXITSTATUS(status);
            }
            return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (dlt_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        dlt_sleep_ms(5);
    }
}

int dlt_run(const char *const argv[], int64_t timeout_ms) {
    pid_t pid = dlt_spawn(argv);
    if (pid < 0) {
        return -1;
    }
    return dlt_wait(pid, timeout_ms);
}

static int dlt_bind_loopback(struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa->sin_port = 0;
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
    socklen_t len = sizeof *sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

int dlt_silent_listener(int *port) {
    struct sockaddr_in sa;
    int fd = dlt_bind_loopback(&sa);
    assert_int_equal(listen(fd, 64), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

int dlt_closed_port(void) {
    struct sockaddr_in sa;
    int fd = dlt_bind_loopback(&sa);
    int port = ntohs(sa.sin_port);
    /* Bound but never listening, then closed: a connect to it is refused. Another process could
     * take the port in between, but the kernel hands out ports round-robin so that is rare. */
    close(fd);
    return port;
}

pid_t dlt_read_pid(const char *pidfile) {
    FILE *f = fopen(pidfile, "r");
    if (f == NULL) {
        return 0;
    }
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1) {
        pid = 0;
    }
    fclose(f);
    return (pid_t)pid;
}

int dlt_wait_for_redis(int port, const char *password, int64_t timeout_ms) {
    int64_t deadline = dlt_now_ms() + timeout_ms;
    while (dlt_now_ms() < deadline) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c != NULL && !c->err) {
            redisSetTimeout(c, tv);
            redisReply *r = password != NULL ? redisCommand(c, "AUTH %s", password) : NULL;
            freeReplyObject(r);
            r = redisCommand(c, "PING");
            int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            freeReplyObject(r);
            redisFree(c);
            if (ok) {
                return 1;
            }
        } else {
            redisFree(c);
        }
        dlt_sleep_ms(20);
    }
    return 0;
}

long long dlt_queue_len(redisContext *c, const char *id) {
    redisReply *r = dlt_raw_cmd(c, "LLEN {%s}:queue", id);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

void dlt_await_queue_len(redisContext *c, const char *id, long long n) {
    int64_t until = dlt_now_ms() + dlt_slow(3000);
    while (dlt_queue_len(c, id) != n) {
        if (dlt_now_ms() > until) {
            fail_msg("queue of %s: %lld entries, expected %lld", id, dlt_queue_len(c, id), n);
        }
        dlt_sleep_ms(5);
    }
}

/* ---- HTTP/2 through nghttpx ----------------------------------------------------------------- */

long dlt_h2_log_size(void) {
    const char *path = dlt_env("DLOCK_TEST_REST_H2_LOG");
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    if (f == NULL) {
        return 0;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    fclose(f);
    return size > 0 ? size : 0;
}

void dlt_assert_h2_since(long mark, int min_commands, int min_streams) {
    FILE *f = fopen(dlt_env_require("DLOCK_TEST_REST_H2_LOG"), "r");
    if (f == NULL || fseek(f, mark, SEEK_SET) != 0) {
        fail_msg("cannot read nghttpx's access log %s", dlt_env("DLOCK_TEST_REST_H2_LOG"));
    }
    char line[1024];
    int streams = 0, commands = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "h2 ", 3) != 0) {
            fclose(f);
            fail_msg("nghttpx served a request without HTTP/2: %s", line);
        }
        streams += strstr(line, "/subscribe/") != NULL;
        commands += strstr(line, "/subscribe/") == NULL;
    }
    fclose(f);
    print_message("nghttpx: %d command requests and %d streams, all over h2\n", commands, streams);
    if (commands < min_commands || streams < min_streams) {
        fail_msg("expected at least %d command requests and %d streams through nghttpx",
                 min_commands, min_streams);
    }
}

static struct {
    long mark;
    int min_commands, min_streams;
} dlt_h2_want;

static void dlt_test_all_http2(void **state) {
    (void)state;
    dlt_assert_h2_since(dlt_h2_want.mark, dlt_h2_want.min_commands, dlt_h2_want.min_streams);
}

int dlt_run_h2_check(long mark, int min_commands, int min_streams) {
    if (!dlt_transport_is_rest_h2()) {
        return 0;
    }
    dlt_h2_want.mark = mark;
    dlt_h2_want.min_commands = min_commands;
    dlt_h2_want.min_streams = min_streams;
    const struct CMUnitTest tests[] = {cmocka_unit_test(dlt_test_all_http2)};
    return cmocka_run_group_tests_name("rest-h2: every request negotiated HTTP/2", tests, NULL,
                                       NULL);
}

int dlt_transport_missing(void) {
    if (dlt_transport_is_rest_h2() && dlt_env("DLOCK_TEST_REST_H2_URL") == NULL) {
        fprintf(stderr, "skipped: no DLOCK_TEST_REST_H2_URL (the rest fixture starts nghttpx when "
                        "it is installed: apt-get install nghttp2-proxy)\n");
        return 1;
    }
    return 0;
}
