/* run.c: `dlock run`, which holds a lock for exactly as long as a command runs. */
#include "child.h"
#include "cli.h"
#include "lockopts.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char run_help[] =
    "Usage: dlock run [options] ID [--] COMMAND [ARG...]\n"
    "       dlock run [options] ID -c 'SHELL COMMAND'   (or: dlock run -c 'SHELL COMMAND' ID)\n"
    "\n"
    "Acquire lock ID, run COMMAND while renewing the lock's lease, release the lock when\n"
    "COMMAND exits, and exit with COMMAND's status (128+N if signal N killed it).\n"
    "Options go before ID. COMMAND gets DLOCK_ID, DLOCK_TOKEN and, with --fencing,\n"
    "DLOCK_FENCING_TOKEN in its environment, and not DLOCK_PASSWORD, REDISCLI_AUTH or\n"
    "UPSTASH_REDIS_REST_TOKEN. SIGINT, SIGTERM and SIGHUP are passed on to COMMAND. The\n"
    "lock is released on every exit path. The lease is renewed every third of it.\n"
    "\n"
    "Options:\n"
    "%s"
    "  -c, --command CMD             run CMD with $SHELL -c (default /bin/sh), as flock -c\n"
    "      --fencing                 also take a fencing token: DLOCK_FENCING_TOKEN\n"
    "      --on-lost ACTION          if the lock is lost while COMMAND runs: term (SIGTERM,\n"
    "                                then SIGKILL after --kill-grace; default), kill\n"
    "                                (SIGKILL at once) or none (let COMMAND finish)\n"
    "      --kill-grace D            time between SIGTERM and SIGKILL (default 10s)\n"
    "      --lost-exit-code N        exit status when the lock was lost (default 75)\n"
    "\n"
    "Durations: 500ms, 1.5s, 10s, 2m, 1h; a bare number is seconds.\n"
    "\n";

enum { OPT_ON_LOST = LOCK_OPT_FIRST_PRIVATE, OPT_KILL_GRACE, OPT_LOST_EXIT };
enum lost_action { LOST_TERM, LOST_KILL, LOST_NONE };

static pthread_t main_thread;
static atomic_int lost_reason;
static atomic_int renew_failures; /* failed renewals since the last one that worked */

/* Runs on the library's renewal thread: record why and wake the main thread, which does the
 * rest (signalling the child is its job, and the lock must not be touched from here). */
static void on_lost(dlock_lock *lock, int reason, void *userdata) {
    (void)lock;
    (void)userdata;
    atomic_store(&lost_reason, reason);
    pthread_kill(main_thread, CHILD_SIG_LOST);
}

/* Runs on the renewal thread when a renewal failed but the lease still leaves time to retry.
 * During an outage the library retries several times a second, so this is said once, or with
 * -v once per run of failures (the main thread says when renewal recovers). */
static void on_renew_error(dlock_lock *lock, int rc, const char *msg, void *userdata) {
    static atomic_int said;
    const cli_common *common = userdata;
    (void)rc;
    int first_of_run = atomic_fetch_add(&renew_failures, 1) == 0;
    if (common->quiet) {
        return;
    }
    if (common->verbose ? first_of_run : atomic_exchange(&said, 1) == 0) {
        cli_error("renewing lock '%s' failed: %s; retrying until the lease ends",
                  dlock_lock_id(lock), msg);
    }
}

static const char *lost_text(int reason) {
    switch (reason) {
    case DLOCK_LOST_TAKEN:
        return "the key was deleted or another holder took it";
    case DLOCK_LOST_EXPIRED:
        return "Redis could not be reached before the lease ran out";
    case DLOCK_LOST_MAX_HOLD:
        return "the maximum hold time was reached";
    default:
        return "the lease could not be renewed";
    }
}

struct run_opts {
    struct lock_args lock;
    int64_t grace_ms;
    int lost_exit;
    enum lost_action on_lost;
    const char *shell_command; /* -c */
};

static void print_help(void) {
    printf(run_help, lock_args_help);
    fputs(cli_common_help, stdout);
}

/* Where COMMAND starts: after ID and an optional "--", or the flock form "ID -c CMD". */
static int command_args(int argc, char **argv, struct run_opts *o, int *first) {
    const char *id = argv[optind];
    *first = optind + 1;
    if (o->shell_command == NULL && *first + 2 == argc && strcmp(argv[*first], "-c") == 0) {
        o->shell_command = argv[*first + 1];
        *first = argc;
    } else if (*first < argc && strcmp(argv[*first], "--") == 0) {
        (*first)++;
    } else if (*first < argc && argv[*first][0] == '-') {
        return cli_usage_error("run",
                               "'%s' after ID: options go before ID (or put -- before "
                               "COMMAND if it starts with '-')",
                               argv[*first]);
    }
    if (o->shell_command != NULL && *first < argc) {
        return cli_usage_error("run", "-c and a COMMAND after ID exclude each other");
    }
    if (o->shell_command == NULL && *first >= argc) {
        return cli_usage_error("run", "missing COMMAND after ID '%s'", id);
    }
    return 0;
}

static int parse(int argc, char **argv, cli_common *common, struct run_opts *o, int *id_at,
                 int *first) {
    static const struct option longopts[] = {
        LOCK_ARGS_LONGOPTS,
        {"command", required_argument, NULL, 'c'},
        {"on-lost", required_argument, NULL, OPT_ON_LOST},
        {"kill-grace", required_argument, NULL, OPT_KILL_GRACE},
        {"lost-exit-code", required_argument, NULL, OPT_LOST_EXIT},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c, ex = 0;
    optind = 0; /* "+": stop at ID, so COMMAND's own options are left alone, as flock does */
    while (ex == 0 &&
           (c = getopt_long(argc, argv, "+" LOCK_ARGS_SHORTOPTS "c:" CLI_COMMON_SHORTOPTS, longopts,
                            NULL)) != -1) {
        if (cli_common_option(common, c, optarg) ||
            lock_args_option("run", &o->lock, c, optarg, &ex)) {
            continue;
        }
        switch (c) {
        case 'c':
            o->shell_command = optarg;
            break;
        case OPT_ON_LOST:
            if (strcmp(optarg, "term") == 0) {
                o->on_lost = LOST_TERM;
            } else if (strcmp(optarg, "kill") == 0) {
                o->on_lost = LOST_KILL;
            } else if (strcmp(optarg, "none") == 0) {
                o->on_lost = LOST_NONE;
            } else {
                ex = cli_usage_error("run", "--on-lost: '%s' is not term, kill or none", optarg);
            }
            break;
        case OPT_KILL_GRACE:
            ex = cli_duration_arg("run", "--kill-grace", optarg, 1, &o->grace_ms);
            break;
        case OPT_LOST_EXIT:
            ex = cli_exit_code_arg("run", "--lost-exit-code", optarg, &o->lost_exit);
            break;
        case 'h':
            print_help();
            exit(0);
        default:
            return cli_usage_hint("run");
        }
    }
    if (ex != 0 || (ex = cli_check_verbosity("run", common)) != 0 ||
        (ex = lock_args_check("run", &o->lock)) != 0) {
        return ex;
    }
    if (optind >= argc) {
        return cli_usage_error("run",
                               o->shell_command != NULL ? "missing ID" : "missing ID and COMMAND");
    }
    if ((ex = cli_check_id("run", argv[optind])) != 0) {
        return ex;
    }
    *id_at = optind;
    return command_args(argc, argv, o, first);
}

/* With -v: says when the lease was renewed, seen as the lock's validity growing (it only
 * shrinks between renewals), and when renewal recovered from failures. *validity is the last
 * value seen. */
static void watch_renewal(dlock_lock *lock, const char *lease, int64_t *validity) {
    int64_t v = dlock_lock_validity_ms(lock);
    if (v > *validity) {
        int failures = atomic_exchange(&renew_failures, 0);
        if (failures > 0) {
            cli_event("renewal of lock '%s' recovered after %d failed %s (lease %s)",
                      dlock_lock_id(lock), failures, failures == 1 ? "try" : "tries", lease);
        } else {
            cli_event("renewed lock '%s' (lease %s)", dlock_lock_id(lock), lease);
        }
    }
    *validity = v;
}

/* Runs the child to its end, dealing with forwarded signals and the loss of the lock. Returns
 * the child's wait status. */
static int supervise(pid_t pid, dlock_lock *lock, const struct run_opts *o, int64_t held_since,
                     int *lost) {
    const char *id = dlock_lock_id(lock);
    int64_t kill_at = -1; /* when SIGKILL follows SIGTERM, on the monotonic clock */
    /* -v looks at the validity twice per renewal interval (a third of the lease). */
    int64_t sample_ms = o->lock.lease_ms / 6 > 10 ? o->lock.lease_ms / 6 : 10;
    int64_t validity = dlock_lock_validity_ms(lock);
    char lease[32];
    cli_format_ms(o->lock.lease_ms, lease, sizeof lease);
    for (;;) {
        if (cli_verbose() && atomic_load(&lost_reason) == 0) {
            watch_renewal(lock, lease, &validity);
        }
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        int reason = atomic_load(&lost_reason);
        if (reason != 0 && !*lost) {
            char held[32], grace[32];
            *lost = reason;
            cli_format_ms(cli_now_ms() - held_since, held, sizeof held);
            cli_format_ms(o->grace_ms, grace, sizeof grace);
            if (o->on_lost == LOST_NONE) {
                cli_error("lost lock '%s' after %s: %s; letting the command finish", id, held,
                          lost_text(reason));
            } else if (o->on_lost == LOST_KILL || o->grace_ms == 0) {
                cli_error("lost lock '%s' after %s: %s; killing the command (pid %ld)", id, held,
                          lost_text(reason), (long)pid);
                kill(pid, SIGKILL);
            } else {
                cli_error("lost lock '%s' after %s: %s; sending SIGTERM to the command (pid %ld), "
                          "SIGKILL in %s",
                          id, held, lost_text(reason), (long)pid, grace);
                kill(pid, SIGTERM);
                kill_at = cli_now_ms() + o->grace_ms;
            }
        }
        siginfo_t si;
        int sig;
        int64_t left = -1; /* how long to wait for a signal; -1 = no limit */
        if (kill_at >= 0) {
            left = kill_at - cli_now_ms();
            if (left <= 0) {
                cli_error("the command (pid %ld) is still running; sending SIGKILL", (long)pid);
                kill(pid, SIGKILL);
                kill_at = -1;
                continue;
            }
        }
        if (cli_verbose() && (left < 0 || left > sample_ms)) {
            left = sample_ms;
        }
        if (left >= 0) {
            struct timespec ts = {left / 1000, (left % 1000) * 1000000};
            sig = sigtimedwait(child_signal_set(), &si, &ts);
        } else {
            sig = sigwaitinfo(child_signal_set(), &si);
        }
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            child_forward(pid, &si);
        }
        /* SIGCHLD, CHILD_SIG_LOST, a timeout or EINTR: the top of the loop checks each. */
    }
}

int cmd_run(int argc, char **argv, cli_common *common) {
    struct run_opts o = {.grace_ms = 10000, .lost_exit = CLI_EX_LOST, .on_lost = LOST_TERM};
    lock_args_init(&o.lock);
    int id_at = 0, first = 0, ex = parse(argc, argv, common, &o, &id_at, &first);
    if (ex != 0) {
        return ex;
    }
    const char *id = argv[id_at];
    char **command = argv + first;
    char *shell_argv[4];
    if (o.shell_command != NULL) {
        /* As flock -c: the user's shell, else /bin/sh. */
        const char *shell = getenv("SHELL");
        shell_argv[0] = (char *)(shell != NULL && shell[0] != '\0' ? shell : "/bin/sh");
        shell_argv[1] = (char *)"-c";
        shell_argv[2] = (char *)o.shell_command;
        shell_argv[3] = NULL;
        command = shell_argv;
    }

    dlock_client *client;
    if ((ex = cli_connect(common, &client)) != 0) {
        return ex;
    }
    main_thread = pthread_self();
    dlock_lock_options lo = {0};
    lo.lease_ms = o.lock.lease_ms;
    lo.auto_renew = 1;
    lo.on_lost = on_lost;
    lo.on_renew_error = on_renew_error;
    lo.userdata = common;
    lo.fencing = o.lock.fencing;
    lo.wait_replicas = o.lock.wait_replicas;
    lo.wait_replicas_timeout_ms = o.lock.wait_replicas_timeout_ms;
    char holder[512];
    cli_holder_text(holder, sizeof holder, (const char *const *)command);
    lo.holder = holder;
    dlock_lock *lock;
    int rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc < 0) {
        ex = cli_fail(rc, "run");
        dlock_client_close(client);
        return ex;
    }
    if ((ex = lock_take("run", client, lock, &o.lock, common)) != 0) {
        dlock_lock_free(lock);
        dlock_client_close(client);
        return ex;
    }
    int64_t held_since = cli_now_ms();

    /* The child's environment. setenv here, in the parent, since after fork only
     * async-signal-safe calls are allowed; our own environment is not read again. The secrets
     * are gone from it already (cli_connect). */
    char fence[24];
    setenv("DLOCK_ID", id, 1);
    setenv("DLOCK_TOKEN", dlock_lock_token(lock), 1);
    if (o.lock.fencing) {
        snprintf(fence, sizeof fence, "%" PRId64, dlock_lock_fencing_token(lock));
        setenv("DLOCK_FENCING_TOKEN", fence, 1);
    } else {
        unsetenv("DLOCK_FENCING_TOKEN");
    }

    int lost = 0;
    pid_t pid = child_spawn(command);
    if (pid < 0) {
        ex = CLI_EX_OSERR;
    } else {
        cli_event("started the command (pid %ld)", (long)pid);
        ex = child_exit_code(supervise(pid, lock, &o, held_since, &lost));
        cli_event("the command exited with status %d", ex);
    }

    if (lost == 0) {
        lost = atomic_load(&lost_reason); /* lost after the child's exit, before the release */
    }
    /* A lost lock has nothing left to release, and Redis may be the reason it was lost: a
     * release would only wait out the command timeout. */
    rc = lost != 0 ? DLOCK_OK : dlock_lock_release(lock);
    char held[32];
    cli_format_ms(cli_now_ms() - held_since, held, sizeof held);
    if (lost != 0) {
        ex = o.lost_exit;
    } else if (rc == DLOCK_NOT_HELD) {
        cli_error("lock '%s' had expired or been taken by the time the command finished", id);
        ex = o.lost_exit;
    } else if (rc < 0) {
        char lease[32];
        cli_format_ms(o.lock.lease_ms, lease, sizeof lease);
        cli_fail(rc, "releasing the lock");
        cli_error("lock '%s' will expire within %s", id, lease);
    } else {
        cli_event("released lock '%s' after holding it %s", id, held);
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return ex;
}
