/* Private declarations shared by the library's source files. Not API. */
#ifndef DLOCK_INTERNAL_H
#define DLOCK_INTERNAL_H

#include "dlock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DLOCK__DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DLOCK__DEFAULT_COMMAND_TIMEOUT_MS 2000
#define DLOCK__DEFAULT_POOL_SIZE          4
#define DLOCK__DEFAULT_LEASE_MS           10000
#define DLOCK__DEFAULT_ATTEMPTS           3
#define DLOCK__DEFAULT_DELAY_MS           100
#define DLOCK__DEFAULT_WAIT_MS            1000
#define DLOCK__MAX_ID_LEN                 65536
#define DLOCK__MAX_TOKEN_LEN              512
#define DLOCK__UUID_LEN                   36

/* ---- error.c: the thread-local detail message ---- */

/* Formats the calling thread's message and returns rc, so callers write
 * `return dlock__err(DLOCK_EINVAL, "id is empty");`. */
int dlock__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "what: " (e.g. the server's address). Returns rc. */
int dlock__err_prefix(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dlock__err_clear(void);

/* ---- clock.c: monotonic milliseconds ---- */

int64_t dlock__now_ms(void);
/* now + ms, but never past the calling thread's deadline cap (see dlock__set_deadline_cap). Every
 * connect and command deadline is computed with it. */
int64_t dlock__deadline_in(int64_t ms);
/* Caps every deadline of the calling thread's dlock calls at `cap` (monotonic ms); 0 = no cap.
 * The renewal thread uses it so that no renewal outlives the lease it tries to save. */
void dlock__set_deadline_cap(int64_t cap);
/* Initialises a condition variable whose timed waits use the monotonic clock. */
void dlock__cond_init_monotonic(pthread_cond_t *cv);
/* Waits on cv (mu held) until signalled or until the monotonic time `until_ms`. */
void dlock__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms);
/* Sleeps until `ms` have passed (EINTR-safe). */
void dlock__sleep_ms(int64_t ms);
/* A blocked call looks at its cancel flag at least this often (dlock_lock_cancel). */
#define DLOCK__CANCEL_SLICE_MS 50
/* Sleeps `ms`, or less if *cancel becomes non-zero (checked every DLOCK__CANCEL_SLICE_MS).
 * Returns 1 if cancelled, 0 if the time passed. The flag is not reset. */
int dlock__sleep_cancellable(int64_t ms, atomic_int *cancel);
/* Full-jitter backoff: returns a pause uniform in [1, *backoff] ms and doubles *backoff up to
 * cap, so pollers spread out instead of retrying in lockstep. */
int64_t dlock__backoff_pause(int64_t *backoff, int64_t cap);
/* a + b, saturating at INT64_MAX; both non-negative. */
int64_t dlock__add_sat(int64_t a, int64_t b);

/* Waits until fd is ready for `events` (POLLIN/POLLOUT) or the monotonic deadline passes.
 * Returns DLOCK_OK, DLOCK_ETIMEDOUT, or DLOCK_EIO (poll failed). No message is set. */
int dlock__poll_fd(int fd, short events, int64_t deadline_ms);

/* ---- resolve.c ---- */

struct addrinfo;
/* Resolves host:port (TCP) before deadline_ms. Returns DLOCK_OK with *out (freeaddrinfo it),
 * DLOCK_ECONNECT with the getaddrinfo code in *gai_rc, DLOCK_ETIMEDOUT, ENOMEM or ESYS. No
 * message is set. */
int dlock__resolve(const char *host, int port, int64_t deadline_ms, struct addrinfo **out,
                   int *gai_rc);

/* ---- token.c ---- */

/* Writes a lowercase UUID v4 (36 chars + NUL) from getrandom. Returns DLOCK_OK or ESYS. */
int dlock__uuid4(char out[DLOCK__UUID_LEN + 1]);
/* Uniform random integer in [0, n) (n > 0), for backoff jitter. */
uint64_t dlock__random_below(uint64_t n);

/* ---- url.c: what a URL says ---- */

typedef enum dlock__scheme {
    DLOCK__SCHEME_REDIS,
    DLOCK__SCHEME_REDISS,
    DLOCK__SCHEME_UNIX,
    DLOCK__SCHEME_HTTP,
    DLOCK__SCHEME_HTTPS,
} dlock__scheme;

typedef struct dlock__url {
    dlock__scheme scheme;
    char *host;     /* without brackets; NULL for unix */
    int port;       /* 0 for unix */
    char *path;     /* unix socket path; for http(s) the whole URL without credentials */
    int db;         /* SELECT db; 0 = none */
    char *username; /* percent-decoded; NULL if absent */
    char *password; /* percent-decoded; NULL if absent */
} dlock__url;

/* Parses `text`. Returns DLOCK_OK, EINVAL (with a message that never contains the password) or
 * ENOMEM. On success the caller frees with dlock__url_free. */
int dlock__url_parse(const char *text, dlock__url *out);
void dlock__url_free(dlock__url *u);

/* ---- replies: the transport-neutral form of a Redis reply ---- */

typedef enum dlock__reply_type {
    DLOCK__REPLY_NIL = 0,
    DLOCK__REPLY_INT,
    DLOCK__REPLY_STR,   /* bulk string or status ("OK") */
    DLOCK__REPLY_ERROR, /* an error reply: str holds Redis's text */
    DLOCK__REPLY_ARRAY,
} dlock__reply_type;

typedef struct dlock__reply {
    dlock__reply_type type;
    long long integer;
    char *str; /* NUL-terminated too, for convenience; len is authoritative */
    size_t len;
    size_t elements;
    struct dlock__reply *element; /* array of `elements` replies */
} dlock__reply;

/* Frees what *r owns and zeroes it (r itself is the caller's). */
void dlock__reply_clear(dlock__reply *r);

/* One command: argc arguments with explicit lengths (binary-safe). */
typedef struct dlock__cmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
} dlock__cmd;

/* ---- the client's settings, as transports see them ---- */

typedef struct dlock__config {
    dlock__url url;
    int connect_timeout_ms;
    int command_timeout_ms;
    char *username, *password; /* effective credentials (options override URL) */
    char *tls_ca_file, *tls_ca_dir, *tls_cert_file, *tls_key_file, *tls_server_name;
    int tls_insecure;
    char *rest_token;                       /* Upstash REST bearer token; never printed */
    struct dlock__rest_shared *rest_shared; /* REST: state all connections share (rest.c) */
    void *tls_ctx; /* SSL_CTX *, made once per client by dlock__tls_ctx_new */
    char *display; /* "redis://host:port/db", no secrets; used as the message prefix */
} dlock__config;

/* ---- transport.h-style table: how a connection talks to its server ---- */

typedef struct dlock__conn dlock__conn;

typedef struct dlock__transport {
    const char *name;
    /* Opens one connection, authenticated and ready, within cfg->connect_timeout_ms. */
    int (*connect)(const dlock__config *cfg, dlock__conn **out);
    /* Sends n commands (pipelined) and reads n replies into replies[0..n-1], all before the
     * monotonic deadline_ms. Redis error replies are DLOCK__REPLY_ERROR, not failures. Returns
     * DLOCK_OK or a negative code; after a failure the connection is unusable. *sent tells
     * whether any byte of the request may have reached the server. */
    int (*exec)(dlock__conn *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                int64_t deadline_ms, int *sent);
    /* 1 if an idle connection still looks usable (no EOF or stray data pending). */
    int (*alive)(dlock__conn *c);
    void (*close)(dlock__conn *c);
    /* Reads one unsolicited reply (a pub/sub message on a subscribed connection) before
     * deadline_ms; DLOCK_ETIMEDOUT if none came. NULL where the transport cannot subscribe. */
    int (*read)(dlock__conn *c, dlock__reply *out, int64_t deadline_ms);
} dlock__transport;

extern const dlock__transport dlock__resp_transport;
#ifdef DLOCK_HAVE_REST
extern const dlock__transport dlock__rest_transport; /* rest.c: Upstash REST over libcurl */
typedef struct dlock__rest_shared dlock__rest_shared;
/* Makes / frees cfg->rest_shared, the read-your-writes token of one client. */
int dlock__rest_shared_new(dlock__config *cfg);
void dlock__rest_shared_free(dlock__config *cfg);
#endif

/* ---- tls.c ---- */

/* Builds the client's SSL_CTX from cfg (CA, client cert, verification) into cfg->tls_ctx. */
int dlock__tls_ctx_new(dlock__config *cfg);
void dlock__tls_ctx_free(dlock__config *cfg);
/* Runs the TLS handshake on connected socket fd before deadline_ms; *out is an SSL *. */
int dlock__tls_handshake(const dlock__config *cfg, int fd, int64_t deadline_ms, void **out);
/* Appends OpenSSL's queued error text to buf (for messages). */
void dlock__tls_error_text(char *buf, size_t size);

/* ---- client.c ---- */

typedef struct dlock__quorum dlock__quorum;

struct dlock_client {
    dlock__config cfg;
    const dlock__transport *tp;
    pthread_mutex_t mu; /* guards idle[] */
    dlock__conn **idle;
    int nidle, pool_size;
    dlock__quorum *quorum; /* Redlock (quorum.c): the members; NULL for one server */
};

/* quorum.c: stops the members' workers and closes them (dlock_client_close of a quorum). */
void dlock__quorum_free(dlock__quorum *q);

/* Runs n pipelined commands on a pooled connection with the command deadline. On failure the
 * connection is dropped and the message is prefixed with the server's name. *sent (may be NULL)
 * reports whether the request may have reached the server. */
int dlock__client_exec(dlock_client *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                       int *sent);
/* One command from argv/lens. */
int dlock__client_call(dlock_client *c, int argc, const char **argv, const size_t *lens,
                       dlock__reply *reply, int *sent);
/* Turns an error reply into DLOCK_ESERVER with Redis's text as the message. */
int dlock__reply_error(const dlock_client *c, const dlock__reply *r, const char *what);

/* ---- script.c: Lua scripts sent as EVALSHA, falling back to EVAL on NOSCRIPT ---- */

typedef struct dlock__script {
    const char *body;
    char sha[41]; /* filled once by dlock__scripts_init */
} dlock__script;

extern dlock__script dlock__script_release, dlock__script_extend, dlock__script_inspect,
    dlock__script_incr_expire, dlock__script_renew, dlock__script_acquire_fenced,
    dlock__script_queue_try, dlock__script_queue_release;

/* Runs `s` with nkeys keys followed by args (argc = nkeys + nargs entries in argv/lens). */
int dlock__script_run(dlock_client *c, dlock__script *s, int nkeys, int argc, const char **argv,
                      const size_t *lens, dlock__reply *reply, int *sent);

/* ---- subscribe.c: a connection subscribed to one pub/sub channel ---- */

/* Opens a connection of the client's transport and subscribes it to `channel`, within the
 * client's deadlines. Returns DLOCK_OK with *out, DLOCK_ESTATE if the transport cannot subscribe
 * (REST), or the connection's error. */
int dlock__sub_open(dlock_client *c, const char *channel, size_t len, dlock__conn **out);
/* Reads one message before deadline_ms: DLOCK_OK with *payload (the message's third element,
 * owned by *msg: clear msg after use), DLOCK_ETIMEDOUT, or an error (the connection is then
 * broken: close it). Replies that are not messages are returned with *payload NULL. */
int dlock__sub_read(dlock_client *c, dlock__conn *conn, dlock__reply *msg,
                    const dlock__reply **payload, int64_t deadline_ms);
void dlock__sub_close(dlock_client *c, dlock__conn *conn);
/* The command a script publishes hand-offs with: "publish" (or "spublish" on a cluster). */
const char *dlock__sub_publish_command(const dlock_client *c);

/* ---- keys.c: the keys that sit beside a lock id ---- */

/* Names key NAME beside `id` in id's Redis Cluster slot: "{ID}:NAME", or "{TAG}:NAME:ID" when id
 * has a non-empty hash tag {TAG}. Sets *len. Returns NULL with *ok = 0 for ids whose slot no
 * other key can share ('{' or '}' without a non-empty tag), NULL with *ok = 1 on ENOMEM. */
char *dlock__sibling_key(const char *id, size_t idlen, const char *name, size_t *len, int *ok);

/* ---- shared validation ---- */

int dlock__check_id(const char *id, const char *what);

#endif
