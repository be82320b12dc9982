/* lockopts.h: what `dlock run` and `dlock acquire` share: the options that say how to take the
 * lock, and taking it (waiting, interruptible, with the conflict explained). */
#ifndef DLOCK_CLI_LOCKOPTS_H
#define DLOCK_CLI_LOCKOPTS_H

#include "cli.h"

struct lock_args {
    int64_t lease_ms;                 /* -l; default 10s, at least CLI_MIN_LEASE_MS */
    int64_t wait_ms;                  /* -w; 0 with wait_set means -n */
    int wait_set;                     /* -w given */
    int wait_forever;                 /* -w forever */
    int nonblock;                     /* -n */
    int conflict_exit;                /* -E; default CLI_EX_CONFLICT */
    int fencing;                      /* --fencing */
    int wait_replicas;                /* --wait-replicas N[/TIMEOUT]; 0 = off */
    int64_t wait_replicas_timeout_ms; /* its TIMEOUT; 0 = the library's default */
};

/* getopt_long codes of the long-only options here; run and acquire number theirs from
 * LOCK_OPT_FIRST_PRIVATE. */
enum { LOCK_OPT_FENCING = CLI_OPT_FIRST_PRIVATE, LOCK_OPT_WAIT_REPLICAS, LOCK_OPT_FIRST_PRIVATE };

#define LOCK_ARGS_SHORTOPTS "l:w:nE:"
#define LOCK_ARGS_LONGOPTS                                                                         \
    {"lease", required_argument, NULL, 'l'}, {"wait", required_argument, NULL, 'w'},               \
        {"nonblock", no_argument, NULL, 'n'},                                                      \
        {"conflict-exit-code", required_argument, NULL, 'E'},                                      \
        {"wait-replicas", required_argument, NULL, LOCK_OPT_WAIT_REPLICAS}, {                      \
        "fencing", no_argument, NULL, LOCK_OPT_FENCING                                             \
    }

/* The help lines of these options (without --fencing, whose text differs). */
extern const char lock_args_help[];

/* The defaults. */
void lock_args_init(struct lock_args *a);

/* Applies option `opt` if it is one of these. Returns 1 if it was (then *ex is 0 or the usage
 * error's exit code), 0 if not. */
int lock_args_option(const char *cmd, struct lock_args *a, int opt, const char *arg, int *ex);

/* Checks the options together, after parsing. Returns 0 or CLI_EX_USAGE after saying why. */
int lock_args_check(const char *cmd, const struct lock_args *a);

/* Takes `lock` (for id `id`) as the options say: one try (-n), waiting (-w), or the library's
 * tries; interruptible by SIGINT/SIGTERM/SIGHUP (then it _exits with 128+N). With -v, says when
 * it starts and when it holds the lock.
 * Returns 0 when the lock is held, else the exit code, after explaining: the conflict exit code
 * if another holder has the lock (said unless -q; a key that is not a lock, e.g. a list, is a
 * server error, exit 76, never a conflict), or the error's. */
int lock_take(const char *cmd, dlock_client *client, dlock_lock *lock, const struct lock_args *a,
              const cli_common *common);

#endif /* DLOCK_CLI_LOCKOPTS_H */
