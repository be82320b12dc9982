/* cli.h: what the dlock command's source files share: exit codes, the connection options every
 * subcommand takes, and small helpers. Only the public dlock.h is used below this layer. */
#ifndef DLOCK_CLI_H
#define DLOCK_CLI_H

#include "dlock.h"

#include <getopt.h>
#include <stdint.h>

/* Exit codes. 1 is flock's "could not get the lock"; the rest come from sysexits.h so that each
 * kind of failure can be told apart by a script, and 126/127 are the shell's "could not run". */
#define CLI_EX_OK          0
#define CLI_EX_CONFLICT    1   /* lock held by someone else (run/acquire, see -E); not held */
#define CLI_EX_USAGE       64  /* EX_USAGE: bad option, duration, id or URL */
#define CLI_EX_NOINPUT     66  /* EX_NOINPUT: a --password-file/--token-file/--cacert unreadable */
#define CLI_EX_UNAVAILABLE 69  /* EX_UNAVAILABLE: Redis unreachable, timed out, connection lost */
#define CLI_EX_SOFTWARE    70  /* EX_SOFTWARE: internal error */
#define CLI_EX_OSERR       71  /* EX_OSERR: out of memory, fork or thread failure */
#define CLI_EX_LOST        75  /* EX_TEMPFAIL: run: the lock was lost while the command ran */
#define CLI_EX_PROTOCOL    76  /* EX_PROTOCOL: the server answered with an error or garbage */
#define CLI_EX_NOPERM      77  /* EX_NOPERM: password/token rejected, or TLS verification failed */
#define CLI_EX_CANNOT_EXEC 126 /* the command was found but could not be executed */
#define CLI_EX_NOT_FOUND   127 /* the command was not found */

/* The shortest lease run and acquire accept. Renewal runs every third of the lease, each renewal
 * is a round trip, and the library keeps a drift margin of 2 ms + 1% of the lease: below this a
 * network's ordinary delays would lose the lock. Durations are capped by DLOCK_MAX_DURATION_MS. */
#define CLI_MIN_LEASE_MS 100

/* The connection options every subcommand accepts. Secrets never come from the command line:
 * only from the environment or from a file named here. */
/* Most --url options: a Redlock's largest size (DLOCK_QUORUM_MAX). */
#define CLI_MAX_URLS DLOCK_QUORUM_MAX

typedef struct cli_common {
    const char *url;                /* the last --url */
    const char *urls[CLI_MAX_URLS]; /* every --url, in order: 3 or more make a Redlock */
    int nurls;                      /* how many were given (may exceed CLI_MAX_URLS: refused) */
    const char *user;
    const char *password_file;
    const char *token_file;
    const char *sentinel_user;          /* redis-sentinel://: the sentinels' own ACL user */
    const char *sentinel_password_file; /* and their password (else $DLOCK_SENTINEL_PASSWORD) */
    const char *cacert;
    int insecure;
    int quiet;
    int verbose;
} cli_common;

/* getopt_long codes of the common options (beyond any single character). */
enum {
    CLI_OPT_URL = 256,
    CLI_OPT_USER,
    CLI_OPT_PASSWORD_FILE,
    CLI_OPT_TOKEN_FILE,
    CLI_OPT_CACERT,
    CLI_OPT_INSECURE,
    CLI_OPT_SENTINEL_USER,
    CLI_OPT_SENTINEL_PASSWORD_FILE,
    CLI_OPT_HELP,
    CLI_OPT_FIRST_PRIVATE /* subcommands number their own long-only options from here */
};

#define CLI_COMMON_LONGOPTS                                                                        \
    {"url", required_argument, NULL, CLI_OPT_URL},                                                 \
        {"user", required_argument, NULL, CLI_OPT_USER},                                           \
        {"password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE},                         \
        {"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE},                               \
        {"sentinel-user", required_argument, NULL, CLI_OPT_SENTINEL_USER},                         \
        {"sentinel-password-file", required_argument, NULL, CLI_OPT_SENTINEL_PASSWORD_FILE},       \
        {"cacert", required_argument, NULL, CLI_OPT_CACERT},                                       \
        {"insecure", no_argument, NULL, CLI_OPT_INSECURE}, {"quiet", no_argument, NULL, 'q'},      \
        {"verbose", no_argument, NULL, 'v'}, {                                                     \
        "help", no_argument, NULL, 'h'                                                             \
    }
/* The short forms of the common options, for the end of each getopt_long option string. */
#define CLI_COMMON_SHORTOPTS "qvh"

/* The help text of the common options, appended to every subcommand's --help. */
extern const char cli_common_help[];
/* The exit-code table, appended to the top-level --help. */
extern const char cli_exit_help[];

/* Applies one common option. Returns 1 if `opt` was one, 0 if not. */
int cli_common_option(cli_common *c, int opt, const char *arg);

/* After parsing: -q and -v exclude each other. Returns 0 or CLI_EX_USAGE after saying so. */
int cli_check_verbosity(const char *cmd, const cli_common *c);

/* Reports an unknown option or missing argument (getopt returned '?' or ':'): getopt has
 * already printed why; add the pointer to --help. Returns CLI_EX_USAGE. */
int cli_usage_hint(const char *cmd);

/* Prints "dlock CMD: <message>" and the pointer to --help. Returns CLI_EX_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "dlock: <message>" on stderr (with -v, after a timestamp). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* With -v only: prints "TIMESTAMP dlock: <message>" on stderr, one line per event (waiting,
 * acquired, renewed, released, ...). The timestamp is local time, ISO 8601 with milliseconds. */
void cli_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 once -v/--verbose was given. */
int cli_verbose(void);

/* Milliseconds on the monotonic clock, for the CLI's own timings. */
int64_t cli_now_ms(void);

/* Checks a lock or debounce id from the command line (1 to DLOCK_MAX_ID_LEN bytes). Returns 0
 * or CLI_EX_USAGE after saying why. */
int cli_check_id(const char *cmd, const char *id);

/* Parses the duration argument of option `opt` into *out_ms; zero is refused unless zero_ok.
 * Returns 0 or CLI_EX_USAGE after naming the option and the problem. */
int cli_duration_arg(const char *cmd, const char *opt, const char *arg, int zero_ok,
                     int64_t *out_ms);

/* Parses an exit code (0-255) given to option `opt`. Returns 0 or CLI_EX_USAGE. */
int cli_exit_code_arg(const char *cmd, const char *opt, const char *arg, int *out);

/* Formats a duration in ms for people: "450ms", "7.2s", "2m05s", "1h30m". */
void cli_format_ms(int64_t ms, char *buf, size_t size);

/* Who this process is, for the lock's holder record (`dlock status` shows it): "host=H pid=P
 * since=UTC-TIME cmd=WORDS" with the command's words (argv, NULL-terminated) cut to fit. */
void cli_holder_text(char *buf, size_t size, const char *const *command);

/* Opens the client as the options and environment say (see cli_common_help). On failure prints
 * the cause and a fix and returns the exit code; 0 on success. */
int cli_connect(const cli_common *c, dlock_client **out);

/* Removes the secrets the CLI reads (DLOCK_PASSWORD, REDISCLI_AUTH, UPSTASH_REDIS_REST_TOKEN)
 * from its own environment, and so from any command it runs. cli_connect calls it once the
 * client is open (before any library thread exists). */
void cli_scrub_secrets(void);

/* Prints the failure `rc` (< 0) of a library call about `what` with the library's detail and a
 * hint at the fix, and returns the matching exit code. */
int cli_fail(int rc, const char *what);

/* cli_fail with the library's message given (from another thread), not read here. */
int cli_fail_msg(int rc, const char *what, const char *msg);

/* Subcommands. Each takes argv with argv[0] = the subcommand's name and returns the exit code. */
int cmd_run(int argc, char **argv, cli_common *common);
int cmd_acquire(int argc, char **argv, cli_common *common);
int cmd_release(int argc, char **argv, cli_common *common);
int cmd_extend(int argc, char **argv, cli_common *common);
int cmd_status(int argc, char **argv, cli_common *common);
int cmd_debounce(int argc, char **argv, cli_common *common);

#endif /* DLOCK_CLI_H */
