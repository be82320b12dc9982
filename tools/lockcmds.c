/* lockcmds.c: `dlock acquire`, `dlock release` and `dlock extend`, for scripts that hold a lock
 * across several commands and pass its token along. */
#include "cli.h"
#include "json.h"
#include "lockopts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char acquire_help[] =
    "Usage: dlock acquire [options] ID\n"
    "\n"
    "Acquire lock ID and print its token on the first line of stdout (with --fencing, the\n"
    "fencing token on a second line), so that token=$(dlock acquire ID | head -n 1) works.\n"
    "The lease is NOT renewed: release the lock with 'dlock release ID TOKEN' or extend it\n"
    "with 'dlock extend ID TOKEN D' before it ends.\n"
    "\n"
    "Options:\n"
    "%s"
    "      --fencing                 also take and print a fencing token\n"
    "  -j, --json                    print one JSON object instead: {\"id\":...,\n"
    "                                \"id_base64\":...,\"token\":...,\"lease_ms\":N,\n"
    "                                \"fencing_token\":N (with --fencing only)}\n"
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

/* Parses options common to the three; the ones that take more are handled by `extra`. */
static int parse_simple(int argc, char **argv, cli_common *common, const char *cmd,
                        const char *help) {
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
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
    return cli_check_verbosity(cmd, common);
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
    if (strlen(arg) > DLOCK_MAX_TOKEN_LEN) {
        cli_usage_error(cmd, "TOKEN is longer than %d bytes", DLOCK_MAX_TOKEN_LEN);
        return NULL;
    }
    return arg;
}

/* Prints what acquire holds: the token, then the fencing token on its own line (or JSON). */
static void print_hold(const dlock_lock *lock, const struct lock_args *a, int json) {
    const char *id = dlock_lock_id(lock), *token = dlock_lock_token(lock);
    if (!json) {
        printf("%s\n", token);
        if (a->fencing) {
            printf("%" PRId64 "\n", dlock_lock_fencing_token(lock));
        }
        return;
    }
    printf("{\"id\":");
    json_string(id, strlen(id));
    printf(",\"id_base64\":");
    json_base64(id, strlen(id));
    printf(",\"token\":");
    json_string(token, strlen(token));
    printf(",\"lease_ms\":%" PRId64, a->lease_ms);
    if (a->fencing) {
        printf(",\"fencing_token\":%" PRId64, dlock_lock_fencing_token(lock));
    }
    printf("}\n");
}

int cmd_acquire(int argc, char **argv, cli_common *common) {
    static const struct option longopts[] = {
        LOCK_ARGS_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct lock_args a;
    int c, ex = 0, json = 0;
    lock_args_init(&a);
    optind = 0;
    while (ex == 0 && (c = getopt_long(argc, argv, LOCK_ARGS_SHORTOPTS "j" CLI_COMMON_SHORTOPTS,
                                       longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg) ||
            lock_args_option("acquire", &a, c, optarg, &ex)) {
            continue;
        }
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            printf(acquire_help, lock_args_help);
            fputs(cli_common_help, stdout);
            exit(0);
        default:
            return cli_usage_hint("acquire");
        }
    }
    if (ex != 0 || (ex = cli_check_verbosity("acquire", common)) != 0 ||
        (ex = lock_args_check("acquire", &a)) != 0) {
        return ex;
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
    lo.lease_ms = a.lease_ms;
    lo.fencing = a.fencing;
    lo.wait_replicas = a.wait_replicas;
    lo.wait_replicas_timeout_ms = a.wait_replicas_timeout_ms;
    char holder[512];
    const char *const who[] = {"dlock", "acquire", id, NULL};
    cli_holder_text(holder, sizeof holder, who);
    lo.holder = holder;
    dlock_lock *lock = NULL;
    int rc = dlock_lock_new(&lock, client, id, &lo);
    if (rc < 0) {
        ex = cli_fail(rc, "acquire");
        dlock_client_close(client);
        return ex;
    }
    if ((ex = lock_take("acquire", client, lock, &a, common)) == 0) {
        print_hold(lock, &a, json);
        if (fflush(stdout) != 0) {
            /* Nobody got the token, so nobody could release it: do it now. */
            cli_error("cannot write the token to stdout; releasing the lock");
            dlock_lock_release(lock);
            ex = CLI_EX_OSERR;
        }
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
    } else if (extend_ms > 0) {
        char d[32];
        cli_format_ms(extend_ms, d, sizeof d);
        cli_event("extended lock '%s' by %s", id, d);
    } else {
        cli_event("released lock '%s'", id);
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
