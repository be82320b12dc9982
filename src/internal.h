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
#define DLOCK__MAX_ID_LEN                 DLOCK_MAX_ID_LEN
#define DLOCK__MAX_TOKEN_LEN              DLOCK_MAX_TOKEN_LEN
#define DLOCK__UUID_LEN                   DLOCK_UUID_LEN

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
/* Lowers the calling thread's cap to `by` if that is sooner, and returns the cap it replaced, for
 * dlock__set_deadline_cap to put back: nested bounds (a renewal's lease end, then a command's
 * deadline) keep the tighter one. */
int64_t dlock__tighten_deadline_cap(int64_t by);
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

typedef struct dlock__hostport {
    char *host;
    int port;
} dlock__hostport;

typedef struct dlock__url {
    dlock__scheme scheme;   /* REDIS or REDISS for the sentinel schemes too (TLS or not) */
    char *host;             /* without brackets; NULL for unix */
    int port;               /* 0 for unix */
    dlock__hostport *extra; /* the rest of a host list "h1:p1,h2:p2,..." (seeds, sentinels) */
    size_t nextra;
    int sentinel;      /* redis-sentinel:// or rediss-sentinel://: the hosts are sentinels */
    char *master_name; /* sentinel: the #fragment, percent-decoded */
    char *path;        /* unix socket path; for http(s) the whole URL without credentials */
    int db;            /* SELECT db; 0 = none */
    char *username;    /* percent-decoded; NULL if absent */
    char *password;    /* percent-decoded; NULL if absent */
} dlock__url;

/* Parses `text`. Returns DLOCK_OK, EINVAL (with a message that never contains the password) or
 * ENOMEM. On success the caller frees with dlock__url_free. */
int dlock__url_parse(const char *text, dlock__url *out);
void dlock__url_free(dlock__url *u);
/* The URL for messages, without secrets: "redis://host:port/db", "unix:///path" or the REST URL,
 * with every host of a list and, for sentinels, "#master-name". */
void dlock__url_display(const dlock__url *u, char *buf, size_t size);

/* ---- reply.c: the transport-neutral form of a Redis reply, and its one builder ---- */

/* Limits every transport applies to a reply, checked in one place (dlock__reply_array). No
 * reply dlock asks for nests deeper than CLUSTER SLOTS (3 levels) or has more elements than
 * CLUSTER SLOTS on a map fragmented into single slots; larger ones are refused before anything
 * is allocated for them, so a broken or hostile peer's "*2147483647" costs nothing. */
#define DLOCK__REPLY_MAX_DEPTH    8     /* arrays nested in arrays (hiredis 0.14 stops at 8 too) */
#define DLOCK__REPLY_MAX_ELEMENTS 16384 /* elements of one array */

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
/* The builder. Each overwrites *r (which owns nothing yet) and returns DLOCK_OK, ENOMEM or (for
 * arrays past the limits above) EPROTO, with a message; on failure *r is still safe to clear. */
void dlock__reply_int(dlock__reply *r, long long v);
/* A string or error of len bytes copied from s, NUL-terminated; s == NULL leaves the bytes for
 * the caller to write into r->str. */
int dlock__reply_str(dlock__reply *r, dlock__reply_type type, const char *s, size_t len);
/* An array of n NIL elements at nesting `depth` (0 = the reply itself), to be filled in. */
int dlock__reply_array(dlock__reply *r, size_t n, int depth);

/* What an error reply means to the library: the one classifier of Redis's error texts. */
typedef enum dlock__srv_err {
    DLOCK__SRV_NONE = 0,    /* not an error reply */
    DLOCK__SRV_OTHER,       /* any other error: DLOCK_ESERVER with Redis's text */
    DLOCK__SRV_AUTH,        /* WRONGPASS, NOAUTH, NOPERM and older wordings: DLOCK_EAUTH */
    DLOCK__SRV_NOSCRIPT,    /* EVALSHA of a script the server does not have */
    DLOCK__SRV_MOVED,       /* cluster: the slot lives on another node ("MOVED slot host:port") */
    DLOCK__SRV_ASK,         /* cluster: ask that node once, after ASKING ("ASK slot host:port") */
    DLOCK__SRV_TRYAGAIN,    /* cluster: multi-key command during a migration */
    DLOCK__SRV_CLUSTERDOWN, /* cluster: down, or the slot is not served */
    DLOCK__SRV_READONLY,    /* a replica, or a demoted master (READONLY, UNBLOCKED) */
    DLOCK__SRV_LOADING,     /* the server is loading its data set */
} dlock__srv_err;

dlock__srv_err dlock__reply_error_kind(const dlock__reply *r);
/* DLOCK_EAUTH for a credential error reply, else DLOCK_ESERVER. */
int dlock__reply_error_rc(const dlock__reply *r);

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
    char *rest_token;                            /* Upstash REST bearer token; never printed */
    char *sentinel_username, *sentinel_password; /* for the sentinels only; never printed */
    char *display;  /* "redis://host:port/db", no secrets; used as the message prefix */
    void *tp_state; /* the transport's own per-client state (its init hook); opaque here */
} dlock__config;

/* ---- transport.h-style table: how a connection talks to its server ---- */

typedef struct dlock__conn dlock__conn;

typedef struct dlock__transport {
    const char *name;
    /* Makes what all connections of one client share (RESP: the SSL_CTX of rediss://; REST: the
     * read-your-writes token) into *state, which the client keeps in cfg->tp_state for connect;
     * fini frees it. The client calls init once, after filling cfg, and fini at close. */
    int (*init)(const dlock__config *cfg, void **state);
    void (*fini)(void *state);
    /* Opens one connection to cfg's address, authenticated and ready, within
     * cfg->connect_timeout_ms. */
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

    /* The split call: exec in two halves that never wait, so that one thread can drive many
     * connections with poll(2) (the quorum fan-out, quorum_poll.c). NULL where the transport
     * cannot split a call (REST). send formats n commands and writes what the socket takes now
     * (recv writes the rest); *sent as for exec. recv writes what is left of the request, reads
     * what has arrived, and returns DLOCK_OK with the next reply in *out, DLOCK__AGAIN with
     * *events (POLLIN or POLLOUT) to wait for on fd, or an error (the connection is then
     * unusable). A connection with a request not fully answered is not idle: after the caller's
     * last reply it may go back to a pool, or be abandoned (below), never be exec'd mid-way. */
    int (*send)(dlock__conn *c, const dlock__cmd *cmds, size_t n, int *sent);
    int (*recv)(dlock__conn *c, dlock__reply *out, short *events);
    int (*fd)(const dlock__conn *c);
    /* Gives up on the next n replies of the connection: they are read and dropped, before any
     * reply anyone asks for, as they come (exec, recv and alive all do), so the connection keeps
     * its order and can be pooled while they are on their way. Returns 1 if it can be pooled, 0
     * if it must be closed (its request is not all written). */
    int (*abandon)(dlock__conn *c, size_t n);
} dlock__transport;

/* recv (the split call): nothing more can be done until poll(2) reports the events. */
#define DLOCK__AGAIN 1000

extern const dlock__transport dlock__resp_transport;
#ifdef DLOCK_HAVE_REST
extern const dlock__transport dlock__rest_transport; /* rest.c: Upstash REST over libcurl */
/* The REST reply decoder, exposed for the fuzz target: `body` (len bytes) of a 2xx response to
 * n commands into replies[0..n-1]. Returns DLOCK_OK, EPROTO or ENOMEM (replies then cleared
 * by the caller as after exec). */
int dlock__rest_decode(const char *body, size_t len, size_t n, dlock__reply *replies);
/* The explanation in the body of a failed request, into out (always terminated). Returns 1 if it
 * was a proper {"error": "..."} envelope. */
int dlock__rest_error_text(const char *body, size_t len, char *out, size_t size);
#endif

/* ---- tls.c ---- */

/* Builds an SSL_CTX from cfg (CA, client cert, verification) into *out. */
int dlock__tls_ctx_new(const dlock__config *cfg, void **out);
void dlock__tls_ctx_free(void *ctx);
/* Runs the TLS handshake (SSL_CTX ctx) on connected socket fd before deadline_ms; *out is an
 * SSL *. */
int dlock__tls_handshake(const dlock__config *cfg, void *ctx, int fd, int64_t deadline_ms,
                         void **out);
/* Appends OpenSSL's queued error text to buf (for messages). */
void dlock__tls_error_text(char *buf, size_t size);

/* ---- pool.c: one server and its idle connections ---- */

typedef struct dlock__node dlock__node;

/* A node for base's server (host NULL: base is used as it is) or for host:port with base's
 * credentials, db, TLS settings and transport state. base must outlive the node. It connects
 * only when first used. */
int dlock__node_new(const dlock__config *base, const dlock__transport *tp, int pool_size,
                    const char *host, int port, dlock__node **out);
void dlock__node_free(dlock__node *n);
const char *dlock__node_host(const dlock__node *n);
int dlock__node_port(const dlock__node *n);
const char *dlock__node_display(const dlock__node *n);
/* Runs count pipelined commands on a pooled connection before deadline. A new connection it
 * needs is made before that deadline too (and within connect_timeout_ms), so a server that
 * accepts but does not answer, or a host that drops packets, costs no more than the command's
 * deadline. On failure the connection is dropped and the message names the node. Thread-safe. */
int dlock__node_exec(dlock__node *n, const dlock__cmd *cmds, size_t count, dlock__reply *replies,
                     int64_t deadline, int *sent);
/* A new connection of the node's own, outside the pool (for a subscription). */
int dlock__node_connect(dlock__node *n, dlock__conn **out);
/* Puts a healthy connection back into the pool (or closes it if the pool is full). */
void dlock__node_give_back(dlock__node *n, dlock__conn *conn);
/* An idle connection as it is, never a new one: 1 with *out, 0 if none is idle. The caller checks
 * it with the transport's alive (the quorum's poll path checks many with one poll(2)). */
int dlock__node_take_idle(dlock__node *n, dlock__conn **out);
const dlock__transport *dlock__node_transport(const dlock__node *n);

/* ---- cluster.c: Redis Cluster routing ---- */

typedef struct dlock__cluster dlock__cluster;

/* The hash slot (0..16383) of a key: CRC16 of its hash tag ({...}) if it has one, else of all. */
unsigned dlock__key_slot(const char *key, size_t len);
/* The index of the argument of c that routes it (see dlock__client_exec_key), -1 if none. */
int dlock__cmd_key(const dlock__cmd *c);
/* Reads the slot map through seed (which the cluster then owns, on success only). */
int dlock__cluster_new(const dlock__config *cfg, const dlock__transport *tp, int pool_size,
                       dlock__node *seed, dlock__cluster **out);
void dlock__cluster_free(dlock__cluster *cl);
/* Runs the commands (all in one slot) on the master of the slot of argument `key` of cmds[0] (0:
 * dlock__cmd_key decides; -1: any master), following MOVED, ASK and TRYAGAIN before deadline. */
int dlock__cluster_exec(dlock__cluster *cl, int key, const dlock__cmd *cmds, size_t n,
                        dlock__reply *replies, int64_t deadline, int *sent);
/* The master of slot by the current map (any master for -1); NULL if none is known. */
dlock__node *dlock__cluster_node_for(dlock__cluster *cl, int slot);
/* The node a MOVED or ASK error reply names (a MOVED also updates the map); NULL if unusable. */
dlock__node *dlock__cluster_follow(dlock__cluster *cl, const dlock__reply *redirect,
                                   const dlock__node *from);
/* Re-reads the slot map unless that was done moments ago. */
void dlock__cluster_refresh(dlock__cluster *cl, int64_t deadline);
/* Re-reads the slot map now, for a caller that has seen it name a replica as a master. */
void dlock__cluster_refresh_now(dlock__cluster *cl, int64_t deadline);
/* The node at host:port, known from now on if it was not; NULL if out of memory. */
dlock__node *dlock__cluster_node_at(dlock__cluster *cl, const char *host, int port);

/* ---- sentinel_watch.c: +switch-master, heard on a thread of its own ---- */

typedef struct dlock__switch_watch dlock__switch_watch;
/* Called on the watch's thread: the master named cfg->url.master_name is now host:port; or, with
 * host NULL, a switch may have been missed (the watch had to subscribe again). */
typedef void (*dlock__switch_fn)(void *arg, const char *host, int port);

/* Subscribes to +switch-master on each of the n sentinels (a thread each, subscribing again after
 * a broken connection) and calls on_switch, from those threads, for each switch of cfg's master
 * until stopped; the same switch is usually heard from several. sentinels, cfg and arg must
 * outlive the watch. *out stays NULL (and DLOCK_OK is returned) for a transport that cannot
 * subscribe. */
int dlock__switch_watch_start(dlock__node *const *sentinels, size_t n, const dlock__transport *tp,
                              const dlock__config *cfg, dlock__switch_fn on_switch, void *arg,
                              dlock__switch_watch **out);
/* Stops the thread (within about 100 ms, or a connect in progress) and frees the watch. */
void dlock__switch_watch_stop(dlock__switch_watch *w);

/* ---- sentinel.c: the master of a Sentinel group ---- */

typedef struct dlock__sentinel dlock__sentinel;

/* Asks cfg's sentinels (url.host and url.extra) for the master named url.master_name and
 * confirms it with ROLE, within the connect deadline; then listens for +switch-master
 * (sentinel_watch.c) so that a failover moves the client at once. */
int dlock__sentinel_new(const dlock__config *cfg, const dlock__transport *tp, int pool_size,
                        dlock__sentinel **out);
void dlock__sentinel_free(dlock__sentinel *s);
/* The current master (never NULL after a successful dlock__sentinel_new). */
dlock__node *dlock__sentinel_master(dlock__sentinel *s);
/* Runs the commands on the master, asking the sentinels again after a connection error or a
 * READONLY / UNBLOCKED reply, and resending what cannot have run, before deadline. */
int dlock__sentinel_exec(dlock__sentinel *s, const dlock__cmd *cmds, size_t n,
                         dlock__reply *replies, int64_t deadline, int *sent);

/* ---- client.c: the client, which routes each command to a node ---- */

typedef struct dlock__quorum dlock__quorum;

struct dlock_client {
    dlock__config cfg;
    const dlock__transport *tp;
    dlock__node *node;         /* the one server, when neither of the below */
    dlock__cluster *cluster;   /* when the URL named a node of a Redis Cluster */
    dlock__sentinel *sentinel; /* for redis-sentinel:// URLs */
    dlock__quorum *quorum;     /* Redlock (quorum.c): the members; NULL for one server */
};

/* quorum.c: stops the members' workers and closes them (dlock_client_close of a quorum). */
void dlock__quorum_free(dlock__quorum *q);

/* The server that is not a cluster: the one of the URL, or the Sentinel group's master now. */
dlock__node *dlock__client_node(dlock_client *c);
/* The node a split call (the transport's send/recv) may go to: the one server of a client whose
 * transport can split a call; NULL for Cluster, Sentinel, REST and Redlock clients, whose
 * routing (redirects, failover, HTTP) needs the whole exec. */
dlock__node *dlock__client_split_node(dlock_client *c);

/* Runs n pipelined commands with the command deadline on the server that owns their key: the
 * one server, or on a Cluster the master of the slot of argument `key` of cmds[0] (all the
 * commands must be in that slot, as every key of one lock id is). key 0 lets the routing find it
 * (dlock__cmd_key: argv[3] for EVAL/EVALSHA with keys, nothing for PING/INFO/SCRIPT/...,
 * otherwise argv[1]); -1 means any master. On failure the connection is dropped and the message
 * is prefixed with the server's name. *sent (may be NULL) reports whether the request may have
 * reached a server (a redirected attempt did not run). Thread-safe. */
int dlock__client_exec_key(dlock_client *c, int key, const dlock__cmd *cmds, size_t n,
                           dlock__reply *replies, int *sent);
/* dlock__client_exec_key with key 0. */
int dlock__client_exec(dlock_client *c, const dlock__cmd *cmds, size_t n, dlock__reply *replies,
                       int *sent);
/* One command from argv/lens (key 0). */
int dlock__client_call(dlock_client *c, int argc, const char **argv, const size_t *lens,
                       dlock__reply *reply, int *sent);
/* Turns an error reply into DLOCK_ESERVER (DLOCK_EAUTH for credential errors) with Redis's text
 * as the message. */
int dlock__reply_error(const dlock_client *c, const dlock__reply *r, const char *what);

/* ---- script.c: Lua scripts sent as EVALSHA, falling back to EVAL on NOSCRIPT ---- */

typedef struct dlock__script {
    const char *body;
    char sha[41]; /* filled once by dlock__scripts_init */
} dlock__script;

extern dlock__script dlock__script_release, dlock__script_extend, dlock__script_inspect,
    dlock__script_incr_expire, dlock__script_renew, dlock__script_acquire_fenced,
    dlock__script_queue_try, dlock__script_queue_release, dlock__script_inspect_details,
    dlock__script_quorum_acquire, dlock__script_quorum_fence;

/* Runs `s` with nkeys keys followed by args (argc = nkeys + nargs entries in argv/lens). */
int dlock__script_run(dlock_client *c, dlock__script *s, int nkeys, int argc, const char **argv,
                      const size_t *lens, dlock__reply *reply, int *sent);
/* The same with `after` (may be NULL) pipelined behind the script, on the same connection, its
 * reply in *after_reply (cleared by the caller, on DLOCK_OK only): for WAIT after a lock write. */
int dlock__script_run_then(dlock_client *c, dlock__script *s, int nkeys, int argc,
                           const char **argv, const size_t *lens, const dlock__cmd *after,
                           dlock__reply *reply, dlock__reply *after_reply, int *sent);
/* The arguments of `s` as EVALSHA (full 0) or as EVAL with its body (full 1), then nkeys, then
 * the argc keys and args, into av/al (argc + 3 entries; nk holds the key count's text). Returns
 * the number of arguments. For callers that send the command themselves (quorum_poll.c). */
int dlock__script_argv(dlock__script *s, int full, int nkeys, int argc, const char **argv,
                       const size_t *lens, const char **av, size_t *al, char nk[12]);
/* 1 if r is the NOSCRIPT error: the script did not run; send it again in full. */
int dlock__script_missing(const dlock__reply *r);

/* ---- replicas.c: WAIT after a lock write (dlock_lock_options.wait_replicas) ---- */

typedef struct dlock__wait {
    int replicas; /* 0 = off: cmd is not to be sent */
    int64_t timeout_ms;
    char nbuf[16], tbuf[24];
    const char *argv[3];
    size_t lens[3];
    dlock__cmd cmd; /* WAIT replicas timeout */
} dlock__wait;

/* Fills *w (which must not move afterwards: cmd points into it). */
void dlock__wait_init(dlock__wait *w, int replicas, int64_t timeout_ms);
/* Judges WAIT's reply: DLOCK_OK when at least w->replicas acknowledged, DLOCK_EREPLICAS (fewer)
 * or DLOCK_ESERVER/EPROTO (WAIT refused), with a message naming `what` (e.g. "acquire"). */
int dlock__wait_check(const dlock__wait *w, const dlock_client *c, const dlock__reply *r,
                      const char *what);

/* ---- subscribe.c: a connection subscribed to one pub/sub channel, routed like commands ----
 *
 * A subscription has a connection of its own, never pooled. It is SSUBSCRIBE (sharded pub/sub,
 * Redis 7) wherever the server has it: on a Cluster at the master of the channel's slot, so the
 * channel must carry the lock id's hash tag (dlock__sibling_key's names do), and on one server
 * too, because a pattern subscriber (PSUBSCRIBE *) receives no sharded message and so cannot make
 * a dead waiter look subscribed, nor read a grant. A server without SSUBSCRIBE gets SUBSCRIBE.
 * The script that publishes uses SPUBLISH or PUBLISH to match (the queue entry says which).
 * When the channel's slot moves (a migration, a failover), the server drops the subscription
 * (sunsubscribe) or the connection breaks: dlock__sub_read then fails, and a new dlock__sub_open
 * subscribes at the slot's new master. Messages published in between are lost, so callers keep
 * polling as a fallback. */

/* Opens a connection and subscribes it to `channel` (len bytes), within the client's
 * deadlines, following MOVED on a cluster; on REST, an SSE stream (sse.h) stands in for the
 * connection, and is never sharded. *sharded: on entry 1 to try SSUBSCRIBE first (0 =
 * SUBSCRIBE only); on return, 1 if the subscription is sharded. Returns DLOCK_OK with *out,
 * DLOCK_ESTATE if the transport or server cannot subscribe (a REST server without /subscribe),
 * DLOCK_ESERVER/EAUTH if the server refused, or the connection's error. Thread-safe; the connection
 * is then used by one thread at a time. */
int dlock__sub_open(dlock_client *c, const char *channel, size_t len, dlock__conn **out,
                    int *sharded);
/* Reads one message before deadline_ms: DLOCK_OK with *payload (the message's third element,
 * owned by *msg: clear msg after use), DLOCK_ETIMEDOUT, or an error (the connection is then
 * broken, or on a cluster the server dropped the subscription because the slot moved: close it
 * and open again). Replies that are not messages ("message" or "smessage") are returned with
 * *payload NULL. */
int dlock__sub_read(dlock_client *c, dlock__conn *conn, dlock__reply *msg,
                    const dlock__reply **payload, int64_t deadline_ms);
void dlock__sub_close(dlock_client *c, dlock__conn *conn);

/* ---- keys.c: the keys that sit beside a lock id ---- */

/* Names key NAME beside `id` in id's Redis Cluster slot: "{ID}:NAME", or "{TAG}:NAME:ID" when id
 * has a non-empty hash tag {TAG}. Sets *len. Returns NULL with *ok = 0 for ids whose slot no
 * other key can share ('{' or '}' without a non-empty tag), NULL with *ok = 1 on ENOMEM. */
char *dlock__sibling_key(const char *id, size_t idlen, const char *name, size_t *len, int *ok);

/* ---- shared validation ---- */

int dlock__check_id(const char *id, const char *what);

#endif
