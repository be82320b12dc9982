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
                                          "UPSTASH_REDIS_REST_TOKEN"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        unsetenv(secrets[i]);
    }
}

int cli_connect(const cli_common *c, dlock_client **out) {
    dlock_client_options o = {0};
    const char *url;
    *out = NULL;
    if (c->url != NULL && url_has_password(c->url)) {
        /* Any user can read a command line (ps, /proc/PID/cmdline): refuse rather than use it. */
        cli_error("--url must not carry a password: the command line is readable by every user "
                  "(ps); give it with --password-file FILE or DLOCK_PASSWORD, or in REDIS_URL");
        return CLI_EX_USAGE;
    }
    if (c->url != NULL) {
        url = c->url;
        server_source = "--url";
    } else {
        url = dlock_env_url(&server_source); /* the library's own fallback chain */
    }
    server_is_rest = strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;

    int ex = 0;
    char *password = NULL, *token = NULL;
    if (c->password_file != NULL) {
        if ((password = read_secret(c->password_file, "--password-file", &ex)) == NULL) {
            return ex;
        }
        o.password = password;
    } else if (!url_has_password(url)) {
        o.password = nonempty_env("DLOCK_PASSWORD");
        if (o.password == NULL) {
            o.password = nonempty_env("REDISCLI_AUTH");
        }
    }
    if (c->token_file != NULL) {
        if ((token = read_secret(c->token_file, "--token-file", &ex)) == NULL) {
            free_secret(password);
            return ex;
        }
        o.rest_token = token;
    } else {
        o.rest_token = nonempty_env("UPSTASH_REDIS_REST_TOKEN");
    }
    if (c->cacert != NULL) {
        struct stat st;
        if (stat(c->cacert, &st) != 0 || access(c->cacert, R_OK) != 0) {
            cli_error("cannot read --cacert %s: %s", c->cacert, strerror(errno));
            free_secret(password);
            free_secret(token);
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

    int rc = dlock_client_open(out, url, &o);
    free_secret(password);
    free_secret(token);
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
