/* dlock.c: the `dlock` command: global options, then dispatch to a subcommand. */
#include "child.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char main_help[] =
    "Usage: dlock [server options] COMMAND [options] ARGS\n"
    "\n"
    "Distributed locks and debounce on Redis, compatible with @upstash/lock.\n"
    "\n"
    "Commands:\n"
    "  run ID -- COMMAND...       hold lock ID while COMMAND runs (lease renewed)\n"
    "  acquire ID                 take lock ID and print its token (no renewal)\n"
    "  release ID TOKEN           release lock ID held with TOKEN\n"
    "  extend ID TOKEN D          add D to the lease of lock ID held with TOKEN\n"
    "  status ID                  say whether lock ID is free or held, and for how long\n"
    "  debounce ID -- COMMAND...  run COMMAND unless another call on ID comes within the wait\n"
    "\n"
    "'dlock COMMAND --help' describes each command. Durations: 500ms, 1.5s, 10s, 2m, 1h;\n"
    "a bare number is seconds.\n"
    "\n";

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv, cli_common *common);
} commands[] = {
    {"run", cmd_run},       {"acquire", cmd_acquire}, {"release", cmd_release},
    {"extend", cmd_extend}, {"status", cmd_status},   {"debounce", cmd_debounce},
};

static void print_help(void) {
    fputs(main_help, stdout);
    fputs(cli_common_help, stdout);
    fputs("  -V, --version            print the version\n\n", stdout);
    fputs(cli_exit_help, stdout);
    fputs("\nSee dlock(1) for more.\n", stdout);
}

static int print_version(void) {
    printf("dlock %s (libdlock %s)\n", DLOCK_VERSION_STRING, dlock_version());
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cli_common common = {0};
    int c;

    child_note_inherited_fds();
    /* getopt names the program in its messages ("dlock: unrecognized option"), not the path. */
    argv[0] = (char *)"dlock";
    /* "+": the server options may come before the command name; everything after it is the
     * command's to parse (with the same server options accepted there too). */
    while ((c = getopt_long(argc, argv, "+" CLI_COMMON_SHORTOPTS "V", longopts, NULL)) != -1) {
        if (cli_common_option(&common, c, optarg)) {
            continue;
        }
        if (c == 'h') {
            print_help();
            return 0;
        }
        if (c == 'V') {
            return print_version();
        }
        fputs("Try 'dlock --help'.\n", stderr);
        return CLI_EX_USAGE;
    }
    if (optind >= argc) {
        fputs("dlock: missing command (run, acquire, release, extend, status, debounce)\n"
              "Try 'dlock --help'.\n",
              stderr);
        return CLI_EX_USAGE;
    }
    const char *name = argv[optind];
    /* Each command's getopt messages then read "dlock run: unrecognized option ...". */
    static char prog[64];
    if (strcmp(name, "version") == 0) {
        return print_version();
    }
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            print_help();
            return 0;
        }
        /* "dlock help run" is "dlock run --help". */
        name = argv[optind + 1];
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            if (strcmp(name, commands[i].name) == 0) {
                snprintf(prog, sizeof prog, "dlock %s", name);
                char *help_argv[] = {prog, (char *)"--help", NULL};
                return commands[i].fn(2, help_argv, &common);
            }
        }
    } else {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            if (strcmp(name, commands[i].name) == 0) {
                snprintf(prog, sizeof prog, "dlock %s", name);
                argv[optind] = prog;
                return commands[i].fn(argc - optind, argv + optind, &common);
            }
        }
    }
    fprintf(stderr,
            "dlock: unknown command '%s' (run, acquire, release, extend, status, debounce)\n"
            "Try 'dlock --help'.\n",
            name);
    return CLI_EX_USAGE;
}
