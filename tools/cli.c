/* cli.c: option and message helpers shared by every subcommand. */
#include "cli.h"

#include "duration.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int verbose;

const char cli_common_help[] =
    "Server options (every subcommand):\n"
    "      --url URL            redis://[user@]host[:port][/db], rediss://... (TLS),\n"
    "                           unix:///path.sock, https://... (Upstash REST), a Cluster\n"
    "                           node (or h1:p1,h2:p2 seeds), or redis-sentinel://h1,h2#NAME.\n"
    "                           Never with a password in it (ps shows it): see below.\n"
    "                           Given 3 or more times: a Redlock over those servers (held\n"
    "                           on a majority). Default: $DLOCK_URLS (URLs separated by\n"
    "                           blanks; several make a Redlock), else\n"
    "                           $UPSTASH_REDIS_REST_URL, else $REDIS_URL,\n"
    "                           else redis://127.0.0.1:6379\n"
    "      --user NAME          ACL user name (default: the URL's, else \"default\")\n"
    "      --password-file F    read the password from file F (first line)\n"
    "                           Default: the URL's, else $DLOCK_PASSWORD, else\n"
    "                           $REDISCLI_AUTH. Passwords are never taken as arguments.\n"
    "      --token-file F       read the Upstash REST token from file F\n"
    "                           (default: $UPSTASH_REDIS_REST_TOKEN)\n"
    "      --sentinel-user NAME, --sentinel-password-file F\n"
    "                           redis-sentinel://: the sentinels' own ACL user and password\n"
    "                           (default: $DLOCK_SENTINEL_PASSWORD, else none); the other\n"
    "                           credentials are the data nodes'\n"
    "      --cacert F           verify rediss:// servers against the PEM CA bundle F\n"
    "                           (or the hashed CA directory F)\n"
    "      --insecure           do not verify the TLS certificate (testing only)\n"
    "  -q, --quiet              no notices: conflict, not held, renewal retries, and (on a\n"
    "                           terminal) waiting and superseded; errors remain\n"
    "  -v, --verbose            one timestamped line per event on stderr: waiting, acquired,\n"
    "                           renewed, renewal failed/recovered, lost, released\n"
    "  -h, --help               this help\n";

const char cli_exit_help[] =
    "Exit status:\n"
    "    0    success (run, debounce: the command's own status, 128+N if killed by signal N)\n"
    "    1    run/acquire: the lock is held by another holder (change with -E);\n"
    "         release/extend: the token does not hold the lock; status: the lock is free\n"
    "   64    usage error: bad option, duration, id or URL\n"
    "   66    a --password-file, --token-file or --cacert file cannot be read\n"
    "   69    Redis unreachable: connection refused, timed out or broken\n"
    "   70    internal error\n"
    "   71    system error: out of memory, cannot fork or start a thread\n"
    "   75    run: the lock was lost while the command ran (change with --lost-exit-code)\n"
    "   76    the server answered with an error or an unexpected reply\n"
    "   77    the password or token was rejected, or TLS verification failed\n"
    "  126    the command cannot be executed\n"
    "  127    the command was not found\n";

int cli_common_option(cli_common *c, int opt, const char *arg) {
    switch (opt) {
    case CLI_OPT_URL:
        c->url = arg;
        if (c->nurls < CLI_MAX_URLS) {
            c->urls[c->nurls] = arg;
        }
        c->nurls++;
        return 1;
    case CLI_OPT_USER:
        c->user = arg;
        return 1;
    case CLI_OPT_PASSWORD_FILE:
        c->password_file = arg;
        return 1;
    case CLI_OPT_TOKEN_FILE:
        c->token_file = arg;
        return 1;
    case CLI_OPT_SENTINEL_USER:
        c->sentinel_user = arg;
        return 1;
    case CLI_OPT_SENTINEL_PASSWORD_FILE:
        c->sentinel_password_file = arg;
        return 1;
    case CLI_OPT_CACERT:
        c->cacert = arg;
        return 1;
    case CLI_OPT_INSECURE:
        c->insecure = 1;
        return 1;
    case 'q':
        c->quiet = 1;
        return 1;
    case 'v':
        c->verbose = 1;
        verbose = 1;
        return 1;
    default:
        return 0;
    }
}

int cli_check_verbosity(const char *cmd, const cli_common *c) {
    if (c->quiet && c->verbose) {
        return cli_usage_error(cmd, "--quiet and --verbose exclude each other");
    }
    return 0;
}

int cli_usage_hint(const char *cmd) {
    fprintf(stderr, "Try 'dlock %s --help'.\n", cmd);
    return CLI_EX_USAGE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "dlock %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return cli_usage_hint(cmd);
}

/* "2026-12-01T19:52:23.123+0000 " for -v lines; nothing without -v. */
static void timestamp(void) {
    struct timespec ts;
    struct tm tm;
    char date[40], zone[8];
    if (!verbose) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm);
    fprintf(stderr, "%s.%03ld%s ", date, ts.tv_nsec / 1000000, zone);
}

static void say(const char *fmt, va_list ap) {
    /* One write per line as far as stdio allows, so lines from two threads do not mix. */
    flockfile(stderr);
    timestamp();
    fputs("dlock: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}

void cli_event(const char *fmt, ...) {
    va_list ap;
    if (!verbose) {
        return;
    }
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}

int cli_verbose(void) {
    return verbose;
}

int64_t cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_check_id(const char *cmd, const char *id) {
    if (id[0] == '\0') {
        return cli_usage_error(cmd, "ID must not be empty");
    }
    if (strnlen(id, DLOCK_MAX_ID_LEN + 1) > DLOCK_MAX_ID_LEN) {
        return cli_usage_error(cmd, "ID is longer than %d bytes", DLOCK_MAX_ID_LEN);
    }
    return 0;
}

int cli_duration_arg(const char *cmd, const char *opt, const char *arg, int zero_ok,
                     int64_t *out_ms) {
    const char *why;
    if (duration_parse(arg, DLOCK_MAX_DURATION_MS, out_ms, &why) != 0) {
        if (strcmp(why, "is too large") == 0) {
            return cli_usage_error(cmd, "%s: '%s' is too large (at most %llds)", opt, arg,
                                   (long long)(DLOCK_MAX_DURATION_MS / 1000));
        }
        return cli_usage_error(cmd, "%s: '%s' %s", opt, arg, why);
    }
    if (*out_ms == 0 && !zero_ok) {
        return cli_usage_error(cmd, "%s: '%s' must be greater than zero", opt, arg);
    }
    return 0;
}

int cli_exit_code_arg(const char *cmd, const char *opt, const char *arg, int *out) {
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v > 255) {
        return cli_usage_error(cmd, "%s: '%s' is not an exit code (0-255)", opt, arg);
    }
    *out = (int)v;
    return 0;
}

void cli_format_ms(int64_t ms, char *buf, size_t size) {
    if (ms < 1000) {
        snprintf(buf, size, "%lldms", (long long)ms);
    } else if (ms < 60000) {
        /* Tenths, rounded down, so "0.9s left" is never shown as "1.0s left". */
        snprintf(buf, size, "%lld.%llds", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
    } else if (ms < 3600000) {
        snprintf(buf, size, "%lldm%02llds", (long long)(ms / 60000),
                 (long long)(ms % 60000 / 1000));
    } else {
        snprintf(buf, size, "%lldh%02lldm", (long long)(ms / 3600000),
                 (long long)(ms % 3600000 / 60000));
    }
}

void cli_holder_text(char *buf, size_t size, const char *const *command) {
    char host[256] = "?", since[32] = "?";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) != NULL) {
        strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    int n = snprintf(buf, size, "host=%s pid=%ld since=%s cmd=", host, (long)getpid(), since);
    size_t len = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
    for (int i = 0; command != NULL && command[i] != NULL && len + 1 < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? " " : "", command[i]);
        len = w > 0 && len + (size_t)w < size ? len + (size_t)w : size - 1;
    }
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' '; /* one line in `dlock status` */
        }
    }
}
