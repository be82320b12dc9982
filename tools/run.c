/* run.c: `dlock run`, which holds a lock for exactly as long as a command runs. */
#include "child.h"
#include "cli.h"
#include "waiter.h"

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
    "\n"
    "Acquire lock ID, run COMMAND while renewing the lock's lease, release the lock when\n"
    "COMMAND exits, and exit with COMMAND's status (128+N if signal N killed it).\n"
    "Options go before ID. COMMAND gets DLOCK_ID, DLOCK_TOKEN and, with --fencing,\n"
    "DLOCK_FENCING_TOKEN in its environment. SIGINT, SIGTERM and SIGHUP are passed on to\n"
    "COMMAND. The lock is released on every exit path.\n"
    "\n"
    "Options:\n"
    "  -l, --lease D                 lease of the lock, renewed every D/3 while COMMAND\n"
    "                                runs (default 10s)\n"
    "  -w, --wait D                  wait up to D for the lock (-w 0 is -n)\n"
    "  -n, --nonblock                fail at once if the lock is held\n"
    "                                (without -w or -n: 3 tries 100ms apart)\n"
    "  -E, --conflict-exit-code N    exit status when the lock is held (default 1)\n"
    "      --fencing                 also take a fencing token: DLOCK_FENCING_TOKEN\n"
    "      --on-lost ACTION          if the lock is lost while COMMAND runs: term (SIGTERM,\n"
    "                                then SIGKILL after --kill-grace; default), kill\n"
    "                                (SIGKILL at once) or none (let COMMAND finish)\n"
    "      --kill-grace D            time between SIGTERM and SIGKILL (default 10s)\n"
    "      --lost-exit-code N        exit status when the lock was lost (default 75)\n"
    "\n"
    "Durations: 500ms, 1.5s, 10s, 2m, 1h; a bare number is seconds.\n"
    "\n";

enum { OPT_FENCING = CLI_OPT_FIRST_PRIVATE, OPT_ON_LOST, OPT_KILL_GRACE, OPT_LOST_EXIT };
enum lost_action { LOST_TERM, LOST_KILL, LOST_NONE };

static pthread_t main_thread;
static atomic_int lost_reason;

/* Runs on the library's renewal thread: record why and wake the main thread, which does the
 * rest (signalling the child is its job, and the lock must not be touched from here). */
static void on_lost(dlock_lock *lock, int reason, void *userdata) {
    (void)lock;
    (void)userdata;
    atomic_store(&lost_reason, reason);
    pthread_kill(main_thread, CHILD_SIG_LOST);
}

/* Runs on the renewal thread when a renewal failed but the lease still leaves time to retry.
 * Said once: during an outage the library retries several times a second. */
static void on_renew_error(dlock_lock *lock, int rc, const char *msg, void *userdata) {
    static atomic_int said;
    const int *quiet = userdata;
    (void)rc;
    if (!*quiet && atomic_exchange(&said, 1) == 0) {
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

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct run_opts {
    int64_t lease_ms, wait_ms, grace_ms;
    int nonblock, wait_set, conflict_exit, lost_exit, fencing;
    enum lost_action on_lost;
};

static int parse(int argc, char **argv, cli_common *common, struct run_opts *o, int *id_at,
                 int *first) {
    static const struct option longopts[] = {
        {"lease", required_argument, NULL, 'l'},
        {"wait", required_argument, NULL, 'w'},
        {"nonblock", no_argument, NULL, 'n'},
        {"conflict-exit-code", required_argument, NULL, 'E'},
        {"fencing", no_argument, NULL, OPT_FENCING},
        {"on-lost", required_argument, NULL, OPT_ON_LOST},
        {"kill-grace", required_argument, NULL, OPT_KILL_GRACE},
        {"lost-exit-code", required_argument, NULL, OPT_LOST_EXIT},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c, ex = 0;
    optind = 0; /* "+": stop at ID, so COMMAND's own options are left alone, as flock does */
    while (ex == 0 && (c = getopt_long(argc, argv, "+l:w:nE:qh", longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg)) {
            continue;
        }
        switch (c) {
        case 'l':
            ex = cli_duration_arg("run", "--lease", optarg, 0, &o->lease_ms);
            break;
        case 'w':
            ex = cli_duration_arg("run", "--wait", optarg, 1, &o->wait_ms);
            o->wait_set = 1;
            break;
        case 'n':
            o->nonblock = 1;
            break;
        case 'E':
            ex = cli_exit_code_arg("run", "--conflict-exit-code", optarg, &o->conflict_exit);
            break;
        case OPT_FENCING:
            o->fencing = 1;
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
            fputs(run_help, stdout);
            fputs(cli_common_help, stdout);
            exit(0);
        default:
            return cli_usage_hint("run");
        }
    }
    if (ex != 0) {
        return ex;
    }
    if (o->nonblock && o->wait_set && o->wait_ms > 0) {
        return cli_usage_error("run", "--nonblock and --wait exclude each other");
    }
    if (optind >= argc) {
        return cli_usage_error("run", "missing ID and COMMAND");
    }
    if ((ex = cli_check_id("run", argv[optind])) != 0) {
        return ex;
    }
    *id_at = optind;
    *first = optind + 1;
    if (*first < argc && strcmp(argv[*first], "--") == 0) {
        (*first)++;
    } else if (*first < argc && argv[*first][0] == '-') {
        return cli_usage_error("run",
                               "'%s' after ID: options go before ID (or put -- before "
                               "COMMAND if it starts with '-')",
                               argv[*first]);
    }
    if (*first >= argc) {
        return cli_usage_error("run", "missing COMMAND after ID '%s'", argv[optind]);
    }
    return 0;
}

/* Runs the child to its end, dealing with forwarded signals and the loss of the lock. Returns
 * the child's wait status. */
static int supervise(pid_t pid, const char *id, const struct run_opts *o, int64_t held_since,
                     int *lost) {
    int64_t kill_at = -1; /* when SIGKILL follows SIGTERM, on the monotonic clock */
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        int reason = atomic_load(&lost_reason);
        if (reason != 0 && !*lost) {
            char held[32], grace[32];
            *lost = reason;
            cli_format_ms(now_ms() - held_since, held, sizeof held);
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
                kill_at = now_ms() + o->grace_ms;
            }
        }
        siginfo_t si;
        int sig;
        if (kill_at >= 0) {
            int64_t left = kill_at - now_ms();
            if (left <= 0) {
                cli_error("the command (pid %ld) is still running; sending SIGKILL", (long)pid);
                kill(pid, SIGKILL);
                kill_at = -1;
                continue;
            }
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
    struct run_opts o = {.lease_ms = 10000,
                         .grace_ms = 10000,
                         .conflict_exit = CLI_EX_CONFLICT,
                         .lost_exit = CLI_EX_LOST,
                         .on_lost = LOST_TERM};
    int id_at = 0, first = 0, ex = parse(argc, argv, common, &o, &id_at, &first);
    if (ex != 0) {
        return ex;
    }
    const char *id = argv[id_at];
    char **command = argv + first;

    dlock_client *client;
    if ((ex = cli_connect(common, &client)) != 0) {
        return ex;
    }
    main_thread = pthread_self();
    dlock_lock_options lo = {0};
    lo.lease_ms = o.lease_ms;
    lo.auto_renew = 1;
    lo.on_lost = on_lost;
    lo.on_renew_error = on_renew_error;
    lo.userdata = &common->quiet;
    lo.fencing = o.fencing;
    dlock_lock *lock;
    int rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc < 0) {
        ex = cli_fail(rc, "run");
        dlock_client_close(client);
        return ex;
    }
    dlock_acquire_options ao = {0};
    if (o.nonblock || (o.wait_set && o.wait_ms == 0)) {
        ao.attempts = 1;
    } else if (o.wait_ms > 0) {
        ao.wait_ms = o.wait_ms;
    }
    /* From here on the signals are taken by sigtimedwait only, in this thread. */
    child_block_signals();
    int sig;
    rc = waiter_acquire(client, lock, &ao, isatty(STDERR_FILENO) && !common->quiet, &sig);
    if (rc == WAITER_INTERRUPTED) {
        if (!common->quiet) {
            cli_error("interrupted while waiting for lock '%s'", id);
        }
        _exit(128 + sig);
    }
    if (rc != DLOCK_OK) {
        if (rc == DLOCK_NOT_ACQUIRED) {
            if (!common->quiet) {
                waiter_report_conflict(client, id);
            }
            ex = o.conflict_exit;
        } else {
            ex = cli_fail_msg(rc, NULL, waiter_errmsg());
        }
        dlock_lock_free(lock);
        dlock_client_close(client);
        return ex;
    }
    int64_t held_since = now_ms();

    /* The child's environment. setenv here, in the parent, since after fork only
     * async-signal-safe calls are allowed; our own environment is not read again. */
    char fence[24];
    setenv("DLOCK_ID", id, 1);
    setenv("DLOCK_TOKEN", dlock_lock_token(lock), 1);
    if (o.fencing) {
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
        ex = child_exit_code(supervise(pid, id, &o, held_since, &lost));
    }

    if (lost == 0) {
        lost = atomic_load(&lost_reason); /* lost after the child's exit, before the release */
    }
    /* A lost lock has nothing left to release, and Redis may be the reason it was lost: a
     * release would only wait out the command timeout. */
    rc = lost != 0 ? DLOCK_OK : dlock_lock_release(lock);
    if (lost != 0) {
        ex = o.lost_exit;
    } else if (rc == DLOCK_NOT_HELD) {
        cli_error("lock '%s' had expired or been taken by the time the command finished", id);
        ex = o.lost_exit;
    } else if (rc < 0) {
        char lease[32];
        cli_format_ms(o.lease_ms, lease, sizeof lease);
        cli_fail(rc, "releasing the lock");
        cli_error("lock '%s' will expire within %s", id, lease);
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return ex;
}
