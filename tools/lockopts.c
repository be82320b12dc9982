/* lockopts.c: the lock options of `dlock run` and `dlock acquire`, and taking the lock. */
#include "lockopts.h"

#include "child.h"
#include "waiter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char lock_args_help[] =
    "  -l, --lease D                 lease of the lock (default 10s, at least 100ms)\n"
    "  -w, --wait D                  wait up to D for the lock; -w forever waits with no\n"
    "                                limit; -w 0 is -n\n"
    "  -n, --nonblock                fail at once if the lock is held\n"
    "                                (without -w or -n: 3 tries 100ms apart, unlike flock,\n"
    "                                which waits forever)\n"
    "  -E, --conflict-exit-code N    exit status when the lock is held (default 1)\n"
    "      --wait-replicas N[/T]     each lock write must reach N replicas within T (WAIT;\n"
    "                                default 1s): narrows, does not close, the window in\n"
    "                                which a failover loses the lock\n";

void lock_args_init(struct lock_args *a) {
    memset(a, 0, sizeof *a);
    a->lease_ms = 10000;
    a->conflict_exit = CLI_EX_CONFLICT;
}

/* "N" or "N/TIMEOUT": 1 to 1000 replicas, a duration. */
static int wait_replicas_arg(const char *cmd, struct lock_args *a, const char *arg) {
    char *end = NULL;
    long n = strtol(arg, &end, 10);
    if (end == arg || (*end != '\0' && *end != '/') || n < 1 || n > 1000) {
        return cli_usage_error(cmd,
                               "--wait-replicas: '%s' is not N or N/TIMEOUT (N from 1 to "
                               "1000, e.g. 1/500ms)",
                               arg);
    }
    a->wait_replicas = (int)n;
    a->wait_replicas_timeout_ms = 0;
    if (*end == '/') {
        return cli_duration_arg(cmd, "--wait-replicas", end + 1, 0, &a->wait_replicas_timeout_ms);
    }
    return 0;
}

int lock_args_option(const char *cmd, struct lock_args *a, int opt, const char *arg, int *ex) {
    *ex = 0;
    switch (opt) {
    case 'l':
        *ex = cli_duration_arg(cmd, "--lease", arg, 0, &a->lease_ms);
        if (*ex == 0 && a->lease_ms < CLI_MIN_LEASE_MS) {
            *ex = cli_usage_error(cmd, "--lease: '%s' is shorter than %dms, the shortest lease",
                                  arg, CLI_MIN_LEASE_MS);
        }
        return 1;
    case 'w':
        a->wait_set = 1;
        a->wait_forever = strcmp(arg, "forever") == 0;
        if (a->wait_forever) {
            a->wait_ms = DLOCK_MAX_DURATION_MS;
        } else {
            *ex = cli_duration_arg(cmd, "--wait", arg, 1, &a->wait_ms);
        }
        return 1;
    case 'n':
        a->nonblock = 1;
        return 1;
    case 'E':
        *ex = cli_exit_code_arg(cmd, "--conflict-exit-code", arg, &a->conflict_exit);
        return 1;
    case LOCK_OPT_FENCING:
        a->fencing = 1;
        return 1;
    case LOCK_OPT_WAIT_REPLICAS:
        *ex = wait_replicas_arg(cmd, a, arg);
        return 1;
    default:
        return 0;
    }
}

int lock_args_check(const char *cmd, const struct lock_args *a) {
    if (a->nonblock && a->wait_ms > 0) {
        return cli_usage_error(cmd, "--nonblock and --wait exclude each other");
    }
    return 0;
}

/* "at once", "waiting up to 5.0s", ... for -v and the conflict message. */
static void describe_wait(const struct lock_args *a, char *buf, size_t size) {
    char d[32];
    if (a->nonblock || (a->wait_set && a->wait_ms == 0)) {
        snprintf(buf, size, "one try");
    } else if (a->wait_forever) {
        snprintf(buf, size, "waiting with no time limit");
    } else if (a->wait_ms > 0) {
        cli_format_ms(a->wait_ms, d, sizeof d);
        snprintf(buf, size, "waiting up to %s", d);
    } else {
        snprintf(buf, size, "3 tries 100ms apart");
    }
}

int lock_take(const char *cmd, dlock_client *client, dlock_lock *lock, const struct lock_args *a,
              const cli_common *common) {
    const char *id = dlock_lock_id(lock);
    char how[64], lease[32], took[32];
    dlock_acquire_options ao = {0};
    if (a->nonblock || (a->wait_set && a->wait_ms == 0)) {
        ao.attempts = 1;
    } else if (a->wait_ms > 0) {
        ao.wait_ms = a->wait_ms;
    }
    describe_wait(a, how, sizeof how);
    cli_format_ms(a->lease_ms, lease, sizeof lease);
    cli_event("acquiring lock '%s' (lease %s, %s)", id, lease, how);

    /* From here on the signals are taken by sigtimedwait only, in this thread. */
    child_block_signals();
    int sig;
    int notice = (isatty(STDERR_FILENO) || common->verbose) && !common->quiet;
    int64_t start = cli_now_ms();
    int rc = waiter_acquire(client, lock, &ao, notice, &sig);
    if (rc == WAITER_INTERRUPTED) {
        if (!common->quiet) {
            cli_error("interrupted while waiting for lock '%s'", id);
        }
        _exit(128 + sig);
    }
    cli_format_ms(cli_now_ms() - start, took, sizeof took);
    if (rc == DLOCK_OK) {
        if (a->fencing) {
            cli_event("acquired lock '%s' after %s (lease %s, fencing token %" PRId64 ")", id, took,
                      lease, dlock_lock_fencing_token(lock));
        } else {
            cli_event("acquired lock '%s' after %s (lease %s)", id, took, lease);
        }
        return 0;
    }
    if (rc != DLOCK_NOT_ACQUIRED) {
        return cli_fail_msg(rc, cmd, waiter_errmsg());
    }
    if (ao.wait_ms > 0) {
        snprintf(how, sizeof how, "after waiting %s", took);
    } else if (ao.attempts == 1) {
        how[0] = '\0';
    } else {
        snprintf(how, sizeof how, "after 3 tries 100ms apart");
    }
    int ex = waiter_conflict(client, id, how, common->quiet);
    return ex != 0 ? ex : a->conflict_exit;
}
