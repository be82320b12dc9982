/* debounce.c: `dlock debounce`, one call of a debounce shared by every process using the id. */
#include "child.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char debounce_help[] =
    "Usage: dlock debounce [options] ID [--] COMMAND [ARG...]\n"
    "\n"
    "Count one call of the debounce ID (shared by every process and machine using ID), wait\n"
    "the quiet period, and run COMMAND only if no other call came meanwhile: of a burst of\n"
    "calls less than D apart, only the last runs COMMAND. Options go before ID.\n"
    "Exit status: COMMAND's (128+N if signal N killed it), or 0 when a later call\n"
    "superseded this one (change with -S). COMMAND gets DLOCK_ID in its environment, and\n"
    "not DLOCK_PASSWORD, REDISCLI_AUTH or UPSTASH_REDIS_REST_TOKEN.\n"
    "\n"
    "Options:\n"
    "  -w, --wait D                    quiet period (default 1s)\n"
    "  -S, --superseded-exit-code N    exit status when superseded (default 0)\n"
    "\n"
    "Durations: 500ms, 1.5s, 10s, 2m, 1h; a bare number is seconds.\n"
    "\n";

struct call {
    const char *id;
    char **command;
    int ran;
    int exit_code;
};

/* Runs on the calling thread, inside dlock_debounce_call_sync, when this call was the last. */
static void run_command(const void *arg, size_t len, void *userdata) {
    (void)arg;
    (void)len;
    struct call *call = userdata;
    call->ran = 1;
    cli_event("debounce '%s': this call was the last within the wait; running the command",
              call->id);
    child_block_signals();
    pid_t pid = child_spawn(call->command);
    if (pid < 0) {
        call->exit_code = CLI_EX_OSERR;
        return;
    }
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            call->exit_code = child_exit_code(status);
            return;
        }
        siginfo_t si;
        int sig = sigwaitinfo(child_signal_set(), &si);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            child_forward(pid, &si);
        }
    }
}

int cmd_debounce(int argc, char **argv, cli_common *common) {
    static const struct option longopts[] = {
        {"wait", required_argument, NULL, 'w'},
        {"superseded-exit-code", required_argument, NULL, 'S'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int64_t wait_ms = 1000;
    int c, ex = 0, superseded_exit = 0;
    optind = 0; /* "+": stop at ID, so COMMAND's own options are left alone */
    while (ex == 0 &&
           (c = getopt_long(argc, argv, "+w:S:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg)) {
            continue;
        }
        switch (c) {
        case 'w':
            ex = cli_duration_arg("debounce", "--wait", optarg, 0, &wait_ms);
            break;
        case 'S':
            ex = cli_exit_code_arg("debounce", "--superseded-exit-code", optarg, &superseded_exit);
            break;
        case 'h':
            fputs(debounce_help, stdout);
            fputs(cli_common_help, stdout);
            exit(0);
        default:
            return cli_usage_hint("debounce");
        }
    }
    if (ex != 0 || (ex = cli_check_verbosity("debounce", common)) != 0) {
        return ex;
    }
    if (optind >= argc) {
        return cli_usage_error("debounce", "missing ID and COMMAND");
    }
    const char *id = argv[optind];
    if ((ex = cli_check_id("debounce", id)) != 0) {
        return ex;
    }
    int first = optind + 1;
    if (first < argc && strcmp(argv[first], "--") == 0) {
        first++;
    } else if (first < argc && argv[first][0] == '-') {
        return cli_usage_error("debounce",
                               "'%s' after ID: options go before ID (or put -- before COMMAND "
                               "if it starts with '-')",
                               argv[first]);
    }
    if (first >= argc) {
        return cli_usage_error("debounce", "missing COMMAND after ID '%s'", id);
    }

    dlock_client *client;
    if ((ex = cli_connect(common, &client)) != 0) {
        return ex;
    }
    struct call call = {.id = id, .command = argv + first};
    dlock_debounce_options o = {0};
    o.wait_ms = wait_ms;
    o.callback = run_command;
    o.userdata = &call;
    dlock_debounce *d;
    int rc = dlock_debounce_new(&d, client, id, &o);
    if (rc < 0) {
        ex = cli_fail(rc, "debounce");
        dlock_client_close(client);
        return ex;
    }
    setenv("DLOCK_ID", id, 1);
    char wait[32];
    cli_format_ms(wait_ms, wait, sizeof wait);
    cli_event("debounce '%s': counting a call (wait %s)", id, wait);
    rc = dlock_debounce_call_sync(d, NULL, 0);
    if (rc == DLOCK_OK) {
        ex = call.ran ? call.exit_code : CLI_EX_SOFTWARE;
    } else if (rc == DLOCK_SUPERSEDED) {
        if (!common->quiet && (isatty(STDERR_FILENO) || common->verbose)) {
            cli_error("debounce '%s': a later call came within the wait; not running the command",
                      id);
        }
        ex = superseded_exit;
    } else {
        ex = cli_fail(rc, "debounce");
    }
    dlock_debounce_free(d);
    dlock_client_close(client);
    return ex;
}
