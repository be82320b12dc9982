/* lockcmds.c: `dlock acquire`, `dlock release` and `dlock extend`, for scripts that hold a lock
 * across several commands and pass its token along. */
#include "child.h"
#include "cli.h"
#include "waiter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char acquire_help[] =
    "Usage: dlock acquire [options] ID\n"
    "\n"
    "Acquire lock ID and print its token on stdout (with --fencing: the token, a space and\n"
    "the fencing token). The lease is NOT renewed: release the lock with\n"
    "'dlock release ID TOKEN' or extend it with 'dlock extend ID TOKEN D' before it ends.\n"
    "\n"
    "Options:\n"
    "  -l, --lease D                 lease of the lock (default 10s)\n"
    "  -w, --wait D                  wait up to D for the lock (-w 0 is -n)\n"
    "  -n, --nonblock                fail at once if the lock is held\n"
    "                                (without -w or -n: 3 tries 100ms apart)\n"
    "  -E, --conflict-exit-code N    exit status when the lock is held (default 1)\n"
    "      --fencing                 also take and print a fencing token\n"
    "\n";

static const char release_help[] =
    "Usage: dlock release [options] ID TOKEN\n"
    "\n"
    "Release lock ID if TOKEN (from 'dlock acquire') still holds it. TOKEN '-' reads the\n"
    "token from stdin. Exit status 0: released; 1: TOKEN does not hold the lock (it expired\n"
    "or another holder has it).\n"
    "\n";

static const char extend_help[] =
    "Usage: dlock extend [options] ID TOKEN D\n"
    "\n"
    "Add duration D to the remaining lease of lock ID if TOKEN still holds it. TOKEN '-'\n"
    "reads the token from stdin. Exit status 0: extended; 1: TOKEN does not hold the lock.\n"
    "\n";

enum { OPT_FENCING = CLI_OPT_FIRST_PRIVATE };

/* Parses options common to the three; the ones that take more are handled by `extra`. */
static int parse_simple(int argc, char **argv, cli_common *common, const char *cmd,
                        const char *help) {
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg)) {
            continue;
        }
        if (c == 'h') {
            fputs(help, stdout);
            fputs(cli_common_help, stdout);
            exit(0);
        }
        return cli_usage_hint(cmd);
    }
    return 0;
}

/* A token from the command line, or from stdin for "-" (so it need not appear in ps). Returns a
 * pointer into `buf` or to the argument; NULL after a usage error. */
static const char *token_arg(const char *cmd, const char *arg, char *buf, size_t size) {
    if (strcmp(arg, "-") == 0) {
        if (fgets(buf, (int)size, stdin) == NULL) {
            cli_usage_error(cmd, "TOKEN '-': nothing to read on stdin");
            return NULL;
        }
        buf[strcspn(buf, "\r\n")] = '\0';
        arg = buf;
    }
    if (arg[0] == '\0') {
        cli_usage_error(cmd, "TOKEN must not be empty");
        return NULL;
    }
    if (strlen(arg) > 512) {
        cli_usage_error(cmd, "TOKEN is longer than 512 bytes");
        return NULL;
    }
    return arg;
}

int cmd_acquire(int argc, char **argv, cli_common *common) {
    static const struct option longopts[] = {
        {"lease", required_argument, NULL, 'l'},
        {"wait", required_argument, NULL, 'w'},
        {"nonblock", no_argument, NULL, 'n'},
        {"conflict-exit-code", required_argument, NULL, 'E'},
        {"fencing", no_argument, NULL, OPT_FENCING},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int64_t lease_ms = 10000, wait_ms = 0;
    int c, ex = 0, nonblock = 0, wait_set = 0, conflict_exit = CLI_EX_CONFLICT, fencing = 0;
    optind = 0;
    while (ex == 0 && (c = getopt_long(argc, argv, "l:w:nE:qh", longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg)) {
            continue;
        }
        switch (c) {
        case 'l':
            ex = cli_duration_arg("acquire", "--lease", optarg, 0, &lease_ms);
            break;
        case 'w':
            ex = cli_duration_arg("acquire", "--wait", optarg, 1, &wait_ms);
            wait_set = 1;
            break;
        case 'n':
            nonblock = 1;
            break;
        case 'E':
            ex = cli_exit_code_arg("acquire", "--conflict-exit-code", optarg, &conflict_exit);
            break;
        case OPT_FENCING:
            fencing = 1;
            break;
        case 'h':
            fputs(acquire_help, stdout);
            fputs(cli_common_help, stdout);
            exit(0);
        default:
            return cli_usage_hint("acquire");
        }
    }
    if (ex != 0) {
        return ex;
    }
    if (nonblock && wait_ms > 0) {
        return cli_usage_error("acquire", "--nonblock and --wait exclude each other");
    }
    if (argc - optind != 1) {
        return cli_usage_error("acquire", argc == optind ? "missing ID" : "too many arguments");
    }
    const char *id = argv[optind];
    if ((ex = cli_check_id("acquire", id)) != 0) {
        return ex;
    }

    dlock_client *client;
    if ((ex = cli_connect(common, &client)) != 0) {
        return ex;
    }
    dlock_lock_options lo = {0};
    lo.lease_ms = lease_ms;
    lo.fencing = fencing;
    dlock_lock *lock = NULL;
    int rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc < 0) {
        ex = cli_fail(rc, "acquire");
        dlock_client_close(client);
        return ex;
    }
    dlock_acquire_options ao = {0};
    if (nonblock || (wait_set && wait_ms == 0)) {
        ao.attempts = 1;
    } else if (wait_ms > 0) {
        ao.wait_ms = wait_ms;
    }
    child_block_signals();
    int sig;
    rc = waiter_acquire(client, lock, &ao, isatty(STDERR_FILENO) && !common->quiet, &sig);
    if (rc == WAITER_INTERRUPTED) {
        if (!common->quiet) {
            cli_error("interrupted while waiting for lock '%s'", id);
        }
        _exit(128 + sig);
    }
    if (rc == DLOCK_OK) {
        if (fencing) {
            printf("%s %" PRId64 "\n", dlock_lock_token(lock), dlock_lock_fencing_token(lock));
        } else {
            printf("%s\n", dlock_lock_token(lock));
        }
        if (fflush(stdout) != 0) {
            /* Nobody got the token, so nobody could release it: do it now. */
            cli_error("cannot write the token to stdout; releasing the lock");
            dlock_lock_release(lock);
            ex = CLI_EX_OSERR;
        }
    } else if (rc == DLOCK_NOT_ACQUIRED) {
        if (!common->quiet) {
            waiter_report_conflict(client, id);
        }
        ex = conflict_exit;
    } else {
        ex = cli_fail_msg(rc, NULL, waiter_errmsg());
    }
    /* Freeing the handle leaves the key in Redis until its lease ends: that is the point. */
    dlock_lock_free(lock);
    dlock_client_close(client);
    return ex;
}

/* Makes a handle for `id` that holds `token`, as `dlock acquire` left it. */
static int adopt(dlock_client *client, const char *id, const char *token, dlock_lock **out) {
    int rc = dlock_lock_new(out, client, id, NULL);
    if (rc == DLOCK_OK && (rc = dlock_lock_adopt(*out, token)) != DLOCK_OK) {
        dlock_lock_free(*out);
        *out = NULL;
    }
    return rc;
}

/* release (extend_ms == 0) or extend the lock `id` held with `token`; the exit code. */
static int with_token(cli_common *common, const char *cmd, const char *id, const char *token,
                      int64_t extend_ms) {
    dlock_client *client;
    dlock_lock *lock = NULL;
    int ex = cli_connect(common, &client);
    if (ex != 0) {
        return ex;
    }
    int rc = adopt(client, id, token, &lock);
    if (rc == DLOCK_OK) {
        rc = extend_ms > 0 ? dlock_lock_extend(lock, extend_ms) : dlock_lock_release(lock);
    }
    if (rc == DLOCK_NOT_HELD) {
        if (!common->quiet) {
            cli_error("lock '%s' is not held with this token (it expired or another holder has it)",
                      id);
        }
        ex = CLI_EX_CONFLICT;
    } else if (rc < 0) {
        ex = cli_fail(rc, cmd);
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return ex;
}

int cmd_release(int argc, char **argv, cli_common *common) {
    int ex = parse_simple(argc, argv, common, "release", release_help);
    if (ex != 0) {
        return ex;
    }
    if (argc - optind != 2) {
        return cli_usage_error("release",
                               argc - optind < 2 ? "missing ID or TOKEN" : "too many arguments");
    }
    const char *id = argv[optind];
    char buf[1024];
    const char *token = token_arg("release", argv[optind + 1], buf, sizeof buf);
    if ((ex = cli_check_id("release", id)) != 0 || token == NULL) {
        return ex != 0 ? ex : CLI_EX_USAGE;
    }
    return with_token(common, "release", id, token, 0);
}

int cmd_extend(int argc, char **argv, cli_common *common) {
    int ex = parse_simple(argc, argv, common, "extend", extend_help);
    if (ex != 0) {
        return ex;
    }
    if (argc - optind != 3) {
        return cli_usage_error("extend",
                               argc - optind < 3 ? "missing ID, TOKEN or D" : "too many arguments");
    }
    const char *id = argv[optind];
    int64_t ms;
    if ((ex = cli_check_id("extend", id)) != 0 ||
        (ex = cli_duration_arg("extend", "D", argv[optind + 2], 0, &ms)) != 0) {
        return ex;
    }
    char buf[1024];
    const char *token = token_arg("extend", argv[optind + 1], buf, sizeof buf);
    if (token == NULL) {
        return CLI_EX_USAGE;
    }
    return with_token(common, "extend", id, token, ms);
}
