/* dlock: distributed locks and distributed debounce on Redis.
 *
 * The C implementation of the npm package @upstash/lock. A lock is one Redis key, named by the
 * lock's id exactly, holding a random UUID v4 token with a lease (SET id token NX PX lease), so a
 * dlock process and an @upstash/lock process exclude each other on the same id. A debounce is a
 * counter under its id (INCR, wait, GET, compare), shared the same way.
 *
 * A lock on one Redis server that replicates asynchronously is best-effort: a failover can lose
 * the key and let two holders in (Kleppmann, "How to do distributed locking"). Use fencing
 * tokens where correctness matters, and read the README's "Guarantees" section.
 *
 * Conventions, true for every function below unless its own comment says otherwise:
 * - Every function returns an int: DLOCK_OK (0), a positive outcome that is not an error
 *   (DLOCK_NOT_ACQUIRED, DLOCK_NOT_HELD, DLOCK_SUPERSEDED), or a negative DLOCK_E* error.
 *   `rc < 0` is the one failure test. Values never change between releases.
 * - After a failure, dlock_errmsg() on the same thread names the cause (host, option, the
 *   server's text). No message ever contains a password or token.
 * - Options structs: zero-initialise (`dlock_lock_options o = {0};`); a zero field takes the
 *   documented default; a NULL pointer to options means all defaults. The library copies what it
 *   keeps, so the caller may free options (and the strings in them) when the call returns.
 * - Inputs are borrowed for the duration of the call. Handles made by dlock_X_new/open are freed
 *   with dlock_X_free/close; freeing NULL is a no-op.
 * - Every network operation has a deadline (connect_timeout_ms, command_timeout_ms).
 * - Thread-safety: a dlock_client may be shared by any number of threads. A dlock_lock or
 *   dlock_debounce handle may be used by one thread at a time (callers serialise); distinct
 *   handles on one client may be used concurrently.
 * - Processes: a client, lock or debounce made before fork() belongs to the parent; a child
 *   opens its own client (the connections and library threads are not the child's).
 */
#ifndef DLOCK_H
#define DLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(DLOCK_STATIC_BUILD)
#define DLOCK_API __attribute__((visibility("default")))
#else
#define DLOCK_API
#endif

/* ---- Version ------------------------------------------------------------------------------ */

#define DLOCK_VERSION_MAJOR 0
#define DLOCK_VERSION_MINOR 1
#define DLOCK_VERSION_PATCH 0
#define DLOCK_VERSION_NUM                                                                          \
    ((DLOCK_VERSION_MAJOR << 16) | (DLOCK_VERSION_MINOR << 8) | DLOCK_VERSION_PATCH)
#define DLOCK_VERSION_STRING "0.1.0"

/* The version of the library linked at run time, as "MAJOR.MINOR.PATCH". Static string.
 * Thread-safety: any thread. */
DLOCK_API const char *dlock_version(void);

/* ---- Return codes ------------------------------------------------------------------------- */

#define DLOCK_OK           0 /* success */
#define DLOCK_NOT_ACQUIRED 1 /* acquire: someone else holds the lock (not an error) */
#define DLOCK_NOT_HELD     2 /* release/extend: this handle does not hold the lock (not an error) */
#define DLOCK_SUPERSEDED   3 /* debounce: a later call superseded this one (not an error) */

#define DLOCK_EINVAL    -1  /* bad argument: NULL handle, empty id, bad option value, bad URL */
#define DLOCK_ENOMEM    -2  /* out of memory */
#define DLOCK_EIO       -3  /* connection broken while sending or receiving */
#define DLOCK_ETIMEDOUT -4  /* the connect or command deadline passed */
#define DLOCK_ECONNECT  -5  /* could not connect: refused, unreachable, name not resolved */
#define DLOCK_EAUTH     -6  /* the server rejected the credentials (AUTH, HTTP 401) */
#define DLOCK_ETLS      -7  /* TLS handshake or certificate verification failed */
#define DLOCK_ESERVER   -8  /* the server answered with an error (its text is in dlock_errmsg) */
#define DLOCK_EPROTO    -9  /* the server's reply was malformed or of an unexpected shape */
#define DLOCK_EHTTP     -10 /* REST transport: an HTTP status other than 2xx/400/401 */
#define DLOCK_ESTATE    -11 /* the call is not valid in the handle's current state */
#define DLOCK_ESYS      -12 /* a system call failed (threads, getrandom) */
#define DLOCK_ECANCELED -13 /* acquire: dlock_lock_cancel stopped it; the call holds nothing */
#define DLOCK_EREPLICAS -14 /* wait_replicas: too few replicas acknowledged the lock write */

/* ---- Limits --------------------------------------------------------------------------------- */

/* The bounds the calls check (DLOCK_EINVAL beyond them), named once for callers and tools:
 * the bytes in a lock or debounce id and in a token given to acquire or adopt (at least 1 each),
 * and the longest lease, extension, delay or debounce wait (10^12 ms, about 31 years). */
#define DLOCK_MAX_ID_LEN      65536
#define DLOCK_MAX_TOKEN_LEN   512
#define DLOCK_MAX_DURATION_MS ((int64_t)1000000000000)
#define DLOCK_MAX_HOLDER_LEN  1024

/* A static, human-readable name for a return code ("not acquired", "timed out", ...). Never
 * NULL; unknown codes give "unknown dlock code". Thread-safety: any thread. */
DLOCK_API const char *dlock_strerror(int rc);

/* The detailed message of the last failure of a dlock call made on the calling thread, e.g.
 * "127.0.0.1:6379: connection refused". Returns "" if no call on this thread has failed. A
 * successful call leaves "", and so does an outcome >= 0, except where its function says it
 * explains one (an acquire on a handle that already holds the lock).
 * Ownership: the string belongs to the library (thread-local storage) and stays valid until the
 * next dlock call on the same thread. Thread-safety: each thread reads its own message. */
DLOCK_API const char *dlock_errmsg(void);

/* ---- Client: a pool of connections to one Redis server --------------------------------- */

typedef struct dlock_client dlock_client;

/* Negative timeouts or pool_size are DLOCK_EINVAL. */
typedef struct dlock_client_options {
    int connect_timeout_ms;      /* deadline for connect + TLS + AUTH; 0 = 5000 */
    int command_timeout_ms;      /* deadline for one command's round trip, including a new
                                    connection it needs (which also keeps connect_timeout_ms);
                                    0 = 2000 */
    const char *username;        /* ACL user; overrides the URL's; NULL = from URL / "default" */
    const char *password;        /* overrides the URL's; NULL = from URL / none. Never printed. */
    const char *tls_ca_file;     /* PEM CA bundle for rediss://; NULL = system default store */
    const char *tls_ca_dir;      /* hashed CA directory for rediss://; NULL = system default */
    const char *tls_cert_file;   /* client certificate (PEM) for mutual TLS; NULL = none */
    const char *tls_key_file;    /* client private key (PEM); NULL = none */
    const char *tls_server_name; /* SNI and name to verify; NULL = the URL's host */
    int tls_insecure;            /* 1 = do not verify the server certificate (tests only!) */
    int pool_size;               /* idle connections kept for reuse; 0 = 4 */
    const char *rest_token; /* Upstash REST token for https:// URLs; NULL = none. Never printed. */
    const char *sentinel_username; /* redis-sentinel://: ACL user for the sentinels; NULL = none */
    const char *sentinel_password; /* the sentinels' own password; NULL = none (the URL's and
                                      username/password are the data nodes'). Never printed. */
    int quorum_timeout_ms; /* Redlock (dlock_client_open_quorum) only: how long one request waits
                              for each server's reply; 0 = lease/20, clamped to 10..100 ms (so
                              100 ms for the default 10 s lease). Capped by command_timeout_ms. */
} dlock_client_options;

/* Opens a client for `url`:
 *   redis://[user[:password]@]host[:port][/db]     plain TCP; port 6379, db 0 by default
 *   rediss://[user[:password]@]host[:port][/db]    TLS; the peer certificate is verified
 *   unix:///path/to/redis.sock[?db=N]               unix domain socket
 *   https://host[:port][/base]                      Upstash REST API (token: rest_token)
 *   http://host[:port][/base]                       the same without TLS, for local gateways
 *   redis-sentinel://[[user:]password@]host[:port][,host2[:port2]...][/db]#master-name
 *   rediss-sentinel://...                           the same with TLS to sentinels and nodes
 * Credentials in the URL are percent-decoded; options->username/password override them. IPv6
 * hosts are written in brackets: redis://[::1]:6379.
 * Redis Cluster: the URL of any node (master or replica) is enough; the client finds out at open
 * (INFO cluster) and sends each command to the master of its id's slot, following slot
 * migrations and failovers. Several seeds may be given for start-up, comma-separated:
 * redis://h1:7000,h2:7000 (the first that answers is used; a host list is refused for a server
 * that is not a cluster node).
 * Sentinel: the hosts are sentinels (port 26379 by default), asked in turn for the master named
 * after '#'; the answer is checked with ROLE, and asked again after a connection error or a
 * READONLY reply from a demoted master. The URL's credentials are the data nodes';
 * options->sentinel_username/sentinel_password are the sentinels'.
 * After a failover (Cluster or Sentinel) a held lock may be lost: replication is asynchronous,
 * so a write the old master acknowledged may never have reached the promoted replica.
 * The first connection (with TLS handshake, AUTH and SELECT) is made here, so a wrong address or
 * password fails at once. Further connections are made as threads need them.
 * Returns DLOCK_OK and sets *out, or an error (EINVAL, ECONNECT, ETIMEDOUT, EAUTH, ETLS, ...) and
 * sets *out to NULL.
 * Ownership: the caller closes *out with dlock_client_close. Thread-safety: any thread. */
DLOCK_API int dlock_client_open(dlock_client **out, const char *url,
                                const dlock_client_options *options);

/* Opens a client from the environment, the C counterpart of Redis.fromEnv(): UPSTASH_REDIS_REST_URL
 * with UPSTASH_REDIS_REST_TOKEN when the URL is set (options->rest_token, if given, wins), else
 * REDIS_URL, else redis://127.0.0.1:6379. Returns and ownership as dlock_client_open. */
DLOCK_API int dlock_client_open_env(dlock_client **out, const dlock_client_options *options);

/* The URL dlock_client_open_env would use: $UPSTASH_REDIS_REST_URL, else $REDIS_URL, else
 * "redis://127.0.0.1:6379". *source (if source is not NULL) is set to "UPSTASH_REDIS_REST_URL",
 * "REDIS_URL" or "the default". Ownership: points into the environment or a static string.
 * Thread-safety: as getenv. */
DLOCK_API const char *dlock_env_url(const char **source);

/* A printable description of the server this client talks to ("redis://127.0.0.1:6379/0"),
 * without credentials. Ownership: the client's; valid until dlock_client_close. */
DLOCK_API const char *dlock_client_server(const dlock_client *client);

/* Closes all connections and frees the client. Free every lock and debounce made on it first.
 * NULL is a no-op. Thread-safety: no other thread may use the client during or after this. */
DLOCK_API void dlock_client_close(dlock_client *client);

/* ---- Redlock: one lock over several independent Redis servers ---------------------------- */

#define DLOCK_QUORUM_MIN            3 /* fewest servers of a Redlock (1 or 2 tolerate no failure) */
#define DLOCK_QUORUM_MAX            31  /* most servers of a Redlock */
#define DLOCK_QUORUM_TIMEOUT_MIN_MS 10  /* default quorum_timeout_ms: lease/20, at least this */
#define DLOCK_QUORUM_TIMEOUT_MAX_MS 100 /* ... and at most this */

/* Opens a client over n independent Redis servers (masters that do not replicate to each other)
 * whose locks are Redlocks (redis.io, "Distributed locks with Redis"): a lock is held when a
 * majority Q = n/2 + 1 of the servers hold its key. Each URL is any URL dlock_client_open takes
 * (TCP, TLS, unix, Upstash REST, a Redis Cluster node or seed list, a Sentinel group), and
 * `options` apply to every server; each server becomes an ordinary client inside. A Cluster or
 * Sentinel member counts as one server: it sends the id's keys to its own master, following its
 * redirects and failovers (a failover inside it may lose that member's key, which then counts
 * as that member's loss). A request goes to all n servers at once, so it costs the round trip of
 * the slowest server whose answer is needed, and it is decided as soon as the answers decide it;
 * a server that does not answer within quorum_timeout_ms counts as failed, and nobody waits for
 * it any longer. The calling thread itself writes the request to each server's connection and
 * waits on all of them with poll(2); a server it cannot drive that way (a Cluster, Sentinel or
 * REST URL, whose routing needs a whole round trip, or one with no open connection, which takes
 * connecting) is sent the request by a library thread of its own, one per server.
 * Locks made on such a client keep every call's meaning and return codes:
 * - acquire sends SET id token NX PX lease (or, with fencing, the two-phase script below) to
 *   all n. It holds with Q successes and validity = lease - time since the first send - drift
 *   > 0. It returns DLOCK_NOT_ACQUIRED only when n - Q + 1 servers answered that the key
 *   exists (a majority is then impossible); when servers that failed or did not answer kept it
 *   from a majority, it returns an error whose message names each of them. After any failed
 *   attempt it deletes its key on every server that did not answer "exists" (one that timed
 *   out may have set it), then retries as attempts/delay say (the pause has jitter: uniform in
 *   [delay/2, delay]) or, with wait_ms, polls with full-jitter backoff (no hand-off wake-ups);
 *   a blocking acquire stops at once when more than n - Q servers fail (no majority can answer)
 *   and keeps polling while failures only tipped a contended vote.
 * - release and extend go to all n. release is DLOCK_OK when Q servers deleted the key,
 *   DLOCK_NOT_HELD when n - Q + 1 did not hold it, else an error. extend and auto-renew count
 *   only with Q confirmations and validity left; the lease then counted on is the one the
 *   Q servers with the longest leases hold. A server that lost the key (restarted without its
 *   data, flushed) is not given it back: the hold lives on the servers that kept it, and
 *   auto-renew's on_lost fires (DLOCK_LOST_TAKEN) once n - Q + 1 servers no longer hold it, or
 *   (DLOCK_LOST_EXPIRED) when no majority confirmed it before the lease ended.
 * - status is ACQUIRED when Q servers hold the token; inspect reports a holder when Q servers
 *   hold one value, with the lease the longest-lived Q of them hold.
 * - fencing: a number that strictly increases over all fenced acquisitions of the id, even
 *   while any minority of servers is down, paused, or restarted with its data. Phase 1, on each
 *   server in one script: SET NX PX and read that server's counter "{ID}:fence". With Q
 *   successes, t = 1 + the largest counter they read; phase 2 stores max(counter, t) on those
 *   servers if the key still holds the token; t is the token once Q stored it (else the
 *   acquire fails and deletes its keys). Any two such majorities share a server, where the
 *   later holder's SET NX succeeded only after the earlier key was gone, i.e. after t was
 *   stored there, so it reads at least t. What breaks it: a server that comes back without its
 *   counter (no persistence, FLUSHALL, a failover to a replica that missed the write). Run the
 *   servers with appendonly yes and appendfsync always, or keep a restarted server out for
 *   longer than the longest lease.
 * - debounce (dlock_debounce_new) is refused with DLOCK_EINVAL: a debounce counter is not a
 *   lock and has no majority rule. The lock option wait_replicas is refused (EINVAL): the
 *   servers are independent masters. The lock option `holder` is not recorded on a Redlock, and
 *   dlock_lock_inspect_details gives dlock_lock_inspect's majority view only (no holder text,
 *   fencing_counter 0).
 * Mutual exclusion needs a majority of servers to keep the key for the lease and clocks whose
 * rates differ by less than the drift margin; Kleppmann's critique (pauses, clock jumps) applies
 * in full, so protect the resource with the fencing token.
 * Open connects to all n in parallel and returns once every server answered, or a majority did
 * and the others had quorum_timeout_ms more (at most 100 ms by default). A server that cannot
 * be reached (refused, timed out, silent) is tolerated while a majority can be; its thread
 * tries it again, at most every 500 ms, when requests come. A wrong URL, password or
 * certificate of a server that answered fails the open. dlock_client_close does not wait for a
 * silent server either: a thread still blocked on one is left to finish its call (within
 * connect_timeout_ms or the member timeout) and then frees what it used.
 * Returns DLOCK_OK and sets *out, or EINVAL (n outside DLOCK_QUORUM_MIN..MAX, a NULL or
 * repeated URL, a bad option), ENOMEM, ESYS, or a server's error (then *out is NULL).
 * Ownership: close with dlock_client_close. Thread-safety: as any client; calls from several
 * threads run at once, each on its own pooled connection to every server (pool_size), and
 * queue behind each other only on a server's thread. */
DLOCK_API int dlock_client_open_quorum(dlock_client **out, const char *const *urls, size_t n,
                                       const dlock_client_options *options);

/* ---- Lock ------------------------------------------------------------------------------------ */

typedef struct dlock_lock dlock_lock;

/* Why an auto-renewed lock was lost (the `reason` of dlock_lock_lost_fn). */
#define DLOCK_LOST_TAKEN    1 /* extend found the key gone or held by another token */
#define DLOCK_LOST_EXPIRED  2 /* Redis could not be reached before the lease ran out */
#define DLOCK_LOST_MAX_HOLD 3 /* max_hold_ms was reached; renewal stopped and the lease ran out */

/* Called once, on the renewal thread, when an auto-renewed lock is lost. The lock's status then
 * reports FREE without a round trip. The callback may call status, release and the accessors;
 * acquire and adopt return DLOCK_ESTATE there, and freeing the lock there is not allowed. */
typedef void (*dlock_lock_lost_fn)(dlock_lock *lock, int reason, void *userdata);

/* Called on the renewal thread when a renewal failed (rc < 0, msg names the cause) but the lease
 * still leaves time, so renewal will be retried. msg is valid during the call only. */
typedef void (*dlock_lock_renew_error_fn)(dlock_lock *lock, int rc, const char *msg,
                                          void *userdata);

typedef struct dlock_lock_options {
    int64_t lease_ms; /* lease of each acquire; 0 = 10000. Must be > 0 if set. */
    int attempts;     /* total SET tries per acquire; 0 = 3. Must be >= 1 if set. */
    int64_t delay_ms; /* pause between tries (none after the last); 0 = 100. -1 = no pause. */
    int fencing;      /* 1 = each acquire also returns a fencing token (see below); 0 = plain
                         SET NX PX, one key, exactly what @upstash/lock does */
    int auto_renew;   /* 1 = after each successful acquire a library thread extends the lease
                         every renew_interval_ms until release or loss; 0 = never (no thread) */
    int64_t renew_interval_ms;  /* 0 = lease/3 */
    int64_t max_hold_ms;        /* auto-renew stops after holding this long; 0 = no cap */
    dlock_lock_lost_fn on_lost; /* auto-renew: called once if the lock is lost; may be NULL */
    void *userdata;             /* passed to on_lost */
    int64_t drift_ms; /* clock-drift margin for dlock_lock_validity_ms; 0 = 2 + lease/100 */
    dlock_lock_renew_error_fn on_renew_error; /* auto-renew: a retried failure; may be NULL */
    const char *holder; /* who holds it, for operators (e.g. "host=a pid=1 cmd=backup"): after each
                           acquire it is recorded beside the lock, in "{ID}:holder", for as long
                           as the lease, and dlock_lock_inspect_details shows it while this hold
                           lasts; at most DLOCK_MAX_HOLDER_LEN bytes; NULL = nothing recorded.
                           Best effort: failing to record it never fails a lock call. The lock
                           key itself is unchanged, as @upstash/lock expects. */
    int wait_replicas;  /* > 0: each acquire, extend and renewal also waits (WAIT, on the same
                           connection, pipelined after the lock write) until this many replicas
                           acknowledge the write; see "Replicas" below. 0 = off: no WAIT is sent */
    int64_t wait_replicas_timeout_ms; /* how long WAIT waits; 0 = 1000, at most half the client's
                                         command_timeout_ms; must be shorter than that timeout */
} dlock_lock_options;

/* Replicas (wait_replicas > 0). Redis replicates asynchronously: a lock write the master
 * acknowledged may not have reached any replica when the master fails, and the promoted replica
 * then has no lock (nor the fencing counter's increment), so a second holder gets in. With
 * wait_replicas = N each lock write is followed by WAIT N timeout, and a write fewer than N
 * replicas acknowledged in time does not count:
 * - acquire releases what it took (in the same call) and returns DLOCK_EREPLICAS;
 * - extend returns DLOCK_EREPLICAS (the master has the longer lease; validity is not extended);
 * - a renewal is reported to on_renew_error with DLOCK_EREPLICAS and retried; validity counts only
 *   confirmed renewals, so if none is confirmed before the lease ends, on_lost fires (EXPIRED).
 * This NARROWS the failover window; it does not close it. The replica that acknowledged is not
 * necessarily the one promoted, a write can be lost between the master's reply and WAIT's, and
 * an acknowledged write is in the replica's memory, not on its disk. It costs a round trip to
 * the replicas per lock write (more when they are slow). Needs a Redis that allows WAIT (some
 * hosted services refuse it: DLOCK_ESERVER). */

typedef struct dlock_acquire_options {
    int64_t lease_ms;  /* 0 = the lock's lease_ms */
    int attempts;      /* 0 = the lock's attempts */
    int64_t delay_ms;  /* 0 = the lock's delay_ms; -1 = no pause */
    const char *token; /* value to store instead of a random UUID (the seed's `uuid`); NULL or ""
                          = a fresh random UUID v4. At most DLOCK_MAX_TOKEN_LEN bytes, any
                          bytes but NUL. */
    int64_t wait_ms;   /* > 0: instead of attempts/delay, keep trying until this much time has
                          passed. The handle queues itself and a dlock release hands the lock
                          straight to the first live waiter (wake-on-release, FIFO); holders that
                          do not hand off (e.g. @upstash/lock) are polled every 250-500 ms. A
                          waiter whose process died, or that stopped waiting, is skipped by the
                          hand-off. Over REST the subscription is Upstash's SSE stream (POST
                          /subscribe); a server without it, or an id with no Cluster slot for a
                          queue, makes the waiter poll with capped exponential backoff and full
                          jitter (sleep uniform in [1, b] ms, b doubling from 10 to 500); 0 = use
                          attempts/delay */
} dlock_acquire_options;

typedef enum dlock_state { DLOCK_FREE = 0, DLOCK_ACQUIRED = 1 } dlock_state;

/* Makes a lock handle for `id` on `client`. Nothing is sent to Redis. The id is the Redis key,
 * exactly: any bytes but NUL, 1 to DLOCK_MAX_ID_LEN bytes (Redis keys are binary-safe; spaces,
 * quotes, newlines and UTF-8 are fine).
 * Returns DLOCK_OK, or DLOCK_EINVAL (NULL out/client/id, empty or over-long id, lease <= 0,
 * attempts < 1, delay < -1), DLOCK_ENOMEM. *out is NULL on failure.
 * Ownership: free with dlock_lock_free before closing the client. */
DLOCK_API int dlock_lock_new(dlock_lock **out, dlock_client *client, const char *id,
                             const dlock_lock_options *options);

/* Auto-renew, when lock options set auto_renew: after each successful acquire, a thread of the
 * library (one per lock handle, started on the first acquire) makes the remaining lease at least
 * its full length every renew_interval_ms (default lease/3) with an owner-checked script that
 * never shortens it (a lease made longer by dlock_lock_extend stays longer), on its own
 * pooled connection, so the user's work never delays it. A failed renewal that still leaves time
 * is retried (every interval/4, at least 20 ms) and reported to on_renew_error. If a renewal finds
 * the key gone or taken (DLOCK_LOST_TAKEN), or Redis stays unreachable until the lease is over
 * (DLOCK_LOST_EXPIRED), or max_hold_ms ends renewal and the lease runs out (DLOCK_LOST_MAX_HOLD),
 * on_lost fires once and status reports FREE. Release and free stop renewal for good. */

/* Frees the handle. It does NOT release the lock in Redis (call dlock_lock_release first); the
 * key then expires at the end of its lease. NULL is a no-op. */
DLOCK_API void dlock_lock_free(dlock_lock *lock);

/* Tries to take the lock: up to `attempts` times SET id token NX PX lease, pausing delay_ms
 * between tries and not after the last. `options` may be NULL (the lock's settings). With
 * options->wait_ms > 0 it instead waits until wait_ms have passed, queued for a hand-off (see
 * dlock_acquire_options.wait_ms); a handle that has waited keeps one extra connection, subscribed
 * to a channel of its own ("{ID}:grant:" and 16 random hex digits), until dlock_lock_free. While
 * a handle's blocking acquires find the lock free, each starts with one SET NX PX, as above;
 * after one had to wait, the next ones queue at once (no extra round trip under contention).
 * A hand-off counts as this call's only if it granted the queue entry of the call's latest try,
 * so its lease is counted from that try's send time; a grant that arrives too late for that is
 * checked in Redis first. A call holds only what it set itself or what was handed to it: a key
 * that already holds a custom token equal to this call's is someone else's.
 * If a reply is lost to a broken connection, the call reconnects and checks whether its SET took
 * effect (GET id) before it reports anything, so it does not report an error for a lock it holds;
 * if Redis cannot be reached for that check either, the error message says so, and a lock the
 * call may hold expires with its lease. A network error ends a blocking acquire at once (it is
 * not retried until wait_ms), so "Redis is down" is never mistaken for "still waiting".
 * Returns DLOCK_OK (held: dlock_lock_token gives the token), DLOCK_NOT_ACQUIRED (someone else
 * holds it after all attempts), or an error (EINVAL for bad options, EIO, ETIMEDOUT, ...).
 * On a handle that still holds the lock it returns DLOCK_NOT_ACQUIRED at once, as the seed's
 * second acquire fails, and dlock_errmsg() says "this handle already holds the lock" (one GET
 * finds that out; a blocking acquire does not wait for itself).
 * A failed acquire leaves a token the handle already held untouched.
 * Every path that ends a blocking acquire without the lock (deadline, error, cancel) leaves the
 * wait queue in the same call, or, when Redis cannot be reached to leave it, closes the
 * subscription so that no release hands the lock to it.
 * Returns DLOCK_ECANCELED when dlock_lock_cancel stopped it: the handle holds nothing; if Redis
 * could not be reached to leave the queue, the message says so, and a lock handed to the call
 * in that moment expires with its lease.
 * Thread-safety: one thread at a time per handle. */
DLOCK_API int dlock_lock_acquire(dlock_lock *lock, const dlock_acquire_options *options);

/* Stops the acquire running on `lock` in another thread, or, if none is running, the next
 * acquire to start on it: that call returns DLOCK_ECANCELED within about 50 ms plus one round
 * trip, after leaving the wait queue and passing on a lock that was handed to it meanwhile. An
 * acquire that had already succeeded is not undone (check its return code). For `dlock run`'s
 * Ctrl-C, and any caller that must stop waiting at once.
 * Returns DLOCK_OK, or DLOCK_EINVAL for NULL. Thread-safety: any thread (not from a signal
 * handler); the handle must stay alive until the acquire returns. */
DLOCK_API int dlock_lock_cancel(dlock_lock *lock);

/* Releases the lock if this handle's token still holds it (atomic Lua check-and-delete). After an
 * error (Redis unreachable, ...) the handle keeps its token, so the call can be retried; if the
 * message says the release may have taken effect, a retry's NOT_HELD means just that. If a
 * dlock handle waits for the id (wait_ms), the lock passes straight to the first live waiter
 * instead of being deleted, in the same script; that waiter's lease and fencing token apply.
 * Returns DLOCK_OK (deleted), DLOCK_NOT_HELD (not acquired by this handle, expired, or taken by
 * another holder), or an error. After OK or NOT_HELD the handle holds no token. After any return,
 * dlock_lock_validity_ms is 0: a release whose reply was lost may have taken effect. */
DLOCK_API int dlock_lock_release(dlock_lock *lock);

/* Adds `ms` milliseconds to the lock's remaining lease, if this handle still holds it (atomic
 * Lua check, PTTL, PEXPIRE; millisecond precision). `ms` must be > 0.
 * Returns DLOCK_OK, DLOCK_NOT_HELD, DLOCK_EINVAL (ms <= 0 or overflowing), or an error. */
DLOCK_API int dlock_lock_extend(dlock_lock *lock, int64_t ms);

/* Sets *out to DLOCK_ACQUIRED if the key holds this handle's token now, else DLOCK_FREE. A handle
 * with no token reports FREE without a round trip.
 * Returns DLOCK_OK or an error (then *out is DLOCK_FREE). */
DLOCK_API int dlock_lock_status(dlock_lock *lock, dlock_state *out);

/* Makes the handle hold `token` without a round trip, for a process that continues a hold
 * another process started (e.g. `dlock release ID TOKEN`). Fencing token and validity are unknown
 * (0) until the next extend. Returns DLOCK_OK, DLOCK_EINVAL (NULL, empty or over
 * DLOCK_MAX_TOKEN_LEN bytes), DLOCK_ESTATE (the handle auto-renews a hold of its own),
 * DLOCK_ENOMEM. */
DLOCK_API int dlock_lock_adopt(dlock_lock *lock, const char *token);

#define DLOCK_UUID_LEN 36

/* Writes a fresh random UUID v4 (lowercase, NUL-terminated; from the OS CSPRNG, getrandom): the
 * kind of token acquire makes when none is given, for a caller that must know the token before
 * acquire returns (to release it from another handle, say). Returns DLOCK_OK, DLOCK_EINVAL
 * (NULL), DLOCK_ESYS. Thread-safety: any thread. */
DLOCK_API int dlock_token_uuid(char out[DLOCK_UUID_LEN + 1]);

/* The lock's id. Ownership: the handle's, valid until dlock_lock_free. Never NULL for a valid
 * handle; NULL for a NULL handle. */
DLOCK_API const char *dlock_lock_id(const dlock_lock *lock);

/* The token this handle holds the lock with, or NULL when it holds none (never acquired, or
 * released). Ownership: the handle's, valid until the next acquire/release/free. */
DLOCK_API const char *dlock_lock_token(const dlock_lock *lock);

/* The fencing token of the current hold: a number that strictly increases across all fenced
 * acquisitions of this id, by any process, also across lease expiry. Pass it to the storage you
 * protect, which rejects writes carrying a token lower than one it has seen (Kleppmann's remedy).
 * Returns 0 when the handle holds nothing or the lock was made without `fencing`.
 * The lock key is still ID holding the token, so fenced, unfenced and @upstash/lock holders all
 * exclude each other. The counter lives in a second key, "{ID}:fence" (or "{TAG}:fence:ID" when
 * ID already has a Redis Cluster hash tag {TAG}), which never expires: it must survive every
 * lease to keep increasing. Both keys hash to one Cluster slot, and one Lua script sets the lock
 * and increments the counter in one round trip. Ids that contain '{' but no non-empty {TAG}
 * cannot be fenced (EINVAL): no second key can share their slot.
 * Thread-safety: one thread at a time per handle. */
DLOCK_API int64_t dlock_lock_fencing_token(const dlock_lock *lock);

/* How long the holder may still safely assume it holds the lock, in ms, as Redlock computes it:
 * the lease Redis confirmed by the last successful acquire, extend or renewal, minus the time
 * elapsed on the local monotonic clock since that request was SENT, minus the drift margin. A
 * renewal or extend whose reply was lost changes nothing here. 0 when not held, after release,
 * or when that time is over. Never a round trip. */
DLOCK_API int64_t dlock_lock_validity_ms(const dlock_lock *lock);

/* What Redis holds under a lock id, read atomically (one round trip), for tools and monitoring. */
typedef struct dlock_lock_info {
    int held;              /* 1 if the key exists */
    int64_t remaining_ms;  /* its remaining lease; -1 if it has no expiry; 0 if free */
    int token_matches;     /* 1 if `token` was given and is the value stored */
    char holder_token[80]; /* the stored value (truncated, NUL-terminated); "" if free */
} dlock_lock_info;

/* Reads the state of lock `id` without holding it. `token` may be NULL.
 * Returns DLOCK_OK with *out filled, or an error. Thread-safety: any thread. */
DLOCK_API int dlock_lock_inspect(dlock_client *client, const char *id, const char *token,
                                 dlock_lock_info *out);

/* More of what Redis holds under a lock id, for tools: the lock as dlock_lock_inspect reads it,
 * the holder's own description (lock option `holder`) and the fencing counter. */
typedef struct dlock_lock_details {
    dlock_lock_info info;
    char holder[DLOCK_MAX_HOLDER_LEN + 1]; /* "" if the current holder recorded nothing */
    int64_t fencing_counter;               /* the id's counter ("{ID}:fence"); 0 if none */
} dlock_lock_details;

/* Reads, atomically (one round trip), the lock's value and lease, the holder record when it
 * names the token that holds the lock now (a record left by an earlier holder is not shown), and
 * the fencing counter. Ids with no Cluster slot for sibling keys give the lock alone.
 * Returns DLOCK_OK with *out filled, or an error (EINVAL for NULL or a bad id).
 * Thread-safety: any thread. */
DLOCK_API int dlock_lock_inspect_details(dlock_client *client, const char *id,
                                         dlock_lock_details *out);

/* ---- Debounce -------------------------------------------------------------------------------- */

typedef struct dlock_debounce dlock_debounce;

/* Runs when a call was the last one within the wait. `arg`/`len` are the call's argument (a
 * library-owned copy, valid during the callback only). */
typedef void (*dlock_debounce_fn)(const void *arg, size_t len, void *userdata);

/* Receives the failure of an asynchronous dlock_debounce_call (e.g. Redis unreachable). rc is a
 * negative code; msg names the cause (valid during the callback only). Runs on the handle's
 * deciding thread, in call order, never at the same time as the handle's dlock_debounce_fn. */
typedef void (*dlock_debounce_error_fn)(int rc, const char *msg, void *userdata);

typedef struct dlock_debounce_options {
    int64_t wait_ms;                        /* quiet period; 0 = 1000 */
    dlock_debounce_fn callback;             /* required */
    void *userdata;                         /* passed to both callbacks */
    dlock_debounce_error_fn error_callback; /* NULL = errors of async calls are dropped */
} dlock_debounce_options;

/* Makes a debounce for `id` on `client`. The key `id` holds a counter shared by every caller
 * (dlock or @upstash/lock's Debounce) using that id. Each call sets the key's expiry to
 * 2 * wait_ms + 10 minutes, so an idle counter disappears (the seed's never do) yet never expires
 * under a waiting call. Nothing is sent to Redis and no thread is started here.
 * Returns DLOCK_OK, DLOCK_EINVAL (NULL argument, missing callback, bad id, wait < 0), ENOMEM.
 * Ownership: free with dlock_debounce_free before closing the client. */
DLOCK_API int dlock_debounce_new(dlock_debounce **out, dlock_client *client, const char *id,
                                 const dlock_debounce_options *options);

/* Counts one call and returns at once, like calling the seed's call() without awaiting it (the
 * seed sends its INCR before its first await). The library copies `arg` (len bytes; arg may be
 * NULL if len is 0) and passes the call to the handle's two threads (started by its first call):
 * - the counting thread sends INCR id at once, whatever the callback is doing (a handle's INCRs
 *   go one at a time, in call order). So a call counts from when it is made: it supersedes
 *   earlier calls and is superseded by later ones, of any handle or process, as in the seed;
 * - the deciding thread waits wait_ms from the INCR's reply, GETs id, and runs the callback if no
 *   other call came in between. Decisions of one handle run one after another, in call order, on
 *   this thread, so a slow callback delays the decisions of later calls of the same handle (never
 *   their counting); a decision made late is also superseded by calls made after its wait ended,
 *   up to its GET.
 * Returns DLOCK_OK (queued), DLOCK_EINVAL, DLOCK_ENOMEM, DLOCK_ESYS (a thread could not start).
 * The INCR is not awaited, so its failure is not in the return code: network errors are reported
 * to error_callback, later. */
DLOCK_API int dlock_debounce_call(dlock_debounce *debounce, const void *arg, size_t len);

/* Counts one call and blocks for the wait, like `await call()`: INCR, wait, GET, and runs the
 * callback on the calling thread if this was the last call.
 * Returns DLOCK_OK (this call ran the callback), DLOCK_SUPERSEDED (a later call came within the
 * wait; the callback did not run here), or an error. */
DLOCK_API int dlock_debounce_call_sync(dlock_debounce *debounce, const void *arg, size_t len);

/* Waits until every call made with dlock_debounce_call on this handle has been decided (and its
 * callback, if any, has returned). Among one handle's calls only the last can run the callback.
 * Returns DLOCK_OK, or DLOCK_EINVAL for NULL. Must not be called from the callback. */
DLOCK_API int dlock_debounce_flush(dlock_debounce *debounce);

/* Flushes, stops the handle's threads and frees the handle. NULL is a no-op. Must not be called
 * from the callback. */
DLOCK_API void dlock_debounce_free(dlock_debounce *debounce);

#ifdef __cplusplus
}
#endif

#endif /* DLOCK_H */
