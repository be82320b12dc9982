/* status.c: `dlock status`, which reads a lock's state without taking it. */
#include "cli.h"
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char status_help[] =
    "Usage: dlock status [options] ID\n"
    "\n"
    "Say whether lock ID is free or held, and for how much longer its lease runs. The\n"
    "holder's token is never shown.\n"
    "Exit status 0: held (by TOKEN, with --token); 1: free (or held by another token).\n"
    "\n"
    "Options:\n"
    "  -t, --token TOKEN   also say whether TOKEN is the holder's ('-' reads it from stdin)\n"
    "  -j, --json          print one JSON object: {\"id\":...,\"id_base64\":...,\n"
    "                      \"held\":true|false,\"remaining_ms\":N (-1: no expiry),\n"
    "                      \"token_matches\":true|false (with --token only)}. \"id\" is\n"
    "                      the id as text (bytes that are not UTF-8 become U+FFFD);\n"
    "                      \"id_base64\" is its exact bytes\n"
    "\n";

int cmd_status(int argc, char **argv, cli_common *common) {
    static const struct option longopts[] = {
        {"token", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *token = NULL;
    int c, json = 0;
    char buf[1024];
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:j" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_option(common, c, optarg)) {
            continue;
        }
        switch (c) {
        case 't':
            token = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(status_help, stdout);
            fputs(cli_common_help, stdout);
            exit(0);
        default:
            return cli_usage_hint("status");
        }
    }
    int ex = cli_check_verbosity("status", common);
    if (ex != 0) {
        return ex;
    }
    if (argc - optind != 1) {
        return cli_usage_error("status", argc == optind ? "missing ID" : "too many arguments");
    }
    const char *id = argv[optind];
    ex = cli_check_id("status", id);
    if (ex != 0) {
        return ex;
    }
    if (token != NULL && strcmp(token, "-") == 0) {
        if (fgets(buf, sizeof buf, stdin) == NULL) {
            return cli_usage_error("status", "--token '-': nothing to read on stdin");
        }
        buf[strcspn(buf, "\r\n")] = '\0';
        token = buf;
    }
    if (token != NULL && token[0] == '\0') {
        return cli_usage_error("status", "--token must not be empty");
    }

    dlock_client *client;
    if ((ex = cli_connect(common, &client)) != 0) {
        return ex;
    }
    dlock_lock_details details;
    dlock_lock_info info = {0};
    int rc = dlock_lock_inspect_details(client, id, &details);
    if (rc == DLOCK_OK) {
        info = details.info;
        if (token != NULL && info.held) { /* the full token is compared by the library */
            dlock_lock_info mine;
            rc = dlock_lock_inspect(client, id, token, &mine);
            info.token_matches = rc == DLOCK_OK && mine.held && mine.token_matches;
        }
    }
    if (rc < 0) {
        ex = cli_fail(rc, "status");
        dlock_client_close(client);
        return ex;
    }
    if (json) {
        printf("{\"id\":");
        json_string(id, strlen(id));
        printf(",\"id_base64\":");
        json_base64(id, strlen(id));
        printf(",\"held\":%s,\"remaining_ms\":%" PRId64, info.held ? "true" : "false",
               info.held ? info.remaining_ms : (int64_t)0);
        if (token != NULL) {
            printf(",\"token_matches\":%s", info.token_matches ? "true" : "false");
        }
        printf(",\"holder\":");
        if (info.held && details.holder[0] != '\0') {
            json_string(details.holder, strlen(details.holder));
        } else {
            printf("null");
        }
        printf(",\"fencing_counter\":%" PRId64 "}\n", details.fencing_counter);
    } else if (!info.held) {
        printf("%s: free\n", id);
    } else {
        char left[32];
        const char *whose = token == NULL        ? "held"
                            : info.token_matches ? "held by this token"
                                                 : "held by another token";
        if (info.remaining_ms < 0) {
            printf("%s: %s, no expiry\n", id, whose);
        } else {
            cli_format_ms(info.remaining_ms, left, sizeof left);
            printf("%s: %s, %s of its lease left\n", id, whose, left);
        }
        if (details.holder[0] != '\0') {
            printf("  holder: %s\n", details.holder);
        }
    }
    dlock_client_close(client);
    if (fflush(stdout) != 0) {
        return CLI_EX_OSERR;
    }
    return info.held && (token == NULL || info.token_matches) ? 0 : CLI_EX_CONFLICT;
}
