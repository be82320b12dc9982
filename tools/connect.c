/* connect.c: chooses the server and credentials, opens the client, and turns library failures
 * into messages that name the cause and the fix, and into exit codes. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where the server came from, for hints after any later failure. */
static const char *server_source = "the default";
static int server_is_rest;

/* Reads the first line of a secret file. Returns a malloc'd string or NULL after printing why
 * (and setting *ex). */
static char *read_secret(const char *path, const char *opt, int *ex) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        cli_error("cannot read %s %s: %s", opt, path, strerror(errno));
        *ex = CLI_EX_NOINPUT;
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int failed = ferror(f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *s = failed || buf[0] == '\0' ? NULL : strdup(buf);
    /* Do not leave the secret on the stack for a core dump to show. */
    volatile char *v = buf;
    for (size_t i = 0; i < sizeof buf; i++) {
        v[i] = '\0';
    }
    if (s == NULL) {
        cli_error("cannot use %s %s: %s", opt, path,
                  failed ? "read error" : "the file is empty (the secret is its first line)");
        *ex = CLI_EX_NOINPUT;
    }
    return s;
}

static void free_secret(char *s) {
    if (s != NULL) {
        volatile char *v = s;
        for (size_t i = 0; v[i] != '\0'; i++) {
            v[i] = '\0';
        }
        free(s);
    }
}

/* True if the URL carries a password: then it wins over the environment, which may have been set
 * for some other server. The userinfo is "user:password@" for redis:// (a bare "user@" is a user
 * name), and "[user:]password@" for the sentinel schemes (a bare "password@" is a password). */
static int url_has_password(const char *url) {
    const char *p = strstr(url, "://");
    if (p == NULL) {
        return 0;
    }
    int sentinel = (size_t)(p - url) >= 9 && memcmp(p - 9, "-sentinel", 9) == 0;
    p += 3;
    size_t authority = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < authority; i++) {
        if (p[i] == '@') {
            at = p + i;
        }
    }
    if (at == NULL) {
        return 0;
    }
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL) {
        return 1;
    }
    return sentinel && at > p;
}

static const char *nonempty_env(const char *name) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

void cli_scrub_secrets(void) {
    static const char *const secrets[] = {"DLOCK_PASSWORD", "REDISCLI_AUTH",
                                          "UPSTASH_REDIS_REST_TOKEN", "DLOCK_SENTINEL_PASSWORD"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        unsetenv(secrets[i]);
    }
}

static int is_rest(const char *url) {
    return strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
}

/* The servers: every --url, else DLOCK_URLS split at blanks (a URL has none; commas belong to
 * Cluster seed lists), else the library's environment chain. Sets urls[0..*n-1] (pointing into
 * c, or into *buf, which the caller frees). Returns 0 or an exit code after saying why. */
static int choose_servers(const cli_common *c, const char **urls, int *n, char **buf) {
    const char *list = nonempty_env("DLOCK_URLS");
    *n = 0;
    *buf = NULL;
    if (c->nurls > CLI_MAX_URLS) {
        cli_error("--url given %d times; a Redlock has at most %d servers", c->nurls, CLI_MAX_URLS);
        return CLI_EX_USAGE;
    }
    for (int i = 0; i < c->nurls && i < CLI_MAX_URLS; i++) {
        if (url_has_password(c->urls[i])) {
            /* Any user can read a command line (ps, /proc/PID/cmdline): refuse it. */
            cli_error("--url must not carry a password: the command line is readable by every "
                      "user (ps); give it with --password-file FILE or DLOCK_PASSWORD, or in "
                      "REDIS_URL or DLOCK_URLS");
            return CLI_EX_USAGE;
        }
    }
    if (c->nurls > 0) {
        memcpy(urls, c->urls, (size_t)c->nurls * sizeof *urls);
        *n = c->nurls;
        server_source = "--url";
    } else if (list != NULL) {
        if ((*buf = strdup(list)) == NULL) {
            cli_error("out of memory");
            return CLI_EX_OSERR;
        }
        for (char *save = NULL, *p = strtok_r(*buf, " \t\n", &save); p != NULL;
             p = strtok_r(NULL, " \t\n", &save)) {
            if (*n == CLI_MAX_URLS) {
                cli_error("DLOCK_URLS names more than %d servers", CLI_MAX_URLS);
                return CLI_EX_USAGE;
            }
            urls[(*n)++] = p;
        }
        server_source = "DLOCK_URLS";
        if (*n == 0) {
            cli_error("DLOCK_URLS names no server");
            return CLI_EX_USAGE;
        }
    } else {
        urls[(*n)++] = dlock_env_url(&server_source); /* the library's own fallback chain */
    }
    return 0;
}

int cli_connect(const cli_common *c, dlock_client **out) {
    dlock_client_options o = {0};
    const char *urls[CLI_MAX_URLS];
    int nurls;
    char *list = NULL;
    *out = NULL;
    int ex = choose_servers(c, urls, &nurls, &list);
    if (ex != 0) {
        free(list);
        return ex;
    }
    int any_password = 0;
    server_is_rest = 0;
    for (int i = 0; i < nurls; i++) {
        server_is_rest |= is_rest(urls[i]);
        any_password |= url_has_password(urls[i]);
    }

    char *password = NULL, *token = NULL;
    if (c->password_file != NULL) {
        if ((password = read_secret(c->password_file, "--password-file", &ex)) == NULL) {
            free(list);
            return ex;
        }
        o.password = password;
    } else if (!any_password) {
        o.password = nonempty_env("DLOCK_PASSWORD");
        if (o.password == NULL) {
            o.password = nonempty_env("REDISCLI_AUTH");
        }
    }
    if (c->token_file != NULL) {
        if ((token = read_secret(c->token_file, "--token-file", &ex)) == NULL) {
            free_secret(password);
            free(list);
            return ex;
        }
        o.rest_token = token;
    } else {
        o.rest_token = nonempty_env("UPSTASH_REDIS_REST_TOKEN");
    }
    char *spass = NULL; /* the sentinels' password: a file, else the environment */
    if (c->sentinel_password_file != NULL &&
        (spass = read_secret(c->sentinel_password_file, "--sentinel-password-file", &ex)) == NULL) {
        free_secret(password);
        free_secret(token);
        return ex;
    }
    o.sentinel_password = spass != NULL ? spass : nonempty_env("DLOCK_SENTINEL_PASSWORD");
    o.sentinel_username = c->sentinel_user;
    if (c->cacert != NULL) {
        struct stat st;
        if (stat(c->cacert, &st) != 0 || access(c->cacert, R_OK) != 0) {
            cli_error("cannot read --cacert %s: %s", c->cacert, strerror(errno));
            free_secret(password);
            free_secret(token);
            free(list);
            free_secret(spass);
            return CLI_EX_NOINPUT;
        }
        if (S_ISDIR(st.st_mode)) {
            o.tls_ca_dir = c->cacert;
        } else {
            o.tls_ca_file = c->cacert;
        }
    }
    o.username = c->user;
    o.tls_insecure = c->insecure;
    /* One connection is all a subcommand needs; the auto-renew thread of `run` takes a second
     * one from the pool while the main thread waits on the child. */
    o.pool_size = 2;

    /* Several servers make a Redlock; the library refuses two (no server may fail there). */
    int rc = nurls > 1 ? dlock_client_open_quorum(out, urls, (size_t)nurls, &o)
                       : dlock_client_open(out, urls[0], &o);
    free_secret(password);
    free_secret(token);
    free(list);
    free_secret(spass);
    /* The library has its copies: the commands dlock runs must not inherit the secrets. */
    cli_scrub_secrets();
    if (rc < 0) {
        return cli_fail(rc, NULL);
    }
    return 0;
}

int cli_fail(int rc, const char *what) {
    return cli_fail_msg(rc, what, dlock_errmsg());
}

int cli_fail_msg(int rc, const char *what, const char *msg) {
    char head[512];
    if (msg[0] == '\0') {
        msg = dlock_strerror(rc);
    }
    if (what != NULL) {
        snprintf(head, sizeof head, "%s: %s", what, msg);
    } else {
        snprintf(head, sizeof head, "%s", msg);
    }
    /* Servers end some messages with a full stop; a hint follows after a semicolon. */
    size_t n = strlen(head);
    while (n > 0 && (head[n - 1] == '.' || head[n - 1] == ' ')) {
        head[--n] = '\0';
    }
    const char *url_var = server_is_rest ? "UPSTASH_REDIS_REST_URL" : "REDIS_URL";
    switch (rc) {
    case DLOCK_ECONNECT:
    case DLOCK_ETIMEDOUT:
    case DLOCK_EIO:
        cli_error("%s; is %s running and reachable? (the server is from %s; set --url or %s to "
                  "change it)",
                  head, server_is_rest ? "the REST endpoint" : "Redis", server_source, url_var);
        return CLI_EX_UNAVAILABLE;
    case DLOCK_EAUTH:
        if (server_is_rest) {
            cli_error("%s; check the token (--token-file or UPSTASH_REDIS_REST_TOKEN)", head);
        } else if (strstr(head, "no sentinel answered") != NULL) {
            cli_error("%s; check the sentinels' password (--sentinel-password-file or "
                      "DLOCK_SENTINEL_PASSWORD) and user (--sentinel-user)",
                      head);
        } else {
            cli_error("%s; check the password (--password-file, DLOCK_PASSWORD or REDISCLI_AUTH) "
                      "and the user (--user or the URL)",
                      head);
        }
        return CLI_EX_NOPERM;
    case DLOCK_ETLS:
        cli_error("%s; check --cacert (the CA that signed the server's certificate) and that the "
                  "port speaks TLS (--insecure skips verification, for tests only)",
                  head);
        return CLI_EX_NOPERM;
    case DLOCK_EINVAL:
        if (what == NULL) {
            cli_error("bad server URL (from %s): %s", server_source, msg);
        } else {
            cli_error("%s", head);
        }
        return CLI_EX_USAGE;
    case DLOCK_EREPLICAS:
        cli_error("%s; the replicas are down, lagging or paused (--wait-replicas)", head);
        return CLI_EX_UNAVAILABLE;
    case DLOCK_ESERVER:
    case DLOCK_EPROTO:
    case DLOCK_EHTTP:
        cli_error("%s", head);
        return CLI_EX_PROTOCOL;
    case DLOCK_ENOMEM:
    case DLOCK_ESYS:
        cli_error("%s", head);
        return CLI_EX_OSERR;
    default:
        cli_error("%s (%s)", head, dlock_strerror(rc));
        return CLI_EX_SOFTWARE;
    }
}
